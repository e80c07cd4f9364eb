/*
 * cases_io.c — how a program moves bytes and shares connections: half-close
 * (shutdown SHUT_WR, EOF after the last byte), recv flags (MSG_DONTWAIT,
 * MSG_PEEK, MSG_WAITALL), SO_RCVTIMEO, queue ioctls, epoll edge and level
 * triggering, sendfile and splice, a pre-fork server, a fork per connection
 * and a connection carried across exec (DESIGN.md §4 rows "shutdown",
 * "fork", "exec"; Rule 2's "poll/select/epoll, sendfile, splice").
 */
#include "tool.h"

#include <fcntl.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <unistd.h>

/* Server of case_half_close: reads to EOF, then answers and closes. */
static void srv_half_close(int ctl, int fd) {
    recv_report(fd, "");
    show_poll(fd, "");
    wr(fd, "got it", "");
    CALL(close(fd), "close");
}

/* Case: the client sends 100000 bytes and half-closes; the server reads
 * them all, then EOF, and answers on the open direction. */
static void case_half_close(void) {
    peer s;
    int fd = pair_open(&s, srv_half_close);
    send_pat(fd, 100000);
    CALL(shutdown(fd, SHUT_WR), "shutdown(SHUT_WR)");
    wr(fd, "more", "");
    rd(fd, 16, "");
    rd(fd, 16, "");
    show_poll(fd, "");
    peer_join(&s, 15000);
}

/* Server of case_recv_flags. */
static void srv_recv_flags(int ctl, int fd) {
    rcv(fd, 16, MSG_DONTWAIT, "recv MSG_DONTWAIT (nothing queued)");
    ctl_put(ctl, C_NEXT);
    wait_ev(fd, POLLIN, "");
    rcv(fd, 3, MSG_PEEK, "recv MSG_PEEK");
    rcv(fd, 16, 0, "recv");
    ctl_put(ctl, C_NEXT);
    rcv(fd, 10, MSG_WAITALL, "recv MSG_WAITALL");
    rcv(fd, 10, 0, "recv");
}

/* Case: MSG_DONTWAIT, MSG_PEEK, MSG_WAITALL (ended by EOF). */
static void case_recv_flags(void) {
    peer s;
    int fd = pair_open(&s, srv_recv_flags);
    ctl_expect(s.ctl, C_NEXT);
    wr(fd, "abc", "");
    ctl_expect(s.ctl, C_NEXT);
    wr(fd, "def", "");
    shutdown(fd, SHUT_WR);
    peer_join(&s, 15000);
}

/* Server of case_rcvtimeo: SO_RCVTIMEO 200 ms, then a read with nothing
 * to read. */
static void srv_rcvtimeo(int ctl, int fd) {
    struct timeval tv = {0, 200000}, back = {0, 0};
    socklen_t len = sizeof back;
    CALL(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv),
         "setsockopt SO_RCVTIMEO 200ms");
    CALL(getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &back, &len),
         "getsockopt SO_RCVTIMEO (%ld ms)",
         (long)(back.tv_sec * 1000 + back.tv_usec / 1000));
    CALL(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv),
         "setsockopt SO_SNDTIMEO 200ms");
    int64_t t0 = now_ms();
    char b[4];
    ssize_t r = BCALL(read(fd, b, sizeof b), "read, nothing sent");
    int64_t dt = now_ms() - t0;
    if (r < 0)
        T("  after %s", dt >= 150 && dt < 1500 ? "about 200 ms" : "another time");
    ctl_put(ctl, C_NEXT);
}

/* Case: SO_RCVTIMEO makes a read fail with EAGAIN after its time. */
static void case_rcvtimeo(void) {
    peer s;
    int fd = pair_open(&s, srv_rcvtimeo);
    ctl_expect(s.ctl, C_NEXT);
    close(fd);
    peer_join(&s, 10000);
}

/* Prints ioctl |req| (named |desc|) of |fd|. */
static void ioctl_report(int fd, unsigned long req, const char *desc) {
    int v = -1;
    CALL(ioctl(fd, req, &v), "ioctl %s (=%d)", desc, v);
}

