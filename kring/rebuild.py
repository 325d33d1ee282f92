"""``kring rebuild SERVICE``: a service's read model built anew from its log, with progress;
``kring rekey SERVICE``: its store sealed under a new service key (``shared.at_rest.rekey``).

Run it where the service runs, with the service's settings (``KRING_STORE``,
``KRING_POSTGRES_URL``, ``KRING_DATA_DIR``, ``KRING_CIPHER_KEY``…): in a deployment, in one of
its containers (``docker compose exec intake kring rebuild intake``, ``kubectl exec``); beside
``kring run``, with ``KRING_DATA_DIR`` naming its data folder, whose keys it reads. The running
service keeps answering from its live tables meanwhile; the new ones replace them at the end
(``shared.views``). Interrupted, it resumes where it stopped when run again, and ends with the
same rows.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from shared.application import KringApplication
from shared.at_rest import RekeyProgress
from shared.at_rest import rekey as rekey_store
from shared.settings import ServiceSettings
from shared.store import eventsourcing_env
from shared.views import Progress, ReadModel

SERVICES = ("intake", "coordination", "plans", "followup", "partners")
_CLASSES = {
    "intake": ("IntakeSettings", "IntakeApplication"),
    "coordination": ("CoordinationSettings", "CoordinationApplication"),
    "plans": ("PlansSettings", "PlansApplication"),
    "followup": ("FollowupSettings", "FollowupApplication"),
    "partners": ("PartnersSettings", "PartnersApplication"),
}


class RebuildError(RuntimeError):
    """The service's store cannot be opened as configured; the message says why."""


def service_settings(service: str) -> ServiceSettings:
    """The service's settings from the environment, as the service reads them. Tokens are not
    checked here, so the issuer may be left out; the service key, unset, is read from
    ``<data>/keys/<service>.key`` where ``kring run`` keeps it."""
    settings_name, _ = _CLASSES[service]
    settings_class: type[ServiceSettings] = getattr(
        importlib.import_module(f"services.{service}.settings"), settings_name
    )
    given: dict[str, Any] = {}
    if not os.environ.get("KRING_OIDC_ISSUER"):
        # Never asked: a rebuild reads the store, it takes no calls. A URL, as the check wants.
        given["oidc_issuer"] = "http://issuer.unused.invalid"
    settings = settings_class(**given)
    if settings.cipher_key is None:
        key_file = Path(settings.data_dir) / "keys" / f"{service}.key"
        if key_file.is_file():
            key = key_file.read_text(encoding="ascii").strip()
            settings = settings.model_copy(update={"cipher_key": SecretStr(key)})
    return settings


def open_application(service: str) -> KringApplication:
    settings = service_settings(service)
    if settings.store.value == "sqlite" and not settings.sqlite_path.exists():
        raise RebuildError(
            f"no {service} store at {settings.sqlite_path} (KRING_DATA_DIR names the data folder)"
        )
    _, app_name = _CLASSES[service]
    app_class = getattr(importlib.import_module(f"services.{service}.app"), app_name)
    app: KringApplication = app_class(env=eventsourcing_env(settings))
    return app


def rebuild(service: str, progress: Callable[[Progress], None]) -> Progress:
    app = open_application(service)
    try:
        views: ReadModel = app.views  # type: ignore[attr-defined]
        return views.rebuild(progress)
    finally:
        app.close()


def rekey(service: str, progress: Callable[[RekeyProgress], None]) -> RekeyProgress:
    app = open_application(service)
    try:
        return rekey_store(app.queries, app.mapper.cipher, progress)
    finally:
        app.close()


def rekey_line(service: str, progress: RekeyProgress) -> str:
    share = 100.0 if not progress.total else min(100.0, 100 * progress.looked_at / progress.total)
    return (
        f"{service}: {progress.looked_at:,} of {progress.total:,} rows looked at ({share:.0f} %),"
        f" {progress.resealed:,} sealed under the new key, in {progress.seconds:.1f} s"
    )


def progress_line(service: str, progress: Progress) -> str:
    share = 100.0 if not progress.end else min(100.0, 100 * progress.position / progress.end)
    rate = progress.applied / progress.seconds if progress.seconds > 0 else 0.0
    return (
        f"{service}: {progress.position:,} of {progress.end:,} events ({share:.0f} %),"
        f" {progress.applied:,} read in {progress.seconds:.1f} s ({rate:,.0f} events/s)"
    )
