"""The memory alarm: publishers are blocked (connection.blocked) while messages
held in memory exceed the high watermark, and resume once consumers drain them.
Warren-only (it starts its own broker with a tiny watermark)."""

import os
import time

import pika
import pytest

from helpers import uid
from warren_proc import Warren

pytestmark = pytest.mark.skipif(bool(os.environ.get("WARREN_TEST_URL")),
                                reason="starts its own Warren with a small watermark")


def test_publishers_are_blocked_and_resume(tmp_path):
    w = Warren(tmp_path, "--memory-high-watermark", "2000000")
    try:
        params = w.params("guest", "guest", "/")
        events = []
        pub = pika.BlockingConnection(params)
        pub.add_on_connection_blocked_callback(lambda *a: events.append("blocked"))
        pub.add_on_connection_unblocked_callback(lambda *a: events.append("unblocked"))
        pch = pub.channel()
        q = uid("mem")
        pch.queue_declare(q)
        body = b"x" * 200_000
        # ~3 MB of messages with no consumer: past the 2 MB watermark.
        for _ in range(15):
            pch.basic_publish("", q, body)
        deadline = time.monotonic() + 10
        while "blocked" not in events and time.monotonic() < deadline:
            pub.process_data_events(time_limit=0.1)
        assert events == ["blocked"], events

        # A consumer on another connection is not blocked and drains the queue.
        con = pika.BlockingConnection(params)
        cch = con.channel()
        got = 0
        for _method, _props, _body in cch.consume(q, auto_ack=True, inactivity_timeout=5):
            if _method is None:
                break
            got += 1
            if got == 15:
                break
        assert got == 15
        deadline = time.monotonic() + 10
        while "unblocked" not in events and time.monotonic() < deadline:
            pub.process_data_events(time_limit=0.1)
        assert events == ["blocked", "unblocked"], events
        # Publishing works again.
        pch.basic_publish("", q, b"after")
        pub.close()
        con.close()
        assert "memory alarm" in w.log()
    finally:
        w.stop()
