/* datadir.c: the shipped files' place, from the build or relative to the executable (datadir.h). */
#include "core/datadir.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/gw.h"

char *gw_datadir_find(const char *built, const char *name)
{
  if (access(built, R_OK) == 0)
    return gw_strdup(built);
  char exe[PATH_MAX], path[PATH_MAX + 64];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) {
      *slash = 0;
      int w = snprintf(path, sizeof path, "%s/../share/genai-gateway/%s", exe, name);
      if (w > 0 && (size_t)w < sizeof path && access(path, R_OK) == 0)
        return gw_strdup(path);
    }
  }
  return gw_strdup(built);
}
