/*
 * harness.mjs: run the real gateway binary against a real PostgreSQL for the node:test suites.
 *
 * What it offers: free loopback ports, a fresh database per test file (CREATE DATABASE gw_it_<random>,
 * dropped with FORCE afterwards), starting the gateway with its addresses in the environment and a small
 * YAML config (postgres.migrations_dir always, plus what the test asks for), waiting for /readyz,
 * stopping it with SIGTERM and checking its exit code, scraping /metrics, reading its RSS, polling
 * Postgres until rows appear, and a private PostgreSQL cluster (scripts/pg.sh) for tests that stop and
 * restart the server.
 *
 * Key decisions:
 * - Environment: GW_BIN (default /work/main/build/genai-gateway, i.e. <repo>/build/genai-gateway),
 *   GW_TEST_PG_DSN (an admin DSN of the shared test server). `prerequisites()` names what is missing so
 *   a test file can skip with a reason; run-node-tests.sh makes sure both exist, so in CI nothing skips.
 * - Each gateway gets its own spool dir (GENAI_GW_SPOOL_DIR) in a temp dir, and its stderr/stdout are
 *   kept (bounded) and written next to it, so a failure can print the gateway's own words.
 * - Polling has deadlines everywhere: a broken gateway fails a test, it never hangs the suite.
 */
import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';

const execFileP = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '../..');
export const GW_BIN = process.env.GW_BIN ?? path.join(REPO, 'build', 'genai-gateway');
export const MIGRATIONS_DIR = process.env.GENAI_GW_MIGRATIONS_DIR ?? path.join(REPO, 'migrations');
export const PG_SCRIPT = path.join(REPO, 'scripts', 'pg.sh');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Why the gateway tests cannot run here, or null when they can. */
export function prerequisites({ needPg = true } = {}) {
  if (!fs.existsSync(GW_BIN)) return `gateway binary not found at ${GW_BIN} (set GW_BIN or build it)`;
  if (needPg && !process.env.GW_TEST_PG_DSN) return 'GW_TEST_PG_DSN is not set (run tests/run-node-tests.sh)';
  return null;
}

/* Ports this process handed out: the kernel may give a just-closed port again, and the gateway it was
 * meant for may not have bound it yet. */
const portsGiven = new Set();

/** A TCP port on 127.0.0.1 that was free a moment ago (and not handed out before by this process). */
export async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const s = net.createServer();
      s.unref();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const { port: p } = s.address();
        s.close(() => resolve(p));
      });
    });
    if (!portsGiven.has(port)) {
      portsGiven.add(port);
      return port;
    }
  }
}

/* A gateway that lost one of its ports to another process between freePort() and its bind says so and
 * exits; startGateway then tries again on fresh ports. */
const PORT_TAKEN = /address in use|Address already in use|EADDRINUSE/;

/** DSN of database `db` on the same server as `dsn` (URL or key=value form). */
export function dsnWithDatabase(dsn, db) {
  if (/^postgres(ql)?:\/\//.test(dsn)) {
    const u = new URL(dsn);
    u.pathname = `/${db}`;
    return u.toString();
  }
  if (/\bdbname=\S+/.test(dsn)) return dsn.replace(/\bdbname=\S+/, `dbname=${db}`);
  return `${dsn} dbname=${db}`;
}

