# The verbs a person uses. Every target sets up what it needs, from pinned requirements, on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY_VERSION := 3.13
# The runtime's interpreter: pyenv's if it has one (its shim alone fails `sam build`), else python3.13 on PATH.
RUNTIME_PY := $(shell for c in "$$(pyenv prefix $(PY_VERSION) 2>/dev/null)/bin/python$(PY_VERSION)" "$$(command -v python$(PY_VERSION) 2>/dev/null)"; do [ -x "$$c" ] && "$$c" -c 'import sys' 2>/dev/null && { echo "$$c"; break; }; done)
TOOLS_PY ?= python3

VENV := .venv
TOOLS_VENV := .venv-tools
BIN := $(VENV)/bin
TOOLS := $(TOOLS_VENV)/bin
export SAM_CLI_TELEMETRY := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# `sam build` looks for python3.13 on PATH to build the functions and the layer.
SAM_PATH := $(dir $(RUNTIME_PY)):$(PATH)

.PHONY: help venv tools lint typecheck unit integration e2e test template build package-test demo local bench bench-backfill soak browser deploy deploy-guided clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements-dev.txt layers/shared/requirements.txt pyproject.toml
	@[ -n "$(RUNTIME_PY)" ] || { echo "Python $(PY_VERSION) not found: install it (e.g. pyenv install $(PY_VERSION))" >&2; exit 1; }
	$(RUNTIME_PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@# The layer's package and the local tools import as they do in Lambda and in `python -m`.
	printf '%s\n' "$(CURDIR)/layers/shared" "$(CURDIR)" > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nrtsync.pth"
	@# The `nrtsync` console script; its build backend (setuptools) is pinned in requirements-dev.txt, so no network.
	$(BIN)/pip install --quiet --no-deps --no-build-isolation --editable .
	touch $@

$(TOOLS_VENV)/.installed: requirements-tools.txt
	$(TOOLS_PY) -m venv $(TOOLS_VENV)
	$(TOOLS)/pip install --quiet --upgrade pip
	$(TOOLS)/pip install --quiet -r requirements-tools.txt
	touch $@

venv: $(VENV)/.installed ## Create the runtime/test virtualenv (.venv)

tools: $(TOOLS_VENV)/.installed ## Create the tools virtualenv (.venv-tools: SAM CLI, cfn-lint, checkov)

lint: venv ## ruff (lint and format check)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv ## mypy, strict
	$(BIN)/mypy layers/shared/nrtsync nrtsync_cli functions nrtsync_local nrtsync_fakes tests bench

unit: venv ## Unit tests (no network)
	$(BIN)/pytest tests/unit -q

integration: venv ## Integration tests (moto server, HTTPS Salesforce stand-in)
	$(BIN)/pytest tests/integration -q

e2e: venv ## The whole local pipeline
	$(BIN)/pytest tests/e2e -q

template: tools ## cfn-lint, sam validate --lint and checkov (every skip carries its reason in the template)
	$(TOOLS)/cfn-lint template.yaml
	$(TOOLS)/sam validate --lint --template template.yaml
	$(TOOLS)/checkov -f template.yaml --framework cloudformation --quiet --compact --skip-download

build: tools ## sam build (arm64, python3.13) into .aws-sam/build
	PATH="$(SAM_PATH)" $(TOOLS)/sam build --template template.yaml --no-cached

package-test: venv build ## Import every built function with only the built layer on the path, as Lambda would
	$(BIN)/pytest tests/build -q

browser: ## Install Debian's chromium for the dashboard page's browser test (skipped, saying so, without it)
	@[ -x /usr/bin/chromium ] || apt-get install -y chromium || echo "chromium could not be installed: the browser test will be skipped"

test: lint typecheck template browser ## Everything CI runs: lint, types, template checks, all tests, sam build
	@# Two workers, whole files each: the e2e files start servers per file; most tests wait on I/O.
	$(BIN)/pytest -q -p no:cacheprovider -n 2 --dist loadfile tests/unit tests/integration tests/harness tests/bench tests/docs tests/template tests/e2e
	$(MAKE) --no-print-directory package-test

demo: venv ## Run the pipeline on this machine on a realistic callout stream, show the Sync History, verify Salesforce, write the dashboard page
	$(BIN)/python -m nrtsync_local.demo.with_dashboard

local: venv ## Run the stack on this machine (moto, Salesforce stand-in, local API) until Ctrl-C
	$(BIN)/python -m nrtsync_local.stack

bench: venv ## Headline figures and the cost model (under 10 minutes): API calls, throughput, latency, imports, memory, cost
	$(BIN)/python -m bench.run

bench-backfill: venv ## The 100,000-record initial load and a reconcile over it (about an hour)
	$(BIN)/python -m bench.run --only backfill

soak: venv ## The fault drill at 20,000 changes (about half an hour): nothing may be lost
	$(BIN)/python -m nrtsync_local.drill --changes 20000

# SAMCONFIG=samconfig.local.toml deploys with your untracked copy; ENV=staging|prod one of its environments.
SAMCONFIG ?= samconfig.toml
ENV ?= default

deploy-guided: build ## First deploy: SAM asks for every parameter and saves the answers (to SAMCONFIG, default samconfig.toml)
	PATH="$(SAM_PATH)" $(TOOLS)/sam deploy --guided --config-file $(SAMCONFIG) --config-env $(ENV)

deploy: build ## Deploy with the saved configuration (SAMCONFIG=..., ENV=default|staging|prod); asks nothing but the change set
	PATH="$(SAM_PATH)" $(TOOLS)/sam deploy --config-file $(SAMCONFIG) --config-env $(ENV)

clean: ## Remove virtualenvs, build output and caches
	rm -rf $(VENV) $(TOOLS_VENV) .aws-sam .local .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
