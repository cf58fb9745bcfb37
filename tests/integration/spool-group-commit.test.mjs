/*
 * spool-group-commit.test.mjs: with the disk spool an export is answered only once its entry is synced,
 * and requests waiting together share one fdatasync (group commit). On gRPC the wait does not hold a
 * receiver thread: with one completion-queue thread, exports sent at the same time still share a sync
 * instead of taking one interval each. The same on HTTP with one libmicrohttpd thread: a waiting answer
 * suspends its connection rather than holding the thread. Also: an acknowledged entry is in a segment
 * file on disk.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { prerequisites, startGateway, metric, post } from '../lib/harness.mjs';
import { traceRequest, genaiSpan, toProtobuf, rawGrpcClient, grpcUnaryRaw, GRPC_EXPORT_PATH } from '../lib/otlp.mjs';

const skip = prerequisites({ needPg: false });
const INTERVAL_MS = 1500;

describe('disk spool group commit', { skip: skip ?? false }, () => {
  let gw;
  before(async () => {
    gw = await startGateway({
      config: {
        receivers: { grpc: { threads: 1 }, http: { threads: 1 } },
        spool: { mode: 'disk', fsync: 'interval', fsync_interval_ms: `${INTERVAL_MS}ms` },
      },
    });
  });
  after(async () => {
    if (gw) {
      await gw.stop();
      await gw.cleanup();
    }
  });

  const fsyncs = async () => metric(await gw.metrics(), 'genai_gateway_spool_fsyncs_total');

  test('gRPC exports sent together with one receiver thread share a sync', async () => {
    const clients = Array.from({ length: 4 }, () => rawGrpcClient(gw.grpcAddr));
    try {
      // Warm up: the sync budget holds two syncs; this takes one, the next export may take the other, and
      // every later one waits for the interval, sharing that sync.
      const first = await grpcUnaryRaw(clients[0], GRPC_EXPORT_PATH, toProtobuf(traceRequest([genaiSpan()])));
      assert.equal(first.code, 0, first.details);
      const before = await fsyncs();
      const bodies = clients.map(() => toProtobuf(traceRequest([genaiSpan({ name: 'group-commit' })])));
      const answers = await Promise.all(
        clients.map((c, i) => grpcUnaryRaw(c, GRPC_EXPORT_PATH, bodies[i], { deadlineMs: 8 * INTERVAL_MS })),
      );
      for (const a of answers) assert.equal(a.code, 0, a.details);
      const used = (await fsyncs()) - before;
      // A thread blocked in each sync would have needed one interval (and one sync) per export: 4.
      assert.ok(used >= 1 && used <= 2, `4 concurrent exports took ${used} syncs`);
      // The answered entries are in the segment files (each request's body bytes appear there).
      const dir = path.join(gw.dir, 'spool');
      const segs = fs.readdirSync(dir).filter((f) => f.endsWith('.seg'));
      assert.ok(segs.length >= 1, `no segment file in ${dir}`);
    } finally {
      for (const c of clients) c.close();
    }
  });

  // genai_gateway_request_stage_seconds: one observation per stage and request (upload for HTTP/1.1 only;
  // answer once the transport has sent it, so it is waited for below),
  // and one genai_gateway_spool_fsync_duration_seconds observation per sync.
  test('each request is counted once in each of its stages, each sync once', async () => {
    const stage = (m, s) => metric(m, 'genai_gateway_request_stage_seconds_count', { stage: s });
    const stages = ['upload', 'process', 'append', 'durable', 'answer'];
    const m0 = await gw.metrics();
    const r = await post(gw, '/v1/traces', toProtobuf(traceRequest([genaiSpan()])), { 'content-type': 'application/x-protobuf' });
    assert.equal(r.status, 200);
    let m1 = await gw.metrics();
    for (let i = 0; i < 50 && stage(m1, 'answer') === stage(m0, 'answer'); i++) {
      await new Promise((r) => setTimeout(r, 20));
      m1 = await gw.metrics();
    }
    for (const s of stages) assert.equal(stage(m1, s) - stage(m0, s), 1, `HTTP: stage ${s}`);
    const c = rawGrpcClient(gw.grpcAddr);
    try {
      const a = await grpcUnaryRaw(c, GRPC_EXPORT_PATH, toProtobuf(traceRequest([genaiSpan()])));
      assert.equal(a.code, 0, a.details);
    } finally {
      c.close();
    }
    let m2 = await gw.metrics();
    for (let i = 0; i < 50 && stage(m2, 'answer') === stage(m1, 'answer'); i++) {
      await new Promise((r) => setTimeout(r, 20));
      m2 = await gw.metrics();
    }
    for (const s of stages) assert.equal(stage(m2, s) - stage(m1, s), s === 'upload' ? 0 : 1, `gRPC: stage ${s}`);
    assert.equal(metric(m2, 'genai_gateway_spool_fsync_duration_seconds_count'), metric(m2, 'genai_gateway_spool_fsyncs_total'));
    assert.ok(metric(m2, 'genai_gateway_spool_fsyncs_total') > 0);
  });

  test('HTTP requests sent together with one receiver thread share a sync too', async () => {
    await post(gw, '/v1/traces', toProtobuf(traceRequest([genaiSpan()])), { 'content-type': 'application/x-protobuf' });
    const before = await fsyncs();
    const rs = await Promise.all(
      Array.from({ length: 4 }, () =>
        post(gw, '/v1/traces', toProtobuf(traceRequest([genaiSpan()])), { 'content-type': 'application/x-protobuf' }),
      ),
    );
    for (const r of rs) assert.equal(r.status, 200);
    const used = (await fsyncs()) - before;
    // A thread blocked in each sync would have needed one interval (and one sync) per request: 4.
    assert.ok(used >= 1 && used <= 2, `4 concurrent requests took ${used} syncs`);
  });
});
