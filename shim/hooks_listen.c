/*
 * hooks_listen.c — bind, listen, accept and shutdown (DESIGN.md §2 rule 2,
 * §4 "accept", "listeners").
 *
 * Rerouting a listener: listen() on a TCP socket bound to a selected port
 * creates an AF_UNIX listener under a unique abstract name, asks the engine
 * to serve the UDP port and to connect to that name once per incoming
 * stream, and puts the listener on the program's fd number.  accept() is
 * then the kernel's own (blocking, SOCK_NONBLOCK, readiness); the shim only
 * decodes the engine's abstract address of the accepted socket to learn the
 * TCP peer and local addresses and the board slot.  The AF_UNIX listener's
 * queue is at least SOMAXCONN long whatever backlog the program asked for
 * (python's socketserver listens with 5): a stream that finds it full waits
 * in the engine until the program makes room (rt_accept.c), as a TCP client
 * whose handshake the kernel dropped waits and retransmits, but the longer
 * queue keeps bursts from waiting at all.
 *
 * The kernel decides who may listen where.  The program's TCP socket is not
 * closed when the AF_UNIX listener takes its fd number: it really listens
 * (so listen() fails exactly when TCP's would), is moved to a high
 * close-on-exec descriptor, the placeholder, and stays bound and listening
 * as long as any copy of the listener does.  So a later bind() to the
 * address fails with EADDRINUSE at bind, as it would, and SO_REUSEADDR,
 * SO_REUSEPORT (same user), IPV6_V6ONLY and wildcard-against-specific
 * conflicts are the kernel's own rules.  A socket filter that accepts
 * nothing keeps TCP clients out of its queue (a client without the shim
 * sees its SYNs go unanswered).  Some kernels refuse socket filters to a
 * process without privilege (a server that gave up root before listening,
 * as memcached -u does): the placeholder then listens with the shortest
 * queue, so at most one TCP client without the shim sits in it, its
 * connect complete and never served.  Whether the engine serves the address
 * with a new UDP socket or with one it serves already (a second listener
 * on it) is the runtime's business (rt_listen.c).
 *
 * shutdown(SHUT_RD) of a TCP listener stops it and leaves a closed, bound
 * socket on which listen() starts again: the shim does the same by giving
 * the fd number back to the placeholder, stopped and unfiltered.  On a
 * connection, shutdown(SHUT_WR) is noted in the slot for TCP_INFO's state.
 */
#include "shim.h"

#include <errno.h>
#include <linux/filter.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

/* Counter making each listener's abstract name unique. */
static _Atomic uint32_t listener_seq;

/* --- bind --- */

/* Binds |fd|; a TCP socket remembers its address for listen(). */
RUDP_EXPORT int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    int r = RUDP_REAL(bind)(fd, addr, len);
    rudp_fd_entry *e;

    if (r < 0 || !rudp_active())
        return r;
    e = rudp_fd_peek(fd);
    if (rudp_fd_kind(e) == RUDP_FD_TCP)
        e->local_len = rudp_addr_normalize(&e->local, addr, len, false);
    return r;
}

/* --- listen --- */

/* The backlog given to an AF_UNIX listener for the program's |backlog| (the
 * kernel caps it at net.core.somaxconn). */
static int listen_backlog(int backlog) {
    return backlog < SOMAXCONN ? SOMAXCONN : backlog;
}

/* Creates the AF_UNIX listener for fd's reroute, bound to a fresh abstract
 * name written to |sun| / *namelen.  Returns the socket or -errno. */
static int listen_unix(int fd, int backlog, struct sockaddr_un *sun, size_t *namelen) {
    int u = RUDP_REAL(socket)(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    socklen_t slen;
    int n, err;

    if (u < 0)
        return -errno;
    rudp_fd_clear(u);
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    n = snprintf(sun->sun_path + 1, RUDP_FD_LNAME_MAX - 1, "rudp-l/%d/%d/%u", (int)getpid(),
                 fd, atomic_fetch_add(&listener_seq, 1));
    *namelen = 1 + (size_t)(n < RUDP_FD_LNAME_MAX - 1 ? n : RUDP_FD_LNAME_MAX - 2);
    slen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + *namelen);
    if (RUDP_REAL(bind)(u, (struct sockaddr *)sun, slen) < 0 ||
        RUDP_REAL(listen)(u, listen_backlog(backlog)) < 0) {
        err = errno;
        RUDP_REAL(close)(u);
        return -err;
    }
    return u;
}

/* Returns the rudp_rt_listen flags for the TCP socket |fd| (of |family|):
 * IPV6_V6ONLY as the kernel has it, the program's setting or the default
 * (net.ipv6.bindv6only). */
