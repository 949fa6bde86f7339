"""Opting out during the call (`call.opt_out_digit`), on SQLite and PostgreSQL: the answer's
spoken verbs are nested in a `<Gather>` whose action, signed by Twilio, puts the number on the
suppression list the moment the key is pressed; no later dial in any campaign calls it.

The real `redialer api` app (served in this process) and the real Twilio dialer, against the
fake Twilio of tests/fake_twilio.py, which plays the callee: it picks up, presses keys, hangs up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from xml.etree import ElementTree

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import func
from sqlmodel import Session, select
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.testing import ActivityEnvironment

from activities.dialing import DialActivities
from redialer.call_spec import CallSpec
from redialer.campaign import CampaignPolicy, CampaignSpec
from redialer.dialers.base import CallRequest, CallResult
from redialer.dialers.twilio import TwilioDialer, with_opt_out
from redialer.outcomes import Outcome
from redialer.payloads import DialInput, DialSkip
from redialer.settings import DialerKind, Settings
from redialer.store.provider_calls import ProviderCalls
from redialer.store.store import Store
from redialer.store.tables import SuppressionRow
from service.app import create_app
from service.twilio_routes import OPTED_OUT
from tests import store_fixtures
from tests.contracts.twilio_contract import check_request
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, ThreadedServer, twiml_violations
from tests.fault_helpers import until

db = store_fixtures.db
database_url = store_fixtures.database_url

CALLER = "+15550009999"
ADA = "+12125550141"
HELLO = "<Response><Say>Hello {{name}}. Press 9 to stop these calls.</Say></Response>"


# ---- the spec -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [*"0123456789*#", 9, 0])
def test_every_key_of_the_keypad_is_an_opt_out_digit(key: object):
    assert CallSpec(twiml=HELLO, opt_out_digit=key).opt_out_digit == str(key)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["99", "a", "", " 9", "+", 10, -1, True, 9.0, ["9"]])
def test_a_bad_opt_out_digit_is_refused_naming_the_field_the_value_and_the_rule(bad: object):
    with pytest.raises(ValidationError) as raised:
        CampaignSpec.model_validate(
            {"campaign_id": "c1", "call": {"twiml": HELLO, "opt_out_digit": bad}}
        )
    [error] = raised.value.errors()
    assert error["loc"] == ("call", "opt_out_digit")
    assert error["input"] == bad
    assert "one of 0-9, * or #" in error["msg"]


@pytest.mark.parametrize(
    ("call", "why"),
    [
        ({"url": "https://example.com/twiml"}, "opt_out_digit '9' works with twiml, not url"),
        (
            {"twiml": '<Response><Gather action="https://x"><Say>Hi</Say></Gather></Response>'},
            "opt_out_digit '9' cannot be used with a twiml that has its own <Gather>",
        ),
        (
            {"twiml": "<Response><Dial>+12125550100</Dial></Response>"},
            "opt_out_digit '9' needs a twiml that says or plays something",
        ),
    ],
)
def test_an_opt_out_digit_redialer_could_not_hear_is_refused(call: dict[str, Any], why: str):
    """A `url` serves its own instructions, a `<Gather>` takes its own keys, and a document
    that neither says nor plays anything gives no moment to press: refused, saying so."""
    with pytest.raises(ValidationError, match=why):
        CallSpec.model_validate({**call, "opt_out_digit": "9"})


def test_spoken_verbs_are_nested_in_gathers_and_the_rest_stays_in_place():
    """Each run of Say/Play/Pause gets a Gather (Twilio nests nothing else); a Dial stays
    between them; only the last Gather waits for a key after its verbs have played."""
    twiml = (
        "<Response><Say>Hi &amp; welcome</Say><Pause length='1'/><Dial>+12125550100</Dial>"
        "<Play>https://example.com/bye.mp3</Play><Hangup/></Response>"
    )
    wrapped = with_opt_out(twiml, "https://dialer.example/twilio/gather?key=k&opt_out=9")
    root = ElementTree.fromstring(wrapped)
    assert [c.tag for c in root] == ["Gather", "Dial", "Gather", "Hangup"]
    first, second = root.findall("Gather")
    assert [c.tag for c in first] == ["Say", "Pause"] and first[0].text == "Hi & welcome"
    assert [c.tag for c in second] == ["Play"]
    assert first.attrib == {
        "input": "dtmf",
        "numDigits": "1",
        "finishOnKey": "",
        "action": "https://dialer.example/twilio/gather?key=k&opt_out=9",
        "method": "POST",
        "timeout": "1",
    }
    assert second.get("timeout") == "5"
    assert twiml_violations(wrapped) == []


# ---- a call, its keys, the suppression list ----------------------------------------------------


class _Later:
    """An ASGI app given after the server started: the app needs the server's URL."""

    app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None
        await self.app(scope, receive, send)


