/*
 * test_buf.c — unit tests for engine/buf.c and its chunk pool.
 *
 * Round trips across chunk boundaries, out-of-order and overlapping writes,
 * peek contiguity, release back to the pool, refusal of writes below the
 * released mark, in-place reservation as iovecs (its bounds and the return
 * of unused chunks), the pool's spare limit and its trim, and a 64 MiB
 * stream written and released progressively that must keep its slot array
 * and chunk count bounded and stop allocating once warm.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "helpers.h"

#define C RUDP_CHUNK_SIZE

/* Returns the byte a long test stream carries at |off|. */
static uint8_t stream_byte(uint64_t off) {
    uint64_t x = off * 0x9e3779b97f4a7c15ull;
    return (uint8_t)(x >> 56);
}

/* Asserts that the buffer holds |want| (|len| bytes) at |off|. */
static void expect_bytes(const rudp_buf *b, uint64_t off, const uint8_t *want, size_t len) {
    uint8_t *got = malloc(len);
    cr_assert_not_null(got);
    memset(got, 0xee, len);
    rudp_buf_read(b, off, got, len);
    cr_assert(memcmp(got, want, len) == 0, "bytes at %llu differ", (unsigned long long)off);
    free(got);
}

Test(buf, round_trip_across_chunks) {
    rudp_chunk_pool pool;
    rudp_buf b;
    rudp_chunk_pool_init(&pool, 16);
    rudp_buf_init(&b, &pool);
    size_t len = 3 * C + 123;
    uint64_t off = C - 50;
    uint8_t *data = malloc(len);
    test_fill_pattern(data, len, 1);
    /* Odd-sized pieces so that several straddle a chunk boundary. */
    for (size_t done = 0, piece = 1; done < len; piece = piece * 3 + 7) {
        size_t n = piece < len - done ? piece : len - done;
        cr_assert_eq(rudp_buf_write(&b, off + done, data + done, n), RUDP_OK);
        done += n;
    }
    /* [C-50, 4C+73) touches chunks 0..4. */
    cr_assert_eq(rudp_buf_chunks(&b), 5);
    cr_assert_eq(pool.in_use, 5);
    cr_assert_eq(b.n, 5);
    expect_bytes(&b, off, data, len);
    expect_bytes(&b, off + 49, data + 49, 2);           /* straddles C */
    expect_bytes(&b, 2 * C, data + C + 50, C);          /* one whole chunk */
    expect_bytes(&b, off + len - 1, data + len - 1, 1); /* the last byte */
    rudp_buf_free(&b);
    cr_assert_eq(pool.in_use, 0);
    cr_assert_eq(pool.nfree, 5);
    cr_assert_null(b.chunks);
    rudp_chunk_pool_free(&pool);
    cr_assert_eq(pool.nfree, 0);
    free(data);
}

Test(buf, out_of_order_writes) {
    rudp_chunk_pool pool;
    rudp_buf b;
    rudp_chunk_pool_init(&pool, 16);
    rudp_buf_init(&b, &pool);
    enum { SEG = 1200, NSEG = 40 };
    static uint8_t data[SEG * NSEG];
    test_fill_pattern(data, sizeof(data), 2);
    /* Write segments in a fixed scrambled order (17 is coprime with 40). */
    for (int k = 0; k < NSEG; k++) {
        int s = (k * 17 + 5) % NSEG;
        cr_assert_eq(rudp_buf_write(&b, (uint64_t)s * SEG, data + s * SEG, SEG), RUDP_OK);
    }
    cr_assert_eq(rudp_buf_chunks(&b), (SEG * NSEG + C - 1) / C);
    expect_bytes(&b, 0, data, sizeof(data));
    rudp_buf_free(&b);
    cr_assert_eq(pool.in_use, 0);
    rudp_chunk_pool_free(&pool);
}

