"""``/docs`` (Swagger UI) and ``/redoc`` of a service, from the vendored assets (``shared.assets``)
so they work without internet. FastAPI's own pages load their scripts from a CDN and start them
with an inline script; these load every script from the service itself, so their policy
(``shared.edge.DOCS_CSP``) allows no inline script at all."""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response

from shared.assets import vendored

#: Swagger UI is started by a script of ours (an inline one would need 'unsafe-inline'); the
#: validator badge is off, since it would call out to swagger.io.
SWAGGER_INIT = """\
window.ui = SwaggerUIBundle({
  url: document.getElementById("swagger-ui").dataset.openapi,
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  persistAuthorization: false,
});
"""


def docs_router(
    title: str, openapi_url: str = "/openapi.json", assets: Path | None = None
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    name = html.escape(title)
    url = html.escape(openapi_url)

    @router.get("/docs")
    async def swagger() -> HTMLResponse:
        return HTMLResponse(
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<title>{name} - API</title>"
            "<link rel=stylesheet href=/docs/assets/swagger-ui.css></head><body>"
            f"<div id=swagger-ui data-openapi='{url}'></div>"
            "<script src=/docs/assets/swagger-ui-bundle.js></script>"
            "<script src=/docs/swagger-init.js></script></body></html>"
        )

    @router.get("/docs/swagger-init.js")
    async def swagger_init() -> Response:
        return Response(SWAGGER_INIT, media_type="text/javascript")

    @router.get("/docs/assets/{asset}")
    async def docs_asset(asset: str) -> FileResponse:
        return vendored(asset, assets)

    @router.get("/redoc")
    async def redoc() -> HTMLResponse:
        return HTMLResponse(
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<title>{name} - API</title></head><body>"
            f"<redoc spec-url='{url}'></redoc>"
            "<script src=/docs/assets/redoc.standalone.js></script></body></html>"
        )

    return router
