"""An async client of the receiver's operator API: everything the dashboard reads and does.

The dashboard never touches the store: it is a client over HTTP, so it works the same against a
receiver it started itself and one running on a server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
from httpx_sse import aconnect_sse


class ApiError(Exception):
    """The receiver refused: ``status`` plus its problem body's detail and per-field errors."""

    def __init__(
        self, status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None
    ):
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail or title
        self.errors = errors or []

    def field_errors(self) -> dict[str, str]:
        """``{"summary": "required"}`` from paths like ``fields.summary``."""
        return {e["path"].removeprefix("fields."): e["message"] for e in self.errors}


class DeskClient:
    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout)

    def __repr__(self) -> str:
        return f"DeskClient({self.url!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(0, "Receiver unreachable", f"{self.url}: {type(exc).__name__}") from None

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._answer(await self._send(method, path, **kwargs))

    @staticmethod
    def _answer(response: httpx.Response) -> Any:
        """The JSON body, or ApiError from a problem body when the status is 4xx/5xx."""
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {}
            raise ApiError(
                response.status_code,
                problem.get("title", response.reason_phrase),
                problem.get("detail", response.text[:200]),
                problem.get("errors"),
            )
        return orjson.loads(response.content) if response.content else None

    # -- reads -------------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """``{"status": "ok", "anomalies", "by_status"}``; when the store refuses writes the
        receiver answers 503 ``{"status": "degraded", "reason": …}``: an answer, not an error."""
        response = await self._send("GET", "/healthz")
        if response.status_code == 503:
            try:
                body = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                body = None
            if isinstance(body, dict) and body.get("status") == "degraded":
                return body
        return self._answer(response)

    async def list_anomalies(
        self, status: str = "open", q: str = "", limit: int = 100, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        params: dict[str, Any] = {"status": status, "limit": limit}
        if q:
            params["q"] = q
        if cursor:
            params["cursor"] = cursor
        page = await self._call("GET", "/api/anomalies", params=params)
        return page["items"], page["next_cursor"]

    async def anomaly(self, anomaly_id: int) -> dict[str, Any]:
        return await self._call("GET", f"/api/anomalies/{anomaly_id}")

    async def quarantine(self, limit: int = 100) -> list[dict[str, Any]]:
        """Delivered items kept aside (no usable anomaly id), newest first: ``key``, ``at``,
        ``delivery``, ``path``, ``reason`` and ``raw`` (the item's JSON as sent, any value)."""
        return (await self._call("GET", "/api/quarantine", params={"limit": limit}))["items"]

    async def connections(self) -> list[dict[str, Any]]:
        return (await self._call("GET", "/api/connections"))["items"]

    async def check_connections(self) -> dict[str, dict[str, Any]]:
        return await self._call("POST", "/api/connections/check")

    async def search(self, connection: str, q: str, limit: int = 20) -> list[dict[str, Any]]:
        page = await self._call(
            "GET", f"/api/connections/{connection}/search", params={"q": q, "limit": limit}
        )
        return page["items"]

    async def options(self, connection: str) -> dict[str, list[dict[str, str]]]:
        return await self._call("GET", f"/api/connections/{connection}/options")

    async def sync_log(self, after: int | None = None, limit: int = 200) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if after is not None:
            params["after"] = after
        return (await self._call("GET", "/api/sync-log", params=params))["items"]

    async def sync_jobs(
        self, state: str | None = None, anomaly_id: int | None = None
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {}
        if state:
            params["state"] = state
        if anomaly_id is not None:
            params["anomaly_id"] = anomaly_id
        return (await self._call("GET", "/api/sync-jobs", params=params))["items"]

    # -- actions -----------------------------------------------------------------------------

    async def acknowledge(self, anomaly_id: int) -> dict[str, Any]:
        return await self._call("POST", f"/api/anomalies/{anomaly_id}/acknowledge")

    async def archive(
        self, anomaly_id: int, status: str, comment: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"status": status}
        if comment:
            body["comment"] = comment
        return await self._call("POST", f"/api/anomalies/{anomaly_id}/archive", json=body)

    async def comment(self, anomaly_id: int, text: str) -> dict[str, Any]:
        return await self._call(
            "POST", f"/api/anomalies/{anomaly_id}/comments", json={"text": text}
        )

    async def create_ticket(
        self, anomaly_id: int, connection: str, fields: dict[str, Any]
    ) -> dict[str, Any]:
        return await self._call(
            "POST",
            f"/api/anomalies/{anomaly_id}/tickets",
            json={"connection": connection, "fields": fields},
        )

    async def link_ticket(self, anomaly_id: int, connection: str, ticket: str) -> dict[str, Any]:
        return await self._call(
            "POST",
            f"/api/anomalies/{anomaly_id}/links",
            json={"connection": connection, "ticket": ticket},
        )

    async def unlink(self, anomaly_id: int, link_id: str) -> dict[str, Any]:
        return await self._call("DELETE", f"/api/anomalies/{anomaly_id}/links/{link_id}")

    async def refresh(self, anomaly_id: int) -> dict[str, Any]:
        return await self._call("POST", f"/api/anomalies/{anomaly_id}/refresh")

    async def retry_job(self, job_id: int) -> dict[str, Any]:
        return await self._call("POST", f"/api/sync-jobs/{job_id}/retry")

    # -- live --------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Server-sent events as ``(type, data)``, until the connection ends."""
        async with (
            httpx.AsyncClient(
                base_url=self.url,
                headers=self._http.headers,
                timeout=httpx.Timeout(30.0, read=None),
            ) as http,
            aconnect_sse(http, "GET", "/api/events") as source,
        ):
            async for event in source.aiter_sse():
                yield event.event, orjson.loads(event.data) if event.data else {}
