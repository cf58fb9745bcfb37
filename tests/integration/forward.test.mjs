/*
 * forward.test.mjs: the fleet topology (README "Fleet topology"): a sidecar with no database forwards
 * everything over OTLP (exporters.otlp) to a tier gateway, which writes Postgres. The tier prices and
 * redacts what it receives again; this proves that does no harm: each forwarded span's row equals the row
 * of the same span sent straight to the tier (cost, cost source, client-reported cost, price id, redacted
 * content, prompt_hash taken before redaction, redaction count and kinds), a span the sidecar re-sends
 * lands exactly once, and GenAI log events come through too.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { prerequisites, createDatabase, startGateway, post, waitForRows, waitFor, metric } from '../lib/harness.mjs';
import { traceRequest, genaiSpan, toProtobuf, randomTraceId, randomSpanId } from '../lib/otlp.mjs';
import { logsRequest, logsToProtobuf, chatEvents } from '../lib/otlp-logs.mjs';

const skip = prerequisites();
const PB = { 'content-type': 'application/x-protobuf' };
const REDACTION = { detectors: { email: 'hash' } };
const HMAC = { GENAI_GW_REDACTION_HMAC_KEY: 'forward-test-hmac-key-0123456789' };

/* Two spans with the same content and different ids. */
function pair(attributes) {
  const make = () => genaiSpan({ model: 'gpt-4o-mini', input: 1200, output: 340, attributes });
  return [make(), make()];
}

const COMPARED = [
  'service_name', 'operation', 'provider', 'request_model', 'response_model', 'model_id', 'input_tokens', 'output_tokens',
  'total_tokens', 'input_cost_usd', 'output_cost_usd', 'total_cost_usd', 'cost_source', 'reported_cost_usd', 'price_id',
  'dialect', 'enrichment_flags', 'prompt_content', 'system_prompt', 'response_content', 'prompt_hash', 'redaction_count',
];

