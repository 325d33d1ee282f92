"""Run the console: ``python -m services.console.main`` (``make run`` starts it on port 8000)."""

from __future__ import annotations

import os
import sys

import uvicorn
from pydantic import ValidationError

from services.console.bootstrap import build
from services.console.settings import ConsoleSettings
from shared.http import KEEP_ALIVE_SECONDS
from shared.logging import configure_logging
from shared.runtime import EXIT_CONFIG, UMASK
from shared.settings import SettingError, problem_line


def main() -> None:
    os.umask(UMASK)
    try:
        settings = ConsoleSettings()
    except ValidationError as error:
        print(f"cannot start: {problem_line(error)}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_CONFIG) from None
    except SettingError as error:
        print(f"cannot start: {error}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_CONFIG) from None
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    try:
        api = build(settings)
    except SystemExit as stop:
        print(stop.code, file=sys.stderr, flush=True)
        raise SystemExit(EXIT_CONFIG) from None
    uvicorn.run(
        api,
        host=settings.http_host,
        port=settings.console_port,
        log_config=None,
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


if __name__ == "__main__":
    main()
