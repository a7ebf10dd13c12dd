# Two commands do everything on a fresh machine:  make run  |  make test
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench bench-email bench-voice bench-enrichment bench-memory bench-browser bench-analysis bench-api lint format demo devserver migrate clean

# Browser jobs and browser tests drive Debian's Chromium (never a downloaded browser).
CHROMIUM_PATH ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(CHROMIUM_PATH):
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium \
	  || (DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get update -q \
	      && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Bring the whole system up: Temporal dev server (Web UI :8233), all workers, demo receiver.
run: $(STAMP) | $(CHROMIUM_PATH)
	$(PY) -m devtools.run

## The whole test suite (starts its own dev servers on free ports).
test: $(STAMP) | $(CHROMIUM_PATH)
	$(PY) -m pytest -n 2 --dist loadfile -q $(PYTEST_ARGS)

## Benchmark against a bare temporalio baseline; writes BENCHMARKS.md.
bench: $(STAMP) | $(CHROMIUM_PATH)
	$(PY) -m bench.run $(BENCH_ARGS)

## Full sync of a 20,000-message Gmail and Outlook mailbox (emulated); writes BENCHMARKS.md.
bench-email: $(STAMP)
	$(PY) -m bench.email_sync $(BENCH_ARGS)

## 100 emulated voice calls through the 3-call limit, 30 spaced ones; writes BENCHMARKS.md.
bench-voice: $(STAMP)
	$(PY) -m bench.voice $(BENCH_ARGS)

## One emulated LEAD_ENRICHMENT job of 10,000 leads; writes BENCHMARKS.md.
bench-enrichment: $(STAMP)
	$(PY) -m bench.enrichment $(BENCH_ARGS)

## MEMORY_CLEANUP of 1,000,000 rows with a reader and a writer beside it; writes BENCHMARKS.md.
bench-memory: $(STAMP)
	$(PY) -m bench.memory $(BENCH_ARGS)

## 20 ten-step browser workflow runs in a row and 3 at a time, against bare Playwright.
bench-browser: $(STAMP) | $(CHROMIUM_PATH)
	$(PY) -m bench.browser $(BENCH_ARGS)

# The HTTP API: stats under 100 clients, progress to SSE, 1,000 open streams (about 2 minutes).
bench-api: $(STAMP)
	$(PY) -m bench.api $(BENCH_ARGS)

# SEO crawl of 200 pages at 20 requests/s and AD_ANALYSIS of 100,000 rows (about 2 minutes).
bench-analysis: $(STAMP)
	$(PY) -m bench.analysis $(BENCH_ARGS)

## Enqueue a demo webhook delivery to the running system and follow it.
demo: $(STAMP)
	$(PY) -m devtools.demo

devserver: $(STAMP)
	$(PY) -m devtools.devserver

migrate: $(STAMP)
	$(PY) -m db.migrate

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf var/temporal.db* var/jobs.db*
