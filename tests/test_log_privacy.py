"""Logs keep personal data and secrets out: numbers masked, recipient data hidden, secrets
redacted, in structlog's records and Temporal's own, tracebacks included."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterator

import pytest
import structlog

from redialer.logs import HIDDEN, REDACTED, configure_logging, secrets_of
from redialer.masking import mask_numbers_in
from redialer.recipients import Recipient
from redialer.settings import LogFormat, Settings

PHONE = "+16505550199"
MASKED = "+1650•••0199"
DIGITS = "16505550199"  # the number without its `+`: must not appear in any form

Configure = Callable[..., None]


@pytest.fixture
def configure() -> Iterator[Configure]:
    """`configure_logging` for one test (writing to the captured stderr), undone after it."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_structlog = structlog.get_config()

    def configure_for_test(**kwargs: object) -> None:
        configure_logging(level="INFO", **kwargs)  # type: ignore[arg-type]
        structlog.configure(cache_logger_on_first_use=False)  # leave capture_logs to others

    yield configure_for_test
    root.handlers[:], root.level = saved_handlers, saved_level
    structlog.configure(**saved_structlog)


def _readable(err: str, fmt: LogFormat) -> str:
    """The captured lines as a person reads them: JSON escapes the mask's `•` as `\\u2022`."""
    if fmt is LogFormat.CONSOLE:
        return err
    return "\n".join(json.dumps(json.loads(line), ensure_ascii=False) for line in err.splitlines())


def _log_a_dial() -> None:
    structlog.get_logger("test").info(
        f"dialing {PHONE}",
        recipient=PHONE,
        variables={"name": "Ada Lovelace"},
        metadata={"crm_id": "lead-42"},
        error=ValueError(f"provider refused {PHONE}"),  # an object: rendered by its repr
        call_key=f"spring-2026:{PHONE}:1",
        attempt=1,
    )


@pytest.mark.parametrize("fmt", list(LogFormat))
def test_numbers_are_masked_and_recipient_data_hidden(
    fmt: LogFormat, configure: Configure, capsys: pytest.CaptureFixture[str]
):
    """By default no number, in the message, a field or an object's text, is logged whole, and
    the recipient's variables and metadata are replaced by a note saying how to show them."""
    configure(fmt=fmt)
    _log_a_dial()
    out = _readable(capsys.readouterr().err, fmt)
    assert DIGITS not in out and "Ada Lovelace" not in out and "lead-42" not in out, out
    assert out.count(MASKED) == 4, out  # message, recipient, error, call_key
    assert HIDDEN in out and "variables" in out and "metadata" in out
    assert "spring-2026" in out
    if fmt is LogFormat.JSON:
        record = json.loads(out)
        assert record["recipient"] == MASKED and record["attempt"] == 1
        assert record["variables"] == record["metadata"] == HIDDEN


