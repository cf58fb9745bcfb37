/*
 * exporters-langfuse-logs.test.mjs: Langfuse takes traces only, so message content that arrives as OTLP
 * log records (the official instrumentations' gen_ai.* events) is attached to the forwarded span as
 * gen_ai.input.messages / gen_ai.output.messages, redacted, never over content the span carried itself,
 * whichever comes first (issue 14, item 1): a span whose log records have not come waits for them up to
 * join_wait_ms; content that comes first is kept for its span. A span whose content never comes goes
 * after the wait, counted; one that cannot be held (memory) goes at once, counted; a held span survives a
 * kill -9 (the cursor is not committed past it) and reaches Langfuse after the restart.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { prerequisites, createDatabase, startGateway, post, sleep, waitFor, metric } from '../lib/harness.mjs';
import { traceRequest, genaiSpan, span, toProtobuf } from '../lib/otlp.mjs';
import { chatEvents, logsRequest, logsToProtobuf } from '../lib/otlp-logs.mjs';
import { startFakeLangfuse, LANGFUSE_PATH } from '../lib/fake-langfuse.mjs';
import { attrsOf } from '../lib/fake-otlp.mjs';

const skip = prerequisites();
const PB = { 'content-type': 'application/x-protobuf' };
const PK = 'pk-lf-logs';
const SK = 'sk-lf-logs-secret';
const WAIT_MS = 4000;

const sendSpan = (gw, s) => post(gw, '/v1/traces', toProtobuf(traceRequest([s])), PB);
const sendLogs = (gw, ev) => post(gw, '/v1/logs', logsToProtobuf(logsRequest(ev)), PB);
const joinMetric = async (gw, name, labels = {}) => metric(await gw.metrics(), `genai_gateway_exporter_join_${name}`, { exporter: 'langfuse', ...labels });

describe('Langfuse exporter: content from log records', { skip: skip ?? false }, () => {
  let db;
  let gw;
  let lf;

  before(async () => {
    db = await createDatabase();
    lf = await startFakeLangfuse({ publicKey: PK, secretKey: SK });
    gw = await startGateway({
      dsn: db.dsn,
      config: { exporters: { langfuse: { join_wait_ms: `${WAIT_MS}ms` } } },
      env: { LANGFUSE_HOST: lf.url, LANGFUSE_PUBLIC_KEY: PK, LANGFUSE_SECRET_KEY: SK },
    });
  });

  after(async () => {
    await gw?.cleanup();
    await lf?.close();
    await db?.drop();
  });

  const spanAt = (spanId) => lf.acceptedSpans().find((x) => x.span.spanId === spanId);
  const times = (spanId) => lf.acceptedSpanIds().filter((id) => id === spanId).length;

  test('span and logs together: the span reaches Langfuse with the messages, redacted, as in Postgres', async () => {
    const s = genaiSpan({ model: 'gpt-4o-mini' });
    const ev = chatEvents({
      traceId: s.traceId,
      spanId: s.spanId,
      system: 'You are terse.',
      user: 'Call me on 415-555-0132 or write to ann@example.com',
      reply: 'I will write to ann@example.com.',
    });
    assert.equal((await sendSpan(gw, s)).status, 200);
    assert.equal((await sendLogs(gw, ev)).status, 200);
    await lf.waitFor(() => spanAt(s.spanId), { what: 'the span at Langfuse' });
    const a = attrsOf(spanAt(s.spanId).span);
    const input = JSON.parse(a['gen_ai.input.messages']);
    assert.deepEqual(input.map((m) => m.role), ['system', 'user']);
    assert.equal(input[0].parts[0].content, 'You are terse.');
    assert.equal(input[1].parts[0].content, 'Call me on [PHONE_REDACTED] or write to [EMAIL_REDACTED]');
    assert.deepEqual(JSON.parse(a['gen_ai.output.messages']), [
      { role: 'assistant', parts: [{ type: 'text', content: 'I will write to [EMAIL_REDACTED].' }], finish_reason: 'stop' },
    ]);
    assert.ok(!JSON.stringify(a).includes('ann@example.com'));
    let row;
    await waitFor(async () => {
      row = (await db.query('SELECT prompt_content, response_content FROM ai_interaction_traces WHERE span_id = $1', [s.spanId])).rows[0];
      return row?.prompt_content && row?.response_content;
    }, { what: 'the row merged' });
    assert.equal(a['gen_ai.input.messages'], row?.prompt_content);
    assert.equal(a['gen_ai.output.messages'], row?.response_content);
  });

  test('content the span carries itself is kept; events fill only the missing side', async () => {
    const own = JSON.stringify([{ role: 'user', parts: [{ type: 'text', content: 'from the span' }] }]);
    const s = genaiSpan({ attributes: { 'gen_ai.input.messages': own } });
    const ev = chatEvents({ traceId: s.traceId, spanId: s.spanId, user: 'from the logs', reply: 'reply from the logs' });
    await sendSpan(gw, s);
    await sendLogs(gw, ev);
    await lf.waitFor(() => spanAt(s.spanId), { what: 'the span at Langfuse' });
    const a = attrsOf(spanAt(s.spanId).span);
    assert.equal(JSON.parse(a['gen_ai.input.messages'])[0].parts[0].content, 'from the span');
    assert.equal(JSON.parse(a['gen_ai.output.messages'])[0].parts[0].content, 'reply from the logs');
  });

  test('logs 3 s after their span (spans first): the span waits for them and goes once, with them', async () => {
    const held0 = await joinMetric(gw, 'held_total');
    const s = genaiSpan();
    await sendSpan(gw, s);
    await sleep(3000);
    assert.equal(spanAt(s.spanId), undefined, 'held while its logs have not come');
    assert.equal(await joinMetric(gw, 'held_spans'), 1);
    await sendLogs(gw, chatEvents({ traceId: s.traceId, spanId: s.spanId, user: 'late question', reply: 'late reply' }));
    await lf.waitFor(() => spanAt(s.spanId), { what: 'the span at Langfuse' });
    const a = attrsOf(spanAt(s.spanId).span);
    assert.equal(JSON.parse(a['gen_ai.input.messages'])[0].parts[0].content, 'late question');
    assert.equal(JSON.parse(a['gen_ai.output.messages'])[0].parts[0].content, 'late reply');
    await sleep(300);
    assert.equal(times(s.spanId), 1, 'sent once');
    assert.equal(await joinMetric(gw, 'held_total'), held0 + 1);
    assert.equal(await joinMetric(gw, 'incomplete_total', { reason: 'wait' }), 0);
    for (const r of lf.requests) assert.equal(r.path, LANGFUSE_PATH, 'nothing but traces goes to Langfuse');
  });

  test('logs 3 s before their span (the SDKs\' default order): the content waits for the span, the span does not wait', async () => {
    const held0 = await joinMetric(gw, 'held_total');
    const s = genaiSpan();
    await sendLogs(gw, chatEvents({ traceId: s.traceId, spanId: s.spanId, user: 'early question', reply: 'early reply' }));
    await sleep(3000);
    const t0 = Date.now();
    await sendSpan(gw, s);
    await lf.waitFor(() => spanAt(s.spanId), { what: 'the span at Langfuse' });
    assert.ok(Date.now() - t0 < WAIT_MS, 'not held: its content was there');
    const a = attrsOf(spanAt(s.spanId).span);
    assert.equal(JSON.parse(a['gen_ai.input.messages'])[0].parts[0].content, 'early question');
    assert.equal(JSON.parse(a['gen_ai.output.messages'])[0].parts[0].content, 'early reply');
    assert.equal(await joinMetric(gw, 'held_total'), held0);
  });

  test('a failed call waits for its input only (no choice comes for an error)', async () => {
    const s = genaiSpan({ input: null, output: null, status: { code: 2, message: 'rate limited' }, attributes: { 'error.type': '429' } });
    await sendSpan(gw, s);
    await sleep(500);
    const t0 = Date.now();
    await sendLogs(gw, chatEvents({ traceId: s.traceId, spanId: s.spanId, user: 'a question that failed' }));
    await lf.waitFor(() => spanAt(s.spanId), { what: 'the failed span at Langfuse' });
    assert.ok(Date.now() - t0 < WAIT_MS - 500, 'released when its input came');
    const a = attrsOf(spanAt(s.spanId).span);
    assert.equal(JSON.parse(a['gen_ai.input.messages'])[0].parts[0].content, 'a question that failed');
  });

  test('a span whose logs never come goes after join_wait_ms without them, counted', async () => {
    const before0 = await joinMetric(gw, 'incomplete_total', { reason: 'wait' });
    const s = genaiSpan();
    const t0 = Date.now();
    await sendSpan(gw, s);
    await lf.waitFor(() => spanAt(s.spanId), { timeoutMs: WAIT_MS + 10000, what: 'the span at Langfuse' });
    const took = Date.now() - t0;
    assert.ok(took >= WAIT_MS - 200 && took < WAIT_MS + 4000, `sent after ${took} ms`);
    assert.equal(attrsOf(spanAt(s.spanId).span)['gen_ai.input.messages'], undefined);
    await waitFor(async () => (await joinMetric(gw, 'incomplete_total', { reason: 'wait' })) === before0 + 1, { what: 'incomplete counted' });
    /* Its logs, late, are kept for a span that is gone, then dropped: nothing more is sent to Langfuse. */
    await sendLogs(gw, chatEvents({ traceId: s.traceId, spanId: s.spanId, user: 'too late' }));
    await sleep(1500);
    assert.equal(times(s.spanId), 1);
  });

  test('spans of other dialects and non-inference spans never wait', async () => {
    const oi = span({ attributes: { 'openinference.span.kind': 'LLM', 'llm.model_name': 'gpt-4o', 'llm.token_count.prompt': 3 } });
    const tool = genaiSpan({ operation: 'execute_tool', attributes: { 'gen_ai.tool.name': 'search' } });
    const held0 = await joinMetric(gw, 'held_total');
    const t0 = Date.now();
    await post(gw, '/v1/traces', toProtobuf(traceRequest([oi, tool])), PB);
    await lf.waitFor(() => spanAt(tool.spanId) && spanAt(oi.spanId), { what: 'both spans' });
    assert.ok(Date.now() - t0 < WAIT_MS);
    assert.equal(await joinMetric(gw, 'held_total'), held0);
  });
});

