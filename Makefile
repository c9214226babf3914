# Parley: `make run` serves on the embedded store, `make test` runs every test.
GO       ?= go
FUZZTIME ?= 20s

.PHONY: run test unit fuzz build lint bench

run:
	$(GO) run ./cmd/parleyd

test: lint unit fuzz

unit:
	$(GO) test -race -count=1 -timeout 20m ./...

# The decoder's fuzz target, for a bounded time.
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzDecode -fuzztime=$(FUZZTIME) ./protocol

build:
	$(GO) build -o bin/ ./cmd/...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
