# Nimbus: the two commands are `make up` and `make test` (see README.md).
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
BIN := bin/nimbus
DATA_DIR ?= $(CURDIR)/data
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: up guest build deps test-deps test unit cli-test fuzz lint conformance bench bench-compute clean

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/nimbus

# Debian packages the cloud needs at run time (installed when run as root).
deps:
	@scripts/install-deps.sh run

up: deps build guest
	$(BIN) up --data-dir $(DATA_DIR)

# The guest image (scripts/build-guest-image.sh, cached): `nimbus up`
# registers it on first start and its kernel is the compute agent's boot
# probe. Building it needs root, as guests do.
guest:
	@if [ "$$(id -u)" = 0 ]; then scripts/build-guest-image.sh $(DATA_DIR)/guest; \
	else echo "not root: no guest image and no agents (run make up as root to boot guests)"; fi

# Debian packages the tests need: PostgreSQL for the store's tests and the
# OpenStack CLI that judges the API.
test-deps:
	@scripts/install-deps.sh test

test: test-deps build
	scripts/test.sh

fuzz:
	scripts/fuzz.sh

conformance: build
	scripts/conformance.sh all

bench: build
	scripts/bench.sh && scripts/bench-image.sh && scripts/bench-network.sh && scripts/bench-object.sh

# The compute benchmarks: 1,000 fake hosts / 10,000 servers (about 25
# minutes here) and real QEMU boots as root (docs/performance.md).
bench-compute: build
	scripts/bench-compute.sh

lint:
	gofmt -l . | (! grep .)
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

clean:
	rm -rf bin
