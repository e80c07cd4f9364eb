/*
 * cases_conn.c — the connection cases of conformance-tool: resets and what
 * each call gives after one, writes after the peer closed, aborts at accept
 * and in the backlog, urgent data (MSG_OOB, SO_OOBINLINE), and the small
 * behaviours of issue 11 item 8: zero-length recv, SO_RCVLOWAT and poll,
 * MSG_TRUNC, unknown options, IOV_MAX, connect(AF_UNSPEC), buffer sizes,
 * sendmmsg/recvmmsg, data after shutdown(SHUT_RD); and the exit time of a
 * process whose connect was refused (item 9).
 *
 * Most cases are a pair (shapes.c): the parent is the client "cli", the
 * server peer "srv" runs the case's server function on its accepted
 * connection, and the two step in lock through control messages.  Where a
 * case waits for bytes to have arrived it has the sender half-close and
 * waits for POLLRDHUP, which comes after every earlier byte.
 */
#include "tool.h"

#include <limits.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

/* Server of the reset cases: on C_GO aborts the connection, sends C_DONE. */
static void srv_abort(int ctl, int fd) {
    ctl_expect(ctl, C_GO);
    abort_close(fd, "");
    ctl_put(ctl, C_DONE);
}

/* Connects to a server that aborts its end; returns once it has. */
static int reset_pair(peer *s) {
    int fd = pair_open(s, srv_abort);
    ctl_put(s->ctl, C_GO);
    ctl_expect(s->ctl, C_DONE);
    wait_ev(fd, POLLIN | POLLERR | POLLHUP, " (reset)");
    return fd;
}

/* Case: the poll mask after the peer's reset, after reading the error and
 * after a failed write.  (The other reset cases print no masks, so that
 * each difference shows in one case only.) */
static void case_reset_poll_mask(void) {
    peer s;
    int fd = reset_pair(&s);
    show_poll(fd, "");
    rd(fd, 16, "");
    show_poll(fd, "");
    wr(fd, "x", "");
    show_poll(fd, "");
    peer_join(&s, 10000);
}

/* Case: SO_ERROR after the peer's reset reports it once; read then. */
static void case_reset_so_error(void) {
    peer s;
    int fd = reset_pair(&s);
    T("getsockopt SO_ERROR -> %s", ename(get_int(fd, SOL_SOCKET, SO_ERROR, "SO_ERROR")));
    T("getsockopt SO_ERROR -> %s", ename(get_int(fd, SOL_SOCKET, SO_ERROR, "SO_ERROR")));
    rd(fd, 16, "");
    peer_join(&s, 10000);
}

/* Case: after the peer's reset, read first: ECONNRESET once, then 0; then
 * writes: EPIPE with SIGPIPE. */
static void case_reset_read_first(void) {
    peer s;
    int fd = reset_pair(&s);
    rd(fd, 16, "");
    rd(fd, 16, "");
    wr(fd, "x", "");
    wr(fd, "x", "");
    peer_join(&s, 10000);
}

/* Case: after the peer's reset, write first: ECONNRESET at most once, then
 * EPIPE with SIGPIPE; send(MSG_NOSIGNAL) EPIPE without; then read. */
static void case_reset_write_first(void) {
    peer s;
    int fd = reset_pair(&s);
    wr(fd, "x", "");
    wr(fd, "x", "");
    BCALL(send(fd, "x", 1, MSG_NOSIGNAL), "send 'x' MSG_NOSIGNAL");
    rd(fd, 16, "");
    peer_join(&s, 10000);
}

/* Server of case_reset_after_data: reads the 1000 bytes, tells the client,
 * then reads again once the client has aborted. */
