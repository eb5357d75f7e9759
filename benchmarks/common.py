"""What the benchmark scripts share: loopback ports, waiting for a listener, and ScopeGate's
configuration in front of a benchmark upstream."""
import socket
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELEASE_BINARY = ROOT / ".build" / "release" / "scopegate"


def free_ports(count):
    """`count` distinct loopback ports the kernel reports free (probed while all are held)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
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
