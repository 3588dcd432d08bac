"""The one small protocol every ticketing provider client implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeAlias

from pydantic import JsonValue

from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.views import CreateFormView, TicketTypeView, UserView

ProviderKind = Literal["jira", "servicenow"]

# The create form's values, by provider field name, as the operator sent them (JSON): each client
# reads the ones it knows and narrows them (``str(...)``, ``isinstance``) where it needs a type.
TicketFields: TypeAlias = dict[str, JsonValue]


@dataclass(frozen=True, slots=True)
class TicketRef:
    """Enough to address a ticket: its human key and the provider's own id."""

    key: str  # DQ-12 / INC0010001
    id: str  # Jira issue id / ServiceNow sys_id
    # ServiceNow: the record's table ("problem", "u_dq_task"); None: the connection's default
    table: str | None = field(default=None, kw_only=True, compare=False)


@dataclass(frozen=True, slots=True)
class Ticket(TicketRef):
    """A ticket as read back from the provider."""

    url: str = ""  # browse URL for people
    summary: str = ""
    state: str = ""  # Jira status name / ServiceNow state name ("New", "In Progress"…)
    state_category: str | None = None  # Jira statusCategory name; ServiceNow: None
    updated: str | None = None
    # what else the provider said, flat: Jira project/issuetype/priority/assignee/labels/created;
    # ServiceNow state_code, priority and priority_label, assigned_to and assigned_to_name, …
    extra: dict[str, JsonValue] = field(default_factory=dict, compare=False)
    # what the create could not do as asked, for the operator: "caller left empty: 2 active
    # users have ana@example.com", "reporter not settable in OPS; ana added as a watcher"
    warnings: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class TicketText:
    """A ticket's words when a template overrides the defaults (None keeps the default)."""

    title: str | None = None  # the summary / short_description
    description: str | None = None  # replaces the anomaly block; plain text, blank-line paragraphs


@dataclass(frozen=True, slots=True)
class NoteTag:
    """Which outbox job a note belongs to, so a retry recognises its own earlier attempt.

    Matching on the text alone would take an older, identical note (the operator wrote
    "rerun scheduled" twice) for this job's ambiguous attempt and lose the second note.
    """

    nonce: str  # unique per job; Jira stores it on the comment as a comment property
    baseline: int = 0  # ServiceNow: identical work notes the ticket had before this job's send
    legacy: bool = False  # a job stored before jobs had a nonce: its earlier attempt is unmarked


@dataclass(frozen=True, slots=True)
class TicketComment:
    """A comment (Jira) or work note / additional comment (ServiceNow) read from a ticket."""

    id: str  # the provider's id (Jira comment id, sys_journal_field sys_id)
    author_id: str  # Jira accountId / ServiceNow user_name: who wrote it
    author: str  # for people: an email or a display name
    text: str
    created: str  # ISO 8601 UTC
    ours: bool = False  # written by this integration (a Jira comment property, our note shape)


@dataclass(frozen=True, slots=True)
class TicketChange:
    """What a ticket looks like now and what happened on it since the cursor."""

    ticket: Ticket  # state, state_category, updated (the next cursor)
    done: bool  # Jira: status category done; ServiceNow: state Resolved (6) or Closed (7)
    state_by: str | None = None  # who made the latest state change (accountId / user_name)
    comments: tuple[TicketComment, ...] = ()  # created since the cursor, oldest first


@dataclass(frozen=True, slots=True)
class Option:
    """One drop-down value: ``value`` is what the API takes, ``label`` what a person reads."""

    value: str
    label: str


