"""The retry schedule: given the policy, the attempts so far and now, what happens next.

A pure function so that it can be property-tested exhaustively and called from workflow code:
no clock, no I/O, randomness only from the `rng` the caller passes (`workflow.random()`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict

from redialer.allowed_time import Deferral, next_allowed
from redialer.answer_rates import AnswerRates, choose_time
from redialer.campaign import CampaignPolicy, RetryPolicy
from redialer.outcomes import STATUS_WHEN_NOT_RETRIED, FinalStatus, Outcome
from redialer.strategies import ABSOLUTE_JITTER_SPAN, Smart


class PastAttempt(Protocol):
    """What the schedule needs to know of an attempt already made."""

    @property
    def outcome(self) -> Outcome: ...

    @property
    def started_at(self) -> datetime: ...

    @property
    def ended_at(self) -> datetime: ...


class DialAt(BaseModel):
    """Place attempt `attempt` at `at`; `due` is when the strategy wanted it, before any move.

    A `smart` retry also carries the expected answer rate of the hour it chose, and why.
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["dial"] = "dial"
    attempt: int
    at: AwareDatetime
    due: AwareDatetime
    deferred: list[Deferral] = []
    expected_answer_rate: float | None = None
    why: str | None = None

    @property
    def why_deferred(self) -> str:
        return ", ".join(d.describe() for d in self.deferred)


class Final(BaseModel):
    """The recipient is done: no further attempt, ever."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["final"] = "final"
    status: FinalStatus
    reason: str


Decision = DialAt | Final


def status_if_not_retried(retry: RetryPolicy, attempts: Sequence[PastAttempt]) -> Final | None:
    """The final status the last outcome leads to by the retry rules, or None if it may retry."""
    outcome = attempts[-1].outcome
    if outcome not in retry.retry_on:
        return Final(
            status=STATUS_WHEN_NOT_RETRIED[outcome],
            reason=f"{outcome.value} is not retried by this policy",
        )
    cap = retry.cap_for(outcome)
    if cap is not None:
        already = sum(1 for a in attempts[:-1] if a.outcome == outcome)
        if already >= cap:
            return Final(
                status=STATUS_WHEN_NOT_RETRIED[outcome],
                reason=f"{outcome.value} may be retried at most {cap} time(s)",
            )
    return None


#: Finality never depends on jitter: `final_status` draws from this, never from the caller's rng.
_NO_JITTER_NEEDED = random.Random(0)


def final_status(
    policy: CampaignPolicy, *, zone: ZoneInfo, attempts: Sequence[PastAttempt], now: datetime
) -> Final | None:
    """Whether the attempts so far end the recipient, and with which status; None if they don't."""
    final = status_if_not_retried(policy.retry, attempts)
    if final is not None:
        return final
    due = policy.retry.strategy.earliest_retry(
        retry_number=len(attempts),
        last_ended_at=attempts[-1].ended_at,
        now=now,
        zone=zone,
        rng=_NO_JITTER_NEEDED,
    )
    if due is None:
        return Final(
            status=FinalStatus.ALL_RETRIES_EXHAUSTED,
            reason=f"no retries left after {len(attempts)} attempt(s)",
        )
    return None


def next_step(
    policy: CampaignPolicy,
    *,
    zone: ZoneInfo,
    attempts: Sequence[PastAttempt],
    now: datetime,
    rng: random.Random,
    phone: str | None = None,
    own_zone: bool = False,
    answer_rates: AnswerRates | None = None,
) -> Decision:
    """When the next call may be placed, or that the recipient is final.

    The strategy gives the earliest time (a delay counts from the end of the previous attempt);
    it is never earlier than `now`, and is then moved forward, never backward, past pause windows,
    calling hours, the daily cap and the compliance rules that cover `phone` (held in its own
    zone when `own_zone`, else in every candidate zone of the number). The first attempt obeys
    the same windows. A `smart` retry takes the allowed hour up to `max_delay` after the previous
    attempt that `answer_rates` (None: the seed products' advice alone) draws best.
    """
    if attempts:
        final = final_status(policy, zone=zone, attempts=attempts, now=now)
        if final is not None:
            return final
        due = policy.retry.strategy.earliest_retry(
            retry_number=len(attempts),
            last_ended_at=attempts[-1].ended_at,
            now=now,
            zone=zone,
            rng=rng,
        )
        assert due is not None, "final_status found a retry left; jitter cannot remove it"
        strategy = policy.retry.strategy
        if isinstance(strategy, Smart):
            return _smart_retry(
                policy,
                strategy,
                zone=zone,
                attempts=attempts,
                earliest=max(due, now),
                rng=rng,
                phone=phone,
                own_zone=own_zone,
                answer_rates=answer_rates,
            )
    else:
        due = now
    at, deferred = next_allowed(
        max(due, now), policy=policy, zone=zone, attempts=attempts, phone=phone, own_zone=own_zone
    )
    return DialAt(attempt=len(attempts) + 1, at=at, due=due, deferred=deferred)


def _smart_retry(
    policy: CampaignPolicy,
    strategy: Smart,
    *,
    zone: ZoneInfo,
    attempts: Sequence[PastAttempt],
    earliest: datetime,
    rng: random.Random,
    phone: str | None,
    own_zone: bool,
    answer_rates: AnswerRates | None,
) -> DialAt:
    """The hour is chosen among the allowed ones by the very rules every dial obeys; `due` is
    the hour's start (or the earliest instant), `deferred` what moved it within the hour."""

    def allowed(t: datetime) -> datetime:
        return next_allowed(
            t, policy=policy, zone=zone, attempts=attempts, phone=phone, own_zone=own_zone
        )[0]

    choice = choose_time(
        earliest=earliest,
        latest=strategy.latest_retry(attempts[-1].ended_at),
        zone=zone,
        allowed=allowed,
        rates=answer_rates if answer_rates is not None else AnswerRates(),
        rng=rng,
        spread=strategy.jitter * ABSOLUTE_JITTER_SPAN,
    )
    at, deferred = next_allowed(
        choice.wanted, policy=policy, zone=zone, attempts=attempts, phone=phone, own_zone=own_zone
    )
    assert at == choice.at, "next_allowed is a function of its inputs"
    return DialAt(
        attempt=len(attempts) + 1,
        at=at,
        due=choice.wanted,
        deferred=deferred,
        expected_answer_rate=round(choice.expected_rate, 4),
        why=choice.why,
    )
