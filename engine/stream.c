/*
 * stream.c — the two halves of one stream: send buffer with retransmission
 * bookkeeping, receive reassembly, and the derived life cycle.
 *
 * Send half.  Bytes live in sbuf from the lowest unacknowledged offset
 * (snd_una) to the last byte written.  snd_next is the first byte never
 * sent; every byte below it was sent at least once.  Acknowledged ranges
 * accumulate in snd_acked (its first range starts at 0 and ends at
 * snd_una); ranges whose packet was declared lost go to snd_lost minus
 * whatever was acknowledged meanwhile, and are sent again before any new
 * byte.  The FIN rides on the frame that carries the last byte, or alone.
 *
 * Receive half.  Frames are written into rbuf at their offset; rcv_ranges
 * records which offsets are present, so the in-order prefix is
 * [rcv_read, contiguous end).  Duplicates and overlaps are harmless.  The
 * final size is fixed by the first FIN and any later frame must agree.
 *
 * Opening (yamux's SYN/ACK flags): the opener sets SYN on its first frame,
 * the acceptor sets ACK on its first.  Each is repeated until a packet
 * carrying it is acknowledged.
 *
 * Reset: either side may abort with RST; the other answers with its own
 * RST, so both learn each other's final size and the session-level flow
 * control stays exact.  The stream is gone once our RST is acknowledged
 * and the peer's has arrived.
 */
#include "stream.h"

#include <limits.h>
#include <string.h>

#include "wire.h"

void rudp_stream_init(rudp_stream *st, uint64_t sid, bool local, rudp_chunk_pool *pool,
                      uint64_t snd_limit, uint64_t window, uint64_t max_window,
                      rudp_tstamp now) {
    memset(st, 0, sizeof(*st));
    st->sid = sid;
    st->local = local;
    st->open_pending = true;
    rudp_buf_init(&st->sbuf, pool);
    rudp_buf_init(&st->rbuf, pool);
    rudp_ranges_init(&st->snd_acked);
    rudp_ranges_init(&st->snd_lost);
    rudp_ranges_init(&st->rcv_ranges);
    st->snd_limit = snd_limit;
    st->rcv_fin = UINT64_MAX;
    rudp_fc_init(&st->fc, window, max_window, now);
}

void rudp_stream_free(rudp_stream *st) {
    rudp_buf_free(&st->sbuf);
    rudp_buf_free(&st->rbuf);
    rudp_ranges_free(&st->snd_acked);
    rudp_ranges_free(&st->snd_lost);
    rudp_ranges_free(&st->rcv_ranges);
}

/* Returns the flag that announces the stream: SYN for the opener, ACK for
 * the acceptor. */
static uint8_t stream_open_flag(const rudp_stream *st) {
    return st->local ? RUDP_FLAG_SYN : RUDP_FLAG_ACK;
}

uint64_t rudp_stream_send_space(const rudp_stream *st, uint64_t limit) {
    uint64_t unsent = st->snd_written - st->snd_next;
    uint64_t held = st->snd_written - st->snd_una;
    uint64_t most = limit > UINT64_MAX / RUDP_SEND_HELD_FACTOR
                        ? UINT64_MAX
                        : RUDP_SEND_HELD_FACTOR * limit;
    if (unsent >= limit || held >= most)
        return 0;
    uint64_t space = limit - unsent, cap = most - held;
    return space < cap ? space : cap;
}

/* Returns how many more bytes the send buffer takes under |limit|
 * (rudp_stream_send_space), or the rudp_error that stops writing. */
static ssize_t stream_send_space(const rudp_stream *st, uint64_t limit) {
    if (st->send_state == RUDP_SEND_RESET)
        return st->error ? st->error : RUDP_ERR_RESET;
    if (st->send_state != RUDP_SEND_OPEN)
        return RUDP_ERR_STREAM_STATE;
    uint64_t space = rudp_stream_send_space(st, limit);
    return space > SSIZE_MAX ? SSIZE_MAX : (ssize_t)space;
}

