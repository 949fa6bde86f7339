"""The `/v1` API's front door, in process: keys, bad bodies, sizes, content types, unknown ids.

Every refusal is a 4xx in the documented shape naming the field, the value and the rule; nothing
a client sends makes a 5xx. Routes that need Temporal talk to the real dev server.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from redialer.campaign import CampaignPolicy
from redialer.limits import Limits
from redialer.settings import Settings, SettingsError, api_key_digests
from redialer.store.store import Store
from service.app import create_app
from service.call_models import parse_single_call
from service.requests import MAX_JSON_BYTES

KEY = "test-key-0123456789abcdef"
OTHER_KEY = "other-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}


def spec(campaign_id: str, **extra: object) -> dict[str, object]:
    return {
        "campaign_id": campaign_id,
        "retry": {"strategy": {"type": "fixed_delay", "delay": 60, "max_retries": 2}},
        "recipients": [{"phone": "+16505550199"}],
        **extra,
    }


@pytest_asyncio.fixture
async def api(dev_env: WorkflowEnvironment, store: Store) -> AsyncIterator[httpx.AsyncClient]:
    digest = hashlib.sha256(OTHER_KEY.encode()).hexdigest()
    settings = Settings(
        api_keys=f"{KEY}, sha256:{digest}",
        task_queue=f"api-{uuid.uuid4().hex[:8]}",
        database_url=str(store.engine.url),
    )
    app = create_app(settings, store, client=dev_env.client)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


async def test_every_v1_route_needs_a_valid_key(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/openapi.json")).json()
    routes = [
        (
            method.upper(),
            path.replace("{campaign_id}", "c1")
            .replace("{phone}", "+16505550199")
            .replace("{call_id}", "c" + "a" * 26),
        )
        for path, methods in schema["paths"].items()
        if path.startswith("/v1/")
        for method in methods
    ]
    assert len(routes) >= 12
    for method, path in routes:
        for headers in (
            {},
            {"Authorization": "Bearer wrong-key-000000000000"},
            {"x-api-key": "wrong"},
            {"Authorization": f"Basic {KEY}"},
        ):
            response = await api.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.json()["error"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"


async def test_a_key_by_bearer_by_x_api_key_or_by_its_digest(api: httpx.AsyncClient) -> None:
    unknown_call = "/v1/calls/c" + "a" * 26
    for headers in (AUTH, {"x-api-key": KEY}, {"Authorization": f"bearer {OTHER_KEY}"}):
        response = await api.get(unknown_call, headers=headers)
        assert response.status_code == 404, (headers, response.text)
    assert (await api.get("/healthz")).json() == {"status": "ok"}  # open


async def test_without_configured_keys_everything_is_refused(store: Store) -> None:
    app = create_app(Settings(), store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        response = await c.get("/v1/calls/c" + "a" * 26, headers=AUTH)
    assert response.status_code == 401
    assert "REDIALER_API_KEYS" in response.json()["message"]


def test_keys_are_checked_at_start_without_showing_them() -> None:
    with pytest.raises(ValueError, match="entry 2 is 5 characters"):
        api_key_digests(f"{KEY},short")
    with pytest.raises(ValueError, match="entry 1 starts with sha256: but is not 64 hex"):
        api_key_digests("sha256:abc")
    import os

    saved = os.environ.get("REDIALER_API_KEYS")
    os.environ["REDIALER_API_KEYS"] = "tiny-secret"
    try:
        from redialer.settings import get_settings

        get_settings.cache_clear()
        with pytest.raises(SettingsError) as refused:
            get_settings()
        assert "tiny-secret" not in " ".join(refused.value.lines)
        assert "REDIALER_API_KEYS=***" in " ".join(refused.value.lines)
    finally:
        if saved is None:
            del os.environ["REDIALER_API_KEYS"]
        else:
            os.environ["REDIALER_API_KEYS"] = saved
        get_settings.cache_clear()


async def test_a_bad_spec_lists_every_problem_and_starts_nothing(api: httpx.AsyncClient) -> None:
    campaign_id = f"bad-{uuid.uuid4().hex[:8]}"
    body = spec(
        campaign_id,
        max_attempts_per_day=0,
        recipients=[{"phone": "+16505550199"}, {"phone": "12"}, {"phone": "+14155550100", "tz": 1}],
        retyr={},
    )
    response = await api.post("/v1/campaigns", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    problems = {p["path"]: p for p in response.json()["problems"]}
    assert set(problems) >= {
        "max_attempts_per_day",
        "recipients[1].phone",
        "recipients[2].tz",
        "retyr",
    }
    assert problems["recipients[1].phone"]["value"] == "12"
    assert "unknown field" in problems["retyr"]["rule"]
    progress = await api.get(f"/v1/campaigns/{campaign_id}", headers=AUTH)
    assert progress.status_code == 404  # nothing was started


async def test_a_foreign_spec_is_named_by_its_own_fields(api: httpx.AsyncClient) -> None:
    body = spec(f"f-{uuid.uuid4().hex[:8]}")
    del body["retry"]
    body["retryStrategy"] = {"type": "fixed_delay", "delayMinutes": 600, "maxRetries": 2}
    response = await api.post("/v1/campaigns", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    [problem] = response.json()["problems"]
    assert problem["path"] == "retryStrategy.delayMinutes"
    assert problem["value"] == 600
    assert "10800" in problem["rule"]


async def test_bodies_over_2_mb_are_refused_as_they_arrive(api: httpx.AsyncClient) -> None:
    big = json.dumps(
        spec(
            "big",
            recipients=[
                {"phone": "+16505550199", "variables": {"note": "x" * (MAX_JSON_BYTES + 10)}}
            ],
        )
    ).encode()
    response = await api.post(
        "/v1/campaigns", content=big, headers=AUTH | {"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert "text/csv" in response.json()["message"]

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    response = await api.post(
        "/v1/calls", content=chunked(), headers=AUTH | {"Content-Type": "application/json"}
    )
    assert response.status_code == 413


async def test_wrong_content_types_and_broken_json(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/campaigns", content=b"campaign_id: x", headers=AUTH | {"Content-Type": "text/yaml"}
    )
    assert response.status_code == 415
    assert "application/json" in response.json()["message"]
    response = await api.post(
        "/v1/calls", content=b'{"to_number": ', headers=AUTH | {"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert "line 1 column" in response.json()["problems"][0]["rule"]
    response = await api.post("/v1/calls", json=[1, 2], headers=AUTH)
    assert response.status_code == 422
    deep = b"[" * 100_000 + b"]" * 100_000
    response = await api.post(
        "/v1/calls", content=deep, headers=AUTH | {"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert "nested too deeply" in response.json()["problems"][0]["rule"]
    response = await api.post(
        "/v1/campaigns/c1/recipients",
        content=b"phone\n+1",
        headers=AUTH | {"Content-Type": "text/plain"},
    )
    assert response.status_code == 415


async def test_a_single_call_body_names_dialnexa_fields(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/calls",
        json={
            "from_number": "555",
            "to_number": "+1650555019",
            "agent_version_id": "av_01",
            "retry": {"max_retries": 3, "retry_on_busy": "yes"},
        },
        headers=AUTH,
    )
    assert response.status_code == 422, response.text
    problems = {p["path"]: p["rule"] for p in response.json()["problems"]}
    assert set(problems) == {
        "from_number",
        "to_number",
        "agent_version_id",
        "retry.wait_minutes",
        "retry.retry_on_busy",
    }, problems
    assert "call" in problems["agent_version_id"]


async def test_unknown_ids_are_404_and_bad_phones_422(api: httpx.AsyncClient) -> None:
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    for method, path in (
        ("GET", f"/v1/campaigns/{missing}"),
        ("POST", f"/v1/campaigns/{missing}/pause"),
        ("POST", f"/v1/campaigns/{missing}/stop"),
        ("GET", f"/v1/campaigns/{missing}/report"),
        ("GET", f"/v1/campaigns/{missing}/export"),
        ("GET", "/v1/campaigns/no%20such%20id"),
        ("GET", "/v1/calls/not-a-call"),
        ("GET", "/v1/calls/c" + "b" * 26),
        ("GET", "/v1/nowhere"),
    ):
        response = await api.request(method, path, headers=AUTH)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"] == "not_found"
    response = await api.get(f"/v1/campaigns/{missing}/recipients/12345", headers=AUTH)
    assert response.status_code == 422
    assert response.json()["problems"][0]["path"] == "phone"
    response = await api.get(f"/v1/campaigns/{missing}/export?format=xml&status=busy", headers=AUTH)
    assert response.status_code == 422
    assert {p["path"] for p in response.json()["problems"]} == {"status[0]", "format"}


async def test_readyz_says_what_is_missing(store: Store) -> None:
    settings = Settings(temporal_address="127.0.0.1:1", api_keys=KEY)
    app = create_app(settings, store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        ready = await c.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["store"] == "ok"
        assert "127.0.0.1:1" in ready.json()["checks"]["temporal"]
        down = await c.post("/v1/calls", json={"to_number": "+16505550199"}, headers=AUTH)
        assert down.status_code == 503
        assert (await c.get("/healthz")).status_code == 200


async def test_a_foreign_spec_starts_and_says_what_it_was(api: httpx.AsyncClient) -> None:
    body = spec(f"gm-{uuid.uuid4().hex[:8]}", long_living=True, recipients=[])
    del body["retry"]
    body["retryStrategy"] = {"type": "fixed_delay", "delayMinutes": 30, "maxRetries": 2}
    body["schedule"] = {"daily_start": "09:00", "daily_end": "21:00"}
    response = await api.post("/v1/campaigns", json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    assert sorted(response.json()["translated_from"]) == ["Exotel", "Gomobile"]


def test_a_single_call_takes_each_products_retry_setting() -> None:
    def policy(**body: object) -> CampaignPolicy:
        return parse_single_call({"to_number": "+16505550199", **body}, limits=Limits()).policy

    fixed = {"strategy": {"type": "fixed_delay", "delay": 1800, "max_retries": 3}}
    assert policy(
        retry={"max_retries": 3, "wait_minutes": 30, "retry_on_voicemail": True}
    ) == policy(retry=fixed | {"retry_on": ["no_answer", "busy", "voicemail"]})
    assert policy(
        retry={"max_attempts": 3, "interval_minutes": 30, "retry_on": ["busy", "no-answer"]}
    ) == policy(retry=fixed | {"retry_on": ["busy", "no_answer"]})
    assert policy(retry=[300, 3600]) == policy(
        retry={"strategy": {"type": "attempts", "delays": [300, 3600]}}
    )
    assert policy(
        retryStrategy={"type": "fixed_delay", "delayMinutes": 30, "maxRetries": 3},
        pauseWindows={
            "monday": [{"startAt": {"hour": 12, "minute": 0}, "endAt": {"hour": 14, "minute": 0}}]
        },
    ) == policy(retry=fixed, pause_windows={"monday": [{"start": "12:00", "end": "14:00"}]})
    call = parse_single_call(
        {
            "to_number": "+16505550199",
            "from_number": "+1 415 555 0100",
            "timezone": "Europe/Paris",
            "call": {"url": "https://agent.example/twiml"},
        },
        limits=Limits(),
    )
    assert call.policy.call is not None and call.policy.call.caller_id == "+14155550100"
    assert (call.recipient.timezone, call.policy.timezone) == ("Europe/Paris", "Europe/Paris")


async def test_a_real_provider_needs_a_call_section(store: Store) -> None:
    """With Twilio placing real calls, a campaign or call that does not say what an answered
    call does is refused before anything starts, naming `call`."""
    settings = Settings(
        api_keys=KEY,
        dialer="twilio",
        twilio_account_sid="AC" + "0" * 32,
        twilio_auth_token="token",
        caller_id="+14155550100",
        public_url="https://dialer.example.com",
    )
    app = create_app(settings, store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        for path, body in (
            ("/v1/campaigns", spec("needs-call")),
            ("/v1/calls", {"to_number": "+16505550199"}),
        ):
            response = await c.post(path, json=body, headers=AUTH)
            assert response.status_code == 422, response.text
            assert [p["path"] for p in response.json()["problems"]] == ["call"]
