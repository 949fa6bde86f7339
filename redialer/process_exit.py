"""Leave the process without interpreter teardown once a Temporal client or worker was used.

The Temporal SDK's native runtime keeps threads that may call into Python while CPython is
finalising, which aborts the process ("PyGILState_Release: thread state ... must be current",
exit -6) after all the work succeeded. Flushing everything and calling `os._exit` with the real
exit code skips that race; nothing of ours needs finalisers at that point.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn


def exit_now(code: int | str | None) -> NoReturn:
    if isinstance(code, str):  # SystemExit("message") prints the message and exits 1
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code or 0)
