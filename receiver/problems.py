"""RFC 9457 problem details: every error the receiver returns has this shape."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

log = logging.getLogger(__name__)
PROBLEM_TYPE = "https://anomaly-desk.dev/problems/"


class Problem(Exception):
    """Raise anywhere in a handler; the app turns it into ``application/problem+json``."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        kind: str | None = None,
        errors: list[dict[str, str]] | None = None,  # each a path and a message
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, object] | None = None,
    ):
        super().__init__(title)
        self.extra = extra
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind
        self.errors = errors
        self.headers = headers


def problem_response(problem: Problem) -> Response:
    body: dict[str, object] = {
        "type": PROBLEM_TYPE + problem.kind if problem.kind else "about:blank",
        "title": problem.title,
        "status": problem.status,
    }
    if problem.detail:
        body["detail"] = problem.detail
    if problem.errors:
        body["errors"] = problem.errors
    if problem.extra:
        body.update(problem.extra)
    return Response(
        orjson.dumps(body),
        status_code=problem.status,
        media_type="application/problem+json",
        headers=problem.headers,
    )


async def handle_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 as problems too."""
    assert isinstance(exc, HTTPException)
    return problem_response(Problem(exc.status_code, str(exc.detail), headers=exc.headers))


async def handle_store_failed(request: Request, exc: Exception) -> Response:
    """The disk refused a write: nothing changed, and it is worth retrying shortly."""
    return problem_response(
        Problem(
            503,
            "Store unavailable",
            f"{exc}; nothing was changed, retry shortly",
            kind="store-failed",
            headers={"Retry-After": "5"},
        )
    )


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """A bug: a problem body like every other error (the traceback goes to the log only)."""
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        Problem(500, "Internal error", "the receiver failed unexpectedly; see its log", kind="bug")
    )
