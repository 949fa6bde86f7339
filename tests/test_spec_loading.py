"""Loading campaign specs and recipient lists: every problem at once, with path, value and rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic_core import to_json

from redialer.campaign import CampaignPolicy
from redialer.limits import Limits
from redialer.loading import (
    InvalidInput,
    load_campaign,
    load_recipients,
    parse_campaign,
    parse_recipients,
)
from redialer.recipients import Recipient
from redialer.strategies import FixedDelay
from redialer.windows import Weekday

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "lead-qualification.json"
DEFAULTS = Limits()
RAISED = Limits(max_retries=30, max_delay_seconds=86_400)

#: The DESIGN.md example as a person writes YAML: unquoted times (YAML 1.1 reads `12:00` as 720).
HAND_WRITTEN_YAML = """\
campaign_id: lead-qualification-nov
timezone: America/New_York
long_living: false
retry:
  strategy: {type: attempts, delays: [300, 3600, 10800]}
  retry_on: [no_answer, busy, failed]
  max_retries_by_outcome: {failed: 1}
pause_windows:
  monday:
    - {start: 12:00, end: 14:00}
    - {start: 18:00, end: 23:59}
calling_hours: {start: 09:00, end: 21:00}
max_attempts_per_day: 3
max_concurrent_calls: 50
recipients:
  - phone: "+16505550199"
    variables: {name: Ada}
  - {phone: "+14155550100", timezone: America/Los_Angeles}
"""


def base(**fields: object) -> dict[str, object]:
    return {"campaign_id": "t", "recipients": [{"phone": "+16505550199"}], **fields}


def problems(data: object, limits: Limits = DEFAULTS) -> list[str]:
    with pytest.raises(InvalidInput) as info:
        parse_campaign(data, limits=limits)
    return [str(p) for p in info.value.problems]


def paths(data: object, limits: Limits = DEFAULTS) -> list[str]:
    with pytest.raises(InvalidInput) as info:
        parse_campaign(data, limits=limits)
    return [p.path for p in info.value.problems]


def strategy(**fields: object) -> dict[str, object]:
    return base(retry={"strategy": fields})


# --- the example spec ---------------------------------------------------------------------------


def test_design_example_loads_from_json_and_yaml(tmp_path: Path):
    """The DESIGN.md example loads from JSON, from YAML dumped from it, and hand-written YAML."""
    dumped = tmp_path / "dumped.yaml"
    dumped.write_text(yaml.safe_dump(json.loads(EXAMPLE.read_text())))
    written = tmp_path / "written.yml"
    written.write_text(HAND_WRITTEN_YAML)
    specs = [load_campaign(path, limits=DEFAULTS) for path in (EXAMPLE, dumped, written)]
    for loaded in specs:
        spec = loaded.value
        assert loaded.warnings == []
        assert spec.campaign_id == "lead-qualification-nov"
        assert spec.timezone == "America/New_York"
        assert spec.retry.strategy.type == "attempts"
        assert spec.retry.strategy.delays == [300, 3600, 10800]
        assert [o.value for o in spec.retry.retry_on] == ["no_answer", "busy", "failed"]
        assert [(r.start, r.end_minute) for r in spec.pause_windows[Weekday.MONDAY]] == [
            (12 * 60, 14 * 60),
            (18 * 60, 24 * 60),  # 23:59 means the end of the day
        ]
        assert spec.calling_hours is not None
        assert (spec.calling_hours.start, spec.calling_hours.end) == (9 * 60, 21 * 60)
        assert (spec.max_attempts_per_day, spec.max_concurrent_calls) == (3, 50)
        assert [(r.phone, r.timezone) for r in spec.recipients] == [
            ("+16505550199", None),
            ("+14155550100", "America/Los_Angeles"),
        ]
        assert spec.recipients[0].variables == {"name": "Ada"}
    assert specs[0].value == specs[1].value == specs[2].value


def test_seed_product_window_format_is_accepted():
    """The seed products' `{startAt: {hour, minute}, endAt: ...}` windows load unchanged."""
    spec = parse_campaign(
        base(
            pause_windows={
                "monday": [
                    {"startAt": {"hour": 12, "minute": 0}, "endAt": {"hour": 14, "minute": 0}},
                    {"startAt": {"hour": 18, "minute": 0}, "endAt": {"hour": 23, "minute": 59}},
                ]
            }
        ),
        limits=DEFAULTS,
    ).value
    assert [r.label() for r in spec.pause_windows["monday"]] == ["12:00-14:00", "18:00-23:59"]


