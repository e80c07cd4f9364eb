/*
 * cases_listen.c — the listener cases of conformance-tool: several listeners
 * on one port (IPv4 + IPv6 with IPV6_V6ONLY, SO_REUSEPORT groups in one and
 * in two processes), listening again at once after a close, bind conflicts
 * that fail at bind, connects refused by a closed listener, a listener shut
 * down with SHUT_RD, I/O calls on a listener, and listeners bound to one
 * address (DESIGN.md §4 rows "listeners", "blocking connect",
 * "non-blocking connect"; issue 11 items 1-5).
 *
 * The parent is the server and prints what its listeners see; the clients
 * are peers (shapes.c) forked before any socket exists, so that no client
 * inherits a listener.
 */
#include "tool.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Waits for a connection on either listener, prints which one has it (and
 * whether the other has one too), accepts it and closes it. */
static void take_either(int l4, int l6) {
    struct pollfd p[2] = {{l4, POLLIN, 0}, {l6, POLLIN, 0}};
    if (poll(p, 2, STEP_MS) <= 0) {
        T("no listener has a connection within %d ms", STEP_MS);
        return;
    }
    bool v4 = p[0].revents & POLLIN, v6 = p[1].revents & POLLIN;
    T("readable: v4 listener %s, v6 listener %s", v4 ? "yes" : "no", v6 ? "yes" : "no");
    int a = take(v4 ? l4 : l6, v4 ? " on v4 listener" : " on v6 listener");
    if (a >= 0)
        close(a);
}

/* A v4 and a v6 (IPV6_V6ONLY=1) listener on P, opened in the order asked;
 * a v4 client, then a v6 one: which listener accepts each. */
static void dualstack(bool v4_first) {
    peer c;
    set_role("srv");
    peer_start(&c, "cli", cli_script, "46");
    int l4 = -1, l6 = -1;
    if (v4_first)
        l4 = lsn(AF_INET, "0.0.0.0", O_REUSEADDR);
    l6 = lsn(AF_INET6, "::", O_REUSEADDR | O_V6ONLY);
    if (!v4_first)
        l4 = lsn(AF_INET, "0.0.0.0", O_REUSEADDR);
    step(&c);
    take_either(l4, l6);
    step(&c);
    take_either(l4, l6);
    finish(&c);
}

/* Case: v4 listener, then a v6-only one. */
static void case_dual_v4_first(void) {
    dualstack(true);
}

/* Case: v6-only listener, then a v4 one. */
static void case_dual_v6_first(void) {
    dualstack(false);
}

/* Case: a [::] listener with IPV6_V6ONLY=1 alone refuses a v4 client and
 * takes a v6 one. */
static void case_v6only_alone(void) {
    peer c;
    set_role("srv");
    peer_start(&c, "cli", cli_script, "46");
    int l6 = lsn(AF_INET6, "::", O_REUSEADDR | O_V6ONLY);
    step(&c);
    show_poll(l6, " v6 listener after the v4 client");
    step(&c);
    int a = take(l6, "");
    if (a >= 0)
        close(a);
    finish(&c);
}

/* Case: a [::] listener with IPV6_V6ONLY=0 takes v4 clients, whose
 * addresses it sees v4-mapped, and v6 clients. */
static void case_v4mapped(void) {
    peer c;
    set_role("srv");
    peer_start(&c, "cli", cli_script, "46");
    int l6 = lsn(AF_INET6, "::", O_REUSEADDR | O_DUAL);
    for (int i = 0; i < 2; i++) {
        step(&c);
        int a = take(l6, "");
        if (a >= 0)
            close(a);
    }
    finish(&c);
}

/* Accepts on the listeners |l| (|n| of them, -1 entries skipped) until
 * |want| connections whose "hi" arrived, or STEP_MS without one.  Returns
 * the count; closes what it accepts. */
static int accept_n(const int *l, int n, int want) {
    int got = 0;
    while (got < want) {
        struct pollfd p[4];
        for (int i = 0; i < n; i++)
            p[i] = (struct pollfd){l[i], POLLIN, 0};
        if (poll(p, (nfds_t)n, STEP_MS) <= 0)
            break;
        for (int i = 0; i < n; i++) {
            if (!(p[i].revents & POLLIN))
                continue;
            int a = accept(l[i], NULL, NULL);
            if (a >= 0 && got_hi(a))
                got++;
            if (a >= 0)
                close(a);
        }
    }
    return got;
}

/* Case: two SO_REUSEPORT listeners of one process on P: 20 connections
 * are all accepted by one of them; after one is closed, 10 more are all
 * accepted by the other.  (How the kernel spreads them is its hash: not
 * printed.) */
