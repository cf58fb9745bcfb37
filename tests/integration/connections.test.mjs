/*
 * connections.test.mjs: issue 12 item 3, a gateway facing untrusted clients. Slowloris, slow bodies, idle
 * connections by the thousand and ping floods must neither block a well-behaved client nor the admin
 * probes, and each is closed within a bounded time (and counted). Everything runs on loopback: attackers
 * use their own 127.0.0.x addresses, the good client 127.0.0.1.
 * Deadlines are short here (1.5 s headers, 2 s body) so the bounds are cheap to check.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http2 from 'node:http2';
import { once } from 'node:events';
import { prerequisites, startGateway, post, metric, sleep } from '../lib/harness.mjs';
import { traceRequest, genaiSpan, toProtobuf, rawGrpcClient, grpcUnaryRaw, GRPC_EXPORT_PATH } from '../lib/otlp.mjs';
import { openConn, slowloris, attacker, openMany, timed } from '../lib/slow.mjs';

const skip = prerequisites({ needPg: false });
const PB = { 'content-type': 'application/x-protobuf' };
const HEADER_MS = 1500;
const BODY_MS = 2000;

const goodPost = (gw) => timed(() => post(gw, '/v1/traces', toProtobuf(traceRequest([genaiSpan()])), PB, { timeoutMs: 5000 }));
const healthz = (gw) =>
  timed(async () => {
    const ac = new AbortController();
    const t = setTimeout(() => ac.abort(), 5000);
    try {
      return (await fetch(`${gw.adminUrl}/healthz`, { signal: ac.signal })).status;
    } finally {
      clearTimeout(t);
    }
  });

describe('connections: slow and idle clients', { skip: skip ?? false }, () => {
  let gw;
  before(async () => {
    gw = await startGateway({
      config: {
        spool: { mode: 'memory' },
        receivers: {
          http: {
            header_timeout_ms: `${HEADER_MS}ms`,
            body_timeout_ms: `${BODY_MS}ms`,
            idle_timeout_ms: '3s',
            max_connections: 1000,
            max_connections_per_ip: 40,
          },
          grpc: { max_connection_idle_ms: '1500ms', handshake_timeout_ms: '1s', max_concurrent_streams: 7, min_ping_interval_ms: '1s' },
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
  });

  test('slowloris on the OTLP/HTTP port: good requests and /healthz are served meanwhile, every slow connection closed at the header deadline', async () => {
    const before = metric(await gw.metrics(), 'genai_gateway_http_read_timeouts_total', { listener: 'otlp_http', phase: 'headers' });
    const N = 400; /* 10 addresses x 40, each at the per-address limit */
    const slow = await openMany(N, (i) => slowloris(gw.ports.http, { localAddress: attacker(i % 10), dripMs: 100 }));
    assert.equal(slow.filter((c) => c.isClosed()).length, 0, 'all slow connections were accepted');
    for (let i = 0; i < 5; i++) {
      const r = await goodPost(gw);
      assert.equal(r.value.status, 200);
      assert.ok(r.ms < 1000, `good request took ${r.ms} ms with ${N} slowloris connections open`);
      const h = await healthz(gw);
      assert.equal(h.value, 200);
      assert.ok(h.ms < 500, `/healthz took ${h.ms} ms`);
    }
    const lifetimes = await Promise.all(slow.map((c) => Promise.race([c.closed, sleep(HEADER_MS + 4000).then(() => Infinity)])));
    const worst = Math.max(...lifetimes);
    assert.ok(worst < HEADER_MS + 1500, `a slowloris connection lived ${worst} ms (header deadline ${HEADER_MS} ms)`);
    assert.ok(Math.min(...lifetimes) >= HEADER_MS - 300, `a slow connection was closed after ${Math.min(...lifetimes)} ms, before its deadline`);
    const after_ = metric(await gw.metrics(), 'genai_gateway_http_read_timeouts_total', { listener: 'otlp_http', phase: 'headers' });
    assert.ok(after_ - before >= N, `header timeouts counted: ${after_ - before}`);
  });

  test('a slow body is cut at the body deadline; an upload that finishes in time is accepted', async () => {
    const before = metric(await gw.metrics(), 'genai_gateway_http_read_timeouts_total', { listener: 'otlp_http', phase: 'body' });
    const c = await openConn(gw.ports.http, { localAddress: attacker(20) });
    c.sock.write('POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 100000\r\n\r\n');
    const drip = setInterval(() => c.isClosed() || c.sock.write('x'), 100);
    const lived = await Promise.race([c.closed, sleep(BODY_MS + 4000).then(() => Infinity)]);
    clearInterval(drip);
    assert.ok(lived >= BODY_MS - 300 && lived < BODY_MS + 1500, `slow body connection lived ${lived} ms (body deadline ${BODY_MS} ms)`);
    let after_ = before;
    for (let t0 = Date.now(); after_ - before < 1 && Date.now() - t0 < 3000; await sleep(50))
      after_ = metric(await gw.metrics(), 'genai_gateway_http_read_timeouts_total', { listener: 'otlp_http', phase: 'body' });
    assert.equal(after_ - before, 1);

    /* Slow but within the deadline: the body in 5 pieces over about a second. */
    const body = toProtobuf(traceRequest([genaiSpan()]));
    const ok = await openConn(gw.ports.http);
    let answer = '';
    ok.sock.on('data', (d) => {
      answer += d.toString('latin1');
    });
    ok.sock.write(`POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: ${body.length}\r\n\r\n`);
    const step = Math.ceil(body.length / 5);
    for (let i = 0; i < body.length; i += step) {
      await sleep(200);
      ok.sock.write(body.subarray(i, i + step));
    }
    const t0 = Date.now();
    while (!answer.includes('\r\n\r\n') && Date.now() - t0 < 3000) await sleep(20);
    ok.sock.destroy();
    assert.match(answer, /^HTTP\/1\.1 200 /);
  });

  test('per-address limit: connections past it are closed at once, other addresses still get in', async () => {
    const addr = attacker(30);
    const held = await openMany(40, () => openConn(gw.ports.http, { localAddress: addr }));
    const extra = await openMany(5, () => openConn(gw.ports.http, { localAddress: addr }));
    const extraLives = await Promise.all(extra.map((c) => Promise.race([c.closed, sleep(1000).then(() => Infinity)])));
    assert.ok(extraLives.every((ms) => ms < 1000), `connections past the per-address limit lived ${extraLives} ms`);
    assert.equal(held.filter((c) => c.isClosed()).length, 0, 'the 40 within the limit stay open (their deadline is later)');
    const r = await goodPost(gw);
    assert.equal(r.value.status, 200, 'another address is not affected');
    for (const c of held) c.sock.destroy();
  });

  test('admin port: 70 slow connections do not delay /healthz; they are closed within seconds', async () => {
    const slow = await openMany(70, (i) =>
      slowloris(gw.ports.admin, { localAddress: attacker(40 + (i % 5)), head: 'GET /healthz HTTP/1.1\r\n', dripMs: 200 }),
    );
    for (let i = 0; i < 10; i++) {
      const h = await healthz(gw);
      assert.equal(h.value, 200);
      assert.ok(h.ms < 500, `/healthz took ${h.ms} ms with 70 slow admin connections`);
      await sleep(100);
    }
    const lifetimes = await Promise.all(slow.map((c) => Promise.race([c.closed, sleep(8000).then(() => Infinity)])));
    assert.ok(Math.max(...lifetimes) < 4000, `a slow admin connection lived ${Math.max(...lifetimes)} ms`);
  });

  test('gRPC: SETTINGS carry max_concurrent_streams; an idle connection gets GOAWAY; a ping flood gets ENHANCE_YOUR_CALM', async () => {
    const s = http2.connect(`http://${gw.grpcAddr}`);
    s.on('error', () => {});
    await once(s, 'remoteSettings');
    assert.equal(s.remoteSettings.maxConcurrentStreams, 7);
    const t0 = Date.now();
    const [code, , why] = await Promise.race([once(s, 'goaway'), sleep(6000).then(() => [null])]);
    assert.notEqual(code, null, 'an idle connection gets a GOAWAY');
    assert.match(String(why ?? ''), /idle/, 'gRPC says why (gRPC 1.51 sends "enter idle" with INTERNAL_ERROR)');
    const waited = Date.now() - t0;
    assert.ok(waited >= 1000 && waited < 4000, `idle GOAWAY after ${waited} ms (max_connection_idle 1.5 s)`);
    s.destroy();

    const f = http2.connect(`http://${gw.grpcAddr}`);
    f.on('error', () => {});
    await once(f, 'remoteSettings');
    const goaway = once(f, 'goaway');
    const pinger = setInterval(() => {
      if (!f.destroyed && !f.closed) f.ping(() => {});
    }, 50);
    const [fcode, , data] = await Promise.race([goaway, sleep(5000).then(() => [null])]);
    clearInterval(pinger);
    f.destroy();
    assert.equal(fcode, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, 'ping flood answered with ENHANCE_YOUR_CALM');
    assert.match(String(data ?? ''), /too_many_pings/);
  });

  test('gRPC: a connection that never sends the HTTP/2 preface is closed at the handshake timeout', async () => {
    const reason = { reason: 'handshake_timeout' };
    const before = metric(await gw.metrics(), 'genai_gateway_grpc_connections_closed_total', reason);
    const handed = metric(await gw.metrics(), 'genai_gateway_grpc_connections_total');
    const idle = await openMany(50, (i) => openConn(gw.ports.grpc, { localAddress: attacker(60 + (i % 5)) }));
    const lifetimes = await Promise.all(idle.map((c) => Promise.race([c.closed, sleep(6000).then(() => Infinity)])));
    assert.ok(Math.max(...lifetimes) < 3500, `idle gRPC connections lived up to ${Math.max(...lifetimes)} ms (handshake timeout 1 s)`);
    /* closed by the gateway's own listener, never handed to gRPC core (plaintext: grpc_front.h) */
    const m = await gw.metrics();
    assert.equal(metric(m, 'genai_gateway_grpc_connections_closed_total', reason) - before, 50);
    assert.equal(metric(m, 'genai_gateway_grpc_connections_total'), handed);
  });
});

