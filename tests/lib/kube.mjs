/*
 * kube.mjs: run the checked-in manifests (deploy/k8s/*.yaml) with `podman kube play`, after the one
 * preparation step below for what podman 4.3 does differently from Kubernetes
 * (../shared/K8S-TESTING.md). `prepareForPodman` is that step; every change it makes is listed here:
 *
 *  1. Secrets: a `kind: Secret` is stored wrongly by podman, so each becomes a podman secret (JSON of
 *     base64 values, unique name) and the document is dropped; env secretKeyRefs point at it. The test
 *     fills in the values a user would (DATABASE_URL); env entries naming keys the Secret lacks are
 *     dropped, as Kubernetes leaves an optional missing key unset. A Secret volume (the token files)
 *     crashes podman 4.3: it becomes a hostPath directory holding the same items as files (key -> path,
 *     the Secret's values), which the test can rewrite as the kubelet rewrites a rotated Secret.
 *  2. Service, HorizontalPodAutoscaler, PodDisruptionBudget and PodMonitor are dropped: no API server.
 *  3. A native sidecar (initContainers with restartPolicy Always) runs as an ordinary init container in
 *     podman and hangs: it moves to containers (start order is then not guaranteed; the app's OTel SDK
 *     retries).
 *  4. ports are dropped (podman publishes them on the host); the probes are dropped (podman ignores
 *     readiness and startup probes and runs a liveness httpGet as a healthcheck needing curl, which the
 *     image does not have): the test polls /healthz and /readyz itself.
 *  5. Network: the pods get hostNetwork, so they reach the test PostgreSQL on 127.0.0.1 and several test
 *     runs can share the machine: each gateway's listen addresses come from GENAI_GW_*_ADDR env (free
 *     ports) and the app's OTEL_EXPORTER_OTLP_ENDPOINT and a forwarding sidecar's endpoint follow them.
 *     Inside a pod everything still goes over 127.0.0.1, as in Kubernetes.
 *  6. A StatefulSet (the tier) is not run by podman 4.3's kube play: its pod template is played as a
 *     Deployment's, and each volumeClaimTemplate becomes a persistentVolumeClaim volume of the claim
 *     Kubernetes would bind to replica 0 (gw-spool-<statefulset>-0, plus the unique suffix). podman makes
 *     that claim a named volume that outlives the pod, as a PersistentVolume outlives a rescheduled pod:
 *     the test removes the tier pod and plays it again (`podFiles`) to see it find its spool.
 *     A generic ephemeral volume (the tier's spool with tier.workload Deployment) becomes an emptyDir:
 *     podman has none. Replicas
 *     become 1, and each pod's emptyDir volumes get names of their own: podman makes an emptyDir a volume
 *     named after the pod spec's volume, so every replica, and every pod of the file with a volume of
 *     the same name (the sidecar's and the tier's gw-spool), would share one directory. Found the hard
 *     way: the tier replayed the sidecar's spool segments.
 *  7. Images are the locally built test images; the app container runs tests/k8s/app/otel-app.mjs from a
 *     read-only hostPath mount of tests/. Names get a unique suffix, so tests can run side by side and
 *     clean up by name.
 *  8. Stopping: podman 4.3's `kube down` here kills the containers (the gateway exits 137 and never sees
 *     SIGTERM: measured with `podman wait` and `podman events`), unlike a kubelet. The tests stop a pod
 *     as the kubelet does, `podman pod stop -t <terminationGracePeriodSeconds>` (SIGTERM, then SIGKILL
 *     after the grace), and only then `kube down` to remove it.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { REPO, freePort } from './harness.mjs';
import { podman, removeSecret, removeVolume } from './podman.mjs';

const DROP_KINDS = new Set(['Service', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'PodMonitor']);

function setEnv(c, name, value) {
  c.env = (c.env ?? []).filter((e) => e.name !== name);
  c.env.push({ name, value });
}

/**
 * Prepare manifest text for podman. Options: suffix (unique name suffix), gatewayImage, appImage,
 * secretValues ({ key: value } added to the chart's Secret), appEnv ({ name: value }), gatewayEnv
 * ({ name: value }). Returns { dir, file, podFiles: { role: file }, pods: [{ deployment, pod, ports: {grpc, http,
 * admin}, role }], secretFiles: { volume: { item: host file } }, claims: [volume names],
 * secrets: [names], cleanup() }.
 */
