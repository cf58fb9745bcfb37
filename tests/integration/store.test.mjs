/*
 * store.test.mjs: what lands in ai_interaction_traces (DESIGN §6) from hand-built GenAI spans, that a
 * re-sent request is stored exactly once (rows and rollups), that SIGTERM drains before exit, and that a
 * Postgres outage mid-stream loses and duplicates nothing: the client is answered from the spool and
 * every acknowledged span lands exactly once after Postgres comes back. The outage test runs its own
 * cluster (scripts/pg.sh) so stopping it disturbs no other test file.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  prerequisites, createDatabase, startGateway, post, waitForRows, waitFor, countRows, startPgCluster, sleep,
  parseMetrics, metric, metricSum,
} from '../lib/harness.mjs';
import {
  traceRequest, genaiSpan, span, toProtobuf, toJson, decodeResponse, rejectedSpans, rawGrpcClient, grpcUnaryRaw,
  GRPC_EXPORT_PATH, decodeStatus, grpc,
} from '../lib/otlp.mjs';

const PB = { 'content-type': 'application/x-protobuf' };
const JSONH = { 'content-type': 'application/json' };
const skip = prerequisites();

const nsToMs = (ns) => Number(BigInt(ns) / 1000000n);

describe('Postgres store', { skip: skip ?? false }, () => {
  let db;
  let gw;

  before(async () => {
    db = await createDatabase();
    gw = await startGateway({ dsn: db.dsn });
  });

  after(async () => {
    await gw?.cleanup();
    await db?.drop();
  });

  test('a hand-built GenAI trace is stored field by field', async () => {
    const service = `store-${crypto.randomBytes(3).toString('hex')}`;
    const agent = span({
      name: 'invoke_agent planner',
      kind: 1,
      attributes: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'planner', 'gen_ai.conversation.id': 'conv-42', 'user.id': 'alice' },
      status: { code: 1 },
    });
    const chat = genaiSpan({
      traceId: agent.traceId,
      parentSpanId: agent.spanId,
      model: 'gpt-4o-mini',
      input: 120,
      output: 45,
      provider: 'openai',
      attributes: { 'gen_ai.response.model': 'gpt-4o-mini-2024-07-18', 'gen_ai.request.temperature': 0.5, 'gen_ai.response.finish_reasons': ['stop'] },
      status: { code: 1 },
    });
    const failed = genaiSpan({
      traceId: agent.traceId,
      parentSpanId: agent.spanId,
      model: 'gpt-4o',
      input: null,
      output: null,
      attributes: { 'error.type': 'timeout' },
      status: { code: 2, message: 'upstream timed out' },
    });
    const embed = genaiSpan({ traceId: agent.traceId, parentSpanId: agent.spanId, operation: 'embeddings', model: 'text-embedding-3-small', input: 30, output: null });
    const http = span({ traceId: agent.traceId, parentSpanId: chat.spanId, name: 'POST', kind: 3, attributes: { 'http.request.method': 'POST' } });
    const req = traceRequest([agent, chat, failed, embed, http], { service });
    const r = await post(gw, '/v1/traces', toProtobuf(req), PB);
    assert.equal(r.status, 200);
    assert.equal(rejectedSpans(decodeResponse(r.body)), 0);

    const rows = await waitForRows(db, [agent.traceId], 4);
    assert.equal(rows.length, 4, 'one row per GenAI span, none for the plain HTTP span');
    const by = Object.fromEntries(rows.map((x) => [x.span_id, x]));
    assert.equal(by[http.spanId], undefined);

    const c = by[chat.spanId];
    assert.equal(c.trace_id, chat.traceId);
    assert.equal(c.parent_span_id, agent.spanId);
    assert.equal(c.trace_version, 'v1');
    assert.equal(c.service_name, service);
    assert.equal(c.scope_name, 'it-scope');
    assert.equal(c.span_name, 'chat gpt-4o-mini');
    assert.equal(c.operation, 'chat');
    assert.equal(c.provider, 'openai');
    assert.equal(c.request_model, 'gpt-4o-mini');
    assert.equal(c.response_model, 'gpt-4o-mini-2024-07-18');
    assert.ok(c.model_id, 'model_id set');
    assert.equal(c.input_tokens, 120);
    assert.equal(c.output_tokens, 45);
    assert.equal(c.total_tokens, 165);
    assert.equal(c.status, 'ok');
    assert.equal(c.error_code, null);
    assert.equal(c.dialect, 'semconv');
    assert.deepEqual(c.finish_reasons, ['stop']);
    assert.equal(c.start_time.getTime(), nsToMs(chat.startTimeUnixNano));
    assert.equal(c.end_time.getTime(), nsToMs(chat.endTimeUnixNano));
    assert.ok(Math.abs(c.duration_ms - 1500) < 1, `duration ${c.duration_ms}`);
    assert.equal(c.session_id, 'conv-42', 'session is a trace-level fact');
    assert.equal(c.user_id, 'alice', 'user is a trace-level fact');

    const f = by[failed.spanId];
    assert.equal(f.status, 'error');
    assert.equal(f.error_code, 'timeout');
    assert.match(f.error_message ?? '', /upstream timed out/);
    assert.equal(f.input_tokens, null, 'unknown tokens stay NULL');
    assert.equal(f.output_tokens, null);
    assert.equal(f.total_tokens, null);
    assert.equal(f.session_id, 'conv-42');

    const e = by[embed.spanId];
    assert.equal(e.operation, 'embeddings');
    assert.equal(e.input_tokens, 30);
    assert.equal(e.output_tokens, null);
    assert.equal(e.status, 'unset');

    const a = by[agent.spanId];
    assert.equal(a.parent_span_id, null, 'a root span has no parent');
    assert.equal(a.operation, 'invoke_agent');
    assert.equal(a.request_model, null);
    assert.equal(a.input_tokens, null);
    assert.equal(a.status, 'ok');
    assert.equal(a.session_id, 'conv-42');
    assert.equal(a.user_id, 'alice');
  });

  test('session and user ids reach rows of the trace that arrive in a later request', async () => {
    const root = span({ name: 'agent', attributes: { 'gen_ai.operation.name': 'invoke_agent', 'session.id': 'late-sess', 'enduser.id': 'bob' } });
    const child = genaiSpan({ traceId: root.traceId, parentSpanId: root.spanId });
    assert.equal((await post(gw, '/v1/traces', toProtobuf(traceRequest([child])), PB)).status, 200);
    await waitForRows(db, [root.traceId], 1, { settleMs: 0 });
    assert.equal((await post(gw, '/v1/traces', toProtobuf(traceRequest([root])), PB)).status, 200);
    const rows = await waitForRows(db, [root.traceId], 2);
    await waitFor(async () => {
      const r = await db.query('SELECT session_id, user_id FROM ai_interaction_traces WHERE span_id = $1', [child.spanId]);
      return r.rows[0]?.session_id === 'late-sess' && r.rows[0]?.user_id === 'bob';
    }, { what: 'session/user filled into the earlier row' });
    assert.equal(rows.length, 2);
  });

  // DESIGN §3: session and user ids are trace-level facts "when any span of a trace carries them", also a
  // span that gives no row (an HTTP server span with enduser.id): kept per trace, filled whichever comes first.
  test('session and user ids of a span that gives no row fill its trace\'s rows, before or after them', async () => {
    const tag = crypto.randomBytes(3).toString('hex');
    const http = (o) => span({ name: 'POST /chat', kind: 2, ...o });
    // 1. the GenAI span first, its HTTP root (no GenAI attribute: no row) in a later request
    const root1 = http({ attributes: { 'http.request.method': 'POST', 'enduser.id': `carol-${tag}`, 'session.id': `s1-${tag}` } });
    const chat1 = genaiSpan({ traceId: root1.traceId, parentSpanId: root1.spanId });
    // 2. the root first, alone in its request; the GenAI span later
    const root2 = http({ attributes: { 'traceloop.association.properties.session_id': `s2-${tag}`, 'user.id': `dan-${tag}` } });
    const chat2 = genaiSpan({ traceId: root2.traceId, parentSpanId: root2.spanId });
    // 3. both in one request; and (another trace) a row with ids of its own keeps them
    const root3 = http({ attributes: { 'session.id': `s3-${tag}`, 'enduser.id': `erin-${tag}` } });
    const chat3 = genaiSpan({ traceId: root3.traceId, parentSpanId: root3.spanId });
    const root5 = http({ attributes: { 'session.id': `s5-${tag}`, 'enduser.id': `gina-${tag}` } });
    const own5 = genaiSpan({ traceId: root5.traceId, parentSpanId: root5.spanId, attributes: { 'session.id': `own-${tag}`, 'user.id': `own-${tag}` } });
    // 4. ids redacted as a row's: an e-mail as user id on a span of no row, and on a GenAI span of another trace
    const email = `frank.${tag}@example.com`;
    const root4 = http({ attributes: { 'enduser.id': email } });
    const chat4 = genaiSpan({ traceId: root4.traceId, parentSpanId: root4.spanId });
    const direct4 = genaiSpan({ attributes: { 'enduser.id': email } });
    // 6. an id longer than an index entry holds is not kept (it could never fill a row); the other one is
    const root6 = http({ attributes: { 'session.id': `s6-${tag}`, 'enduser.id': 'u'.repeat(3000) } });
    const chat6 = genaiSpan({ traceId: root6.traceId, parentSpanId: root6.spanId });
    for (const spans of [[chat1], [root2, root4], [chat2], [root3, chat3, root5, own5], [chat4, direct4], [root6, chat6]])
      assert.equal((await post(gw, '/v1/traces', toProtobuf(traceRequest(spans)), PB)).status, 200);
    await waitForRows(db, [root1.traceId], 1, { settleMs: 0 });
    assert.equal((await post(gw, '/v1/traces', toProtobuf(traceRequest([root1])), PB)).status, 200);
    const ids = async (sp) =>
      (await db.query('SELECT session_id, user_id FROM ai_interaction_traces WHERE trace_id = $1 AND span_id = $2', [sp.traceId, sp.spanId])).rows[0];
    await waitFor(async () => (await ids(chat1))?.user_id === `carol-${tag}`, { what: 'the earlier row filled from the later HTTP span' });
    assert.deepEqual(await ids(chat1), { session_id: `s1-${tag}`, user_id: `carol-${tag}` });
    await waitFor(async () => (await ids(chat2)) !== undefined, { what: 'the later row stored' });
    assert.deepEqual(await ids(chat2), { session_id: `s2-${tag}`, user_id: `dan-${tag}` }, 'a row stored after the ids were kept');
    await waitFor(async () => (await ids(chat3))?.user_id, { what: 'the same-request row filled' });
    assert.deepEqual(await ids(chat3), { session_id: `s3-${tag}`, user_id: `erin-${tag}` });
    assert.deepEqual(await ids(own5), { session_id: `own-${tag}`, user_id: `own-${tag}` }, 'a row\'s own ids stay');
    await waitFor(async () => (await ids(chat4))?.user_id && (await ids(direct4)), { what: 'the e-mail rows' });
    const r4 = await ids(chat4);
    const d4 = await ids(direct4);
    assert.equal(r4.user_id, d4.user_id, 'redacted as a row\'s user id is');
    assert.ok(!r4.user_id.includes(email), `the e-mail is redacted: ${r4.user_id}`);
    const kept = await db.query('SELECT trace_id, session_id, user_id FROM ai_trace_ids WHERE trace_id = ANY($1) ORDER BY trace_id',
      [[root1.traceId, root2.traceId, root4.traceId]]);
    assert.equal(kept.rows.length, 3);
    assert.ok(kept.rows.every((k) => !String(k.user_id).includes(email)), 'kept redacted');
    await waitFor(async () => (await ids(chat6))?.session_id, { what: 'the row of trace 6 filled' });
    assert.deepEqual(await ids(chat6), { session_id: `s6-${tag}`, user_id: null });
    // the trace summary follows the filled rows
    await waitFor(async () => (await db.query('SELECT user_id FROM ai_trace_summaries WHERE trace_id = $1', [root1.traceId])).rows[0]?.user_id === `carol-${tag}`,
      { what: 'the summary of trace 1 with the HTTP span\'s user' });
    // the HTTP span sent again changes nothing; a trace's rows keep the greatest id when spans disagree
    assert.equal((await post(gw, '/v1/traces', toProtobuf(traceRequest([root1])), PB)).status, 200);
    const other = http({ traceId: root1.traceId, attributes: { 'enduser.id': `aaa-${tag}` } });
    assert.equal((await post(gw, '/v1/traces', toProtobuf(traceRequest([other])), PB)).status, 200);
    await waitFor(async () => metricSum(parseMetrics(await (await fetch(`${gw.adminUrl}/metrics`)).text()), 'genai_gateway_pg_trace_ids_total') >= 8,
      { what: 'every kept id counted' });
    assert.deepEqual(await ids(chat1), { session_id: `s1-${tag}`, user_id: `carol-${tag}` });
  });

  // DESIGN §3: strings are made valid UTF-8 at decode, "counted in enrichment_flags" of the rows concerned.
  test('a span with a string repaired at decode has invalid_utf8 in its flags, over protobuf and JSON', async () => {
    const bad = (buf) => { // every "BADX" becomes "BAD\xff": a byte no UTF-8 text has
      const at = [];
      for (let i = buf.indexOf('BADX'); i >= 0; i = buf.indexOf('BADX', i + 4)) at.push(i + 3);
      assert.ok(at.length > 0);
      for (const i of at) buf[i] = 0xff;
      return buf;
    };
    const rows = [];
    for (const [enc, headers] of [[(r) => Buffer.from(toProtobuf(r)), PB], [(r) => Buffer.from(toJson(r)), JSONH]]) {
      const dirty = genaiSpan({ attributes: { note: 'okBADX' } });
      const clean = genaiSpan({ traceId: dirty.traceId });
      const inRes = genaiSpan(); // its resource holds the bad byte
      assert.equal((await post(gw, '/v1/traces', bad(enc(traceRequest([dirty, clean]))), headers)).status, 200);
      assert.equal((await post(gw, '/v1/traces', bad(enc(traceRequest([inRes], { service: 'svc-BADX' }))), headers)).status, 200);
      const got = await waitForRows(db, [dirty.traceId, inRes.traceId], 3, { settleMs: 0 });
      const by = Object.fromEntries(got.map((x) => [x.span_id, x]));
      rows.push([by[dirty.spanId], by[clean.spanId], by[inRes.spanId]]);
    }
    for (const [dirty, clean, inRes] of rows) {
      assert.ok(dirty.enrichment_flags.includes('invalid_utf8'), dirty.enrichment_flags.join(','));
      assert.equal(dirty.attributes.note, 'okBAD\ufffd', 'repaired with U+FFFD');
      assert.ok(!clean.enrichment_flags.includes('invalid_utf8'), 'a clean span of the same trace is not flagged');
      assert.ok(inRes.enrichment_flags.includes('invalid_utf8'), 'a repair in the resource flags its spans');
      assert.equal(inRes.service_name, 'svc-BAD\ufffd');
    }
  });

  // A NUL byte has no place in text: it is removed and the rest of the string kept (protobuf-c's C strings
  // would end the string there), redacted as any other text, over protobuf as over JSON's \u0000.
  test('a NUL inside a string is removed, the rest kept and redacted, over protobuf and JSON', async () => {
    const tag = crypto.randomBytes(3).toString('hex');
    const email = `nul.${tag}@example.com`;
    const rows = [];
    for (const [enc, headers] of [[(r) => toProtobuf(r), PB], [(r) => toJson(r), JSONH]]) {
      const s = genaiSpan({
        attributes: {
          note: 'before\u0000after',
          'gen_ai.input.messages': `[{"role":"user","parts":[{"type":"text","content":"hi\u0000 mail ${email} now"}]}]`,
        },
      });
      assert.equal((await post(gw, '/v1/traces', enc(traceRequest([s], { service: `nul\u0000svc-${tag}` })), headers)).status, 200);
      rows.push((await waitForRows(db, [s.traceId], 1, { settleMs: 0 }))[0]);
    }
    for (const row of rows) {
      assert.equal(row.attributes.note, 'beforeafter');
      assert.equal(row.service_name, `nulsvc-${tag}`);
      assert.ok(row.enrichment_flags.includes('invalid_utf8'), row.enrichment_flags.join(','));
      const prompt = JSON.parse(row.prompt_content);
      const text = prompt[0].parts[0].content;
      assert.ok(text.startsWith('hi mail ') && text.endsWith(' now'), text);
      assert.ok(!text.includes(email), `the e-mail after the NUL is redacted: ${text}`);
    }
    assert.equal(rows[0].prompt_content, rows[1].prompt_content, 'protobuf and JSON store the same text');
  });

  // Issue 11 item 4: input_tokens=3000000000 does not fit the int column. It was acknowledged and the row
  // then refused by Postgres (after a batch split); now the row is stored with the count NULL and flagged.
  test('a token count above the int columns is stored NULL with tokens_out_of_range, no cost, no reject', async () => {
    const service = `oor-${crypto.randomBytes(3).toString('hex')}`;
    const big = genaiSpan({ model: 'gpt-4o', input: 3000000000, output: 10 });
    const neg = genaiSpan({ traceId: big.traceId, model: 'gpt-4o', input: 100, output: -5 });
    const ok = genaiSpan({ traceId: big.traceId, model: 'gpt-4o', input: 100, output: 10 });
    const r = await post(gw, '/v1/traces', toProtobuf(traceRequest([big, neg, ok], { service })), PB);
    assert.equal(r.status, 200);
    const rows = await waitForRows(db, [big.traceId], 3);
    const by = Object.fromEntries(rows.map((x) => [x.span_id, x]));
    for (const [s, input, output] of [[big, null, 10], [neg, 100, null]]) {
      const row = by[s.spanId];
      assert.equal(row.input_tokens, input);
      assert.equal(row.output_tokens, output);
      assert.equal(row.total_tokens, null, 'no total derived around a dropped count');
      assert.ok(row.enrichment_flags.includes('tokens_out_of_range'), row.enrichment_flags.join(','));
      assert.equal(row.total_cost_usd, null, 'no cost from a dropped count');
      assert.equal(row.cost_source, null);
    }
    assert.equal(by[ok.spanId].total_tokens, 110);
    assert.equal(by[ok.spanId].cost_source, 'computed');
    assert.deepEqual(by[ok.spanId].enrichment_flags, ['total_derived']);
    const rej = await db.query('SELECT count(*)::int AS n FROM ai_interaction_rejects WHERE trace_id = $1', [big.traceId]);
    assert.equal(rej.rows[0].n, 0);
    const roll = await db.query(
      'SELECT sum(total_requests)::int AS n, sum(total_input_tokens)::int AS input FROM trace_metrics_hourly WHERE service_name = $1',
      [service]);
    assert.deepEqual(roll.rows[0], { n: 3, input: 200 });
  });

  test('the same request sent again (protobuf, JSON, protobuf) is stored once and counted once', async () => {
    const service = `dedup-${crypto.randomBytes(3).toString('hex')}`;
    const spans = Array.from({ length: 5 }, (_, i) => genaiSpan({ model: 'gpt-4o-mini', input: 10 + i, output: 1 }));
    const req = traceRequest(spans, { service });
    const traceIds = spans.map((s) => s.traceId);
    const m0 = await gw.metrics();
    const storedBefore = metric(m0, 'genai_gateway_records_stored_total') ?? 0;
    const dupBefore = metric(m0, 'genai_gateway_records_duplicate_total') ?? 0;
    assert.equal((await post(gw, '/v1/traces', toProtobuf(req), PB)).status, 200);
    await waitForRows(db, traceIds, 5, { settleMs: 0 });
    assert.equal((await post(gw, '/v1/traces', toJson(req), JSONH)).status, 200);
    assert.equal((await post(gw, '/v1/traces', toProtobuf(req), PB)).status, 200);
    /* a marker request after the re-sends: once it is stored, the re-sends have been processed (one writer, in order) */
    const marker = genaiSpan({ model: 'gpt-4o-mini' });
    assert.equal((await post(gw, '/v1/traces', toProtobuf(traceRequest([marker], { service })), PB)).status, 200);
    await waitForRows(db, [marker.traceId], 1, { settleMs: 500 });
    assert.equal(await countRows(db, traceIds), 5);
    const dup = await db.query(
      'SELECT trace_id, span_id, count(*) FROM ai_interaction_traces WHERE trace_id = ANY($1) GROUP BY 1, 2 HAVING count(*) > 1',
      [traceIds],
    );
    assert.equal(dup.rows.length, 0);
    /* Counted once: the writer counts a row as stored only when it was new, and the hourly rollups
     * (trace_metrics_hourly) are upserted from those new rows only, in the same transaction. */
    const m = await gw.metrics();
    assert.equal(metric(m, 'genai_gateway_records_stored_total') - storedBefore, 6, 'each span stored once (5 + marker)');
    assert.equal(metric(m, 'genai_gateway_records_duplicate_total') - dupBefore, 10, 'the two re-sends were duplicates');
    const roll = await db.query(
      'SELECT sum(total_requests)::int AS n, sum(total_input_tokens)::int AS input FROM trace_metrics_hourly WHERE service_name = $1',
      [service],
    );
    assert.equal(roll.rows[0].n, 6, 'rollup counts each span once (5 + marker)');
    assert.equal(roll.rows[0].input, 10 + 11 + 12 + 13 + 14 + 12, 'rollup input tokens of each span once (marker: 12)');
  });

  test('SIGTERM drains what was acknowledged, then exits 0', async () => {
    const db2 = await createDatabase();
    const gw2 = await startGateway({ dsn: db2.dsn });
    try {
      const spans = Array.from({ length: 50 }, () => genaiSpan({ model: 'gpt-4o', input: 1, output: 1 }));
      const traceIds = spans.map((s) => s.traceId);
      for (let i = 0; i < spans.length; i += 10) {
        assert.equal((await post(gw2, '/v1/traces', toProtobuf(traceRequest(spans.slice(i, i + 10))), PB)).status, 200);
      }
      const r = await gw2.stop();
      assert.deepEqual(r, { code: 0, signal: null }, `exit after SIGTERM; log:\n${gw2.logs().slice(-2000)}`);
      assert.equal(await countRows(db2, traceIds), 50, 'every acknowledged span stored before exit');
    } finally {
      await gw2.cleanup();
      await db2.drop();
    }
  });
});

