#!/usr/bin/env bash
# Seals and opens one file (default 1 GiB) with Attache and with the Go `age` CLI (and `rage`
# when installed), side by side in one run, and prints throughput, peak RSS and the ratios.
#
#   bash benches/peers.sh [SIZE_MIB] [RUNS]
#
# Each command runs RUNS times (default 3); the median wall time is reported. Every tool reads
# the same file (in the page cache after the first run) and writes to /dev/null, as the
# references in DESIGN.md §7 were measured; sealed inputs for the open runs are made once. Needs /usr/bin/time (GNU time) and age; installs them
# with apt when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
runs=${2:-3}

missing=()
command -v age >/dev/null || missing+=(age)
[ -x /usr/bin/time ] || missing+=(time)
if ((${#missing[@]})); then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
cargo build --release --locked --quiet
attache=$PWD/target/release/attache

work=$(mktemp -d "${TMPDIR:-/tmp}/attache-peers.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom > plain
export ATTACHE_PASSPHRASE=bench
"$attache" identity new --key me.age --work-factor 10 >/dev/null 2>&1
age-keygen -o age-key.txt 2>/dev/null
recipient=$(age-keygen -y age-key.txt)

# measure NAME COMMAND...: prints "NAME seconds peak_rss_kib" (median of $runs runs).
measure() {
    local name=$1; shift
    local times=() rss=0
    for _ in $(seq "$runs"); do
        sync
        /usr/bin/time -f '%e %M' -o timing "$@" >/dev/null 2>&1
        read -r secs kib < timing
        times+=("$secs")
        ((kib > rss)) && rss=$kib
    done
    local median
    median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p")
    echo "$name $median $rss"
}

# Inputs for the open runs, and a round-trip check of both tools.
"$attache" seal --key me.age -o sealed.atch plain 2>/dev/null
age -r "$recipient" -o sealed.age plain
"$attache" open --key me.age -o - sealed.atch 2>/dev/null | cmp -s - plain || { echo "attache round trip differs" >&2; exit 1; }
age -d -i age-key.txt sealed.age | cmp -s - plain || { echo "age round trip differs" >&2; exit 1; }

results=$(
    measure attache-seal-1-thread "$attache" seal --key me.age --threads one -o - plain
    measure attache-seal-all "$attache" seal --key me.age --threads all -o - plain
    measure attache-open-1-thread "$attache" open --key me.age --threads one -o - sealed.atch
    measure attache-open-all "$attache" open --key me.age --threads all -o - sealed.atch
    measure age-encrypt age -r "$recipient" plain
    measure age-decrypt age -d -i age-key.txt sealed.age
    if command -v rage >/dev/null; then
        rage -r "$recipient" -o sealed.rage plain
        measure rage-encrypt rage -r "$recipient" plain
        measure rage-decrypt rage -d -i age-key.txt sealed.rage
    fi
)

echo
echo "file: $size_mib MiB, median of $runs runs, $(nproc) cores"
echo
echo "| command | wall s | GiB/s | peak RSS MiB |"
echo "| --- | --- | --- | --- |"
while read -r name secs kib; do
    awk -v n="$name" -v s="$secs" -v k="$kib" -v m="$size_mib" \
        'BEGIN { printf "| %s | %.2f | %.2f | %.1f |\n", n, s, (m / 1024) / s, k / 1024 }'
done <<<"$results"
echo
get() { awk -v n="$1" '$1 == n { print $2 }' <<<"$results"; }
ratio() {
    local a b; a=$(get "$1"); b=$(get "$2")
    [ -n "$a" ] && [ -n "$b" ] && awk -v a="$a" -v b="$b" -v l="$3" 'BEGIN { printf "%-48s %.2fx\n", l, b / a }'
    return 0
}
ratio attache-seal-1-thread age-encrypt "seal, one thread vs Go age encrypt (target 2x):"
ratio attache-seal-all age-encrypt "seal, all threads vs Go age encrypt (target 2x):"
ratio attache-open-1-thread age-decrypt "open, one thread vs Go age decrypt (target 2x):"
ratio attache-open-all age-decrypt "open, all threads vs Go age decrypt (target 2x):"
ratio attache-seal-all rage-encrypt "seal, all threads vs rage encrypt (target 3x):"
ratio attache-open-all rage-decrypt "open, all threads vs rage decrypt (target 3x):"
