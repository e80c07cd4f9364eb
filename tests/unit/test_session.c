/*
 * test_session.c — the session and stream state machines, driven through
 * the public API with two sessions on an in-memory link (helpers.c): 0-RTT,
 * SYN-ACK piggybacking, half-close, the four-way and simultaneous close,
 * RST in every stream state, idle and handshake timeouts, GoAway, stateless
 * reset, stream limits, flow-control limits, malformed input, migration,
 * zero-copy writes (reserve and commit), and the user pointer on events.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "helpers.h"
#include "wire.h"

#define DELAY RUDP_MS(20)
#define LIMIT(p) ((p)->now + RUDP_SEC(120))

/* What one datagram carried, decoded for assertions. */
typedef struct seen {
    rudp_pkt_hdr hdr;
    int nframes;
    rudp_frame f[64];
} seen;

/* Decodes a datagram into |out|; fails the test when it does not parse. */
static void decode(const uint8_t *pkt, size_t len, seen *out) {
    const uint8_t *p;
    size_t plen;
    memset(out, 0, sizeof(*out));
    cr_assert_eq(rudp_wire_decode_pkt(pkt, len, &out->hdr, &p, &plen), RUDP_OK);
    while (plen > 0 && out->nframes < 64) {
        ssize_t n = rudp_wire_decode_frame(p, plen, &out->f[out->nframes]);
        cr_assert_gt(n, 0);
        if (out->f[out->nframes].type != RUDP_FRAME_PADDING)
            out->nframes++;
        p += n;
        plen -= (size_t)n;
    }
}

/* Returns the first frame of |type| in |s|, or NULL. */
static const rudp_frame *find_frame(const seen *s, int type) {
    for (int i = 0; i < s->nframes; i++)
        if (s->f[i].type == type)
            return &s->f[i];
    return NULL;
}

/* Writes one datagram from |s| at |now|; returns its length (0 if none). */
static size_t one_dgram(rudp_session *s, uint8_t *buf, rudp_tstamp now) {
    rudp_addr to;
    ssize_t n = rudp_session_write_pkt(s, buf, TEST_MAX_DGRAM, &to, now);
    cr_assert_geq(n, 0);
    return (size_t)n;
}

/* Opens stream |*sid| on the client and writes |msg| to it. */
static void open_and_write(rudp_session *s, uint64_t *sid, const char *msg) {
    cr_assert_eq(rudp_stream_open(s, sid), RUDP_OK);
    if (msg)
        cr_assert_eq(rudp_stream_write(s, *sid, msg, strlen(msg)), (ssize_t)strlen(msg));
}

static bool both_established(test_pair *p) {
    return p->srv && rudp_session_is_established(p->cli);
}

/* Brings a pair up to an established session with no stream. */
static void establish(test_pair *p) {
    cr_assert(test_pair_run_until(p, both_established, LIMIT(p)));
    rudp_event ev;
    while (rudp_session_poll_event(p->cli, &ev))
        ;
    while (rudp_session_poll_event(p->srv, &ev))
        ;
}

Test(session, zero_rtt_first_datagram_carries_syn_stream_syn_and_data) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    uint64_t sid;
    open_and_write(p.cli, &sid, "hello");
    cr_assert_eq(sid, 1);
    uint8_t d[TEST_MAX_DGRAM];
    size_t n = one_dgram(p.cli, d, p.now);
    seen s;
    decode(d, n, &s);
    const rudp_frame *sf = find_frame(&s, RUDP_FRAME_SESSION);
    const rudp_frame *df = find_frame(&s, RUDP_FRAME_DATA);
    cr_assert(sf && sf->u.session.flags == RUDP_FLAG_SYN);
    cr_assert(df);
    cr_assert_eq(df->u.data.flags & RUDP_FLAG_SYN, RUDP_FLAG_SYN);
    cr_assert_eq(df->u.data.offset, 0);
    cr_assert_eq(df->u.data.len, 5);
    cr_assert_eq(memcmp(df->u.data.data, "hello", 5), 0);

    /* The server delivers the bytes before it has sent anything. */
    int err;
    rudp_session *srv = rudp_session_new_server(&p.sset, 5, d, n, &p.caddr, p.now, &err);
    cr_assert_not_null(srv);
    rudp_event ev;
    cr_assert(rudp_session_poll_event(srv, &ev));
    cr_assert_eq(ev.type, RUDP_EV_STREAM_OPENED);
    cr_assert_eq(ev.sid, 1);
    char buf[16];
    cr_assert_eq(rudp_stream_read(srv, 1, buf, sizeof(buf)), 5);
    cr_assert_eq(memcmp(buf, "hello", 5), 0);
    rudp_session_del(srv);
    test_pair_free(&p);
}

Test(session, synack_rides_on_the_first_response) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    uint64_t sid;
    open_and_write(p.cli, &sid, "ping");
    uint8_t d[TEST_MAX_DGRAM];
    size_t n = one_dgram(p.cli, d, p.now);
    int err;
    rudp_session *srv = rudp_session_new_server(&p.sset, 5, d, n, &p.caddr, p.now, &err);
    /* Nothing goes out before the application answers... */
    cr_assert_eq(one_dgram(srv, d, p.now), 0);
    cr_assert_eq(rudp_stream_write(srv, 1, "pong", 4), 4);
    /* ...and then one datagram carries SYN-ACK, stream ACK flag, data, ACK. */
    n = one_dgram(srv, d, p.now);
    seen s;
    decode(d, n, &s);
    const rudp_frame *sf = find_frame(&s, RUDP_FRAME_SESSION);
    const rudp_frame *df = find_frame(&s, RUDP_FRAME_DATA);
    cr_assert(sf && sf->u.session.flags == (RUDP_FLAG_SYN | RUDP_FLAG_ACK));
    cr_assert(df && (df->u.data.flags & RUDP_FLAG_ACK) && df->u.data.len == 4);
    cr_assert_not_null(find_frame(&s, RUDP_FRAME_ACK));
    /* The client is established by it and reads the answer: one round trip. */
    cr_assert_eq(rudp_session_read_pkt(p.cli, d, n, &p.saddr, p.now + 2 * DELAY), RUDP_OK);
    cr_assert(rudp_session_is_established(p.cli));
    char buf[8];
    cr_assert_eq(rudp_stream_read(p.cli, sid, buf, sizeof(buf)), 4);
    rudp_stream_info si;
    rudp_stream_get_info(p.cli, sid, &si);
    cr_assert_eq(si.state, RUDP_STREAM_ESTABLISHED);
    rudp_session_del(srv);
    test_pair_free(&p);
}

Test(session, synack_goes_alone_after_the_ack_delay) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    uint64_t sid;
    open_and_write(p.cli, &sid, "x");
    uint8_t d[TEST_MAX_DGRAM];
    size_t n = one_dgram(p.cli, d, p.now);
    int err;
    rudp_session *srv = rudp_session_new_server(&p.sset, 5, d, n, &p.caddr, p.now, &err);
    cr_assert_eq(rudp_session_deadline(srv), p.now + p.sset.max_ack_delay);
    cr_assert_eq(one_dgram(srv, d, p.now + p.sset.max_ack_delay - 1), 0);
    n = one_dgram(srv, d, p.now + p.sset.max_ack_delay);
    seen s;
    decode(d, n, &s);
    cr_assert_not_null(find_frame(&s, RUDP_FRAME_SESSION));
    cr_assert_not_null(find_frame(&s, RUDP_FRAME_ACK));
    rudp_session_del(srv);
    test_pair_free(&p);
}

