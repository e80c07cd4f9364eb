/*
 * test_board.c — tests of engine/board.c: the status board's bound and how
 * it shrinks (issue 13).
 *
 * Slots are claimed lowest first, each claim with a new generation; a slot
 * whose connection ended is retired and freed only after RUDP_BOARD_KEEP
 * later ends (RUDP_BOARD_KEEP_FAILED later failures for a failure); a
 * reference to a slot that went to another connection reads as ended
 * cleanly and writes nothing into it; the pages of long runs of free slots
 * leave the memory file; an accepted connection's name carries the
 * generation; and claims from several threads while one retires and
 * shrinks never hand a slot to two connections.  The board is made here
 * without an engine.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "board.h"

TestSuite(board);

/* rudp_board_create's |place|: keeps the descriptor where it is. */
static int place_here(int fd) {
    return fd;
}

/* Returns a fresh board of this process. */
static rudp_board *board_new(void) {
    int err_fd;
    rudp_board *b = rudp_board_create(place_here, &err_fd);
    cr_assert_not_null(b, "rudp_board_create");
    return b;
}

/* Claims a slot in state |state|, checking that it worked. */
static rudp_slot_ref claim(rudp_board *b, uint32_t state) {
    rudp_slot_ref ref;
    cr_assert_eq(rudp_board_alloc(b, state, &ref), 0);
    return ref;
}

/* Returns how many of the pages of |len| bytes at |p| are resident. */
static size_t resident_pages(const void *p, size_t len) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)p / page * page;
    size_t n = ((uintptr_t)p + len - lo + page - 1) / page, count = 0;
    unsigned char vec[4096];
    cr_assert_leq(n, sizeof(vec));
    cr_assert_eq(mincore((void *)lo, n * page, vec), 0);
    for (size_t i = 0; i < n; i++)
        count += vec[i] & 1;
    return count;
}

Test(board, claims_lowest_first_with_new_generations) {
    rudp_board *b = board_new();
    rudp_slot_ref a = claim(b, RUDP_SLOT_CONNECTING), c = claim(b, RUDP_SLOT_CONNECTED);
    cr_expect_eq(a.index, 0);
    cr_expect_eq(c.index, 1);
    cr_expect_neq(a.gen, 0);
    cr_expect_neq(a.gen, c.gen);
    cr_expect_eq(rudp_slot_of(&a), a.slot);
    cr_expect_eq(rudp_slot_state(rudp_slot_of(&c)), RUDP_SLOT_CONNECTED);
    rudp_board_release(b, a.index); /* never seen by a program: free at once */
    rudp_slot_ref again = claim(b, RUDP_SLOT_CONNECTING);
    cr_expect_eq(again.index, 0, "the lowest free slot is taken first");
    cr_expect_neq(again.gen, a.gen);
    cr_expect_neq(rudp_slot_of(&a), a.slot, "the old reference no longer owns the slot");
}

Test(board, retired_slot_waits_then_reads_as_ended) {
    rudp_board *b = board_new();
    rudp_slot_ref old = claim(b, RUDP_SLOT_CONNECTED);
    rudp_slot_set_flags(old.slot, RUDP_SLOT_F_WR_SHUT);
    rudp_slot_set_state(old.slot, RUDP_SLOT_DONE);
    rudp_board_retire(b, old.index);
    rudp_slot_ref r[RUDP_BOARD_KEEP];
    for (uint32_t i = 0; i < RUDP_BOARD_KEEP; i++) {
        r[i] = claim(b, RUDP_SLOT_CONNECTED);
        cr_assert_neq(r[i].index, old.index, "claimed while retired (%u ends later)", i);
        cr_assert_eq(rudp_slot_of(&old), old.slot);
        rudp_slot_set_state(r[i].slot, RUDP_SLOT_DONE);
        rudp_board_retire(b, r[i].index);
    }
    /* RUDP_BOARD_KEEP later ends: the slot is free and goes to the next. */
    rudp_slot_ref next = claim(b, RUDP_SLOT_CONNECTING);
    cr_expect_eq(next.index, old.index);
    rudp_slot *gone = rudp_slot_of(&old);
    cr_expect_neq(gone, old.slot);
    cr_expect_eq(rudp_slot_state(gone), RUDP_SLOT_DONE);
    cr_expect_eq(rudp_slot_error(gone), 0);
    rudp_slot_set_flags(gone, RUDP_SLOT_F_RESET_ON_CLOSE);
    cr_expect_eq(rudp_slot_flags(next.slot), 0, "a stale reference wrote into the slot");
    cr_expect_eq(rudp_slot_take_so_error(gone), 0);
}

