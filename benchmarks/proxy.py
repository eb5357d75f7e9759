#!/usr/bin/env python3
"""Pass-through and gated-path benchmark for ScopeGate, against nginx as a plain reverse proxy.

Everything runs on loopback on this machine: a small upstream (nginx answering 200 "ok"), nginx as a
reverse proxy in front of it (upstream keep-alive on), and ScopeGate (release build) in front of the same
upstream. wrk measures each target in turn, for several interleaved rounds, so that machine noise hits
all of them alike; the medians and the ratios are printed as a Markdown table.

    swift build -c release --product scopegate
    python3 benchmarks/proxy.py [--rounds 3] [--duration 10] [--connections 64]

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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
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
        for _ in range(args.rounds):
            for name, url in targets.items():
                results[name].append(wrk(url, args.duration, args.connections, args.threads))

        def median(name, index):
            return statistics.median(r[index] for r in results[name])

        print(f"{args.rounds} interleaved rounds of {args.duration}s, wrk -t{args.threads} -c{args.connections}, "
              f"{count} grants in the store, {os.cpu_count()} cores\n")
        print("| target | requests/s | p50 ms | p99 ms |")
        print("|---|---:|---:|---:|")
        for name in targets:
            print(f"| {name} | {median(name, 0):,.0f} | {median(name, 1):.2f} | {median(name, 2):.2f} |")
        nginx_rps, nginx_p99 = median("nginx reverse proxy", 0), median("nginx reverse proxy", 2)
        pass_rps, pass_p99 = median("ScopeGate pass-through", 0), median("ScopeGate pass-through", 2)
        gated_rps = median("ScopeGate gated (all granted)", 0)
        same_rps = median("ScopeGate pass-through, same query", 0)
        print()
        print("| ratio | value | target |")
        print("|---|---:|---|")
        print(f"| pass-through throughput / nginx | {pass_rps / nginx_rps:.2f} | at least 0.5 |")
        print(f"| pass-through p99 / nginx p99 | {pass_p99 / nginx_p99:.2f} | at most 2 |")
        print(f"| gated throughput / pass-through | {gated_rps / pass_rps:.2f} | at least 0.9 |")
        print(f"| gated throughput / pass-through of the same request target | {gated_rps / same_rps:.2f} | (the gate's own cost) |")
    finally:
        stop(processes, work)


if __name__ == "__main__":
    main()
