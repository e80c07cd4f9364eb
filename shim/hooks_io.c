/*
 * hooks_io.c — reads and writes on rerouted connections (DESIGN.md §4
 * "errors", "0-RTT").
 *
 * Data never passes through the shim's own buffers: a rerouted connection
 * is a kernel socket, so every read and write is the real call.  What the
 * kernel cannot know is how the TCP-level connection ended.  The engine
 * publishes that in the connection's board slot, and these hooks translate
 * only the end of the stream:
 *
 *   read side   a read that returns 0 (EOF) for a non-empty request, or
 *               fails with ECONNRESET/EPIPE, reports the slot's error
 *               instead (ECONNRESET after a reset, ETIMEDOUT after a dead
 *               peer, ECONNREFUSED after a failed connect).  A clean end
 *               (error 0) stays EOF, as a FIN does on TCP.
 *   write side  writes go out with MSG_NOSIGNAL; when one fails with EPIPE
 *               the shim first reports a pending SO_ERROR (ECONNREFUSED
 *               after a failed connect, as TCP's sk_err is reported once),
 *               and otherwise raises SIGPIPE itself unless the program
 *               asked for MSG_NOSIGNAL — Linux TCP's rule.
 *
 * On a rerouted connection the kernel would also fill a recvfrom/recvmsg
 * source address with the engine's AF_UNIX name; a TCP socket reports no
 * address there, and so do these hooks.  sendto/sendmsg with MSG_FASTOPEN
 * on an unconnected TCP socket is a connect plus a write: a selected
 * destination is rerouted in 0-RTT mode first.
 *
 * A program that confines itself with seccomp (prctl PR_SET_SECCOMP, as
 * sshd's pre-authentication child does) allows the system calls it makes
 * itself and is killed by any other: its write() must stay write(2), not
 * become sendmsg(2).  From that call on, writes on rerouted connections go
 * out through the very call the program made (a socket address dropped), and
 * a write to a broken connection gets the kernel's EPIPE and SIGPIPE of the
 * AF_UNIX socket, without the ECONNRESET-first rule.
 *
 * The fast path of every read is the real call and one comparison.
 */
#include "shim.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/prctl.h>

/* Set once the program has installed a seccomp filter (see above). */
static _Atomic bool io_sandboxed;

/* Returns true when writes on rerouted connections may use sendmsg with
 * MSG_NOSIGNAL: the program is not confined by seccomp. */
static bool io_send_ok(void) {
    return !atomic_load_explicit(&io_sandboxed, memory_order_relaxed);
}

/* --- read side --- */

/* Returns the error that should replace the end-of-stream result of a read
 * on |fd|, or 0 when the result stands.  As TCP reports sk_err, it is
 * reported once: the read takes the pending SO_ERROR, and the reads after
 * it (or after a getsockopt(SO_ERROR) took it) see the end of the
 * stream. */
static int io_read_error(int fd) {
    rudp_fd_entry *e = rudp_fd_peek(fd);
    rudp_slot *slot;

    if (rudp_fd_kind(e) != RUDP_FD_CONN || (slot = rudp_slot_of(&e->ref)) == NULL ||
        rudp_slot_error(slot) == RUDP_OK || !rudp_fd_still_ours(fd, e))
        return 0;
    return rudp_errno(rudp_slot_take_so_error(slot));
}

/* Finishes a read of |want| bytes on |fd| that returned |n|: EOF or a
 * reset on a rerouted connection becomes the connection's error.  Returns
 * n, or -1 with errno. */
static ssize_t io_read_done(int fd, ssize_t n, size_t want) {
    int saved = errno, err;

    if (n > 0 || !rudp_active())
        return n;
    if (n < 0 && saved == EINVAL && rudp_fd_kind_of(fd) == RUDP_FD_LISTENER) {
        errno = ENOTCONN; /* TCP's answer on a listener (AF_UNIX says EINVAL) */
        return -1;
    }
    if ((n == 0 && want == 0) || (n < 0 && saved != ECONNRESET && saved != EPIPE))
        return n;
    err = io_read_error(fd);
    errno = err ? err : saved;
    return err ? -1 : n;
}

/* Returns the total length of |iov|. */
static size_t io_iov_len(const struct iovec *iov, size_t n) {
    size_t total = 0;

    for (size_t i = 0; iov != NULL && i < n; i++)
        total += iov[i].iov_len;
    return total;
}

