/*
 * grafana.mjs: turn the SQL of Grafana dashboards and alert rules into the SQL Grafana sends to
 * PostgreSQL, so tests can run every query of deploy/grafana against the real schema.
 *
 * Two steps, as in Grafana:
 * 1. Template variables (the browser, templateSrv.replace): `$var`, `${var}`, `${var:format}`,
 *    `[[var]]`. A multi-value variable with "All" selected becomes its custom allValue verbatim (no
 *    format is applied to it), else the list of all its options; formats sqlstring, csv, raw, text,
 *    singlequote, doublequote, pipe are those of Grafana's format registry (sqlstring: each value in
 *    single quotes, ' doubled, " as \"). A reference without a format goes through the PostgreSQL
 *    datasource's own interpolateVariable, whose treatment of single strings changed between Grafana
 *    versions; `strict` (the default) refuses such references so dashboards spell the format out.
 * 2. Macros (the server, pkg/tsdb/grafana-postgresql-datasource): first the global substitutions
 *    ($__interval_ms, $__interval, $__unixEpochFrom(), $__unixEpochTo()), then every match of
 *    \$(\w+)\(([^)]*)\) as the PostgreSQL macro engine does: $__timeFilter(c) -> c BETWEEN '<from>' AND
 *    '<to>' (RFC 3339 in UTC with Go's trimmed fraction), $__timeFrom()/$__timeTo() -> '<time>',
 *    $__timeGroup(c,'1h') -> floor(extract(epoch from c)/3600)*3600 (numbers printed like Go's %v),
 *    $__timeGroupAlias adds AS "time", a $__timeGroup directly followed by ',' is taken as the alias
 *    form (Grafana < 5.3 compatibility), unknown macros are errors, and arguments cannot contain ')'
 *    (the engine's regular expression stops there).
 *
 * Also here: listing every query of a dashboard (panels inside rows too, and query variables), reading
 * rows of a result the way the datasource builds time series (long format: string columns become
 * labels; with exactly one string column named "metric" it names the series), and the reduce and
 * threshold expressions of Grafana-managed alert rules.
 */

/** Go's time.RFC3339Nano of a UTC instant: fraction without trailing zeros, none when zero. */
export function goRfc3339Nano(date) {
  const iso = new Date(date).toISOString(); /* 2024-01-02T03:04:05.678Z */
  const m = /^(.*T\d\d:\d\d:\d\d)\.(\d{3})Z$/.exec(iso);
  if (!m) throw new Error(`cannot format ${iso}`);
  const frac = m[2].replace(/0+$/, '');
  return `${m[1]}${frac ? `.${frac}` : ''}Z`;
}

/** Go's fmt %v of a float64 (strconv 'g', shortest): exponent form when the exponent is < -4 or >= 6. */
export function goFloatV(x) {
  if (!Number.isFinite(x)) throw new Error(`not finite: ${x}`);
  if (x === 0) return '0';
  const [mant, expS] = x.toExponential().split('e'); /* shortest round-trip digits */
  const exp = Number(expS);
  const neg = mant.startsWith('-');
  const digits = mant.replace('-', '').replace('.', '');
  let out;
  if (exp < -4 || exp >= 6) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp);
    out = `${m}e${exp < 0 ? '-' : '+'}${e < 10 ? `0${e}` : e}`;
  } else if (exp < 0) {
    out = `0.${'0'.repeat(-exp - 1)}${digits}`;
  } else if (digits.length <= exp + 1) {
    out = digits + '0'.repeat(exp + 1 - digits.length);
  } else {
    out = `${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
  }
  return neg ? `-${out}` : out;
}

const UNIT_SECONDS = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** gtime.ParseInterval for the units a dashboard here may use; seconds. */
export function parseInterval(s) {
  const m = /^(\d+)(ms|s|m|h|d|w)$/.exec(s.trim());
  if (!m) throw new Error(`error parsing interval ${s}`);
  return Number(m[1]) * UNIT_SECONDS[m[2]];
}

/** gtime.FormatInterval: the largest whole unit. */
export function formatInterval(ms) {
  const units = [['y', 31536000000], ['d', 86400000], ['h', 3600000], ['m', 60000], ['s', 1000], ['ms', 1]];
  for (const [u, n] of units) if (ms >= n) return `${Math.floor(ms / n)}${u}`;
  return '1ms';
}

/* ---- step 1: template variables ---- */

const VARIABLE_RE = /\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}/g;
export const ALL_VALUE = '$__all';
const isAll = (v) => v === ALL_VALUE || (Array.isArray(v) && v[0] === ALL_VALUE);

function sqlString(v) {
  const q = (s) => `'${String(s).replace(/'|"/g, (c) => (c === "'" ? "''" : '\\"'))}'`;
  return Array.isArray(v) ? v.map(q).join(',') : q(v);
}

