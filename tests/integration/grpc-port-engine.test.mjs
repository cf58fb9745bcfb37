/*
 * grpc-port-engine.test.mjs: the OTLP/gRPC port served by the gateway's own HTTP/2 engine
 * (receivers.grpc.engine nghttp2, the default: receive/front.c + h2.c + h2_grpc.c), and gRPC core still
 * selectable (engine grpc-core).
 *  - the connection policing gRPC core gave: GOAWAY "max_age" at max_connection_age_ms with the call in
 *    flight completing, the connection cut at age + grace;
 *  - connection caps on the gRPC port: per client address (receivers.grpc.max_connections_per_ip) and in
 *    total (receivers.grpc.max_connections);
 *  - HTTP/1.1 bytes on the port are closed and counted; a plain HTTP/2 POST /v1/traces is served as on
 *    the OTLP/HTTP port;
 *  - memory: a call's message is counted in receivers.max_inflight_bytes while it arrives (gRPC core held
 *    whole messages first), a refused one gives its share back at once, and a flood of large calls keeps
 *    the peak RSS within idle + the budget + a small allowance;
 *  - grpc-timeout stops a slow call, and so does a client's RST_STREAM (gRPC core saw a cancel without a
 *    deadline only when the answer was sent);
 *  - engine grpc-core: a good export (also gzip- and deflate-compressed), an auth refusal and a bad input,
 *    as before;
 *  - grpc-encoding zstd and snappy on the gRPC port (which gRPC core's receiver does not take);
 *  - TCP_NODELAY on HTTP/2 connections (both ports): sequential calls on one connection are not held
 *    for the client's delayed ACK.
 * Raw node:http2 streams pace the calls where the test must see the gateway between two DATA frames.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import http2 from 'node:http2';
import { once } from 'node:events';
import { prerequisites, startGateway, metric, waitFor, sleep } from '../lib/harness.mjs';
import { sanitizedBinary } from '../lib/durability.mjs';
import { traceRequest, genaiSpan, toProtobuf, rawGrpcClient, grpcUnaryRaw, GRPC_EXPORT_PATH, grpc } from '../lib/otlp.mjs';
import { openConn, attacker, openMany } from '../lib/slow.mjs';
import { zstdCompress } from '../lib/zstd.mjs';
import { snappyFramed } from '../lib/snappy.mjs';

const MiB = 1024 * 1024;
const skip = prerequisites({ needPg: false });

/** The 5-byte gRPC message prefix: uncompressed, len bytes. */
function prefix(len) {
  const b = Buffer.alloc(5);
  b.writeUInt32BE(len, 1);
  return b;
}

/** A gRPC call on an http2 session whose body the test writes. done: { status, message } from the
 * trailers (or the Trailers-Only headers), status NaN when the stream was reset without them. */
function rawCall(session, headers = {}) {
  const st = session.request({ ':method': 'POST', ':path': GRPC_EXPORT_PATH, 'content-type': 'application/grpc', te: 'trailers', ...headers });
  let head = {};
  let trailers = null;
  st.on('response', (h) => { head = h; });
  st.on('trailers', (t) => { trailers = t; });
  st.on('error', () => {});
  st.resume();
  const done = new Promise((resolve) => st.on('close', () => {
    const t = trailers ?? head;
    resolve({ status: Number(t['grpc-status']), message: decodeURIComponent(t['grpc-message'] ?? '') });
  }));
  return { st, done };
}

const goodBody = () => toProtobuf(traceRequest([genaiSpan()]));

async function goodCall(gw) {
  const client = rawGrpcClient(gw.grpcAddr);
  try {
    return await grpcUnaryRaw(client, GRPC_EXPORT_PATH, goodBody(), { deadlineMs: 10000 });
  } finally {
    client.close();
  }
}

