/*
 * otel-app.mjs: the application container of the pod tests. A real OpenTelemetry JS SDK set up the way an
 * app is: NodeTracerProvider, BatchSpanProcessor, the OTLP/HTTP protobuf exporter configured only by
 * OTEL_EXPORTER_OTLP_ENDPOINT from the manifest (127.0.0.1, the sidecar in the same pod). It makes chat
 * spans with GenAI attributes at a steady rate and prints, for every export the gateway acknowledged,
 * one line "ACK <trace_id>:<span_id> ..." (what the test then looks for in Postgres). On SIGTERM it stops
 * making spans, flushes what it has (acknowledged or not) and exits 0.
 *   APP_RATE   spans per second (default 200)   APP_MAX   stop after this many spans (default: never)
 *   APP_ACK_FILE   also append the ACK lines there (a host directory: they outlive the container)
 */
import fs from 'node:fs';
import { trace } from '@opentelemetry/api';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { ExportResultCode } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';

const rate = Number(process.env.APP_RATE ?? 200);
const max = Number(process.env.APP_MAX ?? Infinity);
const inner = new OTLPTraceExporter({ timeoutMillis: 5000 });
const exporter = {
  export(spans, done) {
    inner.export(spans, (result) => {
      if (result.code === ExportResultCode.SUCCESS) {
        const line = `ACK ${spans.map((s) => `${s.spanContext().traceId}:${s.spanContext().spanId}`).join(' ')}\n`;
        process.stdout.write(line);
        if (process.env.APP_ACK_FILE) fs.appendFileSync(process.env.APP_ACK_FILE, line);
      } else {
        process.stdout.write(`NACK ${spans.length} ${result.error?.message ?? ''}\n`);
      }
      done(result);
    });
  },
  shutdown: () => inner.shutdown(),
  forceFlush: () => inner.forceFlush(),
};
const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ 'service.name': process.env.APP_SERVICE ?? 'pod-app' }),
  spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 100, maxExportBatchSize: 50, maxQueueSize: 100000 })],
});
const tracer = provider.getTracer('pod-app');

let made = 0;
let stopping = false;
const timer = setInterval(() => {
  for (let i = 0; i < rate / 20 && made < max; i++, made++) {
    const s = tracer.startSpan('chat gpt-4o-mini', {
      kind: 2,
      attributes: {
        'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': 'openai', 'gen_ai.request.model': 'gpt-4o-mini',
        'gen_ai.response.model': 'gpt-4o-mini', 'gen_ai.usage.input_tokens': 100, 'gen_ai.usage.output_tokens': 20,
        'gen_ai.input.messages': JSON.stringify([{ role: 'user', parts: [{ type: 'text', content: `question ${made} from carol@example.com` }] }]),
      },
    });
    s.end();
  }
}, 50);
process.stdout.write(`START ${process.env.OTEL_EXPORTER_OTLP_ENDPOINT}\n`);

async function stop() {
  if (stopping) return;
  stopping = true;
  clearInterval(timer);
  await provider.shutdown().catch(() => {});
  process.stdout.write(`DONE ${made}\n`);
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
void trace;