static void srv_read_then_reset(int ctl, int fd) {
    char buf[1000];
    uint8_t want[1000];
    size_t got = 0;
    while (got < sizeof buf && poll_for(fd, POLLIN, 0, STEP_MS)) {
        ssize_t r = recv(fd, buf + got, sizeof buf - got, MSG_DONTWAIT);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    pat_fill(want, 0, sizeof want);
    T("read %zu of 1000 bytes, %s", got, memcmp(buf, want, got) ? "wrong" : "the pattern");
    ctl_put(ctl, C_NEXT);
    ctl_expect(ctl, C_DONE);
    wait_ev(fd, POLLIN | POLLERR | POLLHUP, " (reset)");
    rd(fd, 16, "");
    rd(fd, 16, "");
}

/* Case: SO_LINGER {1,0} after the peer has read everything: the peer's
 * read gives ECONNRESET, not EOF. */
static void case_reset_after_data(void) {
    peer s;
    int fd = pair_open(&s, srv_read_then_reset);
    send_pat(fd, 1000);
    ctl_expect(s.ctl, C_NEXT);
    abort_close(fd, "");
    ctl_put(s.ctl, C_DONE);
    peer_join(&s, 10000);
}

/* Server of case_reset_unread: waits for 6 bytes queued, lets the client
 * abort, then reads what is left. */
static void srv_unread_reset(int ctl, int fd) {
    T("6 bytes queued: %s", wait_inq(fd, 6, STEP_MS) ? "yes" : "no");
    ctl_put(ctl, C_NEXT);
    ctl_expect(ctl, C_DONE);
    T("wait for ERR|HUP (reset) -> %s",
      poll_for(fd, POLLIN, POLLERR | POLLHUP, STEP_MS) ? "yes" : "timeout");
    rd(fd, 16, "");
    rd(fd, 16, "");
    rd(fd, 16, "");
}

/* Case: the peer aborts while bytes it sent are still unread here: are
 * they still delivered before ECONNRESET? */
static void case_reset_unread(void) {
    peer s;
    int fd = pair_open(&s, srv_unread_reset);
    wr(fd, "abcdef", "");
    ctl_expect(s.ctl, C_NEXT);
    abort_close(fd, "");
    ctl_put(s.ctl, C_DONE);
    peer_join(&s, 10000);
}

/* Server of case_close_write_epipe: closes normally on C_GO. */
static void srv_close(int ctl, int fd) {
    ctl_expect(ctl, C_GO);
    CALL(close(fd), "close");
    ctl_put(ctl, C_DONE);
}

/* One connection of case_close_write_epipe: the peer closes normally;
 * writes of 1024 bytes until one fails (at most 20). */
static void close_write_once(void) {
    peer s;
    char buf[1024] = {0};
    int fd = pair_open(&s, srv_close);
    ctl_put(s.ctl, C_GO);
    ctl_expect(s.ctl, C_DONE);
    wait_fin(fd);
    show_poll(fd, "");
    rd(fd, 16, "");
    int ok = 0;
    for (int i = 0; i < 20; i++) {
        arm(STEP_MS);
        ssize_t w = write(fd, buf, sizeof buf);
        int e = errno;
        disarm();
        if (w < 0) {
            T("writes of 1024 bytes that returned 1024: %d", ok);
            T_res(w, e, "write 1024");
            break;
        }
        if (++ok == 1)
            T("after the first write, wait for ERR|HUP (the peer's reset) -> %s",
              poll_for(fd, 0, POLLERR | POLLHUP, STEP_MS) ? "yes" : "timeout");
    }
    wr(fd, "x", "");
    show_poll(fd, "");
    rd(fd, 16, "");
    close(fd);
    peer_join(&s, 10000);
}

/* Case: after the peer's normal close, writes succeed until EPIPE with
 * SIGPIPE, with no ECONNRESET first; four connections, one after the
 * other. */
static void case_close_write_epipe(void) {
    for (int i = 0; i < 4; i++)
        close_write_once();
}

/* Server of case_accept_abort: aborts each connection as it accepts it. */
static void srv_accept_abort(int ctl, void *arg) {
    int l = lsn(AF_INET, "127.0.0.1", O_REUSEADDR);
    ctl_put(ctl, C_READY);
    int a = acc(l, "");
    if (a >= 0)
        abort_close(a, "");
    ctl_put(ctl, C_DONE);
}

/* Case: a server that accepts and aborts at once: the client's connect
 * succeeds, its read gives ECONNRESET. */
static void case_accept_abort(void) {
    peer s;
    set_role("cli");
    peer_start(&s, "srv", srv_accept_abort, NULL);
    ctl_expect(s.ctl, C_READY);
    int fd = dial(AF_INET, "127.0.0.1");
    ctl_expect(s.ctl, C_DONE);
    if (fd >= 0) {
        wait_ev(fd, POLLIN | POLLERR | POLLHUP, " (reset)");
        rd(fd, 16, "");
        rd(fd, 16, "");
    }
    peer_join(&s, 10000);
}

/* Server of case_backlog_closed: closes its listener with a connection in
 * the backlog, never accepted. */
static void srv_backlog_close(int ctl, void *arg) {
    int l = lsn(AF_INET, "127.0.0.1", O_REUSEADDR);
    ctl_put(ctl, C_READY);
    ctl_expect(ctl, C_GO);
    T("a connection is queued: %s", poll_for(l, POLLIN, POLLIN, STEP_MS) ? "yes" : "no");
    CALL(close(l), "close the listener");
    ctl_put(ctl, C_DONE);
}

/* Case: the listener is closed while a connection waits in its backlog:
 * the connected client gets a reset. */
static void case_backlog_closed(void) {
    peer s;
    set_role("cli");
    peer_start(&s, "srv", srv_backlog_close, NULL);
    ctl_expect(s.ctl, C_READY);
    int fd = dial(AF_INET, "127.0.0.1");
    ctl_put(s.ctl, C_GO);
    ctl_expect(s.ctl, C_DONE);
    if (fd >= 0) {
        wait_ev(fd, POLLIN | POLLERR | POLLHUP, " (reset)");
        rd(fd, 16, "");
        rd(fd, 16, "");
    }
    peer_join(&s, 10000);
}

/* Server of the OOB cases: (SO_OOBINLINE when |inline_|) waits for the
 * whole "abc" 'X'(urgent) "def" and FIN, then reads it piece by piece
 * with SIOCATMARK before each read. */
static void srv_oob(int ctl, int fd, bool inline_) {
    if (inline_)
        CALL(setsockopt(fd, SOL_SOCKET, SO_OOBINLINE, &(int){1}, sizeof(int)),
             "setsockopt SO_OOBINLINE=1");
    ctl_put(ctl, C_NEXT);
    wait_fin(fd);
    show_poll(fd, "");
    int mark = -1;
    CALL(ioctl(fd, SIOCATMARK, &mark), "ioctl SIOCATMARK (=%d)", mark);
    if (!inline_)
        rcv(fd, 16, MSG_OOB, "recv MSG_OOB");
    for (int i = 0; i < 4; i++) {
        ioctl(fd, SIOCATMARK, &mark);
        T("SIOCATMARK -> %d", mark);
        if (rd(fd, 16, "") <= 0)
            break;
    }
    rcv(fd, 16, MSG_OOB | MSG_DONTWAIT, "recv MSG_OOB");
}

/* srv_oob without SO_OOBINLINE. */
static void srv_oob_plain(int ctl, int fd) {
    srv_oob(ctl, fd, false);
}

/* srv_oob with SO_OOBINLINE. */
static void srv_oob_inline(int ctl, int fd) {
    srv_oob(ctl, fd, true);
}

/* The client of the OOB cases: "abc", 'X' with MSG_OOB, "def", FIN. */
static void oob_client(conn_fn srv) {
    peer s;
    int fd = pair_open(&s, srv);
    ctl_expect(s.ctl, C_NEXT);
    wr(fd, "abc", "");
    BCALL(send(fd, "X", 1, MSG_OOB), "send 'X' MSG_OOB");
    wr(fd, "def", "");
    CALL(shutdown(fd, SHUT_WR), "shutdown(SHUT_WR)");
    peer_join(&s, 15000);
}

/* Case: one urgent byte amid data, receiver without SO_OOBINLINE. */
static void case_oob_plain(void) {
    oob_client(srv_oob_plain);
}

/* Case: the same with SO_OOBINLINE. */
static void case_oob_inline(void) {
    oob_client(srv_oob_inline);
}

/* Server of case_recv_zero: recv of length 0 with nothing queued (non-
 * blocking, then blocking until a signal), with data queued, at EOF. */
static void srv_recv_zero(int ctl, int fd) {
    char b[16];
    CALL(recv(fd, b, 0, MSG_DONTWAIT), "recv len 0 MSG_DONTWAIT, nothing queued");
    /* A grace period: proves that the blocking call does NOT return by
     * itself; the alarm's signal ends it. */
    arm(GRACE_MS);
    errno = 0;
    long r = recv(fd, b, 0, 0);
    int e = errno;
    disarm();
    T_res(r, e, "recv len 0, nothing queued, a signal after %d ms", GRACE_MS);
    ctl_put(ctl, C_NEXT);
    wait_fin(fd);
    BCALL(recv(fd, b, 0, 0), "recv len 0, 5 bytes queued");
    rd(fd, 16, "");
    BCALL(recv(fd, b, 0, 0), "recv len 0 at EOF");
    rd(fd, 16, "");
}

/* Case: recv(fd, buf, 0, flags): when it returns, and what. */
static void case_recv_zero(void) {
    peer s;
    int fd = pair_open(&s, srv_recv_zero);
    ctl_expect(s.ctl, C_NEXT);
    wr(fd, "hello", "");
    shutdown(fd, SHUT_WR);
    peer_join(&s, 15000);
}

/* Server of case_rcvlowat: SO_RCVLOWAT 10; poll with 5 bytes queued, then
 * with 10. */
static void srv_rcvlowat(int ctl, int fd) {
    CALL(setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &(int){10}, sizeof(int)),
         "setsockopt SO_RCVLOWAT=10");
    T("getsockopt SO_RCVLOWAT -> %d", get_int(fd, SOL_SOCKET, SO_RCVLOWAT, "SO_RCVLOWAT"));
    ctl_put(ctl, C_NEXT);
    ctl_expect(ctl, C_SENT);
    T("5 bytes queued: %s", wait_inq(fd, 5, STEP_MS) ? "yes" : "no");
    /* A grace period: proves that the fd does NOT become readable. */
    struct pollfd p = {fd, POLLIN, 0};
    int n = poll(&p, 1, GRACE_MS);
    T("poll IN for %d ms with 5 bytes queued -> %s", GRACE_MS,
      n ? mask_str(p.revents) : "0");
    ctl_put(ctl, C_NEXT);
    wait_ev(fd, POLLIN, " with 10 bytes sent");
    rd(fd, 16, "");
}