@dataclass
class Line:
    """Twilio (the fake), `redialer api` (served here) and the Twilio dialer, on one store."""

    fake: FakeTwilio
    store: Store
    settings: Settings
    dialer: TwilioDialer
    dials: list[asyncio.Task[CallResult]] = field(default_factory=list)

    async def call(
        self, call: dict[str, Any], *, campaign_id: str | None = "c1", phone: str = ADA
    ) -> tuple[str, asyncio.Task[CallResult]]:
        """Place a call (the dial waits for its end in a task); its SID once Twilio has it."""
        known = set(self.fake.calls)
        request = CallRequest(
            idempotency_key=f"{campaign_id or 'call/x'}:{phone}:1",
            campaign_id=campaign_id,
            phone=phone,
            attempt=1,
            retry_group_id=f"campaign/{campaign_id}/recipient/{phone}",
            variables={"name": "Ada & Co"},
            call=CallSpec.model_validate(call),
        )
        dial = asyncio.create_task(self.dialer.dial(request))
        self.dials.append(dial)
        sid: str = await until(lambda: next(iter(set(self.fake.calls) - known), ""), "a call")
        return sid, dial

    def suppressed(self) -> list[SuppressionRow]:
        """Every row of the suppression list, counted in the store."""
        with Session(self.store.engine) as session:
            count = session.exec(select(func.count()).select_from(SuppressionRow)).one()
            rows = list(session.exec(select(SuppressionRow)).all())
        assert count == len(rows)
        return rows


@pytest.fixture
async def line(db: Store) -> AsyncIterator[Line]:
    later = _Later()
    with FakeTwilio() as fake, ThreadedServer(later) as service:
        settings = Settings(
            dialer=DialerKind.TWILIO,
            twilio_account_sid=ACCOUNT_SID,
            twilio_auth_token=SecretStr(AUTH_TOKEN),
            caller_id=CALLER,
            public_url=service.url,
            twilio_api_url=fake.url,
            callback_timeout=30,
        )
        later.app = create_app(settings, db)
        running = Line(fake, db, settings, TwilioDialer(settings=settings, store=db))
        yield running
        for dial in running.dials:  # a failed test leaves its dial waiting for the call's end
            dial.cancel()
        await asyncio.gather(*running.dials, return_exceptions=True)


def _create_request(fake: FakeTwilio) -> Any:
    [create] = [
        r
        for r in fake.requests
        if r.method == "POST" and urlsplit(r.url).path.endswith("Calls.json")
    ]
    return create


async def test_the_create_call_carries_the_gather_twiml_within_twilios_contract(line: Line):
    """The Twiml sent with the create nests the (escaped) greeting in a Gather whose action is
    redialer's signed gather route for this attempt; the request matches Twilio's OpenAPI
    description and the TwiML Twilio's <Gather> rules."""
    sid, dial = await line.call({"twiml": HELLO, "opt_out_digit": "9"})
    await line.fake.normal(sid, "completed")
    assert (await asyncio.wait_for(dial, 30)).outcome is Outcome.COMPLETED
    create = _create_request(line.fake)
    assert check_request(*create) == "CreateCall"
    twiml = dict(create.form)["Twiml"]
    assert twiml_violations(twiml) == [] and len(twiml) <= 4000  # Twilio's documented maximum
    [gather] = ElementTree.fromstring(twiml)
    assert gather.tag == "Gather" and [c.tag for c in gather] == ["Say"]
    assert gather[0].text == "Hello Ada & Co. Press 9 to stop these calls."
    action = urlsplit(gather.get("action", ""))
    assert f"{action.scheme}://{action.netloc}" == line.settings.public_url
    assert action.path == "/twilio/gather"
    assert parse_qsl(action.query) == [("key", f"c1:{ADA}:1"), ("opt_out", "9"), ("campaign", "c1")]
    line.fake.assert_contract()


