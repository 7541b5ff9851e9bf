#!/usr/bin/env bash
# Builds every fuzz target once, then runs each for SECONDS (JOBS at a time) and prints a table
# of libFuzzer's final stats. Exits non-zero if any target crashed, leaked, timed out or failed.
#
# usage: fuzz/run.sh SECONDS [JOBS] [TARGET...]
# env:   SHARED (default ../shared, relative to the repository root): its fixtures/sdk captures
#        are read in place as extra seeds; skipped with a note when absent.
#        FUZZ_SANITIZER (default address), FUZZ_TIMEOUT (seconds per input, default 10),
#        FUZZ_RSS_MB (default 2048), FUZZ_NO_BUILD=1 (run the binaries already built).
set -euo pipefail
cd "$(dirname "$0")"
FUZZ_DIR=$PWD
SECONDS_PER_TARGET=${1:?usage: fuzz/run.sh SECONDS [JOBS] [TARGET...]}
JOBS=${2:-2}
shift $(($# >= 2 ? 2 : 1))
ALL_TARGETS=(otlp_metrics_protobuf otlp_metrics_json otlp_logs segments_json mal_parser lal_parser mqe_parser graphql_document mqe_depth mal_depth lal_depth)
TARGETS=("${@:-${ALL_TARGETS[@]}}")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL_TARGETS[@]}")
SANITIZER=${FUZZ_SANITIZER:-address}
SHARED_SDK="$(cd .. && cd "${SHARED:-../shared}" 2>/dev/null && pwd)/fixtures/sdk" || SHARED_SDK=""

# cargo-fuzz passes nightly-only -Z flags; stable rustc accepts them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
start=$(date +%s)
if [ -z "${FUZZ_NO_BUILD:-}" ]; then
    cargo fuzz build -O --sanitizer "$SANITIZER" >&2
    echo "fuzz build: $(( $(date +%s) - start )) s" >&2
fi
BIN_DIR="$FUZZ_DIR/target/$(rustc -vV | sed -n 's/^host: //p')/release"

# Shared SDK captures, linked (not copied) per target by what each decodes.
link_shared() {
    local target=$1 pattern=$2 dir="$FUZZ_DIR/corpus/shared/$1"
    rm -rf "$dir" && mkdir -p "$dir"
    if [ -n "$SHARED_SDK" ] && [ -d "$SHARED_SDK" ]; then
        find "$SHARED_SDK" -maxdepth 1 -type f -name "$pattern" -exec ln -s {} "$dir/" \;
    fi
}
if [ -z "$SHARED_SDK" ] || [ ! -d "$SHARED_SDK" ]; then
    echo "note: ${SHARED:-../shared}/fixtures/sdk not found; fuzzing from fuzz/seeds only" >&2
fi
link_shared otlp_metrics_protobuf '*v1_metrics.bin'
link_shared otlp_metrics_json '*v1_metrics.json'
link_shared otlp_logs '*v1_logs.*'
link_shared segments_json '*v3_segments.json'
for t in mal_parser lal_parser mqe_parser graphql_document mqe_depth mal_depth lal_depth; do link_shared "$t" 'none'; done

mkdir -p logs
# Text parsers get room for deep nesting typed out in full (libFuzzer's default cap is 4 KB);
# the *_depth targets build deep inputs from a repeat count and need no more.
max_len_of() {
    case $1 in
        mal_parser | lal_parser | mqe_parser) echo 65536 ;;
        *) echo 4096 ;;
    esac
}
run_one() {
    local t=$1
    mkdir -p "corpus/$t" "artifacts/$t"
    local begin=$(date +%s) rc=0
    "$BIN_DIR/$t" "corpus/$t" "seeds/$t" "corpus/shared/$t" \
        -max_len="$(max_len_of "$t")" \
        -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 \
        -timeout="${FUZZ_TIMEOUT:-10}" -rss_limit_mb="${FUZZ_RSS_MB:-2048}" \
        -artifact_prefix="artifacts/$t/" >"logs/$t.log" 2>&1 || rc=$?
    echo $(( $(date +%s) - begin )) >"logs/$t.seconds"
    return $rc
}
export -f run_one max_len_of
export BIN_DIR SECONDS_PER_TARGET
status=0
printf '%s\n' "${TARGETS[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_one {} || echo "{}" >>logs/failed' || status=1

printf '%-24s %8s %14s %10s %8s %s\n' target seconds execs exec/s corpus result
for t in "${TARGETS[@]}"; do
    log="logs/$t.log"
    stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -n 1; }
    result=ok
    if grep -qx "$t" logs/failed 2>/dev/null; then result="FAILED (see fuzz/$log, fuzz/artifacts/$t/)"; status=1; fi
    printf '%-24s %8s %14s %10s %8s %s\n' "$t" "$(cat "logs/$t.seconds" 2>/dev/null)" "$(stat number_of_executed_units)" \
        "$(stat average_exec_per_sec)" "$(ls "corpus/$t" | wc -l)" "$result"
done
rm -f logs/failed
exit $status
