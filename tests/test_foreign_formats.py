"""Other products' retry settings: mapped exactly, counted as each product counts, errors named as
the user wrote them. Each case is checked twice: the spec equals its hand-written redialer
equivalent, and the dry run (the function the workflow itself calls) places the same attempts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from redialer.campaign import CampaignSpec
from redialer.foreign_formats import (
    DIALNEXA,
    EXOTEL,
    GOMOBILE,
    ROMULUS,
    Translation,
    translate_campaign,
    translate_retry,
)
from redialer.limits import Limits, Problem
from redialer.loading import InvalidInput, Loaded, parse_campaign, parse_retry
from redialer.outcomes import FinalStatus, Outcome
from redialer.plan import Plan, plan_attempts
from redialer.settings import get_settings
from starter.cli import app

DEFAULTS = Limits()
PHONE = "+16505550199"
MONDAY = datetime(2026, 11, 23, 11, 30, tzinfo=UTC)  # a Monday, before Gomobile's lunch pause
SCRIPT = ["busy", "no_answer", "busy", "no_answer", "voicemail", "completed"]
runner = CliRunner()

# The seeds' own examples, as their users have them.
GOMOBILE_PAUSE = {
    "monday": [
        {"startAt": {"hour": 12, "minute": 0}, "endAt": {"hour": 14, "minute": 0}},
        {"startAt": {"hour": 18, "minute": 0}, "endAt": {"hour": 23, "minute": 59}},
    ]
}
REDIALER_PAUSE = {
    "monday": [{"start": "12:00", "end": "14:00"}, {"start": "18:00", "end": "23:59"}]
}
GOMOBILE_DATES = ["2025-01-20T10:00:00Z", "2025-01-20T15:00:00Z", "2025-01-21T10:00:00Z"]
EXOTEL_RETRY = {
    "max_attempts": 3,
    "interval_minutes": 60,
    "retry_on": ["busy", "no-answer", "failed"],
}
EXOTEL_SCHEDULE = {"daily_start": "09:00", "daily_end": "21:00"}
DIALNEXA_RETRY = {
    "max_retries": 3,
    "wait_minutes": 30,
    "retry_on_voicemail": False,
    "retry_on_no_answer": True,
    "retry_on_busy": True,
}
ROMULUS_ROWS = [300, 3600, 10800]


def doc(**fields: Any) -> dict[str, Any]:
    return {"campaign_id": "t", "recipients": [{"phone": PHONE}], **fields}


def parsed(data: dict[str, Any], limits: Limits = DEFAULTS) -> Loaded[CampaignSpec]:
    return parse_campaign(data, limits=limits)


def refused(data: dict[str, Any], limits: Limits = DEFAULTS) -> list[str]:
    with pytest.raises(InvalidInput) as info:
        parse_campaign(data, limits=limits)
    return [str(p) for p in info.value.problems]


def dry_run(spec: CampaignSpec, outcomes: list[str], start: datetime = MONDAY) -> Plan:
    return plan_attempts(
        spec.policy(),
        phone=PHONE,
        recipient_timezone="UTC",
        start=start,
        outcomes=[Outcome(o) for o in outcomes],
    )


def timeline(plan: Plan) -> tuple[list[tuple[int, datetime, Outcome | None]], object]:
    return [(a.attempt, a.at, a.outcome) for a in plan.attempts], plan.final_status


# --- each format equals its hand-written redialer equivalent ------------------------------------

CASES = {
    "gomobile fixed_delay with pause windows": (
        {
            "retryStrategy": {"type": "fixed_delay", "delayMinutes": 60, "maxRetries": 3},
            "pauseWindows": GOMOBILE_PAUSE,
        },
        {
            "retry": {"strategy": {"type": "fixed_delay", "delay": 3600, "max_retries": 3}},
            "pause_windows": REDIALER_PAUSE,
        },
        (GOMOBILE,),
        MONDAY,
    ),
    "gomobile scheduled": (
        {"retryStrategy": {"type": "scheduled", "retryDates": GOMOBILE_DATES}},
        {"retry": {"strategy": {"type": "scheduled", "retry_at": GOMOBILE_DATES}}},
        (GOMOBILE,),
        datetime(2025, 1, 20, 9, 0, tzinfo=UTC),
    ),
    "gomobile none": (
        {"retryStrategy": {"type": "none"}},
        {"retry": {"strategy": {"type": "none"}}},
        (GOMOBILE,),
        MONDAY,
    ),
    "gomobile pauseWindows beside redialer's own retry": (
        {
            "retry": {"strategy": {"type": "attempts", "delays": [1800, 3600]}},
            "pauseWindows": GOMOBILE_PAUSE,
        },
        {
            "retry": {"strategy": {"type": "attempts", "delays": [1800, 3600]}},
            "pause_windows": REDIALER_PAUSE,
        },
        (GOMOBILE,),
        MONDAY,
    ),
    "exotel retry and schedule": (
        {"retry": EXOTEL_RETRY, "schedule": EXOTEL_SCHEDULE},
        {
            "retry": {
                "strategy": {"type": "fixed_delay", "delay": 3600, "max_retries": 3},
                "retry_on": ["busy", "no_answer", "failed"],
            },
            "calling_hours": {"start": "09:00", "end": "21:00"},
        },
        (EXOTEL,),
        datetime(2026, 11, 23, 19, 45, tzinfo=UTC),  # retries run into the end of the day
    ),
    "dialnexa": (
        {"retry": DIALNEXA_RETRY},
        {
            "retry": {
                "strategy": {"type": "fixed_delay", "delay": 1800, "max_retries": 3},
                "retry_on": ["no_answer", "busy"],
            }
        },
        (DIALNEXA,),
        MONDAY,
    ),
    "dialnexa max_retries 0": (
        {"retry": {**DIALNEXA_RETRY, "max_retries": 0}},
        {"retry": {"strategy": {"type": "none"}, "retry_on": ["no_answer", "busy"]}},
        (DIALNEXA,),
        MONDAY,
    ),
    "romulus attempt rows": (
        {"retry": ROMULUS_ROWS},
        {"retry": {"strategy": {"type": "attempts", "delays": [300, 3600, 10800]}}},
        (ROMULUS,),
        MONDAY,
    ),
}


@pytest.mark.parametrize(("foreign", "native", "formats", "start"), CASES.values(), ids=CASES)
def test_a_foreign_format_is_its_redialer_equivalent(
    foreign: dict[str, Any], native: dict[str, Any], formats: tuple[str, ...], start: datetime
):
    """Same spec, and the same attempts at the same times with the same final status."""
    theirs, ours = parsed(doc(**foreign)), parsed(doc(**native))
    assert theirs.value == ours.value
    assert theirs.translation is not None and theirs.translation.formats == formats
    assert theirs.translation.lines()  # something to explain
    assert ours.translation is not None and ours.translation.formats == ()
    assert ours.translation.lines() == []
    for script in (SCRIPT, ["busy"] * 8, ["voicemail"], ["failed", "failed", "busy"]):
        assert timeline(dry_run(theirs.value, script, start)) == timeline(
            dry_run(ours.value, script, start)
        )


def test_gomobile_pause_windows_move_a_retry_as_redialer_windows_do():
    """The lunch pause (Mon 12:00-14:00) moves the 12:30 retry to 14:00; 23:59 ends the day."""
    spec = parsed(
        doc(
            retryStrategy={"type": "fixed_delay", "delayMinutes": 60, "maxRetries": 3},
            pauseWindows=GOMOBILE_PAUSE,
        )
    ).value
    plan = dry_run(spec, ["busy"] * 4)
    assert [a.at.strftime("%a %H:%M:%S") for a in plan.attempts] == [
        "Mon 11:30:00",
        "Mon 14:00:00",  # 12:30:30 falls in the lunch pause
        "Mon 15:00:30",
        "Mon 16:01:00",
    ]
    assert [d.reason.value for d in plan.attempts[1].deferred] == ["pause_window"]
    assert spec.pause_windows["monday"][1].end_minute == 24 * 60


def test_exotel_schedule_holds_retries_to_the_daily_hours():
    """A retry due after 21:00 waits for 09:00 the next day, as Exotel's schedule does."""
    spec = parsed(doc(retry=EXOTEL_RETRY, schedule=EXOTEL_SCHEDULE)).value
    plan = dry_run(spec, ["busy"] * 4, datetime(2026, 11, 23, 19, 45, tzinfo=UTC))
    assert [a.at.strftime("%a %H:%M") for a in plan.attempts] == [
        "Mon 19:45",
        "Mon 20:45",  # 19:45:30 + 1 h
        "Tue 09:00",
        "Tue 10:00",
    ]


