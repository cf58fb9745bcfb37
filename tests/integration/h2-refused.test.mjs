/*
 * h2-refused.test.mjs: an HTTP/2 request refused before its body is complete (401 with receivers.auth on,
 * a gRPC message refused on its length prefix) does not keep its stream, nor its connection, open when the
 * client never ends its side. The answer reaches the client first; then the stream is reset NO_ERROR (RFC
 * 9113 §8.1), or CANCEL at body_timeout_ms when the client does not take the answer; with no stream left
 * the connection gets its idle GOAWAY. Before, such a stream lived for ever and a client could fill every
 * connection slot with them. Both ports: OTLP/HTTP (plain requests and gRPC calls) and OTLP/gRPC.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import http2 from 'node:http2';
import { once } from 'node:events';
import { prerequisites, metric } from '../lib/harness.mjs';
import { traceRequest, genaiSpan, toProtobuf, decodeStatus, grpcFrame, GRPC_EXPORT_PATH } from '../lib/otlp.mjs';
import { idleGoaway, closedAfter, gatewayFixture } from '../lib/h2raw.mjs';

const skip = prerequisites({ needPg: false });
const TOKEN = 'tok-h2-refused-0123456789';
const BODY_MS = 1500;
const IDLE_MS = 2000;
const MAX = 64 * 1024;
const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL } = http2.constants;
const PB = { 'content-type': 'application/x-protobuf' };
const GRPC = { 'content-type': 'application/grpc', te: 'trailers' };

/** A request on `session` whose body is `chunk` and whose side is never ended. head: the response headers;
 * body: its DATA once the server ended its side; closed: { ms, rstCode } when the stream closed, from the
 * response on, or null if it was still open after waitMs. */
function heldOpen(session, headers, chunk, waitMs) {
  const req = session.request({ ':method': 'POST', ':path': '/v1/traces', ...headers });
  req.on('error', () => {});
  const chunks = [];
  req.on('data', (d) => chunks.push(d));
  const head = once(req, 'response').then(([h]) => h);
  const closed = closedAfter(req, head, waitMs);
  const body = once(req, 'end').then(() => Buffer.concat(chunks));
  req.write(chunk);
  return { req, head, body, closed };
}

/** The 5-byte gRPC message prefix: uncompressed, len bytes. */
function prefix(len) {
  const b = Buffer.alloc(5);
  b.writeUInt32BE(len, 1);
  return b;
}

