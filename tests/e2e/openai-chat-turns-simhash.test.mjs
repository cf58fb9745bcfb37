/*
 * openai-chat-turns-simhash.test.mjs: a chat's turns in separate exports, through the chat history kept
 * between requests (receivers.history_cache_bytes). The real openai SDK, instrumented by
 * @opentelemetry/instrumentation-openai with content capture on, holds a four-turn chat with the local fake
 * OpenAI server, resending the system prompt and every earlier turn on each call as a chat client does.
 * Each call's log records (the messages) and span are exported with the real OTLP exporters right after the
 * call, so every turn reaches the gateway in requests of its own. Each row's prompt_simhash is the SimHash
 * of the prompt as sent (tests/lib/simhash.mjs computes it independently) and its prompt_hash the SHA-256
 * of the prompt as the gateway stores it (computed here from the row), on a gateway with the cache (the
 * default: /metrics shows the later turns finding the earlier ones' messages and, on a CPU with the SHA
 * extensions, resuming the earlier prompt's SHA-256) and on one without it (history_cache_bytes: 0: no
 * cache series at all) alike.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { prerequisites, createDatabase, startGateway, waitFor, metric } from '../lib/harness.mjs';
import { startFakeOpenAI } from '../lib/fake-openai.mjs';
import { simhash } from '../lib/simhash.mjs';
import { captureOpenAI } from '../lib/sdk-client.mjs';

const skip = prerequisites();
const SERVICE = 'e2e-openai-chat-turns';
/* every message 128 bytes or more: what the cache keeps */
const SYSTEM = 'You are the support assistant of a hardware shop. Answer in two sentences, cite the order number, ' +
  'and never promise a refund before the returns desk has confirmed it.';
const QUESTIONS = [
  'My order 4411 arrived with a cracked screen on the tablet and the box was dented on one corner; the ' +
    'courier left it at the door without asking for a signature. What do I do now?',
  'I sent the photos you asked for yesterday evening, both of the tablet and of the dented box, from the ' +
    'address on the order. Did they arrive, and is anything else missing from my claim?',
  'The courier says the pickup is booked for Thursday morning between nine and noon. Should I pack the ' +
    'tablet in its original box again, or in a new one with more padding around it?',
  'Thanks. Once the returns desk confirms the claim, how many working days does the replacement usually ' +
    'take to be delivered to an address outside the city, and will it need a signature?',
];

/* The gateway resumes SHA-256 only with the SHA extensions (core/sha256.h). */
const SHA_NI = /^flags\s*:.*\bsha_ni\b/m.test(fs.readFileSync('/proc/cpuinfo', 'utf8'));

function exportOnce(exporter, items) {
  return new Promise((resolve, reject) => {
    exporter.export(items, (r) => (r.code === 0 ? resolve() : reject(r.error ?? new Error(`export failed: ${r.code}`))));
  });
}

