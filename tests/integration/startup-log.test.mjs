/*
 * startup-log.test.mjs: what the gateway says and does at start. The memory spool's warning (what
 * Postgres has not stored is lost with the process) must appear exactly when the memory spool is in use,
 * whether or not an exporter is configured: an operator reads it to know whether a restart loses data.
 * A DSN libpq cannot use stops --check-config and the start without echoing it; a Postgres that accepts
 * connections and never answers does not hold the start (its migrations wait for the writer).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { prerequisites, startGateway, freePort, GW_BIN } from '../lib/harness.mjs';

const skip = prerequisites({ needPg: false });
const MEMORY_WARNING = /level=warn[^\n]*spool: memory: what Postgres has not stored yet is lost/;
const DISK_INFO = /spool: disk, in /;
const NO_EXPORTER = /no exporter configured: spool entries keep the rows only/;

async function startupLog(config) {
  const gw = await startGateway({ config });
  try {
    return gw.logs();
  } finally {
    await gw.stop();
    await gw.cleanup();
  }
}

describe('start-up log: the spool in use', { skip: skip ?? false }, () => {
  test('disk spool with an exporter: the disk line, no memory-spool warning', async () => {
    const port = await freePort();
    const log = await startupLog({ exporters: { signoz: { endpoint: `127.0.0.1:${port}` } } });
    assert.match(log, DISK_INFO);
    assert.doesNotMatch(log, MEMORY_WARNING);
    assert.doesNotMatch(log, NO_EXPORTER);
  });

  test('disk spool, no exporter: the disk line and the rows-only note, no memory-spool warning', async () => {
    const log = await startupLog({});
    assert.match(log, DISK_INFO);
    assert.match(log, NO_EXPORTER);
    assert.doesNotMatch(log, MEMORY_WARNING);
  });

  test('memory spool, no exporter: the memory-spool warning', async () => {
    const log = await startupLog({ spool: { mode: 'memory' } });
    assert.match(log, MEMORY_WARNING);
    assert.doesNotMatch(log, DISK_INFO);
    assert.match(log, NO_EXPORTER);
  });

  test('an open-files limit that fits the HTTP connections but not the gRPC ones too is warned about', async () => {
    /* 6000 >= 4096 HTTP + 1024, < 4096 HTTP + 4096 gRPC + 1024: before, no warning */
    const gw = await startGateway({ wrapper: ['prlimit', '--nofile=6000:6000', '--'] });
    try {
      assert.match(gw.logs(), /open files limit 6000 leaves too little room for receivers\.http\.max_connections 4096 and receivers\.grpc\.max_connections 4096 \(9216 descriptors/);
    } finally {
      await gw.stop();
      await gw.cleanup();
    }
  });

  test('--config without a file: exit 2, said', () => {
    const r = spawnSync(GW_BIN, ['--config'], { encoding: 'utf8', timeout: 20000 });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--config needs a file/);
  });

  test('memory spool with an exporter: the memory-spool warning', async () => {
    const port = await freePort();
    const log = await startupLog({ spool: { mode: 'memory' }, exporters: { signoz: { endpoint: `127.0.0.1:${port}` } } });
    assert.match(log, MEMORY_WARNING);
    assert.doesNotMatch(log, DISK_INFO);
  });
});

describe('start-up: the Postgres DSN', { skip: skip ?? false }, () => {
  const check = (dsn) =>
    spawnSync(GW_BIN, ['--check-config'], { env: { PATH: process.env.PATH, DATABASE_URL: dsn }, encoding: 'utf8', timeout: 20000 });

  test('a DSN libpq cannot use stops --check-config, named, never echoed', () => {
    const cases = [
      ['garbage s3cr3t-pw', /postgres\.dsn \(or DATABASE_URL\): is not a connection string libpq accepts/],
      ['postgresql://gw:s3cr3t-pw@127.0.0.1:5432/gw?sslmode=bogus', /sslmode 'bogus' is not one of disable, allow, prefer, require, verify-ca, verify-full/],
      ['host=db password=s3cr3t-pw sslmod=require', /invalid connection option "sslmod"/],
    ];
    for (const [dsn, want] of cases) {
      const r = check(dsn);
      assert.equal(r.status, 1, `${want}: ${r.stderr}`);
      assert.match(r.stderr, want);
      assert.doesNotMatch(r.stderr, /s3cr3t-pw/, 'the password is not echoed');
    }
    const ok = check('postgresql://gw:s3cr3t-pw@127.0.0.1:5432/gw?sslmode=require');
    assert.equal(ok.status, 0, ok.stderr);
  });

  test('a Postgres that accepts and never answers does not hold the start', { timeout: 60000 }, async () => {
    const silent = net.createServer(() => {}); /* accepts, never answers the startup packet */
    await new Promise((r) => silent.listen(0, '127.0.0.1', r));
    const dsn = `postgresql://gw:s3cr3t-pw@127.0.0.1:${silent.address().port}/gw`;
    let gw;
    try {
      /* libpq's own default has no connect timeout: before, the start waited on this socket for ever */
      gw = await startGateway({ dsn, readyTimeoutMs: 30000 });
      assert.match(gw.logs(), /PostgreSQL is not reachable yet \([^)]*timeout[^)]*\); spans are spooled/);
      assert.doesNotMatch(gw.logs(), /s3cr3t-pw/);
      assert.deepEqual(await gw.stop(30000), { code: 0, signal: null });
    } finally {
      await gw?.cleanup();
      silent.close();
    }
  });
});
