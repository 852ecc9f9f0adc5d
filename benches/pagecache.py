#!/usr/bin/env python3
"""What keeping written pages in the page cache costs, against letting them go after each sync.

    python3 benches/pagecache.py [DIR] [MIB] [RUNS]     (default: benches/.., 1024 MiB, 3 runs)

Writes MIB MiB in 8 MiB pieces, `fdatasync` after each piece (as the server does per upload
request), once keeping the pages cached and once advising the kernel to drop each piece after
its sync (`posix_fadvise(DONTNEED)`, as `src/storage/blobs.rs` does), alternating, with a
pause between runs. Prints wall and system time per run. On a virtual machine whose free memory
the host takes back, every fresh page of cache costs far more than the copy into it.
"""
import os
import resource
import sys
import time

PIECE = 8 << 20


def run(path, mib, drop):
    buf = os.urandom(PIECE)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for i in range(mib * (1 << 20) // PIECE):
            os.write(fd, buf)
            os.fdatasync(fd)
            if drop:
                os.posix_fadvise(fd, i * PIECE, PIECE, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
        os.unlink(path)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return time.monotonic() - t0, r1.ru_stime - r0.ru_stime


def main():
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    folder = sys.argv[1] if len(sys.argv) > 1 else here
    mib = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    path = os.path.join(folder, ".pagecache-bench.bin")
    for _ in range(runs):
        for drop in (False, True):
            wall, system = run(path, mib, drop)
            name = "drop after sync" if drop else "keep cached"
            print(f"{name:16} {mib} MiB: wall {wall:.2f} s, system {system:.2f} s")
            time.sleep(3)


if __name__ == "__main__":
    main()
