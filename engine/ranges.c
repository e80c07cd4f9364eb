/*
 * ranges.c — a set of disjoint half-open ranges [start, end) of uint64_t.
 *
 * The set is a sorted array of ranges that never overlap and never touch:
 * v[i].end < v[i + 1].start always holds, so every maximal run of members is
 * exactly one entry.  Because the ranges are disjoint, both the starts and
 * the ends are strictly ascending, and every query is a binary search over
 * one of them.
 *
 * The common cases are packet numbers arriving in order (ACK tracking, as in
 * RFC 9000 §13.2) and stream bytes arriving in order (reassembly, RFC 9000
 * §2.2): both add at or just past the highest range.  rudp_ranges_add()
 * checks that case first and extends or appends in O(1) amortised; anything
 * else costs a binary search plus one memmove of the tail.
 *
 * The array grows by doubling from RANGES_INIT_CAP and never shrinks until
 * rudp_ranges_free(), so a set that has reached its working size allocates
 * nothing more.  No arithmetic here adds to a bound, so values up to
 * UINT64_MAX are safe (UINT64_MAX itself can only ever be an end).
 */
#include "ranges.h"

#include <stdlib.h>
#include <string.h>

#define RANGES_INIT_CAP 4u

void rudp_ranges_init(rudp_ranges *r) {
    r->v = NULL;
    r->n = 0;
    r->cap = 0;
}

void rudp_ranges_free(rudp_ranges *r) {
    free(r->v);
    rudp_ranges_init(r);
}

/* Makes room for at least one more range, doubling the array when it is
 * full.  Returns RUDP_OK or RUDP_ERR_NOMEM (the set is then unchanged). */
static int ranges_reserve_one(rudp_ranges *r) {
    if (r->n < r->cap)
        return RUDP_OK;
    if (r->cap > UINT32_MAX / 2)
        return RUDP_ERR_NOMEM;
    uint32_t cap = r->cap ? r->cap * 2 : RANGES_INIT_CAP;
    rudp_range *v = realloc(r->v, (size_t)cap * sizeof(*v));
    if (v == NULL)
        return RUDP_ERR_NOMEM;
    r->v = v;
    r->cap = cap;
    return RUDP_OK;
}

/* Returns the index of the first range whose end is >= |x| (r->n if none):
 * the first range that contains, touches or lies above |x|. */
