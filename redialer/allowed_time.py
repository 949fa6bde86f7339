"""When a call may be placed: pause windows, calling hours and the daily cap, in a local zone.

Everything here is pure: instants in, instants out. Windows are read in local wall time and turned
into UTC instants day by day; across DST changes a boundary is read conservatively (a window's
start at its earliest reading, its end at its latest), so a window may grow by the size of the
shift but never shrinks and no call is ever placed at a forbidden local hour.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict

from redialer.compliance import ROLLING_DAY_HOURS, ComplianceRule, rule_zone_names, rules_for
from redialer.windows import DAY_MINUTES, Weekday
from redialer.zones import load_zone, local_to_utc

if TYPE_CHECKING:
    from redialer.campaign import CampaignPolicy

#: How far ahead to look for an allowed minute before deciding the rules leave none (a
#: validated policy always leaves one within a week; the margin covers DST-shrunk slots).
SEARCH_HORIZON = timedelta(days=16)


class DeferralReason(StrEnum):
    PAUSE_WINDOW = "pause_window"
    CALLING_HOURS = "calling_hours"
    DAILY_CAP = "daily_cap"
    COMPLIANCE = "compliance"  # a calling-time law (`redialer.compliance`): its name in `rule`
    #: REDIALER_MAX_CALLS_PER_NUMBER: the number had its calls in the window, across campaigns
    FREQUENCY_CAP = "frequency_cap"


class Deferral(BaseModel):
    """One move of a dial time: why, by which rule, and from when to when."""

    model_config = ConfigDict(frozen=True)

    reason: DeferralReason
    rule: str
    moved_from: AwareDatetime
    moved_to: AwareDatetime

    def describe(self) -> str:
        return f"{self.reason.value} ({self.rule})"


class StartedAttempt(Protocol):
    @property
    def started_at(self) -> datetime: ...


class NoAllowedTime(ValueError):
    """The rules leave no minute to call within the search horizon."""


@dataclass(frozen=True)
class _Blocked:
    start: datetime
    end: datetime
    reason: DeferralReason
    rule: str


def _blocked_on(day: date, policy: CampaignPolicy, zone: ZoneInfo) -> Iterator[_Blocked]:
    """The forbidden instants that begin on local `day`."""
    weekday = list(Weekday)[day.weekday()]
    next_day = day + timedelta(days=1)
    for r in policy.windows_for(weekday):
        end_day = next_day if r.crosses_midnight else day
        yield _Blocked(
            local_to_utc(day, r.start, zone, earliest=True),
            local_to_utc(end_day, r.end_minute, zone, earliest=False),
            DeferralReason.PAUSE_WINDOW,
            f"{weekday.value} {r.label()}",
        )
    hours = policy.calling_hours
    if hours is None:
        return
    rule = f"calling hours {hours.label()}"
    spans = (
        [(hours.end_minute, hours.start)]
        if hours.crosses_midnight
        else [(0, hours.start), (hours.end_minute, DAY_MINUTES)]
    )
    for start, end in spans:
        if start < end:
            yield _Blocked(
                local_to_utc(day, start, zone, earliest=True),
                local_to_utc(day, end, zone, earliest=False),
                DeferralReason.CALLING_HOURS,
                rule,
            )


def _rule_blocked_on(day: date, rule: ComplianceRule, zone: ZoneInfo) -> Iterator[_Blocked]:
    """A law's forbidden hours that begin on local `day`, read as conservatively as calling
    hours (earliest start, latest end): a DST shift widens the block, never narrows it."""
    for start, end in ((0, rule.start), (rule.end, DAY_MINUTES)):
        if start < end:
            yield _Blocked(
                local_to_utc(day, start, zone, earliest=True),
                local_to_utc(day, end, zone, earliest=False),
                DeferralReason.COMPLIANCE,
                rule.label(),
            )


def _around(t: datetime, zone: ZoneInfo) -> tuple[date, date, date]:
    day = t.astimezone(zone).date()
    return day - timedelta(days=1), day, day + timedelta(days=1)


def _first_block_containing(
    t: datetime,
    policy: CampaignPolicy,
    zone: ZoneInfo,
    rules: Sequence[ComplianceRule] = (),
    rule_zones: Sequence[ZoneInfo] = (),
) -> _Blocked | None:
    hits = [
        b for d in _around(t, zone) for b in _blocked_on(d, policy, zone) if b.start <= t < b.end
    ]
    hits += [
        b
        for rule in rules
        for rz in rule_zones  # every candidate zone: the rule must hold in all of them
        for d in _around(t, rz)
        for b in _rule_blocked_on(d, rule, rz)
        if b.start <= t < b.end
    ]
    return max(hits, key=lambda b: b.end) if hits else None


def _rolling_cap_until(
    t: datetime, rules: Sequence[ComplianceRule], attempts: Sequence[StartedAttempt]
) -> tuple[ComplianceRule, datetime] | None:
    """A law's "at most N calls in any 24 h" (N = 3 in FL, OK, MD): with the last N calls
    before `t` all within 24 h of it, the next may go only 24 h after the earliest of them."""
    window = timedelta(hours=ROLLING_DAY_HOURS)
    started = sorted(a.started_at for a in attempts if a.started_at <= t)
    for rule in rules:
        n = rule.max_calls_per_day
        if n is not None and len(started) >= n and t < started[-n] + window:
            return rule, started[-n] + window
    return None


def _attempts_on(day: date, attempts: Sequence[StartedAttempt], zone: ZoneInfo) -> int:
    return sum(1 for a in attempts if a.started_at.astimezone(zone).date() == day)


def next_allowed(
    t: datetime,
    *,
    policy: CampaignPolicy,
    zone: ZoneInfo,
    attempts: Sequence[StartedAttempt] = (),
    phone: str | None = None,
    own_zone: bool = False,
) -> tuple[datetime, list[Deferral]]:
    """The first instant at or after `t` outside every window, under the daily cap and allowed
    by the campaign's `compliance` rules that cover `phone`.

    Rules need the number: without `phone` none apply (the activity passes it, so no call is
    placed outside them). Their hours hold in `zone` when `own_zone` (the recipient's own
    timezone) or the number has one candidate zone, else in every candidate zone of the number.
    Returns the instant with the moves that led there, in order (touching windows chain).
    """
    rules = rules_for(policy.compliance, phone)
    rule_zones = (
        [load_zone(name) for name in rule_zone_names(phone, str(zone), own_zone=own_zone)]
        if rules and phone is not None
        else []
    )
    deferred: list[Deferral] = []
    limit = t + SEARCH_HORIZON
    while t < limit:
        block = _first_block_containing(t, policy, zone, rules, rule_zones)
        if block is not None:
            _record(deferred, block.reason, block.rule, t, block.end)
            t = block.end
            continue
        cap = policy.max_attempts_per_day
        local_day = t.astimezone(zone).date()
        if cap is not None and _attempts_on(local_day, attempts, zone) >= cap:
            tomorrow = local_to_utc(local_day + timedelta(days=1), 0, zone, earliest=False)
            _record(deferred, DeferralReason.DAILY_CAP, f"max {cap} attempts per day", t, tomorrow)
            t = tomorrow
            continue
        capped = _rolling_cap_until(t, rules, attempts)
        if capped is not None:
            rule, until = capped
            _record(deferred, DeferralReason.COMPLIANCE, rule.cap_label(), t, until)
            t = until
            continue
        return t, deferred
    raise NoAllowedTime(
        "pause windows, calling hours, the daily cap and the compliance rules leave no time to call"
    )


def _record(
    deferred: list[Deferral], reason: DeferralReason, rule: str, start: datetime, end: datetime
) -> None:
    last = deferred[-1] if deferred else None
    if last is not None and last.reason == reason and last.rule == rule and last.moved_to == start:
        deferred[-1] = last.model_copy(update={"moved_to": end})
    else:
        deferred.append(Deferral(reason=reason, rule=rule, moved_from=start, moved_to=end))
