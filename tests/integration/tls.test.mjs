/*
 * tls.test.mjs: issue 12 item 4, TLS on both receivers. Real TLS clients: the OTel JS SDK's exporters over
 * https (protobuf and JSON) and gRPC over TLS, with and without a client certificate, plus raw node:tls
 * connections to read which certificate is served. A throw-away PKI is made with openssl at test time
 * (tests/lib/certs.mjs): two CAs, server and client certificates, an expired one.
 * Covered: mTLS accepted with the right client certificate and refused without one, with one from another
 * CA, with an expired one; TLS 1.1 and plaintext refused; the certificate re-read when its files are
 * rewritten (new connections see it on both ports), a broken rewrite keeps the old one serving, SIGHUP
 * re-reads at once; start refused, naming file, key and reason, for an expired certificate.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { createRequire } from 'node:module';
import { once } from 'node:events';
import { prerequisites, startGateway, metric, waitFor, sleep } from '../lib/harness.mjs';
import { makeCa, issue, fingerprint } from '../lib/certs.mjs';
import { makeExporter } from '../lib/sdk-client.mjs';

const require = createRequire(import.meta.url);
const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { ExportResultCode } = require('@opentelemetry/core');

const skip = prerequisites({ needPg: false });

const mem = new InMemorySpanExporter();
const tracer = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(mem)] }).getTracer('tls-test');

/** n GenAI chat spans as the SDK makes them. */
function spans(n) {
  mem.reset();
  for (let i = 0; i < n; i++) {
    const s = tracer.startSpan('chat gpt-4o', {
      attributes: { 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': 'gpt-4o', 'gen_ai.usage.input_tokens': 3 },
    });
    s.end();
  }
  return mem.getFinishedSpans();
}

/** Export n spans with a fresh SDK exporter; resolves the ExportResult. */
async function exportSpans(protocol, gw, tlsOpts, n = 3) {
  const exp = makeExporter(protocol, { httpUrl: gw.httpUrl, grpcAddr: gw.grpcAddr, tls: tlsOpts });
  try {
    return await new Promise((resolve) => exp.export(spans(n), resolve));
  } finally {
    await exp.shutdown().catch(() => {});
  }
}

/** The SHA-256 fingerprint (hex, no colons) of the certificate a TLS server on port serves to a new connection. */
function servedFingerprint(port, ca, { alpn } = {}) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ALPNProtocols: alpn }, () => {
      const fp = s.getPeerCertificate().fingerprint256.replace(/:/g, '');
      s.destroy();
      resolve(fp);
    });
    s.on('error', reject);
  });
}

/** Resolves the error a TLS connection attempt ends with (null when the handshake succeeds). */
function handshakeError(port, opts) {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...opts }, () => {
      /* TLS 1.3: a refused client certificate arrives as an alert after the client's handshake is done */
      s.once('data', () => {});
      s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      s.setTimeout(2000, () => {
        s.destroy();
        resolve(null);
      });
    });
    s.on('error', (e) => resolve(e));
    s.on('close', () => resolve(new Error('closed')));
  });
}

const PROTOCOLS = ['http/protobuf', 'http/json', 'grpc'];

/**
 * In a describe block: before its tests, a gateway (memory spool) whose receivers serve TLS with a server
 * certificate of a fresh CA, no client certificate asked (receivers: more receivers settings); after them,
 * the gateway stopped and the files removed. Returns { gw, ca }, set by the before hook.
 */
function tlsGateway(receivers = {}) {
  const ctx = { dir: null, gw: null, ca: null };
  before(async () => {
    ctx.dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gw-tls-'));
    ctx.ca = await makeCa(ctx.dir, 'ca');
    const server = await issue(ctx.dir, ctx.ca, 'server');
    ctx.gw = await startGateway({
      config: { spool: { mode: 'memory' }, receivers: { ...receivers, tls: { cert_file: server.cert, key_file: server.key } } },
    });
  });
  after(async () => {
    if (ctx.gw) {
      await ctx.gw.stop();
      await ctx.gw.cleanup();
    }
    if (ctx.dir) await fs.rm(ctx.dir, { recursive: true, force: true });
  });
  return ctx;
}

