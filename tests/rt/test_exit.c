/*
 * test_exit.c — tests of engine/rt_exit.c: the exit flush.
 *
 * A process that wrote to a connection just before exiting, without closing
 * it, has its bytes delivered: rudp_rt_exit_flush (the shim's destructor)
 * reads every program end to EOF, ends each stream with a FIN and waits for
 * the acknowledgements, bounded by the linger.  The writer here is a forked
 * child, which also proves that a child of a process with a running engine
 * starts an engine of its own (another board) on first use.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

#define EXIT_BYTES (2ull << 20)
/* The child's exit codes beyond 0. */
#define EXIT_NO_CONNECT 2
#define EXIT_NO_WRITE 3
#define EXIT_LINGERED 4
#define EXIT_SAME_ENGINE 5

TestSuite(exit_flush, .timeout = RTEST_TIMEOUT_S, .fini = rtest_cleanup);

typedef struct exit_job {
    struct sockaddr_in dst;
    uint64_t seed;
    uint32_t parent_eid; /* the board of the parent's engine */
} exit_job;

/* The child: connects, writes EXIT_BYTES, flushes as the shim's destructor
 * does and exits without closing its fd.  Returns its exit code. */
static int exit_child(void *arg) {
    const exit_job *j = arg;
    rtest_conn c;
    rudp_board *b = rudp_rt_board();
    if (!b || rudp_board_eid(b) == j->parent_eid)
        return EXIT_SAME_ENGINE;
    if (rtest_connect(&c, (const struct sockaddr *)&j->dst, sizeof(j->dst)) != RUDP_OK)
        return EXIT_NO_CONNECT;
    rtest_set s;
    rtest_set_init(&s, 1);
    rtest_end *e = rtest_set_add(&s, c.fd);
    e->tx_seed = j->seed;
    e->tx_len = EXIT_BYTES;
    e->rx_open = true;
    if (rtest_set_run(&s, rtest_deadline(RTEST_PHASE_MS)) != 0) {
        fprintf(stderr, "child: %s\n", s.why);
        return EXIT_NO_WRITE;
    }
    int64_t t0 = rtest_now_ms();
    rudp_rt_exit_flush();
    /* Done before the 5 s linger: everything was acknowledged. */
    return rtest_now_ms() - t0 < 4500 ? 0 : EXIT_LINGERED;
}

/* Proves that bytes a child wrote just before exiting without closing its
 * fd all arrive, followed by EOF, from the child's own engine. */
Test(exit_flush, child_exits_without_close) {
    rtest_listener l;
    exit_job j = {.seed = rtest_seed(3, 0, 0)};
    rtest_engine(NULL);
    rtest_listen(&l, "127.0.0.1", 16);
    j.dst = l.addr;
    j.parent_eid = rudp_board_eid(rudp_rt_board());
    pid_t pid = rtest_fork(exit_child, &j);
    int fd = rtest_accept(l.lfd, rtest_deadline(RTEST_PHASE_MS));
    cr_assert_geq(fd, 0, "the child's connection never came");
    rtest_peer peer;
    cr_assert(rtest_peer_of(fd, &peer));
    rtest_set s;
    rtest_set_init(&s, 1);
    rtest_end *e = rtest_set_add(&s, fd);
    e->rx_seed = j.seed;
    e->rx_len = EXIT_BYTES;
    cr_assert_eq(rtest_set_run(&s, rtest_deadline(RTEST_PHASE_MS)), 0, "%s", s.why);
    int status = rtest_reap(pid, rtest_deadline(RTEST_PHASE_MS));
    cr_assert_eq(status, 0, "child exit status %d", status);
    /* The child's FIN came before its engine left: no error here. */
    cr_assert_eq(rudp_slot_error(peer.ref.slot), RUDP_OK);
    cr_log_info("accepted slot state %u", rudp_slot_state(peer.ref.slot));
    rtest_set_free(&s);
    rtest_unlisten(&l);
}
