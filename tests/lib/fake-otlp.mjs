/*
 * fake-otlp.mjs: local OTLP receivers standing in for third-party services (an OpenTelemetry Collector,
 * SigNoz) in the exporter tests, behaving as OTLP specifies (SPEC-FACTS §1): OTLP/HTTP on /v1/traces and
 * /v1/logs (protobuf only here, Content-Encoding gzip inflated, 415 for another content type, an empty
 * Export*ServiceResponse on success, google.rpc.Status bodies on errors), and OTLP/gRPC as a real gRPC
 * server (@grpc/grpc-js) serving TraceService/Export and LogsService/Export, with RetryInfo in
 * grpc-status-details-bin when asked to push back.
 *
 * Every request is recorded: { n, at, path (HTTP) | method (gRPC), headers | metadata, httpVersion,
 * encoding, signal, raw (Buffer, inflated), request (decoded, ids as hex), ok (answered as a success) }.
 * A test scripts the answers with `respond(info)`, called per request with { n, path|method, headers|
 * metadata }: return undefined for success, { status, headers, body } (HTTP) / { code, details,
 * retryDelayMs } (gRPC) for a failure, or { hang: true } to never answer (the connection stays open
 * until the fake is closed).
 * Optional TLS with the test certificates (tests/fixtures/tls); the HTTP fake can speak HTTP/2 (ALPN h2,
 * HTTP/1.1 allowed) to show the exporter takes it when offered.
 */
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { grpc, PROTO_DIR } from './otlp.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const TLS_DIR = path.resolve(here, '../fixtures/tls');
export const tlsFiles = () => ({
  ca: path.join(TLS_DIR, 'ca.pem'),
  cert: fs.readFileSync(path.join(TLS_DIR, 'server.pem')),
  key: fs.readFileSync(path.join(TLS_DIR, 'server.key')),
});

const root = new protobuf.Root();
root.resolvePath = (_origin, target) => path.join(PROTO_DIR, target);
root.loadSync(
  ['opentelemetry/proto/collector/trace/v1/trace_service.proto', 'opentelemetry/proto/collector/logs/v1/logs_service.proto', 'google/rpc/status.proto'],
  { keepCase: false },
);
const TraceReq = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest');
const TraceResp = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse');
const LogsReq = root.lookupType('opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest');
const LogsResp = root.lookupType('opentelemetry.proto.collector.logs.v1.ExportLogsServiceResponse');
const Status = root.lookupType('google.rpc.Status');
const RetryInfo = root.lookupType('google.rpc.RetryInfo');

export const TRACES_METHOD = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';
export const LOGS_METHOD = '/opentelemetry.proto.collector.logs.v1.LogsService/Export';

const hexIds = (o) => {
  for (const k of ['traceId', 'spanId', 'parentSpanId']) if (o[k] && typeof o[k] !== 'string') o[k] = Buffer.from(o[k]).toString('hex');
  return o;
};

/** Decode an ExportTraceServiceRequest into a plain object with hex ids (throws when it does not decode). */
export function decodeTraces(buf) {
  const obj = TraceReq.toObject(TraceReq.decode(buf), { longs: String, bytes: Buffer, defaults: false, arrays: true });
  for (const rs of obj.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) for (const s of ss.spans ?? []) hexIds(s);
  return obj;
}

export function decodeLogs(buf) {
  const obj = LogsReq.toObject(LogsReq.decode(buf), { longs: String, bytes: Buffer, defaults: false, arrays: true });
  for (const rl of obj.resourceLogs ?? []) for (const sl of rl.scopeLogs ?? []) for (const r of sl.logRecords ?? []) hexIds(r);
  return obj;
}

/** Spans of a decoded request, each with its resource and scope: [{ span, resource, scope }]. */
export function spansOf(req) {
  const out = [];
  for (const rs of req?.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) for (const s of ss.spans ?? []) out.push({ span: s, resource: rs.resource, scope: ss.scope });
  return out;
}

/** Attributes of a decoded span as a plain object (strings, numbers, booleans; others as JSON). */
export function attrsOf(s) {
  const o = {};
  for (const kv of s.attributes ?? []) {
    const v = kv.value ?? {};
    if (v.stringValue !== undefined) o[kv.key] = v.stringValue;
    else if (v.intValue !== undefined) o[kv.key] = Number(v.intValue);
    else if (v.doubleValue !== undefined) o[kv.key] = v.doubleValue;
    else if (v.boolValue !== undefined) o[kv.key] = v.boolValue;
    else o[kv.key] = JSON.stringify(v);
  }
  return o;
}

