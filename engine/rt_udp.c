/*
 * rt_udp.c — the engine's UDP sockets: batched I/O, the backlog of a full
 * socket, and the connection-ID table of a listener's socket.
 *
 * A client session has a UDP socket of its own, connected to the server:
 * an ICMP port-unreachable then surfaces as ECONNREFUSED at once.  A
 * listener has one socket bound to the TCP listener's address and port for
 * all its sessions; datagrams are routed by destination connection ID
 * through a hash table (open addressing, linear probing, backward-shift
 * deletion; it doubles when half full and halves when an eighth full), and
 * a datagram for an unknown ID goes to the listener (rt_listen.c), which
 * opens a session or answers with a stateless reset.
 *
 * Receiving: recvmmsg reads up to RT_BATCH datagrams a call, eight calls a
 * wake-up at most.  Sending: a session's datagrams are written by the core
 * into RT_BATCH buffers and sent with one sendmmsg.
 *
 * Segmentation offload: where the kernel has it (UDP_SEGMENT, Linux 4.18),
 * a run of datagrams to one address, all of one size but the last, which
 * may be shorter, goes as one message the kernel cuts up (at most
 * RT_GSO_MAX_SEGS datagrams, RT_GSO_MAX_BYTES bytes): one trip through the
 * stack instead of one per datagram.  A socket that receives with UDP_GRO
 * gets such runs back whole, with their segment size, and splits them.  A
 * message the kernel refuses is sent again datagram by datagram, and an
 * error that says the offload itself is missing (EIO: no checksum offload
 * on the device) turns it off for the socket.  The receive and send
 * buffers (2 MiB each) go back to the system at a tick after one that saw
 * no datagram (rt_udp_trim).  When the socket is
 * full (EAGAIN), the datagrams it did not take are kept, in order, in the
 * socket's backlog, and nothing new is written for any session on that
 * socket until the backlog has gone out: local congestion must not look
 * like path loss to recovery.  The socket is then watched for writability,
 * and the sessions on it are touched once it drains.  Any other error of a
 * single datagram (EMSGSIZE, ENOBUFS from a full queueing discipline) loses
 * that datagram, as the network would, and recovery resends its frames.
 *
 * A listener bound to a wildcard address asks the kernel which of the
 * host's addresses each datagram was sent to (IP_PKTINFO, IPV6_PKTINFO)
 * and sends its replies from that address: a client's connected socket
 * drops datagrams from any other, so without it a server could only be
 * reached through the address its route back happens to choose.
 */
#include "rt.h"

#include <errno.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define RT_BATCH 32
#define RT_MAX_DGRAM 65536
#define RT_SOCKBUF (4 * 1024 * 1024)
#define RT_CID_MIN_CAP 16u
#define RT_PAGE 4096
#define RT_CTL_LEN 96      /* an IP_PKTINFO or IPV6_PKTINFO message and a segment size */
#define RT_GSO_MAX_SEGS 64 /* the kernel's UDP_MAX_SEGMENTS */
#define RT_GSO_MAX_BYTES 65000 /* a message's payload: within an IP datagram's 64 KiB */

/* One connection ID of the table; rs == NULL marks a free entry. */
typedef struct udp_cid {
    uint64_t cid;
    rt_sess *rs;
} udp_cid;

/* A datagram the full socket did not take. */
typedef struct udp_held {
    uint8_t *data;
    size_t len;
    struct sockaddr_storage to;
    socklen_t tolen;
    rt_dst src;
} udp_held;

/* Control messages of a datagram or a run: its source address, its
 * segment size. */
typedef union udp_ctl {
    struct cmsghdr align;
    uint8_t buf[RT_CTL_LEN];
} udp_ctl;

struct rt_udp {
    rt_engine *eng;
    int fd;
    ev_io rio;
    ev_io wio;             /* while the backlog waits for room */
    rt_sess *session;      /* a client's socket: its one session */
    rt_listener *listener; /* a listener's socket */
    struct sockaddr_storage local;
    socklen_t local_len;
    bool pktinfo;            /* bound to a wildcard address: learns each destination */
    bool gso;                /* runs of datagrams go as one message (UDP_SEGMENT) */
    bool gro;                /* runs may arrive as one (UDP_GRO) */
    udp_cid *cids;           /* listener: connection ID -> session */
    uint32_t ncids, cidcap;  /* entries used, capacity (a power of two) */
    udp_held held[RT_BATCH]; /* the backlog, oldest first */
    uint32_t nheld;
};

