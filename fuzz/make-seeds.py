#!/usr/bin/env python3
"""Writes the committed seed corpus fuzz/seeds/TARGET/ from tests/vectors/*.json.

Binary seeds are the vectors' hex fields (valid and deliberately broken ones alike); the metadata
seeds are the vectors' metadata encoded as docs/FORMAT.md says (the decrypted block, padded);
the JSON seeds are one valid body per request type. The container seed needs the `attache`
binary (ATTACHE_BIN, else target/release or target/debug): it seals a small file with the
reader's key file of tests/vectors/key-file.json, so the fuzz targets' fixed identity opens it.
Re-running rewrites the same files (names are the vectors' names), except the container seed,
which is kept once made (sealing is randomized)."""
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

    for name in ("key-package", "item-small"):
        v = json.load(open(os.path.join(ROOT, "tests", "vectors", name + ".json")))
        who = v.get("identity") or v.get("sender")
        put("public_keys", name + "-bytes", bytes.fromhex(who["public_keys"]))
        put("public_keys", name + "-text", ("attache-public-v1:" + who["public_keys"]).encode())
        put("public_keys", name + "-age", who["age_recipient"].encode())
    legal(vectors_by_name={json.load(open(p))["name"]: json.load(open(p)) for p in vectors})
    container()


def legal(vectors_by_name):
    """Seeds for the legal-workflow parsers: a validly signed grant (Ed25519 by the vector
    reader's seed, via python3-cryptography when installed), stored audit entries, a checkpoint,
    a structurally complete evidence bundle (its statement is the statement-sign vector; its
    audit attestation is not valid, so verification stops at a later check), and request bodies."""
    import base64
    hexid = "0123456789abcdef0123456789abcdef"
    zeros = "0" * 64
    matter = bytes.fromhex("44" * 16)
    # Audit entries: version byte 1, then JSON.
    entries = [
        {"seq": 0, "at": 1800000000, "actor": "ann@firm.example", "addr": "127.0.0.1",
         "action": "matter.create", "object": matter.hex(), "matter": matter.hex(),
         "prev": zeros, "matter_prev": zeros},
        {"seq": 1, "at": 1800000100, "actor": "server", "action": "signature.signed",
         "object": "11" * 16, "prev": "ab" * 32},
    ]
    stored = [b"\x01" + json.dumps(e, separators=(",", ":")).encode() for e in entries]
    for i, raw in enumerate(stored):
        put("audit_entry", f"entry-{i}", raw)
    # Checkpoint: version 1, count, head, at, one matter head.
    checkpoint = (bytes([1]) + struct.pack(">Q", 2) + bytes.fromhex("cd" * 32)
                  + struct.pack(">q", 1800000200) + struct.pack(">I", 1)
                  + matter + struct.pack(">Q", 1) + bytes.fromhex("ef" * 32))
    put("audit_checkpoint", "one-matter", checkpoint)
    put("audit_checkpoint", "empty", bytes([1]) + bytes(8 + 32 + 8 + 4))

    reader_keys = vectors_by_name["key-file"]["public_keys"]
    statement = bytes.fromhex(vectors_by_name["statement-sign"]["signed_statement"])
    party = lambda email: {"email": email, "public_keys": "attache-public-v1:" + reader_keys,
                           "fingerprint": "10069 26178 53506 32049 48718 96900"}
    bundle = {
        "format": "attache-evidence v1",
        "request": {"id": "07" * 16, "requester": "ann@firm.example",
                    "signer": "carol@client.example", "message": "22" * 16,
                    "document": "33" * 16, "matter": matter.hex(), "created_at": 1800000000,
                    "deadline": 1800100000, "status": "signed", "answered_at": 1800000100},
        "statement": base64.b64encode(statement).decode(),
        "requester": party("ann@firm.example"),
        "signer": party("carol@client.example"),
        "document_sha256": vectors_by_name["statement-sign"]["document_sha256"],
        "audit": {"entries": [base64.b64encode(r).decode() for r in stored],
                  "attested_at": 1800000300, "attestation": base64.b64encode(bytes(64)).decode(),
                  "server_key": base64.b64encode(bytes(range(32))).decode()},
    }
    put("evidence_bundle", "structural", json.dumps(bundle, indent=2).encode() + b"\n")

    # A signed grant: u32 len || statement || Ed25519 signature over domain || statement.
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    except ImportError:
        print("python3-cryptography missing: grant seed not made", file=sys.stderr)
    else:
        seed = bytes.fromhex("886a1c830e94404a5e80ccf8003809b42a791498a36a68c7f20a25b801c5c1a6")
        key = Ed25519PrivateKey.from_private_bytes(seed)
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        body = (bytes([1]) + bytes.fromhex("55" * 16) + b32("ann@firm.example") + public
                + b32("dan@cocounsel.example") + bytes.fromhex("66" * 32)
                + bytes([1]) + matter + bytes([0])
                + struct.pack(">H", 1) + bytes.fromhex("77" * 16) + bytes.fromhex("88" * 32)
                + struct.pack(">q", 1800000000) + struct.pack(">q", 1800600000))
        signature = key.sign(b"attache/v1 grant\0" + body)
        put("grant", "signed", b32(body) + signature)

    bodies = {
        "json_new_matter": {"sealed_name": "YWdlLWVuY3J5cHRpb24ub3JnL3YxCg=="},
        "json_close_matter": {"retain_days": 30},
        "json_new_signature_request": {"message": hexid, "document": hexid,
                                       "signer": "carol@client.example", "deadline": 1800100000},
        "json_answer_signature": {"intent": "sign",
                                  "sealed_statement": "YWdlLWVuY3J5cHRpb24ub3JnL3YxCg=="},
        "json_new_grant": {"grant": base64.b64encode(b"grant").decode(),
                           "key_packages": [{"item": hexid,
                                             "package": "YWdlLWVuY3J5cHRpb24ub3JnL3YxCg=="}]},
    }
    for target, body in bodies.items():
        put(target, "valid", json.dumps(body).encode())
    put("json_close_matter", "small", b"{}")


def container():
    # Sealing is randomized: keep the committed seed rather than rewrite it on every run.
    if os.path.exists(os.path.join(SEEDS, "container", "small")):
        return
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
