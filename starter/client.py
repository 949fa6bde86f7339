"""One way to reach Temporal: the same address, namespace, TLS and converter everywhere, so
every process (worker, CLI, API, Replayer) encrypts and decrypts payloads with the same keys."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.service import TLSConfig

from redialer.encryption import data_converter
from redialer.settings import Settings


async def connect(settings: Settings, *, address: str | None = None) -> Client:
    """A client with the settings' converter (pydantic, encrypting when keys are set)."""
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        address or settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        api_key=api_key,
        tls=tls_config(settings),
    )


def tls_config(settings: Settings) -> bool | TLSConfig:
    """mTLS when a certificate, a CA or a server name is given; otherwise plain TLS when asked
    for (or implied by an API key, which Temporal Cloud only takes over TLS), else none."""
    cert, key, ca = settings.temporal_tls_cert, settings.temporal_tls_key, settings.temporal_tls_ca
    if cert is None and key is None and ca is None and settings.temporal_tls_server_name is None:
        return settings.temporal_tls or settings.temporal_api_key is not None
    return TLSConfig(
        client_cert=cert.read_bytes() if cert is not None else None,
        client_private_key=key.read_bytes() if key is not None else None,
        server_root_ca_cert=ca.read_bytes() if ca is not None else None,
        domain=settings.temporal_tls_server_name,
    )
