/*
 * issue12-bounded-work.test.mjs: a shared gateway facing untrusted clients (issue 12, item 1), through the
 * real binary. One request's text must not decide how long a receiver thread works: 1 MiB of repeated
 * "-----BEGIN PRIVATE KEY-----" took 37 s of CPU per request, two such gRPC calls held both receiver threads
 * and normal exports timed out. Now hostile requests get a bounded answer while a normal export sent at the
 * same time succeeds promptly; a request past its gRPC deadline, or whose HTTP client went away, is
 * abandoned and counted; a slow user pattern is stopped by the request's CPU budget.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { prerequisites, createDatabase, startGateway, post, waitForRows, waitFor, metric, countRows, sleep } from '../lib/harness.mjs';
import { genaiSpan, traceRequest, toProtobuf, rawGrpcClient, grpcUnaryRaw, GRPC_EXPORT_PATH, grpc } from '../lib/otlp.mjs';

const PB = { 'content-type': 'application/x-protobuf' };
const skip = prerequisites();
const MiB = 1024 * 1024;
const HEADER = '-----BEGIN PRIVATE KEY-----';
const PROMPT_MS = 3000; /* a normal export's answer while hostile ones run (37 s each before the fix) */
const BOUNDED_MS = 10000; /* a hostile export's answer */

const repeatTo = (unit, bytes) => unit.repeat(Math.floor(bytes / unit.length));

function hostile(value, service) {
  const s = genaiSpan({ attributes: { 'app.blob': value } });
  return { s, body: toProtobuf(traceRequest([s], { service })) };
}

async function timed(p) {
  const t0 = Date.now();
  const r = await p;
  return { ...r, ms: Date.now() - t0 };
}

/** POST that the client abandons after abortMs (the socket is destroyed). */
function postAndHangUp(gw, body, abortMs) {
  return new Promise((resolve) => {
    const req = http.request(`${gw.httpUrl}/v1/traces`, { method: 'POST', headers: { ...PB, 'content-length': body.length } });
    req.on('error', () => resolve());
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.end(body);
    setTimeout(() => {
      req.destroy();
      resolve();
    }, abortMs);
  });
}

describe('issue 12: hostile private-key values', { skip: skip ?? false }, () => {
  let db;
  let gw;
  let client;

  before(async () => {
    db = await createDatabase();
    gw = await startGateway({ dsn: db.dsn, config: { receivers: { grpc: { threads: 2 } } } });
    client = rawGrpcClient(gw.grpcAddr);
  });

  after(async () => {
    client?.close();
    await gw?.cleanup();
    await db?.drop();
  });

  test('1 MiB of private-key headers over gRPC (twice) and HTTP: bounded answers, normal exports stay prompt', async () => {
    const value = repeatTo(HEADER, MiB);
    const h = [hostile(value, 'hostile-grpc-1'), hostile(value, 'hostile-grpc-2'), hostile(value, 'hostile-http')];
    const hostileCalls = [
      timed(grpcUnaryRaw(client, GRPC_EXPORT_PATH, h[0].body, { deadlineMs: 60000 })),
      timed(grpcUnaryRaw(client, GRPC_EXPORT_PATH, h[1].body, { deadlineMs: 60000 })),
      timed(post(gw, '/v1/traces', h[2].body, PB, { timeoutMs: 60000 })),
    ];
    await sleep(50); /* the hostile calls are in the receivers now */
    const okGrpc = genaiSpan();
    const okHttp = genaiSpan();
    const [ng, nh] = await Promise.all([
      timed(grpcUnaryRaw(client, GRPC_EXPORT_PATH, toProtobuf(traceRequest([okGrpc])), { deadlineMs: 60000 })),
      timed(post(gw, '/v1/traces', toProtobuf(traceRequest([okHttp])), PB)),
    ]);
    assert.equal(ng.code, 0, ng.details);
    assert.equal(nh.status, 200);
    assert.ok(ng.ms < PROMPT_MS, `normal gRPC export took ${ng.ms} ms`);
    assert.ok(nh.ms < PROMPT_MS, `normal HTTP export took ${nh.ms} ms`);

    const [g1, g2, hh] = await Promise.all(hostileCalls);
    for (const r of [g1, g2]) {
      assert.equal(r.code, 0, r.details);
      assert.ok(r.ms < BOUNDED_MS, `hostile gRPC export took ${r.ms} ms`);
    }
    assert.equal(hh.status, 200);
    assert.ok(hh.ms < BOUNDED_MS, `hostile HTTP export took ${hh.ms} ms`);

    /* stored redacted: every header masked, none left */
    const rows = await waitForRows(db, h.map((x) => x.s.traceId), 3, { timeoutMs: 30000 });
    for (const row of rows) {
      assert.match(row.attributes['app.blob'], /^(\[PRIVATE_KEY_REDACTED\])+/);
      assert.ok(!JSON.stringify(row).includes('BEGIN PRIVATE KEY'), 'no header stored');
    }
    await waitForRows(db, [okGrpc.traceId, okHttp.traceId], 2);
  });
});