/* Case: SO_RCVLOWAT governs poll readiness. */
static void case_rcvlowat(void) {
    peer s;
    int fd = pair_open(&s, srv_rcvlowat);
    ctl_expect(s.ctl, C_NEXT);
    wr(fd, "12345", "");
    ctl_put(s.ctl, C_SENT);
    ctl_expect(s.ctl, C_NEXT);
    wr(fd, "67890", "");
    peer_join(&s, 15000);
}

/* Server of case_recv_trunc: recv(MSG_TRUNC) discards what it counts. */
static void srv_recv_trunc(int ctl, int fd) {
    char b[8];
    wait_fin(fd);
    memset(b, '.', sizeof b);
    BCALL(recv(fd, b, 4, MSG_TRUNC), "recv 4 MSG_TRUNC");
    T("buffer after it: %s", quote(b, sizeof b));
    rd(fd, 16, "");
    rd(fd, 16, "");
}

/* Case: recv with MSG_TRUNC on a stream discards the bytes. */
static void case_recv_trunc(void) {
    peer s;
    int fd = pair_open(&s, srv_recv_trunc);
    wr(fd, "0123456789", "");
    shutdown(fd, SHUT_WR);
    peer_join(&s, 15000);
}

/* Tries unknown and malformed options on |fd|. */
static void unknown_opts(int fd) {
    int v = 1, big = 0;
    socklen_t len = sizeof big;
    CALL(setsockopt(fd, SOL_TCP, 9999, &v, sizeof v), "setsockopt SOL_TCP 9999");
    CALL(getsockopt(fd, SOL_TCP, 9999, &big, &len), "getsockopt SOL_TCP 9999");
    CALL(setsockopt(fd, SOL_SOCKET, 9999, &v, sizeof v), "setsockopt SOL_SOCKET 9999");
    CALL(setsockopt(fd, SOL_IP, 9999, &v, sizeof v), "setsockopt SOL_IP 9999");
    CALL(setsockopt(fd, 12345, 1, &v, sizeof v), "setsockopt level 12345");
    CALL(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, sizeof v),
         "setsockopt IPV6_V6ONLY on an AF_INET socket");
    CALL(setsockopt(fd, SOL_TCP, TCP_NODELAY, &v, 1), "setsockopt TCP_NODELAY optlen 1");
    len = 0;
    CALL(getsockopt(fd, SOL_TCP, TCP_NODELAY, &big, &len),
         "getsockopt TCP_NODELAY optlen 0");
    T("  optlen now %u", (unsigned)len);
}

