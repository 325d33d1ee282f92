"""The console's sign-in and its guard on every form, against a real development issuer over
HTTP: the code flow with PKCE, ``state`` and ``nonce``; tokens kept on the server; cookies that a
script cannot read and another site cannot send along; CSRF on every form; no redirect to
another site; the pages' policy; a setting missing or the scripts not installed at start.

The console runs in this process (ASGI); the issuer is its own process, as ``kring run``
starts it. The services are not running: everything here is refused, or done, before the
console would call one (a form that got past its guard would be answered 503, not 403).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from services.console.bootstrap import build
from services.console.settings import ConsoleSettings
from tests.ports import free_port
from tests.tokens import Issuer

PORT = free_port()
CONSOLE = f"http://127.0.0.1:{PORT}"
NOBODY_THERE = f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Issuer]:
    clients = [{"client_id": "kring-console", "redirect_uris": [f"{CONSOLE}/auth/callback"]}]
    started = Issuer(tmp_path_factory.mktemp("console-issuer")).start(
        KRING_ISSUER_CLIENTS=json.dumps(clients)
    )
    yield started
    started.stop()


def settings(issuer: Issuer, **overrides: str) -> ConsoleSettings:
    values = {
        "oidc_issuer": issuer.url,
        "console_url": CONSOLE,
        **{f"{s}_url": NOBODY_THERE for s in ("intake", "coordination", "plans", "followup")},
        **overrides,
    }
    return ConsoleSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def console_app(issuer: Issuer) -> FastAPI:
    return build(settings(issuer))


@pytest.fixture
async def console(console_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    api = console_app
    async with api.router.lifespan_context(api):
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url=CONSOLE) as http:
            yield http


async def start_sign_in(console: httpx.AsyncClient, next_path: str = "/board") -> httpx.Response:
    started = await console.get("/login", params={"next": next_path})
    assert started.status_code == 303
    return started


async def issuer_answer(
    issuer: Issuer, authorize_url: str, name: str = "Anna", role: str = "regional_manager"
) -> str:
    """What a person does on the issuer's page: say who they are; the callback URL it sends
    the browser to."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
    async with httpx.AsyncClient() as http:
        page = await http.get(authorize_url)
        assert page.status_code == 200 and "development sign-in" in page.text
        # Its form is answered with a redirect to the console: the page's policy allows that
        # one origin (browsers hold redirects after a form to form-action), and no other.
        policy = page.headers["content-security-policy"]
        assert f"form-action 'self' {CONSOLE};" in policy
        answer = await http.post(
            f"{issuer.url}/authorize",
            data=query | {"name": name, "role": role, "region": "Utrecht"},
        )
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


async def sign_in(console: httpx.AsyncClient, issuer: Issuer) -> httpx.Response:
    started = await start_sign_in(console)
    callback = await issuer_answer(issuer, started.headers["location"])
    parts = urlsplit(callback)
    return await console.get(f"{parts.path}?{parts.query}")


def set_cookies(response: httpx.Response) -> dict[str, SimpleCookie]:
    found = {}
    for header in response.headers.get_list("set-cookie"):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        for name in cookie:
            found[name] = cookie
    return found


async def test_the_sign_in_is_a_code_flow_with_pkce_state_and_nonce(
    console: httpx.AsyncClient, issuer: Issuer
) -> None:
    started = await start_sign_in(console)
    location = started.headers["location"]
    assert location.startswith(f"{issuer.url}/authorize?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert query["response_type"] == "code"
    assert query["client_id"] == "kring-console"
    assert query["redirect_uri"] == f"{CONSOLE}/auth/callback"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) >= 43
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32
    # The state is bound to this browser, by a cookie a script cannot read.
    login = set_cookies(started)["kring_login"]["kring_login"]
    assert login.value == query["state"]
    assert login["httponly"] and login["samesite"].lower() == "lax" and login["path"] == "/auth"

    signed = await console.get(_callback_path(await issuer_answer(issuer, location)))
    assert signed.status_code == 303 and signed.headers["location"] == "/board"
    session = set_cookies(signed)["kring_session"]["kring_session"]
    assert session["httponly"] and session["samesite"].lower() == "lax"
    assert not session["secure"]  # served over plain http here; https: below
    # The browser holds a random id, never a token: no JWT in any cookie or header it gets.
    assert not re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", session.value)
    for response in (started, signed):
        assert "eyJ" not in " ".join(v for _, v in response.headers.multi_items())
    home = await console.get("/")
    assert home.status_code == 200 and "Anna" in home.text and "eyJ" not in home.text


