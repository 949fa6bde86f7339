"""Twilio's statuses map to redialer's outcomes as the table in twilio_status.py says, row by
row, and the `call` section of a spec renders and refuses as documented."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from redialer.call_spec import CallSpec, render
from redialer.dialers.twilio_status import outcome_of
from redialer.outcomes import Outcome

Out = Outcome


@pytest.mark.parametrize(
    ("status", "answered_by", "sip", "outcome"),
    [
        ("completed", "machine_start", None, Out.VOICEMAIL),
        ("completed", "machine_end_beep", None, Out.VOICEMAIL),
        ("completed", "machine_end_silence", None, Out.VOICEMAIL),
        ("completed", "machine_end_other", None, Out.VOICEMAIL),
        ("completed", "fax", None, Out.VOICEMAIL),
        ("completed", "human", None, Out.COMPLETED),
        ("completed", "unknown", None, Out.COMPLETED),
        ("completed", None, None, Out.COMPLETED),
        ("busy", None, None, Out.BUSY),
        ("no-answer", None, None, Out.NO_ANSWER),
        ("canceled", None, None, Out.CANCELED),
        ("failed", None, 404, Out.INVALID_NUMBER),
        ("failed", None, 410, Out.INVALID_NUMBER),
        ("failed", None, 484, Out.INVALID_NUMBER),
        ("failed", None, 604, Out.INVALID_NUMBER),
        ("failed", None, 603, Out.REJECTED),
        ("failed", None, 607, Out.REJECTED),
        ("failed", None, 608, Out.REJECTED),
        ("failed", None, 486, Out.BUSY),
        ("failed", None, 600, Out.BUSY),
        ("failed", None, 408, Out.NO_ANSWER),
        ("failed", None, 480, Out.NO_ANSWER),
        ("failed", None, 503, Out.FAILED),
        ("failed", None, None, Out.FAILED),
        ("queued", None, None, None),
        ("initiated", None, None, None),
        ("ringing", None, None, None),
        ("in-progress", "human", None, None),
    ],
)
def test_each_twilio_status_gives_its_outcome(status, answered_by, sip, outcome):
    """One row of the documented mapping table."""
    assert outcome_of(status, answered_by=answered_by, sip_code=sip) is outcome


def test_variables_are_xml_escaped_so_a_name_cannot_inject_instructions():
    """`{{name}}` takes the variable, escaped; a missing one is left empty."""
    template = "<Response><Say>Hello {{ name }}, {{missing}}</Say></Response>"
    evil = {"name": "</Say><Dial>+19005550000</Dial><Say>"}
    assert render(template, evil) == (
        "<Response><Say>Hello &lt;/Say&gt;&lt;Dial&gt;+19005550000&lt;/Dial&gt;&lt;Say&gt;, "
        "</Say></Response>"
    )
    assert render("<Response><Say>{{n}}</Say></Response>", {"n": 3}) == (
        "<Response><Say>3</Say></Response>"
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ({}, "exactly one of twiml"),
        ({"twiml": "<Response/>", "url": "https://x.example/a"}, "exactly one of twiml"),
        ({"twiml": "<Response><Say>hi</Response>"}, "not well-formed XML"),
        ({"twiml": "<Say>hi</Say>"}, "root is <Response>"),
        ({"url": "ftp://x.example/a"}, "should match pattern"),
        ({"twiml": "<Response/>", "ring_timeout": 2}, "greater than or equal to 5"),
        ({"twiml": "<Response/>", "voicemail_message": "<Response/>"}, "needs machine_detection"),
        (
            {
                "url": "https://x.example/a",
                "machine_detection": True,
                "voicemail_message": "<Response/>",
            },
            "works with twiml, not url",
        ),
    ],
)
def test_a_call_section_that_cannot_work_is_refused_with_the_rule(call, message):
    """Every refusal says which rule the `call` section broke."""
    with pytest.raises(ValidationError, match=message):
        CallSpec.model_validate(call)
