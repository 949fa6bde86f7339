"""Corrections to phonenumbers' number-to-zone data, where it is wrong or too coarse to call by.

Keys are E.164 digits without the "+"; the longest key a number starts with wins and replaces
the data for that number outright (whatever the number's type), so an entry must hold for its
whole block: a block inside it that differs needs an entry of its own. Several zones mean the
number may ring in any of them; zone names are resolved to canonical names and one per clock
afterwards (`redialer.zones`), so a link name is fine here. Every entry is exercised by
tests/test_zones.py; checked against phonenumbers 9.0.43 and tzdata 2026f.
"""

from __future__ import annotations

_BRISBANE_OR_SYDNEY = ("Australia/Brisbane", "Australia/Sydney")
_WA_EUCLA = ("Australia/Perth", "Australia/Eucla", "Australia/Adelaide")
_CHIHUAHUA_ANY = ("America/Chihuahua", "America/Ciudad_Juarez", "America/Ojinaga")
_PEACE_RIVER_OR_KOOTENAY = ("America/Dawson_Creek", "America/Edmonton")

#: Every zone tzdata lists for Russia (zone1970.tab): a +7 9 mobile can be anywhere in it.
_RUSSIA = (
    "Europe/Kaliningrad",
    "Europe/Moscow",
    "Europe/Simferopol",
    "Europe/Kirov",
    "Europe/Volgograd",
    "Europe/Astrakhan",
    "Europe/Saratov",
    "Europe/Ulyanovsk",
    "Europe/Samara",
    "Asia/Yekaterinburg",
    "Asia/Omsk",
    "Asia/Novosibirsk",
    "Asia/Barnaul",
    "Asia/Tomsk",
    "Asia/Novokuznetsk",
    "Asia/Krasnoyarsk",
    "Asia/Irkutsk",
    "Asia/Chita",
    "Asia/Yakutsk",
    "Asia/Khandyga",
    "Asia/Vladivostok",
    "Asia/Ust-Nera",
    "Asia/Magadan",
    "Asia/Sakhalin",
    "Asia/Srednekolymsk",
    "Asia/Kamchatka",
    "Asia/Anadyr",
)