def _callback_path(callback: str) -> str:
    parts = urlsplit(callback)
    return f"{parts.path}?{parts.query}"


async def test_where_only_the_browser_reaches_the_issuer_s_own_url_the_server_goes_around(
    tmp_path: Path,
) -> None:
    """A development cluster: the issuer names itself (and the browser reaches it) by a
    port-forward's address, which the console's server cannot reach. With
    KRING_CONSOLE_ISSUER_URL the server reads the discovery document and exchanges the code
    at the issuer's address inside; the browser is still sent to the issuer's own URL, and the
    tokens still name it. Without the setting the sign-in says the issuer cannot be reached."""
    public = "http://issuer.port-forward.invalid:8005"  # nothing answers there
    clients = [{"client_id": "kring-console", "redirect_uris": [f"{CONSOLE}/auth/callback"]}]
    inside = Issuer(tmp_path).start(
        KRING_ISSUER_URL=public, KRING_ISSUER_CLIENTS=json.dumps(clients)
    )
    try:
        given = {"oidc_issuer": public, "oidc_jwks_url": f"{inside.url}/jwks.json"}
        for around in (inside.url, None):
            extra = {"console_issuer_url": around} if around else {}
            api = build(settings(inside, **given, **extra))
            async with api.router.lifespan_context(api):
                transport = httpx.ASGITransport(app=api)
                async with httpx.AsyncClient(transport=transport, base_url=CONSOLE) as console:
                    started = await console.get("/login", params={"next": "/board"})
                    if around is None:
                        assert started.status_code == 400, started.text
                        assert "cannot be reached" in started.text
                        continue
                    location = started.headers["location"]
                    assert location.startswith(f"{public}/authorize?")
                    # The browser's way there (the port-forward) is, here, its real address.
                    callback = await issuer_answer(inside, inside.url + location[len(public) :])
                    signed = await console.get(_callback_path(callback))
                    assert signed.status_code == 303 and signed.headers["location"] == "/board"
                    home = await console.get("/")
                    assert "Anna" in home.text
    finally:
        inside.stop()


async def test_a_callback_this_browser_did_not_start_is_refused(
    console: httpx.AsyncClient, console_app: FastAPI, issuer: Issuer
) -> None:
    started = await start_sign_in(console)
    callback = await issuer_answer(issuer, started.headers["location"])
    # Another browser (no login cookie) brings the same code: refused, no session.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=console_app), base_url=CONSOLE
    ) as stranger:
        refused = await stranger.get(_callback_path(callback))
    assert refused.status_code == 400 and "kring_session" not in set_cookies(refused)
    # A state that is not the one started here: refused.
    forged = re.sub(r"state=[^&]+", "state=forged", callback)
    refused = await console.get(_callback_path(forged))
    assert refused.status_code == 400 and "kring_session" not in set_cookies(refused)
    # The right one works once; the same callback again does not.
    assert (await console.get(_callback_path(callback))).status_code == 303
    console.cookies.set("kring_login", parse_qs(urlsplit(callback).query)["state"][0], path="/auth")
    again = await console.get(_callback_path(callback))
    assert again.status_code == 400


async def test_a_callback_naming_another_issuer_is_refused(
    console: httpx.AsyncClient, issuer: Issuer
) -> None:
    started = await start_sign_in(console)
    callback = await issuer_answer(issuer, started.headers["location"])
    elsewhere = re.sub(r"iss=[^&]+", "iss=https%3A%2F%2Fevil.example", callback)
    refused = await console.get(_callback_path(elsewhere))
    assert refused.status_code == 400 and "kring_session" not in set_cookies(refused)


