/*
 * durability-writers.test.mjs: issue 15, two Postgres writer connections (postgres.writers: 2). Each
 * commits batches of its own, in any order; the spool is acknowledged only past batches committed together
 * with every earlier one. kill -9 under load with the disk spool while a real OpenTelemetry JS SDK sends
 * GenAI spans, restart on the same spool: every span the SDK saw acknowledged must become exactly one row
 * of ai_interaction_traces (as durability-kill.test.mjs checks for one writer), both writers must have been
 * connected, and the rollups must still count every stored row once, in its group (the writers upsert
 * them under one lock, replays go through the staging path).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { prerequisites, startPgCluster } from '../lib/harness.mjs';
import { underLoad, assertLanded, rowCount, scaled, loadScale, storedKeys } from '../lib/durability.mjs';

const SLOW = { timeout: 300_000 };

const skip = prerequisites({ needPg: false });

/** Acknowledged before `at` and absent from the database now: what a kill at `at` put at risk. */
async function atRiskAt(db, acked, at) {
  const rows = await storedKeys(db);
  let n = 0;
  for (const [k, ms] of acked) if (ms <= at && !rows.has(k)) n++;
  return n;
}

describe('durability: kill -9 under load with two Postgres writers (disk spool)', { skip: skip ?? false }, () => {
  let cluster;
  before(async () => {
    cluster = await startPgCluster();
  });
  after(async () => {
    await cluster?.destroy();
  });

  /* One run: load at `rate`, kill -9 once acknowledged spans wait for the writer, restart, more load,
   * then compare. */
  async function killUnderLoad(rate, protocol = 'http/protobuf', postgres = undefined) {
    const r = scaled(rate);
    const config = { spool: { mode: 'disk' }, ...(postgres ? { postgres } : {}) };
    await underLoad(cluster, { config, rate: r, load: { protocol } }, async ({ db, gw, load }) => {
      await load.waitAcked(r * 3, { timeoutMs: 60000 });
      /* The moment: a tenth of a second of acknowledged spans not in Postgres yet. The writer may commit
       * them in the few ms between that look and the kill; such a try is checked like the others (every
       * kill is), and the kill is tried again, up to three times, until one found spans at risk. */
      const atRisk = [];
      for (let i = 0; i < 3 && !atRisk.some((n) => n > 0); i++) {
        if (i) await load.waitAcked(load.stats().acked + r, { timeoutMs: 60000 });
        const kill = await gw.killWhen(async () => load.stats().acked - (await rowCount(db)) >= Math.max(10, r / 10), {
          timeoutMs: 30000, what: 'acknowledged spans waiting for the writer',
        });
        atRisk.push(await atRiskAt(db, load.acked(), kill.at));
        await gw.restart({ readyTimeoutMs: 60000 });
      }
      assert.ok(atRisk.some((n) => n > 0), `a kill found acknowledged spans not yet in Postgres (else this test proves nothing): ${atRisk}`);

      const after = load.stats().acked;
      await load.waitAcked(after + r * 3, { timeoutMs: 60000 });
      const { fin, res, msg } = await assertLanded(db, gw, load, `kill -9 at ${r} spans/s over ${protocol} (scale ${loadScale()})`,
        `at risk at the kills ${atRisk.join(', ')}`);
      assert.equal(fin.rejected, 0, `the gateway rejected spans in partial_success: ${msg}`);
      assert.ok(res.acknowledged >= fin.created * 0.5, `most spans were acknowledged: ${msg}`);
      if (postgres?.writers > 1) {
        /* Several writers each committed batches of their own, some replayed: the rollups still count
         * every stored row once, in its group. */
        const diff = await db.query(`WITH want AS (
            SELECT date_trunc('hour', start_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', coalesce(service_name, ''),
                   coalesce(provider, ''), coalesce(model_id, ''), coalesce(operation, ''), coalesce(agent_name, ''),
                   coalesce(workflow_name, ''), coalesce(prompt_name, ''), coalesce(prompt_version, ''), count(*)::bigint,
                   count(*) FILTER (WHERE status = 'error')::bigint, coalesce(sum(input_tokens), 0)::bigint,
                   coalesce(sum(output_tokens), 0)::bigint, coalesce(sum(total_cost_usd), 0)::numeric,
                   count(first_token_latency_ms)::bigint
            FROM ai_interaction_traces GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9),
          have AS (SELECT hour_bucket, service_name, provider, model_id, operation, agent_name, workflow_name,
                   prompt_name, prompt_version, total_requests, error_requests, total_input_tokens, total_output_tokens,
                   total_cost, first_token_count FROM trace_metrics_hourly_agents)
          SELECT (SELECT count(*) FROM (TABLE want EXCEPT ALL TABLE have) a)::int +
                 (SELECT count(*) FROM (TABLE have EXCEPT ALL TABLE want) b)::int AS n`);
        assert.equal(diff.rows[0].n, 0, `rollups equal the GROUP BY of the rows: ${msg}`);
        assert.equal((await gw.metrics()).get('genai_gateway_pg_connected'), 2, 'both writers connected');
      }
      assert.deepEqual(await gw.stop(30000), { code: 0, signal: null }, `exit after SIGTERM; log:\n${gw.logs().slice(-3000)}`);
    });
  }

  test('kill -9 under ~1,600 spans/s with two Postgres writers, restart: every acknowledged span stored exactly once', SLOW, async () => {
    await killUnderLoad(1600, 'http/protobuf', { writers: 2 });
  });
});
