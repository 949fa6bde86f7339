"""Which zone a number's windows are read in: by clock, under canonical names, with corrections.

The plan checks are the independent checker's findings on `redialer plan`; the spot checks are
the number data against real geography for the countries the compliance table covers.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from redialer import zones as zone_module
from redialer.campaign import CampaignPolicy
from redialer.limits import Limits
from redialer.outcomes import Outcome
from redialer.plan import plan_attempts
from redialer.zone_overrides import ZONE_OVERRIDES
from redialer.zones import (
    canonical_zone,
    clock_of,
    distinct_clocks,
    recipient_zone_name,
    same_clock,
    zone_of_number,
    zones_of_number,
)

UK_MOBILE = "+447700900123"  # the data lists London, Guernsey, Isle of Man and Jersey
BRISBANE = "+61733047234"  # 07: Queensland; the data says Sydney
AU_MOBILE = "+61412345678"
HOURS = {"start": "09:00", "end": "21:00"}


def first_call(phone: str, *, campaign_zone: str, start: str) -> tuple[str, datetime]:
    """The zone the plan reads the windows in, and its first attempt as that zone's wall clock."""
    policy = CampaignPolicy.model_validate(
        {"timezone": campaign_zone, "calling_hours": HOURS}, context=Limits().context()
    )
    plan = plan_attempts(
        policy,
        phone=phone,
        recipient_timezone=None,
        start=datetime.fromisoformat(start),
        outcomes=[Outcome.COMPLETED],
    )
    return plan.timezone, plan.attempts[0].at.astimezone(ZoneInfo(plan.timezone))


# --- the checker's findings ---------------------------------------------------------------------


def test_a_uk_mobile_is_london():
    """Four names, one clock: the number is Europe/London, not the campaign's zone."""
    assert zone_of_number(UK_MOBILE) == "Europe/London"
    assert zones_of_number(UK_MOBILE) == ("Europe/London",)
    assert zone_of_number("+447911123456") == "Europe/London"  # a number the data knows as valid


@pytest.fixture
def without_links(monkeypatch: pytest.MonkeyPatch):
    """tzdata as it was when Guernsey, Jersey and the Isle of Man were zones of their own."""
    caches = (zone_module.zones_of_number, zone_module.canonical_zone)
    for cache in caches:
        cache.cache_clear()
    monkeypatch.setattr(zone_module, "_links", dict)
    yield
    monkeypatch.undo()
    for cache in caches:
        cache.cache_clear()


@pytest.mark.usefixtures("without_links")
def test_a_uk_mobile_is_london_by_clock_alone():
    """Without the links the four names stay four, and the clock rule still makes them one."""
    assert zone_module.canonical_zone("Europe/Jersey") == "Europe/Jersey"
    assert zone_of_number(UK_MOBILE) == "Europe/London"


def test_a_uk_mobile_in_a_new_york_campaign_waits_for_9_in_london():
    """01:30 in London is 20:30 in New York, inside New York's hours: London's must hold."""
    zone, at = first_call(UK_MOBILE, campaign_zone="America/New_York", start="2026-11-24T01:30Z")
    assert (zone, at.isoformat()) == ("Europe/London", "2026-11-24T09:00:00+00:00")


def test_a_brisbane_number_is_brisbane():
    assert zone_of_number(BRISBANE) == "Australia/Brisbane"


def test_a_brisbane_number_is_first_called_at_9_brisbane_time():
    """At 07:30 in Brisbane (08:30 in Sydney) the first call waits for 09:00 Brisbane time, not
    09:00 Sydney time, which is 08:00 in Brisbane from October to April."""
    zone, at = first_call(BRISBANE, campaign_zone="Australia/Sydney", start="2026-11-23T21:30Z")
    assert (zone, at.isoformat()) == ("Australia/Brisbane", "2026-11-24T09:00:00+10:00")


