"""The web pages' vendored scripts: where ``make install`` put them, and serving them.

htmx (the console), axe-core (the console's accessibility checks), Swagger UI and Redoc (every
service's ``/docs`` and ``/redoc``) come from their npm packages at set-up (``assets/``,
``make install``) into one folder, ``assets/vendor``; a service's ``KRING_ASSETS_DIR`` names
another (the container image's). Nothing is fetched from a CDN at run time, so the pages work
offline.
"""

from __future__ import annotations

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


#: Where ``make install`` puts them in a checkout.
CHECKOUT = Path(__file__).resolve().parents[1] / "assets" / "vendor"


def assets_dir(folder: Path | None = None) -> Path:
    """``folder`` (a service's ``KRING_ASSETS_DIR``), else the checkout's."""
    return folder if folder is not None else CHECKOUT


def missing(names: tuple[str, ...] | None = None, folder: Path | None = None) -> list[str]:
    """The vendored files that are not there (``make install`` puts them there)."""
    where = assets_dir(folder)
    return [name for name in (names or tuple(VENDORED)) if not (where / name).is_file()]


def vendored(name: str, folder: Path | None = None) -> FileResponse:
    """One vendored file, or 404 for a name that is not one (no path is ever taken from the
    request: only the names listed)."""
    if name not in VENDORED:
        raise HTTPException(status_code=404, detail="no such asset")
    path = assets_dir(folder) / name
    if not path.is_file():
        raise HTTPException(
            status_code=404,
            detail=f"{name} is not installed: run `make install` (or set {ASSETS_VARIABLE})",
        )
    return FileResponse(path, media_type=VENDORED[name], headers={"Cache-Control": "no-cache"})