Test(session, cold_connect_without_data_is_answered_at_once) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    uint8_t d[TEST_MAX_DGRAM];
    size_t n = one_dgram(p.cli, d, p.now);
    cr_assert_gt(n, 0);
    int err;
    rudp_session *srv = rudp_session_new_server(&p.sset, 5, d, n, &p.caddr, p.now, &err);
    n = one_dgram(srv, d, p.now);
    seen s;
    decode(d, n, &s);
    cr_assert_not_null(find_frame(&s, RUDP_FRAME_SESSION));
    rudp_session_del(srv);
    test_pair_free(&p);
}

Test(session, cold_connect_with_an_empty_stream_is_answered_at_once) {
    /* A blocking connect: session SYN and stream SYN, no bytes.  The client
     * waits for the SYN-ACK before it writes, so it must not wait for the
     * server's ACK delay. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    uint64_t sid;
    open_and_write(p.cli, &sid, NULL);
    uint8_t d[TEST_MAX_DGRAM];
    size_t n = one_dgram(p.cli, d, p.now);
    seen s;
    decode(d, n, &s);
    cr_assert_not_null(find_frame(&s, RUDP_FRAME_DATA), "the stream SYN rides along");
    int err;
    rudp_session *srv = rudp_session_new_server(&p.sset, 5, d, n, &p.caddr, p.now, &err);
    cr_assert_not_null(srv);
    n = one_dgram(srv, d, p.now);
    cr_assert_gt(n, 0, "nothing sent at once");
    decode(d, n, &s);
    cr_assert_not_null(find_frame(&s, RUDP_FRAME_SESSION));
    rudp_session_del(srv);
    test_pair_free(&p);
}

Test(session, new_stream_on_established_session_costs_no_round_trip) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "req");
    uint8_t d[TEST_MAX_DGRAM];
    size_t n = one_dgram(p.cli, d, p.now);
    seen s;
    decode(d, n, &s);
    const rudp_frame *df = find_frame(&s, RUDP_FRAME_DATA);
    cr_assert(df && (df->u.data.flags & RUDP_FLAG_SYN) && df->u.data.len == 3);
    cr_assert_eq(rudp_session_read_pkt(p.srv, d, n, &p.caddr, p.now + DELAY), RUDP_OK);
    char buf[8];
    cr_assert_eq(rudp_stream_read(p.srv, sid, buf, sizeof(buf)), 3);
    test_pair_free(&p);
}

static enum rudp_stream_state state_of(rudp_session *s, uint64_t sid) {
    rudp_stream_info si;
    cr_assert_eq(rudp_stream_get_info(s, sid, &si), RUDP_OK);
    return si.state;
}

static bool quiet(test_pair *p) {
    return p->nq == 0;
}

Test(session, four_way_close_passes_through_every_state) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "a");
    cr_assert_eq(state_of(p.cli, sid), RUDP_STREAM_CONNECTING);
    test_pair_run_until(&p, quiet, LIMIT(&p));
    test_pair_run(&p, p.now + RUDP_SEC(1));
    cr_assert_eq(state_of(p.cli, sid), RUDP_STREAM_ESTABLISHED);
    cr_assert_eq(state_of(p.srv, sid), RUDP_STREAM_ESTABLISHED);

    cr_assert_eq(rudp_stream_shutdown_write(p.cli, sid), RUDP_OK);
    test_pair_flush(&p);
    cr_assert_eq(state_of(p.cli, sid), RUDP_STREAM_CLOSING);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    cr_assert_eq(state_of(p.srv, sid), RUDP_STREAM_FIN_WAIT);

    cr_assert_eq(rudp_stream_shutdown_write(p.srv, sid), RUDP_OK);
    test_pair_flush(&p);
    cr_assert_eq(state_of(p.srv, sid), RUDP_STREAM_LAST_ACK);
    test_pair_run(&p, p.now + RUDP_SEC(1));

    uint8_t buf[8];
    bool eof;
    int err;
    cr_assert_eq(test_read_all(p.srv, sid, buf, sizeof(buf), &eof, &err), 1);
    cr_assert(eof);
    cr_assert_eq(test_read_all(p.cli, sid, buf, sizeof(buf), &eof, &err), 0);
    cr_assert(eof);
    cr_assert_eq(state_of(p.cli, sid), RUDP_STREAM_CLOSED);
    cr_assert_eq(state_of(p.srv, sid), RUDP_STREAM_CLOSED);
    cr_assert_eq(rudp_stream_release(p.cli, sid), RUDP_OK);
    cr_assert_eq(rudp_stream_release(p.srv, sid), RUDP_OK);
    rudp_session_info ci, si;
    rudp_session_get_info(p.cli, &ci);
    rudp_session_get_info(p.srv, &si);
    cr_assert_eq(ci.streams_open, 0);
    cr_assert_eq(si.streams_open, 0);
    cr_assert_eq(ci.chunks_in_use + si.chunks_in_use, 0);
    test_pair_free(&p);
}

Test(session, simultaneous_close) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "a");
    test_pair_run(&p, p.now + RUDP_SEC(1));
    cr_assert_eq(rudp_stream_write(p.srv, sid, "b", 1), 1);
    /* Both FINs cross on the wire. */
    rudp_stream_shutdown_write(p.cli, sid);
    rudp_stream_shutdown_write(p.srv, sid);
    test_pair_flush(&p);
    cr_assert_eq(state_of(p.cli, sid), RUDP_STREAM_CLOSING);
    cr_assert_eq(state_of(p.srv, sid), RUDP_STREAM_CLOSING);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    cr_assert_eq(state_of(p.cli, sid), RUDP_STREAM_LAST_ACK);
    uint8_t buf[4];
    bool eof;
    int err;
    cr_assert_eq(test_read_all(p.cli, sid, buf, sizeof(buf), &eof, &err), 1);
    cr_assert(eof && buf[0] == 'b');
    cr_assert_eq(test_read_all(p.srv, sid, buf, sizeof(buf), &eof, &err), 1);
    cr_assert(eof && buf[0] == 'a');
    cr_assert_eq(state_of(p.cli, sid), RUDP_STREAM_CLOSED);
    cr_assert_eq(state_of(p.srv, sid), RUDP_STREAM_CLOSED);
    test_pair_free(&p);
}

Test(session, half_close_keeps_the_other_direction_open) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "q");
    rudp_stream_shutdown_write(p.cli, sid);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    cr_assert_eq(rudp_stream_write(p.cli, sid, "z", 1), RUDP_ERR_STREAM_STATE);
    static uint8_t big[300000], got[300000];
    test_fill_pattern(big, sizeof(big), 7);
    size_t off = 0, rcv = 0;
    bool eof = false;
    int err;
    while (!eof) {
        if (off < sizeof(big)) {
            ssize_t n = rudp_stream_write(p.srv, sid, big + off, sizeof(big) - off);
            if (n > 0)
                off += (size_t)n;
            if (off == sizeof(big))
                rudp_stream_shutdown_write(p.srv, sid);
        }
        cr_assert(test_pair_step(&p, LIMIT(&p)));
        rcv += test_read_all(p.cli, sid, got + rcv, sizeof(got) - rcv, &eof, &err);
        cr_assert_eq(err, RUDP_OK);
    }
    cr_assert_eq(rcv, sizeof(big));
    cr_assert_eq(memcmp(big, got, sizeof(big)), 0);
    test_pair_free(&p);
}

/* Where to put a stream before resetting it. */
enum rst_point {
    RST_CONNECTING,
    RST_SYN_RECEIVED,
    RST_ESTABLISHED,
    RST_CLOSING,
    RST_FIN_WAIT,
    RST_LAST_ACK
};

