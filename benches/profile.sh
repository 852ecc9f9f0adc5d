#!/usr/bin/env bash
# Profiles one upload and one download of a document through the real server and CLI with
# `perf record`, server and client sampled separately, and prints where the time went.
#
#   bash benches/profile.sh [MIB] [BLOB_STORE]     (default: 256 MiB, the server's default store)
#
# Needs `perf` (Debian: linux-perf) and a release build with line tables (the release profile
# has them). ATTACHE_BIN picks the binary (default target/release/attache); PERF_FREQ the
# sampling rate (default 499 Hz); PERF_CALLGRAPH=1 records DWARF call graphs (large files).
# The perf data and the reports stay in $PROFILE_OUT (default /tmp/attache-profile).
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-256}
store=${2:-}
attache=${ATTACHE_BIN:-$PWD/target/release/attache}
freq=${PERF_FREQ:-499}
out=${PROFILE_OUT:-/tmp/attache-profile}
graph=()
[ "${PERF_CALLGRAPH:-0}" = 1 ] && graph=(--call-graph dwarf,32768)
rm -rf "$out"
mkdir -p "$out/homes"
export ATTACHE_PASSPHRASE=profile-passphrase
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
extra=()
[ -n "$store" ] && extra=(--blob-store "$store")
perf record -q -F "$freq" "${graph[@]}" -o "$out/server.data" -- \
    "$attache" serve --listen "127.0.0.1:$port" --data "$out/data" --keys "$out/keys" \
    "${extra[@]}" >"$out/server.out" 2>"$out/server.log" &
perf_pid=$!
for _ in $(seq 200); do grep -q '^listening on' "$out/server.out" 2>/dev/null && break; sleep 0.1; done
cert=$(sed -n 's/^certificate //p' "$out/server.out")
[ -n "$cert" ] || { cat "$out/server.log" >&2; exit 1; }
server_pid=$(pgrep -P "$perf_pid" -x attache || true)
stop() { [ -n "${server_pid:-}" ] && kill -INT "$server_pid" 2>/dev/null; wait "$perf_pid" 2>/dev/null || true; }
trap stop EXIT
user() { local who=$1; shift; env ATTACHE_HOME="$out/homes/$who" "$attache" "$@"; }
for who in u0 u1; do
    mkdir -p "$out/homes/$who"
    "$attache" identity new --key "$out/homes/$who/key.age" --work-factor 10 >/dev/null 2>&1
done
user u0 join "$(cat "$out/keys/bootstrap-invite")" --email u0@firm.example --name U0 --cert-fingerprint "$cert" >/dev/null
invite=$(user u0 invite u1@firm.example --role attorney | grep -o 'https://[^ ]*/i/[^ ]*')
user u1 join "$invite" --name U1 --cert-fingerprint "$cert" >/dev/null
head -c "$((mib << 20))" /dev/urandom >"$out/doc.bin"
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$server_pid/stat"; }
flush() { curl -sk "https://127.0.0.1:$port/metrics" | awk '/^attache_(flushes_total|flush_seconds_total|commits_total) / { printf "%s=%s ", $1, $2 }'; }
echo "before send: $(flush)" >"$out/flushes.txt"
c0=$(cpu); t0=$(date +%s.%N)
perf record -q -F "$freq" "${graph[@]}" -o "$out/send.data" -- \
    env ATTACHE_HOME="$out/homes/u0" "$attache" send --to u1@firm.example --subject p "$out/doc.bin" >/dev/null
t1=$(date +%s.%N); c1=$(cpu)
echo "after send:  $(flush)" >>"$out/flushes.txt"
id=$(user u0 inbox --sent --limit 1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
mkdir -p "$out/down"
c2=$(cpu); t2=$(date +%s.%N)
perf record -q -F "$freq" "${graph[@]}" -o "$out/download.data" -- \
    env ATTACHE_HOME="$out/homes/u1" "$attache" download "$id" --out "$out/down" >/dev/null
t3=$(date +%s.%N); c3=$(cpu)
cmp -s "$out/doc.bin" "$out/down/doc.bin" || { echo "downloaded document differs" >&2; exit 1; }
stop; trap - EXIT
awk -v b="$((mib << 20))" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v t3="$t3" -v c0="$c0" -v c1="$c1" -v c2="$c2" -v c3="$c3" 'BEGIN {
    printf "send %.2f s (%.3f GB/s), server CPU %.2f s; download %.2f s (%.3f GB/s), server CPU %.2f s\n",
        t1 - t0, b / (t1 - t0) / 1e9, c1 - c0, t3 - t2, b / (t3 - t2) / 1e9, c3 - c2 }' | tee "$out/summary.txt"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/summary.txt"
tee -a "$out/summary.txt" <"$out/flushes.txt"
for what in server send download; do
    perf report -i "$out/$what.data" --stdio --no-children --sort dso,symbol --percent-limit 1 2>/dev/null | sed "s/ *- *- *$//" \
        | grep -v '^#' | grep -v '^$' | head -40 >"$out/$what.txt"
    echo "== $what (self time, ≥ 1%)"
    cat "$out/$what.txt"
done