def test_india_is_asia_kolkata():
    """The data says Asia/Calcutta; the name reported is the canonical one."""
    assert zone_of_number("+919876543210") == "Asia/Kolkata"
    assert zone_of_number("+918012345678") == "Asia/Kolkata"


@pytest.mark.parametrize(
    ("legacy", "canonical"),
    [
        ("Asia/Calcutta", "Asia/Kolkata"),
        ("Asia/Katmandu", "Asia/Kathmandu"),
        ("Asia/Saigon", "Asia/Ho_Chi_Minh"),
        ("Europe/Kiev", "Europe/Kyiv"),
        ("America/Buenos_Aires", "America/Argentina/Buenos_Aires"),
        ("Europe/Jersey", "Europe/London"),
        ("Asia/Kolkata", "Asia/Kolkata"),
    ],
)
def test_link_names_resolve_to_canonical_zones(legacy: str, canonical: str):
    assert canonical_zone(legacy) == canonical


def test_arizona_is_phoenix():
    """No DST in Arizona: Denver's clock would be an hour off all summer."""
    assert zone_of_number("+16025551234") == "America/Phoenix"


def test_an_australian_mobile_stays_ambiguous():
    """A mobile may ring anywhere in Australia: no single zone, every clock a candidate."""
    assert zone_of_number(AU_MOBILE) is None
    zones = zones_of_number(AU_MOBILE)
    assert {"Australia/Sydney", "Australia/Brisbane", "Australia/Perth", "Australia/Darwin"} <= (
        set(zones)
    )
    assert len(zones) == len(set(zones)) >= 7
    assert recipient_zone_name(own=None, phone=AU_MOBILE, campaign="Asia/Kolkata") == (
        "Asia/Kolkata"
    )


def test_resolution_order_is_unchanged():
    """Recipient's own zone, else the number's single clock, else the campaign's."""
    assert recipient_zone_name(own="Asia/Tokyo", phone=UK_MOBILE, campaign="UTC") == "Asia/Tokyo"
    assert recipient_zone_name(own=None, phone=UK_MOBILE, campaign="UTC") == "Europe/London"
    assert recipient_zone_name(own=None, phone="+18005550199", campaign="UTC") == "UTC"


def test_unknown_numbers_have_no_zone():
    assert zones_of_number("+999123") == ()
    assert zones_of_number("not a number") == ()
    assert zone_of_number("+18005550199") is None  # toll free: every NANP clock


# --- same clock ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("Europe/London", "Europe/Jersey", True),
        ("Europe/London", "Europe/Guernsey", True),
        # Irish "winter time" is a negative DST in tzdata; the offsets still agree.
        ("Europe/London", "Europe/Dublin", True),
        # Portugal kept CET from 1992 to 1996: before the range, so one clock.
        ("Europe/London", "Europe/Lisbon", True),
        ("Australia/Sydney", "Australia/Melbourne", True),
        ("Australia/Sydney", "Australia/Brisbane", False),  # Queensland keeps no DST
        ("Australia/Sydney", "Australia/Hobart", False),  # Tasmania's DST began earlier to 2008
        ("America/New_York", "America/Toronto", True),
        ("America/New_York", "America/Indiana/Indianapolis", False),  # DST only since 2006
        ("America/Phoenix", "America/Denver", False),
        ("America/Phoenix", "America/Creston", True),
        ("Asia/Kolkata", "Asia/Calcutta", True),
    ],
)
def test_same_clock(a: str, b: str, same: bool):
    assert same_clock(a, b) is same
    assert same_clock(b, a) is same


def test_a_clock_has_each_change_to_the_second():
    """London's 2026 changes: 01:00 UTC on the last Sundays of March and October."""
    start, changes = clock_of("Europe/London")
    at_2026 = [
        (datetime.fromtimestamp(at, ZoneInfo("UTC")).isoformat(), offset)
        for at, offset in changes
        if datetime.fromtimestamp(at, ZoneInfo("UTC")).year == 2026
    ]
    assert start == 0
    assert at_2026 == [("2026-03-29T01:00:00+00:00", 3600), ("2026-10-25T01:00:00+00:00", 0)]


