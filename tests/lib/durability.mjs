/*
 * durability.mjs: what the durability tests (issue 11, "Never lose an acknowledged span") and
 * bench/durability.sh share: comparing a load client's acknowledged span ids with the rows of
 * ai_interaction_traces, waiting for a gateway's Postgres writer to catch up, the disk spool's files, a
 * small tmpfs, the load scale for slow (sanitizer) builds, and the frame of a scenario under load (its
 * set-up and clean-up, and the closing "nothing lost, nothing twice" check).
 *
 * Key decisions:
 * - The comparison is by (trace_id, span_id) over the whole test database (each test has its own):
 *   lost = acknowledged ids with no row, duplicated = rows beyond the first per (trace_id, span_id).
 *   Rows of spans that were never acknowledged are allowed (at-least-once: the gateway may have stored
 *   a request whose reply the client never saw) and only reported.
 * - "Caught up" is read from the gateway (the Postgres consumer's spool lag is 0), with the row count as
 *   a second witness, and the result is read once more after a short settle so a late duplicate shows.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import assert from 'node:assert/strict';
import { GW_BIN, waitFor, metric, sleep, createDatabase, startGateway } from './harness.mjs';
import { startLoad } from './load-client.mjs';

const execFileP = promisify(execFile);

/**
 * Rates in these tests are the issue's; a sanitizer build is several times slower, so it runs them scaled
 * down. GW_LOAD_SCALE (a factor, e.g. 0.5) wins; else 0.5 when GW_BIN is an ASan build, else 1.
 */
export function loadScale() {
  if (process.env.GW_LOAD_SCALE) return Number(process.env.GW_LOAD_SCALE);
  return sanitizedBinary() ? 0.5 : 1;
}

let sanitized;
/** True when GW_BIN was built with AddressSanitizer (its symbol table names __asan_init). */
export function sanitizedBinary() {
  if (sanitized === undefined) {
    try {
      sanitized = fs.readFileSync(GW_BIN).includes('__asan_init');
    } catch {
      sanitized = false;
    }
  }
  return sanitized;
}

/** Rate scaled by loadScale(), at least 1. */
export const scaled = (rate) => Math.max(1, Math.round(rate * loadScale()));

/** Map<"trace_id span_id", rows> of the whole database. */
export async function storedKeys(db) {
  const r = await db.query('SELECT trace_id, span_id, count(*)::int AS n FROM ai_interaction_traces GROUP BY 1, 2');
  const m = new Map();
  for (const row of r.rows) m.set(`${row.trace_id} ${row.span_id}`, row.n);
  return m;
}

export async function rowCount(db) {
  return (await db.query('SELECT count(*)::int AS n FROM ai_interaction_traces')).rows[0].n;
}

/**
 * Compare acknowledged ids (a Map or Set of "trace_id span_id") with the rows. Returns
 * { acknowledged, stored, lost, duplicated, unacknowledgedStored, rows, lostSample }.
 */
export async function reconcile(db, acked) {
  const rows = await storedKeys(db);
  let stored = 0;
  let lost = 0;
  let duplicated = 0;
  let total = 0;
  const lostSample = [];
  for (const k of acked.keys()) {
    if (rows.has(k)) stored++;
    else {
      lost++;
      if (lostSample.length < 5) lostSample.push(k);
    }
  }
  for (const n of rows.values()) {
    total += n;
    if (n > 1) duplicated += n - 1;
  }
  let unacknowledgedStored = 0;
  for (const k of rows.keys()) if (!acked.has(k)) unacknowledgedStored++;
  return { acknowledged: acked.size, stored, lost, duplicated, unacknowledgedStored, rows: total, lostSample };
}

/**
 * Wait until the gateway's Postgres writer has caught up (spool lag 0 for the postgres consumer and no
 * acknowledged id missing), then reconcile. Never throws on a loss: the caller asserts on the result, so
 * the message names the counts. Throws only when the writer never catches up within timeoutMs.
 */
export async function waitLanded(db, gw, acked, { timeoutMs = 90000, quietMs = 2000, settleMs = 500 } = {}) {
  let zeroSince = null;
  await waitFor(async () => {
    const m = await gw.metrics();
    if (metric(m, 'genai_gateway_spool_lag_entries', { consumer: 'postgres' }) !== 0) {
      zeroSince = null;
      return false;
    }
    if ((await rowCount(db)) >= acked.size && (await reconcile(db, acked)).lost === 0) return true;
    /* caught up, yet acknowledged ids are missing: once that holds for quietMs they are lost */
    zeroSince ??= Date.now();
    return Date.now() - zeroSince >= quietMs;
  }, { timeoutMs, intervalMs: 250, what: `the Postgres writer to catch up with ${acked.size} acknowledged spans` });
  if (settleMs) await sleep(settleMs);
  return reconcile(db, acked);
}

