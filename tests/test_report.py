"""Campaign insight: every metric on a campaign with a known outcome script, checked by hand."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from redialer.allowed_time import Deferral, DeferralReason
from redialer.campaign import CampaignSpec
from redialer.outcomes import Outcome
from redialer.payloads import AttemptRecord
from redialer.recipients import Recipient
from redialer.report import AttemptRow, DeferralCount, RecipientRow, build_report
from redialer.store.store import Store
from starter import campaigns
from starter.cli import app
from starter.exports import export_rows
from starter.plots import draw_report, hour_of_week_grid
from starter.report_commands import campaign_report

B, N, C, V, F = (
    Outcome.BUSY,
    Outcome.NO_ANSWER,
    Outcome.COMPLETED,
    Outcome.VOICEMAIL,
    Outcome.FAILED,
)
P = [f"+1212555{n:04d}" for n in range(700, 706)]  # New York numbers
SCRIPT = {P[0]: [C], P[1]: [B, C], P[2]: [N, N, C], P[3]: [N, N, N, N], P[4]: [V], P[5]: [F, F]}
runner = CliRunner()


async def run_campaign(
    env,
    harness_for,
    campaign_id: str,
    script: dict[str, list[Outcome]],  # type: ignore[no-untyped-def]
    retries: int = 3,
) -> Store:
    h = harness_for(env, script)
    spec = CampaignSpec.model_validate(
        {
            "campaign_id": campaign_id,
            "retry": {"strategy": {"type": "fixed_delay", "delay": 600, "max_retries": retries}},
            "recipients": [
                {"phone": p, "variables": {"name": f"n{i}", "score": i}}
                for i, p in enumerate(script)
            ],
        }
    )
    async with h.worker():
        handle = await campaigns.start_campaign(env.client, spec, task_queue=h.task_queue)
        await handle.result()
    return h.store


@pytest.fixture
async def known(time_skipping_env, harness_for) -> Store:  # type: ignore[no-untyped-def]
    """The scripted campaign, run once per test under the id `known` in this test's store."""
    h = harness_for(time_skipping_env, SCRIPT)
    unique = f"known-{h.task_queue[-12:]}"
    store = await run_campaign(time_skipping_env, harness_for, unique, SCRIPT)
    with store.engine.begin() as conn:  # rename, so the assertions can name the campaign
        for table in ("call_records", "campaign_recipients", "campaigns"):
            conn.exec_driver_sql(
                f"UPDATE {table} SET campaign_id = 'known' WHERE campaign_id = ?", (unique,)
            )
    return store


async def test_every_metric_matches_the_hand_computed_values(known: Store):
    """Connection rates per attempt, conversions, outcomes and calls agree with the script."""
    r = campaign_report(known, "known")
    assert (r.recipients, r.final) == (6, 6)
    assert r.by_status == {
        "completed": 3,
        "all_retries_exhausted": 1,
        "voicemail_final": 1,
        "failed": 1,
    }
    assert r.connection_rate == 0.5
    assert [(a.attempt, a.calls, a.connected) for a in r.attempts] == [
        (1, 6, 1),
        (2, 4, 1),
        (3, 2, 1),
        (4, 1, 0),
    ]
    assert [a.connection_rate for a in r.attempts] == [0.1667, 0.25, 0.5, 0.0]
    assert [a.cumulative_rate for a in r.attempts] == [0.1667, 0.3333, 0.5, 0.5]
    assert [a.incremental_gain for a in r.attempts] == [0.1667, 0.1667, 0.1667, 0.0]
    assert r.average_attempts_to_connect == 2.0  # (1 + 2 + 3) / 3
    assert (r.recipients_retried, r.completed_after_retry, r.retry_conversion_rate) == (4, 2, 0.5)
    assert r.unreachable_rate == 0.1667
    assert r.outcomes == {"no_answer": 6, "completed": 3, "failed": 2, "busy": 1, "voicemail": 1}
    assert r.calls_placed == 13
    assert r.calls_per_connection == 4.3333
    assert sum(b.calls for b in r.answer_rate_by_hour.values()) == 13
    assert sum(b.answered for b in r.answer_rate_by_hour.values()) == 3
    assert sum(b.calls for b in r.answer_rate_by_weekday.values()) == 13


