"""The `smart` retry strategy: the spec, the schedule's choice of hour, the plan and the CLI.

The oracles are the hand-written ones of tests/test_compliance.py and
tests/test_schedule_properties.py: an instant read as local wall time with zoneinfo against the
raw policy document and the statutes' hours, never `redialer.allowed_time`.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from typer.testing import CliRunner

from redialer.allowed_time import NoAllowedTime
from redialer.answer_rates import AnswerRates, HourCount
from redialer.campaign import CampaignPolicy
from redialer.limits import Limits
from redialer.loading import InvalidInput, parse_campaign
from redialer.outcomes import FinalStatus, Outcome
from redialer.plan import plan_attempts
from redialer.schedule import DialAt, Final, next_step
from redialer.settings import get_settings
from redialer.strategies import STRATEGY_TYPES, Smart
from starter.cli import app
from tests.test_compliance import TRANSITIONS as LAW_TRANSITIONS
from tests.test_compliance import Case, campaign_forbids, law_forbids
from tests.test_compliance import Made as Started
from tests.test_compliance import cases as compliance_cases
from tests.test_schedule_properties import forbidden_at

NY = ZoneInfo("America/New_York")
DEFAULTS = Limits()
RAISED = Limits(max_delay_seconds=3 * 86400)
B, N, C = Outcome.BUSY, Outcome.NO_ANSWER, Outcome.COMPLETED
runner = CliRunner()


@dataclass(frozen=True)
class Made:
    outcome: Outcome
    started_at: datetime
    ended_at: datetime


def smart(min_delay: float = 1800, max_delay: float = 86400, retries: int = 3, **more: Any) -> dict:
    return {
        "type": "smart",
        "max_retries": retries,
        "min_delay": min_delay,
        "max_delay": max_delay,
        **more,
    }


def policy(strategy: dict, limits: Limits = RAISED, **fields: Any) -> CampaignPolicy:
    return CampaignPolicy.model_validate(
        {"timezone": "America/New_York", "retry": {"strategy": strategy}, **fields},
        context=limits.context(),
    )


def problems(strategy: dict, limits: Limits = DEFAULTS) -> list[str]:
    data = {"campaign_id": "t", "recipients": [{"phone": "+16505550199"}]}
    with pytest.raises(InvalidInput) as info:
        parse_campaign({**data, "retry": {"strategy": strategy}}, limits=limits)
    return [str(p) for p in info.value.problems]


def favouring(hour: int, *, days: range = range(7)) -> AnswerRates:
    """Records in which `hour` is answered 80 % of the time and every other hour 2 %."""
    return AnswerRates.from_rows(
        HourCount(d, h, 500, 400 if h == hour else 10) for d in days for h in range(24)
    )


def retry_after(
    pol: CampaignPolicy,
    ended: datetime,
    *,
    seed: int = 0,
    rates: AnswerRates | None = None,
    phone: str | None = None,
    before: list[Made] | None = None,
) -> DialAt:
    made = [*(before or []), Made(B, ended - timedelta(seconds=30), ended)]
    decision = next_step(
        pol,
        zone=NY,
        attempts=made,
        now=ended,
        rng=random.Random(seed),
        phone=phone,
        answer_rates=rates,
    )
    assert isinstance(decision, DialAt), decision
    return decision


# --- the spec -----------------------------------------------------------------------------------


def test_min_delay_above_max_delay_is_refused_naming_the_field_and_both_values():
    """A span that ends before it starts: refused at max_delay, with both values."""
    assert problems(smart(min_delay=7200, max_delay=3600)) == [
        "retry.strategy.max_delay: 3600: min_delay 7200 s is more than max_delay 3600 s: the"
        " retry would have no time to be placed in (min_delay must be at most max_delay)"
    ]
    assert Smart(max_retries=1, min_delay=60, max_delay=60).max_delay == 60  # equal is fine


def test_the_delay_limit_holds_for_both_delays_and_is_raised_by_the_limits():
    """10,800 s by default, for min_delay and max_delay alike; the limits context raises it."""
    assert problems(smart(min_delay=1800, max_delay=86400)) == [
        "retry.strategy.max_delay: 86400: a configured delay may be at most 10800 s"
        " (REDIALER_MAX_DELAY_LIMIT raises the limit)"
    ]
    found = problems(smart(min_delay=20000, max_delay=30000, retries=21))
    assert [f.split(":")[0] for f in found] == [
        "retry.strategy.max_retries",
        "retry.strategy.min_delay",
        "retry.strategy.max_delay",
    ]
    spec = parse_campaign(
        {"campaign_id": "t", "retry": {"strategy": smart(max_delay="P1D")}},
        limits=Limits(max_delay_seconds=86400),
    ).value
    assert isinstance(spec.retry.strategy, Smart) and spec.retry.strategy.max_delay == 86400


def test_learn_from_takes_campaign_ids_only():
    """learn_from lists campaign ids (the campaign_id pattern), at most 100 of them."""
    assert policy(smart(learn_from=["a", "lead-qualification-nov"])).retry.strategy.learn_from
    (found,) = problems(smart(max_delay=3600, learn_from=["ok", "no spaces"]))
    assert found.startswith("retry.strategy.learn_from[1]: 'no spaces': String should match")
    (found,) = problems(smart(max_delay=3600, learn_from=[f"c{i}" for i in range(101)]))
    assert found.startswith("retry.strategy.learn_from: ") and "at most 100" in found


def test_smart_is_listed_wherever_the_strategies_are():
    """The type list, an unknown type's message and the JSON schema all name `smart`."""
    assert STRATEGY_TYPES[-1] == "smart"
    (found,) = problems({"type": "weekly"})
    assert "'smart'" in found and "'time_of_day'" in found
    schema = json.dumps(CampaignPolicy.model_json_schema())
    assert '"smart"' in schema and "min_delay" in schema and "learn_from" in schema


