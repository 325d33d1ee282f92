"""NATS with TLS under a deployment's own CA, for real: a certificate made here for a
nats-server that requires TLS; a service given the CA (``KRING_NATS_TLS_CA_FILE``) connects,
consumes and publishes; a client that does not trust the CA, or speaks plain NATS, is refused;
the CLI connects the same way; a CA file that is not one stops the service with one line."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from services.coordination.bootstrap import build
from services.coordination.settings import CoordinationSettings
from shared.settings import problem_line
from shared.subjects import STREAM
from tests.factories import bus_headers, envelope, request_received
from tests.harness import eventually, running
from tests.servers import NatsServer


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_ca_and_server(folder: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) as PEM files: the server's for
    127.0.0.1 and localhost, signed by the CA."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Kring test CA"))
        .issuer_name(_name("Kring test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(_name("nats"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "server.pem", folder / "server-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths[2].chmod(0o600)
    return paths


@pytest.fixture
async def tls_nats(tmp_path: Path) -> AsyncIterator[tuple[NatsServer, Path]]:
    ca, certificate, key = make_ca_and_server(tmp_path)
    server = NatsServer(tmp_path / "nats", tls=(certificate, key)).start()
    try:
        yield server, ca
    finally:
        server.stop()


async def test_a_service_given_the_ca_works_over_tls_and_nobody_gets_in_without_it(
    tls_nats: tuple[NatsServer, Path], tmp_path: Path
) -> None:
    server, ca = tls_nats
    assert server.url.startswith("tls://")
    settings = CoordinationSettings(
        **server.settings("coordination"), data_dir=tmp_path / "data", nats_tls_ca_file=ca
    )
    async with running(build(settings)) as service:
        await service.service.bus.wait_started()
        pool = {"coordinator_id": "c1", "regions": ["Utrecht"], "languages": ["nl"]}
        assert (await service.http.post("/coordinators", json=pool)).status_code == 201
        # intake publishes over TLS (as its relay would); coordination consumes it over TLS.
        event = request_received()
        trusted = ssl.create_default_context(cafile=str(ca))
        intake = await server.connect("intake", tls=trusted)
        await intake.jetstream().publish(
            event.subject(), envelope(event, 1), headers=bus_headers("intake", 1)
        )
        await intake.close()

        async def known() -> bool:
            return (await service.http.get(f"/cases/{event.case_id}")).status_code == 200

        await eventually(known, what="the request applied from over TLS")
        # ...and coordination's relay published its own over TLS.
        admin = await server.connect("admin", tls=trusted)

        async def relayed() -> bool:
            return (await admin.jetstream().stream_info(STREAM)).state.messages >= 2

        try:
            await eventually(relayed, what="coordination's CoordinatorAssigned on the stream")
        finally:
            await admin.close()

    # The system's CAs do not know this one: refused before any credential is sent.
    with pytest.raises(ssl.SSLCertVerificationError):
        await nats.connect(
            server.url,
            user="analyst",
            password=server.password("analyst"),
            allow_reconnect=False,
            connect_timeout=3,
        )
    # Plain NATS to a server that requires TLS: refused.
    with pytest.raises(Exception, match=r"(?i)tls|ssl|secure"):
        await nats.connect(
            server.url.replace("tls://", "nats://"),
            user="analyst",
            password=server.password("analyst"),
            tls=None,
            allow_reconnect=False,
            connect_timeout=3,
        )


def test_the_cli_connects_over_tls_with_the_ca_and_says_so_without_it(
    tls_nats: tuple[NatsServer, Path],
) -> None:
    server, ca = tls_nats
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRING_")}
    env |= {
        "KRING_NATS_URL": server.url,
        "KRING_NATS_USER": "operator",
        "KRING_NATS_PASSWORD": server.password("operator"),
    }

    def dlq(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kring.cli", "dlq", "list"],
            env=env | extra,
            capture_output=True,
            text=True,
            timeout=60,
        )

    listed = dlq(KRING_NATS_TLS_CA_FILE=str(ca))
    assert listed.returncode == 0, listed.stderr
    refused = dlq()
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert "KRING_NATS_TLS_CA_FILE names its CA" in refused.stderr
    bad = dlq(KRING_NATS_TLS_CA_FILE="/nowhere/ca.pem")
    assert bad.returncode != 0 and "KRING_NATS_TLS_CA_FILE" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr


def test_a_ca_file_that_is_not_one_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    for named in (tmp_path / "ca.pem", tmp_path / "missing.pem"):
        with pytest.raises(ValidationError) as error:
            CoordinationSettings(oidc_issuer="http://issuer.invalid", nats_tls_ca_file=named)
        assert problem_line(error.value) == (
            "KRING_NATS_TLS_CA_FILE: Value error, expected a readable PEM file of CA certificates"
        )
