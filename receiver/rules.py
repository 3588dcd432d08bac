"""``/api/rules``: the ``[[rules]]`` entries with their counters; pause and resume one."""

from __future__ import annotations

import unicodedata

from starlette.requests import Request
from starlette.responses import Response

from anomaly_desk.core.rule_runner import RuleRunner
from anomaly_desk.receiver.api import view_response


def _rules(request: Request) -> RuleRunner:
    runner: RuleRunner = request.app.state.rules
    return runner


def _name(request: Request) -> str:
    """The configured name the URL's name stands for, compared NFC-normalised: a client (or a
    macOS file name pasted in) may send ``é`` decomposed, and the rule is still that rule."""
    asked: str = request.path_params["name"]
    wanted = unicodedata.normalize("NFC", asked)
    configured = _rules(request).rules
    if asked in configured:
        return asked
    return next((n for n in configured if unicodedata.normalize("NFC", n) == wanted), asked)


async def list_rules(request: Request) -> Response:
    return view_response(_rules(request).page())


async def pause(request: Request) -> Response:
    """409 when it is paused already; 404 for a name no rule has."""
    return view_response(await _rules(request).pause(_name(request)))


async def resume(request: Request) -> Response:
    """Its dead jobs go again; 409 when it is not paused."""
    return view_response(await _rules(request).resume(_name(request)))
