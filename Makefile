# Set-up is part of every target: a fresh clone needs nothing but python3 (3.11+) and make.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)

.PHONY: run test test-fast sync soak soak-vendor bench bench-tenants lint format sandbox
# One pytest worker per core; tests that share a module's server run on one worker (xdist_group).
PYTEST_PARALLEL := -n auto --dist loadgroup

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

run: $(STAMP)  ## the sync on the embedded sandbox, with the Dagster UI on http://127.0.0.1:3000
	scripts/run.sh

.PHONY: browser-deps
browser-deps:  ## Debian's chromium for the browser test (amazon_optiply_tests/ui), when missing
	command -v chromium >/dev/null || { apt-get update && apt-get install -y chromium; }

.PHONY: postgres-deps
postgres-deps:  ## Debian's PostgreSQL server for the Postgres test (amazon_optiply_tests/sync/test_postgres.py), when missing
	command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || \
	  { apt-get update && apt-get install -y postgresql; }

test: $(STAMP) browser-deps postgres-deps  ## lint, format check and the whole test suite
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest $(PYTEST_PARALLEL) --durations=15

test-fast: $(STAMP)  ## the inner loop: everything but the browser, PostgreSQL, soak, bench and separate-process tests
	$(PY) -m pytest $(PYTEST_PARALLEL) -m "not slow"

sync: $(STAMP)  ## one headless sync of every marketplace against the embedded sandbox
	AMAZON_MARKETPLACES=$${AMAZON_MARKETPLACES:-DE,FR,US} DAGSTER_HOME=$${DAGSTER_HOME:-$$PWD/.dagster_home_sync} \
	  sh -c 'mkdir -p "$$DAGSTER_HOME" && cp dagster.yaml "$$DAGSTER_HOME/" && $(PY) -m amazon_optiply.sync --embedded-sandbox'

soak: $(STAMP)  ## 30 cycles against the hostile sandbox (DE,US seller, then a tenth each secondary and vendor), killed twice; ground truth compared
	$(PY) -m amazon_optiply.soak --worlds seller,secondary,vendor --cycles $${SOAK_CYCLES:-30} --kills $${SOAK_KILLS:-2}

soak-vendor: $(STAMP)  ## 30 six-hour cycles of a vendor tenant against the hostile sandbox, killed 3 times; vendor ground truth compared
	$(PY) -m amazon_optiply.soak --vendor --vendor-flavour $${SOAK_VENDOR_FLAVOUR:-full} \
	  --cycles $${SOAK_CYCLES:-30} --kills $${SOAK_KILLS:-3}

# The scale figures in one run; `tenants` (200 tenants' runs, about 40 minutes) has its own target.
BENCH_SECTIONS := api,latency,projection,transform,e2e,writes

bench: $(STAMP)  ## performance figures against the sandbox: prints a table, writes bench/results.json
	$(PY) -m amazon_optiply.bench --scale full --only $${BENCH_ONLY:-$(BENCH_SECTIONS)}

bench-tenants: $(STAMP)  ## many tenants' runs at once: runs/min, CPU and memory per run; bench/results-tenants-full.json
	$(PY) -m amazon_optiply.bench --scale full --only tenants --out bench/results-tenants-full.json

sandbox: $(STAMP)  ## only the sandbox servers, in the foreground
	$(PY) -m amazon_optiply.sandbox --sp-api-port 8701 --optiply-port 8702

lint: $(STAMP)
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format . && $(PY) -m ruff check --fix .
