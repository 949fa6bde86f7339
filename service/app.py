"""The ASGI app behind `redialer api`: one factory, a router per concern, dependencies injected
so tests build it with their own store, settings and Temporal client.

`/v1` is the public REST API (API keys); `/twilio` the provider's callbacks (its signature);
`/healthz` (the process is up) and `/readyz` (Temporal and the store answer) are open, as are the
OpenAPI schema (`/openapi.json`) and its docs (`/docs`).
"""

from __future__ import annotations

import asyncio
from importlib.metadata import version

from fastapi import APIRouter, Depends, FastAPI, Response, Security
from sqlalchemy import text
from temporalio.client import Client

from redialer.settings import Settings
from redialer.store.store import Store
from service.api_models import HealthOut, ReadyOut
from service.auth import BEARER, X_API_KEY, ApiKeys
from service.call_routes import call_router
from service.campaign_routes import campaign_router
from service.codec_routes import codec_router, install_codec_cors
from service.openapi import install_schema
from service.requests import install_error_handlers
from service.temporal_link import TemporalLink
from service.twilio_routes import twilio_router

#: How long `/readyz` waits for the store.
STORE_CHECK_TIMEOUT = 5.0


def create_app(settings: Settings, store: Store, *, client: Client | None = None) -> FastAPI:
    app = FastAPI(
        title="redialer",
        version=version("redialer"),
        description="Durable outbound call campaigns on Temporal: campaigns, single calls with"
        " retries, call reports. Every `/v1` route needs an API key (`Authorization: Bearer KEY`"
        " or `x-api-key: KEY`).",
    )
    install_error_handlers(app)
    link = TemporalLink(settings, client)

    @app.get("/healthz", tags=["health"], response_model=HealthOut, summary="The process is up")
    async def healthz() -> HealthOut:
        return HealthOut(status="ok")

    @app.get(
        "/readyz",
        tags=["health"],
        response_model=ReadyOut,
        responses={503: {"model": ReadyOut, "description": "Temporal or the store is not ready."}},
        summary="Temporal and the store answer",
    )
    async def readyz(response: Response) -> ReadyOut:
        checks = {"temporal": await link.healthy(), "store": await _store_health(store)}
        ready = all(v == "ok" for v in checks.values())
        response.status_code = 200 if ready else 503
        return ReadyOut(status="ready" if ready else "not_ready", checks=checks)

    v1 = APIRouter(
        prefix="/v1",
        dependencies=[
            Security(BEARER),
            Security(X_API_KEY),
            Depends(ApiKeys(settings.api_key_digests)),
        ],
    )
    v1.include_router(campaign_router(settings, store, link))
    v1.include_router(call_router(settings, link))
    app.include_router(v1)

    if settings.twilio_auth_token is not None and settings.public_url is not None:
        app.include_router(
            twilio_router(
                store=store,
                auth_token=settings.twilio_auth_token.get_secret_value(),
                public_url=settings.public_url,
            )
        )
    app.include_router(codec_router(settings))  # open: see service.codec_routes on who may reach it
    install_codec_cors(app, settings.codec_cors_origin)
    install_schema(app)
    return app


async def _store_health(store: Store) -> str:
    def check() -> None:
        with store.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(asyncio.to_thread(check), timeout=STORE_CHECK_TIMEOUT)
    except Exception as exc:  # any failure means not ready; say what it was
        return f"the store cannot be reached: {type(exc).__name__}"
    return "ok"


def serve(settings: Settings, *, host: str, port: int) -> None:
    """Run the app on uvicorn until stopped (SIGTERM, Ctrl-C)."""
    import uvicorn

    from redialer.logs import configure_logging, secrets_of
    from redialer.pseudonyms import Pseudonyms

    configure_logging(
        fmt=settings.log_format,
        level=settings.log_level,
        log_pii=settings.log_pii,
        secrets=secrets_of(settings),
    )
    store = Store.open(settings.database_url, pseudonyms=Pseudonyms.from_settings(settings))
    try:
        uvicorn.run(create_app(settings, store), host=host, port=port, log_config=None)
    finally:
        store.close()
