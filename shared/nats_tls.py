"""TLS to NATS, the same for the services and the CLI (a module of its own: the CLI does not
load the services' broker to connect)."""

from __future__ import annotations

import ssl
from pathlib import Path


def servers(nats_url: str) -> list[str]:
    """``KRING_NATS_URL`` may name several nodes, comma-separated (any one that answers will do;
    a client learns the others from the cluster once connected)."""
    return [url.strip() for url in nats_url.split(",") if url.strip()]


def tls_context(nats_url: str, ca_file: Path | None) -> ssl.SSLContext | None:
    """The TLS a connection to NATS uses: verified against ``ca_file`` (a PEM bundle, for a
    deployment's own CA) where one is given, else against the system's CAs for ``tls://`` URLs;
    None for plain ``nats://`` (a server that requires TLS then refuses, naming it)."""
    if ca_file is not None:
        return ssl.create_default_context(cafile=str(ca_file))
    if any(url.startswith("tls://") for url in servers(nats_url)):
        return ssl.create_default_context()
    return None
