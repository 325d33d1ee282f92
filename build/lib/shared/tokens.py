"""Bearer tokens (OIDC JWTs) checked against the issuer's key set, with PyJWT.

What is checked: the signature, by a key of the issuer's JWKS named by the token's ``kid``; the
algorithm, which must be one configured (asymmetric only: never ``none``, never an HMAC, so a
public key can never be used as a shared secret); ``iss``, ``aud``, ``exp`` (required), ``nbf``;
a subject. The key set is fetched from the issuer (its discovery document names it, unless
``KRING_OIDC_JWKS_URL`` does), cached, and fetched again when a token names a key not in it
(the issuer rotated its keys), but at most once per ``refresh_cooldown_seconds``: a flood of
tokens with made-up key ids costs the issuer one request, not one each. Fetching never blocks
the event loop (httpx, async), and callers waiting for the same fetch share it.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import structlog
from jwt import PyJWK

from shared.identity import ClaimNames, InvalidClaimsError, Principal, principal_from_claims

log = structlog.get_logger(__name__)

#: Asymmetric JWS algorithms PyJWT verifies with a public key. Anything else is refused in the
#: configuration already.
ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
#: Checked tokens remembered (most recent first out last), and for how long at most.
CHECKED_TOKENS = 4096
CHECKED_SECONDS = 60.0
#: The JWK key type each algorithm's key must have.
KEY_TYPES = {"R": "RSA", "P": "RSA", "E": "EC", "Ed": "OKP"}


class InvalidTokenError(Exception):
    """No valid token: 401. The message says why, never what the token held."""


class IdentityUnavailableError(Exception):
    """The issuer's key set cannot be had, so no token can be checked now: 503."""


@dataclass(frozen=True)
class OIDCConfig:
    issuer: str
    audience: str = "kring"
    jwks_url: str | None = None
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    claims: ClaimNames = field(default_factory=ClaimNames)
    #: Clock skew allowed on ``exp`` and ``nbf``.
    leeway_seconds: float = 5.0
    #: The soonest the key set is fetched again for a key id it lacks.
    refresh_cooldown_seconds: float = 30.0
    #: The key set is fetched again after this long even if nothing asked (revoked keys go).
    max_age_seconds: float = 3600.0
    http_timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        bad = sorted(set(self.algorithms) - ASYMMETRIC)
        if bad or not self.algorithms:
            raise ValueError(
                f"only asymmetric algorithms ({', '.join(sorted(ASYMMETRIC))}) may be configured,"
                f" not {', '.join(bad) or 'none'}"
            )


