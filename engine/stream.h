/*
 * stream.h — one reliable byte stream inside a session.
 *
 * A stream is two half-streams.  The send half keeps every byte the
 * application wrote until the peer acknowledges it (rudp_buf), knows which
 * ranges were acknowledged and which must be retransmitted, and ends with a
 * FIN (after all data) or an RST.  The receive half reassembles DATA frames
 * by offset, delivers bytes in order, ends with the peer's FIN or RST, and
 * is guarded by a flow-control window.  The derived life-cycle state
 * (docs/PROTOCOL.md) is computed from the two halves, never stored.
 *
 * The session owns streams, looks them up by ID and decides which one may
 * put bytes into the next packet; the functions here only change one stream.
 */
#ifndef RUDP_STREAM_H
#define RUDP_STREAM_H

#include "buf.h"
#include "flowctl.h"
#include "ranges.h"

enum rudp_send_state {
    RUDP_SEND_OPEN = 0,   /* accepting writes */
    RUDP_SEND_FIN_QUEUED, /* shut: FIN goes after the last byte */
    RUDP_SEND_DONE,       /* every byte and the FIN acknowledged */
    RUDP_SEND_RESET,      /* aborted (by us or the peer) */
};

enum rudp_recv_state {
    RUDP_RECV_OPEN = 0,   /* final size unknown */
    RUDP_RECV_SIZE_KNOWN, /* FIN received, bytes may be missing or unread */
    RUDP_RECV_DONE,       /* every byte up to the FIN read (EOF returned) */
    RUDP_RECV_RESET,      /* aborted (by us or the peer) */
};

/* Pending-event bits, reported through rudp_session_poll_event. */
#define RUDP_SEV_OPENED 0x01
#define RUDP_SEV_CONNECTED 0x02
#define RUDP_SEV_READABLE 0x04
#define RUDP_SEV_WRITABLE 0x08
#define RUDP_SEV_RESET 0x10

typedef struct rudp_stream rudp_stream;

/* Intrusive doubly linked list membership. */
typedef struct rudp_link {
    rudp_stream *prev, *next;
} rudp_link;

struct rudp_stream {
    uint64_t sid;
    rudp_stream *hnext;  /* hash chain */
    rudp_link send_link; /* session's round-robin list of streams with frames to send */
    rudp_link ev_link;   /* session's list of streams with pending events */
    rudp_link lazy_link; /* session's list of accepted streams whose ACK flag may wait */
    bool in_send_list, in_ev_list, in_lazy_list;
    uint8_t events; /* RUDP_SEV_* bits not yet polled */
    void *user;     /* the caller's pointer (rudp_stream_set_user) */
    bool local;     /* opened by this side */
    bool released;  /* the application let go (rudp_stream_release) */

    /* Opening handshake: SYN (ours) or ACK (accepting the peer's). */
    bool open_pending; /* a frame carrying our SYN/ACK flag must be sent */
    bool open_acked;   /* the peer acknowledged a frame carrying it */
    bool connected;    /* local: the peer's ACK flag arrived */

    /* Send half. */
    uint8_t send_state;    /* enum rudp_send_state */
    rudp_buf sbuf;         /* bytes [snd_una, snd_written) */
    uint64_t snd_written;  /* bytes accepted from the application */
    size_t snd_reserved;   /* bytes at the tail the application may still commit */
    uint64_t snd_next;     /* lowest offset never sent */
    uint64_t snd_una;      /* everything below is acknowledged */
    uint64_t snd_limit;    /* the peer's flow-control limit for this stream */
    rudp_ranges snd_acked; /* acknowledged ranges, starting at 0 */
    rudp_ranges snd_lost;  /* ranges to retransmit */
    bool fin_sent;         /* a FIN is outstanding or acknowledged (cleared on loss) */
    bool fin_out;          /* a FIN has gone out at least once (never cleared) */
    bool fin_acked;
    bool rst_queued;  /* we aborted: our RST was queued (once) */
    bool rst_pending; /* our RST must be (re)sent */
    bool rst_acked;
    bool peer_rst;     /* the peer's RST arrived (its final size is known) */
    uint32_t rst_code; /* our RST's code, or the peer's */
    uint64_t bytes_retransmitted;