def test_dialnexa_voicemail_is_final_unless_retried_and_failed_is_never_retried():
    """retry_on_voicemail false ends at voicemail_final; failed ends the recipient at once."""
    spec = parsed(doc(retry=DIALNEXA_RETRY)).value
    assert dry_run(spec, ["busy", "voicemail"]).final_status == FinalStatus.VOICEMAIL_FINAL
    assert timeline(dry_run(spec, ["failed", "busy"]))[1] == FinalStatus.FAILED
    assert len(dry_run(spec, ["failed", "busy"]).attempts) == 1
    with_voicemail = parsed(doc(retry={**DIALNEXA_RETRY, "retry_on_voicemail": True})).value
    assert [o.value for o in with_voicemail.retry.retry_on] == ["no_answer", "busy", "voicemail"]
    assert len(dry_run(with_voicemail, ["voicemail"] * 6).attempts) == 4
    only_busy = parsed(
        doc(retry={"max_retries": 1, "wait_minutes": 5, "retry_on_no_answer": False})
    )
    assert [o.value for o in only_busy.value.retry.retry_on] == ["busy"]


def test_exotel_retries_failed_once_and_defaults_to_its_three_outcomes():
    """Exotel's "Yes (1 attempt)" for failed is redialer's default cap; retry_on defaults to all."""
    spec = parsed(doc(retry={"max_attempts": 3, "interval_minutes": 60})).value
    assert [o.value for o in spec.retry.retry_on] == ["no_answer", "busy", "failed"]
    assert spec.retry.cap_for(Outcome.FAILED) == 1
    plan = dry_run(spec, ["failed", "failed", "busy"])
    assert (len(plan.attempts), plan.final_status) == (2, FinalStatus.FAILED)
    only_busy = parsed(doc(retry={**EXOTEL_RETRY, "retry_on": ["busy"]})).value
    assert [o.value for o in only_busy.retry.retry_on] == ["busy"]
    underscore = parsed(doc(retry={**EXOTEL_RETRY, "retry_on": ["no_answer"]})).value
    assert [o.value for o in underscore.retry.retry_on] == ["no_answer"]


