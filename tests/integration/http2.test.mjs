/*
 * http2.test.mjs: issue 12 item 6, HTTP/2 on the OTLP/HTTP port: h2c with prior knowledge (curl
 * --http2-prior-knowledge, Node's http2 client) and ALPN h2 under TLS. Every case is also sent over HTTP/1.1
 * and must get the same status, content type and body: the two versions share one set of request rules.
 * Also: many streams on one connection, the stream limit announced in SETTINGS, a stalled body reset at
 * the body deadline, an idle connection closed with GOAWAY, rows stored in Postgres.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import zlib from 'node:zlib';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { prerequisites, createDatabase, startGateway, post, metric, waitForRows } from '../lib/harness.mjs';
import { traceRequest, genaiSpan, toProtobuf, toJson, decodeResponse, decodeStatus, rejectedSpans, span } from '../lib/otlp.mjs';
import { makeCa, issue } from '../lib/certs.mjs';
import { goaway } from '../lib/h2raw.mjs';
import { snappyBlock, snappyFramed } from '../lib/snappy.mjs';
import { lz4Available, lz4Compress } from '../lib/lz4.mjs';

const run = promisify(execFile);
const skip = prerequisites();
const MAX = 1024 * 1024;
const TOKEN = 'tok-http2-0123456789abcdef';

/** One request over an http2 session: resolves { status, headers, body }. */
function h2request(session, { path: p = '/v1/traces', method = 'POST', headers = {}, body }) {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': method, ':path': p, ...headers });
    const chunks = [];
    let resHeaders;
    req.on('response', (h) => {
      resHeaders = h;
    });
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => resolve({ status: resHeaders?.[':status'], headers: resHeaders ?? {}, body: Buffer.concat(chunks) }));
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

