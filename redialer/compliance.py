"""Calling-time laws per recipient: the hours (and call counts) a number's jurisdiction allows.

A rule only ever NARROWS a campaign's own calling hours and pause windows: `allowed_time` adds
its forbidden spans as extra blocks, so the allowed time is the intersection. Each rule applies
only to the numbers it covers; `"auto"` takes every rule that covers the recipient's number.

These are engineering encodings of the statutes, not legal advice: each rule cites its source,
and where a detail of the text is uncertain the comment says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import phonenumbers

from redialer.windows import format_minute_of_day
from redialer.zones import zones_of_number

#: Where each rule comes from, for people reading a deferral or an audit.
SOURCES: dict[str, str] = {
    # Federal: no telephone solicitation "before the hour of 8 a.m. or after 9 p.m. (local time
    # at the called party's location)". High confidence in the hours and the citation.
    "us_tcpa": "47 CFR 64.1200(c)(1)",
    # Florida Telemarketing Act, s. 501.616(6): no commercial telephone solicitation call
    # "before 8 a.m. or after 8 p.m. local time in the called person's time zone" ((6)(a)) and
    # no "more than three ... calls from any number to a person over a 24-hour period on the
    # same subject matter or issue, regardless of the phone number used" ((6)(b)), both from
    # SB 1120 (2021), in force 2021-07-01. (The Telephone Solicitation Act, s. 501.059, is the
    # consent rule for automated calls, not the hours: an earlier version cited it wrongly.)
    "us_florida": "Fla. Stat. 501.616(6)(a)-(b) (SB 1120, 2021)",
    # TRAI: the 09:00-21:00 band for commercial communication is the TCCCPR 2010's rule. The
    # TCCCPR 2018 that replaced it lets each subscriber register time bands instead (none of
    # which redialer can read), so 09:00-21:00 is kept as the conservative default.
    "in_trai": "TRAI TCCCPR 2010 (09:00-21:00); TCCCPR 2018 time-band preferences",
    # Oklahoma Telephone Solicitation Act of 2022 (HB 3168, in force 2022-11-01): 8 a.m.-8 p.m.
    # local, at most 3 calls in 24 h on the same subject; codified from 15 O.S. 775C.1 (the
    # exemptions are 775C.5). The section holding the hours is not verified: the act is cited.
    "us_oklahoma": "Okla. Stat. tit. 15, 775C.1 et seq. (Telephone Solicitation Act of 2022)",
    # Maryland Stop the Spam Calls Act of 2023 (SB 90, in force 2024-01-01): 8 a.m.-8 p.m. in
    # the called party's time zone, at most 3 calls in 24 h on the same subject; codified as
    # Commercial Law Title 14, Subtitle 45 (14-4501 definitions, 14-4502 the prohibitions).
    "us_maryland": "Md. Code, Com. Law 14-4501 et seq. (Stop the Spam Calls Act of 2023)",
}

#: Area codes by state: the only location a number tells us. A moved or ported mobile keeps its
#: area code, so a resident elsewhere may be missed (a known gap, not a legal reading).
FLORIDA_AREA_CODES = frozenset(
    (
        "239 305 321 324 352 386 407 448 561 645 656 689 727 728 754 772 786 813 850 863 904"
        " 941 954"
    ).split()
)
OKLAHOMA_AREA_CODES = frozenset("405 539 572 580 918".split())
MARYLAND_AREA_CODES = frozenset("227 240 301 410 443 667".split())

ROLLING_DAY_HOURS = 24


@dataclass(frozen=True)
class ComplianceRule:
    """One law: the local hours it allows, and how many calls it allows per rolling 24 h."""

    name: str
    start: int  # minutes past local midnight, allowed from
    end: int  # minutes past local midnight, allowed until (exclusive)
    covers: Callable[[str], bool]
    max_calls_per_day: int | None = None

    @property
    def source(self) -> str:
        return SOURCES[self.name]

    def label(self) -> str:
        """What a deferral shows: the rule, its hours and its source."""
        hours = f"{format_minute_of_day(self.start)}-{format_minute_of_day(self.end)}"
        return f"{self.name}: {hours} local ({self.source})"

    def cap_label(self) -> str:
        return (
            f"{self.name}: at most {self.max_calls_per_day} calls in {ROLLING_DAY_HOURS} h"
            f" ({self.source})"
        )


@lru_cache(maxsize=65536)
def _parsed(phone: str) -> tuple[int, str | None, str] | None:
    """(country code, region, national number) or None: parsed once per number."""
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return None
    return (
        number.country_code or 0,
        phonenumbers.region_code_for_number(number),
        str(number.national_number),
    )


def _us(phone: str) -> bool:
    parsed = _parsed(phone)
    return parsed is not None and parsed[1] == "US"


def _us_area(codes: frozenset[str]) -> Callable[[str], bool]:
    def covers(phone: str) -> bool:
        parsed = _parsed(phone)
        return parsed is not None and parsed[1] == "US" and parsed[2][:3] in codes

    return covers


def _india(phone: str) -> bool:
    parsed = _parsed(phone)
    return parsed is not None and parsed[0] == 91


RULES: dict[str, ComplianceRule] = {
    rule.name: rule
    for rule in (
        ComplianceRule("us_tcpa", 8 * 60, 21 * 60, _us),
        ComplianceRule("us_florida", 8 * 60, 20 * 60, _us_area(FLORIDA_AREA_CODES), 3),
        ComplianceRule("in_trai", 9 * 60, 21 * 60, _india),
        ComplianceRule("us_oklahoma", 8 * 60, 20 * 60, _us_area(OKLAHOMA_AREA_CODES), 3),
        ComplianceRule("us_maryland", 8 * 60, 20 * 60, _us_area(MARYLAND_AREA_CODES), 3),
    )
}

Compliance = list[str] | Literal["auto"] | None


def check_names(value: object) -> list[str] | Literal["auto"] | None:
    """The `compliance` field: rule names (deduplicated, in order) or "auto"; refuses the rest
    naming the field, the value and the known names, since a typo would silently drop a law."""
    known = ", ".join(RULES)
    if value is None or value == "auto":
        return value  # type: ignore[return-value]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ValueError(
            f'compliance: {value!r} must be a list of rule names or "auto"; known rules: {known}'
        )
    names: list[str] = []
    for item in value:
        if not isinstance(item, str) or item not in RULES:  # {} or [] are not hashable names
            raise ValueError(
                f'compliance: {item!r} is not a known rule; known rules: {known} (or "auto")'
            )
        if item not in names:
            names.append(item)
    return names


def rules_for(
    compliance: Sequence[str] | str | None, phone: str | None
) -> tuple[ComplianceRule, ...]:
    """The rules that bind a call to `phone`: those named (or all, for "auto") that cover it."""
    if not compliance or phone is None:
        return ()
    names = RULES if compliance == "auto" else compliance
    return tuple(RULES[n] for n in names if RULES[n].covers(phone))


def rule_zone_names(phone: str, zone: str, *, own_zone: bool) -> tuple[str, ...]:
    """The zones a rule's hours must hold in. The recipient's own zone is the only one; else a
    number that may ring in several clocks gets all of them (the safe intersection), since the
    law is about the called party's local time and we cannot tell which one it is."""
    if own_zone:
        return (zone,)
    candidates = zones_of_number(phone)
    return candidates if len(candidates) > 1 else (zone,)


def zone_is_own(phone: str, zone: str, campaign_zone: str) -> bool:
    """Whether a resolved zone must be the recipient's own `timezone`: for a number with several
    candidate zones the resolver (`recipient_zone_name`) gives the own zone or the campaign's, so
    a zone other than the campaign's is the recipient's own. When it equals the campaign's we
    cannot tell, and take the candidates (safe: narrower, never wider)."""
    return len(zones_of_number(phone)) > 1 and zone != campaign_zone