/* Server of case_sockopt_unknown: the same on the accepted connection. */
static void srv_unknown(int ctl, int fd) {
    unknown_opts(fd);
}

/* Case: unknown options give ENOPROTOOPT, malformed ones EINVAL. */
static void case_sockopt_unknown(void) {
    peer s;
    int fd = pair_open(&s, srv_unknown);
    unknown_opts(fd);
    peer_join(&s, 10000);
}

/* Server of case_writev_iovmax: readv with too many iovecs, then reads
 * what came. */
static void srv_iovmax(int ctl, int fd) {
    static struct iovec iov[IOV_MAX + 1];
    static char b[IOV_MAX + 1];
    for (int i = 0; i <= IOV_MAX; i++)
        iov[i] = (struct iovec){b + i, 1};
    wait_fin(fd);
    BCALL(readv(fd, iov, IOV_MAX + 1), "readv IOV_MAX+1 iovecs");
    recv_report(fd, "");
}

/* Case: writev/sendmsg with IOV_MAX+1 iovecs fail (EINVAL / EMSGSIZE);
 * IOV_MAX works. */
static void case_writev_iovmax(void) {
    static struct iovec iov[IOV_MAX + 1];
    static uint8_t b[IOV_MAX + 1];
    peer s;
    int fd = pair_open(&s, srv_iovmax);
    pat_fill(b, 0, sizeof b);
    for (int i = 0; i <= IOV_MAX; i++)
        iov[i] = (struct iovec){b + i, 1};
    BCALL(writev(fd, iov, IOV_MAX + 1), "writev IOV_MAX+1 iovecs");
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = IOV_MAX + 1};
    BCALL(sendmsg(fd, &mh, 0), "sendmsg IOV_MAX+1 iovecs");
    BCALL(writev(fd, iov, IOV_MAX), "writev IOV_MAX iovecs");
    shutdown(fd, SHUT_WR);
    peer_join(&s, 15000);
}

