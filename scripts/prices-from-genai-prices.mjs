#!/usr/bin/env node
/*
 * prices-from-genai-prices.mjs: a maintainer's tool, not run by the build or the tests. It prints price
 * entries in gateway/cost/prices.yaml's format for the current text models of the major providers that the
 * shipped table does not price yet, from the price data of pydantic/genai-prices as bundled in its npm
 * package (each provider's data names the provider's own pricing pages, kept in every entry's `source`).
 *
 *   npm pack @pydantic/genai-prices@0.1.8 && tar xzf pydantic-genai-prices-0.1.8.tgz
 *   node scripts/prices-from-genai-prices.mjs ./package 2026-09-23 > /tmp/new-entries.yaml
 *
 * (2026-09-23: the package version's publication date, the `taken` of every entry). What it leaves out,
 * and why, goes to stderr: deprecated models, models without token prices (audio, images, per-page OCR,
 * free tiers), prices that depend on the time of day, more than one long-context step, prices the data
 * itself marks as unverified ("imported from OpenRouter", "can't find", "trusting"), and names the shipped
 * table already prices (the shipped entry stays: docs/pricing.md lists where the two sources disagree).
 * Patterns are anchored and case-insensitive and accept the provider prefixes LiteLLM and the SDKs use.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const [pkgDir, taken = 'unknown'] = process.argv.slice(2);
if (!pkgDir) {
  console.error('usage: prices-from-genai-prices.mjs PACKAGE_DIR [TAKEN_DATE]');
  process.exit(2);
}
const here = path.dirname(new URL(import.meta.url).pathname);
const require = createRequire(path.join(here, '../tests/e2e/package.json'));
const YAML = require('yaml');
const { findProvider } = await import(path.resolve(pkgDir, 'dist/index.js'));

const shipped = YAML.parse(fs.readFileSync(path.join(here, '../gateway/cost/prices.yaml'), 'utf8')).models
  .map((m) => ({ id: m.id, re: new RegExp(m.pattern, 'i') }));

const esc = (s) => s.replace(/[\\^$.|?*+()[\]{}]/g, '\\$&');
const BEDROCK = '(?:bedrock/)?(?:(?:us|eu|apac|jp|au|global)\\.)?';
/* provider: [prefix group, name filter, sample prefixes used to test a pattern] */
const PROVIDERS = {
  openai: { prefix: '(?:openai/|azure/|openrouter/openai/)?', skip: /audio|realtime|transcribe|tts|image|whisper|moderation|computer-use|search|deep-research|^ft:|\.ft-|:|^(ada|babbage|curie|davinci)|text-davinci/ },
  anthropic: { prefix: `(?:anthropic/|vertex_ai/)?${BEDROCK}(?:anthropic\\.)?`, skip: /^claude-(v1|2)/, bedrock: 'anthropic.' },
  google: { prefix: '(?:gemini/|google/|vertex_ai/|models/)?', skip: /^claude|tts|image|live|omni|native-audio|^gemma|vision/ },
  mistral: { prefix: '(?:mistral/|mistralai/)?', skip: /ocr|voxtral|:free/ },
  cohere: { prefix: `(?:cohere/)?${BEDROCK}(?:cohere\\.)?`, skip: /^$/ },
  'x-ai': { prefix: '(?:xai/|x-ai/|x_ai/)?', skip: /image|vision/ },
  deepseek: { prefix: '(?:deepseek/|deepseek-ai/)?', skip: /^$/ },
  aws: { prefix: BEDROCK, only: /^meta\./, skip: /^$/ },
};

const left = [];
const leave = (p, m, why) => left.push(`${p}/${m.id}: ${why}`);

/* match logic -> [regex source, sample names] */
function pattern(match) {
  if (match.equals !== undefined) return [esc(match.equals), [match.equals]];
  if (match.starts_with !== undefined) return [`${esc(match.starts_with)}.*`, [match.starts_with, `${match.starts_with}-20250101`]];
  if (match.contains !== undefined) return [`.*${esc(match.contains)}.*`, [match.contains]];
  if (match.ends_with !== undefined) return [`.*${esc(match.ends_with)}`, [match.ends_with]];
  if (match.regex !== undefined) return [match.regex.replace(/^\^/, '').replace(/\$$/, ''), []];
  if (match.or) {
    const parts = match.or.map(pattern);
    if (parts.some((x) => x === null)) return null;
    return [parts.map((x) => x[0]).join('|'), parts.flatMap((x) => x[1])];
  }
  return null; /* and: left out */
}

