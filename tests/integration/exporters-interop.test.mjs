/*
 * exporters-interop.test.mjs: a gateway exporting to two other gateway instances (their OTLP receivers),
 * one over OTLP/HTTP (the otlp exporter) and one over OTLP/gRPC (the signoz exporter, no key), both gzip:
 * interop with our own receiver in both directions. Every GenAI span of the replayed SDK payloads must be
 * stored by both receiving gateways, field for field the same, carrying the first gateway's cost stamp,
 * with no PII.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { prerequisites, createDatabase, startGateway, waitFor, metric } from '../lib/harness.mjs';
import { rawGrpcClient } from '../lib/otlp.mjs';
import { traceFixtures, sendFixture } from '../lib/fixtures.mjs';

const skip = prerequisites();

const FIELDS = ['trace_id', 'span_id', 'parent_span_id', 'operation', 'provider', 'request_model', 'response_model', 'model_id',
  'input_tokens', 'output_tokens', 'total_tokens', 'input_cost_usd', 'output_cost_usd', 'total_cost_usd', 'cost_source', 'price_id',
  'status', 'session_id', 'user_id', 'prompt_content', 'response_content'];

describe('gateway to gateway', { skip: skip ?? false }, () => {
  let dbHttp;
  let dbGrpc;
  let viaHttp;
  let viaGrpc;
  let front;

  before(async () => {
    dbHttp = await createDatabase();
    dbGrpc = await createDatabase();
    viaHttp = await startGateway({ dsn: dbHttp.dsn });
    viaGrpc = await startGateway({ dsn: dbGrpc.dsn });
    front = await startGateway({
      config: {
        exporters: {
          otlp: { endpoint: viaHttp.httpUrl, protocol: 'http', batch_wait_ms: '50ms' },
          signoz: { endpoint: viaGrpc.grpcAddr, protocol: 'grpc', batch_wait_ms: '50ms' },
        },
      },
    });
  });

  after(async () => {
    await front?.cleanup();
    await viaHttp?.cleanup();
    await viaGrpc?.cleanup();
    await dbHttp?.drop();
    await dbGrpc?.drop();
  });

  test('every GenAI span lands in both downstream gateways, identical, priced, redacted', async () => {
    const client = rawGrpcClient(front.grpcAddr);
    const want = [];
    const pii = [];
    try {
      for (const fx of traceFixtures()) {
        await sendFixture(front, fx, client);
        for (const c of fx.manifest.calls) if (c.expect_span_exported && c.span_id) want.push(c.span_id);
        pii.push(...fx.pii);
      }
    } finally {
      client.close();
    }
    const q = 'SELECT * FROM ai_interaction_traces WHERE span_id = ANY($1) ORDER BY span_id';
    for (const db of [dbHttp, dbGrpc]) {
      await waitFor(async () => (await db.query(q, [want])).rows.length === want.length, { what: `${want.length} rows downstream` });
    }
    const a = (await dbHttp.query(q, [want])).rows;
    const b = (await dbGrpc.query(q, [want])).rows;
    assert.equal(a.length, want.length);
    for (let i = 0; i < a.length; i++) {
      for (const f of FIELDS) assert.deepEqual(a[i][f], b[i][f], `${a[i].span_id}.${f}: HTTP path vs gRPC path`);
    }
    const priced = a.filter((r) => r.total_cost_usd !== null);
    assert.ok(priced.length >= 10, `priced rows: ${priced.length}`);
    for (const r of priced) {
      /* the first gateway's stamp travelled with the span (the downstream one stamps its own copy again) */
      assert.ok(Math.abs(Number(r.attributes['genai_gateway.cost.total_usd']) - Number(r.total_cost_usd)) < 1e-9, `${r.span_id}`);
    }
    const text = JSON.stringify([a, b]);
    for (const p of pii) assert.ok(!text.includes(p), `"${p}" reached a downstream gateway`);

    /* The sender counted what it sent; the receivers refused nothing. */
    const m = await front.metrics();
    for (const e of ['otlp', 'signoz']) {
      assert.ok(metric(m, 'genai_gateway_exporter_spans_sent_total', { exporter: e, signal: 'traces' }) >= want.length);
      assert.equal(metric(m, 'genai_gateway_exporter_spans_dropped_total', { exporter: e, signal: 'traces', reason: 'partial_success' }), 0);
      assert.equal(metric(m, 'genai_gateway_exporter_spans_dropped_total', { exporter: e, signal: 'traces', reason: 'rejected' }), 0);
    }
    for (const g of [viaHttp, viaGrpc]) assert.equal(metric(await g.metrics(), 'genai_gateway_requests_failed_total'), 0);
  });
});
