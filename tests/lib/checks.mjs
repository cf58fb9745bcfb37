/*
 * checks.mjs: assertions shared by the integration suites: "the gateway still serves and stores good
 * spans" after a bad input, over HTTP or gRPC.
 */
import assert from 'node:assert/strict';
import { post, waitForRows } from './harness.mjs';
import { traceRequest, genaiSpan, toProtobuf, toJson, decodeResponse, rejectedSpans, grpcUnaryRaw, GRPC_EXPORT_PATH } from './otlp.mjs';

/** Send one good GenAI span over HTTP (protobuf or JSON) and wait until its row is in Postgres. */
export async function assertHttpStillServes(gw, db, { json = false, label = '' } = {}) {
  assert.ok(gw.alive(), `gateway died ${label}: ${JSON.stringify(gw.exited())}\n${gw.logs().slice(-3000)}`);
  const s = genaiSpan({ model: 'gpt-4o-mini', input: 5, output: 3 });
  const req = traceRequest([s], { service: 'still-serving' });
  const r = json
    ? await post(gw, '/v1/traces', toJson(req), { 'content-type': 'application/json' })
    : await post(gw, '/v1/traces', toProtobuf(req), { 'content-type': 'application/x-protobuf' });
  assert.equal(r.status, 200, `good request after ${label}: ${r.status} ${r.body.toString('utf8').slice(0, 300)}`);
  const rows = await waitForRows(db, [s.traceId], 1, { settleMs: 0 });
  assert.equal(rows.length, 1);
  assert.equal(rows[0].span_id, s.spanId);
  return rows[0];
}

/** The same over gRPC with a raw client. */
export async function assertGrpcStillServes(gw, db, client, { label = '' } = {}) {
  assert.ok(gw.alive(), `gateway died ${label}: ${JSON.stringify(gw.exited())}\n${gw.logs().slice(-3000)}`);
  const s = genaiSpan({ model: 'gpt-4o', input: 9, output: 4 });
  const r = await grpcUnaryRaw(client, GRPC_EXPORT_PATH, toProtobuf(traceRequest([s], { service: 'still-serving' })));
  assert.equal(r.code, 0, `good export after ${label}: ${r.code} ${r.details}`);
  assert.equal(rejectedSpans(decodeResponse(r.response)), 0);
  const rows = await waitForRows(db, [s.traceId], 1, { settleMs: 0 });
  assert.equal(rows.length, 1);
  return rows[0];
}
