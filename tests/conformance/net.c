/*
 * net.c — the socket helpers of conformance-tool: addresses printed with
 * symbolic ports, listening and connecting with every step traced, waits on
 * poll() with deadlines, and the data checks (a deterministic byte pattern,
 * sha256 digests, a poll-driven echo pump).
 *
 * Every helper prints what a program could observe, in a form that does
 * not depend on timing: a wait prints whether its event came ("yes" or
 * "timeout"), never how long it took or the mask it happened to see (the
 * cases print masks with show_poll at points where they are settled).
 * sha256 follows FIPS 180-4; only the first 16 hex digits are printed.
 */
#include "tool.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* --------------------------------------------------------------- addresses */

/* Fills |ss| with numeric |ip| and |port| of family |fam|; returns its
 * length (0 when |ip| does not parse). */
socklen_t sa_make(struct sockaddr_storage *ss, int fam, const char *ip, uint16_t port) {
    memset(ss, 0, sizeof *ss);
    if (fam == AF_INET) {
        struct sockaddr_in *s = (struct sockaddr_in *)ss;
        s->sin_family = AF_INET;
        s->sin_port = htons(port);
        return inet_pton(AF_INET, ip, &s->sin_addr) == 1 ? sizeof *s : 0;
    }
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(port);
    return inet_pton(AF_INET6, ip, &s->sin6_addr) == 1 ? sizeof *s : 0;
}

/* Returns the port of an AF_INET or AF_INET6 address (0 otherwise). */
uint16_t sa_port(const struct sockaddr_storage *ss) {
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return 0;
}

/* Returns a port as the trace shows it: "P", "P+1000", "0" or "eph". */
static const char *port_sym(uint16_t port) {
    if (port == g_port)
        return "P";
    if (port == g_port + 1000)
        return "P+1000";
    return port ? "eph" : "0";
}

/* Formats |ss| (of length |len|) as "AF_INET 127.0.0.1:P"; names the
 * length when it is not the family's, and other families by name. */
const char *sa_fmt(const struct sockaddr_storage *ss, socklen_t len) {
    static char out[4][96];
    static int slot;
    char *o = out[slot++ % 4], ip[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, ip, sizeof ip);
        snprintf(o, 96, "AF_INET %s:%s", ip, port_sym(sa_port(ss)));
        if (len != sizeof(struct sockaddr_in))
            snprintf(o + strlen(o), 96 - strlen(o), " (len %u)", (unsigned)len);
    } else if (ss->ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, ip, sizeof ip);
        snprintf(o, 96, "AF_INET6 [%s]:%s", ip, port_sym(sa_port(ss)));
        if (len != sizeof(struct sockaddr_in6))
            snprintf(o + strlen(o), 96 - strlen(o), " (len %u)", (unsigned)len);
    } else {
        snprintf(o, 96, "%s (len %u)", ss->ss_family == AF_UNIX ? "AF_UNIX" : "AF_?",
                 (unsigned)len);
    }
    return o;
}

/* Returns getsockname (or, with |remote|, getpeername) of |fd| as sa_fmt
 * prints it, or the error as "-1 ENAME". */
const char *name_of(int fd, bool remote) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int rc = remote ? getpeername(fd, (struct sockaddr *)&ss, &len)
                    : getsockname(fd, (struct sockaddr *)&ss, &len);
    if (rc < 0) {
        static char err[48];
        snprintf(err, sizeof err, "-1 %s", ename(errno));
        return err;
    }
    return sa_fmt(&ss, len);
}

/* ----------------------------------------------------------------- sockets */

/* Sets integer option |name| to |val|; prints the line only when it fails
 * (|desc| names the option).  Returns setsockopt's result. */
long set_int(int fd, int level, int name, int val, const char *desc) {
    int rc = setsockopt(fd, level, name, &val, sizeof val);
    if (rc < 0)
        T_res(rc, errno, "setsockopt %s=%d", desc, val);
    return rc;
}

/* Returns integer option |name| of |fd|, printing the failure (-1). */
int get_int(int fd, int level, int name, const char *desc) {
    int val = 0;
    socklen_t len = sizeof val;
    if (getsockopt(fd, level, name, &val, &len) < 0) {
        T_res(-1, errno, "getsockopt %s", desc);
        return -1;
    }
    return val;
}