# --- what "max retries" counts ------------------------------------------------------------------

COUNTS = {
    "gomobile maxRetries 3": {
        "retryStrategy": {"type": "fixed_delay", "delayMinutes": 15, "maxRetries": 3}
    },
    "exotel max_attempts 3": {"retry": {"max_attempts": 3, "interval_minutes": 30}},
    "dialnexa max_retries 3": {"retry": {"max_retries": 3, "wait_minutes": 30}},
    "romulus 3 rows": {"retry": [300, 600, 900]},
}


@pytest.mark.parametrize("fields", COUNTS.values(), ids=COUNTS)
def test_three_retries_mean_four_attempts(fields: dict[str, Any]):
    """Each product's 3 counts retries after the first call: 4 attempts, then exhausted."""
    plan = dry_run(parsed(doc(**fields)).value, ["busy"] * 10)
    assert len(plan.attempts) == 4
    assert plan.final_status == FinalStatus.ALL_RETRIES_EXHAUSTED


@pytest.mark.parametrize(
    "fields",
    [
        {"retry": {"max_attempts": 0}},
        {"retry": {"max_attempts": 0, "interval_minutes": 60}},
        {"retry": {"max_retries": 0}},
        {"retryStrategy": {"type": "none"}},
        {"retry": []},
    ],
    ids=["exotel 0", "exotel 0 with interval", "dialnexa 0", "gomobile none", "romulus no rows"],
)
def test_zero_retries_mean_one_attempt(fields: dict[str, Any]):
    """0 turns retries off in every product: one attempt, the strategy none."""
    spec = parsed(doc(**fields)).value
    assert spec.retry.strategy.type == "none"
    assert len(dry_run(spec, ["busy"] * 3).attempts) == 1


# --- the mapping as it is explained -------------------------------------------------------------


