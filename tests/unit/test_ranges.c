/*
 * test_ranges.c — unit tests for engine/ranges.c.
 *
 * Hand-written cases pin down merging, adjacency, splitting and each query;
 * a randomised model test then runs thousands of operations against a plain
 * bitmap, once near 0 and once ending at UINT64_MAX, and checks the set's
 * invariants and every query against the model after each operation.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "ranges.h"

/* Asserts that |r| holds exactly the |n| ranges in |want| (start, end pairs). */
static void expect_ranges(const rudp_ranges *r, const uint64_t *want, uint32_t n) {
    cr_assert_eq(r->n, n, "expected %u ranges, have %u", n, r->n);
    for (uint32_t i = 0; i < n; i++) {
        cr_assert_eq(r->v[i].start, want[2 * i], "range %u start", i);
        cr_assert_eq(r->v[i].end, want[2 * i + 1], "range %u end", i);
    }
}

Test(ranges, empty_set) {
    rudp_ranges r;
    rudp_ranges_init(&r);
    uint64_t gs = 0, ge = 0;
    cr_assert(rudp_ranges_empty(&r));
    cr_assert_null(rudp_ranges_lowest(&r));
    cr_assert_null(rudp_ranges_highest(&r));
    cr_assert_not(rudp_ranges_contains(&r, 0));
    cr_assert(rudp_ranges_covers(&r, 5, 5));
    cr_assert_not(rudp_ranges_covers(&r, 5, 6));
    cr_assert_eq(rudp_ranges_contiguous_end(&r, 7), 7);
    cr_assert(rudp_ranges_first_gap(&r, 3, 9, &gs, &ge));
    cr_assert_eq(gs, 3);
    cr_assert_eq(ge, 9);
    cr_assert_not(rudp_ranges_first_gap(&r, 9, 9, &gs, &ge));
    rudp_ranges_pop_front(&r);
    rudp_ranges_remove_below(&r, 100);
    cr_assert_eq(rudp_ranges_remove(&r, 0, 100), RUDP_OK);
    cr_assert_eq(rudp_ranges_add(&r, 10, 10), RUDP_OK);
    cr_assert_eq(rudp_ranges_add(&r, 10, 5), RUDP_OK);
    cr_assert_eq(r.n, 0);
    rudp_ranges_free(&r);
}

Test(ranges, add_merges_overlap_and_adjacency) {
    rudp_ranges r;
    rudp_ranges_init(&r);
    cr_assert_eq(rudp_ranges_add(&r, 10, 20), RUDP_OK);
    cr_assert_eq(rudp_ranges_add(&r, 30, 40), RUDP_OK);
    cr_assert_eq(rudp_ranges_add(&r, 50, 60), RUDP_OK);
    expect_ranges(&r, (uint64_t[]){10, 20, 30, 40, 50, 60}, 3);
    cr_assert_eq(rudp_ranges_add(&r, 0, 5), RUDP_OK); /* new lowest */
    expect_ranges(&r, (uint64_t[]){0, 5, 10, 20, 30, 40, 50, 60}, 4);
    cr_assert_eq(rudp_ranges_add(&r, 5, 10), RUDP_OK); /* touches both sides */
    expect_ranges(&r, (uint64_t[]){0, 20, 30, 40, 50, 60}, 3);
    cr_assert_eq(rudp_ranges_add(&r, 40, 45), RUDP_OK); /* adjacent on the left */
    expect_ranges(&r, (uint64_t[]){0, 20, 30, 45, 50, 60}, 3);
    cr_assert_eq(rudp_ranges_add(&r, 25, 30), RUDP_OK); /* adjacent on the right */
    expect_ranges(&r, (uint64_t[]){0, 20, 25, 45, 50, 60}, 3);
    cr_assert_eq(rudp_ranges_add(&r, 22, 23), RUDP_OK); /* isolated in a gap */
    expect_ranges(&r, (uint64_t[]){0, 20, 22, 23, 25, 45, 50, 60}, 4);
    cr_assert_eq(rudp_ranges_add(&r, 30, 35), RUDP_OK); /* already covered */
    expect_ranges(&r, (uint64_t[]){0, 20, 22, 23, 25, 45, 50, 60}, 4);
    cr_assert_eq(rudp_ranges_add(&r, 19, 52), RUDP_OK); /* swallows three */
    expect_ranges(&r, (uint64_t[]){0, 60}, 1);
    cr_assert_eq(rudp_ranges_add(&r, 0, 100), RUDP_OK); /* superset */
    expect_ranges(&r, (uint64_t[]){0, 100}, 1);
    rudp_ranges_free(&r);
    cr_assert_null(r.v);
    cr_assert_eq(r.n, 0);
}

