#!/usr/bin/env node
/*
 * bench/grpc_flood.mjs: many large gRPC Export calls at once, and the gateway's peak RSS (bench/README.md,
 * "Many large gRPC calls at once"). CONNS connections each start STREAMS calls together, each carrying one
 * span with a KIB KiB attribute ('x' repeated: cheap to redact, so the figure is memory held, not work).
 * The same flood goes to each target, each on a fresh gateway: the gRPC port with its default engine
 * (grpc), the gRPC port with receivers.grpc.engine grpc-core (grpc-core), nghttp2 (grpc-nghttp2), and the
 * OTLP/HTTP port's gRPC side (http). Prints figures; never fails on a target.
 *
 *   node bench/grpc_flood.mjs BIN [CONNS] [STREAMS] [KIB]     (defaults 16 8 3500)
 *   GW_FLOOD_TARGETS=grpc-core,grpc-nghttp2,http (the default)  grpc,http for a binary without the engine row
 *
 * The gateway runs without PostgreSQL (disk spool in a temporary data dir), with its default limits
 * (receivers.max_request_bytes 4 MiB, receivers.max_inflight_bytes 256 MiB). Needs the Node packages of
 * tests/e2e (bench/abuse.sh installs them).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const otlp = await import(path.join(ROOT, 'tests', 'lib', 'otlp.mjs'));
const { freePort } = await import(path.join(ROOT, 'tests', 'lib', 'harness.mjs'));
const BIN = process.argv[2];
const CONNS = Number(process.argv[3] ?? 16);
const STREAMS = Number(process.argv[4] ?? 8);
const KIB = Number(process.argv[5] ?? 3500);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
if (!BIN || !fs.existsSync(BIN)) {
  console.error('usage: node bench/grpc_flood.mjs BIN [CONNS] [STREAMS] [KIB]');
  process.exit(2);
}
const value = 'x'.repeat(KIB * 1024);
const body = otlp.toProtobuf(otlp.traceRequest([otlp.genaiSpan({ attributes: { 'app.blob': value } })], { service: 'flood' }));

const LABELS = {
  grpc: 'gRPC port (its default engine)',
  'grpc-core': 'gRPC port (gRPC core)      ',
  'grpc-nghttp2': 'gRPC port (nghttp2, h2.c)  ',
  http: 'OTLP/HTTP port (receive/h2.c)',
};

async function flood(port) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-flood-'));
  const [grpcPort, httpPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const engine = { 'grpc-core': 'grpc-core', 'grpc-nghttp2': 'nghttp2' }[port];
  const engineRow = engine ? `receivers:\n  grpc:\n    engine: ${engine}\n` : '';
  fs.writeFileSync(path.join(dir, 'gateway.yaml'), `log:\n  level: warn\nspool:\n  mode: disk\n  dir: "${dir}/spool"\n  fsync: interval\n${engineRow}`);
  const gw = spawn(BIN, ['--config', path.join(dir, 'gateway.yaml')], {
    env: { PATH: process.env.PATH, GENAI_GW_GRPC_ADDR: `127.0.0.1:${grpcPort}`, GENAI_GW_HTTP_ADDR: `127.0.0.1:${httpPort}`, GENAI_GW_ADMIN_ADDR: `127.0.0.1:${adminPort}` },
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  const status = (k) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(fs.readFileSync(`/proc/${gw.pid}/status`, 'utf8'))[1]) / 1024;
  const target = `127.0.0.1:${port === 'http' ? httpPort : grpcPort}`;
  try {
    const probe = otlp.rawGrpcClient(target);
    for (let i = 0; ; i++) { /* ready: a small call goes through */
      const r = await otlp.grpcUnaryRaw(probe, otlp.GRPC_EXPORT_PATH, otlp.toProtobuf(otlp.traceRequest([otlp.genaiSpan()])), { deadlineMs: 2000 }).catch(() => ({ code: -1 }));
      if (r.code === 0) break;
      if (i > 100) throw new Error('the gateway did not answer');
      await sleep(100);
    }
    probe.close();
    const idle = status('VmRSS');
    /* one client per connection: a channel option of its own keeps grpc-js from sharing the subchannel */
    const clients = Array.from({ length: CONNS }, (_, i) => otlp.rawGrpcClient(target, { [`genai.bench.conn`]: i }));
    let peak = 0;
    const sampler = setInterval(() => {
      try { peak = Math.max(peak, status('VmRSS')); } catch { /* gone */ }
    }, 20);
    const codes = {};
    const t0 = performance.now();
    await Promise.all(clients.flatMap((c) => Array.from({ length: STREAMS }, async () => {
      const r = await otlp.grpcUnaryRaw(c, otlp.GRPC_EXPORT_PATH, body, { deadlineMs: 120000 });
      codes[r.code] = (codes[r.code] ?? 0) + 1;
    })));
    clearInterval(sampler);
    clients.forEach((c) => c.close());
    const names = { 0: 'OK', 8: 'RESOURCE_EXHAUSTED', 14: 'UNAVAILABLE' };
    const answered = Object.entries(codes).map(([k, v]) => `${v} ${names[k] ?? `code ${k}`}`).join(', ');
    console.log(`${LABELS[port]}  ${CONNS} x ${STREAMS} calls of ` +
      `${(body.length / 1048576).toFixed(2)} MiB in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${answered}; RSS idle ` +
      `${idle.toFixed(1)} MiB, peak sampled ${peak.toFixed(1)} MiB, VmHWM ${status('VmHWM').toFixed(1)} MiB`);
  } finally {
    gw.kill('SIGTERM');
    await Promise.race([new Promise((r) => gw.once('exit', r)), sleep(5000)]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`load average ${os.loadavg()[0].toFixed(1)}; bound of README.md's formula for these limits: idle + 4 x 64 MiB + 8 MiB (bench/abuse.sh prints it)`);
for (const t of (process.env.GW_FLOOD_TARGETS ?? 'grpc-core,grpc-nghttp2,http').split(',')) {
  if (!LABELS[t]) {
    console.error(`GW_FLOOD_TARGETS: unknown target ${t} (${Object.keys(LABELS).join(', ')})`);
    process.exit(2);
  }
  await flood(t);
}
process.exit(0);
