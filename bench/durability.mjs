/*
 * durability.mjs: the four scenarios of issue 11 ("Never lose an acknowledged span") at the rates
 * and durations, against one gateway binary and spool setting; prints
 * scenario | acknowledged | stored | lost | duplicated. Run through bench/durability.sh (which sets up
 * node_modules and checks PostgreSQL); see bench/README.md, "Durability".
 *
 * Each scenario gets a fresh database on a private PostgreSQL cluster (fsync on), a fresh gateway on free
 * ports and the real OTel JS SDK load client (tests/lib/load-client.mjs), whose ack log says which span ids
 * the SDK saw acknowledged. Phases are timed from the start of the load:
 *   kill400     ~400 spans/s for 38 s, kill -9 at 19 s, restart at once
 *   kill1600    the same at ~1,600 spans/s
 *   pgdown-kill ~400 spans/s for 38 s; Postgres stopped at 9 s, the gateway killed -9 at 19 s and
 *               restarted, Postgres started at 29 s
 *   pgdown-term Postgres stopped, ~400 spans/s for 4 s, SIGTERM (shutdown_grace_ms 10 s); then Postgres
 *               started and the gateway started again
 * After the load stops and the client has drained, the writer is given until its spool lag is 0, then
 * the ack log is compared with ai_interaction_traces by (trace_id, span_id).
 */
import path from 'node:path';
import { createDatabase, startGateway, startPgCluster, sleep } from '../tests/lib/harness.mjs';
import { startLoad } from '../tests/lib/load-client.mjs';
import { waitLanded } from '../tests/lib/durability.mjs';

function parseArgs(argv) {
  const o = { spool: 'disk', fsync: null, only: null, seconds: 38 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => argv[++i];
    if (a === '--spool') o.spool = v();
    else if (a === '--fsync') o.fsync = v();
    else if (a === '--only') o.only = v().split(',');
    else if (a === '--seconds') o.seconds = Number(v());
    else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const say = (m) => process.stderr.write(`durability: ${m}\n`);
const spoolConfig = () => {
  if (opts.spool === 'memory') return { mode: 'memory' };
  return opts.fsync ? { mode: 'disk', fsync: opts.fsync } : { mode: 'disk' };
};

async function withRun(cluster, fn, { grace } = {}) {
  const db = await createDatabase(cluster.dsn);
  const config = { spool: spoolConfig() };
  if (grace !== undefined) config.shutdown_grace_ms = grace;
  const gw = await startGateway({ dsn: db.dsn, config, readyTimeoutMs: 60000 });
  let load;
  try {
    return await fn({ db, gw, startLoad: (o) => (load = startLoad({ httpUrl: gw.httpUrl, ackLog: path.join(gw.dir, 'acked.log'), ...o })) });
  } finally {
    await load?.kill();
    await cluster.start().catch(() => {});
    await gw.cleanup();
    await db.drop();
  }
}

/* sleep until `ms` after t0 */
const until = (t0, ms) => sleep(Math.max(0, t0 + ms - Date.now()));

async function finish({ db, gw, load }, notes) {
  const fin = await load.stop({ drainMs: 60000 });
  const res = await waitLanded(db, gw, load.acked(), { timeoutMs: 180000 });
  if (fin.failed || fin.unsent) notes.push(`client: ${fin.failed} failed, ${fin.unsent} unsent`);
  return { ...res, notes };
}

async function killUnderLoad(cluster, rate) {
  return withRun(cluster, async ({ db, gw, startLoad: sl }) => {
    const total = opts.seconds * 1000;
    const load = sl({ rate });
    const t0 = Date.now();
    await until(t0, total / 2);
    await gw.kill();
    await gw.restart({ readyTimeoutMs: 120000 });
    const notes = [`restart ready in ${Date.now() - t0 - total / 2} ms`];
    await until(t0, total);
    return finish({ db, gw, load }, notes);
  });
}

const scenarios = {
  kill400: { name: 'kill -9 under ~400 spans/s, restart', run: (c) => killUnderLoad(c, 400) },
  kill1600: { name: 'kill -9 under ~1,600 spans/s, restart', run: (c) => killUnderLoad(c, 1600) },
  'pgdown-kill': {
    name: 'Postgres stopped 20 s, kill -9 10 s into it, restart',
    run: (cluster) => withRun(cluster, async ({ db, gw, startLoad: sl }) => {
      const scale = opts.seconds / 38;
      const load = sl({ rate: 400 });
      const t0 = Date.now();
      await until(t0, 9000 * scale);
      await cluster.stop();
      await until(t0, 19000 * scale);
      await gw.kill();
      await gw.restart({ readyTimeoutMs: 120000 });
      await until(t0, 29000 * scale);
      await cluster.start();
      await until(t0, 38000 * scale);
      return finish({ db, gw, load }, []);
    }),
  },
  'pgdown-term': {
    name: 'Postgres down, SIGTERM (10 s grace), restart with Postgres up',
    run: (cluster) => withRun(cluster, async ({ db, gw, startLoad: sl }) => {
      await cluster.stop();
      const load = sl({ rate: 400, durationMs: 4000 });
      await load.waitFor((s) => s.producing === false, { timeoutMs: 60000, what: 'the end of the 4 s load' });
      const fin = await load.stop({ drainMs: 30000 });
      const t = Date.now();
      const exit = await gw.stop(60000);
      const notes = [`exit ${exit.code ?? exit.signal} after ${((Date.now() - t) / 1000).toFixed(1)} s`];
      if (fin.failed || fin.unsent) notes.push(`client: ${fin.failed} failed, ${fin.unsent} unsent`);
      await cluster.start();
      await gw.restart({ readyTimeoutMs: 120000 });
      const res = await waitLanded(db, gw, load.acked(), { timeoutMs: 180000 });
      return { ...res, notes };
    }, { grace: 10000 }),
  },
};

const cluster = await startPgCluster({ fast: false });
const rows = [];
try {
  for (const [key, sc] of Object.entries(scenarios)) {
    if (opts.only && !opts.only.includes(key)) continue;
    say(`${sc.name} ...`);
    const t = Date.now();
    const r = await sc.run(cluster);
    say(`  acknowledged ${r.acknowledged}, stored ${r.stored}, lost ${r.lost}, duplicated ${r.duplicated} (${((Date.now() - t) / 1000).toFixed(0)} s)`);
    rows.push({ name: sc.name, ...r });
  }
} finally {
  await cluster.destroy();
}

const mode = opts.spool === 'memory' ? 'memory spool' : `disk spool, fsync ${opts.fsync ?? 'default'}`;
console.log(`\n${mode}, ${process.env.GW_BIN ?? 'build/genai-gateway'}\n`);
console.log('| scenario | acknowledged | stored | lost | duplicated | notes |');
console.log('|---|---:|---:|---:|---:|---|');
for (const r of rows) {
  console.log(`| ${r.name} | ${r.acknowledged} | ${r.stored} | ${r.lost} | ${r.duplicated} | ${r.notes.join('; ')} |`);
}
