# Parley: `make run` serves on the embedded store, `make test` runs every test.
GO       ?= go
# A count, not a duration: a duration races Go 1.26's fuzz coordinator at
# its deadline and can fail with "context deadline exceeded" and no crasher
# (go.dev/issue/75804, fixed in Go 1.27).
FUZZTIME ?= 300000x
FUZZBODY ?= 1000x

.PHONY: run test unit fuzz build lint bench services services-down release

run:
	$(GO) run ./cmd/parleyd

# Every test: the MySQL, Redis and RocketMQ tests need the local services,
# which `services` installs and starts when they are not already up.
test: services lint unit fuzz

# MariaDB, Redis and RocketMQ on loopback (scripts/README.md); idempotent.
services:
	bash scripts/services.sh up

services-down:
	bash scripts/services.sh down

# Every package on the embedded store, then the end-to-end suites again on
# MySQL and Redis (those of `make services`); the chaos tests, which start
# private services of their own, run in the first pass only.
# The tests that run the RocketMQ client in the test process (router/rocketmq
# and the chaos tests) run without -race: the client (v2.1.2, the newest)
# races with itself when a consumer shuts down during a rebalance (upstream
# issue 293; the fix, pull request 1115, is unmerged), and the detector
# fails the test. Everything else runs with -race.
RACE_PKGS = $$($(GO) list ./... | grep -v '/router/rocketmq$$')
unit:
	$(GO) test -race -count=1 -timeout 20m -skip TestChaos $(RACE_PKGS)
	$(GO) test -count=1 -timeout 20m ./router/rocketmq
	$(GO) test -count=1 -timeout 20m -run TestChaos ./cmd/parleyd
	PARLEY_TEST_STORE=mysql PARLEY_TEST_PRESENCE=redis $(GO) test -race -count=1 -timeout 20m -skip TestChaos ./server/... ./client/... ./cmd/...

# The decoder's fuzz target, then the target of every body type
# (protocol/fuzzbody_test.go), each for a bounded count. Their committed
# seeds (protocol/testdata/fuzz) also run in `unit`.
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzDecode -fuzztime=$(FUZZTIME) ./protocol
	for t in $$($(GO) test -list '^FuzzBody' ./protocol | grep '^FuzzBody'); do \
	  out=$$($(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZBODY) ./protocol 2>&1) || { echo "$$out"; exit 1; }; done

build:
	$(GO) build -o bin/ ./cmd/...

# The standard load test: a parleyd on a fresh embedded store (cheap bcrypt,
# no per-connection rate limit, metrics on), then the echo baseline, p2p,
# a 1,000-member group and 15,000 held connections. Results, with charts,
# in bench-results/ (docs/benchmarks.md explains them).
BENCH_ADDR ?= 127.0.0.1:7480
BENCH_METRICS ?= 127.0.0.1:7481
bench: build
	rm -rf bench-results/data && mkdir -p bench-results
	bin/parleyd --listen $(BENCH_ADDR) --data-dir bench-results/data --metrics-listen $(BENCH_METRICS) \
	  --bcrypt-cost 4 --rate-limit -1 --auth-rate -1 --max-conns-per-addr -1 --hash-workers 2 --hash-queue 100000 --dm-policy anyone --log-level warn & pid=$$!; sleep 1; \
	bin/parley-bench --addr $(BENCH_ADDR) --metrics http://$(BENCH_METRICS) --duration 10s \
	  --conns 15000 --parallel 128 --pairs 50 --window 16 --members 1000 --senders 2 --group-window 4 \
	  --json bench-results/report.json --html bench-results/report.html conns baseline p2p group; \
	status=$$?; kill $$pid; wait $$pid; exit $$status

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Release archives in dist/: static binaries (CGO_ENABLED=0: every store is
# pure Go) of parleyd, parley and parley-bench for each of PLATFORMS, with
# the version stamped (parleyd --version), deploy/ and docs/operations.md,
# and SHA256SUMS over the archives. VERSION defaults to `git describe`.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
DATE      ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64
VPKG      := github.com/parleyim/parley/cmd/internal/version
RELEASE_LDFLAGS := -s -w -X $(VPKG).Version=$(VERSION) -X $(VPKG).Commit=$(COMMIT) -X $(VPKG).Date=$(DATE)
release:
	rm -rf dist && mkdir -p dist
	set -e; for p in $(PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; d=parley-$(VERSION)-$$os-$$arch; mkdir -p dist/$$d; \
	  echo "build $$d"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "$(RELEASE_LDFLAGS)" -o dist/$$d/ ./cmd/parleyd ./cmd/parley ./cmd/parley-bench; \
	  cp deploy/parleyd.service deploy/parleyd.toml docs/operations.md dist/$$d/; \
	  tar -C dist -czf dist/$$d.tar.gz $$d; rm -rf dist/$$d; \
	done
	cd dist && if command -v sha256sum >/dev/null; then sha256sum *.tar.gz; else shasum -a 256 *.tar.gz; fi > SHA256SUMS
	cat dist/SHA256SUMS