static void case_reuseport_one(void) {
    peer c;
    set_role("srv");
    peer_start(&c, "cli", cli_many, "20,10");
    int l[2];
    l[0] = lsn(AF_INET, "127.0.0.1", O_REUSEADDR | O_REUSEPORT);
    l[1] = lsn(AF_INET, "127.0.0.1", O_REUSEADDR | O_REUSEPORT);
    step(&c);
    T("accepted %d of 20 on the two listeners", accept_n(l, 2, 20));
    CALL(close(l[0]), "close the first listener");
    step(&c);
    T("accepted %d of 10 on the remaining listener", accept_n(&l[1], 1, 10));
    finish(&c);
}

/* A server process of case_reuseport_two: an SO_REUSEPORT listener on P;
 * sends C_ACCEPTED for every connection whose "hi" arrived; on C_STOP
 * closes its listener (C_STOPPED); ends at C_DONE. */
static void srv_reuseport(int ctl, void *arg) {
    int l = lsn(AF_INET, "127.0.0.1", O_REUSEADDR | O_REUSEPORT);
    ctl_put(ctl, C_READY);
    for (;;) {
        struct pollfd p[2] = {{l, POLLIN, 0}, {ctl, POLLIN, 0}};
        if (poll(p, 2, 25000) <= 0)
            die("nothing to do for 25 s");
        if (p[0].revents & POLLIN) {
            int a = accept(l, NULL, NULL);
            if (a >= 0 && got_hi(a))
                ctl_put(ctl, C_ACCEPTED);
            if (a >= 0)
                close(a);
        }
        if (!(p[1].revents & POLLIN))
            continue;
        int msg = ctl_get(ctl, STEP_MS);
        if (msg != C_STOP)
            return;
        CALL(close(l), "close the listener");
        l = -1;
        ctl_put(ctl, C_STOPPED);
    }
}

/* Counts C_ACCEPTED from the server peers |s| (|n|) until |want| or
 * STEP_MS without one; *first gets the count from s[0]. */
static int count_accepted(peer *s, int n, int want, int *first) {
    int got = 0;
    *first = 0;
    while (got < want) {
        struct pollfd p[2];
        for (int i = 0; i < n; i++)
            p[i] = (struct pollfd){s[i].ctl, POLLIN, 0};
        if (poll(p, (nfds_t)n, STEP_MS) <= 0)
            break;
        for (int i = 0; i < n; i++)
            if ((p[i].revents & POLLIN) && ctl_get(s[i].ctl, STEP_MS) == C_ACCEPTED) {
                got++;
                *first += i == 0;
            }
    }
    return got;
}

/* Case: SO_REUSEPORT listeners in two processes (forked before socket()):
 * 20 connections all accepted by one of them; after one process closes
 * its listener, 10 more are all accepted by the other. */
static void case_reuseport_two(void) {
    peer s[2], c;
    int first;
    set_role("main");
    peer_start(&s[0], "srv1", srv_reuseport, NULL);
    ctl_expect(s[0].ctl, C_READY);
    peer_start(&s[1], "srv2", srv_reuseport, NULL);
    ctl_expect(s[1].ctl, C_READY);
    peer_start(&c, "cli", cli_many, "20,10");
    step(&c);
    T("accepted %d of 20 across the two processes", count_accepted(s, 2, 20, &first));
    ctl_put(s[0].ctl, C_STOP);
    ctl_expect(s[0].ctl, C_STOPPED);
    step(&c);
    int n = count_accepted(s, 2, 10, &first);
    T("accepted %d of 10, %d of them by the process that closed its listener", n, first);
    finish(&c);
    for (int i = 0; i < 2; i++) {
        ctl_put(s[i].ctl, C_DONE);
        peer_join(&s[i], 10000);
    }
}

/* Case: close a listener (after serving a connection) and listen again on
 * P in the same process at once (SO_REUSEADDR, as servers do). */
static void case_relisten_same(void) {
    peer c;
    set_role("srv");
    peer_start(&c, "cli", cli_script, "44");
    int l = lsn(AF_INET, "0.0.0.0", O_REUSEADDR);
    step(&c);
    int a = take(l, "");
    CALL(close(a), "close the connection");
    CALL(close(l), "close the listener");
    l = lsn(AF_INET, "0.0.0.0", O_REUSEADDR);
    step(&c);
    a = take(l, "");
    finish(&c);
}

/* The client of case_relisten_open_conn: a connection, a second one
 * after the listener changed, then bytes both ways on the first. */