/* Server of case_connect_unspec: sees the first connection end, then
 * accepts the second. */
static void srv_unspec(int ctl, int fd) {
    ctl_put(ctl, C_NEXT);
    ctl_expect(ctl, C_SENT);
    wait_ev(fd, POLLIN | POLLERR | POLLHUP, " (the client's disconnect)");
    show_poll(fd, "");
    rd(fd, 16, "");
    int l = lsn(AF_INET, "127.0.0.1", O_REUSEADDR);
    ctl_put(ctl, C_READY);
    int a = acc(l, "");
    if (a >= 0)
        rd(a, 16, "");
}

/* Case: connect(AF_UNSPEC) on a connected socket dissolves the
 * association; the socket can connect again. */
static void case_connect_unspec(void) {
    peer s;
    int fd = pair_open(&s, srv_unspec);
    ctl_expect(s.ctl, C_NEXT);
    struct sockaddr un = {.sa_family = AF_UNSPEC};
    CALL(connect(fd, &un, sizeof un), "connect AF_UNSPEC");
    T("getpeername -> %s", name_of(fd, true));
    show_poll(fd, "");
    wr(fd, "x", "");
    ctl_put(s.ctl, C_SENT);
    ctl_expect(s.ctl, C_READY);
    struct sockaddr_storage ss;
    socklen_t len = sa_make(&ss, AF_INET, "127.0.0.1", g_port);
    BCALL(connect(fd, (struct sockaddr *)&ss, len), "connect %s again", sa_fmt(&ss, len));
    wr(fd, "again", "");
    peer_join(&s, 15000);
}

