"""Payloads encrypted before Temporal stores them: round trips, key rotation, tampering, the key
ring's validation (never showing a key), failures encrypted too, and a real dev server whose
history holds no clear text. Also the mTLS settings that protect the connection itself."""

from __future__ import annotations

import asyncio
import base64
import uuid
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr, ValidationError
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.service import TLSConfig
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from redialer.encryption import (
    ENCODING,
    KEY_ID_METADATA,
    AesGcmCodec,
    PayloadDecryptionError,
    data_converter,
    parse_keys,
)
from redialer.settings import Settings, describe_errors
from starter.client import tls_config

PHONE = "+16505550199"
KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = base64.b64encode(bytes(range(100, 132))).decode()
RING_A = f"A:{KEY_A}"
RING_B = f"B:{KEY_B}"
RING_B_A = f"B:{KEY_B},A:{KEY_A}"


class Dial(BaseModel):
    phone: str
    name: str


def codec(ring: str) -> AesGcmCodec:
    return AesGcmCodec(parse_keys(ring))


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=f'"{text}"'.encode())


def holds_phone(blob: bytes) -> bool:
    return PHONE.encode() in blob or PHONE[1:].encode() in blob


# ---- the codec ---------------------------------------------------------------------------------


async def test_round_trip_restores_every_payload_exactly() -> None:
    originals = [plain(PHONE), plain("x" * 5000), Payload(metadata={"encoding": b"binary/null"})]
    ring = codec(RING_A)
    decoded = await ring.decode(await ring.encode(originals))
    assert decoded == originals


async def test_every_encoded_payload_names_its_key_and_hides_the_number() -> None:
    encoded = await codec(RING_B_A).encode([plain(PHONE), plain(f"call {PHONE} again")])
    for payload in encoded:
        assert payload.metadata["encoding"] == ENCODING
        assert payload.metadata[KEY_ID_METADATA] == b"B"  # the first key encrypts
        assert not holds_phone(payload.SerializeToString())
        assert b"json/plain" not in payload.SerializeToString()  # the inner metadata is hidden


async def test_the_same_payload_encrypts_differently_each_time() -> None:
    ring = codec(RING_A)
    first, second = await ring.encode([plain(PHONE), plain(PHONE)])
    assert first.data[:12] != second.data[:12]  # a fresh nonce per payload
    assert first.data != second.data


async def test_rotation_new_ring_reads_old_payloads_and_a_ring_without_the_key_names_it() -> None:
    written_under_a = await codec(RING_A).encode([plain(PHONE)])
    assert await codec(RING_B_A).decode(written_under_a) == [plain(PHONE)]
    with pytest.raises(PayloadDecryptionError) as caught:
        await codec(RING_B).decode(written_under_a)
    assert str(caught.value) == (
        "payload encrypted with key 'A', which is not in REDIALER_ENCRYPTION_KEYS (known: B)"
    )
    assert caught.value.key_id == "A"


async def test_tampered_data_or_a_different_key_under_the_same_id_fails_naming_the_key() -> None:
    (payload,) = await codec(RING_A).encode([plain(PHONE)])
    tampered = Payload()
    tampered.CopyFrom(payload)
    flipped = bytearray(tampered.data)
    flipped[-1] ^= 1
    tampered.data = bytes(flipped)
    impostor = codec(f"A:{KEY_B}")  # the right id, another key
    for ring, candidate in ((codec(RING_A), tampered), (impostor, payload)):
        with pytest.raises(PayloadDecryptionError, match="key 'A' failed authentication"):
            await ring.decode([candidate])
    truncated = Payload(metadata=dict(payload.metadata), data=payload.data[:20])
    with pytest.raises(PayloadDecryptionError, match="key 'A' is 20 bytes"):
        await codec(RING_A).decode([truncated])


async def test_unencrypted_payloads_pass_through_so_old_histories_still_read() -> None:
    old = [plain(PHONE), Payload(metadata={"encoding": b"binary/null"})]
    assert await codec(RING_A).decode(old) == old


# ---- the key ring in the settings ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "secret", "message"),
    [
        (f"A:{KEY_A},A:{KEY_B}", KEY_B, "entry 2 (key id 'A'): entry 1 has the same key id"),
        (
            f"A:{base64.b64encode(b'k' * 16).decode()}",
            base64.b64encode(b"k" * 16).decode(),
            "entry 1 (key id 'A'): the key is 16 bytes; AES-256 needs exactly 32",
        ),
        (f"A:{KEY_A},B:not*base64!key", "not*base64!key", "entry 2 (key id 'B'): the key is not"),
        (f"A:{KEY_A},{KEY_B}", KEY_B, "entry 2 has no ':'"),
        (f"{KEY_B}:{KEY_A}", KEY_B, "entry 1: the key id (before ':') must be 1-64"),
        (" , ", "", "has no key"),
    ],
)
def test_a_bad_key_ring_fails_at_start_naming_the_entry_never_the_key(
    value: str, secret: str, message: str
) -> None:
    with pytest.raises(ValueError, match=r"^" + message.replace("(", r"\(").replace(")", r"\)")):
        parse_keys(value)
    with pytest.raises(ValidationError) as caught:
        Settings(encryption_keys=SecretStr(value))
    (line,) = describe_errors(caught.value)
    assert line.startswith("invalid setting REDIALER_ENCRYPTION_KEYS=***: ")
    assert message in line
    for shown in (line, str(parse_keys_error(value))):
        assert KEY_A not in shown
        assert not secret or secret not in shown