# --- every problem at once ----------------------------------------------------------------------


def test_every_problem_is_reported_at_once_with_path_value_and_rule():
    """Bad rows, delays, windows and zones all come back together, each with path, value, rule."""
    found = problems(
        {
            "campaign_id": "t",
            "timezone": "Mars/Olympus",
            "retry": {"strategy": {"type": "attempts", "delays": [300, 3600, 99999, -1]}},
            "pause_windows": {"monday": [{"start": "25:00", "end": "14:00"}]},
            "recipients": [
                {"phone": "+16505550199"},
                {"phone": "+16505550199"},
                {"phone": "+1 650 555 0100", "timezone": "Nowhere/City"},
                {"phone": "555-0199"},
            ],
        }
    )
    assert len(found) == 6, found
    assert found[0].startswith("timezone: 'Mars/Olympus': unknown time zone")
    assert found[1] == (
        "retry.strategy.delays[2]: 99999: a configured delay may be at most 10800 s"
        " (REDIALER_MAX_DELAY_LIMIT raises the limit)"
    )
    assert found[2].startswith("retry.strategy.delays[3]: -1: ")
    assert found[3].startswith("pause_windows.monday[0].start: '25:00': must be a local time")
    assert found[4].startswith("recipients[2].timezone: 'Nowhere/City': unknown time zone")
    assert found[5] == (
        "recipients[3].phone: '555-0199': must be in international format with a country code,"
        " e.g. +16505550199"
    )


def test_invalid_input_message_lists_every_problem():
    """The exception's message names the source, the count, and one problem per line."""
    with pytest.raises(InvalidInput) as info:
        parse_campaign(
            base(recipients=[{"phone": "x"}, {"phone": "y"}]), limits=DEFAULTS, source="c.json"
        )
    lines = str(info.value).splitlines()
    assert lines[0] == "c.json: 2 problem(s)"
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "recipients[0].phone",
        "recipients[1].phone",
    ]


@pytest.mark.parametrize(
    ("data", "path"),
    [
        (base(retyr={}), "retyr"),
        (base(calling_hours={"strat": "09:00", "end": "21:00"}), "calling_hours.strat"),
        (
            strategy(type="fixed_delay", delay=60, max_retries=1, max_retry=3),
            "retry.strategy.max_retry",
        ),
        (base(retry={"retry_onn": ["busy"]}), "retry.retry_onn"),
        (
            base(pause_windows={"monday": [{"start": "12:00", "end": "14:00", "tz": "UTC"}]}),
            "pause_windows.monday[0].tz",
        ),
        (base(recipients=[{"phone": "+16505550199", "vars": {}}]), "recipients[0].vars"),
    ],
)
def test_unknown_fields_are_errors(data: dict[str, object], path: str):
    """A misspelt field is refused where it is, not ignored: a typo must not disable a rule."""
    found = problems(data)
    assert any(f.startswith(f"{path}: ") and "unknown field" in f for f in found), found
    assert len(found) <= 2, found  # at most one more: the field the typo failed to set


def test_misspelt_calling_hours_start_reports_both_sides():
    """`calling_hours.strat` is unknown and `calling_hours.start` is then missing: both named."""
    assert sorted(paths(base(calling_hours={"strat": "09:00", "end": "21:00"}))) == [
        "calling_hours.start",
        "calling_hours.strat",
    ]


def test_a_misspelt_weekday_is_named_by_its_path():
    """An unknown weekday key is reported at `pause_windows.<key>` with the weekdays allowed."""
    (found,) = problems(base(pause_windows={"mondy": [{"start": "10:00", "end": "11:00"}]}))
    assert found.startswith("pause_windows.mondy: 'mondy': Input should be 'monday'"), found


