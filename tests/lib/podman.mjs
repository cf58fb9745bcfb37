/*
 * podman.mjs: containers for the image and pod tests, with podman 4.3 as this machine kind runs it
 * (../shared/K8S-TESTING.md): runc (crun fails here), the open-files limit of the host, images built
 * locally and never pulled, everything a test makes named by the test and removed by that name.
 *
 * Key decisions:
 * - No image registry is reachable, so deploy/Dockerfile cannot run as written here (its stages start
 *   FROM debian:12-slim and apt-get the packages). `buildGatewayImage` builds its runtime stage's
 *   equivalent instead: FROM scratch + a root filesystem holding exactly what the runtime stage holds,
 *   taken from this machine (a Debian 12 like the image): the gateway binary of this build (not the
 *   build stage's), the library files `ldd` names (from the same Debian packages as RUNTIME_PKGS: the
 *   image test checks that every NEEDED library's package is in RUNTIME_PKGS), the migrations and
 *   prices.yaml under /usr/local/share/genai-gateway, /etc/passwd and /etc/group with the genai user
 *   10001, and /var/lib/genai-gateway/spool owned by it. The runtime stage's own USER, ENV, VOLUME,
 *   EXPOSE and ENTRYPOINT lines are copied from deploy/Dockerfile verbatim. What the test image lacks:
 *   the rest of Debian's userland (no shell, apt, dpkg, ca-certificates: nothing the gateway runs).
 * - `buildAppImage` is the application side of a pod: node and its libraries, FROM scratch; the test's
 *   client script and node_modules come in through a hostPath volume (read-only).
 * - Every call has a timeout: a stuck podman fails the test, never hangs the suite.
 */
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO, GW_BIN } from './harness.mjs';

const execFileP = promisify(execFile);

export const DOCKERFILE = path.join(REPO, 'deploy', 'Dockerfile');

let confDir = null;

/** CONTAINERS_CONF for podman here: runc, and the host's hard nofile limit as the containers' limit. */
function containersConf() {
  if (confDir) return path.join(confDir, 'containers.conf');
  confDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-podman-conf-'));
  let nofile = 1048576;
  try {
    nofile = Number(fs.readFileSync('/proc/self/limits', 'utf8').match(/Max open files\s+\d+\s+(\d+)/)[1]);
  } catch {
    /* keep the default */
  }
  fs.writeFileSync(
    path.join(confDir, 'containers.conf'),
    `[containers]\ndefault_ulimits = ["nofile=${nofile}:${nofile}", "nproc=32768:32768"]\n[engine]\nruntime = "runc"\n`,
  );
  return path.join(confDir, 'containers.conf');
}

/** Run podman; resolves { stdout, stderr }, rejects with both in the message. */
export async function podman(args, { timeoutMs = 120000, allowFail = false } = {}) {
  try {
    return await execFileP('podman', args, {
      env: { ...process.env, CONTAINERS_CONF: containersConf() },
      timeout: timeoutMs,
      maxBuffer: 64 << 20,
    });
  } catch (e) {
    if (allowFail) return { stdout: e.stdout ?? '', stderr: e.stderr ?? '', failed: true };
    throw new Error(`podman ${args.join(' ')} failed: ${e.message}\n${e.stderr ?? ''}`);
  }
}

/**
 * Why podman tests cannot run here (a specific reason, for a loud skip), or null. Checks that podman
 * and runc exist and that a container really starts.
 */
export async function podmanPrerequisites() {
  for (const bin of ['podman', 'runc']) {
    const found = process.env.PATH.split(':').some((d) => fs.existsSync(path.join(d, bin)));
    if (!found) return `${bin} is not installed (scripts/test.sh installs it: gw_ensure_k8s_packages)`;
  }
  const r = await podman(['info', '--format', '{{.Host.OCIRuntime.Name}}'], { timeoutMs: 60000, allowFail: true });
  if (r.failed) return `podman info fails here: ${r.stderr.trim().split('\n').pop()}`;
  return null;
}

