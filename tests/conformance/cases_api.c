/*
 * cases_api.c — what the socket API reports about a connection: getsockopt
 * (SO_TYPE, SO_DOMAIN, SO_PROTOCOL, SO_ACCEPTCONN, SO_ERROR, TCP_INFO and its
 * state through a close), setsockopt of the TCP options programs set (each
 * read back), names on both ends (IPv4 and IPv6; a bound client port; the
 * ports of two connections), accept4 flags and a non-blocking connect that
 * succeeds (DESIGN.md §4 rows "getsockopt", "setsockopt",
 * "getpeername/getsockname", "accept/accept4", "non-blocking connect").
 *
 * Port numbers never print: each end prints "P"/"eph", and where two ends
 * must agree on a port the client sends it over the control channel and the
 * server prints whether it matches.
 */
#include "tool.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Returns the name of TCP state |s| (tcpi_state). */
static const char *state_name(int s) {
    static const char *names[] = {"?",          "ESTABLISHED", "SYN_SENT",  "SYN_RECV",
                                  "FIN_WAIT1",  "FIN_WAIT2",   "TIME_WAIT", "CLOSE",
                                  "CLOSE_WAIT", "LAST_ACK",    "LISTEN",    "CLOSING"};
    return s >= 0 && s < 12 ? names[s] : "?";
}

/* Returns the TCP state of |fd| from TCP_INFO, or the error.  FIN_WAIT1
 * and FIN_WAIT2 print as one ("FIN_WAIT1|2"): which one it is depends on
 * when the peer's delayed ACK of the FIN leaves. */
static const char *tcp_state(int fd) {
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    static char err[32];
    if (getsockopt(fd, SOL_TCP, TCP_INFO, &ti, &len) < 0) {
        snprintf(err, sizeof err, "-1 %s", ename(errno));
        return err;
    }
    if (ti.tcpi_state == 4 || ti.tcpi_state == 5)
        return "FIN_WAIT1|2";
    return state_name(ti.tcpi_state);
}

/* Prints SO_TYPE, SO_DOMAIN, SO_PROTOCOL, SO_ACCEPTCONN and SO_ERROR of
 * |fd| symbolically. */
static void sock_report(int fd, const char *what) {
    int type = get_int(fd, SOL_SOCKET, SO_TYPE, "SO_TYPE");
    int dom = get_int(fd, SOL_SOCKET, SO_DOMAIN, "SO_DOMAIN");
    int proto = get_int(fd, SOL_SOCKET, SO_PROTOCOL, "SO_PROTOCOL");
    T("%s: SO_TYPE=%s SO_DOMAIN=%s SO_PROTOCOL=%s SO_ACCEPTCONN=%d SO_ERROR=%s TCP state "
      "%s",
      what, type == SOCK_STREAM ? "SOCK_STREAM" : "other",
      dom == AF_INET    ? "AF_INET"
      : dom == AF_INET6 ? "AF_INET6"
                        : "other",
      proto == IPPROTO_TCP ? "TCP" : "other", get_int(fd, SOL_SOCKET, SO_ACCEPTCONN, "acc"),
      ename(get_int(fd, SOL_SOCKET, SO_ERROR, "SO_ERROR")), tcp_state(fd));
}

/* Prints whether TCP_INFO's tcpi_rtt becomes > 0 within 1 s (a bounded
 * wait for a condition: the value may be published with a lag). */
static void rtt_report(int fd) {
    struct tcp_info ti = {0};
    int64_t deadline = now_ms() + 1000;
    for (;;) {
        socklen_t len = sizeof ti;
        if (getsockopt(fd, SOL_TCP, TCP_INFO, &ti, &len) == 0 && ti.tcpi_rtt > 0)
            break;
        if (now_ms() > deadline)
            break;
        poll(NULL, 0, 10);
    }
    T("TCP_INFO tcpi_rtt > 0: %s", ti.tcpi_rtt > 0 ? "yes" : "no");
}