def test_outcomes_that_never_retry_are_refused_in_retry_on():
    """retry_on and per-outcome caps take only retryable outcomes."""
    found = problems(base(retry={"retry_on": ["busy", "completed"]}))
    assert len(found) == 1 and found[0].startswith("retry.retry_on: ")
    assert "completed is never retried" in found[0]
    (found,) = problems(base(retry={"max_retries_by_outcome": {"dnd": 2}}))
    assert found.startswith("retry.max_retries_by_outcome: ") and "dnd is never retried" in found


def test_unknown_strategy_type_names_the_types():
    """An unknown strategy type is refused with every known type listed."""
    (found,) = problems(strategy(type="weekly"))
    assert found.startswith("retry.strategy: ")
    for kind in (
        "none",
        "fixed_delay",
        "attempts",
        "exponential",
        "scheduled",
        "time_of_day",
        "smart",
    ):
        assert f"'{kind}'" in found


# --- limits -------------------------------------------------------------------------------------


def test_21_retries_or_a_10801_s_delay_are_refused_naming_the_limit():
    """Over the default limits, each field is refused with its value and the limit it breaks."""
    found = problems(strategy(type="fixed_delay", delay=10801, max_retries=21))
    assert found == [
        "retry.strategy.delay: 10801: a configured delay may be at most 10800 s"
        " (REDIALER_MAX_DELAY_LIMIT raises the limit)",
        "retry.strategy.max_retries: 21: at most 20 retries are allowed"
        " (REDIALER_MAX_RETRIES_LIMIT raises the limit)",
    ]
    (found,) = problems(strategy(type="attempts", delays=[60] * 21))
    assert found.startswith("retry.strategy.delays: ") and "has 21 entries: at most 20" in found
    # The seed's own example (a third attempt after 86,400 s) breaks the seed's own limit.
    assert paths(strategy(type="attempts", delays=[300, 3600, 86400])) == [
        "retry.strategy.delays[2]"
    ]
    (found,) = problems(base(retry={"max_retries_by_outcome": {"busy": 21}}))
    assert found.startswith("retry.max_retries_by_outcome.busy: 21: at most 20 retries")


def test_exactly_at_the_limits_is_accepted():
    """20 retries and a 10,800 s delay are within the limits."""
    spec = parse_campaign(
        strategy(type="fixed_delay", delay=10800, max_retries=20), limits=DEFAULTS
    ).value
    assert spec.retry.strategy.retry_budget() == 20


def test_raised_limits_accept_and_the_worker_still_loads_the_policy():
    """Under raised limits 21 retries and a day's delay load, and deserialise without context."""
    data = strategy(type="fixed_delay", delay=86400, max_retries=21)
    spec = parse_campaign(data, limits=RAISED).value
    assert (spec.retry.strategy.delay, spec.retry.strategy.retry_budget()) == (86400, 21)
    payload = spec.policy().model_dump(mode="json")
    again = CampaignPolicy.model_validate(payload)  # no context: the worker's view
    assert again == spec.policy()
    uncapped = strategy(type="exponential", initial_delay=86400, max_retries=25)
    loaded = parse_campaign(uncapped, limits=RAISED).value
    assert CampaignPolicy.model_validate(loaded.policy().model_dump(mode="json")) == loaded.policy()
    assert paths(uncapped) == ["retry.strategy.initial_delay", "retry.strategy.max_retries"]


def test_exponential_without_max_delay_is_capped_at_the_limit():
    """An exponential strategy without max_delay never waits longer than the delay limit."""
    data = strategy(type="exponential", initial_delay=1800, max_retries=10)
    spec = parse_campaign(data, limits=DEFAULTS).value
    assert spec.retry.strategy.max_delay == 10800
    assert [spec.retry.strategy.delay_for(n) for n in (1, 2, 3, 4, 10)] == [
        1800,
        3600,
        7200,
        10800,
        10800,
    ]
    assert parse_campaign(data, limits=RAISED).value.retry.strategy.max_delay == 86400
    (found,) = problems(
        strategy(type="exponential", initial_delay=60, max_retries=3, max_delay=1e6)
    )
    assert found.startswith(
        "retry.strategy.max_delay: 1000000.0: a configured delay may be at most"
    )


