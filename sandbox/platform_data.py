"""The data-quality platform emulator's data: anomalies, comments, the seed and the write rules.

No HTTP here: ``platform_routes`` parses requests and renders these records as the platform's
JSON. Every rule a write is judged by lives in this module and nowhere else (the emulator is an
independent oracle: it never asks Anomaly Desk's own code what is valid).
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

Json = dict[str, Any]

DEFAULT_TOKEN = "demo-platform-token"
READ_ONLY_TOKEN = "demo-platform-readonly"
DEFAULT_SEED_COUNT = 300
SEED_START_ID = 20001  # the webhook fixtures use 10231..10290: no collision
SEED_ANCHOR = datetime(2026, 11, 18, 18, 0, tzinfo=UTC)  # the newest seeded anomaly, about
SEED_STEP = timedelta(hours=3, minutes=30)  # one anomaly every 3.5 h going back (300: ~44 days)

ACTIVE, ACKNOWLEDGED = "Active", "Acknowledged"
OPEN_STATUSES = (ACTIVE, ACKNOWLEDGED)
ARCHIVE_STATUSES = ("Resolved", "Duplicate", "Invalid", "Discarded")
STATUSES = OPEN_STATUSES + ARCHIVE_STATUSES
TYPES = ("record", "shape")


class PlatformError(Exception):
    """An error the platform answers with: a status and FastAPI's ``detail`` (text, or the
    list of validation errors of a 422)."""

    def __init__(self, status: int, detail: str | list[Json]) -> None:
        super().__init__(detail if isinstance(detail, str) else "validation error")
        self.status, self.detail = status, detail


@dataclass(frozen=True)
class Ref:
    """A datastore or container: ``{"id": 12, "name": "warehouse_prod"}``."""

    id: int
    name: str


@dataclass(frozen=True)
class Tag:
    name: str
    color: str | None = None


@dataclass(frozen=True)
class QualityCheck:
    id: int
    rule_type: str
    fields: tuple[str, ...]
    description: str | None = None


@dataclass(frozen=True)
class FailedCheck:
    quality_check: QualityCheck
    message: str | None = None


@dataclass(frozen=True)
class PlatformUser:
    id: int
    name: str
    email: str


DEMO_USER = PlatformUser(1, "Demo Platform User", "platform-demo@example.com")
VIEWER = PlatformUser(2, "Read-Only Viewer", "platform-viewer@example.com")


@dataclass
class Anomaly:
    """One anomaly as the platform stores it; ``status`` changes, the rest is as detected."""

    id: int
    uuid: str
    type: str
    status: str
    weight: int | float
    created: datetime
    datastore: Ref
    container: Ref
    fields: list[str]
    message: str
    description: str | None = None
    failed_checks: list[FailedCheck] = field(default_factory=list)
    global_tags: list[Tag] = field(default_factory=list)
    anomalous_records_count: int | None = None
    fingerprint: int | None = None

    @property
    def archived(self) -> bool:
        return self.status in ARCHIVE_STATUSES


@dataclass(frozen=True)
class Comment:
    id: int
    anomaly_id: int
    message: str
    created: datetime
    user: PlatformUser


@dataclass(frozen=True)
class WriteCall:
    """One write request the platform received (after the fault layer let it through)."""

    method: str
    path: str
    query: dict[str, str]
    body: object  # the parsed JSON body, the raw text if it was not JSON, None if empty
    status: int  # what the platform answered
    anomaly_id: int | None  # the anomaly it was about, when one could be read from it
    token: str | None
    at: datetime

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def iso(moment: datetime) -> str:
    """The platform's timestamps: UTC, milliseconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# -- the seed's world ----------------------------------------------------------------------

