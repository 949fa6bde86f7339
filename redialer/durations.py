"""Durations as users write them: seconds (`300`) or ISO 8601 (`"PT5M"`)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, Field

_ISO = re.compile(
    r"^P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_UNIT_SECONDS = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}


def parse_duration(value: object) -> object:
    """Turn an ISO 8601 duration into seconds; leave numbers to pydantic's own checks.

    Years and months are refused: their length depends on the calendar, a retry delay must not.
    """
    if isinstance(value, bool):
        raise ValueError("must be a number of seconds or an ISO 8601 duration, not a boolean")
    if not isinstance(value, str):
        return value
    text = value.strip().upper()
    try:
        return float(text)
    except ValueError:
        pass
    match = _ISO.match(text)
    if not match or text in ("P", "PT") or text.endswith("T"):
        raise ValueError(
            "must be seconds (300) or an ISO 8601 duration such as PT5M, PT1H30M or P1D"
            " (years and months are not allowed)"
        )
    return sum(float(v) * _UNIT_SECONDS[k] for k, v in match.groupdict().items() if v)


#: A strictly positive duration in seconds.
Seconds = Annotated[float, BeforeValidator(parse_duration), Field(gt=0, allow_inf_nan=False)]
