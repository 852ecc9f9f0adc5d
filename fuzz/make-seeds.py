#!/usr/bin/env python3
"""Writes the committed seed corpus fuzz/seeds/TARGET/ from tests/vectors/*.json.

Binary seeds are the vectors' hex fields (valid and deliberately broken ones alike); the metadata
seeds are the vectors' metadata encoded as docs/FORMAT.md says (the decrypted block, padded);
the JSON seeds are one valid body per request type. The container seed needs the `attache`
binary (ATTACHE_BIN, else target/release or target/debug): it seals a small file with the
reader's key file of tests/vectors/key-file.json, so the fuzz targets' fixed identity opens it.
Re-running rewrites the same files (names are the vectors' names)."""
import glob
import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SEEDS = os.path.join(HERE, "seeds")
BUCKETS = [256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20]


def put(target, name, data):
    os.makedirs(os.path.join(SEEDS, target), exist_ok=True)
    with open(os.path.join(SEEDS, target, name), "wb") as f:
        f.write(data)


def b32(s):
    s = s.encode() if isinstance(s, str) else s
    return struct.pack(">I", len(s)) + s


def metadata_block(m, true_size):
    """The decrypted metadata block: version 1, fields, reader fingerprints, zero padding."""
    out = bytes([1]) + b32(m.get("file_name", "")) + b32(m.get("media_type", ""))
    out += struct.pack(">Q", true_size)
    out += b32(m.get("subject", "")) + b32(m.get("body", "")) + b32(m.get("matter", ""))
    readers = m.get("readers", [])
    out += struct.pack(">H", len(readers)) + b"".join(bytes.fromhex(r) for r in readers)
    bucket = next(b for b in BUCKETS if len(out) + 16 <= b)
    return out + bytes(bucket - 16 - len(out))


def main():
    vectors = sorted(glob.glob(os.path.join(ROOT, "tests", "vectors", "*.json")))
    for path in vectors:
        v = json.load(open(path))
        name, kind = v["name"], v.get("kind")
        if kind == "item":
            put("preamble", name, bytes.fromhex(v["preamble"]))
            put("manifest", name, bytes.fromhex(v["manifest"]))
            if "metadata" in v and v.get("expected") == "ok":
                content = v.get("content", "")
                size = content["len"] if isinstance(content, dict) else len(content) // 2
                put("metadata", name, metadata_block(v["metadata"], size))
        elif kind == "key_package":
            put("key_package", name, bytes.fromhex(v["age_file"]))
        elif kind == "key_file":
            put("key_file", name, bytes.fromhex(v["age_file"]))
        elif kind == "statement":
            put("statement", name, bytes.fromhex(v["signed_statement"]))
    put("metadata", "empty", metadata_block({}, 0))

    key = "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="
    sig = "c2lnbmF0dXJl" * 7
    hexid = "0123456789abcdef0123456789abcdef"
    bodies = {
        "json_join_request": {"invite_id": hexid, "secret": "c2VjcmV0LXNlY3JldC1zZWNyZXQ",
                              "email": "ada@firm.example", "name": "Ada", "public_keys": key},
        "json_challenge_request": {"email": "ada@firm.example"},
        "json_session_request": {"challenge_id": hexid, "email": "ada@firm.example",
                                 "signature": sig},
        "json_invite_request": {"email": "carol@client.example", "role": "client",
                                "name": "Carol"},
        "json_new_item": {"preamble": "QVRDSAEBAAA=" + "A" * 104},
        "json_commit_item": {"manifest": "QVRDTQEBAAA=",
                             "key_packages": [{"email": "carol@client.example",
                                               "package": "YWdlLWVuY3J5cHRpb24ub3JnL3YxCg=="}]},
        "json_send_message": {"item": hexid, "documents": [hexid], "to": ["carol@client.example"],
                              "in_reply_to": None},
    }
    for target, body in bodies.items():
        put(target, "valid", json.dumps(body).encode())
        # The same with optional fields left out (or the smallest body), where that is valid.
        small = {k: x for k, x in body.items() if x is not None and k not in ("name", "email")
                 or target in ("json_challenge_request", "json_session_request",
                               "json_invite_request")}
        put(target, "small", json.dumps(small, separators=(",", ":")).encode())

    container()


def container():
    binary = os.environ.get("ATTACHE_BIN")
    for candidate in ("target/release/attache", "target/debug/attache"):
        if not binary and os.path.exists(os.path.join(ROOT, candidate)):
            binary = os.path.join(ROOT, candidate)
    if not binary:
        print("no attache binary (build it or set ATTACHE_BIN): container seed not made",
              file=sys.stderr)
        return
    v = json.load(open(os.path.join(ROOT, "tests", "vectors", "key-file.json")))
    with tempfile.TemporaryDirectory() as tmp:
        keyfile = os.path.join(tmp, "reader.age")
        with open(keyfile, "wb") as f:
            f.write(bytes.fromhex(v["age_file"]))
        env = dict(os.environ, ATTACHE_PASSPHRASE=v["passphrase"])
        # One small file: a multi-chunk container would raise libFuzzer's input size to 64 KiB
        # and slow every target run; the manifest seeds cover two chunks.
        for name, content in (("small", b"Privileged and confidential.\n"),):
            plain = os.path.join(tmp, name)
            with open(plain, "wb") as f:
                f.write(content)
            out = os.path.join(tmp, name + ".atch")
            subprocess.run([binary, "seal", "--key", keyfile, "--threads", "one", "-o", out, plain],
                           env=env, check=True)
            put("container", name, open(out, "rb").read())


if __name__ == "__main__":
    main()