def test_same_clock_names_collapse_to_the_countrys_first():
    """New York and Toronto are one clock: a NANP number's candidates name it once."""
    assert distinct_clocks(["Europe/Jersey", "Europe/Isle_of_Man", "Europe/London"]) == (
        "Europe/London",
    )
    assert distinct_clocks(["America/Dawson", "America/Whitehorse"], "CA") == (
        "America/Whitehorse",
    )
    toll_free = zones_of_number("+18005550199")
    assert "America/New_York" in toll_free
    assert "America/Toronto" not in toll_free
    assert len(toll_free) == len({clock_of(name) for name in toll_free})


# --- the number data against geography ----------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "zones"),
    [
        # US and Canada
        ("+12125550123", {"America/New_York"}),
        ("+14805551234", {"America/Phoenix"}),
        ("+18085551234", {"Pacific/Honolulu"}),
        ("+19072221234", {"America/Juneau"}),  # Anchorage exchange; Juneau is Anchorage's clock
        ("+19075551234", {"America/Anchorage", "America/Adak"}),  # the Aleutians keep HST
        ("+19288711234", {"America/Phoenix", "America/Denver"}),  # the Navajo Nation keeps DST
        ("+13175551234", {"America/New_York"}),  # Indianapolis
        ("+12198811234", {"America/Chicago"}),  # Gary: north-west Indiana is Central
        ("+18124231234", {"America/Chicago"}),  # Evansville: south-west Indiana is Central
        # UK and India
        ("+442071234567", {"Europe/London"}),
        ("+441534123456", {"Europe/London"}),  # Jersey
        ("+912212345678", {"Asia/Kolkata"}),
        # Australia
        ("+61298765432", {"Australia/Sydney"}),
        ("+61255053123", {"Australia/Lord_Howe"}),
        ("+61398765432", {"Australia/Sydney"}),  # Melbourne: Sydney's clock
        ("+61891234567", {"Australia/Perth", "Australia/Adelaide"}),  # 08 91: left to the data
        # Brazil
        ("+5511912345678", {"America/Sao_Paulo"}),
        ("+552121234567", {"America/Sao_Paulo"}),
        ("+556132123456", {"America/Sao_Paulo"}),
        ("+559232123456", {"America/Manaus"}),
        ("+556832123456", {"America/Rio_Branco"}),
        # Russia
        ("+74951234567", {"Europe/Moscow"}),
        ("+74232123456", {"Asia/Vladivostok"}),
        # Germany, France
        ("+4930123456", {"Europe/Berlin"}),
        ("+33123456789", {"Europe/Paris"}),
        ("+33612345678", {"Europe/Paris"}),
        # Mexico
        ("+525512345678", {"America/Mexico_City"}),
        ("+526641234567", {"America/Tijuana"}),
        ("+529981234567", {"America/Cancun"}),
    ],
)
def test_spot_checks_the_data_gets_right(number: str, zones: set[str]):
    assert set(zones_of_number(number)) == zones


