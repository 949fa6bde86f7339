"""A dry run of the schedule: when each attempt would be placed, given the dials' outcomes.

Users check a policy with it before launch (`redialer plan`). It calls the very function the
recipient workflow calls, so what it shows is what the runtime will do.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import AwareDatetime, BaseModel

from redialer.allowed_time import Deferral
from redialer.answer_rates import AnswerRates
from redialer.campaign import CampaignPolicy
from redialer.compliance import rule_zone_names, rules_for, zone_is_own
from redialer.outcomes import FinalStatus, Outcome
from redialer.schedule import Final, next_step
from redialer.zones import load_zone, recipient_zone_name


@dataclass(frozen=True)
class _Attempt:
    outcome: Outcome
    started_at: datetime
    ended_at: datetime


class PlannedAttempt(BaseModel):
    attempt: int
    at: AwareDatetime
    outcome: Outcome | None  # None: the outcomes given ran out before the recipient was final
    deferred: list[Deferral]
    #: A `smart` retry: the expected answer rate of the hour it chose, and why (else None).
    expected_answer_rate: float | None = None
    why: str | None = None


class Plan(BaseModel):
    recipient: str
    timezone: str
    attempts: list[PlannedAttempt]
    final_status: FinalStatus | None
    final_reason: str | None = None
    #: The candidate zones compliance rules held in, when the number has several (else empty).
    compliance_zones: list[str] = []


def plan_attempts(
    policy: CampaignPolicy,
    *,
    phone: str,
    recipient_timezone: str | None,
    start: datetime,
    outcomes: Sequence[Outcome],
    call_seconds: float = 30.0,
    seed: int = 0,
    answer_rates: AnswerRates | None = None,
) -> Plan:
    """Walk the schedule with scripted outcomes; each call lasts `call_seconds`.

    `seed` fixes jitter and the smart strategy's exploration; `answer_rates` are what a smart
    retry learns from (None: the seed products' advice alone).
    """
    zone_name = recipient_zone_name(own=recipient_timezone, phone=phone, campaign=policy.timezone)
    zone = load_zone(zone_name)
    # As the dial activity does: the rules, and whether the zone is the recipient's own.
    own_zone = zone_is_own(phone, zone_name, policy.timezone)
    rule_zones = (
        rule_zone_names(phone, zone_name, own_zone=own_zone)
        if rules_for(policy.compliance, phone)
        else ()
    )
    intersected = list(rule_zones) if len(rule_zones) > 1 else []
    rng = random.Random(seed)
    made: list[_Attempt] = []
    planned: list[PlannedAttempt] = []
    now = start
    while True:
        decision = next_step(
            policy,
            zone=zone,
            attempts=made,
            now=now,
            rng=rng,
            phone=phone,
            own_zone=own_zone,
            answer_rates=answer_rates,
        )
        if isinstance(decision, Final):
            return Plan(
                recipient=phone,
                timezone=zone_name,
                attempts=planned,
                final_status=decision.status,
                final_reason=decision.reason,
                compliance_zones=intersected,
            )
        at = decision.at
        outcome = outcomes[len(made)] if len(made) < len(outcomes) else None
        planned.append(
            PlannedAttempt(
                attempt=decision.attempt,
                at=at.astimezone(zone),
                outcome=outcome,
                deferred=[
                    d.model_copy(
                        update={
                            "moved_from": d.moved_from.astimezone(zone),
                            "moved_to": d.moved_to.astimezone(zone),
                        }
                    )
                    for d in decision.deferred
                ],
                expected_answer_rate=decision.expected_answer_rate,
                why=decision.why,
            )
        )
        if outcome is None:
            return Plan(
                recipient=phone,
                timezone=zone_name,
                attempts=planned,
                final_status=None,
                final_reason="the outcomes given ran out before the recipient was final",
                compliance_zones=intersected,
            )
        ended = at + timedelta(seconds=call_seconds)
        made.append(_Attempt(outcome, at, ended))
        now = ended