/* Drives stream 1 into |where| and returns the session that resets it
 * (*other gets the peer). */
static rudp_session *drive_to(test_pair *p, enum rst_point where, rudp_session **other) {
    uint64_t sid;
    establish(p);
    open_and_write(p->cli, &sid, "data");
    *other = p->srv;
    if (where == RST_CONNECTING) {
        cr_assert_eq(state_of(p->cli, 1), RUDP_STREAM_CONNECTING);
        return p->cli;
    }
    /* Deliver the SYN only: the server has not acknowledged its ACK flag. */
    test_pair_flush(p);
    p->now += DELAY;
    cr_assert(test_pair_step(p, p->now));
    *other = p->cli;
    if (where == RST_SYN_RECEIVED) {
        cr_assert_eq(state_of(p->srv, 1), RUDP_STREAM_SYN_RECEIVED);
        return p->srv;
    }
    test_pair_run(p, p->now + RUDP_SEC(1));
    if (where == RST_ESTABLISHED) {
        cr_assert_eq(state_of(p->srv, 1), RUDP_STREAM_ESTABLISHED);
        return p->srv;
    }
    rudp_stream_shutdown_write(p->cli, 1);
    test_pair_run(p, p->now + RUDP_SEC(1));
    if (where == RST_CLOSING) {
        *other = p->srv;
        cr_assert_eq(state_of(p->cli, 1), RUDP_STREAM_CLOSING);
        return p->cli;
    }
    if (where == RST_FIN_WAIT) {
        cr_assert_eq(state_of(p->srv, 1), RUDP_STREAM_FIN_WAIT);
        return p->srv;
    }
    rudp_stream_shutdown_write(p->srv, 1);
    test_pair_flush(p);
    cr_assert_eq(state_of(p->srv, 1), RUDP_STREAM_LAST_ACK);
    return p->srv;
}

/* Resets stream 1 in |where| and checks both sides see the abort. */
static void check_reset_in(enum rst_point where) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    rudp_session *other;
    rudp_session *me = drive_to(&p, where, &other);
    cr_assert_eq(rudp_stream_reset(me, 1, 0), RUDP_OK);
    cr_assert_eq(state_of(me, 1), RUDP_STREAM_RESET);
    test_pair_run(&p, p.now + RUDP_SEC(2));
    if (!other) /* (cannot happen; keeps analyzers calm) */
        cr_assert_fail();
    if (where == RST_CONNECTING)
        other = p.srv;
    cr_assert_eq(state_of(other, 1), RUDP_STREAM_RESET);
    uint8_t buf[8];
    /* Buffered bytes are discarded by an abort, as with TCP's RST. */
    cr_assert_eq(rudp_stream_read(other, 1, buf, sizeof(buf)), RUDP_ERR_RESET);
    cr_assert_eq(rudp_stream_write(other, 1, "x", 1), RUDP_ERR_RESET);
    rudp_stream_release(me, 1);
    rudp_stream_release(other, 1);
    test_pair_run(&p, p.now + RUDP_SEC(2));
    rudp_session_info ci, si;
    rudp_session_get_info(p.cli, &ci);
    rudp_session_get_info(p.srv, &si);
    cr_assert_eq(ci.streams_open, 0, "client still holds %u streams", ci.streams_open);
    cr_assert_eq(si.streams_open, 0, "server still holds %u streams", si.streams_open);
    cr_assert_eq(ci.chunks_in_use + si.chunks_in_use, 0);
    test_pair_free(&p);
}

Test(session, rst_in_connecting) {
    check_reset_in(RST_CONNECTING);
}
Test(session, rst_in_syn_received) {
    check_reset_in(RST_SYN_RECEIVED);
}
Test(session, rst_in_established) {
    check_reset_in(RST_ESTABLISHED);
}
Test(session, rst_in_closing) {
    check_reset_in(RST_CLOSING);
}
Test(session, rst_in_fin_wait) {
    check_reset_in(RST_FIN_WAIT);
}
Test(session, rst_in_last_ack) {
    check_reset_in(RST_LAST_ACK);
}

Test(session, rst_reports_event_with_error) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "x");
    test_pair_run(&p, p.now + RUDP_SEC(1));
    rudp_event ev;
    while (rudp_session_poll_event(p.cli, &ev))
        ;
    rudp_stream_reset(p.srv, sid, RUDP_RST_REFUSED);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    bool seen_reset = false;
    while (rudp_session_poll_event(p.cli, &ev))
        if (ev.type == RUDP_EV_STREAM_RESET && ev.sid == sid) {
            seen_reset = true;
            cr_assert_eq(ev.error, RUDP_ERR_REFUSED);
        }
    cr_assert(seen_reset);
    test_pair_free(&p);
}

/* Link filters and conditions shared by the tests below. */
static bool drop_all(test_pair *p, int dir, uint8_t *pkt, size_t len) {
    return false;
}

static bool drop_c2s(test_pair *p, int dir, uint8_t *pkt, size_t len) {
    return dir != TEST_DIR_C2S;
}

static bool drop_s2c(test_pair *p, int dir, uint8_t *pkt, size_t len) {
    return dir != TEST_DIR_S2C;
}

static bool cli_done(test_pair *p) {
    return rudp_session_is_done(p->cli);
}

static bool cli_settled(test_pair *p) {
    return rudp_session_is_settled(p->cli);
}

static bool srv_settled(test_pair *p) {
    return rudp_session_is_settled(p->srv);
}

Test(session, settled_only_once_the_rst_is_acknowledged) {
    /* The exit flush waits for this: a reset stream has no bytes left to
     * deliver, but its RST is still owed to the peer. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "x");
    test_pair_run(&p, p.now + RUDP_SEC(1));
    cr_assert(rudp_session_is_settled(p.srv));
    cr_assert_eq(rudp_stream_reset(p.srv, sid, 0), RUDP_OK);
    cr_assert_not(rudp_session_is_settled(p.srv), "settled with the RST unsent");
    test_pair_flush(&p);
    cr_assert_not(rudp_session_is_settled(p.srv), "settled with the RST unacknowledged");
    cr_assert(test_pair_run_until(&p, srv_settled, LIMIT(&p)));
    cr_assert_eq(state_of(p.cli, sid), RUDP_STREAM_RESET, "settled before the peer had it");
    test_pair_free(&p);
}

Test(session, leave_after_settling_keeps_delivered_bytes_readable) {
    /* A client writes and half-closes two streams, and once the server has
     * acknowledged it all, leaves (its process exits).  The server, which
     * has not read yet, still reads every byte and EOF on both.  On the
     * first it had shut its side too, but the FIN was lost: it counts as
     * delivered, the stream ends CLOSED.  On the second it may still write:
     * writes fail, the stream is reset.  Its session ends. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    static uint8_t big[200000], got[200001];
    test_fill_pattern(big, sizeof(big), 21);
    uint64_t sid[2];
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(rudp_stream_open(p.cli, &sid[i]), RUDP_OK);
        cr_assert_eq(rudp_stream_write(p.cli, sid[i], big, sizeof(big)),
                     (ssize_t)sizeof(big));
        cr_assert_eq(rudp_stream_shutdown_write(p.cli, sid[i]), RUDP_OK);
    }
    cr_assert(test_pair_run_until(&p, cli_settled, LIMIT(&p)));
    p.filter = drop_s2c; /* the server's FIN never reaches the client */
    cr_assert_eq(rudp_stream_shutdown_write(p.srv, sid[0]), RUDP_OK);
    test_pair_flush(&p);
    cr_assert_eq(rudp_session_leave(p.cli, p.now), RUDP_OK);
    cr_assert_eq(rudp_session_leave(p.cli, p.now), RUDP_ERR_CLOSED);
    test_pair_run(&p, p.now + RUDP_SEC(5));
    for (int i = 0; i < 2; i++) {
        bool eof = false;
        int err;
        size_t n = test_read_all(p.srv, sid[i], got, sizeof(got), &eof, &err);
        cr_assert_eq(n, sizeof(big), "stream %d: %zu bytes", i, n);
        cr_assert(eof, "stream %d: no EOF after the data (error %d)", i, err);
        cr_assert_eq(memcmp(got, big, sizeof(big)), 0);
    }
    cr_assert_eq(state_of(p.srv, sid[0]), RUDP_STREAM_CLOSED);
    cr_assert_eq(state_of(p.srv, sid[1]), RUDP_STREAM_RESET);
    cr_assert_lt(rudp_stream_write(p.srv, sid[1], "x", 1), 0, "wrote to a departed peer");
    bool closed = false;
    rudp_event ev;
    while (rudp_session_poll_event(p.srv, &ev))
        if (ev.type == RUDP_EV_SESSION_CLOSED) {
            closed = true;
            cr_assert_eq(ev.error, RUDP_ERR_PEER_CLOSED);
        }
    cr_assert(closed);
    cr_assert(rudp_session_is_done(p.cli));
    cr_assert(rudp_session_is_done(p.srv));
    test_pair_free(&p);
}

