# Vaka: `make run` starts the engine on config/vaka.toml; `make test` runs every test.
# A fixed target dir outside the clone lets CI and later clones reuse the (long) RocksDB build.
CARGO_TARGET_DIR ?= $(HOME)/.cache/vaka/target
export CARGO_TARGET_DIR
CONFIG ?= config/vaka.toml

.PHONY: deps build run centre test lint bench fmt load

deps:
	@scripts/install-deps.sh

# `run` and `load` build exactly what `test` builds (the whole workspace, every target), so RocksDB
# is compiled once for all three: `cargo run --bin X` selects fewer packages, unifies features
# differently and would compile RocksDB a second time (~15 minutes here).
BIN = $(CARGO_TARGET_DIR)/debug

build: deps
	cargo build --workspace --all-targets

run: build
	$(BIN)/vaka certs --config $(CONFIG) --dir certs
	$(BIN)/vaka serve --config $(CONFIG)

# The demo alarm centre (see the README tour): `make centre CENTRE_ARGS=--json` for scripts.
CENTRE_ARGS ?=
centre: build
	$(BIN)/vaka-centre --token demo-centre-token --ca certs/server-ca.pem $(CENTRE_ARGS)

lint: deps
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	@# cargo deny reads every locked package's manifest, optional ones a build never downloads.
	cargo fetch --locked --quiet
	cargo deny --offline check licenses bans sources

# Then a short run of every fuzz target (20 s each: scripts/fuzz.sh short; cargo-fuzz on the
# nightly toolchain, in a build dir of its own: the fuzz workspace has no RocksDB and its own
# compiler flags). The long runs: scripts/fuzz.sh long (fuzz/README.md).
FUZZ_TARGET_DIR ?= $(HOME)/.cache/vaka/target-fuzz
test: deps lint
	cargo test --workspace --all-targets
	CARGO_TARGET_DIR=$(FUZZ_TARGET_DIR) scripts/fuzz.sh short

bench: deps
	cargo bench -p vaka-benches

fmt:
	cargo fmt --all

# Against a running `make run`: 10 s of the mixed scenario over vaka/1 with the centre simulated.
LOAD_ARGS ?= mixed --rate 100 --duration 10 --centre --json data/load.json --plot data/load.svg
load: build
	$(BIN)/vaka-load $(LOAD_ARGS)
