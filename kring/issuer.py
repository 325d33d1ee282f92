"""The development issuer: an OpenID Connect issuer for this machine, so ``kring run`` needs
nothing else. A deployment names a real one (Keycloak; README says how).

It signs with an RSA key made once under ``<data>/keys/`` (readable by this user only) and
serves, on loopback only unless forced:

- ``/.well-known/openid-configuration`` and ``/jwks.json``: what the services validate with;
- ``POST /token`` with three grants:
  - ``urn:kring:params:oauth:grant-type:dev-login``: a token for whoever a developer says they
    are (``name``, ``role``, ``region``, ``coordinator``, ``organisation``, ``participant``): what
    ``kring login``, ``make demo``, the tests and the benchmark use. Only a development issuer has
    it: anyone who can reach it may be anyone, which is why it stays on loopback;
  - ``client_credentials`` for registered clients with a secret (their roles are registered):
    those of ``KRING_ISSUER_CLIENTS``, and one file per client in ``KRING_ISSUER_CLIENTS_DIR``
    (default ``<data>/keys/clients``), read at every token request, so a client added there
    (``kring partners add`` adds a partner's) is known at once, without a restart; such a file
    keeps only the secret's SHA-256 (the secret is 32 random bytes: no guessing it back);
  - ``authorization_code`` with PKCE (S256 only) for registered clients: ``/authorize`` shows a
    page where the developer picks who they are, checks the ``redirect_uri`` against the
    client's registered ones exactly (a wrong one is shown an error, never redirected to),
    hands the ``state`` back, and the code is good once, for a minute, to the client and
    redirect it was made for, with the verifier that matches its challenge.

Run it alone with ``python -m kring.issuer`` (``KRING_ISSUER_PORT``, default 8005).
"""

from __future__ import annotations

import base64
import hashlib
import html
import ipaddress
import json
import os
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.actor import TOKEN_ROLES
from shared.http import KEEP_ALIVE_SECONDS

DEV_LOGIN = "urn:kring:params:oauth:grant-type:dev-login"
CODE_SECONDS = 60.0
KEY_FILE = "issuer-signing-key.pem"
FORM = "application/x-www-form-urlencoded"
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


class Client(BaseModel):
    """A registered client: a secret for ``client_credentials`` (and a confidential code
    client), redirect URIs for ``authorization_code``, the roles its own tokens carry."""

    client_id: str = Field(min_length=1, max_length=200)
    client_secret: str | None = Field(default=None, min_length=16)
    #: The secret's SHA-256 (hex), where only that is kept (a client file).
    client_secret_sha256: str | None = Field(default=None, pattern="^[0-9a-f]{64}$")
    redirect_uris: list[str] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    organisation: str | None = None


#: The console (built later) logs in with the code flow: a public client, PKCE, its callback.
CONSOLE = Client(
    client_id="kring-console",
    redirect_uris=[
        "http://127.0.0.1:8000/auth/callback",
        "http://localhost:8000/auth/callback",
    ],
)


class IssuerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KRING_", extra="ignore", frozen=True)

    data_dir: Path = Path("data")
    issuer_host: str = "127.0.0.1"
    issuer_port: int = Field(8005, ge=0, le=65535)
    #: The issuer URL put in tokens (``iss``); by default where it listens.
    issuer_url: str | None = None
    #: Serve on a non-loopback address all the same (it hands out any role to anyone).
    issuer_force: bool = False
    oidc_audience: str = "kring"
    issuer_token_seconds: int = Field(3600, ge=30, le=7 * 86400)
    #: More clients, as JSON: ``[{"client_id", "client_secret", "redirect_uris", "roles"}]``.
    issuer_clients: str | None = None
    #: A folder of clients, one JSON file each (``<client_id>.json``), read at every token
    #: request; default ``<data>/keys/clients``.
    issuer_clients_dir: Path | None = None

    @field_validator("issuer_url")
    @classmethod
    def http_url(cls, value: str | None) -> str | None:
        parts = urlsplit(value or "http://x")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an https:// (or http://) URL")
        return value

    def url(self) -> str:
        if self.issuer_url:
            return self.issuer_url.rstrip("/")
        host = f"[{self.issuer_host}]" if ":" in self.issuer_host else self.issuer_host
        return f"http://{host}:{self.issuer_port}"

    def clients(self) -> dict[str, Client]:
        clients = {CONSOLE.client_id: CONSOLE}
        if self.issuer_clients:
            for entry in json.loads(self.issuer_clients):
                client = Client.model_validate(entry)
                clients[client.client_id] = client
        return clients

    def clients_dir(self) -> Path:
        return self.issuer_clients_dir or clients_dir(self.data_dir)