Test(ranges, add_in_order_stays_one_range) {
    rudp_ranges r;
    rudp_ranges_init(&r);
    for (uint64_t pn = 0; pn < 100000; pn++)
        cr_assert_eq(rudp_ranges_add(&r, pn, pn + 1), RUDP_OK);
    expect_ranges(&r, (uint64_t[]){0, 100000}, 1);
    cr_assert_eq(r.cap, 4);
    rudp_ranges_free(&r);
}

Test(ranges, add_high_end_grows_by_doubling) {
    rudp_ranges r;
    rudp_ranges_init(&r);
    for (uint64_t i = 0; i < 1000; i++) {
        cr_assert_eq(rudp_ranges_add(&r, 2 * i, 2 * i + 1), RUDP_OK);
        cr_assert_eq(r.n, i + 1);
    }
    cr_assert_eq(r.cap, 1024);
    cr_assert_eq(rudp_ranges_highest(&r)->start, 1998);
    cr_assert_eq(rudp_ranges_highest(&r)->end, 1999);
    cr_assert_eq(rudp_ranges_lowest(&r)->start, 0);
    /* Filling every hole from the top merges everything back into one. */
    for (uint64_t i = 1000; i-- > 0;)
        cr_assert_eq(rudp_ranges_add(&r, 2 * i + 1, 2 * i + 2), RUDP_OK);
    expect_ranges(&r, (uint64_t[]){0, 2000}, 1);
    cr_assert_eq(r.cap, 1024);
    rudp_ranges_free(&r);
}

Test(ranges, remove_splits_and_trims) {
    rudp_ranges r;
    rudp_ranges_init(&r);
    cr_assert_eq(rudp_ranges_add(&r, 0, 100), RUDP_OK);
    cr_assert_eq(rudp_ranges_remove(&r, 40, 60), RUDP_OK); /* split */
    expect_ranges(&r, (uint64_t[]){0, 40, 60, 100}, 2);
    cr_assert_eq(rudp_ranges_remove(&r, 40, 60), RUDP_OK); /* exactly the hole */
    expect_ranges(&r, (uint64_t[]){0, 40, 60, 100}, 2);
    cr_assert_eq(rudp_ranges_remove(&r, 0, 10), RUDP_OK); /* trim the front */
    expect_ranges(&r, (uint64_t[]){10, 40, 60, 100}, 2);
    cr_assert_eq(rudp_ranges_remove(&r, 90, 200), RUDP_OK); /* trim the back */
    expect_ranges(&r, (uint64_t[]){10, 40, 60, 90}, 2);
    cr_assert_eq(rudp_ranges_remove(&r, 30, 70), RUDP_OK); /* trims two */
    expect_ranges(&r, (uint64_t[]){10, 30, 70, 90}, 2);
    cr_assert_eq(rudp_ranges_add(&r, 40, 50), RUDP_OK);
    cr_assert_eq(rudp_ranges_add(&r, 55, 60), RUDP_OK);
    expect_ranges(&r, (uint64_t[]){10, 30, 40, 50, 55, 60, 70, 90}, 4);
    cr_assert_eq(rudp_ranges_remove(&r, 20, 80), RUDP_OK); /* drops two inside */
    expect_ranges(&r, (uint64_t[]){10, 20, 80, 90}, 2);
    cr_assert_eq(rudp_ranges_remove(&r, 10, 20), RUDP_OK); /* a whole range */
    expect_ranges(&r, (uint64_t[]){80, 90}, 1);
    cr_assert_eq(rudp_ranges_remove(&r, 90, 95), RUDP_OK); /* only touches */
    cr_assert_eq(rudp_ranges_remove(&r, 70, 80), RUDP_OK);
    cr_assert_eq(rudp_ranges_remove(&r, 85, 85), RUDP_OK); /* empty */
    expect_ranges(&r, (uint64_t[]){80, 90}, 1);
    cr_assert_eq(rudp_ranges_remove(&r, 0, UINT64_MAX), RUDP_OK);
    cr_assert(rudp_ranges_empty(&r));
    rudp_ranges_free(&r);
}

