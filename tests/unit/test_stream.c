/*
 * test_stream.c — unit tests for engine/stream.c, at the struct level.
 *
 * Each test builds one or two rudp_stream records on a chunk pool of its own
 * and drives them through the functions of stream.h, setting by hand only
 * what the session sets (send_state on shutdown, connected on the peer's ACK
 * flag, rst_pending/rst_acked when the RST is written and acknowledged), and
 * checks that every chunk is back in the pool at the end.
 *
 * Send half: the buffer limit and the state checks, for copies and for
 * in-place appends (reserve and commit), frame selection bounded by
 * the stream limit, the session room and max_len, the SYN/ACK/FIN flags,
 * commit accounting, retransmission of lost ranges minus what was
 * acknowledged meanwhile, snd_una and chunk release on acknowledgement, the
 * FIN's and the open flag's loss and acknowledgement, and send_wants.
 * Receive half: reassembly in any order, duplicates and overlaps, the ready
 * prefix, EOF, flow control, final-size violations, *grew, discard.  Abort
 * and the peer's RST.  The derived state in every life-cycle state.  Last, a
 * property test: a sender and a receiver joined by a lossy, reordering,
 * duplicating link of frames, for a few MB per seed, on twenty seeds.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "stream.h"
#include "wire.h"

#define SYN RUDP_FLAG_SYN
#define ACK RUDP_FLAG_ACK
#define FIN RUDP_FLAG_FIN
#define BIG UINT64_MAX
#define WIN (1u << 20)
#define C RUDP_CHUNK_SIZE

/* --- fixtures --- */

/* Initialises |st| as the opener (|local|) or the acceptor of a stream on
 * |pool|, with the peer's window |snd_limit| and our receive window |win|. */
static void setup(rudp_stream *st, rudp_chunk_pool *pool, bool local, uint64_t snd_limit,
                  uint64_t win) {
    rudp_stream_init(st, local ? 1 : 2, local, pool, snd_limit, win, win, 0);
}

/* Frees |st|, asserts every chunk went back to |pool|, and frees the pool. */
static void teardown(rudp_stream *st, rudp_chunk_pool *pool) {
    rudp_stream_free(st);
    cr_assert_eq(pool->in_use, 0, "%llu chunks leaked", (unsigned long long)pool->in_use);
    rudp_chunk_pool_free(pool);
}

/* Returns a malloc'ed pattern of |len| bytes. */
static uint8_t *pattern(size_t len, uint64_t seed) {
    uint8_t *p = malloc(len);
    cr_assert_not_null(p);
    test_fill_pattern(p, len, seed);
    return p;
}

/* Appends |len| bytes, asserting all are taken. */
static void write_all(rudp_stream *st, const uint8_t *data, size_t len) {
    cr_assert_eq(rudp_stream_send_append(st, data, len, BIG), (ssize_t)len);
}

/* Asserts that send_next offers [off, off+len) with exactly |flags|, and that
 * the buffer holds |pat| there, then commits the frame and returns what
 * commit returned. */
static uint64_t expect_frame(int line, rudp_stream *st, uint64_t room, size_t max,
                             uint64_t off, size_t len, uint8_t flags, const uint8_t *pat) {
    uint64_t o = 0xdead;
    size_t l = 0xdead;
    uint8_t f = 0xff;
    cr_assert(rudp_stream_send_next(st, room, max, &o, &l, &f), "line %d: no frame", line);
    cr_assert_eq(o, off, "line %d: off %llu, want %llu", line, (unsigned long long)o,
                 (unsigned long long)off);
    cr_assert_eq(l, len, "line %d: len %zu, want %zu", line, l, len);
    cr_assert_eq(f, flags, "line %d: flags %#x, want %#x", line, f, flags);
    if (pat && len > 0) {
        uint8_t *got = malloc(len);
        rudp_buf_read(&st->sbuf, off, got, len);
        cr_assert(memcmp(got, pat + off, len) == 0, "line %d: buffer bytes differ", line);
        free(got);
    }
    return rudp_stream_send_commit(st, o, l, f);
}
#define EXPECT_FRAME(st, room, max, off, len, flags, pat)                                  \
    expect_frame(__LINE__, st, room, max, off, len, flags, pat)

/* Asserts that send_next offers nothing. */
static void expect_no_frame(int line, rudp_stream *st, uint64_t room, size_t max) {
    uint64_t o;
    size_t l;
    uint8_t f;
    cr_assert_not(rudp_stream_send_next(st, room, max, &o, &l, &f),
                  "line %d: unexpected frame off %llu len %zu flags %#x", line,
                  (unsigned long long)o, l, f);
}
#define EXPECT_NO_FRAME(st, room, max) expect_no_frame(__LINE__, st, room, max)

/* Delivers pattern bytes [off, off+len) (with FIN if |fin|), asserts the
 * result is |want| and returns *grew. */
static uint64_t deliver(int line, rudp_stream *st, const uint8_t *pat, uint64_t off,
                        size_t len, bool fin, int want) {
    uint64_t grew = 0xdead;
    int rv = rudp_stream_recv_data(st, off, pat + off, len, fin, &grew);
    cr_assert_eq(rv, want, "line %d: recv_data [%llu,+%zu) = %d, want %d", line,
                 (unsigned long long)off, len, rv, want);
    return grew;
}
#define DELIVER(st, pat, off, len, fin, want)                                              \
    deliver(__LINE__, st, pat, off, len, fin, want)

/* Reads exactly |n| bytes (in one call with a buffer of |n|) and asserts they
 * are the pattern at the read offset. */
static void read_exact(int line, rudp_stream *st, const uint8_t *pat, size_t n) {
    uint8_t *got = malloc(n);
    uint64_t at = st->rcv_read;
    ssize_t r = rudp_stream_recv_read(st, got, n);
    cr_assert_eq(r, (ssize_t)n, "line %d: read %zd, want %zu", line, r, n);
    cr_assert(memcmp(got, pat + at, n) == 0, "line %d: bytes at %llu differ", line,
              (unsigned long long)at);
    free(got);
}
#define READ_EXACT(st, pat, n) read_exact(__LINE__, st, pat, n)

/* Returns what recv_read returns for a 16-byte buffer. */
static ssize_t read_small(rudp_stream *st) {
    uint8_t tmp[16];
    return rudp_stream_recv_read(st, tmp, sizeof(tmp));
}

/* --- send half: writes --- */

Test(stream, append_bounded_by_buffer_limit) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, true, BIG, WIN);
    uint8_t *pat = pattern(5000, 1);

    cr_assert_eq(rudp_stream_send_append(&st, pat, 600, 1000), 600);
    cr_assert_eq(rudp_stream_send_append(&st, pat + 600, 600, 1000), 400);
    cr_assert_eq(rudp_stream_send_append(&st, pat + 1000, 1, 1000), RUDP_ERR_WOULDBLOCK);
    cr_assert_eq(st.snd_written, 1000);
    /* Sending frees room: the limit is on bytes not yet sent, and what is
     * held in all (in flight too) stops at RUDP_SEND_HELD_FACTOR times it. */
    for (uint64_t off = 0; off < 3000; off += 1000) {
        cr_assert_eq(EXPECT_FRAME(&st, BIG, 5000, off, 1000, off ? 0 : SYN, pat), 1000);
        cr_assert_eq(rudp_stream_send_append(&st, pat + off + 1000, 2000, 1000), 1000);
    }
    cr_assert_eq(EXPECT_FRAME(&st, BIG, 5000, 3000, 1000, 0, pat), 1000);
    cr_assert_eq(st.snd_written - st.snd_una, RUDP_SEND_HELD_FACTOR * 1000);
    cr_assert_eq(rudp_stream_send_append(&st, pat + 4000, 1, 1000), RUDP_ERR_WOULDBLOCK);
    /* Then acknowledging frees room. */
    rudp_stream_on_data_acked(&st, 0, 300, 0);
    cr_assert_eq(st.snd_una, 300);
    cr_assert_eq(rudp_stream_send_append(&st, pat + 4000, 500, 1000), 300);
    cr_assert_eq(rudp_stream_send_append(&st, pat + 4300, 1, 1000), RUDP_ERR_WOULDBLOCK);
    /* A smaller limit than what is queued blocks too. */
    cr_assert_eq(rudp_stream_send_append(&st, pat + 4300, 1, 10), RUDP_ERR_WOULDBLOCK);
    cr_assert_eq(st.snd_written, 4300);
    cr_assert_eq(EXPECT_FRAME(&st, BIG, 5000, 4000, 300, 0, pat), 300);
    free(pat);
    teardown(&st, &pool);
}

Test(stream, append_refused_after_fin_queued) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, true, BIG, WIN);
    uint8_t d[10] = {0};
    write_all(&st, d, 10);
    st.send_state = RUDP_SEND_FIN_QUEUED; /* what rudp_stream_shutdown_write does */
    cr_assert_eq(rudp_stream_send_append(&st, d, 10, BIG), RUDP_ERR_STREAM_STATE);
    cr_assert_eq(st.snd_written, 10);
    EXPECT_FRAME(&st, BIG, 100, 0, 10, SYN | FIN, d);
    rudp_stream_on_data_acked(&st, 0, 10, SYN | FIN);
    cr_assert_eq(st.send_state, RUDP_SEND_DONE);
    cr_assert_eq(rudp_stream_send_append(&st, d, 10, BIG), RUDP_ERR_STREAM_STATE);
    teardown(&st, &pool);
}

Test(stream, reserve_bounded_by_buffer_limit) {
    /* In-place appends obey the buffer limit as copies do: 0 iovecs when
     * full, room again once bytes are sent; the committed bytes go out as
     * written through the iovecs. */
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, true, BIG, WIN);
    uint8_t *pat = pattern(2000, 13);
    struct iovec iov[4];
    cr_assert_eq(rudp_stream_append_reserve(&st, 600, 1000, iov, 4), 1);
    cr_assert_eq(iov[0].iov_len, 600);
    test_iov_fill(iov, 1, pat, 600);
    rudp_stream_append_commit(&st, 600);
    cr_assert_eq(st.snd_written, 600);
    cr_assert_eq(rudp_stream_append_reserve(&st, 600, 1000, iov, 4), 1);
    cr_assert_eq(iov[0].iov_len, 400);
    test_iov_fill(iov, 1, pat + 600, 400);
    rudp_stream_append_commit(&st, 400);
    cr_assert_eq(rudp_stream_append_reserve(&st, 1, 1000, iov, 4), RUDP_ERR_WOULDBLOCK);
    cr_assert_eq(EXPECT_FRAME(&st, BIG, 5000, 0, 1000, SYN, pat), 1000);
    cr_assert_eq(rudp_stream_append_reserve(&st, 500, 1000, iov, 4), 1);
    cr_assert_eq(iov[0].iov_len, 500);
    free(pat);
    teardown(&st, &pool);
}

