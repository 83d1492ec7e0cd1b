"""Content-based routing: the x-selector binding argument (a Warren extension).

A binding with a selector matches when the exchange's own rule matches AND the selector
(an SQL-92 conditional expression over headers, properties and a JSON body) is TRUE.
RabbitMQ has no selectors, so this module runs against Warren only.
"""

import json
import os

import pika
import pytest

from helpers import channel_error, received, uid

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("WARREN_TEST_URL")),
    reason="x-selector is a Warren extension; the reference broker lacks it")

KINDS = ["fanout", "direct", "topic", "headers"]


def binding_key(kind):
    return "orders.*" if kind == "topic" else "orders.new"


def setup(ch, kind, *selectors, arg="x-selector"):
    """An exchange of `kind` and one queue per selector, bound with it; returns (x, queues)."""
    x = uid("sel-" + kind)
    ch.exchange_declare(x, kind, auto_delete=True)
    queues = []
    for s in selectors:
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, x, binding_key(kind), arguments={arg: s})
        queues.append(q)
    return x, queues


def props(headers=None, **kw):
    return pika.BasicProperties(headers=headers, **kw)


@pytest.mark.parametrize("kind", KINDS)
def test_header_selector(conn, ch, kind):
    x, (eu_big, us) = setup(ch, kind, "region = 'eu' AND amount > 1000", "region = 'us'")
    ch.basic_publish(x, "orders.new", b"eu-big", props({"region": "eu", "amount": 1500}))
    ch.basic_publish(x, "orders.new", b"eu-small", props({"region": "eu", "amount": 10}))
    ch.basic_publish(x, "orders.new", b"us", props({"region": "us", "amount": 5}))
    ch.basic_publish(x, "orders.new", b"none", props())
    assert received(conn, ch, eu_big) == [b"eu-big"]
    assert received(conn, ch, us) == [b"us"]


@pytest.mark.parametrize("kind", KINDS)
def test_property_selector(conn, ch, kind):
    x, (urgent, typed) = setup(
        ch, kind,
        "sys.priority >= 5 AND sys.routing_key LIKE 'orders.%'",
        "sys.type = 'order.created' AND sys.app_id IN ('shop', 'pos') "
        "AND sys.content_type = 'text/plain' AND sys.exchange IS NOT NULL")
    ch.basic_publish(x, "orders.new", b"p9", props(priority=9))
    ch.basic_publish(x, "orders.new", b"p1", props(priority=1))
    ch.basic_publish(x, "orders.new", b"typed", props(
        type="order.created", app_id="pos", content_type="text/plain"))
    ch.basic_publish(x, "orders.new", b"untyped", props(app_id="pos", content_type="text/plain"))
    assert received(conn, ch, urgent) == [b"p9"]
    assert received(conn, ch, typed) == [b"typed"]


@pytest.mark.parametrize("kind", KINDS)
def test_json_body_selector(conn, ch, kind):
    x, (review, german) = setup(
        ch, kind,
        "body.order.total > 1000 AND body.order.customer.region = 'eu'",
        "body.order.lines[0].sku LIKE 'DE-%'")
    big_eu = {"order": {"total": 1250.5, "customer": {"region": "eu"},
                        "lines": [{"sku": "DE-1"}]}}
    small = {"order": {"total": 20, "customer": {"region": "eu"}, "lines": [{"sku": "FR-1"}]}}
    ch.basic_publish(x, "orders.new", json.dumps(big_eu).encode(),
                     props(content_type="application/json"))
    ch.basic_publish(x, "orders.new", json.dumps(small).encode(), props())
    # Not JSON by content type, or by content: every body field is NULL.
    ch.basic_publish(x, "orders.new", json.dumps(big_eu).encode(),
                     props(content_type="text/plain"))
    ch.basic_publish(x, "orders.new", b"{not json", props())
    assert received(conn, ch, review) == [json.dumps(big_eu).encode()]
    assert received(conn, ch, german) == [json.dumps(big_eu).encode()]


def test_exchange_rule_still_applies(conn, ch):
    x, (q,) = setup(ch, "direct", "TRUE")
    ch.basic_publish(x, "orders.new", b"hit", props())
    ch.basic_publish(x, "other.key", b"miss", props())
    assert received(conn, ch, q) == [b"hit"]

    h = uid("sel-headers")
    ch.exchange_declare(h, "headers", auto_delete=True)
    hq = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(hq, h, "", arguments={"x-match": "all-with-x", "kind": "order",
                                        "x-selector": "amount > 100"})
    ch.basic_publish(h, "", b"order-big", props({"kind": "order", "amount": 500}))
    ch.basic_publish(h, "", b"order-small", props({"kind": "order", "amount": 5}))
    ch.basic_publish(h, "", b"invoice-big", props({"kind": "invoice", "amount": 500}))
    assert received(conn, ch, hq) == [b"order-big"]


def test_jms_alias(conn, ch):
    x, (q,) = setup(ch, "fanout", "region = 'eu'", arg="x-filter-jms-selector")
    ch.basic_publish(x, "", b"eu", props({"region": "eu"}))
    ch.basic_publish(x, "", b"us", props({"region": "us"}))
    assert received(conn, ch, q) == [b"eu"]


