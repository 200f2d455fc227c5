#!/usr/bin/env bash
# Builds and runs every cargo-fuzz target for a bounded time; see fuzz/README.md.
#
#   fuzz/run.sh [--ci] [SECONDS] [TARGET...]
#
#   (default)  60 s per target: `make fuzz`
#   --ci       12 s per target, for `make test`; the whole step stays near 3 minutes on 2 cores
#   SECONDS    seconds per target (overrides either default)
#   TARGET     run only these targets (default: every [[bin]] in fuzz/Cargo.toml)
#
# Environment:
#   FUZZ_SANITIZER   none (default) or address. ASan needs `-Zsanitizer`, a nightly flag; on the
#                    stable toolchain it is enabled with RUSTC_BOOTSTRAP=1 (set here only then).
#   FUZZ_JOBS        targets fuzzed at once (default: min(cores, 2))
#   FUZZ_TARGET_DIR  cargo target dir (default: ~/.cache/tokenmeter-fuzz/<sanitizer>, shared by
#                    every checkout on the machine so a fresh clone, e.g. CI's, builds warm)
#
# Exits non-zero when a build fails or any target crashes; crashing inputs are kept in
# fuzz/artifacts/<target>/ and the log tail (panic message and stack) is printed.
set -euo pipefail

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$FUZZ_DIR")"

ci=0
seconds=""
targets=()
for arg in "$@"; do
    case "$arg" in
        --ci) ci=1 ;;
        -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
        ''|*[!0-9]*) targets+=("$arg") ;;
        *) seconds="$arg" ;;
    esac
done
if [[ -z "$seconds" ]]; then
    if ((ci)); then seconds=12; else seconds=60; fi
fi
explicit=${#targets[@]}
if ((explicit == 0)); then
    mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' "$FUZZ_DIR/Cargo.toml" | grep -v '^tokenmeter-fuzz$')
fi

sanitizer="${FUZZ_SANITIZER:-none}"
cores="$(nproc 2>/dev/null || echo 2)"
jobs="${FUZZ_JOBS:-$((cores < 2 ? cores : 2))}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tokenmeter-fuzz/$sanitizer}"

# Idempotent install of the pinned cargo-fuzz (a no-op when any version is present).
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --version 0.13.2 --locked
fi

# cargo-fuzz instruments with stable codegen flags (-Cpasses=sancov-module, -Cllvm-args=...);
# only the sanitizer needs a nightly -Z flag, so RUSTC_BOOTSTRAP is set only for it.
build_env=()
if [[ "$sanitizer" != none ]]; then
    build_env=(RUSTC_BOOTSTRAP=1)
fi

start=$SECONDS
# The input-splitting helpers every split target relies on have their own unit tests; they
# need no dependency, so plain rustc runs them in a second.
mkdir -p "$CARGO_TARGET_DIR"
rustc --edition 2021 --test "$FUZZ_DIR/src/lib.rs" -o "$CARGO_TARGET_DIR/fuzz-helpers-test" \
    && "$CARGO_TARGET_DIR/fuzz-helpers-test" -q >/dev/null \
    || { echo "fuzz: helper tests (fuzz/src/lib.rs) failed" >&2; exit 1; }
echo "fuzz: building ${#targets[@]} targets (sanitizer $sanitizer, target dir $CARGO_TARGET_DIR)"
build() {
    (cd "$FUZZ_DIR" && env "${build_env[@]}" cargo fuzz build -O -s "$sanitizer" "$@" 2>&1) \
        | sed -e '/^ *Compiling /d' -e '/^ *Finished /d'
}
if ((explicit)); then
    for t in "${targets[@]}"; do build "$t" || { echo "fuzz: build of $t failed" >&2; exit 1; }; done
else
    build || { echo "fuzz: build failed" >&2; exit 1; }
fi
build_secs=$((SECONDS - start))
echo "fuzz: build took ${build_secs}s"

triple="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="$CARGO_TARGET_DIR/$triple/release"
seed_dir="$(mktemp -d)"
trap 'rm -rf "$seed_dir"' EXIT
python3 "$FUZZ_DIR/seeds.py" "$ROOT" "$seed_dir" >/dev/null

log_dir="$FUZZ_DIR/artifacts/logs"
mkdir -p "$log_dir"

run_one() {
    local t="$1" corpus="$FUZZ_DIR/corpus/$1" artifacts="$FUZZ_DIR/artifacts/$1" log="$log_dir/$1.log"
    mkdir -p "$corpus" "$artifacts" "$seed_dir/$t"
    local rc=0
    # -timeout: one input running 10 s is a hang. -rss_limit_mb: the filter's per-request
    # memory is bounded, so a target approaching 1 GiB is a bug too.
    "$bin_dir/$t" "$corpus" "$seed_dir/$t" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1 || rc=$?
    local runs corpus_n
    runs="$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)"
    [[ -n "$runs" ]] || runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    corpus_n="$(find "$corpus" -type f | wc -l)"
    if ((rc == 0)); then
        printf 'fuzz %-18s ok     %10s runs in %ss, corpus %s\n' "$t" "${runs:-?}" "$seconds" "$corpus_n"
    else
        printf 'fuzz %-18s CRASH  %10s runs (exit %s), input in %s\n' "$t" "${runs:-?}" "$rc" "$artifacts/"
        grep -A25 -m1 -E 'panicked at|ERROR: (libFuzzer|AddressSanitizer)' "$log" | sed 's/^/    /' || tail -20 "$log"
    fi
    return "$rc"
}

# Run up to $jobs targets at once; each writes its exit status next to its log.
run_start=$SECONDS
for t in "${targets[@]}"; do
    rm -f "$log_dir/$t.rc"
    if [[ ! -x "$bin_dir/$t" ]]; then
        echo "fuzz: no binary for $t" >&2
        echo 127 >"$log_dir/$t.rc"
        continue
    fi
    (rc=0; run_one "$t" || rc=$?; echo "$rc" >"$log_dir/$t.rc") &
    while (($(jobs -rp | wc -l) >= jobs)); do
        wait -n || true
    done
done
wait
failed=()
for t in "${targets[@]}"; do
    [[ "$(cat "$log_dir/$t.rc" 2>/dev/null)" == 0 ]] || failed+=("$t")
done

echo "fuzz: ${#targets[@]} targets, ${seconds}s each, $jobs at a time; build ${build_secs}s, fuzzing $((SECONDS - run_start))s, total $((SECONDS - start))s"
if ((${#failed[@]})); then
    echo "fuzz: FAILED: ${failed[*]}" >&2
    exit 1
fi