async def test_report_json_through_the_cli(known: Store, sqlite_url: str):
    """`redialer report --json` prints the same numbers from the store."""
    result = runner.invoke(app, ["report", "known", "--json", "--database", sqlite_url])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["connection_rate"] == 0.5 and data["calls_placed"] == 13
    assert data["attempts"][1] == {
        "attempt": 2,
        "calls": 4,
        "connected": 1,
        "connection_rate": 0.25,
        "cumulative_rate": 0.3333,
        "incremental_gain": 0.1667,
    }


async def test_export_round_trips_through_a_csv_reader(
    known: Store, sqlite_url: str, tmp_path: Path
):
    """The follow-up export lists exactly the unreached recipients, with variables and outcomes."""
    out = tmp_path / "follow-up.csv"
    result = runner.invoke(
        app,
        [
            "export",
            "known",
            "--status",
            "all_retries_exhausted,failed",
            "--format",
            "csv",
            "-o",
            str(out),
            "--database",
            sqlite_url,
        ],
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert rows == [
        {
            "phone": P[3],
            "status": "all_retries_exhausted",
            "attempts": "4",
            "last_outcome": "no_answer",
            "timezone": "America/New_York",
            "var.name": "n3",
            "var.score": "3",
        },
        {
            "phone": P[5],
            "status": "failed",
            "attempts": "2",
            "last_outcome": "failed",
            "timezone": "America/New_York",
            "var.name": "n5",
            "var.score": "5",
        },
    ]
    jsonl = runner.invoke(
        app,
        [
            "export",
            "known",
            "--status",
            "voicemail_final",
            "--format",
            "jsonl",
            "--database",
            sqlite_url,
        ],
    )
    (line,) = jsonl.stdout.strip().splitlines()
    assert json.loads(line)["variables"] == {"name": "n4", "score": 4}
    assert list(export_rows(known, "known", ["completed"]))[0]["phone"] == P[0]


def test_export_refuses_unknown_statuses_and_formats(sqlite_url: str):
    """A typo in --status or --format exits 2 naming the option and the value."""
    bad = runner.invoke(
        app, ["export", "x", "--status", "failed,unreached", "--database", sqlite_url]
    )
    assert bad.exit_code == 2 and "--status[1]: 'unreached'" in bad.stderr
    bad = runner.invoke(app, ["export", "x", "--format", "xlsx", "--database", sqlite_url])
    assert bad.exit_code == 2 and "--format: 'xlsx'" in bad.stderr


async def test_ab_comparison_and_plot(
    time_skipping_env, harness_for, sqlite_url: str, tmp_path: Path
):
    """Two campaigns side by side, and a real PNG with labelled axes."""
    suffix = harness_for(time_skipping_env).task_queue[-8:]
    ids = [f"strategy-a-{suffix}", f"strategy-b-{suffix}"]
    store = await run_campaign(time_skipping_env, harness_for, ids[0], SCRIPT, retries=1)
    await run_campaign(time_skipping_env, harness_for, ids[1], SCRIPT, retries=3)
    a, b = campaign_report(store, ids[0]), campaign_report(store, ids[1])
    assert (a.connection_rate, a.calls_placed) == (0.3333, 10)  # P2 never gets its 3rd try
    assert (b.connection_rate, b.calls_placed) == (0.5, 13)
    png = tmp_path / "ab.png"
    result = runner.invoke(app, ["report", *ids, "--plot", str(png), "--database", sqlite_url])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert ids[0] in lines[0] and ids[1] in lines[0]
    assert any(
        line.startswith("connection rate") and "33.3%" in line and "50.0%" in line for line in lines
    )
    # What the A/B benchmark compares: recipients completed / calls placed, 2 / 10 and 3 / 13.
    (per_call,) = [line for line in lines if line.startswith("connections per call placed")]
    assert per_call.split()[-2:] == ["0.2000", "0.2308"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    labels = draw_report([a, b], tmp_path / "again.png")
    assert "attempt number" in labels and "local hour (recipient's time zone)" in labels
    assert "cumulative connection rate (%)" in labels


def test_report_of_an_unknown_campaign_says_so(sqlite_url: str):
    """A campaign with no records is a clear error, not an empty report."""
    Store.open(sqlite_url).close()
    result = runner.invoke(app, ["report", "nope", "--database", sqlite_url])
    assert result.exit_code == 1 and "no recipients or call records" in result.stderr


def test_deferrals_by_rule_come_from_the_stores_evidence(sqlite_url: str):
    """Each rule's deferrals: attempts moved (once each, however often) and distinct recipients,
    most first; in the text report and in --json."""
    t0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)

    def moved(reason: DeferralReason, rule: str) -> Deferral:
        return Deferral(reason=reason, rule=rule, moved_from=t0, moved_to=t0 + timedelta(hours=1))

    cap = moved(DeferralReason.FREQUENCY_CAP, "at most 3 calls to a number in 1d")
    law = moved(DeferralReason.COMPLIANCE, "us_florida: 08:00-20:00 local (Fla. Stat.)")
    store = Store.open(sqlite_url)
    try:
        store.enqueue_recipients(
            "deferred", [Recipient(phone=p) for p in P[:3]], workflow_id_for=lambda p: p
        )
        for phone, attempt, deferrals in [
            (P[0], 1, [cap, law]),
            (P[0], 1, [cap]),  # the same attempt again (a retried dial): counted once
            (P[0], 2, [cap]),
            (P[1], 1, [cap]),
            (P[2], 3, [law]),
        ]:
            store.note_next_attempt("deferred", phone, t0, attempt=attempt, deferred=deferrals)
        report = campaign_report(store, "deferred")
    finally:
        store.close()
    assert [(d.reason, d.rule, d.attempts, d.recipients) for d in report.deferrals] == [
        ("frequency_cap", cap.rule, 3, 2),
        ("compliance", law.rule, 2, 2),
    ]
    text = runner.invoke(app, ["report", "deferred", "--database", sqlite_url])
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    at = lines.index("  deferrals by rule (attempts moved, recipients):")
    assert lines[at + 1].split() == ["3", "2", "frequency_cap:", *cap.rule.split()]
    assert lines[at + 2].split() == ["2", "2", "compliance:", *law.rule.split()]
    data = json.loads(
        runner.invoke(app, ["report", "deferred", "--json", "--database", sqlite_url]).stdout
    )
    assert data["deferrals"][0] == {
        "reason": "frequency_cap",
        "rule": cap.rule,
        "attempts": 3,
        "recipients": 2,
    }


def test_build_report_orders_deferrals_most_first():
    """The pure report keeps the store's counts and orders them: most attempts, then by name."""
    report = build_report(
        "c",
        [],
        [],
        [
            DeferralCount("calling_hours", "calling hours 09:00-17:00", 2, 2),
            DeferralCount("frequency_cap", "at most 1 calls to a number in 1d", 5, 4),
            DeferralCount("daily_cap", "max 2 attempts per day", 2, 1),
        ],
    )
    assert [(d.reason, d.attempts, d.recipients) for d in report.deferrals] == [
        ("frequency_cap", 5, 4),
        ("calling_hours", 2, 2),
        ("daily_cap", 2, 1),
    ]


# --- answer rate by local hour of the week ------------------------------------------------------

NY, TOKYO, LONDON = "+12125550710", "+12125550711", "+12125550712"
ZONES = {NY: "America/New_York", TOKYO: "Asia/Tokyo", LONDON: "UTC"}


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)  # 2026-03-02 is a Monday


