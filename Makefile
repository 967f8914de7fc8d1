# dspgo build and test entry points. `make test` is the one command CI runs;
# it installs what it needs first, so it works on a fresh machine.

GO ?= go
PYTHON ?= python3
STATICCHECK_VERSION ?= v0.8.2

# The Python test environment: a virtual environment (ignored by git) with the
# real dspy and every dependency at the exact versions of DSPY_LOCK.
VENV ?= .venv
VENV_PYTHON := $(CURDIR)/$(VENV)/bin/python
DSPY_LOCK := python/requirements-dspy.lock
# The OpenAI-compatible test LM server the Python tests start (internal/lmtest).
LMTESTD := $(CURDIR)/bin/lmtestd

export DSPGOTEST_PYTHON := $(PYTHON)
export DSPGOTEST_DSPY_PYTHON := $(VENV_PYTHON)
export DSPGOTEST_LMSERVER := $(LMTESTD)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: test deps check-python venv vet test-go test-python test-python-bare test-python-dspy test-python-versions test-bench lint lint-python fuzz bench chaos soak lmtestd

## test: install dependencies, then vet, type-check and lint the Python worker, run every Go test with the race detector, every Go benchmark once, and the Python worker's suite on every bare interpreter found (test-python-versions), then with dspy
# DSPGOTEST_REQUIRE_DSPY turns "dspy environment missing" from a skip into a failure.
test: export DSPGOTEST_REQUIRE_DSPY := 1
test: deps vet lint-python test-go test-bench test-python-versions test-python-dspy

## deps: download Go modules, check the Python interpreter, create the dspy test environment and build the test LM server
deps: check-python venv lmtestd
	$(GO) mod download

## venv: the Python test environment with dspy, from $(DSPY_LOCK) (recreated when the lock changes)
venv: $(VENV)/.installed

$(VENV)/.installed: $(DSPY_LOCK) | check-python
	@rm -rf $(VENV)
	@$(PYTHON) -m venv $(VENV) || { \
	  echo "dspgo: '$(PYTHON) -m venv' failed; the tests need Python's venv module (Debian/Ubuntu: apt-get install -y python3-venv)" >&2; \
	  exit 1; }
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --require-virtualenv -r $(DSPY_LOCK) || { \
	  echo "dspgo: installing the dspy test environment from $(DSPY_LOCK) failed (pip's output is above); it needs the Python package index" >&2; \
	  rm -rf $(VENV); exit 1; }
	$(VENV)/bin/python -m pip check --disable-pip-version-check
	@touch $@

lmtestd:
	$(GO) build -o $(LMTESTD) ./internal/lmtest/lmtestd

check-python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { \
	  echo "dspgo: '$(PYTHON)' was not found. dspgo's workers and tests need Python 3.9 or newer:" >&2; \
	  echo "  install it (Debian/Ubuntu: apt-get update && apt-get install -y python3) or run: make test PYTHON=/path/to/python3" >&2; \
	  exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' || { \
	  echo "dspgo: '$(PYTHON)' is $$($(PYTHON) -V 2>&1); dspgo needs Python 3.9 or newer (run: make test PYTHON=/path/to/python3)" >&2; \
	  exit 1; }

vet:
	$(GO) vet ./...

test-go:
	$(GO) test -race -count=1 ./...

# Every benchmark for one iteration, so they keep compiling and working.
test-bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...

## bench: the benchmark suite, raw baseline and dspgo side by side (docs/performance.md); with an earlier bench-results.json, each row's change against it
BENCH_FLAGS ?= --runs 3 --duration 1s
bench: deps
	@mkdir -p bin && if [ -f bench-results.json ]; then cp bench-results.json bin/bench-results.prev.json; else rm -f bin/bench-results.prev.json; fi
	$(GO) run ./cmd/dspgo bench --suite $(BENCH_FLAGS) --json bench-results.json $$([ -f bin/bench-results.prev.json ] && echo --compare bin/bench-results.prev.json)

## chaos: the full chaos suite (a short run is part of make test), printing its figures
chaos: deps
	@{ $(GO) test -race -count=1 -tags chaos -run '^TestChaos$$' -v -timeout 30m ./adapters/pool/ 2>&1; echo $$? > bin/.chaos-status; } | grep -v '^=== '; exit $$(cat bin/.chaos-status)

## soak: the remote adapter's loopback soak (SOAK=10m by default), printing its figures (docs/reliability.md)
SOAK ?= 10m
soak:
	DSPGOTEST_REMOTE_SOAK=$(SOAK) $(GO) test -race -count=1 -tags soak -run '^TestSoak$$' -v -timeout 0 ./adapters/remote/

## test-python: the worker's suite on the bare interpreter (standard library only: dspy stays optional), then in the dspy environment
test-python: test-python-bare test-python-dspy

test-python-bare:
	cd python && $(PYTHON) -m unittest discover -s tests -t . -v

test-python-dspy: venv lmtestd
	cd python && DSPGOTEST_DSPY_EXPECTED=1 $(VENV_PYTHON) -m unittest discover -s tests -t . -v

## test-python-versions: the worker's bare suite on every Python 3.9 or newer in PYTHONS (default: $(PYTHON), then python3.9 … python3.14 on the PATH and pyenv's versions), each version once
PYTHONS ?= $(PYTHON) $(wildcard $(or $(PYENV_ROOT),$(HOME)/.pyenv)/versions/3.*/bin/python3) $(foreach v,9 10 11 12 13 14,$(shell command -v python3.$(v)))
test-python-versions: lmtestd
	@seen=""; for py in $(PYTHONS); do \
	  v=$$($$py -c 'import sys; print("%d.%d" % sys.version_info[:2]) if sys.version_info >= (3, 9) else None' 2>/dev/null) || continue; \
	  case "$$v" in ""|None) continue;; esac; \
	  case " $$seen " in *" $$v "*) continue;; esac; \
	  seen="$$seen $$v"; echo "== Python $$v ($$py)"; \
	  (cd python && $$py -m unittest discover -s tests -t .) || exit 1; \
	done; \
	[ -n "$$seen" ] || { echo "dspgo: no Python 3.9 or newer in PYTHONS ($(PYTHONS))" >&2; exit 1; }; \
	echo "dspgo: the worker's suite passed on Python$$seen"

## lint: staticcheck over every package, and the Python worker's checks (lint-python)
lint: lint-python
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

## lint-python: mypy --strict and ruff over the worker (settings in python/pyproject.toml, versions in $(DSPY_LOCK))
lint-python: venv
	cd python && $(VENV_PYTHON) -m mypy
	cd python && $(VENV_PYTHON) -m ruff check --no-cache .

## fuzz: run every fuzz target for FUZZTIME each (default 30s); their seed corpora run in make test
FUZZTIME ?= 30s
FUZZ_TARGETS = FuzzReadFrame:./protocol/ FuzzParseSignature:./internal/program/ FuzzInputs:./internal/program/ FuzzLoad:./config/
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "== $${t%%:*}"; $(GO) test -run '^$$' -fuzz "^$${t%%:*}$$" -fuzztime $(FUZZTIME) $${t#*:}; \
	done
