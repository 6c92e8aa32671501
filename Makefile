# Two commands a newcomer needs: `make demo` and `make test`. Both set up what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.installed

.PHONY: help token setup tools test soak lint fmt-check clippy cfn-lint sam-validate sam-local-check audit unit demo local bench bench-coldstart build lambda-invoke clean

help:
	@echo "make soak   - 10,000 orders through faults and a host restart: throughput, latency, memory per minute"
	@echo "make demo   - the whole system locally: orders that succeed, fail and survive an outage, with timelines and costs"
	@echo "make local  - run the whole system locally (HTTP APIs on 127.0.0.1:3000; PORT=3001 to change) until Ctrl-C"
	@echo "make token  - a token of the local system's issuer (SUB=c1, GROUPS=admin for an admin)"
	@echo "make test   - fmt check, clippy, cfn-lint, sam validate, the sam local check, advisories and every test"
	@echo "make setup  - install the dev tools (moto, cfn-lint, localstripe, schemathesis) into $(VENV)"
	@echo "make bench  - resilience overhead against the Rust peers, and each handler's cost per request (criterion, callgrind)"
	@echo "make bench-coldstart - cold start of every function against a hello-world lambda_runtime binary (COLDSTART_RUNS=30)"
	@echo "make build  - release arm64 Lambda binaries of every function in template.yaml, with cargo-lambda (no Docker)"
	@echo "make lambda-invoke - run a function under cargo lambda watch and invoke it with an events/ fixture"

# Python dev tools (moto server, cfn-lint), pinned in requirements-dev.txt, in a local virtualenv.
setup: $(VENV_STAMP)
$(VENV_STAMP): requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.10+"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# Rust tools: the toolchain of rust-toolchain.toml, cargo-nextest runs the tests, cargo-audit
# checks Cargo.lock against the RustSec advisories.
tools:
	@command -v cargo >/dev/null || { echo "error: cargo not found; install Rust from https://rustup.rs"; exit 1; }
	@bash scripts/ensure-toolchain.sh
	@command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
	@command -v cargo-audit >/dev/null || cargo install --locked cargo-audit

# SAM CLI, for `sam validate --lint` and the sam local check, in a virtualenv of its own: its
# pins (click, boto3) conflict with those of requirements-dev.txt.
SAM_VENV := .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed
SAM_REQUIREMENTS := scripts/checks/requirements-sam.txt
$(SAM_STAMP): $(SAM_REQUIREMENTS)
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.10+"; exit 1; }
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check -r $(SAM_REQUIREMENTS)
	@touch $@

# Offline: with a proxy that answers nothing, any network call fails (SAM CLI's own version
# check gives up quietly); --lint runs cfn-lint only, no credentials needed.
sam-validate: $(SAM_STAMP)
	SAM_CLI_TELEMETRY=0 HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 \
	  $(SAM_VENV)/bin/sam validate --lint -t template.yaml

# `sam local invoke` of every function reaches the local moto only (scripts/checks/sam_local_env.py).
sam-local-check: $(SAM_STAMP)
	$(SAM_VENV)/bin/python scripts/checks/sam_local_env.py

# Dependency advisories, offline, from the RustSec snapshot in ../shared (yanked crates need the
# crates.io index, so not checked). Fails on any advisory, vulnerability or warning; one that
# cannot be fixed is ignored in .cargo/audit.toml with its reason.
ADVISORY_DB ?= ../shared/advisory-db
audit: tools
	@test -d $(ADVISORY_DB)/crates || { echo "error: no RustSec advisory database at $(ADVISORY_DB); ADVISORY_DB=<advisory-db checkout>"; exit 1; }
	cargo audit --db $(ADVISORY_DB) --no-fetch --no-yanked --deny warnings

fmt-check:
	cargo fmt --all --check

clippy:
	cargo clippy --workspace --all-targets --locked -- -D warnings

# cfn-lint's own rules and the serverless ones (cfn-lint-serverless: DLQs, log retention, API
# throttling and access logs...). A finding kept on purpose is ignored beside its resource
# (Metadata cfn-lint ignore_checks) with the reason in a comment.
cfn-lint: setup
	$(VENV)/bin/cfn-lint template.yaml --append-rules cfn_lint_serverless.rules