Test(stream, commit_checks_the_reservation) {
    /* A commit beyond what was reserved, or with no reservation, queues
     * nothing (RUDP_ERR_INVAL); one after the write side was shut queues
     * nothing either (RUDP_ERR_STREAM_STATE); the unused chunks go back. */
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, true, BIG, WIN);
    struct iovec iov[4];
    cr_assert_eq(rudp_stream_append_commit(&st, 1), RUDP_ERR_INVAL);
    cr_assert_eq(rudp_stream_append_reserve(&st, 100, 1000, iov, 4), 1);
    cr_assert_eq(rudp_stream_append_commit(&st, 101), RUDP_ERR_INVAL);
    cr_assert_eq(st.snd_written, 0);
    cr_assert_eq(rudp_buf_chunks(&st.sbuf), 0);
    cr_assert_eq(rudp_stream_append_reserve(&st, 100, 1000, iov, 4), 1);
    st.send_state = RUDP_SEND_FIN_QUEUED; /* shutdown_write in between */
    cr_assert_eq(rudp_stream_append_commit(&st, 100), RUDP_ERR_STREAM_STATE);
    cr_assert_eq(st.snd_written, 0);
    cr_assert_eq(rudp_buf_chunks(&st.sbuf), 0);
    cr_assert_eq(rudp_stream_append_reserve(&st, 0, 1000, iov, 4), RUDP_ERR_INVAL);
    teardown(&st, &pool);
}

Test(stream, commit_returns_unused_chunks) {
    /* A reservation over three chunks of which one byte is committed keeps
     * only the chunk that byte is in. */
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, true, BIG, WIN);
    struct iovec iov[4];
    cr_assert_eq(rudp_stream_append_reserve(&st, 3 * RUDP_CHUNK_SIZE, BIG, iov, 4), 3);
    cr_assert_eq(rudp_buf_chunks(&st.sbuf), 3);
    memset(iov[0].iov_base, 'x', 1);
    cr_assert_eq(rudp_stream_append_commit(&st, 1), RUDP_OK);
    cr_assert_eq(st.snd_written, 1);
    cr_assert_eq(rudp_buf_chunks(&st.sbuf), 1);
    cr_assert_eq(pool.in_use, 1);
    teardown(&st, &pool);
}

Test(stream, partial_commit_queues_only_the_prefix) {
    /* Committing 40 of 100 reserved bytes queues those 40; the next append
     * lands right after them, over the unused space. */
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, true, BIG, WIN);
    uint8_t *pat = pattern(100, 14);
    struct iovec iov[2];
    cr_assert_eq(rudp_stream_append_reserve(&st, 100, BIG, iov, 2), 1);
    cr_assert_eq(iov[0].iov_len, 100);
    memset(iov[0].iov_base, 0xee, 100);
    memcpy(iov[0].iov_base, pat, 40);
    rudp_stream_append_commit(&st, 40);
    cr_assert_eq(st.snd_written, 40);
    write_all(&st, pat + 40, 60);
    cr_assert_eq(st.snd_written, 100);
    cr_assert_eq(pool.in_use, 1);
    EXPECT_FRAME(&st, BIG, 1000, 0, 100, SYN, pat);
    free(pat);
    teardown(&st, &pool);
}

Test(stream, reserve_refused_after_shutdown_and_reset) {
    /* A shut send half gives RUDP_ERR_STREAM_STATE, an aborted one its
     * error; neither takes a chunk. */
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st, rs;
    setup(&st, &pool, true, BIG, WIN);
    setup(&rs, &pool, true, BIG, WIN);
    struct iovec iov[2];
    st.send_state = RUDP_SEND_FIN_QUEUED; /* what rudp_stream_shutdown_write does */
    cr_assert_eq(rudp_stream_append_reserve(&st, 10, BIG, iov, 2), RUDP_ERR_STREAM_STATE);
    rudp_stream_abort(&rs, 0, RUDP_ERR_CLOSED);
    cr_assert_eq(rudp_stream_append_reserve(&rs, 10, BIG, iov, 2), RUDP_ERR_CLOSED);
    cr_assert_eq(pool.in_use, 0);
    rudp_stream_free(&rs);
    teardown(&st, &pool);
}

/* --- send half: frame selection and flags --- */

Test(stream, opener_first_frame_carries_syn) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, true, BIG, WIN);
    uint8_t *pat = pattern(200, 2);
    write_all(&st, pat, 100);
    cr_assert(st.open_pending);
    cr_assert_eq(EXPECT_FRAME(&st, BIG, 1000, 0, 100, SYN, pat), 100);
    cr_assert_eq(st.snd_next, 100);
    cr_assert_not(st.open_pending);
    write_all(&st, pat + 100, 50);
    cr_assert_eq(EXPECT_FRAME(&st, BIG, 1000, 100, 50, 0, pat), 50);
    cr_assert_eq(st.snd_next, 150);
    EXPECT_NO_FRAME(&st, BIG, 1000);
    free(pat);
    teardown(&st, &pool);
}

Test(stream, acceptor_first_frame_carries_ack) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, false, BIG, WIN);
    uint8_t *pat = pattern(200, 3);
    write_all(&st, pat, 100);
    cr_assert_eq(EXPECT_FRAME(&st, BIG, 1000, 0, 100, ACK, pat), 100);
    cr_assert_not(st.open_pending);
    /* The next frame carries no SYN or FIN.  (Whether it repeats ACK is left
     * open: stream.c sets it only at offset 0 or when re-armed by a loss,
     * docs/PROTOCOL.md says "on its frames until ... acknowledged".) */
    write_all(&st, pat + 100, 50);
    uint64_t off;
    size_t len;
    uint8_t flags;
    cr_assert(rudp_stream_send_next(&st, BIG, 1000, &off, &len, &flags));
    cr_assert_eq(off, 100);
    cr_assert_eq(len, 50);
    cr_assert_eq(flags & (SYN | FIN), 0);
    cr_assert_eq(rudp_stream_send_commit(&st, off, len, flags), 50);
    rudp_stream_on_data_acked(&st, 0, 100, ACK);
    cr_assert(st.open_acked);
    /* Acknowledged: a loss re-arms no ACK flag, and none is sent again. */
    rudp_stream_on_data_lost(&st, 100, 50, flags | ACK);
    cr_assert_not(st.open_pending);
    EXPECT_FRAME(&st, BIG, 1000, 100, 50, 0, pat);
    free(pat);
    teardown(&st, &pool);
}

Test(stream, zero_length_frame_only_when_due) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream op, ac;
    setup(&op, &pool, true, BIG, WIN);
    setup(&ac, &pool, false, BIG, WIN);

    /* The opener announces an empty stream with a bare SYN, once. */
    cr_assert(rudp_stream_send_wants(&op, BIG));
    cr_assert_eq(EXPECT_FRAME(&op, BIG, 1000, 0, 0, SYN, NULL), 0);
    cr_assert_eq(op.snd_next, 0);
    EXPECT_NO_FRAME(&op, BIG, 1000);
    cr_assert_not(rudp_stream_send_wants(&op, BIG));

    /* The acceptor's ACK frame is available from send_next, once; send_wants
     * does not ask for it (it is lazy: the session's lazy list sends it). */
    cr_assert_not(rudp_stream_send_wants(&ac, BIG));
    cr_assert_eq(EXPECT_FRAME(&ac, BIG, 1000, 0, 0, ACK, NULL), 0);
    EXPECT_NO_FRAME(&ac, BIG, 1000);

    /* A FIN on an empty, announced stream: one bare FIN, once (at offset 0,
     * so with SYN again until the SYN is acknowledged). */
    op.send_state = RUDP_SEND_FIN_QUEUED;
    cr_assert(rudp_stream_send_wants(&op, BIG));
    cr_assert(rudp_stream_send_wants(&op, 0)); /* a FIN needs no credit */
    cr_assert_eq(EXPECT_FRAME(&op, 0, 1000, 0, 0, SYN | FIN, NULL), 0);
    cr_assert(op.fin_sent);
    EXPECT_NO_FRAME(&op, BIG, 1000);
    cr_assert_not(rudp_stream_send_wants(&op, BIG));

    /* Nothing written, nothing pending: nothing offered, whatever the room. */
    EXPECT_NO_FRAME(&ac, BIG, 1000);
    EXPECT_NO_FRAME(&ac, 0, 1000);
    rudp_stream_free(&ac);
    teardown(&op, &pool);
}

Test(stream, new_bytes_bounded_by_limit_room_and_max_len) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, true, 3000, WIN);
    uint8_t *pat = pattern(10000, 4);
    write_all(&st, pat, 10000);

    /* Each bound in turn is the smallest. */
    cr_assert_eq(EXPECT_FRAME(&st, 1234, 100000, 0, 1234, SYN, pat), 1234); /* room */
    cr_assert_eq(EXPECT_FRAME(&st, BIG, 500, 1234, 500, 0, pat), 500);      /* max_len */
    cr_assert_eq(EXPECT_FRAME(&st, BIG, 100000, 1734, 1266, 0, pat),
                 1266); /* stream limit */
    cr_assert_eq(st.snd_next, 3000);
    EXPECT_NO_FRAME(&st, BIG, 100000);
    cr_assert_not(rudp_stream_send_wants(&st, BIG));

    /* The peer's WINDOW_UPDATE (the session raises snd_limit). */
    st.snd_limit = 3100;
    cr_assert(rudp_stream_send_wants(&st, BIG));
    cr_assert_not(rudp_stream_send_wants(&st, 0));
    EXPECT_NO_FRAME(&st, 0, 100000);
    cr_assert_eq(EXPECT_FRAME(&st, 1, 100000, 3000, 1, 0, pat), 1);
    cr_assert_eq(EXPECT_FRAME(&st, BIG, 100000, 3001, 99, 0, pat), 99);
    EXPECT_NO_FRAME(&st, BIG, 100000);

    /* Bounded by what was written. */
    st.snd_limit = 20000;
    cr_assert_eq(EXPECT_FRAME(&st, BIG, 100000, 3100, 6900, 0, pat), 6900);
    cr_assert_eq(st.snd_next, 10000);
    EXPECT_NO_FRAME(&st, BIG, 100000);
    cr_assert_not(rudp_stream_send_wants(&st, BIG));
    free(pat);
    teardown(&st, &pool);
}

