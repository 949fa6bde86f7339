"""Local wall-clock times and the ranges built from them: pause windows and calling hours."""

from __future__ import annotations

import re
from datetime import time
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, model_validator

#: Minutes in a day; `24:00` and `23:59` as an end both mean "to the end of the day".
DAY_MINUTES = 24 * 60

_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")


def _parse_minute_of_day(value: object) -> int:
    if isinstance(value, time):
        return value.hour * 60 + value.minute
    if isinstance(value, dict) and set(value) <= {"hour", "minute"} and "hour" in value:
        value = f"{value['hour']}:{value.get('minute', 0):02}"  # the seed products' {hour, minute}
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= DAY_MINUTES:
        return value  # already minutes past midnight (our own serialised form never is; tolerated)
    if not isinstance(value, str) or not (m := _HHMM.match(value.strip())):
        raise ValueError('must be a local time "HH:MM" (24-hour clock)')
    hour, minute = int(m.group(1)), int(m.group(2))
    if (hour, minute) == (24, 0):
        return DAY_MINUTES
    if hour > 23 or minute > 59:
        raise ValueError('must be a local time between "00:00" and "24:00"')
    return hour * 60 + minute


def format_minute_of_day(minutes: int) -> str:
    return "24:00" if minutes >= DAY_MINUTES else f"{minutes // 60:02}:{minutes % 60:02}"


#: Minutes past local midnight, written and read as "HH:MM".
LocalTime = Annotated[
    int,
    BeforeValidator(_parse_minute_of_day),
    PlainSerializer(format_minute_of_day, return_type=str),
]


class Weekday(StrEnum):
    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"

    @property
    def number(self) -> int:
        """Monday is 0, as `date.weekday()` counts (not `index`: that is str's own method)."""
        return list(Weekday).index(self)


class TimeRange(BaseModel):
    """From `start` to `end`, local time. An end before the start runs past midnight.

    `end: "23:59"` means the end of the day (the seed products' way to write it), as does "24:00".
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: LocalTime
    end: LocalTime

    @model_validator(mode="before")
    @classmethod
    def _seed_product_names(cls, data: Any) -> Any:
        # The seed products write {startAt, endAt}; accept them so their configs load unchanged.
        if isinstance(data, dict) and ("startAt" in data or "endAt" in data):
            data = dict(data)
            if "startAt" in data:
                data["start"] = data.pop("startAt")
            if "endAt" in data:
                data["end"] = data.pop("endAt")
        return data

    @model_validator(mode="after")
    def _check(self) -> TimeRange:
        if self.start == self.end_minute or self.start == DAY_MINUTES:
            raise ValueError(
                f"start {format_minute_of_day(self.start)} and end {format_minute_of_day(self.end)}"
                " leave an empty range: the start must differ from the end and be before 24:00"
            )
        return self

    @property
    def end_minute(self) -> int:
        """The end in minutes, with 23:59 read as the end of the day."""
        return DAY_MINUTES if self.end >= DAY_MINUTES - 1 else self.end

    @property
    def crosses_midnight(self) -> bool:
        return self.end_minute < self.start

    def label(self) -> str:
        return f"{format_minute_of_day(self.start)}-{format_minute_of_day(self.end)}"


#: Per weekday, the local ranges in which no call is placed.
PauseWindows = dict[Weekday, list[TimeRange]]
