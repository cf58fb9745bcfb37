/*
 * http-port-grpc.test.mjs: issue 12 item 6's stretch goal, OTLP/gRPC on the OTLP/HTTP port next to HTTP/1.1
 * and HTTP/2 (as Fluent Bit serves all three on one port). The real OTel JS SDK gRPC exporters (traces and
 * logs) point at the HTTP port, plain (h2c with prior knowledge, as grpc-js connects) and over TLS (ALPN
 * h2) with a bearer token, and the rows stored must equal those a second gateway stores for the same
 * spans received on its gRPC port. Edge cases through @grpc/grpc-js and node:http2 directly: gzip, unknown
 * method, bad framing, two messages, zstd, unsupported grpc-encoding, oversize, grpc-timeout, a client reset,
 * no token. HTTP/1.1 and HTTP/2 /v1/traces keep working on the same port; receivers.http.grpc false turns
 * the gRPC part off.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import zlib from 'node:zlib';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { prerequisites, createDatabase, startGateway, post, metric, waitFor, waitForRows, countRows } from '../lib/harness.mjs';
import {
  traceRequest, genaiSpan, span, toProtobuf, decodeResponse, rejectedSpans, decodeStatus, grpcUnaryRaw, rawGrpcClient,
  grpcFrame, GRPC_EXPORT_PATH, grpc, RpcStatus,
} from '../lib/otlp.mjs';
import { GRPC_LOGS_PATH } from '../lib/otlp-logs.mjs';
import { makeExporter } from '../lib/sdk-client.mjs';
import { makeCa, issue } from '../lib/certs.mjs';
import { zstdCompress } from '../lib/zstd.mjs';
import { snappyBlock, snappyFramed } from '../lib/snappy.mjs';
import { lz4Compress } from '../lib/lz4.mjs';

const require = createRequire(import.meta.url);
const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { LoggerProvider, SimpleLogRecordProcessor, InMemoryLogRecordExporter } = require('@opentelemetry/sdk-logs');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { ExportResultCode } = require('@opentelemetry/core');
const { SeverityNumber } = require('@opentelemetry/api-logs');
const api = require('@opentelemetry/api');

const skip = prerequisites();
const S = grpc.status;
const MAX = 2 * 1024 * 1024;
const TOKEN = 'tok-h2grpc-0123456789abcdef';
/* Both gateways redact with a user pattern that reads the rest of a digit run from every start: minutes
 * over 1 MiB of digits, so only the call's deadline or the client's reset stops such a request. */
const CONFIG = {
  receivers: { max_request_bytes: MAX },
  redaction: { max_cpu_ms_per_mib: 0, patterns: [{ name: 'slow', regex: '1(?=\\d*x)' }] },
};

const resource = resourceFromAttributes({ 'service.name': 'h2grpc-it', 'deployment.environment': 'test' });
const spanMem = new InMemorySpanExporter();
const tracer = new BasicTracerProvider({ resource, spanProcessors: [new SimpleSpanProcessor(spanMem)] }).getTracer('h2grpc-test', '1.2.3');
const logMem = new InMemoryLogRecordExporter();
const logger = new LoggerProvider({ resource, processors: [new SimpleLogRecordProcessor({ exporter: logMem })] }).getLogger('@opentelemetry/instrumentation-openai');

/** GenAI spans as the SDK makes them: a parent agent span and n chat children with usage and content. */
function sdkSpans(n) {
  spanMem.reset();
  const parent = tracer.startSpan('invoke_agent planner', { attributes: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'planner' } });
  const ctx = api.trace.setSpan(api.context.active(), parent);
  for (let i = 0; i < n; i++) {
    const s = tracer.startSpan('chat gpt-4o', {
      attributes: {
        'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': 'openai', 'gen_ai.request.model': 'gpt-4o',
        'gen_ai.response.model': 'gpt-4o-2024-08-06', 'gen_ai.usage.input_tokens': 100 + i, 'gen_ai.usage.output_tokens': 7 + i,
        'gen_ai.response.finish_reasons': ['stop'], 'user.id': 'u-42', 'session.id': 'sess-9',
        'gen_ai.input.messages': JSON.stringify([{ role: 'user', parts: [{ type: 'text', content: `mail jane.doe@example.com #${i}` }] }]),
      },
    }, ctx);
    s.end();
  }
  parent.end();
  return spanMem.getFinishedSpans();
}

