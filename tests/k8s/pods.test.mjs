/*
 * pods.test.mjs: the checked-in manifests in real pods, with `podman kube play` after the preparation
 * tests/lib/kube.mjs describes (what podman 4.3 does differently from Kubernetes). The app container
 * runs a real OpenTelemetry JS SDK (tests/k8s/app/otel-app.mjs) sending to 127.0.0.1 in its pod; the
 * gateway runs from the test image (tests/lib/podman.mjs) and writes the test PostgreSQL, which the pods
 * reach because they share the host's network (each gateway on free ports).
 *
 * deploy/k8s/sidecar.yaml (native sidecar, direct to Postgres):
 *  - the app's acknowledged spans are rows, once each, redacted; the gateway runs as 10001 with a
 *    read-only root;
 *  - the gateway container killed (SIGKILL) under load is restarted in its pod and loses nothing it
 *    acknowledged (its disk spool is on the pod's emptyDir);
 *  - the pod stopped as the kubelet stops it (SIGTERM to every container, SIGKILL after
 *    terminationGracePeriodSeconds), then `podman kube down`, under load loses nothing acknowledged.
 * deploy/k8s/tier.yaml (forwarding sidecar -> tier -> Postgres; the tier a StatefulSet with receivers.auth
 * on, the sidecar sending the Secret's forward-token from its mounted file):
 *  - the tier refuses a request without a token; the sidecar's are accepted (none refused);
 *  - the tier pod rescheduled: killed (SIGKILL, as a lost node) while Postgres is held back, removed, and
 *    played again from the StatefulSet's pod template with the same claim (gw-spool-<name>-0, a podman
 *    named volume that outlives the pod, as a PersistentVolume does): it finds its spool and stores what
 *    it had acknowledged to the sidecar;
 *  - every span the app made is a row once and counted once in the rollups, after the app pod is stopped
 *    (SIGTERM) under load.
 * Fixed-time: about 2 s of load per step.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { prerequisites, createDatabase, waitFor, sleep, REPO, parseMetrics, metric } from '../lib/harness.mjs';
import { podman, podmanPrerequisites, uniqueName, buildGatewayImage, buildAppImage, removeImage } from '../lib/podman.mjs';
import { prepareForPodman, kubePlay, containerLogs } from '../lib/kube.mjs';

const skip = prerequisites() ?? (await podmanPrerequisites());
if (skip) console.error(`pods.test.mjs: SKIPPED: ${skip}`);

/** The "trace:span" ids the app saw acknowledged (its ACK file). */
function acked(file) {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith('ACK ')).flatMap((l) => l.slice(4).split(' '));
}

/** Ids of acked spans with no row, or with more than one. */
async function missingOrTwice(db, ids) {
  const traces = [...new Set(ids.map((i) => i.split(':')[0]))];
  const r = await db.query('SELECT trace_id, span_id, count(*)::int AS n FROM ai_interaction_traces WHERE trace_id = ANY($1) GROUP BY 1, 2', [traces]);
  const have = new Map(r.rows.map((x) => [`${x.trace_id}:${x.span_id}`, x.n]));
  return { missing: ids.filter((i) => !have.has(i)), twice: ids.filter((i) => (have.get(i) ?? 0) > 1) };
}

async function httpStatus(url) {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(2000) })).status;
  } catch {
    return 0;
  }
}

/* Block inserts into ai_interaction_traces until release() (a lock held by an open transaction). */
async function holdWrites(db) {
  const c = await db.pool.connect();
  await c.query('BEGIN');
  await c.query('LOCK TABLE ai_interaction_traces IN EXCLUSIVE MODE');
  return {
    async release() {
      await c.query('COMMIT');
      c.release();
    },
  };
}

async function metricsOf(port) {
  const r = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) });
  return parseMetrics(await r.text());
}

async function gatewayPid(name) {
  return Number((await podman(['inspect', '--format', '{{.State.Pid}}', name])).stdout.trim());
}

