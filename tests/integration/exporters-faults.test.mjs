/*
 * exporters-faults.test.mjs: exporters when the other side misbehaves (DESIGN §1, §7), through the real
 * binary against local fakes:
 * - 503 with Retry-After, then recovery: everything arrives once, not before the delay; gRPC UNAVAILABLE
 *   with RetryInfo likewise; RESOURCE_EXHAUSTED without RetryInfo is not retried;
 * - 400: that batch is dropped and counted, later batches flow;
 * - a peer that hangs: the request times out and is retried; at shutdown a hung request does not hold
 *   the process past its grace period;
 * - one exporter down for the whole test: Postgres rows, the other exporter and /readyz are unaffected;
 * - the lag cap: a dead exporter skips its oldest data (counted) instead of filling the spool;
 * - an endpoint that is our own listen address stops the start.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  prerequisites, createDatabase, startGateway, post, waitFor, metric, freePort, sleep, GW_BIN, countRows,
} from '../lib/harness.mjs';
import { traceRequest, genaiSpan, span, toProtobuf, rawGrpcClient } from '../lib/otlp.mjs';
import { startOtlpHttp, startOtlpGrpc, statusBytes } from '../lib/fake-otlp.mjs';
import { startFakeLangfuse } from '../lib/fake-langfuse.mjs';
import { traceFixtures, sendFixture, SDK_DIR } from '../lib/fixtures.mjs';

const skip = prerequisites({ needPg: false });
const skipPg = prerequisites();
const PB = { 'content-type': 'application/x-protobuf' };
const execFileP = promisify(execFile);

async function sendSpans(gw, n, service = 'faults') {
  const spans = Array.from({ length: n }, () => genaiSpan({ model: 'gpt-4o-mini', input: 10, output: 5 }));
  const r = await post(gw, '/v1/traces', toProtobuf(traceRequest(spans, { service })), PB);
  assert.equal(r.status, 200);
  return spans.map((s) => s.spanId);
}

const m = async (gw, name, labels) => metric(await gw.metrics(), name, labels);
const counts = (ids) => ids.reduce((acc, id) => acc.set(id, (acc.get(id) ?? 0) + 1), new Map());

function assertOnce(got, sent) {
  const c = counts(got);
  for (const id of sent) assert.equal(c.get(id), 1, `span ${id} arrived ${c.get(id) ?? 0} times`);
  assert.equal(got.length, sent.length);
}

describe('exporter faults', { skip: skip ?? false }, () => {
  test('HTTP 503 with Retry-After, then recovery: everything arrives once, after the delay', async () => {
    const fake = await startOtlpHttp({ respond: ({ n }) => (n === 1 ? { status: 503, headers: { 'retry-after': '2' } } : undefined) });
    const gw = await startGateway({ config: { exporters: { otlp: { endpoint: fake.url, batch_wait_ms: '50ms' } } } });
    try {
      const sent = await sendSpans(gw, 3);
      await fake.waitFor(() => fake.acceptedSpanIds().length >= 3);
      assertOnce(fake.acceptedSpanIds(), sent);
      const [first, second] = fake.requests;
      assert.equal(first.ok, false);
      assert.ok(second.at - first.at >= 1900, `retried after ${second.at - first.at} ms, Retry-After said 2 s`);
      assert.ok(second.at - first.at < 8000, `retried after ${second.at - first.at} ms`);
      await waitFor(async () => (await m(gw, 'genai_gateway_exporter_spans_sent_total', { exporter: 'otlp', signal: 'traces' })) === 3);
      assert.equal(await m(gw, 'genai_gateway_exporter_spans_retried_total', { exporter: 'otlp', signal: 'traces' }), 3);
      assert.equal(await m(gw, 'genai_gateway_exporter_requests_total', { exporter: 'otlp', result: 'retry' }), 1);
      assert.equal(await m(gw, 'genai_gateway_exporter_up', { exporter: 'otlp' }), 1);
    } finally {
      await gw.cleanup();
      await fake.close();
    }
  });

  test('gRPC UNAVAILABLE with RetryInfo waits the delay; RESOURCE_EXHAUSTED without it is dropped', async () => {
    const fake = await startOtlpGrpc({
      respond: ({ n }) => {
        if (n === 1) return { code: 14, details: 'overloaded', retryDelayMs: 1500 };
        if (n === 3) return { code: 8, details: 'quota exceeded' };
        return undefined;
      },
    });
    const gw = await startGateway({ config: { exporters: { otlp: { endpoint: fake.addr, protocol: 'grpc', batch_wait_ms: '50ms' } } } });
    try {
      const a = await sendSpans(gw, 2);
      await fake.waitFor(() => fake.acceptedSpanIds().length >= 2);
      assertOnce(fake.acceptedSpanIds(), a);
      assert.ok(fake.requests[1].at - fake.requests[0].at >= 1400, `retried after ${fake.requests[1].at - fake.requests[0].at} ms, RetryInfo said 1.5 s`);
      const b = await sendSpans(gw, 4); /* answered RESOURCE_EXHAUSTED without RetryInfo */
      await waitFor(async () => (await m(gw, 'genai_gateway_exporter_spans_dropped_total', { exporter: 'otlp', signal: 'traces', reason: 'rejected' })) === 4);
      const c = await sendSpans(gw, 1);
      await fake.waitFor(() => fake.acceptedSpanIds().length >= 3);
      assertOnce(fake.acceptedSpanIds(), [...a, ...c]);
      assert.equal(fake.requests.length, 4, 'the exhausted batch was not retried');
      assert.ok(!fake.acceptedSpanIds().some((id) => b.includes(id)));
    } finally {
      await gw.cleanup();
      await fake.close();
    }
  });

  test('HTTP 400: the batch is dropped and counted once, later batches flow', async () => {
    const fake = await startOtlpHttp({ respond: ({ n }) => (n === 1 ? { status: 400, body: statusBytes({ code: 3, message: 'span 0 is malformed' }) } : undefined) });
    const gw = await startGateway({ config: { exporters: { otlp: { endpoint: fake.url, batch_wait_ms: '50ms' } } } });
    try {
      const bad = await sendSpans(gw, 2);
      await waitFor(async () => (await m(gw, 'genai_gateway_exporter_spans_dropped_total', { exporter: 'otlp', signal: 'traces', reason: 'rejected' })) === 2, { what: 'the dropped batch counted' });
      const good = await sendSpans(gw, 3);
      await fake.waitFor(() => fake.acceptedSpanIds().length >= 3);
      assertOnce(fake.acceptedSpanIds(), good);
      assert.equal(fake.requests.length, 2, 'the refused batch was sent once');
      assert.ok(fake.requests[0].request.resourceSpans.length >= 1);
      assert.ok(!fake.acceptedSpanIds().some((id) => bad.includes(id)));
      const lines = gw.logs().split('\n').filter((l) => l.includes('HTTP 400'));
      assert.equal(lines.length, 1, 'one log line for the dropped batch');
      assert.match(lines[0], /span 0 is malformed/);
      assert.equal(await m(gw, 'genai_gateway_exporter_requests_total', { exporter: 'otlp', result: 'drop' }), 1);
    } finally {
      await gw.cleanup();
      await fake.close();
    }
  });

  test('a hanging peer: the request times out and is retried; later batches get through', async () => {
    const fake = await startOtlpHttp({ respond: ({ n }) => (n === 1 ? { hang: true } : undefined) });
    const gw = await startGateway({ config: { exporters: { otlp: { endpoint: fake.url, timeout_ms: '1s', batch_wait_ms: '50ms' } } } });
    try {
      const sent = await sendSpans(gw, 2);
      await fake.waitFor(() => fake.acceptedSpanIds().length >= 2, { timeoutMs: 15000 });
      assertOnce(fake.acceptedSpanIds(), sent);
      const gap = fake.requests[1].at - fake.requests[0].at;
      assert.ok(gap >= 900, `retried ${gap} ms after the hung request; the timeout is 1 s`);
      assert.ok(gap < 8000, `retried ${gap} ms after the hung request`);
      const more = await sendSpans(gw, 2);
      await fake.waitFor(() => fake.acceptedSpanIds().length >= 4);
      assertOnce(fake.acceptedSpanIds(), [...sent, ...more]);
      assert.match(gw.logs(), /timed out/);
    } finally {
      await gw.cleanup();
      await fake.close();
    }
  });

  test('a request hung at shutdown does not hold the gateway past its grace period', async () => {
    const fake = await startOtlpHttp({ respond: () => ({ hang: true }) });
    const gw = await startGateway({
      config: { shutdown_grace_ms: '1500ms', exporters: { otlp: { endpoint: fake.url, timeout_ms: '60s', batch_wait_ms: '50ms' } } },
    });
    try {
      await sendSpans(gw, 2);
      await fake.waitFor((reqs) => reqs.length >= 1);
      const t0 = Date.now();
      const r = await gw.stop(20000);
      const took = Date.now() - t0;
      assert.equal(r.code, 0, `exit ${JSON.stringify(r)}`);
      assert.ok(took < 5000, `stopped in ${took} ms with a 1.5 s grace and a 60 s request timeout`);
      assert.match(gw.logs(), /given up at shutdown/);
    } finally {
      await gw.cleanup();
      await fake.close();
    }
  });
});

