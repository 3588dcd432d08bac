"""``anomaly-desk check``: is the configuration valid, and does every connection work?

Run before ``serve`` or after changing a credential: it loads the configuration exactly as the
receiver does (so the same error comes up here first), then asks each provider who we are, and
the platform's API (when ``[platform]`` has a URL and a token) how many anomalies are open, all
at once, each bounded by ``--timeout``. Exit 0 only when every one of them answered.

Under each connection: its auth mode, the base URL its API is called at and (Jira, scoped token
or OAuth) the site's cloud id; then any warning about its credentials (``auth_warnings``: a
ServiceNow basic-auth restriction, a failed OAuth token request, an expired Jira API token).
Warnings do not change the exit status.

Then every template (each connection's and each rule's) rendered against a fixture anomaly: its
first line, or the error with the template's line; a failing template fails the check.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TextIO

from anomaly_desk.core.config import ConfigError, Settings, load_settings
from anomaly_desk.core.connections import Connection, Platform
from anomaly_desk.core.providers import (
    AuthError,
    NotFoundError,
    Provider,
    ProviderError,
    RateLimitedError,
    UnavailableError,
    ValidationError,
    make_provider,
)
from anomaly_desk.core.providers.auth_warnings import AuthWarning, provider_warnings
from anomaly_desk.core.providers.jira import JiraClient, public_url
from anomaly_desk.core.providers.platform import RefusedError, make_platform_client
from anomaly_desk.template_check import check_templates, print_templates

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
MIN_SCRUB = 8  # shorter secrets (the sandbox's "demo") would blank out ordinary words
# Most specific first: the label says which kind of trouble it is, the message says the rest.
_KINDS: tuple[tuple[type[ProviderError], str], ...] = (
    (AuthError, "auth"),
    (RefusedError, "refused"),
    (ValidationError, "validation"),
    (NotFoundError, "not found"),
    (RateLimitedError, "rate limited"),
    (UnavailableError, "unavailable"),
)


@dataclass(frozen=True, slots=True)
class Result:
    """How one connection's (or the platform's) check went."""

    name: str
    kind: str  # the provider, or "platform"
    url: str
    ok: bool
    detail: str  # "as bot@acme.com" / "auth: User Not Authenticated (HTTP 401)"
    elapsed_ms: float
    auth: str = ""  # "auth: scoped_token  api: https://…/ex/jira/<id>  cloud id: <id>"
    warnings: tuple[AuthWarning, ...] = field(default=())


def main(args: argparse.Namespace) -> int:
    """The ``check`` subcommand (see ``anomaly_desk.cli``)."""
    if args.timeout <= 0:
        print("anomaly-desk check: --timeout must be more than 0 seconds", file=sys.stderr)
        return EXIT_CONFIG
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"anomaly-desk check: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return report(settings, timeout=args.timeout, out=sys.stdout)


def report(settings: Settings, *, timeout: float, out: TextIO) -> int:
    """Print the config summary and one line per connection; the exit status."""
    source = settings.source or "none found (defaults and environment only)"
    print(f"config    {source}", file=out)
    receiver = settings.receiver
    auth = "on" if settings.has_webhook_auth else "off"
    print(
        f"receiver  http://{receiver.host}:{receiver.port}  data: {settings.data_dir}  "
        f"webhook auth: {auth}",
        file=out,
    )
    print(_platform_summary(settings.platform), file=out)
    results = asyncio.run(check_all(settings, timeout))
    templates = check_templates(settings)  # rendered against a fixture anomaly
    secrets = _secrets(settings)
    if results:
        name_width = max(len(r.name) for r in results)
        kind_width = max(len(r.kind) for r in results) + 2
        for r in results:
            status = "ok" if r.ok else "FAIL"
            detail = f"{r.detail}  {r.elapsed_ms:.0f} ms" if r.ok else _scrub(r.detail, secrets)
            print(
                f"{status:<6}{r.name:<{name_width}}  {f'({r.kind})':<{kind_width}}  "
                f"{public_url(r.url)}  {detail}",
                file=out,
            )
            if r.auth:
                print(f"{'':<6}{_scrub(r.auth, secrets)}", file=out)
            for warning in r.warnings:
                label = "note" if warning.is_note else "warning"
                print(f"{'':<6}{label}: {_scrub(warning.message, secrets)}", file=out)
    if not settings.connections:
        print(
            "no connections configured: add a [[connections]] table for each Jira site or "
            "ServiceNow instance",
            file=out,
        )
        return EXIT_FAILED
    _report_rules(settings, timeout, out)
    failed = [r.name for r in results if not r.ok]
    ruled = [r.name for r in results if r.ok and r.kind == "jira"]
    doomed = asyncio.run(check_rule_actions(settings, ruled, timeout))
    for problem in doomed:
        print(f"FAIL  {_scrub(problem, secrets)}", file=out)
    connections = len(settings.connections)
    count = f"{connections} connection{'s' if connections != 1 else ''}"
    if len(results) > connections:
        count += " and the platform"
    warned = sum(not w.is_note for r in results for w in r.warnings)
    warnings = f"; {warned} warning{'s' if warned != 1 else ''}" if warned else ""
    if failed:
        print(
            f"{count}: {len(results) - len(failed)} ok, {len(failed)} failed "
            f"({', '.join(failed)}){warnings}",
            file=out,
        )
        print_templates(templates, out)
        return EXIT_FAILED
    if doomed:
        rules = f"{len(doomed)} rule{'s' if len(doomed) != 1 else ''}"
        print(f"{count}: all ok{warnings}; {rules} can only fail (above)", file=out)
        print_templates(templates, out)
        return EXIT_FAILED
    print(f"{count}: all ok{warnings}", file=out)
    return EXIT_FAILED if print_templates(templates, out) else EXIT_OK


def _report_rules(settings: Settings, timeout: float, out: TextIO) -> None:
    """``rules  2 configured, 1 paused`` and, per paused rule, why (its provider's words)."""
    if not settings.rules:
        return
    from anomaly_desk.rules_cli import paused_rules  # reads the store: only with rules

    paused, unknown = paused_rules(settings, timeout)
    secrets = _secrets(settings)
    count = len(settings.rules)
    state = f"paused: unknown ({unknown})" if unknown else f"{len(paused)} paused"
    print(f"rules     {count} configured, {state}", file=out)
    for rule in paused:
        why = _scrub(rule.paused_reason or f"by the {rule.paused_by or 'operator'}", secrets)
        since = f" since {rule.paused_at}" if rule.paused_at else ""
        print(f"paused    {rule.name} ({rule.connection}){since}: {why}", file=out)


def _platform_summary(platform: Platform) -> str:
    """``platform  Qualytics  https://…  API: on  write-back: on  import on start: off``."""
    where = f"platform  {platform.name}  {platform.url or '(no url)'}"
    if not platform.has_api:
        return f"{where}  API: off (no token)"
    on_off = {True: "on", False: "off"}
    return (
        f"{where}  API: on  write-back: {on_off[platform.writes_back]}  "
        f"import on start: {on_off[platform.import_on_start]}"
    )


async def check_rule_actions(settings: Settings, reachable: list[str], wait_s: float) -> list[str]:
    """What a Jira rule's create can only fail on, read from the project's create screen: an
    issue type the project does not have, a required custom field the rule does not set (the
    desk fills the summary, the description and the rest of its own). A rule like that would
    pause itself after ``pause_after`` refusals; ``check`` says so first."""
    problems: list[str] = []
    for conn in settings.connections:
        rules = [r for r in settings.rules if r.action.connection == conn.name]
        if conn.name not in reachable or not rules:
            continue
        provider = make_provider(conn, settings.platform)
        try:
            for rule in rules:
                where = f"rule {rule.name!r}"
                try:
                    form = await asyncio.wait_for(
                        provider.create_form(rule.action.issue_type), wait_s
                    )
                except NotFoundError as exc:
                    problems.append(f"{where}: {exc.message}")
                    continue
                except (ProviderError, TimeoutError):
                    continue  # the connection's own line says what is wrong with it
                missing = [
                    f"{spec.name} ({spec.id})"
                    for spec in form.fields
                    if spec.required and spec.custom and spec.id not in rule.action.fields
                ]
                if missing:
                    problems.append(
                        f"{where}: {form.ticket_type.name} requires {', '.join(missing)}, "
                        "which the rule's action.fields does not set"
                    )
        finally:
            await provider.aclose()
    return problems


async def check_all(settings: Settings, wait_s: float) -> list[Result]:
    """Every connection, then the platform (with a URL and a token), checked concurrently."""
    checks = [check_one(c, settings, wait_s) for c in settings.connections]
    if settings.platform.has_api:
        checks.append(check_platform(settings.platform, wait_s))
    return list(await asyncio.gather(*checks))


async def check_one(conn: Connection, settings: Settings, wait_s: float) -> Result:
    """One provider ``check()``; any failure becomes a line, never an exception."""
    try:
        provider = make_provider(conn, settings.platform)
    except Exception as exc:  # e.g. verify_tls names a CA bundle that is not there
        return Result(
            conn.name, conn.provider, conn.url, False, f"error: cannot set up the client: {exc}", 0
        )
    started = time.perf_counter()
    try:
        ok, detail, failure = await _run(provider.check(), wait_s, "as ")
        elapsed = (time.perf_counter() - started) * 1000
        warnings = await _warnings(provider, failure, wait_s)
    finally:
        await provider.aclose()
    return Result(
        conn.name,
        conn.provider,
        conn.url,
        ok,
        detail,
        elapsed,
        auth=auth_summary(provider),
        warnings=tuple(warnings),
    )


def auth_summary(provider: Provider) -> str:
    """``auth: scoped_token  api: https://api.atlassian.com/ex/jira/<id>  cloud id: <id>``."""
    mode = getattr(provider, "auth_mode", None)
    if mode is None:
        return ""
    api = public_url(str(getattr(provider, "api_url", None) or getattr(provider, "url", "")))
    line = f"auth: {mode}  api: {api}"
    if isinstance(provider, JiraClient) and mode != "basic":
        line += f"  cloud id: {provider.cloud_id or 'unknown'}"
    return line


async def _warnings(
    provider: Provider, failure: BaseException | None, wait_s: float
) -> list[AuthWarning]:
    """The credential warnings after a check; a slow restriction read is left out, not waited."""
    try:
        return await asyncio.wait_for(provider_warnings(provider, failure), wait_s)
    except TimeoutError:
        return []
    except Exception as exc:  # a warning must never break the check's own line
        name = provider.name
        return [AuthWarning(name, "restriction_unknown", f"could not read: {type(exc).__name__}")]


async def check_platform(platform: Platform, wait_s: float) -> Result:
    """The platform's API: one ``GET /api/anomalies?size=1`` with the token."""
    url = platform.url or ""
    try:
        client = make_platform_client(platform)
    except Exception as exc:  # e.g. verify_tls names a CA bundle that is not there
        return Result(
            platform.name, "platform", url, False, f"error: cannot set up the client: {exc}", 0
        )
    if client is None:  # pragma: no cover - check_all asks only with a URL and a token
        return Result(platform.name, "platform", url, False, "error: no URL or token", 0)
    started = time.perf_counter()
    try:
        ok, detail, _ = await _run(client.check(), wait_s, "")
    finally:
        await client.aclose()
    elapsed = (time.perf_counter() - started) * 1000
    return Result(platform.name, "platform", url, ok, detail, elapsed)


async def _run(
    check: Coroutine[object, object, str], wait_s: float, prefix: str
) -> tuple[bool, str, BaseException | None]:
    """A check's answer as ``(ok, detail, failure)``; any failure becomes a line, never an
    exception."""
    try:
        answer = await asyncio.wait_for(check, wait_s)
    except TimeoutError as exc:
        return False, f"unavailable: no answer within {wait_s:g} s", exc
    except ProviderError as exc:
        return False, _describe(exc), exc
    except Exception as exc:  # a bug or an odd transport failure: still one line, not a trace
        return False, f"error: {type(exc).__name__}: {exc}", exc
    return True, f"{prefix}{answer}", None


def _describe(exc: ProviderError) -> str:
    """``auth: User Not Authenticated (HTTP 401)``: kind, the provider's words, the status."""
    kind = next((label for cls, label in _KINDS if isinstance(exc, cls)), "error")
    status = f" (HTTP {exc.status})" if exc.status else ""
    return f"{kind}: {exc.message}{status}"


def _secrets(settings: Settings) -> list[str]:
    """The resolved secrets long enough to scrub without mangling ordinary words."""
    found: list[str] = []
    values = [
        getattr(c, name, None)
        for c in settings.connections
        for name in ("token", "password", "client_secret")
    ]
    for value in [*values, settings.platform.token]:
        if value is not None and len(value.get_secret_value()) >= MIN_SCRUB:
            found.append(value.get_secret_value())
    return found


def _scrub(text: str, secrets: list[str]) -> str:
    """Belt and braces: a provider echoing a credential in an error must not print it."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