Test(session, dead_peer_gives_timedout_within_the_idle_timeout) {
    rudp_settings cs;
    rudp_settings_default(&cs);
    cs.idle_timeout = RUDP_SEC(5);
    test_pair p;
    test_pair_init(&p, &cs, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "x");
    test_pair_run(&p, p.now + RUDP_SEC(1));
    rudp_tstamp start = p.now;
    p.filter = drop_all;
    rudp_stream_write(p.cli, sid, "more", 4);
    cr_assert(test_pair_run_until(&p, cli_done, LIMIT(&p)));
    cr_assert_leq(p.now - start, RUDP_SEC(5) + RUDP_MS(1));
    rudp_event ev;
    bool closed = false;
    while (rudp_session_poll_event(p.cli, &ev))
        if (ev.type == RUDP_EV_SESSION_CLOSED) {
            closed = true;
            cr_assert_eq(ev.error, RUDP_ERR_TIMEDOUT);
        }
    cr_assert(closed);
    uint8_t b[4];
    cr_assert_eq(rudp_stream_read(p.cli, sid, b, 4), RUDP_ERR_TIMEDOUT);
    cr_assert_eq(rudp_stream_write(p.cli, sid, b, 4), RUDP_ERR_TIMEDOUT);
    test_pair_free(&p);
}

Test(session, unanswered_handshake_times_out) {
    rudp_settings cs;
    rudp_settings_default(&cs);
    cs.handshake_timeout = RUDP_SEC(3);
    test_pair p;
    test_pair_init(&p, &cs, NULL, DELAY);
    p.filter = drop_c2s;
    uint64_t sid;
    open_and_write(p.cli, &sid, "x");
    rudp_tstamp start = p.now;
    cr_assert(test_pair_run_until(&p, cli_done, LIMIT(&p)));
    cr_assert_eq(p.now - start, RUDP_SEC(3));
    cr_assert_gt(p.sent[TEST_DIR_C2S], 1, "the SYN was retransmitted");
    uint8_t b[4];
    cr_assert_eq(rudp_stream_read(p.cli, sid, b, 4), RUDP_ERR_TIMEDOUT);
    test_pair_free(&p);
}

Test(session, keepalive_keeps_an_idle_stream_alive) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "x");
    test_pair_run(&p, p.now + RUDP_SEC(95));
    cr_assert_not(rudp_session_is_done(p.cli));
    cr_assert_not(rudp_session_is_done(p.srv));
    cr_assert_eq(state_of(p.cli, sid), RUDP_STREAM_ESTABLISHED);
    test_pair_free(&p);
}

/* Steps |p| until the server has read stream |sid| up to its FIN, or until
 * |limit|: returns the bytes read into |got| (at most |cap|) and sets *eof
 * when the FIN was reached. */
static size_t read_to_eof(test_pair *p, uint64_t sid, uint8_t *got, size_t cap,
                          rudp_tstamp limit, bool *eof) {
    size_t rcv = 0;
    int err;
    *eof = false;
    while (!*eof && test_pair_step(p, limit))
        rcv += test_read_all(p->srv, sid, got + rcv, cap - rcv, eof, &err);
    return rcv;
}

static bool both_done(test_pair *p) {
    return rudp_session_is_done(p->cli) && rudp_session_is_done(p->srv);
}

Test(session, goaway_closes_both_sessions) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    cr_assert_eq(rudp_session_close(p.cli, 0, p.now), RUDP_OK);
    cr_assert_eq(rudp_session_close(p.cli, 0, p.now), RUDP_ERR_CLOSED);
    cr_assert(test_pair_run_until(&p, both_done, LIMIT(&p)));
    rudp_event ev;
    bool c = false, s = false;
    while (rudp_session_poll_event(p.cli, &ev))
        if (ev.type == RUDP_EV_SESSION_CLOSED)
            c = ev.error == RUDP_OK;
    while (rudp_session_poll_event(p.srv, &ev))
        if (ev.type == RUDP_EV_SESSION_CLOSED)
            s = ev.error == RUDP_ERR_PEER_CLOSED;
    cr_assert(c && s);
    test_pair_free(&p);
}

Test(session, close_waits_for_streams_to_finish) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    static uint8_t big[100000], got[100000];
    test_fill_pattern(big, sizeof(big), 3);
    cr_assert_eq(rudp_stream_open(p.cli, &sid), RUDP_OK);
    cr_assert_eq(rudp_stream_write(p.cli, sid, big, sizeof(big)), (ssize_t)sizeof(big));
    rudp_stream_release(p.cli, sid);
    rudp_session_close(p.cli, 0, p.now);
    bool eof;
    size_t rcv = read_to_eof(&p, sid, got, sizeof(got), LIMIT(&p), &eof);
    cr_assert(eof);
    cr_assert_eq(rcv, sizeof(big));
    cr_assert_eq(memcmp(got, big, sizeof(big)), 0);
    rudp_stream_release(p.srv, sid);
    cr_assert(test_pair_run_until(&p, both_done, LIMIT(&p)));
    test_pair_free(&p);
}

