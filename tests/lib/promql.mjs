/*
 * promql.mjs: enough PromQL to evaluate the operations dashboard's queries against two scrapes of a real
 * gateway's /metrics, as Prometheus would over the interval between them (no Prometheus here).
 *
 * Grammar (anything else throws, so a dashboard query outside it fails its test instead of passing
 * unchecked):
 *   expr   := agg | call | selector | expr "/" expr
 *   agg    := ("sum" | "count" | "min" | "max") [ "by" "(" labels ")" ] "(" expr ")"
 *   call   := "rate" "(" selector "[" duration "]" ")" | "histogram_quantile" "(" number "," expr ")"
 *   selector := name [ "{" label ("=" | "=~") "string" , ... "}" ]
 * Semantics as Prometheus: rate is the increase between the scrapes over their distance in seconds (the
 * scrapes stand for the range's first and last samples); histogram_quantile interpolates linearly inside
 * the bucket and answers the highest finite bound for the +Inf bucket; "/" matches series with
 * identical labels. Grafana's template variables are replaced first (vars: { name: value }).
 */

/** Parse Prometheus text into [{ name, labels, value }]. */
export function parseExposition(text, extraLabels = {}) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) throw new Error(`bad exposition line: ${line}`);
    const labels = { ...extraLabels };
    for (const l of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: m[4] === '+Inf' ? Infinity : Number(m[4]) });
  }
  return out;
}

const key = (labels) => JSON.stringify(Object.keys(labels).sort().map((k) => [k, labels[k]]));

function tokenize(src) {
  const toks = [];
  const re = /\s*(?:([a-zA-Z_:][a-zA-Z0-9_:]*)|("(?:[^"\\]|\\.)*")|(\d+(?:\.\d+)?(?:[smhd])?)|(=~|!=|[{}()[\],=/]))/y;
  for (;;) {
    while (re.lastIndex < src.length && /\s/.test(src[re.lastIndex])) re.lastIndex++;
    if (re.lastIndex >= src.length) return toks;
    const at = re.lastIndex;
    const m = re.exec(src);
    if (!m) throw new Error(`cannot parse PromQL near: ${src.slice(at)}`);
    toks.push(m[1] ? { t: 'id', v: m[1] } : m[2] ? { t: 'str', v: JSON.parse(m[2]) } : m[3] ? { t: 'num', v: m[3] } : { t: 'op', v: m[4] });
  }
}

function parser(toks) {
  let p = 0;
  const peek = () => toks[p];
  const take = (v) => {
    const t = toks[p++];
    if (!t || (v !== undefined && t.v !== v)) throw new Error(`PromQL: expected ${v} at token ${p}, got ${t?.v}`);
    return t;
  };
  function selector() {
    const name = take().v;
    const matchers = [];
    if (peek()?.v === '{') {
      take('{');
      while (peek().v !== '}') {
        const label = take().v;
        const op = take().v;
        if (op !== '=' && op !== '=~') throw new Error(`PromQL: matcher ${op} not supported`);
        matchers.push({ label, op, value: take().v });
        if (peek().v === ',') take(',');
      }
      take('}');
    }
    return { type: 'sel', name, matchers };
  }
  function primary() {
    const t = peek();
    if (t.t !== 'id') throw new Error(`PromQL: unexpected ${t.v}`);
    if (['sum', 'count', 'min', 'max'].includes(t.v)) {
      take();
      let by = null;
      if (peek().v === 'by') {
        take('by');
        take('(');
        by = [];
        while (peek().v !== ')') {
          by.push(take().v);
          if (peek().v === ',') take(',');
        }
        take(')');
      }
      take('(');
      const e = expr();
      take(')');
      return { type: 'agg', op: t.v, by, e };
    }
    if (t.v === 'rate') {
      take();
      take('(');
      const s = selector();
      take('[');
      take();
      take(']');
      take(')');
      return { type: 'rate', s };
    }
    if (t.v === 'histogram_quantile') {
      take();
      take('(');
      const q = Number(take().v);
      take(',');
      const e = expr();
      take(')');
      return { type: 'hq', q, e };
    }
    return selector();
  }
  function expr() {
    let left = primary();
    while (peek()?.v === '/') {
      take('/');
      left = { type: 'div', l: left, r: primary() };
    }
    return left;
  }
  const e = expr();
  if (p !== toks.length) throw new Error(`PromQL: trailing tokens from ${toks[p].v}`);
  return e;
}

