/*
 * test_listen.c — tests of engine/rt_listen.c: streams handed to the
 * program's AF_UNIX listener, the queue of streams that wait for it, and
 * refusals.
 *
 * A stream that finds the program's listener queue full waits in the
 * engine, as a TCP client whose SYN was dropped retransmits, and is handed
 * over once the program accepts: it is not refused, and it carries its own
 * bytes.  Once the program has closed its listener (rudp_rt_unlisten), a new
 * stream, on a warm session or a cold one, is refused (RUDP_ERR_REFUSED,
 * EOF on the program's end); streams still waiting are refused, and those
 * already in the closed AF_UNIX queue are reset, as TCP resets connections
 * in the accept queue of a closed listener.  A connect to a port nobody
 * serves is refused too (ICMP port unreachable).
 *
 * A client that has not yet heard that the listener closed completes its
 * connect on a warm session at once; its stream then waits a moment for the
 * program to listen again (a server that re-listens for each job), and is
 * refused if it does not.  The tests keep the news from the client by
 * dropping what the server's port sends.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "helpers.h"

#define LISTEN_N 6        /* connections made without accepting */
#define LISTEN_BYTES 9000 /* what each carries, plus 1000 per index */
/* How long connections must sit unaccepted and unrefused: many of the
 * engine's 10 ms retries. */
#define LISTEN_WAIT_MS 500

TestSuite(listen, .timeout = RTEST_TIMEOUT_S, .fini = rtest_cleanup);

/* Opens |n| connections to |l|, each sending a header with its index, its
 * own bytes and a FIN, as ends of |s|.  Asserts each connect is taken. */
static void open_clients(rtest_set *s, const rtest_listener *l, size_t n, uint64_t len) {
    for (uint32_t i = 0; i < n; i++) {
        rtest_conn c;
        int rv = rtest_connect(&c, (const struct sockaddr *)&l->addr, sizeof(l->addr));
        cr_assert_eq(rv, RUDP_OK, "rudp_rt_connect: %s", rudp_strerror(rv));
        rtest_end *e = rtest_set_add(s, c.fd);
        e->tag = i;
        e->slot = c.ref.slot;
        rtest_hdr_put(e->hdr, 2, i, 0);
        e->hdr_len = RTEST_HDR;
        e->tx_seed = rtest_seed(2, i, 0);
        e->tx_len = len ? len + 1000ull * i : 0;
        e->tx_fin = len != 0;
        e->rx_open = true; /* for now: EOF is not expected yet */
    }
}

/* Returns the fds of the first |n| ends of |s| in |fds|. */
static void end_fds(const rtest_set *s, size_t n, int *fds) {
    for (size_t i = 0; i < n; i++)
        fds[i] = s->ends[i].fd;
}

/* Asserts that none of the first |n| ends of |s| sees EOF, data or an
 * error for LISTEN_WAIT_MS: nothing refused or reset them. */
static void assert_all_wait(const rtest_set *s, size_t n) {
    int fds[LISTEN_N];
    end_fds(s, n, fds);
    int i = rtest_first_event(fds, n, POLLIN, LISTEN_WAIT_MS);
    cr_assert_eq(i, -1, "connection %d ended while waiting to be accepted", i);
}

/* An accepted end: it reads the header first. */
static void on_accept(rtest_set *s, rtest_end *e) {
    e->tag = 0x100;
    e->rx_hdr_len = RTEST_HDR;
    e->tx_hold = true;
}

/* The header names the client: expect its bytes, then answer with a FIN. */
static void on_hdr(rtest_set *s, rtest_end *e) {
    bool *seen = s->ctx;
    uint32_t test, i, zero;
    if (!rtest_hdr_get(e->rx_hdr, &test, &i, &zero) || test != 2 || i >= LISTEN_N ||
        seen[i]) {
        snprintf(e->why, sizeof(e->why), "bad or repeated header (index %u)", i);
        return;
    }
    seen[i] = true;
    e->tag |= i;
    e->rx_seed = rtest_seed(2, i, 0);
    e->rx_len = LISTEN_BYTES + 1000ull * i;
    e->tx_hold = false;
    e->tx_fin = true;
}

/* Proves that streams finding the listener's queue (backlog 1) full wait
 * instead of being refused, and each carries its own bytes once accepted. */
