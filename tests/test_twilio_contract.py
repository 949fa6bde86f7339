"""The contract checker accepts what Twilio's published API allows and names what it does not."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

import pytest

from tests.contracts.extract_twilio_calls import extract
from tests.contracts.twilio_contract import (
    SPEC_PATH,
    ContractViolation,
    check_request,
    response_violations,
)

ACCOUNT = "AC" + "a" * 32
CALLS = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Calls.json"
AUTH = "Basic " + base64.b64encode(f"{ACCOUNT}:token".encode()).decode()
FORM = {"Authorization": AUTH, "Content-Type": "application/x-www-form-urlencoded"}
VALID_CREATE = [
    ("To", "+15551230001"),
    ("From", "+15550009999"),
    ("Twiml", "<Response><Say>Hello</Say></Response>"),
    ("StatusCallback", "https://redialer.example/twilio/status"),
    *[("StatusCallbackEvent", e) for e in ("initiated", "ringing", "answered", "completed")],
    ("StatusCallbackMethod", "POST"),
    ("Timeout", "30"),
    ("MachineDetection", "Enable"),
]


def create(changes: dict[str, str | None]) -> bytes:
    """The valid create body with some fields replaced (None: left out)."""
    pairs = [(k, changes.get(k, v)) for k, v in VALID_CREATE if changes.get(k, v) is not None]
    return urlencode(pairs).encode()


def test_valid_create_passes() -> None:
    """A create with repeated StatusCallbackEvent and form-encoded integers conforms."""
    assert check_request("POST", CALLS, FORM, create({})) == "CreateCall"


@pytest.mark.parametrize(
    ("changes", "field", "why"),
    [
        ({"To": None}, "To", "required"),
        ({"Timeout": "abc"}, "Timeout", "not of type 'integer'"),
        ({"MachineDetection": "Sometimes"}, "MachineDetection", "is not one of"),
    ],
)
def test_invalid_create_names_the_field(
    changes: dict[str, str | None], field: str, why: str
) -> None:
    """A missing, mistyped or unknown-valued field fails with a message naming it."""
    with pytest.raises(ContractViolation) as raised:
        check_request("POST", CALLS, FORM, create(changes))
    assert len(raised.value.violations) == 1
    assert f"body.{field}" in raised.value.violations[0]
    assert why in str(raised.value)


def test_every_violation_is_listed() -> None:
    """One request with several faults reports all of them, not the first one only."""
    body = create({"To": None, "Timeout": "abc", "StatusCallback": "/relative"})
    with pytest.raises(ContractViolation) as raised:
        check_request("POST", CALLS, {"Content-Type": FORM["Content-Type"]}, body)
    text = "\n".join(raised.value.violations)
    for expected in ("body.To", "body.Timeout", "body.StatusCallback", "Security"):
        assert expected in text
    assert len(raised.value.violations) == 4


def test_list_with_to_and_start_time_after_passes() -> None:
    """Listing by To and `StartTime>` conforms, as a date and as twilio-python's datetime."""
    for since in ("2026-11-30", "2026-11-30T00:00:00Z"):
        url = f"{CALLS}?{urlencode({'To': '+15551230001', 'StartTime>': since})}"
        assert check_request("GET", url, {"Authorization": AUTH}) == "ListCall"


def test_list_rejects_unknown_filters_and_bad_dates() -> None:
    """A misspelt filter (Twilio would ignore it) and a non-date are both named."""
    url = f"{CALLS}?{urlencode({'StartTime>=': '2026-11-30', 'StartTime<': 'yesterday'})}"
    with pytest.raises(ContractViolation) as raised:
        check_request("GET", url, {"Authorization": AUTH})
    text = "\n".join(raised.value.violations)
    assert "'StartTime>='" in text and "'StartTime<'" in text


def test_fetch_and_hang_up_pass() -> None:
    """Fetching a call and updating it to completed conform; an invalid status does not."""
    one = CALLS.replace("Calls.json", "Calls/CA" + "b" * 32 + ".json")
    assert check_request("GET", one, {"Authorization": AUTH}) == "FetchCall"
    assert check_request("POST", one, FORM, b"Status=completed") == "UpdateCall"
    with pytest.raises(ContractViolation, match="body.Status"):
        check_request("POST", one, FORM, b"Status=ringing")


def test_vendored_subset_is_closed_and_sourced() -> None:
    """The subset names its source commit and holds every schema its operations reference."""
    subset = json.loads(SPEC_PATH.read_text())
    source = subset["info"]["x-vendored-from"]
    assert len(source["commit"]) == 40 and source["path"] == "spec/json/twilio_api_v2010.json"
    again = extract(subset, vendored_from=source)
    assert again == subset


def test_documented_call_shape_is_checkable() -> None:
    """A call resource in Twilio's shape passes the response check; an unknown status fails."""
    assert response_violations("FetchCall", 200, {"sid": "CA" + "c" * 32, "status": "queued"}) == []
    assert response_violations("FetchCall", 200, {"status": "dialing"})