describe('pods from deploy/k8s', { skip: skip ?? false }, () => {
  const gwImage = `localhost/${uniqueName('genai-gateway-pod-test')}:test`;
  const appImage = `localhost/${uniqueName('genai-gateway-pod-app')}:test`;
  let db;
  let ackDir;

  before(async () => {
    db = await createDatabase();
    await Promise.all([buildGatewayImage(gwImage), buildAppImage(appImage)]);
    ackDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'gw-pod-acks-'));
    await fsp.chmod(ackDir, 0o777);
  });

  after(async () => {
    await removeImage(gwImage);
    await removeImage(appImage);
    if (ackDir) await fsp.rm(ackDir, { recursive: true, force: true });
    await db?.drop();
  });

  describe('sidecar.yaml: app + native sidecar writing Postgres', () => {
    let prep;
    let pod;
    const service = uniqueName('pod-sidecar');

    before(async () => {
      prep = await prepareForPodman(fs.readFileSync(path.join(REPO, 'deploy/k8s/sidecar.yaml'), 'utf8'), {
        suffix: uniqueName('t'), gatewayImage: gwImage, appImage, ackDir,
        secretValues: { 'database-url': db.dsn }, appEnv: { APP_SERVICE: service, APP_RATE: '200' },
      });
      pod = prep.pods.find((p) => p.role === 'app');
      await kubePlay(prep);
    });

    after(async () => {
      await prep?.cleanup();
    });

    test('the app\'s acknowledged spans are rows, once each, redacted; the gateway is non-root on a read-only root', async () => {
      const admin = `http://127.0.0.1:${pod.ports.admin}`;
      await waitFor(async () => (await httpStatus(`${admin}/readyz`)) === 200, { timeoutMs: 30000, what: '/readyz' }).catch(async (e) => {
        throw new Error(`${e.message}\n${await containerLogs(pod.gateway)}`);
      });
      assert.equal(await httpStatus(`${admin}/healthz`), 200);
      await waitFor(() => acked(pod.ackFile).length >= 200, { timeoutMs: 30000, what: '200 acknowledged spans' }).catch(async (e) => {
        throw new Error(`${e.message}\napp:\n${await containerLogs(pod.app)}\ngateway:\n${await containerLogs(pod.gateway)}`);
      });
      const ids = acked(pod.ackFile);
      await waitFor(async () => (await missingOrTwice(db, ids)).missing.length === 0, { timeoutMs: 20000, what: 'rows for the acked spans' });
      assert.deepEqual((await missingOrTwice(db, ids)).twice, []);
      const [t, s] = ids[0].split(':');
      const row = (await db.query('SELECT service_name, prompt_content, total_cost_usd, redaction_count FROM ai_interaction_traces WHERE trace_id = $1 AND span_id = $2', [t, s])).rows[0];
      assert.equal(row.service_name, service);
      assert.doesNotMatch(row.prompt_content, /carol@example\.com/);
      assert.ok(row.redaction_count >= 1 && Number(row.total_cost_usd) > 0);

      const pid = await gatewayPid(pod.gateway);
      const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      assert.match(status, /^Uid:\s+10001\s+10001\s+10001\s+10001$/m);
      assert.match(status, /^CapEff:\s+0+$/m);
      const root = fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n').find((l) => l.split(' ')[4] === '/');
      assert.match(root.split(' ')[5], /(^|,)ro(,|$)/);
      const rss = Number(/VmRSS:\s+(\d+)/.exec(status)[1]) / 1024;
      const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)[1]) / 1024;
      console.error(`pods.test.mjs: sidecar gateway at ${Number(200)} spans/s: RSS ${rss.toFixed(1)} MiB, peak ${hwm.toFixed(1)} MiB`);
    });

    test('the gateway container killed in the pod comes back and loses nothing acknowledged', async () => {
      /* Postgres held back first, so what the gateway acknowledges from now on is in its spool only */
      const lock = await holdWrites(db);
      const before = acked(pod.ackFile).length;
      await waitFor(() => acked(pod.ackFile).length >= before + 100, { timeoutMs: 20000, what: 'acks while Postgres waits' });
      const pid = await gatewayPid(pod.gateway);
      process.kill(pid, 'SIGKILL');
      await lock.release();
      await waitFor(async () => {
        const p = await gatewayPid(pod.gateway).catch(() => 0);
        return p && p !== pid && (await httpStatus(`http://127.0.0.1:${pod.ports.admin}/readyz`)) === 200;
      }, { timeoutMs: 30000, what: 'the gateway container restarted by its pod' });
      const restarts = Number((await podman(['inspect', '--format', '{{.RestartCount}}', pod.gateway])).stdout.trim());
      assert.ok(restarts >= 1, `restart count ${restarts}`);
      await waitFor(() => acked(pod.ackFile).length >= before + 200, { timeoutMs: 30000, what: 'the app acknowledged again' });
      const ids = acked(pod.ackFile);
      await waitFor(async () => (await missingOrTwice(db, ids)).missing.length === 0, { timeoutMs: 30000, what: 'every acked span stored' })
        .catch(async (e) => {
          const { missing } = await missingOrTwice(db, ids);
          throw new Error(`${e.message}: ${missing.length} of ${ids.length} missing\n${await containerLogs(pod.gateway)}`);
        });
      assert.deepEqual((await missingOrTwice(db, ids)).twice, []);
      const logs = await containerLogs(pod.gateway);
      assert.match(logs, /recover|replay|spool/i, 'the restarted gateway opened its spool');
    });

    test('the pod stopped (SIGTERM, then kube down) under load loses nothing acknowledged', async () => {
      /* Postgres held back until a second after SIGTERM: the drain has work to do */
      const lock = await holdWrites(db);
      const before = acked(pod.ackFile).length;
      await waitFor(() => acked(pod.ackFile).length >= before + 100, { timeoutMs: 20000, what: 'acks while Postgres waits' });
      /* What the kubelet does: SIGTERM to every container, SIGKILL after terminationGracePeriodSeconds.
       * podman 4.3's `kube down` does not (tests/lib/kube.mjs, item 8): `pod stop` with the grace does. */
      const grace = pod.spec.terminationGracePeriodSeconds;
      const down = podman(['pod', 'stop', '-t', String(grace), pod.pod], { timeoutMs: (grace + 30) * 1000 });
      await sleep(1000);
      await lock.release();
      await down;
      const code = (await podman(['inspect', '--format', '{{.State.ExitCode}}', pod.gateway])).stdout.trim();
      const logs = await containerLogs(pod.gateway);
      assert.equal(code, '0', `the gateway drained and exited 0 within the grace; its log:\n${logs.slice(-3000)}`);
      assert.match(logs, /signal 15: stopping/);
      await podman(['kube', 'down', prep.file], { timeoutMs: 120000 });
      const ids = acked(pod.ackFile);
      const { missing, twice } = await missingOrTwice(db, ids);
      assert.deepEqual({ missing: missing.length, twice: twice.length }, { missing: 0, twice: 0 }, `of ${ids.length} acknowledged`);
    });
  });

  describe('tier.yaml: app + forwarding sidecar -> tier (StatefulSet, auth) -> Postgres', () => {
    let prep;
    let app;
    let tier;
    const service = uniqueName('pod-tier');

    before(async () => {
      prep = await prepareForPodman(fs.readFileSync(path.join(REPO, 'deploy/k8s/tier.yaml'), 'utf8'), {
        suffix: uniqueName('t'), gatewayImage: gwImage, appImage, ackDir,
        secretValues: { 'database-url': db.dsn }, appEnv: { APP_SERVICE: service, APP_RATE: '200' },
      });
      app = prep.pods.find((p) => p.role === 'app');
      tier = prep.pods.find((p) => p.role === 'tier');
      assert.ok(app && tier);
      assert.equal(prep.claims.length, 1, 'the StatefulSet\'s spool claim');
      await kubePlay(prep);
    });

    after(async () => {
      await prep?.cleanup();
    });

    const ready = async (p) => waitFor(async () => (await httpStatus(`http://127.0.0.1:${p.ports.admin}/readyz`)) === 200, { timeoutMs: 30000, what: `${p.role} /readyz` })
      .catch(async (e) => { throw new Error(`${e.message}\n${await containerLogs(p.gateway)}`); });

    test('the tier takes only requests with a token; the sidecar sends the Secret\'s forward token', async () => {
      for (const p of [tier, app]) await ready(p);
      const none = await fetch(`http://127.0.0.1:${tier.ports.http}/v1/traces`, {
        method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: Buffer.alloc(0), signal: AbortSignal.timeout(5000),
      });
      assert.equal(none.status, 401);
      await waitFor(() => acked(app.ackFile).length >= 100, { timeoutMs: 30000, what: '100 acknowledged spans' });
      await waitFor(async () => metric(await metricsOf(app.ports.admin), 'genai_gateway_exporter_spans_sent_total', { exporter: 'otlp', signal: 'traces' }) >= 100,
        { timeoutMs: 30000, what: 'the sidecar to deliver 100 spans to the tier' }).catch(async (e) => {
        throw new Error(`${e.message}\nsidecar:\n${(await containerLogs(app.gateway)).slice(-3000)}`);
      });
      const m = await metricsOf(app.ports.admin);
      assert.equal(metric(m, 'genai_gateway_exporter_auth_failures_total', { exporter: 'otlp' }), 0, 'the tier accepted the sidecar\'s token');
      assert.ok(fs.readFileSync(prep.secretFiles['gw-forward-token'].token, 'utf8').trim().length >= 16);
    });

    test('the tier pod rescheduled finds its StatefulSet claim and stores what it had acknowledged', async () => {
      /* Postgres held back: what the tier acknowledges from now on is in its spool only */
      const lock = await holdWrites(db);
      let released = false;
      try {
        const accepted = async () => metric(await metricsOf(tier.ports.admin), 'genai_gateway_spans_accepted_total');
        const a0 = await accepted();
        await waitFor(async () => (await accepted()) >= a0 + 100, { timeoutMs: 30000, what: 'the tier to acknowledge 100 spans it cannot store yet' });
        /* a lost node: the pod killed, then removed; its claim stays */
        await podman(['pod', 'kill', tier.pod]);
        await podman(['pod', 'rm', '-f', tier.pod]);
        await lock.release();
        released = true;
        assert.equal((await podman(['volume', 'exists', prep.claims[0]], { allowFail: true })).failed, undefined, 'the claim outlives the pod');
        /* rescheduled: the same pod template and claim, played again */
        await podman(['kube', 'play', prep.podFiles.tier], { timeoutMs: 180000 });
        await ready(tier);
        /* (the tier logs at warn in these values: the count is read from its metrics) */
        const recovered = metric(await metricsOf(tier.ports.admin), 'genai_gateway_spool_recovered_entries_total');
        assert.ok(recovered >= 1, `the new tier pod found the spool of the one before (${recovered} entries recovered)`);
      } finally {
        if (!released) await lock.release();
      }
    });

    test('every span the app made lands once, through the forwarding sidecar and the tier', async () => {
      for (const p of [tier, app]) await ready(p);
      await waitFor(() => acked(app.ackFile).length >= 300, { timeoutMs: 30000, what: '300 acknowledged spans' }).catch(async (e) => {
        throw new Error(`${e.message}\napp:\n${await containerLogs(app.app)}\nsidecar:\n${await containerLogs(app.gateway)}\ntier:\n${await containerLogs(tier.gateway)}`);
      });
      /* the app pod goes away under load (SIGTERM, as a rollout does; see above); the tier stays */
      const grace = app.spec.terminationGracePeriodSeconds;
      await podman(['pod', 'stop', '-t', String(grace), app.pod], { timeoutMs: (grace + 30) * 1000 });
      assert.equal((await podman(['inspect', '--format', '{{.State.ExitCode}}', app.gateway])).stdout.trim(), '0');
      const appLog = await containerLogs(app.app);
      const made = Number(/DONE (\d+)/.exec(appLog)?.[1]);
      assert.ok(made > 0, appLog.slice(-2000));
      /* the sidecar handed everything to the tier before it exited; the tier, still up, stores it */
      const ids = acked(app.ackFile);
      await waitFor(async () => (await missingOrTwice(db, ids)).missing.length === 0, { timeoutMs: 20000, what: 'every acked span stored by the tier' })
        .catch(async (e) => {
          throw new Error(`${e.message}\nsidecar:\n${(await containerLogs(app.gateway)).slice(-3000)}\ntier:\n${(await containerLogs(tier.gateway)).slice(-3000)}`);
        });
      const { twice } = await missingOrTwice(db, ids);
      assert.equal(twice.length, 0);
      assert.doesNotMatch(await containerLogs(app.gateway), /had not finished/, 'the sidecar delivered everything within its grace');
      const count = async () => (await db.query('SELECT count(*)::int AS n FROM ai_interaction_traces WHERE service_name = $1', [service])).rows[0].n;
      await sleep(1000);
      const rows = await count();
      assert.ok(rows >= ids.length && rows <= made, `rows ${rows}, acknowledged ${ids.length}, made ${made}`);
      const roll = await db.query('SELECT sum(total_requests)::int AS n FROM trace_metrics_hourly WHERE service_name = $1', [service]);
      assert.equal(roll.rows[0].n, rows, 'each row counted once in the rollups');
      const sidecarEnv = app.spec.containers.find((c) => c.name === 'genai-gateway').env.map((e) => e.name);
      assert.ok(!sidecarEnv.includes('DATABASE_URL'), 'the forwarding sidecar has no database');
    });
  });
});
