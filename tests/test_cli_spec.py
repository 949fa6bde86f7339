"""`redialer validate` and `redialer plan`: what a user sees before launching a campaign."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from starter.cli import app

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = str(ROOT / "examples" / "lead-qualification.json")
runner = CliRunner()


def spec_file(tmp_path: Path, **fields: object) -> str:
    data = {"campaign_id": "cli", "recipients": [{"phone": "+16505550199"}], **fields}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_validate_prints_a_summary():
    """A valid spec exits 0 with its id, recipient count, strategy and windows."""
    result = runner.invoke(app, ["validate", EXAMPLE])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "lead-qualification-nov: valid" in out
    assert "recipients   2" in out
    assert "attempts: 5 min, 1 h, 3 h" in out
    assert "monday 12:00-14:00, 18:00-23:59" in out
    assert "09:00-21:00" in out


def test_validate_reports_every_problem_and_exits_2(tmp_path: Path):
    """An invalid spec exits 2 and lists every problem, one line each, on stderr."""
    path = spec_file(
        tmp_path,
        timezone="Mars/Base",
        recipients=[{"phone": "+16505550199"}, {"phone": "12"}],
        retry={"strategy": {"type": "fixed_delay", "delay": 99999, "max_retries": 50}},
    )
    result = runner.invoke(app, ["validate", path])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0].endswith("4 problem(s)")
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "timezone",
        "retry.strategy.delay",
        "retry.strategy.max_retries",
        "recipients[1].phone",
    ]


def test_validate_warns_about_merged_duplicates(tmp_path: Path):
    """Duplicate numbers are merged with a warning, and the spec is still valid."""
    path = spec_file(tmp_path, recipients=[{"phone": "+16505550199"}, {"phone": "+16505550199"}])
    result = runner.invoke(app, ["validate", path])
    assert result.exit_code == 0
    assert "recipients[1].phone +16505550199 duplicates recipients[0]" in result.stderr
    assert "recipients   1" in result.stdout


def test_plan_json_shape():
    """`plan --json`: recipient, timezone, attempts (attempt, at, outcome, deferred), final."""
    result = runner.invoke(
        app,
        [
            "plan",
            EXAMPLE,
            "--start",
            "2026-11-23T11:55:00-05:00",
            "--outcomes",
            "busy,no_answer,completed",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"recipient", "timezone", "attempts", "final_status"}
    assert data["recipient"] == "+16505550199"
    assert data["timezone"] == "America/Los_Angeles"
    assert [set(a) for a in data["attempts"]] == [{"attempt", "at", "outcome", "deferred"}] * 3
    assert data["attempts"][0]["at"] == "2026-11-23T09:00:00-08:00"  # calling hours, LA time
    assert data["attempts"][0]["deferred"][0]["reason"] == "calling_hours"
    assert data["attempts"][1]["at"] == "2026-11-23T09:05:30-08:00"  # 300 s after a 30 s call
    assert data["final_status"] == "completed"


def test_plan_picks_a_recipient_and_its_own_zone():
    """--recipient selects a row; its own timezone is the one windows are read in."""
    result = runner.invoke(
        app,
        [
            "plan",
            EXAMPLE,
            "--start",
            "2026-11-23T06:00:00Z",
            "--outcomes",
            "no_answer,no_answer,no_answer,no_answer,busy",
            "--recipient",
            "+1 415 555 0100",
            "--json",
        ],
    )
    data = json.loads(result.stdout)
    assert (data["recipient"], data["timezone"]) == ("+14155550100", "America/Los_Angeles")
    assert len(data["attempts"]) == 4 and data["final_status"] == "all_retries_exhausted"


def test_plan_when_outcomes_run_out_shows_the_next_attempt():
    """If the scripted outcomes end first, the plan shows when the next call would be placed."""
    result = runner.invoke(
        app,
        ["plan", EXAMPLE, "--start", "2026-11-24T10:00:00-05:00", "--outcomes", "busy", "--json"],
    )
    data = json.loads(result.stdout)
    assert [a["outcome"] for a in data["attempts"]] == ["busy", None]
    assert data["final_status"] is None


def test_plan_rejects_bad_options_naming_them():
    """Bad --outcomes, --start or --recipient exit 2 naming the option and the value."""
    bad = [
        (
            ["--start", "2026-11-23T10:00:00Z", "--outcomes", "busy,hung_up"],
            "--outcomes[1]: 'hung_up'",
        ),
        (["--start", "tomorrow", "--outcomes", "busy"], "--start: 'tomorrow'"),
        (["--start", "2026-11-23T10:00:00", "--outcomes", "busy"], "must include a UTC offset"),
        (
            ["--start", "2026-11-23T10:00:00Z", "--outcomes", "busy", "--recipient", "x"],
            "--recipient: 'x'",
        ),
    ]
    for args, message in bad:
        result = runner.invoke(app, ["plan", EXAMPLE, *args])
        assert result.exit_code == 2, args
        assert message in result.stderr, result.stderr


def test_console_script_plans_a_twenty_retry_policy(tmp_path: Path):
    """The installed `redialer` plans a 20-retry policy (its speed: bench/plan_speed.py)."""
    path = spec_file(
        tmp_path, retry={"strategy": {"type": "fixed_delay", "delay": 60, "max_retries": 20}}
    )
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "redialer"),
            "plan",
            path,
            "--start",
            "2026-11-23T10:00:00Z",
            "--outcomes",
            ",".join(["busy"] * 21),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["attempts"]) == 21
