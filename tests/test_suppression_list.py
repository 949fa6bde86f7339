"""The do-not-call list on SQLite and PostgreSQL: `redialer suppress add|remove|list|import`
records who added each number and when, the dial gate refuses every number on it (running
campaigns included), and a registry import is idempotent: twice adds nothing, changes nothing,
and never overwrites an entry already there (an opt-out above all)."""

from __future__ import annotations

import asyncio
import getpass
import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from typer.testing import CliRunner

from redialer.campaign import CampaignSpec
from redialer.outcomes import Outcome
from redialer.payloads import AttemptRecord
from redialer.pseudonyms import Pseudonyms
from redialer.store.store import Store, SuppressionKept
from redialer.store.suppression_import import import_numbers, normalise_number
from redialer.store.tables import SuppressionRow
from starter import campaigns, suppress_commands
from starter.cli import app
from tests import store_fixtures

db = store_fixtures.db
database_url = store_fixtures.database_url

runner = CliRunner()
ADA, BOB, CY, DEE = "+16505550101", "+16505550102", "+16505550103", "+16505550104"


def suppress(url: str, *args: str) -> Any:
    return runner.invoke(app, ["suppress", *args, "--database", url])


def rows(store: Store) -> list[tuple[Any, ...]]:
    """Every entry, every column: what "changes nothing" compares."""
    return [
        (r.phone, r.reason, r.campaign_id, r.created_at, r.source, r.note)
        for r in store.suppression_list(limit=1_000_000)
    ]


def imported(url: str, path: Path, *args: str) -> dict[str, Any]:
    result = suppress(url, "import", str(path), "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# ---- add, remove, list: who and when -------------------------------------------------------------


def test_add_records_who_added_the_number_and_when_and_keeps_the_first_entry(
    database_url: str, db: Store
):
    before = datetime.now(UTC)
    added = suppress(database_url, "add", "6505550101", "--note", "ticket 7")
    after = datetime.now(UTC)
    assert added.exit_code == 0, added.output
    assert f"added {ADA} (manual, by cli:{getpass.getuser()}" in added.stdout
    entry = db.suppression_entry(ADA)
    assert entry is not None
    assert (entry.reason, entry.source, entry.note) == (
        "manual",
        f"cli:{getpass.getuser()}",
        "ticket 7",
    )
    assert before <= entry.created_at <= after

    again = suppress(database_url, "add", ADA, "--reason", "dnc", "--note", "other")
    assert again.exit_code == 0, again.output
    assert f"{ADA} is already on the suppression list" in again.stdout
    assert "kept as it was" in again.stdout
    assert db.suppression_entry(ADA) == entry


def test_a_number_added_with_suppress_add_is_refused_by_the_dial_gate(database_url: str, db: Store):
    """Every dial reads the list (dial_gate): an entry added from the CLI stops the next dial
    of any campaign, and removing it lets it through again."""
    assert db.dial_gate("c1:+16505550101:2", campaign_id="c1", phone=ADA).suppressed is None
    assert suppress(database_url, "add", ADA, "--reason", "dnc").exit_code == 0
    gate = db.dial_gate("c1:+16505550101:2", campaign_id="c1", phone=ADA)
    assert gate.suppressed == "dnc" and gate.recorded is None
    assert db.dial_gate("c9:+16505550101:1", campaign_id="c9", phone=ADA).suppressed == "dnc"
    assert db.dial_gate("c1:+16505550102:1", campaign_id="c1", phone=BOB).suppressed is None
    assert suppress(database_url, "remove", ADA).exit_code == 0
    assert db.dial_gate("c1:+16505550101:3", campaign_id="c1", phone=ADA).suppressed is None


def test_remove_refuses_an_opt_out_without_force_and_says_why(database_url: str, db: Store):
    db.suppress(ADA, "opted_out", "c1")  # as the opt-out activity writes it
    entry = db.suppression_entry(ADA)
    assert entry is not None and entry.source == "opt_out:campaign c1"

    refused = suppress(database_url, "remove", ADA)
    assert refused.exit_code == 2
    assert "the person asked not to be called" in refused.stderr
    assert "--force" in refused.stderr
    assert db.suppression_reason(ADA) == "opted_out"

    forced = suppress(database_url, "remove", ADA, "--force")
    assert forced.exit_code == 0, forced.output
    assert f"removed {ADA} (opted_out, by opt_out:campaign c1" in forced.stdout
    assert db.suppression_entry(ADA) is None

    absent = suppress(database_url, "remove", ADA)
    assert absent.exit_code == 1
    assert f"{ADA} is not on the suppression list" in absent.stderr


def test_list_filters_by_reason_limits_newest_first_and_prints_json(database_url: str, db: Store):
    for phone, reason in [(ADA, "dnc"), (BOB, "manual"), (CY, "dnc"), (DEE, "dnc")]:
        assert suppress(database_url, "add", phone, "--reason", reason).exit_code == 0
    listed = suppress(database_url, "list", "--reason", "dnc", "--json")
    assert listed.exit_code == 0, listed.output
    entries = json.loads(listed.stdout)
    assert [e["phone"] for e in entries] == [DEE, CY, ADA]  # newest first
    assert {e["source"] for e in entries} == {f"cli:{getpass.getuser()}"}
    assert all(datetime.fromisoformat(e["created_at"]).tzinfo is not None for e in entries)

    limited = suppress(database_url, "list", "--limit", "2")
    assert limited.exit_code == 0, limited.output
    lines = limited.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines[:2]] == [DEE, CY]
    assert lines[-1].startswith("2 of 4 number(s) in ") and "(--limit 2; 2 more)" in lines[-1]

    bad = suppress(database_url, "list", "--reason", "spam")
    assert bad.exit_code == 2 and "'spam' is not one of" in bad.output


