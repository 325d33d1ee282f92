"""Run coordination: ``python -m services.coordination.main``."""

from services.coordination.bootstrap import build
from shared.runtime import serve

if __name__ == "__main__":
    serve(build)
