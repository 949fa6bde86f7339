"""A/B of retry timing: `smart` against `fixed_delay` 60 min and `time_of_day` (the seeds' 10:00,
14:00, 17:00), same audience, same simulator profile, same `max_retries`, cold and warm.

    python -m bench.smart_ab [--recipients 2000] [--profile default|evening|FILE] [--seed 1]

A sped-up simulator, not the Temporal server: each recipient's attempts are walked through the
functions the dial activity calls (`next_step` with the same policy, seed-by-key jitter and
exploration, compliance and calling hours; the simulated dialer's own answer decision,
`simulated_outcome`, at the recipient's local time; `Store.finish_attempt` for every record;
the smart strategy's answer-rate table read from those records by `answer_rate_rows` and kept
for `REDIALER_SMART_RATES_CACHE_SECONDS` of simulated time, as a worker keeps it). Events run in
time order across the whole campaign, so a smart retry only learns from calls already made.
Simulated days pass in seconds; a run of 2,000 recipients per arm takes a few minutes.

Phases: **cold**, a new installation: one campaign per arm on an empty store, the smart arm
learning only from its own calls as they happen (`learn_from: [itself]`). **Warm**, a week
later: one campaign per arm again, the smart arm learning from every campaign in the store (the
cold ones included). The numbers are read back by `build_report` over the store, as
`redialer report A B --database <the file printed>` shows them.

Profiles: `default` is the seeds' advice (examples/answer-profile.yaml), which the smart
strategy's prior also follows, so cold smart starts right; `evening` is an audience of
consumers who answer after work and at weekends and rarely in office hours, against which the
prior is wrong and only learning helps.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.run import RESULTS, machine
from redialer.answer_profile import AnswerProfile, parse_profile
from redialer.campaign import CampaignPolicy
from redialer.dialers.simulated import local_time_of_call, simulated_outcome
from redialer.outcomes import Outcome
from redialer.payloads import AttemptRecord
from redialer.recipients import Recipient
from redialer.report import AttemptRow, CampaignReport, RecipientRow, build_report
from redialer.schedule import Final, next_step
from redialer.settings import Settings
from redialer.store.answer_rate_query import answer_rate_rows
from redialer.store.store import Store
from workflows.ids import recipient_workflow_id

#: Where the audience lives: area code -> zone (the number's own clock).
AREAS = {
    "212": "America/New_York",
    "312": "America/Chicago",
    "303": "America/Denver",
    "415": "America/Los_Angeles",
}
#: Call lengths by outcome, seconds (the simulator's DURATIONS, mid-range).
LENGTH = {
    Outcome.COMPLETED: 120.0,
    Outcome.NO_ANSWER: 30.0,
    Outcome.VOICEMAIL: 30.0,
    Outcome.BUSY: 4.0,
}
#: First attempts are spread over the campaign's first hours (as line caps spread them).
FIRST_SPREAD = timedelta(hours=8)
COLD_START = datetime(2027, 1, 4, 14, 0, tzinfo=UTC)  # Monday 09:00 in New York
WARM_START = COLD_START + timedelta(days=7)

EVENING: dict[str, Any] = {
    "default": 0.03,
    "hours": {"8": 0.10, "9-12": 0.12, "12-14": 0.20, "14-17": 0.12, "17-19": 0.50, "19-21": 0.45},
    "weekend": {"10-13": 0.40, "13-18": 0.35, "18-21": 0.40},
}

BASE: dict[str, Any] = {
    "timezone": "America/New_York",
    "calling_hours": {"start": "08:00", "end": "21:00"},
    "compliance": ["us_tcpa"],
}
RETRY_ON = ["no_answer", "busy", "voicemail", "failed"]
#: Smart runs first in each phase: the table it reads then holds only calls already made (its
#: own, and the week-old cold campaigns when warm), never another arm's later ones.
STRATEGIES: dict[str, dict[str, Any]] = {
    "smart": {"type": "smart", "max_retries": 3, "min_delay": 1800, "max_delay": 86400},
    "fixed": {"type": "fixed_delay", "delay": 3600, "max_retries": 3},
    "tod": {"type": "time_of_day", "times": ["10:00", "14:00", "17:00"], "max_retries": 3},
}


def audience(n: int) -> list[tuple[str, str]]:
    """n distinct numbers spread evenly over the four zones: (phone, zone)."""
    areas = list(AREAS)
    return [
        (f"+1{areas[i % 4]}{200 + (i // 4) // 10_000}{(i // 4) % 10_000:04d}", AREAS[areas[i % 4]])
        for i in range(n)
    ]


@dataclass
class Person:
    phone: str
    zone: ZoneInfo
    attempts: list[AttemptRecord] = field(default_factory=list)


@dataclass
class Rates:
    """The smart arm's answer-rate table, re-read when the cache time has passed."""

    store: Store
    learn_from: list[str] | None
    every: timedelta
    read_at: datetime | None = None
    table: Any = None
    reads: int = 0

    def at(self, now: datetime) -> Any:
        if self.read_at is None or now - self.read_at >= self.every:
            self.table = answer_rate_rows(self.store, campaign_ids=self.learn_from)
            self.read_at, self.reads = now, self.reads + 1
        return self.table


