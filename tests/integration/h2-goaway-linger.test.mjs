/*
 * h2-goaway-linger.test.mjs: when the gateway ends an HTTP/2 connection itself (here a protocol error: a
 * DATA frame on stream 0), the client gets the GOAWAY that says why, even when it has sent more than the
 * gateway read. Before, the socket was closed with the client's bytes still unread, the kernel answered
 * with a reset, and the client saw only ECONNRESET. Now the gateway flushes the GOAWAY, shuts its write
 * side and drops what the client still sends until the client closes too. Both ports: OTLP/HTTP (h2c) and
 * OTLP/gRPC; and both again under TLS (ALPN h2), where the linger sends close_notify before shutting the
 * write side and drops the client's TLS records unread: the GOAWAY must still be decrypted by the client
 * and the stream end cleanly.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { prerequisites, sleep } from '../lib/harness.mjs';
import { makeCa, issue } from '../lib/certs.mjs';
import { PREFACE, FRAME, ERROR, frame, settings, frames, goawayOf, connectRaw, gatewayFixture } from '../lib/h2raw.mjs';

const skip = prerequisites({ needPg: false });
const BURST = 4 << 20; /* more than the socket buffers hold: the gateway cannot have read it all */

/** Preface, SETTINGS, a DATA frame on stream 0 (a connection error), then a burst of junk, in one write;
 * what the gateway sent until the connection closed, and the socket's error if any. opts: connectRaw's
 * (tls to go through TLS). */
async function offend(port, opts) {
  const sock = await connectRaw(port, opts);
  const alpn = sock.alpnProtocol;
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
  if (opts?.tls) assert.equal(alpn, 'h2', 'TLS without ALPN h2: the connection did not speak HTTP/2');
  assert.ok(done, 'the connection was still open 10 s after the protocol error');
  return { got: frames(Buffer.concat(chunks)), error };
}

/** A new connection to each port of gw (opts: connectRaw's) gets the gateway's SETTINGS. */
async function stillAnswers(gw, opts) {
  for (const port of [gw.ports.http, gw.ports.grpc]) {
    const sock = await connectRaw(port, opts);
    const chunks = [];
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', () => {});
    sock.write(Buffer.concat([PREFACE, settings()]));
    await sleep(300);
    sock.destroy();
    assert.ok(frames(Buffer.concat(chunks)).some((f) => f.type === FRAME.SETTINGS), `no SETTINGS from port ${port}`);
  }
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
    await stillAnswers(fx.gw);
  });
});

describe('HTTP/2 over TLS: the GOAWAY that ends a connection reaches a client that sent more than was read', { skip: skip ?? false }, () => {
  let dir;
  let ca;
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gw-h2-linger-tls-'));
    ca = await makeCa(dir, 'ca');
  });
  /* its after hook runs before the one below: the gateway stops before its certificate files go */
  const fx = gatewayFixture(async () => {
    const server = await issue(dir, ca, 'server');
    return { spool: { mode: 'memory' }, receivers: { tls: { cert_file: server.cert, key_file: server.key } } };
  });
  after(async () => {
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });
  const viaTls = async () => ({ tls: { ca: await fs.readFile(ca.cert) } });

  test('OTLP/HTTP port (TLS, ALPN h2): GOAWAY PROTOCOL_ERROR, then a clean close, not a reset', async () => {
    checkGoaway(await offend(fx.gw.ports.http, await viaTls()));
  });

  test('OTLP/gRPC port (TLS, ALPN h2): GOAWAY PROTOCOL_ERROR, then a clean close, not a reset', async () => {
    checkGoaway(await offend(fx.gw.ports.grpc, await viaTls()));
  });

  test('the gateway still answers on both ports afterwards', async () => {
    await stillAnswers(fx.gw, await viaTls());
  });
});
