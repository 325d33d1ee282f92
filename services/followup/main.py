"""Run follow-up: ``python -m services.followup.main``."""

from services.followup.bootstrap import build
from shared.runtime import serve

if __name__ == "__main__":
    serve(build)