Test(buf, sparse_write_leaves_null_slots) {
    rudp_chunk_pool pool;
    rudp_buf b;
    rudp_chunk_pool_init(&pool, 4);
    rudp_buf_init(&b, &pool);
    uint8_t data[100];
    const uint8_t *p = NULL;
    test_fill_pattern(data, sizeof(data), 3);
    cr_assert_eq(rudp_buf_write(&b, 10 * C + 5, data, sizeof(data)), RUDP_OK);
    cr_assert_eq(b.n, 11);
    cr_assert_eq(rudp_buf_chunks(&b), 1);
    cr_assert_eq(pool.in_use, 1);
    for (uint32_t i = 0; i < 10; i++)
        cr_assert_null(b.chunks[i]);
    cr_assert_eq(rudp_buf_peek(&b, 3 * C, 10, &p), 0); /* never stored */
    cr_assert_null(p);
    cr_assert_eq(rudp_buf_peek(&b, 20 * C, 10, &p), 0); /* past the slots */
    expect_bytes(&b, 10 * C + 5, data, sizeof(data));
    rudp_buf_free(&b);
    cr_assert_eq(pool.in_use, 0);
    rudp_chunk_pool_free(&pool);
}

Test(buf, overwrite) {
    rudp_chunk_pool pool;
    rudp_buf b;
    rudp_chunk_pool_init(&pool, 4);
    rudp_buf_init(&b, &pool);
    uint8_t a[3000], z[1000], want[3000];
    test_fill_pattern(a, sizeof(a), 4);
    test_fill_pattern(z, sizeof(z), 5);
    uint64_t off = C - 1500;
    cr_assert_eq(rudp_buf_write(&b, off, a, sizeof(a)), RUDP_OK);
    cr_assert_eq(rudp_buf_write(&b, off, a, sizeof(a)), RUDP_OK); /* identical */
    expect_bytes(&b, off, a, sizeof(a));
    cr_assert_eq(rudp_buf_write(&b, off + 1000, z, sizeof(z)), RUDP_OK);
    memcpy(want, a, sizeof(a));
    memcpy(want + 1000, z, sizeof(z));
    expect_bytes(&b, off, want, sizeof(want));
    cr_assert_eq(rudp_buf_chunks(&b), 2);
    cr_assert_eq(pool.in_use, 2);
    cr_assert_eq(rudp_buf_write(&b, off, a, 0), RUDP_OK); /* empty write */
    rudp_buf_free(&b);
    rudp_chunk_pool_free(&pool);
}

Test(buf, peek_contiguity) {
    rudp_chunk_pool pool;
    rudp_buf b;
    rudp_chunk_pool_init(&pool, 4);
    rudp_buf_init(&b, &pool);
    size_t len = 2 * C;
    uint8_t *data = malloc(len);
    const uint8_t *p = NULL;
    test_fill_pattern(data, len, 6);
    cr_assert_eq(rudp_buf_write(&b, 0, data, len), RUDP_OK);
    cr_assert_eq(rudp_buf_peek(&b, 0, len, &p), C);
    cr_assert_eq(p, b.chunks[0]);
    cr_assert_eq(rudp_buf_peek(&b, 100, len, &p), C - 100);
    cr_assert_eq(p, b.chunks[0] + 100);
    cr_assert(memcmp(p, data + 100, C - 100) == 0);
    cr_assert_eq(rudp_buf_peek(&b, 100, 50, &p), 50);
    cr_assert_eq(rudp_buf_peek(&b, C - 1, 10, &p), 1);
    cr_assert_eq(*p, data[C - 1]);
    cr_assert_eq(rudp_buf_peek(&b, C, 10, &p), 10);
    cr_assert_eq(p, b.chunks[1]);
    cr_assert_eq(rudp_buf_peek(&b, C + 7, 0, &p), 0);
    rudp_buf_free(&b);
    rudp_chunk_pool_free(&pool);
    free(data);
}

