/*
 * startup-log.test.mjs: what the gateway says at start about its spool. The memory spool's warning (what
 * Postgres has not stored is lost with the process) must appear exactly when the memory spool is in use,
 * whether or not an exporter is configured: an operator reads it to know whether a restart loses data.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { prerequisites, startGateway, freePort } from '../lib/harness.mjs';

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

  test('memory spool with an exporter: the memory-spool warning', async () => {
    const port = await freePort();
    const log = await startupLog({ spool: { mode: 'memory' }, exporters: { signoz: { endpoint: `127.0.0.1:${port}` } } });
    assert.match(log, MEMORY_WARNING);
    assert.doesNotMatch(log, DISK_INFO);
  });
});
