"""Dialers for tests: a call that stays up until the test hangs it up."""

from __future__ import annotations

import asyncio

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
