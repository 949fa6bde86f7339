"""With encryption keys set, a campaign runs end to end and Temporal and the logs hold no number.

As an operator runs it: `python worker.py` and the `redialer` CLI as processes with
REDIALER_ENCRYPTION_KEYS in their environment, and `temporal workflow list/show --output json`
(the Temporal CLI, no key) as anyone with namespace access reads it. Then the key is rotated
mid-campaign: a campaign started under key A finishes under workers whose first key is B.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from redialer.binaries import find_binary
from tests.test_end_to_end import WorkerProcess, address, cli, until

pytestmark = pytest.mark.devserver

KEY_A = "kA:" + base64.b64encode(b"A" * 32).decode()
KEY_B = "kB:" + base64.b64encode(b"B" * 32).decode()


def temporal(env: WorkflowEnvironment, *args: str) -> str:
    """The Temporal CLI's JSON output, as someone with namespace read access sees it."""
    out = subprocess.run(
        [find_binary("temporal"), *args, "--output", "json"],
        env={**os.environ, "TEMPORAL_ADDRESS": address(env), "TEMPORAL_NAMESPACE": "default"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def leaks(text: str, secrets: list[str]) -> list[str]:
    return [s for s in secrets if s in text]


async def test_an_encrypted_campaign_leaves_no_number_in_temporal_or_the_logs_and_survives_rotation(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    phones = ["+12125550141", "+13125550142", "+14155550143"]
    names = [f"Ada-{tag}", f"Grace-{tag}", f"Alan-{tag}"]
    # Recognisable anywhere: each whole number, its national digits, and each variable value.
    private = [*phones, *(p[2:] for p in phones), *names]
    script = {phones[0]: ["completed"], phones[1]: ["busy", "completed"], phones[2]: ["voicemail"]}
    (tmp_path / "script.json").write_text(json.dumps(script))
    campaign_id = f"private-{tag}"
    spec = tmp_path / "campaign.json"
    spec.write_text(
        json.dumps(
            {
                "campaign_id": campaign_id,
                "timezone": "America/New_York",
                "retry": {"strategy": {"type": "attempts", "delays": [8]}},
                "recipients": [
                    {"phone": p, "variables": {"name": n}}
                    for p, n in zip(phones, names, strict=True)
                ],
            }
        )
    )
    base = {
        **os.environ,
        "TEMPORAL_ADDRESS": address(dev_env),
        "REDIALER_TASK_QUEUE": f"private-{tag}",
        "REDIALER_DATABASE_URL": f"sqlite:///{tmp_path / 'calls.db'}",
        "REDIALER_SIMULATOR_SCRIPT": str(tmp_path / "script.json"),
        "REDIALER_SIMULATOR_SPEED": "1000",
        "REDIALER_LOG_FORMAT": "json",
    }
    under_a = {**base, "REDIALER_ENCRYPTION_KEYS": KEY_A}

    def progress(env: dict[str, str]) -> dict[str, object]:
        return json.loads(cli(env, "progress", campaign_id, "--json").stdout)

    under_b = {**base, "REDIALER_ENCRYPTION_KEYS": f"{KEY_B},{KEY_A}"}
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    first = WorkerProcess(under_a, logs[0])
    first.start()
    try:
        started = cli(under_a, "start", str(spec))
        assert started.returncode == 0, started.stderr
        # The busy number waits 8 s for its retry: rotate the key while it does.
        until(lambda: progress(under_a)["final"] == 2, "two recipients final under key A")
    finally:
        assert first.terminate() == 0
    second = WorkerProcess(under_b, logs[1])
    second.start()
    try:
        until(lambda: progress(under_b)["state"] == "completed", "completed under key B")
        history = json.loads(cli(under_b, "history", campaign_id, phones[1], "--json").stdout)
        report = cli(under_b, "report", campaign_id)
    finally:
        assert second.terminate() == 0

    # Those with the key see everything, decoded.
    assert [a["outcome"] for a in history["attempts"]] == ["busy", "completed"]
    assert history["status"] == "completed"
    assert report.returncode == 0, report.stderr

    # Those without it see no number and no variable: the list, every history, every log line.
    listed = temporal(dev_env, "workflow", "list", "--query", f'CampaignId="{campaign_id}"')
    ids = [w["execution"]["workflowId"] for w in map(json.loads, _json_lines(listed))]
    recipients = [i for i in ids if "/recipient/" in i]
    assert len(recipients) == len(phones) and f"campaign/{campaign_id}" in ids, ids
    assert all("/recipient/p-" in i for i in recipients), recipients
    shown = [temporal(dev_env, "workflow", "show", "--workflow-id", i) for i in ids]
    for text in [listed, *shown]:
        assert not leaks(text, private), leaks(text, private)
        # The CLI prints payloads as protobuf JSON: their data base64-encoded. Read them too.
        decoded = "\n".join(_payload_data(text))
        assert not leaks(decoded, private), leaks(decoded, private)
    encodings = {base64.b64decode(e).decode(errors="ignore") for e in _encodings(shown[0])}
    assert "binary/encrypted" in encodings, encodings
    for log in logs:
        lines = log.read_text().splitlines()
        assert lines, f"{log.name} is empty"
        assert not leaks("\n".join(lines), private), leaks("\n".join(lines), private)


def _json_lines(text: str) -> list[str]:
    """The CLI's JSON output as documents: one document, an array of them, or one per line."""
    text = text.strip()
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        return [line for line in text.splitlines() if line.strip()]
    return [json.dumps(item) for item in whole] if isinstance(whole, list) else [text]


def _payload_data(output: str) -> list[str]:
    """Every payload's data in the CLI's JSON output, base64-decoded (bytes as text)."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("metadata"), dict) and isinstance(node.get("data"), str):
                found.append(base64.b64decode(node["data"]).decode(errors="ignore"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for line in _json_lines(output):
        walk(json.loads(line))
    return found


def _encodings(history_json: str) -> list[str]:
    """Every payload's `encoding` metadata in a history (base64, as protobuf's JSON has it)."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            metadata = node.get("metadata")
            if isinstance(metadata, dict) and "encoding" in metadata:
                found.append(str(metadata["encoding"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(history_json))
    return found
