"""What every page of the console shares: the signed-in session, forms and their CSRF token,
the language, rendering, and the errors of the services shown as messages.

Every form carries the session's CSRF token (a hidden field), checked on every POST before
anything else, together with the ``Origin`` a browser sends. Pages are served with a
Content-Security-Policy that runs only the console's own scripts (htmx, from ``/static``) and
no inline script or style.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.console.auth import SESSION_COOKIE, Session, Sessions
from services.console.i18n import (
    DEFAULT_LANGUAGE,
    LABELS,
    LANGUAGES,
    N_,
    labeller,
    translations,
)
from shared.actor import Role

LANGUAGE_COOKIE = "kring_lang"
TEMPLATES = Path(__file__).parent / "templates"
FORM = "application/x-www-form-urlencoded"

#: The console's pages: its own scripts and styles only; forms post to itself.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class NotSignedInError(Exception):
    """No session: sign in first (the page asked for is where the sign-in returns to)."""


class BadFormError(Exception):
    """A form without a valid CSRF token, from another origin, or not a form at all: 403."""


@dataclass
class Form:
    """A posted ``application/x-www-form-urlencoded`` form."""

    fields: dict[str, list[str]]

    def one(self, name: str, default: str = "") -> str:
        values = self.fields.get(name)
        return values[0].strip() if values else default

    def all(self, name: str) -> list[str]:
        return [v.strip() for v in self.fields.get(name, []) if v.strip()]

    def checked(self, name: str) -> bool:
        return bool(self.fields.get(name))

    def lines(self, name: str) -> list[str]:
        """A textarea's non-empty lines."""
        return [line.strip() for line in self.one(name).splitlines() if line.strip()]

    def flat(self) -> dict[str, Any]:
        """For filling a form in again: one value per field, lists where there are several."""
        return {k: v[0] if len(v) == 1 else v for k, v in self.fields.items()}


@dataclass
class Page:
    """What a page's template is given besides its own context."""

    request: Request
    session: Session | None
    language: str
    messages: list[str] = field(default_factory=list)


def language_of(request: Request) -> str:
    chosen = request.cookies.get(LANGUAGE_COOKIE, DEFAULT_LANGUAGE)
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE


def local_path(target: str | None, fallback: str = "/") -> str:
    """A path of the console's own to go to, never another site (``//evil``, ``https:…``)."""
    if not target or not target.startswith("/") or "\\" in target:
        return fallback
    # Browsers drop tabs and newlines from a URL: "/\t/evil" would become "//evil".
    if not target.isprintable() or target.startswith("//"):
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return fallback
    return target


def navigation(session: Session | None) -> list[tuple[str, str]]:
    """The menu, by the roles the token carries (the services still decide every call)."""
    if session is None:
        return []
    roles = session.principal.roles
    items: list[tuple[str, str]] = [("/", N_("Home"))]
    if Role.REGIONAL_MANAGER in roles:
        items += [
            ("/board", N_("Case board")),
            ("/requests", N_("New requests")),
            ("/unassigned", N_("Unassigned")),
            ("/pool", N_("Coordinators")),
        ]
    if Role.COORDINATOR in roles:
        items += [("/mine", N_("My cases"))]
    if Role.RESEARCHER in roles or Role.REGIONAL_MANAGER in roles:
        items += [("/research", N_("Follow-ups"))]
    return items


class Renderer:
    """One template environment per language, each with its catalogue installed."""

    def __init__(self) -> None:
        self.environments: dict[str, Environment] = {}
        for language in LANGUAGES:
            environment = Environment(
                loader=FileSystemLoader(TEMPLATES),
                autoescape=select_autoescape(["html"]),
                extensions=["jinja2.ext.i18n"],
                undefined=StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
            )
            catalogue = translations(language)
            environment.install_gettext_translations(catalogue, newstyle=True)  # type: ignore[attr-defined]
            environment.globals["label"] = labeller(catalogue.gettext)
            environment.globals["labels"] = LABELS
            environment.globals["value"] = _value
            environment.globals["chosen"] = _chosen
            environment.globals["pick"] = pick
            self.environments[language] = environment

    def render(
        self,
        page: Page,
        template: str,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        environment = self.environments[page.language]
        session = page.session
        html = environment.get_template(template).render(
            lang=page.language,
            other_language="en" if page.language == "nl" else "nl",
            path=page.request.url.path,
            here=_here(page.request),
            user=session.principal if session else None,
            csrf=session.csrf if session else "",
            nav=navigation(session),
            messages=page.messages,
            **context,
        )
        response = HTMLResponse(html, status_code=status)
        response.headers["Content-Security-Policy"] = PAGE_CSP
        return response


def _value(form: Form | None, name: str, default: Any = "") -> Any:
    """A field as it was sent (a form shown again), else its value now."""
    if form is not None:
        return form.one(name)
    return "" if default is None else default


def _chosen(form: Form | None, name: str, default: Any = ()) -> list[str]:
    """A multiple choice as it was sent, else as it is now."""
    if form is not None:
        return form.all(name)
    return [str(v) for v in (default or ())]


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def redirect(target: str) -> Response:
    """After a form: see the page again (303), also for htmx (which follows it)."""
    return RedirectResponse(target, status_code=303)


def sign_in_redirect(request: Request) -> Response:
    target = f"/login?next={quote(_here(request), safe='')}"
    if request.headers.get("hx-request"):
        # htmx would swap the issuer's page into this one: have the browser go there itself.
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def session_of(request: Request, sessions: Sessions) -> Session | None:
    return sessions.get(request.cookies.get(SESSION_COOKIE))


async def read_form(request: Request, session: Session, origin: str) -> Form:
    """The posted form, once its origin and CSRF token are the session's."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != FORM:
        raise BadFormError("not a form")
    sent_from = request.headers.get("origin")
    if sent_from is not None and sent_from.rstrip("/") != origin:
        raise BadFormError("a form from another site")
    body = (await request.body()).decode("utf-8", "replace")
    fields = parse_qs(body, keep_blank_values=True, max_num_fields=2000)
    token = (fields.get("csrf") or [""])[0]
    if not token or not secrets.compare_digest(token, session.csrf):
        raise BadFormError("the form's CSRF token is missing or not this session's")
    return Form({k: v for k, v in fields.items() if k != "csrf"})


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def pick(mapping: Mapping[str, Any] | None, *keys: str) -> Any:
    """A nested value, or None: ``pick(view, "funding", "payer")``."""
    value: Any = mapping
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value
