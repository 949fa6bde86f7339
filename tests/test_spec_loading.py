"""Loading campaign specs and recipient lists: every problem at once, path, value and rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from redialer.campaign import CampaignPolicy
from redialer.limits import Limits
from redialer.loading import InvalidInput, load_campaign, load_recipients, parse_campaign

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "lead-qualification.json"


def base(**fields: object) -> dict[str, object]:
    return {"campaign_id": "t", "recipients": [{"phone": "+16505550199"}], **fields}


DEFAULT_LIMITS = Limits()


def problems(data: object, limits: Limits = DEFAULT_LIMITS) -> list[str]:
    with pytest.raises(InvalidInput) as info:
        parse_campaign(data, limits=limits)
    return [str(p) for p in info.value.problems]


def test_design_example_loads_from_json_and_yaml(tmp_path: Path):
    """The DESIGN.md example spec loads from JSON and, unchanged, from YAML."""
    data = json.loads(EXAMPLE.read_text())
    as_yaml = tmp_path / "spec.yaml"
    as_yaml.write_text(yaml.safe_dump(data))
    for path in (EXAMPLE, as_yaml):
        spec = load_campaign(path, limits=Limits()).value
        assert spec.campaign_id == "lead-qualification-nov"
        assert spec.retry.strategy.type == "attempts"
        assert spec.retry.strategy.delays == [300, 3600, 10800]
        assert [r.phone for r in spec.recipients] == ["+16505550199", "+14155550100"]
        assert spec.recipients[0].variables == {"name": "Ada"}
        assert spec.pause_windows["monday"][1].end_minute == 24 * 60


def test_every_problem_is_reported_at_once():
    """Bad rows, bad delays and bad windows all come back together, each with path and rule."""
    found = problems(
        {
            "campaign_id": "t",
            "retry": {"strategy": {"type": "attempts", "delays": [300, 3600, 99999, -1]}},
            "pause_windows": {"monday": [{"start": "25:00", "end": "14:00"}]},
            "recipients": [
                {"phone": "+16505550199"},
                {"phone": "+16505550199"},
                {"phone": "+16505550199"},
                {"phone": "555-0199"},
            ],
        }
    )
    assert len(found) == 4
    assert found[0].startswith(
        "retry.strategy.delays[2]: 99999: a configured delay may be at most 10800 s"
    )
    assert found[1].startswith("retry.strategy.delays[3]: -1: ")
    assert found[2].startswith("pause_windows.monday[0].start: '25:00': ")
    assert found[3].startswith("recipients[3].phone: '555-0199': must be in international format")


@pytest.mark.parametrize(
    ("data", "path"),
    [
        (base(retyr={}), "retyr"),
        (base(calling_hours={"strat": "09:00", "end": "21:00"}), "calling_hours.strat"),
        (
            base(
                retry={
                    "strategy": {
                        "type": "fixed_delay",
                        "delay": 60,
                        "max_retries": 1,
                        "max_retry": 3,
                    }
                }
            ),
            "retry.strategy.max_retry",
        ),
        (base(recipients=[{"phone": "+16505550199", "vars": {}}]), "recipients[0].vars"),
    ],
)
def test_unknown_fields_are_errors(data: dict[str, object], path: str):
    """A misspelt field is refused, not ignored: a typo must not silently disable a rule."""
    found = problems(data)
    assert any(f.startswith(f"{path}: ") and "unknown field" in f for f in found), found
    assert len(found) <= 2  # at most one more: the field the typo failed to set is missing


def test_limits_name_the_field_value_and_limit_and_can_be_raised():
    """21 retries or a 10,801 s delay are refused by default and accepted under raised limits."""
    data = base(retry={"strategy": {"type": "fixed_delay", "delay": 10801, "max_retries": 21}})
    found = problems(data)
    assert any(
        f.startswith("retry.strategy.delay: 10801: a configured delay may be at most 10800 s")
        for f in found
    )
    assert any(f.startswith("retry.strategy.max_retries: 21: at most 20 retries") for f in found)
    raised = Limits(max_retries=30, max_delay_seconds=86400)
    spec = parse_campaign(data, limits=raised).value
    # The worker decodes payloads without the limits: a spec accepted under raised ones still loads.
    again = CampaignPolicy.model_validate(spec.policy().model_dump(mode="json"))
    assert again.retry.strategy.retry_budget() == 21
    assert len(problems(base(retry={"strategy": {"type": "attempts", "delays": [60] * 21}}))) == 1


def test_exponential_without_cap_is_capped_at_the_limit():
    """An exponential strategy without max_delay never waits longer than the delay limit."""
    spec = parse_campaign(
        base(retry={"strategy": {"type": "exponential", "initial_delay": 1800, "max_retries": 10}}),
        limits=Limits(),
    ).value
    assert spec.retry.strategy.delay_for(10) == 10800


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("PT5M", 300), ("PT1H30M", 5400), ("P1D", 86400), (300, 300), ("90", 90), ("pt10s", 10)],
)
def test_durations_in_seconds_or_iso8601(text: object, seconds: float):
    """Durations accept seconds or ISO 8601."""
    spec = parse_campaign(
        base(retry={"strategy": {"type": "fixed_delay", "delay": text, "max_retries": 1}}),
        limits=Limits(max_delay_seconds=86400),
    ).value
    assert spec.retry.strategy.delay == seconds


@pytest.mark.parametrize("bad", ["P1M", "5 minutes", True, "PT", 0])
def test_bad_durations_are_refused(bad: object):
    """Months, prose, booleans, empty and zero durations are refused at their path."""
    (found,) = problems(
        base(retry={"strategy": {"type": "fixed_delay", "delay": bad, "max_retries": 1}})
    )
    assert found.startswith("retry.strategy.delay: ")


def test_duplicate_numbers_are_merged_with_a_warning():
    """A number listed twice is called once; both rows are named; the first row's values win."""
    loaded = parse_campaign(
        base(
            recipients=[
                {"phone": "+16505550199", "variables": {"name": "Ada", "tier": "gold"}},
                {"phone": "+14155550100"},
                {"phone": "+1 (650) 555-0199", "variables": {"name": "Other", "city": "Palo Alto"}},
            ]
        ),
        limits=Limits(),
    )
    assert [r.phone for r in loaded.value.recipients] == ["+16505550199", "+14155550100"]
    assert loaded.value.recipients[0].variables == {
        "name": "Ada",
        "tier": "gold",
        "city": "Palo Alto",
    }
    assert loaded.warnings == [
        "recipients[2].phone +16505550199 duplicates recipients[0]:"
        " merged, the number is called once"
    ]


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("00 44 20 7946 0000", "+442079460000"),
        ("+1 650-555-0199", "+16505550199"),
        ("+91 98765 43210", "+919876543210"),
    ],
)
def test_numbers_are_normalised_to_e164(raw: str, e164: str):
    """International formats with spaces, dashes or a 00 prefix normalise to E.164."""
    spec = parse_campaign(base(recipients=[{"phone": raw}]), limits=Limits()).value
    assert spec.recipients[0].phone == e164