/* genai-prices prices -> our rates (USD per 1M tokens), or a reason to leave it out */
function rates(prices) {
  const out = {};
  let long = null;
  const map = { input_mtok: 'input', output_mtok: 'output', cache_read_mtok: 'cache_read', cache_write_mtok: 'cache_write', cache_write_1h_mtok: 'cache_write_1h' };
  for (const [k, ours] of Object.entries(map)) {
    const v = prices[k];
    if (v === undefined) continue;
    if (typeof v === 'number') {
      out[ours] = v;
    } else if (v && typeof v.base === 'number' && Array.isArray(v.tiers)) {
      if (v.tiers.length !== 1) return 'more than one long-context step';
      out[ours] = v.base;
      long ??= { threshold: v.tiers[0].start };
      if (long.threshold !== v.tiers[0].start) return 'long-context steps at different thresholds';
      long[ours] = v.tiers[0].price;
    } else {
      return `price ${k} of an unknown shape`;
    }
  }
  if (out.input === undefined) return 'no token price';
  out.output ??= 0;
  if (long) out.long_context = long;
  return out;
}

const num = (v) => String(Number(v.toFixed(6)));
const yamlRates = (r, ind) => {
  const lines = [];
  for (const k of ['input', 'output', 'cache_read', 'cache_write', 'cache_write_1h']) if (r[k] !== undefined) lines.push(`${ind}${k}: ${num(r[k])}`);
  if (r.long_context) {
    const l = r.long_context;
    const parts = [`threshold: ${l.threshold}`, ...['input', 'output', 'cache_read', 'cache_write'].filter((k) => l[k] !== undefined).map((k) => `${k}: ${num(l[k])}`)];
    lines.push(`${ind}long_context: {${parts.join(', ')}}`);
  }
  return lines;
};

const out = [];
const added = [];
for (const [pid, conf] of Object.entries(PROVIDERS)) {
  const p = findProvider({ providerId: pid });
  const url = (p.pricing_urls ?? [])[0] ?? p.name;
  out.push(`  # ---- ${p.name}: genai-prices 0.1.8, from ${url} ----`);
  for (const m of p.models) {
    if (conf.only && !conf.only.test(m.id)) continue;
    if (conf.skip.test(m.id)) continue;
    if (m.deprecated) { leave(pid, m, 'deprecated'); continue; }
    if (/openrouter|can't find|trusting|verify against/i.test(m.price_comments ?? '')) { leave(pid, m, `unverified in the source: ${m.price_comments}`); continue; }
    const pat = pattern(m.match);
    if (!pat) { leave(pid, m, 'a match rule this tool does not translate'); continue; }
    const [src, samples] = pat;
    const full = `^${conf.prefix}(?:${src})$`;
    let re;
    try { re = new RegExp(full, 'i'); } catch (e) { leave(pid, m, `pattern: ${e.message}`); continue; }
    const names = [...samples, ...samples.map((s) => (conf.bedrock ? `us.${conf.bedrock}${s}-v1:0` : s)), ...(pid === 'aws' ? [m.id] : [])];
    const taken0 = names.map((n) => shipped.find((s) => s.re.test(n))).find(Boolean);
    if (taken0) { leave(pid, m, `already priced by the shipped ${taken0.id}`); continue; }
    const clash = added.find((a) => names.some((n) => a.re.test(n)) || a.names.some((n) => re.test(n)));
    if (clash) { leave(pid, m, `overlaps ${clash.id} from this source`); continue; }
    const periods = Array.isArray(m.prices) ? m.prices : [{ prices: m.prices }];
    if (periods.some((x) => x.constraint && x.constraint.type !== 'start_date')) { leave(pid, m, 'prices by time of day'); continue; }
    const conv = periods.map((x) => ({ from: x.constraint?.start_date, r: rates(x.prices) }));
    const bad = conv.find((x) => typeof x.r === 'string');
    if (bad) { leave(pid, m, bad.r); continue; }
    /* the family name without -latest, unless another model of the provider has that id */
    const bare = m.id.replace(/-latest$/, '');
    const id = pid === 'aws' || (bare !== m.id && p.models.some((o) => o.id === bare)) ? m.id : bare;
    for (const { from, r } of conv) {
      out.push(`  - id: ${JSON.stringify(id).slice(1, -1).includes(':') ? `'${id}'` : id}`);
      out.push(`    pattern: '${full.replace(/'/g, "''")}'`);
      if (from) out.push(`    valid_from: ${from}`);
      out.push(`    source: genai-prices 0.1.8 (${url})${m.price_comments ? `; ${m.price_comments.replace(/[\n\r]+/g, ' ').replace(/'/g, '').slice(0, 160)}` : ''}`.replace(/: /g, ' - ').replace(/^(\s+source) - /, '$1: '));
      out.push(`    taken: ${taken}`);
      out.push(...yamlRates(r, '    '));
    }
    added.push({ id, re, names });
  }
}
process.stdout.write(`${out.join('\n')}\n`);
process.stderr.write(`${added.length} models added; left out:\n${left.map((l) => `  ${l}`).join('\n')}\n`);
