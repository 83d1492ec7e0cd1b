"""Headers exchange: x-match all / any / all-with-x / any-with-x."""

import pika
import pytest

from helpers import channel_error, received, uid

CASES = [
    # (binding arguments, message headers, matches)
    ({"x-match": "all", "a": 1, "b": "two"}, {"a": 1, "b": "two"}, True),
    ({"x-match": "all", "a": 1, "b": "two"}, {"a": 1, "b": "two", "c": 3}, True),
    ({"x-match": "all", "a": 1, "b": "two"}, {"a": 1}, False),
    ({"x-match": "all", "a": 1, "b": "two"}, {"a": 1, "b": "three"}, False),
    ({"x-match": "all", "a": 1, "b": "two"}, None, False),
    ({"a": 1, "b": "two"}, {"a": 1, "b": "two"}, True),          # default is all
    ({"a": 1, "b": "two"}, {"a": 1}, False),
    ({"x-match": "any", "a": 1, "b": 2}, {"a": 1}, True),
    ({"x-match": "any", "a": 1, "b": 2}, {"b": 2, "c": 1}, True),
    ({"x-match": "any", "a": 1, "b": 2}, {"a": 2}, False),
    ({"x-match": "any", "a": 1, "b": 2}, None, False),
    # x- keys in the binding are ignored by all / any
    ({"x-match": "all", "x-foo": "bar", "a": 1}, {"a": 1}, True),
    ({"x-match": "any", "x-foo": "bar"}, {"x-foo": "bar"}, False),
    ({"x-match": "any", "x-foo": "bar", "a": 1}, {"x-foo": "bar"}, False),
    # ... and taken into account by all-with-x / any-with-x
    ({"x-match": "all-with-x", "x-foo": "bar", "a": 1}, {"a": 1, "x-foo": "bar"}, True),
    ({"x-match": "all-with-x", "x-foo": "bar", "a": 1}, {"a": 1}, False),
    ({"x-match": "any-with-x", "x-foo": "bar"}, {"x-foo": "bar"}, True),
    ({"x-match": "any-with-x", "x-foo": "bar", "a": 1}, {"x-foo": "baz", "a": 2}, False),
    ({"x-match": "any-with-x", "x-foo": "bar", "a": 1}, {"a": 1}, True),
    # types matter
    ({"x-match": "all", "a": 1}, {"a": "1"}, False),
    # a void value in the binding matches any value of that key
    ({"x-match": "all", "a": None}, {"a": "anything"}, True),
    ({"x-match": "all", "a": None}, {"b": "anything"}, False),
    # a binding with no keys
    ({"x-match": "all"}, {"whatever": 1}, True),
    ({"x-match": "all"}, None, True),
    ({"x-match": "any"}, {"whatever": 1}, False),
]


@pytest.mark.parametrize("args,headers,matches", CASES)
def test_headers_match(conn, ch, args, headers, matches):
    x = uid("hdr")
    ch.exchange_declare(x, "headers", auto_delete=True)
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "ignored-key", arguments=args)
    ch.basic_publish(x, "any-key", b"h", pika.BasicProperties(headers=headers))
    assert received(conn, ch, q) == ([b"h"] if matches else [])


def test_headers_amq_match(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.match", "", arguments={"x-match": "any", "q": q})
    ch.basic_publish("amq.match", "", b"1", pika.BasicProperties(headers={"q": q}))
    ch.basic_publish("amq.headers", "", b"2", pika.BasicProperties(headers={"q": q}))
    assert received(conn, ch, q) == [b"1"]


def test_headers_unbind_with_arguments(conn, ch):
    x = uid("hdr")
    ch.exchange_declare(x, "headers", auto_delete=True)
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "", arguments={"x-match": "all", "a": 1})
    ch.queue_bind(q, x, "", arguments={"x-match": "all", "b": 1})
    ch.queue_unbind(q, x, "", arguments={"x-match": "all", "a": 1})
    ch.basic_publish(x, "", b"a", pika.BasicProperties(headers={"a": 1}))
    ch.basic_publish(x, "", b"b", pika.BasicProperties(headers={"b": 1}))
    assert received(conn, ch, q) == [b"b"]


def test_headers_bad_x_match_406(conn, ch):
    x = uid("hdr")
    ch.exchange_declare(x, "headers", auto_delete=True)
    q = ch.queue_declare("", exclusive=True).method.queue
    with channel_error(conn, ch, 406, "PRECONDITION_FAILED - Invalid x-match field value "
                       "<<\"foo\">>; expected all, any, all-with-x, or any-with-x"):
        ch.queue_bind(q, x, "", arguments={"x-match": "foo"})
