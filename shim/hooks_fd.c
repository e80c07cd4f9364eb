/*
 * hooks_fd.c — the hooks that create, copy and close file descriptors
 * (DESIGN.md §2 rule 2, §4 "dup" and "close").
 *
 * They keep the fd table in step with the kernel's: socket() records TCP
 * sockets (the only ones that can be rerouted later), every call that hands
 * out an fd number clears or copies the entry at that number, and every
 * close forgets it.  Because a rerouted connection is a real kernel socket,
 * dup/dup2/dup3/F_DUPFD need nothing beyond copying the entry: the kernel
 * keeps the socketpair end open until the last copy is closed, and only
 * then does the engine see EOF and finish the connection.
 *
 * The entry of an fd is cleared before the real close, never after: once
 * the kernel has freed the number another thread may be handed it by
 * socket() or accept() and record a fresh entry we must not wipe.
 *
 * The RUDP_LOG_FILE descriptor is the shim's, not the program's: close,
 * close_range and closefrom leave it open (a program that closes every fd
 * from 3 up, as ssh and sshd do, would otherwise free its number for the
 * next file or socket and the log lines would be written into that).
 *
 * Not interposed: fclose() of a stdio stream on a socket and raw close
 * syscalls.  They leave a stale entry behind; the hooks that act on an
 * entry in a way that matters (error translation, SO_LINGER, listener
 * teardown) first check that the fd's inode is still the recorded one.
 */
#include "shim.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* Returns true for an AF_INET/AF_INET6 TCP socket type triple. */
static bool fd_is_tcp(int domain, int type, int protocol) {
    int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);

    return (domain == AF_INET || domain == AF_INET6) && base == SOCK_STREAM &&
           (protocol == 0 || protocol == IPPROTO_TCP);
}

/* Creates a socket; an AF_INET/AF_INET6 TCP socket gets a TCP entry (it may
 * be rerouted at connect or listen), any other fd number is cleared.  A
 * number beyond the program's own descriptor limit is EMFILE (limits.c). */
RUDP_EXPORT int socket(int domain, int type, int protocol) {
    int fd = RUDP_REAL(socket)(domain, type, protocol);
    rudp_fd_entry e;

    if (fd < 0 || !rudp_active())
        return fd;
    if (rudp_limits_exceeded(fd)) { /* beyond the program's RLIMIT_NOFILE */
        RUDP_REAL(close)(fd);
        errno = EMFILE;
        return -1;
    }
    if (!fd_is_tcp(domain, type, protocol)) {
        rudp_fd_clear(fd);
        return fd;
    }
    memset(&e, 0, sizeof(e));
    atomic_init(&e.kind, RUDP_FD_TCP);
    e.family = domain;
    if (rudp_fd_publish(fd, &e) < 0)
        rudp_fd_clear(fd);
    return fd;
}

/* Creates a socketpair; both fd numbers lose any stale entry. */
RUDP_EXPORT int socketpair(int domain, int type, int protocol, int sv[2]) {
    int r = RUDP_REAL(socketpair)(domain, type, protocol, sv);

    if (r == 0 && rudp_active()) {
        rudp_fd_clear(sv[0]);
        rudp_fd_clear(sv[1]);
    }
    return r;
}

/* Returns the shim's log descriptor when it lies in [first, last], else -1. */
static int fd_log_in(unsigned int first, unsigned int last) {
    int fd = rudp_cfg.log_fd;

    return fd >= 0 && (unsigned)fd >= first && (unsigned)fd <= last ? fd : -1;
}

/* Closes |fd| after forgetting its entry (SO_LINGER {1,0} marks the
 * connection for reset); a listener whose last copy this was stops being
 * served by the engine.  The log descriptor is not the program's: EBADF. */
RUDP_EXPORT int close(int fd) {
    rudp_fd_entry l;
    int r;

    if (rudp_active() && fd_log_in((unsigned)fd, (unsigned)fd) >= 0) {
        errno = EBADF;
        return -1;
    }
    if (!rudp_active() || !rudp_fd_forget(fd, &l))
        return RUDP_REAL(close)(fd);
    r = RUDP_REAL(close)(fd);
    rudp_fd_listener_closed(&l);
    return r;
}

/* rudp_fd_foreach callback: forgets one fd of a closed range.  A listener
 * closed this way is not unlistened: the engine finds its AF_UNIX name gone
 * at the next incoming stream (ranges are closed in children before exec,
 * which never own a listener's engine anyway). */
static void fd_forget_cb(int fd, rudp_fd_entry *e, void *ctx) {
    (void)e;
    (void)ctx;
    rudp_fd_forget(fd, NULL);
}

/* close_range(2): forgets every entry in the range unless the call only
 * sets close-on-exec; the log descriptor is left out of the range. */
RUDP_EXPORT int close_range(unsigned int first, unsigned int last, int flags) {
    int logfd;

    if (!rudp_active() || first > last)
        return RUDP_REAL(close_range)(first, last, flags);
    if (!(flags & CLOSE_RANGE_CLOEXEC))
        rudp_fd_foreach(first, last, fd_forget_cb, NULL);
    logfd = fd_log_in(first, last);
    if (logfd < 0)
        return RUDP_REAL(close_range)(first, last, flags);
    if ((unsigned)logfd > first &&
        RUDP_REAL(close_range)(first, (unsigned)logfd - 1, flags) < 0)
        return -1;
    if ((unsigned)logfd < last)
        return RUDP_REAL(close_range)((unsigned)logfd + 1, last, flags);
    return 0;
}