/* Server of case_ioctl: FIONREAD before and after reading. */
static void srv_ioctl(int ctl, int fd) {
    T("100 bytes queued: %s", wait_inq(fd, 100, STEP_MS) ? "yes" : "no");
    ioctl_report(fd, FIONREAD, "FIONREAD");
    ioctl_report(fd, SIOCATMARK, "SIOCATMARK");
    char b[100];
    BCALL(recv(fd, b, sizeof b, MSG_WAITALL), "recv 100 MSG_WAITALL");
    ioctl_report(fd, FIONREAD, "FIONREAD");
    ctl_put(ctl, C_NEXT);
}

/* Case: FIONREAD, SIOCOUTQ, SIOCOUTQNSD once the peer has everything. */
static void case_ioctl(void) {
    peer s;
    uint8_t b[100];
    int fd = pair_open(&s, srv_ioctl);
    pat_fill(b, 0, sizeof b);
    BCALL(write(fd, b, sizeof b), "write 100");
    ctl_expect(s.ctl, C_NEXT);
    ioctl_report(fd, SIOCOUTQ, "SIOCOUTQ");
    ioctl_report(fd, SIOCOUTQNSD, "SIOCOUTQNSD");
    ioctl_report(fd, FIONREAD, "FIONREAD");
    peer_join(&s, 10000);
}

/* Prints the result of one epoll_wait (|ms| at most) on |ep|. */
static void ep_wait(int ep, int ms, const char *what) {
    struct epoll_event ev[4];
    int n = epoll_wait(ep, ev, 4, ms);
    if (n <= 0)
        T_res(n, errno, "epoll_wait %s", what);
    else
        T("epoll_wait %s -> %d events=%s", what, n, mask_str((int)ev[0].events));
}

/* Server of case_epoll: edge-triggered, then level-triggered. */
static void srv_epoll(int ctl, int fd) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.fd = fd};
    CALL(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), "epoll_ctl ADD IN|RDHUP|ET");
    ep_wait(ep, 0, "(nothing yet)");
    ctl_put(ctl, C_NEXT);
    ep_wait(ep, STEP_MS, "(after 'abc')");
    ep_wait(ep, 0, "(again, edge-triggered)");
    ctl_put(ctl, C_NEXT);
    ep_wait(ep, STEP_MS, "(after 'def')");
    rcv(fd, 16, MSG_DONTWAIT, "recv MSG_DONTWAIT");
    ctl_put(ctl, C_NEXT);
    ep_wait(ep, STEP_MS, "(after the FIN)");
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLOUT;
    CALL(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev), "epoll_ctl MOD IN|RDHUP|OUT level");
    ep_wait(ep, 0, "(level)");
    ep_wait(ep, 0, "(level, again)");
}

/* Case: epoll edge- and level-triggered events on a connection. */
static void case_epoll(void) {
    peer s;
    int fd = pair_open(&s, srv_epoll);
    ctl_expect(s.ctl, C_NEXT);
    wr(fd, "abc", "");
    ctl_expect(s.ctl, C_NEXT);
    wr(fd, "def", "");
    ctl_expect(s.ctl, C_NEXT);
    shutdown(fd, SHUT_WR);
    peer_join(&s, 15000);
}

/* Server of case_sendfile: splice from the socket into a pipe to EOF. */
static void srv_splice(int ctl, int fd) {
    int p[2];
    uint8_t buf[65536];
    sha_ctx c;
    char hex[17];
    uint64_t total = 0;
    ssize_t n = 0;
    pipe(p);
    sha_init(&c);
    while (poll_for(fd, POLLIN, 0, STEP_MS) &&
           (n = splice(fd, NULL, p[1], NULL, sizeof buf, SPLICE_F_NONBLOCK)) != 0) {
        if (n < 0 && errno == EAGAIN)
            continue;
        if (n < 0 || read(p[0], buf, (size_t)n) != n)
            break;
        sha_update(&c, buf, (size_t)n);
        total += (uint64_t)n;
    }
    sha_hex(&c, hex);
    T("splice to EOF -> %s after %llu bytes sha=%s%s", n == 0 ? "0" : res_str(n, errno),
      (unsigned long long)total, hex,
      strcmp(hex, pat_hex(total)) ? "" : " (pattern intact)");
}

