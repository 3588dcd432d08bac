"""Keeping odd but usable anomalies: a value that fits no field never costs the anomaly.

The platform's own examples and generated client carry values our model does not expect: a
fractional weight, a message that is an object, a date in another format, a tag without a name.
Refusing the anomaly for that would make the sender retry forever and hold back its siblings. So
when the fast, strict validation fails, each failing field is repaired where a faithful repair
exists (a number to text, a known date format to a time, the named tags of a list) and its value
*as sent* is kept in the document's ``odd`` map. Only an anomaly without a usable id is refused
(:class:`NoUsableId`): it is quarantined by the caller.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pydantic

from anomaly_desk.core.jsontypes import JsonMap
from anomaly_desk.core.models import ALIASES, Anomaly, FailedCheck, NoUsableId, _check

# strptime formats seen in exports and hand-written payloads; ISO 8601 is pydantic's own.
DATE_FORMATS = (
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y",
    "%Y%m%dT%H%M%SZ",
    "%Y-%m-%dT%H:%M:%S.%f%z",
)


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return None


def _number(value: Any) -> int | float | None:
    if isinstance(value, str):
        try:
            number = float(value.strip().rstrip("%"))
        except ValueError:
            return None
        return int(number) if number.is_integer() else number
    return None


def _names(value: Any) -> list[str] | None:
    """The usable names of a list of names / ``{"name": …}`` objects (nameless ones dropped)."""
    if not isinstance(value, list):
        return None
    names = []
    for item in value:
        name = item.get("name") if isinstance(item, dict) else item
        if isinstance(name, str) and name.strip():
            names.append(name)
        elif isinstance(name, int | float) and not isinstance(name, bool):
            names.append(str(name))
    return names


def parse_date(value: Any) -> datetime | None:
    """ISO 8601, RFC 2822 or one of DATE_FORMATS; None when it is none of them."""
    if not isinstance(value, str):
        return None
    raw = value.strip()
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        pass
    try:
        return email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        pass
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(raw, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def _checks(value: Any) -> list[JsonMap] | None:
    """The failed checks that validate; the whole list as sent goes to ``odd``."""
    if not isinstance(value, list):
        return None
    kept = []
    for item in value:
        try:
            kept.append(FailedCheck.model_validate(_check(item)).model_dump(mode="json"))
        except pydantic.ValidationError:
            continue
    return kept


def _ref(value: Any) -> JsonMap | None:
    if isinstance(value, dict):
        name, ident = value.get("name"), value.get("id")
        return {
            "id": ident if isinstance(ident, int | str) and not isinstance(ident, bool) else None,
            "name": name if isinstance(name, str) else _text(name),
        }
    return None


REPAIRS: dict[str, Callable[[Any], Any]] = {
    "message": _text,
    "description": _text,
    "uuid": _text,
    "url": _text,
    "weight": _number,
    "anomalous_records_count": _number,
    "fields": _names,
    "global_tags": _names,
    "created": parse_date,
    "failed_checks": _checks,
    "datastore": _ref,
    "container": _ref,
}


def tolerant(item: Any) -> Anomaly:
    """``item`` as an Anomaly, odd values kept as sent; NoUsableId when it cannot be keyed."""
    if not isinstance(item, dict):
        raise NoUsableId(f"expected an anomaly object, got {type(item).__name__}")
    try:
        return Anomaly.model_validate(item)
    except pydantic.ValidationError as exc:
        error = exc
    data = dict(item)
    odd: JsonMap = {}
    repaired: set[str] = set()
    for _ in range(len(Anomaly.model_fields)):  # each round settles at least one field
        bad = {str(e["loc"][0]) for e in error.errors() if e["loc"]}
        if not bad:
            raise NoUsableId(error.errors()[0]["msg"].removeprefix("Value error, "))
        for field in bad:
            sent = [name for name in ALIASES.get(field, (field,)) if name in data] or [field]
            raw = data.get(sent[0])
            for name in sent:
                data.pop(name, None)
            if field in repaired:  # the repair did not fit either: the value as sent is in odd
                continue
            repaired.add(field)
            odd[sent[0]] = raw
            repair = REPAIRS.get(field)
            value = repair(raw) if repair is not None else None
            if value is not None:
                data[field] = value
        data["odd"] = odd
        try:
            return Anomaly.model_validate(data)
        except pydantic.ValidationError as exc:
            error = exc
    raise NoUsableId(f"could not make sense of {sorted(odd)}")
