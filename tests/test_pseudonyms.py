"""Personal data stays private: pseudonymous ids in Temporal, and erasure from the store.

Unit tests of the pseudonym itself; a campaign on the dev server whose ids, search attributes and
summaries hold no number while every lookup by number still works; and `forget` on SQLite and
PostgreSQL: no number left in any column, the counts unchanged, an opt-out still refused.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr, ValidationError
from sqlalchemy import select
from sqlmodel import Session, SQLModel
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from redialer.campaign import CampaignPolicy, CampaignSpec
from redialer.dialers.base import idempotency_key
from redialer.dialers.simulated import DialLedger, SimulatedDialer
from redialer.masking import mask_phone
from redialer.outcomes import Outcome
from redialer.payloads import AttemptRecord, RecipientInput
from redialer.pseudonyms import NoPseudonymKey, Pseudonyms, is_pseudonym
from redialer.recipients import Recipient
from redialer.settings import Settings, describe_errors
from redialer.store.dial_intents import DialIntents
from redialer.store.provider_calls import ProviderCalls
from redialer.store.store import ForgetRefused, Store
from redialer.store.tables import CallLineRow, CallSlotRow, DialTicketRow
from starter import campaigns, inspection
from tests import store_fixtures
from worker import build_worker
from workflows import search_attributes as sa
from workflows.ids import recipient_workflow_id
from workflows.recipient import RecipientWorkflow

db = store_fixtures.db
database_url = store_fixtures.database_url

ROOT = Path(__file__).resolve().parent.parent
ADA, BOB = "+16505550199", "+14155550100"
#: ADA's number with one more digit: forgetting ADA must not touch it.
LONGER = ADA + "0"
KEY = "a-pseudonym-key-for-the-tests"


def key_ring(*ids: str) -> SecretStr:
    """`id:base64key,...` with a fixed 32-byte key per id."""
    return SecretStr(
        ",".join(
            f"{i}:{base64.b64encode(hashlib.sha256(i.encode()).digest()).decode()}" for i in ids
        )
    )


def naming(number: str) -> re.Pattern[str]:
    """The number (with or without its +), not followed by another digit."""
    return re.compile(re.escape(number.removeprefix("+")) + r"(?!\d)")


# ---- the pseudonym -------------------------------------------------------------------------------


def test_a_pseudonym_is_a_stable_keyed_hash_of_34_characters():
    one = Pseudonyms(enabled=True, key=KEY.encode())
    expected = "p-" + hmac.new(KEY.encode(), ADA.encode(), hashlib.sha256).hexdigest()[:32]
    assert one.id_for(ADA) == one.id_for(ADA) == expected
    assert len(expected) == 34 and is_pseudonym(expected)
    assert one.id_for(BOB) != one.id_for(ADA)
    other = Pseudonyms(enabled=True, key=b"another-key-of-sixteen-or-more")
    assert other.id_for(ADA) != one.id_for(ADA)
    assert one.shown(ADA) == mask_phone(ADA) == "+1650•••0199"
    assert "0199" in one.shown(ADA) and ADA not in one.shown(ADA)


def test_off_the_number_is_itself_everywhere():
    off = Pseudonyms.from_settings(Settings())
    assert not off.enabled and not off.has_key
    assert off.id_for(ADA) == ADA and off.shown(ADA) == ADA
    with pytest.raises(NoPseudonymKey, match="REDIALER_PSEUDONYM_KEY"):
        off.pseudonym(ADA)
    # Off by choice, with a key: ids hold the number, `forget` can still hash it.
    chosen = Pseudonyms.from_settings(
        Settings(pseudonymize=False, pseudonym_key=SecretStr(KEY))  # type: ignore[call-arg]
    )
    assert chosen.id_for(ADA) == ADA and is_pseudonym(chosen.pseudonym(ADA))


def test_on_with_encryption_keys_and_derived_from_the_last_one():
    """A rotation puts the new key first: the last one, and so every id, stays."""
    before = Pseudonyms.from_settings(Settings(encryption_keys=key_ring("k1")))
    rotated = Pseudonyms.from_settings(Settings(encryption_keys=key_ring("k2", "k1")))
    reordered = Pseudonyms.from_settings(Settings(encryption_keys=key_ring("k1", "k2")))
    assert before.enabled and rotated.enabled
    assert before.id_for(ADA) == rotated.id_for(ADA) != reordered.id_for(ADA)
    material = hashlib.sha256(b"k1").digest()
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"redialer pseudonyms v1"
    ).derive(material)
    assert before.id_for(ADA) == Pseudonyms(enabled=True, key=derived).id_for(ADA)
    # The pseudonym key wins over the derived one; REDIALER_PSEUDONYMIZE=false turns them off.
    own = Settings(encryption_keys=key_ring("k1"), pseudonym_key=SecretStr(KEY))  # type: ignore[call-arg]
    assert Pseudonyms.from_settings(own).id_for(ADA) == Pseudonyms(True, KEY.encode()).id_for(ADA)
    off = Settings(encryption_keys=key_ring("k1"), pseudonymize=False)  # type: ignore[call-arg]
    assert Pseudonyms.from_settings(off).id_for(ADA) == ADA


def test_settings_refuse_a_short_key_and_pseudonyms_without_any_key():
    secret = "short-secret"
    with pytest.raises(ValidationError) as short:
        Settings(pseudonym_key=SecretStr(secret))  # type: ignore[call-arg]
    [line] = describe_errors(short.value)
    assert "REDIALER_PSEUDONYM_KEY" in line and "16" in line and secret not in line
    with pytest.raises(ValidationError) as keyless:
        Settings(pseudonymize=True)  # type: ignore[call-arg]
    [line] = describe_errors(keyless.value)
    assert "REDIALER_PSEUDONYM_KEY" in line and "REDIALER_ENCRYPTION_KEYS" in line
    assert Settings(pseudonymize=True, pseudonym_key=SecretStr(KEY)).pseudonymize  # type: ignore[call-arg]
    assert Settings(pseudonymize=True, encryption_keys=key_ring("k1")).pseudonymize  # type: ignore[call-arg]


# ---- a campaign on the dev server ---------------------------------------------------------------


def _texts(payloads: list[Payload]) -> list[str]:
    """Each payload's text: JSON decoded (a masked number's dots are escaped in JSON)."""
    texts = []
    for p in payloads:
        raw = p.data.decode(errors="replace")
        texts.append(str(json.loads(raw)) if p.metadata.get("encoding") == b"json/plain" else raw)
    return texts


def metadata_texts(event: HistoryEvent) -> list[str]:
    """What the event shows in clear outside payloads: its summary and details, and the search
    attributes it sets."""
    shown: list[Payload] = []
    if event.HasField("user_metadata"):
        shown += [event.user_metadata.summary, event.user_metadata.details]
    started = event.workflow_execution_started_event_attributes
    upserted = event.upsert_workflow_search_attributes_event_attributes
    shown += list(started.search_attributes.indexed_fields.values())
    shown += list(upserted.search_attributes.indexed_fields.values())
    return _texts(shown)


async def shown_in_temporal(client: Client, workflow_id: str) -> list[str]:
    """The id, the search attributes, the static summary and details, the current details, and
    every event's user metadata and search attributes of one workflow."""
    handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(workflow_id)
    description = await handle.describe()
    texts = [workflow_id, str(description.typed_search_attributes)]
    texts += [await description.static_summary() or "", await description.static_details() or ""]
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    texts.append(metadata.current_details)
    async for event in handle.fetch_history_events():
        texts += metadata_texts(event)
    return texts


