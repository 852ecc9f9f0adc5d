#!/usr/bin/env bash
# The end-to-end benchmark suite: every figure of docs/PERFORMANCE.md's summary table, each
# next to its reference measured in the same run on the same machine.
#
#   bash benches/run.sh [SECTION...]     sections: peers transfer big small inbox cli
#                                        (default: all; `RAGE=1` also installs and runs rage)
#
# Installs what it needs (apt: nginx, age, curl, GNU time; cargo: rage when RAGE=1), builds the
# release binary, runs a real server on 127.0.0.1 with its data in a temporary folder, prints
# one table and writes it into docs/PERFORMANCE.md between the `run.sh` markers. Sizes can be
# lowered for a quick look: TRANSFER_MIB (1024), BIG_MIB (4096), SMALL_SECONDS (30),
# SMALL_CLIENTS (64), INBOX_MESSAGES (10000).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
sections=("$@")
((${#sections[@]})) || sections=(peers transfer big small inbox cli)
transfer_mib=${TRANSFER_MIB:-1024}
big_mib=${BIG_MIB:-4096}
small_seconds=${SMALL_SECONDS:-30}
small_clients=${SMALL_CLIENTS:-64}
inbox_messages=${INBOX_MESSAGES:-10000}

want() { local s; for s in "${sections[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

# ---- tools ----
missing=()
command -v age >/dev/null || missing+=(age)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
[ -x /usr/bin/time ] || missing+=(time)
if ((${#missing[@]})); then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "${RAGE:-0}" = 1 ] && ! command -v rage >/dev/null; then
    cargo install --locked rage
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
cargo build --release --locked --quiet
cargo bench --bench load --no-run --quiet 2>/dev/null
attache=$repo/target/release/attache
load() { cargo bench --quiet --bench load -- "$@"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/attache-bench.XXXXXX")
server_pid=""
nginx_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
export ATTACHE_PASSPHRASE=bench-passphrase
rows=()   # "figure|value|reference|ratio|target|command"
row() { rows+=("$1|$2|$3|$4|$5|$6"); printf '  %s: %s (reference %s, %s; target %s)\n' "$1" "$2" "$3" "$4" "$5"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
gbps() { awk -v bytes="$1" -v s="$2" 'BEGIN { printf "%.2f", bytes / s / 1e9 }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }

# timed OUT_PREFIX COMMAND...: runs once, sets ${OUT_PREFIX}_s and ${OUT_PREFIX}_kib (peak RSS).
timed() {
    local prefix=$1; shift
    /usr/bin/time -f '%e %M' -o "$work/timing" "$@" >/dev/null 2>"$work/stderr" || {
        cat "$work/stderr" >&2; return 1; }
    read -r s kib <"$work/timing"
    printf -v "${prefix}_s" '%s' "$s"
    printf -v "${prefix}_kib" '%s' "$kib"
}

# ---- an Attache server and its users ----
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_server() {
    mkdir -p "$work/srv"
    # The load sections send thousands of requests per minute from one address and one account:
    # the abuse limits are off for this server (what is measured is the work, not the limits).
    ATTACHE_RATE_WRITES_PER_IP=0 ATTACHE_RATE_WRITES_PER_ACCOUNT=0 \
    ATTACHE_RATE_CHUNKS_PER_IP=0 ATTACHE_RATE_CHUNKS_PER_ACCOUNT=0 \
    ATTACHE_NOTICE_WINDOW=0 "$attache" serve --listen "127.0.0.1:$port" --data "$work/srv/data" \
        --keys "$work/srv/keys" --cache-mb 256 >"$work/srv/out" 2>"$work/srv/log" &
    server_pid=$!
    for _ in $(seq 100); do grep -q '^listening on' "$work/srv/out" 2>/dev/null && break; sleep 0.1; done
    url=$(sed -n 's/^listening on //p' "$work/srv/out")
    cert=$(sed -n 's/^certificate //p' "$work/srv/out")
    [ -n "$url" ] || { cat "$work/srv/log" >&2; exit 1; }
}
server_peak_kib() { awk '/VmHWM/ { print $2 }' "/proc/$server_pid/status"; }
server_cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$server_pid/stat"; }
# user WHO ARGS...: the attache CLI as user WHO (a plain command, so that GNU time can run it).
user() { local who=$1; shift; env ATTACHE_HOME="$work/homes/$who" "$attache" "$@"; }
users_made=0
# Key files with a low scrypt cost for the load users: 64 clients unlocking at the default cost
# (about a second and 256 MiB each) would measure scrypt, not the server. The CLI section uses
# users with default-cost key files, as people have.
new_key() {
    mkdir -p "$work/homes/$1"
    "$attache" identity new --key "$work/homes/$1/key.age" --work-factor 10 >/dev/null 2>&1
}
make_users() {   # make_users N: u0 (admin, from the bootstrap invite) … u(N-1) (attorneys)
    local n=$1 i invite
    mkdir -p "$work/homes"
    if ((users_made == 0)); then
        invite=$(cat "$work/srv/keys/bootstrap-invite")
        new_key u0
        user u0 join "$invite" --email u0@firm.example --name U0 --cert-fingerprint "$cert" >/dev/null
        users_made=1
    fi
    for ((i = users_made; i < n; i++)); do
        invite=$(user u0 invite "u$i@firm.example" --role attorney | grep -o 'https://[^ ]*/i/[^ ]*')
        new_key "u$i"
        user "u$i" join "$invite" --name "U$i" --cert-fingerprint "$cert" >/dev/null
    done
    ((n > users_made)) && users_made=$n
    return 0
}

# ---- nginx over TLS 1.3 on loopback, the transfer reference ----
start_nginx() {
    local dir=$work/nginx
    mkdir -p "$dir/www" "$dir/put" "$dir/tmp"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
        -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
    nginx_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat >"$dir/nginx.conf" <<EOF
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/error.log;
daemon off;
events { worker_connections 64; }
http {
    access_log off;
    sendfile on;
    client_body_temp_path $dir/tmp;
    server {
        listen 127.0.0.1:$nginx_port ssl;
        ssl_certificate $dir/cert.pem;
        ssl_certificate_key $dir/key.pem;
        ssl_protocols TLSv1.3;
        client_max_body_size 0;
        location /get/ { alias $dir/www/; }
        location /put/ { alias $dir/put/; dav_methods PUT; create_full_put_path on; }
    }
}
EOF
    "$nginx_bin" -c "$dir/nginx.conf" -e "$dir/error.log" &
    nginx_pid=$!
    for _ in $(seq 50); do curl -sk "https://127.0.0.1:$nginx_port/" -o /dev/null && break; sleep 0.1; done
}

echo "Attache benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- 1. seal and open 1 GiB against Go age (and rage) ----
if want peers; then
    echo "== seal/open $transfer_mib MiB against age"
    bash benches/peers.sh "$transfer_mib" 3 | tee "$work/peers.txt"
    get() { awk -F'|' -v n="$1" '$2 ~ " "n" " { gsub(/ /, "", $4); gsub(/ /, "", $5); print $4, $5 }' "$work/peers.txt"; }
    read -r a1 r1 < <(get attache-seal-1-thread); read -r aa ra < <(get attache-seal-all)
    read -r o1 _ < <(get attache-open-1-thread); read -r oa _ < <(get attache-open-all)
    read -r ae _ < <(get age-encrypt); read -r ad _ < <(get age-decrypt)
    row "seal 1 GiB, 1 thread (GiB/s)" "$a1" "Go age $ae" "$(ratio "$a1" "$ae")" "2x age" "benches/peers.sh"
    row "seal 1 GiB, all threads (GiB/s)" "$aa" "Go age $ae" "$(ratio "$aa" "$ae")" "2x age" "benches/peers.sh"
    row "open 1 GiB, 1 thread (GiB/s)" "$o1" "Go age $ad" "$(ratio "$o1" "$ad")" "2x age" "benches/peers.sh"
    row "open 1 GiB, all threads (GiB/s)" "$oa" "Go age $ad" "$(ratio "$oa" "$ad")" "2x age" "benches/peers.sh"
    row "seal peak RSS (MiB)" "$ra" "-" "-" "bounded" "benches/peers.sh"
fi

# ---- 2. transfer of one document over TLS on loopback, against nginx + curl ----
if want transfer || want big || want small || want inbox || want cli; then
    start_server
    make_users 2
fi
if want transfer; then
    echo "== transfer $transfer_mib MiB"
    start_nginx
    bytes=$((transfer_mib * 1024 * 1024))
    head -c "$bytes" /dev/urandom >"$work/doc.bin"
    cp "$work/doc.bin" "$work/nginx/www/doc.bin"
    sync
    timed ngget curl -sk --tlsv1.3 -o /dev/null "https://127.0.0.1:$nginx_port/get/doc.bin"
    timed ngput curl -sk --tlsv1.3 -T "$work/doc.bin" "https://127.0.0.1:$nginx_port/put/doc.bin"
    sync
    cpu0=$(server_cpu_s)
    timed send env ATTACHE_HOME="$work/homes/u0" "$attache" send --to u1@firm.example --subject big --json "$work/doc.bin"
    cpu1=$(server_cpu_s)
    id=$(user u0 inbox --sent --limit 1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
    mkdir -p "$work/down"
    timed down env ATTACHE_HOME="$work/homes/u1" "$attache" download "$id" --out "$work/down"
    cmp -s "$work/down/doc.bin" "$work/doc.bin" || { echo "downloaded document differs" >&2; exit 1; }
    rm -f "$work/down/doc.bin" "$work/nginx/put/doc.bin"
    up=$(gbps "$bytes" "$send_s"); ref_up=$(gbps "$bytes" "$ngput_s")
    dn=$(gbps "$bytes" "$down_s"); ref_dn=$(gbps "$bytes" "$ngget_s")
    server_cpu_per_gib=$(awk -v a="$cpu0" -v b="$cpu1" -v m="$transfer_mib" 'BEGIN { printf "%.1f", (b - a) * 1024 / m }')
    row "send (seal + upload + durable commit), GB/s" "$up" "nginx PUT stored $ref_up; Send 0.245" "$(ratio "$up" "$ref_up")" "beat Send widely" "benches/run.sh transfer"
    row "download (+ verify + open), GB/s" "$dn" "nginx GET $ref_dn; Send 0.326" "$(ratio "$dn" "$ref_dn")" "beat Send widely" "benches/run.sh transfer"
    row "server CPU-seconds per GiB uploaded" "$server_cpu_per_gib" "Send ~5" "-" "below Send" "benches/run.sh transfer"
    row "client peak RSS, send / download (MiB)" "$(mib "$send_kib") / $(mib "$down_kib")" "curl $(mib "$ngput_kib") / $(mib "$ngget_kib")" "-" "bounded" "benches/run.sh transfer"
    row "server peak RSS so far (MiB)" "$(mib "$(server_peak_kib)")" "-" "-" "bounded" "benches/run.sh transfer"
    rm -f "$work/doc.bin" "$work/nginx/www/doc.bin"
fi

# ---- 2b. a 4 GiB document: seal + upload, download + open; peak RSS of both sides ----
if want big; then
    echo "== big document $big_mib MiB"
    head -c "$((big_mib * 1024 * 1024))" /dev/urandom >"$work/big.bin"
    timed bsend env ATTACHE_HOME="$work/homes/u0" "$attache" send --to u1@firm.example --subject huge --json "$work/big.bin"
    id=$(user u0 inbox --sent --limit 1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
    mkdir -p "$work/bigdown"
    timed bdown env ATTACHE_HOME="$work/homes/u1" "$attache" download "$id" --out "$work/bigdown"
    cmp -s "$work/bigdown/big.bin" "$work/big.bin" || { echo "4 GiB document differs" >&2; exit 1; }
    rm -rf "$work/big.bin" "$work/bigdown"
    row "$big_mib MiB: client peak RSS send / download (MiB)" "$(mib "$bsend_kib") / $(mib "$bdown_kib")" "-" "-" "bounded" "benches/run.sh big"
    row "$big_mib MiB: server peak RSS (MiB)" "$(mib "$(server_peak_kib)")" "-" "-" "bounded" "benches/run.sh big"
    row "$big_mib MiB: send / download wall (s)" "$bsend_s / $bdown_s" "-" "-" "-" "benches/run.sh big"
fi

# ---- 3. small messages from many clients ----
if want small; then
    echo "== $small_clients clients, small messages, ${small_seconds}s"
    make_users 8
    load send "$work/homes" "$small_clients" "$small_seconds" 1024 | tee "$work/small.txt"
    val() { sed -n "s/^$1=//p" "$work/small.txt"; }
    row "durable sends per second ($small_clients clients, 1 KiB)" "$(val send_per_second)" "-" "-" ">= 5000" "benches/run.sh small"
    row "send latency p50 / p99 / p999 (ms)" "$(val send_p50_ms) / $(val send_p99_ms) / $(val send_p999_ms)" "-" "-" "p99 < 25" "benches/run.sh small"
fi

# ---- 3b. inbox listing with many messages waiting ----
if want inbox; then
    echo "== inbox with $inbox_messages messages"
    make_users 8
    load fill "$work/homes" u1@firm.example "$inbox_messages" 16 | tail -3
    load inbox "$work/homes/u1" 20 50 | tee "$work/inbox.txt"
    val() { sed -n "s/^$1=//p" "$work/inbox.txt"; }
    row "inbox: newest 50 of $inbox_messages, opened (ms p50 / p99)" "$(val inbox_p50_ms) / $(val inbox_p99_ms)" "-" "-" "-" "benches/run.sh inbox"
fi

# ---- 6. CLI latency per command ----
if want cli; then
    echo "== CLI latency"
    make_users 2
    for who in c0 c1; do
        invite=$(user u0 invite "$who@firm.example" --role attorney | grep -o 'https://[^ ]*/i/[^ ]*')
        user "$who" join "$invite" --name "$who" --cert-fingerprint "$cert" >/dev/null
    done
    for i in $(seq 50); do user c0 send --to c1@firm.example --subject "n$i" --body "$(head -c 700 /dev/urandom | base64 -w0)" >/dev/null; done
    cli_median() {   # cli_median COMMAND...: median wall ms of 10 runs
        local t=()
        for _ in $(seq 10); do
            local s e
            s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N)
            t+=($(((e - s) / 1000000)))
        done
        printf '%s\n' "${t[@]}" | sort -n | sed -n 5p
    }
    # After the first unlock of a session: each user's agent holds the unlocked key (the
    # passphrase is still in the environment, but the agent is asked first).
    user c0 agent start >/dev/null
    user c1 agent start >/dev/null
    body=$(head -c 768 /dev/urandom | base64 -w0)
    send_ms=$(cli_median user c0 send --to c1@firm.example --subject s --body "$body")
    inbox_ms=$(cli_median user c1 inbox --limit 50)
    user c0 agent stop >/dev/null
    user c1 agent stop >/dev/null
    row "attache send, 1 KiB body (ms per command)" "$send_ms" "ffsend upload 136" "$(ratio "$send_ms" 136)" "< 100" "benches/run.sh cli"
    row "attache inbox, 50 messages (ms per command)" "$inbox_ms" "ffsend download 97" "$(ratio "$inbox_ms" 97)" "< 100" "benches/run.sh cli"
fi

# ---- the table ----
table=$work/table.md
{
    echo "Run of $(date -u +%Y-%m-%d) on $(nproc) cores (load average at start: $(cut -d' ' -f1 /proc/loadavg)), sections: ${sections[*]}."
    echo
    echo "| figure | Attache | reference (same run) | ratio | target | command |"
    echo "| --- | --- | --- | --- | --- | --- |"
    for r in "${rows[@]}"; do IFS='|' read -r f v ref rat tgt cmd <<<"$r"; echo "| $f | $v | $ref | $rat | $tgt | \`$cmd\` |"; done
} >"$table"
echo
cat "$table"
doc=$repo/docs/PERFORMANCE.md
if grep -q '<!-- run.sh:begin -->' "$doc"; then
    python3 - "$doc" "$table" <<'EOF'
import sys
doc, table = sys.argv[1], open(sys.argv[2]).read()
text = open(doc).read()
head, rest = text.split("<!-- run.sh:begin -->", 1)
_, tail = rest.split("<!-- run.sh:end -->", 1)
open(doc, "w").write(head + "<!-- run.sh:begin -->\n" + table + "<!-- run.sh:end -->" + tail)
EOF
    echo "written to docs/PERFORMANCE.md"
fi
