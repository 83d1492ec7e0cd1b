"""exchange.declare / delete / bind / unbind."""

import pika
import pytest

from helpers import (received, channel_error, connection_error, exchange_exists, queue_count, uid,
                     wait_for, drain)


def test_declare_and_passive(conn, ch):
    x = uid("x")
    ch.exchange_declare(x, "direct")
    ch.exchange_declare(x, "direct")  # same properties: fine
    ch.exchange_declare(x, passive=True)
    ch.exchange_declare(x, "fanout", passive=True)  # passive ignores the type
    ch.exchange_delete(x)


@pytest.mark.parametrize("xtype", ["direct", "fanout", "topic", "headers"])
def test_declare_each_type_durable(ch, xtype):
    x = uid("x")
    ch.exchange_declare(x, xtype, durable=True)
    ch.exchange_declare(x, xtype, durable=True)
    ch.exchange_delete(x)


def test_passive_declare_missing_404(conn, ch, broker):
    x = uid("x")
    with channel_error(conn, ch, 404, "NOT_FOUND - no exchange '%s' in vhost '%s'"
                       % (x, broker.vhost)):
        ch.exchange_declare(x, passive=True)


def test_declare_with_arguments_and_flags(ch):
    x, ae = uid("x"), uid("ae")
    ch.exchange_declare(ae, "fanout")
    ch.exchange_declare(x, "direct", durable=False, auto_delete=False, internal=False,
                        arguments={"alternate-exchange": ae})
    ch.exchange_declare(x, "direct", arguments={"alternate-exchange": ae})
    ch.exchange_delete(x)
    ch.exchange_delete(ae)


@pytest.mark.parametrize("first,second,text", [
    (dict(exchange_type="direct"), dict(exchange_type="fanout"),
     "inequivalent arg 'type' for exchange '{x}' in vhost '{v}': "
     "received 'fanout' but current is 'direct'"),
    (dict(exchange_type="direct"), dict(exchange_type="direct", durable=True),
     "inequivalent arg 'durable' for exchange '{x}' in vhost '{v}': "
     "received 'true' but current is 'false'"),
    (dict(exchange_type="topic", durable=True), dict(exchange_type="topic"),
     "inequivalent arg 'durable' for exchange '{x}' in vhost '{v}': "
     "received 'false' but current is 'true'"),
    (dict(exchange_type="direct"), dict(exchange_type="direct", auto_delete=True),
     "inequivalent arg 'auto_delete' for exchange '{x}' in vhost '{v}': "
     "received 'true' but current is 'false'"),
    (dict(exchange_type="direct"), dict(exchange_type="direct", internal=True),
     "inequivalent arg 'internal' for exchange '{x}' in vhost '{v}': "
     "received 'true' but current is 'false'"),
    (dict(exchange_type="direct", arguments={"alternate-exchange": "ae1"}),
     dict(exchange_type="direct"),
     "inequivalent arg 'alternate-exchange' for exchange '{x}' in vhost '{v}': "
     "received none but current is the value 'ae1' of type 'longstr'"),
    (dict(exchange_type="direct", arguments={"alternate-exchange": "ae1"}),
     dict(exchange_type="direct", arguments={"alternate-exchange": "ae2"}),
     "inequivalent arg 'alternate-exchange' for exchange '{x}' in vhost '{v}': "
     "received 'ae2' but current is 'ae1'"),
])
def test_redeclare_different_406(conn, ch, broker, first, second, text):
    x = uid("x")
    ch.exchange_declare(x, **first)
    try:
        with channel_error(conn, ch, 406, "PRECONDITION_FAILED - " + text.format(
                x=x, v=broker.vhost)):
            ch.exchange_declare(x, **second)
    finally:
        conn.channel().exchange_delete(x)


def test_unknown_arguments_not_compared(ch):
    x = uid("x")
    ch.exchange_declare(x, "direct", arguments={"x-whatever": 1})
    ch.exchange_declare(x, "direct", arguments={"x-whatever": 2})
    ch.exchange_declare(x, "direct")
    ch.exchange_delete(x)


def test_unknown_type_503_connection_close(conn, ch):
    x = uid("x")
    with connection_error(conn, 503, "COMMAND_INVALID - invalid exchange type 'foo'"):
        ch.exchange_declare(x, "foo")


