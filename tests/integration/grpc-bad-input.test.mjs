/*
 * grpc-bad-input.test.mjs: OTLP/gRPC receiver against hostile and broken input (DESIGN §10 traps: no
 * depth limit in protobuf-c, gRPC's own decompression before any limit, unregistered methods hanging,
 * badly framed messages taken as empty exports). Raw bytes go through @grpc/grpc-js with identity
 * serializers, framing errors through node:http2 directly. After each bad input a good export still
 * succeeds and its span lands in Postgres.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import zlib from 'node:zlib';
import crypto from 'node:crypto';
import { prerequisites, createDatabase, startGateway, waitForRows } from '../lib/harness.mjs';
import {
  traceRequest, genaiSpan, toProtobuf, decodeResponse, rejectedSpans, deepAnyValueProtobuf,
  grpcUnaryRaw, rawGrpcClient, grpcFrame, GRPC_EXPORT_PATH, grpc, badRequestOf, decodeStatus,
} from '../lib/otlp.mjs';
import { assertGrpcStillServes } from '../lib/checks.mjs';

const MAX = 8 * 1024 * 1024;
const S = grpc.status;
const skip = prerequisites();

/**
 * One gRPC call over a bare HTTP/2 session. Resolves { httpStatus, grpcStatus, grpcMessage, body }
 * whether the status came in the headers (trailers-only) or in the trailers; rejects on timeout.
 */
function h2Call(addr, path, body, { headers = {}, timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${addr}`);
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error(`no answer from ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    session.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    const req = session.request({
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...headers,
    });
    let resHeaders = {};
    let trailers = {};
    const chunks = [];
    req.on('response', (h) => {
      resHeaders = h;
    });
    req.on('trailers', (t) => {
      trailers = t;
    });
    req.on('data', (d) => chunks.push(d));
    req.on('error', () => {});
    req.on('close', () => {
      clearTimeout(timer);
      session.close();
      const pick = (k) => trailers[k] ?? resHeaders[k];
      resolve({
        httpStatus: resHeaders[':status'],
        grpcStatus: pick('grpc-status') === undefined ? undefined : Number(pick('grpc-status')),
        grpcMessage: pick('grpc-message'),
        body: Buffer.concat(chunks),
        rstCode: req.rstCode,
      });
    });
    req.end(body);
  });
}

