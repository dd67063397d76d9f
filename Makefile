# Vaka: `make run` starts the engine on config/vaka.toml; `make test` runs every test.
# A fixed target dir outside the clone lets CI and later clones reuse the (long) RocksDB build.
CARGO_TARGET_DIR ?= $(HOME)/.cache/vaka/target
export CARGO_TARGET_DIR
CONFIG ?= config/vaka.toml

.PHONY: deps run test lint bench fmt load

deps:
	@scripts/install-deps.sh

run: deps
	cargo run --bin vaka -- certs --config $(CONFIG) --dir certs
	cargo run --bin vaka -- serve --config $(CONFIG)

lint: deps
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

test: deps lint
	cargo test --workspace --all-targets

bench: deps
	cargo bench -p vaka-benches

fmt:
	cargo fmt --all

# Against a running `make run`: 10 s of the mixed scenario over vaka/1 with the centre simulated.
LOAD_ARGS ?= mixed --rate 100 --duration 10 --centre --json data/load.json --plot data/load.svg
load: deps
	cargo run --bin vaka-load -- $(LOAD_ARGS)
