/*
 * http1-framing.test.mjs: OTLP/HTTP over HTTP/1.1 from raw sockets, where a client's headers say where its
 * body ends. A request whose body length is ambiguous (Content-Length headers that disagree, or
 * Content-Length beside Transfer-Encoding) is 400 and its connection closed: libmicrohttpd framed it by one
 * header while a proxy in front may frame it by another, and the bytes left over would be read as the next
 * request (smuggling). Before, the first was served with the first Content-Length and the second as chunked,
 * on a connection kept open.
 * A client that sends Expect: 100-continue with a Content-Length over receivers.max_request_bytes gets
 * the 413 at once, before it sends its body (RFC 9110 §10.1.1); before, it was told 100 Continue and
 * invited to upload a body up to four times the limit only to be refused.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { prerequisites, startGateway, metric, sleep } from '../lib/harness.mjs';
import { traceRequest, genaiSpan, toProtobuf, decodeStatus } from '../lib/otlp.mjs';

const skip = prerequisites({ needPg: false });
const MAX = 64 * 1024;

/** Write `chunks` on a new connection to port and collect what comes back for waitMs: { text, closedMs }. */
function exchange(port, chunks, { waitMs = 1500 } = {}) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = Buffer.alloc(0);
    let closedMs = null;
    const t0 = Date.now();
    s.on('data', (d) => { got = Buffer.concat([got, d]); });
    s.on('error', () => {});
    s.on('close', () => { closedMs = Date.now() - t0; });
    s.on('connect', () => { for (const c of chunks) s.write(c); });
    setTimeout(() => {
      s.destroy();
      resolve({ text: got.toString('latin1'), raw: got, closedMs });
    }, waitMs);
  });
}

/** The status codes of every answer in text, in order. */
const statuses = (text) => [...text.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => Number(m[1]));

/** The body of the first answer (by its Content-Length). */
function firstBody(raw) {
  const text = raw.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  const len = Number(/content-length: *(\d+)/i.exec(text.slice(0, end))[1]);
  return raw.subarray(end + 4, end + 4 + len);
}

describe('OTLP/HTTP over HTTP/1.1: the body\'s framing', { skip: skip ?? false }, () => {
  let gw;
  const body = toProtobuf(traceRequest([genaiSpan()]));
  const head = (extra) => `POST /v1/traces HTTP/1.1\r\nHost: gw\r\nContent-Type: application/x-protobuf\r\n${extra}\r\n`;
  before(async () => {
    gw = await startGateway({ config: { spool: { mode: 'memory' }, receivers: { max_request_bytes: MAX } } });
  });
  after(async () => {
    if (gw) {
      const r = await gw.stop();
      await gw.cleanup();
      assert.deepEqual(r, { code: 0, signal: null });
    }
  });

  test('Content-Length headers that disagree: 400 naming the problem, connection closed, nothing processed', async () => {
    const before = metric(await gw.metrics(), 'genai_gateway_requests_total');
    for (const [a, b] of [[body.length, 5], [5, body.length]]) {
      // the head alone: the answer comes before the body is read (a body sent at once may make the close a
      // reset that destroys the answer before the client reads it)
      const r = await exchange(gw.ports.http, [head(`Content-Length: ${a}\r\nContent-Length: ${b}\r\n`)]);
      assert.deepEqual(statuses(r.text), [400], `CL ${a} then ${b}: ${JSON.stringify(r.text.slice(0, 200))}`);
      assert.match(r.text, /^Connection: close\r$/im);
      assert.match(decodeStatus(firstBody(r.raw)).message, /conflicting Content-Length/);
      assert.notEqual(r.closedMs, null, 'the connection is closed');
    }
    assert.equal(metric(await gw.metrics(), 'genai_gateway_requests_total'), before, 'no request was processed');
  });

  test('Content-Length beside Transfer-Encoding: chunked: 400, connection closed', async () => {
    const r = await exchange(gw.ports.http, [head('Content-Length: 3\r\nTransfer-Encoding: chunked\r\n')]);
    assert.deepEqual(statuses(r.text), [400], JSON.stringify(r.text.slice(0, 200)));
    assert.match(decodeStatus(firstBody(r.raw)).message, /both Content-Length and Transfer-Encoding/);
    assert.notEqual(r.closedMs, null, 'the connection is closed');
  });

  test('Expect: 100-continue with a Content-Length over the limit: 413 at once, no 100 Continue; within it: 100 Continue', async () => {
    for (const len of [MAX + 1, 2 * MAX, 10 * MAX]) {
      const r = await exchange(gw.ports.http, [head(`Content-Length: ${len}\r\nExpect: 100-continue\r\n`)], { waitMs: 800 });
      assert.deepEqual(statuses(r.text), [413], `${len} bytes: ${JSON.stringify(r.text.slice(0, 120))}`);
      assert.match(decodeStatus(firstBody(r.raw)).message, new RegExp(`request body of ${len} bytes is over the limit of ${MAX}`));
    }
    const r = await exchange(gw.ports.http, [head(`Content-Length: ${body.length}\r\nExpect: 100-continue\r\n`)], { waitMs: 500 });
    assert.deepEqual(statuses(r.text), [100], 'a body within the limit is asked for');
  });

  test('the same Content-Length twice, chunked bodies with extensions, and pipelined requests are served', async () => {
    let r = await exchange(gw.ports.http, [head(`Content-Length: ${body.length}\r\nContent-Length: ${body.length}\r\n`), body], { waitMs: 800 });
    assert.deepEqual(statuses(r.text), [200]);
    r = await exchange(gw.ports.http, [head('Transfer-Encoding: chunked\r\n'), `${body.length.toString(16)};ext=1\r\n`, body, '\r\n0\r\n\r\n'], { waitMs: 800 });
    assert.deepEqual(statuses(r.text), [200]);
    const one = Buffer.concat([Buffer.from(head(`Content-Length: ${body.length}\r\n`)), body]);
    r = await exchange(gw.ports.http, [Buffer.concat(Array(20).fill(one))], { waitMs: 2000 });
    assert.deepEqual(statuses(r.text), Array(20).fill(200), 'twenty pipelined requests, twenty answers in order');
    assert.equal(r.closedMs, null, 'kept alive');
    await sleep(10);
  });
});