describe('gRPC port on nghttp2: connection age, caps, HTTP/1.1', { skip: skip ?? false }, () => {
  const AGE = 1500;
  const GRACE = 2500;
  let gw;
  before(async () => {
    gw = await startGateway({
      config: {
        spool: { mode: 'memory' },
        receivers: { grpc: { max_connection_age_ms: `${AGE}ms`, max_connection_age_grace_ms: `${GRACE}ms`, max_connections_per_ip: 4 } },
      },
    });
  });
  after(async () => {
    if (gw) {
      const r = await gw.stop();
      await gw.cleanup();
      assert.deepEqual(r, { code: 0, signal: null }, 'gateway exits 0 on SIGTERM');
    }
  });

  test('max_connection_age: GOAWAY NO_ERROR "max_age" at age, the call in flight still completes, then the connection closes', async () => {
    const s = http2.connect(`http://${gw.grpcAddr}`);
    s.on('error', () => {});
    await once(s, 'remoteSettings');
    const t0 = Date.now();
    const goaway = once(s, 'goaway');
    const body = goodBody();
    const call = rawCall(s);
    call.st.write(Buffer.concat([prefix(body.length), body.subarray(0, 10)]));
    const [code, , data] = await Promise.race([goaway, sleep(AGE * 3).then(() => [null])]);
    const at = Date.now() - t0;
    assert.equal(code, http2.constants.NGHTTP2_NO_ERROR, 'GOAWAY at the connection\'s age');
    assert.equal(String(data ?? ''), 'max_age');
    assert.ok(at >= AGE * 0.9 - 100 && at < AGE * 1.1 + 800, `GOAWAY after ${at} ms (age ${AGE} ms +- 10 %)`);
    call.st.end(body.subarray(10));
    const r = await call.done;
    assert.equal(r.status, 0, `the call in flight completes after the GOAWAY: ${r.message}`);
    const [closedIn] = await Promise.race([once(s, 'close').then(() => [Date.now() - t0]), sleep(2000).then(() => [Infinity])]);
    assert.ok(closedIn < AGE + GRACE, `the connection closed when its call was done (${closedIn} ms)`);
  });

  test('max_connection_age_grace: a call still open at age + grace is cut with its connection (counted)', async () => {
    const before_ = metric(await gw.metrics(), 'genai_gateway_grpc_connections_closed_total', { reason: 'max_age' });
    const s = http2.connect(`http://${gw.grpcAddr}`);
    s.on('error', () => {});
    await once(s, 'remoteSettings');
    const t0 = Date.now();
    const call = rawCall(s);
    call.st.write(prefix(1000)); /* a message that never comes */
    await Promise.race([once(s, 'close'), sleep((AGE + GRACE) * 2)]);
    const lived = Date.now() - t0;
    assert.ok(s.closed || s.destroyed, 'closed at age + grace');
    assert.ok(lived >= AGE * 0.9 + GRACE - 300 && lived < AGE * 1.1 + GRACE + 1000, `lived ${lived} ms (age ${AGE} + grace ${GRACE})`);
    s.destroy();
    const m = await gw.metrics();
    assert.equal(metric(m, 'genai_gateway_grpc_connections_closed_total', { reason: 'max_age' }) - before_, 1);
  });

  test('per-address cap: connections past receivers.grpc.max_connections_per_ip are closed at once, other addresses get in', async () => {
    const refused = { listener: 'otlp_grpc', reason: 'per_ip' };
    const before_ = metric(await gw.metrics(), 'genai_gateway_connections_refused_total', refused);
    const addr = attacker(70);
    const held = await openMany(4, () => openConn(gw.ports.grpc, { localAddress: addr }));
    const extra = await openMany(3, () => openConn(gw.ports.grpc, { localAddress: addr }));
    const lives = await Promise.all(extra.map((c) => Promise.race([c.closed, sleep(1000).then(() => Infinity)])));
    assert.ok(lives.every((ms) => ms < 1000), `connections past the per-address cap lived ${lives} ms`);
    assert.equal(held.filter((c) => c.isClosed()).length, 0, 'the 4 within the cap stay open');
    assert.equal(metric(await gw.metrics(), 'genai_gateway_connections_refused_total', refused) - before_, 3);
    const g = await goodCall(gw);
    assert.equal(g.code, 0, `another address is not affected: ${g.details}`);
    for (const c of held) c.sock.destroy();
  });

  test('HTTP/1.1 bytes on the gRPC port: closed and counted; a plain HTTP/2 POST /v1/traces is served as on the HTTP port', async () => {
    const reason = { reason: 'not_http2' };
    const before_ = metric(await gw.metrics(), 'genai_gateway_grpc_connections_closed_total', reason);
    const c = await openConn(gw.ports.grpc);
    c.sock.write('POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n');
    const lived = await Promise.race([c.closed, sleep(3000).then(() => Infinity)]);
    assert.ok(lived < 1000, `an HTTP/1.1 connection lived ${lived} ms`);
    await waitFor(async () => metric(await gw.metrics(), 'genai_gateway_grpc_connections_closed_total', reason) - before_ === 1,
      { what: 'not_http2 counted' });

    const s = http2.connect(`http://${gw.grpcAddr}`);
    s.on('error', () => {});
    const st = s.request({ ':method': 'POST', ':path': '/v1/traces', 'content-type': 'application/x-protobuf' });
    st.end(goodBody());
    st.resume();
    const [h] = await once(st, 'response');
    s.close();
    assert.equal(h[':status'], 200);
  });
});

