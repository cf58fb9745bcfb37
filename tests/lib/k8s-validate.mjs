/*
 * k8s-validate.mjs: offline validation of Kubernetes objects (no API server here).
 *
 * - Schema: kubernetes-models@4 (the Kubernetes OpenAPI schemas compiled to validators): types, required
 *   fields, enums, quantities.
 * - Unknown keys: those validators accept any extra property, so a misspelled field (`livenesProbe`)
 *   would pass. The package's TypeScript declarations list every field of every type; they are read here
 *   into { type name -> { field -> type } } and every object is walked against them.
 * Custom resources (monitoring.coreos.com PodMonitor) are checked against the few fields we use.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const MODELS = path.dirname(require.resolve('kubernetes-models/package.json'));
const APIMACHINERY = path.dirname(require.resolve('@kubernetes-models/apimachinery/package.json'));

let TYPES = null;

function walkDts(dir, out) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walkDts(p, out);
    else if (e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/* { fullName: { field: typeText } } from every `export interface IX { "f"?: T; }` + `export { IX as IFull }`. */
function loadTypes() {
  if (TYPES) return TYPES;
  TYPES = new Map();
  for (const file of [...walkDts(MODELS, []), ...walkDts(APIMACHINERY, [])]) {
    const text = fs.readFileSync(file, 'utf8');
    const aliases = new Map([...text.matchAll(/export \{ (I\w+) as (I\w+)/g)].map((m) => [m[1], m[2]]));
    for (const m of text.matchAll(/^export interface (I\w+)[^{]*\{\n([\s\S]*?)^\}/gm)) {
      const fields = {};
      for (const f of m[2].matchAll(/^ {4}"([^"]+)"\??: ([^\n]*)$/gm)) fields[f[1]] = f[2].replace(/;$/, '');
      TYPES.set(aliases.get(m[1]) ?? m[1], fields);
      TYPES.set(`${path.relative(MODELS, file)}#${m[1]}`, fields);
    }
  }
  return TYPES;
}

function unknownKeys(value, typeName, at, out) {
  const types = loadTypes();
  const fields = types.get(typeName);
  if (!fields || value === null || typeof value !== 'object' || Array.isArray(value)) return;
  for (const [k, v] of Object.entries(value)) {
    if (!(k in fields)) {
      out.push(`${at}.${k}: not a field of ${typeName.replace(/^IIoK8s(Api|ApimachineryPkgApis)?/, '')}`);
      continue;
    }
    const t = fields[k];
    let m = /^(IIoK8s\w+)$/.exec(t);
    if (m) unknownKeys(v, m[1], `${at}.${k}`, out);
    m = /^Array<(IIoK8s\w+)>$/.exec(t);
    if (m && Array.isArray(v)) v.forEach((x, i) => unknownKeys(x, m[1], `${at}.${k}[${i}]`, out));
  }
}

/* The model module of apiVersion/kind: kubernetes-models/<group>/<version>/<Kind>. */
function modelPath(apiVersion, kind) {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : [null, apiVersion];
  return group ? `${group}/${version}/${kind}` : `${version}/${kind}`;
}

const POD_MONITOR_FIELDS = {
  root: ['apiVersion', 'kind', 'metadata', 'spec'],
  spec: ['selector', 'podMetricsEndpoints', 'namespaceSelector', 'jobLabel'],
  endpoint: ['port', 'path', 'interval', 'scheme', 'scrapeTimeout'],
};

/**
 * Problems with one object (an empty list when it is valid): schema errors and unknown keys, each as
 * "<kind>/<name> <path>: <reason>".
 */
export async function validateObject(obj) {
  const id = `${obj?.kind}/${obj?.metadata?.name}`;
  if (!obj || typeof obj !== 'object') return [`${id}: not an object`];
  if (obj.apiVersion === 'monitoring.coreos.com/v1' && obj.kind === 'PodMonitor') {
    const out = [];
    for (const k of Object.keys(obj)) if (!POD_MONITOR_FIELDS.root.includes(k)) out.push(`${id} .${k}: unknown`);
    for (const k of Object.keys(obj.spec ?? {})) if (!POD_MONITOR_FIELDS.spec.includes(k)) out.push(`${id} .spec.${k}: unknown`);
    for (const e of obj.spec?.podMetricsEndpoints ?? []) {
      for (const k of Object.keys(e)) if (!POD_MONITOR_FIELDS.endpoint.includes(k)) out.push(`${id} endpoint .${k}: unknown`);
    }
    if (!obj.spec?.selector || !obj.spec?.podMetricsEndpoints?.length) out.push(`${id}: needs spec.selector and podMetricsEndpoints`);
    return out;
  }
  const rel = modelPath(obj.apiVersion ?? '', obj.kind ?? '');
  let mod;
  try {
    mod = require(`kubernetes-models/${rel}`);
  } catch {
    return [`${id}: unknown apiVersion/kind ${obj.apiVersion} ${obj.kind}`];
  }
  const out = [];
  try {
    new mod[obj.kind](obj).validate();
  } catch (e) {
    out.push(`${id}: ${e.message}`);
  }
  const typeKey = `${rel}.d.ts#I${obj.kind}`;
  if (!loadTypes().has(typeKey)) out.push(`${id}: no type declarations at ${typeKey}`);
  else unknownKeys(obj, typeKey, id, out);
  return out;
}
