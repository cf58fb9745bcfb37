/*
 * load-client.mjs: a load driver built on the real OpenTelemetry JS SDK, for the durability tests and
 * bench/durability.sh. It makes GenAI spans (gen_ai.* attributes, so each one becomes a row of
 * ai_interaction_traces) at a target rate and keeps a client-side log of the span ids the gateway
 * acknowledged.
 *
 * Key decisions:
 * - It runs in a child process of its own (`startLoad` forks this file; `node load-client.mjs --help` runs
 *   it by hand), so the gateway can be killed and restarted while the application keeps producing spans,
 *   and so its CPU work never stalls the test's own polling.
 * - The SDK as an application sets it up: BasicTracerProvider -> BatchSpanProcessor -> OTLP exporter
 *   (http/protobuf by default, http/json or grpc on request), with the exporter's own retries (the HTTP
 *   exporters retry 429/502/503/504 and ECONNREFUSED/ECONNRESET, honouring Retry-After, within
 *   `timeoutMillis`; the gRPC exporter of this SDK line does not retry). `pipelines` providers run side by
 *   side, as several application instances would, and spans go round-robin to them.
 * - "Acknowledged" means the exporter's result callback said SUCCESS for the export that carried the span
 *   (after the SDK's retries). Only then is the span id written to the ack log, with a synchronous write,
 *   so the log is complete whenever this process exits. A span whose export failed, or that the
 *   BatchSpanProcessor dropped from its queue, is not acknowledged and the tests owe it nothing.
 * - Ack log: one line per span, `<trace_id> <span_id> <ack time, ms since the epoch>`.
 * - HTTP status codes the exporter saw are counted through node's diagnostics_channel
 *   (`http.client.response.finish`), since the retrying transport hides the 429s it retried. A span the
 *   gateway rejected in partial_success (the SDK only logs it) is counted from the SDK's diag log.
 * - Parent <-> child over the IPC channel: the child sends {type:'stats'} every statsEveryMs and
 *   {type:'done'} at the end; the parent sends {cmd:'stop', drainMs}.
 */
import { fork } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import diagnosticsChannel from 'node:diagnostics_channel';

const thisFile = fileURLToPath(import.meta.url);
const require = createRequire(import.meta.url);

/* ------------------------------------------------------------------ parent side */

/**
 * Start a load client in a child process. Options:
 *   httpUrl, grpcAddr      the gateway's receivers (the one the protocol needs)
 *   protocol               'http/protobuf' (default) | 'http/json' | 'grpc'
 *   rate                   spans per second (default 400)
 *   durationMs             stop producing after this long (default 0: until stop())
 *   ackLog                 path of the ack log (required)
 *   pipelines              providers side by side (default 2)
 *   padBytes               size of an extra `app.pad` attribute per span (default 0)
 *   batchSize              BatchSpanProcessor maxExportBatchSize (default 512)
 *   scheduledDelayMs       BatchSpanProcessor scheduledDelayMillis (default 200)
 *   maxQueueSize           BatchSpanProcessor maxQueueSize per pipeline (default 100000: an outage
 *                          queues spans rather than dropping them)
 *   exportTimeoutMs        exporter timeoutMillis, the budget of one export with its retries (default 30000)
 *   service                service.name (default 'durability-load')
 * Returns { pid, stats(), waitFor(pred, opts), waitAcked(n, opts), stop({ drainMs }), kill(), acked() }.
 */
