"""The fake Twilio behaves as the official `twilio` client and Twilio's callbacks expect.

The client is pointed at the fake exactly as the dialer does it: `client.api.base_url`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from tests.contracts.twilio_contract import check_request, response_violations
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, ThreadedServer

CALLER = "+15550009999"
# twilio-python's async client passes `auth=` to aiohttp, which aiohttp now deprecates
AIOHTTP_AUTH = "ignore:.*(BasicAuth|'auth' parameter) is deprecated:DeprecationWarning"
EVENTS = ["initiated", "ringing", "answered", "completed"]


@dataclass
class Receiver:
    """A service's callback endpoints in miniature: verifies Twilio's signature like one."""

    server: ThreadedServer | None = None
    received: list[dict[str, str]] = field(default_factory=list)
    rejected: int = 0

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    async def status(self, request: Request) -> Response:
        params = dict((await request.form()).items())
        signature = request.headers.get("X-Twilio-Signature", "")
        if not RequestValidator(AUTH_TOKEN).validate(str(request.url), params, signature):
            self.rejected += 1
            return Response(status_code=403)
        self.received.append({k: str(v) for k, v in params.items()})
        return Response(status_code=204)

    async def twiml(self, request: Request) -> Response:
        params = dict((await request.form()).items())
        signature = request.headers.get("X-Twilio-Signature", "")
        if not RequestValidator(AUTH_TOKEN).validate(str(request.url), params, signature):
            return Response(status_code=403)
        self.received.append({k: str(v) for k, v in params.items()})
        if params.get("AnsweredBy") == "human":
            twiml = "<Response><Say>Hello</Say></Response>"
        else:
            twiml = "<Response><Hangup/></Response>"
        return PlainTextResponse(twiml, media_type="application/xml")


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as running:  # on exit, fails the test if a request broke the contract
        yield running


@pytest.fixture
def client(fake: FakeTwilio) -> Client:
    twilio = Client(ACCOUNT_SID, AUTH_TOKEN)
    twilio.api.base_url = fake.url
    return twilio


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    app = Starlette(
        routes=[
            Route("/twilio/status", receiver.status, methods=["POST"]),
            Route("/twilio/answer", receiver.twiml, methods=["POST"]),
        ]
    )
    with ThreadedServer(app) as server:
        receiver.server = server
        yield receiver


def place(client: Client, to: str, receiver: Receiver | None = None, **extra: object) -> str:
    params: dict[str, object] = {
        "to": to,
        "from_": CALLER,
        "twiml": "<Response><Say>Hello</Say></Response>",
        "timeout": 30,
        "machine_detection": "Enable",
    }
    if receiver is not None:
        params |= {
            "status_callback": f"{receiver.url}/twilio/status",
            "status_callback_event": EVENTS,
            "status_callback_method": "POST",
        }
    call = client.calls.create(**(params | extra))  # type: ignore[arg-type]
    return str(call.sid)


# --- the REST API ------------------------------------------------------------------------------


def test_create_fetch_and_list(fake: FakeTwilio, client: Client) -> None:
    """A created call is queued with no start time, and fetch and list by To find it."""
    sid = place(client, "+15551230001")
    other = place(client, "+15551230002")
    assert sid.startswith("CA") and len(sid) == 34
    fetched = client.calls(sid).fetch()
    assert (fetched.status, fetched.to, fetched._from, fetched.start_time) == (
        "queued",
        "+15551230001",
        CALLER,
        None,
    )
    assert fetched.date_created is not None
    assert [c.sid for c in client.calls.list(to="+15551230001")] == [sid]
    assert [c.sid for c in client.calls.list()] == [other, sid]  # newest first
    assert fake.calls[sid].params["MachineDetection"] == ["Enable"]
    assert fake.created_per_to() == {"+15551230001": 1, "+15551230002": 1}


def test_resource_json_is_twilios_shape(fake: FakeTwilio, client: Client) -> None:
    """The raw JSON has Twilio's fields, RFC 2822 dates and conforms to the published schema."""
    sid = place(client, "+15551230001")
    raw = httpx.get(
        f"{fake.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}.json",
        auth=(ACCOUNT_SID, AUTH_TOKEN),
    )
    body = raw.json()
    assert raw.status_code == 200 and response_violations("FetchCall", 200, body) == []
    assert datetime.strptime(body["date_created"], "%a, %d %b %Y %H:%M:%S %z")
    assert body["uri"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}.json"
    assert body["start_time"] is None and body["answered_by"] is None
    listed = httpx.get(
        f"{fake.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json", auth=(ACCOUNT_SID, AUTH_TOKEN)
    ).json()
    assert response_violations("ListCall", 200, listed) == []
    assert (listed["page"], listed["page_size"], listed["next_page_uri"]) == (0, 50, None)


