"""basic.*: publish, consume, cancel, qos, ack/nack/reject, get, recover, requeue on close."""

import socket
import struct
import time

import pika
import pika.exceptions as pex
import pytest

import amqp_raw as R
from helpers import (Collector, channel_error, connection_error, drain, pump, received, settle,
                     uid, wait_count)


def publish_n(ch, q, n, prefix=b"m"):
    for i in range(n):
        ch.basic_publish("", q, prefix + b"%d" % i)


# ----------------------------------------------------------------- publish

def test_mandatory_unroutable_is_returned(conn, ch):
    x = uid("x")
    ch.exchange_declare(x, "direct")
    returns = []
    ch.add_on_return_callback(lambda c, m, p, b: returns.append((m, p, b)))
    ch.basic_publish(x, "nowhere", b"bounce", pika.BasicProperties(message_id="r1"),
                     mandatory=True)
    pump(conn, lambda: returns, what="basic.return")
    m, p, b = returns[0]
    assert m.reply_code == 312
    assert m.reply_text == "NO_ROUTE"
    assert m.exchange == x
    assert m.routing_key == "nowhere"
    assert b == b"bounce"
    assert p.message_id == "r1"
    assert ch.is_open
    ch.exchange_delete(x)


def test_mandatory_to_default_exchange_missing_queue_returned(conn, ch):
    returns = []
    ch.add_on_return_callback(lambda c, m, p, b: returns.append((m, p, b)))
    ch.basic_publish("", uid("nope"), b"bounce", mandatory=True)
    pump(conn, lambda: returns, what="basic.return")
    assert (returns[0][0].reply_code, returns[0][0].reply_text) == (312, "NO_ROUTE")


def test_mandatory_routable_not_returned(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    returns = []
    ch.add_on_return_callback(lambda c, m, p, b: returns.append(m))
    ch.basic_publish("", q, b"ok", mandatory=True)
    assert received(conn, ch, q) == [b"ok"]
    settle(conn, 0.1)
    assert returns == []


def test_non_mandatory_unroutable_dropped_silently(conn, ch):
    x = uid("x")
    ch.exchange_declare(x, "direct")
    returns = []
    ch.add_on_return_callback(lambda c, m, p, b: returns.append(m))
    ch.basic_publish(x, "nowhere", b"lost")
    settle(conn, 0.2)
    assert returns == []
    assert ch.is_open
    ch.exchange_delete(x)


def test_publish_to_unknown_exchange_404(conn, ch, broker):
    x = uid("missing")
    with channel_error(conn, ch, 404, "NOT_FOUND - no exchange '%s' in vhost '%s'"
                       % (x, broker.vhost)):
        ch.basic_publish(x, "k", b"x")


def test_publish_to_internal_exchange_403(conn, ch, broker):
    x = uid("x")
    ch.exchange_declare(x, "fanout", internal=True)
    try:
        with channel_error(conn, ch, 403, "ACCESS_REFUSED - cannot publish to internal exchange "
                           "'%s' in vhost '%s'" % (x, broker.vhost)):
            ch.basic_publish(x, "k", b"x")
    finally:
        conn.channel().exchange_delete(x)


def test_internal_exchange_reachable_through_e2e_binding(conn, ch):
    src, internal = uid("src"), uid("int")
    ch.exchange_declare(src, "fanout")
    ch.exchange_declare(internal, "fanout", internal=True)
    ch.exchange_bind(internal, src)
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, internal)
    ch.basic_publish(src, "", b"through")
    assert received(conn, ch, q) == [b"through"]
    ch.exchange_delete(src)
    ch.exchange_delete(internal)


def test_user_id_mismatch_406(conn, ch, broker):
    q = ch.queue_declare("", exclusive=True).method.queue
    with channel_error(conn, ch, 406, "PRECONDITION_FAILED - user_id property set to 'bob' but "
                       "authenticated user was '%s'" % broker.user):
        ch.basic_publish("", q, b"x", pika.BasicProperties(user_id="bob"))