def test_the_mapping_lines_name_source_value_target_and_meaning():
    """Each line reads `theirs = value → ours = value`; notes say what counts mean and why."""
    translation = translate_campaign(
        doc(
            retryStrategy={"type": "fixed_delay", "delayMinutes": 60, "maxRetries": 3},
            pauseWindows=GOMOBILE_PAUSE,
        )
    )
    lines = translation.lines()
    assert "retryStrategy.delayMinutes = 60 → retry.strategy.delay = 3600 s" in lines
    assert (
        "retryStrategy.maxRetries = 3 → retry.strategy.max_retries = 3"
        " (retries after the first attempt: at most 4 attempts)"
    ) in lines
    assert (
        "pauseWindows.monday[1].endAt = {'hour': 23, 'minute': 59}"
        " → pause_windows.monday[1].end = '23:59'"
    ) in lines
    assert any("Total Attempts 4-5" in line for line in lines)
    assert any(line.startswith("note: retry_on: Gomobile") for line in lines)
    assert translation.format_names == ["Gomobile"]
    exotel = translate_campaign(doc(retry=EXOTEL_RETRY, schedule=EXOTEL_SCHEDULE)).lines()
    assert "retry.retry_on[1] = 'no-answer' → retry.retry_on[1] = 'no_answer'" in exotel
    assert "schedule.daily_end = '21:00' → calling_hours.end = '21:00'" in exotel
    assert any("additional attempts after the first" in line for line in exotel)
    dialnexa = translate_campaign(doc(retry={"max_retries": 3, "wait_minutes": 30})).lines()
    assert "retry.retry_on_busy = (not given: true) → retry.retry_on = busy retried" in dialnexa
    assert any("attempts 2 through max_retries + 1" in line for line in dialnexa)
    romulus = translate_campaign(doc(retry=ROMULUS_ROWS)).lines()
    assert "retry[2] = 10800 → retry.strategy.delays[2] = 10800 s (the wait before retry 3)" in (
        romulus
    )


def test_translate_retry_alone_for_the_api():
    """A `retry` value alone becomes a RetryPolicy-shaped value; redialer's own passes through."""
    exotel = translate_retry(EXOTEL_RETRY)
    assert exotel.formats == (EXOTEL,)
    assert exotel.data == {
        "strategy": {"type": "fixed_delay", "delay": 3600, "max_retries": 3},
        "retry_on": ["busy", "no_answer", "failed"],
    }
    assert translate_retry(ROMULUS_ROWS).data == {
        "strategy": {"type": "attempts", "delays": ROMULUS_ROWS}
    }
    native = {"strategy": {"type": "none"}, "retry_on": ["busy"]}
    same = translate_retry(native)
    assert (same.data, same.formats, same.lines()) == (native, (), [])
    with pytest.raises(InvalidInput) as info:
        translate_retry({"max_retries": -1}, path="body.retry")
    assert [p.path for p in info.value.problems] == ["body.retry.max_retries"]
    collected = translate_retry({"max_retries": -1}, collect=True)
    assert [p.path for p in collected.problems] == ["retry.max_retries"]


def test_parse_retry_names_the_foreign_field_under_the_callers_path():
    """The API's helper: redialer's findings come back by the foreign field, under `path`."""
    assert parse_retry(DIALNEXA_RETRY, limits=DEFAULTS).value.strategy.type == "fixed_delay"
    with pytest.raises(InvalidInput) as info:
        parse_retry([300, 86_400], limits=DEFAULTS, path="body.retry")
    (problem,) = info.value.problems
    assert (problem.path, problem.value) == ("body.retry[1]", 86_400)
    with pytest.raises(InvalidInput) as info:
        parse_retry(
            {"strategy": {"type": "fixed_delay", "delay": 0, "max_retries": 1}}, limits=DEFAULTS
        )
    assert [p.path for p in info.value.problems] == ["retry.strategy.delay"]  # no tag in the path