export async function prepareForPodman(text, { suffix, gatewayImage, appImage, secretValues = {}, appEnv = {}, gatewayEnv = {}, ackDir }) {
  const docs = YAML.parseAllDocuments(text).map((d) => d.toJS()).filter(Boolean);
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'gw-kube-'));
  await fsp.chmod(dir, 0o755); /* hostPath volumes below it are read by the gateway's uid */
  const secrets = new Map(); /* chart name -> { podman name, keys, data } */
  const claims = []; /* named volumes standing for StatefulSet claims */
  const configMaps = new Map();
  const out = [];
  for (const d of docs) {
    if (DROP_KINDS.has(d.kind)) continue;
    if (d.kind === 'Secret') {
      const data = { ...(d.stringData ?? {}), ...secretValues };
      const name = `${d.metadata.name}-${suffix}`;
      const json = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(String(v)).toString('base64')]));
      const f = path.join(dir, `${name}.json`);
      await fsp.writeFile(f, JSON.stringify(json));
      await podman(['secret', 'create', name, f]);
      secrets.set(d.metadata.name, { name, keys: new Set(Object.keys(data)), data });
      continue;
    }
    if (d.kind === 'StatefulSet') {
      const sts = d.metadata.name;
      d.kind = 'Deployment';
      const { volumeClaimTemplates: tpls = [], serviceName: _s, podManagementPolicy: _p, persistentVolumeClaimRetentionPolicy: _r, updateStrategy: _u, ...spec } = d.spec;
      d.spec = spec;
      for (const t of tpls) {
        const claimName = `${t.metadata.name}-${sts}-0-${suffix}`;
        claims.push(claimName);
        d.spec.template.spec.volumes.push({ name: t.metadata.name, persistentVolumeClaim: { claimName } });
      }
    }
    if (d.kind === 'ConfigMap') {
      configMaps.set(d.metadata.name, d);
      d.metadata.name = `${d.metadata.name}-${suffix}`;
    }
    out.push(d);
  }
  const pods = [];
  const secretFiles = {}; /* volume name -> { item path -> host file } */
  for (const d of out.filter((o) => o.kind === 'Deployment')) {
    const role = d.metadata.labels?.['app.kubernetes.io/component'];
    d.metadata.name = `${d.metadata.name}-${suffix}`;
    d.spec.replicas = 1;
    const spec = d.spec.template.spec;
    spec.hostNetwork = true;
    const natives = (spec.initContainers ?? []).filter((c) => c.restartPolicy === 'Always');
    spec.initContainers = (spec.initContainers ?? []).filter((c) => c.restartPolicy !== 'Always');
    if (!spec.initContainers.length) delete spec.initContainers;
    for (const c of natives) delete c.restartPolicy;
    spec.containers = [...natives, ...spec.containers];
    const ports = { grpc: await freePort(), http: await freePort(), admin: await freePort() };
    for (const c of spec.containers) {
      delete c.ports;
      delete c.livenessProbe;
      delete c.readinessProbe;
      delete c.startupProbe;
      c.env = (c.env ?? []).filter((e) => {
        const ref = e.valueFrom?.secretKeyRef;
        if (!ref) return true;
        const s = secrets.get(ref.name);
        if (!s || !s.keys.has(ref.key)) return false;
        ref.name = s.name;
        return true;
      });
      if (c.name === 'genai-gateway') {
        c.image = gatewayImage;
        setEnv(c, 'GENAI_GW_GRPC_ADDR', `127.0.0.1:${ports.grpc}`);
        setEnv(c, 'GENAI_GW_HTTP_ADDR', `127.0.0.1:${ports.http}`);
        setEnv(c, 'GENAI_GW_ADMIN_ADDR', `127.0.0.1:${ports.admin}`);
        for (const [k, v] of Object.entries(gatewayEnv)) setEnv(c, k, v);
      } else {
        c.image = appImage;
        c.command = ['/usr/bin/node', '/tests/k8s/app/otel-app.mjs'];
        delete c.args;
        c.env = (c.env ?? []).filter((e) => e.name !== 'OTEL_EXPORTER_OTLP_ENDPOINT');
        setEnv(c, 'OTEL_EXPORTER_OTLP_ENDPOINT', `http://127.0.0.1:${ports.http}`);
        for (const [k, v] of Object.entries(appEnv)) setEnv(c, k, v);
        c.volumeMounts = [...(c.volumeMounts ?? []), { name: 'tests', mountPath: '/tests', readOnly: true }];
        if (ackDir) {
          c.volumeMounts.push({ name: 'acks', mountPath: '/acks' });
          setEnv(c, 'APP_ACK_FILE', `/acks/${d.metadata.name}.acks`);
        }
      }
    }
    const volumes = [];
    for (const v of spec.volumes) {
      if (v.configMap) volumes.push({ ...v, configMap: { ...v.configMap, name: `${v.configMap.name}-${suffix}` } });
      else if (v.ephemeral) volumes.push({ name: v.name, emptyDir: {} });
      else if (v.secret) {
        const s = secrets.get(v.secret.secretName);
        const hostDir = path.join(dir, `secret-${pods.length}-${v.name}`);
        await fsp.mkdir(hostDir, { mode: 0o755 });
        secretFiles[v.name] = {};
        for (const it of v.secret.items ?? [...(s?.keys ?? [])].map((k) => ({ key: k, path: k }))) {
          const f = path.join(hostDir, it.path);
          await fsp.writeFile(f, String(s?.data[it.key] ?? ''), { mode: 0o644 });
          secretFiles[v.name][it.path] = f;
        }
        volumes.push({ name: v.name, hostPath: { path: hostDir, type: 'Directory' } });
      } else volumes.push(v);
    }
    spec.volumes = volumes;
    /* podman names an emptyDir's volume after the pod spec's volume name: two pods of one file with a
     * volume of the same name (the sidecar's and the tier's gw-spool) would share one directory */
    for (const v of spec.volumes.filter((x) => x.emptyDir)) {
      const unique = `${v.name}-${pods.length}-${suffix}`;
      for (const c of spec.containers) for (const m of c.volumeMounts ?? []) if (m.name === v.name) m.name = unique;
      v.name = unique;
    }
    if (spec.containers.some((c) => c.name !== 'genai-gateway')) {
      spec.volumes.push({ name: 'tests', hostPath: { path: path.join(REPO, 'tests'), type: 'Directory' } });
      if (ackDir) spec.volumes.push({ name: 'acks', hostPath: { path: ackDir, type: 'Directory' } });
    }
    /* podman names the pod <deployment>-pod-0 and its containers <pod>-<container> */
    const pod = `${d.metadata.name}-pod-0`;
    pods.push({ deployment: d.metadata.name, pod, gateway: `${pod}-genai-gateway`, app: `${pod}-app`, ports, role, spec,
      ackFile: ackDir ? path.join(ackDir, `${d.metadata.name}.acks`) : null });
  }
  /* A forwarding sidecar sends to the tier's Service: with host networking, the tier pod's HTTP port. */
  const tier = pods.find((p) => p.role === 'tier');
  for (const cm of configMaps.values()) {
    const cfg = YAML.parse(cm.data['gateway.yaml']);
    if (tier && cfg.exporters?.otlp?.endpoint) {
      cfg.exporters.otlp.endpoint = `http://127.0.0.1:${tier.ports.http}`;
      cm.data['gateway.yaml'] = YAML.stringify(cfg);
    }
  }
  const file = path.join(dir, 'pods.yaml');
  await fsp.writeFile(file, out.map((d) => YAML.stringify(d)).join('---\n'));
  /* One file per pod too (its Deployment and the ConfigMaps it mounts), to play a pod again alone */
  const podFiles = {};
  for (const p of pods) {
    const d = out.find((o) => o.kind === 'Deployment' && o.metadata.name === p.deployment);
    const cms = new Set(d.spec.template.spec.volumes.filter((v) => v.configMap).map((v) => v.configMap.name));
    const mine = out.filter((o) => o === d || (o.kind === 'ConfigMap' && cms.has(o.metadata.name)));
    podFiles[p.role] = path.join(dir, `pod-${p.role}.yaml`);
    await fsp.writeFile(podFiles[p.role], mine.map((o) => YAML.stringify(o)).join('---\n'));
  }
  const secretNames = [...secrets.values()].map((s) => s.name);
  return {
    dir,
    file,
    podFiles,
    pods,
    secrets: secretNames,
    secretFiles,
    claims,
    async cleanup() {
      await podman(['kube', 'down', file], { allowFail: true, timeoutMs: 120000 });
      for (const p of pods) await podman(['pod', 'rm', '-f', p.pod], { allowFail: true });
      for (const s of secretNames) await removeSecret(s);
      /* kube play keeps a volume per ConfigMap, named after it, and the claims' volumes */
      for (const cm of configMaps.values()) await removeVolume(cm.metadata.name);
      for (const c of claims) await removeVolume(c);
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}

/** `podman kube play` the prepared file. */
export async function kubePlay(prepared) {
  return podman(['kube', 'play', prepared.file], { timeoutMs: 180000 });
}

/** Names of the volumes podman made for a pod's emptyDirs (podman volume ls by pod is not offered). */
export async function podVolumes(pod) {
  const { stdout } = await podman(['pod', 'inspect', pod]);
  const info = JSON.parse(stdout);
  const p = Array.isArray(info) ? info[0] : info;
  const names = new Set();
  for (const c of p.Containers ?? []) {
    const { stdout: ci } = await podman(['container', 'inspect', c.Name ?? c.Id]);
    for (const m of JSON.parse(ci)[0].Mounts ?? []) if (m.Type === 'volume' && m.Name) names.add(m.Name);
  }
  return [...names];
}

/** stdout+stderr of a container. */
export async function containerLogs(name) {
  const r = await podman(['logs', name], { allowFail: true, timeoutMs: 30000 });
  return `${r.stdout}${r.stderr}`;
}

export const readYaml = (p) => fs.readFileSync(p, 'utf8');