# --- durations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("PT5M", 300),
        ("PT1H30M", 5400),
        ("P1D", 86400),
        ("PT10S", 10),
        ("pt2h", 7200),
        (300, 300),
        (90.5, 90.5),
        ("90", 90),
    ],
)
def test_durations_in_seconds_or_iso8601(written: object, seconds: float):
    """Durations accept seconds (numbers) or ISO 8601 (`PT5M`, `PT1H30M`, `P1D`)."""
    spec = parse_campaign(
        strategy(type="fixed_delay", delay=written, max_retries=1), limits=RAISED
    ).value
    assert isinstance(spec.retry.strategy, FixedDelay)
    assert spec.retry.strategy.delay == seconds


@pytest.mark.parametrize("bad", ["P1M", "P1Y", "5 minutes", True, "PT", "P", "P1DT", 0, -5, "inf"])
def test_bad_durations_are_refused(bad: object):
    """Months, years, prose, booleans, empty, zero, negative and infinite durations are refused."""
    (found,) = problems(strategy(type="fixed_delay", delay=bad, max_retries=1))
    assert found.startswith(f"retry.strategy.delay: {bad!r}: "), found


def test_a_day_long_delay_is_over_the_default_limit():
    """`P1D` parses but is over the default 3-hour limit: refused naming the limit."""
    (found,) = problems(strategy(type="fixed_delay", delay="P1D", max_retries=1))
    assert found.startswith("retry.strategy.delay: 'P1D': a configured delay may be at most 10800")


# --- recipients ---------------------------------------------------------------------------------


def test_duplicate_numbers_are_merged_with_a_warning_naming_both_rows():
    """A number listed twice is called once; both rows are named; variables merge, first wins."""
    loaded = parse_campaign(
        base(
            recipients=[
                {"phone": "+16505550199", "variables": {"name": "Ada", "tier": "gold"}},
                {"phone": "+14155550100"},
                {
                    "phone": "+1 (650) 555-0199",
                    "timezone": "America/Denver",
                    "variables": {"name": "Other", "city": "Palo Alto"},
                    "metadata": {"crm": 7},
                },
            ]
        ),
        limits=DEFAULTS,
    )
    first, second = loaded.value.recipients
    assert (first.phone, second.phone) == ("+16505550199", "+14155550100")
    assert first.variables == {"name": "Ada", "tier": "gold", "city": "Palo Alto"}
    assert first.metadata == {"crm": 7}
    assert first.timezone == "America/Denver"  # the first row had none: the later one fills it
    assert loaded.warnings == [
        "recipients[2].phone +16505550199 duplicates recipients[0]:"
        " merged, the number is called once"
    ]


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("00 44 20 7946 0000", "+442079460000"),
        ("0044 20 7946 0000", "+442079460000"),
        ("+44 20 7946 0000", "+442079460000"),
        ("+1 650-555-0199", "+16505550199"),
        ("+1 (650) 555-0199", "+16505550199"),
        ("+91 98765 43210", "+919876543210"),
        (16505550199, "+16505550199"),
    ],
)
def test_numbers_are_normalised_to_e164(raw: object, e164: str):
    """International formats with spaces, dashes, brackets or a 00 prefix normalise to E.164."""
    spec = parse_campaign(base(recipients=[{"phone": raw}]), limits=DEFAULTS).value
    assert spec.recipients[0].phone == e164


@pytest.mark.parametrize("bad", ["555-0199", "+1555", "", "+44 20 7946 000000000", None, True])
def test_undialable_numbers_are_refused(bad: object):
    """Local-only, too short, too long, empty and non-string numbers are refused at their row."""
    assert paths(base(recipients=[{"phone": "+16505550199"}, {"phone": bad}])) == [
        "recipients[1].phone"
    ]