class TokenValidator:
    def __init__(self, config: OIDCConfig) -> None:
        self.config = config
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self._jwks_url = config.jwks_url
        #: One lock per event loop (tests and the fuzzer run the app in more than one).
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        #: How often the key set was fetched (for the tests and ``/metrics``).
        self.fetches = 0
        #: Tokens checked lately: a client sends the same token on every call, and checking its
        #: signature again costs more than the rest of a read. Kept a minute at most, never past
        #: the token's expiry, so a key the issuer withdraws stops working within a minute.
        self._checked: OrderedDict[str, tuple[Principal, float, float]] = OrderedDict()

    async def principal(self, token: str) -> Principal:
        now = time.time()
        known = self._checked.get(token)
        if known is not None:
            principal, expires, checked_at = known
            if now < expires and now - checked_at < CHECKED_SECONDS:
                return principal
            self._checked.pop(token, None)
        principal, expires = await self._check(token)
        self._checked[token] = (principal, expires, now)
        while len(self._checked) > CHECKED_TOKENS:
            self._checked.popitem(last=False)
        return principal

    async def _check(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidTokenError("the token is not a JWT") from None
        algorithm = header.get("alg")
        if algorithm not in self.config.algorithms:
            raise InvalidTokenError("the token's algorithm is not accepted")
        key = await self._key(header.get("kid"), str(algorithm))
        claims = self._decode(token, key, str(algorithm), self.config.audience)
        try:
            principal = principal_from_claims(claims, self.config.claims)
        except InvalidClaimsError as error:
            raise InvalidTokenError(str(error)) from None
        return principal, float(claims["exp"]) + self.config.leeway_seconds

    async def id_token_claims(self, token: str, audience: str) -> dict[str, Any]:
        """An OpenID Connect ID token's claims, checked as an access token is but for
        ``audience`` (the client it was issued to): what a client that signs people in (the
        console) checks its ``nonce`` in. Never remembered."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidTokenError("the token is not a JWT") from None
        algorithm = header.get("alg")
        if algorithm not in self.config.algorithms:
            raise InvalidTokenError("the token's algorithm is not accepted")
        key = await self._key(header.get("kid"), str(algorithm))
        return self._decode(token, key, str(algorithm), audience)

    def _decode(self, token: str, key: PyJWK, algorithm: str, audience: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                audience=audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_seconds,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidTokenError("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidTokenError("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise InvalidTokenError("the token is not for this audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidTokenError("the token is from another issuer") from None
        except jwt.InvalidSignatureError:
            raise InvalidTokenError("the token's signature does not verify") from None
        except jwt.PyJWTError as error:
            raise InvalidTokenError(f"the token is not valid ({type(error).__name__})") from None
        return claims

    # -- the key set ---------------------------------------------------------------------
    async def _key(self, kid: Any, algorithm: str) -> PyJWK:
        now = time.monotonic()
        if self._fetched_at is None or now - self._fetched_at > self.config.max_age_seconds:
            await self._refresh(since=self._fetched_at)
        key = self._find(kid)
        fetched = self._fetched_at
        cooled = fetched is not None and (
            time.monotonic() - fetched >= self.config.refresh_cooldown_seconds
        )
        if key is None and cooled:
            # Perhaps the issuer rotated its keys: once per cooldown, not once per token.
            await self._refresh(since=fetched)
            key = self._find(kid)
        if key is None:
            raise InvalidTokenError("the token is signed by a key the issuer does not list")
        wanted = next(v for k, v in KEY_TYPES.items() if algorithm.startswith(k))
        if key.key_type != wanted:
            raise InvalidTokenError("the token's algorithm does not fit its key")
        return key

    def _find(self, kid: Any) -> PyJWK | None:
        if isinstance(kid, str):
            return self._keys.get(kid)
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))  # an issuer with one key may leave kid out
        return None

    async def _refresh(self, since: float | None) -> None:
        loop = asyncio.get_running_loop()
        lock = self._locks.setdefault(loop, asyncio.Lock())
        async with lock:
            if self._fetched_at != since:
                return  # someone else fetched while this caller waited
            try:
                keys = await self._fetch()
            except (httpx.HTTPError, ValueError) as error:
                log.warning("identity.jwks_unavailable", error=type(error).__name__)
                if not self._keys:
                    raise IdentityUnavailableError(
                        "the identity provider's key set cannot be fetched; try again shortly"
                    ) from None
                # Keep the keys we have; try again after the cooldown.
                self._fetched_at = time.monotonic()
                return
            self._keys, self._fetched_at = keys, time.monotonic()
            self.fetches += 1
            log.info("identity.jwks_fetched", keys=len(keys))

    async def _fetch(self) -> dict[str, PyJWK]:
        timeout = self.config.http_timeout_seconds
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as http:
            if self._jwks_url is None:
                self._jwks_url = await self._discover(http)
            response = await http.get(self._jwks_url)
            response.raise_for_status()
            document = response.json()
        return parse_key_set(document, self.config.algorithms)

    async def _discover(self, http: httpx.AsyncClient) -> str:
        url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        response = await http.get(url)
        response.raise_for_status()
        discovery = response.json()
        if discovery.get("issuer") != self.config.issuer:
            raise ValueError("the discovery document names another issuer")
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise ValueError("the discovery document names no jwks_uri")
        return jwks_uri


def parse_key_set(document: Any, algorithms: tuple[str, ...]) -> dict[str, PyJWK]:
    """The signing keys of a JWKS document, by key id; keys for encryption, of an algorithm not
    configured, or that PyJWT cannot read are left out."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys: dict[str, PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, Mapping) or entry.get("use", "sig") != "sig":
            continue
        if "alg" in entry and entry["alg"] not in algorithms:
            continue
        try:
            key = PyJWK(dict(entry))
        except jwt.PyJWTError:
            continue
        kid = entry.get("kid")
        keys[kid if isinstance(kid, str) else ""] = key
    return keys