#: (phone, attempt, outcome, start): New York is UTC-5 (before the 8 March DST change) and Tokyo
#: UTC+9, so each of their calls falls on another weekday locally than in UTC.
CALLS = [
    (NY, 1, N, utc(3, 2, 10)),  # Tue 02:10 UTC = Mon 21:10 in New York
    (NY, 2, N, utc(3, 3, 5)),  # Mon 22:05 in New York
    (NY, 3, C, utc(3, 3, 30)),  # Mon 22:30 in New York
    (TOKYO, 1, B, utc(2, 20, 0)),  # Mon 20:00 UTC = Tue 05:00 in Tokyo
    (TOKYO, 2, C, utc(2, 20, 45)),  # Tue 05:45 in Tokyo
    (LONDON, 1, C, utc(3, 3, 0)),  # Tue 03:00 (UTC)
]
#: (weekday, hour, calls, answered, rate), by hand from the local times above.
HOUR_OF_WEEK = [
    ("monday", 21, 1, 0, 0.0),
    ("monday", 22, 2, 1, 0.5),
    ("tuesday", 3, 1, 1, 1.0),
    ("tuesday", 5, 2, 1, 0.5),
]


def seed_calls(url: str, campaign_id: str = "weekly") -> None:
    """The calls above, written as the workflows write them: each recipient ends completed."""
    store = Store.open(url)
    try:
        store.enqueue_recipients(
            campaign_id,
            [Recipient(phone=p, timezone=z) for p, z in ZONES.items()],
            workflow_id_for=lambda p: p,
        )
        for phone, attempt, outcome, start in CALLS:
            store.finish_attempt(
                key=f"{campaign_id}:{phone}:{attempt}",
                campaign_id=campaign_id,
                phone=phone,
                retry_group_id=f"campaign/{campaign_id}/recipient/{phone}",
                record=AttemptRecord(
                    attempt=attempt,
                    outcome=outcome,
                    started_at=start,
                    ended_at=start + timedelta(seconds=30),
                    call_id=f"call-{phone}-{attempt}",
                ),
                variables={},
                final="completed" if outcome == C else None,
            )
    finally:
        store.close()