Test(buf, release_returns_chunks) {
    rudp_chunk_pool pool;
    rudp_buf b;
    rudp_chunk_pool_init(&pool, 8);
    rudp_buf_init(&b, &pool);
    size_t len = 4 * C;
    uint8_t *data = malloc(len);
    test_fill_pattern(data, len, 7);
    cr_assert_eq(rudp_buf_write(&b, 0, data, len), RUDP_OK);
    cr_assert_eq(pool.in_use, 4);
    rudp_buf_release_below(&b, C - 1); /* nothing whole yet */
    cr_assert_eq(rudp_buf_chunks(&b), 4);
    cr_assert_eq(b.base, 0);
    rudp_buf_release_below(&b, C + 1);
    cr_assert_eq(rudp_buf_chunks(&b), 3);
    cr_assert_eq(pool.in_use, 3);
    cr_assert_eq(pool.nfree, 1);
    cr_assert_eq(b.base, C);
    cr_assert_eq(b.n, 3);
    expect_bytes(&b, C + 1, data + C + 1, len - C - 1);
    rudp_buf_release_below(&b, 3 * C);
    cr_assert_eq(rudp_buf_chunks(&b), 1);
    cr_assert_eq(b.base, 3 * C);
    expect_bytes(&b, 3 * C, data + 3 * C, C);
    rudp_buf_release_below(&b, 4 * C);
    cr_assert_eq(rudp_buf_chunks(&b), 0);
    cr_assert_eq(pool.in_use, 0);
    cr_assert_eq(pool.nfree, 4);
    cr_assert_eq(b.n, 0);
    cr_assert_eq(b.base, 4 * C);
    /* Releasing far past the stored slots moves the mark all the same. */
    rudp_buf_release_below(&b, 10 * C + 3);
    cr_assert_eq(b.base, 10 * C);
    rudp_buf_release_below(&b, 5 * C); /* backwards: no-op */
    cr_assert_eq(b.base, 10 * C);
    rudp_buf_free(&b);
    rudp_chunk_pool_free(&pool);
    free(data);
}

Test(buf, write_below_release_mark_fails) {
    rudp_chunk_pool pool;
    rudp_buf b;
    rudp_chunk_pool_init(&pool, 8);
    rudp_buf_init(&b, &pool);
    uint8_t data[64];
    test_fill_pattern(data, sizeof(data), 8);
    cr_assert_eq(rudp_buf_write(&b, 2 * C - 32, data, sizeof(data)), RUDP_OK);
    rudp_buf_release_below(&b, 2 * C);
    cr_assert_eq(rudp_buf_chunks(&b), 1);
    cr_assert_eq(rudp_buf_write(&b, 2 * C - 1, data, 2), RUDP_ERR_INVAL);
    cr_assert_eq(rudp_buf_write(&b, 0, data, 1), RUDP_ERR_INVAL);
    cr_assert_eq(rudp_buf_chunks(&b), 1);
    cr_assert_eq(pool.in_use, 1);
    cr_assert_eq(rudp_buf_write(&b, 2 * C, data, sizeof(data)), RUDP_OK);
    expect_bytes(&b, 2 * C, data, sizeof(data));
    cr_assert_eq(rudp_buf_write(&b, UINT64_MAX - 10, data, 20), RUDP_ERR_INVAL);
    rudp_buf_free(&b);
    cr_assert_eq(pool.in_use, 0);
    rudp_chunk_pool_free(&pool);
}