describe('gRPC port on nghttp2: grpc-encoding zstd and snappy', { skip: skip ?? false }, () => {
  let gw;
  before(async () => {
    gw = await startGateway({ config: { spool: { mode: 'memory' } } });
  });
  after(async () => {
    if (gw) {
      await gw.stop();
      await gw.cleanup();
    }
  });

  test('zstd messages (size stated or not) and snappy ones (the Collector\'s framing) are exported; a bad one is INVALID_ARGUMENT naming zstd', async () => {
    const s = http2.connect(`http://${gw.grpcAddr}`);
    s.on('error', () => {});
    try {
      for (const sized of [false, true]) {
        const z = zstdCompress(goodBody(), { sized });
        const c = rawCall(s, { 'grpc-encoding': 'zstd' });
        const p = prefix(z.length);
        p[0] = 1; // compressed
        c.st.end(Buffer.concat([p, z]));
        const r = await c.done;
        assert.equal(r.status, 0, `sized ${sized}: ${r.message}`);
      }
      {
        const z = snappyFramed(goodBody());
        const c = rawCall(s, { 'grpc-encoding': 'snappy' });
        const p = prefix(z.length);
        p[0] = 1;
        c.st.end(Buffer.concat([p, z]));
        const r = await c.done;
        assert.equal(r.status, 0, `snappy: ${r.message}`);
      }
      const bad = Buffer.from('not a zstd frame at all');
      const c = rawCall(s, { 'grpc-encoding': 'zstd' });
      const p = prefix(bad.length);
      p[0] = 1;
      c.st.end(Buffer.concat([p, bad]));
      const r = await c.done;
      assert.equal(r.status, 3);
      assert.equal(r.message, 'zstd: not a zstd frame at input byte 0');
    } finally {
      s.close();
    }
    assert.equal(metric(await gw.metrics(), 'genai_gateway_spans_accepted_total'), 3);
  });
});

describe('gRPC port on nghttp2: the total connection cap', { skip: skip ?? false }, () => {
  let gw;
  before(async () => {
    gw = await startGateway({
      config: { spool: { mode: 'memory' }, receivers: { grpc: { max_connections: 6, max_connections_per_ip: 0 } } },
    });
  });
  after(async () => {
    if (gw) {
      await gw.stop();
      await gw.cleanup();
    }
  });

  test('connections past receivers.grpc.max_connections, from any address, are closed at once (counted); a slot freed is taken again', async () => {
    const refused = { listener: 'otlp_grpc', reason: 'max_connections' };
    const before_ = metric(await gw.metrics(), 'genai_gateway_connections_refused_total', refused);
    const held = [];
    for (let i = 0; i < 6; i++) held.push(await openConn(gw.ports.grpc, { localAddress: attacker(100 + (i % 3)) }));
    await sleep(300); /* each accepted before the next one comes */
    const extra = await openMany(2, () => openConn(gw.ports.grpc, { localAddress: attacker(110) }));
    const lives = await Promise.all(extra.map((c) => Promise.race([c.closed, sleep(1000).then(() => Infinity)])));
    assert.ok(lives.every((ms) => ms < 1000), `connections past the total cap lived ${lives} ms`);
    assert.equal(held.filter((c) => c.isClosed()).length, 0, 'the 6 within the cap stay open');
    assert.equal(metric(await gw.metrics(), 'genai_gateway_connections_refused_total', refused) - before_, 2);
    /* the per-address counter did not move: it is the total that refused them */
    assert.equal(metric(await gw.metrics(), 'genai_gateway_connections_refused_total', { listener: 'otlp_grpc', reason: 'per_ip' }), 0);
    held[0].sock.destroy();
    held[1].sock.destroy();
    await sleep(300);
    const g = await goodCall(gw);
    assert.equal(g.code, 0, `a freed slot is taken again: ${g.details}`);
    for (const c of held) c.sock.destroy();
  });
});

