"""The ServiceNow emulator's HTTP face: the Table API over a ``ServiceNowInstance``.

``{"result": ...}`` envelopes with every value a string, reference fields as ``{"link",
"value"}``, the three ``sysparm_display_value`` modes, ``sysparm_fields`` (dot-walks included),
``sysparm_query``, pagination with ``Link`` and ``X-Total-Count`` headers, Basic auth or an OAuth
bearer token (``snow_auth``, which also serves ``/oauth_token.do``), and the ``{"error":
{"message", "detail"}, "status": "failure"}`` error body. The Change Management API's
``POST /api/sn_chg_rest/change/normal`` (and ``…/emergency``) creates a change request of that
type and answers every field as ``{"value", "display_value"}``; standard changes (from a
template) are not emulated.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from anomaly_desk.sandbox.snow_auth import ServiceNowAuth
from anomaly_desk.sandbox.snow_data import SCHEMA, Record, ServiceNowInstance, SnError
from anomaly_desk.sandbox.snow_query import EncodedQuery

JSON_TYPE = "application/json;charset=UTF-8"
DEFAULT_LIMIT = 10000  # glide.rest.query.limit on a fresh instance
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]

# A rendered field: the value, or a reference / ``display_value=all`` object of strings.
Rendered = dict[str, str | dict[str, str]]


def _dumps(body: object) -> bytes:
    """Compact JSON, as the instance sends it."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(_dumps(body), status, headers=headers, media_type=JSON_TYPE)


def error_response(error: SnError) -> Response:
    body = {"error": {"message": error.message, "detail": error.detail}, "status": "failure"}
    headers = {"WWW-Authenticate": 'BASIC realm="Service-now"'} if error.status == 401 else {}
    return json_response(body, error.status, headers)