static uint32_t ranges_first_end_ge(const rudp_ranges *r, uint64_t x) {
    uint32_t lo = 0, hi = r->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (r->v[mid].end >= x)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Returns the index of the first range whose start is > |x| (r->n if none);
 * the range before it, if any, is the only one that may contain |x|. */
static uint32_t ranges_first_start_gt(const rudp_ranges *r, uint64_t x) {
    uint32_t lo = 0, hi = r->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (r->v[mid].start > x)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Returns the index of the range containing |x|, or -1 when none does. */
static int64_t ranges_find(const rudp_ranges *r, uint64_t x) {
    uint32_t k = ranges_first_start_gt(r, x);
    if (k > 0 && x < r->v[k - 1].end)
        return (int64_t)k - 1;
    return -1;
}

/* Deletes the ranges with indexes in [lo, hi) by moving the tail down. */
static void ranges_erase(rudp_ranges *r, uint32_t lo, uint32_t hi) {
    if (lo >= hi)
        return;
    memmove(&r->v[lo], &r->v[hi], (size_t)(r->n - hi) * sizeof(r->v[0]));
    r->n -= hi - lo;
}

/* Inserts [start, end) as a new range at index |i|.  Returns RUDP_OK or
 * RUDP_ERR_NOMEM (the set is then unchanged). */
static int ranges_insert(rudp_ranges *r, uint32_t i, uint64_t start, uint64_t end) {
    int rv = ranges_reserve_one(r);
    if (rv != RUDP_OK)
        return rv;
    memmove(&r->v[i + 1], &r->v[i], (size_t)(r->n - i) * sizeof(r->v[0]));
    r->v[i].start = start;
    r->v[i].end = end;
    r->n++;
    return RUDP_OK;
}

/* Handles an add at or above the start of the highest range in O(1).
 * Returns true and sets *rv when it did, false when the general path must. */
static bool ranges_add_high(rudp_ranges *r, uint64_t start, uint64_t end, int *rv) {
    if (r->n == 0) {
        *rv = ranges_insert(r, 0, start, end);
        return true;
    }
    rudp_range *hi = &r->v[r->n - 1];
    if (start > hi->end) {
        *rv = ranges_insert(r, r->n, start, end);
        return true;
    }
    if (start < hi->start)
        return false;
    if (end > hi->end)
        hi->end = end;
    *rv = RUDP_OK;
    return true;
}

int rudp_ranges_add(rudp_ranges *r, uint64_t start, uint64_t end) {
    if (start >= end)
        return RUDP_OK;
    int rv;
    if (ranges_add_high(r, start, end, &rv))
        return rv;
    uint32_t i = ranges_first_end_ge(r, start); /* first to merge with */
    uint32_t j = ranges_first_start_gt(r, end); /* one past the last */
    if (i == j)
        return ranges_insert(r, i, start, end);
    if (r->v[i].start < start)
        start = r->v[i].start;
    if (r->v[j - 1].end > end)
        end = r->v[j - 1].end;
    r->v[i].start = start;
    r->v[i].end = end;
    ranges_erase(r, i + 1, j);
    return RUDP_OK;
}

int rudp_ranges_remove(rudp_ranges *r, uint64_t start, uint64_t end) {
    if (start >= end)
        return RUDP_OK;
    uint32_t i = ranges_first_end_ge(r, start);
    if (i < r->n && r->v[i].end == start)
        i++; /* touches [start, end) without overlapping it */
    uint32_t j = ranges_first_start_gt(r, end);
    if (j > i && r->v[j - 1].start == end)
        j--; /* likewise on the right */
    if (i >= j)
        return RUDP_OK;
    bool keep_left = r->v[i].start < start;
    bool keep_right = r->v[j - 1].end > end;
    if (i + 1 == j && keep_left && keep_right) {
        uint64_t right_end = r->v[i].end;
        int rv = ranges_insert(r, i + 1, end, right_end);
        if (rv == RUDP_OK)
            r->v[i].end = start;
        return rv;
    }
    if (keep_left)
        r->v[i].end = start;
    if (keep_right)
        r->v[j - 1].start = end;
    ranges_erase(r, i + (keep_left ? 1 : 0), j - (keep_right ? 1 : 0));
    return RUDP_OK;
}

void rudp_ranges_remove_below(rudp_ranges *r, uint64_t x) {
    uint32_t i = ranges_first_end_ge(r, x);
    if (i < r->n && r->v[i].end == x)
        i++;
    ranges_erase(r, 0, i);
    if (r->n > 0 && r->v[0].start < x)
        r->v[0].start = x;
}

void rudp_ranges_pop_front(rudp_ranges *r) {
    ranges_erase(r, 0, r->n ? 1 : 0);
}

bool rudp_ranges_contains(const rudp_ranges *r, uint64_t x) {
    return ranges_find(r, x) >= 0;
}

bool rudp_ranges_covers(const rudp_ranges *r, uint64_t start, uint64_t end) {
    if (start >= end)
        return true;
    int64_t k = ranges_find(r, start);
    return k >= 0 && end <= r->v[k].end;
}

uint64_t rudp_ranges_contiguous_end(const rudp_ranges *r, uint64_t x) {
    int64_t k = ranges_find(r, x);
    return k >= 0 ? r->v[k].end : x;
}

bool rudp_ranges_first_gap(const rudp_ranges *r, uint64_t start, uint64_t end, uint64_t *gs,
                           uint64_t *ge) {
    if (start >= end)
        return false;
    uint32_t next = ranges_first_start_gt(r, start);
    uint64_t s = start;
    if (next > 0 && start < r->v[next - 1].end)
        s = r->v[next - 1].end;
    if (s >= end)
        return false;
    uint64_t e = end;
    if (next < r->n && r->v[next].start < e)
        e = r->v[next].start;
    *gs = s;
    *ge = e;
    return true;
}
