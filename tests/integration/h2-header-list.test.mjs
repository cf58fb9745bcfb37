/*
 * h2-header-list.test.mjs: the gateway announces SETTINGS_MAX_HEADER_LIST_SIZE 16384 on both ports, and a
 * request whose header list is larger (sent as HEADERS and CONTINUATION frames) is refused: 431 naming the
 * limit on a plain HTTP/2 request, RESOURCE_EXHAUSTED on a gRPC call, and the connection goes on serving.
 * nghttp2 only announces the setting; before, a 40 KB header list was accepted and served.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { once } from 'node:events';
import { prerequisites, metric } from '../lib/harness.mjs';
import { traceRequest, genaiSpan, toProtobuf, decodeStatus, grpcFrame, GRPC_EXPORT_PATH } from '../lib/otlp.mjs';
import { gatewayFixture } from '../lib/h2raw.mjs';

const skip = prerequisites({ needPg: false });

/** One request on session: { headers (with trailers), body }. */
async function call(session, headers, body) {
  const req = session.request(headers);
  const chunks = [];
  req.on('data', (d) => chunks.push(d));
  let h = {};
  req.on('response', (x) => { h = { ...x }; });
  req.on('trailers', (t) => { h = { ...h, ...t }; });
  req.end(body);
  await once(req, 'close');
  return { headers: h, body: Buffer.concat(chunks), rstCode: req.rstCode };
}

/** n header fields of 4000 bytes each. */
function padding(n) {
  const h = {};
  for (let i = 0; i < n; i++) h[`x-pad-${i}`] = 'a'.repeat(4000);
  return h;
}

describe('HTTP/2: a header list over SETTINGS_MAX_HEADER_LIST_SIZE is refused', { skip: skip ?? false }, () => {
  const fx = gatewayFixture({ spool: { mode: 'memory' } });
  const body = toProtobuf(traceRequest([genaiSpan()]));

  for (const port of ['http', 'grpc']) {
    test(`${port} port: 40 KB of headers: 431 or RESOURCE_EXHAUSTED naming the limit; 12 KB is served; the connection stays usable`, async () => {
      const { gw } = fx;
      const session = http2.connect(`http://127.0.0.1:${gw.ports[port]}`, { maxSendHeaderBlockLength: 1 << 20 });
      session.on('error', () => {});
      try {
        await once(session, 'remoteSettings');
        assert.equal(session.remoteSettings.maxHeaderListSize, 16384);
        const failedBefore = metric(await gw.metrics(), 'genai_gateway_requests_failed_total');

        const plain = { ':method': 'POST', ':path': '/v1/traces', 'content-type': 'application/x-protobuf' };
        let r = await call(session, { ...plain, ...padding(10) }, body);
        assert.equal(r.headers[':status'], 431, JSON.stringify(r.headers));
        assert.match(decodeStatus(r.body).message, /request headers of \d+ bytes or more are over the limit of 16384/);

        const grpc = { ':method': 'POST', ':path': GRPC_EXPORT_PATH, 'content-type': 'application/grpc', te: 'trailers' };
        r = await call(session, { ...grpc, ...padding(10) }, grpcFrame(body));
        assert.equal(r.headers['grpc-status'], '8', JSON.stringify(r.headers));
        assert.match(decodeURIComponent(r.headers['grpc-message']), /over the limit of 16384/);
        assert.equal(metric(await gw.metrics(), 'genai_gateway_requests_failed_total'), failedBefore + 2);

        r = await call(session, { ...plain, ...padding(3) }, body);
        assert.equal(r.headers[':status'], 200, 'a header list within the limit is served');
        r = await call(session, { ...grpc, ...padding(3) }, grpcFrame(body));
        assert.equal(r.headers['grpc-status'], '0');
      } finally {
        session.destroy();
      }
    });
  }
});
