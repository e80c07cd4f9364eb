/*
 * helpers.h — fixtures shared by the unit tests: a deterministic byte
 * pattern, filling reserved iovecs, and a pair of sessions joined by an
 * in-memory link on a virtual clock (a miniature of the simulator, for
 * state-machine tests that need to drop, inspect or hold particular
 * datagrams).
 */
#ifndef RUDP_TEST_HELPERS_H
#define RUDP_TEST_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "rudp/rudp.h"

/* Fills |buf| with a deterministic pattern derived from |seed|. */
void test_fill_pattern(uint8_t *buf, size_t len, uint64_t seed);

/* Copies |len| bytes from |src| into the |n| iovecs in order (what a readv
 * into reserved space does); returns the count, at most their total size. */
size_t test_iov_fill(const struct iovec *iov, int n, const uint8_t *src, size_t len);

/* Returns the total length of |n| iovecs. */
size_t test_iov_len(const struct iovec *iov, int n);

#define TEST_DIR_C2S 0
#define TEST_DIR_S2C 1
#define TEST_MAX_DGRAM 9100
#define TEST_QUEUE 4096

typedef struct test_dgram {
    uint8_t data[TEST_MAX_DGRAM];
    size_t len;
    rudp_tstamp at; /* arrival time */
    uint64_t seq;   /* send order: datagrams due at the same time arrive in it */
    int dir;
} test_dgram;

typedef struct test_pair test_pair;

/* Called for every datagram a session sends; return false to drop it.  It
 * may inspect and modify the bytes. */
typedef bool (*test_filter)(test_pair *p, int dir, uint8_t *pkt, size_t len);

struct test_pair {
    rudp_session *cli, *srv;
    rudp_settings cset, sset;
    rudp_tstamp now;
    rudp_tstamp delay; /* one-way */
    test_dgram *q;     /* in flight, unordered */
    size_t nq;
    test_filter filter;
    void *user;
    uint64_t sent[2], dropped[2];
    uint64_t seq; /* datagrams queued so far */
    rudp_addr caddr, saddr;
    bool srv_busy; /* the server side answers INITIALs with a RETRY first */
};

/* Sets up a client (not yet sending) and an empty server side. */
void test_pair_init(test_pair *p, const rudp_settings *cs, const rudp_settings *ss,
                    rudp_tstamp delay);
void test_pair_free(test_pair *p);

/* Lets both sessions send everything they may send at p->now. */
void test_pair_flush(test_pair *p);

/* Advances to the next arrival or deadline (not past |limit|) and processes
 * it, then flushes.  Returns false when nothing is scheduled before limit. */
bool test_pair_step(test_pair *p, rudp_tstamp limit);

/* Steps until nothing is scheduled before |limit|. */
void test_pair_run(test_pair *p, rudp_tstamp limit);

/* Steps until |cond| holds (returns true) or |limit| passes (false). */
bool test_pair_run_until(test_pair *p, bool (*cond)(test_pair *), rudp_tstamp limit);

/* Reads everything readable on |sid| into |out| (cap bytes); returns the
 * count and sets *eof when the stream ended. Stops at errors, returned in
 * *err (RUDP_OK otherwise). */
size_t test_read_all(rudp_session *s, uint64_t sid, uint8_t *out, size_t cap, bool *eof,
                     int *err);

/* Returns true when session |s| has an event of |type| for |sid| pending;
 * drains the events, remembering nothing else. */
bool test_drain_events_for(rudp_session *s, int type, uint64_t sid);

#endif
