"""ServiceNow incidents through the Table API, behind the ``Provider`` protocol.

One ``httpx.AsyncClient`` per connection, driven by the shared loop of ``http``: reads retry
transient failures a couple of times; writes never do, and a write that got no answer is reported
``ambiguous`` so the sync engine looks for its effect (``find_created``) before repeating it. The
password lives only in the HTTP client's auth.

Two-way sync polls the table (``sys_updated_on``) and ``sys_journal_field`` (work notes and
additional comments, ``sys_created_by`` = the writer's user_name: ours when it is the configured
user's), resolves with state 6 and a close code read from ``sys_choice`` (never 7, Closed), and
reopens to state 2.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar, cast
from urllib.parse import quote

import httpx
from pydantic import JsonValue

from anomaly_desk.core.connections import Platform, ServiceNowConnection
from anomaly_desk.core.formatting.block import anomaly_block
from anomaly_desk.core.formatting.notes import link_note
from anomaly_desk.core.formatting.plain import block_to_text
from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.providers.base import (
    NoteTag,
    Option,
    ProviderKind,
    Ticket,
    TicketChange,
    TicketComment,
    TicketFields,
    TicketRef,
)
from anomaly_desk.core.providers.errors import AuthError, NotFoundError, ValidationError
from anomaly_desk.core.providers.http import (
    READ_RETRY,
    BadAnswer,
    ErrorText,
    JsonBody,
    ReadRetry,
    RequestLoop,
    basic_auth_client,
)
from anomaly_desk.core.providers.oauth import OAuth
from anomaly_desk.core.providers.payloads import (
    ChoiceField,
    Incident,
    ReferenceField,
    ServiceNowField,
    ServiceNowRow,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

CORRELATION_DISPLAY = "Anomaly Desk"
SHORT_DESCRIPTION_MAX = 160  # incident.short_description max_length on a base instance
DESCRIPTION_MAX = 4000  # incident.description max_length; longer text is cut by the instance
TRUNCATED = "… [truncated]"
NOTE_LOOKBACK = 1000  # newest work notes counted by note_baseline and has_note
STATE_NAMES = {
    "1": "New",
    "2": "In Progress",
    "3": "On Hold",
    "4": "Awaiting User Info",
    "5": "Awaiting Problem",
    "6": "Resolved",
    "7": "Closed",
    "8": "Canceled",
}
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
CHOICE_FIELDS: tuple[ChoiceField, ...] = (
    "category",
    "subcategory",
    "urgency",
    "impact",
    "priority",
)
REFERENCE_FIELDS: tuple[ReferenceField, ...] = ("assignment_group", "assigned_to", "caller_id")
TEXT_FIELDS = ("short_description", "description", "category", "subcategory")
FIELD_ALIASES = {"summary": "short_description"}
WRITABLE = frozenset(
    {*TEXT_FIELDS, "priority", "urgency", "impact", "assignment_group", "assigned_to", "caller_id"}
)
READ_FIELDS = (
    "sys_id,number,short_description,description,state,priority,urgency,impact,category,"
    "subcategory,assignment_group,assigned_to,caller_id,correlation_id,sys_updated_on"
)
LABEL_TO_FIELD = {
    "short description": "short_description",
    "description": "description",
    "assignment group": "assignment_group",
    "assigned to": "assigned_to",
    "caller": "caller_id",
    "category": "category",
    "subcategory": "subcategory",
    "impact": "impact",
    "urgency": "urgency",
    "priority": "priority",
    "resolution code": "close_code",
    "resolution notes": "close_notes",
}
SYS_ID = re.compile(r"^[0-9a-f]{32}$")
# Two-way sync: rows are re-read this far back (a write's sys_updated_on is when it began, and
# clocks drift); the caller recognises what it has seen by journal sys_id and state.
OVERLAP = timedelta(minutes=2)
CHANGE_FIELDS = "sys_id,number,state,short_description,sys_updated_on,sys_updated_by"
JOURNAL_FIELDS = "sys_id,element_id,element,value,sys_created_on,sys_created_by"
CHANGES_BATCH = 100  # sys_ids per query (they go in the URL)
JOURNAL_PAGE = 1000
RESOLVED = ("6", "7")  # Resolved, Closed: done
STATE_FIELDS = "sys_id,number,state"
DEFAULT_CLOSE_NOTES = "Resolved by Anomaly Desk: the anomaly was archived."


RESTRICTION = "glide.authenticate.basic_auth.restriction"
RESTRICTION_KEYS = ("active", "enforce", "enforcement_date")


@dataclass(frozen=True, slots=True)
class BasicAuthRestriction:
    """ServiceNow's blocking of basic auth (Australia release; KB3025707), as the instance's
    ``sys_properties`` say. ``readable`` False: the account may not read them (``reason``)."""

    readable: bool
    active: bool = False
    enforce: bool = False
    enforcement_date: str | None = None  # when enforcement begins, as the property has it
    reason: str = ""

    @property
    def applies(self) -> bool:
        """Active, enforced or scheduled: basic auth stops (or will stop) working."""
        return self.active or self.enforce or self.enforcement_date is not None


class ServiceNowClient:
    """A ServiceNow instance as a ``Provider``: incidents, work notes and drop-down choices."""

    kind: ProviderKind = "servicenow"

    def __init__(
        self,
        conn: ServiceNowConnection,
        platform: Platform | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: ReadRetry = READ_RETRY,
    ) -> None:
        self.name = conn.name
        self.url = conn.url
        self.table = conn.table
        self.username = conn.username
        self.close_code = conn.close_code
        self.platform = platform or Platform()
        self.auth_mode = conn.auth
        password = conn.password.get_secret_value() if conn.password else ""
        client_secret = conn.client_secret.get_secret_value() if conn.client_secret else ""
        self._secret = client_secret if conn.uses_oauth else password
        self._missing = self._missing_secret(conn.auth, password, client_secret)
        self._client = basic_auth_client(conn, conn.url, conn.username, password, transport)
        self.oauth: OAuth | None = None
        if conn.uses_oauth:
            grant_password = conn.auth == "oauth_password"
            self.oauth = OAuth(
                provider="ServiceNow",
                connection=self.name,
                token_url=f"{conn.url}/oauth_token.do",
                client_id=conn.client_id or "",
                client_secret=client_secret,
                username=conn.username if grant_password else None,
                password=password if grant_password else None,
                body="form",
            )
            self._client.auth = self.oauth
        self._loop = RequestLoop(
            self._client,
            SERVICENOW,
            connection=self.name,
            url=conn.url,
            timeout=conn.timeout,
            secret=password or client_secret,
            retry=retry,
        )

    @staticmethod
    def _missing_secret(auth: str, password: str, client_secret: str) -> str | None:
        """What the connection lacks to authenticate in its mode, as a message; None: nothing."""
        if auth in ("basic", "oauth_password") and not password:
            return "No password configured for this connection"
        if auth != "basic" and not client_secret:
            return "No client secret configured for this connection"
        return None

    def __repr__(self) -> str:
        return (
            f"ServiceNowClient(name={self.name!r}, url={self.url!r}, user={self.username!r}, "
            f"auth={self.auth_mode!r})"
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- the protocol --------------------------------------------------------------------

    async def check(self) -> str:
        await self._request(
            "GET", self._path(), params={"sysparm_limit": "1", "sysparm_fields": "sys_id"}
        )
        return self.username

    async def basic_auth_restriction(self) -> BasicAuthRestriction:
        """The instance's basic-auth restriction (``sys_properties``
        ``glide.authenticate.basic_auth.restriction.*``), when this account may read it."""
        query = "nameIN" + ",".join(f"{RESTRICTION}.{key}" for key in RESTRICTION_KEYS)
        try:
            rows = await self._rows("sys_properties", query, "name,value", limit=10)
        except (AuthError, NotFoundError) as exc:
            return BasicAuthRestriction(readable=False, reason=exc.plain())
        if not rows:  # an older release, or the rows hidden from this account by ACLs
            reason = "none of its properties is visible to this account"
            return BasicAuthRestriction(readable=False, reason=reason)
        values = {
            str(row.get("name", "")).removeprefix(f"{RESTRICTION}."): str(row.get("value", ""))
            for row in rows
        }
        return BasicAuthRestriction(
            readable=True,
            active=_flag(values.get("active")),
            enforce=_flag(values.get("enforce")),
            enforcement_date=values.get("enforcement_date", "").strip() or None,
        )

    async def create_ticket(self, anomaly: Anomaly, fields: TicketFields) -> Ticket:
        body = await self._incident_body(anomaly, fields)
        row = await self._answer(Incident, "POST", self._path(), params=_read_params(), json=body)
        return self._ticket(row)

    async def find_created(self, anomaly_id: int) -> list[Ticket]:
        query = (
            f"correlation_id={anomaly_id}^correlation_display={CORRELATION_DISPLAY}"
            "^ORDERBYsys_created_on"
        )
        return await self._query(query, limit=50)

    async def get_ticket(self, key: str) -> Ticket:
        key = key.strip()
        if SYS_ID.match(key):
            row = await self._answer(Incident, "GET", self._path(key), params=_read_params())
            return self._ticket(row)
        _refuse_caret(key, "key", self.name)
        found = await self._query(f"number={key.upper()}", limit=1)
        if not found:
            raise NotFoundError(f"No {self.table} {key}", status=None, connection=self.name)
        return found[0]

    async def search(self, text: str, limit: int = 20) -> list[Ticket]:
        text = " ".join(text.split())
        _refuse_caret(text, "q", self.name)
        query = f"numberLIKE{text}^ORshort_descriptionLIKE{text}^" if text else ""
        return await self._query(query + "ORDERBYDESCsys_updated_on", limit=limit)

    async def add_note(self, ticket: TicketRef, text: str, tag: NoteTag | None = None) -> None:
        """A work note; it cannot carry ``tag`` (journal entries have no metadata we can set)."""
        sys_id = ticket.id or (await self.get_ticket(ticket.key)).id
        params = {"sysparm_fields": "sys_id"}
        await self._request("PATCH", self._path(sys_id), params=params, json={"work_notes": text})

    async def note_baseline(self, ticket: TicketRef, text: str) -> int:
        return await self._identical_notes(ticket, text)

    async def has_note(self, ticket: TicketRef, text: str, tag: NoteTag) -> bool:
        """Landed iff the ticket now has more work notes with this text than before the send.

        ``tag.baseline`` was counted before this job's first send when an earlier job on this
        ticket had the same text (else 0: any identical note is this one). What remains: a person
        typing exactly this text on the incident between the count and the check makes a lost
        note look landed.
        """
        return await self._identical_notes(ticket, text) > tag.baseline

    async def _identical_notes(self, ticket: TicketRef, text: str) -> int:
        """Work notes on the incident whose text is ``text`` (among the newest NOTE_LOOKBACK).

        The comparison is ours, exact: the instance's ``value=`` is case-insensitive on most
        databases and ``^`` in the text cannot be put in an encoded query.
        """
        sys_id = ticket.id or (await self.get_ticket(ticket.key)).id
        query = f"element_id={sys_id}^element=work_notes^ORDERBYDESCsys_created_on"
        rows = await self._rows("sys_journal_field", query, "value", limit=NOTE_LOOKBACK)
        wanted = text.strip()
        return sum(str(row.get("value", "")).strip() == wanted for row in rows)

    async def link(self, anomaly: Anomaly, key: str) -> Ticket:
        ticket = await self.get_ticket(key)
        block = anomaly_block(anomaly, self.platform.name, self.platform.url)
        text = block_to_text(block)
        current = str(ticket.extra.get("description") or "")
        if text in current:
            return ticket  # already linked: the description carries the block
        note = link_note(anomaly.id, block.link, self.platform.name)
        body: dict[str, str] = {"work_notes": note}
        combined = f"{current.rstrip()}\n\n{text}" if current.strip() else text
        if len(combined) <= DESCRIPTION_MAX:
            body["description"] = combined
        else:  # the instance would cut the block off; the journal has room for it
            body["work_notes"] = f"{note}\n\n{text}"
        row = await self._answer(
            Incident, "PATCH", self._path(ticket.id), params=_read_params(), json=body
        )
        return self._ticket(row)

    async def options(self) -> dict[str, list[Option]]:
        choices, groups, users = await asyncio.gather(
            self._rows(
                "sys_choice",
                f"name={self.table}^elementIN{','.join(CHOICE_FIELDS)}^inactive=false"
                "^language=en^ORDERBYelement^ORDERBYsequence",
                "element,value,label,dependent_value,sequence",
            ),
            self._rows("sys_user_group", "active=true^ORDERBYname", "sys_id,name"),
            self._rows("sys_user", "active=true^ORDERBYname", "sys_id,user_name,name"),
        )
        out: dict[str, list[Option]] = {name: [] for name in CHOICE_FIELDS}
        for row in choices:
            element, option = row["element"], Option(row["value"], row["label"])
            if element == "subcategory" and row.get("dependent_value"):
                out.setdefault(f"subcategory:{row['dependent_value']}", []).append(option)
            if option not in out.setdefault(element, []):
                out[element].append(option)
        out["assignment_group"] = [Option(g["sys_id"], g["name"]) for g in groups]
        people = [Option(u["sys_id"], f"{u['name']} ({u['user_name']})") for u in users]
        out["assigned_to"] = people
        out["caller_id"] = list(people)
        return out

    # -- two-way ---------------------------------------------------------------------------

    async def account(self) -> str:
        """The configured user's ``user_name``: what ``sys_created_by``/``sys_updated_by`` say."""
        return self.username

    async def changes(self, tickets: list[TicketRef], since: str | None) -> list[TicketChange]:
        """Incidents among ``tickets`` updated since ``since`` (re-read ``OVERLAP`` further
        back), with their work notes and comments created since ``since``."""
        after = _since(since, self.name)
        ids = [t.id for t in tickets if SYS_ID.match(t.id)]
        for ref in tickets:
            if not SYS_ID.match(ref.id) and ref.key:
                try:
                    ids.append((await self.get_ticket(ref.key)).id)
                except NotFoundError:
                    log.info("%s: %s no longer exists; left out of the poll", self.name, ref.key)
        ids = list(dict.fromkeys(ids))
        rows: list[Incident] = []
        for start in range(0, len(ids), CHANGES_BATCH):
            chunk = ids[start : start + CHANGES_BATCH]
            query = f"sys_idIN{','.join(chunk)}"
            if after is not None:
                query += f"^sys_updated_on>={_stamp(after - OVERLAP)}"
            params = {
                "sysparm_query": query + "^ORDERBYsys_updated_on",
                "sysparm_fields": CHANGE_FIELDS,
                "sysparm_display_value": "all",
                "sysparm_exclude_reference_link": "true",
                "sysparm_limit": str(len(chunk)),
            }
            rows.extend(await self._answer(list[Incident], "GET", self._path(), params=params))
        if not rows:
            return []
        notes = await self._journal_since([_value(row.get("sys_id")) for row in rows], after)
        return [self._change(row, notes.get(_value(row.get("sys_id")), [])) for row in rows]

    async def _journal_since(
        self, ids: list[str], after: datetime | None
    ) -> dict[str, list[TicketComment]]:
        """Work notes and additional comments of the records, created since ``after``, oldest
        first, by record sys_id."""
        out: dict[str, list[TicketComment]] = {}
        seen: set[str] = set()
        mine = self.username.casefold()
        for start in range(0, len(ids), CHANGES_BATCH):
            query = f"element_idIN{','.join(ids[start : start + CHANGES_BATCH])}"
            query += "^elementINwork_notes,comments"
            if after is not None:
                query += f"^sys_created_on>={_stamp(after)}"
            offset = 0
            while True:
                params = {
                    "sysparm_query": query + "^ORDERBYsys_created_on",
                    "sysparm_fields": JOURNAL_FIELDS,
                    "sysparm_display_value": "false",
                    "sysparm_exclude_reference_link": "true",
                    "sysparm_limit": str(JOURNAL_PAGE),
                    "sysparm_offset": str(offset),
                }
                page = await self._answer(
                    list[ServiceNowRow],
                    "GET",
                    self._path(table="sys_journal_field"),
                    params=params,
                )
                for row in page:
                    sys_id, who = row.get("sys_id", ""), row.get("sys_created_by", "")
                    if sys_id in seen:
                        continue  # a page boundary moved under a new entry
                    seen.add(sys_id)
                    stamp = row.get("sys_created_on", "")
                    out.setdefault(row.get("element_id", ""), []).append(
                        TicketComment(
                            id=sys_id,
                            author_id=who,
                            author=who,
                            text=row.get("value", ""),
                            created=_iso_z(stamp) or stamp,
                            ours=who.casefold() == mine,
                        )
                    )
                offset += len(page)
                if len(page) < JOURNAL_PAGE:
                    break
        return out

    def _change(self, row: Incident, comments: list[TicketComment]) -> TicketChange:
        ticket = self._ticket(row)
        stamp = _value(row.get("sys_updated_on"))
        ticket = replace(
            ticket,
            updated=_iso_z(stamp) or ticket.updated,
            extra={k: v for k, v in ticket.extra.items() if v not in ("", None)},
        )
        state = _value(row.get("state"))
        return TicketChange(
            ticket=ticket,
            done=state in RESOLVED,
            state_by=_value(row.get("sys_updated_by")) or None,
            comments=tuple(comments),
        )

    async def move_to_done(self, ticket: TicketRef, note: str, tag: NoteTag) -> str | None:
        """State 6 (Resolved) with the configured close code and ``note`` as close notes; never 7
        (Closed: the instance closes a resolved incident itself, and a closed one is final)."""
        row = await self._state_row(ticket)
        number, state = row.get("number") or ticket.key, row.get("state", "")
        if state in RESOLVED:
            return f"{number} is already {STATE_NAMES.get(state, state)}: left alone"
        code = await self._close_code()
        body = {
            "state": "6",
            "close_code": code,
            "close_notes": note.strip() or DEFAULT_CLOSE_NOTES,
        }
        try:
            after = await self._patch_state(row.get("sys_id") or ticket.id, body)
        except ValidationError as exc:
            if exc.status != 403:
                raise
            _, _, wanted = " ".join(exc.message.split()).partition("mandatory:")
            problem = (
                f"{number} cannot be resolved: the instance's data policy requires "
                f"{wanted.strip() or 'more fields'} (close code sent: {code!r})"
            )
            raise ValidationError(
                problem, field_errors=exc.field_errors, status=exc.status, connection=self.name
            ) from exc
        self._check_state(number, after, "6")
        return None

    async def reopen(self, ticket: TicketRef, note: str, tag: NoteTag) -> str | None:
        """State 2 (In Progress) with ``note`` as a work note, from Resolved only."""
        row = await self._state_row(ticket)
        number, state = row.get("number") or ticket.key, row.get("state", "")
        if state == "7":
            return f"{number} is Closed: a closed incident cannot be reopened; left alone"
        if state != "6":
            return f"{number} is not resolved ({STATE_NAMES.get(state, state)}): left alone"
        body = {"state": "2"}
        if note.strip():
            body["work_notes"] = note
        self._check_state(
            number, await self._patch_state(row.get("sys_id") or ticket.id, body), "2"
        )
        return None

    async def _state_row(self, ticket: TicketRef) -> ServiceNowRow:
        """sys_id, number and state (stored values) of the ticket's record."""
        params = {
            "sysparm_fields": STATE_FIELDS,
            "sysparm_display_value": "false",
            "sysparm_exclude_reference_link": "true",
        }
        if SYS_ID.match(ticket.id):
            return await self._answer(ServiceNowRow, "GET", self._path(ticket.id), params=params)
        key = ticket.key.strip().upper()
        _refuse_caret(key, "key", self.name)
        params |= {"sysparm_query": f"number={key}", "sysparm_limit": "1"}
        rows = await self._answer(list[ServiceNowRow], "GET", self._path(), params=params)
        if not rows:
            raise NotFoundError(f"No {self.table} {key}", status=None, connection=self.name)
        return rows[0]

    async def _patch_state(self, sys_id: str, body: dict[str, str]) -> ServiceNowRow:
        params = {
            "sysparm_fields": STATE_FIELDS,
            "sysparm_display_value": "false",
            "sysparm_exclude_reference_link": "true",
        }
        return await self._answer(
            ServiceNowRow, "PATCH", self._path(sys_id), params=params, json=body
        )

    def _check_state(self, number: str, row: ServiceNowRow, wanted: str) -> None:
        """A business rule may refuse a state change without an error: the answer tells."""
        state = row.get("state", "")
        if state != wanted:
            problem = (
                f"{number} stayed {STATE_NAMES.get(state, state or 'unchanged')} "
                f"(asked for {STATE_NAMES[wanted]}): a business rule on the instance refused it"
            )
            raise ValidationError(problem, field_errors={"state": problem}, connection=self.name)

    async def _close_code(self) -> str:
        """The configured close code as the instance stores it (a label is taken too); one the
        instance does not offer is refused here, as the instance would drop it silently."""
        wanted = self.close_code.strip()
        try:
            rows = await self._rows(
                "sys_choice",
                f"name={self.table}^element=close_code^inactive=false^ORDERBYsequence",
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
        valid = ", ".join(dict.fromkeys(row.get("value", "") for row in rows if row.get("value")))
        problem = f"close code {wanted!r} is not one of the instance's: {valid} (set close_code)"
        raise ValidationError(problem, field_errors={"close_code": problem}, connection=self.name)

    # -- building requests ---------------------------------------------------------------

    async def _incident_body(self, anomaly: Anomaly, fields: TicketFields) -> dict[str, str]:
        values: TicketFields = {
            FIELD_ALIASES.get(k, k): v for k, v in fields.items() if v not in (None, "")
        }
        unknown = sorted(set(values) - WRITABLE)
        if unknown:
            errors = {name: "not a field Anomaly Desk sets on an incident" for name in unknown}
            raise ValidationError(
                f"Unknown field(s): {', '.join(unknown)}",
                field_errors=errors,
                connection=self.name,
            )
        block = anomaly_block(anomaly, self.platform.name, self.platform.url)
        body = {name: str(values[name]).strip() for name in TEXT_FIELDS if name in values}
        body["short_description"] = _clip(body.get("short_description", ""), SHORT_DESCRIPTION_MAX)
        body["description"] = _description(body.get("description", ""), block_to_text(block))
        body.update(self._levels(values))
        if "assignment_group" in values:
            body["assignment_group"] = await self._resolve_group(str(values["assignment_group"]))
        for name in ("assigned_to", "caller_id"):
            if name in values:
                body[name] = await self._resolve_user(name, str(values[name]))
        body["correlation_id"] = str(anomaly.id)
        body["correlation_display"] = CORRELATION_DISPLAY
        return body

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

    async def _resolve_group(self, value: str) -> str:
        if SYS_ID.match(value):
            return value
        _refuse_caret(value, "assignment_group", self.name)
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
        _refuse_caret(value, field, self.name)
        rows = await self._rows(
            "sys_user", f"user_name={value}^ORname={value}^ORemail={value}", "sys_id", limit=2
        )
        if len(rows) != 1:
            message = f"No user {value!r}" if not rows else f"Several users match {value!r}"
            raise ValidationError(message, field_errors={field: message}, connection=self.name)
        return rows[0]["sys_id"]

    # -- reading -------------------------------------------------------------------------

    def _path(self, sys_id: str | None = None, table: str | None = None) -> str:
        path = f"/api/now/table/{table or self.table}"
        return f"{path}/{sys_id}" if sys_id else path

    async def _query(self, query: str, limit: int) -> list[Ticket]:
        params = {**_read_params(), "sysparm_query": query, "sysparm_limit": str(limit)}
        rows = await self._answer(list[Incident], "GET", self._path(), params=params)
        return [self._ticket(row) for row in rows]

    async def _rows(
        self, table: str, query: str, fields: str, limit: int = 1000
    ) -> list[ServiceNowRow]:
        params = {
            "sysparm_query": query,
            "sysparm_fields": fields,
            "sysparm_limit": str(limit),
            "sysparm_display_value": "false",
            "sysparm_exclude_reference_link": "true",
        }
        return await self._answer(
            list[ServiceNowRow], "GET", self._path(table=table), params=params
        )

    def _ticket(self, row: Incident) -> Ticket:
        sys_id, state = _value(row.get("sys_id")), _value(row.get("state"))
        extra: dict[str, JsonValue] = {"state_code": state}
        for name in CHOICE_FIELDS:
            extra[name], extra[f"{name}_label"] = _value(row.get(name)), _shown(row.get(name))
        for ref in REFERENCE_FIELDS:
            extra[ref], extra[f"{ref}_name"] = _value(row.get(ref)), _shown(row.get(ref))
        extra["description"] = _value(row.get("description"))
        extra["correlation_id"] = _value(row.get("correlation_id"))
        return Ticket(
            key=_value(row.get("number")),
            id=sys_id,
            url=f"{self.url}/nav_to.do?uri={quote(f'{self.table}.do?sys_id={sys_id}', safe='')}",
            summary=_value(row.get("short_description")),
            state=STATE_NAMES.get(state) or _shown(row.get("state")) or state,
            state_category=None,
            updated=_iso(_value(row.get("sys_updated_on"))),
            extra=extra,
        )

    # -- HTTP ----------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: JsonBody = None,
    ) -> JsonValue:
        """The ``result`` of one Table API call through the shared loop (reads retry)."""
        if self._missing:
            raise AuthError(self._missing, connection=self.name)
        return await self._loop.request(method, path, params=params, json=json)

    async def _answer(
        self,
        shape: type[T],
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: JsonBody = None,
    ) -> T:
        """The ``result`` read as ``shape`` (see ``payloads``): the one point where the Table
        API's JSON becomes typed. A cast, not a check: the callers keep their guards."""
        return cast(T, await self._request(method, path, params=params, json=json))