OVERRIDDEN = {
    # Australia
    "+61412345678": {
        "Australia/Lord_Howe",
        "Australia/Sydney",
        "Australia/Brisbane",
        "Australia/Adelaide",
        "Australia/Darwin",
        "Australia/Perth",
        "Australia/Eucla",
        "Asia/Bangkok",  # Christmas Island
        "Asia/Yangon",  # Cocos Islands
    },
    BRISBANE: {"Australia/Brisbane"},
    "+61745234567": {"Australia/Brisbane", "Australia/Sydney"},
    "+61746234567": {"Australia/Brisbane", "Australia/Sydney"},
    "+61775023456": {"Australia/Brisbane", "Australia/Sydney"},
    "+61755234567": {"Australia/Brisbane", "Australia/Sydney"},
    "+61756234567": {"Australia/Brisbane", "Australia/Sydney"},
    "+61872345678": {"Australia/Adelaide"},
    "+61881234567": {"Australia/Adelaide"},
    "+61879234567": {"Australia/Darwin"},
    "+61889991234": {"Australia/Darwin"},
    "+61880871234": {"Australia/Broken_Hill", "Australia/Sydney"},
    "+61862345678": {"Australia/Perth"},
    "+61860234567": {"Australia/Perth", "Australia/Eucla", "Australia/Adelaide"},
    "+61890234567": {"Australia/Perth", "Australia/Eucla", "Australia/Adelaide"},
    **{f"+6189{digit}2345678": {"Australia/Perth"} for digit in "23456789"},
    # Brazil
    "+5581987654321": {"America/Recife", "America/Noronha"},
    "+558122345678": {"America/Recife"},
    "+558132123456": {"America/Recife"},
    "+558142345678": {"America/Recife"},
    "+558152345678": {"America/Recife"},
    "+558136191234": {"America/Noronha"},
    "+5591987654321": {"America/Belem"},
    "+5593991234567": {"America/Santarem"},
    "+5594991234567": {"America/Belem"},
    "+5597991234567": {"America/Manaus", "America/Eirunepe"},
    # Canada and the US
    "+18672345678": {
        "America/Whitehorse",
        "America/Edmonton",
        "America/Cambridge_Bay",
        "America/Resolute",
        "America/Rankin_Inlet",
        "America/Iqaluit",
        "America/Panama",  # Coral Harbour (America/Atikokan)
    },
    **{
        f"+1867{exchange}2345": {"America/Whitehorse"}
        for exchange in ("334", "393", "456", "536", "633", "667", "668", "993")
    },
    **{
        f"+1250{exchange}2345": {"America/Dawson_Creek"}
        for exchange in ("242", "262", "782", "785", "787", "788")
    },
    **{
        f"+1250{exchange}2345": {"America/Dawson_Creek", "America/Edmonton"}
        for exchange in ("261", "263", "719", "784")
    },
    "+12507742345": {"America/Fort_Nelson"},
    "+12504282345": {"America/Phoenix"},  # Creston
    "+13068252345": {"America/Edmonton"},  # Lloydminster
    "+18075972345": {"America/Panama"},  # Atikokan
    "+19075811234": {"America/Anchorage"},  # Unalaska
    # Ireland
    "+35312345678": {"Europe/Dublin"},
    # Mexico
    **{
        f"+52{lada}2345678": {"America/Chihuahua"}
        for lada in ("614", "625", "627", "629", "639", "648")
    },
    **{
        f"+52{lada}2345678": {"America/Chihuahua", "America/Ciudad_Juarez", "America/Ojinaga"}
        for lada in ("621", "628", "635", "636", "652", "657", "659")
    },
    "+526492345678": {"America/Chihuahua", "America/Mexico_City"},
    "+528682345678": {"America/Matamoros"},
    # Russia
    "+74012123456": {"Europe/Kaliningrad"},
    "+78452123456": {"Europe/Saratov"},
}


@pytest.mark.parametrize(("number", "zones"), sorted(OVERRIDDEN.items()))
def test_overrides_fix_what_the_data_gets_wrong(number: str, zones: set[str]):
    assert set(zones_of_number(number)) == zones


def test_russian_mobiles_span_every_russian_clock():
    zones = set(zones_of_number("+79141234567"))
    assert {"Europe/Kaliningrad", "Europe/Moscow", "Asia/Vladivostok", "Asia/Kamchatka"} <= zones
    assert zone_of_number("+79141234567") is None


def test_every_override_entry_is_exercised():
    """Each entry is the longest match of a number checked above."""
    numbers = [*OVERRIDDEN, "+79141234567"]
    hit = {
        max((key for key in ZONE_OVERRIDES if number[1:].startswith(key)), key=len)
        for number in numbers
        if any(number[1:].startswith(key) for key in ZONE_OVERRIDES)
    }
    assert hit == set(ZONE_OVERRIDES)
