"""What an answered call does, for a real provider: the spec's `call` section.

`{"twiml": "<Response><Say>Hello {{name}}</Say></Response>", "machine_detection": true,
"ring_timeout": 30, "caller_id": "+14155550100",
"voicemail_message": "<Response><Say>Sorry we missed you</Say></Response>",
"opt_out_digit": "9"}`
or `{"url": "https://..."}` instead of `twiml`. `{{variable}}` takes the recipient's variable,
XML-escaped (a missing one is left empty), so a name can never inject instructions.

`opt_out_digit` is a key the recipient may press while the instructions play to be put on the
suppression list at once. It needs `twiml`: the dialer nests the spoken verbs (`GATHER_NESTS`)
in a `<Gather>`, which it cannot do to instructions a `url` serves, nor to a document with its
own `<Gather>` (Twilio nests none).
"""

from __future__ import annotations

import re
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
#: The keys of a phone's keypad: what `opt_out_digit` may be.
KEYPAD = frozenset("0123456789*#")
#: The verbs Twilio lets a `<Gather>` nest: the opt-out digit is heard while these play.
GATHER_NESTS = ("Say", "Play", "Pause")


def render(template: str, variables: dict[str, JsonValue]) -> str:
    """The template with each `{{name}}` replaced by the variable's value, XML-escaped."""

    def value(match: re.Match[str]) -> str:
        found = variables.get(match.group(1))
        return "" if found is None else escape(str(found), {'"': "&quot;", "'": "&apos;"})

    return _PLACEHOLDER.sub(value, template)


def _check_twiml(text: str) -> str:
    """Well-formed TwiML (a `<Response>` document), whatever the variables hold."""
    try:
        root = ElementTree.fromstring(render(text, {}))
    except ElementTree.ParseError as exc:
        raise ValueError(f"is not well-formed XML ({exc})") from exc
    if root.tag != "Response":
        raise ValueError(f"must be a TwiML document whose root is <Response>, not <{root.tag}>")
    return text


class CallSpec(BaseModel):
    """The instructions for an answered call and how to ring."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    twiml: str | None = None
    url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    #: Ask the provider to detect answering machines: a machine answer ends the attempt
    #: `voicemail` (hung up, or, with `voicemail_message`, after leaving it at the beep).
    machine_detection: bool = False
    ring_timeout: int = Field(default=30, ge=5, le=600)  # seconds; Twilio takes 5..600
    #: The `From` number for these calls (a number of the provider account), E.164; unset:
    #: REDIALER_CALLER_ID.
    caller_id: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{6,14}$")
    voicemail_message: str | None = None
    #: A key that, pressed while the instructions play, puts the number on the suppression
    #: list (`opted_out`) at once: no campaign calls it again.
    opt_out_digit: str | None = None

    @field_validator("twiml", "voicemail_message")
    @classmethod
    def _well_formed(cls, value: str | None) -> str | None:
        return None if value is None else _check_twiml(value)

    @field_validator("opt_out_digit", mode="before")
    @classmethod
    def _one_key(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # `"opt_out_digit": 9` means the key 9
        if value is not None and (not isinstance(value, str) or value not in KEYPAD):
            raise ValueError("must be one key of a phone's keypad: one of 0-9, * or #")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> CallSpec:
        if (self.twiml is None) == (self.url is None):
            raise ValueError(
                "give exactly one of twiml (instructions) or url (where to fetch them)"
            )
        if self.voicemail_message is not None and not self.machine_detection:
            raise ValueError("voicemail_message needs machine_detection: true (to hear the beep)")
        if self.voicemail_message is not None and self.url is not None:
            raise ValueError(
                "voicemail_message works with twiml, not url: your url answers every call itself"
            )
        if self.opt_out_digit is not None:
            _check_opt_out(self)
        return self


def _check_opt_out(spec: CallSpec) -> None:
    """The opt-out digit is heard only inside redialer's `<Gather>`, around spoken verbs."""
    if spec.twiml is None:
        raise ValueError(
            f"opt_out_digit {spec.opt_out_digit!r} works with twiml, not url: redialer cannot"
            " listen for a key during instructions your url serves (Twilio nests no <Gather>"
            " in them); give twiml, or gather the key in your own TwiML and add the number"
            " with `redialer suppress add`"
        )
    verbs = [child.tag for child in ElementTree.fromstring(render(spec.twiml, {}))]
    if "Gather" in verbs:
        raise ValueError(
            f"opt_out_digit {spec.opt_out_digit!r} cannot be used with a twiml that has its own"
            " <Gather>: Twilio does not nest one <Gather> in another, and keys pressed during"
            " yours go to your action"
        )
    if not any(verb in GATHER_NESTS for verb in verbs):
        raise ValueError(
            f"opt_out_digit {spec.opt_out_digit!r} needs a twiml that says or plays something"
            f" ({', '.join(f'<{v}>' for v in GATHER_NESTS)}): the key is heard only while those"
            " play"
        )
