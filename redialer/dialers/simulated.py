"""SimulatedDialer: the embedded default, scriptable per number, seeded randomness for the rest.

It plays the provider: its ledger is the provider's record of calls, one row per idempotency key,
and `placements` counts every place-call request that reached it for that key. A second request
increments it (and, as no real provider would, gets the first call's result instead of a second
call, so a test can go on): the count is the honest evidence of a double dial, never hidden.

- `adopt` finds a call placed earlier for the key (what redialer asks after a crash, as it would
  ask a real provider for calls to the number since its intent) and waits for its outcome.
- A row with no result yet belongs to a call in progress: another worker's (wait for it to end,
  polling up to the call's length plus 30 s) or a dead worker's. Once the call's length plus
  `LIVENESS_SLACK` has passed since the row was claimed, its placer is presumed dead: the call was
  placed, so it is finished from its outcome. Both ways give one answer because the outcome and
  duration are a pure function of (seed, script, key, and the start time in the key's row).
- With an answer profile (`redialer.answer_profile`), whether a live person picks up an unscripted
  call depends on the recipient's local weekday and hour when the call starts. That start is
  stamped once per key, in the row that claims it, and every later request, adoption or finish
  decides from that stamp, never from its own clock: a key still has one outcome. Without a
  profile, outcomes follow `RATES` whatever the hour, exactly as before profiles existed.
- `speed` speeds the world up: a call rings for its duration divided by `speed`, and its record
  says so (the end is the real end), so retry delays count from when the call really ended, as
  they do with a real provider.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select
from temporalio import activity

from redialer.answer_profile import AnswerProfile
from redialer.dialers.base import CallRequest, CallResult
from redialer.limits import Problem
from redialer.loading import InvalidInput, read_document
from redialer.outcomes import Outcome
from redialer.recipients import normalise_phone
from redialer.store.store import Store, aware
from redialer.store.tables import SimulatedDialRow
from redialer.zones import load_zone, zones_of_number

#: Outcome rates for unscripted numbers (first-attempt connection rates of 20-40 % are typical).
RATES: dict[Outcome, float] = {
    Outcome.COMPLETED: 0.35,
    Outcome.NO_ANSWER: 0.30,
    Outcome.BUSY: 0.12,
    Outcome.VOICEMAIL: 0.12,
    Outcome.FAILED: 0.05,
    Outcome.REJECTED: 0.04,
    Outcome.INVALID_NUMBER: 0.02,
}
#: Call durations in seconds (min, max) by outcome: a ring timeout, a short busy tone, a talk.
DURATIONS: dict[Outcome, tuple[float, float]] = {
    Outcome.COMPLETED: (30, 240),
    Outcome.NO_ANSWER: (25, 35),
    Outcome.VOICEMAIL: (20, 45),
    Outcome.BUSY: (2, 6),
}
_SHORT = (1.0, 4.0)
#: Wall-clock seconds past a call's end after which its placing process is presumed dead.
LIVENESS_SLACK = 5.0

Script = dict[str, list[Outcome]]

#: A call the profile says nobody answered ends as one of these, in RATES's proportions.
_UNANSWERED = {o: rate for o, rate in RATES.items() if o is not Outcome.COMPLETED}


def call_clock() -> datetime:
    """When a simulated call starts: Temporal's time for the activity (so time-skipping tests and
    the call records agree with the workflow's clock), or the wall clock outside an activity."""
    if activity.in_activity():
        return activity.info().started_time.astimezone(UTC)
    return datetime.now(UTC)


def call_zone(phone: str, zone: str | None = None) -> ZoneInfo:
    """The zone a call's local time is read in: the request's (the recipient's own, resolved as
    its windows are), else its number's clock. A number of several clocks is read in the first of
    them (`zones_of_number`'s order), a number of none in UTC: the simulator must answer anyway."""
    if zone:
        return load_zone(zone)
    return load_zone(next(iter(zones_of_number(phone)), "UTC"))


def local_time_of_call(phone: str, started_at: datetime, zone: str | None = None) -> datetime:
    """The recipient's wall time when a call placed at `started_at` starts."""
    return started_at.astimezone(call_zone(phone, zone))


def _rng(seed: int, key: str) -> random.Random:
    return random.Random(hashlib.sha256(f"{seed}:{key}".encode()).digest())


def _draw(rng: random.Random, profile: AnswerProfile | None, local: datetime | None) -> Outcome:
    """An unscripted call's outcome. Without a profile, one draw from RATES (as before profiles
    existed, so seeded runs and benchmarks keep their results); with one, answered (COMPLETED)
    with the profile's probability at the local time, else one of the other outcomes."""
    if profile is None:
        return rng.choices(list(RATES), weights=list(RATES.values()))[0]
    if local is None:
        raise ValueError("local_time is required with an answer profile: answers depend on it")
    if rng.random() < profile.probability(local):
        return Outcome.COMPLETED
    return rng.choices(list(_UNANSWERED), weights=list(_UNANSWERED.values()))[0]


