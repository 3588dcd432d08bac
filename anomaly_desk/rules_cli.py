"""``anomaly-desk rules test FILE|DIR``: which rule would do what with these webhook payloads.

A dry run: the configuration is loaded as ``serve`` loads it, each payload is read as the
receiver reads it (Flow envelopes, anomaly objects, lists), and every anomaly the run has not
seen yet goes through the rules in the order of the files (a directory: its ``*.json`` by name).
Dedup and ``max_per_hour`` are simulated within the run, from an empty state: nothing is sent,
nothing is stored, the store is not read.

Also here: the paused rules of a desk, for ``anomaly-desk check`` (asked of the running
receiver, else read from its data directory).
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import httpx

from anomaly_desk.core.config import ConfigError, Settings, load_settings
from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.rule_runner import rule_view
from anomaly_desk.core.rules import DEDUP_REASONS, Rule, dedup_key, matches, take_token
from anomaly_desk.core.store import Store, StoreError, StoreLocked
from anomaly_desk.core.views import RulePage, RuleView
from anomaly_desk.core.webhooks import PayloadError, parse_delivery

EXIT_OK, EXIT_REFUSED, EXIT_CONFIG = 0, 1, 2
TOKEN_FILE = "operator-token"  # as the receiver names it (receiver/app.py)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rules = commands.add_parser(
        "rules",
        help="try the [[rules]] of the configuration on webhook payloads (a dry run)",
        description="Work with the [[rules]] of the configuration.",
    )
    actions = rules.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    test = actions.add_parser(
        "test",
        help="print which rule would do what for the anomalies of webhook payloads",
        description="Read webhook payloads (files, or directories of *.json sorted by name; "
        "Flow envelopes, anomaly objects or lists, as the receiver takes them) and print, for "
        "each anomaly in order, which rules match and what each would do: create a ticket "
        "(connection, type, fields), link the ticket of an earlier anomaly inside its dedup "
        "window and note it, or nothing because max_per_hour is spent. An anomaly seen earlier "
        "in the run is a change of a stored one: rules act only when an anomaly is first "
        "stored. Dedup and max_per_hour start from nothing and count within the run. Nothing "
        "is sent and nothing is stored.",
        epilog="Exit status: 0 every payload was read; 1 a payload was refused, cannot be "
        "read or is not a regular file (the others are still shown); 2 the configuration is "
        "invalid or a path does not exist.",
    )
    test.add_argument("paths", nargs="+", type=Path, metavar="FILE|DIR")
    test.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="configuration file (default: ./anomaly-desk.toml, then the user config directory; "
        "env ANOMALY_DESK_CONFIG)",
    )
    test.set_defaults(handler="anomaly_desk.rules_cli:main")


def main(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config, resolve_secrets=False)  # a dry run connects nowhere
    except ConfigError as exc:
        print(f"anomaly-desk rules test: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        files = payload_files(args.paths)
    except OSError as exc:
        print(f"anomaly-desk rules test: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return DryRun(settings).run(files, sys.stdout)


def payload_files(paths: list[Path]) -> list[Path]:
    """The files named, a directory's ``*.json`` sorted by name; OSError for a missing one.

    Whatever exists is listed, FIFOs and devices too: reading them says what they are
    (``read_payload``), rather than "no such file" for ``/dev/zero``.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(path.glob("*.json"))
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    return files


class Unreadable(Exception):
    """A payload path that is no regular file, or larger than the receiver takes."""


_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a directory",
    stat.S_IFSOCK: "a socket",
}


def _regular(mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "not a file")
        raise Unreadable(f"not a regular file ({kind}); skipped")


def read_payload(path: Path, limit: int) -> bytes:
    """A regular file's bytes, at most ``limit`` (the receiver's ``max_body_bytes``).

    Checked before opening (opening a device can do something) and again on the open file (it
    may have been replaced); opened non-blocking, so a FIFO never waits for a writer, and read
    no further than the limit, so ``/dev/zero`` or a growing file cannot fill memory.
    """
    _regular(path.stat().st_mode)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        _regular(os.fstat(fd).st_mode)
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise Unreadable(f"larger than max_body_bytes = {limit}; the receiver refuses it")
        return b"".join(chunks)
    finally:
        os.close(fd)


@dataclass
class _RuleRun:
    """What a rule did so far in this run."""

    tickets: dict[str, int] = field(default_factory=dict)  # dedup key -> the anomaly ticketed
    tokens: float | None = None
    tokens_at: float = 0.0
    created: int = 0
    linked: int = 0
    throttled: int = 0


