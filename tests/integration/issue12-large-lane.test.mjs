/*
 * issue12-large-lane.test.mjs: issue 12's "well-behaved client under attack" goal, the fairness part,
 * through the real binary. Requests of receivers.large_request_bytes or more are processed on the
 * large-request lane (receivers.large_request_threads, here 1), not on the receiver thread that received
 * them, so small requests are answered while large ones keep the lane busy. Shown by ordering, not by
 * timing: large requests that cannot finish on their own (a user pattern that takes minutes over their
 * value, no CPU budget) hold the lane until their gRPC deadline or their HTTP client's hang-up, and small
 * exports over both protocols, on receivers with one thread each, are answered and stored before any of
 * them ends. Without the lane each receiver's only thread is held by its large request until then.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import zlib from 'node:zlib';
import { prerequisites, createDatabase, startGateway, post, waitForRows, waitFor, metric } from '../lib/harness.mjs';
import { genaiSpan, traceRequest, toProtobuf, rawGrpcClient, grpcUnaryRaw, GRPC_EXPORT_PATH, grpc } from '../lib/otlp.mjs';
import { snappyBlock, snappyFramed } from '../lib/snappy.mjs';
import { lz4Available, lz4Compress } from '../lib/lz4.mjs';

const PB = { 'content-type': 'application/x-protobuf' };
const skip = prerequisites();
const KiB = 1024;
const HOLD_MS = 8000; /* how long the large requests hold the lane: their deadline, their client's hang-up */

const body = (value, service) => {
  const s = genaiSpan({ attributes: { 'app.blob': value } });
  return { s, body: toProtobuf(traceRequest([s], { service })) };
};

/** POST whose client hangs up after ms; resolves with the status, or 'gone' after the hang-up. */
function postAndHangUp(gw, data, ms) {
  return new Promise((resolve) => {
    const req = http.request(`${gw.httpUrl}/v1/traces`, { method: 'POST', headers: { ...PB, 'content-length': data.length } });
    const t = setTimeout(() => {
      req.destroy();
      resolve('gone');
    }, ms);
    req.on('error', () => {
      clearTimeout(t);
      resolve('gone');
    });
    req.on('response', (res) => {
      clearTimeout(t);
      res.resume();
      resolve(res.statusCode);
    });
    req.end(data);
  });
}

