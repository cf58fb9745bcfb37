/*
 * sdk-fake-openai.test.mjs: the client side of the e2e suite on its own (no gateway, no Postgres): the
 * fake OpenAI server speaks the API well enough for the real openai SDK, and the official
 * instrumentation turns each call into the span the gateway tests expect. If this fails, the gateway
 * tests' expectations are wrong, not the gateway.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startFakeOpenAI, chatUsage, embeddingUsage } from '../lib/fake-openai.mjs';
import { setupTracing } from '../lib/sdk-client.mjs';
import { runOpenAIScenario } from '../lib/scenario.mjs';

let fake;
let tracing;

before(async () => {
  fake = await startFakeOpenAI();
  tracing = setupTracing({ serviceName: 'sdk-self-test' });
});

after(async () => {
  await tracing?.shutdown();
  await fake?.close();
});

test('fake server: chat, stream with usage, embeddings, failures over plain HTTP', async () => {
  const body = { model: 'm', messages: [{ role: 'user', content: 'one two three' }] };
  const r = await fetch(`${fake.baseURL}/chat/completions`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  assert.equal(r.status, 200);
  const j = await r.json();
  assert.deepEqual(j.usage, chatUsage(body));
  assert.deepEqual(j.usage, { prompt_tokens: 6, completion_tokens: 5, total_tokens: 11 });
  assert.equal(j.choices[0].message.content, 'You said: one two three');

  const s = await fetch(`${fake.baseURL}/chat/completions`, {
    method: 'POST',
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
  });
  assert.equal(s.headers.get('content-type'), 'text/event-stream');
  const events = (await s.text()).split('\n\n').filter(Boolean).map((e) => e.replace(/^data: /, ''));
  assert.equal(events.at(-1), '[DONE]');
  const last = JSON.parse(events.at(-2));
  assert.deepEqual(last.choices, []);
  assert.deepEqual(last.usage, chatUsage(body));
  const text = events.slice(0, -2).map((e) => JSON.parse(e).choices[0].delta.content ?? '').join('');
  assert.equal(text, 'You said: one two three');

  const eb = { model: 'e', input: ['a b', 'c'], encoding_format: 'float' };
  const e = await (await fetch(`${fake.baseURL}/embeddings`, { method: 'POST', body: JSON.stringify(eb) })).json();
  assert.equal(e.data.length, 2);
  assert.deepEqual(e.usage, embeddingUsage(eb));
  assert.deepEqual(e.usage, { prompt_tokens: 5, total_tokens: 5 });

  const f = await fetch(`${fake.baseURL}/chat/completions`, {
    method: 'POST',
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x FAIL:429' }] }),
  });
  assert.equal(f.status, 429);
  assert.equal((await f.json()).error.code, 'rate_limit_exceeded');

  fake.failNext(503);
  const g = await fetch(`${fake.baseURL}/embeddings`, { method: 'POST', body: JSON.stringify(eb) });
  assert.equal(g.status, 503);
  const after503 = await fetch(`${fake.baseURL}/embeddings`, { method: 'POST', body: JSON.stringify(eb) });
  assert.equal(after503.status, 200);
  assert.equal((await fetch(`${fake.url}/v1/nothing`, { method: 'POST', body: '{}' })).status, 404);
});

test('instrumented openai SDK against the fake server produces the expected GenAI spans', async () => {
  const { expected, spans } = await runOpenAIScenario({ tracing, fake, tag: 'self' });
  assert.equal(spans.length, 8);
  assert.equal(expected.length, 8);
  for (const e of expected) {
    const a = e.span.attributes;
    assert.equal(a['gen_ai.operation.name'], e.operation, e.step);
    if (e.requestModel) assert.equal(a['gen_ai.request.model'], e.requestModel, e.step);
    assert.equal(a['gen_ai.usage.input_tokens'] ?? null, e.inputTokens, `${e.step} input tokens`);
    assert.equal(a['gen_ai.usage.output_tokens'] ?? null, e.outputTokens, `${e.step} output tokens`);
    assert.match(e.traceId, /^[0-9a-f]{32}$/);
    assert.match(e.spanId, /^[0-9a-f]{16}$/);
    if (e.status === 'error') {
      assert.equal(e.span.status.code, 2, e.step);
      assert.equal(a['error.type'], e.errorType, e.step);
    }
  }
  const agent = expected.find((e) => e.step === 'agent');
  const kids = expected.filter((e) => e.step.startsWith('agent.call'));
  assert.equal(kids.length, 2);
  for (const k of kids) {
    assert.equal(k.parentSpanId, agent.spanId);
    assert.equal(k.traceId, agent.traceId);
    // The ids are trace-level facts the gateway must propagate: the instrumentation does not set them.
    assert.equal(k.span.attributes['gen_ai.conversation.id'], undefined);
  }
  const stream = expected.find((e) => e.step === 'stream');
  assert.ok(stream.inputTokens > 0 && stream.outputTokens > 0);
});