export function pgClientConfig(dsn) {
  if (/^postgres(ql)?:\/\//.test(dsn)) return { connectionString: dsn };
  const cfg = {};
  for (const m of dsn.matchAll(/(\w+)=('([^']*)'|\S+)/g)) cfg[m[1]] = m[3] ?? m[2];
  return { host: cfg.host, port: cfg.port ? Number(cfg.port) : undefined, user: cfg.user, password: cfg.password, database: cfg.dbname };
}

/** A connected pg client of the test's own on dsn (another writer, a long query); end() it when done. */
export async function pgConnect(dsn) {
  const c = new pg.Client(pgClientConfig(dsn));
  await c.connect();
  return c;
}

/**
 * The pid of the gateway's backend in database db once it waits for a lock in a statement matching the
 * SQL LIKE pattern `like` (waitFor's options).
 */
export function gatewayWaitingOnLock(db, like, opts = {}) {
  return waitFor(async () => (await db.query(
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'genai-gateway' " +
    "AND wait_event_type = 'Lock' AND query LIKE $1", [like])).rows[0]?.pid, { what: `the gateway waiting in ${like}`, ...opts });
}

/** Run one statement on a throw-away connection. */
async function adminQuery(dsn, sql) {
  const c = new pg.Client({ ...pgClientConfig(dsn), connectionTimeoutMillis: 10000 });
  await c.connect();
  try {
    return await c.query(sql);
  } finally {
    await c.end();
  }
}

/**
 * A fresh database on the server of `adminDsn` (default GW_TEST_PG_DSN). Returns
 * { name, dsn, pool, query(sql, params), drop() }.
 */
export async function createDatabase(adminDsn = process.env.GW_TEST_PG_DSN) {
  const name = `gw_it_${crypto.randomBytes(6).toString('hex')}`;
  await adminQuery(adminDsn, `CREATE DATABASE ${name}`);
  const dsn = dsnWithDatabase(adminDsn, name);
  const pool = new pg.Pool({ ...pgClientConfig(dsn), max: 2, connectionTimeoutMillis: 5000, idleTimeoutMillis: 1000 });
  pool.on('error', () => {}); /* a server restart kills idle clients: not a test failure by itself */
  return {
    name,
    dsn,
    pool,
    query: (sql, params) => pool.query(sql, params),
    async drop() {
      await pool.end().catch(() => {});
      await adminQuery(adminDsn, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
    },
  };
}

/** Minimal YAML for nested plain objects of scalars. */
export function toYaml(obj, indent = '') {
  let out = '';
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      out += `${indent}${k}:\n${toYaml(v, `${indent}  `)}`;
    } else if (Array.isArray(v)) {
      out += `${indent}${k}:\n${v.map((x) => `${indent}  - ${JSON.stringify(x)}\n`).join('')}`;
    } else if (typeof v === 'string') {
      out += `${indent}${k}: ${JSON.stringify(v)}\n`;
    } else {
      out += `${indent}${k}: ${v}\n`;
    }
  }
  return out;
}

function deepMerge(a, b) {
  const out = { ...a };
  for (const [k, v] of Object.entries(b ?? {})) {
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && a?.[k] && typeof a[k] === 'object' ? deepMerge(a[k], v) : v;
  }
  return out;
}

async function httpGet(url, timeoutMs = 2000) {
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), timeoutMs);
  try {
    const r = await fetch(url, { signal: ac.signal });
    return { status: r.status, text: await r.text(), headers: r.headers };
  } finally {
    clearTimeout(t);
  }
}

const LOG_KEEP = 256 * 1024;

/**
 * Start the gateway. Options: dsn (Postgres database for it; omit for none), config (object merged
 * into the YAML config), env (extra environment), spoolDir (the spool directory; default a fresh
 * `spool/` in the gateway's temp dir), readyTimeoutMs, wrapper (a command the gateway is started under,
 * which must exec it, e.g. ['prlimit', '--nofile=512:8192', '--']). Returns a handle:
 * { pid, proc, httpUrl, grpcAddr, adminUrl, dir, spoolDir, logs(), alive(), rss(), metrics(), stop(),
 *   kill(), signal(), waitExit(), killWhen(), restart(), cleanup() }.
 * pid and proc name the current process: restart() replaces them.
 */
