/*
 * test_ports.c — tests of engine/rt_listen.c: the ports a listening address
 * is served on.
 *
 * The kernel decides which listening sockets may share an address (the
 * shim keeps the TCP socket listening); the runtime must then serve them
 * all from one UDP socket: a second listener on an address joins its port
 * and streams are spread over the listeners, a listener closed and opened
 * again is served at once, and a port with no listener and no session left
 * lets go of its UDP port.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

#define PORTS_CONNS 10

TestSuite(ports, .timeout = RTEST_TIMEOUT_S, .fini = rtest_cleanup);

/* Opens |n| connections to |dst| that each send one byte; keeps their
 * fds in |fds|. */
static void connect_n(const struct sockaddr_in *dst, int *fds, size_t n) {
    for (size_t i = 0; i < n; i++) {
        rtest_conn c;
        int rv = rtest_connect(&c, (const struct sockaddr *)dst, sizeof(*dst));
        cr_assert_eq(rv, RUDP_OK, "rudp_rt_connect: %s", rudp_strerror(rv));
        cr_assert_eq(write(c.fd, "x", 1), 1);
        fds[i] = c.fd;
    }
}

/* Accepts from the listeners |lfds| until |n| connections came, counting
 * them per listener in |got|.  Returns how many came. */
static size_t accept_spread(const int *lfds, size_t nl, size_t *got, size_t n) {
    int64_t deadline = rtest_deadline(RTEST_PHASE_MS);
    size_t total = 0;
    while (total < n) {
        int i = rtest_first_event(lfds, nl, POLLIN, rtest_left_ms(deadline));
        if (i < 0)
            break;
        int fd = rtest_accept(lfds[i], deadline);
        if (fd < 0)
            continue;
        got[i]++;
        total++;
        close(fd);
    }
    return total;
}

/* Reads two bytes from non-blocking |fd| within the phase deadline;
 * returns them as a string ("" on failure). */
static const char *read_two(int fd) {
    static char buf[3];
    size_t got = 0;
    int64_t deadline = rtest_deadline(RTEST_PHASE_MS);
    memset(buf, 0, sizeof(buf));
    while (got < 2 && rtest_wait_fd(fd, POLLIN, deadline)) {
        ssize_t n = read(fd, buf + got, 2 - got);
        if (n <= 0 && !(n < 0 && errno == EAGAIN))
            break;
        got += n > 0 ? (size_t)n : 0;
    }
    return got == 2 ? buf : "";
}

