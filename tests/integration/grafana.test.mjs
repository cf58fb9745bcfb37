/*
 * grafana.test.mjs: every SQL query of deploy/grafana (dashboard panels, template variables, alert
 * rules) runs against the real schema filled by the real pipeline and returns the right columns and
 * values.
 *
 * How: a gateway (real binary, fresh database, migrations applied by it) receives hand-built OTLP spans
 * spread over four UTC hours (services, providers, priced/unpriced/reported-cost models, errors, finish
 * reasons, users, sessions, durations chosen to land in known histogram buckets, a prompt with an email
 * address, agents, workflows, prompt versions, traces of several calls, a prompt repeated within the
 * last hour), so both the raw rows and the hourly rollups come from the writer. Each query is then expanded
 * the way Grafana does (tests/lib/grafana.mjs) for a time range and a choice of variable values, run,
 * and compared cell by cell with an oracle computed here from the seed list alone: the oracles know the
 * price table, the histogram boundaries and the quantile rule, not the SQL. Three choices are run (all,
 * a filtered one with a quoted user name, a narrow range starting and ending mid-hour); the alert rules
 * are evaluated at two instants, down to which series fire. Some deliberately broken queries must fail
 * the same check, and a coverage test fails when a panel, a variable or a rule has no oracle (or an
 * oracle no query).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import pg from 'pg';
import { prerequisites, createDatabase, startGateway, post, waitFor, waitForRows, pgClientConfig, REPO } from '../lib/harness.mjs';
import { span, traceRequest, toProtobuf, randomTraceId } from '../lib/otlp.mjs';
import {
  ALL_VALUE, allPanels, dashboardQueries, expandMacros, expandQuery, interpolateVariables, toSeries, reduceSeries, threshold, fieldKind,
  provisionFolders, interpolateLink,
} from '../lib/grafana.mjs';

const PB = { 'content-type': 'application/x-protobuf' };
const skip = prerequisites();
const GRAFANA = path.join(REPO, 'deploy', 'grafana');
const DASH_DIR = path.join(GRAFANA, 'dashboards');
const DS_FILE = path.join(GRAFANA, 'provisioning', 'datasources', 'genai-gateway.yaml');
const PROVIDER_FILE = path.join(GRAFANA, 'provisioning', 'dashboards', 'genai-gateway.yaml');
const ALERT_FILE = path.join(GRAFANA, 'provisioning', 'alerting', 'genai-gateway-alerts.yaml');
const READER_FILE = path.join(GRAFANA, 'grafana-reader.sql');

const readYaml = (f) => YAML.parse(fs.readFileSync(f, 'utf8'), { uniqueKeys: true, prettyErrors: true });
/* The dashboards over the gateway's PostgreSQL; the operations dashboard reads Prometheus and has its
 * own test (grafana-ops.test.mjs). */
const dashboards = fs.readdirSync(DASH_DIR).filter((f) => f.endsWith('.json')).sort()
  .map((f) => ({ file: f, json: JSON.parse(fs.readFileSync(path.join(DASH_DIR, f), 'utf8')) }))
  .filter((d) => !JSON.stringify(d.json).includes('"type":"prometheus"'));
const DS_UID = readYaml(DS_FILE).datasources[0].uid;

/* ---------------- seeds ---------------- */

const H = 3600e3;
const M = 60e3;
const NOW = Date.now();
const H0 = Math.floor(NOW / H) * H - 3 * H; /* hours H0 .. H0+2h hold the data; H0-5h one old span */
const EMAIL = 'dana.lee@example.org';
const PRICES = { 'graf-large': [10, 30], 'graf-small': [1, 2] }; /* USD per 1M input, output tokens */

/* One entry per span: hour (from H0), minute, service, provider, model, operation, tokens, duration,
 * status/error, finish reasons, user, session, reported cost, time to first token (s). */
const SEEDS = [];
const seed = (o) => SEEDS.push({ op: 'chat', status: 'ok', ...o });
seed({ h: -5, m: 10, svc: 'graf-chat', prov: 'openai', model: 'graf-large', in: 1000, out: 500, dur: 300, finish: ['stop'], user: 'alice', session: 's-alice-0' });
seed({ h: 0, m: 5, svc: 'graf-chat', prov: 'openai', model: 'graf-large', in: 1000, out: 500, dur: 300, finish: ['stop'], user: 'alice', session: 's-alice-1', prompt: `ALPHA-1 please write to ${EMAIL} about the invoice`, response: 'ALPHA-1 answer: done' });
for (const m of [10, 12, 14]) seed({ h: 0, m, svc: 'graf-chat', prov: 'openai', model: 'graf-small', in: 2000, out: 1000, dur: 150, finish: ['stop'], user: 'alice', session: 's-alice-1', ttft: 0.1 });
seed({ h: 0, m: 20, svc: 'graf-batch', prov: 'anthropic', model: 'graf-large', in: 4000, out: 2000, dur: 5000, finish: ['length'], user: 'bob', session: 's-bob-1' });
seed({ h: 0, m: 25, svc: 'graf-batch', prov: 'anthropic', model: 'graf-large', in: 100, out: null, dur: 30000, status: 'error', error: 'timeout', user: 'bob', session: 's-bob-1' });
seed({ h: 0, m: 40, svc: 'graf-chat', prov: null, model: null, op: 'invoke_agent', in: null, out: null, dur: 2000, user: 'alice', session: 's-alice-1', id: 'planner', trace: 'alice-agent' });
/* a call under that agent span that names no agent: it inherits 'planner'. Sent in a request before its parent,
 * so the writer's fill, not the normalizer, gives it the name (and moves its rollup row) */
seed({ h: 0, m: 41, svc: 'graf-chat', prov: 'openai', model: 'graf-small', in: 200, out: 100, dur: 150, finish: ['stop'], user: 'alice', session: 's-alice-1', parent: 'planner', trace: 'alice-agent', early: true });
seed({ h: 0, m: 50, svc: 'graf-batch', prov: 'openai', model: 'graf-small', op: 'embeddings', in: 800, out: null, dur: 15, user: 'bob', session: null });
/* no user id: the cost dashboard's "(none)" row, whose link must find it in the trace explorer */
seed({ h: 0, m: 55, svc: 'graf-chat', prov: 'openai', model: 'graf-small', in: 100, out: 50, dur: 150, finish: ['stop'], user: null, session: null });
for (const m of [5, 35]) seed({ h: 1, m, svc: 'graf-chat', prov: 'openai', model: 'graf-large', in: 1000, out: 1000, dur: 1000, finish: ['stop'], user: 'alice', session: 's-alice-2', ttft: 0.4 });
seed({ h: 1, m: 15, svc: 'graf-chat', prov: 'openai', model: 'graf-small', in: 500, out: 500, dur: 15, finish: ['tool_calls'], user: "o'brien", session: 's-ob-1' });
seed({ h: 1, m: 20, svc: 'graf-batch', prov: 'anthropic', model: 'graf-mystery', in: 3000, out: 500, cacheRead: 1000, reasoning: 200, reported: 0.5, dur: 2000, finish: ['stop'], user: 'bob', session: 's-bob-2' });
seed({ h: 1, m: 45, svc: 'graf-batch', prov: 'anthropic', model: 'graf-unpriced', in: 700, out: 300, dur: 300, finish: ['stop'], user: 'bob', session: 's-bob-2' });
seed({ h: 1, m: 50, svc: 'graf-batch', prov: 'anthropic', model: 'graf-large', in: 100, out: null, dur: 80, status: 'error', error: 'rate_limit_exceeded', user: 'bob', session: 's-bob-2' });
seed({ h: 2, m: 20, svc: 'graf-chat', prov: 'openai', model: 'graf-mystery', in: 2000, out: 4000, reported: 12.5, dur: 100000, finish: ['length'], user: 'carol', session: 's-carol-1' });
for (let i = 0; i < 12; i++) {
  const err = i === 3 || i === 8;
  /* agents and prompt versions split this hour's (service, provider, model, operation) over several rollup
   * rows: every panel must still add them up to the same answers (migrations/0006_agents.sql) */
  /* and workflows (first half, second half) and traces of three calls each: the agents dashboard's traces */
  seed({ h: 2, m: 15 + 2 * i, svc: 'graf-chat', prov: 'openai', model: 'graf-small', in: 300, out: 100, dur: 300, status: err ? 'error' : 'ok', error: err ? 'rate_limit_exceeded' : undefined, finish: err ? undefined : ['stop'], user: 'carol', session: 's-carol-2', agent: `graf-agent-${i % 3}`, promptVersion: `${1 + (i % 2)}`, workflow: i < 6 ? 'graf-flow-a' : 'graf-flow-b', trace: `carol-${Math.floor(i / 3)}` });
}
/* bob's second session is one trace of a batch workflow: a reported cost, an unpriced model, an error */
for (const s of SEEDS.filter((x) => x.session === 's-bob-2')) Object.assign(s, { trace: 'bob-2', workflow: 'graf-nightly' });
/* The same prompt several times within the last hour (the repeated prompts panel; its view looks at the
 * hour before now(), whatever the time range): dave 3 times in 3 traces, erin twice in one trace and once
 * something else; dave's same prompt 2 hours ago is outside the window. */
