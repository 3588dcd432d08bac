"""Creating a ticket: the row from the form's loose values (incident priority from impact ×
urgency, other columns by the table's dictionary, every value checked first:
``servicenow_values``), change requests through the Change API by their type, a data policy's
refusal mapped to field ids. Every text goes through ``servicenow_text`` (no control characters,
no ``[code]`` tag) before it is measured and cut."""

from __future__ import annotations

import html
from dataclasses import replace

from pydantic import JsonValue

from anomaly_desk.core.formatting.block import anomaly_block
from anomaly_desk.core.formatting.plain import block_to_text, servicenow_text
from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.providers.base import Ticket, TicketFields, TicketText
from anomaly_desk.core.providers.errors import ProviderError, UnavailableError, ValidationError
from anomaly_desk.core.providers.payloads import Incident
from anomaly_desk.core.providers.servicenow_base import LABEL_TO_FIELD, read_params
from anomaly_desk.core.providers.servicenow_fields import TableForm, refused_fields
from anomaly_desk.core.providers.servicenow_forms import IDENTIFIER, ServiceNowForms
from anomaly_desk.core.providers.servicenow_people import ServiceNowPeople
from anomaly_desk.core.providers.servicenow_tables import CHANGE_MODELS, INCIDENT
from anomaly_desk.core.providers.servicenow_values import checked_values
from anomaly_desk.core.vocabulary import FieldKind

CORRELATION_DISPLAY = "Anomaly Desk"
SHORT_DESCRIPTION_MAX = 160  # incident.short_description max_length on a base instance
DESCRIPTION_MAX = 4000  # incident.description max_length; longer text is cut by the instance
TRUNCATED = "… [truncated]"
# the default priority lookup rules: (impact, urgency) -> priority
PRIORITY_MATRIX = {
    ("1", "1"): "1",
    ("1", "2"): "2",
    ("2", "1"): "2",
    ("2", "2"): "3",
    ("1", "3"): "3",
    ("3", "1"): "3",
    ("2", "3"): "4",
    ("3", "2"): "4",
    ("3", "3"): "5",
}
PRIORITY_WORDS = {"critical": "1", "high": "2", "moderate": "3", "low": "4", "planning": "5"}
LEVEL_WORDS = {"high": "1", "medium": "2", "low": "3"}
TEXT_FIELDS = ("short_description", "description", "category", "subcategory")
FIELD_ALIASES = {"summary": "short_description"}
WRITABLE = frozenset(
    {*TEXT_FIELDS, "priority", "urgency", "impact", "assignment_group", "assigned_to", "caller_id"}
)
# what an incident is created with without reading its dictionary (anything else needs it)
INCIDENT_PLAIN = WRITABLE - {"category", "subcategory"}
TEXT_ALWAYS = frozenset({"short_description", "description"})
HTML_TYPES = frozenset({"html", "translated_html"})  # columns an instance renders as HTML
INCIDENT_LEVELS = frozenset({"impact", "urgency", "priority"})  # judged by ``_levels``