Test(buf, reserve_across_a_chunk_boundary) {
    /* [C-100, C+200) is two iovecs, in order, covering exactly the range,
     * and bytes written through them read back. */
    rudp_chunk_pool pool;
    rudp_buf b;
    rudp_chunk_pool_init(&pool, 8);
    rudp_buf_init(&b, &pool);
    struct iovec iov[4];
    uint8_t data[300];
    test_fill_pattern(data, sizeof(data), 9);
    cr_assert_eq(rudp_buf_reserve(&b, C - 100, 300, iov, 4), 2);
    cr_assert_eq(rudp_buf_chunks(&b), 2);
    cr_assert_eq(pool.in_use, 2);
    cr_assert_eq(iov[0].iov_base, b.chunks[0] + C - 100);
    cr_assert_eq(iov[0].iov_len, 100);
    cr_assert_eq(iov[1].iov_base, b.chunks[1]);
    cr_assert_eq(iov[1].iov_len, 200);
    cr_assert_eq(test_iov_fill(iov, 2, data, sizeof(data)), sizeof(data));
    expect_bytes(&b, C - 100, data, sizeof(data));
    /* Starting on a boundary, one whole chunk is one iovec. */
    cr_assert_eq(rudp_buf_reserve(&b, C, C, iov, 4), 1);
    cr_assert_eq(iov[0].iov_base, b.chunks[1]);
    cr_assert_eq(iov[0].iov_len, C);
    rudp_buf_free(&b);
    cr_assert_eq(pool.in_use, 0);
    rudp_chunk_pool_free(&pool);
}

Test(buf, reserve_bounded_by_max_iovecs) {
    /* |max| caps the iovecs, and so the bytes and the chunks taken. */
    rudp_chunk_pool pool;
    rudp_buf b;
    rudp_chunk_pool_init(&pool, 8);
    rudp_buf_init(&b, &pool);
    struct iovec iov[4];
    cr_assert_eq(rudp_buf_reserve(&b, C - 100, 3 * C, iov, 0), 0);
    cr_assert_eq(rudp_buf_chunks(&b), 0);
    cr_assert_eq(rudp_buf_reserve(&b, C - 100, 3 * C, iov, 1), 1);
    cr_assert_eq(iov[0].iov_len, 100);
    cr_assert_eq(rudp_buf_chunks(&b), 1);
    cr_assert_eq(rudp_buf_reserve(&b, C - 100, 3 * C, iov, 2), 2);
    cr_assert_eq(test_iov_len(iov, 2), C + 100);
    cr_assert_eq(rudp_buf_chunks(&b), 2);
    cr_assert_eq(pool.in_use, 2);
    rudp_buf_free(&b);
    cr_assert_eq(pool.in_use, 0);
    rudp_chunk_pool_free(&pool);
}

Test(buf, reserve_keeps_bytes_already_stored) {
    /* Reserving the tail of a chunk that holds bytes uses that chunk. */
    rudp_chunk_pool pool;
    rudp_buf b;
    rudp_chunk_pool_init(&pool, 8);
    rudp_buf_init(&b, &pool);
    struct iovec iov[2];
    uint8_t data[20];
    test_fill_pattern(data, sizeof(data), 10);
    cr_assert_eq(rudp_buf_write(&b, 0, data, 10), RUDP_OK);
    cr_assert_eq(rudp_buf_reserve(&b, 10, 10, iov, 2), 1);
    cr_assert_eq(iov[0].iov_base, b.chunks[0] + 10);
    cr_assert_eq(pool.in_use, 1);
    test_iov_fill(iov, 1, data + 10, 10);
    expect_bytes(&b, 0, data, sizeof(data));
    rudp_buf_free(&b);
    rudp_chunk_pool_free(&pool);
}

