"""Check a request meant for Twilio's Calls API against Twilio's own OpenAPI description.

The fake Twilio only proves the dialer agrees with the fake; this proves the requests it sends
are ones the real API accepts, by the vendored `twilio_api_v2010_calls.json` (see its
`info.x-vendored-from`). openapi-core routes the request and checks the path, query, auth
header and media type; the form body is parsed here and checked with jsonschema, so that every
bad field is listed, not only the first one openapi-core stops at.

Where Twilio documents a constraint in a field's description but leaves it out of the schema
(`MachineDetection` "Can be: `Enable` or `DetectMessageEnd`"), `DOCUMENTED` adds it; each entry
quotes the description, and loading fails if a regenerated spec no longer says it.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from jsonschema import FormatChecker
from jsonschema.exceptions import ValidationError
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest
from openapi_schema_validator import OAS30Validator

SPEC_PATH = Path(__file__).with_name("twilio_api_v2010_calls.json")
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Documented:
    """A constraint Twilio states in prose; `evidence` must appear in the field's description."""

    operation: str  # operationId
    field: str  # body property or query parameter name
    evidence: str
    schema: dict[str, Any]  # merged into the published schema (for arrays: into `items`)


DOCUMENTED: tuple[Documented, ...] = (
    Documented(
        "CreateCall",
        "MachineDetection",
        "Can be: `Enable` or `DetectMessageEnd`",
        {"enum": ["Enable", "DetectMessageEnd"]},
    ),
    Documented(
        "CreateCall",
        "StatusCallbackEvent",
        "Can be: `initiated`, `ringing`, `answered`, and `completed`",
        {"enum": ["initiated", "ringing", "answered", "completed"]},
    ),
    Documented("CreateCall", "Timeout", "the maximum is `600` seconds", {"maximum": 600}),
    Documented("CreateCall", "AsyncAmd", "Can be: `true` or `false`", {"enum": ["true", "false"]}),
    Documented(
        "CreateCall",
        "Trim",
        "Can be: `trim-silence` or `do-not-trim`",
        {"enum": ["trim-silence", "do-not-trim"]},
    ),
    Documented(
        "CreateCall", "RecordingChannels", "Can be: `mono` or `dual`", {"enum": ["mono", "dual"]}
    ),
    Documented(
        "CreateCall",
        "RecordingTrack",
        "Can be: `inbound`, `outbound` or `both`",
        {"enum": ["inbound", "outbound", "both"]},
    ),
    # The schema says `date-time`, the description (and every example but one) a plain date;
    # twilio-python sends `%Y-%m-%dT%H:%M:%SZ`. Accept both, reject anything else.
    *(
        Documented("ListCall", name, "Specify a date as `YYYY-MM-DD`", {"format": "twilio-date"})
        for name in ("StartTime", "StartTime<", "StartTime>", "EndTime", "EndTime<", "EndTime>")
    ),
)


class ContractViolation(AssertionError):
    """A request Twilio's published API description does not allow; lists every violation."""

    def __init__(self, method: str, url: str, violations: list[str]) -> None:
        self.method = method
        self.url = url
        self.violations = violations
        lines = "\n".join(f"  - {v}" for v in violations)
        super().__init__(f"{method} {url} breaks Twilio's API contract ({_source()}):\n{lines}")


def check_request(
    method: str, url: str, headers: Mapping[str, str] | None = None, body_bytes: bytes = b""
) -> str:
    """Raise `ContractViolation` listing every violation; return the operationId otherwise.

    Positional to match the recorded requests (`check_request(*fake.requests[0])` works);
    any scheme and host are accepted, only the path, query, headers and body are judged.
    """
    operation, found = violations(method, url, headers or {}, body_bytes)
    if found:
        raise ContractViolation(method, url, found)
    assert operation is not None
    return operation


