/*
 * otlp-logs.mjs: build OTLP logs requests for the gateway tests (OTLP/JSON shape with hex ids, encoded as
 * JSON or protobuf over the repo's proto/ files) and read ExportLogsServiceResponse answers. GenAI event
 * records are built the way @opentelemetry/instrumentation-openai 0.21 emits them (event.name attribute,
 * body kvlist with content / message / finish_reason / index), as the fixtures otel-*-logs-1.* show.
 */
import path from 'node:path';
import protobuf from 'protobufjs';
import { PROTO_DIR, attrs, anyValue, randomTraceId, randomSpanId } from './otlp.mjs';

const root = new protobuf.Root();
root.resolvePath = (_origin, target) => path.join(PROTO_DIR, target);
root.loadSync(['opentelemetry/proto/collector/logs/v1/logs_service.proto'], { keepCase: false });

export const ExportLogsServiceRequest = root.lookupType('opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest');
export const ExportLogsServiceResponse = root.lookupType('opentelemetry.proto.collector.logs.v1.ExportLogsServiceResponse');
export const GRPC_LOGS_PATH = '/opentelemetry.proto.collector.logs.v1.LogsService/Export';

const nowNs = () => BigInt(Date.now()) * 1000000n;

/** One log record in OTLP/JSON shape. body: a JS value (object -> kvlist) or undefined. */
export function logRecord({ traceId, spanId, eventName, eventNameField, body, attributes = {}, timeNs = nowNs(), severity = 9 } = {}) {
  const a = { ...attributes };
  if (eventName) a['event.name'] = eventName;
  const r = {
    timeUnixNano: timeNs.toString(),
    observedTimeUnixNano: timeNs.toString(),
    severityNumber: severity,
    attributes: attrs(a),
  };
  if (body !== undefined) r.body = anyValue(body);
  if (traceId) r.traceId = traceId;
  if (spanId) r.spanId = spanId;
  if (eventNameField) r.eventName = eventNameField;
  return r;
}

/** The records the official OpenAI instrumentation emits for one chat call. */
export function chatEvents({ traceId = randomTraceId(), spanId = randomSpanId(), system, user, reply, finishReason = 'stop', timeNs = nowNs() } = {}) {
  const out = [];
  const common = { traceId, spanId, attributes: { 'gen_ai.system': 'openai' } };
  if (system !== undefined) out.push(logRecord({ ...common, eventName: 'gen_ai.system.message', body: { content: system }, timeNs }));
  if (user !== undefined) out.push(logRecord({ ...common, eventName: 'gen_ai.user.message', body: { content: user }, timeNs }));
  if (reply !== undefined) {
    out.push(logRecord({
      ...common,
      eventName: 'gen_ai.choice',
      body: { finish_reason: finishReason, index: 0, message: { content: reply } },
      timeNs: timeNs + 5000000n,
    }));
  }
  return out;
}

/** A whole logs request: one resource, one scope, the given records. */
export function logsRequest(records, { service = 'it-service', scope = '@opentelemetry/instrumentation-openai' } = {}) {
  return {
    resourceLogs: [
      {
        resource: { attributes: attrs({ 'service.name': service }) },
        scopeLogs: [{ scope: { name: scope, version: '0.21.0' }, logRecords: records }],
      },
    ],
  };
}

/** Protobuf bytes of a logs request (hex ids become bytes). */
export function logsToProtobuf(req) {
  const copy = structuredClone(req);
  for (const rl of copy.resourceLogs ?? []) {
    for (const sl of rl.scopeLogs ?? []) {
      for (const r of sl.logRecords ?? []) {
        if (r.traceId) r.traceId = Buffer.from(r.traceId, 'hex');
        if (r.spanId) r.spanId = Buffer.from(r.spanId, 'hex');
      }
    }
  }
  return Buffer.from(ExportLogsServiceRequest.encode(ExportLogsServiceRequest.fromObject(copy)).finish());
}

/** Decode a protobuf ExportLogsServiceResponse. */
export function decodeLogsResponse(buf) {
  return ExportLogsServiceResponse.toObject(ExportLogsServiceResponse.decode(buf), { longs: Number, defaults: false });
}

/** rejected log records of a response (protobuf object or OTLP/JSON). */
export function rejectedLogRecords(resp) {
  const v = resp?.partialSuccess?.rejectedLogRecords;
  return v === undefined || v === null ? 0 : Number(v);
}
