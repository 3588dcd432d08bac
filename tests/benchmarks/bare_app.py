"""The baseline: a bare Starlette endpoint that parses the same JSON and stores nothing."""

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def webhook(request: Request) -> Response:
    orjson.loads(await request.body())
    return Response(b'{"ok":true}', media_type="application/json")


app = Starlette(routes=[Route("/webhooks/qualytics", webhook, methods=["POST"])])