async def until(check: Any, timeout: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := await check()):
        assert asyncio.get_running_loop().time() < deadline, "condition never met"
        await asyncio.sleep(0.2)
    return value


@pytest.fixture
def private_store(sqlite_url: str) -> Iterator[Store]:
    opened = Store.open(sqlite_url, pseudonyms=Pseudonyms(enabled=True, key=KEY.encode()))
    yield opened
    opened.close()


@pytest.mark.devserver
async def test_a_pseudonymized_campaign_shows_no_number_in_temporal_yet_is_found_by_it(
    dev_env: WorkflowEnvironment, private_store: Store, sqlite_url: str
):
    """ADA answers; BOB is busy and waits ten minutes for his retry, is looked up by his number
    (live), then opted out by it. Ids, RecipientPhone, summaries and details hold pseudonyms or
    masked numbers; `history` finds both by number; the opt-out reaches BOB's workflow."""
    client, store = dev_env.client, private_store
    queue = f"private-{uuid.uuid4().hex[:8]}"
    settings = Settings(  # type: ignore[call-arg]
        task_queue=queue, pseudonymize=True, pseudonym_key=SecretStr(KEY)
    )
    p = Pseudonyms.from_settings(settings)
    dialer = SimulatedDialer(
        ledger=DialLedger(store),
        script={ADA: [Outcome.COMPLETED], BOB: [Outcome.BUSY, Outcome.COMPLETED]},
        instant=True,
    )
    campaign_id = f"private-{uuid.uuid4().hex[:8]}"
    spec = CampaignSpec.model_validate(
        {
            "campaign_id": campaign_id,
            "timezone": "UTC",
            "retry": {"strategy": {"type": "fixed_delay", "delay": 600, "max_retries": 1}},
            "recipients": [
                {"phone": ADA, "variables": {"name": "Ada"}},
                {"phone": BOB, "variables": {"name": "Bob"}},
            ],
        }
    )
    ids = {phone: recipient_workflow_id(campaign_id, p.pseudonym(phone)) for phone in (ADA, BOB)}
    async with build_worker(
        client, settings=settings, store=store, dialer=dialer, task_queue=queue
    ):
        handle = await campaigns.start_campaign(client, spec, task_queue=queue)

        async def bob_waits() -> bool:
            try:
                h = await campaigns.history(client, campaign_id, BOB, pseudonyms=p)  # by number
            except RPCError:  # not started yet
                return False
            return h.status == "scheduled" and len(h.attempts) == 1

        await until(bob_waits)
        live = await campaigns.history(client, campaign_id, BOB, pseudonyms=p)
        assert live.phone == BOB and live.retry_group_id == ids[BOB]
        answer = await inspection.history(
            client, campaign_id, BOB, database=sqlite_url, pseudonyms=p
        )
        assert answer.source is inspection.Source.LIVE and answer.value.phone == BOB
        bob_shows = await shown_in_temporal(client, ids[BOB])

        await campaigns.opt_out(client, campaign_id, BOB)  # by number, as the CLI sends it
        result = await asyncio.wait_for(handle.result(), 60)
        assert result.by_status == {"completed": 1, "opted_out": 1}
        bob = await client.get_workflow_handle_for(RecipientWorkflow.run, ids[BOB]).result()
        assert bob.status.value == "opted_out"  # the opt-out reached the pseudonymous id
        ada_shows = await shown_in_temporal(client, ids[ADA])

        call = await campaigns.start_single_call(
            client,
            Recipient(phone=ADA),
            CampaignPolicy.model_validate({"timezone": "UTC"}),
            task_queue=queue,
            pseudonyms=p,
        )
        await asyncio.wait_for(call.result(), 60)
        call_shows = await shown_in_temporal(client, call.id)

        # Started by another client without search attributes: it sets RecipientPhone itself.
        bare = await client.start_workflow(
            RecipientWorkflow.run,
            RecipientInput(
                phone=ADA,
                zone="UTC",
                policy=CampaignPolicy.model_validate({"timezone": "UTC"}).model_dump(mode="json"),
                phone_key=p.pseudonym(ADA),
                display=mask_phone(ADA),
            ),
            id=f"call/{uuid.uuid4()}",
            task_queue=queue,
        )
        await asyncio.wait_for(bare.result(), 60)
        bare_shows = await shown_in_temporal(client, bare.id)
        described = await bare.describe()
        assert described.typed_search_attributes.get(sa.RECIPIENT_PHONE) == p.pseudonym(ADA)

    # Listed by campaign: ids and RecipientPhone hold pseudonyms.
    async def listed() -> list[Any]:
        found = [w async for w in client.list_workflows(f'CampaignId="{campaign_id}"')]
        return found if len(found) == 3 else []

    executions = await until(listed)
    recipients = {w.id: w.typed_search_attributes.get(sa.RECIPIENT_PHONE) for w in executions}
    recipients.pop(f"campaign/{campaign_id}")
    assert recipients == {ids[ADA]: p.pseudonym(ADA), ids[BOB]: p.pseudonym(BOB)}
    by_phone = [w.id async for w in client.list_workflows(f'RecipientPhone="{p.id_for(ADA)}"')]
    assert ids[ADA] in by_phone  # `redialer pseudonym`'s query finds it

    # Summaries and details: masked; nothing anywhere outside payloads holds a number.
    description = await client.get_workflow_handle(ids[ADA]).describe()
    assert await description.static_summary() == f"+1650•••0199 in campaign {campaign_id}"
    assert any(f"dial {mask_phone(BOB)} attempt 1" == t for t in bob_shows)
    assert any(f"**{mask_phone(BOB)}** attempt 2" in t for t in bob_shows)  # current details
    assert any(f"**{mask_phone(ADA)}** final: completed" in t for t in ada_shows)
    assert call.id.startswith(f"call/{p.pseudonym(ADA)}/")
    assert f"call {mask_phone(ADA)}" in call_shows
    for texts in (ada_shows, bob_shows, call_shows, bare_shows):
        leaked = [t for t in texts if naming(ADA).search(t) or naming(BOB).search(t)]
        assert not leaked, leaked

    # After the end the store answers by number (no live query on a closed workflow).
    answer = await inspection.history(client, campaign_id, ADA, database=sqlite_url, pseudonyms=p)
    assert answer.source is inspection.Source.STORE
    assert answer.value.status == "completed" and len(answer.value.attempts) == 1

    # And the real rows of the run are forgotten completely; BOB's opt-out stays.
    store.forget(ADA)
    store.forget(BOB)
    assert not number_in_store(store, ADA) and not number_in_store(store, BOB)
    assert store.dial_gate("c9:x:1", campaign_id="c9", phone=BOB).suppressed == "opted_out"