/* Buffers of the engine thread (one engine per process), on pages of
 * their own: rt_udp_trim gives them back while the engine is idle. */
static uint8_t rxbuf[RT_BATCH][RT_MAX_DGRAM] __attribute__((aligned(RT_PAGE)));
static udp_ctl rxctl[RT_BATCH];
static uint8_t txbuf[RT_BATCH][RT_MAX_DGRAM] __attribute__((aligned(RT_PAGE)));
static uint64_t udp_batches; /* batches received or written so far */
static uint64_t udp_trimmed; /* udp_batches when the buffers were last given back */

/* --- source and destination addresses --- */

/* Writes into |c| the control message that sends a datagram from |src|.
 * Returns its length, 0 when |src| is not known. */
static size_t ctl_from(udp_ctl *c, const rt_dst *src) {
    if (!src || !src->family)
        return 0;
    memset(c, 0, sizeof(*c));
    struct cmsghdr *cm = &c->align;
    if (src->family == AF_INET) {
        struct in_pktinfo pi = {.ipi_spec_dst = src->addr.v4};
        cm->cmsg_level = IPPROTO_IP;
        cm->cmsg_type = IP_PKTINFO;
        cm->cmsg_len = CMSG_LEN(sizeof(pi));
        memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
        return CMSG_SPACE(sizeof(pi));
    }
    struct in6_pktinfo pi6 = {.ipi6_addr = src->addr.v6};
    cm->cmsg_level = IPPROTO_IPV6;
    cm->cmsg_type = IPV6_PKTINFO;
    cm->cmsg_len = CMSG_LEN(sizeof(pi6));
    memcpy(CMSG_DATA(cm), &pi6, sizeof(pi6));
    return CMSG_SPACE(sizeof(pi6));
}

/* Appends to the |used| bytes of |c| the control message that makes the
 * kernel cut a message into datagrams of |seg| bytes.  Returns the length
 * of both. */
static size_t ctl_segment(udp_ctl *c, size_t used, uint16_t seg) {
    struct cmsghdr *cm = (struct cmsghdr *)(c->buf + used);
    memset(cm, 0, CMSG_SPACE(sizeof(seg)));
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(seg));
    memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
    return used + CMSG_SPACE(sizeof(seg));
}

/* Reads the destination address of a received datagram from its control
 * messages into |to| (family 0 when there is none), and the size of the
 * datagrams a coalesced run holds into *seg (0: one datagram). */
static void ctl_to(struct msghdr *mh, rt_dst *to, size_t *seg) {
    to->family = 0;
    *seg = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
            int size;
            memcpy(&size, CMSG_DATA(cm), sizeof(size));
            *seg = size > 0 ? (size_t)size : 0;
        } else if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
            to->family = AF_INET;
            to->addr.v4 = pi.ipi_spec_dst;
        } else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo pi6;
            memcpy(&pi6, CMSG_DATA(cm), sizeof(pi6));
            to->family = AF_INET6;
            to->addr.v6 = pi6.ipi6_addr;
        }
    }
}

/* --- the connection-ID table --- */

/* Returns the home slot of |cid| in a table of |cap| entries. */
static uint32_t cid_home(uint64_t cid, uint32_t cap) {
    return (uint32_t)((cid * 0x9e3779b97f4a7c15ull) >> 32) & (cap - 1);
}

/* Returns the entry holding |cid|, or the free entry where it would go. */
static udp_cid *cid_slot(const rt_udp *u, uint64_t cid) {
    uint32_t i = cid_home(cid, u->cidcap);
    while (u->cids[i].rs && u->cids[i].cid != cid)
        i = (i + 1) & (u->cidcap - 1);
    return &u->cids[i];
}

/* Returns the session that owns |cid|, or NULL. */
static rt_sess *cid_find(const rt_udp *u, uint64_t cid) {
    return u->cidcap ? cid_slot(u, cid)->rs : NULL;
}

/* Moves the table to |cap| entries.  Returns RUDP_OK or RUDP_ERR_NOMEM. */
static int cid_resize(rt_udp *u, uint32_t cap) {
    udp_cid *old = u->cids;
    uint32_t oldcap = u->cidcap;
    u->cids = calloc(cap, sizeof(*u->cids));
    if (!u->cids) {
        u->cids = old;
        return RUDP_ERR_NOMEM;
    }
    u->cidcap = cap;
    for (uint32_t i = 0; i < oldcap; i++)
        if (old[i].rs)
            *cid_slot(u, old[i].cid) = old[i];
    free(old);
    return RUDP_OK;
}