class ServiceNowCreate(ServiceNowForms, ServiceNowPeople):
    """``create_ticket`` and the row it writes."""

    async def create_ticket(
        self,
        anomaly: Anomaly,
        fields: TicketFields,
        *,
        text: TicketText | None = None,
        operator_email: str | None = None,
    ) -> Ticket:
        """A row on ``fields["table"]`` (else the connection's table); change requests through
        the Change Management API. Dictionary-mandatory fields are checked before the write, a
        data policy's refusal is mapped to its fields; the caller is looked up by email."""
        table = self._table_field(fields.get("table"))
        values: TicketFields = {
            FIELD_ALIASES.get(k, k): v
            for k, v in fields.items()
            if k != "table" and v not in (None, "")
        }
        warnings: list[str] = []
        form = None
        if table != INCIDENT.name or set(values) - INCIDENT_PLAIN:
            form = await self._form_or_none(table)
        body = await self._create_body(anomaly, table, values, text, form, warnings)
        if operator_email and "caller_id" not in values:
            await self._caller(table, operator_email, form, body, warnings)
        if form is not None:
            self._check_mandatory(table, form, body)
        self._creating[anomaly.id] = table  # where find_created looks if no answer comes
        try:
            row = await self._create(table, body)
        except ProviderError as exc:
            if not (isinstance(exc, UnavailableError) and exc.ambiguous):
                self._creating.pop(anomaly.id, None)
            if isinstance(exc, ValidationError):
                raise await self._refusal(table, exc, form) from None
            raise
        self._creating.pop(anomaly.id, None)
        ticket = self._ticket(row, table)
        return replace(ticket, warnings=tuple(warnings)) if warnings else ticket

    async def _create(self, table: str, body: dict[str, str]) -> Incident:
        """``POST`` the row: the Table API, or for a change request the Change Management API
        of its type (its answer wraps every value as ``{"value", "display_value"}``)."""
        if table == "change_request":
            model = body.pop("type", "") or "normal"
            return await self._answer(Incident, "POST", CHANGE_MODELS[model], json=body)
        return await self._answer(
            Incident, "POST", self._path(table=table), params=read_params(), json=body
        )

    async def _refusal(
        self, table: str, exc: ValidationError, form: TableForm | None
    ) -> ValidationError:
        """A data policy's 403 with its fields named by their ids, from the dictionary's
        labels (the instance names them by label)."""
        if exc.status != 403 or "mandatory" not in exc.message:
            return exc
        if form is None:
            try:
                form = await self._form_or_none(table)
            except ProviderError:
                form = None  # the instance's words stand
        labels = {**LABEL_TO_FIELD, **(form.labels if form else {})}
        errors = refused_fields(exc.message, labels) or exc.field_errors
        return ValidationError(
            exc.message, field_errors=errors, status=exc.status, connection=self.name
        )

    def _check_mandatory(self, table: str, form: TableForm, body: dict[str, str]) -> None:
        """The dictionary's mandatory columns (without a default) must be in the body: refused
        here, by field, rather than by the instance after a half-done write."""
        missing = {
            spec.id: f"{spec.name} is mandatory on {form.label}"
            for spec in form.fields
            if spec.required and not str(body.get(spec.id, "")).strip()
        }
        if missing:
            names = ", ".join(sorted(missing))
            raise ValidationError(
                f"Mandatory field(s) missing for a {table}: {names}",
                field_errors=missing,
                connection=self.name,
            )

    async def _create_body(
        self,
        anomaly: Anomaly,
        table: str,
        values: TicketFields,
        text: TicketText | None,
        form: TableForm | None,
        warnings: list[str],
    ) -> dict[str, str]:
        """The row to write: the desk's fields (incident: impact × urgency for the priority),
        any other column the table's dictionary has, the anomaly block (or the template's
        description), the correlation. Every value is checked first and all refusals come
        together; over-long text is cut with a marker, never refused."""
        allowed = set(WRITABLE) | (set(form.columns) if form is not None else set())
        if form is None and table != INCIDENT.name:
            allowed |= {name for name in values if IDENTIFIER.match(name)}  # the instance judges
        allowed -= {"number", "correlation_id", "correlation_display", "sys_id"}
        unknown = sorted(set(values) - allowed)
        if unknown:
            errors = {name: f"not a field Anomaly Desk sets on a {table}" for name in unknown}
            raise ValidationError(
                f"Unknown field(s): {', '.join(unknown)}",
                field_errors=errors,
                connection=self.name,
            )
        judged = INCIDENT_LEVELS if table == INCIDENT.name else frozenset()
        checked, refused = checked_values(
            {k: v for k, v in values.items() if k not in judged}, form, TEXT_ALWAYS
        )
        model = checked.get("type", values.get("type"))
        if table == "change_request" and (model is None or isinstance(model, str)):
            refused.update(_change_model(model))  # the types the Change API makes here
        levels: dict[str, str] = {}
        if table == INCIDENT.name:
            try:
                levels = self._levels(values)
            except ValidationError as exc:
                refused.update(exc.field_errors)
        if refused:
            names = ", ".join(sorted(refused))
            raise ValidationError(
                f"Invalid value(s) for a {table}: {names}",
                field_errors=refused,
                connection=self.name,
            )
        block_text = block_to_text(anomaly_block(anomaly, self.platform.name, self.platform.url))
        if text is not None and text.description:
            block_text = text.description.strip()
        block_text = servicenow_text(block_text)
        body = {
            name: servicenow_text(str(checked[name])).strip()
            for name in TEXT_FIELDS
            if name in checked
        }
        title = body.get("short_description", "") or (text.title if text and text.title else "")
        title = servicenow_text(title)
        short_max = (form.max_length("short_description") if form else None) or (
            SHORT_DESCRIPTION_MAX
        )
        body["short_description"] = _clip(title, short_max)
        if len(" ".join(title.split())) > short_max:
            warnings.append(f"short description cut to {short_max} characters")
        long_max = (form.max_length("description") if form else None) or DESCRIPTION_MAX
        body["description"] = _description(body.get("description", ""), block_text, long_max)
        body.update(levels)
        if "assignment_group" in checked:
            body["assignment_group"] = await self._resolve_group(str(checked["assignment_group"]))
        for name in ("assigned_to", "caller_id"):
            if name in checked:
                body[name] = await self._resolve_user(name, str(checked[name]).strip())
        for name, value in checked.items():
            if name in body or (name in WRITABLE and name not in INCIDENT_LEVELS):
                continue
            body[name] = await self._column_value(name, value, form)
        body["correlation_id"] = str(anomaly.id)
        body["correlation_display"] = CORRELATION_DISPLAY
        return body

    async def _column_value(self, name: str, value: JsonValue, form: TableForm | None) -> str:
        """A checked column value as the Table API takes it: a person by sys_id (a user name or
        email is looked up), several values comma-separated, text without control characters
        or ``[code]`` tags (in an HTML column, escaped: it shows as typed)."""
        spec = form.spec(name) if form is not None else None
        if isinstance(value, list):
            return ",".join(servicenow_text(str(item)).strip() for item in value)
        if spec is not None and spec.kind == FieldKind.USER:
            return await self._resolve_user(name, str(value).strip())
        text = servicenow_text(str(value)).strip()
        if form is not None and form.types.get(name) in HTML_TYPES:
            return html.escape(text, quote=False).replace("\n", "<br>")  # shown, not rendered
        return text

    def _levels(self, values: TicketFields) -> dict[str, str]:
        """Impact and urgency that make the instance derive the chosen priority."""
        impact = _level(values.get("impact"), LEVEL_WORDS, "impact", self.name)
        urgency = _level(values.get("urgency"), LEVEL_WORDS, "urgency", self.name)
        priority = _level(values.get("priority"), PRIORITY_WORDS, "priority", self.name)
        out = {k: v for k, v in (("impact", impact), ("urgency", urgency)) if v}
        if priority is None:
            return out
        matches = [
            pair
            for pair, derived in PRIORITY_MATRIX.items()
            if derived == priority
            and (impact is None or pair[0] == impact)
            and (urgency is None or pair[1] == urgency)
        ]
        if not matches:
            given = [
                f"{name} {value}" for name, value in (("impact", impact), ("urgency", urgency))
            ]
            given = [text for text in given if not text.endswith(" None")]
            source = f"from {' and '.join(given)}" if given else "from any impact and urgency"
            message = (
                f"Priority {priority} cannot come {source}"
                " (ServiceNow derives priority from impact × urgency)"
            )
            raise ValidationError(message, field_errors={"priority": message}, connection=self.name)
        out["impact"], out["urgency"] = matches[0]
        out["priority"] = priority
        return out