const REPEAT = 'REPEAT: summarize the quarterly report';
const recent = (min, o) => seed({ t: NOW - min * M, svc: 'graf-chat', prov: 'openai', model: 'graf-small', in: 100, out: 50, dur: 150, finish: ['stop'], prompt: REPEAT, ...o });
recent(18, { user: 'dave', session: 's-dave-1' });
recent(14, { user: 'dave', session: 's-dave-1' });
recent(10, { user: 'dave', session: 's-dave-1' });
recent(16, { svc: 'graf-batch', user: 'erin', session: 's-erin-1', trace: 'erin-1' });
recent(8, { svc: 'graf-batch', user: 'erin', session: 's-erin-1', trace: 'erin-1' });
recent(6, { svc: 'graf-batch', user: 'erin', session: 's-erin-1', prompt: 'REPEAT: something else' });
seed({ h: 1, m: 10, svc: 'graf-chat', prov: 'openai', model: 'graf-small', in: 100, out: 50, dur: 150, finish: ['stop'], prompt: REPEAT, user: 'dave', session: 's-dave-0' });

for (const s of SEEDS) {
  s.t ??= H0 + s.h * H + s.m * M;
  const p = PRICES[s.model];
  /* cost in nano-USD, exact: tokens x USD per 1M = tokens x price x 1000 nano-USD */
  s.costNano = p ? (s.in ?? 0) * p[0] * 1000 + (s.out ?? 0) * p[1] * 1000 : s.reported !== undefined ? Math.round(s.reported * 1e9) : null;
}

/* ---------------- oracle helpers ---------------- */

const BOUNDS = [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10240, 20480, 40960, 81920];
const bucketOf = (ms) => BOUNDS.filter((b) => b < ms).length; /* 0-based; (lower, upper] */
function histOf(spans) {
  const h = new Array(15).fill(0);
  for (const s of spans) if (s.dur !== null && s.dur !== undefined) h[bucketOf(s.dur)]++;
  return h;
}
function quantile(hist, q) {
  const total = hist.reduce((a, b) => a + b, 0);
  if (!total) return null;
  const rank = q * total;
  let cum = 0;
  for (let j = 0; j < hist.length; j++) {
    const c = hist[j];
    if (c > 0 && cum + c >= rank) {
      const lo = j === 0 ? 0 : BOUNDS[j - 1];
      const hi = j < BOUNDS.length ? BOUNDS[j] : lo;
      return lo + ((hi - lo) * Math.max(rank - cum, 0)) / c;
    }
    cum += c;
  }
  return null;
}
const usd = (nano) => nano / 1e9;
const sumOf = (xs, f) => xs.reduce((a, s) => a + (f(s) ?? 0), 0);
const costSum = (xs) => usd(sumOf(xs, (s) => s.costNano));
const hourSec = (s) => Math.floor(s.t / H) * 3600;
const cmpStr = (a, b) => (a < b ? -1 : a > b ? 1 : 0); /* the test cluster collates C.UTF-8: code points */
const by = (...keys) => (a, b) => {
  for (const k of keys) {
    const [f, dir = 1, nullsLast] = Array.isArray(k) ? k : [k];
    const x = f(a);
    const y = f(b);
    if (x === y) continue;
    if (x === null) return nullsLast ? 1 : dir;
    if (y === null) return nullsLast ? -1 : -dir;
    const c = typeof x === 'string' ? cmpStr(x, y) : x - y;
    if (c) return c * dir;
  }
  return 0;
};
function groupBy(xs, keyFn) {
  const m = new Map();
  for (const x of xs) {
    const k = keyFn(x);
    const key = JSON.stringify(k);
    if (!m.has(key)) m.set(key, { key: k, items: [] });
    m.get(key).items.push(x);
  }
  return [...m.values()];
}
const label = (v) => (v === null || v === undefined || v === '' ? '(unknown)' : v);
const errorsOf = (xs) => xs.filter((s) => s.status === 'error').length;
const tokensOf = (xs) => sumOf(xs, (s) => (s.in ?? 0) + (s.out ?? 0));
const ttftSpans = (xs) => xs.filter((s) => s.ttft !== undefined);
const distinctSorted = (xs) => [...new Set(xs.filter((x) => x !== null && x !== undefined))].sort(cmpStr);

/* What a scenario selects. Rollups: every UTC hour overlapping [from, to]; raw rows: from <= t <= to. */
const selected = (sel, v) => sel === ALL_VALUE || (Array.isArray(sel) && sel[0] === ALL_VALUE) || (v !== null && v !== undefined && sel.includes(v));
const varsMatch = (sc, s, { service = true, provider = true, model = true } = {}) =>
  (!service || selected(sc.values.service, s.svc)) && (!provider || selected(sc.values.provider, s.prov)) && (!model || selected(sc.values.model, s.model));
const inHours = (sc, s) => Math.floor(s.t / H) * H > sc.from.getTime() - H && Math.floor(s.t / H) * H <= sc.to.getTime();
const inRange = (sc, s) => s.t >= sc.from.getTime() && s.t <= sc.to.getTime();
const rollupSpans = (sc) => SEEDS.filter((s) => inHours(sc, s) && varsMatch(sc, s));
const rawSpans = (sc) => SEEDS.filter((s) => inRange(sc, s) && varsMatch(sc, s));
/* user "(none)": the spans without a user id (the cost dashboard's (none) row links there) */
const userMatch = (want, user) => want === '' || user === want || (want === '(none)' && !user);
const explorerSpans = (sc) => rawSpans(sc).filter((s) => (sc.values.session === '' || s.session === sc.values.session) && userMatch(sc.values.user, s.user)
  && (!sc.values.trace || s.traceId === sc.values.trace));
const one = (columns, row) => ({ columns, rows: [row] });

/* ---------------- oracles: one per query key ---------------- */

const ORACLES = {};
const VARIABLE_ORACLES = {
  service: (sc) => ({ columns: ['service_name'], rows: distinctSorted(SEEDS.filter((s) => inHours(sc, s)).map((s) => s.svc)).map((x) => [x]) }),
  provider: (sc) => ({ columns: ['provider'], rows: distinctSorted(SEEDS.filter((s) => inHours(sc, s) && varsMatch(sc, s, { provider: false, model: false })).map((s) => s.prov)).map((x) => [x]) }),
  model: (sc) => ({ columns: ['model_id'], rows: distinctSorted(SEEDS.filter((s) => inHours(sc, s) && varsMatch(sc, s, { model: false })).map((s) => s.model)).map((x) => [x]) }),
};
for (const { json } of dashboards) {
  for (const v of json.templating?.list ?? []) if (v.type === 'query') ORACLES[`${json.uid}/variable/${v.name}`] = VARIABLE_ORACLES[v.name];
}
const P = (uid, title) => `${uid}/panel/${title}/A`;

function latencyByModel(sc) {
  const rows = groupBy(rollupSpans(sc), (s) => label(s.model)).map(({ key, items }) => {
    const withDur = items.filter((s) => s.dur !== undefined && s.dur !== null);
    const h = histOf(items);
    return [key, items.length, withDur.length ? sumOf(withDur, (s) => s.dur) / withDur.length : null, quantile(h, 0.5), quantile(h, 0.95), quantile(h, 0.99)];
  });
  rows.sort(by([(r) => r[4], -1, true], (r) => r[0]));
  return { columns: ['model', 'requests', 'avg_ms', 'p50_ms', 'p95_ms', 'p99_ms'], rows };
}