def test_delete(conn, ch):
    x = uid("x")
    ch.exchange_declare(x, "fanout")
    ch.exchange_delete(x)
    assert not exchange_exists(conn, x)


def test_delete_missing_succeeds(ch):
    ch.exchange_delete(uid("missing"))
    ch.exchange_delete(uid("missing"), if_unused=True)


def test_delete_if_unused(conn, ch, broker):
    x = uid("x")
    ch.exchange_declare(x, "direct")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "k")
    with channel_error(conn, ch, 406, "PRECONDITION_FAILED - exchange '%s' in vhost '%s' in use"
                       % (x, broker.vhost)):
        ch.exchange_delete(x, if_unused=True)
    ch2 = conn.channel()
    assert exchange_exists(conn, x)
    ch2.queue_unbind(q, x, "k")
    ch2.exchange_delete(x, if_unused=True)
    assert not exchange_exists(conn, x)


def test_delete_if_unused_ignores_bindings_as_destination(conn, ch):
    src, dst = uid("src"), uid("dst")
    ch.exchange_declare(src, "fanout")
    ch.exchange_declare(dst, "fanout")
    ch.exchange_bind(dst, src)
    ch.exchange_delete(dst, if_unused=True)  # dst is only a destination: unused
    assert not exchange_exists(conn, dst)
    ch.exchange_delete(src)


def test_delete_removes_bindings(conn, ch):
    x = uid("x")
    ch.exchange_declare(x, "fanout")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x)
    ch.exchange_delete(x)
    ch.exchange_declare(x, "fanout")
    ch.basic_publish(x, "", b"after redeclare")
    assert received(conn, ch, q) == []
    ch.exchange_delete(x)


def test_auto_delete_exchange_goes_with_last_binding(conn, ch):
    x = uid("x")
    ch.exchange_declare(x, "direct", auto_delete=True)
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "a")
    ch.queue_bind(q, x, "b")
    ch.queue_unbind(q, x, "a")
    assert exchange_exists(conn, x)
    ch.queue_unbind(q, x, "b")
    wait_for(lambda: not exchange_exists(conn, x), what="auto-delete exchange to go")


def test_auto_delete_exchange_without_bindings_stays(conn, ch):
    x = uid("x")
    ch.exchange_declare(x, "direct", auto_delete=True)
    assert exchange_exists(conn, x)
    ch.exchange_delete(x)


def test_exchange_to_exchange_binding_routes_and_unbinds(conn, ch):
    src, dst = uid("src"), uid("dst")
    ch.exchange_declare(src, "direct")
    ch.exchange_declare(dst, "topic")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, dst, "a.*")
    ch.exchange_bind(dst, src, "a.b")
    ch.basic_publish(src, "a.b", b"1")   # src binding matches, dst binding matches
    ch.basic_publish(src, "a.c", b"2")   # src binding does not match
    ch.basic_publish(dst, "a.c", b"3")   # straight to dst
    got = received(conn, ch, q)
    assert got == [b"1", b"3"]
    ch.exchange_unbind(dst, src, "a.b")
    ch.basic_publish(src, "a.b", b"4")
    ch.basic_publish(dst, "a.x", b"5")
    got = received(conn, ch, q)
    assert got == [b"5"]
    ch.exchange_delete(src)
    ch.exchange_delete(dst)


def test_exchange_binding_chain_delivers_once(conn, ch):
    a, b, c = uid("a"), uid("b"), uid("c")
    for x in (a, b, c):
        ch.exchange_declare(x, "fanout")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.exchange_bind(b, a)
    ch.exchange_bind(c, a)
    ch.exchange_bind(c, b)
    ch.queue_bind(q, b)
    ch.queue_bind(q, c)
    ch.basic_publish(a, "", b"once")
    # a queue gets a message once, however many paths lead to it
    assert received(conn, ch, q) == [b"once"]
    for x in (a, b, c):
        ch.exchange_delete(x)


def test_unbind_missing_binding_succeeds(ch):
    src, dst = uid("src"), uid("dst")
    ch.exchange_declare(src, "direct")
    ch.exchange_declare(dst, "direct")
    ch.exchange_unbind(dst, src, "nothing")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_unbind(q, src, "nothing")
    ch.exchange_delete(src)
    ch.exchange_delete(dst)


