# syntax=docker/dockerfile:1
# One image for every Kring process; the command chooses which:
#   docker run kring python -m services.intake.main        (or coordination, plans, followup,
#                                                           partners, console)
#   docker run kring kring dlq list                         (the CLI)
# nats-server does not run here (the official nats image does), so its binary is left out.
#
# Writable paths, everything else can be a read-only root filesystem:
#   /var/lib/kring  KRING_DATA_DIR: SQLite stores (only with KRING_STORE=sqlite) and the
#                   development issuer's keys; a volume. With PostgreSQL nothing is written here.
#   /tmp            scratch for libraries that want a temporary file (a small tmpfs).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/kring
WORKDIR /src
COPY pyproject.toml ./
COPY shared ./shared
COPY services ./services
COPY kring ./kring
# Every dependency is a wheel (psycopg[binary], cryptography, pydantic-core): nothing compiles,
# and the final stage gets the environment without pip's caches, the sources or a build backend.
RUN /opt/kring/bin/pip install . \
 && rm -f /opt/kring/bin/nats-server \
 && /opt/kring/bin/python -m compileall -q /opt/kring/lib
# The web pages' scripts (the console's htmx, every service's /docs and /redoc) from their npm
# packages, as `make install` vendors them: served from the image, never from a CDN.
COPY assets/package.json assets/package-lock.json assets/.npmrc ./assets/
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends npm >/dev/null \
 && npm ci --prefix assets --no-audit --no-fund --loglevel=error \
 && mkdir -p /opt/kring/assets \
 && cp assets/node_modules/htmx.org/dist/htmx.min.js assets/node_modules/axe-core/axe.min.js \
      assets/node_modules/swagger-ui-dist/swagger-ui-bundle.js \
      assets/node_modules/swagger-ui-dist/swagger-ui.css \
      assets/node_modules/redoc/bundles/redoc.standalone.js /opt/kring/assets/

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 kring \
 && useradd --system --uid 10001 --gid kring --no-create-home --home-dir /var/lib/kring \
      --shell /usr/sbin/nologin kring \
 && install -d -o kring -g kring -m 0700 /var/lib/kring
COPY --from=build /opt/kring /opt/kring
COPY deploy/docker/healthcheck.py /opt/kring/healthcheck.py
# Compiled at build time, so a read-only filesystem costs no start-up time.
ENV PATH=/opt/kring/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KRING_DATA_DIR=/var/lib/kring \
    KRING_HTTP_HOST=0.0.0.0 \
    KRING_LOG_FORMAT=json \
    KRING_ASSETS_DIR=/opt/kring/assets
USER 10001:10001
WORKDIR /var/lib/kring
VOLUME ["/var/lib/kring"]
EXPOSE 8000 8001 8002 8003 8004 8006
# Readiness of the service this container runs (found from its command): 503 while NATS or the
# store is away, so an orchestrator holds traffic back instead of restarting a healthy process.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "/opt/kring/healthcheck.py"]
CMD ["kring", "--help"]
