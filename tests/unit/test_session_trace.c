/*
 * test_session_trace.c — the session's trace hook (engine/session_trace.c,
 * rudp/trace.h): a pair of sessions on the virtual clock, each with a hook
 * that tallies what it is told, checked against the sessions' own counters
 * (rudp_session_info) and against the states the stream and session APIs
 * report.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "helpers.h"
#include "rudp/trace.h"

#define DELAY RUDP_MS(20)
#define LIMIT(p) ((p)->now + RUDP_SEC(120))
#define MAX_LOG 256

/* What one session's hook was told. */
typedef struct tally {
    uint64_t sent, sent_bytes, sent_data, recv, recv_bytes, lost, lost_data, dropped;
    uint64_t metrics, acks_sent, pings, padded;
    int drop_reason;
    uint8_t cc;        /* the controller's state last reported */
    int cc_reports;    /* how many times it changed */
    bool cc_chained;   /* every report's .from was the last .to */
    bool time_ordered; /* no event went back in time */
    rudp_tstamp last;
    uint8_t sess[16]; /* session states in order */
    int nsess;
    int closed, closed_error;
    struct {
        uint64_t sid;
        uint8_t from, to;
    } streams[MAX_LOG];
    int nstreams;
} tally;

/* Counts the frames of a sent packet that the tests look at. */
static void tally_frames(tally *t, const rudp_trace_packet *pkt) {
    for (uint32_t i = 0; i < pkt->nframes; i++) {
        const rudp_trace_frame *f = &pkt->frames[i];
        if (f->type == RUDP_TRACE_FRAME_DATA)
            t->sent_data += f->len;
        t->acks_sent += f->type == RUDP_TRACE_FRAME_ACK;
        t->pings += f->type == RUDP_TRACE_FRAME_PING;
        t->padded += f->type == RUDP_TRACE_FRAME_PADDING;
    }
}

/* Tallies a packet event. */
static void tally_packet(tally *t, const rudp_trace_event *ev) {
    const rudp_trace_packet *pkt = ev->u.pkt;
    if (ev->type == RUDP_TRACE_PACKET_SENT) {
        t->sent++;
        t->sent_bytes += pkt->size;
        tally_frames(t, pkt);
    } else if (ev->type == RUDP_TRACE_PACKET_RECEIVED) {
        t->recv++;
        t->recv_bytes += pkt->size;
    } else {
        t->lost++;
        for (uint32_t i = 0; i < pkt->nframes; i++)
            t->lost_data += pkt->frames[i].len;
    }
}

/* Tallies a state event. */
static void tally_state(tally *t, const rudp_trace_event *ev) {
    if (ev->type == RUDP_TRACE_CC_STATE) {
        t->cc_chained &= ev->u.cc.from == t->cc;
        t->cc = ev->u.cc.to;
        t->cc_reports++;
    } else if (ev->type == RUDP_TRACE_SESSION_STATE && t->nsess < 16) {
        t->sess[t->nsess++] = ev->u.session.to;
    } else if (ev->type == RUDP_TRACE_STREAM_STATE && t->nstreams < MAX_LOG) {
        t->streams[t->nstreams].sid = ev->u.stream.sid;
        t->streams[t->nstreams].from = ev->u.stream.from;
        t->streams[t->nstreams].to = ev->u.stream.to;
        t->nstreams++;
    } else if (ev->type == RUDP_TRACE_SESSION_CLOSED) {
        t->closed++;
        t->closed_error = ev->u.closed.error;
    }
}

/* The hook: |user| is the session's tally. */
static void on_trace(void *user, const rudp_trace_event *ev) {
    tally *t = user;
    t->time_ordered &= ev->now >= t->last;
    t->last = ev->now;
    switch (ev->type) {
    case RUDP_TRACE_PACKET_SENT:
    case RUDP_TRACE_PACKET_RECEIVED:
    case RUDP_TRACE_PACKET_LOST:
        tally_packet(t, ev);
        break;
    case RUDP_TRACE_PACKET_DROPPED:
        t->dropped++;
        t->drop_reason = ev->u.drop.reason;
        break;
    case RUDP_TRACE_METRICS:
        t->metrics++;
        cr_assert_gt(ev->u.metrics.cwnd, 0);
        break;
    default:
        tally_state(t, ev);
        break;
    }
}

/* Sets up a pair whose sessions report to |c| and |s|, with congestion
 * controller |cc|. */
static void traced_pair_cc(test_pair *p, tally *c, tally *s, enum rudp_cc_algo cc) {
    rudp_settings cs, ss;
    memset(c, 0, sizeof(*c));
    memset(s, 0, sizeof(*s));
    c->cc_chained = s->cc_chained = c->time_ordered = s->time_ordered = true;
    rudp_settings_default(&cs);
    rudp_settings_default(&ss);
    cs.trace = ss.trace = on_trace;
    cs.trace_user = c;
    ss.trace_user = s;
    cs.cc = ss.cc = cc;
    test_pair_init(p, &cs, &ss, DELAY);
}

