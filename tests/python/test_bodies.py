"""Message bodies of many sizes round-trip intact, including across frame boundaries."""

import hashlib
import os

import pytest

from helpers import Collector, drain, pump

SIZES = [0, 1, 4095, 4096, 4097, 131072 - 8, 131072 - 7, 128 * 1024 + 1, 5 * 1024 * 1024]


def body_of(n):
    # deterministic, non-repeating-per-frame content so misordered frames are caught
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b"%d" % i).digest()
        i += 1
    return bytes(out[:n])


@pytest.mark.parametrize("frame_max", [131072, 4096])
@pytest.mark.parametrize("size", SIZES)
def test_body_round_trip_get(connect, size, frame_max):
    c = connect(frame_max=frame_max)
    ch = c.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    body = body_of(size)
    ch.basic_publish("", q, body)
    m, p, got = drain(c, ch, q, n=1)[0]
    assert len(got) == size
    assert got == body


@pytest.mark.parametrize("size", [0, 1, 128 * 1024 + 1, 5 * 1024 * 1024])
def test_body_round_trip_consume_small_frames(connect, size):
    c = connect(frame_max=4096)
    ch = c.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    body = body_of(size)
    col = Collector()
    ch.basic_consume(q, col, auto_ack=True)
    ch.basic_publish("", q, body)
    ch.basic_publish("", q, b"after")
    pump(c, lambda: len(col.msgs) == 2, timeout=30)
    assert col.bodies[0] == body
    assert col.bodies[1] == b"after"


def test_publisher_and_consumer_with_different_frame_max(connect):
    pub = connect(frame_max=4096).channel()
    c = connect(frame_max=131072)
    sub = c.channel()
    q = sub.queue_declare("", exclusive=False, auto_delete=True).method.queue
    body = os.urandom(300 * 1024)
    pub.basic_publish("", q, body)
    m, p, got = drain(c, sub, q, n=1)[0]
    assert got == body
    sub.queue_delete(q)
