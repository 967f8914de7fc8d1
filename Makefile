# dspgo build and test entry points. `make test` is the one command CI runs;
# it installs what it needs first, so it works on a fresh machine.

GO ?= go
PYTHON ?= python3
STATICCHECK_VERSION ?= v0.8.2

export DSPGOTEST_PYTHON := $(PYTHON)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: test deps check-python vet test-go test-python test-bench lint fuzz bench chaos

## test: install dependencies, then vet, run every Go test with the race detector, every Go benchmark once, and the Python worker's suite
test: deps vet test-go test-bench test-python

## deps: download Go modules and check the Python interpreter
deps: check-python
	$(GO) mod download

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

## bench: the benchmark suite, raw baseline and dspgo side by side (docs/performance.md)
BENCH_FLAGS ?= --runs 3 --duration 1s
bench: deps
	$(GO) run ./cmd/dspgo bench --suite $(BENCH_FLAGS) --json bench-results.json

## chaos: the full chaos suite (a short run is part of make test), printing its figures
chaos: deps
	$(GO) test -race -count=1 -tags chaos -run '^TestChaos$$' -v -timeout 30m ./adapters/pool/ | grep -v '^=== '

test-python:
	cd python && $(PYTHON) -m unittest discover -s tests -t . -v

## lint: staticcheck over every package
lint:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

## fuzz: run every fuzz target for FUZZTIME each (default 30s); their seed corpora run in make test
FUZZTIME ?= 30s
FUZZ_TARGETS = FuzzReadFrame:./protocol/ FuzzParseSignature:./internal/program/ FuzzInputs:./internal/program/ FuzzLoad:./config/
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "== $${t%%:*}"; $(GO) test -run '^$$' -fuzz "^$${t%%:*}$$" -fuzztime $(FUZZTIME) $${t#*:}; \
	done
