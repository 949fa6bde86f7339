"""The REST API end to end: the real `redialer api` process, a real worker process (simulated
dialer, scripted per number) and the Temporal dev server, driven only over HTTP.

What is asserted is what a client sees (statuses, attempts, call reports, exports) and what the
dialer was actually asked to do: the simulator's ledger counts every place-call request per key.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from redialer.dialers.simulated import DialLedger
from redialer.store.store import Store
from tests.fault_helpers import (
    DEADLINE,
    WorkerProcess,
    bad_log_lines,
    free_port,
    start_api,
    worker_env,
)

KEY = "e2e-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}

# Numbers each scripted once for the whole module (the worker's script is per number).
A, B, C = "+16505550101", "+16505550102", "+16505550103"  # fixed campaign
D, E, F = "+16505550104", "+16505550105", "+16505550106"  # long-living campaign
G, H = "+16505550107", "+16505550108"  # single calls
SCRIPT = {
    A: ["busy", "completed"],
    B: ["no_answer", "no_answer", "no_answer"],
    C: ["voicemail"],
    D: ["completed"],
    E: ["no_answer", "completed"],
    F: ["completed"],
    G: ["busy", "no_answer", "completed"],
    H: ["no_answer", "voicemail"],
}


class Service:
    """`redialer api` and one worker, sharing a store and a task queue."""

    def __init__(self, env: WorkflowEnvironment, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = f"sqlite:///{tmp / 'api.db'}"
        self.env = worker_env(
            address=env.client.service_client.config.target_host,
            database_url=self.database_url,
            task_queue=f"api-{uuid.uuid4().hex[:8]}",
            script=SCRIPT,
            speed=100.0,
            directory=tmp,
        ) | {"REDIALER_API_KEYS": KEY}
        self.store = Store.open(self.database_url)
        self.ledger = DialLedger(self.store)
        self.log = tmp / "api.log"
        self.api = start_api(self.env, self.port, self.log)
        self.worker = WorkerProcess(self.env, tmp / "worker.log").start()

    async def ready(self) -> None:
        deadline = time.monotonic() + DEADLINE
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                assert self.api.poll() is None, self.log.read_text()
                try:
                    if (await http.get(f"{self.url}/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError("redialer api never became ready")

    def close(self) -> None:
        self.api.terminate()
        self.api.wait(timeout=30)
        self.worker.stop()
        self.store.close()


@pytest.fixture(scope="module")
def service(
    dev_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    running = Service(dev_env, tmp_path_factory.mktemp("api"))
    yield running
    running.close()
    assert not bad_log_lines([running.worker.log, running.log])


@pytest_asyncio.fixture
async def http(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    await service.ready()
    async with httpx.AsyncClient(base_url=service.url, headers=AUTH, timeout=60) as client:
        yield client


async def poll(check: Any, what: str) -> Any:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what}: not within {DEADLINE:g} s")


async def settled(http: httpx.AsyncClient, path: str, done: Any) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        response = await http.get(path)
        assert response.status_code == 200, response.text
        body = response.json()
        return body if done(body) else None

    return await poll(check, f"GET {path}")


def placements(service: Service, prefix: str) -> dict[str, int]:
    return {k: n for k, n in service.ledger.placements().items() if k.startswith(prefix)}


async def test_a_fixed_campaign_through_the_api(service: Service, http: httpx.AsyncClient) -> None:
    campaign_id = f"api-fixed-{uuid.uuid4().hex[:6]}"
    spec = {
        "campaign_id": campaign_id,
        "retry": {"strategy": {"type": "fixed_delay", "delay": 1, "max_retries": 2}},
        "recipients": [
            {"phone": A, "variables": {"name": "Ada"}},
            {"phone": B, "variables": {"name": "Bo", "plan": "gold"}},
            {"phone": C},
            {"phone": A.replace("+1", "+1 "), "variables": {"extra": 1}},  # A again: merged
        ],
    }
    created = await http.post("/v1/campaigns", json=spec)
    assert created.status_code == 201, created.text
    assert created.json()["recipients"] == 3
    assert "merged" in created.json()["warnings"][0]
    again = await http.post("/v1/campaigns", json=spec)
    assert again.status_code == 409
    assert "already used" in again.json()["message"]

    progress = await settled(http, f"/v1/campaigns/{campaign_id}", lambda p: p["final"] == 3)
    assert progress["by_status"] == {
        "completed": 1,
        "all_retries_exhausted": 1,
        "voicemail_final": 1,
    }
    assert progress["total"] == 3

    report = (await http.get(f"/v1/campaigns/{campaign_id}/recipients/{A}")).json()
    assert report["status"] == "completed"
    assert [(a["attempt"], a["outcome"], a["call"]["status"]) for a in report["attempts"]] == [
        (1, "busy", "busy"),
        (2, "completed", "completed"),
    ]
    assert all(a["call"]["id"] for a in report["attempts"])
    assert report["retry_group_id"] == f"campaign/{campaign_id}/recipient/{A}"
    assert report["next_attempt_at"] is None
    encoded = await http.get(f"/v1/campaigns/{campaign_id}/recipients/%2B16505550102")
    assert encoded.json()["status"] == "all_retries_exhausted"
    assert len(encoded.json()["attempts"]) == 3

    summary = (await http.get(f"/v1/campaigns/{campaign_id}/report")).json()
    assert summary["recipients"] == 3
    assert summary["calls_placed"] == 6
    assert summary["connection_rate"] == pytest.approx(1 / 3, abs=1e-3)

    exported = await http.get(f"/v1/campaigns/{campaign_id}/export?status=all_retries_exhausted")
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["phone"], r["attempts"], r["last_outcome"], r["var.plan"]) for r in rows] == [
        (B, "3", "no_answer", "gold")
    ]
    lines = (
        await http.get(
            f"/v1/campaigns/{campaign_id}/export?status=completed,voicemail_final&format=jsonl"
        )
    ).text.splitlines()
    assert sorted(json.loads(line)["phone"] for line in lines) == [A, C]

    # What reached the dialer: one request per (number, attempt), 2 + 3 + 1 calls.
    assert placements(service, f"{campaign_id}:") == {
        f"{campaign_id}:{A}:1": 1,
        f"{campaign_id}:{A}:2": 1,
        f"{campaign_id}:{B}:1": 1,
        f"{campaign_id}:{B}:2": 1,
        f"{campaign_id}:{B}:3": 1,
        f"{campaign_id}:{C}:1": 1,
    }
    stopped = await http.post(f"/v1/campaigns/{campaign_id}/stop")
    assert stopped.status_code == 409  # it has completed: nothing to stop, and it says so
    assert "has ended" in stopped.json()["message"]


async def test_a_long_living_campaign_takes_csv_and_control(
    service: Service, http: httpx.AsyncClient
) -> None:
    campaign_id = f"api-live-{uuid.uuid4().hex[:6]}"
    created = await http.post(
        "/v1/campaigns",
        json={
            "campaign_id": campaign_id,
            "long_living": True,
            "retry": [1, 1],  # Romulus's list of delays: two retries, a second apart
        },
    )
    assert created.status_code == 201, created.text

    bad = f"phone,name\n{D},Di\nnot-a-number,Ed\n"
    refused = await http.post(
        f"/v1/campaigns/{campaign_id}/recipients",
        content=bad.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert refused.status_code == 422
    [problem] = refused.json()["problems"]
    assert (problem["path"], problem["value"]) == ("recipients[1].phone", "not-a-number")

    good = f"phone,name\n{D},Di\n{E},Ed\n"
    added = await http.post(
        f"/v1/campaigns/{campaign_id}/recipients",
        content=good.encode(),
        headers={"Content-Type": "text/csv; charset=utf-8"},
    )
    assert added.status_code == 202, added.text
    assert added.json()["accepted"] == 2
    await settled(http, f"/v1/campaigns/{campaign_id}", lambda p: p["final"] == 2)
    assert placements(service, f"{campaign_id}:{D}:") == {f"{campaign_id}:{D}:1": 1}  # the
    # refused CSV sent nothing: D was dialed once, for the accepted list

    paused = await http.post(f"/v1/campaigns/{campaign_id}/pause")
    assert (paused.status_code, paused.json()["state"]) == (200, "paused")
    twice = await http.post(f"/v1/campaigns/{campaign_id}/pause")
    assert twice.status_code == 409, twice.text
    added = await http.post(f"/v1/campaigns/{campaign_id}/recipients", json=[{"phone": F}])
    assert added.status_code == 202
    opted = await http.post(f"/v1/campaigns/{campaign_id}/opt-outs", json={"phone": F})
    assert opted.status_code == 200, opted.text
    resumed = await http.post(f"/v1/campaigns/{campaign_id}/resume")
    assert (resumed.status_code, resumed.json()["state"]) == (200, "running")
    progress = await settled(http, f"/v1/campaigns/{campaign_id}", lambda p: p["final"] == 3)
    assert progress["by_status"] == {"completed": 2, "opted_out": 1}
    assert placements(service, f"{campaign_id}:{F}:") == {}  # opted out while paused: no call

    stopped = await http.post(f"/v1/campaigns/{campaign_id}/stop")
    assert (stopped.status_code, stopped.json()["state"]) == (200, "stopped")
    after = await http.post(f"/v1/campaigns/{campaign_id}/resume")
    assert after.status_code == 409
    ended = await settled(
        http, f"/v1/campaigns/{campaign_id}", lambda p: "completed" in (p["note"] or "")
    )
    assert (ended["state"], ended["source"]) == ("stopped", "store")  # closed: read from the store
    late = await http.post(f"/v1/campaigns/{campaign_id}/recipients", json=[{"phone": A}])
    assert late.status_code == 409


async def test_dialnexa_single_calls_end_completed_and_voicemail_final(
    service: Service, http: httpx.AsyncClient
) -> None:
    body = {
        "from_number": "+14155550100",
        "to_number": G,
        "variables": {"name": "Gus"},
        "metadata": {"crm_id": "42"},
        "retry": {
            "max_retries": 3,
            "wait_minutes": 0.02,  # 1.2 s: the dev server's timers are real time
            "retry_on_voicemail": False,
            "retry_on_no_answer": True,
            "retry_on_busy": True,
        },
    }
    key = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    first = await http.post("/v1/calls", json=body, headers=key)
    assert first.status_code == 201, first.text
    call = first.json()
    assert call["status"] == "in_progress"
    assert call["call_id"].isalnum()
    retried = await http.post("/v1/calls", json=body, headers=key)  # the client retried its POST
    assert retried.status_code == 200
    assert retried.json()["call_id"] == call["call_id"]

    done = await settled(
        http, f"/v1/calls/{call['call_id']}", lambda c: c["status"] != "in_progress"
    )
    assert done["status"] == "completed"
    assert [a["outcome"] for a in done["attempts"]] == ["busy", "no_answer", "completed"]
    assert done["retry_group_id"] == call["retry_group_id"]

    voicemail = await http.post("/v1/calls", json=body | {"to_number": H})
    assert voicemail.status_code == 201
    ended = await settled(
        http, f"/v1/calls/{voicemail.json()['call_id']}", lambda c: c["status"] != "in_progress"
    )
    assert ended["status"] == "voicemail_final"
    assert [a["outcome"] for a in ended["attempts"]] == ["no_answer", "voicemail"]

    # One place-call request per attempt, though the first POST was sent twice.
    for phone, attempts in ((G, 3), (H, 2)):
        dials = service.ledger.dials_for(phone)
        assert [d.attempt for d in dials] == list(range(1, attempts + 1))
        assert all(d.placements == 1 for d in dials)


async def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
    service: Service, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """The app's own OpenAPI schema, fuzzed against the live service (the campaigns and calls
    it creates run on the worker): no 5xx, every answer as documented."""
    result = await asyncio.to_thread(
        subprocess.run,
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{service.url}/openapi.json",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance,response_headers_conformance",
            "--header",
            f"Authorization: Bearer {KEY}",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "30",
            "--seed",
            "1",
            "--workers",
            "1",
            "--request-timeout",
            "60",
            "--suppress-health-check",
            "all",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
