/*
 * image.test.mjs: the container image (deploy/Dockerfile) as podman runs it. How the test image differs
 * from the Dockerfile's runtime stage is in tests/lib/podman.mjs (no registry here: FROM scratch with the
 * same files, and the runtime stage's USER/ENV/VOLUME/EXPOSE/ENTRYPOINT lines verbatim).
 *
 * Checked: every library the binary needs comes from a package RUNTIME_PKGS installs; the image runs as
 * uid/gid 10001 with a read-only root filesystem, no capabilities and no-new-privileges, finds its
 * migrations and price table inside the image, writes its disk spool to the volume, stores a span in
 * Postgres and drains on SIGTERM (podman stop) with exit 0. The image's size is printed.
 * The container uses the host's network namespace so it reaches the test PostgreSQL on 127.0.0.1, on
 * ports chosen free for this test.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import { prerequisites, createDatabase, freePort, waitFor, waitForRows, post, sleep, GW_BIN } from '../lib/harness.mjs';
import { traceRequest, genaiSpan, toProtobuf } from '../lib/otlp.mjs';
import {
  podman, podmanPrerequisites, uniqueName, buildGatewayImage, imageSize, removeImage, removeContainer, removeVolume,
  lddLibs, runtimePackages,
} from '../lib/podman.mjs';

const execFileP = promisify(execFile);
const skip = prerequisites() ?? (await podmanPrerequisites());
if (skip) console.error(`image.test.mjs: SKIPPED: ${skip}`);

/* The Debian package owning a library file (merged /usr: try both spellings). */
async function owner(file) {
  for (const f of [file, file.replace(/^\/usr\/lib\//, '/lib/'), file.replace(/^\/lib\//, '/usr/lib/')]) {
    try {
      const { stdout } = await execFileP('dpkg-query', ['-S', f]);
      return stdout.split(':')[0].trim();
    } catch {
      /* next spelling */
    }
  }
  return null;
}

describe('container image', { skip: skip ?? false }, () => {
  const tag = `localhost/${uniqueName('genai-gateway-image-test')}:test`;
  const name = uniqueName('gw-image-test');
  const vol = uniqueName('gw-image-test-spool');
  let db;
  let ports;

  before(async () => {
    db = await createDatabase();
    await buildGatewayImage(tag, { bin: GW_BIN });
    ports = { grpc: await freePort(), http: await freePort(), admin: await freePort() };
  });

  after(async () => {
    await removeContainer(name);
    await removeVolume(vol);
    await removeImage(tag);
    await db?.drop();
  });

  test('RUNTIME_PKGS holds every library the binary links', async () => {
    const { stdout } = await execFileP('objdump', ['-p', GW_BIN]).catch(() => ({ stdout: '' }));
    let needed = [...stdout.matchAll(/NEEDED\s+(\S+)/g)].map((m) => m[1]);
    const libs = await lddLibs(GW_BIN);
    if (!needed.length) needed = libs.map((l) => l.name.split('/').pop()); /* no binutils: every mapped library */
    const pkgs = new Set(runtimePackages());
    const missing = [];
    const owners = await Promise.all(needed.map(async (n) => {
      const lib = libs.find((l) => l.name.endsWith(`/${n}`));
      assert.ok(lib, `ldd does not resolve ${n}`);
      return [n, lib.name, await owner(lib.name)];
    }));
    for (const [n, file, pkg] of owners) {
      assert.ok(pkg, `no Debian package owns ${file}`);
      /* libc6 is in every Debian image */
      if (pkg !== 'libc6' && !pkgs.has(pkg)) missing.push(`${n} (${pkg})`);
    }
    assert.deepEqual(missing, [], `deploy/Dockerfile RUNTIME_PKGS lacks the packages of: ${missing.join(', ')}`);
  });

  test('metadata: non-root user, entrypoint the gateway, spool volume', async () => {
    const { stdout } = await podman(['image', 'inspect', tag]);
    const cfg = JSON.parse(stdout)[0].Config;
    assert.equal(cfg.User, '10001:10001');
    assert.deepEqual(cfg.Entrypoint, ['/usr/local/bin/genai-gateway']);
    assert.ok(cfg.Env.includes('GENAI_GW_SPOOL_DIR=/var/lib/genai-gateway/spool'), cfg.Env.join(' '));
    assert.ok(cfg.Volumes && '/var/lib/genai-gateway' in cfg.Volumes);
    const size = await imageSize(tag);
    console.error(`image.test.mjs: test image ${tag}: ${(size / 1e6).toFixed(1)} MB`);
    assert.ok(size < 150e6, `image is ${size} bytes`);
  });

  test('runs as 10001 with a read-only root, stores a span, drains on SIGTERM', async () => {
    await podman([
      'run', '-d', '--name', name, '--network', 'host', '--read-only', '--tmpfs', '/tmp:rw,size=16m',
      '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges', '-v', `${vol}:/var/lib/genai-gateway`,
      '-e', `GENAI_GW_GRPC_ADDR=127.0.0.1:${ports.grpc}`, '-e', `GENAI_GW_HTTP_ADDR=127.0.0.1:${ports.http}`,
      '-e', `GENAI_GW_ADMIN_ADDR=127.0.0.1:${ports.admin}`, '-e', `DATABASE_URL=${db.dsn}`, tag,
    ]);
    const admin = `http://127.0.0.1:${ports.admin}`;
    await waitFor(async () => (await fetch(`${admin}/readyz`)).status === 200, { timeoutMs: 20000, what: '/readyz' }).catch(async (e) => {
      const { stdout, stderr } = await podman(['logs', name], { allowFail: true });
      throw new Error(`${e.message}\n${stdout}${stderr}`);
    });

    const pid = Number((await podman(['inspect', '--format', '{{.State.Pid}}', name])).stdout.trim());
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    assert.match(status, /^Uid:\s+10001\s+10001\s+10001\s+10001$/m);
    assert.match(status, /^Gid:\s+10001\s+10001\s+10001\s+10001$/m);
    assert.match(status, /^CapEff:\s+0+$/m);
    assert.match(status, /^NoNewPrivs:\s+1$/m);
    const root = fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n').find((l) => l.split(' ')[4] === '/');
    assert.match(root.split(' ')[5], /(^|,)ro(,|$)/, `root mount: ${root}`);

    const s = genaiSpan({ model: 'gpt-4o-mini', input: 100, output: 10 });
    const r = await post({ httpUrl: `http://127.0.0.1:${ports.http}` }, '/v1/traces', toProtobuf(traceRequest([s], { service: 'image-test' })), {
      'content-type': 'application/x-protobuf',
    });
    assert.equal(r.status, 200);
    const rows = await waitForRows(db, [s.traceId], 1);
    assert.equal(rows.length, 1);
    assert.ok(Number(rows[0].total_cost_usd) > 0, 'priced from the prices.yaml inside the image');
    const { stdout: spool } = await podman(['volume', 'inspect', '--format', '{{.Mountpoint}}', vol]);
    const files = fs.readdirSync(`${spool.trim()}/spool`);
    assert.ok(files.some((f) => f.endsWith('.seg')), `spool files: ${files.join(' ')}`);

    await podman(['stop', '-t', '20', name], { timeoutMs: 60000 });
    const code = (await podman(['inspect', '--format', '{{.State.ExitCode}}', name])).stdout.trim();
    const { stdout: logs, stderr: elogs } = await podman(['logs', name], { allowFail: true });
    assert.equal(code, '0', `exit code after SIGTERM; logs:\n${logs}${elogs}`);
    await sleep(0);
  });
});
