# dspgo build and test entry points. `make test` is the one command CI runs;
# it installs what it needs first, so it works on a fresh machine.

GO ?= go
PYTHON ?= python3
STATICCHECK_VERSION ?= v0.8.2

export DSPGOTEST_PYTHON := $(PYTHON)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: test deps check-python vet test-go test-python lint fuzz

## test: install dependencies, then vet, run every Go test with the race detector and the Python worker's suite
test: deps vet test-go test-python

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

test-python:
	cd python && $(PYTHON) -m unittest discover -s tests -t . -v

## lint: staticcheck over every package
lint:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

## fuzz: run the frame decoder's fuzz target for FUZZTIME (default 30s)
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzReadFrame -fuzztime $(FUZZTIME) ./protocol/
