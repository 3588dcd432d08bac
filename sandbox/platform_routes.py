"""The platform emulator's HTTP face: the anomaly and comment API over a ``PlatformSite``.

The platform is a FastAPI service, and this answers as one does: ``{"detail": "..."}`` for an
error the service raises (401, 403, 404, 405, 409, and a refused archive without ``archive=true``)
and ``{"detail": [{"type", "loc", "msg", "input"}, ...]}`` for a request that fails validation
(422: a query parameter, a path id or a body that does not fit). Bearer tokens; the order of
checks is FastAPI's: authentication, then validation, then the endpoint's own 404 and 409.

Two sandbox controls (under ``/_sandbox``: no token, never subject to faults, not the platform's
API) let a process that cannot reach ``app.state`` steer it, as the demo does:

* ``POST /_sandbox/platform/anomalies`` with a JSON list of ``{"id", "status"}`` objects (optional
  ``type``, ``weight``, ``message``, ``created``, ``datastore`` and ``container`` as ``{"id",
  "name"}``, ``fields`` as a list of names) adds those anomalies. An id the platform already has is
  left exactly as it is (its status may have moved on since), so sending the same list again
  changes nothing. All or nothing: one bad item refuses the list (400 ``{"error": ...}``).
  Answers ``{"added": [ids], "existing": [ids]}``.
* ``GET /_sandbox/platform/writes?anomaly_id=N`` the write calls the platform accepted (2xx), in
  the order it received them, for one anomaly (every anomaly without ``anomaly_id``):
  ``{"items": [{"method", "path", "query", "body", "status", "anomaly_id", "at"}, ...]}``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from anomaly_desk.sandbox.faults import CONTROL_PREFIX
from anomaly_desk.sandbox.platform_data import (
    ACKNOWLEDGED,
    ARCHIVE_STATUSES,
    STATUSES,
    TYPES,
    Anomaly,
    Comment,
    Json,
    ListQuery,
    PlatformError,
    PlatformSite,
    PlatformUser,
    WriteCall,
    iso,
    parse_moment,
)

API = "/api"
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_SIZE = 50
MAX_SIZE = 100
NOT_AUTHENTICATED = "Not authenticated"
BAD_TOKEN = "Invalid or expired token"
READ_ONLY = "This API token is read-only: it cannot change anomalies or add comments"
NO_DELETE = (
    "Deleting an anomaly is not emulated by the sandbox: pass archive=true and a status "
    f"({', '.join(ARCHIVE_STATUSES)}) to archive it instead"
)
TRUE_WORDS = frozenset({"1", "on", "t", "true", "y", "yes"})
FALSE_WORDS = frozenset({"0", "off", "f", "false", "n", "no"})

Handler = Callable[[Request], Awaitable[Response]]


# -- rendering ---------------------------------------------------------------------------------


def anomaly_json(anomaly: Anomaly) -> Json:
    """The full anomaly, as ``GET /api/anomalies/{id}`` and the list's items show it."""
    return {
        "id": anomaly.id,
        "uuid": anomaly.uuid,
        "type": anomaly.type,
        "status": anomaly.status,
        "weight": anomaly.weight,
        "created": iso(anomaly.created),
        "datastore": {"id": anomaly.datastore.id, "name": anomaly.datastore.name},
        "container": {"id": anomaly.container.id, "name": anomaly.container.name},
        "fields": [{"name": name} for name in anomaly.fields],
        "message": anomaly.message,
        "description": anomaly.description,
        "failed_checks": [
            {
                "quality_check": {
                    "id": failed.quality_check.id,
                    "rule_type": failed.quality_check.rule_type,
                    "fields": list(failed.quality_check.fields),
                    "description": failed.quality_check.description,
                },
                "message": failed.message,
            }
            for failed in anomaly.failed_checks
        ],
        "global_tags": [
            {"name": tag.name, **({"color": tag.color} if tag.color else {})}
            for tag in anomaly.global_tags
        ],
        "anomalous_records_count": anomaly.anomalous_records_count,
        "fingerprint": anomaly.fingerprint,
    }