export function startLoad(opts) {
  if (!opts?.ackLog) throw new Error('startLoad: ackLog is required');
  const child = fork(thisFile, ['--json', JSON.stringify(opts)], { stdio: ['ignore', 'inherit', 'pipe', 'ipc'] });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d.toString();
    if (stderr.length > 64 * 1024) stderr = stderr.slice(-64 * 1024);
  });
  let last = { created: 0, acked: 0, failed: 0, inflight: 0, queued: 0, statuses: {}, netErrors: {}, rejected: 0 };
  let done = null;
  const listeners = new Set();
  child.on('message', (m) => {
    if (m?.type === 'stats' || m?.type === 'done') last = m.stats;
    if (m?.type === 'done') done = m.stats;
    for (const l of listeners) l();
  });
  let exited = null;
  const exitP = new Promise((resolve) => child.on('exit', (code, signal) => {
    exited = { code, signal };
    for (const l of listeners) l();
    resolve(exited);
  }));

  const waitFor = (pred, { timeoutMs = 30000, what = 'load client condition' } = {}) => new Promise((resolve, reject) => {
    const check = () => {
      if (pred(last)) {
        cleanup();
        resolve(last);
      } else if (exited) {
        cleanup();
        reject(new Error(`load client exited (${JSON.stringify(exited)}) before ${what}; stats ${JSON.stringify(last)}; stderr:\n${stderr.slice(-2000)}`));
      }
    };
    const t = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; stats ${JSON.stringify(last)}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(t);
      listeners.delete(check);
    };
    listeners.add(check);
    check();
  });

  return {
    pid: child.pid,
    stats: () => last,
    stderr: () => stderr,
    waitFor,
    waitAcked: (n, o = {}) => waitFor((s) => s.acked >= n, { what: `${n} acknowledged spans`, ...o }),
    /** Stop producing, let queued spans be exported for up to drainMs, and resolve the final stats. */
    async stop({ drainMs = 30000 } = {}) {
      if (!exited) {
        child.send({ cmd: 'stop', drainMs });
        const t = setTimeout(() => child.kill('SIGKILL'), drainMs + 15000);
        await exitP;
        clearTimeout(t);
      }
      if (!done) throw new Error(`load client ended without final stats (${JSON.stringify(exited)}); stderr:\n${stderr.slice(-2000)}`);
      return done;
    },
    async kill() {
      if (!exited) child.kill('SIGKILL');
      await exitP;
    },
    acked: () => readAckLog(opts.ackLog),
  };
}

/** The ack log as Map<"trace_id span_id", ack time ms>. */
export function readAckLog(file) {
  const m = new Map();
  if (!fs.existsSync(file)) return m;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const [t, s, ms] = line.split(' ');
    m.set(`${t} ${s}`, Number(ms));
  }
  return m;
}

/* ------------------------------------------------------------------ child side */

const HELP = `usage: node tests/lib/load-client.mjs --ack-log FILE (--http URL | --grpc HOST:PORT) [options]
  --protocol P        http/protobuf (default), http/json or grpc
  --rate N            spans per second (default 400)
  --duration-ms N     produce for N ms, then drain and exit (default 10000)
  --drain-ms N        longest wait for queued spans at the end (default 30000)
  --pipelines N       providers side by side (default 2)
  --pad-bytes N       extra attribute bytes per span (default 0)
  --service NAME      service.name (default durability-load)
Prints one JSON line of final stats on stdout. SIGTERM/SIGINT stop producing and drain.`;

function parseArgs(argv) {
  const o = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => argv[++i];
    switch (a) {
      case '--json': Object.assign(o, JSON.parse(v())); break;
      case '--http': o.httpUrl = v(); break;
      case '--grpc': o.grpcAddr = v(); break;
      case '--protocol': o.protocol = v(); break;
      case '--rate': o.rate = Number(v()); break;
      case '--duration-ms': o.durationMs = Number(v()); break;
      case '--drain-ms': o.drainMs = Number(v()); break;
      case '--ack-log': o.ackLog = v(); break;
      case '--pipelines': o.pipelines = Number(v()); break;
      case '--pad-bytes': o.padBytes = Number(v()); break;
      case '--service': o.service = v(); break;
      case '--help': case '-h': console.log(HELP); process.exit(0); break;
      default: console.error(`load-client: unknown argument ${a}\n${HELP}`); process.exit(2);
    }
  }
  return o;
}