const FORMATS = {
  sqlstring: sqlString,
  csv: (v) => (Array.isArray(v) ? v.join(',') : String(v)),
  raw: (v) => (Array.isArray(v) ? v.join(',') : String(v)),
  text: (v) => (Array.isArray(v) ? v.join(' + ') : String(v)),
  singlequote: (v) => {
    const q = (s) => `'${String(s).replace(/'/g, "\\'")}'`;
    return Array.isArray(v) ? v.map(q).join(',') : q(v);
  },
  doublequote: (v) => {
    const q = (s) => `"${String(s).replace(/"/g, '\\"')}"`;
    return Array.isArray(v) ? v.map(q).join(',') : q(v);
  },
  pipe: (v) => (Array.isArray(v) ? v.join('|') : String(v)),
};

/** The PostgreSQL datasource's interpolateVariable (current Grafana): used for references without a format. */
function postgresDefaultFormat(value) {
  if (typeof value === 'string') return value.replace(/'/g, "''");
  if (typeof value === 'number') return String(value);
  if (Array.isArray(value)) return value.map((v) => `'${String(v).replace(/'/g, "''")}'`).join(',');
  return value;
}

/**
 * Replace template variables in `sql`. `variables`: the dashboard's templating.list. `values`: name ->
 * selected value (string, array of strings, or ALL_VALUE / [ALL_VALUE]); a variable missing from it keeps
 * its saved current.value. `options`: name -> list of option values (what "All" expands to without a
 * custom allValue). `builtins`: name -> string (e.g. __interval).
 */
export function interpolateVariables(sql, { variables = [], values = {}, options = {}, builtins = {}, strict = true } = {}) {
  const byName = new Map(variables.map((v) => [v.name, v]));
  const replace = (text) => text.replace(VARIABLE_RE, (match, v1, v2, f2, v3, fieldPath, f3) => {
    const name = v1 || v2 || v3;
    const fmt = f2 || f3;
    if (builtins[name] !== undefined) return builtins[name];
    const variable = byName.get(name);
    if (!variable) return match; /* not a variable: left alone, as Grafana does (macros pass through here) */
    if (fieldPath) throw new Error(`\${${name}.${fieldPath}}: field paths are not supported here`);
    if (!fmt && strict) {
      throw new Error(`${match}: give the format explicitly (e.g. \${${name}:sqlstring}); bare references interpolate differently across Grafana versions`);
    }
    let value = name in values ? values[name] : variable.current?.value;
    if (value === undefined) throw new Error(`variable ${name} has no value`);
    if (isAll(value)) {
      if (fmt === 'text') return 'All';
      if (variable.allValue !== undefined && variable.allValue !== null && variable.allValue !== '') {
        return replace(variable.allValue); /* a custom all value is used verbatim */
      }
      value = options[name];
      if (!Array.isArray(value)) throw new Error(`variable ${name}: "All" without allValue needs its options`);
    }
    if (!fmt) return postgresDefaultFormat(value);
    const f = FORMATS[fmt];
    if (!f) throw new Error(`${match}: format ${fmt} not supported here`);
    return f(value);
  });
  return replace(sql);
}

/* ---- step 2: macros ---- */

const MACRO_RE = /\$([_a-zA-Z0-9]+)\(([^)]*)\)/g;

