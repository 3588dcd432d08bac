"""ServiceNow's encoded query (``sysparm_query``) as the emulator understands it.

``a=1^ORb=2^c!=3^NQd=4^ORDERBYDESCe``: ``^`` joins conditions with AND, ``^OR`` adds an
alternative to the condition before it, ``^NQ`` starts a new query whose rows are added, and
``ORDERBY``/``ORDERBYDESC`` sort. A condition is a field (dot-walks allowed: ``caller_id.name``),
an operator and a value; an unknown operator makes the condition, like on an instance, match
nothing rather than fail. Values compare without regard to case, numbers as numbers, date-times
(``2026-12-01 10:00:00``, UTC as stored) as text, which orders them; a value written as
``javascript:gs.dateGenerate('2026-12-01','10:00:00')`` is that date-time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

_FIELD = re.compile(r"[a-z0-9_.]+")
_DATE_GENERATE = re.compile(
    r"javascript:\s*gs\.dateGenerate\(\s*'([^']*)'\s*,\s*'([^']*)'\s*\)\s*;?", re.IGNORECASE
)
# Tried in this order: an operator comes before any that is a prefix of it (">=" before ">").
_OPERATORS = (
    "ISNOTEMPTY",
    "ISEMPTY",
    "ANYTHING",
    "NOT LIKE",
    "NOTLIKE",
    "LIKE",
    "STARTSWITH",
    "ENDSWITH",
    "NOT IN",
    "NOTIN",
    "IN",
    "!=",
    ">=",
    "<=",
    "=",
    ">",
    "<",
)
Comparable = TypeVar("Comparable", int, str)
INVALID = "INVALID"  # the operator of a condition the instance could not read


@dataclass(frozen=True, slots=True)
class Condition:
    field: str
    op: str
    value: str

    def holds(self, actual: str | None) -> bool:
        """Whether a record whose field has value ``actual`` (None: no such field) matches."""
        if actual is None or self.op == INVALID:
            return False  # an invalid condition returns no rows
        return compare(self.op, actual, self.value)


FieldValue = Callable[[str], str | None]  # a record's value of a (dot-walked) field, or None


@dataclass(frozen=True, slots=True)
class EncodedQuery:
    """OR-ed queries of AND-ed groups of OR-ed conditions, and the sort order."""

    queries: tuple[tuple[tuple[Condition, ...], ...], ...]
    order: tuple[tuple[str, bool], ...]  # (field, descending)

    @classmethod
    def parse(cls, text: str) -> EncodedQuery:
        queries: list[tuple[tuple[Condition, ...], ...]] = []
        order: list[tuple[str, bool]] = []
        for part in text.split("^NQ"):
            groups: list[list[Condition]] = []
            for term in part.split("^"):
                if not term or term == "EQ" or term.startswith("GROUPBY"):
                    continue
                if term.startswith("ORDERBYDESC"):
                    order.append((term[len("ORDERBYDESC") :], True))
                elif term.startswith("ORDERBY"):
                    order.append((term[len("ORDERBY") :], False))
                elif term.startswith("OR") and groups:
                    groups[-1].append(condition(term[2:]))
                else:
                    groups.append([condition(term)])
            if groups:
                queries.append(tuple(tuple(group) for group in groups))
        return cls(tuple(queries), tuple(order))

    def matches(self, value_of: FieldValue) -> bool:
        """Whether a record matches; ``value_of`` reads its fields. No conditions: every record."""
        if not self.queries:
            return True
        return any(
            all(any(c.holds(value_of(c.field)) for c in group) for group in groups)
            for groups in self.queries
        )


def condition(term: str) -> Condition:
    """``short_descriptionLIKEdisk`` → field, operator, value."""
    match = _FIELD.match(term)
    field = match.group(0) if match else ""
    rest = term[len(field) :]
    for op in _OPERATORS:
        if rest.startswith(op):
            value = rest[len(op) :]
            if match := _DATE_GENERATE.fullmatch(value):
                value = f"{match.group(1)} {match.group(2)}"
            return Condition(field, op, value)
    return Condition(field, INVALID, rest)


def compare(op: str, actual: str, wanted: str) -> bool:
    low, want = actual.lower(), wanted.lower()
    if op in ("ISEMPTY", "ISNOTEMPTY"):
        return (actual == "") == (op == "ISEMPTY")
    checks: dict[str, Callable[[], bool]] = {
        "ANYTHING": lambda: True,
        "=": lambda: low == want,
        "!=": lambda: low != want,
        "LIKE": lambda: want in low,
        "NOT LIKE": lambda: want not in low,
        "NOTLIKE": lambda: want not in low,
        "STARTSWITH": lambda: low.startswith(want),
        "ENDSWITH": lambda: low.endswith(want),
        "IN": lambda: low in {v.strip().lower() for v in wanted.split(",")},
        "NOT IN": lambda: low not in {v.strip().lower() for v in wanted.split(",")},
        "NOTIN": lambda: low not in {v.strip().lower() for v in wanted.split(",")},
    }
    if op in checks:
        return checks[op]()
    left, right = sort_key(actual), sort_key(wanted)
    if isinstance(left, int) and isinstance(right, int):
        return _ordered(op, left, right)
    return _ordered(op, str(left), str(right))


def _ordered(op: str, left: Comparable, right: Comparable) -> bool:
    """``>``, ``>=``, ``<``, ``<=`` between two numbers or two strings."""
    if op == ">":
        return left > right
    if op == ">=":
        return left >= right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    return False


def sort_key(value: str) -> int | str:
    """Numbers sort as numbers, everything else by its lower-case text."""
    return int(value) if value.lstrip("-").isdigit() else value.lower()