/**
 * One scenario under load against cluster (a private Postgres cluster the scenario may stop): a database of
 * its own, a gateway with config, and the SDK load at rate (load: more startLoad options such as protocol;
 * its ack log in the gateway's directory). run({ db, gw, load }) plays the scenario; whatever happens, the load is killed,
 * Postgres started again, the gateway and the database cleaned up.
 */
export async function underLoad(cluster, { config, rate, load: loadOpts = {} }, run) {
  const db = await createDatabase(cluster.dsn);
  const gw = await startGateway({ dsn: db.dsn, config, readyTimeoutMs: 30000 });
  const load = startLoad({ httpUrl: gw.httpUrl, grpcAddr: gw.grpcAddr, rate, ackLog: path.join(gw.dir, 'acked.log'), ...loadOpts });
  try {
    return await run({ db, gw, load });
  } finally {
    await load.kill();
    await cluster.start().catch(() => {});
    await gw.cleanup();
    await db.drop();
  }
}

/**
 * The end of a scenario: stop the load (in-flight exports finish), wait for every acknowledged span to
 * land, print one line (name, the scenario's note, the client's counts) and check that no acknowledged span
 * was lost or stored twice. note: a string, or a function giving it once the spans have landed. Returns
 * { fin, res, msg } for the scenario's own checks.
 */
export async function assertLanded(db, gw, load, name, note, { timeoutMs } = {}) {
  const fin = await load.stop({ drainMs: 60000 });
  const res = await waitLanded(db, gw, load.acked(), timeoutMs ? { timeoutMs } : undefined);
  const text = typeof note === 'function' ? await note() : note;
  const msg = `${describeResult(name, res)}; ${text ? `${text}; ` : ''}client ${JSON.stringify(fin)}`;
  console.log(msg);
  assert.equal(res.lost, 0, msg);
  assert.equal(res.duplicated, 0, msg);
  return { fin, res, msg };
}

/** One line for a test's diagnostic output. */
export function describeResult(name, r) {
  return `${name}: acknowledged ${r.acknowledged}, stored ${r.stored}, lost ${r.lost}, duplicated ${r.duplicated}` +
    (r.unacknowledgedStored ? `, stored but never acknowledged ${r.unacknowledgedStored}` : '') +
    (r.lostSample?.length ? `, lost e.g. ${r.lostSample.join(', ')}` : '');
}

/** The disk spool's segment files (*.seg) in dir, oldest first (by name, then mtime), with sizes. */
export async function segments(dir) {
  const out = [];
  for (const name of await fsp.readdir(dir)) {
    if (!name.endsWith('.seg')) continue;
    const st = await fsp.stat(path.join(dir, name));
    out.push({ name, path: path.join(dir, name), size: st.size, mtimeMs: st.mtimeMs });
  }
  out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.mtimeMs - b.mtimeMs));
  return out;
}

/**
 * Mount a tmpfs of `size` (e.g. '8m') on dir. Resolves { unmount() }, or { skip: reason } when mounting
 * is not permitted here (EPERM: an unprivileged container); any other failure throws.
 */
export async function mountTmpfs(dir, size) {
  await fsp.mkdir(dir, { recursive: true });
  try {
    await execFileP('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
  } catch (e) {
    const msg = `${e.stderr ?? ''} ${e.message}`;
    if (/permission denied|not permitted|EPERM|must be superuser|only root/i.test(msg)) {
      return { skip: `cannot mount a tmpfs here (${msg.trim().split('\n')[0]})` };
    }
    throw e;
  }
  return {
    async unmount() {
      await execFileP('umount', ['-l', dir]).catch(() => {});
    },
  };
}

/**
 * A tmpfs of `size` on a fresh directory under the system's temp dir (its name starts with prefix), for a
 * test that fills a small disk. Resolves { base, mnt, cleanup() } (cleanup unmounts it and removes the
 * directory), or null after skipping test context t when mounting is not permitted here.
 */
export async function tmpfsFor(t, prefix, size) {
  const base = await fsp.mkdtemp(path.join(os.tmpdir(), prefix));
  const mnt = path.join(base, 'tmpfs');
  const m = await mountTmpfs(mnt, size);
  if (m.skip) {
    t.skip(m.skip);
    await fsp.rm(base, { recursive: true, force: true });
    return null;
  }
  return {
    base,
    mnt,
    async cleanup() {
      await m.unmount();
      await fsp.rm(base, { recursive: true, force: true }).catch(() => {});
    },
  };
}

/** How many segment files (*.seg) process pid has open: recovery opens them one by one, oldest first. */
export function openSegmentFiles(pid) {
  let n = 0;
  let fds;
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return 0;
  }
  for (const fd of fds) {
    try {
      if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`).endsWith('.seg')) n++;
    } catch {
      /* closed meanwhile */
    }
  }
  return n;
}
