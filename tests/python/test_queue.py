"""queue.declare / bind / unbind / purge / delete, exclusivity and auto-delete."""

import decimal
import os

import amqp
import pika
import pytest

import amqp_raw
from helpers import (received, Collector, channel_error, drain, pump, queue_count, queue_exists, uid,
                     wait_count, wait_for)


def locked_text(q, broker):
    return ("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '%s' in vhost "
            "'%s'. It could be originally declared on another connection or the exclusive "
            "property value does not match that of the original declaration." % (q, broker.vhost))


def test_server_named_queue(ch):
    ok = ch.queue_declare("", exclusive=True)
    assert ok.method.queue.startswith("amq.gen-")
    assert len(ok.method.queue) > len("amq.gen-")
    assert ok.method.message_count == 0
    assert ok.method.consumer_count == 0
    ok2 = ch.queue_declare("", exclusive=True)
    assert ok2.method.queue != ok.method.queue


def test_declare_ok_counts(conn, ch):
    q = uid("q")
    ch.queue_declare(q, auto_delete=True)
    for i in range(3):
        ch.basic_publish("", q, b"m%d" % i)
    ch.basic_consume(q, lambda *a: None, auto_ack=False)
    c2 = conn.channel()
    ok = c2.queue_declare(q, passive=True)
    assert ok.method.queue == q
    # counts ready messages only; all 3 may by now be delivered to the consumer (unacked)
    assert ok.method.consumer_count == 1
    assert ok.method.message_count in (0, 1, 2, 3)
    pump(conn, lambda: queue_count(conn, q) == 0)
    ok = c2.queue_declare(q, auto_delete=True)
    assert (ok.method.message_count, ok.method.consumer_count) == (0, 1)
    c2.queue_delete(q)


def test_passive_declare(conn, ch, broker):
    q = uid("q")
    ch.queue_declare(q, auto_delete=True)
    ch.basic_publish("", q, b"x")
    wait_count(conn, q, 1)
    ok = ch.queue_declare(q, passive=True)
    assert ok.method.message_count == 1
    ch.queue_delete(q)
    with channel_error(conn, ch, 404, "NOT_FOUND - no queue '%s' in vhost '%s'"
                       % (q, broker.vhost)):
        ch.queue_declare(q, passive=True)


def test_durable_and_transient(conn, ch):
    qd, qt = uid("qd"), uid("qt")
    ch.queue_declare(qd, durable=True)
    ch.queue_declare(qt, durable=False)
    ch.basic_publish("", qd, b"p", pika.BasicProperties(delivery_mode=2))
    ch.basic_publish("", qt, b"t")
    wait_count(conn, qd, 1)
    wait_count(conn, qt, 1)
    ch.queue_delete(qd)
    ch.queue_delete(qt)


@pytest.mark.parametrize("first,second,arg,recv,cur", [
    (dict(durable=True), dict(durable=False), "durable", "'false'", "'true'"),
    (dict(durable=False), dict(durable=True), "durable", "'true'", "'false'"),
    (dict(auto_delete=False), dict(auto_delete=True), "auto_delete", "'true'", "'false'"),
    (dict(arguments={"x-max-length": 1000}), dict(), "x-max-length",
     "none", "the value '1000' of type 'signedint'"),
    (dict(arguments={"x-max-length": 1000}), dict(arguments={"x-max-length": 10}),
     "x-max-length", "'10'", "'1000'"),
    (dict(arguments={"x-message-ttl": 1000}), dict(arguments={"x-message-ttl": 2000}),
     "x-message-ttl", "'2000'", "'1000'"),
])
def test_redeclare_different_406(conn, ch, broker, first, second, arg, recv, cur):
    q = uid("q")
    ch.queue_declare(q, **first)
    text = ("PRECONDITION_FAILED - inequivalent arg '%s' for queue '%s' in vhost '%s': "
            "received %s but current is %s" % (arg, q, broker.vhost, recv, cur))
    try:
        with channel_error(conn, ch, 406, text):
            ch.queue_declare(q, **second)
    finally:
        conn.channel().queue_delete(q)


def test_redeclare_same_and_unknown_args_not_compared(ch):
    q = uid("q")
    ch.queue_declare(q, arguments={"x-max-length": 5, "x-custom": "a"})
    ch.queue_declare(q, arguments={"x-max-length": 5, "x-custom": "b"})
    ch.queue_declare(q, arguments={"x-max-length": 5})
    ch.queue_delete(q)


def test_invalid_argument_406(conn, ch, broker):
    q = uid("q")
    with channel_error(conn, ch, 406, "PRECONDITION_FAILED - invalid arg 'x-max-length' for "
                       "queue '%s' in vhost '%s': {value_negative,-1}" % (q, broker.vhost)):
        ch.queue_declare(q, arguments={"x-max-length": -1})