export async function startGateway({ dsn, config = {}, env = {}, spoolDir, readyTimeoutMs = 20000, wrapper = [] } = {}) {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'gw-it-'));
  let [grpcPort, httpPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const cfg = deepMerge({ postgres: { migrations_dir: MIGRATIONS_DIR } }, config);
  const cfgFile = path.join(dir, 'gateway.yaml');
  await fsp.writeFile(cfgFile, toYaml(cfg));
  spoolDir ??= path.join(dir, 'spool');
  await fsp.mkdir(spoolDir, { recursive: true });

  const childEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME ?? '/tmp',
    GENAI_GW_GRPC_ADDR: `127.0.0.1:${grpcPort}`,
    GENAI_GW_HTTP_ADDR: `127.0.0.1:${httpPort}`,
    GENAI_GW_ADMIN_ADDR: `127.0.0.1:${adminPort}`,
    GENAI_GW_LOG_LEVEL: 'info',
    GENAI_GW_SPOOL_DIR: spoolDir,
    ...(dsn ? { DATABASE_URL: dsn } : {}),
    // a ThreadSanitizer build's settings (where its reports go), when the runner gives them
    ...(process.env.TSAN_OPTIONS ? { TSAN_OPTIONS: process.env.TSAN_OPTIONS } : {}),
    ...env,
  };

  const argv = [...wrapper, GW_BIN, '--config', cfgFile];
  let log = '';
  const logFile = fs.createWriteStream(path.join(dir, 'gateway.log'));
  const onData = (d) => {
    log += d.toString('utf8');
    if (log.length > LOG_KEEP) log = log.slice(-LOG_KEEP);
    logFile.write(d);
  };
  const note = (text) => onData(Buffer.from(`--- harness: ${text} ---\n`));

  /* One launch of the binary: its process, its exit. restart() makes a new one on the same ports,
   * config, environment and spool dir. */
  let cur;
  const launch = () => {
    const proc = spawn(argv[0], argv.slice(1), { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    const l = { proc, exited: null, startedAt: Date.now() };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    l.exitP = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        l.exited = { code, signal };
        resolve(l.exited);
      });
    });
    cur = l;
    return l;
  };

  const waitReady = async (timeoutMs) => {
    const l = cur;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (l.exited) throw new Error(`gateway exited before ready (${JSON.stringify(l.exited)}); log:\n${log.slice(-4000)}`);
      try {
        const r = await httpGet(`${gw.adminUrl}/readyz`, 1000);
        if (r.status === 200) return;
      } catch {
        /* not listening yet */
      }
      if (Date.now() > deadline) throw new Error(`gateway not ready after ${timeoutMs} ms; log:\n${log.slice(-4000)}`);
      await sleep(100);
    }
  };

  const gw = {
    get pid() {
      return cur.proc.pid;
    },
    get proc() {
      return cur.proc;
    },
    /** Wall-clock ms when the current process was spawned. */
    get startedAt() {
      return cur.startedAt;
    },
    dir,
    spoolDir,
    config: cfg,
    env: childEnv,
    ports: { grpc: grpcPort, http: httpPort, admin: adminPort },
    httpUrl: `http://127.0.0.1:${httpPort}`,
    grpcAddr: `127.0.0.1:${grpcPort}`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    logs: () => log,
    exited: () => cur.exited,
    alive: () => cur.exited === null,
    /** Resident set size in bytes, from /proc/<pid>/status. */
    rss() {
      const s = fs.readFileSync(`/proc/${cur.proc.pid}/status`, 'utf8');
      const m = /VmRSS:\s+(\d+)\s+kB/.exec(s);
      return m ? Number(m[1]) * 1024 : 0;
    },
    /** Peak resident set size in bytes (VmHWM). */
    peakRss() {
      const s = fs.readFileSync(`/proc/${cur.proc.pid}/status`, 'utf8');
      const m = /VmHWM:\s+(\d+)\s+kB/.exec(s);
      return m ? Number(m[1]) * 1024 : 0;
    },
    async metrics() {
      const r = await httpGet(`${gw.adminUrl}/metrics`, 5000);
      if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
      return parseMetrics(r.text);
    },
    /** Send a signal to the current process (no wait). */
    signal(sig) {
      if (!cur.exited) cur.proc.kill(sig);
    },
    /** Wait for the current process to exit; resolves { code, signal }, or null after timeoutMs. */
    async waitExit(timeoutMs = 30000) {
      let t;
      const r = await Promise.race([cur.exitP, new Promise((res) => { t = setTimeout(() => res(null), timeoutMs); })]);
      clearTimeout(t);
      return r;
    },
    /** SIGTERM, then wait for the exit; SIGKILL after timeoutMs. Resolves { code, signal }. */
    async stop(timeoutMs = 20000) {
      const l = cur;
      if (l.exited) return l.exited;
      note('SIGTERM');
      l.proc.kill('SIGTERM');
      const t = setTimeout(() => l.proc.kill('SIGKILL'), timeoutMs);
      const r = await l.exitP;
      clearTimeout(t);
      return r;
    },
    /** SIGKILL now; resolves { code, signal } once the process is gone. */
    async kill() {
      const l = cur;
      if (l.exited) return l.exited;
      note('SIGKILL');
      l.proc.kill('SIGKILL');
      return l.exitP;
    },
    /**
     * SIGKILL at a chosen moment: poll `when()` (truthy = now) every intervalMs, then kill. Resolves
     * { at (wall-clock ms of the kill), value (what when() returned) }. Throws after timeoutMs, or when
     * the process exits by itself first.
     */
    async killWhen(when, { timeoutMs = 30000, intervalMs = 20, what = 'the kill condition' } = {}) {
      const l = cur;
      const value = await waitFor(async () => {
        if (l.exited) throw new Error(`gateway exited (${JSON.stringify(l.exited)}) before ${what}`);
        return when();
      }, { timeoutMs, intervalMs, what });
      if (l.exited) throw new Error(`gateway exited (${JSON.stringify(l.exited)}) before ${what}`);
      const at = Date.now();
      await gw.kill();
      return { at, value };
    },
    /**
     * Start the binary again on the same ports, config, environment and spool dir (after kill() or
     * stop()). waitReady false returns as soon as it is spawned (to kill it during its own start).
     */
    async restart({ waitReady: wait = true, readyTimeoutMs: rt = readyTimeoutMs } = {}) {
      if (!cur.exited) throw new Error('restart: the gateway is still running; stop() or kill() it first');
      note('restart');
      launch();
      if (wait) await waitReady(rt);
      return gw;
    },
    /** Wait until /readyz answers 200 (e.g. after restart({ waitReady: false })). */
    waitReady: (timeoutMs = readyTimeoutMs) => waitReady(timeoutMs),
    async cleanup() {
      await gw.kill();
      logFile.end();
      await fsp.rm(dir, { recursive: true, force: true }).catch(() => {});
    },
  };

  for (let attempt = 1; ; attempt++) {
    launch();
    try {
      await waitReady(readyTimeoutMs);
      return gw;
    } catch (e) {
      const taken = cur.exited && PORT_TAKEN.test(log) && attempt < 4;
      if (!taken) {
        await gw.cleanup();
        throw e;
      }
      log = '';
      note(`a port was taken before the gateway bound it; starting again on fresh ports (attempt ${attempt + 1})`);
      [grpcPort, httpPort, adminPort] = [await freePort(), await freePort(), await freePort()];
      Object.assign(childEnv, {
        GENAI_GW_GRPC_ADDR: `127.0.0.1:${grpcPort}`,
        GENAI_GW_HTTP_ADDR: `127.0.0.1:${httpPort}`,
        GENAI_GW_ADMIN_ADDR: `127.0.0.1:${adminPort}`,
        ...env,
      });
      Object.assign(gw, {
        ports: { grpc: grpcPort, http: httpPort, admin: adminPort },
        httpUrl: `http://127.0.0.1:${httpPort}`,
        grpcAddr: `127.0.0.1:${grpcPort}`,
        adminUrl: `http://127.0.0.1:${adminPort}`,
      });
    }
  }
}