/* The same with the default controller. */
static void traced_pair(test_pair *p, tally *c, tally *s) {
    rudp_settings def;
    rudp_settings_default(&def);
    traced_pair_cc(p, c, s, def.cc);
}

/* Link filter: drops every 23rd datagram each way (about 4 %). */
static bool drop_some(test_pair *p, int dir, uint8_t *pkt, size_t len) {
    return p->sent[dir] % 23 != 0;
}

static bool srv_got_all(test_pair *p) {
    return *(size_t *)p->user == 0;
}

/* Moves |n| bytes from client to server over |p| and reads them. */
static void transfer(test_pair *p, size_t n) {
    static uint8_t data[1 << 20], got[1 << 20];
    uint64_t sid;
    cr_assert_leq(n, sizeof(data));
    test_fill_pattern(data, n, 5);
    cr_assert_eq(rudp_stream_open(p->cli, &sid), RUDP_OK);
    cr_assert_eq(rudp_stream_write(p->cli, sid, data, n), (ssize_t)n);
    cr_assert_eq(rudp_stream_shutdown_write(p->cli, sid), RUDP_OK);
    size_t left = n, off = 0;
    p->user = &left;
    while (left > 0 && test_pair_step(p, LIMIT(p))) {
        bool eof;
        int err;
        size_t k = test_read_all(p->srv, sid, got + off, sizeof(got) - off, &eof, &err);
        off += k;
        left -= k;
    }
    cr_assert(srv_got_all(p), "%zu bytes left", left);
    cr_assert_eq(memcmp(got, data, n), 0);
}

/* Checks that |t| counted what |s| says it did. */
static void expect_counts(const tally *t, rudp_session *s, const char *who) {
    rudp_session_info in;
    rudp_session_get_info(s, &in);
    cr_assert_eq(t->sent, in.pkts_sent, "%s: %lu sent traced, %lu by the session", who,
                 t->sent, in.pkts_sent);
    cr_assert_eq(t->sent_bytes, in.bytes_sent, "%s: sent bytes", who);
    cr_assert_eq(t->sent_data, in.stream_bytes_sent, "%s: DATA bytes sent", who);
    cr_assert_eq(t->recv, in.pkts_recv, "%s: received", who);
    cr_assert_eq(t->recv_bytes, in.bytes_recv, "%s: received bytes", who);
    cr_assert_eq(t->lost, in.pkts_lost, "%s: %lu lost traced, %lu by the session", who,
                 t->lost, in.pkts_lost);
    cr_assert(t->time_ordered, "%s: an event went back in time", who);
}

Test(session_trace, a_lossy_transfer_traces_every_packet) {
    test_pair p;
    tally c, s;
    traced_pair(&p, &c, &s);
    p.filter = drop_some;
    transfer(&p, 1 << 20);
    test_pair_run(&p, p.now + RUDP_SEC(2));
    expect_counts(&c, p.cli, "client");
    expect_counts(&s, p.srv, "server");
    cr_assert_gt(c.lost, 0, "no loss on a lossy link");
    cr_assert_geq(c.sent_data, 1 << 20);
    cr_assert_geq(c.lost_data, c.sent_data - (1 << 20), "retransmitted more than was lost");
    cr_assert_gt(c.metrics, 0);
    cr_assert_gt(s.acks_sent, 0);
    cr_assert_gt(c.padded, 0, "the INITIAL's padding was not reported");
    test_pair_free(&p);
}

Test(session_trace, congestion_states_chain) {
    /* NewReno: a loss starts a recovery period, which ends in congestion
     * avoidance (BBR ignores random loss, and on this link of unlimited
     * rate it never leaves STARTUP). */
    test_pair p;
    tally c, s;
    traced_pair_cc(&p, &c, &s, RUDP_CC_NEWRENO);
    p.filter = drop_some;
    transfer(&p, 1 << 20);
    cr_assert_geq(c.cc_reports, 3, "only %d states reported", c.cc_reports);
    cr_assert(c.cc_chained, "a report's old state is not the previous new one");
    cr_assert_neq(c.cc, 0);
    test_pair_free(&p);
}

/* Returns the states stream |sid| went through in |t| (the .to of each
 * report, in order) in |out|; returns how many. */
static int stream_path(const tally *t, uint64_t sid, uint8_t *out, int max) {
    int n = 0;
    for (int i = 0; i < t->nstreams && n < max; i++)
        if (t->streams[i].sid == sid)
            out[n++] = t->streams[i].to;
    return n;
}

/* Ends stream 1 of |p| both ways (the client's half is shut already) and
 * lets both ends release it. */
