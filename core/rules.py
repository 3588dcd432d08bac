"""``[[rules]]``: tickets raised automatically for the anomalies a rule matches.

This module holds what a rule *is* and the pure parts of what it does, shared by the receiver
(:mod:`anomaly_desk.core.rule_runner`) and the dry run (``anomaly-desk rules test``):

* the configuration models (:class:`Rule` and its tables), checked when the config loads;
* matching an anomaly (:func:`matches`): globs on datastore and container names, tags, the failed
  checks' rule types, weight, type and status;
* the dedup key (:func:`dedup_key`): anomalies with the same key share one ticket within the
  rule's window;
* the token bucket (:func:`take_token`): ``max_per_hour`` tickets, refilled continuously.

Nothing here reads a clock or the store: times are passed in.
"""

from __future__ import annotations

import fnmatch
import re
import unicodedata
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.templates import TemplateSet
from anomaly_desk.core.vocabulary import OPEN, Status

__all__ = [
    "DEDUP_REASONS",
    "DedupKeyName",
    "Rule",
    "RuleAction",
    "RuleDedup",
    "RuleMatch",
    "dedup_key",
    "matches",
    "parse_window",
    "take_token",
]

DedupKeyName = Literal[
    "container+check", "container", "fingerprint", "datastore+container", "check"
]

DEDUP_REASONS: dict[str, str] = {
    "container+check": "same container and check",
    "container": "same container",
    "fingerprint": "same fingerprint",
    "datastore+container": "same datastore and container",
    "check": "same check",
}
"""How a note names why an anomaly joined an earlier one's ticket."""

_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_WINDOW_S = 90 * 86400.0  # beyond a quarter a "duplicate" is a new problem


def parse_window(text: str) -> float:
    """``"24h"``, ``"30m"``, ``"7d"``, ``"90s"`` in seconds; ValueError naming the forms."""
    found = _WINDOW.match(text)
    if found is None:
        raise ValueError(
            f"window {text!r} is not a duration; write a number and a unit: 30m, 24h, 7d (or 90s)"
        )
    seconds = float(found.group(1)) * _UNIT_S[found.group(2)]
    if not 0 < seconds <= MAX_WINDOW_S:
        raise ValueError(f"window {text!r} must be more than 0 and at most 90d")
    return seconds


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleMatch(_Table):
    """Which anomalies a rule takes. Every key given must hold; a list key holds when any of its
    entries does (``tags_all``: all of them). Left out: anything goes (``statuses``: open ones)."""

    datastores: list[str] = Field(default_factory=list)  # globs on the name (or the id)
    containers: list[str] = Field(default_factory=list)  # globs on the name (or the id)
    tags_all: list[str] = Field(default_factory=list)  # every one of these tags
    tags_any: list[str] = Field(default_factory=list)  # at least one of these tags
    check_types: list[str] = Field(default_factory=list)  # a failed check's rule type
    min_weight: float | None = Field(None, allow_inf_nan=False)  # nan matched everything
    types: list[Literal["record", "shape"]] = Field(default_factory=list)
    # at least one (``[]`` read as "any status" took archived ones); left out: the open ones
    statuses: list[Status] = Field(default_factory=lambda: sorted(OPEN), min_length=1)

    @field_validator("statuses", mode="before")
    @classmethod
    def _status_case(cls, value: object) -> object:
        """``active`` is ``Active``, as the platform's own spellings are."""
        if isinstance(value, list):
            known = {status.value.lower(): status.value for status in Status}
            return [known.get(v.lower(), v) if isinstance(v, str) else v for v in value]
        return value


_OWN_LABEL = re.compile(r"anomaly-(?:desk|\d+)", re.IGNORECASE)


class RuleAction(_Table):
    """What a rule does with a match: a ticket on ``connection``."""

    connection: str
    issue_type: str | None = None  # Jira: the issue type (default: the connection's)
    table: str | None = None  # ServiceNow: the table (default: the connection's)
    fields: dict[str, JsonValue] = Field(default_factory=dict)  # as the create form sends them
    templates: TemplateSet | None = None  # the ticket's title and description

    @field_validator("fields")
    @classmethod
    def _own_marks(cls, value: dict[str, JsonValue]) -> dict[str, JsonValue]:
        """The integration's correlation labels are its own to set: a rule that set
        ``anomaly-<n>`` could plant a ticket another anomaly's crash recovery would adopt."""
        labels = value.get("labels")
        items = labels if isinstance(labels, list) else [labels] if labels is not None else []
        for label in items:
            if isinstance(label, str) and _OWN_LABEL.fullmatch(label.strip().replace(" ", "-")):
                raise ValueError(
                    f"fields.labels: {label!r} is one of the desk's own correlation labels "
                    "(anomaly-desk, anomaly-<id>); they are added by the desk itself"
                )
        return value


class RuleDedup(_Table):
    """Anomalies with the same ``key`` inside ``window`` share the first one's ticket (while it
    is not done): the later ones are linked to it, with a note, instead of a ticket each."""

    key: DedupKeyName = "container+check"
    window: str = "24h"

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        parse_window(value)
        return value.strip()

    @property
    def window_s(self) -> float:
        return parse_window(self.window)


