"""The ASGI app behind `redialer api`: one factory, a router per concern, dependencies injected
so tests build it with their own store and settings."""

from __future__ import annotations

from fastapi import FastAPI

from redialer.settings import Settings
from redialer.store.provider_calls import ProviderCalls
from redialer.store.store import Store
from service.twilio_routes import twilio_router


def create_app(settings: Settings, store: Store) -> FastAPI:
    app = FastAPI(title="redialer", version="0.2.0")

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    if settings.twilio_auth_token is not None and settings.public_url is not None:
        app.include_router(
            twilio_router(
                calls=ProviderCalls(store),
                auth_token=settings.twilio_auth_token.get_secret_value(),
                public_url=settings.public_url,
            )
        )
    return app


def serve(settings: Settings, *, host: str, port: int) -> None:
    """Run the app on uvicorn until stopped (SIGTERM, Ctrl-C)."""
    import uvicorn

    from redialer.logs import configure_logging

    configure_logging(fmt=settings.log_format, level=settings.log_level)
    store = Store.open(settings.database_url)
    try:
        uvicorn.run(create_app(settings, store), host=host, port=port, log_config=None)
    finally:
        store.close()