ssize_t rudp_stream_send_append(rudp_stream *st, const void *data, size_t len,
                                uint64_t buffer_limit) {
    ssize_t space = stream_send_space(st, buffer_limit);
    if (space <= 0)
        return space == 0 ? RUDP_ERR_WOULDBLOCK : space;
    size_t n = len < (size_t)space ? len : (size_t)space;
    if (n == 0)
        return 0;
    int rv = rudp_buf_write(&st->sbuf, st->snd_written, data, n);
    if (rv != RUDP_OK)
        return rv;
    st->snd_written += n;
    return (ssize_t)n;
}

int rudp_stream_append_reserve(rudp_stream *st, size_t len, uint64_t buffer_limit,
                               struct iovec *iov, int max) {
    st->snd_reserved = 0;
    if (len == 0 || max <= 0)
        return RUDP_ERR_INVAL;
    ssize_t space = stream_send_space(st, buffer_limit);
    if (space <= 0)
        return space == 0 ? RUDP_ERR_WOULDBLOCK : (int)space;
    size_t n = len < (size_t)space ? len : (size_t)space;
    int niov = rudp_buf_reserve(&st->sbuf, st->snd_written, n, iov, max);
    for (int i = 0; i < niov; i++)
        st->snd_reserved += iov[i].iov_len;
    return niov;
}

int rudp_stream_append_commit(rudp_stream *st, size_t n) {
    size_t reserved = st->snd_reserved;
    st->snd_reserved = 0;
    int rv = n > reserved ? RUDP_ERR_INVAL : RUDP_OK;
    if (rv == RUDP_OK && st->send_state != RUDP_SEND_OPEN)
        rv = RUDP_ERR_STREAM_STATE;
    if (rv == RUDP_OK)
        st->snd_written += n;
    if (st->snd_una == st->snd_written)
        rudp_buf_drop(&st->sbuf, st->snd_written); /* idle: no chunk at all */
    else
        rudp_buf_release_from(&st->sbuf, st->snd_written);
    return rv;
}

/* Returns true when a FIN must go out in a frame of its own now. */
static bool stream_fin_due(const rudp_stream *st) {
    return st->send_state == RUDP_SEND_FIN_QUEUED && !st->fin_sent &&
           st->snd_next == st->snd_written && rudp_ranges_empty(&st->snd_lost);
}

/* Returns how many new bytes may be sent now, before the |max_len| cap. */
static uint64_t stream_new_room(const rudp_stream *st, uint64_t session_room) {
    uint64_t avail = st->snd_written - st->snd_next;
    uint64_t credit = st->snd_limit > st->snd_next ? st->snd_limit - st->snd_next : 0;
    uint64_t n = avail < credit ? avail : credit;
    return n < session_room ? n : session_room;
}

bool rudp_stream_send_wants(const rudp_stream *st, uint64_t session_room) {
    if (st->rst_pending)
        return true;
    if (st->send_state == RUDP_SEND_RESET)
        return false;
    if (st->fc.update_pending && !rudp_stream_recv_finished(st))
        return true;
    if (st->local && st->open_pending)
        return true;
    if (!rudp_ranges_empty(&st->snd_lost))
        return true;
    return stream_new_room(st, session_room) > 0 || stream_fin_due(st);
}

/* Computes the flags of a DATA frame [off, off+len). */
static uint8_t stream_frame_flags(const rudp_stream *st, uint64_t off, uint64_t len) {
    uint8_t flags = 0;
    if (!st->open_acked && (off == 0 || st->open_pending))
        flags |= stream_open_flag(st);
    if (st->send_state == RUDP_SEND_FIN_QUEUED && off + len == st->snd_written)
        flags |= RUDP_FLAG_FIN;
    return flags;
}

