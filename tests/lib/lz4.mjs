/*
 * lz4.mjs: LZ4 frames for tests, made by the lz4 command-line tool (Node 20's zlib has no lz4).
 *   lz4Compress(buf)                       a frame as a streaming compressor makes it: no content size,
 *                                          independent 4 MiB blocks, the content checksum
 *   lz4Compress(buf, { sized: true })      the content size in the frame header (--content-size)
 *   lz4Compress(buf, { linked: true, blockChecksums: true, blockSize: 4 })   -BD, -BX, -B4 (64 KiB)
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function lz4Available() {
  try {
    execFileSync('lz4', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function lz4Compress(buf, { sized = false, linked = false, blockChecksums = false, blockSize = 7 } = {}) {
  const args = ['-q', '-c', `-B${blockSize}`];
  if (linked) args.push('-BD');
  if (blockChecksums) args.push('-BX');
  if (!sized) return execFileSync('lz4', args, { input: buf, maxBuffer: 256 * 1024 * 1024 });
  /* the size is only written when the tool reads a file */
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-lz4-'));
  try {
    fs.writeFileSync(path.join(dir, 'in'), buf);
    return execFileSync('lz4', [...args, '--content-size', path.join(dir, 'in')], { maxBuffer: 256 * 1024 * 1024 });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
