/*
 * otlp.mjs: build OTLP trace requests for the gateway tests, as OTLP/JSON or protobuf, and read its
 * answers (ExportTraceServiceResponse, google.rpc.Status).
 *
 * Key decisions:
 * - Requests are described once in the OTLP/JSON shape with hex ids (`traceRequest`, `genaiSpan`), then
 *   encoded either way: `toJson` (ids as hex, kind/status as integers, times as decimal strings, like
 *   the JS exporters) or `toProtobuf` (protobufjs over the repo's proto/ files, ids as bytes).
 * - Malformed payloads (20 000-deep AnyValue, bad ids) are hand-encoded with a tiny wire writer, so
 *   neither protobufjs's recursion nor its validation stands between the test and the bytes it wants.
 * - Raw gRPC calls (arbitrary bytes, arbitrary method) go through @grpc/grpc-js with identity
 *   serializers; `grpcFrame` builds the 5-byte length-prefixed message for node:http2 tests.
 */
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import grpc from '@grpc/grpc-js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const PROTO_DIR = process.env.GW_PROTO_DIR ?? path.resolve(here, '../../proto');

const root = new protobuf.Root();
root.resolvePath = (_origin, target) => path.join(PROTO_DIR, target);
root.loadSync(
  [
    'opentelemetry/proto/collector/trace/v1/trace_service.proto',
    'google/rpc/status.proto',
  ],
  { keepCase: false },
);

export const ExportTraceServiceRequest = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest');
export const ExportTraceServiceResponse = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse');
export const RpcStatus = root.lookupType('google.rpc.Status');
export const RpcBadRequest = root.lookupType('google.rpc.BadRequest');

/** The field violations of a decoded google.rpc.Status's BadRequest detail, or null when it has none. */
export function badRequestOf(status) {
  const d = (status.details ?? []).find((x) => x.typeUrl === 'type.googleapis.com/google.rpc.BadRequest');
  return d ? RpcBadRequest.toObject(RpcBadRequest.decode(d.value), { defaults: true }).fieldViolations : null;
}

export const GRPC_EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';

export const randomTraceId = () => crypto.randomBytes(16).toString('hex');
export const randomSpanId = () => crypto.randomBytes(8).toString('hex');

/** An OTLP/JSON AnyValue for a JS value (strings, integers, doubles, booleans, arrays). */
export function anyValue(v) {
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (typeof v === 'number') return Number.isInteger(v) ? { intValue: v } : { doubleValue: v };
  if (typeof v === 'bigint') return { intValue: v.toString() };
  if (Array.isArray(v)) return { arrayValue: { values: v.map(anyValue) } };
  if (v && typeof v === 'object') return { kvlistValue: { values: attrs(v) } };
  throw new Error(`cannot express ${typeof v} as AnyValue`);
}

/** An attribute list from a plain object. */
export function attrs(obj) {
  return Object.entries(obj).map(([key, value]) => ({ key, value: anyValue(value) }));
}

const nowNs = () => BigInt(Date.now()) * 1000000n;

/**
 * One span in OTLP/JSON shape. Defaults: fresh ids, CLIENT kind, started 2 s ago, 1.5 s long,
 * status UNSET. `attributes` is a plain object.
 */
export function span({
  traceId = randomTraceId(),
  spanId = randomSpanId(),
  parentSpanId,
  name = 'chat gpt-4o-mini',
  kind = 3,
  startNs = nowNs() - 2000000000n,
  durationNs = 1500000000n,
  attributes = {},
  status,
} = {}) {
  const s = {
    traceId,
    spanId,
    name,
    kind,
    startTimeUnixNano: startNs.toString(),
    endTimeUnixNano: (startNs + durationNs).toString(),
    attributes: attrs(attributes),
    status: status ?? {},
  };
  if (parentSpanId) s.parentSpanId = parentSpanId;
  return s;
}

/** A GenAI chat span with semconv attributes; override any attribute through `attributes`. */
export function genaiSpan({ model = 'gpt-4o-mini', input = 12, output = 7, operation = 'chat', provider = 'openai', attributes = {}, ...rest } = {}) {
  const a = {
    'gen_ai.operation.name': operation,
    'gen_ai.provider.name': provider,
    'gen_ai.request.model': model,
    'gen_ai.response.model': model,
  };
  if (input !== null) a['gen_ai.usage.input_tokens'] = input;
  if (output !== null) a['gen_ai.usage.output_tokens'] = output;
  return span({ name: `${operation} ${model}`, ...rest, attributes: { ...a, ...attributes } });
}

/** A whole request: one resource, one scope, the given spans. */
export function traceRequest(spans, { service = 'it-service', scope = 'it-scope' } = {}) {
  return {
    resourceSpans: [
      {
        resource: { attributes: attrs({ 'service.name': service }) },
        scopeSpans: [{ scope: { name: scope, version: '1.0.0' }, spans }],
      },
    ],
  };
}

/** OTLP/JSON text of a request built above. */
export function toJson(req) {
  return JSON.stringify(req);
}

function hexToBytes(h) {
  return h === undefined || h === null ? undefined : Buffer.from(h, 'hex');
}

/** Protobuf bytes of a request built above (hex ids become bytes). */
export function toProtobuf(req) {
  const copy = structuredClone(req);
  for (const rs of copy.resourceSpans ?? []) {
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        s.traceId = hexToBytes(s.traceId);
        s.spanId = hexToBytes(s.spanId);
        if (s.parentSpanId) s.parentSpanId = hexToBytes(s.parentSpanId);
      }
    }
  }
  const msg = ExportTraceServiceRequest.fromObject(copy);
  return Buffer.from(ExportTraceServiceRequest.encode(msg).finish());
}

