"""JQL as the Jira emulator understands it: the subset Anomaly Desk and the ``jira`` library send.

``key =``, ``issuekey in (…)``, ``summary ~``, ``text ~``, ``project =``, ``labels =``, ``AND`` /
``OR`` / ``NOT``, parentheses, ``is EMPTY``, date comparisons and ``ORDER BY``; errors worded
like Jira's 400s. ``search`` runs a query over a ``JiraSite``'s issues.
"""

from __future__ import annotations

import fnmatch
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from anomaly_desk.sandbox.jira_data import PROJECT, Issue, JiraSite

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
FIELD_ALIASES = {"issuekey": "key", "id": "key", "type": "issuetype", "issuetype": "issuetype"}
TEXT_FIELDS = {"summary", "description", "comment", "text", "environment"}
KNOWN_FIELDS = {
    "key",
    "project",
    "labels",
    "status",
    "statuscategory",
    "priority",
    "issuetype",
    "assignee",
    "reporter",
    "created",
    "updated",
    *TEXT_FIELDS,
}


@dataclass
class Query:
    where: Predicate | None
    order: list[tuple[str, bool]]  # (field, descending)


class JqlParser:
    """Recursive descent over the JQL grammar clients send: clauses, AND/OR/NOT, (), ORDER BY."""

    def __init__(self, jql: str, site: JiraSite, project_key: str) -> None:
        self.tokens = tokenize(jql)
        self.at = 0
        self.site = site  # the issues' values, and whether a named issue key exists
        self.project_key = project_key

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
        return lambda issue: bool(wanted & get(issue, name)) != negate

    def _check_keys(self, keys: list[str]) -> None:
        """Jira refuses JQL naming an issue key that does not exist."""
        for key in keys:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*-\d+|\d+", key):
                raise JqlError(f"The issue key '{key}' for field 'key' is invalid.")
            if key.isdigit():
                continue
            if key.split("-")[0].upper() != self.project_key:
                raise JqlError(f"The issue key '{key}' for field 'key' is invalid.")
            if self.site.find(key) is None:
                raise JqlError(f"An issue with key '{key}' does not exist for field 'key'.")

    def _emptiness(self, name: str, negate: bool) -> Predicate:
        get = self.site.values_of
        return lambda issue: (not get(issue, name)) != negate

    def _compare(self, name: str, op: str, value: str) -> Predicate:
        if name not in {"created", "updated"}:
            raise JqlError(f"The operator '{op}' is not supported by the '{name}' field.")
        try:
            bound = datetime.fromisoformat(value.replace("/", "-")).replace(tzinfo=UTC)
        except ValueError as exc:
            raise JqlError(f"Date value '{value}' for field '{name}' is invalid.") from exc
        relation = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}[op]
        return lambda issue: bool(relation(getattr(issue, name), bound))


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


def search(site: JiraSite, jql: str) -> list[Issue]:
    """The issues of ``site`` matching ``jql``, in its ORDER BY (default: newest first)."""
    query = JqlParser(jql, site, PROJECT["key"]).parse()
    if query.where is None:
        raise JqlError(UNBOUNDED)
    found = [issue for issue in site.issues.values() if query.where(issue)]
    order = query.order or [("created", True)]
    for name, descending in reversed(order):
        found.sort(key=partial(_sort_key, name), reverse=descending)
    return found


def _sort_key(name: str, issue: Issue) -> int | str | datetime:
    """What ORDER BY ``name`` compares (one type per field, so any two issues compare)."""
    if name == "key":
        return int(issue.key.split("-")[1])
    if name == "created":
        return issue.created
    if name == "updated":
        return issue.updated
    if name == "priority":
        return -int(issue.priority)  # Highest sorts last ascending, like Jira
    if name == "summary":
        return issue.summary.lower()
    return issue.key
