/*
 * h2-answers-not-taken.test.mjs: a request accepted and answered, whose client never takes the answer (it
 * advertises a stream window of 0 and never opens it), does not hold its stream, its answer and its
 * connection for ever: the stream is reset CANCEL once the answer has waited the answer limit
 * (receivers.http.idle_timeout_ms; on the OTLP/gRPC port max_connection_idle_ms), counted in
 * genai_gateway_http2_answers_not_taken_total, and the connection then goes idle. Before, such streams
 * lived as long as the connection, and the idle GOAWAY never came since they were open.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { once } from 'node:events';
import { prerequisites, metric, sleep } from '../lib/harness.mjs';
import { traceRequest, genaiSpan, toJson, toProtobuf, grpcFrame, GRPC_EXPORT_PATH } from '../lib/otlp.mjs';
import { idleGoaway, closedAfter, gatewayFixture } from '../lib/h2raw.mjs';

const skip = prerequisites({ needPg: false });
const IDLE_MS = 1500;
const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL } = http2.constants;

/** POST on `session` with the whole body; resolves { head, closed } where closed is { ms (from the head),
 * rstCode } or null if the stream was still open waitMs after the head. */
async function answered(session, headers, body, waitMs) {
  const req = session.request({ ':method': 'POST', ...headers });
  req.on('error', () => {});
  req.on('data', () => {});
  const head = once(req, 'response').then(([h]) => h);
  const closed = closedAfter(req, head, waitMs);
  req.end(body);
  return { head: await head, closed: await closed };
}

describe('HTTP/2: an answer the client never takes is given up at the answer limit', { skip: skip ?? false }, () => {
  const fx = gatewayFixture({
    spool: { mode: 'memory' },
    receivers: {
      http: { idle_timeout_ms: `${IDLE_MS}ms`, body_timeout_ms: '30s' },
      grpc: { engine: 'nghttp2', max_connection_idle_ms: `${IDLE_MS}ms` },
    },
  }, { checkExit: false });

  const untaken = async (listener) =>
    metric(await fx.gw.metrics(), 'genai_gateway_http2_answers_not_taken_total', { listener, closed: 'stream' });

  test('OTLP/HTTP port: an accepted request whose answer waits for a window the client keeps shut', async () => {
    const before_ = await untaken('otlp_http');
    const session = http2.connect(fx.gw.httpUrl, { settings: { initialWindowSize: 0 } });
    session.on('error', () => {});
    try {
      await once(session, 'remoteSettings');
      /* OTLP/JSON: the answer has a body ("{}"), which the closed window holds back */
      const { head, closed } = await answered(session, { ':path': '/v1/traces', 'content-type': 'application/json' },
        toJson(traceRequest([genaiSpan()])), IDLE_MS + 4000);
      assert.equal(head[':status'], 200);
      assert.ok(closed, 'the stream whose answer cannot go out was still open past the answer limit');
      assert.equal(closed.rstCode, NGHTTP2_CANCEL);
      assert.ok(closed.ms >= IDLE_MS - 500, `reset ${closed.ms} ms after the head, limit ${IDLE_MS} ms`);
      assert.equal((await untaken('otlp_http')) - before_, 1);
      const g = await idleGoaway(session, IDLE_MS + 3000);
      assert.equal(g.code, NGHTTP2_NO_ERROR);
    } finally {
      session.destroy();
    }
  });

  test('OTLP/gRPC port: a call whose response message waits for a window the client keeps shut', async () => {
    const before_ = await untaken('otlp_grpc');
    const session = http2.connect(`http://${fx.gw.grpcAddr}`, { settings: { initialWindowSize: 0 } });
    session.on('error', () => {});
    try {
      await once(session, 'remoteSettings');
      const { head, closed } = await answered(session, { ':path': GRPC_EXPORT_PATH, 'content-type': 'application/grpc', te: 'trailers' },
        grpcFrame(toProtobuf(traceRequest([genaiSpan()]))), IDLE_MS + 4000);
      assert.equal(head[':status'], 200);
      assert.ok(closed, 'the call whose response cannot go out was still open past the answer limit');
      assert.equal(closed.rstCode, NGHTTP2_CANCEL);
      assert.equal((await untaken('otlp_grpc')) - before_, 1);
    } finally {
      session.destroy();
    }
  });

  test('a client that takes its answers is not touched', async () => {
    const before_ = await untaken('otlp_http');
    const session = http2.connect(fx.gw.httpUrl);
    session.on('error', () => {});
    try {
      for (let i = 0; i < 3; i++) {
        const { head, closed } = await answered(session, { ':path': '/v1/traces', 'content-type': 'application/json' },
          toJson(traceRequest([genaiSpan()])), 2000);
        assert.equal(head[':status'], 200);
        assert.equal(closed?.rstCode, NGHTTP2_NO_ERROR);
        await sleep(IDLE_MS / 2);
      }
      assert.equal((await untaken('otlp_http')) - before_, 0);
    } finally {
      session.destroy();
    }
  });
});
