"""Run intake: ``python -m services.intake.main``."""

from services.intake.bootstrap import build
from shared.runtime import serve

if __name__ == "__main__":
    serve(build)
