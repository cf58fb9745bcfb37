/*
 * auth.test.mjs: issue 12 item 5, bearer tokens on both receivers. A tokens file with two tokens; requests
 * with one of them (Authorization: Bearer, or x-api-key) are served, the others get 401 with a Bearer
 * challenge (HTTP) or UNAUTHENTICATED (gRPC), counted per reason, before their body is looked at. The OTel
 * SDK exporters authenticate with their `headers` / metadata. Rotation rewrites the file. A receiver
 * bound beyond loopback without TLS or a token is warned about at start.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { prerequisites, startGateway, post, metric, waitFor, freePort, REPO } from '../lib/harness.mjs';
import { traceRequest, genaiSpan, toProtobuf, toJson, decodeStatus, rawGrpcClient, grpcUnaryRaw, GRPC_EXPORT_PATH } from '../lib/otlp.mjs';
import { makeExporter } from '../lib/sdk-client.mjs';

const require = createRequire(import.meta.url);
const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { ExportResultCode } = require('@opentelemetry/core');

const skip = prerequisites({ needPg: false });
const TOKEN_A = 'tok-A-0123456789abcdefghij';
const TOKEN_B = 'tok-B-zyxwvutsrqponmlkjihg';
const TOKEN_C = 'tok-C-rotated-in-1234567890';
const PB = { 'content-type': 'application/x-protobuf' };

const mem = new InMemorySpanExporter();
const tracer = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(mem)] }).getTracer('auth-test');
function sdkSpans(n) {
  mem.reset();
  for (let i = 0; i < n; i++) tracer.startSpan('chat gpt-4o', { attributes: { 'gen_ai.operation.name': 'chat' } }).end();
  return mem.getFinishedSpans();
}

describe('bearer token authentication', { skip: skip ?? false }, () => {
  let dir;
  let gw;
  let tokens;
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gw-auth-'));
    tokens = path.join(dir, 'tokens');
    await fs.writeFile(tokens, `# clients\n${TOKEN_A}\n${TOKEN_B}\n`);
    gw = await startGateway({ config: { spool: { mode: 'memory' }, receivers: { reload_interval_ms: '200ms', auth: { tokens_file: tokens } } } });
  });
  after(async () => {
    if (gw) {
      const r = await gw.stop();
      assert.doesNotMatch(gw.logs(), new RegExp(`${TOKEN_A}|${TOKEN_B}|${TOKEN_C}|bad-token`), 'no token in the log');
      await gw.cleanup();
      assert.deepEqual(r, { code: 0, signal: null });
    }
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  const failures = async (listener, reason) => metric(await gw.metrics(), 'genai_gateway_auth_failures_total', { listener, reason });
  const accepted = async () => metric(await gw.metrics(), 'genai_gateway_spans_accepted_total');
  const body = () => toProtobuf(traceRequest([genaiSpan()]));

  test('OTLP/HTTP: no token and a wrong token get 401 with a Bearer challenge; either token works, as Bearer or x-api-key', async () => {
    const m0 = await failures('otlp_http', 'missing');
    const i0 = await failures('otlp_http', 'invalid');
    const a0 = await accepted();

    const none = await post(gw, '/v1/traces', body(), PB);
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="genai-gateway"');
    const st = decodeStatus(none.body);
    assert.equal(st.code, 16, 'google.rpc.Code UNAUTHENTICATED');
    assert.match(st.message, /Bearer/);

    const wrong = await post(gw, '/v1/traces', toJson(traceRequest([genaiSpan()])), { 'content-type': 'application/json', authorization: 'Bearer bad-token-0123456789' });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers.get('www-authenticate'), 'Bearer realm="genai-gateway", error="invalid_token"');
    const j = JSON.parse(wrong.body.toString('utf8'));
    assert.equal(j.code, 16);
    assert.doesNotMatch(j.message, /bad-token/, 'the token is not echoed');
    for (const h of [{ authorization: `Basic ${Buffer.from(`u:${TOKEN_A}`).toString('base64')}` }, { authorization: TOKEN_A }]) {
      assert.equal((await post(gw, '/v1/traces', body(), { ...PB, ...h })).status, 401, JSON.stringify(h));
    }
    /* refused before the body is read: a large body is not waited for */
    const big = Buffer.alloc(16 * 1024 * 1024, 1);
    const t0 = Date.now();
    const r = await post(gw, '/v1/traces', big, PB).catch((e) => ({ status: 'reset', e }));
    assert.ok(r.status === 401 || r.status === 'reset', `large unauthenticated body: ${r.status}`);
    assert.ok(Date.now() - t0 < 5000);
    assert.equal(await accepted(), a0, 'nothing accepted without a valid token');

    for (const h of [{ authorization: `Bearer ${TOKEN_A}` }, { authorization: `bearer ${TOKEN_B}` }, { 'x-api-key': TOKEN_A }]) {
      const ok = await post(gw, '/v1/traces', body(), { ...PB, ...h });
      assert.equal(ok.status, 200, JSON.stringify(h));
    }
    assert.equal((await accepted()) - a0, 3);
    assert.ok((await failures('otlp_http', 'missing')) - m0 >= 2, 'missing counted');
    assert.equal((await failures('otlp_http', 'invalid')) - i0, 3, 'invalid counted');
  });

  test('OTLP/gRPC: UNAUTHENTICATED without or with a wrong token, even for an unknown method; OK with one', async () => {
    const client = rawGrpcClient(gw.grpcAddr);
    try {
      const m0 = await failures('otlp_grpc', 'missing');
      const none = await grpcUnaryRaw(client, GRPC_EXPORT_PATH, body());
      assert.equal(none.code, 16, none.details);
      const wrong = await grpcUnaryRaw(client, GRPC_EXPORT_PATH, body(), { metadata: { authorization: 'Bearer bad-token-0123456789' } });
      assert.equal(wrong.code, 16);
      assert.equal(wrong.details, 'invalid token');
      const unknown = await grpcUnaryRaw(client, '/some.Service/Method', Buffer.alloc(0));
      assert.equal(unknown.code, 16, 'an unauthenticated client learns nothing about methods');
      const ok = await grpcUnaryRaw(client, GRPC_EXPORT_PATH, body(), { metadata: { authorization: `Bearer ${TOKEN_B}` } });
      assert.equal(ok.code, 0, ok.details);
      const key = await grpcUnaryRaw(client, GRPC_EXPORT_PATH, body(), { metadata: { 'x-api-key': TOKEN_A } });
      assert.equal(key.code, 0, key.details);
      assert.equal((await failures('otlp_grpc', 'missing')) - m0, 2);
    } finally {
      client.close();
    }
  });

  test('the OTel SDK exporters authenticate with headers; without them they fail', async () => {
    for (const p of ['http/protobuf', 'http/json', 'grpc']) {
      const good = makeExporter(p, { httpUrl: gw.httpUrl, grpcAddr: gw.grpcAddr, headers: { authorization: `Bearer ${TOKEN_A}` } });
      const r = await new Promise((res) => good.export(sdkSpans(2), res));
      await good.shutdown();
      assert.equal(r.code, ExportResultCode.SUCCESS, `${p}: ${r.error?.message}`);
      const bad = makeExporter(p, { httpUrl: gw.httpUrl, grpcAddr: gw.grpcAddr });
      const f = await new Promise((res) => bad.export(sdkSpans(2), res));
      await bad.shutdown();
      assert.equal(f.code, ExportResultCode.FAILED, `${p} without a token`);
    }
  });

  test('rotation: a rewritten tokens file is picked up; the removed token is refused', async () => {
    await fs.writeFile(`${tokens}.new`, `${TOKEN_C}\n`);
    await fs.rename(`${tokens}.new`, tokens);
    await waitFor(async () => (await post(gw, '/v1/traces', body(), { ...PB, authorization: `Bearer ${TOKEN_C}` })).status === 200, {
      timeoutMs: 5000,
      what: 'the new token accepted',
    });
    assert.equal((await post(gw, '/v1/traces', body(), { ...PB, authorization: `Bearer ${TOKEN_A}` })).status, 401);
    const client = rawGrpcClient(gw.grpcAddr);
    try {
      assert.equal((await grpcUnaryRaw(client, GRPC_EXPORT_PATH, body(), { metadata: { authorization: `Bearer ${TOKEN_A}` } })).code, 16);
      assert.equal((await grpcUnaryRaw(client, GRPC_EXPORT_PATH, body(), { metadata: { authorization: `Bearer ${TOKEN_C}` } })).code, 0);
    } finally {
      client.close();
    }
  });
});