Test(stream, fin_on_the_frame_ending_at_snd_written) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, true, 500, WIN);
    uint8_t *pat = pattern(1000, 5);
    write_all(&st, pat, 1000);
    st.send_state = RUDP_SEND_FIN_QUEUED;

    /* Blocked by the stream limit short of the end: no FIN. */
    EXPECT_FRAME(&st, BIG, 400, 0, 400, SYN, pat);
    EXPECT_FRAME(&st, BIG, 400, 400, 100, 0, pat);
    cr_assert_not(st.fin_sent);
    EXPECT_NO_FRAME(&st, BIG, 400);
    cr_assert_not(rudp_stream_send_wants(&st, BIG));
    st.snd_limit = 2000;
    EXPECT_FRAME(&st, BIG, 400, 500, 400, 0, pat);
    cr_assert_not(st.fin_sent);
    /* Blocked by max_len one byte short of the end: no FIN either. */
    EXPECT_FRAME(&st, BIG, 99, 900, 99, 0, pat);
    EXPECT_FRAME(&st, BIG, 400, 999, 1, FIN, pat);
    cr_assert(st.fin_sent);
    EXPECT_NO_FRAME(&st, BIG, 400);
    cr_assert_not(rudp_stream_send_wants(&st, BIG));
    free(pat);
    teardown(&st, &pool);
}

Test(stream, fin_alone_after_the_data) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, true, BIG, WIN);
    uint8_t *pat = pattern(100, 6);
    write_all(&st, pat, 100);
    EXPECT_FRAME(&st, BIG, 1000, 0, 100, SYN, pat);
    cr_assert_not(rudp_stream_send_wants(&st, BIG));
    st.send_state = RUDP_SEND_FIN_QUEUED;
    cr_assert(rudp_stream_send_wants(&st, 0));
    cr_assert_eq(EXPECT_FRAME(&st, 0, 1000, 100, 0, FIN, NULL), 0);
    cr_assert_eq(st.snd_next, 100);
    EXPECT_NO_FRAME(&st, BIG, 1000);
    rudp_stream_on_data_acked(&st, 0, 100, SYN);
    cr_assert_eq(st.send_state, RUDP_SEND_FIN_QUEUED);
    cr_assert_not(rudp_stream_send_finished(&st));
    rudp_stream_on_data_acked(&st, 100, 0, FIN);
    cr_assert_eq(st.send_state, RUDP_SEND_DONE);
    cr_assert(rudp_stream_send_finished(&st));
    free(pat);
    teardown(&st, &pool);
}

Test(stream, commit_counts_never_sent_bytes) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, true, BIG, WIN);
    uint8_t *pat = pattern(3000, 7);
    write_all(&st, pat, 3000);
    cr_assert_eq(EXPECT_FRAME(&st, BIG, 1000, 0, 1000, SYN, pat), 1000);
    cr_assert_eq(EXPECT_FRAME(&st, BIG, 1000, 1000, 1000, 0, pat), 1000);
    cr_assert_eq(st.snd_next, 2000);
    rudp_stream_on_data_lost(&st, 1000, 1000, 0);
    cr_assert_eq(EXPECT_FRAME(&st, BIG, 1000, 1000, 1000, 0, pat), 0);
    cr_assert_eq(st.snd_next, 2000);
    cr_assert_eq(st.bytes_retransmitted, 1000);
    cr_assert_eq(EXPECT_FRAME(&st, BIG, 1000, 2000, 1000, 0, pat), 1000);
    cr_assert_eq(st.snd_next, 3000);
    cr_assert_eq(st.bytes_retransmitted, 1000);
    free(pat);
    teardown(&st, &pool);
}

/* --- send half: loss and acknowledgement --- */

Test(stream, lost_bytes_go_before_new_ones) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, true, 3000, WIN);
    uint8_t *pat = pattern(5000, 8);
    write_all(&st, pat, 5000);
    EXPECT_FRAME(&st, BIG, 1000, 0, 1000, SYN, pat);
    EXPECT_FRAME(&st, BIG, 1000, 1000, 1000, 0, pat);
    EXPECT_FRAME(&st, BIG, 1000, 2000, 1000, 0, pat);
    rudp_stream_on_data_acked(&st, 0, 1000, SYN);
    cr_assert(st.open_acked);
    cr_assert_not(rudp_stream_send_wants(&st, BIG)); /* at the stream limit */

    rudp_stream_on_data_lost(&st, 1000, 1000, 0);
    /* Retransmissions need no credit: the limit is reached, the room is 0. */
    cr_assert(rudp_stream_send_wants(&st, 0));
    st.snd_limit = 5000;
    EXPECT_FRAME(&st, 0, 300, 1000, 300, 0, pat); /* bounded by max_len */
    EXPECT_FRAME(&st, BIG, 5000, 1300, 700, 0, pat);
    cr_assert_eq(EXPECT_FRAME(&st, BIG, 5000, 3000, 2000, 0, pat), 2000);

    /* A lost range ending at snd_written carries the FIN once it is queued. */
    st.send_state = RUDP_SEND_FIN_QUEUED;
    cr_assert_eq(EXPECT_FRAME(&st, BIG, 5000, 5000, 0, FIN, NULL), 0);
    rudp_stream_on_data_lost(&st, 3000, 2000, 0);
    EXPECT_FRAME(&st, BIG, 5000, 3000, 2000, FIN, pat);
    /* A lost frame at offset 0 before the SYN is acknowledged carries SYN. */
    rudp_stream st2;
    setup(&st2, &pool, true, BIG, WIN);
    write_all(&st2, pat, 2000);
    EXPECT_FRAME(&st2, BIG, 1000, 0, 1000, SYN, pat);
    EXPECT_FRAME(&st2, BIG, 1000, 1000, 1000, 0, pat);
    rudp_stream_on_data_lost(&st2, 1000, 1000, 0);
    rudp_stream_on_data_lost(&st2, 0, 1000, SYN);
    EXPECT_FRAME(&st2, BIG, 5000, 0, 2000, SYN, pat); /* the two ranges merged */
    rudp_stream_free(&st2);
    free(pat);
    teardown(&st, &pool);
}

Test(stream, loss_never_requeues_acked_bytes) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, true, BIG, WIN);
    uint8_t *pat = pattern(5000, 9);
    write_all(&st, pat, 5000);
    EXPECT_FRAME(&st, BIG, 3000, 0, 3000, SYN, pat);
    rudp_stream_on_data_acked(&st, 1000, 500, 0);
    rudp_stream_on_data_acked(&st, 2800, 100, 0);
    cr_assert_eq(st.snd_una, 0);
    rudp_stream_on_data_lost(&st, 0, 3000, SYN);
    cr_assert_eq(st.snd_lost.n, 3);
    cr_assert_eq(st.snd_lost.v[0].start, 0);
    cr_assert_eq(st.snd_lost.v[0].end, 1000);
    cr_assert_eq(st.snd_lost.v[1].start, 1500);
    cr_assert_eq(st.snd_lost.v[1].end, 2800);
    cr_assert_eq(st.snd_lost.v[2].start, 2900);
    cr_assert_eq(st.snd_lost.v[2].end, 3000);
    EXPECT_FRAME(&st, BIG, 10000, 0, 1000, SYN, pat);
    EXPECT_FRAME(&st, BIG, 10000, 1500, 1300, 0, pat);
    EXPECT_FRAME(&st, BIG, 10000, 2900, 100, 0, pat);
    cr_assert_eq(st.bytes_retransmitted, 2400);

    /* An acknowledgement arriving while bytes wait to be resent cancels them. */
    rudp_stream_on_data_lost(&st, 0, 3000, 0);
    rudp_stream_on_data_acked(&st, 0, 1000, SYN);
    cr_assert_eq(st.snd_una, 1500);
    EXPECT_FRAME(&st, BIG, 10000, 1500, 1300, 0, pat);
    EXPECT_FRAME(&st, BIG, 10000, 2900, 100, 0, pat);
    /* Everything acknowledged: a late loss re-queues nothing. */
    rudp_stream_on_data_acked(&st, 0, 3000, 0);
    rudp_stream_on_data_lost(&st, 0, 3000, 0);
    cr_assert(rudp_ranges_empty(&st.snd_lost));
    cr_assert_eq(EXPECT_FRAME(&st, BIG, 10000, 3000, 2000, 0, pat), 2000);
    free(pat);
    teardown(&st, &pool);
}

Test(stream, loss_never_beyond_snd_next) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, true, BIG, WIN);
    uint8_t *pat = pattern(5000, 10);
    write_all(&st, pat, 5000);
    EXPECT_FRAME(&st, BIG, 2000, 0, 2000, SYN, pat);
    rudp_stream_on_data_lost(&st, 1000, 4000, 0);
    cr_assert_eq(st.snd_lost.n, 1);
    cr_assert_eq(st.snd_lost.v[0].start, 1000);
    cr_assert_eq(st.snd_lost.v[0].end, 2000);
    rudp_stream_on_data_lost(&st, 2500, 100, 0); /* wholly beyond */
    cr_assert_eq(st.snd_lost.n, 1);
    cr_assert_eq(st.snd_lost.v[0].end, 2000);
    EXPECT_FRAME(&st, BIG, 10000, 1000, 1000, 0, pat);
    cr_assert_eq(EXPECT_FRAME(&st, BIG, 10000, 2000, 3000, 0, pat), 3000);
    free(pat);
    teardown(&st, &pool);
}

Test(stream, ack_advances_una_over_prefix_and_frees_chunks) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, true, BIG, WIN);
    size_t n = 3 * C + 100;
    uint8_t *pat = pattern(n, 11);
    write_all(&st, pat, n);
    cr_assert_eq(pool.in_use, 4);
    EXPECT_FRAME(&st, BIG, C, 0, C, SYN, pat);
    EXPECT_FRAME(&st, BIG, C, C, C, 0, pat);
    EXPECT_FRAME(&st, BIG, C, 2 * C, C, 0, pat);
    EXPECT_FRAME(&st, BIG, C, 3 * C, 100, 0, pat);

    rudp_stream_on_data_acked(&st, C, C, 0); /* a hole at [0, C) */
    cr_assert_eq(st.snd_una, 0);
    cr_assert_eq(pool.in_use, 4);
    rudp_stream_on_data_acked(&st, 0, 100, SYN);
    cr_assert_eq(st.snd_una, 100);
    cr_assert_eq(pool.in_use, 4);
    rudp_stream_on_data_acked(&st, 100, C - 100, 0);
    cr_assert_eq(st.snd_una, 2 * C);
    cr_assert_eq(pool.in_use, 2);
    rudp_stream_on_data_acked(&st, 3 * C, 100, 0);
    cr_assert_eq(st.snd_una, 2 * C);
    cr_assert_eq(pool.in_use, 2);
    rudp_stream_on_data_acked(&st, 2 * C, C, 0);
    cr_assert_eq(st.snd_una, n);
    /* Everything written is acknowledged: the stream holds no chunk. */
    cr_assert_eq(pool.in_use, 0);
    /* A repeated acknowledgement changes nothing. */
    rudp_stream_on_data_acked(&st, 0, C, SYN);
    cr_assert_eq(st.snd_una, n);
    /* No FIN queued: not finished. */
    cr_assert_not(rudp_stream_send_finished(&st));
    cr_assert_eq(st.send_state, RUDP_SEND_OPEN);
    free(pat);
    teardown(&st, &pool);
}