function matches(s, sel) {
  if (s.name !== sel.name) return false;
  return sel.matchers.every((m) => {
    const v = s.labels[m.label] ?? '';
    return m.op === '=' ? v === m.value : new RegExp(`^(?:${m.value})$`).test(v);
  });
}

function quantile(q, buckets) {
  buckets.sort((a, b) => a.le - b.le);
  const total = buckets[buckets.length - 1].v;
  if (!(total > 0)) return NaN;
  const rank = q * total;
  let prevLe = 0;
  let prevV = 0;
  for (const b of buckets) {
    if (b.v >= rank) {
      if (b.le === Infinity) return prevLe;
      return prevLe + (b.le - prevLe) * ((rank - prevV) / (b.v - prevV || 1));
    }
    prevLe = b.le;
    prevV = b.v;
  }
  return prevLe;
}

/**
 * Evaluate `query` over scrapes s1 (at t1 ms) and s2 (at t2 ms), each a parseExposition result.
 * Returns [{ labels, value }].
 */
export function evaluate(query, { s1, s2, t1, t2, vars = {} }) {
  const src = query.replace(/\$(\w+)/g, (all, v) => {
    if (!(v in vars)) throw new Error(`PromQL: unknown variable $${v}`);
    return vars[v];
  });
  const ast = parser(tokenize(src));
  const dt = (t2 - t1) / 1000;
  function ev(n) {
    switch (n.type) {
      case 'sel':
        return s2.filter((s) => matches(s, n)).map((s) => ({ labels: { ...s.labels }, value: s.value }));
      case 'rate': {
        const before = new Map(s1.filter((s) => matches(s, n.s)).map((s) => [key(s.labels), s.value]));
        return s2.filter((s) => matches(s, n.s) && before.has(key(s.labels)))
          .map((s) => ({ labels: { ...s.labels }, value: Math.max(0, s.value - before.get(key(s.labels))) / dt }));
      }
      case 'agg': {
        const groups = new Map();
        for (const x of ev(n.e)) {
          const labels = {};
          for (const l of n.by ?? []) if (x.labels[l] !== undefined) labels[l] = x.labels[l];
          const k = key(labels);
          if (!groups.has(k)) groups.set(k, { labels, values: [] });
          groups.get(k).values.push(x.value);
        }
        return [...groups.values()].map((g) => ({
          labels: g.labels,
          value: n.op === 'sum' ? g.values.reduce((a, b) => a + b, 0) : n.op === 'count' ? g.values.length
            : n.op === 'min' ? Math.min(...g.values) : Math.max(...g.values),
        }));
      }
      case 'hq': {
        const groups = new Map();
        for (const x of ev(n.e)) {
          const { le, ...rest } = x.labels;
          if (le === undefined) throw new Error('histogram_quantile over series without le');
          const k = key(rest);
          if (!groups.has(k)) groups.set(k, { labels: rest, buckets: [] });
          groups.get(k).buckets.push({ le: le === '+Inf' ? Infinity : Number(le), v: x.value });
        }
        return [...groups.values()].map((g) => ({ labels: g.labels, value: quantile(n.q, g.buckets) }));
      }
      case 'div': {
        const r = new Map(ev(n.r).map((x) => [key(x.labels), x.value]));
        return ev(n.l).filter((x) => r.has(key(x.labels))).map((x) => ({ labels: x.labels, value: x.value / r.get(key(x.labels)) }));
      }
      default:
        throw new Error(`PromQL: ${n.type}`);
    }
  }
  return ev(ast);
}
