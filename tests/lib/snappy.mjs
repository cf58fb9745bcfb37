/*
 * snappy.mjs: snappy bodies for tests (Node 20 has no snappy), written from google/snappy's
 * format_description.txt and framing_format.txt.
 *   snappyBlock(buf)     the block format: the length as a varint, then literals and copies (a greedy
 *                        match finder over 4-byte hashes, copies with 2-byte offsets), as snappy's own
 *                        compressor writes them (not byte for byte: any valid element sequence decodes)
 *   snappyFramed(buf)    the framing format: the stream identifier, then chunks of at most 64 KiB, each
 *                        compressed (type 0x00) or stored (0x01) when that is smaller, with the masked
 *                        CRC-32C of its data
 *   crc32c(buf)          CRC-32C (Castagnoli)
 */

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32c(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const maskedCrc = (buf) => {
  const c = crc32c(buf);
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
};

function varint(n) {
  const out = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

function literal(out, src, from, to) {
  let n = to - from;
  if (n <= 0) return;
  const m = n - 1;
  if (m < 60) out.push(m << 2);
  else if (m < 0x100) out.push(60 << 2, m);
  else if (m < 0x10000) out.push(61 << 2, m & 0xff, m >> 8);
  else if (m < 0x1000000) out.push(62 << 2, m & 0xff, (m >> 8) & 0xff, m >> 16);
  else out.push(63 << 2, m & 0xff, (m >> 8) & 0xff, (m >> 16) & 0xff, m >>> 24);
  for (let i = from; i < to; i++) out.push(src[i]);
}

/* copies of 4 to 64 bytes with an offset below 65536 */
function copy(out, offset, len) {
  while (len > 0) {
    let k = len > 64 ? 64 : len;
    if (len - k > 0 && len - k < 4) k = len - 4; /* leave at least 4 for the last one */
    out.push(((k - 1) << 2) | 2, offset & 0xff, offset >> 8);
    len -= k;
  }
}

export function snappyBlock(buf) {
  const src = Buffer.from(buf);
  const out = varint(src.length);
  const table = new Map();
  let lit = 0;
  let i = 0;
  while (i + 4 <= src.length) {
    const key = src.readUInt32LE(i);
    const cand = table.get(key);
    table.set(key, i);
    if (cand !== undefined && i - cand < 65536) {
      let len = 4;
      while (i + len < src.length && src[cand + len] === src[i + len]) len++;
      literal(out, src, lit, i);
      copy(out, i - cand, len);
      i += len;
      lit = i;
    } else {
      i++;
    }
  }
  literal(out, src, lit, src.length);
  return Buffer.from(out);
}

function chunk(type, data) {
  const h = Buffer.alloc(4);
  h[0] = type;
  h.writeUIntLE(data.length, 1, 3);
  return Buffer.concat([h, data]);
}

export function snappyFramed(buf, { chunkSize = 65536 } = {}) {
  const src = Buffer.from(buf);
  const parts = [chunk(0xff, Buffer.from('sNaPpY'))];
  for (let at = 0; at < src.length; at += chunkSize) {
    const data = src.subarray(at, at + chunkSize);
    const crc = Buffer.alloc(4);
    crc.writeUInt32LE(maskedCrc(data));
    const z = snappyBlock(data);
    parts.push(z.length < data.length ? chunk(0x00, Buffer.concat([crc, z])) : chunk(0x01, Buffer.concat([crc, data])));
  }
  return Buffer.concat(parts);
}
