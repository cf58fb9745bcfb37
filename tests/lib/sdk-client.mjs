/*
 * sdk-client.mjs: a real OpenTelemetry JS client as an application would set it up: NodeTracerProvider,
 * the official OpenAI instrumentation, and the openai SDK, for one test process.
 *
 * Key decisions:
 * - One provider and one instrumentation per process (registering twice double-patches `openai`). The
 *   provider's processors are an in-memory exporter (every ended span, to learn the ids the SDK made)
 *   and a routing processor whose target a test switches between OTLP exporters (grpc, http/protobuf,
 *   http/json), so the three exporters can be driven from one file.
 * - The instrumentation hooks `openai` through require-in-the-middle (CJS). This module is ESM, so the
 *   SDK is loaded with createRequire *after* registerInstrumentations: a static `import 'openai'` would
 *   be resolved before the hook exists and stay unpatched.
 * - Every exporter is wrapped so each export's result is recorded: a BatchSpanProcessor swallows
 *   failures in forceFlush, and a test must see that the gateway accepted what it was sent.
 */
import { createRequire } from 'node:module';
import { trace, context, SpanStatusCode } from '@opentelemetry/api';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { BatchSpanProcessor, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { logs } from '@opentelemetry/api-logs';
import { LoggerProvider, SimpleLogRecordProcessor, InMemoryLogRecordExporter } from '@opentelemetry/sdk-logs';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { OpenAIInstrumentation } from '@opentelemetry/instrumentation-openai';
import { ExportResultCode } from '@opentelemetry/core';

const require = createRequire(import.meta.url);

/** Wraps a SpanExporter and records the result of every export call. */
export class RecordingExporter {
  constructor(inner) {
    this.inner = inner;
    this.results = [];
  }

  export(spans, done) {
    this.inner.export(spans, (result) => {
      this.results.push({ code: result.code, error: result.error, spans: spans.length });
      done(result);
    });
  }

  /** Export spans once more and resolve with the result (used to re-send the same spans). */
  exportAsync(spans) {
    return new Promise((resolve) => this.export(spans, resolve));
  }

  failures() {
    return this.results.filter((r) => r.code !== ExportResultCode.SUCCESS);
  }

  forceFlush() {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }

  shutdown() {
    return this.inner.shutdown();
  }
}

/** A span processor that forwards to whichever processor is currently set. */
class RoutingProcessor {
  constructor() {
    this.target = null;
  }

  onStart(span, ctx) {
    this.target?.onStart(span, ctx);
  }

  onEnd(span) {
    this.target?.onEnd(span);
  }

  forceFlush() {
    return this.target ? this.target.forceFlush() : Promise.resolve();
  }

  shutdown() {
    return this.target ? this.target.shutdown() : Promise.resolve();
  }
}

/**
 * Build an OTLP exporter of the given protocol pointed at the gateway's receivers. tls: { ca, cert, key }
 * (PEM Buffers; cert and key for mTLS) makes it use https:// and gRPC over TLS.
 */
export function makeExporter(protocol, { httpUrl, grpcAddr, headers = {}, tls = null, compression = undefined }) {
  const base = tls ? httpUrl.replace(/^http:/, 'https:') : httpUrl;
  const agent = { ...(tls ? { httpAgentOptions: { ca: tls.ca, cert: tls.cert, key: tls.key } } : {}), ...(compression ? { compression } : {}) };
  switch (protocol) {
    case 'grpc': {
      const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-grpc');
      const grpc = require('@grpc/grpc-js');
      const metadata = new grpc.Metadata();
      for (const [k, v] of Object.entries(headers)) metadata.set(k, v);
      const credentials = tls ? grpc.credentials.createSsl(tls.ca, tls.key ?? null, tls.cert ?? null) : undefined;
      return new OTLPTraceExporter({ url: `${tls ? 'https' : 'http'}://${grpcAddr}`, metadata, credentials, timeoutMillis: 10000, ...(compression ? { compression } : {}) });
    }
    case 'http/protobuf': {
      const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-proto');
      return new OTLPTraceExporter({ url: `${base}/v1/traces`, headers, timeoutMillis: 10000, ...agent });
    }
    case 'http/json': {
      const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');
      return new OTLPTraceExporter({ url: `${base}/v1/traces`, headers, timeoutMillis: 10000, ...agent });
    }
    default:
      throw new Error(`unknown protocol ${protocol}`);
  }
}

let singleton = null;

/**
 * Set up tracing for this process (once). Returns
 * { provider, tracer, memory, OpenAI, useExporter(exp), flush(), spanById(id), shutdown() }.
 */
export function setupTracing({ serviceName = 'e2e-openai' } = {}) {
  if (singleton) return singleton;
  const memory = new InMemorySpanExporter();
  const routing = new RoutingProcessor();
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': serviceName, 'service.version': '0.0.1' }),
    spanProcessors: [
      // A simple synchronous hand-off into memory, so ids are known as soon as a span ends.
      { onStart() {}, onEnd(span) { memory.export([span], () => {}); }, forceFlush: () => Promise.resolve(), shutdown: () => Promise.resolve() },
      routing,
    ],
  });
  provider.register();
  const instrumentation = new OpenAIInstrumentation();
  registerInstrumentations({ instrumentations: [instrumentation], tracerProvider: provider });
  // Loaded only now, so that the instrumentation's require hook patches it.
  const openaiModule = require('openai');
  const OpenAI = openaiModule.OpenAI ?? openaiModule.default ?? openaiModule;
  const tracer = trace.getTracer('e2e-harness', '0.0.1');

  singleton = {
    provider,
    tracer,
    memory,
    OpenAI,
    instrumentation,
    /** Route ended spans to a new exporter through a BatchSpanProcessor; returns the recording wrapper. */
    useExporter(exporter) {
      const rec = exporter instanceof RecordingExporter ? exporter : new RecordingExporter(exporter);
      routing.target = new BatchSpanProcessor(rec, { scheduledDelayMillis: 60000, maxExportBatchSize: 512, maxQueueSize: 4096 });
      return rec;
    },
    async flush() {
      await routing.forceFlush();
    },
    async detachExporter() {
      const t = routing.target;
      routing.target = null;
      if (t) await t.shutdown();
    },
    finished() {
      return memory.getFinishedSpans();
    },
    async shutdown() {
      await routing.shutdown();
      await provider.shutdown();
      instrumentation.disable();
    },
  };
  return singleton;
}

