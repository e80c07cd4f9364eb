/*
 * cases_compat.c — the rows of "Socket semantics verified" in
 * docs/COMPATIBILITY.md, as differential cases: selection (a port outside
 * RUDP_PORTS), refused connects, echoes under each congestion controller
 * and with 0-RTT (run.py sets the shim's environment for those names),
 * exit with queued data, dup copies, a killed and a restarted peer,
 * independent connections, getsockopt/setsockopt, names, accept4 flags,
 * pre-fork and fork-per-connection servers, half-close and a 1 MiB echo.
 *
 * The row "bad configuration" has no kernel counterpart (it is about the
 * shim's own environment) and stays with tests/e2e (`bad-rudp-ports`,
 * `bad-config-other`).
 */
#include "tool.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <linux/io_uring.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MIB (1u << 20)

/* Returns the value of "Threads:" in /proc/self/status (0 if unknown). */
static int thread_count(void) {
    char line[128];
    int n = 0;
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    if (f)
        fclose(f);
    return n;
}

/* Returns the number of UDP sockets in this network namespace. */
static int udp_count(void) {
    char line[512];
    int n = 0;
    for (int v6 = 0; v6 < 2; v6++) {
        FILE *f = fopen(v6 ? "/proc/self/net/udp6" : "/proc/self/net/udp", "r");
        while (f && fgets(line, sizeof line, f))
            n++;
        if (f) {
            fclose(f);
            n--; /* the header line */
        }
    }
    return n;
}

/* Server of case_selection: an echo on P+1000 (a port outside RUDP_PORTS). */
static void srv_other_port(int ctl, void *arg) {
    int l = lsn_port(AF_INET, "127.0.0.1", g_port + 1000, O_REUSEADDR);
    ctl_put(ctl, C_READY);
    int a = acc(l, "");
    if (a >= 0)
        serve_echo(a);
    T("threads %d, UDP sockets in the namespace %d", thread_count(), udp_count());
}

/* Case: connections on a port outside RUDP_PORTS are plain TCP and start
 * nothing (no thread, no UDP socket) in either process. */
static void case_selection(void) {
    peer s;
    set_role("cli");
    peer_start(&s, "srv", srv_other_port, NULL);
    ctl_expect(s.ctl, C_READY);
    int fd = dial_port(AF_INET, "127.0.0.1", g_port + 1000);
    if (fd >= 0)
        pump_echo(fd, 65536, "");
    T("threads %d, UDP sockets in the namespace %d", thread_count(), udp_count());
    peer_join(&s, 10000);
}

/* Case: no listener on P at all: blocking connects (v4, v6) refused fast. */
static void case_refused_blocking(void) {
    set_role("cli");
    int64_t t0 = now_ms();
    dial(AF_INET, "127.0.0.1");
    dial(AF_INET6, "::1");
    T("both refused %s", now_ms() - t0 < 1000 ? "within 1 s" : "after 1 s or more");
}

/* Case: no listener on P: non-blocking connects, POLLOUT, SO_ERROR read
 * once. */
static void case_refused_nonblocking(void) {
    set_role("cli");
    int64_t t0 = now_ms();
    nb_connect_report(AF_INET, "127.0.0.1");
    nb_connect_report(AF_INET6, "::1");
    T("both refused %s", now_ms() - t0 < 1000 ? "within 1 s" : "after 1 s or more");
}

/* Case: the poll mask of 20 refused non-blocking connects (v4), once
 * POLLOUT, POLLERR or POLLHUP shows: the distinct masks seen, in order of
 * first appearance (counts would depend on timing). */
static void case_refused_nb_mask(void) {
    char seen[256] = "";
    set_role("cli");
    for (int i = 0; i < 20; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sa_make(&ss, AF_INET, "127.0.0.1", g_port);
        int fd = sock_new(AF_INET, O_NONBLOCK_);
        connect(fd, (struct sockaddr *)&ss, len);
        int m = poll_for(fd, POLLOUT, POLLOUT | POLLERR | POLLHUP, STEP_MS);
        const char *ms = m ? mask_str(m) : "timeout";
        char key[80];
        snprintf(key, sizeof key, "[%s]", ms);
        if (!strstr(seen, key) && strlen(seen) + strlen(key) < sizeof seen)
            strcat(seen, key);
        close(fd);
    }
    T("poll OUT masks of 20 refused connects: %s", seen);
}

/* Server of the echo cases: echoes |arg| (a count) connections in turn. */
static void srv_echo_n(int ctl, void *arg) {
    int l = lsn(AF_INET, "127.0.0.1", O_REUSEADDR);
    ctl_put(ctl, C_READY);
    for (long i = 0; i < (long)arg; i++) {
        int a = acc(l, "");
        if (a < 0)
            return;
        serve_echo(a);
        close(a);
    }
}