describe('issue 12: the large-request lane', { skip: skip ?? false }, () => {
  let db;
  let gw;
  let client;

  before(async () => {
    db = await createDatabase();
    gw = await startGateway({
      dsn: db.dsn,
      config: {
        receivers: { grpc: { threads: 1 }, http: { threads: 1 }, large_request_bytes: '64KiB', large_request_threads: 1 },
        redaction: { max_cpu_ms_per_mib: 0, patterns: [{ name: 'slow', regex: '1(?=\\d*x)' }] },
      },
    });
    client = rawGrpcClient(gw.grpcAddr);
  });

  after(async () => {
    client?.close();
    await gw?.cleanup();
    await db?.drop();
  });

  test('with the lane held by large requests, small exports over gRPC and HTTP are answered and stored first', async () => {
    const digits = '1'.repeat(256 * KiB); /* the slow pattern's worst case: minutes of one pcre2 match */
    const m0 = await gw.metrics();
    const started = (m) => metric(m, 'genai_gateway_requests_total') ?? 0;
    const ended = [];
    const largeGrpc = grpcUnaryRaw(client, GRPC_EXPORT_PATH, body(digits, 'large-grpc').body, { deadlineMs: HOLD_MS })
      .then((r) => {
        ended.push('grpc');
        return r;
      });
    /* the large gRPC call is being processed before the HTTP one arrives: it holds the lane */
    await waitFor(async () => started(await gw.metrics()) > started(m0), { what: 'the large gRPC call started' });
    const largeHttp = postAndHangUp(gw, body(digits, 'large-http').body, HOLD_MS).then((r) => {
      ended.push('http');
      return r;
    });
    /* both large requests are in: handed to the lane (or, without one, started on their receiver threads) */
    await waitFor(async () => {
      const m = await gw.metrics();
      return (metric(m, 'genai_gateway_large_requests_total') ?? 0) >= 2 || started(m) >= started(m0) + 2;
    }, { what: 'both large requests received' });

    const okGrpc = genaiSpan();
    const okHttp = genaiSpan();
    const g = await grpcUnaryRaw(client, GRPC_EXPORT_PATH, toProtobuf(traceRequest([okGrpc])), { deadlineMs: 60000 });
    assert.equal(g.code, 0, g.details);
    assert.deepEqual(ended, [], 'the small gRPC export was answered while both large requests were still held');
    const h = await post(gw, '/v1/traces', toProtobuf(traceRequest([okHttp])), PB, { timeoutMs: 60000 });
    assert.equal(h.status, 200);
    assert.deepEqual(ended, [], 'the small HTTP export was answered while both large requests were still held');
    await waitForRows(db, [okGrpc.traceId, okHttp.traceId], 2, { timeoutMs: 5000 });
    assert.deepEqual(ended, [], 'both small exports were stored while the large requests were still held');
    /* one large request on the lane's one thread, the other waiting its turn */
    assert.equal(metric(await gw.metrics(), 'genai_gateway_large_requests_pending'), 2);

    const [lg, lh] = await Promise.all([largeGrpc, largeHttp]);
    assert.equal(lg.code, grpc.status.DEADLINE_EXCEEDED, lg.details);
    assert.equal(lh, 'gone');
    await waitFor(async () => metric(await gw.metrics(), 'genai_gateway_large_requests_pending') === 0,
      { timeoutMs: 15000, what: 'the lane emptied once nobody waited for its requests' });
  });

  test('a gzip body is judged by the size its trailer states; small ones stay on the receiver thread', async () => {
    const count = async () => metric(await gw.metrics(), 'genai_gateway_large_requests_total') ?? 0;
    const gz = { ...PB, 'content-encoding': 'gzip' };
    const small = body('x'.repeat(4 * KiB), 'gzip-small');
    const big = body('x'.repeat(512 * KiB), 'gzip-big'); /* about 1 KB on the wire */
    const wire = zlib.gzipSync(big.body);
    assert.ok(wire.length < 64 * KiB, `the gzip body is ${wire.length} bytes on the wire`);

    let before = await count();
    assert.equal((await post(gw, '/v1/traces', zlib.gzipSync(small.body), gz)).status, 200);
    assert.equal(await count(), before, 'a small gzip body is not a large request');
    assert.equal((await post(gw, '/v1/traces', wire, gz)).status, 200);
    assert.equal(await count(), before + 1, 'a gzip body inflating past the threshold went to the lane');

    before = await count();
    const client2 = rawGrpcClient(gw.grpcAddr, { 'grpc.default_compression_algorithm': 2 });
    try {
      const r = await grpcUnaryRaw(client2, GRPC_EXPORT_PATH, big.body, { deadlineMs: 60000 });
      assert.equal(r.code, 0, r.details);
    } finally {
      client2.close();
    }
    assert.equal(await count(), before + 1, 'a gzip-compressed gRPC message is judged the same way');
    await waitForRows(db, [small.s.traceId, big.s.traceId], 2, { timeoutMs: 10000 });
  });

  test('a snappy block and an lz4 frame are judged by the size they state; framed snappy and unsized lz4 by their wire size', { skip: lz4Available() ? false : 'no lz4 command' }, async () => {
    const count = async () => metric(await gw.metrics(), 'genai_gateway_large_requests_total') ?? 0;
    const cases = [
      ['snappy', snappyBlock, true],
      ['snappy', snappyFramed, false],
      ['lz4', (b) => lz4Compress(b, { sized: true }), true],
      ['lz4', (b) => lz4Compress(b), false],
    ];
    const ids = [];
    for (const [i, [enc, pack, large]] of cases.entries()) {
      const big = body('x'.repeat(512 * KiB), `${enc}-${i}`);
      const wire = pack(big.body);
      assert.ok(wire.length < 64 * KiB, `${enc} ${i}: ${wire.length} bytes on the wire`);
      const before = await count();
      const r = await post(gw, '/v1/traces', wire, { ...PB, 'content-encoding': enc });
      assert.equal(r.status, 200);
      assert.equal(await count(), before + (large ? 1 : 0), `${enc} ${i}: ${large ? '' : 'not '}on the lane`);
      ids.push(big.s.traceId);
    }
    await waitForRows(db, ids, ids.length, { timeoutMs: 10000 });
  });
});

/** POST over HTTP/2 (h2c prior knowledge) on a session of its own; the client resets the stream after ms.
 * Resolves with the :status, or 'gone' after the reset. */
