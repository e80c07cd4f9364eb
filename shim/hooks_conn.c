/*
 * hooks_conn.c — connect (DESIGN.md §2 rule 2, §4 "blocking connect",
 * "non-blocking connect", "0-RTT").
 *
 * Rerouting a connect: the program's TCP socket is replaced, on the same fd
 * number, by one end of an AF_UNIX socketpair whose other end the engine
 * serves (runtime.h).  Before the swap the shim fills the program's end
 * with zero bytes until its send buffer is full; the engine discards
 * exactly that many once the stream is connected.  So the fd polls
 * writable precisely when a TCP socket would (connected, or failed), and
 * the three connect styles follow from it:
 *
 *   non-blocking  returns EINPROGRESS; poll/epoll/select report POLLOUT at
 *                 completion; SO_ERROR gives the result and clears it;
 *   blocking      polls for POLLOUT itself (SO_SNDTIMEO bounds the wait:
 *                 EINPROGRESS on expiry, as Linux does), then reads the
 *                 result from the board slot;
 *   fast open     (RUDP_FASTOPEN=1, TCP_FASTOPEN_CONNECT, MSG_FASTOPEN) no
 *                 filler: connect returns 0 at once and the first write
 *                 rides in the opening datagram (0-RTT).
 *
 * A connect to a server this process already has an established session
 * with (rudp_rt_peer_warm) takes no filler either: the engine opens the
 * stream at once, so the shim waits for the slot to say so (the engine's
 * wake-up time) and the socket is writable exactly when connected without
 * copying a send buffer's worth of zeros in and out, which was most of
 * the cost of a short connection.
 *
 * The engine is handed the connection before the swap, so a connect the
 * engine rejects leaves the program's TCP socket untouched.  Listening
 * sockets are rerouted in hooks_listen.c.
 */
#include "shim.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>

/* How long a connect to a warm session waits for the engine to open its
 * stream before it goes on as a fast open would. */
#define CONN_WARM_WAIT_MS 20

#ifndef TCP_FASTOPEN_CONNECT
#define TCP_FASTOPEN_CONNECT 30
#endif

/* The filler source: zero bytes, never written. */
static char conn_zeros[65536];

/* --- connect --- */

/* Fills the socket |fd| with zero bytes until its send buffer is full.
 * Returns the number of bytes it took. */
static size_t conn_fill(int fd) {
    size_t total = 0;

    for (;;) {
        ssize_t n = RUDP_REAL(send)(fd, conn_zeros, sizeof(conn_zeros),
                                    MSG_DONTWAIT | MSG_NOSIGNAL);

        if (n > 0)
            total += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else
            return total;
    }
}

/* Creates the socketpair of a connection, both ends non-blocking (the
 * engine's must be; the program's gets the program's flag in
 * rudp_fd_swap), clearing stale entries on both numbers.  Returns 0 or
 * -errno. */
static int conn_socketpair(int sv[2]) {
    if (RUDP_REAL(socketpair)(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) <
        0)
        return -errno;
    rudp_fd_clear(sv[0]);
    rudp_fd_clear(sv[1]);
    return 0;
}

/* Claims a CONNECTING slot on this process's board (starting the engine).
 * Returns 0 or -errno (ENOMEM: no engine; ENOBUFS: board full). */
static int conn_slot(rudp_slot_ref *ref) {
    rudp_board *b = rudp_rt_board();

    if (b == NULL)
        return -ENOMEM;
    return rudp_board_alloc(b, RUDP_SLOT_CONNECTING, ref) < 0 ? -ENOBUFS : 0;
}

/* Fills the CONN entry |c| from the TCP entry |tcp|: the TCP peer as the
 * program gave it and the engine's local address, both in the socket's
 * family (v4-mapped on an IPv6 socket). */
