"""Reading campaign specs and recipient lists from JSON, YAML or CSV, with every problem at once.

A problem names the path (`recipients[3].phone`, `retry.strategy.delays[2]`), the value and the
rule. Unknown fields are errors: a typo must not silently disable a rule. Sizes Temporal would
refuse later are refused here, naming the row and number (`recipients[3] (+16505550199).variables`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml
from pydantic import TypeAdapter, ValidationError

from redialer.campaign import CampaignSpec, RetryPolicy
from redialer.foreign_formats import Translation, translate_campaign, translate_retry
from redialer.limits import Limits, Problem, TooLarge, policy_too_large, recipient_too_large
from redialer.recipients import Recipient
from redialer.strategies import STRATEGY_TYPES

_RECIPIENTS = TypeAdapter(list[Recipient])


class InvalidInput(ValueError):
    """An input was refused; `problems` lists every reason, one per line."""

    def __init__(self, source: str, problems: Sequence[Problem]):
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s)\n{lines}")


T = TypeVar("T")


@dataclass
class Loaded(Generic[T]):
    """What was accepted, and what the user should know about it (merged duplicates).

    `translation` says which other products' formats were read and how each field was mapped
    (no formats for redialer's own); None where no format is translated (recipient lists).
    """

    value: T
    warnings: list[str] = field(default_factory=list)
    translation: Translation | None = None


def read_document(path: Path) -> Any:
    """Parse a JSON, YAML or CSV file by its extension (YAML is a superset of JSON)."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a leading BOM (Excel) is not data
    except OSError as exc:
        raise InvalidInput(
            str(path), [Problem("", str(path), f"cannot be read: {exc.strerror}")]
        ) from exc
    except UnicodeDecodeError as exc:
        rule = f"is not UTF-8 text (byte {exc.start}); save it as UTF-8 (Excel: CSV UTF-8)"
        raise InvalidInput(str(path), [Problem("", path.name, rule)]) from exc
    if path.suffix.lower() == ".csv":
        return _read_csv(text)
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        rule = f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        raise InvalidInput(str(path), [Problem("", path.name, rule)]) from exc
    except yaml.YAMLError as exc:
        raise InvalidInput(
            str(path), [Problem("", path.name, f"is not valid YAML: {exc}")]
        ) from exc


def _read_csv(text: str) -> list[dict[str, Any]]:
    """A contact list: a `phone` column, an optional `timezone`, every other column a variable."""
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        entry: dict[str, Any] = {"phone": row.pop("phone", "")}
        if row.get("timezone"):
            entry["timezone"] = row.pop("timezone")
        row.pop("timezone", None)
        entry["variables"] = row
        rows.append(entry)
    return rows


def problems_from(error: ValidationError, *, prefix: str = "") -> list[Problem]:
    problems = []
    for err in error.errors(include_url=False):
        loc = [p for p in err["loc"] if p != "[key]"]  # a bad dict key: its path is the key
        # A discriminated union puts the tag in the path; users never wrote it. (A RetryPolicy
        # validated alone has `strategy` first, the prefix naming where it sits.)
        for above in (["retry", "strategy"], ["strategy"]):
            n = len(above)
            if len(loc) > n and loc[:n] == above and loc[n] in STRATEGY_TYPES:
                del loc[n]
                break
        path = prefix + "".join(
            f"[{p}]" if isinstance(p, int) else (f".{p}" if i or prefix else str(p))
            for i, p in enumerate(loc)
        )
        rule = err["msg"].removeprefix("Value error, ")
        too_large = err.get("ctx", {}).get("error")
        if isinstance(too_large, TooLarge):  # the field and its size say more than the row
            problems.append(Problem(path + too_large.where, too_large.size, too_large.rule))
            continue
        if err["type"] == "extra_forbidden":
            rule = "unknown field (check the spelling: an unknown field would be ignored)"
        elif err["type"] == "missing":
            rule = "is required"
        problems.append(Problem(path, err.get("input"), rule))
    return problems


def _merge_duplicates(
    recipients: list[Recipient],
    *,
    limits: Limits,
    prefix: str = "recipients",
    known: set[str] | None = None,
) -> tuple[Loaded[list[Recipient]], list[Problem]]:
    """One recipient per number: later rows' variables fill gaps, the first row wins conflicts.

    Each row was held to the size limit as it was read; a merged one is held to it again, and
    returned as a problem.
    """
    rows: dict[str, list[int]] = {}
    merged: dict[str, Recipient] = {}
    warnings = []
    for i, r in enumerate(recipients):
        if known is not None and r.phone in known:
            warnings.append(f"{prefix}[{i}].phone {r.phone} is already in the campaign; skipped")
            continue
        rows.setdefault(r.phone, []).append(i)
        if r.phone not in merged:
            merged[r.phone] = r
            continue
        kept = merged[r.phone]
        merged[r.phone] = kept.model_copy(
            update={
                "variables": {**r.variables, **kept.variables},
                "metadata": {**r.metadata, **kept.metadata},
                "timezone": kept.timezone or r.timezone,
            }
        )
        warnings.append(
            f"{prefix}[{i}].phone {r.phone} duplicates {prefix}[{rows[r.phone][0]}]:"
            " merged, the number is called once"
        )
    problems = []
    for phone, at in rows.items():
        if len(at) > 1:
            too_large = recipient_too_large(
                merged[phone],
                limit=limits.max_recipient_bytes,
                merged_from=[f"{prefix}[{i}]" for i in at],
            )
            if too_large is not None:
                path = f"{prefix}[{at[0]}]{too_large.where}"
                problems.append(Problem(path, too_large.size, too_large.rule))
    return Loaded(list(merged.values()), warnings), problems


def parse_campaign(data: Any, *, limits: Limits, source: str = "campaign") -> Loaded[CampaignSpec]:
    """Validate a campaign document; raise InvalidInput listing every problem.

    Retry settings in another product's format are translated first; problems in them, and
    those redialer finds in what they became, are reported by the fields the user wrote.
    """
    if not isinstance(data, dict):
        raise InvalidInput(
            source, [Problem("", type(data).__name__, "must be a mapping of fields")]
        )
    translation = translate_campaign(data, source=source, collect=True)
    foreign = list(translation.problems)
    try:
        spec = CampaignSpec.model_validate(translation.data, context=limits.context())
    except ValidationError as exc:
        raise InvalidInput(source, [*foreign, *translation.rewrite(problems_from(exc))]) from exc
    merged, problems = _merge_duplicates(spec.recipients, limits=limits)
    too_large = policy_too_large(spec.policy())
    found = [*foreign, *translation.rewrite([p for p in [too_large] if p is not None]), *problems]
    if found:
        raise InvalidInput(source, found)
    return Loaded(
        spec.model_copy(update={"recipients": merged.value}), merged.warnings, translation
    )


def parse_retry(
    value: Any, *, limits: Limits, path: str = "retry", source: str = "retry"
) -> Loaded[RetryPolicy]:
    """A `retry` value alone, in redialer's format or another product's (as an API receives it).

    `path` is where the value sits in the caller's input; problems are named from it.
    """
    translation = translate_retry(value, path=path, collect=True)
    try:
        policy = RetryPolicy.model_validate(translation.data, context=limits.context())
    except ValidationError as exc:
        found = [*translation.problems, *translation.rewrite(problems_from(exc, prefix=path))]
        raise InvalidInput(source, found) from exc
    if translation.problems:
        raise InvalidInput(source, translation.problems)
    return Loaded(policy, [], translation)


def parse_recipients(
    data: Any,
    *,
    source: str = "recipients",
    known: set[str] | None = None,
    limits: Limits | None = None,
) -> Loaded[list[Recipient]]:
    """A list of recipients (or `{"recipients": [...]}`), all rows checked, duplicates merged.

    Without `limits`, the default limits: a caller that omits them is never more permissive.
    """
    limits = limits or Limits()
    if isinstance(data, dict) and set(data) == {"recipients"}:
        data = data["recipients"]
    if not isinstance(data, list):
        raise InvalidInput(
            source, [Problem("", type(data).__name__, "must be a list of recipients")]
        )
    try:
        recipients = _RECIPIENTS.validate_python(data, context=limits.context())
    except ValidationError as exc:
        raise InvalidInput(source, problems_from(exc, prefix="recipients")) from exc
    merged, problems = _merge_duplicates(recipients, limits=limits, known=known)
    if problems:
        raise InvalidInput(source, problems)
    return merged


def load_campaign(path: Path, *, limits: Limits) -> Loaded[CampaignSpec]:
    return parse_campaign(read_document(path), limits=limits, source=str(path))


def load_recipients(path: Path, *, limits: Limits | None = None) -> Loaded[list[Recipient]]:
    return parse_recipients(read_document(path), source=str(path), limits=limits)
