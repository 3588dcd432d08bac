"""JQL as the Jira emulator understands it: the subset Anomaly Desk and the ``jira`` library send.

``key =``, ``issuekey in (…)``, ``summary ~``, ``text ~``, ``project =``, ``labels =``,
``status``/``statusCategory``/``resolution`` (``= Unresolved``), ``AND`` / ``OR`` / ``NOT``,
parentheses, ``is EMPTY``, date comparisons and ``ORDER BY``; errors worded like Jira's 400s.
``search`` runs a query over a ``JiraSite``'s issues, ``matches`` tests one issue (a webhook's
filter).

Dates (``created``, ``updated``, ``resolved``) take Jira's formats only: ``"yyyy-MM-dd HH:mm"``,
``"yyyy/MM/dd HH:mm"``, ``"yyyy-MM-dd"``, ``"yyyy/MM/dd"`` (minutes at most: no seconds, no
``T``), read in the *searching user's* time zone as Jira does, or a period relative to now:
``-10m``, ``-1h``, ``-2d``, ``"-1w 2d"`` (w, d, h, m).
"""

from __future__ import annotations

import fnmatch
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from anomaly_desk.sandbox.jira_data import Issue, JiraSite
from anomaly_desk.sandbox.jira_workflows import PROJECTS

UNBOUNDED = (
    "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
)


