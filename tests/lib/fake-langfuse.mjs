/*
 * fake-langfuse.mjs: a local stand-in for Langfuse's OTel ingestion endpoint, answering as Langfuse
 * documents and implements it (SPEC-FACTS §5.1, langfuse v4.16.0 web/src/pages/api/public/otel/v1/traces):
 * - POST {host}/api/public/otel/v1/traces only (there is no logs route and no gRPC: anything else 404);
 * - Authorization must be exactly `Basic base64(public_key:secret_key)`, else 401;
 * - x-langfuse-ingestion-version: a value above 4 or not a number is 400 "Unsupported
 *   x-langfuse-ingestion-version" (recorded, so a test can require exactly "4");
 * - Content-Type must contain application/x-protobuf or application/json, else 400 "Invalid content type";
 *   Content-Encoding gzip is inflated;
 * - one span with a missing or malformed traceId / spanId rejects the whole request with 400;
 * - success is 200 with a JSON body, not an OTLP response: {} for an empty export, else a queued job.
 * `respond(info)` can override the answer per request (e.g. 429 with Retry-After, as its rate limiter
 * does) or hang. Requests are recorded as in fake-otlp.mjs.
 * `observations()` reads every accepted span the way Langfuse's worker maps it (SPEC-FACTS §4.4-4.5,
 * OtelIngestionProcessor / ObservationTypeMapper at v4.16.0), limited to what the gateway's tests compare:
 * type, model (first of its model keys), input and output (langfuse.observation.input/output, else
 * gen_ai.input.messages / gen_ai.output.messages), usage (langfuse.observation.usage_details, else none:
 * Langfuse would tokenize), cost (langfuse.observation.cost_details, else gen_ai.usage.cost, else
 * llm.cost.total as {total}), metadata (langfuse.observation.metadata.*), level, and `estimated`: a
 * generation without usage, which Langfuse prices by tokenizing its input and output itself.
 */
import http from 'node:http';
import zlib from 'node:zlib';
import crypto from 'node:crypto';
import { attrsOf, decodeTraces, recorder, spansOf } from './fake-otlp.mjs';

export const LANGFUSE_PATH = '/api/public/otel/v1/traces';

/* Model name keys in Langfuse's order (SPEC-FACTS §4.5). */
const MODEL_KEYS = ['langfuse.observation.model.name', 'gen_ai.response.model', 'ai.model.id', 'gen_ai.request.model', 'llm.response.model', 'llm.model_name', 'model'];
const GENERATION_KEYS = ['langfuse.observation.model.name', 'langfuse.observation.cost_details', 'langfuse.observation.usage_details',
  'langfuse.observation.completion_start_time', 'langfuse.observation.model.parameters', 'langfuse.observation.prompt.name', 'langfuse.observation.prompt.version'];

const parseJson = (s) => {
  if (s === undefined) return undefined;
  try {
    return JSON.parse(s);
  } catch {
    return s;
  }
};

/** What Langfuse makes of one decoded span (see the top comment). */
export function observationOf(span) {
  const a = attrsOf(span);
  let type = 'span';
  if (GENERATION_KEYS.some((k) => a[k] !== undefined)) type = 'generation';
  else if (a['langfuse.observation.type']) type = a['langfuse.observation.type'];
  else if (a['openinference.span.kind']) type = { LLM: 'generation', EMBEDDING: 'embedding', AGENT: 'agent', TOOL: 'tool', CHAIN: 'chain', RETRIEVER: 'retriever' }[a['openinference.span.kind']] ?? 'span';
  else if (a['gen_ai.operation.name']) type = { chat: 'generation', completion: 'generation', text_completion: 'generation', generate_content: 'generation', embeddings: 'embedding', invoke_agent: 'agent', create_agent: 'agent', execute_tool: 'tool' }[a['gen_ai.operation.name']] ?? 'span';
  else if (a['gen_ai.request.model'] || a['gen_ai.response.model'] || a['llm.model_name']) type = 'generation';
  const model = MODEL_KEYS.map((k) => a[k]).find((v) => typeof v === 'string' && v !== '');
  const metadata = {};
  for (const [k, v] of Object.entries(a)) if (k.startsWith('langfuse.observation.metadata.')) metadata[k.slice('langfuse.observation.metadata.'.length)] = parseJson(v);
  let cost;
  if (a['langfuse.observation.cost_details'] !== undefined) cost = parseJson(a['langfuse.observation.cost_details']);
  else if (a['gen_ai.usage.cost'] !== undefined) cost = { total: Number(a['gen_ai.usage.cost']) };
  else if (a['llm.cost.total'] !== undefined) cost = { total: Number(a['llm.cost.total']) };
  const usage = parseJson(a['langfuse.observation.usage_details']);
  const level = a['langfuse.observation.level'] ?? (span.status?.code === 2 || span.status?.code === 'STATUS_CODE_ERROR' ? 'ERROR' : 'DEFAULT');
  return {
    spanId: span.spanId,
    traceId: span.traceId,
    name: span.name,
    type,
    model,
    input: parseJson(a['langfuse.observation.input'] ?? a['gen_ai.input.messages']),
    output: parseJson(a['langfuse.observation.output'] ?? a['gen_ai.output.messages']),
    usage,
    cost,
    metadata,
    level,
    estimated: (type === 'generation' || type === 'embedding') && usage === undefined && a['gen_ai.usage.input_tokens'] === undefined &&
      a['gen_ai.usage.output_tokens'] === undefined && a['llm.token_count.prompt'] === undefined,
    attributes: a,
  };
}

