/*
 * prng.h — the simulator's deterministic pseudo-random numbers.
 *
 * Every random choice the simulator makes (which packet is lost, how much
 * jitter it gets, which bits a corruption flips, the seeds handed to the two
 * sessions) comes from a generator defined here, so a run is a pure function
 * of its seed and replays exactly on any machine.  The generator is
 * xoshiro256** (Blackman and Vigna, 2018), seeded through splitmix64 as its
 * authors recommend; splitmix64 alone also serves as a stateless mixer for
 * deriving independent sub-seeds ("the seed of the client-to-server link of
 * run 17") and for the payload patterns.  None of this is cryptographic.
 */
#ifndef RUDP_SIM_PRNG_H
#define RUDP_SIM_PRNG_H

#include <stdbool.h>
#include <stdint.h>

typedef struct sim_prng {
    uint64_t s[4];
} sim_prng;

/* Returns the splitmix64 finalizer of |x|: a bijective, well-mixed 64-bit
 * hash.  Stateless; equal inputs give equal outputs. */
uint64_t sim_prng_mix(uint64_t x);

/* Returns a sub-seed for the purpose named by |label| derived from |seed|, so
 * that different labels give statistically independent streams. */
uint64_t sim_prng_derive(uint64_t seed, uint64_t label);

/* Seeds |p| from |seed|; any seed, including 0, gives a usable state. */
void sim_prng_init(sim_prng *p, uint64_t seed);

/* Returns the next 64 uniformly distributed bits of |p|. */
uint64_t sim_prng_next(sim_prng *p);

/* Returns a uniformly distributed double in [0, 1) with 53 bits of
 * precision. */
double sim_prng_uniform(sim_prng *p);

/* Returns a uniformly distributed integer in [0, n), without modulo bias.
 * Returns 0 when |n| is 0. */
uint64_t sim_prng_below(sim_prng *p, uint64_t n);

/* Returns true with probability |prob| (clamped to [0, 1]).  Probabilities
 * of 0 and 1 consume no randomness, so turning an impairment off does not
 * shift the random choices of the others. */
bool sim_prng_chance(sim_prng *p, double prob);

#endif