def violations(
    method: str, url: str, headers: Mapping[str, str], body_bytes: bytes
) -> tuple[str | None, list[str]]:
    """(operationId or None, every violation found) — empty when the request conforms."""
    contract = _contract()
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    request = MockRequest(  # any host: only the path, query, headers and body are judged
        contract.server,
        method,
        parts.path,
        args=query,  # type: ignore[arg-type]  # a list of pairs keeps repeated keys
        headers=dict(headers),
        data=body_bytes,
        content_type=content_type.lower(),
    )
    found: list[str] = []
    match = contract.match(method, parts.path)
    operation = match["operationId"] if match else None
    body_schema = _form_schema(match) if match else None
    check_body_here = body_schema is not None and request.content_type.startswith(FORM)

    result = contract.api.unmarshal_request(request)
    for error in result.errors:
        if check_body_here and _is_body_error(error):
            continue  # listed field by field below
        found.append(_describe(error))

    if match is not None:
        declared = {p["name"] for p in match.get("parameters", []) if p["in"] == "query"}
        for name in dict.fromkeys(k for k, _ in query):
            if name not in declared:
                found.append(f"query parameter {name!r}: not a parameter of {operation}")
    if check_body_here and body_schema is not None:
        found += _body_violations(body_schema, body_bytes, operation or "?")
    elif match is not None and body_bytes and body_schema is None:
        found.append(f"body: {operation} takes no request body")
    return operation, found


def response_violations(operation_id: str, status: int, payload: Any) -> list[str]:
    """Where a JSON answer (the fake's, say) differs from what Twilio documents for it."""
    operation = next(op for _, _, op in _contract().routes if op["operationId"] == operation_id)
    response = operation["responses"].get(str(status))
    if response is None:
        return [f"{operation_id} documents no {status} response"]
    schema = response["content"]["application/json"]["schema"]
    # Twilio's own answers (and the spec's examples) give `uri` fields as absolute paths.
    validator = OAS30Validator(schema, format_checker=_format_checker(relative_uris=True))
    errors = sorted(validator.iter_errors(payload), key=lambda e: list(e.absolute_path))
    return [_describe_schema_error("response", e) for e in errors]


# --- the form body -----------------------------------------------------------------------------


def _body_violations(schema: dict[str, Any], body: bytes, operation: str) -> list[str]:
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError) as exc:
        return [f"body: not a valid {FORM} body ({exc})"]
    properties: dict[str, Any] = schema.get("properties", {})
    found: list[str] = []
    values: dict[str, list[str]] = {}
    for key, value in pairs:
        values.setdefault(key, []).append(value)
    instance: dict[str, Any] = {}
    for key, sent in values.items():
        prop = properties.get(key)
        if prop is None:
            found.append(f"body.{key}: not a parameter of {operation} (Twilio ignores it)")
            continue
        if prop.get("type") == "array":
            instance[key] = [_coerce(v, prop.get("items", {})) for v in sent]
        else:
            if len(sent) > 1:
                found.append(f"body.{key}: sent {len(sent)} times but is not an array")
            instance[key] = _coerce(sent[-1], prop)
    validator = OAS30Validator(schema, format_checker=_format_checker())
    prose = {r.field: r for r in DOCUMENTED if r.operation == operation}
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)):
        message = _describe_schema_error("body", error)
        rule = prose.get(str(error.absolute_path[0])) if error.absolute_path else None
        if rule is not None and error.validator in rule.schema:
            message += f" (Twilio's description: {rule.evidence!r})"
        found.append(message)
    return found


def _coerce(raw: str, schema: Mapping[str, Any]) -> Any:
    """Form values are strings; turn them into what the schema types, or leave them to fail."""
    kind = schema.get("type")
    if kind == "integer" and re.fullmatch(r"[+-]?\d+", raw):
        return int(raw)
    if kind == "number":
        try:
            return float(raw)
        except ValueError:
            return raw
    if kind == "boolean" and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    return raw


