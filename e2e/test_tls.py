"""TLS at ScopeGate's public listener: the certificate made by certs/make-dev-certs.sh, replaced on disk and
reloaded on SIGHUP (as renewal tools signal servers) without dropping a connection that is open."""
import shutil
import signal
import socket
import ssl
import subprocess
import time

from conftest import ROOT, Gate


def make_certs(folder):
    subprocess.run(["bash", str(ROOT / "certs" / "make-dev-certs.sh"), str(folder)], check=True, capture_output=True)


def pem_to_der(path):
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def connect(port):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="localhost")


def get(connection, path):
    connection.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += connection.recv(4096)
    return head.split(b"\r\n", 1)[0].decode()


def test_a_new_certificate_is_picked_up_on_sighup_and_open_connections_stay(idp, callback_server, tmp_path):
    live, renewed = tmp_path / "live", tmp_path / "renewed"
    make_certs(live)
    make_certs(renewed)
    gate = Gate(idp, callback_server, tmp_path, extra=f"tls:\n  certificate: {live}/server.crt\n  key: {live}/server.key")
    gate.config.write_text(gate.config.read_text().replace("public_url: http://", "public_url: https://"))
    gate.start()
    try:
        open_connection = connect(gate.port)
        assert open_connection.getpeercert(binary_form=True) == pem_to_der(live / "server.crt")
        assert get(open_connection, "/o/.well-known/openid-configuration").endswith("200 OK")
        # The renewal writes the new files in place, then signals.
        for name in ("server.crt", "server.key"):
            shutil.copy(renewed / name, live / (name + ".new"))
            (live / (name + ".new")).replace(live / name)
        gate.process.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while time.time() < deadline:
            with connect(gate.port) as fresh:
                if fresh.getpeercert(binary_form=True) == pem_to_der(renewed / "server.crt"):
                    break
            time.sleep(0.1)
        else:
            raise AssertionError("the renewed certificate was not picked up")
        assert gate.process.poll() is None, "SIGHUP must not stop ScopeGate"
        # The connection opened before the reload still works, with the old certificate.
        assert get(open_connection, "/o/.well-known/openid-configuration").endswith("200 OK")
        open_connection.close()
    finally:
        gate.stop()


def test_sighup_without_tls_stops_nothing(gate):
    gate.process.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert gate.process.poll() is None
    with socket.create_connection(("127.0.0.1", gate.port), timeout=5) as connection:
        connection.sendall(b"GET /o/.well-known/openid-configuration HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert connection.recv(64).startswith(b"HTTP/1.1 200")


def test_a_browser_speaks_http2_to_scopegate_and_is_held_then_released(idp, callback_server, tmp_path):
    """Chromium negotiates h2 by ALPN (`tls.http2`): the held authorization request waits on its page, the
    IdP sees nothing, and after the approval the browser moves on to the IdP's sign-in page, relayed from
    django-oauth-toolkit over HTTP/1.1."""
    from selenium.webdriver.support.ui import WebDriverWait
    from test_waiting_page_browser import authorization_url, chromium

    certs = tmp_path / "certs"
    make_certs(certs)
    gate = Gate(idp, callback_server, tmp_path,
                extra=f"tls:\n  certificate: {certs}/server.crt\n  key: {certs}/server.key\n  http2: true")
    gate.config.write_text(gate.config.read_text().replace("public_url: http://", "public_url: https://"))
    gate.url = gate.url.replace("http://", "https://")
    gate.start()
    idp.reset()
    driver = chromium(javascript=True, extra_arguments=["--ignore-certificate-errors"])
    try:
        driver.get(authorization_url(gate, callback_server, "openid orders:read"))
        assert "/_scopegate/holds/" in driver.current_url
        protocol = driver.execute_script("return performance.getEntriesByType('navigation')[0].nextHopProtocol")
        assert protocol == "h2", protocol
        assert idp.received("/o/authorize/") == []
        gate.cli("requests", "approve", gate.only_pending_id())
        WebDriverWait(driver, 10).until(lambda d: "/accounts/login/" in d.current_url)
        assert driver.current_url.startswith(gate.url), "the IdP's page came through ScopeGate"
        assert len(idp.received("/o/authorize/")) == 1, "released once, as HTTP/1.1 to the IdP"
    finally:
        driver.quit()
        gate.stop()
