# I2S resilience harness. `make help` lists the targets.
SHELL := bash
# PLATFORM, CONTEXT, TARGET_PEAK_RPS: passed on only when given (make's command line or environment), so
# the harness's own precedence holds: flag > HARNESS_* > [tool.harness] in pyproject.toml > default.
VENV ?= .venv
PY := $(VENV)/bin/python
OFFLINE := ../shared/offline-images
# On a machine without a registry, testcontainers needs the offline environment (no reaper, loopback).
WITH_ENV := $(if $(wildcard $(OFFLINE)/env.sh),. $(OFFLINE)/env.sh &&,)
PYTEST_ARGS ?=
# make test's parallel workers (pytest-xdist). Most of an integration test's time is spent waiting for
# containers, Envoy timers and chaos pauses, not computing, so more workers than cores pay off; tests
# sharing a module's stack stay on one worker (tests/conftest.py). TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 4
XDIST = $(if $(filter 0,$(TEST_WORKERS)),-p no:xdist,-n $(TEST_WORKERS) --dist loadscope)
REPORTS := $(or $(HARNESS_REPORT_DIR),reports)
# GNU make can only exit 0 or 2. A harness target keeps the harness's own code (README "Exit codes")
# in $(REPORTS)/exit-code and, on failure, names it and its meaning as its last line before make's
# own "*** Error" line. Scripts that need the code call `.venv/bin/python -m harness ...` directly.
define harness_run
	@code=0; ( $(1) ) || code=$$?; mkdir -p $(REPORTS) && echo $$code > $(REPORTS)/exit-code; \
	if [ $$code -ne 0 ]; then echo "make $@: harness exit $$code: $$($(PY) -c 'import sys; from harness.errors import EXIT_CODES; print(EXIT_CODES.get(int(sys.argv[1]), "not a harness code"))' $$code) (also in $(REPORTS)/exit-code)" >&2; exit $$code; fi
endef
TARGET_ARGS = $(if $(PLATFORM),--platform $(PLATFORM)) $(if $(CONTEXT),--context $(CONTEXT))

.PHONY: help venv docker-ready test test-unit test-stress lint audit e2e chaos capacity bench clean images doctor
.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo "  PLATFORM=auto|kind|docker|context (unset: HARNESS_PLATFORM, then pyproject, then auto: kind when \`make doctor\` passes, else docker); CONTEXT=NAME for an existing cluster"

venv: $(VENV)/.installed ## create the virtual environment (first use only)
$(VENV)/.installed: pyproject.toml constraints.txt
	@echo "setting up $(VENV) (first use, or pyproject.toml changed)" >&2
	@test -x $(PY) || python3 -m venv $(VENV)
	@( $(PY) -m pip install -q --upgrade pip && $(PY) -m pip install -q -c constraints.txt -e '.[sut,dev]' ) \
	  > $(VENV)/install.log 2>&1 || { tail -n 20 $(VENV)/install.log >&2; echo "pip install failed; see $(VENV)/install.log" >&2; exit 1; }
	@touch $@

docker-ready: ## start Docker / build the offline images where needed
	@tools/docker-ready.sh

test: venv docker-ready ## run the harness's own tests (unit and real-container integration), in parallel
	@$(WITH_ENV) tools/run-tests.sh $(PY) $(TEST_WORKERS) $(PYTEST_ARGS)

test-unit: venv ## the unit tests only (no Docker): the inner loop
	@# bytecode written, as in tools/run-tests.sh (each xdist worker re-compiled every test module without it)
	@env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest tests/unit sut/conductor/tests $(XDIST) $(PYTEST_ARGS)

test-stress: venv ## make test while a docker chaos run from a clean clone runs beside it (hidden clocks show)
	@tools/stress-test.sh

lint: venv ## ruff over the Python (rules in pyproject.toml), mypy over harness/ (strict on the pure layers), shellcheck over the harness's shell scripts
	@$(VENV)/bin/ruff check --no-cache .
	@$(VENV)/bin/mypy
	@$(VENV)/bin/shellcheck .ci/run tools/*.sh

audit: venv ## the seed's configuration against its RTO/RPO targets: findings table + audit.json, seconds, no Docker (exit 0 none blocking, 10 blocking)
	$(call harness_run,$(PY) -m harness audit)

e2e: venv ## the main job: stack + platform + scenarios, report in reports/latest
	$(call harness_run,$(PY) -m harness preflight $(TARGET_ARGS) --suite e2e --tools-only && { tools/docker-ready.sh || exit 13; } && $(WITH_ENV) $(PY) -m harness e2e $(TARGET_ARGS) -- $(PYTEST_ARGS))

chaos: venv ## chaos experiments with RTO/RPO against the targets
	$(call harness_run,$(PY) -m harness preflight $(TARGET_ARGS) --suite chaos --tools-only && { tools/docker-ready.sh || exit 13; } && $(WITH_ENV) $(PY) -m harness chaos $(TARGET_ARGS) -- $(PYTEST_ARGS))

capacity: venv ## pre-release capacity verification (TARGET_PEAK_RPS=...)
	$(call harness_run,$(PY) -m harness preflight $(TARGET_ARGS) --suite capacity --tools-only && { tools/docker-ready.sh || exit 13; } && $(WITH_ENV) $(if $(TARGET_PEAK_RPS),HARNESS_TARGET_PEAK_RPS=$(TARGET_PEAK_RPS)) $(PY) -m harness capacity $(TARGET_ARGS) -- $(PYTEST_ARGS))

bench: venv docker-ready ## print benchmark figures (load generator, oracles)
	@$(WITH_ENV) for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

doctor: venv ## what kind needs here, checked, as a table (versions, inotify, CPUs, memory, disk, images, login, ports); creates nothing
	@$(PY) -m harness doctor

images: venv ## list and pre-pull every image a kind run needs (runs side-load them; avoids Hub rate limits)
	@$(PY) -m harness images --pull

clean: venv ## remove leftovers of earlier runs (containers, networks, volumes, kind clusters)
	@$(PY) -m harness clean
