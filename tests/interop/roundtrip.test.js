'use strict';
// Our own round trip through a real Node.js client (amqplib): publish with confirms, consume,
// ack, and check that bodies and every basic property arrive as sent. Run by
// scripts/interop.sh (node's test runner) against the broker in the URL env var, the same
// variable amqplib's own suite reads; amqplib comes from the cache that script installs
// (NODE_PATH). Every expectation here holds on RabbitMQ 3.10 too.
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const amqp = require('amqplib');

const URL = process.env.URL || 'amqp://guest:guest@127.0.0.1:5672/%2f';
const USER = decodeURIComponent(new globalThis.URL(URL).username || 'guest');
const uid = (what) => `interop.${what}.${crypto.randomBytes(6).toString('hex')}`;

const connections = [];
async function connect() {
  const c = await amqp.connect(URL);
  connections.push(c);
  return c;
}
after(async () => {
  for (const c of connections) await c.close().catch(() => {});
});

// Consumes from `queue` on `ch`; resolves with the first `n` deliveries.
function take(ch, queue, n, opts = {}) {
  return new Promise((resolve, reject) => {
    const got = [];
    ch.consume(queue, (m) => {
      if (m === null) return reject(new Error('consumer cancelled by the broker'));
      got.push(m);
      if (got.length === n) resolve(got);
    }, opts).catch(reject);
  });
}

const BODIES = [
  ['empty', Buffer.alloc(0)],
  ['utf-8 text', Buffer.from('héllo wörld — ✓ 🐇')],
  ['every byte value', Buffer.from([...Array(256).keys()])],
  // Larger than RabbitMQ's frame_max (131072): split into several body frames.
  ['300 KiB random', crypto.randomBytes(300 * 1024)],
];

const PROPS = {
  contentType: 'application/octet-stream',
  contentEncoding: 'identity',
  headers: {
    text: 'a string',
    int: 42,
    negative: -7,
    float: 1.5,
    yes: true,
    no: false,
    nested: { inner: 'value', n: 1 },
    list: [1, 'two', true],
  },
  deliveryMode: 2,
  priority: 5,
  correlationId: 'corr-1',
  replyTo: 'reply.queue',
  expiration: '600000',
  messageId: 'msg-1',
  timestamp: 1700000000,
  type: 'interop.test',
  userId: USER,
  appId: 'warren-interop',
};

test('bodies and properties survive a confirmed publish, a consume and acks', async () => {
  const c = await connect();
  const ch = await c.createConfirmChannel();
  const ex = uid('ex');
  const q = uid('q');
  await ch.assertExchange(ex, 'direct', { durable: false, autoDelete: true });
  const { queue } = await ch.assertQueue(q, { durable: false, exclusive: true });
  assert.equal(queue, q);
  await ch.bindQueue(q, ex, 'rk');

  const confirmed = BODIES.map(([name, body], i) => new Promise((resolve, reject) => {
    ch.publish(ex, 'rk', body, { ...PROPS, messageId: `msg-${i}`, headers: { ...PROPS.headers, name } },
      (err) => (err ? reject(err) : resolve()));
  }));
  await Promise.all(confirmed);
  await ch.waitForConfirms();

  const check = await ch.checkQueue(q);
  assert.equal(check.messageCount, BODIES.length);

  const cons = await c.createChannel();
  await cons.prefetch(BODIES.length);
  const got = await take(cons, q, BODIES.length, { noAck: false });
  got.forEach((m, i) => {
    const [name, body] = BODIES[i];
    assert.ok(m.content.equals(body), `body of ${name} (${m.content.length} bytes, sent ${body.length})`);
    assert.equal(m.fields.exchange, ex);
    assert.equal(m.fields.routingKey, 'rk');
    assert.equal(m.fields.redelivered, false);
    assert.equal(m.fields.deliveryTag, i + 1);
    const p = m.properties;
    assert.equal(p.contentType, PROPS.contentType);
    assert.equal(p.contentEncoding, PROPS.contentEncoding);
    assert.deepEqual(p.headers, { ...PROPS.headers, name });
    assert.equal(p.deliveryMode, 2);
    assert.equal(p.priority, 5);
    assert.equal(p.correlationId, 'corr-1');
    assert.equal(p.replyTo, 'reply.queue');
    assert.equal(p.expiration, '600000');
    assert.equal(p.messageId, `msg-${i}`);
    assert.equal(p.timestamp, 1700000000);
    assert.equal(p.type, 'interop.test');
    assert.equal(p.userId, USER);
    assert.equal(p.appId, 'warren-interop');
    assert.equal(p.clusterId, undefined);
  });
  // Ack each one (multiple=false); then nothing is left in the queue.
  for (const m of got) cons.ack(m);
  await cons.close();
  const after = await ch.checkQueue(q);
  assert.equal(after.messageCount, 0);
  assert.equal(after.consumerCount, 0);
  await ch.close();
});