class ServiceNowDialect:
    """How the Table API answers: ``{"result": ...}``; errors as ``{"error": {message, detail}}``,
    a data policy's refusal as a 403 naming the mandatory fields."""

    name = "ServiceNow"

    def error_text(self, response: httpx.Response) -> ErrorText:
        message, detail = _error_text(response)
        text = f"{message}: {detail}" if detail and detail != message else message
        if response.status_code == 403 and "Data Policy Exception" in (detail or ""):
            return ErrorText(text, _mandatory(detail or ""), refused_fields=True)
        return ErrorText(text)

    def decode(self, response: httpx.Response) -> JsonValue:
        """The ``result`` of a Table API answer; anything else is not a working instance."""
        try:
            result: JsonValue = response.json()["result"]
        except (ValueError, KeyError, TypeError):
            kind = response.headers.get("content-type", "unknown content").split(";")[0]
            raise BadAnswer(
                f"Expected a Table API answer, got {kind} (is the instance asleep or behind SSO?)"
            ) from None
        return result


SERVICENOW = ServiceNowDialect()


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


def _read_params() -> dict[str, str]:
    return {
        "sysparm_display_value": "all",
        "sysparm_exclude_reference_link": "true",
        "sysparm_fields": READ_FIELDS,
    }


def _refuse_caret(text: str, field: str, connection: str) -> None:
    """``^`` separates encoded-query terms and has no escape: user text must not carry one."""
    if "^" in text:
        message = "'^' cannot be used in a ServiceNow query"
        raise ValidationError(message, field_errors={field: message}, connection=connection)


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