class Provider(Protocol):
    """A connection to one Jira Cloud site or ServiceNow instance."""

    name: str  # the connection's configured name
    kind: ProviderKind

    async def check(self) -> str:
        """Prove the credential works; returns who we are, e.g. ``bot@acme.com``."""
        ...

    async def create_ticket(
        self,
        anomaly: Anomaly,
        fields: TicketFields,
        *,
        text: TicketText | None = None,
        operator_email: str | None = None,
    ) -> Ticket:
        """Create a ticket for the anomaly; the anomaly block is appended to the description.

        ``fields`` may name the ticket type (Jira ``issuetype``, ServiceNow ``table``); without
        it the connection's default. ``operator_email``: who the ticket is raised for (ServiceNow
        ``caller_id``, Jira reporter or else a watcher); what could not be done is in
        ``Ticket.warnings``. Over-long text is truncated with a marker, never refused."""
        ...

    # -- ticket types, forms and people (issue #15)

    async def ticket_types(self) -> list[TicketTypeView]:
        """Jira: the project's issue types; ServiceNow: the task tables this connection offers."""
        ...

    async def create_form(self, ticket_type: str | None = None) -> CreateFormView:
        """The create form's fields for a ticket type (None: the connection's default), with
        their kinds, choices and required flags, read from the provider."""
        ...

    async def find_users(self, query: str, limit: int = 20) -> list[UserView]:
        """People matching ``query`` (name or email), for assignee fields."""
        ...

    async def find_created(self, anomaly_id: int) -> list[Ticket]:
        """Tickets this integration created for the anomaly (recovery after an ambiguous create)."""
        ...

    async def get_ticket(self, key: str) -> Ticket:
        """Read one ticket by key (``DQ-12``, ``INC0010001``) or provider id."""
        ...

    async def search(self, text: str, limit: int = 20) -> list[Ticket]:
        """Tickets whose key or summary matches ``text``, most recently updated first."""
        ...

    async def add_note(self, ticket: TicketRef, text: str, tag: NoteTag | None = None) -> None:
        """A Jira comment / ServiceNow work note. Never changes the ticket's state.

        With ``tag``, the note is written so that ``has_note`` can later tell it apart from any
        other note with the same text (Jira: a comment property carrying ``tag.nonce``).
        """
        ...

    async def note_baseline(self, ticket: TicketRef, text: str) -> int:
        """Before a job's send: how many notes identical to ``text`` the ticket carries now.

        For a provider that cannot mark a note as ours (ServiceNow) ``has_note`` compares against
        this count. A provider that marks its notes (Jira) answers 0 without a request. The sync
        worker asks only when an earlier job on the same ticket had the same text.
        """
        ...

    async def has_note(self, ticket: TicketRef, text: str, tag: NoteTag) -> bool:
        """Whether this job's own note (``tag``) is already on the ticket: checked before
        re-sending a note whose earlier attempt may have landed (a crash or a timeout mid-request).
        An older note with the same text is not this job's note."""
        ...

    async def link(self, anomaly: Anomaly, key: str) -> Ticket:
        """Attach an existing ticket to the anomaly (ServiceNow also records it on the incident)."""
        ...

    async def options(self) -> dict[str, list[Option]]:
        """Drop-down values for the create form, keyed by provider field name."""
        ...

    # -- two-way (issue #13): reading changes back, moving a ticket's workflow when asked

    async def account(self) -> str:
        """The integration's own account (Jira accountId, ServiceNow user_name): changes it
        made are ours and never come back as a person's."""
        ...

    async def changes(self, tickets: list[TicketRef], since: str | None) -> list[TicketChange]:
        """The tickets among ``tickets`` updated since ``since`` (ISO UTC; None: all of them),
        with their comments created since then; tickets not changed are left out."""
        ...

    async def move_to_done(self, ticket: TicketRef, note: str, tag: NoteTag) -> str | None:
        """Jira: take the transition into the done category (resolution when its screen has
        one); ServiceNow: state 6 with the close code and ``note`` as close notes. A ticket
        already done is left alone (the answer says so); the change is tagged as ours."""
        ...

    async def reopen(self, ticket: TicketRef, note: str, tag: NoteTag) -> str | None:
        """Back out of done (Jira: a transition into new/indeterminate; ServiceNow: state 2)."""
        ...

    async def aclose(self) -> None: ...