@pytest.mark.parametrize("name,xtype", [
    ("amq.direct", "direct"), ("amq.fanout", "fanout"), ("amq.topic", "topic"),
    ("amq.headers", "headers"), ("amq.match", "headers"),
])
def test_amq_exchanges_exist(ch, name, xtype):
    ch.exchange_declare(name, passive=True)
    ch.exchange_declare(name, xtype, durable=True)  # same properties: allowed


def test_amq_direct_routes(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.direct", q)
    ch.basic_publish("amq.direct", q, b"via amq.direct")
    assert received(conn, ch, q) == [b"via amq.direct"]


def test_default_exchange_routes_by_queue_name(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"hello")
    ch.basic_publish("", q + "-nope", b"lost")
    assert received(conn, ch, q) == [b"hello"]


DEFAULT_X = "ACCESS_REFUSED - operation not permitted on the default exchange"


def test_declare_default_exchange_403(conn, ch):
    with channel_error(conn, ch, 403, DEFAULT_X):
        ch.exchange_declare("", "direct")


def test_passive_declare_default_exchange_403(conn, ch):
    with channel_error(conn, ch, 403, DEFAULT_X):
        ch.exchange_declare("", passive=True)


def test_delete_default_exchange_403(conn, ch):
    with channel_error(conn, ch, 403, DEFAULT_X):
        ch.exchange_delete("")


def test_bind_queue_to_default_exchange_403(conn, ch):
    q = ch.queue_declare("", exclusive=False, auto_delete=True).method.queue
    with channel_error(conn, ch, 403, DEFAULT_X):
        ch.queue_bind(q, "", "k")
    conn.channel().queue_delete(q)


def test_unbind_queue_from_default_exchange_403(conn, ch):
    q = ch.queue_declare("", exclusive=False, auto_delete=True).method.queue
    with channel_error(conn, ch, 403, DEFAULT_X):
        ch.queue_unbind(q, "", q)
    conn.channel().queue_delete(q)


def test_exchange_bind_default_exchange_403(conn, ch):
    x = uid("x")
    ch.exchange_declare(x, "fanout")
    with channel_error(conn, ch, 403, DEFAULT_X):
        ch.exchange_bind(x, "", "k")
    conn.channel().exchange_delete(x)


def test_declare_amq_prefix_403(conn, ch):
    name = "amq.foo-" + uid("x")
    with channel_error(conn, ch, 403, "ACCESS_REFUSED - exchange name '%s' contains reserved "
                       "prefix 'amq.*'" % name):
        ch.exchange_declare(name, "direct")


def test_passive_declare_amq_prefix_missing_404(conn, ch, broker):
    name = "amq.foo-" + uid("x")
    with channel_error(conn, ch, 404, "NOT_FOUND - no exchange '%s' in vhost '%s'"
                       % (name, broker.vhost)):
        ch.exchange_declare(name, passive=True)


def test_delete_amq_direct_403(conn, ch, broker):
    with channel_error(conn, ch, 403, "ACCESS_REFUSED - deletion of system exchange "
                       "'amq.direct' in vhost '%s' not allowed" % broker.vhost):
        ch.exchange_delete("amq.direct")
    assert exchange_exists(conn, "amq.direct")


def test_bind_to_missing_exchange_404(conn, ch, broker):
    q = ch.queue_declare("", exclusive=True).method.queue
    x = uid("missing")
    with channel_error(conn, ch, 404, "NOT_FOUND - no exchange '%s' in vhost '%s'"
                       % (x, broker.vhost)):
        ch.queue_bind(q, x, "k")


def test_bind_missing_queue_404(conn, ch, broker):
    x = uid("x")
    ch.exchange_declare(x, "direct")
    q = uid("missing")
    try:
        with channel_error(conn, ch, 404, "NOT_FOUND - no queue '%s' in vhost '%s'"
                           % (q, broker.vhost)):
            ch.queue_bind(q, x, "k")
    finally:
        conn.channel().exchange_delete(x)


def test_fanout_ignores_routing_key(conn, ch):
    x = uid("x")
    ch.exchange_declare(x, "fanout")
    q1 = ch.queue_declare("", exclusive=True).method.queue
    q2 = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q1, x, "ignored")
    ch.queue_bind(q2, x)
    ch.basic_publish(x, "whatever", b"f")
    assert received(conn, ch, q1) == [b"f"]
    assert received(conn, ch, q2) == [b"f"]
    ch.exchange_delete(x)


