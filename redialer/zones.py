"""Time zones: which zone a recipient's windows are read in, and local wall time to instants."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_zones
from phonenumbers.tzdata import TIMEZONE_DATA

from redialer.zone_overrides import override_for


@lru_cache(maxsize=512)
def load_zone(name: str) -> ZoneInfo:
    """A zone by IANA name; raises ValueError with the rule when the name is unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name such as America/New_York"
        ) from exc


#: Zones are one clock when their UTC offsets agree at every instant from here to 2040. What
#: happened before cannot move a call placed now; a difference within it means the two answer
#: to different authorities and may part again (Tasmania's DST until 2008, Indiana's before 2006).
_CLOCK_START = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp())
_CLOCK_END = int(datetime(2040, 1, 1, tzinfo=UTC).timestamp())
_DAY = 86_400

#: A zone's clock: its UTC offset at the start, then each (instant, new offset), in seconds.
Clock = tuple[int, tuple[tuple[int, int], ...]]


@lru_cache(maxsize=2)
def _instants(every_days: int) -> tuple[datetime, ...]:
    """Instants through the clock range, built once and shared by every zone scanned."""
    step = every_days * _DAY
    return tuple(datetime.fromtimestamp(at, UTC) for at in range(_CLOCK_START, _CLOCK_END, step))


def _offset(zone: ZoneInfo, at: int) -> int:
    shift = datetime.fromtimestamp(at, UTC).astimezone(zone).utcoffset()
    return int(shift.total_seconds()) if shift else 0


@lru_cache(maxsize=1024)
def _sketch(name: str) -> tuple[timedelta | None, ...]:
    """The zone's offsets every 15 days: zones whose sketches differ are different clocks, and
    telling them apart this way costs a fifteenth of `clock_of`."""
    zone = load_zone(name)
    return tuple(at.astimezone(zone).utcoffset() for at in _instants(15))


@lru_cache(maxsize=1024)
def clock_of(name: str) -> Clock:
    """Every change of a zone's UTC offset over the clock range, to the second, so zones can be
    compared by what their clocks show rather than by name.

    Offsets are read once a day and each change is bisected to its second (about 15,000 reads a
    zone, once): no zone in tzdata changes twice within a day.
    """
    zone = load_zone(name)
    days = _instants(1)
    daily = [day.astimezone(zone).utcoffset() for day in days]
    changes: list[tuple[int, int]] = []
    for index in range(1, len(days)):
        if daily[index] == daily[index - 1]:
            continue
        current = _offset(zone, int(days[index - 1].timestamp()))
        before, after = int(days[index - 1].timestamp()), int(days[index].timestamp())
        while after - before > 1:  # the offset is `current` at `before`, not at `after`
            middle = (before + after) // 2
            if _offset(zone, middle) == current:
                before = middle
            else:
                after = middle
        changes.append((after, _offset(zone, after)))
    return _offset(zone, _CLOCK_START), tuple(changes)


def same_clock(a: str, b: str) -> bool:
    """Whether two zone names show the same time at every instant of the clock range."""
    return a == b or (_sketch(a) == _sketch(b) and clock_of(a) == clock_of(b))


def _tzdata_text(file: str) -> str:
    """A file of the `tzdata` package: its names do not depend on the host's zoneinfo."""
    try:
        return (resources.files("tzdata") / "zoneinfo" / file).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return ""


@lru_cache(maxsize=1)
def _links() -> dict[str, str]:
    """tzdata's links, old or merged name -> the zone it is now (its `L target name` lines)."""
    links: dict[str, str] = {}
    for line in _tzdata_text("tzdata.zi").splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0] == "L":
            links[fields[2]] = fields[1]
    return links


@lru_cache(maxsize=1)
def _zone_rows() -> dict[str, tuple[int, frozenset[str]]]:
    """Each zone of zone1970.tab -> (its row, its countries). Rows run by country, then the
    most populous zone first: the order a country's same-clock names are preferred in."""
    rows: dict[str, tuple[int, frozenset[str]]] = {}
    for line in _tzdata_text("zone1970.tab").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        countries, _, name = line.split("\t")[:3]
        rows.setdefault(name, (len(rows), frozenset(countries.split(","))))
    return rows


@lru_cache(maxsize=1024)
def canonical_zone(name: str) -> str:
    """The zone a link name stands for: Asia/Calcutta -> Asia/Kolkata, Europe/Jersey ->
    Europe/London. Unchanged when it is a zone, or when the host cannot load the new name."""
    target = _links().get(name, name)
    try:
        load_zone(target)
    except ValueError:
        return name
    return target


def _preference(name: str, region: str | None) -> tuple[int, int, str]:
    """Sort key: zone1970.tab rows of the number's country first, in file order."""
    row = _zone_rows().get(name)
    if row is None:
        return (2, 0, name)
    index, countries = row
    return (0 if region in countries else 1, index, name)


def distinct_clocks(names: Iterable[str], region: str | None = None) -> tuple[str, ...]:
    """One canonical name per clock among `names`, in preference order: names that show the
    same time at every instant are one zone to a caller (a UK mobile is Europe/London, not four
    zones). Each clock is named by its first name in `region`'s rows of zone1970.tab."""
    loadable: set[str] = set()
    for name in names:
        try:
            load_zone(name)
        except ValueError:
            continue
        loadable.add(canonical_zone(name))
    ordered = sorted(loadable, key=lambda name: _preference(name, region))
    if len(ordered) <= 1:
        return tuple(ordered)
    sketches = {name: _sketch(name) for name in ordered}
    shared = Counter(sketches.values())
    named: dict[tuple[object, Clock | None], str] = {}
    for name in ordered:  # the first name of each clock names it
        sketch = sketches[name]
        named.setdefault((sketch, clock_of(name) if shared[sketch] > 1 else None), name)
    return tuple(named.values())


@lru_cache(maxsize=65536)
def zones_of_number(e164: str) -> tuple[str, ...]:
    """Every clock a number may ring in, one canonical zone name each; empty when unknown.

    redialer's corrections (`redialer.zone_overrides`) come first, then phonenumbers' data; a
    number that data cannot classify still has a country, so it gets the country's zones.
    """
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ()
    digits = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
    names = override_for(digits)
    if names is None:
        names = phone_zones.time_zones_for_number(number)
        if names == (phone_zones.UNKNOWN_TIMEZONE,):
            names = TIMEZONE_DATA.get(str(number.country_code), ())
    known = [name for name in names if name != phone_zones.UNKNOWN_TIMEZONE]
    return distinct_clocks(known, phonenumbers.region_code_for_number(number))


def zone_of_number(e164: str) -> str | None:
    """The zone a number maps to when all it may ring in is one clock, else None."""
    zones = zones_of_number(e164)
    return zones[0] if len(zones) == 1 else None


def recipient_zone_name(*, own: str | None, phone: str, campaign: str) -> str:
    """The recipient's own zone, else its number's single clock, else the campaign's."""
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
