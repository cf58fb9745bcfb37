/*
 * h2-goaway-linger.test.mjs: when the gateway ends an HTTP/2 connection itself (here a protocol error: a
 * DATA frame on stream 0), the client gets the GOAWAY that says why, even when it has sent more than the
 * gateway read. Before, the socket was closed with the client's bytes still unread, the kernel answered
 * with a reset, and the client saw only ECONNRESET. Now the gateway flushes the GOAWAY, shuts its write
 * side and drops what the client still sends until the client closes too. Both ports: OTLP/HTTP (h2c) and
 * OTLP/gRPC.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { prerequisites, sleep } from '../lib/harness.mjs';
import { PREFACE, FRAME, ERROR, frame, settings, frames, goawayOf, connectRaw, gatewayFixture } from '../lib/h2raw.mjs';

const skip = prerequisites({ needPg: false });
const BURST = 4 << 20; /* more than the socket buffers hold: the gateway cannot have read it all */

/** Preface, SETTINGS, a DATA frame on stream 0 (a connection error), then a burst of junk, in one write;
 * what the gateway sent until the connection closed, and the socket's error if any. */
async function offend(port) {
  const sock = await connectRaw(port);
  const chunks = [];
  let error = null;
  sock.on('data', (d) => chunks.push(d));
  sock.on('error', (e) => { error = e; });
  const closed = new Promise((r) => sock.on('close', r));
  sock.write(Buffer.concat([PREFACE, settings(), frame(FRAME.DATA, 0, 0, Buffer.alloc(16)), Buffer.alloc(BURST, 0x41)]));
  let timer;
  const done = await Promise.race([closed.then(() => true), new Promise((r) => { timer = setTimeout(r, 10000, false); })]);
  clearTimeout(timer);
  sock.destroy();
  assert.ok(done, 'the connection was still open 10 s after the protocol error');
  return { got: frames(Buffer.concat(chunks)), error };
}

function checkGoaway({ got, error }) {
  assert.equal(error?.code, undefined, `the connection ended with ${error?.code} instead of a clean close`);
  const g = got.find((f) => f.type === FRAME.GOAWAY);
  assert.ok(g, `no GOAWAY among the frames received (types ${got.map((f) => f.type).join(',')})`);
  assert.equal(g.stream, 0);
  assert.equal(goawayOf(g).code, ERROR.PROTOCOL_ERROR);
}

describe('HTTP/2: the GOAWAY that ends a connection reaches a client that sent more than was read', { skip: skip ?? false }, () => {
  const fx = gatewayFixture({ spool: { mode: 'memory' } });

  test('OTLP/HTTP port (h2c): GOAWAY PROTOCOL_ERROR, then a clean close, not a reset', async () => {
    checkGoaway(await offend(fx.gw.ports.http));
  });

  test('OTLP/gRPC port: GOAWAY PROTOCOL_ERROR, then a clean close, not a reset', async () => {
    checkGoaway(await offend(fx.gw.ports.grpc));
  });

  test('the gateway still answers on both ports afterwards', async () => {
    for (const port of [fx.gw.ports.http, fx.gw.ports.grpc]) {
      const sock = await connectRaw(port);
      const chunks = [];
      sock.on('data', (d) => chunks.push(d));
      sock.on('error', () => {});
      sock.write(Buffer.concat([PREFACE, settings()]));
      await sleep(300);
      sock.destroy();
      assert.ok(frames(Buffer.concat(chunks)).some((f) => f.type === FRAME.SETTINGS), `no SETTINGS from port ${port}`);
    }
  });
});
