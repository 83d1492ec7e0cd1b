'use strict';
// A plain TCP relay: listens on localhost:5672 (127.0.0.1 and ::1) and forwards every
// connection, byte for byte, to the broker under test.
//
// Why: a few of amqplib's own tests ignore the URL env var and connect to amqp://localhost
// (port 5672), one of them over IPv6 (amqp://[::1]). scripts/interop.sh starts this relay
// where port 5672 is free and the broker is not, so those tests reach the same broker as the
// rest of the suite. A relay cannot reproduce the timing of a broker that closes or resets
// its socket (the client sees the relay's socket, which closes a little later), so the script
// puts Warren itself on 127.0.0.1:5672 when it can, and relays only [::1]:5672 to it.
//
//   node relay.js TARGET_HOST TARGET_PORT [LISTEN_PORT=5672]
// Prints "relay listening on ..." (or "relay cannot listen on ...") once per address, then
// "relay ready".
// Each side's FIN is passed on to the other side, and so is an error (as a reset).
//
// RELAY_TRACE=FILE appends one line per AMQP frame (time, connection, direction, channel,
// method) and per socket end to FILE: a cheap way to see frame order and who closed first.
const net = require('net');
const fs = require('fs');

const [host, port, listenPort = '5672'] = process.argv.slice(2);
if (!host || !port) {
  console.error('usage: node relay.js TARGET_HOST TARGET_PORT [LISTEN_PORT]');
  process.exit(2);
}

const traceFile = process.env.RELAY_TRACE;
const t0 = Date.now();
function trace(line) {
  if (traceFile) fs.appendFileSync(traceFile, `${String(Date.now() - t0).padStart(7)} ms ${line}\n`);
}

// Names for the methods worth seeing in a trace; others print as class.method numbers.
const METHODS = {
  '10.10': 'connection.start', '10.11': 'connection.start-ok', '10.30': 'connection.tune',
  '10.31': 'connection.tune-ok', '10.40': 'connection.open', '10.41': 'connection.open-ok',
  '10.50': 'connection.close', '10.51': 'connection.close-ok', '10.60': 'connection.blocked',
  '10.61': 'connection.unblocked', '20.10': 'channel.open', '20.11': 'channel.open-ok',
  '20.20': 'channel.flow', '20.21': 'channel.flow-ok', '20.40': 'channel.close',
  '20.41': 'channel.close-ok', '40.10': 'exchange.declare', '40.11': 'exchange.declare-ok',
  '40.20': 'exchange.delete', '40.21': 'exchange.delete-ok', '40.30': 'exchange.bind',
  '40.31': 'exchange.bind-ok', '40.40': 'exchange.unbind', '40.51': 'exchange.unbind-ok',
  '50.10': 'queue.declare', '50.11': 'queue.declare-ok', '50.20': 'queue.bind',
  '50.21': 'queue.bind-ok', '50.30': 'queue.purge', '50.31': 'queue.purge-ok',
  '50.40': 'queue.delete', '50.41': 'queue.delete-ok', '50.50': 'queue.unbind',
  '50.51': 'queue.unbind-ok', '60.10': 'basic.qos', '60.11': 'basic.qos-ok',
  '60.20': 'basic.consume', '60.21': 'basic.consume-ok', '60.30': 'basic.cancel',
  '60.31': 'basic.cancel-ok', '60.40': 'basic.publish', '60.50': 'basic.return',
  '60.60': 'basic.deliver', '60.70': 'basic.get', '60.71': 'basic.get-ok',
  '60.72': 'basic.get-empty', '60.80': 'basic.ack', '60.90': 'basic.reject',
  '60.110': 'basic.recover', '60.111': 'basic.recover-ok', '60.120': 'basic.nack',
  '85.10': 'confirm.select', '85.11': 'confirm.select-ok', '90.10': 'tx.select',
  '90.11': 'tx.select-ok', '90.20': 'tx.commit', '90.21': 'tx.commit-ok',
  '90.30': 'tx.rollback', '90.31': 'tx.rollback-ok',
};

