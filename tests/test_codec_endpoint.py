"""The codec endpoint the Temporal Web UI decrypts payloads with: Temporal's codec-server
protocol, refusals in the API's one error shape, CORS for the Web UI's origin only, and the
`redialer server --ui-codec-endpoint` flag that points the UI at it."""

from __future__ import annotations

import base64
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from redialer.binaries import find_binary
from redialer.settings import Settings
from redialer.store.store import Store
from service.app import create_app
from starter.server import server_command

PHONE = "+16505550199"
KEY_1 = base64.b64encode(bytes(range(32))).decode()
KEY_2 = base64.b64encode(bytes(range(50, 82))).decode()
UI = "http://localhost:8233"
JSON = {"Content-Type": "application/json", "X-Namespace": "default"}


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def json_plain(text: str) -> dict[str, object]:
    return {"metadata": {"encoding": b64(b"json/plain")}, "data": b64(f'"{text}"'.encode())}


def api(store: Store, **settings: object) -> httpx.AsyncClient:
    """The app in process (as tests/test_api_requests.py builds it), no server or Temporal."""
    app = create_app(Settings(**{"codec_endpoint": True, **settings}), store)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


async def test_encode_then_decode_round_trips_and_hides_the_number(store: Store) -> None:
    async with api(store, encryption_keys=f"k1:{KEY_1}") as client:
        sent = {"payloads": [json_plain(PHONE), json_plain("second")]}
        encoded = await client.post("/codec/encode", json=sent, headers=JSON)
        assert encoded.status_code == 200, encoded.text
        for payload in encoded.json()["payloads"]:
            assert base64.b64decode(payload["metadata"]["encoding"]) == b"binary/encrypted"
            assert base64.b64decode(payload["metadata"]["encryption-key-id"]) == b"k1"
            assert PHONE[1:] not in base64.b64decode(payload["data"]).decode("latin-1")
        decoded = await client.post("/codec/decode", json=encoded.json(), headers=JSON)
        assert decoded.status_code == 200, decoded.text
        assert decoded.json() == sent


async def test_decode_passes_unencrypted_payloads_through(store: Store) -> None:
    async with api(store, encryption_keys=f"k1:{KEY_1}") as client:
        null = {"metadata": {"encoding": b64(b"binary/null")}}
        old = {"payloads": [json_plain(PHONE), null]}
        decoded = await client.post("/codec/decode", json=old, headers=JSON)
        assert decoded.status_code == 200, decoded.text
        assert decoded.json()["payloads"][0] == old["payloads"][0]
        assert decoded.json()["payloads"][1] == {**null, "data": ""}


async def test_a_payload_under_an_unknown_key_is_422_naming_the_key(store: Store) -> None:
    async with api(store, encryption_keys=f"k2:{KEY_2}") as client:
        sent = {"payloads": [json_plain(PHONE)]}
        under_k2 = await client.post("/codec/encode", json=sent, headers=JSON)
    async with api(store, encryption_keys=f"k1:{KEY_1}") as client:
        response = await client.post("/codec/decode", json=under_k2.json(), headers=JSON)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_input"
    assert body["message"] == (
        "payload encrypted with key 'k2', which is not in REDIALER_ENCRYPTION_KEYS (known: k1)"
    )
    assert body["problems"][0]["path"] == "payloads[0]"


async def test_a_body_that_is_not_payloads_is_refused_in_the_error_shape(store: Store) -> None:
    async with api(store, encryption_keys=f"k1:{KEY_1}") as client:
        for body in ({"payloads": "nope"}, [1, 2]):
            response = await client.post("/codec/decode", json=body, headers=JSON)
            assert response.status_code == 422, response.text
            assert response.json()["error"] == "invalid_input"
        response = await client.post(
            "/codec/encode", content=b"{}", headers={"Content-Type": "text/plain"}
        )
        assert response.status_code == 415


async def test_without_encryption_keys_the_endpoint_is_off(store: Store) -> None:
    async with api(store) as client:
        for route in ("/codec/encode", "/codec/decode"):
            response = await client.post(route, json={"payloads": []}, headers=JSON)
            assert response.status_code == 404
            assert response.json()["error"] == "not_found"
            assert "REDIALER_ENCRYPTION_KEYS is unset" in response.json()["message"]


