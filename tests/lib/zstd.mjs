/*
 * zstd.mjs: zstd frames for tests, made by the zstd command-line tool (Node 20's zlib has no zstd).
 *   zstdCompress(buf)                         a frame as a streaming compressor makes it: its content size
 *                                             not stated, a window of the level's size
 *   zstdCompress(buf, { sized: true })        the size stated in the frame header (a one-shot compressor)
 *   zstdCompress(buf, { windowLog: 24 })      a window of 2^24 bytes declared
 */
import { execFileSync } from 'node:child_process';

export function zstdAvailable() {
  try {
    execFileSync('zstd', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function zstdCompress(buf, { sized = false, windowLog = 0, level = 3 } = {}) {
  const args = ['-q', '-c', `-${level}`];
  if (sized) args.push(`--stream-size=${buf.length}`);
  if (windowLog) args.push(`--zstd=wlog=${windowLog}`);
  return execFileSync('zstd', args, { input: buf, maxBuffer: 256 * 1024 * 1024 });
}
