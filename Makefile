# provisioner: turns NATS JetStream requests into CloudNexus instances.
.DEFAULT_GOAL := help
GO ?= go
BIN := bin

.PHONY: help build run test test-faults bench bench-quick lint fuzz clean

help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/provisioner, bin/cnsim and the other programs
	$(GO) build -o $(BIN)/ ./cmd/...

run: build ## run the whole pipeline locally: in-process NATS + simulator + worker (-dev)
	$(BIN)/provisioner -dev

test: ## run every test with the race detector
	$(GO) test -race -count=1 -timeout 20m ./...

test-faults: ## run the fault-injection suite and rewrite docs/RELIABILITY.md
	FAULTS_REPORT=docs/RELIABILITY.md $(GO) test -race -count=1 -timeout 15m -v -run TestFaults ./faults/

bench: build ## run every benchmark scenario and rewrite docs/BENCHMARKS.md
	$(BIN)/provbench -provisioner $(BIN)/provisioner -out docs/BENCHMARKS.md

bench-quick: build ## every scenario at a small size; checks only that all jobs end
	$(BIN)/provbench -quick -provisioner $(BIN)/provisioner

lint: ## go vet, gofmt, and golangci-lint when installed
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	 if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@if command -v golangci-lint >/dev/null 2>&1; then golangci-lint run ./...; else echo "golangci-lint not installed: skipped"; fi

fuzz: ## fuzz the decoders of requests, instances and the simulator's create bodies, and the plain-JSON readers, 30s each
	$(GO) test -run=XXX -fuzz=FuzzDecodeRequest -fuzztime=30s ./jobs/
	$(GO) test -run=XXX -fuzz=FuzzDecodeInstance -fuzztime=30s ./apiclient/
	$(GO) test -run=XXX -fuzz=FuzzDecodeCreate -fuzztime=30s ./apiclient/cnsim/
	$(GO) test -run=XXX -fuzz=FuzzPlainJSON -fuzztime=30s ./internal/plainjson/

clean: ## remove build output and the -dev data directory
	rm -rf $(BIN) data
