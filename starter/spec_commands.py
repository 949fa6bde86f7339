"""`redialer validate` and `redialer plan`: check a campaign before anything is dialed."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from redialer.answer_rates import AnswerRates
from redialer.campaign import CampaignSpec
from redialer.loading import InvalidInput, Loaded, load_campaign
from redialer.outcomes import Outcome
from redialer.plan import plan_attempts
from redialer.recipients import normalise_phone
from redialer.settings import get_settings
from redialer.strategies import (
    AttemptDelays,
    Exponential,
    FixedDelay,
    NoRetry,
    Scheduled,
    Smart,
    TimeOfDay,
)
from redialer.windows import format_minute_of_day
from redialer.zones import recipient_zone_name
from starter.output import EXIT_INVALID, console, errors, fail, print_json

SpecPath = Annotated[Path, typer.Argument(help="Campaign spec, JSON or YAML.")]


def load_or_exit(path: Path) -> Loaded[CampaignSpec]:
    """The spec, or exit 2 after printing every problem, one per line."""
    try:
        loaded = load_campaign(path, limits=get_settings().limits)
    except InvalidInput as exc:
        errors.print(f"{exc.source}: {len(exc.problems)} problem(s)", markup=False)
        for problem in exc.problems:
            errors.print(f"  {problem}", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_INVALID) from exc
    for warning in loaded.warnings:
        errors.print(f"warning: {warning}", markup=False, soft_wrap=True)
    return loaded


def _seconds(s: float) -> str:
    if s % 3600 == 0:
        return f"{s / 3600:g} h"
    if s % 60 == 0:
        return f"{s / 60:g} min"
    return f"{s:g} s"


def describe_strategy(spec: CampaignSpec) -> str:
    s = spec.retry.strategy
    jitter = f", jitter ±{s.jitter:.0%}" if s.jitter else ""
    match s:
        case NoRetry():
            text = "none (one attempt)"
        case FixedDelay():
            text = f"fixed delay {_seconds(s.delay)}, up to {s.max_retries} retries"
        case AttemptDelays():
            text = "attempts: " + ", ".join(_seconds(d) for d in s.delays)
        case Exponential():
            cap = f", at most {_seconds(s.max_delay)}" if s.max_delay else ""
            text = (
                f"exponential from {_seconds(s.initial_delay)} x{s.multiplier:g}{cap},"
                f" up to {s.max_retries} retries"
            )
        case Scheduled():
            text = "scheduled at " + ", ".join(t.isoformat() for t in s.retry_at)
        case TimeOfDay():
            text = (
                f"time of day {', '.join(format_minute_of_day(t) for t in s.times)},"
                f" up to {s.retry_budget()} retries"
            )
        case Smart():
            text = (
                f"smart: the allowed hour with the best expected answer rate,"
                f" {_seconds(s.min_delay)} to {_seconds(s.max_delay)} after each attempt,"
                f" up to {s.max_retries} retries, learning from "
                + (", ".join(s.learn_from) if s.learn_from is not None else "every campaign")
            )
    return text + jitter


def validate(
    spec_path: SpecPath,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Also show how another product's settings were read, and the spec they became.",
        ),
    ] = False,
) -> None:
    """Check a campaign spec: exit 0 with a summary, or exit 2 with every problem."""
    loaded = load_or_exit(spec_path)
    spec = loaded.value
    zones = Counter(
        recipient_zone_name(own=r.timezone, phone=r.phone, campaign=spec.timezone)
        for r in spec.recipients
    )
    caps = {o.value: spec.retry.cap_for(o) for o in spec.retry.retry_on}
    lines = [
        f"[bold]{spec.campaign_id}[/bold]: valid"
        + (" (long-living: stays open until stopped)" if spec.long_living else ""),
        f"recipients   {len(spec.recipients)}"
        + (
            f" in {len(zones)} zone(s): " + ", ".join(f"{z} {n}" for z, n in zones.most_common(5))
            if zones
            else ""
        ),
        f"strategy     {describe_strategy(spec)}",
        "retry on     "
        + (
            ", ".join(f"{o} (max {c})" if c is not None else o for o, c in caps.items())
            or "nothing"
        ),
        f"timezone     {spec.timezone} (for recipients whose number maps to no single zone)",
        "calling hrs  " + (spec.calling_hours.label() if spec.calling_hours else "any time"),
        "pause        "
        + (
            "; ".join(
                f"{day.value} " + ", ".join(r.label() for r in ranges)
                for day, ranges in spec.pause_windows.items()
            )
            or "none"
        ),
        "limits       "
        + (
            ", ".join(
                f"{k} {v}"
                for k, v in {
                    "max attempts/day": spec.max_attempts_per_day,
                    "max concurrent calls": spec.max_concurrent_calls,
                    "max calls/s": spec.max_calls_per_second,
                }.items()
                if v is not None
            )
            or "none"
        ),
    ]
    for line in lines:
        console.print(line)
    if explain:
        _explain(loaded)


def _explain(loaded: Loaded[CampaignSpec]) -> None:
    """Which formats were read, each field's mapping, and the redialer spec the file became.

    The recipients are counted, not listed: they are personal data, and unchanged by translation.
    """
    translation = loaded.translation
    if translation is None or not translation.formats:
        console.print("format       redialer's own (nothing translated)")
    else:
        console.print("format       " + ", ".join(translation.format_names))
        console.print("mapping")
        for line in translation.lines():
            console.print(f"  {line}", markup=False)
    spec = loaded.value
    console.print(f"redialer spec (recipients left out: {len(spec.recipients)})")
    dumped = spec.model_dump(mode="json", exclude={"recipients"})
    print_json(
        {
            "campaign_id": dumped.pop("campaign_id"),
            "long_living": dumped.pop("long_living"),
            **dumped,
        }
    )


def _outcomes(value: str) -> list[Outcome]:
    result = []
    for i, word in enumerate(w.strip() for w in value.split(",") if w.strip()):
        try:
            result.append(Outcome(word))
        except ValueError:
            fail(
                f"--outcomes[{i}]: {word!r}: not an outcome; use "
                + ", ".join(o.value for o in Outcome),
                code=EXIT_INVALID,
            )
    if not result:
        fail(
            "--outcomes: give at least one outcome, e.g. busy,no_answer,completed",
            code=EXIT_INVALID,
        )
    return result


def plan(
    spec_path: SpecPath,
    start: Annotated[str, typer.Option(help="When the campaign starts, ISO 8601 with offset.")],
    outcomes: Annotated[
        str, typer.Option(help="What each dial returns, e.g. busy,no_answer,completed")
    ],
    recipient: Annotated[str | None, typer.Option(help="E.164 number (default: the first)")] = None,
    call_seconds: Annotated[float, typer.Option(help="How long each call lasts.")] = 30.0,
    seed: Annotated[
        int, typer.Option(help="Seed for jitter and the smart strategy's exploration.")
    ] = 0,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            help="A smart strategy learns answer rates from this store's call records"
            " (default: none read, the seed products' advice alone).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Dry run: when each attempt would be placed for one recipient, and why it was moved."""
    spec = load_or_exit(spec_path).value
    try:
        started = datetime.fromisoformat(start)
    except ValueError:
        fail(
            f"--start: {start!r}: must be ISO 8601, e.g. 2026-11-23T09:30:00-05:00",
            code=EXIT_INVALID,
        )
    if started.tzinfo is None:
        fail(f"--start: {start!r}: must include a UTC offset or Z", code=EXIT_INVALID)
    scripted = _outcomes(outcomes)
    phone, own_zone = _pick_recipient(spec, recipient)
    rates, learned = _answer_rates(spec, database)
    result = plan_attempts(
        spec.policy(),
        phone=phone,
        recipient_timezone=own_zone,
        start=started,
        outcomes=scripted,
        call_seconds=call_seconds,
        seed=seed,
        answer_rates=rates,
    )
    if as_json:
        shown = result.model_dump(mode="json", exclude={"final_reason"})
        if not result.compliance_zones:  # the documented shape, unless the rules used zones
            shown.pop("compliance_zones")
        for attempt in shown["attempts"]:  # a smart retry's choice; nothing for the others
            for key in ("expected_answer_rate", "why"):
                if attempt[key] is None:
                    attempt.pop(key)
        print_json(shown)
        return
    console.print(f"[bold]{result.recipient}[/bold] ({result.timezone})")
    if result.compliance_zones:
        console.print(
            f"  compliance: the number may ring in {len(result.compliance_zones)} zones; rule hours"
            f" hold in all of them (safe intersection of {len(result.compliance_zones)} zones: "
            + ", ".join(result.compliance_zones)
            + ")",
            markup=False,
            soft_wrap=True,
        )
    if learned is not None:
        console.print(f"  smart timing: {learned}", markup=False, soft_wrap=True)
    for a in result.attempts:
        moved = "; moved by " + ", ".join(d.describe() for d in a.deferred) if a.deferred else ""
        why = f"; {a.why}" if a.why else ""
        console.print(
            f"  attempt {a.attempt:>2}  {a.at:%a %Y-%m-%d %H:%M:%S %z}  "
            f"{a.outcome.value if a.outcome else '(no outcome given)'}{why}{moved}",
            markup=False,
        )
    console.print(
        f"  final: {result.final_status.value if result.final_status else 'not final'}"
        f" ({result.final_reason})",
        markup=False,
    )


