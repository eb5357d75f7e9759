#!/usr/bin/env python3
"""Pass-through and gated-path benchmark for ScopeGate, against nginx as a plain reverse proxy.

Everything runs on loopback on this machine: a small upstream (nginx answering 200 "ok"), nginx as a
reverse proxy in front of it (upstream keep-alive on), and ScopeGate (release build) in front of the same
upstream. wrk measures each target in turn, for several interleaved rounds, so that machine noise hits
all of them alike; the medians and the ratios are printed as a Markdown table.

    swift build -c release --product scopegate
    swift build -c release --product relay-floor    # optional: the NIO byte-relay floor
    python3 benchmarks/proxy.py [--rounds 10] [--duration 3] [--connections 64] [--layout shared|pinned|both]

Two layouts: *shared*, everything on every core; *pinned*, the proxy under test (ScopeGate, or the
reference nginx with one worker) on core 0 and wrk and the upstream on core 1, so that the proxy's own
cost shows without the load generator competing for its core. For each proxy the CPU time it used
during each run (utime + stime of its processes, from /proc) is divided by the requests it answered:
CPU microseconds per request, steadier than throughput on a shared machine.

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
    return subprocess.Popen(
        body.get("cpu", []) + ["nginx", "-g", "daemon off;", "-c", str(conf), "-p", str(work)], stderr=subprocess.DEVNULL)


def cpu_seconds(pids):
    """utime + stime of `pids` and their children's threads so far (an nginx master's workers too)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        for each in [pid] + children(pid):
            try:
                fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
    return total / tick


def children(pid):
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def wrk(url, duration, connections, threads, cpu=None, pids=()):
    """One wrk run: requests/s, p50 and p99 in ms, and the CPU microseconds per request that `pids` spent."""
    before = cpu_seconds(pids) if pids else None
    output = subprocess.run(
        (cpu or []) + ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    total = int(re.search(r"(\d+) requests in", output).group(1))
    used = (cpu_seconds(pids) - before) * 1e6 / total if pids else float("nan")
    if "Non-2xx or 3xx responses" in output:
        raise RuntimeError(f"{url} answered errors:\n{output}")

    def latency(label):
        value, unit = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", output).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return rps, latency("50"), latency("99"), used


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--duration", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--binary", default=str(RELEASE_BINARY))
    parser.add_argument("--layout", choices=("shared", "pinned", "both"), default="both")
    args = parser.parse_args()
    require(args.binary, ("nginx", "wrk", "taskset") if args.layout != "shared" else ("nginx", "wrk"))
    for layout in ("shared", "pinned") if args.layout == "both" else (args.layout,):
        run(args, layout)
        print()


def run(args, layout):
    pinned = layout == "pinned"
    proxy_core = ["taskset", "-c", "0"] if pinned else []
    load_core = ["taskset", "-c", "1"] if pinned else []
    work = Path(tempfile.mkdtemp(prefix="scopegate-bench-"))
    up, ref, gate, admin = free_ports(4)
    processes = []
    try:
        processes.append(nginx(work, "upstream", {
            "cpu": load_core,
            "workers": 1,
            "http": f'server {{ listen 127.0.0.1:{up}; location / {{ default_type text/plain; return 200 "ok\\n"; }} }}',
        }))
        processes.append(nginx(work, "reference", {
            "cpu": proxy_core,
            "workers": 1 if pinned else "auto",
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
        # The floor: a byte relay on SwiftNIO (no HTTP), when built, on the proxy's core like the others.
        floor = Path(args.binary).parent / "relay-floor"
        floor_port = free_ports(1)[0] if floor.exists() else None
        if floor_port:
            processes.append(subprocess.Popen(proxy_core + [str(floor), str(floor_port), str(up)]))
        config = work / "scopegate.yaml"
        config.write_text(scopegate_config(work, gate, admin, up, "s*"))
        env = dict(os.environ, SCOPEGATE_LOG_LEVEL="warning")
        server = subprocess.Popen(proxy_core + [args.binary, "serve", "--config", str(config)], env=env)
        processes.append(server)
        for port in (up, ref, gate) + ((floor_port,) if floor_port else ()):
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
        if floor_port:
            targets["NIO byte relay, no HTTP (floor)"] = f"http://127.0.0.1:{floor_port}/realms/acme/account"
        # Whose CPU time each target costs: the proxy under test (none for the upstream alone).
        pids = {name: [server.pid] for name in targets}
        pids["upstream directly"] = []
        pids["nginx reverse proxy"] = [processes[1].pid]
        if floor_port:
            pids["NIO byte relay, no HTTP (floor)"] = [processes[2].pid]
        for url in targets.values():  # warm up, and fail early if a target answers errors
            wrk(url, 2, args.connections, args.threads, load_core)
        results = {name: [] for name in targets}
        names = list(targets)
        for round_index in range(args.rounds):
            # Every other round runs the targets in reverse, so that no target always follows the same one.
            for name in names if round_index % 2 == 0 else reversed(names):
                results[name].append(wrk(targets[name], args.duration, args.connections, args.threads, load_core, pids[name]))

        def median(name, index):
            return statistics.median(r[index] for r in results[name])

        def ratio(numerator, denominator, index=0):
            """The median over rounds of the ratio measured within each round, and its range.

            Targets measured a few seconds apart see the same machine; the ratio within a round cancels
            the drift of a shared machine's speed between rounds, which a ratio of medians would not."""
            values = [a[index] / b[index] for a, b in zip(results[numerator], results[denominator])]
            return statistics.median(values), min(values), max(values)

        print(f"### Layout: {layout}" + (" (proxy on core 0; wrk and the upstream on core 1)" if pinned else " (everything shares every core)"))
        print()
        print(f"{args.rounds} interleaved rounds of {args.duration}s, wrk -t{args.threads} -c{args.connections}, "
              f"{count} grants in the store, {os.cpu_count()} cores\n")
        print("| target | requests/s | p50 ms | p99 ms | proxy CPU µs per request |")
        print("|---|---:|---:|---:|---:|")
        for name in targets:
            cpu = "—" if not pids[name] else f"{median(name, 3):.1f}"
            print(f"| {name} | {median(name, 0):,.0f} | {median(name, 1):.2f} | {median(name, 2):.2f} | {cpu} |")
        rows = [
            ("pass-through throughput / nginx", ratio("ScopeGate pass-through", "nginx reverse proxy"), "at least 0.75", lambda v: v >= 0.75),
            ("pass-through p99 / nginx p99", ratio("ScopeGate pass-through", "nginx reverse proxy", 2), "at most 1.5", lambda v: v <= 1.5),
            ("gated throughput / pass-through", ratio("ScopeGate gated (all granted)", "ScopeGate pass-through"), "at least 0.95", lambda v: v >= 0.95),
            ("gated throughput / pass-through of the same request target",
             ratio("ScopeGate gated (all granted)", "ScopeGate pass-through, same query"), "—", None),
            ("pass-through CPU per request / nginx", ratio("ScopeGate pass-through", "nginx reverse proxy", 3), "at most 1.35", lambda v: v <= 1.35),
        ]
        if floor_port:
            rows.append((
                "NIO byte relay (floor) CPU per request / nginx",
                ratio("NIO byte relay, no HTTP (floor)", "nginx reverse proxy", 3), "—", None))
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