describe('Postgres outage mid-stream', { skip: skip ?? false }, () => {
  let cluster;
  let db;
  let gw;

  before(async () => {
    cluster = await startPgCluster();
    db = await createDatabase(cluster.dsn);
    gw = await startGateway({ dsn: db.dsn });
  });

  after(async () => {
    await gw?.cleanup();
    await db?.drop();
    await cluster?.destroy();
  });

  test('spans acknowledged while Postgres is down land exactly once after it returns', async () => {
    const sent = [];
    const sendBatch = async (n) => {
      const spans = Array.from({ length: n }, (_, i) => genaiSpan({ model: 'gpt-4o-mini', input: i + 1, output: 1 }));
      const r = await post(gw, '/v1/traces', toProtobuf(traceRequest(spans, { service: 'outage' })), PB);
      assert.equal(r.status, 200, `acknowledged: ${r.status}`);
      sent.push(...spans);
    };

    await sendBatch(20);
    await waitForRows(db, sent.map((s) => s.traceId), 20, { settleMs: 0 });

    await cluster.stop();
    for (let i = 0; i < 10; i++) {
      await sendBatch(20);
      await sleep(100);
    }
    assert.ok(gw.alive(), 'gateway survives the outage');
    const ready = await fetch(`${gw.adminUrl}/readyz`);
    assert.equal(ready.status, 200, 'readiness does not depend on Postgres');
    await sleep(1000);
    await cluster.start();

    /* one more batch after the restart, then everything must be there */
    await sendBatch(20);
    const traceIds = sent.map((s) => s.traceId);
    await waitFor(async () => (await countRows(db, traceIds)) >= sent.length, { timeoutMs: 60000, intervalMs: 250, what: `${sent.length} rows after the outage` });
    await sleep(1000);
    assert.equal(await countRows(db, traceIds), sent.length);
    const distinct = await db.query('SELECT count(DISTINCT (trace_id, span_id))::int AS n FROM ai_interaction_traces WHERE trace_id = ANY($1)', [traceIds]);
    assert.equal(distinct.rows[0].n, sent.length, 'no duplicates');
    /* every batch holds inputs 1..20: 210 input tokens per batch of 20 */
    const roll = await db.query(
      "SELECT sum(total_requests)::int AS n, sum(total_input_tokens)::int AS input FROM trace_metrics_hourly WHERE service_name = 'outage'",
    );
    assert.equal(roll.rows[0].n, sent.length, 'rollup counts each span once');
    assert.equal(roll.rows[0].input, (sent.length / 20) * 210, 'rollup input tokens of each span once');
  });

  test('a request that finds the spool full waits for room (spool.full_wait_ms) and is accepted when the writer makes some', async () => {
    const db3 = await createDatabase(cluster.dsn);
    const gw3 = await startGateway({ dsn: db3.dsn, config: { spool: { max_bytes: 4 * 1024 * 1024, full_wait_ms: '50s' } } });
    const acked = [];
    let waiting = null;
    try {
      await cluster.stop();
      /* Fill the spool: requests answered at once are in; the first one not answered within 2 s waits. */
      for (let i = 0; i < 200 && !waiting; i++) {
        const spans = Array.from({ length: 50 }, () => genaiSpan({ attributes: { 'app.pad': 'p'.repeat(2000) } }));
        const p = post(gw3, '/v1/traces', toProtobuf(traceRequest(spans, { service: 'waiting' })), PB, { timeoutMs: 90000 });
        const r = await Promise.race([p, sleep(2000).then(() => null)]);
        if (r === null) {
          waiting = { p, spans };
        } else {
          assert.equal(r.status, 200, 'accepted while there is room');
          acked.push(...spans);
        }
      }
      assert.ok(waiting, 'a request waits for room instead of being refused at once');
      assert.ok(acked.length > 0);
    } finally {
      await cluster.start();
    }
    try {
      const r = await waiting.p;
      assert.equal(r.status, 200, 'the waiting request was accepted once the writer freed room');
      acked.push(...waiting.spans);
      const traceIds = acked.map((sp) => sp.traceId);
      await waitFor(async () => (await countRows(db3, traceIds)) >= acked.length, { timeoutMs: 60000, intervalMs: 250, what: `${acked.length} acknowledged rows` });
      assert.equal(await countRows(db3, traceIds), acked.length, 'each acknowledged span exactly once');
    } finally {
      await gw3.cleanup();
      await db3.drop();
    }
  });

  test('a full spool pushes back with 429/503 + Retry-After, never drops what it acknowledged', async () => {
    const db2 = await createDatabase(cluster.dsn);
    const gw2 = await startGateway({ dsn: db2.dsn, config: { spool: { max_bytes: 4 * 1024 * 1024 } } });
    const acked = [];
    try {
      await cluster.stop();
      let pushback = null;
      for (let i = 0; i < 200 && !pushback; i++) {
        const spans = Array.from({ length: 50 }, () => genaiSpan({ model: 'gpt-4o-mini', attributes: { 'app.pad': 'p'.repeat(2000) } }));
        const r = await post(gw2, '/v1/traces', toProtobuf(traceRequest(spans, { service: 'pushback' })), PB);
        if (r.status === 200) acked.push(...spans);
        else pushback = r;
      }
      assert.ok(pushback, 'the spool filled up and the gateway pushed back');
      assert.ok([429, 503].includes(pushback.status), `status ${pushback.status}`);
      assert.match(pushback.headers.get('retry-after') ?? '', /^\d+$/, 'Retry-After in seconds');
      assert.ok(acked.length > 0);
      /* A request the full spool has no room for is refused right after decode: its spans are counted as
       * received and rejected, but nothing of it is normalized or redacted (that work would be thrown
       * away, and under overload it takes the CPU the writer needs). A malformed body is still a 400. */
      const m0 = await gw2.metrics();
      const refused = Array.from({ length: 5 }, () => genaiSpan({ attributes: { 'app.note': 'mail refused@example.com', 'app.pad': 'p'.repeat(200000) } }));
      const r1 = await post(gw2, '/v1/traces', toProtobuf(traceRequest(refused, { service: 'pushback' })), PB);
      assert.ok([429, 503].includes(r1.status), `status ${r1.status}`);
      const m1 = await gw2.metrics();
      assert.equal(metric(m1, 'genai_gateway_spans_received_total') - metric(m0, 'genai_gateway_spans_received_total'), 5);
      assert.equal(metricSum(m1, 'genai_gateway_spans_rejected_total') - metricSum(m0, 'genai_gateway_spans_rejected_total'), 5);
      assert.equal(metricSum(m1, 'genai_gateway_redactions_total'), metricSum(m0, 'genai_gateway_redactions_total'),
        'a refused request is not redacted');
      assert.equal(metric(m1, 'genai_gateway_genai_records_total'), metric(m0, 'genai_gateway_genai_records_total'));
      const bad = await post(gw2, '/v1/traces', Buffer.alloc(300000, 0xff), PB);
      assert.equal(bad.status, 400, 'a malformed body is a decode error, full spool or not');
      /* The same pushback over gRPC: RESOURCE_EXHAUSTED carrying google.rpc.RetryInfo, which OTLP clients
       * need to treat it as retryable. */
      const client = rawGrpcClient(gw2.grpcAddr);
      try {
        const g = await grpcUnaryRaw(client, GRPC_EXPORT_PATH, toProtobuf(traceRequest([genaiSpan({ attributes: { 'app.pad': 'p'.repeat(200000) } })])));
        assert.equal(g.code, grpc.status.RESOURCE_EXHAUSTED, `${g.code} ${g.details}`);
        const bin = g.metadata?.get('grpc-status-details-bin')?.[0];
        assert.ok(bin, 'grpc-status-details-bin trailer present');
        const st = decodeStatus(Buffer.from(bin));
        assert.equal(st.code, grpc.status.RESOURCE_EXHAUSTED);
        assert.ok((st.details ?? []).some((d) => d.typeUrl === 'type.googleapis.com/google.rpc.RetryInfo'), 'RetryInfo detail');
      } finally {
        client.close();
      }
      assert.ok(gw2.alive());
      const m = await gw2.metrics();
      assert.ok([...m.keys()].some((k) => k.startsWith('genai_gateway_spans_rejected_total')), 'pushback counted');
    } finally {
      await cluster.start();
    }
    try {
      const traceIds = acked.map((s) => s.traceId);
      await waitFor(async () => (await countRows(db2, traceIds)) >= acked.length, { timeoutMs: 60000, intervalMs: 250, what: `${acked.length} acknowledged rows` });
      assert.equal(await countRows(db2, traceIds), acked.length, 'each acknowledged span exactly once');
      /* drained: new requests are accepted again */
      await waitFor(async () => {
        const s = genaiSpan();
        return (await post(gw2, '/v1/traces', toProtobuf(traceRequest([s])), PB)).status === 200;
      }, { timeoutMs: 30000, intervalMs: 500, what: 'acceptance after the spool drained' });
    } finally {
      await gw2.cleanup();
      await db2.drop();
    }
  });
});
