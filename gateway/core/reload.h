/*
 * reload.h: files the gateway re-reads while it runs (the receivers' TLS certificate and key, the bearer
 * tokens file), on SIGHUP or when they change.
 *
 * Kubernetes updates a mounted Secret by swapping a symlink, so a watch is a poll: every interval each
 * registered file is stat(2)ed (through symlinks) and its device, inode, size and mtime compared with the
 * last look; a change (or a file appearing or vanishing) calls the owner's reload function once, from the
 * watcher thread. gw_reload_now() (SIGHUP) calls every reload function at once, changed or not.
 * The owner does the reading and swaps what it serves (immutable snapshots, refcounted); a reload that
 * fails keeps the old snapshot and says why.
 * Thread-safe. At most 8 watches.
 */
#ifndef GW_RELOAD_H
#define GW_RELOAD_H

#include <stddef.h>
#include <stdint.h>

/* Called from the watcher thread (or from gw_reload_now's caller). forced: SIGHUP, not a file change. */
typedef void (*gw_reload_fn)(void *arg, int forced);

/* Watch up to 4 paths (empty strings are skipped); fn(arg) when any changes. Returns a handle > 0. */
int gw_reload_add(const char *const *paths, size_t n, gw_reload_fn fn, void *arg);
/* Forget a watch; returns once its function is not running. */
void gw_reload_remove(int handle);

/* Start the watcher thread polling every interval_ms; stop it (joins). Both idempotent. */
void gw_reload_start(uint32_t interval_ms);
void gw_reload_stop(void);

/* Re-read everything now (SIGHUP): every watch's function, on the caller's thread. */
void gw_reload_now(void);

#endif