static void conn_entry(rudp_fd_entry *c, const rudp_fd_entry *tcp,
                       const struct sockaddr_storage *peer, struct sockaddr_storage *local,
                       const rudp_slot_ref *ref) {
    memset(c, 0, sizeof(*c));
    atomic_init(&c->kind, RUDP_FD_CONN);
    c->family = tcp->family;
    c->opts = tcp->opts;
    c->peer = *peer;
    c->peer_len = rudp_addr_to_family(&c->peer, tcp->family);
    if (local->ss_family == AF_INET || local->ss_family == AF_INET6) {
        c->local = *local;
        c->local_len = rudp_addr_to_family(&c->local, tcp->family);
    }
    c->ref = *ref;
}

/* Hands the engine end |efd| and the destination to the engine.  The
 * engine gets an IPv4 address for a v4-mapped destination.  Returns 0 or
 * -errno. */
static int conn_start(int efd, const struct sockaddr_storage *peer, size_t filler,
                      const rudp_slot_ref *ref, struct sockaddr_storage *local) {
    struct sockaddr_storage dst = *peer;
    socklen_t dlen = rudp_addr_to_family(&dst, AF_INET);

    memset(local, 0, sizeof(*local));
    return -rudp_errno(
        rudp_rt_connect(efd, (struct sockaddr *)&dst, dlen, filler, ref, local));
}

/* Returns the monotonic clock in milliseconds. */
static int64_t conn_now_ms(void) {
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits briefly for the engine to take up a connect to a warm session:
 * it opens the stream at once, so the slot leaves CONNECTING within the
 * engine's wake-up time.  Returns false when it has not (the session went
 * away meanwhile and the stream waits for a new handshake). */
static bool conn_wait_warm(const rudp_slot_ref *ref) {
    int64_t until = conn_now_ms() + CONN_WARM_WAIT_MS;

    while (rudp_slot_state(rudp_slot_of(ref)) == RUDP_SLOT_CONNECTING) {
        if (conn_now_ms() > until)
            return false;
        sched_yield();
    }
    return true;
}

/* Reroutes the unconnected TCP socket |fd| to |addr| (rudp_conn_reroute).
 * A connect to a server this process already has a session with needs no
 * filler: the stream is open at once, so the connect is waited for here.
 * *now is set when the program may use the connection at once without
 * waiting for it to be connected (fast open, or a warm session that went
 * away meanwhile). */
static int conn_reroute(int fd, const struct sockaddr *addr, socklen_t len, bool fastopen,
                        bool *now) {
    rudp_fd_entry tcp, conn;
    struct sockaddr_storage peer, local;
    rudp_slot_ref ref;
    bool cloexec, nonblock, warm = false;
    size_t filler = 0;
    int sv[2], r;

    *now = fastopen;
    if (rudp_fd_snapshot(fd, &tcp) != RUDP_FD_TCP ||
        rudp_addr_normalize(&peer, addr, len, true) == 0)
        return -EINVAL;
    if ((r = rudp_fd_flags(fd, &cloexec, &nonblock)) < 0 || (r = conn_socketpair(sv)) < 0)
        return r;
    if ((r = conn_slot(&ref)) < 0)
        goto fail_pair;
    rudp_fd_apply_opts(sv[0], &tcp.opts);
    rudp_opt_publish_liveness(&tcp.opts, ref.slot, false);
    if (!fastopen) {
        struct sockaddr_storage dst = peer;
        socklen_t dlen = rudp_addr_to_family(&dst, AF_INET);

        warm = rudp_rt_peer_warm((struct sockaddr *)&dst, dlen);
        if (!warm)
            filler = conn_fill(sv[0]);
    }
    if ((r = conn_start(sv[1], &peer, filler, &ref, &local)) < 0)
        goto fail_slot;
    if (warm && !conn_wait_warm(&ref))
        *now = true;
    conn_entry(&conn, &tcp, &peer, &local, &ref);
    conn.nonblock = nonblock;
    if ((r = rudp_fd_swap(sv[0], fd, cloexec, nonblock, true)) < 0) {
        RUDP_REAL(close)(sv[0]); /* the engine sees EOF and ends the stream */
        return r;
    }
    conn.ino = rudp_fd_inode(fd);
    rudp_fd_publish(fd, &conn);
    rudp_log(RUDP_LOG_DEBUG, "fd %d rerouted (slot %u, filler %zu%s)", fd, ref.index,
             filler,
             fastopen ? ", fast open"
             : warm   ? ", warm session"
                      : "");
    return 0;

fail_slot:
    rudp_log(RUDP_LOG_INFO, "fd %d: engine refused the connect: %s", fd, strerror(-r));
    rudp_board_release(rudp_rt_board(), ref.index);
fail_pair:
    RUDP_REAL(close)(sv[0]);
    RUDP_REAL(close)(sv[1]);
    return r;
}