Object.assign(ORACLES, {
  /* overview */
  [P('genai-overview', 'Requests')]: (sc) => one(['requests'], [rollupSpans(sc).length]),
  [P('genai-overview', 'Errors')]: (sc) => one(['errors'], [errorsOf(rollupSpans(sc))]),
  [P('genai-overview', 'Error rate')]: (sc) => {
    const r = rollupSpans(sc);
    return one(['error_rate'], [r.length ? errorsOf(r) / r.length : null]);
  },
  [P('genai-overview', 'Cost')]: (sc) => one(['cost_usd'], [costSum(rollupSpans(sc))]),
  [P('genai-overview', 'Tokens')]: (sc) => one(['tokens'], [tokensOf(rollupSpans(sc))]),
  [P('genai-overview', 'p95 latency')]: (sc) => one(['p95_ms'], [quantile(histOf(rollupSpans(sc)), 0.95)]),
  [P('genai-overview', 'Avg time to first token')]: (sc) => {
    const t = ttftSpans(rollupSpans(sc));
    return one(['avg_ttft_ms'], [t.length ? sumOf(t, (s) => s.ttft * 1000) / t.length : null]);
  },
  [P('genai-overview', 'Requests and errors per hour')]: (sc) => ({
    columns: ['time', 'requests', 'errors'],
    rows: groupBy(rollupSpans(sc), hourSec).map(({ key, items }) => [key, items.length, errorsOf(items)]).sort(by((r) => r[0])),
  }),
  [P('genai-overview', 'Cost per hour')]: (sc) => ({
    columns: ['time', 'cost_usd'],
    rows: groupBy(rollupSpans(sc), hourSec).map(({ key, items }) => [key, costSum(items)]).sort(by((r) => r[0])),
  }),
  [P('genai-overview', 'Tokens per hour')]: (sc) => ({
    columns: ['time', 'input_tokens', 'output_tokens', 'cache_read_tokens', 'reasoning_tokens'],
    rows: groupBy(rollupSpans(sc), hourSec).map(({ key, items }) => [key, sumOf(items, (s) => s.in), sumOf(items, (s) => s.out), sumOf(items, (s) => s.cacheRead), sumOf(items, (s) => s.reasoning)]).sort(by((r) => r[0])),
  }),
  [P('genai-overview', 'Latency p50 / p95 / p99 by model')]: (sc) => ({
    columns: ['time', 'model', 'p50_ms', 'p95_ms', 'p99_ms'],
    rows: groupBy(rollupSpans(sc), (s) => [hourSec(s), label(s.model)]).map(({ key, items }) => {
      const h = histOf(items);
      return [key[0], key[1], quantile(h, 0.5), quantile(h, 0.95), quantile(h, 0.99)];
    }).sort(by((r) => r[0], (r) => r[1])),
  }),
  [P('genai-overview', 'Latency by model')]: latencyByModel,
  [P('genai-overview', 'Hourly breakdown')]: (sc) => ({
    columns: ['time', 'service', 'provider', 'model', 'operation', 'requests', 'errors', 'cost_usd', 'avg_duration_ms', 'p95_duration_ms', 'avg_tokens_per_request'],
    rows: groupBy(rollupSpans(sc), (s) => [Math.floor(s.t / H) * H, s.svc, s.prov ?? '', s.model ?? '', s.op]).map(({ key, items }) => [
      new Date(key[0]), key[1], key[2], key[3], key[4], items.length, errorsOf(items), costSum(items),
      sumOf(items, (s) => s.dur) / items.length, quantile(histOf(items), 0.95), tokensOf(items) / items.length,
    ]).sort(by([(r) => r[0].getTime(), -1], (r) => r[1], (r) => r[2], (r) => r[3], (r) => r[4])),
  }),

  /* cost */
  [P('genai-cost', 'Total cost')]: (sc) => one(['cost_usd'], [costSum(rollupSpans(sc))]),
  [P('genai-cost', 'Average cost per request')]: (sc) => {
    const r = rollupSpans(sc);
    return one(['cost_per_request_usd'], [r.length ? costSum(r) / r.length : null]);
  },
  [P('genai-cost', 'Priced tokens')]: (sc) => one(['tokens'], [tokensOf(rawSpans(sc).filter((s) => s.costNano !== null))]),
  [P('genai-cost', 'Unpriced requests')]: (sc) => one(['unpriced_requests'], [rawSpans(sc).filter((s) => s.model && s.costNano === null).length]),
  [P('genai-cost', 'Cost per hour by model')]: (sc) => ({
    columns: ['time', 'metric', 'cost_usd'],
    rows: groupBy(rollupSpans(sc), (s) => [hourSec(s), label(s.model)]).map(({ key, items }) => [key[0], key[1], costSum(items)]).sort(by((r) => r[0], (r) => r[1])),
  }),
  [P('genai-cost', 'Cost by provider')]: (sc) => ({
    columns: ['provider', 'cost_usd'],
    rows: groupBy(rollupSpans(sc), (s) => label(s.prov)).map(({ key, items }) => [key, costSum(items)]).sort(by([(r) => r[1], -1], (r) => r[0])),
  }),
  [P('genai-cost', 'Cost by model')]: (sc) => ({
    columns: ['model', 'requests', 'input_tokens', 'output_tokens', 'cost_usd', 'cost_per_request_usd'],
    rows: groupBy(rollupSpans(sc), (s) => label(s.model)).map(({ key, items }) => [key, items.length, sumOf(items, (s) => s.in), sumOf(items, (s) => s.out), costSum(items), costSum(items) / items.length])
      .sort(by([(r) => r[4], -1], (r) => r[0])),
  }),
  [P('genai-cost', 'Cost by service')]: (sc) => {
    const r = rollupSpans(sc);
    const total = costSum(r);
    return {
      columns: ['service', 'requests', 'cost_usd', 'share'],
      rows: groupBy(r, (s) => label(s.svc)).map(({ key, items }) => [key, items.length, costSum(items), total ? costSum(items) / total : null]).sort(by([(x) => x[2], -1], (x) => x[0])),
    };
  },
  [P('genai-cost', 'Top spenders (users)')]: (sc) => ({
    columns: ['user_id', 'requests', 'sessions', 'tokens', 'cost_usd'],
    rows: groupBy(rawSpans(sc), (s) => s.user ?? '(none)').map(({ key, items }) => [key, items.length, distinctSorted(items.map((s) => s.session)).length, tokensOf(items), costSum(items)])
      .sort(by([(r) => r[4], -1], (r) => r[0])).slice(0, 20),
  }),
  [P('genai-cost', 'Top sessions')]: (sc) => ({
    columns: ['session_id', 'users', 'requests', 'cost_usd', 'first_seen', 'last_seen'],
    rows: groupBy(rawSpans(sc).filter((s) => s.session), (s) => s.session).map(({ key, items }) => {
      const users = distinctSorted(items.map((s) => s.user));
      return [key, users.length ? users.join(', ') : null, items.length, costSum(items), new Date(Math.min(...items.map((s) => s.t))), new Date(Math.max(...items.map((s) => s.t)))];
    }).sort(by([(r) => r[3], -1], (r) => r[0])).slice(0, 20),
  }),
  [P('genai-cost', 'Unpriced requests by model')]: (sc) => ({
    columns: ['model', 'requests', 'input_tokens', 'output_tokens'],
    rows: groupBy(rawSpans(sc).filter((s) => s.model && s.costNano === null), (s) => s.model).map(({ key, items }) => [key, items.length, sumOf(items, (s) => s.in), sumOf(items, (s) => s.out)])
      .sort(by([(r) => r[1], -1], (r) => r[0])),
  }),

  /* quality */
  [P('genai-quality', 'Error rate')]: (sc) => {
    const r = rollupSpans(sc);
    return one(['error_rate'], [r.length ? errorsOf(r) / r.length : null]);
  },
  [P('genai-quality', 'Errors')]: (sc) => one(['errors'], [errorsOf(rollupSpans(sc))]),
  [P('genai-quality', 'Responses cut at the token limit')]: (sc) => one(['truncated_responses'], [rawSpans(sc).filter((s) => s.finish?.includes('length')).length]),
  [P('genai-quality', 'Error rate per hour by model')]: (sc) => ({
    columns: ['time', 'metric', 'error_rate'],
    rows: groupBy(rollupSpans(sc), (s) => [hourSec(s), label(s.model)]).map(({ key, items }) => [key[0], key[1], errorsOf(items) / items.length]).sort(by((r) => r[0], (r) => r[1])),
  }),
  [P('genai-quality', 'Errors per hour by type')]: (sc) => ({
    columns: ['time', 'metric', 'errors'],
    rows: groupBy(rawSpans(sc).filter((s) => s.status === 'error'), (s) => [hourSec(s), s.error ?? '(unspecified)']).map(({ key, items }) => [key[0], key[1], items.length]).sort(by((r) => r[0], (r) => r[1])),
  }),
  [P('genai-quality', 'Errors by type')]: (sc) => ({
    columns: ['error_type', 'errors', 'models', 'last_seen'],
    rows: groupBy(rawSpans(sc).filter((s) => s.status === 'error'), (s) => s.error ?? '(unspecified)')
      .map(({ key, items }) => [key, items.length, distinctSorted(items.map((s) => label(s.model))).join(', '), new Date(Math.max(...items.map((s) => s.t)))])
      .sort(by([(r) => r[1], -1], (r) => r[0])),
  }),
  [P('genai-quality', 'Finish reasons')]: (sc) => ({
    columns: ['finish_reason', 'responses'],
    rows: groupBy(rawSpans(sc).flatMap((s) => s.finish ?? []), (f) => f).map(({ key, items }) => [key, items.length]).sort(by([(r) => r[1], -1], (r) => r[0])),
  }),
  [P('genai-quality', 'Error rate by service and model')]: (sc) => ({
    columns: ['service', 'model', 'requests', 'errors', 'error_rate'],
    rows: groupBy(rollupSpans(sc), (s) => [label(s.svc), label(s.model)]).map(({ key, items }) => [key[0], key[1], items.length, errorsOf(items), errorsOf(items) / items.length])
      .sort(by([(r) => r[4], -1, true], (r) => r[0], (r) => r[1])),
  }),

  /* trace explorer */
  [P('genai-traces', 'Matching interactions')]: (sc) => one(['interactions'], [explorerSpans(sc).length]),
  [P('genai-traces', 'Cost of matching interactions')]: (sc) => one(['cost_usd'], [costSum(explorerSpans(sc))]),
  [P('genai-traces', 'Errors among matching interactions')]: (sc) => one(['errors'], [errorsOf(explorerSpans(sc))]),
  [P('genai-traces', 'Recent interactions')]: (sc) => ({
    columns: ['time', 'trace_id', 'span_id', 'service', 'operation', 'model', 'status', 'error_code', 'user_id', 'session_id', 'input_tokens', 'output_tokens',
      'cost_usd', 'duration_ms', 'prompt_preview', 'response_preview', 'redactions'],
    rows: explorerSpans(sc).map((s) => [
      new Date(s.t), s.traceId, s.spanId, s.svc, s.op, s.model, s.status, s.error ?? null, s.user, s.session, s.in, s.out,
      s.costNano === null ? null : usd(s.costNano), s.dur, s.stored.prompt_preview, s.stored.response_preview, s.stored.redaction_count,
    ]).sort(by([(r) => r[0].getTime(), -1], (r) => r[2])).slice(0, 500),
  }),
  [P('genai-traces', 'Sessions')]: (sc) => ({
    columns: ['session_id', 'users', 'interactions', 'errors', 'cost_usd', 'first_seen', 'last_seen'],
    rows: groupBy(explorerSpans(sc).filter((s) => s.session), (s) => s.session).map(({ key, items }) => {
      const users = distinctSorted(items.map((s) => s.user));
      return [key, users.length ? users.join(', ') : null, items.length, errorsOf(items), costSum(items), new Date(Math.min(...items.map((s) => s.t))), new Date(Math.max(...items.map((s) => s.t)))];
    }).sort(by([(r) => r[6].getTime(), -1], (r) => r[0])).slice(0, 100),
  }),

  /* agents: per agent and workflow from the rollups, per trace from the summaries, repeated prompts */
  [P('genai-agents', 'Cost per hour by agent')]: (sc) => perHour(sc, agentOf, 'cost_usd', costSum),
  [P('genai-agents', 'Errors per hour by agent')]: (sc) => perHour(sc, agentOf, 'errors', errorsOf),
  [P('genai-agents', 'Cost per hour by workflow')]: (sc) => perHour(sc, (s) => s.workflow, 'cost_usd', costSum),
  [P('genai-agents', 'Errors per hour by workflow')]: (sc) => perHour(sc, (s) => s.workflow, 'errors', errorsOf),
  [P('genai-agents', 'Cost and errors by agent')]: (sc) => costAndErrors(sc, 'agent', agentOf),
  [P('genai-agents', 'Cost and errors by workflow')]: (sc) => costAndErrors(sc, 'workflow', (s) => s.workflow),
  [P('genai-agents', 'Top traces by cost')]: (sc) => ({
    columns: ['time', 'trace_id', 'service', 'agent', 'workflow', 'user_id', 'spans', 'llm_calls', 'tool_calls', 'errors', 'tokens', 'duration_ms', 'cost_usd', 'models'],
    rows: traceSummaries().filter((t) => t.start >= sc.from.getTime() && t.start <= sc.to.getTime() && selected(sc.values.service, t.svc)
      && (selected(sc.values.model, ALL_VALUE) || t.models.some((m) => selected(sc.values.model, m))))
      .map((t) => [new Date(t.start), t.traceId, t.svc, t.agent, t.workflow, t.user, t.spans.length,
        t.spans.filter((s) => ['chat', 'text_completion', 'generate_content', 'embeddings'].includes(s.op)).length,
        t.spans.filter((s) => s.op === 'execute_tool').length, errorsOf(t.spans), tokensOf(t.spans), t.end - t.start,
        t.spans.some((s) => s.costNano !== null) ? costSum(t.spans) : null, t.models.length ? t.models.join(', ') : null])
      .sort(by([(r) => r[12], -1, true], (r) => r[1])).slice(0, 20),
  }),
  [P('genai-agents', 'Prompt versions')]: (sc) => ({
    columns: ['prompt_name', 'prompt_version', 'requests', 'errors', 'error_rate', 'avg_ms', 'p50_ms', 'p95_ms', 'cost_usd', 'cost_per_request_usd'],
    rows: groupBy(rollupSpans(sc).filter((s) => s.promptVersion), (s) => ['graf-prompt', s.promptVersion]).map(({ key, items }) => {
      const h = histOf(items);
      return [key[0], key[1], items.length, errorsOf(items), errorsOf(items) / items.length, sumOf(items, (s) => s.dur) / items.length,
        quantile(h, 0.5), quantile(h, 0.95), costSum(items), costSum(items) / items.length];
    }).sort(by((r) => r[0], (r) => r[1])),
  }),
  [P('genai-agents', 'Repeated prompts (last hour)')]: (sc) => {
    /* the view's window is the hour before the query ran (now(), not the time range); no seed is near its edge */
    const since = Date.now() - H;
    return {
      columns: ['service', 'user_id', 'prompt_hash', 'requests', 'traces', 'cost_usd', 'first_seen', 'last_seen'],
      rows: groupBy(SEEDS.filter((s) => s.t >= since && selected(sc.values.service, s.svc)), (s) => [s.svc, s.user ?? '', s.stored.prompt_hash])
        .filter(({ items }) => items.length > 1)
        .map(({ key, items }) => [key[0], key[1], key[2], items.length, new Set(items.map((s) => s.traceId)).size, costSum(items),
          new Date(Math.min(...items.map((s) => s.t))), new Date(Math.max(...items.map((s) => s.t)))])
        .sort(by([(r) => r[3], -1], [(r) => r[7].getTime(), -1], (r) => r[0], (r) => r[1], (r) => r[2])).slice(0, 50),
    };
  },
});

