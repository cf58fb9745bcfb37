/*
 * scenario.mjs: one fixed sequence of OpenAI calls made through the instrumented SDK against the fake
 * server, and what each resulting GenAI span must become as an ai_interaction_traces row.
 *
 * The expectations come from the request we sent and the fake server's deterministic usage functions,
 * never from the spans themselves, except the ids (trace/span/parent), which only the SDK knows: they
 * are read from the spans that ended during each step (steps run one after the other).
 */
import { chatUsage, embeddingUsage } from './fake-openai.mjs';
import { SpanStatusCode } from './sdk-client.mjs';

function newSpansSince(tracing, before) {
  return tracing.finished().slice(before);
}

function one(spans, what) {
  if (spans.length !== 1) {
    throw new Error(`${what}: expected exactly 1 ended span, got ${spans.length} (${spans.map((s) => s.name).join(', ')})`);
  }
  return spans[0];
}

function ids(span) {
  const sc = span.spanContext();
  return {
    traceId: sc.traceId,
    spanId: sc.spanId,
    parentSpanId: span.parentSpanContext?.spanId ?? null,
  };
}

/**
 * Run the calls. `tag` makes prompts unique per run. Returns { expected: [...], spans: [...] } where
 * each expected entry describes one GenAI row: { step, span, traceId, spanId, parentSpanId, operation,
 * requestModel, responseModel, inputTokens, outputTokens, totalTokens, status, errorType, sessionId,
 * userId }.
 */
export async function runOpenAIScenario({ tracing, fake, tag, session = 'sess-1', user = 'u-1' }) {
  const client = new tracing.OpenAI({ apiKey: 'sk-test-not-a-real-key', baseURL: fake.baseURL, maxRetries: 0, timeout: 10000 });
  const expected = [];
  const all = [];

  const step = async (name, fn) => {
    const before = tracing.finished().length;
    await fn();
    const spans = newSpansSince(tracing, before);
    all.push(...spans);
    return spans;
  };

  const chatBody = (model, text, extra = {}) => ({
    model,
    messages: [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: `${text} [${tag}]` },
    ],
    max_tokens: 64,
    temperature: 0.2,
    ...extra,
  });

  const okChat = (stepName, span, body, extra = {}) => {
    const u = chatUsage(body);
    expected.push({
      step: stepName,
      span,
      ...ids(span),
      operation: 'chat',
      requestModel: body.model,
      responseModel: body.model,
      inputTokens: u.prompt_tokens,
      outputTokens: u.completion_tokens,
      totalTokens: u.total_tokens,
      status: 'unset',
      errorType: null,
      sessionId: null,
      userId: null,
      ...extra,
    });
  };

  // 1. Plain chat.
  {
    const body = chatBody('gpt-4o-mini', 'What is the capital of France?');
    let reply;
    const spans = await step('chat', async () => {
      reply = await client.chat.completions.create(body);
    });
    if (!reply.choices?.[0]?.message?.content?.startsWith('You said:')) throw new Error('chat: unexpected reply');
    okChat('chat', one(spans, 'chat'), body);
  }

  // 2. Streaming chat with the usage chunk.
  {
    const body = chatBody('gpt-4.1-nano', 'Stream me a short answer please', { stream: true, stream_options: { include_usage: true } });
    let text = '';
    const spans = await step('stream', async () => {
      const stream = await client.chat.completions.create(body);
      for await (const chunk of stream) text += chunk.choices?.[0]?.delta?.content ?? '';
    });
    if (!text.startsWith('You said:')) throw new Error(`stream: unexpected text ${JSON.stringify(text)}`);
    okChat('stream', one(spans, 'stream'), body);
  }

  // 3. Embeddings.
  {
    const body = { model: 'text-embedding-3-small', input: `embed these few words [${tag}]` };
    let res;
    const spans = await step('embeddings', async () => {
      res = await client.embeddings.create(body);
    });
    if (!Array.isArray(res.data?.[0]?.embedding) || res.data[0].embedding.length !== 8) throw new Error('embeddings: bad vector');
    const u = embeddingUsage(body);
    const span = one(spans, 'embeddings');
    expected.push({
      step: 'embeddings',
      span,
      ...ids(span),
      operation: 'embeddings',
      requestModel: body.model,
      responseModel: body.model,
      inputTokens: u.prompt_tokens,
      outputTokens: null,
      totalTokens: u.total_tokens,
      status: 'unset',
      errorType: null,
      sessionId: null,
      userId: null,
    });
  }

  // 4. and 5. Failing calls: 429 (no retries) and 500 on a streaming request.
  for (const [stepName, code, extra, errorType] of [
    ['fail429', 429, {}, 'RateLimitError'],
    ['fail500', 500, { stream: true, stream_options: { include_usage: true } }, 'InternalServerError'],
  ]) {
    const body = chatBody('gpt-4o-mini', `please FAIL:${code} now`, extra);
    let caught = null;
    const spans = await step(stepName, async () => {
      try {
        const r = await client.chat.completions.create(body);
        if (body.stream) for await (const _ of r) { /* drain */ }
      } catch (e) {
        caught = e;
      }
    });
    if (!caught || caught.status !== code) throw new Error(`${stepName}: expected HTTP ${code}, got ${caught?.status}`);
    const span = one(spans, stepName);
    expected.push({
      step: stepName,
      span,
      ...ids(span),
      operation: 'chat',
      requestModel: body.model,
      responseModel: null,
      inputTokens: null,
      outputTokens: null,
      totalTokens: null,
      status: 'error',
      errorType,
      httpStatus: code,
      sessionId: null,
      userId: null,
    });
  }

  // 6. An agent span over two calls; session and user only on the agent span.
  {
    const bodies = [chatBody('gpt-4o', 'Plan the trip'), chatBody('gpt-4o-mini', 'Book the hotel')];
    const spans = await step('agent', async () => {
      await tracing.tracer.startActiveSpan(
        'invoke_agent',
        {
          attributes: {
            'gen_ai.operation.name': 'invoke_agent',
            'gen_ai.agent.name': 'e2e-agent',
            'gen_ai.conversation.id': session,
            'user.id': user,
          },
        },
        async (agent) => {
          try {
            for (const b of bodies) await client.chat.completions.create(b);
            agent.setStatus({ code: SpanStatusCode.OK });
          } finally {
            agent.end();
          }
        },
      );
    });
    if (spans.length !== 3) throw new Error(`agent: expected 3 spans, got ${spans.length}`);
    const agent = spans.find((s) => s.name === 'invoke_agent');
    const children = spans.filter((s) => s !== agent);
    const agentIds = ids(agent);
    children.forEach((child, i) => {
      if (ids(child).parentSpanId !== agentIds.spanId) throw new Error('agent: child not parented to the agent span');
      okChat(`agent.call${i + 1}`, child, bodies[i], { sessionId: session, userId: user });
    });
    expected.push({
      step: 'agent',
      span: agent,
      ...agentIds,
      operation: 'invoke_agent',
      requestModel: null,
      responseModel: null,
      inputTokens: null,
      outputTokens: null,
      totalTokens: null,
      status: 'ok',
      errorType: null,
      sessionId: session,
      userId: user,
    });
  }

  return { expected, spans: all };
}