def user_json(user: PlatformUser) -> Json:
    return {"id": user.id, "name": user.name, "email": user.email}


def comment_json(comment: Comment) -> Json:
    return {
        "id": comment.id,
        "message": comment.message,
        "anomaly_id": comment.anomaly_id,
        "created": iso(comment.created),
        "user": user_json(comment.user),
    }


def error_response(error: PlatformError) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse({"detail": error.detail}, error.status, headers=headers)


# -- validation errors, worded as pydantic v2 words them ----------------------------------------


def invalid(kind: str, loc: Iterable[str | int], msg: str, value: object, **ctx: object) -> Json:
    item: Json = {"type": kind, "loc": list(loc), "msg": msg, "input": value}
    if ctx:
        item["ctx"] = dict(ctx)
    return item


def _choices(options: Iterable[str]) -> str:
    quoted = [f"'{option}'" for option in options]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def not_one_of(loc: Iterable[str | int], value: object, options: Iterable[str]) -> Json:
    expected = _choices(options)
    return invalid("enum", loc, f"Input should be {expected}", value, expected=expected)


def as_int(value: object) -> int | None:
    """pydantic's lax int: an int, an integral float, or a string of digits (never a bool)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        if digits.isdigit():
            return int(text)
    return None


def int_error(loc: Iterable[str | int], value: object) -> Json:
    if isinstance(value, str):
        msg = "Input should be a valid integer, unable to parse string as an integer"
        return invalid("int_parsing", loc, msg, value)
    return invalid("int_type", loc, "Input should be a valid integer", value)


def _int_param(
    params: QueryParams, name: str, default: int, errors: list[Json], *, low: int, high: int | None
) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    value = as_int(raw)
    loc = ("query", name)
    if value is None:
        errors.append(int_error(loc, raw))
    elif value < low:
        msg = f"Input should be greater than or equal to {low}"
        errors.append(invalid("greater_than_equal", loc, msg, raw, ge=low))
    elif high is not None and value > high:
        msg = f"Input should be less than or equal to {high}"
        errors.append(invalid("less_than_equal", loc, msg, raw, le=high))
    else:
        return value
    return default


def _ints(params: QueryParams, name: str, errors: list[Json]) -> frozenset[int]:
    values: set[int] = set()
    for index, raw in enumerate(params.getlist(name)):
        value = as_int(raw)
        if value is None:
            errors.append(int_error(("query", name, index), raw))
        else:
            values.add(value)
    return frozenset(values)


def _choice(
    params: QueryParams, name: str, options: Iterable[str], errors: list[Json]
) -> str | None:
    raw = params.get(name)
    options = tuple(options)
    if raw is None or raw in options:
        return raw
    errors.append(not_one_of(("query", name), raw, options))
    return None


def _moment(
    params: QueryParams, name: str, errors: list[Json], *, end: bool
) -> tuple[datetime | None, bool]:
    """(the bound, whether it is inclusive): a date bounds whole days, a date-time is exact."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None, False
    try:
        return parse_moment(raw, end_of_day=end), len(raw.strip()) != 10
    except ValueError as error:
        msg = "Value error, expected a date (YYYY-MM-DD) or an ISO 8601 date-time"
        errors.append(invalid("value_error", ("query", name), msg, raw, error=str(error)))
        return None, False


