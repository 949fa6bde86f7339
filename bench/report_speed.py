"""How long `redialer report` takes over 100,000 call records (target: under 2 s).

    python -m bench.report_speed [--database URL] [--records 100000]

Generates a campaign in the store (recipients and their attempts, 2.5 attempts each on average)
once, then times building the report (the store query included), median of 5.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete

from redialer.outcomes import Outcome
from redialer.recipients import Recipient
from redialer.store.store import Store
from redialer.store.tables import CallRecordRow, CampaignRecipientRow, utcnow
from starter.report_commands import campaign_report

CAMPAIGN = f"bench-report-{int(time.time())}"  # its own rows only, deleted afterwards


def generate(store: Store, records: int, seed: int = 1) -> int:
    rng = random.Random(seed)
    phones: list[str] = []
    rows: list[dict[str, object]] = []
    start = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)
    n = 0
    while len(rows) < records:
        phone = f"+1212{5550000 + n:07d}"
        n += 1
        phones.append(phone)
        for attempt in range(1, rng.choice([1, 2, 3, 4]) + 1):
            outcome = rng.choice([Outcome.COMPLETED, Outcome.NO_ANSWER, Outcome.BUSY])
            at = start + timedelta(minutes=rng.randrange(0, 60 * 24 * 5))
            rows.append(
                {
                    "idempotency_key": f"{CAMPAIGN}:{phone}:{attempt}",
                    "campaign_id": CAMPAIGN,
                    "phone": phone,
                    "retry_group_id": f"campaign/{CAMPAIGN}/recipient/{phone}",
                    "attempt": attempt,
                    "outcome": outcome.value,
                    "started_at": at,
                    "ended_at": at + timedelta(seconds=30),
                    "call_id": None,
                    "dialed": True,
                    "variables": {},
                    "recorded_at": utcnow(),
                }
            )
            if outcome is Outcome.COMPLETED or len(rows) >= records:
                break
    for i in range(0, len(phones), 5000):
        store.enqueue_recipients(
            CAMPAIGN,
            [Recipient(phone=p) for p in phones[i : i + 5000]],
            workflow_id_for=lambda p: p,
        )
    with store.engine.begin() as conn:
        for i in range(0, len(rows), 5000):
            conn.execute(CallRecordRow.__table__.insert(), rows[i : i + 5000])  # type: ignore[attr-defined]
    return len(phones)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database")
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{Path(tmp) / 'report.db'}"
        store = Store.open(url)
        t = time.perf_counter()
        recipients = generate(store, args.records)
        print(
            f"generated {args.records:,} call records for {recipients:,} recipients"
            f" in {time.perf_counter() - t:.1f} s ({url.split(':')[0]})"
        )
        times = []
        for _ in range(5):
            t = time.perf_counter()
            report = campaign_report(store, CAMPAIGN)
            times.append(time.perf_counter() - t)
        assert report.calls_placed == args.records
        print(
            f"report over {report.calls_placed:,} calls: median {statistics.median(times):.2f} s"
            f" (min {min(times):.2f}, max {max(times):.2f}), connection rate"
            f" {report.connection_rate:.1%}"
        )
        with store.engine.begin() as conn:
            for table in (CallRecordRow, CampaignRecipientRow):
                conn.execute(delete(table).where(table.campaign_id == CAMPAIGN))  # type: ignore[arg-type]
        store.close()


if __name__ == "__main__":
    main()