def parse_keys_error(value: str) -> ValueError:
    try:
        parse_keys(value)
    except ValueError as exc:
        return exc
    raise AssertionError("parse_keys accepted " + value)


def test_a_good_key_ring_keeps_its_order_and_hides_its_keys() -> None:
    ring = parse_keys(f" B:{KEY_B} , A:{KEY_A},")
    assert ring.key_ids == ["B", "A"]
    assert ring.current.key_id == "B"
    assert KEY_B not in repr(ring) and repr(bytes(range(100, 132))) not in repr(ring)
    assert Settings(encryption_keys=SecretStr(RING_B_A)).encryption_keys is not None


# ---- the data converter -------------------------------------------------------------------------


async def test_without_keys_the_converter_is_the_plain_pydantic_one() -> None:
    from temporalio.contrib.pydantic import pydantic_data_converter

    assert data_converter(Settings()) is pydantic_data_converter


async def test_the_converter_encrypts_models_and_failures_and_reads_them_back() -> None:
    converter = data_converter(Settings(encryption_keys=SecretStr(RING_A)))
    (payload,) = await converter.encode([Dial(phone=PHONE, name="Ada")])
    assert payload.metadata["encoding"] == ENCODING
    assert not holds_phone(payload.SerializeToString()) and b"Ada" not in payload.data
    assert await converter.decode([payload], [Dial]) == [Dial(phone=PHONE, name="Ada")]

    try:
        raise ApplicationError(f"the line to {PHONE} is busy", type="Busy")
    except ApplicationError as exc:
        error = exc
    failure = Failure()
    await converter.encode_failure(error, failure)
    assert not holds_phone(failure.SerializeToString())  # message and stack trace encrypted
    assert failure.message == "Encoded failure"
    assert failure.encoded_attributes.metadata[KEY_ID_METADATA] == b"A"
    back = await converter.decode_failure(failure)
    assert isinstance(back, ApplicationError)
    assert back.message == f"the line to {PHONE} is busy"
    assert back.type == "Busy"


# ---- mTLS ---------------------------------------------------------------------------------------


def test_mtls_reads_the_files_and_names_the_server(tmp_path: Path) -> None:
    files = {}
    for name in ("cert", "key", "ca"):
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_bytes(f"-----{name}-----".encode())
    settings = Settings(
        temporal_tls_cert=files["cert"],
        temporal_tls_key=files["key"],
        temporal_tls_ca=files["ca"],
        temporal_tls_server_name="temporal.internal",
    )
    assert tls_config(settings) == TLSConfig(
        client_cert=b"-----cert-----",
        client_private_key=b"-----key-----",
        server_root_ca_cert=b"-----ca-----",
        domain="temporal.internal",
    )
    only_ca = tls_config(Settings(temporal_tls_ca=files["ca"]))
    assert isinstance(only_ca, TLSConfig) and only_ca.client_cert is None
    assert tls_config(Settings()) is False
    assert tls_config(Settings(temporal_tls=True)) is True
    assert tls_config(Settings(temporal_api_key=SecretStr("k" * 20))) is True


