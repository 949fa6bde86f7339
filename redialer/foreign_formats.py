"""Retry settings written for other products, read as redialer's own.

Users bring the settings they already have: Gomobile's `retryStrategy` and `pauseWindows`,
Exotel's `retry` and `schedule`, DialNexa's `retry`, Romulus's list of Attempt rows. Each is
mapped field by field onto redialer's spec before validation, and what each product's "max
retries" counts is taken from its own documents (the notes of each mapping quote them).

A problem is reported where the user wrote it: a foreign field by its foreign path, and what
redialer's validation later finds in a translated value (a delay over the limit) is rewritten by
`Translation.rewrite` to the field that produced it, with the value as written and what it became.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from redialer.limits import Problem
from redialer.windows import DAY_MINUTES, format_minute_of_day

GOMOBILE: Final = "gomobile"
EXOTEL: Final = "exotel"
DIALNEXA: Final = "dialnexa"
ROMULUS: Final = "romulus"
#: The products whose settings are read, by the name `Translation.formats` uses.
FORMAT_NAMES: Final = {
    GOMOBILE: "Gomobile",
    EXOTEL: "Exotel",
    DIALNEXA: "DialNexa",
    ROMULUS: "Romulus",
}
_REDIALER: Final = "redialer"

#: The same words redialer's own validation uses for a field it does not know.
UNKNOWN_FIELD: Final = "unknown field (check the spelling: an unknown field would be ignored)"

#: The fields of a `retry` object in each format that writes one. `retry_on` is both redialer's
#: and Exotel's: an object is Exotel's only when an Exotel-only field says so.
_RETRY_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    _REDIALER: ("strategy", "retry_on", "max_retries_by_outcome"),
    EXOTEL: ("max_attempts", "interval_minutes", "retry_on"),
    DIALNEXA: (
        "max_retries",
        "wait_minutes",
        "retry_on_voicemail",
        "retry_on_no_answer",
        "retry_on_busy",
    ),
}
_OWNER_NAMES: Final = {_REDIALER: "redialer", **FORMAT_NAMES}

#: Exotel's outcome spellings (and the underscore one people also write) as redialer's.
_EXOTEL_OUTCOMES: Final = {
    "busy": "busy",
    "no-answer": "no_answer",
    "no_answer": "no_answer",
    "failed": "failed",
}
_EXOTEL_DEFAULT_RETRY_ON: Final = ("busy", "no-answer", "failed")

#: Gomobile's strategy types and the fields each takes.
_GOMOBILE_TYPES: Final[dict[str, tuple[str, ...]]] = {
    "none": ("type",),
    "fixed_delay": ("type", "delayMinutes", "maxRetries"),
    "scheduled": ("type", "retryDates"),
}

_DEFAULTS_APPLY: Final = "redialer's defaults apply: no_answer, busy, and failed at most once"


class _Said(str):
    """Words about a value rather than a value (`(not given: true)`): shown unquoted."""

    def __repr__(self) -> str:
        return str(self)


def _show(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


@dataclass(frozen=True)
class Mapped:
    """One field as the user wrote it and the redialer field it became."""

    source: str
    written: Any
    target: str
    became: Any
    unit: str = ""
    note: str = ""

    def became_text(self) -> str:
        return _show(self.became) + (f" {self.unit}" if self.unit else "")

    def __str__(self) -> str:
        line = f"{self.source} = {_show(self.written)} → {self.target} = {self.became_text()}"
        return f"{line} ({self.note})" if self.note else line


@dataclass(frozen=True)
class Translation:
    """A document (or a `retry` value) in redialer's shape, and how it got there.

    `formats` is empty for redialer's own format. `paths` maps redialer paths to the foreign
    field each came from; `rewrite` uses it. `problems` are those found in foreign fields; they
    are raised unless the caller asked to collect them, to report them with its own. A foreign
    field with a problem is left out of `data` and its redialer path is in `reported`, so that
    redialer's validation of the rest does not report it a second time (as "is required").
    """

    data: Any
    formats: tuple[str, ...] = ()
    mapped: tuple[Mapped, ...] = ()
    notes: tuple[str, ...] = ()
    paths: Mapping[str, Mapped] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()
    reported: frozenset[str] = frozenset()

    @property
    def format_names(self) -> list[str]:
        return [FORMAT_NAMES[f] for f in self.formats]

    def lines(self) -> list[str]:
        """What was mapped, one line per field, then the notes on what the fields mean."""
        return [str(m) for m in self.mapped] + [f"note: {n}" for n in self.notes]

    def rewrite(self, problems: Iterable[Problem]) -> list[Problem]:
        """Problems found in redialer's fields, moved to the foreign fields the user wrote.

        An exact match shows the value as written and what it became; a problem below a mapped
        path (a misspelt weekday under `pauseWindows`) keeps its value under the foreign path.
        Problems in fields written in redialer's format come back unchanged; those at a path in
        `reported` are dropped: the foreign field's own problem already says what is wrong.
        """
        return [self._rewrite(p) for p in problems if not _under(p.path, self.reported)]

    def _rewrite(self, problem: Problem) -> Problem:
        exact = self.paths.get(problem.path)
        if exact is not None:
            return Problem(
                exact.source,
                exact.written,
                f"{problem.rule} (it became {exact.target} = {exact.became_text()})",
            )
        for target in sorted(self.paths, key=len, reverse=True):
            if _under(problem.path, [target]):
                source = self.paths[target].source + problem.path[len(target) :]
                return Problem(source, problem.value, f"{problem.rule} (read as {problem.path})")
        return problem

    def check(self, source: str) -> Translation:
        """This translation, or InvalidInput listing every problem in its foreign fields."""
        if self.problems:
            from redialer.loading import InvalidInput  # loading imports this module

            raise InvalidInput(source, self.problems)
        return self


def _under(path: str, prefixes: Iterable[str]) -> bool:
    """`path` is one of `prefixes` or inside one (`a.b[2]` is inside `a.b`, `a.bc` is not)."""
    return any(
        path == p or (path.startswith(p) and path[len(p) : len(p) + 1] in (".", "["))
        for p in prefixes
    )


class _Builder:
    """Collects a translation's mappings, notes and problems while the document is walked."""

    def __init__(self) -> None:
        self.formats: list[str] = []
        self.mapped: list[Mapped] = []
        self.notes: list[str] = []
        self.paths: dict[str, Mapped] = {}
        self.problems: list[Problem] = []
        self.reported: set[str] = set()

    def recognise(self, fmt: str) -> None:
        if fmt not in self.formats:
            self.formats.append(fmt)

    def map(
        self,
        source: str,
        written: Any,
        target: str,
        became: Any,
        *,
        unit: str = "",
        note: str = "",
        shown: bool = True,
        tracked: bool = True,
    ) -> Any:
        """Record that `source` became `target`; `shown` lists it, `tracked` rewrites its path."""
        mapped = Mapped(source, written, target, became, unit, note)
        if shown:
            self.mapped.append(mapped)
        if tracked:
            self.paths[target] = mapped
        return became

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def problem(self, path: str, value: Any, rule: str, *, target: str | None = None) -> None:
        """A problem in a foreign field; `target`, the redialer field it would have set."""
        self.problems.append(Problem(path, value, rule))
        if target is not None:
            self.reported.add(target)

    def build(self, data: Any) -> Translation:
        return Translation(
            data=data,
            formats=tuple(self.formats),
            mapped=tuple(self.mapped),
            notes=tuple(self.notes),
            paths=dict(self.paths),
            problems=tuple(self.problems),
            reported=frozenset(self.reported),
        )


