"""The provider account's caps: what every campaign, single call and worker share.

Plain values, so settings can carry them without importing the store that enforces them
(redialer.store.call_caps).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AccountCaps:
    """Caps on the provider account, across every campaign, single call and worker."""

    max_calls: int | None = None
    rate: float | None = None

    def __bool__(self) -> bool:
        return bool(self.max_calls or self.rate)


def rate_slots(rate: float) -> tuple[int, float]:
    """(k, w): at most k call starts in any w seconds, w = k / rate. Below 10/s, k is the
    whole calls per second (at least 1), so 1/s never lets two starts into one second."""
    k = max(1, int(rate)) if rate < 10 else int(rate // 10) * 10
    return k, k / rate