def clients_dir(data_dir: Path) -> Path:
    """Where ``kring run``'s issuer finds the clients added while it runs."""
    return data_dir / "keys" / "clients"


def client_files(folder: Path) -> dict[str, Client]:
    """The clients of ``folder`` (one ``*.json`` each); a file that is not one is skipped."""
    found: dict[str, Client] = {}
    try:
        paths = sorted(folder.glob("*.json"))
    except OSError:
        return found
    for path in paths:
        try:
            client = Client.model_validate_json(path.read_bytes())
        except (OSError, ValidationError):
            continue
        found[client.client_id] = client
    return found


def write_client_file(folder: Path, client: Client) -> Path:
    """Add (or replace) a client in ``folder``, readable by this user only."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{client.client_id}.json"
    draft = folder / f".{client.client_id}.json.{os.getpid()}"
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(client.model_dump_json(exclude_none=True))
    draft.replace(path)
    return path


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- the key ---------------------------------------------------------------------------------
def signing_key(data_dir: Path) -> rsa.RSAPrivateKey:
    """The issuer's key, made once (0600, in a 0700 folder) and read back on every start."""
    keys = data_dir / "keys"
    keys.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = keys / KEY_FILE
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another start made it at the same moment: use theirs
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise SystemExit(f"{path} holds no RSA private key")
    return loaded


def public_jwk(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    # RFC 7638: the key id is the key's own thumbprint, so a new key is a new kid.
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    kid = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return jwk | {"kid": kid, "use": "sig", "alg": "RS256"}


@dataclass
class Signer:
    key: rsa.RSAPrivateKey
    issuer: str
    audience: str
    lifetime: int
    jwk: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.jwk = public_jwk(self.key)

    def sign(self, claims: Mapping[str, Any], audience: str | None = None) -> str:
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": audience or self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime,
            "jti": secrets.token_urlsafe(12),
            **claims,
        }
        return jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": self.jwk["kid"]})


# -- who someone says they are ---------------------------------------------------------------
class IdentityError(ValueError):
    """A form names a role Kring does not know, or none, or is malformed: 400 invalid_request."""


def person_claims(form: Mapping[str, list[str]]) -> dict[str, Any]:
    """The claims of a developer's chosen identity: ``name``, ``role`` (one or more),
    ``region``/``coordinator``/``organisation``/``participant`` as needed."""
    name = _one(form, "name")
    if not name:
        raise IdentityError("name who you are (name)")
    roles = [r.strip() for value in form.get("role", []) for r in value.split(",") if r.strip()]
    unknown = [r for r in roles if r not in TOKEN_ROLES]
    if not roles or unknown:
        known = ", ".join(sorted(TOKEN_ROLES))
        raise IdentityError(f"role must be one or more of {known}")
    claims: dict[str, Any] = {"sub": name, "name": name, "roles": roles}
    regions = [r.strip() for value in form.get("region", []) for r in value.split(",") if r.strip()]
    if regions:
        claims["kring_regions"] = regions
    for field_name, claim in (
        ("coordinator", "kring_coordinator_id"),
        ("organisation", "kring_organisation"),
    ):
        value = _one(form, field_name)
        if value:
            claims[claim] = value
    participations = [p.strip() for p in form.get("participant", []) if p.strip()]
    if participations:
        claims["kring_participant"] = participations
    return claims


def _one(form: Mapping[str, list[str]], name: str) -> str:
    values = form.get(name) or [""]
    return values[0].strip()[:200]


# -- the application -------------------------------------------------------------------------
@dataclass
class PendingCode:
    client_id: str
    redirect_uri: str
    challenge: str
    claims: dict[str, Any]
    nonce: str | None
    expires: float


class CodeStore:
    """Authorization codes: each good once, for a minute."""

    def __init__(self) -> None:
        self._codes: dict[str, PendingCode] = {}
        self._lock = threading.Lock()

    def issue(self, pending: PendingCode) -> str:
        code = secrets.token_urlsafe(32)
        with self._lock:
            now = time.monotonic()
            self._codes = {c: p for c, p in self._codes.items() if p.expires > now}
            self._codes[code] = pending
        return code

    def take(self, code: str) -> PendingCode | None:
        with self._lock:
            pending = self._codes.pop(code, None)
        if pending is None or pending.expires < time.monotonic():
            return None
        return pending


def oauth_error(error: str, description: str, status: int = 400) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


