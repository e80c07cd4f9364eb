/*
 * helpers.h — fixtures shared by the unit tests.
 */
#ifndef RUDP_TEST_HELPERS_H
#define RUDP_TEST_HELPERS_H

#include <stdint.h>
#include <stddef.h>

/* Fills |buf| with a deterministic pattern derived from |seed|. */
void test_fill_pattern(uint8_t *buf, size_t len, uint64_t seed);

#endif
