/*
 * fixtures.mjs: the captured SDK payloads (tests/fixtures/sdk, see its README) for tests that replay them
 * through the gateway: the trace bodies with their manifests (span ids, PII strings, session/user groups),
 * re-timed to now, and sent over the transport they were captured on.
 *
 * Key decisions:
 * - Bodies are re-timed (every timestamp shifted so the last span ends a second ago) and re-encoded:
 *   the gateway refuses spans older than its retention window, and a replay must not depend on the day
 *   the fixtures were captured. Ids, names, attributes and content stay exactly as captured.
 * - Span ids are read from the body itself (hex), so a test compares what arrived with what was sent.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExportTraceServiceRequest, grpcUnaryRaw, GRPC_EXPORT_PATH } from './otlp.mjs';
import { ExportLogsServiceRequest } from './otlp-logs.mjs';
import { post } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const SDK_DIR = path.resolve(here, '../fixtures/sdk');

const hex = (b) => Buffer.from(b).toString('hex');

/** Every trace fixture: { file, dialect, transport, contentType, body, manifest, pii, groups }. */
export function traceFixtures() {
  const index = fs.readFileSync(path.join(SDK_DIR, 'index.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  return index
    .filter((e) => (e.signal ?? (e.path.endsWith('/v1/traces') ? 'traces' : 'logs')) === 'traces' && !e.path.includes('logs'))
    .map((e) => {
      const manifest = JSON.parse(fs.readFileSync(path.join(SDK_DIR, e.manifest), 'utf8'));
      return {
        file: e.file,
        dialect: manifest.run.dialect,
        transport: e.transport,
        contentType: e.content_type,
        body: fs.readFileSync(path.join(SDK_DIR, e.file)),
        manifest,
        pii: manifest.pii_strings ?? [...new Set(manifest.calls.flatMap((c) => (c.pii ?? []).map((p) => p.value)))],
        groups: manifest.groups ?? [],
      };
    });
}

function shiftNs(v, by) {
  if (v === undefined || v === null) return v;
  return (BigInt(v.toString()) + by).toString();
}

function walkSpans(req, fn) {
  for (const rs of req.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) for (const s of ss.spans ?? []) fn(s);
}

function retime(req) {
  return retimeBy(req).req;
}

/* Shift every span time so the request ends a second ago; returns { req, by } (the shift in ns). */
function retimeBy(req) {
  let last = 0n;
  walkSpans(req, (s) => {
    const e = BigInt((s.endTimeUnixNano ?? s.startTimeUnixNano ?? 0).toString());
    if (e > last) last = e;
  });
  const by = BigInt(Date.now() - 1000) * 1000000n - last;
  walkSpans(req, (s) => {
    s.startTimeUnixNano = shiftNs(s.startTimeUnixNano, by);
    s.endTimeUnixNano = shiftNs(s.endTimeUnixNano, by);
    for (const ev of s.events ?? []) ev.timeUnixNano = shiftNs(ev.timeUnixNano, by);
  });
  return { req, by };
}

/**
 * The fixture's request, re-timed: { body (bytes in the fixture's own encoding), json (the request in
 * OTLP/JSON shape with hex ids), spanIds, traceIds }.
 */
export function retimed(fx) {
  if (fx.contentType === 'application/json') {
    const { req, by } = retimeBy(JSON.parse(fx.body.toString('utf8')));
    const spanIds = [];
    const traceIds = new Set();
    walkSpans(req, (s) => {
      spanIds.push(s.spanId.toLowerCase());
      traceIds.add(s.traceId.toLowerCase());
    });
    return { body: Buffer.from(JSON.stringify(req)), json: req, spanIds, traceIds: [...traceIds], shiftNs: by };
  }
  const msg = ExportTraceServiceRequest.decode(fx.body);
  const obj = ExportTraceServiceRequest.toObject(msg, { longs: String, bytes: Buffer });
  const { by } = retimeBy(obj);
  const spanIds = [];
  const traceIds = new Set();
  walkSpans(obj, (s) => {
    spanIds.push(hex(s.spanId));
    traceIds.add(hex(s.traceId));
  });
  const body = Buffer.from(ExportTraceServiceRequest.encode(ExportTraceServiceRequest.fromObject(obj)).finish());
  return { body, json: obj, spanIds, traceIds: [...traceIds], shiftNs: by };
}

/**
 * The official instrumentation's logs request captured with a trace fixture (otel-*-logs-1.*), its record
 * times shifted by byNs (the trace fixture's retimed().shiftNs, so spans and logs stay together), in
 * the fixture's own encoding; null when the fixture has none.
 */
export function retimedLogs(fx, byNs) {
  const file = fx.file.replace(/-1\.(pb|json)$/, '-logs-1.$1');
  if (file === fx.file || !fs.existsSync(path.join(SDK_DIR, file))) return null;
  const raw = fs.readFileSync(path.join(SDK_DIR, file));
  const shift = (req) => {
    for (const rl of req.resourceLogs ?? []) for (const sl of rl.scopeLogs ?? []) for (const r of sl.logRecords ?? []) {
      r.timeUnixNano = shiftNs(r.timeUnixNano, byNs);
      r.observedTimeUnixNano = shiftNs(r.observedTimeUnixNano, byNs);
    }
    return req;
  };
  if (fx.contentType === 'application/json') return { file, body: Buffer.from(JSON.stringify(shift(JSON.parse(raw.toString('utf8'))))) };
  const obj = ExportLogsServiceRequest.toObject(ExportLogsServiceRequest.decode(raw), { longs: String, bytes: Buffer });
  return { file, body: Buffer.from(ExportLogsServiceRequest.encode(ExportLogsServiceRequest.fromObject(shift(obj))).finish()) };
}

/** Send a re-timed fixture to the gateway over its own transport; throws unless it was accepted whole. */
export async function sendFixture(gw, fx, grpcClient) {
  const r = retimed(fx);
  if (fx.transport === 'grpc') {
    const res = await grpcUnaryRaw(grpcClient, GRPC_EXPORT_PATH, r.body);
    if (res.code !== 0) throw new Error(`${fx.file}: gRPC ${res.code} ${res.details}`);
  } else {
    const res = await post(gw, '/v1/traces', r.body, { 'content-type': fx.contentType });
    if (res.status !== 200) throw new Error(`${fx.file}: HTTP ${res.status} ${res.body.toString('utf8').slice(0, 200)}`);
  }
  return r;
}
