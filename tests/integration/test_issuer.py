"""The development issuer as ``kring run`` starts it (its own process, real HTTP): discovery and
key set, the development sign-in, client credentials, and the authorization code flow with PKCE
the console will use — redirect URIs checked exactly, ``state`` handed back, a code good once and
only with its verifier; its key made once, readable by its owner only; never on a non-loopback
address unless forced."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from kring.issuer import DEV_LOGIN, KEY_FILE
from tests.tokens import Issuer

CONSOLE_CALLBACK = "http://127.0.0.1:8000/auth/callback"
SECRET = secrets.token_urlsafe(24)


@pytest.fixture
def own_issuer(tmp_path: Path) -> Iterator[Issuer]:
    clients = [
        {"client_id": "partner-a", "client_secret": SECRET, "roles": ["operator"]},
    ]
    server = Issuer(tmp_path).start(KRING_ISSUER_CLIENTS=json.dumps(clients))
    yield server
    server.stop()


def verify(issuer: Issuer, token: str, audience: str = "kring") -> dict[str, object]:
    keys = httpx.get(f"{issuer.url}/jwks.json").json()["keys"]
    (key,) = keys
    return jwt.decode(
        token,
        key=jwt.PyJWK(key).key,
        algorithms=["RS256"],
        audience=audience,
        issuer=issuer.url,
    )


def test_discovery_names_the_key_set_and_the_endpoints_and_the_key_is_private(
    own_issuer: Issuer,
) -> None:
    issuer = own_issuer
    discovery = httpx.get(f"{issuer.url}/.well-known/openid-configuration").json()
    assert discovery["issuer"] == issuer.url
    assert discovery["jwks_uri"] == f"{issuer.url}/jwks.json"
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    (key,) = httpx.get(discovery["jwks_uri"]).json()["keys"]
    assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig")
    assert "d" not in key  # the public half only
    path = issuer.data_dir / "keys" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_the_key_is_made_once_and_kept_across_restarts(tmp_path: Path) -> None:
    first = Issuer(tmp_path).start()
    try:
        kid = httpx.get(f"{first.url}/jwks.json").json()["keys"][0]["kid"]
    finally:
        first.stop()
    again = Issuer(tmp_path).start()
    try:
        assert httpx.get(f"{again.url}/jwks.json").json()["keys"][0]["kid"] == kid
    finally:
        again.stop()


def test_the_development_sign_in_names_who_the_developer_says(own_issuer: Issuer) -> None:
    issuer = own_issuer
    answer = httpx.post(
        f"{issuer.url}/token",
        data={
            "grant_type": DEV_LOGIN,
            "name": "Anna",
            "role": ["regional_manager", "operator"],
            "region": ["Utrecht", "Zwolle"],
        },
    )
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    claims = verify(issuer, answer.json()["access_token"])
    assert (claims["sub"], claims["roles"], claims["kring_regions"]) == (
        "Anna",
        ["regional_manager", "operator"],
        ["Utrecht", "Zwolle"],
    )
    for bad in ({"role": "king"}, {"role": "system"}, {"role": ""}, {"name": ""}):
        refused = httpx.post(
            f"{issuer.url}/token", data={"grant_type": DEV_LOGIN, "name": "x", "role": "x"} | bad
        )
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_request"


def test_client_credentials_need_the_clients_secret(own_issuer: Issuer) -> None:
    issuer = own_issuer
    good = httpx.post(
        f"{issuer.url}/token",
        data={"grant_type": "client_credentials"},
        auth=("partner-a", SECRET),
    )
    assert good.status_code == 200, good.text
    claims = verify(issuer, good.json()["access_token"])
    assert (claims["sub"], claims["roles"], claims["azp"]) == (
        "partner-a",
        ["operator"],
        "partner-a",
    )
    for auth in (("partner-a", "wrong"), ("nobody", SECRET)):
        refused = httpx.post(
            f"{issuer.url}/token", data={"grant_type": "client_credentials"}, auth=auth
        )
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    public = httpx.post(
        f"{issuer.url}/token",
        data={"grant_type": "client_credentials", "client_id": "kring-console"},
    )
    assert public.status_code == 401  # a public client has no secret to prove itself with


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_the_authorization_code_flow_with_pkce_for_the_console(own_issuer: Issuer) -> None:
    issuer = own_issuer
    verifier, challenge = pkce()
    state = secrets.token_urlsafe(16)
    query = {
        "response_type": "code",
        "client_id": "kring-console",
        "redirect_uri": CONSOLE_CALLBACK,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "nonce": "n-1",
    }
    with httpx.Client(base_url=issuer.url, follow_redirects=False) as http:
        # A redirect URI not registered for the client: an error page, never a redirect.
        for wrong in (
            {"redirect_uri": "http://evil.example/cb"},
            {"redirect_uri": CONSOLE_CALLBACK + "/x"},
            {"client_id": "nobody"},
            {"code_challenge_method": "plain"},
            {"code_challenge": ""},
        ):
            page = http.get("/authorize", params=query | wrong)
            assert page.status_code == 400 and "location" not in page.headers, wrong
        page = http.get("/authorize", params=query)
        assert page.status_code == 200 and "<form" in page.text
        assert "default-src 'none'" in page.headers["Content-Security-Policy"]
        assert page.headers["X-Frame-Options"] == "DENY"
        carried = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page.text))
        assert carried["state"] == state and carried["redirect_uri"] == CONSOLE_CALLBACK

        chosen = carried | {"name": "Anna", "role": "regional_manager", "region": "Utrecht"}
        tampered = chosen | {"redirect_uri": "http://evil.example/cb"}
        assert http.post("/authorize", data=tampered).status_code == 400
        redirected = http.post("/authorize", data=chosen)
        assert redirected.status_code == 303
        location = urlsplit(redirected.headers["location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == CONSOLE_CALLBACK
        back = {k: v[0] for k, v in parse_qs(location.query).items()}
        assert back["state"] == state and back["iss"] == issuer.url

        exchange = {
            "grant_type": "authorization_code",
            "code": back["code"],
            "redirect_uri": CONSOLE_CALLBACK,
            "client_id": "kring-console",
        }
        wrong_verifier = http.post("/token", data=exchange | {"code_verifier": pkce()[0]})
        assert wrong_verifier.json()["error"] == "invalid_grant"
        # The code was spent on the wrong verifier: it is gone (a thief gets one guess).
        spent = http.post("/token", data=exchange | {"code_verifier": verifier})
        assert spent.json()["error"] == "invalid_grant"

        redirected = http.post("/authorize", data=chosen)
        code = parse_qs(urlsplit(redirected.headers["location"]).query)["code"][0]
        other_redirect = exchange | {
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": "http://localhost:8000/auth/callback",
        }
        assert http.post("/token", data=other_redirect).json()["error"] == "invalid_grant"

        redirected = http.post("/authorize", data=chosen)
        code = parse_qs(urlsplit(redirected.headers["location"]).query)["code"][0]
        tokens = http.post("/token", data=exchange | {"code": code, "code_verifier": verifier})
        assert tokens.status_code == 200, tokens.text
        access = verify(issuer, tokens.json()["access_token"])
        assert (access["sub"], access["roles"], access["kring_regions"], access["azp"]) == (
            "Anna",
            ["regional_manager"],
            ["Utrecht"],
            "kring-console",
        )
        id_token = verify(issuer, tokens.json()["id_token"], audience="kring-console")
        assert id_token["nonce"] == "n-1"
        again = http.post("/token", data=exchange | {"code": code, "code_verifier": verifier})
        assert again.json()["error"] == "invalid_grant"  # a code is good once


def test_the_issuer_refuses_a_non_loopback_address_unless_forced(tmp_path: Path) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "kring.issuer"],
        env=os.environ | {"KRING_DATA_DIR": str(tmp_path), "KRING_ISSUER_HOST": "0.0.0.0"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert refused.returncode != 0
    assert "refusing to serve on 0.0.0.0" in refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "keys" / KEY_FILE).exists()
    forced = Issuer(tmp_path).start(KRING_ISSUER_HOST="0.0.0.0", KRING_ISSUER_FORCE="1")
    try:
        assert httpx.get(f"{forced.url}/health/live").status_code == 200
    finally:
        forced.stop()