/* Case: sendfile from a file to the connection; splice at the server. */
static void case_sendfile(void) {
    peer s;
    static uint8_t buf[256 * 1024];
    int fd = pair_open(&s, srv_splice);
    int mf = memfd_create("conformance", MFD_CLOEXEC);
    pat_fill(buf, 0, sizeof buf);
    if (mf < 0 || write(mf, buf, sizeof buf) != sizeof buf)
        die("memfd: %s", ename(errno));
    off_t off = 0;
    ssize_t n = 1;
    while (off < (off_t)sizeof buf && n > 0) {
        arm(STEP_MS);
        n = sendfile(fd, mf, &off, sizeof buf - (size_t)off);
        disarm();
    }
    T("sendfile -> %s, %lld bytes sent", n > 0 ? "ok" : res_str(n, errno), (long long)off);
    shutdown(fd, SHUT_WR);
    peer_join(&s, 15000);
}

/* A pre-fork worker: accepts on the inherited non-blocking listener
 * |arg| and echoes "hi" on each connection (C_ACCEPTED per connection)
 * until C_DONE. */
static void worker(int ctl, void *arg) {
    int l = *(int *)arg;
    for (;;) {
        struct pollfd p[2] = {{l, POLLIN, 0}, {ctl, POLLIN, 0}};
        if (poll(p, 2, 25000) <= 0 || (p[1].revents & POLLIN))
            return;
        int a = accept(l, NULL, NULL);
        if (a < 0)
            continue; /* another worker took it */
        if (got_hi(a) && write(a, "hi", 2) == 2)
            ctl_put(ctl, C_ACCEPTED);
        close(a);
    }
}

/* The client of case_prefork: 6 connections, each echoing "hi". */
static void cli_prefork(int ctl, void *arg) {
    ctl_expect(ctl, C_GO);
    for (int i = 0; i < 6; i++) {
        int fd = dial(AF_INET, "127.0.0.1");
        if (fd < 0)
            continue;
        wr(fd, "hi", "");
        rd(fd, 16, "");
        close(fd);
    }
    ctl_put(ctl, C_NEXT);
    ctl_expect(ctl, C_DONE);
}

/* Case: a listener inherited by 2 pre-forked workers serves 6 clients
 * (which worker takes which is the kernel's choice: not printed). */
static void case_prefork(void) {
    peer c, w[2];
    set_role("srv");
    peer_start(&c, "cli", cli_prefork, NULL);
    int l = lsn(AF_INET, "127.0.0.1", O_REUSEADDR);
    set_nonblock(l, true);
    peer_start(&w[0], "worker1", worker, &l);
    peer_start(&w[1], "worker2", worker, &l);
    ctl_put(c.ctl, C_GO);
    int got = 0;
    while (got < 6) {
        struct pollfd p[2] = {{w[0].ctl, POLLIN, 0}, {w[1].ctl, POLLIN, 0}};
        if (poll(p, 2, 2 * STEP_MS) <= 0)
            break;
        for (int i = 0; i < 2; i++)
            if ((p[i].revents & POLLIN) && ctl_get(w[i].ctl, STEP_MS) == C_ACCEPTED)
                got++;
    }
    T("the workers served %d of 6 connections", got);
    ctl_expect(c.ctl, C_NEXT);
    finish(&c);
    for (int i = 0; i < 2; i++) {
        ctl_put(w[i].ctl, C_DONE);
        peer_join(&w[i], 10000);
    }
}

/* The handler of case_fork_conn: echoes the inherited connection to EOF. */
static void handler(int ctl, void *arg) {
    serve_echo(*(int *)arg);
}

/* The client of case_fork_conn: 3 connections, each an echo. */
static void cli_forkconn(int ctl, void *arg) {
    for (int i = 0; i < 3; i++) {
        ctl_expect(ctl, C_GO);
        int fd = dial(AF_INET, "127.0.0.1");
        if (fd >= 0)
            pump_echo(fd, 20000, "");
        close(fd);
        ctl_put(ctl, C_NEXT);
    }
    ctl_expect(ctl, C_DONE);
}