# --- the schedule -------------------------------------------------------------------------------


def test_a_smart_retry_takes_the_best_hour_and_says_why():
    """With records favouring 16:00, the retry after a Tuesday 09:00 call is at 16:00 that day,
    and the decision carries the hour's expected rate and a sentence saying why."""
    pol = policy(smart(), calling_hours={"start": "09:00", "end": "21:00"})
    d = retry_after(pol, datetime(2026, 11, 24, 9, 0, 30, tzinfo=NY), rates=favouring(16))
    assert d.at == datetime(2026, 11, 24, 16, 0, tzinfo=NY) and d.due == d.at
    assert d.deferred == []
    assert d.expected_answer_rate == pytest.approx((0.40 * 10 + 400) / 510, abs=1e-4)
    assert d.why == "expected answer rate 79% at Tue 16:00 (best of 13 allowed hours)"


def test_without_records_the_prior_decides_and_other_strategies_carry_no_rate():
    """No table: the seed documents' advice (as an empty table); non-smart dials carry none."""
    pol = policy(smart(), calling_hours={"start": "09:00", "end": "21:00"})
    ended = datetime(2026, 11, 24, 9, 0, 30, tzinfo=NY)
    for seed in range(20):
        assert retry_after(pol, ended, seed=seed) == retry_after(
            pol, ended, seed=seed, rates=AnswerRates()
        )
    hours = Counter(retry_after(pol, ended, seed=s).at.astimezone(NY).hour for s in range(200))
    assert hours[10] + hours[16] + hours[17] > 100, hours
    assert hours[12] + hours[13] < 30, hours
    first = next_step(pol, zone=NY, attempts=[], now=ended, rng=random.Random(0))
    assert isinstance(first, DialAt) and first.expected_answer_rate is None and first.why is None
    fixed = policy({"type": "fixed_delay", "delay": 600, "max_retries": 1})
    d = retry_after(fixed, ended)
    assert (d.expected_answer_rate, d.why) == (None, None)


def test_max_retries_is_the_budget_and_outcome_caps_still_apply():
    """max_retries 2: three attempts then all_retries_exhausted; failed is retried once."""
    p = plan_attempts(
        policy(smart(retries=2)),
        phone="+12125550123",
        recipient_timezone=None,
        start=datetime(2026, 11, 24, 9, 0, tzinfo=NY),
        outcomes=[N] * 5,
    )
    assert (len(p.attempts), p.final_status) == (3, FinalStatus.ALL_RETRIES_EXHAUSTED)
    assert p.final_reason == "no retries left after 3 attempt(s)"
    assert [a.why is None for a in p.attempts] == [True, False, False]
    p = plan_attempts(
        policy(smart(retries=5)),
        phone="+12125550123",
        recipient_timezone=None,
        start=datetime(2026, 11, 24, 9, 0, tzinfo=NY),
        outcomes=[Outcome.FAILED] * 5,
    )
    assert (len(p.attempts), p.final_status) == (2, FinalStatus.FAILED)


