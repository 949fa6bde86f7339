"""The product limits a campaign must stay within.

Limits come through pydantic's validation context (`{"limits": Limits(...)}`), so they are
checked in the same pass as every other rule and reported together, where a spec enters the
system (files, the CLI, the client). Payloads deserialised inside the worker carry no context and
are not re-checked: a spec accepted under raised limits must still load there.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationInfo


@dataclass(frozen=True)
class Limits:
    """Defaults are the seed products' limits: 20 retries, 3 hours for any one configured delay."""

    max_retries: int = 20
    max_delay_seconds: float = 10_800.0

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