/* Server of case_getsockopt: reports its listener and connection. */
static void srv_getsockopt(int ctl, void *arg) {
    int l = lsn(AF_INET, "0.0.0.0", O_REUSEADDR);
    sock_report(l, "listener");
    ctl_put(ctl, C_READY);
    int a = acc(l, "");
    if (a < 0)
        return;
    sock_report(a, "accepted");
    rd(a, 16, "");
    wr(a, "pong", "");
    rtt_report(a);
}

/* Case: getsockopt of listener and connections, TCP_INFO state and rtt. */
static void case_getsockopt(void) {
    peer s;
    set_role("cli");
    peer_start(&s, "srv", srv_getsockopt, NULL);
    ctl_expect(s.ctl, C_READY);
    int fd = dial(AF_INET, "127.0.0.1");
    if (fd >= 0) {
        sock_report(fd, "client");
        wr(fd, "ping", "");
        rd(fd, 16, "");
        rtt_report(fd);
    }
    peer_join(&s, 10000);
}

/* Sets integer option |name| to |v| and reads it back, on one line. */
static void opt_rt(int fd, int level, int name, int v, const char *desc) {
    int rc = setsockopt(fd, level, name, &v, sizeof v), e = errno;
    int back = -1;
    socklen_t len = sizeof back;
    int g = getsockopt(fd, level, name, &back, &len);
    T("setsockopt %s=%d -> %s; getsockopt -> %s%d", desc, v, res_str(rc, e),
      g ? "error " : "", back);
}

