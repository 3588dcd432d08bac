"""The words core uses, defined once: statuses, job states and kinds, outcomes, event names.

Every one is a ``StrEnum``: a member *is* its string, so stored JSON, event payloads and
comparisons with plain strings read exactly as before these names existed.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """An anomaly's status as the platform names it (one added later is kept as a plain str)."""

    ACTIVE = "Active"
    ACKNOWLEDGED = "Acknowledged"
    RESOLVED = "Resolved"
    DUPLICATE = "Duplicate"
    INVALID = "Invalid"
    DISCARDED = "Discarded"


OPEN = frozenset({Status.ACTIVE, Status.ACKNOWLEDGED})
ARCHIVED = frozenset({Status.RESOLVED, Status.DUPLICATE, Status.INVALID, Status.DISCARDED})


class HistoryKind(StrEnum):
    """What one line of an anomaly's history records."""

    RECEIVED = "received"
    STATUS = "status"
    COMMENT = "comment"
    TICKET_CREATED = "ticket created"
    TICKET_LINKED = "ticket linked"
    TICKET_UNLINKED = "ticket unlinked"
    STALE = "stale"
    IMPORTED = "imported"  # arrived, or was updated, by an import from the platform's API
    ENRICHED = "enriched"  # completed from the platform's API


class LinkOrigin(StrEnum):
    """How a ticket came to be linked: made here, or an existing one attached."""

    CREATED = "created"
    LINKED = "linked"


class JobKind(StrEnum):
    """What an outbox job puts on its ticket (or, on the platform's queue, does there)."""

    STATUS = "status"
    COMMENT = "comment"
    ENRICH = "enrich"  # platform only: complete a thin anomaly from the platform's API
    TRANSITION = "transition"  # move the ticket to done (on_anomaly_archived = "transition")
    REOPEN = "reopen"  # move a done ticket back (on_recurrence = "reopen")
    NEW_TICKET = "new_ticket"  # create a ticket for a recurrence (on_recurrence = "new_ticket")


class JobState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    DEAD = "dead"  # refused for good; waits for a person to retry it
    CANCELLED = "cancelled"  # its link was removed before it was delivered


WAITING = frozenset({JobState.PENDING, JobState.DEAD})  # still in their ticket's queue
FINISHED = frozenset({JobState.DONE, JobState.CANCELLED})


class SyncOutcome(StrEnum):
    """How one delivery attempt of a job ended (a sync-log entry's ``outcome``)."""

    DONE = "done"
    RETRY = "retry"
    DEAD = "dead"
    CANCELLED = "cancelled"


class IngestOutcome(StrEnum):
    """What a delivery did to one anomaly."""

    CREATED = "created"
    UPDATED = "updated"
    STATUS = "status"  # updated, and its status changed
    STALE = "stale"  # older than the newest state applied: recorded, nothing else changed
    UNCHANGED = "unchanged"


class EventName(StrEnum):
    """The live events the bus carries (``EventBus.publish``)."""

    ANOMALY_CREATED = "anomaly.created"
    ANOMALY_UPDATED = "anomaly.updated"
    LINK_CREATED = "link.created"
    LINK_REMOVED = "link.removed"
    LINK_STATE = "link.state"
    SYNC_ATTEMPT = "sync.attempt"
    SYNC_JOB = "sync.job"
    DELIVERY_QUARANTINED = "delivery.quarantined"
    CONNECTION_HEALTH = "connection.health"
    IMPORT_PROGRESS = "import.progress"
    RULE_CHANGED = "rule.changed"  # a [[rules]] entry's counters or pause (its RuleView)
    ANOMALIES_COMPACTED = "anomalies.compacted"  # a compaction run moved these to the archive
    STREAM_LAGGED = "stream.lagged"


class FieldKind(StrEnum):
    """The shape of one create-form field (Jira createmeta schema, ServiceNow dictionary type):
    what the dashboard shows for it and what the provider client sends."""

    TEXT = "text"  # one line
    TEXTAREA = "textarea"  # several lines (Jira: an ADF document, built by the client)
    OPTION = "option"  # one of ``choices``
    MULTI_OPTION = "multi_option"  # several of ``choices``
    CASCADING = "cascading"  # a parent choice and one of its ``children``
    USER = "user"  # a person: Jira accountId / ServiceNow sys_user sys_id, searched live
    NUMBER = "number"
    DATE = "date"  # YYYY-MM-DD
    DATETIME = "datetime"  # ISO 8601
    LABELS = "labels"  # free words, no spaces
    REFERENCE = "reference"  # ServiceNow reference to another table (sys_id)


class HealthSource(StrEnum):
    """What last told a connection's health."""

    CHECK = "check"  # a check of the connection (periodic, at start, or asked for)
    SYNC = "sync"  # a delivery: a note landed, or failed on authentication or availability


PLATFORM = "platform"  # ``by`` of what the platform did; also the platform queue's connection
OPERATOR = "operator"  # ``by`` of what a person did here, when no name is known
