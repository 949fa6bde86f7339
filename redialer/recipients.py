"""A recipient: one E.164 number to reach, with the variables every attempt carries."""

from __future__ import annotations

from typing import Annotated

import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    ValidationInfo,
    model_validator,
)

from redialer.limits import recipient_within_limit
from redialer.zones import load_zone


def normalise_phone(value: object) -> str:
    """Parse and normalise a phone number to E.164; refuse what cannot be dialed."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"+{value}"
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a phone number in international format, e.g. +16505550199")
    text = value.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    if not text.startswith("+"):
        raise ValueError("must be in international format with a country code, e.g. +16505550199")
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"is not a phone number ({exc._msg})") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("is not a valid number for its country (wrong length or prefix)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _check_zone(value: str | None) -> str | None:
    if value is not None:
        load_zone(value)
    return value


#: A dialable number, normalised to E.164 ("+16505550199").
E164 = Annotated[str, BeforeValidator(normalise_phone)]

#: An IANA time zone name, checked against the zone database.
ZoneName = Annotated[str, AfterValidator(_check_zone)]


class Recipient(BaseModel):
    """One person to call. `variables` and `metadata` reach every attempt unchanged."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phone: E164
    timezone: ZoneName | None = None
    variables: dict[str, JsonValue] = Field(default_factory=dict)
    metadata: dict[str, JsonValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _within_size_limit(self, info: ValidationInfo) -> Recipient:
        """Every payload that carries a recipient carries all of it: bound it where it enters."""
        recipient_within_limit(self, info)
        return self
