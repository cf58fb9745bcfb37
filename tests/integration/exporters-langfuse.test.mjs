/*
 * exporters-langfuse.test.mjs: the Langfuse exporter (DESIGN §7) against a local fake that answers as
 * Langfuse documents (tests/lib/fake-langfuse.mjs). Every captured SDK payload (three dialects, gRPC,
 * OTLP/JSON and protobuf) is replayed through the real gateway with Postgres; what reaches "Langfuse" must
 * decode as OTLP with exactly the span ids sent, each once, carry our cost (genai_gateway.cost.*, and
 * langfuse.observation.cost_details equal to the stored cost), usage in Langfuse's exclusive buckets, the
 * trace's session and user ids on every span, the exact Basic auth and ingestion-version headers, gzip,
 * and none of the PII the fixtures' manifests list. The official instrumentation's log fixtures go too:
 * every chat generation of theirs reaches Langfuse with the prompt and completion Postgres has.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { prerequisites, createDatabase, startGateway, waitForRows, waitFor, metric, post } from '../lib/harness.mjs';
import { rawGrpcClient, grpcUnaryRaw } from '../lib/otlp.mjs';
import { GRPC_LOGS_PATH } from '../lib/otlp-logs.mjs';
import { traceFixtures, sendFixture, retimedLogs } from '../lib/fixtures.mjs';
import { startFakeLangfuse, LANGFUSE_PATH } from '../lib/fake-langfuse.mjs';
import { attrsOf } from '../lib/fake-otlp.mjs';

const skip = prerequisites();

/* Semconv parts-form messages as the plain {role, content} form (text parts joined by newlines). */
const plain = (json) => JSON.parse(json).map((m) => ({
  role: m.role,
  content: (m.parts ?? []).filter((p) => p.type === 'text').map((p) => p.content).join('\n'),
}));
const PK = 'pk-lf-it-1234';
const SK = 'sk-lf-it-secret-5678';