def list_query(params: QueryParams) -> ListQuery:
    errors: list[Json] = []
    statuses: set[str] = set()
    for index, raw in enumerate(params.getlist("status")):
        if raw in STATUSES:
            statuses.add(raw)
        else:
            errors.append(not_one_of(("query", "status", index), raw, STATUSES))
    archived = _choice(params, "archived", ("only", "include"), errors)
    sort = _choice(params, "sort_created", ("asc", "desc"), errors) or "desc"
    start, _ = _moment(params, "start_date", errors, end=False)
    end, end_inclusive = _moment(params, "end_date", errors, end=True)
    query = ListQuery(
        statuses=frozenset(statuses),
        archived=archived,
        datastores=_ints(params, "datastore", errors),
        containers=_ints(params, "container", errors),
        tags=frozenset(tag for tag in params.getlist("tag") if tag),
        start=start,
        end=end,
        end_inclusive=end_inclusive,
        sort_created=sort,
        page=_int_param(params, "page", 1, errors, low=1, high=None),
        size=_int_param(params, "size", DEFAULT_SIZE, errors, low=1, high=MAX_SIZE),
    )
    if errors:
        raise PlatformError(422, errors)
    return query


def path_id(request: Request, errors: list[Json]) -> int:
    raw = request.path_params["anomaly_id"]
    value = as_int(raw)
    if value is None:
        errors.append(int_error(("path", "anomaly_id"), raw))
        return 0
    return value


