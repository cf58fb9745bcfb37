/*
 * store-held-writer.test.mjs: the Postgres writer held by a lock another session keeps on the traces table
 * (an operator's ALTER TABLE or VACUUM FULL, a forgotten transaction).
 * - postgres.statement_timeout: the writer's statement gives up, the failure is logged (naming the timeout)
 *   and counted, the batch is written again after the backoff, and lands once the lock is gone;
 * - SIGTERM while the writer waits (no statement limit reached): the gateway exits 0 within its
 *   shutdown grace (the statement cancelled), the batch kept in the disk spool, and lands once after the
 *   restart.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { prerequisites, createDatabase, startGateway, post, waitFor, waitForRows, countRows, pgConnect, gatewayWaitingOnLock, metricSum } from '../lib/harness.mjs';
import { traceRequest, genaiSpan, toProtobuf } from '../lib/otlp.mjs';

const PB = { 'content-type': 'application/x-protobuf' };
const skip = prerequisites();

async function lockTraces(dsn) {
  const c = await pgConnect(dsn);
  await c.query('BEGIN');
  await c.query('LOCK TABLE ai_interaction_traces IN ACCESS EXCLUSIVE MODE');
  return {
    async release() {
      await c.query('ROLLBACK').catch(() => {});
      await c.end().catch(() => {});
    },
  };
}

describe('a writer held by a lock on the traces table', { skip: skip ?? false }, () => {
  let db;

  before(async () => {
    db = await createDatabase();
  });

  after(async () => {
    await db?.drop();
  });

  test('postgres.statement_timeout: the held statement gives up, is logged and retried, and lands after the lock', { timeout: 90_000 }, async () => {
    const gw = await startGateway({ dsn: db.dsn, config: { postgres: { statement_timeout: '500ms' } } });
    let lock;
    try {
      const first = genaiSpan();
      assert.equal((await post(gw, '/v1/traces', toProtobuf(traceRequest([first])), PB)).status, 200);
      await waitForRows(db, [first.traceId], 1);
      const errorsBefore = metricSum(await gw.metrics(), 'genai_gateway_pg_errors_total');
      lock = await lockTraces(db.dsn);
      const held = genaiSpan();
      assert.equal((await post(gw, '/v1/traces', toProtobuf(traceRequest([held])), PB)).status, 200);
      /* two failed tries at least: each gave up at the limit, none waited for the lock's end */
      await waitFor(async () => metricSum(await gw.metrics(), 'genai_gateway_pg_errors_total') >= errorsBefore + 2,
        { timeoutMs: 30_000, what: 'the writer giving up twice' });
      assert.match(gw.logs(), /57014/, 'the log names the statement timeout');
      await lock.release();
      lock = null;
      await waitForRows(db, [held.traceId], 1, { timeoutMs: 30_000 });
      assert.equal(await countRows(db, [first.traceId]), 1);
    } finally {
      await lock?.release();
      await gw.cleanup();
    }
  });

  test('SIGTERM while the writer waits: exit 0 within the grace, the batch kept in the spool and landed once after the restart', { timeout: 120_000 }, async () => {
    const graceMs = 1000;
    const gw = await startGateway({ dsn: db.dsn, config: { spool: { mode: 'disk' }, shutdown_grace_ms: graceMs } });
    let lock;
    try {
      const first = genaiSpan();
      assert.equal((await post(gw, '/v1/traces', toProtobuf(traceRequest([first])), PB)).status, 200);
      await waitForRows(db, [first.traceId], 1);
      lock = await lockTraces(db.dsn);
      const held = genaiSpan();
      assert.equal((await post(gw, '/v1/traces', toProtobuf(traceRequest([held])), PB)).status, 200);
      await gatewayWaitingOnLock(db, '%', { timeoutMs: 20_000 });
      const t0 = Date.now();
      const exit = await gw.stop(30_000);
      const took = Date.now() - t0;
      assert.deepEqual(exit, { code: 0, signal: null }, `exit ${JSON.stringify(exit)}; log:\n${gw.logs().slice(-3000)}`);
      /* the grace, the cancel's second, and the rest of the stop: far below the lock's time */
      assert.ok(took < graceMs + 6000, `the stop took ${took} ms with a ${graceMs} ms grace`);
      assert.match(gw.logs(), /kept in the disk spool/);
      await lock.release();
      lock = null;
      await gw.restart();
      await waitForRows(db, [held.traceId], 1, { timeoutMs: 30_000 });
      assert.equal(await countRows(db, [first.traceId]), 1);
    } finally {
      await lock?.release();
      await gw.cleanup();
    }
  });
});