describe('Langfuse exporter', { skip: skip ?? false }, () => {
  let db;
  let gw;
  let lf;
  let client;

  before(async () => {
    db = await createDatabase();
    lf = await startFakeLangfuse({ publicKey: PK, secretKey: SK });
    gw = await startGateway({
      dsn: db.dsn,
      config: { exporters: { langfuse: { batch_wait_ms: '100ms' } } },
      env: { LANGFUSE_HOST: lf.url, LANGFUSE_PUBLIC_KEY: PK, LANGFUSE_SECRET_KEY: SK },
    });
    client = rawGrpcClient(gw.grpcAddr);
  });

  after(async () => {
    client?.close();
    await gw?.cleanup();
    await lf?.close();
    await db?.drop();
  });

  /* The official instrumentation's log records for a trace fixture, shifted in time as its spans were. */
  async function sendLogsFixture(fx, shiftNs) {
    const l = retimedLogs(fx, shiftNs);
    if (!l) return false;
    if (fx.transport === 'grpc') {
      const r = await grpcUnaryRaw(client, GRPC_LOGS_PATH, l.body);
      assert.equal(r.code, 0, `${l.file}: ${r.details}`);
    } else {
      const r = await post(gw, '/v1/logs', l.body, { 'content-type': fx.contentType });
      assert.equal(r.status, 200, `${l.file}`);
    }
    return true;
  }

  test('every SDK fixture reaches Langfuse once, annotated, redacted, with the exact auth', async () => {
    const fixtures = traceFixtures();
    assert.ok(fixtures.length >= 9, `trace fixtures: ${fixtures.length}`);
    const sent = [];
    const traces = [];
    const withLogs = [];
    for (const fx of fixtures) {
      const r = await sendFixture(gw, fx, client);
      sent.push(...r.spanIds);
      traces.push(...r.traceIds);
      if (await sendLogsFixture(fx, r.shiftNs)) withLogs.push(fx);
    }
    assert.equal(withLogs.length, 3, 'the otel fixtures have their logs');
    await lf.waitFor(() => new Set(lf.acceptedSpanIds()).size >= new Set(sent).size, { what: `${sent.length} spans at the fake Langfuse` });

    /* Same span ids, each once (a fixture's ids are unique across fixtures). */
    const got = lf.acceptedSpanIds();
    assert.deepEqual([...got].sort(), [...sent].sort());

    /* Every request as Langfuse wants it. */
    for (const r of lf.requests) {
      assert.equal(r.path, LANGFUSE_PATH);
      assert.equal(r.headers.authorization, `Basic ${Buffer.from(`${PK}:${SK}`).toString('base64')}`);
      assert.equal(r.headers['x-langfuse-ingestion-version'], '4');
      assert.equal(r.headers['content-type'], 'application/x-protobuf');
      assert.equal(r.encoding, 'gzip');
      assert.ok(r.ok, `request ${r.n} refused: ${r.error ?? ''}`);
    }

    /* No PII from any manifest, anywhere in what was sent. */
    const text = lf.requests.map((r) => r.raw.toString('latin1')).join('\n');
    for (const fx of fixtures) {
      for (const p of fx.pii) assert.ok(!text.includes(p), `${fx.file}: "${p}" reached Langfuse`);
    }

    /* Cost and usage, checked against what the gateway stored for the same spans. */
    const rows = await waitForRows(db, traces, 1, { settleMs: 500 });
    const spans = new Map(lf.acceptedSpans().map(({ span }) => [span.spanId, attrsOf(span)]));
    let priced = 0;
    let withUsage = 0;
    for (const row of rows) {
      const a = spans.get(row.span_id);
      assert.ok(a, `span ${row.span_id} of a stored row was not exported`);
      if (row.total_cost_usd !== null) {
        priced++;
        assert.ok(Math.abs(a['genai_gateway.cost.total_usd'] - Number(row.total_cost_usd)) < 1e-12, `${row.span_id} cost`);
        assert.equal(a['genai_gateway.cost.source'], row.cost_source);
        const cd = JSON.parse(a['langfuse.observation.cost_details']);
        assert.ok(Math.abs(cd.total - Number(row.total_cost_usd)) < 1e-12, `cost_details total ${cd.total} vs ${row.total_cost_usd}`);
        /* per usage bucket (item 5), adding up to the stored input and output cost */
        if (row.input_cost_usd !== null) assert.ok(Math.abs(cd.input + (cd.input_cached_tokens ?? 0) + (cd.input_cache_creation ?? 0) - Number(row.input_cost_usd)) < 1e-12);
        if (row.output_cost_usd !== null) assert.ok(Math.abs(cd.output + (cd.output_reasoning_tokens ?? 0) - Number(row.output_cost_usd)) < 1e-12);
      } else {
        assert.equal(a['langfuse.observation.cost_details'], undefined, `${row.span_id}: no cost, no cost_details`);
      }
      if (row.input_tokens !== null || row.output_tokens !== null) {
        withUsage++;
        const u = JSON.parse(a['langfuse.observation.usage_details']);
        if (row.input_tokens !== null) assert.equal(u.input, Math.max(row.input_tokens - (row.cache_read_tokens ?? 0) - (row.cache_write_tokens ?? 0), 0));
        if (row.output_tokens !== null) assert.equal(u.output, Math.max(row.output_tokens - (row.reasoning_tokens ?? 0), 0));
        if (row.total_tokens !== null) assert.equal(u.total, row.total_tokens);
      }
    }
    assert.ok(priced >= 10, `priced spans: ${priced}`);
    assert.ok(withUsage >= 10, `spans with usage: ${withUsage}`);

    /* Issue 14, items 2-6: what Langfuse shows of each observation (the fake reads it as Langfuse's worker
     * does) is what Postgres has. */
    const seen = { model: 0, failed: 0, estimated: 0, embeddingModel: 0 };
    const full = (await db.query(`SELECT span_id, model_id, operation, dialect, status, input_tokens, output_tokens,
                                          total_tokens, total_cost_usd, cost_source, streaming_enabled
                                     FROM ai_interaction_traces WHERE trace_id = ANY($1)`, [traces])).rows;
    for (const row of full) {
      const o = lf.observation(row.span_id);
      /* 4: the model, for every dialect */
      if (row.model_id) {
        assert.equal(o.model, row.model_id, `${row.span_id} (${row.dialect} ${row.operation}) model`);
        seen.model++;
        if (row.operation === 'embeddings' && row.dialect === 'openinference') seen.embeddingModel++;
      }
      /* 6: the cost is total_cost_usd, its source said */
      if (row.total_cost_usd !== null) {
        assert.ok(Math.abs(o.cost.total - Number(row.total_cost_usd)) < 1e-12, `${row.span_id} Langfuse cost`);
        assert.equal(o.metadata.gateway_cost_source, row.cost_source);
      }
      const noUsage = row.input_tokens === null && row.output_tokens === null && row.total_tokens === null;
      if (noUsage && row.status === 'error' && row.model_id) {
        /* 2: a failed call: explicit zero usage, no estimate, no cost */
        assert.deepEqual(o.usage, { input: 0, output: 0, total: 0 }, `${row.span_id} failed call usage`);
        assert.equal(o.metadata.gateway_usage, 'zero_failed_call');
        assert.equal(o.estimated, false);
        assert.equal(o.cost, undefined);
        seen.failed++;
      } else if (noUsage && row.model_id && row.status !== 'error' && ['chat', 'text_completion'].includes(row.operation)) {
        /* 3: left to Langfuse's estimate, from the plain {role, content} form */
        assert.equal(o.estimated, true, `${row.span_id} estimated`);
        assert.equal(o.metadata.gateway_usage, 'estimated_by_langfuse');
        if (o.attributes['langfuse.observation.input'] !== undefined) {
          for (const m of o.input) assert.ok(typeof m.role === 'string' && typeof m.content === 'string' && m.parts === undefined, JSON.stringify(m));
        }
        seen.estimated++;
      } else if (!noUsage) {
        assert.equal(o.metadata.gateway_usage, undefined);
      }
    }
    assert.ok(seen.model >= 20, `models checked: ${seen.model}`);
    assert.ok(seen.embeddingModel >= 2, `OpenInference embeddings checked: ${seen.embeddingModel}`);
    assert.ok(seen.failed >= 3, `failed calls checked: ${seen.failed}`);
    assert.ok(seen.estimated >= 2, `generations without usage checked: ${seen.estimated}`);

    /* Session and user ids on every span of each agent trace, whatever span carried them. */
    let checked = 0;
    for (const fx of fixtures) {
      for (const g of fx.groups) {
        const inTrace = lf.acceptedSpans().filter(({ span }) => span.traceId === g.trace_id);
        assert.ok(inTrace.length >= 2, `${fx.file}: spans of trace ${g.trace_id}`);
        for (const { span } of inTrace) {
          const a = attrsOf(span);
          const session = a['langfuse.session.id'] ?? a['session.id'] ?? a['gen_ai.conversation.id'];
          const user = a['langfuse.user.id'] ?? a['user.id'];
          assert.equal(session, g.session_id, `${fx.file}: span ${span.name} session`);
          assert.equal(user, g.user_id, `${fx.file}: span ${span.name} user`);
          checked++;
        }
      }
    }
    assert.ok(checked >= 9, `spans checked for ids: ${checked}`);

    /* Content from the log fixtures: every chat generation of theirs has it at Langfuse, as in Postgres. */
    let joined = 0;
    for (const fx of withLogs) {
      for (const c of fx.manifest.calls.filter((x) => x.expect_span_exported && (x.kind === 'chat' || x.kind.startsWith('stream')))) {
        const o = lf.observation(c.span_id);
        let row;
        await waitFor(async () => {
          row = (await db.query('SELECT prompt_content, response_content FROM ai_interaction_traces WHERE span_id = $1', [c.span_id])).rows[0];
          return row?.prompt_content;
        }, { what: `row content of ${fx.file} call ${c.index}` });
        if (o.metadata.gateway_usage === 'estimated_by_langfuse') {
          /* no usage: the plain form Langfuse tokenizes, the same messages (item 3) */
          assert.deepEqual(o.input, plain(row.prompt_content), `${fx.file} call ${c.index}: input`);
          assert.deepEqual(o.output, plain(row.response_content), `${fx.file} call ${c.index}: output`);
        } else {
          assert.equal(JSON.stringify(o.input), row.prompt_content, `${fx.file} call ${c.index}: input`);
          if (!c.error) assert.equal(JSON.stringify(o.output), row.response_content, `${fx.file} call ${c.index}: output`);
        }
        joined++;
      }
    }
    assert.ok(joined >= 15, `generations checked for content: ${joined}`);
    assert.equal(metric(await gw.metrics(), 'genai_gateway_exporter_join_incomplete_total', { exporter: 'langfuse', reason: 'wait' }), 0);

    /* counted once the answers are back in the gateway */
    await waitFor(async () => metric(await gw.metrics(), 'genai_gateway_exporter_spans_sent_total', { exporter: 'langfuse', signal: 'traces' }) === sent.length, { what: 'sent counter' });
    assert.equal(metric(await gw.metrics(), 'genai_gateway_exporter_up', { exporter: 'langfuse' }), 1);
  });
});

