/*
 * log.h: structured one-line logs (logfmt) to stderr, each carrying its module.
 * Never pass secrets or prompt content: callers log positions, sizes, names and counts.
 * Thread-safe: one write(2) per line.
 */
#ifndef GW_LOG_H
#define GW_LOG_H

enum gw_log_level { GW_LOG_DEBUG, GW_LOG_INFO, GW_LOG_WARN, GW_LOG_ERROR };

void gw_log_set_level(enum gw_log_level lvl);
/* Parse "debug|info|warn|error"; returns -1 for anything else. */
int gw_log_parse_level(const char *s);
void gw_log(enum gw_log_level lvl, const char *module, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define gw_debug(mod, ...) gw_log(GW_LOG_DEBUG, mod, __VA_ARGS__)
#define gw_info(mod, ...) gw_log(GW_LOG_INFO, mod, __VA_ARGS__)
#define gw_warn(mod, ...) gw_log(GW_LOG_WARN, mod, __VA_ARGS__)
#define gw_error(mod, ...) gw_log(GW_LOG_ERROR, mod, __VA_ARGS__)

#endif
