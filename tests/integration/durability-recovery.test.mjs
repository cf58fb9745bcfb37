/*
 * durability-recovery.test.mjs: issue 11, "Never lose an acknowledged span": the disk spool's own start and
 * its failure paths, and the memory spool's honest failure.
 *
 * - kill -9 during recovery: a backlog of dozens of 1 MiB segments, the gateway killed right after it
 *   starts, at the moment /proc shows it has opened some of the segments but not all (twice), then once
 *   more while the writer catches up, then started for good: every acknowledged span stored exactly once;
 * - a torn last record: kill -9 with unconsumed data, the newest segment cut in the middle of its last
 *   record; on start the record is skipped, logged and counted, and every record before it lands;
 * - disk full: the spool on an 8 MiB tmpfs that a filler file mostly takes: the client gets backpressure,
 *   genai_gateway_spool_write_errors_total{reason="no_space"} rises, nothing acknowledged is lost, and
 *   once the filler is deleted ingestion resumes;
 * - memory spool, Postgres down, SIGTERM: exit status 3 and a warning with the dropped count (what the
 *   memory spool cannot keep, it says it lost).
 *
 * Load phases are a few seconds (the runs were ~40 s; the behaviour under test is the same) and the
 * rates are scaled down for sanitizer builds (tests/lib/durability.mjs, loadScale). The cluster is private
 * to this file, since it is stopped.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import {
  prerequisites, createDatabase, startGateway, startPgCluster, post, waitFor, metric, metricSum, sleep,
} from '../lib/harness.mjs';
import { traceRequest, genaiSpan, toProtobuf } from '../lib/otlp.mjs';
import { startLoad } from '../lib/load-client.mjs';
import { underLoad, assertLanded, scaled, segments, rowCount, storedKeys, tmpfsFor, openSegmentFiles } from '../lib/durability.mjs';

/* Each test waits up to 120 s for the spool to drain; on a loaded 2-core machine the default 120 s
 * per-test timeout of run-node-tests.sh cut them off while they were still progressing. */
const SLOW = { timeout: 300_000 };

const skip = prerequisites({ needPg: false });
const PB = { 'content-type': 'application/x-protobuf' };

