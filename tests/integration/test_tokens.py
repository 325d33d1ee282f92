"""Bearer tokens, checked by a real service against a key set served over real HTTP: a valid
token gets in; expired, not yet valid, for another audience, from another issuer, signed by a key
the issuer does not list, tampered with, ``alg: none``, HS256 signed with the public key, or
without ``exp`` or ``sub``: each 401 saying why, never 5xx. Roles from a configured claim
(Keycloak's ``realm_access.roles``); ES256 beside RS256; a flood of made-up key ids costs the
issuer one fetch; a rotated key is fetched; an issuer that cannot be reached is 503."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from services.intake.bootstrap import build
from services.intake.settings import IntakeSettings
from shared.runtime import build_service
from shared.tokens import TokenValidator
from tests.tokens import JwksServer, Mint, public_jwk_of

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
STRANGER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
MANAGER = {"roles": ["regional_manager"], "kring_regions": ["Utrecht"]}


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    server = JwksServer([public_jwk_of(RSA_KEY, "rsa-1"), public_jwk_of(EC_KEY, "ec-1")]).start()
    yield server
    server.stop()


@pytest.fixture
def mint(jwks: JwksServer) -> Mint:
    made = Mint(RSA_KEY, jwks.url)
    made.kid = "rsa-1"
    return made


class Service:
    def __init__(self, http: httpx.AsyncClient, validator: TokenValidator) -> None:
        self.http, self.validator = http, validator

    async def list_as(self, token: str) -> httpx.Response:
        return await self.http.get("/cases", headers={"Authorization": f"Bearer {token}"})


async def serving(tmp_path: Path, jwks: JwksServer, **settings: Any) -> AsyncIterator[Service]:
    definition = build(
        IntakeSettings(
            nats_url="nats://127.0.0.1:1", data_dir=tmp_path, oidc_issuer=jwks.url, **settings
        )
    )
    api = build_service(definition).api
    transport = httpx.ASGITransport(app=api)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            yield Service(http, api.state.tokens)
    finally:
        definition.app.close()


@pytest.fixture
async def intake(tmp_path: Path, jwks: JwksServer) -> AsyncIterator[Service]:
    async for service in serving(tmp_path, jwks):
        yield service


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_with_public_key(claims: dict[str, Any], kid: str) -> str:
    """The algorithm-confusion attack: the RSA public key (as PEM) used as an HMAC secret."""
    public = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = b64(json.dumps(claims).encode())
    signature = hmac.new(public, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["roles"] = ["operator", "regional_manager"]
    return f"{header}.{b64(json.dumps(claims).encode())}.{signature}"


async def test_a_valid_token_gets_in_and_every_broken_one_is_401_saying_why(
    intake: Service, mint: Mint
) -> None:
    now = int(time.time())
    valid = mint.claims("anna", **{"roles": ["regional_manager"], "regions": ["Utrecht"]})
    assert (await intake.list_as(mint.sign(valid))).status_code == 200
    without_exp = {k: v for k, v in valid.items() if k != "exp"}
    without_sub = {k: v for k, v in valid.items() if k != "sub"}
    broken = {
        "expired": mint.sign(valid | {"exp": now - 120, "iat": now - 720}),
        "not yet valid": mint.sign(valid | {"nbf": now + 120}),
        "another audience": mint.sign(valid | {"aud": "someone-else"}),
        "another issuer": mint.sign(valid | {"iss": "http://127.0.0.1:1/realms/evil"}),
        "an unknown key id": mint.sign(valid, key=STRANGER, header={"kid": "rsa-2"}),
        "a key the issuer lists not under its id": mint.sign(valid, key=STRANGER),
        "a tampered payload": tampered(mint.sign(valid)),
        "alg none": jwt.encode(valid, None, algorithm="none", headers={"kid": "rsa-1"}),
        "HS256 with the public key": hs256_with_public_key(valid, "rsa-1"),
        "RS256 under the EC key's id": mint.sign(valid, header={"kid": "ec-1"}),
        "no exp": mint.sign(without_exp),
        "no sub": mint.sign(without_sub),
        "not a JWT": "eyJhbGciOi.not-a-token",
        "empty": "",
    }
    reasons = {}
    for what, token in broken.items():
        response = await intake.list_as(token)
        assert response.status_code == 401, (what, response.status_code, response.text)
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), what
        reasons[what] = response.json()["detail"]
        assert token[10:40] not in response.text or not token, what  # never echoed
    assert "expired" in reasons["expired"]
    assert "not valid yet" in reasons["not yet valid"]
    assert "audience" in reasons["another audience"]
    assert "issuer" in reasons["another issuer"]
    assert "does not list" in reasons["an unknown key id"]
    assert "signature" in reasons["a tampered payload"]
    assert (
        "algorithm" in reasons["alg none"] and "algorithm" in reasons["HS256 with the public key"]
    )


async def test_an_es256_token_of_the_issuers_ec_key_gets_in(intake: Service, mint: Mint) -> None:
    claims = mint.claims("bea", roles=["regional_manager"], regions=["Utrecht"])
    token = mint.sign(claims, key=EC_KEY, algorithm="ES256", header={"kid": "ec-1"})
    assert (await intake.list_as(token)).status_code == 200


async def test_only_the_configured_algorithms_are_accepted(
    tmp_path: Path, jwks: JwksServer, mint: Mint
) -> None:
    claims = mint.claims("bea", roles=["regional_manager"], regions=["Utrecht"])
    es256 = mint.sign(claims, key=EC_KEY, algorithm="ES256", header={"kid": "ec-1"})
    async for intake in serving(tmp_path, jwks, oidc_algorithms="RS256"):
        response = await intake.list_as(es256)
        assert response.status_code == 401 and "algorithm" in response.json()["detail"]
        assert (await intake.list_as(mint.sign(claims))).status_code == 200


def test_a_symmetric_algorithm_cannot_be_configured() -> None:
    with pytest.raises(ValueError, match="only asymmetric"):
        IntakeSettings(oidc_issuer="http://127.0.0.1:1", oidc_algorithms="RS256,HS256")


async def test_roles_come_from_the_claim_configured_keycloaks_too(
    tmp_path: Path, jwks: JwksServer, mint: Mint
) -> None:
    keycloak = mint.claims("anna", realm_access={"roles": ["regional_manager", "offline_access"]})
    keycloak["kring_regions"] = ["Utrecht"]
    top_level = mint.claims("anna", roles=["regional_manager"], regions=["Utrecht"])
    async for intake in serving(tmp_path, jwks, oidc_roles_claim="realm_access.roles"):
        assert (await intake.list_as(mint.sign(keycloak))).status_code == 200
        refused = await intake.list_as(mint.sign(top_level))  # roles elsewhere count for nothing
        assert refused.status_code == 403 and "regional_manager" in refused.json()["detail"]
    async for intake in serving(tmp_path / "default", jwks):
        assert (await intake.list_as(mint.sign(top_level))).status_code == 200
        assert (await intake.list_as(mint.sign(keycloak))).status_code == 403


async def test_system_never_comes_from_a_token(intake: Service, mint: Mint) -> None:
    system = mint.claims("intake", roles=["system"], regions=["Utrecht"])
    response = await intake.list_as(mint.sign(system))
    assert response.status_code == 403


async def test_a_flood_of_made_up_key_ids_costs_the_issuer_one_fetch(
    intake: Service, mint: Mint, jwks: JwksServer
) -> None:
    valid = mint.claims("anna", roles=["regional_manager"], regions=["Utrecht"])
    assert (await intake.list_as(mint.sign(valid))).status_code == 200
    assert jwks.fetches == 1
    # Let the cooldown pass once, so the flood may trigger its one fetch.
    intake.validator.config = replace(intake.validator.config, refresh_cooldown_seconds=0.0)
    first = await intake.list_as(mint.sign(valid, key=STRANGER, header={"kid": "made-up-0"}))
    assert first.status_code == 401 and jwks.fetches == 2
    intake.validator.config = replace(intake.validator.config, refresh_cooldown_seconds=30.0)
    for n in range(1, 100):
        kid = f"made-up-{n}-{secrets.token_hex(4)}"
        response = await intake.list_as(mint.sign(valid, key=STRANGER, header={"kid": kid}))
        assert response.status_code == 401
    assert jwks.fetches == 2
    assert (await intake.list_as(mint.sign(valid))).status_code == 200


async def test_a_rotated_key_is_fetched_once_it_is_used(
    intake: Service, mint: Mint, jwks: JwksServer
) -> None:
    valid = mint.claims("anna", roles=["regional_manager"], regions=["Utrecht"])
    assert (await intake.list_as(mint.sign(valid))).status_code == 200
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks.keys = [public_jwk_of(new_key, "rsa-2")]  # the issuer rotated: the old key is gone
    intake.validator.config = replace(intake.validator.config, refresh_cooldown_seconds=0.0)
    rotated = mint.sign(valid, key=new_key, header={"kid": "rsa-2"})
    assert (await intake.list_as(rotated)).status_code == 200
    assert jwks.fetches == 2
    # A token of the withdrawn key, not seen before, is out at once (one seen within the last
    # minute is remembered as checked for at most that minute).
    fresh = mint.claims("anna", roles=["regional_manager"], regions=["Utrecht"])
    assert (await intake.list_as(mint.sign(fresh))).status_code == 401


async def test_an_issuer_that_cannot_be_reached_is_503_not_401_or_500(
    tmp_path: Path, jwks: JwksServer, mint: Mint
) -> None:
    valid = mint.sign(mint.claims("anna", roles=["regional_manager"], regions=["Utrecht"]))
    jwks.stop()
    async for intake in serving(tmp_path, jwks):
        response = await intake.list_as(valid)
        assert response.status_code == 503, response.text
        assert "try again" in response.json()["detail"]
        assert (await intake.list_as("")).status_code == 401  # no token is still no token


async def test_the_openapi_document_names_the_bearer_scheme(intake: Service) -> None:
    document = (await intake.http.get("/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": schemes["HTTPBearer"]["description"],
    }
    operation = document["paths"]["/cases/{case_id}"]["get"]
    assert operation["security"] == [{"HTTPBearer": []}]
    assert "403" in operation["responses"] and "401" in operation["responses"]
    assert "security" not in document["paths"]["/health/live"]["get"]
