#!/usr/bin/env bash
# Coverage-guided fuzzing of the decoders of untrusted bytes (cargo-fuzz, libFuzzer; fuzz/).
#
#   scripts/fuzz.sh short                    every target for 20 s (CI); fails on any crash
#   scripts/fuzz.sh long [SECONDS] [TARGET]  every target (or the ones named) for SECONDS (600)
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`). Targets run
# one after another, one libFuzzer process each. New corpus entries go to fuzz/target/corpus/<t>
# (or $FUZZ_CORPUS_DIR/<t>), never into the committed seeds in fuzz/corpus/<t>; a crash or hang
# (a unit over 10 s) leaves its input in fuzz/artifacts/<t>/ and fails the run. Prints, per
# target: executions, executions per second, coverage (cov: edges, ft: features), corpus size,
# peak memory, and whether it crashed. Build with CARGO_TARGET_DIR set as you like.
#
# FUZZ_RUNS=N also stops each target after N executions (whichever comes first).
#
# FUZZ_SANITIZER=none builds without AddressSanitizer (cargo fuzz's default is address): about
# four times the executions per second. The decoders are safe Rust (vaka-scaip and vaka-dc09
# forbid unsafe, vaka-proto has none), so ASan watches only their dependencies' unsafe code;
# debug assertions and overflow checks stay on either way. Coverage counts differ between the
# two builds.
set -euo pipefail

cd "$(dirname "$0")/.."

mode=${1:-}
case "$mode" in
short)
    secs=20
    shift
    ;;
long)
    secs=${2:-600}
    shift
    [ $# -gt 0 ] && shift
    ;;
*)
    echo "usage: $0 short | long [SECONDS] [TARGET...]" >&2
    exit 2
    ;;
esac

all_targets=(sip_message sip_framing sip_uri digest_header scaip_mrq vaka1_frame dc09_message
    admin_bodies centre_inbound config_file)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

max_len() {
    case "$1" in
    sip_uri | digest_header) echo 4096 ;;
    *) echo 65536 ;;
    esac
}

dict() {
    case "$1" in
    sip_message | sip_framing) echo fuzz/dict/sip.dict ;;
    dc09_message) echo fuzz/dict/dc09.dict ;;
    *) echo "fuzz/dict/$1.dict" ;;
    esac
}

work=$(realpath -m "${FUZZ_CORPUS_DIR:-fuzz/target/corpus}")
logs=fuzz/target/logs
mkdir -p "$logs"

sanitizer=()
[ -n "${FUZZ_SANITIZER:-}" ] && sanitizer=(-s "$FUZZ_SANITIZER")

# One build for all targets (cargo fuzz run would otherwise check the build per target).
(cd fuzz && cargo +nightly fuzz build "${sanitizer[@]}")

failed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "$work/$t" "fuzz/artifacts/$t"
    log="$logs/$t.log"
    echo "== $t: ${secs}s"
    args=(-max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10
        -max_len="$(max_len "$t")")
    [ -n "${FUZZ_RUNS:-}" ] && args+=(-runs="$FUZZ_RUNS")
    d=$(dict "$t")
    [ -f "$d" ] && args+=(-dict="$PWD/$d")
    rc=0
    (cd fuzz && cargo +nightly fuzz run "${sanitizer[@]}" "$t" "$work/$t" "corpus/$t" -- "${args[@]}") \
        >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+.* cov: ' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
    result=ok
    if [ "$rc" -ne 0 ]; then
        result="FAILED (exit $rc; see $log and fuzz/artifacts/$t/)"
        failed+=("$t")
        grep -E '^(==[0-9]+==|thread .* panicked|SUMMARY|Test unit written|artifact_prefix)' "$log" |
            head -20 || true
    fi
    line=$(printf '%-14s execs %12s  exec/s %7s  cov %5s  ft %6s  corpus %6s  rss %5s MB  %s' \
        "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}" "$result")
    echo "$line"
    summary+=("$line")
done

echo
echo "== fuzz $mode, ${secs}s per target, sanitizer ${FUZZ_SANITIZER:-address}"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "crashed: ${failed[*]}" >&2
    exit 1
fi