function evaluateMacro(name, args, { from, to }) {
  const need = (n) => {
    if (args.length < n || (n > 0 && args[0] === '')) throw new Error(`missing time column argument for macro ${name}`);
  };
  switch (name) {
    case '__time':
      need(1);
      return `${args[0]} AS "time"`;
    case '__timeEpoch':
      need(1);
      return `extract(epoch from ${args[0]}) as "time"`;
    case '__timeFilter':
      need(1);
      return `${args[0]} BETWEEN '${goRfc3339Nano(from)}' AND '${goRfc3339Nano(to)}'`;
    case '__timeFrom':
      return `'${goRfc3339Nano(from)}'`;
    case '__timeTo':
      return `'${goRfc3339Nano(to)}'`;
    case '__timeGroup': {
      if (args.length < 2) throw new Error(`macro ${name} needs time column and interval and optional fill value`);
      if (args.length === 3) throw new Error(`macro ${name}: fill values are not emulated here`);
      const sec = parseInterval(args[1].replace(/^'+|'+$/g, ''));
      return `floor(extract(epoch from ${args[0]})/${goFloatV(sec)})*${goFloatV(sec)}`;
    }
    case '__timeGroupAlias':
      return `${evaluateMacro('__timeGroup', args, { from, to })} AS "time"`;
    case '__unixEpochFilter':
      need(1);
      return `${args[0]} >= ${Math.floor(from.getTime() / 1000)} AND ${args[0]} <= ${Math.floor(to.getTime() / 1000)}`;
    case '__unixEpochNanoFilter':
      need(1);
      return `${args[0]} >= ${BigInt(from.getTime()) * 1000000n} AND ${args[0]} <= ${BigInt(to.getTime()) * 1000000n}`;
    case '__unixEpochNanoFrom':
      return `${BigInt(from.getTime()) * 1000000n}`;
    case '__unixEpochNanoTo':
      return `${BigInt(to.getTime()) * 1000000n}`;
    case '__unixEpochGroup': {
      if (args.length < 2) throw new Error(`macro ${name} needs time column and interval and optional fill value`);
      if (args.length === 3) throw new Error(`macro ${name}: fill values are not emulated here`);
      const sec = parseInterval(args[1].replace(/^'+|'+$/g, ''));
      return `floor((${args[0]})/${goFloatV(sec)})*${goFloatV(sec)}`;
    }
    case '__unixEpochGroupAlias':
      return `${evaluateMacro('__unixEpochGroup', args, { from, to })} AS "time"`;
    default:
      throw new Error(`unknown macro "${name}"`);
  }
}

/** The server-side expansion for the time range [from, to] (Dates) and the query interval (ms). */
export function expandMacros(sql, { from, to, intervalMs = 60000 }) {
  let s = sql;
  s = s.replaceAll('$__interval_ms', String(intervalMs));
  s = s.replaceAll('$__interval', formatInterval(intervalMs));
  s = s.replaceAll('$__unixEpochFrom()', String(Math.floor(from.getTime() / 1000)));
  s = s.replaceAll('$__unixEpochTo()', String(Math.floor(to.getTime() / 1000)));
  const original = s;
  return s.replace(MACRO_RE, (whole, name, argText) => {
    let macro = name;
    if (macro === '__timeGroup') {
      /* Grafana looks up the first occurrence of the same text and checks the character after it */
      const i = original.indexOf(whole);
      if (i >= 0 && original[i + whole.length] === ',') macro = '__timeGroupAlias';
    }
    const args = argText.split(',').map((a) => a.trim());
    return evaluateMacro(macro, args, { from, to });
  });
}

/**
 * Both steps; then refuses what would reach PostgreSQL still holding a '$name' Grafana left alone
 * (a misspelt variable), outside string literals.
 */
export function expandQuery(sql, ctx) {
  const out = expandMacros(interpolateVariables(sql, ctx), ctx);
  const noStrings = out.replace(/'(?:[^']|'')*'/g, "''");
  const left = /\$[A-Za-z_]\w*/.exec(noStrings);
  if (left) throw new Error(`${left[0]} left in the expanded SQL:\n${out}`);
  return out;
}

/* ---- dashboards ---- */

/** Every panel of a dashboard, those nested in rows included. */
export function allPanels(dash) {
  const out = [];
  const walk = (list) => {
    for (const p of list ?? []) {
      out.push(p);
      if (p.panels) walk(p.panels);
    }
  };
  walk(dash.panels);
  return out;
}

/**
 * Every SQL query of a dashboard: { key, kind: 'panel'|'variable', dashboard, panel?, target?, variable?,
 * sql, format }. Keys: "<uid>/panel/<title>/<refId>" and "<uid>/variable/<name>".
 */
