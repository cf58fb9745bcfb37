/*
 * admin.h: the admin HTTP port (DESIGN §8): /healthz (alive, with Postgres state as detail),
 * /readyz (receivers listening and spool below its high-water mark; not Postgres: the spool rides out a
 * Postgres outage, and a sidecar's readiness gates its whole pod), /metrics (Prometheus text).
 */
#ifndef GW_ADMIN_H
#define GW_ADMIN_H

#include <stdatomic.h>

#include "core/gw.h"
#include "spool/spool.h"

struct gw_admin;

/* Listen on addr. *ready is read on every /readyz; the spool's fill level is checked too. */
struct gw_admin *gw_admin_start(const char *addr, struct gw_spool *spool, atomic_bool *ready, struct gw_err *err);
void gw_admin_stop(struct gw_admin *a);

#endif
