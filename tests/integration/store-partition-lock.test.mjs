/*
 * store-partition-lock.test.mjs: a span of a day with no partition yet makes the writer create it, which
 * takes the parent table's lock exclusively. While a long query reads the table (a dashboard), that lock
 * waits, and every query that comes after queues behind the wait: the writer gives up after a few seconds
 * (lock_timeout) and tries again after its backoff, so the dashboards go on, and the row lands once the
 * long query ends.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { prerequisites, createDatabase, startGateway, post, waitForRows, pgConnect, gatewayWaitingOnLock } from '../lib/harness.mjs';
import { traceRequest, genaiSpan, toProtobuf } from '../lib/otlp.mjs';

const PB = { 'content-type': 'application/x-protobuf' };
const skip = prerequisites();
const DAY_NS = 86_400_000_000_000n;

describe('the writer creating a partition while a long query reads the table', { skip: skip ?? false }, () => {
  let db;
  let gw;

  before(async () => {
    db = await createDatabase();
    gw = await startGateway({ dsn: db.dsn });
  });

  after(async () => {
    await gw?.cleanup();
    await db?.drop();
  });

  const client = () => pgConnect(db.dsn);

  test('other readers are held a few seconds at most, and the row lands once the long query ends', { timeout: 90_000 }, async () => {
    const long = await client();
    const reader = await client();
    try {
      /* the long query: its transaction keeps the table's share lock */
      await long.query('BEGIN');
      await long.query('SELECT count(*) FROM ai_interaction_traces');
      /* a span of ten days ago: that day has no partition in a fresh database */
      const s = genaiSpan({ startNs: BigInt(Date.now()) * 1_000_000n - 10n * DAY_NS });
      assert.equal((await post(gw, '/v1/traces', toProtobuf(traceRequest([s])), PB)).status, 200);
      await gatewayWaitingOnLock(db, '%gw_ensure_partition%', { timeoutMs: 20_000 });
      /* a dashboard's query now: before, it queued behind the writer's wait for as long as the long query ran */
      await reader.query("SET statement_timeout = '15s'");
      const t0 = Date.now();
      await reader.query('SELECT count(*) FROM ai_interaction_traces');
      const waited = Date.now() - t0;
      assert.ok(waited < 8000, `a reader waited ${waited} ms behind the partition's creation`);
      await long.query('COMMIT');
      await waitForRows(db, [s.traceId], 1);
    } finally {
      await long.query('ROLLBACK').catch(() => {});
      await long.end();
      await reader.end();
    }
  });
});