def test_rewrite_moves_problems_to_the_foreign_fields():
    """Exact paths show the written value and what it became; paths below keep their own."""
    translation = translate_campaign(
        doc(retryStrategy={"type": "fixed_delay", "delayMinutes": 240, "maxRetries": 3})
    )
    found = translation.rewrite(
        [
            Problem("retry.strategy.delay", 14400.0, "must be at most 10800 s"),
            Problem("retry.strategy.jitter", 2, "too much"),
            Problem("recipients[0].phone", "x", "bad"),
        ]
    )
    assert [str(p) for p in found] == [
        "retryStrategy.delayMinutes: 240: must be at most 10800 s"
        " (it became retry.strategy.delay = 14400 s)",
        "retryStrategy.jitter: 2: too much (read as retry.strategy.jitter)",
        "recipients[0].phone: 'x': bad",
    ]
    assert Translation(data={}).rewrite(found) == found


# --- errors -------------------------------------------------------------------------------------


def test_gomobile_delay_over_the_limit_is_named_by_its_foreign_field():
    """240 minutes is 14,400 s: over 10,800, reported on delayMinutes with 240 and the rule."""
    assert refused(
        doc(retryStrategy={"type": "fixed_delay", "delayMinutes": 240, "maxRetries": 3})
    ) == [
        "retryStrategy.delayMinutes: 240: a configured delay may be at most 10800 s"
        " (REDIALER_MAX_DELAY_LIMIT raises the limit) (it became retry.strategy.delay = 14400 s)"
    ]


