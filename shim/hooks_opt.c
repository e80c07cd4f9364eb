/*
 * hooks_opt.c — socket options and socket names of rerouted sockets
 * (DESIGN.md §4 "getsockopt", "setsockopt", "getpeername/getsockname").
 *
 * A rerouted fd is an AF_UNIX socket, but the program must keep seeing the
 * TCP socket it created:
 *
 *   getsockopt   SO_TYPE, SO_DOMAIN, SO_PROTOCOL and SO_ACCEPTCONN describe
 *                the TCP socket; SO_ERROR reads and clears the engine's
 *                pending error; TCP_INFO is filled from the board slot the
 *                engine keeps current (RTT, cwnd, MSS, retransmits, bytes);
 *                TCP-, IP- and IPv6-level options report what the program
 *                set, or the kernel's defaults; IP_OPTIONS is empty.
 *   setsockopt   on a TCP socket not yet rerouted: the real call, and the
 *                option is remembered so it survives the switch to AF_UNIX.
 *                On a rerouted socket TCP-, IP- and IPv6-level options and
 *                SO_LINGER/SO_KEEPALIVE/SO_REUSE* are recorded and succeed
 *                (never "not supported" because the fd is AF_UNIX now);
 *                timeouts and buffer sizes go to the AF_UNIX socket, where
 *                they mean the same thing.
 *   names        getpeername/getsockname report the TCP-level addresses, in
 *                the socket's family (v4-mapped on an IPv6 socket), with
 *                the kernel's rules: ENOTCONN before a connect completes
 *                and after it failed, silent truncation to the caller's
 *                length.
 *
 * Values are copied out like the kernel copies them: min(length, size)
 * bytes, and *optlen set to what was copied.  struct tcp_info comes from
 * <linux/tcp.h> (glibc's copy lacks the byte and rate counters), so this
 * file does not include <netinet/tcp.h>.
 */
#include "shim.h"

#include <errno.h>
#include <linux/sockios.h>
#include <stdarg.h>
#include <linux/tcp.h>
#include <poll.h>
#include <string.h>

/* TCP states as tcpi_state reports them (include/net/tcp_states.h). */
enum {
    TCPI_ESTABLISHED = 1,
    TCPI_SYN_SENT = 2,
    TCPI_FIN_WAIT1 = 4,
    TCPI_FIN_WAIT2 = 5,
    TCPI_CLOSE = 7,
    TCPI_CLOSE_WAIT = 8,
    TCPI_LAST_ACK = 9,
    TCPI_LISTEN = 10,
};

#define OPT_PASS 1 /* not handled here: the real call decides */
#define TCP_MSS_DEFAULT_ 536u
#define TCP_INFINITE_SSTHRESH_ 0x7fffffffu

/* One getsockopt answer before it is copied out. */
typedef union opt_value {
    int i;
    struct linger l;
    struct tcp_info ti;
    char name[RUDP_FD_CC_NAME_MAX];
} opt_value;

/* --- getsockopt --- */

/* Returns the recorded value of an integer option, or |dflt|. */
static int opt_recorded(const rudp_fd_entry *e, int level, int name, int dflt) {
    int v;

    return rudp_fd_opt_get(&e->opts, level, name, &v) ? v : dflt;
}

/* Answers SOL_SOCKET options a rerouted socket must report as TCP.
 * Returns the value's size, or OPT_PASS. */
static int opt_get_socket(const rudp_fd_entry *e, uint32_t kind, int name, opt_value *v) {
    rudp_slot *slot = kind == RUDP_FD_CONN ? rudp_slot_of(&e->ref) : NULL;

    switch (name) {
    case SO_TYPE:
        v->i = SOCK_STREAM;
        break;
    case SO_DOMAIN:
        v->i = e->family;
        break;
    case SO_PROTOCOL:
        v->i = IPPROTO_TCP;
        break;
    case SO_ACCEPTCONN:
        v->i = kind == RUDP_FD_LISTENER;
        break;
    case SO_ERROR:
        if (slot == NULL)
            return OPT_PASS;
        v->i = rudp_errno(rudp_slot_take_so_error(slot));
        break;
    case SO_KEEPALIVE:
    case SO_REUSEADDR:
    case SO_REUSEPORT:
        v->i = opt_recorded(e, SOL_SOCKET, name, 0);
        break;
    case SO_LINGER:
        v->l = e->opts.linger;
        return sizeof(v->l);
    default:
        return OPT_PASS;
    }
    return sizeof(int);
}

