# Sluice's two entry points (see README.md):
#   make run    build and start a one-node cluster with the embedded defaults
#   make test   install every prerequisite and client, then run the whole test suite
# Both install what they need, idempotently, on a fresh Debian machine with Rust.

SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

.PHONY: run test deps lint build bench-quick

deps:
	@command -v $(CARGO) >/dev/null || { echo "Rust is required (https://rustup.rs)"; exit 1; }
	@# RocksDB's bindings are generated with libclang.
	@dpkg -s libclang-dev >/dev/null 2>&1 || { \
		echo "[deps] installing libclang-dev"; \
		$(SUDO) apt-get update -q && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -q libclang-dev; }

build: deps
	$(CARGO) build --workspace

run: build
	$(CARGO) run --bin sluice -- serve $(ARGS)

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: deps
	compat-tests/setup.sh
	$(MAKE) lint
	$(CARGO) build --workspace
	$(CARGO) test --workspace
	$(MAKE) bench-quick

# A tiny run of every benchmark scenario against sluice and Apache Kafka, so the harness
# keeps working; the full comparison is `compat-tests/bench/run` (see its RESULTS.md).
bench-quick: build
	SLUICE_BIN=$(TARGET_DIR)/debug/sluice compat-tests/bench/run --quick --skip-setup