Test(board, failure_outlives_many_clean_ends) {
    rudp_board *b = board_new();
    rudp_slot_ref failed = claim(b, RUDP_SLOT_CONNECTED);
    rudp_slot_fail(failed.slot, -104);
    rudp_board_retire(b, failed.index);
    for (uint32_t i = 0; i < 3 * RUDP_BOARD_KEEP; i++) {
        rudp_slot_ref r = claim(b, RUDP_SLOT_CONNECTED);
        rudp_slot_set_state(r.slot, RUDP_SLOT_DONE);
        rudp_board_retire(b, r.index);
    }
    rudp_slot *s = rudp_slot_of(&failed);
    cr_expect_eq(s, failed.slot);
    cr_expect_eq(rudp_slot_state(s), RUDP_SLOT_FAILED);
    cr_expect_eq(rudp_slot_error(s), -104);
    cr_expect_eq(rudp_slot_take_so_error(s), -104);
}

Test(board, shrink_gives_free_pages_back) {
    rudp_board *b = board_new();
    enum { N = 6000 };
    static rudp_slot_ref r[N];
    for (int i = 0; i < N; i++)
        r[i] = claim(b, RUDP_SLOT_CONNECTED);
    size_t span = (size_t)((char *)r[N - 1].slot - (char *)r[0].slot);
    size_t before = resident_pages(r[0].slot, span);
    cr_assert_gt(before, 100);
    for (int i = 0; i < N; i++) {
        rudp_slot_set_state(r[i].slot, RUDP_SLOT_DONE);
        rudp_board_retire(b, r[i].index);
    }
    size_t removed = rudp_board_shrink(b);
    size_t after = resident_pages(r[0].slot, span);
    cr_expect_gt(removed, 0);
    /* The retired slots keep their pages, and so do the first bitmap word
     * (64 slots) of the free run and the word the retired run starts in;
     * the pages of the others go. */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t kept = (RUDP_BOARD_KEEP + 128) * (span / N) / page + 4;
    cr_expect_leq(after, kept, "%zu of %zu pages still resident", after, before);
    cr_expect_eq(rudp_board_shrink(b), 0, "nothing was freed since");
    /* Claims still work, from the bottom, on zeroed pages. */
    rudp_slot_ref z = claim(b, RUDP_SLOT_CONNECTING);
    cr_expect_eq(z.index, 0);
    cr_expect_eq(rudp_slot_state(rudp_slot_of(&z)), RUDP_SLOT_CONNECTING);
    cr_expect_eq(rudp_slot_state(rudp_slot_of(&r[1])), RUDP_SLOT_DONE,
                 "gone reads as ended");
}

Test(board, name_carries_the_generation) {
    rudp_board *b = board_new();
    rudp_slot_ref ref = claim(b, RUDP_SLOT_CONNECTED), back;
    struct sockaddr_storage peer = {.ss_family = AF_INET6}, local = {.ss_family = AF_INET};
    struct sockaddr_storage p2, l2;
    char name[RUDP_BOARD_NAME_MAX];
    size_t len = rudp_board_name_encode(name, &ref, &peer, &local);
    cr_assert_leq(len, RUDP_BOARD_NAME_MAX);
    cr_assert(rudp_board_name_decode(name, len, &back, &p2, &l2));
    cr_expect_eq(back.eid, ref.eid);
    cr_expect_eq(back.index, ref.index);
    cr_expect_eq(back.gen, ref.gen);
    cr_expect_null(back.slot);
    cr_assert(rudp_board_resolve(&back));
    cr_expect_eq(rudp_slot_of(&back), ref.slot);
    cr_expect_eq(p2.ss_family, AF_INET6);
    cr_expect_eq(l2.ss_family, AF_INET);
}

