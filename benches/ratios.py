#!/usr/bin/env python3
"""Print the seal/open throughputs and the project's target ratios from criterion's output.

Reads what `cargo bench --bench seal` leaves in `target/criterion`: for every benchmark,
`<group>/<function>[/<value>]/new/benchmark.json` (its ids and `"throughput": {"Bytes": n}`)
and `new/estimates.json` (the median time per iteration, in nanoseconds). Prints markdown.

Usage: python3 benches/ratios.py [CRITERION_DIR]
The directory defaults to $CARGO_TARGET_DIR/criterion, else target/criterion of this repository.
Entries that are missing or unreadable show as "-"; the script never fails on a partial run.
Standard library only.
"""

import json
import os
import re
import sys
from pathlib import Path

# Groups `seal-<size>` and `open-<size>`, as benches/seal.rs names them.
SIZE_GROUP = re.compile(r"^(seal|open)-(\d+)(B|KiB|MiB|GiB)$")
UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}

# Known functions per operation, in column order, with their column titles.
COLUMNS = {
    "seal": [
        ("attache-one-thread", "attache 1 thread"),
        ("attache-all-threads", "attache all threads"),
        ("ring-aes-gcm", "ring AES-GCM (1 thread)"),
        ("blake3", "BLAKE3 (1 thread)"),
        ("sha256", "SHA-256 (1 thread)"),
        ("age-crate", "age crate encrypt"),
    ],
    "open": [
        ("attache-one-thread", "attache 1 thread"),
        ("attache-all-threads", "attache all threads"),
        ("ring-aes-gcm", "ring AES-GCM (1 thread)"),
        ("age-crate", "age crate decrypt"),
    ],
}

# (title, operation, numerator function, denominator function, target, target is a percentage)
RATIOS = [
    ("seal 1t / AES-GCM", "seal", "attache-one-thread", "ring-aes-gcm", 0.40, True),
    ("seal all / AES-GCM", "seal", "attache-all-threads", "ring-aes-gcm", 0.75, True),
    ("seal 1t / age", "seal", "attache-one-thread", "age-crate", 3.0, False),
    ("open 1t / AES-GCM", "open", "attache-one-thread", "ring-aes-gcm", 0.40, True),
    ("open all / AES-GCM", "open", "attache-all-threads", "ring-aes-gcm", 0.75, True),
    ("open 1t / age", "open", "attache-one-thread", "age-crate", 3.0, False),
]

MISSING = "-"


def default_dir():
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        return Path(target) / "criterion"
    return Path(__file__).resolve().parent.parent / "target" / "criterion"


def load(root):
    """{(group, function, value): {"ns": median ns, "bytes": throughput bytes or None}}."""
    results = {}
    for bench_file in sorted(root.glob("**/new/benchmark.json")):
        try:
            bench = json.loads(bench_file.read_text())
            estimates = json.loads((bench_file.parent / "estimates.json").read_text())
        except (OSError, ValueError) as err:
            print(f"skipping {bench_file.parent}: {err}", file=sys.stderr)
            continue
        estimate = estimates.get("median") or estimates.get("mean") or {}
        ns = estimate.get("point_estimate")
        if not isinstance(ns, (int, float)) or ns <= 0:
            continue
        throughput = bench.get("throughput") or {}
        nbytes = throughput.get("Bytes") or throughput.get("BytesDecimal")
        key = (bench.get("group_id"), bench.get("function_id"), bench.get("value_str"))
        results[key] = {"ns": float(ns), "bytes": nbytes}
    return results


def gbps(entry, size):
    """Throughput in GB/s (10^9 bytes per second); bytes per nanosecond is exactly that."""
    if entry is None:
        return None
    nbytes = entry["bytes"] or size
    return nbytes / entry["ns"]


def fmt_gbps(value):
    return MISSING if value is None else f"{value:.3f}"


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def fmt_ratio(num, den, target, percent):
    if num is None or den is None or den == 0:
        return MISSING
    ratio = num / den
    if not percent:
        text = f"{ratio:.2f}x"
    elif ratio >= 0.1:
        text = f"{ratio * 100:.0f}%"
    else:
        text = f"{ratio * 100:.2g}%"
    return text if ratio >= target else f"**{text}** (below)"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main():
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else default_dir()
    if not root.is_dir():
        print(f"no criterion output at {root}; run `cargo bench --bench seal` first", file=sys.stderr)
        return 1
    results = load(root)
    if not results:
        print(f"no finished benchmarks under {root}", file=sys.stderr)
        return 1

    # sizes[label] = bytes; throughput[(operation, label)][function] = GB/s
    sizes = {}
    throughput = {}
    others = []
    for (group, function, value), entry in results.items():
        match = SIZE_GROUP.match(group or "")
        if match and value is None and function:
            op, label = match.group(1), match.group(2) + match.group(3)
            sizes[label] = int(match.group(2)) * UNITS[match.group(3)]
            throughput.setdefault((op, label), {})[function] = gbps(entry, sizes[label])
        else:
            name = "/".join(part for part in (group, function, value) if part)
            others.append((name, entry))
    labels = sorted(sizes, key=sizes.get)

    out = []
    for op, title in (("seal", "Seal"), ("open", "Open")):
        known = [f for f, _ in COLUMNS[op]]
        extra = sorted({f for (o, _), fs in throughput.items() if o == op for f in fs} - set(known))
        columns = COLUMNS[op] + [(f, f) for f in extra]
        rows = [
            [label] + [fmt_gbps(throughput.get((op, label), {}).get(f)) for f, _ in columns]
            for label in labels
            if (op, label) in throughput
        ]
        if rows:
            out.append(f"### {title}: throughput, GB/s (10^9 bytes/s, median)\n")
            out.append(table(["size"] + [t for _, t in columns], rows) + "\n")

    if labels:
        header = ["size"] + [
            f"{name} (target >= {target * 100:.0f}%)" if percent else f"{name} (target >= {target:g}x)"
            for name, _, _, _, target, percent in RATIOS
        ]
        rows = []
        for label in labels:
            row = [label]
            for _, op, num, den, target, percent in RATIOS:
                funcs = throughput.get((op, label), {})
                row.append(fmt_ratio(funcs.get(num), funcs.get(den), target, percent))
            rows.append(row)
        out.append("### Target ratios (attache vs the reference, same size, same run)\n")
        out.append(table(header, rows) + "\n")
        out.append(
            "AES-GCM is ring's AES-256-GCM alone on one thread over 64 KiB pieces (sealing in the "
            "seal rows, opening in the open rows); age is the `age` crate to one X25519 "
            "recipient.\n"
        )

    if others:
        rows = []
        for name, entry in sorted(others):
            rate = fmt_gbps(entry["bytes"] / entry["ns"]) if entry["bytes"] else MISSING
            rows.append([name, fmt_time(entry["ns"]), rate])
        out.append("### Other benchmarks (median)\n")
        out.append(table(["benchmark", "time", "GB/s"], rows) + "\n")

    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
