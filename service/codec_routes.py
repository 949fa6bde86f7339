"""The codec endpoint (`POST /codec/encode`, `POST /codec/decode`): the Temporal Web UI posts
the payloads it shows here and displays them decrypted, in the browser only; Temporal itself
never sees a key. Point the UI at it with `redialer server --ui-codec-endpoint URL/codec`, or
the UI's own codec-endpoint setting, and set `REDIALER_CODEC_CORS_ORIGIN` to the UI's origin.

Who can reach it: anyone who can send it an HTTP request. It is not behind the `/v1` API keys
(the Web UI cannot send them), so it answers every caller who reaches it, and `/codec/decode`
turns any payload encrypted with these keys back into clear text: it undoes the encryption for
whoever can reach it. So it must be reachable only by those allowed to read the data: bind
`redialer api` to a private network, or put it behind the same authenticating proxy as the Web
UI (which can forward the user's token and cookies: its "pass access token" and "include
credentials" options, hence `authorization` and credentials in CORS). When `redialer api` must
also be public for the provider's callbacks, expose only `/twilio` and keep `/codec` private.
CORS only stops other web pages from reading the answers in a browser; it is no access control.

The protocol is Temporal's codec server's: a JSON body of `temporal.api.common.v1.Payloads` in
protobuf's JSON form (`{"payloads": [{"metadata": {"encoding": "<base64>"}, "data":
"<base64>"}]}`), answered in the same shape. It is off (404) unless REDIALER_CODEC_ENDPOINT=true,
and without encryption keys.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from google.protobuf import json_format
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.api.common.v1 import Payload, Payloads

from redialer.encryption import ENV_VAR, AesGcmCodec, PayloadDecryptionError, codec_for
from redialer.limits import Problem
from redialer.settings import Settings
from service.api_models import ErrorOut
from service.requests import ApiError, invalid, read_json

PREFIX = "/codec"
#: A batch of payloads the Web UI sends at once; Temporal caps one payload at 2 MB.
MAX_CODEC_BYTES = 16 * 1024 * 1024
_ALLOWED_METHODS = "POST, OPTIONS"
_ALLOWED_HEADERS = "content-type, x-namespace, authorization"
_PAYLOADS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "payloads": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "metadata": {
                        "type": "object",
                        "additionalProperties": {"type": "string", "format": "byte"},
                    },
                    "data": {"type": "string", "format": "byte"},
                },
            },
        }
    },
    "required": ["payloads"],
}
_REFUSALS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "Off: REDIALER_ENCRYPTION_KEYS is unset."},
    413: {"model": ErrorOut, "description": f"The body is over {MAX_CODEC_BYTES >> 20} MB."},
    415: {"model": ErrorOut, "description": "Wrong Content-Type (send application/json)."},
    422: {
        "model": ErrorOut,
        "description": "Not Payloads JSON, or a payload these keys cannot decrypt (its key id"
        " is named).",
    },
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _PAYLOADS_SCHEMA}},
    },
    "responses": {"200": {"content": {"application/json": {"schema": _PAYLOADS_SCHEMA}}}},
}


def codec_router(settings: Settings) -> APIRouter:
    """`/codec/encode` and `/codec/decode` with the settings' key ring; 404 without one."""
    codec = codec_for(settings)
    router = APIRouter(prefix=PREFIX, tags=["codec"])

    def require_codec() -> AesGcmCodec:
        if codec is None:
            raise ApiError(
                404, f"the codec endpoint is off: {ENV_VAR} is unset, so no payload is encrypted"
            )
        if not settings.codec_endpoint:
            raise ApiError(
                404,
                "the codec endpoint is off: set REDIALER_CODEC_ENDPOINT=true where only those"
                " allowed to read the payloads can reach it",
            )
        return codec

    @router.post(
        "/encode",
        summary="Encrypt payloads (Temporal codec-server protocol)",
        responses=_REFUSALS,
        openapi_extra=_BODY,
    )
    async def encode(request: Request) -> dict[str, Any]:
        active = require_codec()
        return _payloads_json(await active.encode(await _read_payloads(request)))

    @router.post(
        "/decode",
        summary="Decrypt payloads for the Web UI (Temporal codec-server protocol)",
        responses=_REFUSALS,
        openapi_extra=_BODY,
    )
    async def decode(request: Request) -> dict[str, Any]:
        active = require_codec()
        decoded = []
        for i, payload in enumerate(await _read_payloads(request)):
            try:
                decoded.append(active.decrypt(payload))
            except PayloadDecryptionError as exc:
                raise invalid([Problem(f"payloads[{i}]", exc.key_id, str(exc))], str(exc)) from None
        return _payloads_json(decoded)

    return router


async def _read_payloads(request: Request) -> list[Payload]:
    try:
        body = await read_json(request, limit=MAX_CODEC_BYTES)
    except ApiError as exc:
        if exc.status == 413:  # read_json's own message is about recipient lists
            raise ApiError(
                413, f"the body is over {MAX_CODEC_BYTES >> 20} MB; send fewer payloads"
            ) from None
        raise
    if not isinstance(body, dict):
        raise invalid([Problem("", type(body).__name__, 'must be an object {"payloads": [...]}')])
    try:
        parsed = json_format.ParseDict(body, Payloads())
    except json_format.ParseError as exc:
        rule = f"is not Temporal Payloads JSON: {exc}"
        raise invalid([Problem("payloads", "(body)", rule)]) from exc
    return list(parsed.payloads)


def _payloads_json(payloads: list[Payload]) -> dict[str, Any]:
    out = []
    for payload in payloads:
        item = json_format.MessageToDict(payload)
        item.setdefault("metadata", {})
        item.setdefault("data", "")
        out.append(item)
    return {"payloads": out}


class CodecCors:
    """CORS for `/codec/*` only, for one origin (the Web UI's): Starlette's CORSMiddleware would
    open every route to it. Other paths pass through untouched."""

    def __init__(self, app: ASGIApp, origin: str) -> None:
        self.app = app
        self.origin = origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        allowed = headers.get("origin") == self.origin
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(allowed, headers.get("origin"), scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out.add_vary_header("Origin")
                if allowed:
                    out["Access-Control-Allow-Origin"] = self.origin
                    out["Access-Control-Allow-Credentials"] = "true"
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(
        self, allowed: bool, origin: str | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if not allowed:
            refusal = ApiError(
                403,
                f"origin {origin!r} may not call the codec endpoint; only"
                " REDIALER_CODEC_CORS_ORIGIN's may",
                code="forbidden",
            ).response()
            refusal.headers.add_vary_header("Origin")
            await refusal(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": [
                    (b"access-control-allow-origin", self.origin.encode()),
                    (b"access-control-allow-methods", _ALLOWED_METHODS.encode()),
                    (b"access-control-allow-headers", _ALLOWED_HEADERS.encode()),
                    (b"access-control-allow-credentials", b"true"),
                    (b"access-control-max-age", b"600"),
                    (b"vary", b"Origin"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})


def install_codec_cors(app: FastAPI, origin: str | None) -> None:
    """CORS on `/codec/*` for `origin`; none at all when it is unset."""
    if origin is not None:
        app.add_middleware(CodecCors, origin=origin)