describe('connections: thousands of idle connections with a low descriptor limit', { skip: skip ?? false }, () => {
  let gw;
  before(async () => {
    gw = await startGateway({
      wrapper: ['prlimit', '--nofile=1024:8192', '--'],
      config: { spool: { mode: 'memory' }, receivers: { http: { max_connections_per_ip: 0 } } },
    });
  });
  after(async () => {
    if (gw) {
      await gw.stop();
      await gw.cleanup();
    }
  });

  test('the soft limit is raised to the hard one; 1500 idle gRPC and 600 idle HTTP connections leave both receivers and /healthz working', async () => {
    const limits = fs.readFileSync(`/proc/${gw.pid}/limits`, 'utf8');
    assert.match(limits, /Max open files\s+8192\s+8192/, limits);
    const idleGrpc = await openMany(1500, (i) => openConn(gw.ports.grpc, { localAddress: attacker(i % 20) }));
    const idleHttp = await openMany(600, (i) => openConn(gw.ports.http, { localAddress: attacker(100 + (i % 20)) }));
    try {
      assert.equal(idleHttp.filter((c) => c.isClosed()).length, 0, 'idle HTTP connections accepted');
      /* descriptors past 1024: select() could not have watched them */
      const fds = fs.readdirSync(`/proc/${gw.pid}/fd`).length;
      assert.ok(fds > 1100, `gateway holds ${fds} descriptors`);
      const r = await goodPost(gw);
      assert.equal(r.value.status, 200);
      const h = await healthz(gw);
      assert.equal(h.value, 200);
      const client = rawGrpcClient(gw.grpcAddr);
      try {
        const g = await grpcUnaryRaw(client, GRPC_EXPORT_PATH, toProtobuf(traceRequest([genaiSpan()])));
        assert.equal(g.code, 0, g.details);
      } finally {
        client.close();
      }
    } finally {
      for (const c of [...idleGrpc, ...idleHttp]) c.sock.destroy();
    }
  });
});
