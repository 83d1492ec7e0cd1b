"""Fixtures for the Python interop suite.

With WARREN_TEST_URL set (e.g. amqp://guest:guest@127.0.0.1:5673/%2f) the tests run against
that broker; this is how the suite is checked against RabbitMQ. Otherwise a Warren broker is
started from WARREN_BIN (default <repo>/target/debug/warren) on a free port with a fresh data
directory, once per test session (once per xdist worker).
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pika
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import amqp_raw  # noqa: E402
from helpers import BrokerInfo  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _tail(path, n=40):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


@pytest.fixture(scope="session")
def broker_url(tmp_path_factory):
    url = os.environ.get("WARREN_TEST_URL")
    if url:
        yield url
        return
    binary = Path(os.environ.get("WARREN_BIN", REPO / "target" / "debug" / "warren"))
    if not binary.exists():
        pytest.fail("Warren binary %s does not exist (build it with `cargo build`, or set "
                    "WARREN_BIN / WARREN_TEST_URL)" % binary)
    # _free_port() can race with other workers: a broker that finds its port
    # taken exits at once, and we try another.
    for attempt in range(5):
        data_dir = tmp_path_factory.mktemp("warren-data")
        log_path = data_dir.parent / (data_dir.name + ".log")
        port = _free_port()
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [str(binary), "--amqp-listen", "127.0.0.1:%d" % port, "--data-dir", str(data_dir),
                 # Many brokers run at once: any free port for the HTTP API.
                 "--http-listen", "127.0.0.1:0"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while not _port_open("127.0.0.1", port):
            rc = proc.poll()
            if rc is not None:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("warren did not listen on port %d within %.0f s; log:\n%s"
                            % (port, START_TIMEOUT, _tail(log_path)))
            time.sleep(0.05)
        if proc.poll() is None:
            break
        if "Address already in use" not in _tail(log_path) or attempt == 4:
            pytest.fail("warren exited with code %s before listening on port %d; log:\n%s"
                        % (proc.returncode, port, _tail(log_path)))
    try:
        yield "amqp://guest:guest@127.0.0.1:%d/%%2f" % port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture(scope="session")
def broker(broker_url):
    """Connection facts: url, host, port, vhost, user, password, is_reference."""
    u = urllib.parse.urlparse(broker_url)
    host = u.hostname or "127.0.0.1"
    port = u.port or 5672
    vhost = urllib.parse.unquote(u.path[1:]) if len(u.path) > 1 else "/"
    user = urllib.parse.unquote(u.username or "guest")
    password = urllib.parse.unquote(u.password or "guest")
    # The lenient "RabbitMQ only" branches are taken only when the suite was pointed at an
    # external broker that calls itself RabbitMQ; a Warren we start ourselves never gets them.
    is_reference = False
    if os.environ.get("WARREN_TEST_URL"):
        raw = amqp_raw.RawConnection(host, port)
        try:
            raw.handshake(user, password, vhost)
            is_reference = raw.start["server_properties"].get("product") == b"RabbitMQ"
            raw.close_connection()
        finally:
            raw.close_socket()
    return BrokerInfo(broker_url, host, port, vhost, user, password, is_reference)


@pytest.fixture(scope="session")
def broker_host(broker):
    return broker.host


@pytest.fixture(scope="session")
def broker_port(broker):
    return broker.port


@pytest.fixture
def connect(broker):
    """Factory: connect(**pika_params) -> BlockingConnection, closed at teardown."""
    conns = []

    def _connect(**kw):
        c = pika.BlockingConnection(broker.params(**kw))
        conns.append(c)
        return c

    yield _connect
    for c in conns:
        try:
            if c.is_open:
                c.close()
        except Exception:
            pass


@pytest.fixture
def conn(connect):
    return connect()


@pytest.fixture
def ch(conn):
    return conn.channel()


@pytest.fixture
def raw(broker):
    """Factory: raw() -> amqp_raw.RawConnection (not yet handshaken), closed at teardown."""
    socks = []

    def _raw(timeout=10.0):
        r = amqp_raw.RawConnection(broker.host, broker.port, timeout=timeout)
        socks.append(r)
        return r

    yield _raw
    for r in socks:
        r.close_socket()


@pytest.fixture
def raw_open(raw, broker):
    """Factory: raw_open(**handshake_kw) -> RawConnection after a full handshake."""

    def _raw_open(**kw):
        r = raw()
        kw.setdefault("user", broker.user)
        kw.setdefault("password", broker.password)
        kw.setdefault("vhost", broker.vhost)
        res = r.handshake(**kw)
        assert res is None, "handshake failed: %r" % res
        return r

    return _raw_open


@pytest.fixture(scope="session")
def acme(tmp_path_factory):
    """A broker loaded with the acme definitions (a RabbitMQ 3.10 export: two vhosts, three
    users, policies, exchange-to-exchange and headers bindings, an alternate exchange).

    Warren is started with `--definitions` on it. Against the reference RabbitMQ
    (WARREN_TEST_URL) the file is imported with WARREN_REFERENCE_CTL instead (run those checks
    with -n 0: the vhosts are shared)."""
    import warren_proc

    url = os.environ.get("WARREN_TEST_URL")
    if url:
        if not warren_proc.import_into_reference(warren_proc.ACME):
            pytest.skip("set WARREN_REFERENCE_CTL to import the acme definitions into the "
                        "reference broker")
        yield warren_proc.Reference(url)
        return
    w = warren_proc.Warren(tmp_path_factory.mktemp("acme"), "--definitions", warren_proc.ACME)
    try:
        yield w
    finally:
        w.stop()
