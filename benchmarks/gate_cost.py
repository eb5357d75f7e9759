#!/usr/bin/env python3
"""The gate's own cost per authorization request, in instructions (callgrind) and nanoseconds.

Instruction counts do not depend on what else the machine is doing, so they show the effect of a
change to the parser or the policy where the proxy benchmark's throughput, on a shared machine, moves
by more than the change. The count is the difference between two runs of different lengths, divided
by the difference in decisions, so that start-up does not count. Both ways the proxy admits are
counted: a query of the common shape read in place, and the strict parser that reads every other.

    swift build -c release --product gate-cost
    python3 benchmarks/gate_cost.py

Needs valgrind (Debian package `valgrind`).
"""
import re
import shutil
import subprocess
import sys
import tempfile

from common import ROOT

BINARY = ROOT / ".build" / "release" / "gate-cost"


def instructions(iterations, work, mode):
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={work}/callgrind.out", str(BINARY), str(iterations), mode],
        capture_output=True, text=True, check=True,
    )
    return int(re.search(r"Collected : (\d+)", result.stderr).group(1))


def main():
    if not BINARY.exists():
        sys.exit(f"{BINARY} is missing: swift build -c release --product gate-cost")
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is missing (apt-get install valgrind)")
    # `plain`: as the proxy admits the common shape (read in place, the answer remembered by the snapshot);
    # `evaluated`: the same with every request's scopes evaluated (a scope value not seen since grants
    # last changed); `strict`: through the strict parser, as it admits a query of any other shape.
    for mode in ("plain", "evaluated", "strict"):
        with tempfile.TemporaryDirectory() as work:
            short, long = 2_000, 22_000
            per_decision = (instructions(long, work, mode) - instructions(short, work, mode)) / (long - short)
        timed = subprocess.run([str(BINARY), "300000", mode], capture_output=True, text=True, check=True).stdout.strip()
        print(f"{mode}: instructions per gate decision: {per_decision:,.0f}")
        print(f"{mode}: natively: {timed}")


if __name__ == "__main__":
    main()
