/*
 * openai-logs-simhash.test.mjs: prompt_simhash of a call whose prompt came only in log records (issue 16,
 * item 4). The real openai SDK, instrumented by @opentelemetry/instrumentation-openai with content capture
 * on, calls the local fake OpenAI server; the span (no content) and the log records (the messages) are
 * captured in memory and then exported with the real OTLP exporters in a chosen order: logs before the
 * span, the span before the logs, both at once, and through a forwarding sidecar to the tier. Each time
 * the row's prompt_simhash is the SimHash of the prompt text as sent (tests/lib/simhash.mjs computes it
 * independently), taken before redaction (the prompt carries an e-mail address the gateway redacts), and
 * prompt_hash is set beside it. Input messages split over two log requests give neither (prompt_hash's
 * rule, migrations/0005 and 0009: no value of the whole can be rebuilt from redacted rows).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { prerequisites, createDatabase, startGateway, waitFor } from '../lib/harness.mjs';
import { startFakeOpenAI } from '../lib/fake-openai.mjs';
import { simhash } from '../lib/simhash.mjs';
import { captureOpenAI } from '../lib/sdk-client.mjs';

const skip = prerequisites();
const SERVICE = 'e2e-openai-logs-simhash';
const SYSTEM = 'You are terse.';
const REDACTION = { detectors: { email: 'hash' } };
const HMAC = { GENAI_GW_REDACTION_HMAC_KEY: 'simhash-test-hmac-key-0123456789' };

function exportOnce(exporter, items) {
  return new Promise((resolve, reject) => {
    exporter.export(items, (r) => (r.code === 0 ? resolve() : reject(r.error ?? new Error(`export failed: ${r.code}`))));
  });
}

describe('openai SDK, prompt only in log records → prompt_simhash as for a span-carried prompt', { skip: skip ?? false }, () => {
  let db;
  let gw;
  let tier;
  let sidecar;
  let fake;
  let sdk;

  before(async () => {
    db = await createDatabase();
    gw = await startGateway({ dsn: db.dsn, env: HMAC, config: { redaction: REDACTION } });
    tier = await startGateway({ dsn: db.dsn, env: HMAC, config: { redaction: REDACTION, postgres: { batch_wait_ms: '20ms' } } });
    sidecar = await startGateway({
      env: HMAC,
      config: { redaction: REDACTION, exporters: { otlp: { endpoint: tier.httpUrl, protocol: 'http', batch_wait_ms: '50ms' } } },
    });
    fake = await startFakeOpenAI();
    sdk = captureOpenAI({ serviceName: SERVICE });
  });

  after(async () => {
    await sdk?.shutdown();
    await fake?.close();
    await sidecar?.cleanup();
    await tier?.cleanup();
    await gw?.cleanup();
    await db?.drop();
  });

  /** One chat call: its span and its log records, captured in memory, and the prompt text as sent. */
  async function call(tag) {
    const { OpenAI, spans, records } = sdk;
    spans.reset();
    records.reset();
    const user = `Email me at jane.doe@example.com about the quarterly invoice for order ${tag}`;
    const client = new OpenAI({ apiKey: 'sk-test-not-a-real-key', baseURL: fake.baseURL, maxRetries: 0, timeout: 10000 });
    await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'system', content: SYSTEM }, { role: 'user', content: user }],
      max_tokens: 32,
    });
    const s = spans.getFinishedSpans();
    const l = records.getFinishedLogRecords();
    assert.equal(s.length, 1);
    assert.ok(l.some((r) => r.eventName === 'gen_ai.user.message' || r.attributes['event.name'] === 'gen_ai.user.message'),
      'the instrumentation put the prompt in a log record');
    assert.ok(!JSON.stringify(s[0].attributes).includes('jane.doe'), 'the span itself carries no prompt');
    return { span: s[0], logs: l, text: `${SYSTEM}\n${user}`, spanId: s[0].spanContext().spanId };
  }

  async function row(spanId, what) {
    let r;
    await waitFor(async () => {
      r = (await db.query(`SELECT prompt_simhash::text AS sh, prompt_hash, prompt_content FROM ai_interaction_traces
                           WHERE span_id = $1`, [spanId])).rows[0];
      return r?.prompt_content;
    }, { what });
    return r;
  }

  function exporters(target) {
    return {
      spans: new OTLPTraceExporter({ url: `${target.httpUrl}/v1/traces`, timeoutMillis: 10000 }),
      logs: new OTLPLogExporter({ url: `${target.httpUrl}/v1/logs`, timeoutMillis: 10000 }),
    };
  }

  function assertSimhash(r, c, what) {
    assert.ok(!r.prompt_content.includes('jane.doe'), `${what}: the stored prompt is redacted`);
    assert.match(r.prompt_hash ?? '', /^[0-9a-f]{16}$/, `${what}: prompt_hash`);
    assert.equal(r.sh, simhash(c.text), `${what}: prompt_simhash is the SimHash of the prompt text as sent`);
    assert.notEqual(r.sh, simhash(c.text.replace('jane.doe@example.com', '')), `${what}: taken before redaction`);
  }

  test('logs before the span', async () => {
    const c = await call('logs-first');
    const ex = exporters(gw);
    await exportOnce(ex.logs, c.logs);
    await waitFor(async () => (await db.query('SELECT 1 FROM ai_interaction_events WHERE span_id = $1', [c.spanId])).rowCount > 0,
      { what: 'the events stored before the span is sent' });
    await exportOnce(ex.spans, [c.span]);
    assertSimhash(await row(c.spanId, 'logs-first row'), c, 'logs first');
  });

  test('the span before the logs', async () => {
    const c = await call('span-first');
    const ex = exporters(gw);
    await exportOnce(ex.spans, [c.span]);
    await waitFor(async () => (await db.query('SELECT 1 FROM ai_interaction_traces WHERE span_id = $1', [c.spanId])).rowCount > 0,
      { what: 'the row stored before the logs are sent' });
    await exportOnce(ex.logs, c.logs);
    assertSimhash(await row(c.spanId, 'span-first row'), c, 'span first');
  });

  test('span and logs at once', async () => {
    const c = await call('together');
    const ex = exporters(gw);
    await Promise.all([exportOnce(ex.logs, c.logs), exportOnce(ex.spans, [c.span])]);
    assertSimhash(await row(c.spanId, 'together row'), c, 'together');
  });

  test('through a forwarding sidecar to the tier (the sidecar redacts, the tier keeps its stamps)', async () => {
    const c = await call('forwarded');
    const ex = exporters(sidecar);
    await exportOnce(ex.logs, c.logs);
    await exportOnce(ex.spans, [c.span]);
    assertSimhash(await row(c.spanId, 'forwarded row'), c, 'forwarded');
  });

  test('input messages split over two log requests: neither hash (no value of the whole is rebuilt)', async () => {
    const c = await call('split');
    const ex = exporters(gw);
    const first = c.logs.filter((r) => (r.eventName ?? r.attributes['event.name']) === 'gen_ai.system.message');
    assert.equal(first.length, 1);
    await exportOnce(ex.spans, [c.span]);
    await exportOnce(ex.logs, first);
    await exportOnce(ex.logs, c.logs.filter((r) => !first.includes(r)));
    let r;
    await waitFor(async () => {
      r = (await db.query(`SELECT prompt_simhash::text AS sh, prompt_hash, prompt_content FROM ai_interaction_traces
                           WHERE span_id = $1`, [c.spanId])).rows[0];
      return r?.prompt_content && JSON.parse(r.prompt_content).length === 2;
    }, { what: 'split row' });
    assert.equal(r.prompt_hash, null);
    assert.equal(r.sh, null);
  });
});
