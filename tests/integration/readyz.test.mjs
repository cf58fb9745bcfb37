/*
 * readyz.test.mjs: what /readyz answers, and what a probe can leave out.
 *
 * - spool above its high-water mark (Postgres unreachable, so nothing drains): 503 naming the mark and the
 *   figures; ?exclude=spool (what the sidecar's probe asks: its readiness is its pod's, and a full spool
 *   must not take the application out of its Service) answers 200; ?verbose lists each check; an unknown
 *   name in exclude is a 400 naming it, so a typo in a probe shows;
 * - the spool's disk writes failing (an 8 MiB tmpfs a filler file takes): 503 "spool writes failing" with
 *   the error, while ?exclude=spool stays 200; with nothing sent it stays not ready past the 10 s hold
 *   while the disk still lacks a segment's room, and once the filler is deleted it reports ready again
 *   with no request having to succeed first (a replica out of its Service receives none); the next export
 *   is accepted.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { prerequisites, startGateway, freePort, post, waitFor, sleep } from '../lib/harness.mjs';
import { traceRequest, genaiSpan, toProtobuf } from '../lib/otlp.mjs';
import { tmpfsFor } from '../lib/durability.mjs';

const skip = prerequisites({ needPg: false });
const PB = { 'content-type': 'application/x-protobuf' };

/* A request of n spans with about kb KiB of prompt each. */
function bigRequest(n, kb, tag) {
  const spans = Array.from({ length: n }, (_, i) =>
    genaiSpan({ attributes: { 'gen_ai.prompt': `${tag} ${i} ${'the quick brown fox jumps over the lazy dog '.repeat(kb * 23)}` } }));
  return toProtobuf(traceRequest(spans, { service: 'readyz' }));
}

async function readyz(gw, query = '') {
  const r = await fetch(`${gw.adminUrl}/readyz${query}`);
  return { status: r.status, body: await r.text() };
}

describe('/readyz', { skip: skip ?? false }, () => {
  test('spool above high water: 503 with the figures; ?exclude=spool 200; ?verbose; unknown check 400', async () => {
    /* a Postgres nobody listens on: the writer keeps retrying and the spool only fills */
    const dsn = `postgresql://gw@127.0.0.1:${await freePort()}/none`;
    const gw = await startGateway({
      dsn,
      config: { spool: { mode: 'disk', max_bytes: '4MiB', high_water: 0.5, segment_bytes: '256KiB' } },
    });
    try {
      let r = await readyz(gw);
      assert.equal(r.status, 200, r.body);
      assert.equal(r.body, 'ready\n');
      r = await readyz(gw, '?verbose');
      assert.equal(r.status, 200);
      assert.equal(r.body, '[+]receivers ok\n[+]spool ok\nready\n');

      /* past 2 MiB held */
      for (let i = 0; i < 10 && (await readyz(gw)).status === 200; i++) {
        const p = await post(gw, '/v1/traces', bigRequest(20, 16, `hw${i}`), PB);
        assert.equal(p.status, 200, `export ${i} accepted below the cap: ${p.status} ${p.body.toString()}`);
      }
      r = await readyz(gw);
      assert.equal(r.status, 503, r.body);
      assert.match(r.body, /^not ready: spool above high-water mark: [\d.]+ of 4\.0 MiB held \(spool\.high_water 0\.50\)\n$/);

      r = await readyz(gw, '?exclude=spool');
      assert.equal(r.status, 200, 'the sidecar probe leaves the spool out');
      assert.equal(r.body, 'ready\n');
      r = await readyz(gw, '?verbose&exclude=spool');
      assert.equal(r.status, 200);
      assert.equal(r.body, '[+]receivers ok\n[+]spool excluded\nready\n');
      r = await readyz(gw, '?verbose');
      assert.equal(r.status, 503);
      assert.match(r.body, /^\[\+\]receivers ok\n\[-\]spool failed: spool above high-water mark: .*\nnot ready\n$/);
      r = await readyz(gw, '?exclude=receivers,spool');
      assert.equal(r.status, 200, 'comma-separated names');
      r = await readyz(gw, '?exclude=receivers&exclude=spool');
      assert.equal(r.status, 200, 'repeated exclude');

      r = await readyz(gw, '?exclude=spol');
      assert.equal(r.status, 400);
      assert.equal(r.body, "unknown check in exclude: 'spol' (checks: receivers, spool)\n");
      /* the liveness probe is unaffected */
      assert.equal((await fetch(`${gw.adminUrl}/healthz`)).status, 200);
    } finally {
      await gw.cleanup();
    }
  });

  test('spool writes failing: 503 naming the error, held while the disk lacks room, ready once space returns', { timeout: 120_000 }, async (t) => {
    const fs8 = await tmpfsFor(t, 'gw-it-readyz-', '8m');
    if (!fs8) return;
    const { mnt } = fs8;
    let gw;
    try {
      const filler = path.join(mnt, 'filler');
      await fsp.writeFile(filler, Buffer.alloc(6 * 1024 * 1024, 1));
      /* no Postgres: entries are let go once durable, so only the disk's room limits the spool */
      gw = await startGateway({
        spoolDir: path.join(mnt, 'spool'),
        config: { spool: { mode: 'disk', max_bytes: '64MiB', segment_bytes: '256KiB' } },
      });
      assert.equal((await readyz(gw)).status, 200);
      /* requests larger than a segment each get a new one: with under 2 MiB free the disk fills at once */
      await fsp.writeFile(path.join(mnt, 'filler2'), Buffer.alloc(1536 * 1024, 1)).catch(() => {});
      let refused = null;
      for (let i = 0; i < 20 && !refused; i++) {
        const p = await post(gw, '/v1/traces', bigRequest(20, 16, `full${i}`), PB);
        if (p.status !== 200) refused = p;
      }
      assert.ok(refused, 'an export is refused once the disk is full');
      assert.ok([429, 503].includes(refused.status), `backpressure status: ${refused.status}`);

      let r = await readyz(gw);
      assert.equal(r.status, 503, r.body);
      assert.match(r.body, /^not ready: spool writes failing: spool disk full \(.*No space left on device\): retry later\n$/);
      assert.equal((await readyz(gw, '?exclude=spool')).status, 200, 'the sidecar probe leaves the spool out');

      /* nothing sent, the disk still full: still not ready past the 10 s hold */
      await sleep(11_000);
      r = await readyz(gw);
      assert.equal(r.status, 503, `held while the disk lacks a segment's room: ${r.body}`);

      /* space returns: ready again with no request sent (the hold is over and the disk has room) */
      await fsp.rm(filler);
      await waitFor(async () => (await readyz(gw)).status === 200, { timeoutMs: 5000, what: '/readyz 200 once space returns' });
      const p = await post(gw, '/v1/traces', bigRequest(5, 4, 'after'), PB);
      assert.equal(p.status, 200, 'accepted once space returns');
      { const rz = await readyz(gw); assert.equal(rz.status, 200, rz.body); }
    } finally {
      await gw?.cleanup();
      await fs8.cleanup();
    }
  });
});