def _answer_rates(
    spec: CampaignSpec, database: str | None
) -> tuple[AnswerRates | None, str | None]:
    """A smart strategy's answer rates, and where they came from (None, None for the others)."""
    strategy = spec.retry.strategy
    if not isinstance(strategy, Smart):
        return None, None
    if database is None:
        return None, "answer rates from the seed products' advice (--database learns from a store)"
    from redialer.store.answer_rate_query import answer_rate_rows
    from redialer.store.store import Store

    store = Store.open(database)
    try:
        rates = answer_rate_rows(store, campaign_ids=strategy.learn_from)
    finally:
        store.close()
    source = ", ".join(strategy.learn_from) if strategy.learn_from is not None else "every campaign"
    return (
        rates,
        f"answer rates learned from {rates.calls:,} call(s) of {source},"
        " with the seed products' advice as the prior",
    )


def _pick_recipient(spec: CampaignSpec, recipient: str | None) -> tuple[str, str | None]:
    if recipient is None:
        if not spec.recipients:
            fail("the spec has no recipients; pass --recipient +E164", code=EXIT_INVALID)
        return spec.recipients[0].phone, spec.recipients[0].timezone
    try:
        phone = normalise_phone(recipient)
    except ValueError as exc:
        fail(f"--recipient: {recipient!r}: {exc}", code=EXIT_INVALID)
    own = next((r.timezone for r in spec.recipients if r.phone == phone), None)
    return phone, own
