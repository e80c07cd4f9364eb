/*
 * shapes.c — the shapes most cases of conformance-tool are built from:
 *
 *   a scripted client peer (cli_script): one connection per step, each step
 *     started by the parent (step) so that the parent observes its listeners
 *     between connections;
 *   a bulk client peer (cli_many): N connections per step, results summed;
 *   a connected pair (pair_open): a server peer that listens on 127.0.0.1:P,
 *     accepts one connection and runs the case's server function on it,
 *     while the parent is the client.
 *
 * Every client writes "hi" on a fresh connection, so that the accepting side
 * proves the connection carries bytes (take).
 */
#include "tool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Connects to |c|:P ('4' 127.0.0.1, '6' ::1, '2' 127.0.0.2), printing the
 * result.  Returns the fd or -1. */
static int dial_char(char c) {
    if (c == '6')
        return dial(AF_INET6, "::1");
    return dial(AF_INET, c == '2' ? "127.0.0.2" : "127.0.0.1");
}

/* The scripted client.  |arg| is a string, one character per connection
 * (see dial_char).  For each: waits for C_GO, connects, prints both names
 * and writes "hi", then sends C_NEXT.  Keeps every connection open until
 * C_DONE. */
void cli_script(int ctl, void *arg) {
    int fds[64], n = 0;
    for (const char *s = arg; *s; s++) {
        ctl_expect(ctl, C_GO);
        int fd = dial_char(*s);
        if (fd >= 0) {
            T("names: local %s, peer %s", name_of(fd, false), name_of(fd, true));
            wr(fd, "hi", "");
            fds[n++] = fd;
        }
        ctl_put(ctl, C_NEXT);
    }
    ctl_expect(ctl, C_DONE);
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

/* Lets the scripted client |c| make its next connection and waits for it. */
void step(peer *c) {
    ctl_put(c->ctl, C_GO);
    ctl_expect(c->ctl, C_NEXT);
}

/* Ends the scripted client |c| and prints its trace. */
void finish(peer *c) {
    ctl_put(c->ctl, C_DONE);
    peer_join(c, 10000);
}

/* Returns whether "hi" arrives on |fd| within STEP_MS. */
bool got_hi(int fd) {
    char buf[2];
    size_t got = 0;
    while (got < 2 && poll_for(fd, POLLIN, 0, STEP_MS)) {
        ssize_t r = recv(fd, buf + got, 2 - got, MSG_DONTWAIT);
        if (r <= 0 && !(r < 0 && errno == EAGAIN))
            break;
        got += r > 0 ? (size_t)r : 0;
    }
    return got == 2 && memcmp(buf, "hi", 2) == 0;
}

/* Accepts a connection on |lfd| (see acc), prints its local name and
 * whether the client's "hi" arrived.  Returns the fd or -1. */
int take(int lfd, const char *tag) {
    int fd = acc(lfd, tag);
    if (fd >= 0)
        T("accepted: local %s, 'hi' %s", name_of(fd, false),
          got_hi(fd) ? "arrived" : "did not arrive");
    return fd;
}

/* The bulk client.  |arg| is a list of counts ("20,10"): for each, waits
 * for C_GO, makes that many connections (each writes "hi"), prints how
 * many connects returned 0, and sends C_NEXT.  Keeps them open until
 * C_DONE. */
void cli_many(int ctl, void *arg) {
    static int fds[256];
    int n = 0;
    for (const char *s = arg; *s;) {
        char *end;
        long want = strtol(s, &end, 10);
        s = *end ? end + 1 : end;
        ctl_expect(ctl, C_GO);
        int ok = 0, first_err = 0;
        for (long i = 0; i < want && n < 256; i++) {
            struct sockaddr_storage ss;
            socklen_t len = sa_make(&ss, AF_INET, "127.0.0.1", g_port);
            int fd = sock_new(AF_INET, 0);
            arm(STEP_MS);
            int rc = connect(fd, (struct sockaddr *)&ss, len);
            int e = errno;
            disarm();
            if (rc == 0 && write(fd, "hi", 2) == 2) {
                ok++;
                fds[n++] = fd;
            } else {
                first_err = first_err ? first_err : (rc ? e : EIO);
                close(fd);
            }
        }
        T("connect x%ld -> %d returned 0%s%s", want, ok,
          first_err ? ", first failure " : "", first_err ? ename(first_err) : "");
        ctl_put(ctl, C_NEXT);
    }
    ctl_expect(ctl, C_DONE);
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

/* The server peer of pair_open: listens on 127.0.0.1:P, sends C_READY,
 * accepts one connection and runs the case's server function on it. */
static void srv_wrap(int ctl, void *arg) {
    conn_fn fn = (conn_fn)arg;
    int l = lsn(AF_INET, "127.0.0.1", O_REUSEADDR);
    ctl_put(ctl, C_READY);
    int a = l >= 0 ? acc(l, "") : -1;
    if (a < 0)
        die("no connection to serve");
    close(l);
    fn(ctl, a);
}

/* Starts the server peer |s| running |fn| on its accepted connection and
 * connects to it.  Returns the client's fd (dies when it cannot connect). */
int pair_open(peer *s, conn_fn fn) {
    set_role("cli");
    peer_start(s, "srv", srv_wrap, (void *)fn);
    ctl_expect(s->ctl, C_READY);
    int fd = dial(AF_INET, "127.0.0.1");
    if (fd < 0) {
        peer_join(s, 10000);
        die("could not connect to the server peer");
    }
    return fd;
}

/* Starts the server peer |s| running |fn| without connecting (the case
 * connects itself). */
void pair_server(peer *s, conn_fn fn) {
    set_role("cli");
    peer_start(s, "srv", srv_wrap, (void *)fn);
    ctl_expect(s->ctl, C_READY);
}