/* Runs |n| echoes of |bytes| each, one connection after the other. */
static void echo_n(long n, uint64_t bytes) {
    peer s;
    set_role("cli");
    peer_start(&s, "srv", srv_echo_n, (void *)n);
    ctl_expect(s.ctl, C_READY);
    for (long i = 0; i < n; i++) {
        int fd = dial(AF_INET, "127.0.0.1");
        if (fd < 0)
            break;
        pump_echo(fd, bytes, "");
        close(fd);
    }
    peer_join(&s, 20000);
}

/* Case: four 1 MiB echoes (run.py runs it also with RUDP_CC=cubic,
 * RUDP_CC=newreno and RUDP_FASTOPEN=1 under the shim). */
static void case_echo_4x1m(void) {
    echo_n(4, MIB);
}

/* Case: one 1 MiB echo. */
static void case_echo_1m(void) {
    echo_n(1, MIB);
}

/* Case: the program asks for TCP Fast Open (TCP_FASTOPEN_CONNECT): connect
 * returns at once, the echo works. */
static void case_fastopen_connect(void) {
    peer s;
    set_role("cli");
    peer_start(&s, "srv", srv_echo_n, (void *)1L);
    ctl_expect(s.ctl, C_READY);
    struct sockaddr_storage ss;
    socklen_t len = sa_make(&ss, AF_INET, "127.0.0.1", g_port);
    int fd = sock_new(AF_INET, 0);
    CALL(setsockopt(fd, SOL_TCP, TCP_FASTOPEN_CONNECT, &(int){1}, sizeof(int)),
         "setsockopt TCP_FASTOPEN_CONNECT=1");
    if (BCALL(connect(fd, (struct sockaddr *)&ss, len), "connect %s", sa_fmt(&ss, len)) ==
        0)
        pump_echo(fd, 256 * 1024, "");
    peer_join(&s, 20000);
}

/* The writer of case_write_exit: on C_GO, 16 MiB, then exit(0) at once. */
static void writer_exit(int ctl, void *arg) {
    ctl_expect(ctl, C_GO);
    int fd = dial(AF_INET, "127.0.0.1");
    if (fd >= 0 && send_pat(fd, 16 * MIB) == 0)
        T("wrote 16 MiB; exit(0) without close");
}

/* Case: a client writes 16 MiB and exits at once (no close, no shutdown):
 * all of it arrives, then EOF.  Four writers (forked before the listener
 * exists), one after the other. */
static void case_write_exit(void) {
    peer c[4];
    set_role("srv");
    for (int i = 0; i < 4; i++)
        peer_start(&c[i], "writer", writer_exit, NULL);
    int l = lsn(AF_INET, "127.0.0.1", O_REUSEADDR);
    for (int i = 0; i < 4; i++) {
        ctl_put(c[i].ctl, C_GO);
        int a = acc(l, "");
        if (a >= 0)
            recv_report(a, "");
        close(a);
        peer_join(&c[i], 20000);
    }
}

/* Server of case_dup: checks the connection stays open while a copy
 * lives, then reads to EOF and answers. */
static void srv_dup(int ctl, int fd) {
    ctl_expect(ctl, C_SENT);
    rd(fd, 64, "");
    ctl_put(ctl, C_NEXT);
    ctl_expect(ctl, C_SENT);
    /* A grace period: proves that NO EOF comes while a copy is open. */
    struct pollfd p = {fd, POLLRDHUP, 0};
    int n = poll(&p, 1, GRACE_MS);
    T("poll RDHUP for %d ms with copies closed, one open -> %s", GRACE_MS,
      n ? mask_str(p.revents) : "0");
    ctl_put(ctl, C_NEXT);
    wait_fin(fd);
    rd(fd, 64, "");
    rd(fd, 64, "");
    wr(fd, "bye", "");
    close(fd);
}

/* Case: dup, dup2, F_DUPFD_CLOEXEC and dup3 copies carry the connection
 * after the original is closed; it ends only with the last copy;
 * shutdown(SHUT_WR) on the last copy gives the peer EOF. */
