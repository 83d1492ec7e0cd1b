"""rabbitmq-c's command line tools (Debian package amqp-tools): amqp-publish, amqp-consume."""

import os
import shutil
import subprocess
import time

import pika
import pika.exceptions as pex
import pytest

from helpers import uid, wait_count

HAVE_TOOLS = shutil.which("amqp-publish") and shutil.which("amqp-consume")
if not HAVE_TOOLS and os.environ.get("WARREN_REQUIRE_AMQP_TOOLS"):
    raise RuntimeError("amqp-publish/amqp-consume are not on PATH (apt-get install amqp-tools)")
pytestmark = pytest.mark.skipif(not HAVE_TOOLS, reason="amqp-tools not installed")

TIMEOUT = 30


def run(args, **kw):
    p = subprocess.run(args, capture_output=True, timeout=TIMEOUT, **kw)
    assert p.returncode == 0, "%r failed (%d): %s" % (args, p.returncode, p.stderr.decode())
    return p.stdout


def server_args(broker):
    return ["--server", broker.host, "--port", str(broker.port), "--vhost", broker.vhost,
            "--username", broker.user, "--password", broker.password]


def test_publish_then_consume_with_url(broker, ch, conn):
    q = uid("tools")
    ch.queue_declare(q, auto_delete=False)
    bodies = [b"alpha", b"beta", b"gamma", b"delta"]
    for b in bodies:
        run(["amqp-publish", "--url", broker.url, "-r", q, "-b", b.decode()])
    wait_count(conn, q, 4)
    out = run(["amqp-consume", "--url", broker.url, "-q", q, "-c", "4", "cat"])
    assert out == b"".join(bodies)
    wait_count(conn, q, 0)
    ch.queue_delete(q)


def test_publish_line_buffered_and_consume_with_server_port(broker, ch, conn):
    q = uid("tools")
    ch.queue_declare(q)
    run(["amqp-publish", *server_args(broker), "-r", q, "-l", "-p", "-C", "text/plain"],
        input=b"one\ntwo\nthree\n")
    wait_count(conn, q, 3)
    m, p, b = ch.basic_get(q, auto_ack=False)
    assert b == b"one\n"  # -l keeps the newline
    assert p.content_type == "text/plain"
    assert p.delivery_mode == 2
    ch.basic_nack(m.delivery_tag, requeue=True)
    out = run(["amqp-consume", *server_args(broker), "-q", q, "-c", "3", "-p", "1", "cat"])
    assert out == b"one\ntwo\nthree\n"
    ch.queue_delete(q)


def test_consume_declares_bound_queue_and_headers(broker, conn):
    x = uid("tools-x")
    ch = conn.channel()
    ch.exchange_declare(x, "direct", auto_delete=True)
    # amqp-consume declares a server-named queue and binds it to x with key 'k'
    consumer = subprocess.Popen(
        ["amqp-consume", "--url", broker.url, "-e", x, "-r", "k", "-c", "3", "cat"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # wait until the binding exists: mandatory+confirm probes bounce until then
        ch.confirm_delivery()
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                ch.basic_publish(x, "k", b"m0", mandatory=True)
                break
            except pex.UnroutableError:
                assert time.monotonic() < deadline, "amqp-consume never bound its queue"
                time.sleep(0.05)
        run(["amqp-publish", "--url", broker.url, "-e", x, "-r", "k", "-b", "m1",
             "-H", "x-test: yes"])
        run(["amqp-publish", "--url", broker.url, "-e", x, "-r", "k", "-b", "m2"])
        out, err = consumer.communicate(timeout=TIMEOUT)
        assert consumer.returncode == 0, err.decode()
        assert out == b"m0m1m2"
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()


def test_publish_headers_visible_to_pika(broker, ch, conn):
    q = uid("tools")
    ch.queue_declare(q, exclusive=True)
    run(["amqp-publish", "--url", broker.url, "-r", q, "-b", "hdr", "-H", "color: blue",
         "-t", "reply-here", "-E", "identity"])
    wait_count(conn, q, 1)
    m, p, b = ch.basic_get(q, auto_ack=True)
    assert b == b"hdr"
    assert p.headers == {"color": "blue"}
    assert p.reply_to == "reply-here"
    assert p.content_encoding == "identity"


def test_publish_to_missing_exchange_fails(broker):
    p = subprocess.run(["amqp-publish", "--url", broker.url, "-e", uid("missing"), "-r", "k",
                        "-b", "x"], capture_output=True, timeout=TIMEOUT)
    # amqp-publish sees the channel.close when it closes its channel, and exits 1
    assert p.returncode == 1
    assert b"server channel error 404" in p.stderr
    assert b"NOT_FOUND - no exchange" in p.stderr
