"""``/api/rules``: the ``[[rules]]`` entries with their counters; pause and resume one."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from anomaly_desk.core.rule_runner import RuleRunner
from anomaly_desk.receiver.api import view_response


def _rules(request: Request) -> RuleRunner:
    runner: RuleRunner = request.app.state.rules
    return runner


async def list_rules(request: Request) -> Response:
    return view_response(_rules(request).page())


async def pause(request: Request) -> Response:
    """409 when it is paused already; 404 for a name no rule has."""
    return view_response(await _rules(request).pause(request.path_params["name"]))


async def resume(request: Request) -> Response:
    """Its dead jobs go again; 409 when it is not paused."""
    return view_response(await _rules(request).resume(request.path_params["name"]))
