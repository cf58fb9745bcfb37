/*
 * exporters-langfuse-logs.test.mjs: Langfuse takes traces only, so message content that arrives as OTLP
 * log records (the official instrumentations' gen_ai.* events) is attached to the forwarded span as
 * gen_ai.input.messages / gen_ai.output.messages when span and logs pass the gateway in the same export
 * batch, redacted, never over content the span carried itself; logs that come after their span's batch
 * are not sent to Langfuse at all (documented in README and exporters/README.md).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { prerequisites, createDatabase, startGateway, post, sleep, waitFor } from '../lib/harness.mjs';
import { traceRequest, genaiSpan, toProtobuf } from '../lib/otlp.mjs';
import { chatEvents, logsRequest, logsToProtobuf } from '../lib/otlp-logs.mjs';
import { startFakeLangfuse, LANGFUSE_PATH } from '../lib/fake-langfuse.mjs';
import { attrsOf } from '../lib/fake-otlp.mjs';

const skip = prerequisites();
const PB = { 'content-type': 'application/x-protobuf' };
const PK = 'pk-lf-logs';
const SK = 'sk-lf-logs-secret';

describe('Langfuse exporter: content from log records', { skip: skip ?? false }, () => {
  let db;
  let gw;
  let lf;

  before(async () => {
    db = await createDatabase();
    lf = await startFakeLangfuse({ publicKey: PK, secretKey: SK });
    gw = await startGateway({
      dsn: db.dsn,
      /* A wide batch window: a span and its logs sent back to back share a batch. */
      config: { exporters: { langfuse: { batch_wait_ms: '1500ms' } } },
      env: { LANGFUSE_HOST: lf.url, LANGFUSE_PUBLIC_KEY: PK, LANGFUSE_SECRET_KEY: SK },
    });
  });

  after(async () => {
    await gw?.cleanup();
    await lf?.close();
    await db?.drop();
  });

  const spanAt = (spanId) => lf.acceptedSpans().find((x) => x.span.spanId === spanId);

  test('span and logs in one batch: the span reaches Langfuse with the messages, redacted', async () => {
    const s = genaiSpan({ model: 'gpt-4o-mini' });
    const ev = chatEvents({
      traceId: s.traceId,
      spanId: s.spanId,
      system: 'You are terse.',
      user: 'Call me on 415-555-0132 or write to ann@example.com',
      reply: 'I will write to ann@example.com.',
    });
    assert.equal((await post(gw, '/v1/traces', toProtobuf(traceRequest([s])), PB)).status, 200);
    assert.equal((await post(gw, '/v1/logs', logsToProtobuf(logsRequest(ev)), PB)).status, 200);
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
    /* The same content as the row in Postgres. */
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
    await post(gw, '/v1/traces', toProtobuf(traceRequest([s])), PB);
    await post(gw, '/v1/logs', logsToProtobuf(logsRequest(ev)), PB);
    await lf.waitFor(() => spanAt(s.spanId), { what: 'the span at Langfuse' });
    const a = attrsOf(spanAt(s.spanId).span);
    assert.equal(JSON.parse(a['gen_ai.input.messages'])[0].parts[0].content, 'from the span');
    assert.equal(JSON.parse(a['gen_ai.output.messages'])[0].parts[0].content, 'reply from the logs');
  });

  test('logs after their span\'s batch are not sent to Langfuse', async () => {
    const s = genaiSpan();
    await post(gw, '/v1/traces', toProtobuf(traceRequest([s])), PB);
    await lf.waitFor(() => spanAt(s.spanId), { what: 'the span at Langfuse' });
    const seen = lf.requests.length;
    await post(gw, '/v1/logs', logsToProtobuf(logsRequest(chatEvents({ traceId: s.traceId, spanId: s.spanId, user: 'late', reply: 'late reply' }))), PB);
    const marker = genaiSpan();
    await post(gw, '/v1/traces', toProtobuf(traceRequest([marker])), PB);
    await lf.waitFor(() => spanAt(marker.spanId), { what: 'the marker span' });
    await sleep(200);
    const a = attrsOf(spanAt(s.spanId).span);
    assert.equal(a['gen_ai.input.messages'], undefined);
    assert.equal(lf.acceptedSpanIds().filter((id) => id === s.spanId).length, 1, 'the span is not sent again');
    for (const r of lf.requests.slice(seen)) assert.equal(r.path, LANGFUSE_PATH, 'nothing but traces goes to Langfuse');
  });
});