describe('issue 12: deadlines, hang-ups and the CPU budget', { skip: skip ?? false }, () => {
  let db;
  let gw;
  let client;
  const digits = repeatTo('1', MiB);

  before(async () => {
    db = await createDatabase();
    /* One gRPC thread, a user pattern that reads the rest of the value from every start position (minutes
     * over 1 MiB in one pcre2 match), and no CPU budget: only the deadline or the hang-up stops it. */
    gw = await startGateway({
      dsn: db.dsn,
      config: {
        receivers: { grpc: { threads: 1 } },
        redaction: { max_cpu_ms_per_mib: 0, patterns: [{ name: 'slow', regex: '1(?=\\d*x)' }] },
      },
    });
    client = rawGrpcClient(gw.grpcAddr);
  });

  after(async () => {
    client?.close();
    await gw?.cleanup();
    await db?.drop();
  });

  test('a gRPC call whose deadline passes is abandoned, counted, not stored, and frees its thread', async () => {
    const before = metric(await gw.metrics(), 'genai_gateway_requests_deadline_exceeded_total');
    const { s, body } = hostile(digits, 'slow-grpc');
    const r = await timed(grpcUnaryRaw(client, GRPC_EXPORT_PATH, body, { deadlineMs: 500 }));
    assert.equal(r.code, grpc.status.DEADLINE_EXCEEDED, r.details);
    await waitFor(async () => metric(await gw.metrics(), 'genai_gateway_requests_deadline_exceeded_total') > before,
      { timeoutMs: 5000, what: 'the abandoned call counted' });
    /* the only gRPC thread is free again */
    const ok = genaiSpan();
    const n = await timed(grpcUnaryRaw(client, GRPC_EXPORT_PATH, toProtobuf(traceRequest([ok])), { deadlineMs: 60000 }));
    assert.equal(n.code, 0, n.details);
    assert.ok(n.ms < PROMPT_MS, `export after the abandoned one took ${n.ms} ms`);
    await waitForRows(db, [ok.traceId], 1);
    assert.equal(await countRows(db, [s.traceId]), 0, 'the abandoned request was not appended');
  });

  test('an HTTP client that hangs up is seen, and its request abandoned and counted', async () => {
    const before = metric(await gw.metrics(), 'genai_gateway_requests_cancelled_total');
    const { s, body } = hostile(digits, 'slow-http');
    await postAndHangUp(gw, body, 300);
    await waitFor(async () => metric(await gw.metrics(), 'genai_gateway_requests_cancelled_total') > before,
      { timeoutMs: 5000, what: 'the hung-up request counted' });
    const ok = genaiSpan();
    assert.equal((await post(gw, '/v1/traces', toProtobuf(traceRequest([ok])), PB)).status, 200);
    await waitForRows(db, [ok.traceId], 1);
    assert.equal(await countRows(db, [s.traceId]), 0, 'the abandoned request was not appended');
  });
});

describe('issue 12: the CPU budget stops a slow user pattern', { skip: skip ?? false }, () => {
  test('the value is replaced whole, the request answered within its budget, the limit counted', async () => {
    const db = await createDatabase();
    const gw = await startGateway({
      dsn: db.dsn,
      config: { redaction: { max_cpu_ms_per_mib: 200, patterns: [{ name: 'slow', regex: '1(?=\\d*x)' }] } },
    });
    try {
      const { s, body } = hostile(repeatTo('1', MiB), 'slow-budget');
      const r = await timed(post(gw, '/v1/traces', body, PB, { timeoutMs: 60000 }));
      assert.equal(r.status, 200);
      assert.ok(r.ms < BOUNDED_MS, `took ${r.ms} ms`);
      const [row] = await waitForRows(db, [s.traceId], 1);
      assert.equal(row.attributes['app.blob'], '[REDACTION_LIMIT]');
      assert.ok(row.redacted_kinds.includes('redaction_limit'), `${row.redacted_kinds}`);
      assert.ok(metric(await gw.metrics(), 'genai_gateway_redaction_limited_total', { reason: 'cpu' }) >= 1);
      assert.match(gw.logs(), /ran out of its CPU budget/);
    } finally {
      await gw.cleanup();
      await db.drop();
    }
  });
});