def test_null_rules(conn, ch):
    x, (absent, not_eu, is_null) = setup(
        ch, "fanout", "region <> 'eu'", "NOT (region = 'eu')", "region IS NULL")
    ch.basic_publish(x, "", b"no-region", props())
    ch.basic_publish(x, "", b"us", props({"region": "us"}))
    ch.basic_publish(x, "", b"number", props({"region": 7}))
    # Comparing NULL (or a number with a string) is UNKNOWN, and so is its negation.
    assert received(conn, ch, absent) == [b"us"]
    assert received(conn, ch, not_eu) == [b"us"]
    assert received(conn, ch, is_null) == [b"no-region"]


def test_one_copy_however_many_bindings_match(conn, ch):
    x = uid("sel-dup")
    ch.exchange_declare(x, "fanout", auto_delete=True)
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "", arguments={"x-selector": "a > 1"})
    ch.queue_bind(q, x, "", arguments={"x-selector": "a > 2"})
    ch.queue_bind(q, x, "", arguments={"x-selector": "a > 3"})
    ch.basic_publish(x, "", b"five", props({"a": 5}))
    ch.basic_publish(x, "", b"two", props({"a": 2}))
    ch.basic_publish(x, "", b"zero", props({"a": 0}))
    assert received(conn, ch, q) == [b"five", b"two"]
    # Unbinding one selector binding leaves the others.
    ch.queue_unbind(q, x, "", arguments={"x-selector": "a > 1"})
    ch.basic_publish(x, "", b"two-again", props({"a": 2}))
    ch.basic_publish(x, "", b"three", props({"a": 3}))
    assert received(conn, ch, q) == [b"three"]


def test_unroutable_by_selector_is_returned(conn, ch):
    x, _ = setup(ch, "fanout", "region = 'eu'")
    returned = []
    ch.add_on_return_callback(lambda c, m, p, b: returned.append(b))
    ch.basic_publish(x, "", b"us", props({"region": "us"}), mandatory=True)
    ch.basic_publish(x, "", b"eu", props({"region": "eu"}), mandatory=True)
    conn.process_data_events(time_limit=0.5)
    assert returned == [b"us"]


INVALID = [
    ("region = 'eu' AND",
     "invalid x-selector at position 18: expected an operand, found the end of the selector"),
    ("amount BETWEEN 1 2", "invalid x-selector at position 18: expected AND, found '2'"),
    ("region IN 'eu'", "invalid x-selector at position 11: expected '(', found '''"),
    ("a = 'open", "invalid x-selector at position 5: unterminated string literal"),
    ("sys.colour = 'red'",
     "invalid x-selector at position 5: unknown property sys.colour; known: routing_key, "
     "exchange, content_type, content_encoding, priority, delivery_mode, correlation_id, "
     "reply_to, expiration, message_id, timestamp, type, user_id, app_id"),
]


@pytest.mark.parametrize("selector,text", INVALID)
def test_invalid_selector_is_406(conn, ch, selector, text):
    x = uid("sel-bad")
    ch.exchange_declare(x, "topic", auto_delete=True)
    q = ch.queue_declare("", exclusive=True).method.queue
    with channel_error(conn, ch, 406, "PRECONDITION_FAILED - " + text):
        ch.queue_bind(q, x, "#", arguments={"x-selector": selector})


def test_invalid_regex_and_limits_are_406(conn):
    ch = conn.channel()
    x = uid("sel-bad")
    ch.exchange_declare(x, "fanout", auto_delete=True)
    q = ch.queue_declare(uid("sel-q"), auto_delete=True).method.queue
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_bind(q, x, "", arguments={"x-selector": "a MATCHES '(unclosed'"})
    assert ei.value.reply_code == 406
    assert ei.value.reply_text.startswith(
        "PRECONDITION_FAILED - invalid x-selector at position 11: invalid regex: "), ei.value

    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_bind(q, x, "", arguments={"x-selector": "a = '%s'" % ("x" * 5000)})
    assert ei.value.reply_code == 406
    assert "the limit is 4096" in ei.value.reply_text

    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_bind(q, x, "", arguments={"x-filter-jms-selector": "(" * 100 + "TRUE" + ")" * 100})
    assert ei.value.reply_code == 406
    assert "invalid x-filter-jms-selector" in ei.value.reply_text
    assert "nested deeper than" in ei.value.reply_text

    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_bind(q, x, "", arguments={"x-selector": 42})
    assert (ei.value.reply_code, ei.value.reply_text) == (
        406, "PRECONDITION_FAILED - invalid x-selector: expected a UTF-8 string")

    # Nothing was bound by the refused attempts.
    ch = conn.channel()
    ch.basic_publish(x, "", b"m", props({"a": 1}))
    assert received(conn, ch, q) == []


def test_exchange_to_exchange_selector(conn, ch):
    src = uid("sel-src")
    dst = uid("sel-dst")
    ch.exchange_declare(src, "topic", auto_delete=True)
    ch.exchange_declare(dst, "fanout", auto_delete=True)
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, dst, "")
    ch.exchange_bind(dst, src, "orders.#", arguments={"x-selector": "sys.exchange = '%s'" % src})
    ch.basic_publish(src, "orders.eu", b"routed", props())
    ch.basic_publish(src, "invoices.eu", b"not-by-key", props())
    assert received(conn, ch, q) == [b"routed"]
