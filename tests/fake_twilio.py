"""A fake of Twilio's Calls REST API and of the status callbacks it sends, for the Twilio dialer.

It is a real HTTP server on 127.0.0.1 (uvicorn in a background thread), so the official `twilio`
client talks to it as to Twilio; point the client at it with `client.api.base_url = fake.url`.
The test drives the provider's side: `await fake.send(...)` (or `normal`, `duplicated`,
`out_of_order`, `lost`, `late`) moves a call on and posts signed callbacks to the call's
`StatusCallback`, like Twilio; `await fake.answer(...)` fetches the call's `Url` as Twilio does
when the callee picks up, and `await fake.press(...)` posts a key pressed during a `<Gather>` to
its action. Every request is recorded, and checked against Twilio's published OpenAPI
description; the TwiML a call runs is checked against the `<Gather>` rules Twilio documents
(`twiml_violations`): a violation fails the test when the fake stops.

Longer than the house limit because it is one provider's whole surface (REST + callbacks +
scripted faults); the pieces are small and only meaningful together.
"""

from __future__ import annotations

import base64
import re
import secrets
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit
from xml.etree import ElementTree

import httpx
import phonenumbers
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp
from twilio.request_validator import RequestValidator

from tests.contracts.twilio_contract import ContractViolation, violations

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fake-twilio-auth-token-0123456789"
API_VERSION = "2010-04-01"
TERMINAL = ("completed", "busy", "no-answer", "failed", "canceled")
# one script per final status, as Twilio reports them; SIP codes are the usual ones
_SIP = {"completed": "200", "busy": "486", "no-answer": "487", "canceled": "487", "failed": "500"}
_EVENT_OF = {"initiated": "initiated", "ringing": "ringing", "in-progress": "answered"}
#: Twilio's <Gather>: the verbs it nests, and its attributes' allowed values (Twilio's TwiML
#: reference for <Gather>); an attribute not listed here is not one Twilio knows.
GATHER_NESTS = frozenset({"Say", "Play", "Pause"})
_KEYS = frozenset("0123456789*#")
_GATHER_ATTRIBUTES: dict[str, Callable[[str], bool]] = {
    "action": lambda v: bool(v),
    "method": lambda v: v in ("GET", "POST"),
    "input": lambda v: set(v.split()) <= {"dtmf", "speech"},
    "numDigits": lambda v: v.isdigit() and int(v) >= 1,
    "timeout": lambda v: v.isdigit() and int(v) >= 1,
    "finishOnKey": lambda v: v == "" or v in _KEYS,
    "actionOnEmptyResult": lambda v: v in ("true", "false"),
    **dict.fromkeys(
        (
            "bargeIn",
            "debug",
            "enhanced",
            "hints",
            "language",
            "maxSpeechTime",
            "partialResultCallback",
            "partialResultCallbackMethod",
            "profanityFilter",
            "speechModel",
            "speechTimeout",
        ),
        lambda v: True,
    ),
}

Event = tuple[str, dict[str, str]]  # (CallStatus, extra callback params)


def rfc2822(moment: datetime) -> str:
    """Twilio's date format: 'Tue, 31 Aug 2010 20:36:28 +0000'."""
    return format_datetime(moment.astimezone(UTC))


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class ThreadedServer:
    """Serves an ASGI app on 127.0.0.1 at a free port from a background thread; also a
    ready-made callback receiver for tests."""

    def __init__(self, app: ASGIApp) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self) -> Self:
        self._thread.start()
        for _ in range(500):
            if self._server.started or not self._thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not self._server.started:
            raise RuntimeError(f"server at {self.url} did not start")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received; `check_request(*recorded)` re-checks it."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes

    def __iter__(self) -> Iterator[Any]:
        return iter((self.method, self.url, self.headers, self.body))

    @property
    def form(self) -> list[tuple[str, str]]:
        return parse_qsl(self.body.decode(), keep_blank_values=True)

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(urlsplit(self.url).query, keep_blank_values=True)