/** A name unique to this run, for images, pods, volumes and secrets the test makes. */
export function uniqueName(prefix) {
  return `${prefix}-${crypto.randomBytes(4).toString('hex')}`;
}

/** The library files the dynamic loader maps for `bin`, resolved: [{ name (as ldd prints), file }]. */
export async function lddLibs(bin) {
  const { stdout } = await execFileP('ldd', [bin]);
  const libs = [];
  for (const line of stdout.split('\n')) {
    let m = /^\s*(\S+) => (\/\S+) \(/.exec(line);
    if (m) {
      libs.push({ name: m[2], file: fs.realpathSync(m[2]) });
      continue;
    }
    m = /^\s*(\/\S+) \(/.exec(line);
    if (m) libs.push({ name: m[1], file: fs.realpathSync(m[1]) });
  }
  return libs;
}

/* Copy `bin` and its libraries into rootfs, Debian's merged-/usr layout (lib -> usr/lib). */
async function addBinary(rootfs, bin, dest) {
  for (const d of ['usr/lib/x86_64-linux-gnu', 'usr/lib64', 'usr/local/bin', 'usr/bin']) {
    await fsp.mkdir(path.join(rootfs, d), { recursive: true });
  }
  for (const l of ['lib', 'lib64']) {
    if (!fs.existsSync(path.join(rootfs, l))) await fsp.symlink(`usr/${l}`, path.join(rootfs, l));
  }
  await fsp.copyFile(bin, path.join(rootfs, dest));
  await fsp.chmod(path.join(rootfs, dest), 0o755);
  for (const { name, file } of await lddLibs(bin)) {
    const rel = name.replace(/^\/(usr\/)?/, 'usr/');
    await fsp.copyFile(file, path.join(rootfs, rel));
  }
}

/**
 * The lines of deploy/Dockerfile's runtime stage that set what the image runs as: USER, ENV, VOLUME,
 * EXPOSE, ENTRYPOINT, CMD, verbatim.
 */
export function runtimeStageMetadata(text = fs.readFileSync(DOCKERFILE, 'utf8')) {
  const stages = text.split(/^FROM /m);
  const runtime = stages.find((s) => /^\S+ AS runtime\b/m.test(s));
  if (!runtime) throw new Error('deploy/Dockerfile has no "AS runtime" stage');
  return runtime
    .split('\n')
    .filter((l) => /^(USER|ENV|VOLUME|EXPOSE|ENTRYPOINT|CMD) /.test(l));
}

/** deploy/Dockerfile's RUNTIME_PKGS, as a list. */
export function runtimePackages(text = fs.readFileSync(DOCKERFILE, 'utf8')) {
  const m = /ARG RUNTIME_PKGS="([^"]*)"/.exec(text.replace(/\\\n/g, ' '));
  if (!m) throw new Error('deploy/Dockerfile has no ARG RUNTIME_PKGS="..."');
  return m[1].split(/\s+/).filter(Boolean);
}

/* COPY makes files root's: owned holds [dir in the context, path in the image] copied as 10001. */
async function buildFromRootfs(tag, rootfs, lines, owned = []) {
  const ctx = path.dirname(rootfs);
  const copies = [`COPY ${path.basename(rootfs)}/ /`, ...owned.map(([src, dst]) => `COPY --chown=10001:10001 ${src}/ ${dst}/`)];
  await fsp.writeFile(path.join(ctx, 'Containerfile'), ['FROM scratch', ...copies, ...lines, ''].join('\n'));
  await podman(['build', '--pull=never', '--network', 'none', '-q', '-f', path.join(ctx, 'Containerfile'), '-t', tag, ctx], {
    timeoutMs: 180000,
  });
}

/**
 * Build the gateway test image (see the header for how it differs from deploy/Dockerfile) as `tag`.
 * Returns tag.
 */
