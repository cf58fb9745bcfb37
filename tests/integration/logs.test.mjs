/*
 * logs.test.mjs: the OTLP logs path (DESIGN §3) through the real binary and a real PostgreSQL.
 * - The captured fixtures: otel-*-logs-1.* sent with their otel-*-1.* traces over the transport they were
 *   captured on: every chat call's row gets its prompt, system prompt and completion from the log records,
 *   and no PII string of the manifest is left in any row or event.
 * - Arrival order: span first, logs first, both in one writer batch, logs re-sent, logs split over two
 *   requests: the final row is identical in every order.
 * - Span content wins over log content; non-GenAI logs are accepted but not stored; GenAI events without
 *   ids are counted as unjoinable.
 * - Bad input on /v1/logs and LogsService/Export gets the documented status and the gateway keeps serving.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { prerequisites, createDatabase, startGateway, post, waitFor, waitForRows, metric, REPO, sleep } from '../lib/harness.mjs';
import {
  traceRequest, genaiSpan, toProtobuf, toJson, rawGrpcClient, grpcUnaryRaw, GRPC_EXPORT_PATH,
  decodeStatus, randomTraceId, randomSpanId, grpc, pbBytes,
} from '../lib/otlp.mjs';
import {
  logRecord, chatEvents, logsRequest, logsToProtobuf, decodeLogsResponse, rejectedLogRecords, GRPC_LOGS_PATH,
} from '../lib/otlp-logs.mjs';
import { assertHttpStillServes, assertGrpcStillServes } from '../lib/checks.mjs';

const PB = { 'content-type': 'application/x-protobuf' };
const JSONH = { 'content-type': 'application/json' };
const FIX = path.join(REPO, 'tests', 'fixtures', 'sdk');
const skip = prerequisites();
/* The fixtures were captured on a fixed date: keep them inside the storable window whenever this runs. */
const CONFIG = { postgres: { retention_days: 3650, rollup_retention_days: 3650 } };

/* The fixtures' PII type names -> our detector names (GW_REDACT_KINDS in gateway/redact/redact.h). */
const KIND = { openai_api_key: 'api_key', aws_access_key_id: 'aws_access_key', phone: 'phone', credit_card: 'credit_card', email: 'email', ipv4: 'ipv4', ssn: 'ssn' };

const CONTENT_COLS = `prompt_content, response_content, system_prompt, prompt_hash, enrichment_flags, redacted_kinds,
                      redaction_count, input_tokens, model_id`;

async function rowContent(db, traceId, spanId) {
  const r = await db.query(`SELECT ${CONTENT_COLS} FROM ai_interaction_traces WHERE trace_id = $1 AND span_id = $2`, [traceId, spanId]);
  return r.rows[0];
}

/** Send a fixture body over the transport it was captured on. */
async function sendFixture(gw, grpcClient, file, signal) {
  const body = fs.readFileSync(path.join(FIX, file));
  if (file.includes('-grpc-')) {
    const r = await grpcUnaryRaw(grpcClient, signal === 'logs' ? GRPC_LOGS_PATH : GRPC_EXPORT_PATH, body);
    assert.equal(r.code, 0, `${file}: ${r.details}`);
    return;
  }
  const r = await post(gw, signal === 'logs' ? '/v1/logs' : '/v1/traces', body, file.endsWith('.json') ? JSONH : PB);
  assert.equal(r.status, 200, `${file}: ${r.body.toString()}`);
}

