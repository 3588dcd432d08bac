"""``anomaly-desk replay``: post webhook payloads to a receiver, as the platform would.

For trying a setup end to end (a production receiver behind TLS with its secret, or a local one),
and for the demo, which replays ``fixtures/webhooks`` through the same code. Every file is
checked to be JSON before anything is sent, so a typo never leaves a receiver half-fed.
Secrets are never printed: not in progress lines, not in errors, not in the summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import ssl
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import httpx
from aiolimiter import AsyncLimiter

WEBHOOK_PATH = "/webhooks/qualytics"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
ENV_PREFIX = "env:"  # ``--secret env:NAME`` reads the value from the environment
REFUSED = "connection refused"


class UsageError(Exception):
    """Bad arguments or a bad file: nothing was sent (exit 2)."""


class Unreachable(Exception):
    """The receiver could not be reached at all: stop rather than fail every file (exit 1)."""


@dataclass(frozen=True, slots=True)
class Payload:
    """One file's bytes, checked to be JSON, and whether it carries a status change."""

    name: str
    body: bytes
    status_change: bool = False


@dataclass(slots=True)
class Result:
    """What became of one delivery: ``status`` None means no HTTP answer (``problem`` says why)."""

    name: str
    status: int | None
    problem: str = ""
    elapsed_ms: float = 0.0
    duplicate: bool = False
    anomalies: list[int] = field(default_factory=list)
    unchanged: bool = False  # stored, but nothing in it was new (the same state again)
    stale: int = 0  # anomalies whose state was older than the one stored: ignored
    quarantined: int = 0  # items without a usable id, kept aside by the receiver

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


# ------------------------------------------------------------------------------- the files


def collect_files(paths: Sequence[Path]) -> list[Path]:
    """Files as given; a directory contributes its ``*.json``, sorted by name (fixtures are
    numbered so detections come before the status changes that refer to them)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.glob("*.json") if p.is_file())
            if not found:
                raise UsageError(f"{path}: no *.json files in this directory")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"{path}: no such file or directory")
    return files


def load_payloads(files: Sequence[Path]) -> list[Payload]:
    """Read and check every file; the first bad one stops everything with its name and position."""
    payloads: list[Payload] = []
    for path in files:
        try:
            body = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"{path}: cannot read: {exc.strerror or type(exc).__name__}") from None
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(f"{path}: not UTF-8 (bad byte at offset {exc.start})") from None
        try:
            data = json.loads(text, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"{path}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            ) from None
        except ValueError as exc:
            raise UsageError(f"{path}: not valid JSON: {exc}") from None
        if not isinstance(data, dict | list):
            raise UsageError(
                f"{path}: the top level is a JSON {type(data).__name__}; a webhook body is an "
                "object (a Flow envelope or an anomaly) or an array of anomalies"
            )
        payloads.append(Payload(path.name, body, _is_status_change(data)))
    return payloads


def _no_constant(name: str) -> Any:
    """Python's json reads NaN and Infinity; JSON (and the receiver) does not."""
    raise ValueError(f"{name} is not a JSON value")


def _is_status_change(data: Any) -> bool:
    """A Flow envelope whose trigger is a status change (its spellings vary)."""
    trigger = data.get("trigger") if isinstance(data, dict) else None
    kind = str(trigger.get("type", "")) if isinstance(trigger, dict) else ""
    return "status" in kind.lower()


# ------------------------------------------------------------------------------- sending


def webhook_url(url: str) -> str:
    """The receiver's base URL or its full webhook URL, either way the webhook URL."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--url: {redact(url)!r} is not an http(s):// URL")
    path = parts.path.rstrip("/")
    if not path.endswith(WEBHOOK_PATH):
        path += WEBHOOK_PATH
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def redact(url: str) -> str:
    """The URL without any ``user:password@`` part, for messages."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def secret_value(value: str | None, option: str) -> str | None:
    """``--secret S`` or ``--secret env:NAME`` (keeps the secret out of shell history)."""
    if value is None or not value.startswith(ENV_PREFIX):
        return value
    name = value.removeprefix(ENV_PREFIX)
    found = os.environ.get(name)
    if not found:
        raise UsageError(f"{option}: environment variable {name} is unset or empty")
    return found