/** Hex ids of a ReadableSpan. */
export function idsOf(span) {
  const sc = span.spanContext();
  return {
    traceId: sc.traceId,
    spanId: sc.spanId,
    parentSpanId: span.parentSpanContext?.spanId ?? span.parentSpanId ?? null,
  };
}

/**
 * The openai SDK instrumented with content capture on (the messages go to log records), for tests that
 * export a call's telemetry themselves: every ended span and every log record is kept in memory (`spans`,
 * `records`) and also given to the extra processors. Once per process, like setupTracing. Returns
 * { OpenAI, spans, records, shutdown }.
 */
export function captureOpenAI({ serviceName, spanProcessors = [], logProcessors = [] }) {
  const resource = resourceFromAttributes({ 'service.name': serviceName });
  const spans = new InMemorySpanExporter();
  const records = new InMemoryLogRecordExporter();
  const tracerProvider = new NodeTracerProvider({ resource, spanProcessors: [new SimpleSpanProcessor(spans), ...spanProcessors] });
  tracerProvider.register();
  const loggerProvider = new LoggerProvider({
    resource,
    processors: [new SimpleLogRecordProcessor({ exporter: records }), ...logProcessors],
  });
  logs.setGlobalLoggerProvider(loggerProvider);
  const instrumentation = new OpenAIInstrumentation({ captureMessageContent: true });
  registerInstrumentations({ instrumentations: [instrumentation], tracerProvider, loggerProvider });
  const mod = require('openai'); /* after the hook is in place, so it is patched */
  return {
    OpenAI: mod.OpenAI ?? mod.default ?? mod,
    spans,
    records,
    async shutdown() {
      instrumentation.disable();
      await tracerProvider.shutdown();
      await loggerProvider.shutdown();
    },
  };
}

export { trace, context, SpanStatusCode };