def _level(raw: JsonValue, words: dict[str, str], field: str, connection: str) -> str | None:
    """``2``, ``"2"``, ``"2 - High"`` or ``"High"`` → ``"2"``."""
    if raw is None or raw == "":
        return None
    text = str(raw).strip().lower()
    code = text[0] if text[:1].isdigit() else words.get(text.split(" - ")[-1].strip())
    if code is None or code not in set(words.values()):
        message = f"Unknown {field} {raw!r}"
        raise ValidationError(message, field_errors={field: message}, connection=connection)
    return code


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - len(TRUNCATED)] + TRUNCATED


def _description(user_text: str, block_text: str, limit: int = DESCRIPTION_MAX) -> str:
    """User text first, then the anomaly block; only the user text is ever shortened (and the
    block itself only when it alone is over the limit)."""
    if len(block_text) > limit:
        block_text = block_text[: max(limit - len(TRUNCATED), 0)] + TRUNCATED
    if not user_text:
        return block_text
    room = limit - len(block_text) - 2
    if len(user_text) > room:
        user_text = user_text[: max(room - len(TRUNCATED), 0)] + TRUNCATED
    return f"{user_text}\n\n{block_text}"


def _change_model(kind: JsonValue) -> dict[str, str]:
    """A change request's type must be one the Change Management API creates here: normal and
    emergency; a standard change needs one of the instance's standard change templates
    (``POST /api/sn_chg_rest/change/standard/{template}``), which the form does not offer."""
    model = str(kind or "normal")
    if model in CHANGE_MODELS:
        return {}
    if model == "standard":
        message = (
            "a standard change is made from one of the instance's standard change templates,"
            " which Anomaly Desk does not offer: create a normal or emergency change"
        )
    else:
        message = f"{model!r} is not a change type Anomaly Desk creates (normal, emergency)"
    return {"type": message}