/* The agent of a seed: its own (the invoke_agent span names 'planner'), else its parent's. */
function agentOf(s) {
  return s.agent ?? (s.op === 'invoke_agent' ? 'planner' : s.parent ? agentOf(SEEDS.find((x) => x.id === s.parent)) : null);
}
function perHour(sc, dim, col, value) {
  return {
    columns: ['time', 'metric', col],
    rows: groupBy(rollupSpans(sc), (s) => [hourSec(s), dim(s) ?? '(none)']).map(({ key, items }) => [key[0], key[1], value(items)]).sort(by((r) => r[0], (r) => r[1])),
  };
}
function costAndErrors(sc, col, dim) {
  return {
    columns: [col, 'requests', 'errors', 'error_rate', 'cost_usd', 'cost_per_request_usd'],
    rows: groupBy(rollupSpans(sc), (s) => dim(s) ?? '(none)').map(({ key, items }) => [key, items.length, errorsOf(items), errorsOf(items) / items.length, costSum(items), costSum(items) / items.length])
      .sort(by([(r) => r[4], -1], (r) => r[0])),
  };
}
/* One summary per trace, from the seeds alone (migrations/0007_trace_summaries.sql says what each is). */
function traceSummaries() {
  return groupBy(SEEDS, (s) => s.traceId).map(({ key, items }) => {
    const spans = [...items].sort(by((s) => s.t, (s) => s.spanId));
    const firstOf = (f) => f(spans[0]) ?? spans.map(f).find((v) => v !== null && v !== undefined) ?? null;
    return {
      traceId: key, spans, svc: spans[0].svc, agent: firstOf(agentOf), workflow: firstOf((s) => s.workflow),
      user: distinctSorted(spans.map((s) => s.user)).at(-1) ?? null, start: spans[0].t, end: Math.max(...spans.map((s) => s.t + s.dur)),
      models: distinctSorted(spans.map((s) => s.model)),
    };
  });
}

/* Alert rules: expected reduced value per series (JSON of labels -> number|null), at evaluation time T. */
const ALERT_ORACLES = {
  'genai-gw-cost-per-hour': (from, to) => {
    const sc = { from, to, values: { service: ALL_VALUE, provider: ALL_VALUE, model: ALL_VALUE } };
    const hours = groupBy(rollupSpans(sc), hourSec).map(({ items }) => costSum(items));
    return new Map(hours.length ? [[JSON.stringify({}), Math.max(...hours)]] : []);
  },
  'genai-gw-error-rate': (from, to) => {
    const spans = SEEDS.filter((s) => s.t >= from.getTime() && s.t <= to.getTime());
    return new Map(groupBy(spans, (s) => s.svc ?? '(unknown)').filter(({ items }) => items.length >= 10)
      .map(({ key, items }) => [JSON.stringify({ service: key }), errorsOf(items) / items.length]));
  },
  'genai-gw-p95-latency': (from, to) => {
    const sc = { from, to, values: { service: ALL_VALUE, provider: ALL_VALUE, model: ALL_VALUE } };
    return new Map(groupBy(rollupSpans(sc), (s) => label(s.model)).map(({ key, items }) => [JSON.stringify({ model: key }), quantile(histOf(items), 0.95)]));
  },
};

/* ---------------- running and comparing ---------------- */

const SCENARIOS = [
  { name: 'everything', from: new Date(H0), to: new Date(NOW), values: { service: [ALL_VALUE], provider: [ALL_VALUE], model: [ALL_VALUE], session: '', user: '', trace: '' } },
  { name: 'filtered', from: new Date(H0), to: new Date(NOW), values: { service: ['graf-chat'], provider: [ALL_VALUE], model: ['graf-large', 'graf-small'], session: '', user: "o'brien", trace: '' } },
  { name: 'narrow mid-hour range', from: new Date(H0 + 30 * M), to: new Date(H0 + 90 * M), values: { service: [ALL_VALUE], provider: ['anthropic'], model: [ALL_VALUE], session: 's-bob-2', user: '', trace: '' } },
  { name: 'user (none), as its link sets it', from: new Date(H0), to: new Date(NOW), values: { service: [ALL_VALUE], provider: [ALL_VALUE], model: [ALL_VALUE], session: '', user: '(none)', trace: '' } },
];

function close(a, b) {
  return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
}
function sameCell(actual, expected) {
  if (expected === null || expected === undefined) return actual === null;
  if (actual === null) return false;
  if (expected instanceof Date) return actual instanceof Date && actual.getTime() === expected.getTime();
  if (typeof expected === 'number') return close(Number(actual), expected);
  return actual === expected;
}
const show = (v) => (v instanceof Date ? v.toISOString() : v);

/** Client settings for `dsn` as another user (a URL's own user would win over a separate user key). */
function connectAs(dsn, user, password) {
  const cfg = pgClientConfig(dsn);
  if (!cfg.connectionString) return { ...cfg, user, password };
  const u = new URL(cfg.connectionString);
  u.username = encodeURIComponent(user);
  u.password = encodeURIComponent(password);
  return { connectionString: u.toString() };
}

async function runSql(db, sql) {
  const r = await db.pool.query({ text: sql, rowMode: 'array' });
  return { columns: r.fields.map((f) => f.name), fields: r.fields.map((f) => ({ name: f.name, kind: fieldKind(f.dataTypeID) })), rows: r.rows };
}