/* buf.h: chunks go back "as soon as everything in them is released, so an
 * idle stream holds no chunk at all".  A send half with every written byte
 * acknowledged (or finished), and a receive half with every received byte
 * read, have nothing left to keep. */
Test(stream, idle_stream_holds_no_chunk) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, true, BIG, WIN);
    uint8_t *pat = pattern(100, 31);
    write_all(&st, pat, 100);
    EXPECT_FRAME(&st, BIG, 1000, 0, 100, SYN, pat);
    rudp_stream_on_data_acked(&st, 0, 100, SYN);
    cr_assert_eq(st.snd_una, st.snd_written);
    cr_expect_eq(pool.in_use, 0, "idle send half: %llu chunk(s) held",
                 (unsigned long long)pool.in_use);

    rudp_stream fin;
    setup(&fin, &pool, true, BIG, WIN);
    uint64_t before = pool.in_use;
    write_all(&fin, pat, 100);
    fin.send_state = RUDP_SEND_FIN_QUEUED;
    EXPECT_FRAME(&fin, BIG, 1000, 0, 100, SYN | FIN, pat);
    rudp_stream_on_data_acked(&fin, 0, 100, SYN | FIN);
    cr_assert_eq(fin.send_state, RUDP_SEND_DONE);
    cr_expect_eq(pool.in_use, before, "finished send half: %llu chunk(s) held",
                 (unsigned long long)(pool.in_use - before));

    rudp_stream rc;
    setup(&rc, &pool, false, BIG, WIN);
    before = pool.in_use;
    DELIVER(&rc, pat, 0, 100, false, RUDP_OK);
    READ_EXACT(&rc, pat, 100);
    cr_expect_eq(pool.in_use, before, "drained receive half: %llu chunk(s) held",
                 (unsigned long long)(pool.in_use - before));
    rudp_stream_free(&rc);
    rudp_stream_free(&fin);
    free(pat);
    teardown(&st, &pool);
}

Test(stream, fin_ack_with_all_data_finishes) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, true, BIG, WIN);
    uint8_t *pat = pattern(100, 12);
    write_all(&st, pat, 100);
    st.send_state = RUDP_SEND_FIN_QUEUED;
    EXPECT_FRAME(&st, BIG, 50, 0, 50, SYN, pat);
    EXPECT_FRAME(&st, BIG, 50, 50, 50, FIN, pat);
    /* The FIN is acknowledged before the first bytes: not done yet. */
    rudp_stream_on_data_acked(&st, 50, 50, FIN);
    cr_assert(st.fin_acked);
    cr_assert_eq(st.send_state, RUDP_SEND_FIN_QUEUED);
    cr_assert_not(rudp_stream_send_finished(&st));
    rudp_stream_on_data_acked(&st, 0, 50, SYN);
    cr_assert_eq(st.send_state, RUDP_SEND_DONE);
    cr_assert(rudp_stream_send_finished(&st));
    cr_assert_not(rudp_stream_send_wants(&st, BIG));
    EXPECT_NO_FRAME(&st, BIG, 1000);
    /* Late losses after DONE re-arm nothing. */
    rudp_stream_on_data_lost(&st, 0, 100, SYN | FIN);
    cr_assert_not(rudp_stream_send_wants(&st, BIG));
    EXPECT_NO_FRAME(&st, BIG, 1000);
    cr_assert_eq(st.send_state, RUDP_SEND_DONE);
    free(pat);
    teardown(&st, &pool);
}

Test(stream, lost_fin_is_resent) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, true, BIG, WIN);
    uint8_t *pat = pattern(200, 13);
    write_all(&st, pat, 100);
    EXPECT_FRAME(&st, BIG, 1000, 0, 100, SYN, pat);
    rudp_stream_on_data_acked(&st, 0, 100, SYN);
    st.send_state = RUDP_SEND_FIN_QUEUED;
    EXPECT_FRAME(&st, BIG, 1000, 100, 0, FIN, NULL);
    cr_assert_not(rudp_stream_send_wants(&st, BIG));

    /* The bare FIN is lost: a bare FIN again, needing no credit. */
    rudp_stream_on_data_lost(&st, 100, 0, FIN);
    cr_assert_not(st.fin_sent);
    cr_assert(rudp_stream_send_wants(&st, 0));
    EXPECT_FRAME(&st, 0, 1000, 100, 0, FIN, NULL);
    EXPECT_NO_FRAME(&st, BIG, 1000);
    rudp_stream_on_data_acked(&st, 100, 0, FIN);
    cr_assert(rudp_stream_send_finished(&st));

    /* A FIN riding on data: the data goes again with the FIN. */
    rudp_stream s2;
    setup(&s2, &pool, true, BIG, WIN);
    write_all(&s2, pat, 200);
    s2.send_state = RUDP_SEND_FIN_QUEUED;
    EXPECT_FRAME(&s2, BIG, 150, 0, 150, SYN, pat);
    EXPECT_FRAME(&s2, BIG, 150, 150, 50, FIN, pat);
    rudp_stream_on_data_lost(&s2, 150, 50, FIN);
    rudp_stream_on_data_acked(&s2, 0, 150, SYN);
    cr_assert(rudp_stream_send_wants(&s2, 0));
    EXPECT_FRAME(&s2, 0, 1000, 150, 50, FIN, pat);
    EXPECT_NO_FRAME(&s2, BIG, 1000);
    rudp_stream_on_data_acked(&s2, 150, 50, FIN);
    cr_assert(rudp_stream_send_finished(&s2));
    rudp_stream_free(&s2);
    free(pat);
    teardown(&st, &pool);
}

Test(stream, lost_syn_rearms_until_acked) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, true, BIG, WIN);
    uint8_t *pat = pattern(300, 14);

    /* A bare SYN, lost: the next frame, whatever it is, carries SYN. */
    EXPECT_FRAME(&st, BIG, 1000, 0, 0, SYN, NULL);
    cr_assert_not(rudp_stream_send_wants(&st, BIG));
    rudp_stream_on_data_lost(&st, 0, 0, SYN);
    cr_assert(st.open_pending);
    cr_assert(rudp_stream_send_wants(&st, BIG));
    EXPECT_FRAME(&st, BIG, 1000, 0, 0, SYN, NULL);
    cr_assert_not(st.open_pending);
    write_all(&st, pat, 100);
    EXPECT_FRAME(&st, BIG, 1000, 0, 100, SYN, pat);
    write_all(&st, pat + 100, 100);
    EXPECT_FRAME(&st, BIG, 1000, 100, 100, 0, pat);
    /* Losing the SYN frame re-arms it; a later frame carries it even at an
     * offset other than 0. */
    rudp_stream_on_data_lost(&st, 0, 0, SYN);
    cr_assert(st.open_pending);
    write_all(&st, pat + 200, 50);
    EXPECT_FRAME(&st, BIG, 1000, 200, 50, SYN, pat);
    cr_assert_not(st.open_pending);
    rudp_stream_on_data_lost(&st, 200, 50, SYN);
    cr_assert(st.open_pending);
    EXPECT_FRAME(&st, BIG, 1000, 200, 50, SYN, pat);
    /* Acknowledged: losses of older SYN frames no longer re-arm it, and the
     * frames at offset 0 stop carrying it. */
    rudp_stream_on_data_acked(&st, 200, 50, SYN);
    cr_assert(st.open_acked);
    cr_assert_not(st.open_pending);
    rudp_stream_on_data_lost(&st, 0, 100, SYN);
    cr_assert_not(st.open_pending);
    EXPECT_FRAME(&st, BIG, 1000, 0, 100, 0, pat);
    cr_assert_not(rudp_stream_send_wants(&st, BIG));

    /* The acceptor's ACK flag is re-armed the same way. */
    rudp_stream ac;
    setup(&ac, &pool, false, BIG, WIN);
    write_all(&ac, pat, 100);
    EXPECT_FRAME(&ac, BIG, 1000, 0, 100, ACK, pat);
    rudp_stream_on_data_lost(&ac, 0, 100, ACK);
    cr_assert(ac.open_pending);
    EXPECT_FRAME(&ac, BIG, 1000, 0, 100, ACK, pat);
    rudp_stream_on_data_acked(&ac, 0, 100, ACK);
    cr_assert(ac.open_acked);
    rudp_stream_on_data_lost(&ac, 0, 100, ACK);
    cr_assert_not(ac.open_pending);
    rudp_stream_free(&ac);
    free(pat);
    teardown(&st, &pool);
}