# ---- forget -------------------------------------------------------------------------------------


def number_in_store(store: Store, number: str) -> list[tuple[str, str, Any]]:
    """(table, column, value) for every value in every column of every table naming `number`."""
    found = []
    pattern = naming(number)
    SQLModel.metadata.reflect(store.engine)
    with store.engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            for row in connection.execute(select(table)).mappings():
                for column, value in row.items():
                    if value is not None and pattern.search(str(value)):
                        found.append((table.name, column, value))
    return found


def _attempt(n: int, outcome: Outcome) -> AttemptRecord:
    start = datetime(2026, 11, 24, 15, 0, tzinfo=UTC) + timedelta(hours=n)
    return AttemptRecord(
        attempt=n,
        outcome=outcome,
        started_at=start,
        ended_at=start + timedelta(seconds=30),
        call_id=f"CA{n:032d}",
    )


def _a_store_with_ada_everywhere(store: Store) -> None:
    """ADA in two campaigns (reached in c1, opted out in c2), a single call, and every ledger;
    BOB and LONGER beside her in c1."""
    recipients = [
        Recipient(phone=ADA, variables={"name": "Ada", "callback": ADA}, metadata={"crm": "A-1"}),
        Recipient(phone=BOB, variables={"name": "Bob"}),
        Recipient.model_construct(phone=LONGER, timezone=None, variables={}, metadata={}),
    ]

    def workflow_id_for(campaign: str) -> Any:
        return lambda phone: recipient_workflow_id(campaign, phone)

    store.enqueue_recipients("c1", recipients, workflow_id_for=workflow_id_for("c1"))
    store.enqueue_recipients("c2", recipients[:1], workflow_id_for=workflow_id_for("c2"))
    store.mark_started("c1", [ADA, BOB, LONGER])
    store.mark_started("c2", [ADA])
    for phone, outcomes in {
        ADA: [Outcome.BUSY, Outcome.COMPLETED],
        BOB: [Outcome.NO_ANSWER],
        LONGER: [Outcome.COMPLETED],
    }.items():
        for n, outcome in enumerate(outcomes, 1):
            final = outcome.value if outcome is Outcome.COMPLETED else None
            store.finish_attempt(
                key=idempotency_key("c1", phone, n),
                campaign_id="c1",
                phone=phone,
                retry_group_id=recipient_workflow_id("c1", phone),
                record=_attempt(n, outcome),
                variables={"name": "Ada", "callback": phone},
                final=final,
            )
    store.record_final(campaign_id="c1", phone=BOB, status="all_retries_exhausted", attempts=1)
    store.record_final(
        campaign_id="c2", phone=ADA, status="opted_out", attempts=0, suppress="opted_out"
    )
    single = f"call/{ADA}/{uuid.uuid4()}"
    single_key = idempotency_key(single, ADA, 1)
    store.finish_attempt(
        key=single_key,
        campaign_id=None,
        phone=ADA,
        retry_group_id=single,
        record=_attempt(1, Outcome.VOICEMAIL),
        variables={"name": "Ada"},
    )
    key = idempotency_key("c1", ADA, 2)
    DialIntents(store).begin(key, phone=ADA, attempt=2)
    DialIntents(store).begin(single_key, phone=ADA, attempt=1)
    DialIntents(store).begin(idempotency_key("c1", LONGER, 1), phone=LONGER, attempt=1)
    ProviderCalls(store).placed(
        call_sid="CA" + "1" * 32,
        key=key,
        status="completed",
        created_at=datetime.now(UTC),
        answer_twiml=f"<Response><Say>Hello Ada, is {ADA} yours?</Say></Response>",
        voicemail_twiml="<Response><Say>Call us back, Ada</Say></Response>",
    )
    now = datetime.now(UTC)
    with Session(store.engine) as session:
        session.add(CallSlotRow(campaign_id="c1", slot=1, holder=key, expires_at=now))
        session.add(CallLineRow(campaign_id="c1", holder=key, seq=1, due_at=now))
        session.add(DialTicketRow(campaign_id="c1", window=1, ticket=1, holder=key))
        session.commit()


