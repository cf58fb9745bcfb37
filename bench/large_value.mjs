#!/usr/bin/env node
/*
 * bench/large_value.mjs: what one large value costs the gateway, from its own /proc counters: CPU time and
 * minor page faults per gRPC Export call carrying a span with a 1 MiB attribute, sent one after the other
 * (bench/README.md, "Abuse"). CPU per call is the figure that holds on a shared machine, where latencies
 * drift with the load. Prints figures; never fails on a target.
 *
 *   node bench/large_value.mjs BIN [CALLS]      (bench/abuse.sh builds BIN in build-bench/; CALLS default 20)
 *
 * Environment: LARGE_KIND (privkey: repeated "-----BEGIN PRIVATE KEY-----", every header a detection;
 * plain: 'x' repeated), LARGE_KIB (1024). The gateway runs without PostgreSQL (disk spool in a temporary
 * data dir), after three warm-up calls. Needs the Node packages of tests/e2e (bench/abuse.sh installs them).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const otlp = await import(path.join(ROOT, 'tests', 'lib', 'otlp.mjs'));
const BIN = process.argv[2];
const CALLS = Number(process.argv[3] ?? 20);
const KIND = process.env.LARGE_KIND ?? 'privkey';
const BYTES = Number(process.env.LARGE_KIB ?? 1024) * 1024;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
if (!BIN || !fs.existsSync(BIN)) {
  console.error('usage: node bench/large_value.mjs BIN [CALLS]');
  process.exit(2);
}

const freePort = () => new Promise((resolve) => {
  const s = net.createServer();
  s.listen(0, '127.0.0.1', () => {
    const { port } = s.address();
    s.close(() => resolve(port));
  });
});
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-large-'));
const [grpcPort, httpPort, adminPort] = [await freePort(), await freePort(), await freePort()];
fs.writeFileSync(path.join(dir, 'gateway.yaml'), `log:\n  level: warn\nspool:\n  mode: disk\n  dir: "${dir}/spool"\n  fsync: interval\n`);
const gw = spawn(BIN, ['--config', path.join(dir, 'gateway.yaml')], {
  env: { PATH: process.env.PATH, GENAI_GW_GRPC_ADDR: `127.0.0.1:${grpcPort}`, GENAI_GW_HTTP_ADDR: `127.0.0.1:${httpPort}`, GENAI_GW_ADMIN_ADDR: `127.0.0.1:${adminPort}` },
  stdio: ['ignore', 'ignore', 'inherit'],
});
const stat = () => fs.readFileSync(`/proc/${gw.pid}/stat`, 'utf8').split(') ')[1].split(' ');
const ticks = () => Number(stat()[11]) + Number(stat()[12]); /* utime + stime */
const faults = () => Number(stat()[7]); /* minflt */
const status = (k) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(fs.readFileSync(`/proc/${gw.pid}/status`, 'utf8'))[1]) / 1024;
const hz = 100; /* USER_HZ */

try {
  const client = otlp.rawGrpcClient(`127.0.0.1:${grpcPort}`);
  const unit = KIND === 'privkey' ? '-----BEGIN PRIVATE KEY-----' : 'x';
  const value = unit.repeat(Math.floor(BYTES / unit.length));
  const body = otlp.toProtobuf(otlp.traceRequest([otlp.genaiSpan({ attributes: { 'app.blob': value } })], { service: 'large-value' }));
  const call = async () => {
    const r = await otlp.grpcUnaryRaw(client, otlp.GRPC_EXPORT_PATH, body, { deadlineMs: 60000 });
    if (r.code !== 0) throw new Error(`Export answered ${r.code}: ${r.details}`);
  };
  for (let i = 0; ; i++) { /* ready: the first call that goes through */
    try {
      await call();
      break;
    } catch (e) {
      if (i > 100) throw e;
      await sleep(100);
    }
  }
  await call();
  await call();
  const idle = status('VmRSS');
  const t0 = ticks();
  const f0 = faults();
  const w0 = performance.now();
  for (let i = 0; i < CALLS; i++) await call();
  const cpu = ((ticks() - t0) * 1000) / hz / CALLS;
  console.log(`${KIND} ${(BYTES / 1024).toFixed(0)} KiB over gRPC, ${CALLS} calls one after the other: ` +
    `${cpu.toFixed(1)} ms of gateway CPU per call, ${((faults() - f0) / CALLS).toFixed(0)} minor page faults per call, ` +
    `${((performance.now() - w0) / CALLS).toFixed(1)} ms per call end to end; RSS ${idle.toFixed(1)} MiB after warm-up, ` +
    `${status('VmRSS').toFixed(1)} MiB after, peak ${status('VmHWM').toFixed(1)} MiB; load average ${os.loadavg()[0].toFixed(1)}`);
  client.close();
} finally {
  gw.kill('SIGTERM');
  await Promise.race([new Promise((r) => gw.once('exit', r)), sleep(5000)]);
  fs.rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
