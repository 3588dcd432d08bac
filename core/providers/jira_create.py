"""Creating an issue: the ``fields`` of the request from the form's loose values (converted by
the create screen), the operator as reporter or watcher."""

from __future__ import annotations

import logging
import re
from dataclasses import replace

from pydantic import JsonValue

from anomaly_desk.core.formatting.adf import (
    adf_json,
    block_to_adf,
    text_to_adf,
    truncate_doc,
    truncate_text,
)
from anomaly_desk.core.formatting.block import anomaly_block
from anomaly_desk.core.formatting.clean import clean_text
from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.providers.base import Ticket, TicketFields, TicketText
from anomaly_desk.core.providers.errors import NotFoundError, ProviderError, ValidationError
from anomaly_desk.core.providers.jira_base import API
from anomaly_desk.core.providers.jira_fields import (
    SUMMARY_LIMIT,
    FieldShape,
    FieldValueError,
    JiraForm,
    convert,
    is_empty,
)
from anomaly_desk.core.providers.jira_forms import JiraForms
from anomaly_desk.core.providers.jira_people import JiraPeople
from anomaly_desk.core.providers.payloads import JiraCreated
from anomaly_desk.core.vocabulary import FieldKind

log = logging.getLogger(__name__)

# Fields build_fields fills from the connection or converts itself; the rest follow the screen.
SYSTEM_FIELDS = frozenset(
    {"project", "issuetype", "issue_type", "summary", "description", "labels", "priority"}
)
PRIORITIES = ("Highest", "High", "Medium", "Low", "Lowest")
# The desk's correlation labels: ``find_created`` adopts an issue carrying them after a crash, so
# a person or a rule may not put them on an issue (case-insensitive, as JQL matches labels).
DESK_LABEL = "anomaly-desk"
_ANOMALY_LABEL = re.compile(r"anomaly-[0-9]+", re.IGNORECASE)


