"""Publisher confirms and transactions."""

import pika
import pika.exceptions as pex
import pytest

import amqp_raw as R
from helpers import channel_error, drain, queue_count, received, uid, wait_count


# ----------------------------------------------------------------- confirms

def test_confirm_select_pika(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.confirm_delivery()
    for i in range(10):
        ch.basic_publish("", q, b"c%d" % i)  # returns once acked
    # confirmed transient messages are in the queue
    assert queue_count(conn, q) == 10


def test_confirm_mandatory_unroutable_pika(conn, ch):
    ch.confirm_delivery()
    with pytest.raises(pex.UnroutableError):
        ch.basic_publish("", uid("nope"), b"x", mandatory=True)
    assert ch.is_open


def _confirm_channel(r, ch=1):
    r.open_channel(ch)
    r.send_method(ch, R.CONFIRM_SELECT, R.bits(False))
    r.expect(R.CONFIRM_SELECT_OK, ch)


def _read_acks(r, n, ch=1):
    """Reads basic.ack frames until tags 1..n are covered; returns [(tag, multiple)]."""
    acks = []
    covered = 0
    while covered < n:
        f = r.read_method()
        assert f.method == R.BASIC_ACK and f.channel == ch, f
        tag = f.args.longlong()
        multiple = bool(f.args.octet() & 1)
        acks.append((tag, multiple))
        if multiple:
            assert tag > covered
            covered = tag
        else:
            assert tag == covered + 1, "acks out of order: %r" % acks
            covered = tag
    return acks


def test_confirm_delivery_tags_increase_and_multiple(raw_open):
    r = raw_open()
    _confirm_channel(r)
    q = r.queue_declare(1, "", exclusive=True)
    n = 200
    for i in range(n):
        r.publish(1, "", q, b"m%d" % i)
    acks = _read_acks(r, n)
    tags = [t for t, _ in acks]
    assert tags == sorted(tags) and len(set(tags)) == len(tags)
    assert tags[-1] == n
    r.close_connection()


def _publish_burst(r, q, n, persistent=False):
    """n publishes to queue q in one write (as a pipelining client sends them)."""
    props = b"\x10\x00\x02" if persistent else b"\x00\x00"  # delivery-mode 2
    one = b"".join([
        R.frame(R.FRAME_METHOD, 1, R.method_payload(
            R.BASIC_PUBLISH, R.short(0) + R.shortstr("") + R.shortstr(q) + R.bits(False, False))),
        R.frame(R.FRAME_HEADER, 1, R.short(60) + R.short(0) + R.longlong(8) + props),
        R.frame(R.FRAME_BODY, 1, b"burst..."),
    ])
    r.send(one * n)


@pytest.mark.parametrize("persistent", [False, True], ids=["transient", "persistent"])
def test_confirms_of_a_burst_are_coalesced(raw_open, persistent):
    # RabbitMQ acks a burst of publishes with basic.ack multiple=true (amqplib's
    # own suite checks for it); every tag is confirmed once, in order.
    r = raw_open()
    _confirm_channel(r)
    q = r.queue_declare(1, uid("burst"), durable=persistent, exclusive=True)
    n = 1000
    _publish_burst(r, q, n, persistent)
    acks = _read_acks(r, n)
    assert acks[-1][0] == n
    assert any(multiple for _, multiple in acks), acks
    assert len(acks) < n
    r.close_connection()


def test_confirm_select_twice_is_fine(raw_open):
    r = raw_open()
    _confirm_channel(r)
    r.send_method(1, R.CONFIRM_SELECT, R.bits(False))
    r.expect(R.CONFIRM_SELECT_OK, 1)
    q = r.queue_declare(1, "", exclusive=True)
    r.publish(1, "", q, b"x")
    assert _read_acks(r, 1) == [(1, False)]
    r.close_connection()


def test_confirm_unroutable_acked(raw_open):
    r = raw_open()
    _confirm_channel(r)
    r.publish(1, "", uid("nope"), b"lost")  # not mandatory: dropped, but still acked
    assert _read_acks(r, 1) == [(1, False)]
    r.close_connection()


def test_confirm_return_comes_before_ack(raw_open):
    r = raw_open()
    _confirm_channel(r)
    q = r.queue_declare(1, "", exclusive=True)
    r.publish(1, "", q, b"routed", mandatory=True)
    r.publish(1, "", uid("nope"), b"returned", mandatory=True)
    r.publish(1, "", q, b"routed2", mandatory=True)
    events = []
    covered = 0
    while covered < 3:
        f = r.read_method()
        if f.method == R.BASIC_RETURN:
            code, text = f.args.short(), f.args.shortstr()
            _, body = r.read_content()
            events.append(("return", code, text, body))
        else:
            assert f.method == R.BASIC_ACK, f
            tag, multiple = f.args.longlong(), bool(f.args.octet() & 1)
            events.append(("ack", tag, multiple))
            covered = tag
    ret = [e for e in events if e[0] == "return"]
    assert ret == [("return", 312, "NO_ROUTE", b"returned")]
    ret_at = events.index(ret[0])
    ack_of_2 = next(i for i, e in enumerate(events)
                    if e[0] == "ack" and (e[1] == 2 or (e[2] and e[1] >= 2)))
    assert ret_at < ack_of_2, events
    r.close_connection()


def test_confirm_persistent_to_durable_queue(conn, ch):
    q = uid("q")
    ch.queue_declare(q, durable=True)
    ch.confirm_delivery()
    for i in range(20):
        ch.basic_publish("", q, b"p%d" % i, pika.BasicProperties(delivery_mode=2))
    assert queue_count(conn, q) == 20
    ch.queue_delete(q)


# ----------------------------------------------------------------- transactions

def test_tx_commit_makes_publishes_visible(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.tx_select()
    for i in range(3):
        ch.basic_publish("", q, b"t%d" % i)
    observer = conn.channel()
    observer.basic_qos(prefetch_count=0)  # round trip
    assert queue_count(conn, q) == 0
    ch.tx_commit()
    assert queue_count(conn, q) == 3
    assert [b for _, _, b in drain(conn, observer, q)] == [b"t0", b"t1", b"t2"]


def test_tx_rollback_drops_publishes(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.tx_select()
    ch.basic_publish("", q, b"gone")
    ch.tx_rollback()
    ch.basic_publish("", q, b"kept")
    ch.tx_commit()
    assert queue_count(conn, q) == 1
    ch.tx_commit()  # an empty commit is fine
    assert [b for _, _, b in drain(conn, ch, q)] == [b"kept"]


def test_tx_acks_applied_at_commit(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    for i in range(3):
        ch.basic_publish("", q, b"a%d" % i)
    wait_count(conn, q, 3)
    ch.tx_select()
    got = drain(conn, ch, q, n=3, auto_ack=False)
    ch.basic_ack(3, multiple=True)
    ch.tx_commit()
    ch.close()
    assert queue_count(conn, q) == 0


def test_tx_rollback_leaves_acked_messages_unacked(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    for i in range(3):
        ch.basic_publish("", q, b"a%d" % i)
    wait_count(conn, q, 3)
    ch.tx_select()
    drain(conn, ch, q, n=3, auto_ack=False)
    ch.basic_ack(2, multiple=True)
    ch.tx_rollback()
    # not requeued by the rollback: still unacked on this channel
    assert queue_count(conn, q) == 0
    # the tags are still valid: ack m0 for real, then close -> m1, m2 requeued
    ch.basic_ack(1)
    ch.tx_commit()
    ch.close()
    c2 = conn.channel()
    got = drain(conn, c2, q, n=2)
    assert [(b, m.redelivered) for m, _, b in got] == [(b"a1", True), (b"a2", True)]


def test_tx_nack_requeue_applied_at_commit(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"n")
    wait_count(conn, q, 1)
    ch.tx_select()
    m, _, _ = drain(conn, ch, q, n=1, auto_ack=False)[0]
    ch.basic_nack(m.delivery_tag, requeue=True)
    assert queue_count(conn, q) == 0
    ch.tx_commit()
    wait_count(conn, q, 1)


def test_confirm_after_tx_406(conn, ch):
    ch.tx_select()
    with channel_error(conn, ch, 406, "PRECONDITION_FAILED - cannot switch from tx to confirm "
                       "mode"):
        ch.confirm_delivery()


def test_tx_after_confirm_406(conn, ch):
    ch.confirm_delivery()
    with channel_error(conn, ch, 406, "PRECONDITION_FAILED - cannot switch from confirm to tx "
                       "mode"):
        ch.tx_select()


def test_tx_commit_without_select_406(conn, ch):
    with channel_error(conn, ch, 406, "PRECONDITION_FAILED - channel is not transactional"):
        ch.tx_commit()


def test_tx_rollback_without_select_406(conn, ch):
    with channel_error(conn, ch, 406, "PRECONDITION_FAILED - channel is not transactional"):
        ch.tx_rollback()


def test_tx_select_twice_is_fine(conn, ch):
    ch.tx_select()
    ch.tx_select()
    ch.tx_commit()