int rt_udp_cid_add(rt_udp *u, uint64_t cid, rt_sess *rs) {
    if ((u->ncids + 1) * 2 > u->cidcap) {
        uint32_t cap = u->cidcap ? u->cidcap * 2 : RT_CID_MIN_CAP;
        if (cid_resize(u, cap) != RUDP_OK)
            return RUDP_ERR_NOMEM;
    }
    udp_cid *c = cid_slot(u, cid);
    if (!c->rs)
        u->ncids++;
    c->cid = cid;
    c->rs = rs;
    return RUDP_OK;
}

void rt_udp_cid_del(rt_udp *u, uint64_t cid) {
    if (!u->cidcap)
        return;
    udp_cid *c = cid_slot(u, cid);
    if (!c->rs)
        return;
    uint32_t mask = u->cidcap - 1, hole = (uint32_t)(c - u->cids);
    c->rs = NULL;
    u->ncids--;
    /* Backward shift: pull later entries of the run into the hole when
     * their home does not lie cyclically in (hole, j]. */
    for (uint32_t j = (hole + 1) & mask; u->cids[j].rs; j = (j + 1) & mask) {
        uint32_t home = cid_home(u->cids[j].cid, u->cidcap);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            u->cids[hole] = u->cids[j];
            u->cids[j].rs = NULL;
            hole = j;
        }
    }
    if (u->cidcap > RT_CID_MIN_CAP && u->ncids * 8 <= u->cidcap)
        cid_resize(u, u->cidcap / 2); /* after a flood, the table shrinks back */
}

/* --- the backlog of a full socket --- */

/* Keeps a copy of datagram |iov| of message |m|, to be sent from |src|.
 * Returns false when it does not fit (it is lost, as on a full link:
 * recovery resends). */
static bool held_one(rt_udp *u, const struct msghdr *m, const struct iovec *iov,
                     const rt_dst *src) {
    udp_held *h = &u->held[u->nheld];
    if (u->nheld == RT_BATCH || !(h->data = malloc(iov->iov_len)))
        return false;
    h->len = iov->iov_len;
    memcpy(h->data, iov->iov_base, h->len);
    h->tolen = m->msg_namelen;
    if (h->tolen)
        memcpy(&h->to, m->msg_name, h->tolen);
    h->src = src ? *src : (rt_dst){0};
    u->nheld++;
    return true;
}

/* Keeps copies of the datagrams of the |n| messages the socket did not
 * take (a run's one by one).  No batch holds more than RT_BATCH. */
static void held_add(rt_udp *u, const struct mmsghdr *m, uint32_t n, const rt_dst *src) {
    for (uint32_t k = 0; k < n; k++)
        for (size_t i = 0; i < m[k].msg_hdr.msg_iovlen; i++)
            if (!held_one(u, &m[k].msg_hdr, &m[k].msg_hdr.msg_iov[i], src))
                return;
}

/* Forgets the oldest |n| held datagrams (sent or lost). */
static void held_drop(rt_udp *u, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        free(u->held[i].data);
    memmove(u->held, u->held + n, (u->nheld - n) * sizeof(u->held[0]));
    u->nheld -= n;
}

/* Points message |m| at one datagram (|to| NULL: a connected socket) and
 * its control messages (|ctllen| 0: none). */
static void msg_set(struct mmsghdr *m, struct iovec *iov, void *data, size_t len, void *to,
                    socklen_t tolen, void *ctl, size_t ctllen) {
    *iov = (struct iovec){.iov_base = data, .iov_len = len};
    memset(m, 0, sizeof(*m));
    m->msg_hdr.msg_iov = iov;
    m->msg_hdr.msg_iovlen = 1;
    m->msg_hdr.msg_name = to;
    m->msg_hdr.msg_namelen = to ? tolen : 0;
    m->msg_hdr.msg_control = ctllen ? ctl : NULL;
    m->msg_hdr.msg_controllen = ctllen;
}

/* Returns true for the errors a connected client socket reports from an
 * ICMP message: the path, not the datagram. */
static bool udp_path_errno(const rt_udp *u, int err) {
    return u->session && (err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH);
}

