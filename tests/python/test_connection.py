"""Connection negotiation: protocol header, start/tune/open, auth, vhosts, heartbeats, close."""

import socket
import time

import pika
import pika.exceptions as pex
import pytest

import amqp_raw as R
from amqp_raw import Closed


@pytest.mark.parametrize("header", [
    b"AMQP\x00\x00\x09\x00",      # wrong revision
    b"AMQP\x00\x00\x08\x00",      # 0-8 style
    # (RabbitMQ 3.10 *accepts* the legacy headers AMQP 1 1 0 9 and AMQP 1 1 8 0 and answers
    # with connection.start, so they are not tested here.)
    b"AMQP\x00\x01\x00\x00",      # AMQP 1.0
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_wrong_protocol_header_gets_091_header_then_close(raw, header):
    r = raw()
    r.send(header)
    got = b""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            chunk = r.sock.recv(64)
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
    assert got == b"AMQP\x00\x00\x09\x01"


def test_connection_start_contents(raw, broker):
    r = raw()
    r.send(R.PROTOCOL_HEADER)
    f = r.expect(R.CONNECTION_START, channel=0)
    assert f.args.octet() == 0  # version-major
    assert f.args.octet() == 9  # version-minor
    props = f.args.table()
    mechanisms = f.args.longstr().decode().split()
    locales = f.args.longstr().decode().split()
    for key in ("product", "version", "platform"):
        assert isinstance(props.get(key), bytes) and props[key], key
    caps = props["capabilities"]
    for cap in ("publisher_confirms", "exchange_exchange_bindings", "basic.nack",
                "consumer_cancel_notify", "connection.blocked", "consumer_priorities",
                "authentication_failure_close", "per_consumer_qos", "direct_reply_to"):
        assert caps.get(cap) is True, cap
    assert "PLAIN" in mechanisms
    assert "AMQPLAIN" in mechanisms
    assert "en_US" in locales


def test_tune_values(raw, broker):
    r = raw()
    assert r.handshake(broker.user, broker.password, broker.vhost, open_vhost=False) is None
    assert r.tune == {"channel_max": 2047, "frame_max": 131072, "heartbeat": 60}


def test_pika_sees_server_properties(conn):
    props = conn._impl.server_properties
    assert props["capabilities"]["publisher_confirms"] is True
    assert props["capabilities"]["consumer_cancel_notify"] is True


def test_pika_negotiates_tune_values(connect):
    c = connect(channel_max=100, frame_max=8192)
    params = c._impl.params
    assert params.channel_max == 100
    assert params.frame_max == 8192
    ch = c.channel()
    ch.queue_declare("", exclusive=True)


@pytest.mark.parametrize("mechanism", ["PLAIN", "AMQPLAIN"])
def test_login_mechanisms(raw, broker, mechanism):
    r = raw()
    assert r.handshake(broker.user, broker.password, broker.vhost, mechanism=mechanism) is None
    r.open_channel(1)
    r.queue_declare(1, "", exclusive=True)
    r.close_connection()


@pytest.mark.parametrize("mechanism", ["PLAIN", "AMQPLAIN"])
def test_bad_login_raw_gets_403(raw, broker, mechanism):
    r = raw()
    res = r.handshake(broker.user, "wrong-password", broker.vhost, mechanism=mechanism)
    assert isinstance(res, R.Close), res
    assert res.is_connection
    assert res.code == 403
    assert res.text == ("ACCESS_REFUSED - Login was refused using authentication mechanism %s. "
                        "For details see the broker logfile." % mechanism)
    # the server closes the socket after the close (RabbitMQ does not wait for close-ok here)
    r.send_method(0, R.CONNECTION_CLOSE_OK)
    r.wait_closed(timeout=5)


def test_bad_login_without_failure_close_capability_just_closes(raw, broker):
    # RabbitMQ 3.10 sends nothing at all after a refused start-ok from a client without the
    # authentication_failure_close capability: the socket closes (a reset, 3 s later, as a
    # brake on password guessing; Warren closes at once, which this test allows).
    r = raw(timeout=15)
    props = {"product": "old-client", "capabilities": {}}
    with pytest.raises(Closed):
        res = r.handshake(broker.user, "wrong-password", broker.vhost, client_properties=props)
        pytest.fail("expected the socket to close without a frame, got %r" % (res,))
    assert r.buf == b"", "bytes after connection.start: %r" % r.buf


def test_bad_login_pika(broker):
    params = broker.params(credentials=pika.PlainCredentials(broker.user, "wrong-password"))
    with pytest.raises((pex.ProbableAuthenticationError, pex.AuthenticationError)) as ei:
        pika.BlockingConnection(params)
    assert "ACCESS_REFUSED" in str(ei.value)
    assert "403" in str(ei.value)


def test_unknown_vhost_raw(raw, broker):
    r = raw()
    res = r.handshake(broker.user, broker.password, "nope")
    assert isinstance(res, R.Close), res
    assert res.is_connection
    assert (res.code, res.text) == (530, "NOT_ALLOWED - vhost nope not found")
    assert (res.class_id, res.method_id) == R.CONNECTION_OPEN
    r.send_method(0, R.CONNECTION_CLOSE_OK)
    r.wait_closed(timeout=5)


def test_unknown_vhost_pika(broker):
    with pytest.raises(pex.ProbableAccessDeniedError) as ei:
        pika.BlockingConnection(broker.params(virtual_host="nope"))
    assert "(530) 'NOT_ALLOWED - vhost nope not found'" in str(ei.value)


def test_heartbeat_keeps_pika_connection_alive(connect):
    c = connect(heartbeat=2)
    assert c._impl.params.heartbeat == 2
    ch = c.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        c.process_data_events(time_limit=0.5)
    assert c.is_open
    ch.basic_publish("", q, b"still here")
    m, _, body = ch.basic_get(q, auto_ack=True)
    assert body == b"still here"


def test_server_sends_heartbeats(raw_open):
    r = raw_open(heartbeat=2)
    # The server sends a heartbeat every heartbeat/2 seconds; within 3 s we must see some.
    seen = 0
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        try:
            f = r.read_frame(timeout=deadline - time.monotonic())
        except socket.timeout:
            break
        assert f.type == R.FRAME_HEARTBEAT and f.channel == 0, f
        seen += 1
        r.send_frame(R.FRAME_HEARTBEAT, 0, b"")
    assert seen >= 1
    r.close_connection()


def test_no_heartbeats_when_disabled(raw_open):
    r = raw_open(heartbeat=0)
    with pytest.raises(socket.timeout):
        r.read_frame(timeout=1.5)
    r.close_connection()


def test_silent_client_is_dropped_after_missed_heartbeats(raw_open):
    r = raw_open(heartbeat=1)
    # We never send anything: the server must drop us (RabbitMQ: about 2-3 x heartbeat,
    # with no close frame). A close frame first is acceptable.
    deadline = time.monotonic() + 8
    with pytest.raises(Closed):
        while True:
            f = r.read_frame(timeout=max(0.01, deadline - time.monotonic()))
            assert f.type == R.FRAME_HEARTBEAT or f.method == R.CONNECTION_CLOSE, f


@pytest.mark.parametrize("channel_max,frame_max", [
    (2047, 0),
    (2047, 4095),
    (2047, 131073),
    (0, 131072),
    (2048, 131072),
])
def test_tune_ok_out_of_range_is_refused(raw, broker, channel_max, frame_max):
    r = raw(timeout=10)
    assert r.handshake(broker.user, broker.password, broker.vhost, channel_max=channel_max,
                       frame_max=frame_max, open_vhost=False) is None
    try:
        r.send_method(0, R.CONNECTION_OPEN, R.shortstr(broker.vhost) + R.shortstr("") +
                      R.bits(False))
    except OSError:
        pass
    try:
        f = r.read_method(timeout=8)
    except Closed:
        # RABBITMQ-ONLY LENIENCY: RabbitMQ silently drops the socket (after ~3 s) without a
        # close frame. Warren must send a clear connection.close (530 or 501) instead.
        assert broker.is_reference, "Warren must send connection.close (530/501), not just drop"
        return
    assert f.method == R.CONNECTION_CLOSE, f
    close = R.Close(f)
    assert close.code in (530, 501), close


@pytest.mark.parametrize("frame_max", [4096, 65536, 131072])
def test_tune_ok_in_range_is_accepted(raw, broker, frame_max):
    r = raw()
    assert r.handshake(broker.user, broker.password, broker.vhost, frame_max=frame_max,
                       channel_max=10) is None
    r.open_channel(1)
    q = r.queue_declare(1, "", exclusive=True)
    body = bytes(range(256)) * 100
    r.publish(1, "", q, body)
    r.send_method(1, R.BASIC_GET, R.short(0) + R.shortstr(q) + R.bits(True))
    r.expect(R.BASIC_GET_OK, 1)
    _, got = r.read_content()
    assert got == body
    r.close_connection()


def test_client_connection_close(raw_open):
    r = raw_open()
    r.open_channel(1)
    r.send_method(0, R.CONNECTION_CLOSE, R.short(200) + R.shortstr("Goodbye") + R.short(0) +
                  R.short(0))
    f = r.expect(R.CONNECTION_CLOSE_OK, channel=0)
    assert f.payload == R.method_payload(R.CONNECTION_CLOSE_OK)


def client_close(r):
    r.send_method(0, R.CONNECTION_CLOSE, R.short(200) + R.shortstr("bye") + R.short(0) +
                  R.short(0))
    r.expect(R.CONNECTION_CLOSE_OK, channel=0)


def server_close(r):
    """Provokes a connection error (channel.flow active=false: 540); returns the close."""
    r.open_channel(1)
    r.send_method(1, R.CHANNEL_FLOW, R.bits(False))
    close = r.expect_close()
    assert close.is_connection
    return close


def assert_dropped_after_a_while(r):
    started = time.monotonic()
    r.wait_closed(timeout=10)
    assert time.monotonic() - started >= 0.5


def assert_socket_stays_open(r, seconds):
    with pytest.raises(socket.timeout):
        f = r.read_frame(timeout=seconds)
        pytest.fail("expected silence on a closed connection, got %r" % f)


def test_after_close_ok_the_client_closes_the_socket(raw_open):
    # RabbitMQ answers close-ok and leaves the socket to the client (the side
    # that receives close-ok closes it); aiormq settles its futures before EOF.
    r = raw_open()
    client_close(r)
    assert_socket_stays_open(r, 1.5)


def test_frames_after_close_are_read_and_dropped(raw_open):
    # amqplib writes connection.close while buffered publishes still go out:
    # RabbitMQ reads and drops them, and the client's writes never fail.
    r = raw_open()
    r.open_channel(1)
    r.send_method(0, R.CONNECTION_CLOSE, R.short(200) + R.shortstr("bye") + R.short(0) +
                  R.short(0))
    publish = (R.frame(R.FRAME_METHOD, 1, R.method_payload(
        R.BASIC_PUBLISH, R.short(0) + R.shortstr("") + R.shortstr("nowhere") +
        R.bits(False, False))) +
        R.frame(R.FRAME_HEADER, 1, R.short(60) + R.short(0) + R.longlong(60000) + b"\x00\x00") +
        R.frame(R.FRAME_BODY, 1, b"x" * 60000))
    r.send(publish * 200)  # 12 MB: more than socket buffers hold unless read
    r.expect(R.CONNECTION_CLOSE_OK, channel=0)
    assert_socket_stays_open(r, 0.5)


def test_after_close_ok_a_lingering_client_is_dropped_after_a_heartbeat(raw_open):
    # ... but not forever: after min(heartbeat, 30 s).
    r = raw_open(heartbeat=1)
    client_close(r)
    assert_dropped_after_a_while(r)


def test_server_close_waits_for_close_ok(raw_open):
    # A server-initiated close waits for the client's close-ok (then closes at
    # once: see test_server_connection_close_then_close_ok) ...
    r = raw_open()
    assert server_close(r).code == 540
    assert_socket_stays_open(r, 1.5)
    r.send_method(0, R.CONNECTION_CLOSE_OK)
    r.wait_closed(timeout=5)


def test_server_close_without_close_ok_is_dropped_after_a_heartbeat(raw_open):
    # ... for min(heartbeat, 30 s) at most.
    r = raw_open(heartbeat=1)
    assert server_close(r).code == 540
    assert_dropped_after_a_while(r)


def test_server_connection_close_then_close_ok(raw_open):
    r = raw_open()
    assert server_close(r).code == 540
    r.send_method(0, R.CONNECTION_CLOSE_OK)
    r.wait_closed(timeout=5)


def test_pika_close(connect):
    c = connect()
    c.channel()
    c.close()
    assert c.is_closed


def test_many_connections(connect):
    conns = [connect() for _ in range(20)]
    for c in conns:
        c.channel().queue_declare("", exclusive=True)
    for c in conns:
        c.close()
