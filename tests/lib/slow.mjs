/*
 * slow.mjs: hostile TCP clients for the connection tests, all on loopback: slowloris (a request line and
 * headers trickled a byte at a time), slow bodies, and idle connections that never send a byte. Each
 * connection can come from its own 127.0.0.x address (Linux routes all of 127/8 to lo), so per-address
 * limits can be exercised without hitting the one the well-behaved test client uses (127.0.0.1).
 */
import net from 'node:net';

/**
 * Open a connection from `localAddress` to 127.0.0.1:port. Resolves once connected with
 * { sock, openedAt, closed: Promise<ms from open to close>, isClosed() }. A connection refused or reset
 * at once also resolves (closed settles right away).
 */
export function openConn(port, { localAddress = '127.0.0.1', timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port, localAddress });
    const openedAt = Date.now();
    let closedAt = null;
    let markClosed;
    const closed = new Promise((r) => {
      markClosed = r;
    });
    const onClose = () => {
      if (closedAt === null) {
        closedAt = Date.now();
        markClosed(closedAt - openedAt);
      }
    };
    sock.on('error', onClose);
    sock.on('close', onClose);
    sock.on('end', () => {
      onClose();
      sock.destroy();
    });
    sock.on('data', () => {});
    const t = setTimeout(() => reject(new Error(`connect to ${port} from ${localAddress} timed out`)), timeoutMs);
    const done = () => {
      clearTimeout(t);
      resolve({ sock, openedAt, closed, isClosed: () => closedAt !== null });
    };
    sock.once('connect', done);
    sock.once('close', done);
  });
}

/**
 * Slowloris: send `head` (a request line, by default), then one more byte of a never-ending header every
 * `dripMs` until the server closes the connection or stop() is called.
 */
export async function slowloris(port, { localAddress, head = 'POST /v1/traces HTTP/1.1\r\nHost: x\r\n', dripMs = 200 } = {}) {
  const c = await openConn(port, { localAddress });
  if (!c.isClosed()) c.sock.write(head);
  const drip = 'X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
  let i = 0;
  const timer = setInterval(() => {
    if (c.isClosed()) return clearInterval(timer);
    c.sock.write(drip[i++ % drip.length]);
  }, dripMs);
  c.closed.then(() => clearInterval(timer));
  c.stop = () => {
    clearInterval(timer);
    c.sock.destroy();
  };
  return c;
}

/** The i-th attacker address: 127.0.0.2, 127.0.0.3, ... (never 127.0.0.1, the good client's). */
export const attacker = (i) => `127.0.${Math.floor(i / 250)}.${(i % 250) + 2}`;

/** Open n connections with make(i), a few at a time so the listen backlog never overflows. */
export async function openMany(n, make, { batch = 50 } = {}) {
  const out = [];
  for (let i = 0; i < n; i += batch) {
    const part = await Promise.all(Array.from({ length: Math.min(batch, n - i) }, (_, j) => make(i + j)));
    out.push(...part);
  }
  return out;
}

/** Time an async call: resolves { ms, value }. */
export async function timed(fn) {
  const t = Date.now();
  const value = await fn();
  return { ms: Date.now() - t, value };
}