/** A google.rpc.Status with an optional RetryInfo, serialized. */
export function statusBytes({ code = 14, message = '', retryDelayMs } = {}) {
  const details = [];
  if (retryDelayMs !== undefined) {
    const ri = RetryInfo.encode(RetryInfo.fromObject({ retryDelay: { seconds: Math.floor(retryDelayMs / 1000), nanos: (retryDelayMs % 1000) * 1e6 } })).finish();
    details.push({ typeUrl: 'type.googleapis.com/google.rpc.RetryInfo', value: ri });
  }
  return Buffer.from(Status.encode(Status.fromObject({ code, message, details })).finish());
}

function decodeAs(signal, raw) {
  return signal === 'logs' ? decodeLogs(raw) : decodeTraces(raw);
}

/** Shared bookkeeping of the fakes (OTLP HTTP and gRPC here, Langfuse in fake-langfuse.mjs). */
export function recorder() {
  const requests = [];
  const waiters = [];
  return {
    requests,
    record(r) {
      requests.push(r);
      for (const w of waiters.splice(0)) w();
    },
    /** Span ids that arrived in requests answered as a success (with repeats, in order). */
    acceptedSpanIds() {
      return requests.filter((r) => r.ok && r.signal === 'traces').flatMap((r) => spansOf(r.request).map((x) => x.span.spanId));
    },
    acceptedSpans() {
      return requests.filter((r) => r.ok && r.signal === 'traces').flatMap((r) => spansOf(r.request));
    },
    /** Resolve when pred(requests) holds, reject after timeoutMs. */
    async waitFor(pred, { timeoutMs = 20000, what = 'requests' } = {}) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (pred(requests)) return requests;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out waiting for ${what}; ${requests.length} requests so far`);
        await new Promise((resolve) => {
          const t = setTimeout(resolve, Math.min(left, 200));
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
    },
  };
}

/**
 * An OTLP/HTTP receiver. Options: tls (use the test certificate), h2 (HTTP/2 with ALPN, HTTP/1.1 allowed;
 * implies tls), respond (see the top comment), paths (default /v1/traces, /v1/logs).
 * Returns { url, port, requests, acceptedSpanIds(), waitFor(), close() }.
 */
export async function startOtlpHttp({ tls = false, h2 = false, respond, basePath = '' } = {}) {
  const rec = recorder();
  let n = 0;
  const handler = (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const me = ++n;
      const p = req.url;
      const signal = p === `${basePath}/v1/traces` ? 'traces' : p === `${basePath}/v1/logs` ? 'logs' : null;
      const entry = { n: me, at: Date.now(), path: p, headers: req.headers, httpVersion: req.httpVersion, encoding: req.headers['content-encoding'] ?? null, signal, ok: false };
      const reply = (status, headers, body) => {
        res.writeHead(status, headers);
        res.end(body);
      };
      if (req.method !== 'POST' || !signal) {
        rec.record(entry);
        return reply(404, { 'content-type': 'text/plain' }, 'not found');
      }
      if (!/application\/x-protobuf/.test(req.headers['content-type'] ?? '')) {
        rec.record(entry);
        return reply(415, { 'content-type': 'text/plain' }, 'unsupported content type');
      }
      let raw = Buffer.concat(chunks);
      try {
        if (entry.encoding === 'gzip') raw = zlib.gunzipSync(raw);
        entry.raw = raw;
        entry.request = decodeAs(signal, raw);
      } catch (e) {
        entry.error = e.message;
        rec.record(entry);
        return reply(400, { 'content-type': 'application/x-protobuf' }, statusBytes({ code: 3, message: `does not decode: ${e.message}` }));
      }
      const r = respond ? await respond({ n: me, path: p, headers: req.headers, request: entry.request }) : undefined;
      if (r?.hang) {
        rec.record(entry);
        return undefined; /* never answered; close() destroys the connection */
      }
      if (r) {
        rec.record(entry);
        return reply(r.status, { 'content-type': 'application/x-protobuf', ...(r.headers ?? {}) }, r.body ?? statusBytes({ message: `status ${r.status}` }));
      }
      entry.ok = true;
      rec.record(entry);
      const Resp = signal === 'logs' ? LogsResp : TraceResp;
      return reply(200, { 'content-type': 'application/x-protobuf' }, Buffer.from(Resp.encode(Resp.fromObject({})).finish()));
    });
  };
  let server;
  const { cert, key } = tlsFiles();
  if (h2) server = http2.createSecureServer({ cert, key, allowHTTP1: true }, handler);
  else if (tls) server = https.createServer({ cert, key }, handler);
  else server = http.createServer(handler);
  const sockets = new Set();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('secureConnection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    port,
    url: `${tls || h2 ? 'https' : 'http'}://127.0.0.1:${port}${basePath}`,
    ...rec,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * An OTLP/gRPC receiver on @grpc/grpc-js. Options: tls, respond (see the top comment), requireMetadata
 * ({ key: value }: calls without exactly these are UNAUTHENTICATED, as SigNoz Cloud answers a bad key).
 * Returns { addr, port, requests, acceptedSpanIds(), waitFor(), close() }.
 */
export async function startOtlpGrpc({ tls = false, respond, requireMetadata } = {}) {
  const rec = recorder();
  let n = 0;
  const hung = [];
  const identity = (b) => b;
  const method = (p) => ({ path: p, requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity });
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
  const handle = (p, signal) => async (call, callback) => {
    const me = ++n;
    const md = call.metadata.getMap();
    const entry = { n: me, at: Date.now(), method: p, metadata: md, signal, raw: call.request, ok: false };
    try {
      entry.request = decodeAs(signal, call.request);
    } catch (e) {
      entry.error = e.message;
      rec.record(entry);
      return callback({ code: grpc.status.INVALID_ARGUMENT, details: `does not decode: ${e.message}` });
    }
    for (const [k, v] of Object.entries(requireMetadata ?? {})) {
      if (md[k] !== v) {
        rec.record(entry);
        return callback({ code: grpc.status.UNAUTHENTICATED, details: `missing or wrong ${k}` });
      }
    }
    const r = respond ? await respond({ n: me, method: p, metadata: md, request: entry.request }) : undefined;
    if (r?.hang) {
      rec.record(entry);
      hung.push(callback);
      return undefined;
    }
    if (r) {
      rec.record(entry);
      const meta = new grpc.Metadata();
      if (r.retryDelayMs !== undefined || r.statusDetails) meta.set('grpc-status-details-bin', statusBytes({ code: r.code, message: r.details ?? '', retryDelayMs: r.retryDelayMs }));
      return callback({ code: r.code, details: r.details ?? `status ${r.code}`, metadata: meta });
    }
    entry.ok = true;
    rec.record(entry);
    const Resp = signal === 'logs' ? LogsResp : TraceResp;
    return callback(null, Buffer.from(Resp.encode(Resp.fromObject({})).finish()));
  };
  server.addService({ Export: method(TRACES_METHOD) }, { Export: handle(TRACES_METHOD, 'traces') });
  server.addService({ Export: method(LOGS_METHOD) }, { Export: handle(LOGS_METHOD, 'logs') });
  const creds = tls
    ? grpc.ServerCredentials.createSsl(null, [{ private_key: tlsFiles().key, cert_chain: tlsFiles().cert }], false)
    : grpc.ServerCredentials.createInsecure();
  const port = await new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))));
  /* grpc-js serves once bound (start() is deprecated since 1.10). */
  return {
    port,
    addr: `127.0.0.1:${port}`,
    ...rec,
    async close() {
      for (const cb of hung.splice(0)) cb({ code: grpc.status.UNAVAILABLE, details: 'fake closing' });
      server.forceShutdown();
    },
  };
}