Test(ranges, remove_split_grows_array) {
    rudp_ranges r;
    rudp_ranges_init(&r);
    for (uint64_t i = 0; i < 4; i++)
        cr_assert_eq(rudp_ranges_add(&r, 10 * i, 10 * i + 5), RUDP_OK);
    cr_assert_eq(r.cap, 4);
    cr_assert_eq(rudp_ranges_remove(&r, 12, 13), RUDP_OK);
    cr_assert_eq(r.cap, 8);
    expect_ranges(&r, (uint64_t[]){0, 5, 10, 12, 13, 15, 20, 25, 30, 35}, 5);
    rudp_ranges_free(&r);
}

Test(ranges, remove_below_and_pop_front) {
    rudp_ranges r;
    rudp_ranges_init(&r);
    cr_assert_eq(rudp_ranges_add(&r, 10, 20), RUDP_OK);
    cr_assert_eq(rudp_ranges_add(&r, 30, 40), RUDP_OK);
    cr_assert_eq(rudp_ranges_add(&r, 50, 60), RUDP_OK);
    rudp_ranges_remove_below(&r, 5);
    expect_ranges(&r, (uint64_t[]){10, 20, 30, 40, 50, 60}, 3);
    rudp_ranges_remove_below(&r, 15); /* clips the lowest */
    expect_ranges(&r, (uint64_t[]){15, 20, 30, 40, 50, 60}, 3);
    rudp_ranges_remove_below(&r, 20); /* exactly its end */
    expect_ranges(&r, (uint64_t[]){30, 40, 50, 60}, 2);
    rudp_ranges_remove_below(&r, 45); /* inside a gap */
    expect_ranges(&r, (uint64_t[]){50, 60}, 1);
    cr_assert_eq(rudp_ranges_add(&r, 70, 80), RUDP_OK);
    rudp_ranges_pop_front(&r);
    expect_ranges(&r, (uint64_t[]){70, 80}, 1);
    rudp_ranges_pop_front(&r);
    cr_assert(rudp_ranges_empty(&r));
    rudp_ranges_pop_front(&r);
    cr_assert(rudp_ranges_empty(&r));
    cr_assert_eq(rudp_ranges_add(&r, 1, 2), RUDP_OK);
    rudp_ranges_remove_below(&r, UINT64_MAX);
    cr_assert(rudp_ranges_empty(&r));
    rudp_ranges_free(&r);
}

Test(ranges, queries) {
    rudp_ranges r;
    rudp_ranges_init(&r);
    uint64_t gs = 0, ge = 0;
    cr_assert_eq(rudp_ranges_add(&r, 10, 20), RUDP_OK);
    cr_assert_eq(rudp_ranges_add(&r, 30, 40), RUDP_OK);
    cr_assert_not(rudp_ranges_contains(&r, 9));
    cr_assert(rudp_ranges_contains(&r, 10));
    cr_assert(rudp_ranges_contains(&r, 19));
    cr_assert_not(rudp_ranges_contains(&r, 20));
    cr_assert_not(rudp_ranges_contains(&r, 29));
    cr_assert(rudp_ranges_contains(&r, 30));
    cr_assert_not(rudp_ranges_contains(&r, 40));
    cr_assert(rudp_ranges_covers(&r, 10, 20));
    cr_assert(rudp_ranges_covers(&r, 12, 18));
    cr_assert_not(rudp_ranges_covers(&r, 9, 12));
    cr_assert_not(rudp_ranges_covers(&r, 15, 21));
    cr_assert_not(rudp_ranges_covers(&r, 15, 35));
    cr_assert(rudp_ranges_covers(&r, 25, 25));
    cr_assert_eq(rudp_ranges_contiguous_end(&r, 10), 20);
    cr_assert_eq(rudp_ranges_contiguous_end(&r, 15), 20);
    cr_assert_eq(rudp_ranges_contiguous_end(&r, 20), 20);
    cr_assert_eq(rudp_ranges_contiguous_end(&r, 25), 25);
    cr_assert_eq(rudp_ranges_contiguous_end(&r, 39), 40);
    cr_assert(rudp_ranges_first_gap(&r, 0, 100, &gs, &ge));
    cr_assert_eq(gs, 0);
    cr_assert_eq(ge, 10);
    cr_assert(rudp_ranges_first_gap(&r, 10, 100, &gs, &ge));
    cr_assert_eq(gs, 20);
    cr_assert_eq(ge, 30);
    cr_assert(rudp_ranges_first_gap(&r, 15, 25, &gs, &ge));
    cr_assert_eq(gs, 20);
    cr_assert_eq(ge, 25);
    cr_assert(rudp_ranges_first_gap(&r, 35, 100, &gs, &ge));
    cr_assert_eq(gs, 40);
    cr_assert_eq(ge, 100);
    cr_assert(rudp_ranges_first_gap(&r, 22, 24, &gs, &ge));
    cr_assert_eq(gs, 22);
    cr_assert_eq(ge, 24);
    cr_assert_not(rudp_ranges_first_gap(&r, 12, 20, &gs, &ge));
    cr_assert_not(rudp_ranges_first_gap(&r, 30, 40, &gs, &ge));
    rudp_ranges_free(&r);
}

