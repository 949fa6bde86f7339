"""Twilio's requests to redialer: status callbacks, what to say when a call is answered, and
the key pressed during a call (`call.opt_out_digit`).

All are verified with `X-Twilio-Signature` (twilio's `RequestValidator`, over the URL Twilio
posted to: `REDIALER_PUBLIC_URL` plus the path and query, which behind a proxy differs from the
URL this process sees) before anything is read; a request that does not verify gets 403 and
changes nothing. Callbacks are deduplicated on (CallSid, SequenceNumber); the first terminal
status ends the attempt; a callback for an attempt already ended is answered 204 and logged.

The opt-out digit puts the number Twilio called (its signed `To`) on the suppression list before
the answer goes back, so no later dial in any campaign calls it; the person hears a short
confirmation that names nothing about them. Another key plays the instructions again from the
start (a key interrupts what was playing, and Twilio cannot resume mid-sentence).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import structlog
from fastapi import APIRouter, Query, Request, Response
from twilio.request_validator import RequestValidator

from redialer.dialers.twilio_status import MACHINE, TERMINAL
from redialer.store.provider_calls import CallbackEffect, ProviderCalls
from redialer.store.store import Store
from redialer.store.tables import SuppressionRow

log = structlog.get_logger(__name__)

HANG_UP = '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>'
#: What the person who pressed the opt-out digit hears: nothing about them, then the line drops.
OPTED_OUT = (
    '<?xml version="1.0" encoding="UTF-8"?><Response>'
    "<Say>You will not be called again. Goodbye.</Say><Hangup/></Response>"
)
#: Callback statuses in the order a call goes through them, for a missing SequenceNumber.
_ORDER = ["queued", "initiated", "ringing", "in-progress", *sorted(TERMINAL)]


def twilio_router(*, store: Store, auth_token: str, public_url: str) -> APIRouter:
    router = APIRouter(prefix="/twilio", tags=["provider callbacks"])
    calls = ProviderCalls(store)
    validator = RequestValidator(auth_token)
    base = public_url.rstrip("/")

    async def verified(request: Request) -> dict[str, str] | None:
        """The form parameters, if Twilio signed exactly this request; None otherwise."""
        form = await request.form()
        params = {k: str(v) for k, v in form.items()}
        query = request.url.query
        url = base + request.url.path + (f"?{query}" if query else "")
        signature = request.headers.get("X-Twilio-Signature", "")
        return params if validator.validate(url, params, signature) else None

    @router.post("/status", status_code=204, summary="Twilio status callback")
    async def status_callback(request: Request, key: str = Query(...)) -> Response:
        params = await verified(request)
        if params is None:
            log.warning("status callback refused: bad signature", key=key)
            return Response(status_code=403)
        sid, status = params.get("CallSid", ""), params.get("CallStatus", "")
        if not sid or not status:
            return Response(status_code=400)
        effect = await asyncio.to_thread(
            calls.take_callback,
            call_sid=sid,
            key=key,
            sequence_number=_sequence(params, status),
            status=status,
            answered_by=params.get("AnsweredBy") or None,
            sip_response_code=_int(params.get("SipResponseCode")),
            duration=_int(params.get("CallDuration")),
            at=_timestamp(params.get("Timestamp")),
        )
        bound = log.bind(key=key, call=sid, status=status, effect=effect.value)
        if effect is CallbackEffect.ALREADY_ENDED:
            bound.info("status callback after the call ended: nothing changed")
        else:
            bound.debug("status callback")
        return Response(status_code=204)

    @router.post("/answer", summary="What an answered call does (by AnsweredBy)")
    async def answer(request: Request, key: str = Query(...)) -> Response:
        params = await verified(request)
        if params is None:
            log.warning("answer refused: bad signature", key=key)
            return Response(status_code=403)
        sid = params.get("CallSid", "")
        row = await asyncio.to_thread(calls.get, sid) or await asyncio.to_thread(calls.for_key, key)
        if row is None:
            log.warning("answer for a call redialer does not know: hanging up", key=key, call=sid)
            return Response(HANG_UP, media_type="application/xml")
        if params.get("AnsweredBy") in MACHINE:
            if row.voicemail_twiml is None:
                return Response(HANG_UP, media_type="application/xml")
            await asyncio.to_thread(calls.message_left, row.call_sid)
            return Response(row.voicemail_twiml, media_type="application/xml")
        return Response(row.answer_twiml or HANG_UP, media_type="application/xml")

    @router.post("/gather", summary="A key pressed during a call (the opt-out digit)")
    async def gather(
        request: Request,
        key: str = Query(...),
        opt_out: str = Query(...),
        campaign: str | None = Query(None),
    ) -> Response:
        params = await verified(request)
        if params is None:
            log.warning("gather refused: bad signature", key=key)
            return Response(status_code=403)
        sid, digits = params.get("CallSid", ""), params.get("Digits", "")
        bound = log.bind(key=key, call=sid, campaign=campaign)
        if digits != opt_out:
            row = await asyncio.to_thread(calls.get, sid) or await asyncio.to_thread(
                calls.for_key, key
            )
            bound.info("a key other than the opt-out digit: the instructions start again")
            again = row.answer_twiml if row is not None else None
            return Response(again or HANG_UP, media_type="application/xml")
        phone = params.get("To", "")
        if not phone:
            bound.error("opt-out digit pressed but Twilio sent no To: nothing suppressed")
            return Response(status_code=400)
        where = f"campaign {campaign}" if campaign is not None else "a single call"
        source = f"keypress {opt_out} during call {sid} ({where})"
        entry = await asyncio.to_thread(_opt_out, store, phone, campaign, source)
        bound.info(
            "opt-out digit pressed: the number is suppressed",
            reason=entry.reason if entry else None,
            source=entry.source if entry else None,  # an earlier entry keeps its own
        )
        return Response(OPTED_OUT, media_type="application/xml")

    return router


def _opt_out(
    store: Store, phone: str, campaign_id: str | None, source: str
) -> SuppressionRow | None:
    """On the list now (a number already there keeps its first entry); the entry that holds."""
    store.suppress(phone, "opted_out", campaign_id, source=source)
    return store.suppression_entry(phone)


def _sequence(params: dict[str, str], status: str) -> int:
    number = _int(params.get("SequenceNumber"))
    if number is not None:
        return number
    return -1 - (_ORDER.index(status) if status in _ORDER else len(_ORDER))


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _timestamp(value: str | None) -> datetime:
    if value:
        try:
            return parsedate_to_datetime(value).astimezone(UTC)
        except (TypeError, ValueError):
            pass
    return datetime.now(UTC)