class Rule(_Table):
    """One ``[[rules]]`` table."""

    name: str = Field(min_length=1, max_length=100)
    match: RuleMatch = Field(default_factory=RuleMatch)
    action: RuleAction
    dedup: RuleDedup | None = None  # none: every match gets its own ticket
    max_per_hour: int | None = Field(None, ge=1)  # tickets (and links) a rule makes an hour
    pause_after: int = Field(3, ge=1)  # consecutive refusals (401/403/400…) before it pauses

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        """Words, as people and URLs see them: NFC (so "café" is one name however typed), no
        '/', no control or invisible characters, not "." or ".." (a URL path drops those)."""
        value = unicodedata.normalize("NFC", value).strip()
        shown = "".join(c for c in value if unicodedata.category(c) not in ("Cf", "Cc", "Zs"))
        if not shown or "/" in value or not value.isprintable() or value in (".", ".."):
            raise ValueError(
                "a rule's name is words (no '/', no control or invisible characters, not '.')"
            )
        return value


# -- matching ----------------------------------------------------------------------------------


def _glob(patterns: list[str], values: list[str]) -> bool:
    """Any value matches any pattern, ignoring case."""
    folded = [value.casefold() for value in values if value]
    return any(fnmatch.fnmatchcase(v, p.casefold()) for p in patterns for v in folded)


def _ref_values(ref: object) -> list[str]:
    name, ident = getattr(ref, "name", None), getattr(ref, "id", None)
    return [str(v) for v in (name, ident) if v is not None]


def check_types(anomaly: Anomaly) -> set[str]:
    """The failed checks' rule types, case-folded."""
    return {c.rule_type.casefold() for c in anomaly.failed_checks if c.rule_type}


def matches(match: RuleMatch, anomaly: Anomaly) -> bool:
    """Whether ``anomaly`` is one ``match`` takes."""
    if match.statuses and str(anomaly.status) not in {s.value for s in match.statuses}:
        return False
    if match.types and anomaly.type not in match.types:
        return False
    if match.min_weight is not None and (
        not isinstance(anomaly.weight, int | float) or anomaly.weight < match.min_weight
    ):
        return False
    if match.datastores and not _glob(match.datastores, _ref_values(anomaly.datastore)):
        return False
    if match.containers and not _glob(match.containers, _ref_values(anomaly.container)):
        return False
    tags = {tag.casefold() for tag in anomaly.global_tags if isinstance(tag, str)}
    if match.tags_all and not all(t.casefold() in tags for t in match.tags_all):
        return False
    if match.tags_any and not any(t.casefold() in tags for t in match.tags_any):
        return False
    return not match.check_types or bool(
        check_types(anomaly) & {t.casefold() for t in match.check_types}
    )


# -- dedup keys --------------------------------------------------------------------------------


def _datastore(anomaly: Anomaly) -> str | None:
    ref = anomaly.datastore
    if ref is None:
        return None
    return f"ds:{ref.id}" if ref.id is not None else (f"ds:{ref.name}" if ref.name else None)


def _container(anomaly: Anomaly) -> str | None:
    """A container id is the platform's across datastores; a bare name needs its datastore."""
    ref = anomaly.container
    if ref is None:
        return None
    if ref.id is not None:
        return f"ct:{ref.id}"
    if ref.name:
        return f"ct:{_datastore(anomaly) or '?'}/{ref.name}"
    return None


def _checks(anomaly: Anomaly) -> str | None:
    """The failed checks by id (their rule types when they carry no id)."""
    ids = sorted({str(c.check_id) for c in anomaly.failed_checks if c.check_id is not None})
    if ids:
        return "chk:" + ",".join(ids)
    types = sorted(check_types(anomaly))
    return "type:" + ",".join(types) if types else None


def dedup_key(key: DedupKeyName, anomaly: Anomaly) -> str:
    """The anomaly's key under ``key``; an anomaly lacking what the key is made of (no
    container, no fingerprint) shares with no other: its key names the anomaly itself."""
    parts: list[str | None]
    if key == "container+check":
        parts = [_container(anomaly), _checks(anomaly)]
    elif key == "container":
        parts = [_container(anomaly)]
    elif key == "fingerprint":
        fp = anomaly.fingerprint
        parts = [None if fp is None else f"fp:{fp}"]
    elif key == "datastore+container":
        parts = [_datastore(anomaly), _container(anomaly)]
    else:
        parts = [_checks(anomaly)]
    if any(part is None for part in parts):
        return f"anomaly:{anomaly.id}"
    return "|".join(part for part in parts if part is not None)


# -- the token bucket --------------------------------------------------------------------------


def take_token(
    max_per_hour: int | None, tokens: float | None, tokens_at: float, now: float
) -> tuple[bool, float | None, float]:
    """One ticket from a bucket of ``max_per_hour`` refilled at ``max_per_hour`` an hour:
    ``(taken, tokens left, at)``. ``tokens`` None is a full bucket; no limit always takes."""
    if max_per_hour is None:
        return True, None, now
    have = float(max_per_hour) if tokens is None else tokens
    have = min(float(max_per_hour), have + max(0.0, now - tokens_at) * max_per_hour / 3600.0)
    if have >= 1.0:
        return True, have - 1.0, now
    return False, have, now