/* Case: accept, fork a child that serves the connection while the parent
 * closes its copy; three times. */
static void case_fork_conn(void) {
    peer c;
    set_role("srv");
    peer_start(&c, "cli", cli_forkconn, NULL);
    int l = lsn(AF_INET, "127.0.0.1", O_REUSEADDR);
    for (int i = 0; i < 3; i++) {
        peer h;
        ctl_put(c.ctl, C_GO);
        int a = acc(l, "");
        if (a >= 0) {
            peer_start(&h, "handler", handler, &a);
            CALL(close(a), "close the parent's copy");
        }
        ctl_expect(c.ctl, C_NEXT);
        if (a >= 0)
            peer_join(&h, 10000);
    }
    finish(&c);
}

/* The exec'd image of the exec cases: conformance-tool exec-child MODE FD
 * PORT.  Prints what the inherited connection says about itself; then
 * "client": writes "from exec" and reads the reply; "echo": echoes to
 * EOF. */
int exec_child_main(int argc, char **argv) {
    if (argc != 5)
        return 2;
    set_role("exec");
    int fd = atoi(argv[3]);
    g_port = (uint16_t)atoi(argv[4]);
    T("inherited fd: local %s, peer %s", name_of(fd, false), name_of(fd, true));
    int dom = get_int(fd, SOL_SOCKET, SO_DOMAIN, "SO_DOMAIN");
    int proto = get_int(fd, SOL_SOCKET, SO_PROTOCOL, "SO_PROTOCOL");
    T("SO_DOMAIN %s, SO_PROTOCOL %s",
      dom == AF_INET   ? "AF_INET"
      : dom == AF_UNIX ? "AF_UNIX"
                       : "other",
      proto == IPPROTO_TCP ? "TCP" : "other");
    if (strcmp(argv[2], "echo") == 0) {
        serve_echo(fd);
        return 0;
    }
    wr(fd, "from exec", "");
    rd(fd, 16, "");
    return 0;
}

/* Replaces this (peer) process with the tool's exec-child |mode| on |fd|. */
static void exec_tool(const char *mode, int fd) {
    char fds[16], port[16];
    snprintf(fds, sizeof fds, "%d", fd);
    snprintf(port, sizeof port, "%u", g_port);
    peer_exec((char *[]){(char *)g_self, "exec-child", (char *)mode, fds, port, NULL});
}

/* The peer of case_exec: executes the tool again on the connection. */
static void exec_peer(int ctl, void *arg) {
    exec_tool("client", *(int *)arg);
}

/* A forked peer that executes the tool as an echo server on |arg|. */
static void exec_echo_peer(int ctl, void *arg) {
    exec_tool("echo", *(int *)arg);
}

/* Server of the exec-server cases: echoes 1 MiB, then executes the tool
 * on the connection, which echoes to EOF: in this process (no fork), or
 * in a forked child while this one closes its copy (as sshd does). */
static void srv_exec_echo(int fd, bool fork_first) {
    serve_n(fd, 1u << 20);
    if (!fork_first)
        exec_tool("echo", fd);
    peer e;
    peer_start(&e, "exec", exec_echo_peer, &fd);
    CALL(close(fd), "close the parent's copy");
    peer_join(&e, 20000);
}

/* srv_exec_echo without a fork. */
static void srv_exec_nofork(int ctl, int fd) {
    srv_exec_echo(fd, false);
}

/* srv_exec_echo with fork + exec. */
static void srv_exec_fork(int ctl, int fd) {
    srv_exec_echo(fd, true);
}

/* The client of the exec-server cases: 1 MiB echoed before the server's
 * exec, 1 MiB after, then EOF. */
static void exec_server_case(conn_fn fn) {
    peer s;
    int fd = pair_open(&s, fn);
    pump_echo_open(fd, 1u << 20, " (before the exec)");
    pump_echo(fd, 1u << 20, " (after the exec)");
    peer_join(&s, 20000);
}

