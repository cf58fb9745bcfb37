/*
 * certs.mjs: throw-away PKI for the TLS tests, made at test time with the openssl command line (no key is
 * checked in). EC P-256 keys: quick to make. Every file lands in the directory given.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs/promises';
import path from 'node:path';

const run = promisify(execFile);
const openssl = (...args) => run('openssl', args, { timeout: 30000 });

/** A CA: { name, cert, key } (paths). */
export async function makeCa(dir, name) {
  const cert = path.join(dir, `${name}.pem`);
  const key = path.join(dir, `${name}.key`);
  await openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert,
    '-days', '3', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  return { name, cert, key };
}

/**
 * A certificate signed by `ca`: { cert, key } (paths). kind 'server' (SAN localhost, 127.0.0.1) or
 * 'client'; days < 0 makes one that has already expired.
 */
export async function issue(dir, ca, name, { kind = 'server', days = 2 } = {}) {
  const cert = path.join(dir, `${name}.pem`);
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const ext = path.join(dir, `${name}.ext`);
  await openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${name}`);
  await fs.writeFile(
    ext,
    kind === 'server'
      ? 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n'
      : 'extendedKeyUsage=clientAuth\n',
  );
  await openssl('x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', cert, '-days', String(days), '-extfile', ext);
  return { cert, key };
}

/** The SHA-256 fingerprint of a PEM certificate file, as hex without colons (matches Node's fingerprint256 once colons are removed). */
export async function fingerprint(certPath) {
  const { stdout } = await openssl('x509', '-in', certPath, '-noout', '-fingerprint', '-sha256');
  return stdout.trim().split('=')[1].replace(/:/g, '');
}
