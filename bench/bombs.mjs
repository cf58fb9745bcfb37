#!/usr/bin/env node
/*
 * bench/bombs.mjs: hostile requests against the real gateway binary, one fresh gateway per bomb, and what
 * each one cost: the answer (status and message), the time to it, the gateway's peak RSS (VmHWM) and its
 * RSS afterwards (VmRSS). Prints figures; never fails on a target (bench/README.md, "Hostile requests").
 *
 *   node bench/bombs.mjs [BIN]             BIN defaults to build/genai-gateway
 *   BOMB_MAX_MIB=64 BOMB_ONLY=json-array node bench/bombs.mjs
 *
 * Runs without PostgreSQL (memory spool, no DSN) on free 127.0.0.1 ports. Each request has a deadline
 * (BOMB_TIMEOUT_S, 120 s) and the whole run too (BOMB_TOTAL_S, 900 s); a gateway still running at its
 * deadline is killed and the bomb reported as "timeout". The bombs are built in memory, each about
 * receivers.max_request_bytes (BOMB_MAX_MIB, default 64, the default limit) once inflated.
 * Every bomb runs in three passes: with the default receivers.max_inflate_ratio, which stops gzip bombs
 * while inflating ("cap"); with it off, so that the body reaches the decoders as an uncompressed bomb of
 * max_request_bytes would ("nocap"); and with it off, two copies at once on two connections ("pair":
 * the status column shows both answers). BOMB_PASSES=cap,nocap,pair chooses.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { bombs } from '../tests/lib/bombs.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = process.argv[2] ?? path.join(here, '..', 'build', 'genai-gateway');
const MAX = Number(process.env.BOMB_MAX_MIB ?? 64) * 1024 * 1024;
const REQ_TIMEOUT_MS = Number(process.env.BOMB_TIMEOUT_S ?? 120) * 1000;
const TOTAL_MS = Number(process.env.BOMB_TOTAL_S ?? 900) * 1000;
const ONLY = process.env.BOMB_ONLY ? process.env.BOMB_ONLY.split(',') : null;
const started = Date.now();

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function procStatus(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number((new RegExp(`${k}:\\s+(\\d+) kB`).exec(s) ?? [0, 0])[1]);
    return { hwm: kb('VmHWM') * 1024, rss: kb('VmRSS') * 1024 };
  } catch {
    return { hwm: 0, rss: 0 };
  }
}

function request(port, pathName, body, headers, timeoutMs) {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: pathName, method: 'POST', headers: { ...headers, 'content-length': body.length } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks), headers: res.headers }));
    });
    req.setTimeout(timeoutMs, () => {
      req.destroy();
      resolve({ status: 'timeout', body: Buffer.alloc(0), headers: {} });
    });
    req.on('error', (e) => resolve({ status: `error (${e.code ?? e.message})`, body: Buffer.alloc(0), headers: {} }));
    req.end(body);
  });
}

/* The google.rpc.Status message of an error body: JSON, or protobuf field 2 read by hand. */
function message(r) {
  if (!r.body.length) return '';
  if ((r.headers['content-type'] ?? '').startsWith('application/json')) {
    try {
      const j = JSON.parse(r.body.toString('utf8'));
      if (j.message) return j.message;
      if (j.partialSuccess) return `partialSuccess ${JSON.stringify(j.partialSuccess)}`;
      return JSON.stringify(j).slice(0, 120);
    } catch {
      return r.body.toString('utf8').slice(0, 120);
    }
  }
  const b = r.body;
  for (let i = 0; i < b.length;) {
    const key = b[i++];
    if ((key & 7) === 0) {
      while (b[i++] & 0x80);
      continue;
    }
    let len = 0;
    let shift = 0;
    for (;;) {
      const x = b[i++];
      len += (x & 0x7f) * 2 ** shift;
      shift += 7;
      if (!(x & 0x80)) break;
    }
    if (key >> 3 === 2) return b.subarray(i, i + len).toString('utf8');
    i += len;
  }
  return '';
}