def _statistics(store: Store) -> dict[str, Any]:
    """Everything the reports count, per campaign."""
    stats: dict[str, Any] = {}
    for campaign in ("c1", "c2"):
        recipients, records = store.report_rows(campaign)
        stats[campaign] = (
            store.recipient_counts(campaign),
            store.calls_placed(campaign),
            sorted((state, status) for _, _, state, status in recipients),
            sorted(
                (attempt, outcome, str(at), dialed) for _, attempt, outcome, at, dialed in records
            ),
        )
    return stats


def test_forget_erases_the_number_from_every_column_and_keeps_counts_and_the_opt_out(
    db: Store, database_url: str
):
    p = Pseudonyms(enabled=False, key=KEY.encode())  # off: ids hold the number, forget hashes
    store = Store(database_url, pseudonyms=p)
    try:
        _a_store_with_ada_everywhere(store)
        before = _statistics(store)
        assert number_in_store(store, ADA)
        longer_before = number_in_store(store, LONGER)

        result = store.forget(ADA)

        assert number_in_store(store, ADA) == []
        assert number_in_store(store, LONGER) == longer_before  # a longer number is not ADA
        assert _statistics(store) == before
        assert result.phone_key == p.pseudonym(ADA)
        assert (result.recipients, result.call_records, result.suppressed) == (2, 3, "opted_out")
        assert recipient_workflow_id("c1", ADA) in result.workflow_ids  # what Temporal keeps
        forgotten = [
            r
            for c in ("c1", "c2")
            for r in store.recipients_for_export(c)
            if r.phone == p.pseudonym(ADA)
        ]
        assert len(forgotten) == 2 and all(r.variables == r.extra == {} for r in forgotten)
        records = [r for c in ("c1",) for r in store.call_records(c) if r.phone == p.pseudonym(ADA)]
        assert [(r.attempt, r.outcome, r.variables) for r in records] == [
            (1, "busy", {}),
            (2, "completed", {}),
        ]
        # The opt-out survives as the pseudonym: ADA is refused in any later campaign.
        assert store.dial_gate("c3:x:1", campaign_id="c3", phone=ADA).suppressed == "opted_out"
        assert store.suppression_reason(ADA) == "opted_out"
        assert store.dial_gate("c3:y:1", campaign_id="c3", phone=BOB).suppressed is None
        keyless = Store(database_url, pseudonyms=Pseudonyms())
        try:  # only the key ties the pseudonym to the number
            assert keyless.suppression_reason(ADA) is None
        finally:
            keyless.close()
        assert not store.forget(ADA).found  # nothing left to forget
    finally:
        store.close()