def test_romulus_own_example_86400_is_over_its_own_limit():
    """Romulus's example third row (86,400 s) breaks its own 10,800 s limit: refused as retry[2]."""
    (problem,) = refused(doc(retry=[300, 3600, 86_400]))
    assert problem.startswith("retry[2]: 86400: a configured delay may be at most 10800 s")
    assert "retry.strategy.delays[2] = 86400 s" in problem
    (problem,) = refused(doc(retry=[60] * 21))
    assert problem.startswith("retry: [60, 60, ")
    assert "has 21 entries: at most 20 retries are allowed" in problem
    assert parsed(doc(retry=[10_800] * 20)).value.retry.strategy.retry_budget() == 20


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"retry": {"max_attempts": 3, "interval_minutes": 181}},
            "retry.interval_minutes: 181: a configured delay may be at most 10800 s",
        ),
        (
            {"retry": {"max_attempts": 21, "interval_minutes": 60}},
            "retry.max_attempts: 21: at most 20 retries are allowed",
        ),
        (
            {"retry": {"max_retries": 21, "wait_minutes": 30}},
            "retry.max_retries: 21: at most 20 retries are allowed",
        ),
        (
            {"retry": {"max_retries": 2, "wait_minutes": 0}},
            "retry.wait_minutes: 0: Input should be greater than 0",
        ),
        (
            {
                "retryStrategy": {
                    "type": "scheduled",
                    "retryDates": ["2025-01-20T10:00:00Z", "soon"],
                }
            },
            "retryStrategy.retryDates[1]: 'soon': ",
        ),
        (
            {"retryStrategy": {"type": "scheduled", "retryDates": []}},
            "retryStrategy.retryDates: []: List should have at least 1 item",
        ),
        (
            {"schedule": {"daily_start": "9am", "daily_end": "21:00"}},
            "schedule.daily_start: '9am': must be a local time",
        ),
        (
            {"schedule": {"daily_start": "09:00", "daily_end": "09:00"}},
            "schedule: {'daily_start': '09:00', 'daily_end': '09:00'}: start 09:00 and end 09:00",
        ),
        (
            {"pauseWindows": {"mondey": GOMOBILE_PAUSE["monday"]}},
            "pauseWindows.mondey: ",
        ),
    ],
)
def test_redialer_findings_in_translated_values_name_the_foreign_field(
    fields: dict[str, Any], expected: str
):
    """Limits, bad times and dates redialer finds are reported where the user wrote them."""
    found = refused(doc(**fields))
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        (
            {"retry": {"max_retries": 3, "interval_minutes": 60}},
            ["max_retries", "interval_minutes"],
        ),
        (
            {"retry": {"strategy": {"type": "none"}, "wait_minutes": 5}},
            ["strategy", "wait_minutes"],
        ),
        ({"retry": {"max_retries": 3, "wait_minutes": 5, "retry_on": ["busy"]}}, ["retry_on"]),
        (
            {"retryStrategy": {"type": "none"}, "retry": {"strategy": {"type": "none"}}},
            ["retryStrategy", "retry"],
        ),
        (
            {"pauseWindows": GOMOBILE_PAUSE, "pause_windows": REDIALER_PAUSE},
            ["pauseWindows", "pause_windows"],
        ),
        (
            {"schedule": EXOTEL_SCHEDULE, "calling_hours": {"start": "09:00", "end": "21:00"}},
            ["schedule", "calling_hours"],
        ),
    ],
    ids=[
        "dialnexa+exotel",
        "redialer+dialnexa",
        "dialnexa+retry_on",
        "retryStrategy+retry",
        "pauseWindows+pause_windows",
        "schedule+calling_hours",
    ],
)
def test_mixed_formats_are_refused_naming_both_fields(fields: dict[str, Any], named: list[str]):
    """A setting written twice, or half in one format and half in another, is refused."""
    (problem,) = refused(doc(**fields))
    assert all(name in problem for name in named), problem
    assert "keep one" in problem or "one format" in problem


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        (
            {
                "retryStrategy": {
                    "type": "fixed_delay",
                    "delay": 60,
                    "delayMinutes": 1,
                    "maxRetries": 1,
                }
            },
            "retryStrategy.delay",
        ),
        ({"retryStrategy": {"type": "none", "maxRetries": 2}}, "retryStrategy.maxRetries"),
        ({"retry": {"max_attempts": 3, "interval_minutes": 60, "intervall": 5}}, "retry.intervall"),
        (
            {"retry": {"max_retries": 1, "wait_minutes": 5, "retry_on_rejected": True}},
            "retry.retry_on_rejected",
        ),
        (
            {
                "pauseWindows": {
                    "monday": [
                        {
                            "startAt": {"hour": 1, "minute": 0},
                            "endAt": {"hour": 2, "minute": 0},
                            "tz": "UTC",
                        }
                    ]
                }
            },
            "pauseWindows.monday[0].tz",
        ),
        (
            {
                "pauseWindows": {
                    "monday": [
                        {
                            "startAt": {"hour": 1, "minute": 0, "second": 0},
                            "endAt": {"hour": 2, "minute": 0},
                        }
                    ]
                }
            },
            "pauseWindows.monday[0].startAt.second",
        ),
        (
            {"schedule": {"daily_start": "09:00", "daily_end": "21:00", "days": "mon-fri"}},
            "schedule.days",
        ),
    ],
)
def test_unknown_foreign_fields_are_errors(fields: dict[str, Any], path: str):
    """A misspelt foreign field is refused by its path, as redialer's own fields are."""
    found = refused(doc(**fields))
    assert any(f.startswith(f"{path}: ") and "unknown field" in f for f in found), found


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"retryStrategy": {"type": "fixed_delay", "delayMinutes": 30, "maxRetries": True}},
            "retryStrategy.maxRetries: True: must be a number of retries, not a boolean",
        ),
        (
            {"retryStrategy": {"type": "fixed_delay", "delayMinutes": "30", "maxRetries": 2}},
            "retryStrategy.delayMinutes: '30': must be a number of minutes",
        ),
        (
            {"retryStrategy": {"type": "exponential"}},
            "retryStrategy.type: 'exponential': must be none, fixed_delay or scheduled",
        ),
        (
            {"retryStrategy": {"type": "fixed_delay", "maxRetries": 2}},
            "retryStrategy.delayMinutes: {'type': 'fixed_delay', 'maxRetries': 2}: is required",
        ),
        (
            {"retry": {"max_attempts": 2.5, "interval_minutes": 60}},
            "retry.max_attempts: 2.5: must be a number of retries, a whole number",
        ),
        (
            {"retry": {"max_attempts": 2, "interval_minutes": -5}},
            "retry.interval_minutes: -5: must be a number of minutes, not negative",
        ),
        (
            {"retry": {"max_attempts": 2}},
            "retry.interval_minutes: {'max_attempts': 2}: is required when max_attempts is above 0",
        ),
        (
            {
                "retry": {
                    "max_attempts": 2,
                    "interval_minutes": 5,
                    "retry_on": ["busy", "voicemail"],
                }
            },
            "retry.retry_on[1]: 'voicemail': must be busy, no-answer or failed",
        ),
        (
            {"retry": {"max_retries": 3}},
            "retry.wait_minutes: {'max_retries': 3}: is required when max_retries is above 0",
        ),
        (
            {"retry": {"max_retries": 3, "wait_minutes": 5, "retry_on_busy": "yes"}},
            "retry.retry_on_busy: 'yes': must be true or false",
        ),
        ({"retry": [300, "PT1H"]}, "retry[1]: 'PT1H': must be a number of seconds"),
        (
            {
                "pauseWindows": {
                    "monday": [
                        {"startAt": {"hour": 24, "minute": 0}, "endAt": {"hour": 2, "minute": 0}}
                    ]
                }
            },
            "pauseWindows.monday[0].startAt.hour: 24: must be an hour 0-23",
        ),
        (
            {
                "pauseWindows": {
                    "monday": [{"startAt": {"hour": 1}, "endAt": {"hour": 2, "minute": 0}}]
                }
            },
            "pauseWindows.monday[0].startAt.minute: {'hour': 1}: is required",
        ),
        (
            {"schedule": {"daily_start": "09:00"}},
            "schedule.daily_end: {'daily_start': '09:00'}: is required",
        ),
    ],
)
def test_bad_foreign_values_name_path_value_and_rule(fields: dict[str, Any], expected: str):
    """Counts are whole and non-negative numbers, minutes numbers, booleans booleans."""
    found = refused(doc(**fields))
    assert any(f.startswith(expected) for f in found), found