Test(session, malformed_and_foreign_datagrams_are_dropped_and_counted) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "abc");
    uint8_t d[TEST_MAX_DGRAM], bad[TEST_MAX_DGRAM];
    size_t n = one_dgram(p.cli, d, p.now);
    rudp_session_info before, after;
    rudp_session_get_info(p.srv, &before);

    memcpy(bad, d, n);
    bad[n / 2] ^= 0x10;
    cr_assert_eq(rudp_session_read_pkt(p.srv, bad, n, &p.caddr, p.now), RUDP_ERR_CHECKSUM);
    memcpy(bad, d, n);
    rudp_put64(bad + 2, rudp_get64(bad + 2) ^ 1);
    rudp_wire_seal(bad, n - RUDP_CRC_LEN, sizeof(bad));
    cr_assert_eq(rudp_session_read_pkt(p.srv, bad, n, &p.caddr, p.now),
                 RUDP_ERR_UNKNOWN_CID);
    cr_assert_eq(rudp_session_read_pkt(p.srv, d, 7, &p.caddr, p.now), RUDP_ERR_MALFORMED);
    memcpy(bad, d, n);
    bad[0] = 9;
    cr_assert_eq(rudp_session_read_pkt(p.srv, bad, n, &p.caddr, p.now), RUDP_ERR_VERSION);
    rudp_session_get_info(p.srv, &after);
    cr_assert_eq(after.pkts_dropped, before.pkts_dropped + 4);
    cr_assert_eq(after.pkts_recv, before.pkts_recv);
    /* The genuine datagram still works, once. */
    cr_assert_eq(rudp_session_read_pkt(p.srv, d, n, &p.caddr, p.now), RUDP_OK);
    cr_assert_eq(rudp_session_read_pkt(p.srv, d, n, &p.caddr, p.now), RUDP_ERR_DUPLICATE);
    uint8_t b[8];
    cr_assert_eq(rudp_stream_read(p.srv, sid, b, sizeof(b)), 3);
    test_pair_free(&p);
}

/* Largest stream offset the server has allowed so far, tracked from the
 * wire; checked against every DATA frame of the client. */
static uint64_t allowed_limit;
static bool window_violated;

static bool watch_windows(test_pair *p, int dir, uint8_t *pkt, size_t len) {
    seen s;
    decode(pkt, len, &s);
    for (int i = 0; i < s.nframes; i++) {
        const rudp_frame *f = &s.f[i];
        if (dir == TEST_DIR_S2C && f->type == RUDP_FRAME_WINDOW_UPDATE &&
            f->u.window.sid == 1 && f->u.window.max_data > allowed_limit)
            allowed_limit = f->u.window.max_data;
        if (dir == TEST_DIR_C2S && f->type == RUDP_FRAME_DATA &&
            f->u.data.offset + f->u.data.len > allowed_limit)
            window_violated = true;
    }
    return true;
}

Test(session, sender_never_exceeds_the_stream_window) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    allowed_limit = p.sset.initial_stream_window;
    window_violated = false;
    p.filter = watch_windows;
    uint64_t sid;
    cr_assert_eq(rudp_stream_open(p.cli, &sid), RUDP_OK);
    static uint8_t big[2 << 20], got[2 << 20];
    test_fill_pattern(big, sizeof(big), 9);
    size_t off = 0;
    /* The server application does not read: the client must stop at the window. */
    for (int i = 0; i < 200; i++) {
        ssize_t n = rudp_stream_write(p.cli, sid, big + off, sizeof(big) - off);
        if (n > 0)
            off += (size_t)n;
        test_pair_step(&p, LIMIT(&p));
    }
    test_pair_run(&p, p.now + RUDP_SEC(5));
    rudp_stream_info si;
    rudp_stream_get_info(p.cli, sid, &si);
    cr_assert_eq(si.send_window, 0);
    cr_assert_eq(si.bytes_acked, p.sset.initial_stream_window);
    cr_assert_not(window_violated);
    /* Now the server reads everything; updates open the window. */
    size_t rcv = 0;
    bool eof = false;
    int err;
    bool shut = false;
    while (!eof) {
        if (off < sizeof(big)) {
            ssize_t n = rudp_stream_write(p.cli, sid, big + off, sizeof(big) - off);
            if (n > 0)
                off += (size_t)n;
        }
        if (off == sizeof(big) && !shut)
            shut = rudp_stream_shutdown_write(p.cli, sid) == RUDP_OK;
        rcv += test_read_all(p.srv, sid, got + rcv, sizeof(got) - rcv, &eof, &err);
        if (!eof)
            cr_assert(test_pair_step(&p, LIMIT(&p)));
    }
    cr_assert_eq(rcv, sizeof(big));
    cr_assert_eq(memcmp(big, got, sizeof(big)), 0);
    cr_assert_not(window_violated);
    test_pair_free(&p);
}

Test(session, stateless_reset_resets_everything) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "x");
    test_pair_run(&p, p.now + RUDP_SEC(1));
    rudp_session_info ci;
    rudp_session_get_info(p.cli, &ci);
    uint8_t r[64];
    ssize_t n = rudp_packet_write_stateless_reset(r, sizeof(r), ci.peer_cid);
    cr_assert_gt(n, 0);
    uint64_t cid;
    bool is_reset;
    cr_assert_eq(rudp_packet_peek_cid(r, (size_t)n, &cid, &is_reset), RUDP_OK);
    cr_assert(is_reset && cid == ci.peer_cid);
    cr_assert_eq(rudp_session_read_pkt(p.cli, r, (size_t)n, &p.saddr, p.now), RUDP_OK);
    cr_assert(rudp_session_is_done(p.cli));
    uint8_t b[4];
    cr_assert_eq(rudp_stream_read(p.cli, sid, b, 4), RUDP_ERR_PEER_RESET);
    test_pair_free(&p);
}

Test(session, stream_limit_is_enforced_and_raised_as_streams_finish) {
    rudp_settings ss;
    rudp_settings_default(&ss);
    ss.max_streams = 100;
    test_pair p;
    test_pair_init(&p, NULL, &ss, DELAY);
    uint64_t sid;
    for (int i = 0; i < 100; i++)
        cr_assert_eq(rudp_stream_open(p.cli, &sid), RUDP_OK);
    cr_assert_eq(rudp_stream_open(p.cli, &sid), RUDP_ERR_STREAM_LIMIT);
    for (uint64_t id = 1; id <= 199; id += 2) {
        rudp_stream_shutdown_write(p.cli, id);
    }
    test_pair_run(&p, p.now + RUDP_SEC(2));
    for (uint64_t id = 1; id <= 199; id += 2) {
        rudp_stream_shutdown_write(p.srv, id);
        rudp_stream_release(p.srv, id);
        rudp_stream_release(p.cli, id);
    }
    test_pair_run(&p, p.now + RUDP_SEC(2));
    cr_assert_eq(rudp_stream_open(p.cli, &sid), RUDP_OK);
    cr_assert_eq(sid, 201);
    test_pair_free(&p);
}

Test(session, data_for_a_released_stream_resets_it) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "x");
    test_pair_run(&p, p.now + RUDP_SEC(1));
    uint8_t b[4];
    cr_assert_eq(rudp_stream_read(p.srv, sid, b, 4), 1);
    cr_assert_eq(rudp_stream_release(p.srv, sid), RUDP_OK);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    rudp_stream_write(p.cli, sid, "late", 4);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    cr_assert_eq(state_of(p.cli, sid), RUDP_STREAM_RESET);
    cr_assert_eq(rudp_stream_write(p.cli, sid, "x", 1), RUDP_ERR_RESET);
    test_pair_free(&p);
}

Test(session, protocol_violation_ends_the_session_with_goaway) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    /* Forge a client packet naming a server stream that was never opened. */
    rudp_session_info si;
    rudp_session_get_info(p.srv, &si);
    uint8_t d[256];
    ssize_t pos = rudp_wire_encode_hdr(d, sizeof(d), si.local_cid, 1000);
    rudp_frame f = {.type = RUDP_FRAME_DATA};
    f.u.data.sid = 2;
    f.u.data.len = 1;
    f.u.data.data = (const uint8_t *)"z";
    pos += rudp_wire_encode_frame(d + pos, sizeof(d) - (size_t)pos, &f);
    ssize_t n = rudp_wire_seal(d, (size_t)pos, sizeof(d));
    cr_assert_eq(rudp_session_read_pkt(p.srv, d, (size_t)n, &p.caddr, p.now),
                 RUDP_ERR_PROTOCOL);
    rudp_event ev;
    bool closed = false;
    while (rudp_session_poll_event(p.srv, &ev))
        closed |= ev.type == RUDP_EV_SESSION_CLOSED && ev.error == RUDP_ERR_PROTOCOL;
    cr_assert(closed);
    uint8_t out[TEST_MAX_DGRAM];
    size_t m = one_dgram(p.srv, out, p.now);
    seen s;
    decode(out, m, &s);
    const rudp_frame *g = find_frame(&s, RUDP_FRAME_GOAWAY);
    cr_assert(g && g->u.goaway_code == RUDP_GOAWAY_PROTOCOL);
    test_pair_run(&p, LIMIT(&p));
    cr_assert(rudp_session_is_done(p.srv));
    test_pair_free(&p);
}

