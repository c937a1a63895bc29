# `make test` and `make demo` do all set-up themselves on a fresh machine.
PYTHON ?= python3
export UV_PYTHON_DOWNLOADS := never
# Compiled once at install: many tests start fresh interpreters (CLIs, orchestrators), and a
# machine with PYTHONDONTWRITEBYTECODE would otherwise compile every module in each of them.
export UV_COMPILE_BYTECODE := 1
export HEADWATER_TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test
TOOLS := .tools
# Each orchestrator in its own environment: Airflow 3.3 and Prefect 3.9 cannot share one.
# core_pythons: the core suite on Python 3.10, 3.12 and 3.13 (found on the machine, never downloaded).
# lint: ruff and mypy (pyproject.toml holds their settings).
# reliability: faults and hostile input (tests/reliability/).
# docs: the documentation site, built with --strict.
# e2e last: the cross-orchestrator story across the three environments the sessions before built.
SESSIONS ?= lint core reliability core_pythons docs dagster airflow prefect e2e
NOX := $(TOOLS)/bin/nox
UV := $(TOOLS)/bin/uv

.PHONY: test demo docs bench bench-peers bench-executor fuzz dist postgres chromium tools clean

$(NOX) $(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q "uv>=0.5" "nox>=2024.10"

tools: $(NOX)

postgres:
	@bash scripts/ensure-postgres.sh

chromium:
	@bash scripts/ensure-chromium.sh

test: tools postgres chromium
	@start=$$(date +%s); \
	PATH="$(CURDIR)/$(TOOLS)/bin:$$PATH" $(NOX) -s $(SESSIONS); rc=$$?; \
	echo "make test: $$(( $$(date +%s) - start )) s"; exit $$rc

demo: tools
	@PATH="$(CURDIR)/$(TOOLS)/bin:$$PATH" $(NOX) -s demo

# The documentation site, built with --strict into site/ (also part of `make test`).
docs: tools
	@PATH="$(CURDIR)/$(TOOLS)/bin:$$PATH" $(NOX) -s docs

# The long fuzzing run (not part of `make test`): schemathesis with 1000 examples per operation,
# the hypothesis tests of tests/reliability/ with 5000 each.
fuzz: tools postgres
	PATH="$(CURDIR)/$(TOOLS)/bin:$$PATH" $(NOX) -s schemathesis_long

# The sdist and the wheel, in dist/ (headwater is on no package index yet: install the wheel).
dist: tools
	rm -rf dist
	$(UV) build --out-dir dist
	@ls dist

bench: tools postgres chromium
	PATH="$(CURDIR)/$(TOOLS)/bin:$$PATH" $(NOX) -s bench

# headwater beside W&B (offline), DVC, MLflow and networkx (bench/peers.py), pinned in an
# environment of their own (bench/peers-requirements.txt); not part of `make test`.
# PEERS_ARGS="--quick" for a ~50 MiB folder, "--full" to add the 100,000-run question.
PEERS_ARGS ?=
bench-peers: tools postgres
	PATH="$(CURDIR)/$(TOOLS)/bin:$$PATH" $(NOX) -s peers -- $(PEERS_ARGS)

# headwater per task process under Airflow's LocalExecutor and Dagster's multiprocess executor,
# beside the OpenLineage provider (bench/executor.py, ~15 minutes); not part of `make test`.
# EXECUTOR_ARGS="--orchestrators airflow --repeat 5" to choose.
EXECUTOR_ARGS ?=
bench-executor: tools
	PATH="$(CURDIR)/$(TOOLS)/bin:$$PATH" $(NOX) -s dagster --install-only
	PATH="$(CURDIR)/$(TOOLS)/bin:$$PATH" $(PYTHON) bench/executor.py $(EXECUTOR_ARGS)

clean:
	rm -rf $(TOOLS) .nox dist site
