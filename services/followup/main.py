"""Run follow-up: ``python -m services.followup.main``.

Settings are read first, so a malformed ``KRING_FOLLOWUP_SCHEDULE`` (or any other variable)
stops the service at start with a message naming it, not a stack trace."""

import sys

from pydantic import ValidationError

from services.followup.bootstrap import build
from services.followup.settings import FollowupSettings
from shared.runtime import serve


def main() -> None:
    try:
        settings = FollowupSettings()
    except ValidationError as error:
        sys.exit(f"followup: invalid configuration: {error}")
    serve(lambda: build(settings))


if __name__ == "__main__":
    main()
