"""A steady CPU-bound load on one core, for the benchmark's busy mode.

``python -m bench.burn --core 0 --report FILE`` pins itself to one core and spins until
SIGTERM, then writes ``loops seconds cpu_seconds`` to FILE, so the benchmark can show the
load stayed steady through every phase (loops per second per phase) and the systems under
test shared the machine with the same load.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path
from types import FrameType

# Loops between clock reads: small enough to notice SIGTERM at once.
CHUNK = 10_000


def burn(report: Path) -> None:
    stop = False

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    loops, value = 0, 0
    started, cpu0 = time.perf_counter(), time.process_time()
    while not stop:
        for i in range(CHUNK):
            value ^= i * 2654435761 & 0xFFFFFFFF
        loops += CHUNK
    seconds = time.perf_counter() - started
    report.write_text(f"{loops} {seconds:.3f} {time.process_time() - cpu0:.3f}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.burn")
    parser.add_argument("--core", type=int, default=0, help="the core to load (default 0)")
    parser.add_argument("--report", type=Path, required=True)
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {args.core})
    burn(args.report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
