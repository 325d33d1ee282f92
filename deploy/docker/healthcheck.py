"""The image's health check: ``GET /health/ready`` of the Kring service this container runs.

The service is found from the container's command (``python -m services.<name>.main`` as PID 1,
or under an init such as ``docker run --init``); its port from the service's own settings class,
so an override (``KRING_INTAKE_PORT``) or a secret file counts exactly as the service reads it.
``python healthcheck.py intake`` names the service instead. Exit 0: ready; 1: not ready or not a
service (give such a container its own health check).
"""

from __future__ import annotations

import importlib
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

SERVICE_MODULE = re.compile(r"services\.([a-z_]+)\.main")


def service_of_container() -> str | None:
    try:
        args = Path("/proc/1/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    for arg in args:
        found = SERVICE_MODULE.fullmatch(arg)
        if found:
            return found.group(1)
    return None


def ready_url(service: str) -> str:
    from shared.settings import ServiceSettings

    module = importlib.import_module(f"services.{service}.settings")
    classes = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, ServiceSettings)
        and value.__module__ == module.__name__
    ]
    settings = classes[0]()
    # A service bound to every address answers on loopback too.
    wildcard = {"0.0.0.0", "::", ""}  # noqa: S104 - compared against, not bound
    host = "127.0.0.1" if settings.http_host in wildcard else settings.http_host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.http_port}/health/ready"


def main(argv: list[str]) -> int:
    service = argv[1] if len(argv) > 1 else service_of_container()
    if service is None:
        print("not a Kring service container; give this command its own health check")
        return 1
    url = ready_url(service)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=3) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as error:
        print(f"{service}: {url}: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
