/*
 * crc32c.h — CRC-32C (Castagnoli) of packet bytes, in hardware where the CPU
 * has it.  Internal to the engine.
 */
#ifndef RUDP_CRC32C_H
#define RUDP_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Returns the CRC-32C of |len| bytes at |p| (|p| may be NULL when len is 0),
 * with the fastest implementation this CPU has.  Thread-safe. */
uint32_t rudp_crc32c(const uint8_t *p, size_t len);

/* The same function computed by the portable table walk (for tests). */
uint32_t rudp_crc32c_portable(const uint8_t *p, size_t len);

/* Returns true when rudp_crc32c uses a hardware instruction. */
bool rudp_crc32c_is_hardware(void);

#endif /* RUDP_CRC32C_H */