describe('Langfuse exporter: the join across a kill -9 and within its memory', { skip: skip ?? false }, () => {
  let db;
  let lf;

  before(async () => {
    db = await createDatabase();
    lf = await startFakeLangfuse({ publicKey: PK, secretKey: SK });
  });

  after(async () => {
    await lf?.close();
    await db?.drop();
  });

  const env = () => ({ LANGFUSE_HOST: lf.url, LANGFUSE_PUBLIC_KEY: PK, LANGFUSE_SECRET_KEY: SK });
  const spanAt = (spanId) => lf.acceptedSpans().find((x) => x.span.spanId === spanId);

  test('a held span and kept content survive kill -9: after the restart the span goes with its content', async () => {
    const gw = await startGateway({ dsn: db.dsn, config: { exporters: { langfuse: { join_wait_ms: '30s' } } }, env: env() });
    try {
      /* held: the span came, its logs have not */
      const held = genaiSpan();
      await sendSpan(gw, held);
      /* kept: the logs came, their span has not */
      const later = genaiSpan();
      await sendLogs(gw, chatEvents({ traceId: later.traceId, spanId: later.spanId, user: 'kept question', reply: 'kept reply' }));
      await waitFor(async () => (await joinMetric(gw, 'held_spans')) === 1, { what: 'the span held' });
      await sleep(300); /* the logs entry read by the exporter too */
      await gw.kill();
      await gw.restart();
      await sendLogs(gw, chatEvents({ traceId: held.traceId, spanId: held.spanId, user: 'after the restart', reply: 'ok' }));
      await sendSpan(gw, later);
      await lf.waitFor(() => spanAt(held.spanId) && spanAt(later.spanId), { what: 'both spans at Langfuse' });
      assert.equal(JSON.parse(attrsOf(spanAt(held.spanId).span)['gen_ai.input.messages'])[0].parts[0].content, 'after the restart');
      assert.equal(JSON.parse(attrsOf(spanAt(later.spanId).span)['gen_ai.input.messages'])[0].parts[0].content, 'kept question');
      assert.equal(JSON.parse(attrsOf(spanAt(later.spanId).span)['gen_ai.output.messages'])[0].parts[0].content, 'kept reply');
    } finally {
      await gw.cleanup();
    }
  });

  test('memory spool: content kept for a span that never comes does not make a clean stop count delivered spans lost', async () => {
    const gw = await startGateway({ dsn: db.dsn, config: { spool: { mode: 'memory' }, exporters: { langfuse: { join_wait_ms: '30s' } } }, env: env() });
    try {
      /* logs whose span never comes: their content is kept (join_events_ms), holding the exporter's cursor */
      const never = genaiSpan();
      await sendLogs(gw, chatEvents({ traceId: never.traceId, spanId: never.spanId, user: 'orphan question', reply: 'orphan reply' }));
      await sleep(300);
      /* a span behind it, with its own content: delivered */
      const s = genaiSpan();
      await sendSpan(gw, s);
      await sendLogs(gw, chatEvents({ traceId: s.traceId, spanId: s.spanId, user: 'q', reply: 'a' }));
      await lf.waitFor(() => spanAt(s.spanId), { what: 'the span at Langfuse' });
      await waitFor(async () => (await db.query('SELECT 1 FROM ai_interaction_traces WHERE span_id = $1', [s.spanId])).rows.length === 1,
        { what: 'the row stored' });
      const r = await gw.stop(30000);
      /* before: "langfuse had not finished 1 spans and 4 log records ... the memory spool loses them", exit 3 */
      assert.doesNotMatch(gw.logs(), /langfuse had not finished/);
      assert.deepEqual(r, { code: 0, signal: null });
    } finally {
      await gw.cleanup();
    }
  });

  test('no memory to hold a span: it goes at once without its content, counted (reason memory)', async () => {
    const gw = await startGateway({ dsn: db.dsn, config: { exporters: { langfuse: { join_max_bytes: '1KiB' } } }, env: env() });
    try {
      const s = genaiSpan();
      const t0 = Date.now();
      await sendSpan(gw, s);
      await lf.waitFor(() => spanAt(s.spanId), { what: 'the span at Langfuse' });
      assert.ok(Date.now() - t0 < 5000);
      assert.equal(await joinMetric(gw, 'incomplete_total', { reason: 'memory' }), 1);
      assert.equal(await joinMetric(gw, 'held_total'), 0);
    } finally {
      await gw.cleanup();
    }
  });
});
