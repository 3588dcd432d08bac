"""People on ServiceNow: user search for the form's pickers, a user or group field from a name
or email, the caller from the operator's email, and the integration's own account."""

from __future__ import annotations

from anomaly_desk.core.providers.errors import AuthError, NotFoundError, ValidationError
from anomaly_desk.core.providers.servicenow_base import (
    SYS_ID,
    ServiceNowBase,
    is_true,
    refuse_caret,
)
from anomaly_desk.core.providers.servicenow_fields import TableForm
from anomaly_desk.core.providers.servicenow_tables import INCIDENT
from anomaly_desk.core.views import UserView

USER_FIELDS = "sys_id,name,email,user_name,active"


class ServiceNowPeople(ServiceNowBase):
    """Looking people and groups up in ``sys_user`` and ``sys_user_group``."""

    async def find_users(self, query: str, limit: int = 20) -> list[UserView]:
        """Active users whose name, email or user name contains ``query``."""
        text = " ".join(query.split())
        refuse_caret(text, "q", self.name)
        where = (
            f"nameLIKE{text}^ORemailLIKE{text}^ORuser_nameLIKE{text}^active=true^ORDERBYname"
            if text
            else "active=true^ORDERBYname"
        )
        rows = await self._rows("sys_user", where, USER_FIELDS, limit=max(1, min(limit, 100)))
        return [
            UserView(
                id=row["sys_id"],
                name=row.get("name") or row.get("user_name", ""),
                email=row.get("email") or None,
            )
            for row in rows
        ]

    async def _caller(
        self,
        table: str,
        email: str,
        form: TableForm | None,
        body: dict[str, str],
        warnings: list[str],
    ) -> None:
        """``caller_id`` from the operator's email: exactly one active ``sys_user`` with it;
        otherwise left empty and the reason added to ``warnings``."""
        field = INCIDENT.caller if table == INCIDENT.name else None
        if form is not None and "caller_id" in form.columns:
            field = "caller_id"
        if field is None:
            warnings.append(f"caller not set: a {table} has no caller field ({email})")
            return
        email = email.strip()
        if "^" in email or not email:  # ``^`` would start another term of the query
            warnings.append(f"caller left empty: {email!r} cannot be looked up safely")
            return
        try:
            rows = await self._rows("sys_user", f"email={email}", USER_FIELDS, limit=10)
        except (AuthError, NotFoundError, ValidationError) as exc:
            warnings.append(f"caller left empty: users are not readable ({exc.plain()})")
            return
        same = [row for row in rows if row.get("email", "").casefold() == email.casefold()]
        active = [row for row in same if is_true(row.get("active"))]
        if len(active) == 1:
            body[field] = active[0]["sys_id"]
        elif len(active) > 1:
            warnings.append(
                f"caller left empty: {len(active)} active ServiceNow users have {email}"
            )
        elif same:
            warnings.append(f"caller left empty: the ServiceNow user with {email} is inactive")
        else:
            warnings.append(f"caller left empty: no ServiceNow user has {email}")

    async def _resolve_group(self, value: str) -> str:
        if SYS_ID.match(value):
            return value
        refuse_caret(value, "assignment_group", self.name)
        rows = await self._rows("sys_user_group", f"name={value}", "sys_id,name", limit=2)
        if len(rows) != 1:
            message = f"No group named {value!r}" if not rows else f"Several groups named {value!r}"
            raise ValidationError(
                message, field_errors={"assignment_group": message}, connection=self.name
            )
        return rows[0]["sys_id"]

    async def _resolve_user(self, field: str, value: str) -> str:
        if SYS_ID.match(value):
            return value
        refuse_caret(value, field, self.name)
        rows = await self._rows(
            "sys_user", f"user_name={value}^ORname={value}^ORemail={value}", "sys_id", limit=2
        )
        if len(rows) != 1:
            message = f"No user {value!r}" if not rows else f"Several users match {value!r}"
            raise ValidationError(message, field_errors={field: message}, connection=self.name)
        return rows[0]["sys_id"]

    async def account(self) -> str:
        """The configured user's ``user_name``: what ``sys_created_by``/``sys_updated_by`` say."""
        return self.username