def test_a_window_past_midnight_is_never_chosen_however_well_its_hours_answer():
    """Pause 20:00-08:00 every night: records favouring 23:00 never pull a retry into it."""
    nightly = [{"start": "20:00", "end": "08:00"}]
    raw = {"pause_windows": {day: nightly for day in ("monday", "tuesday", "wednesday")}}
    pol = policy(smart(min_delay=1800, max_delay=2 * 86400), **raw)
    ended = datetime(2026, 11, 23, 19, 0, tzinfo=NY)  # Monday evening
    latest = ended + timedelta(days=2)
    for seed in range(100):
        d = retry_after(pol, ended, seed=seed, rates=favouring(23))
        assert forbidden_at(raw, d.at, NY) is None, (seed, d.at.astimezone(NY))
        assert ended + timedelta(seconds=1800) <= d.at <= latest
        assert 8 <= d.at.astimezone(NY).hour < 20


def test_on_the_spring_forward_night_a_retry_never_lands_at_a_skipped_time():
    """Records favouring 02:00 on the night New York skips 02:00: the retry is a real time."""
    pol = policy(smart(min_delay=600, max_delay=6 * 3600))
    ended = datetime(2026, 3, 8, 0, 30, tzinfo=NY)  # Sunday, 00:30 EST
    for seed in range(50):
        d = retry_after(pol, ended, seed=seed, rates=favouring(2))
        local = d.at.astimezone(NY)
        assert local.hour != 2
        assert local.replace(tzinfo=None).replace(tzinfo=NY).astimezone(UTC) == d.at


def test_a_retry_keeps_the_daily_cap_and_a_law_s_rolling_cap():
    """Florida: at most 3 calls in 24 h; with the cap full, the smart span falls back past it."""
    pol = policy(smart(min_delay=600, max_delay=4 * 3600), compliance=["us_florida"])
    first = datetime(2026, 6, 3, 9, 0, tzinfo=NY)
    before = [
        Made(B, first, first + timedelta(seconds=30)),
        Made(B, first + timedelta(hours=2), first + timedelta(hours=2, seconds=30)),
    ]
    ended = first + timedelta(hours=4, seconds=30)
    d = retry_after(pol, ended, before=before, phone="+13055550123", rates=favouring(15))
    assert d.at == first + timedelta(hours=24)  # the fourth call waits for 24 h after the first
    assert d.why is not None and d.why.startswith("no allowed time between")
    assert [x.reason.value for x in d.deferred] == ["compliance"]
    capped = policy(smart(min_delay=600, max_delay=4 * 3600), max_attempts_per_day=3)
    d = retry_after(capped, ended, before=before)
    assert d.at.astimezone(NY).date() > ended.astimezone(NY).date()


def test_the_same_seed_gives_the_same_plan_and_seeds_explore():
    """plan_attempts(seed=...) fixes the exploration as it fixes jitter."""

    def ats(seed: int) -> list[datetime]:
        p = plan_attempts(
            policy(smart(jitter=0.2), calling_hours={"start": "09:00", "end": "21:00"}),
            phone="+12125550123",
            recipient_timezone=None,
            start=datetime(2026, 11, 24, 9, 0, tzinfo=NY),
            outcomes=[N, N, N, C],
            seed=seed,
        )
        return [a.at for a in p.attempts]

    assert ats(5) == ats(5)
    assert len({tuple(ats(seed)) for seed in range(10)}) > 1


# --- the plan and the CLI -----------------------------------------------------------------------


@pytest.fixture
def spec_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("REDIALER_MAX_DELAY_LIMIT", "86400")
    get_settings.cache_clear()
    path = tmp_path / "smart.json"
    path.write_text(
        json.dumps(
            {
                "campaign_id": "smart-nov",
                "timezone": "America/New_York",
                "retry": {"strategy": smart(learn_from=["past-campaign"])},
                "calling_hours": {"start": "09:00", "end": "21:00"},
                "recipients": [{"phone": "+12125550123"}],
            }
        )
    )
    yield path
    get_settings.cache_clear()


def test_validate_describes_the_smart_strategy(spec_path: Path):
    result = runner.invoke(app, ["validate", str(spec_path)])
    assert result.exit_code == 0, result.output
    assert (
        "strategy     smart: the allowed hour with the best expected answer rate, 30 min to 24 h"
        " after each attempt, up to 3 retries, learning from past-campaign\n"
    ) in result.stdout


