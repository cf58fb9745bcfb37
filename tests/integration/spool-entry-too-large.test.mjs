/*
 * spool-entry-too-large.test.mjs: a request whose spool entry is larger than the whole spool
 * (spool.max_bytes) could never be stored. It used to get 429 "spool full (0 of N bytes held): retry
 * later" (gRPC: RESOURCE_EXHAUSTED with RetryInfo) every time, with the spool empty: clients retried it
 * until they gave up and dropped it. Now it is 413 (gRPC: RESOURCE_EXHAUSTED without RetryInfo), with a
 * message naming spool.max_bytes and no Retry-After. The room a request claims is estimated from its body
 * before the work; an estimate larger than the spool refuses nothing by itself: a body of 2 MiB whose
 * entry is its row alone (no exporter: a large attribute that no row keeps) is stored in a 1 MiB spool.
 * The gateway runs with its default disk spool (the harness's spool dir), which is never empty: it keeps
 * the segment being written.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { prerequisites, createDatabase, startGateway, post, waitForRows, metric } from '../lib/harness.mjs';
import { genaiSpan, traceRequest, toProtobuf, decodeStatus, rawGrpcClient, grpcUnaryRaw, GRPC_EXPORT_PATH, grpc } from '../lib/otlp.mjs';

const MiB = 1024 * 1024;
const PB = { 'content-type': 'application/x-protobuf' };
const skip = prerequisites();

/* 3000 GenAI spans, 2 MiB of protobuf: their rows alone take about 3 MiB of spool. */
const tooLargeForSpool = () => traceRequest(Array.from({ length: 3000 }, () => genaiSpan({ attributes: { 'app.pad': 'p'.repeat(400) } })));

describe('a request larger than the whole spool: 413, not 429 for ever', { skip: skip ?? false }, () => {
  let db;
  let gw;
  let client;

  before(async () => {
    db = await createDatabase();
    gw = await startGateway({ dsn: db.dsn, config: { spool: { max_bytes: '1MiB' } } });
    client = rawGrpcClient(gw.grpcAddr);
  });

  after(async () => {
    client?.close();
    if (gw) {
      const r = await gw.stop();
      await gw.cleanup();
      assert.deepEqual(r, { code: 0, signal: null }, 'gateway exits 0 on SIGTERM');
    }
    await db?.drop();
  });

  test('a small request is stored', async () => {
    const s = genaiSpan({ input: 3, output: 2 });
    const r = await post(gw, '/v1/traces', toProtobuf(traceRequest([s])), PB);
    assert.equal(r.status, 200, r.body.toString('utf8'));
    assert.equal((await waitForRows(db, [s.traceId], 1)).length, 1);
  });

  test('OTLP/HTTP: 413 naming spool.max_bytes, no Retry-After, every time', async () => {
    const body = toProtobuf(tooLargeForSpool());
    assert.ok(body.length > 2 * MiB - 64 * 1024 && body.length < 4 * MiB, `body ${body.length}`);
    for (let i = 0; i < 2; i++) {
      const r = await post(gw, '/v1/traces', body, PB);
      const st = decodeStatus(r.body);
      assert.equal(r.status, 413, `attempt ${i}: ${r.status} ${st.message}`);
      assert.equal(r.headers.get('retry-after'), null, 'not to be retried');
      assert.match(st.message, /needs about \d+ bytes of spool, more than spool\.max_bytes \(1048576\): split it or raise spool\.max_bytes/);
      assert.equal(st.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.ok(!(st.details ?? []).some((d) => d.typeUrl === 'type.googleapis.com/google.rpc.RetryInfo'), 'no RetryInfo');
    }
    const m = await gw.metrics();
    assert.ok((metric(m, 'genai_gateway_spool_bytes') ?? 0) < MiB, 'nothing of it spooled');
  });

  test('OTLP/gRPC: RESOURCE_EXHAUSTED without RetryInfo, naming spool.max_bytes', async () => {
    const g = await grpcUnaryRaw(client, GRPC_EXPORT_PATH, toProtobuf(tooLargeForSpool()), { deadlineMs: 20000 });
    assert.equal(g.code, grpc.status.RESOURCE_EXHAUSTED, `${g.code} ${g.details}`);
    assert.match(g.details, /more than spool\.max_bytes \(1048576\)/);
    const bin = g.metadata?.get('grpc-status-details-bin')?.[0];
    assert.ok(bin, 'grpc-status-details-bin trailer present');
    const st = decodeStatus(Buffer.from(bin));
    assert.equal(st.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.ok(!(st.details ?? []).some((d) => d.typeUrl === 'type.googleapis.com/google.rpc.RetryInfo'),
      `no RetryInfo: ${JSON.stringify(st.details)}`);
  });

  test('a body larger than the spool whose entry fits is stored (the estimate refuses nothing)', async () => {
    const s = genaiSpan({ input: 5, output: 1, attributes: { 'app.blob': 'x'.repeat(2 * MiB) } });
    const r = await post(gw, '/v1/traces', toProtobuf(traceRequest([s])), PB);
    assert.equal(r.status, 200, `${r.status} ${r.status === 200 ? '' : decodeStatus(r.body).message}`);
    assert.equal((await waitForRows(db, [s.traceId], 1)).length, 1);
    const g = genaiSpan({ input: 6, output: 1, attributes: { 'app.blob': 'y'.repeat(2 * MiB) } });
    const rg = await grpcUnaryRaw(client, GRPC_EXPORT_PATH, toProtobuf(traceRequest([g])), { deadlineMs: 20000 });
    assert.equal(rg.code, grpc.status.OK, `${rg.code} ${rg.details}`);
    assert.equal((await waitForRows(db, [g.traceId], 1)).length, 1);
  });

  test('small requests are still stored, over both', async () => {
    const s = genaiSpan({ input: 7, output: 2 });
    const r = await post(gw, '/v1/traces', toProtobuf(traceRequest([s])), PB);
    assert.equal(r.status, 200);
    const g = genaiSpan({ input: 8, output: 2 });
    const rg = await grpcUnaryRaw(client, GRPC_EXPORT_PATH, toProtobuf(traceRequest([g])));
    assert.equal(rg.code, grpc.status.OK, `${rg.code} ${rg.details}`);
    assert.equal((await waitForRows(db, [s.traceId, g.traceId], 2)).length, 2);
  });
});