async function waitReady(adminPort, proc, deadline) {
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) return false;
    const ok = await new Promise((resolve) => {
      const r = http.get({ host: '127.0.0.1', port: adminPort, path: '/readyz', timeout: 1000 }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      r.on('error', () => resolve(false));
      r.on('timeout', () => {
        r.destroy();
        resolve(false);
      });
    });
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

async function runBomb(bomb, ratioOff, copies = 1) {
  const plain = bomb.body();
  const wire = bomb.gzip ? zlib.gzipSync(plain, { level: 9 }) : plain;
  const [grpc, httpPort, admin] = [await freePort(), await freePort(), await freePort()];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-bomb-'));
  const cfg = path.join(dir, 'gateway.yaml');
  fs.writeFileSync(cfg, `receivers:\n  max_request_bytes: ${MAX}\n${ratioOff ? '  max_inflate_ratio: 0\n' : ''}log:\n  level: warn\n`);
  const proc = spawn(BIN, ['--config', cfg], {
    env: {
      PATH: process.env.PATH, GENAI_GW_GRPC_ADDR: `127.0.0.1:${grpc}`, GENAI_GW_HTTP_ADDR: `127.0.0.1:${httpPort}`,
      GENAI_GW_ADMIN_ADDR: `127.0.0.1:${admin}`, GENAI_GW_SPOOL_DIR: dir,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-2000);
  });
  const row = { name: bomb.name, wire: wire.length, plain: plain.length };
  try {
    if (!(await waitReady(admin, proc, Date.now() + 20000))) {
      row.status = 'gateway not ready';
      row.msg = stderr.trim().split('\n').pop() ?? '';
      return row;
    }
    const base = procStatus(proc.pid);
    const headers = { 'content-type': bomb.json ? 'application/json' : 'application/x-protobuf' };
    if (bomb.gzip) headers['content-encoding'] = 'gzip';
    const t0 = process.hrtime.bigint();
    const left = Math.max(1000, Math.min(REQ_TIMEOUT_MS, started + TOTAL_MS - Date.now()));
    const rs = await Promise.all(Array.from({ length: copies }, () => request(httpPort, '/v1/traces', wire, headers, left)));
    row.ms = Number((process.hrtime.bigint() - t0) / 1000000n);
    await new Promise((res) => setTimeout(res, 200));
    const st = procStatus(proc.pid);
    const status = rs.map((r) => r.status).join('+');
    const msg = [...new Set(rs.map(message))].join(' | ');
    Object.assign(row, { status, msg, base: base.rss, hwm: st.hwm, rss: st.rss, alive: proc.exitCode === null });
    return row;
  } finally {
    proc.kill('SIGKILL');
    await new Promise((res) => (proc.exitCode !== null ? res() : proc.once('exit', res)));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const mib = (n) => (n === undefined ? '-' : `${(n / 1048576).toFixed(1)}`);
const kib = (n) => `${(n / 1024).toFixed(0)} KiB`;

if (!fs.existsSync(BIN)) {
  console.error(`bombs.mjs: gateway binary ${BIN} not found (build it, or pass its path)`);
  process.exit(2);
}
console.log(`gateway ${BIN}; receivers.max_request_bytes ${mib(MAX)} MiB; formula bound 4 x max_request_bytes + base`);
const passes = (process.env.BOMB_PASSES ?? 'cap,nocap,pair').split(',');
const TITLE = {
  cap: 'default receivers.max_inflate_ratio',
  nocap: 'receivers.max_inflate_ratio: 0 (gzip bombs reach the decoders)',
  pair: 'receivers.max_inflate_ratio: 0, two copies at once (receivers.max_inflight_bytes shared)',
};
for (const pass of passes) {
  const off = pass !== 'cap';
  console.log(`\n${TITLE[pass]}`);
  console.log('bomb               wire        inflated    status  time(ms)  base RSS  peak RSS  RSS after  (MiB)  message');
  for (const bomb of bombs(MAX)) {
    if (ONLY && !ONLY.includes(bomb.name)) continue;
    if (off && !bomb.gzip) continue;
    if (Date.now() - started > TOTAL_MS) {
      console.log(`${bomb.name.padEnd(18)} skipped: the run's deadline (BOMB_TOTAL_S) has passed`);
      continue;
    }
    const r = await runBomb(bomb, off, pass === 'pair' ? 2 : 1);
    console.log(
      `${r.name.padEnd(18)} ${kib(r.wire).padStart(10)}  ${mib(r.plain).padStart(7)} MiB  ${String(r.status).padEnd(7)} ` +
        `${String(r.ms ?? '-').padStart(8)}  ${mib(r.base).padStart(8)}  ${mib(r.hwm).padStart(8)}  ${mib(r.rss).padStart(9)}         ` +
        `${r.alive === false ? '[GATEWAY DIED] ' : ''}${(r.msg ?? '').slice(0, 110)}`,
    );
  }
}