describe('OTLP logs: the official instrumentation fixtures', { skip: skip ?? false }, () => {
  let db;
  let gw;
  let client;

  before(async () => {
    db = await createDatabase();
    gw = await startGateway({ dsn: db.dsn, config: CONFIG });
    client = rawGrpcClient(gw.grpcAddr);
  });

  after(async () => {
    client?.close();
    await gw?.cleanup();
    await db?.drop();
  });

  for (const proto of ['grpc', 'http-protobuf', 'http-json']) {
    test(`otel ${proto}: prompt, system prompt and completion land in every chat row, without PII`, async () => {
      const manifest = JSON.parse(fs.readFileSync(path.join(FIX, `otel-${proto}.manifest.json`), 'utf8'));
      const ext = proto === 'http-json' ? 'json' : 'pb';
      /* Logs first for one transport, traces first for the others: both orders on real payloads. */
      const order = proto === 'grpc' ? ['logs', 'traces'] : ['traces', 'logs'];
      for (const signal of order) {
        await sendFixture(gw, client, signal === 'logs' ? `otel-${proto}-logs-1.${ext}` : `otel-${proto}-1.${ext}`, signal);
      }
      const calls = manifest.calls.filter((c) => c.expect_span_exported);
      await waitForRows(db, [...new Set(calls.map((c) => c.trace_id))], calls.length + manifest.groups.length);
      const chats = calls.filter((c) => (c.kind === 'chat' || c.kind.startsWith('stream')) && !c.error);
      assert.ok(chats.length >= 5);
      for (const c of chats) {
        let row;
        await waitFor(async () => {
          row = await rowContent(db, c.trace_id, c.span_id);
          return row?.prompt_content && row?.response_content;
        }, { what: `content of call ${c.index}` });
        const prompt = JSON.parse(row.prompt_content);
        const user = c.messages.filter((m) => m.role === 'user');
        assert.deepEqual(prompt.map((m) => m.role), c.messages.map((m) => m.role), `call ${c.index} roles`);
        for (const m of prompt) assert.equal(m.parts[0].type, 'text');
        const sys = c.messages.find((m) => m.role === 'system');
        if (sys) assert.equal(row.system_prompt, sys.content);
        else assert.equal(row.system_prompt, null);
        const response = JSON.parse(row.response_content);
        assert.equal(response.length, 1);
        assert.equal(response[0].role, 'assistant');
        assert.match(response[0].parts[0].content, /^You said: /);
        if (!c.stream) assert.equal(response[0].finish_reason, c.expected_finish_reason);
        assert.match(row.prompt_hash, /^[0-9a-f]{16}$/);
        assert.ok(row.enrichment_flags.includes('prompt_from_logs') && row.enrichment_flags.includes('response_from_logs'));
        /* PII: gone from the row, and its kinds recorded. */
        const all = JSON.stringify(row);
        for (const p of c.pii) {
          assert.ok(!all.includes(p.value), `call ${c.index}: ${p.type} ${p.value} left in the row`);
          assert.ok(KIND[p.type], `unknown PII type ${p.type}`);
          assert.ok(row.redacted_kinds.includes(KIND[p.type]), `call ${c.index}: ${p.type} not in ${row.redacted_kinds}`);
        }
        /* Text other than PII survives: the user's words are there. */
        const words = user[0].content.split(' ').filter((w) => /^[a-z]{5,}$/.test(w));
        for (const w of words.slice(0, 3)) assert.ok(row.prompt_content.includes(w), `'${w}' in prompt of call ${c.index}`);
      }
      /* No PII in the events table either. */
      const ev = await db.query(`SELECT content, text_content, attributes::text AS a FROM ai_interaction_events
                                  WHERE trace_id = ANY($1)`, [calls.map((c) => c.trace_id)]);
      assert.ok(ev.rows.length >= chats.length * 2);
      const text = JSON.stringify(ev.rows);
      for (const p of manifest.pii_strings ?? []) assert.ok(!text.includes(p), `PII '${p}' in ai_interaction_events`);
    });
  }

  test('metrics count log records and GenAI events', async () => {
    const m = await gw.metrics();
    assert.ok(metric(m, 'genai_gateway_log_records_received_total') >= 40);
    assert.equal(metric(m, 'genai_gateway_log_records_received_total'), metric(m, 'genai_gateway_log_records_accepted_total'));
    assert.ok(metric(m, 'genai_gateway_genai_events_total') >= 40);
    await waitFor(async () => metric(await gw.metrics(), 'genai_gateway_genai_events_stored_total') >= 40, { what: 'events stored' });
  });
});

