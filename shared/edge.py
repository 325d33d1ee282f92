"""The HTTP edge every service shares, as one plain ASGI middleware: which hosts a request may
name, and the headers every answer carries.

- ``Host``: only the configured names (``KRING_ALLOWED_HOSTS``; loopback by default), else 400
  before anything else runs. ``/health/*`` and ``/metrics`` answer whatever the host: probes and
  Prometheus name a pod's address, and ``/metrics`` wants an operator's token all the same.
- Every answer: ``X-Content-Type-Options: nosniff`` and ``Cache-Control: no-store`` (answers
  hold personal data; no cache keeps them); HTML and documents a ``Content-Security-Policy``
  that lets them load nothing and run nothing (the API docs pages load Swagger UI from its CDN).
- The body limit (``KRING_MAX_BODY_BYTES``) is FastAPI's own ``max_body_size``: 413 before
  parsing, for a declared length at once and for a chunked body as soon as it passes the limit.
"""

from __future__ import annotations

import json

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: For HTML and documents Kring renders: nothing loads, nothing runs, nothing frames them.
DOCUMENT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
#: FastAPI's /docs and /redoc pages load their scripts from a CDN.
DOCS_CSP = (
    "default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src https://fonts.gstatic.com; img-src data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")
#: Asked for by a pod's address (Kubernetes' probes, Prometheus): any host may be named.
ANY_HOST_PATHS = ("/health/", "/metrics")
DOCUMENT_TYPES = ("text/html", "application/pdf", "image/svg+xml", "text/xml", "application/xml")


class Edge:
    def __init__(self, app: ASGIApp, allowed_hosts: tuple[str, ...]) -> None:
        self.app = app
        self.any_host = "*" in allowed_hosts
        self.exact = frozenset(h for h in allowed_hosts if not h.startswith("."))
        self.suffixes = tuple(h for h in allowed_hosts if h.startswith("."))

    def host_allowed(self, host_header: str | None) -> bool:
        if self.any_host:
            return True
        if not host_header:
            return False
        host = host_header.strip().lower()
        if host.startswith("["):  # [::1]:8001
            host = host[1 : host.find("]")] if "]" in host else host
        elif host.count(":") == 1:
            host = host.partition(":")[0]
        return host in self.exact or any(host.endswith(s) for s in self.suffixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if not path.startswith(ANY_HOST_PATHS) and not self.host_allowed(
            Headers(scope=scope).get("host")
        ):
            await _answer(send, 400, "this host name is not served here")
            return
        docs = path.startswith(DOCS_PATHS)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Cache-Control"] = "no-store"
                kind = headers.get("content-type", "").split(";")[0].strip().lower()
                if docs:
                    headers["Content-Security-Policy"] = DOCS_CSP
                elif kind in DOCUMENT_TYPES:
                    headers["Content-Security-Policy"] = DOCUMENT_CSP
            await send(message)

        await self.app(scope, receive, with_headers)


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-content-type-options", b"nosniff"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
