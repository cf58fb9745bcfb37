/*
 * signoz.c: the SigNoz backend (DESIGN §7, SPEC-FACTS §5.2): plain OTLP, gRPC by default (host:port; SigNoz
 * Cloud serves gRPC and HTTP on :443 with TLS) or HTTP (a base URL), traces and logs. SigNoz Cloud
 * authenticates with the signoz-ingestion-key header; self-hosted SigNoz takes none. Everything else is the
 * generic OTLP exporter's.
 */
#include "export_int.h"

static gw_rc headers(const struct gw_conf_exporter *c, struct gw_export_headers *h, struct gw_err *err)
{
  if (!*c->ingestion_key)
    return GW_OK;
  gw_rc rc = gw_export_headers_add(h, "signoz-ingestion-key", c->ingestion_key);
  if (rc)
    gw_err_set(err, rc, "exporters.signoz.headers: too many headers");
  return rc;
}

const struct gw_exporter_type gw_exporter_signoz = {
  .name = "signoz",
  .conf_id = GW_CONF_EXP_SIGNOZ,
  .signals = GW_EXPORT_TRACES | GW_EXPORT_LOGS,
  .traces_path = "/v1/traces",
  .logs_path = "/v1/logs",
  .otlp_http_response = true,
  .headers = headers,
};