def test_csv_recipient_lists(tmp_path: Path):
    """A CSV contact list: phone and timezone columns, every other column a variable."""
    path = tmp_path / "more.csv"
    path.write_text("phone,name,timezone\n+16505550199,Ada,\n+14155550100,Bob,America/Denver\n")
    recipients = load_recipients(path).value
    assert [(r.phone, r.timezone, r.variables) for r in recipients] == [
        ("+16505550199", None, {"name": "Ada"}),
        ("+14155550100", "America/Denver", {"name": "Bob"}),
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("phone,name\n+16505550199,Ada\nnot-a-number,Bob\n+1555,Cy\n")
    with pytest.raises(InvalidInput) as info:
        load_recipients(bad)
    assert [p.path for p in info.value.problems] == ["recipients[1].phone", "recipients[2].phone"]


def test_a_week_without_any_allowed_minute_is_refused():
    """Windows that together forbid every minute of the week are refused: nobody could be called."""
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
    assert "forbid every minute of the week" in found
    parse_campaign(base(pause_windows=everyday), limits=Limits())  # Sunday stays open: accepted


def test_unreadable_and_malformed_files(tmp_path: Path):
    """A missing file or broken JSON is one clear problem naming the file."""
    with pytest.raises(InvalidInput, match="cannot be read"):
        load_campaign(tmp_path / "nope.json", limits=Limits())
    broken = tmp_path / "broken.json"
    broken.write_text('{"campaign_id": "x",}')
    with pytest.raises(InvalidInput, match="not valid JSON: .* line 1"):
        load_campaign(broken, limits=Limits())
