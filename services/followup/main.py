"""Run follow-up: ``python -m services.followup.main``.

A malformed ``KRING_FOLLOWUP_SCHEDULE`` (or any other variable) stops the service at start with
one line naming it, not a stack trace (``shared.runtime.prepare``)."""

from services.followup.bootstrap import build
from shared.runtime import serve

if __name__ == "__main__":
    serve(build)