Test(stream, send_wants_exactly_when_sendable) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, true, 100, WIN);
    uint8_t *pat = pattern(300, 15);
    EXPECT_FRAME(&st, BIG, 1000, 0, 0, SYN, NULL);

    /* Nothing written. */
    cr_assert_not(rudp_stream_send_wants(&st, BIG));
    EXPECT_NO_FRAME(&st, BIG, 1000);
    write_all(&st, pat, 300);
    cr_assert(rudp_stream_send_wants(&st, BIG));
    /* Blocked by the session room. */
    cr_assert_not(rudp_stream_send_wants(&st, 0));
    EXPECT_NO_FRAME(&st, 0, 1000);
    cr_assert(rudp_stream_send_wants(&st, 1));
    EXPECT_FRAME(&st, BIG, 1000, 0, 100, SYN, pat);
    /* Blocked by the stream limit. */
    cr_assert_not(rudp_stream_send_wants(&st, BIG));
    EXPECT_NO_FRAME(&st, BIG, 1000);
    /* A loss makes it sendable whatever the credit. */
    rudp_stream_on_data_lost(&st, 0, 100, SYN);
    cr_assert(rudp_stream_send_wants(&st, 0));
    EXPECT_FRAME(&st, 0, 1000, 0, 100, SYN, pat);
    cr_assert_not(rudp_stream_send_wants(&st, BIG));
    /* All written bytes sent, FIN not queued. */
    st.snd_limit = 1000;
    EXPECT_FRAME(&st, BIG, 1000, 100, 200, 0, pat);
    cr_assert_not(rudp_stream_send_wants(&st, BIG));
    /* FIN queued: wanted; sent: not. */
    st.send_state = RUDP_SEND_FIN_QUEUED;
    cr_assert(rudp_stream_send_wants(&st, 0));
    EXPECT_FRAME(&st, 0, 1000, 300, 0, FIN, NULL);
    cr_assert_not(rudp_stream_send_wants(&st, BIG));
    rudp_stream_on_data_acked(&st, 0, 300, SYN);
    rudp_stream_on_data_acked(&st, 300, 0, FIN);
    cr_assert(rudp_stream_send_finished(&st));
    cr_assert_not(rudp_stream_send_wants(&st, BIG));
    /* A window update of the receive half is something to send too. */
    st.fc.update_pending = true;
    cr_assert(rudp_stream_send_wants(&st, 0));
    free(pat);
    teardown(&st, &pool);
}

/* --- receive half --- */

Test(stream, recv_in_order) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, false, BIG, WIN);
    size_t n = 5 * 1000;
    uint8_t *pat = pattern(n, 16);
    cr_assert_eq(read_small(&st), RUDP_ERR_WOULDBLOCK);
    for (size_t off = 0; off < n; off += 1000) {
        cr_assert_eq(DELIVER(&st, pat, off, 1000, false, RUDP_OK), 1000);
        cr_assert_eq(rudp_stream_recv_ready(&st), 1000);
        READ_EXACT(&st, pat, 1000);
        cr_assert_eq(rudp_stream_recv_ready(&st), 0);
        cr_assert_eq(read_small(&st), RUDP_ERR_WOULDBLOCK);
    }
    cr_assert_eq(st.rcv_read, n);
    cr_assert_not(rudp_stream_recv_finished(&st));
    free(pat);
    teardown(&st, &pool);
}

Test(stream, recv_ready_counts_only_the_contiguous_prefix) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, false, BIG, WIN);
    uint8_t *pat = pattern(1000, 17);
    DELIVER(&st, pat, 100, 100, false, RUDP_OK);
    cr_assert_eq(rudp_stream_recv_ready(&st), 0);
    cr_assert_eq(read_small(&st), RUDP_ERR_WOULDBLOCK);
    DELIVER(&st, pat, 0, 50, false, RUDP_OK);
    cr_assert_eq(rudp_stream_recv_ready(&st), 50);
    DELIVER(&st, pat, 300, 100, false, RUDP_OK);
    cr_assert_eq(rudp_stream_recv_ready(&st), 50);
    DELIVER(&st, pat, 50, 50, false, RUDP_OK);
    cr_assert_eq(rudp_stream_recv_ready(&st), 200);
    READ_EXACT(&st, pat, 150);
    cr_assert_eq(rudp_stream_recv_ready(&st), 50);
    /* A read larger than what is ready returns what is ready. */
    uint8_t buf[1000];
    cr_assert_eq(rudp_stream_recv_read(&st, buf, sizeof(buf)), 50);
    cr_assert(memcmp(buf, pat + 150, 50) == 0);
    cr_assert_eq(read_small(&st), RUDP_ERR_WOULDBLOCK);
    DELIVER(&st, pat, 200, 100, false, RUDP_OK);
    cr_assert_eq(rudp_stream_recv_ready(&st), 200);
    READ_EXACT(&st, pat, 200);
    free(pat);
    teardown(&st, &pool);
}

Test(stream, recv_shuffled_with_duplicates_and_overlaps) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, false, BIG, 1u << 22);
    enum { NF = 400 };
    /* Frames of varied sizes covering [0, total), each sent twice, plus
     * frames overlapping their neighbours. */
    uint64_t off[3 * NF];
    size_t len[3 * NF];
    uint64_t total = 0;
    uint64_t rng = 12345;
    for (int i = 0; i < NF; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        size_t l = 1 + (size_t)((rng >> 33) % 3000);
        off[i] = off[NF + i] = total;
        len[i] = len[NF + i] = l;
        total += l;
    }
    for (int i = 0; i < NF; i++) {
        off[2 * NF + i] = off[i] + len[i] / 2;
        len[2 * NF + i] = len[i] - len[i] / 2 + (i + 1 < NF ? len[i + 1] / 2 : 0);
    }
    for (int i = 3 * NF - 1; i > 0; i--) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        int j = (int)((rng >> 33) % (uint64_t)(i + 1));
        uint64_t to = off[i];
        size_t tl = len[i];
        off[i] = off[j];
        len[i] = len[j];
        off[j] = to;
        len[j] = tl;
    }
    uint8_t *pat = pattern(total, 18);
    uint8_t *out = malloc(total);
    uint64_t got = 0, highest = 0;
    for (int i = 0; i < 3 * NF; i++) {
        uint64_t end = off[i] + len[i];
        uint64_t grew = DELIVER(&st, pat, off[i], len[i], false, RUDP_OK);
        cr_assert_eq(grew, end > highest ? end - highest : 0);
        if (end > highest)
            highest = end;
        /* Every other frame, read what is ready, in two pieces. */
        if (i % 2 == 0) {
            uint64_t ready = rudp_stream_recv_ready(&st);
            cr_assert_eq(st.rcv_read, got);
            cr_assert_eq(rudp_ranges_contiguous_end(&st.rcv_ranges, got) - got, ready);
            if (ready == 0) {
                cr_assert_eq(read_small(&st), RUDP_ERR_WOULDBLOCK);
                continue;
            }
            size_t a = (size_t)(ready / 2 + 1);
            cr_assert_eq(rudp_stream_recv_read(&st, out + got, a), (ssize_t)a);
            got += a;
            if (ready > a) {
                cr_assert_eq(rudp_stream_recv_read(&st, out + got, (size_t)(ready - a)),
                             (ssize_t)(ready - a));
                got += ready - a;
            }
        }
    }
    cr_assert_eq(highest, total);
    ssize_t last = rudp_stream_recv_read(&st, out + got, (size_t)(total - got) + 1);
    if (got < total) {
        cr_assert_eq(last, (ssize_t)(total - got));
        got = total;
    } else {
        cr_assert_eq(last, RUDP_ERR_WOULDBLOCK);
    }
    cr_assert(memcmp(out, pat, total) == 0);
    /* Everything read: only the chunk holding the read mark may remain. */
    cr_assert_leq(pool.in_use, 1);
    /* Duplicates of read bytes are harmless. */
    cr_assert_eq(DELIVER(&st, pat, 0, 100, false, RUDP_OK), 0);
    cr_assert_eq(rudp_stream_recv_ready(&st), 0);
    free(out);
    free(pat);
    teardown(&st, &pool);
}

Test(stream, recv_overlap_cases) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, false, BIG, WIN);
    uint8_t *pat = pattern(1000, 19);
    cr_assert_eq(DELIVER(&st, pat, 100, 100, false, RUDP_OK), 200);
    cr_assert_eq(DELIVER(&st, pat, 100, 100, false, RUDP_OK), 0);
    cr_assert_eq(DELIVER(&st, pat, 150, 100, false, RUDP_OK), 50);
    cr_assert_eq(DELIVER(&st, pat, 50, 300, false, RUDP_OK), 100);
    cr_assert_eq(rudp_stream_recv_ready(&st), 0);
    cr_assert_eq(DELIVER(&st, pat, 0, 60, false, RUDP_OK), 0);
    cr_assert_eq(rudp_stream_recv_ready(&st), 350);
    READ_EXACT(&st, pat, 120);
    /* A frame straddling the read mark adds only what lies above it. */
    cr_assert_eq(DELIVER(&st, pat, 0, 400, false, RUDP_OK), 50);
    cr_assert_eq(rudp_stream_recv_ready(&st), 280);
    READ_EXACT(&st, pat, 280);
    cr_assert_eq(st.rcv_read, 400);
    free(pat);
    teardown(&st, &pool);
}

Test(stream, read_frees_receive_chunks) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, false, BIG, WIN);
    uint8_t *pat = pattern(3 * C, 20);
    DELIVER(&st, pat, 2 * C, C, false, RUDP_OK);
    cr_assert_eq(pool.in_use, 1);
    DELIVER(&st, pat, 0, 2 * C, false, RUDP_OK);
    cr_assert_eq(pool.in_use, 3);
    READ_EXACT(&st, pat, C + 1);
    cr_assert_eq(pool.in_use, 2);
    READ_EXACT(&st, pat, 2 * C - 1);
    cr_assert_eq(pool.in_use, 0);
    free(pat);
    teardown(&st, &pool);
}

Test(stream, eof_only_after_every_byte_is_read) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, false, BIG, WIN);
    uint8_t *pat = pattern(200, 21);
    /* The FIN frame arrives first. */
    cr_assert_eq(DELIVER(&st, pat, 100, 100, true, RUDP_OK), 200);
    cr_assert_eq(st.rcv_fin, 200);
    cr_assert_eq(st.recv_state, RUDP_RECV_SIZE_KNOWN);
    cr_assert_eq(read_small(&st), RUDP_ERR_WOULDBLOCK);
    cr_assert_not(rudp_stream_recv_finished(&st));
    DELIVER(&st, pat, 0, 100, false, RUDP_OK);
    READ_EXACT(&st, pat, 150);
    cr_assert_not(rudp_stream_recv_finished(&st));
    READ_EXACT(&st, pat, 50);
    /* All bytes read: finished even before EOF is returned ... */
    cr_assert_eq(st.rcv_read, 200);
    cr_assert(rudp_stream_recv_finished(&st));
    /* ... and then read returns 0, repeatedly. */
    cr_assert_eq(read_small(&st), 0);
    cr_assert_eq(st.recv_state, RUDP_RECV_DONE);
    cr_assert(rudp_stream_recv_finished(&st));
    cr_assert_eq(read_small(&st), 0);
    /* A repeated FIN is harmless after EOF. */
    cr_assert_eq(DELIVER(&st, pat, 100, 100, true, RUDP_OK), 0);
    cr_assert_eq(read_small(&st), 0);

    /* An empty stream: a bare FIN at 0 gives EOF at once. */
    rudp_stream e;
    setup(&e, &pool, false, BIG, WIN);
    cr_assert_eq(DELIVER(&e, pat, 0, 0, true, RUDP_OK), 0);
    cr_assert_eq(read_small(&e), 0);
    cr_assert(rudp_stream_recv_finished(&e));
    rudp_stream_free(&e);
    free(pat);
    teardown(&st, &pool);
}