/** curl over h2c with prior knowledge: resolves { status, version, contentType, body }. */
async function curlH2c(url, { headers = {}, body, method = 'POST' } = {}) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gw-h2-curl-'));
  try {
    const args = ['-sS', '--http2-prior-knowledge', '-X', method, '-o', path.join(dir, 'body'), '-w', '%{http_code} %{http_version} %{content_type}'];
    for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
    if (body !== undefined) {
      await fs.writeFile(path.join(dir, 'req'), body);
      args.push('--data-binary', `@${path.join(dir, 'req')}`);
    }
    args.push(url);
    const { stdout } = await run('curl', args, { timeout: 20000 });
    const [status, version, ...ct] = stdout.trim().split(' ');
    return { status: Number(status), version, contentType: ct.join(' '), body: await fs.readFile(path.join(dir, 'body')).catch(() => Buffer.alloc(0)) };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

const PB = { 'content-type': 'application/x-protobuf' };
const JSONH = { 'content-type': 'application/json' };

describe('HTTP/2 on the OTLP/HTTP port', { skip: skip ?? false }, () => {
  let db;
  let gw;
  let dir;
  before(async () => {
    db = await createDatabase();
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gw-h2-'));
    gw = await startGateway({
      dsn: db.dsn,
      config: {
        receivers: {
          max_request_bytes: MAX,
          http: { max_concurrent_streams: 16, body_timeout_ms: '1500ms', idle_timeout_ms: '2s' },
        },
      },
    });
  });
  after(async () => {
    if (gw) {
      const r = await gw.stop();
      await gw.cleanup();
      assert.deepEqual(r, { code: 0, signal: null });
    }
    await db?.drop();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  test('curl --http2-prior-knowledge: protobuf, JSON and gzip are accepted and stored, answered over HTTP/2', async () => {
    const a = genaiSpan({ model: 'gpt-4o', input: 10, output: 4 });
    const b = genaiSpan({ model: 'gpt-4o-mini', input: 7, output: 2 });
    const c = genaiSpan({ model: 'gpt-4o', input: 1, output: 1 });
    const rp = await curlH2c(`${gw.httpUrl}/v1/traces`, { headers: PB, body: toProtobuf(traceRequest([a])) });
    assert.equal(rp.status, 200);
    assert.equal(rp.version, '2');
    assert.match(rp.contentType, /^application\/x-protobuf/);
    assert.equal(rejectedSpans(decodeResponse(rp.body)), 0);
    const rj = await curlH2c(`${gw.httpUrl}/v1/traces`, { headers: JSONH, body: toJson(traceRequest([b])) });
    assert.equal(rj.status, 200);
    assert.equal(rj.body.toString(), '{}');
    const rg = await curlH2c(`${gw.httpUrl}/v1/traces`, { headers: { ...PB, 'content-encoding': 'gzip' }, body: zlib.gzipSync(toProtobuf(traceRequest([c]))) });
    assert.equal(rg.status, 200);
    const rows = await waitForRows(db, [a.traceId, b.traceId, c.traceId], 3);
    assert.deepEqual(rows.map((r) => r.request_model).sort(), ['gpt-4o', 'gpt-4o', 'gpt-4o-mini']);
    assert.ok(metric(await gw.metrics(), 'genai_gateway_http2_connections_total') >= 3);
  });

  test('every answer over HTTP/2 equals the HTTP/1.1 one: status, content type, body', async () => {
    const good = toProtobuf(traceRequest([genaiSpan()]));
    const mixed = toProtobuf(traceRequest([genaiSpan(), span({ name: 'bad', traceId: '00'.repeat(16) })]));
    const cases = [
      { name: 'good protobuf', headers: PB, body: good },
      { name: 'partial success', headers: PB, body: mixed },
      { name: 'truncated protobuf', headers: PB, body: good.subarray(0, Math.floor(good.length / 2)) },
      { name: 'garbage JSON', headers: JSONH, body: '{"resourceSpans": [' },
      { name: 'bad gzip', headers: { ...PB, 'content-encoding': 'gzip' }, body: Buffer.from('not gzip at all') },
      { name: 'snappy block', headers: { ...PB, 'content-encoding': 'snappy' }, body: snappyBlock(good) },
      { name: 'snappy framed', headers: { ...PB, 'content-encoding': 'x-snappy-framed' }, body: snappyFramed(good) },
      { name: 'bad snappy', headers: { ...PB, 'content-encoding': 'snappy' }, body: snappyBlock(good).subarray(0, 20) },
      ...(lz4Available() ? [{ name: 'lz4', headers: { ...PB, 'content-encoding': 'lz4' }, body: lz4Compress(good) },
        { name: 'bad lz4', headers: { ...PB, 'content-encoding': 'lz4' }, body: lz4Compress(good).subarray(0, 20) }] : []),
      { name: 'unknown encoding', headers: { ...PB, 'content-encoding': 'br' }, body: good },
      { name: 'text/plain', headers: { 'content-type': 'text/plain' }, body: 'x' },
      { name: 'no content type', headers: {}, body: good },
      { name: 'wrong path', path: '/v1/metrics', headers: PB, body: good },
      { name: 'GET', method: 'GET', headers: PB },
      { name: 'too large', headers: PB, body: Buffer.alloc(MAX + 10, 1) },
      { name: 'logs path, empty request', path: '/v1/logs', headers: JSONH, body: '{}' },
    ];
    const session = http2.connect(gw.httpUrl);
    session.on('error', () => {});
    try {
      for (const c of cases) {
        const h2 = await h2request(session, { path: c.path, method: c.method, headers: c.headers, body: c.body });
        const h1 = await post(gw, c.path ?? '/v1/traces', c.body, c.headers, { method: c.method ?? 'POST' });
        assert.equal(h2.status, h1.status, `${c.name}: status`);
        assert.equal(h2.headers['content-type'], h1.headers.get('content-type'), `${c.name}: content type`);
        if (h1.status === 405) assert.equal(h2.headers.allow, 'POST');
        if (c.name === 'unknown encoding') assert.equal(h2.headers['accept-encoding'], h1.headers.get('accept-encoding'));
        const strip = (b) => (c.name === 'too large' || c.name === 'partial success' ? b.length > 0 : b.toString('base64'));
        assert.deepEqual(strip(h2.body), strip(h1.body), `${c.name}: body`);
      }
    } finally {
      session.close();
    }
    const big = await curlH2c(`${gw.httpUrl}/v1/traces`, { headers: PB, body: Buffer.alloc(MAX + 10, 1) });
    assert.equal(big.status, 413);
    assert.match(decodeStatus(big.body).message, /over the limit/);
  });

  test('one connection, many concurrent streams: all answered, SETTINGS announce the stream limit', async () => {
    const session = http2.connect(gw.httpUrl);
    session.on('error', () => {});
    try {
      await once(session, 'remoteSettings');
      assert.equal(session.remoteSettings.maxConcurrentStreams, 16);
      const before = metric(await gw.metrics(), 'genai_gateway_spans_accepted_total');
      const spans = Array.from({ length: 40 }, () => genaiSpan({ model: 'gpt-4o-mini' }));
      const rs = await Promise.all(spans.map((s) => h2request(session, { headers: PB, body: toProtobuf(traceRequest([s])) })));
      assert.deepEqual([...new Set(rs.map((r) => r.status))], [200]);
      assert.equal(metric(await gw.metrics(), 'genai_gateway_spans_accepted_total') - before, 40);
      const rows = await waitForRows(db, spans.map((s) => s.traceId), 40);
      assert.equal(rows.length, 40);
    } finally {
      session.close();
    }
  });

  test('a stalled body is reset at the body deadline; an idle connection gets GOAWAY', async () => {
    const session = http2.connect(gw.httpUrl);
    session.on('error', () => {});
    const before = metric(await gw.metrics(), 'genai_gateway_http_read_timeouts_total', { listener: 'otlp_http', phase: 'body' });
    const req = session.request({ ':method': 'POST', ':path': '/v1/traces', ...PB });
    req.on('error', () => {});
    req.write(Buffer.alloc(100, 1)); /* and never the rest */
    const t0 = Date.now();
    await once(req, 'close');
    const took = Date.now() - t0;
    assert.equal(req.rstCode, http2.constants.NGHTTP2_CANCEL);
    assert.ok(took >= 1000 && took < 4000, `stalled stream reset after ${took} ms (body deadline 1.5 s)`);
    assert.equal(metric(await gw.metrics(), 'genai_gateway_http_read_timeouts_total', { listener: 'otlp_http', phase: 'body' }) - before, 1);
    const g = await goaway(session, 6000);
    assert.equal(g?.code, http2.constants.NGHTTP2_NO_ERROR, 'idle connection closed with GOAWAY NO_ERROR');
    assert.ok(g.ms < 4000);
    session.destroy();
  });

  test('HTTP/1.1 clients on the same port are unaffected', async () => {
    const r = await post(gw, '/v1/traces', toProtobuf(traceRequest([genaiSpan()])), PB);
    assert.equal(r.status, 200);
  });
});

describe('HTTP/2 over TLS (ALPN h2) with authentication', { skip: skip ?? false }, () => {
  let gw;
  let dir;
  let ca;
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gw-h2tls-'));
    ca = await makeCa(dir, 'ca');
    const server = await issue(dir, ca, 'server');
    await fs.writeFile(path.join(dir, 'tokens'), `${TOKEN}\n`);
    gw = await startGateway({
      config: {
        spool: { mode: 'memory' },
        receivers: { tls: { cert_file: server.cert, key_file: server.key }, auth: { tokens_file: path.join(dir, 'tokens') } },
      },
    });
  });
  after(async () => {
    if (gw) {
      await gw.stop();
      await gw.cleanup();
    }
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  test('ALPN picks h2; the token is checked as over HTTP/1.1 (401 + challenge without it)', async () => {
    const url = gw.httpUrl.replace('http:', 'https:').replace('127.0.0.1', 'localhost');
    const session = http2.connect(url, { ca: await fs.readFile(ca.cert) });
    session.on('error', () => {});
    try {
      await once(session, 'connect');
      assert.equal(session.alpnProtocol, 'h2');
      const body = toProtobuf(traceRequest([genaiSpan()]));
      const none = await h2request(session, { headers: PB, body });
      assert.equal(none.status, 401);
      assert.equal(none.headers['www-authenticate'], 'Bearer realm="genai-gateway"');
      assert.equal(decodeStatus(none.body).code, 16);
      const wrong = await h2request(session, { headers: { ...PB, authorization: 'Bearer not-the-token-123456' }, body });
      assert.equal(wrong.status, 401);
      assert.match(wrong.headers['www-authenticate'], /invalid_token/);
      const ok = await h2request(session, { headers: { ...PB, authorization: `Bearer ${TOKEN}` }, body });
      assert.equal(ok.status, 200);
      const key = await h2request(session, { headers: { ...PB, 'x-api-key': TOKEN }, body });
      assert.equal(key.status, 200);
    } finally {
      session.close();
    }
    /* curl negotiates h2 by itself over https */
    const { stdout } = await run('curl', ['-sS', '--cacert', ca.cert, '-o', '/dev/null', '-w', '%{http_code} %{http_version}', '-X', 'POST',
      '-H', 'content-type: application/json', '-H', `authorization: Bearer ${TOKEN}`, '--data', '{}', `${url}/v1/traces`]);
    assert.equal(stdout, '200 2');
    /* and an HTTP/1.1-only client still gets HTTP/1.1 */
    const { stdout: h1 } = await run('curl', ['-sS', '--http1.1', '--cacert', ca.cert, '-o', '/dev/null', '-w', '%{http_code} %{http_version}', '-X', 'POST',
      '-H', 'content-type: application/json', '-H', `x-api-key: ${TOKEN}`, '--data', '{}', `${url}/v1/traces`]);
    assert.equal(h1, '200 1.1');
  });
});
