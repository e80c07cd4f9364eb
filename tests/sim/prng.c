/*
 * prng.c — xoshiro256** seeded by splitmix64, for the simulator.
 *
 * xoshiro256** has a 2^256 - 1 period, passes BigCrush and costs a handful
 * of shifts and rotations per draw, which matters when a simulation draws a
 * few numbers per packet for millions of packets.  Its state must not be all
 * zero; seeding it from four consecutive splitmix64 outputs guarantees that
 * for every seed.  The reference algorithms are at prng.di.unimi.it.
 */
#include "prng.h"

/* Rotates |x| left by |k| bits (0 < k < 64). */
static inline uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

uint64_t sim_prng_mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t sim_prng_derive(uint64_t seed, uint64_t label) {
    return sim_prng_mix(sim_prng_mix(seed) ^ sim_prng_mix(label + 0x5851f42d4c957f2dull));
}

void sim_prng_init(sim_prng *p, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        p->s[i] = sim_prng_mix(x);
        x += 0x9e3779b97f4a7c15ull;
    }
}

uint64_t sim_prng_next(sim_prng *p) {
    uint64_t *s = p->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double sim_prng_uniform(sim_prng *p) {
    return (double)(sim_prng_next(p) >> 11) * 0x1.0p-53;
}

uint64_t sim_prng_below(sim_prng *p, uint64_t n) {
    if (n == 0)
        return 0;
    /* Reject the top partial bucket so every residue is equally likely. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do {
        x = sim_prng_next(p);
    } while (x >= limit);
    return x % n;
}

bool sim_prng_chance(sim_prng *p, double prob) {
    if (prob <= 0.0)
        return false;
    if (prob >= 1.0)
        return true;
    return sim_prng_uniform(p) < prob;
}