/* Prints how buffer option |name| of |fd| compares after setting 65536. */
static void buf_opt(int fd, int name, const char *desc) {
    int v = get_int(fd, SOL_SOCKET, name, desc);
    T("getsockopt %s -> %s", desc, v > 0 ? "> 0" : "not > 0");
    CALL(setsockopt(fd, SOL_SOCKET, name, &(int){65536}, sizeof(int)),
         "setsockopt %s=65536", desc);
    v = get_int(fd, SOL_SOCKET, name, desc);
    T("getsockopt %s -> %s", desc,
      v == 131072  ? "131072 (2 x 65536)"
      : v == 65536 ? "65536 (as set)"
                   : "another value");
}

/* Prints the buffer sizes and TCP_MAXSEG of |fd|. */
static void buffers(int fd) {
    buf_opt(fd, SO_SNDBUF, "SO_SNDBUF");
    buf_opt(fd, SO_RCVBUF, "SO_RCVBUF");
    int mss = get_int(fd, SOL_TCP, TCP_MAXSEG, "TCP_MAXSEG");
    T("getsockopt TCP_MAXSEG -> %s", mss > 0 ? "> 0" : "not > 0");
}

/* Server of case_sockopt_buffers. */
static void srv_buffers(int ctl, int fd) {
    buffers(fd);
}

/* Case: SO_SNDBUF/SO_RCVBUF/TCP_MAXSEG are positive; a set SO_SNDBUF
 * reads back doubled. */
static void case_sockopt_buffers(void) {
    peer s;
    int fd = pair_open(&s, srv_buffers);
    buffers(fd);
    peer_join(&s, 10000);
}

/* Server of case_mmsg: recvmmsg of three 4-byte messages, then EOF. */
static void srv_mmsg(int ctl, int fd) {
    char b[3][4];
    struct iovec iov[3];
    struct mmsghdr mm[3];
    memset(mm, 0, sizeof mm);
    for (int i = 0; i < 3; i++) {
        iov[i] = (struct iovec){b[i], 4};
        mm[i].msg_hdr.msg_iov = &iov[i];
        mm[i].msg_hdr.msg_iovlen = 1;
    }
    wait_fin(fd);
    int n = (int)BCALL(recvmmsg(fd, mm, 3, 0, NULL), "recvmmsg 3 x 4 bytes");
    for (int i = 0; i < n; i++)
        T("  message %d: %u bytes %s", i, mm[i].msg_len, quote(b[i], mm[i].msg_len));
    rd(fd, 16, "");
}

/* Case: sendmmsg and recvmmsg on a connection. */
static void case_mmsg(void) {
    peer s;
    int fd = pair_open(&s, srv_mmsg);
    static char *msgs[3] = {"aaaa", "bbbb", "cccc"};
    struct iovec iov[3];
    struct mmsghdr mm[3];
    memset(mm, 0, sizeof mm);
    for (int i = 0; i < 3; i++) {
        iov[i] = (struct iovec){msgs[i], 4};
        mm[i].msg_hdr.msg_iov = &iov[i];
        mm[i].msg_hdr.msg_iovlen = 1;
    }
    int n = (int)BCALL(sendmmsg(fd, mm, 3, 0), "sendmmsg 3 x 4 bytes");
    for (int i = 0; i < n; i++)
        T("  message %d: %u bytes sent", i, mm[i].msg_len);
    shutdown(fd, SHUT_WR);
    peer_join(&s, 15000);
}