def simulated_outcome(
    seed: int,
    key: str,
    *,
    profile: AnswerProfile | None = None,
    local_time: datetime | None = None,
) -> Outcome:
    """The outcome the simulator gives an unscripted call for `key` starting at the recipient's
    `local_time`: the dialer's own decision, for a simulation that runs without it."""
    return _draw(_rng(seed, key), profile, local_time)


def answers(profile: AnswerProfile, seed: int, key: str, local_time: datetime) -> bool:
    """Whether a live person answers the unscripted call for `key` at `local_time`, exactly as
    the simulated dialer with this profile and seed decides it."""
    outcome = simulated_outcome(seed, key, profile=profile, local_time=local_time)
    return outcome is Outcome.COMPLETED


def load_script(path: Path) -> Script:
    """`{"+16505550199": ["busy", "no_answer", "completed"]}`; every bad entry reported at once."""
    data = read_document(path)
    if not isinstance(data, dict):
        raise InvalidInput(
            str(path), [Problem("", type(data).__name__, "must map numbers to outcomes")]
        )
    script: Script = {}
    written_as: dict[str, str] = {}
    problems = []
    for key, outcomes in data.items():
        try:
            phone = normalise_phone(str(key))
        except ValueError as exc:
            problems.append(Problem(str(key), key, str(exc)))
            continue
        if phone in written_as:
            rule = f"is {phone}, already scripted as {written_as[phone]!r}: list a number once"
            problems.append(Problem(str(key), key, rule))
            continue
        written_as[phone] = str(key)
        if not isinstance(outcomes, list) or not outcomes:
            problems.append(Problem(str(key), outcomes, "must be a non-empty list of outcomes"))
            continue
        parsed = []
        for i, word in enumerate(outcomes):
            try:
                parsed.append(Outcome(word))
            except ValueError:
                problems.append(
                    Problem(
                        f"{key}[{i}]",
                        word,
                        "not an outcome; use " + ", ".join(o.value for o in Outcome),
                    )
                )
        script[phone] = parsed
    if problems:
        raise InvalidInput(str(path), problems)
    return script


class DialLedger:
    """Every call the simulator placed, in the store's database (shared by all workers)."""

    def __init__(self, store: Store) -> None:
        self._engine = store.engine

    def claim(self, request: CallRequest, call_id: str, started_at: datetime) -> bool:
        """Count a place-call request and take the key for a new call: one upsert, which only
        one process can win (True); a request for a key already placed increments `placements`
        and returns False (the caller reads the first call's row instead)."""
        table = SimulatedDialRow.__table__  # type: ignore[attr-defined]
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        statement = (
            dialect.insert(table)
            .values(
                idempotency_key=request.idempotency_key,
                phone=request.phone,
                attempt=request.attempt,
                placements=1,
                call_id=call_id,
                started_at=started_at,
                claimed_at=datetime.now(UTC),
            )
            .on_conflict_do_update(
                index_elements=["idempotency_key"],
                set_={"placements": table.c.placements + 1},
            )
            .returning(table.c.placements)
        )
        with self._engine.begin() as connection:
            return connection.execute(statement).scalar_one() == 1

    def get(self, key: str) -> SimulatedDialRow | None:
        with Session(self._engine) as session:
            return session.get(SimulatedDialRow, key)

    def finish(self, key: str, outcome: Outcome, ended_at: datetime) -> None:
        with Session(self._engine) as session:
            session.exec(  # type: ignore[call-overload]
                update(SimulatedDialRow)
                .where(
                    col(SimulatedDialRow.idempotency_key) == key,
                    col(SimulatedDialRow.outcome).is_(None),
                )
                .values(outcome=outcome.value, ended_at=ended_at, finished_at=datetime.now(UTC))
            )
            session.commit()

    def placements(self) -> dict[str, int]:
        """Place-call requests that reached the simulator, per key (anything above 1 is a
        double dial)."""
        with Session(self._engine) as session:
            rows = session.exec(select(SimulatedDialRow)).all()
            return {r.idempotency_key: r.placements for r in rows}

    def dialed_twice(self, prefix: str = "") -> dict[str, int]:
        """Keys (starting with `prefix`, e.g. `"{campaign_id}:"`) that got more than one request."""
        return {k: n for k, n in self.placements().items() if k.startswith(prefix) and n > 1}

    def dials_for(self, phone: str) -> list[SimulatedDialRow]:
        with Session(self._engine) as session:
            return list(
                session.exec(
                    select(SimulatedDialRow)
                    .where(SimulatedDialRow.phone == phone)
                    .order_by(col(SimulatedDialRow.attempt))
                ).all()
            )

    def dials_for_campaign(self, campaign_id: str) -> list[SimulatedDialRow]:
        """Every call placed for a campaign (its keys are `{campaign_id}:{e164}:{attempt}`)."""
        with Session(self._engine) as session:
            return list(
                session.exec(
                    select(SimulatedDialRow).where(
                        col(SimulatedDialRow.idempotency_key).startswith(f"{campaign_id}:")
                    )
                ).all()
            )


