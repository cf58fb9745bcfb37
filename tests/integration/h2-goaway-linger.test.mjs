/*
 * h2-goaway-linger.test.mjs: when the gateway ends an HTTP/2 connection itself (here a protocol error: a
 * DATA frame on stream 0), the client gets the GOAWAY that says why, even when it has sent more than the
 * gateway read. Before, the socket was closed with the client's bytes still unread, the kernel answered
 * with a reset, and the client saw only ECONNRESET. Now the gateway flushes the GOAWAY, shuts its write
 * side and drops what the client still sends until the client closes too. Both ports: OTLP/HTTP (h2c) and
 * OTLP/gRPC.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { prerequisites, startGateway, sleep } from '../lib/harness.mjs';

const skip = prerequisites({ needPg: false });
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const GOAWAY = 7;
const PROTOCOL_ERROR = 1;
const BURST = 4 << 20; /* more than the socket buffers hold: the gateway cannot have read it all */

function frame(type, flags, stream, payload = Buffer.alloc(0)) {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

/** The frames in buf (a trailing partial one left out). */
function frames(buf) {
  const out = [];
  for (let off = 0; off + 9 <= buf.length;) {
    const len = buf.readUIntBE(off, 3);
    if (off + 9 + len > buf.length) break;
    out.push({ type: buf[off + 3], stream: buf.readUInt32BE(off + 5) & 0x7fffffff, payload: buf.subarray(off + 9, off + 9 + len) });
    off += 9 + len;
  }
  return out;
}

/** Preface, SETTINGS, a DATA frame on stream 0 (a connection error), then a burst of junk, in one write;
 * what the gateway sent until the connection closed, and the socket's error if any. */
async function offend(port) {
  const sock = net.connect(port, '127.0.0.1');
  const chunks = [];
  let error = null;
  sock.on('data', (d) => chunks.push(d));
  sock.on('error', (e) => { error = e; });
  const closed = new Promise((r) => sock.on('close', r));
  await new Promise((r, j) => { sock.once('connect', r); sock.once('error', j); });
  sock.write(Buffer.concat([PREFACE, frame(4, 0, 0), frame(0, 0, 0, Buffer.alloc(16)), Buffer.alloc(BURST, 0x41)]));
  let timer;
  const done = await Promise.race([closed.then(() => true), new Promise((r) => { timer = setTimeout(r, 10000, false); })]);
  clearTimeout(timer);
  sock.destroy();
  assert.ok(done, 'the connection was still open 10 s after the protocol error');
  return { got: frames(Buffer.concat(chunks)), error };
}

function checkGoaway({ got, error }) {
  assert.equal(error?.code, undefined, `the connection ended with ${error?.code} instead of a clean close`);
  const g = got.find((f) => f.type === GOAWAY);
  assert.ok(g, `no GOAWAY among the frames received (types ${got.map((f) => f.type).join(',')})`);
  assert.equal(g.stream, 0);
  assert.equal(g.payload.readUInt32BE(4), PROTOCOL_ERROR);
}

describe('HTTP/2: the GOAWAY that ends a connection reaches a client that sent more than was read', { skip: skip ?? false }, () => {
  let gw;
  before(async () => {
    gw = await startGateway({ config: { spool: { mode: 'memory' } } });
  });
  after(async () => {
    if (gw) {
      const r = await gw.stop();
      await gw.cleanup();
      assert.deepEqual(r, { code: 0, signal: null });
    }
  });

  test('OTLP/HTTP port (h2c): GOAWAY PROTOCOL_ERROR, then a clean close, not a reset', async () => {
    checkGoaway(await offend(gw.ports.http));
  });

  test('OTLP/gRPC port: GOAWAY PROTOCOL_ERROR, then a clean close, not a reset', async () => {
    checkGoaway(await offend(gw.ports.grpc));
  });

  test('the gateway still answers on both ports afterwards', async () => {
    for (const port of [gw.ports.http, gw.ports.grpc]) {
      const sock = net.connect(port, '127.0.0.1');
      const chunks = [];
      sock.on('data', (d) => chunks.push(d));
      sock.on('error', () => {});
      await new Promise((r) => sock.once('connect', r));
      sock.write(Buffer.concat([PREFACE, frame(4, 0, 0)]));
      await sleep(300);
      sock.destroy();
      assert.ok(frames(Buffer.concat(chunks)).some((f) => f.type === 4), `no SETTINGS from port ${port}`);
    }
  });
});
