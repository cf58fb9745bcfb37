/*
 * http-bad-input.test.mjs: OTLP/HTTP receiver against hostile and broken input, with the real gateway
 * and Postgres. Every bad request gets the status the OTLP spec and DESIGN §2 give it, with a
 * google.rpc.Status body that says what was wrong, and the gateway keeps serving and storing good
 * spans afterwards. receivers.max_request_bytes is 8 MiB here so size limits are cheap to reach.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import crypto from 'node:crypto';
import { prerequisites, createDatabase, startGateway, post, waitForRows, metric, metricSum } from '../lib/harness.mjs';
import {
  traceRequest, genaiSpan, span, toProtobuf, toJson, decodeResponse, decodeStatus, rejectedSpans,
  deepAnyValueProtobuf, deepAnyValueJson, badRequestOf,
} from '../lib/otlp.mjs';
import { assertHttpStillServes } from '../lib/checks.mjs';
import { zstdAvailable, zstdCompress } from '../lib/zstd.mjs';
import { snappyBlock, snappyFramed } from '../lib/snappy.mjs';
import { lz4Available, lz4Compress } from '../lib/lz4.mjs';

const MAX = 8 * 1024 * 1024;
const MAX_SPANS = 500;
const PB = { 'content-type': 'application/x-protobuf' };
const JSONH = { 'content-type': 'application/json' };
const skip = prerequisites() ?? (zstdAvailable() ? null : 'the zstd command is not installed (scripts/common.sh installs it)') ??
  (lz4Available() ? null : 'the lz4 command is not installed (scripts/common.sh installs it)');

describe('OTLP/HTTP bad input', { skip: skip ?? false }, () => {
  let db;
  let gw;

  before(async () => {
    db = await createDatabase();
    gw = await startGateway({ dsn: db.dsn, config: { receivers: { max_request_bytes: MAX, max_spans_per_request: MAX_SPANS } } });
  });

  after(async () => {
    if (gw) {
      const r = await gw.stop();
      await gw.cleanup();
      assert.deepEqual(r, { code: 0, signal: null }, 'gateway exits 0 on SIGTERM');
    }
    await db?.drop();
  });

  const statusMessage = (r) => {
    const ct = r.headers.get('content-type') ?? '';
    if (ct.startsWith('application/json')) {
      const j = JSON.parse(r.body.toString('utf8'));
      assert.equal(typeof j, 'object');
      return j.message;
    }
    assert.match(ct, /^application\/x-protobuf/, `error body content type ${ct}`);
    return decodeStatus(r.body).message;
  };

  test('admin endpoints answer', async () => {
    assert.equal((await fetch(`${gw.adminUrl}/healthz`)).status, 200);
    assert.equal((await fetch(`${gw.adminUrl}/readyz`)).status, 200);
    const m = await gw.metrics();
    for (const name of ['genai_gateway_spans_received_total', 'genai_gateway_spans_accepted_total', 'genai_gateway_records_stored_total']) {
      assert.ok([...m.keys()].some((k) => k === name || k.startsWith(`${name}{`)), `${name} exposed`);
    }
  });

  test('good protobuf and JSON requests: 200, response in the request encoding, rows stored', async () => {
    const s = genaiSpan({ model: 'gpt-4o-mini', input: 11, output: 6 });
    const r = await post(gw, '/v1/traces', toProtobuf(traceRequest([s])), PB);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^application\/x-protobuf/);
    assert.equal(rejectedSpans(decodeResponse(r.body)), 0);

    const t = genaiSpan({ model: 'gpt-4o', input: 21, output: 8 });
    const rj = await post(gw, '/v1/traces', toJson(traceRequest([t])), JSONH);
    assert.equal(rj.status, 200);
    assert.match(rj.headers.get('content-type'), /^application\/json/);
    const body = JSON.parse(rj.body.toString('utf8'));
    assert.equal(rejectedSpans(body), 0);

    const rows = await waitForRows(db, [s.traceId, t.traceId], 2);
    assert.equal(rows.length, 2);
    const byModel = Object.fromEntries(rows.map((x) => [x.request_model, x]));
    assert.equal(byModel['gpt-4o-mini'].input_tokens, 11);
    assert.equal(byModel['gpt-4o'].output_tokens, 8);

    const gz = genaiSpan({ model: 'gpt-4o', input: 2, output: 2 });
    const rg = await post(gw, '/v1/traces', zlib.gzipSync(toProtobuf(traceRequest([gz]))), { ...PB, 'content-encoding': 'gzip' });
    assert.equal(rg.status, 200, 'gzip-encoded protobuf accepted');
    assert.equal((await waitForRows(db, [gz.traceId], 1)).length, 1);
    // deflate is the zlib format (RFC 9110); the OpenTelemetry Collector's compression: zlib labels it zlib
    const others = [['deflate', PB, (b) => zlib.deflateSync(b)], ['zlib', JSONH, (b) => zlib.deflateSync(b)],
      ['x-gzip', PB, (b) => zlib.gzipSync(b)], ['Deflate', JSONH, (b) => zlib.deflateSync(b)]];
    const sent = [];
    for (const [ce, h, z] of others) {
      const sp = genaiSpan({ model: 'gpt-4o', input: 3, output: 3 });
      const req = traceRequest([sp]);
      const r = await post(gw, '/v1/traces', z(h === PB ? toProtobuf(req) : Buffer.from(toJson(req))), { ...h, 'content-encoding': ce });
      assert.equal(r.status, 200, `Content-Encoding: ${ce}: ${statusMessage(r)}`);
      sent.push(sp.traceId);
    }
    assert.equal((await waitForRows(db, sent, sent.length)).length, sent.length);
  });

  test('truncated protobuf: 400 with a protobuf google.rpc.Status', async () => {
    const full = toProtobuf(traceRequest([genaiSpan(), genaiSpan()]));
    for (const cut of [Math.floor(full.length / 2), full.length - 3, 7]) {
      const r = await post(gw, '/v1/traces', full.subarray(0, cut), PB);
      assert.equal(r.status, 400, `cut at ${cut}`);
      const msg = statusMessage(r);
      assert.ok(msg && msg.length > 0, 'status message present');
    }
    await assertHttpStillServes(gw, db, { label: 'truncated protobuf' });
  });

  test('garbage JSON: 400 with a JSON google.rpc.Status naming the problem', async () => {
    for (const body of ['{"resourceSpans": [ {', 'not json at all', '[1,2,3]', '{"resourceSpans": {"oops": true}}']) {
      const r = await post(gw, '/v1/traces', body, JSONH);
      assert.equal(r.status, 400, `body ${body}`);
      assert.match(r.headers.get('content-type'), /^application\/json/);
      const j = JSON.parse(r.body.toString('utf8'));
      assert.equal(typeof j.message, 'string');
      assert.ok(j.message.length > 0);
      if (j.code !== undefined) assert.equal(j.code, 3, 'google.rpc.Code INVALID_ARGUMENT');
    }
    const bad = await post(gw, '/v1/traces', '{"resourceSpans": [ {', JSONH);
    assert.match(JSON.parse(bad.body.toString('utf8')).message, /json|pars|syntax|invalid|decode/i);
    await assertHttpStillServes(gw, db, { json: true, label: 'garbage JSON' });
  });

  test('unsupported content type: 415', async () => {
    const body = toProtobuf(traceRequest([genaiSpan()]));
    for (const ct of ['text/plain', 'application/xml', 'application/grpc']) {
      const r = await post(gw, '/v1/traces', body, { 'content-type': ct });
      assert.equal(r.status, 415, ct);
    }
    await assertHttpStillServes(gw, db, { label: '415' });
  });

  test('bad gzip: 400 naming the compression', async () => {
    const junk = crypto.randomBytes(512);
    const r = await post(gw, '/v1/traces', junk, { ...PB, 'content-encoding': 'gzip' });
    assert.equal(r.status, 400);
    assert.match(statusMessage(r), /gzip|compress|inflate/i);
    const truncatedGz = zlib.gzipSync(toProtobuf(traceRequest([genaiSpan()]))).subarray(0, 40);
    const r2 = await post(gw, '/v1/traces', truncatedGz, { ...PB, 'content-encoding': 'gzip' });
    assert.equal(r2.status, 400);
    const r3 = await post(gw, '/v1/traces', 'x', { ...PB, 'content-encoding': 'br' });
    assert.equal(r3.status, 415, 'unknown content encoding');
    assert.equal(statusMessage(r3), "unsupported Content-Encoding 'br': use gzip, deflate, zstd, snappy, lz4 or none");
    assert.equal(r3.headers.get('accept-encoding'), 'gzip, deflate, zstd, snappy, lz4', 'a 415 for the coding lists the codings taken');
    // a deflate body that is not one, and a deflate bomb: named by the format, 400 and 413
    const r4 = await post(gw, '/v1/traces', zlib.deflateSync(toProtobuf(traceRequest([genaiSpan()]))).subarray(0, 30), { ...PB, 'content-encoding': 'deflate' });
    assert.equal(r4.status, 400);
    assert.match(statusMessage(r4), /^deflate: /);
    const r5 = await post(gw, '/v1/traces', zlib.deflateSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 }), { ...PB, 'content-encoding': 'deflate' });
    assert.equal(r5.status, 413);
    assert.match(statusMessage(r5), /^deflate: body inflates to more than/);
    await assertHttpStillServes(gw, db, { label: 'bad gzip' });
  });

  test('zstd bodies (RFC 8878): accepted with and without their size stated; bad ones named', async () => {
    const sent = [];
    for (const [h, sized] of [[PB, false], [PB, true], [JSONH, false], [JSONH, true]]) {
      const sp = genaiSpan({ model: 'gpt-4o', input: 5, output: 4 });
      const req = traceRequest([sp]);
      const z = zstdCompress(h === PB ? toProtobuf(req) : Buffer.from(toJson(req)), { sized });
      const r = await post(gw, '/v1/traces', z, { ...h, 'content-encoding': 'zstd' });
      assert.equal(r.status, 200, `zstd ${h === PB ? 'protobuf' : 'JSON'}, size ${sized ? 'stated' : 'not stated'}: ${statusMessage(r)}`);
      sent.push(sp.traceId);
    }
    // a large body (20 spans of 15 KB of text: several zstd blocks) and the header's case ignored
    const big = Array.from({ length: 20 }, (_, i) => genaiSpan({ model: 'gpt-4o', input: i + 1, output: 1, attributes: { 'app.note': crypto.randomBytes(7500).toString('hex') } }));
    const rb = await post(gw, '/v1/traces', zstdCompress(toProtobuf(traceRequest(big))), { ...PB, 'content-encoding': 'ZSTD' });
    assert.equal(rb.status, 200, statusMessage(rb));
    const rows = await waitForRows(db, [...sent, ...big.map((s) => s.traceId)], sent.length + big.length);
    assert.equal(rows.length, sent.length + big.length);
    assert.equal(rows.find((x) => x.trace_id === big[19].traceId)?.input_tokens, 20);

    // a cut frame, a body that is not zstd: 400 naming zstd
    const good = zstdCompress(toProtobuf(traceRequest([genaiSpan()])));
    const cut = await post(gw, '/v1/traces', good.subarray(0, good.length - 5), { ...PB, 'content-encoding': 'zstd' });
    assert.equal(cut.status, 400);
    assert.match(statusMessage(cut), /^zstd: truncated after \d+ input bytes$/);
    const notZstd = await post(gw, '/v1/traces', zlib.gzipSync(toProtobuf(traceRequest([genaiSpan()]))), { ...PB, 'content-encoding': 'zstd' });
    assert.equal(notZstd.status, 400);
    assert.equal(statusMessage(notZstd), 'zstd: not a zstd frame at input byte 0');
    // a window past RFC 9659's 8 MiB: taken when the frame's blocks bound it within the limit (decoded in
    // one pass, no window needed), 400 naming the window when it would have to be decoded as a stream
    const wide = await post(gw, '/v1/traces', zstdCompress(toProtobuf(traceRequest([genaiSpan()])), { windowLog: 24 }), { ...PB, 'content-encoding': 'zstd' });
    assert.equal(wide.status, 200, statusMessage(wide));
    const wideBomb = await post(gw, '/v1/traces', zstdCompress(Buffer.alloc(64 * 1024 * 1024), { windowLog: 24 }), { ...PB, 'content-encoding': 'zstd' });
    assert.equal(wideBomb.status, 400);
    assert.match(statusMessage(wideBomb), /^zstd: a frame's window is larger than 8388608 bytes/);
    // bombs: 64 MiB of zeros with the size stated (refused from the header) and streamed (at the ratio cap)
    for (const sized of [true, false]) {
      const bomb = zstdCompress(Buffer.alloc(64 * 1024 * 1024), { sized, level: 19 });
      assert.ok(bomb.length < 64 * 1024, `bomb of ${bomb.length} bytes`);
      const r = await post(gw, '/v1/traces', bomb, { ...PB, 'content-encoding': 'zstd' });
      assert.equal(r.status, 413);
      assert.match(statusMessage(r), /^zstd: body inflates to more than/);
    }
    await assertHttpStillServes(gw, db, { label: 'zstd' });
  });

  test('snappy bodies, block and framed (the OpenTelemetry Collector\'s compression: snappy): accepted; bad ones named; bombs refused from their headers', async () => {
    const sent = [];
    for (const [h, ce, pack] of [[PB, 'snappy', snappyBlock], [PB, 'snappy', snappyFramed], [JSONH, 'snappy', snappyBlock],
      [JSONH, 'x-snappy-framed', snappyFramed], [PB, 'Snappy', snappyBlock]]) {
      const sp = genaiSpan({ model: 'gpt-4o', input: 5, output: 4 });
      const req = traceRequest([sp]);
      const z = pack(h === PB ? toProtobuf(req) : Buffer.from(toJson(req)));
      const r = await post(gw, '/v1/traces', z, { ...h, 'content-encoding': ce });
      assert.equal(r.status, 200, `${ce} ${pack.name} ${h === PB ? 'protobuf' : 'JSON'}: ${statusMessage(r)}`);
      sent.push(sp.traceId);
    }
    // a large body: many framed chunks
    const big = Array.from({ length: 20 }, (_, i) => genaiSpan({ model: 'gpt-4o', input: i + 1, output: 1, attributes: { 'app.note': crypto.randomBytes(7500).toString('hex') } }));
    const rb = await post(gw, '/v1/traces', snappyFramed(toProtobuf(traceRequest(big))), { ...PB, 'content-encoding': 'snappy' });
    assert.equal(rb.status, 200, statusMessage(rb));
    const rows = await waitForRows(db, [...sent, ...big.map((s) => s.traceId)], sent.length + big.length);
    assert.equal(rows.length, sent.length + big.length);
    assert.equal(rows.find((x) => x.trace_id === big[19].traceId)?.input_tokens, 20);

    const good = toProtobuf(traceRequest([genaiSpan()]));
    const block = snappyBlock(good);
    const cut = await post(gw, '/v1/traces', block.subarray(0, block.length - 3), { ...PB, 'content-encoding': 'snappy' });
    assert.equal(cut.status, 400);
    assert.match(statusMessage(cut), /^snappy: corrupt body \(\d+ bytes stating \d+\)$/);
    const framed = snappyFramed(good);
    framed[framed.length - 1] ^= 0x55; // the data no longer matches its CRC-32C (or no longer decodes)
    const badCrc = await post(gw, '/v1/traces', framed, { ...PB, 'content-encoding': 'snappy' });
    assert.equal(badCrc.status, 400);
    assert.match(statusMessage(badCrc), /^snappy \(framed\): (checksum mismatch|corrupt chunk) at input byte 10$/);
    // bombs: 64 MiB of zeros in either format, refused from the lengths they state (no decoding)
    for (const pack of [snappyBlock, snappyFramed]) {
      const bomb = pack(Buffer.alloc(64 * 1024 * 1024));
      const r = await post(gw, '/v1/traces', bomb, { ...PB, 'content-encoding': 'snappy' });
      assert.equal(r.status, 413, `${pack.name}: ${statusMessage(r)}`);
      assert.match(statusMessage(r), /^snappy( \(framed\))?: body inflates to more than/);
    }
    await assertHttpStillServes(gw, db, { label: 'snappy' });
  });

  test('lz4 bodies (the LZ4 frame format, the OpenTelemetry Collector\'s compression: lz4): accepted; bad ones named; bombs refused', async () => {
    const sent = [];
    for (const [h, opts] of [[PB, {}], [PB, { sized: true }], [JSONH, { linked: true, blockChecksums: true, blockSize: 4 }], [JSONH, { sized: true, blockSize: 5 }]]) {
      const sp = genaiSpan({ model: 'gpt-4o', input: 5, output: 4 });
      const req = traceRequest([sp]);
      const z = lz4Compress(h === PB ? toProtobuf(req) : Buffer.from(toJson(req)), opts);
      const r = await post(gw, '/v1/traces', z, { ...h, 'content-encoding': 'lz4' });
      assert.equal(r.status, 200, `lz4 ${JSON.stringify(opts)} ${h === PB ? 'protobuf' : 'JSON'}: ${statusMessage(r)}`);
      sent.push(sp.traceId);
    }
    // a large body in 64 KiB linked blocks, the header's case ignored
    const big = Array.from({ length: 20 }, (_, i) => genaiSpan({ model: 'gpt-4o', input: i + 1, output: 1, attributes: { 'app.note': crypto.randomBytes(7500).toString('hex') } }));
    const rb = await post(gw, '/v1/traces', lz4Compress(toProtobuf(traceRequest(big)), { linked: true, blockSize: 4 }), { ...PB, 'content-encoding': 'LZ4' });
    assert.equal(rb.status, 200, statusMessage(rb));
    const rows = await waitForRows(db, [...sent, ...big.map((s) => s.traceId)], sent.length + big.length);
    assert.equal(rows.length, sent.length + big.length);
    assert.equal(rows.find((x) => x.trace_id === big[19].traceId)?.input_tokens, 20);

    const good = lz4Compress(toProtobuf(traceRequest([genaiSpan()])));
    const cut = await post(gw, '/v1/traces', good.subarray(0, good.length - 5), { ...PB, 'content-encoding': 'lz4' });
    assert.equal(cut.status, 400);
    assert.match(statusMessage(cut), /^lz4: truncated after \d+ input bytes$/);
    const notLz4 = await post(gw, '/v1/traces', zlib.gzipSync(toProtobuf(traceRequest([genaiSpan()]))), { ...PB, 'content-encoding': 'lz4' });
    assert.equal(notLz4.status, 400);
    assert.equal(statusMessage(notLz4), 'lz4: not an lz4 frame at input byte 0');
    const flipped = Buffer.from(good);
    flipped[flipped.length - 2] ^= 0x10; // the content checksum
    const badSum = await post(gw, '/v1/traces', flipped, { ...PB, 'content-encoding': 'lz4' });
    assert.equal(badSum.status, 400);
    assert.match(statusMessage(badSum), /^lz4: content checksum mismatch at input byte \d+$/);
    // bombs: 64 MiB of zeros with the size stated (refused from the header) and without (at the cap)
    for (const sized of [true, false]) {
      const bomb = lz4Compress(Buffer.alloc(64 * 1024 * 1024), { sized });
      const r = await post(gw, '/v1/traces', bomb, { ...PB, 'content-encoding': 'lz4' });
      assert.equal(r.status, 413, `sized ${sized}: ${statusMessage(r)}`);
      assert.match(statusMessage(r), /^lz4: body inflates to more than/);
    }
    await assertHttpStillServes(gw, db, { label: 'lz4' });
  });

  test('request body bytes by content coding: as received and decompressed, on /metrics', async () => {
    const plain = toProtobuf(traceRequest([genaiSpan({ attributes: { 'app.note': 'x'.repeat(3000) } })]));
    const sent = [
      ['identity', undefined, plain],
      ['gzip', 'gzip', zlib.gzipSync(plain)],
      ['deflate', 'deflate', zlib.deflateSync(plain)],
      ['zstd', 'zstd', zstdCompress(plain)],
      ['snappy', 'snappy', snappyBlock(plain)],
      ['lz4', 'lz4', lz4Compress(plain)],
    ];
    const series = (m, name, enc) => metric(m, `genai_gateway_request_body_${name}_total`, { encoding: enc });
    const before = await gw.metrics();
    for (const [, ce, body] of sent) {
      const r = await post(gw, '/v1/traces', body, ce ? { ...PB, 'content-encoding': ce } : PB);
      assert.equal(r.status, 200, `${ce}: ${statusMessage(r)}`);
    }
    // a body that does not decompress counts as received only
    const bad = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.equal((await post(gw, '/v1/traces', bad, { ...PB, 'content-encoding': 'gzip' })).status, 400);
    const after = await gw.metrics();
    for (const [enc, , body] of sent) {
      const extra = enc === 'gzip' ? bad.length : 0;
      assert.equal(series(after, 'bytes', enc) - series(before, 'bytes', enc), body.length + extra, `${enc}: received`);
      assert.equal(series(after, 'decompressed_bytes', enc) - series(before, 'decompressed_bytes', enc), plain.length, `${enc}: decompressed`);
    }
  });

  test('gzip bomb (64 MiB of zeros): 413 and memory stays bounded', async () => {
    const bomb = zlib.gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 });
    assert.ok(bomb.length < 200 * 1024);
    for (let i = 0; i < 3; i++) {
      const r = await post(gw, '/v1/traces', bomb, { ...PB, 'content-encoding': 'gzip' });
      assert.equal(r.status, 413);
    }
    assert.ok(gw.alive());
    const rss = gw.rss();
    const peak = gw.peakRss();
    assert.ok(rss < 200 * 1024 * 1024, `VmRSS ${rss} bytes`);
    assert.ok(peak < 200 * 1024 * 1024, `VmHWM ${peak} bytes`);
    await assertHttpStillServes(gw, db, { label: 'gzip bomb' });
  });

  test('body over receivers.max_request_bytes: 413', async () => {
    const big = crypto.randomBytes(MAX + 1024 * 1024);
    const r = await post(gw, '/v1/traces', big, PB);
    assert.equal(r.status, 413);
    const rj = await post(gw, '/v1/traces', Buffer.alloc(MAX + 1, 0x20), JSONH);
    assert.equal(rj.status, 413);
    await assertHttpStillServes(gw, db, { label: 'oversize body' });
  });

  // DESIGN §2 bounds spans per request: more than receivers.max_spans_per_request is refused whole with a
  // message naming the limit, before any span is normalized; at the limit it is accepted.
  test('more spans or log records than receivers.max_spans_per_request: 413 naming the limit', async () => {
    const over = Array.from({ length: MAX_SPANS + 1 }, () => span({ name: 'tiny', attributes: { i: 1 } }));
    const before = await gw.metrics();
    for (const [body, headers] of [[toProtobuf(traceRequest(over)), PB], [toJson(traceRequest(over)), JSONH]]) {
      const r = await post(gw, '/v1/traces', body, headers);
      assert.equal(r.status, 413);
      assert.match(statusMessage(r), /501 spans, more than receivers\.max_spans_per_request \(500\)/);
    }
    const logs = JSON.stringify({ resourceLogs: [{ scopeLogs: [{ logRecords: Array.from({ length: MAX_SPANS + 1 }, (_, i) => ({ body: { stringValue: `l${i}` } })) }] }] });
    const rl = await post(gw, '/v1/logs', Buffer.from(logs), JSONH);
    assert.equal(rl.status, 413);
    assert.match(statusMessage(rl), /501 log records, more than receivers\.max_spans_per_request/);
    const after = await gw.metrics();
    assert.equal(metric(after, 'genai_gateway_spans_accepted_total'), metric(before, 'genai_gateway_spans_accepted_total'));
    const at = Array.from({ length: MAX_SPANS }, (_, i) => (i ? span({ name: 'tiny' }) : genaiSpan()));
    const ok = await post(gw, '/v1/traces', toProtobuf(traceRequest(at)), PB);
    assert.equal(ok.status, 200);
    await waitForRows(db, [at[0].traceId], 1, { settleMs: 0 });
  });

  // OTLP/HTTP: a 400's google.rpc.Status SHOULD carry BadRequest details: the message as the violation's
  // description, and the field when the decoder knows it (an OTLP/JSON path).
  test('a 400 carries google.rpc.BadRequest details, with the JSON field it is about', async () => {
    const r = await post(gw, '/v1/traces', Buffer.from([0x0a, 0xff, 0xff, 0xff]), PB);
    assert.equal(r.status, 400);
    const st = decodeStatus(r.body);
    const fv = badRequestOf(st);
    assert.ok(fv && fv.length === 1, JSON.stringify(st));
    assert.equal(fv[0].description, st.message);
    assert.equal(fv[0].field, '');
    const bad = '{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"x","kind":"SPAN_KIND_NOPE"}]}]}]}';
    const rj = await post(gw, '/v1/traces', Buffer.from(bad), JSONH);
    assert.equal(rj.status, 400);
    const j = JSON.parse(rj.body.toString('utf8'));
    assert.equal(j.details?.[0]?.['@type'], 'type.googleapis.com/google.rpc.BadRequest', rj.body.toString('utf8'));
    const v = j.details[0].fieldViolations;
    assert.equal(v.length, 1);
    assert.equal(v[0].description, j.message);
    assert.match(v[0].field, /^resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[0\]\.kind$/);
  });

  test('AnyValue nested 20 000 deep: 400, gateway alive', async () => {
    const r = await post(gw, '/v1/traces', deepAnyValueProtobuf(20000), PB);
    assert.equal(r.status, 400);
    assert.match(statusMessage(r), /depth|nest|deep/i);
    const rj = await post(gw, '/v1/traces', deepAnyValueJson(20000), JSONH);
    assert.equal(rj.status, 400);
    assert.match(statusMessage(rj), /depth|nest|deep/i);
    await assertHttpStillServes(gw, db, { label: 'deep nesting' });
    await assertHttpStillServes(gw, db, { json: true, label: 'deep nesting' });
  });

  test('a modest nesting depth is accepted', async () => {
    const s = genaiSpan({ attributes: { 'app.nested': [[['a', 'b'], ['c']], [1, 2]] } });
    const r = await post(gw, '/v1/traces', toProtobuf(traceRequest([s])), PB);
    assert.equal(r.status, 200);
    assert.equal((await waitForRows(db, [s.traceId], 1)).length, 1);
  });

  for (const enc of ['protobuf', 'json']) {
    test(`invalid trace ids among good spans (${enc}): 200 with partialSuccess.rejectedSpans = 2, good spans stored`, async () => {
      const before = await gw.metrics();
      const good1 = genaiSpan({ input: 3, output: 4 });
      const good2 = genaiSpan({ input: 5, output: 6 });
      const zero = genaiSpan({ traceId: '0'.repeat(32) });
      const empty = genaiSpan({ traceId: '' });
      const req = traceRequest([good1, zero, good2, empty]);
      const r = enc === 'json'
        ? await post(gw, '/v1/traces', toJson(req), JSONH)
        : await post(gw, '/v1/traces', toProtobuf(req), PB);
      assert.equal(r.status, 200, r.body.toString('utf8').slice(0, 300));
      const resp = enc === 'json' ? JSON.parse(r.body.toString('utf8')) : decodeResponse(r.body);
      assert.equal(rejectedSpans(resp), 2);
      assert.equal(typeof resp.partialSuccess.errorMessage, 'string');
      assert.ok(resp.partialSuccess.errorMessage.length > 0, 'partial success says why');
      const rows = await waitForRows(db, [good1.traceId, good2.traceId], 2);
      assert.deepEqual(rows.map((x) => x.span_id).sort(), [good1.spanId, good2.spanId].sort());
      const zeroRows = await db.query("SELECT count(*)::int AS n FROM ai_interaction_traces WHERE trace_id = $1 OR trace_id = ''", ['0'.repeat(32)]);
      assert.equal(zeroRows.rows[0].n, 0);
      const after = await gw.metrics();
      assert.ok(metricSum(after, 'genai_gateway_spans_rejected_total') >= metricSum(before, 'genai_gateway_spans_rejected_total') + 2, 'rejections counted');
      assert.ok(
        metric(after, 'genai_gateway_spans_received_total') >= metric(before, 'genai_gateway_spans_received_total') + 4,
        'received counts every span',
      );
      assert.ok(
        metric(after, 'genai_gateway_spans_accepted_total') >= metric(before, 'genai_gateway_spans_accepted_total') + 2,
        'accepted counts the good spans',
      );
    });
  }

  test('spans before the retention window or more than a day ahead: rejected with the reason, the rest stored', async () => {
    const day = 86400n * 1000000000n;
    const now = BigInt(Date.now()) * 1000000n;
    const good = genaiSpan({ input: 1, output: 2 });
    const old = genaiSpan({ startNs: now - 91n * day });
    const ahead = genaiSpan({ startNs: now + 2n * day });
    const r = await post(gw, '/v1/traces', toProtobuf(traceRequest([old, good, ahead])), PB);
    assert.equal(r.status, 200);
    const resp = decodeResponse(r.body);
    assert.equal(rejectedSpans(resp), 2);
    assert.match(resp.partialSuccess.errorMessage, /startTimeUnixNano: before the retention window/);
    await waitForRows(db, [good.traceId], 1);
    const n = await db.query('SELECT count(*)::int AS n FROM ai_interaction_traces WHERE trace_id = ANY($1)', [[old.traceId, ahead.traceId]]);
    assert.equal(n.rows[0].n, 0);
  });

  test('a non-GenAI span is accepted but not stored', async () => {
    const plain = span({ name: 'GET /health', kind: 2, attributes: { 'http.request.method': 'GET' } });
    const g = genaiSpan({ traceId: plain.traceId, parentSpanId: plain.spanId });
    const r = await post(gw, '/v1/traces', toProtobuf(traceRequest([plain, g])), PB);
    assert.equal(r.status, 200);
    assert.equal(rejectedSpans(decodeResponse(r.body)), 0);
    const rows = await waitForRows(db, [plain.traceId], 1);
    assert.equal(rows.length, 1);
    assert.equal(rows[0].span_id, g.spanId);
    assert.equal(rows[0].parent_span_id, plain.spanId);
  });

  test('wrong path: 404; wrong method: 405', async () => {
    const body = toProtobuf(traceRequest([genaiSpan()]));
    assert.equal((await post(gw, '/v1/nothing', body, PB)).status, 404);
    assert.equal((await post(gw, '/', body, PB)).status, 404);
    const g = await post(gw, '/v1/traces', undefined, {}, { method: 'GET' });
    assert.equal(g.status, 405);
    const p = await post(gw, '/v1/traces', body, PB, { method: 'PUT' });
    assert.equal(p.status, 405);
    // The message quotes the path, which may hold bytes that are not UTF-8 (%FF): the answer's strings are
    // still valid UTF-8, as protobuf and JSON require (Go's protobuf refuses the whole Status otherwise).
    const bad = await post(gw, '/v1/tra%FFces', body, PB);
    assert.equal(bad.status, 404);
    assert.ok(!bad.body.includes(0xff), 'no raw 0xff in the Status');
    assert.equal(statusMessage(bad), "unknown path '/v1/tra\ufffdces': OTLP traces are POSTed to /v1/traces, logs to /v1/logs");
    const badJ = await post(gw, '/v1/tra%FFces', '{}', JSONH);
    assert.equal(badJ.status, 404);
    assert.match(new TextDecoder('utf-8', { fatal: true }).decode(badJ.body), /tra\ufffdces/);
    await assertHttpStillServes(gw, db, { label: '404/405' });
  });

  test('an empty request is a success', async () => {
    const r = await post(gw, '/v1/traces', Buffer.alloc(0), PB);
    assert.equal(r.status, 200);
    const rj = await post(gw, '/v1/traces', '{}', JSONH);
    assert.equal(rj.status, 200);
    assert.equal(rejectedSpans(JSON.parse(rj.body.toString('utf8'))), 0);
  });
});