/** Expand, run and compare one query; throws with both tables on any difference. */
async function checkQuery(db, q, sql, sc) {
  const expanded = expandQuery(sql, { variables: q.dashboard.templating.list, values: sc.values, from: sc.from, to: sc.to });
  const actual = await runSql(db, expanded);
  const expected = ORACLES[q.key](sc);
  const fail = (why) => {
    throw new Error(`${q.key} [${sc.name}]: ${why}\nexpected ${JSON.stringify(expected.rows.map((r) => r.map(show)))}\nactual   ${JSON.stringify(actual.rows.map((r) => r.map(show)))}\nSQL:\n${expanded}`);
  };
  if (JSON.stringify(actual.columns) !== JSON.stringify(expected.columns)) fail(`columns ${actual.columns.join(',')} != ${expected.columns.join(',')}`);
  if (actual.rows.length !== expected.rows.length) fail(`${actual.rows.length} rows != ${expected.rows.length}`);
  actual.rows.forEach((row, i) => row.forEach((cell, j) => {
    if (!sameCell(cell, expected.rows[i][j])) fail(`row ${i} column ${actual.columns[j]}: ${show(cell)} != ${show(expected.rows[i][j])}`);
  }));
  if (q.format === 'time_series') {
    const series = toSeries(actual.fields, actual.rows);
    if (actual.rows.length && !series.length) fail('no numeric column: Grafana would draw nothing');
  }
  return { expected, actual };
}

const ALL_QUERIES = dashboards.flatMap(({ json }) => dashboardQueries(json));
const alertFile = readYaml(ALERT_FILE);
const RULES = alertFile.groups.flatMap((g) => g.rules);

/* ---------------- the emulation itself ---------------- */

describe('Grafana expansion emulation', () => {
  const from = new Date(Date.UTC(2018, 3, 12, 18, 0, 0));
  const to = new Date(Date.UTC(2018, 3, 12, 18, 5, 0));
  const x = (sql, extra = {}) => expandMacros(sql, { from, to, ...extra });

  test('macros expand to the text the PostgreSQL datasource sends', () => {
    assert.equal(x('WHERE $__timeFilter(time_column)'), "WHERE time_column BETWEEN '2018-04-12T18:00:00Z' AND '2018-04-12T18:05:00Z'");
    assert.equal(expandMacros('$__timeFilter(t)', { from: new Date(Date.UTC(1960, 1, 1, 7, 0, 0, 500)), to }), "t BETWEEN '1960-02-01T07:00:00.5Z' AND '2018-04-12T18:05:00Z'");
    assert.equal(x('select $__timeFrom(), $__timeTo()'), "select '2018-04-12T18:00:00Z', '2018-04-12T18:05:00Z'");
    assert.equal(x("SELECT $__timeGroup(time_column,'5m')"), 'SELECT floor(extract(epoch from time_column)/300)*300');
    assert.equal(x("SELECT $__timeGroupAlias(time_column , '1h')"), 'SELECT floor(extract(epoch from time_column)/3600)*3600 AS "time"');
    assert.equal(x("SELECT $__timeGroup(time_column,'5m'), value"), 'SELECT floor(extract(epoch from time_column)/300)*300 AS "time", value', 'followed by a comma: the pre-5.3 alias form');
    assert.equal(x("SELECT $__timeGroup(time_column,'5m') as time, value"), 'SELECT floor(extract(epoch from time_column)/300)*300 as time, value');
    assert.equal(x("$__timeGroup(t,'12d')"), 'floor(extract(epoch from t)/1.0368e+06)*1.0368e+06', "Go's %v of 1036800");
    assert.equal(x('select $__time(c), $__timeEpoch(c)'), 'select c AS "time", extract(epoch from c) as "time"');
    assert.equal(x('select $__unixEpochFilter(time)'), 'select time >= 1523556000 AND time <= 1523556300');
    assert.equal(x("SELECT $__unixEpochGroupAlias(time_column+time_adjustment,'5m')"), 'SELECT floor((time_column+time_adjustment)/300)*300 AS "time"');
    assert.equal(x('select $__unixEpochFrom(), $__unixEpochTo(), $__interval, $__interval_ms', { intervalMs: 3600000 }), 'select 1523556000, 1523556300, 1h, 3600000');
    assert.throws(() => x('select $__timeBogus(c)'), /unknown macro/);
    assert.throws(() => x('select $__timeFilter()'), /missing time column/);
  });

  test('variables expand as templateSrv does, with the sqlstring format', () => {
    const variables = [
      { name: 'host', type: 'query', multi: true, includeAll: true, allValue: "'__all'", current: { value: [ALL_VALUE] } },
      { name: 'region', type: 'query', multi: true, includeAll: true, current: { value: [ALL_VALUE] } },
      { name: 'user', type: 'textbox', current: { value: '' } },
    ];
    const i = (sql, values = {}, extra = {}) => interpolateVariables(sql, { variables, values, ...extra });
    assert.equal(i('IN (${host:sqlstring})'), "IN ('__all')", 'a custom all value is inserted verbatim');
    assert.equal(i('IN (${host:sqlstring})', { host: ['srv1', "o'x"] }), "IN ('srv1','o''x')");
    assert.equal(i('IN (${host:sqlstring})', { host: 'srv1' }), "IN ('srv1')");
    assert.equal(i('IN (${region:sqlstring})', {}, { options: { region: ['us', 'eu'] } }), "IN ('us','eu')", 'All without allValue: every option');
    assert.equal(i('= ${user:sqlstring}', { user: "O'Brien" }), "= 'O''Brien'");
    assert.equal(i('= ${user:sqlstring}'), "= ''");
    assert.equal(i('$__timeFilter(t) AND [[user:sqlstring]] = ${user:csv}', { user: 'a' }), "$__timeFilter(t) AND 'a' = a", 'macros are left for the server');
    assert.throws(() => i('IN ($host)'), /give the format explicitly/);
    assert.equal(i('IN ($host)', { host: ['a', 'b'] }, { strict: false }), "IN ('a','b')");
    assert.equal(i("= '$user'", { user: "O'Brien" }, { strict: false }), "= 'O''Brien'");
    assert.throws(() => expandQuery('SELECT 1 WHERE a = $hots', { variables, from, to }), /\$hots left/);
  });
});

/* ---------------- static checks ---------------- */