def test_answer_rate_by_hour_of_week_is_counted_in_the_recipients_zone():
    """Calls and answers per local (weekday, hour), hand-computed; a call just after midnight UTC
    counts on the previous local weekday in New York, and one in the UTC evening on the next in
    Tokyo. The hour and weekday buckets are the same counts summed."""
    report = build_report(
        "weekly",
        [RecipientRow(p, z, "final", "completed") for p, z in ZONES.items()],
        [AttemptRow(p, n, o.value, t, True) for p, n, o, t in CALLS],
    )
    assert [
        (b.weekday, b.hour, b.calls, b.answered, b.rate) for b in report.answer_rate_by_hour_of_week
    ] == HOUR_OF_WEEK
    assert {h: (b.calls, b.answered) for h, b in report.answer_rate_by_hour.items()} == {
        3: (1, 1),
        5: (2, 1),
        21: (1, 0),
        22: (2, 1),
    }
    assert {d: (b.calls, b.answered) for d, b in report.answer_rate_by_weekday.items()} == {
        "monday": (3, 1),
        "tuesday": (3, 2),
    }
    assert report.connections_per_call == 0.5  # 3 recipients completed / 6 calls placed
    grid = hour_of_week_grid(report.answer_rate_by_hour_of_week)
    assert (grid[0][21], grid[0][22], grid[1][3], grid[1][5]) == (0.0, 0.5, 1.0, 0.5)
    assert sum(rate is not None for row in grid for rate in row) == 4


def test_report_text_shows_the_hour_of_week_heatmap(sqlite_url: str):
    """`redialer report` prints a 7 x 24 heat-map: the answer rate (%) per local weekday and
    hour, '-' where no call was placed."""
    seed_calls(sqlite_url)
    result = runner.invoke(app, ["report", "weekly", "--database", sqlite_url])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any("answer rate (%) by local hour of the week" in line for line in lines)
    (header,) = [line for line in lines if line.strip().startswith("0  1  2")]
    assert header.split() == [str(h) for h in range(24)]
    days = {line[:3]: line.split()[1:] for line in lines if line[:3] in {"Mon", "Tue", "Wed"}}
    expected = {day[:3].title(): ["-"] * 24 for day in ("monday", "tuesday", "wednesday")}
    for weekday, hour, _, _, rate in HOUR_OF_WEEK:
        expected[weekday[:3].title()][hour] = str(min(round(rate * 100), 99))  # 3 wide
    assert days == expected
    assert "from 6 calls placed" in result.stdout and "99: 99 % or more" in result.stdout


def test_report_json_has_the_hour_of_week_buckets(sqlite_url: str):
    """--json lists the buckets with calls only (small), Monday 00:00 first."""
    seed_calls(sqlite_url)
    result = runner.invoke(app, ["report", "weekly", "--json", "--database", sqlite_url])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["answer_rate_by_hour_of_week"] == [
        {"weekday": d, "hour": h, "calls": c, "answered": a, "rate": r}
        for d, h, c, a, r in HOUR_OF_WEEK
    ]
    assert data["connections_per_call"] == 0.5


def test_plot_draws_the_hour_of_week_heatmap(sqlite_url: str, tmp_path: Path):
    """--plot writes one PNG with the charts and a heat-map per campaign (weekday by hour)."""
    pytest.importorskip("matplotlib")
    seed_calls(sqlite_url)
    png = tmp_path / "weekly.png"
    result = runner.invoke(app, ["report", "weekly", "--plot", str(png), "--database", sqlite_url])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    store = Store.open(sqlite_url)
    try:
        report = campaign_report(store, "weekly")
    finally:
        store.close()
    labels = draw_report([report], tmp_path / "again.png")
    assert labels.count("local weekday") == 1
    assert "answered by a person (%); grey: no calls" in labels
    labels = draw_report([report, report], tmp_path / "ab.png")
    assert labels.count("local weekday") == 2  # one heat-map per campaign