# datastore id, name, [(container id, name, fields)]
DATASTORES: list[tuple[int, str, list[tuple[int, str, list[str]]]]] = [
    (
        12,
        "warehouse_prod",
        [
            (301, "orders", ["order_id", "customer_id", "amount", "order_date", "currency"]),
            (302, "customers", ["customer_id", "email", "country_code", "signup_date"]),
            (303, "payments", ["payment_id", "amount", "currency", "paid_at"]),
        ],
    ),
    (
        14,
        "crm_replica",
        [
            (410, "accounts", ["account_id", "country_code", "region", "owner"]),
            (411, "contacts", ["contact_id", "phone", "email"]),
            (412, "leads", ["lead_id", "source", "score"]),
            (413, "events", ["event_id", "ts", "event_type"]),
        ],
    ),
    (15, "données_ventes", [(501, "clients_europe", ["nom", "adresse_e-mail", "ville"])]),
    (
        16,
        "events_lake",
        [
            (601, "clickstream", ["session_id", "page_url", "ts"]),
            (602, "sessions", ["session_id", "duration_s", "device"]),
        ],
    ),
]
# rule type, message ({f} field, {n} records), check description
RECORD_RULES = [
    ("notNull", "{f} is null in {n} records", "{f} must never be null"),
    ("between", "{f} out of range [0, 100000] in {n} records", "{f} must be between 0 and 100000"),
    ("matchesPattern", "{f} does not match pattern in {n} records", "{f} must match its pattern"),
    ("isUnique", "{f} has duplicate values in {n} records", "{f} must be unique"),
    ("isReplicaOf", "{f} differs from the source in {n} records", "{f} must match the source"),
    (
        "satisfiesExpression",
        "{f} fails its expression in {n} records",
        "{f} must satisfy its expression",
    ),
]
SHAPE_RULES = [
    ("expectedSchema", "{c} has a new column (unexpected_col)", "{c} must keep its columns"),
    ("volumetric", "{c} row count dropped 64% since the last scan", "{c} volume must be stable"),
    ("freshness", "{c} was not updated for 26 hours", "{c} must be fresh within 24 hours"),
]
TAGS = [
    Tag("finance", "#f60"),
    Tag("pii", "#c00"),
    Tag("crm", "#06c"),
    Tag("critical", "#900"),
    Tag("équipe-données", None),
    Tag("marketing", "#393"),
]
STATUS_WEIGHTS = [
    50,
    15,
    15,
    7,
    7,
    6,
]  # Active, Acknowledged, Resolved, Duplicate, Invalid, Discarded
FLOAT_WEIGHTS = [0.5, 2.25, 7.5, 12.5, 33.3, 61.75]