/* Sets the TCP options programs set, each read back. */
static void opts_roundtrip(int fd) {
    opt_rt(fd, SOL_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
    opt_rt(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
    opt_rt(fd, SOL_TCP, TCP_KEEPIDLE, 30, "TCP_KEEPIDLE");
    opt_rt(fd, SOL_TCP, TCP_KEEPINTVL, 5, "TCP_KEEPINTVL");
    opt_rt(fd, SOL_TCP, TCP_KEEPCNT, 3, "TCP_KEEPCNT");
    opt_rt(fd, SOL_TCP, TCP_CORK, 1, "TCP_CORK");
    opt_rt(fd, SOL_TCP, TCP_CORK, 0, "TCP_CORK");
    opt_rt(fd, SOL_TCP, TCP_USER_TIMEOUT, 5000, "TCP_USER_TIMEOUT");
    /* Out of the kernel's ranges: EINVAL, and the value set before stays. */
    opt_rt(fd, SOL_TCP, TCP_KEEPCNT, 0, "TCP_KEEPCNT");
    opt_rt(fd, SOL_TCP, TCP_KEEPIDLE, 40000, "TCP_KEEPIDLE");
    opt_rt(fd, SOL_TCP, TCP_KEEPINTVL, 0, "TCP_KEEPINTVL");
    opt_rt(fd, SOL_TCP, TCP_USER_TIMEOUT, -1, "TCP_USER_TIMEOUT");
    opt_rt(fd, SOL_TCP, TCP_NOTSENT_LOWAT, 16384, "TCP_NOTSENT_LOWAT");
    opt_rt(fd, SOL_IP, IP_TOS, 0x10, "IP_TOS");
    opt_rt(fd, SOL_SOCKET, SO_PRIORITY, 3, "SO_PRIORITY");
    CALL(setsockopt(fd, SOL_TCP, TCP_QUICKACK, &(int){1}, sizeof(int)),
         "setsockopt TCP_QUICKACK=1");
    char cc[16] = "";
    socklen_t len = sizeof cc;
    CALL(setsockopt(fd, SOL_TCP, TCP_CONGESTION, "cubic", 5),
         "setsockopt TCP_CONGESTION=cubic");
    CALL(getsockopt(fd, SOL_TCP, TCP_CONGESTION, cc, &len),
         "getsockopt TCP_CONGESTION ('%s')", cc);
    struct linger lg = {1, 5}, back = {0, 0};
    len = sizeof back;
    CALL(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg),
         "setsockopt SO_LINGER{1,5}");
    CALL(getsockopt(fd, SOL_SOCKET, SO_LINGER, &back, &len), "getsockopt SO_LINGER {%d,%d}",
         back.l_onoff, back.l_linger);
    lg = (struct linger){0, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

/* Server of case_setsockopt: the options, then an echo. */
static void srv_setsockopt(int ctl, int fd) {
    opts_roundtrip(fd);
    serve_echo(fd);
}

/* Case: TCP and socket options programs set return 0 and read back. */
static void case_setsockopt(void) {
    peer s;
    int fd = pair_open(&s, srv_setsockopt);
    opts_roundtrip(fd);
    pump_echo(fd, 100000, "");
    peer_join(&s, 15000);
}

/* Server of the names cases: prints its listener's, then the accepted
 * connection's names, and whether the peer port is the client's local
 * port (sent over the control channel). */
static void srv_names(int ctl, void *arg) {
    bool v6 = arg != NULL;
    int l = v6 ? lsn(AF_INET6, "::", O_REUSEADDR | O_V6ONLY)
               : lsn(AF_INET, "0.0.0.0", O_REUSEADDR);
    T("listener: local %s, peer %s", name_of(l, false), name_of(l, true));
    ctl_put(ctl, C_READY);
    int a = acc(l, "");
    if (a < 0)
        return;
    T("accepted: local %s, peer %s", name_of(a, false), name_of(a, true));
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    getpeername(a, (struct sockaddr *)&ss, &len);
    int cport = ctl_get(ctl, STEP_MS);
    T("peer port is the client's local port: %s", cport == sa_port(&ss) ? "yes" : "no");
    len = 4;
    CALL(getsockname(a, (struct sockaddr *)&ss, &len), "getsockname with a 4-byte buffer");
    T("  length now %u", (unsigned)len);
}

/* Runs the names case on v4 or v6. */
static void names_case(bool v6) {
    peer s;
    set_role("cli");
    peer_start(&s, "srv", srv_names, v6 ? "v6" : NULL);
    ctl_expect(s.ctl, C_READY);
    int fd = v6 ? dial(AF_INET6, "::1") : dial(AF_INET, "127.0.0.1");
    struct sockaddr_storage ss = {0};
    socklen_t len = sizeof ss;
    if (fd >= 0) {
        T("client: local %s, peer %s", name_of(fd, false), name_of(fd, true));
        getsockname(fd, (struct sockaddr *)&ss, &len);
    }
    ctl_put(s.ctl, sa_port(&ss));
    peer_join(&s, 10000);
}

/* Case: names of listener, client and accepted connection over IPv4. */
static void case_names_v4(void) {
    names_case(false);
}

/* Case: the same over IPv6. */
static void case_names_v6(void) {
    names_case(true);
}

/* The server peer of case_connect_flags: accepts CONNECT_TRIES
 * connections in turn, reading the byte each client sends. */
#define CONNECT_TRIES 5
static void srv_flags(int ctl, void *arg) {
    (void)arg;
    int l = lsn(AF_INET, "127.0.0.1", O_REUSEADDR);
    ctl_put(ctl, C_READY);
    for (int i = 0; i < CONNECT_TRIES && l >= 0; i++) {
        int a = acc(l, "");
        if (a < 0)
            break;
        rd(a, 1, "");
        close(a);
    }
}

/* Prints the access mode and the O_NONBLOCK and FD_CLOEXEC flags of |fd|,
 * after |what|. */
static void show_flags(int fd, const char *what) {
    int fl = fcntl(fd, F_GETFL);
    T("%s: %s %s", what, fl >= 0 && (fl & O_ACCMODE) == O_RDWR ? "rdwr" : "not rdwr",
      fd_flags(fd));
}

/* Case: the flags of a connecting socket survive the connect (the shim
 * puts another socket on the number): socket() with and without
 * SOCK_NONBLOCK and SOCK_CLOEXEC, and O_NONBLOCK set by fcntl before the
 * connect; each then flips O_NONBLOCK, which must take. */
static void case_connect_flags(void) {
    static const struct {
        int type, fcntl_nonblock;
        const char *desc;
    } tries[CONNECT_TRIES] = {
        {0, 0, "socket()"},
        {SOCK_NONBLOCK, 0, "socket(SOCK_NONBLOCK)"},
        {SOCK_CLOEXEC, 0, "socket(SOCK_CLOEXEC)"},
        {SOCK_NONBLOCK | SOCK_CLOEXEC, 0, "socket(SOCK_NONBLOCK|SOCK_CLOEXEC)"},
        {0, 1, "socket(), then fcntl O_NONBLOCK"}};
    peer s;
    set_role("cli");
    peer_start(&s, "srv", srv_flags, NULL);
    ctl_expect(s.ctl, C_READY);
    struct sockaddr_storage ss;
    socklen_t len = sa_make(&ss, AF_INET, "127.0.0.1", g_port);
    for (int i = 0; i < CONNECT_TRIES; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | tries[i].type, 0);
        if (fd < 0)
            die("socket: %s", ename(errno));
        if (tries[i].fcntl_nonblock)
            set_nonblock(fd, true);
        int rc = connect(fd, (struct sockaddr *)&ss, len), e = errno;
        bool nb = (tries[i].type & SOCK_NONBLOCK) || tries[i].fcntl_nonblock;
        if (rc == 0 || (nb && e == EINPROGRESS))
            T("%s: connect -> 0%s", tries[i].desc, nb ? "|EINPROGRESS" : "");
        else
            T_res(rc, e, "%s: connect", tries[i].desc);
        T("  writable: %s",
          (poll_for(fd, POLLOUT, POLLOUT, STEP_MS) & POLLOUT) ? "yes" : "no");
        show_flags(fd, "  after connect");
        set_nonblock(fd, !nb);
        show_flags(fd, nb ? "  O_NONBLOCK cleared" : "  O_NONBLOCK set");
        wr(fd, "x", "");
        close(fd);
    }
    peer_join(&s, 15000);
}

/* Accepts with accept4(|flags|) (plain accept when |flags| < 0) and
 * prints the peer, the address length and the fd flags. */
static void acc4(int l, int flags, const char *desc) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    poll_for(l, POLLIN, POLLIN, STEP_MS);
    int fd = flags < 0 ? accept(l, (struct sockaddr *)&ss, &len)
                       : accept4(l, (struct sockaddr *)&ss, &len, flags);
    if (fd < 0) {
        T_res(fd, errno, "%s", desc);
        return;
    }
    T("%s -> fd peer=%s %s", desc, sa_fmt(&ss, len), fd_flags(fd));
    close(fd);
}

/* Case: accept and accept4 flags (SOCK_NONBLOCK, SOCK_CLOEXEC, none; not
 * inherited from a non-blocking listener), a short address buffer, EAGAIN
 * and bad flags. */
static void case_accept4(void) {
    peer c;
    set_role("srv");
    peer_start(&c, "cli", cli_script, "44444");
    int l = lsn(AF_INET, "127.0.0.1", O_REUSEADDR);
    static const struct {
        int flags;
        const char *desc;
    } tries[] = {{-1, "accept"},
                 {SOCK_NONBLOCK, "accept4(SOCK_NONBLOCK)"},
                 {SOCK_CLOEXEC, "accept4(SOCK_CLOEXEC)"},
                 {SOCK_NONBLOCK | SOCK_CLOEXEC, "accept4(SOCK_NONBLOCK|SOCK_CLOEXEC)"}};
    for (int i = 0; i < 4; i++) {
        step(&c);
        acc4(l, tries[i].flags, tries[i].desc);
    }
    set_nonblock(l, true);
    step(&c);
    struct sockaddr_storage ss;
    socklen_t len = 4;
    poll_for(l, POLLIN, POLLIN, STEP_MS);
    int fd = (int)CALL(accept(l, (struct sockaddr *)&ss, &len),
                       "accept on a non-blocking listener, 4-byte address buffer");
    T("  length now %u, %s", (unsigned)len, fd >= 0 ? fd_flags(fd) : "-");
    CALL(accept(l, NULL, NULL), "accept, nothing pending");
    CALL(accept4(l, NULL, NULL, 0x4000000), "accept4 with a bad flag");
    finish(&c);
}

/* Server of the pair cases that only need to accept: reads "hi". */
static void srv_hi(int ctl, int fd) {
    T("'hi' %s", got_hi(fd) ? "arrived" : "did not arrive");
}

/* Case: a non-blocking connect that succeeds: POLLOUT, SO_ERROR 0, a
 * second connect EISCONN. */
static void case_nb_connect_ok(void) {
    peer s;
    pair_server(&s, srv_hi);
    int fd = dial_nb(AF_INET, "127.0.0.1");
    int m = poll_for(fd, POLLOUT, POLLOUT | POLLERR | POLLHUP, STEP_MS);
    T("poll OUT -> %s", m ? mask_str(m) : "timeout");
    T("getsockopt SO_ERROR -> %s", ename(get_int(fd, SOL_SOCKET, SO_ERROR, "SO_ERROR")));
    struct sockaddr_storage ss;
    socklen_t len = sa_make(&ss, AF_INET, "127.0.0.1", g_port);
    CALL(connect(fd, (struct sockaddr *)&ss, len), "connect again");
    CALL(connect(fd, (struct sockaddr *)&ss, len), "connect a third time");
    T("getpeername -> %s", name_of(fd, true));
    wr(fd, "hi", "");
    peer_join(&s, 10000);
}

/* Server of case_connect_after_bind: is the peer port the one the client
 * bound? */
static void srv_bound_port(int ctl, int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    getpeername(fd, (struct sockaddr *)&ss, &len);
    int want = ctl_get(ctl, STEP_MS);
    T("peer port is the port the client bound: %s", want == sa_port(&ss) ? "yes" : "no");
}

/* Case: a client binds 127.0.0.1:0 before connecting: its connection keeps
 * the bound port, at both ends. */
static void case_connect_after_bind(void) {
    peer s;
    pair_server(&s, srv_bound_port);
    struct sockaddr_storage ss, b;
    socklen_t len = sa_make(&ss, AF_INET, "127.0.0.1", 0), blen = sizeof b;
    int fd = sock_new(AF_INET, 0);
    CALL(bind(fd, (struct sockaddr *)&ss, len), "bind %s", sa_fmt(&ss, len));
    getsockname(fd, (struct sockaddr *)&b, &blen);
    T("bound: %s", sa_fmt(&b, blen));
    len = sa_make(&ss, AF_INET, "127.0.0.1", g_port);
    BCALL(connect(fd, (struct sockaddr *)&ss, len), "connect %s", sa_fmt(&ss, len));
    struct sockaddr_storage n;
    socklen_t nlen = sizeof n;
    getsockname(fd, (struct sockaddr *)&n, &nlen);
    T("local port after connect is the bound one: %s",
      sa_port(&n) == sa_port(&b) ? "yes" : "no");
    ctl_put(s.ctl, sa_port(&b));
    peer_join(&s, 10000);
}

/* Server of case_distinct_ports: accepts two connections; are their peer
 * ports different, and each one of the client's local ports? */
static void srv_two_ports(int ctl, int fd) {
    struct sockaddr_storage a, b;
    socklen_t la = sizeof a, lb = sizeof b;
    ctl_expect(ctl, C_NEXT);
    int l = lsn(AF_INET, "127.0.0.1", O_REUSEADDR);
    ctl_put(ctl, C_READY);
    int fd2 = acc(l, "");
    getpeername(fd, (struct sockaddr *)&a, &la);
    getpeername(fd2, (struct sockaddr *)&b, &lb);
    int p1 = ctl_get(ctl, STEP_MS), p2 = ctl_get(ctl, STEP_MS);
    T("the two peer ports differ: %s", sa_port(&a) != sa_port(&b) ? "yes" : "no");
    T("they are the client's local ports: %s",
      sa_port(&a) == p1 && sa_port(&b) == p2 ? "yes" : "no");
}

/* Case: two connections of one client process have different local
 * ports, and the server sees the same ports. */
static void case_distinct_ports(void) {
    peer s;
    int fd1 = pair_open(&s, srv_two_ports);
    ctl_put(s.ctl, C_NEXT);
    ctl_expect(s.ctl, C_READY);
    int fd2 = dial(AF_INET, "127.0.0.1");
    struct sockaddr_storage a = {0}, b = {0};
    socklen_t la = sizeof a, lb = sizeof b;
    getsockname(fd1, (struct sockaddr *)&a, &la);
    if (fd2 >= 0)
        getsockname(fd2, (struct sockaddr *)&b, &lb);
    T("the two local ports differ: %s", sa_port(&a) != sa_port(&b) ? "yes" : "no");
    ctl_put(s.ctl, sa_port(&a));
    ctl_put(s.ctl, sa_port(&b));
    peer_join(&s, 10000);
}

/* Server of case_tcp_states: half-closes first, reports its state at each
 * step of the close. */
static void srv_states(int ctl, int fd) {
    T("TCP state %s", tcp_state(fd));
    ctl_expect(ctl, C_GO);
    CALL(shutdown(fd, SHUT_WR), "shutdown(SHUT_WR)");
    ctl_put(ctl, C_NEXT);
    ctl_expect(ctl, C_NEXT);
    T("after the client read EOF: TCP state %s", tcp_state(fd));
    ctl_put(ctl, C_NEXT);
    wait_ev(fd, POLLRDHUP, " (client's FIN)");
    rd(fd, 16, "");
    T("after both FINs: TCP state %s", tcp_state(fd));
}

/* Case: the TCP state TCP_INFO reports through an orderly close. */
static void case_tcp_states(void) {
    peer s;
    int fd = pair_open(&s, srv_states);
    T("TCP state %s", tcp_state(fd));
    ctl_put(s.ctl, C_GO);
    ctl_expect(s.ctl, C_NEXT);
    wait_ev(fd, POLLRDHUP, " (server's FIN)");
    rd(fd, 16, "");
    T("after reading EOF: TCP state %s", tcp_state(fd));
    ctl_put(s.ctl, C_NEXT);
    ctl_expect(s.ctl, C_NEXT);
    CALL(shutdown(fd, SHUT_WR), "shutdown(SHUT_WR)");
    T("after both FINs: TCP state %s", tcp_state(fd));
    peer_join(&s, 10000);
}

const case_def cases_api[] = {
    {"getsockopt-basics", case_getsockopt,
     "SO_TYPE/DOMAIN/PROTOCOL/ACCEPTCONN/ERROR, TCP_INFO"},
    {"setsockopt-tcp", case_setsockopt, "TCP options set and read back"},
    {"names-v4", case_names_v4, "getsockname/getpeername over IPv4"},
    {"names-v6", case_names_v6, "getsockname/getpeername over IPv6"},
    {"accept4-flags", case_accept4, "accept/accept4 flags and address"},
    {"connect-fd-flags", case_connect_flags,
     "socket flags kept across connect, then flipped"},
    {"nonblocking-connect-success", case_nb_connect_ok, "EINPROGRESS, POLLOUT, EISCONN"},
    {"connect-after-bind", case_connect_after_bind, "a bound client port is kept"},
    {"names-distinct-ports", case_distinct_ports, "two connections, two local ports"},
    {"tcp-info-states", case_tcp_states, "TCP_INFO state through an orderly close"},
    {NULL, NULL, NULL},
};