Test(stream, data_beyond_window_is_a_flow_control_error) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, false, BIG, 1000);
    uint8_t *pat = pattern(2000, 22);
    cr_assert_eq(DELIVER(&st, pat, 900, 100, false, RUDP_OK), 1000); /* up to the limit */
    uint64_t grew = 0xdead;
    cr_assert_eq(rudp_stream_recv_data(&st, 900, pat + 900, 101, false, &grew),
                 RUDP_ERR_FLOW_CONTROL);
    cr_assert_eq(grew, 0);
    cr_assert_eq(st.fc.highest, 1000);
    cr_assert_eq(rudp_stream_recv_data(&st, 1000, pat + 1000, 0, true, &grew), RUDP_OK);
    cr_assert_eq(rudp_stream_recv_data(&st, 1500, pat, 1, false, &grew), RUDP_ERR_PROTOCOL);
    /* The limit moves once consumption raises it (the session's job). */
    rudp_stream s2;
    setup(&s2, &pool, false, BIG, 1000);
    DELIVER(&s2, pat, 0, 1000, false, RUDP_OK);
    READ_EXACT(&s2, pat, 1000);
    DELIVER(&s2, pat, 1000, 1, false, RUDP_ERR_FLOW_CONTROL);
    cr_assert(rudp_fc_on_consume(&s2.fc, 1000, 0, 0));
    cr_assert_eq(s2.fc.limit, 2000);
    cr_assert_eq(DELIVER(&s2, pat, 1000, 1000, false, RUDP_OK), 1000);
    rudp_stream_free(&s2);
    free(pat);
    teardown(&st, &pool);
}

Test(stream, final_size_violations_are_protocol_errors) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, false, BIG, WIN);
    uint8_t *pat = pattern(1000, 23);
    DELIVER(&st, pat, 400, 100, true, RUDP_OK);
    cr_assert_eq(st.rcv_fin, 500);
    uint64_t grew = 0xdead;
    cr_assert_eq(rudp_stream_recv_data(&st, 400, pat + 400, 101, false, &grew),
                 RUDP_ERR_PROTOCOL);
    cr_assert_eq(grew, 0);
    cr_assert_eq(st.fc.highest, 500);
    DELIVER(&st, pat, 500, 1, false, RUDP_ERR_PROTOCOL);
    DELIVER(&st, pat, 500, 100, true, RUDP_ERR_PROTOCOL); /* second FIN, larger */
    DELIVER(&st, pat, 300, 100, true, RUDP_ERR_PROTOCOL); /* second FIN, smaller */
    DELIVER(&st, pat, 501, 0, true, RUDP_ERR_PROTOCOL);   /* ... even bare */
    DELIVER(&st, pat, 499, 0, true, RUDP_ERR_PROTOCOL);
    cr_assert_eq(DELIVER(&st, pat, 500, 0, true, RUDP_OK), 0);
    cr_assert_eq(DELIVER(&st, pat, 450, 50, true, RUDP_OK), 0); /* same size: fine */
    cr_assert_eq(DELIVER(&st, pat, 0, 500, false, RUDP_OK), 0);
    cr_assert_eq(st.rcv_fin, 500);

    /* A FIN below bytes already received. */
    rudp_stream s2;
    setup(&s2, &pool, false, BIG, WIN);
    DELIVER(&s2, pat, 0, 800, false, RUDP_OK);
    DELIVER(&s2, pat, 400, 100, true, RUDP_ERR_PROTOCOL);
    cr_assert_eq(s2.rcv_fin, UINT64_MAX);
    cr_assert_eq(DELIVER(&s2, pat, 700, 100, true, RUDP_OK), 0);
    cr_assert_eq(s2.rcv_fin, 800);
    rudp_stream_free(&s2);
    free(pat);
    teardown(&st, &pool);
}

Test(stream, grew_is_the_advance_of_the_highest_offset) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, false, BIG, WIN);
    uint8_t *pat = pattern(1000, 24);
    cr_assert_eq(DELIVER(&st, pat, 100, 100, false, RUDP_OK), 200);
    cr_assert_eq(DELIVER(&st, pat, 0, 50, false, RUDP_OK), 0);
    cr_assert_eq(DELIVER(&st, pat, 150, 150, false, RUDP_OK), 100);
    cr_assert_eq(DELIVER(&st, pat, 300, 0, false, RUDP_OK), 0);
    cr_assert_eq(DELIVER(&st, pat, 299, 2, false, RUDP_OK), 1);
    cr_assert_eq(DELIVER(&st, pat, 600, 0, true, RUDP_OK), 299); /* a bare FIN counts */
    cr_assert_eq(st.fc.highest, 600);
    free(pat);
    teardown(&st, &pool);
}

Test(stream, recv_discard) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, false, BIG, WIN);
    uint8_t *pat = pattern(3 * C, 25);
    cr_assert_eq(rudp_stream_recv_discard(&st), 0);
    DELIVER(&st, pat, 0, 100, false, RUDP_OK);
    DELIVER(&st, pat, 2 * C, C, true, RUDP_OK);
    cr_assert_eq(pool.in_use, 2);
    cr_assert_eq(rudp_stream_recv_discard(&st), 100);
    cr_assert_eq(st.rcv_read, 100);
    cr_assert_eq(rudp_stream_recv_ready(&st), 0);
    cr_assert_eq(rudp_stream_recv_discard(&st), 0);
    DELIVER(&st, pat, 100, 2 * C - 100, false, RUDP_OK);
    cr_assert_eq(rudp_stream_recv_discard(&st), 3 * C - 100);
    cr_assert_eq(pool.in_use, 0);
    cr_assert(rudp_stream_recv_finished(&st));
    cr_assert_eq(read_small(&st), 0);
    free(pat);
    teardown(&st, &pool);
}

/* --- abort and reset --- */

Test(stream, abort_empties_buffers_and_queues_one_rst) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, true, BIG, WIN);
    uint8_t *pat = pattern(3 * C, 26);
    write_all(&st, pat, 2 * C);
    EXPECT_FRAME(&st, BIG, 1000, 0, 1000, SYN, pat);
    rudp_stream_on_data_lost(&st, 0, 1000, SYN);
    DELIVER(&st, pat, 0, 3000, false, RUDP_OK);
    DELIVER(&st, pat, C + 100, 100, false, RUDP_OK);
    READ_EXACT(&st, pat, 1000);
    rudp_fc_on_consume(&st.fc, 1000, 0, 0); /* what rudp_stream_read does */
    cr_assert_eq(pool.in_use, 4);

    cr_assert_eq(rudp_stream_abort(&st, 7, RUDP_ERR_CLOSED), C + 200 - 1000);
    cr_assert_eq(pool.in_use, 0);
    cr_assert_eq(st.send_state, RUDP_SEND_RESET);
    cr_assert_eq(st.recv_state, RUDP_RECV_RESET);
    cr_assert(st.rst_queued);
    cr_assert(st.rst_pending);
    cr_assert_eq(st.rst_code, 7);
    cr_assert_not(st.peer_rst);
    cr_assert_eq(st.fc.consumed, st.fc.highest);
    cr_assert_eq(read_small(&st), RUDP_ERR_CLOSED);
    cr_assert_eq(rudp_stream_send_append(&st, pat, 10, BIG), RUDP_ERR_CLOSED);
    cr_assert_eq(rudp_stream_recv_ready(&st), 0);
    EXPECT_NO_FRAME(&st, BIG, 1000);
    cr_assert(rudp_stream_send_wants(&st, 0)); /* the RST */
    cr_assert_not(rudp_stream_send_finished(&st));
    cr_assert_not(rudp_stream_recv_finished(&st));
    cr_assert_eq(rudp_stream_state_of(&st), RUDP_STREAM_RESET);

    /* The session writes the RST: nothing left to send. */
    st.rst_pending = false;
    cr_assert_not(rudp_stream_send_wants(&st, BIG));
    /* A second abort queues no second RST and keeps the first reason. */
    cr_assert_eq(rudp_stream_abort(&st, 9, RUDP_ERR_RESET), 0);
    cr_assert_not(st.rst_pending);
    cr_assert_eq(st.rst_code, 7);
    cr_assert_eq(read_small(&st), RUDP_ERR_CLOSED);
    /* Acks and losses of old frames are ignored. */
    rudp_stream_on_data_acked(&st, 0, 1000, SYN);
    rudp_stream_on_data_lost(&st, 0, 1000, SYN);
    cr_assert_not(rudp_stream_send_wants(&st, BIG));
    cr_assert_eq(pool.in_use, 0);
    /* Our RST acknowledged: the send half is finished. */
    st.rst_acked = true;
    cr_assert(rudp_stream_send_finished(&st));
    free(pat);
    teardown(&st, &pool);
}

Test(stream, abort_without_error_reads_reset) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, false, BIG, WIN);
    cr_assert_eq(rudp_stream_abort(&st, 1, RUDP_OK), 0);
    cr_assert_eq(read_small(&st), RUDP_ERR_RESET);
    cr_assert_eq(rudp_stream_send_append(&st, "x", 1, BIG), RUDP_ERR_RESET);
    teardown(&st, &pool);
}

