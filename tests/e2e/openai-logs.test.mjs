/*
 * openai-logs.test.mjs: prompts and completions through the official instrumentation's log records, end
 * to end. The real openai SDK, instrumented by @opentelemetry/instrumentation-openai with content capture
 * on, calls the local fake OpenAI server; the OTel JS SDK exports spans (sdk-trace) and log records
 * (sdk-logs) over each OTLP protocol (grpc, http/protobuf, http/json) to the real gateway. The chat rows in
 * Postgres must show the system prompt, the prompt and the completion taken from the logs, with the PII
 * in the prompt redacted, and the events stored in ai_interaction_events.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { BatchLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { prerequisites, createDatabase, startGateway, waitForRows, waitFor, metric } from '../lib/harness.mjs';
import { startFakeOpenAI } from '../lib/fake-openai.mjs';
import { captureOpenAI } from '../lib/sdk-client.mjs';

const require = createRequire(import.meta.url);
const skip = prerequisites();
const SERVICE = 'e2e-openai-logs';

/** Forwards to whichever processor is set (one provider per process, exporters switched per test). */
class Routing {
  constructor() {
    this.target = null;
  }
  onStart(...a) { this.target?.onStart?.(...a); }
  onEnd(...a) { this.target?.onEnd?.(...a); }
  onEmit(...a) { this.target?.onEmit?.(...a); }
  forceFlush() { return this.target ? this.target.forceFlush() : Promise.resolve(); }
  shutdown() { return this.target ? this.target.shutdown() : Promise.resolve(); }
}

/** Records each export's result: a batch processor swallows failures, a test must see them. */
function recording(inner) {
  const results = [];
  return {
    results,
    export(items, done) {
      inner.export(items, (r) => {
        results.push(r.code);
        done(r);
      });
    },
    forceFlush: () => inner.forceFlush?.() ?? Promise.resolve(),
    shutdown: () => inner.shutdown(),
  };
}

function exporters(protocol, gw) {
  const opts = (path) => (protocol === 'grpc' ? { url: `http://${gw.grpcAddr}` } : { url: `${gw.httpUrl}${path}` });
  const pkg = { grpc: 'grpc', 'http/protobuf': 'proto', 'http/json': 'http' }[protocol];
  const { OTLPTraceExporter } = require(`@opentelemetry/exporter-trace-otlp-${pkg}`);
  const { OTLPLogExporter } = require(`@opentelemetry/exporter-logs-otlp-${pkg}`);
  return {
    spans: recording(new OTLPTraceExporter({ ...opts('/v1/traces'), timeoutMillis: 10000 })),
    logs: recording(new OTLPLogExporter({ ...opts('/v1/logs'), timeoutMillis: 10000 })),
  };
}

describe('openai SDK with content capture → traces + logs → gateway → rows with content', { skip: skip ?? false }, () => {
  let db;
  let gw;
  let fake;
  let OpenAI;
  let memory;
  let sdk;
  const spanRoute = new Routing();
  const logRoute = new Routing();

  before(async () => {
    db = await createDatabase();
    gw = await startGateway({ dsn: db.dsn });
    fake = await startFakeOpenAI();
    sdk = captureOpenAI({ serviceName: SERVICE, spanProcessors: [spanRoute], logProcessors: [logRoute] });
    ({ OpenAI, spans: memory } = sdk);
  });

  after(async () => {
    await sdk?.shutdown();
    await fake?.close();
    await gw?.cleanup();
    await db?.drop();
  });

  for (const protocol of ['grpc', 'http/protobuf', 'http/json']) {
    test(`exporters ${protocol}`, async () => {
      const ex = exporters(protocol, gw);
      spanRoute.target = new BatchSpanProcessor(ex.spans, { scheduledDelayMillis: 60000 });
      logRoute.target = new BatchLogRecordProcessor({ exporter: ex.logs, scheduledDelayMillis: 60000 }); /* sdk-logs 0.223: one options object */
      const client = new OpenAI({ apiKey: 'sk-test-not-a-real-key', baseURL: fake.baseURL, maxRetries: 0, timeout: 10000 });
      const before = memory.getFinishedSpans().length;
      const user = `Email me at jane.doe@example.com about order 7 [${protocol}]`;
      await client.chat.completions.create({
        model: 'gpt-4o-mini',
        messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: user }],
        max_tokens: 32,
      });
      let streamed = '';
      const stream = await client.chat.completions.create({
        model: 'gpt-4.1-nano',
        messages: [{ role: 'user', content: `Stream a reply [${protocol}]` }],
        stream: true,
        stream_options: { include_usage: true },
      });
      for await (const chunk of stream) streamed += chunk.choices?.[0]?.delta?.content ?? '';
      assert.match(streamed, /^You said:/);
      await spanRoute.forceFlush();
      await logRoute.forceFlush();
      const t = spanRoute.target;
      const l = logRoute.target;
      spanRoute.target = null;
      logRoute.target = null;
      await t.shutdown();
      await l.shutdown();
      assert.deepEqual(ex.spans.results.filter((c) => c !== 0), [], 'span exports accepted');
      assert.deepEqual(ex.logs.results.filter((c) => c !== 0), [], 'log exports accepted');
      assert.ok(ex.logs.results.length >= 1, 'logs were exported');

      const spans = memory.getFinishedSpans().slice(before);
      assert.equal(spans.length, 2);
      const [chat, streamSpan] = spans;
      await waitForRows(db, [chat.spanContext().traceId, streamSpan.spanContext().traceId], 2);
      let row;
      await waitFor(async () => {
        row = (await db.query(`SELECT prompt_content, system_prompt, response_content, redacted_kinds, enrichment_flags
                                 FROM ai_interaction_traces WHERE span_id = $1`, [chat.spanContext().spanId])).rows[0];
        return row?.prompt_content && row?.response_content;
      }, { what: `content of the ${protocol} chat row` });
      const prompt = JSON.parse(row.prompt_content);
      assert.deepEqual(prompt.map((m) => m.role), ['system', 'user']);
      assert.equal(prompt[1].parts[0].content, `Email me at [EMAIL_REDACTED] about order 7 [${protocol}]`);
      assert.equal(row.system_prompt, 'You are terse.');
      const response = JSON.parse(row.response_content);
      assert.equal(response[0].role, 'assistant');
      assert.equal(response[0].parts[0].content, `You said: Email me at [EMAIL_REDACTED] about order 7 [${protocol}]`);
      assert.equal(response[0].finish_reason, 'stop');
      assert.ok(row.redacted_kinds.includes('email'));
      assert.ok(!JSON.stringify(row).includes('jane.doe@example.com'));

      let srow;
      await waitFor(async () => {
        srow = (await db.query('SELECT prompt_content, response_content FROM ai_interaction_traces WHERE span_id = $1',
          [streamSpan.spanContext().spanId])).rows[0];
        return srow?.prompt_content && srow?.response_content;
      }, { what: `content of the ${protocol} stream row` });
      assert.equal(JSON.parse(srow.prompt_content)[0].parts[0].content, `Stream a reply [${protocol}]`);
      assert.equal(JSON.parse(srow.response_content)[0].parts[0].content, streamed);

      const ev = await db.query('SELECT event_name FROM ai_interaction_events WHERE span_id = $1 ORDER BY time, seq',
        [chat.spanContext().spanId]);
      assert.deepEqual(ev.rows.map((r) => r.event_name), ['gen_ai.system.message', 'gen_ai.user.message', 'gen_ai.choice']);
      const m = await gw.metrics();
      assert.ok(metric(m, 'genai_gateway_log_records_accepted_total') >= 3);
    });
  }
});
