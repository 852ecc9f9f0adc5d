#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine: installs the system tools the tests use
# (the Go `age` CLI for interoperability tests), then `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v age >/dev/null 2>&1 || need_apt+=(age)
command -v script >/dev/null 2>&1 || need_apt+=(bsdutils)
if ((${#need_apt[@]})); then
    echo "installing ${need_apt[*]} (apt)" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# --show-output prints what tests report (the age testkit tally, the vector count).
cargo test --locked "$@" -- --show-output