/* Returns true when a plain UDP socket can bind |a| (the port is free). */
static bool udp_port_free(const struct sockaddr_in *a) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    bool ok = fd >= 0 && bind(fd, (const struct sockaddr *)a, sizeof(*a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* Proves a second listener on an address joins its port: both take
 * connections, and once one is closed the other takes every new one. */
Test(ports, second_listener_joins) {
    rtest_listener a, b;
    rtest_engine(NULL);
    rtest_listen(&a, "127.0.0.1", 64);
    rtest_listen_also(&b, &a, 64);
    cr_assert_neq(a.id, b.id);
    int fds[PORTS_CONNS + 5], lfds[2] = {a.lfd, b.lfd};
    size_t got[2] = {0, 0};
    connect_n(&a.addr, fds, PORTS_CONNS);
    cr_assert_eq(accept_spread(lfds, 2, got, PORTS_CONNS), PORTS_CONNS);
    cr_assert(got[0] > 0 && got[1] > 0, "spread %zu / %zu", got[0], got[1]);
    rtest_unlisten(&a);
    size_t after[1] = {0};
    connect_n(&b.addr, fds + PORTS_CONNS, 5);
    cr_assert_eq(accept_spread(&b.lfd, 1, after, 5), 5);
    for (size_t i = 0; i < PORTS_CONNS + 5; i++)
        close(fds[i]);
    rtest_unlisten(&b);
}

/* Proves a listener closed and opened again on the same address is served
 * at once, while a connection of the first one lives on. */
Test(ports, listen_again_after_close) {
    rtest_listener a, b;
    rtest_engine(NULL);
    rtest_listen(&a, "127.0.0.1", 64);
    int old;
    connect_n(&a.addr, &old, 1);
    int acc = rtest_accept(a.lfd, rtest_deadline(RTEST_PHASE_MS));
    cr_assert_geq(acc, 0);
    rtest_unlisten(&a);
    rtest_listen_also(&b, &a, 64);
    int fresh;
    connect_n(&b.addr, &fresh, 1);
    int acc2 = rtest_accept(b.lfd, rtest_deadline(RTEST_PHASE_MS));
    cr_assert_geq(acc2, 0, "the new listener got no connection");
    /* The first connection still carries bytes: "x", then "y". */
    cr_assert_eq(write(old, "y", 1), 1);
    cr_assert_str_eq(read_two(acc), "xy");
    close(old);
    close(fresh);
    close(acc);
    close(acc2);
    rtest_unlisten(&b);
}

/* Proves a port with no listener and no session closes its UDP socket:
 * the address is free for anyone once the listener is closed. */
Test(ports, unused_port_lets_go) {
    rtest_listener a, other;
    rtest_engine(NULL);
    rtest_listen(&a, "127.0.0.1", 16);
    cr_assert(!udp_port_free(&a.addr), "the port is not served");
    rtest_unlisten(&a);
    /* Commands run in order: once this listen has returned, the unlisten
     * before it has run. */
    rtest_listen(&other, "127.0.0.1", 16);
    cr_assert(udp_port_free(&a.addr), "the UDP port stayed bound");
    rtest_unlisten(&other);
}

/* --- shared by processes (rt_group.c) --- */

/* What a child that joins a port is told, and tells back through |ready|
 * (one byte once it listens) and its exit status (connections accepted,
 * or 100 + a failure code). */
typedef struct join_job {
    rtest_listener first; /* the address to listen on */
    int ready[2];         /* a pipe */
    int accept_n;         /* how many to accept before exiting (0: until told) */
    bool resolve;         /* check each accepted slot resolves in this process */
} join_job;

/* The child: listens on the address the parent serves (so it joins the
 * parent's port), says so, accepts |accept_n| connections and exits with
 * how many it got. */
static int join_child(void *arg) {
    join_job *j = arg;
    rtest_listener l;
    rtest_listen_also(&l, &j->first, 64);
    if (write(j->ready[1], "r", 1) != 1)
        return 101;
    int got = 0;
    int64_t deadline = rtest_deadline(RTEST_PHASE_MS);
    while (got < j->accept_n) {
        int fd = rtest_accept(l.lfd, deadline);
        if (fd < 0)
            break;
        rtest_peer p;
        if (j->resolve && (!rtest_peer_of(fd, &p) || !rudp_board_resolve(&p.ref) ||
                           rudp_slot_state(p.ref.slot) != RUDP_SLOT_CONNECTED))
            return 102;
        got++;
        close(fd);
    }
    return got;
}

/* Waits for the child's "listening" byte. */
static void join_wait_ready(join_job *j) {
    cr_assert(rtest_wait_fd(j->ready[0], POLLIN, rtest_deadline(RTEST_PHASE_MS)),
              "the child never listened");
    char c;
    cr_assert_eq(read(j->ready[0], &c, 1), 1);
}

/* Proves another process's listener on the address joins the port: the
 * connections are spread over both processes, and the slots of those the
 * child accepts resolve there (it maps the port's board). */
Test(ports, joined_by_another_process) {
    join_job j = {.accept_n = PORTS_CONNS / 2, .resolve = true};
    rtest_engine(NULL);
    rtest_listen(&j.first, "127.0.0.1", 64);
    cr_assert_eq(pipe(j.ready), 0);
    pid_t pid = rtest_fork(join_child, &j);
    join_wait_ready(&j);
    int fds[PORTS_CONNS];
    size_t got[1] = {0};
    connect_n(&j.first.addr, fds, PORTS_CONNS);
    /* Streams go to the targets in turn: half of them are the parent's. */
    cr_assert_eq(accept_spread(&j.first.lfd, 1, got, PORTS_CONNS / 2), PORTS_CONNS / 2);
    int status = rtest_reap(pid, rtest_deadline(RTEST_PHASE_MS));
    cr_assert_eq(status, PORTS_CONNS / 2, "the child accepted %d", status);
    for (size_t i = 0; i < PORTS_CONNS; i++)
        close(fds[i]);
    rtest_unlisten(&j.first);
}

/* Proves that once the owner closes its listener, the process that joined
 * gets every new connection. */
Test(ports, member_takes_all_after_owner_closes) {
    join_job j = {.accept_n = PORTS_CONNS};
    rtest_engine(NULL);
    rtest_listen(&j.first, "127.0.0.1", 64);
    cr_assert_eq(pipe(j.ready), 0);
    pid_t pid = rtest_fork(join_child, &j);
    join_wait_ready(&j);
    rtest_unlisten(&j.first);
    int fds[PORTS_CONNS];
    connect_n(&j.first.addr, fds, PORTS_CONNS);
    int status = rtest_reap(pid, rtest_deadline(RTEST_PHASE_MS));
    cr_assert_eq(status, PORTS_CONNS, "the child accepted %d", status);
    for (size_t i = 0; i < PORTS_CONNS; i++)
        close(fds[i]);
}
