/*
 * exporters-signoz.test.mjs: the SigNoz exporter (DESIGN §7) against local fakes: a real gRPC server
 * (@grpc/grpc-js) that, like SigNoz Cloud, refuses calls without the exact signoz-ingestion-key, and an
 * HTTPS server offering HTTP/2. Replayed SDK payloads must arrive decoded as OTLP with the same span ids,
 * cost attributes, gzip and none of the manifests' PII; TLS must verify against the configured CA (and
 * fail against the system roots); a wrong key is refused once, counted, not retried.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { prerequisites, startGateway, metric, waitFor } from '../lib/harness.mjs';
import { rawGrpcClient } from '../lib/otlp.mjs';
import { traceFixtures, sendFixture } from '../lib/fixtures.mjs';
import { startOtlpGrpc, startOtlpHttp, startGrpcWire, attrsOf, tlsFiles, TRACES_METHOD } from '../lib/fake-otlp.mjs';

const skip = prerequisites({ needPg: false });
const KEY = 'signoz-it-ingestion-key-0123';

async function replay(gw, files) {
  const client = rawGrpcClient(gw.grpcAddr);
  const sent = [];
  const pii = [];
  try {
    for (const fx of traceFixtures().filter((f) => !files || files.includes(f.file))) {
      const r = await sendFixture(gw, fx, client);
      sent.push(...r.spanIds);
      pii.push(...fx.pii);
    }
  } finally {
    client.close();
  }
  return { sent, pii };
}

async function exporterMetric(gw, name, labels) {
  return metric(await gw.metrics(), name, { exporter: 'signoz', ...labels });
}

describe('SigNoz exporter', { skip: skip ?? false }, () => {
  test('OTLP/gRPC with the ingestion key: every fixture arrives once, priced, without PII', async () => {
    const sz = await startOtlpGrpc({ requireMetadata: { 'signoz-ingestion-key': KEY } });
    const gw = await startGateway({
      config: { exporters: { signoz: { batch_wait_ms: '100ms' } } },
      env: { SIGNOZ_ENDPOINT: sz.addr, SIGNOZ_INGESTION_KEY: KEY },
    });
    try {
      const { sent, pii } = await replay(gw);
      await sz.waitFor(() => sz.acceptedSpanIds().length >= sent.length, { what: `${sent.length} spans at the fake SigNoz` });
      assert.deepEqual([...sz.acceptedSpanIds()].sort(), [...sent].sort());
      for (const r of sz.requests) {
        assert.equal(r.method, TRACES_METHOD);
        assert.equal(r.metadata['signoz-ingestion-key'], KEY);
        assert.match(String(r.metadata['user-agent']), /genai-gateway\//);
        assert.ok(r.ok);
      }
      const text = sz.requests.map((r) => r.raw.toString('latin1')).join('\n');
      for (const p of pii) assert.ok(!text.includes(p), `"${p}" reached SigNoz`);
      const priced = sz.acceptedSpans().map(({ span }) => attrsOf(span)).filter((a) => a['genai_gateway.cost.total_usd'] !== undefined);
      assert.ok(priced.length >= 10, `priced spans: ${priced.length}`);
      for (const a of priced) {
        assert.ok(a['genai_gateway.cost.total_usd'] > 0);
        assert.ok(['computed', 'reported'].includes(a['genai_gateway.cost.source']));
        assert.ok(a['gen_ai.usage.cost'] !== undefined);
        assert.equal(a['langfuse.observation.cost_details'], undefined, "Langfuse's details are on Langfuse's copy only");
      }
      /* counted once the answer is back in the gateway */
      await waitFor(async () => (await exporterMetric(gw, 'genai_gateway_exporter_spans_sent_total', { signal: 'traces' })) === sent.length, { what: 'sent counter' });
    } finally {
      await gw.cleanup();
      await sz.close();
    }
  });

  test('gRPC messages are gzip-compressed on the wire (grpc-encoding: gzip), and not with gzip: false', async () => {
    const wire = await startGrpcWire();
    const on = await startGateway({ config: { exporters: { signoz: { endpoint: wire.addr, batch_wait_ms: '50ms' } } } });
    const off = await startGateway({ config: { exporters: { otlp: { endpoint: wire.addr, protocol: 'grpc', gzip: false, batch_wait_ms: '50ms' } } } });
    try {
      const a = await replay(on, ['otel-grpc-1.pb']);
      await wire.waitFor((reqs) => reqs.length >= 1);
      const b = await replay(off, ['traceloop-grpc-1.pb']);
      await wire.waitFor((reqs) => reqs.length >= 2);
      const [first, second] = wire.requests;
      assert.equal(first.method, TRACES_METHOD);
      assert.equal(first.encoding, 'gzip');
      assert.equal(first.compressed, true);
      assert.deepEqual([...wire.acceptedSpanIds()].sort(), [...a.sent, ...b.sent].sort());
      assert.equal(second.compressed, false);
      assert.notEqual(second.encoding, 'gzip');
      assert.match(String(first.metadata['content-type']), /^application\/grpc/);
      assert.equal(first.metadata.te, 'trailers');
    } finally {
      await on.cleanup();
      await off.cleanup();
      await wire.close();
    }
  });

  test('gRPC over TLS: verified against ca_file; the system roots do not trust the test CA', async () => {
    const sz = await startOtlpGrpc({ tls: true });
    const good = await startGateway({
      config: { exporters: { signoz: { endpoint: `localhost:${sz.port}`, tls: true, ca_file: tlsFiles().ca, batch_wait_ms: '50ms' } } },
    });
    const bad = await startGateway({
      config: { exporters: { signoz: { endpoint: `localhost:${sz.port}`, tls: true, batch_wait_ms: '50ms', timeout_ms: '2s' } } },
    });
    try {
      const a = await replay(good, ['otel-grpc-1.pb']);
      await sz.waitFor(() => sz.acceptedSpanIds().length >= a.sent.length);
      assert.deepEqual([...sz.acceptedSpanIds()].sort(), [...a.sent].sort());
      const before = sz.requests.length;
      await replay(bad, ['traceloop-grpc-1.pb']);
      await waitFor(async () => (await exporterMetric(bad, 'genai_gateway_exporter_spans_failed_total', { signal: 'traces' })) > 0, { what: 'a failed TLS export' });
      assert.equal(sz.requests.length, before, 'an untrusted peer never got a call');
      assert.equal(await exporterMetric(bad, 'genai_gateway_exporter_up'), 0);
      assert.equal(await exporterMetric(bad, 'genai_gateway_exporter_spans_sent_total', { signal: 'traces' }), 0);
    } finally {
      await good.cleanup();
      await bad.cleanup();
      await sz.close();
    }
  });

  test('OTLP/HTTP mode over HTTPS: HTTP/2 when the server offers it, the key as a header, gzip', async () => {
    const sz = await startOtlpHttp({ h2: true });
    const gw = await startGateway({
      config: { exporters: { signoz: { protocol: 'http', endpoint: `https://localhost:${sz.port}`, ca_file: tlsFiles().ca, batch_wait_ms: '50ms' } } },
      env: { SIGNOZ_INGESTION_KEY: KEY },
    });
    try {
      const { sent } = await replay(gw, ['openinference-http-protobuf-1.pb', 'otel-http-json-1.json']);
      await sz.waitFor(() => sz.acceptedSpanIds().length >= sent.length);
      assert.deepEqual([...sz.acceptedSpanIds()].sort(), [...sent].sort());
      for (const r of sz.requests) {
        assert.equal(r.path, '/v1/traces');
        assert.equal(r.httpVersion, '2.0');
        assert.equal(r.headers['signoz-ingestion-key'], KEY);
        assert.equal(r.headers['content-type'], 'application/x-protobuf');
        assert.equal(r.encoding, 'gzip');
      }
    } finally {
      await gw.cleanup();
      await sz.close();
    }
  });

  test('a wrong ingestion key: UNAUTHENTICATED is not retried; dropped and counted', async () => {
    const sz = await startOtlpGrpc({ requireMetadata: { 'signoz-ingestion-key': KEY } });
    const gw = await startGateway({
      config: { exporters: { signoz: { batch_wait_ms: '50ms' } } },
      env: { SIGNOZ_ENDPOINT: sz.addr, SIGNOZ_INGESTION_KEY: 'not-the-key' },
    });
    try {
      const { sent } = await replay(gw, ['otel-grpc-1.pb']);
      await waitFor(async () => (await exporterMetric(gw, 'genai_gateway_exporter_spans_dropped_total', { signal: 'traces', reason: 'rejected' })) === sent.length, { what: 'the batch dropped' });
      await new Promise((r) => setTimeout(r, 800));
      assert.equal(sz.requests.length, 1, 'refused once, never retried');
      assert.equal(await exporterMetric(gw, 'genai_gateway_exporter_requests_total', { result: 'drop' }), 1);
      assert.match(gw.logs(), /dropped a batch of 1 entries: gRPC 127\.0\.0\.1:\d+: status 16/);
      assert.ok(!gw.logs().includes('not-the-key'));
    } finally {
      await gw.cleanup();
      await sz.close();
    }
  });
});
