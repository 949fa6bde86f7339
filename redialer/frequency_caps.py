"""The cross-campaign frequency cap: at most N calls to one number in a rolling window.

`REDIALER_MAX_CALLS_PER_NUMBER=3/24h` (or `5/7d`, `2/90m`, `1/PT12H`): whichever campaigns and
workers place them, no number gets more calls than that in any window of that length. A plain
value, so settings can carry it without importing the store that enforces it
(redialer.store.number_calls).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from redialer.durations import parse_duration

_SHORT = re.compile(r"^(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>[smhdw])$", re.IGNORECASE)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
#: A window longer than this would keep a number's calls for ever to enforce it.
LONGEST_WINDOW = timedelta(days=366)


@dataclass(frozen=True)
class FrequencyCap:
    calls: int
    window: timedelta

    def label(self) -> str:
        return f"at most {self.calls} calls to a number in {_human(self.window)}"


def _human(window: timedelta) -> str:
    seconds = window.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def parse_frequency_cap(value: str) -> FrequencyCap:
    """`"3/24h"` -> 3 calls per 24 hours; refuses the rest naming the rule it broke."""
    text = value.strip()
    calls_text, slash, window_text = text.partition("/")
    if not slash:
        raise ValueError(f"{value!r} must be CALLS/WINDOW, for example 3/24h or 5/7d")
    try:
        calls = int(calls_text.strip())
    except ValueError:
        raise ValueError(f"{value!r}: the number of calls must be a whole number") from None
    if calls < 1:
        raise ValueError(f"{value!r}: the number of calls must be at least 1")
    short = _SHORT.match(window_text.strip())
    try:
        seconds = (
            float(short["n"]) * _UNIT[short["unit"].lower()]
            if short
            else float(parse_duration(window_text.strip()))  # type: ignore[arg-type]
        )
    except (TypeError, ValueError):
        raise ValueError(
            f"{value!r}: the window must be a duration such as 24h, 7d, 90m or PT12H"
        ) from None
    window = timedelta(seconds=seconds)
    if not timedelta(0) < window <= LONGEST_WINDOW:
        raise ValueError(f"{value!r}: the window must be longer than 0 and at most 366 days")
    return FrequencyCap(calls=calls, window=window)
