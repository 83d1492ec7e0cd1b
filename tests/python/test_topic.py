"""Topic exchange matching, one test per edge case (each checked against RabbitMQ 3.10)."""

import pytest

from helpers import received, uid

CASES = [
    # (binding key, routing key, matches)
    ("#", "", True),                 # '#' matches the empty key
    ("#", "a.b.c", True),
    ("*", "", False),                # '*' does not match the empty key
    ("*", "a", True),
    ("*", "a.b", False),
    ("*.*", ".", True),              # '.' is two empty words
    ("*.*", "a", False),
    ("*.*", "a.b", True),
    ("a.#.b", "a.b", True),          # '#' matches zero words in the middle
    ("a.#.b", "a.x.y.b", True),
    ("a.#.b", "a.x.y.c", False),
    ("a.#.#.b", "a.b", True),
    ("#.#", "", True),               # '#.#' matches anything
    ("#.#", "a", True),
    ("#.#", "a.b.c", True),
    ("a.*.b", "a..b", True),         # empty middle word matched by '*'
    ("a..b", "a..b", True),
    ("a..b", "a.b", False),
    ("*.b", "a.b", True),            # '*' at the start
    ("*.b", "b", False),
    ("*.b", ".b", True),
    ("*.b", "a.a.b", False),
    ("a.*", "a.b", True),            # '*' at the end
    ("a.*", "a", False),
    ("a.*", "a.", True),
    ("a.*", "a.b.c", False),
    ("a.#", "a", True),
    ("#.a", "a", True),
    ("a.#", "b.a", False),
    ("#.b.#", "b", True),
    ("#.b.#", "x.b.y.z", True),
    ("#.*", "", False),
    ("#.*", "a", True),
    ("*.#", "", False),
    ("*.#", "a.b", True),
    ("a.*.#", "a", False),
    ("a.*.#", "a.b", True),
    ("a.b", "a.b", True),
    ("a.b", "a.bc", False),
    ("A.b", "a.b", False),           # case sensitive
    ("", "", True),
    ("", "a", False),
    ("a", "", False),
]


@pytest.mark.parametrize("binding,key,matches", CASES,
                         ids=["%r~%r" % (b, k) for b, k, _ in CASES])
def test_topic_match(conn, ch, binding, key, matches):
    x = uid("topic")
    ch.exchange_declare(x, "topic", auto_delete=True)
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, binding)
    ch.basic_publish(x, key, b"m")
    assert received(conn, ch, q) == ([b"m"] if matches else [])


def test_topic_several_bindings_deliver_once(conn, ch):
    x = uid("topic")
    ch.exchange_declare(x, "topic", auto_delete=True)
    q = ch.queue_declare("", exclusive=True).method.queue
    for b in ("a.*", "#", "a.b", "*.b"):
        ch.queue_bind(q, x, b)
    ch.basic_publish(x, "a.b", b"once")
    assert received(conn, ch, q) == [b"once"]


def test_topic_unbind(conn, ch):
    x = uid("topic")
    ch.exchange_declare(x, "topic", auto_delete=True)
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "a.*")
    ch.queue_bind(q, x, "#.z")
    ch.queue_unbind(q, x, "a.*")
    ch.basic_publish(x, "a.b", b"1")
    ch.basic_publish(x, "a.z", b"2")
    assert received(conn, ch, q) == [b"2"]


def test_topic_fan_to_many_queues(conn, ch):
    x = uid("topic")
    ch.exchange_declare(x, "topic", auto_delete=True)
    queues = {}
    for b in ("stock.#", "stock.*.nyse", "*.ibm.*", "weather.#"):
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, x, b)
        queues[b] = q
    ch.basic_publish(x, "stock.ibm.nyse", b"s")
    got = {b: received(conn, ch, q) for b, q in queues.items()}
    assert got == {"stock.#": [b"s"], "stock.*.nyse": [b"s"], "*.ibm.*": [b"s"],
                   "weather.#": []}
