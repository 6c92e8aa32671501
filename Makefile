# Two commands a newcomer needs: `make demo` and `make test`. Both set up what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.installed

.PHONY: help setup tools test lint fmt-check clippy cfn-lint unit demo bench build clean

help:
	@echo "make demo   - start a local AWS (moto), place an order, show the event on the bus"
	@echo "make test   - fmt check, clippy, cfn-lint and every test (unit and against moto)"
	@echo "make setup  - install the dev tools (moto, cfn-lint) into $(VENV)"
	@echo "make bench  - resilience overhead against the Rust peers (criterion)"
	@echo "make build  - release arm64 Lambda binaries with cargo-lambda (no Docker)"

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
	cargo run --quiet --locked -p orders --example demo

# Lambda artefacts (target/lambda/<binary>/bootstrap) for arm64, as `sam build` makes them:
# cargo-lambda and zig come from PyPI into .venv-build, the aarch64 target from rustup.
BUILD_VENV := .venv-build
build:
	@test -x $(BUILD_VENV)/bin/cargo-lambda || { $(PYTHON) -m venv $(BUILD_VENV) && \
		$(BUILD_VENV)/bin/pip install --quiet --disable-pip-version-check cargo-lambda==1.9.2 ziglang==0.17.1; }
	rustup target add aarch64-unknown-linux-gnu
	PATH="$(CURDIR)/$(BUILD_VENV)/bin:$$PATH" cargo lambda build --release --arm64 --locked -p orders -p inventory -p payments
	@ls -l target/lambda/*/bootstrap

# Success-path overhead of shared::resilience next to failsafe, recloser, tower-resilience, backon.
bench:
	cargo bench --locked -p resilience-bench -- --noplot

clean:
	cargo clean
	rm -rf $(VENV) $(BUILD_VENV)
