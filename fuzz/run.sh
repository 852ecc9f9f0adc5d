#!/usr/bin/env bash
# Runs fuzz targets: fuzz/run.sh SECONDS [TARGET...]   (all targets when none is named)
# FUZZ_JOBS=N runs N targets at once (default 1).
#
# Installs cargo-fuzz if missing (needs the nightly toolchain), builds every target once, then
# runs each for SECONDS on its corpus: fuzz/corpus/TARGET (grows, not committed) plus the
# committed seeds in fuzz/seeds/TARGET. Prints one line per target and a total; exits 1 if any
# target found a crash, a timeout (an input taking over 10 s) or an out-of-memory (over
# 2048 MB), whose input libFuzzer writes to fuzz/artifacts/TARGET/. Logs: fuzz/logs/TARGET.log.
set -euo pipefail
cd "$(dirname "$0")"

if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
    echo "usage: fuzz/run.sh SECONDS [TARGET...]" >&2
    exit 2
fi
seconds=$1
shift

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz (cargo install --locked cargo-fuzz)" >&2
    cargo install --locked cargo-fuzz
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

echo "building ${#targets[@]} target(s)" >&2
cargo +nightly fuzz build >&2

mkdir -p logs
jobs=${FUZZ_JOBS:-1}

# Runs one target; its log is logs/TARGET.log, its exit status logs/TARGET.status.
run_one() {
    local t=$1
    mkdir -p "corpus/$t" "seeds/$t" "artifacts/$t"
    set +e
    cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"logs/$t.log" 2>&1
    echo $? >"logs/$t.status"
    set -e
}

# FUZZ_JOBS targets at a time (default 1); each still runs SECONDS of wall time.
for t in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    run_one "$t" &
done
wait

failed=0
total=0
printf '%-28s %12s %8s  %s\n' target executions exec/s result
for t in "${targets[@]}"; do
    log="logs/$t.log"
    status=$(cat "logs/$t.status" 2>/dev/null || echo 1)
    # libFuzzer's final stats; "Done N runs" when a run ends normally; the last "#N" status
    # line as a fallback.
    runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)
    [ -n "$runs" ] || runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)
    [ -n "$runs" ] || runs=$(sed -n 's/^#\([0-9]*\)\s.*/\1/p' "$log" | tail -1)
    [ -n "$runs" ] || runs=0
    rate=$(sed -n 's/^stat::average_exec_per_sec: *\([0-9]*\).*/\1/p' "$log" | tail -1)
    artifact=$(sed -n 's/.*Test unit written to \(\S*\).*/\1/p' "$log" | tail -1)
    if [ $status -eq 0 ] && [ -z "$artifact" ]; then
        result="no crash"
    else
        kind=$(grep -o -m1 -E 'ERROR: libFuzzer: [a-z-]+|panicked at [^:]*:[0-9]+' "$log" || true)
        result="CRASH (${kind:-exit $status}) ${artifact:-see $log}"
        failed=1
    fi
    total=$((total + runs))
    printf '%-28s %12s %8s  %s\n' "$t" "$runs" "${rate:-?}" "$result"
done
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, $total executions, $([ $failed -eq 0 ] && echo 0 || echo some) crashes"
exit $failed