def test_csv_recipient_lists(tmp_path: Path):
    """A CSV contact list: phone and timezone columns, every other column a variable."""
    path = tmp_path / "more.csv"
    path.write_text(
        "phone,name,timezone,plan\n"
        "+16505550199,Ada,,gold\n"
        "+1 415 555 0100,Bob,America/Denver,silver\n"
        "+16505550199,Ada again,,bronze\n"
    )
    loaded = load_recipients(path)
    assert [(r.phone, r.timezone, r.variables) for r in loaded.value] == [
        ("+16505550199", None, {"name": "Ada", "plan": "gold"}),
        ("+14155550100", "America/Denver", {"name": "Bob", "plan": "silver"}),
    ]
    assert loaded.warnings == [
        "recipients[2].phone +16505550199 duplicates recipients[0]:"
        " merged, the number is called once"
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("phone,name\n+16505550199,Ada\nnot-a-number,Bob\n+1555,Cy\n")
    with pytest.raises(InvalidInput) as info:
        load_recipients(bad)
    assert [p.path for p in info.value.problems] == ["recipients[1].phone", "recipients[2].phone"]


def test_files_saved_with_a_byte_order_mark_load(tmp_path: Path):
    """A CSV or JSON file saved with a UTF-8 byte-order mark (Excel's "CSV UTF-8") still loads."""
    csv_path = tmp_path / "excel.csv"
    csv_path.write_bytes("\ufeffphone,name\r\n+16505550199,Ada\r\n".encode())
    (recipient,) = load_recipients(csv_path).value
    assert (recipient.phone, recipient.variables) == ("+16505550199", {"name": "Ada"})
    json_path = tmp_path / "spec.json"
    json_path.write_bytes(("\ufeff" + json.dumps(base())).encode())
    assert load_campaign(json_path, limits=DEFAULTS).value.campaign_id == "t"


def test_a_file_that_is_not_utf8_is_one_problem_naming_the_file(tmp_path: Path):
    """A Latin-1 contact list is refused as one problem naming the file, not a traceback."""
    path = tmp_path / "latin1.csv"
    path.write_bytes("phone,name\n+16505550199,José\n".encode("latin-1"))
    with pytest.raises(InvalidInput) as info:
        load_recipients(path)
    assert str(path) in str(info.value)


def test_recipient_lists_in_json_or_yaml_and_known_numbers(tmp_path: Path):
    """A recipient list may be a bare list or `{recipients: [...]}`; known numbers are skipped."""
    path = tmp_path / "more.yaml"
    path.write_text("recipients:\n  - phone: '+16505550199'\n  - phone: '+14155550100'\n")
    assert [r.phone for r in load_recipients(path).value] == ["+16505550199", "+14155550100"]
    loaded = parse_recipients(
        [{"phone": "+16505550199"}, {"phone": "+14155550100"}], known={"+16505550199"}
    )
    assert [r.phone for r in loaded.value] == ["+14155550100"]
    assert loaded.warnings == [
        "recipients[0].phone +16505550199 is already in the campaign; skipped"
    ]
    with pytest.raises(InvalidInput, match="must be a list of recipients"):
        parse_recipients({"phone": "+16505550199"})


# --- windows ------------------------------------------------------------------------------------


def test_a_week_without_any_allowed_minute_is_refused():
    """Windows and hours that together forbid every minute of the week are refused."""
    everyday = {
        d: [{"start": "00:00", "end": "23:59"}]
        for d in ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
    }
    (found,) = problems(
        base(
            pause_windows={**everyday, "sunday": [{"start": "08:00", "end": "24:00"}]},
            calling_hours={"start": "09:00", "end": "21:00"},
        )
    )
    assert found.startswith("(top level): ")
    assert "forbid every minute of the week" in found
    # A midnight-crossing window counts too: Sunday 12:00 to Monday 06:00 closes the last gap.
    sunday = [{"start": "00:00", "end": "12:00"}, {"start": "12:00", "end": "06:00"}]
    (found,) = problems(base(pause_windows={**everyday, "sunday": sunday}))
    assert "forbid every minute of the week" in found
    parse_campaign(base(pause_windows=everyday), limits=DEFAULTS)  # Sunday stays open: accepted


@pytest.mark.parametrize(
    ("extra", "allowed"),
    [
        ({}, 7 * 24 * 60),
        ({"calling_hours": {"start": "09:00", "end": "21:00"}}, 7 * 12 * 60),
        ({"calling_hours": {"start": "21:00", "end": "09:00"}}, 7 * 12 * 60),
        # Sunday 22:00 to Monday 06:00 wraps past the end of the week: 8 hours either side.
        ({"pause_windows": {"sunday": [{"start": "22:00", "end": "06:00"}]}}, 7 * 24 * 60 - 480),
        (
            {
                "pause_windows": {"sunday": [{"start": "22:00", "end": "06:00"}]},
                "calling_hours": {"start": "08:00", "end": "23:00"},
            },
            7 * 15 * 60 - 60,  # only Sunday 22:00-23:00 of the window falls inside the hours
        ),
    ],
)
def test_allowed_minutes_per_week_are_counted_exactly(extra, allowed):
    """The week's allowed minutes are exact, windows that cross midnight and Sunday included."""
    assert CampaignPolicy.model_validate(extra).allowed_minutes_per_week() == allowed


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"start": "10:00", "end": "10:00"}, "leave an empty range"),
        ({"start": "24:00", "end": "10:00"}, "leave an empty range"),
        ({"start": "9", "end": "10:00"}, 'must be a local time "HH:MM"'),
        ({"start": "10:60", "end": "11:00"}, "between"),
    ],
)
def test_bad_time_ranges_are_refused(window: dict[str, str], message: str):
    """An empty range, a start at 24:00 or a malformed time is refused where it is written."""
    (found,) = problems(base(calling_hours=window))
    assert found.startswith("calling_hours"), found
    assert message in found, found


