"""The product limits a campaign must stay within.

Limits come through pydantic's validation context (`{"limits": Limits(...)}`), so they are
checked in the same pass as every other rule and reported together, where a spec enters the
system (files, the CLI, the client). Payloads deserialised inside the worker carry no context and
are not re-checked: a spec accepted under raised limits must still load there.

Sizes are limits Temporal enforces later, and worse: a payload over 2 MiB fails the request
(a warning from 512 KiB) and a gRPC message over 4 MiB fails outright, naming no field. A
recipient travels alone in each dial's input, with the campaign's rules in its workflow's input,
and in batches in the campaign's start input and `add_recipients` signals, so each recipient's
JSON and the rules' JSON are bounded here, where the user can still be told which row to fix;
the batches are bounded by bytes where they are made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationInfo
from pydantic_core import to_json

KIB = 1024
MIB = 1024 * KIB
#: The campaign's rules (the spec without its recipients): every recipient workflow carries them.
#: Real rules are a few hundred bytes; this leaves room under 2 MiB for the largest recipient.
MAX_POLICY_BYTES = 256 * KIB
#: The most `REDIALER_MAX_RECIPIENT_BYTES` may allow: the largest recipient and the largest rules
#: (1.25 MiB) still fit one 2 MiB payload, so a recipient workflow's input is always accepted.
MAX_RECIPIENT_BYTES_CAP = 1 * MIB


@dataclass(frozen=True)
class Limits:
    """Defaults are the seed products' limits: 20 retries, 3 hours for any one configured delay.

    A recipient's JSON (phone, timezone, variables, metadata) is at most 64 KiB: far more than a
    call needs (a name, an account, a few lines of context), far less than one payload allows.
    """

    max_retries: int = 20
    max_delay_seconds: float = 10_800.0
    max_recipient_bytes: int = 64 * KIB

    def context(self) -> dict[str, Limits]:
        return {"limits": self}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where, what was there, and the rule it breaks."""

    path: str
    value: object
    rule: str

    def __str__(self) -> str:
        shown = repr(self.value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        return f"{self.path or '(top level)'}: {shown}: {self.rule}"


def _limits(info: ValidationInfo) -> Limits | None:
    context = info.context
    return context.get("limits") if isinstance(context, dict) else None


def delay_within_limit(value: float, info: ValidationInfo) -> float:
    limits = _limits(info)
    if limits is not None and value > limits.max_delay_seconds:
        raise ValueError(
            f"a configured delay may be at most {limits.max_delay_seconds:g} s"
            " (REDIALER_MAX_DELAY_LIMIT raises the limit)"
        )
    return value


def retries_within_limit(value: int, info: ValidationInfo) -> int:
    limits = _limits(info)
    if limits is not None and value > limits.max_retries:
        raise ValueError(
            f"at most {limits.max_retries} retries are allowed"
            " (REDIALER_MAX_RETRIES_LIMIT raises the limit)"
        )
    return value


def list_within_retry_limit(value: list, info: ValidationInfo) -> list:  # type: ignore[type-arg]
    limits = _limits(info)
    if limits is not None and len(value) > limits.max_retries:
        raise ValueError(
            f"has {len(value)} entries: at most {limits.max_retries} retries are allowed"
            " (REDIALER_MAX_RETRIES_LIMIT raises the limit)"
        )
    return value


class Size(int):
    """A number of bytes shown as people read sizes: `20.0 MiB`, `100.0 KiB`.

    `exact` shows the bytes instead, where rounding would hide that a limit is exceeded.
    """

    exact: bool

    def __new__(cls, n: int, *, exact: bool = False) -> Size:
        size = super().__new__(cls, n)
        size.exact = exact
        return size

    def __repr__(self) -> str:
        n = int(self)
        if self.exact or n < KIB:
            return f"{n:,} bytes"
        unit, name = (MIB, "MiB") if n >= MIB else (KIB, "KiB")
        return f"{n / unit:.1f} {name}"


def measured(n: int, *, limit: int) -> Size:
    """`n` bytes shown so that beside `limit` it visibly exceeds it: 65,537 bytes, not 64.0 KiB.

    In bytes too beside a limit written in bytes (100,000 bytes), so the two compare at a glance.
    """
    unit = MIB if n >= MIB else KIB
    rounded = round(n / unit, 1) * unit
    return Size(n, exact=n > limit and (rounded <= limit or limit % KIB != 0))


def format_limit(n: int) -> str:
    """A limit as written: `64 KiB`, `1 MiB`, or exact bytes when it is no whole unit."""
    for unit, name in ((MIB, "MiB"), (KIB, "KiB")):
        if n >= unit and n % unit == 0:
            return f"{n // unit} {name}"
    return f"{n:,} bytes"


class TooLarge(ValueError):
    """A value over a size limit: `where` extends the path to the field, `size` is its value."""

    def __init__(self, rule: str, *, where: str, size: Size):
        super().__init__(rule)
        self.rule = rule
        self.where = where
        self.size = size


def json_size(value: Any) -> int:
    """Bytes of `value` as it travels: the pydantic data converter writes `to_json(value)`."""
    return len(to_json(value))


def _largest_field(value: Any, fields: list[str]) -> tuple[str, int]:
    sizes = {name: json_size(getattr(value, name)) for name in fields}
    name = max(sizes, key=lambda k: sizes[k])
    return name, sizes[name]


def recipient_too_large(
    recipient: Any, *, limit: int, merged_from: list[str] | None = None
) -> TooLarge | None:
    """The problem with a recipient whose JSON exceeds `limit`, naming its largest field."""
    total = json_size(recipient)
    if total <= limit:
        return None
    field, size = _largest_field(recipient, ["phone", "timezone", "variables", "metadata"])
    rule = f"a recipient's data may be at most {format_limit(limit)}"
    if size <= limit:
        rule = f"the recipient is {measured(total, limit=limit)!r} in all: " + rule
    if merged_from:
        rule = f"merged from {', '.join(merged_from)}: " + rule
    if limit < MAX_RECIPIENT_BYTES_CAP:
        rule += (
            " (REDIALER_MAX_RECIPIENT_BYTES raises the limit,"
            f" to at most {format_limit(MAX_RECIPIENT_BYTES_CAP)})"
        )
    if total > MAX_RECIPIENT_BYTES_CAP:
        rule += "; keep data this large outside the spec and pass a reference to it (a URL, an id)"
    return TooLarge(rule, where=f" ({recipient.phone}).{field}", size=measured(size, limit=limit))


def recipient_within_limit(recipient: Any, info: ValidationInfo) -> None:
    """Raise `TooLarge` for a recipient over the limit in the validation context."""
    limits = _limits(info)
    if limits is not None:
        problem = recipient_too_large(recipient, limit=limits.max_recipient_bytes)
        if problem is not None:
            raise problem


def policy_too_large(policy: Any, *, limit: int = MAX_POLICY_BYTES) -> Problem | None:
    """The problem with campaign rules whose JSON exceeds `limit`, naming their largest field."""
    total = json_size(policy)
    if total <= limit:
        return None
    field, size = _largest_field(policy, list(type(policy).model_fields))
    rule = (
        "the campaign's rules (the spec without its recipients) may be at most"
        f" {format_limit(limit)}: every recipient's workflow carries them"
    )
    if size <= limit:
        rule = f"the rules are {measured(total, limit=limit)!r} in all: " + rule
    return Problem(field, measured(size, limit=limit), rule)