/**
 * A bare OTLP/gRPC receiver on node:http2, for what a gRPC library hides: it records the request headers
 * as they came (grpc-encoding included) and each message's compressed flag, inflates gzip itself, and
 * answers OK with an empty ExportTraceServiceResponse. Traces only.
 * Returns { addr, port, requests (entries also hold compressed, encoding), waitFor(), close() }.
 */
export async function startGrpcWire() {
  const rec = recorder();
  let n = 0;
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    const chunks = [];
    stream.on('data', (c) => chunks.push(c));
    stream.on('end', () => {
      const buf = Buffer.concat(chunks);
      const entry = { n: ++n, at: Date.now(), method: headers[':path'], metadata: headers, signal: 'traces', ok: false };
      try {
        entry.compressed = buf[0] === 1;
        entry.encoding = headers['grpc-encoding'] ?? null;
        let msg = buf.subarray(5, 5 + buf.readUInt32BE(1));
        if (entry.compressed) msg = zlib.gunzipSync(msg);
        entry.raw = msg;
        entry.request = decodeTraces(msg);
        entry.ok = true;
      } catch (e) {
        entry.error = e.message;
      }
      rec.record(entry);
      const resp = Buffer.from(TraceResp.encode(TraceResp.fromObject({})).finish());
      const frame = Buffer.alloc(5 + resp.length);
      frame.writeUInt32BE(resp.length, 1);
      resp.copy(frame, 5);
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': entry.ok ? '0' : '3', 'grpc-message': entry.error ?? '' }));
      stream.end(frame);
    });
  });
  const sessions = new Set();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    port,
    addr: `127.0.0.1:${port}`,
    ...rec,
    async close() {
      for (const s of sessions) s.destroy();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
