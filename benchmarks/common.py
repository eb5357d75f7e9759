"""What the benchmark scripts share: loopback ports, waiting for a listener, and ScopeGate's
configuration in front of a benchmark upstream."""
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELEASE_BINARY = ROOT / ".build" / "release" / "scopegate"


def free_ports(count):
    """`count` distinct loopback ports that are free now (probed while all are held), chosen below the
    kernel's ephemeral range so that no outgoing connection takes one before its server binds it."""
    try:
        low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError):
        low = 0
    sockets = []
    try:
        while len(sockets) < count:
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", random.randrange(10_000, low) if low > 10_100 else 0))
            except OSError:
                sock.close()
                continue
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_for(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def scopegate_config(work, gate, admin, upstream, scope_pattern, extra=""):
    """ScopeGate in front of `upstream` (authorization endpoint `/authorize`), one known client `bench`,
    every scope matching `scope_pattern` asked about."""
    return f"""
public_url: http://127.0.0.1:{gate}
listen:
  public: 127.0.0.1:{gate}
  admin: 127.0.0.1:{admin}
upstream:
  url: http://127.0.0.1:{upstream}
  authorization_endpoint: /authorize
  token_endpoint: /token
store:
  path: {work}/scopegate.sqlite
scopes:
  - pattern: "{scope_pattern}"
    auto: ask
    tier: elevated
clients:
  - id: bench
    name: Benchmark
    redirect_uris: ["https://bench.example/cb"]
{extra}"""


def require(binary, tools=()):
    """Exits with what to install when a tool or the release build is missing."""
    for tool in tools:
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (apt-get install {tool})")
    if not Path(binary).exists():
        sys.exit(f"{binary} is missing: swift build -c release --product scopegate")


def stop(processes, work=None):
    """Stops `processes` (SIGTERM, then SIGKILL after 15 s) and removes the work folder."""
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)