def _at(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _fields(
    b: _Builder, value: dict[Any, Any], path: str, allowed: Sequence[str], who: str
) -> None:
    """Report each field `who` does not take, as redialer reports its own unknown fields."""
    for key in value:
        if key not in allowed:
            b.problem(
                _at(path, key), value[key], f"{UNKNOWN_FIELD}; {who} takes {', '.join(allowed)}"
            )


def _number(
    b: _Builder, value: Any, path: str, *, what: str, target: str, whole: bool = False
) -> int | float | None:
    """A non-negative number (a whole one for counts), or None after reporting why not."""
    rule = None
    if isinstance(value, bool):
        rule = f"must be {what}, not a boolean"
    elif not isinstance(value, int | float):
        rule = f"must be {what}"
    elif not math.isfinite(value):
        rule = f"must be {what}, a finite number"
    elif value < 0:
        rule = f"must be {what}, not negative"
    elif whole and value != int(value):
        rule = f"must be {what}, a whole number"
    if rule is not None:
        b.problem(path, value, rule, target=target)
        return None
    return int(value) if whole else value


def _take(
    b: _Builder,
    value: dict[Any, Any],
    src: str,
    key: str,
    *,
    what: str,
    target: str,
    whole: bool = False,
    why: str = "",
) -> int | float | None:
    """A required number field of a foreign object, or None after reporting why not."""
    if not _required(b, value, src, key, why, target=target):
        return None
    return _number(b, value[key], _at(src, key), what=what, target=target, whole=whole)


def _required(
    b: _Builder, value: dict[Any, Any], path: str, key: str, why: str = "", *, target: str
) -> bool:
    if key in value:
        return True
    b.problem(_at(path, key), value, "is required" + (f" {why}" if why else ""), target=target)
    return False


# --- Gomobile -----------------------------------------------------------------------------------


def _gomobile_strategy(b: _Builder, value: Any, src: str, dst: str) -> dict[str, Any] | None:
    """Gomobile's `retryStrategy`: none, fixed_delay or scheduled, minutes and camelCase."""
    b.recognise(GOMOBILE)
    if not isinstance(value, dict):
        b.problem(
            src,
            value,
            'must be an object such as {"type": "fixed_delay", "delayMinutes": 30,'
            ' "maxRetries": 2} (Gomobile\'s retryStrategy)',
        )
        return None
    if not _required(b, value, src, "type", "(none, fixed_delay or scheduled)", target=dst):
        return None
    kind = value["type"]
    if not isinstance(kind, str) or kind not in _GOMOBILE_TYPES:
        b.problem(
            f"{src}.type", kind, "must be none, fixed_delay or scheduled (the types Gomobile has)"
        )
        return None
    _fields(b, value, src, _GOMOBILE_TYPES[kind], f"Gomobile's {kind} strategy")
    strategy: dict[str, Any] = {"type": b.map(f"{src}.type", kind, f"{dst}.type", kind)}
    b.map(src, value, dst, strategy, shown=False)
    if kind == "fixed_delay":
        minutes = _take(
            b, value, src, "delayMinutes", what="a number of minutes", target=f"{dst}.delay"
        )
        if minutes is not None:
            strategy["delay"] = b.map(
                f"{src}.delayMinutes", minutes, f"{dst}.delay", minutes * 60, unit="s"
            )
        retries = _take(
            b,
            value,
            src,
            "maxRetries",
            what="a number of retries",
            target=f"{dst}.max_retries",
            whole=True,
        )
        if retries is not None:
            strategy["max_retries"] = b.map(
                f"{src}.maxRetries",
                retries,
                f"{dst}.max_retries",
                retries,
                note=f"retries after the first attempt: at most {retries + 1} attempts",
            )
        b.note(
            "maxRetries counts retries after the first attempt: Gomobile's recommended settings"
            " pair Max Retries 3-4 with Total Attempts 4-5"
        )
    elif kind == "scheduled" and _required(b, value, src, "retryDates", target=f"{dst}.retry_at"):
        dates = value["retryDates"]
        if not isinstance(dates, list):
            b.problem(
                f"{src}.retryDates",
                dates,
                "must be a list of ISO 8601 times with a zone",
                target=f"{dst}.retry_at",
            )
        else:
            for i, at in enumerate(dates):
                b.map(f"{src}.retryDates[{i}]", at, f"{dst}.retry_at[{i}]", at)
            strategy["retry_at"] = b.map(
                f"{src}.retryDates", dates, f"{dst}.retry_at", list(dates), shown=False
            )
            b.note(
                "retryDates are absolute times, one retry at each; a time already past is skipped"
            )
    b.note(f"retry_on: Gomobile's retryStrategy names no outcomes; {_DEFAULTS_APPLY}")
    return strategy


def _gomobile_clock(b: _Builder, value: Any, path: str, target: str) -> str | None:
    """`{"hour": 12, "minute": 0}` as "12:00"; both fields required, as Gomobile writes them."""
    if not isinstance(value, dict):
        b.problem(
            path, value, 'must be {"hour": H, "minute": M} (Gomobile\'s time of day)', target=target
        )
        return None
    _fields(b, value, path, ("hour", "minute"), "a Gomobile time of day")
    hour = _take(b, value, path, "hour", what="an hour 0-23", target=target, whole=True)
    if hour is not None and hour > 23:
        b.problem(
            f"{path}.hour",
            value["hour"],
            "must be an hour 0-23 (write the end of the day as hour 23, minute 59)",
            target=target,
        )
        hour = None
    minute = _take(b, value, path, "minute", what="a minute 0-59", target=target, whole=True)
    if minute is not None and minute > 59:
        b.problem(f"{path}.minute", value["minute"], "must be a minute 0-59", target=target)
        minute = None
    if hour is None or minute is None:
        return None
    return f"{hour:02}:{minute:02}"


def _gomobile_windows(b: _Builder, value: Any, src: str, dst: str) -> dict[Any, Any] | None:
    """Gomobile's `pauseWindows`: per weekday, `{startAt, endAt}` of `{hour, minute}`.

    Every range is kept, in place, with what could be read of it: indices stay the user's.
    """
    b.recognise(GOMOBILE)
    if not isinstance(value, dict):
        b.problem(src, value, "must map weekdays to lists of {startAt, endAt} (Gomobile)")
        return None
    windows: dict[Any, Any] = {}
    b.map(src, value, dst, windows, shown=False)
    for day, ranges in value.items():
        s_day, d_day = _at(src, day), _at(dst, day)
        if not isinstance(ranges, list):
            b.problem(s_day, ranges, "must be a list of {startAt, endAt} ranges")
            continue
        kept: list[dict[str, str]] = []
        b.map(s_day, ranges, d_day, kept, shown=False)
        for i, window in enumerate(ranges):
            s_range, d_range = f"{s_day}[{i}]", f"{d_day}[{i}]"
            times: dict[str, str] = {}
            kept.append(times)
            if not isinstance(window, dict):
                b.problem(
                    s_range,
                    window,
                    "must be {startAt: {hour, minute}, endAt: {hour, minute}}",
                    target=d_range,
                )
                continue
            _fields(b, window, s_range, ("startAt", "endAt"), "a Gomobile pause window")
            for theirs, ours in (("startAt", "start"), ("endAt", "end")):
                target = f"{d_range}.{ours}"
                if _required(b, window, s_range, theirs, target=target):
                    clock = _gomobile_clock(b, window[theirs], f"{s_range}.{theirs}", target)
                    if clock is not None:
                        times[ours] = b.map(f"{s_range}.{theirs}", window[theirs], target, clock)
            b.map(s_range, window, d_range, times, shown=False)
        windows[day] = kept
    b.note('pauseWindows: an endAt of 23:59 keeps its meaning, "to the end of the day"')
    return windows


# --- Exotel -------------------------------------------------------------------------------------


def _outcome_list(
    b: _Builder, value: dict[Any, Any], src: str, dst: str, default: Sequence[str]
) -> tuple[list[Any], list[str]] | None:
    """Exotel's `retry_on` as written (or its default) and in redialer's spelling."""
    written = value.get("retry_on", list(default))
    if not isinstance(written, list):
        b.problem(
            f"{src}.retry_on",
            written,
            "must be a list of busy, no-answer, failed",
            target=f"{dst}.retry_on",
        )
        return None
    ours = []
    for i, outcome in enumerate(written):
        if isinstance(outcome, str) and outcome in _EXOTEL_OUTCOMES:
            ours.append(_EXOTEL_OUTCOMES[outcome])
        else:
            b.problem(
                f"{src}.retry_on[{i}]",
                outcome,
                "must be busy, no-answer or failed (the outcomes Exotel retries)",
                target=f"{dst}.retry_on",
            )
    return written, ours


def _exotel_retry(b: _Builder, value: dict[Any, Any], src: str, dst: str) -> dict[str, Any]:
    """Exotel's `retry`: max_attempts retries after the first call, interval_minutes apart."""
    b.recognise(EXOTEL)
    _fields(b, value, src, _RETRY_FIELDS[EXOTEL], "Exotel's retry")
    delay_at, retries_at = f"{dst}.strategy.delay", f"{dst}.strategy.max_retries"
    attempts = _take(
        b,
        value,
        src,
        "max_attempts",
        what="a number of retries",
        target=f"{dst}.strategy",
        whole=True,
        why="(Exotel's retries after the first call)",
    )
    minutes = None
    if "interval_minutes" in value:
        minutes = _number(
            b,
            value["interval_minutes"],
            f"{src}.interval_minutes",
            what="a number of minutes",
            target=delay_at,
        )
    elif attempts:
        _required(
            b, value, src, "interval_minutes", "when max_attempts is above 0", target=delay_at
        )
    outcomes = _outcome_list(b, value, src, dst, _EXOTEL_DEFAULT_RETRY_ON)

    policy: dict[str, Any] = {}
    if attempts == 0:
        policy["strategy"] = b.map(
            f"{src}.max_attempts", 0, f"{dst}.strategy", {"type": "none"}, note="no retries"
        )
        if minutes is not None:
            b.note("interval_minutes is unused: max_attempts 0 turns retries off")
    elif attempts is not None:
        strategy: dict[str, Any] = {"type": "fixed_delay"}
        if minutes is not None:
            strategy["delay"] = b.map(
                f"{src}.interval_minutes", minutes, delay_at, minutes * 60, unit="s"
            )
        strategy["max_retries"] = b.map(
            f"{src}.max_attempts",
            attempts,
            retries_at,
            attempts,
            note=f"retries after the first call: at most {attempts + 1} calls",
        )
        policy["strategy"] = strategy
        b.map(src, value, f"{dst}.strategy", strategy, shown=False)
    written_on, retry_on = outcomes or ([], [])
    if "retry_on" not in value:
        b.map(
            f"{src}.retry_on",
            _Said("(not given)"),
            f"{dst}.retry_on",
            retry_on,
            note="Exotel's defaults: busy, no-answer, failed",
        )
    elif len(written_on) == len(retry_on):  # each in its place (when none was refused)
        for i, (theirs, ours) in enumerate(zip(written_on, retry_on, strict=True)):
            b.map(f"{src}.retry_on[{i}]", theirs, f"{dst}.retry_on[{i}]", ours)
    if outcomes is not None:
        policy["retry_on"] = retry_on
    b.note(
        "max_attempts counts retries after the first call: Exotel's settings table says"
        ' "Max retry attempts: Maximum number of additional attempts after the first" and'
        ' "Total attempts: First attempt + retries"'
    )
    if "failed" in retry_on:
        b.note(
            'failed is retried at most once, as Exotel does ("Retry on failed: Yes (1 attempt)");'
            " that is redialer's default cap for failed"
        )
    return policy


def _exotel_schedule(b: _Builder, value: Any, src: str, dst: str) -> dict[str, Any] | None:
    """Exotel's daily `schedule` is redialer's calling hours: no call outside it, retry or not."""
    b.recognise(EXOTEL)
    if not isinstance(value, dict):
        b.problem(src, value, 'must be {"daily_start": "09:00", "daily_end": "21:00"} (Exotel)')
        return None
    _fields(b, value, src, ("daily_start", "daily_end"), "Exotel's schedule")
    hours: dict[str, Any] = {}
    for theirs, ours in (("daily_start", "start"), ("daily_end", "end")):
        if not _required(b, value, src, theirs, target=f"{dst}.{ours}"):
            continue
        written = value[theirs]
        became, note = written, ""
        # YAML 1.1 reads an unquoted 21:00 as the number 1260 (base 60): it is that time of day.
        if (
            isinstance(written, int)
            and not isinstance(written, bool)
            and 0 <= written <= DAY_MINUTES
        ):
            became = format_minute_of_day(written)
            note = f"YAML read the unquoted {became} as {written}"
        hours[ours] = b.map(f"{src}.{theirs}", written, f"{dst}.{ours}", became, note=note)
    b.map(src, value, dst, hours, shown=False)
    b.note(
        "schedule: no call is placed outside daily_start-daily_end, first calls and retries alike"
    )
    return hours


# --- DialNexa -----------------------------------------------------------------------------------


def _dialnexa_retry(b: _Builder, value: dict[Any, Any], src: str, dst: str) -> dict[str, Any]:
    """DialNexa's `retry`: max_retries retries wait_minutes apart, outcomes by flag."""
    b.recognise(DIALNEXA)
    _fields(b, value, src, _RETRY_FIELDS[DIALNEXA], "DialNexa's retry")
    delay_at, retries_at = f"{dst}.strategy.delay", f"{dst}.strategy.max_retries"
    retries = _take(
        b,
        value,
        src,
        "max_retries",
        what="a number of retries",
        target=f"{dst}.strategy",
        whole=True,
        why="(0 turns retries off)",
    )
    minutes = None
    if "wait_minutes" in value:
        minutes = _number(
            b,
            value["wait_minutes"],
            f"{src}.wait_minutes",
            what="a number of minutes",
            target=delay_at,
        )
    elif retries:
        _required(b, value, src, "wait_minutes", "when max_retries is above 0", target=delay_at)

    policy: dict[str, Any] = {}
    if retries == 0:
        policy["strategy"] = b.map(
            f"{src}.max_retries", 0, f"{dst}.strategy", {"type": "none"}, note="no retries"
        )
        if minutes is not None:
            b.note("wait_minutes is unused: max_retries 0 turns retries off")
    elif retries is not None:
        strategy: dict[str, Any] = {"type": "fixed_delay"}
        if minutes is not None:
            strategy["delay"] = b.map(
                f"{src}.wait_minutes", minutes, delay_at, minutes * 60, unit="s"
            )
        strategy["max_retries"] = b.map(
            f"{src}.max_retries",
            retries,
            retries_at,
            retries,
            note=f"retries after the first dial: at most {retries + 1} attempts",
        )
        policy["strategy"] = strategy
        b.map(src, value, f"{dst}.strategy", strategy, shown=False)
    retry_on = []
    for key, outcome, default in (
        ("retry_on_no_answer", "no_answer", True),
        ("retry_on_busy", "busy", True),
        ("retry_on_voicemail", "voicemail", False),
    ):
        on = value.get(key, default)
        if not isinstance(on, bool):
            b.problem(f"{src}.{key}", on, "must be true or false", target=f"{dst}.retry_on")
            continue
        written = on if key in value else _Said(f"(not given: {str(default).lower()})")
        became = _Said(f"{outcome} {'retried' if on else 'not retried'}")
        b.map(f"{src}.{key}", written, f"{dst}.retry_on", became, tracked=False)
        if on:
            retry_on.append(outcome)
    policy["retry_on"] = retry_on
    b.note(
        "max_retries counts retries after the first dial: DialNexa's reference says"
        ' "The first dial is attempt 1; retries are attempts 2 through max_retries + 1"'
    )
    b.note('failed is never retried, as DialNexa says ("Failed: Not retried")')
    if "voicemail" not in retry_on:
        b.note("voicemail not retried ends the recipient as voicemail_final, as in DialNexa")
    return policy


# --- Romulus ------------------------------------------------------------------------------------


def _romulus_retry(b: _Builder, value: list[Any], src: str, dst: str) -> dict[str, Any]:
    """Romulus's Attempt rows: row i is the wait in seconds before retry i."""
    b.recognise(ROMULUS)
    if not value:
        strategy: dict[str, Any] = b.map(src, [], f"{dst}.strategy", {"type": "none"})
        b.note('no Attempt rows: no retries (Romulus: "a failed call is simply marked as failed")')
    else:
        strategy = {"type": "attempts", "delays": list(value)}  # a bad row stays, in its place
        b.map(src, value, f"{dst}.strategy.delays", list(value), shown=False)
        b.map(src, value, f"{dst}.strategy", strategy, shown=False)
        for i, delay in enumerate(value):
            target = f"{dst}.strategy.delays[{i}]"
            what = "a number of seconds (a Romulus Attempt row)"
            if _number(b, delay, f"{src}[{i}]", what=what, target=target) is not None:
                b.map(
                    f"{src}[{i}]",
                    delay,
                    target,
                    delay,
                    unit="s",
                    note=f"the wait before retry {i + 1}",
                )
        b.note(
            f"each Attempt row is one retry: {len(value)} row(s), at most {len(value) + 1} calls"
            ' (Romulus: "Enter the number of seconds to wait before the first retry")'
        )
    b.note(f"retry_on: Romulus retries busy, no answer and unreachable calls; {_DEFAULTS_APPLY}")
    return {"strategy": strategy}


# --- dispatch -----------------------------------------------------------------------------------


def _retry_format(b: _Builder, value: dict[Any, Any], path: str) -> str | None:
    """Which format a `retry` object is written in, by its fields; None (and a problem) if mixed.

    An object with no field of any format is redialer's: its validation names the unknown ones.
    """
    known = [k for k in value if any(k in fields for fields in _RETRY_FIELDS.values())]
    for fmt, fields in _RETRY_FIELDS.items():  # redialer first: `retry_on` alone is ours
        if all(k in fields for k in known):
            return fmt
    owners = [
        f"{k} ({', '.join(_OWNER_NAMES[f] for f, fs in _RETRY_FIELDS.items() if k in fs)})"
        for k in known
    ]
    b.problem(
        path,
        sorted(map(str, known)),
        f"mixes fields of different formats: {', '.join(owners)}; write the retry settings in one"
        " format (redialer's: strategy, retry_on, max_retries_by_outcome)",
    )
    return None


_DROPPED: Final = object()


def _retry(b: _Builder, value: Any, path: str) -> Any:
    """A `retry` value in redialer's shape, or `_DROPPED` when it mixes formats."""
    if isinstance(value, list):
        return _romulus_retry(b, value, path, path)
    if not isinstance(value, dict):
        return value  # not a retry setting at all: redialer's validation says what it must be
    fmt = _retry_format(b, value, path)
    if fmt == _REDIALER:
        return value
    if fmt == EXOTEL:
        return _exotel_retry(b, value, path, path)
    if fmt == DIALNEXA:
        return _dialnexa_retry(b, value, path, path)
    return _DROPPED


def translate_retry(value: Any, *, path: str = "retry", collect: bool = False) -> Translation:
    """A `retry` value alone (redialer's, Exotel's, DialNexa's, or Romulus's list), as a
    RetryPolicy-shaped value; `path` is where it sits, for problems and the path map.

    Raises InvalidInput with every problem in foreign fields, unless `collect`: then they are in
    `problems` for the caller to report with its own, and `data` holds what could be read (`{}`
    for an object mixing formats).
    """
    b = _Builder()
    data = _retry(b, value, path)
    translation = b.build({} if data is _DROPPED else data)
    return translation if collect else translation.check(path or "retry")


def _conflict(b: _Builder, theirs: str, ours: str, value: Any, what: str, product: str) -> None:
    b.problem(
        theirs,
        value,
        f"cannot be given with {ours}: both set {what} ({theirs} is {product}'s spelling);"
        " keep one",
    )


def translate_campaign(
    data: Any, *, source: str = "campaign", collect: bool = False
) -> Translation:
    """A campaign document in redialer's shape, whatever formats its retry settings are in.

    Raises InvalidInput with every problem in foreign fields, unless `collect`: then they are in
    `problems`, and the fields they concern are left out of `data`, so that redialer's validation
    can still report every other problem of the document at once.
    """
    b = _Builder()
    if not isinstance(data, dict):
        return b.build(data)  # not a document at all: parse_campaign says so
    out = {k: v for k, v in data.items() if k not in ("retryStrategy", "pauseWindows", "schedule")}

    if "retryStrategy" in data:
        if "retry" in data:  # its own problems are reported, its mappings not kept
            scratch = _Builder()
            _gomobile_strategy(scratch, data["retryStrategy"], "retryStrategy", "retry.strategy")
            b.problems.extend(scratch.problems)
            b.recognise(GOMOBILE)
            _conflict(b, "retryStrategy", "retry", data["retryStrategy"], "the retries", "Gomobile")
        else:
            strategy = _gomobile_strategy(
                b, data["retryStrategy"], "retryStrategy", "retry.strategy"
            )
            if strategy is not None:
                out["retry"] = {"strategy": strategy}
    if "retry" in data:
        policy = _retry(b, data["retry"], "retry")
        if policy is _DROPPED:
            del out["retry"]
        else:
            out["retry"] = policy

    for theirs, ours, what, product, translate in (
        ("pauseWindows", "pause_windows", "the pause windows", "Gomobile", _gomobile_windows),
        ("schedule", "calling_hours", "the calling hours", "Exotel", _exotel_schedule),
    ):
        if theirs not in data:
            continue
        if ours in data:
            scratch = _Builder()
            translate(scratch, data[theirs], theirs, ours)
            b.problems.extend(scratch.problems)
            b.recognise(scratch.formats[0])
            _conflict(b, theirs, ours, data[theirs], what, product)
            continue
        translated = translate(b, data[theirs], theirs, ours)
        if translated is not None:
            out[ours] = translated

    translation = b.build(out)
    return translation if collect else translation.check(source)
