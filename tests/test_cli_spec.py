"""`redialer validate` and `redialer plan`: what a user sees before launching a campaign."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from redialer.settings import get_settings
from starter.cli import app

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = str(ROOT / "examples" / "lead-qualification.json")
runner = CliRunner()


@pytest.fixture(autouse=True)
def default_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test reads the default limits, whatever the calling shell exports."""
    for name in ("REDIALER_MAX_RETRIES_LIMIT", "REDIALER_MAX_DELAY_LIMIT"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def spec_file(tmp_path: Path, name: str = "spec.json", **fields: object) -> str:
    data = {"campaign_id": "cli", "recipients": [{"phone": "+16505550199"}], **fields}
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def plan_json(*args: str) -> dict:
    result = runner.invoke(app, ["plan", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --- validate -----------------------------------------------------------------------------------


def test_validate_prints_a_summary():
    """A valid spec exits 0 with its id, recipient count, strategy, retry rules and windows."""
    result = runner.invoke(app, ["validate", EXAMPLE])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines == [
        "lead-qualification-nov: valid",
        "recipients   2 in 1 zone(s): America/Los_Angeles 2",
        "strategy     attempts: 5 min, 1 h, 3 h",
        "retry on     no_answer, busy, failed (max 1)",
        "timezone     America/New_York (for recipients whose number maps to no single zone)",
        "calling hrs  09:00-21:00",
        "pause        monday 12:00-14:00, 18:00-23:59",
        "limits       max attempts/day 3, max concurrent calls 50",
    ]


@pytest.mark.parametrize(
    ("strategy", "shown"),
    [
        ({"type": "none"}, "none (one attempt)"),
        (
            {"type": "fixed_delay", "delay": "PT30M", "max_retries": 2, "jitter": 0.1},
            "fixed delay 30 min, up to 2 retries, jitter ±10%",
        ),
        (
            {"type": "exponential", "initial_delay": 90, "max_retries": 4},
            "exponential from 90 s x2, at most 3 h, up to 4 retries",
        ),
        (
            {"type": "time_of_day", "times": ["14:00", "10:00"]},
            "time of day 10:00, 14:00, up to 2 retries",
        ),
        (
            {"type": "scheduled", "retry_at": ["2026-01-20T10:00:00Z"]},
            "scheduled at 2026-01-20T10:00:00+00:00",
        ),
    ],
)
def test_validate_describes_each_strategy(tmp_path: Path, strategy: dict, shown: str):
    """The summary's strategy line says what the strategy will do, durations in words."""
    result = runner.invoke(app, ["validate", spec_file(tmp_path, retry={"strategy": strategy})])
    assert result.exit_code == 0, result.output
    assert f"strategy     {shown}\n" in result.stdout


def test_validate_a_minimal_spec_says_none_where_nothing_is_set(tmp_path: Path):
    """A spec with no windows, hours or limits says so rather than printing blanks."""
    result = runner.invoke(app, ["validate", spec_file(tmp_path, recipients=[])])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "cli: valid\n" in out
    assert "recipients   0\n" in out
    assert "calling hrs  any time\n" in out
    assert "pause        none\n" in out
    assert "limits       none\n" in out


def test_validate_reports_every_problem_on_stderr_and_exits_2(tmp_path: Path):
    """An invalid spec exits 2 and lists every problem, one line each, on stderr only."""
    path = spec_file(
        tmp_path,
        timezone="Mars/Base",
        recipients=[{"phone": "+16505550199"}, {"phone": "12"}, {"phone": "+16505550100"}],
        retry={"strategy": {"type": "fixed_delay", "delay": 99999, "max_retries": 50}},
        calling_hours={"strat": "09:00", "end": "21:00"},
    )
    result = runner.invoke(app, ["validate", path])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"{path}: 6 problem(s)"
    assert sorted(line.split(":")[0].strip() for line in lines[1:]) == [
        "calling_hours.start",
        "calling_hours.strat",
        "recipients[1].phone",
        "retry.strategy.delay",
        "retry.strategy.max_retries",
        "timezone",
    ]
    assert "  retry.strategy.delay: 99999: a configured delay may be at most 10800 s" in (
        result.stderr
    )
    assert "  recipients[1].phone: '12': " in result.stderr


def test_validate_accepts_what_raised_limits_allow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """REDIALER_MAX_*_LIMIT raise the limits the CLI checks against."""
    path = spec_file(
        tmp_path, retry={"strategy": {"type": "fixed_delay", "delay": "P1D", "max_retries": 25}}
    )
    assert runner.invoke(app, ["validate", path]).exit_code == 2
    monkeypatch.setenv("REDIALER_MAX_DELAY_LIMIT", "86400")
    monkeypatch.setenv("REDIALER_MAX_RETRIES_LIMIT", "30")
    get_settings.cache_clear()
    result = runner.invoke(app, ["validate", path])
    assert result.exit_code == 0, result.output
    assert "fixed delay 24 h, up to 25 retries" in result.stdout


def test_validate_warns_about_merged_duplicates(tmp_path: Path):
    """Duplicate numbers are merged with a warning on stderr naming both rows; still valid."""
    path = spec_file(tmp_path, recipients=[{"phone": "+16505550199"}, {"phone": "+1 650 555 0199"}])
    result = runner.invoke(app, ["validate", path])
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "warning: recipients[1].phone +16505550199 duplicates recipients[0]:"
        " merged, the number is called once\n"
    )
    assert "recipients   1 in 1 zone(s)" in result.stdout


def test_validate_reads_yaml_and_refuses_a_missing_file(tmp_path: Path):
    """YAML specs validate the same way; a missing file is one problem and exit 2."""
    path = tmp_path / "spec.yaml"
    path.write_text("campaign_id: from-yaml\nrecipients:\n  - phone: '+16505550199'\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0 and "from-yaml: valid" in result.stdout
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.json")])
    assert result.exit_code == 2
    assert "cannot be read" in result.stderr


def test_installed_console_script_validates():
    """The installed `redialer` console script runs `validate` (exit 0, summary on stdout)."""
    script = Path(sys.executable).parent / "redialer"
    result = subprocess.run(
        [str(script), "validate", EXAMPLE], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("lead-qualification-nov: valid\n")
    assert "recipients   2" in result.stdout


# --- plan ---------------------------------------------------------------------------------------


def test_plan_json_has_exactly_the_documented_shape():
    """`plan --json`: recipient, timezone, attempts (attempt, at, outcome, deferred), final."""
    data = plan_json(
        EXAMPLE, "--start", "2026-11-23T11:55:00-05:00", "--outcomes", "busy,no_answer,completed"
    )
    assert set(data) == {"recipient", "timezone", "attempts", "final_status"}
    assert (data["recipient"], data["timezone"]) == ("+16505550199", "America/Los_Angeles")
    assert [set(a) for a in data["attempts"]] == [{"attempt", "at", "outcome", "deferred"}] * 3
    assert [a["attempt"] for a in data["attempts"]] == [1, 2, 3]
    assert [a["outcome"] for a in data["attempts"]] == ["busy", "no_answer", "completed"]
    for a in data["attempts"]:
        at = datetime.fromisoformat(a["at"])
        assert at.utcoffset() is not None and a["at"].endswith("-08:00")  # recipient's local time
    assert data["attempts"][0]["at"] == "2026-11-23T09:00:00-08:00"  # calling hours, LA time
    (moved,) = data["attempts"][0]["deferred"]
    assert moved == {
        "reason": "calling_hours",
        "rule": "calling hours 09:00-21:00",
        "moved_from": "2026-11-23T08:55:00-08:00",
        "moved_to": "2026-11-23T09:00:00-08:00",
    }
    assert data["attempts"][1]["at"] == "2026-11-23T09:05:30-08:00"  # 300 s after a 30 s call
    assert data["attempts"][2]["at"] == "2026-11-23T10:06:00-08:00"  # 3,600 s after that
    assert data["attempts"][1]["deferred"] == []
    assert data["final_status"] == "completed"


@pytest.mark.parametrize(
    ("outcomes", "attempts", "final"),
    [
        ("completed", 1, "completed"),
        ("busy,busy,no_answer,busy", 4, "all_retries_exhausted"),
        ("voicemail", 1, "voicemail_final"),
        ("rejected", 1, "rejected_final"),
        ("failed,failed", 2, "failed"),
        ("failed,busy,completed", 3, "completed"),
        ("busy,invalid_number", 2, "invalid_number"),
        ("dnd", 1, "dnd"),
        ("no_answer,canceled", 2, "canceled"),
        ("busy", 2, None),  # the outcomes ran out: the next attempt is shown, not final
    ],
)
def test_plan_final_status_for_outcome_scripts(outcomes: str, attempts: int, final: str | None):
    """The plan ends with the status the retry rules give the scripted outcomes."""
    data = plan_json(EXAMPLE, "--start", "2026-11-24T10:00:00-05:00", "--outcomes", outcomes)
    assert (len(data["attempts"]), data["final_status"]) == (attempts, final)
    if final is None:
        assert data["attempts"][-1]["outcome"] is None


def test_plan_picks_a_recipient_and_reads_windows_in_its_own_zone(tmp_path: Path):
    """--recipient selects a row (any spelling of its number); its own timezone is used."""
    path = spec_file(
        tmp_path,
        timezone="America/New_York",
        calling_hours={"start": "09:00", "end": "21:00"},
        recipients=[
            {"phone": "+16505550199"},
            {"phone": "+14155550100", "timezone": "Europe/London"},
        ],
    )
    start = ["--start", "2026-11-24T06:00:00Z", "--outcomes", "completed"]
    data = plan_json(path, *start, "--recipient", "+1 (415) 555-0100")
    assert (data["recipient"], data["timezone"]) == ("+14155550100", "Europe/London")
    assert data["attempts"][0]["at"] in ("2026-11-24T09:00:00Z", "2026-11-24T09:00:00+00:00")
    data = plan_json(path, *start)  # default: the first recipient, in its number's zone
    assert (data["recipient"], data["timezone"]) == ("+16505550199", "America/Los_Angeles")
    assert data["attempts"][0]["at"] == "2026-11-24T09:00:00-08:00"
    data = plan_json(path, *start, "--recipient", "+18005550199")  # not listed, no single zone
    assert (data["recipient"], data["timezone"]) == ("+18005550199", "America/New_York")
    assert data["attempts"][0]["at"] == "2026-11-24T09:00:00-05:00"


def test_plan_call_seconds_and_seed_options(tmp_path: Path):
    """--call-seconds moves each retry by the call's length; --seed picks the jitter."""
    path = spec_file(
        tmp_path,
        retry={"strategy": {"type": "fixed_delay", "delay": 600, "max_retries": 1, "jitter": 0.5}},
    )
    common = ["--start", "2026-11-24T10:00:00Z", "--outcomes", "busy,busy"]
    ats = {
        seed: datetime.fromisoformat(
            plan_json(path, *common, "--call-seconds", "120", "--seed", str(seed))["attempts"][1][
                "at"
            ]
        )
        for seed in range(5)
    }
    start = datetime.fromisoformat("2026-11-24T10:00:00Z")
    assert all(120 + 300 <= (at - start).total_seconds() <= 120 + 900 for at in ats.values())
    assert len(set(ats.values())) == 5
    again = plan_json(path, *common, "--call-seconds", "120", "--seed", "3")["attempts"][1]["at"]
    assert datetime.fromisoformat(again) == ats[3]


def test_plan_text_output_names_moves_and_the_final_status():
    """Without --json the plan lists each attempt's local time, why it moved, the final status."""
    result = runner.invoke(
        app,
        ["plan", EXAMPLE, "--start", "2026-11-23T11:55:00-05:00", "--outcomes", "busy,completed"],
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "+16505550199 (America/Los_Angeles)"
    assert lines[1] == (
        "  attempt  1  Mon 2026-11-23 09:00:00 -0800  busy;"
        " moved by calling_hours (calling hours 09:00-21:00)"
    )
    assert lines[2] == "  attempt  2  Mon 2026-11-23 09:05:30 -0800  completed"
    assert lines[3] == "  final: completed (completed is not retried by this policy)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--start", "2026-11-23T10:00:00Z", "--outcomes", "busy,hung_up"],
            "--outcomes[1]: 'hung_up'",
        ),
        (["--start", "2026-11-23T10:00:00Z", "--outcomes", " , "], "--outcomes: give at least one"),
        (["--start", "tomorrow", "--outcomes", "busy"], "--start: 'tomorrow': must be ISO 8601"),
        (
            ["--start", "2026-11-23T10:00:00", "--outcomes", "busy"],
            "--start: '2026-11-23T10:00:00': must include a UTC offset",
        ),
        (
            ["--start", "2026-11-23T10:00:00Z", "--outcomes", "busy", "--recipient", "x"],
            "--recipient: 'x'",
        ),
    ],
)
def test_plan_rejects_bad_options_naming_the_option_and_value(args: list[str], message: str):
    """Bad --outcomes, --start or --recipient exit 2 with the option and the value on stderr."""
    result = runner.invoke(app, ["plan", EXAMPLE, *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr, result.stderr
    assert result.stdout == ""


def test_plan_refuses_an_invalid_spec_or_one_without_recipients(tmp_path: Path):
    """plan checks the spec like validate (exit 2), and needs a recipient to plan for."""
    bad = spec_file(tmp_path, "bad.json", recipients=[{"phone": "12"}])
    result = runner.invoke(
        app, ["plan", bad, "--start", "2026-11-23T10:00:00Z", "--outcomes", "busy"]
    )
    assert result.exit_code == 2 and "recipients[0].phone" in result.stderr
    empty = spec_file(tmp_path, "empty.json", recipients=[])
    result = runner.invoke(
        app, ["plan", empty, "--start", "2026-11-23T10:00:00Z", "--outcomes", "busy"]
    )
    assert result.exit_code == 2 and "the spec has no recipients" in result.stderr


# --- sizes --------------------------------------------------------------------------------------


def big_spec(tmp_path: Path, notes_bytes: int) -> str:
    rows: list[dict[str, object]] = [{"phone": f"+1650555{n:04d}"} for n in range(100, 103)]
    rows.append({"phone": "+1 650 555 0199", "variables": {"notes": "x" * notes_bytes}})
    return spec_file(tmp_path, recipients=rows)


def test_validate_refuses_a_20_mb_variable_naming_row_phone_field_and_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A 20 MiB variable exits 2 naming the row, the number, the field, its size and the limit."""
    monkeypatch.delenv("REDIALER_MAX_RECIPIENT_BYTES", raising=False)
    path = big_spec(tmp_path, 20 * 1024 * 1024)
    result = runner.invoke(app, ["validate", path])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path}: 1 problem(s)",
        "  recipients[3] (+16505550199).variables: 20.0 MiB: a recipient's data may be at most"
        " 64 KiB (REDIALER_MAX_RECIPIENT_BYTES raises the limit, to at most 1 MiB);"
        " keep data this large outside the spec and pass a reference to it (a URL, an id)",
    ]


def test_start_refuses_an_oversized_recipient_before_connecting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """`redialer start` checks sizes too: exit 2, and Temporal is never contacted."""
    monkeypatch.delenv("REDIALER_MAX_RECIPIENT_BYTES", raising=False)
    path = big_spec(tmp_path, 100 * 1024)
    result = runner.invoke(app, ["start", path, "--address", "127.0.0.1:1"])
    assert result.exit_code == 2, result.output
    assert "recipients[3] (+16505550199).variables: 100.0 KiB: " in result.stderr


def test_redialer_max_recipient_bytes_raises_the_limit_up_to_its_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """REDIALER_MAX_RECIPIENT_BYTES lets a 100 KiB recipient in; above 1 MiB it is refused."""
    path = big_spec(tmp_path, 100 * 1024)
    monkeypatch.delenv("REDIALER_MAX_RECIPIENT_BYTES", raising=False)
    assert runner.invoke(app, ["validate", path]).exit_code == 2
    monkeypatch.setenv("REDIALER_MAX_RECIPIENT_BYTES", str(128 * 1024))
    get_settings.cache_clear()
    result = runner.invoke(app, ["validate", path])
    assert result.exit_code == 0, result.output
    assert "recipients   4" in result.stdout
    monkeypatch.setenv("REDIALER_MAX_RECIPIENT_BYTES", str(4 * 1024 * 1024))
    get_settings.cache_clear()
    result = runner.invoke(app, ["validate", path])
    assert result.exit_code == 2
    from redialer.settings import SettingsError

    assert isinstance(result.exception, SettingsError)
    (line,) = result.exception.lines
    assert line == (
        "invalid setting REDIALER_MAX_RECIPIENT_BYTES='4194304':"
        " Input should be less than or equal to 1048576"
    )


def test_start_with_a_real_provider_refuses_a_campaign_without_a_call_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """REDIALER_DIALER=twilio: a spec that does not say what an answered call does is refused
    before anything starts, naming the field; missing provider settings are named too."""
    spec = tmp_path / "c.json"
    spec.write_text(json.dumps({"campaign_id": "c1", "recipients": [{"phone": "+16505550199"}]}))
    monkeypatch.setenv("REDIALER_DIALER", "twilio")
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["start", str(spec), "--address", "127.0.0.1:1"])
        assert result.exit_code == 2
        said = "\n".join(getattr(result.exception, "lines", []))  # what `redialer` prints
        assert "REDIALER_CALLER_ID" in said and "TWILIO_AUTH_TOKEN" in said
        monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "0" * 32)
        monkeypatch.setenv("TWILIO_AUTH_TOKEN", "secret-token")
        monkeypatch.setenv("REDIALER_CALLER_ID", "+15550009999")
        monkeypatch.setenv("REDIALER_PUBLIC_URL", "https://dialer.example.com")
        get_settings.cache_clear()
        result = runner.invoke(app, ["start", str(spec), "--address", "127.0.0.1:1"])
        assert result.exit_code == 2, result.output
        assert "call: missing: REDIALER_DIALER=twilio places real calls" in result.stderr
        assert "secret-token" not in result.output
    finally:
        get_settings.cache_clear()