async def json_object(request: Request, errors: list[Json]) -> Json | None:
    """The body as a JSON object, or None with the reason added to ``errors``."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    is_json = not content_type or content_type.endswith("/json") or content_type.endswith("+json")
    if not raw.strip():
        errors.append(invalid("missing", ("body",), "Field required", None))
        return None
    if not is_json:
        value: object = raw.decode(errors="replace")
    else:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as error:
            errors.append(
                invalid(
                    "json_invalid", ("body", error.pos), "JSON decode error", {}, error=error.msg
                )
            )
            return None
        except UnicodeDecodeError as error:
            errors.append(
                invalid("json_invalid", ("body", 0), "JSON decode error", {}, error=str(error))
            )
            return None
    if not isinstance(value, dict):
        msg = "Input should be a valid dictionary or object to extract fields from"
        errors.append(invalid("model_attributes_type", ("body",), msg, value))
        return None
    return value


def extra_keys(body: Json, allowed: Iterable[str], errors: list[Json]) -> None:
    for key in sorted(set(body) - set(allowed)):
        errors.append(
            invalid("extra_forbidden", ("body", key), "Extra inputs are not permitted", body[key])
        )


def _bool_param(params: QueryParams, name: str, errors: list[Json]) -> bool:
    raw = params.get(name)
    if raw is None:
        return False
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word not in FALSE_WORDS:
        msg = "Input should be a valid boolean, unable to interpret input"
        errors.append(invalid("bool_parsing", ("query", name), msg, raw))
    return False


# -- the API -------------------------------------------------------------------------------------


class PlatformApi:
    """The anomaly and comment endpoints of one ``PlatformSite``, and its anomaly pages."""

    def __init__(self, site: PlatformSite) -> None:
        self.site = site

    def routes(self) -> list[BaseRoute]:
        return [
            Route(
                f"{API}/anomalies", self._endpoint({"GET": self.list_anomalies}), methods=METHODS
            ),
            Route(
                f"{API}/anomalies/{{anomaly_id}}",
                self._endpoint(
                    {"GET": self.get_anomaly, "PUT": self.acknowledge, "DELETE": self.archive}
                ),
                methods=METHODS,
            ),
            Route(
                f"{API}/anomalies/{{anomaly_id}}/comments",
                self._endpoint({"GET": self.list_comments}),
                methods=METHODS,
            ),
            Route(f"{API}/comments", self._endpoint({"POST": self.add_comment}), methods=METHODS),
            Route("/anomalies/{anomaly_id}", self.page, methods=["GET"]),
            *PlatformControls(self.site).routes(),
        ]

    def fallback_routes(self) -> list[BaseRoute]:
        """``{"detail": "Not Found"}`` for any other ``/api`` path: mount after every other
        service's ``/api/...`` routes (ServiceNow's ``/api/now``)."""
        return [Route(f"{API}/{{rest:path}}", self._endpoint({}), methods=METHODS)]

    def _endpoint(self, handlers: dict[str, Handler]) -> Handler:
        """Dispatch by method (405 in FastAPI's body otherwise); log every write."""

        async def endpoint(request: Request) -> Response:
            handler = handlers.get(request.method)
            if handler is None and request.method == "HEAD":
                handler = handlers.get("GET")
            try:
                if not handlers:
                    raise PlatformError(404, "Not Found")
                if handler is None:
                    raise PlatformError(405, "Method Not Allowed")
                response = await handler(request)
            except PlatformError as error:
                response = error_response(error)
            if request.method in WRITES:
                await self._log(request, response.status_code)
            return response

        return endpoint

    async def _log(self, request: Request, status: int) -> None:
        raw = await request.body()
        body: object = None
        if raw:
            try:
                body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                body = raw.decode(errors="replace")
        anomaly_id = as_int(request.path_params.get("anomaly_id"))
        if anomaly_id is None and isinstance(body, dict):
            anomaly_id = as_int(body.get("anomaly_id"))
        _, _, token = request.headers.get("authorization", "").partition(" ")
        self.site.record(
            WriteCall(
                method=request.method,
                path=request.url.path,
                query=dict(request.query_params),
                body=body,
                status=status,
                anomaly_id=anomaly_id,
                token=token.strip() or None,
                at=datetime.now(UTC),
            )
        )

    def caller(self, request: Request, *, write: bool) -> PlatformUser:
        """The token's user: 401 without a valid bearer token, 403 for a read-only one on a
        write."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise PlatformError(401, NOT_AUTHENTICATED)
        user = self.site.user_for(token)
        if user is None:
            raise PlatformError(401, BAD_TOKEN)
        if write and not self.site.can_write(token):
            raise PlatformError(403, READ_ONLY)
        return user

    # -- reads ----------------------------------------------------------------------------------

    async def list_anomalies(self, request: Request) -> Response:
        self.caller(request, write=False)
        query = list_query(request.query_params)
        total, page = self.site.select(query)
        items = [anomaly_json(anomaly) for anomaly in page]
        return JSONResponse(
            {"items": items, "total": total, "page": query.page, "size": query.size}
        )

    async def get_anomaly(self, request: Request) -> Response:
        self.caller(request, write=False)
        errors: list[Json] = []
        anomaly_id = path_id(request, errors)
        if errors:
            raise PlatformError(422, errors)
        return JSONResponse(anomaly_json(self.site.get(anomaly_id)))

    async def list_comments(self, request: Request) -> Response:
        self.caller(request, write=False)
        errors: list[Json] = []
        anomaly_id = path_id(request, errors)
        if errors:
            raise PlatformError(422, errors)
        self.site.get(anomaly_id)  # 404 for an unknown anomaly
        return JSONResponse([comment_json(c) for c in self.site.comments_of(anomaly_id)])

    # -- writes ---------------------------------------------------------------------------------

    async def acknowledge(self, request: Request) -> Response:
        """``PUT {"status": "Acknowledged"}``: the only status a PUT sets."""
        self.caller(request, write=True)
        errors: list[Json] = []
        anomaly_id = path_id(request, errors)
        body = await json_object(request, errors)
        if body is not None:
            extra_keys(body, ("status",), errors)
            status = body.get("status")
            if "status" not in body:
                errors.append(invalid("missing", ("body", "status"), "Field required", body))
            elif not isinstance(status, str):
                msg = "Input should be a valid string"
                errors.append(invalid("string_type", ("body", "status"), msg, status))
            elif status != ACKNOWLEDGED:
                reason = (
                    f"only '{ACKNOWLEDGED}' can be set with PUT; archive an anomaly with DELETE "
                    f"/api/anomalies/{{id}}?archive=true&status={'|'.join(ARCHIVE_STATUSES)}"
                )
                errors.append(
                    invalid(
                        "value_error",
                        ("body", "status"),
                        f"Value error, {reason}",
                        status,
                        error=reason,
                    )
                )
        if errors:
            raise PlatformError(422, errors)
        return JSONResponse(anomaly_json(self.site.acknowledge(anomaly_id)))

    async def archive(self, request: Request) -> Response:
        """``DELETE ?archive=true&status=...``: archive; a real deletion is not emulated."""
        self.caller(request, write=True)
        errors: list[Json] = []
        params = request.query_params
        anomaly_id = path_id(request, errors)
        archive = _bool_param(params, "archive", errors)
        status = _choice(params, "status", ARCHIVE_STATUSES, errors)
        if errors:
            raise PlatformError(422, errors)
        if not archive:
            raise PlatformError(422, NO_DELETE)
        if status is None:
            raise PlatformError(
                422, [invalid("missing", ("query", "status"), "Field required", None)]
            )
        return JSONResponse(anomaly_json(self.site.archive(anomaly_id, status)))

    async def add_comment(self, request: Request) -> Response:
        """``POST {"message", "anomaly_id"}``: 201 with the comment."""
        user = self.caller(request, write=True)
        errors: list[Json] = []
        body = await json_object(request, errors)
        message, anomaly_id = "", 0
        if body is not None:
            extra_keys(body, ("message", "anomaly_id"), errors)
            raw_message, raw_id = body.get("message"), body.get("anomaly_id")
            if "message" not in body:
                errors.append(invalid("missing", ("body", "message"), "Field required", body))
            elif not isinstance(raw_message, str):
                msg = "Input should be a valid string"
                errors.append(invalid("string_type", ("body", "message"), msg, raw_message))
            elif not raw_message.strip():
                msg = "String should have at least 1 character"
                errors.append(
                    invalid("string_too_short", ("body", "message"), msg, raw_message, min_length=1)
                )
            else:
                message = raw_message
            if "anomaly_id" not in body:
                errors.append(invalid("missing", ("body", "anomaly_id"), "Field required", body))
            elif (value := as_int(raw_id)) is None:
                errors.append(int_error(("body", "anomaly_id"), raw_id))
            else:
                anomaly_id = value
        if errors:
            raise PlatformError(422, errors)
        comment = self.site.add_comment(anomaly_id, message, user)
        return JSONResponse(comment_json(comment), 201)

    # -- the web page an anomaly link opens -------------------------------------------------------

    async def page(self, request: Request) -> Response:
        anomaly_id = as_int(request.path_params["anomaly_id"])
        anomaly = self.site.anomalies.get(anomaly_id) if anomaly_id is not None else None
        if anomaly is None:
            return HTMLResponse(_page("Anomaly not found", "<p>No such anomaly.</p>"), 404)
        rows = [
            ("Status", anomaly.status),
            ("Type", anomaly.type),
            ("Weight", str(anomaly.weight)),
            ("Datastore", anomaly.datastore.name),
            ("Container", anomaly.container.name),
            ("Fields", ", ".join(anomaly.fields) or "-"),
            ("Created", iso(anomaly.created)),
        ]
        table = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows
        )
        comments = "".join(
            f"<li>{html.escape(c.message)} <small>({html.escape(c.user.name)}, "
            f"{iso(c.created)})</small></li>"
            for c in self.site.comments_of(anomaly.id)
        )
        body = (
            f"<p>{html.escape(anomaly.message)}</p><table>{table}</table>"
            f"<h2>Comments</h2><ul>{comments or '<li>none</li>'}</ul>"
        )
        return HTMLResponse(_page(f"Anomaly {anomaly.id}", body))


# -- the sandbox's controls (not the platform's API) -------------------------------------------

CONTROL = f"{CONTROL_PREFIX}/platform"
NEW_ANOMALY_KEYS = frozenset(
    {"id", "status", "type", "weight", "message", "created", "datastore", "container", "fields"}
)


class ControlError(ValueError):
    """A control request that does not fit: 400 with ``{"error": ...}``."""


class PlatformControls:
    """``/_sandbox/platform/...``: add anomalies, read the accepted writes (see the module)."""

    def __init__(self, site: PlatformSite) -> None:
        self.site = site

    def routes(self) -> list[BaseRoute]:
        return [
            Route(f"{CONTROL}/anomalies", self.add_anomalies, methods=["POST"]),
            Route(f"{CONTROL}/writes", self.writes, methods=["GET"]),
        ]

    async def add_anomalies(self, request: Request) -> Response:
        try:
            try:
                items = json.loads(await request.body())
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise ControlError(f"the body is not JSON: {error}") from None
            if not isinstance(items, list):
                raise ControlError("expected a JSON list of anomalies")
            wanted = [new_anomaly(item, index) for index, item in enumerate(items)]
        except ControlError as error:
            return JSONResponse({"error": str(error)}, 400)
        added: list[int] = []
        existing: list[int] = []
        with self.site.lock:  # every item is checked already: adding cannot fail half-way
            for values in wanted:
                if values["id"] in self.site.anomalies:
                    existing.append(values["id"])  # left as it is (the same id twice: the first)
                else:
                    self.site.add(**values)
                    added.append(values["id"])
        return JSONResponse({"added": added, "existing": existing})

    async def writes(self, request: Request) -> Response:
        raw = request.query_params.get("anomaly_id")
        anomaly_id = None if raw is None else as_int(raw)
        if raw is not None and anomaly_id is None:
            return JSONResponse({"error": f"anomaly_id must be an integer, not {raw!r}"}, 400)
        calls = self.site.writes(anomaly_id, ok=True)
        return JSONResponse({"items": [write_json(call) for call in calls]})


def write_json(call: WriteCall) -> Json:
    return {
        "method": call.method,
        "path": call.path,
        "query": call.query,
        "body": call.body,
        "status": call.status,
        "anomaly_id": call.anomaly_id,
        "at": iso(call.at),
    }


def _ref(value: object, where: str) -> tuple[int, str]:
    if (
        not isinstance(value, dict)
        or set(value) != {"id", "name"}
        or isinstance(value["id"], bool)
        or not isinstance(value["id"], int)
        or not isinstance(value["name"], str)
    ):
        raise ControlError(f'{where}: expected {{"id": <int>, "name": <text>}}')
    return value["id"], value["name"]


def new_anomaly(item: object, index: int) -> Json:
    """One item of ``POST /_sandbox/platform/anomalies`` as ``PlatformSite.add``'s arguments."""
    where = f"item {index}"
    if not isinstance(item, dict):
        raise ControlError(f"{where}: expected an object")
    unknown = sorted(set(item) - NEW_ANOMALY_KEYS)
    if unknown:
        raise ControlError(f"{where}: unknown key(s) {', '.join(unknown)}")
    ident, status = item.get("id"), item.get("status")
    if isinstance(ident, bool) or not isinstance(ident, int):
        raise ControlError(f"{where}: id must be an integer")
    where = f"anomaly {ident}"
    if status not in STATUSES:
        raise ControlError(f"{where}: status must be one of {', '.join(STATUSES)}")
    values: Json = {"id": ident, "status": status}
    if "type" in item:
        if item["type"] not in TYPES:
            raise ControlError(f"{where}: type must be one of {', '.join(TYPES)}")
        values["type"] = item["type"]
    if "weight" in item:
        weight = item["weight"]
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise ControlError(f"{where}: weight must be a number")
        values["weight"] = weight
    for key in ("message", "created"):
        if key in item:
            if not isinstance(item[key], str) or not item[key].strip():
                raise ControlError(f"{where}: {key} must be a non-empty text")
            values[key] = item[key]
    if "created" in values:
        try:
            parse_moment(values["created"])
        except ValueError:
            raise ControlError(f"{where}: created must be an ISO 8601 date-time") from None
    for key in ("datastore", "container"):
        if key in item:
            values[key] = _ref(item[key], f"{where}: {key}")
    if "fields" in item:
        names = item["fields"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ControlError(f"{where}: fields must be a list of names")
        values["fields"] = tuple(names)
    return values


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)} · Data quality platform (sandbox)</title></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