test('nacked and unacked messages come back redelivered; acked ones do not', async () => {
  const c = await connect();
  const ch = await c.createConfirmChannel();
  const q = uid('redeliver');
  await ch.assertQueue(q, { durable: false, exclusive: true });
  for (const body of ['one', 'two', 'three']) ch.sendToQueue(q, Buffer.from(body), { messageId: body });
  await ch.waitForConfirms();

  const cons = await c.createChannel();
  await cons.prefetch(3);
  const first = await take(cons, q, 3);
  assert.deepEqual(first.map((m) => m.content.toString()), ['one', 'two', 'three']);
  cons.ack(first[0]);                 // 'one' is done
  cons.nack(first[1], false, true);   // 'two' goes back to the queue at once
  await cons.close();                 // 'three' was never acked: back too

  const again = await c.createChannel();
  const second = await take(again, q, 2);
  const seen = second.map((m) => [m.content.toString(), m.properties.messageId, m.fields.redelivered]).sort();
  assert.deepEqual(seen, [['three', 'three', true], ['two', 'two', true]]);
  for (const m of second) again.ack(m);
  await again.close();
  assert.equal((await ch.checkQueue(q)).messageCount, 0);
  const none = await ch.get(q);
  assert.equal(none, false);
  await ch.close();
});

test('basic.get round trip with ack, and message count', async () => {
  const c = await connect();
  const ch = await c.createConfirmChannel();
  const q = uid('get');
  await ch.assertQueue(q, { durable: false, exclusive: true });
  ch.sendToQueue(q, Buffer.from('first'), { contentType: 'text/plain' });
  ch.sendToQueue(q, Buffer.from('second'), { contentType: 'text/plain' });
  await ch.waitForConfirms();
  const m = await ch.get(q, { noAck: false });
  assert.equal(m.content.toString(), 'first');
  assert.equal(m.properties.contentType, 'text/plain');
  assert.equal(m.fields.messageCount, 1); // messages left after this one
  assert.equal(m.fields.exchange, '');
  assert.equal(m.fields.routingKey, q);
  ch.ack(m);
  const m2 = await ch.get(q, { noAck: true });
  assert.equal(m2.content.toString(), 'second');
  assert.equal(m2.fields.messageCount, 0);
  assert.equal(await ch.get(q), false);
  await ch.close();
});

test('mandatory publish with no route: basic.return 312 NO_ROUTE, then the confirm', async () => {
  const c = await connect();
  const ch = await c.createConfirmChannel();
  const order = [];
  const returned = new Promise((resolve) => ch.once('return', (m) => { order.push('return'); resolve(m); }));
  const confirmed = new Promise((resolve, reject) => ch.publish('amq.direct', uid('nowhere'),
    Buffer.from('lost'), { mandatory: true, messageId: 'm-r' },
    (err) => { order.push('confirm'); return err ? reject(err) : resolve(); }));
  const m = await returned;
  await confirmed;
  assert.equal(m.fields.replyCode, 312);
  assert.equal(m.fields.replyText, 'NO_ROUTE');
  assert.equal(m.fields.exchange, 'amq.direct');
  assert.equal(m.content.toString(), 'lost');
  assert.equal(m.properties.messageId, 'm-r');
  assert.deepEqual(order, ['return', 'confirm']);
  await ch.close();
});

test('request/reply round trip through direct reply-to', async () => {
  const c = await connect();
  const server = await c.createChannel();
  const client = await c.createChannel();
  const q = uid('rpc');
  await server.assertQueue(q, { durable: false, exclusive: true });
  await server.consume(q, (m) => {
    server.publish('', m.properties.replyTo, Buffer.from(m.content.toString().toUpperCase()),
      { correlationId: m.properties.correlationId });
    server.ack(m);
  });
  let gotReply;
  const reply = new Promise((resolve) => { gotReply = resolve; });
  // The consumer must be in place (consume-ok) before a publish names amq.rabbitmq.reply-to.
  await client.consume('amq.rabbitmq.reply-to', (m) => gotReply(m), { noAck: true });
  client.sendToQueue(q, Buffer.from('ping'), { replyTo: 'amq.rabbitmq.reply-to', correlationId: 'c-42' });
  const m = await reply;
  assert.equal(m.content.toString(), 'PING');
  assert.equal(m.properties.correlationId, 'c-42');
  assert.match(m.fields.routingKey, /^amq\.rabbitmq\.reply-to\./);
  await client.close();
  await server.close();
});
