#!/usr/bin/env python3
"""Durable audit appends while the proxy keeps serving.

On loopback: a small upstream (nginx answering 200 "ok") and ScopeGate (release build) in front of
it, with the audit log on (`synchronous=FULL`). For each algorithm: wrk loads ScopeGate's pass-through
path alone, then again while `scopegate audit benchmark` appends signed entries from 64 concurrent
writers into the same store. Prints the durable append rate, the algorithm's raw signing rate and
their ratio, and the proxy's throughput with and without the appends.

    swift build -c release --product scopegate
    python3 benchmarks/audit.py [--entries 100000] [--duration 10]

Needs nginx and wrk (Debian packages `nginx`, `wrk`).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from common import RELEASE_BINARY, free_ports, require, scopegate_config, stop, wait_for
from proxy import nginx, wrk


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--binary", default=str(RELEASE_BINARY))
    args = parser.parse_args()
    require(args.binary, ("nginx", "wrk"))

    rows = []
    for algorithm in ("ES256", "EdDSA"):
        work = Path(tempfile.mkdtemp(prefix="scopegate-audit-bench-"))
        up, gate, admin = free_ports(3)
        processes = []
        try:
            processes.append(nginx(work, "upstream", {
                "workers": 1,
                "http": f'server {{ listen 127.0.0.1:{up}; location / {{ default_type text/plain; return 200 "ok\\n"; }} }}',
            }))
            subprocess.run(
                [args.binary, "keys", "generate", "--dir", str(work / "keys"), "--alg", algorithm],
                check=True, capture_output=True,
            )
            config = work / "scopegate.yaml"
            config.write_text(scopegate_config(work, gate, admin, up, "s*", extra=f"audit:\n  keys: {work / 'keys'}\n"))
            env = dict(os.environ, SCOPEGATE_LOG_LEVEL="warning")
            processes.append(subprocess.Popen([args.binary, "serve", "--config", str(config)], env=env))
            for port in (up, gate):
                wait_for(port)
            url = f"http://127.0.0.1:{gate}/realms/acme/account"
            wrk(url, 2, 64, 2)
            alone = wrk(url, args.duration, 64, 2)[0]
            loaded = {}

            def load():
                loaded["rps"] = wrk(url, args.duration, 64, 2)[0]

            thread = threading.Thread(target=load)
            thread.start()
            result = subprocess.run(
                [args.binary, "audit", "benchmark", "--config", str(config), "--entries", str(args.entries)],
                check=True, capture_output=True, text=True, env=env,
            )
            thread.join()
            figures = json.loads(result.stdout.strip().splitlines()[-1])
            verify = subprocess.run(
                [args.binary, "audit", "verify", "--config", str(config)], capture_output=True, text=True, env=env
            )
            if verify.returncode != 0:
                sys.exit(f"the benchmark's log does not verify: {verify.stderr}")
            rows.append((algorithm, figures, alone, loaded["rps"]))
        finally:
            stop(processes, work)

    print(f"{args.entries} entries from 64 writers, synchronous=FULL, wrk -t2 -c64 on pass-through meanwhile, "
          f"{os.cpu_count()} cores\n")
    print("| algorithm | durable entries/s | raw signatures/s | ratio | proxy requests/s alone | with appends |")
    print("|---|---:|---:|---:|---:|---:|")
    for algorithm, figures, alone, loaded_rps in rows:
        durable, signing = figures["durable_entries_per_second"], figures["signing_per_second"]
        print(f"| {algorithm} | {durable:,} | {signing:,} | {durable / signing:.2f} | {alone:,.0f} | {loaded_rps:,.0f} |")


if __name__ == "__main__":
    main()