# What RabbitMQ 3.10 says about an argument of the wrong type (checked against it): the
# integer arguments and x-dead-letter-exchange have texts of their own.
_invalid = "PRECONDITION_FAILED - invalid arg '{arg}' for queue '{q}' in vhost '{v}': "


@pytest.mark.parametrize("arg,value,text", [
    ("x-max-length", "abc", _invalid + '"expected integer, got longstr"'),
    ("x-max-length-bytes", "abc", _invalid + '"expected integer, got longstr"'),
    ("x-expires", "abc", _invalid + '"expected integer, got longstr"'),
    ("x-message-ttl", True, _invalid + '"expected integer, got bool"'),
    ("x-max-priority", decimal.Decimal("1.5"), _invalid + '"expected integer, got decimal"'),
    ("x-single-active-consumer", "abc", _invalid + "{unacceptable_type,longstr}"),
    ("x-overflow", True, _invalid + "{unacceptable_type,bool}"),
    ("x-queue-mode", True, _invalid + "{unacceptable_type,bool}"),
    ("x-queue-type", True, _invalid + "{unacceptable_type,bool}"),
    ("x-dead-letter-exchange", True,
     "PRECONDITION_FAILED - invalid type 'bool' for arg '{arg}' in queue '{q}' in vhost '{v}'"),
], ids=lambda v: v if isinstance(v, str) and v.startswith("x-") else "")
def test_argument_of_wrong_type_406(conn, ch, broker, arg, value, text):
    q = uid("q")
    text = text.replace("{arg}", arg).replace("{q}", q).replace("{v}", broker.vhost)
    with channel_error(conn, ch, 406, text):
        ch.queue_declare(q, exclusive=True, arguments={arg: value})


def test_amq_prefix_403(conn, ch):
    q = "amq.foo-" + uid("q")
    with channel_error(conn, ch, 403, "ACCESS_REFUSED - queue name '%s' contains reserved "
                       "prefix 'amq.*'" % q):
        ch.queue_declare(q)


def test_amq_prefix_passive_missing_404(conn, ch, broker):
    q = "amq.foo-" + uid("q")
    with channel_error(conn, ch, 404, "NOT_FOUND - no queue '%s' in vhost '%s'"
                       % (q, broker.vhost)):
        ch.queue_declare(q, passive=True)


# ----------------------------------------------------------------- exclusive queues

@pytest.fixture
def exclusive_q(connect):
    owner = connect()
    c = owner.channel()
    q = uid("exq")
    c.queue_declare(q, exclusive=True)
    x = uid("x")
    c.exchange_declare(x, "direct", auto_delete=True)
    c.queue_bind(q, x, "k")
    c.basic_publish("", q, b"mine")
    wait_count(owner, q, 1)
    return owner, c, q, x


@pytest.mark.parametrize("op", ["declare", "declare_passive", "consume", "get", "purge",
                                "delete", "bind"])
def test_exclusive_queue_other_connection_405(exclusive_q, connect, broker, op):
    owner, oc, q, x = exclusive_q
    other = connect()
    ch = other.channel()
    actions = {
        "declare": lambda: ch.queue_declare(q, exclusive=True),
        "declare_passive": lambda: ch.queue_declare(q, passive=True),
        "consume": lambda: ch.basic_consume(q, lambda *a: None),
        "get": lambda: ch.basic_get(q),
        "purge": lambda: ch.queue_purge(q),
        "delete": lambda: ch.queue_delete(q),
        "bind": lambda: ch.queue_bind(q, x, "k2"),
    }
    with channel_error(other, ch, 405, locked_text(q, broker)):
        actions[op]()
    # untouched for its owner
    assert oc.queue_declare(q, passive=True).method.message_count == 1


def test_exclusive_queue_other_connection_publish_allowed(exclusive_q, connect):
    owner, oc, q, x = exclusive_q
    other = connect()
    ch = other.channel()
    ch.basic_publish("", q, b"from other")
    ch.basic_publish(x, "k", b"via exchange")
    wait_count(owner, q, 3)


def test_exclusive_queue_other_connection_unbind(exclusive_q, connect, broker):
    owner, oc, q, x = exclusive_q
    other = connect()
    ch = other.channel()
    # Unbinding a binding that does not exist is a no-op, even here ...
    ch.queue_unbind(q, x, "no-such-key")
    # ... but removing a real binding of another connection's exclusive queue is refused.
    # (RabbitMQ 3.10 checks exclusivity on unbind, contrary to the behaviour sheet.)
    with channel_error(other, ch, 405, locked_text(q, broker)):
        ch.queue_unbind(q, x, "k")


