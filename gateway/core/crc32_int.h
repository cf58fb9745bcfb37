/*
 * crc32_int.h: private to the crc32 module, for its tests and bench/bench_crc.c. Each path gw_crc32 can take
 * is reachable here whatever the CPU would pick, and the folding constants are listed with the power of x
 * each one is, so a test can derive them again from the polynomial.
 */
#ifndef GW_CRC32_INT_H
#define GW_CRC32_INT_H

#include <stddef.h>
#include <stdint.h>

/* The paths, slowest first: zlib's crc32_z; PCLMULQDQ folding 64 bytes a step; VPCLMULQDQ on 512-bit
 * registers folding 256 bytes a step (with the PCLMULQDQ one below GW_CRC32_AVX512_MIN bytes). */
enum gw_crc32_path { GW_CRC32_PORTABLE, GW_CRC32_CLMUL, GW_CRC32_AVX512 };

/* From this many bytes (four 512-bit lanes) the AVX-512 path folds 512-bit lanes, already about 1.2x
 * faster than the PCLMULQDQ path there (bench/bench_crc.c); shorter buffers take that one. */
#define GW_CRC32_AVX512_MIN 256

/* The fastest path this CPU and its OS can run: the one gw_crc32 takes. Thread-safe. */
enum gw_crc32_path gw_crc32_best(void);

/* gw_crc32 as it runs on a CPU whose best path is `path`, which must be <= gw_crc32_best(). */
uint32_t gw_crc32_via(enum gw_crc32_path path, uint32_t crc, const void *buf, size_t len);

/* One folding constant: *value is x^power mod P(x), P = 0x104C11DB7, bit-reflected in 33 bits (bit 32 - i
 * holds the coefficient of x^i). Barrett's two constants are not listed. */
struct gw_crc32_const {
  unsigned power;
  const uint64_t *value;
};

/* The constants the fast paths use; gw_crc32_nconsts is 0 where there are none. */
extern const struct gw_crc32_const gw_crc32_consts[];
extern const size_t gw_crc32_nconsts;

#endif
