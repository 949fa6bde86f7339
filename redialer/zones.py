"""Time zones: which zone a recipient's windows are read in, and local wall time to instants."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_zones


@lru_cache(maxsize=512)
def load_zone(name: str) -> ZoneInfo:
    """A zone by IANA name; raises ValueError with the rule when the name is unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name such as America/New_York"
        ) from exc


@lru_cache(maxsize=65536)
def zone_of_number(e164: str) -> str | None:
    """The zone a number maps to when it maps to exactly one, else None."""
    try:
        zones = phone_zones.time_zones_for_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return None
    if len(zones) != 1 or zones[0] == phone_zones.UNKNOWN_TIMEZONE:
        return None
    try:
        load_zone(zones[0])
    except ValueError:
        return None
    return zones[0]


def recipient_zone_name(*, own: str | None, phone: str, campaign: str) -> str:
    """The recipient's own zone, else its number's single zone, else the campaign's."""
    return own or zone_of_number(phone) or campaign


def local_to_utc(day: date, minute: int, zone: ZoneInfo, *, earliest: bool) -> datetime:
    """The instant of local wall time `minute` past midnight on `day`, in UTC.

    Around DST changes a wall time can happen twice (fall back) or not at all (spring forward).
    `earliest=True` takes the earlier of the two readings, `earliest=False` the later one, so a
    window read with (earliest start, latest end) never shrinks: safety over precision.
    """
    if minute >= 24 * 60:
        day, minute = day + timedelta(days=1), minute - 24 * 60
    wall = datetime.combine(day, time(minute // 60, minute % 60))
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return min(first, second) if earliest else max(first, second)