describe('openai SDK, a chat whose turns come in separate exports → prompt_simhash through the cache', { skip: skip ?? false }, () => {
  let dbs = [];
  let withCache;
  let noCache;
  let fake;
  let sdk;

  before(async () => {
    dbs = [await createDatabase(), await createDatabase()];
    withCache = await startGateway({ dsn: dbs[0].dsn });
    noCache = await startGateway({ dsn: dbs[1].dsn, config: { receivers: { history_cache_bytes: 0 } } });
    fake = await startFakeOpenAI();
    sdk = captureOpenAI({ serviceName: SERVICE });
  });

  after(async () => {
    await sdk?.shutdown();
    await fake?.close();
    await withCache?.cleanup();
    await noCache?.cleanup();
    for (const db of dbs) await db?.drop();
  });

  async function row(db, spanId, what) {
    let r;
    await waitFor(async () => {
      r = (await db.query(`SELECT prompt_simhash::text AS sh, prompt_hash, prompt_content FROM ai_interaction_traces
                           WHERE span_id = $1 AND prompt_simhash IS NOT NULL`, [spanId])).rows[0];
      return r;
    }, { what });
    return r;
  }

  test('four turns, each exported on its own to both gateways: the SimHash of each prompt as sent', async () => {
    const { OpenAI, spans, records } = sdk;
    const client = new OpenAI({ apiKey: 'sk-test-not-a-real-key', baseURL: fake.baseURL, maxRetries: 0, timeout: 10000 });
    const targets = [withCache, noCache].map((gw) => ({
      gw,
      spans: new OTLPTraceExporter({ url: `${gw.httpUrl}/v1/traces`, timeoutMillis: 10000 }),
      logs: new OTLPLogExporter({ url: `${gw.httpUrl}/v1/logs`, timeoutMillis: 10000 }),
    }));
    const hits = async (kind = 'simhash') =>
      metric(await withCache.metrics(), 'genai_gateway_history_cache_lookups_total', { kind, result: 'hit' });
    const history = [{ role: 'system', content: SYSTEM }];
    const turns = [];
    for (const q of QUESTIONS) {
      spans.reset();
      records.reset();
      history.push({ role: 'user', content: q });
      const res = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [...history], max_tokens: 64 });
      const text = history.map((m) => m.content).join('\n');
      history.push({ role: 'assistant', content: res.choices[0].message.content });
      const s = spans.getFinishedSpans();
      assert.equal(s.length, 1);
      const l = records.getFinishedLogRecords();
      for (const t of targets) {
        await exportOnce(t.logs, l);
        await exportOnce(t.spans, [s[0]]);
      }
      turns.push({ spanId: s[0].spanContext().spanId, text, hitsAfter: null, prefixHitsAfter: null });
      const rows = await Promise.all(dbs.map((db) => row(db, turns.at(-1).spanId, `turn ${turns.length} row`)));
      turns.at(-1).hitsAfter = await hits();
      turns.at(-1).prefixHitsAfter = await hits('prompt_hash');
      for (const [i, r] of rows.entries())
        assert.equal(r.sh, simhash(text), `turn ${turns.length}, gateway ${i ? 'without' : 'with'} the cache: prompt_simhash`);
      assert.equal(rows[0].prompt_hash, rows[1].prompt_hash, `turn ${turns.length}: the same prompt_hash`);
      assert.equal(rows[0].prompt_hash, crypto.createHash('sha256').update(rows[0].prompt_content).digest('hex').slice(0, 16),
        `turn ${turns.length}: prompt_hash is the SHA-256 of the stored prompt`);
    }
    /* turn 2 finds the system prompt (kept by turn 1: its question, the last of two messages, is not),
     * turn 3 the system prompt and turn 2's three messages, turn 4 five more */
    assert.ok(turns[1].hitsAfter >= 1, `hits after turn 2: ${turns[1].hitsAfter}`);
    assert.ok(turns[2].hitsAfter - turns[1].hitsAfter >= 4, `turn 3 hits: ${turns[2].hitsAfter - turns[1].hitsAfter}`);
    assert.ok(turns[3].hitsAfter - turns[2].hitsAfter >= 6, `turn 4 hits: ${turns[3].hitsAfter - turns[2].hitsAfter}`);
    /* turn 2's prompt is kept (four messages: a chat under way); turns 3 and 4 resume after the one before */
    if (SHA_NI) {
      assert.equal(turns[1].prefixHitsAfter, 0, 'turn 2 has no earlier chat prompt to resume');
      assert.equal(turns[3].prefixHitsAfter, 2, 'turns 3 and 4 resume the SHA-256 of the turn before');
    }
    const m = await withCache.metrics();
    assert.ok(metric(m, 'genai_gateway_history_cache_entries', { kind: 'simhash' }) >= 7, 'the chat\'s long messages are held');
    assert.ok(metric(m, 'genai_gateway_history_cache_bytes') <= 4 * 1024 * 1024, 'within the default 4 MiB');
    const off = await noCache.metrics();
    assert.ok(![...off.keys()].some((k) => k.startsWith('genai_gateway_history_cache')), 'no cache, no series');
  });

  test('a history cache too small to hold an entry: a warning at start, no cache', async () => {
    const gw = await startGateway({ config: { receivers: { history_cache_bytes: '1KiB' } } });
    try {
      assert.match(gw.logs(), /receivers\.history_cache_bytes: 1024 bytes hold no entry/);
      assert.ok(![...(await gw.metrics()).keys()].some((k) => k.startsWith('genai_gateway_history_cache')));
    } finally {
      await gw.cleanup();
    }
  });
});
