# Kring: the commands a user types. Each sets up what it needs (a virtual environment with the
# packages, once, again when pyproject.toml changes) and then does its job.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
READY  := $(VENV)/.installed
# The profilers the benchmark names the costs with (py-spy, pyinstrument): not needed to run Kring.
BENCH_READY := $(VENV)/.bench-installed

# The embedded run waits seconds, not months, for the follow-up, so `make demo` shows the whole
# flow: a schedule day lasts 0.2 s (the coordinator's call ~6 s after the plan, research ~18 s).
# Override: make run KRING_FOLLOWUP_SECONDS_PER_DAY=86400
KRING_FOLLOWUP_SECONDS_PER_DAY ?= 0.2
run demo: export KRING_FOLLOWUP_SECONDS_PER_DAY := $(KRING_FOLLOWUP_SECONDS_PER_DAY)

.PHONY: run demo test lint unit install clean bench soak

# The deployment checks (tests/deploy) validate the CloudNativePG and Prometheus operator resources
# with the schemas the npm packages in tests/deploy/crd carry: installed here, never at test time.
CRD_LOCK := tests/deploy/crd/package-lock.json
# The contract checks validate every service's AsyncAPI document with the AsyncAPI CLI (npm
# @asyncapi/cli, pinned in tests/contract/asyncapi): installed here, never at test time.
ASYNCAPI_LOCK := tests/contract/asyncapi/package-lock.json

# What Kring's web pages load (htmx for the console, axe-core for its accessibility checks,
# Swagger UI and Redoc for every service's /docs and /redoc) comes from npm, here, once, and is
# copied into assets/vendor, which the services serve: nothing is fetched from a CDN at run time.
ASSETS_LOCK := assets/package-lock.json
ASSETS := assets/vendor/.installed
VENDORED := htmx.org/dist/htmx.min.js axe-core/axe.min.js swagger-ui-dist/swagger-ui-bundle.js \
	swagger-ui-dist/swagger-ui.css redoc/bundles/redoc.standalone.js

$(ASSETS): $(ASSETS_LOCK)
	@command -v npm >/dev/null || { echo "make install needs npm (Node.js 20 or newer) for the web pages' scripts (assets/)" >&2; exit 1; }
	npm ci --prefix assets --no-audit --no-fund --loglevel=error
	@mkdir -p assets/vendor
	@for f in $(VENDORED); do cp assets/node_modules/$$f assets/vendor/; done
	@touch $@

# The console's browser tests drive Debian's Chromium (Playwright's own download cannot work
# offline); installed when missing, where apt-get can (CI and the developers' machines run as root).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] || { echo "the browser tests need Debian's chromium at $@ (apt-get install chromium)" >&2; exit 1; }
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

