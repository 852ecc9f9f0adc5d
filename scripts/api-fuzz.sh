#!/usr/bin/env bash
# API fuzzing: schemathesis against /v1/openapi.json of a real `attache serve` on 127.0.0.1,
# with a fresh data and keys folder and a signed-in administrator's session.
#
#   scripts/api-fuzz.sh                 20 examples per operation
#   API_FUZZ_EXAMPLES=100 scripts/api-fuzz.sh
#
# The administrator joins through the bootstrap invite with the CLI (`attache join`, the
# certificate pinned by the fingerprint the server printed); `attache whoami` then signs in
# and the CLI caches the session token in the profile (session.json), which is what the
# fuzzer sends as `Authorization: Bearer`. Checks: no 5xx (not_a_server_error), every status
# code documented (status_code_conformance), every body of the documented type and schema
# (content_type_conformance, response_schema_conformance). Fails on any failure or error.
#
# The rate limits of the server are switched off for the run: the fuzzer sends thousands of
# writes from one address and one account, and what it tests is parsing and the document, not
# the limits (tests/it/limits.rs does). Set ATTACHE_BIN to fuzz a given binary instead of
# building target/release/attache. Keeps the report and the server's log in API_FUZZ_OUT
# (default: a temporary folder, removed on success). The venv with schemathesis lives in
# target/api-fuzz/venv and is made on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

examples=${API_FUZZ_EXAMPLES:-20}
seed=${API_FUZZ_SEED:-1}
venv=$PWD/target/api-fuzz/venv
if [ ! -x "$venv/bin/st" ]; then
    echo "installing schemathesis into $venv" >&2
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check schemathesis
fi
echo "schemathesis $("$venv/bin/st" --version | awk '{print $NF}')" >&2

. scripts/server.sh
bin=$(attache_bin)

out=${API_FUZZ_OUT:-$(mktemp -d -t attache-api-fuzz.XXXXXX)}
mkdir -p "$out"
out=$(realpath "$out")
start_attache api-fuzz "$bin" "$out" 'bootstrap invite: ' \
    ATTACHE_RATE_AUTH_PER_IP=0 ATTACHE_RATE_WRITES_PER_ACCOUNT=0 ATTACHE_RATE_WRITES_PER_IP=0 \
    ATTACHE_RATE_CHUNKS_PER_ACCOUNT=0 ATTACHE_RATE_CHUNKS_PER_IP=0 ATTACHE_RATE_INVITES_PER_ACCOUNT=0 --
invite=$(sed -n 's/^bootstrap invite: //p' "$out/server.out")
fingerprint=$(sed -n 's/^certificate //p' "$out/server.out")

export ATTACHE_HOME="$out/admin"
export ATTACHE_PASSPHRASE="api fuzz: a throwaway passphrase"
unset ATTACHE_KEY
"$bin" join "$invite" --email admin@fuzz.example --name "Fuzz Admin" \
    --cert-fingerprint "$fingerprint" >"$out/join.txt"
"$bin" whoami >/dev/null
token=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["token"])' "$ATTACHE_HOME/session.json")

echo "fuzzing $url with $examples examples per operation (seed $seed)" >&2
status=0
# From the output folder: schemathesis keeps a cache folder in its working directory.
(cd "$out" && "$venv/bin/st" run "$url/v1/openapi.json" \
    --header "Authorization: Bearer $token" \
    --tls-verify false \
    --max-examples "$examples" \
    --seed "$seed" \
    --generation-database none \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --report junit,vcr --report-dir "$out/report" \
    --no-color) \
    >"$out/schemathesis.txt" 2>&1 || status=$?
# The summary: operations, test cases, failures.
sed -n '/SUMMARY/,$p' "$out/schemathesis.txt" | grep -v '^\s*$' | head -40
if [ "$status" -ne 0 ]; then
    echo "api-fuzz: schemathesis failed (exit $status); full output in $out/schemathesis.txt" >&2
    trap - EXIT
    stop_attache
    exit 1
fi
stop_attache
trap - EXIT
[ -n "${API_FUZZ_OUT:-}" ] || rm -rf "$out"
echo "api-fuzz: no server error, every answer conforms to the OpenAPI document"