static unsigned listen_flags(int fd, int family) {
    int v6only = 0;
    socklen_t len = sizeof(v6only);

    if (family != AF_INET6 ||
        RUDP_REAL(getsockopt)(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len) < 0)
        return 0;
    return v6only ? RUDP_RT_LISTEN_V6ONLY : 0;
}

/* Makes the TCP socket |fd| listen as the kernel allows, with a filter
 * that lets no packet in (or, where the kernel refuses the filter, with the
 * shortest queue): it stands for the rerouted listener in the kernel's port
 * table.  Returns 0 or -errno (listen's own error). */
static int listen_placeholder(int fd, int backlog) {
    static _Atomic bool told;
    struct sock_filter drop = BPF_STMT(BPF_RET | BPF_K, 0);
    struct sock_fprog prog = {.len = 1, .filter = &drop};

    if (RUDP_REAL(setsockopt)(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0) {
        if (errno != EPERM && errno != EACCES)
            return -errno;
        if (!atomic_exchange(&told, true))
            rudp_log(RUDP_LOG_INFO,
                     "the kernel refused a socket filter (%s): a TCP "
                     "client without the shim may wait in a listener's placeholder queue",
                     strerror(errno));
        backlog = 0;
    }
    if (RUDP_REAL(listen)(fd, backlog) < 0)
        return -errno;
    return 0;
}

/* Fills the LISTENER entry |l| of fd from the TCP entry |tcp|. */
static void listen_entry(rudp_fd_entry *l, int fd, const rudp_fd_entry *tcp, int id,
                         const struct sockaddr_un *sun, size_t namelen, int ph) {
    *l = *tcp;
    atomic_init(&l->kind, RUDP_FD_LISTENER);
    l->listener_id = id;
    l->owner = getpid();
    l->lname_len = (uint32_t)namelen;
    memcpy(l->lname, sun->sun_path, namelen);
    l->ino = rudp_fd_inode(fd);
    l->ph_fd = ph;
    l->ph_ino = rudp_fd_inode(ph);
}

/* Reroutes listen() on the bound TCP socket |fd|.  Returns 0 or -errno. */
static int listen_reroute(int fd, const rudp_fd_entry *tcp, int backlog) {
    struct sockaddr_un sun;
    rudp_fd_entry l;
    size_t namelen = 0;
    bool cloexec, nonblock;
    int u = -1, id = -1, ph = -1, r;

    if ((r = rudp_fd_flags(fd, &cloexec, &nonblock)) < 0 ||
        (r = listen_placeholder(fd, backlog)) < 0 ||
        (r = u = listen_unix(fd, backlog, &sun, &namelen)) < 0)
        return r;
    id = rudp_rt_listen((const struct sockaddr *)&tcp->local, tcp->local_len, sun.sun_path,
                        namelen, listen_flags(fd, tcp->family));
    r = id < 0 ? -rudp_errno(id) : 0;
    if (r == 0 && (ph = rudp_rt_fd_dup_high(fd)) < 0)
        r = -errno;
    if (r == 0)
        r = rudp_fd_swap(u, fd, cloexec, nonblock, false);
    if (r < 0) {
        if (id >= 0)
            rudp_rt_unlisten(id);
        if (ph >= 0)
            RUDP_REAL(close)(ph);
        RUDP_REAL(close)(u);
        return r;
    }
    listen_entry(&l, fd, tcp, id, &sun, namelen, ph);
    rudp_fd_publish(fd, &l);
    rudp_log(RUDP_LOG_DEBUG, "fd %d listening over rudp (port %u, listener %d)", fd,
             rudp_addr_port((const struct sockaddr *)&tcp->local), id);
    return 0;
}

/* Returns true when listen() on the TCP socket |fd| (entry |tcp|) is to
 * be rerouted: its address is selected.  A socket bound to port 0, or not
 * bound at all, gets its port from the kernel first (listen() would pick
 * one the same way), so an ephemeral port in RUDP_PORTS is rerouted too;
 * tcp->local is updated. */
static bool listen_selected(int fd, rudp_fd_entry *tcp) {
    struct sockaddr_storage a;
    socklen_t len = sizeof(a);

    if (tcp->local_len == 0 || rudp_addr_port((const struct sockaddr *)&tcp->local) == 0) {
        memset(&a, 0, sizeof(a));
        a.ss_family = (sa_family_t)tcp->family;
        if (tcp->local_len == 0 &&
            RUDP_REAL(bind)(fd, (struct sockaddr *)&a, rudp_addr_size(tcp->family)) < 0)
            return false;
        if (RUDP_REAL(getsockname)(fd, (struct sockaddr *)&a, &len) < 0)
            return false;
        tcp->local_len =
            rudp_addr_normalize(&tcp->local, (struct sockaddr *)&a, len, false);
    }
    return tcp->local_len > 0 &&
           rudp_addr_selected((const struct sockaddr *)&tcp->local, true);
}

/* Listens on |fd|; a TCP socket bound to a selected port is rerouted (a
 * second listen on a rerouted listener only changes its queue length). */
RUDP_EXPORT int listen(int fd, int backlog) {
    rudp_fd_entry tcp;
    uint32_t kind;
    int r;

    if (!rudp_active())
        return RUDP_REAL(listen)(fd, backlog);
    kind = rudp_fd_snapshot(fd, &tcp);
    if (kind == RUDP_FD_LISTENER && rudp_fd_still_ours(fd, &tcp))
        return RUDP_REAL(listen)(fd, listen_backlog(backlog));
    if (kind != RUDP_FD_TCP || !listen_selected(fd, &tcp))
        return RUDP_REAL(listen)(fd, backlog);
    if ((r = listen_reroute(fd, &tcp, backlog)) == 0)
        return 0;
    errno = -r;
    return -1;
}

/* --- shutdown --- */

/* Turns the placeholder |ph| of a listener back into a plain TCP socket,
 * as shutdown(SHUT_RD) leaves a TCP listener: closed, still bound (unless
 * its port was the kernel's pick), no filter.  Returns a new fd for it, or
 * -errno. */
static int listen_unplace(int ph) {
    int t = RUDP_REAL(fcntl)(ph, F_DUPFD_CLOEXEC, 0);
    int err, none = 0; /* SO_DETACH_FILTER reads no value, but wants an int's room */

    if (t < 0)
        return -errno;
    if (RUDP_REAL(shutdown)(t, SHUT_RD) < 0 ||
        (RUDP_REAL(setsockopt)(t, SOL_SOCKET, SO_DETACH_FILTER, &none, sizeof(none)) < 0 &&
         errno != ENOENT)) { /* ENOENT: the kernel had refused the filter */
        err = errno;
        RUDP_REAL(close)(t);
        return -err;
    }
    return t;
}

/* Fills the TCP entry |tcp| for the socket |t| that was listener |l|. */
static void listen_tcp_entry(rudp_fd_entry *tcp, int t, const rudp_fd_entry *l) {
    struct sockaddr_storage a;
    socklen_t len = sizeof(a);

    memset(tcp, 0, sizeof(*tcp));
    atomic_init(&tcp->kind, RUDP_FD_TCP);
    tcp->family = l->family;
    tcp->opts = l->opts;
    tcp->ph_fd = -1;
    if (RUDP_REAL(getsockname)(t, (struct sockaddr *)&a, &len) == 0 &&
        rudp_addr_port((struct sockaddr *)&a) != 0)
        tcp->local_len =
            rudp_addr_normalize(&tcp->local, (struct sockaddr *)&a, len, false);
}

/* shutdown(SHUT_RD or SHUT_RDWR) of the rerouted listener |fd| (entry
 * |l|), as TCP's: the listener stops (the AF_UNIX one, for every process
 * that shares it), and fd becomes the closed, bound TCP socket TCP leaves,
 * on which listen() starts again.  Returns 0 or -1 with errno. */
static int listen_stop(int fd, const rudp_fd_entry *l, int how) {
    rudp_fd_entry tcp, owned;
    bool cloexec, nonblock, mine;
    int t, r;

    if ((r = rudp_fd_flags(fd, &cloexec, &nonblock)) < 0 ||
        (t = r = listen_unplace(l->ph_fd)) < 0) {
        errno = -r;
        return -1;
    }
    RUDP_REAL(shutdown)(fd, how);
    listen_tcp_entry(&tcp, t, l);
    mine = rudp_fd_forget(fd, &owned);
    if ((r = rudp_fd_swap(t, fd, cloexec, nonblock, false)) < 0) {
        RUDP_REAL(close)(t);
        errno = -r;
        return -1;
    }
    rudp_fd_publish(fd, &tcp);
    if (mine)
        rudp_fd_listener_closed(&owned);
    return 0;
}

/* After shutdown(|how|) of the rerouted connection |e| succeeded: an end
 * of the program's writing is noted in the slot (TCP_INFO's state). */
static void shutdown_conn(int fd, const rudp_fd_entry *e, int how) {
    rudp_slot *slot = rudp_slot_of(&e->ref);

    if ((how == SHUT_WR || how == SHUT_RDWR) && slot != NULL && rudp_fd_still_ours(fd, e))
        rudp_slot_set_flags(slot, RUDP_SLOT_F_WR_SHUT);
}

/* Shuts |fd| down; a rerouted listener as TCP's listener (above). */
RUDP_EXPORT int shutdown(int fd, int how) {
    rudp_fd_entry e;
    uint32_t kind;
    int r;

    if (!rudp_active())
        return RUDP_REAL(shutdown)(fd, how);
    kind = rudp_fd_snapshot(fd, &e);
    if (kind == RUDP_FD_LISTENER && (how == SHUT_RD || how == SHUT_RDWR) &&
        rudp_fd_still_ours(fd, &e) && e.ph_fd >= 0 && rudp_fd_inode(e.ph_fd) == e.ph_ino)
        return listen_stop(fd, &e, how);
    r = RUDP_REAL(shutdown)(fd, how);
    if (r == 0 && kind == RUDP_FD_CONN)
        shutdown_conn(fd, &e, how);
    return r;
}

/* --- accept --- */

/* Builds the CONN entry of a socket accepted on listener |l| from the
 * engine's abstract address of its peer.  Returns false when the address
 * is not one of the engine's. */
static bool accept_entry(int nfd, const rudp_fd_entry *l, rudp_fd_entry *c) {
    struct sockaddr_un sun;
    socklen_t slen = sizeof(sun);
    size_t off = offsetof(struct sockaddr_un, sun_path);

    memset(c, 0, sizeof(*c));
    if (RUDP_REAL(getpeername)(nfd, (struct sockaddr *)&sun, &slen) < 0 || slen <= off ||
        slen > sizeof(sun) ||
        !rudp_board_name_decode(sun.sun_path, slen - off, &c->ref, &c->peer, &c->local))
        return false;
    atomic_init(&c->kind, RUDP_FD_CONN);
    c->family = l->family;
    c->opts = l->opts; /* accepted TCP sockets inherit the listener's options */
    c->peer_len = rudp_addr_to_family(&c->peer, l->family);
    c->local_len = rudp_addr_to_family(&c->local, l->family);
    if (!rudp_board_resolve(&c->ref))
        c->ref.slot = NULL;
    c->ino = rudp_fd_inode(nfd);
    return true;
}

/* Accepts on the rerouted listener |fd|.  Returns the new fd or -1. */
static int accept_rerouted(int fd, const rudp_fd_entry *l, struct sockaddr *addr,
                           socklen_t *alen, int flags) {
    int saved = errno, nfd;
    rudp_fd_entry c;
    bool ours;

    for (;;) {
        nfd = RUDP_REAL(accept4)(fd, NULL, NULL, flags);
        if (nfd < 0)
            return nfd;
        ours = accept_entry(nfd, l, &c);
        /* A hand-over connection (handover.c) is taken, not returned. */
        if (ours || !rudp_listener_take_over(nfd, l))
            break;
        errno = saved;
    }
    saved = errno;
    if (!ours) {
        rudp_fd_clear(nfd);
        errno = saved;
        return nfd;
    }
    c.nonblock = (flags & SOCK_NONBLOCK) != 0;
    rudp_fd_apply_opts(nfd, &c.opts);
    rudp_opt_publish_liveness(&c.opts, c.ref.slot, false);
    rudp_fd_publish(nfd, &c);
    if (addr != NULL && rudp_addr_copy_out(addr, alen, &c.peer, c.peer_len) < 0) {
        saved = errno;
        rudp_fd_clear(nfd);
        RUDP_REAL(close)(nfd);
        errno = saved;
        return -1;
    }
    errno = saved;
    return nfd;
}

/* Accepts a connection; on a rerouted listener the new fd becomes a
 * rerouted connection reporting its TCP peer. */
RUDP_EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *alen, int flags) {
    rudp_fd_entry l;
    int nfd;

    if (!rudp_active())
        return RUDP_REAL(accept4)(fd, addr, alen, flags);
    if (rudp_limits_full(fd)) {
        errno = EMFILE;
        return -1;
    }
    if (rudp_fd_snapshot(fd, &l) == RUDP_FD_LISTENER)
        return accept_rerouted(fd, &l, addr, alen, flags);
    nfd = RUDP_REAL(accept4)(fd, addr, alen, flags);
    if (nfd >= 0)
        rudp_fd_clear(nfd);
    return nfd;
}

RUDP_EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *alen) {
    rudp_fd_entry l;
    int nfd;

    if (!rudp_active())
        return RUDP_REAL(accept)(fd, addr, alen);
    if (rudp_limits_full(fd)) {
        errno = EMFILE;
        return -1;
    }
    if (rudp_fd_snapshot(fd, &l) == RUDP_FD_LISTENER)
        return accept_rerouted(fd, &l, addr, alen, 0);
    nfd = RUDP_REAL(accept)(fd, addr, alen);
    if (nfd >= 0)
        rudp_fd_clear(nfd);
    return nfd;
}