static void cli_relisten(int ctl, void *arg) {
    ctl_expect(ctl, C_GO);
    int fd = dial(AF_INET, "127.0.0.1");
    if (fd >= 0)
        wr(fd, "hi", "");
    ctl_put(ctl, C_NEXT);
    ctl_expect(ctl, C_GO);
    int fd2 = dial(AF_INET, "127.0.0.1");
    if (fd2 >= 0)
        wr(fd2, "hi", "");
    ctl_put(ctl, C_NEXT);
    ctl_expect(ctl, C_GO);
    if (fd >= 0) {
        rd(fd, 16, " (first connection)");
        wr(fd, "ok", " (first connection)");
    }
    ctl_put(ctl, C_NEXT);
    ctl_expect(ctl, C_DONE);
}

/* Case: close a listener while a connection it accepted stays open, and
 * listen again on P at once: a new client is accepted, and the old
 * connection still carries bytes both ways. */
static void case_relisten_open_conn(void) {
    peer c;
    set_role("srv");
    peer_start(&c, "cli", cli_relisten, NULL);
    int l = lsn(AF_INET, "0.0.0.0", O_REUSEADDR);
    step(&c);
    int a = take(l, "");
    CALL(close(l), "close the listener (the connection stays open)");
    l = lsn(AF_INET, "0.0.0.0", O_REUSEADDR);
    step(&c);
    int b = l >= 0 ? take(l, "") : -1;
    if (a >= 0)
        wr(a, "still here", " (old connection)");
    step(&c);
    if (a >= 0)
        rd(a, 16, " (old connection)");
    if (b >= 0)
        close(b);
    finish(&c);
}

/* A server process that listens on P (SO_REUSEADDR), serves one
 * connection and exits. */
static void srv_once(int ctl, void *arg) {
    int l = lsn(AF_INET, "0.0.0.0", O_REUSEADDR);
    ctl_put(ctl, C_READY);
    int a = take(l, "");
    if (a >= 0)
        close(a);
}

/* Case: a second process listens on P right after the first one exited,
 * and a client reaches it. */
static void case_relisten_next(void) {
    set_role("cli");
    for (int i = 0; i < 2; i++) {
        peer s;
        peer_start(&s, i ? "srv2" : "srv1", srv_once, NULL);
        ctl_expect(s.ctl, C_READY);
        int fd = dial(AF_INET, "127.0.0.1");
        if (fd >= 0) {
            wr(fd, "hi", "");
            close(fd);
        }
        peer_join(&s, 10000);
    }
}

/* Tries to bind a new socket with |opts| to |ip|:P (and, if that works,
 * to listen), printing both; closes it. */
static void try_bind(int fam, const char *ip, unsigned opts) {
    int fd = lsn(fam, ip, opts);
    if (fd >= 0)
        close(fd);
}

/* Case: binding to a port a listener holds fails at bind(), with and
 * without SO_REUSEADDR; a bind to port 0 gets a port that listen() keeps;
 * the listener still takes a client. */
static void case_bind_conflict(void) {
    peer c;
    set_role("srv");
    peer_start(&c, "cli", cli_script, "4");
    int l = lsn(AF_INET, "127.0.0.1", O_REUSEADDR);
    try_bind(AF_INET, "127.0.0.1", 0);
    try_bind(AF_INET, "127.0.0.1", O_REUSEADDR);
    try_bind(AF_INET, "0.0.0.0", O_REUSEADDR);
    try_bind(AF_INET, "127.0.0.1", O_REUSEPORT);
    try_bind(AF_INET6, "::", O_REUSEADDR | O_DUAL);
    struct sockaddr_storage ss;
    socklen_t len = sa_make(&ss, AF_INET, "127.0.0.1", 0);
    int z = sock_new(AF_INET, 0);
    CALL(bind(z, (struct sockaddr *)&ss, len), "bind %s", sa_fmt(&ss, len));
    T("getsockname -> %s", name_of(z, false));
    len = sizeof ss;
    getsockname(z, (struct sockaddr *)&ss, &len);
    CALL(listen(z, 8), "listen");
    struct sockaddr_storage s2;
    socklen_t len2 = sizeof s2;
    getsockname(z, (struct sockaddr *)&s2, &len2);
    T("port after listen is the bound one: %s",
      sa_port(&s2) == sa_port(&ss) ? "yes" : "no");
    step(&c);
    take(l, "");
    finish(&c);
}

/* Case: two SO_REUSEADDR sockets bind P before either listens: the kernel
 * allows both binds (not one without SO_REUSEADDR); the second listen()
 * fails; the first listener takes a client. */
