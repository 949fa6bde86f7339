"""Settings validated at start, secrets never logged, logs bound to campaign/recipient/attempt."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from redialer.campaign import CampaignPolicy, CampaignSpec
from redialer.logs import configure_logging
from redialer.outcomes import Outcome
from redialer.recipients import Recipient
from redialer.settings import LogFormat, Settings
from starter.campaigns import start_campaign, start_single_call

ROOT = Path(__file__).resolve().parent.parent


def test_bad_settings_stop_the_worker_naming_the_variable():
    """A worker with a bad setting exits 2 before connecting, naming the variable and the rule."""
    env = {**os.environ, "REDIALER_DATABASE_URL": "mysql://x", "REDIALER_LOG_LEVEL": "LOUD"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "worker.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "REDIALER_DATABASE_URL" in result.stderr and "sqlite://" in result.stderr
    assert "REDIALER_LOG_LEVEL" in result.stderr


def test_missing_simulator_script_is_refused(tmp_path: Path):
    """REDIALER_SIMULATOR_SCRIPT must name an existing file."""
    with pytest.raises(ValueError, match="no such file"):
        Settings(simulator_script=tmp_path / "missing.json")


def test_secrets_never_appear_in_what_is_logged():
    """The API key and a database password stay out of the summary and the repr."""
    s = Settings(
        temporal_api_key="sk-very-secret",
        database_url="postgresql://app:hunter2@db.internal:5432/calls",
    )
    shown = f"{s.safe_summary()} {s!r}"
    assert "sk-very-secret" not in shown and "hunter2" not in shown
    assert s.safe_summary()["database"] == "postgresql://***@db.internal:5432/calls"
    assert s.safe_summary()["tls"] is True


async def test_dial_logs_carry_campaign_recipient_and_attempt(time_skipping_env, harness_for):
    """Each dial's log line is bound to the campaign, the recipient and the attempt number."""
    phone = "+16505550199"
    h = harness_for(time_skipping_env, {phone: [Outcome.BUSY, Outcome.COMPLETED]})
    policy = CampaignPolicy.model_validate(
        {"retry": {"strategy": {"type": "fixed_delay", "delay": 60, "max_retries": 1}}}
    )
    with capture_logs() as logs:
        async with h.worker():
            handle = await start_single_call(
                time_skipping_env.client, Recipient(phone=phone), policy, task_queue=h.task_queue
            )
            await handle.result()
    ended = [e for e in logs if e["event"] == "call ended"]
    assert [(e["recipient"], e["attempt"], e["outcome"]) for e in ended] == [
        (phone, 1, "busy"),
        (phone, 2, "completed"),
    ]
    assert all("campaign" in e for e in ended)


def test_settings_taken_by_field_name_and_by_environment(monkeypatch: pytest.MonkeyPatch):
    """Programs pass settings by name; operators set TEMPORAL_* / REDIALER_* variables."""
    assert Settings(temporal_address="10.0.0.5:7233").temporal_address == "10.0.0.5:7233"
    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal:7233")
    monkeypatch.setenv("REDIALER_TASK_QUEUE", "calls")
    s = Settings()
    assert (s.temporal_address, s.task_queue) == ("temporal:7233", "calls")


@pytest.mark.parametrize("fmt", list(LogFormat))
async def test_an_exception_logged_in_a_workflow_prints_with_its_traceback(
    fmt: LogFormat, time_skipping_env, harness_for, capsys: pytest.CaptureFixture[str]
):
    """A malformed signal's warning, traceback and all, is printed from inside the sandbox."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_structlog = structlog.get_config()
    configure_logging(fmt=fmt, level="WARNING")  # writing to the captured stderr
    structlog.configure(cache_logger_on_first_use=False)  # leave capture_logs working for others
    h = harness_for(time_skipping_env)
    spec = CampaignSpec.model_validate(
        {"campaign_id": f"logs-{uuid.uuid4().hex[:6]}", "long_living": True, "recipients": []}
    )
    seen = ""
    try:
        async with h.worker():
            handle = await start_campaign(time_skipping_env.client, spec, task_queue=h.task_queue)
            await handle.signal("add_recipients", {"recipients": "not a list"})
            deadline = asyncio.get_running_loop().time() + 60
            while "Failed deserializing signal input" not in seen:
                assert asyncio.get_running_loop().time() < deadline, f"never logged: {seen}"
                await asyncio.sleep(0.1)
                seen += capsys.readouterr().err
            await handle.terminate("test over")
    finally:
        root.handlers[:], root.level = saved_handlers, saved_level
        structlog.configure(**saved_structlog)
    seen += capsys.readouterr().err
    assert "Logging error" not in seen and "RestrictedWorkflowAccessError" not in seen, seen
    assert "Traceback (most recent call last)" in seen and "ValidationError" in seen  # the cause