static uint32_t udp_sendmmsg(rt_udp *u, struct mmsghdr *m, uint32_t n, int *err);

/* The kernel refused run |m| with |err|: its datagrams go one by one, from
 * the source its control messages name (what the socket cannot take now
 * is lost, as on a full link), and an error that says the offload is
 * missing turns it off for the socket. */
static void udp_gso_refused(rt_udp *u, const struct mmsghdr *m, int err) {
    if (u->gso && (err == EIO || err == EOPNOTSUPP || err == ENOPROTOOPT)) {
        rt_log(2, "UDP segmentation offload refused (%s): off for this socket",
               strerror(err));
        u->gso = false;
    }
    struct mmsghdr one[RT_GSO_MAX_SEGS];
    size_t n = m->msg_hdr.msg_iovlen;
    size_t src_len = m->msg_hdr.msg_controllen - CMSG_SPACE(sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) {
        one[i] = *m;
        one[i].msg_hdr.msg_iov = &m->msg_hdr.msg_iov[i];
        one[i].msg_hdr.msg_iovlen = 1;
        one[i].msg_hdr.msg_control = src_len ? m->msg_hdr.msg_control : NULL;
        one[i].msg_hdr.msg_controllen = src_len;
    }
    int path_err;
    udp_sendmmsg(u, one, (uint32_t)n, &path_err);
}

/* Sends messages [0, n) in order.  Returns how many the socket took before
 * it was full, with *err 0; or with *err set to a path error.  A message
 * refused for a reason of its own is counted as sent (lost); a refused run
 * goes again datagram by datagram. */
static uint32_t udp_sendmmsg(rt_udp *u, struct mmsghdr *m, uint32_t n, int *err) {
    uint32_t done = 0;
    *err = 0;
    while (done < n) {
        int r = rt_sys.sendmmsg(u->fd, m + done, n - done, MSG_DONTWAIT);
        if (r > 0) {
            done += (uint32_t)r;
            continue;
        }
        int e = r < 0 ? errno : EAGAIN;
        if (e == EINTR)
            continue;
        if (e == EAGAIN || e == EWOULDBLOCK)
            break;
        if (udp_path_errno(u, e)) {
            *err = e;
            break;
        }
        if (m[done].msg_hdr.msg_iovlen > 1)
            udp_gso_refused(u, &m[done], e);
        else
            rt_log(3, "datagram of %zu bytes not sent: %s",
                   m[done].msg_hdr.msg_iov[0].iov_len, strerror(e));
        done++;
    }
    return done;
}

/* Sends the backlog.  Returns RUDP_OK once it is empty, RUDP_ERR_WOULDBLOCK
 * while the socket is still full, or RUDP_ERR_SYS(path error). */
static int held_flush(rt_udp *u) {
    struct mmsghdr m[RT_BATCH];
    struct iovec iov[RT_BATCH];
    udp_ctl ctl[RT_BATCH];
    for (uint32_t i = 0; i < u->nheld; i++) {
        udp_held *h = &u->held[i];
        msg_set(&m[i], &iov[i], h->data, h->len, h->tolen ? &h->to : NULL, h->tolen,
                &ctl[i], ctl_from(&ctl[i], &h->src));
    }
    int err;
    uint32_t sent = udp_sendmmsg(u, m, u->nheld, &err);
    held_drop(u, err ? u->nheld : sent);
    if (err)
        return RUDP_ERR_SYS(err);
    return u->nheld ? RUDP_ERR_WOULDBLOCK : RUDP_OK;
}

/* ev_io callback: the full socket has room again. */
static void udp_on_writable(struct ev_loop *loop, ev_io *w, int revents) {
    rt_udp *u = w->data;
    int rv = held_flush(u);
    if (rv == RUDP_ERR_WOULDBLOCK)
        return;
    ev_io_stop(loop, w);
    if (u->session && rv != RUDP_OK)
        rt_sess_path_error(u->session, RUDP_ERR_SYS_ERRNO(rv));
    else if (u->session)
        rt_sess_touch(u->session);
    else
        rt_sess_touch_on(u->eng, u);
}

/* Sends a batch of |n| messages from |src|; what the socket cannot take
 * now goes to the backlog.  Returns as held_flush does. */