Test(ranges, values_near_uint64_max) {
    rudp_ranges r;
    rudp_ranges_init(&r);
    uint64_t gs = 0, ge = 0;
    const uint64_t M = UINT64_MAX;
    cr_assert_eq(rudp_ranges_add(&r, M - 10, M), RUDP_OK);
    cr_assert_eq(rudp_ranges_add(&r, M - 20, M - 10), RUDP_OK);
    expect_ranges(&r, (uint64_t[]){M - 20, M}, 1);
    cr_assert(rudp_ranges_contains(&r, M - 1));
    cr_assert_not(rudp_ranges_contains(&r, M));
    cr_assert(rudp_ranges_covers(&r, M - 20, M));
    cr_assert_eq(rudp_ranges_contiguous_end(&r, M - 5), M);
    cr_assert_eq(rudp_ranges_contiguous_end(&r, M), M);
    cr_assert_not(rudp_ranges_first_gap(&r, M - 20, M, &gs, &ge));
    cr_assert(rudp_ranges_first_gap(&r, M - 30, M, &gs, &ge));
    cr_assert_eq(gs, M - 30);
    cr_assert_eq(ge, M - 20);
    cr_assert_eq(rudp_ranges_remove(&r, M - 15, M - 5), RUDP_OK);
    expect_ranges(&r, (uint64_t[]){M - 20, M - 15, M - 5, M}, 2);
    cr_assert_eq(rudp_ranges_add(&r, 0, M), RUDP_OK);
    expect_ranges(&r, (uint64_t[]){0, M}, 1);
    cr_assert_eq(rudp_ranges_remove(&r, M - 1, M), RUDP_OK);
    expect_ranges(&r, (uint64_t[]){0, M - 1}, 1);
    rudp_ranges_remove_below(&r, M - 2);
    expect_ranges(&r, (uint64_t[]){M - 2, M - 1}, 1);
    rudp_ranges_free(&r);
}

/* ---- randomised model test ---------------------------------------------- */

#define MODEL_BITS 4096u

typedef struct model {
    bool bit[MODEL_BITS];
    uint64_t base; /* value of bit 0 */
    uint64_t rng;
} model;

/* Returns the next value of a xorshift64 generator. */
static uint64_t model_rand(model *m) {
    m->rng ^= m->rng << 13;
    m->rng ^= m->rng >> 7;
    m->rng ^= m->rng << 17;
    return m->rng;
}

/* Picks a random model interval [*s, *e), mostly short, sometimes long. */
static void model_pick(model *m, uint32_t *s, uint32_t *e) {
    uint32_t a = (uint32_t)(model_rand(m) % MODEL_BITS);
    uint32_t max = model_rand(m) % 64 == 0 ? 512 : 8;
    uint32_t len = (uint32_t)(model_rand(m) % (max + 1));
    *s = a;
    *e = a + len > MODEL_BITS ? MODEL_BITS : a + len;
}