describe('Grafana provisioning files', () => {
  test('the datasource is PostgreSQL, every connection value comes from the environment', () => {
    const ds = readYaml(DS_FILE);
    assert.equal(ds.apiVersion, 1);
    assert.equal(ds.datasources.length, 1);
    const d = ds.datasources[0];
    assert.equal(d.type, 'grafana-postgresql-datasource');
    assert.equal(d.uid, 'genai-gateway-pg');
    const envRef = /^\$\{?[A-Z][A-Z0-9_]*\}?$/;
    for (const [k, v] of Object.entries({ url: d.url, user: d.user, database: d.jsonData.database, sslmode: d.jsonData.sslmode, password: d.secureJsonData.password })) {
      assert.match(String(v), envRef, `${k} must come from an environment variable`);
    }
    assert.equal(d.password, undefined, 'no plain-text password field');
    assert.equal(d.jsonData.timescaledb, false, '$__timeGroup expands to floor(extract(epoch ...)) only without TimescaleDB');
    const names = fs.readFileSync(DS_FILE, 'utf8').match(/GENAI_GW_GRAFANA_DB_[A-Z]+/g);
    const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
    for (const n of new Set(names)) assert.ok(readme.includes(n), `README documents ${n}`);
    /* issue 14, item 9: an unset TLS mode is not left to the driver's implicit reading: the table of
     * variables gives each one's default, the TLS mode's explicitly (what Grafana does when it is unset) */
    const table = readme.match(/\| `GENAI_GW_GRAFANA_DB_SSLMODE` \|([^\n]*)\|/);
    assert.ok(table, 'README has a row for GENAI_GW_GRAFANA_DB_SSLMODE');
    assert.match(table[1], /default `require`/);
    assert.match(fs.readFileSync(DS_FILE, 'utf8'), /GENAI_GW_GRAFANA_DB_SSLMODE[^\n]*default require/);
  });

  test('dashboards and alert rules land in one folder, in Grafana\'s provisioning order, 10.4 to 11.3 (issue 14, item 8)', () => {
    const dashboardsFile = readYaml(PROVIDER_FILE);
    for (const version of ['10.4', '11.0', '11.2', '11.3']) {
      for (const order of ['alerting-first', 'dashboards-first']) {
        const r = provisionFolders({ alerting: alertFile, dashboards: dashboardsFile, version, order, polls: 3 });
        assert.equal(r.folders.filter((f) => f.title === 'GenAI gateway').length, 1, `${version} ${order}: one folder "GenAI gateway"`);
        assert.equal(r.folders.length, 1, `${version} ${order}: no other folder`);
        assert.deepEqual([...new Set([...r.dashboards, ...r.rules])], [r.folders[0].uid], `${version} ${order}: dashboards and rules together`);
      }
    }
    /* the model catches the bug the provider had: a folderUid next to rules that name the folder by title */
    const withUid = structuredClone(dashboardsFile);
    withUid.providers[0].folderUid = 'genai-gateway';
    assert.throws(() => provisionFolders({ alerting: alertFile, dashboards: withUid, version: '11.2' }), /409/);
    const dup = provisionFolders({ alerting: alertFile, dashboards: withUid, version: '11.3' });
    assert.equal(dup.folders.filter((f) => f.title === 'GenAI gateway').length, 2, '11.3: two folders of one name');
    /* every group and the provider name the same folder title */
    for (const g of alertFile.groups) assert.equal(g.folder, dashboardsFile.providers[0].folder);
    /* and every dashboard file is in that folder: the README mounts the directory at the provider's path,
     * and lists each file */
    const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
    assert.ok(readme.includes(`"$PWD/deploy/grafana/dashboards:${dashboardsFile.providers[0].options.path}:ro"`), 'README mounts the dashboards at the provider path');
    for (const f of fs.readdirSync(DASH_DIR).filter((x) => x.endsWith('.json'))) {
      assert.match(readme, new RegExp(`\\| \`dashboards/${f.replace('.', '\\.')}\` \\|`), `README lists ${f}`);
      const json = JSON.parse(fs.readFileSync(path.join(DASH_DIR, f), 'utf8'));
      assert.ok(json.tags.includes('genai-gateway'), `${f}: tagged genai-gateway (the dashboards' links menu)`);
    }
  });

  test('data links pass the cell\'s value URL-encoded to a dashboard and variable that exist (issue 14, item 9)', () => {
    const from = new Date(H0);
    const to = new Date(NOW);
    let links = 0;
    for (const { file, json } of dashboards) {
      for (const p of allPanels(json)) {
        for (const o of p.fieldConfig?.overrides ?? []) {
          for (const prop of o.properties.filter((x) => x.id === 'links')) {
            for (const l of prop.value) {
              links++;
              assert.doesNotMatch(l.url, /\$\{__value\.(raw|text)\}/, `${file}: ${p.title}: ${l.url} puts the value in the URL unencoded`);
              const m = /^\/d\/([\w-]+)\?(.*)$/.exec(l.url);
              assert.ok(m, `${file}: ${p.title}: a link to a dashboard by uid`);
              const target = dashboards.find((d) => d.json.uid === m[1]);
              assert.ok(target, `${file}: ${p.title}: dashboard ${m[1]} exists`);
              for (const value of ["o'brien & co", 'a+b=c#d?e', 'ü/ß 100%', '(none)', 's-alice-1']) {
                const url = new URL(interpolateLink(l.url, { value, from, to }), 'http://grafana.local');
                const vars = [...url.searchParams.keys()].filter((k) => k.startsWith('var-'));
                assert.equal(vars.length, 1, `${l.url}: one variable set`);
                assert.equal(url.searchParams.get(vars[0]), value, `${file}: ${p.title}: ${value} arrives intact`);
                assert.ok(target.json.templating.list.some((v) => `var-${v.name}` === vars[0]), `${vars[0]} is a variable of ${m[1]}`);
                assert.equal(url.searchParams.get('from'), String(from.getTime()));
              }
            }
          }
        }
      }
    }
    assert.ok(links >= 5, `data links checked: ${links}`);
    /* the emulation tells the two apart */
    assert.notEqual(new URL(interpolateLink('/d/x?var-user=${__value.raw}', { value: 'a&b', from, to }), 'http://g').searchParams.get('var-user'), 'a&b');
  });

  test('the dashboard provider loads the dashboards directory from files', () => {
    const p = readYaml(PROVIDER_FILE);
    assert.equal(p.apiVersion, 1);
    assert.equal(p.providers.length, 1);
    assert.equal(p.providers[0].type, 'file');
    assert.ok(path.isAbsolute(p.providers[0].options.path));
    assert.ok(p.providers[0].folder);
  });

  test('dashboards parse, have unique uids and ids, and every query and variable uses the provisioned datasource', () => {
    assert.deepEqual(dashboards.map((d) => d.file), ['agents.json', 'cost.json', 'overview.json', 'quality.json', 'trace-explorer.json']);
    const uids = new Set();
    for (const { file, json } of dashboards) {
      assert.ok(json.uid && !uids.has(json.uid), `${file}: unique uid`);
      uids.add(json.uid);
      assert.equal(json.id, null, `${file}: id null for provisioning`);
      assert.ok(json.schemaVersion >= 36, `${file}: schemaVersion`);
      assert.ok(json.title);
      const ids = new Set();
      const titles = new Set();
      for (const p of allPanels(json)) {
        assert.ok(!ids.has(p.id), `${file}: panel id ${p.id} unique`);
        ids.add(p.id);
        if (p.type === 'row') continue;
        assert.ok(!titles.has(p.title), `${file}: panel title "${p.title}" unique`);
        titles.add(p.title);
        assert.ok(p.gridPos.x + p.gridPos.w <= 24, `${file}: ${p.title} fits in 24 columns`);
        assert.equal(p.datasource?.uid, DS_UID, `${file}: ${p.title} datasource`);
        assert.ok(p.targets?.length >= 1, `${file}: ${p.title} has a query`);
        for (const t of p.targets) {
          assert.equal(t.datasource?.uid, DS_UID, `${file}: ${p.title}/${t.refId} datasource`);
          assert.equal(t.rawQuery, true);
          assert.ok(['table', 'time_series'].includes(t.format), `${file}: ${p.title} format ${t.format}`);
          if (p.type === 'timeseries') assert.equal(t.format, 'time_series', `${file}: ${p.title} draws time series`);
        }
      }
      for (const v of json.templating.list) {
        if (v.type === 'query') {
          assert.equal(v.datasource?.uid, DS_UID, `${file}: variable ${v.name} datasource`);
          assert.ok(v.multi && v.includeAll, `${file}: ${v.name} multi-value with All`);
          assert.equal(v.allValue, "'__all'", `${file}: ${v.name} allValue (the SQL tests '__all' IN (...))`);
          assert.deepEqual(v.current.value, [ALL_VALUE], `${file}: ${v.name} defaults to All`);
        }
      }
    }
  });

  test('every query spells its variable formats out, names only defined variables, and has no SQL comments', () => {
    for (const q of ALL_QUERIES) {
      assert.ok(!/--|\/\*/.test(q.sql), `${q.key}: no comments (newer Grafana strips them before expanding macros)`);
      for (const m of q.sql.matchAll(/\$\{(\w+)(?::(\w+))?\}|\$(\w+)/g)) {
        const name = m[1] ?? m[3];
        if (m[3] && m[3].startsWith('__')) continue; /* macros */
        assert.ok(q.dashboard.templating.list.some((v) => v.name === name), `${q.key}: variable ${name} defined`);
        assert.equal(m[2], 'sqlstring', `${q.key}: ${m[0]} uses the sqlstring format`);
      }
    }
  });

  test('alert rules: structure, datasource, conditions, and the dashboard panels they point at', () => {
    assert.equal(alertFile.apiVersion, 1);
    const uids = new Set();
    for (const g of alertFile.groups) {
      assert.ok(g.name && g.folder && /^\d+[smh]$/.test(g.interval));
      for (const r of g.rules) {
        assert.ok(r.uid && !uids.has(r.uid) && r.uid.length <= 40, `rule uid ${r.uid}`);
        uids.add(r.uid);
        assert.ok(r.title);
        const refs = new Map(r.data.map((d) => [d.refId, d]));
        assert.ok(refs.has(r.condition), `${r.uid}: condition ${r.condition} is a query`);
        for (const d of r.data) {
          if (d.datasourceUid === '__expr__') {
            assert.ok(refs.has(d.model.expression), `${r.uid}/${d.refId}: expression input ${d.model.expression}`);
            assert.ok(['reduce', 'threshold'].includes(d.model.type));
          } else {
            assert.equal(d.datasourceUid, DS_UID, `${r.uid}/${d.refId}: datasource`);
            assert.equal(d.model.datasource.uid, DS_UID);
            assert.equal(d.model.format, 'time_series', `${r.uid}: alerting reads time series from SQL`);
            assert.ok(d.relativeTimeRange.from > d.relativeTimeRange.to);
          }
        }
        for (const [k, v] of Object.entries(r.labels ?? {})) assert.ok(!String(v).includes('$'), `${r.uid}: label ${k} (labels get environment expansion)`);
        for (const [k, v] of Object.entries(r.annotations ?? {})) assert.ok(!String(v).includes('${'), `${r.uid}: annotation ${k} (\${...} gets environment expansion)`);
        const dash = dashboards.find((d) => d.json.uid === r.dashboardUid);
        assert.ok(dash, `${r.uid}: dashboard ${r.dashboardUid}`);
        assert.ok(allPanels(dash.json).some((p) => p.id === r.panelId), `${r.uid}: panel ${r.panelId}`);
      }
    }
  });

  test('every panel, variable and alert rule has an oracle, and every oracle a query', () => {
    const keys = new Set(ALL_QUERIES.map((q) => q.key));
    for (const { json } of dashboards) {
      for (const p of allPanels(json)) {
        if (p.type !== 'row') assert.ok([...keys].some((k) => k.startsWith(`${json.uid}/panel/${p.title}/`)), `${json.uid}: panel ${p.title} has a query`);
      }
    }
    assert.deepEqual([...keys].filter((k) => !ORACLES[k]), [], 'queries without an oracle');
    assert.deepEqual(Object.keys(ORACLES).filter((k) => !keys.has(k)), [], 'oracles without a query');
    assert.deepEqual(RULES.map((r) => r.uid).sort(), Object.keys(ALERT_ORACLES).sort());
  });
});

/* ---------------- against PostgreSQL ---------------- */