/** The two log records the OpenAI instrumentation emits for a chat call, made by the SDK. */
function sdkLogs() {
  const traceId = crypto.randomBytes(16).toString('hex');
  const spanId = crypto.randomBytes(8).toString('hex');
  logMem.reset();
  const ctx = api.trace.setSpanContext(api.context.active(), { traceId, spanId, traceFlags: 1 });
  logger.emit({ eventName: 'gen_ai.user.message', context: ctx, severityNumber: SeverityNumber.INFO, body: { content: 'call me at +1 415 555 0100 please' }, attributes: { 'gen_ai.system': 'openai' } });
  logger.emit({ eventName: 'gen_ai.choice', context: ctx, severityNumber: SeverityNumber.INFO, body: { index: 0, finish_reason: 'stop', message: { role: 'assistant', content: 'done' } }, attributes: { 'gen_ai.system': 'openai' } });
  const records = logMem.getFinishedLogRecords();
  assert.equal(records.length, 2);
  return { records, traceId, spanId };
}

/** Export with a fresh SDK exporter; resolves the ExportResult. */
async function exportWith(exp, items) {
  try {
    return await new Promise((resolve) => exp.export(items, resolve));
  } finally {
    await exp.shutdown().catch(() => {});
  }
}

function logExporter(addr, { tls = null, headers = {} } = {}) {
  const { OTLPLogExporter } = require('@opentelemetry/exporter-logs-otlp-grpc');
  const metadata = new grpc.Metadata();
  for (const [k, v] of Object.entries(headers)) metadata.set(k, v);
  const credentials = tls ? grpc.credentials.createSsl(tls.ca) : undefined;
  return new OTLPLogExporter({ url: `${tls ? 'https' : 'http'}://${addr}`, metadata, credentials, timeoutMillis: 10000 });
}

/** Rows of a table for these trace ids, without what only says when the row was written. */
async function stored(db, table, traceIds) {
  const order = table === 'ai_interaction_traces' ? 'span_id' : 'span_id, event_name, seq';
  const r = await db.query(`SELECT * FROM ${table} WHERE trace_id = ANY($1) ORDER BY ${order}`, [traceIds]);
  return r.rows.map(({ created_at: _c, ...rest }) => rest);
}

/**
 * One gRPC call over a bare HTTP/2 session. Resolves { httpStatus, headers, grpcStatus, grpcMessage, rawMessage,
 * details, body, rstCode } whether the status came in the headers (Trailers-Only) or in the trailers.
 * opts.cancelAfterMs resets the stream (CANCEL) after that long instead of waiting for the answer; opts.hold
 * sends the body but never ends the stream.
 */
function h2Call(url, p, body, { headers = {}, timeoutMs = 15000, cancelAfterMs, hold = false, connect = {} } = {}) {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url, connect);
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error(`no answer from ${p} within ${timeoutMs} ms`));
    }, timeoutMs);
    session.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    const req = session.request({ ':method': 'POST', ':path': p, 'content-type': 'application/grpc', te: 'trailers', ...headers });
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
      const raw = pick('grpc-message');
      const det = pick('grpc-status-details-bin');
      resolve({
        httpStatus: resHeaders[':status'],
        headers: resHeaders,
        grpcStatus: pick('grpc-status') === undefined ? undefined : Number(pick('grpc-status')),
        rawMessage: raw,
        grpcMessage: raw === undefined ? undefined : Buffer.from(raw.replace(/%([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8'),
        details: det === undefined ? undefined : RpcStatus.decode(Buffer.from(det, 'base64')),
        body: Buffer.concat(chunks),
        rstCode: req.rstCode,
      });
    });
    if (cancelAfterMs !== undefined) {
      req.write(body);
      setTimeout(() => req.close(http2.constants.NGHTTP2_CANCEL), cancelAfterMs);
    } else if (hold) {
      req.write(body);
      req.on('trailers', () => req.close()); /* answered: let the half-sent stream go */
      req.on('response', (h) => {
        if (h['grpc-status'] !== undefined) req.close();
      });
    } else {
      req.end(body);
    }
  });
}

