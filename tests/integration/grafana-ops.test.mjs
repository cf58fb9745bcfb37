/*
 * grafana-ops.test.mjs: the operator surface. The gateway's /metrics has the latency histograms (per
 * protocol and signal, Postgres batches, exporter batches), the process metrics and build info; and
 * every query of deploy/grafana/dashboards/gateway-operations.json, run the way Prometheus would over two
 * scrapes of a real gateway with known traffic between them (tests/lib/promql.mjs: a query outside its
 * grammar fails here), gives the value an oracle computed from that traffic. As grafana.test.mjs does for
 * the SQL dashboards, a coverage test fails when a panel has no oracle.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import zlib from 'node:zlib';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { prerequisites, createDatabase, startGateway, post, waitFor, waitForRows, REPO, GW_BIN, sleep } from '../lib/harness.mjs';
import { traceRequest, genaiSpan, span, toProtobuf, toJson, rawGrpcClient, grpcUnaryRaw, GRPC_EXPORT_PATH } from '../lib/otlp.mjs';
import { logsRequest, logsToProtobuf, chatEvents, GRPC_LOGS_PATH } from '../lib/otlp-logs.mjs';
import { startOtlpHttp, spansOf } from '../lib/fake-otlp.mjs';
import { parseExposition, evaluate } from '../lib/promql.mjs';
import { zstdCompress } from '../lib/zstd.mjs';

const execFileP = promisify(execFile);
const skip = prerequisites();
const TOKEN = 'ops-dashboard-token-0123456789abcdef';
const AUTH = { authorization: `Bearer ${TOKEN}` };
const PB = { 'content-type': 'application/x-protobuf', ...AUTH };
const GRPC_AUTH = { metadata: AUTH };
const DASH = JSON.parse(fs.readFileSync(path.join(REPO, 'deploy/grafana/dashboards/gateway-operations.json'), 'utf8'));
const VARS = { instance: '.*', __rate_interval: '1m' };
const INSTANCE = 'gw-0:8888';

const near = (a, b, what) => assert.ok(Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

describe('operations dashboard and metrics', { skip: skip ?? false }, () => {
  let db;
  let gw;
  let sink;
  let grpcClient;
  let dir;
  const S = {}; /* the scrapes and the traffic between them */

  const scrape = async () => ({ t: Date.now(), s: parseExposition((await (await fetch(`${gw.adminUrl}/metrics`)).text()), { instance: INSTANCE }) });

  before(async () => {
    /* receivers and the exporter with tokens, so the authentication panel has failures to count: the
     * sink refuses the exporter's first request with 401 (counted, then retried and sent) */
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-ops-'));
    const tokens = path.join(dir, 'tokens');
    const exportToken = path.join(dir, 'export-token');
    fs.writeFileSync(tokens, `${TOKEN}\n`);
    fs.writeFileSync(exportToken, `${TOKEN}\n`);
    db = await createDatabase();
    let refusedOnce = false;
    sink = await startOtlpHttp({
      respond: ({ headers }) => {
        assert.equal(headers.authorization, `Bearer ${TOKEN}`);
        if (refusedOnce) return undefined;
        refusedOnce = true;
        return { status: 401 };
      },
    });
    gw = await startGateway({
      dsn: db.dsn,
      config: {
        receivers: { auth: { tokens_file: tokens } },
        postgres: { batch_wait_ms: '20ms' },
        exporters: { otlp: { endpoint: sink.url, protocol: 'http', token_file: exportToken, batch_wait_ms: '50ms' } },
      },
    });
    grpcClient = rawGrpcClient(gw.grpcAddr);
    /* a refused span first: a counter series must exist at the first scrape for rate() to see it grow
     * (Prometheus alike) */
    const refused = () => Object.assign(span({ name: 'bad' }), { spanId: '0000000000000000' });
    assert.equal((await post(gw, '/v1/traces', toProtobuf(traceRequest([refused()])), PB)).status, 200);
    /* a request's duration is observed once its answer has gone out, so the client can read the answer
     * first (a slow build showed it): the first scrape waits for it */
    const httpTraces = (x) => x.s.filter((m) => m.name === 'genai_gateway_request_duration_seconds_count' &&
      m.labels.protocol === 'http' && m.labels.signal === 'traces').reduce((acc, m) => acc + m.value, 0);
    await waitFor(async () => httpTraces(await scrape()) >= 1, { what: 'the first request observed' });
    const first = await scrape();
    /* known traffic: requests per protocol and signal, GenAI spans, one rejected span */
    const sent = { 'http traces': 0, 'http logs': 0, 'grpc traces': 0, 'grpc logs': 0 };
    let logRecords = 0;
    const traceIds = [];
    let spans = 0;
    /* request body bytes by content coding: [received, decompressed] */
    const bodyBytes = { identity: [0, 0], gzip: [0, 0], zstd: [0, 0] };
    const plainBody = (b) => {
      const n = Buffer.byteLength(b);
      bodyBytes.identity[0] += n;
      bodyBytes.identity[1] += n;
      return b;
    };
    for (let i = 0; i < 6; i++) {
      const ss = [genaiSpan({ model: 'gpt-4o-mini' }), genaiSpan({ model: 'gpt-4o-mini' })];
      traceIds.push(...ss.map((x) => x.traceId));
      spans += ss.length;
      const body = toProtobuf(traceRequest(ss));
      if (i % 2) {
        assert.equal((await grpcUnaryRaw(grpcClient, GRPC_EXPORT_PATH, plainBody(body), GRPC_AUTH)).code, 0);
        sent['grpc traces']++;
      } else {
        assert.equal((await post(gw, '/v1/traces', plainBody(i === 4 ? toJson(traceRequest(ss)) : body), i === 4 ? { 'content-type': 'application/json', ...AUTH } : PB)).status, 200);
        sent['http traces']++;
      }
    }
    for (const [enc, z] of [['gzip', (b) => zlib.gzipSync(b)], ['zstd', (b) => zstdCompress(b)]]) {
      const ss = [genaiSpan({ model: 'gpt-4o-mini' })];
      traceIds.push(ss[0].traceId);
      spans += 1;
      const plain = toProtobuf(traceRequest(ss));
      const body = z(plain);
      assert.equal((await post(gw, '/v1/traces', body, { ...PB, 'content-encoding': enc })).status, 200);
      sent['http traces']++;
      bodyBytes[enc] = [body.length, plain.length];
    }
    for (let i = 0; i < 3; i++) {
      const body = logsToProtobuf(logsRequest(chatEvents({ user: 'hi', reply: 'ho' })));
      assert.equal((await post(gw, '/v1/logs', plainBody(body), PB)).status, 200);
      sent['http logs']++;
      assert.equal((await grpcUnaryRaw(grpcClient, GRPC_LOGS_PATH, plainBody(body), GRPC_AUTH)).code, 0);
      sent['grpc logs']++;
      logRecords += 4;
    }
    const bad = refused(); /* an all-zero span id: refused in partial_success */
    const ok = genaiSpan({ model: 'gpt-4o-mini' });
    traceIds.push(ok.traceId);
    spans += 1;
    assert.equal((await post(gw, '/v1/traces', plainBody(toProtobuf(traceRequest([ok, bad]))), PB)).status, 200);
    sent['http traces']++;
    /* refused for their token: on OTLP/HTTP two without one and one with a wrong one, on gRPC one without
     * and two wrong; none of them is counted as a request */
    const tiny = toProtobuf(traceRequest([genaiSpan({ model: 'gpt-4o-mini' })]));
    const authRefused = { 'otlp_http missing': 2, 'otlp_http invalid': 1, 'otlp_grpc missing': 1, 'otlp_grpc invalid': 2 };
    for (let i = 0; i < 2; i++) assert.equal((await post(gw, '/v1/traces', tiny, { 'content-type': 'application/x-protobuf' })).status, 401);
    assert.equal((await post(gw, '/v1/traces', tiny, { 'content-type': 'application/x-protobuf', authorization: 'Bearer not-the-token-0123456789' })).status, 401);
    assert.equal((await grpcUnaryRaw(grpcClient, GRPC_EXPORT_PATH, tiny)).code, 16);
    for (let i = 0; i < 2; i++) {
      assert.equal((await grpcUnaryRaw(grpcClient, GRPC_EXPORT_PATH, tiny, { metadata: { authorization: 'Bearer not-the-token-0123456789' } })).code, 16);
    }
    await waitForRows(db, traceIds, traceIds.length, { settleMs: 0 });
    await waitFor(async () => (await scrape()).s.filter((x) => x.name === 'genai_gateway_exporter_spans_sent_total').reduce((a, x) => a + x.value, 0) >= spans + logRecords, {
      timeoutMs: 20000, what: 'the exporter to send every span',
    });
    await sleep(300);
    const second = await scrape();
    Object.assign(S, { s1: first.s, t1: first.t, s2: second.s, t2: second.t, sent, spans, logRecords, authRefused, bodyBytes });
  });

  after(async () => {
    grpcClient?.close();
    await gw?.cleanup();
    await sink?.close();
    await db?.drop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const ctx = () => ({ s1: S.s1, s2: S.s2, t1: S.t1, t2: S.t2, vars: VARS });
  const dt = () => (S.t2 - S.t1) / 1000;
  const q = (expr) => evaluate(expr, ctx());
  const one = (rows, what) => {
    assert.equal(rows.length, 1, `${what}: ${JSON.stringify(rows)}`);
    return rows[0].value;
  };
  const quantiles = (targets, byKey) => {
    const [p50, p95, p99] = targets.map((t) => q(t.expr));
    for (const rows of [p50, p95, p99]) assert.ok(rows.length >= 1);
    for (const r of p50) {
      const k = byKey(r.labels);
      const r95 = p95.find((x) => byKey(x.labels) === k).value;
      const r99 = p99.find((x) => byKey(x.labels) === k).value;
      assert.ok(r.value > 0 && r.value <= r95 && r95 <= r99 && r99 <= 10, `${k}: ${r.value} ${r95} ${r99}`);
    }
  };

  /* One oracle per panel title: given the panel's targets, check what they give. */
  const ORACLES = {
    'Requests per second': ([t]) => {
      const rows = q(t.expr);
      for (const [k, n] of Object.entries(S.sent)) {
        const [protocol, signal] = k.split(' ');
        const r = rows.find((x) => x.labels.protocol === protocol && x.labels.signal === signal);
        assert.ok(r, `${k} series`);
        near(r.value * dt(), n, k);
      }
    },
    'Request latency p50 / p95 / p99': (ts) => quantiles(ts, (l) => `${l.protocol} ${l.signal}`),
    'Spans accepted and rejected per second': ([acc, rej]) => {
      near(one(q(acc.expr), 'accepted') * dt(), S.spans, 'spans accepted');
      const rows = q(rej.expr);
      assert.equal(rows.length, 1);
      assert.ok(rows[0].labels.reason);
      near(rows[0].value * dt(), 1, 'spans rejected');
    },
    'Backpressure (429 / RESOURCE_EXHAUSTED) per second': ([t]) => assert.equal(one(q(t.expr), 'backpressure'), 0),
    'Spool fill': ([t]) => {
      const v = one(q(t.expr), 'spool fill');
      assert.ok(v >= 0 && v < 0.5, `spool fill ${v}`);
    },
    'Postgres batch latency p50 / p95 / p99': (ts) => quantiles(ts, () => 'pg'),
    'Rows stored and Postgres errors per second': ([rows, errs]) => {
      near(one(q(rows.expr), 'rows') * dt(), S.spans, 'rows stored');
      assert.equal(one(q(errs.expr), 'errors'), 0);
    },
    'Postgres writers connected': ([t]) => assert.equal(one(q(t.expr), 'connected'), 1),
    'Gateways up (build info)': ([t]) => assert.equal(one(q(t.expr), 'gateways'), 1),
    'Export latency p95 by exporter': ([t]) => {
      const v = one(q(t.expr), 'export p95');
      assert.ok(v > 0 && v <= 10, `export p95 ${v}`);
    },
    'Exporter spans and log records sent and failed per second': ([sent, failed]) => {
      const rows = q(sent.expr);
      near(rows.find((x) => x.labels.signal === 'traces').value * dt(), S.spans, 'exporter spans sent');
      near(rows.find((x) => x.labels.signal === 'logs').value * dt(), S.logRecords, 'exporter log records sent');
      /* every attempt counted: the items of the one request the sink refused with 401 */
      const refused = sink.requests.filter((r) => !r.ok);
      assert.equal(refused.length, 1);
      const items = refused[0].signal === 'traces' ? spansOf(refused[0].request).length
        : refused[0].request.resourceLogs.flatMap((r) => r.scopeLogs).flatMap((x) => x.logRecords).length;
      const f = q(failed.expr);
      near(f.reduce((a, x) => a + x.value, 0) * dt(), items, 'exporter items failed');
      assert.ok(f.every((x) => x.value === 0 || x.labels.signal === refused[0].signal));
    },
    'Resident memory': ([t]) => {
      const v = one(q(t.expr), 'rss');
      const rss = gw.rss();
      assert.ok(Math.abs(v - rss) < 0.25 * rss, `RSS ${v} vs /proc ${rss}`);
    },
    CPU: ([t]) => {
      const v = one(q(t.expr), 'cpu');
      assert.ok(v > 0 && v < 4, `cores ${v}`);
    },
    'Open file descriptors': ([t]) => {
      const v = one(q(t.expr), 'fds');
      const n = fs.readdirSync(`/proc/${gw.pid}/fd`).length;
      assert.ok(Math.abs(v - n) <= 8, `fds ${v} vs /proc ${n}`);
    },
    'Authentication failures per second': ([recv, exp]) => {
      const rows = q(recv.expr);
      for (const [k, n] of Object.entries(S.authRefused)) {
        const [listener, reason] = k.split(' ');
        const r = rows.find((x) => x.labels.listener === listener && x.labels.reason === reason);
        assert.ok(r, `${k} series`);
        near(r.value * dt(), n, k);
      }
      assert.equal(rows.length, 4);
      const e = q(exp.expr);
      assert.equal(e.length, 1, JSON.stringify(e));
      assert.equal(e[0].labels.exporter, 'otlp');
      near(e[0].value * dt(), 1, 'exports refused for their token');
    },
    'Request body bytes per second by content coding': ([recv, dec]) => {
      /* requests refused for their token never reach decoding: not counted */
      for (const [t, i] of [[recv, 0], [dec, 1]]) {
        const rows = q(t.expr);
        for (const enc of ['identity', 'gzip', 'deflate', 'zstd']) {
          const r = rows.find((x) => x.labels.encoding === enc);
          assert.ok(r, `${enc} series (every coding exported from the start)`);
          near(r.value * dt(), S.bodyBytes[enc]?.[i] ?? 0, `${enc} ${i ? 'decompressed' : 'received'}`);
        }
      }
      assert.ok(S.bodyBytes.gzip[1] > S.bodyBytes.gzip[0] && S.bodyBytes.zstd[1] > S.bodyBytes.zstd[0]);
    },
    'Versions running': async ([t]) => {
      const rows = q(t.expr);
      assert.equal(rows.length, 1);
      const { stdout } = await execFileP(GW_BIN, ['--version']);
      assert.equal(`genai-gateway ${rows[0].labels.version}`, stdout.trim());
      assert.match(rows[0].labels.commit, /^([0-9a-f]{7,40}|unknown)$/);
    },
  };

  test('/metrics: histograms are cumulative and count what they observed; process metrics and build info', async () => {
    const s = S.s2;
    for (const name of ['genai_gateway_request_duration_seconds', 'genai_gateway_request_stage_seconds',
      'genai_gateway_spool_fsync_duration_seconds', 'genai_gateway_pg_batch_duration_seconds', 'genai_gateway_exporter_batch_seconds']) {
      const buckets = s.filter((x) => x.name === `${name}_bucket`);
      assert.ok(buckets.length > 0, name);
      const series = new Map();
      for (const b of buckets) {
        const { le, ...rest } = b.labels;
        const k = JSON.stringify(rest);
        if (!series.has(k)) series.set(k, []);
        series.get(k).push([le === '+Inf' ? Infinity : Number(le), b.value]);
      }
      for (const [k, bs] of series) {
        bs.sort((a, b) => a[0] - b[0]);
        if (name !== 'genai_gateway_exporter_batch_seconds') assert.deepEqual(bs.map((b) => b[0]), [0.00025, 0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01,
          0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, Infinity], `${name} ${k}: the documented buckets`);
        for (let i = 1; i < bs.length; i++) assert.ok(bs[i][1] >= bs[i - 1][1], `${name} ${k} is cumulative`);
        const count = s.find((x) => x.name === `${name}_count` && JSON.stringify(x.labels) === k);
        assert.equal(count.value, bs[bs.length - 1][1], `${name} ${k}: _count equals the +Inf bucket`);
      }
    }
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_open_fds', 'process_max_fds', 'process_start_time_seconds']) {
      assert.ok(s.some((x) => x.name === name), name);
    }
    /* the process's CPU time, finer than /proc's ticks (a lightly loaded gateway between two scrapes
     * must not show zero) and within a tick of what /proc says */
    const ticks = () => {
      const st = fs.readFileSync(`/proc/${gw.pid}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      return (Number(f[11]) + Number(f[12])) / 100;
    };
    const before = ticks();
    const cpuOf = async () => (await scrape()).s.find((x) => x.name === 'process_cpu_seconds_total').value;
    const cpu = await cpuOf();
    const after = ticks();
    assert.ok(cpu > before - 0.02 && cpu < after + 0.02, `process_cpu_seconds_total ${cpu} vs /proc ${before}..${after}`);
    /* rendering one scrape takes microseconds of CPU: the next scrape shows them */
    const next = await cpuOf();
    assert.ok(next > cpu, `process_cpu_seconds_total ${next} after ${cpu}`);
    const start = s.find((x) => x.name === 'process_start_time_seconds').value;
    assert.ok(Math.abs(start * 1000 - Date.now()) < 120000, `start time ${start}`);
  });

  test('every panel of the operations dashboard has an oracle, and every oracle a panel', () => {
    const titles = DASH.panels.map((p) => p.title).sort();
    assert.deepEqual(titles, Object.keys(ORACLES).sort());
    for (const p of DASH.panels) {
      assert.equal(p.datasource.uid, '${datasource}');
      for (const t of p.targets) assert.equal(t.datasource.uid, '${datasource}');
    }
    const ids = DASH.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length);
  });

  for (const p of DASH.panels) {
    test(`panel "${p.title}"`, async () => {
      await ORACLES[p.title](p.targets);
    });
  }

  test('the variable query and a query outside the evaluator\'s grammar', () => {
    const v = DASH.templating.list.find((x) => x.name === 'instance');
    const m = /^label_values\((\w+), (\w+)\)$/.exec(v.query.query);
    assert.ok(m);
    assert.deepEqual([...new Set(S.s2.filter((x) => x.name === m[1]).map((x) => x.labels[m[2]]))], [INSTANCE]);
    assert.throws(() => q('avg(process_open_fds)'));
    /* a broken query gives no series, which its oracle refuses */
    assert.throws(() => ORACLES['Postgres writers connected']([{ expr: 'sum(genai_gateway_pg_conected)' }]));
  });
});
