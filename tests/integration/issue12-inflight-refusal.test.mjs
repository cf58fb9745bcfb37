/*
 * issue12-inflight-refusal.test.mjs: a body refused while it arrives gives its memory and its share of
 * receivers.max_inflight_bytes back at once, not when its last byte has come. Held until then, the partial
 * bodies of many uploads at once kept the budget full between them and none could finish (a flood of
 * 3.4 MiB gRPC calls on the HTTP port: 1 of 128 answered OK; bench/grpc_flood.mjs). Shown with the
 * gateway's own gauge, genai_gateway_inflight_request_bytes, and chunked HTTP/1.1 uploads paced by the test:
 * one upload holds 4 MiB, a second grows to 2 MiB, then its next chunk does not fit the 7 MiB budget.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { prerequisites, createDatabase, startGateway, post, waitFor, waitForRows, metric } from '../lib/harness.mjs';
import { genaiSpan, traceRequest, toProtobuf } from '../lib/otlp.mjs';

const MiB = 1024 * 1024;
const skip = prerequisites();

/** A chunked POST on a raw socket, sent when the test says. */
function chunkedUpload(port) {
  const s = net.connect({ host: '127.0.0.1', port });
  let raw = '';
  s.on('data', (d) => { raw += d.toString('latin1'); });
  s.on('error', () => {});
  const answered = new Promise((resolve) => {
    const check = () => {
      const end = raw.indexOf('\r\n\r\n');
      if (end < 0) return;
      const len = Number(/content-length:\s*(\d+)/i.exec(raw.slice(0, end))?.[1] ?? 0);
      if (raw.length >= end + 4 + len) resolve({ status: Number(raw.split(' ')[1]), text: raw.slice(end + 4, end + 4 + len) });
    };
    s.on('data', check);
    s.on('close', () => resolve({ status: 0, text: raw }));
  });
  s.write('POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nTransfer-Encoding: chunked\r\n\r\n');
  return {
    chunk: (buf) => s.write(Buffer.concat([Buffer.from(`${buf.length.toString(16)}\r\n`), buf, Buffer.from('\r\n')])),
    end: () => s.write('0\r\n\r\n'),
    destroy: () => s.destroy(),
    answered,
  };
}

describe('issue 12: a body refused while it arrives releases its budget at once', { skip: skip ?? false }, () => {
  let db;
  let gw;

  before(async () => {
    db = await createDatabase();
    gw = await startGateway({
      dsn: db.dsn,
      config: { receivers: { max_request_bytes: '4MiB', max_inflight_bytes: '7MiB', large_request_bytes: 0 } },
    });
  });

  after(async () => {
    await gw?.cleanup();
    await db?.drop();
  });

  test('the refused upload gives back its 2 MiB while it still sends; the others go on', async () => {
    const inflight = async () => metric(await gw.metrics(), 'genai_gateway_inflight_request_bytes') ?? 0;
    assert.equal(await inflight(), 0);
    const filler = Buffer.alloc(MiB, 0x78);

    const hog = chunkedUpload(gw.ports.http); /* grows to the 4 MiB cap and stays there */
    hog.chunk(filler);
    hog.chunk(filler);
    hog.chunk(filler);
    await waitFor(async () => (await inflight()) === 4 * MiB, { what: 'the first upload holding 4 MiB' });

    const refused = chunkedUpload(gw.ports.http);
    refused.chunk(Buffer.alloc(MiB + MiB / 2, 0x78)); /* its buffer doubles to 2 MiB: 6 MiB in flight */
    await waitFor(async () => (await inflight()) === 6 * MiB, { what: 'the second upload holding 2 MiB' });
    refused.chunk(filler); /* 2.5 MiB needs 4: 8 MiB > 7, refused */
    await waitFor(async () => (await inflight()) === 4 * MiB,
      { what: 'the refused upload\'s 2 MiB given back while its client is still sending' });

    /* ordinary requests go on meanwhile */
    const s = genaiSpan();
    const r = await post(gw, '/v1/traces', toProtobuf(traceRequest([s])), { 'content-type': 'application/x-protobuf' });
    assert.equal(r.status, 200);
    await waitForRows(db, [s.traceId], 1);

    /* the refused upload still reads to its end, then gets its answer */
    refused.chunk(filler);
    refused.end();
    const a = await refused.answered;
    assert.equal(a.status, 503, a.text);
    assert.match(a.text, /too many request bytes in flight: retry later/);
    hog.destroy();
    await waitFor(async () => (await inflight()) === 0, { what: 'nothing left in flight' });
  });
});