/* Server of case_shut_rd_data: shutdown(SHUT_RD), then the client sends. */
static void srv_shut_rd(int ctl, int fd) {
    CALL(shutdown(fd, SHUT_RD), "shutdown(SHUT_RD)");
    show_poll(fd, "");
    rd(fd, 16, "");
    ctl_put(ctl, C_NEXT);
    ctl_expect(ctl, C_SENT);
    T("4 bytes queued within %d ms: %s", STEP_MS, wait_inq(fd, 4, STEP_MS) ? "yes" : "no");
    show_poll(fd, "");
    rd(fd, 16, "");
    rd(fd, 16, "");
}

/* Case: data that arrives after shutdown(SHUT_RD). */
static void case_shut_rd_data(void) {
    peer s;
    int fd = pair_open(&s, srv_shut_rd);
    ctl_expect(s.ctl, C_NEXT);
    wr(fd, "late", "");
    ctl_put(s.ctl, C_SENT);
    peer_join(&s, 15000);
}

/* A process whose only connection is refused (|arg| non-NULL: a
 * non-blocking one), then exits. */
static void refused_child(int ctl, void *arg) {
    if (arg) {
        nb_connect_report(AF_INET, "127.0.0.1");
    } else {
        int fd = dial(AF_INET, "127.0.0.1");
        if (fd >= 0)
            close(fd);
    }
    ctl_put(ctl, C_DONE);
}

/* Case: a process whose only connection was refused exits fast. */
static void case_exit_after_refused(void) {
    set_role("main");
    for (int nb = 0; nb < 2; nb++) {
        peer c;
        peer_start(&c, nb ? "child-nb" : "child", refused_child, nb ? "nb" : NULL);
        ctl_expect(c.ctl, C_DONE);
        int64_t t0 = now_ms();
        peer_join(&c, 10000);
        T("the child exited %s", now_ms() - t0 < 1000 ? "within 1 s" : "after 1 s or more");
    }
}

const case_def cases_conn[] = {
    {"reset-read-first", case_reset_read_first, "after a peer's reset: read, then write"},
    {"reset-write-first", case_reset_write_first, "after a peer's reset: write first"},
    {"reset-poll-mask", case_reset_poll_mask, "poll masks after a peer's reset"},
    {"reset-so-error", case_reset_so_error, "SO_ERROR after a peer's reset"},
    {"reset-after-data", case_reset_after_data, "SO_LINGER{1,0} after data: ECONNRESET"},
    {"reset-with-unread-data", case_reset_unread, "a reset while bytes are unread"},
    {"close-then-write-until-epipe", case_close_write_epipe,
     "writes after the peer closed"},
    {"accept-then-abort", case_accept_abort, "the server aborts as it accepts"},
    {"backlog-listener-closed", case_backlog_closed, "listener closed with a queued conn"},
    {"oob-plain", case_oob_plain, "MSG_OOB without SO_OOBINLINE"},
    {"oob-inline", case_oob_inline, "MSG_OOB with SO_OOBINLINE"},
    {"recv-zero-length", case_recv_zero, "recv(fd, buf, 0, 0)"},
    {"rcvlowat-poll", case_rcvlowat, "SO_RCVLOWAT governs poll readiness"},
    {"recv-trunc", case_recv_trunc, "recv MSG_TRUNC discards"},
    {"sockopt-unknown", case_sockopt_unknown, "unknown and malformed options"},
    {"writev-iovmax", case_writev_iovmax, "writev/sendmsg/readv with IOV_MAX+1"},
    {"connect-unspec", case_connect_unspec, "connect(AF_UNSPEC) on a connection"},
    {"sockopt-buffers", case_sockopt_buffers, "SO_SNDBUF/SO_RCVBUF/TCP_MAXSEG"},
    {"mmsg", case_mmsg, "sendmmsg/recvmmsg on a connection"},
    {"shut-rd-then-data", case_shut_rd_data, "data arriving after shutdown(SHUT_RD)"},
    {"exit-after-refused", case_exit_after_refused, "exit time after a refused connect"},
    {NULL, NULL, NULL},
};