def test_wrong_credentials_and_unknown_call(fake: FakeTwilio) -> None:
    """Bad Basic auth is 401 (20003); an unknown call is 404 (20404), both as Twilio's JSON."""
    bad = Client(ACCOUNT_SID, "wrong-token")
    bad.api.base_url = fake.url
    with pytest.raises(TwilioRestException) as raised:
        bad.calls("CA" + "0" * 32).fetch()
    assert (raised.value.status, raised.value.code) == (401, 20003)
    good = Client(ACCOUNT_SID, AUTH_TOKEN)
    good.api.base_url = fake.url
    with pytest.raises(TwilioRestException) as raised:
        good.calls("CA" + "0" * 32).fetch()
    assert (raised.value.status, raised.value.code) == (404, 20404)


def test_invalid_number_is_a_rest_exception(fake: FakeTwilio, client: Client) -> None:
    """A scripted 21211 surfaces as TwilioRestException(code=21211, status=400), every time."""
    fake.fail_create("+15551230001")
    for _ in range(2):
        with pytest.raises(TwilioRestException) as raised:
            place(client, "+15551230001")
        assert (raised.value.code, raised.value.status) == (21211, 400)
        assert "not a valid phone number" in raised.value.msg
    assert fake.created_per_to()["+15551230001"] == 0
    assert fake.create_requests_per_to()["+15551230001"] == 2


def test_unavailable_once_then_created(fake: FakeTwilio, client: Client) -> None:
    """A 503 scripted once fails the first create only; the retry places the call."""
    fake.fail_create("+15551230001", status=503, code=None, times=1)
    with pytest.raises(TwilioRestException) as raised:
        place(client, "+15551230001")
    assert (raised.value.status, raised.value.code) == (503, None)
    place(client, "+15551230001")
    assert fake.created_per_to()["+15551230001"] == 1
    assert fake.create_requests_per_to()["+15551230001"] == 2


def test_lost_answer_still_places_the_call(fake: FakeTwilio, client: Client) -> None:
    """`after_create`: the create answers 503 but the call exists, and listing finds it."""
    fake.fail_create("+15551230001", status=503, code=None, times=1, after_create=True)
    with pytest.raises(TwilioRestException):
        place(client, "+15551230001")
    assert [c.to for c in client.calls.list(to="+15551230001")] == ["+15551230001"]


async def test_start_time_filter_skips_queued_calls(
    fake: FakeTwilio, client: Client, receiver: Receiver
) -> None:
    """As at Twilio, a queued call has no start time, so a StartTime filter leaves it out."""
    sid = place(client, "+15551230001", receiver)
    today = datetime.now(UTC).date()
    assert client.calls.list(to="+15551230001", start_time_after=today) == []
    await fake.send(sid, [("initiated", {}), ("ringing", {})])
    assert [c.sid for c in client.calls.list(to="+15551230001", start_time_after=today)] == [sid]
    tomorrow = today + timedelta(days=1)
    assert client.calls.list(start_time_after=tomorrow) == []
    assert [c.sid for c in client.calls.list(status="ringing")] == [sid]


def test_paging_follows_next_page_uri(fake: FakeTwilio, client: Client) -> None:
    """Pages of one are followed by the client through next_page_uri, newest first."""
    sids = [place(client, f"+1555123000{i}") for i in range(3)]
    assert [c.sid for c in client.calls.list(page_size=1)] == sids[::-1]
    assert sum(1 for r in fake.requests if r.method == "GET") == 3


def test_hang_up_updates_the_call(fake: FakeTwilio, client: Client) -> None:
    """Updating a queued call to canceled ends it, as the API's update does."""
    sid = place(client, "+15551230001")
    assert client.calls(sid).update(status="canceled").status == "canceled"
    assert fake.calls[sid].end_time is not None


def test_every_request_conforms(fake: FakeTwilio, client: Client) -> None:
    """Every request the official client sent through these flows passes the contract."""
    sid = place(client, "+15551230001")
    client.calls(sid).fetch()
    client.calls.list(to="+15551230001", start_time_after=date(2026, 1, 1), page_size=20)
    client.calls(sid).update(status="completed")
    assert len(fake.requests) == 4
    for recorded in fake.requests:
        check_request(recorded.method, recorded.url, recorded.headers, recorded.body)
    assert fake.contract_violations == []


@pytest.mark.filterwarnings(AIOHTTP_AUTH)
async def test_async_client_reaches_the_fake(fake: FakeTwilio) -> None:
    """The async client (AsyncTwilioHttpClient) is pointed the same way."""
    http = AsyncTwilioHttpClient()
    twilio = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http)
    twilio.api.base_url = fake.url
    try:
        call = await twilio.calls.create_async(to="+15551230001", from_=CALLER, twiml="<Response/>")
        assert (await twilio.calls(call.sid).fetch_async()).status == "queued"
    finally:
        await http.close()


