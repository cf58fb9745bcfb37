/*
 * openai-langfuse-join.test.mjs: issue 14, item 1, end to end. The real openai SDK, instrumented by
 * @opentelemetry/instrumentation-openai with content capture on, exports spans and log records with the
 * SDKs' default batch schedules (BatchSpanProcessor every 5 s, BatchLogRecordProcessor every 1 s) while it
 * makes 40 calls 0.4 s apart (33 chat calls, 7 embeddings). The message content comes only in the log
 * records, and with those schedules a call's logs reach the gateway seconds before its span: every chat
 * generation must still reach Langfuse with its input and output, the same as the Postgres row.
 * The figure (generations without input at Langfuse) is printed as a diagnostic: before the join it was
 * 25 of 33 here (the issue measured 23 of 33), with the join 0.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { logs } from '@opentelemetry/api-logs';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { BatchSpanProcessor, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { LoggerProvider, BatchLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { OpenAIInstrumentation } from '@opentelemetry/instrumentation-openai';
import { prerequisites, createDatabase, startGateway, waitFor, metric, sleep } from '../lib/harness.mjs';
import { startFakeOpenAI } from '../lib/fake-openai.mjs';
import { startFakeLangfuse } from '../lib/fake-langfuse.mjs';
import { attrsOf } from '../lib/fake-otlp.mjs';

const require = createRequire(import.meta.url);
const skip = prerequisites();
const PK = 'pk-lf-join';
const SK = 'sk-lf-join-secret';

describe('official instrumentation, default SDK schedules → Langfuse gets every prompt and completion', { skip: skip ?? false }, () => {
  let db;
  let gw;
  let lf;
  let fake;
  let tracerProvider;
  let loggerProvider;
  let instrumentation;
  const memory = new InMemorySpanExporter();

  before(async () => {
    db = await createDatabase();
    lf = await startFakeLangfuse({ publicKey: PK, secretKey: SK });
    /* The Langfuse exporter with its defaults. */
    gw = await startGateway({ dsn: db.dsn, env: { LANGFUSE_HOST: lf.url, LANGFUSE_PUBLIC_KEY: PK, LANGFUSE_SECRET_KEY: SK } });
    fake = await startFakeOpenAI();
    const resource = resourceFromAttributes({ 'service.name': 'e2e-langfuse-join' });
    const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-proto');
    const { OTLPLogExporter } = require('@opentelemetry/exporter-logs-otlp-proto');
    /* The SDKs' default schedules: no scheduledDelayMillis given (spans 5000 ms, logs 1000 ms). */
    tracerProvider = new NodeTracerProvider({
      resource,
      spanProcessors: [new SimpleSpanProcessor(memory), new BatchSpanProcessor(new OTLPTraceExporter({ url: `${gw.httpUrl}/v1/traces` }))],
    });
    tracerProvider.register();
    loggerProvider = new LoggerProvider({
      resource,
      processors: [new BatchLogRecordProcessor({ exporter: new OTLPLogExporter({ url: `${gw.httpUrl}/v1/logs` }) })],
    });
    logs.setGlobalLoggerProvider(loggerProvider);
    instrumentation = new OpenAIInstrumentation({ captureMessageContent: true });
    registerInstrumentations({ instrumentations: [instrumentation], tracerProvider, loggerProvider });
  });

  after(async () => {
    instrumentation?.disable();
    await tracerProvider?.shutdown();
    await loggerProvider?.shutdown();
    await fake?.close();
    await gw?.cleanup();
    await lf?.close();
    await db?.drop();
  });

  test('40 calls 0.4 s apart: 33 generations, each with the input and output Postgres has', async (t) => {
    const mod = require('openai'); /* after the hook is in place, so it is patched */
    const OpenAI = mod.OpenAI ?? mod.default ?? mod;
    const client = new OpenAI({ apiKey: 'sk-test-not-a-real-key', baseURL: fake.baseURL, maxRetries: 0, timeout: 10000 });
    const calls = [];
    for (let i = 0; i < 40; i++) {
      if (i % 6 === 2) calls.push(client.embeddings.create({ model: 'text-embedding-3-small', input: `embed ${i}` }));
      else calls.push(client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `question number ${i}` }] }));
      await sleep(400);
    }
    await Promise.all(calls);
    /* The application keeps running: its processors export on their own schedules (no forced flush). */
    const chats = () => memory.getFinishedSpans().filter((s) => s.name.startsWith('chat '));
    assert.equal(chats().length, 33);
    const ids = chats().map((s) => s.spanContext().spanId);
    const at = () => new Map(lf.acceptedSpans().map(({ span }) => [span.spanId, attrsOf(span)]));
    await lf.waitFor(() => ids.every((id) => at().has(id)), { timeoutMs: 60000, what: 'the 33 generations at Langfuse' });
    const got = at();
    const missing = ids.filter((id) => !got.get(id)['gen_ai.input.messages']);
    t.diagnostic(`generations without input at Langfuse: ${missing.length} of ${ids.length}`);
    assert.deepEqual(missing, [], 'every generation has its input at Langfuse');

    const rows = await waitFor(async () => {
      const r = (await db.query('SELECT span_id, prompt_content, response_content FROM ai_interaction_traces WHERE span_id = ANY($1)', [ids])).rows;
      return r.length === ids.length && r.every((x) => x.prompt_content && x.response_content) && r;
    }, { timeoutMs: 30000, what: 'the rows with their content' });
    for (const row of rows) {
      const a = got.get(row.span_id);
      assert.equal(a['gen_ai.input.messages'], row.prompt_content, `${row.span_id}: input as in Postgres`);
      assert.equal(a['gen_ai.output.messages'], row.response_content, `${row.span_id}: output as in Postgres`);
    }
    const m = await gw.metrics();
    assert.equal(metric(m, 'genai_gateway_exporter_join_incomplete_total', { exporter: 'langfuse', reason: 'wait' }), 0);
  });
});
