"""Hostile input through the HTTP API: names AMQP cannot carry, regexes built to be expensive.

Each is refused whole, at once, with a text that says what was wrong, and the broker's memory
stays where it was (see docs/SECURITY.md). The AMQP side is covered by tests/hostile.rs.
"""

import os
import time

import pytest

from warren_proc import Warren, http

pytestmark = pytest.mark.skipif(bool(os.environ.get("WARREN_TEST_URL")),
                                reason="needs a Warren process of its own")


@pytest.fixture(scope="module")
def warren(tmp_path_factory):
    w = Warren(tmp_path_factory.mktemp("limits"))
    yield w
    w.stop()


def rss(w):
    with open("/proc/%d/status" % w.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def post(w, body):
    return http("POST", w.url + "/api/definitions", "guest", "guest", body=body)


def exported(w):
    status, _, body = http("GET", w.url + "/api/definitions", "guest", "guest")
    assert status == 200
    return body


@pytest.mark.parametrize("entry", [
    {"queues": [{"name": "q" * 300, "vhost": "/", "durable": True, "auto_delete": False,
                 "arguments": {}}]},
    {"exchanges": [{"name": "x" * 70000, "vhost": "/", "type": "direct", "durable": True,
                    "auto_delete": False, "internal": False, "arguments": {}}]},
    {"bindings": [{"source": "amq.direct", "vhost": "/", "destination": "q",
                   "destination_type": "queue", "routing_key": "k" * 256, "arguments": {}}],
     "queues": [{"name": "q", "vhost": "/", "durable": True, "auto_delete": False,
                 "arguments": {}}]},
    {"vhosts": [{"name": "v" * 256}]},
], ids=["queue", "exchange", "routing-key", "vhost"])
def test_names_longer_than_amqp_allows_are_refused(warren, entry):
    status, _, body = post(warren, entry)
    assert status == 400, body
    assert "AMQP allows at most 255" in body["reason"], body
    after = exported(warren)
    for kind in ("queues", "exchanges", "bindings", "vhosts"):
        for item in after.get(kind, []):
            for field in ("name", "routing_key"):
                assert len(item.get(field, "")) <= 255, item


def test_a_megabyte_regex_is_refused_at_once_and_costs_nothing(warren):
    before = rss(warren)
    started = time.monotonic()
    status, _, body = post(warren, {"permissions": [
        {"user": "guest", "vhost": "/", "configure": "(a|b)*" * 170000, "write": ".*",
         "read": ".*"}]})
    elapsed = time.monotonic() - started
    assert status == 400, body
    assert "at most 16384 are accepted" in body["reason"], body
    assert elapsed < 2.0, elapsed
    assert rss(warren) - before < 32 * 1024 * 1024


def test_a_regex_that_compiles_too_large_is_refused(warren):
    # Short, but its compiled program would pass the 1 MiB size limit.
    status, _, body = post(warren, {"policies": [
        {"name": "p", "vhost": "/", "pattern": "\\w{1000}\\w{1000}\\w{1000}", "apply-to": "queues",
         "definition": {"max-length": 1}, "priority": 0}]})
    assert status == 400, body
    assert "size limit" in body["reason"], body