/* Rewrites the client's address from the first datagram after |switch_at|. */
static rudp_tstamp switch_at;

static bool migrate_filter(test_pair *p, int dir, uint8_t *pkt, size_t len) {
    if (dir == TEST_DIR_C2S && p->now >= switch_at)
        p->caddr.bytes[3] = 9;
    return true;
}

Test(session, migration_to_a_new_address_keeps_streams) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "before");
    test_pair_run(&p, p.now + RUDP_SEC(1));
    switch_at = p.now;
    p.filter = migrate_filter;
    rudp_stream_write(p.cli, sid, "after", 5);
    rudp_stream_shutdown_write(p.cli, sid);
    test_pair_run(&p, p.now + RUDP_SEC(2));
    uint8_t b[32];
    bool eof;
    int err;
    cr_assert_eq(test_read_all(p.srv, sid, b, sizeof(b), &eof, &err), 11);
    cr_assert(eof);
    cr_assert_eq(memcmp(b, "beforeafter", 11), 0);
    /* Server replies now go to the new address. */
    rudp_stream_write(p.srv, sid, "r", 1);
    uint8_t d[TEST_MAX_DGRAM];
    rudp_addr to;
    ssize_t n = rudp_session_write_pkt(p.srv, d, sizeof(d), &to, p.now);
    cr_assert_gt(n, 0);
    cr_assert_eq(to.bytes[3], 9);
    test_pair_free(&p);
}

Test(session, bytes_discarded_by_a_reset_reopen_the_session_window) {
    /* The server's session window (1 MiB, the least a server advertises)
     * cannot grow: four streams fill it, and the server resets them unread
     * (a program that closes with unread data).  The discarded bytes must
     * give the credit back, or the next stream could never send. */
    test_pair p;
    rudp_settings ss;
    rudp_settings_default(&ss);
    ss.initial_session_window = ss.max_session_window = 1024 * 1024;
    ss.initial_stream_window = ss.max_stream_window = 256 * 1024;
    test_pair_init(&p, NULL, &ss, DELAY);
    establish(&p);
    static uint8_t big[256 * 1024], got[20001];
    test_fill_pattern(big, sizeof(big), 8);
    uint64_t a[4], b;
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(rudp_stream_open(p.cli, &a[i]), RUDP_OK);
        cr_assert_eq(rudp_stream_write(p.cli, a[i], big, sizeof(big)),
                     (ssize_t)sizeof(big));
    }
    test_pair_run(&p, p.now + RUDP_SEC(2));
    for (int i = 0; i < 4; i++) {
        rudp_stream_info si;
        cr_assert_eq(rudp_stream_get_info(p.srv, a[i], &si), RUDP_OK);
        cr_assert_eq(si.bytes_readable, sizeof(big), "stream %d did not fill its window",
                     i);
        cr_assert_eq(rudp_stream_reset(p.srv, a[i], 0), RUDP_OK);
    }
    cr_assert_eq(rudp_stream_open(p.cli, &b), RUDP_OK);
    cr_assert_eq(rudp_stream_write(p.cli, b, big, 20000), 20000);
    rudp_stream_shutdown_write(p.cli, b);
    bool eof;
    size_t rcv = read_to_eof(&p, b, got, sizeof(got), p.now + RUDP_SEC(10), &eof);
    cr_assert(eof, "the next stream stalled after %zu bytes", rcv);
    cr_assert_eq(rcv, 20000);
    cr_assert_eq(memcmp(got, big, 20000), 0);
    test_pair_free(&p);
}

Test(session, the_session_window_covers_every_stream_window) {
    /* Four streams are read for a while, so their windows auto-tune, and
     * then never again (a program that stopped reading); their sender keeps
     * them full.  The session window must hold all of their windows and
     * the whole window of a fifth stream opened then, or the fifth could
     * not send although its program reads. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    static uint8_t big[4 << 20], got[1 << 20];
    test_fill_pattern(big, sizeof(big), 6);
    uint64_t sids[5], taken[4] = {0}, sent[4] = {0};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(rudp_stream_open(p.cli, &sids[i]), RUDP_OK);
    rudp_tstamp until = p.now + RUDP_SEC(3);
    while (test_pair_step(&p, p.now + RUDP_SEC(1)) && p.now < until) {
        for (int i = 0; i < 4; i++) {
            ssize_t w =
                rudp_stream_write(p.cli, sids[i], big + sent[i], sizeof(big) - sent[i]);
            if (w > 0)
                sent[i] += (uint64_t)w;
            if (taken[i] < (1u << 20) && p.srv) {
                bool eof;
                int err;
                taken[i] +=
                    test_read_all(p.srv, sids[i], got, (1u << 20) - taken[i], &eof, &err);
            }
        }
    }
    uint64_t sum = 0;
    for (int i = 0; i < 4; i++) {
        rudp_stream_info si;
        cr_assert_eq(rudp_stream_get_info(p.srv, sids[i], &si), RUDP_OK);
        cr_assert_gt(si.recv_window, 256 * 1024, "stream %d did not auto-tune", i);
        sum += si.recv_window;
    }
    cr_assert_eq(rudp_stream_open(p.cli, &sids[4]), RUDP_OK);
    cr_assert_eq(rudp_stream_write(p.cli, sids[4], "x", 1), 1);
    test_pair_run(&p, p.now + RUDP_MS(100));
    rudp_session_info in;
    rudp_session_get_info(p.srv, &in);
    cr_assert_geq(in.recv_window, sum + 256 * 1024, "session window %lu, streams %lu",
                  (unsigned long)in.recv_window, (unsigned long)sum);
    test_pair_free(&p);
}

Test(session, unread_streams_do_not_starve_a_read_one) {
    /* Twenty streams each send a full stream window the server never reads
     * (connections waiting in a backlog); the one it reads must finish. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    static uint8_t big[256 * 1024], got[256 * 1024];
    test_fill_pattern(big, sizeof(big), 5);
    uint64_t sids[21];
    for (int i = 0; i < 21; i++) {
        cr_assert_eq(rudp_stream_open(p.cli, &sids[i]), RUDP_OK);
        cr_assert_eq(rudp_stream_write(p.cli, sids[i], big, sizeof(big)),
                     (ssize_t)sizeof(big));
        rudp_stream_shutdown_write(p.cli, sids[i]);
    }
    uint64_t last = sids[20];
    bool eof;
    size_t rcv = read_to_eof(&p, last, got, sizeof(got), p.now + RUDP_SEC(20), &eof);
    cr_assert(eof, "the read stream stalled after %zu bytes", rcv);
    cr_assert_eq(rcv, sizeof(big));
    cr_assert_eq(memcmp(got, big, sizeof(big)), 0);
    test_pair_free(&p);
}

/* Drops every datagram over 1500 bytes, like an Ethernet hop. */
static bool drop_jumbo(test_pair *p, int dir, uint8_t *pkt, size_t len) {
    return len <= 1500;
}

/* Moves |n| bytes client to server on a fresh stream and checks them. */
static void move_bytes(test_pair *p, size_t n) {
    static uint8_t big[1 << 20], got[1 << 20];
    test_fill_pattern(big, n, 77);
    uint64_t sid;
    cr_assert_eq(rudp_stream_open(p->cli, &sid), RUDP_OK);
    cr_assert_eq(rudp_stream_write(p->cli, sid, big, n), (ssize_t)n);
    rudp_stream_shutdown_write(p->cli, sid);
    bool eof;
    size_t rcv = read_to_eof(p, sid, got, sizeof(got), LIMIT(p), &eof);
    cr_assert(eof);
    cr_assert_eq(rcv, n);
    cr_assert_eq(memcmp(got, big, n), 0);
}

Test(session, packet_size_probing_reaches_the_route_ceiling) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    rudp_session_set_mtu_ceiling(p.cli, 9000);
    move_bytes(&p, 1 << 20);
    rudp_session_info ci;
    rudp_session_get_info(p.cli, &ci);
    cr_assert_eq(ci.max_packet_size, 9000);
    test_pair_free(&p);
}