def run_campaign(
    store: Store,
    campaign_id: str,
    policy: CampaignPolicy,
    people: list[tuple[str, str]],
    *,
    start: datetime,
    profile: AnswerProfile,
    seed: int,
    rates: Rates | None,
) -> dict[str, Any]:
    """Every recipient to a final status, events in time order; returns counters."""
    store.enqueue_recipients(
        campaign_id,
        [Recipient(phone=p) for p, _ in people],
        workflow_id_for=lambda p: recipient_workflow_id(campaign_id, p),
        campaign_timezone=policy.timezone,
    )
    state = {p: Person(p, ZoneInfo(z)) for p, z in people}
    queue: list[tuple[datetime, int, str]] = []
    spread = FIRST_SPREAD / max(1, len(people))
    for i, (phone, _) in enumerate(people):
        first = next_step(
            policy,
            zone=state[phone].zone,
            attempts=[],
            now=start + spread * i,
            rng=random.Random(phone),
            phone=phone,
        )
        assert not isinstance(first, Final)
        heapq.heappush(queue, (first.at, i, phone))
    expected: list[float] = []
    while queue:
        at, i, phone = heapq.heappop(queue)
        person = state[phone]
        attempt = len(person.attempts) + 1
        key = f"{campaign_id}:{phone}:{attempt}"
        outcome = simulated_outcome(
            seed, key, profile=profile, local_time=local_time_of_call(phone, at, str(person.zone))
        )
        ended = at + timedelta(seconds=LENGTH.get(outcome, 2.0))
        record = AttemptRecord(
            attempt=attempt, outcome=outcome, started_at=at, ended_at=ended, call_id=f"sim-{key}"
        )
        person.attempts.append(record)
        decision = next_step(
            policy,
            zone=person.zone,
            attempts=person.attempts,
            now=ended,
            rng=random.Random(key),
            phone=phone,
            answer_rates=rates.at(ended) if rates is not None else None,
        )
        final = decision if isinstance(decision, Final) else None
        store.finish_attempt(
            key=key,
            campaign_id=campaign_id,
            phone=phone,
            retry_group_id=recipient_workflow_id(campaign_id, phone),
            record=record,
            variables={},
            final=final.status.value if final is not None else None,
            next_attempt_at=None if final is not None else decision.at,
        )
        if final is None:
            if decision.expected_answer_rate is not None:
                expected.append(decision.expected_answer_rate)
            heapq.heappush(queue, (decision.at, i, phone))
    return {
        "table_reads": rates.reads if rates is not None else 0,
        "mean_expected_rate_of_chosen_hours": (
            round(sum(expected) / len(expected), 4) if expected else None
        ),
    }


def report(store: Store, campaign_id: str) -> CampaignReport:
    recipients, records = store.report_rows(campaign_id)
    return build_report(
        campaign_id, (RecipientRow(*r) for r in recipients), (AttemptRow(*a) for a in records)
    )


def row(r: CampaignReport) -> dict[str, Any]:
    connected = r.by_status.get("completed", 0)
    return {
        "recipients": r.recipients,
        "connected": connected,
        "calls_placed": r.calls_placed,
        "connection_rate": r.connection_rate,
        "connections_per_call": round(connected / r.calls_placed, 4) if r.calls_placed else None,
        "avg_attempts_to_connect": r.average_attempts_to_connect,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=2000)
    parser.add_argument("--profile", default="default", help="default, evening, or a file")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database", help="store URL (default: a new SQLite file)")
    args = parser.parse_args()
    profile = (
        AnswerProfile.default()
        if args.profile == "default"
        else parse_profile(EVENING, source="evening")
        if args.profile == "evening"
        else AnswerProfile.load(Path(args.profile))
    )
    workdir = Path(tempfile.mkdtemp(prefix="redialer-smart-ab-"))
    url = args.database or f"sqlite:///{workdir / 'calls.db'}"
    store = Store.open(url)
    every = timedelta(seconds=Settings().smart_rates_cache_seconds)
    people = audience(args.recipients)
    tag = args.profile if args.profile in ("default", "evening") else Path(args.profile).stem
    results: dict[str, Any] = {}
    began = time.perf_counter()
    for phase, start in (("cold", COLD_START), ("warm", WARM_START)):
        for arm, strategy in STRATEGIES.items():
            campaign_id = f"{tag}-{phase}-{arm}"
            retry: dict[str, Any] = {"strategy": dict(strategy), "retry_on": RETRY_ON}
            if arm == "smart" and phase == "cold":
                retry["strategy"]["learn_from"] = [campaign_id]
            policy = CampaignPolicy.model_validate({**BASE, "retry": retry})
            rates = (
                Rates(store, retry["strategy"].get("learn_from"), every) if arm == "smart" else None
            )
            t0 = time.perf_counter()
            extra = run_campaign(
                store,
                campaign_id,
                policy,
                people,
                start=start,
                profile=profile,
                seed=args.seed,
                rates=rates,
            )
            results[campaign_id] = {
                **row(report(store, campaign_id)),
                **extra,
                "seconds": round(time.perf_counter() - t0, 1),
            }
            print(campaign_id, json.dumps(results[campaign_id]), flush=True)
    for phase in ("cold", "warm"):
        smart = results[f"{tag}-{phase}-smart"]["connections_per_call"]
        for arm in ("fixed", "tod"):
            other = results[f"{tag}-{phase}-{arm}"]["connections_per_call"]
            results[f"{phase}: smart vs {arm}, connections per call"] = (
                f"{(smart / other - 1):+.1%}" if smart and other else None
            )
    summary = {
        "bench": "smart-ab",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "recipients_per_arm": args.recipients,
        "profile": args.profile,
        "seed": args.seed,
        "database": url,
        "seconds": round(time.perf_counter() - began, 1),
        "results": results,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{datetime.now(UTC):%Y%m%d-%H%M%S}-smart-ab-{tag}.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    for key, value in results.items():
        if isinstance(value, str):
            print(f"{key}: {value}")
    print(f"written to {out}; `redialer report {tag}-warm-smart {tag}-warm-fixed --database {url}`")
    store.close()


if __name__ == "__main__":
    main()