class DryRun:
    """The rules applied to payloads in memory, as the receiver would apply them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kinds = {c.name: c.provider for c in settings.connections}
        self.defaults = {
            c.name: getattr(c, "issue_type", None) or getattr(c, "table", None) or ""
            for c in settings.connections
        }
        self.runs = {rule.name: _RuleRun() for rule in settings.rules}
        self.seen: set[int] = set()
        self.unmatched = 0

    def run(self, files: list[Path], out: TextIO) -> int:
        if not self.settings.rules:
            print("no [[rules]] configured: no anomaly would get a ticket by rule", file=out)
        status = EXIT_OK
        now = time.time()
        limit = self.settings.receiver.max_body_bytes
        for path in files:
            try:
                body = read_payload(path, limit)
            except OSError as exc:
                print(f"{path}: cannot read: {exc.strerror or exc}", file=out)
                status = EXIT_REFUSED
                continue
            except Unreadable as exc:
                print(f"{path}: {exc}", file=out)
                status = EXIT_REFUSED
                continue
            try:
                delivery = parse_delivery(body)
            except PayloadError as exc:
                print(f"{path.name}: refused ({exc.title}): {exc.detail}", file=out)
                status = EXIT_REFUSED
                continue
            print(f"== {path.name}", file=out)
            for item in delivery.quarantined:
                print(f"  quarantined {item.path}: {item.reason}", file=out)
            for anomaly in delivery.anomalies:
                self.anomaly(anomaly, now, out)
        self.summary(out)
        return status

    def anomaly(self, anomaly: Anomaly, now: float, out: TextIO) -> None:
        where = anomaly.location or "no datastore or container"
        weight = "" if anomaly.weight is None else f", weight {anomaly.weight:g}"
        print(f"anomaly {anomaly.id} ({where}, {anomaly.type}{weight}, {anomaly.status})", file=out)
        if anomaly.id in self.seen:
            print("  already stored earlier in this run: rules act on new anomalies only", file=out)
            return
        self.seen.add(anomaly.id)
        matched = [rule for rule in self.settings.rules if matches(rule.match, anomaly)]
        if not matched:
            self.unmatched += 1
            print("  no rule matches", file=out)
        for rule in matched:
            print(f"  rule {rule.name!r}: {self.decide(rule, anomaly, now)}", file=out)

    def decide(self, rule: Rule, anomaly: Anomaly, now: float) -> str:
        state = self.runs[rule.name]
        taken, state.tokens, state.tokens_at = take_token(
            rule.max_per_hour, state.tokens, state.tokens_at, now
        )
        if not taken:
            state.throttled += 1
            return f"throttled: max_per_hour = {rule.max_per_hour} spent; no ticket"
        if rule.dedup is not None:
            key = dedup_key(rule.dedup.key, anomaly)
            earlier = state.tickets.get(key)
            if earlier is not None:
                state.linked += 1
                reason = DEDUP_REASONS[rule.dedup.key]
                return (
                    f"link the ticket of anomaly {earlier} ({reason}, within "
                    f"{rule.dedup.window}, while it is not done) and note it there"
                )
            state.tickets[key] = anomaly.id
        state.created += 1
        return self.creation(rule)

    def creation(self, rule: Rule) -> str:
        action = rule.action
        kind = self.kinds.get(action.connection, "?")
        chosen = action.issue_type or action.table
        what = chosen or f"{self.defaults.get(action.connection) or 'ticket'} (the default)"
        text = f"create a ticket on {action.connection} ({kind}): {what}"
        if action.fields:
            shown = ", ".join(
                f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in action.fields.items()
            )
            text += f", {shown}"
        if action.templates is not None:
            text += f"; templates: {', '.join(action.templates.defined())}"
        return text

    def summary(self, out: TextIO) -> None:
        print("", file=out)
        for rule in self.settings.rules:
            run = self.runs[rule.name]
            print(
                f"rule {rule.name!r}: {run.created} to create, {run.linked} to link, "
                f"{run.throttled} throttled",
                file=out,
            )
        print(
            f"{len(self.seen)} anomal{'y' if len(self.seen) == 1 else 'ies'}, "
            f"{self.unmatched} matched by no rule",
            file=out,
        )


# -- for ``anomaly-desk check`` -------------------------------------------------------------


def paused_rules(settings: Settings, timeout: float = 10.0) -> tuple[list[RuleView], str | None]:
    """The desk's paused rules, from the receiver that holds its data directory (else from the
    directory itself); with why they are unknown, when they are."""
    if not settings.rules or not settings.data_dir.is_dir():
        return [], None
    try:
        store = Store(settings.data_dir).open()
    except StoreLocked as exc:
        url = exc.holder.get("url")
        if not isinstance(url, str):
            return [], "a receiver holds the data directory and names no address"
        return _asked(url, settings.data_dir, timeout)
    except (StoreError, OSError) as exc:
        return [], f"cannot read the data directory: {exc}"
    try:
        paused = []
        for rule in settings.rules:
            state = store.rule_state(rule.name)
            if state is not None and state.paused:
                paused.append(rule_view(rule, state))
        return paused, None
    finally:
        store.close_sync()


def _asked(url: str, data_dir: Path, timeout: float) -> tuple[list[RuleView], str | None]:
    headers = {}
    token = data_dir / TOKEN_FILE
    if token.is_file():
        headers["authorization"] = f"Bearer {token.read_text().strip()}"
    try:
        answer = httpx.get(f"{url}/api/rules", headers=headers, timeout=timeout)
        answer.raise_for_status()
        page = RulePage.model_validate_json(answer.content)
    except (httpx.HTTPError, ValueError) as exc:
        return [], f"the receiver at {url} did not say ({type(exc).__name__})"
    return [rule for rule in page.items if rule.paused], None
