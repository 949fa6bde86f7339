"""Real calls through Twilio, end to end: the real worker (its own process) with the Twilio
dialer, the real `redialer api` (its own process) taking signed status callbacks, the real dev
server, and a fake of Twilio's REST API and callbacks (tests/fake_twilio.py) that counts the
calls it created and checks every request against Twilio's published OpenAPI description.

The test plays the phone network: for each call the fake creates it sends the scripted
callbacks (normal, duplicated, out of order, forged, lost, late).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select
from temporalio.testing import WorkflowEnvironment

from redialer.campaign import CampaignSpec
from redialer.store.provider_calls import ProviderCalls
from redialer.store.store import Store
from redialer.store.tables import ProviderCallbackRow
from starter import campaigns
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.fault_helpers import WorkerProcess, bad_log_lines, free_port, start_api, until
from workflows.ids import recipient_workflow_id

pytestmark = pytest.mark.devserver

CALLER = "+15550009999"
Play = Callable[[FakeTwilio, str], Awaitable[list[int]]]


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as running:
        yield running


class Service:
    """`redialer api` and the workers' environment, pointed at the fake Twilio."""

    def __init__(self, fake: FakeTwilio, env: WorkflowEnvironment, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = f"sqlite:///{tmp / 'calls.db'}"
        self.task_queue = f"twilio-{os.urandom(4).hex()}"
        self.tmp = tmp
        self.env = {
            **os.environ,
            "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "REDIALER_TASK_QUEUE": self.task_queue,
            "REDIALER_DATABASE_URL": self.database_url,
            "REDIALER_DIALER": "twilio",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "REDIALER_CALLER_ID": CALLER,
            "REDIALER_PUBLIC_URL": self.url,
            "REDIALER_TWILIO_API_URL": fake.url,
            "REDIALER_CALLBACK_TIMEOUT": "2",
            "REDIALER_LOG_FORMAT": "json",
            "REDIALER_GRACEFUL_SHUTDOWN": "5",
        }
        self.store = Store.open(self.database_url)
        self.log = tmp / "api.log"
        self.api = start_api(self.env, self.port, self.log)

    async def ready(self) -> None:
        async def up() -> bool:
            try:
                async with httpx.AsyncClient() as http:
                    return (await http.get(f"{self.url}/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        for _ in range(600):
            if await up():
                return
            assert self.api.poll() is None, self.log.read_text()
            await asyncio.sleep(0.1)
        raise AssertionError("redialer api never answered")

    def worker(self, name: str) -> WorkerProcess:
        return WorkerProcess(self.env, self.tmp / f"{name}.log").start()

    def close(self) -> None:
        self.api.terminate()
        self.api.wait(timeout=30)
        self.store.close()


@pytest.fixture
def service(fake: FakeTwilio, dev_env: WorkflowEnvironment, tmp_path: Path) -> Iterator[Service]:
    running = Service(fake, dev_env, tmp_path)
    yield running
    running.close()


class Network:
    """The phone network: plays each number's script, one play per call the fake creates."""

    def __init__(self, fake: FakeTwilio, plays: dict[str, list[Play]]) -> None:
        self.fake = fake
        self.plays = plays
        self.codes: dict[str, list[list[int]]] = {}
        self._seen: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        while True:
            for sid, call in list(self.fake.calls.items()):
                if sid in self._seen:
                    continue
                self._seen.add(sid)
                played = self.codes.setdefault(call.to, [])
                script = self.plays[call.to][len(played)]
                played.append([])
                self._tasks.append(asyncio.create_task(self._play(script, sid, played[-1])))
            await asyncio.sleep(0.05)

    async def _play(self, script: Play, sid: str, codes: list[int]) -> None:
        codes.extend(await script(self.fake, sid))


def normal(outcome: str = "completed", **script: object) -> Play:
    return lambda fake, sid: fake.normal(sid, outcome, **script)


async def duplicated(fake: FakeTwilio, sid: str) -> list[int]:
    return await fake.duplicated(sid, "completed")


async def out_of_order(fake: FakeTwilio, sid: str) -> list[int]:
    return await fake.out_of_order(sid, "completed")


async def forged_then_real(fake: FakeTwilio, sid: str) -> list[int]:
    callbacks = fake.advance(sid, fake.script(sid, "completed"))
    return await fake.deliver(callbacks, forge=True) + await fake.deliver(callbacks)


async def lost_final(fake: FakeTwilio, sid: str) -> list[int]:
    return await fake.lost(sid, "busy", deliver_first=1)


LATE: dict[str, list[object]] = {}


async def late_no_answer(fake: FakeTwilio, sid: str) -> list[int]:
    LATE.setdefault(sid, []).append(fake.late(sid, "no-answer"))
    return []


def policy_json(**extra: object) -> dict[str, object]:
    return {
        "retry": {"strategy": {"type": "fixed_delay", "delay": 1, "max_retries": 2}},
        "call": {"twiml": "<Response><Say>Hello {{name}}</Say></Response>", "ring_timeout": 25},
        **extra,
    }


async def test_a_campaign_through_twilio_with_every_callback_sequence(
    fake: FakeTwilio, service: Service, dev_env: WorkflowEnvironment
):
    """Normal, busy then answered, duplicated, out of order, forged, lost and late callbacks,
    an invalid number and a 503 on create: every recipient ends as its calls did, Twilio
    created exactly one call per (number, attempt), and every request matched Twilio's spec."""
    numbers = {
        "normal": "+12125550101",
        "busy_then_answered": "+12125550102",
        "duplicated": "+12125550103",
        "out_of_order": "+12125550104",
        "forged": "+12125550105",
        "lost": "+12125550106",
        "late": "+12125550107",
        "invalid": "+12125550108",
        "unavailable_once": "+12125550109",
    }
    plays: dict[str, list[Play]] = {
        numbers["normal"]: [normal()],
        numbers["busy_then_answered"]: [normal("busy"), normal()],
        numbers["duplicated"]: [duplicated],
        numbers["out_of_order"]: [out_of_order],
        numbers["forged"]: [forged_then_real],
        numbers["lost"]: [lost_final, normal()],
        numbers["late"]: [late_no_answer, normal()],
        numbers["unavailable_once"]: [normal()],
    }
    fake.fail_create(numbers["invalid"], status=400, code=21211)
    fake.fail_create(numbers["unavailable_once"], status=503, code=None, times=1)
    await service.ready()
    network = Network(fake, plays)
    playing = asyncio.create_task(network.run())
    worker = service.worker("worker")
    spec = CampaignSpec.model_validate(
        {
            "campaign_id": f"twilio-{service.task_queue[-8:]}",
            **policy_json(),
            "recipients": [{"phone": p, "variables": {"name": n}} for n, p in numbers.items()],
        }
    )
    client = dev_env.client
    try:
        handle = await campaigns.start_campaign(client, spec, task_queue=service.task_queue)
        # The late callbacks of the `late` number's first call go once that attempt has ended
        # (Twilio was asked, it said no-answer): they must change nothing.
        late_sid: str = await until(lambda: next(iter(LATE), ""), "the late number's first call")
        await until(
            lambda: service.store.call_records_for(
                recipient_workflow_id(spec.campaign_id, numbers["late"])
            ),
            "the late number's first attempt recorded",
        )
        late_codes = await LATE[late_sid][0].deliver()  # type: ignore[attr-defined]
        result = await asyncio.wait_for(handle.result(), timeout=180)
    finally:
        playing.cancel()
        assert worker.stop() == 0
    records = {
        name: [
            (r.attempt, r.outcome)
            for r in service.store.call_records_for(recipient_workflow_id(spec.campaign_id, phone))
        ]
        for name, phone in numbers.items()
    }
    assert records == {
        "normal": [(1, "completed")],
        "busy_then_answered": [(1, "busy"), (2, "completed")],
        "duplicated": [(1, "completed")],
        "out_of_order": [(1, "completed")],
        "forged": [(1, "completed")],
        "lost": [(1, "busy"), (2, "completed")],  # Twilio, asked after the timeout, said busy
        "late": [(1, "no_answer"), (2, "completed")],
        "invalid": [(1, "invalid_number")],
        "unavailable_once": [(1, "completed")],
    }
    assert result.by_status == {"completed": 8, "invalid_number": 1}
    # Exactly one call per (number, attempt), counted by Twilio (the fake), not by redialer.
    created = fake.created_per_to()
    attempts = Counter({numbers[n]: len(r) for n, r in records.items() if n != "invalid"})
    assert created == attempts
    # Forged callbacks were refused (403) and recorded nothing; duplicates and the late ones
    # were answered 2xx and changed nothing.
    forged_codes = network.codes[numbers["forged"]][0]
    assert forged_codes[: len(forged_codes) // 2] == [403] * (len(forged_codes) // 2)
    assert all(c == 204 for c in forged_codes[len(forged_codes) // 2 :])
    assert all(c == 204 for c in network.codes[numbers["duplicated"]][0])
    assert late_codes and all(c == 204 for c in late_codes)
    with Session(service.store.engine) as session:
        taken = session.exec(select(ProviderCallbackRow)).all()
    assert len({(c.call_sid, c.sequence_number) for c in taken}) == len(taken)
    calls = ProviderCalls(service.store)
    late_call = calls.get(late_sid)
    assert late_call is not None and late_call.outcome == "no_answer"
    # A retried call costs at most 15 history events on the Twilio path.
    history = await client.get_workflow_handle(
        recipient_workflow_id(spec.campaign_id, numbers["busy_then_answered"])
    ).fetch_history()
    assert len(history.events) <= 2 * 15, len(history.events)
    assert not bad_log_lines([service.tmp / "worker.log"])
    fake.assert_contract()


async def test_machine_answers_get_the_voicemail_message_and_end_voicemail(
    fake: FakeTwilio, service: Service, dev_env: WorkflowEnvironment
):
    """With machine detection and a voicemail message, the service tells Twilio to leave the
    message (with the recipient's name) when a machine answers and to play the call's TwiML to
    a person; the machine's attempt records that a message was left and ends `voicemail`."""
    person, machine = "+13125550111", "+13125550112"
    answered: dict[str, str] = {}

    def answering(by: str, outcome: str) -> Play:
        async def play(fake: FakeTwilio, sid: str) -> list[int]:
            answered[fake.call(sid).to] = await fake.answer(sid, by)
            return await fake.normal(sid, outcome, answered_by=by)

        return play

    await service.ready()
    network = Network(
        fake,
        {
            person: [answering("human", "completed")],
            machine: [answering("machine_end_beep", "completed")],
        },
    )
    playing = asyncio.create_task(network.run())
    worker = service.worker("worker")
    call = {
        "twiml": "<Response><Say>Hello {{name}}</Say></Response>",
        "machine_detection": True,
        "voicemail_message": "<Response><Say>Sorry we missed you, {{name}}</Say></Response>",
    }
    spec = CampaignSpec.model_validate(
        {
            "campaign_id": f"amd-{service.task_queue[-8:]}",
            **policy_json(call=call),
            "recipients": [
                {"phone": person, "variables": {"name": "Ada & Co"}},
                {"phone": machine, "variables": {"name": "Grace"}},
            ],
        }
    )
    try:
        handle = await campaigns.start_campaign(dev_env.client, spec, task_queue=service.task_queue)
        result = await asyncio.wait_for(handle.result(), timeout=120)
    finally:
        playing.cancel()
        assert worker.stop() == 0
    assert result.by_status == {"completed": 1, "voicemail_final": 1}
    assert answered[person] == "<Response><Say>Hello Ada &amp; Co</Say></Response>"
    assert answered[machine] == "<Response><Say>Sorry we missed you, Grace</Say></Response>"
    [left] = service.store.call_records_for(recipient_workflow_id(spec.campaign_id, machine))
    assert (left.outcome, left.message_left) == ("voicemail", True)
    [spoke] = service.store.call_records_for(recipient_workflow_id(spec.campaign_id, person))
    assert (spoke.outcome, spoke.message_left) == ("completed", False)
    created = [c for c in fake.calls.values()]
    assert {c.param("MachineDetection") for c in created} == {"DetectMessageEnd"}
    fake.assert_contract()


async def test_a_person_who_presses_the_opt_out_digit_is_never_called_again(
    fake: FakeTwilio, service: Service, dev_env: WorkflowEnvironment
):
    """`opt_out_digit`: the person presses 9 during the call; `redialer api` puts the number on
    the suppression list at once, the attempt ends as the call did (`completed`), and a later
    campaign to the same number ends it `opted_out` without a call."""
    phone = "+16175550151"
    pressed: list[tuple[int, str]] = []

    async def opts_out(fake: FakeTwilio, sid: str) -> list[int]:
        pressed.append(await fake.press(sid, "9"))
        return await fake.normal(sid, "completed")

    await service.ready()
    network = Network(fake, {phone: [opts_out]})
    playing = asyncio.create_task(network.run())
    worker = service.worker("worker")
    call = {"twiml": "<Response><Say>Hello {{name}}</Say></Response>", "opt_out_digit": "9"}

    def campaign(name: str) -> CampaignSpec:
        return CampaignSpec.model_validate(
            {
                "campaign_id": f"{name}-{service.task_queue[-8:]}",
                **policy_json(call=call),
                "recipients": [{"phone": phone, "variables": {"name": "Ada"}}],
            }
        )

    first, second = campaign("first"), campaign("second")
    try:
        for spec, ended in ((first, {"completed": 1}), (second, {"opted_out": 1})):
            handle = await campaigns.start_campaign(
                dev_env.client, spec, task_queue=service.task_queue
            )
            assert (await asyncio.wait_for(handle.result(), timeout=120)).by_status == ended
    finally:
        playing.cancel()
        assert worker.stop() == 0
    [sid] = fake.calls
    assert [code for code, _ in pressed] == [200]
    entry = service.store.suppression_entry(phone)
    assert entry is not None and entry.reason == "opted_out"
    assert entry.source == f"keypress 9 during call {sid} (campaign {first.campaign_id})"
    assert fake.created_per_to() == Counter({phone: 1})
    fake.assert_contract()


async def test_a_worker_killed_after_twilio_created_the_call_adopts_it(
    fake: FakeTwilio, service: Service, dev_env: WorkflowEnvironment
):
    """SIGKILL between create-call and anything redialer heard of the call (Twilio placed it,
    its response never arrived): the next worker finds the call at Twilio, adopts it, and the
    recipient ends as that call did; Twilio created one call."""
    phone = "+14155550121"
    fake.fail_create(phone, status=503, code=None, times=1, after_create=True)
    await service.ready()
    first = service.worker("first")
    spec = CampaignSpec.model_validate(
        {
            "campaign_id": f"kill-{service.task_queue[-8:]}",
            **policy_json(),
            "recipients": [{"phone": phone, "variables": {"name": "Lin"}}],
        }
    )
    handle = await campaigns.start_campaign(dev_env.client, spec, task_queue=service.task_queue)
    sid: str = await until(lambda: next(iter(fake.calls), ""), "Twilio created the call")
    first.kill()  # the create's answer was lost; now the worker is gone too
    second = service.worker("second")
    try:
        key = f"{spec.campaign_id}:{phone}:1"
        await until(
            lambda: ProviderCalls(service.store).for_key(key), "the call found again", timeout=120
        )
        await fake.normal(sid, "completed")
        result = await asyncio.wait_for(handle.result(), timeout=120)
    finally:
        assert second.stop() == 0
    assert _adopted(service.store, spec.campaign_id) == 1
    assert result.by_status == {"completed": 1}
    assert fake.created_per_to() == Counter({phone: 1})
    assert fake.create_requests_per_to()[phone] == 1  # the retry adopted: it never asked again
    [record] = service.store.call_records_for(recipient_workflow_id(spec.campaign_id, phone))
    assert record.call_id == sid
    assert not bad_log_lines([service.tmp / "first.log", service.tmp / "second.log"])


def _adopted(store: Store, campaign_id: str) -> int:
    from redialer.store.dial_intents import DialIntents

    return DialIntents(store).adoptions(f"{campaign_id}:")


def test_the_campaign_spec_json_round_trips_for_the_worker():
    """The policy with its `call` section crosses to the worker as plain JSON and back."""
    spec = CampaignSpec.model_validate({"campaign_id": "x", **policy_json()})
    again = json.loads(json.dumps(spec.policy().model_dump(mode="json")))
    assert CampaignSpec.model_validate({"campaign_id": "x", **again}).call == spec.call


async def test_a_retried_dial_never_adopts_an_earlier_attempts_call(fake: FakeTwilio, store):
    """Looking a call up at Twilio after a crash must find this attempt's call, not the call of
    the attempt before it to the same number, created a moment earlier: that one is known."""
    from datetime import UTC, datetime, timedelta

    from redialer.call_spec import CallSpec
    from redialer.dialers.base import CallRequest
    from redialer.dialers.twilio import TwilioDialer, twilio_client
    from redialer.settings import Settings

    settings = Settings(
        dialer="twilio",
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        caller_id=CALLER,
        public_url="http://127.0.0.1:9",
        twilio_api_url=fake.url,
    )
    dialer = TwilioDialer(settings=settings, store=store)
    phone, since = "+14155550131", datetime.now(UTC) - timedelta(seconds=1)
    earlier = await asyncio.to_thread(
        twilio_client(settings).calls.create, to=phone, from_=CALLER, twiml="<Response/>"
    )
    ProviderCalls(store).placed(
        call_sid=earlier.sid, key=f"c1:{phone}:1", status="completed", created_at=since
    )
    spec = CallSpec(twiml="<Response/>")
    second = CallRequest(
        idempotency_key=f"c1:{phone}:2",
        campaign_id="c1",
        phone=phone,
        attempt=2,
        retry_group_id="g",
        call=spec,
    )
    adopted = await asyncio.wait_for(dialer.adopt(second, since=since), timeout=30)
    assert adopted is None  # so the retry places its own call
