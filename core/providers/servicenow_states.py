"""Two-way sync, writing: a record resolved or reopened by its table's own states, with the
close code the instance offers; a business rule's silent refusal is caught."""

from __future__ import annotations

from anomaly_desk.core.providers.base import NoteTag, TicketRef
from anomaly_desk.core.providers.errors import AuthError, NotFoundError, ValidationError
from anomaly_desk.core.providers.payloads import ServiceNowRow
from anomaly_desk.core.providers.servicenow_base import SYS_ID, ServiceNowBase, refuse_caret
from anomaly_desk.core.providers.servicenow_tables import INCIDENT, TableSpec, spec_for

STATE_FIELDS = "sys_id,number,state"
DEFAULT_CLOSE_NOTES = "Resolved by Anomaly Desk: the anomaly was archived."


class ServiceNowStates(ServiceNowBase):
    """``move_to_done`` and ``reopen``."""

    async def move_to_done(self, ticket: TicketRef, note: str, tag: NoteTag) -> str | None:
        """Incident: state 6 (Resolved) with the configured close code and ``note`` as close
        notes; never 7 (Closed: the instance closes a resolved incident itself, and a closed one
        is final). Other tables: their own resolving state (problem 106, change 3, task 3)."""
        table = self._ref_table(ticket)
        spec = spec_for(table)
        row = await self._state_row(ticket, table)
        number, state = row.get("number") or ticket.key, row.get("state", "")
        if state in spec.done:
            return f"{number} is already {spec.states.get(state, state)}: left alone"
        body = {"state": spec.resolve}
        code = ""
        if "close_code" in spec.resolve_fields:
            code = body["close_code"] = await self._close_code(table)
        if "close_notes" in spec.resolve_fields:
            body["close_notes"] = note.strip() or DEFAULT_CLOSE_NOTES
        elif note.strip():
            body["work_notes"] = note
        try:
            after = await self._patch_state(row.get("sys_id") or ticket.id, body, table)
        except ValidationError as exc:
            if exc.status != 403:
                raise
            _, _, wanted = " ".join(exc.message.split()).partition("mandatory:")
            sent = f" (close code sent: {code!r})" if code else ""
            problem = (
                f"{number} cannot be resolved: the instance's data policy requires "
                f"{wanted.strip() or 'more fields'}{sent}"
            )
            raise ValidationError(
                problem, field_errors=exc.field_errors, status=exc.status, connection=self.name
            ) from exc
        self._check_state(number, after, spec.resolve, spec)
        return None

    async def reopen(self, ticket: TicketRef, note: str, tag: NoteTag) -> str | None:
        """Incident: state 2 (In Progress) with ``note`` as a work note, from Resolved only;
        problem: 104 (Fix in Progress) from 106. A closed record is final: left alone."""
        table = self._ref_table(ticket)
        spec = spec_for(table)
        row = await self._state_row(ticket, table)
        number, state = row.get("number") or ticket.key, row.get("state", "")
        name = spec.states.get(state, state)
        if state in spec.done and (state not in spec.reopen_from or not spec.reopen):
            return (
                f"{number} is {name}: a {name.lower()} {spec.label.lower()} cannot be reopened;"
                " left alone"
            )
        if state not in spec.reopen_from:
            return f"{number} is not resolved ({name}): left alone"
        body = {"state": spec.reopen}
        if note.strip():
            body["work_notes"] = note
        after = await self._patch_state(row.get("sys_id") or ticket.id, body, table)
        self._check_state(number, after, spec.reopen, spec)
        return None

    async def _state_row(self, ticket: TicketRef, table: str) -> ServiceNowRow:
        """sys_id, number and state (stored values) of the ticket's record."""
        params = {
            "sysparm_fields": STATE_FIELDS,
            "sysparm_display_value": "false",
            "sysparm_exclude_reference_link": "true",
        }
        if SYS_ID.match(ticket.id):
            return await self._answer(
                ServiceNowRow, "GET", self._path(ticket.id, table), params=params
            )
        key = ticket.key.strip().upper()
        refuse_caret(key, "key", self.name)
        params |= {"sysparm_query": f"number={key}", "sysparm_limit": "1"}
        rows = await self._answer(
            list[ServiceNowRow], "GET", self._path(table=table), params=params
        )
        if not rows:
            raise NotFoundError(f"No {table} {key}", status=None, connection=self.name)
        return rows[0]

    async def _patch_state(self, sys_id: str, body: dict[str, str], table: str) -> ServiceNowRow:
        params = {
            "sysparm_fields": STATE_FIELDS,
            "sysparm_display_value": "false",
            "sysparm_exclude_reference_link": "true",
        }
        return await self._answer(
            ServiceNowRow, "PATCH", self._path(sys_id, table), params=params, json=body
        )

    def _check_state(self, number: str, row: ServiceNowRow, wanted: str, spec: TableSpec) -> None:
        """A business rule may refuse a state change without an error: the answer tells."""
        state = row.get("state", "")
        if state != wanted:
            problem = (
                f"{number} stayed {spec.states.get(state, state or 'unchanged')} "
                f"(asked for {spec.states.get(wanted, wanted)}): a business rule on the instance "
                "refused it"
            )
            raise ValidationError(problem, field_errors={"state": problem}, connection=self.name)

    async def _close_code(self, table: str) -> str:
        """The configured close code as the instance stores it (a label is taken too); one the
        instance does not offer is refused here, as the instance would drop it silently. A
        table other than incident has its own codes: its first one when the configured one is
        not among them (a change's "successful")."""
        wanted = self.close_code.strip()
        try:
            rows = await self._rows(
                "sys_choice",
                f"name={table}^element=close_code^inactive=false^ORDERBYsequence",
                "value,label",
            )
        except AuthError:
            return wanted  # the choices are not readable: the instance judges the code
        if not rows:
            return wanted
        for row in rows:
            if row.get("value") == wanted:
                return wanted
        for row in rows:
            if wanted.casefold() in (
                row.get("value", "").casefold(),
                row.get("label", "").casefold(),
            ):
                return row["value"]
        if table != INCIDENT.name and rows[0].get("value"):
            return rows[0]["value"]
        valid = ", ".join(dict.fromkeys(row.get("value", "") for row in rows if row.get("value")))
        problem = f"close code {wanted!r} is not one of the instance's: {valid} (set close_code)"
        raise ValidationError(problem, field_errors={"close_code": problem}, connection=self.name)
