# Two commands do all the set-up on a fresh machine (see README.md):
#   make demo   install, start what is missing, migrate, run a simulated fleet through everything
#   make test   install, then every check: ruff, mypy, the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# PGlite (PostgreSQL + TimescaleDB in WebAssembly) for tests/meterline/test_timescale.py
TIMESCALE := tests/timescale
NPM_STAMP := $(TIMESCALE)/node_modules/.package-lock.json

# Debian packages: DejaVu fonts (payment documents' PDF), and for the QR test poppler-utils
# (pdftoppm, pdftotext) and zbar-tools (zbarimg); prometheus for promtool, which checks the
# Prometheus configuration in deploy/ (tests/deploy); installed when missing
DEBS := fonts-dejavu-core poppler-utils zbar-tools prometheus
# chromium: the web pages' tests drive it with Playwright (tests/pages); hey and wrk: the API
# benchmark (bench/api.py)
DEBS += chromium hey wrk

.PHONY: demo test lint install test-deps debs bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(NPM_STAMP): $(TIMESCALE)/package.json $(TIMESCALE)/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js 20) is needed for the TimescaleDB tests" >&2; exit 1; }
	npm ci --prefix $(TIMESCALE) --legacy-peer-deps --no-audit --no-fund --loglevel=error >/dev/null
	touch $(NPM_STAMP)

install: $(STAMP)

test-deps: $(NPM_STAMP) debs

debs:
	@missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing $$missing"; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	fi

demo: $(STAMP) debs
	$(BIN)/meterline demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint $(NPM_STAMP) debs
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m bench.pipeline
	$(BIN)/python -m bench.booking
	$(BIN)/python -m bench.rating
	$(BIN)/python -m bench.bridge
	$(BIN)/python -m bench.tariffs
	$(BIN)/python -m bench.registers
	$(BIN)/python -m bench.telemetry writer
	$(BIN)/python -m bench.api

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