describe('Grafana queries against data sent through the gateway', { skip: skip ?? false }, () => {
  let db;
  let gw;
  const readersToDrop = [];

  before(async () => {
    db = await createDatabase();
    const coll = await db.query('SELECT datcollate FROM pg_database WHERE datname = current_database()');
    assert.match(coll.rows[0].datcollate, /^(C|POSIX|C\.UTF-?8)$/i, 'the oracles order text by code point (scripts/pg.sh makes C.UTF-8 clusters)');
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'gw-grafana-'));
    const prices = path.join(dir, 'prices.yaml');
    await fsp.writeFile(prices, ['version: it-grafana-prices', 'models:',
      ...Object.entries(PRICES).flatMap(([id, [i, o]]) => [`  - id: ${id}`, `    pattern: "^${id}$"`, `    input: ${i}`, `    output: ${o}`]), ''].join('\n'));
    gw = await startGateway({ dsn: db.dsn, config: { pricing: { file: prices } } });

    const traceIds = {};
    for (const s of SEEDS) {
      const a = { 'gen_ai.operation.name': s.op };
      if (s.prov) a['gen_ai.provider.name'] = s.prov;
      if (s.model) Object.assign(a, { 'gen_ai.request.model': s.model, 'gen_ai.response.model': s.model });
      if (s.op === 'invoke_agent') a['gen_ai.agent.name'] = 'planner';
      if (s.in !== null) a['gen_ai.usage.input_tokens'] = s.in;
      if (s.out !== null) a['gen_ai.usage.output_tokens'] = s.out;
      if (s.cacheRead) a['gen_ai.usage.cache_read.input_tokens'] = s.cacheRead;
      if (s.reasoning) a['gen_ai.usage.reasoning.output_tokens'] = s.reasoning;
      if (s.reported !== undefined) a['gen_ai.usage.cost'] = s.reported;
      if (s.finish) a['gen_ai.response.finish_reasons'] = s.finish;
      if (s.ttft !== undefined) a['gen_ai.response.time_to_first_chunk'] = s.ttft;
      if (s.error) a['error.type'] = s.error;
      if (s.user) a['user.id'] = s.user;
      if (s.session) a['session.id'] = s.session;
      if (s.agent) a['gen_ai.agent.name'] = s.agent;
      if (s.workflow) a['traceloop.workflow.name'] = s.workflow;
      if (s.promptVersion) Object.assign(a, { 'gen_ai.prompt.name': 'graf-prompt', 'llm.prompt_template.version': s.promptVersion });
      const text = (role, t) => JSON.stringify([{ role, parts: [{ type: 'text', content: t }] }]);
      a['gen_ai.input.messages'] = text('user', s.prompt ?? `question ${s.h}:${s.m} from ${s.user ?? 'nobody'}`);
      if (s.status === 'ok' && s.op === 'chat') a['gen_ai.output.messages'] = text('assistant', s.response ?? `answer ${s.h}:${s.m}`);
      const sp = span({
        ...(s.trace ? { traceId: traceIds[s.trace] ??= randomTraceId() } : {}),
        parentSpanId: s.parent ? SEEDS.find((x) => x.id === s.parent).spanId : undefined,
        name: `${s.op} ${s.model ?? 'planner'}`, startNs: BigInt(s.t) * 1000000n, durationNs: BigInt(s.dur) * 1000000n, attributes: a,
        status: s.status === 'error' ? { code: 2, message: `${s.error} from upstream` } : { code: 1 },
      });
      s.traceId = sp.traceId;
      s.spanId = sp.spanId;
      s.otlp = sp;
    }
    for (const early of [true, false]) {
      for (const svc of new Set(SEEDS.map((s) => s.svc))) {
        const batch = SEEDS.filter((s) => s.svc === svc && !s.early === !early);
        if (!batch.length) continue;
        const r = await post(gw, '/v1/traces', toProtobuf(traceRequest(batch.map((s) => s.otlp), { service: svc })), PB);
        assert.equal(r.status, 200);
      }
      if (early) await waitForRows(db, SEEDS.filter((s) => s.early).map((s) => s.traceId), SEEDS.filter((s) => s.early).length, { settleMs: 0 });
    }
    const rows = await waitForRows(db, SEEDS.map((s) => s.traceId), SEEDS.length);
    /* the agent fill and the trace summaries run after each batch's commit: wait for both to be done */
    await waitFor(async () => {
      const r = await db.query(`SELECT (SELECT coalesce(sum(spans), 0)::int FROM ai_trace_summaries) AS spans,
        (SELECT count(*)::int FROM ai_interaction_traces WHERE agent_name IS NULL AND parent_span_id IS NOT NULL) AS unfilled`);
      return r.rows[0].spans === SEEDS.length && r.rows[0].unfilled === 0;
    }, { timeoutMs: 15000, what: 'trace summaries of every seed, and the agent fill' });
    assert.equal(rows.length, SEEDS.length);
    const stored = await db.query(`SELECT span_id, left(prompt_content, 300) AS prompt_preview, left(response_content, 300) AS response_preview,
      redaction_count, prompt_content, prompt_hash, total_cost_usd::text AS cost FROM ai_interaction_traces`);
    const bySpan = new Map(stored.rows.map((r) => [r.span_id, r]));
    for (const s of SEEDS) s.stored = bySpan.get(s.spanId);
  });

  after(async () => {
    /* a clean exit: under ASan/LSan a memory error or leak makes it non-zero */
    const exit = await gw?.stop();
    const log = gw?.logs().slice(-3000);
    await gw?.cleanup();
    await db?.drop();
    if (readersToDrop.length) {
      const admin = new pg.Client(pgClientConfig(process.env.GW_TEST_PG_DSN));
      await admin.connect();
      for (const r of readersToDrop) await admin.query(`DROP ROLE IF EXISTS "${r}"`).catch(() => {});
      await admin.end();
    }
    if (gw) assert.deepEqual(exit, { code: 0, signal: null }, `gateway exit; log:\n${log}`);
  });

  test('the pipeline stored what the oracles assume: costs, and a redacted prompt', () => {
    for (const s of SEEDS) {
      const want = s.costNano === null ? null : usd(s.costNano);
      assert.ok(sameCell(s.stored.cost, want), `${s.h}:${s.m} ${s.model}: cost ${s.stored.cost} != ${want}`);
    }
    const pii = SEEDS.find((s) => s.prompt);
    assert.ok(!pii.stored.prompt_content.includes(EMAIL), 'the email address is not stored');
    assert.match(pii.stored.prompt_preview, /ALPHA-1 please write to \[EMAIL[A-Z_]*\] about the invoice/);
    assert.ok(pii.stored.redaction_count >= 1);
    /* the rollups were written by the gateway's writer, not by this test */
    return db.query('SELECT sum(total_requests)::int AS n FROM trace_metrics_hourly').then((r) => assert.equal(r.rows[0].n, SEEDS.length));
  });

  for (const sc of SCENARIOS) {
    test(`every dashboard query returns the expected columns and values (${sc.name})`, async (t) => {
      for (const q of ALL_QUERIES) {
        await t.test(q.key, async () => {
          const { expected } = await checkQuery(db, q, q.sql, sc);
          if (sc.name === 'everything' && q.kind === 'panel') {
            assert.ok(expected.rows.length > 0 && expected.rows.some((r) => r.some((c) => typeof c === 'number' && c !== 0)), `${q.key}: the seeds exercise this panel`);
          }
        });
      }
    });
  }

  test('the variable expansion and the comparison catch wrong queries', async () => {
    const q = (key) => ALL_QUERIES.find((x) => x.key === key);
    const [all, filtered] = SCENARIOS;
    const broken = [
      /* p90 instead of p95 */
      [q(P('genai-overview', 'Latency by model')), (s) => s.replace('gw_hist_quantile(hist, 0.95)', 'gw_hist_quantile(hist, 0.90)'), all],
      /* p95 as the largest hourly p95 instead of the percentile of the merged histograms */
      [q(P('genai-overview', 'p95 latency')), () => 'SELECT max(p95_duration_ms) AS p95_ms FROM trace_metrics_hourly_v WHERE hour_bucket > $__timeFrom()::timestamptz - interval \'1 hour\' AND hour_bucket <= $__timeTo()::timestamptz', all],
      /* the model filter forgotten */
      [q(P('genai-overview', 'Cost per hour')), (s) => s.replace("\n  AND ('__all' IN (${model:sqlstring}) OR model_id IN (${model:sqlstring}))", ''), filtered],
      /* no lower time bound: the old span counts */
      [q(P('genai-cost', 'Top spenders (users)')), (s) => s.replace('$__timeFilter(start_time)', 'start_time <= $__timeTo()'), all],
      /* hours that start inside the range only: the first partial hour is lost */
      [q(P('genai-overview', 'Requests')), (s) => s.replace("hour_bucket > $__timeFrom()::timestamptz - interval '1 hour'", 'hour_bucket >= $__timeFrom()::timestamptz'), SCENARIOS[2]],
      /* a column renamed */
      [q(P('genai-cost', 'Cost by model')), (s) => s.replace('AS cost_per_request_usd', 'AS cost_per_request'), all],
      /* a series label that is not a string: Grafana would draw a series per model number, not per model */
      [q(P('genai-cost', 'Cost per hour by model')), (s) => s.replace("coalesce(nullif(model_id, ''), '(unknown)') AS metric", 'length(model_id) AS metric'), all],
      /* calls without an agent as an empty series name instead of (none) */
      [q(P('genai-agents', 'Cost per hour by agent')), (s) => s.replace("coalesce(nullif(agent_name, ''), '(none)') AS metric", 'agent_name AS metric'), all],
      /* the workflow's errors counted as its requests */
      [q(P('genai-agents', 'Cost and errors by workflow')), (s) => s.replace('sum(error_requests) AS errors', 'sum(total_requests) AS errors'), all],
      /* the most recent traces rather than the most expensive */
      [q(P('genai-agents', 'Top traces by cost')), (s) => s.replace('ORDER BY total_cost_usd DESC NULLS LAST, trace_id', 'ORDER BY start_time DESC, trace_id'), all],
      /* the model filter forgotten on the summaries */
      [q(P('genai-agents', 'Top traces by cost')), (s) => s.replace("\n  AND ('__all' IN (${model:sqlstring}) OR models && ARRAY[${model:sqlstring}]::text[])", ''), filtered],
      /* versions of a prompt merged */
      [q(P('genai-agents', 'Prompt versions')), (s) => s.replace('SELECT prompt_name, prompt_version,\n', "SELECT prompt_name, ''::text AS prompt_version,\n"), all],
      /* the service filter forgotten on the repeated prompts */
      [q(P('genai-agents', 'Repeated prompts (last hour)')), (s) => s.replace("WHERE ('__all' IN (${service:sqlstring}) OR service_name IN (${service:sqlstring}))\n", ''), filtered],
    ];
    for (const [query, mutate, sc] of broken) {
      assert.ok(query, 'query found');
      await assert.rejects(checkQuery(db, query, mutate(query.sql), sc), /rows|row \d+ column|columns/, `${query.key} broken must fail`);
    }
    /* a bare $model (no format) is refused rather than expanded one way or another */
    assert.throws(() => interpolateVariables('SELECT 1 WHERE model_id IN ($model)', { variables: dashboards[0].json.templating.list }), /give the format explicitly/);
  });

  test('the read-only role of grafana-reader.sql runs every query and cannot write', async () => {
    const reader = `grafana_reader_${process.pid}_${Date.now() % 100000}`;
    /* psql's variable interpolation, as the file is meant to be run: :"x" identifier, :'x' literal */
    const vars = { reader, password: "it's a secret", DBNAME: db.name };
    const sql = fs.readFileSync(READER_FILE, 'utf8').replace(/:"(\w+)"|:'(\w+)'/g, (m, id, lit) => (id ? `"${vars[id].replace(/"/g, '""')}"` : `'${vars[lit].replace(/'/g, "''")}'`));
    await db.query(sql);
    const client = new pg.Client(connectAs(db.dsn, reader, vars.password));
    await client.connect();
    try {
      assert.equal((await client.query('SHOW default_transaction_read_only')).rows[0].default_transaction_read_only, 'on');
      assert.equal((await client.query('SHOW statement_timeout')).rows[0].statement_timeout, '30s');
      for (const q of ALL_QUERIES) await checkQuery({ pool: client }, q, q.sql, SCENARIOS[0]);
      for (const r of RULES) {
        for (const d of r.data.filter((x) => x.datasourceUid === DS_UID)) {
          await client.query(expandQuery(d.model.rawSql, { variables: [], from: new Date(NOW - 3600e3), to: new Date(NOW) }));
        }
      }
      await assert.rejects(client.query("INSERT INTO trace_metrics_hourly_agents (hour_bucket) VALUES (now())"), /read-only transaction/);
      await client.query('BEGIN READ WRITE');
      await assert.rejects(client.query("INSERT INTO trace_metrics_hourly_agents (hour_bucket) VALUES (now())"), /permission denied/);
      await client.query('ROLLBACK');
      await client.query('BEGIN READ WRITE');
      await assert.rejects(client.query('DELETE FROM ai_interaction_traces'), /permission denied/);
      await client.query('ROLLBACK');
    } finally {
      await client.end();
      /* the grants live in this database, dropped after the suite; the role itself is cluster-wide */
      readersToDrop.push(reader);
    }
  });

  test('the agents dashboard agrees with sums over the raw rows: per agent, per workflow, per trace', async () => {
    const sc = SCENARIOS[0];
    const get = (title) => ALL_QUERIES.find((q) => q.key === P('genai-agents', title));
    const raw = async (sql) => (await db.query({ text: sql, values: [sc.from, sc.to], rowMode: 'array' })).rows;
    /* the rollups count whole hours: sc.from is on an hour, sc.to is now */
    for (const [title, col] of [['Cost and errors by agent', 'agent_name'], ['Cost and errors by workflow', 'workflow_name']]) {
      const { actual } = await checkQuery(db, get(title), get(title).sql, sc);
      const want = await raw(`SELECT coalesce(${col}, '(none)'), count(*)::int, count(*) FILTER (WHERE status = 'error')::int, coalesce(sum(total_cost_usd), 0)::text
        FROM ai_interaction_traces WHERE start_time >= $1 AND start_time <= $2 GROUP BY 1 ORDER BY 1`);
      const got = actual.rows.map((r) => [r[0], Number(r[1]), Number(r[2]), r[4]]).sort(by((r) => r[0]));
      assert.equal(got.length, want.length, title);
      got.forEach((r, i) => {
        assert.deepEqual(r.slice(0, 3), want[i].slice(0, 3), title);
        assert.ok(sameCell(r[3], Number(want[i][3])), `${title}: ${r[0]} cost ${r[3]} != ${want[i][3]}`);
      });
    }
    const { actual } = await checkQuery(db, get('Top traces by cost'), get('Top traces by cost').sql, sc);
    const traces = new Map((await raw(`SELECT trace_id, count(*)::int, count(*) FILTER (WHERE status = 'error')::int, sum(total_cost_usd)::text
      FROM ai_interaction_traces WHERE start_time >= $1::timestamptz - interval '1 day' AND start_time <= $2 GROUP BY 1`)).map((r) => [r[0], r.slice(1)]));
    for (const r of actual.rows) {
      const [spans, errors, cost] = traces.get(r[1]);
      assert.deepEqual([Number(r[6]), Number(r[9])], [spans, errors], r[1]);
      assert.ok(sameCell(r[12], cost === null ? null : Number(cost)), `${r[1]}: cost ${r[12]} != ${cost}`);
    }
    /* the call under the agent span took its name from the writer's fill, and says so */
    const child = SEEDS.find((s) => s.parent);
    const c = await db.query('SELECT agent_name, enrichment_flags FROM ai_interaction_traces WHERE span_id = $1', [child.spanId]);
    assert.equal(c.rows[0].agent_name, 'planner');
    assert.ok(c.rows[0].enrichment_flags.includes('agent_inherited'));
  });

  test('each top trace links to exactly its calls in the trace explorer', async () => {
    const top = ALL_QUERIES.find((q) => q.key === P('genai-agents', 'Top traces by cost'));
    const explorer = ALL_QUERIES.find((q) => q.key === P('genai-traces', 'Recent interactions'));
    const panel = allPanels(top.dashboard).find((p) => p.title === 'Top traces by cost');
    const link = panel.fieldConfig.overrides.find((o) => o.matcher.options === 'trace_id').properties.find((x) => x.id === 'links').value[0];
    const sc = SCENARIOS[0];
    const { actual } = await checkQuery(db, top, top.sql, sc);
    assert.ok(actual.rows.some((r) => r[6] >= 3), 'a trace of several calls is among them');
    for (const row of actual.rows) {
      const url = new URL(interpolateLink(link.url, { value: row[1], from: sc.from, to: sc.to }), 'http://grafana.local');
      const values = { ...sc.values, trace: url.searchParams.get('var-trace') };
      const at = { name: `trace ${row[1]}`, from: new Date(Number(url.searchParams.get('from'))), to: new Date(Number(url.searchParams.get('to'))), values };
      /* the explorer's oracle filters by trace id too; and the calls are the trace's spans, as many as the summary says */
      const { actual: calls } = await checkQuery(db, explorer, explorer.sql, at);
      assert.deepEqual(calls.rows.map((r) => r[2]).sort(), SEEDS.filter((s) => s.traceId === row[1]).map((s) => s.spanId).sort());
      assert.equal(calls.rows.length, Number(row[6]));
    }
  });

  test('alert rules fire exactly where the seeded data crosses their thresholds', async () => {
    /* T1: 40 min into the third hour (expensive hour, error burst, one very slow call); T2: just before it */
    const instants = [H0 + 2 * H + 40 * M, H0 + 2 * H - 5 * M];
    const fired = {};
    for (const T of instants) {
      for (const r of RULES) {
        const A = r.data.find((d) => d.datasourceUid === DS_UID);
        const B = r.data.find((d) => d.refId !== A.refId && d.model.type === 'reduce');
        const C = r.data.find((d) => d.refId === r.condition);
        assert.equal(B.model.expression, A.refId);
        assert.equal(C.model.expression, B.refId);
        const from = new Date(T - A.relativeTimeRange.from * 1000);
        const to = new Date(T - A.relativeTimeRange.to * 1000);
        const sql = expandQuery(A.model.rawSql, { variables: [], from, to });
        const res = await runSql(db, sql);
        const series = toSeries(res.fields, res.rows);
        const actual = new Map(series.map((s) => [JSON.stringify(s.labels), reduceSeries(s.points, B.model.reducer, B.model.settings?.mode)]));
        const expected = ALERT_ORACLES[r.uid](from, to);
        const msg = `${r.uid} at ${new Date(T).toISOString()}: ${JSON.stringify([...actual])} vs ${JSON.stringify([...expected])}\n${sql}`;
        assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), msg);
        for (const [k, v] of expected) {
          if (v === null) assert.ok(Number.isNaN(actual.get(k)), msg);
          else assert.ok(close(actual.get(k), v), msg);
        }
        const firing = [...actual].filter(([, v]) => threshold(v, C.model.conditions[0].evaluator)).map(([k]) => k).sort();
        const want = [...expected].filter(([, v]) => v !== null && threshold(v, C.model.conditions[0].evaluator)).map(([k]) => k).sort();
        assert.deepEqual(firing, want, msg);
        fired[`${r.uid}@${T === instants[0] ? 'T1' : 'T2'}`] = firing;
      }
    }
    /* and the seeds were chosen so that each rule both fires and stays quiet somewhere */
    assert.deepEqual(fired, {
      'genai-gw-cost-per-hour@T1': ['{}'],
      'genai-gw-error-rate@T1': ['{"service":"graf-chat"}'],
      'genai-gw-p95-latency@T1': ['{"model":"graf-mystery"}'],
      'genai-gw-cost-per-hour@T2': [],
      'genai-gw-error-rate@T2': [],
      'genai-gw-p95-latency@T2': ['{"model":"graf-large"}'],
    });
  });
});