@dataclass
class FakeCall:
    """A call as the fake's Twilio holds it; `params` is the create form, repeated keys kept."""

    sid: str
    account_sid: str
    params: dict[str, list[str]]
    date_created: datetime
    status: str = "queued"
    date_updated: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration: str | None = None
    answered_by: str | None = None
    next_sequence: int = 0
    twiml: str | None = None  # what the call runs now: its Twiml, then each answer's TwiML

    def param(self, name: str) -> str | None:
        values = self.params.get(name)
        return values[-1] if values else None

    @property
    def to(self) -> str:
        return self.param("To") or ""

    @property
    def from_(self) -> str:
        return self.param("From") or ""

    def resource(self) -> dict[str, Any]:
        """The call's JSON as Twilio's API returns it."""
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}"
        subresources = (
            "notifications",
            "recordings",
            "payments",
            "events",
            "siprec",
            "streams",
            "transcriptions",
            "user_defined_message_subscriptions",
            "user_defined_messages",
        )
        return {
            "account_sid": self.account_sid,
            "annotation": None,
            "answered_by": self.answered_by,
            "api_version": API_VERSION,
            "caller_name": None,
            "date_created": rfc2822(self.date_created),
            "date_updated": rfc2822(self.date_updated or self.date_created),
            "direction": "outbound-api",
            "duration": self.duration,
            "end_time": rfc2822(self.end_time) if self.end_time else None,
            "forwarded_from": None,
            "from": self.from_,
            "from_formatted": _formatted(self.from_),
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": None,
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "sid": self.sid,
            "start_time": rfc2822(self.start_time) if self.start_time else None,
            "status": self.status,
            "subresource_uris": {name: f"{uri}/{_camel(name)}.json" for name in subresources},
            "to": self.to,
            "to_formatted": _formatted(self.to),
            "trunk_sid": None,
            "uri": f"{uri}.json",
        }


@dataclass
class _Failure:
    status: int
    code: int | None
    message: str
    times: int | None  # None: every time
    after_create: bool


@dataclass(frozen=True)
class Callback:
    """One status callback, its state change already made at the provider."""

    call_sid: str
    url: str
    method: str
    params: dict[str, str]
    idempotency_token: str


@dataclass(frozen=True)
class Delivered:
    callback: Callback
    signature: str
    status_code: int  # 0: the receiver could not be reached


@dataclass
class Pending:
    """Callbacks Twilio owes but has not sent yet (`late`): `await pending.deliver()` sends them."""

    fake: FakeTwilio
    callbacks: list[Callback]

    async def deliver(self, *, duplicate: bool = False, forge: bool = False) -> list[int]:
        return await self.fake.deliver(self.callbacks, duplicate=duplicate, forge=forge)


