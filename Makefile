# Skylark: the two commands that matter are `make run` and `make test`.
CARGO ?= cargo
SHARED ?= ../shared

FUZZ_SECONDS ?= 600
FUZZ_SHORT_SECONDS ?= 15
FUZZ_JOBS ?= 2

.PHONY: help run build test test-crash lint fmt fmt-check bench bench-scale check-rules fuzz fuzz-short

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

run: ## Run the server with the embedded default config (REST :12800, gRPC :11800, data in ./data)
	$(CARGO) run --release --bin skylark

build: ## Build the release binary
	$(CARGO) build --release --bin skylark

test: ## Run every test (unit, rule corpus, end to end); tests needing ../shared skip without it
	$(CARGO) test --workspace --all-targets

test-crash: ## kill -9 the server 25 times under load; every acknowledged request must be found once
	SKYLARK_CRASH_KILLS=$${SKYLARK_CRASH_KILLS:-25} $(CARGO) test -p skylark-server --test crash_e2e -- --nocapture

lint: ## clippy with warnings as errors
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

fmt-check: ## Check formatting
	$(CARGO) fmt --all -- --check

bench: ## Ingest benchmark against a running release server (figures in one run)
	$(CARGO) build --release --bin skylark --bin skylark-bench
	./target/release/skylark-bench --server ./target/release/skylark --fixtures $(SHARED)/fixtures/sdk --rum-fixtures $(SHARED)/fixtures/rum

BENCH_VENV ?= target/bench-venv
SCALE_ARGS ?=

bench-scale: ## Scale benchmark: 1,000 services of SDK metrics (RSS, disk per point, dashboard latency, start-up)
	$(CARGO) build --release --bin skylark
	test -x $(BENCH_VENV)/bin/python || python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -c 'import google.protobuf, opentelemetry.proto' 2>/dev/null || \
		$(BENCH_VENV)/bin/pip install --quiet protobuf opentelemetry-proto
	$(BENCH_VENV)/bin/python bench/scale.py ./target/release/skylark $(SHARED) --out target/bench-scale/result.json $(SCALE_ARGS)

check-rules: ## Validate the shipped rule files
	$(CARGO) run --release --bin skylark -- check-rules otel-rules/*/*.yaml config/alarm-settings.yml

fuzz: ## Run every fuzz target for FUZZ_SECONDS (default 600), FUZZ_JOBS (2) at a time; needs cargo-fuzz
	RUSTC_BOOTSTRAP=1 SHARED=$(SHARED) fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_JOBS)

fuzz-short: ## Run every fuzz target for FUZZ_SHORT_SECONDS (default 15): the CI smoke run
	RUSTC_BOOTSTRAP=1 SHARED=$(SHARED) fuzz/run.sh $(FUZZ_SHORT_SECONDS) $(FUZZ_JOBS)