async def test_the_opt_out_digit_suppresses_the_number_at_once_and_no_campaign_calls_it_again(
    line: Line,
):
    """Pressed during the call: the number is on the list before the call ends (reason
    `opted_out`, the key, the call and the campaign as its source, the time), the person
    hears a confirmation naming nothing about them, the attempt ends as the call did, and the
    next dial of the number, in another campaign, ends `opted_out` without a call."""
    sid, dial = await line.call({"twiml": HELLO, "opt_out_digit": "9"})
    assert line.suppressed() == []
    before = datetime.now(UTC)
    code, said = await line.fake.press(sid, "9")
    after = datetime.now(UTC)
    assert (code, said) == (200, OPTED_OUT)
    assert ADA not in said and "Ada" not in said
    [entry] = line.suppressed()  # before the call has even ended
    assert (entry.phone, entry.reason, entry.campaign_id) == (ADA, "opted_out", "c1")
    assert entry.source == f"keypress 9 during call {sid} (campaign c1)"
    assert before <= line.store.suppression_entry(ADA).created_at <= after  # type: ignore[union-attr]
    await line.fake.normal(sid, "completed")
    result = await asyncio.wait_for(dial, 30)
    assert (result.outcome, result.call_id) == (Outcome.COMPLETED, sid)

    dialing = DialActivities(store=line.store, dialer=line.dialer)
    policy = CampaignPolicy(call=CallSpec(twiml=HELLO, opt_out_digit="9"))
    later = DialInput(
        campaign_id="c2",
        retry_group_id=f"campaign/c2/recipient/{ADA}",
        phone=ADA,
        zone="America/New_York",
        policy=policy.model_dump(mode="json"),
        attempt=1,
    )
    skipped = await ActivityEnvironment().run(dialing.dial, later)
    assert skipped.skipped is DialSkip.OPTED_OUT
    assert line.fake.created_per_to()[ADA] == 1  # Twilio placed the first call only
    [entry_again] = line.suppressed()
    assert entry_again == entry


async def test_a_wrongly_signed_keypress_is_refused_and_suppresses_nothing(line: Line):
    sid, dial = await line.call({"twiml": HELLO, "opt_out_digit": "9"})
    code, _ = await line.fake.press(sid, "9", forge=True)
    assert code == 403
    assert line.suppressed() == []
    await line.fake.normal(sid, "completed")
    assert (await asyncio.wait_for(dial, 30)).outcome is Outcome.COMPLETED
    assert line.suppressed() == []


async def test_another_key_suppresses_nothing_and_the_instructions_start_again(line: Line):
    """A key interrupts what was playing; the call goes on with the instructions from the
    start, still listening for the opt-out digit, which then works."""
    sid, dial = await line.call({"twiml": HELLO, "opt_out_digit": "9"}, campaign_id=None)
    first = line.fake.call(sid).twiml
    code, again = await line.fake.press(sid, "1")
    assert (code, again) == (200, first)
    assert line.suppressed() == []
    assert (await line.fake.press(sid, "9"))[0] == 200
    [entry] = line.suppressed()
    assert (entry.source, entry.campaign_id) == (
        f"keypress 9 during call {sid} (a single call)",
        None,
    )
    await line.fake.normal(sid, "completed")
    await asyncio.wait_for(dial, 30)


async def test_hash_is_an_opt_out_key_not_the_end_of_input(line: Line):
    """`#` ends a Gather's input by default, so it would never reach the action as a digit:
    the Gather sets `finishOnKey=""`, and `#` opts out like any other key."""
    sid, dial = await line.call({"twiml": HELLO, "opt_out_digit": "#"})
    assert (await line.fake.press(sid, "#"))[0] == 200
    [entry] = line.suppressed()
    assert entry.source == f"keypress # during call {sid} (campaign c1)"
    await line.fake.normal(sid, "completed")
    await asyncio.wait_for(dial, 30)


async def test_with_machine_detection_a_person_can_opt_out_and_a_machine_gets_the_voicemail(
    line: Line,
):
    """The answer route plays the Gather-wrapped instructions to a person and the voicemail
    message, as written, to a machine (it presses no key); the machine's attempt still ends
    `voicemail` with the message left."""
    call = {
        "twiml": HELLO,
        "machine_detection": True,
        "voicemail_message": "<Response><Say>Sorry we missed you, {{name}}</Say></Response>",
        "opt_out_digit": "9",
    }
    person, person_dial = await line.call(call, phone=ADA)
    heard = await line.fake.answer(person, "human")
    [gather] = ElementTree.fromstring(heard)
    assert gather.tag == "Gather" and gather[0].tag == "Say"
    assert (await line.fake.press(person, "9"))[0] == 200
    await line.fake.normal(person, "completed", answered_by="human")

    machine, machine_dial = await line.call(call, phone="+12125550142")
    left = await line.fake.answer(machine, "machine_end_beep")
    assert left == "<Response><Say>Sorry we missed you, Ada &amp; Co</Say></Response>"
    await line.fake.normal(machine, "completed", answered_by="machine_end_beep")

    assert (await asyncio.wait_for(person_dial, 30)).outcome is Outcome.COMPLETED
    voicemail = await asyncio.wait_for(machine_dial, 30)
    assert (voicemail.outcome, voicemail.message_left) == (Outcome.VOICEMAIL, True)
    assert [e.phone for e in line.suppressed()] == [ADA]
    assert {c.param("MachineDetection") for c in line.fake.calls.values()} == {"DetectMessageEnd"}
    assert ProviderCalls(line.store).get(machine).message_left  # type: ignore[union-attr]
    line.fake.assert_contract()
