/* testutil.h: helpers shared by the unit tests (reading fixture files). */
#ifndef GW_TESTUTIL_H
#define GW_TESTUTIL_H
#include <stddef.h>

/* Read a whole file (path relative to tests/fixtures unless absolute) into a malloc'd buffer, NUL-terminated.
 * Fails the test when the file cannot be read. */
char *tu_read_file(const char *path, size_t *len);

#endif
