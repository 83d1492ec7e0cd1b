"""Channels: many per connection, open/close both ways, channel.flow."""

import pika.exceptions as pex
import pytest

import amqp_raw as R
from helpers import channel_error, connection_error, uid


def test_many_channels_per_connection(conn):
    chans = [conn.channel() for _ in range(200)]
    numbers = {c.channel_number for c in chans}
    assert len(numbers) == 200
    queues = []
    for c in chans[::10]:
        queues.append(c.queue_declare("", exclusive=True).method.queue)
    assert len(set(queues)) == len(queues)
    for c in chans[::2]:
        c.close()
    for c in chans[1::2]:
        assert c.is_open
        c.basic_qos(prefetch_count=1)
        c.close()
    assert conn.is_open


def test_channel_numbers_up_to_channel_max(raw_open):
    r = raw_open()
    for n in (1, 2, 1000, 2047):
        r.open_channel(n)
    r.queue_declare(2047, "", exclusive=True)
    r.close_connection()


def test_channel_numbers_above_channel_max(raw_open):
    # RabbitMQ 3.10: channel_max bounds how many channels are open, not their
    # numbers (aiormq picks free numbers anywhere in 1..65535).
    r = raw_open(channel_max=10)
    for n in (11, 2048, 65535):
        r.open_channel(n)
        r.queue_declare(n, "", exclusive=True)
    r.close_connection()


def test_one_channel_more_than_channel_max_530(raw_open):
    r = raw_open(channel_max=3)
    for n in (7, 500, 65535):
        r.open_channel(n)
    r.send_method(1, R.CHANNEL_OPEN, R.shortstr(""))
    close = r.expect_close()
    assert close.is_connection
    assert (close.code, close.text) == (
        530, "NOT_ALLOWED - number of channels opened (3) has reached the negotiated "
             "channel_max (3)")
    assert (close.class_id, close.method_id) == (0, 0)
    r.send_method(0, R.CONNECTION_CLOSE_OK)
    r.wait_closed(timeout=5)


def test_closed_channels_make_room_under_channel_max(raw_open):
    r = raw_open(channel_max=2)
    r.open_channel(1)
    r.open_channel(2)
    r.send_method(2, R.CHANNEL_CLOSE, R.short(200) + R.shortstr("bye") + R.short(0) + R.short(0))
    r.expect(R.CHANNEL_CLOSE_OK, channel=2)
    r.open_channel(3000)
    r.close_connection()


def test_client_channel_close_and_reopen(raw_open):
    r = raw_open()
    r.open_channel(5)
    r.send_method(5, R.CHANNEL_CLOSE, R.short(200) + R.shortstr("bye") + R.short(0) + R.short(0))
    f = r.expect(R.CHANNEL_CLOSE_OK, channel=5)
    assert f.payload == R.method_payload(R.CHANNEL_CLOSE_OK)
    r.open_channel(5)
    r.queue_declare(5, "", exclusive=True)
    r.close_connection()


def test_server_channel_close_then_close_ok_and_reopen(raw_open, broker):
    r = raw_open()
    r.open_channel(1)
    r.open_channel(2)
    missing = uid("missing")
    r.send_method(1, R.QUEUE_DECLARE, R.short(0) + R.shortstr(missing) +
                  R.bits(True, False, False, False, False) + R.table({}))
    # Frames sent on a closing channel before close-ok are ignored.
    r.send_method(1, R.QUEUE_DECLARE, R.short(0) + R.shortstr("") +
                  R.bits(False, False, True, False, False) + R.table({}))
    close = r.expect_close()
    assert not close.is_connection and close.channel == 1
    assert close.code == 404
    assert close.text == "NOT_FOUND - no queue '%s' in vhost '%s'" % (missing, broker.vhost)
    assert (close.class_id, close.method_id) == R.QUEUE_DECLARE
    with pytest.raises(OSError):  # nothing more arrives (socket.timeout is an OSError)
        r.read_frame(timeout=0.5)
    # other channels are unaffected
    r.queue_declare(2, "", exclusive=True)
    r.send_method(1, R.CHANNEL_CLOSE_OK)
    r.open_channel(1)
    r.queue_declare(1, "", exclusive=True)
    r.close_connection()


def test_pika_channel_close_both_ways(conn, broker):
    c1 = conn.channel()
    c1.close()
    assert c1.is_closed
    c2 = conn.channel()
    with channel_error(conn, c2, 404, "NOT_FOUND - no queue '%s' in vhost '%s'"
                       % ("nope-q-x", broker.vhost)):
        c2.queue_declare("nope-q-x", passive=True)
    c3 = conn.channel()
    c3.queue_declare("", exclusive=True)


def test_channel_flow_active_true_pika(conn):
    c = conn.channel()
    assert c.flow(True) is True
    c.queue_declare("", exclusive=True)


def test_channel_flow_active_true_raw(raw_open):
    r = raw_open()
    r.open_channel(1)
    r.send_method(1, R.CHANNEL_FLOW, R.bits(True))
    f = r.expect(R.CHANNEL_FLOW_OK, channel=1)
    assert f.args.octet() & 1 == 1
    r.close_connection()


def test_channel_flow_active_false_closes_connection_pika(conn):
    c = conn.channel()
    with connection_error(conn, 540, "NOT_IMPLEMENTED - active=false"):
        c.flow(False)


def test_channel_flow_active_false_closes_connection_raw(raw_open):
    r = raw_open()
    r.open_channel(1)
    r.send_method(1, R.CHANNEL_FLOW, R.bits(False))
    close = r.expect_close()
    assert close.is_connection
    assert (close.code, close.text) == (540, "NOT_IMPLEMENTED - active=false")
    assert (close.class_id, close.method_id) == R.CHANNEL_FLOW