def build_issuer(settings: IssuerSettings) -> FastAPI:
    signer = Signer(
        signing_key(settings.data_dir),
        issuer=settings.url(),
        audience=settings.oidc_audience,
        lifetime=settings.issuer_token_seconds,
    )
    clients = settings.clients()
    codes = CodeStore()
    issuer = signer.issuer
    api = FastAPI(title="Kring development issuer", docs_url=None, redoc_url=None)
    api.state.signer = signer

    @api.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/.well-known/openid-configuration")
    async def discovery() -> dict[str, Any]:
        return {
            "issuer": issuer,
            "jwks_uri": f"{issuer}/jwks.json",
            "token_endpoint": f"{issuer}/token",
            "authorization_endpoint": f"{issuer}/authorize",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "client_credentials", DEV_LOGIN],
            "code_challenge_methods_supported": ["S256"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
        }

    @api.get("/jwks.json")
    async def jwks() -> dict[str, Any]:
        return {"keys": [signer.jwk]}

    @api.post("/token")
    async def token(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != FORM:
            return oauth_error("invalid_request", f"the token endpoint takes {FORM}")
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        grant = _one(form, "grant_type")
        if grant == DEV_LOGIN:
            try:
                claims = person_claims(form)
            except IdentityError as error:
                return oauth_error("invalid_request", str(error))
            return _token_answer(signer.sign(claims | {"azp": "kring-dev-login"}), signer)
        client, problem = _client_of(
            request, form, {**clients, **client_files(settings.clients_dir())}
        )
        if grant == "client_credentials":
            if client is None or (client.client_secret or client.client_secret_sha256) is None:
                return oauth_error("invalid_client", problem or "a confidential client", 401)
            claims = {"sub": client.client_id, "name": client.client_id, "roles": client.roles}
            if client.regions:
                claims["kring_regions"] = client.regions
            if client.organisation:
                claims["kring_organisation"] = client.organisation
            return _token_answer(signer.sign(claims | {"azp": client.client_id}), signer)
        if grant == "authorization_code":
            if client is None:
                return oauth_error("invalid_client", problem or "unknown client", 401)
            pending = codes.take(_one(form, "code"))
            if pending is None or pending.client_id != client.client_id:
                return oauth_error("invalid_grant", "the code is unknown, used or expired")
            if _one(form, "redirect_uri") != pending.redirect_uri:
                return oauth_error("invalid_grant", "redirect_uri differs from the request's")
            if _challenge(_one(form, "code_verifier")) != pending.challenge:
                return oauth_error("invalid_grant", "the code_verifier does not match")
            access = signer.sign(pending.claims | {"azp": client.client_id})
            id_claims = pending.claims | ({"nonce": pending.nonce} if pending.nonce else {})
            id_token = signer.sign(id_claims | {"azp": client.client_id}, audience=client.client_id)
            return _token_answer(access, signer, id_token=id_token)
        return oauth_error("unsupported_grant_type", "grant_type is not supported here")

    @api.get("/authorize")
    async def authorize(request: Request) -> Response:
        form = {k: [v] for k, v in request.query_params.items()}
        redirect_uri, refused = _check_authorization(form, clients)
        if refused or redirect_uri is None:
            return _page(_error_page(refused or "refused"), 400)
        # The sign-in form posts here and is answered with a redirect to the client: browsers
        # hold that redirect to form-action too, so the client's (registered) origin is named.
        return _page(_login_page(form), redirect_to=redirect_uri)

    @api.post("/authorize")
    async def authorize_as(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        redirect_uri, refused = _check_authorization(form, clients)
        if redirect_uri is None:
            return _page(_error_page(refused or "refused"), 400)
        state = _one(form, "state")
        try:
            claims = person_claims(form)
        except IdentityError as error:
            return _page(_login_page(form, problem=str(error)), 400, redirect_to=redirect_uri)
        code = codes.issue(
            PendingCode(
                client_id=_one(form, "client_id"),
                redirect_uri=redirect_uri,
                challenge=_one(form, "code_challenge"),
                claims=claims,
                nonce=_one(form, "nonce") or None,
                expires=time.monotonic() + CODE_SECONDS,
            )
        )
        query = {"code": code, **({"state": state} if state else {}), "iss": issuer}
        separator = "&" if urlsplit(redirect_uri).query else "?"
        return RedirectResponse(f"{redirect_uri}{separator}{urlencode(query)}", status_code=303)

    return api


def _token_answer(token: str, signer: Signer, id_token: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": signer.lifetime,
    }
    if id_token:
        body["id_token"] = id_token
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _client_of(
    request: Request, form: Mapping[str, list[str]], clients: Mapping[str, Client]
) -> tuple[Client | None, str | None]:
    """The authenticated client: HTTP Basic or form fields; a public client by id alone."""
    client_id, secret = _one(form, "client_id"), _one(form, "client_secret") or None
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:]).decode()
        except ValueError:
            return None, "malformed Basic credentials"
        client_id, _, secret = decoded.partition(":")
    client = clients.get(client_id)
    if client is None:
        return None, "unknown client"
    if client.client_secret is not None and (
        secret is None or not secrets.compare_digest(secret, client.client_secret)
    ):
        return None, "wrong client credentials"
    if client.client_secret_sha256 is not None and (
        secret is None
        or not secrets.compare_digest(secret_digest(secret), client.client_secret_sha256)
    ):
        return None, "wrong client credentials"
    return client, None


