"""Cut the Calls resource out of Twilio's published OpenAPI description (twilio/twilio-oai).

The full `spec/json/twilio_api_v2010.json` is about 1.9 MB; the contract test needs only the four
Calls operations the dialer uses and the schemas they reach, so that subset is vendored beside
this script as `twilio_api_v2010_calls.json` and regenerated with it:

    python tests/contracts/extract_twilio_calls.py path/to/twilio_api_v2010.json \
        --commit <twilio-oai commit> --tag <twilio-oai tag> --date <commit date>

Nothing is edited: operations, parameters and schemas are copied as published (the checker, not
this file, says where Twilio's documentation is stricter than its schemas).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

SOURCE_REPO = "https://github.com/twilio/twilio-oai"
SOURCE_PATH = "spec/json/twilio_api_v2010.json"

# path -> the HTTP methods kept (list + create, fetch + update; delete is not used)
OPERATIONS: dict[str, tuple[str, ...]] = {
    "/2010-04-01/Accounts/{AccountSid}/Calls.json": ("get", "post"),
    "/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json": ("get", "post"),
}
_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
_REF = re.compile(r"^#/components/(?P<section>[^/]+)/(?P<name>[^/]+)$")

DEFAULT_OUTPUT = Path(__file__).with_name("twilio_api_v2010_calls.json")


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref)
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def extract(spec: dict[str, Any], *, vendored_from: dict[str, str]) -> dict[str, Any]:
    """The subset: the kept operations and every component they reference, transitively."""
    paths: dict[str, Any] = {}
    for path, methods in OPERATIONS.items():
        item = spec["paths"][path]
        kept = {k: v for k, v in item.items() if k not in _HTTP_METHODS}
        for method in methods:
            kept[method] = item[method]
        paths[path] = kept

    components: dict[str, dict[str, Any]] = {}
    pending = sorted(_refs(paths))
    seen: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        match = _REF.match(ref)
        if match is None:
            raise ValueError(f"unsupported $ref {ref!r}")
        section, name = match["section"], match["name"]
        target = spec["components"][section][name]
        components.setdefault(section, {})[name] = target
        pending.extend(sorted(_refs(target) - seen))

    # Security requirements name schemes rather than $ref them.
    schemes = spec.get("components", {}).get("securitySchemes", {})
    requirements = list(spec.get("security", []))
    for item in paths.values():
        for method in _HTTP_METHODS & item.keys():
            requirements += item[method].get("security", [])
    for requirement in requirements:
        for scheme in requirement:
            components.setdefault("securitySchemes", {})[scheme] = schemes[scheme]

    info = dict(spec["info"])
    info["x-vendored-from"] = vendored_from
    subset: dict[str, Any] = {
        "openapi": spec["openapi"],
        "info": info,
        "servers": spec.get("servers", []),
    }
    if "security" in spec:
        subset["security"] = spec["security"]
    subset["paths"] = paths
    subset["components"] = {k: dict(sorted(v.items())) for k, v in sorted(components.items())}
    return subset


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path, help=f"the full {SOURCE_PATH} from twilio-oai")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--commit", default="unknown", help="twilio-oai commit the spec is from")
    parser.add_argument("--tag", default="unknown", help="twilio-oai tag of that commit")
    parser.add_argument("--date", default="unknown", help="that commit's date (ISO 8601)")
    args = parser.parse_args(argv)

    spec = json.loads(args.spec.read_text(encoding="utf-8"))
    subset = extract(
        spec,
        vendored_from={
            "repository": SOURCE_REPO,
            "path": SOURCE_PATH,
            "commit": args.commit,
            "tag": args.tag,
            "date": args.date,
            "license": "MIT (Copyright (C) 2023, Twilio, Inc.)",
            "extracted_by": "tests/contracts/extract_twilio_calls.py",
        },
    )
    args.output.write_text(json.dumps(subset, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(
        f"wrote {args.output} ({len(subset['paths'])} paths, "
        f"{sum(len(v) for v in subset['components'].values())} components)"
    )


if __name__ == "__main__":
    main()