Test(stream, peer_rst_final_size) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    uint8_t *pat = pattern(1000, 27);
    uint64_t grew;

    /* Below what was received. */
    rudp_stream a;
    setup(&a, &pool, false, BIG, WIN);
    DELIVER(&a, pat, 0, 500, false, RUDP_OK);
    rudp_stream_abort(&a, 1, RUDP_ERR_RESET);
    grew = 0xdead;
    cr_assert_eq(rudp_stream_on_peer_rst(&a, 499, &grew), RUDP_ERR_PROTOCOL);
    cr_assert_eq(grew, 0);
    cr_assert_not(a.peer_rst);
    cr_assert_eq(rudp_stream_on_peer_rst(&a, 800, &grew), RUDP_OK);
    cr_assert_eq(grew, 300);
    cr_assert(a.peer_rst);
    cr_assert(rudp_stream_recv_finished(&a));
    cr_assert_eq(a.fc.highest, 800);
    cr_assert_eq(a.fc.consumed, 800);
    rudp_stream_free(&a);

    /* Equal to what was received: nothing grows. */
    rudp_stream b;
    setup(&b, &pool, false, BIG, WIN);
    DELIVER(&b, pat, 200, 300, false, RUDP_OK);
    rudp_stream_abort(&b, 1, RUDP_ERR_RESET);
    cr_assert_eq(rudp_stream_on_peer_rst(&b, 500, &grew), RUDP_OK);
    cr_assert_eq(grew, 0);
    rudp_stream_free(&b);

    /* Conflicting with the FIN. */
    rudp_stream c;
    setup(&c, &pool, false, BIG, WIN);
    DELIVER(&c, pat, 100, 100, true, RUDP_OK);
    rudp_stream_abort(&c, 1, RUDP_ERR_RESET);
    cr_assert(c.peer_rst); /* the FIN already told the final size */
    cr_assert(rudp_stream_recv_finished(&c));
    cr_assert_eq(rudp_stream_on_peer_rst(&c, 300, &grew), RUDP_ERR_PROTOCOL);
    cr_assert_eq(rudp_stream_on_peer_rst(&c, 199, &grew), RUDP_ERR_PROTOCOL);
    cr_assert_eq(rudp_stream_on_peer_rst(&c, 200, &grew), RUDP_OK);
    cr_assert_eq(grew, 0);
    rudp_stream_free(&c);

    /* The FIN arrived with bytes missing: it already counted them, so the
     * RST adds nothing. */
    rudp_stream d;
    setup(&d, &pool, false, BIG, WIN);
    DELIVER(&d, pat, 0, 100, false, RUDP_OK);
    DELIVER(&d, pat, 200, 0, true, RUDP_OK);
    cr_assert_eq(rudp_stream_abort(&d, 1, RUDP_ERR_RESET), 200);
    cr_assert_eq(d.fc.highest, 200);
    cr_assert_eq(rudp_stream_on_peer_rst(&d, 200, &grew), RUDP_OK);
    cr_assert_eq(grew, 0);
    rudp_stream_free(&d);

    /* The peer resets first: we abort (answering with our RST), then take
     * its size. */
    rudp_stream e;
    setup(&e, &pool, true, BIG, WIN);
    write_all(&e, pat, 100);
    EXPECT_FRAME(&e, BIG, 1000, 0, 100, SYN, pat);
    DELIVER(&e, pat, 0, 40, false, RUDP_OK);
    cr_assert_eq(rudp_stream_abort(&e, 5, RUDP_ERR_RESET), 40);
    cr_assert_eq(rudp_stream_on_peer_rst(&e, 60, &grew), RUDP_OK);
    cr_assert_eq(grew, 20);
    cr_assert(rudp_stream_recv_finished(&e));
    cr_assert_not(rudp_stream_send_finished(&e)); /* our RST not yet acknowledged */
    e.rst_pending = false;
    e.rst_acked = true;
    cr_assert(rudp_stream_send_finished(&e));
    cr_assert_eq(read_small(&e), RUDP_ERR_RESET);
    free(pat);
    teardown(&e, &pool);
}

Test(stream, absorb_on_an_aborted_stream) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, false, BIG, 1000);
    uint8_t *pat = pattern(5000, 28);
    DELIVER(&st, pat, 0, 100, false, RUDP_OK);
    cr_assert_eq(rudp_stream_abort(&st, 1, RUDP_ERR_RESET), 100);
    cr_assert_eq(rudp_stream_absorb(&st, 50), 0);
    cr_assert_eq(rudp_stream_absorb(&st, 100), 0);
    cr_assert_eq(rudp_stream_absorb(&st, 130), 30);
    cr_assert_eq(st.fc.highest, 130);
    cr_assert_eq(st.fc.consumed, 130);
    /* DATA arriving on the aborted stream is absorbed: counted, not stored,
     * not checked against the window. */
    cr_assert_eq(DELIVER(&st, pat, 100, 100, false, RUDP_OK), 70);
    cr_assert_eq(DELIVER(&st, pat, 150, 20, false, RUDP_OK), 0);
    cr_assert_eq(DELIVER(&st, pat, 1000, 3000, true, RUDP_OK), 3800);
    cr_assert_eq(pool.in_use, 0);
    cr_assert_eq(rudp_stream_recv_ready(&st), 0);
    cr_assert_eq(read_small(&st), RUDP_ERR_RESET);
    uint64_t grew;
    cr_assert_eq(rudp_stream_on_peer_rst(&st, 3999, &grew), RUDP_ERR_PROTOCOL);
    cr_assert_eq(rudp_stream_on_peer_rst(&st, 4500, &grew), RUDP_OK);
    cr_assert_eq(grew, 500);
    free(pat);
    teardown(&st, &pool);
}

/* --- derived state --- */

Test(stream, state_opener_path) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, true, BIG, WIN);
    uint8_t *pat = pattern(100, 29);
    cr_assert_eq(rudp_stream_state_of(&st), RUDP_STREAM_CONNECTING);
    write_all(&st, pat, 100);
    EXPECT_FRAME(&st, BIG, 1000, 0, 100, SYN, pat);
    rudp_stream_on_data_acked(&st, 0, 100, SYN);
    cr_assert_eq(rudp_stream_state_of(&st), RUDP_STREAM_CONNECTING);
    st.connected = true; /* the peer's ACK flag arrived (session_input.c) */
    cr_assert_eq(rudp_stream_state_of(&st), RUDP_STREAM_ESTABLISHED);
    st.send_state = RUDP_SEND_FIN_QUEUED;
    cr_assert_eq(rudp_stream_state_of(&st), RUDP_STREAM_ESTABLISHED);
    EXPECT_FRAME(&st, BIG, 1000, 100, 0, FIN, NULL);
    cr_assert_eq(rudp_stream_state_of(&st), RUDP_STREAM_CLOSING);
    DELIVER(&st, pat, 0, 50, true, RUDP_OK);
    cr_assert_eq(rudp_stream_state_of(&st), RUDP_STREAM_LAST_ACK);
    rudp_stream_on_data_acked(&st, 100, 0, FIN);
    cr_assert_eq(st.send_state, RUDP_SEND_DONE);
    cr_assert_eq(rudp_stream_state_of(&st), RUDP_STREAM_LAST_ACK); /* bytes unread */
    READ_EXACT(&st, pat, 50);
    cr_assert_eq(rudp_stream_state_of(&st), RUDP_STREAM_CLOSED);
    cr_assert_eq(read_small(&st), 0);
    cr_assert_eq(rudp_stream_state_of(&st), RUDP_STREAM_CLOSED);
    free(pat);
    teardown(&st, &pool);
}

Test(stream, state_acceptor_path) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, false, BIG, WIN);
    uint8_t *pat = pattern(100, 30);
    DELIVER(&st, pat, 0, 10, false, RUDP_OK);
    cr_assert_eq(rudp_stream_state_of(&st), RUDP_STREAM_SYN_RECEIVED);
    EXPECT_FRAME(&st, BIG, 1000, 0, 0, ACK, NULL);
    cr_assert_eq(rudp_stream_state_of(&st), RUDP_STREAM_SYN_RECEIVED);
    rudp_stream_on_data_lost(&st, 0, 0, ACK);
    cr_assert_eq(rudp_stream_state_of(&st), RUDP_STREAM_SYN_RECEIVED);
    EXPECT_FRAME(&st, BIG, 1000, 0, 0, ACK, NULL);
    rudp_stream_on_data_acked(&st, 0, 0, ACK);
    cr_assert_eq(rudp_stream_state_of(&st), RUDP_STREAM_ESTABLISHED);
    DELIVER(&st, pat, 10, 10, true, RUDP_OK);
    cr_assert_eq(rudp_stream_state_of(&st), RUDP_STREAM_FIN_WAIT);
    READ_EXACT(&st, pat, 20);
    cr_assert_eq(read_small(&st), 0);
    cr_assert_eq(rudp_stream_state_of(&st), RUDP_STREAM_FIN_WAIT);
    write_all(&st, pat, 30);
    st.send_state = RUDP_SEND_FIN_QUEUED;
    EXPECT_FRAME(&st, BIG, 1000, 0, 30, FIN, pat);
    cr_assert_eq(rudp_stream_state_of(&st), RUDP_STREAM_LAST_ACK);
    rudp_stream_on_data_acked(&st, 0, 30, FIN);
    cr_assert_eq(rudp_stream_state_of(&st), RUDP_STREAM_CLOSED);
    free(pat);
    teardown(&st, &pool);
}

Test(stream, state_reset_from_any_state) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream a, b, c;
    setup(&a, &pool, true, BIG, WIN);
    setup(&b, &pool, false, BIG, WIN);
    setup(&c, &pool, true, BIG, WIN);
    c.connected = true;
    c.send_state = RUDP_SEND_FIN_QUEUED;
    EXPECT_FRAME(&c, BIG, 1000, 0, 0, SYN | FIN, NULL);
    cr_assert_eq(rudp_stream_state_of(&c), RUDP_STREAM_CLOSING);
    rudp_stream_abort(&a, 1, RUDP_ERR_RESET);
    rudp_stream_abort(&b, 1, RUDP_ERR_RESET);
    rudp_stream_abort(&c, 1, RUDP_ERR_RESET);
    cr_assert_eq(rudp_stream_state_of(&a), RUDP_STREAM_RESET);
    cr_assert_eq(rudp_stream_state_of(&b), RUDP_STREAM_RESET);
    cr_assert_eq(rudp_stream_state_of(&c), RUDP_STREAM_RESET);
    uint64_t grew;
    cr_assert_eq(rudp_stream_on_peer_rst(&a, 0, &grew), RUDP_OK);
    cr_assert_eq(rudp_stream_state_of(&a), RUDP_STREAM_RESET);
    rudp_stream_free(&b);
    rudp_stream_free(&c);
    teardown(&a, &pool);
}

/* The FIN was sent; losing the packet that carried it does not un-send it:
 * docs/PROTOCOL.md defines CLOSING as "our FIN sent; the peer's not
 * received", and a derived state should not go back to ESTABLISHED (nor
 * LAST_ACK back to FIN_WAIT) while the FIN waits to be retransmitted. */