def test_exclusive_flag_mismatch_on_redeclare_405(conn, ch, broker):
    q = uid("q")
    ch.queue_declare(q, exclusive=True)
    with channel_error(conn, ch, 405, locked_text(q, broker)):
        ch.queue_declare(q, exclusive=False)


def test_exclusive_queue_usable_from_other_channel_same_connection(conn, ch):
    q = uid("q")
    ch.queue_declare(q, exclusive=True)
    c2 = conn.channel()
    c2.queue_declare(q, exclusive=True)
    c2.basic_publish("", q, b"x")
    assert received(conn, c2, q) == [b"x"]
    c2.queue_purge(q)
    c2.queue_delete(q)


def test_exclusive_queue_deleted_when_connection_closes(connect):
    owner = connect()
    q = uid("exq")
    owner.channel().queue_declare(q, exclusive=True)
    observer = connect()

    def passive_code():
        c = observer.channel()
        try:
            c.queue_declare(q, passive=True)
        except pika.exceptions.ChannelClosedByBroker as e:
            return e.reply_code
        c.close()
        return 200

    assert passive_code() == 405  # exists, locked
    owner.close()
    wait_for(lambda: passive_code() == 404, what="exclusive queue to be deleted")


def test_exclusive_queue_survives_channel_close(conn):
    c = conn.channel()
    q = uid("exq")
    c.queue_declare(q, exclusive=True)
    c.close()
    assert queue_exists(conn, q)


# ----------------------------------------------------------------- auto-delete

def test_auto_delete_after_last_consumer_cancels(conn, ch):
    q = uid("adq")
    ch.queue_declare(q, auto_delete=True)
    t1 = ch.basic_consume(q, lambda *a: None)
    t2 = ch.basic_consume(q, lambda *a: None)
    ch.basic_cancel(t1)
    assert queue_exists(conn, q)
    ch.basic_cancel(t2)
    wait_for(lambda: not queue_exists(conn, q), what="auto-delete queue to be deleted")


def test_auto_delete_after_consumer_channel_closes(conn):
    c = conn.channel()
    q = uid("adq")
    c.queue_declare(q, auto_delete=True)
    c.basic_consume(q, lambda *a: None)
    c.close()
    wait_for(lambda: not queue_exists(conn, q), what="auto-delete queue to be deleted")


def test_auto_delete_never_consumed_stays(conn, ch):
    q = uid("adq")
    ch.queue_declare(q, auto_delete=True)
    ch.basic_get(q)
    assert queue_exists(conn, q)
    ch.queue_delete(q)


# ----------------------------------------------------------------- bind / unbind

def test_bind_unbind(conn, ch):
    x = uid("x")
    ch.exchange_declare(x, "direct")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "a")
    ch.queue_bind(q, x, "b")
    ch.basic_publish(x, "a", b"1")
    ch.basic_publish(x, "b", b"2")
    ch.basic_publish(x, "c", b"3")
    assert received(conn, ch, q) == [b"1", b"2"]
    ch.queue_unbind(q, x, "a")
    ch.basic_publish(x, "a", b"4")
    ch.basic_publish(x, "b", b"5")
    assert received(conn, ch, q) == [b"5"]
    ch.exchange_delete(x)


def test_bind_with_empty_routing_key_to_direct(conn, ch):
    x = uid("x")
    ch.exchange_declare(x, "direct")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "")
    ch.basic_publish(x, "", b"empty")
    ch.basic_publish(x, "k", b"other")
    assert received(conn, ch, q) == [b"empty"]
    ch.exchange_delete(x)


def test_queue_delete_removes_bindings(conn, ch):
    x = uid("x")
    ch.exchange_declare(x, "fanout")
    q = uid("q")
    ch.queue_declare(q)
    ch.queue_bind(q, x)
    ch.queue_delete(q)
    ch.queue_declare(q)
    ch.basic_publish(x, "", b"nope")
    assert received(conn, ch, q) == []
    ch.queue_delete(q)
    ch.exchange_delete(x)


# ----------------------------------------------------------------- purge

