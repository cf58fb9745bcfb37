/*
 * fake-openai.mjs: a small local stand-in for the OpenAI HTTP API, for driving the real openai SDK (and
 * its OpenTelemetry instrumentation) without the network.
 *
 * Endpoints: POST /v1/chat/completions (plain JSON, or SSE when `stream: true`, with a final usage chunk
 * when `stream_options.include_usage` is set) and POST /v1/embeddings (float or base64 encoding: the
 * SDK asks for base64 by default). Usage numbers are deterministic functions of the request
 * (chatUsage / embeddingUsage below), so a test can compute what the server reported without asking it.
 *
 * Failures: a message (or embedding input) containing `FAIL:429` or `FAIL:500` (any 4xx/5xx code) gets
 * that status with an OpenAI-style error body; `server.failNext(status)` queues failures for the next
 * requests regardless of content. Every request and the answer it got are kept in `server.calls`.
 */
import http from 'node:http';
import crypto from 'node:crypto';

/** Whitespace-separated words of a string, at least 1 for any non-empty text. */
export function countWords(text) {
  const t = String(text ?? '').trim();
  return t === '' ? 0 : t.split(/\s+/).length;
}

function contentText(content) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content.map((p) => (typeof p === 'string' ? p : p?.text ?? '')).join(' ');
  }
  return '';
}

/** The reply the fake server gives to a chat request: echoes the last user message. */
export function chatReply(body) {
  const msgs = Array.isArray(body?.messages) ? body.messages : [];
  const lastUser = [...msgs].reverse().find((m) => m?.role === 'user');
  return `You said: ${contentText(lastUser?.content)}`;
}

/** Usage the fake server reports for a chat request: 3 per message + its words; completion = reply words. */
export function chatUsage(body) {
  const msgs = Array.isArray(body?.messages) ? body.messages : [];
  const prompt = msgs.reduce((n, m) => n + 3 + countWords(contentText(m?.content)), 0);
  const completion = countWords(chatReply(body));
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

function embeddingInputs(body) {
  const input = body?.input;
  if (Array.isArray(input)) return input.map((x) => (typeof x === 'string' ? x : JSON.stringify(x)));
  return [typeof input === 'string' ? input : JSON.stringify(input ?? '')];
}

/** Usage the fake server reports for an embeddings request: 1 + words per input. */
export function embeddingUsage(body) {
  const n = embeddingInputs(body).reduce((s, x) => s + 1 + countWords(x), 0);
  return { prompt_tokens: n, total_tokens: n };
}

const EMBED_DIM = 8;

function embeddingVector(text) {
  const h = crypto.createHash('sha256').update(text).digest();
  const v = new Float32Array(EMBED_DIM);
  for (let i = 0; i < EMBED_DIM; i++) v[i] = (h[i] - 128) / 128;
  return v;
}

function failureFor(text) {
  const m = /FAIL:([45]\d\d)/.exec(text);
  return m ? Number(m[1]) : 0;
}

function errorBody(status) {
  const kinds = {
    400: ['invalid_request_error', 'Bad request'],
    401: ['invalid_request_error', 'Incorrect API key provided'],
    404: ['invalid_request_error', 'Not found'],
    429: ['requests', 'Rate limit reached for requests'],
    500: ['server_error', 'The server had an error while processing your request'],
    503: ['server_error', 'The engine is currently overloaded'],
  };
  const [type, message] = kinds[status] ?? ['server_error', `Fake failure ${status}`];
  return { error: { message: `${message} (fake-openai)`, type, param: null, code: status === 429 ? 'rate_limit_exceeded' : null } };
}

function readBody(req, limit = 8 * 1024 * 1024) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) {
        reject(new Error('request too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function sendJson(res, status, obj, headers = {}) {
  const data = Buffer.from(JSON.stringify(obj));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': data.length, ...headers });
  res.end(data);
}

/**
 * Start the fake server on 127.0.0.1 (port 0 = any free port). Returns
 * { url, baseURL, port, calls, failNext(status), close() }; baseURL ends in /v1 as the SDK expects.
 */
export async function startFakeOpenAI({ port = 0 } = {}) {
  const calls = [];
  const queued = [];
  let seq = 0;

  const server = http.createServer(async (req, res) => {
    let raw;
    try {
      raw = await readBody(req);
    } catch {
      return;
    }
    let body = null;
    try {
      body = raw.length ? JSON.parse(raw.toString('utf8')) : {};
    } catch {
      sendJson(res, 400, errorBody(400));
      return;
    }
    const path = (req.url ?? '').split('?')[0];
    const call = { method: req.method, path, body, status: 0, usage: null, id: null };
    calls.push(call);

    if (req.method !== 'POST' || (path !== '/v1/chat/completions' && path !== '/v1/embeddings')) {
      call.status = 404;
      sendJson(res, 404, errorBody(404));
      return;
    }

    const text = path === '/v1/embeddings'
      ? embeddingInputs(body).join(' ')
      : (body.messages ?? []).map((m) => contentText(m?.content)).join(' ');
    const fail = queued.length ? queued.shift() : failureFor(text);
    if (fail) {
      call.status = fail;
      sendJson(res, fail, errorBody(fail), fail === 429 ? { 'retry-after': '0' } : {});
      return;
    }

    seq += 1;
    const created = 1700000000 + seq;
    if (path === '/v1/embeddings') {
      const usage = embeddingUsage(body);
      const b64 = body.encoding_format === 'base64';
      const data = embeddingInputs(body).map((t, index) => {
        const v = embeddingVector(t);
        return {
          object: 'embedding',
          index,
          embedding: b64 ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') : Array.from(v),
        };
      });
      call.status = 200;
      call.usage = usage;
      sendJson(res, 200, { object: 'list', data, model: body.model, usage });
      return;
    }

    const id = `chatcmpl-fake${String(seq).padStart(8, '0')}`;
    const usage = chatUsage(body);
    const reply = chatReply(body);
    call.id = id;
    call.status = 200;
    call.usage = usage;
    if (!body.stream) {
      sendJson(res, 200, {
        id,
        object: 'chat.completion',
        created,
        model: body.model,
        system_fingerprint: 'fp_fake',
        choices: [{ index: 0, message: { role: 'assistant', content: reply, refusal: null }, logprobs: null, finish_reason: 'stop' }],
        usage,
      });
      return;
    }

    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const chunk = (choices, extra = {}) => {
      const c = { id, object: 'chat.completion.chunk', created, model: body.model, system_fingerprint: 'fp_fake', choices, ...extra };
      res.write(`data: ${JSON.stringify(c)}\n\n`);
    };
    const includeUsage = Boolean(body.stream_options?.include_usage);
    const extra = includeUsage ? { usage: null } : {};
    chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }], extra);
    const words = reply.split(/(\s+)/);
    for (const w of words) {
      if (w) chunk([{ index: 0, delta: { content: w }, logprobs: null, finish_reason: null }], extra);
    }
    chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }], extra);
    if (includeUsage) chunk([], { usage });
    res.write('data: [DONE]\n\n');
    res.end();
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const actual = server.address().port;
  const url = `http://127.0.0.1:${actual}`;
  return {
    url,
    baseURL: `${url}/v1`,
    port: actual,
    calls,
    failNext(status, times = 1) {
      for (let i = 0; i < times; i++) queued.push(status);
    },
    close() {
      server.closeAllConnections?.();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