static void case_bind_unlistened(void) {
    peer c;
    set_role("srv");
    peer_start(&c, "cli", cli_script, "4");
    struct sockaddr_storage ss;
    socklen_t len = sa_make(&ss, AF_INET, "127.0.0.1", g_port);
    int s1 = sock_new(AF_INET, O_REUSEADDR), s2 = sock_new(AF_INET, O_REUSEADDR);
    int s3 = sock_new(AF_INET, 0);
    CALL(bind(s1, (struct sockaddr *)&ss, len), "bind first (reuseaddr) %s",
         sa_fmt(&ss, len));
    CALL(bind(s2, (struct sockaddr *)&ss, len), "bind second (reuseaddr)");
    CALL(bind(s3, (struct sockaddr *)&ss, len), "bind third (no options)");
    CALL(listen(s1, 8), "listen first");
    CALL(listen(s2, 8), "listen second");
    step(&c);
    take(s1, "");
    finish(&c);
}

/* Case: a listener on P is closed while its process lives on: a blocking
 * connect (v4 and v6) is refused. */
static void case_refused_closed_blocking(void) {
    peer c;
    set_role("srv");
    peer_start(&c, "cli", cli_script, "46");
    int l4 = lsn(AF_INET, "0.0.0.0", O_REUSEADDR);
    int l6 = lsn(AF_INET6, "::", O_REUSEADDR | O_V6ONLY);
    CALL(close(l4), "close v4 listener");
    CALL(close(l6), "close v6 listener");
    step(&c);
    step(&c);
    finish(&c);
}

/* A non-blocking connect to |ip|:P that is expected to fail: prints the
 * connect, whether poll reports it (POLLOUT, POLLERR or POLLHUP) and
 * SO_ERROR read twice.  The mask itself is the business of one case only
 * (refused-nonblocking-poll-mask), so that it shows there alone. */
void nb_connect_report(int fam, const char *ip) {
    int fd = dial_nb(fam, ip);
    int m = poll_for(fd, POLLOUT, POLLOUT | POLLERR | POLLHUP, STEP_MS);
    T("wait for OUT|ERR|HUP -> %s", m ? "yes" : "timeout");
    int e1 = get_int(fd, SOL_SOCKET, SO_ERROR, "SO_ERROR");
    int e2 = get_int(fd, SOL_SOCKET, SO_ERROR, "SO_ERROR");
    T("getsockopt SO_ERROR -> %s, then %s", ename(e1), ename(e2));
    close(fd);
}

/* The client of case_refused_closed_nonblocking. */
static void cli_nb_refused(int ctl, void *arg) {
    ctl_expect(ctl, C_GO);
    nb_connect_report(AF_INET, "127.0.0.1");
    nb_connect_report(AF_INET6, "::1");
    ctl_put(ctl, C_NEXT);
    ctl_expect(ctl, C_DONE);
}

/* Case: as case_refused_closed_blocking, with non-blocking connects:
 * EINPROGRESS, POLLOUT|POLLERR, SO_ERROR ECONNREFUSED then 0. */
static void case_refused_closed_nonblocking(void) {
    peer c;
    set_role("srv");
    peer_start(&c, "cli", cli_nb_refused, NULL);
    int l4 = lsn(AF_INET, "0.0.0.0", O_REUSEADDR);
    int l6 = lsn(AF_INET6, "::", O_REUSEADDR | O_V6ONLY);
    CALL(close(l4), "close v4 listener");
    CALL(close(l6), "close v6 listener");
    step(&c);
    finish(&c);
}

/* Case: shutdown(listener, SHUT_RD): what accept, poll and a client's
 * connect give; then listen() again and a client connects. */
static void case_listener_shut_rd(void) {
    peer c;
    set_role("srv");
    peer_start(&c, "cli", cli_script, "44");
    int l = lsn(AF_INET, "127.0.0.1", O_REUSEADDR);
    CALL(shutdown(l, SHUT_RD), "shutdown(listener, SHUT_RD)");
    show_poll(l, " listener");
    BCALL(accept(l, NULL, NULL), "accept");
    T("SO_ACCEPTCONN -> %d", get_int(l, SOL_SOCKET, SO_ACCEPTCONN, "SO_ACCEPTCONN"));
    step(&c);
    CALL(listen(l, 64), "listen again");
    step(&c);
    take(l, "");
    finish(&c);
}

/* Case: what I/O calls give on a listener, then after shutdown(SHUT_RDWR):
 * read, write (SIGPIPE?), send(MSG_NOSIGNAL), recv, getpeername, listen
 * again, bind again, connect, accept. */