Test(listen, full_queue_waits) {
    rtest_listener l;
    rtest_set s;
    bool seen[LISTEN_N] = {false};
    rtest_engine(NULL);
    rtest_listen(&l, "127.0.0.1", 1);
    rtest_set_init(&s, 2 * LISTEN_N);
    open_clients(&s, &l, LISTEN_N, LISTEN_BYTES);
    cr_assert_eq(rtest_set_run(&s, rtest_deadline(RTEST_PHASE_MS)), 0, "%s", s.why);
    cr_assert(rtest_wait_fd(l.lfd, POLLIN, rtest_deadline(RTEST_PHASE_MS)),
              "nothing reached the listener");
    assert_all_wait(&s, LISTEN_N);
    for (size_t i = 0; i < LISTEN_N; i++) {
        cr_assert_eq(rudp_slot_state(s.ends[i].slot), RUDP_SLOT_CONNECTED);
        s.ends[i].rx_open = false; /* now the server's FIN */
    }
    s.lfd = l.lfd;
    s.to_accept = LISTEN_N;
    s.ctx = seen;
    s.on_accept = on_accept;
    s.on_hdr = on_hdr;
    cr_assert_eq(rtest_set_run(&s, rtest_deadline(RTEST_PHASE_MS)), 0, "%s", s.why);
    rtest_set_free(&s);
    rtest_unlisten(&l);
}

/* Waits for EOF on the program's end of a connection the engine ended, and
 * returns the slot's error once it says FAILED. */
static int refusal_of(int fd, rudp_slot *slot) {
    ssize_t r = rtest_read_once(fd, rtest_deadline(RTEST_PHASE_MS));
    cr_assert_eq(r, 0, "expected EOF, got %zd (%s)", r, r == -1 ? strerror(errno) : "");
    cr_assert_eq(rudp_slot_state(slot), RUDP_SLOT_FAILED);
    int err = rudp_slot_error(slot);
    cr_assert_eq(rudp_slot_take_so_error(slot), err, "SO_ERROR differs from the error");
    cr_assert_eq(rudp_slot_take_so_error(slot), RUDP_OK, "SO_ERROR not cleared");
    return err;
}

/* Connects to |l| and asserts the connect is refused. */
static void assert_refused(const rtest_listener *l) {
    rtest_conn c;
    int rv = rtest_connect(&c, (const struct sockaddr *)&l->addr, sizeof(l->addr));
    cr_assert_eq(rv, RUDP_OK, "rudp_rt_connect: %s", rudp_strerror(rv));
    int err = refusal_of(c.fd, c.ref.slot);
    cr_assert_eq(err, RUDP_ERR_REFUSED, "error %s", rudp_strerror(err));
    close(c.fd);
}

/* Connects to |l|, accepts and closes both ends: the session is warm. */
static void warm_up(const rtest_listener *l) {
    rtest_conn c;
    cr_assert_eq(rtest_connect(&c, (const struct sockaddr *)&l->addr, sizeof(l->addr)),
                 RUDP_OK);
    int fd = rtest_accept(l->lfd, rtest_deadline(RTEST_PHASE_MS));
    cr_assert_geq(fd, 0, "no connection reached the listener");
    uint32_t st =
        rtest_wait_state(c.ref.slot, RUDP_SLOT_CONNECTING, rtest_deadline(RTEST_PHASE_MS));
    cr_assert_eq(st, RUDP_SLOT_CONNECTED);
    close(fd);
    close(c.fd);
}

/* Proves that once the program closed its listener a new stream is
 * refused, on a warm session and on a cold one. */
Test(listen, unlisten_refuses_new) {
    rtest_listener warm, cold;
    rtest_engine(NULL);
    rtest_listen(&warm, "127.0.0.1", 16);
    rtest_listen(&cold, "127.0.0.1", 16);
    warm_up(&warm);
    cr_assert(rudp_rt_peer_warm((struct sockaddr *)&warm.addr, sizeof(warm.addr)));
    rtest_unlisten(&warm);
    rtest_unlisten(&cold);
    assert_refused(&warm);
    assert_refused(&cold);
}

/* Proves that closing a listener refuses the streams waiting for its full
 * queue and resets those already in it: every connection fails, none
 * hangs. */