/* Returns the tcpi_state of the rerouted connection |fd| with |slot|: the
 * slot's state, and once connected what each side has ended: the program
 * (shutdown(SHUT_WR), flagged in the slot) and the peer (its FIN made the
 * socket read-hung-up).  |unacked|: bytes sent are not all acknowledged. */
static uint8_t opt_tcpi_state(int fd, rudp_slot *slot, bool unacked) {
    uint32_t st = rudp_slot_state(slot);
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    bool ours, theirs;

    if (st == RUDP_SLOT_CONNECTING)
        return TCPI_SYN_SENT;
    if (st != RUDP_SLOT_CONNECTED)
        return TCPI_CLOSE;
    ours = (rudp_slot_flags(slot) & RUDP_SLOT_F_WR_SHUT) != 0;
    theirs = poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP));
    if (!ours)
        return theirs ? TCPI_CLOSE_WAIT : TCPI_ESTABLISHED;
    if (theirs)
        return unacked ? TCPI_LAST_ACK : TCPI_CLOSE;
    return unacked ? TCPI_FIN_WAIT1 : TCPI_FIN_WAIT2;
}

/* Fills the counters of |ti| from |slot|. */
static void opt_tcp_info_slot(struct tcp_info *ti, int fd, rudp_slot *slot) {
    rudp_slot_stats st;
    uint32_t mss;

    rudp_slot_read(slot, &st);
    mss = st.snd_mss;
    ti->tcpi_state = opt_tcpi_state(fd, slot, st.bytes_acked < st.bytes_sent);
    ti->tcpi_retransmits = (uint8_t)(st.retransmits > 255 ? 255 : st.retransmits);
    ti->tcpi_snd_mss = ti->tcpi_rcv_mss = ti->tcpi_advmss = mss;
    ti->tcpi_lost = st.lost;
    ti->tcpi_total_retrans = st.total_retrans;
    ti->tcpi_pmtu = st.pmtu;
    ti->tcpi_rtt = st.rtt_us;
    ti->tcpi_rttvar = st.rttvar_us;
    ti->tcpi_min_rtt = st.min_rtt_us;
    ti->tcpi_rto = ti->tcpi_rtt + 4 * ti->tcpi_rttvar;
    ti->tcpi_snd_cwnd = mss ? st.snd_cwnd / mss : 0;
    /* The engine's "no threshold yet" is UINT32_MAX bytes. */
    ti->tcpi_snd_ssthresh = mss && st.snd_ssthresh != UINT32_MAX ? st.snd_ssthresh / mss
                                                                 : TCP_INFINITE_SSTHRESH_;
    ti->tcpi_bytes_acked = st.bytes_acked;
    ti->tcpi_bytes_received = st.bytes_received;
    ti->tcpi_bytes_sent = st.bytes_sent;
    ti->tcpi_bytes_retrans = st.bytes_retrans;
    ti->tcpi_delivery_rate = st.delivery_rate;
    ti->tcpi_pacing_rate = st.pacing_rate;
}

/* Returns a figure of |slot| (NULL: a zeroed one). */
static rudp_slot_stats opt_slot_stats(rudp_slot *slot) {
    rudp_slot_stats st = {0};

    if (slot != NULL)
        rudp_slot_read(slot, &st);
    return st;
}

/* Fills TCP_INFO for a rerouted socket. */
static void opt_tcp_info(int fd, const rudp_fd_entry *e, uint32_t kind,
                         struct tcp_info *ti) {
    memset(ti, 0, sizeof(*ti));
    ti->tcpi_options = TCPI_OPT_SACK;
    ti->tcpi_max_pacing_rate = UINT64_MAX;
    ti->tcpi_snd_ssthresh = TCP_INFINITE_SSTHRESH_;
    if (kind == RUDP_FD_LISTENER)
        ti->tcpi_state = TCPI_LISTEN;
    else if (rudp_slot_of(&e->ref) == NULL)
        ti->tcpi_state = TCPI_ESTABLISHED;
    else
        opt_tcp_info_slot(ti, fd, rudp_slot_of(&e->ref));
}

