"""structlog, configured once by each entry point (worker, CLI).

Every record carries its context (campaign, recipient, attempt) as fields; the JSON format is for
log shippers, the console format for people. Temporal's own loggers go through the same pipeline.

Tracebacks are plain text from the standard library's `traceback` module, in both formats: a
record logged from workflow code (`workflow.logger`, or the SDK's own warnings such as a signal
dropped for bad input) is formatted inside the workflow sandbox, where rich's pretty tracebacks
stop at `RestrictedWorkflowAccessError` (`os.path`) and print `--- Logging error ---` instead.
Plain tracebacks also keep the local variables, and any secret among them, out of the logs.
"""

from __future__ import annotations

import logging
import sys

import structlog

from redialer.settings import LogFormat


def configure_logging(*, fmt: LogFormat = LogFormat.CONSOLE, level: str = "INFO") -> None:
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    rendering: list[structlog.types.Processor] = (
        # exc_info becomes an "exception" field holding the traceback as text
        [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
        if fmt is LogFormat.JSON
        else [
            structlog.dev.ConsoleRenderer(
                colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
            )
        ]
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
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