describe('exposure warnings', { skip: skip ?? false }, () => {
  test('a receiver bound beyond loopback without TLS or tokens is warned about; with both it is not', async () => {
    const open = await startGateway({ config: { spool: { mode: 'memory' } }, env: { GENAI_GW_HTTP_ADDR: `0.0.0.0:${await freePort()}` } });
    try {
      assert.match(open.logs(), /receivers\.http\.addr 0\.0\.0\.0:\d+ is reachable from other hosts without TLS/);
      assert.match(open.logs(), /receivers\.http\.addr 0\.0\.0\.0:\d+ is reachable from other hosts without authentication/);
      assert.doesNotMatch(open.logs(), /receivers\.grpc\.addr/, 'the gRPC receiver is still on loopback');
    } finally {
      await open.stop();
      await open.cleanup();
    }
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gw-auth-'));
    await fs.writeFile(path.join(dir, 'tokens'), `${TOKEN_A}\n`);
    const tlsDir = path.join(REPO, 'tests/fixtures/tls');
    const closed = await startGateway({
      config: {
        spool: { mode: 'memory' },
        receivers: { auth: { tokens_file: path.join(dir, 'tokens') }, tls: { cert_file: path.join(tlsDir, 'server.pem'), key_file: path.join(tlsDir, 'server.key') } },
      },
      env: { GENAI_GW_HTTP_ADDR: `0.0.0.0:${await freePort()}` },
    });
    try {
      assert.doesNotMatch(closed.logs(), /reachable from other hosts/);
    } finally {
      await closed.stop();
      await closed.cleanup();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