/* Case: a server (the process that listened and accepted) execs a new
 * image on the accepted connection, no fork; four servers in turn. */
static void case_exec_server(void) {
    for (int i = 0; i < 4; i++)
        exec_server_case(srv_exec_nofork);
}

/* A worker of case_exec_worker: accepts one connection on the inherited
 * listener |arg|, echoes 1 MiB, then execs the tool on it (no fork). */
static void exec_worker(int ctl, void *arg) {
    int a = acc(*(int *)arg, "");
    if (a >= 0)
        srv_exec_echo(a, false);
}

/* The client of case_exec_worker: four connections, each 1 MiB echoed
 * before the worker's exec and 1 MiB after. */
static void cli_exec_worker(int ctl, void *arg) {
    for (int i = 0; i < 4; i++) {
        ctl_expect(ctl, C_GO);
        int fd = dial(AF_INET, "127.0.0.1");
        if (fd >= 0) {
            pump_echo_open(fd, 1u << 20, " (before the exec)");
            pump_echo(fd, 1u << 20, " (after the exec)");
            close(fd);
        }
        ctl_put(ctl, C_NEXT);
    }
    ctl_expect(ctl, C_DONE);
}

/* Case: four times, a worker forked by the listening process accepts a
 * connection and execs a new image on it (no fork in between). */
static void case_exec_worker(void) {
    peer c;
    set_role("srv");
    peer_start(&c, "cli", cli_exec_worker, NULL);
    int l = lsn(AF_INET, "127.0.0.1", O_REUSEADDR);
    for (int i = 0; i < 4; i++) {
        peer w;
        peer_start(&w, "worker", exec_worker, &l);
        step(&c);
        peer_join(&w, 20000);
    }
    finish(&c);
}

/* Case: a server forks, the child execs on the accepted connection. */
static void case_exec_server_fork(void) {
    exec_server_case(srv_exec_fork);
}

/* Server of case_exec: reads before, from and after the exec. */
static void srv_exec(int ctl, int fd) {
    rd(fd, 64, "");
    ctl_put(ctl, C_NEXT);
    rd(fd, 64, "");
    wr(fd, "reply", "");
    wait_fin(fd);
    rd(fd, 64, "");
    rd(fd, 64, "");
}

/* Case: a connection inherited across fork + exec keeps working and keeps
 * its TCP identity in the new image. */
static void case_exec(void) {
    peer s, e;
    int fd = pair_open(&s, srv_exec);
    wr(fd, "before exec", "");
    ctl_expect(s.ctl, C_NEXT);
    peer_start(&e, "exec", exec_peer, &fd);
    peer_join(&e, 10000);
    wr(fd, "after", "");
    shutdown(fd, SHUT_WR);
    peer_join(&s, 10000);
}

const case_def cases_io[] = {
    {"half-close", case_half_close, "shutdown(SHUT_WR), EOF after the last byte"},
    {"recv-flags", case_recv_flags, "MSG_DONTWAIT, MSG_PEEK, MSG_WAITALL"},
    {"rcvtimeo", case_rcvtimeo, "SO_RCVTIMEO"},
    {"ioctl-queues", case_ioctl, "FIONREAD, SIOCATMARK, SIOCOUTQ, SIOCOUTQNSD"},
    {"epoll-events", case_epoll, "epoll edge and level triggering"},
    {"sendfile-splice", case_sendfile, "sendfile to and splice from a connection"},
    {"fork-prefork-workers", case_prefork, "listener inherited by 2 pre-forked workers"},
    {"fork-per-connection", case_fork_conn, "a forked child serves each connection"},
    {"exec-inherited-conn", case_exec, "a client's connection carried across fork + exec"},
    {"exec-server-no-fork", case_exec_server, "a server execs on an accepted connection"},
    {"exec-server-fork-exec", case_exec_server_fork, "a server's forked child execs on it"},
    {"exec-worker-no-fork", case_exec_worker,
     "pre-forked workers exec on what they accept"},
    {NULL, NULL, NULL},
};
