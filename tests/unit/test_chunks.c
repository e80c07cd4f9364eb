/*
 * test_chunks.c — unit tests for engine/chunks.c, the slabs stream chunks
 * live in (issue 13).
 *
 * Chunks are aligned and distinct, a freed chunk is handed out again while
 * warm, and a trim gives back only what stayed free for a whole period:
 * first the pages of idle free chunks (mincore sees them go), then the
 * slabs that stayed empty.  Each Test runs in its own process, so the
 * figures start from zero.  Under AddressSanitizer, where chunks come from
 * malloc, the tests are skipped.
 */
#include <criterion/criterion.h>

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "chunks.h"
#include "rudp/rudp.h"

/* Returns how many pages of the chunk at |c| are resident. */
static size_t resident(void *c) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n = RUDP_CHUNK_SIZE / page, count = 0;
    unsigned char vec[64];
    cr_assert_eq(mincore(c, RUDP_CHUNK_SIZE, vec), 0);
    for (size_t i = 0; i < n; i++)
        count += vec[i] & 1;
    return count;
}

/* Returns the current figures. */
static rudp_chunks_info info(void) {
    rudp_chunks_info in;
    rudp_chunks_get_info(&in);
    return in;
}

/* Skips a test of the slabs when chunks come from malloc (ASan). */
static void need_slabs(void) {
#ifdef RUDP_CHUNKS_FROM_MALLOC
    cr_skip_test("chunks come from malloc under AddressSanitizer");
#endif
}

Test(chunks, distinct_aligned_and_reused_warm) {
    need_slabs();
    void *a = rudp_chunks_get(), *b = rudp_chunks_get();
    cr_assert(a && b && a != b);
    cr_expect_eq((uintptr_t)a % RUDP_CHUNK_SIZE, 0);
    memset(a, 1, RUDP_CHUNK_SIZE);
    memset(b, 2, RUDP_CHUNK_SIZE);
    cr_expect_eq(info().in_use, 2);
    rudp_chunks_put(a);
    cr_expect_eq(info().resident, 1);
    cr_expect_eq(rudp_chunks_get(), a, "the warm chunk comes back first");
    cr_expect_eq(((uint8_t *)b)[RUDP_CHUNK_SIZE - 1], 2);
    rudp_chunks_put(NULL);
}

Test(chunks, trim_gives_back_what_stayed_free) {
    need_slabs();
    enum { N = 3 * RUDP_CHUNKS_PER_SLAB };
    static void *c[N];
    for (int i = 0; i < N; i++) {
        c[i] = rudp_chunks_get();
        cr_assert_not_null(c[i]);
        memset(c[i], 0x5a, RUDP_CHUNK_SIZE);
    }
    cr_expect_eq(info().slabs, 3);
    for (int i = 0; i < N; i++)
        if (i % 2 == 0 || i >= (int)RUDP_CHUNKS_PER_SLAB) /* slabs 2 and 3 empty */
            rudp_chunks_put(c[i]);
    cr_expect_eq(rudp_memory_trim(), 0, "just freed: kept for a period");
    cr_expect_gt(resident(c[0]), 0);
    size_t back = rudp_memory_trim();
    cr_expect_geq(back, (size_t)(RUDP_CHUNKS_PER_SLAB / 2) * RUDP_CHUNK_SIZE);
    cr_expect_eq(resident(c[0]), 0, "an idle free chunk keeps its pages");
    cr_expect_eq(resident(c[1]), RUDP_CHUNK_SIZE / (size_t)sysconf(_SC_PAGESIZE));
    cr_expect_eq(info().slabs, 1, "the empty slabs are unmapped");
    cr_expect_eq(info().in_use, RUDP_CHUNKS_PER_SLAB / 2);
    cr_expect_eq(info().resident, 0);
    /* Given-back chunks are still usable, zeroed. */
    void *again = rudp_chunks_get();
    cr_expect_eq(again, c[0]);
    cr_expect_eq(((uint8_t *)again)[100], 0);
}