static void case_dup(void) {
    peer s;
    int fd = pair_open(&s, srv_dup);
    int d1 = dup(fd);
    CALL(close(fd), "close the original");
    wr(d1, "via dup", "");
    ctl_put(s.ctl, C_SENT);
    ctl_expect(s.ctl, C_NEXT);
    int d2 = dup2(d1, d1 + 20), d3 = fcntl(d1, F_DUPFD_CLOEXEC, 0);
    int d4 = dup3(d1, d1 + 21, O_CLOEXEC);
    T("dup2, F_DUPFD_CLOEXEC, dup3 -> %s", d2 >= 0 && d3 >= 0 && d4 >= 0 ? "ok" : "failed");
    close(d1);
    close(d2);
    close(d3);
    ctl_put(s.ctl, C_SENT);
    ctl_expect(s.ctl, C_NEXT);
    wr(d4, "via dup3", "");
    CALL(shutdown(d4, SHUT_WR), "shutdown(SHUT_WR) on the last copy");
    rd(d4, 64, "");
    rd(d4, 64, "");
    peer_join(&s, 15000);
}

/* Server of case_peer_killed: never reads; waits to be killed. */
static void srv_wait_killed(int ctl, int fd) {
    ctl_put(ctl, C_NEXT);
    ctl_get(ctl, 30000);
}

/* Case: the server is SIGKILLed with unread data: the client's read
 * fails (run.py sets RUDP_IDLE_TIMEOUT_MS=3000 under the shim). */
static void case_peer_killed(void) {
    peer s;
    int fd = pair_open(&s, srv_wait_killed);
    wr(fd, "unread data", "");
    ctl_expect(s.ctl, C_NEXT);
    peer_kill(&s);
    T("server killed");
    int m = poll_for(fd, POLLIN | POLLRDHUP, POLLIN | POLLERR | POLLHUP, 10000);
    T("wait for IN|ERR|HUP (10 s) -> %s", m ? "yes" : "timeout");
    rd(fd, 16, "");
    rd(fd, 16, "");
    peer_join(&s, 1000);
}

/* Server of case_peer_restarted (first life): echoes 1 byte, then waits
 * to be killed. */
static void srv_echo1_wait(int ctl, int fd) {
    char c;
    if (read(fd, &c, 1) == 1)
        write(fd, &c, 1);
    ctl_put(ctl, C_NEXT);
    ctl_get(ctl, 30000);
}

/* Server of case_peer_restarted (second life): one echo. */
static void srv_echo_conn(int ctl, int fd) {
    serve_echo(fd);
}

/* Case: the server is SIGKILLed and started again on P while the client
 * lives: the old connection fails, a new one works. */
static void case_peer_restarted(void) {
    peer s1, s2;
    int fd = pair_open(&s1, srv_echo1_wait);
    wr(fd, "a", "");
    rd(fd, 16, "");
    ctl_expect(s1.ctl, C_NEXT);
    peer_kill(&s1);
    peer_join(&s1, 1000);
    pair_server(&s2, srv_echo_conn);
    wr(fd, "p", " (old connection)");
    T("wait for ERR|HUP -> %s",
      poll_for(fd, POLLIN, POLLERR | POLLHUP, 10000) ? "yes" : "timeout");
    rd(fd, 16, " (old connection)");
    rd(fd, 16, " (old connection)");
    int nfd = dial(AF_INET, "127.0.0.1");
    if (nfd >= 0)
        pump_echo(nfd, 1000, " (new connection)");
    peer_join(&s2, 15000);
}

/* Server of case_stalled: holds 4 connections without reading, echoes
 * the 5th. */
static void srv_stall(int ctl, void *arg) {
    int l = lsn(AF_INET, "127.0.0.1", O_REUSEADDR), held[4];
    ctl_put(ctl, C_READY);
    for (int i = 0; i < 4; i++)
        held[i] = acc(l, " (held, never read)");
    int a = acc(l, " (echo)");
    if (a >= 0)
        serve_echo(a);
    ctl_expect(ctl, C_DONE);
    for (int i = 0; i < 4; i++)
        close(held[i]);
}

/* Writes to the non-blocking |fd| until EAGAIN (at most 256 MiB or
 * STEP_MS without progress); prints whether EAGAIN came. */
static void fill(int fd) {
    static uint8_t buf[65536];
    uint64_t total = 0;
    int64_t t0 = now_ms();
    set_nonblock(fd, true);
    while (total < 256ull * MIB && now_ms() - t0 < 10000) {
        ssize_t w = send(fd, buf, sizeof buf, MSG_NOSIGNAL);
        if (w < 0) {
            T("write until EAGAIN -> %s", ename(errno));
            return;
        }
        total += (uint64_t)w;
    }
    T("write until EAGAIN -> no EAGAIN within 256 MiB / 10 s");
}

/* Case: 4 connections the server never reads are filled; a 5th of the
 * same process still echoes 1 MiB. */
static void case_stalled(void) {
    peer s;
    set_role("cli");
    peer_start(&s, "srv", srv_stall, NULL);
    ctl_expect(s.ctl, C_READY);
    for (int i = 0; i < 4; i++) {
        int fd = dial(AF_INET, "127.0.0.1");
        if (fd >= 0)
            fill(fd);
    }
    int fd = dial(AF_INET, "127.0.0.1");
    if (fd >= 0)
        pump_echo(fd, MIB, "");
    ctl_put(s.ctl, C_DONE);
    peer_join(&s, 15000);
}