describe('gRPC port on nghttp2: memory of large calls', { skip: skip ?? false }, () => {
  let gw;
  const inflight = async () => metric(await gw.metrics(), 'genai_gateway_inflight_request_bytes') ?? 0;
  after(async () => {
    if (gw) {
      await gw.stop();
      await gw.cleanup();
    }
  });

  test('a message is counted in flight while it arrives; a refused one gives its share back while its client still sends', async () => {
    gw = await startGateway({
      config: { spool: { mode: 'memory' }, receivers: { max_request_bytes: '4MiB', max_inflight_bytes: '7MiB', large_request_bytes: 0 } },
    });
    const filler = Buffer.alloc(MiB, 0x78);
    const s = http2.connect(`http://${gw.grpcAddr}`);
    s.on('error', () => {});
    const hog = rawCall(s); /* grows to the 4 MiB cap and stays there */
    hog.st.write(prefix(4 * MiB - 64));
    for (let i = 0; i < 3; i++) hog.st.write(filler);
    await waitFor(async () => (await inflight()) === 4 * MiB, { what: 'the first call holding 4 MiB while its message arrives' });

    const refused = rawCall(s);
    refused.st.write(prefix(3 * MiB));
    refused.st.write(Buffer.alloc(MiB + MiB / 2, 0x78)); /* its buffer doubles to 2 MiB: 6 MiB in flight */
    await waitFor(async () => (await inflight()) === 6 * MiB, { what: 'the second call holding 2 MiB' });
    refused.st.write(filler); /* 2.5 MiB needs 4: 8 MiB > 7, refused */
    await waitFor(async () => (await inflight()) === 4 * MiB, { what: 'the refused call\'s 2 MiB given back while it still sends' });

    const g = await goodCall(gw);
    assert.equal(g.code, 0, `ordinary calls go on meanwhile: ${g.details}`);

    refused.st.end(Buffer.alloc(MiB / 2, 0x78));
    const a = await refused.done;
    assert.equal(a.status, grpc.status.UNAVAILABLE, a.message);
    assert.match(a.message, /too many request bytes in flight: retry later/);
    hog.st.close(http2.constants.NGHTTP2_CANCEL);
    await waitFor(async () => (await inflight()) === 0, { what: 'nothing left in flight' });
    s.destroy();
    await gw.stop();
    await gw.cleanup();
    gw = null;
  });

  test('a flood of 3.4 MiB calls at once: peak RSS within idle + receivers.max_inflight_bytes + an allowance', async () => {
    const BUDGET = 64 * MiB;
    const ALLOWANCE = (sanitizedBinary() ? 64 : 24) * MiB; /* worker and lane arenas, stacks, the allocator */
    gw = await startGateway({ config: { spool: { mode: 'disk' }, receivers: { max_request_bytes: '8MiB', max_inflight_bytes: '64MiB' } } });
    const body = toProtobuf(traceRequest([genaiSpan({ attributes: { 'app.blob': 'x'.repeat(3400 * 1024) } })], { service: 'flood' }));
    assert.equal((await goodCall(gw)).code, 0);
    const idle = gw.rss();
    const clients = Array.from({ length: 4 }, (_, i) => rawGrpcClient(gw.grpcAddr, { 'genai.test.conn': i }));
    try {
      const results = await Promise.all(
        clients.flatMap((c) => Array.from({ length: 8 }, () => grpcUnaryRaw(c, GRPC_EXPORT_PATH, body, { deadlineMs: 60000 }))),
      );
      const ok = results.filter((r) => r.code === 0).length;
      const busy = results.filter((r) => r.code === grpc.status.UNAVAILABLE).length;
      assert.equal(ok + busy, results.length, `every call is answered OK or UNAVAILABLE: ${results.map((r) => `${r.code} ${r.details}`)}`);
      assert.ok(ok >= 1, 'some calls complete');
      const peak = gw.peakRss();
      assert.ok(peak <= idle + BUDGET + ALLOWANCE,
        `peak RSS ${(peak / MiB).toFixed(0)} MiB, idle ${(idle / MiB).toFixed(0)} MiB + budget 64 MiB + ${ALLOWANCE / MiB} MiB (${ok} OK, ${busy} UNAVAILABLE)`);
    } finally {
      for (const c of clients) c.close();
    }
  });
});