export async function buildGatewayImage(tag, { bin = GW_BIN } = {}) {
  const ctx = await fsp.mkdtemp(path.join(os.tmpdir(), 'gw-image-'));
  try {
    const rootfs = path.join(ctx, 'rootfs');
    await addBinary(rootfs, bin, 'usr/local/bin/genai-gateway');
    const share = path.join(rootfs, 'usr/local/share/genai-gateway');
    await fsp.mkdir(path.join(share, 'migrations'), { recursive: true });
    await fsp.copyFile(path.join(REPO, 'gateway/cost/prices.yaml'), path.join(share, 'prices.yaml'));
    for (const f of await fsp.readdir(path.join(REPO, 'migrations'))) {
      if (f.endsWith('.sql')) await fsp.copyFile(path.join(REPO, 'migrations', f), path.join(share, 'migrations', f));
    }
    /* What the runtime stage's RUN makes: the genai user and group 10001, its spool directory. */
    await fsp.mkdir(path.join(rootfs, 'etc/genai-gateway'), { recursive: true });
    await fsp.writeFile(path.join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/usr/sbin/nologin\ngenai:x:10001:10001::/var/lib/genai-gateway:/usr/sbin/nologin\n');
    await fsp.writeFile(path.join(rootfs, 'etc/group'), 'root:x:0:\ngenai:x:10001:\n');
    await fsp.mkdir(path.join(ctx, 'varlib/spool'), { recursive: true });
    await fsp.mkdir(path.join(rootfs, 'tmp'), { mode: 0o1777 });
    await fsp.chmod(path.join(rootfs, 'tmp'), 0o1777);
    await buildFromRootfs(tag, rootfs, runtimeStageMetadata(), [['varlib', '/var/lib/genai-gateway']]);
    return tag;
  } finally {
    await fsp.rm(ctx, { recursive: true, force: true });
  }
}

/** An application image: node and its libraries, FROM scratch, running as 10002; scripts come mounted. */
export async function buildAppImage(tag) {
  const ctx = await fsp.mkdtemp(path.join(os.tmpdir(), 'gw-app-image-'));
  try {
    const rootfs = path.join(ctx, 'rootfs');
    await addBinary(rootfs, fs.realpathSync(process.execPath), 'usr/bin/node');
    await fsp.mkdir(path.join(rootfs, 'etc'), { recursive: true });
    await fsp.writeFile(path.join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/usr/sbin/nologin\napp:x:10002:10002::/tmp:/usr/sbin/nologin\n');
    await fsp.writeFile(path.join(rootfs, 'etc/group'), 'root:x:0:\napp:x:10002:\n');
    await fsp.mkdir(path.join(rootfs, 'tmp'), { mode: 0o1777 });
    await fsp.chmod(path.join(rootfs, 'tmp'), 0o1777);
    await buildFromRootfs(tag, rootfs, ['USER 10002:10002', 'ENV PATH=/usr/local/bin:/usr/bin', 'ENTRYPOINT ["/usr/bin/node"]']);
    return tag;
  } finally {
    await fsp.rm(ctx, { recursive: true, force: true });
  }
}

/** Size of a local image in bytes. */
export async function imageSize(tag) {
  const { stdout } = await podman(['image', 'inspect', '--format', '{{.Size}}', tag]);
  return Number(stdout.trim());
}

/** Remove what a test made, by name; missing things are fine. */
export async function removeImage(tag) {
  await podman(['rmi', '-f', tag], { allowFail: true });
}
export async function removeContainer(name) {
  await podman(['rm', '-f', '-t', '0', name], { allowFail: true });
}
export async function removeVolume(name) {
  await podman(['volume', 'rm', '-f', name], { allowFail: true });
}
export async function removeSecret(name) {
  await podman(['secret', 'rm', name], { allowFail: true });
}
