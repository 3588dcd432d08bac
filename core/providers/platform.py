"""The data-quality platform's own API (``{platform.url}/api``, modelled on Qualytics'):
list, read, acknowledge and archive anomalies, comment on them.

Requests go through the shared loop of ``http`` with the platform's own dialect (errors as
``{"detail": ...}``): reads retry a transient failure, writes are sent once (the desk's durable
outbox retries them; an ``ambiguous`` error means the write may have landed: look before sending
it again, ``comments`` for a comment). On top of the loop's classes, 409 and 422 are
``RefusedError``: the platform understood the request and will not do it (an archived anomaly
takes no comment and no status; a status it does not know).

The token travels only in the ``Authorization`` header: never in a URL, a message, a log line or
a repr.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Generator, Sequence
from datetime import UTC, date, datetime
from typing import cast

import httpx
from pydantic import JsonValue

from anomaly_desk.core.connections import Platform
from anomaly_desk.core.jsontypes import loads_any
from anomaly_desk.core.providers.errors import (
    AuthError,
    ProviderError,
    UnavailableError,
    ValidationError,
)
from anomaly_desk.core.providers.http import (
    READ_RETRY,
    BadAnswer,
    ErrorText,
    JsonBody,
    Params,
    ReadRetry,
    RequestLoop,
    public_url,
    tls_verify,
)
from anomaly_desk.core.providers.platform_payloads import (
    AnomalyPagePayload,
    ArchivedFilter,
    ArchiveStatus,
    PlatformAnomaly,
    PlatformComment,
)

MAX_PAGE_SIZE = 100  # the platform refuses more (422)
REFUSED = frozenset({409, 422})


class RefusedError(ValidationError):
    """409/422: the platform understood the request and will not do it; retrying will not help.

    ``message`` is the platform's ``detail``; ``field_errors`` maps a parameter to its complaint
    when the platform named one (422). ``conflict`` is True for a 409: the anomaly's state forbids
    it (archived).
    """

    @property
    def conflict(self) -> bool:
        return self.status == 409


class BearerToken(httpx.Auth):
    """``Authorization: Bearer <token>`` on every request; the token shows in no repr."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "BearerToken('***')"


def _detail(response: httpx.Response) -> tuple[str, dict[str, str]]:
    """The platform's words: ``{"detail": "..."}``, or FastAPI's list of ``{loc, msg}``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str) and detail:
        return detail, {}
    field_errors: dict[str, str] = {}
    messages: list[str] = []
    if isinstance(detail, list):
        for item in detail:
            if not isinstance(item, dict):
                messages.append(str(item))
                continue
            loc = [str(part) for part in item.get("loc") or [] if part not in ("query", "body")]
            msg = str(item.get("msg") or "invalid")
            if loc:
                field_errors[".".join(loc)] = msg
                messages.append(f"{'.'.join(loc)}: {msg}")
            else:
                messages.append(msg)
    elif detail is not None:
        messages.append(str(detail))
    if not messages:
        snippet = re.sub(r"<[^>]+>|\s+", " ", response.text or "").strip()[:200]
        messages = [snippet or response.reason_phrase or "no details"]
    return "; ".join(messages), field_errors


class PlatformDialect:
    """How the platform answers: JSON bodies (empty for an archive); errors as ``detail``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def error_text(self, response: httpx.Response) -> ErrorText:
        message, field_errors = _detail(response)
        return ErrorText(message, field_errors, refused_fields=response.status_code in REFUSED)

    def decode(self, response: httpx.Response) -> JsonValue:
        if not response.content:
            return None
        try:
            value: JsonValue = loads_any(response.content)  # 10**400 or NaN kept as text
        except ValueError:
            raise BadAnswer(
                f"{self.name} answered {response.status_code} with a body that is not JSON"
            ) from None
        return value