function makeExporter(o) {
  const timeoutMillis = o.exportTimeoutMs ?? 30000;
  switch (o.protocol ?? 'http/protobuf') {
    case 'http/protobuf': {
      const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-proto');
      return new OTLPTraceExporter({ url: `${o.httpUrl}/v1/traces`, timeoutMillis });
    }
    case 'http/json': {
      const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');
      return new OTLPTraceExporter({ url: `${o.httpUrl}/v1/traces`, timeoutMillis });
    }
    case 'grpc': {
      const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-grpc');
      return new OTLPTraceExporter({ url: `http://${o.grpcAddr}`, timeoutMillis });
    }
    default:
      throw new Error(`unknown protocol ${o.protocol}`);
  }
}

async function childMain(o) {
  const api = require('@opentelemetry/api');
  const { BasicTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
  const { resourceFromAttributes } = require('@opentelemetry/resources');
  const { ExportResultCode } = require('@opentelemetry/core');

  const rate = o.rate ?? 400;
  const npipes = Math.max(1, o.pipelines ?? 2);
  const pad = o.padBytes ? 'p'.repeat(o.padBytes) : null;
  const ackFd = fs.openSync(o.ackLog, 'a');
  const stats = { producing: true, created: 0, skipped: 0, acked: 0, failed: 0, inflight: 0, queued: 0, exports: 0, statuses: {}, netErrors: {}, rejected: 0, grpcErrors: {} };

  diagnosticsChannel.subscribe('http.client.response.finish', ({ response }) => {
    const k = String(response?.statusCode);
    stats.statuses[k] = (stats.statuses[k] ?? 0) + 1;
  });
  diagnosticsChannel.subscribe('http.client.request.error', ({ error }) => {
    const k = error?.code ?? 'other';
    stats.netErrors[k] = (stats.netErrors[k] ?? 0) + 1;
  });
  /* partial_success: the SDK logs "Received Partial Success response: ..." with the rejected count */
  api.diag.setLogger({
    error() {}, verbose() {}, debug() {}, info() {},
    warn(msg, ...rest) {
      if (/partial success/i.test(String(msg))) {
        const text = [msg, ...rest.map((r) => (typeof r === 'string' ? r : JSON.stringify(r)))].join(' ');
        const m = /rejected_?spans"?\s*[:=]\s*"?(\d+)/i.exec(text);
        stats.rejected += m ? Number(m[1]) : 1;
      }
    },
  }, api.DiagLogLevel.WARN);

  class AckingExporter {
    constructor(inner) {
      this.inner = inner;
    }

    export(spans, done) {
      stats.inflight += spans.length;
      stats.exports++;
      this.inner.export(spans, (res) => {
        stats.inflight -= spans.length;
        if (res.code === ExportResultCode.SUCCESS) {
          const now = Date.now();
          let out = '';
          for (const s of spans) {
            const sc = s.spanContext();
            out += `${sc.traceId} ${sc.spanId} ${now}\n`;
          }
          fs.writeSync(ackFd, out);
          stats.acked += spans.length;
        } else {
          stats.failed += spans.length;
          if (o.protocol === 'grpc') {
            const k = String(res.error?.code ?? 'other');
            stats.grpcErrors[k] = (stats.grpcErrors[k] ?? 0) + 1;
          }
        }
        done(res);
      });
    }

    forceFlush() {
      return this.inner.forceFlush?.() ?? Promise.resolve();
    }

    shutdown() {
      return this.inner.shutdown();
    }
  }

  const pipes = [];
  for (let i = 0; i < npipes; i++) {
    const bsp = new BatchSpanProcessor(new AckingExporter(makeExporter(o)), {
      maxExportBatchSize: o.batchSize ?? 512,
      scheduledDelayMillis: o.scheduledDelayMs ?? 200,
      maxQueueSize: o.maxQueueSize ?? 100000,
      exportTimeoutMillis: (o.exportTimeoutMs ?? 30000) + 30000,
    });
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': o.service ?? 'durability-load', 'service.instance.id': `load-${process.pid}-${i}` }),
      spanProcessors: [bsp],
    });
    pipes.push({ bsp, provider, tracer: provider.getTracer('durability-load', '0.0.1') });
  }
  /* BatchSpanProcessor keeps its queue in _finishedSpans; read it only to know when draining is over */
  const queued = () => pipes.reduce((n, p) => n + (p.bsp._finishedSpans?.length ?? 0), 0);

  const report = (type) => {
    stats.queued = queued();
    const msg = { type, stats: JSON.parse(JSON.stringify(stats)) };
    if (process.send) process.send(msg);
    return msg;
  };

  const models = ['gpt-4o-mini', 'gpt-4o', 'claude-3-5-sonnet-20241022', 'gemini-1.5-flash'];
  const makeSpan = () => {
    const seq = stats.created++;
    const p = pipes[seq % npipes];
    const model = models[seq % models.length];
    const now = Date.now();
    const attributes = {
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': model,
      'gen_ai.response.model': model,
      'gen_ai.usage.input_tokens': 10 + (seq % 90),
      'gen_ai.usage.output_tokens': 1 + (seq % 40),
      'load.seq': seq,
    };
    if (pad) attributes['app.pad'] = pad;
    const span = p.tracer.startSpan(`chat ${model}`, { kind: api.SpanKind.CLIENT, attributes, startTime: now - 40 }, api.ROOT_CONTEXT);
    span.end(now);
  };

  let producing = true;
  let slots = 0;
  const t0 = Date.now();
  const statsTimer = setInterval(() => report('stats'), o.statsEveryMs ?? 250);
  const durationMs = o.durationMs ?? 0;
  await new Promise((resolve) => {
    /* Produce what the target rate owes since t0, in ticks of ~5 ms. After a stall the backlog of one
     * second at most is made up, so a frozen event loop does not turn into one huge burst. */
    const tick = () => {
      if (!producing) return resolve();
      const now = Date.now();
      const due = Math.floor((rate * (now - t0)) / 1000);
      if (due - slots > rate) {
        stats.skipped += due - slots - rate; /* forget what could not be made up */
        slots = due - rate;
      }
      for (; slots < due; slots++) makeSpan();
      if (durationMs && now - t0 >= durationMs) return resolve();
      setTimeout(tick, 5);
    };
    process.on('message', (m) => {
      if (m?.cmd === 'stop') {
        o.drainMs = m.drainMs ?? o.drainMs;
        producing = false;
      }
    });
    for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => { producing = false; });
    tick();
  });
  producing = false;
  stats.producing = false;
  report('stats');

  /* Drain: the BatchSpanProcessors export what they hold on their own timer; wait for the queues and the
   * exports in flight to empty, within drainMs. What is left then was never acknowledged. */
  const drainDeadline = Date.now() + (o.drainMs ?? 30000);
  while ((queued() > 0 || stats.inflight > 0) && Date.now() < drainDeadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  clearInterval(statsTimer);
  stats.unsent = queued() + stats.inflight;
  stats.elapsedMs = Date.now() - t0;
  fs.closeSync(ackFd);
  const msg = report('done');
  if (!process.send) console.log(JSON.stringify(msg.stats));
  /* Shutting the providers down would try to flush what is still queued; when draining timed out that is
   * exactly what the caller decided not to wait for. */
  setImmediate(() => process.exit(0));
}

if (process.argv[1] && path.resolve(process.argv[1]) === thisFile) {
  const o = parseArgs(process.argv.slice(2));
  if (!o.ackLog || (!o.httpUrl && !o.grpcAddr)) {
    console.error(HELP);
    process.exit(2);
  }
  if (!process.send && o.durationMs === undefined) o.durationMs = 10000;
  childMain(o).catch((e) => {
    console.error(`load-client: ${e.stack ?? e}`);
    process.exit(1);
  });
}