int rudp_conn_reroute(int fd, const struct sockaddr *addr, socklen_t len, bool fastopen) {
    bool now;

    return conn_reroute(fd, addr, len, fastopen, &now);
}

/* Returns the connect result the slot of |ref| holds: 0 when connected
 * (also when the connection was reset after it was connected: TCP's
 * connect succeeded then too), -errno when the connect failed (consuming
 * the pending SO_ERROR as a blocking TCP connect does).  Waits up to a
 * second for the engine to publish a state after the fd became writable. */
static int conn_result(const rudp_slot_ref *ref) {
    for (int i = 0; i < 1000; i++) {
        rudp_slot *slot = rudp_slot_of(ref);
        uint32_t st = slot ? rudp_slot_state(slot) : RUDP_SLOT_CONNECTED;
        int err;

        if (st == RUDP_SLOT_CONNECTED || st == RUDP_SLOT_DONE ||
            (st == RUDP_SLOT_FAILED && (rudp_slot_flags(slot) & RUDP_SLOT_F_WAS_CONNECTED)))
            return 0;
        if (st == RUDP_SLOT_FAILED) {
            err = rudp_slot_take_so_error(slot);
            if (err == RUDP_OK)
                err = rudp_slot_error(slot);
            return -(err != RUDP_OK ? rudp_errno(err) : ECONNREFUSED);
        }
        poll(NULL, 0, 1);
    }
    return -ETIMEDOUT;
}

/* Waits for the rerouted blocking connect on |fd| to finish, bounded by
 * SO_SNDTIMEO as Linux bounds a TCP connect.  Returns 0, -errno from the
 * slot, or -EINPROGRESS when the timeout expired first. */
static int conn_wait(int fd) {
    rudp_fd_entry *e = rudp_fd_peek(fd);
    const struct timeval *tv = &e->opts.sndtimeo;
    int64_t limit = (int64_t)tv->tv_sec * 1000 + tv->tv_usec / 1000;
    int64_t deadline = conn_now_ms() + limit;
    struct pollfd p = {.fd = fd, .events = POLLOUT};

    for (;;) {
        int ms = limit > 0 ? (int)(deadline - conn_now_ms()) : -1;
        int r = limit > 0 && ms <= 0 ? 0 : poll(&p, 1, ms);

        if (r > 0)
            return conn_result(&e->ref);
        if (r == 0)
            return -EINPROGRESS;
        if (errno != EINTR)
            return -errno;
    }
}

/* connect() on an fd that is already a rerouted connection: EALREADY while
 * connecting; once a non-blocking connect has succeeded, 0 the first time
 * (as TCP reports the completion to the next connect()) and EISCONN after;
 * the failure's error after a failed connect.  Returns 0 or -1. */
static int conn_again(rudp_fd_entry *e) {
    rudp_slot *slot = rudp_slot_of(&e->ref);
    uint32_t st = slot ? rudp_slot_state(slot) : RUDP_SLOT_CONNECTED;
    int err;

    if (st == RUDP_SLOT_CONNECTING) {
        errno = EALREADY;
    } else if (st == RUDP_SLOT_FAILED) {
        err = rudp_slot_take_so_error(slot);
        if (err == RUDP_OK)
            err = rudp_slot_error(slot);
        errno = err != RUDP_OK ? rudp_errno(err) : EISCONN;
    } else if (e->connect_pending) {
        e->connect_pending = false;
        return 0;
    } else {
        errno = EISCONN;
    }
    return -1;
}

