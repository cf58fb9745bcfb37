/*
 * redact.test.mjs: no PII or secret reaches PostgreSQL (DESIGN §5), through the real binary: content
 * attributes, other attributes, resource attributes, span events and status messages are redacted in
 * the stored row; deny-listed keys are dropped; the row says how many values were redacted and of which
 * kinds; /metrics counts them; prompt_hash is taken before redaction. A second gateway shows the
 * configured actions (hash with an HMAC key from the environment, drop, a user pattern).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { prerequisites, createDatabase, startGateway, post, waitForRows, metricSum } from '../lib/harness.mjs';
import { genaiSpan, toProtobuf, toJson, attrs } from '../lib/otlp.mjs';

const PB = { 'content-type': 'application/x-protobuf' };
const JSONH = { 'content-type': 'application/json' };
const skip = prerequisites();

const EMAIL = 'erin.muller32@example.com';
const CARD = '4111 1111 1111 1111';
const SSN = '123-45-6789';
const KEY = 'sk-proj-AbCdEf0123456789AbCdEf0123456789';
const IP = '10.149.248.135';
const PII = [EMAIL, CARD, SSN, KEY, IP];

function piiRequest(service) {
  const input = JSON.stringify([{ role: 'user', parts: [{ type: 'text', content: `My email is ${EMAIL} and my card is ${CARD}, please check my account status` }] }]);
  const output = JSON.stringify([{ role: 'assistant', parts: [{ type: 'text', content: `Noted SSN ${SSN}.` }], finish_reason: 'stop' }]);
  const s = genaiSpan({
    model: 'gpt-4o',
    attributes: {
      'gen_ai.input.messages': input,
      'gen_ai.output.messages': output,
      'app.note': `api key ${KEY} used from ${IP}`,
      'http.request.header.authorization': 'Bearer abc.def.ghi',
    },
    status: { code: 2, message: `upstream refused ${EMAIL}` },
  });
  s.events = [{ timeUnixNano: s.startTimeUnixNano, name: 'app.log', attributes: attrs({ 'app.msg': `retrying for ${EMAIL}` }) }];
  const req = {
    resourceSpans: [{
      resource: { attributes: attrs({ 'service.name': service, 'host.owner': EMAIL }) },
      scopeSpans: [{ scope: { name: 'it-scope' }, spans: [s] }],
    }],
  };
  return { s, req, input };
}

async function storedRow(db, s) {
  await waitForRows(db, [s.traceId], 1);
  const r = await db.query('SELECT * FROM ai_interaction_traces WHERE trace_id = $1 AND span_id = $2', [s.traceId, s.spanId]);
  return r.rows[0];
}

describe('redaction', { skip: skip ?? false }, () => {
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

  for (const enc of ['protobuf', 'json']) {
    test(`(${enc}) the stored row holds none of the PII, keeps the rest, and says what was redacted`, async () => {
      const before = metricSum(await gw.metrics(), 'genai_gateway_redactions_total');
      const { s, req, input } = piiRequest(`redact-${enc}`);
      const r = await post(gw, '/v1/traces', enc === 'json' ? toJson(req) : toProtobuf(req), enc === 'json' ? JSONH : PB);
      assert.equal(r.status, 200);
      const row = await storedRow(db, s);
      const text = JSON.stringify(row);
      for (const v of PII) assert.ok(!text.includes(v), `${v} leaked into the row`);
      assert.ok(!text.includes('Bearer abc.def.ghi'), 'deny-listed header dropped');
      assert.ok(!('http.request.header.authorization' in row.attributes), 'deny-listed key removed');
      assert.match(row.prompt_content, /\[EMAIL_REDACTED\]/);
      assert.match(row.prompt_content, /\[CARD_REDACTED\]/);
      assert.match(row.prompt_content, /please check my account status/);
      JSON.parse(row.prompt_content); /* still valid JSON */
      assert.match(row.response_content, /\[SSN_REDACTED\]/);
      assert.match(row.error_message, /upstream refused \[EMAIL_REDACTED\]/);
      assert.match(row.attributes['app.note'], /\[API_KEY_REDACTED\].*\[IP_REDACTED\]/);
      assert.match(row.resource['host.owner'], /\[EMAIL_REDACTED\]/);
      assert.equal(row.resource['service.name'], `redact-${enc}`, 'allow-listed key untouched');
      assert.ok(row.redaction_count >= 5, `redaction_count ${row.redaction_count}`);
      for (const k of ['email', 'credit_card', 'ssn']) assert.ok(row.redacted_kinds.includes(k), `${k} in ${row.redacted_kinds}`);
      /* prompt_hash: over the canonical prompt before redaction, so it differs from a hash of what is stored */
      assert.match(row.prompt_hash, /^[0-9a-f]{16}$/);
      assert.notEqual(row.prompt_hash, crypto.createHash('sha256').update(row.prompt_content).digest('hex').slice(0, 16));
      assert.ok(input.includes(EMAIL));
      const after = metricSum(await gw.metrics(), 'genai_gateway_redactions_total');
      assert.ok(after >= before + 5, `redactions counted (${before} -> ${after})`);
    });
  }
});

describe('redaction actions from the configuration', { skip: skip ?? false }, () => {
  test('hash with a key from the environment, drop per key, and a user pattern', async () => {
    const db = await createDatabase();
    const gw = await startGateway({
      dsn: db.dsn,
      env: { GENAI_GW_REDACTION_HMAC_KEY: 'it-secret-hmac-key' },
      config: {
        redaction: {
          detectors: { email: 'hash' },
          key_actions: [{ key: 'app.note', action: 'drop' }],
          patterns: [{ name: 'employee_id', regex: 'EMP-[0-9]{6}', label: '[EMPLOYEE]' }],
        },
      },
    });
    try {
      const a = genaiSpan({ attributes: { 'app.who': `${EMAIL} EMP-123456`, 'app.note': `key ${KEY}` } });
      const b = genaiSpan({ attributes: { 'app.who': EMAIL } });
      const req = { resourceSpans: [{ resource: { attributes: attrs({ 'service.name': 'redact-cfg' }) }, scopeSpans: [{ scope: { name: 's' }, spans: [a, b] }] }] };
      assert.equal((await post(gw, '/v1/traces', toProtobuf(req), PB)).status, 200);
      const ra = await storedRow(db, a);
      const rb = await storedRow(db, b);
      const m = /^\[EMAIL:([0-9a-f]{12})\] \[EMPLOYEE\]$/.exec(ra.attributes['app.who']);
      assert.ok(m, ra.attributes['app.who']);
      assert.equal(rb.attributes['app.who'], `[EMAIL:${m[1]}]`, 'same value, same token');
      assert.ok(!('app.note' in ra.attributes), 'drop removes the attribute');
      assert.ok(!gw.logs().includes('it-secret-hmac-key'), 'the key is never logged');
    } finally {
      await gw.cleanup();
      await db.drop();
    }
  });
});