/* Returns the kernel's default of a TCP-level integer option. */
static int opt_tcp_default(const rudp_fd_entry *e, int name) {
    rudp_slot *slot = rudp_slot_of(&e->ref);
    uint32_t mss;

    switch (name) {
    case TCP_KEEPIDLE:
        return 7200;
    case TCP_KEEPINTVL:
        return 75;
    case TCP_KEEPCNT:
        return 9;
    case TCP_SYNCNT:
        return 6;
    case TCP_LINGER2:
        return 60;
    case TCP_MAXSEG:
        mss = opt_slot_stats(slot).snd_mss;
        return (int)(mss ? mss : TCP_MSS_DEFAULT_);
    default:
        return 0;
    }
}

/* Answers IPPROTO_TCP options.  Returns the value's size. */
static int opt_get_tcp(int fd, const rudp_fd_entry *e, uint32_t kind, int name,
                       opt_value *v) {
    const char *cc;

    if (name == TCP_INFO) {
        opt_tcp_info(fd, e, kind, &v->ti);
        return sizeof(v->ti);
    }
    if (name == TCP_CONGESTION) {
        /* What the program set (recorded; the session's controller is
         * RUDP_CC's), else the session's. */
        cc = e->opts.congestion[0] ? e->opts.congestion : rudp_cc_algo_name(rudp_cfg.cc);
        memset(v->name, 0, sizeof(v->name));
        memcpy(v->name, cc, strnlen(cc, sizeof(v->name) - 1));
        return sizeof(v->name);
    }
    v->i = opt_recorded(e, IPPROTO_TCP, name, opt_tcp_default(e, name));
    return sizeof(int);
}

/* Answers IPPROTO_IP and IPPROTO_IPV6 options.  Returns the value's size:
 * 0 for IP_OPTIONS, as the kernel answers for a connection that carries no
 * IP options (sshd refuses a connection whose IP_OPTIONS are not empty). */
static int opt_get_ip(const rudp_fd_entry *e, int level, int name, opt_value *v) {
    rudp_slot *slot = rudp_slot_of(&e->ref);
    int dflt = 0;

    if (level == IPPROTO_IP && name == IP_OPTIONS)
        return 0;
    if ((level == IPPROTO_IP && name == IP_MTU) ||
        (level == IPPROTO_IPV6 && name == IPV6_MTU))
        dflt = (int)opt_slot_stats(slot).pmtu;
    else if ((level == IPPROTO_IP && name == IP_TTL) ||
             (level == IPPROTO_IPV6 && name == IPV6_UNICAST_HOPS))
        dflt = 64;
    v->i = opt_recorded(e, level, name, dflt);
    return sizeof(int);
}

/* Copies an answer of |size| bytes out like the kernel.  Returns 0 or -1
 * with errno. */
static int opt_copy_out(const opt_value *v, int size, void *val, socklen_t *lenp) {
    socklen_t n;

    if (lenp == NULL) {
        errno = EFAULT;
        return -1;
    }
    if ((int)*lenp < 0) {
        errno = EINVAL;
        return -1;
    }
    n = *lenp < (socklen_t)size ? *lenp : (socklen_t)size;
    if (n > 0 && val == NULL) {
        errno = EFAULT;
        return -1;
    }
    memcpy(val, v, n);
    *lenp = n;
    return 0;
}

/* getsockopt on a rerouted socket: the TCP view, or the real call for
 * options that mean the same on AF_UNIX. */
/* Returns true when a TCP socket of |family| knows option (level, name):
 * TCP's own options (linux/tcp.h: 1 to 37 but 15), IP's on any, IPv6's on
 * an IPv6 socket; every other level is IP's to refuse.  An unknown option
 * gives ENOPROTOOPT, as the kernel's. */
