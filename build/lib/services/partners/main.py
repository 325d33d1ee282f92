"""Run the partners service: ``python -m services.partners.main``."""

from services.partners.bootstrap import build
from shared.runtime import serve

if __name__ == "__main__":
    serve(build)
