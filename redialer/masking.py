"""Phone numbers as people may see them in shared places: logs, summaries, current details.

`+16505550199` becomes `+1650•••0199`: enough to tell numbers apart in a list and to recognise one
you already know, not enough to call anyone.
"""

from __future__ import annotations

import re

#: A phone number as it may appear in free text: E.164 (`+16505550199`) or a bare run of 7 to 15
#: digits that could be one. Ids, counts and timestamps are shorter or differently shaped; a run
#: of digits on either side of a decimal point (`12:00:00.123456789`, `0.12345678`) is a number.
_NUMBER = r"(?<![\w+])(?<!\d\.)\+?[1-9]\d{6,14}(?!\w)(?!\.\d)"
#: A UUID (Temporal's run ids) is matched first and kept whole: a group of it may be all digits.
_UUID = r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"
_NUMBER_OUTSIDE_UUIDS = re.compile(f"(?P<uuid>{_UUID})|(?P<number>{_NUMBER})")
_HIDDEN = "•••"


def mask_phone(number: str) -> str:
    """The first four digits (with the `+`) and the last four: `+1650•••0199`."""
    plus = "+" if number.startswith("+") else ""
    digits = number.removeprefix("+")
    if len(digits) <= 8:
        return plus + digits[:2] + _HIDDEN + digits[-2:]
    return plus + digits[:4] + _HIDDEN + digits[-4:]


def mask_numbers_in(text: str) -> str:
    """Every phone-number-like run in free text, masked."""
    return _NUMBER_OUTSIDE_UUIDS.sub(
        lambda m: m.group("uuid") or mask_phone(m.group("number")), text
    )