describe('OTLP logs: the row is the same in every arrival order', { skip: skip ?? false }, () => {
  const traceId = randomTraceId();
  const spanId = randomSpanId();
  const startNs = BigInt(Date.now() - 60000) * 1000000n;
  const chatSpan = genaiSpan({ traceId, spanId, model: 'gpt-4o-mini', input: 30, output: 12, startNs });
  const traces = toProtobuf(traceRequest([chatSpan]));
  const events = chatEvents({
    traceId,
    spanId,
    system: 'You are terse.',
    user: 'Mail bob.smith@example.org the report; my card is 4111 1111 1111 1111',
    reply: 'Done, I mailed bob.smith@example.org.',
    timeNs: startNs + 1000000n,
  });
  events.push(logRecord({ traceId, spanId, eventName: 'gen_ai.user.message', body: { content: 'And thanks!' }, timeNs: startNs + 1000000n }));
  const logsAll = logsToProtobuf(logsRequest(events));
  const logsInputs = logsToProtobuf(logsRequest(events.filter((e) => !JSON.stringify(e).includes('gen_ai.choice'))));
  const logsChoice = logsToProtobuf(logsRequest(events.filter((e) => JSON.stringify(e).includes('gen_ai.choice'))));

  const scenarios = {
    'span first': [['traces', traces], ['wait-row'], ['logs', logsAll]],
    'logs first': [['logs', logsAll], ['wait-events'], ['traces', traces]],
    'one batch': [['logs', logsAll], ['traces', traces]],
    'logs re-sent': [['logs', logsAll], ['wait-events'], ['traces', traces], ['wait-row'], ['logs', logsAll]],
    'logs split, choice first': [['logs', logsChoice], ['wait-events'], ['traces', traces], ['wait-row'], ['logs', logsInputs]],
  };
  const results = {};

  for (const [name, steps] of Object.entries(scenarios)) {
    test(name, async () => {
      const db = await createDatabase();
      /* One batch: the writer waits long enough for both requests to be in one batch. */
      const config = name === 'one batch' ? { postgres: { batch_wait_ms: '1500ms', batch_rows: 100000 } } : {};
      const gw = await startGateway({ dsn: db.dsn, config });
      try {
        for (const [what, body] of steps) {
          if (what === 'wait-row') await waitForRows(db, [traceId], 1);
          else if (what === 'wait-events') {
            await waitFor(async () => (await db.query('SELECT count(*)::int AS n FROM ai_interaction_events')).rows[0].n > 0, { what: 'events stored' });
          } else {
            const r = await post(gw, what === 'logs' ? '/v1/logs' : '/v1/traces', body, PB);
            assert.equal(r.status, 200);
          }
        }
        await waitForRows(db, [traceId], 1);
        const want = events.length; /* one row per message: system, user, choice, user */
        await waitFor(async () => {
          const r = await db.query('SELECT count(*)::int AS n FROM ai_interaction_events');
          const row = await rowContent(db, traceId, spanId);
          return r.rows[0].n === want && row?.prompt_content && row?.response_content;
        }, { what: 'all events merged' });
        await sleep(300); /* anything still in flight would change the row */
        results[name] = await rowContent(db, traceId, spanId);
        if (name === 'one batch') assert.equal(metric(await gw.metrics(), 'genai_gateway_pg_batches_total'), 1, 'both requests in one writer batch');
        const stored = Number((await db.query('SELECT count(*) FROM ai_interaction_events')).rows[0].count);
        assert.equal(stored, events.length, 're-sent events are stored once');
      } finally {
        await gw.cleanup();
        await db.drop();
      }
    });
  }

  test('every order gives the same row, with the log content in it', () => {
    const names = Object.keys(scenarios);
    assert.equal(Object.keys(results).length, names.length, 'every scenario ran');
    const ref = results['span first'];
    const prompt = JSON.parse(ref.prompt_content);
    assert.deepEqual(prompt.map((m) => m.role), ['system', 'user', 'user']);
    assert.equal(prompt[1].parts[0].content, 'Mail [EMAIL_REDACTED] the report; my card is [CARD_REDACTED]');
    assert.equal(prompt[2].parts[0].content, 'And thanks!');
    assert.deepEqual(JSON.parse(ref.response_content), [
      { role: 'assistant', parts: [{ type: 'text', content: 'Done, I mailed [EMAIL_REDACTED].' }], finish_reason: 'stop' },
    ]);
    assert.equal(ref.system_prompt, 'You are terse.');
    assert.deepEqual(ref.redacted_kinds, ['credit_card', 'email']);
    assert.ok(ref.enrichment_flags.includes('system_from_logs'));
    for (const n of names) assert.deepEqual(results[n], ref, `${n} differs from span first`);
  });
});

