/*
 * helpers.c — fixtures shared by the unit tests.
 */
#include "helpers.h"

void test_fill_pattern(uint8_t *buf, size_t len, uint64_t seed) {
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
}