class Auth:
    """The headers that authenticate one delivery; ``repr`` never shows a secret."""

    def __init__(
        self, secret: str | None = None, signing_key: str | None = None, bearer: str | None = None
    ) -> None:
        self._secret = secret
        self._bearer = bearer
        self._signer: Any = None
        if signing_key is not None:
            from standardwebhooks.webhooks import Webhook

            if not signing_key.startswith("whsec_"):
                raise UsageError("--sign-standard: a Standard Webhooks key starts with whsec_")
            try:
                self._signer = Webhook(signing_key)
            except Exception:  # binascii.Error, empty key: the message could quote the key
                raise UsageError(
                    "--sign-standard: not a Standard Webhooks key (whsec_ followed by base64)"
                ) from None

    def __repr__(self) -> str:
        used = [n for n, v in (("secret", self._secret), ("signature", self._signer)) if v]
        return f"Auth({', '.join([*used, 'bearer'] if self._bearer else used) or 'none'})"

    def headers(self, body: bytes) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self._secret is not None:
            headers["x-qualytics-secret"] = self._secret
        if self._bearer is not None:
            headers["authorization"] = f"Bearer {self._bearer}"
        if self._signer is not None:  # a fresh id per delivery: each one is new to the receiver
            msg_id = f"msg_{uuid.uuid4().hex}"
            now = datetime.now(UTC)
            headers["webhook-id"] = msg_id
            headers["webhook-timestamp"] = str(int(now.timestamp()))
            headers["webhook-signature"] = self._signer.sign(msg_id, now, body.decode("utf-8"))
        return headers


def rate_limiter(rate: float | None) -> AsyncLimiter | None:
    """At most ``rate`` starts per second, evenly spaced: a leaky bucket that holds one start
    and drains one every ``1/rate`` seconds, so there is never a burst (``AsyncLimiter(rate, 1)``
    would allow ``rate`` starts at once). None: no limit. Make it inside the running loop."""
    return AsyncLimiter(1, 1 / rate) if rate else None


