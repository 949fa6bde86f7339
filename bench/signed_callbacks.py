"""Status callbacks as Twilio signs them, for the callback load; and the CPU of a callback's
two named parts (the signature check, the store's write) measured alone."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from bench.run import phones
from redialer.dialers.twilio import CALLBACK_EVENTS, status_callback_url
from redialer.store.provider_calls import ProviderCalls
from redialer.store.store import Store
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeCall, FakeTwilio

CALLER = "+15550009999"


def signed_calls(public_url: str, n: int) -> tuple[list[tuple[str, str]], list[list[list[str]]]]:
    """n calls' (sid, key) and their callbacks as the fake Twilio scripts a completed call,
    each as [url, form body, X-Twilio-Signature]."""
    fake = FakeTwilio(check_contract=False)  # never started: only its callback scripts
    validator = RequestValidator(AUTH_TOKEN)
    ids, requests = [], []
    for i, phone in enumerate(phones("312", n)):
        sid = "CA" + uuid.uuid4().hex
        key = f"bench-callbacks:{phone}:{i}"
        fake.calls[sid] = FakeCall(
            sid,
            ACCOUNT_SID,
            {
                "To": [phone],
                "From": [CALLER],
                "StatusCallback": [status_callback_url(public_url, key)],
                "StatusCallbackEvent": list(CALLBACK_EVENTS),
                "StatusCallbackMethod": ["POST"],
            },
            datetime.now(UTC),
        )
        callbacks = fake.advance(sid, fake.script(sid, "completed"))
        ids.append((sid, key))
        requests.append(
            [
                [c.url, urlencode(c.params), validator.compute_signature(c.url, c.params)]
                for c in callbacks
            ]
        )
    return ids, requests


def component_costs(store: Store, public_url: str, n: int = 100) -> dict[str, float]:
    """CPU of the two named parts of a callback, alone in this process (ms per callback): the
    signature check, and the store's `take_callback`; the rest of the api's CPU is the HTTP
    stack (uvicorn, h11, Starlette, FastAPI, the form parser) and the thread hop."""
    from urllib.parse import parse_qsl

    ids, requests = signed_calls(public_url, n)
    calls = ProviderCalls(store)
    for sid, key in ids:
        calls.placed(call_sid=sid, key=key, status="queued", created_at=datetime.now(UTC))
    flat = [(url, dict(parse_qsl(body)), sig) for call in requests for url, body, sig in call]
    validator = RequestValidator(AUTH_TOKEN)
    t0 = time.thread_time()
    assert all(validator.validate(url, params, sig) for url, params, sig in flat)
    validate = time.thread_time() - t0
    t0 = time.thread_time()
    for url, params, _ in flat:
        calls.take_callback(
            call_sid=params["CallSid"],
            key=url.split("key=", 1)[1],
            sequence_number=int(params["SequenceNumber"]),
            status=params["CallStatus"],
            answered_by=params.get("AnsweredBy"),
            sip_response_code=int(params["SipResponseCode"])
            if "SipResponseCode" in params
            else None,
            duration=int(params["CallDuration"]) if "CallDuration" in params else None,
            at=datetime.now(UTC),
        )
    take = time.thread_time() - t0
    return {
        "validate_signature": round(1000 * validate / len(flat), 3),
        "take_callback": round(1000 * take / len(flat), 3),
    }