Test(session, lost_probes_fall_back_without_a_congestion_response) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    p.filter = drop_jumbo;
    rudp_session_set_mtu_ceiling(p.cli, 9000);
    rudp_session_info before, ci;
    rudp_session_get_info(p.cli, &before);
    move_bytes(&p, 1 << 20);
    rudp_session_get_info(p.cli, &ci);
    cr_assert_eq(ci.max_packet_size, 1452, "packet size %u",
                 ci.max_packet_size); /* 9000 and 8952 were lost */
    cr_assert_eq(p.dropped[TEST_DIR_C2S], 2);
    cr_assert_geq(ci.cwnd, before.cwnd, "a lost probe shrank the window");
    test_pair_free(&p);
}

/* --- zero-copy writes --- */

/* Writes up to |len| bytes of |src| to |sid| in place: reserves them in up
 * to three iovecs, fills them all, and commits the first |commit| (all when
 * fewer were reserved).  Returns the bytes committed, 0 when full. */
static size_t write_in_place(rudp_session *s, uint64_t sid, const uint8_t *src, size_t len,
                             size_t commit) {
    struct iovec iov[3];
    int n = rudp_stream_write_reserve(s, sid, len, iov, 3);
    cr_assert_geq(n, 0, "reserve: %d", n);
    size_t got = test_iov_fill(iov, n, src, len);
    cr_assert_eq(got, test_iov_len(iov, n), "reserved more than asked");
    if (commit > got)
        commit = got;
    cr_assert_eq(rudp_stream_write_commit(s, sid, commit), RUDP_OK);
    return commit;
}

Test(session, zero_copy_write_arrives_byte_exact) {
    /* Bytes written in place across chunk boundaries, committed in part
     * (the rest reserved again next time), reach the peer byte-exact. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    static uint8_t big[300000], got[300001];
    test_fill_pattern(big, sizeof(big), 31);
    uint64_t sid;
    cr_assert_eq(rudp_stream_open(p.cli, &sid), RUDP_OK);
    for (size_t off = 0; off < sizeof(big);) {
        size_t n =
            write_in_place(p.cli, sid, big + off, sizeof(big) - off, 40001 + off % 7);
        cr_assert_gt(n, 0, "send buffer full after %zu bytes", off);
        off += n;
    }
    cr_assert_eq(rudp_stream_shutdown_write(p.cli, sid), RUDP_OK);
    bool eof;
    size_t rcv = read_to_eof(&p, sid, got, sizeof(got), LIMIT(&p), &eof);
    cr_assert(eof, "no EOF after %zu bytes", rcv);
    cr_assert_eq(rcv, sizeof(big));
    cr_assert_eq(memcmp(big, got, sizeof(big)), 0);
    test_pair_free(&p);
}

Test(session, zero_copy_reserve_respects_the_send_buffer) {
    /* With a 5000-byte send buffer a reserve describes at most the room
     * left, RUDP_ERR_WOULDBLOCK when full; acknowledged bytes make room
     * again. */
    rudp_settings cs;
    rudp_settings_default(&cs);
    cs.stream_send_buffer = 5000;
    test_pair p;
    test_pair_init(&p, &cs, NULL, DELAY);
    establish(&p);
    static uint8_t pat[10000];
    test_fill_pattern(pat, sizeof(pat), 32);
    uint64_t sid;
    struct iovec iov[4];
    cr_assert_eq(rudp_stream_open(p.cli, &sid), RUDP_OK);
    cr_assert_eq(write_in_place(p.cli, sid, pat, 3000, 3000), 3000);
    cr_assert_eq(write_in_place(p.cli, sid, pat + 3000, 7000, 7000), 2000);
    cr_assert_eq(rudp_stream_write_reserve(p.cli, sid, 1, iov, 4), RUDP_ERR_WOULDBLOCK);
    cr_assert_eq(rudp_stream_send_room(p.cli, sid), 0);
    cr_assert_eq(rudp_stream_write(p.cli, sid, "x", 1), RUDP_ERR_WOULDBLOCK);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    int n = rudp_stream_write_reserve(p.cli, sid, sizeof(pat), iov, 4);
    cr_assert_gt(n, 0);
    cr_assert_eq(test_iov_len(iov, n), 5000);
    test_pair_free(&p);
}

Test(session, zero_copy_reserve_refused_after_shutdown_and_reset) {
    /* A shut write side refuses with RUDP_ERR_STREAM_STATE, a reset one
     * with RUDP_ERR_RESET. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t a, b;
    struct iovec iov[2];
    open_and_write(p.cli, &a, "a");
    open_and_write(p.cli, &b, "b");
    cr_assert_eq(rudp_stream_shutdown_write(p.cli, a), RUDP_OK);
    cr_assert_eq(rudp_stream_write_reserve(p.cli, a, 10, iov, 2), RUDP_ERR_STREAM_STATE);
    cr_assert_eq(rudp_stream_reset(p.cli, b, 0), RUDP_OK);
    cr_assert_eq(rudp_stream_write_reserve(p.cli, b, 10, iov, 2), RUDP_ERR_RESET);
    test_pair_free(&p);
}

Test(session, zero_copy_ack_in_between_ends_the_reservation) {
    /* An acknowledgement processed between reserve and commit may hand the
     * reserved space back to the pool: the commit is then refused
     * (RUDP_ERR_INVAL) instead of queueing bytes with no chunk behind them,
     * and the stream goes on. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "a");
    struct iovec iov[2];
    cr_assert_eq(rudp_stream_write_reserve(p.cli, sid, 100, iov, 2), 1);
    test_pair_run(&p, p.now + RUDP_SEC(1)); /* "a" is acknowledged */
    cr_assert_eq(rudp_stream_write_commit(p.cli, sid, 100), RUDP_ERR_INVAL);
    cr_assert_eq(write_in_place(p.cli, sid, (const uint8_t *)"b", 1, 1), 1);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    char buf[8];
    cr_assert_eq(rudp_stream_read(p.srv, sid, buf, sizeof(buf)), 2);
    cr_assert_eq(memcmp(buf, "ab", 2), 0);
    test_pair_free(&p);
}