class ServiceNowApi:
    """The Table API (``/api/now/table``, ``v1`` and ``v2`` too) of one instance."""

    def __init__(self, instance: ServiceNowInstance) -> None:
        self.instance = instance
        self.auth = ServiceNowAuth(instance)

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = []
        for prefix in ("/api/now/table", "/api/now/v1/table", "/api/now/v2/table"):
            routes.append(Route(prefix + "/{table}", self._collection, methods=METHODS))
            routes.append(Route(prefix + "/{table}/{sys_id}", self._member, methods=METHODS))
        for prefix in ("/api/sn_chg_rest/change", "/api/sn_chg_rest/v1/change"):
            routes.append(Route(prefix + "/normal", self._normal_change, methods=["POST"]))
            routes.append(Route(prefix + "/emergency", self._emergency_change, methods=["POST"]))
        routes.append(Route("/api/now/{rest:path}", self._unknown, methods=METHODS))
        return [*routes, *self.auth.routes()]

    async def _unknown(self, request: Request) -> Response:
        return error_response(SnError(400, "Requested URI does not represent any resource"))

    async def _collection(self, request: Request) -> Response:
        try:
            user = self.auth.caller(request)
            table = self.instance.table(request.path_params["table"])
            if request.method == "GET":
                return self._list(request, table)
            if request.method == "POST":
                record = self.instance.insert(table, user, await _body(request))
                self._notify(table, record, "insert")
                location = f"{_base(request)}/api/now/table/{table}/{record['sys_id']}"
                result = {"result": self._render(request, table, record)}
                return json_response(result, 201, {"Location": location})
            raise SnError(405, "Method not Supported", "Requested method is not supported")
        except SnError as error:
            return error_response(error)

    async def _member(self, request: Request) -> Response:
        try:
            user = self.auth.caller(request)
            table = self.instance.table(request.path_params["table"])
            sys_id = request.path_params["sys_id"]
            if request.method == "GET":
                record = self.instance.get(table, sys_id)
                return json_response({"result": self._render(request, table, record)})
            if request.method in ("PUT", "PATCH"):
                record = self.instance.update(table, sys_id, user, await _body(request))
                self._notify(table, record, "update")
                return json_response({"result": self._render(request, table, record)})
            if request.method == "DELETE":
                self.instance.delete(table, sys_id, user)
                return Response(status_code=204)
            raise SnError(405, "Method not Supported", "Requested method is not supported")
        except SnError as error:
            return error_response(error)

    async def _normal_change(self, request: Request) -> Response:
        return await self._change(request, "normal")

    async def _emergency_change(self, request: Request) -> Response:
        return await self._change(request, "emergency")

    async def _change(self, request: Request, model: str) -> Response:
        """The Change Management API: a change of the endpoint's type (a ``type`` in the body
        is overridden, as the instance does), every field as value and display."""
        try:
            user = self.auth.caller(request)
            body = dict(await _body(request))
            body["type"] = model
            record = self.instance.insert("change_request", user, body)
            self._notify("change_request", record, "insert")
            result = {
                field: {
                    "value": "" if kind == "journal" else record.get(field, ""),
                    "display_value": self.instance.display(
                        "change_request", field, record.get(field, "")
                    ),
                }
                for field, kind in SCHEMA["change_request"].items()
            }
            return json_response({"result": result})
        except SnError as error:
            return error_response(error)

    def _notify(self, table: str, record: Record, operation: str) -> None:
        """The Business Rule: tell the configured endpoint which record changed (a hint only)."""
        hub = self.instance.webhooks
        if hub is not None:
            payload = {"sys_id": record["sys_id"], "table": table, "operation": operation}
            hub.emit("servicenow", f"{table}.{operation}", payload)

    # -- reads ---------------------------------------------------------------------------

    def _list(self, request: Request, table: str) -> Response:
        params = request.query_params
        rows = self.instance.select(table, EncodedQuery.parse(params.get("sysparm_query", "")))
        try:
            limit = int(params.get("sysparm_limit") or DEFAULT_LIMIT)
            offset = int(params.get("sysparm_offset") or 0)
        except ValueError as error:
            raise SnError(400, "Invalid sysparm_limit or sysparm_offset", str(error)) from error
        limit, offset = max(limit, 1), max(offset, 0)
        page = rows[offset : offset + limit]
        headers = {"X-Total-Count": str(len(rows))}
        if params.get("sysparm_suppress_pagination_header", "").lower() != "true":
            headers["Link"] = _links(request, len(rows), limit, offset)
        result = [self._render(request, table, record) for record in page]
        return json_response({"result": result}, headers=headers)

    def _render(self, request: Request, table: str, record: Record) -> Rendered:
        """A record as the instance returns it, following the ``sysparm_*`` display options."""
        params = request.query_params
        mode = params.get("sysparm_display_value", "false").lower()
        no_link = params.get("sysparm_exclude_reference_link", "false").lower() == "true"
        wanted = [f.strip() for f in params.get("sysparm_fields", "").split(",") if f.strip()]
        fields: Iterable[str] = wanted or SCHEMA[table].keys()
        base = _base(request)
        out: Rendered = {}
        for path in fields:
            value = self.instance.field_value(table, record, path)
            if value is None:
                continue  # real instances omit unknown fields
            owner, leaf = self.instance.owner(table, path)
            kind = SCHEMA[owner].get(leaf, "string")
            if kind == "journal":
                value = ""
            display = self.instance.display(owner, leaf, value)
            if kind.startswith("ref:") and value:
                link = f"{base}/api/now/table/{kind[4:]}/{value}"
                shown: dict[str, str] = {
                    "false": {"link": link, "value": value},
                    "true": {"display_value": display, "link": link},
                }.get(mode, {"display_value": display, "link": link, "value": value})
                if no_link:
                    shown.pop("link")
                    out[path] = shown if mode == "all" else next(iter(shown.values()))
                else:
                    out[path] = shown
            elif mode == "true":
                out[path] = display
            elif mode == "all":
                out[path] = {"display_value": display, "value": value}
            else:
                out[path] = value
        return out


# -- request plumbing ----------------------------------------------------------------------


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def _body(request: Request) -> Mapping[str, object]:
    raw = await request.body()
    if not raw.strip():
        raise SnError(400, "Exception while reading request", "No request body")
    try:
        body: object = json.loads(raw)
    except ValueError as error:
        raise SnError(
            400, "Exception while reading request", f"The payload is not valid JSON: {error}"
        ) from error
    if isinstance(body, list):  # the instance works on the first record only
        body = body[0] if body else {}
    if not isinstance(body, dict):
        raise SnError(400, "Exception while reading request", "Expected a JSON object")
    return body


def _links(request: Request, total: int, limit: int, offset: int) -> str:
    """The ``Link`` header: first, prev, next and last pages, with the request's parameters."""
    base = str(request.url.replace(query="")).rstrip("?")
    params = dict(request.query_params)

    def link(at: int, rel: str) -> str:
        query = urlencode({**params, "sysparm_limit": limit, "sysparm_offset": at})
        return f'<{base}?{query}>;rel="{rel}"'

    last = max(((total - 1) // limit) * limit, 0)
    links = [link(0, "first")]
    if offset > 0:
        links.append(link(max(offset - limit, 0), "prev"))
    if offset + limit < total:
        links.append(link(offset + limit, "next"))
    links.append(link(last, "last"))
    return ",".join(links)