def test_unreadable_and_malformed_files(tmp_path: Path):
    """A missing file, broken JSON or broken YAML is one clear problem naming the file."""
    with pytest.raises(InvalidInput, match="cannot be read"):
        load_campaign(tmp_path / "nope.json", limits=DEFAULTS)
    broken = tmp_path / "broken.json"
    broken.write_text('{"campaign_id": "x",}')
    with pytest.raises(InvalidInput, match="not valid JSON: .* line 1"):
        load_campaign(broken, limits=DEFAULTS)
    broken_yaml = tmp_path / "broken.yaml"
    broken_yaml.write_text("campaign_id: [x\n")
    with pytest.raises(InvalidInput, match="not valid YAML"):
        load_campaign(broken_yaml, limits=DEFAULTS)
    as_list = tmp_path / "list.yaml"
    as_list.write_text("- a\n- b\n")
    with pytest.raises(InvalidInput, match="must be a mapping of fields"):
        load_campaign(as_list, limits=DEFAULTS)


# --- sizes: what Temporal would refuse is refused here, naming the row, phone and field ---------

KIB = 1024


def padded(phone: str, size: int, field: str = "variables") -> dict[str, object]:
    """A recipient whose JSON, as it travels, is exactly `size` bytes."""
    empty = len(to_json(Recipient.model_validate({"phone": phone, field: {"notes": ""}})))
    return {"phone": phone, field: {"notes": "x" * (size - empty)}}


def test_a_recipient_over_the_size_limit_is_refused_with_every_other_problem():
    """A recipient over 64 KiB is refused by row, phone and field, beside the other problems."""
    rows = [
        {"phone": "+16505550100"},
        {"phone": "12"},
        {"phone": "+16505550199", "metadata": {"crm": "y" * (100 * KIB)}},
    ]
    found = sorted(problems(base(recipients=rows, timezone="Mars/Base")))
    assert [f.split(":")[0] for f in found] == [
        "recipients[1].phone",
        "recipients[2] (+16505550199).metadata",
        "timezone",
    ]
    assert found[1] == (
        "recipients[2] (+16505550199).metadata: 100.0 KiB: a recipient's data may be at most"
        " 64 KiB (REDIALER_MAX_RECIPIENT_BYTES raises the limit, to at most 1 MiB)"
    )