export function dashboardQueries(dash) {
  const out = [];
  for (const p of allPanels(dash)) {
    for (const t of p.targets ?? []) {
      if (t.hide) continue;
      const sql = t.rawSql ?? t.query;
      out.push({ key: `${dash.uid}/panel/${p.title}/${t.refId}`, kind: 'panel', dashboard: dash, panel: p, target: t, sql, format: t.format ?? 'time_series' });
    }
  }
  for (const v of dash.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const sql = typeof v.query === 'string' ? v.query : v.query?.rawSql;
    out.push({ key: `${dash.uid}/variable/${v.name}`, kind: 'variable', dashboard: dash, variable: v, sql, format: 'table' });
  }
  return out;
}

/* ---- results as Grafana reads them ---- */

/** PostgreSQL type oids as Grafana's SQL datasource converts them: text types become string fields. */
const PG_TEXT_OIDS = new Set([18, 19, 25, 1042, 1043]);
const PG_TIME_OIDS = new Set([1082, 1114, 1184]);
export function fieldKind(dataTypeID) {
  if (PG_TEXT_OIDS.has(dataTypeID)) return 'string';
  if (PG_TIME_OIDS.has(dataTypeID)) return 'time';
  return 'number';
}

/**
 * A time-series result as Grafana's SQL datasource turns it into series. `fields`: [{ name, kind }] with
 * kind 'string' | 'number' | 'time' (fieldKind of the column type); `rows`: arrays. Long format: string
 * columns become labels of each numeric column; with exactly three columns of which one string column
 * named "metric", that column names the series instead. Returns [{ name, labels, points: [[ms, number|null]] }].
 * Throws where Grafana answers with an error (no time column) and where it would mis-draw (rows not
 * sorted by time).
 */
export function toSeries(fields, rows) {
  const timeIdx = fields.findIndex((f) => f.name === 'time');
  if (timeIdx < 0) throw new Error('time column is missing');
  const toMs = (t) => (t instanceof Date ? t.getTime() : Number(t) * 1000);
  for (let i = 1; i < rows.length; i++) {
    if (toMs(rows[i][timeIdx]) < toMs(rows[i - 1][timeIdx])) throw new Error('time series rows are not sorted by time');
  }
  const labelIdx = fields.map((f, i) => i).filter((i) => i !== timeIdx && fields[i].kind === 'string');
  const valueIdx = fields.map((f, i) => i).filter((i) => i !== timeIdx && fields[i].kind === 'number');
  const legacyMetric = fields.length === 3 && labelIdx.length === 1 && fields[labelIdx[0]].name === 'metric';
  const series = new Map();
  for (const r of rows) {
    const labels = Object.fromEntries(labelIdx.map((i) => [fields[i].name, r[i] ?? '']));
    for (const vi of valueIdx) {
      const name = legacyMetric ? labels.metric : fields[vi].name;
      const lbl = legacyMetric ? {} : labels;
      const key = JSON.stringify([name, lbl]);
      if (!series.has(key)) series.set(key, { name, labels: lbl, points: [] });
      const v = r[vi];
      series.get(key).points.push([toMs(r[timeIdx]), v === null || v === undefined ? null : Number(v)]);
    }
  }
  return [...series.values()];
}

/* ---- alert rule expressions ---- */

const REDUCERS = {
  last: (xs) => xs[xs.length - 1],
  max: (xs) => Math.max(...xs),
  min: (xs) => Math.min(...xs),
  sum: (xs) => xs.reduce((a, b) => a + b, 0),
  mean: (xs) => xs.reduce((a, b) => a + b, 0) / xs.length,
  count: (xs) => xs.length,
};

/** Grafana's reduce expression over one series: NaN for none (dropNN drops null/NaN first). */
export function reduceSeries(points, reducer, mode = 'strict') {
  const f = REDUCERS[reducer];
  if (!f) throw new Error(`reducer ${reducer} not emulated`);
  let xs = points.map((p) => (p[1] === null ? NaN : p[1]));
  if (mode === 'dropNN') xs = xs.filter((x) => !Number.isNaN(x));
  else if (mode !== 'strict') throw new Error(`reduce mode ${mode} not emulated`);
  if (!xs.length) return NaN;
  if (xs.some(Number.isNaN)) return NaN;
  return f(xs);
}

