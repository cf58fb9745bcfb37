/*
 * pgbouncer.mjs: Debian's pgbouncer between the gateway and the test PostgreSQL, started by the test on a
 * free loopback port, in transaction pooling with a pool smaller than its clients, so consecutive
 * transactions of one client land on different server connections (what a Kubernetes PgBouncer in
 * front of many gateways does). It runs as the postgres OS user (pgbouncer refuses root), in the
 * foreground, and is stopped by its pid.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import net from 'node:net';
import pg from 'pg';
import { freePort, sleep } from './harness.mjs';

export function pgbouncerMissing() {
  const found = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer'].find((p) => fs.existsSync(p));
  return found ? null : 'pgbouncer is not installed (scripts/test.sh installs it: gw_ensure_k8s_packages)';
}

/**
 * Start pgbouncer in front of the server of `adminDsn`. Returns { port, dsnFor(db), stats(), stop() }.
 * poolSize: server connections per (database, user).
 */
export async function startPgbouncer(adminDsn, { poolSize = 2 } = {}) {
  const u = new URL(adminDsn);
  const dir = await fsp.mkdtemp('/tmp/gw-pgbouncer-');
  await fsp.chmod(dir, 0o755);
  const port = await freePort();
  const user = decodeURIComponent(u.username || 'postgres');
  await fsp.writeFile(path.join(dir, 'userlist.txt'), `"${user}" ""\n`);
  await fsp.writeFile(
    path.join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `* = host=${u.hostname} port=${u.port || 5432}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${path.join(dir, 'userlist.txt')}`,
      'pool_mode = transaction',
      `default_pool_size = ${poolSize}`,
      'max_client_conn = 200',
      `admin_users = ${user}`,
      `stats_users = ${user}`,
      'server_reset_query =',
      'ignore_startup_parameters = extra_float_digits',
      '',
    ].join('\n'),
  );
  for (const f of await fsp.readdir(dir)) await fsp.chmod(path.join(dir, f), 0o644);
  const proc = spawn('pgbouncer', ['-u', 'postgres', path.join(dir, 'pgbouncer.ini')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (d) => { log = (log + d).slice(-65536); });
  proc.stderr.on('data', (d) => { log = (log + d).slice(-65536); });
  let exited = null;
  proc.on('exit', (code, signal) => { exited = { code, signal }; });
  const deadline = Date.now() + 10000;
  for (;;) {
    if (exited) throw new Error(`pgbouncer exited ${JSON.stringify(exited)}:\n${log}`);
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`pgbouncer did not listen on ${port}:\n${log}`);
    }
    await sleep(50);
  }
  const dsnFor = (db) => `postgresql://${encodeURIComponent(user)}@127.0.0.1:${port}/${db}`;
  return {
    port,
    dsnFor,
    logs: () => log,
    /** Rows of an admin console SHOW command (SHOW POOLS, SHOW CLIENTS, SHOW SERVERS). */
    async show(what) {
      const c = new pg.Client({ connectionString: dsnFor('pgbouncer') });
      await c.connect();
      try {
        return (await c.query(`SHOW ${what}`)).rows;
      } finally {
        await c.end().catch(() => {});
      }
    },
    async stop() {
      if (!exited) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await new Promise((r) => (exited ? r() : proc.on('exit', r)));
        clearTimeout(t);
      }
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}