def test_direct_multiple_bindings_deliver_once(conn, ch):
    x = uid("x")
    ch.exchange_declare(x, "direct")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "k")
    ch.queue_bind(q, x, "k")  # duplicate binding is a no-op
    ch.queue_bind(q, x, "k", arguments={"a": 1})  # different args: another binding
    ch.basic_publish(x, "k", b"d")
    assert received(conn, ch, q) == [b"d"]
    ch.exchange_delete(x)


# The bind/unbind family with missing ends, as RabbitMQ 3.10 answers: an
# unbind of a binding that is not there is unbind-ok whatever is missing; a
# bind names the missing source exchange first, then the missing destination.

@pytest.mark.parametrize("missing", ["queue", "source", "both"])
def test_queue_unbind_with_missing_ends_succeeds(ch, missing):
    x, q = uid("src"), uid("q")
    if missing != "source" and missing != "both":
        ch.exchange_declare(x, "direct", auto_delete=True)
    if missing == "source":
        q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_unbind(q, x, "k")
    # the channel is still open
    ch.queue_declare("", exclusive=True)


@pytest.mark.parametrize("missing", ["destination", "source", "both"])
def test_exchange_unbind_with_missing_ends_succeeds(ch, missing):
    src, dst = uid("src"), uid("dst")
    if missing == "destination":
        ch.exchange_declare(src, "direct", auto_delete=True)
    if missing == "source":
        ch.exchange_declare(dst, "direct", auto_delete=True)
    ch.exchange_unbind(dst, src, "k")
    ch.queue_declare("", exclusive=True)


def test_unbind_after_auto_delete_queue_went_away(connect, ch):
    # aio-pika's RPC.close(): cancel the consumer (the auto-delete queue goes),
    # then unbind it, then delete it; RabbitMQ answers ok to both.
    x = uid("x")
    ch.exchange_declare(x, "direct", auto_delete=True)
    q = ch.queue_declare(uid("q"), auto_delete=True).method.queue
    ch.queue_bind(q, x, "k")
    tag = ch.basic_consume(q, lambda *a: None)
    ch.basic_cancel(tag)
    ch.queue_unbind(q, x, "k")
    assert ch.queue_delete(q).method.message_count == 0


def test_bind_missing_source_and_queue_names_the_exchange(conn, ch, broker):
    x, q = uid("missing-x"), uid("missing-q")
    with channel_error(conn, ch, 404, "NOT_FOUND - no exchange '%s' in vhost '%s'"
                       % (x, broker.vhost)):
        ch.queue_bind(q, x, "k")


def test_bind_missing_source_and_destination_names_the_source(conn, ch, broker):
    src, dst = uid("missing-src"), uid("missing-dst")
    with channel_error(conn, ch, 404, "NOT_FOUND - no exchange '%s' in vhost '%s'"
                       % (src, broker.vhost)):
        ch.exchange_bind(dst, src, "k")


def test_bind_missing_destination_exchange_404(conn, ch, broker):
    src, dst = uid("src"), uid("missing-dst")
    ch.exchange_declare(src, "direct", auto_delete=True)
    with channel_error(conn, ch, 404, "NOT_FOUND - no exchange '%s' in vhost '%s'"
                       % (dst, broker.vhost)):
        ch.exchange_bind(dst, src, "k")


def test_bind_missing_source_to_foreign_exclusive_queue_404(connect, broker):
    owner = connect()
    q = owner.channel().queue_declare(uid("exq"), exclusive=True).method.queue
    other = connect()
    och = other.channel()
    x = uid("missing-x")
    with channel_error(other, och, 404, "NOT_FOUND - no exchange '%s' in vhost '%s'"
                       % (x, broker.vhost)):
        och.queue_bind(q, x, "k")


def test_unbind_missing_binding_of_foreign_exclusive_queue_ok(connect):
    owner = connect()
    q = owner.channel().queue_declare(uid("exq"), exclusive=True).method.queue
    other = connect()
    och = other.channel()
    och.queue_unbind(q, uid("missing-x"), "k")