describe('TLS receivers', { skip: skip ?? false }, () => {
  let dir;
  let pki;
  let gw;
  const read = async (f) => fs.readFile(f);

  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gw-tls-'));
    const ca = await makeCa(dir, 'ca');
    const other = await makeCa(dir, 'other-ca');
    pki = {
      ca,
      server: await issue(dir, ca, 'server'),
      server2: await issue(dir, ca, 'server2'),
      client: await issue(dir, ca, 'client', { kind: 'client' }),
      stranger: await issue(dir, other, 'stranger', { kind: 'client' }),
      expired: await issue(dir, ca, 'expired-client', { kind: 'client', days: -1 }),
      expiredServer: await issue(dir, ca, 'expired-server', { days: -1 }),
    };
    /* the files the gateway reads; the rotation test rewrites them */
    await fs.copyFile(pki.server.cert, path.join(dir, 'live.pem'));
    await fs.copyFile(pki.server.key, path.join(dir, 'live.key'));
    gw = await startGateway({
      config: {
        spool: { mode: 'memory' },
        receivers: {
          reload_interval_ms: '200ms',
          tls: { cert_file: path.join(dir, 'live.pem'), key_file: path.join(dir, 'live.key'), client_ca_file: ca.cert },
        },
      },
    });
  });

  after(async () => {
    if (gw) {
      const r = await gw.stop();
      await gw.cleanup();
      assert.deepEqual(r, { code: 0, signal: null }, 'gateway exits 0 on SIGTERM');
    }
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  const accepted = async () => metric(await gw.metrics(), 'genai_gateway_spans_accepted_total');

  test('mTLS: the SDK exporters over https and gRPC with a client certificate from the CA are accepted', async () => {
    const t = { ca: await read(pki.ca.cert), cert: await read(pki.client.cert), key: await read(pki.client.key) };
    for (const p of PROTOCOLS) {
      const before = await accepted();
      const r = await exportSpans(p, gw, t, 3);
      assert.equal(r.code, ExportResultCode.SUCCESS, `${p}: ${r.error?.message}`);
      assert.equal((await accepted()) - before, 3, `${p}: 3 spans accepted`);
    }
  });

  test('mTLS: no client certificate, one from another CA, an expired one: refused on both ports, nothing accepted', async () => {
    const ca = await read(pki.ca.cert);
    const cases = {
      'no certificate': { ca },
      'another CA': { ca, cert: await read(pki.stranger.cert), key: await read(pki.stranger.key) },
      expired: { ca, cert: await read(pki.expired.cert), key: await read(pki.expired.key) },
    };
    const before = await accepted();
    const failsBefore = metric(await gw.metrics(), 'genai_gateway_tls_handshake_failures_total', { listener: 'otlp_http' });
    for (const [name, t] of Object.entries(cases)) {
      for (const p of PROTOCOLS) {
        const r = await exportSpans(p, gw, t, 2);
        assert.equal(r.code, ExportResultCode.FAILED, `${name} over ${p} must fail`);
      }
      const e = await handshakeError(gw.ports.http, t);
      assert.ok(e, `${name}: the OTLP/HTTP handshake must fail`);
    }
    assert.equal(await accepted(), before, 'no span accepted from a refused client');
    const failsAfter = metric(await gw.metrics(), 'genai_gateway_tls_handshake_failures_total', { listener: 'otlp_http' });
    assert.ok(failsAfter - failsBefore >= 6, `handshake failures counted: ${failsAfter - failsBefore}`);
  });

  test('TLS 1.1 and plaintext are refused on both ports', async () => {
    const t = { ca: await read(pki.ca.cert), cert: await read(pki.client.cert), key: await read(pki.client.key) };
    for (const port of [gw.ports.http, gw.ports.grpc]) {
      const e = await handshakeError(port, { ...t, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
      assert.ok(e, `TLS 1.1 must be refused on ${port}`);
    }
    const before = await accepted();
    const plain = await exportSpans('http/protobuf', { httpUrl: gw.httpUrl, grpcAddr: gw.grpcAddr }, null, 1);
    assert.equal(plain.code, ExportResultCode.FAILED, 'plaintext OTLP/HTTP on the TLS port fails');
    const plainGrpc = await exportSpans('grpc', { httpUrl: gw.httpUrl, grpcAddr: gw.grpcAddr }, null, 1);
    assert.equal(plainGrpc.code, ExportResultCode.FAILED, 'plaintext gRPC on the TLS port fails');
    assert.equal(await accepted(), before);
  });

  test('rotation: rewritten files are served to new connections on both ports; a broken rewrite keeps the old certificate; SIGHUP re-reads', async () => {
    const ca = await read(pki.ca.cert);
    const t = { ca, cert: await read(pki.client.cert), key: await read(pki.client.key) };
    const fp1 = await fingerprint(pki.server.cert);
    const fp2 = await fingerprint(pki.server2.cert);
    assert.equal(await servedFingerprint(gw.ports.http, ca, t), fp1);
    const okBefore = metric(await gw.metrics(), 'genai_gateway_tls_reloads_total', { result: 'ok' });

    /* as Kubernetes does: new files renamed into place */
    const live = (f) => path.join(dir, f);
    await fs.copyFile(pki.server2.key, live('new.key'));
    await fs.copyFile(pki.server2.cert, live('new.pem'));
    await fs.rename(live('new.key'), live('live.key'));
    await fs.rename(live('new.pem'), live('live.pem'));
    await waitFor(async () => (await servedFingerprint(gw.ports.http, ca, { ...t })) === fp2, { timeoutMs: 5000, what: 'the new certificate on OTLP/HTTP' });
    await waitFor(async () => (await servedFingerprint(gw.ports.grpc, ca, { ...t, alpn: ['h2'] })) === fp2, { timeoutMs: 5000, what: 'the new certificate on gRPC' });
    const r = await exportSpans('grpc', gw, t, 1);
    assert.equal(r.code, ExportResultCode.SUCCESS, 'a new gRPC client works with the new certificate');
    const m = await gw.metrics();
    assert.ok(metric(m, 'genai_gateway_tls_reloads_total', { result: 'ok' }) > okBefore);

    /* a key that does not match: refused, the previous certificate keeps serving, the log says why */
    const failedBefore = metric(m, 'genai_gateway_tls_reloads_total', { result: 'failed' });
    await fs.copyFile(pki.server.key, live('bad.key'));
    await fs.rename(live('bad.key'), live('live.key'));
    await waitFor(async () => metric(await gw.metrics(), 'genai_gateway_tls_reloads_total', { result: 'failed' }) > failedBefore, {
      timeoutMs: 5000,
      what: 'the failed reload',
    });
    assert.equal(await servedFingerprint(gw.ports.http, ca, t), fp2, 'still the last good certificate');
    assert.match(gw.logs(), /receivers\.tls\.key_file: '[^']*live\.key': the key does not match the certificate/);
    assert.doesNotMatch(gw.logs(), /BEGIN (EC |)PRIVATE KEY/, 'no key material in the log');

    /* put the matching key back, then SIGHUP (the watch may have caught it already: either is fine) */
    await fs.copyFile(pki.server2.key, live('good.key'));
    await fs.rename(live('good.key'), live('live.key'));
    gw.proc.kill('SIGHUP');
    await waitFor(async () => /SIGHUP: re-reading/.test(gw.logs()), { timeoutMs: 3000, what: 'SIGHUP logged' });
    await sleep(300);
    assert.ok(gw.alive(), 'SIGHUP does not stop the gateway');
    assert.equal(await servedFingerprint(gw.ports.http, ca, t), fp2);
    const ok = await exportSpans('http/protobuf', gw, t, 1);
    assert.equal(ok.code, ExportResultCode.SUCCESS);
  });

  test('start fails fast on an expired server certificate, naming the key, the file and the date', async () => {
    await assert.rejects(
      startGateway({ config: { spool: { mode: 'memory' }, receivers: { tls: { cert_file: pki.expiredServer.cert, key_file: pki.expiredServer.key } } }, readyTimeoutMs: 5000 }),
      /receivers\.tls\.cert_file: '[^']*expired-server\.pem': the certificate \(\/CN=expired-server\) expired on \d{4}-/,
    );
  });
});

describe('TLS receivers without client certificates', { skip: skip ?? false }, () => {
  const srv = tlsGateway();

  test('the SDK exporters need only the CA', async () => {
    const t = { ca: await fs.readFile(srv.ca.cert) };
    for (const p of PROTOCOLS) {
      const r = await exportSpans(p, srv.gw, t, 2);
      assert.equal(r.code, ExportResultCode.SUCCESS, `${p}: ${r.error?.message}`);
    }
  });

  test('a client that does not trust the CA fails its handshake', async () => {
    const e = await handshakeError(srv.gw.ports.http, {});
    assert.ok(e);
    assert.match(String(e.code ?? e.message), /SELF_SIGNED|UNABLE_TO_VERIFY|unable to get local issuer/i);
  });
});

describe('TLS receivers and slow clients', { skip: skip ?? false }, () => {
  const srv = tlsGateway({ http: { header_timeout_ms: '1500ms' } });

  test('a connection that never starts its handshake, and one that trickles its headers over TLS, are closed at the header deadline', async () => {
    const net = await import('node:net');
    const fails0 = metric(await srv.gw.metrics(), 'genai_gateway_tls_handshake_failures_total', { listener: 'otlp_http' });
    const silent = net.connect({ host: '127.0.0.1', port: srv.gw.ports.http });
    silent.on('error', () => {});
    const silentT0 = Date.now();
    const silentClosed = new Promise((r) => silent.on('close', () => r(Date.now() - silentT0)));

    const slow = tls.connect({ host: '127.0.0.1', port: srv.gw.ports.http, ca: await fs.readFile(srv.ca.cert), servername: 'localhost' });
    slow.on('error', () => {});
    await once(slow, 'secureConnect');
    const slowT0 = Date.now();
    const slowClosed = new Promise((r) => slow.on('close', () => r(Date.now() - slowT0)));
    slow.write('POST /v1/traces HTTP/1.1\r\nHost: x\r\n');
    const drip = setInterval(() => slow.writable && slow.write('a'), 100);

    const [s1, s2] = await Promise.all([
      Promise.race([silentClosed, sleep(6000).then(() => Infinity)]),
      Promise.race([slowClosed, sleep(6000).then(() => Infinity)]),
    ]);
    clearInterval(drip);
    assert.ok(s1 >= 1200 && s1 < 3500, `a connection without a handshake lived ${s1} ms`);
    assert.ok(s2 >= 1200 && s2 < 3500, `a TLS connection trickling its headers lived ${s2} ms`);
    assert.ok(metric(await srv.gw.metrics(), 'genai_gateway_tls_handshake_failures_total', { listener: 'otlp_http' }) > fails0);
    const ok = await exportSpans('http/protobuf', srv.gw, { ca: await fs.readFile(srv.ca.cert) }, 1);
    assert.equal(ok.code, ExportResultCode.SUCCESS, 'a good client is served meanwhile');
  });
});