static void finish_stream(test_pair *p) {
    cr_assert_eq(rudp_stream_shutdown_write(p->srv, 1), RUDP_OK);
    test_pair_run(p, p->now + RUDP_SEC(1));
    uint8_t buf[8];
    bool eof;
    int err;
    test_read_all(p->cli, 1, buf, sizeof(buf), &eof, &err);
    cr_assert(eof);
    cr_assert_eq(rudp_stream_release(p->cli, 1), RUDP_OK);
    cr_assert_eq(rudp_stream_release(p->srv, 1), RUDP_OK);
    test_pair_run(p, p->now + RUDP_SEC(1));
}

Test(session_trace, a_stream_is_traced_from_open_to_freed) {
    test_pair p;
    tally c, s;
    traced_pair(&p, &c, &s);
    transfer(&p, 1000);
    finish_stream(&p);
    uint8_t path[32];
    int n = stream_path(&c, 1, path, 32);
    cr_assert_geq(n, 3);
    cr_assert_eq(c.streams[0].from, RUDP_TRACE_STREAM_NONE);
    cr_assert_eq(path[0], RUDP_STREAM_CONNECTING);
    cr_assert_eq(path[n - 2], RUDP_STREAM_CLOSED);
    cr_assert_eq(path[n - 1], RUDP_TRACE_STREAM_NONE, "the freed record was not reported");
    n = stream_path(&s, 1, path, 32);
    cr_assert_eq(path[0], RUDP_STREAM_SYN_RECEIVED);
    cr_assert_eq(path[n - 1], RUDP_TRACE_STREAM_NONE);
    for (int i = 1; i < c.nstreams; i++)
        cr_assert_neq(c.streams[i].from, c.streams[i].to, "a report without a change");
    test_pair_free(&p);
}

Test(session_trace, session_states_and_the_close) {
    test_pair p;
    tally c, s;
    traced_pair(&p, &c, &s);
    transfer(&p, 1000);
    finish_stream(&p);
    cr_assert_eq(rudp_session_close(p.cli, 0, p.now), RUDP_OK);
    test_pair_run(&p, p.now + RUDP_SEC(30));
    cr_assert(rudp_session_is_done(p.cli));
    uint8_t want[] = {RUDP_TRACE_SESSION_CONNECTING, RUDP_TRACE_SESSION_ESTABLISHED,
                      RUDP_TRACE_SESSION_CLOSING, RUDP_TRACE_SESSION_DRAINING,
                      RUDP_TRACE_SESSION_DONE};
    cr_assert_eq(c.nsess, 5);
    cr_assert_arr_eq(c.sess, want, sizeof(want));
    cr_assert_eq(s.sess[0], RUDP_TRACE_SESSION_ESTABLISHED);
    cr_assert_eq(c.closed, 1);
    cr_assert_eq(c.closed_error, RUDP_OK);
    cr_assert_eq(s.closed, 1);
    cr_assert_eq(s.closed_error, RUDP_ERR_PEER_CLOSED);
    test_pair_free(&p);
}

/* Link filter: delivers every client datagram twice (the copy is queued by
 * the filter through the helper's queue being unordered: it sends it again
 * with the same bytes). */
static bool twice(test_pair *p, int dir, uint8_t *pkt, size_t len) {
    if (dir == TEST_DIR_C2S && p->user == NULL && p->srv) {
        static uint8_t copy[TEST_MAX_DGRAM];
        memcpy(copy, pkt, len);
        p->user = copy;
        rudp_session_read_pkt(p->srv, copy, len, &p->caddr, p->now);
        memcpy(copy, pkt, len);
        rudp_session_read_pkt(p->srv, copy, len, &p->caddr, p->now);
    }
    return true;
}

Test(session_trace, a_duplicate_is_reported_dropped) {
    test_pair p;
    tally c, s;
    traced_pair(&p, &c, &s);
    test_pair_run(&p, p.now + RUDP_SEC(1)); /* established */
    uint64_t sid;
    cr_assert_eq(rudp_stream_open(p.cli, &sid), RUDP_OK);
    cr_assert_eq(rudp_stream_write(p.cli, sid, "x", 1), 1);
    p.filter = twice;
    test_pair_flush(&p);
    cr_assert_geq(s.dropped, 1);
    cr_assert_eq(s.drop_reason, RUDP_ERR_DUPLICATE);
    rudp_session_info in;
    rudp_session_get_info(p.srv, &in);
    cr_assert_eq(s.dropped, in.pkts_dropped);
    test_pair_free(&p);
}

/* A session with no hook works as before (every other unit test runs
 * that way); here the settings' default is checked. */
Test(session_trace, the_default_is_no_hook) {
    rudp_settings set;
    rudp_settings_default(&set);
    cr_assert_null(set.trace);
    cr_assert_null(set.trace_user);
}