static int udp_send_batch(rt_udp *u, struct mmsghdr *m, uint32_t n, const rt_dst *src) {
    int err;
    uint32_t sent = udp_sendmmsg(u, m, n, &err);
    if (err)
        return RUDP_ERR_SYS(err);
    if (sent == n)
        return RUDP_OK;
    held_add(u, m + sent, n - sent, src);
    ev_io_start(u->eng->loop, &u->wio);
    rt_log(3, "UDP socket full: %u datagrams wait", u->nheld);
    return RUDP_ERR_WOULDBLOCK;
}

/* --- sending --- */

/* Lets session |s| write up to RT_BATCH datagrams into the send buffers
 * and points |m| at them, each with the control message |ctl| of |ctllen|
 * bytes.  Returns how many. */
static uint32_t udp_fill(rt_udp *u, rudp_session *s, struct mmsghdr *m, struct iovec *iov,
                         rudp_addr *to, udp_ctl *ctl, size_t ctllen, rudp_tstamp now) {
    uint32_t n = 0;
    udp_batches++;
    while (n < RT_BATCH) {
        ssize_t len = rudp_session_write_pkt(s, txbuf[n], RT_MAX_DGRAM, &to[n], now);
        if (len <= 0)
            break;
        bool named = u->listener != NULL; /* a client's socket is connected */
        msg_set(&m[n], &iov[n], txbuf[n], (size_t)len, named ? to[n].bytes : NULL,
                to[n].len, ctl, ctllen);
        n++;
    }
    return n;
}

/* Returns true when messages |a| and |b| go to the same address. */
static bool msg_same_dest(const struct msghdr *a, const struct msghdr *b) {
    return a->msg_namelen == b->msg_namelen &&
           (a->msg_namelen == 0 || memcmp(a->msg_name, b->msg_name, a->msg_namelen) == 0);
}

/* Returns the end of the run of datagrams of |m| that starts at |i| (of
 * |n|): to one address, all of the first one's size but the last, which
 * may be shorter. */
static uint32_t gso_run_end(const struct mmsghdr *m, uint32_t i, uint32_t n) {
    size_t seg = m[i].msg_hdr.msg_iov[0].iov_len, total = seg;
    uint32_t j = i + 1;
    while (j < n && j - i < RT_GSO_MAX_SEGS) {
        size_t len = m[j].msg_hdr.msg_iov[0].iov_len;
        if (len > seg || total + len > RT_GSO_MAX_BYTES ||
            !msg_same_dest(&m[i].msg_hdr, &m[j].msg_hdr))
            break;
        total += len;
        j++;
        if (len < seg)
            break;
    }
    return j;
}

/* Groups the |n| datagrams of |m| (each with one iovec, the iovecs
 * consecutive) into the messages of |g|: a run becomes one message with
 * its segment size (and source) in |gctl|.  Returns how many. */
static uint32_t gso_group(const rt_udp *u, const struct mmsghdr *m, uint32_t n,
                          struct mmsghdr *g, udp_ctl *gctl, const rt_dst *src) {
    uint32_t ng = 0;
    for (uint32_t i = 0, j; i < n; i = j, ng++) {
        j = u->gso ? gso_run_end(m, i, n) : i + 1;
        g[ng] = m[i];
        if (j - i == 1)
            continue;
        g[ng].msg_hdr.msg_iovlen = j - i;
        size_t used = u->pktinfo ? ctl_from(&gctl[ng], src) : 0;
        uint16_t seg = (uint16_t)m[i].msg_hdr.msg_iov[0].iov_len;
        g[ng].msg_hdr.msg_control = gctl[ng].buf;
        g[ng].msg_hdr.msg_controllen = ctl_segment(&gctl[ng], used, seg);
    }
    return ng;
}

int rt_udp_send_session(rt_udp *u, rudp_session *s, const rt_dst *src, rudp_tstamp now) {
    if (u->nheld)
        return RUDP_ERR_WOULDBLOCK; /* the backlog goes first, when writable */
    struct mmsghdr m[RT_BATCH], g[RT_BATCH];
    struct iovec iov[RT_BATCH];
    rudp_addr to[RT_BATCH];
    udp_ctl ctl, gctl[RT_BATCH];
    size_t ctllen = u->pktinfo ? ctl_from(&ctl, src) : 0;
    for (int rounds = 0; rounds < 64; rounds++) {
        uint32_t n = udp_fill(u, s, m, iov, to, &ctl, ctllen, now);
        uint32_t ng = n ? gso_group(u, m, n, g, gctl, src) : 0;
        int rv = ng ? udp_send_batch(u, g, ng, src) : RUDP_OK;
        if (rv != RUDP_OK || n < RT_BATCH)
            return rv;
    }
    return RUDP_OK;
}