/* Returns true when |fd| is a rerouted connection (so a source address
 * must not be reported). */
static bool io_is_conn(int fd) {
    return rudp_active() && rudp_fd_kind_of(fd) == RUDP_FD_CONN;
}

RUDP_EXPORT ssize_t read(int fd, void *buf, size_t count) {
    return io_read_done(fd, RUDP_REAL(read)(fd, buf, count), count);
}

RUDP_EXPORT ssize_t __read_chk(int fd, void *buf, size_t count, size_t buflen) {
    return io_read_done(fd, RUDP_REAL(__read_chk)(fd, buf, count, buflen), count);
}

RUDP_EXPORT ssize_t readv(int fd, const struct iovec *iov, int iovcnt) {
    ssize_t n = RUDP_REAL(readv)(fd, iov, iovcnt);

    return n > 0 ? n
                 : io_read_done(fd, n, io_iov_len(iov, iovcnt > 0 ? (size_t)iovcnt : 0));
}

/* Returns the poll timeout for a blocking read of |fd|: its SO_RCVTIMEO
 * in ms, or -1 (none). */
static int io_rcvtimeo_ms(int fd) {
    rudp_fd_entry *e = rudp_fd_peek(fd);
    const struct timeval *t = e ? &e->opts.rcvtimeo : NULL;
    long long ms;

    if (t == NULL || (t->tv_sec == 0 && t->tv_usec == 0))
        return -1;
    ms = (long long)t->tv_sec * 1000 + (t->tv_usec + 999) / 1000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* recv(fd, buf, 0, flags) as TCP's: 0 at once when bytes or the end of the
 * stream are there; otherwise EAGAIN when non-blocking, else 0 once
 * something arrives, a signal comes or SO_RCVTIMEO is over.  A pending
 * error is reported as a read's. */
static ssize_t io_recv_empty(int fd, int flags) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int fl = RUDP_REAL(fcntl)(fd, F_GETFL);

    if (poll(&p, 1, 0) > 0)
        return io_read_done(fd, 0, 1);
    if ((flags & MSG_DONTWAIT) || (fl >= 0 && (fl & O_NONBLOCK))) {
        errno = EAGAIN;
        return -1;
    }
    if (poll(&p, 1, io_rcvtimeo_ms(fd)) > 0)
        return io_read_done(fd, 0, 1);
    return 0;
}

/* recv on a rerouted connection with what TCP does differently from
 * AF_UNIX: a zero-length request (io_recv_empty), and MSG_TRUNC discards
 * up to |len| bytes without copying them.  Returns -2 when neither
 * applies. */
static ssize_t io_recv_tcp_rules(int fd, size_t len, int flags) {
    char scratch[4096];
    ssize_t n;

    if (!(len == 0 || (flags & MSG_TRUNC)) || !io_is_conn(fd))
        return -2;
    if (len == 0)
        return io_recv_empty(fd, flags);
    n = RUDP_REAL(recv)(fd, scratch, len < sizeof(scratch) ? len : sizeof(scratch),
                        flags & ~MSG_TRUNC);
    return io_read_done(fd, n, len);
}

RUDP_EXPORT ssize_t recv(int fd, void *buf, size_t len, int flags) {
    ssize_t n = io_recv_tcp_rules(fd, len, flags);

    if (n != -2)
        return n;
    return io_read_done(fd, RUDP_REAL(recv)(fd, buf, len, flags), len);
}

RUDP_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags) {
    return io_read_done(fd, RUDP_REAL(__recv_chk)(fd, buf, len, buflen, flags), len);
}

/* recvfrom on a rerouted connection: no source address, as on TCP. */
static ssize_t io_recvfrom_conn(int fd, void *buf, size_t len, int flags, socklen_t *alen) {
    ssize_t n = RUDP_REAL(recvfrom)(fd, buf, len, flags, NULL, NULL);

    if (n >= 0 && alen != NULL)
        *alen = 0;
    return io_read_done(fd, n, len);
}

RUDP_EXPORT ssize_t recvfrom(int fd, void *buf, size_t len, int flags,
                             struct sockaddr *addr, socklen_t *alen) {
    if (addr != NULL && io_is_conn(fd))
        return io_recvfrom_conn(fd, buf, len, flags, alen);
    return io_read_done(fd, RUDP_REAL(recvfrom)(fd, buf, len, flags, addr, alen), len);
}

