"""Real tokens for tests: signed with the development issuer's own key (the one the session's
issuer process made and serves in its JWKS over HTTP), or with keys made here to break rules.

``Issuer`` is the development issuer (``kring.issuer``) as its own process on a free port, as
``kring run`` starts it; ``Mint`` signs tokens in this process with its key, so a test needs no
HTTP round trip per token, while every service validates them as in production: against the
issuer's key set, fetched over HTTP.
"""

from __future__ import annotations

import atexit
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kring.issuer import KEY_FILE, public_jwk
from kring.local import wait_for_port
from tests.ports import free_port


class Issuer:
    """The development issuer as its own process; its key under ``data_dir/keys``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, **env: str) -> Issuer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kring.issuer"],
            env=os.environ
            | {
                "KRING_DATA_DIR": str(self.data_dir),
                "KRING_ISSUER_PORT": str(self.port),
                "KRING_ISSUER_HOST": "127.0.0.1",
                # Tokens name where the tests reach it, whatever address it binds.
                "KRING_ISSUER_URL": self.url,
            }
            | env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, timeout=30)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def key(self) -> rsa.RSAPrivateKey:
        key = serialization.load_pem_private_key(
            (self.data_dir / "keys" / KEY_FILE).read_bytes(), password=None
        )
        assert isinstance(key, rsa.RSAPrivateKey)
        return key


class Mint:
    """Tokens as the issuer signs them; ``claims`` and ``header`` override anything."""

    def __init__(self, key: rsa.RSAPrivateKey, issuer: str, audience: str = "kring") -> None:
        self.key = key
        self.kid = public_jwk(key)["kid"]
        self.issuer = issuer
        self.audience = audience

    def claims(
        self,
        name: str,
        roles: Iterable[str] = (),
        *,
        regions: Iterable[str] = (),
        coordinator: str | None = None,
        participant: Iterable[str] = (),
        lifetime: int = 3600,
        **extra: Any,
    ) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": name,
            "name": name,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": secrets.token_hex(8),
            "roles": list(roles),
        }
        if regions:
            claims["kring_regions"] = list(regions)
        if coordinator:
            claims["kring_coordinator_id"] = coordinator
        if participant:
            claims["kring_participant"] = list(participant)
        return claims | extra

    def sign(
        self,
        claims: dict[str, Any],
        *,
        key: Any = None,
        algorithm: str = "RS256",
        header: dict[str, Any] | None = None,
    ) -> str:
        return jwt.encode(
            claims,
            key if key is not None else self.key,
            algorithm=algorithm,
            headers={"kid": self.kid} | (header or {}),
        )

    def token(self, name: str, roles: Iterable[str] = (), **scope: Any) -> str:
        return self.sign(self.claims(name, roles, **scope))


_SESSION: tuple[Issuer, Mint] | None = None


def session_issuer() -> tuple[Issuer, Mint]:
    """The test session's issuer, started on first use (a module's constants may need a token
    at import), stopped when the session ends; every service started from then on validates
    against it (``KRING_OIDC_ISSUER``)."""
    global _SESSION
    if _SESSION is None:
        issuer = Issuer(Path(tempfile.mkdtemp(prefix="kring-issuer-"))).start()
        atexit.register(issuer.stop)
        os.environ["KRING_OIDC_ISSUER"] = issuer.url
        _SESSION = (issuer, Mint(issuer.key(), issuer.url))
    return _SESSION


def mint() -> Mint:
    return session_issuer()[1]


def bearer(name: str, roles: Iterable[str] = (), **scope: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint().token(name, roles, **scope)}"}


class JwksServer:
    """A tiny OIDC issuer's public side over real HTTP (a thread): the discovery document and
    a key set the test controls, counting how often the key set is fetched."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        import http.server
        import json
        import threading

        self.keys = keys
        self.fetches = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body: dict[str, Any]
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": server.url, "jwks_uri": f"{server.url}/jwks.json"}
                elif self.path == "/jwks.json":
                    server.fetches += 1
                    body = {"keys": server.keys}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> JwksServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def public_jwk_of(key: Any, kid: str) -> dict[str, Any]:
    """The JWK of a key's public half (RSA or EC), named ``kid``."""
    import json

    from cryptography.hazmat.primitives.asymmetric import ec

    if isinstance(key, ec.EllipticCurvePrivateKey):
        jwk: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        return jwk | {"kid": kid, "use": "sig", "alg": "ES256"}
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return jwk | {"kid": kid, "use": "sig", "alg": "RS256"}