void rt_udp_send_reply(rt_udp *u, const uint8_t *buf, size_t n,
                       const struct sockaddr_storage *to, socklen_t tolen,
                       const rt_dst *src) {
    if (n == 0 || u->nheld)
        return;
    struct mmsghdr m;
    struct iovec iov;
    udp_ctl ctl;
    msg_set(&m, &iov, (void *)buf, n, (void *)to, tolen, &ctl,
            u->pktinfo ? ctl_from(&ctl, src) : 0);
    int err;
    udp_sendmmsg(u, &m, 1, &err);
}

/* --- receiving --- */

/* Routes one datagram, sent to |to|: a client socket's to its session, a
 * listener's by connection ID. */
static void udp_deliver(rt_udp *u, uint8_t *p, size_t len,
                        const struct sockaddr_storage *from, socklen_t fromlen,
                        const rt_dst *to, rudp_tstamp now) {
    if (u->session) {
        rt_sess_input(u->session, p, len, from, fromlen, NULL, now);
        return;
    }
    uint64_t cid;
    if (!u->listener || rudp_packet_peek_cid(p, len, &cid) != RUDP_OK)
        return;
    rt_sess *rs = cid_find(u, cid);
    if (rs)
        rt_sess_input(rs, p, len, from, fromlen, to, now);
    else
        rt_listen_on_unknown(u->listener, cid, p, len, from, fromlen, to, now);
}

/* Delivers a received message: one datagram, or a coalesced run of
 * |seg|-byte ones (the last may be shorter). */
static void udp_deliver_run(rt_udp *u, uint8_t *p, size_t len, size_t seg,
                            const struct sockaddr_storage *from, socklen_t fromlen,
                            const rt_dst *to, rudp_tstamp now) {
    if (seg == 0 || seg >= len) {
        udp_deliver(u, p, len, from, fromlen, to, now);
        return;
    }
    for (size_t off = 0; off < len; off += seg)
        udp_deliver(u, p + off, len - off < seg ? len - off : seg, from, fromlen, to, now);
}

/* Receives up to RT_BATCH messages.  Returns how many, or -1 (errno set). */
static int udp_recv_batch(rt_udp *u, struct sockaddr_storage *from, struct mmsghdr *m,
                          struct iovec *iov) {
    for (int i = 0; i < RT_BATCH; i++)
        msg_set(&m[i], &iov[i], rxbuf[i], RT_MAX_DGRAM, &from[i], sizeof(from[i]),
                &rxctl[i], u->pktinfo || u->gro ? sizeof(rxctl[i]) : 0);
    udp_batches++;
    return rt_sys.recvmmsg(u->fd, m, RT_BATCH, MSG_DONTWAIT, NULL);
}

size_t rt_udp_trim(void) {
    static uint64_t seen;
    bool idle = udp_batches == seen;
    seen = udp_batches;
    if (!idle || udp_trimmed == udp_batches)
        return 0;
    udp_trimmed = udp_batches;
    madvise(rxbuf, sizeof(rxbuf), MADV_DONTNEED);
    madvise(txbuf, sizeof(txbuf), MADV_DONTNEED);
    return sizeof(rxbuf) + sizeof(txbuf);
}

/* ev_io callback: datagrams (or an ICMP error) arrived. */
static void udp_on_readable(struct ev_loop *loop, ev_io *w, int revents) {
    rt_udp *u = w->data;
    struct mmsghdr m[RT_BATCH];
    struct iovec iov[RT_BATCH];
    struct sockaddr_storage from[RT_BATCH];
    for (int rounds = 0; rounds < 8; rounds++) {
        int n = udp_recv_batch(u, from, m, iov);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && udp_path_errno(u, errno))
            rt_sess_path_error(u->session, errno);
        if (n < 0)
            return;
        rudp_tstamp now = rt_now();
        for (int i = 0; i < n; i++) {
            rt_dst to;
            size_t seg;
            ctl_to(&m[i].msg_hdr, &to, &seg);
            udp_deliver_run(u, rxbuf[i], m[i].msg_len, seg, &from[i],
                            m[i].msg_hdr.msg_namelen, &to, now);
        }
        if (n < RT_BATCH)
            return;
    }
}