async def test_the_endpoint_is_off_unless_asked_for(store: Store) -> None:
    """Whoever reaches it can decrypt: keys alone do not open it."""
    async with api(store, encryption_keys=f"k1:{KEY_1}", codec_endpoint=False) as client:
        response = await client.post("/codec/decode", json={"payloads": []}, headers=JSON)
        assert response.status_code == 404
        assert "REDIALER_CODEC_ENDPOINT=true" in response.json()["message"]


PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type,x-namespace",
}


async def test_cors_answers_the_web_ui_origin_and_no_other(store: Store) -> None:
    async with api(store, encryption_keys=f"k1:{KEY_1}", codec_cors_origin=UI) as client:
        ok = await client.options("/codec/decode", headers={"Origin": UI, **PREFLIGHT})
        assert ok.status_code == 204
        assert ok.headers["access-control-allow-origin"] == UI
        assert ok.headers["access-control-allow-credentials"] == "true"
        assert "POST" in ok.headers["access-control-allow-methods"]
        assert {"content-type", "x-namespace", "authorization"} <= {
            h.strip() for h in ok.headers["access-control-allow-headers"].split(",")
        }
        post = await client.post(
            "/codec/encode", json={"payloads": []}, headers={"Origin": UI, **JSON}
        )
        assert post.status_code == 200 and post.headers["access-control-allow-origin"] == UI
        assert post.json() == {"payloads": []}

        evil = "https://evil.example"
        refused = await client.options("/codec/decode", headers={"Origin": evil, **PREFLIGHT})
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
        assert "access-control-allow-origin" not in refused.headers
        post = await client.post(
            "/codec/encode", json={"payloads": []}, headers={"Origin": evil, **JSON}
        )
        assert "access-control-allow-origin" not in post.headers

        # CORS is for /codec only
        other_route = await client.get("/healthz", headers={"Origin": UI})
        assert "access-control-allow-origin" not in other_route.headers
        other_preflight = await client.options("/v1/campaigns", headers={"Origin": UI, **PREFLIGHT})
        assert "access-control-allow-origin" not in other_preflight.headers


async def test_without_a_cors_origin_there_are_no_cors_headers(store: Store) -> None:
    async with api(store, encryption_keys=f"k1:{KEY_1}") as client:
        preflight = await client.options("/codec/decode", headers={"Origin": UI, **PREFLIGHT})
        assert "access-control-allow-origin" not in preflight.headers
        post = await client.post(
            "/codec/encode", json={"payloads": []}, headers={"Origin": UI, **JSON}
        )
        assert post.status_code == 200
        assert not any(h.startswith("access-control-") for h in post.headers)


# ---- `redialer server --ui-codec-endpoint` -------------------------------------------------------


def test_the_dev_server_gets_the_ui_codec_endpoint() -> None:
    command = server_command(
        port=7233, ui_port=8233, db=None, ui_codec_endpoint="http://127.0.0.1:8000/codec"
    )
    at = command.index("--ui-codec-endpoint")
    assert command[at + 1] == "http://127.0.0.1:8000/codec"
    assert "--ui-codec-endpoint" not in server_command(port=7233, ui_port=8233, db=None)
    help_text = subprocess.run(
        [find_binary("temporal"), "server", "start-dev", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "--ui-codec-endpoint" in help_text  # the flag this Temporal CLI knows


@pytest.mark.parametrize(
    "url", ["ftp://host/codec", "127.0.0.1:8000/codec", "http://", "http://h/codec?x=1"]
)
def test_a_ui_codec_endpoint_that_is_not_http_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="must be an http:// or https:// URL"):
        server_command(port=7233, ui_port=8233, db=None, ui_codec_endpoint=url)


@pytest.mark.devserver
def test_the_web_ui_is_told_to_use_the_codec_endpoint(tmp_path: Path) -> None:
    """`redialer server --ui-codec-endpoint URL` reaches the Web UI itself: the settings the UI
    serves to the browser name the endpoint, so the browser posts payloads there to decode."""
    from starter.server import free_port, start_server

    ui_port = free_port()
    server = start_server(
        port=free_port(), ui_port=ui_port, db=None, ui_codec_endpoint="http://127.0.0.1:8000/codec"
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                settings = httpx.get(f"http://127.0.0.1:{ui_port}/api/v1/settings", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the Web UI did not answer"
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert settings.json()["Codec"]["Endpoint"] == "http://127.0.0.1:8000/codec"
