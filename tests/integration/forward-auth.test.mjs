/*
 * forward-auth.test.mjs: a forwarding sidecar authenticating to a tier that has receivers.auth on
 * (README "Kubernetes", "Tier authentication"): the real binary on both sides, the sidecar's
 * exporters.otlp.token_file against the tier's receivers.auth.tokens_file, over OTLP/HTTP and OTLP/gRPC.
 *  - the right token: every span and log record acknowledged by the sidecar is stored once;
 *  - a wrong token: the tier refuses (401 / UNAUTHENTICATED), the sidecar keeps the data in its spool,
 *    retries, counts the refusals and logs an error that names the file, never the token; nothing is
 *    dropped; once the token file is rewritten (a Secret rotation), or fixed and SIGHUP sent, the data
 *    lands, once;
 *  - the token never appears in either gateway's log.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { prerequisites, createDatabase, startGateway, post, waitFor, metric, metricSum } from '../lib/harness.mjs';
import { traceRequest, genaiSpan, toProtobuf, randomTraceId, randomSpanId } from '../lib/otlp.mjs';
import { logsRequest, logsToProtobuf, chatEvents } from '../lib/otlp-logs.mjs';

const skip = prerequisites();
const PB = { 'content-type': 'application/x-protobuf' };
const GOOD = 'tier-token-good-0123456789abcdef';
const OTHER = 'tier-token-other-fedcba9876543210';
const WRONG = 'tier-token-wrong-aaaaaaaaaaaaaaaa';

async function writeAtomically(file, text) {
  await fs.writeFile(`${file}.new`, text);
  await fs.rename(`${file}.new`, file);
}

async function count(db, traceId) {
  const r = await db.query('SELECT span_id, count(*)::int AS n FROM ai_interaction_traces WHERE trace_id = $1 GROUP BY 1', [traceId]);
  return { spans: r.rows.length, twice: r.rows.filter((x) => x.n > 1).length };
}

function spans(n) {
  const traceId = randomTraceId();
  return { traceId, spans: Array.from({ length: n }, () => genaiSpan({ traceId, spanId: randomSpanId(), model: 'gpt-4o-mini' })) };
}

for (const protocol of ['http', 'grpc']) {
  describe(`forwarding sidecar with a bearer token -> tier with auth (OTLP/${protocol})`, { skip: skip ?? false }, () => {
    let dir;
    let db;
    let tier;
    let sidecar;
    let tokenFile;

    before(async () => {
      dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gw-fwd-auth-'));
      const tierTokens = path.join(dir, 'tier-tokens');
      tokenFile = path.join(dir, 'forward-token');
      await fs.writeFile(tierTokens, `# accepted by the tier\n${GOOD}\n${OTHER}\n`);
      await fs.writeFile(tokenFile, `${GOOD}\n`);
      db = await createDatabase();
      tier = await startGateway({
        dsn: db.dsn,
        config: { receivers: { auth: { tokens_file: tierTokens } }, postgres: { batch_wait_ms: '20ms' } },
      });
      sidecar = await startGateway({
        config: {
          receivers: { reload_interval_ms: '200ms' },
          exporters: {
            otlp: protocol === 'http'
              ? { endpoint: tier.httpUrl, protocol: 'http', token_file: tokenFile, batch_wait_ms: '50ms' }
              : { endpoint: tier.grpcAddr, protocol: 'grpc', token_file: tokenFile, batch_wait_ms: '50ms' },
          },
        },
      });
    });

    after(async () => {
      for (const gw of [sidecar, tier]) {
        if (!gw) continue;
        const r = await gw.stop();
        assert.doesNotMatch(gw.logs(), new RegExp(`${GOOD}|${OTHER}|${WRONG}`), 'no token in a log');
        await gw.cleanup();
        assert.equal(r.code, 0);
      }
      await db?.drop();
      if (dir) await fs.rm(dir, { recursive: true, force: true });
    });

    const sidecarMetric = async (name, labels) => metric(await sidecar.metrics(), name, labels);

    test('the right token: spans and log records are stored once', async () => {
      const t = spans(20);
      const body = toProtobuf(traceRequest(t.spans, { service: `fwd-auth-${protocol}` }));
      assert.equal((await post(sidecar, '/v1/traces', body, PB)).status, 200);
      const s = t.spans[0];
      const ev = chatEvents({ traceId: s.traceId, spanId: s.spanId, system: 'be brief', user: 'hello', reply: 'hi' });
      assert.equal((await post(sidecar, '/v1/logs', logsToProtobuf(logsRequest(ev)), PB)).status, 200);
      await waitFor(async () => (await count(db, t.traceId)).spans === 20, { timeoutMs: 20000, what: '20 rows through the tier' });
      assert.equal((await count(db, t.traceId)).twice, 0);
      await waitFor(async () => (await db.query('SELECT count(*)::int AS n FROM ai_interaction_events WHERE trace_id = $1', [t.traceId])).rows[0].n === 3,
        { timeoutMs: 20000, what: 'the 3 events stored' });
      assert.equal(await sidecarMetric('genai_gateway_exporter_auth_failures_total', { exporter: 'otlp' }), 0);
      assert.equal(metricSum(await sidecar.metrics(), 'genai_gateway_exporter_spans_dropped_total'), 0);
    });

    test('a wrong token: refused, kept, counted, logged without the token; a rotated file delivers it once', async () => {
      const failures0 = await sidecarMetric('genai_gateway_exporter_auth_failures_total', { exporter: 'otlp' });
      const tierRefused0 = metricSum(await tier.metrics(), 'genai_gateway_auth_failures_total');
      await writeAtomically(tokenFile, `${WRONG}\n`);
      await waitFor(async () => (await sidecarMetric('genai_gateway_exporter_token_reloads_total', { exporter: 'otlp', result: 'ok' })) >= 1,
        { timeoutMs: 5000, what: 'the sidecar to re-read its token file' });
      const t = spans(15);
      assert.equal((await post(sidecar, '/v1/traces', toProtobuf(traceRequest(t.spans)), PB)).status, 200, 'the sidecar still acknowledges');
      await waitFor(async () => (await sidecarMetric('genai_gateway_exporter_auth_failures_total', { exporter: 'otlp' })) >= failures0 + 2,
        { timeoutMs: 15000, what: 'the tier to refuse the wrong token twice (a retry)' });
      assert.ok(metricSum(await tier.metrics(), 'genai_gateway_auth_failures_total') > tierRefused0, 'the tier counted it');
      assert.equal((await count(db, t.traceId)).spans, 0, 'nothing stored with the wrong token');
      const m = await sidecar.metrics();
      assert.equal(metricSum(m, 'genai_gateway_exporter_spans_dropped_total'), 0, 'nothing dropped');
      assert.ok(metric(m, 'genai_gateway_exporter_spans_retried_total', { exporter: 'otlp', signal: 'traces' }) >= 15);
      assert.ok(metric(m, 'genai_gateway_exporter_lag_entries', { exporter: 'otlp' }) >= 1, 'still in the spool');
      assert.match(sidecar.logs(), /refused the bearer token of exporters\.otlp\.token_file '[^']*forward-token'/);
      assert.match(sidecar.logs(), protocol === 'http' ? /HTTP 401/ : /status 16/);

      /* a Secret rotation: the file is replaced with another token the tier accepts */
      await writeAtomically(tokenFile, `${OTHER}\n`);
      await waitFor(async () => (await count(db, t.traceId)).spans === 15, { timeoutMs: 45000, what: 'the kept spans delivered after the rotation' });
      await waitFor(async () => (await sidecarMetric('genai_gateway_exporter_lag_entries', { exporter: 'otlp' })) === 0,
        { timeoutMs: 10000, what: 'the sidecar caught up' });
      assert.equal((await count(db, t.traceId)).twice, 0);
      assert.equal(metricSum(await sidecar.metrics(), 'genai_gateway_exporter_spans_dropped_total'), 0);
      assert.match(sidecar.logs(), /token_file re-read \(file changed\): a new token/);
    });

    test('an unreadable rewrite keeps the token in use; SIGHUP re-reads the file at once', async () => {
      const failed0 = await sidecarMetric('genai_gateway_exporter_token_reloads_total', { exporter: 'otlp', result: 'failed' });
      await writeAtomically(tokenFile, '# nothing here yet\n');
      await waitFor(async () => (await sidecarMetric('genai_gateway_exporter_token_reloads_total', { exporter: 'otlp', result: 'failed' })) > failed0,
        { timeoutMs: 5000, what: 'the failed re-read counted' });
      assert.match(sidecar.logs(), /exporters\.otlp\.token_file: '[^']*': holds no token.*still sending the token read before/);
      const t = spans(5);
      assert.equal((await post(sidecar, '/v1/traces', toProtobuf(traceRequest(t.spans)), PB)).status, 200);
      await waitFor(async () => (await count(db, t.traceId)).spans === 5, { timeoutMs: 20000, what: 'delivered with the token read before' });
      /* the token back; then SIGHUP re-reads at once: the same token, nothing rebuilt */
      const ok1 = await sidecarMetric('genai_gateway_exporter_token_reloads_total', { exporter: 'otlp', result: 'ok' });
      await writeAtomically(tokenFile, `${OTHER}\n`);
      await waitFor(async () => (await sidecarMetric('genai_gateway_exporter_token_reloads_total', { exporter: 'otlp', result: 'ok' })) > ok1,
        { timeoutMs: 5000, what: 'the fixed file re-read' });
      const ok0 = await sidecarMetric('genai_gateway_exporter_token_reloads_total', { exporter: 'otlp', result: 'ok' });
      sidecar.signal('SIGHUP');
      await waitFor(async () => (await sidecarMetric('genai_gateway_exporter_token_reloads_total', { exporter: 'otlp', result: 'ok' })) > ok0,
        { timeoutMs: 5000, what: 'SIGHUP to re-read the token' });
      await waitFor(() => /token_file re-read \(SIGHUP\): the same token/.test(sidecar.logs()), { timeoutMs: 5000, what: 'the SIGHUP line' });
    });
  });
}