// Splits one direction's byte stream into frames and traces them (method frames with their
// reply code and text for the close methods; content header/body frames as one word).
function framer(tag, skipHeader) {
  let buf = Buffer.alloc(0);
  let skip = skipHeader ? 8 : 0;
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    if (skip) {
      const n = Math.min(skip, buf.length);
      if (n === 8 && skip === 8) trace(`${tag} protocol header ${buf.subarray(0, 8).toString('latin1').replace(/[^ -~]/g, (c) => c.charCodeAt(0))}`);
      buf = buf.subarray(n);
      skip -= n;
    }
    while (buf.length >= 7) {
      const size = buf.readUInt32BE(3);
      if (buf.length < 8 + size) break;
      const type = buf[0], channel = buf.readUInt16BE(1), payload = buf.subarray(7, 7 + size);
      let what;
      if (type === 1) {
        const key = `${payload.readUInt16BE(0)}.${payload.readUInt16BE(2)}`;
        what = METHODS[key] || key;
        if (key === '10.50' || key === '20.40') {
          const len = payload[6];
          what += ` ${payload.readUInt16BE(4)} ${payload.subarray(7, 7 + len).toString()}`;
        }
        if (key === '60.80' || key === '60.120') {
          what += ` tag=${payload.readBigUInt64BE(4)} multiple=${(payload[12] & 1) === 1}`;
        }
      } else {
        what = { 2: 'content-header', 3: 'content-body', 8: 'heartbeat' }[type] || `frame type ${type}`;
      }
      trace(`${tag} ch=${channel} ${what}`);
      buf = buf.subarray(8 + size);
    }
  };
}

let connections = 0;
function relay(client) {
  const id = ++connections;
  const upstream = net.connect({ host, port: Number(port) });
  if (traceFile) {
    client.on('data', framer(`#${id} C->S`, true));
    upstream.on('data', framer(`#${id} S->C`, false));
    client.on('end', () => trace(`#${id} client sent FIN`));
    upstream.on('end', () => trace(`#${id} server sent FIN`));
    client.on('error', (e) => trace(`#${id} client socket error ${e.code}`));
    upstream.on('error', (e) => trace(`#${id} server socket error ${e.code}`));
  }
  // pipe() passes a FIN on (after the data before it); an error on one side (a reset, or a
  // write after the peer closed) resets the other side, so the client sees what it would
  // have seen talking to the broker directly.
  client.pipe(upstream);
  upstream.pipe(client);
  const reset = (other) => () => {
    if (typeof other.resetAndDestroy === 'function' && other._handle) other.resetAndDestroy();
    else other.destroy();
  };
  client.on('error', reset(upstream));
  upstream.on('error', reset(client));
  client.on('close', () => upstream.end());
  upstream.on('close', () => client.end());
}

// RELAY_ADDRESSES (comma-separated, default "127.0.0.1,::1") says where to listen. An address
// that cannot be bound (the port is taken there) is reported and left out; the relay exits only
// when it could bind none.
const addresses = (process.env.RELAY_ADDRESSES || '127.0.0.1,::1').split(',').filter(Boolean);
let pending = addresses.length;
let bound = 0;
function settled() {
  if (--pending > 0) return;
  if (bound === 0) process.exit(1);
  console.log('relay ready');
}
for (const address of addresses) {
  const server = net.createServer(relay);
  server.on('error', (e) => {
    console.log(`relay cannot listen on [${address}]:${listenPort}: ${e.code || e.message}`);
    settled();
  });
  server.listen({ host: address, port: Number(listenPort), ipv6Only: address.includes(':') }, () => {
    bound++;
    console.log(`relay listening on [${address}]:${listenPort} -> ${host}:${port}`);
    settled();
  });
}
