/*
 * otlp.c: the generic OTLP backend: any OTLP receiver (an OpenTelemetry Collector, another genai-gateway,
 * a vendor's OTLP endpoint) over gRPC (host:port) or HTTP protobuf (a base URL: /v1/traces and /v1/logs
 * are appended, as OTEL_EXPORTER_OTLP_ENDPOINT does), traces and logs, authenticated by whatever the
 * configured headers carry.
 */
#include "export_int.h"

const struct gw_exporter_type gw_exporter_otlp = {
  .name = "otlp",
  .conf_id = GW_CONF_EXP_OTLP,
  .signals = GW_EXPORT_TRACES | GW_EXPORT_LOGS,
  .traces_path = "/v1/traces",
  .logs_path = "/v1/logs",
  .otlp_http_response = true,
};