/* Asserts the set's invariants and that it holds exactly the model's bits. */
static void model_check_set(const model *m, const rudp_ranges *r) {
    bool seen[MODEL_BITS];
    memset(seen, 0, sizeof(seen));
    for (uint32_t i = 0; i < r->n; i++) {
        cr_assert_lt(r->v[i].start, r->v[i].end);
        if (i > 0)
            cr_assert_lt(r->v[i - 1].end, r->v[i].start, "ranges touch or overlap");
        cr_assert_geq(r->v[i].start, m->base);
        for (uint64_t x = r->v[i].start; x < r->v[i].end; x++)
            seen[x - m->base] = true;
    }
    cr_assert_leq(r->n, r->cap);
    cr_assert(memcmp(seen, m->bit, sizeof(seen)) == 0, "set differs from model");
}

/* Asserts contains, covers, contiguous_end and first_gap on [s, e). */
static void model_check_queries(const model *m, const rudp_ranges *r, uint32_t s,
                                uint32_t e) {
    uint64_t b = m->base, gs = 0, ge = 0;
    uint32_t run = s;
    while (run < MODEL_BITS && m->bit[run])
        run++;
    uint32_t gap = s;
    while (gap < e && m->bit[gap])
        gap++;
    uint32_t gap_end = gap;
    while (gap_end < e && !m->bit[gap_end])
        gap_end++;
    cr_assert_eq(rudp_ranges_contains(r, b + s), s < MODEL_BITS && m->bit[s]);
    cr_assert_eq(rudp_ranges_covers(r, b + s, b + e), gap == e || s >= e);
    cr_assert_eq(rudp_ranges_contiguous_end(r, b + s), b + run);
    bool has_gap = rudp_ranges_first_gap(r, b + s, b + e, &gs, &ge);
    cr_assert_eq(has_gap, gap < e);
    if (has_gap) {
        cr_assert_eq(gs, b + gap);
        cr_assert_eq(ge, b + gap_end);
    }
}

/* Applies one random operation to both the model and the set. */
static void model_step(model *m, rudp_ranges *r) {
    uint32_t s, e;
    model_pick(m, &s, &e);
    uint64_t op = model_rand(m) % 100;
    if (op < 55) {
        cr_assert_eq(rudp_ranges_add(r, m->base + s, m->base + e), RUDP_OK);
        for (uint32_t x = s; x < e; x++)
            m->bit[x] = true;
    } else if (op < 95) {
        cr_assert_eq(rudp_ranges_remove(r, m->base + s, m->base + e), RUDP_OK);
        for (uint32_t x = s; x < e; x++)
            m->bit[x] = false;
    } else if (op < 97) {
        uint32_t below = (uint32_t)(model_rand(m) % 512);
        rudp_ranges_remove_below(r, m->base + below);
        memset(m->bit, 0, below * sizeof(bool));
    } else {
        uint32_t x = 0;
        while (x < MODEL_BITS && !m->bit[x])
            x++;
        while (x < MODEL_BITS && m->bit[x])
            m->bit[x++] = false;
        rudp_ranges_pop_front(r);
    }
}

/* Runs |steps| random operations from |base|, checking after each. */
static void model_run(uint64_t base, uint64_t seed, int steps) {
    static model m;
    rudp_ranges r;
    memset(&m, 0, sizeof(m));
    m.base = base;
    m.rng = seed;
    rudp_ranges_init(&r);
    uint32_t max_n = 0;
    for (int i = 0; i < steps; i++) {
        model_step(&m, &r);
        model_check_set(&m, &r);
        for (int q = 0; q < 16; q++) {
            uint32_t s, e;
            model_pick(&m, &s, &e);
            model_check_queries(&m, &r, s, e);
        }
        max_n = r.n > max_n ? r.n : max_n;
    }
    cr_log_info("model: max %u ranges", max_n);
    cr_assert_gt(max_n, 150, "the model test never built a large set (%u)", max_n);
    rudp_ranges_free(&r);
}

Test(ranges, model_low) {
    model_run(0, 0x1234567887654321ull, 20000);
}

Test(ranges, model_at_uint64_max) {
    model_run(UINT64_MAX - MODEL_BITS, 0x0badc0ffee15900dull, 20000);
}
