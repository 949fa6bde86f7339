"""TwilioDialer: real calls through Twilio's Programmable Voice API, on the official SDK.

Twilio's create-call takes no idempotency key, so exactly-once rests on redialer's dial intents
(see `activities/dialing.py`) and on this dialer's `adopt`: the call created for a key is found
again by the key its status callbacks carry (`?key=` in the callback URL, recorded in
`provider_calls` by the HTTP service) or, when no callback has come yet, by listing the calls to
the number created since the intent (a queued call has no start time, so the list is filtered on
`date_created`, not on `StartTime`).

The outcome comes from the status callbacks, which `redialer api` verifies and records; the dial
waits for the first terminal one in the store. With none after `REDIALER_CALLBACK_TIMEOUT`, it
asks Twilio for the call (a lost or late callback) and ends with what it says, or waits again
while the call is still up.

With `call.opt_out_digit`, each run of spoken verbs in the answer is nested in a `<Gather>`
whose action (`/twilio/gather`) puts the number on the suppression list when that key is
pressed (`with_opt_out`); the voicemail is left as written (a machine presses no key).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree

import structlog
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from redialer.call_spec import GATHER_NESTS, CallSpec, render
from redialer.dialers.base import CallRequest, CallResult, PermanentDialError
from redialer.dialers.twilio_status import TERMINAL
from redialer.outcomes import Outcome
from redialer.settings import Settings
from redialer.store.provider_calls import ProviderCalls
from redialer.store.store import Store

log = structlog.get_logger(__name__)

#: Status callbacks asked for: every step, so `watch` and the Web UI can follow a call.
CALLBACK_EVENTS = ["initiated", "ringing", "answered", "completed"]
#: Seconds one request to Twilio's API may take before it counts as failed (and is retried).
REQUEST_TIMEOUT = 30.0
#: How often the calls a worker waits on are checked in the store (one query for all of them).
POLL_EVERY = 0.5
#: Twilio's error codes for a `To` that is not a dialable number: the attempt ends
#: `invalid_number` without a call (21211 invalid 'To', 21214 cannot be reached, 21217 not a
#: valid number, 13224 invalid phone number).
INVALID_NUMBER_CODES = frozenset({21211, 21214, 21217, 13224})
#: Clocks differ: a call created this long before the intent's time still counts as its call.
CLOCK_SLACK = timedelta(seconds=30)
#: Seconds a `<Gather>` waits for a key once its verbs have played: the document's last one
#: gives time to press the key the message just named; an earlier one hardly holds the call up.
LAST_GATHER_WAIT = 5
GATHER_WAIT = 1


def status_callback_url(public_url: str, key: str) -> str:
    return f"{public_url.rstrip('/')}/twilio/status?key={quote(key, safe='')}"


def answer_url(public_url: str, key: str) -> str:
    return f"{public_url.rstrip('/')}/twilio/answer?key={quote(key, safe='')}"


def gather_url(public_url: str, key: str, *, opt_out: str, campaign_id: str | None) -> str:
    """Where Twilio posts a key pressed during the call; the URL (signed by Twilio with the
    rest of the request) says which key opts out and for which campaign."""
    query = f"key={quote(key, safe='')}&opt_out={quote(opt_out, safe='')}"
    if campaign_id is not None:
        query += f"&campaign={quote(campaign_id, safe='')}"
    return f"{public_url.rstrip('/')}/twilio/gather?{query}"


def with_opt_out(twiml: str, action: str) -> str:
    """The TwiML with each run of spoken verbs (`GATHER_NESTS`) nested in a `<Gather>` that
    posts one key to `action`; the other verbs stay where they are, between the runs. Without a
    key the call goes on to the next verb, as written. `finishOnKey=""`: `#` is a key too."""
    root = ElementTree.fromstring(twiml)
    out = ElementTree.Element(root.tag, root.attrib)
    out.text = root.text
    gathers: list[ElementTree.Element] = []
    gather: ElementTree.Element | None = None
    for child in root:
        if child.tag not in GATHER_NESTS:
            gather = None
            out.append(child)
            continue
        if gather is None:
            gather = ElementTree.SubElement(
                out,
                "Gather",
                {
                    "input": "dtmf",
                    "numDigits": "1",
                    "finishOnKey": "",
                    "action": action,
                    "method": "POST",
                },
            )
            gathers.append(gather)
        gather.append(child)
    for one in gathers:
        one.set("timeout", str(LAST_GATHER_WAIT if one is gathers[-1] else GATHER_WAIT))
    return ElementTree.tostring(out, encoding="unicode")


def twilio_client(settings: Settings) -> Client:
    """The official client, pointed at `REDIALER_TWILIO_API_URL` (a fake in tests), with a
    request timeout: the SDK has none, and a dial that heartbeats would wait on a hung request
    for ever. (No SDK-level retries: a retried create places a second call.)"""
    assert settings.twilio_account_sid and settings.twilio_auth_token
    client = Client(
        settings.twilio_account_sid,
        settings.twilio_auth_token.get_secret_value(),
        http_client=TwilioHttpClient(timeout=REQUEST_TIMEOUT),
    )
    client.api.base_url = settings.twilio_api_url.rstrip("/")
    return client


class _EndWatch:
    """Wakes each waiting dial when its call has an outcome in the store, with one query per
    `POLL_EVERY` for all the calls this process waits on."""

    def __init__(self, calls: ProviderCalls) -> None:
        self._calls = calls
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._task: asyncio.Task[None] | None = None

    async def wait(self, call_sid: str, timeout: float) -> bool:
        """True once the call has ended, False if `timeout` seconds pass first."""
        loop = asyncio.get_running_loop()
        future = self._waiting.get(call_sid)
        if future is None or future.done():
            future = self._waiting[call_sid] = loop.create_future()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch())
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            return False
        return True

    async def _watch(self) -> None:
        while self._waiting:
            try:
                ended = await asyncio.to_thread(self._calls.ended_among, list(self._waiting))
            except Exception as exc:  # the store blinked: the next round tries again
                log.warning("could not read call outcomes", error=str(exc))
                ended = set()
            for sid in ended:
                future = self._waiting.pop(sid, None)
                if future is not None and not future.done():
                    future.set_result(None)
            await asyncio.sleep(POLL_EVERY)


class TwilioDialer:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        client: Client | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        assert settings.caller_id and settings.public_url, "settings validated at start"
        self._client = client or twilio_client(settings)
        self._caller_id = settings.caller_id
        self._public_url = settings.public_url
        self._callback_timeout = settings.callback_timeout
        self._calls = ProviderCalls(store)
        self._watch = _EndWatch(self._calls)
        self._clock = clock or (lambda: datetime.now(UTC))

    # ---- the Dialer protocol --------------------------------------------------------------------

    async def dial(self, request: CallRequest) -> CallResult:
        spec = _spec_of(request)
        answer, voicemail = self._rendered(spec, request)
        params = self._create_params(request, spec, answer)
        try:
            call = await asyncio.to_thread(self._client.calls.create, **params)
        except TwilioRestException as exc:
            if exc.code in INVALID_NUMBER_CODES:  # no call was placed: the number is the problem
                log.info("Twilio refused the number", key=request.idempotency_key, code=exc.code)
                now = self._clock()
                return CallResult(
                    outcome=Outcome.INVALID_NUMBER, call_id=None, started_at=now, ended_at=now
                )
            raise _classified(exc) from exc
        log.info("call created", key=request.idempotency_key, call=call.sid, status=call.status)
        await asyncio.to_thread(
            self._calls.placed,
            call_sid=str(call.sid),
            key=request.idempotency_key,
            status=str(call.status or "queued"),
            created_at=_aware(call.date_created) or self._clock(),
            answer_twiml=answer,
            voicemail_twiml=voicemail,
        )
        return await self._outcome(str(call.sid))

    async def adopt(self, request: CallRequest, *, since: datetime) -> CallResult | None:
        """The call created for this key: known from its callbacks, else found at Twilio among
        the calls to the number created since the intent; None if Twilio has none."""
        known = await asyncio.to_thread(self._calls.for_key, request.idempotency_key)
        if known is not None:
            return await self._outcome(known.call_sid)
        spec = _spec_of(request)
        caller_id = spec.caller_id or self._caller_id
        found = await asyncio.to_thread(self._find, request.phone, caller_id, since - CLOCK_SLACK)
        if found is None:
            return None
        answer, voicemail = self._rendered(spec, request)
        await asyncio.to_thread(
            self._calls.placed,
            call_sid=str(found.sid),
            key=request.idempotency_key,
            status=str(found.status),
            created_at=_aware(found.date_created) or since,
            answer_twiml=answer,
            voicemail_twiml=voicemail,
        )
        log.info("adopted a call found at Twilio", key=request.idempotency_key, call=found.sid)
        return await self._outcome(str(found.sid))

    # ---- helpers --------------------------------------------------------------------------------

    def _rendered(self, spec: CallSpec, request: CallRequest) -> tuple[str, str | None]:
        """The answer's and the voicemail's TwiML with this recipient's variables; the answer
        listens for the opt-out digit when the spec has one."""
        answer = render(spec.twiml, request.variables) if spec.twiml else ""
        if answer and spec.opt_out_digit is not None:
            action = gather_url(
                self._public_url,
                request.idempotency_key,
                opt_out=spec.opt_out_digit,
                campaign_id=request.campaign_id,
            )
            answer = with_opt_out(answer, action)
        voicemail = (
            render(spec.voicemail_message, request.variables) if spec.voicemail_message else None
        )
        return answer, voicemail

    def _create_params(self, request: CallRequest, spec: CallSpec, answer: str) -> dict[str, Any]:
        key = request.idempotency_key
        params: dict[str, Any] = {
            "to": request.phone,
            "from_": spec.caller_id or self._caller_id,
            "status_callback": status_callback_url(self._public_url, key),
            "status_callback_event": CALLBACK_EVENTS,
            "status_callback_method": "POST",
            "timeout": spec.ring_timeout,
        }
        if spec.machine_detection:
            # redialer's answer route chooses what to play by AnsweredBy.
            params["machine_detection"] = "DetectMessageEnd" if spec.voicemail_message else "Enable"
            params["url"] = answer_url(self._public_url, key)
        elif spec.url is not None:
            params["url"] = spec.url
        else:
            params["twiml"] = answer
        return params

    def _find(self, phone: str, caller_id: str, since: datetime) -> Any | None:
        """The oldest call to `phone` from `caller_id` created at or after `since` that redialer
        does not know as another attempt's (an earlier attempt's call to the same number may
        fall inside the clock slack)."""
        calls = self._client.calls.list(to=phone, from_=caller_id, limit=50)
        recent = [c for c in calls if (_aware(c.date_created) or since) >= since]
        unknown = [c for c in recent if self._calls.get(str(c.sid)) is None]
        return min(unknown, key=lambda c: _aware(c.date_created) or since) if unknown else None

    async def _outcome(self, call_sid: str) -> CallResult:
        """Wait for the call's first terminal status; ask Twilio after each quiet timeout."""
        while not await self._watch.wait(call_sid, self._callback_timeout):
            call = await asyncio.to_thread(self._client.calls(call_sid).fetch)
            status = str(call.status)
            log.info("no final status callback in time; asked Twilio", call=call_sid, status=status)
            if status in TERMINAL:
                await asyncio.to_thread(
                    self._calls.reconcile,
                    call_sid,
                    status=status,
                    answered_by=call.answered_by,
                    duration=int(call.duration) if call.duration else None,
                    at=_aware(call.end_time) or self._clock(),
                )
        row = await asyncio.to_thread(self._calls.get, call_sid)
        assert row is not None and row.outcome is not None
        return CallResult(
            outcome=Outcome(row.outcome),
            call_id=call_sid,
            started_at=row.created_at,
            ended_at=max(row.ended_at or row.created_at, row.created_at),
            message_left=row.message_left,
        )


def _spec_of(request: CallRequest) -> CallSpec:
    if request.call is None:
        raise PermanentDialError(
            "call: the campaign has no `call` section (what an answered call does), which a"
            " real provider needs"
        )
    return request.call


def _classified(exc: TwilioRestException) -> Exception:
    """4xx but 429: Twilio will refuse again (an invalid number, bad credentials); anything
    else (429, 5xx) is transient, and the dial is retried (adopting the call if it was made)."""
    if 400 <= exc.status < 500 and exc.status != 429:
        return PermanentDialError(f"Twilio refused the call: {exc.code} {exc.msg}")
    return ConnectionError(f"Twilio did not take the call ({exc.status}): {exc.msg}")


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