describe('exporter faults with Postgres', { skip: skipPg ?? false }, () => {
  test('Langfuse down for the whole test: Postgres rows, SigNoz and /readyz are unaffected', async () => {
    const db = await createDatabase();
    const sz = await startOtlpGrpc();
    const dead = await freePort(); /* nothing listens there */
    const gw = await startGateway({
      dsn: db.dsn,
      config: { exporters: { signoz: { endpoint: sz.addr, batch_wait_ms: '50ms' }, langfuse: { batch_wait_ms: '50ms', timeout_ms: '1s' } } },
      env: { LANGFUSE_HOST: `http://127.0.0.1:${dead}`, LANGFUSE_PUBLIC_KEY: 'pk-lf-x', LANGFUSE_SECRET_KEY: 'sk-lf-x' },
    });
    const client = rawGrpcClient(gw.grpcAddr);
    try {
      const sent = [];
      const wantRows = [];
      for (const fx of traceFixtures()) {
        const r = await sendFixture(gw, fx, client);
        sent.push(...r.spanIds);
        for (const c of fx.manifest.calls) if (c.expect_span_exported && c.span_id) wantRows.push(c.span_id);
        const ready = await fetch(`${gw.adminUrl}/readyz`);
        assert.equal(ready.status, 200, '/readyz stays ready while an exporter is down');
      }
      await sz.waitFor(() => sz.acceptedSpanIds().length >= sent.length);
      assertOnce(sz.acceptedSpanIds(), sent);
      await waitFor(async () => {
        const r = await db.query('SELECT count(*)::int AS n FROM ai_interaction_traces WHERE span_id = ANY($1)', [wantRows]);
        return r.rows[0].n === wantRows.length;
      }, { what: `${wantRows.length} rows` });
      await waitFor(async () => (await m(gw, 'genai_gateway_exporter_spans_failed_total', { exporter: 'langfuse', signal: 'traces' })) > 0);
      const met = await gw.metrics();
      assert.equal(metric(met, 'genai_gateway_exporter_up', { exporter: 'langfuse' }), 0);
      assert.equal(metric(met, 'genai_gateway_exporter_spans_sent_total', { exporter: 'langfuse', signal: 'traces' }), 0);
      assert.ok(metric(met, 'genai_gateway_exporter_lag_entries', { exporter: 'langfuse' }) > 0, 'Langfuse keeps its data to retry');
      assert.equal(metric(met, 'genai_gateway_exporter_lag_entries', { exporter: 'signoz' }), 0);
      assert.equal(metric(met, 'genai_gateway_exporter_up', { exporter: 'signoz' }), 1);
      assert.equal(metric(met, 'genai_gateway_backpressure_total'), 0);
      assert.equal((await fetch(`${gw.adminUrl}/readyz`)).status, 200);
    } finally {
      client.close();
      await gw.cleanup();
      await sz.close();
      await db.drop();
    }
  });

  test('exporter threads run below ingestion\'s CPU priority (exporters.<name>.nice), the Postgres writer does not', async () => {
    const db = await createDatabase();
    const sz = await startOtlpGrpc();
    const lf = await startFakeLangfuse();
    const ot = await startOtlpHttp();
    const gw = await startGateway({
      dsn: db.dsn,
      config: {
        exporters: {
          signoz: { endpoint: sz.addr, nice: 3 },
          langfuse: { endpoint: lf.url, public_key: 'pk-lf-x', secret_key: 'sk-lf-x' }, /* the default, 10 */
          otlp: { endpoint: ot.url, nice: 0 },
        },
      },
    });
    try {
      /* /proc/<pid>/task/<tid>/stat: field 19 is the nice value; comm may hold spaces, so split after ')'. */
      const niceOf = (tid) => {
        const st = fs.readFileSync(`/proc/${gw.pid}/task/${tid}/stat`, 'utf8');
        return Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[16]);
      };
      const threads = () => fs.readdirSync(`/proc/${gw.pid}/task`).map((tid) => ({
        tid, comm: fs.readFileSync(`/proc/${gw.pid}/task/${tid}/comm`, 'utf8').trim(),
      }));
      await waitFor(() => ['gw-sink-signoz', 'gw-sink-langfus', 'gw-sink-otlp', 'gw-sink-postgre']
        .every((c) => threads().some((t) => t.comm === c)), { what: 'the four sink threads' });
      const base = niceOf(gw.pid); /* the main thread: whatever nice the test runs under */
      const byComm = Object.fromEntries(threads().map((t) => [t.comm, niceOf(t.tid)]));
      assert.equal(byComm['gw-sink-langfus'], Math.min(base + 10, 19), 'langfuse: default nice 10');
      assert.equal(byComm['gw-sink-signoz'], Math.min(base + 3, 19), 'signoz: nice 3 as configured');
      assert.equal(byComm['gw-sink-otlp'], base, 'otlp: nice 0 keeps ingestion\'s priority');
      assert.equal(byComm['gw-sink-postgre'], base, 'the Postgres writer keeps ingestion\'s priority');
      /* and they still deliver */
      const sent = await sendSpans(gw, 4);
      await sz.waitFor(() => sz.acceptedSpanIds().length >= 4);
      assertOnce(sz.acceptedSpanIds(), sent);
    } finally {
      await gw.cleanup();
      await sz.close();
      await lf.close();
      await ot.close();
      await db.drop();
    }
  });

  test('the lag cap: a dead exporter skips its oldest data, counted, and the spool never pushes back', async () => {
    const db = await createDatabase();
    const dead = await freePort();
    const gw = await startGateway({
      dsn: db.dsn,
      config: {
        spool: { max_bytes: '2MiB' },
        postgres: { batch_wait_ms: '10ms' },
        exporters: { otlp: { endpoint: `http://127.0.0.1:${dead}`, max_lag_bytes: '128KiB', timeout_ms: '500ms', batch_wait_ms: '20ms' } },
      },
    });
    try {
      const traceIds = [];
      let spans = 0;
      const pad = 'x'.repeat(4000);
      for (let i = 0; i < 60; i++) {
        const s = Array.from({ length: 5 }, () => genaiSpan({ attributes: { 'app.pad': pad } }));
        traceIds.push(...s.map((x) => x.traceId));
        spans += s.length;
        const r = await post(gw, '/v1/traces', toProtobuf(traceRequest(s, { service: 'lag' })), PB);
        assert.equal(r.status, 200, `request ${i}: ${r.status} (the spool must not fill)`);
        /* Keep pace with the Postgres writer, whose lag is rightly allowed to push back: only the dead
         * exporter could fill the spool here (60 x ~40 KB entries > 2 MiB), and its cap must stop it. */
        await waitFor(async () => (await m(gw, 'genai_gateway_spool_lag_entries', { consumer: 'postgres' })) === 0, { what: 'the writer caught up', intervalMs: 20 });
      }
      await waitFor(async () => (await countRows(db, traceIds)) === spans, { what: `${spans} rows in Postgres` });
      await waitFor(async () => (await m(gw, 'genai_gateway_exporter_spans_dropped_total', { exporter: 'otlp', signal: 'traces', reason: 'lag_cap' })) > 0, { what: 'lag cap skips' });
      const met = await gw.metrics();
      const skipped = metric(met, 'genai_gateway_exporter_spans_dropped_total', { exporter: 'otlp', signal: 'traces', reason: 'lag_cap' });
      assert.ok(skipped >= spans / 2, `skipped ${skipped} of ${spans}`);
      assert.ok(metric(met, 'genai_gateway_exporter_lag_bytes', { exporter: 'otlp' }) <= 128 * 1024 + 32 * 1024);
      assert.equal(metric(met, 'genai_gateway_backpressure_total'), 0);
      assert.match(gw.logs(), /lag cap behind the spool head: skipped \d+ spans/);
    } finally {
      await gw.cleanup();
      await db.drop();
    }
  });
});

