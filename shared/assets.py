"""The web pages' vendored scripts: where ``make install`` put them, and serving them.

htmx (the console), axe-core (the console's accessibility checks), Swagger UI and Redoc (every
service's ``/docs`` and ``/redoc``) come from their npm packages at set-up (``assets/``,
``make install``) into one folder, ``assets/vendor``; ``KRING_ASSETS_DIR`` names another (the
container image's). Nothing is fetched from a CDN at run time, so the pages work offline.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import HTTPException
from fastapi.responses import FileResponse

ASSETS_VARIABLE = "KRING_ASSETS_DIR"
#: Every file the pages load, and the type it is served as.
VENDORED = {
    "htmx.min.js": "text/javascript",
    "axe.min.js": "text/javascript",
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
}


def assets_dir() -> Path:
    named = os.environ.get(ASSETS_VARIABLE)
    if named:
        return Path(named)
    return Path(__file__).resolve().parents[1] / "assets" / "vendor"


def missing(names: tuple[str, ...] | None = None) -> list[str]:
    """The vendored files that are not there (``make install`` puts them there)."""
    folder = assets_dir()
    return [name for name in (names or tuple(VENDORED)) if not (folder / name).is_file()]


def vendored(name: str) -> FileResponse:
    """One vendored file, or 404 for a name that is not one (no path is ever taken from the
    request: only the names listed)."""
    if name not in VENDORED:
        raise HTTPException(status_code=404, detail="no such asset")
    path = assets_dir() / name
    if not path.is_file():
        raise HTTPException(
            status_code=404,
            detail=f"{name} is not installed: run `make install` (or set {ASSETS_VARIABLE})",
        )
    return FileResponse(path, media_type=VENDORED[name], headers={"Cache-Control": "no-cache"})