    /* Receive half. */
    uint8_t recv_state;     /* enum rudp_recv_state */
    rudp_buf rbuf;          /* bytes [rcv_read, highest) that arrived */
    rudp_ranges rcv_ranges; /* offsets received (from 0) */
    uint64_t rcv_read;      /* delivered to the application */
    uint64_t rcv_fin;       /* final size, UINT64_MAX until known */
    rudp_fc fc;             /* this stream's receive window */
    int error;              /* why the stream died: rudp_error, or RUDP_OK */

    /* Liveness (session_live.c). */
    rudp_liveness live;      /* the program's options */
    rudp_tstamp progress_at; /* last acknowledgement of its data, or when data
                                went out with nothing unacknowledged */

    /* The state the trace hook was told last (session_trace.c): an enum
     * rudp_stream_state, 0 before the first report. */
    uint8_t trace_state;
};

/* Initialises a stream record owned by the caller.  |snd_limit| is the
 * peer's initial window, |window|/|max_window| ours. */
void rudp_stream_init(rudp_stream *st, uint64_t sid, bool local, rudp_chunk_pool *pool,
                      uint64_t snd_limit, uint64_t window, uint64_t max_window,
                      rudp_tstamp now);
/* Frees the buffers and ranges of |st| (not |st| itself). */
void rudp_stream_free(rudp_stream *st);

/* Returns true when stream ID |sid| is initiated by the client. */
static inline bool rudp_sid_is_client(uint64_t sid) {
    return (sid & 1) == 1;
}

/* --- send half --- */

/* Returns true while bytes or the FIN went out and wait for the peer's
 * acknowledgement (what TCP retransmits until tcp_retries2). */
static inline bool rudp_stream_unacked(const rudp_stream *st) {
    if (st->send_state == RUDP_SEND_RESET || st->send_state == RUDP_SEND_DONE)
        return false;
    return st->snd_next > st->snd_una || (st->fin_out && !st->fin_acked);
}

/* Describes up to |len| bytes of send-buffer space at the tail (bounded
 * by |buffer_limit| unacknowledged bytes) as at most |max| iovecs, to be
 * filled in place and queued with rudp_stream_append_commit.  Returns the
 * number of iovecs (> 0), RUDP_ERR_WOULDBLOCK when the buffer is full,
 * RUDP_ERR_INVAL (len or max 0), RUDP_ERR_STREAM_STATE, RUDP_ERR_RESET or
 * RUDP_ERR_NOMEM. */
int rudp_stream_append_reserve(rudp_stream *st, size_t len, uint64_t buffer_limit,
                               struct iovec *iov, int max);

/* Queues |n| bytes written in place at the tail and ends the reservation:
 * chunks it took beyond them go back to the pool.  Returns RUDP_OK,
 * RUDP_ERR_INVAL (more than is reserved: nothing is queued) or
 * RUDP_ERR_STREAM_STATE (the write side was shut or reset meanwhile). */
int rudp_stream_append_commit(rudp_stream *st, size_t n);

/* A stream's send buffer holds at most |limit| bytes not yet sent, besides
 * what is in flight, and RUDP_SEND_HELD_FACTOR times that in all.  Counting
 * the bytes in flight against |limit| stalled long lossy paths: the bytes
 * behind a hole wait more than a round trip for its retransmission, and
 * at 200 ms RTT and 1 % loss a 4 MiB buffer held the sender to 62 Mbit/s
 * of 99 (rudp-sim; Linux's default tcp_wmem cap of 4 MiB does the same to
 * kernel TCP).  What is in flight is bounded by the session's window. */
#define RUDP_SEND_HELD_FACTOR 4

/* Returns how many more bytes the application may write (see above). */
uint64_t rudp_stream_send_space(const rudp_stream *st, uint64_t limit);

/* Copies up to |len| bytes into the send buffer, bounded as
 * rudp_stream_send_space says.  Returns the count (> 0), RUDP_ERR_WOULDBLOCK,
 * RUDP_ERR_STREAM_STATE, RUDP_ERR_RESET, or RUDP_ERR_NOMEM. */
ssize_t rudp_stream_send_append(rudp_stream *st, const void *data, size_t len,
                                uint64_t buffer_limit);

/* Returns true when the stream has a frame to send given |session_room|
 * bytes of session flow-control credit for new data. */
bool rudp_stream_send_wants(const rudp_stream *st, uint64_t session_room);

