"""The load generator of `bench.callback_load`: posts pre-signed status callbacks, nothing else.

Its own process, so that what it costs shows apart from the service's CPU. It reads the signed
requests (a JSON file: one list of [url, form body, signature] per call, in Twilio's order) and
then serves one level at a time over stdin/stdout, so that the caller samples CPU around each:

    -> {"concurrency": 8, "first": 0, "last": 500, "seconds": 20}
    <- {"sent": ..., "codes": {...}, "elapsed_s": ..., "latencies_ms": [...]}

`concurrency` requests are in flight at once; each of those senders takes the next call and
posts its callbacks one after the other, as Twilio does for one call. A level stops taking new
calls after `seconds` (the calls under way finish). Loopback only: the URLs are the api's own.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any

import httpx

FORM = "application/x-www-form-urlencoded"


async def level(
    calls: list[list[list[str]]], *, concurrency: int, seconds: float
) -> dict[str, Any]:
    latencies: list[float] = []
    codes: Counter[str] = Counter()
    pending = iter(calls)
    deadline = time.monotonic() + seconds

    # A client (one kept-alive connection) per sender, made before the clock starts: one
    # client's pool of 32 or 64 connections costs the generator several ms of CPU per request.
    clients = [
        httpx.AsyncClient(limits=httpx.Limits(max_connections=1), timeout=30)
        for _ in range(concurrency)
    ]

    async def sender(http: httpx.AsyncClient) -> None:
        async with http:
            for call in pending:  # one iterator shared by every sender: each call once
                if time.monotonic() > deadline:
                    return
                for url, body, signature in call:
                    t0 = time.perf_counter()
                    try:
                        response = await http.post(
                            url,
                            content=body,
                            headers={
                                "Content-Type": FORM,
                                "X-Twilio-Signature": signature,
                                "User-Agent": "TwilioProxy/1.1",
                            },
                        )
                        code = str(response.status_code)
                    except httpx.HTTPError as exc:
                        code = type(exc).__name__
                    latencies.append((time.perf_counter() - t0) * 1000)
                    codes[code] += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(sender(http) for http in clients))
    elapsed = time.perf_counter() - t0
    return {
        "sent": len(latencies),
        "codes": dict(codes),
        "elapsed_s": elapsed,
        "latencies_ms": latencies,
    }


def main() -> None:
    with open(sys.argv[1]) as f:
        calls = json.load(f)
    print(json.dumps({"ready": len(calls)}), flush=True)
    for line in sys.stdin:
        ask = json.loads(line)
        result = asyncio.run(
            level(
                calls[ask["first"] : ask["last"]],
                concurrency=ask["concurrency"],
                seconds=ask["seconds"],
            )
        )
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
