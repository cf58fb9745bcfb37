// openloop.mjs: fixed-rate (open loop) OTLP load over HTTP/1.1 or gRPC, with per-request latency.
//
//   node bench/openloop.mjs --proto http|grpc --addr HOST:PORT --bodies DIR [--nbodies 8]
//        --rate SPANS_PER_S --seconds S [--warmup S] [--tag N] [--conns 32] [--rss PID] [--spans 100] [--json]
//
// Node 20, no packages. Request i is due at start + i / (rate / spans per request), whatever the answers
// before it did (wrk and h2load are closed loops: a slow answer delays the next request, which hides the
// tail). Each request goes out on its own connection or stream from a pool large enough that the client
// never queues (HTTP/1.1 keep-alive agent of --conns sockets; one HTTP/2 connection for gRPC, as the OTel
// SDK does). Latency is measured from when the request was due, so a client that fell behind counts it
// (no coordinated omission); the "from send" figures and the largest send lag are printed beside it.
//
// Bodies are gen_payload's body-NNN.pb (and .idx: offsets of the last four bytes of every trace id); each
// request rewrites those bytes with (tag, counter) so no two requests in a run, nor two runs with distinct
// tags, share a key: nothing dedups in Postgres. --rss PID samples /proc/PID/status's VmRSS every 100 ms.
// --warmup S sends at the same rate for S seconds first without recording (connections, JIT).
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import path from 'node:path';

const args = {proto: 'http', nbodies: 8, conns: 32, tag: 1, json: false};
for (let i = 2; i < process.argv.length; i++) {
  const k = process.argv[i].replace(/^--/, '');
  if (k === 'json') { args.json = true; continue; }
  args[k] = process.argv[++i];
}
for (const k of ['addr', 'bodies', 'rate', 'seconds'])
  if (!args[k]) { console.error(`openloop.mjs: --${k} is required`); process.exit(2); }
const rate = Number(args.rate), seconds = Number(args.seconds), tag = Number(args.tag) & 0xff;
const warmup = Number(args.warmup || 0);
const SPANS = Number(args.spans || 100); // gen_payload's spans per request (its -s)

const bodies = [];
for (let i = 0; i < Number(args.nbodies); i++) {
  const base = path.join(args.bodies, `body-${String(i).padStart(3, '0')}`);
  const pb = fs.readFileSync(`${base}.pb`);
  const idx = fs.readFileSync(`${base}.idx`, 'utf8').split('\n').filter(Boolean).map(Number);
  bodies.push({pb, idx});
}

let seq = 0;
function nextBody() {
  const b = bodies[seq % bodies.length];
  seq++;
  const grpc = args.proto === 'grpc';
  const out = Buffer.allocUnsafe(b.pb.length + (grpc ? 5 : 0));
  let o = 0;
  if (grpc) { out[0] = 0; out.writeUInt32BE(b.pb.length, 1); o = 5; }
  b.pb.copy(out, o);
  for (const off of b.idx) {
    out[o + off] = tag;
    out[o + off + 1] = (seq >> 16) & 0xff;
    out[o + off + 2] = (seq >> 8) & 0xff;
    out[o + off + 3] = seq & 0xff;
  }
  return out;
}

const [host, port] = args.addr.split(':');
const agent = new http.Agent({keepAlive: true, maxSockets: Number(args.conns)});
let h2s = null;
function h2() {
  if (!h2s || h2s.destroyed || h2s.closed) {
    h2s = http2.connect(`http://${args.addr}`);
    h2s.on('error', () => {});
  }
  return h2s;
}

function sendHttp(body) {
  return new Promise((resolve) => {
    const req = http.request({host, port: Number(port), method: 'POST', path: '/v1/traces', agent,
      headers: {'content-type': 'application/x-protobuf', 'content-length': body.length}}, (res) => {
      res.resume();
      res.on('end', () => resolve(String(res.statusCode)));
    });
    req.on('error', (e) => resolve(`error:${e.code || e.message}`));
    req.end(body);
  });
}