@dataclass
class FakeTwilio:
    """Twilio's Calls API for one account. Use as a context manager (starts and stops the server;
    on a clean exit raises `ContractViolation` if any request broke Twilio's published API)."""

    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    now: Callable[[], datetime] = _utc_now
    check_contract: bool = True
    requests: list[RecordedRequest] = field(default_factory=list)
    calls: dict[str, FakeCall] = field(default_factory=dict)  # by sid, in creation order
    delivered: list[Delivered] = field(default_factory=list)
    contract_violations: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._failures: dict[str, list[_Failure]] = {}
        self._server = ThreadedServer(
            Starlette(
                routes=[
                    Route("/{path:path}", self._handle, methods=["GET", "POST", "DELETE", "PUT"])
                ]
            )
        )
        self.url = self._server.url

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if kind is None:
            self.assert_contract()

    def assert_contract(self) -> None:
        with self._lock:
            found = list(self.contract_violations)
        if found:
            raise ContractViolation("*", self.url, found)

    # --- what the test scripts -----------------------------------------------------------------

    def fail_create(
        self,
        to: str,
        *,
        status: int = 400,
        code: int | None = 21211,
        message: str | None = None,
        times: int | None = None,
        after_create: bool = False,
    ) -> None:
        """Make creates to `to` fail `times` times (None: always) with Twilio's error JSON.
        `after_create=True` creates the call anyway, as when Twilio's answer is lost."""
        if message is None:
            message = (
                f"The 'To' number {to} is not a valid phone number."
                if code == 21211
                else "Service Unavailable"
                if status == 503
                else f"HTTP {status}"
            )
        with self._lock:
            self._failures.setdefault(to, []).append(
                _Failure(status, code, message, times, after_create)
            )

    def created_per_to(self) -> Counter[str]:
        """Calls placed per number (including ones whose create answer was an error)."""
        with self._lock:
            return Counter(call.to for call in self.calls.values())

    def create_requests_per_to(self) -> Counter[str]:
        with self._lock:
            return Counter(
                dict(r.form).get("To", "")
                for r in self.requests
                if r.method == "POST" and urlsplit(r.url).path.endswith("/Calls.json")
            )

    def call(self, sid: str) -> FakeCall:
        with self._lock:
            return self.calls[sid]

    def script(
        self,
        sid: str,
        outcome: str = "completed",
        *,
        answered_by: str | None = None,
        duration: int = 42,
        sip_code: int | None = None,
    ) -> list[Event]:
        """The callbacks Twilio sends for a call that ends in `outcome` (a final CallStatus).
        AnsweredBy appears when the call asked for MachineDetection (default `human`)."""
        if outcome not in TERMINAL:
            raise ValueError(f"outcome must be one of {TERMINAL}, not {outcome!r}")
        amd = self.call(sid).param("MachineDetection") is not None
        by = {"AnsweredBy": answered_by or "human"} if amd or answered_by else {}
        sip = {"SipResponseCode": str(sip_code) if sip_code else _SIP[outcome]}
        if outcome == "completed":
            return [
                ("initiated", {}),
                ("ringing", {}),
                ("in-progress", dict(by)),
                ("completed", {"CallDuration": str(duration), **by, **sip}),
            ]
        if outcome in ("busy", "failed"):
            return [("initiated", {}), (outcome, {"CallDuration": "0", **sip})]
        return [("initiated", {}), ("ringing", {}), (outcome, {"CallDuration": "0", **sip})]

    async def send(
        self,
        call_sid: str,
        events: Sequence[Event],
        *,
        duplicate: bool = False,
        forge: bool = False,
    ) -> list[int]:
        """Move the call through `events` and post their callbacks, in order; the receiver's
        status codes. Events the call did not subscribe to (StatusCallbackEvent) are applied
        but not sent, as at Twilio."""
        return await self.deliver(self.advance(call_sid, events), duplicate=duplicate, forge=forge)

    async def normal(self, sid: str, outcome: str = "completed", **script: Any) -> list[int]:
        return await self.send(sid, self.script(sid, outcome, **script))

    async def duplicated(self, sid: str, outcome: str = "completed", **script: Any) -> list[int]:
        """Every callback twice (same SequenceNumber and idempotency token), like a retry."""
        return await self.send(sid, self.script(sid, outcome, **script), duplicate=True)

    async def out_of_order(self, sid: str, outcome: str = "completed", **script: Any) -> list[int]:
        """The final callback arrives before `ringing` (SequenceNumber still tells the truth)."""
        callbacks = self.advance(sid, self.script(sid, outcome, **script))
        final = callbacks[-1]
        rest = callbacks[:-1]
        at = next((i for i, c in enumerate(rest) if c.params["CallStatus"] == "ringing"), 0)
        return await self.deliver([*rest[:at], final, *rest[at:]])

    async def lost(
        self, sid: str, outcome: str = "completed", *, deliver_first: int = 0, **script: Any
    ) -> list[int]:
        """The call ends at Twilio but only the first `deliver_first` callbacks ever arrive."""
        callbacks = self.advance(sid, self.script(sid, outcome, **script))
        return await self.deliver(callbacks[:deliver_first])

    def late(self, sid: str, outcome: str = "completed", **script: Any) -> Pending:
        """The call ends at Twilio now; its callbacks go when the test says `pending.deliver()`."""
        return Pending(self, self.advance(sid, self.script(sid, outcome, **script)))

    def advance(self, call_sid: str, events: Sequence[Event]) -> list[Callback]:
        """Apply `events` to the call as Twilio would and return the callbacks it owes."""
        out: list[Callback] = []
        with self._lock:
            call = self.calls[call_sid]
            subscribed = set(call.params.get("StatusCallbackEvent", [])) | {"completed"}
            for status, extras in events:
                status = "in-progress" if status == "answered" else status
                moment = self.now()
                self._apply(call, status, extras, moment)
                sequence = call.next_sequence
                call.next_sequence += 1
                url = call.param("StatusCallback")
                if url is None or _EVENT_OF.get(status, "completed") not in subscribed:
                    continue
                params = {
                    **self._call_params(call, status),
                    "SequenceNumber": str(sequence),
                    "Timestamp": rfc2822(moment),
                    "CallbackSource": "call-progress-events",
                    **extras,
                }
                method = (call.param("StatusCallbackMethod") or "POST").upper()
                out.append(Callback(call_sid, url, method, params, _idempotency_token()))
        return out

    async def deliver(
        self, callbacks: Sequence[Callback], *, duplicate: bool = False, forge: bool = False
    ) -> list[int]:
        """Post callbacks, signed like Twilio's (with a wrong token when `forge`)."""
        codes: list[int] = []
        async with httpx.AsyncClient(timeout=10) as http:
            for callback in callbacks:
                for _ in range(2 if duplicate else 1):
                    signature, code, _ = await self._post(
                        http,
                        callback.url,
                        callback.method,
                        callback.params,
                        headers={"I-Twilio-Idempotency-Token": callback.idempotency_token},
                        forge=forge,
                    )
                    with self._lock:
                        self.delivered.append(Delivered(callback, signature, code))
                    codes.append(code)
        return codes

    async def press(
        self, call_sid: str, key: str, *, gather: int = 0, forge: bool = False
    ) -> tuple[int, str]:
        """The callee presses `key` while the call's `gather`-th <Gather> plays: post it to that
        Gather's action, signed like Twilio's (with a wrong token when `forge`), as Twilio
        does; (the receiver's status code, its TwiML), which the call runs from then on."""
        with self._lock:
            call = self.calls[call_sid]
            if call.twiml is None:
                raise ValueError(f"{call_sid} runs no TwiML yet (answer it first)")
            found = list(ElementTree.fromstring(call.twiml).iter("Gather"))
            if len(found) <= gather:
                raise ValueError(f"{call_sid}'s TwiML has {len(found)} <Gather>: {call.twiml}")
            element = found[gather]
            # The finishing key ends the input and is not part of it.
            digits = "" if key == element.get("finishOnKey", "#") else key
            url = urljoin(call.param("Url") or "", element.get("action", ""))
            method = element.get("method", "POST").upper()
            params = {**self._call_params(call, call.status), "Digits": digits}
        async with httpx.AsyncClient(timeout=10) as http:
            _, code, text = await self._post(http, url, method, params, forge=forge)
        if 200 <= code < 300:
            self._runs(call, text, f"the answer of {url}")
        return code, text

    def _runs(self, call: FakeCall, twiml: str, what: str) -> None:
        """The call runs this TwiML now; a breach of Twilio's <Gather> rules is a violation."""
        with self._lock:
            call.twiml = twiml
            self.contract_violations += [f"{what}: {v}" for v in twiml_violations(twiml)]

    async def answer(self, call_sid: str, answered_by: str | None = None) -> str:
        """The callee picks up: fetch the call's `Url` as Twilio does (signed; AnsweredBy when
        the call asked for MachineDetection) and return the TwiML the service answered."""
        with self._lock:
            call = self.calls[call_sid]
            url = call.param("Url")
            if url is None:
                raise ValueError(f"{call_sid} was created without Url; its TwiML is in params")
            amd = call.param("MachineDetection") is not None
            by = answered_by or ("human" if amd else None)
            self._apply(call, "in-progress", {"AnsweredBy": by} if by else {}, self.now())
            params = self._call_params(call, "in-progress")
            if by:
                params["AnsweredBy"] = by
            method = (call.param("Method") or "POST").upper()
        async with httpx.AsyncClient(timeout=10) as http:
            _, code, text = await self._post(http, url, method, params)
        if not 200 <= code < 300:
            raise RuntimeError(f"{method} {url} answered {code}: {text[:500]}")
        self._runs(call, text, f"the answer of {url}")
        return text

    # --- the REST API --------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        recorded = RecordedRequest(request.method, str(request.url), dict(request.headers), body)
        with self._lock:
            self.requests.append(recorded)
        if self.check_contract:
            _, found = violations(*recorded)
            with self._lock:
                self.contract_violations += [f"{request.method} {request.url}: {v}" for v in found]
        path = request.url.path
        if not self._authorized(request):
            return _error(401, 20003, "Authenticate")
        prefix = rf"/{API_VERSION}/Accounts/(?P<account>[^/]+)/Calls"
        if m := re.fullmatch(prefix + r"\.json", path):
            if m["account"] != self.account_sid:
                return _not_found(path)
            if request.method == "POST":
                return self._create(recorded)
            if request.method == "GET":
                return self._list(recorded)
            return _error(405, 20004, "Method not allowed")
        if m := re.fullmatch(prefix + r"/(?P<sid>[^/]+)\.json", path):
            with self._lock:
                call = self.calls.get(m["sid"])
            if m["account"] != self.account_sid or call is None:
                return _not_found(path)
            if request.method == "GET":
                return JSONResponse(call.resource())
            if request.method == "POST":
                return self._update(call, recorded)
            return _error(405, 20004, "Method not allowed")
        return _not_found(path)

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return secrets.compare_digest(f"{user}:{password}", f"{self.account_sid}:{self.auth_token}")

    def _create(self, recorded: RecordedRequest) -> Response:
        params: dict[str, list[str]] = {}
        for key, value in recorded.form:
            params.setdefault(key, []).append(value)
        to = (params.get("To") or [""])[-1]
        with self._lock:
            failure = self._take_failure(to)
            if failure is not None and not failure.after_create:
                return _error(failure.status, failure.code, failure.message)
            # Twilio's own checks (codes as its error dictionary gives them)
            if not to:
                return _error(400, 21201, "No 'To' number is specified")
            if not params.get("From"):
                return _error(400, 21603, "A 'From' phone number is required.")
            if not (params.get("Url") or params.get("Twiml") or params.get("ApplicationSid")):
                return _error(400, 21205, "Url parameter is required.")
            now = self.now()
            sid = "CA" + secrets.token_hex(16)
            call = self.calls[sid] = FakeCall(sid, self.account_sid, params, now, date_updated=now)
            if params.get("Twiml"):
                self._runs(call, params["Twiml"][-1], f"{sid}'s Twiml")
            if failure is not None:  # placed, but the answer is an error
                return _error(failure.status, failure.code, failure.message)
            return JSONResponse(call.resource(), status_code=201)

    def _take_failure(self, to: str) -> _Failure | None:
        queue = self._failures.get(to, [])
        for failure in queue:
            if failure.times is None:
                return failure
            if failure.times > 0:
                failure.times -= 1
                return failure
        return None

    def _list(self, recorded: RecordedRequest) -> Response:
        query = dict(recorded.query)
        try:
            page = int(query.get("Page", "0"))
            size = min(int(query.get("PageSize", "50")), 1000)
        except ValueError:
            return _error(400, 20001, "Invalid paging parameter")
        with self._lock:
            found = [c for c in self.calls.values() if _matches(c, query)]
            found.reverse()  # newest first; creation order breaks date_created ties
            found.sort(key=lambda c: c.date_created, reverse=True)
            rows = [c.resource() for c in found[page * size : (page + 1) * size]]
        filters = [(k, v) for k, v in recorded.query if k not in ("Page", "PageSize", "PageToken")]
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls.json"

        def page_uri(n: int) -> str:
            token = [("PageToken", f"PA{found[n * size - 1].sid}")] if n > 0 else []
            return f"{base}?{urlencode([*filters, ('PageSize', size), ('Page', n), *token])}"

        more = (page + 1) * size < len(found)
        return JSONResponse(
            {
                "calls": rows,
                "end": page * size + max(len(rows) - 1, 0),
                "first_page_uri": page_uri(0),
                "next_page_uri": page_uri(page + 1) if more else None,
                "page": page,
                "page_size": size,
                "previous_page_uri": page_uri(page - 1) if page > 0 else None,
                "start": page * size,
                "uri": page_uri(page),
            }
        )

    def _update(self, call: FakeCall, recorded: RecordedRequest) -> Response:
        form = dict(recorded.form)
        with self._lock:
            wanted = form.pop("Status", None)
            if wanted == "canceled" and call.status in ("queued", "ringing"):
                self._apply(call, "canceled", {}, self.now())
            elif wanted == "completed" and call.status not in TERMINAL:
                self._apply(call, "completed", {}, self.now())
            for key, value in form.items():
                call.params[key] = [value]
            return JSONResponse(call.resource())

    # --- state and callbacks -------------------------------------------------------------------

    @staticmethod
    def _apply(call: FakeCall, status: str, extras: dict[str, str], moment: datetime) -> None:
        """What Twilio's resource shows after an event: dialing sets start_time, the end
        sets end_time and duration; `initiated` is a callback status, not a resource status."""
        call.date_updated = moment
        if call.start_time is None and status != "canceled":
            call.start_time = moment
        if status != "initiated":
            call.status = status
        if "AnsweredBy" in extras:
            call.answered_by = extras["AnsweredBy"]
        if status in TERMINAL:
            call.end_time = moment
            started = call.start_time or moment
            call.duration = extras.get("CallDuration", str(int((moment - started).total_seconds())))

    def _call_params(self, call: FakeCall, status: str) -> dict[str, str]:
        return {
            "AccountSid": call.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": call.sid,
            "CallStatus": status,
            "Called": call.to,
            "Caller": call.from_,
            "Direction": "outbound-api",
            "From": call.from_,
            "To": call.to,
        }

    async def _post(
        self,
        http: httpx.AsyncClient,
        url: str,
        method: str,
        params: dict[str, str],
        *,
        headers: dict[str, str] | None = None,
        forge: bool = False,
    ) -> tuple[str, int, str]:
        """(signature sent, receiver's status code or 0 if unreachable, response text)."""
        token = f"forged-{self.auth_token}" if forge else self.auth_token
        validator = RequestValidator(token)
        if method == "GET":  # Twilio appends the params to the URL and signs that
            parts = urlsplit(url)
            query = "&".join(q for q in (parts.query, urlencode(params)) if q)
            url, params = urlunsplit(parts._replace(query=query)), {}
        signature = validator.compute_signature(url, params)
        all_headers = {
            "X-Twilio-Signature": signature,
            "User-Agent": "TwilioProxy/1.1",
            **(headers or {}),
        }
        try:
            response = await http.request(method, url, data=params or None, headers=all_headers)
        except httpx.TransportError:
            return signature, 0, ""
        return signature, response.status_code, response.text