describe('gRPC port on nghttp2: deadlines and resets', { skip: skip ?? false }, () => {
  let gw;
  before(async () => {
    /* a pattern that backtracks over a run of digits: a 1 MiB value of '1's takes seconds to redact */
    gw = await startGateway({
      config: { spool: { mode: 'memory' }, redaction: { max_cpu_ms_per_mib: 0, patterns: [{ name: 'slow', regex: '1(?=\\d*x)' }] } },
    });
  });
  after(async () => {
    if (gw) {
      await gw.stop();
      await gw.cleanup();
    }
  });
  const slowBody = () => toProtobuf(traceRequest([genaiSpan({ attributes: { 'app.blob': '1'.repeat(1024 * 1024) } })]));

  test('grpc-timeout stops a slow call (DEADLINE_EXCEEDED, counted); a client RST_STREAM stops one too (counted)', async () => {
    const d0 = metric(await gw.metrics(), 'genai_gateway_requests_deadline_exceeded_total');
    const s = http2.connect(`http://${gw.grpcAddr}`);
    s.on('error', () => {});
    const body = slowBody();
    const timed = rawCall(s, { 'grpc-timeout': '700m' });
    const t0 = Date.now();
    timed.st.end(Buffer.concat([prefix(body.length), body]));
    const r = await timed.done;
    assert.equal(r.status, grpc.status.DEADLINE_EXCEEDED, r.message);
    assert.ok(Date.now() - t0 < 5000, `answered after ${Date.now() - t0} ms (deadline 700 ms)`);
    assert.equal(metric(await gw.metrics(), 'genai_gateway_requests_deadline_exceeded_total') - d0, 1);

    const c0 = metric(await gw.metrics(), 'genai_gateway_requests_cancelled_total');
    const reset = rawCall(s);
    reset.st.end(Buffer.concat([prefix(body.length), body]));
    await sleep(500);
    reset.st.close(http2.constants.NGHTTP2_CANCEL);
    await waitFor(async () => metric(await gw.metrics(), 'genai_gateway_requests_cancelled_total') > c0,
      { timeoutMs: 5000, what: 'the reset call stopped and counted' });
    s.destroy();
    const g = await goodCall(gw);
    assert.equal(g.code, 0, g.details);
  });
});

describe('gRPC port on gRPC core (receivers.grpc.engine grpc-core)', { skip: skip ?? false }, () => {
  const TOKEN = 'grpc-core-engine-token-0123456789';
  let gw;
  let dir;
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gw-engine-'));
    const tokens = path.join(dir, 'tokens');
    await fs.writeFile(tokens, `${TOKEN}\n`);
    gw = await startGateway({
      config: { spool: { mode: 'memory' }, receivers: { auth: { tokens_file: tokens }, grpc: { engine: 'grpc-core' } } },
    });
  });
  after(async () => {
    if (gw) {
      await gw.stop();
      await gw.cleanup();
    }
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  test('a good export, a missing token and a garbage message get what they got before', async () => {
    assert.match(gw.logs(), /OTLP\/gRPC receiver listening on \S+ \(plaintext\)/, 'gRPC core serves the port');
    const client = rawGrpcClient(gw.grpcAddr);
    try {
      const md = { authorization: `Bearer ${TOKEN}` };
      const good = await grpcUnaryRaw(client, GRPC_EXPORT_PATH, goodBody(), { metadata: md });
      assert.equal(good.code, 0, good.details);
      const missing = await grpcUnaryRaw(client, GRPC_EXPORT_PATH, goodBody());
      assert.equal(missing.code, grpc.status.UNAUTHENTICATED);
      assert.match(missing.details, /missing credentials/);
      const garbage = await grpcUnaryRaw(client, GRPC_EXPORT_PATH, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]), { metadata: md });
      assert.equal(garbage.code, grpc.status.INVALID_ARGUMENT, garbage.details);
    } finally {
      client.close();
    }
    for (const algorithm of [2, 1]) { // gzip and deflate, as on the nghttp2 engine
      const c = rawGrpcClient(gw.grpcAddr, { 'grpc.default_compression_algorithm': algorithm });
      try {
        const r = await grpcUnaryRaw(c, GRPC_EXPORT_PATH, goodBody(), { metadata: { authorization: `Bearer ${TOKEN}` } });
        assert.equal(r.code, 0, `algorithm ${algorithm}: ${r.details}`);
      } finally {
        c.close();
      }
    }
    const m = await gw.metrics();
    assert.equal(metric(m, 'genai_gateway_auth_failures_total', { listener: 'otlp_grpc', reason: 'missing' }), 1);
    const front = [...m.keys()].filter((k) => k.startsWith('genai_gateway_connections_refused_total') && k.includes('otlp_grpc'));
    assert.deepEqual(front, [], 'no nghttp2 front on the gRPC port');
  });
});

