"""How the routes read bodies and answer: raw bytes in, msgspec-encoded bytes out, and the OpenAPI
description of bodies the routes decode themselves."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions.http_exceptions import ClientException, RequestEntityTooLarge
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody

CONTENT_TYPE_JSON = "application/json"
RETRY_LATER = [(b"retry-after", b"5")]
_encode_json = msgspec.json.Encoder().encode
_JSON_CONTENT_TYPE = (b"content-type", b"application/json")


class JSONBytes:
    """A response already encoded, sent as is: Litestar's Response and ASGIResponse cost ~20-30 us each
    in header handling, a tenth of a whole prediction; these hot routes set no cookies nor varied headers."""

    __slots__ = ("body", "headers", "status_code")

    def __init__(self, body: bytes, status_code: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.body = body
        self.status_code = status_code
        self.headers = headers

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


def json_bytes(
    body: msgspec.Struct, status_code: int, request_id: str | None = None, headers: list[tuple[bytes, bytes]] | None = None
) -> JSONBytes:
    encoded = _encode_json(body)
    all_headers = [_JSON_CONTENT_TYPE, (b"content-length", str(len(encoded)).encode()), *(headers or ())]
    if request_id is not None:
        all_headers.append((b"x-request-id", request_id.encode()))
    return JSONBytes(encoded, status_code, all_headers)


def declares_json(content_type: str | None) -> bool:
    """No content type (a bare client) is read as JSON; a declared one must be JSON."""
    if content_type is None:
        return True
    mime_type = content_type.split(";", 1)[0].strip().lower()
    return mime_type == "application/json" or mime_type.endswith("+json")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, at most `limit` bytes (else 413); `request.body()` costs ~10 us more per call."""
    receive = request.receive
    message = await receive()
    body = message.get("body", b"")
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientException("The client disconnected before sending the whole body.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestEntityTooLarge
        chunks.append(chunk)
    if size > limit:
        raise RequestEntityTooLarge
    return body if len(chunks) == 1 else b"".join(chunks)


def with_json_body(body_schema: Callable[[], dict[str, Any]]) -> type[Operation]:
    """An Operation class whose request body is the JSON schema `body_schema()` gives, built when the
    OpenAPI document is (on its first request)."""

    @dataclass
    class OperationWithBody(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(required=True, content={CONTENT_TYPE_JSON: OpenAPIMediaType(schema=body_schema())})  # type: ignore[arg-type]

    return OperationWithBody


def json_schema(body_type: Any) -> dict[str, Any]:
    """msgspec's JSON schema of a type with its definitions inlined, as an OpenAPI operation takes it."""
    schema = msgspec.json.schema(body_type)
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return resolve(schema)
