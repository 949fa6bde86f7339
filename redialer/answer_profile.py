"""AnswerProfile: how likely a live person answers, by the recipient's local weekday and hour.

The simulated dialer reads it so that retry timing matters in a simulation as it does in life: a
call at 10:00 on a Tuesday connects more often than one at 12:30 or at 03:00. A profile is a
small document (JSON or YAML), every value a probability from 0 to 1:

    default: 0.03                # any hour no table below gives
    hours: {"10-12": 0.45}       # every day; "10-12" is 10:00 to 11:59, "9" is 09:00 to 09:59
    weekend: {"10-12": 0.25}     # Saturday and Sunday, over `hours`
    days: {friday: {"16": 0.3}}  # one weekday, over `weekend` and `hours`

An hour takes its value from the most specific table that lists it (its day, then `weekend` for
Saturday and Sunday, then `hours`), else `default`. A file is a whole profile: it replaces the
default below, it is not merged into it. `examples/answer-profile.yaml` is the default written out.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from redialer.limits import Problem
from redialer.loading import InvalidInput, read_document

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEEKEND = ("saturday", "sunday")
_FIELDS = ("default", "hours", "weekend", "days")
_SPAN = re.compile(r"^\s*(\d{1,2})\s*(?:-\s*(\d{1,2})\s*)?$")

#: The default, from the seed products' advice on when to call:
#: - 003 (Exotel, "Auto Retry on Busy"): "answer rates are highest between 10-11 AM and 4-6 PM on
#:   weekdays" -> 10:00 at 0.50, 16:00-17:59 at 0.45, the best of the day;
#: - 002 ("Improving your connection rate"): "Morning (9-11 AM): often best for business
#:   contacts" -> 09:00 at 0.35 and 11:00 at 0.40 (08:00 at 0.25); "Midday (12-2 PM): lower answer
#:   rates (lunch)" -> 0.15, the worst of the working day; "Afternoon (2-5 PM): good" -> 0.30;
#:   "Evening (5-8 PM): best for consumer contacts" -> 18:00-20:59 at 0.30; "Friday: lower
#:   afternoon rates" -> Friday 14:00-17:59 lower; "Weekend: varies widely" -> weekends lower;
#: - nights (21:00-07:59), when nobody should be called, at 0.03.
#: Over calling hours (09:00-21:00) a weekday averages about 0.33, within the first-attempt
#: connection rates of 20-40 % that 002 calls typical (the simulator's RATES give 0.35).
DEFAULT: dict[str, Any] = {
    "default": 0.03,
    "hours": {
        "8": 0.25,
        "9": 0.35,
        "10": 0.50,
        "11": 0.40,
        "12-14": 0.15,
        "14-16": 0.30,
        "16-18": 0.45,
        "18-21": 0.30,
    },
    "weekend": {
        "8": 0.10,
        "9": 0.15,
        "10-12": 0.25,
        "12-14": 0.12,
        "14-18": 0.20,
        "18-21": 0.20,
    },
    "days": {"friday": {"14-16": 0.22, "16-18": 0.35}},
}


@dataclass(frozen=True)
class AnswerProfile:
    """The probability a live person answers, for each local (weekday, hour), Monday first."""

    table: tuple[tuple[float, ...], ...]  # 7 days x 24 hours

    def probability(self, local: datetime) -> float:
        """For the wall time `local` shows: pass the recipient's local time of the call."""
        return self.table[local.weekday()][local.hour]

    @classmethod
    def default(cls) -> AnswerProfile:
        """The documented default (`DEFAULT`), drawn from the seed products' advice."""
        return parse_profile(DEFAULT, source="the default answer profile")

    @classmethod
    def load(cls, path: Path) -> AnswerProfile:
        """A profile file (JSON or YAML); every bad entry reported at once."""
        return parse_profile(read_document(path), source=str(path))


def parse_profile(data: Any, *, source: str = "answer profile") -> AnswerProfile:
    """Validate a profile document; raise InvalidInput naming each bad field, value and rule."""
    if not isinstance(data, dict):
        rule = "must be a mapping with default, hours, weekend and days (see answer_profile.py)"
        raise InvalidInput(source, [Problem("", type(data).__name__, rule)])
    problems: list[Problem] = []
    for key in data:
        if key not in _FIELDS:
            rule = "unknown field (check the spelling): use " + ", ".join(_FIELDS)
            problems.append(Problem(str(key), key, rule))
    default = 0.0
    if "default" not in data:
        problems.append(Problem("default", None, "is required: the probability for unlisted hours"))
    elif _probability("default", data["default"], problems):
        default = float(data["default"])
    hours = _hours("hours", data.get("hours", {}), problems)
    weekend = _hours("weekend", data.get("weekend", {}), problems)
    days: dict[str, dict[int, float]] = {}
    given_days = data.get("days", {})
    if not isinstance(given_days, dict):
        problems.append(Problem("days", given_days, "must map weekdays to tables of hours"))
        given_days = {}
    for name, table in given_days.items():
        day = str(name).strip().lower()
        if day not in DAYS:
            problems.append(Problem(f"days.{name}", name, "not a weekday: use " + ", ".join(DAYS)))
            continue
        if day in days:
            problems.append(Problem(f"days.{name}", name, f"{day} is already given: list it once"))
            continue
        days[day] = _hours(f"days.{name}", table, problems)
    if problems:
        raise InvalidInput(source, problems)
    table = []
    for day in DAYS:
        layers = [days.get(day, {}), weekend if day in WEEKEND else {}, hours]
        table.append(
            tuple(next((layer[h] for layer in layers if h in layer), default) for h in range(24))
        )
    return AnswerProfile(tuple(table))


def _probability(path: str, value: Any, problems: list[Problem]) -> bool:
    """Whether `value` is a probability; a problem is recorded when not."""
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= 1
    )
    if not ok:
        problems.append(Problem(path, value, "must be a probability from 0 to 1"))
    return ok


def _hours(path: str, value: Any, problems: list[Problem]) -> dict[int, float]:
    """A table of hours (`"9"`, or `"12-14"` for 12:00 to 13:59) to probabilities; a table may
    give each hour once, so which value applies is never a question of order."""
    if not isinstance(value, dict):
        problems.append(Problem(path, value, 'must map hours ("9", "12-14") to probabilities'))
        return {}
    hours: dict[int, float] = {}
    given_by: dict[int, str] = {}
    for key, probability in value.items():
        where = f"{path}.{key}"
        span = _span(str(key))
        if span is None:
            rule = 'not an hour: use "0" to "23", or a span "12-14" (12:00 to 13:59)'
            problems.append(Problem(where, key, rule))
            continue
        overlap = sorted(given_by[h] for h in span if h in given_by)
        if overlap:
            rule = f"overlaps {overlap[0]!r} in the same table: give each hour once"
            problems.append(Problem(where, key, rule))
            continue
        if not _probability(where, probability, problems):
            continue
        for h in span:
            hours[h] = float(probability)
            given_by[h] = str(key)
    return hours


def _span(key: str) -> range | None:
    """`"9"` -> 9; `"12-14"` -> 12, 13 (the end is when the span stops, as in "4-6 PM")."""
    match = _SPAN.match(key)
    if match is None:
        return None
    start = int(match[1])
    end = int(match[2]) if match[2] is not None else start + 1
    if not 0 <= start < end <= 24:
        return None
    return range(start, end)