describe('exporter start-up checks', { skip: skip ?? false }, () => {
  test('an exporter endpoint that is our own listen address stops the start (exit 1, the reason named)', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'gw-loop-'));
    try {
      const port = await freePort();
      const env = { PATH: process.env.PATH, GENAI_GW_GRPC_ADDR: `127.0.0.1:${port}`, GENAI_GW_HTTP_ADDR: `127.0.0.1:${await freePort()}`, GENAI_GW_ADMIN_ADDR: `127.0.0.1:${await freePort()}`, SIGNOZ_ENDPOINT: `localhost:${port}` };
      const r = await execFileP(GW_BIN, [], { env, timeout: 10000 }).then(() => ({ code: 0 }), (e) => e);
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`environment SIGNOZ_ENDPOINT: exporters\\.signoz\\.endpoint: 'localhost:${port}' is the gateway's own receivers\\.grpc\\.addr`));
      const cfg = path.join(dir, 'gw.yaml');
      await fsp.writeFile(cfg, `exporters:\n  langfuse:\n    endpoint: https://cloud.langfuse.com\n    public_key: pk-lf-1\n`);
      const c = await execFileP(GW_BIN, ['--check-config', '--config', cfg], { env: { PATH: process.env.PATH }, timeout: 10000 }).then(() => ({ code: 0 }), (e) => e);
      assert.equal(c.code, 1);
      assert.match(c.stderr, /gw\.yaml:3: exporters\.langfuse\.secret_key: required when the Langfuse exporter is on/);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('exporters and log records', { skip: skip ?? false }, () => {
  test('log records go, redacted, to the OTLP exporter on /v1/logs and to SigNoz over gRPC, never to Langfuse', async () => {
    const otlp = await startOtlpHttp();
    const sz = await startOtlpGrpc();
    const lf = await startFakeLangfuse({ publicKey: 'pk', secretKey: 'sk' });
    const gw = await startGateway({
      config: {
        exporters: {
          otlp: { endpoint: otlp.url, batch_wait_ms: '50ms' },
          signoz: { endpoint: sz.addr, batch_wait_ms: '50ms' },
          langfuse: { batch_wait_ms: '50ms' },
        },
        postgres: { retention_days: 3650, rollup_retention_days: 3650 }, /* the fixture's fixed capture date */
      },
      env: { LANGFUSE_HOST: lf.url, LANGFUSE_PUBLIC_KEY: 'pk', LANGFUSE_SECRET_KEY: 'sk' },
    });
    try {
      const body = fs.readFileSync(path.join(SDK_DIR, 'otel-http-protobuf-logs-1.pb'));
      const manifest = JSON.parse(fs.readFileSync(path.join(SDK_DIR, 'otel-http-protobuf.manifest.json'), 'utf8'));
      const r = await post(gw, '/v1/logs', body, PB);
      assert.equal(r.status, 200);
      const plain = Buffer.from(JSON.stringify({ resourceLogs: [{ resource: {}, scopeLogs: [{ logRecords: [{ body: { stringValue: 'GET /health 200 from 10.1.2.3' } }] }] }] }));
      assert.equal((await post(gw, '/v1/logs', plain, { 'content-type': 'application/json' })).status, 200);
      const trace = await sendSpans(gw, 1);
      const records = (q) => q.request.resourceLogs.flatMap((rl) => rl.scopeLogs.flatMap((sl) => sl.logRecords));
      for (const [name, fake] of [['otlp', otlp], ['signoz', sz]]) {
        await fake.waitFor((reqs) => reqs.filter((q) => q.signal === 'logs' && q.ok).flatMap(records).length >= 20,
          { what: `20 log records at ${name}` });
        const got = fake.requests.filter((q) => q.signal === 'logs' && q.ok).flatMap(records);
        assert.equal(got.length, 20, `${name}: the 19 fixture records and the plain one, once each`);
        const text = JSON.stringify(got);
        for (const p of manifest.pii_strings ?? []) assert.ok(!text.includes(p), `${name}: PII '${p}' forwarded`);
        assert.ok(text.includes('[IP_REDACTED]'), `${name}: the plain log's body is redacted too`);
      }
      await lf.waitFor(() => lf.acceptedSpanIds().length >= 1);
      assert.deepEqual(lf.acceptedSpanIds(), trace);
      assert.ok(lf.requests.every((q) => q.path === '/api/public/otel/v1/traces'));
    } finally {
      await gw.cleanup();
      await otlp.close();
      await sz.close();
      await lf.close();
    }
  });
});

/* keep the hand-built span helper in use for readers extending this file */
void span;
void sleep;