Test(session, zero_copy_commit_of_zero_is_a_noop) {
    /* Committing 0 bytes, after a reserve or without one, queues nothing,
     * sends nothing and leaves the idle stream holding no chunk; the next
     * commit still lands after the old bytes. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "a");
    test_pair_run(&p, p.now + RUDP_SEC(1));
    uint8_t d[TEST_MAX_DGRAM];
    struct iovec iov[2];
    cr_assert_eq(rudp_stream_write_reserve(p.cli, sid, 100, iov, 2), 1);
    cr_assert_eq(rudp_stream_write_commit(p.cli, sid, 0), RUDP_OK);
    cr_assert_eq(rudp_stream_write_commit(p.cli, sid, 0), RUDP_OK);
    rudp_stream_info si;
    cr_assert_eq(rudp_stream_get_info(p.cli, sid, &si), RUDP_OK);
    cr_assert_eq(si.bytes_written, 1);
    rudp_session_info in;
    rudp_session_get_info(p.cli, &in);
    cr_assert_eq(in.chunks_in_use, 0);
    cr_assert_eq(one_dgram(p.cli, d, p.now), 0);
    cr_assert_eq(write_in_place(p.cli, sid, (const uint8_t *)"bc", 2, 2), 2);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    char buf[8];
    cr_assert_eq(rudp_stream_read(p.srv, sid, buf, sizeof(buf)), 3);
    cr_assert_eq(memcmp(buf, "abc", 3), 0);
    test_pair_free(&p);
}

Test(session, zero_copy_on_an_unknown_stream) {
    /* A stream never opened, or released, is RUDP_ERR_NO_STREAM to both. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    struct iovec iov[2];
    cr_assert_eq(rudp_stream_write_reserve(p.cli, 99, 10, iov, 2), RUDP_ERR_NO_STREAM);
    cr_assert_eq(rudp_stream_write_commit(p.cli, 99, 1), RUDP_ERR_NO_STREAM);
    cr_assert_eq(rudp_stream_write_commit(p.cli, 99, 0), RUDP_ERR_NO_STREAM);
    open_and_write(p.cli, &sid, "a");
    cr_assert_eq(rudp_stream_release(p.cli, sid), RUDP_OK);
    cr_assert_eq(rudp_stream_write_reserve(p.cli, sid, 10, iov, 2), RUDP_ERR_NO_STREAM);
    cr_assert_eq(rudp_stream_write_commit(p.cli, sid, 1), RUDP_ERR_NO_STREAM);
    test_pair_free(&p);
}

/* --- event user pointers --- */

#define EV_BIT(t) (1u << (t))

/* Drains the events of |s|, asserting that every event of stream |sid|
 * carries |user|; returns the types seen for |sid| as EV_BIT()s. */
static unsigned drain_with_user(rudp_session *s, uint64_t sid, void *user) {
    unsigned types = 0;
    rudp_event ev;
    while (rudp_session_poll_event(s, &ev)) {
        if (ev.sid != sid)
            continue;
        cr_assert_eq(ev.user, user, "event %d: user %p, want %p", ev.type, ev.user, user);
        types |= EV_BIT(ev.type);
    }
    return types;
}

Test(session, stream_events_carry_the_user_pointer) {
    /* READABLE, WRITABLE and RESET carry what rudp_stream_set_user attached
     * on that side. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    int cli_tag, srv_tag;
    uint64_t sid;
    open_and_write(p.cli, &sid, "ping");
    cr_assert_eq(rudp_stream_set_user(p.cli, sid, &cli_tag), RUDP_OK);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    cr_assert_eq(rudp_stream_set_user(p.srv, sid, &srv_tag), RUDP_OK);
    cr_assert_eq(rudp_stream_write(p.srv, sid, "pong", 4), 4);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    unsigned c = drain_with_user(p.cli, sid, &cli_tag);
    unsigned s = drain_with_user(p.srv, sid, &srv_tag);
    cr_assert(c & EV_BIT(RUDP_EV_STREAM_WRITABLE));
    cr_assert(c & EV_BIT(RUDP_EV_STREAM_READABLE));
    cr_assert(s & EV_BIT(RUDP_EV_STREAM_READABLE));
    cr_assert(s & EV_BIT(RUDP_EV_STREAM_WRITABLE));
    cr_assert_eq(rudp_stream_reset(p.srv, sid, RUDP_RST_ABORT), RUDP_OK);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    c = drain_with_user(p.cli, sid, &cli_tag);
    cr_assert(c & EV_BIT(RUDP_EV_STREAM_RESET));
    test_pair_free(&p);
}

Test(session, stream_events_without_a_user_carry_null) {
    /* Where no pointer was set, READABLE, WRITABLE and RESET carry NULL. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "ping");
    test_pair_run(&p, p.now + RUDP_SEC(1));
    cr_assert_eq(rudp_stream_write(p.srv, sid, "pong", 4), 4);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    unsigned c = drain_with_user(p.cli, sid, NULL);
    unsigned s = drain_with_user(p.srv, sid, NULL);
    cr_assert(c & EV_BIT(RUDP_EV_STREAM_WRITABLE));
    cr_assert(c & EV_BIT(RUDP_EV_STREAM_READABLE));
    cr_assert(s & EV_BIT(RUDP_EV_STREAM_READABLE));
    cr_assert_eq(rudp_stream_reset(p.cli, sid, RUDP_RST_ABORT), RUDP_OK);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    s = drain_with_user(p.srv, sid, NULL);
    cr_assert(s & EV_BIT(RUDP_EV_STREAM_RESET));
    test_pair_free(&p);
}

Test(session, listening_state_reaches_the_client) {
    /* A server whose port has no listener says so in its SYN-ACK; the
     * client learns it before the handshake event, then learns the
     * listener came back from a LISTENING frame (with an event), and a
     * retransmitted older LISTENING does not undo it. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    uint8_t d[TEST_MAX_DGRAM], old[TEST_MAX_DGRAM];
    size_t n = one_dgram(p.cli, d, p.now);
    int err;
    rudp_session *srv = rudp_session_new_server(&p.sset, 7, d, n, &p.caddr, p.now, &err);
    cr_assert_not_null(srv);
    rudp_session_set_listening(srv, false);
    n = one_dgram(srv, d, p.now);
    seen s;
    decode(d, n, &s);
    const rudp_frame *sf = find_frame(&s, RUDP_FRAME_SESSION);
    cr_assert(sf && (sf->u.session.flags & RUDP_FLAG_CLOSED));
    cr_assert_eq(rudp_session_read_pkt(p.cli, d, n, &p.saddr, p.now), RUDP_OK);
    cr_assert(rudp_session_is_established(p.cli));
    cr_assert_not(rudp_session_peer_listening(p.cli));
    rudp_session_set_listening(srv, true);
    rudp_session_set_listening(srv, false); /* an older state, sent first */
    size_t nold = one_dgram(srv, old, p.now);
    rudp_session_set_listening(srv, true);
    n = one_dgram(srv, d, p.now);
    decode(d, n, &s);
    cr_assert(find_frame(&s, RUDP_FRAME_LISTENING));
    cr_assert_eq(rudp_session_read_pkt(p.cli, d, n, &p.saddr, p.now), RUDP_OK);
    cr_assert(rudp_session_peer_listening(p.cli));
    cr_assert(test_drain_events_for(p.cli, RUDP_EV_PEER_LISTENING, 0));
    cr_assert_eq(rudp_session_read_pkt(p.cli, old, nold, &p.saddr, p.now), RUDP_OK);
    cr_assert(rudp_session_peer_listening(p.cli), "a stale LISTENING took effect");
    rudp_session_del(srv);
    test_pair_free(&p);
}