/* Opens a TCP socket of family |fam| with the options |opts| (O_*). */
int sock_new(int fam, unsigned opts) {
    int fd = socket(fam, SOCK_STREAM | ((opts & O_NONBLOCK_) ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        die("socket: %s", ename(errno));
    if (opts & O_REUSEADDR)
        set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
    if (opts & O_REUSEPORT)
        set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT");
    if (opts & (O_V6ONLY | O_DUAL))
        set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, (opts & O_V6ONLY) ? 1 : 0, "IPV6_V6ONLY");
    return fd;
}

/* Names the options of |opts| for a trace line ("" when none). */
static const char *opts_str(unsigned opts) {
    static char b[64];
    snprintf(b, sizeof b, "%s%s%s%s", (opts & O_REUSEADDR) ? " reuseaddr" : "",
             (opts & O_REUSEPORT) ? " reuseport" : "", (opts & O_V6ONLY) ? " v6only" : "",
             (opts & O_DUAL) ? " dualstack" : "");
    return b;
}

/* Opens a listener on |ip|:|port| with |opts|, printing the bind and
 * listen results.  Returns the fd, or -1 (closed) when either failed. */
int lsn_port(int fam, const char *ip, uint16_t port, unsigned opts) {
    struct sockaddr_storage ss;
    socklen_t len = sa_make(&ss, fam, ip, port);
    int fd = sock_new(fam, opts);
    if (CALL(bind(fd, (struct sockaddr *)&ss, len), "bind %s%s", sa_fmt(&ss, len),
             opts_str(opts)) < 0 ||
        CALL(listen(fd, 64), "listen") < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* lsn_port on the case's port P. */
int lsn(int fam, const char *ip, unsigned opts) {
    return lsn_port(fam, ip, g_port, opts);
}

/* Connects a new blocking socket to |ip|:|port| (interrupted after
 * STEP_MS), printing the result.  Returns the fd, or -1 (closed). */
int dial_port(int fam, const char *ip, uint16_t port) {
    struct sockaddr_storage ss;
    socklen_t len = sa_make(&ss, fam, ip, port);
    int fd = sock_new(fam, 0);
    if (BCALL(connect(fd, (struct sockaddr *)&ss, len), "connect %s", sa_fmt(&ss, len)) <
        0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* dial_port to the case's port P. */
int dial(int fam, const char *ip) {
    return dial_port(fam, ip, g_port);
}

/* Starts a non-blocking connect of a new socket to |ip|:P.  Kernel TCP on
 * loopback may finish the handshake within the call, so "0" and
 * "EINPROGRESS" are one outcome ("0|EINPROGRESS"); other results print as
 * they are.  Returns the fd. */
int dial_nb(int fam, const char *ip) {
    struct sockaddr_storage ss;
    socklen_t len = sa_make(&ss, fam, ip, g_port);
    int fd = sock_new(fam, O_NONBLOCK_);
    int rc = connect(fd, (struct sockaddr *)&ss, len), e = errno;
    if (rc == 0 || e == EINPROGRESS)
        T("connect(nonblock) %s -> 0|EINPROGRESS", sa_fmt(&ss, len));
    else
        T_res(rc, e, "connect(nonblock) %s", sa_fmt(&ss, len));
    return fd;
}

/* Waits (up to STEP_MS) for a connection on listener |lfd| and accepts it,
 * printing "accept<tag> -> fd peer=<address>".  Returns the fd or -1. */
int acc(int lfd, const char *tag) {
    if (!(poll_for(lfd, POLLIN, POLLIN, STEP_MS) & POLLIN)) {
        T("accept%s: no connection within %d ms", tag, STEP_MS);
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = accept(lfd, (struct sockaddr *)&ss, &len);
    if (fd < 0)
        T_res(fd, errno, "accept%s", tag);
    else
        T("accept%s -> fd peer=%s", tag, sa_fmt(&ss, len));
    return fd;
}

/* ------------------------------------------------------------------- waits */

/* Polls |fd| for |events| until a bit of |want| (any bit when 0) shows or
 * |ms| pass.  Returns the last revents (0: nothing came). */
int poll_for(int fd, short events, short want, int ms) {
    int64_t deadline = now_ms() + ms;
    for (;;) {
        struct pollfd p = {fd, events, 0};
        int left = (int)(deadline - now_ms());
        int n = poll(&p, 1, left > 0 ? left : 0);
        if (n > 0 && (want == 0 || (p.revents & want)))
            return p.revents;
        if (left <= 0)
            return n > 0 ? p.revents : 0;
        if (n > 0) /* events we do not wait for: let them change */
            poll(NULL, 0, 5);
    }
}

/* Prints the poll mask of |fd| now, for IN|PRI|OUT|RDHUP. */
void show_poll(int fd, const char *tag) {
    struct pollfd p = {fd, POLLIN | POLLPRI | POLLOUT | POLLRDHUP, 0};
    int n = poll(&p, 1, 0);
    T("poll%s -> %s", tag, n < 0 ? ename(errno) : mask_str(p.revents));
}

/* Waits up to STEP_MS for a bit of |want| on |fd|; prints "wait<tag> for
 * <want> -> yes" or "-> timeout".  Returns whether it came. */
bool wait_ev(int fd, short want, const char *tag) {
    short ev = (short)(POLLIN | POLLPRI | POLLRDHUP | (want & POLLOUT));
    bool ok = (poll_for(fd, ev, want, STEP_MS) & want) != 0;
    T("wait%s for %s -> %s", tag, mask_str(want), ok ? "yes" : "timeout");
    return ok;
}

/* Waits until the peer's FIN has arrived on |fd| (POLLRDHUP, which comes
 * after every earlier byte), printing whether it did. */
bool wait_fin(int fd) {
    return wait_ev(fd, POLLRDHUP, " (peer's FIN)");
}

/* Waits until ioctl(FIONREAD) on |fd| reaches |n| or |ms| pass.  A bounded
 * wait for a condition poll() cannot express (bytes queued while the fd is
 * already readable): it checks every 5 ms.  Returns whether it came. */
bool wait_inq(int fd, int n, int ms) {
    int64_t deadline = now_ms() + ms;
    for (;;) {
        int q = 0;
        if (ioctl(fd, FIONREAD, &q) == 0 && q >= n)
            return true;
        if (now_ms() >= deadline)
            return false;
        poll(NULL, 0, 5);
    }
}

/* Formats up to 40 bytes of |buf| as a quoted string with \xNN escapes. */
const char *quote(const char *buf, ssize_t n) {
    static char out[200];
    size_t o = 0;
    out[o++] = '\'';
    for (ssize_t i = 0; i < n && i < 40; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c >= 32 && c < 127 && c != '\\' && c != '\'')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, sizeof out - o, "\\x%02x", c);
    }
    snprintf(out + o, sizeof out - o, "'%s", n > 40 ? "..." : "");
    return out;
}

/* Receives up to |n| bytes with |flags| (blocking unless the flags say
 * otherwise; interrupted after STEP_MS) and prints "<what> N -> R 'data'".
 * Returns recv's result. */
ssize_t rcv(int fd, size_t n, int flags, const char *what) {
    char buf[4096];
    if (n > sizeof buf)
        n = sizeof buf;
    arm(STEP_MS);
    ssize_t r = recv(fd, buf, n, flags);
    int e = errno;
    disarm();
    T("%s %zu -> %s%s%s", what, n, res_str(r, e), r > 0 ? " " : "",
      r > 0 ? quote(buf, r) : "");
    return r;
}

/* Reads up to |n| bytes (blocking, interrupted after STEP_MS) and prints
 * "read<tag> N -> R 'data'".  Returns read's result. */
ssize_t rd(int fd, size_t n, const char *tag) {
    char buf[4096];
    if (n > sizeof buf)
        n = sizeof buf;
    arm(STEP_MS);
    ssize_t r = read(fd, buf, n);
    int e = errno;
    disarm();
    T("read%s %zu -> %s%s%s", tag, n, res_str(r, e), r > 0 ? " " : "",
      r > 0 ? quote(buf, r) : "");
    return r;
}

/* Writes the string |s| (blocking, interrupted after STEP_MS) and prints
 * "write<tag> 'data' -> R".  Returns write's result. */
ssize_t wr(int fd, const char *s, const char *tag) {
    return BCALL(write(fd, s, strlen(s)), "write%s %s", tag, quote(s, (ssize_t)strlen(s)));
}

/* Sets or clears O_NONBLOCK on |fd|. */
void set_nonblock(int fd, bool on) {
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK));
}

/* Aborts connection |fd|: SO_LINGER {1,0} then close, both printed. */
void abort_close(int fd, const char *tag) {
    struct linger lg = {1, 0};
    CALL(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg),
         "setsockopt%s SO_LINGER{1,0}", tag);
    CALL(close(fd), "close%s", tag);
}

/* Returns "nonblock=N cloexec=N" for |fd|. */
const char *fd_flags(int fd) {
    static char b[40];
    snprintf(b, sizeof b, "nonblock=%d cloexec=%d", (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0,
             (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    return b;
}