def test_log_pii_shows_them(
    configure: Configure, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    """REDIALER_LOG_PII=true, for debugging, logs numbers and recipient data as they are."""
    monkeypatch.setenv("REDIALER_LOG_PII", "true")
    settings = Settings()
    configure(fmt=LogFormat.JSON, log_pii=settings.log_pii, secrets=secrets_of(settings))
    _log_a_dial()
    record = json.loads(capsys.readouterr().err)
    assert record["event"] == f"dialing {PHONE}" and record["recipient"] == PHONE
    assert record["variables"] == {"name": "Ada Lovelace"}
    assert record["metadata"] == {"crm_id": "lead-42"}


def test_a_whole_recipient_object_is_hidden(
    configure: Configure, capsys: pytest.CaptureFixture[str]
):
    """A `Recipient` logged as the recipient field carries its variables: all of it is hidden."""
    configure(fmt=LogFormat.JSON)
    who = Recipient(phone=PHONE, variables={"name": "Ada Lovelace"})
    structlog.get_logger("test").info("queued", recipient=who)
    record = json.loads(capsys.readouterr().err)
    assert record["recipient"] == HIDDEN


@pytest.mark.parametrize("fmt", list(LogFormat))
def test_temporal_loggers_are_masked_too(
    fmt: LogFormat, configure: Configure, capsys: pytest.CaptureFixture[str]
):
    """The SDK's own records (standard library loggers, %-style arguments) are masked alike,
    and the run id beside the number is left whole."""
    configure(fmt=fmt)
    run_id = "12345678-1234-4abc-9def-123456789012"  # groups of digits only: still not a number
    logging.getLogger("temporalio.worker").warning(
        "Completing activity as failed (%s)",
        {"workflow_id": f"campaign/spring-2026/recipient/{PHONE}", "run_id": run_id},
    )
    out = _readable(capsys.readouterr().err, fmt)
    assert DIGITS not in out and f"campaign/spring-2026/recipient/{MASKED}" in out, out
    assert run_id in out and "temporalio.worker" in out


TOKEN = "twilio-auth-token-0123456789"


@pytest.mark.parametrize("fmt", list(LogFormat))
def test_a_traceback_is_masked_and_redacted(
    fmt: LogFormat, configure: Configure, capsys: pytest.CaptureFixture[str]
):
    """An exception's message, in the printed traceback, keeps neither number nor secret: from
    structlog's `log.exception` and from a standard library logger alike."""
    configure(fmt=fmt, secrets=[TOKEN])
    try:
        raise RuntimeError(f"Twilio refused {PHONE} (token {TOKEN})")
    except RuntimeError:
        structlog.get_logger("test").exception("dial failed")
        logging.getLogger("temporalio.activity").exception("activity failed")
    out = _readable(capsys.readouterr().err, fmt)
    assert DIGITS not in out and TOKEN not in out, out
    assert out.count("Traceback (most recent call last)") == 2, out
    assert out.count(f"RuntimeError: Twilio refused {MASKED} (token {REDACTED})") == 2, out


ENCRYPTION_KEY = base64.b64encode(bytes(range(32))).decode()
OLD_ENCRYPTION_KEY = base64.b64encode(bytes(range(32, 64))).decode()
SECRETS = {
    "TWILIO_AUTH_TOKEN": TOKEN,
    "TEMPORAL_API_KEY": "temporal-cloud-api-key-abcdef",
    "REDIALER_API_KEYS": "first-api-key-0123456789, second-api-key-abcdefgh",
    "REDIALER_ENCRYPTION_KEYS": f"k2:{ENCRYPTION_KEY},k1:{OLD_ENCRYPTION_KEY}",
    "REDIALER_PSEUDONYM_KEY": "pseudonym-key-987654321",
    "REDIALER_DATABASE_URL": "postgresql://u:s3cretpass@db/x",
}


@pytest.fixture
def secret_settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_secrets_of_collects_every_secret_setting(secret_settings: Settings):
    """Whole values and the keys inside them: each API key, each encryption key's base64 part,
    the database password."""
    found = secrets_of(secret_settings)
    expected = [
        TOKEN,
        SECRETS["TEMPORAL_API_KEY"],
        SECRETS["REDIALER_PSEUDONYM_KEY"],
        "first-api-key-0123456789",
        "second-api-key-abcdefgh",
        SECRETS["REDIALER_ENCRYPTION_KEYS"],
        ENCRYPTION_KEY,
        OLD_ENCRYPTION_KEY,
        "s3cretpass",
    ]
    assert all(secret in found for secret in expected), found
    nothing_secret = Settings(
        twilio_auth_token=None,
        temporal_api_key=None,
        api_keys=None,
        encryption_keys=None,
        pseudonym_key=None,
        database_url="postgresql://u@db/x",  # no password
    )
    assert secrets_of(nothing_secret) == []


@pytest.mark.parametrize("log_pii", [False, True])
def test_secrets_are_redacted_even_with_log_pii(
    log_pii: bool,
    secret_settings: Settings,
    configure: Configure,
    capsys: pytest.CaptureFixture[str],
):
    """No secret of the settings appears, in a message or a field (nested too), whatever
    REDIALER_LOG_PII says; `***` stands in its place."""
    configure(fmt=LogFormat.JSON, log_pii=log_pii, secrets=secrets_of(secret_settings))
    log = structlog.get_logger("test")
    leaked = [
        TOKEN,
        SECRETS["TEMPORAL_API_KEY"],
        SECRETS["REDIALER_PSEUDONYM_KEY"],
        "first-api-key-0123456789",
        "second-api-key-abcdefgh",
        ENCRYPTION_KEY,
        OLD_ENCRYPTION_KEY,
        "s3cretpass",
    ]
    for secret in leaked:
        log.info(f"header was {secret}", value=secret, nested={"keys": [secret]})
        logging.getLogger("temporalio.client").info("connecting with %s", secret)
    log.info("store", url=SECRETS["REDIALER_DATABASE_URL"])
    out = capsys.readouterr().err
    assert not [secret for secret in leaked if secret in out], out
    records = [json.loads(line) for line in out.splitlines()]
    assert records[0]["event"] == f"header was {REDACTED}" and records[0]["value"] == REDACTED
    assert records[0]["nested"] == {"keys": [REDACTED]}
    assert records[1]["event"] == f"connecting with {REDACTED}"
    assert records[-1]["url"] == f"postgresql://u:{REDACTED}@db/x"


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-01T12:00:00.123456Z",
        "2026-03-01T12:00:00.123456789+00:00",  # nanoseconds, as Temporal's timestamps have
        "12345678-1234-4abc-9def-123456789012",  # a UUID whose groups are all digits
        "run_id=0c5e4b0a-58d3-4f0b-9a51-3c1e2d7f8a90",
        "CA0123456789abcdef0123456789abcdef",  # Twilio call SIDs
        "call=CA12345678901234567890123456789012",
        "campaign/spring-2026",
        "spring-2026:attempt 3",
        "attempt=12 attempts=3 duration=0.12345678",
        "1712345678.123",
    ],
)
def test_what_is_not_a_number_is_left_alone(text: str):
    """Timestamps, ids, SIDs and counts in log lines come out as they went in."""
    assert mask_numbers_in(text) == text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (PHONE, MASKED),
        (f"to {PHONE}.", f"to {MASKED}."),
        ("bare 6505550199 here", "bare 6505•••0199 here"),
        (f"k:{PHONE}:2", f"k:{MASKED}:2"),
    ],
)
def test_numbers_in_text_are_masked(text: str, masked: str):
    assert mask_numbers_in(text) == masked