Test(listen, unlisten_ends_waiting) {
    rtest_listener l;
    rtest_set s;
    rtest_engine(NULL);
    rtest_listen(&l, "127.0.0.1", 1);
    rtest_set_init(&s, LISTEN_N);
    open_clients(&s, &l, LISTEN_N, 0);
    cr_assert_eq(rtest_set_run(&s, rtest_deadline(RTEST_PHASE_MS)), 0, "%s", s.why);
    cr_assert(rtest_wait_fd(l.lfd, POLLIN, rtest_deadline(RTEST_PHASE_MS)),
              "nothing reached the listener");
    assert_all_wait(&s, LISTEN_N);
    rtest_unlisten(&l);
    int refused = 0, reset = 0;
    for (size_t i = 0; i < LISTEN_N; i++) {
        int err = refusal_of(s.ends[i].fd, s.ends[i].slot);
        refused += err == RUDP_ERR_REFUSED;
        reset += err == RUDP_ERR_RESET;
        cr_assert(err == RUDP_ERR_REFUSED || err == RUDP_ERR_RESET, "error %s",
                  rudp_strerror(err));
    }
    cr_log_info("%d refused (waiting), %d reset (queued)", refused, reset);
    /* An AF_UNIX queue of backlog 1 holds two connections. */
    cr_assert_leq(reset, 2);
    rtest_set_free(&s);
}

