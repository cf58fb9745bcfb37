/*
 * stop-under-load.test.mjs: SIGTERM while OTLP/HTTP clients keep posting large requests, each on a new
 * connection (as curl or a short-lived exporter does). A request whose handler is running when the stop
 * begins must not leave its connection suspended behind libmicrohttpd's stop (which aborts the process):
 * every stop exits 0, and every request gets an answer the client can act on (200, or 503 to retry), or its
 * connection closed before an answer (the client retries). Nor may a connection accepted just before the
 * stop be handed to libmicrohttpd after it was stopped (its mutexes destroyed: "Failed to lock mutex").
 * Repeated over rounds because each window is a few milliseconds wide: before the receiver counted its
 * handler calls, about one stop in four aborted; before the front counted its hand-offs, one in 30.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { prerequisites, startGateway, sleep } from '../lib/harness.mjs';
import { traceRequest, genaiSpan, toProtobuf, rawGrpcClient, grpcUnaryRaw, GRPC_EXPORT_PATH } from '../lib/otlp.mjs';

const skip = prerequisites({ needPg: false });
const ROUNDS = Number(process.env.GW_STOP_ROUNDS ?? 16);
const CLIENTS = 4;

/* About 270 KB: 100 spans carrying 2.5 KB of prompt text each, like the bench's payload. */
function largeBody(round, client, n) {
  const text = `round ${round} client ${client} request ${n}: ` + 'summarize the quarterly figures for the board. '.repeat(52);
  const spans = [];
  for (let i = 0; i < 100; i++) spans.push(genaiSpan({ attributes: { 'gen_ai.prompt.0.content': text, 'gen_ai.prompt.0.role': 'user' } }));
  return toProtobuf(traceRequest(spans));
}

/* One POST on a connection of its own; resolves the status, or 'closed' when the connection ended before an
 * answer (the gateway stopped accepting or closed it). */
function postOnce(port, body) {
  return new Promise((resolve) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: '/v1/traces', method: 'POST', agent: false,
        headers: { 'content-type': 'application/x-protobuf', 'content-length': body.length } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
        res.on('error', () => resolve('closed'));
      },
    );
    req.on('error', () => resolve('closed'));
    req.setTimeout(30000, () => req.destroy());
    req.end(body);
  });
}

/* One Export call on a gRPC channel of its own; resolves the status code (0 OK, 14 UNAVAILABLE, ...). */
async function grpcOnce(addr, body) {
  const client = rawGrpcClient(addr);
  try {
    return (await grpcUnaryRaw(client, GRPC_EXPORT_PATH, body, { deadlineMs: 30000 })).code;
  } finally {
    client.close();
  }
}

/* Clients post until stopped; returns { stop(), counts } where counts maps each outcome to its number. */
function load(send, bodies) {
  let running = true;
  const counts = new Map();
  const loops = bodies.map(async (body) => {
    while (running) {
      const s = await send(body);
      counts.set(s, (counts.get(s) ?? 0) + 1);
      if (s === 'closed' || s === 14) await sleep(5);
    }
  });
  return { counts, async stop() { running = false; await Promise.all(loops); } };
}

describe('stop under load: SIGTERM while clients post large requests on new connections', { skip: skip ?? false }, () => {
  let gw;
  before(async () => {
    gw = await startGateway({ config: { receivers: { max_inflight_bytes: '64MiB' }, shutdown_grace_ms: '10s' } });
  });
  after(async () => {
    if (gw) await gw.cleanup();
  });

  const rounds = async (start, check) => {
    for (let round = 0; round < ROUNDS; round++) {
      if (round > 0) await gw.restart();
      const loads = start();
      /* Stop at a different point of the load each round. */
      await sleep(600 + Math.floor(Math.random() * 900));
      const exit = await gw.stop();
      for (const l of loads) await l.stop();
      assert.deepEqual(exit, { code: 0, signal: null }, `round ${round}: the gateway stopped under load exits 0\n${gw.logs().slice(-3000)}`);
      check(round, loads);
    }
  };
  const bodies = Array.from({ length: CLIENTS }, (_, c) => largeBody(0, c, 0));

  test(`OTLP/HTTP: ${ROUNDS} stops under load all exit 0, every request answered 200 or 503 or closed`, async () => {
    await rounds(
      () => [load((b) => postOnce(gw.ports.http, b), bodies)],
      (round, [l]) => {
        assert.ok((l.counts.get(200) ?? 0) > 0, `round ${round}: requests were accepted before the stop`);
        for (const s of l.counts.keys())
          assert.ok(s === 200 || s === 503 || s === 'closed', `round ${round}: a request got ${s} (all: ${JSON.stringify([...l.counts])})`);
      },
    );
  });

  test(`OTLP/gRPC and OTLP/HTTP at once: ${ROUNDS} stops under load all exit 0, every call OK or UNAVAILABLE`, async () => {
    await gw.restart();
    const half = bodies.slice(0, CLIENTS / 2);
    await rounds(
      () => [load((b) => grpcOnce(gw.grpcAddr, b), half), load((b) => postOnce(gw.ports.http, b), half)],
      (round, [g, h]) => {
        assert.ok((g.counts.get(0) ?? 0) > 0, `round ${round}: gRPC calls were accepted before the stop`);
        for (const s of g.counts.keys()) assert.ok(s === 0 || s === 14, `round ${round}: a gRPC call ended with code ${s} (all: ${JSON.stringify([...g.counts])})`);
        for (const s of h.counts.keys())
          assert.ok(s === 200 || s === 503 || s === 'closed', `round ${round}: a request got ${s} (all: ${JSON.stringify([...h.counts])})`);
      },
    );
  });
});