static bool opt_known(int family, int level, int name) {
    switch (level) {
    case SOL_SOCKET:
        return true;
    case IPPROTO_TCP:
        return name >= 1 && name <= 37 && name != 15;
    case IPPROTO_IP:
        return name >= 0 && name < 100;
    case IPPROTO_IPV6:
        return family == AF_INET6 && name >= 0 && name < 100;
    default:
        return false;
    }
}

static int opt_get_rerouted(int fd, const rudp_fd_entry *e, uint32_t kind, int level,
                            int name, void *val, socklen_t *lenp) {
    opt_value v;
    int size = OPT_PASS;

    if (!opt_known(e->family, level, name)) {
        errno = ENOPROTOOPT;
        return -1;
    }
    if (level == SOL_SOCKET)
        size = opt_get_socket(e, kind, name, &v);
    else if (level == IPPROTO_TCP)
        size = opt_get_tcp(fd, e, kind, name, &v);
    else if (level == IPPROTO_IP || level == IPPROTO_IPV6)
        size = opt_get_ip(e, level, name, &v);
    if (size == OPT_PASS)
        return RUDP_REAL(getsockopt)(fd, level, name, val, lenp);
    return opt_copy_out(&v, size, val, lenp);
}

RUDP_EXPORT int getsockopt(int fd, int level, int name, void *val, socklen_t *lenp) {
    rudp_fd_entry *e;
    uint32_t kind;

    if (!rudp_active())
        return RUDP_REAL(getsockopt)(fd, level, name, val, lenp);
    e = rudp_fd_peek(fd);
    kind = rudp_fd_kind(e);
    if (kind != RUDP_FD_CONN && kind != RUDP_FD_LISTENER)
        return RUDP_REAL(getsockopt)(fd, level, name, val, lenp);
    return opt_get_rerouted(fd, e, kind, level, name, val, lenp);
}

/* --- setsockopt --- */

/* Returns true for the SOL_SOCKET options the shim remembers. */
static bool opt_socket_recorded(int name) {
    switch (name) {
    case SO_LINGER:
    case SO_KEEPALIVE:
    case SO_REUSEADDR:
    case SO_REUSEPORT:
    case SO_SNDTIMEO:
    case SO_RCVTIMEO:
    case SO_SNDBUF:
    case SO_RCVBUF:
        return true;
    default:
        return false;
    }
}

/* Reads an integer option value: a full int, or (IP levels only) a single
 * byte, as the kernel accepts.  Returns 0 or -EINVAL/-EFAULT. */
static int opt_int_arg(int level, const void *val, socklen_t len, int *out) {
    if (val == NULL)
        return -EFAULT;
    if (len >= sizeof(int)) {
        memcpy(out, val, sizeof(int));
        return 0;
    }
    if (len >= 1 && (level == IPPROTO_IP || level == IPPROTO_IPV6)) {
        *out = *(const unsigned char *)val;
        return 0;
    }
    return -EINVAL;
}

/* Records a SOL_SOCKET option in |o|.  Returns 0 or -errno. */
static int opt_record_socket(rudp_fd_opts *o, int name, const void *val, socklen_t len) {
    struct timeval *tv = name == SO_SNDTIMEO ? &o->sndtimeo : &o->rcvtimeo;
    int v, r;

    if (name == SO_LINGER || name == SO_SNDTIMEO || name == SO_RCVTIMEO) {
        size_t need = name == SO_LINGER ? sizeof(struct linger) : sizeof(struct timeval);

        if (val == NULL)
            return -EFAULT;
        if (len < need)
            return -EINVAL;
        memcpy(name == SO_LINGER ? (void *)&o->linger : (void *)tv, val, need);
        return 0;
    }
    if ((r = opt_int_arg(SOL_SOCKET, val, len, &v)) < 0)
        return r;
    rudp_fd_opt_set(o, SOL_SOCKET, name, v);
    return 0;
}