describe('token_file fails fast', { skip: skip ?? false }, () => {
  test('a missing or empty token file, or a token in cleartext to another host, stop the start with the key named', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gw-fwd-auth-'));
    try {
      const empty = path.join(dir, 'empty');
      await fs.writeFile(empty, '\n');
      const good = path.join(dir, 'token');
      await fs.writeFile(good, `${GOOD}\n`);
      const cases = [
        [{ endpoint: 'http://127.0.0.1:9', token_file: path.join(dir, 'missing') }, /exporters\.otlp\.token_file: '[^']*missing': cannot read: No such file/],
        [{ endpoint: 'http://127.0.0.1:9', token_file: empty }, /exporters\.otlp\.token_file: '[^']*empty': holds no token/],
        [{ endpoint: 'http://tier.example:4318', token_file: good }, /exporters\.otlp\.token_file: would be sent in cleartext to 'http:\/\/tier\.example:4318'/],
        [{ endpoint: 'tier.example:4317', protocol: 'grpc', token_file: good }, /exporters\.otlp\.token_file: would be sent in cleartext to 'tier\.example:4317' \(gRPC with tls: false\)/],
      ];
      for (const [otlp, want] of cases) {
        await assert.rejects(startGateway({ config: { spool: { mode: 'memory' }, exporters: { otlp } }, readyTimeoutMs: 5000 }), (e) => {
          assert.match(e.message, want);
          assert.doesNotMatch(e.message, new RegExp(GOOD));
          return true;
        });
      }
      /* insecure: true allows it, with a warning */
      const gw = await startGateway({ config: { spool: { mode: 'memory' }, exporters: { otlp: { endpoint: 'http://tier.example:4318', token_file: good, insecure: true } } } });
      try {
        assert.match(gw.logs(), /exporters\.otlp sends its credentials in cleartext/);
      } finally {
        await gw.stop();
        await gw.cleanup();
      }
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