Test(buf, reserve_below_release_mark_fails) {
    /* Like a write: below the released mark (or overflowing) is refused and
     * takes nothing. */
    rudp_chunk_pool pool;
    rudp_buf b;
    rudp_chunk_pool_init(&pool, 8);
    rudp_buf_init(&b, &pool);
    struct iovec iov[2];
    uint8_t data[64];
    test_fill_pattern(data, sizeof(data), 11);
    cr_assert_eq(rudp_buf_write(&b, 2 * C - 32, data, sizeof(data)), RUDP_OK);
    rudp_buf_release_below(&b, 2 * C);
    cr_assert_eq(rudp_buf_reserve(&b, 2 * C - 1, 2, iov, 2), RUDP_ERR_INVAL);
    cr_assert_eq(rudp_buf_reserve(&b, 0, 1, iov, 2), RUDP_ERR_INVAL);
    cr_assert_eq(rudp_buf_reserve(&b, UINT64_MAX - 10, 20, iov, 2), RUDP_ERR_INVAL);
    cr_assert_eq(rudp_buf_chunks(&b), 1);
    cr_assert_eq(pool.in_use, 1);
    cr_assert_eq(rudp_buf_reserve(&b, 2 * C + 32, 10, iov, 2), 1);
    cr_assert_eq(iov[0].iov_base, b.chunks[0] + 32);
    rudp_buf_free(&b);
    cr_assert_eq(pool.in_use, 0);
    rudp_chunk_pool_free(&pool);
}

Test(buf, unused_reservation_goes_back_on_drop_and_free) {
    /* Chunks reserved but never filled return with rudp_buf_drop at the
     * caller's end of data, and with rudp_buf_free. */
    rudp_chunk_pool pool;
    rudp_buf b;
    rudp_chunk_pool_init(&pool, 8);
    rudp_buf_init(&b, &pool);
    struct iovec iov[4];
    uint8_t data[150];
    test_fill_pattern(data, sizeof(data), 12);
    cr_assert_eq(rudp_buf_write(&b, 0, data, 100), RUDP_OK);
    cr_assert_eq(rudp_buf_reserve(&b, 100, 3 * C, iov, 4), 4);
    cr_assert_eq(rudp_buf_chunks(&b), 4);
    cr_assert_eq(pool.in_use, 4);
    test_iov_fill(iov, 4, data + 100, 50); /* the caller used 50 bytes */
    expect_bytes(&b, 0, data, 150);
    rudp_buf_drop(&b, 150);
    cr_assert_eq(rudp_buf_chunks(&b), 0);
    cr_assert_eq(pool.in_use, 0);
    cr_assert_eq(rudp_buf_reserve(&b, 150, 2 * C, iov, 4), 3);
    cr_assert_eq(pool.in_use, 3);
    rudp_buf_free(&b);
    cr_assert_eq(pool.in_use, 0);
    cr_assert_eq(pool.nfree, 4);
    rudp_chunk_pool_free(&pool);
}

Test(buf, pool_max_free_honoured) {
    rudp_chunk_pool pool;
    void *c[5];
    rudp_chunk_pool_init(&pool, 2);
    for (int i = 0; i < 5; i++) {
        c[i] = rudp_chunk_get(&pool);
        cr_assert_not_null(c[i]);
        memset(c[i], i, C); /* the whole chunk is writable */
    }
    cr_assert_eq(pool.in_use, 5);
    cr_assert_eq(pool.nfree, 0);
    for (int i = 0; i < 5; i++)
        rudp_chunk_put(&pool, c[i]);
    cr_assert_eq(pool.in_use, 0);
    cr_assert_eq(pool.nfree, 2);
    /* The two spares are handed out again, most recent first. */
    cr_assert_eq(rudp_chunk_get(&pool), c[1]);
    cr_assert_eq(rudp_chunk_get(&pool), c[0]);
    cr_assert_eq(pool.nfree, 0);
    cr_assert_eq(pool.in_use, 2);
    rudp_chunk_put(&pool, c[0]);
    rudp_chunk_put(&pool, c[1]);
    rudp_chunk_put(&pool, NULL);
    cr_assert_eq(pool.in_use, 0);
    cr_assert_eq(pool.nfree, 2);
    rudp_chunk_pool_free(&pool);
    cr_assert_eq(pool.nfree, 0);
}