bool rudp_stream_send_next(rudp_stream *st, uint64_t session_room, size_t max_len,
                           uint64_t *off, size_t *len, uint8_t *flags) {
    if (st->send_state == RUDP_SEND_RESET)
        return false;
    const rudp_range *lost = rudp_ranges_lowest(&st->snd_lost);
    if (lost) {
        uint64_t n = lost->end - lost->start;
        *off = lost->start;
        *len = n < max_len ? (size_t)n : max_len;
    } else {
        uint64_t n = stream_new_room(st, session_room);
        *off = st->snd_next;
        *len = n < max_len ? (size_t)n : max_len;
    }
    if (*len == 0 && !stream_fin_due(st) && !st->open_pending)
        return false;
    *flags = stream_frame_flags(st, *off, *len);
    return true;
}

uint64_t rudp_stream_send_commit(rudp_stream *st, uint64_t off, size_t len, uint8_t flags) {
    if (flags & stream_open_flag(st))
        st->open_pending = false;
    if (flags & RUDP_FLAG_FIN)
        st->fin_sent = st->fin_out = true;
    uint64_t end = off + len;
    if (off < st->snd_next) {
        rudp_ranges_remove(&st->snd_lost, off, end);
        st->bytes_retransmitted += len;
    }
    if (end <= st->snd_next)
        return 0;
    uint64_t fresh = end - st->snd_next;
    st->snd_next = end;
    return fresh;
}

/* Moves the send half to DONE once the FIN and every byte are acknowledged. */
static void stream_send_check_done(rudp_stream *st) {
    if (st->send_state == RUDP_SEND_FIN_QUEUED && st->fin_acked &&
        st->snd_una == st->snd_written)
        st->send_state = RUDP_SEND_DONE;
}

void rudp_stream_on_data_acked(rudp_stream *st, uint64_t off, size_t len, uint8_t flags) {
    if (st->send_state == RUDP_SEND_RESET)
        return;
    if (flags & stream_open_flag(st)) {
        st->open_acked = true;
        st->open_pending = false;
    }
    if (len > 0) {
        rudp_ranges_add(&st->snd_acked, off, off + len);
        rudp_ranges_remove(&st->snd_lost, off, off + len);
        const rudp_range *first = rudp_ranges_lowest(&st->snd_acked);
        uint64_t una = first && first->start == 0 ? first->end : 0;
        if (una > st->snd_una) {
            st->snd_una = una;
            if (una == st->snd_written) {
                rudp_buf_drop(&st->sbuf, una);
                st->snd_reserved = 0; /* its chunks went back too */
            } else
                rudp_buf_release_below(&st->sbuf, una);
        }
    }
    if (flags & RUDP_FLAG_FIN)
        st->fin_acked = true;
    stream_send_check_done(st);
}

void rudp_stream_on_peer_gone(rudp_stream *st) {
    if (st->send_state != RUDP_SEND_FIN_QUEUED || st->snd_una != st->snd_written)
        return;
    st->fin_acked = true;
    stream_send_check_done(st);
}

void rudp_stream_on_data_lost(rudp_stream *st, uint64_t off, size_t len, uint8_t flags) {
    if (st->send_state == RUDP_SEND_RESET || st->send_state == RUDP_SEND_DONE)
        return;
    if ((flags & stream_open_flag(st)) && !st->open_acked)
        st->open_pending = true;
    if ((flags & RUDP_FLAG_FIN) && !st->fin_acked)
        st->fin_sent = false;
    uint64_t s = off, end = off + len, gs, ge;
    if (end > st->snd_next) /* never retransmit what was never sent */
        end = st->snd_next;
    while (s < end && rudp_ranges_first_gap(&st->snd_acked, s, end, &gs, &ge)) {
        rudp_ranges_add(&st->snd_lost, gs, ge);
        s = ge;
    }
}