RUDP_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
                                   struct sockaddr *addr, socklen_t *alen) {
    ssize_t n;

    if (addr != NULL && io_is_conn(fd)) {
        n = RUDP_REAL(__recvfrom_chk)(fd, buf, len, buflen, flags, NULL, NULL);
        if (n >= 0 && alen != NULL)
            *alen = 0;
        return io_read_done(fd, n, len);
    }
    return io_read_done(
        fd, RUDP_REAL(__recvfrom_chk)(fd, buf, len, buflen, flags, addr, alen), len);
}

RUDP_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags) {
    struct msghdr m;
    ssize_t n;

    if (msg == NULL || msg->msg_name == NULL || !io_is_conn(fd))
        return io_read_done(fd, RUDP_REAL(recvmsg)(fd, msg, flags),
                            msg ? io_iov_len(msg->msg_iov, msg->msg_iovlen) : 0);
    m = *msg;
    m.msg_name = NULL;
    m.msg_namelen = 0;
    n = RUDP_REAL(recvmsg)(fd, &m, flags);
    if (n >= 0) {
        msg->msg_namelen = 0;
        msg->msg_controllen = m.msg_controllen;
        msg->msg_flags = m.msg_flags;
    }
    return io_read_done(fd, n, io_iov_len(msg->msg_iov, msg->msg_iovlen));
}

/* --- write side --- */

/* Finishes a failed write on the rerouted connection |fd| (errno EPIPE
 * from the socketpair): reports a pending SO_ERROR once, else EPIPE with
 * SIGPIPE unless |flags| has MSG_NOSIGNAL.  Returns -1. */
static ssize_t io_write_failed(int fd, int flags) {
    rudp_fd_entry *e = rudp_fd_peek(fd);
    rudp_slot *slot = e ? rudp_slot_of(&e->ref) : NULL;
    int err = 0;

    if (slot != NULL && rudp_fd_still_ours(fd, e))
        err = rudp_errno(rudp_slot_take_so_error(slot));
    if (err != 0 && err != EPIPE) {
        errno = err;
        return -1;
    }
    if (!(flags & MSG_NOSIGNAL))
        raise(SIGPIPE);
    errno = EPIPE;
    return -1;
}

/* Sends |msg| on the rerouted connection |fd| with MSG_NOSIGNAL and
 * applies the TCP error rules.  Returns the count, or -1 with errno;
 * -2 when fd turned out not to be a socket (a stale entry, now cleared:
 * the caller falls back to the plain call). */
static ssize_t io_send_conn(int fd, const struct msghdr *msg, int flags) {
    int sflags = (flags | MSG_NOSIGNAL) & ~MSG_FASTOPEN;
    ssize_t n = RUDP_REAL(sendmsg)(fd, msg, sflags);

    if (n >= 0)
        return n;
    if (errno == ENOTSOCK) {
        rudp_fd_clear(fd);
        return -2;
    }
    return errno == EPIPE ? io_write_failed(fd, flags) : -1;
}

/* Sends |len| bytes of |buf| on rerouted connection |fd| (see
 * io_send_conn). */
static ssize_t io_send_buf(int fd, const void *buf, size_t len, int flags) {
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};

    return io_send_conn(fd, &m, flags);
}

/* Finishes a write that went to the kernel as it is: on a rerouted
 * listener, AF_UNIX's ENOTCONN becomes TCP's EPIPE, with SIGPIPE unless
 * |flags| has MSG_NOSIGNAL.  Returns |n|, or -1 with errno. */
static ssize_t io_plain_write_done(int fd, ssize_t n, int flags) {
    if (n >= 0 || errno != ENOTCONN || !rudp_active() ||
        rudp_fd_kind_of(fd) != RUDP_FD_LISTENER)
        return n;
    if (!(flags & MSG_NOSIGNAL))
        raise(SIGPIPE);
    errno = EPIPE;
    return -1;
}

RUDP_EXPORT ssize_t write(int fd, const void *buf, size_t count) {
    ssize_t n;

    if (io_is_conn(fd) && io_send_ok() && (n = io_send_buf(fd, buf, count, 0)) != -2)
        return n;
    return io_plain_write_done(fd, RUDP_REAL(write)(fd, buf, count), 0);
}

