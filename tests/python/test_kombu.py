"""kombu (py-amqp transport) producer/consumer round trips."""

import socket

import kombu
import pytest
from kombu import Connection, Consumer, Exchange, Producer, Queue

from helpers import uid


@pytest.fixture
def kconn(broker):
    with Connection(broker.url, connect_timeout=10) as c:
        c.connect()
        yield c


def consume(kconn, queues, n, timeout=10, ack=True):
    got = []

    def on_message(body, message):
        got.append((body, message))
        if ack:
            message.ack()

    with Consumer(kconn, queues=queues, callbacks=[on_message], accept=["json", "pickle"]):
        while len(got) < n:
            try:
                kconn.drain_events(timeout=timeout)
            except socket.timeout:
                raise AssertionError("timed out after %d of %d messages" % (len(got), n))
    return got


def test_kombu_direct_round_trip(kconn):
    ex = Exchange(uid("kx"), type="direct", auto_delete=True)
    q = Queue(uid("kq"), exchange=ex, routing_key="work")
    producer = Producer(kconn.channel(), exchange=ex, serializer="json")
    producer.publish({"n": 0}, routing_key="work", declare=[q])
    for i in range(1, 10):
        producer.publish({"n": i}, routing_key="work")
    producer.publish({"n": -1}, routing_key="elsewhere")  # not routed
    got = consume(kconn, [q], 10)
    assert [b["n"] for b, _ in got] == list(range(10))
    assert all(m.acknowledged for _, m in got)
    # all acked: nothing left
    ch = kconn.channel()
    assert q(ch).queue_declare(passive=True).message_count == 0
    q(ch).delete()


def test_kombu_topic_round_trip(kconn):
    ex = Exchange(uid("kt"), type="topic", auto_delete=True)
    qa = Queue(uid("ka"), exchange=ex, routing_key="logs.*.error", auto_delete=True)
    qb = Queue(uid("kb"), exchange=ex, routing_key="logs.#", auto_delete=True)
    producer = Producer(kconn.channel(), exchange=ex, serializer="json")
    producer.declare()
    for q in (qa, qb):
        q(kconn.channel()).declare()
    producer.publish({"k": "web.error"}, routing_key="logs.web.error")
    producer.publish({"k": "web.info"}, routing_key="logs.web.info")
    producer.publish({"k": "db.error"}, routing_key="logs.db.error")
    got_a = consume(kconn, [qa], 2)
    got_b = consume(kconn, [qb], 3)
    assert [b["k"] for b, _ in got_a] == ["web.error", "db.error"]
    assert sorted(b["k"] for b, _ in got_b) == ["db.error", "web.error", "web.info"]
    assert got_a[0][1].delivery_info["routing_key"] == "logs.web.error"


def test_kombu_reject_requeue_and_redelivery(kconn):
    q = Queue(uid("kr"), auto_delete=True)
    producer = Producer(kconn.channel(), serializer="json")
    producer.publish({"x": 1}, routing_key=q.name, declare=[q])
    seen = []

    def on_message(body, message):
        seen.append(message.delivery_info["redelivered"])
        if len(seen) == 1:
            message.requeue()
        else:
            message.ack()

    with Consumer(kconn, queues=[q], callbacks=[on_message], accept=["json"]):
        while len(seen) < 2:
            kconn.drain_events(timeout=10)
    assert seen == [False, True]


def test_kombu_simple_queue(kconn):
    name = uid("ks")
    sq = kconn.SimpleQueue(name, queue_opts={"auto_delete": True})
    try:
        for i in range(5):
            sq.put({"i": i})
        out = []
        for _ in range(5):
            m = sq.get(block=True, timeout=10)
            out.append(m.payload["i"])
            m.ack()
        assert out == list(range(5))
        with pytest.raises(sq.Empty):
            sq.get(block=False)
    finally:
        sq.close()


def test_kombu_qos_and_manual_ack(kconn):
    q = Queue(uid("kq"), auto_delete=True)
    producer = Producer(kconn.channel(), serializer="json")
    producer.publish({"i": 0}, routing_key=q.name, declare=[q])
    for i in range(1, 6):
        producer.publish({"i": i}, routing_key=q.name)
    pending, seen = [], []

    def on_message(body, message):
        pending.append(message)
        seen.append(body["i"])

    # prefetch_count makes kombu send basic.qos before basic.consume
    with Consumer(kconn, queues=[q], callbacks=[on_message], accept=["json"],
                  prefetch_count=2):
        while len(seen) < 2:
            kconn.drain_events(timeout=10)
        with pytest.raises(socket.timeout):
            kconn.drain_events(timeout=0.3)
        assert len(pending) == 2
        while len(seen) < 6:
            pending.pop(0).ack()
            kconn.drain_events(timeout=10)
            assert len(pending) <= 2
        for m in pending:
            m.ack()
    assert seen == list(range(6))