class Sender:
    """Posts payloads to one receiver over one connection pool."""

    def __init__(
        self,
        url: str,
        auth: Auth,
        timeout: float = 30.0,
        verify: bool | ssl.SSLContext = True,
        concurrency: int = 1,
    ) -> None:
        self.url = webhook_url(url)
        self.auth = auth
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), verify=verify, limits=limits, follow_redirects=False
        )

    async def __aenter__(self) -> Sender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def send(self, payload: Payload, label: str | None = None) -> Result:
        """One delivery; raises ``Unreachable`` when nothing answers at the address."""
        name = label or payload.name
        started = time.perf_counter()
        try:
            response = await self._http.post(
                self.url, content=payload.body, headers=self.auth.headers(payload.body)
            )
        except httpx.ConnectError as exc:
            reason = _reason(exc)
            hint = " — is the receiver running?" if reason == REFUSED else ""
            raise Unreachable(f"cannot connect to {redact(self.url)}: {reason}{hint}") from None
        except httpx.TimeoutException as exc:
            return Result(name, None, f"no answer in time ({type(exc).__name__})", _ms(started))
        except httpx.TransportError as exc:
            return Result(name, None, f"{type(exc).__name__}: {_reason(exc)}", _ms(started))
        return _result(name, response, _ms(started))


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _reason(exc: BaseException) -> str:
    """The root cause in words: httpx's async message ("All connection attempts failed")
    hides a refused connection two exceptions down."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    for cause in chain:
        if isinstance(cause, ConnectionRefusedError):
            return REFUSED
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve the host name ({cause.strerror})"
        if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(
            cause
        ):
            return "TLS certificate not trusted (pass its CA with --ca-bundle)"
    return str(exc) or type(exc).__name__


def _result(name: str, response: httpx.Response, elapsed_ms: float) -> Result:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    if response.is_success:
        ids = [
            *body.get("created", []),
            *body.get("updated", []),
            *body.get("unchanged", []),
            *body.get("stale", []),
        ]
        return Result(
            name,
            response.status_code,
            elapsed_ms=elapsed_ms,
            duplicate=bool(body.get("duplicate")),
            anomalies=[i for i in ids if isinstance(i, int)],
            unchanged=bool(ids) and not body.get("created") and not body.get("updated"),
            stale=len(body.get("stale") or ()),
            quarantined=len(body.get("quarantined") or ()),
        )
    if response.is_redirect:
        where = response.headers.get("location", "?")
        return Result(
            name, response.status_code, f"redirected to {where}; use that URL", elapsed_ms
        )
    title = str(body.get("title") or response.reason_phrase)
    detail = str(body.get("detail") or "")
    if not body and response.text:
        detail = response.text.strip().splitlines()[0][:200]
    problem = f"{title}: {detail}" if detail and detail != title else title
    ours = str(body.get("type") or "").startswith("https://anomaly-desk.dev/")
    if response.status_code in (404, 405) and not ours:  # another server, or a wrong path
        problem += f" (is this an Anomaly Desk receiver? it takes POST {WEBHOOK_PATH})"
    for error in body.get("errors") or []:
        if isinstance(error, dict):
            item = f"{error.get('path', '?')}: {error.get('message', '')}"
            if item not in problem:  # the detail often lists them already
                problem += f"; {item}"
    return Result(name, response.status_code, problem, elapsed_ms)


async def replay(
    payloads: Sequence[Payload],
    sender: Sender,
    *,
    repeat: int = 1,
    rate: float | None = None,
    concurrency: int = 1,
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Every payload, ``repeat`` times, in order (with ``concurrency`` 1), at most ``rate``/s."""
    labelled = [
        (p, p.name if repeat == 1 else f"{p.name} #{round_ + 1}")
        for round_ in range(repeat)
        for p in payloads
    ]
    limiter = rate_limiter(rate)
    results: list[Result] = []
    queue: asyncio.Queue[tuple[Payload, str]] = asyncio.Queue()
    for item in labelled:
        queue.put_nowait(item)

    async def work() -> None:
        while not queue.empty():
            payload, label = queue.get_nowait()
            if limiter is not None:
                await limiter.acquire()
            result = await sender.send(payload, label)
            results.append(result)
            if on_result is not None:
                on_result(result)

    workers = [asyncio.create_task(work()) for _ in range(max(1, concurrency))]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    return results


# ------------------------------------------------------------------------------- reporting


def status_counts(results: Sequence[Result]) -> str:
    """``200 ×9`` / ``200 ×7  401 ×2`` / ``no answer ×1``, most frequent first."""
    counts = Counter(str(r.status) if r.status is not None else "no answer" for r in results)
    return "  ".join(f"{code} ×{n}" for code, n in counts.most_common())


def summary(results: Sequence[Result], total: int, url: str, elapsed_s: float) -> str:
    lines = [
        f"{len(results)} of {total} deliveries to {redact(url)} in {elapsed_s:.2f} s: "
        f"{status_counts(results) or 'none sent'}"
    ]
    duplicates = sum(r.duplicate for r in results)
    if duplicates:
        lines.append(
            f"  {duplicates} recognised as redeliveries (a webhook-id seen before): "
            "accepted, nothing changed"
        )
    unchanged = sum(r.unchanged and not r.duplicate for r in results)
    if unchanged:
        lines.append(f"  {unchanged} carried nothing new (the same state again): nothing changed")
    stale = sum(r.stale for r in results)
    if stale:
        lines.append(f"  {stale} anomaly states older than the stored ones: recorded, ignored")
    quarantined = sum(r.quarantined for r in results)
    if quarantined:
        lines.append(f"  {quarantined} items without a usable id quarantined (GET /api/quarantine)")
    failed = [r for r in results if not r.ok]
    if failed:
        lines.append(f"failed ({len(failed)}):")
        width = max(len(r.name) for r in failed)
        for r in failed:
            code = str(r.status) if r.status is not None else "---"
            lines.append(f"  {r.name:<{width}}  {code}  {r.problem}")
    return "\n".join(lines)