static void case_listener_io(void) {
    set_role("srv");
    int l = lsn(AF_INET, "127.0.0.1", O_REUSEADDR);
    char b[8];
    struct sockaddr_storage ss;
    socklen_t len = sa_make(&ss, AF_INET, "127.0.0.1", g_port);
    for (int round = 0; round < 2; round++) {
        BCALL(read(l, b, sizeof b), "read");
        BCALL(write(l, "x", 1), "write");
        BCALL(send(l, "x", 1, MSG_NOSIGNAL), "send MSG_NOSIGNAL");
        BCALL(recv(l, b, sizeof b, MSG_DONTWAIT), "recv MSG_DONTWAIT");
        T("getpeername -> %s", name_of(l, true));
        CALL(bind(l, (struct sockaddr *)&ss, len), "bind again");
        CALL(listen(l, 16), "listen again");
        show_poll(l, "");
        if (round == 0)
            CALL(shutdown(l, SHUT_RDWR), "shutdown(SHUT_RDWR)");
    }
    set_nonblock(l, true);
    CALL(accept(l, NULL, NULL), "accept (non-blocking)");
}

/* Case: a listener bound to 127.0.0.1 refuses a client of 127.0.0.2; a
 * wildcard listener takes it (and names the address it was reached on). */
static void case_listener_address(void) {
    peer c;
    set_role("srv");
    peer_start(&c, "cli", cli_script, "224");
    int l = lsn(AF_INET, "127.0.0.1", O_REUSEADDR);
    step(&c);
    CALL(close(l), "close the listener");
    l = lsn(AF_INET, "0.0.0.0", O_REUSEADDR);
    step(&c);
    take(l, "");
    step(&c);
    take(l, "");
    finish(&c);
}

/* Case: a socket bound to P that neither listens nor connects, and a
 * fresh one: names, poll, read, write, shutdown. */
static void case_bound_unconnected(void) {
    set_role("main");
    struct sockaddr_storage ss;
    socklen_t len = sa_make(&ss, AF_INET, "127.0.0.1", g_port);
    char b[8];
    for (int bound = 1; bound >= 0; bound--) {
        int fd = sock_new(AF_INET, O_REUSEADDR);
        if (bound)
            CALL(bind(fd, (struct sockaddr *)&ss, len), "bind %s", sa_fmt(&ss, len));
        T("%s socket: getsockname -> %s, getpeername -> %s", bound ? "bound" : "fresh",
          name_of(fd, false), name_of(fd, true));
        show_poll(fd, "");
        BCALL(read(fd, b, sizeof b), "read");
        BCALL(write(fd, "x", 1), "write");
        CALL(shutdown(fd, SHUT_WR), "shutdown(SHUT_WR)");
        CALL(close(fd), "close");
    }
}

const case_def cases_listen[] = {
    {"dualstack-v4-then-v6only", case_dual_v4_first,
     "v4 listener + v6-only listener on one port; each client reaches its own"},
    {"dualstack-v6only-then-v4", case_dual_v6_first, "the same, v6-only listener first"},
    {"v6only-alone-refuses-v4", case_v6only_alone,
     "[::] v6-only alone: v4 refused, v6 taken"},
    {"dualstack-v4mapped", case_v4mapped,
     "[::] without v6-only takes v4 clients, v4-mapped"},
    {"reuseport-one-process", case_reuseport_one, "two SO_REUSEPORT listeners, one closed"},
    {"reuseport-two-processes", case_reuseport_two, "SO_REUSEPORT across two processes"},
    {"relisten-same-process", case_relisten_same, "close a listener, listen again at once"},
    {"relisten-next-process", case_relisten_next, "a new process listens after one exited"},
    {"relisten-with-open-connection", case_relisten_open_conn,
     "listen again while an accepted connection stays open"},
    {"bind-conflict-listening", case_bind_conflict,
     "bind to a listener's port fails at bind"},
    {"bind-conflict-unlistened", case_bind_unlistened,
     "two reuseaddr binds, second listen"},
    {"refused-closed-listener-blocking", case_refused_closed_blocking,
     "a closed listener refuses a blocking connect"},
    {"refused-closed-listener-nonblocking", case_refused_closed_nonblocking,
     "a closed listener refuses a non-blocking connect"},
    {"listener-shutdown-rd", case_listener_shut_rd, "shutdown(SHUT_RD) on a listener"},
    {"listener-io", case_listener_io, "read/write/recv/bind/listen/accept on a listener"},
    {"listener-specific-address", case_listener_address, "127.0.0.1 vs wildcard listener"},
    {"bound-unconnected", case_bound_unconnected, "I/O on bound and fresh sockets"},
    {NULL, NULL, NULL},
};