class JiraCreate(JiraForms, JiraPeople):
    """``create_ticket`` and the request body it sends."""

    async def create_ticket(
        self,
        anomaly: Anomaly,
        fields: TicketFields,
        *,
        text: TicketText | None = None,
        operator_email: str | None = None,
    ) -> Ticket:
        """Create the issue; the operator becomes its reporter where the screen has one, else a
        watcher. What could not be done is in the ticket's ``warnings``, never a failed create."""
        extra = set(fields) - SYSTEM_FIELDS - {"assignee"}
        email = (operator_email or "").strip()
        form = await self._form_for(fields) if extra or email else None
        payload = await self.build_fields(anomaly, fields, text=text, form=form)
        warnings: list[str] = []
        account: str | None = None
        chosen = not is_empty(fields.get("reporter"))  # a reporter the form names wins
        if email and not chosen:
            account, problem = await self._operator_account(email)
            if problem:
                warnings.append(problem)
            elif form is not None and form.reporter_settable:
                payload["reporter"] = {"accountId": account}
        try:
            created = await self._create(payload)
        except ValidationError as exc:
            # listed on the screen, but not settable after all (no Modify Reporter permission)
            if chosen or "reporter" not in exc.field_errors or "reporter" not in payload:
                raise
            payload.pop("reporter", None)
            created = await self._create(payload)
        key, issue_id = str(created["key"]), str(created["id"])
        if account and "reporter" not in payload:
            warnings.append(await self._watch(key, account, email, payload))
        try:
            ticket = await self.get_ticket(key)
        except ProviderError:
            # The issue exists; a failed read-back must not look like a failed create.
            ticket = Ticket(
                key=key, id=issue_id, url=self.browse_url(key), summary=str(payload["summary"])
            )
        return replace(ticket, warnings=tuple(warnings)) if warnings else ticket

    async def _create(self, payload: dict[str, JsonValue]) -> JiraCreated:
        return await self._answer(
            JiraCreated, "POST", f"{API}/issue", json={"fields": payload}, expect=(200, 201)
        )

    async def _form_for(self, fields: TicketFields) -> JiraForm | None:
        """The create screen of the project and issue type ``fields`` name (the connection's
        by default); None when Jira does not know them (the create then says why)."""
        project = self._project(fields.get("project"))
        where = str(project.get("key") or project.get("id") or self.conn.project)
        kind = fields.get("issuetype", fields.get("issue_type"))
        if isinstance(kind, dict):
            kind = kind.get("id") or kind.get("name")
        try:
            chosen = await self._issue_type(where, str(kind or self.conn.issue_type).strip())
            return await self._form(where, str(chosen["id"])) if chosen else None
        except (NotFoundError, ValidationError) as exc:
            log.info("%s: no create screen for %s: %s", self.name, where, exc)
            return None

    async def build_fields(
        self,
        anomaly: Anomaly,
        fields: TicketFields,
        *,
        text: TicketText | None = None,
        form: JiraForm | None = None,
    ) -> dict[str, JsonValue]:
        """The ``fields`` object of a create request, from the form's loose values.

        With the issue type's create screen (``form``), every other field is converted by its
        schema; without it, or for a field not on it, values go as given and Jira judges them.
        """
        extra = dict(fields)
        given = self._text("summary", extra.pop("summary", None))
        summary = _one_line(given) or _one_line((text.title if text else None) or "")
        intro = self._text("description", extra.pop("description", None))
        payload: dict[str, JsonValue] = {
            "project": self._project(extra.pop("project", None)),
            "issuetype": self._issuetype(extra.pop("issuetype", extra.pop("issue_type", None))),
            # Jira refuses newlines in a summary, and more than 255 characters
            "summary": truncate_text(
                summary or _one_line(self.default_summary(anomaly)) or "?", SUMMARY_LIMIT
            ),
            "description": self._description(anomaly, intro, text),
            "labels": [*self._labels(extra.pop("labels", None), anomaly.id)],
        }
        priority = extra.pop("priority", None)
        if priority:
            payload["priority"] = self._priority(priority)
        assignee = extra.pop("assignee", None)
        if assignee:
            payload["assignee"] = await self.resolve_user(assignee, "assignee")
        shapes = form.shapes if form else {}
        for name, value in extra.items():
            shape = shapes.get(name)
            if shape is None and name != "reporter":
                payload[name] = value  # not on the screen we know: Jira judges it
            elif not is_empty(value):
                payload[name] = await self._field_value(shape, name, value)
        return payload

    def _text(self, name: str, value: JsonValue) -> str:
        """The summary or description as the form gave it: text, or a number as its digits. A
        list or object is refused, not sent as its Python spelling (an ADF document too: the
        description is the operator's words above the anomaly block)."""
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        kind = "a list" if isinstance(value, list) else "an object"
        if isinstance(value, bool):
            kind = "true/false"
        problem = f"{name} takes text, not {kind}"
        raise ValidationError(problem, field_errors={name: problem}, connection=self.name)

    def _description(
        self, anomaly: Anomaly, intro: str, text: TicketText | None
    ) -> dict[str, JsonValue]:
        """The operator's words, then the anomaly block (or the template's text instead)."""
        words = intro.strip()
        if text and text.description and text.description.strip():
            body = "\n\n".join(part for part in (words, text.description.strip()) if part)
            return adf_json(truncate_doc(text_to_adf(body)))
        block = anomaly_block(anomaly, self.platform.name, self.platform.url)
        return adf_json(block_to_adf(block, words or None))

    async def _field_value(
        self, shape: FieldShape | None, name: str, value: JsonValue
    ) -> JsonValue:
        """One screen field's value as Jira takes it; a value of the wrong kind is refused
        here, naming the field."""
        if shape is None or shape.spec.kind == FieldKind.USER:
            if shape is not None and shape.many:
                items = value if isinstance(value, list) else str(value).split(",")
                return [await self.resolve_user(v, name) for v in items if not is_empty(v)]
            return await self.resolve_user(value, name)
        try:
            return convert(shape, value)
        except FieldValueError as exc:
            raise ValidationError(
                exc.message, field_errors={exc.field: exc.message}, connection=self.name
            ) from None

    def default_summary(self, anomaly: Anomaly) -> str:
        what = anomaly.message or anomaly.description or anomaly.location or anomaly.type
        return f"{self.platform.name} anomaly {anomaly.id}: {what}"

    def _project(self, value: JsonValue) -> dict[str, JsonValue]:
        if isinstance(value, dict):
            return value
        key = str(value or self.conn.project).strip()
        return {"id": key} if key.isdigit() else {"key": key}

    def _issuetype(self, value: JsonValue) -> dict[str, JsonValue]:
        if isinstance(value, dict):
            return value
        name = str(value or self.conn.issue_type).strip()
        return {"id": name} if name.isdigit() else {"name": name}

    @staticmethod
    def _priority(value: JsonValue) -> dict[str, JsonValue]:
        if isinstance(value, dict):
            return value
        name = str(value).strip()
        if name.isdigit():
            return {"id": name}
        canonical = next((p for p in PRIORITIES if p.lower() == name.lower()), name)
        return {"name": canonical}

    def _labels(self, value: JsonValue, anomaly_id: int) -> list[str]:
        """Labels as given (list or comma string) plus ours; Jira forbids spaces in a label, and
        control characters go (as from a summary). The desk's own marks are refused."""
        raw: list[JsonValue] | list[str]
        if isinstance(value, str):
            raw = value.split(",")
        elif isinstance(value, list):
            raw = value
        elif not value:
            raw = []
        else:
            problem = "labels are a list or a comma-separated string"
            raise ValidationError(problem, field_errors={"labels": problem}, connection=self.name)
        if any(isinstance(item, bool) or not isinstance(item, str | int | float) for item in raw):
            problem = "labels are words, not lists, objects or true/false"
            raise ValidationError(problem, field_errors={"labels": problem}, connection=self.name)
        labels = ["-".join(clean_text(str(item)).split()) for item in raw]
        marks = {self.conn.label.casefold(), DESK_LABEL}
        taken = [x for x in labels if x.casefold() in marks or _ANOMALY_LABEL.fullmatch(x)]
        if taken:
            problem = (
                f"labels: {', '.join(repr(x) for x in taken)} cannot be set: "
                f"{self.conn.label!r} and 'anomaly-<id>' are Anomaly Desk's correlation labels "
                "(it finds its tickets by them, and adds them itself)"
            )
            raise ValidationError(problem, field_errors={"labels": problem}, connection=self.name)
        labels += [self.conn.label, f"anomaly-{anomaly_id}"]
        return list(dict.fromkeys(label for label in labels if label))


def _one_line(value: str) -> str:
    """A summary's text: control characters out, every run of white space one space (Jira
    refuses a newline in a summary)."""
    return " ".join(clean_text(value).split())