describe('OTLP logs: precedence, plain logs, bad input', { skip: skip ?? false }, () => {
  let db;
  let gw;
  let client;

  before(async () => {
    db = await createDatabase();
    gw = await startGateway({ dsn: db.dsn, config: { receivers: { max_request_bytes: '8MiB' } } });
    client = rawGrpcClient(gw.grpcAddr);
  });

  after(async () => {
    client?.close();
    await gw?.cleanup();
    await db?.drop();
  });

  test('content the span carries wins; events fill only what it lacks', async () => {
    const s = genaiSpan({ attributes: { 'gen_ai.input.messages': JSON.stringify([{ role: 'user', parts: [{ type: 'text', content: 'from the span' }] }]) } });
    await post(gw, '/v1/traces', toProtobuf(traceRequest([s])), PB);
    await waitForRows(db, [s.traceId], 1);
    const r = await post(gw, '/v1/logs', toJson(logsRequest(chatEvents({ traceId: s.traceId, spanId: s.spanId, user: 'from the logs', reply: 'reply from the logs' }))), JSONH);
    assert.equal(r.status, 200);
    let row;
    await waitFor(async () => (row = await rowContent(db, s.traceId, s.spanId)).response_content, { what: 'response merged' });
    assert.equal(JSON.parse(row.prompt_content)[0].parts[0].content, 'from the span');
    assert.equal(JSON.parse(row.response_content)[0].parts[0].content, 'reply from the logs');
    assert.ok(!row.enrichment_flags.includes('prompt_from_logs'));
    assert.ok(row.enrichment_flags.includes('response_from_logs'));
  });

  test('event content is cut to redaction.max_content_bytes like span content, after redaction', async () => {
    const db2 = await createDatabase();
    const gw2 = await startGateway({ dsn: db2.dsn, config: { redaction: { max_content_bytes: 300 } } });
    try {
      const s = genaiSpan({});
      await post(gw2, '/v1/traces', toProtobuf(traceRequest([s])), PB);
      const long = `write to bob.smith@example.org about ${'the quarterly numbers '.repeat(60)}`;
      const r = await post(gw2, '/v1/logs', logsToProtobuf(logsRequest(chatEvents({ traceId: s.traceId, spanId: s.spanId, user: long, reply: 'ok' }))), PB);
      assert.equal(r.status, 200);
      let row;
      await waitFor(async () => (row = await rowContent(db2, s.traceId, s.spanId))?.prompt_content, { what: 'prompt merged' });
      const ev = (await db2.query(`SELECT content, text_content FROM ai_interaction_events WHERE direction = 'input' AND span_id = $1`, [s.spanId])).rows[0];
      const text = JSON.parse(ev.content).parts[0].content;
      assert.ok(text.startsWith('write to [EMAIL_REDACTED] about the quarterly'), text.slice(0, 60));
      assert.ok(text.endsWith('...[TRUNCATED]'), 'the event content is cut with the marker');
      assert.ok(Buffer.byteLength(text) <= 300 + '...[TRUNCATED]'.length);
      assert.ok(ev.text_content.endsWith('...[TRUNCATED]'));
      assert.ok(Buffer.byteLength(ev.text_content) <= 300 + '...[TRUNCATED]'.length);
      assert.equal(JSON.parse(row.prompt_content)[0].parts[0].content, text, 'the row holds the cut, redacted message');
    } finally {
      await gw2.cleanup();
      await db2.drop();
    }
  });

  test('input messages split over two requests: the row has them all and no partial prompt_hash', async () => {
    const split = genaiSpan({});
    const whole = genaiSpan({});
    await post(gw, '/v1/traces', toProtobuf(traceRequest([split, whole])), PB);
    const t0 = BigInt(Date.now()) * 1000000n;
    const evs = (s) => chatEvents({ traceId: s.traceId, spanId: s.spanId, system: 'Be brief.', user: 'first question', timeNs: t0 })
      .concat([logRecord({ traceId: s.traceId, spanId: s.spanId, eventName: 'gen_ai.user.message', body: { content: 'second question' }, timeNs: t0 + 1000n })]);
    const a = evs(split);
    assert.equal((await post(gw, '/v1/logs', logsToProtobuf(logsRequest(a.slice(0, 2))), PB)).status, 200);
    await waitFor(async () => (await rowContent(db, split.traceId, split.spanId))?.prompt_hash, { what: 'the first part merged' });
    assert.equal((await post(gw, '/v1/logs', logsToProtobuf(logsRequest(a.slice(2))), PB)).status, 200);
    assert.equal((await post(gw, '/v1/logs', logsToProtobuf(logsRequest(evs(whole))), PB)).status, 200);
    let rs, rw;
    await waitFor(async () => {
      rs = await rowContent(db, split.traceId, split.spanId);
      rw = await rowContent(db, whole.traceId, whole.spanId);
      return rs?.prompt_content && JSON.parse(rs.prompt_content).length === 3 && rw?.prompt_content;
    }, { what: 'both prompts merged' });
    assert.deepEqual(JSON.parse(rs.prompt_content).map((m) => m.parts[0].content), ['Be brief.', 'first question', 'second question']);
    assert.equal(rs.prompt_hash, null, 'a hash of the first request\'s messages only would be wrong');
    assert.match(rw.prompt_hash, /^[0-9a-f]{16}$/, 'all inputs in one request: hashed as before');
    assert.equal(rw.prompt_content, rs.prompt_content);
  });

  test('plain logs are accepted and not stored; GenAI events without ids are counted, not stored', async () => {
    const before = await gw.metrics();
    const plain = logRecord({ body: 'GET /health 200', attributes: { 'http.route': '/health' } });
    const noIds = logRecord({ eventName: 'gen_ai.user.message', body: { content: 'orphan prompt' } });
    const named = logRecord({ traceId: randomTraceId(), spanId: randomSpanId(), eventNameField: 'gen_ai.evaluation.result', body: { score: 0.5 } });
    const r = await post(gw, '/v1/logs', logsToProtobuf(logsRequest([plain, noIds, named])), PB);
    assert.equal(r.status, 200);
    assert.equal(rejectedLogRecords(decodeLogsResponse(r.body)), 0);
    await waitFor(async () => (await db.query(`SELECT count(*)::int AS n FROM ai_interaction_events WHERE event_name = 'gen_ai.evaluation.result'`)).rows[0].n === 1,
      { what: 'the evaluation event stored' });
    const ev = (await db.query(`SELECT content, direction FROM ai_interaction_events WHERE event_name = 'gen_ai.evaluation.result'`)).rows[0];
    assert.deepEqual(JSON.parse(ev.content), { score: 0.5 });
    assert.equal(ev.direction, null);
    assert.equal((await db.query(`SELECT count(*)::int AS n FROM ai_interaction_events WHERE content LIKE '%orphan prompt%'`)).rows[0].n, 0);
    const after = await gw.metrics();
    assert.equal(metric(after, 'genai_gateway_log_records_accepted_total') - metric(before, 'genai_gateway_log_records_accepted_total'), 3);
    assert.equal(metric(after, 'genai_gateway_genai_events_unjoinable_total') - metric(before, 'genai_gateway_genai_events_unjoinable_total'), 1);
  });

  test('bad ids and out-of-window events are rejected in partial_success, the rest accepted', async () => {
    const good = chatEvents({ user: 'hello there' });
    const badIds = logRecord({ eventName: 'gen_ai.user.message', body: { content: 'x' }, traceId: 'abcdef', spanId: randomSpanId() });
    const old = logRecord({ traceId: randomTraceId(), spanId: randomSpanId(), eventName: 'gen_ai.user.message', body: { content: 'old' }, timeNs: 1000000000000000000n });
    const oldPlain = logRecord({ body: 'an old plain log', timeNs: 1000000000000000000n });
    let r = await post(gw, '/v1/logs', toJson(logsRequest([...good, badIds, old, oldPlain])), JSONH);
    assert.equal(r.status, 200);
    const resp = JSON.parse(r.body.toString());
    assert.equal(Number(resp.partialSuccess.rejectedLogRecords), 2);
    assert.match(resp.partialSuccess.errorMessage, /resourceLogs\[0\]\.scopeLogs\[0\]\.logRecords\[1\]\.traceId: 3 bytes, want 16 or none/);
    r = await grpcUnaryRaw(client, GRPC_LOGS_PATH, logsToProtobuf(logsRequest([old, ...chatEvents({ user: 'hi' })])));
    assert.equal(r.code, 0);
    const pr = decodeLogsResponse(r.response);
    assert.equal(rejectedLogRecords(pr), 1);
    assert.match(pr.partialSuccess.errorMessage, /timeUnixNano: before the retention window/);
    await waitFor(async () => (await db.query(`SELECT count(*)::int AS n FROM ai_interaction_events WHERE trace_id = $1`, [good[0].traceId])).rows[0].n === 1,
      { what: 'the good event stored' });
  });

  test('malformed logs requests over HTTP: documented statuses, the gateway keeps serving', async () => {
    const good = logsToProtobuf(logsRequest(chatEvents({ user: 'ok' })));
    const cases = [
      ['truncated protobuf', good.subarray(0, good.length - 7), PB, 400],
      ['garbage JSON', Buffer.from('{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": '), JSONH, 400],
      ['wrong JSON type', Buffer.from('{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": true}]}]}]}'), JSONH, 400],
      ['bad hex id', Buffer.from('{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zz"}]}]}]}'), JSONH, 400],
      ['wrong content type', good, { 'content-type': 'text/plain' }, 415],
      ['bad gzip', Buffer.from('not gzip at all'), { ...PB, 'content-encoding': 'gzip' }, 400],
      ['20 000-deep body', deepLogs(20000), PB, 400],
      ['gzip bomb', zlib.gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x20)), { ...PB, 'content-encoding': 'gzip' }, 413],
    ];
    for (const [label, body, headers, status] of cases) {
      const r = await post(gw, '/v1/logs', body, headers);
      assert.equal(r.status, status, `${label}: ${r.status} ${r.body.toString().slice(0, 200)}`);
      if (status === 400 && headers['content-type'] === 'application/x-protobuf') {
        const st = decodeStatus(r.body);
        assert.equal(st.code, 3);
        assert.ok(st.message.length > 5, `${label}: message '${st.message}'`);
      }
      await assertHttpStillServes(gw, db, { label });
    }
    const r = await post(gw, '/v1/logs', undefined, {}, { method: 'GET' });
    assert.equal(r.status, 405);
    const nf = await post(gw, '/v1/log', good, PB);
    assert.equal(nf.status, 404);
    assert.match(decodeStatus(nf.body).message, /logs to \/v1\/logs/);
  });

  test('malformed logs requests over gRPC: INVALID_ARGUMENT, the gateway keeps serving', async () => {
    const good = logsToProtobuf(logsRequest(chatEvents({ user: 'ok' })));
    for (const [label, body] of [['truncated', good.subarray(0, good.length - 7)], ['deep', deepLogs(20000)], ['garbage', Buffer.from([0xff, 0xff, 0xff, 0x0f])]]) {
      const r = await grpcUnaryRaw(client, GRPC_LOGS_PATH, body);
      assert.equal(r.code, grpc.status.INVALID_ARGUMENT, `${label}: ${r.code} ${r.details}`);
      await assertGrpcStillServes(gw, db, client, { label });
    }
    const r = await grpcUnaryRaw(client, '/opentelemetry.proto.collector.logs.v1.LogsService/Exprt', good);
    assert.equal(r.code, grpc.status.UNIMPLEMENTED);
    assert.match(r.details, /LogsService\/Export/);
  });
});

/* A protobuf logs request whose one record's body is an AnyValue of arrays nested `depth` deep (built
 * inside out): resourceLogs(1) > scopeLogs(2) > logRecords(2) > body(5). */
function deepLogs(depth) {
  let v = pbBytes(1, 'leaf');
  for (let i = 0; i < depth; i++) v = pbBytes(5, pbBytes(1, v));
  return pbBytes(1, pbBytes(2, pbBytes(2, pbBytes(5, v))));
}
