# linkharvest: `make test` installs what the tests need (redis-server, minio)
# and runs every test against real Redis and MinIO processes that the test
# harness (internal/testenv) starts on free loopback ports.
GO          ?= go
GOBIN       := $(shell $(GO) env GOPATH)/bin
MINIO_MOD   := github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c
# A count of runs, not a duration: Go 1.26's fuzz coordinator can fail a
# target with "context deadline exceeded" when a duration ends while a
# worker is mid-run (golang/go#75804, fixed in Go 1.27); a count has no
# deadline to race.
FUZZTIME    ?= 100000x
export PATH := $(GOBIN):$(PATH)

.PHONY: all build deps test test-race test-faults fuzz bench vet

all: build

build:
	$(GO) build ./...

## deps: redis-server and chromium (asynqmon's browser test) from Debian's packages, minio from the Go module
## proxy (about 5 minutes the first time).
deps:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq redis-server; fi; }
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq --no-install-recommends chromium; fi; }
	@command -v minio >/dev/null 2>&1 || { echo "installing minio (takes a few minutes the first time)"; $(GO) install $(MINIO_MOD); }
	@redis-server --version | head -1; chromium --version 2>/dev/null | head -1; minio --version 2>/dev/null | head -1 || true

vet:
	$(GO) vet ./...

## test: the default suite (unit, contract, integration, end-to-end).
test: deps
	$(GO) test -count=1 -timeout 20m ./...

## test-race: the packages' tests under the race detector (the programs' end-to-end
## tests in tests/ run their own processes, which the detector would not see).
test-race: deps
	$(GO) test -race -count=1 -timeout 20m $$($(GO) list ./... | grep -v -e /tests$$ -e /bench/ -e /deploy$$)

## test-faults: crash, restart, outage and storm cases (issue 6).
test-faults: deps
	LINKHARVEST_FAULTS=1 $(GO) test -count=1 -timeout 50m -run 'Fault' ./tests/...

## fuzz: a short run of every fuzz target.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

## bench: issue 7's measurements, each against its baseline in the same run (about 15 minutes
## on 2 cores; each program has flags for a shorter run), then the Go benchmarks.
bench: deps
	$(GO) run ./bench/rowcost
	$(GO) run ./bench/memory
	$(GO) run ./bench/queue
	$(GO) run ./bench/enqueue
	$(GO) run ./bench/scale
	$(GO) run ./bench/refresh
	$(GO) test -run '^$$' -bench . -benchmem ./sink/ ./providers/... ./domains/ ./limiter/