/**
 * Parse Prometheus text exposition into Map<"name{sorted labels}", number>; `metric(m, name, labels)`
 * reads one series (0 when absent: a counter never incremented may not be exposed).
 */
export function parseMetrics(text) {
  const m = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const l of (match[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    m.set(seriesKey(match[1], labels), Number(match[4]));
  }
  return m;
}

function seriesKey(name, labels = {}) {
  const keys = Object.keys(labels).sort();
  return keys.length ? `${name}{${keys.map((k) => `${k}="${labels[k]}"`).join(',')}}` : name;
}

export function metric(m, name, labels) {
  return m.get(seriesKey(name, labels)) ?? 0;
}

/** Sum of every series of `name` whatever its labels. */
export function metricSum(m, name) {
  let s = 0;
  for (const [k, v] of m) if (k === name || k.startsWith(`${name}{`)) s += v;
  return s;
}

/**
 * Poll until `check()` returns a truthy value (returned) or the deadline passes (throws with the last
 * value described by `describe`). Errors from check (e.g. the table not there yet) count as "not yet".
 */
export async function waitFor(check, { timeoutMs = 15000, intervalMs = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  let lastErr;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last value ${JSON.stringify(last)}${lastErr ? `, last error ${lastErr.message}` : ''}`);
    }
    await sleep(intervalMs);
  }
}

/** Rows of ai_interaction_traces for these trace ids, once there are at least `count` of them. */
export async function waitForRows(db, traceIds, count, { timeoutMs = 15000, settleMs = 300 } = {}) {
  const q = () => db.query('SELECT * FROM ai_interaction_traces WHERE trace_id = ANY($1) ORDER BY start_time, span_id', [traceIds]);
  await waitFor(async () => (await q()).rows.length >= count, { timeoutMs, what: `${count} rows for traces ${traceIds.join(',')}` });
  /* give a late duplicate a chance to show up before the caller counts */
  if (settleMs) await sleep(settleMs);
  return (await q()).rows;
}

/** Count of rows for (trace_id, span_id) pairs. */
export async function countRows(db, traceIds) {
  const r = await db.query('SELECT count(*)::int AS n FROM ai_interaction_traces WHERE trace_id = ANY($1)', [traceIds]);
  return r.rows[0].n;
}

/** POST to the gateway's HTTP receiver. Resolves { status, headers, body (Buffer) }. */
export async function post(gw, pathname, body, headers = {}, { method = 'POST', timeoutMs = 20000 } = {}) {
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), timeoutMs);
  try {
    const r = await fetch(`${gw.httpUrl}${pathname}`, { method, body, headers, signal: ac.signal });
    return { status: r.status, headers: r.headers, body: Buffer.from(await r.arrayBuffer()) };
  } finally {
    clearTimeout(t);
  }
}

/* ---- a private PostgreSQL cluster via scripts/pg.sh ---- */

/**
 * Start a cluster of our own in a fresh temp dir (it must be reachable by the postgres OS user, so
 * under /tmp). fast (default true) turns fsync off, as tests want; a benchmark passes false. Returns
 * { dir, port, dsn, stop(), start(), destroy() }; start() reuses the same port.
 */
export async function startPgCluster({ fast = true } = {}) {
  const parent = await fsp.mkdtemp(path.join('/tmp', 'gw-it-pg-'));
  await fsp.chmod(parent, 0o755);
  const dir = path.join(parent, 'data');
  const env = { ...process.env, GW_PG_FAST: fast ? '1' : '0' };
  const run = async (...args) => (await execFileP('bash', [PG_SCRIPT, ...args], { env, timeout: 120000 })).stdout.trim();
  const dsn = (await run('start', dir)).split('\n').pop();
  const port = Number(new URL(dsn).port);
  return {
    dir,
    port,
    dsn,
    async stop() {
      await run('stop', dir);
    },
    async start() {
      await run('start', dir, String(port));
    },
    async destroy() {
      await run('stop', dir).catch(() => {});
      await fsp.rm(parent, { recursive: true, force: true }).catch(() => {});
    },
  };
}
