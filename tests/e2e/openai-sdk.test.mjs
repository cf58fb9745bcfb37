/*
 * openai-sdk.test.mjs: the whole path as a user runs it. The real openai SDK, instrumented by the
 * official OpenTelemetry instrumentation, calls a local fake OpenAI server; the SDK exports over each
 * OTLP protocol (grpc, http/protobuf, http/json) to the real gateway, which stores rows in a real
 * Postgres. Rows are checked against the fake server's usage numbers and the ids the SDK generated,
 * and re-exporting the same spans must not add rows.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { prerequisites, createDatabase, startGateway, waitForRows, countRows, metric } from '../lib/harness.mjs';
import { startFakeOpenAI } from '../lib/fake-openai.mjs';
import { setupTracing, makeExporter, RecordingExporter, trace, context } from '../lib/sdk-client.mjs';
import { runOpenAIScenario } from '../lib/scenario.mjs';

const skip = prerequisites();
const SERVICE = 'e2e-openai';

const hrToMs = (hr) => hr[0] * 1000 + Math.floor(hr[1] / 1e6);

// An HTTP/1.1 proxy in front of the gateway's OTLP/HTTP port that counts request bodies by their first
// bytes (gzip's 1f 8b or not) and passes everything on unchanged.
async function httpProxy(target, seen) {
  const up = new URL(target);
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const gz = body[0] === 0x1f && body[1] === 0x8b && req.headers['content-encoding'] === 'gzip';
      seen[gz ? 'gzip' : 'plain']++;
      const fwd = http.request({ host: up.hostname, port: up.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      });
      fwd.on('error', () => res.destroy());
      fwd.end(body);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}

describe('openai SDK → OTLP exporter → gateway → Postgres', { skip: skip ?? false }, () => {
  let db;
  let gw;
  let fake;
  let tracing;

  before(async () => {
    db = await createDatabase();
    gw = await startGateway({ dsn: db.dsn });
    fake = await startFakeOpenAI();
    tracing = setupTracing({ serviceName: SERVICE });
  });

  after(async () => {
    await tracing?.shutdown();
    await fake?.close();
    if (gw) {
      const r = await gw.stop();
      await gw.cleanup();
      assert.deepEqual(r, { code: 0, signal: null }, 'gateway exits 0 on SIGTERM');
    }
    await db?.drop();
  });

  // DESIGN §3: a user id on the app's HTTP server span (no GenAI attribute: no row of its own) reaches the
  // rows of the OpenAI calls made under it, though the SDK exports the calls first (they end first).
  test('enduser.id on the HTTP server span fills the rows of the calls under it, exported before it', async () => {
    const exporter = tracing.useExporter(new RecordingExporter(makeExporter('http/protobuf', { httpUrl: gw.httpUrl, grpcAddr: gw.grpcAddr })));
    const client = new tracing.OpenAI({ apiKey: 'sk-test-not-a-real-key', baseURL: fake.baseURL, maxRetries: 0, timeout: 10000 });
    const user = `web-user-${Date.now()}`;
    const root = tracing.tracer.startSpan('POST /ask', { kind: 1, attributes: { 'http.request.method': 'POST', 'http.route': '/ask' } });
    const ctx = trace.setSpan(context.active(), root);
    const before = tracing.finished().length;
    await context.with(ctx, () => client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }] }));
    const call = tracing.finished().slice(before).find((sp) => sp.parentSpanContext?.spanId === root.spanContext().spanId);
    assert.ok(call, 'the instrumented call is a child of the HTTP span');
    await tracing.flush(); // the call alone
    const traceId = root.spanContext().traceId;
    const [row] = await waitForRows(db, [traceId], 1, { timeoutMs: 20000, settleMs: 0 });
    assert.equal(row.user_id, null, 'no user known yet');
    root.setAttribute('enduser.id', user);
    root.end();
    await tracing.flush(); // then the HTTP span, which gives no row
    await tracing.detachExporter();
    assert.deepEqual(exporter.failures(), [], 'every export accepted');
    const deadline = Date.now() + 20000;
    let got;
    while (Date.now() < deadline) {
      got = (await db.query('SELECT user_id FROM ai_interaction_traces WHERE trace_id = $1', [traceId])).rows;
      if (got[0]?.user_id) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(got, [{ user_id: user }], 'the call\'s row has the HTTP span\'s user, and is still the only row');
  });

  // The exporters' compression option (OTEL_EXPORTER_OTLP_COMPRESSION=gzip): the SDK gzips each request
  // (HTTP: Content-Encoding: gzip; gRPC: grpc-encoding gzip, compressed messages); every span lands. For the
  // HTTP exporters a proxy on the way checks that the bodies really were gzip.
  for (const protocol of ['grpc', 'http/protobuf', 'http/json']) {
    test(`exporter ${protocol} with gzip compression`, async () => {
      const seen = { gzip: 0, plain: 0 };
      const proxy = protocol === 'grpc' ? null : await httpProxy(gw.httpUrl, seen);
      const exporter = tracing.useExporter(new RecordingExporter(makeExporter(protocol, {
        httpUrl: proxy ? proxy.url : gw.httpUrl, grpcAddr: gw.grpcAddr, compression: 'gzip' })));
      const { expected } = await runOpenAIScenario({ tracing, fake, tag: `gz-${protocol}` });
      await tracing.flush();
      await tracing.detachExporter();
      await proxy?.close();
      assert.deepEqual(exporter.failures(), [], 'every export accepted');
      const traceIds = [...new Set(expected.map((e) => e.traceId))];
      const rows = await waitForRows(db, traceIds, expected.length, { timeoutMs: 20000, settleMs: 300 });
      assert.equal(rows.length, expected.length, 'one row per GenAI span');
      const byId = new Map(rows.map((r) => [r.span_id, r]));
      for (const e of expected) assert.equal(byId.get(e.spanId)?.input_tokens, e.inputTokens, `${protocol} ${e.step}`);
      if (proxy) assert.ok(seen.gzip >= 1 && seen.plain === 0, `bodies seen: ${JSON.stringify(seen)}`);
    });
  }

  for (const protocol of ['grpc', 'http/protobuf', 'http/json']) {
    test(`exporter ${protocol}`, async () => {
      const before = await gw.metrics();
      const exporter = tracing.useExporter(new RecordingExporter(makeExporter(protocol, { httpUrl: gw.httpUrl, grpcAddr: gw.grpcAddr, headers: { 'x-e2e-run': protocol } })));
      const session = `sess-1-${protocol}`;
      const user = `u-1-${protocol}`;
      const { expected, spans } = await runOpenAIScenario({ tracing, fake, tag: protocol, session, user });
      await tracing.flush();
      await tracing.detachExporter();
      assert.deepEqual(exporter.failures(), [], 'every export accepted');
      assert.ok(exporter.results.length >= 1);
      assert.equal(spans.length, 8);
      assert.equal(expected.length, 8);

      const traceIds = [...new Set(expected.map((e) => e.traceId))];
      const rows = await waitForRows(db, traceIds, expected.length, { timeoutMs: 20000, settleMs: 500 });
      assert.equal(rows.length, expected.length, 'one row per GenAI span');

      const byId = new Map(rows.map((r) => [r.span_id, r]));
      for (const e of expected) {
        const r = byId.get(e.spanId);
        assert.ok(r, `row for ${e.step} (${e.spanId})`);
        const at = `${protocol} ${e.step}`;
        assert.equal(r.trace_id, e.traceId, at);
        assert.equal(r.parent_span_id, e.parentSpanId, `${at} parent`);
        assert.equal(r.service_name, SERVICE, at);
        assert.equal(r.span_name, e.span.name, at);
        assert.equal(r.operation, e.operation, at);
        assert.equal(r.request_model, e.requestModel, `${at} request_model`);
        assert.equal(r.response_model, e.responseModel, `${at} response_model`);
        if (e.requestModel) {
          assert.equal(r.provider, 'openai', `${at} provider`);
          assert.ok(r.model_id, `${at} model_id`);
          assert.equal(r.dialect, 'semconv', `${at} dialect`);
        }
        assert.equal(r.input_tokens, e.inputTokens, `${at} input_tokens`);
        assert.equal(r.output_tokens, e.outputTokens, `${at} output_tokens`);
        assert.equal(r.total_tokens, e.totalTokens, `${at} total_tokens`);
        assert.equal(r.status, e.status, `${at} status`);
        if (e.status === 'error') {
          assert.equal(r.error_code, e.errorType, `${at} error_code`);
          assert.match(r.error_message ?? '', new RegExp(String(e.httpStatus)), `${at} error_message`);
        } else {
          assert.equal(r.error_code, null, `${at} error_code`);
        }
        assert.equal(r.session_id, e.sessionId, `${at} session_id`);
        assert.equal(r.user_id, e.userId, `${at} user_id`);
        assert.equal(r.start_time.getTime(), hrToMs(e.span.startTime), `${at} start_time`);
      }

      const agent = expected.find((e) => e.step === 'agent');
      const children = rows.filter((r) => r.parent_span_id === agent.spanId);
      assert.equal(children.length, 2, 'both calls parented to the agent span');

      const after = await gw.metrics();
      assert.ok(metric(after, 'genai_gateway_spans_received_total') >= metric(before, 'genai_gateway_spans_received_total') + 8);
      assert.ok(metric(after, 'genai_gateway_spans_accepted_total') >= metric(before, 'genai_gateway_spans_accepted_total') + 8);

      // The same spans once more through a fresh exporter of the same protocol: accepted, not stored twice.
      const again = new RecordingExporter(makeExporter(protocol, { httpUrl: gw.httpUrl, grpcAddr: gw.grpcAddr }));
      const res = await again.exportAsync(spans);
      assert.equal(res.code, 0, `re-export: ${res.error?.message}`);
      // A marker exported after the re-send: once its row is there, the re-send has been written too.
      tracing.tracer.startSpan('marker', { attributes: { 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': 'marker-model' } }).end();
      const marker = tracing.finished().at(-1);
      assert.equal((await again.exportAsync([marker])).code, 0);
      await again.shutdown();
      await waitForRows(db, [marker.spanContext().traceId], 1, { settleMs: 300 });
      assert.equal(await countRows(db, traceIds), expected.length, 're-sent spans are not duplicated');
      const stored = await gw.metrics();
      assert.ok(metric(stored, 'genai_gateway_records_stored_total') >= metric(before, 'genai_gateway_records_stored_total') + 8);
    });
  }
});