class PlatformLoop(RequestLoop):
    """The shared loop, with 409/422 as ``RefusedError`` (the loop's classes for the rest)."""

    def http_error(self, response: httpx.Response, write: bool) -> ProviderError:
        if response.status_code in REFUSED:
            text = self.dialect.error_text(response)
            return RefusedError(
                self._scrub(text.message),
                field_errors={k: self._scrub(v) for k, v in text.field_errors.items()},
                status=response.status_code,
                connection=self.connection,
            )
        return super().http_error(response, write)


def _moment(since: date) -> str:
    """``start_date``: ``YYYY-MM-DD`` for a day, ISO 8601 in UTC (``Z``) for a time."""
    if not isinstance(since, datetime):
        return since.isoformat()
    moment = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class PlatformClient:
    """The platform's API; one ``httpx.AsyncClient`` for the client's lifetime."""

    def __init__(
        self,
        platform: Platform,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: ReadRetry = READ_RETRY,
    ) -> None:
        if not platform.url:
            raise ValueError("the platform has no url: its API lives at {url}/api")
        self.platform = platform
        self.name = platform.name
        self.url = public_url(platform.url).rstrip("/")
        token = platform.token.get_secret_value() if platform.token else ""
        self._has_token = bool(token)
        self._http = httpx.AsyncClient(
            base_url=f"{self.url}/api",
            auth=BearerToken(token),
            timeout=httpx.Timeout(platform.timeout, connect=min(platform.timeout, 10.0)),
            verify=tls_verify(platform.verify_tls),
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "anomaly-desk"},
            follow_redirects=False,
        )
        self._loop = PlatformLoop(
            self._http,
            PlatformDialect(self.name),
            connection=self.name,
            url=self.url,
            timeout=platform.timeout,
            secret=token,
            retry=retry,
        )

    def __repr__(self) -> str:
        return f"PlatformClient(name={self.name!r}, url={self.url!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> PlatformClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ transport

    async def _request(
        self, method: str, path: str, *, params: Params | None = None, json: JsonBody = None
    ) -> JsonValue:
        """One call through the shared loop: reads retry transient failures, writes go once."""
        if not self._has_token:
            raise AuthError(
                "no API token configured (set token_env or token_keyring in [platform])",
                connection=self.name,
            )
        return await self._loop.request(method, path, params=params, json=json)

    def _not_the_api(self, what: str, *, write: bool = False) -> UnavailableError:
        """A success whose body lacks what the API always sends (a proxy's page, say); after a
        write, its effect is unknown."""
        return UnavailableError(
            f"{self.name} answered with {what}", ambiguous=write, connection=self.name
        )

    # ------------------------------------------------------------------ reads

    async def check(self) -> str:
        """One ``GET /api/anomalies?size=1``: proves the URL and the token; ``12 open anomalies``."""
        page = await self.list_page(1, 1)
        total = page["total"]
        return f"{total} open anomal{'y' if total == 1 else 'ies'}"

    async def list_page(
        self,
        page: int = 1,
        size: int = MAX_PAGE_SIZE,
        archived: ArchivedFilter | None = None,
        since: date | None = None,
        datastore: int | None = None,
        *,
        status: Sequence[str] = (),
    ) -> AnomalyPagePayload:
        """One page (from 1, at most ``MAX_PAGE_SIZE``) of anomalies, oldest first; archived
        ones only with ``archived``.

        ``since`` (``start_date``: created at or after it) is a day (``2026-11-01``) or an exact
        time (a naive one is UTC). ``status`` narrows to those statuses (the parameter repeated).
        """
        # oldest first: an anomaly created while paging comes last, not in a page already read
        params: dict[str, str | int | list[str]] = {
            "page": page,
            "size": size,
            "sort_created": "asc",
        }
        if archived is not None:
            params["archived"] = archived
        if since is not None:
            params["start_date"] = _moment(since)
        if datastore is not None:
            params["datastore"] = datastore
        if status:
            params["status"] = list(status)
        query = httpx.QueryParams(params)  # a Mapping that keeps the repeated status
        answer = await self._request("GET", "/anomalies", params=query)
        items = answer.get("items") if isinstance(answer, dict) else None
        if not isinstance(answer, dict) or not isinstance(items, list):
            raise self._not_the_api("a page without a list of items")
        found = [cast(PlatformAnomaly, item) for item in items if isinstance(item, dict)]
        total, said_page, said_size = answer.get("total"), answer.get("page"), answer.get("size")
        return {
            "items": found,
            "total": total if isinstance(total, int) else len(found),
            "page": said_page if isinstance(said_page, int) else page,
            "size": said_size if isinstance(said_size, int) and said_size > 0 else size,
        }

    async def anomalies(
        self,
        archived: ArchivedFilter | None = None,
        since: date | None = None,
        datastore: int | None = None,
        *,
        status: Sequence[str] = (),
        size: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[PlatformAnomaly]:
        """Every anomaly the filters match, page after page, until an empty or the last page."""
        page = 1
        while True:
            found = await self.list_page(page, size, archived, since, datastore, status=status)
            for item in found["items"]:
                yield item
            if not found["items"] or page * found["size"] >= found["total"]:
                return
            page += 1

    async def get_anomaly(self, anomaly_id: int) -> PlatformAnomaly:
        """The full anomaly, every key as the platform sent it."""
        answer = await self._request("GET", f"/anomalies/{int(anomaly_id)}")
        if not isinstance(answer, dict):
            raise self._not_the_api("an anomaly that is not an object")
        return cast(PlatformAnomaly, answer)

    async def comments(self, anomaly_id: int) -> list[PlatformComment]:
        """The anomaly's comments, oldest first (to see whether an ambiguous comment landed)."""
        answer = await self._request("GET", f"/anomalies/{int(anomaly_id)}/comments")
        if isinstance(answer, dict):  # a page, should the platform ever page them
            answer = answer.get("items")
        if not isinstance(answer, list):
            raise self._not_the_api("comments that are not a list")
        return [cast(PlatformComment, item) for item in answer if isinstance(item, dict)]

    # ------------------------------------------------------------------ writes (sent once)

    async def acknowledge(self, anomaly_id: int) -> PlatformAnomaly | None:
        """``PUT {"status": "Acknowledged"}``; the anomaly as it is now, when the platform says.

        An archived anomaly is refused (``RefusedError``, 409).
        """
        body: dict[str, JsonValue] = {"status": "Acknowledged"}
        answer = await self._request("PUT", f"/anomalies/{int(anomaly_id)}", json=body)
        return cast(PlatformAnomaly, answer) if isinstance(answer, dict) else None

    async def archive(self, anomaly_id: int, status: ArchiveStatus) -> PlatformAnomaly | None:
        """``DELETE ?archive=true&status=``: archived as Resolved, Duplicate, Invalid or
        Discarded; the anomaly as it is now, when the platform says. An archived anomaly is
        refused (409), and so is a status the platform does not take (422)."""
        params = {"archive": "true", "status": status}
        answer = await self._request("DELETE", f"/anomalies/{int(anomaly_id)}", params=params)
        return cast(PlatformAnomaly, answer) if isinstance(answer, dict) else None

    async def add_comment(self, anomaly_id: int, message: str) -> PlatformComment:
        """``POST /api/comments``; the comment as stored. Refused on an archived anomaly (409).

        Not idempotent: after an ``ambiguous`` failure, look in ``comments`` before resending.
        """
        body: dict[str, JsonValue] = {"message": message, "anomaly_id": int(anomaly_id)}
        answer = await self._request("POST", "/comments", json=body)
        if not isinstance(answer, dict):
            raise self._not_the_api("a comment that is not an object", write=True)
        return cast(PlatformComment, answer)


def make_platform_client(
    platform: Platform, *, transport: httpx.AsyncBaseTransport | None = None
) -> PlatformClient | None:
    """The client for the configured platform; None without a URL and a token (no API use)."""
    if not platform.has_api:
        return None
    return PlatformClient(platform, transport=transport)