/** The message of a framed gRPC answer body (one uncompressed message). */
function unframe(body) {
  assert.ok(body.length >= 5, `a framed message, got ${body.length} bytes`);
  assert.equal(body[0], 0, 'answers are not compressed');
  assert.equal(body.readUInt32BE(1), body.length - 5, 'one message, length as framed');
  return body.subarray(5);
}

const PB = { 'content-type': 'application/x-protobuf' };

describe('OTLP/gRPC on the OTLP/HTTP port (h2c)', { skip: skip ?? false }, () => {
  let db;
  let refDb;
  let gw;
  let ref; /* a second gateway, same configuration: what its gRPC port stores is the reference */
  let httpAddr;
  let client;
  let refClient;

  before(async () => {
    [db, refDb] = await Promise.all([createDatabase(), createDatabase()]);
    [gw, ref] = await Promise.all([startGateway({ dsn: db.dsn, config: CONFIG }), startGateway({ dsn: refDb.dsn, config: CONFIG })]);
    httpAddr = `127.0.0.1:${gw.ports.http}`;
    client = rawGrpcClient(httpAddr);
    refClient = rawGrpcClient(ref.grpcAddr);
  });

  after(async () => {
    client?.close();
    refClient?.close();
    for (const g of [gw, ref]) {
      if (g) {
        const r = await g.stop();
        await g.cleanup();
        assert.deepEqual(r, { code: 0, signal: null });
      }
    }
    await db?.drop();
    await refDb?.drop();
  });

  test('the SDK trace exporter (grpc) on the HTTP port: accepted, rows equal to those the gRPC port stores', async () => {
    const spans = sdkSpans(4);
    const m0 = await gw.metrics();
    const r = await exportWith(makeExporter('grpc', { grpcAddr: httpAddr }), spans);
    assert.equal(r.code, ExportResultCode.SUCCESS, String(r.error));
    const rr = await exportWith(makeExporter('grpc', { grpcAddr: ref.grpcAddr }), spans);
    assert.equal(rr.code, ExportResultCode.SUCCESS, String(rr.error));
    const traceIds = [...new Set(spans.map((s) => s.spanContext().traceId))];
    await waitForRows(db, traceIds, 5);
    await waitForRows(refDb, traceIds, 5);
    const got = await stored(db, 'ai_interaction_traces', traceIds);
    const want = await stored(refDb, 'ai_interaction_traces', traceIds);
    assert.equal(got.length, 5);
    assert.deepEqual(got, want);
    assert.ok(!JSON.stringify(got).includes('jane.doe@example.com'), 'redacted as on the gRPC port');
    const m1 = await gw.metrics();
    const calls = (m) => metric(m, 'genai_gateway_request_duration_seconds_count', { protocol: 'grpc', signal: 'traces' }) ?? 0;
    assert.equal(calls(m1) - calls(m0), 1, 'the call is timed as protocol="grpc"');
    assert.ok(metric(m1, 'genai_gateway_http2_streams_total') > metric(m0, 'genai_gateway_http2_streams_total'));
  });

  test('the SDK logs exporter (grpc) on the HTTP port: events stored as the gRPC port stores them', async () => {
    const { records, traceId } = sdkLogs();
    const r = await exportWith(logExporter(httpAddr), records);
    assert.equal(r.code, ExportResultCode.SUCCESS, String(r.error));
    const rr = await exportWith(logExporter(ref.grpcAddr), records);
    assert.equal(rr.code, ExportResultCode.SUCCESS, String(rr.error));
    const q = (d) => stored(d, 'ai_interaction_events', [traceId]);
    await waitFor(async () => (await q(db)).length === 2 && (await q(refDb)).length === 2, { what: 'events on both gateways' });
    assert.deepEqual(await q(db), await q(refDb));
  });

  test('grpc-js with raw bytes: gzip, partial success, bad protobuf, unknown method, oversize: as the gRPC port answers', async () => {
    for (const algorithm of [2, 1]) { // gzip, deflate (the zlib format), as gRPC core's receiver takes both
      const gz = rawGrpcClient(httpAddr, { 'grpc.default_compression_algorithm': algorithm });
      try {
        const s = genaiSpan({ model: 'gpt-4o', input: 40, output: 4 });
        const r = await grpcUnaryRaw(gz, GRPC_EXPORT_PATH, toProtobuf(traceRequest([s])));
        assert.equal(r.code, S.OK, `algorithm ${algorithm}: ${r.details}`);
        assert.equal((await waitForRows(db, [s.traceId], 1))[0].input_tokens, 40);
      } finally {
        gz.close();
      }
    }
    const mixed = () => toProtobuf(traceRequest([genaiSpan(), span({ name: 'bad', traceId: '00'.repeat(16) }), genaiSpan({ traceId: '' })]));
    const good = toProtobuf(traceRequest([genaiSpan()]));
    const cases = [
      { name: 'partial success', method: GRPC_EXPORT_PATH, body: mixed() },
      { name: 'truncated protobuf', method: GRPC_EXPORT_PATH, body: good.subarray(0, good.length - 3) },
      { name: 'garbage', method: GRPC_EXPORT_PATH, body: Buffer.from([0xff, 0xff, 0xff]) },
      { name: 'unknown method', method: '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export', body: good },
      { name: 'oversize', method: GRPC_EXPORT_PATH, body: toProtobuf(traceRequest([genaiSpan({ attributes: { 'app.blob': 'x'.repeat(MAX + 1024) } })])) },
      { name: 'empty export', method: GRPC_EXPORT_PATH, body: Buffer.alloc(0) },
      { name: 'logs, empty', method: GRPC_LOGS_PATH, body: Buffer.alloc(0) },
    ];
    for (const c of cases) {
      const here = await grpcUnaryRaw(client, c.method, c.body, { deadlineMs: 20000 });
      const there = await grpcUnaryRaw(refClient, c.method, c.body, { deadlineMs: 20000 });
      assert.equal(here.code, there.code, `${c.name}: ${here.code} ${here.details} vs ${there.code} ${there.details}`);
      if (c.name !== 'oversize') assert.equal(here.details, there.details, `${c.name}: message`);
      const detail = (x) => x.metadata?.get('grpc-status-details-bin')?.[0]?.toString('base64');
      assert.equal(detail(here), detail(there), `${c.name}: grpc-status-details-bin`);
      if (c.name === 'partial success') {
        assert.equal(here.code, S.OK);
        assert.equal(rejectedSpans(decodeResponse(here.response)), 2);
        assert.deepEqual(decodeResponse(here.response), decodeResponse(there.response));
      }
    }
    const big = await grpcUnaryRaw(client, GRPC_EXPORT_PATH, cases[4].body, { deadlineMs: 20000 });
    assert.equal(big.code, S.RESOURCE_EXHAUSTED);
    assert.match(big.details, /over the limit of 2097152 \(receivers\.max_request_bytes\)/);
    const unknown = await grpcUnaryRaw(client, '/no.such.Service/Call', good);
    assert.equal(unknown.code, S.UNIMPLEMENTED);
    assert.match(unknown.details, /^unknown method \/no\.such\.Service\/Call: this gateway serves/);
    /* every error answer carries its google.rpc.Status (README "Errors"); one that can never succeed no RetryInfo */
    const status = (x) => {
      const b = x.metadata?.get('grpc-status-details-bin')?.[0];
      assert.ok(b, `grpc-status-details-bin on ${x.code} ${x.details}`);
      return RpcStatus.decode(Buffer.isBuffer(b) ? b : Buffer.from(b, 'base64'));
    };
    for (const [x, code] of [[big, S.RESOURCE_EXHAUSTED], [unknown, S.UNIMPLEMENTED]]) {
      const st = status(x);
      assert.equal(st.code, code);
      assert.equal(st.message, x.details);
      assert.equal((st.details ?? []).length, 0, 'no RetryInfo');
    }
  });

  test('framing over bare HTTP/2: answers, trailers and clear statuses', async () => {
    const url = gw.httpUrl;
    const s = genaiSpan({ model: 'gpt-4o-mini', input: 3, output: 1 });
    const good = toProtobuf(traceRequest([s]));
    const ok = await h2Call(url, GRPC_EXPORT_PATH, grpcFrame(zlib.gzipSync(good), { compressed: true }), { headers: { 'grpc-encoding': 'gzip' } });
    assert.equal(ok.httpStatus, 200);
    assert.equal(ok.headers['content-type'], 'application/grpc');
    assert.equal(ok.grpcStatus, S.OK, JSON.stringify(ok));
    assert.equal(unframe(ok.body).length, 0, 'an empty ExportTraceServiceResponse');
    await waitForRows(db, [s.traceId], 1);
    /* zstd (grpc-encoding zstd, as grpc-go and the Collector can send): frames with and without their size */
    for (const sized of [false, true]) {
      const sz = genaiSpan({ model: 'gpt-4o-mini', input: sized ? 61 : 60, output: 1 });
      const z = await h2Call(url, GRPC_EXPORT_PATH, grpcFrame(zstdCompress(toProtobuf(traceRequest([sz])), { sized }), { compressed: true }), { headers: { 'grpc-encoding': 'zstd' } });
      assert.equal(z.grpcStatus, S.OK, JSON.stringify(z));
      assert.equal((await waitForRows(db, [sz.traceId], 1))[0].input_tokens, sized ? 61 : 60);
    }
    /* snappy (the Collector's gRPC exporters: the framing format; the block format too) and lz4 */
    for (const [enc, pack, input] of [['snappy', snappyFramed, 70], ['snappy', snappyBlock, 71], ['lz4', lz4Compress, 72]]) {
      const sp = genaiSpan({ model: 'gpt-4o-mini', input, output: 1 });
      const r = await h2Call(url, GRPC_EXPORT_PATH, grpcFrame(pack(toProtobuf(traceRequest([sp]))), { compressed: true }), { headers: { 'grpc-encoding': enc } });
      assert.equal(r.grpcStatus, S.OK, `${enc} ${pack.name}: ${JSON.stringify(r)}`);
      assert.equal((await waitForRows(db, [sp.traceId], 1))[0].input_tokens, input);
    }

    const cases = [
      { name: 'no message', body: Buffer.alloc(0), code: S.INVALID_ARGUMENT, msg: /^no request message: the call carried no well-framed ExportTraceServiceRequest$/ },
      { name: 'partial prefix', body: Buffer.from([0, 0, 0]), code: S.INVALID_ARGUMENT, msg: /ended inside the 5-byte message prefix/ },
      { name: 'short body', body: grpcFrame(good.subarray(0, 10), { length: 1000 }), code: S.INVALID_ARGUMENT, msg: /ended 10 bytes into a message of 1000/ },
      { name: 'two messages', body: Buffer.concat([grpcFrame(good), grpcFrame(good)]), code: S.INVALID_ARGUMENT, msg: /more than one message in a unary call/ },
      { name: 'bytes after the message', body: Buffer.concat([grpcFrame(good), Buffer.from([0])]), code: S.INVALID_ARGUMENT, msg: /more than one message/ },
      { name: 'bad flag', body: Buffer.concat([Buffer.from([2]), grpcFrame(good).subarray(1)]), code: S.INVALID_ARGUMENT, msg: /compressed flag is neither 0 nor 1/ },
      { name: 'compressed garbage', body: grpcFrame(crypto.randomBytes(64), { compressed: true }), headers: { 'grpc-encoding': 'gzip' }, code: S.INVALID_ARGUMENT, msg: /gzip/ },
      { name: 'zstd garbage', body: grpcFrame(crypto.randomBytes(64), { compressed: true }), headers: { 'grpc-encoding': 'zstd' }, code: S.INVALID_ARGUMENT, msg: /^zstd: / },
      { name: 'zstd bomb', body: grpcFrame(zstdCompress(Buffer.alloc(32 * 1024 * 1024)), { compressed: true }), headers: { 'grpc-encoding': 'zstd' }, code: S.RESOURCE_EXHAUSTED, msg: /^zstd: body inflates to more than/ },
      { name: 'unknown encoding', body: grpcFrame(good, { compressed: true }), headers: { 'grpc-encoding': 'br' }, code: S.UNIMPLEMENTED, msg: /^grpc-encoding 'br' is not supported: use gzip, deflate, zstd, snappy, lz4 or identity/ },
      { name: 'snappy garbage', body: grpcFrame(Buffer.from([0xff, 6, 0, 0, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59, 9, 9]), { compressed: true }), headers: { 'grpc-encoding': 'snappy' }, code: S.INVALID_ARGUMENT, msg: /^snappy \(framed\): / },
      { name: 'lz4 bomb', body: grpcFrame(lz4Compress(Buffer.alloc(32 * 1024 * 1024)), { compressed: true }), headers: { 'grpc-encoding': 'lz4' }, code: S.RESOURCE_EXHAUSTED, msg: /^lz4: body inflates to more than/ },
      { name: 'compressed without encoding', body: grpcFrame(good, { compressed: true }), code: S.INTERNAL, msg: /compressed flag is set but the call has no grpc-encoding/ },
      { name: 'grpc+json', body: grpcFrame(good), headers: { 'content-type': 'application/grpc+json' }, code: S.UNIMPLEMENTED, msg: /application\/grpc\+json/ },
      { name: 'bad timeout', body: grpcFrame(good), headers: { 'grpc-timeout': '10x' }, code: S.INVALID_ARGUMENT, msg: /malformed grpc-timeout '10x'/ },
      { name: 'oversize prefix', body: grpcFrame(Buffer.alloc(10), { length: MAX + 1 }), code: S.RESOURCE_EXHAUSTED, msg: /message of 2097153 bytes is over the limit/ },
    ];
    for (const c of cases) {
      const r = await h2Call(url, GRPC_EXPORT_PATH, c.body, { headers: c.headers });
      assert.equal(r.httpStatus, 200, c.name);
      assert.equal(r.grpcStatus, c.code, `${c.name}: ${r.grpcStatus} ${r.grpcMessage}`);
      assert.match(r.grpcMessage ?? '', c.msg, c.name);
      assert.equal(r.body.length, 0, `${c.name}: no message with an error`);
      if (c.name === 'unknown encoding') assert.equal(r.headers['grpc-accept-encoding'], 'identity,deflate,gzip,zstd,snappy,lz4');
    }
    /* the same no-message call on the gRPC port gets the same status and message */
    const there = await h2Call(ref.httpUrl.replace(String(ref.ports.http), String(ref.ports.grpc)), GRPC_EXPORT_PATH, Buffer.alloc(0));
    assert.equal(there.grpcStatus, S.INVALID_ARGUMENT);
    assert.equal(there.grpcMessage, 'no request message: the call carried no well-framed ExportTraceServiceRequest');
    /* grpc-message is percent-encoded (gRPC PROTOCOL-HTTP2): '%' and bytes outside printable ASCII */
    const odd = await h2Call(url, '/caf\u00e9.100%/Call', grpcFrame(good));
    assert.equal(odd.grpcStatus, S.UNIMPLEMENTED);
    assert.match(odd.rawMessage, /^unknown method \/caf%E9\.100%25\/Call: /);
    assert.ok(gw.alive());
  });

  test('grpc-timeout is the deadline: a slow call is abandoned (DEADLINE_EXCEEDED, counted, not stored); a reset stops it too', async () => {
    const hostile = (svc) => {
      const s = genaiSpan({ attributes: { 'app.blob': '1'.repeat(1024 * 1024) } });
      return { s, body: toProtobuf(traceRequest([s], { service: svc })) };
    };
    const d0 = metric(await gw.metrics(), 'genai_gateway_requests_deadline_exceeded_total');
    const h = hostile('slow-deadline');
    const t0 = Date.now();
    const r = await h2Call(gw.httpUrl, GRPC_EXPORT_PATH, grpcFrame(h.body), { headers: { 'grpc-timeout': '700m' } });
    const took = Date.now() - t0;
    assert.equal(r.grpcStatus, S.DEADLINE_EXCEEDED, `${r.grpcStatus} ${r.grpcMessage}`);
    assert.match(r.grpcMessage, /deadline passed \d+ ms into the request/);
    assert.ok(took < 5000, `answered after ${took} ms (deadline 700 ms)`);
    assert.equal(metric(await gw.metrics(), 'genai_gateway_requests_deadline_exceeded_total') - d0, 1);

    /* a message still arriving at the deadline: answered then, not at the body timeout */
    const good = toProtobuf(traceRequest([genaiSpan()]));
    const t2 = Date.now();
    const stalled = await h2Call(gw.httpUrl, GRPC_EXPORT_PATH, grpcFrame(good).subarray(0, 100), { headers: { 'grpc-timeout': '800m' }, hold: true });
    const waited = Date.now() - t2;
    assert.equal(stalled.grpcStatus, S.DEADLINE_EXCEEDED, `${stalled.grpcStatus} ${stalled.grpcMessage}`);
    assert.match(stalled.grpcMessage, new RegExp(`while its message was still arriving \\(95 of ${good.length} bytes\\)`));
    assert.ok(waited >= 700 && waited < 3000, `answered after ${waited} ms (deadline 800 ms)`);
    assert.equal(metric(await gw.metrics(), 'genai_gateway_requests_deadline_exceeded_total') - d0, 2);

    const c0 = metric(await gw.metrics(), 'genai_gateway_requests_cancelled_total');
    const k = hostile('slow-reset');
    const reset = await h2Call(gw.httpUrl, GRPC_EXPORT_PATH, grpcFrame(k.body), { cancelAfterMs: 500 });
    assert.equal(reset.rstCode, http2.constants.NGHTTP2_CANCEL);
    await waitFor(async () => metric(await gw.metrics(), 'genai_gateway_requests_cancelled_total') > c0, { timeoutMs: 5000, what: 'the reset call counted' });

    /* both workers are free again: a normal call is answered promptly */
    const ok = genaiSpan();
    const t1 = Date.now();
    const n = await grpcUnaryRaw(client, GRPC_EXPORT_PATH, toProtobuf(traceRequest([ok])));
    assert.equal(n.code, S.OK, n.details);
    assert.ok(Date.now() - t1 < 3000, `next call took ${Date.now() - t1} ms`);
    await waitForRows(db, [ok.traceId], 1);
    assert.equal(await countRows(db, [h.s.traceId, k.s.traceId]), 0, 'abandoned calls are not stored');
  });

  test('HTTP/1.1 and HTTP/2 /v1/traces on the same port still work', async () => {
    const a = genaiSpan();
    const b = genaiSpan();
    assert.equal((await post(gw, '/v1/traces', toProtobuf(traceRequest([a])), PB)).status, 200);
    const session = http2.connect(gw.httpUrl);
    try {
      const status = await new Promise((resolve, reject) => {
        const req = session.request({ ':method': 'POST', ':path': '/v1/traces', ...PB });
        req.on('response', (hd) => resolve(hd[':status']));
        req.on('error', reject);
        req.resume();
        req.end(toProtobuf(traceRequest([b])));
      });
      assert.equal(status, 200);
    } finally {
      session.close();
    }
    await waitForRows(db, [a.traceId, b.traceId], 2);
  });
});

