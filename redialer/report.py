"""Campaign insight from the call records: who was reached, on which attempt, did retries pay.

Pure computation over plain rows (one per recipient, one per attempt), so it can be checked
against hand-computed values and runs over 100,000 records in a fraction of a second.
Definitions (the seed products' own):
- connection rate: recipients completed / recipients;
- per attempt N: calls placed as attempt N, how many connected, the cumulative connection rate
  (recipients completed by attempt N / recipients) and its incremental gain over N-1;
- average attempts to connect: mean attempt number of the connecting call;
- retry conversion rate: recipients completed after a retry / recipients retried;
- unreachable rate: recipients `all_retries_exhausted` / recipients;
- answer rate by local hour and weekday: live answers / calls placed, in the recipient's zone;
- deferrals by rule: per reason and rule (calling hours, a pause window, the daily cap, a law,
  the frequency cap), the attempts it moved and the distinct recipients they belong to.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from pydantic import BaseModel

from redialer.outcomes import Outcome
from redialer.zones import load_zone

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
IN_PROGRESS = "in_progress"


class RecipientRow(NamedTuple):
    phone: str
    zone: str
    state: str
    status: str | None


class AttemptRow(NamedTuple):
    phone: str
    attempt: int
    outcome: str
    started_at: datetime
    dialed: bool


class DeferralCount(NamedTuple):
    """The store's grouped count of one rule's deferrals (`Store.deferral_counts`)."""

    reason: str
    rule: str
    attempts: int
    recipients: int


class DeferralStats(BaseModel):
    reason: str  # a DeferralReason: calling_hours, pause_window, daily_cap, compliance...
    rule: str  # the rule as `plan` and `history` name it
    attempts: int  # attempts it moved (each counted once, however often it moved them)
    recipients: int  # distinct recipients of those attempts


class AttemptStats(BaseModel):
    attempt: int
    calls: int
    connected: int
    connection_rate: float  # connected / calls placed as this attempt
    cumulative_rate: float  # recipients connected by this attempt / recipients
    incremental_gain: float  # cumulative_rate - the previous attempt's


class RateBucket(BaseModel):
    calls: int
    answered: int
    rate: float


class CampaignReport(BaseModel):
    campaign_id: str
    recipients: int
    final: int
    by_status: dict[str, int]
    connection_rate: float
    attempts: list[AttemptStats]
    average_attempts_to_connect: float | None
    recipients_retried: int
    completed_after_retry: int
    retry_conversion_rate: float | None
    unreachable_rate: float
    outcomes: dict[str, int]
    calls_placed: int
    calls_per_connection: float | None
    answer_rate_by_hour: dict[int, RateBucket]
    answer_rate_by_weekday: dict[str, RateBucket]
    #: Deferrals by rule, most attempts first (empty in stores from before they were recorded).
    deferrals: list[DeferralStats] = []


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _buckets(counts: dict[object, list[int]]) -> dict:  # type: ignore[type-arg]
    return {
        key: RateBucket(calls=c, answered=a, rate=_rate(a, c)) for key, (c, a) in counts.items()
    }


def build_report(
    campaign_id: str,
    recipients: Iterable[RecipientRow],
    attempts: Iterable[AttemptRow],
    deferrals: Iterable[DeferralCount] = (),
) -> CampaignReport:
    people = {r.phone: r for r in recipients}
    by_phone: dict[str, list[AttemptRow]] = defaultdict(list)
    for a in attempts:
        by_phone[a.phone].append(a)
    for phone in by_phone.keys() - people.keys():  # a call outside the recipient list
        people[phone] = RecipientRow(phone, "UTC", "final", None)
    total = len(people)

    by_status = Counter(
        r.status if r.state == "final" and r.status else IN_PROGRESS for r in people.values()
    )
    outcomes: Counter[str] = Counter()
    calls_at: Counter[int] = Counter()
    connected_at: Counter[int] = Counter()
    hours: dict[object, list[int]] = defaultdict(lambda: [0, 0])
    weekdays: dict[object, list[int]] = defaultdict(lambda: [0, 0])
    retried = converted = 0
    for phone, rows in by_phone.items():
        rows.sort(key=lambda a: a.attempt)
        zone = load_zone(people[phone].zone)
        first_connect = next((a.attempt for a in rows if a.outcome == Outcome.COMPLETED), None)
        if first_connect is not None:
            connected_at[first_connect] += 1
        if len(rows) > 1:
            retried += 1
            converted += first_connect is not None and first_connect > 1
        for a in rows:
            outcomes[a.outcome] += 1
            if not a.dialed:
                continue
            calls_at[a.attempt] += 1
            local = a.started_at.astimezone(zone)
            answered = int(a.outcome == Outcome.COMPLETED)
            for bucket, key in ((hours, local.hour), (weekdays, WEEKDAYS[local.weekday()])):
                bucket[key][0] += 1
                bucket[key][1] += answered

    per_attempt = []
    reached = 0
    for n in range(1, max(calls_at, default=0) + 1):
        gained = connected_at[n]
        reached += gained
        per_attempt.append(
            AttemptStats(
                attempt=n,
                calls=calls_at[n],
                connected=gained,
                connection_rate=_rate(gained, calls_at[n]),
                cumulative_rate=_rate(reached, total),
                incremental_gain=_rate(gained, total),
            )
        )
    connections = sum(connected_at.values())
    calls = sum(calls_at.values())
    return CampaignReport(
        campaign_id=campaign_id,
        recipients=total,
        final=total - by_status.get(IN_PROGRESS, 0),
        by_status=dict(by_status.most_common()),
        connection_rate=_rate(by_status.get("completed", 0), total),
        attempts=per_attempt,
        average_attempts_to_connect=(
            round(sum(n * c for n, c in connected_at.items()) / connections, 4)
            if connections
            else None
        ),
        recipients_retried=retried,
        completed_after_retry=converted,
        retry_conversion_rate=_rate(converted, retried) if retried else None,
        unreachable_rate=_rate(by_status.get("all_retries_exhausted", 0), total),
        outcomes=dict(outcomes.most_common()),
        calls_placed=calls,
        calls_per_connection=round(calls / connections, 4) if connections else None,
        answer_rate_by_hour=_buckets(dict(sorted(hours.items()))),  # type: ignore[arg-type]
        answer_rate_by_weekday=_buckets({d: weekdays[d] for d in WEEKDAYS if d in weekdays}),
        deferrals=[
            DeferralStats(
                reason=d.reason, rule=d.rule, attempts=d.attempts, recipients=d.recipients
            )
            for d in sorted(deferrals, key=lambda d: (-d.attempts, d.reason, d.rule))
        ],
    )
