#!/usr/bin/env python3
"""Pass-through and gated-path benchmark for ScopeGate, against nginx as a plain reverse proxy.

Everything runs on loopback on this machine: a small upstream (nginx answering 200 "ok"), nginx as a
reverse proxy in front of it (upstream keep-alive on), and ScopeGate (release build) in front of the same
upstream. wrk measures each target in turn, for several interleaved rounds, so that machine noise hits
all of them alike; the medians and the ratios are printed as a Markdown table.

    swift build -c release --product scopegate
    python3 benchmarks/proxy.py [--rounds 10] [--duration 3] [--connections 64]

Needs nginx and wrk (Debian packages `nginx`, `wrk`).
"""
import argparse
import os
import re
import sqlite3
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import RELEASE_BINARY, free_ports, require, scopegate_config, stop, wait_for


def nginx(work, name, body):
    conf = work / f"{name}.conf"
    conf.write_text(
        f"""
worker_processes {body['workers']};
pid {work}/{name}.pid;
error_log {work}/{name}.error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    {body['http']}
}}
"""
    )
    return subprocess.Popen(["nginx", "-g", "daemon off;", "-c", str(conf), "-p", str(work)], stderr=subprocess.DEVNULL)


def wrk(url, duration, connections, threads):
    output = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    if "Non-2xx or 3xx responses" in output:
        raise RuntimeError(f"{url} answered errors:\n{output}")

    def latency(label):
        value, unit = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", output).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return rps, latency("50"), latency("99")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--duration", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--binary", default=str(RELEASE_BINARY))
    args = parser.parse_args()
    require(args.binary, ("nginx", "wrk"))

    work = Path(tempfile.mkdtemp(prefix="scopegate-bench-"))
    up, ref, gate, admin = free_ports(4)
    processes = []
    try:
        processes.append(nginx(work, "upstream", {
            "workers": 1,
            "http": f'server {{ listen 127.0.0.1:{up}; location / {{ default_type text/plain; return 200 "ok\\n"; }} }}',
        }))
        processes.append(nginx(work, "reference", {
            "workers": "auto",
            "http": f"""
    upstream idp {{ server 127.0.0.1:{up}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{ref};
        location / {{
            proxy_pass http://idp;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $remote_addr;
        }}
    }}""",
        }))
        config = work / "scopegate.yaml"
        config.write_text(scopegate_config(work, gate, admin, up, "s*"))
        env = dict(os.environ, SCOPEGATE_LOG_LEVEL="warning")
        server = subprocess.Popen([args.binary, "serve", "--config", str(config)], env=env)
        processes.append(server)
        for port in (up, ref, gate):
            wait_for(port)
        # 10,000 standing grants: 100 clients with 100 scopes each, the benchmark client among them.
        with sqlite3.connect(work / "scopegate.sqlite", timeout=30) as db:
            rows = [
                ("bench" if c == 0 else f"client-{c}", f"s{s}", "bench", time.time(), None, None)
                for c in range(100) for s in range(100)
            ]
            db.executemany(
                "INSERT OR REPLACE INTO scope_grant (client_id, scope, approved_by, granted_at, expires_at, approval_request_id) VALUES (?,?,?,?,?,?)",
                rows,
            )
            count = db.execute("SELECT COUNT(*) FROM scope_grant").fetchone()[0]
        gated_query = "response_type=code&client_id=bench&redirect_uri=https%3A%2F%2Fbench.example%2Fcb&scope=s1%20s2%20s3&state=abc"
        targets = {
            "upstream directly": f"http://127.0.0.1:{up}/realms/acme/account",
            "nginx reverse proxy": f"http://127.0.0.1:{ref}/realms/acme/account",
            "ScopeGate pass-through": f"http://127.0.0.1:{gate}/realms/acme/account",
            "ScopeGate pass-through, same query": f"http://127.0.0.1:{gate}/realms/acme/account?{gated_query}",
            "ScopeGate gated (all granted)": f"http://127.0.0.1:{gate}/authorize?{gated_query}",
        }
        for url in targets.values():  # warm up, and fail early if a target answers errors
            wrk(url, 2, args.connections, args.threads)
        results = {name: [] for name in targets}
        names = list(targets)
        for round_index in range(args.rounds):
            # Every other round runs the targets in reverse, so that no target always follows the same one.
            for name in names if round_index % 2 == 0 else reversed(names):
                results[name].append(wrk(targets[name], args.duration, args.connections, args.threads))

        def median(name, index):
            return statistics.median(r[index] for r in results[name])

        def ratio(numerator, denominator, index=0):
            """The median over rounds of the ratio measured within each round, and its range.

            Targets measured a few seconds apart see the same machine; the ratio within a round cancels
            the drift of a shared machine's speed between rounds, which a ratio of medians would not."""
            values = [a[index] / b[index] for a, b in zip(results[numerator], results[denominator])]
            return statistics.median(values), min(values), max(values)

        print(f"{args.rounds} interleaved rounds of {args.duration}s, wrk -t{args.threads} -c{args.connections}, "
              f"{count} grants in the store, {os.cpu_count()} cores\n")
        print("| target | requests/s | p50 ms | p99 ms |")
        print("|---|---:|---:|---:|")
        for name in targets:
            print(f"| {name} | {median(name, 0):,.0f} | {median(name, 1):.2f} | {median(name, 2):.2f} |")
        rows = [
            ("pass-through throughput / nginx", ratio("ScopeGate pass-through", "nginx reverse proxy"), "at least 0.5", lambda v: v >= 0.5),
            ("pass-through p99 / nginx p99", ratio("ScopeGate pass-through", "nginx reverse proxy", 2), "at most 2", lambda v: v <= 2),
            ("gated throughput / pass-through", ratio("ScopeGate gated (all granted)", "ScopeGate pass-through"), "at least 0.9", lambda v: v >= 0.9),
            ("gated throughput / pass-through of the same request target",
             ratio("ScopeGate gated (all granted)", "ScopeGate pass-through, same query"), "—", None),
        ]
        print()
        print("| ratio (median of the rounds' ratios) | value | range over rounds | target | met |")
        print("|---|---:|---|---|---|")
        for label, (value, low, high), target, met in rows:
            verdict = "—" if met is None else ("yes" if met(value) else "no")
            print(f"| {label} | {value:.3f} | {low:.2f}–{high:.2f} | {target} | {verdict} |")
    finally:
        stop(processes, work)


if __name__ == "__main__":
    main()