/* Chooses the next DATA frame: lost bytes first, then new bytes within the
 * stream limit and |session_room|, at most |max_len| bytes.  Fills *off,
 * *len and *flags (SYN/ACK/FIN as due).  Returns false when the stream has
 * no DATA frame to send (its RST and flags are handled elsewhere). */
bool rudp_stream_send_next(rudp_stream *st, uint64_t session_room, size_t max_len,
                           uint64_t *off, size_t *len, uint8_t *flags);

/* Records that the frame chosen by send_next was written; returns how many
 * new (never sent) bytes it carried, for the session's flow control. */
uint64_t rudp_stream_send_commit(rudp_stream *st, uint64_t off, size_t len, uint8_t flags);

/* A DATA frame [off, off+len) with |flags| was acknowledged / lost. */
void rudp_stream_on_data_acked(rudp_stream *st, uint64_t off, size_t len, uint8_t flags);
void rudp_stream_on_data_lost(rudp_stream *st, uint64_t off, size_t len, uint8_t flags);

/* The peer left normally (GoAway) after acknowledging every byte we wrote:
 * a FIN still waiting for its acknowledgement counts as delivered, as the
 * peer's kernel would have acknowledged it for a TCP socket. */
void rudp_stream_on_peer_gone(rudp_stream *st);

/* Returns true when the send half has finished (FIN acked with all data,
 * or reset and the RST acknowledged or the reset came from the peer). */
bool rudp_stream_send_finished(const rudp_stream *st);

/* --- receive half --- */

/* Takes a DATA frame.  Returns RUDP_OK, RUDP_ERR_FLOW_CONTROL (beyond the
 * window), RUDP_ERR_PROTOCOL (data past the final size, conflicting final
 * size) or RUDP_ERR_NOMEM.  *grew is set to how far the highest received
 * offset advanced (for the session's window). */
int rudp_stream_recv_data(rudp_stream *st, uint64_t off, const uint8_t *data, size_t len,
                          bool fin, uint64_t *grew);

/* Returns how many in-order bytes wait to be read. */
uint64_t rudp_stream_recv_ready(const rudp_stream *st);

/* Copies up to |len| in-order bytes out and frees their buffer space.
 * Returns the count, 0 at EOF, or RUDP_ERR_WOULDBLOCK / RUDP_ERR_RESET /
 * the stream's error. */
ssize_t rudp_stream_recv_read(rudp_stream *st, void *out, size_t len);

/* Sets *p to the next in-order bytes and returns how many are contiguous
 * in memory (> 0), 0 at EOF, or RUDP_ERR_WOULDBLOCK / RUDP_ERR_RESET / the
 * stream's error, like recv_read. */
ssize_t rudp_stream_recv_peek(rudp_stream *st, const uint8_t **p);

/* Consumes |n| in-order bytes (at most recv_ready). */
void rudp_stream_recv_consume(rudp_stream *st, uint64_t n);

/* Discards every in-order byte (the application released the stream);
 * returns how many. */
uint64_t rudp_stream_recv_discard(rudp_stream *st);

/* Returns true when the receive half has finished (EOF reached or reset). */
bool rudp_stream_recv_finished(const rudp_stream *st);

/* --- both --- */

/* Aborts both halves: buffers are emptied, sending stops, and our RST
 * (carrying our final size, snd_next) is queued once.  Each side sends one
 * RST, so each learns the other's final size.  Returns the receive-window
 * bytes received but not consumed, which the session gives back. */
uint64_t rudp_stream_abort(rudp_stream *st, uint32_t code, int error);

/* The peer's RST with |final_size| arrived on an aborted stream.  Sets *grew
 * to the bytes the peer sent that never arrived (the session counts them as
 * received and consumed).  Returns RUDP_OK, or RUDP_ERR_PROTOCOL when the
 * size contradicts a known final size or bytes already received. */
int rudp_stream_on_peer_rst(rudp_stream *st, uint64_t final_size, uint64_t *grew);

/* Accounts bytes up to |end| arriving on an aborted stream: returns how far
 * they advance the highest offset (counted as received and consumed). */
uint64_t rudp_stream_absorb(rudp_stream *st, uint64_t end);

/* Returns the derived life-cycle state. */
enum rudp_stream_state rudp_stream_state_of(const rudp_stream *st);

#endif /* RUDP_STREAM_H */