def test_user_id_matching_is_delivered(conn, ch, broker):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"x", pika.BasicProperties(user_id=broker.user))
    m, p, b = drain(conn, ch, q, n=1)[0]
    assert p.user_id == broker.user


def test_invalid_expiration_406(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    with channel_error(conn, ch, 406, "PRECONDITION_FAILED - invalid expiration 'abc': "
                       "no_integer"):
        ch.basic_publish("", q, b"x", pika.BasicProperties(expiration="abc"))


def test_properties_round_trip(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    headers = {"s": "str", "i": 42, "neg": -7, "big": 2 ** 40, "t": True, "f": False,
               "nested": {"a": "b", "n": 1}, "list": [1, "two", {"three": 3}],
               "bytes": b"\x00\x01binary", "none": None}
    props = pika.BasicProperties(
        content_type="application/json", content_encoding="gzip", headers=headers,
        delivery_mode=2, priority=5, correlation_id="corr-1", reply_to="reply-q",
        expiration="60000", message_id="mid-1", timestamp=1700000000, type="kind",
        app_id="warren-tests", cluster_id="c1")
    ch.basic_publish("", q, b"{}", props)
    m, p, b = drain(conn, ch, q, n=1)[0]
    assert b == b"{}"
    for attr in ("content_type", "content_encoding", "delivery_mode", "priority",
                 "correlation_id", "reply_to", "expiration", "message_id", "timestamp",
                 "type", "app_id", "cluster_id"):
        assert getattr(p, attr) == getattr(props, attr), attr
    assert p.headers == headers


def test_deliver_fields(conn, ch):
    x = uid("x")
    ch.exchange_declare(x, "direct")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "rk")
    col = Collector()
    tag = ch.basic_consume(q, col, consumer_tag="my-tag")
    assert tag == "my-tag"
    ch.basic_publish(x, "rk", b"hi")
    pump(conn, lambda: col.msgs)
    m, p, b = col.msgs[0]
    assert (m.consumer_tag, m.delivery_tag, m.redelivered, m.exchange, m.routing_key) == \
        ("my-tag", 1, False, x, "rk")
    ch.basic_ack(1)
    ch.exchange_delete(x)


# ----------------------------------------------------------------- consume / cancel

def test_generated_consumer_tag(raw_open):
    r = raw_open()
    r.open_channel(1)
    q = r.queue_declare(1, "", exclusive=True)
    r.send_method(1, R.BASIC_CONSUME, R.short(0) + R.shortstr(q) + R.shortstr("") +
                  R.bits(False, False, False, False) + R.table({}))
    f = r.expect(R.BASIC_CONSUME_OK, 1)
    tag = f.args.shortstr()
    assert tag.startswith("amq.ctag-") and len(tag) > len("amq.ctag-")
    r.close_connection()


def test_same_consumer_tag_on_two_channels_is_fine(conn):
    c1, c2 = conn.channel(), conn.channel()
    q = c1.queue_declare("", exclusive=True).method.queue
    c1.basic_consume(q, lambda *a: None, consumer_tag="shared")
    c2.basic_consume(q, lambda *a: None, consumer_tag="shared")
    assert c1.queue_declare(q, passive=True).method.consumer_count == 2


def test_exclusive_consumer_blocks_others(conn, ch, broker):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_consume(q, lambda *a: None, exclusive=True)
    c2 = conn.channel()
    with channel_error(conn, c2, 403, "ACCESS_REFUSED - queue '%s' in vhost '%s' in exclusive use"
                       % (q, broker.vhost)):
        c2.basic_consume(q, lambda *a: None)


def test_exclusive_consume_refused_when_consumers_exist(conn, ch, broker):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_consume(q, lambda *a: None)
    c2 = conn.channel()
    with channel_error(conn, c2, 403, "ACCESS_REFUSED - queue '%s' in vhost '%s' in exclusive use"
                       % (q, broker.vhost)):
        c2.basic_consume(q, lambda *a: None, exclusive=True)


def test_consume_missing_queue_404(conn, ch, broker):
    q = uid("missing")
    with channel_error(conn, ch, 404, "NOT_FOUND - no queue '%s' in vhost '%s'"
                       % (q, broker.vhost)):
        ch.basic_consume(q, lambda *a: None)


def test_no_ack_consumer(conn, ch):
    q = uid("q")
    ch.queue_declare(q)
    col = Collector()
    ch.basic_consume(q, col, auto_ack=True)
    publish_n(ch, q, 5)
    pump(conn, lambda: len(col.msgs) == 5)
    assert col.bodies == [b"m%d" % i for i in range(5)]
    ch.close()  # nothing to requeue
    c2 = conn.channel()
    assert c2.queue_declare(q, passive=True).method.message_count == 0
    c2.queue_delete(q)


def test_cancel_stops_deliveries(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    col = Collector()
    tag = ch.basic_consume(q, col, auto_ack=True)
    ch.basic_publish("", q, b"1")
    pump(conn, lambda: col.msgs)
    ch.basic_cancel(tag)
    ch.basic_publish("", q, b"2")
    settle(conn, 0.2)
    assert col.bodies == [b"1"]
    assert received(conn, ch, q) == [b"2"]


def test_cancel_unknown_tag_is_ok(raw_open):
    r = raw_open()
    r.open_channel(1)
    r.send_method(1, (60, 30), R.shortstr("no-such-tag") + R.bits(False))
    f = r.expect((60, 31), 1)
    assert f.args.shortstr() == "no-such-tag"
    r.close_connection()


def test_cancel_requeues_nothing_but_unacked_stay_ackable(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    col = Collector()
    tag = ch.basic_consume(q, col)
    publish_n(ch, q, 2)
    pump(conn, lambda: len(col.msgs) == 2)
    ch.basic_cancel(tag)
    # deliveries of a cancelled consumer can still be acked on the channel
    ch.basic_ack(col.msgs[0][0].delivery_tag)
    ch.basic_ack(col.msgs[1][0].delivery_tag)
    assert received(conn, ch, q) == []


def test_server_cancel_notification_when_queue_deleted(connect):
    c = connect()
    ch = c.channel()
    q = uid("q")
    ch.queue_declare(q)
    cancels = []
    ch.add_on_cancel_callback(lambda frame: cancels.append(frame))
    tag = ch.basic_consume(q, lambda *a: None)
    other = connect()
    other.channel().queue_delete(q)
    pump(c, lambda: cancels, what="basic.cancel from the server")
    assert cancels[0].method.consumer_tag == tag
    assert ch.is_open


def test_round_robin_across_consumers(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    order = []
    ch.basic_consume(q, lambda c, m, p, b: order.append("A"), auto_ack=True)
    ch.basic_consume(q, lambda c, m, p, b: order.append("B"), auto_ack=True)
    pub = conn.channel()
    publish_n(pub, q, 10)
    pump(conn, lambda: len(order) == 10)
    assert order.count("A") == 5 and order.count("B") == 5
    assert all(order[i] != order[i + 1] for i in range(9)), order


def test_round_robin_across_channels(conn):
    c1, c2, pub = conn.channel(), conn.channel(), conn.channel()
    q = pub.queue_declare("", exclusive=True).method.queue
    a, b = Collector(), Collector()
    c1.basic_consume(q, a, auto_ack=True)
    c2.basic_consume(q, b, auto_ack=True)
    publish_n(pub, q, 20)
    pump(conn, lambda: len(a.msgs) + len(b.msgs) == 20)
    assert len(a.msgs) == 10 and len(b.msgs) == 10


# ----------------------------------------------------------------- qos

def test_qos_prefetch_per_consumer(conn, ch):
    q1 = ch.queue_declare("", exclusive=True).method.queue
    q2 = ch.queue_declare("", exclusive=True).method.queue
    publish_n(ch, q1, 10)
    publish_n(ch, q2, 10)
    wait_count(conn, q1, 10)
    wait_count(conn, q2, 10)
    ch.basic_qos(prefetch_count=3, global_qos=False)
    a, b = Collector(), Collector()
    ch.basic_consume(q1, a)
    ch.basic_consume(q2, b)
    pump(conn, lambda: len(a.msgs) == 3 and len(b.msgs) == 3)
    settle(conn, 0.3)
    assert (len(a.msgs), len(b.msgs)) == (3, 3)
    ch.basic_ack(a.msgs[0][0].delivery_tag)
    pump(conn, lambda: len(a.msgs) == 4)
    settle(conn, 0.3)
    assert (len(a.msgs), len(b.msgs)) == (4, 3)


def test_qos_prefetch_global_per_channel(conn, ch):
    q1 = ch.queue_declare("", exclusive=True).method.queue
    q2 = ch.queue_declare("", exclusive=True).method.queue
    publish_n(ch, q1, 10)
    publish_n(ch, q2, 10)
    wait_count(conn, q1, 10)
    wait_count(conn, q2, 10)
    ch.basic_qos(prefetch_count=4, global_qos=True)
    a, b = Collector(), Collector()
    ch.basic_consume(q1, a)
    ch.basic_consume(q2, b)
    pump(conn, lambda: len(a.msgs) + len(b.msgs) == 4)
    settle(conn, 0.3)
    assert len(a.msgs) + len(b.msgs) == 4
    ch.basic_ack(0, multiple=True)
    pump(conn, lambda: len(a.msgs) + len(b.msgs) == 8)
    settle(conn, 0.3)
    assert len(a.msgs) + len(b.msgs) == 8


def test_qos_prefetch_one_with_acks_delivers_all_in_order(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    publish_n(ch, q, 20)
    ch.basic_qos(prefetch_count=1)
    got = []

    def cb(c, m, p, b):
        got.append(b)
        c.basic_ack(m.delivery_tag)

    ch.basic_consume(q, cb)
    pump(conn, lambda: len(got) == 20)
    assert got == [b"m%d" % i for i in range(20)]


def test_qos_does_not_limit_basic_get(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    publish_n(ch, q, 5)
    wait_count(conn, q, 5)
    ch.basic_qos(prefetch_count=1)
    got = drain(conn, ch, q, n=5, auto_ack=False)
    assert len(got) == 5


def test_qos_prefetch_size_540(conn, ch):
    with connection_error(conn, 540, "NOT_IMPLEMENTED - prefetch_size!=0 (10)"):
        ch.basic_qos(prefetch_size=10)


# ----------------------------------------------------------------- ack / nack / reject

@pytest.fixture
def five(conn, ch):
    """A queue with m0..m4, all fetched unacked on `ch` (delivery tags 1..5)."""
    q = ch.queue_declare("", exclusive=True).method.queue
    publish_n(ch, q, 5)
    got = drain(conn, ch, q, n=5, auto_ack=False)
    assert [m.delivery_tag for m, _, _ in got] == [1, 2, 3, 4, 5]
    return q


def requeued_after_close(conn, ch, q):
    """Close `ch` (requeueing what it holds unacked) and return the queue's bodies."""
    ch.close()
    c2 = conn.channel()
    return [(b, m.redelivered) for m, _, b in drain(conn, c2, q)]


def test_ack_single(conn, ch, five):
    ch.basic_ack(2)
    ch.basic_ack(4)
    assert requeued_after_close(conn, ch, five) == [(b"m0", True), (b"m2", True), (b"m4", True)]


def test_ack_multiple(conn, ch, five):
    ch.basic_ack(3, multiple=True)
    assert requeued_after_close(conn, ch, five) == [(b"m3", True), (b"m4", True)]


def test_ack_multiple_zero_acks_all(conn, ch, five):
    ch.basic_ack(0, multiple=True)
    assert requeued_after_close(conn, ch, five) == []


def test_nack_single_requeue(conn, ch, five):
    ch.basic_nack(2, requeue=True)
    m, _, b = drain(conn, ch, five, n=1, auto_ack=True)[0]
    assert (b, m.redelivered) == (b"m1", True)


def test_nack_multiple_requeue_keeps_order(conn, ch, five):
    ch.basic_nack(5, multiple=True, requeue=True)
    got = drain(conn, ch, five, n=5, auto_ack=True)
    assert [b for _, _, b in got] == [b"m%d" % i for i in range(5)]
    assert all(m.redelivered for m, _, _ in got)


def test_nack_without_requeue_drops(conn, ch, five):
    ch.basic_nack(2, multiple=True, requeue=False)
    assert requeued_after_close(conn, ch, five) == [(b"m2", True), (b"m3", True), (b"m4", True)]


def test_reject_requeue(conn, ch, five):
    ch.basic_reject(3, requeue=True)
    m, _, b = drain(conn, ch, five, n=1, auto_ack=True)[0]
    assert (b, m.redelivered) == (b"m2", True)


def test_reject_drop(conn, ch, five):
    ch.basic_reject(1, requeue=False)
    assert [b for b, _ in requeued_after_close(conn, ch, five)] == [b"m1", b"m2", b"m3", b"m4"]


def test_redelivered_flag(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"r")
    m, _, _ = drain(conn, ch, q, n=1, auto_ack=False)[0]
    assert m.redelivered is False
    ch.basic_reject(m.delivery_tag, requeue=True)
    m, _, _ = drain(conn, ch, q, n=1, auto_ack=False)[0]
    assert m.redelivered is True
    ch.basic_ack(m.delivery_tag)


def test_unknown_delivery_tag_406(conn, ch):
    with channel_error(conn, ch, 406, "PRECONDITION_FAILED - unknown delivery tag 42"):
        ch.basic_ack(42)


@pytest.mark.parametrize("op", ["nack", "reject"])
def test_unknown_delivery_tag_nack_reject_406(conn, ch, op):
    with channel_error(conn, ch, 406, "PRECONDITION_FAILED - unknown delivery tag 42"):
        if op == "nack":
            ch.basic_nack(42)
        else:
            ch.basic_reject(42)


def test_double_ack_406(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"x")
    m, _, _ = drain(conn, ch, q, n=1, auto_ack=False)[0]
    ch.basic_ack(m.delivery_tag)
    with channel_error(conn, ch, 406, "PRECONDITION_FAILED - unknown delivery tag %d"
                       % m.delivery_tag):
        ch.basic_ack(m.delivery_tag)


def test_ack_of_no_ack_delivery_406(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"x")
    m, _, _ = drain(conn, ch, q, n=1, auto_ack=True)[0]
    with channel_error(conn, ch, 406, "PRECONDITION_FAILED - unknown delivery tag %d"
                       % m.delivery_tag):
        ch.basic_ack(m.delivery_tag)


def test_delivery_tags_are_per_channel(conn):
    c1, c2 = conn.channel(), conn.channel()
    q = c1.queue_declare("", exclusive=True).method.queue
    publish_n(c1, q, 4)
    a = drain(conn, c1, q, n=2, auto_ack=False)
    b = drain(conn, c2, q, n=2, auto_ack=False)
    assert [m.delivery_tag for m, _, _ in a] == [1, 2]
    assert [m.delivery_tag for m, _, _ in b] == [1, 2]
    c1.basic_ack(2, multiple=True)
    c2.basic_ack(2, multiple=True)
    assert received(conn, c1, q) == []


# ----------------------------------------------------------------- get

def test_basic_get_message_count_and_empty(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    publish_n(ch, q, 3)
    wait_count(conn, q, 3)
    counts = []
    for i in range(3):
        m, p, b = ch.basic_get(q, auto_ack=True)
        assert b == b"m%d" % i
        assert m.redelivered is False
        assert m.exchange == "" and m.routing_key == q
        counts.append(m.message_count)
    assert counts == [2, 1, 0]
    assert ch.basic_get(q, auto_ack=True) == (None, None, None)


def test_basic_get_empty_raw(raw_open):
    r = raw_open()
    r.open_channel(1)
    q = r.queue_declare(1, "", exclusive=True)
    r.send_method(1, R.BASIC_GET, R.short(0) + R.shortstr(q) + R.bits(True))
    f = r.expect(R.BASIC_GET_EMPTY, 1)
    assert f.args.shortstr() == ""  # cluster-id, deprecated
    r.close_connection()


def test_basic_get_missing_queue_404(conn, ch, broker):
    q = uid("missing")
    with channel_error(conn, ch, 404, "NOT_FOUND - no queue '%s' in vhost '%s'"
                       % (q, broker.vhost)):
        ch.basic_get(q)


# ----------------------------------------------------------------- recover

def test_recover_requeue_redelivers(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    col = Collector()
    ch.basic_consume(q, col)
    publish_n(ch, q, 3)
    pump(conn, lambda: len(col.msgs) == 3)
    assert not any(m.redelivered for m, _, _ in col.msgs)
    ch.basic_recover(requeue=True)
    pump(conn, lambda: len(col.msgs) == 6)
    again = col.msgs[3:]
    assert sorted(b for _, _, b in again) == [b"m0", b"m1", b"m2"]
    assert all(m.redelivered for m, _, _ in again)
    # the old delivery tags are void; new ones work
    ch.basic_cancel(col.msgs[0][0].consumer_tag)
    ch.basic_ack(0, multiple=True)
    assert received(conn, ch, q) == []


def test_recover_requeue_false_540(conn, ch):
    with connection_error(conn, 540, "NOT_IMPLEMENTED - requeue=false"):
        ch.basic_recover(requeue=False)


# ----------------------------------------------------------------- requeue on close

def _consume_unacked(conn, ch, q, n):
    col = Collector()
    ch.basic_consume(q, col)
    pump(conn, lambda: len(col.msgs) == n)
    return col


def test_unacked_requeued_in_order_on_channel_close(conn, ch):
    q = uid("q")
    ch.queue_declare(q)
    ch.basic_qos(prefetch_count=3)
    publish_n(ch, q, 6)
    col = _consume_unacked(conn, ch, q, 3)
    ch.basic_cancel(col.msgs[0][0].consumer_tag)  # no more deliveries
    ch.basic_ack(col.msgs[1][0].delivery_tag)  # m1 acked
    ch.close()
    c2 = conn.channel()
    got = drain(conn, c2, q, n=5)
    assert [(b, m.redelivered) for m, _, b in got] == [
        (b"m0", True), (b"m2", True), (b"m3", False), (b"m4", False), (b"m5", False)]
    c2.queue_delete(q)


def test_unacked_requeued_in_order_on_connection_close(connect):
    c = connect()
    ch = c.channel()
    q = uid("q")
    ch.queue_declare(q)
    publish_n(ch, q, 5)
    _consume_unacked(c, ch, q, 5)
    c.close()
    other = connect()
    oc = other.channel()
    got = drain(other, oc, q, n=5)
    assert [(b, m.redelivered) for m, _, b in got] == [(b"m%d" % i, True) for i in range(5)]
    oc.queue_delete(q)


def test_unacked_requeued_on_abrupt_socket_close(connect):
    c = connect()
    ch = c.channel()
    q = uid("q")
    ch.queue_declare(q)
    publish_n(ch, q, 5)
    _consume_unacked(c, ch, q, 5)
    # Kill the socket under pika: RST, no connection.close.
    sock = c._impl._transport._sock
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    other = connect()
    oc = other.channel()
    got = drain(other, oc, q, n=5, timeout=10)
    assert [(b, m.redelivered) for m, _, b in got] == [(b"m%d" % i, True) for i in range(5)]
    oc.queue_delete(q)


def test_unacked_basic_get_requeued_on_channel_close(conn, ch):
    q = uid("q")
    ch.queue_declare(q)
    publish_n(ch, q, 3)
    drain(conn, ch, q, n=2, auto_ack=False)
    ch.close()
    c2 = conn.channel()
    got = drain(conn, c2, q, n=3)
    assert [(b, m.redelivered) for m, _, b in got] == [
        (b"m0", True), (b"m1", True), (b"m2", False)]
    c2.queue_delete(q)
