"""Shared helpers for the interop tests."""

import contextlib
import time
import uuid

import pika
import pika.exceptions as pex
import pytest


class BrokerInfo:
    def __init__(self, url, host, port, vhost, user, password, is_reference):
        self.url = url
        self.host = host
        self.port = port
        self.vhost = vhost
        self.user = user
        self.password = password
        self.is_reference = is_reference

    def params(self, **kw):
        p = pika.ConnectionParameters(
            host=self.host, port=self.port, virtual_host=self.vhost,
            credentials=pika.PlainCredentials(self.user, self.password),
            connection_attempts=1, socket_timeout=10, blocked_connection_timeout=30)
        for k, v in kw.items():
            setattr(p, k, v)
        return p


def uid(prefix="t"):
    """A name unique to this test run, so tests can run in parallel."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


def wait_for(predicate, timeout=5.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(interval)


def sleep_until(t):
    """Sleep until time.monotonic() reaches `t`: for "at least this long has passed" (a TTL or
    a window is over), never for "the broker has done it by now" (wait_for that instead)."""
    remaining = t - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)


def sync(ch):
    """A round trip on `ch`: the broker has handled everything sent on it before. Returns the
    time.monotonic() just after, a time by which the broker had those frames."""
    ch.basic_qos(prefetch_count=0)
    return time.monotonic()


def vhost_text(broker):
    return broker.vhost


def _channel_reason(ch, err):
    if isinstance(err, pex.ChannelClosedByBroker):
        return err
    return getattr(ch, "_closing_reason", None) or err


def _connection_reason(conn, err):
    if isinstance(err, pex.ConnectionClosedByBroker):
        return err
    res = getattr(conn, "_closed_result", None)
    if res is not None and res.ready:
        return res.value.error
    return err


@contextlib.contextmanager
def channel_error(conn, ch, code, text):
    """The body must make the broker close `ch` (only) with `code` and exact `text`."""
    with pytest.raises((pex.ChannelClosedByBroker, pex.ChannelWrongStateError,
                        pex.ConnectionClosedByBroker)) as ei:
        yield ei
        # pika is lazy about asynchronous methods: a synchronous round trip surfaces the close.
        ch.basic_qos(prefetch_count=0)
    if isinstance(ei.value, pex.ConnectionClosedByBroker):
        raise AssertionError("expected a channel error %d %r, but the connection was closed: %r"
                             % (code, text, ei.value))
    reason = _channel_reason(ch, ei.value)
    assert isinstance(reason, pex.ChannelClosedByBroker), reason
    assert (reason.reply_code, reason.reply_text) == (code, text)
    assert ch.is_closed
    assert conn.is_open, "the connection must stay open after a channel error"
    # ... and stays usable.
    probe = conn.channel()
    probe.close()


@contextlib.contextmanager
def connection_error(conn, code, text):
    """The body must make the broker close the whole connection with `code` and `text`."""
    with pytest.raises(pex.AMQPError) as ei:
        yield ei
        for _ in range(100):
            if conn.is_closed:
                break
            conn.process_data_events(time_limit=0.05)
        conn.channel()  # raises once the connection is closed
    reason = _connection_reason(conn, ei.value)
    assert isinstance(reason, pex.ConnectionClosedByBroker), (
        "expected the connection to be closed by the broker, got %r" % (reason,))
    assert (reason.reply_code, reason.reply_text) == (code, text)
    assert conn.is_closed


def queue_count(conn, name):
    """Ready-message count of a queue, from a passive declare on a fresh channel."""
    c = conn.channel()
    try:
        return c.queue_declare(name, passive=True).method.message_count
    finally:
        if c.is_open:
            c.close()


def queue_exists(conn, name):
    c = conn.channel()
    try:
        c.queue_declare(name, passive=True)
    except pex.ChannelClosedByBroker as e:
        assert e.reply_code == 404, e
        return False
    c.close()
    return True


def exchange_exists(conn, name):
    c = conn.channel()
    try:
        c.exchange_declare(name, passive=True)
    except pex.ChannelClosedByBroker as e:
        assert e.reply_code == 404, e
        return False
    c.close()
    return True


def drain(conn, ch, queue, n=None, timeout=5.0, auto_ack=True):
    """Collect messages from `queue` with basic.get until n arrive (or it is empty)."""
    out = []
    deadline = time.monotonic() + timeout
    while n is None or len(out) < n:
        m, p, b = ch.basic_get(queue, auto_ack=auto_ack)
        if m is None:
            if n is None:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
            continue
        out.append((m, p, b))
    return out


class Collector:
    """Consumer callback that records deliveries."""

    def __init__(self):
        self.msgs = []

    def __call__(self, ch, method, props, body):
        self.msgs.append((method, props, body))

    @property
    def bodies(self):
        return [b for _, _, b in self.msgs]


def pump(conn, until, timeout=5.0, what="deliveries"):
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        conn.process_data_events(time_limit=0.02)


def settle(conn, seconds=0.3):
    """Process events for a while (to see that nothing more arrives)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)


def wait_count(conn, name, n, timeout=5.0):
    """Wait until queue `name` has `n` ready messages (RabbitMQ enqueues asynchronously)."""
    last = [None]

    def check():
        last[0] = queue_count(conn, name)
        return last[0] == n

    try:
        wait_for(check, timeout=timeout)
    except AssertionError:
        raise AssertionError("queue %s has %r ready messages, expected %d" % (name, last[0], n))


SENTINEL = b"__sentinel__"


def received(conn, ch, queue, timeout=5.0):
    """Bodies in `queue` published before now by `ch`: publishes a sentinel straight to the
    queue (same channel, so it is ordered after earlier publishes) and gets up to it."""
    ch.basic_publish("", queue, SENTINEL)
    out = []
    deadline = time.monotonic() + timeout
    while True:
        m, p, b = ch.basic_get(queue, auto_ack=True)
        if m is None:
            if time.monotonic() > deadline:
                raise AssertionError("sentinel never arrived in %s (got %r)" % (queue, out))
            time.sleep(0.01)
            continue
        if b == SENTINEL:
            return out
        out.append(b)
