/*
 * abuse-bench.test.mjs: bench/abuse.mjs (issue 12's attacks with a well-behaved client alongside) runs to
 * the end against the built gateway and prints a row for every attack, each after an unloaded phase, and
 * its summary. A smoke run with tiny durations and few attacker connections: it checks that the benchmark
 * works, never its figures (latency and success rates are measured by hand, bench/README.md "Abuse").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { prerequisites, REPO, GW_BIN } from '../lib/harness.mjs';

const skip = prerequisites({ needPg: false });
const ATTACKS = ['privkey-grpc-x2', 'json-gzip-64MiB-x2', 'pb-gzip-bomb', 'fds-h2-idle-grpc', 'slowloris-http', 'idle-grpc', 'slowloris-admin'];

test('bench/abuse.mjs runs every attack and prints every row', { skip: skip ?? false, timeout: 240000 }, async () => {
  const child = spawn(process.execPath, [path.join(REPO, 'bench', 'abuse.mjs'), GW_BIN], {
    env: { ...process.env, ABUSE_SECONDS: '1', ABUSE_RATE: '5', ABUSE_SCALE: '0.02' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const code = await new Promise((resolve) => child.on('exit', resolve));
  assert.equal(code, 0, `abuse.mjs exited ${code}\n${out}\n${err}`);
  /* each phase's row is followed by the gateway's stage means over it: there, and out of the tables' way */
  const all = out.split('\n');
  const stages = all.filter((l) => /^\s+stage means \(ms\): /.test(l));
  assert.equal(stages.length, 2 * ATTACKS.length + 1, `a stage line per phase:\n${out}`);
  for (const l of stages) assert.match(l, /upload [\d.-]+, queue [\d.-]+, process [\d.-]+, append [\d.-]+, durable [\d.-]+, answer [\d.-]+; \d+ syncs, mean [\d.-]+ ms$/, l);
  const lines = all.filter((l) => !/^\s+stage means/.test(l));
  const header = lines.findIndex((l) => l.startsWith('phase '));
  assert.ok(header >= 0, `no table header:\n${out}`);
  const table = lines.slice(header + 1, header + 1 + 2 * ATTACKS.length + 1);
  for (let i = 0; i < ATTACKS.length; i++) {
    assert.match(table[2 * i], /^\(unloaded\) /, `row ${2 * i}: ${table[2 * i]}`);
    const row = table[2 * i + 1];
    assert.ok(row.startsWith(`${ATTACKS[i]} `), `row for ${ATTACKS[i]}: ${row}`);
    /* ok %, p99, ratio for each protocol, /healthz, peak RSS, bound, fds and the verdict are all there */
    assert.match(row, /^\S+\s+[\d.]+%\s+[\d.]+\s+[\d.]+\s+[\d.]+%\s+[\d.]+\s+[\d.]+\s+[\d.]+%\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+\d+\s+(yes|NO)/, row);
    assert.doesNotMatch(row, /GATEWAY DIED/);
  }
  assert.match(table.at(-1), /^\(unloaded\) /);
  /* the verdict table: every attack again, against the unloaded phases on both of its sides */
  const pooled = lines.findIndex((l) => l.startsWith('against the unloaded phases before and after'));
  assert.ok(pooled > header, `no pooled verdict table:\n${out}`);
  const header2 = lines.findIndex((l, i) => i > pooled && l.startsWith('phase '));
  assert.ok(header2 > pooled, `no header after the pooled table's title:\n${out}`);
  for (let i = 0; i < ATTACKS.length; i++) {
    const row = lines[header2 + 1 + i];
    assert.ok(row.startsWith(`${ATTACKS[i]} `), `pooled row for ${ATTACKS[i]}: ${row}`);
    assert.match(row, /^\S+\s+[\d.]+%\s+[\d.]+\s+[\d.]+\s+[\d.]+%\s+[\d.]+\s+[\d.]+\s+[\d.]+%\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+\d+\s+(yes|NO)/, row);
  }
  assert.match(out, /goal met \(.*\): \d of 7 attacks/);
  for (const a of ATTACKS) assert.match(out, new RegExp(`^  ${a} .*\\n +-> \\S`, 'm'), `attack summary of ${a}`);
});
