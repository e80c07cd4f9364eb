/*
 * ranges.h — a set of disjoint half-open ranges [start, end) of uint64_t.
 *
 * Used for received packet numbers (ACK generation), received stream bytes
 * (reassembly), acknowledged stream bytes and stream bytes to retransmit.
 * Kept as a sorted array that grows by doubling, so steady-state insertions
 * allocate nothing.  Adjacent and overlapping ranges are always merged.
 */
#ifndef RUDP_RANGES_H
#define RUDP_RANGES_H

#include "rudp/rudp.h"

typedef struct rudp_range {
    uint64_t start, end; /* [start, end), start < end */
} rudp_range;

typedef struct rudp_ranges {
    rudp_range *v; /* ascending by start */
    uint32_t n, cap;
} rudp_ranges;

void rudp_ranges_init(rudp_ranges *r);
void rudp_ranges_free(rudp_ranges *r);

/* Adds [start, end), merging with neighbours.  Empty ranges are ignored.
 * Returns RUDP_OK or RUDP_ERR_NOMEM (the set is then unchanged). */
int rudp_ranges_add(rudp_ranges *r, uint64_t start, uint64_t end);

/* Removes [start, end) from the set (may split a range).  Returns RUDP_OK or
 * RUDP_ERR_NOMEM when a split needs room that cannot be had. */
int rudp_ranges_remove(rudp_ranges *r, uint64_t start, uint64_t end);

/* Removes everything below |x|. */
void rudp_ranges_remove_below(rudp_ranges *r, uint64_t x);

/* Removes the lowest range (no-op on an empty set). */
void rudp_ranges_pop_front(rudp_ranges *r);

/* Returns true when |x| is in the set. */
bool rudp_ranges_contains(const rudp_ranges *r, uint64_t x);

/* Returns true when all of [start, end) is in the set (true when empty). */
bool rudp_ranges_covers(const rudp_ranges *r, uint64_t start, uint64_t end);

/* Returns the end of the range containing |x|, or |x| when x is not in it. */
uint64_t rudp_ranges_contiguous_end(const rudp_ranges *r, uint64_t x);

/* Finds the first part of [start, end) NOT in the set.  Returns true and
 * sets *gs, *ge (gs < ge) if there is one. */
bool rudp_ranges_first_gap(const rudp_ranges *r, uint64_t start, uint64_t end, uint64_t *gs,
                           uint64_t *ge);

static inline bool rudp_ranges_empty(const rudp_ranges *r) {
    return r->n == 0;
}
static inline const rudp_range *rudp_ranges_lowest(const rudp_ranges *r) {
    return r->n ? &r->v[0] : NULL;
}
static inline const rudp_range *rudp_ranges_highest(const rudp_ranges *r) {
    return r->n ? &r->v[r->n - 1] : NULL;
}

#endif /* RUDP_RANGES_H */
