#!/usr/bin/env bash
# TLS scan: testssl.sh against a real `attache serve` on 127.0.0.1 with a fresh data and keys
# folder (so the server makes its own self-signed certificate), then a check of every finding.
#
#   scripts/tls-scan.sh            the default configuration (TLS 1.3 only)
#   scripts/tls-scan.sh --tls12    with TLS 1.2 enabled too (the server's tls12 setting)
#
# Fails if any finding has severity MEDIUM, HIGH or CRITICAL, unless its id is in ALLOWED below:
# the findings that follow only from the self-signed test certificate, each with the reason.
# Prints `tls-scan: N findings checked, M allowed (self-signed), 0 failing`. Set ATTACHE_BIN to
# scan a given binary instead of building target/release/attache. Keeps the JSON and the
# server's log in TLS_SCAN_OUT (default: a temporary folder, removed on success).
set -euo pipefail
cd "$(dirname "$0")/.."

tls12=false
case "${1:-}" in
    "") ;;
    --tls12) tls12=true ;;
    *) echo "usage: scripts/tls-scan.sh [--tls12]" >&2; exit 2 ;;
esac

if ! command -v testssl >/dev/null 2>&1; then
    echo "installing testssl.sh (apt)" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends testssl.sh
fi

. scripts/server.sh
bin=$(attache_bin)

out=${TLS_SCAN_OUT:-$(mktemp -d -t attache-tls-scan.XXXXXX)}
mkdir -p "$out"
extra=()
$tls12 && extra+=(--tls12)
start_attache tls-scan "$bin" "$out" 'listening on ' -- "${extra[@]}"
echo "scanning $url (tls12=$tls12): $(grep '^certificate ' "$out/server.out")" >&2

json="$out/testssl-$([ "$tls12" = true ] && echo tls12 || echo default).json"
rm -f "$json"
# testssl's exit status counts findings in some versions; the JSON is what is judged.
testssl --quiet --color 0 --fast --warnings off --jsonfile "$json" "$url" >"$out/testssl.txt" 2>&1 || true
[ -s "$json" ] || { cat "$out/testssl.txt" >&2; echo "tls-scan: testssl wrote no JSON" >&2; exit 1; }

status=0
python3 - "$json" <<'EOF' || status=$?
import json
import sys

# Findings that follow from the server's self-signed test certificate (made by rcgen on first
# start when no tls_cert is configured), not from its TLS configuration. A CA-issued
# certificate (tls_cert/tls_key) clears each of them.
ALLOWED = {
    "cert_chain_of_trust": "self-signed: no CA vouches for it (clients pin its SHA-256 instead)",
    "cert_trust": "self-signed for localhost/127.0.0.1: no public name a CA would certify",
    "cert_caIssuers": "self-signed: there is no issuer to point to",
    "cert_crlDistributionPoints": "self-signed: no CA, so no CRL to revoke it in",
    "cert_ocspURL": "self-signed: no CA, so no OCSP responder",
    "cert_revocation": "self-signed: no CRL and no OCSP URL",
    "OCSP_stapling": "self-signed: no OCSP responder whose answer could be stapled",
    "cert_validityPeriod": "rcgen's default validity (1975 to 4096); CA certificates last at most 398 days",
    "cert_expirationStatus": "rcgen's default validity (1975 to 4096)",
    "DNS_CAArecord": "127.0.0.1 has no DNS name, so no CAA record",
}
BAD = {"MEDIUM", "HIGH", "CRITICAL"}

with open(sys.argv[1]) as f:
    data = json.load(f)
# testssl writes a flat list (--jsonfile) or an object with scanResult (--jsonfile-pretty).
findings = data if isinstance(data, list) else [
    f for r in data.get("scanResult", []) for group in r.values() if isinstance(group, list)
    for f in group]
if not findings:
    sys.exit("tls-scan: no findings in the JSON")
allowed, failing = [], []
for f in findings:
    severity = f.get("severity", "")
    if severity == "FATAL" or (f.get("id") == "scanProblem" and severity not in ("OK", "INFO")):
        failing.append(f)
    elif severity in BAD:
        (allowed if f.get("id") in ALLOWED else failing).append(f)
for f in allowed:
    print(f"allowed  {f['severity']:8} {f['id']}: {f.get('finding', '')} -- {ALLOWED[f['id']]}")
for f in failing:
    print(f"FAILING  {f['severity']:8} {f['id']}: {f.get('finding', '')}")
print(f"tls-scan: {len(findings)} findings checked, {len(allowed)} allowed (self-signed), "
      f"{len(failing)} failing")
sys.exit(1 if failing else 0)
EOF
if [ $status -eq 0 ] && [ -z "${TLS_SCAN_OUT:-}" ]; then
    stop_attache
    server=""
    rm -rf "$out"
else
    echo "tls-scan: JSON, testssl output and server log kept in $out" >&2
fi
exit $status