/* Returns true for the options that say when a silent peer is dead. */
static bool opt_is_liveness(int level, int name) {
    if (level == SOL_SOCKET)
        return name == SO_KEEPALIVE;
    return level == IPPROTO_TCP && (name == TCP_USER_TIMEOUT || name == TCP_KEEPIDLE ||
                                    name == TCP_KEEPINTVL || name == TCP_KEEPCNT);
}

/* Returns 0, or -EINVAL for a keepalive or user-timeout value the kernel
 * refuses (net/ipv4/tcp.c: 1..32767 s, a count of 1..127, a timeout >= 0). */
static int opt_liveness_range(int name, int v) {
    switch (name) {
    case TCP_KEEPIDLE:
    case TCP_KEEPINTVL:
        return v < 1 || v > 32767 ? -EINVAL : 0;
    case TCP_KEEPCNT:
        return v < 1 || v > 127 ? -EINVAL : 0;
    case TCP_USER_TIMEOUT:
        return v < 0 ? -EINVAL : 0;
    default:
        return 0;
    }
}

void rudp_opt_publish_liveness(const rudp_fd_opts *o, rudp_slot *slot, bool always) {
    rudp_slot_opts so = {0};
    int v = 0;

    if (slot == NULL)
        return;
    if (rudp_fd_opt_get(o, IPPROTO_TCP, TCP_USER_TIMEOUT, &v))
        so.user_timeout_ms = (uint32_t)v;
    if (rudp_fd_opt_get(o, SOL_SOCKET, SO_KEEPALIVE, &v) && v) {
        /* The kernel's defaults when the program set only SO_KEEPALIVE. */
        so.ka_idle_s =
            rudp_fd_opt_get(o, IPPROTO_TCP, TCP_KEEPIDLE, &v) ? (uint32_t)v : 7200;
        so.ka_intvl_s =
            rudp_fd_opt_get(o, IPPROTO_TCP, TCP_KEEPINTVL, &v) ? (uint32_t)v : 75;
        so.ka_cnt = rudp_fd_opt_get(o, IPPROTO_TCP, TCP_KEEPCNT, &v) ? (uint32_t)v : 9;
    }
    if (always || so.user_timeout_ms || so.ka_idle_s)
        rudp_slot_set_opts(slot, &so);
}

/* Records option (level, name) in |o| when the shim keeps it.  Returns 0
 * or -errno (a value the kernel would refuse as too short). */
static int opt_record(rudp_fd_opts *o, int level, int name, const void *val,
                      socklen_t len) {
    size_t n;
    int v, r;

    if (level == SOL_SOCKET)
        return opt_socket_recorded(name) ? opt_record_socket(o, name, val, len) : 0;
    if (level == IPPROTO_TCP && name == TCP_CONGESTION) {
        if (val == NULL)
            return -EFAULT;
        n = len < sizeof(o->congestion) - 1 ? len : sizeof(o->congestion) - 1;
        memset(o->congestion, 0, sizeof(o->congestion));
        memcpy(o->congestion, val, n);
        return 0;
    }
    if (level != IPPROTO_TCP && level != IPPROTO_IP && level != IPPROTO_IPV6)
        return 0;
    if ((r = opt_int_arg(level, val, len, &v)) < 0)
        return r;
    if (level == IPPROTO_TCP && (r = opt_liveness_range(name, v)) < 0)
        return r;
    rudp_fd_opt_set(o, level, name, v);
    return 0;
}

/* Returns true when (level, name) on a rerouted socket is answered from
 * the record alone, without the AF_UNIX socket. */
static bool opt_record_only(int level, int name) {
    if (level == IPPROTO_TCP || level == IPPROTO_IP || level == IPPROTO_IPV6)
        return true;
    return level == SOL_SOCKET && (name == SO_LINGER || name == SO_KEEPALIVE ||
                                   name == SO_REUSEADDR || name == SO_REUSEPORT);
}

