/*
 * simhash.mjs: the 64-bit SimHash of prompt text, computed independently of the gateway as
 * gateway/normalize/simhash.h documents it (lowercased ASCII words and their bigrams, FNV-1a then fmix64),
 * as the 64 '0'/'1' digits of a prompt_simhash bit(64) column read as text.
 */
const M64 = (1n << 64n) - 1n;
function fnv1a(h, bytes) {
  for (const b of bytes) h = ((h ^ BigInt(b)) * 0x100000001b3n) & M64;
  return h;
}
function fmix64(k) {
  k ^= k >> 33n;
  k = (k * 0xff51afd7ed558ccdn) & M64;
  k ^= k >> 33n;
  k = (k * 0xc4ceb9fe1a85ec53n) & M64;
  return k ^ (k >> 33n);
}
export function simhash(text) {
  const bytes = Buffer.from(text, 'utf8');
  const tokens = [];
  let cur = [];
  for (const raw of [...bytes, 0x20]) {
    const c = raw >= 0x41 && raw <= 0x5a ? raw + 32 : raw;
    if ((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c >= 0x80) cur.push(c);
    else if (cur.length) {
      tokens.push(cur.slice(0, 64));
      cur = [];
    }
  }
  const acc = new Array(64).fill(0);
  const add = (h) => { for (let b = 0; b < 64; b++) acc[b] += (h >> BigInt(b)) & 1n ? 1 : -1; };
  tokens.forEach((t, i) => {
    add(fmix64(fnv1a(0xcbf29ce484222325n, t)));
    if (i) add(fmix64(fnv1a(fnv1a(fnv1a(0xcbf29ce484222325n, tokens[i - 1]), [0x20]), t)));
  });
  let h = 0n;
  for (let b = 0; b < 64; b++) if (acc[b] > 0) h |= 1n << BigInt(b);
  return h.toString(2).padStart(64, '0');
}
