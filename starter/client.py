"""One way to reach Temporal: the same address, namespace and pydantic converter everywhere."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from redialer.settings import Settings


async def connect(settings: Settings, *, address: str | None = None) -> Client:
    """A client with the pydantic converter (the worker, CLI, tests and Replayer all use it)."""
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        address or settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        api_key=api_key,
        tls=settings.temporal_tls or api_key is not None,
    )