def test_the_existing_writers_record_their_source(db: Store):
    """Opt-outs and calls that ended DND name their campaign; a caller may name itself."""
    db.suppress(ADA, "opted_out", "c1")
    db.record_final(campaign_id=None, phone=BOB, status="dnd", attempts=1, suppress="dnd")
    now = datetime.now(UTC)
    db.finish_attempt(
        key="c2:+16505550103:1",
        campaign_id="c2",
        phone=CY,
        retry_group_id="g",
        record=AttemptRecord(
            attempt=1, outcome=Outcome.DND, started_at=now, ended_at=now, call_id="x"
        ),
        variables={},
        final="dnd",
        suppress="dnd",
    )
    db.suppress(DEE, "opted_out", "c3", source="call:keypress", note="pressed 9")
    sources = {r.phone: (r.reason, r.source, r.note) for r in db.suppression_list()}
    assert sources == {
        ADA: ("opted_out", "opt_out:campaign c1", None),
        BOB: ("dnd", "call:dnd a single call", None),
        CY: ("dnd", "call:dnd campaign c2", None),
        DEE: ("opted_out", "call:keypress", "pressed 9"),
    }


def test_numbers_are_normalised_and_wrong_input_named(database_url: str, db: Store):
    assert suppress(database_url, "add", "+44 20 7946 0958").exit_code == 0
    assert db.suppression_reason("+442079460958") == "manual"
    assert suppress(database_url, "add", "020 7946 0959", "--region", "GB").exit_code == 0
    assert db.suppression_reason("+442079460959") == "manual"
    bad = suppress(database_url, "add", "12345")
    assert bad.exit_code == 2 and "PHONE '12345': is not a valid number" in bad.stderr
    region = suppress(database_url, "add", "6505550101", "--region", "ZZ")
    assert region.exit_code == 2 and "--region 'ZZ': not a region" in region.stderr


# ---- import -------------------------------------------------------------------------------------


REGISTRY = (
    "phone,name\n"  # 1: a header
    f"{ADA},Ada\n"  # 2
    "6505550102,Bob\n"  # 3: national, read in --region US
    "16505550103,Cy\n"  # 4: national with the trunk prefix
    f"{ADA},Ada again\n"  # 5: repeated in the file
    "not a number,x\n"  # 6: invalid
    ",no number\n"  # 7: invalid (empty first column)
    "\n"  # 8: blank, ignored
    "+1650555,short\n"  # 9: invalid (too short)
    '"(650) 555-0104",quoted\n'  # 10: punctuated and quoted
    '"6505550105,a stray quote\n'  # 11: invalid, and it spoils no line after it
    "6505550106\n"  # 12: no second column
)