def _describe_schema_error(where: str, error: ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required":
        missing = re.match(r"'(.+)' is a required property", error.message)
        name = missing.group(1) if missing else "?"
        return f"{where}.{path + '.' if path else ''}{name}: required but missing"
    return f"{where}{'.' + path if path else ''}: {error.message}"


# --- openapi-core's errors ---------------------------------------------------------------------


def _is_body_error(error: Exception) -> bool:
    from openapi_core.validation.request.exceptions import RequestBodyValidationError

    return isinstance(error, RequestBodyValidationError) and not _is_media_type_error(error)


def _is_media_type_error(error: BaseException) -> bool:
    chain: BaseException | None = error
    while chain is not None:
        if type(chain).__name__ in ("MediaTypeNotFound", "MissingRequestBody"):
            return True
        chain = chain.__cause__
    return False


def _describe(error: Exception) -> str:
    """openapi-core wraps the useful part (schema errors) a few causes deep."""
    name = getattr(error, "name", None)
    location = getattr(error, "location", None)
    where = f"{location} parameter {name!r}" if name and location else type(error).__name__
    details: list[str] = []
    chain: BaseException | None = error
    while chain is not None:
        for schema_error in getattr(chain, "schema_errors", None) or ():
            details.append(schema_error.message)
        if not details and chain.__cause__ is None:
            details.append(str(chain) or type(chain).__name__)
        chain = chain.__cause__
    return f"{where}: {'; '.join(dict.fromkeys(details))}"


# --- the loaded contract -----------------------------------------------------------------------


@dataclass
class _Contract:
    spec: dict[str, Any]
    api: OpenAPI
    server: str
    routes: list[tuple[re.Pattern[str], str, dict[str, Any]]] = field(default_factory=list)

    def match(self, method: str, path: str) -> dict[str, Any] | None:
        for pattern, verb, operation in self.routes:
            if verb == method.lower() and pattern.fullmatch(path):
                return operation
        return None


def _is_twilio_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            date.fromisoformat(value)
            return True
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return "T" in value
    except ValueError:
        return False


def _is_absolute_url(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _any(value: object) -> bool:
    return True


# Twilio's own formats (`endpoint`, `twiml`, ...) are names, not checks: anything passes.
_FORMATS: dict[str, Callable[[object], bool]] = {
    "twilio-date": _is_twilio_date,
    "uri": _is_absolute_url,
    **{
        name: _any
        for name in (
            "endpoint",
            "phone-number",
            "http-method",
            "twiml",
            "currency",
            "uri-map",
            "date-time-rfc-2822",
        )
    },
}


@cache
def _format_checker(*, relative_uris: bool = False) -> FormatChecker:
    checker = FormatChecker()
    for name, check in _FORMATS.items():
        checker.checks(name)(check)
    if relative_uris:
        checker.checks("uri")(
            lambda v: not isinstance(v, str) or v.startswith("/") or _is_absolute_url(v)
        )
    return checker


def _source() -> str:
    vendored = _contract().spec["info"].get("x-vendored-from", {})
    return f"twilio-oai {vendored.get('tag', '?')} @ {str(vendored.get('commit', '?'))[:12]}"


def _operations(spec: dict[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for verb in ("get", "post", "put", "patch", "delete"):
            if verb in item:
                yield path, verb, item[verb]


def _form_schema(operation: dict[str, Any]) -> dict[str, Any] | None:
    content = operation.get("requestBody", {}).get("content", {})
    schema: dict[str, Any] | None = content.get(FORM, {}).get("schema")
    return schema


def _resolve(node: Any, spec: dict[str, Any]) -> Any:
    """Inline local `$ref`s (the subset has no cycles) so a body schema stands alone."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = spec
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return _resolve(target, spec)
        return {k: _resolve(v, spec) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, spec) for v in node]
    return node


def _apply_documented(spec: dict[str, Any]) -> None:
    by_id = {op["operationId"]: op for _, _, op in _operations(spec)}
    for rule in DOCUMENTED:
        operation = by_id[rule.operation]
        body = _form_schema(operation)
        if body is not None and rule.field in body.get("properties", {}):
            target = body["properties"][rule.field]
            description = target.get("description", "")
        else:
            param = next(p for p in operation["parameters"] if p["name"] == rule.field)
            target = param["schema"]
            description = param.get("description", "")
        if rule.evidence not in description:
            raise RuntimeError(
                f"{rule.operation}.{rule.field}: the vendored spec no longer says "
                f"{rule.evidence!r}; update DOCUMENTED in {__name__}"
            )
        (target["items"] if target.get("type") == "array" else target).update(rule.schema)


@cache
def _contract() -> _Contract:
    spec = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    spec = copy.deepcopy(spec)
    _apply_documented(spec)
    server = spec["servers"][0]["url"]
    api = OpenAPI.from_dict(
        spec,
        config=Config(
            server_base_url=server,
            extra_format_validators=dict(_FORMATS),
        ),
    )
    contract = _Contract(spec=spec, api=api, server=server)
    for path, verb, operation in _operations(spec):
        pattern = re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)))
        resolved = _resolve(operation, spec)
        contract.routes.append((pattern, verb, resolved))
    return contract
