/*
 * exporters.h: the running exporters, as main.c sees them: start the ones the configuration turns on
 * (exporters.<name> with an endpoint), each as its own spool consumer and thread, and stop them.
 * Their figures are on /metrics (genai_gateway_exporter_*, see exporters/README.md). Ingestion never waits
 * on an exporter: /readyz does not look at them, and each has a lag cap past which it skips data.
 */
#ifndef GW_EXPORTERS_H
#define GW_EXPORTERS_H

#include "core/conf.h"
#include "exporter.h"
#include "spool/spool.h"

struct gw_exporters;

/*
 * Start one exporter per type in types[0..n) whose section is on (gw_conf_exporter_on). Call after
 * grpc_init and before the first spool append. NULL with err filled (naming the key) when one cannot be
 * set up; nothing is left running then. A configuration with no exporter on gives an empty set.
 * types and conf must outlive the set.
 */
struct gw_exporters *gw_exporters_start(const struct gw_conf *conf, const struct gw_exporter_type *const *types,
                                        size_t n, struct gw_spool *spool, struct gw_err *err);
/* Number of exporters running. */
size_t gw_exporters_count(const struct gw_exporters *x);
/* Begin draining (close the spool first): returns at once; each exporter gets conf->shutdown_grace_ms. */
void gw_exporters_request_stop(struct gw_exporters *x);
/* Stop, join, unregister the metrics and free. NULL is fine. */
void gw_exporters_stop(struct gw_exporters *x);

/* The backends shipped (each declared at the end of its own file). */
extern const struct gw_exporter_type gw_exporter_langfuse;
extern const struct gw_exporter_type gw_exporter_signoz;
extern const struct gw_exporter_type gw_exporter_otlp;

#endif