def test_forget_refuses_without_a_key_and_while_the_number_may_still_be_called(store: Store):
    keyless = Store(str(store.engine.url), pseudonyms=Pseudonyms())
    try:
        with pytest.raises(NoPseudonymKey, match="REDIALER_PSEUDONYM_KEY"):
            keyless.forget(ADA)
    finally:
        keyless.close()
    keyed = Store(str(store.engine.url), pseudonyms=Pseudonyms(key=KEY.encode()))
    try:
        keyed.enqueue_recipients(
            "c1", [Recipient(phone=ADA)], workflow_id_for=lambda p: recipient_workflow_id("c1", p)
        )
        with pytest.raises(ForgetRefused, match="c1.*opt it out"):
            keyed.forget(ADA)
        assert keyed.recipient_counts("c1") == {"queued": 1}  # nothing changed
    finally:
        keyed.close()


def _cli(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "redialer"), *args],
        env={"PATH": "/usr/bin:/bin", "REDIALER_DATABASE_URL": database_url, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_the_forget_and_pseudonym_commands(sqlite_url: str):
    store = Store.open(sqlite_url, pseudonyms=Pseudonyms(key=KEY.encode()))
    try:
        _a_store_with_ada_everywhere(store)
    finally:
        store.close()
    refused = _cli(sqlite_url, "forget", ADA, "--yes")
    assert refused.returncode == 1 and "REDIALER_PSEUDONYM_KEY" in refused.stderr
    done = _cli(sqlite_url, "forget", ADA, "--yes", REDIALER_PSEUDONYM_KEY=KEY)
    assert done.returncode == 0, done.stderr
    pseudonym = Pseudonyms(key=KEY.encode()).pseudonym(ADA)
    assert f"now names it {pseudonym}" in done.stdout
    assert "suppression kept under the pseudonym: opted_out" in done.stdout
    assert "retention period" in done.stdout and recipient_workflow_id("c1", ADA) in done.stdout
    shown = _cli(
        sqlite_url,
        "pseudonym",
        ADA,
        "--campaign",
        "c1",
        REDIALER_PSEUDONYM_KEY=KEY,
        REDIALER_PSEUDONYMIZE="true",
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == pseudonym
    assert f'RecipientPhone="{pseudonym}"' in shown.stdout
    assert recipient_workflow_id("c1", pseudonym) in shown.stdout