function sendGrpc(body) {
  return new Promise((resolve) => {
    const st = h2().request({':method': 'POST', ':path': '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
      'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '30S'});
    let status = null;
    st.on('response', (h) => { if (h['grpc-status'] !== undefined) status = h['grpc-status']; });
    st.on('trailers', (h) => { status = h['grpc-status']; });
    st.on('data', () => {});
    st.on('end', () => resolve(status === '0' ? 'OK' : `grpc-status:${status}`));
    st.on('error', (e) => resolve(`error:${e.code || e.message}`));
    st.end(body);
  });
}

const rss = [];
let rssTimer = null;
function sampleRss() {
  try {
    const s = fs.readFileSync(`/proc/${args.rss}/status`, 'utf8');
    const m = /VmRSS:\s+(\d+)/.exec(s);
    if (m) rss.push(Number(m[1]) / 1024);
  } catch { /* gone */ }
}
if (args.rss) rssTimer = setInterval(sampleRss, 100);

const reqRate = rate / SPANS; // requests per second
const nwarm = Math.round(reqRate * warmup);
const total = nwarm + Math.max(1, Math.round(reqRate * seconds));
const fromDue = [], fromSend = [], codes = new Map();
let maxLag = 0, done = 0;
const t0 = performance.now() + 50;

await new Promise((finish) => {
  let i = 0;
  const tick = () => {
    const now = performance.now();
    while (i < total && t0 + (i * 1000) / reqRate <= now) {
      const due = t0 + (i * 1000) / reqRate;
      i++;
      const body = nextBody();
      const sent = performance.now(), counted = i > nwarm;
      if (counted) maxLag = Math.max(maxLag, sent - due);
      (args.proto === 'grpc' ? sendGrpc(body) : sendHttp(body)).then((code) => {
        const end = performance.now();
        if (counted) {
          fromDue.push(end - due);
          fromSend.push(end - sent);
          codes.set(code, (codes.get(code) || 0) + 1);
        }
        if (++done === total) finish();
      });
    }
    if (i < total) {
      const wait = t0 + (i * 1000) / reqRate - performance.now();
      setTimeout(tick, Math.max(0, wait - 1));
    }
  };
  setTimeout(tick, 50);
});
const elapsed = (performance.now() - t0) / 1000 - warmup;
if (rssTimer) { clearInterval(rssTimer); sampleRss(); }
agent.destroy();
if (h2s) h2s.close();

function pct(a, p) {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil(s.length * p) - 1))] : NaN;
}
const ok = (codes.get('200') || 0) + (codes.get('OK') || 0);
const res = {
  proto: args.proto, rate_spans_per_s: rate, requests: total - nwarm, ok, elapsed_s: Number(elapsed.toFixed(2)),
  codes: Object.fromEntries(codes),
  p50_ms: pct(fromDue, 0.5), p99_ms: pct(fromDue, 0.99), p999_ms: pct(fromDue, 0.999), max_ms: pct(fromDue, 1),
  send_p99_ms: pct(fromSend, 0.99), max_send_lag_ms: maxLag,
  rss_mib: rss.length ? {median: pct(rss, 0.5), max: pct(rss, 1), samples: rss.length} : null,
};
if (args.json) {
  console.log(JSON.stringify(res));
} else {
  const f = (x) => x.toFixed(2);
  console.log(`${res.proto} ${rate} spans/s (${reqRate.toFixed(1)} req/s), ${res.requests} requests, ${ok} ok, ` +
    `codes ${JSON.stringify(res.codes)}: p50 ${f(res.p50_ms)} ms, p99 ${f(res.p99_ms)} ms, ` +
    `p999 ${f(res.p999_ms)} ms, max ${f(res.max_ms)} ms (from send: p99 ${f(res.send_p99_ms)} ms; ` +
    `largest send lag ${f(maxLag)} ms)` +
    (res.rss_mib ? `; VmRSS median ${res.rss_mib.median.toFixed(1)} MiB, max ${res.rss_mib.max.toFixed(1)} MiB` : ''));
}