ZONE_OVERRIDES: dict[str, tuple[str, ...]] = {
    # --- Australia ------------------------------------------------------------------------------
    # Mobiles: the data's country set lacks the Northern Territory's clock (ACST, no DST).
    "614": (
        "Australia/Adelaide",
        "Australia/Brisbane",
        "Australia/Darwin",
        "Australia/Eucla",
        "Australia/Lord_Howe",
        "Australia/Perth",
        "Australia/Sydney",
        "Indian/Christmas",
        "Indian/Cocos",
    ),
    # 07 is Queensland, which keeps no DST; the data says Sydney for most of it (an hour early
    # from October to April).
    "617": ("Australia/Brisbane",),
    # ...but these 07 blocks interleave NSW exchanges (DST) with Queensland ones: Tweed Heads on
    # the Gold Coast's 07 55/56; Yetman, Bonshaw, Atholwood and Legume on the Downs' 07 45/46/7750.
    "61745": _BRISBANE_OR_SYDNEY,
    "61746": _BRISBANE_OR_SYDNEY,
    "617750": _BRISBANE_OR_SYDNEY,
    "61755": _BRISBANE_OR_SYDNEY,
    "61756": _BRISBANE_OR_SYDNEY,
    # 08 70-78 and 08 81-88 are South Australia; the data says "Adelaide or Perth".
    "6187": ("Australia/Adelaide",),
    "6188": ("Australia/Adelaide",),
    # 08 79 and 08 89 are the Northern Territory (Darwin, Alice Springs): ACST without DST, a
    # clock the data leaves out.
    "61879": ("Australia/Darwin",),
    "61889": ("Australia/Darwin",),
    # 08 80 is far-west NSW: Broken Hill keeps South Australian time; its outlying exchanges
    # (Wilcannia, Menindee, Tibooburra) may keep Sydney's.
    "61880": ("Australia/Broken_Hill", "Australia/Sydney"),
    # 08 6 and 08 92-99 are Western Australia (no DST); the data says "Adelaide or Perth".
    # 08 60 and 08 90 (Goldfields-Esperance) include the Nullarbor and Eyre exchanges, on the
    # Eucla clock (UTC+8:45) or South Australia's; 08 91 (and 08 5) interleave Christmas and
    # Cocos Island blocks the data lists finely, so they are left to it.
    "6186": ("Australia/Perth",),
    "61860": _WA_EUCLA,
    "61890": _WA_EUCLA,
    **{f"6189{digit}": ("Australia/Perth",) for digit in "23456789"},
    # --- Brazil ---------------------------------------------------------------------------------
    # DDD 81 is Pernambuco (Recife, UTC-3); the data puts most of it on Fernando de Noronha
    # (UTC-2, an hour ahead), which shares the DDD. Mobiles may be either; landlines are Recife
    # but for Noronha's own exchange, 3619.
    "5581": ("America/Recife", "America/Noronha"),
    "55812": ("America/Recife",),
    "55813": ("America/Recife",),
    "55814": ("America/Recife",),
    "55815": ("America/Recife",),
    "55813619": ("America/Noronha",),
    # DDD 91, 93, 94 are Pará (UTC-3); the data says Manaus (UTC-4) for most of them.
    "5591": ("America/Belem",),
    "5593": ("America/Santarem",),
    "5594": ("America/Belem",),
    # DDD 97 is inland Amazonas, whose south-west (Eirunepé) is UTC-5, not Manaus's UTC-4.
    "5597": ("America/Manaus", "America/Eirunepe"),
    # --- Canada and the US ----------------------------------------------------------------------
    # 867 is all three territories, from Yukon's UTC-7 to Iqaluit's Eastern time; the data's
    # fallback is Fort Nelson (BC) alone.
    "1867": (
        "America/Whitehorse",
        "America/Dawson",
        "America/Edmonton",
        "America/Cambridge_Bay",
        "America/Resolute",
        "America/Rankin_Inlet",
        "America/Iqaluit",
        "America/Atikokan",
    ),
    # The data's Pacific-time 867 exchanges are Yukon's, which keeps UTC-7 all year since 2020.
    **{
        f"1867{exchange}": ("America/Whitehorse",)
        for exchange in ("334", "393", "456", "536", "633", "667", "668", "993")
    },
    # Peace River BC (Dawson Creek, Fort St. John, Chetwynd, Tumbler Ridge) keeps MST all year;
    # the data says Edmonton (MDT in summer: an hour early).
    **{
        f"1250{exchange}": ("America/Dawson_Creek",)
        for exchange in ("242", "262", "782", "785", "787", "788")
    },
    # ...and the data's unnamed Mountain-time 250 exchanges may be Peace River or Kootenay.
    **{f"1250{exchange}": _PEACE_RIVER_OR_KOOTENAY for exchange in ("261", "263", "719", "784")},
    "1250774": ("America/Fort_Nelson",),  # Fort Nelson: MST all year since 2015
    "1250428": ("America/Creston",),  # Creston BC: MST all year (America/Phoenix's clock)
    "1306825": ("America/Edmonton",),  # Lloydminster SK keeps Alberta's time by charter
    "1807597": ("America/Atikokan",),  # Atikokan ON: EST all year; the data says Toronto
    "1907581": ("America/Anchorage",),  # Unalaska: Alaska time; the data says Honolulu
    # --- Ireland --------------------------------------------------------------------------------
    # The data maps Irish numbers to UK zones: the same clock, the wrong name.
    "353": ("Europe/Dublin",),
    # --- Mexico ---------------------------------------------------------------------------------
    # Chihuahua left DST in 2022 for UTC-6 all year; the data still says Mazatlán (UTC-7).
    # These ladas are named after interior towns (Chihuahua, Cuauhtémoc, Parral, Jiménez,
    # Delicias, Camargo).
    **{f"52{lada}": ("America/Chihuahua",) for lada in ("614", "625", "627", "629", "639", "648")},
    # ...these may reach the border strip, which kept US DST (Ciudad Juárez, Ojinaga clocks).
    **{f"52{lada}": _CHIHUAHUA_ANY for lada in ("621", "628", "635", "636", "652", "657", "659")},
    "52649": ("America/Chihuahua", "America/Mexico_City"),  # Chihuahua/Durango
    "52868": ("America/Matamoros",),  # Matamoros keeps US DST; the data says Mexico City
    # --- Russia ---------------------------------------------------------------------------------
    "740": ("Europe/Kaliningrad",),  # Kaliningrad: UTC+2 all year; the data says Bucharest
    "7845": ("Europe/Saratov",),  # Saratov: UTC+4 since 2016; the data says Moscow
    "79": _RUSSIA,  # mobiles: the data's country set lacks Kaliningrad's clock
}

_LONGEST = max(map(len, ZONE_OVERRIDES))


def override_for(digits: str) -> tuple[str, ...] | None:
    """The zones the longest matching entry gives for E.164 `digits` (no "+"), else None."""
    for end in range(min(len(digits), _LONGEST), 0, -1):
        zones = ZONE_OVERRIDES.get(digits[:end])
        if zones is not None:
            return zones
    return None
