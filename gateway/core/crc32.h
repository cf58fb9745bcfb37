/*
 * crc32.h: the CRC-32 of zlib's crc32() (ISO-HDLC, reflected polynomial 0xEDB88320), faster.
 *
 * The spool checks every record with it (spool_disk.c), so every accepted request's re-packed body and
 * records pass through it on the request path: zlib 1.2.13 does about 5 GB/s here, 77 us for a 400 KB
 * entry. With PCLMULQDQ (x86-64 CPUs since 2010, checked at run time) the data is folded 64 bytes a step
 * by carry-less multiplication (Gopal et al., "Fast CRC Computation for Generic Polynomials Using
 * PCLMULQDQ Instruction", Intel, 2009), then reduced to 32 bits with Barrett's method: about 12-14 GB/s.
 * Where the CPU also has AVX-512 (F, BW, VL) and VPCLMULQDQ and the OS saves the ZMM registers, buffers
 * from 256 bytes are folded 256 bytes a step in four 512-bit lanes, reduced to one 128-bit lane and
 * finished as above: about 47-54 GB/s (bench/bench_crc.c). The values are zlib's bit for bit on every
 * path (tests force each one and compare every length to 2100 at each alignment), so records written
 * before read the same.
 */
#ifndef GW_CRC32_H
#define GW_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* zlib's crc32(crc, buf, len): crc is the CRC of what came before (0 to start). */
uint32_t gw_crc32(uint32_t crc, const void *buf, size_t len);
/* The same without the fast path, for tests and CPUs without it. */
uint32_t gw_crc32_portable(uint32_t crc, const void *buf, size_t len);

#endif
