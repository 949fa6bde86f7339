"""structlog, configured once by each entry point (worker, CLI).

Every record carries its context (campaign, recipient, attempt) as fields; the JSON format is for
log shippers, the console format for people. Temporal's own loggers go through the same pipeline.

Logs are shipped, kept and read by people who need not see who was called: unless `log_pii` is
set (REDIALER_LOG_PII, for debugging), every phone number in a record is masked and the fields
that carry a recipient's own data (`variables`, `metadata`) are hidden. Secrets from the settings
are redacted always. Both happen on the finished record, message and traceback included, just
before it is rendered, so no call site has to remember them.

Tracebacks are plain text from the standard library's `traceback` module, in both formats: a
record logged from workflow code (`workflow.logger`, or the SDK's own warnings such as a signal
dropped for bad input) is formatted inside the workflow sandbox, where rich's pretty tracebacks
stop at `RestrictedWorkflowAccessError` (`os.path`) and print `--- Logging error ---` instead.
Plain tracebacks also keep the local variables, and any secret among them, out of the logs; and
as text they are masked and redacted like the rest of the record.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

import structlog
from structlog.types import EventDict, Processor, WrappedLogger

from redialer.masking import mask_numbers_in, mask_phone
from redialer.settings import LogFormat, Settings

#: What stands in for the value of a field that carries a recipient's own data.
HIDDEN = "<hidden: REDIALER_LOG_PII=true shows it>"
#: What stands in for a secret.
REDACTED = "***"
#: Shorter secrets are not redacted: replacing every `abc` in the logs would hide more than it
#: protects (and a secret that short protects little).
MIN_SECRET_LENGTH = 6
#: Fields whose values are the recipient's own data (template variables, caller metadata).
RECIPIENT_DATA_FIELDS = ("variables", "metadata")
#: What `ProcessorFormatter` adds for its own use: objects, not text to rewrite.
_FORMATTER_META = frozenset({"_record", "_from_structlog"})
#: Deeper than this, a value is rewritten as the text a renderer would print for it.
_MAX_DEPTH = 32


def configure_logging(
    *,
    fmt: LogFormat = LogFormat.CONSOLE,
    level: str = "INFO",
    log_pii: bool = False,
    secrets: Iterable[str] = (),
) -> None:
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        *privacy_processors(log_pii=log_pii, secrets=secrets),
    ]
    rendering: Processor = (
        structlog.processors.JSONRenderer()
        if fmt is LogFormat.JSON
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, rendering],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def privacy_processors(*, log_pii: bool, secrets: Iterable[str]) -> list[Processor]:
    """The last steps before rendering, for structlog's records and the standard library's.

    The traceback becomes text first (an `exception` field, which both renderers print), so it
    is masked and redacted with the rest. Secrets go before numbers: a secret holding a run of
    digits must still match when it is replaced.
    """
    steps: list[Processor] = [structlog.processors.format_exc_info]
    if redact := secret_redactor(secrets):
        steps.append(redact)
    if not log_pii:
        steps += [hide_recipient_data, mask_phone_numbers]
    return steps


def secrets_of(settings: Settings) -> list[str]:
    """Every secret in the settings, as it may show up in a log line (an exception's message,
    a URL, a header echoed back): whole values and the keys inside them."""
    found: list[str] = []
    for secret in (settings.twilio_auth_token, settings.temporal_api_key, settings.pseudonym_key):
        if secret is not None:
            found.append(secret.get_secret_value())
    if settings.api_keys is not None:
        keys = settings.api_keys.get_secret_value()
        found += [keys, *(entry.strip() for entry in keys.split(","))]
    if settings.encryption_keys is not None:
        keys = settings.encryption_keys.get_secret_value()
        found.append(keys)
        for entry in keys.split(","):
            found += [entry.strip(), entry.partition(":")[2].strip()]
    found += _database_password(settings.database_url)
    return [secret for secret in dict.fromkeys(found) if secret]


def _database_password(url: str) -> list[str]:
    """The password in `scheme://user:password@host/...`, as written and percent-decoded."""
    try:
        password = urlsplit(url).password
    except ValueError:  # a malformed port, say: nothing to find that is not in the URL itself
        return []
    return [password, unquote(password)] if password else []


def secret_redactor(secrets: Iterable[str]) -> Processor | None:
    """A processor replacing each of `secrets` wherever it appears in a record (None if there
    is none long enough to redact)."""
    usable = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
    if not usable:
        return None
    # longest first, so a secret that contains another is replaced whole
    pattern = re.compile("|".join(re.escape(s) for s in usable))

    def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        return _rewrite_text(event_dict, lambda text: pattern.sub(REDACTED, text))

    return redact_secrets


def hide_recipient_data(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """The recipient's number masked, their variables and metadata hidden (the key stays, so
    a reader knows there was something)."""
    for field in RECIPIENT_DATA_FIELDS:
        if field in event_dict:
            event_dict[field] = HIDDEN
    recipient = event_dict.get("recipient")
    if isinstance(recipient, str):
        event_dict["recipient"] = mask_phone(recipient)
    elif recipient is not None:  # a whole recipient object carries its variables too
        event_dict["recipient"] = HIDDEN
    return event_dict


def mask_phone_numbers(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Every phone number anywhere in the record masked: fields, message, traceback."""
    return _rewrite_text(event_dict, mask_numbers_in)


def _rewrite_text(event_dict: EventDict, change: Callable[[str], str]) -> EventDict:
    for key in [k for k in event_dict if k not in _FORMATTER_META]:
        value = event_dict.pop(key)
        event_dict[_changed(key, change, 0)] = _changed(value, change, 0)
    return event_dict


def _changed(value: Any, change: Callable[[str], str], depth: int) -> Any:
    """`value` with `change` applied to all its text: strings, keys and items of containers,
    and, for any other object, the repr a renderer would print. Unchanged values are returned
    as they were, keeping their types for the renderer."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        new = change(value)
        return value if new == value else new
    if depth < _MAX_DEPTH:
        if isinstance(value, dict):
            return {
                _changed(k, change, depth + 1): _changed(v, change, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            items = [_changed(item, change, depth + 1) for item in value]
            return items if isinstance(value, list) else tuple(items)
    text = repr(value)
    new = change(text)
    return value if new == text else new
