"""The service's one Temporal client, connected on first use and again after a failure.

The process starts and answers `/healthz` whether or not Temporal is up (an orchestrator starts
the pieces in any order); a `/v1` request that needs Temporal while it is down gets 503, and
`/readyz` says which dependency is missing.
"""

from __future__ import annotations

import asyncio

from temporalio.client import Client

from redialer.settings import Settings
from service.requests import ApiError
from starter.client import connect

#: How long a request waits for a connection before it is told Temporal is unavailable.
CONNECT_TIMEOUT = 5.0


class TemporalLink:
    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self._settings = settings
        self._client = client
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        """The client, or 503 naming the address when Temporal cannot be reached."""
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await asyncio.wait_for(
                        connect(self._settings), timeout=CONNECT_TIMEOUT
                    )
                except (RuntimeError, TimeoutError, OSError) as exc:
                    raise ApiError(
                        503,
                        f"Temporal at {self._settings.temporal_address} is not reachable;"
                        " try again shortly",
                    ) from exc
        return self._client

    async def healthy(self) -> str:
        """`ok`, or why not (for `/readyz`)."""
        try:
            client = await self.client()
            await asyncio.wait_for(client.service_client.check_health(), timeout=CONNECT_TIMEOUT)
        except ApiError as exc:
            return exc.message
        except Exception as exc:  # any failure means not ready; say what it was
            return f"Temporal health check failed: {type(exc).__name__}: {exc}"
        return "ok"