RUDP_EXPORT ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
    struct msghdr m = {.msg_iov = (struct iovec *)iov};
    ssize_t n;

    if (iovcnt > IOV_MAX) { /* writev's own limit (sendmsg would say EMSGSIZE) */
        errno = EINVAL;
        return -1;
    }
    if (iovcnt >= 0 && io_is_conn(fd) && io_send_ok()) {
        m.msg_iovlen = (size_t)iovcnt;
        if ((n = io_send_conn(fd, &m, 0)) != -2)
            return n;
    }
    return io_plain_write_done(fd, RUDP_REAL(writev)(fd, iov, iovcnt), 0);
}

RUDP_EXPORT ssize_t send(int fd, const void *buf, size_t len, int flags) {
    ssize_t n;

    if (io_is_conn(fd) && io_send_ok() && (n = io_send_buf(fd, buf, len, flags)) != -2)
        return n;
    return io_plain_write_done(fd, RUDP_REAL(send)(fd, buf, len, flags), flags);
}

/* MSG_FASTOPEN to |addr| on fd: when fd is an unconnected TCP socket and
 * the destination is selected, reroutes it in 0-RTT mode.  Returns 1 when
 * rerouted, 0 when the call should go to the kernel, -1 on error. */
static int io_fastopen(int fd, const struct sockaddr *addr, socklen_t alen, int flags) {
    rudp_fd_entry *e;
    struct sockaddr_storage dst;
    int r;

    if (!(flags & MSG_FASTOPEN) || addr == NULL || !rudp_active())
        return 0;
    e = rudp_fd_peek(fd);
    if (rudp_fd_kind(e) == RUDP_FD_CONN) {
        errno = EISCONN;
        return -1;
    }
    if (rudp_fd_kind(e) != RUDP_FD_TCP || addr->sa_family != e->family ||
        rudp_addr_normalize(&dst, addr, alen, true) == 0 ||
        !rudp_addr_selected((struct sockaddr *)&dst, false))
        return 0;
    if ((r = rudp_conn_reroute(fd, addr, alen, true)) < 0) {
        errno = -r;
        return -1;
    }
    return 1;
}

RUDP_EXPORT ssize_t sendto(int fd, const void *buf, size_t len, int flags,
                           const struct sockaddr *addr, socklen_t alen) {
    int fo = io_fastopen(fd, addr, alen, flags);
    ssize_t n;

    if (fo < 0)
        return -1;
    if (fo > 0 || io_is_conn(fd)) {
        if (!io_send_ok())
            return RUDP_REAL(sendto)(fd, buf, len, flags & ~MSG_FASTOPEN, NULL, 0);
        if ((n = io_send_buf(fd, buf, len, flags)) != -2)
            return n;
    }
    return io_plain_write_done(fd, RUDP_REAL(sendto)(fd, buf, len, flags, addr, alen),
                               flags);
}

RUDP_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
    int fo = msg ? io_fastopen(fd, msg->msg_name, msg->msg_namelen, flags) : 0;
    struct msghdr m;
    ssize_t n;

    if (fo < 0)
        return -1;
    if (msg != NULL && (fo > 0 || io_is_conn(fd))) {
        m = *msg;
        m.msg_name = NULL; /* a TCP socket ignores it; AF_UNIX would refuse it */
        m.msg_namelen = 0;
        if (!io_send_ok())
            return RUDP_REAL(sendmsg)(fd, &m, flags & ~MSG_FASTOPEN);
        if ((n = io_send_conn(fd, &m, flags)) != -2)
            return n;
    }
    return io_plain_write_done(fd, RUDP_REAL(sendmsg)(fd, msg, flags), flags);
}

/* --- seccomp --- */

/* prctl(2): notes PR_SET_SECCOMP before the filter is in place, so no write
 * after it turns into a system call the filter may not allow.  prctl takes
 * up to four more unsigned long arguments; passing all four is what glibc's
 * own wrapper does. */
RUDP_EXPORT int prctl(int option, ...) {
    unsigned long a[4];
    va_list ap;

    va_start(ap, option);
    for (int i = 0; i < 4; i++)
        a[i] = va_arg(ap, unsigned long);
    va_end(ap);
    if (option == PR_SET_SECCOMP)
        atomic_store_explicit(&io_sandboxed, true, memory_order_relaxed);
    return RUDP_REAL(prctl)(option, a[0], a[1], a[2], a[3]);
}
