/*
 * store-fills.test.mjs: the writer's fills reach rows another writer stores at the same moment, and a
 * batch whose work after commit failed is stored once, that work run again by the writer itself (no
 * other span of the trace needs to come).
 *
 * Two gateways storing spans of one trace at once interleave at random; here the other writer is a pg
 * client of the test, and the interleaving is made deterministic with a row lock: the client locks a
 * stored row of the trace the gateway's fill is about to update, so the gateway's fill statement takes
 * its snapshot and then waits; the client, meanwhile, inserts a row of the trace and commits, releasing
 * the lock. The fill then goes on from a snapshot without the client's row, and only a fill run after
 * the gateway's commit can see it (DESIGN §3: a trace's ids reach its rows whichever span arrives first,
 * over any number of requests and gateways).
 * The failure after commit is made the same way: a lock held on ai_trace_summaries makes the gateway's
 * summaries (run after the commit) wait, and the test cancels or terminates that backend.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { prerequisites, createDatabase, startGateway, post, waitForRows, waitFor, pgConnect, gatewayWaitingOnLock } from '../lib/harness.mjs';
import { traceRequest, genaiSpan, span, toProtobuf } from '../lib/otlp.mjs';

const PB = { 'content-type': 'application/x-protobuf' };
const skip = prerequisites();

/* One writer, and two (their fills after commit under the writers' lock, in a transaction of their own). */
for (const writers of [1, 2]) describe(`the writer's fills after commit (postgres.writers: ${writers})`, { skip: skip ?? false }, () => {
  let db;
  let gw;

  before(async () => {
    db = await createDatabase();
    gw = await startGateway({ dsn: db.dsn, config: { postgres: { writers } } });
  });

  after(async () => {
    await gw?.cleanup();
    await db?.drop();
  });

  const send = async (spans, service) =>
    assert.equal((await post(gw, '/v1/traces', toProtobuf(traceRequest(spans, service ? { service } : {})), PB)).status, 200);
  const ids = async (traceId, spanId) =>
    (await db.query('SELECT session_id, user_id FROM ai_interaction_traces WHERE trace_id = $1 AND span_id = $2', [traceId, spanId])).rows[0];
  const summary = async (traceId) => (await db.query('SELECT * FROM ai_trace_summaries WHERE trace_id = $1', [traceId])).rows[0];

  /* A stored row of a new trace, with nothing left to run for it (its summary is written last). */
  async function storedRow() {
    const r0 = genaiSpan();
    await send([r0]);
    await waitForRows(db, [r0.traceId], 1, { settleMs: 0 });
    await waitFor(() => summary(r0.traceId), { what: 'the first row\'s summary' });
    return r0;
  }

  /* A client of our own, the other writer. */
  const client = () => pgConnect(db.dsn);

  /* Another writer's open transaction on c: stored row r0 locked (the gateway's fill will wait on it) and a
   * new row R2 of its trace inserted, with session sessionId (or none); resolves R2's span id. */
  const otherWriter = async (c, r0, sessionId) => {
    await c.query('BEGIN');
    await c.query('SELECT 1 FROM ai_interaction_traces WHERE trace_id = $1 AND span_id = $2 FOR UPDATE', [r0.traceId, r0.spanId]);
    const r2 = crypto.randomBytes(8).toString('hex');
    await c.query("INSERT INTO ai_interaction_traces (trace_id, span_id, start_time, session_id) VALUES ($1, $2, now() - interval '1 second', $3)",
      [r0.traceId, r2, sessionId]);
    return r2;
  };

  /* The gateway's backend once it waits for a lock in a statement matching `like`. */
  const waiting = (like) => gatewayWaitingOnLock(db, like);

  test('a row another writer commits while the gateway fills gets the ids of the gateway\'s rows', async () => {
    const r0 = await storedRow();
    const c = await client();
    try {
      // the other writer: R0 locked (the gateway's fill will want to give it R1's user), R2 with a session
      const r2 = await otherWriter(c, r0, 'sess-1');
      // the gateway: R1, with a user and no session
      const r1 = genaiSpan({ traceId: r0.traceId, parentSpanId: r0.spanId, attributes: { 'user.id': 'u1' } });
      await send([r1]);
      await waiting('%UPDATE ai_interaction_traces%');
      await c.query('COMMIT');
      await waitFor(async () => (await ids(r1.traceId, r1.spanId))?.session_id === 'sess-1',
        { timeoutMs: 5000, what: 'R1 given the session of the row committed during its fill' });
      assert.deepEqual(await ids(r0.traceId, r0.spanId), { session_id: 'sess-1', user_id: 'u1' });
      assert.deepEqual(await ids(r0.traceId, r2), { session_id: 'sess-1', user_id: 'u1' });
      await waitFor(async () => (await summary(r0.traceId))?.session_id === 'sess-1', { timeoutMs: 5000, what: 'the summary with the session' });
    } finally {
      await c.query('ROLLBACK').catch(() => {});
      await c.end();
    }
  });

  test('a row another writer commits while the gateway keeps ids of a span of no row gets them', async () => {
    const r0 = await storedRow();
    const c = await client();
    try {
      const r2 = await otherWriter(c, r0, null);
      // an HTTP server span: no row, its ids kept for the trace and filled into its rows (R0 first)
      const root = span({ traceId: r0.traceId, name: 'POST /chat', kind: 2, attributes: { 'session.id': 'sess-f', 'enduser.id': 'uf' } });
      await send([root]);
      await waiting('%gw_trace_ids_apply%');
      await c.query('COMMIT');
      await waitFor(async () => (await ids(r0.traceId, r2))?.session_id === 'sess-f',
        { timeoutMs: 5000, what: 'the row committed during the fill given the kept ids' });
      assert.deepEqual(await ids(r0.traceId, r2), { session_id: 'sess-f', user_id: 'uf' });
      assert.deepEqual(await ids(r0.traceId, r0.spanId), { session_id: 'sess-f', user_id: 'uf' });
    } finally {
      await c.query('ROLLBACK').catch(() => {});
      await c.end();
    }
  });

  for (const how of ['pg_cancel_backend', 'pg_terminate_backend']) {
    test(`a batch whose summaries after commit failed (${how}) is stored once; the writer writes them after all`, async () => {
      const service = `fills-${crypto.randomBytes(3).toString('hex')}`;
      const c = await client();
      try {
        await c.query('BEGIN');
        await c.query('LOCK TABLE ai_trace_summaries IN SHARE ROW EXCLUSIVE MODE');
        const r = genaiSpan();
        await send([r], service);
        const pid = await waiting('%gw_summarize_traces%');
        assert.equal((await ids(r.traceId, r.spanId)) !== undefined, true, 'the row is committed');
        assert.equal((await db.query(`SELECT ${how}($1) AS ok`, [pid])).rows[0].ok, true);
        await c.query('ROLLBACK');
        /* acknowledged as stored (not replayed: a stop before the replay would count stored spans as lost
         * with the memory spool); the writer runs the work after commit again by itself, though no other
         * span of the trace comes */
        const first = await waitFor(() => summary(r.traceId), { timeoutMs: 15000, what: 'the summary, written by the owed run' });
        assert.equal(Number(first.spans), 1);
        const r2 = genaiSpan({ traceId: r.traceId, parentSpanId: r.spanId });
        await send([r2], service);
        await waitFor(async () => Number((await summary(r.traceId))?.spans) === 2, { timeoutMs: 10000, what: 'the summary of both spans' });
        const rows = await db.query('SELECT count(*)::int AS n FROM ai_interaction_traces WHERE trace_id = $1', [r.traceId]);
        assert.equal(rows.rows[0].n, 2);
        const roll = await db.query('SELECT sum(total_requests)::int AS n FROM trace_metrics_hourly WHERE service_name = $1', [service]);
        assert.deepEqual(roll.rows[0], { n: 2 }, 'each row counted once in the rollups');
      } finally {
        await c.query('ROLLBACK').catch(() => {});
        await c.end();
      }
    });
  }
});