/* closefrom(3): forgets every entry from |lowfd| up; the log descriptor
 * stays open. */
RUDP_EXPORT void closefrom(int lowfd) {
    int logfd;

    if (!rudp_active() || lowfd < 0) {
        RUDP_REAL(closefrom)(lowfd);
        return;
    }
    rudp_fd_foreach((unsigned)lowfd, ~0u, fd_forget_cb, NULL);
    logfd = fd_log_in((unsigned)lowfd, ~0u);
    if (logfd < 0) {
        RUDP_REAL(closefrom)(lowfd);
        return;
    }
    if (logfd > lowfd) {
        int saved = errno;

        if (RUDP_REAL(close_range)((unsigned)lowfd, (unsigned)logfd - 1, 0) < 0)
            for (int fd = lowfd; fd < logfd; fd++)
                RUDP_REAL(close)(fd);
        errno = saved;
    }
    RUDP_REAL(closefrom)(logfd + 1);
}

/* Duplicates |fd|; the new number gets a copy of the entry. */
RUDP_EXPORT int dup(int fd) {
    int nfd = RUDP_REAL(dup)(fd);

    if (nfd >= 0 && rudp_active())
        rudp_fd_copy(fd, nfd);
    return nfd;
}

/* Before dup2/dup3 replaces |newfd|: runs what the kernel's implicit close
 * of |newfd| means for its old entry (the engine must see a reset flag
 * before it sees EOF), unless the call is going to fail on a bad |oldfd|.
 * Returns true when *l holds a listener to check after the call. */
static bool fd_dup_before(int oldfd, int newfd, rudp_fd_entry *l) {
    int saved = errno;
    bool listener = false;

    if (oldfd != newfd && rudp_fd_kind_of(newfd) != RUDP_FD_NONE &&
        RUDP_REAL(fcntl)(oldfd, F_GETFD) >= 0)
        listener = rudp_fd_forget(newfd, l);
    errno = saved;
    return listener;
}

/* After dup2/dup3 returned |r|: |newfd| gets a copy of |oldfd|'s entry,
 * and a listener it replaced is checked (|listener|, *l). */
static int fd_dup_after(int oldfd, int newfd, int r, bool listener,
                        const rudp_fd_entry *l) {
    if (r >= 0 && oldfd != newfd)
        rudp_fd_copy(oldfd, newfd);
    if (listener)
        rudp_fd_listener_closed(l);
    return r;
}

RUDP_EXPORT int dup2(int oldfd, int newfd) {
    rudp_fd_entry l;
    bool listener;

    if (!rudp_active())
        return RUDP_REAL(dup2)(oldfd, newfd);
    listener = fd_dup_before(oldfd, newfd, &l);
    return fd_dup_after(oldfd, newfd, RUDP_REAL(dup2)(oldfd, newfd), listener, &l);
}

RUDP_EXPORT int dup3(int oldfd, int newfd, int flags) {
    rudp_fd_entry l;
    bool listener;

    if (!rudp_active())
        return RUDP_REAL(dup3)(oldfd, newfd, flags);
    listener = fd_dup_before(oldfd, newfd, &l);
    return fd_dup_after(oldfd, newfd, RUDP_REAL(dup3)(oldfd, newfd, flags), listener, &l);
}

/* The common part of fcntl and fcntl64 after the real call |r|: F_DUPFD
 * copies the entry, F_SETFL on a connection records O_NONBLOCK. */
static int fd_fcntl_after(int fd, int cmd, void *arg, int r) {
    rudp_fd_entry *e;

    if (r < 0 || !rudp_active())
        return r;
    if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) {
        rudp_fd_copy(fd, r);
    } else if (cmd == F_SETFL) {
        e = rudp_fd_peek(fd);
        if (rudp_fd_kind(e) == RUDP_FD_CONN)
            e->nonblock = ((int)(intptr_t)arg & O_NONBLOCK) != 0;
    }
    return r;
}

/* fcntl is variadic; its one optional argument is an int or a pointer,
 * read as a pointer-sized value as glibc itself does. */
RUDP_EXPORT int fcntl(int fd, int cmd, ...) {
    va_list ap;
    void *arg;

    va_start(ap, cmd);
    arg = va_arg(ap, void *);
    va_end(ap);
    return fd_fcntl_after(fd, cmd, arg, RUDP_REAL(fcntl)(fd, cmd, arg));
}

/* fcntl64: what programs built with _FILE_OFFSET_BITS=64 call. */
RUDP_EXPORT int fcntl64(int fd, int cmd, ...) {
    va_list ap;
    void *arg;

    va_start(ap, cmd);
    arg = va_arg(ap, void *);
    va_end(ap);
    return fd_fcntl_after(fd, cmd, arg, RUDP_REAL(fcntl64)(fd, cmd, arg));
}
