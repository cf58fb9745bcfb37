/*
 * pgbouncer.test.mjs: the Postgres writer, the migrations and the maintenance loop through PgBouncer in
 * transaction pooling (Debian's pgbouncer, started here on a free port, 2 server connections for every
 * client). Three gateways start at once on a fresh database (they migrate it together through the
 * pooler), each stores its own spans and one request all three receive; every span lands exactly once
 * and is counted once in the rollups, GenAI events sent to one gateway while their spans go to another
 * at the same moment are merged into the rows, so are agent names into the calls of agent traces whose
 * spans each go to another gateway (issue 16), maintenance runs
 * from every gateway and from `genai-gateway maintain`, and nothing failed on the way. The pooler's
 * own SHOW CLIENTS / SHOW SERVERS prove that the clients shared fewer server connections than they were.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  prerequisites, createDatabase, startGateway, post, waitFor, waitForRows, metric, GW_BIN,
} from '../lib/harness.mjs';
import { traceRequest, genaiSpan, toProtobuf, randomTraceId, randomSpanId } from '../lib/otlp.mjs';
import { pgbouncerMissing, startPgbouncer } from '../lib/pgbouncer.mjs';
import { logsRequest, logsToProtobuf, chatEvents } from '../lib/otlp-logs.mjs';

const execFileP = promisify(execFile);
const skip = prerequisites() ?? pgbouncerMissing();
if (skip) console.error(`pgbouncer.test.mjs: SKIPPED: ${skip}`);
const PB = { 'content-type': 'application/x-protobuf' };

describe('through PgBouncer in transaction pooling', { skip: skip ?? false }, () => {
  let db;
  let bouncer;
  const gws = [];

  before(async () => {
    db = await createDatabase();
    bouncer = await startPgbouncer(process.env.GW_TEST_PG_DSN, { poolSize: 2 });
    const dsn = bouncer.dsnFor(db.name);
    /* at once: the three migrate the fresh database concurrently, through the pooler */
    gws.push(...(await Promise.all([0, 1, 2].map(() => startGateway({ dsn, config: { postgres: { batch_wait_ms: '20ms' } } })))));
  });

  after(async () => {
    await Promise.all(gws.map((g) => g.cleanup()));
    await bouncer?.stop();
    await db?.drop();
  });

  test('the schema was migrated once, by three gateways at once', async () => {
    const r = await db.query('SELECT version, count(*)::int AS n FROM schema_migrations GROUP BY version ORDER BY version');
    assert.ok(r.rows.length >= 5);
    assert.ok(r.rows.every((x) => x.n === 1));
  });

  test('every span is stored once and counted once, whichever gateway and server connection', async () => {
    const traceIds = [];
    const service = `pgb-${randomSpanId().slice(0, 6)}`;
    const shared = [];
    for (let i = 0; i < 5; i++) shared.push(genaiSpan({ model: 'gpt-4o-mini', input: 10, output: 5 }));
    traceIds.push(...shared.map((s) => s.traceId));
    const sends = [];
    for (const [g, gw] of gws.entries()) {
      for (let r = 0; r < 10; r++) {
        const spans = [];
        const traceId = randomTraceId();
        traceIds.push(traceId);
        for (let k = 0; k < 20; k++) spans.push(genaiSpan({ traceId, model: 'gpt-4o-mini', input: 100 + g, output: 10 }));
        sends.push(post(gw, '/v1/traces', toProtobuf(traceRequest(spans, { service })), PB));
      }
      /* the same request to every gateway: stored once */
      sends.push(post(gw, '/v1/traces', toProtobuf(traceRequest(shared, { service })), PB));
    }
    const results = await Promise.all(sends);
    assert.ok(results.every((r) => r.status === 200), results.map((r) => r.status).join(' '));
    const want = 3 * 10 * 20 + 5;
    const rows = await waitForRows(db, traceIds, want, { timeoutMs: 30000, settleMs: 1000 });
    assert.equal(rows.length, want);
    const dup = await db.query('SELECT count(*)::int AS n FROM (SELECT trace_id, span_id FROM ai_interaction_traces GROUP BY 1, 2 HAVING count(*) > 1) x');
    assert.equal(dup.rows[0].n, 0);
    const roll = await db.query('SELECT sum(total_requests)::int AS n FROM trace_metrics_hourly WHERE service_name = $1', [service]);
    assert.equal(roll.rows[0].n, want, 'rollups count each stored span once');
    for (const gw of gws) {
      const m = await gw.metrics();
      assert.equal(metric(m, 'genai_gateway_pg_errors_total'), 0, gw.logs().slice(-2000));
    }
  });

  test('GenAI events and their spans stored at the same moment by two gateways are merged', async () => {
    /* a span to one gateway and its log events to another at once, as a tier's replicas behind one
     * Service receive them: neither transaction sees the other's rows, the merge after commit does */
    const spans = Array.from({ length: 20 }, () => genaiSpan({ model: 'gpt-4o-mini' }));
    const sends = [];
    for (const [i, s] of spans.entries()) {
      const logs = logsRequest(chatEvents({ traceId: s.traceId, spanId: s.spanId, user: `hello through pgbouncer ${i}`, reply: 'hi' }));
      sends.push(post(gws[i % 3], '/v1/logs', logsToProtobuf(logs), PB), post(gws[(i + 1) % 3], '/v1/traces', toProtobuf(traceRequest([s])), PB));
    }
    assert.ok((await Promise.all(sends)).every((r) => r.status === 200));
    const ids = spans.map((s) => s.traceId);
    const rows = await waitFor(async () => {
      const r = await db.query('SELECT prompt_content, response_content FROM ai_interaction_traces WHERE trace_id = ANY($1)', [ids]);
      return r.rows.length === spans.length && r.rows.every((x) => x.prompt_content && x.response_content) ? r.rows : null;
    }, { timeoutMs: 20000, what: 'every row merged with its events' });
    assert.ok(rows.every((r) => /hello through pgbouncer \d+/.test(r.prompt_content)));
  });

  test('agent attribution across gateways: each span of an agent trace to another gateway, all at once', async () => {
    /* issue 16: calls inherit their agent from the agent span whichever gateway stores which first; the
     * fill runs after each batch's commit, nothing of it outlives a transaction */
    const service = `pgb-agents-${randomSpanId().slice(0, 6)}`;
    const all = [];
    for (let t = 0; t < 8; t++) {
      const traceId = randomTraceId();
      const agent = genaiSpan({ traceId, operation: 'invoke_agent', model: 'gpt-4o-mini', input: null, output: null, attributes: { 'gen_ai.agent.name': `agent-${t % 3}` } });
      const tool = genaiSpan({ traceId, parentSpanId: agent.spanId, operation: 'execute_tool', input: null, output: null });
      const calls = [0, 1, 2].map(() => genaiSpan({ traceId, parentSpanId: agent.spanId, input: 10, output: 5 }));
      calls.push(genaiSpan({ traceId, parentSpanId: tool.spanId, input: 20, output: 5 }));
      all.push({ agent: `agent-${t % 3}`, spans: [...calls, tool, agent] });
    }
    const sends = [];
    let i = 0;
    for (const tr of all) for (const s of tr.spans) sends.push(post(gws[i++ % 3], '/v1/traces', toProtobuf(traceRequest([s], { service })), PB));
    assert.ok((await Promise.all(sends)).every((r) => r.status === 200));
    const ids = all.map((tr) => tr.spans[0].traceId);
    await waitFor(async () => {
      const r = await db.query('SELECT count(*) FILTER (WHERE agent_name IS NOT NULL)::int AS named, count(*)::int AS n FROM ai_interaction_traces WHERE trace_id = ANY($1)', [ids]);
      return r.rows[0].n === 6 * all.length && r.rows[0].named === r.rows[0].n;
    }, { timeoutMs: 20000, what: 'every row of the agent traces attributed' });
    const rows = await db.query('SELECT trace_id, agent_name FROM ai_interaction_traces WHERE trace_id = ANY($1)', [ids]);
    for (const r of rows.rows) assert.equal(r.agent_name, all.find((tr) => tr.spans[0].traceId === r.trace_id).agent);
    const roll = await db.query(`SELECT agent_name, sum(total_requests)::int AS n, sum(total_input_tokens)::int AS tok
      FROM trace_metrics_hourly_agents WHERE service_name = $1 GROUP BY 1 ORDER BY 1`, [service]);
    const raw = await db.query(`SELECT coalesce(agent_name, '') AS agent_name, count(*)::int AS n, coalesce(sum(input_tokens), 0)::int AS tok
      FROM ai_interaction_traces WHERE service_name = $1 GROUP BY 1 ORDER BY 1`, [service]);
    assert.deepEqual(roll.rows, raw.rows);
    assert.ok(!roll.rows.some((r) => r.agent_name === ''), 'no call left counted without its agent');
    /* and one summary per trace with every span in it (issue 16, item 2) */
    const sums = await waitFor(async () => {
      const r = await db.query('SELECT trace_id, agent_name, spans, llm_calls, tool_calls, agent_calls FROM ai_trace_summaries WHERE trace_id = ANY($1)', [ids]);
      return r.rows.length === all.length && r.rows.every((x) => x.spans === 6) ? r.rows : null;
    }, { timeoutMs: 20000, what: 'a complete summary of every agent trace' });
    for (const x of sums) {
      assert.deepEqual([x.agent_name, x.llm_calls, x.tool_calls, x.agent_calls],
        [all.find((tr) => tr.spans[0].traceId === x.trace_id).agent, 4, 1, 1]);
    }
  });

  test('maintenance runs through the pooler, from the loop and from the command', async () => {
    for (const gw of gws) {
      await waitFor(async () => metric(await gw.metrics(), 'genai_gateway_pg_maintenance_runs_total') >= 1, {
        timeoutMs: 20000, what: 'a maintenance pass',
      });
      assert.equal(metric(await gw.metrics(), 'genai_gateway_pg_maintenance_errors_total'), 0);
    }
    const { stdout, stderr } = await execFileP(GW_BIN, ['maintain'], {
      env: { PATH: process.env.PATH, DATABASE_URL: bouncer.dsnFor(db.name) },
      timeout: 60000,
    });
    assert.match(stdout + stderr, /partition|maintenance|ran/i);
    const parts = await db.query("SELECT count(*)::int AS n FROM pg_inherits WHERE inhparent = 'ai_interaction_traces'::regclass");
    assert.ok(parts.rows[0].n >= 4, 'today and the days ahead');
  });

  test('the gateways shared fewer server connections than they had clients', async () => {
    const clients = (await bouncer.show('CLIENTS')).filter((c) => c.database === db.name);
    const servers = (await bouncer.show('SERVERS')).filter((c) => c.database === db.name);
    assert.ok(clients.length >= 6, `clients: ${clients.length} (3 writers + 3 maintenance loops)`);
    assert.ok(servers.length <= 2, `server connections: ${servers.length}`);
  });
});
