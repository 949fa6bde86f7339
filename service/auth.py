"""API keys for `/v1`: `Authorization: Bearer KEY` or `x-api-key: KEY` (Gomobile's header).

Keys are compared by their SHA-256 digests, with `hmac.compare_digest` against every configured
key (no early exit), so neither the time taken nor the settings reveal a key. The provider
callbacks keep their own signature check; `/healthz`, `/readyz` and the schema are open.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request
from fastapi.security import APIKeyHeader, HTTPBearer

from service.requests import ApiError

#: Declared for the OpenAPI schema (the docs' "Authorize" button); checked by `ApiKeys`.
BEARER = HTTPBearer(auto_error=False, description="`Authorization: Bearer KEY`")
X_API_KEY = APIKeyHeader(name="x-api-key", auto_error=False, description="`x-api-key: KEY`")


class ApiKeys:
    """The dependency every `/v1` route has: 401 unless the request carries a valid key."""

    def __init__(self, digests: list[bytes]) -> None:
        self._digests = digests

    def valid(self, presented: str) -> bool:
        digest = hashlib.sha256(presented.encode()).digest()
        found = False
        for known in self._digests:
            found |= hmac.compare_digest(digest, known)
        return found

    async def __call__(self, request: Request) -> None:
        presented = _presented(request)
        if presented is None:
            raise ApiError(
                401, "an API key is required: `Authorization: Bearer KEY` or `x-api-key: KEY`"
            )
        if not self._digests:
            raise ApiError(401, "this service has no API keys (set REDIALER_API_KEYS)")
        if not self.valid(presented):
            raise ApiError(401, "the API key is not valid")


def _presented(request: Request) -> str | None:
    header = request.headers.get("x-api-key")
    if header:
        return header.strip()
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None
