"""ServiceNow tickets (incidents, problems, changes, any table extending ``task``) through the
Table API, behind the ``Provider`` protocol.

One ``httpx.AsyncClient`` per connection, driven by the shared loop of ``http``: reads retry
transient failures a couple of times; writes never do, and a write that got no answer is reported
``ambiguous`` so the sync engine looks for its effect (``find_created``) before repeating it. The
password lives only in the HTTP client's auth.

Two-way sync polls the table (``sys_updated_on``) and ``sys_journal_field`` (work notes and
additional comments, ``sys_created_by`` = the writer's user_name: ours when it is the configured
user's), resolves with state 6 and a close code read from ``sys_choice`` (never 7, Closed), and
reopens to state 2; other tables by their own states (``servicenow_tables``). A ticket's table
comes with its ``TicketRef`` (the link remembers it); without one, the number's prefix or the
connection's ``table``. The create form is read from ``sys_dictionary`` (``servicenow_fields``).

The client is assembled from parts named for what they hold: ``servicenow_base`` (HTTP, rows,
a row as a ticket), ``servicenow_people``, ``servicenow_forms``, ``servicenow_create``,
``servicenow_notes``, and for two-way sync ``servicenow_changes`` and ``servicenow_states``.
"""

from __future__ import annotations

from dataclasses import dataclass

from anomaly_desk.core.formatting.block import anomaly_block
from anomaly_desk.core.formatting.notes import link_note
from anomaly_desk.core.formatting.plain import block_to_text, servicenow_text
from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.providers.base import ProviderKind, Ticket
from anomaly_desk.core.providers.errors import AuthError, NotFoundError, ValidationError
from anomaly_desk.core.providers.payloads import Incident
from anomaly_desk.core.providers.servicenow_base import SYS_ID, is_true, read_params, refuse_caret
from anomaly_desk.core.providers.servicenow_changes import ServiceNowChanges
from anomaly_desk.core.providers.servicenow_create import (
    CORRELATION_DISPLAY,
    DESCRIPTION_MAX,
    ServiceNowCreate,
)
from anomaly_desk.core.providers.servicenow_create import LEVEL_WORDS as LEVEL_WORDS
from anomaly_desk.core.providers.servicenow_create import PRIORITY_MATRIX as PRIORITY_MATRIX
from anomaly_desk.core.providers.servicenow_create import PRIORITY_WORDS as PRIORITY_WORDS
from anomaly_desk.core.providers.servicenow_create import TRUNCATED as TRUNCATED
from anomaly_desk.core.providers.servicenow_notes import ServiceNowNotes
from anomaly_desk.core.providers.servicenow_states import ServiceNowStates
from anomaly_desk.core.providers.servicenow_tables import KNOWN, table_of_key

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


class ServiceNowClient(ServiceNowCreate, ServiceNowChanges, ServiceNowStates, ServiceNowNotes):
    """A ServiceNow instance as a ``Provider``: incidents, work notes and drop-down choices."""

    kind: ProviderKind = "servicenow"

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
            active=is_true(values.get("active")),
            enforce=is_true(values.get("enforce")),
            enforcement_date=values.get("enforcement_date", "").strip() or None,
        )

    async def find_created(self, anomaly_id: int) -> list[Ticket]:
        """On the table of this anomaly's unconfirmed create, else on every offered table."""
        query = (
            f"correlation_id={anomaly_id}^correlation_display={CORRELATION_DISPLAY}"
            "^ORDERBYsys_created_on"
        )
        remembered = self._creating.get(anomaly_id)
        found: list[Ticket] = []
        for table in [remembered] if remembered else self.tables:
            try:
                found += await self._query(query, limit=50, table=table)
            except (NotFoundError, ValidationError):
                if table == self.table or remembered:
                    raise
        return found

    async def get_ticket(self, key: str) -> Ticket:
        key = key.strip()
        if SYS_ID.match(key):
            row = await self._answer(Incident, "GET", self._path(key), params=read_params())
            return self._ticket(row, self.table)
        refuse_caret(key, "key", self.name)
        table = self._table_of_key(key)
        # a number with a prefix of no known table (a custom table's): any table offered
        known = table_of_key(key, [self.table, *self.tables, *KNOWN])
        for candidate in [table] if known else list(dict.fromkeys([table, *self.tables])):
            found = await self._query(f"number={key.upper()}", limit=1, table=candidate)
            if found:
                return found[0]
        raise NotFoundError(f"No {table} {key}", status=None, connection=self.name)

    async def search(self, text: str, limit: int = 20) -> list[Ticket]:
        text = " ".join(text.split())
        refuse_caret(text, "q", self.name)
        query = f"numberLIKE{text}^ORshort_descriptionLIKE{text}^" if text else ""
        table = self._table_of_key(text) if text else self.table
        return await self._query(query + "ORDERBYDESCsys_updated_on", limit=limit, table=table)

    async def link(self, anomaly: Anomaly, key: str) -> Ticket:
        ticket = await self.get_ticket(key)
        block = anomaly_block(anomaly, self.platform.name, self.platform.url)
        text = servicenow_text(block_to_text(block))  # as the description holds it once sent
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
        table = ticket.table or self.table
        row = await self._answer(
            Incident, "PATCH", self._path(ticket.id, table), params=read_params(), json=body
        )
        return self._ticket(row, table)