def test_the_recipient_limit_is_on_its_whole_json_and_exact():
    """64 KiB of JSON is accepted, one byte more refused; fields count together."""
    at_limit = padded("+16505550199", 64 * KIB)
    assert parse_campaign(base(recipients=[at_limit]), limits=DEFAULTS).value.recipients
    (found,) = problems(base(recipients=[padded("+16505550199", 64 * KIB + 1)]))
    assert found.startswith(
        "recipients[0] (+16505550199).variables: 63.9 KiB: the recipient is 65,537 bytes in all: "
    ), found
    split = {
        "phone": "+16505550199",
        "variables": {"a": "x" * (40 * KIB)},
        "metadata": {"b": "y" * (30 * KIB)},
    }
    (found,) = problems(base(recipients=[split]))
    assert found.startswith("recipients[0] (+16505550199).variables: 40.0 KiB: "), found
    assert "the recipient is 70.1 KiB in all" in found


def test_many_recipients_each_within_the_limit_load_however_large_the_list():
    """The limit is per recipient: 100 recipients of 63 KiB (6 MiB in all) load."""
    rows = [padded(f"+1650555{n:04d}", 63 * KIB) for n in range(100, 200)]
    spec = parse_campaign(base(recipients=rows), limits=DEFAULTS).value
    assert len(spec.recipients) == 100


def test_merged_duplicates_are_checked_as_they_travel():
    """Two rows of one number, each within the limit, are refused when merged they are not."""
    rows = [
        {"phone": "+16505550199", "variables": {"a": "x" * (40 * KIB)}},
        {"phone": "+1 650 555 0199", "variables": {"b": "y" * (40 * KIB)}},
    ]
    (found,) = problems(base(recipients=rows))
    assert found.startswith("recipients[0] (+16505550199).variables: 80.0 KiB: "), found
    assert "merged from recipients[0], recipients[1]" in found


def test_recipient_lists_are_checked_for_size(tmp_path: Path):
    """Lists for `redialer add` (CSV too) are held to the same limit; a raised one lets more in."""
    path = tmp_path / "more.csv"
    path.write_text(f"phone,name,notes\n+16505550199,Ada,short\n+14155550100,Bob,{'z' * 70_000}\n")
    with pytest.raises(InvalidInput) as info:
        load_recipients(path)
    (problem,) = info.value.problems
    assert problem.path == "recipients[1] (+14155550100).variables"
    assert "may be at most 64 KiB" in problem.rule
    raised = Limits(max_recipient_bytes=128 * KIB)
    assert len(load_recipients(path, limits=raised).value) == 2


def test_raised_recipient_limit_accepts_and_the_worker_still_loads_the_recipient():
    """Under a raised limit a 100 KiB recipient loads, and deserialises without context."""
    row = padded("+16505550199", 100 * KIB)
    assert paths(base(recipients=[row])) == ["recipients[0] (+16505550199).variables"]
    raised = Limits(max_recipient_bytes=128 * KIB)
    (recipient,) = parse_campaign(base(recipients=[row]), limits=raised).value.recipients
    assert Recipient.model_validate(recipient.model_dump(mode="json")) == recipient


def test_the_campaign_rules_without_recipients_are_limited_to_256_kib():
    """The rules travel with every recipient: over 256 KiB they are refused, naming the field."""
    ranges = [
        {"start": f"{h:02d}:{m:02d}", "end": f"{h:02d}:{m + 1:02d}"}
        for h in range(24)
        for m in range(0, 58, 2)
    ]
    weekdays = list(Weekday)
    within = {day.value: ranges * 2 for day in weekdays[:5]}  # about 220 KiB
    assert parse_campaign(base(pause_windows=within), limits=DEFAULTS).value.pause_windows
    every_day = {day.value: ranges * 2 for day in weekdays}  # about 305 KiB
    (found,) = problems(base(pause_windows=every_day))
    assert found.startswith("pause_windows: 30"), found
    assert "the campaign's rules (the spec without its recipients) may be at most 256 KiB" in found