/*
 * An answer goes out as a few small writes (HEADERS, DATA, trailers). Without TCP_NODELAY on the
 * connection, Nagle's algorithm holds the second write until the client's delayed ACK of the first: every
 * call on a kept connection then takes at least the delayed-ACK time (40 ms on Linux), whatever the
 * machine's load (44 ms measured here without it, every call). Sequential small calls on one connection must
 * not all pay it; the bound is three quarters of that floor, for the median, so a busy machine's slow call or
 * two cannot fail it.
 */
describe('HTTP/2 answers are not held by Nagle: sequential calls on one connection', { skip: skip ?? false }, () => {
  const CALLS = 15;
  const BOUND_MS = 30;
  let gw;
  before(async () => {
    gw = await startGateway({ config: { spool: { mode: 'memory' } } });
  });
  after(async () => {
    if (gw) {
      await gw.stop();
      await gw.cleanup();
    }
  });
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

  test(`gRPC port: the median of ${CALLS} sequential Export calls on one channel is under ${BOUND_MS} ms`, async () => {
    const client = rawGrpcClient(gw.grpcAddr);
    const ms = [];
    try {
      const body = goodBody();
      assert.equal((await grpcUnaryRaw(client, GRPC_EXPORT_PATH, body)).code, 0); /* connect, warm up */
      for (let i = 0; i < CALLS; i++) {
        const t0 = performance.now();
        const r = await grpcUnaryRaw(client, GRPC_EXPORT_PATH, body);
        ms.push(performance.now() - t0);
        assert.equal(r.code, 0, r.details);
      }
    } finally {
      client.close();
    }
    assert.ok(median(ms) < BOUND_MS, `median ${median(ms).toFixed(1)} ms per call (all: ${ms.map((x) => x.toFixed(1)).join(' ')})`);
  });

  test(`OTLP/HTTP port over h2c: the median of ${CALLS} sequential POSTs on one session is under ${BOUND_MS} ms`, async () => {
    const session = http2.connect(`http://127.0.0.1:${gw.ports.http}`);
    session.on('error', () => {});
    const post = (body) =>
      new Promise((resolve, reject) => {
        const st = session.request({ ':method': 'POST', ':path': '/v1/traces', 'content-type': 'application/x-protobuf' });
        let status = 0;
        st.on('response', (h) => { status = h[':status']; });
        st.on('error', reject);
        st.resume();
        st.on('close', () => resolve(status));
        st.end(body);
      });
    const ms = [];
    try {
      const body = goodBody();
      assert.equal(await post(body), 200);
      for (let i = 0; i < CALLS; i++) {
        const t0 = performance.now();
        const s = await post(body);
        ms.push(performance.now() - t0);
        assert.equal(s, 200);
      }
    } finally {
      session.close();
    }
    assert.ok(median(ms) < BOUND_MS, `median ${median(ms).toFixed(1)} ms per POST (all: ${ms.map((x) => x.toFixed(1)).join(' ')})`);
  });
});