@pytest.mark.filterwarnings(AIOHTTP_AUTH)
async def test_async_client_retries_would_dial_twice(fake: FakeTwilio) -> None:
    """AsyncTwilioHttpClient(max_retries=...) re-sends a create that answered 503: two calls."""
    fake.fail_create("+15551230001", status=503, code=None, times=1, after_create=True)
    http = AsyncTwilioHttpClient(max_retries=2)
    twilio = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http)
    twilio.api.base_url = fake.url
    try:
        await twilio.calls.create_async(to="+15551230001", from_=CALLER, twiml="<Response/>")
    finally:
        await http.close()
    assert fake.created_per_to()["+15551230001"] == 2


# --- status callbacks --------------------------------------------------------------------------


async def test_callbacks_are_signed_and_sequenced(
    fake: FakeTwilio, client: Client, receiver: Receiver
) -> None:
    """A normal call posts four verifiable callbacks, numbered, and fetch agrees with the last."""
    sid = place(client, "+15551230001", receiver)
    assert await fake.normal(sid, "completed", duration=42) == [204] * 4
    assert [(r["CallStatus"], r["SequenceNumber"]) for r in receiver.received] == [
        ("initiated", "0"),
        ("ringing", "1"),
        ("in-progress", "2"),
        ("completed", "3"),
    ]
    last = receiver.received[-1]
    assert (last["CallSid"], last["AccountSid"], last["To"], last["From"]) == (
        sid,
        ACCOUNT_SID,
        "+15551230001",
        CALLER,
    )
    assert (last["AnsweredBy"], last["CallDuration"], last["CallbackSource"]) == (
        "human",
        "42",
        "call-progress-events",
    )
    assert datetime.strptime(last["Timestamp"], "%a, %d %b %Y %H:%M:%S %z")
    call = client.calls(sid).fetch()
    assert (call.status, call.duration, call.answered_by) == ("completed", "42", "human")
    assert call.start_time is not None and call.end_time is not None


async def test_forged_callbacks_fail_verification(
    fake: FakeTwilio, client: Client, receiver: Receiver
) -> None:
    """Callbacks signed with another token fail RequestValidator and are refused."""
    sid = place(client, "+15551230001", receiver)
    assert await fake.send(sid, [("initiated", {})], forge=True) == [403]
    assert receiver.rejected == 1 and receiver.received == []


async def test_duplicated_out_of_order_lost_and_late(
    fake: FakeTwilio, client: Client, receiver: Receiver
) -> None:
    """The scripted faults: twice each, final before ringing, never sent, and sent later."""
    twice = place(client, "+15551230001", receiver)
    assert await fake.duplicated(twice, "busy") == [204] * 4
    assert [r["SequenceNumber"] for r in receiver.received] == ["0", "0", "1", "1"]
    receiver.received.clear()

    shuffled = place(client, "+15551230002", receiver)
    await fake.out_of_order(shuffled, "completed")
    assert [r["CallStatus"] for r in receiver.received] == [
        "initiated",
        "completed",
        "ringing",
        "in-progress",
    ]
    assert client.calls(shuffled).fetch().status == "completed"
    receiver.received.clear()

    silent = place(client, "+15551230003", receiver)
    assert await fake.lost(silent, "no-answer") == []
    assert receiver.received == [] and client.calls(silent).fetch().status == "no-answer"

    later = place(client, "+15551230004", receiver)
    pending = fake.late(later, "failed", sip_code=404)
    assert receiver.received == [] and client.calls(later).fetch().status == "failed"
    assert await pending.deliver() == [204, 204]
    assert receiver.received[-1]["SipResponseCode"] == "404"


async def test_only_subscribed_events_are_sent(
    fake: FakeTwilio, client: Client, receiver: Receiver
) -> None:
    """Without StatusCallbackEvent Twilio sends only `completed`; the state still moves."""
    sid = place(client, "+15551230001", status_callback=f"{receiver.url}/twilio/status")
    assert await fake.normal(sid, "completed") == [204]
    assert [r["CallStatus"] for r in receiver.received] == ["completed"]


async def test_answer_fetches_the_url_with_answered_by(
    fake: FakeTwilio, client: Client, receiver: Receiver
) -> None:
    """A call created with Url and MachineDetection: answering fetches its TwiML, signed."""
    call = client.calls.create(
        to="+15551230001",
        from_=CALLER,
        url=f"{receiver.url}/twilio/answer",
        machine_detection="DetectMessageEnd",
    )
    assert await fake.answer(call.sid, "machine_end_beep") == "<Response><Hangup/></Response>"
    assert receiver.received[-1]["AnsweredBy"] == "machine_end_beep"
    assert receiver.received[-1]["CallStatus"] == "in-progress"
    fetched = client.calls(call.sid).fetch()
    assert (fetched.status, fetched.answered_by) == ("in-progress", "machine_end_beep")
