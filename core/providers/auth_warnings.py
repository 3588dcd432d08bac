"""Credentials about to stop working, as data: ``anomaly-desk check`` prints them, the receiver's
health and the dashboard's header can show them.

* a ServiceNow connection on basic auth whose instance has the basic-auth restriction active or
  scheduled (``sys_properties``, read through the Table API when the account may; when it may not,
  a note says the state is unknown);
* an OAuth token request that failed (refused, or the token endpoint down);
* a Jira credential refused as expired (a 401 whose words say the API token expired).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from anomaly_desk.core.connections import Connection, Platform
from anomaly_desk.core.providers import AuthError, Provider, ProviderError, make_provider
from anomaly_desk.core.providers.oauth import TokenError, TokenUnavailableError

if TYPE_CHECKING:
    from anomaly_desk.core.providers.servicenow import BasicAuthRestriction

WarningKind = Literal[
    "basic_auth_restriction",  # ServiceNow blocks (or will block) basic auth
    "restriction_unknown",  # a note: the restriction's properties are not readable
    "token_request_failed",  # an OAuth token request failed
    "credential_expired",  # Jira refused the API token as expired
]
NOTES: frozenset[WarningKind] = frozenset({"restriction_unknown"})  # said, not warned about
OAUTH_ADVICE = 'move this connection to auth = "oauth_client_credentials" or "oauth_password"'
_EXPIRED = re.compile(r"\bexpired?\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class AuthWarning:
    """One connection's credential trouble; ``message`` never holds a secret."""

    connection: str
    kind: WarningKind
    message: str

    @property
    def is_note(self) -> bool:
        return self.kind in NOTES

    def to_json(self) -> dict[str, str]:
        return {"connection": self.connection, "kind": self.kind, "message": self.message}


def failure_warning(connection: str, exc: BaseException) -> AuthWarning | None:
    """The warning a failed request stands for, if any (advice; the error has the details)."""
    if isinstance(exc, TokenError):
        return AuthWarning(
            connection,
            "token_request_failed",
            f"the OAuth token request was refused ({exc.reason}, HTTP {exc.status}): check "
            "client_id and the client secret (revoked or rotated?)",
        )
    if isinstance(exc, TokenUnavailableError):
        return AuthWarning(
            connection,
            "token_request_failed",
            f"the OAuth token endpoint is failing ({exc.reason}, HTTP {exc.status}); requests "
            "wait until it answers",
        )
    if isinstance(exc, AuthError) and exc.status == 401 and _EXPIRED.search(exc.message):
        return AuthWarning(
            connection,
            "credential_expired",
            "the API token has expired: create a new one at "
            "https://id.atlassian.com/manage-profile/security/api-tokens (they last at most a "
            "year) and update the secret",
        )
    return None


async def restriction_warning(provider: Provider) -> AuthWarning | None:
    """For a ServiceNow connection on basic auth: the instance's basic-auth restriction."""
    from anomaly_desk.core.providers.servicenow import ServiceNowClient

    if not isinstance(provider, ServiceNowClient) or provider.auth_mode != "basic":
        return None
    state = await provider.basic_auth_restriction()
    if not state.readable:
        return AuthWarning(
            provider.name,
            "restriction_unknown",
            f"basic-auth restriction: unknown; sys_properties not readable ({state.reason})",
        )
    if not state.applies:
        return None
    return AuthWarning(
        provider.name,
        "basic_auth_restriction",
        f"ServiceNow basic-auth restriction {_restriction_state(state)} on this instance (basic "
        f"auth refused to accounts without the snc_basic_auth_api_access role); {OAUTH_ADVICE}",
    )


def _restriction_state(state: BasicAuthRestriction, now: datetime | None = None) -> str:
    """``enforced since 2025-01-01 00:00:00`` / ``scheduled for …`` / ``active``."""
    date = state.enforcement_date
    when = _glide_time(date) if date else None
    passed = when is None or when <= (now or datetime.now(UTC))
    if state.enforce:
        if date is None:
            return "enforced"
        return f"enforced since {date}" if passed else f"scheduled for {date}"
    watching = "active (identifying accounts that use basic auth)"
    if date:
        return f"{watching if state.active else 'not active'}; enforcement date {date}"
    return watching


def _glide_time(text: str) -> datetime | None:
    for pattern in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(text.strip(), pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


async def provider_warnings(provider: Provider, failure: BaseException | None) -> list[AuthWarning]:
    """The warnings for a provider whose ``check()`` just ended (``failure``: how it failed)."""
    if failure is not None:
        warning = failure_warning(provider.name, failure)
        return [warning] if warning else []
    try:
        restriction = await restriction_warning(provider)
    except ProviderError as exc:
        restriction = AuthWarning(
            provider.name,
            "restriction_unknown",
            f"basic-auth restriction: unknown; reading sys_properties failed ({exc.plain()})",
        )
    return [restriction] if restriction else []


async def connection_warnings(
    conn: Connection, platform: Platform | None = None, *, wait_s: float = 10.0
) -> list[AuthWarning]:
    """Check one connection with a client of its own and say what warns."""
    provider = make_provider(conn, platform)
    try:
        failure: BaseException | None = None
        try:
            await asyncio.wait_for(provider.check(), wait_s)
        except (ProviderError, TimeoutError) as exc:
            failure = exc
        return await asyncio.wait_for(provider_warnings(provider, failure), wait_s)
    except TimeoutError:
        return []
    finally:
        await provider.aclose()


async def auth_warnings(
    connections: Sequence[Connection], platform: Platform | None = None, *, wait_s: float = 10.0
) -> list[AuthWarning]:
    """Every connection's warnings (checked concurrently), in the connections' order."""
    found = await asyncio.gather(
        *(connection_warnings(conn, platform, wait_s=wait_s) for conn in connections)
    )
    return [warning for warnings in found for warning in warnings]