def _check_authorization(
    form: Mapping[str, list[str]], clients: Mapping[str, Client]
) -> tuple[str | None, str | None]:
    """(the redirect URI to send the code to, None), or (None, why the request is refused):
    shown as a page, never redirected to (RFC 6749 4.1.2.1)."""
    client = clients.get(_one(form, "client_id"))
    redirect_uri = _one(form, "redirect_uri")
    if client is None:
        return None, "unknown client_id"
    if redirect_uri not in client.redirect_uris:
        return None, "redirect_uri is not one registered for this client"
    if _one(form, "response_type") != "code":
        return None, "response_type must be code"
    if _one(form, "code_challenge_method") != "S256" or len(_one(form, "code_challenge")) < 43:
        return None, "PKCE is required: code_challenge with code_challenge_method=S256"
    return redirect_uri, None


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _page(body: str, status: int = 200, redirect_to: str | None = None) -> HTMLResponse:
    policy = PAGE_CSP
    if redirect_to is not None:
        parts = urlsplit(redirect_to)
        policy = policy.replace(
            "form-action 'self'", f"form-action 'self' {parts.scheme}://{parts.netloc}"
        )
    return HTMLResponse(
        body,
        status_code=status,
        headers={
            "Content-Security-Policy": policy,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
        },
    )


def _error_page(problem: str) -> str:
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>Kring sign-in</title>"
        f"<h1>This sign-in request is refused</h1><p>{html.escape(problem)}</p></html>"
    )


def _login_page(form: Mapping[str, list[str]], problem: str | None = None) -> str:
    carried = "".join(
        f'<input type=hidden name="{name}" value="{html.escape(_one(form, name))}">'
        for name in (
            "client_id",
            "redirect_uri",
            "response_type",
            "state",
            "code_challenge",
            "code_challenge_method",
            "nonce",
            "scope",
        )
    )
    options = "".join(f"<option>{html.escape(r)}</option>" for r in sorted(TOKEN_ROLES))
    warning = f"<p role=alert>{html.escape(problem)}</p>" if problem else ""
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>Kring sign-in</title>"
        "<style>body{font-family:sans-serif;max-width:32em;margin:2em auto}"
        "label{display:block;margin:.6em 0}</style>"
        "<h1>Kring development sign-in</h1>"
        "<p>This issuer is for development: pick who you are.</p>"
        f"{warning}<form method=post action=/authorize>{carried}"
        "<label>Name <input name=name required maxlength=200></label>"
        f"<label>Role <select name=role>{options}</select></label>"
        "<label>Region(s) <input name=region placeholder=Utrecht></label>"
        "<label>Coordinator id <input name=coordinator></label>"
        "<label>Organisation <input name=organisation></label>"
        "<button type=submit>Sign in</button></form></html>"
    )


def main() -> None:
    from shared.settings import problem_line

    try:
        settings = IssuerSettings()
        settings.clients()
    except ValidationError as error:
        raise SystemExit(f"issuer: cannot start: {problem_line(error)}") from None
    except ValueError as error:  # the clients' JSON
        raise SystemExit(f"issuer: cannot start: KRING_ISSUER_CLIENTS: {error}") from None
    if not is_loopback(settings.issuer_host) and not settings.issuer_force:
        raise SystemExit(
            f"issuer: refusing to serve on {settings.issuer_host}: the development issuer gives"
            " anyone who reaches it any role. Bind it to 127.0.0.1, or set KRING_ISSUER_FORCE=1"
            " if you really mean it (a deployment names its own issuer in KRING_OIDC_ISSUER)."
        )
    import uvicorn

    uvicorn.run(
        build_issuer(settings),
        host=settings.issuer_host,
        port=settings.issuer_port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


if __name__ == "__main__":
    main()