describe('Langfuse exporter: wrong keys', { skip: skip ?? false }, () => {
  test('a 401 is not retried: the batch is dropped, counted, and logged without the key', async () => {
    const lf = await startFakeLangfuse({ publicKey: PK, secretKey: 'the-right-secret' });
    const gw = await startGateway({
      /* no join wait: every span of the fixture goes in the first batch */
      config: { exporters: { langfuse: { batch_wait_ms: '50ms', join_wait_ms: '0s' } } },
      env: { LANGFUSE_HOST: lf.url, LANGFUSE_PUBLIC_KEY: PK, LANGFUSE_SECRET_KEY: 'a-wrong-secret-value' },
    });
    try {
      const client = rawGrpcClient(gw.grpcAddr);
      const fx = traceFixtures().find((f) => f.file === 'otel-grpc-1.pb');
      const r = await sendFixture(gw, fx, client);
      client.close();
      await lf.waitFor((reqs) => reqs.length >= 1);
      let m;
      for (let i = 0; i < 50; i++) {
        m = await gw.metrics();
        if (metric(m, 'genai_gateway_exporter_spans_dropped_total', { exporter: 'langfuse', signal: 'traces', reason: 'rejected' }) > 0) break;
        await new Promise((res) => setTimeout(res, 100));
      }
      assert.equal(metric(m, 'genai_gateway_exporter_spans_dropped_total', { exporter: 'langfuse', signal: 'traces', reason: 'rejected' }), r.spanIds.length);
      await new Promise((res) => setTimeout(res, 1000));
      assert.equal(lf.requests.length, 1, 'not retried');
      assert.match(gw.logs(), /HTTP 401/);
      assert.ok(!gw.logs().includes('a-wrong-secret-value'), 'the secret is never logged');
      assert.ok(!gw.logs().includes(Buffer.from(`${PK}:a-wrong-secret-value`).toString('base64')), 'nor its Basic form');
    } finally {
      await gw.cleanup();
      await lf.close();
    }
  });
});