export async function startFakeLangfuse({ publicKey = 'pk-lf-test', secretKey = 'sk-lf-test', respond } = {}) {
  const rec = recorder(); /* every entry is signal 'traces': Langfuse takes no logs */
  const record = (r) => rec.record(r);
  const wantAuth = `Basic ${Buffer.from(`${publicKey}:${secretKey}`).toString('base64')}`;
  let n = 0;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const me = ++n;
      const entry = { n: me, at: Date.now(), path: req.url, headers: req.headers, encoding: req.headers['content-encoding'] ?? null, ok: false, signal: 'traces' };
      const json = (status, body, headers = {}) => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(JSON.stringify(body));
      };
      if (req.method !== 'POST' || req.url !== LANGFUSE_PATH) {
        record(entry);
        return json(404, { message: 'Not Found' });
      }
      if (req.headers.authorization !== wantAuth) {
        record(entry);
        return json(401, { message: 'Invalid credentials' });
      }
      const v = req.headers['x-langfuse-ingestion-version'];
      if (v !== undefined && (!/^\d+$/.test(v) || Number(v) > 4)) {
        record(entry);
        return json(400, { message: 'Unsupported x-langfuse-ingestion-version. Maximum supported: 4' });
      }
      const ctype = req.headers['content-type'] ?? '';
      if (!ctype.includes('application/x-protobuf') && !ctype.includes('application/json')) {
        record(entry);
        return json(400, { message: 'Invalid content type' });
      }
      let raw = Buffer.concat(chunks);
      try {
        if (entry.encoding === 'gzip') raw = zlib.gunzipSync(raw);
        entry.raw = raw;
        entry.request = ctype.includes('json') ? JSON.parse(raw.toString('utf8')) : decodeTraces(raw);
      } catch (e) {
        entry.error = e.message;
        record(entry);
        return json(400, { message: `Failed to parse OTel request: ${e.message}` });
      }
      const spans = spansOf(entry.request);
      const bad = spans.find(({ span }) => !/^[0-9a-f]{32}$/.test(span.traceId ?? '') || !/^[0-9a-f]{16}$/.test(span.spanId ?? ''));
      if (bad) {
        record(entry);
        return json(400, { message: 'Invalid traceId or spanId: the whole request is rejected' });
      }
      const r = respond ? await respond({ n: me, path: req.url, headers: req.headers, request: entry.request }) : undefined;
      if (r?.hang) {
        record(entry);
        return undefined;
      }
      if (r) {
        record(entry);
        return json(r.status, r.body ?? { message: `status ${r.status}` }, r.headers ?? {});
      }
      entry.ok = true;
      record(entry);
      return json(200, spans.length ? { id: crypto.randomUUID(), status: 'queued' } : {});
    });
  });
  const sockets = new Set();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    wantAuth,
    requests: rec.requests,
    acceptedSpanIds: () => rec.acceptedSpanIds(),
    acceptedSpans: () => rec.acceptedSpans(),
    /** Every accepted span as Langfuse would show it (observationOf), in arrival order. */
    observations: () => rec.acceptedSpans().map(({ span }) => observationOf(span)),
    /** The last accepted version of one span as Langfuse would show it (a re-sent span replaces it). */
    observation: (spanId) => {
      const all = rec.acceptedSpans().filter(({ span }) => span.spanId === spanId);
      return all.length ? observationOf(all[all.length - 1].span) : undefined;
    },
    waitFor: (pred, opts) => rec.waitFor(pred, opts),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
