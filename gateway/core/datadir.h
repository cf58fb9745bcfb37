/*
 * datadir.h: where the files shipped beside the binary are (the migrations, the default price table).
 * A build knows their paths (GW_MIGRATIONS_DIR, GW_PRICES_DEFAULT_PATH, the source tree unless the build
 * set the install location); a binary copied elsewhere (an image assembled from a build, a tarball) finds
 * them under <directory of the executable>/../share/genai-gateway/ instead.
 */
#ifndef GW_DATADIR_H
#define GW_DATADIR_H

/*
 * The path of name (a file or directory under share/genai-gateway/): built when it exists, else
 * <exe dir>/../share/genai-gateway/<name> when that exists, else built (whose absence the caller
 * reports with that path). Returns a heap string the caller frees. Thread-safe.
 */
char *gw_datadir_find(const char *built, const char *name);

#endif