describe('forwarding sidecar -> tier', { skip: skip ?? false }, () => {
  let db;
  let tier;
  let sidecar;

  before(async () => {
    db = await createDatabase();
    tier = await startGateway({ dsn: db.dsn, env: HMAC, config: { redaction: REDACTION, postgres: { batch_wait_ms: '20ms' } } });
    sidecar = await startGateway({
      env: HMAC,
      config: { redaction: REDACTION, exporters: { otlp: { endpoint: tier.httpUrl, protocol: 'http', batch_wait_ms: '50ms' } } },
    });
  });

  after(async () => {
    await sidecar?.cleanup();
    await tier?.cleanup();
    await db?.drop();
  });

  test('a forwarded span is stored as if it had been sent to the tier directly', async () => {
    const content = {
      'gen_ai.prompt.0.role': 'user',
      'gen_ai.prompt.0.content': 'mail alice@example.com or call +1 415 555 2671 about card 4111 1111 1111 1111',
      'gen_ai.completion.0.role': 'assistant',
      'gen_ai.completion.0.content': 'I wrote to alice@example.com.',
    };
    const cases = {
      computed: pair(content),
      reported: pair({ ...content, 'gen_ai.usage.cost': 0.25 }),
      unpriced: [0, 1].map(() => genaiSpan({ model: 'no-such-model-xyz', input: 5, output: 5, attributes: { ...content, 'llm.cost.total': 0.125 } })),
    };
    const viaSidecar = Object.values(cases).map((p) => p[0]);
    const direct = Object.values(cases).map((p) => p[1]);
    assert.equal((await post(sidecar, '/v1/traces', toProtobuf(traceRequest(viaSidecar, { service: 'fwd' })), PB)).status, 200);
    assert.equal((await post(tier, '/v1/traces', toProtobuf(traceRequest(direct, { service: 'fwd' })), PB)).status, 200);
    const ids = [...viaSidecar, ...direct].map((s) => s.traceId);
    const rows = await waitForRows(db, ids, ids.length, { timeoutMs: 20000 });
    const byTrace = new Map(rows.map((r) => [r.trace_id, r]));
    for (const [name, [fwd, dir]] of Object.entries(cases)) {
      const a = byTrace.get(fwd.traceId);
      const b = byTrace.get(dir.traceId);
      for (const col of COMPARED) assert.deepEqual(a[col], b[col], `${name}: ${col}`);
      assert.deepEqual([...(a.redacted_kinds ?? [])].sort(), [...(b.redacted_kinds ?? [])].sort(), `${name}: redacted_kinds`);
      assert.ok(a.redaction_count >= 3, `${name}: the sidecar's redactions are counted (${a.redaction_count})`);
      assert.doesNotMatch(a.prompt_content, /alice@example\.com|4111 1111/);
      assert.match(a.prompt_content, /\[EMAIL:[0-9a-f]{12}\]/, 'the hash token survives the tier untouched');
    }
    assert.equal(byTrace.get(cases.reported[0].traceId).reported_cost_usd, '0.250000000');
    assert.equal(byTrace.get(cases.computed[0].traceId).reported_cost_usd, null, 'the sidecar\'s gen_ai.usage.cost is not a client-reported cost');
    assert.equal(byTrace.get(cases.unpriced[0].traceId).cost_source, 'reported');
  });

  test('a span the sidecar sends twice is stored once', async () => {
    const traceId = randomTraceId();
    const spans = Array.from({ length: 10 }, () => genaiSpan({ traceId, spanId: randomSpanId(), model: 'gpt-4o-mini' }));
    const body = toProtobuf(traceRequest(spans, { service: 'fwd-twice' }));
    assert.equal((await post(sidecar, '/v1/traces', body, PB)).status, 200);
    assert.equal((await post(sidecar, '/v1/traces', body, PB)).status, 200);
    await waitFor(async () => metric(await tier.metrics(), 'genai_gateway_records_duplicate_total') >= 10, {
      timeoutMs: 20000, what: 'the second copy to reach the tier',
    });
    const rows = await waitForRows(db, [traceId], 10);
    assert.equal(rows.length, 10);
    const roll = await db.query("SELECT sum(total_requests)::int AS n FROM trace_metrics_hourly WHERE service_name = 'fwd-twice'");
    assert.equal(roll.rows[0].n, 10);
  });

  test('GenAI log events are forwarded and stored once, as if sent to the tier directly', async () => {
    const spans = [genaiSpan({ model: 'gpt-4o-mini' }), genaiSpan({ model: 'gpt-4o-mini' })];
    const events = (s) => chatEvents({ traceId: s.traceId, spanId: s.spanId, system: 'be brief', user: 'write to bob@example.com', reply: 'done, bob@example.com' });
    const [fwd, dir] = [sidecar, tier];
    for (const [gw, s] of [[fwd, spans[0]], [dir, spans[1]]]) {
      assert.equal((await post(gw, '/v1/logs', logsToProtobuf(logsRequest(events(s))), PB)).status, 200);
      assert.equal((await post(gw, '/v1/traces', toProtobuf(traceRequest([s])), PB)).status, 200);
    }
    const rows = await waitFor(async () => {
      const r = await db.query('SELECT trace_id, prompt_content, response_content, system_prompt, prompt_hash FROM ai_interaction_traces WHERE trace_id = ANY($1)', [spans.map((s) => s.traceId)]);
      return r.rows.length === 2 && r.rows.every((x) => x.prompt_content && x.response_content) ? r.rows : null;
    }, { timeoutMs: 20000, what: 'the events merged into both rows' });
    const [a, b] = spans.map((s) => rows.find((r) => r.trace_id === s.traceId));
    assert.doesNotMatch(a.prompt_content, /bob@example\.com/);
    assert.match(a.prompt_content, /\[EMAIL:[0-9a-f]{12}\]/);
    for (const col of ['prompt_content', 'response_content', 'system_prompt', 'prompt_hash']) assert.deepEqual(a[col], b[col], col);
    assert.match(a.prompt_hash, /^[0-9a-f]{16}$/);
    const ev = await db.query(
      'SELECT trace_id, event_name, seq, role, content, prompt_hash, redaction_count, redacted_kinds FROM ai_interaction_events WHERE trace_id = ANY($1) ORDER BY event_name, seq',
      [spans.map((s) => s.traceId)],
    );
    const of = (t) => ev.rows.filter((r) => r.trace_id === t).map(({ trace_id: _, ...r }) => r);
    assert.equal(of(spans[0].traceId).length, 3, 'stored once');
    assert.deepEqual(of(spans[0].traceId), of(spans[1].traceId));
    assert.ok(of(spans[0].traceId).some((r) => r.redaction_count > 0));
  });
});
