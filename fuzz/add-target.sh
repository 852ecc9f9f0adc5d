#!/usr/bin/env bash
# Adds a fuzz target: fuzz/add-target.sh NAME FUNCTION
#   NAME      the target's name (lower case, underscores), e.g. json_new_matter
#   FUNCTION  a path to a `fn(&[u8])`, e.g. 'attache_fuzz::json::<attache::wire::api::NewMatter>'
#             or 'attache_fuzz::evidence_bundle' (a new function in fuzz/src/lib.rs)
# Writes fuzz_targets/NAME.rs, its [[bin]] entry in Cargo.toml and an empty seeds/NAME/
# (put at least one valid input there).
set -euo pipefail
cd "$(dirname "$0")"
if [ $# -ne 2 ] || ! [[ $1 =~ ^[a-z][a-z0-9_]*$ ]]; then
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
name=$1 function=$2
if [ -e "fuzz_targets/$name.rs" ]; then
    echo "fuzz_targets/$name.rs exists already" >&2
    exit 1
fi
printf '#![no_main]\nlibfuzzer_sys::fuzz_target!(|data: &[u8]| %s(data));\n' "$function" \
    >"fuzz_targets/$name.rs"
printf '\n[[bin]]\nname = "%s"\npath = "fuzz_targets/%s.rs"\ntest = false\ndoc = false\nbench = false\n' \
    "$name" "$name" >>Cargo.toml
mkdir -p "seeds/$name"
echo "added target $name: fuzz_targets/$name.rs, [[bin]] in Cargo.toml, seeds/$name/ (add seeds)"