describe('OTLP/gRPC on the OTLP/HTTP port over TLS (ALPN h2) with tokens', { skip: skip ?? false }, () => {
  let db;
  let gw;
  let dir;
  let ca;
  let addr;

  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gw-h2grpc-tls-'));
    ca = await makeCa(dir, 'ca');
    const server = await issue(dir, ca, 'server');
    await fs.writeFile(path.join(dir, 'tokens'), `${TOKEN}\n`);
    db = await createDatabase();
    gw = await startGateway({
      dsn: db.dsn,
      config: { receivers: { tls: { cert_file: server.cert, key_file: server.key }, auth: { tokens_file: path.join(dir, 'tokens') } } },
    });
    addr = `127.0.0.1:${gw.ports.http}`;
  });

  after(async () => {
    if (gw) {
      await gw.stop();
      await gw.cleanup();
    }
    await db?.drop();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  test('the SDK exporters over grpcs with a token: stored; without one: UNAUTHENTICATED, counted on the port', async () => {
    const tls = { ca: await fs.readFile(ca.cert) };
    const spans = sdkSpans(2);
    const ok = await exportWith(makeExporter('grpc', { httpUrl: gw.httpUrl, grpcAddr: addr, tls, headers: { authorization: `Bearer ${TOKEN}` } }), spans);
    assert.equal(ok.code, ExportResultCode.SUCCESS, String(ok.error));
    const rows = await waitForRows(db, [spans[0].spanContext().traceId], 3);
    assert.deepEqual(rows.filter((x) => x.request_model).map((x) => x.input_tokens).sort(), [100, 101]);

    const { records, spanId } = sdkLogs();
    const lok = await exportWith(logExporter(addr, { tls, headers: { 'x-api-key': TOKEN } }), records);
    assert.equal(lok.code, ExportResultCode.SUCCESS, String(lok.error));
    await waitFor(async () => (await db.query('SELECT 1 FROM ai_interaction_events WHERE span_id = $1', [spanId])).rowCount === 2, { what: 'events stored' });

    const f0 = metric(await gw.metrics(), 'genai_gateway_auth_failures_total', { listener: 'otlp_http', reason: 'missing' });
    const none = await exportWith(makeExporter('grpc', { httpUrl: gw.httpUrl, grpcAddr: addr, tls }), sdkSpans(1));
    assert.equal(none.code, ExportResultCode.FAILED);
    assert.equal(none.error?.code, S.UNAUTHENTICATED, String(none.error));
    const bad = await h2Call(`https://${addr}`, GRPC_EXPORT_PATH, grpcFrame(Buffer.alloc(0)), {
      headers: { authorization: 'Bearer not-the-token-0123456789' },
      connect: { ca: tls.ca, servername: 'localhost' },
    });
    assert.equal(bad.grpcStatus, S.UNAUTHENTICATED);
    assert.equal(bad.grpcMessage, 'invalid token');
    const nomd = await h2Call(`https://${addr}`, GRPC_EXPORT_PATH, grpcFrame(Buffer.alloc(0)), { connect: { ca: tls.ca, servername: 'localhost' } });
    assert.equal(nomd.grpcStatus, S.UNAUTHENTICATED);
    assert.match(nomd.grpcMessage, /^missing credentials/);
    const m = await gw.metrics();
    assert.equal(metric(m, 'genai_gateway_auth_failures_total', { listener: 'otlp_http', reason: 'missing' }) - f0, 2);
    assert.equal(metric(m, 'genai_gateway_auth_failures_total', { listener: 'otlp_grpc', reason: 'missing' }), 0);
  });
});

describe('receivers.http.grpc: false', { skip: skip ?? false }, () => {
  test('a gRPC call on the HTTP port is an OTLP/HTTP request to an unknown path; the gRPC port still serves', async () => {
    const gw = await startGateway({ config: { spool: { mode: 'memory' }, receivers: { http: { grpc: false } } } });
    try {
      const body = grpcFrame(toProtobuf(traceRequest([genaiSpan()])));
      const r = await h2Call(gw.httpUrl, GRPC_EXPORT_PATH, body);
      assert.equal(r.httpStatus, 404);
      assert.equal(r.grpcStatus, undefined);
      assert.match(decodeStatus(r.body).message, /^unknown path '\/opentelemetry\.proto\.collector\.trace\.v1\.TraceService\/Export'/);
      const c = rawGrpcClient(gw.grpcAddr);
      try {
        assert.equal((await grpcUnaryRaw(c, GRPC_EXPORT_PATH, toProtobuf(traceRequest([genaiSpan()])))).code, S.OK);
      } finally {
        c.close();
      }
    } finally {
      await gw.stop();
      await gw.cleanup();
    }
  });
});
