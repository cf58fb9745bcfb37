/*
 * file.h: a small file read whole (the configuration, the bearer tokens, the TLS certificate and key),
 * with a size cap so a wrong path (a device, a log) cannot take the memory. Blocking; thread-safe.
 */
#ifndef GW_FILE_H
#define GW_FILE_H

#include <stdbool.h>
#include <stddef.h>

/*
 * The file at path, NUL-terminated, in a heap buffer the caller frees (*len: its length, without the NUL).
 * NULL on failure: *too_large when the file holds more than max bytes (the caller says what such a file
 * means), else why says "cannot read: <reason>". What was read before a failure is wiped before it is
 * freed (the file may hold secrets); wiping a returned buffer is the caller's.
 */
char *gw_file_read(const char *path, size_t max, size_t *len, bool *too_large, char *why, size_t whylen);

#endif
