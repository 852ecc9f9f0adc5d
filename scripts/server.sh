# Sourced by the scripts that check a fresh `attache serve` on 127.0.0.1 (api-fuzz.sh,
# tls-scan.sh): the binary to run, and one server started, awaited and stopped on exit.

# Prints the binary to run: $ATTACHE_BIN, or the release binary (built when out of date).
attache_bin() {
    local bin=${ATTACHE_BIN:-}
    if [ -z "$bin" ]; then
        cargo build --release --locked --bin attache >&2
        bin=target/release/attache
    fi
    realpath "$bin"
}

# start_attache NAME BIN OUT READY [ENV=VALUE...] -- [SERVE ARGS...]
# Starts BIN serve on a free port of 127.0.0.1 with its data and keys under OUT (the settings
# file ignored, ENV set), its output in OUT/server.out and OUT/server.err, and waits up to 30 s
# for a line of its output starting with READY. Sets $server (its pid, stopped on exit), $port
# and $url. NAME prefixes the errors.
server=""
stop_attache() {
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
}
start_attache() {
    local name=$1 bin=$2 out=$3 ready=$4
    shift 4
    local vars=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do vars+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    env -u ATTACHE_CONFIG "${vars[@]}" "$bin" serve --listen "127.0.0.1:$port" \
        --data "$out/data" --keys "$out/keys" "$@" >"$out/server.out" 2>"$out/server.err" &
    server=$!
    trap stop_attache EXIT
    for _ in $(seq 1 300); do
        grep -q "^$ready" "$out/server.out" 2>/dev/null && break
        kill -0 "$server" 2>/dev/null || { cat "$out/server.err" >&2; echo "$name: the server did not start" >&2; exit 1; }
        sleep 0.1
    done
    grep -q "^$ready" "$out/server.out" || { echo "$name: the server did not announce itself" >&2; exit 1; }
    url="https://127.0.0.1:$port"
}