def test_every_problem_of_a_document_is_reported_at_once():
    """Foreign fields, redialer's findings in translated ones, and the rest: all in one answer."""
    found = refused(
        {
            "campaign_id": "t",
            "timezone": "Mars/Olympus",
            "retryStrategy": {"type": "fixed_delay", "delayMinutes": 240, "maxRetries": 30},
            "pauseWindows": {
                "monday": [
                    {"startAt": {"hour": 25, "minute": 0}, "endAt": {"hour": 14, "minute": 0}},
                    {"startAt": {"hour": 18, "minute": 0}, "endAt": {"hour": 18, "minute": 0}},
                ]
            },
            "schedule": {"daily_start": "09:00", "daily_end": "21:00", "tz": "IST"},
            "recipients": [{"phone": "555-0199"}],
        }
    )
    assert sorted(f.split(": ")[0] for f in found) == [
        "pauseWindows.monday[0].startAt.hour",
        "pauseWindows.monday[1]",
        "recipients[0].phone",
        "retryStrategy.delayMinutes",
        "retryStrategy.maxRetries",
        "schedule.tz",
        "timezone",
    ]


def test_a_field_with_a_problem_does_not_hide_its_neighbours():
    """A bad or missing foreign field is reported once, by its foreign path; the fields beside
    it are still translated and checked (a delay over the limit next to a bad count)."""
    found = refused(
        doc(
            retryStrategy={"type": "fixed_delay", "delayMinutes": 240, "maxRetries": -1},
            pauseWindows={
                "monday": [
                    "noon",
                    {"startAt": {"hour": 12, "minute": 0}, "endAt": {"hour": 12, "minute": 0}},
                    {"startAt": {"hour": 30, "minute": 0}, "endAt": {"hour": 14, "minute": 0}},
                ]
            },
        )
    )
    assert sorted(f.split(": ")[0] for f in found) == [
        "pauseWindows.monday[0]",
        "pauseWindows.monday[1]",  # the empty range, found by redialer, at the user's index
        "pauseWindows.monday[2].startAt.hour",
        "retryStrategy.delayMinutes",
        "retryStrategy.maxRetries",
    ]
    found = refused(doc(retry={"max_retries": 2, "wait_minutes": 500, "retry_on_busy": 1}))
    assert sorted(f.split(": ")[0] for f in found) == ["retry.retry_on_busy", "retry.wait_minutes"]


def test_a_native_spec_passes_through_untouched():
    """redialer's own `retry` with an unknown field is still redialer's error, under its path."""
    assert translate_campaign(doc(retry={"retry_on": ["busy"]})).formats == ()
    found = refused(doc(retry={"strategy": {"type": "none"}, "retry_onn": ["busy"]}))
    assert [f.split(": ")[0] for f in found] == ["retry.retry_onn"]


# --- the CLI ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def default_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("REDIALER_MAX_RETRIES_LIMIT", "REDIALER_MAX_DELAY_LIMIT"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def explained(path: Path) -> tuple[list[str], dict[str, Any]]:
    result = runner.invoke(app, ["validate", "--explain", str(path)])
    assert result.exit_code == 0, result.output
    head, _, spec = result.stdout.partition("\n{")
    return head.splitlines(), json.loads("{" + spec)