Test(stream, state_closing_survives_fin_loss) {
    rudp_chunk_pool pool;
    rudp_chunk_pool_init(&pool, 8);
    rudp_stream st;
    setup(&st, &pool, true, BIG, WIN);
    st.connected = true;
    st.send_state = RUDP_SEND_FIN_QUEUED;
    EXPECT_FRAME(&st, BIG, 1000, 0, 0, SYN | FIN, NULL);
    cr_assert_eq(rudp_stream_state_of(&st), RUDP_STREAM_CLOSING);
    rudp_stream_on_data_lost(&st, 0, 0, SYN | FIN);
    cr_expect_eq(rudp_stream_state_of(&st), RUDP_STREAM_CLOSING,
                 "state %d after the FIN's loss, want CLOSING (%d)",
                 (int)rudp_stream_state_of(&st), RUDP_STREAM_CLOSING);
    EXPECT_FRAME(&st, BIG, 1000, 0, 0, SYN | FIN, NULL);
    cr_assert_eq(rudp_stream_state_of(&st), RUDP_STREAM_CLOSING);

    /* The same in LAST_ACK: both FINs exchanged, ours lost. */
    uint8_t d[8] = {0};
    DELIVER(&st, d, 0, 0, true, RUDP_OK);
    cr_assert_eq(rudp_stream_state_of(&st), RUDP_STREAM_LAST_ACK);
    rudp_stream_on_data_lost(&st, 0, 0, SYN | FIN);
    cr_expect_eq(rudp_stream_state_of(&st), RUDP_STREAM_LAST_ACK,
                 "state %d after the FIN's loss, want LAST_ACK (%d)",
                 (int)rudp_stream_state_of(&st), RUDP_STREAM_LAST_ACK);
    teardown(&st, &pool);
}

/* --- property: a sender and a receiver over a lossy frame link --- */

#define P_BYTES (3u << 20)
#define P_SBUF (192u << 10)
#define P_WIN (128u << 10)
#define P_MAXF 1400
#define P_INFLIGHT 48

typedef struct p_frame {
    uint64_t off;
    size_t len;
    uint8_t flags;
    bool delivered;
    uint8_t data[P_MAXF];
} p_frame;

typedef struct p_world {
    rudp_chunk_pool pool;
    rudp_stream snd, rcv;
    uint8_t *pat, *out;
    uint64_t written, got;
    bool eof;
    p_frame fl[P_INFLIGHT];
    size_t nfl;
    uint64_t rng;
    uint64_t sent, lost, dups, spurious;
} p_world;

/* Returns the next splitmix64 output of |w|'s generator. */
static uint64_t p_rand(p_world *w) {
    uint64_t z = (w->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Returns a number in [0, n). */
static uint64_t p_below(p_world *w, uint64_t n) {
    return p_rand(w) % n;
}

/* The sending application writes a random amount; shuts down at the end. */
static void p_app_write(p_world *w) {
    if (w->written == P_BYTES)
        return;
    size_t n = 1 + (size_t)p_below(w, 40000);
    if (n > P_BYTES - w->written)
        n = (size_t)(P_BYTES - w->written);
    ssize_t r = rudp_stream_send_append(&w->snd, w->pat + w->written, n, P_SBUF);
    uint64_t unsent = w->snd.snd_written - w->snd.snd_next;
    uint64_t held = w->snd.snd_written - w->snd.snd_una;
    if (r == RUDP_ERR_WOULDBLOCK) {
        cr_assert(unsent >= P_SBUF || held >= RUDP_SEND_HELD_FACTOR * P_SBUF,
                  "refused with %llu unsent, %llu held", (unsigned long long)unsent,
                  (unsigned long long)held);
        return;
    }
    cr_assert_gt(r, 0, "append returned %zd", r);
    cr_assert_leq((size_t)r, n);
    cr_assert_leq(unsent, P_SBUF);
    cr_assert_leq(held, RUDP_SEND_HELD_FACTOR * P_SBUF);
    w->written += (uint64_t)r;
    if (w->written == P_BYTES)
        w->snd.send_state = RUDP_SEND_FIN_QUEUED;
}

/* The sender puts one frame on the link, checking its bounds and bytes. */
static void p_send(p_world *w) {
    if (w->nfl == P_INFLIGHT)
        return;
    rudp_stream *s = &w->snd;
    uint64_t room = p_below(w, 4) == 0 ? p_below(w, 3000) : BIG;
    size_t max = 1 + (size_t)p_below(w, P_MAXF);
    bool wants = rudp_stream_send_wants(s, room);
    p_frame *f = &w->fl[w->nfl];
    uint64_t next = s->snd_next;
    bool ok = rudp_stream_send_next(s, room, max, &f->off, &f->len, &f->flags);
    cr_assert_eq(ok, wants, "send_next %d but send_wants %d", ok, wants);
    if (!ok)
        return;
    cr_assert_leq(f->len, max);
    if (f->off >= next) { /* new bytes */
        cr_assert_eq(f->off, next);
        cr_assert_leq(f->len, room);
        cr_assert_leq(f->off + f->len, s->snd_limit);
    }
    cr_assert_leq(f->off + f->len, s->snd_written);
    cr_assert_geq(f->off, s->snd_una);
    if (f->flags & FIN)
        cr_assert_eq(f->off + f->len, s->snd_written);
    if (f->flags & SYN)
        cr_assert_not(s->open_acked);
    if (f->len > 0)
        rudp_buf_read(&s->sbuf, f->off, f->data, f->len);
    cr_assert(memcmp(f->data, w->pat + f->off, f->len) == 0, "send buffer corrupt at %llu",
              (unsigned long long)f->off);
    uint64_t fresh = rudp_stream_send_commit(s, f->off, f->len, f->flags);
    cr_assert_eq(fresh, f->off >= next ? f->len : 0);
    f->delivered = false;
    w->nfl++;
    w->sent++;
}

/* The receiver takes frame |f|. */
static void p_deliver(p_world *w, const p_frame *f) {
    uint64_t grew;
    int rv = rudp_stream_recv_data(&w->rcv, f->off, f->data, f->len, (f->flags & FIN) != 0,
                                   &grew);
    cr_assert_eq(rv, RUDP_OK, "recv_data [%llu,+%zu) flags %#x: %d",
                 (unsigned long long)f->off, f->len, f->flags, rv);
}

/* Something happens to a random frame on the link: it arrives (maybe again),
 * or its fate is settled by an acknowledgement or a loss (the ack may be
 * lost: a delivered frame can be declared lost). */
static void p_link(p_world *w) {
    if (w->nfl == 0)
        return;
    size_t i = (size_t)p_below(w, w->nfl);
    p_frame *f = &w->fl[i];
    uint64_t c = p_below(w, 100);
    if (!f->delivered && c < 85) {
        p_deliver(w, f);
        f->delivered = true;
        return;
    }
    if (f->delivered && c < 15) {
        p_deliver(w, f);
        w->dups++;
        return;
    }
    if (f->delivered && c >= 20) {
        rudp_stream_on_data_acked(&w->snd, f->off, f->len, f->flags);
    } else {
        rudp_stream_on_data_lost(&w->snd, f->off, f->len, f->flags);
        w->lost++;
        w->spurious += f->delivered;
    }
    w->fl[i] = w->fl[--w->nfl];
}

/* The receiving application reads a random amount and, like the session,
 * consumes it from the window; window updates reach the sender late. */
static void p_read(p_world *w) {
    size_t n = 1 + (size_t)p_below(w, 50000);
    if (n > P_BYTES + 1 - w->got)
        n = (size_t)(P_BYTES + 1 - w->got);
    ssize_t r = rudp_stream_recv_read(&w->rcv, w->out + w->got, n);
    if (r == 0) {
        cr_assert_eq(w->got, P_BYTES, "EOF after %llu bytes", (unsigned long long)w->got);
        w->eof = true;
    } else if (r < 0) {
        cr_assert_eq(r, RUDP_ERR_WOULDBLOCK);
        cr_assert_eq(rudp_stream_recv_ready(&w->rcv), 0);
    } else {
        cr_assert_leq((size_t)r, n);
        cr_assert(memcmp(w->out + w->got, w->pat + w->got, (size_t)r) == 0,
                  "received bytes at %llu differ", (unsigned long long)w->got);
        w->got += (uint64_t)r;
        rudp_fc_on_consume(&w->rcv.fc, (uint64_t)r, 0, 0);
    }
    if (w->rcv.fc.update_pending && p_below(w, 3) == 0) {
        if (w->rcv.fc.limit > w->snd.snd_limit)
            w->snd.snd_limit = w->rcv.fc.limit;
        w->rcv.fc.update_pending = false;
    }
}

/* Runs one transfer with |seed| and checks its outcome. */
static void p_run(uint64_t seed) {
    p_world *w = calloc(1, sizeof(*w));
    cr_assert_not_null(w);
    w->rng = seed;
    rudp_chunk_pool_init(&w->pool, 32);
    setup(&w->snd, &w->pool, true, P_WIN, P_WIN);
    setup(&w->rcv, &w->pool, false, P_WIN, P_WIN);
    w->pat = pattern(P_BYTES, seed);
    w->out = malloc(P_BYTES + 1);
    long steps = 0;
    while (!(w->eof && rudp_stream_send_finished(&w->snd))) {
        cr_assert_lt(++steps, 20000000L, "seed %llu stuck: got %llu una %llu",
                     (unsigned long long)seed, (unsigned long long)w->got,
                     (unsigned long long)w->snd.snd_una);
        uint64_t a = p_below(w, 100);
        if (a < 15)
            p_app_write(w);
        else if (a < 55)
            p_send(w);
        else if (a < 90)
            p_link(w);
        else
            p_read(w);
        cr_assert_leq(w->snd.snd_una, w->snd.snd_next);
        cr_assert_leq(w->snd.snd_next, w->snd.snd_written);
    }
    cr_assert_eq(w->got, P_BYTES);
    cr_assert(memcmp(w->out, w->pat, P_BYTES) == 0);
    cr_assert_eq(w->snd.send_state, RUDP_SEND_DONE);
    cr_assert_eq(w->snd.snd_una, P_BYTES);
    cr_assert(rudp_stream_recv_finished(&w->rcv));
    cr_assert_gt(w->lost, 0);
    cr_assert_gt(w->spurious, 0);
    cr_assert_gt(w->dups, 0);
    cr_assert_gt(w->snd.bytes_retransmitted, 0);
    /* Whatever is still on the link changes nothing now. */
    while (w->nfl > 0)
        p_link(w);
    cr_assert_eq(w->snd.send_state, RUDP_SEND_DONE);
    cr_assert_eq(read_small(&w->rcv), 0);
    rudp_stream_free(&w->rcv);
    free(w->out);
    free(w->pat);
    teardown(&w->snd, &w->pool);
    free(w);
}

ParameterizedTestParameters(stream, random_transfer) {
    static uint64_t seeds[20];
    for (size_t i = 0; i < 20; i++)
        seeds[i] = 1000 + i * 7919;
    return cr_make_param_array(uint64_t, seeds, 20);
}

ParameterizedTest(uint64_t *seed, stream, random_transfer) {
    p_run(*seed);
}