def progress_line(result: Result, width: int = 0) -> str:
    """``200  01-flow-anomalies-detected.json   12 ms  anomalies 10231,10232``."""
    code = str(result.status) if result.status is not None else "---"
    what = result.problem
    if result.ok:
        ids = ",".join(str(i) for i in result.anomalies) or "-"
        what = f"anomalies {ids}" + (
            " (redelivery)" if result.duplicate else " (nothing new)" if result.unchanged else ""
        )
    return f"{code}  {result.name:<{width}}  {result.elapsed_ms:4.0f} ms  {what}"


class Progress:
    """A rich progress bar on a terminal, one plain line per delivery otherwise."""

    def __init__(self, total: int, stream: TextIO, width: int = 0) -> None:
        self._stream = stream
        self._width = width
        self._bar: Any = None
        if stream.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import Progress as Bar

            self._bar = Bar(
                TextColumn("replay"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[last]}"),
                TimeElapsedColumn(),
                console=Console(file=stream),
                transient=False,
            )
            self._task = self._bar.add_task("replay", total=total, last="")

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, result: Result) -> None:
        if self._bar is not None:
            if not result.ok:
                self._bar.console.print(progress_line(result), markup=False, highlight=False)
            self._bar.update(self._task, advance=1, last=f"{result.status or '---'}")
        else:
            print(progress_line(result, self._width), file=self._stream, flush=True)


# ------------------------------------------------------------------------------- the command


def trust(ca_bundle: Path | None) -> bool | ssl.SSLContext:
    """The system's CAs, or only the given one (a private CA in front of a receiver)."""
    if ca_bundle is None:
        return True
    if not ca_bundle.is_file():
        raise UsageError(f"--ca-bundle: {ca_bundle} is not a file")
    try:
        return ssl.create_default_context(cafile=str(ca_bundle))
    except (ssl.SSLError, OSError) as exc:
        raise UsageError(f"--ca-bundle: {ca_bundle} is not a PEM CA file ({exc})") from None


def main(args: argparse.Namespace) -> int:
    """The ``replay`` subcommand (see ``anomaly_desk.cli``)."""
    try:
        if args.repeat < 1:
            raise UsageError("--repeat: must be 1 or more")
        if args.concurrency < 1:
            raise UsageError("--concurrency: must be 1 or more")
        if args.rate is not None and args.rate <= 0:
            raise UsageError("--rate: must be more than 0 deliveries per second")
        if args.timeout <= 0:
            raise UsageError("--timeout: must be more than 0 seconds")
        url = webhook_url(args.url)
        auth = Auth(
            secret_value(args.secret, "--secret"),
            secret_value(args.sign_standard, "--sign-standard"),
            secret_value(args.bearer, "--bearer"),
        )
        verify = trust(args.ca_bundle)
        payloads = load_payloads(collect_files(args.paths))
    except UsageError as exc:
        print(f"anomaly-desk replay: {exc}", file=sys.stderr)
        print("anomaly-desk replay: nothing was sent", file=sys.stderr)
        return EXIT_USAGE
    total = len(payloads) * args.repeat
    results: list[Result] = []
    started = time.perf_counter()

    async def run() -> None:
        async with Sender(url, auth, args.timeout, verify, args.concurrency) as sender:
            suffix = len(f" #{args.repeat}") if args.repeat > 1 else 0
            width = max(len(p.name) for p in payloads) + suffix
            with Progress(total, sys.stderr, width) as progress:

                def done(result: Result) -> None:
                    results.append(result)
                    progress.advance(result)

                await replay(
                    payloads,
                    sender,
                    repeat=args.repeat,
                    rate=args.rate,
                    concurrency=args.concurrency,
                    on_result=done,
                )

    try:
        asyncio.run(run())
    except Unreachable as exc:
        print(summary(results, total, url, time.perf_counter() - started))
        print(f"anomaly-desk replay: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(summary(results, total, url, time.perf_counter() - started))
    return EXIT_OK if len(results) == total and all(r.ok for r in results) else EXIT_FAILED