def test_validate_explain_shows_a_gomobile_files_mapping_and_spec(tmp_path: Path):
    """--explain names the format, lists each mapped field, and prints the spec it became."""
    path = tmp_path / "gomobile.json"
    path.write_text(
        json.dumps(
            doc(
                retryStrategy={"type": "fixed_delay", "delayMinutes": 60, "maxRetries": 3},
                pauseWindows=GOMOBILE_PAUSE,
            )
        )
    )
    lines, spec = explained(path)
    assert lines[0] == "t: valid"
    assert "strategy     fixed delay 1 h, up to 3 retries" in lines
    assert "format       Gomobile" in lines
    assert "  retryStrategy.delayMinutes = 60 → retry.strategy.delay = 3600 s" in lines
    assert lines[-1] == "redialer spec (recipients left out: 1)"
    assert spec["campaign_id"] == "t" and "recipients" not in spec
    assert spec["retry"]["strategy"] == {
        "type": "fixed_delay",
        "delay": 3600.0,
        "max_retries": 3,
        "jitter": 0.0,
    }
    assert spec["pause_windows"] == REDIALER_PAUSE
    written = tmp_path / "redialer.json"  # what it printed loads as the same spec
    written.write_text(json.dumps({**spec, "recipients": [{"phone": PHONE}]}))
    assert (
        parsed(json.loads(written.read_text())).value == parsed(json.loads(path.read_text())).value
    )


def test_validate_explain_shows_an_exotel_yaml_files_mapping(tmp_path: Path):
    """Exotel's example as YAML (unquoted times: YAML reads 21:00 as 1260) maps and explains."""
    path = tmp_path / "exotel.yaml"
    path.write_text(
        "campaign_id: payment-reminders\n"
        "recipients: [{phone: '+16505550199'}]\n"
        "retry:\n"
        "  max_attempts: 3\n"
        "  interval_minutes: 60\n"
        "  retry_on: [busy, no-answer, failed]\n"
        "schedule:\n"
        "  daily_start: 09:00\n"
        "  daily_end: 21:00\n"
    )
    lines, spec = explained(path)
    assert "format       Exotel" in lines
    assert "calling hrs  09:00-21:00" in lines
    assert (
        "  retry.max_attempts = 3 → retry.strategy.max_retries = 3"
        " (retries after the first call: at most 4 calls)"
    ) in lines
    assert (
        "  schedule.daily_end = 1260 → calling_hours.end = '21:00'"
        " (YAML read the unquoted 21:00 as 1260)"
    ) in lines
    assert spec["calling_hours"] == {"start": "09:00", "end": "21:00"}
    assert spec["retry"]["retry_on"] == ["no_answer", "busy", "failed"]


def test_validate_explain_on_a_native_spec_says_so(tmp_path: Path):
    """redialer's own format: nothing translated, and the spec; plain validate shows no mapping."""
    path = tmp_path / "native.json"
    path.write_text(json.dumps(doc(retry={"strategy": {"type": "none"}})))
    lines, spec = explained(path)
    assert "format       redialer's own (nothing translated)" in lines
    assert spec["retry"]["strategy"]["type"] == "none"
    plain = runner.invoke(app, ["validate", str(path)])
    assert plain.exit_code == 0 and "format" not in plain.stdout and "{" not in plain.stdout


def test_validate_refuses_a_bad_foreign_file_naming_the_foreign_path(tmp_path: Path):
    """Exit 2, every problem on stderr by the field the user wrote."""
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc(retry=[300, 3600, 86_400], schedule={"daily_start": "9"})))
    result = runner.invoke(app, ["validate", "--explain", str(path)])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == f"{path}: 3 problem(s)"
    assert sorted(line.split(":")[0].strip() for line in lines[1:]) == [
        "retry[2]",
        "schedule.daily_end",  # missing: and the start given beside it is still checked
        "schedule.daily_start",
    ]
    assert "  schedule.daily_start: '9': must be a local time" in result.stderr
    assert "calling_hours.end" not in result.stderr  # the missing end is reported once, as theirs
