"""Pseudonyms: a keyed hash of a phone number wherever Temporal would otherwise show it in clear.

Workflow ids, search attributes and summaries are not payloads: the payload codec never encrypts
the first two, and anyone who may list workflows (the Web UI, `temporal workflow list`) reads them.
With pseudonyms on, they hold `p-` + HMAC-SHA256(key, number) cut to 128 bits instead. Keyed,
because there are only about 10^10 numbers per country code: a plain hash is undone by trying
them all. Deterministic, so whoever holds the key finds a recipient by its number (`redialer
pseudonym`, `history`, `opt-out`) and the server still refuses a second workflow for one number.

The key is `REDIALER_PSEUDONYM_KEY`, else derived (HKDF) from the *last* key of
`REDIALER_ENCRYPTION_KEYS`: a rotation puts the new key first, so the ids stay. Retiring that
last key changes every pseudonym (and unties the suppressions `redialer forget` kept as
pseudonyms): set `REDIALER_PSEUDONYM_KEY` from the start where keys are retired.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redialer.masking import mask_phone

if TYPE_CHECKING:
    from redialer.settings import Settings

PREFIX = "p-"
#: 32 hex characters: 128 bits, no collision among any number of phone numbers there are.
HEX_CHARS = 32
HKDF_INFO = b"redialer pseudonyms v1"
KEY_BYTES = 32
#: A pseudonym key shorter than this could be guessed.
MIN_KEY_LENGTH = 16


class NoPseudonymKey(RuntimeError):
    """A pseudonym was needed, and no key can be had."""

    def __init__(self, what: str = "this") -> None:
        super().__init__(
            f"{what} needs the pseudonym key: set REDIALER_PSEUDONYM_KEY (at least"
            f" {MIN_KEY_LENGTH} characters, e.g. `python -c 'import secrets;"
            " print(secrets.token_urlsafe())'`), or REDIALER_ENCRYPTION_KEYS to derive it from"
        )


@dataclass(frozen=True)
class Pseudonyms:
    """How a number shows in Temporal: itself (`enabled` False, as before), or its pseudonym.

    `key` may be set while pseudonyms are off: `redialer forget` still keeps a suppression as
    a pseudonym, and the suppression check still finds it."""

    enabled: bool = False
    key: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.enabled and self.key is None:
            raise NoPseudonymKey("pseudonymous ids")

    @classmethod
    def from_settings(cls, settings: Settings) -> Pseudonyms:
        """On with REDIALER_PSEUDONYMIZE=true, or when it is unset and encryption keys are."""
        key = settings_key(settings)
        enabled = (
            settings.pseudonymize
            if settings.pseudonymize is not None
            else settings.encryption_keys is not None
        )
        return cls(enabled=enabled, key=key)  # the settings made sure a key is there

    @classmethod
    def from_environment(cls) -> Pseudonyms:
        """This process's (REDIALER_* variables, validated once by `get_settings`)."""
        from redialer.settings import get_settings

        return cls.from_settings(get_settings())

    @property
    def has_key(self) -> bool:
        return self.key is not None

    def pseudonym(self, e164: str) -> str:
        """The keyed hash, whether or not pseudonyms are on (erasure keeps suppressions so)."""
        if self.key is None:
            raise NoPseudonymKey()
        digest = hmac.new(self.key, e164.encode(), hashlib.sha256).hexdigest()
        return PREFIX + digest[:HEX_CHARS]

    def id_for(self, e164: str) -> str:
        """What stands for the number in workflow ids and the RecipientPhone attribute."""
        return self.pseudonym(e164) if self.enabled else e164

    def shown(self, e164: str) -> str:
        """The number as summaries and current details show it: masked when pseudonyms are on."""
        return mask_phone(e164) if self.enabled else e164


def settings_key(settings: Settings) -> bytes | None:
    """REDIALER_PSEUDONYM_KEY's bytes, else the key derived from the last encryption key."""
    if settings.pseudonym_key is not None:
        return settings.pseudonym_key.get_secret_value().encode()
    if settings.encryption_keys is not None:
        return derived_key(settings.encryption_keys.get_secret_value())
    return None


def derived_key(encryption_keys: str) -> bytes:
    """HKDF-SHA256 of the last key in `keyid:base64key,...` (the oldest: it outlives rotations)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    from redialer.encryption import parse_keys  # the one parser of the key ring

    material = parse_keys(encryption_keys).keys[-1].material
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=HKDF_INFO)
    return hkdf.derive(material)


def is_pseudonym(value: str) -> bool:
    return (
        value.startswith(PREFIX)
        and len(value) == len(PREFIX) + HEX_CHARS
        and all(c in "0123456789abcdef" for c in value[len(PREFIX) :])
    )