/** Grafana's threshold expression: 1 (firing) or 0. */
export function threshold(value, evaluator) {
  const [a, b] = evaluator.params;
  if (Number.isNaN(value)) return 0;
  switch (evaluator.type) {
    case 'gt': return value > a ? 1 : 0;
    case 'lt': return value < a ? 1 : 0;
    case 'within_range': return value > a && value < b ? 1 : 0;
    case 'outside_range': return value < a || value > b ? 1 : 0;
    default: throw new Error(`evaluator ${evaluator.type} not emulated`);
  }
}

/* ---- provisioning: where dashboards and alert rules land ---- */

/*
 * Grafana's file provisioning of folders, as far as the genai-gateway files use it (pkg/services/
 * provisioning: alerting is provisioned before dashboards at start; the dashboard file reader runs again
 * every updateIntervalSeconds):
 * - an alert rule group names its folder by title (`folder`): the root folder of that title, else a new
 *   one with a random uid;
 * - a dashboard provider with `folderUid`: the folder of that uid; else a new root folder with that uid
 *   and the provider's `folder` title, which Grafana 10.4 to 11.2 refuse when a root folder of that title
 *   exists (409: "a folder with the same name already exists"), and 11.3 on create anyway (two folders of
 *   one title); without `folderUid`: the root folder of that title, else a new one with a random uid.
 * Returns { folders: [{uid, title}], dashboards: folder uid per provider, rules: folder uid per group };
 * throws as Grafana's provisioning fails. order: 'alerting-first' (Grafana's) or 'dashboards-first'.
 */
export function provisionFolders({ alerting, dashboards, version = '11.2', order = 'alerting-first', polls = 2 }) {
  const folders = [];
  let n = 0;
  const newUid = () => `gen${++n}${Math.random().toString(36).slice(2, 8)}`;
  const [major, minor] = version.split('.').map(Number);
  const refusesDuplicateTitle = major < 11 || (major === 11 && minor <= 2);
  const byTitle = (title) => folders.find((f) => f.title === title);
  const out = { folders, dashboards: [], rules: [] };
  const doAlerting = () => {
    out.rules = (alerting?.groups ?? []).map((g) => {
      if (!g.folder) throw new Error(`alert rule group ${g.name}: no folder`);
      let f = byTitle(g.folder);
      if (!f) folders.push((f = { uid: newUid(), title: g.folder }));
      return f.uid;
    });
  };
  const doDashboards = () => {
    out.dashboards = (dashboards?.providers ?? []).map((p) => {
      if (p.folderUid) {
        let f = folders.find((x) => x.uid === p.folderUid);
        if (f) return f.uid;
        if (byTitle(p.folder) && refusesDuplicateTitle) {
          throw new Error(`Grafana ${version}: dashboard provider ${p.name}: folder "${p.folder}" (uid ${p.folderUid}): 409 a folder with the same name already exists`);
        }
        folders.push((f = { uid: p.folderUid, title: p.folder }));
        return f.uid;
      }
      if (!p.folder) return 'general';
      let f = byTitle(p.folder);
      if (!f) folders.push((f = { uid: newUid(), title: p.folder }));
      return f.uid;
    });
  };
  if (order === 'alerting-first') doAlerting();
  for (let i = 0; i < polls; i++) {
    doDashboards();
    if (i === 0 && order !== 'alerting-first') doAlerting();
  }
  return out;
}

/* ---- data links ---- */

/* Grafana's percentencode format: encodeURIComponent, and !'()* too. */
const percentEncode = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/*
 * A field data link's URL for one cell, as Grafana interpolates it: ${__value.raw} / ${__value.text}
 * (with an optional format: percentencode, raw, or none), ${__url_time_range} (from=<ms>&to=<ms>).
 * Other references are errors here.
 */
export function interpolateLink(url, { value, from, to }) {
  return url.replace(/\$\{([^}:]+)(?::(\w+))?\}/g, (m, name, fmt) => {
    if (name === '__url_time_range') return `from=${from.getTime()}&to=${to.getTime()}`;
    if (name === '__value.raw' || name === '__value.text') {
      const v = value === null || value === undefined ? '' : String(value);
      if (!fmt || fmt === 'raw') return v;
      if (fmt === 'percentencode') return percentEncode(v);
      throw new Error(`${m}: format ${fmt} not emulated`);
    }
    throw new Error(`${m}: not emulated`);
  });
}