describe('durability: recovery and failure paths', { skip: skip ?? false }, () => {
  let cluster;
  before(async () => {
    cluster = await startPgCluster();
  });
  after(async () => {
    await cluster?.destroy();
  });

  test('kill -9 during recovery of a large backlog, and again while the writer catches up: every acknowledged span stored once', SLOW, async () => {
    const rate = scaled(1600);
    /* 1 MiB segments: recovery opens and checks them one after another, which the test can watch */
    const config = { spool: { mode: 'disk', segment_bytes: '1MiB' } };
    await underLoad(cluster, { config, rate, load: { padBytes: 1024 } }, async ({ db, gw, load }) => {
      await load.waitAcked(rate, { timeoutMs: 60000 });
      /* the backlog: 6 s of this load with Postgres away */
      await cluster.stop();
      await load.waitAcked(load.stats().acked + rate * 6, { timeoutMs: 60000 });
      await gw.kill();
      const segs = await segments(gw.spoolDir);
      const backlog = segs.reduce((n, s) => n + s.size, 0);
      assert.ok(segs.length >= 8, `a large backlog on disk (${segs.length} segments, ${backlog} bytes)`);
      await cluster.start();

      /* Killed during recovery: once it has opened some of the segments but not all. A try where recovery
       * is over before a poll sees it in progress still kills it (right after its start) and goes on. */
      const tries = [];
      for (let i = 0; i < 6 && tries.filter((t) => t.during).length < 2; i++) {
        const mark = (gw.logs().match(/recovered \d+ entries/g) ?? []).length;
        await gw.restart({ waitReady: false });
        const pid = gw.pid;
        const t0 = Date.now();
        let open = 0;
        let during = false;
        for (;;) {
          open = openSegmentFiles(pid);
          if (open >= 1 && open < segs.length) {
            during = true;
            break;
          }
          const done = (gw.logs().match(/recovered \d+ entries/g) ?? []).length > mark;
          if (open >= segs.length || done || !gw.alive() || Date.now() - t0 > 30000) break;
          await new Promise((r) => setImmediate(r));
        }
        await gw.kill();
        tries.push({ during, open, ms: Date.now() - t0 });
      }
      /* once more, while the writer works through the backlog */
      await gw.restart({ readyTimeoutMs: 60000 });
      const before = await rowCount(db);
      const goal = before + Math.max(100, rate);
      await gw.killWhen(async () => (await rowCount(db)) >= goal, { timeoutMs: 60000, intervalMs: 20, what: `the writer catching up (${goal} rows)` });

      await gw.restart({ readyTimeoutMs: 60000 });
      await load.waitAcked(load.stats().acked + rate * 2, { timeoutMs: 60000 });
      let recovered;
      const { msg } = await assertLanded(db, gw, load, 'kill -9 during recovery', async () => {
        recovered = metric(await gw.metrics(), 'genai_gateway_spool_recovered_entries_total');
        return `backlog ${segs.length} segments, ${backlog} bytes; kills at start ${JSON.stringify(tries)}; recovered entries (last start) ${recovered}`;
      }, { timeoutMs: 120000 });
      assert.ok(tries.some((t) => t.during), `a kill came during recovery: ${msg}`);
      assert.ok(recovered > 0, `the last start recovered entries: ${msg}`);
      assert.deepEqual(await gw.stop(30000), { code: 0, signal: null });
    });
  });

  test('a torn last record: skipped, logged and counted; every record before it lands', SLOW, async () => {
    const db = await createDatabase(cluster.dsn);
    await cluster.stop(); /* nothing is consumed: every record stays in the spool */
    let gw;
    try {
      gw = await startGateway({ dsn: db.dsn, config: { spool: { mode: 'disk' } }, readyTimeoutMs: 30000 });
      const requests = [];
      for (let i = 0; i < 20; i++) {
        /* the last request is large, so cutting 4 KiB off the file's end leaves it torn, not gone */
        const pad = i === 19 ? { 'app.pad': 'q'.repeat(8000) } : {};
        const spans = Array.from({ length: 10 }, () => genaiSpan({ model: 'gpt-4o-mini', attributes: pad }));
        const r = await post(gw, '/v1/traces', toProtobuf(traceRequest(spans, { service: 'torn' })), PB);
        assert.equal(r.status, 200, 'acknowledged');
        requests.push(spans);
      }
      await gw.kill();
      const segs = await segments(gw.spoolDir);
      assert.ok(segs.length > 0, 'segments on disk');
      const newest = segs[segs.length - 1];
      const cut = 4096;
      assert.ok(newest.size > cut, `newest segment ${newest.name} holds the last record (${newest.size} bytes)`);
      await fsp.truncate(newest.path, newest.size - cut);

      await cluster.start();
      await gw.restart({ readyTimeoutMs: 60000 });
      const expected = requests.slice(0, 19).flat();
      await waitFor(async () => (await rowCount(db)) >= expected.length, { timeoutMs: 60000, intervalMs: 100, what: `${expected.length} rows` });
      /* the writer is past everything recovered: lag 0 */
      await waitFor(async () => metric(await gw.metrics(), 'genai_gateway_spool_lag_entries', { consumer: 'postgres' }) === 0, { timeoutMs: 30000, what: 'writer caught up' });
      const rows = await storedKeys(db);
      const missing = expected.filter((s) => !rows.has(`${s.traceId} ${s.spanId}`));
      assert.deepEqual(missing.map((s) => s.spanId), [], 'every record before the torn one is stored');
      assert.equal(requests[19].filter((s) => rows.has(`${s.traceId} ${s.spanId}`)).length, 0, 'the torn record is not stored in part');
      assert.equal(rows.size, expected.length);
      for (const n of rows.values()) assert.equal(n, 1, 'no duplicates');

      const m = await gw.metrics();
      assert.equal(metric(m, 'genai_gateway_spool_corrupt_records_total'), 1, 'one corrupt record counted');
      assert.ok(metric(m, 'genai_gateway_spool_corrupt_bytes_total') > 0, 'its bytes counted');
      assert.equal(metric(m, 'genai_gateway_spool_recovered_entries_total'), 19, 'the 19 whole records recovered');
      assert.match(gw.logs(), /level=(warn|error)[^\n]*(corrupt|torn|truncat|crc)/i, 'the skipped tail is logged');
      assert.deepEqual(await gw.stop(30000), { code: 0, signal: null });
    } finally {
      await cluster.start().catch(() => {});
      await gw?.cleanup();
      await db.drop();
    }
  });

  test('disk full: backpressure, a no_space write error counted, nothing acknowledged lost; ingestion resumes when space returns', SLOW, async (t) => {
    const fs8 = await tmpfsFor(t, 'gw-it-full-', '8m');
    if (!fs8) return;
    const { base, mnt } = fs8;
    const db = await createDatabase(cluster.dsn);
    let gw;
    let load;
    try {
      /* 5 of the 8 MiB taken by a file of ours: the spool (cap 64 MiB) hits ENOSPC long before its cap */
      const filler = path.join(mnt, 'filler');
      await fsp.writeFile(filler, Buffer.alloc(5 * 1024 * 1024, 1));
      gw = await startGateway({
        dsn: db.dsn,
        spoolDir: path.join(mnt, 'spool'),
        config: { spool: { mode: 'disk', max_bytes: '64MiB', segment_bytes: '256KiB' } },
        readyTimeoutMs: 30000,
      });
      const rate = scaled(400);
      load = startLoad({ httpUrl: gw.httpUrl, rate, padBytes: 2048, ackLog: path.join(base, 'acked.log') });
      await load.waitAcked(rate, { timeoutMs: 60000 });
      await cluster.stop();
      const noSpace = async () => metric(await gw.metrics(), 'genai_gateway_spool_write_errors_total', { reason: 'no_space' });
      await waitFor(async () => (await noSpace()) > 0, { timeoutMs: 60000, what: 'a no_space write error' });
      await load.waitFor((s) => (s.statuses['429'] ?? 0) + (s.statuses['503'] ?? 0) > 0, { timeoutMs: 30000, what: 'backpressure seen by the client' });
      assert.ok(gw.alive(), 'a full disk does not stop the gateway');

      /* space returns: ingestion resumes (with Postgres still down, so it is the freed space that is used) */
      const before = load.stats().acked;
      await fsp.rm(filler);
      await load.waitAcked(before + rate, { timeoutMs: 60000 });

      await cluster.start();
      await load.waitAcked(load.stats().acked + rate * 2, { timeoutMs: 60000 });
      await assertLanded(db, gw, load, 'disk full', async () => `no_space errors ${await noSpace()}`, { timeoutMs: 120000 });
      assert.deepEqual(await gw.stop(30000), { code: 0, signal: null });
    } finally {
      await load?.kill();
      await cluster.start().catch(() => {});
      await gw?.cleanup();
      await db.drop();
      await fs8.cleanup();
    }
  });

  test('memory spool, Postgres down, SIGTERM: exit status 3 and a warning with the dropped count', SLOW, async () => {
    const rate = scaled(400);
    await underLoad(cluster, { config: { spool: { mode: 'memory' }, shutdown_grace_ms: 2000 }, rate }, async ({ db, gw, load }) => {
      await load.waitAcked(rate, { timeoutMs: 60000 });
      await cluster.stop();
      await load.waitAcked(load.stats().acked + rate * 2, { timeoutMs: 60000 });
      await load.stop({ drainMs: 30000 }); /* nothing in flight at the SIGTERM: the count is exact */
      const exit = await gw.stop(30000);
      assert.deepEqual(exit, { code: 3, signal: null }, `exit status 3 when acknowledged spans are dropped; log:\n${gw.logs().slice(-3000)}`);
      await cluster.start();
      const rows = await storedKeys(db);
      let dropped = 0;
      for (const k of load.acked().keys()) if (!rows.has(k)) dropped++;
      assert.ok(dropped > 0, 'acknowledged spans were still in memory at the SIGTERM');
      const warn = gw.logs().split('\n').filter((l) => /level=warn/.test(l) && new RegExp(`\\b${dropped}\\b`).test(l));
      assert.ok(warn.length > 0, `a warning names the ${dropped} dropped spans; log:\n${gw.logs().slice(-3000)}`);
    });
  });
});
