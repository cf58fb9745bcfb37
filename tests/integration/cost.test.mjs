/*
 * cost.test.mjs: every stored record is priced from the shipped table (DESIGN §4), through the real
 * binary and a real PostgreSQL: computed cost stamped with its price entry, a client-reported cost kept
 * beside it, a reported cost standing in for an unknown model, and NULL (never a made-up zero) with the
 * model_unpriced flag and the unknown-cost metric when neither exists. A user price file given with
 * pricing.file overrides the defaults.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { prerequisites, createDatabase, startGateway, post, waitForRows, metric } from '../lib/harness.mjs';
import { traceRequest, genaiSpan, toProtobuf } from '../lib/otlp.mjs';

const PB = { 'content-type': 'application/x-protobuf' };
const skip = prerequisites();

async function rowOf(db, s) {
  await waitForRows(db, [s.traceId], 1);
  const r = await db.query(
    `SELECT model_id, price_id, cost_source, input_cost_usd::text AS inp, output_cost_usd::text AS outp,
            total_cost_usd::text AS total, reported_cost_usd::text AS reported, enrichment_flags
       FROM ai_interaction_traces WHERE trace_id = $1 AND span_id = $2`,
    [s.traceId, s.spanId],
  );
  assert.equal(r.rows.length, 1);
  return r.rows[0];
}

describe('cost', { skip: skip ?? false }, () => {
  let db;
  let gw;
  let userFile;

  before(async () => {
    db = await createDatabase();
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'gw-cost-'));
    userFile = path.join(dir, 'prices.yaml');
    /* The user's own model, in the shipped format (docs/pricing.md). */
    await fsp.writeFile(userFile, [
      'version: it-user-prices',
      'models:',
      '  - id: acme-llm',
      '    pattern: "^(acme/)?acme-llm(-\\\\d+)?$"',
      '    input: 1.00',
      '    output: 2.00',
      '',
    ].join('\n'));
    gw = await startGateway({ dsn: db.dsn, config: { pricing: { file: userFile } } });
  });

  after(async () => {
    await gw?.cleanup();
    await db?.drop();
  });

  test('a known model is priced from the shipped table, exactly', async () => {
    const s = genaiSpan({ model: 'gpt-4o-2024-08-06', input: 1000, output: 500 });
    assert.equal((await post(gw, '/v1/traces', toProtobuf(traceRequest([s])), PB)).status, 200);
    const r = await rowOf(db, s);
    assert.equal(r.model_id, 'gpt-4o');
    assert.match(r.price_id, /^gpt-4o@.*\/defaults-/);
    assert.equal(r.cost_source, 'computed');
    assert.equal(Number(r.inp), 0.0025); /* 1000 x $2.50 / 1M */
    assert.equal(Number(r.outp), 0.005); /* 500 x $10 / 1M */
    assert.equal(Number(r.total), 0.0075);
    assert.equal(r.reported, null);
  });

  test('a client-reported cost is kept beside the computed one', async () => {
    const s = genaiSpan({ model: 'gpt-4o-mini', input: 1000000, output: 0, attributes: { 'gen_ai.usage.cost': 0.2 } });
    await post(gw, '/v1/traces', toProtobuf(traceRequest([s])), PB);
    const r = await rowOf(db, s);
    assert.equal(r.cost_source, 'computed');
    assert.equal(Number(r.total), 0.15);
    assert.equal(Number(r.reported), 0.2);
  });

  test('an unknown model with a reported cost: total is the reported one', async () => {
    const s = genaiSpan({ model: 'mystery-model-9', input: 10, output: 10, attributes: { 'llm.cost.total': 0.0123 } });
    await post(gw, '/v1/traces', toProtobuf(traceRequest([s])), PB);
    const r = await rowOf(db, s);
    assert.equal(r.cost_source, 'reported');
    assert.equal(Number(r.total), 0.0123);
    assert.equal(r.price_id, null);
  });

  test('an unknown model without a reported cost: NULL cost, a flag and a metric, never zero', async () => {
    const before = metric(await gw.metrics(), 'genai_gateway_cost_unknown_total');
    const s = genaiSpan({ model: 'mystery-model-10', input: 10, output: 10 });
    await post(gw, '/v1/traces', toProtobuf(traceRequest([s])), PB);
    const r = await rowOf(db, s);
    assert.equal(r.total, null);
    assert.equal(r.cost_source, null);
    assert.ok(r.enrichment_flags.includes('model_unpriced'), r.enrichment_flags.join(','));
    assert.equal(metric(await gw.metrics(), 'genai_gateway_cost_unknown_total'), before + 1);
  });

  test('the user price file adds its own models', async () => {
    const s = genaiSpan({ model: 'acme/acme-llm-2', input: 2000, output: 1000 });
    await post(gw, '/v1/traces', toProtobuf(traceRequest([s])), PB);
    const r = await rowOf(db, s);
    assert.equal(r.model_id, 'acme-llm');
    assert.match(r.price_id, /it-user-prices/);
    assert.equal(Number(r.total), 0.004);
  });
});

describe('price file errors', { skip: skip ?? false }, () => {
  test('a bad user price file stops --check-config and the start, naming file, line and key', async () => {
    const { spawnSync } = await import('node:child_process');
    const { GW_BIN } = await import('../lib/harness.mjs');
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'gw-cost-bad-'));
    const prices = path.join(dir, 'bad-prices.yaml');
    await fsp.writeFile(prices, 'models:\n  - id: broken\n    pattern: "gpt-(4o"\n    input: 1\n    output: 2\n');
    const cfg = path.join(dir, 'gw.yaml');
    await fsp.writeFile(cfg, `pricing:\n  file: "${prices}"\n`);
    for (const args of [['--config', cfg, '--check-config'], ['--config', cfg]]) {
      const r = spawnSync(GW_BIN, args, { encoding: 'utf8', timeout: 20000, env: { PATH: process.env.PATH, GENAI_GW_GRPC_ADDR: '127.0.0.1:9', GENAI_GW_HTTP_ADDR: '127.0.0.1:10', GENAI_GW_ADMIN_ADDR: '127.0.0.1:11' } });
      assert.equal(r.status, 1, `${args.join(' ')}: exit ${r.status} ${r.stderr}`);
      assert.match(r.stderr, /bad-prices\.yaml:3: .*pattern/, r.stderr);
    }
    const ok = spawnSync(GW_BIN, ['--check-config'], { encoding: 'utf8', timeout: 20000 });
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /price table defaults-/);
  });
});
