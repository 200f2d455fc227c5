# tokenmeter developer entry points. Every target is idempotent on a fresh Debian machine
# running as root: tools are installed only when missing, and `apt-get update` runs only when
# a package actually has to be installed.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

CARGO      ?= cargo
TARGET     := wasm32-wasip1
VENV       := .venv
PY         := $(VENV)/bin/python
ENVOY      := $(VENV)/bin/envoy
WASM_RAW   := target/$(TARGET)/release/tokenmeter.wasm
WASM       := build/tokenmeter.wasm
WASM_TEST  := build/tokenmeter-test.wasm
# Exactly the proposals Envoy's V8 accepts; never --all-features (it emits opcodes V8 rejects).
# --converge repeats -Oz until it stops shrinking; --low-memory-unused lets constant address
# offsets fold into loads and stores (Rust puts the 1 MiB stack at the bottom of memory, so the
# low 1 KiB is reached only by a stack already overflowing). Together about 3.7 KB.
WASM_OPT_FLAGS := -Oz --converge --low-memory-unused --enable-bulk-memory --enable-sign-ext \
	--enable-mutable-globals --enable-nontrapping-float-to-int --enable-multivalue \
	--enable-reference-types
APT_PACKAGES := binaryen prometheus wrk hey nodejs
# Configs that ship and must pass `envoy --mode validate`.
ENVOY_CONFIGS := $(wildcard envoy/*.yaml)

.PHONY: all deps rust-target apt venv build build-test test test-rust clippy test-wasm32 \
	validate pytest run bench fuzz fuzz-ci clean-run

all: build

deps: rust-target apt venv

rust-target:
	@rustup target list --installed | grep -qx '$(TARGET)' || rustup target add $(TARGET)

apt:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg -s "$$p" >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The stamp is keyed on the requirements file: editing it reinstalls, nothing else does.
venv: $(VENV)/.stamp
$(VENV)/.stamp: requirements-dev.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# The shipped filter: optimised with exactly the wasm features Envoy's V8 supports.
build: rust-target apt
	$(CARGO) build --release --target $(TARGET)
	@mkdir -p build
	@if command -v wasm-opt >/dev/null 2>&1; then \
		wasm-opt $(WASM_OPT_FLAGS) $(WASM_RAW) -o $(WASM); \
	else \
		echo "wasm-opt not found: copying the unoptimised module"; cp $(WASM_RAW) $(WASM); \
	fi
	@echo "$(WASM): $$(stat -c %s $(WASM)) bytes (unoptimised $$(stat -c %s $(WASM_RAW)))"

# The same filter with the `test-panic` feature, used only by the end-to-end suite. Built into
# its own target dir so it never replaces the shipped artefact or invalidates its cache.
build-test: rust-target apt
	$(CARGO) build --release --target $(TARGET) --features test-panic --target-dir target/test-panic
	@mkdir -p build
	@if command -v wasm-opt >/dev/null 2>&1; then \
		wasm-opt $(WASM_OPT_FLAGS) target/test-panic/$(TARGET)/release/tokenmeter.wasm -o $(WASM_TEST); \
	else \
		cp target/test-panic/$(TARGET)/release/tokenmeter.wasm $(WASM_TEST); \
	fi

test: test-rust clippy test-wasm32 build build-test venv validate pytest fuzz-ci

test-rust:
	$(CARGO) test --all-targets

clippy:
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy --lib --target $(TARGET) -- -D warnings
	$(CARGO) clippy --lib --target $(TARGET) --features test-panic -- -D warnings

# The core's unit tests compiled to wasm32 (32-bit usize) and run under Node's WASI.
test-wasm32: rust-target
	CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings $(CURDIR)/tests/wasm32-runner.mjs" \
		$(CARGO) test --lib --target $(TARGET)

# Loads each shipped bootstrap in the real Envoy, which also instantiates the wasm and runs its
# configure step. Run from the repository root: the configs name build/tokenmeter.wasm.
validate: build venv
	@mkdir -p .run  # the bootstraps write their access logs there
	@for c in $(ENVOY_CONFIGS); do \
		echo "validate $$c"; \
		$(ENVOY) --mode validate --base-id 7 -c $$c --log-level warn; \
	done

# pytest exits 5 when it collects nothing; that is a failure here, never a silent pass.
pytest: build build-test venv
	$(PY) -m pytest -q tests/

run: build venv
	$(PY) examples/demo/run.py

bench: build venv
	bash bench/run.sh

# Every fuzz target for a bounded time (60 s each); `fuzz-ci` is the short run `make test` does.
fuzz:
	bash fuzz/run.sh

fuzz-ci:
	bash fuzz/run.sh --ci

clean-run:
	rm -rf .run
