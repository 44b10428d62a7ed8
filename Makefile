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

.PHONY: help venv tools lint typecheck unit integration e2e test template build package-test demo local bench soak deploy clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

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

test: lint typecheck template ## Everything CI runs: lint, types, template checks, all tests, sam build
	@# Two workers, whole files each: the e2e files start servers per file; most tests wait on I/O.
	$(BIN)/pytest -q -p no:cacheprovider -n 2 --dist loadfile tests/unit tests/integration tests/harness tests/bench tests/docs tests/template tests/e2e
	$(MAKE) --no-print-directory package-test

demo: venv ## Run the pipeline on this machine on a realistic callout stream, show the Sync History, verify Salesforce
	$(BIN)/python -m nrtsync_local.demo

local: venv ## Run the stack on this machine (moto, Salesforce stand-in, local API) until Ctrl-C
	$(BIN)/python -m nrtsync_local.stack

bench: venv ## Measure API calls, throughput vs a one-call-per-record baseline, e2e latency, imports, memory
	$(BIN)/python -m bench.run

soak: venv ## The fault drill at 20,000 changes (about half an hour): nothing may be lost
	$(BIN)/python -m nrtsync_local.drill --changes 20000

deploy: build ## Deploy with SAM (asks for the stack's parameters the first time)
	PATH="$(SAM_PATH)" $(TOOLS)/sam deploy --guided

clean: ## Remove virtualenvs, build output and caches
	rm -rf $(VENV) $(TOOLS_VENV) .aws-sam .local .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