def test_plan_shows_each_smart_retry_s_time_and_why(spec_path: Path):
    """Text: the source of the rates, and per retry its expected rate; JSON: the same fields,
    only on smart retries; --seed fixes the choice."""
    args = [
        "plan",
        str(spec_path),
        "--start",
        "2026-11-24T09:00:00-05:00",
        "--outcomes",
        "busy,no_answer,completed",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1] == (
        "  smart timing: answer rates from the seed products' advice"
        " (--database learns from a store)"
    )
    assert lines[2].startswith("  attempt  1  Tue 2026-11-24 09:00:00 -0500  busy")
    assert "expected answer rate" not in lines[2]
    assert "; expected answer rate " in lines[3] and "allowed hours)" in lines[3]
    data = json.loads(runner.invoke(app, [*args, "--json", "--seed", "4"]).stdout)
    assert set(data["attempts"][0]) == {"attempt", "at", "outcome", "deferred"}
    retry = data["attempts"][1]
    assert set(retry) == {"attempt", "at", "outcome", "deferred", "expected_answer_rate", "why"}
    assert retry["why"].startswith("expected answer rate ")
    again = json.loads(runner.invoke(app, [*args, "--json", "--seed", "4"]).stdout)
    assert again == data


def test_plan_with_a_store_learns_from_the_campaigns_named(spec_path: Path, tmp_path: Path):
    """--database: the campaigns in learn_from teach it; 18:00 answered, so 18:00 it is."""
    from sqlalchemy import insert

    from redialer.store.store import Store
    from redialer.store.tables import CallRecordRow, CampaignRecipientRow

    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store.open(url)
    now = datetime.now(UTC)
    phones = [f"+1212555{n:04d}" for n in range(20)]
    with store.engine.begin() as connection:
        for campaign in ("past-campaign", "other"):
            connection.execute(
                insert(CampaignRecipientRow.__table__),  # type: ignore[attr-defined]
                [
                    {
                        "campaign_id": campaign,
                        "phone": p,
                        "workflow_id": f"w/{campaign}/{p}",
                        "seq": i,
                        "zone": "America/New_York",
                        "updated_at": now,
                    }
                    for i, p in enumerate(phones)
                ],
            )
        rows = []
        for day in range(2, 7):  # 2026-11-02 (a Monday) to Friday
            for hour in range(9, 21):
                for p in phones:
                    start = datetime(2026, 11, day, hour, 5, tzinfo=NY)
                    for campaign in ("past-campaign", "other"):
                        good = hour == (18 if campaign == "past-campaign" else 10)
                        rows.append(
                            {
                                "idempotency_key": f"{campaign}:{p}:{day}:{hour}",
                                "campaign_id": campaign,
                                "phone": p,
                                "retry_group_id": f"w/{campaign}/{p}",
                                "attempt": 1,
                                "outcome": "completed" if good else "no_answer",
                                "started_at": start,
                                "ended_at": start + timedelta(seconds=30),
                                "dialed": True,
                                "variables": {},
                                "recorded_at": now,
                            }
                        )
        connection.execute(insert(CallRecordRow.__table__), rows)  # type: ignore[attr-defined]
    store.close()
    args = [
        "plan",
        str(spec_path),
        "--start",
        "2026-11-24T09:00:00-05:00",
        "--outcomes",
        "busy,completed",
    ]
    result = runner.invoke(app, [*args, "--database", url])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1].startswith(
        "  smart timing: answer rates learned from 1,200 call(s) of past-campaign"
    )
    assert lines[3].startswith(
        "  attempt  2  Tue 2026-11-24 18:00:00 -0500  completed; expected answer rate"
    )


# --- the property: never a forbidden time, never outside the span but by the fallback ----------

#: Property cases; REDIALER_PROPERTY_EXAMPLES scales them as it scales the compliance tests'.
TOTAL_EXAMPLES = int(os.environ.get("REDIALER_PROPERTY_EXAMPLES", "3000"))
PROFILE = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
)
LAST_START = datetime(2028, 9, 1, tzinfo=UTC)  # the oracle's DST table ends with 2028


def near_a_change(t: datetime) -> bool:
    return any(abs(t - x) <= timedelta(hours=3) for x in LAW_TRANSITIONS)