/* --- sockets --- */

/* Gives a UDP socket room for a few bandwidth-delay products of bursts:
 * the default 208 KiB overflows at loopback rates and shows up as loss.
 * The forcing variants exceed net.core.[rw]mem_max when we may. */
static void udp_tune(int fd) {
    int size = RT_SOCKBUF;
    if (rt_sys.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
        rt_sys.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    if (rt_sys.setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
        rt_sys.setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
}

/* Uses segmentation offload where the kernel has it (UDP_SEGMENT reads
 * back), and asks for coalesced runs on receive. */
static void udp_offload(rt_udp *u) {
    int seg = 0, one = 1;
    socklen_t len = sizeof(seg);
    u->gso = rt_sys.getsockopt(u->fd, SOL_UDP, UDP_SEGMENT, &seg, &len) == 0;
    u->gro = rt_sys.setsockopt(u->fd, SOL_UDP, UDP_GRO, &one, sizeof(one)) == 0;
}

/* Creates the record of UDP socket |fd| and starts reading it. */
static rt_udp *udp_new(rt_engine *e, int fd) {
    rt_udp *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->eng = e;
    u->fd = fd;
    udp_tune(fd);
    udp_offload(u);
    u->local_len = sizeof(u->local);
    rt_sys.getsockname(fd, (struct sockaddr *)&u->local, &u->local_len);
    ev_io_init(&u->rio, udp_on_readable, fd, EV_READ);
    u->rio.data = u;
    ev_io_init(&u->wio, udp_on_writable, fd, EV_WRITE);
    u->wio.data = u;
    ev_io_start(e->loop, &u->rio);
    return u;
}

int rt_udp_open_connected(const struct sockaddr_storage *dst, socklen_t len) {
    int fd = rt_sys.socket(dst->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || rt_sys.connect(fd, (const struct sockaddr *)dst, len) < 0) {
        int err = rt_err();
        if (fd >= 0)
            rt_sys.close(fd);
        return err;
    }
    return rt_fd_high(fd);
}

rt_udp *rt_udp_client(rt_engine *e, int fd) {
    rt_udp *u = udp_new(e, fd);
    if (!u)
        rt_sys.close(fd);
    return u;
}

/* Returns true when |a| is a wildcard address (0.0.0.0 or ::). */
static bool udp_wildcard(const struct sockaddr_storage *a) {
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)a)->sin6_addr);
}

/* Asks the kernel for each datagram's destination address.  Returns true
 * when it will tell. */
static bool udp_want_pktinfo(int fd, int family) {
    int one = 1;
    if (family == AF_INET)
        return rt_sys.setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) == 0;
    return rt_sys.setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one)) == 0;
}

rt_udp *rt_udp_listener(rt_engine *e, int fd, rt_listener *l) {
    rt_udp *u = udp_new(e, fd);
    if (!u) {
        rt_sys.close(fd);
        return NULL;
    }
    u->listener = l;
    if (udp_wildcard(&u->local))
        u->pktinfo = udp_want_pktinfo(fd, u->local.ss_family);
    return u;
}

void rt_udp_set_session(rt_udp *u, rt_sess *rs) {
    u->session = rs;
}

void rt_udp_free(rt_udp *u) {
    ev_io_stop(u->eng->loop, &u->rio);
    ev_io_stop(u->eng->loop, &u->wio);
    held_drop(u, u->nheld);
    rt_sys.close(u->fd);
    free(u->cids);
    free(u);
}

int rt_udp_fd(const rt_udp *u) {
    return u->fd;
}

const struct sockaddr_storage *rt_udp_local(const rt_udp *u) {
    return &u->local;
}

uint32_t rt_udp_path_ceiling(int fd, int family) {
    int mtu = 0;
    socklen_t len = sizeof(mtu);
    int rv = family == AF_INET6 ? rt_sys.getsockopt(fd, IPPROTO_IPV6, IPV6_MTU, &mtu, &len)
                                : rt_sys.getsockopt(fd, IPPROTO_IP, IP_MTU, &mtu, &len);
    int overhead = family == AF_INET6 ? 48 : 28;
    if (rv < 0 || mtu <= overhead)
        return 0;
    uint32_t most = (uint32_t)(mtu - overhead);
    return most < RT_MAX_DGRAM ? most : RT_MAX_DGRAM - 1;
}