def test_purge_counts_and_leaves_unacked(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    for i in range(5):
        ch.basic_publish("", q, b"m%d" % i)
    wait_count(conn, q, 5)
    m1 = ch.basic_get(q, auto_ack=False)[0]
    m2 = ch.basic_get(q, auto_ack=False)[0]
    assert (m1.delivery_tag, m2.delivery_tag) == (1, 2)
    ok = ch.queue_purge(q)
    assert ok.method.message_count == 3
    assert ch.queue_purge(q).method.message_count == 0
    ch.basic_nack(0, multiple=True, requeue=True)
    got = drain(conn, ch, q, n=2)
    assert [b for _, _, b in got] == [b"m0", b"m1"]
    assert all(m.redelivered for m, _, _ in got)


def test_purge_missing_404(conn, ch, broker):
    q = uid("missing")
    with channel_error(conn, ch, 404, "NOT_FOUND - no queue '%s' in vhost '%s'"
                       % (q, broker.vhost)):
        ch.queue_purge(q)


# ----------------------------------------------------------------- delete

def test_delete_returns_ready_count(conn, ch):
    q = uid("q")
    ch.queue_declare(q)
    for i in range(4):
        ch.basic_publish("", q, b"x")
    wait_count(conn, q, 4)
    ch.basic_get(q, auto_ack=False)
    ok = ch.queue_delete(q)
    assert ok.method.message_count == 3
    assert not queue_exists(conn, q)


def test_delete_missing_queue_succeeds(ch):
    ok = ch.queue_delete(uid("missing"))
    assert ok.method.message_count == 0
    ok = ch.queue_delete(uid("missing"), if_unused=True, if_empty=True)
    assert ok.method.message_count == 0


def test_delete_if_unused(conn, ch, broker):
    q = uid("q")
    ch.queue_declare(q)
    tag = ch.basic_consume(q, lambda *a: None)
    try:
        with channel_error(conn, ch, 406, "PRECONDITION_FAILED - queue '%s' in vhost '%s' in use"
                           % (q, broker.vhost)):
            ch.queue_delete(q, if_unused=True)
        # the channel closed, so the consumer is gone: now it is unused
        c2 = conn.channel()
        assert c2.queue_delete(q, if_unused=True).method.message_count == 0
    finally:
        conn.channel().queue_delete(q)


def test_delete_if_empty(conn, ch, broker):
    q = uid("q")
    ch.queue_declare(q)
    ch.basic_publish("", q, b"x")
    ch.basic_publish("", q, b"y")
    wait_count(conn, q, 2)
    try:
        with channel_error(conn, ch, 406, "PRECONDITION_FAILED - queue '%s' in vhost '%s' not "
                           "empty" % (q, broker.vhost)):
            ch.queue_delete(q, if_empty=True)
        c2 = conn.channel()
        assert queue_count(conn, q) == 2
        c2.queue_purge(q)
        assert c2.queue_delete(q, if_empty=True).method.message_count == 0
    finally:
        conn.channel().queue_delete(q)


def test_delete_if_empty_ignores_unacked(conn, ch):
    q = uid("q")
    ch.queue_declare(q)
    ch.basic_publish("", q, b"x")
    wait_count(conn, q, 1)
    m = ch.basic_get(q, auto_ack=False)[0]
    assert m is not None
    # RabbitMQ: if_empty looks at ready messages only
    ok = ch.queue_delete(q, if_empty=True)
    assert ok.method.message_count == 0
    assert not queue_exists(conn, q)


def test_delete_ok_comes_before_own_consumers_cancel(raw_open):
    # RabbitMQ 3.10: the deleting channel gets queue.delete-ok first, then the
    # basic.cancel of its own consumer (py-amqp, under kombu and Celery, fails
    # on a cancel that arrives while it waits for delete-ok).
    r = raw_open()
    r.open_channel(1)
    q = r.queue_declare(1, uid("q"))
    r.send_method(1, amqp_raw.BASIC_CONSUME, amqp_raw.short(0) + amqp_raw.shortstr(q) +
                  amqp_raw.shortstr("ctag") + amqp_raw.bits(False, False, False, False) +
                  amqp_raw.table({}))
    r.expect(amqp_raw.BASIC_CONSUME_OK, 1)
    r.send_method(1, amqp_raw.QUEUE_DELETE, amqp_raw.short(0) + amqp_raw.shortstr(q) +
                  amqp_raw.bits(False, False, False))
    first = r.read_method()
    second = r.read_method()
    assert (first.method, first.channel) == (amqp_raw.QUEUE_DELETE_OK, 1)
    assert (second.method, second.channel) == (amqp_raw.BASIC_CANCEL, 1)
    assert second.args.shortstr() == "ctag"


def test_py_amqp_deletes_queue_it_consumes(broker):
    # What kombu's Queue.delete() does with a live consumer on the channel.
    cancelled = []
    with amqp.Connection("%s:%d" % (broker.host, broker.port), userid=broker.user,
                         password=broker.password, virtual_host=broker.vhost) as c:
        c.connect()
        ch = c.channel()
        q, _, _ = ch.queue_declare(uid("q"))
        tag = ch.basic_consume(q, callback=lambda m: None, on_cancel=cancelled.append)
        assert ch.queue_delete(q) == 0
        c.drain_events(timeout=5)
        assert cancelled == [tag]
