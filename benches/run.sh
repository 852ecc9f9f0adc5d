#!/usr/bin/env bash
# The end-to-end benchmark suite: every figure of docs/PERFORMANCE.md's summary table, each
# next to its reference measured in the same run on the same machine.
#
#   bash benches/run.sh [SECTION...]     sections: peers transfer big small inbox storage
#                                        notices cli (default: all; `RAGE=1` also runs rage)
#
# Installs what it needs (apt: nginx, age, curl, GNU time, python3-venv; pip in a venv: aiosmtpd
# for `notices`; cargo: rage when RAGE=1), builds the release binary (in $CARGO_TARGET_DIR if
# set), runs real servers on 127.0.0.1 with their data in a temporary folder on local disk
# ($TMPDIR), prints one table and merges it into docs/PERFORMANCE.md between the `run.sh`
# markers (rows of sections not run this time are kept). Sizes can be lowered for a quick
# look: TRANSFER_MIB (1024), TRANSFER_RUNS (3, medians), BIG_MIB (4096), SMALL_SECONDS (30),
# SMALL_CLIENTS (64), INBOX_MESSAGES (10000), STORAGE_MIB (2048), NOTICES (200). PERF_DIR
# (unset) keeps a `perf record -g` profile of the server under the small-message load. STORES
# ("files sled") lists the blob stores that `transfer`, `small` and `storage` run against;
# the other sections use the first.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
sections=("$@")
((${#sections[@]})) || sections=(peers transfer big small inbox storage notices cli)
transfer_mib=${TRANSFER_MIB:-1024}
big_mib=${BIG_MIB:-4096}
small_seconds=${SMALL_SECONDS:-30}
small_clients=${SMALL_CLIENTS:-64}
inbox_messages=${INBOX_MESSAGES:-10000}
transfer_runs=${TRANSFER_RUNS:-3}
storage_mib=${STORAGE_MIB:-2048}
notices=${NOTICES:-200}
read -r -a stores <<<"${STORES:-files sled}"

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
attache=${CARGO_TARGET_DIR:-$repo/target}/release/attache
load() { cargo bench --quiet --bench load -- "$@"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/attache-bench.XXXXXX")
server_pid=""
nginx_pid=""
smtp_pid=""
cleanup() {
    stop_server
    [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null
    [ -n "$smtp_pid" ] && kill "$smtp_pid" 2>/dev/null
    rm -rf "$work"
    [ -n "${shm:-}" ] && rm -rf "$shm"
    return 0
}
trap cleanup EXIT
export ATTACHE_PASSPHRASE=bench-passphrase
rows=()   # "figure|value|reference|ratio|target|command"
row() { rows+=("$1|$2|$3|$4|$5|$6"); printf '  %s: %s (reference %s, %s; target %s)\n' "$1" "$2" "$3" "$4" "$5"; }
load_now() { cut -d' ' -f1 /proc/loadavg; }
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
# sled's page cache of the servers started: 256 MiB, but for the 4 GiB document's memory figure,
# which is taken with the default (64 MiB).
cache_mb=256
# start_server STORE [ENV=VALUE...]: a fresh server with blob store STORE in $work/srv-STORE,
# its users' profiles in $work/homes-STORE; stops the one running before.
start_server() {
    local store=$1; shift
    stop_server
    srv=$work/srv-$store
    homes=$work/homes-$store
    rm -rf "$srv" "$homes"
    mkdir -p "$srv" "$homes"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    # The load sections send thousands of requests per minute from one address and one account:
    # the abuse limits are off for this server (what is measured is the work, not the limits).
    env ATTACHE_RATE_WRITES_PER_IP=0 ATTACHE_RATE_WRITES_PER_ACCOUNT=0 \
        ATTACHE_RATE_CHUNKS_PER_IP=0 ATTACHE_RATE_CHUNKS_PER_ACCOUNT=0 \
        ATTACHE_NOTICE_WINDOW=0 "$@" "$attache" serve --listen "127.0.0.1:$port" \
        --data "$srv/data" --keys "$srv/keys" --cache-mb "$cache_mb" --blob-store "$store" \
        >"$srv/out" 2>"$srv/log" &
    server_pid=$!
    for _ in $(seq 100); do grep -q '^listening on' "$srv/out" 2>/dev/null && break; sleep 0.1; done
    url=$(sed -n 's/^listening on //p' "$srv/out")
    cert=$(sed -n 's/^certificate //p' "$srv/out")
    [ -n "$url" ] || { cat "$srv/log" >&2; exit 1; }
    users_made=0
}
stop_server() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
# With PERF_DIR set, profile_start NAME samples the server with `perf record` (DWARF call
# graphs) into
# $PERF_DIR/NAME.data until profile_stop (report: perf report -i FILE --no-children).
perf_pid=""
profile_start() {
    [ -n "${PERF_DIR:-}" ] || return 0
    mkdir -p "$PERF_DIR"
    perf record -q -F "${PERF_FREQ:-199}" --call-graph "${PERF_CALLGRAPH:-dwarf,8192}" -p "$server_pid" \
        -o "$PERF_DIR/$1.data" 2>/dev/null &
    perf_pid=$!
}
profile_stop() {
    [ -n "$perf_pid" ] || return 0
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
    perf_pid=""
}
server_peak_kib() { awk '/VmHWM/ { print $2 }' "/proc/$server_pid/status"; }
server_cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$server_pid/stat"; }
# CPU-seconds the whole machine was busy (every process: the server, the clients, the rest).
machine_cpu_s() { awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" { printf "%.2f", ($2 + $3 + $4 + $7 + $8) / hz }' /proc/stat; }
# Bytes the server has written to storage (its files and the database), from /proc/PID/io.
server_written() { awk '$1 == "write_bytes:" { print $2 }' "/proc/$server_pid/io"; }
metric() { curl -sk "$url/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
# user WHO ARGS...: the attache CLI as user WHO (a plain command, so that GNU time can run it).
user() { local who=$1; shift; env ATTACHE_HOME="$homes/$who" "$attache" "$@"; }
users_made=0
# Key files with a low scrypt cost for the load users: 64 clients unlocking at the default cost
# (about a second and 256 MiB each) would measure scrypt, not the server. The CLI section uses
# users with default-cost key files, as people have.
new_key() {
    mkdir -p "$homes/$1"
    "$attache" identity new --key "$homes/$1/key.age" --work-factor 10 >/dev/null 2>&1
}
make_users() {   # make_users N: u0 (admin, from the bootstrap invite) … u(N-1) (attorneys)
    local n=$1 i invite
    if ((users_made == 0)); then
        invite=$(cat "$srv/keys/bootstrap-invite")
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
# median of the numbers given
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
last_sent() { user u0 inbox --sent --limit 1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])'; }

# ---- nginx over TLS 1.3 on loopback, the transfer reference ----
start_nginx() {
    # Its own folder, which nginx's workers (not root) can reach; $work is private.
    local dir=$work/nginx
    mkdir -p "$dir/www" "$dir/put" "$dir/tmp"
    chmod a+x "$work" "$dir"
    # nginx's workers drop root; they write the PUT bodies and rename them into put/.
    chmod a+rwx "$dir/put" "$dir/tmp"
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
# Downloads go to a tmpfs folder when there is one (/dev/shm), as curl's go to /dev/null: the
# figure is the transfer with every check, not the disk (the CLI still writes and syncs the
# file; on tmpfs that costs no disk IO). Uploads are durable: each request's chunks are synced
# before the answer, so the disk's own speed at writing the same bytes and syncing them is a
# reference next to nginx's (which stores into the page cache and never syncs).
if want transfer; then
    echo "== transfer $transfer_mib MiB, $transfer_runs runs per store, load $(load_now)"
    start_nginx
    bytes=$((transfer_mib * 1024 * 1024))
    head -c "$bytes" /dev/urandom >"$work/doc.bin"
    cp "$work/doc.bin" "$work/nginx/www/doc.bin"
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then shm=$(mktemp -d /dev/shm/attache-bench.XXXXXX); else shm=$work/down-tmp; fi
    sync
    for store in "${stores[@]}"; do
        start_server "$store"
        make_users 2
        at="$(date -u +%H:%MZ), load $(load_now)"
        ups=() dns=() ngups=() ngdns=() ngsaves=() disks=() cpus=() sendk=() downk=()
        for ((r = 0; r < transfer_runs; r++)); do
            timed ngget curl -fsk --tlsv1.3 -o /dev/null "https://127.0.0.1:$nginx_port/get/doc.bin"
            # The same download saved where Attache's goes: a file of fresh pages, as the
            # CLI's (on this VM the first touch of each page costs more than the copy).
            mkdir -p "$shm/down"
            timed ngsave curl -fsk --tlsv1.3 -o "$shm/down/nginx.bin" "https://127.0.0.1:$nginx_port/get/doc.bin"
            rm -f "$shm/down/nginx.bin"
            timed ngput curl -fsk --tlsv1.3 -T "$work/doc.bin" "https://127.0.0.1:$nginx_port/put/doc.bin"
            [ "$(stat -c %s "$work/nginx/put/doc.bin")" = "$bytes" ] || { echo "nginx stored no document" >&2; exit 1; }
            rm -f "$work/nginx/put/doc.bin"
            timed disk dd if="$work/doc.bin" of="$work/disk.bin" bs=1M conv=fsync
            rm -f "$work/disk.bin"
            sync
            cpu0=$(server_cpu_s)
            timed send env ATTACHE_HOME="$homes/u0" "$attache" send --to u1@firm.example --subject big --json "$work/doc.bin"
            cpu1=$(server_cpu_s)
            id=$(last_sent)
            mkdir -p "$shm/down"
            timed down env ATTACHE_HOME="$homes/u1" "$attache" download "$id" --out "$shm/down"
            cmp -s "$shm/down/doc.bin" "$work/doc.bin" || { echo "downloaded document differs" >&2; exit 1; }
            rm -f "$shm/down/doc.bin"
            ups+=("$(gbps "$bytes" "$send_s")"); dns+=("$(gbps "$bytes" "$down_s")")
            ngups+=("$(gbps "$bytes" "$ngput_s")"); ngdns+=("$(gbps "$bytes" "$ngget_s")"); ngsaves+=("$(gbps "$bytes" "$ngsave_s")")
            disks+=("$(gbps "$bytes" "$disk_s")")
            cpus+=("$(awk -v a="$cpu0" -v b="$cpu1" -v m="$transfer_mib" 'BEGIN { printf "%.2f", (b - a) * 1024 / m }')")
            sendk+=("$send_kib"); downk+=("$down_kib")
            echo "   run $r [$store]: send ${ups[-1]} GB/s (nginx PUT ${ngups[-1]}, disk+fsync ${disks[-1]}), download ${dns[-1]} GB/s (nginx GET ${ngdns[-1]}, saved ${ngsaves[-1]}), server ${cpus[-1]} CPU-s/GiB"
        done
        up=$(median "${ups[@]}"); dn=$(median "${dns[@]}"); ref_up=$(median "${ngups[@]}"); ref_dn=$(median "${ngdns[@]}"); ref_save=$(median "${ngsaves[@]}")
        ref_disk=$(median "${disks[@]}")
        row "[$store] send $transfer_mib MiB (seal + upload + durable commit), GB/s" "$up" "nginx PUT $ref_up (not synced); disk write + fsync $ref_disk; Send 0.245 ($(ratio "$up" 0.245))" "$(ratio "$up" "$ref_up")" ">= 0.7x nginx, >> Send" "benches/run.sh transfer ($at)"
        row "[$store] download $transfer_mib MiB (+ verify + open), GB/s" "$dn" "nginx GET $ref_dn to /dev/null; saved to the same tmpfs $ref_save ($(ratio "$dn" "$ref_save")); Send 0.326 ($(ratio "$dn" 0.326))" "$(ratio "$dn" "$ref_dn")" ">= 0.7x nginx, >> Send" "benches/run.sh transfer ($at)"
        row "[$store] server CPU-seconds per GiB uploaded" "$(median "${cpus[@]}")" "Send ~5" "$(ratio "$(median "${cpus[@]}")" 5)" "below Send" "benches/run.sh transfer ($at)"
        row "[$store] client peak RSS, send / download (MiB)" "$(mib "$(median "${sendk[@]}")") / $(mib "$(median "${downk[@]}")")" "curl $(mib "$ngput_kib") / $(mib "$ngget_kib")" "-" "< 64" "benches/run.sh transfer ($at)"
        row "[$store] server peak RSS after the transfers (MiB)" "$(mib "$(server_peak_kib)")" "Send 120" "-" "< 64" "benches/run.sh transfer ($at)"
    done
    rm -f "$work/doc.bin" "$work/nginx/www/doc.bin"
fi

# ---- 2b. a 4 GiB document: seal + upload, download + open; peak RSS of both sides ----
if want big; then
    store=${stores[0]}
    echo "== big document $big_mib MiB [$store], load $(load_now)"
    cache_mb=64
    start_server "$store"
    cache_mb=256
    make_users 2
    at="$(date -u +%H:%MZ), load $(load_now)"
    head -c "$((big_mib * 1024 * 1024))" /dev/urandom >"$work/big.bin"
    timed bsend env ATTACHE_HOME="$homes/u0" "$attache" send --to u1@firm.example --subject huge --json "$work/big.bin"
    id=$(last_sent)
    mkdir -p "$work/bigdown"
    timed bdown env ATTACHE_HOME="$homes/u1" "$attache" download "$id" --out "$work/bigdown"
    cmp -s "$work/bigdown/big.bin" "$work/big.bin" || { echo "4 GiB document differs" >&2; exit 1; }
    rm -rf "$work/big.bin" "$work/bigdown"
    row "[$store] $big_mib MiB: client peak RSS send / download (MiB)" "$(mib "$bsend_kib") / $(mib "$bdown_kib")" "-" "-" "< 64" "benches/run.sh big ($at)"
    row "[$store] $big_mib MiB: server peak RSS (MiB; default --cache-mb 64)" "$(mib "$(server_peak_kib)")" "-" "-" "< 64" "benches/run.sh big ($at)"
    row "[$store] $big_mib MiB: send / download wall (s; download to disk, synced)" "$bsend_s / $bdown_s" "-" "-" "-" "benches/run.sh big ($at)"
fi

# ---- 3. small messages from many clients ----
if want small; then
    for store in "${stores[@]}"; do
        echo "== [$store] $small_clients clients, small messages, ${small_seconds}s, load $(load_now)"
        start_server "$store"
        make_users 8
        at="$(date -u +%H:%MZ), load $(load_now)"
        f0=$(metric attache_flushes_total); c0=$(metric attache_commits_total); cpu0=$(server_cpu_s)
        all0=$(machine_cpu_s); w0=$(server_written)
        profile_start "small-$store"
        load send "$homes" "$small_clients" "$small_seconds" 1024 | tee "$work/small.txt"
        profile_stop
        f1=$(metric attache_flushes_total); c1=$(metric attache_commits_total); cpu1=$(server_cpu_s)
        all1=$(machine_cpu_s); w1=$(server_written)
        val() { sed -n "s/^$1=//p" "$work/small.txt"; }
        n=$(val send_count)
        per_send=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$n" 'BEGIN { printf "%.2f", (b - a) * 1000 / n }')
        # Everything but the server: the 64 clients (sealing, signing, TLS) and the rest of the VM.
        others=$(awk -v a="$all0" -v b="$all1" -v s0="$cpu0" -v s1="$cpu1" -v n="$n" 'BEGIN { printf "%.2f", ((b - a) - (s1 - s0)) * 1000 / n }')
        written=$(awk -v a="$w0" -v b="$w1" -v n="$n" 'BEGIN { printf "%.1f", (b - a) / n / 1024 }')
        per_flush=$(awk -v f="$((f1 - f0))" -v c="$((c1 - c0))" 'BEGIN { printf "%.1f", c / f }')
        row "[$store] durable sends per second ($small_clients clients, 1 KiB)" "$(val send_per_second)" "server CPU $per_send ms and $written KiB written per send; clients and the rest $others CPU-ms per send; $per_flush commits per flush" "-" ">= 5000" "benches/run.sh small ($at)"
        row "[$store] send latency p50 / p99 / p999 (ms)" "$(val send_p50_ms) / $(val send_p99_ms) / $(val send_p999_ms)" "-" "-" "p99 < 25" "benches/run.sh small ($at)"
    done
fi

# ---- 3b. inbox listing with many messages waiting ----
if want inbox; then
    store=${stores[0]}
    echo "== [$store] inbox with $inbox_messages messages, load $(load_now)"
    start_server "$store"
    make_users 8
    at="$(date -u +%H:%MZ), load $(load_now)"
    load fill "$homes" u1@firm.example "$inbox_messages" 16 | tail -3
    load inbox "$homes/u1" 20 50 | tee "$work/inbox.txt"
    val() { sed -n "s/^$1=//p" "$work/inbox.txt"; }
    row "[$store] inbox: newest 50 of $inbox_messages, opened (ms p50 / p99)" "$(val inbox_p50_ms) / $(val inbox_p99_ms)" "ffsend download 97" "-" "< 100" "benches/run.sh inbox ($at)"
fi

# ---- 4. bytes on disk per byte of ciphertext, after writing and after deleting half ----
# Documents of 128 MiB go half into matter A and half into matter B; A is closed with one day
# of retention and the server's test clock moved two days on, so the sweep (every second)
# deletes A's content. The ciphertext stored is the server's own count of chunk bytes
# received; the disk figure is what `du` says the data folder occupies (allocated blocks).
if want storage; then
    head -c $((128 << 20)) /dev/urandom >"$work/doc128.bin"
    docs=$((storage_mib / 128))
    for store in "${stores[@]}"; do
        echo "== [$store] storage: $docs documents of 128 MiB, load $(load_now)"
        clock=$work/clock-$store
        echo 0 >"$clock"
        start_server "$store" ATTACHE_TEST_CLOCK_FILE="$clock" ATTACHE_SWEEP_SECONDS=1
        make_users 2
        at="$(date -u +%H:%MZ), load $(load_now)"
        ma=$(user u0 matter create "Matter A" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
        mb=$(user u0 matter create "Matter B" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
        ct0=$(metric attache_chunk_bytes_received_total)
        for ((i = 0; i < docs; i++)); do
            m=$ma; ((i >= docs / 2)) && m=$mb
            user u0 send --to u1@firm.example --subject "d$i" --matter "$m" "$work/doc128.bin" >/dev/null
            ((i == docs / 2 - 1)) && cta=$(metric attache_chunk_bytes_received_total)
        done
        ct1=$(metric attache_chunk_bytes_received_total)
        disk_full=$(du -sB1 "$srv/data" | cut -f1)
        user u0 matter close "$ma" --retain-days 1 >/dev/null
        echo $((2 * 86400)) >"$clock"
        for _ in $(seq 600); do
            user u0 matter list --json 2>>"$work/poll.err" | grep -q '"deleted"' && break
            sleep 1
        done
        user u0 matter list --json | grep -q '"deleted"' || { echo "matter A was not deleted" >&2; exit 1; }
        sleep 2
        disk_half=$(du -sB1 "$srv/data" | cut -f1)
        stop_server
        disk_cold=$(du -sB1 "$srv/data" | cut -f1)
        ct_all=$((ct1 - ct0)); ct_left=$((ct1 - cta))
        r1=$(awk -v d="$disk_full" -v c="$ct_all" 'BEGIN { printf "%.3f", d / c }')
        r2=$(awk -v d="$disk_half" -v c="$ct_left" 'BEGIN { printf "%.3f", d / c }')
        r3=$(awk -v d="$disk_cold" -v c="$ct_left" 'BEGIN { printf "%.3f", d / c }')
        row "[$store] disk / ciphertext after writing $storage_mib MiB" "$r1" "$(mib $((disk_full / 1024))) MiB on disk for $(mib $((ct_all / 1024))) MiB; plain file 1.0" "-" "<= 1.3" "benches/run.sh storage ($at)"
        row "[$store] disk / ciphertext after deleting half (matter A)" "$r2 (stopped: $r3)" "$(mib $((disk_half / 1024))) MiB on disk for $(mib $((ct_left / 1024))) MiB" "-" "<= 1.3" "benches/run.sh storage ($at)"
    done
    rm -f "$work/doc128.bin"
fi

# ---- 5. notice delay: acknowledgement to SMTP acceptance, window 0 ----
# An SMTP sink (aiosmtpd in a venv) notes when it accepts each notice; the notice's Message-ID
# starts with its creation time in milliseconds (written in the message's transaction, before
# the flush that acknowledges the send), so each delay is measured from a moment just before
# the acknowledgement: a slight overestimate.
if want notices; then
    store=${stores[0]}
    venv=${XDG_CACHE_HOME:-$HOME/.cache}/attache-bench-venv
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
        python3 -m venv "$venv" 2>/dev/null || {
            sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
            $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
            python3 -m venv "$venv"; }
        "$venv/bin/pip" install -q aiosmtpd
    fi
    smtp_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat >"$work/sink.py" <<'EOF'
import sys, time, asyncio
from aiosmtpd.controller import Controller
out = open(sys.argv[2], "a", buffering=1)
class Sink:
    async def handle_DATA(self, server, session, envelope):
        at = time.time()
        mid = next((l.split(b":", 1)[1].strip().decode() for l in envelope.content.splitlines()
                    if l.lower().startswith(b"message-id:")), "")
        out.write(f"{at:.6f} {mid}\n")
        return "250 OK"
c = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
try:
    while True: time.sleep(3600)
finally:
    c.stop()
EOF
    : >"$work/mails.txt"
    "$venv/bin/python" "$work/sink.py" "$smtp_port" "$work/mails.txt" &
    smtp_pid=$!
    sleep 1
    echo "== [$store] notices: $notices messages, window 0, load $(load_now)"
    start_server "$store" ATTACHE_SMTP="smtp+insecure://127.0.0.1:$smtp_port" ATTACHE_MAIL_FROM=portal@firm.example
    make_users 4
    at="$(date -u +%H:%MZ), load $(load_now)"
    before=$(wc -l <"$work/mails.txt")
    load fill "$homes" u1@firm.example "$notices" 4 | tail -1
    for _ in $(seq 120); do (($(wc -l <"$work/mails.txt") - before >= notices)) && break; sleep 0.5; done
    tail -n +"$((before + 1))" "$work/mails.txt" | python3 -c '
import sys
d = sorted(float(t) * 1000 - int(m.strip("<>")[:16], 16) for t, m in (l.split() for l in sys.stdin if len(l.split()) == 2))
print(len(d), "%.1f" % d[len(d) // 2], "%.1f" % d[min(len(d) - 1, int(len(d) * 0.99))], "%.1f" % d[-1])' >"$work/delays.txt"
    read -r got med p99 worst <"$work/delays.txt"
    kill "$smtp_pid" 2>/dev/null; smtp_pid=""
    row "[$store] notice delay, acknowledgement to SMTP acceptance, window 0 (ms median / p99 / max; $got emails for $notices messages to one person: notices due together go out as one)" "$med / $p99 / $worst" "-" "-" "< 2000" "benches/run.sh notices ($at)"
fi

# The CLI section talks to a server with the first store.
if want cli; then
    start_server "${stores[0]}"
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
    for r in "${rows[@]}"; do IFS='|' read -r f v ref rat tgt cmd <<<"$r"; echo "| $f | $v | $ref | $rat | $tgt | \`$cmd\` |"; done
} >"$table"
echo
cat "$table"
doc=$repo/docs/PERFORMANCE.md
if grep -q '<!-- run.sh:begin -->' "$doc"; then
    python3 - "$doc" "$table" "$(date -u +%Y-%m-%d)" "$(nproc)" "${sections[*]}" <<'EOF'
import re, sys
doc, table, day, cores, ran = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3], sys.argv[4], sys.argv[5].split()
text = open(doc).read()
head, rest = text.split("<!-- run.sh:begin -->", 1)
old, tail = rest.split("<!-- run.sh:end -->", 1)
def section(line):
    m = re.search(r"`benches/(run|peers)\.sh ?(\w*)", line)
    return None if not m else ("peers" if m.group(1) == "peers" else m.group(2))
kept = [l for l in old.splitlines() if l.startswith("| ") and not l.startswith(("| figure", "| ---")) and section(l) not in ran]
new = [l for l in table.splitlines() if l.startswith("| ")]
order = ["peers", "transfer", "big", "small", "inbox", "storage", "notices", "cli"]
rows = sorted(kept + new, key=lambda l: order.index(section(l)) if section(l) in order else 99)
body = (f"Last run of sections {' '.join(ran)}: {day} on {cores} cores (rows of other sections are from "
        "earlier runs); the time and load average at the start of each section are in its command column.\n\n"
        "| figure | Attache | reference (same run) | ratio | target | command |\n| --- | --- | --- | --- | --- | --- |\n"
        + "\n".join(rows) + "\n")
open(doc, "w").write(head + "<!-- run.sh:begin -->\n" + body + "<!-- run.sh:end -->" + tail)
EOF
    echo "merged into docs/PERFORMANCE.md"
fi
