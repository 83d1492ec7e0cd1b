"""Start Warren processes with extra options (definitions files, the HTTP API).

Used by the definitions, permissions, HTTP API and CLI tests, which need a broker of their own
(loaded with a definitions file) rather than the session's default one.
"""

import base64
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pika

REPO = Path(__file__).resolve().parents[2]
DEFS_DIR = Path(__file__).resolve().parent / "definitions"
ACME = DEFS_DIR / "acme-rabbitmq-export.json"
# The acme file's users and their passwords (the file holds only RabbitMQ's hashes).
ACME_PASSWORDS = {"acme-admin": "admin-secret", "acme-app": "app-secret",
                  "acme-auditor": "audit-secret"}
START_TIMEOUT = 30.0


def binary():
    return Path(os.environ.get("WARREN_BIN", REPO / "target" / "debug" / "warren"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Warren:
    """A Warren process on free AMQP and HTTP ports, stopped by stop()."""

    def __init__(self, workdir, *extra, attempts=5):
        # free_port() can race with other tests running in parallel: when the
        # broker exits because a port was taken meanwhile, try other ports.
        for attempt in range(attempts):
            try:
                self._start(workdir, *extra)
                return
            except RuntimeError as e:
                if "Address already in use" not in str(e) or attempt == attempts - 1:
                    raise

    def _start(self, workdir, *extra):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.amqp_port = free_port()
        self.http_port = free_port()
        self.log_path = self.workdir / ("warren-%d.log" % self.amqp_port)
        self.args = [str(binary()), "--amqp-listen", "127.0.0.1:%d" % self.amqp_port,
                     "--data-dir", str(self.workdir / ("data-%d" % self.amqp_port)),
                     "--http-listen", "127.0.0.1:%d" % self.http_port] + [str(a) for a in extra]
        self._spawn("wb")

    def restart(self):
        """Stops the broker (SIGTERM: clients get 320) and starts it again with the same
        arguments: same ports, same data directory. Its log goes on in the same file."""
        self.stop()
        self._spawn("ab")

    def _spawn(self, log_mode):
        with open(self.log_path, log_mode) as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=dict(os.environ, NO_COLOR="1"))
        deadline = time.monotonic() + START_TIMEOUT
        while not (port_open(self.amqp_port) and port_open(self.http_port)):
            if self.proc.poll() is not None:
                raise RuntimeError("warren exited with %s; log:\n%s" % (self.proc.returncode, self.log()))
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("warren did not start; log:\n%s" % self.log())
            time.sleep(0.05)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.http_port

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def params(self, user, password, vhost):
        return pika.ConnectionParameters(
            host="127.0.0.1", port=self.amqp_port, virtual_host=vhost,
            credentials=pika.PlainCredentials(user, password), connection_attempts=1,
            socket_timeout=10)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def run_warren_expecting_failure(workdir, *extra, timeout=20):
    """Runs warren with options that must make it exit non-zero before listening."""
    port = free_port()
    args = [str(binary()), "--amqp-listen", "127.0.0.1:%d" % port, "--data-dir",
            str(Path(workdir) / "data"), "--http-listen", "127.0.0.1:0"] + [str(a) for a in extra]
    res = subprocess.run(args, capture_output=True, timeout=timeout, env=dict(os.environ, NO_COLOR="1"),
                         stdin=subprocess.DEVNULL)
    return res.returncode, (res.stdout + res.stderr).decode(errors="replace")


def http(method, url, user, password, body=None, content_type="application/json"):
    """(status, headers, parsed JSON or text) of an HTTP call with basic auth."""
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    req.add_header("Authorization", "Basic " + token)
    if data is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, headers, raw = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        status, headers, raw = e.code, dict(e.headers), e.read()
    text = raw.decode(errors="replace")
    try:
        return status, headers, json.loads(text) if text else None
    except ValueError:
        return status, headers, text


def cli(*args, url=None, user="guest", password="guest", timeout=30):
    """Runs `warren <args>`; returns (exit code, stdout, stderr)."""
    env = dict(os.environ, NO_COLOR="1")
    if url:
        env["WARREN_URL"] = url
    env["WARREN_USER"] = user
    env["WARREN_PASSWORD"] = password
    res = subprocess.run([str(binary())] + [str(a) for a in args], capture_output=True,
                         timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    return res.returncode, res.stdout.decode(errors="replace"), res.stderr.decode(errors="replace")


def import_into_reference(path):
    """Imports a definitions file into the reference RabbitMQ with WARREN_REFERENCE_CTL
    (e.g. "/work/shared/tools/reference-rabbitmq ctl 5673"); False when that is not set."""
    ctl = os.environ.get("WARREN_REFERENCE_CTL")
    if not ctl:
        return False
    # The broker runs as another user: give it a readable copy.
    tmpdir = tempfile.mkdtemp(prefix="warren-defs-")
    os.chmod(tmpdir, 0o755)
    copy = Path(tmpdir) / Path(path).name
    shutil.copy(path, copy)
    os.chmod(copy, 0o644)
    subprocess.run(shlex.split(ctl) + ["import_definitions", str(copy)], check=True,
                   capture_output=True, timeout=60)
    # The import is asynchronous.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run(shlex.split(ctl) + ["list_vhosts"], capture_output=True, timeout=60)
        if b"acme-billing" in out.stdout and b"acme-shop" in out.stdout:
            break
        time.sleep(0.2)
    time.sleep(1.0)
    shutil.rmtree(tmpdir, ignore_errors=True)
    return True


class Reference:
    """The reference RabbitMQ (WARREN_TEST_URL), shaped like Warren for the tests."""

    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.host = u.hostname or "127.0.0.1"
        self.amqp_port = u.port or 5672
        self.http_port = None
        self.url = None

    def params(self, user, password, vhost):
        return pika.ConnectionParameters(
            host=self.host, port=self.amqp_port, virtual_host=vhost,
            credentials=pika.PlainCredentials(user, password), connection_attempts=1,
            socket_timeout=10)

    def stop(self):
        pass