def seed_anomalies(count: int, *, start_id: int = SEED_START_ID, seed: int = 0) -> list[Anomaly]:
    """``count`` anomalies with ids from ``start_id``, the same ones for the same arguments.

    Created one every ``SEED_STEP`` (with jitter, ids growing with time) up to ``SEED_ANCHOR``;
    mixed statuses (about a third archived), types, datastores and containers; weights mostly
    whole numbers, every fifth a float.
    """
    rng = random.Random(seed)
    containers = [
        (Ref(ds_id, ds_name), Ref(c_id, c_name), c_fields)
        for ds_id, ds_name, items in DATASTORES
        for c_id, c_name, c_fields in items
    ]
    check_ids: dict[tuple[int, str, str], int] = {}
    anomalies: list[Anomaly] = []
    jitter_minutes = int(SEED_STEP.total_seconds() // 60) - 10
    for index in range(count):
        ident = start_id + index
        datastore, container, names = containers[rng.randrange(len(containers))]
        back = SEED_STEP * (count - 1 - index)
        created = SEED_ANCHOR - back - timedelta(minutes=jitter_minutes)
        created += timedelta(
            minutes=rng.randrange(jitter_minutes), milliseconds=rng.randrange(1000)
        )
        status = rng.choices(STATUSES, weights=STATUS_WEIGHTS)[0]
        shape = rng.random() < 0.2
        if shape:
            rule, text, about = SHAPE_RULES[rng.randrange(len(SHAPE_RULES))]
            fields: list[str] = []
            count_records: int | None = None
            message = text.format(c=container.name)
            description_of_check = about.format(c=container.name)
        else:
            rule, text, about = RECORD_RULES[rng.randrange(len(RECORD_RULES))]
            fields = [names[rng.randrange(len(names))]]
            count_records = rng.choice([1, 3, 9, 17, 88, 312, 1204, rng.randrange(1, 50000)])
            message = text.format(f=fields[0], n=f"{count_records:,}")
            description_of_check = about.format(f=fields[0])
        key = (container.id, rule, fields[0] if fields else "")
        check_id = check_ids.setdefault(key, 9300 + len(check_ids))
        check = QualityCheck(check_id, rule, tuple(fields), description_of_check)
        weight: int | float = (
            FLOAT_WEIGHTS[rng.randrange(len(FLOAT_WEIGHTS))]
            if index % 5 == 4
            else rng.randrange(1, 101)
        )
        tags = [TAGS[i] for i in sorted(rng.sample(range(len(TAGS)), rng.choice([0, 0, 1, 1, 2])))]
        anomalies.append(
            Anomaly(
                id=ident,
                uuid=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                type="shape" if shape else "record",
                status=status,
                weight=weight,
                created=created,
                datastore=datastore,
                container=container,
                fields=fields,
                message=message,
                description=None if rng.random() < 0.7 else f"Seen after the {rule} scan",
                failed_checks=[FailedCheck(check, message)],
                global_tags=tags,
                anomalous_records_count=count_records,
                fingerprint=rng.randrange(10**8, 10**9),
            )
        )
    return anomalies


# -- the platform ----------------------------------------------------------------------------


class PlatformSite:
    """The platform's state: anomalies by id, comments, who may call, and a log of every write.

    Tests read ``anomalies``, ``comments`` and ``calls`` directly, and change the world with
    ``seed``, ``add`` and ``clear``; ``reset`` (``POST /_sandbox/reset``) restores the default
    seed, the configured tokens, no comments and an empty call log.
    """

    anomalies: dict[int, Anomaly]
    comments: list[Comment]
    calls: list[WriteCall]
    token: str
    read_only_tokens: set[str]

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        read_only_tokens: Iterable[str] = (READ_ONLY_TOKEN,),
        seed_count: int = DEFAULT_SEED_COUNT,
    ) -> None:
        self.lock = threading.RLock()
        self.initial = (token, frozenset(read_only_tokens), seed_count)
        self.reset()

    def reset(self) -> None:
        token, read_only, seed_count = self.initial
        with self.lock:
            self.token = token
            self.read_only_tokens = set(read_only)
            self.seed(seed_count)

    # -- steering (tests, the demo) ---------------------------------------------------------

    def seed(self, count: int, *, start_id: int = SEED_START_ID, seed: int = 0) -> list[Anomaly]:
        """Replace everything with ``count`` seeded anomalies (no comments, empty call log)."""
        anomalies = seed_anomalies(count, start_id=start_id, seed=seed)
        with self.lock:
            self.anomalies = {anomaly.id: anomaly for anomaly in anomalies}
            self.comments = []
            self.calls = []
            self.next_comment_id = 1
        return anomalies

    def clear(self) -> None:
        """No anomalies, no comments, an empty call log."""
        self.seed(0)

    def add(
        self,
        id: int | None = None,
        *,
        status: str = ACTIVE,
        type: str = "record",
        weight: int | float = 50,
        created: datetime | str | None = None,
        datastore: tuple[int, str] = (12, "warehouse_prod"),
        container: tuple[int, str] = (301, "orders"),
        fields: Sequence[str] = ("customer_id",),
        message: str | None = None,
        description: str | None = None,
        tags: Sequence[str] = (),
        rule_type: str = "notNull",
        check_id: int = 9001,
        anomalous_records_count: int | None = 7,
        fingerprint: int | None = None,
        uuid_: str | None = None,
    ) -> Anomaly:
        """One anomaly with the given values (the next free id when ``id`` is None)."""
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        if type not in TYPES:
            raise ValueError(f"type {type!r} is not one of {', '.join(TYPES)}")
        if isinstance(created, str):
            created = parse_moment(created)
        with self.lock:
            if id is None:
                id = max(self.anomalies, default=SEED_START_ID - 1) + 1
            if id in self.anomalies:
                raise ValueError(f"anomaly {id} exists")
            text = message or f"{', '.join(fields) or container[1]} failed {rule_type}"
            check = QualityCheck(check_id, rule_type, tuple(fields), f"{rule_type} check")
            anomaly = Anomaly(
                id=id,
                uuid=uuid_ or str(uuid.UUID(int=id, version=4)),
                type=type,
                status=status,
                weight=weight,
                created=_utc(created or datetime.now(UTC)),
                datastore=Ref(*datastore),
                container=Ref(*container),
                fields=list(fields),
                message=text,
                description=description,
                failed_checks=[FailedCheck(check, text)],
                global_tags=[Tag(name) for name in tags],
                anomalous_records_count=anomalous_records_count if type == "record" else None,
                fingerprint=fingerprint if fingerprint is not None else 10**8 + id,
            )
            self.anomalies[id] = anomaly
        return anomaly

    def comments_of(self, anomaly_id: int) -> list[Comment]:
        """The anomaly's comments, oldest first."""
        with self.lock:
            found = [c for c in self.comments if c.anomaly_id == anomaly_id]
        return sorted(found, key=lambda c: (c.created, c.id))

    def writes(self, anomaly_id: int | None = None, *, ok: bool | None = None) -> list[WriteCall]:
        """The call log, narrowed to one anomaly and/or to accepted (2xx) or refused calls."""
        with self.lock:
            calls = list(self.calls)
        return [
            c
            for c in calls
            if (anomaly_id is None or c.anomaly_id == anomaly_id) and (ok is None or c.ok == ok)
        ]

    # -- who is calling --------------------------------------------------------------------

    def user_for(self, token: str) -> PlatformUser | None:
        if token == self.token:
            return DEMO_USER
        if token in self.read_only_tokens:
            return VIEWER
        return None

    def can_write(self, token: str) -> bool:
        return token == self.token and token not in self.read_only_tokens

    # -- reads -----------------------------------------------------------------------------

    def get(self, anomaly_id: int) -> Anomaly:
        anomaly = self.anomalies.get(anomaly_id)
        if anomaly is None:
            raise PlatformError(404, "Anomaly not found")
        return anomaly

    def select(self, query: ListQuery) -> tuple[int, list[Anomaly]]:
        """(total matching, the requested page) for a list query."""
        with self.lock:
            matching = [a for a in self.anomalies.values() if query.matches(a)]
        newest_first = query.sort_created == "desc"
        matching.sort(key=lambda a: (a.created, a.id), reverse=newest_first)
        start = (query.page - 1) * query.size
        return len(matching), matching[start : start + query.size]

    # -- writes ----------------------------------------------------------------------------

    def acknowledge(self, anomaly_id: int) -> Anomaly:
        """Active → Acknowledged; Acknowledged stays (idempotent); archived is a conflict."""
        with self.lock:
            anomaly = self.get(anomaly_id)
            if anomaly.archived:
                raise PlatformError(
                    409,
                    f"Anomaly {anomaly_id} is archived ({anomaly.status}) and cannot be "
                    "acknowledged",
                )
            anomaly.status = ACKNOWLEDGED
            return anomaly

    def archive(self, anomaly_id: int, status: str) -> Anomaly:
        """An open anomaly → an archive status; archiving an archived one is a conflict."""
        if status not in ARCHIVE_STATUSES:
            raise PlatformError(422, f"{status!r} is not an archive status")
        with self.lock:
            anomaly = self.get(anomaly_id)
            if anomaly.archived:
                raise PlatformError(
                    409, f"Anomaly {anomaly_id} is already archived ({anomaly.status})"
                )
            anomaly.status = status
            return anomaly

    def add_comment(self, anomaly_id: int, message: str, user: PlatformUser) -> Comment:
        """A comment on an open anomaly; the platform refuses comments on archived ones."""
        with self.lock:
            anomaly = self.get(anomaly_id)
            if anomaly.archived:
                raise PlatformError(
                    409,
                    f"Anomaly {anomaly_id} is archived ({anomaly.status}); comments are closed",
                )
            comment = Comment(self.next_comment_id, anomaly_id, message, datetime.now(UTC), user)
            self.next_comment_id += 1
            self.comments.append(comment)
            return comment

    def record(self, call: WriteCall) -> None:
        with self.lock:
            self.calls.append(call)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_moment(text: str, *, end_of_day: bool = False) -> datetime:
    """``YYYY-MM-DD`` (the day's start, or the next day's start with ``end_of_day``) or an ISO
    8601 date-time (``Z`` or an offset; a naive one is UTC). ValueError otherwise."""
    text = text.strip()
    if len(text) == 10:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
        return day + timedelta(days=1) if end_of_day else day
    return _utc(datetime.fromisoformat(text))