function h2PostAndReset(url, data, ms) {
  return new Promise((resolve) => {
    const session = http2.connect(url);
    session.on('error', () => {});
    const req = session.request({ ':method': 'POST', ':path': '/v1/traces', ...PB });
    const done = (v) => {
      clearTimeout(t);
      session.close();
      resolve(v);
    };
    const t = setTimeout(() => {
      req.close(http2.constants.NGHTTP2_CANCEL);
      done('gone');
    }, ms);
    req.on('error', () => done('gone'));
    req.on('response', (h) => {
      req.resume();
      done(h[':status']);
    });
    req.end(data);
  });
}

/** One POST over HTTP/2 on its own session: the :status. */
function h2Post(url, data) {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    session.on('error', reject);
    const req = session.request({ ':method': 'POST', ':path': '/v1/traces', ...PB });
    req.on('error', reject);
    req.on('response', (h) => {
      req.resume();
      req.on('end', () => {
        session.close();
        resolve(h[':status']);
      });
    });
    req.end(data);
  });
}

/*
 * The same on the OTLP/HTTP port's HTTP/2 side (receive/h2.c): its requests are processed by a pool of as
 * many workers as the port has threads (here 1). Large HTTP/2 requests and large gRPC calls on that port go
 * to the lane too, so the one worker stays free for small ones. Without it, the large HTTP/2 request holds
 * the worker until its client resets the stream, and the small exports wait behind it.
 */
describe('issue 12: the large-request lane on the HTTP port\'s HTTP/2 side', { skip: skip ?? false }, () => {
  let db;
  let gw;
  let client;

  before(async () => {
    db = await createDatabase();
    gw = await startGateway({
      dsn: db.dsn,
      config: {
        receivers: { http: { threads: 1 }, large_request_bytes: '64KiB', large_request_threads: 1 },
        redaction: { max_cpu_ms_per_mib: 0, patterns: [{ name: 'slow', regex: '1(?=\\d*x)' }] },
      },
    });
    client = rawGrpcClient(`127.0.0.1:${gw.ports.http}`);
  });

  after(async () => {
    client?.close();
    await gw?.cleanup();
    await db?.drop();
  });

  test('large HTTP/2 and gRPC requests on the HTTP port hold the lane, not the workers', async () => {
    const digits = '1'.repeat(256 * KiB);
    const large = async () => metric(await gw.metrics(), 'genai_gateway_large_requests_total') ?? 0;
    const l0 = await large();
    const ended = [];
    const largeH2 = h2PostAndReset(gw.httpUrl, body(digits, 'large-h2').body, HOLD_MS).then((r) => {
      ended.push('h2');
      return r;
    });
    await waitFor(async () => (await large()) >= l0 + 1, { what: 'the large HTTP/2 request went to the lane' });
    const largeGrpc = grpcUnaryRaw(client, GRPC_EXPORT_PATH, body(digits, 'large-grpc-on-http').body, { deadlineMs: HOLD_MS })
      .then((r) => {
        ended.push('grpc');
        return r;
      });
    await waitFor(async () => (await large()) >= l0 + 2, { what: 'the large gRPC call on the HTTP port went to the lane' });

    const okH2 = genaiSpan();
    const okGrpc = genaiSpan();
    assert.equal(await h2Post(gw.httpUrl, toProtobuf(traceRequest([okH2]))), 200);
    assert.deepEqual(ended, [], 'the small HTTP/2 export was answered while both large requests were still held');
    const g = await grpcUnaryRaw(client, GRPC_EXPORT_PATH, toProtobuf(traceRequest([okGrpc])), { deadlineMs: 60000 });
    assert.equal(g.code, 0, g.details);
    assert.deepEqual(ended, [], 'the small gRPC export on the HTTP port was answered while both large requests were held');
    await waitForRows(db, [okH2.traceId, okGrpc.traceId], 2, { timeoutMs: 5000 });
    assert.deepEqual(ended, [], 'both small exports were stored while the large requests were still held');
    assert.equal(metric(await gw.metrics(), 'genai_gateway_large_requests_pending'), 2);

    const [lh, lg] = await Promise.all([largeH2, largeGrpc]);
    assert.equal(lh, 'gone');
    assert.equal(lg.code, grpc.status.DEADLINE_EXCEEDED, lg.details);
    /* the reset stream and the expired call stop their work: the lane empties */
    await waitFor(async () => metric(await gw.metrics(), 'genai_gateway_large_requests_pending') === 0,
      { timeoutMs: 15000, what: 'the lane emptied once nobody waited for its requests' });
    assert.equal(await large(), l0 + 2);
  });
});