# --- helpers -----------------------------------------------------------------------------------


def twiml_violations(twiml: str) -> list[str]:
    """Where a TwiML document breaks Twilio's rules for <Gather>: a verb it does not nest, a
    Gather in a Gather, an attribute Twilio does not know or a value it does not allow."""
    try:
        root = ElementTree.fromstring(twiml)
    except ElementTree.ParseError as exc:
        return [f"not well-formed XML ({exc})"]
    if root.tag != "Response":
        return [f"the root is <{root.tag}>, not <Response>"]
    found: list[str] = []
    for gather in root.iter("Gather"):
        for child in gather:
            if child.tag not in GATHER_NESTS:
                found.append(f"<Gather> nests <{child.tag}>; Twilio nests only {GATHER_NESTS}")
        for name, value in gather.attrib.items():
            allowed = _GATHER_ATTRIBUTES.get(name)
            if allowed is None:
                found.append(f"<Gather {name}>: not an attribute of <Gather>")
            elif not allowed(value):
                found.append(f"<Gather {name}={value!r}>: not a value Twilio allows")
    return found


def _matches(call: FakeCall, query: dict[str, str]) -> bool:
    if "To" in query and call.to != query["To"]:
        return False
    if "From" in query and call.from_ != query["From"]:
        return False
    if "Status" in query and call.status != query["Status"]:
        return False
    for moment_name, attr in (("StartTime", call.start_time), ("EndTime", call.end_time)):
        for suffix, keep in (
            ("", lambda d, v: d == v),
            ("<", lambda d, v: d < v),
            (">", lambda d, v: d >= v),  # Twilio: "on or after this date"
        ):
            value = query.get(moment_name + suffix)
            if value is None:
                continue
            if attr is None:  # a queued call has no start_time and matches no StartTime filter
                return False
            if not keep(attr.astimezone(UTC).date(), date.fromisoformat(value[:10])):
                return False
    return True


def _error(status: int, code: int | None, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}" if code else None,
            "status": status,
        },
        status_code=status,
    )


def _not_found(path: str) -> JSONResponse:
    return _error(404, 20404, f"The requested resource {path} was not found")


def _idempotency_token() -> str:
    return f"{secrets.token_hex(16)}-{secrets.token_hex(8)}"


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _formatted(number: str) -> str:
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return number
    if parsed.country_code == 1:
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