bool rudp_stream_send_finished(const rudp_stream *st) {
    if (st->send_state == RUDP_SEND_DONE)
        return true;
    return st->send_state == RUDP_SEND_RESET && !st->rst_pending && st->rst_acked;
}

int rudp_stream_recv_data(rudp_stream *st, uint64_t off, const uint8_t *data, size_t len,
                          bool fin, uint64_t *grew) {
    uint64_t end = off + len;
    *grew = 0;
    if (st->recv_state == RUDP_RECV_RESET) {
        *grew = rudp_stream_absorb(st, end);
        return RUDP_OK;
    }
    if (st->rcv_fin != UINT64_MAX && (end > st->rcv_fin || (fin && end != st->rcv_fin)))
        return RUDP_ERR_PROTOCOL;
    if (fin && end < st->fc.highest)
        return RUDP_ERR_PROTOCOL;
    uint64_t before = st->fc.highest;
    if (rudp_fc_on_recv(&st->fc, end) != RUDP_OK)
        return RUDP_ERR_FLOW_CONTROL;
    *grew = st->fc.highest - before;
    if (fin && st->rcv_fin == UINT64_MAX) {
        st->rcv_fin = end;
        st->recv_state = RUDP_RECV_SIZE_KNOWN;
    }
    if (end <= st->rcv_read)
        return RUDP_OK;
    uint64_t s = off > st->rcv_read ? off : st->rcv_read;
    if (rudp_ranges_covers(&st->rcv_ranges, s, end))
        return RUDP_OK;
    int rv = rudp_buf_write(&st->rbuf, s, data + (s - off), (size_t)(end - s));
    if (rv == RUDP_OK)
        rv = rudp_ranges_add(&st->rcv_ranges, s, end);
    return rv;
}

uint64_t rudp_stream_recv_ready(const rudp_stream *st) {
    if (st->recv_state == RUDP_RECV_RESET)
        return 0;
    return rudp_ranges_contiguous_end(&st->rcv_ranges, st->rcv_read) - st->rcv_read;
}

/* Marks |n| bytes from rcv_read as consumed and frees their storage. */
static void stream_recv_advance(rudp_stream *st, uint64_t n) {
    st->rcv_read += n;
    rudp_ranges_remove_below(&st->rcv_ranges, st->rcv_read);
    if (rudp_ranges_empty(&st->rcv_ranges))
        rudp_buf_drop(&st->rbuf, st->rcv_read); /* nothing stored beyond */
    else
        rudp_buf_release_below(&st->rbuf, st->rcv_read);
}

/* Returns the bytes ready to read (> 0), or what a read must report when
 * there are none: 0 at EOF, the stream's error, RUDP_ERR_WOULDBLOCK. */
static ssize_t stream_recv_status(rudp_stream *st) {
    if (st->recv_state == RUDP_RECV_RESET)
        return st->error ? st->error : RUDP_ERR_RESET;
    uint64_t ready = rudp_stream_recv_ready(st);
    if (ready > 0)
        return ready > SSIZE_MAX ? SSIZE_MAX : (ssize_t)ready;
    if (st->rcv_read == st->rcv_fin) {
        st->recv_state = RUDP_RECV_DONE;
        return 0;
    }
    return st->error ? st->error : RUDP_ERR_WOULDBLOCK;
}

ssize_t rudp_stream_recv_read(rudp_stream *st, void *out, size_t len) {
    ssize_t ready = stream_recv_status(st);
    if (ready <= 0)
        return ready;
    size_t n = (size_t)ready < len ? (size_t)ready : len;
    rudp_buf_read(&st->rbuf, st->rcv_read, out, n);
    stream_recv_advance(st, n);
    return (ssize_t)n;
}

ssize_t rudp_stream_recv_peek(rudp_stream *st, const uint8_t **p) {
    ssize_t ready = stream_recv_status(st);
    if (ready <= 0)
        return ready;
    return (ssize_t)rudp_buf_peek(&st->rbuf, st->rcv_read, (size_t)ready, p);
}