$(READY): pyproject.toml $(CRD_LOCK) $(ASYNCAPI_LOCK) $(ASSETS)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Kring needs Python 3.11 or newer")'
	@command -v npm >/dev/null || { echo "make install needs npm (Node.js 20 or newer) for the schemas of the deployment checks (tests/deploy/crd) and the AsyncAPI CLI (tests/contract/asyncapi)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	npm ci --prefix tests/deploy/crd --no-audit --no-fund --loglevel=error
	npm ci --prefix tests/contract/asyncapi --no-audit --no-fund --loglevel=error
	@touch $@

install: $(READY)

$(BENCH_READY): $(READY)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $@

run: $(READY)
	$(BIN)/kring run

demo: $(READY)
	$(BIN)/kring demo

lint: $(READY)
	$(BIN)/ruff check shared services kring tests bench deploy deploy/make-secrets
	$(BIN)/ruff format --check shared services kring tests bench deploy deploy/make-secrets
	$(BIN)/mypy shared services kring bench deploy/docker deploy/make-secrets

# pytest keeps its temporary folders per user and deletes all but the newest three at every start:
# two checkouts testing at once (several engineers on one machine) deleted each other's running
# nats-server and PostgreSQL folders. One root per checkout keeps them apart.
export PYTEST_DEBUG_TEMPROOT := /tmp/kring-tests-$(shell printf '%s' '$(CURDIR)' | cksum | cut -d' ' -f1)
$(PYTEST_DEBUG_TEMPROOT):
	@mkdir -p $@

# Two workers, each taking whole files (a file's fixtures and servers stay in one process): most
# tests wait on servers and processes of their own, so two share two cores well.
test: lint | $(PYTEST_DEBUG_TEMPROOT) $(CHROMIUM)
	$(BIN)/pytest -n 2 --dist loadfile

unit: $(READY) | $(PYTEST_DEBUG_TEMPROOT)
	$(BIN)/pytest tests/unit

# Every figure of issue 4 with its baseline ratio and target, in a few minutes; results and how to
# read them in bench/RESULTS.md. Sizes: BENCH_CASES, BENCH_CONCURRENCY, BENCH_HALF_LOAD_CASES,
# BENCH_MESSAGES, BENCH_SAVES, BENCH_RELAY_EVENTS, BENCH_CONSUMER_EVENTS, BENCH_REPLAY_EVENTS,
# BENCH_ANALYTICS_CASES, BENCH_PROFILE_SECONDS, BENCH_SNAPSHOT_CASES; BENCH_PROFILE=auto|always|never;
# BENCH_ONLY=baselines,relay,consumer,replay,export,report,identity,workflow,peer,snapshots.
# e.g. make bench BENCH_CASES=300 BENCH_ONLY=workflow,peer
# The national history (issue 15) runs only when named, for many minutes: stores seeded with
# BENCH_HISTORY_CASES (10000,100000) on BENCH_HISTORY_STORES (sqlite,postgres); PostgreSQL is the
# server BENCH_POSTGRES_URL names, else a throwaway one. e.g. make bench BENCH_ONLY=history
bench: $(READY) $(BENCH_READY)
	$(BIN)/python -m bench

# The fault suite's long form, a few minutes: the HTTP fuzzing with more examples and the poison
# test, then 200 cases through the four service processes while each is killed with -9, nats-server
# is killed and kept away, the stream loses its tail and is deleted, and poison arrives; it prints
# the figures (lost, duplicated, applied twice, dead-lettered) and the seed. Sizes: SOAK_CASES,
# SOAK_CONCURRENCY, SOAK_FUZZ_EXAMPLES; SOAK_SEED runs a seed's fault plan again. Its 28 faults
# must land while cases flow: below about 150 cases some come too late and the verdict says so.
# e.g. make soak SOAK_CASES=400 SOAK_SEED=42
#
# Then docker-compose.yml run as local processes (tests/deploy/topology.py: three clustered
# nats-servers, PostgreSQL, the issuer, every service twice) with TOPOLOGY_CASES cases while each
# service's active replica is killed in turn, twice, the stream leader's NATS node is stopped and
# PostgreSQL restarted, twice each; it prints each takeover's time and the soak's checks.
#
# Then eight PostgreSQL service processes started at once on an empty database, and eight stores
# opened at one instant, for SOAK_START_ROUNDS and SOAK_OPEN_ROUNDS rounds (make test: 2 and 10).
SOAK_START_ROUNDS ?= 10
SOAK_OPEN_ROUNDS ?= 100
SOAK_CASES ?= 200
SOAK_CONCURRENCY ?= 16
SOAK_FUZZ_EXAMPLES ?= 300
TOPOLOGY_CASES ?= 40
soak: $(READY) | $(PYTEST_DEBUG_TEMPROOT)
	KRING_FUZZ_EXAMPLES=$(SOAK_FUZZ_EXAMPLES) $(BIN)/pytest -q -p no:cacheprovider \
		tests/integration/test_http_fuzz.py tests/integration/test_poison.py
	$(BIN)/python -m tests.faults.soak --long --cases $(SOAK_CASES) \
		--concurrency $(SOAK_CONCURRENCY) $(if $(SOAK_SEED),--seed $(SOAK_SEED))
	$(BIN)/python -m tests.deploy.topology --long --cases $(TOPOLOGY_CASES) \
		$(if $(SOAK_SEED),--seed $(SOAK_SEED))
	KRING_TEST_START_ROUNDS=$(SOAK_START_ROUNDS) KRING_TEST_OPEN_ROUNDS=$(SOAK_OPEN_ROUNDS) \
		$(BIN)/pytest -q -s -p no:cacheprovider tests/integration/test_postgres_concurrent_start.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache tests/deploy/crd/node_modules \
		assets/node_modules assets/vendor \
		tests/contract/asyncapi/node_modules
