/*
 * helpers.c — fixtures shared by the unit tests.
 */
#include "helpers.h"

#include <stdlib.h>
#include <string.h>

void test_fill_pattern(uint8_t *buf, size_t len, uint64_t seed) {
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
}

size_t test_iov_fill(const struct iovec *iov, int n, const uint8_t *src, size_t len) {
    size_t done = 0;
    for (int i = 0; i < n && done < len; i++) {
        size_t k = iov[i].iov_len < len - done ? iov[i].iov_len : len - done;
        memcpy(iov[i].iov_base, src + done, k);
        done += k;
    }
    return done;
}

size_t test_iov_len(const struct iovec *iov, int n) {
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    return total;
}

void test_pair_init(test_pair *p, const rudp_settings *cs, const rudp_settings *ss,
                    rudp_tstamp delay) {
    memset(p, 0, sizeof(*p));
    if (cs)
        p->cset = *cs;
    else
        rudp_settings_default(&p->cset);
    if (ss)
        p->sset = *ss;
    else
        rudp_settings_default(&p->sset);
    p->delay = delay;
    p->now = RUDP_SEC(1);
    p->q = calloc(TEST_QUEUE, sizeof(*p->q));
    p->caddr.len = 4;
    memcpy(p->caddr.bytes, "\x0a\0\0\x01", 4);
    p->saddr.len = 4;
    memcpy(p->saddr.bytes, "\x0a\0\0\x02", 4);
    p->cli = rudp_session_new_client(&p->cset, 11, &p->saddr, p->now);
}

void test_pair_free(test_pair *p) {
    rudp_session_del(p->cli);
    rudp_session_del(p->srv);
    free(p->q);
}

/* Sends every datagram |s| has now in direction |dir|. */
static void pair_send_all(test_pair *p, rudp_session *s, int dir) {
    uint8_t buf[TEST_MAX_DGRAM];
    rudp_addr to;
    for (int i = 0; i < 100000; i++) {
        ssize_t n = rudp_session_write_pkt(s, buf, sizeof(buf), &to, p->now);
        if (n <= 0)
            return;
        p->sent[dir]++;
        if ((p->filter && !p->filter(p, dir, buf, (size_t)n)) || p->nq == TEST_QUEUE) {
            p->dropped[dir]++; /* by the filter, or at the tail of a full queue */
            continue;
        }
        test_dgram *d = &p->q[p->nq++];
        memcpy(d->data, buf, (size_t)n);
        d->len = (size_t)n;
        d->at = p->now + p->delay;
        d->seq = p->seq++;
        d->dir = dir;
    }
}

void test_pair_flush(test_pair *p) {
    if (p->cli)
        pair_send_all(p, p->cli, TEST_DIR_C2S);
    if (p->srv)
        pair_send_all(p, p->srv, TEST_DIR_S2C);
}

/* Queues |len| bytes at |data| from the server as if it had sent them (a
 * reply that made no session: RETRY, REFUSE). */
static void pair_queue_reply(test_pair *p, const uint8_t *data, size_t len) {
    if (p->nq == TEST_QUEUE || len > TEST_MAX_DGRAM)
        return;
    test_dgram *d = &p->q[p->nq++];
    memcpy(d->data, data, len);
    d->len = len;
    d->at = p->now + p->delay;
    d->seq = p->seq++;
    d->dir = TEST_DIR_S2C;
}

/* Delivers datagram |d| to its receiver.  The receiver decrypts in place:
 * it gets a copy, so a test may still look at or replay |d|. */
static void pair_deliver(test_pair *p, const test_dgram *d) {
    static uint8_t copy[TEST_MAX_DGRAM];
    memcpy(copy, d->data, d->len);
    if (d->dir == TEST_DIR_S2C) {
        if (p->cli)
            rudp_session_read_pkt(p->cli, copy, d->len, &p->saddr, p->now);
        return;
    }
    if (p->srv) {
        rudp_session_read_pkt(p->srv, copy, d->len, &p->caddr, p->now);
        return;
    }
    int err;
    rudp_reply reply;
    p->srv = rudp_session_new_server(&p->sset, 22, copy, d->len, &p->caddr, p->now,
                                     p->srv_busy, &reply, &err);
    if (!p->srv)
        pair_queue_reply(p, reply.buf, reply.len);
}

/* Returns the index of the earliest arrival (the first sent among those due
 * at the same time: the link does not reorder), or -1. */
static long pair_next_arrival(const test_pair *p) {
    long best = -1;
    for (size_t i = 0; i < p->nq; i++) {
        const test_dgram *d = &p->q[i], *b = best < 0 ? NULL : &p->q[best];
        if (!b || d->at < b->at || (d->at == b->at && d->seq < b->seq))
            best = (long)i;
    }
    return best;
}

bool test_pair_step(test_pair *p, rudp_tstamp limit) {
    test_pair_flush(p);
    long a = pair_next_arrival(p);
    rudp_tstamp t = a >= 0 ? p->q[a].at : RUDP_TSTAMP_NEVER;
    rudp_tstamp dc = p->cli ? rudp_session_deadline(p->cli) : RUDP_TSTAMP_NEVER;
    rudp_tstamp ds = p->srv ? rudp_session_deadline(p->srv) : RUDP_TSTAMP_NEVER;
    if (dc < t)
        t = dc;
    if (ds < t)
        t = ds;
    if (t == RUDP_TSTAMP_NEVER || t > limit)
        return false;
    if (t > p->now)
        p->now = t;
    if (a >= 0 && p->q[a].at <= p->now) {
        test_dgram d = p->q[a];
        p->q[a] = p->q[--p->nq];
        pair_deliver(p, &d);
    }
    if (p->cli && rudp_session_deadline(p->cli) <= p->now)
        rudp_session_handle_timeout(p->cli, p->now);
    if (p->srv && rudp_session_deadline(p->srv) <= p->now)
        rudp_session_handle_timeout(p->srv, p->now);
    test_pair_flush(p);
    return true;
}

void test_pair_run(test_pair *p, rudp_tstamp limit) {
    for (long i = 0; i < 10000000 && test_pair_step(p, limit); i++)
        ;
}

bool test_pair_run_until(test_pair *p, bool (*cond)(test_pair *), rudp_tstamp limit) {
    for (long i = 0; i < 10000000; i++) {
        if (cond(p))
            return true;
        if (!test_pair_step(p, limit))
            return cond(p);
    }
    return false;
}

size_t test_read_all(rudp_session *s, uint64_t sid, uint8_t *out, size_t cap, bool *eof,
                     int *err) {
    size_t got = 0;
    *eof = false;
    *err = RUDP_OK;
    for (;;) {
        ssize_t n = rudp_stream_read(s, sid, out + got, cap - got);
        if (n == 0) {
            *eof = true;
            return got;
        }
        if (n < 0) {
            if (n != RUDP_ERR_WOULDBLOCK)
                *err = (int)n;
            return got;
        }
        got += (size_t)n;
        if (got == cap)
            return got;
    }
}

bool test_drain_events_for(rudp_session *s, int type, uint64_t sid) {
    bool seen = false;
    rudp_event ev;
    while (rudp_session_poll_event(s, &ev))
        if ((int)ev.type == type && ev.sid == sid)
            seen = true;
    return seen;
}