void rudp_stream_recv_consume(rudp_stream *st, uint64_t n) {
    uint64_t ready = rudp_stream_recv_ready(st);
    stream_recv_advance(st, n < ready ? n : ready);
}

uint64_t rudp_stream_recv_discard(rudp_stream *st) {
    uint64_t n = rudp_stream_recv_ready(st);
    stream_recv_advance(st, n);
    return n;
}

bool rudp_stream_recv_finished(const rudp_stream *st) {
    if (st->recv_state == RUDP_RECV_RESET)
        return st->peer_rst;
    return st->rcv_fin != UINT64_MAX && st->rcv_read == st->rcv_fin;
}

uint64_t rudp_stream_abort(rudp_stream *st, uint32_t code, int error) {
    uint64_t unconsumed = st->fc.highest - st->fc.consumed;
    st->fc.consumed = st->fc.highest;
    st->fc.update_pending = false;
    if (st->send_state != RUDP_SEND_RESET) {
        st->send_state = RUDP_SEND_RESET;
        st->rst_code = code;
    }
    if (st->recv_state != RUDP_RECV_RESET) {
        /* Once the peer's final size is known, its RST adds nothing. */
        if (st->rcv_fin != UINT64_MAX)
            st->peer_rst = true;
        st->recv_state = RUDP_RECV_RESET;
    }
    if (!st->rst_queued) {
        st->rst_queued = true;
        st->rst_pending = true;
    }
    if (st->error == RUDP_OK)
        st->error = error;
    st->open_pending = false;
    rudp_chunk_pool *pool = st->sbuf.pool;
    rudp_buf_free(&st->sbuf);
    rudp_buf_init(&st->sbuf, pool);
    rudp_buf_free(&st->rbuf);
    rudp_buf_init(&st->rbuf, pool);
    rudp_ranges_free(&st->snd_lost);
    rudp_ranges_init(&st->snd_lost);
    rudp_ranges_free(&st->rcv_ranges);
    rudp_ranges_init(&st->rcv_ranges);
    return unconsumed;
}

uint64_t rudp_stream_absorb(rudp_stream *st, uint64_t end) {
    if (end <= st->fc.highest)
        return 0;
    uint64_t grew = end - st->fc.highest;
    st->fc.highest = end;
    st->fc.consumed = end;
    return grew;
}

int rudp_stream_on_peer_rst(rudp_stream *st, uint64_t final_size, uint64_t *grew) {
    *grew = 0;
    if (st->rcv_fin != UINT64_MAX && final_size != st->rcv_fin)
        return RUDP_ERR_PROTOCOL;
    if (final_size < st->fc.highest)
        return RUDP_ERR_PROTOCOL;
    st->rcv_fin = final_size;
    *grew = rudp_stream_absorb(st, final_size);
    st->peer_rst = true;
    return RUDP_OK;
}

enum rudp_stream_state rudp_stream_state_of(const rudp_stream *st) {
    if (st->send_state == RUDP_SEND_RESET)
        return RUDP_STREAM_RESET;
    bool fin_out = st->fin_out || st->send_state == RUDP_SEND_DONE;
    bool fin_in = st->rcv_fin != UINT64_MAX;
    if (st->send_state == RUDP_SEND_DONE && rudp_stream_recv_finished(st))
        return RUDP_STREAM_CLOSED;
    if (fin_out && fin_in)
        return RUDP_STREAM_LAST_ACK;
    if (st->local && !st->connected)
        return RUDP_STREAM_CONNECTING;
    if (!st->local && !st->open_acked)
        return RUDP_STREAM_SYN_RECEIVED;
    if (fin_out)
        return RUDP_STREAM_CLOSING;
    if (fin_in)
        return RUDP_STREAM_FIN_WAIT;
    return RUDP_STREAM_ESTABLISHED;
}