def test_import_reads_a_header_duplicates_invalid_lines_and_national_numbers(
    database_url: str, db: Store, tmp_path: Path
):
    path = tmp_path / "registry.csv"
    path.write_bytes(REGISTRY.encode() + b"\xff\xfe650555\n")  # 13: not UTF-8
    report = imported(database_url, path)
    assert (report["added"], report["already"], report["invalid"]) == (5, 1, 5)
    assert report["header"] is True and report["column"] == "1"
    assert report["regional"] == 4 and report["region"] == "US"
    assert [(i["line"], i["value"]) for i in report["invalid_lines"]] == [
        (6, "not a number"),
        (7, ""),
        (9, "+1650555"),
        (11, "6505550105,a stray quote"),  # the cell as CSV reads it
        (13, "\ufffd\ufffd650555"),
    ]
    assert "empty" in report["invalid_lines"][1]["why"]
    phones = {ADA, BOB, CY, DEE, "+16505550106"}
    entries = db.suppression_list()
    assert {e.phone for e in entries} == phones
    assert {(e.reason, e.source, e.note, e.campaign_id) for e in entries} == {
        ("dnc", "import:registry.csv", None, None)
    }
    assert len({e.created_at for e in entries}) == 1  # the import's time
    for phone in phones:
        assert db.dial_gate(f"c1:{phone}:1", campaign_id="c1", phone=phone).suppressed == "dnc"

    text = suppress(database_url, "import", str(path))
    assert text.exit_code == 0, text.output
    assert "  added:          0" in text.stdout
    assert "  invalid lines:  5" in text.stdout
    assert "    line 6: 'not a number': is not a phone number" in text.stdout
    assert "4 number(s) without a country code read as US numbers (--region)" in text.stdout


def test_importing_the_same_file_twice_adds_nothing_and_changes_nothing(
    database_url: str, db: Store, tmp_path: Path
):
    path = tmp_path / "registry.csv"
    path.write_text(REGISTRY)
    first = imported(database_url, path)
    assert first["added"] == 5
    before = rows(db)
    second = imported(database_url, path)
    assert (second["added"], second["already"], second["invalid"]) == (0, 6, 4)
    assert rows(db) == before


def test_a_number_already_suppressed_keeps_its_own_entry_on_import(
    database_url: str, db: Store, tmp_path: Path
):
    """An opt-out, or an operator's entry, is the evidence of why a number is not called: an
    import that lists it again leaves it as it was."""
    db.suppress(ADA, "opted_out", "c1")
    assert suppress(database_url, "add", CY, "--note", "asked by phone").exit_code == 0
    kept = {r[0]: r for r in rows(db)}
    path = tmp_path / "registry.csv"
    path.write_text(REGISTRY)
    report = imported(database_url, path)
    assert (report["added"], report["already"]) == (3, 3)
    now = {r[0]: r for r in rows(db)}
    assert now[ADA] == kept[ADA] and now[ADA][1:2] == ("opted_out",)
    assert now[CY] == kept[CY] and now[CY][1] == "manual"
    assert now[BOB][1] == "dnc"
    refused = suppress(database_url, "remove", ADA)  # still an opt-out
    assert refused.exit_code == 2


def test_import_by_column_name_with_a_source_name(database_url: str, db: Store, tmp_path: Path):
    path = tmp_path / "dnc-2026-12.csv"
    path.write_text("id;x,Number,state\n1,+16505550101,CA\n2,6505550102,CA\n")
    report = imported(
        database_url, path, "--column", "number", "--source", "FTC 2026-12", "--reason", "dnc"
    )
    assert (report["added"], report["invalid"], report["column"]) == (2, 0, "number")
    assert {r.source for r in db.suppression_list()} == {"import:FTC 2026-12"}

    missing = suppress(database_url, "import", str(path), "--column", "phone")
    assert missing.exit_code == 2
    assert "--column 'phone': no such column in the header (line 1)" in missing.stderr
    assert "'id;x', 'Number', 'state'" in missing.stderr
    assert db.suppression_count() == 2

    nothing = tmp_path / "nothing.csv"
    nothing.write_text("phone\nfoo\nbar\n")
    empty = suppress(database_url, "import", str(nothing))
    assert empty.exit_code == 1 and "no valid number in" in empty.stderr


def test_an_import_does_not_bring_back_in_clear_a_number_forget_keeps_as_a_pseudonym(
    database_url: str, tmp_path: Path
):
    pseudonyms = Pseudonyms(key=b"k" * 32)
    store = Store.open(database_url, pseudonyms=pseudonyms)
    try:
        store.suppress(pseudonyms.pseudonym(ADA), "opted_out", "c1")  # what `forget` leaves
        path = tmp_path / "registry.csv"
        path.write_text(f"{ADA}\n{BOB}\n")
        report = import_numbers(store, path)
        assert (report.added, report.already) == (1, 1)
        assert store.suppression_entry(ADA) is not None
        assert {r.phone for r in store.suppression_list()} == {pseudonyms.pseudonym(ADA), BOB}
        entry, added = store.add_suppression(ADA, "manual", source="cli:test")
        assert not added and entry.phone == pseudonyms.pseudonym(ADA)
        # An entry in clear beside it (a writer that does not look) does not unlock the opt-out.
        store.suppress(ADA, "manual", source="cli:test")
        with pytest.raises(SuppressionKept, match="the person asked not to be called"):
            store.remove_suppression(ADA)
        removed = store.remove_suppression(ADA, force=True)
        assert removed is not None and removed.reason == "opted_out"
        assert store.suppression_entry(ADA) is None
    finally:
        store.close()