/* connect(AF_UNSPEC) on a rerouted connection: TCP's disconnect.  The
 * connection is aborted (the peer reads ECONNRESET) and |fd| becomes an
 * unconnected TCP socket again, with its flags and options.  Returns 0 or
 * -1 with errno. */
static int conn_disconnect(int fd, rudp_fd_entry *e) {
    rudp_slot *slot = rudp_slot_of(&e->ref);
    rudp_fd_entry tcp;
    bool cloexec, nonblock;
    int r, s;

    if ((r = rudp_fd_flags(fd, &cloexec, &nonblock)) < 0 ||
        (s = RUDP_REAL(socket)(e->family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
        errno = r < 0 ? -r : errno;
        return -1;
    }
    memset(&tcp, 0, sizeof(tcp));
    atomic_init(&tcp.kind, RUDP_FD_TCP);
    tcp.family = e->family;
    tcp.opts = e->opts;
    if (slot != NULL)
        rudp_slot_set_flags(slot, RUDP_SLOT_F_RESET_ON_CLOSE);
    rudp_fd_clear(fd);
    if ((r = rudp_fd_swap(s, fd, cloexec, nonblock, false)) < 0) {
        RUDP_REAL(close)(s);
        errno = -r;
        return -1;
    }
    rudp_fd_publish(fd, &tcp);
    return 0;
}

/* Returns true when a connect on TCP entry |e| to |addr| is rerouted. */
static bool conn_selected(const rudp_fd_entry *e, const struct sockaddr *addr,
                          socklen_t len) {
    struct sockaddr_storage dst;

    if (addr == NULL || rudp_addr_normalize(&dst, addr, len, true) == 0 ||
        addr->sa_family != e->family)
        return false;
    return rudp_addr_selected((struct sockaddr *)&dst, false);
}

/* Returns true when the program asked for TCP Fast Open on |e|. */
static bool conn_wants_fastopen(const rudp_fd_entry *e) {
    int v = 0;

    return rudp_cfg.fastopen ||
           (rudp_fd_opt_get(&e->opts, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &v) && v != 0);
}

/* Reroutes a connect and completes it in the style the socket asks for
 * (fast open, non-blocking, blocking).  Returns 0 or -1 with errno. */
static int conn_connect(int fd, const rudp_fd_entry *e, const struct sockaddr *addr,
                        socklen_t len) {
    bool fastopen = conn_wants_fastopen(e), now;
    int r = conn_reroute(fd, addr, len, fastopen, &now);

    if (r == 0 && !now && rudp_fd_peek(fd)->nonblock) {
        rudp_fd_peek(fd)->connect_pending = true;
        r = -EINPROGRESS;
    } else if (r == 0 && !now) {
        r = conn_wait(fd);
    }
    if (r == 0)
        return 0;
    errno = -r;
    return -1;
}

/* Connects |fd|; a TCP socket to a selected address is rerouted. */
RUDP_EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    rudp_fd_entry *e;

    if (!rudp_active())
        return RUDP_REAL(connect)(fd, addr, len);
    e = rudp_fd_peek(fd);
    switch (rudp_fd_kind(e)) {
    case RUDP_FD_TCP:
        if (conn_selected(e, addr, len))
            return conn_connect(fd, e, addr, len);
        break;
    case RUDP_FD_CONN:
        if (addr != NULL && len >= sizeof(sa_family_t) && addr->sa_family == AF_UNSPEC)
            return conn_disconnect(fd, e);
        return conn_again(e);
    case RUDP_FD_LISTENER:
        errno = EISCONN;
        return -1;
    }
    return RUDP_REAL(connect)(fd, addr, len);
}