@dataclass(frozen=True)
class ListQuery:
    """``GET /api/anomalies``'s filters, already validated by the routes."""

    statuses: frozenset[str] = frozenset()
    archived: str | None = None  # None: open only; "include": both; "only": archived only
    datastores: frozenset[int] = frozenset()
    containers: frozenset[int] = frozenset()
    tags: frozenset[str] = frozenset()
    start: datetime | None = None  # created >= start
    end: datetime | None = None  # created < end (a date's next midnight) or <= a date-time
    end_inclusive: bool = False
    sort_created: str = "desc"
    page: int = 1
    size: int = 50

    def matches(self, anomaly: Anomaly) -> bool:
        if self.archived is None and anomaly.archived:
            return False
        if self.archived == "only" and not anomaly.archived:
            return False
        if self.statuses and anomaly.status not in self.statuses:
            return False
        if self.datastores and anomaly.datastore.id not in self.datastores:
            return False
        if self.containers and anomaly.container.id not in self.containers:
            return False
        if self.tags and not self.tags & {tag.name for tag in anomaly.global_tags}:
            return False
        if self.start is not None and anomaly.created < self.start:
            return False
        if self.end is not None:
            if self.end_inclusive and anomaly.created > self.end:
                return False
            if not self.end_inclusive and anomaly.created >= self.end:
                return False
        return True