/* --- claims racing retirement and shrinking --- */

enum { RACE_CLAIMERS = 2, RACE_CLAIMS = 40000, RACE_BATCH = 500 };

/* What the claimers and the retiring thread share. */
typedef struct race {
    rudp_board *b;
    _Atomic uint8_t owned[RUDP_BOARD_SLOTS]; /* 1 while a claimer holds the slot */
    pthread_mutex_t lock;
    uint32_t queue[RACE_CLAIMERS * RACE_BATCH]; /* claimed, to be retired */
    uint32_t nqueue;
    _Atomic int claimers_left;
    _Atomic int duplicates;
    size_t removed; /* bytes the shrinks removed (the retiring thread's) */
} race;

/* A claimer: claims slots in batches, checks no other holds them, and
 * hands them to the retiring thread. */
static void *race_claim(void *arg) {
    race *r = arg;
    uint32_t mine[RACE_BATCH];
    for (int done = 0; done < RACE_CLAIMS; done += RACE_BATCH) {
        for (int i = 0; i < RACE_BATCH; i++) {
            rudp_slot_ref ref;
            while (rudp_board_alloc(r->b, RUDP_SLOT_CONNECTED, &ref) != 0)
                sched_yield();
            if (atomic_exchange(&r->owned[ref.index], 1) != 0)
                atomic_fetch_add(&r->duplicates, 1);
            mine[i] = ref.index;
        }
        for (;;) { /* wait for room in the queue */
            pthread_mutex_lock(&r->lock);
            if (r->nqueue + RACE_BATCH <= RACE_CLAIMERS * RACE_BATCH)
                break;
            pthread_mutex_unlock(&r->lock);
            sched_yield();
        }
        memcpy(r->queue + r->nqueue, mine, sizeof(mine));
        r->nqueue += RACE_BATCH;
        pthread_mutex_unlock(&r->lock);
    }
    atomic_fetch_sub(&r->claimers_left, 1);
    return NULL;
}

/* The engine's part: retires what the claimers hand over, and shrinks. */
static void race_retire(race *r) {
    static uint32_t batch[RACE_CLAIMERS * RACE_BATCH];
    for (;;) {
        bool last = atomic_load(&r->claimers_left) == 0;
        pthread_mutex_lock(&r->lock);
        uint32_t n = r->nqueue;
        memcpy(batch, r->queue, n * sizeof(batch[0]));
        r->nqueue = 0;
        pthread_mutex_unlock(&r->lock);
        for (uint32_t i = 0; i < n; i++) {
            atomic_store(&r->owned[batch[i]], 0);
            rudp_board_retire(r->b, batch[i]);
        }
        r->removed += rudp_board_shrink(r->b);
        if (last && n == 0)
            return;
    }
}

Test(board, claims_race_retirement_and_shrinking) {
    static race r;
    pthread_t t[RACE_CLAIMERS];
    r.b = board_new();
    pthread_mutex_init(&r.lock, NULL);
    atomic_store(&r.claimers_left, RACE_CLAIMERS);
    for (int i = 0; i < RACE_CLAIMERS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, race_claim, &r), 0);
    race_retire(&r);
    for (int i = 0; i < RACE_CLAIMERS; i++)
        pthread_join(t[i], NULL);
    cr_expect_eq(atomic_load(&r.duplicates), 0, "a slot was handed to two connections");
    cr_expect_gt(r.removed, 0, "no shrink ran during the claims");
}
