"""aio-pika (asyncio, on aiormq) as a client: publish and consume with publisher confirms,
direct reply-to and aio-pika's RPC pattern, and a robust connection that comes back after
the broker restarts.

Each test runs its own event loop (asyncio.run), so no pytest plugin is needed.
"""

import asyncio
import os

import aio_pika
import pytest
from aio_pika.patterns import RPC

from helpers import uid
from warren_proc import Warren

# How long one awaited step may take before the test fails as a hang.
STEP = 30


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=100))


def test_publish_and_consume(broker):
    async def main():
        conn = await aio_pika.connect(broker.url)
        async with conn:
            ch = await conn.channel()  # publisher confirms on: publish waits for the ack
            q = await ch.declare_queue(uid("aio"), exclusive=True)
            for i in range(3):
                await ch.default_exchange.publish(
                    aio_pika.Message(b"m%d" % i, correlation_id="c%d" % i,
                                     headers={"n": i}, content_type="text/plain",
                                     delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=q.name)
            got = []
            async with q.iterator() as it:
                async for message in it:
                    async with message.process():
                        got.append((message.body, message.correlation_id, message.headers,
                                    message.content_type, message.delivery_mode,
                                    message.routing_key, message.redelivered))
                    if len(got) == 3:
                        break
            assert got == [(b"m%d" % i, "c%d" % i, {"n": i}, "text/plain",
                            aio_pika.DeliveryMode.PERSISTENT, q.name, False) for i in range(3)]
            # All acked: nothing left.
            assert await q.get(fail=False) is None

    run(main())


def test_unroutable_mandatory_publish_is_returned(broker):
    async def main():
        conn = await aio_pika.connect(broker.url)
        async with conn:
            ch = await conn.channel(on_return_raises=True)
            with pytest.raises(aio_pika.exceptions.DeliveryError) as ei:
                await ch.default_exchange.publish(aio_pika.Message(b"lost"),
                                                  routing_key=uid("nowhere"), mandatory=True)
            assert ei.value.message.body == b"lost"

    run(main())


def test_direct_reply_to_round_trip(broker):
    async def main():
        client = await aio_pika.connect(broker.url)
        server = await aio_pika.connect(broker.url)
        async with client, server:
            sch = await server.channel()
            requests = await sch.declare_queue(uid("rpc-requests"), auto_delete=True)

            async def serve(message):
                async with message.process():
                    assert message.reply_to.startswith("amq.rabbitmq.reply-to.")
                    await sch.default_exchange.publish(
                        aio_pika.Message(message.body.upper(),
                                         correlation_id=message.correlation_id),
                        routing_key=message.reply_to)

            await requests.consume(serve)

            cch = await client.channel()
            replies = await cch.declare_queue("amq.rabbitmq.reply-to", passive=True)
            answers = {}
            done = asyncio.Event()

            async def on_reply(message):
                answers[message.correlation_id] = (message.body, message.routing_key)
                if len(answers) == 2:
                    done.set()

            await replies.consume(on_reply, no_ack=True)
            for cid, body in [("a", b"ping"), ("b", b"pong")]:
                await cch.default_exchange.publish(
                    aio_pika.Message(body, correlation_id=cid,
                                     reply_to="amq.rabbitmq.reply-to"),
                    routing_key=requests.name)
            await asyncio.wait_for(done.wait(), STEP)
            assert {k: v[0] for k, v in answers.items()} == {"a": b"PING", "b": b"PONG"}
            assert all(v[1].startswith("amq.rabbitmq.reply-to.") for v in answers.values())

    run(main())


def test_rpc_pattern(broker):
    # aio_pika.patterns.RPC: a server-named reply queue bound to a headers exchange, the
    # callee's queue named after the method. Not closed here: RPC.close() unbinds the
    # reply queue after it was auto-deleted (see test_rpc_pattern_close).
    async def main():
        method = uid("multiply")
        callee_conn = await aio_pika.connect(broker.url)
        caller_conn = await aio_pika.connect(broker.url)
        async with callee_conn, caller_conn:
            callee = await RPC.create(await callee_conn.channel())

            async def multiply(*, x, y):
                return x * y

            await callee.register(method, multiply, auto_delete=True)
            caller = await RPC.create(await caller_conn.channel())
            results = await asyncio.wait_for(asyncio.gather(
                *(caller.call(method, kwargs={"x": i, "y": 7}) for i in range(5))), STEP)
            assert results == [i * 7 for i in range(5)]

    run(main())


def test_rpc_pattern_close(broker):
    async def main():
        conn = await aio_pika.connect(broker.url)
        async with conn:
            rpc = await RPC.create(await conn.channel())
            await asyncio.wait_for(rpc.close(), STEP)

    run(main())


@pytest.fixture
def own_warren(tmp_path):
    if os.environ.get("WARREN_TEST_URL"):
        pytest.skip("restarts a Warren process of its own")
    w = Warren(tmp_path)
    yield w
    w.stop()


def test_robust_connection_comes_back_after_a_restart(own_warren):
    # connect_robust reconnects when the broker restarts (same port, same data directory),
    # then declares its queues again and restarts its consumers on the same channel objects.
    w = own_warren
    url = "amqp://guest:guest@127.0.0.1:%d/" % w.amqp_port

    async def main():
        conn = await aio_pika.connect_robust(url, reconnect_interval=0.2)
        async with conn:
            reconnected = asyncio.Event()
            conn.reconnect_callbacks.add(lambda *_: reconnected.set())
            ch = await conn.channel()
            consumed = await ch.declare_queue(uid("robust"), durable=True)
            kept = await ch.declare_queue(uid("robust-kept"), durable=True)
            got = asyncio.Queue()

            async def on_message(message):
                async with message.process():
                    await got.put(message.body)

            await consumed.consume(on_message)
            await ch.default_exchange.publish(aio_pika.Message(b"before"),
                                              routing_key=consumed.name)
            assert await asyncio.wait_for(got.get(), STEP) == b"before"
            await ch.default_exchange.publish(
                aio_pika.Message(b"kept", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=kept.name)

            # SIGTERM (clients get 320), then the same command line again.
            await asyncio.to_thread(w.restart)
            await asyncio.wait_for(reconnected.wait(), STEP)

            # The same channel and consumer objects work on the new connection.
            await ch.default_exchange.publish(aio_pika.Message(b"after"),
                                              routing_key=consumed.name)
            assert await asyncio.wait_for(got.get(), STEP) == b"after"
            # The persistent message was in the data directory the broker came back on.
            message = await kept.get(timeout=STEP)
            assert message.body == b"kept"
            await message.ack()
            await consumed.delete(if_unused=False)
            await kept.delete()

    run(main())