Test(buf, pool_trim_gives_back_idle_spares) {
    rudp_chunk_pool pool;
    void *c[6];
    rudp_chunk_pool_init(&pool, 8);
    for (int i = 0; i < 6; i++)
        c[i] = rudp_chunk_get(&pool);
    for (int i = 0; i < 6; i++)
        rudp_chunk_put(&pool, c[i]);
    cr_assert_eq(pool.nfree, 6);
    rudp_chunk_pool_trim(&pool); /* none idle a whole period yet */
    cr_assert_eq(pool.nfree, 6);
    /* Two spares cycle (taken and put back); the four below them idle. */
    for (int round = 0; round < 3; round++) {
        void *a = rudp_chunk_get(&pool), *b = rudp_chunk_get(&pool);
        rudp_chunk_put(&pool, b);
        rudp_chunk_put(&pool, a);
    }
    rudp_chunk_pool_trim(&pool);
    cr_assert_eq(pool.nfree, 2, "the busy spares stay, the idle ones go");
    cr_assert_eq(rudp_chunk_get(&pool), c[5]);
    rudp_chunk_put(&pool, c[5]);
    rudp_chunk_pool_trim(&pool);
    rudp_chunk_pool_trim(&pool); /* an idle pool empties */
    cr_assert_eq(pool.nfree, 0);
    cr_assert_eq(pool.in_use, 0);
    rudp_chunk_pool_free(&pool);
}

Test(buf, pool_without_spares) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 0);
    void *c = rudp_chunk_get(&pool);
    cr_assert_not_null(c);
    cr_assert_eq(pool.in_use, 1);
    rudp_chunk_put(&pool, c);
    cr_assert_eq(pool.in_use, 0);
    cr_assert_eq(pool.nfree, 0);
    rudp_chunk_pool_free(&pool);
}

Test(buf, long_stream_stays_bounded) {
    enum { SEG = 1200, WINDOW = 256 * 1024 };
    const uint64_t total = 64ull << 20;
    const uint32_t window_chunks = WINDOW / C + 2;
    rudp_chunk_pool pool;
    rudp_buf b;
    rudp_chunk_pool_init(&pool, 32);
    rudp_buf_init(&b, &pool);
    uint8_t seg[SEG], got[SEG];
    uint64_t released = 0, warm_total = 0;
    for (uint64_t off = 0; off < total; off += SEG) {
        for (size_t i = 0; i < SEG; i++)
            seg[i] = stream_byte(off + i);
        cr_assert_eq(rudp_buf_write(&b, off, seg, SEG), RUDP_OK);
        uint64_t end = off + SEG;
        if (end - released <= WINDOW)
            continue;
        /* Check the oldest segment's bytes, then release them. */
        rudp_buf_read(&b, released, got, SEG);
        for (size_t i = 0; i < SEG; i++)
            seg[i] = stream_byte(released + i);
        cr_assert(memcmp(got, seg, SEG) == 0, "bytes at %llu differ",
                  (unsigned long long)released);
        released += SEG;
        rudp_buf_release_below(&b, released);
        cr_assert_leq(b.n, window_chunks);
        cr_assert_leq(pool.in_use, window_chunks);
        if (off >= total / 2 && warm_total == 0)
            warm_total = pool.in_use + pool.nfree;
        if (warm_total != 0) /* no chunk malloc'd or freed once warm */
            cr_assert_eq(pool.in_use + pool.nfree, warm_total);
    }
    cr_assert_geq(b.base, total - WINDOW - C);
    cr_assert_leq(b.cap, 32, "slot array grew to %u", b.cap);
    rudp_buf_release_below(&b, total + C); /* past the last written chunk */
    cr_assert_eq(rudp_buf_chunks(&b), 0);
    cr_assert_eq(pool.in_use, 0);
    cr_assert_eq(b.n, 0);
    cr_assert_leq(b.cap, 32); /* an idle buffer keeps its small array */
    rudp_buf_free(&b);
    rudp_chunk_pool_free(&pool);
}