def test_mtls_needs_cert_and_key_together_and_files_that_exist(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("cert")
    with pytest.raises(ValidationError) as caught:
        Settings(temporal_tls_cert=cert)
    assert describe_errors(caught.value) == [
        "invalid settings: TEMPORAL_TLS_CERT is set but TEMPORAL_TLS_KEY is not; mTLS needs the"
        " client certificate and its key, both or neither"
    ]
    missing = tmp_path / "nowhere.pem"
    with pytest.raises(ValidationError) as caught:
        Settings(temporal_tls_cert=cert, temporal_tls_key=missing)
    assert describe_errors(caught.value) == [
        f"invalid settings: TEMPORAL_TLS_KEY={missing}: no such file"
    ]


# ---- a real server: what the history holds -------------------------------------------------------


@workflow.defn(sandboxed=False)
class Echo:
    @workflow.run
    async def run(self, text: str) -> str:
        return text


@workflow.defn(sandboxed=False)
class AwaitReply:
    def __init__(self) -> None:
        self.reply: str | None = None

    @workflow.run
    async def run(self, text: str) -> str:
        await workflow.wait_condition(lambda: self.reply is not None)
        return f"{text} / {self.reply}"

    @workflow.signal
    def answer(self, reply: str) -> None:
        self.reply = reply


def encrypting_client(env: WorkflowEnvironment, ring: str) -> Client:
    return Client(
        env.client.service_client,
        namespace=env.client.namespace,
        data_converter=data_converter(Settings(encryption_keys=SecretStr(ring))),
    )


def payloads_of(history: WorkflowHistory) -> dict[str, list[Payload]]:
    """The input, signal and result payloads of a history, by event."""
    found: dict[str, list[Payload]] = {}
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            found["input"] = list(event.workflow_execution_started_event_attributes.input.payloads)
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            found["signal"] = list(
                event.workflow_execution_signaled_event_attributes.input.payloads
            )
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            attrs = event.workflow_execution_completed_event_attributes
            found["result"] = list(attrs.result.payloads)
    return found


def key_ids(payloads: list[Payload]) -> list[bytes]:
    assert payloads
    assert all(p.metadata["encoding"] == ENCODING for p in payloads)
    return [p.metadata[KEY_ID_METADATA] for p in payloads]


@pytest.mark.devserver
async def test_history_holds_only_ciphertext(dev_env: WorkflowEnvironment) -> None:
    client = encrypting_client(dev_env, RING_A)
    queue, workflow_id = f"enc-{uuid.uuid4()}", f"enc-{uuid.uuid4()}"
    async with Worker(client, task_queue=queue, workflows=[Echo]):
        result = await client.execute_workflow(
            Echo.run, f"call {PHONE}", id=workflow_id, task_queue=queue
        )
    assert result == f"call {PHONE}"
    history = await dev_env.client.get_workflow_handle(workflow_id).fetch_history()
    found = payloads_of(history)
    assert key_ids(found["input"]) == [b"A"] and key_ids(found["result"]) == [b"A"]
    assert not holds_phone(history.to_json().encode())
    assert not any(holds_phone(e.SerializeToString()) for e in history.events)


@pytest.mark.devserver
async def test_a_rotated_ring_finishes_a_workflow_started_under_the_old_key(
    dev_env: WorkflowEnvironment,
) -> None:
    queue, workflow_id = f"rot-{uuid.uuid4()}", f"rot-{uuid.uuid4()}"
    old = encrypting_client(dev_env, RING_A)
    async with Worker(old, task_queue=queue, workflows=[AwaitReply]):
        await old.start_workflow(AwaitReply.run, PHONE, id=workflow_id, task_queue=queue)
        await first_task_done(old, workflow_id)

    rotated = encrypting_client(dev_env, RING_B_A)
    handle = rotated.get_workflow_handle_for(AwaitReply.run, workflow_id)
    async with Worker(rotated, task_queue=queue, workflows=[AwaitReply]):
        await handle.signal(AwaitReply.answer, "answered")
        result = await asyncio.wait_for(handle.result(), timeout=60)
    assert result == f"{PHONE} / answered"

    found = payloads_of(await dev_env.client.get_workflow_handle(workflow_id).fetch_history())
    assert key_ids(found["input"]) == [b"A"]  # written before the rotation, read after it
    assert key_ids(found["signal"]) == [b"B"] and key_ids(found["result"]) == [b"B"]


async def first_task_done(client: Client, workflow_id: str) -> None:
    """Wait until a worker has run the workflow up to its first wait."""
    for _ in range(200):
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        if any(
            e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED for e in history.events
        ):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{workflow_id}: no workflow task completed in 10 s")


@pytest.mark.devserver
async def test_a_ring_missing_the_key_holds_the_workflow_until_the_key_is_back(
    dev_env: WorkflowEnvironment,
) -> None:
    """A missing key fails the workflow task, which Temporal retries: the workflow waits, open,
    instead of failing, and finishes once a worker has the key again."""
    queue, workflow_id = f"lost-{uuid.uuid4()}", f"lost-{uuid.uuid4()}"
    old = encrypting_client(dev_env, RING_A)
    async with Worker(old, task_queue=queue, workflows=[AwaitReply]):
        await old.start_workflow(AwaitReply.run, PHONE, id=workflow_id, task_queue=queue)
        await first_task_done(old, workflow_id)

    forgetful = encrypting_client(dev_env, RING_B)
    handle = forgetful.get_workflow_handle_for(AwaitReply.run, workflow_id)
    async with Worker(forgetful, task_queue=queue, workflows=[AwaitReply]):
        await handle.signal(AwaitReply.answer, "answered")
        await task_failed(forgetful, workflow_id)
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

    restored = encrypting_client(dev_env, RING_B_A)
    async with Worker(restored, task_queue=queue, workflows=[AwaitReply]):
        result = await asyncio.wait_for(
            restored.get_workflow_handle_for(AwaitReply.run, workflow_id).result(), timeout=60
        )
    assert result == f"{PHONE} / answered"


async def task_failed(client: Client, workflow_id: str) -> None:
    for _ in range(200):
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        if any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED for e in history.events):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{workflow_id}: no workflow task failed in 10 s")
