"""Signing people in through the OIDC issuer, and keeping who they are on the server.

The authorization code flow with PKCE (S256), a ``state`` bound to the browser by a cookie of
its own and a ``nonce`` checked in the ID token; the ``iss`` the issuer hands back is checked
too (RFC 9207). The tokens stay in this process's memory, in a session the browser knows only by
a random id in an ``HttpOnly``, ``SameSite=Lax`` cookie (``Secure`` behind https): no token
ever reaches the browser, and nothing of a session is written to disk. A session ends when its
token expires, after ``KRING_CONSOLE_IDLE_MINUTES`` without a request, on signing out, and when
the console restarts (everyone signs in again).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from services.console.settings import ConsoleSettings
from shared.identity import Principal
from shared.logging import get_logger
from shared.tokens import IdentityUnavailableError, InvalidTokenError, TokenValidator

log = get_logger(__name__)

SESSION_COOKIE = "kring_session"
LOGIN_COOKIE = "kring_login"
#: A sign-in must come back from the issuer within this long.
LOGIN_SECONDS = 600.0
#: At most this many sign-ins under way and sessions at once: a flood of /login costs memory
#: up to here, then the oldest go.
MAX_LOGINS = 10_000
MAX_SESSIONS = 10_000


class SignInError(Exception):
    """A sign-in that cannot complete; the message says why (never what a token held)."""


@dataclass
class LoginAttempt:
    state: str
    nonce: str
    verifier: str
    #: Where to go once signed in (a path of the console's own).
    next_path: str
    expires: float

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Session:
    id: str
    principal: Principal
    token: str
    expires: float
    idle_seconds: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    last_seen: float = field(default_factory=time.time)
    #: Said once on the next page (a message id of the catalogues): "The plan was saved."
    notices: list[str] = field(default_factory=list)

    def alive(self, now: float) -> bool:
        return now < self.expires and now - self.last_seen < self.idle_seconds


class Sessions:
    """Sign-ins under way and signed-in sessions, in memory."""

    def __init__(self, idle_seconds: float) -> None:
        self.idle_seconds = idle_seconds
        self._logins: OrderedDict[str, LoginAttempt] = OrderedDict()
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def start_login(self, next_path: str) -> LoginAttempt:
        attempt = LoginAttempt(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(64),
            next_path=next_path,
            expires=time.time() + LOGIN_SECONDS,
        )
        self._logins[attempt.state] = attempt
        while len(self._logins) > MAX_LOGINS:
            self._logins.popitem(last=False)
        return attempt

    def take_login(self, state: str) -> LoginAttempt | None:
        """The attempt ``state`` names, once; None if unknown, used or expired."""
        attempt = self._logins.pop(state, None)
        if attempt is None or attempt.expires < time.time():
            return None
        return attempt

    def create(self, principal: Principal, token: str, expires: float) -> Session:
        session = Session(
            id=secrets.token_urlsafe(32),
            principal=principal,
            token=token,
            expires=expires,
            idle_seconds=self.idle_seconds,
        )
        self._sessions[session.id] = session
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        now = time.time()
        if session is None:
            return None
        if not session.alive(now):
            self._sessions.pop(session_id, None)
            return None
        session.last_seen = now
        return session

    def end(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(session_id, None)


class Issuer:
    """The OIDC issuer as a client that signs people in sees it."""

    def __init__(self, settings: ConsoleSettings, tokens: TokenValidator) -> None:
        self.settings = settings
        self.tokens = tokens
        self._discovery: dict[str, Any] | None = None

    async def discovery(self) -> dict[str, Any]:
        """The issuer's discovery document, read where the server reaches the issuer; the
        endpoints the server calls itself (the token endpoint) are moved to that address, the
        one the browser is sent to (the authorization endpoint) stays the issuer's own."""
        if self._discovery is None:
            named = self.settings.oidc_issuer.rstrip("/")
            reached = (self.settings.console_issuer_url or named).rstrip("/")
            url = reached + "/.well-known/openid-configuration"
            try:
                async with httpx.AsyncClient(timeout=5, trust_env=False) as http:
                    response = await http.get(url)
                    response.raise_for_status()
                    document = response.json()
            except (httpx.HTTPError, ValueError) as error:
                log.warning("console.issuer_unreachable", error=type(error).__name__)
                raise SignInError(
                    "the sign-in service cannot be reached; try again shortly"
                ) from None
            if document.get("issuer") != self.settings.oidc_issuer:
                raise SignInError("the issuer's discovery document names another issuer")
            token_endpoint = document.get("token_endpoint")
            if isinstance(token_endpoint, str) and token_endpoint.startswith(named + "/"):
                document["token_endpoint"] = reached + token_endpoint[len(named) :]
            self._discovery = document
        return self._discovery

    async def authorize_url(self, attempt: LoginAttempt) -> str:
        endpoint = (await self.discovery()).get("authorization_endpoint")
        if not isinstance(endpoint, str):
            raise SignInError("the issuer names no authorization endpoint")
        query = {
            "response_type": "code",
            "client_id": self.settings.console_client_id,
            "redirect_uri": self.settings.redirect_uri,
            "scope": "openid profile",
            "state": attempt.state,
            "nonce": attempt.nonce,
            "code_challenge": attempt.challenge,
            "code_challenge_method": "S256",
        }
        return f"{endpoint}?{urlencode(query)}"

    async def sign_in(self, code: str, attempt: LoginAttempt) -> tuple[Principal, str, float]:
        """Exchange the code for tokens; check the ID token's nonce and the access token as
        the services will. Returns who it is, the access token and when it expires."""
        discovery = await self.discovery()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.settings.redirect_uri,
            "client_id": self.settings.console_client_id,
            "code_verifier": attempt.verifier,
        }
        secret = self.settings.console_client_secret
        try:
            async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
                response = await http.post(
                    str(discovery["token_endpoint"]),
                    data=form,
                    auth=(self.settings.console_client_id, secret.get_secret_value())
                    if secret is not None
                    else httpx.USE_CLIENT_DEFAULT,
                )
        except (httpx.HTTPError, KeyError) as error:
            log.warning("console.token_endpoint_unreachable", error=type(error).__name__)
            raise SignInError("the sign-in service cannot be reached; try again shortly") from None
        if response.status_code != 200:
            log.warning("console.code_refused", status=response.status_code)
            raise SignInError("the sign-in was refused by the issuer; please sign in again")
        body = response.json()
        access, id_token = body.get("access_token"), body.get("id_token")
        if not isinstance(access, str) or not isinstance(id_token, str):
            raise SignInError("the issuer answered without the tokens a sign-in needs")
        try:
            claims = await self.tokens.id_token_claims(id_token, self.settings.console_client_id)
            principal = await self.tokens.principal(access)
        except InvalidTokenError as error:
            raise SignInError(f"the issuer's tokens do not verify: {error}") from None
        except IdentityUnavailableError as error:
            raise SignInError(str(error)) from None
        if not secrets.compare_digest(str(claims.get("nonce", "")), attempt.nonce):
            raise SignInError("the sign-in does not match the one started here; sign in again")
        lifetime = body.get("expires_in")
        expires = time.time() + (float(lifetime) if isinstance(lifetime, int | float) else 300.0)
        return principal, access, expires
