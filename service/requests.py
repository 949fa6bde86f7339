"""Refusals and request bodies: every error a client can cause is a 4xx in one shape.

A body is read here, not by FastAPI's parameter binding, so that a spec is validated by the same
code as the CLI's (every problem at once, with limits and the seed products' formats), a JSON
body is bounded while it arrives (413, not a process holding a 2 GB upload), and a CSV recipient
list of any size streams through a temporary file.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from typing import IO, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from redialer.call_spec import CallSpec
from redialer.limits import Problem
from redialer.settings import Settings
from service.api_models import ErrorOut, problem_out

#: The largest JSON body (a campaign spec, a recipient list): a bigger list goes to
#: `/recipients` as CSV, which streams.
MAX_JSON_BYTES = 2 * 1024 * 1024
#: A streamed CSV body is spooled to disk past this size.
SPOOL_IN_MEMORY = 4 * 1024 * 1024

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    503: "unavailable",
}


class ApiError(Exception):
    """A refusal: status, message and, for bad input, every problem."""

    def __init__(
        self, status: int, message: str, problems: Sequence[Problem] = (), *, code: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = list(problems)
        self.code = code or _CODES.get(status, "error")

    def response(self) -> JSONResponse:
        body = ErrorOut(
            error=self.code,
            message=self.message,
            problems=[problem_out(p.path, p.value, p.rule) for p in self.problems],
        )
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(body.model_dump(mode="json"), status_code=self.status, headers=headers)


def invalid(problems: Sequence[Problem], message: str | None = None) -> ApiError:
    return ApiError(422, message or f"{len(problems)} problem(s) in the request", problems)


def install_error_handlers(app: FastAPI) -> None:
    """Our refusals, FastAPI's own (a bad query parameter) and Starlette's (404, 405) in the
    one documented shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ())]
            where = ".".join(loc[1:]) if loc and loc[0] in {"query", "path", "body"} else ""
            kind = f"{loc[0]} parameter " if loc and loc[0] in {"query", "path"} else ""
            problems.append(Problem(where, err.get("input"), kind + err.get("msg", "invalid")))
        return invalid(problems).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return ApiError(exc.status_code, str(exc.detail)).response()


def media_type(request: Request) -> str:
    """The Content-Type without its parameters (`text/csv; charset=utf-8` is `text/csv`)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def is_json(kind: str) -> bool:
    return kind == "application/json" or kind.endswith("+json")


def needs_call(settings: Settings, call: CallSpec | None) -> Problem | None:
    """A real provider places real calls: what an answered call does must be said."""
    if not settings.real_provider or call is not None:
        return None
    return Problem(
        "call",
        None,
        f"is required: this service places real calls ({settings.dialer.value}); say what an"
        ' answered call does, e.g. {"twiml": "<Response><Say>Hello {{name}}</Say></Response>"}'
        ' or {"url": "https://..."}',
    )


async def read_json(request: Request, *, limit: int = MAX_JSON_BYTES) -> Any:
    """The body as JSON: 415 unless it says it is JSON, 413 past `limit` (counted as it
    arrives, whatever Content-Length claims), 422 naming the line and column if it is not."""
    kind = media_type(request)
    if not is_json(kind):
        raise ApiError(415, f"Content-Type {kind or '(none)'!r}: send application/json")
    body = await _read_bounded(request, limit)
    try:
        return json.loads(body)
    except UnicodeDecodeError as exc:
        raise invalid([Problem("", f"byte {exc.start}", "the body is not UTF-8 text")]) from exc
    except json.JSONDecodeError as exc:
        rule = f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        raise invalid([Problem("", "(body)", rule)]) from exc
    except RecursionError as exc:  # [[[[...]]]] thousands deep
        raise invalid([Problem("", "(body)", "is nested too deeply")]) from exc


async def _read_bounded(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_large = ApiError(
        413,
        f"the body is over {limit // (1024 * 1024)} MB; send a large recipient list to"
        " POST /v1/campaigns/{id}/recipients as text/csv, which streams",
    )
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def spool_body(request: Request) -> IO[bytes]:
    """The whole body in a temporary file (in memory while small), rewound: a CSV of any size
    is read twice (checked, then sent) without being held in memory."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - returned
    async for chunk in request.stream():
        spool.write(chunk)
    spool.seek(0)
    return spool