class SimulatedDialer:
    def __init__(
        self,
        *,
        ledger: DialLedger,
        script: Script | None = None,
        seed: int = 0,
        speed: float = 1.0,
        instant: bool = False,
        clock: Callable[[], datetime] | None = None,
        profile: AnswerProfile | None = None,
    ) -> None:
        self._ledger = ledger
        self._script = script or {}
        self._seed = seed
        #: Answers by local hour for unscripted numbers; None: RATES at any hour.
        self._profile = profile
        self._speed = speed
        self._instant = instant
        self._clock = clock or call_clock
        #: Calls this dialer placed (rang); a request for a key already placed, or a call a dead
        #: worker left unfinished, does not count (the ledger's `placements` counts requests).
        self.placed = 0

    def decide(
        self, request: CallRequest, started_at: datetime | None = None
    ) -> tuple[Outcome, float]:
        """The call's outcome and duration: fixed by the script, else by seed and key, and with a
        profile by the recipient's local time at `started_at` (the start stamped in the key's
        row, so every process decides a key alike)."""
        rng = _rng(self._seed, request.idempotency_key)
        scripted = self._script.get(request.phone)
        if scripted:
            outcome = scripted[min(request.attempt, len(scripted)) - 1]
        else:
            local = None
            if self._profile is not None:
                if started_at is None:
                    raise ValueError(
                        f"decide({request.idempotency_key!r}): started_at is required with an"
                        " answer profile: whether a person answers depends on the local time"
                    )
                local = local_time_of_call(request.phone, started_at, request.zone)
            outcome = _draw(rng, self._profile, local)
        low, high = DURATIONS.get(outcome, _SHORT)
        return outcome, 0.0 if self._instant else rng.uniform(low, high)

    async def dial(self, request: CallRequest) -> CallResult:
        call_id = "sim-" + hashlib.sha256(request.idempotency_key.encode()).hexdigest()[:16]
        started = self._clock()
        # Decided before the claim (a bad zone fails here, before any call): `started` is what
        # the row will hold if this request places the call.
        outcome, duration = self.decide(request, started)
        if await asyncio.to_thread(self._ledger.claim, request, call_id, started):
            self.placed += 1  # we placed it: the call rings and ends
            await asyncio.sleep(duration / self._speed)
            ended = started + timedelta(seconds=duration / self._speed)
            await asyncio.to_thread(self._ledger.finish, request.idempotency_key, outcome, ended)
            # Whoever finishes a key writes these same values: they are a function of the key.
            return CallResult(outcome=outcome, call_id=call_id, started_at=started, ended_at=ended)
        return await self._result_of(request)

    async def adopt(self, request: CallRequest, *, since: datetime) -> CallResult | None:
        """The call placed for this key, if the simulator has one (`since` is what a provider
        lookup by number and creation time needs; the simulator finds the key itself)."""
        if await asyncio.to_thread(self._ledger.get, request.idempotency_key) is None:
            return None
        return await self._result_of(request)

    async def _result_of(self, request: CallRequest) -> CallResult:
        """The recorded result; a call a dead worker left unfinished is finished, not redialed.

        Its outcome is decided from the start stamped in the row, not from this process's clock
        (a second request comes later, and may come from another activity attempt)."""
        key = request.idempotency_key
        first = await asyncio.to_thread(self._ledger.get, key)
        assert first is not None, f"ledger row {key} vanished"
        outcome, duration = self.decide(request, aware(first.started_at))
        for _ in range(int(duration / self._speed / 0.2) + 150):
            row = await asyncio.to_thread(self._ledger.get, key)
            assert row is not None, f"ledger row {key} vanished"
            if row.outcome is None and not await self._still_ringing(row, duration):
                ended = aware(row.started_at) + timedelta(seconds=duration / self._speed)
                await asyncio.to_thread(self._ledger.finish, key, outcome, ended)
                continue
            if row.outcome is not None and row.ended_at is not None:
                return CallResult(
                    outcome=Outcome(row.outcome),
                    call_id=row.call_id,
                    started_at=aware(row.started_at),
                    ended_at=aware(row.ended_at),
                )
            await asyncio.sleep(0.2)
        raise TimeoutError(f"call {key} never ended")

    async def _still_ringing(self, row: SimulatedDialRow, duration: float) -> bool:
        """Another live process may still be in this call; past its length plus slack, it is not."""
        elapsed = (datetime.now(UTC) - aware(row.claimed_at)).total_seconds()
        return elapsed < duration / self._speed + LIVENESS_SLACK