/* Server of case_fd_budget: raises its own descriptor limit and keeps
 * every connection it accepts until C_DONE. */
static void srv_budget(int ctl, void *arg) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    int l = lsn(AF_INET, "127.0.0.1", O_REUSEADDR);
    ctl_put(ctl, C_READY);
    for (;;) {
        struct pollfd p[2] = {{l, POLLIN, 0}, {ctl, POLLIN, 0}};
        if (poll(p, 2, 25000) <= 0 || (p[1].revents & POLLIN))
            return;
        if (accept(l, NULL, NULL) < 0 && errno != EAGAIN && errno != EINTR)
            die("accept: %s", ename(errno));
    }
}

/* Opens connections to P until a call fails; prints how many and which
 * call failed how; closes them. */
static void fill_fds(void) {
    static int fds[400];
    struct sockaddr_storage ss;
    socklen_t len = sa_make(&ss, AF_INET, "127.0.0.1", g_port);
    int n = 0;
    for (; n < 400; n++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) {
            T_res(fd, errno, "socket() after %d connections", n);
            break;
        }
        arm(STEP_MS);
        int rc = connect(fd, (struct sockaddr *)&ss, len), e = errno;
        disarm();
        fds[n] = fd;
        if (rc < 0) {
            T_res(rc, e, "connect() after %d connections", n);
            break;
        }
    }
    if (n == 400)
        T("%d connections and no failure", n);
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

/* Case: under a soft RLIMIT_NOFILE of 256 a client holds as many
 * connections as with kernel TCP and fails at the same call with the same
 * error; getrlimit shows the limit the program set. */
static void case_fd_budget(void) {
    peer s;
    set_role("cli");
    peer_start(&s, "srv", srv_budget, NULL);
    ctl_expect(s.ctl, C_READY);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = 256;
    CALL(setrlimit(RLIMIT_NOFILE, &rl), "setrlimit RLIMIT_NOFILE soft 256");
    getrlimit(RLIMIT_NOFILE, &rl);
    T("getrlimit RLIMIT_NOFILE soft -> %llu", (unsigned long long)rl.rlim_cur);
    fill_fds();
    ctl_put(s.ctl, C_DONE);
    peer_join(&s, 15000);
}

/* Case: a program that has a listener on P sets up an io_uring. */
static void case_io_uring(void) {
    set_role("main");
    int l = lsn(AF_INET, "127.0.0.1", O_REUSEADDR);
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    long fd = syscall(SYS_io_uring_setup, 4, &p);
    T("io_uring_setup(4) -> %s", fd >= 0 ? "an fd" : res_str(fd, errno));
    close(l);
}

const case_def cases_compat[] = {
    {"selection-other-port", case_selection, "a port outside RUDP_PORTS is untouched"},
    {"refused-blocking", case_refused_blocking, "no listener: blocking connect refused"},
    {"refused-nonblocking", case_refused_nonblocking, "no listener: non-blocking connect"},
    {"refused-nonblocking-poll-mask", case_refused_nb_mask,
     "poll masks of refused connects"},
    {"echo-1m", case_echo_1m, "1 MiB echo by sha256"},
    {"echo-4x1m", case_echo_4x1m, "four 1 MiB echoes"},
    {"echo-4x1m-cubic", case_echo_4x1m, "four 1 MiB echoes (RUDP_CC=cubic)"},
    {"echo-4x1m-newreno", case_echo_4x1m, "four 1 MiB echoes (RUDP_CC=newreno)"},
    {"echo-4x1m-fastopen-env", case_echo_4x1m, "four 1 MiB echoes (RUDP_FASTOPEN=1)"},
    {"fastopen-connect", case_fastopen_connect, "TCP_FASTOPEN_CONNECT then echo"},
    {"write-then-exit", case_write_exit,
     "16 MiB written, exit(0) at once: all arrive (x4)"},
    {"dup-copies", case_dup, "dup/dup2/dup3/F_DUPFD copies"},
    {"peer-killed", case_peer_killed, "server SIGKILLed with unread data"},
    {"peer-restarted", case_peer_restarted, "server SIGKILLed and restarted"},
    {"stalled-streams-independent", case_stalled, "4 stalled connections, a 5th echoes"},
    {"fd-budget", case_fd_budget, "connections under RLIMIT_NOFILE 256"},
    {"io-uring-setup", case_io_uring, "io_uring_setup in a program with a listener on P"},
    {NULL, NULL, NULL},
};