/* setsockopt on a rerouted socket.  Returns 0 or -1 with errno. */
static int opt_set_rerouted(int fd, rudp_fd_entry *e, int level, int name, const void *val,
                            socklen_t len) {
    int r;

    if (!opt_known(e->family, level, name)) {
        errno = ENOPROTOOPT;
        return -1;
    }
    if (!opt_record_only(level, name)) {
        r = RUDP_REAL(setsockopt)(fd, level, name, val, len);
        if (r == 0)
            opt_record(&e->opts, level, name, val, len);
        return r;
    }
    if ((r = opt_record(&e->opts, level, name, val, len)) < 0) {
        errno = -r;
        return -1;
    }
    if (opt_is_liveness(level, name) && rudp_fd_kind(e) == RUDP_FD_CONN)
        rudp_opt_publish_liveness(&e->opts, rudp_slot_of(&e->ref), true);
    return 0;
}

RUDP_EXPORT int setsockopt(int fd, int level, int name, const void *val, socklen_t len) {
    rudp_fd_entry *e;
    uint32_t kind;
    int r;

    if (!rudp_active())
        return RUDP_REAL(setsockopt)(fd, level, name, val, len);
    e = rudp_fd_peek(fd);
    kind = rudp_fd_kind(e);
    if (kind == RUDP_FD_CONN || kind == RUDP_FD_LISTENER)
        return opt_set_rerouted(fd, e, level, name, val, len);
    r = RUDP_REAL(setsockopt)(fd, level, name, val, len);
    if (r == 0 && kind == RUDP_FD_TCP)
        opt_record(&e->opts, level, name, val, len);
    return r;
}

/* --- names --- */

/* Returns true when a TCP socket in |e|'s state has a peer: not while the
 * connect is in flight, not after it failed. */
static bool opt_has_peer(const rudp_fd_entry *e) {
    rudp_slot *slot = rudp_slot_of(&e->ref);
    uint32_t st;

    if (slot == NULL)
        return true;
    st = rudp_slot_state(slot);
    return st == RUDP_SLOT_CONNECTED || st == RUDP_SLOT_DONE;
}

/* ioctl(2): on a rerouted connection SIOCOUTQNSD (TCP's bytes not yet
 * sent) is answered as SIOCOUTQ: the bytes the engine has not taken yet.
 * Everything else is the AF_UNIX socket's own answer. */
RUDP_EXPORT int ioctl(int fd, unsigned long req, ...) {
    va_list ap;
    void *arg;

    va_start(ap, req);
    arg = va_arg(ap, void *);
    va_end(ap);
    if (req == SIOCOUTQNSD && rudp_active() && rudp_fd_kind_of(fd) == RUDP_FD_CONN)
        req = SIOCOUTQ;
    return RUDP_REAL(ioctl)(fd, req, arg);
}

RUDP_EXPORT int getpeername(int fd, struct sockaddr *addr, socklen_t *len) {
    rudp_fd_entry *e;
    uint32_t kind;

    if (!rudp_active())
        return RUDP_REAL(getpeername)(fd, addr, len);
    e = rudp_fd_peek(fd);
    kind = rudp_fd_kind(e);
    if (kind != RUDP_FD_CONN && kind != RUDP_FD_LISTENER)
        return RUDP_REAL(getpeername)(fd, addr, len);
    if (kind == RUDP_FD_LISTENER || !opt_has_peer(e)) {
        errno = ENOTCONN;
        return -1;
    }
    return rudp_addr_copy_out(addr, len, &e->peer, e->peer_len);
}

RUDP_EXPORT int getsockname(int fd, struct sockaddr *addr, socklen_t *len) {
    struct sockaddr_storage any;
    rudp_fd_entry *e;
    uint32_t kind;

    if (!rudp_active())
        return RUDP_REAL(getsockname)(fd, addr, len);
    e = rudp_fd_peek(fd);
    kind = rudp_fd_kind(e);
    if (kind != RUDP_FD_CONN && kind != RUDP_FD_LISTENER)
        return RUDP_REAL(getsockname)(fd, addr, len);
    if (e->local_len > 0)
        return rudp_addr_copy_out(addr, len, &e->local, e->local_len);
    memset(&any, 0, sizeof(any));
    any.ss_family = (sa_family_t)e->family;
    return rudp_addr_copy_out(addr, len, &any, rudp_addr_size(e->family));
}
