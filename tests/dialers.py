"""Dialers for tests: a call that stays up until the test hangs it up."""

from __future__ import annotations

import asyncio
from datetime import datetime

from redialer.dialers.base import CallRequest, CallResult, Dialer


class HeldDialer:
    """Rings through `inner` only once the test hangs up, so that signals, cancellations and
    other calls can happen while this one is up."""

    def __init__(self, inner: Dialer) -> None:
        self.inner = inner
        self.up = asyncio.Event()
        self.hang_up = asyncio.Event()

    async def dial(self, request: CallRequest) -> CallResult:
        self.up.set()
        await self.hang_up.wait()
        return await self.inner.dial(request)

    async def adopt(self, request: CallRequest, *, since: datetime) -> CallResult | None:
        return await self.inner.adopt(request, since=since)


class DuplicatingDialer:
    """Sends every place-call request twice: the double dial the checks must catch."""

    def __init__(self, inner: Dialer) -> None:
        self.inner = inner

    async def dial(self, request: CallRequest) -> CallResult:
        await self.inner.dial(request)
        return await self.inner.dial(request)

    async def adopt(self, request: CallRequest, *, since: datetime) -> CallResult | None:
        return await self.inner.adopt(request, since=since)


class DiesAfterPlacing:
    """Places the call, then fails as a worker killed before recording it would (once)."""

    def __init__(self, inner: Dialer) -> None:
        self.inner = inner
        self.died = False

    async def dial(self, request: CallRequest) -> CallResult:
        result = await self.inner.dial(request)
        if not self.died:
            self.died = True
            raise ConnectionError("worker died after the provider placed the call")
        return result

    async def adopt(self, request: CallRequest, *, since: datetime) -> CallResult | None:
        return await self.inner.adopt(request, since=since)
