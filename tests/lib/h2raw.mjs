/*
 * h2raw.mjs: what the HTTP/2 tests share. Raw HTTP/2 for the cases node:http2 will not send (a DATA frame
 * on stream 0, junk after the preface) and for reading the frames exactly as the gateway sent them: the
 * connection preface, frame types and error codes (RFC 9113 §6, §7), a frame builder and parser, and a raw
 * connection over TCP or TLS (ALPN h2). Then the node:http2 helpers several tests need (a session's
 * GOAWAY, when a stream closed), and the gateway fixture of the h2-*.test.mjs files.
 */
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { startGateway, sleep } from './harness.mjs';

/** RFC 9113 §3.4: the bytes a client opens an HTTP/2 connection with (before its SETTINGS). */
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** Frame types (RFC 9113 §6). */
export const FRAME = Object.freeze({
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
});

/** Error codes of RST_STREAM and GOAWAY (RFC 9113 §7). */
export const ERROR = Object.freeze({
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
});

/** One frame: the 9-byte header (length, type, flags, stream) and the payload. */
export function frame(type, flags, stream, payload = Buffer.alloc(0)) {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

/** A SETTINGS frame (not an ACK) with these [identifier, value] pairs; none by default. */
export function settings(pairs = []) {
  const p = Buffer.alloc(6 * pairs.length);
  pairs.forEach(([id, value], i) => {
    p.writeUInt16BE(id, 6 * i);
    p.writeUInt32BE(value, 6 * i + 2);
  });
  return frame(FRAME.SETTINGS, 0, 0, p);
}

/** The frames in buf as { type, flags, stream, payload } (a trailing partial one left out). */
export function frames(buf) {
  const out = [];
  for (let off = 0; off + 9 <= buf.length;) {
    const len = buf.readUIntBE(off, 3);
    if (off + 9 + len > buf.length) break;
    out.push({ type: buf[off + 3], flags: buf[off + 4], stream: buf.readUInt32BE(off + 5) & 0x7fffffff, payload: buf.subarray(off + 9, off + 9 + len) });
    off += 9 + len;
  }
  return out;
}

/** A GOAWAY frame's payload read: { lastStream, code, debug (the debug data as text) }. */
export function goawayOf(f) {
  return { lastStream: f.payload.readUInt32BE(0) & 0x7fffffff, code: f.payload.readUInt32BE(4), debug: f.payload.subarray(8).toString() };
}

/**
 * A raw connection to 127.0.0.1:port, resolved once it is up: TCP, or with `tls` (tls.connect options,
 * e.g. { ca }: the CA to trust) TLS offering ALPN h2 only and checking the certificate for localhost,
 * resolved after the handshake. The socket is node's own: write frames to it, read the bytes from its
 * 'data' events.
 */
export async function connectRaw(port, { tls: tlsOpts } = {}) {
  const sock = tlsOpts
    ? tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ALPNProtocols: ['h2'], ...tlsOpts })
    : net.connect(port, '127.0.0.1');
  const ready = tlsOpts ? 'secureConnect' : 'connect';
  await new Promise((resolve, reject) => {
    const up = () => { sock.off('error', down); resolve(); };
    const down = (e) => { sock.off(ready, up); reject(e); };
    sock.once(ready, up);
    sock.once('error', down);
  });
  return sock;
}

/** The GOAWAY a node:http2 session receives: { code, data (as text), ms (from now) }, or null if none came
 * within waitMs. */
export async function goaway(session, waitMs) {
  const t0 = Date.now();
  const [g] = await Promise.race([once(session, 'goaway').then(([code, , data]) => [{ code, data: String(data ?? ''), ms: Date.now() - t0 }]),
    sleep(waitMs).then(() => [null])]);
  return g;
}

/** The GOAWAY that ends a connection gone idle (see goaway()); the test fails if none came within waitMs. */
export async function idleGoaway(session, waitMs) {
  const g = await goaway(session, waitMs);
  assert.ok(g, 'no GOAWAY: the connection is not idle');
  return g;
}

/** When the node:http2 stream req closed, timed from when `head` (a promise: its response) resolved:
 * { ms, rstCode }, or null if it was still open waitMs after. Call it before ending the request, so that
 * a close coming early is not missed. */
export function closedAfter(req, head, waitMs) {
  const closedAt = once(req, 'close').then(() => Date.now());
  return head.then(() => {
    const t0 = Date.now();
    return Promise.race([closedAt.then((t) => ({ ms: t - t0, rstCode: req.rstCode })), sleep(waitMs).then(() => null)]);
  });
}

/**
 * In a describe block: before its tests, a gateway started with `config` (a function is called then, for
 * a config that names files made by an earlier before hook); after them, the gateway stopped with SIGTERM,
 * which must exit 0 (checkExit false: only cleaned up, no stop), and its files removed. Returns { gw },
 * set by the before hook.
 */
export function gatewayFixture(config, { checkExit = true } = {}) {
  const ctx = { gw: null };
  before(async () => {
    ctx.gw = await startGateway({ config: typeof config === 'function' ? await config() : config });
  });
  after(async () => {
    if (!ctx.gw) return;
    if (!checkExit) {
      await ctx.gw.cleanup();
      return;
    }
    const r = await ctx.gw.stop();
    await ctx.gw.cleanup();
    assert.deepEqual(r, { code: 0, signal: null });
  });
  return ctx;
}
