"""Reading a JSON request body: the content type first, then the bytes, never past a limit."""

from __future__ import annotations

from starlette.requests import Request

from anomaly_desk.receiver.problems import Problem


def is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def read_json_body(request: Request, limit: int) -> bytes:
    """The raw body of a JSON request: 415 for another content type, 413 as soon as it is too
    large (by Content-Length, or while streaming when there is none)."""
    content_type = request.headers.get("content-type", "")
    if not is_json(content_type):
        raise Problem(
            415,
            "Unsupported media type",
            f"Content-Type is {content_type or 'missing'!r}; send application/json",
            kind="media-type",
        )
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise Problem(
            415,
            "Unsupported content encoding",
            f"Content-Encoding is {encoding[:40]!r}; send the body uncompressed",
            kind="media-type",
        )
    charset = _charset(content_type)
    if charset not in (None, "utf-8", "utf8"):
        raise Problem(
            415,
            "Unsupported charset",
            f"charset is {charset[:40]!r}; JSON is sent as UTF-8 (RFC 8259)",
            kind="media-type",
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise Problem(
            413, "Body too large", f"{declared} bytes; the limit is {limit}", kind="too-large"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(413, "Body too large", f"over {limit} bytes", kind="too-large")
        chunks.append(chunk)
    return b"".join(chunks)


def _charset(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None
