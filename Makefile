# I2S resilience harness. `make help` lists the targets.
SHELL := bash
PLATFORM ?= kind
VENV ?= .venv
PY := $(VENV)/bin/python
OFFLINE := ../shared/offline-images
# On a machine without a registry, testcontainers needs the offline environment (no reaper, loopback).
WITH_ENV := $(if $(wildcard $(OFFLINE)/env.sh),. $(OFFLINE)/env.sh &&,)
PYTEST_ARGS ?=

.PHONY: help venv docker-ready test e2e chaos capacity bench clean lint images
.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  PLATFORM=kind|docker|context (default kind); CONTEXT=NAME for an existing cluster"

venv: $(VENV)/.installed ## create the virtual environment (first use only)
$(VENV)/.installed: pyproject.toml constraints.txt
	@echo "setting up $(VENV) (first use, or pyproject.toml changed)" >&2
	@test -x $(PY) || python3 -m venv $(VENV)
	@( $(PY) -m pip install -q --upgrade pip && $(PY) -m pip install -q -c constraints.txt -e '.[sut]' ) \
	  > $(VENV)/install.log 2>&1 || { tail -n 20 $(VENV)/install.log >&2; echo "pip install failed; see $(VENV)/install.log" >&2; exit 1; }
	@touch $@

docker-ready: ## start Docker / build the offline images where needed
	@tools/docker-ready.sh

test: venv docker-ready ## run the harness's own tests (unit and real-container integration)
	@$(WITH_ENV) $(PY) -m pytest $(PYTEST_ARGS)

e2e: venv ## the main job: stack + platform + scenarios, report in reports/latest
	@$(PY) -m harness preflight --platform $(PLATFORM) $(if $(CONTEXT),--context $(CONTEXT)) --tools-only
	@$(MAKE) --no-print-directory docker-ready
	@$(WITH_ENV) $(PY) -m harness e2e --platform $(PLATFORM) $(if $(CONTEXT),--context $(CONTEXT)) -- $(PYTEST_ARGS)

chaos: venv ## chaos experiments with RTO/RPO against the targets
	@$(PY) -m harness preflight --platform $(PLATFORM) $(if $(CONTEXT),--context $(CONTEXT)) --tools-only
	@$(MAKE) --no-print-directory docker-ready
	@$(WITH_ENV) $(PY) -m harness chaos --platform $(PLATFORM) $(if $(CONTEXT),--context $(CONTEXT)) -- $(PYTEST_ARGS)

capacity: venv ## pre-release capacity verification (TARGET_PEAK_RPS=...)
	@$(PY) -m harness preflight --platform $(PLATFORM) $(if $(CONTEXT),--context $(CONTEXT)) --tools-only
	@$(MAKE) --no-print-directory docker-ready
	@$(WITH_ENV) $(if $(TARGET_PEAK_RPS),HARNESS_TARGET_PEAK_RPS=$(TARGET_PEAK_RPS)) $(PY) -m harness capacity --platform $(PLATFORM) $(if $(CONTEXT),--context $(CONTEXT)) -- $(PYTEST_ARGS)

bench: venv docker-ready ## print benchmark figures (load generator, oracles)
	@$(WITH_ENV) for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

images: venv ## list and pre-pull every image a kind run needs (runs side-load them; avoids Hub rate limits)
	@$(PY) -m harness images --pull

clean: venv ## remove leftovers of earlier runs (containers, networks, volumes, kind clusters)
	@$(PY) -m harness clean