class JqlError(ValueError):
    """A JQL query Jira would refuse with a 400."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>!=|!~|>=|<=|=|~|>|<)
      | (?P<punct>[(),])
      | (?P<word>[^\s"'(),=!~<>]+)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # string, op, punct, word
    value: str


def tokenize(jql: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(jql):
        if jql[position:].strip() == "":
            break
        match = _TOKEN.match(jql, position)
        if not match or match.end() == position:
            raise JqlError(f"Error in the JQL Query: unexpected character at position {position}.")
        kind = match.lastgroup or "word"
        raw = match.group(kind)
        if kind == "string":
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        tokens.append(Token(kind, raw))
        position = match.end()
    return tokens


Predicate = Callable[[Issue], bool]
FIELD_ALIASES = {
    "issuekey": "key",
    "id": "key",
    "type": "issuetype",
    "issuetype": "issuetype",
    "resolved": "resolutiondate",
    "createddate": "created",
    "updateddate": "updated",
}
DATE_FIELDS = {"created", "updated", "resolutiondate"}
BAD_DATE = (
    "Date value '{value}' for field '{field}' is invalid. Valid formats include: "
    "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', "
    "or a period format e.g. '-5d', '4w 2d'."
)
_ABSOLUTE = re.compile(r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:\s+(\d{1,2}):(\d{2}))?")
_PERIOD = re.compile(r"([-+]?)((?:\d+[wdhm]\s*)+)")
_UNITS = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1)}
TEXT_FIELDS = {"summary", "description", "comment", "text", "environment"}
KNOWN_FIELDS = {
    "key",
    "project",
    "labels",
    "status",
    "statuscategory",
    "resolution",
    "priority",
    "issuetype",
    "assignee",
    "reporter",
    *DATE_FIELDS,
    *TEXT_FIELDS,
}


@dataclass
class Query:
    where: Predicate | None
    order: list[tuple[str, bool]]  # (field, descending)


class JqlParser:
    """Recursive descent over the JQL grammar clients send: clauses, AND/OR/NOT, (), ORDER BY."""

    def __init__(self, jql: str, site: JiraSite, time_zone: str = "UTC") -> None:
        self.tokens = tokenize(jql)
        self.at = 0
        self.site = site  # the issues' values, and whether a named issue key exists
        try:
            self.zone: ZoneInfo = ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            self.zone = ZoneInfo("UTC")

    def peek(self, offset: int = 0) -> Token | None:
        index = self.at + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def keyword(self, *words: str) -> bool:
        token = self.peek()
        return bool(token and token.kind == "word" and token.value.lower() in words)

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise JqlError("Error in the JQL Query: the query ended unexpectedly.")
        self.at += 1
        return token

    def parse(self) -> Query:
        where = None
        if self.peek() and not self._at_order_by():
            where = self.parse_or()
        order: list[tuple[str, bool]] = []
        if self._at_order_by():
            self.at += 2
            while True:
                name = self._field(self.take().value)
                descending = False
                if self.keyword("asc", "desc"):
                    descending = self.take().value.lower() == "desc"
                order.append((name, descending))
                if self.peek() and self.peek() == Token("punct", ","):
                    self.at += 1
                    continue
                break
        if (extra := self.peek()) is not None:
            raise JqlError(f"Error in the JQL Query: unexpected '{extra.value}'.")
        return Query(where, order)

    def _at_order_by(self) -> bool:
        token, nxt = self.peek(), self.peek(1)
        return bool(
            token
            and nxt
            and token.kind == "word"
            and token.value.lower() == "order"
            and nxt.value.lower() == "by"
        )

    def parse_or(self) -> Predicate:
        parts = [self.parse_and()]
        while self.keyword("or"):
            self.at += 1
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else lambda issue: any(p(issue) for p in parts)

    def parse_and(self) -> Predicate:
        parts = [self.parse_not()]
        while self.keyword("and"):
            self.at += 1
            parts.append(self.parse_not())
        return parts[0] if len(parts) == 1 else lambda issue: all(p(issue) for p in parts)

    def parse_not(self) -> Predicate:
        if self.keyword("not"):
            self.at += 1
            inner = self.parse_not()
            return lambda issue: not inner(issue)
        if self.peek() == Token("punct", "("):
            self.at += 1
            inner = self.parse_or()
            if self.take() != Token("punct", ")"):
                raise JqlError("Error in the JQL Query: expecting ')'.")
            return inner
        return self.parse_clause()

    def _field(self, raw: str) -> str:
        name = FIELD_ALIASES.get(raw.lower(), raw.lower())
        if name not in KNOWN_FIELDS:
            raise JqlError(
                f"Field '{raw}' does not exist or you do not have permission to view it."
            )
        return name

    def _values(self) -> list[str]:
        if self.peek() == Token("punct", "("):
            self.at += 1
            values = []
            while True:
                values.append(self.take().value)
                token = self.take()
                if token == Token("punct", ")"):
                    return values
                if token != Token("punct", ","):
                    raise JqlError("Error in the JQL Query: expecting ',' or ')'.")
        token = self.take()
        if token.kind not in {"string", "word"}:
            raise JqlError(f"Error in the JQL Query: expecting a value but got '{token.value}'.")
        return [token.value]

    def parse_clause(self) -> Predicate:
        raw = self.take()
        if raw.kind not in {"word", "string"}:
            raise JqlError(f"Error in the JQL Query: expecting a field name but got '{raw.value}'.")
        name = self._field(raw.value)
        op_token = self.take()
        op = op_token.value.lower()
        if op == "not" and self.keyword("in"):
            self.at += 1
            op = "not in"
        elif op == "is" and self.keyword("not"):
            self.at += 1
            op = "is not"
        if op in {"is", "is not"}:
            empty = self.take().value.lower()
            if empty not in {"empty", "null"}:
                raise JqlError("Error in the JQL Query: expecting EMPTY or NULL.")
            return self._emptiness(name, negate=op == "is not")
        if op not in {"=", "!=", "in", "not in", "~", "!~", ">", ">=", "<", "<="}:
            raise JqlError(f"Error in the JQL Query: unsupported operator '{op_token.value}'.")
        values = self._values()
        if op in {"~", "!~"}:
            if name not in TEXT_FIELDS:
                raise JqlError(f"The operator '~' is not supported by the '{raw.value}' field.")
            matcher = text_matcher(values[0])
            texts = self.site.text_of
            return lambda issue: matcher(texts(issue, name)) != (op == "!~")
        if name in TEXT_FIELDS:
            raise JqlError(f"The operator '{op}' is not supported by the '{raw.value}' field.")
        if name == "key":
            self._check_keys(values)
        if op in {">", ">=", "<", "<="}:
            return self._compare(name, op, values[0])
        wanted = {v.lower() for v in values}
        get = self.site.values_of
        negate = op in {"!=", "not in"}
        if name == "resolution":  # ``resolution = Unresolved``: no resolution set
            return lambda issue: bool(wanted & (get(issue, name) or {"unresolved"})) != negate
        return lambda issue: bool(wanted & get(issue, name)) != negate

    def _check_keys(self, keys: list[str]) -> None:
        """Jira refuses JQL naming an issue key that does not exist."""
        for key in keys:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*-\d+|\d+", key):
                raise JqlError(f"The issue key '{key}' for field 'key' is invalid.")
            if key.isdigit():
                continue
            if key.split("-")[0].upper() not in {p.key for p in PROJECTS}:
                raise JqlError(f"The issue key '{key}' for field 'key' is invalid.")
            if self.site.find(key) is None:
                raise JqlError(f"An issue with key '{key}' does not exist for field 'key'.")

    def _emptiness(self, name: str, negate: bool) -> Predicate:
        get = self.site.values_of
        return lambda issue: (not get(issue, name)) != negate

    def _compare(self, name: str, op: str, value: str) -> Predicate:
        if name not in DATE_FIELDS:
            raise JqlError(f"The operator '{op}' is not supported by the '{name}' field.")
        bound = self._date(name, value)
        relation = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}[op]

        def holds(issue: Issue) -> bool:
            at = {
                "created": issue.created,
                "updated": issue.updated,
                "resolutiondate": issue.resolution_date,
            }[name]
            return at is not None and bool(relation(at, bound))

        return holds

    def _date(self, name: str, value: str) -> datetime:
        """A JQL date: an absolute one in the user's time zone, or a period relative to now."""
        text = value.strip()
        if match := _ABSOLUTE.fullmatch(text):
            year, month, day, hour, minute = (int(g) if g else 0 for g in match.groups())
            try:
                local = datetime(year, month, day, hour, minute, tzinfo=self.zone)
            except ValueError as exc:
                raise JqlError(BAD_DATE.format(value=value, field=name)) from exc
            return local.astimezone(UTC)
        if match := _PERIOD.fullmatch(text):
            sign, parts = match.groups()
            span = timedelta()
            for amount, unit in re.findall(r"(\d+)([wdhm])", parts):
                span += int(amount) * _UNITS.get(unit, timedelta(minutes=1))
            return datetime.now(UTC) + (-span if sign == "-" else span)
        raise JqlError(BAD_DATE.format(value=value, field=name))


