/*
 * test_bridge.c — tests of engine/rt_bridge.c: a stream joined to the
 * engine's end of a program's socketpair, client and server in one process.
 *
 * Backpressure end to end: a program that writes to a peer that does not
 * read must see its socket stop taking bytes after a bounded amount (the
 * stream's send buffer, the peer's windows and the two AF_UNIX socket
 * buffers), not after the engine has buffered all it was given.  Then every
 * byte arrives, in order, and a shutdown(SHUT_WR) is EOF after the last
 * one, in both directions; the connection ends DONE on the board.  The
 * engine's abstract name of an accepted socket carries its board slot and
 * TCP-level addresses.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

/* What a writer may have in flight before backpressure must have stopped
 * it, and what it must at least get through (more than the two AF_UNIX
 * socket buffers hold, so the engine did carry bytes). */
#define BRIDGE_CAP (64ull << 20)
#define BRIDGE_MIN (1ull << 20)
/* How long a socket must stay unwritable to count as stopped. */
#define BRIDGE_QUIET_MS 1000

TestSuite(bridge, .timeout = RTEST_TIMEOUT_S, .fini = rtest_cleanup);

/* A connection from this process to its own listener. */
typedef struct bridge_pair {
    rtest_listener l;
    rtest_conn c;
    int sfd; /* the accepted end */
    rtest_peer peer;
} bridge_pair;

/* Listens on 127.0.0.1, connects, accepts and decodes the accepted name. */
static void pair_open(bridge_pair *p) {
    rtest_engine(NULL);
    rtest_listen(&p->l, "127.0.0.1", 16);
    int rv = rtest_connect(&p->c, (struct sockaddr *)&p->l.addr, sizeof(p->l.addr));
    cr_assert_eq(rv, RUDP_OK, "rudp_rt_connect: %s", rudp_strerror(rv));
    p->sfd = rtest_accept(p->l.lfd, rtest_deadline(RTEST_PHASE_MS));
    cr_assert_geq(p->sfd, 0, "no connection reached the listener");
    cr_assert(rtest_peer_of(p->sfd, &p->peer), "accepted name not the engine's");
    uint32_t st = rtest_wait_state(p->c.ref.slot, RUDP_SLOT_CONNECTING,
                                   rtest_deadline(RTEST_PHASE_MS));
    cr_assert_eq(st, RUDP_SLOT_CONNECTED, "client slot state %u", st);
}

static void pair_close(bridge_pair *p) {
    close(p->c.fd);
    close(p->sfd);
    rtest_unlisten(&p->l);
}

/* |w| writes until backpressure stops it; then |r| reads every byte, |w|
 * shuts its write side and |r| reads EOF right after the last byte.
 * Returns how many bytes |w| got in before it was stopped. */
static uint64_t one_way(int w, int r, uint64_t seed) {
    uint64_t total = 0;
    bool stalled = rtest_fill_until_stalled(w, seed, &total, BRIDGE_CAP, BRIDGE_QUIET_MS);
    cr_assert(stalled, "no backpressure: %llu bytes taken (%s)", (unsigned long long)total,
              strerror(errno));
    cr_assert_gt(total, BRIDGE_MIN, "only %llu bytes before the stop",
                 (unsigned long long)total);
    rtest_set s;
    rtest_set_init(&s, 1);
    rtest_end *e = rtest_set_add(&s, r);
    e->rx_seed = seed;
    e->rx_len = total;
    e->rx_open = true; /* every byte, but no EOF yet */
    cr_assert_eq(rtest_set_run(&s, rtest_deadline(RTEST_PHASE_MS)), 0, "%s", s.why);
    cr_assert_eq(shutdown(w, SHUT_WR), 0);
    e->rx_open = false; /* now EOF, and nothing before it */
    cr_assert_eq(rtest_set_run(&s, rtest_deadline(RTEST_PHASE_MS)), 0, "%s", s.why);
    e->fd = -1;
    rtest_set_free(&s);
    return total;
}

/* Proves backpressure in both directions, byte-exact delivery, EOF after
 * the last byte, and the accepted slot ending DONE after both FINs. */
Test(bridge, backpressure_and_eof) {
    bridge_pair p;
    pair_open(&p);
    uint64_t up = one_way(p.c.fd, p.sfd, rtest_seed(1, 1, 0));
    /* The client's write side is over and the stream still carries the
     * other direction. */
    cr_assert_eq(rudp_slot_state(p.c.ref.slot), RUDP_SLOT_CONNECTED);
    uint64_t down = one_way(p.sfd, p.c.fd, rtest_seed(1, 2, 0));
    cr_log_info("stopped after %llu bytes up, %llu down", (unsigned long long)up,
                (unsigned long long)down);
    /* The server's FIN went out after its bridge had ended: DONE, no error. */
    cr_assert_eq(rudp_slot_state(p.peer.ref.slot), RUDP_SLOT_DONE);
    cr_assert_eq(rudp_slot_error(p.peer.ref.slot), RUDP_OK);
    uint32_t st = rudp_slot_state(p.c.ref.slot);
    cr_assert(st == RUDP_SLOT_CONNECTED || st == RUDP_SLOT_DONE, "client state %u", st);
    cr_assert_eq(rudp_slot_error(p.c.ref.slot), RUDP_OK);
    pair_close(&p);
}

/* Returns the IPv4 address of |a| in host order (0 when not IPv4). */
static uint32_t ip4_of(const struct sockaddr_storage *a) {
    if (a->ss_family != AF_INET)
        return 0;
    return ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr);
}

/* Proves the accepted socket's abstract name carries this engine's board,
 * a CONNECTED slot and the TCP-level addresses of both ends. */
Test(bridge, accepted_name) {
    bridge_pair p;
    pair_open(&p);
    cr_assert_eq(p.peer.eid, rudp_board_eid(rudp_rt_board()));
    cr_assert_neq(p.peer.index, p.c.ref.index, "the two ends share a slot");
    cr_assert_eq(rudp_slot_state(p.peer.ref.slot), RUDP_SLOT_CONNECTED);
    cr_assert_eq(ip4_of(&p.peer.local), INADDR_LOOPBACK);
    cr_assert_eq(rtest_port(&p.peer.local), ntohs(p.l.addr.sin_port));
    cr_assert_eq(ip4_of(&p.peer.peer), INADDR_LOOPBACK);
    cr_assert_neq(rtest_port(&p.peer.peer), 0);
    /* The client's own view (getsockname for the shim) is what the server
     * sees as its peer, as with TCP: the session's UDP socket. */
    cr_assert_eq(ip4_of(&p.c.local), INADDR_LOOPBACK);
    cr_assert_eq(rtest_port(&p.c.local), rtest_port(&p.peer.peer));
    pair_close(&p);
}