def test_a_20000_line_import_completes_in_several_batches(database_url: str, tmp_path: Path):
    numbers = [f"+1650{n:07d}" for n in range(2_000_000, 2_020_000)]
    path = tmp_path / "big.csv"
    path.write_text("\n".join(numbers) + "\n")
    store = Store.open(database_url)
    try:
        report = import_numbers(store, path, batch=7_000)
        assert (report.added, report.already, report.invalid) == (20_000, 0, 0)
        assert store.suppression_count(reason="dnc") == 20_000
        again = import_numbers(store, path, batch=7_000)
        assert (again.added, again.already) == (0, 20_000)
    finally:
        store.close()


def _by_the_parser(text: str, region: str) -> str | Exception:
    if text.startswith("00"):  # international, as `normalise_phone` reads it everywhere
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException as exc:
        return exc
    if not phonenumbers.is_valid_number(number):
        return ValueError()
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def test_the_fast_path_for_digits_agrees_with_phonenumbers() -> None:
    """Registry shapes skip the parser: they must come out exactly as the parser says, valid
    area codes or not (unassigned ones, 0/1 first digits, Canada and the Caribbean)."""
    rng = random.Random(5)
    shapes = ["{n}", "1{n}", "+1{n}", "+{n}", "+44{n}", "0{n}"]
    for _ in range(5_000):
        national = f"{rng.randint(0, 9_999_999_999):010d}"
        text = rng.choice(shapes).format(n=national)
        region = rng.choice(["US", "CA", "GB"])
        expected = _by_the_parser(text, region)
        try:
            got: str | Exception = normalise_number(text, region)
        except ValueError as exc:
            got = exc
        if isinstance(expected, str):
            assert got == expected, (text, region)
        else:
            assert isinstance(got, Exception), (text, region, got)


# ---- a running campaign --------------------------------------------------------------------------


@pytest.mark.devserver
async def test_a_number_suppressed_while_its_retry_waits_ends_dnd_without_another_call(
    dev_env, harness_for, sqlite_url: str
):
    """`redialer suppress add` on a running campaign: the pending retry is not dialed (the
    simulator's ledger has one call), the recipient ends `dnd`, the other is unaffected."""
    phone, other = "+13125550301", "+13125550302"
    h = harness_for(
        dev_env,
        {phone: [Outcome.NO_ANSWER, Outcome.COMPLETED], other: [Outcome.BUSY, Outcome.COMPLETED]},
    )
    spec = CampaignSpec.model_validate(
        {
            "campaign_id": f"dnc-{h.task_queue[-8:]}",
            "retry": {"strategy": {"type": "fixed_delay", "delay": 4, "max_retries": 1}},
            "recipients": [{"phone": phone}, {"phone": other}],
        }
    )
    async with h.worker():
        handle = await campaigns.start_campaign(dev_env.client, spec, task_queue=h.task_queue)
        deadline = asyncio.get_running_loop().time() + 30
        while len(h.store.call_records(spec.campaign_id)) < 2:  # both first attempts ended
            assert asyncio.get_running_loop().time() < deadline, "first attempts never ended"
            await asyncio.sleep(0.05)
        await asyncio.to_thread(  # the CLI's own function, as `redialer suppress add` runs it
            suppress_commands.add,
            phone,
            reason=suppress_commands.Reason.DNC,
            note="registry",
            region="US",
            database=sqlite_url,
        )
        result = await asyncio.wait_for(handle.result(), timeout=60)
    assert result.by_status == {"dnd": 1, "completed": 1}
    assert len(h.ledger.dials_for(phone)) == 1  # the retry was never placed
    assert len(h.ledger.dials_for(other)) == 2
    attempts = h.store.attempts_for(
        next(r.retry_group_id for r in h.store.call_records(spec.campaign_id) if r.phone == phone)
    )
    assert [(a.outcome, a.dialed) for a in attempts] == [
        (Outcome.NO_ANSWER, True),
        (Outcome.DND, False),
    ]
    entry = h.store.suppression_entry(phone)
    assert entry is not None and (entry.reason, entry.note) == ("dnc", "registry")
    assert isinstance(entry, SuppressionRow)