def _value(item: ServiceNowField | None) -> str:
    """The stored value of a field read with ``sysparm_display_value=all`` (or a bare value)."""
    return str(item.get("value", "")) if isinstance(item, dict) else str(item or "")


def _shown(item: ServiceNowField | None) -> str:
    """What people see of a field (a choice's label, a reference's name)."""
    return str(item.get("display_value", "")) if isinstance(item, dict) else str(item or "")


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - len(TRUNCATED)] + TRUNCATED


def _description(user_text: str, block_text: str) -> str:
    """User text first, then the anomaly block; only the user text is ever shortened."""
    if not user_text:
        return block_text
    room = DESCRIPTION_MAX - len(block_text) - 2
    if len(user_text) > room:
        user_text = user_text[: max(room - len(TRUNCATED), 0)] + TRUNCATED
    return f"{user_text}\n\n{block_text}"


def _error_text(response: httpx.Response) -> tuple[str, str | None]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        message = str(error.get("message") or response.reason_phrase)
        detail = error.get("detail")
        return message, str(detail) if detail else None
    return response.reason_phrase or f"HTTP {response.status_code}", None


def _mandatory(detail: str) -> dict[str, str]:
    """``The following fields are mandatory: Short description`` → ``{"short_description": …}``."""
    _, _, labels = detail.partition("mandatory:")
    out = {}
    for label in labels.split(","):
        label = label.strip()
        if label:
            out[LABEL_TO_FIELD.get(label.lower(), label.lower().replace(" ", "_"))] = "mandatory"
    return out


def _since(since: str | None, connection: str) -> datetime | None:
    """The cursor of ``changes``: None, or an ISO time (a time without an offset is UTC)."""
    if since is None:
        return None
    try:
        when = datetime.fromisoformat(since.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"not an ISO time: {since!r}", connection=connection) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _stamp(when: datetime) -> str:
    """An encoded query's date-time: UTC ``YYYY-MM-DD HH:MM:SS`` (floored to the second)."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _iso_z(stamp: str) -> str | None:
    """An instance time (UTC ``YYYY-MM-DD HH:MM:SS``) as ``YYYY-MM-DDTHH:MM:SSZ``."""
    try:
        return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None


def _iso(stamp: str) -> str | None:
    """Instance times are UTC ``YYYY-MM-DD HH:MM:SS``."""
    if not stamp:
        return None
    try:
        return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).isoformat()
    except ValueError:
        return stamp
