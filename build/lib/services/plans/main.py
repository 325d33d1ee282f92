"""Run plans: ``python -m services.plans.main``."""

from services.plans.bootstrap import build
from shared.runtime import serve

if __name__ == "__main__":
    serve(build)
