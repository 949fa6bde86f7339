"""Process settings, read from the environment once at start and validated then."""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from redialer.frequency_caps import FrequencyCap, parse_frequency_cap
from redialer.limits import MAX_RECIPIENT_BYTES_CAP, Limits
from redialer.line_caps import AccountCaps


class LogFormat(StrEnum):
    CONSOLE = "console"
    JSON = "json"


class DialerKind(StrEnum):
    SIMULATED = "simulated"
    TWILIO = "twilio"


#: What a real provider needs, by the setting's own environment variable.
_TWILIO_NEEDS = {
    "twilio_account_sid": "TWILIO_ACCOUNT_SID",
    "twilio_auth_token": "TWILIO_AUTH_TOKEN",
    "caller_id": "REDIALER_CALLER_ID",
    "public_url": "REDIALER_PUBLIC_URL",
}


class Settings(BaseSettings):
    """Everything a worker or the CLI needs from its environment.

    Secrets are `SecretStr`, so they never appear in logs or reprs.
    """

    model_config = SettingsConfigDict(
        env_prefix="REDIALER_",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
        hide_input_in_errors=True,  # a misplaced secret must not come back in the error
    )

    temporal_address: str = Field(
        default="localhost:7233",
        validation_alias=AliasChoices("TEMPORAL_ADDRESS", "REDIALER_TEMPORAL_ADDRESS"),
    )
    temporal_namespace: str = Field(
        default="default",
        validation_alias=AliasChoices("TEMPORAL_NAMESPACE", "REDIALER_TEMPORAL_NAMESPACE"),
    )
    temporal_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("TEMPORAL_API_KEY", "REDIALER_TEMPORAL_API_KEY"),
    )
    temporal_tls: bool = Field(
        default=False, validation_alias=AliasChoices("TEMPORAL_TLS", "REDIALER_TEMPORAL_TLS")
    )
    #: mTLS to a secured Temporal (self-hosted with TLS, or Temporal Cloud with certificates):
    #: the client certificate and key (PEM files, both or neither), the CA that signed the
    #: server's certificate (unset: the system's roots), and the name to check it against.
    temporal_tls_cert: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("TEMPORAL_TLS_CERT", "REDIALER_TEMPORAL_TLS_CERT"),
    )
    temporal_tls_key: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("TEMPORAL_TLS_KEY", "REDIALER_TEMPORAL_TLS_KEY"),
    )
    temporal_tls_ca: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("TEMPORAL_TLS_CA", "REDIALER_TEMPORAL_TLS_CA"),
    )
    temporal_tls_server_name: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "TEMPORAL_TLS_SERVER_NAME", "REDIALER_TEMPORAL_TLS_SERVER_NAME"
        ),
    )
    task_queue: str = "redialer"
    dialer: DialerKind = DialerKind.SIMULATED
    # ---- privacy ----
    #: `keyid:base64key,...` (AES-256: 32-byte keys): every payload Temporal stores is encrypted
    #: with the first; all of them decrypt, so a new key goes first and the old ones stay until
    #: no workflow needs them.
    encryption_keys: SecretStr | None = None
    #: Workflow ids and the RecipientPhone search attribute hold a keyed hash of the number
    #: instead of the number. Unset: on whenever encryption keys are set.
    pseudonymize: bool | None = None
    #: The key of that hash; unset, it is derived from the last (oldest) encryption key.
    pseudonym_key: SecretStr | None = None
    #: Log phone numbers and recipient variables as they are (for debugging only).
    log_pii: bool = False
    #: Serve `/codec/encode` and `/codec/decode` from `redialer api` (needs encryption keys). Off
    #: by default: whoever reaches the endpoint can decrypt any payload (see the README).
    codec_endpoint: bool = False
    #: The Temporal Web UI's origin (`http://localhost:8233`): the one origin allowed to call the
    #: codec endpoint (`/codec/encode`, `/codec/decode`) of `redialer api` from a browser.
    codec_cors_origin: str | None = Field(default=None, pattern=r"^https?://[^/?#]+$")
    # ---- a real provider (REDIALER_DIALER=twilio) ----
    twilio_account_sid: str | None = Field(
        default=None,
        pattern=r"^AC[0-9a-fA-F]{32}$",
        validation_alias=AliasChoices("TWILIO_ACCOUNT_SID", "REDIALER_TWILIO_ACCOUNT_SID"),
    )
    twilio_auth_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("TWILIO_AUTH_TOKEN", "REDIALER_TWILIO_AUTH_TOKEN"),
    )
    #: The `From` number of every call, E.164.
    caller_id: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{6,14}$")
    #: The base URL at which the provider reaches `redialer api` (status callbacks, answers).
    public_url: str | None = Field(default=None, pattern=r"^https?://[^/?#]+(/[^?#]*)?$")
    twilio_api_url: str = Field(default="https://api.twilio.com", pattern=r"^https?://")
    #: Seconds an attempt waits for its final status callback before asking the provider (and
    #: again after each further wait while the call is still up).
    callback_timeout: float = Field(default=300.0, gt=0)
    # ---- the HTTP service ----
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    #: Keys for the `/v1` API, comma-separated; `sha256:<hex>` gives a key by its digest, so the
    #: plain key need not be stored. Unset: the API refuses every `/v1` request (401).
    api_keys: SecretStr | None = None
    database_url: str = "sqlite:///redialer.db"
    simulator_script: Path | None = None
    simulator_seed: int = 0
    simulator_speed: float = Field(
        default=1.0, gt=0, description="Divide simulated call durations by this (demo, benchmark)."
    )
    #: Answer probabilities by local weekday and hour for unscripted numbers (JSON or YAML,
    #: redialer/answer_profile.py; examples/answer-profile.yaml is the default drawn from the
    #: seeds' advice). Unset: a fixed mix of outcomes whatever the hour (redialer's RATES).
    simulator_profile: Path | None = None
    log_format: LogFormat = LogFormat.CONSOLE
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    max_retries_limit: int = Field(default=Limits().max_retries, ge=0)
    max_delay_limit: float = Field(default=Limits().max_delay_seconds, gt=0)
    max_recipient_bytes: int = Field(
        default=Limits().max_recipient_bytes, ge=1024, le=MAX_RECIPIENT_BYTES_CAP
    )
    max_concurrent_activities: int = Field(default=200, ge=1)
    #: Seconds `history`, `progress` and the API wait for a workflow's live answer before they
    #: answer from the store (no worker polling, or one too busy).
    query_timeout: float = Field(default=5.0, gt=0, le=300)
    #: The provider account's caps, across every campaign, single call and worker (give every
    #: worker the same values): calls up at once (SIP channels, agents) and calls started per
    #: second (Twilio's CPS). Each campaign's own caps apply as well.
    max_concurrent_calls: int | None = Field(default=None, ge=1)
    max_calls_per_second: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    #: Dials near the front of a line that wait for it inside this worker (each holds an
    #: activity slot), so a freed line is taken at once; the rest wait in Temporal's back-off.
    line_waiters: int = Field(default=32, ge=0)
    #: At most N calls to one number in a rolling window (`3/24h`, `5/7d`), whichever campaigns
    #: and workers place them; a call over it is deferred until the window allows. Give every
    #: worker the same value. Unset: no cross-campaign cap.
    max_calls_per_number: FrequencyCap | None = None
    #: How long a worker keeps a campaign's answer-rate table (the `smart` strategy) before it
    #: reads the call records again.
    smart_rates_cache_seconds: float = Field(default=600.0, ge=0)
    #: Seconds a worker told to stop (SIGTERM, SIGINT) lets its calls in progress finish before
    #: it cuts them. At least the longest call the dialer can place: the simulator's is an
    #: answered call of up to 240 s (its DURATIONS), plus a minute to record it and report back.
    #: Give the supervisor's stop timeout (`stop_grace_period`, `terminationGracePeriodSeconds`,
    #: systemd's `TimeoutStopSec`) more than this, or it kills the worker mid-call anyway.
    graceful_shutdown: float = Field(default=300.0, ge=0)

    @model_validator(mode="after")
    def _provider_complete(self) -> Settings:
        if self.dialer is DialerKind.TWILIO:
            missing = [env for field, env in _TWILIO_NEEDS.items() if getattr(self, field) is None]
            if missing:
                raise ValueError("REDIALER_DIALER=twilio needs " + ", ".join(missing) + " (unset)")
        return self

    @field_validator("max_calls_per_number", mode="before")
    @classmethod
    def _frequency_cap(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return None
            return parse_frequency_cap(value)
        return value

    @field_validator("pseudonym_key")
    @classmethod
    def _pseudonym_key_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        """A short key could be found by trying: then every pseudonym gives its number away."""
        from redialer.pseudonyms import MIN_KEY_LENGTH

        if value is not None and len(value.get_secret_value()) < MIN_KEY_LENGTH:
            raise ValueError(
                f"REDIALER_PSEUDONYM_KEY needs at least {MIN_KEY_LENGTH} characters (make one"
                " with `python -c 'import secrets; print(secrets.token_urlsafe())'`)"
            )
        return value

    @model_validator(mode="after")
    def _pseudonyms_have_a_key(self) -> Settings:
        """Pseudonyms asked for and no key to make them: refuse at start, not at the first id."""
        if self.pseudonymize and self.pseudonym_key is None and self.encryption_keys is None:
            raise ValueError(
                "REDIALER_PSEUDONYMIZE=true needs a key: set REDIALER_PSEUDONYM_KEY, or"
                " REDIALER_ENCRYPTION_KEYS to derive it from (neither is set)"
            )
        return self

    @field_validator("api_keys")
    @classmethod
    def _keys_well_formed(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            api_key_digests(value.get_secret_value())  # raises naming the bad entry, not the key
        return value

    @field_validator("encryption_keys")
    @classmethod
    def _encryption_keys_well_formed(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from redialer.encryption import parse_keys  # imports Temporal: only when keys are set

            parse_keys(value.get_secret_value())  # raises naming the entry and id, not the key
        return value

    @model_validator(mode="after")
    def _tls_files_usable(self) -> Settings:
        """mTLS needs the certificate and its key together, and every file there at start."""
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            given, missing = (
                ("temporal_tls_cert", "temporal_tls_key")
                if self.temporal_tls_key is None
                else ("temporal_tls_key", "temporal_tls_cert")
            )
            raise ValueError(
                f"{env_name(given)} is set but {env_name(missing)} is not; mTLS needs the client"
                " certificate and its key, both or neither"
            )
        for name in ("temporal_tls_cert", "temporal_tls_key", "temporal_tls_ca"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{env_name(name)}={path}: no such file")
        return self

    @property
    def api_key_digests(self) -> list[bytes]:
        """The SHA-256 digest of every API key (what the service compares against)."""
        return [] if self.api_keys is None else api_key_digests(self.api_keys.get_secret_value())

    @property
    def account_caps(self) -> AccountCaps:
        return AccountCaps(max_calls=self.max_concurrent_calls, rate=self.max_calls_per_second)

    @property
    def real_provider(self) -> bool:
        return self.dialer is not DialerKind.SIMULATED

    @field_validator("simulator_script")
    @classmethod
    def _script_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"REDIALER_SIMULATOR_SCRIPT={value}: no such file")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError(
                "REDIALER_DATABASE_URL must start with sqlite:// or postgresql:// "
                "(a SQLite file or a PostgreSQL database)"
            )
        return value

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        """A password inside the database URL is a secret too."""
        for name, value in super().__repr_args__():
            yield name, (self.safe_summary()["database"] if name == "database_url" else value)

    @property
    def limits(self) -> Limits:
        return Limits(
            max_retries=self.max_retries_limit,
            max_delay_seconds=self.max_delay_limit,
            max_recipient_bytes=self.max_recipient_bytes,
        )

    def safe_summary(self) -> dict[str, object]:
        """What may be logged: no secrets, and no password inside the database URL."""
        url = self.database_url
        if "@" in url and "://" in url:
            scheme, rest = url.split("://", 1)
            url = f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
        return {
            "temporal_address": self.temporal_address,
            "namespace": self.temporal_namespace,
            "task_queue": self.task_queue,
            "dialer": self.dialer.value,
            "caller_id": self.caller_id,
            "public_url": self.public_url,
            "database": url,
            "tls": self.temporal_tls or self.temporal_api_key is not None,
        }


#: A plain API key is at least this long: a short one could be guessed.
MIN_API_KEY_LENGTH = 16
_DIGEST = re.compile(r"^sha256:([0-9a-fA-F]{64})$")


def api_key_digests(text: str) -> list[bytes]:
    """`REDIALER_API_KEYS` as SHA-256 digests. A bad entry is named by its position, never
    shown: it may be a key."""
    digests = []
    for i, entry in enumerate(e.strip() for e in text.split(",")):
        if not entry:
            continue
        if entry.startswith("sha256:"):
            if not (m := _DIGEST.match(entry)):
                raise ValueError(f"entry {i + 1} starts with sha256: but is not 64 hex digits")
            digests.append(bytes.fromhex(m.group(1)))
        elif len(entry) < MIN_API_KEY_LENGTH:
            raise ValueError(
                f"entry {i + 1} is {len(entry)} characters; an API key needs at least"
                f" {MIN_API_KEY_LENGTH} (make one with `python -c 'import secrets;"
                " print(secrets.token_urlsafe())'`)"
            )
        else:
            digests.append(hashlib.sha256(entry.encode()).digest())
    return digests


def env_name(field: str) -> str:
    """The environment variable a user sets for a settings field."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"REDIALER_{field.upper()}"


def describe_errors(error: ValidationError) -> list[str]:
    """One line per bad setting: the variable, the value (never a secret's) and the rule."""
    lines = []
    for err in error.errors(include_url=False):
        if not err["loc"]:  # a rule across settings: its input is every setting, secrets too
            lines.append("invalid settings: " + err["msg"].removeprefix("Value error, "))
            continue
        field = str(err["loc"][0])
        name = env_name(field) if field in Settings.model_fields else field.upper()
        secret = (
            Settings.model_fields.get(field) is not None
            and "secret" in str(Settings.model_fields[field].annotation).lower()
        )
        value = "***" if secret else repr(err.get("input"))
        rule = err["msg"].removeprefix("Value error, ")
        lines.append(f"invalid setting {name}={value}: {rule}")
    return lines


class SettingsError(SystemExit):
    """Raised by `get_settings` when the environment is invalid; carries the lines to print."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        super().__init__(2)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, validated on first use (at process start in the entry points)."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc)) from exc