/* Proves that a connect to a port nobody serves fails REFUSED. */
Test(listen, no_listener_refused) {
    rtest_engine(NULL);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    rtest_addr4(&a, "127.0.0.1", 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    rtest_conn c;
    cr_assert_eq(rtest_connect(&c, (struct sockaddr *)&a, sizeof(a)), RUDP_OK);
    int err = refusal_of(c.fd, c.ref.slot);
    cr_assert_eq(err, RUDP_ERR_REFUSED, "error %s", rudp_strerror(err));
    close(c.fd);
}

/* --- a client that has not heard the listener close --- */

#define RACE_BYTES 3000 /* the client's request: one datagram over RACE_BIG */
#define RACE_BIG 2000
#define RACE_ANSWER 100

static _Atomic int hush_port;        /* the server's port: what it sends is dropped */
static _Atomic int arrived_efd = -1; /* told when a datagram over RACE_BIG reaches it */

/* Returns the local port of socket |fd| (0 when not AF_INET). */
static int local_port(int fd) {
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    if (getsockname(fd, (struct sockaddr *)&a, &len) != 0 || a.sin_family != AF_INET)
        return 0;
    return ntohs(a.sin_port);
}

/* sendmmsg of the engine: drops what the hushed port sends. */
static int hush_sendmmsg(int fd, struct mmsghdr *m, unsigned n, int flags) {
    int port = atomic_load(&hush_port);
    if (port == 0 || local_port(fd) != port)
        return sendmmsg(fd, m, n, flags);
    for (unsigned i = 0; i < n; i++)
        m[i].msg_len = (unsigned)m[i].msg_hdr.msg_iov[0].iov_len;
    return (int)n;
}

/* recvmmsg of the engine: tells arrived_efd when a big datagram reaches
 * the hushed port, before the engine handles it. */
static int hush_recvmmsg(int fd, struct mmsghdr *m, unsigned n, int flags,
                         struct timespec *timeout) {
    int r = recvmmsg(fd, m, n, flags, timeout);
    int port = atomic_load(&hush_port);
    for (int i = 0; i < r && port != 0; i++)
        if (m[i].msg_len > RACE_BIG && local_port(fd) == port) {
            uint64_t one = 1;
            if (write(atomic_load(&arrived_efd), &one, sizeof(one)) != sizeof(one))
                abort(); /* not criterion's: this is the engine's thread */
            break;
        }
    return r;
}

/* Starts an engine whose listener ports can be hushed, listens on |l|,
 * warms a session to it, then closes the listener unheard: the client
 * still believes it listens. */
static void race_setup(rtest_listener *l) {
    rudp_rt_sys sys;
    rtest_sys_libc(&sys);
    sys.sendmmsg = hush_sendmmsg;
    sys.recvmmsg = hush_recvmmsg;
    atomic_store(&arrived_efd, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    cr_assert_geq(atomic_load(&arrived_efd), 0);
    rtest_engine(&sys);
    rtest_listen(l, "127.0.0.1", 16);
    warm_up(l);
    atomic_store(&hush_port, rtest_port((struct sockaddr_storage *)&l->addr));
    rtest_unlisten(l);
}

/* Connects to |l| (at once: the session is warm), sends RACE_BYTES and
 * waits until they reached the server's engine. */
static void race_connect(const rtest_listener *l, rtest_conn *c) {
    cr_assert_eq(rtest_connect(c, (const struct sockaddr *)&l->addr, sizeof(l->addr)),
                 RUDP_OK);
    uint32_t st =
        rtest_wait_state(c->ref.slot, RUDP_SLOT_CONNECTING, rtest_deadline(RTEST_PHASE_MS));
    cr_assert_eq(st, RUDP_SLOT_CONNECTED, "a warm connect did not complete at once");
    uint8_t buf[RACE_BYTES];
    rtest_pattern(buf, sizeof(buf), 7, 0);
    cr_assert_eq(write(c->fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
    int efd = atomic_load(&arrived_efd);
    cr_assert(rtest_wait_fd(efd, POLLIN, rtest_deadline(RTEST_PHASE_MS)),
              "the request never reached the server");
}

/* Reads exactly |len| bytes from |fd| into |buf|; asserts they came. */
static void read_exact(int fd, uint8_t *buf, size_t len) {
    int64_t deadline = rtest_deadline(RTEST_PHASE_MS);
    for (size_t got = 0; got < len;) {
        cr_assert(rtest_wait_fd(fd, POLLIN, deadline), "%zu of %zu bytes came", got, len);
        ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        cr_assert_gt(r, 0, "read: %zd (%s) after %zu bytes", r, strerror(errno), got);
        got += (size_t)r;
    }
}

/* Proves that a stream opened by a client that had not heard its server's
 * listener close waits for the program to listen again, and is served by
 * the new listener, byte-exact both ways. */
Test(listen, relisten_serves_unheard_stream) {
    rtest_listener first, again;
    rtest_conn c;
    race_setup(&first);
    race_connect(&first, &c);
    rtest_listen_also(&again, &first, 16);
    atomic_store(&hush_port, 0);
    int sfd = rtest_accept(again.lfd, rtest_deadline(RTEST_PHASE_MS));
    cr_assert_geq(sfd, 0, "the stream never reached the new listener");
    uint8_t buf[RACE_BYTES];
    read_exact(sfd, buf, sizeof(buf));
    cr_assert_eq(rtest_pattern_diff(buf, sizeof(buf), 7, 0), sizeof(buf),
                 "request differs");
    rtest_pattern(buf, RACE_ANSWER, 8, 0);
    cr_assert_eq(write(sfd, buf, RACE_ANSWER), RACE_ANSWER);
    close(sfd);
    read_exact(c.fd, buf, RACE_ANSWER);
    cr_assert_eq(rtest_pattern_diff(buf, RACE_ANSWER, 8, 0), RACE_ANSWER, "answer differs");
    cr_assert_eq(rtest_read_once(c.fd, rtest_deadline(RTEST_PHASE_MS)), 0, "no EOF");
    cr_assert_eq(shutdown(c.fd, SHUT_WR), 0);
    uint32_t st =
        rtest_wait_state(c.ref.slot, RUDP_SLOT_CONNECTED, rtest_deadline(RTEST_PHASE_MS));
    cr_assert_eq(st, RUDP_SLOT_DONE, "the connection did not end cleanly");
    close(c.fd);
    rtest_unlisten(&again);
}

/* Proves that such a stream is refused when the program does not listen
 * again: the client's read gets EOF and the slot RUDP_ERR_REFUSED (the
 * shim's ECONNREFUSED, as a TCP Fast Open connect's first read). */
Test(listen, unheard_stream_refused_without_relisten) {
    rtest_listener first;
    rtest_conn c;
    race_setup(&first);
    race_connect(&first, &c);
    atomic_store(&hush_port, 0);
    int err = refusal_of(c.fd, c.ref.slot);
    cr_assert_eq(err, RUDP_ERR_REFUSED, "error %s", rudp_strerror(err));
    close(c.fd);
}