/* The work after commit still owed when the gateway stops (SIGTERM) or dies (SIGKILL): with the disk spool
 * the batch it is owed to was kept, so the next start replays it, finds its row stored (not stored twice)
 * and runs the work then, though no other span of the trace ever comes. With one writer and with two (the
 * cursor shared by both). */
for (const writers of [1, 2]) describe(`work after commit owed across a restart (disk spool, postgres.writers: ${writers})`, { skip: skip ?? false }, () => {
  let db;
  let gw;

  before(async () => {
    db = await createDatabase();
  });

  after(async () => {
    await gw?.cleanup();
    await db?.drop();
  });

  const summary = async (traceId) => (await db.query('SELECT * FROM ai_trace_summaries WHERE trace_id = $1', [traceId])).rows[0];
  const breakSummaries = () => db.query(`ALTER FUNCTION gw_summarize_traces(text[], timestamptz, timestamptz) RENAME TO gw_summarize_saved;
    CREATE FUNCTION gw_summarize_traces(tids text[], from_ts timestamptz, to_ts timestamptz) RETURNS bigint
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'summaries broken for the test'; END $$`);
  const mendSummaries = () => db.query(`DROP FUNCTION gw_summarize_traces(text[], timestamptz, timestamptz);
    ALTER FUNCTION gw_summarize_saved(text[], timestamptz, timestamptz) RENAME TO gw_summarize_traces`);

  for (const how of ['SIGTERM', 'SIGKILL']) {
    test(`${how} while the summaries after commit fail: the next start writes them, the row stored once`, async () => {
      gw = await startGateway({ dsn: db.dsn, config: { spool: { mode: 'disk' }, postgres: { writers } } });
      const service = `owed-${how.toLowerCase()}-${writers}`;
      await breakSummaries();
      let broken = true;
      try {
        const r = genaiSpan();
        assert.equal((await post(gw, '/v1/traces', toProtobuf(traceRequest([r], { service })), PB)).status, 200);
        await waitForRows(db, [r.traceId], 1, { settleMs: 0 });
        await waitFor(() => gw.logs().includes('after commit failed'), { what: 'the failed work after commit in the log' });
        if (how === 'SIGTERM') {
          const exit = await gw.stop();
          assert.equal(exit.code, 0, `exit ${JSON.stringify(exit)}`);
        } else {
          await gw.kill();
        }
        assert.equal(await summary(r.traceId), undefined, 'no summary before the restart');
        await mendSummaries();
        broken = false;
        await gw.restart();
        const s = await waitFor(() => summary(r.traceId), { timeoutMs: 20000, what: 'the summary, written after the restart' });
        assert.equal(Number(s.spans), 1);
        const rows = await db.query('SELECT count(*)::int AS n FROM ai_interaction_traces WHERE trace_id = $1', [r.traceId]);
        assert.equal(rows.rows[0].n, 1);
        const roll = await db.query('SELECT sum(total_requests)::int AS n FROM trace_metrics_hourly WHERE service_name = $1', [service]);
        assert.deepEqual(roll.rows[0], { n: 1 }, 'the row counted once in the rollups');
      } finally {
        if (broken) await mendSummaries().catch(() => {});
        await gw?.cleanup();
        gw = undefined;
      }
    });
  }
});