describe('OTLP/gRPC bad input', { skip: skip ?? false }, () => {
  let db;
  let gw;
  let client;

  before(async () => {
    db = await createDatabase();
    gw = await startGateway({ dsn: db.dsn, config: { receivers: { max_request_bytes: MAX, max_spans_per_request: 500 } } });
    client = rawGrpcClient(gw.grpcAddr);
  });

  after(async () => {
    client?.close();
    if (gw) {
      const r = await gw.stop();
      await gw.cleanup();
      assert.deepEqual(r, { code: 0, signal: null }, 'gateway exits 0 on SIGTERM');
    }
    await db?.drop();
  });

  test('good export: OK, empty partial_success, rows stored', async () => {
    const a = genaiSpan({ model: 'gpt-4o-mini', input: 13, output: 2 });
    const b = genaiSpan({ model: 'gpt-4o', input: 1, output: 1, traceId: a.traceId, parentSpanId: a.spanId });
    const r = await grpcUnaryRaw(client, GRPC_EXPORT_PATH, toProtobuf(traceRequest([a, b])));
    assert.equal(r.code, S.OK, r.details);
    assert.equal(rejectedSpans(decodeResponse(r.response)), 0);
    const rows = await waitForRows(db, [a.traceId], 2);
    assert.equal(rows.length, 2);
    const child = rows.find((x) => x.span_id === b.spanId);
    assert.equal(child.parent_span_id, a.spanId);
    assert.equal(child.input_tokens, 1);
  });

  test('compressed exports (grpc-encoding gzip or deflate) are accepted', async () => {
    for (const algorithm of [2, 1]) {
      const c = rawGrpcClient(gw.grpcAddr, { 'grpc.default_compression_algorithm': algorithm });
      try {
        const s = genaiSpan({ model: 'gpt-4o', input: 40, output: 4 });
        const r = await grpcUnaryRaw(c, GRPC_EXPORT_PATH, toProtobuf(traceRequest([s])));
        assert.equal(r.code, S.OK, `algorithm ${algorithm}: ${r.details}`);
        const rows = await waitForRows(db, [s.traceId], 1);
        assert.equal(rows[0].input_tokens, 40);
      } finally {
        c.close();
      }
    }
  });

  test('truncated and garbage protobuf: INVALID_ARGUMENT', async () => {
    const full = toProtobuf(traceRequest([genaiSpan(), genaiSpan()]));
    for (const payload of [full.subarray(0, Math.floor(full.length / 2)), full.subarray(0, full.length - 3), crypto.randomBytes(300), Buffer.from([0xff, 0xff, 0xff])]) {
      const r = await grpcUnaryRaw(client, GRPC_EXPORT_PATH, payload);
      assert.equal(r.code, S.INVALID_ARGUMENT, `len ${payload.length}: ${r.code} ${r.details}`);
      assert.ok(r.details && r.details.length > 0, 'status message present');
      // the rich status: google.rpc.BadRequest with the message as its violation (OTLP: SHOULD)
      const bin = r.metadata?.get('grpc-status-details-bin')?.[0];
      assert.ok(bin, 'grpc-status-details-bin present');
      const fv = badRequestOf(decodeStatus(Buffer.from(bin)));
      assert.ok(fv && fv.length === 1 && fv[0].description === r.details, JSON.stringify(fv));
    }
    await assertGrpcStillServes(gw, db, client, { label: 'truncated protobuf' });
  });

  test('message over receivers.max_request_bytes: RESOURCE_EXHAUSTED', async () => {
    const big = toProtobuf(traceRequest([genaiSpan({ attributes: { 'app.blob': 'x'.repeat(MAX + 1024) } })]));
    const r = await grpcUnaryRaw(client, GRPC_EXPORT_PATH, big, { deadlineMs: 20000 });
    assert.equal(r.code, S.RESOURCE_EXHAUSTED, `${r.code} ${r.details}`);
    await assertGrpcStillServes(gw, db, client, { label: 'oversize' });
  });

  test('more spans than receivers.max_spans_per_request: RESOURCE_EXHAUSTED naming the limit', async () => {
    const over = Array.from({ length: 501 }, () => genaiSpan());
    const r = await grpcUnaryRaw(client, GRPC_EXPORT_PATH, toProtobuf(traceRequest(over)), { deadlineMs: 20000 });
    assert.equal(r.code, S.RESOURCE_EXHAUSTED, `${r.code} ${r.details}`);
    assert.match(r.details, /501 spans, more than receivers\.max_spans_per_request \(500\)/);
    await assertGrpcStillServes(gw, db, client, { label: 'too many spans' });
  });

  test('gzip bomb (64 MiB of zeros, grpc-encoding gzip): RESOURCE_EXHAUSTED, memory bounded', async () => {
    const bomb = zlib.gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 });
    for (let i = 0; i < 3; i++) {
      const r = await h2Call(gw.grpcAddr, GRPC_EXPORT_PATH, grpcFrame(bomb, { compressed: true }), {
        headers: { 'grpc-encoding': 'gzip', 'grpc-accept-encoding': 'identity,gzip' },
        timeoutMs: 20000,
      });
      assert.equal(r.grpcStatus, S.RESOURCE_EXHAUSTED, `attempt ${i}: ${JSON.stringify({ ...r, body: r.body.length })}`);
    }
    assert.ok(gw.alive());
    const rss = gw.rss();
    const peak = gw.peakRss();
    assert.ok(rss < 200 * 1024 * 1024, `VmRSS ${rss} bytes`);
    assert.ok(peak < 200 * 1024 * 1024, `VmHWM ${peak} bytes`);
    await assertGrpcStillServes(gw, db, client, { label: 'gzip bomb' });
  });

  test('AnyValue nested 20 000 deep: INVALID_ARGUMENT, gateway alive', async () => {
    const r = await grpcUnaryRaw(client, GRPC_EXPORT_PATH, deepAnyValueProtobuf(20000));
    assert.equal(r.code, S.INVALID_ARGUMENT, `${r.code} ${r.details}`);
    assert.match(r.details ?? '', /depth|nest|deep/i);
    assert.ok(gw.alive());
    await assertGrpcStillServes(gw, db, client, { label: 'deep nesting' });
  });

  test('unknown methods: UNIMPLEMENTED, promptly', async () => {
    const payload = toProtobuf(traceRequest([genaiSpan()]));
    for (const method of [
      '/opentelemetry.proto.collector.trace.v1.TraceService/Nope',
      '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export',
      '/no.such.Service/Call',
    ]) {
      const t0 = Date.now();
      const r = await grpcUnaryRaw(client, method, payload, { deadlineMs: 5000 });
      assert.equal(r.code, S.UNIMPLEMENTED, `${method}: ${r.code} ${r.details}`);
      assert.ok(Date.now() - t0 < 4000, `${method} answered in ${Date.now() - t0} ms`);
    }
    await assertGrpcStillServes(gw, db, client, { label: 'unknown method' });
  });

  test('badly framed messages get a non-OK grpc-status, never OK', async () => {
    const good = toProtobuf(traceRequest([genaiSpan()]));
    const cases = {
      /* length prefix promises more than the stream carries */
      'short body': grpcFrame(good.subarray(0, 10), { length: 1000 }),
      /* fewer than 5 bytes: not even a prefix */
      'partial prefix': Buffer.from([0, 0, 0]),
      /* a compressed message whose payload is not gzip */
      'compressed garbage': grpcFrame(crypto.randomBytes(64), { compressed: true }),
    };
    for (const [name, body] of Object.entries(cases)) {
      const headers = name === 'compressed garbage' ? { 'grpc-encoding': 'gzip' } : {};
      const r = await h2Call(gw.grpcAddr, GRPC_EXPORT_PATH, body, { headers });
      assert.notEqual(r.grpcStatus, S.OK, `${name}: ${JSON.stringify({ ...r, body: r.body.length })}`);
      assert.ok(r.grpcStatus !== undefined || r.rstCode, `${name}: an answer, not silence`);
    }
    /* a body without any message at all is not an empty export either */
    const none = await h2Call(gw.grpcAddr, GRPC_EXPORT_PATH, Buffer.alloc(0));
    assert.notEqual(none.grpcStatus, S.OK, 'no message');
    /* the same bytes framed correctly over bare HTTP/2 are fine */
    const ok = await h2Call(gw.grpcAddr, GRPC_EXPORT_PATH, grpcFrame(good));
    assert.equal(ok.grpcStatus, S.OK, JSON.stringify({ ...ok, body: ok.body.length }));
    await assertGrpcStillServes(gw, db, client, { label: 'bad framing' });
  });

  test('empty and all-zero trace ids among good spans: OK with rejected_spans = 2, good spans stored', async () => {
    const good1 = genaiSpan({ input: 7, output: 1 });
    const good2 = genaiSpan({ input: 8, output: 2 });
    const req = traceRequest([genaiSpan({ traceId: '0'.repeat(32) }), good1, genaiSpan({ traceId: '' }), good2]);
    const r = await grpcUnaryRaw(client, GRPC_EXPORT_PATH, toProtobuf(req));
    assert.equal(r.code, S.OK, r.details);
    const resp = decodeResponse(r.response);
    assert.equal(rejectedSpans(resp), 2);
    assert.ok((resp.partialSuccess.errorMessage ?? '').length > 0, 'partial success says why');
    const rows = await waitForRows(db, [good1.traceId, good2.traceId], 2);
    assert.deepEqual(rows.map((x) => x.span_id).sort(), [good1.spanId, good2.spanId].sort());
  });

  test('an empty export is a success', async () => {
    const r = await grpcUnaryRaw(client, GRPC_EXPORT_PATH, Buffer.alloc(0));
    assert.equal(r.code, S.OK, r.details);
  });
});
