/*
 * issue15-warm-bodies.test.mjs: issue 15, the gateway's cost per request around the receive line (bench/
 * README.md, "Lever 9"). A request body's buffer comes from the receivers' warm pool and goes back to it, so
 * a stream of bodies of the same size reuses pages already faulted in. Before, each body was a fresh mapping:
 * every page of every body was faulted in (and zeroed) again, which cost more than decoding it.
 * Measured from outside: the gateway's minor page faults (/proc/<pid>/stat, the whole process) over a run of
 * sequential 100-span requests (about 300 KB each) after a warm-up, over OTLP/HTTP (HTTP/1.1) and over
 * OTLP/gRPC (the nghttp2 engine, whose bodies are sized from the message prefix). With fresh mappings a
 * request faults at least one page per 4 KiB of its body; with the pool, far fewer. Larger requests (300
 * spans, four at once) must find their arenas' chunks in the pool too (core/arena.h, GW_ARENA_WARM_MAX).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { prerequisites, startGateway, post } from '../lib/harness.mjs';
import { genaiSpan, traceRequest, toProtobuf, rawGrpcClient, grpcUnaryRaw, GRPC_EXPORT_PATH } from '../lib/otlp.mjs';

const skip = prerequisites({ needPg: false });
const ROUNDS = 20;

/* One request of n GenAI spans (100 by default) with about 3 KB of messages each. */
function body(seed, n = 100) {
  const words = 'the customer asked about the invoice for march and whether the refund was already issued'.split(' ');
  const spans = [];
  for (let i = 0; i < n; i++) {
    let text = '';
    for (let j = 0; text.length < 1400; j++) text += words[(i * 7 + j * 3 + seed) % words.length] + ' ';
    spans.push(genaiSpan({
      attributes: {
        'gen_ai.input.messages': JSON.stringify([{ role: 'user', parts: [{ type: 'text', content: text }] }]),
        'gen_ai.output.messages': JSON.stringify([{ role: 'assistant', parts: [{ type: 'text', content: text }], finish_reason: 'stop' }]),
      },
    }));
  }
  return toProtobuf(traceRequest(spans));
}

/* The process's minor faults: field 10 of /proc/<pid>/stat, counted after the ')' that ends comm. */
function minorFaults(pid) {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[7]);
}

describe('issue 15: request bodies reuse warm pages', { skip: skip ?? false }, () => {
  let gw;
  const bodies = Array.from({ length: 4 }, (_, i) => body(i));
  const pages = Math.ceil(bodies[0].length / 4096);

  before(async () => {
    gw = await startGateway({ config: { spool: { fsync: 'never' } } });
  });
  after(async () => {
    if (!gw) return;
    const r = await gw.stop();
    await gw.cleanup();
    assert.deepEqual(r, { code: 0, signal: null }, 'gateway exits 0 on SIGTERM');
  });

  test('OTLP/HTTP: sequential 300 KB bodies fault in far fewer pages than a body holds', async (t) => {
    const send = async (i) => {
      const r = await post(gw, '/v1/traces', bodies[i % bodies.length], { 'content-type': 'application/x-protobuf' });
      assert.equal(r.status, 200);
    };
    for (let i = 0; i < 8; i++) await send(i);
    const f0 = minorFaults(gw.pid);
    for (let i = 0; i < ROUNDS; i++) await send(i);
    const per = (minorFaults(gw.pid) - f0) / ROUNDS;
    t.diagnostic(`${per.toFixed(1)} minor faults a request; a body is ${pages} pages`);
    assert.ok(per < pages / 2, `${per.toFixed(1)} faults a request: the body's ${pages} pages are faulted in again`);
  });

  /* 300 spans (about 900 KB) take an 11 MB arena, 7 MB of it in mapped chunks: with requests on both
   * receiver threads at once, their chunks and the bodies need more than the 16 MiB the pool held before,
   * and each request faulted about 320 pages in afresh (2x the CPU a span). */
  test('OTLP/HTTP: 300-span bodies on four connections at once reuse the pool too', async (t) => {
    const big = Array.from({ length: 4 }, (_, i) => body(10 + i, 300));
    const bigPages = Math.ceil(big[0].length / 4096);
    const burst = (n) => Promise.all([0, 1, 2, 3].map(async (k) => {
      for (let i = 0; i < n; i++) {
        const r = await post(gw, '/v1/traces', big[(k + i) % big.length], { 'content-type': 'application/x-protobuf' });
        assert.equal(r.status, 200);
      }
    }));
    await burst(4);
    const f0 = minorFaults(gw.pid);
    await burst(6);
    const per = (minorFaults(gw.pid) - f0) / 24;
    t.diagnostic(`${per.toFixed(1)} minor faults a request; a body is ${bigPages} pages`);
    assert.ok(per < bigPages / 2, `${per.toFixed(1)} faults a request: the arenas' memory is faulted in again`);
  });

  /* 500 spans (about 1.5 MB: the OTel SDK's default batch of 512 GenAI spans) go to the large-request
   * lane. Their bodies grew from 64 KiB, each growth unmapping pooled memory, and their encoded records
   * needed a chunk a few bytes larger than the last request's: about 1 000 faults a request. */
  test('OTLP/HTTP: 500-span bodies (the large-request lane) reuse the pool too', async (t) => {
    const big = Array.from({ length: 4 }, (_, i) => body(20 + i, 500));
    const bigPages = Math.ceil(big[0].length / 4096);
    const burst = (n) => Promise.all([0, 1, 2, 3].map(async (k) => {
      for (let i = 0; i < n; i++) {
        const r = await post(gw, '/v1/traces', big[(k + i) % big.length], { 'content-type': 'application/x-protobuf' });
        assert.equal(r.status, 200);
      }
    }));
    await burst(3);
    const f0 = minorFaults(gw.pid);
    await burst(4);
    const per = (minorFaults(gw.pid) - f0) / 16;
    t.diagnostic(`${per.toFixed(1)} minor faults a request; a body is ${bigPages} pages`);
    assert.ok(per < bigPages / 2, `${per.toFixed(1)} faults a request: the arenas' memory is faulted in again`);
  });

  test('OTLP/gRPC: the same over the gRPC port', async (t) => {
    const c = rawGrpcClient(gw.grpcAddr);
    try {
      const send = async (i) => {
        const r = await grpcUnaryRaw(c, GRPC_EXPORT_PATH, bodies[i % bodies.length]);
        assert.equal(r.code, 0, r.details);
      };
      for (let i = 0; i < 8; i++) await send(i);
      const f0 = minorFaults(gw.pid);
      for (let i = 0; i < ROUNDS; i++) await send(i);
      const per = (minorFaults(gw.pid) - f0) / ROUNDS;
      t.diagnostic(`${per.toFixed(1)} minor faults a call; a message is ${pages} pages`);
      assert.ok(per < pages / 2, `${per.toFixed(1)} faults a call: the message's ${pages} pages are faulted in again`);
    } finally {
      c.close();
    }
  });
});