lint: fmt-check clippy cfn-lint sam-validate

# Doc tests first: nextest's summary is the run's closing line.
unit: setup tools
	cargo test --workspace --doc --locked
	cargo nextest run --workspace --locked --no-tests=fail

test: setup tools fmt-check cfn-lint sam-validate sam-local-check audit clippy unit

demo: setup
	cargo run --quiet --locked -p local-host --bin demo

PORT ?= 3000
# State is kept between runs (the moto it starts outlives it); RESET=1 starts from nothing.
local: setup
	cargo run --quiet --locked -p local-host --bin local-host -- --port $(PORT) $(if $(RESET),--reset)

# A token of the running local system's issuer (`make local`): SUB=c1 by default, GROUPS=admin for
# an admin. Use it as curl -H "Authorization: Bearer $(make -s token)" ...
SUB ?= c1
GROUPS ?=
comma := ,
token:
	@curl -sf -X POST http://127.0.0.1:$(PORT)/_local/token -H 'content-type: application/json' \
	  -d '{"sub":"$(SUB)","groups":[$(if $(GROUPS),"$(subst $(comma),"$(comma)",$(GROUPS))")]}' \
	  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' 2>/dev/null \
	  || { echo "no local system on port $(PORT): start it with make local" >&2; exit 1; }

# The chaos run at length (SOAK_ORDERS, default 10000): throughput, latency and emulator memory
# per minute, every invariant checked at the end. Not part of `make test`.
soak: setup
	cargo build --quiet --locked --release -p local-host --bins
	./target/release/soak

# Lambda artefacts (target/lambda/<binary>/bootstrap) for arm64, as `sam build` makes them, of
# every function in template.yaml (its Metadata.BuildProperties.Binary, scripts/template-binaries.py):
# cargo-lambda and zig come from PyPI into .venv-build, the aarch64 target from rustup.
BUILD_VENV := .venv-build
CARGO_LAMBDA := $(BUILD_VENV)/bin/cargo-lambda
$(CARGO_LAMBDA):
	$(PYTHON) -m venv $(BUILD_VENV)
	$(BUILD_VENV)/bin/pip install --quiet --disable-pip-version-check cargo-lambda==1.9.2 ziglang==0.17.1

build: $(CARGO_LAMBDA)
	rustup target add aarch64-unknown-linux-gnu
	bins=$$($(PYTHON) scripts/template-binaries.py) && \
	  PATH="$(CURDIR)/$(BUILD_VENV)/bin:$$PATH" cargo lambda build --release --arm64 --locked $$(printf -- '--bin %s ' $$bins)
	@$(PYTHON) benches/sizes.py $$($(PYTHON) scripts/template-binaries.py)

# A function binary under cargo-lambda's emulator, invoked with an events/ fixture: the
# `cargo lambda watch` + `cargo lambda invoke --data-file` workflow of the README, checked.
lambda-invoke: setup $(CARGO_LAMBDA)
	bash scripts/lambda-invoke.sh

# Success-path overhead of shared::resilience next to failsafe, recloser, tower-resilience, backon;
# then each service's handlers in-process (criterion; the metric lines the handlers print are left
# out), and their instructions per request under callgrind (valgrind). benches/README.md.
bench:
	cargo bench --locked -p resilience-bench --bench resilience -- --noplot
	set -o pipefail; cargo bench --locked -p resilience-bench --bench handlers -- --noplot | grep -v '^{"'
	@command -v valgrind >/dev/null || { echo "error: valgrind not found: apt-get install valgrind"; exit 1; }
	bin=$$(cargo bench --locked -p resilience-bench --bench handlers --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))/\1/p') && \
	  $(PYTHON) benches/handlers_report.py $$bin

# Cold start of every function of template.yaml, built in release with a hello-world
# lambda_runtime binary (one build), against a fake Runtime API and a local moto: benches/README.md.
# COLDSTART_RUNS (default 30) launches each. Not part of `make test`.
bench-coldstart: setup
	bins=$$($(PYTHON) scripts/template-binaries.py) && \
	  cargo build --release --locked $$(printf -- '--bin %s ' $$bins hello-lambda)
	cargo run --quiet --locked -p coldstart

clean:
	cargo clean
	rm -rf $(VENV) $(BUILD_VENV) $(SAM_VENV)