async def test_every_form_needs_the_session_s_csrf_token(
    console: httpx.AsyncClient, issuer: Issuer
) -> None:
    await sign_in(console, issuer)
    page = await console.get("/requests/new")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token
    form = {"requester_name": "x", "requester_relation": "family", "model": "family"}
    for sent, headers in (
        (form, {}),
        (form | {"csrf": "forged"}, {}),
        (form | {"csrf": token.group(1)}, {"Origin": "https://evil.example"}),
    ):
        refused = await console.post("/requests/new", data=sent, headers=headers)
        assert refused.status_code == 403, refused.text
    # JSON is not a form of the console's either.
    refused = await console.post("/requests/new", json=form | {"csrf": token.group(1)})
    assert refused.status_code == 403
    # With the token, the form gets past the guard: to intake, which is not there (503).
    passed = await console.post("/requests/new", data=form | {"csrf": token.group(1)})
    assert passed.status_code == 503 and "intake" in passed.text
    # Signing out is a form too; after it the session is gone.
    assert (await console.post("/logout", data={})).status_code == 403
    out = await console.post("/logout", data={"csrf": token.group(1)})
    assert out.status_code == 200
    after = await console.get("/board")
    assert after.status_code == 303 and after.headers["location"].startswith("/login")


async def test_no_redirect_leads_to_another_site(
    console: httpx.AsyncClient, issuer: Issuer
) -> None:
    for target in (
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "javascript:x",
        "/\t/evil.example",
        "/\n/evil.example",
    ):
        moved = await console.get("/language/en", params={"next": target})
        assert moved.status_code == 303 and moved.headers["location"] == "/", target
        started = await start_sign_in(console, target)
        signed = await console.get(
            _callback_path(await issuer_answer(issuer, started.headers["location"]))
        )
        assert signed.headers["location"] == "/", target


async def test_pages_run_only_the_console_s_own_scripts(
    console: httpx.AsyncClient, issuer: Issuer
) -> None:
    await sign_in(console, issuer)
    for path in ("/", "/board-that-is-not-there", "/welcome-missing"):
        page = await console.get(path)
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "unsafe-eval" not in policy and "frame-ancestors 'none'" in policy
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["cache-control"] == "no-store"
    home = (await console.get("/")).text
    assert '<script src="/static/vendor/htmx.min.js"' in home
    assert re.search(r"<script>(?!</script>)", home) is None  # no inline script
    assert " style=" not in home and "<style" not in home
    htmx = await console.get("/static/vendor/htmx.min.js")
    assert htmx.status_code == 200 and "htmx" in htmx.text[:2000]
    # Only the files named are served from the vendored folder.
    assert (await console.get("/static/vendor/axe.min.js")).status_code == 404
    assert (await console.get("/static/vendor/..%2F..%2Fpyproject.toml")).status_code == 404
    assert (await console.get("/", headers={"Host": "evil.example"})).status_code == 400


async def test_behind_https_every_cookie_is_secure(issuer: Issuer) -> None:
    api = build(settings(issuer, console_url="https://console.example.org"))
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url=CONSOLE) as http:
        started = await http.get("/login")
        assert set_cookies(started)["kring_login"]["kring_login"]["secure"]
        chosen = await http.get("/language/en")
        assert set_cookies(chosen)["kring_lang"]["kring_lang"]["secure"]


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"KRING_OIDC_ISSUER": ""}, "KRING_OIDC_ISSUER"),
        ({"KRING_CONSOLE_URL": "console.example"}, "KRING_CONSOLE_URL"),
        ({"KRING_ASSETS_DIR": "/nonexistent-kring-assets"}, "make install"),
    ],
)
def test_a_wrong_setting_stops_the_console_at_start_with_one_line(
    env: dict[str, str], said: str, issuer: Issuer
) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("KRING_")}
    base |= {"KRING_OIDC_ISSUER": issuer.url, "KRING_CONSOLE_PORT": str(free_port())}
    started = subprocess.run(
        [sys.executable, "-m", "services.console.main"],
        env=base | env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert started.returncode == 78, started.stderr
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0], started.stderr
    assert "Traceback" not in started.stderr