describe('HTTP/2: a refused stream the client keeps open is reset, and its connection goes idle', { skip: skip ?? false }, () => {
  let dir;
  const good = () => toProtobuf(traceRequest([genaiSpan()]));
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gw-h2-refused-'));
    await fs.writeFile(path.join(dir, 'tokens'), `${TOKEN}\n`);
  });
  /* its after hook runs before the one below: the gateway stops before its tokens file goes */
  const fx = gatewayFixture(() => ({
    spool: { mode: 'memory' },
    receivers: {
      max_request_bytes: MAX,
      auth: { tokens_file: path.join(dir, 'tokens') },
      http: { body_timeout_ms: `${BODY_MS}ms`, idle_timeout_ms: `${IDLE_MS}ms` },
      grpc: { max_connection_idle_ms: `${IDLE_MS}ms` },
    },
  }));
  after(async () => {
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  test('OTLP/HTTP port: a 401 without a token is answered in full, then the open stream is reset NO_ERROR; GOAWAY after idle', async () => {
    const session = http2.connect(fx.gw.httpUrl);
    session.on('error', () => {});
    try {
      const s = heldOpen(session, PB, good().subarray(0, 20), 4000);
      const h = await s.head;
      assert.equal(h[':status'], 401);
      assert.equal(h['www-authenticate'], 'Bearer realm="genai-gateway"');
      const closed = await s.closed;
      assert.ok(closed, 'the refused stream was still open 4 s after its answer');
      assert.equal(closed.rstCode, NGHTTP2_NO_ERROR);
      assert.ok(closed.ms < BODY_MS, `reset ${closed.ms} ms after the answer, not at the body timeout`);
      assert.equal(decodeStatus(await s.body).code, 16, 'the whole 401 body arrived before the reset');
      const g = await idleGoaway(session, IDLE_MS + 3000);
      assert.equal(g.code, NGHTTP2_NO_ERROR);
    } finally {
      session.destroy();
    }
  });

  test('OTLP/HTTP port: an answer the client does not take (stream window 0) is reset CANCEL at the body timeout, counted', async () => {
    const phase = { listener: 'otlp_http', phase: 'body' };
    const before_ = metric(await fx.gw.metrics(), 'genai_gateway_http_read_timeouts_total', phase);
    const session = http2.connect(fx.gw.httpUrl, { settings: { initialWindowSize: 0 } });
    session.on('error', () => {});
    try {
      await once(session, 'remoteSettings');
      const s = heldOpen(session, PB, good().subarray(0, 20), BODY_MS + 3000);
      assert.equal((await s.head)[':status'], 401);
      const closed = await s.closed;
      assert.ok(closed, 'the refused stream whose answer is stuck was still open past the body timeout');
      assert.equal(closed.rstCode, NGHTTP2_CANCEL);
      assert.ok(closed.ms >= BODY_MS - 500, `reset ${closed.ms} ms after the head, body timeout ${BODY_MS} ms`);
      assert.equal(metric(await fx.gw.metrics(), 'genai_gateway_http_read_timeouts_total', phase) - before_, 1);
      const g = await idleGoaway(session, IDLE_MS + 3000);
      assert.equal(g.code, NGHTTP2_NO_ERROR);
    } finally {
      session.destroy();
    }
  });

  test('OTLP/HTTP port: a gRPC call without a token is UNAUTHENTICATED, then its open stream is reset NO_ERROR', async () => {
    const session = http2.connect(fx.gw.httpUrl);
    session.on('error', () => {});
    try {
      const s = heldOpen(session, { ':path': GRPC_EXPORT_PATH, ...GRPC }, grpcFrame(good()).subarray(0, 20), 4000);
      const h = await s.head;
      assert.equal(h['grpc-status'], '16', 'Trailers-Only UNAUTHENTICATED');
      const closed = await s.closed;
      assert.ok(closed, 'the refused call was still open 4 s after its answer');
      assert.equal(closed.rstCode, NGHTTP2_NO_ERROR);
      await idleGoaway(session, IDLE_MS + 3000);
    } finally {
      session.destroy();
    }
  });

  test('OTLP/gRPC port: an unauthenticated call and one refused on its length prefix are reset NO_ERROR; GOAWAY max_idle', async () => {
    const session = http2.connect(`http://${fx.gw.grpcAddr}`);
    session.on('error', () => {});
    try {
      const s = heldOpen(session, { ':path': GRPC_EXPORT_PATH, ...GRPC }, grpcFrame(good()).subarray(0, 20), 4000);
      assert.equal((await s.head)['grpc-status'], '16', 'Trailers-Only UNAUTHENTICATED');
      const closed = await s.closed;
      assert.ok(closed, 'the unauthenticated call was still open 4 s after its answer');
      assert.equal(closed.rstCode, NGHTTP2_NO_ERROR);

      const big = heldOpen(session, { ':path': GRPC_EXPORT_PATH, ...GRPC, authorization: `Bearer ${TOKEN}` },
        Buffer.concat([prefix(MAX + 1), Buffer.alloc(100, 1)]), 4000);
      assert.equal((await big.head)['grpc-status'], '8', 'RESOURCE_EXHAUSTED on the length prefix');
      const bigClosed = await big.closed;
      assert.ok(bigClosed, 'the call refused on its length prefix was still open 4 s after its answer');
      assert.equal(bigClosed.rstCode, NGHTTP2_NO_ERROR);

      const g = await idleGoaway(session, IDLE_MS + 3000);
      assert.equal(g.code, NGHTTP2_NO_ERROR);
      assert.equal(g.data, 'max_idle');
    } finally {
      session.destroy();
    }
  });
});