def text_matcher(query: str) -> Callable[[str], bool]:
    """Jira text search: every term matches a word; ``term*`` is a prefix, a quoted phrase exact."""
    phrase = query.strip()
    if len(phrase) > 1 and phrase.startswith('"') and phrase.endswith('"'):
        needle = phrase[1:-1].lower()
        return lambda haystack: needle in haystack.lower()
    terms = [t.lower() for t in re.findall(r"[\w*?]+", re.sub(r"\\(.)", r"\1", query))]
    terms = [t for t in terms if t.strip("*?")]
    if not terms:
        raise JqlError(f"The text query '{query}' is not valid; it contains no searchable term.")

    def matches(haystack: str) -> bool:
        words = set(re.findall(r"\w+", haystack.lower()))
        return all(any(fnmatch.fnmatchcase(word, term) for word in words) for term in terms)

    return matches


def search(site: JiraSite, jql: str, time_zone: str = "UTC") -> list[Issue]:
    """The issues of ``site`` matching ``jql``, in its ORDER BY (default: newest first).

    ``time_zone`` is the searching user's: Jira reads absolute dates in it.
    """
    query = JqlParser(jql, site, time_zone).parse()
    if query.where is None:
        raise JqlError(UNBOUNDED)
    found = [issue for issue in site.issues.values() if query.where(issue)]
    order = query.order or [("created", True)]
    for name, descending in reversed(order):
        found.sort(key=partial(_sort_key, name), reverse=descending)
    return found


def matches(site: JiraSite, jql: str, issue: Issue, time_zone: str = "UTC") -> bool:
    """Whether ``issue`` matches ``jql`` (an empty query matches every issue)."""
    query = JqlParser(jql, site, time_zone).parse()
    return query.where is None or query.where(issue)


def _sort_key(name: str, issue: Issue) -> int | str | datetime:
    """What ORDER BY ``name`` compares (one type per field, so any two issues compare)."""
    if name == "key":
        project, _, number = issue.key.partition("-")
        return f"{project}-{int(number):012d}"
    if name == "created":
        return issue.created
    if name == "updated":
        return issue.updated
    if name == "resolutiondate":
        return issue.resolution_date or datetime.min.replace(tzinfo=UTC)
    if name == "priority":
        return -int(issue.priority)  # Highest sorts last ascending, like Jira
    if name == "summary":
        return issue.summary.lower()
    return issue.key
