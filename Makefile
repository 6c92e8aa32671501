# Two commands a newcomer needs: `make demo` and `make test`. Both set up what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.installed

.PHONY: help setup tools test lint fmt-check clippy cfn-lint unit demo local bench build lambda-invoke clean

help:
	@echo "make demo   - the whole system locally: orders that succeed, fail and survive an outage, with timelines and costs"
	@echo "make local  - run the whole system locally (HTTP APIs on 127.0.0.1:3000; PORT=3001 to change) until Ctrl-C"
	@echo "make test   - fmt check, clippy, cfn-lint and every test (unit and against moto)"
	@echo "make setup  - install the dev tools (moto, cfn-lint, localstripe, schemathesis) into $(VENV)"
	@echo "make bench  - resilience overhead against the Rust peers (criterion)"
	@echo "make build  - release arm64 Lambda binaries with cargo-lambda (no Docker)"
	@echo "make lambda-invoke - run a function under cargo lambda watch and invoke it with an events/ fixture"

# Python dev tools (moto server, cfn-lint), pinned in requirements-dev.txt, in a local virtualenv.
setup: $(VENV_STAMP)
$(VENV_STAMP): requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.10+"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# Rust tools: cargo-nextest runs the tests.
tools:
	@command -v cargo >/dev/null || { echo "error: cargo not found; install Rust from https://rustup.rs"; exit 1; }
	@command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest

fmt-check:
	cargo fmt --all --check

clippy:
	cargo clippy --workspace --all-targets --locked -- -D warnings

cfn-lint: setup
	$(VENV)/bin/cfn-lint template.yaml

lint: fmt-check clippy cfn-lint

# Doc tests first: nextest's summary is the run's closing line.
unit: setup tools
	cargo test --workspace --doc --locked
	cargo nextest run --workspace --locked --no-tests=fail

test: setup tools fmt-check cfn-lint clippy unit

demo: setup
	cargo run --quiet --locked -p local-host --bin demo

PORT ?= 3000
local: setup
	cargo run --quiet --locked -p local-host --bin local-host -- --port $(PORT)

# Lambda artefacts (target/lambda/<binary>/bootstrap) for arm64, as `sam build` makes them:
# cargo-lambda and zig come from PyPI into .venv-build, the aarch64 target from rustup.
BUILD_VENV := .venv-build
CARGO_LAMBDA := $(BUILD_VENV)/bin/cargo-lambda
$(CARGO_LAMBDA):
	$(PYTHON) -m venv $(BUILD_VENV)
	$(BUILD_VENV)/bin/pip install --quiet --disable-pip-version-check cargo-lambda==1.9.2 ziglang==0.17.1

build: $(CARGO_LAMBDA)
	rustup target add aarch64-unknown-linux-gnu
	PATH="$(CURDIR)/$(BUILD_VENV)/bin:$$PATH" cargo lambda build --release --arm64 --locked -p orders -p inventory -p payments
	@ls -l target/lambda/*/bootstrap

# A function binary under cargo-lambda's emulator, invoked with an events/ fixture: the
# `cargo lambda watch` + `cargo lambda invoke --data-file` workflow of the README, checked.
lambda-invoke: setup $(CARGO_LAMBDA)
	bash scripts/lambda-invoke.sh

# Success-path overhead of shared::resilience next to failsafe, recloser, tower-resilience, backon.
bench:
	cargo bench --locked -p resilience-bench -- --noplot

clean:
	cargo clean
	rm -rf $(VENV) $(BUILD_VENV)
