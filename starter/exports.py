"""The recipients to follow up, as CSV or JSON lines, streamed page by page.

`redialer export` and `GET /v1/campaigns/{id}/export` both write through here. Memory stays flat
whatever the campaign's size: rows are read a page at a time, and CSV's variable columns
(`var.<name>`) are found by one pass over the pages before the rows are written.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from redialer.outcomes import FinalStatus
from redialer.store.store import Store

FORMATS = ("csv", "jsonl")
DEFAULT_STATUSES = ("all_retries_exhausted", "failed")
PAGE = 1_000
_COLUMNS = ["phone", "status", "attempts", "last_outcome", "timezone"]


def unknown_statuses(statuses: list[str]) -> list[tuple[int, str]]:
    """(position, value) of each status that is not a final status."""
    known = {s.value for s in FinalStatus}
    return [(i, s) for i, s in enumerate(statuses) if s not in known]


def export_rows(store: Store, campaign_id: str, statuses: list[str]) -> Iterator[dict[str, Any]]:
    after = -1
    while True:
        page = store.recipients_page(campaign_id, statuses, after_seq=after, limit=PAGE)
        if not page:
            return
        last = store.last_outcomes_for(campaign_id, [r.phone for r in page])
        for r in page:
            yield {
                "phone": r.phone,
                "status": r.status,
                "attempts": r.attempts,
                "last_outcome": last.get(r.phone),
                "timezone": r.zone,
                "variables": r.variables,
            }
        after = page[-1].seq


def export_chunks(store: Store, campaign_id: str, statuses: list[str], fmt: str) -> Iterator[str]:
    """The export as text, a page of rows per chunk."""
    if fmt == "jsonl":
        lines: list[str] = []
        for row in export_rows(store, campaign_id, statuses):
            lines.append(json.dumps(row) + "\n")
            if len(lines) == PAGE:
                yield "".join(lines)
                lines = []
        if lines:
            yield "".join(lines)
        return
    names = sorted(
        {name for row in export_rows(store, campaign_id, statuses) for name in row["variables"]}
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*_COLUMNS, *(f"var.{n}" for n in names)])
    for i, row in enumerate(export_rows(store, campaign_id, statuses), start=1):
        writer.writerow(
            [*(row[c] for c in _COLUMNS), *(_cell(row["variables"].get(n)) for n in names)]
        )
        if i % PAGE == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    if out.getvalue():
        yield out.getvalue()


def _cell(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)