@st.composite
def smart_cases(
    draw: st.DrawFn, near_dst: bool
) -> tuple[Case, Smart, AnswerRates | None, list, int]:
    case = draw(compliance_cases(near_dst=near_dst, with_own_zone=draw(st.booleans())))
    assume(case.start < LAST_START)
    min_delay = draw(st.integers(60, 10800))
    max_delay = draw(st.integers(min_delay, draw(st.sampled_from([10800, 86400, 3 * 86400]))))
    strategy = {
        "type": "smart",
        "max_retries": draw(st.integers(1, 8)),
        "min_delay": min_delay,
        "max_delay": max_delay,
        "jitter": draw(st.sampled_from([0.0, 0.0, 0.1, 0.5])),
    }
    raw = {
        **case.raw,
        "retry": {"strategy": strategy, "retry_on": ["no_answer", "busy"]},
    }
    try:
        case.policy = CampaignPolicy.model_validate(raw, context=RAISED.context())
    except ValidationError:
        assume(False)
    case.raw = raw
    rates = None
    if draw(st.booleans()):  # records, some hours answering far better than others
        buckets = st.tuples(st.integers(0, 300), st.floats(0, 1))
        drawn = draw(st.lists(buckets, min_size=168, max_size=168))
        rates = AnswerRates(
            attempts=[n for n, _ in drawn], answered=[int(n * share) for n, share in drawn]
        )
    calls = draw(st.lists(st.floats(0, 600), min_size=9, max_size=9))
    return case, case.policy.retry.strategy, rates, calls, draw(st.integers(0, 2**32 - 1))


COUNT = {"retries": 0, "fallbacks": 0}


def check_smart(drawn: tuple[Case, Smart, AnswerRates | None, list, int]) -> None:
    case, strategy, rates, calls, seed = drawn
    rng = random.Random(seed)
    made: list[Made] = []
    now = case.start
    while True:
        try:
            d = next_step(
                case.policy,
                zone=case.zone,
                attempts=made,
                now=now,
                rng=rng,
                phone=case.phone,
                own_zone=case.own_zone,
                answer_rates=rates,
            )
        except NoAllowedTime:
            return  # the campaign's hours and a law never overlap: test_compliance covers it
        if isinstance(d, Final):
            assert len(made) == strategy.max_retries + 1, (d, len(made))
            assert d.status is FinalStatus.ALL_RETRIES_EXHAUSTED
            return
        so_far = Case(
            case.raw,
            case.policy,
            case.phone,
            case.zone,
            case.own_zone,
            d.at,
            [Started(m.started_at) for m in made],
        )
        assert law_forbids(so_far, d.at) is None, (law_forbids(so_far, d.at), d)
        assert campaign_forbids(so_far, d.at) is None, (campaign_forbids(so_far, d.at), d)
        if made:
            COUNT["retries"] += 1
            ended = made[-1].ended_at
            earliest = ended + timedelta(seconds=strategy.min_delay)
            latest = ended + timedelta(seconds=strategy.max_delay)
            assert d.at >= earliest, (d, earliest)
            assert d.expected_answer_rate is not None and 0 < d.expected_answer_rate < 1
            assert d.why
            if d.at > latest:  # the documented fallback: nothing in the span was allowed
                COUNT["fallbacks"] += 1
                assert d.why.startswith("no allowed time between"), d.why
                t = earliest
                while t <= latest:
                    if not near_a_change(t):  # a window may grow there (read conservatively)
                        assert law_forbids(so_far, t) or campaign_forbids(so_far, t), (
                            f"{t.astimezone(case.zone)} was allowed, yet the retry fell back to"
                            f" {d.at.astimezone(case.zone)}"
                        )
                    t += timedelta(minutes=1)
            else:
                assert d.why.startswith("expected answer rate "), d.why
        made.append(Made(B, d.at, d.at + timedelta(seconds=calls[len(made)])))
        now = made[-1].ended_at


@settings(max_examples=max(1, round(TOTAL_EXAMPLES * 0.04)), **PROFILE)  # type: ignore[arg-type]
@given(smart_cases(near_dst=False))
def test_a_smart_retry_keeps_every_rule_and_its_span_at_any_time(drawn: tuple) -> None:
    """Never in a window, outside calling hours, over the daily cap or against a law; never
    before min_delay, nor after max_delay unless nothing in between was allowed."""
    check_smart(drawn)


@settings(max_examples=max(1, round(TOTAL_EXAMPLES * 0.02)), **PROFILE)  # type: ignore[arg-type]
@given(smart_cases(near_dst=True))
def test_a_smart_retry_keeps_every_rule_and_its_span_across_dst_changes(drawn: tuple) -> None:
    """The same, for calls a day or so either side of a DST change in one of the zones."""
    check_smart(drawn)


def test_smart_property_count_is_reported(capsys: pytest.CaptureFixture[str]):
    """Not a check: how many smart retries the property tests placed, and how many fell back."""
    with capsys.disabled():
        print(f"\nsmart retries checked: {COUNT['retries']} ({COUNT['fallbacks']} fell back)")
