"""Temporal's refusals as the API's: not found is 404, an unreachable or slow server 503.

Anything else Temporal refuses is a 503 too, with its message: the request was well formed (the
API checked it first), so the client may retry, and the operator has the reason in the log.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from service.requests import ApiError
from starter.inspection import NotInStore

log = structlog.get_logger(__name__)


@contextmanager
def temporal_errors(*, not_found: str) -> Iterator[None]:
    try:
        yield
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(404, not_found) from exc
        log.warning("temporal refused a request", status=exc.status.name, message=exc.message)
        raise ApiError(503, f"Temporal could not answer ({exc.status.name}); retry later") from exc
    except WorkflowQueryFailedError as exc:
        raise ApiError(503, f"the workflow could not answer: {exc.message}") from exc
    except NotInStore as exc:
        raise ApiError(503, f"nothing can answer right now: {exc}") from exc