/** Decode a protobuf ExportTraceServiceResponse into a plain object (int64 as Number). */
export function decodeResponse(buf) {
  return ExportTraceServiceResponse.toObject(ExportTraceServiceResponse.decode(buf), { longs: Number, defaults: false });
}

/** Decode a protobuf google.rpc.Status. */
export function decodeStatus(buf) {
  return RpcStatus.toObject(RpcStatus.decode(buf), { longs: Number, defaults: true });
}

/** rejected spans of a response (protobuf object or OTLP/JSON, where int64 may be a string). */
export function rejectedSpans(resp) {
  const ps = resp?.partialSuccess;
  if (!ps || ps.rejectedSpans === undefined || ps.rejectedSpans === null) return 0;
  return Number(ps.rejectedSpans);
}

/* ---- hand-written protobuf wire encoding, for payloads protobufjs would refuse or recurse on ---- */

export function varint(n) {
  let v = BigInt(n);
  const out = [];
  while (v > 0x7fn) {
    out.push(Number((v & 0x7fn) | 0x80n));
    v >>= 7n;
  }
  out.push(Number(v));
  return Buffer.from(out);
}

/** A length-delimited field. */
export function pbBytes(field, buf) {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf);
  return Buffer.concat([varint((field << 3) | 2), varint(b.length), b]);
}

/** A fixed64 field (little-endian). */
export function pbFixed64(field, value) {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(value));
  return Buffer.concat([varint((field << 3) | 1), b]);
}

/**
 * A protobuf ExportTraceServiceRequest with one span whose attribute `deep` is an AnyValue of arrays
 * nested `depth` levels deep (built inside out, no recursion).
 */
export function deepAnyValueProtobuf(depth, { traceId = randomTraceId(), spanId = randomSpanId() } = {}) {
  let v = pbBytes(1, 'leaf'); /* AnyValue.string_value */
  for (let i = 0; i < depth; i++) {
    const arr = pbBytes(1, v); /* ArrayValue.values */
    v = pbBytes(5, arr); /* AnyValue.array_value */
  }
  const kv = Buffer.concat([pbBytes(1, 'deep'), pbBytes(2, v)]);
  const now = BigInt(Date.now()) * 1000000n;
  const sp = Buffer.concat([
    pbBytes(1, Buffer.from(traceId, 'hex')),
    pbBytes(2, Buffer.from(spanId, 'hex')),
    pbBytes(5, 'chat deep'),
    pbFixed64(7, now - 1000000000n),
    pbFixed64(8, now),
    pbBytes(9, kv),
  ]);
  const scopeSpans = pbBytes(2, sp);
  const resourceSpans = pbBytes(2, scopeSpans);
  return pbBytes(1, resourceSpans);
}

/** The same in OTLP/JSON text. */
export function deepAnyValueJson(depth, { traceId = randomTraceId(), spanId = randomSpanId() } = {}) {
  const open = '{"arrayValue":{"values":['.repeat(depth);
  const close = ']}}'.repeat(depth);
  const value = `${open}{"stringValue":"leaf"}${close}`;
  const now = BigInt(Date.now()) * 1000000n;
  return (
    `{"resourceSpans":[{"resource":{"attributes":[]},"scopeSpans":[{"scope":{"name":"deep"},"spans":[{` +
    `"traceId":"${traceId}","spanId":"${spanId}","name":"chat deep","kind":3,` +
    `"startTimeUnixNano":"${now - 1000000000n}","endTimeUnixNano":"${now}",` +
    `"attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},{"key":"deep","value":${value}}]}]}]}]}`
  );
}

/** A gRPC length-prefixed message: compressed flag, 4-byte big-endian length, payload. */
export function grpcFrame(payload, { compressed = false, length } = {}) {
  const h = Buffer.alloc(5);
  h[0] = compressed ? 1 : 0;
  h.writeUInt32BE(length ?? payload.length, 1);
  return Buffer.concat([h, payload]);
}

/* ---- gRPC client with raw bytes ---- */

const identity = (b) => b;

/** A grpc-js client that sends and returns raw Buffers on any method path. */
export function rawGrpcClient(addr, options = {}) {
  return new grpc.Client(addr, grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': -1,
    'grpc.max_receive_message_length': -1,
    ...options,
  });
}

/**
 * Unary call of `method` with the raw `payload`. Resolves { code, details, response, metadata }
 * (code 0 = OK). `deadlineMs` bounds the call so a hanging server fails the test instead of blocking it.
 */
export function grpcUnaryRaw(client, method, payload, { deadlineMs = 10000, metadata, callOptions = {} } = {}) {
  return new Promise((resolve) => {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(metadata ?? {})) md.set(k, v);
    let trailers = null;
    const call = client.makeUnaryRequest(
      method,
      identity,
      identity,
      payload,
      md,
      { deadline: Date.now() + deadlineMs, ...callOptions },
      (err, response) => {
        if (err) resolve({ code: err.code, details: err.details, response: null, metadata: err.metadata ?? trailers });
        else resolve({ code: 0, details: '', response, metadata: trailers });
      },
    );
    call.on('status', (s) => {
      trailers = s.metadata;
    });
  });
}

export { grpc };
