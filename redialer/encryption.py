"""Payloads encrypted before they reach Temporal: phone numbers and recipient variables are
personal data, and Temporal's history (and whoever can read its database or Web UI) should not
hold them in clear text.

`REDIALER_ENCRYPTION_KEYS` is a key ring, `keyid:base64key,...` of AES-256 keys. The first key
encrypts; every key decrypts, so a key is rotated by putting a new one first and keeping the old
ones until no open workflow (and no history anyone still reads) needs them. Each encrypted
payload names its key id, so a ring that lacks it says which key is missing.

A payload that cannot be decrypted raises a plain exception, never returns garbage: in a worker
that fails the workflow *task*, which Temporal retries, so a workflow waits for the missing key
to be restored instead of failing for good.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

if TYPE_CHECKING:
    from redialer.settings import Settings

ENV_VAR = "REDIALER_ENCRYPTION_KEYS"
#: The metadata of an encrypted payload (the names other Temporal SDKs' samples use).
ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # GCM's standard nonce; random per payload
TAG_BYTES = 16
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_MAKE_A_KEY = "python -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())'"


@dataclass(frozen=True)
class EncryptionKey:
    key_id: str
    material: bytes = field(repr=False)  # never in a repr, a log or an error


@dataclass(frozen=True)
class KeyRing:
    """The keys in the order given: the first encrypts, all decrypt."""

    keys: tuple[EncryptionKey, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a key ring needs at least one key")

    @property
    def current(self) -> EncryptionKey:
        return self.keys[0]

    @property
    def key_ids(self) -> list[str]:
        return [k.key_id for k in self.keys]

    def find(self, key_id: str) -> EncryptionKey | None:
        return next((k for k in self.keys if k.key_id == key_id), None)


def parse_keys(text: str) -> KeyRing:
    """`REDIALER_ENCRYPTION_KEYS` as a key ring. A bad entry is named by its position and key id
    and the rule it breaks, never by its key (nor by an id that breaks the id rule: that text may
    be a key written in the wrong place)."""
    keys: list[EncryptionKey] = []
    for i, entry in enumerate(e.strip() for e in text.split(",")):
        position = f"entry {i + 1}"
        if not entry:
            continue
        if ":" not in entry:
            raise ValueError(f"{position} has no ':'; each entry is keyid:base64key")
        key_id, encoded = (part.strip() for part in entry.split(":", 1))
        if not _KEY_ID.match(key_id):
            raise ValueError(
                f"{position}: the key id (before ':') must be 1-64 characters of A-Z a-z 0-9 _ . -"
            )
        where = f"{position} (key id {key_id!r})"
        if (same := next((k for k in keys if k.key_id == key_id), None)) is not None:
            first = keys.index(same) + 1
            raise ValueError(f"{where}: entry {first} has the same key id; key ids are unique")
        try:
            material = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(
                f"{where}: the key is not standard base64 (A-Z a-z 0-9 + /, '=' padding)"
            ) from None
        if len(material) != KEY_BYTES:
            raise ValueError(
                f"{where}: the key is {len(material)} bytes; AES-256 needs exactly {KEY_BYTES}"
                f" (make one with `{_MAKE_A_KEY}`)"
            )
        keys.append(EncryptionKey(key_id, material))
    if not keys:
        raise ValueError(f"has no key; give keyid:base64key,... or leave {ENV_VAR} unset")
    return KeyRing(tuple(keys))


class PayloadDecryptionError(Exception):
    """An encrypted payload this ring cannot open; names the key id, never a key."""

    def __init__(self, key_id: str, message: str) -> None:
        super().__init__(message)
        self.key_id = key_id


class AesGcmCodec(PayloadCodec):
    """AES-256-GCM over each whole serialized payload, so its metadata (the encoding, the
    pydantic type) is hidden as well as its data."""

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring
        self._ciphers = {k.key_id: AESGCM(k.material) for k in ring.keys}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self._ring.current.key_id
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), None)
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        """The payload inside; one that was never encrypted (written before keys were set)
        passes through unchanged."""
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            known = ", ".join(self._ring.key_ids)
            raise PayloadDecryptionError(
                key_id,
                f"payload encrypted with key {key_id!r}, which is not in {ENV_VAR}"
                f" (known: {known})",
            )
        if len(payload.data) < NONCE_BYTES + TAG_BYTES:
            raise PayloadDecryptionError(
                key_id,
                f"payload encrypted with key {key_id!r} is {len(payload.data)} bytes,"
                f" shorter than a nonce and a tag ({NONCE_BYTES + TAG_BYTES})",
            )
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, None)
        except InvalidTag:
            raise PayloadDecryptionError(
                key_id,
                f"payload encrypted with key {key_id!r} failed authentication: it was altered,"
                f" or {ENV_VAR} holds a different key under that id",
            ) from None
        inner = Payload()
        inner.ParseFromString(plain)
        return inner


def codec_for(settings: Settings) -> AesGcmCodec | None:
    """The codec of the settings' key ring; None when no keys are set."""
    if settings.encryption_keys is None:
        return None
    return AesGcmCodec(parse_keys(settings.encryption_keys.get_secret_value()))


def data_converter(settings: Settings) -> DataConverter:
    """The pydantic converter, encrypting when keys are set. Failures too: their messages and
    stack traces move into an encoded attribute, since an error may quote a phone number."""
    from temporalio.contrib.pydantic import pydantic_data_converter  # heavy: only when used

    codec = codec_for(settings)
    if codec is None:
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
