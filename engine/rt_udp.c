/*
 * rt_udp.c — UDP sockets and the sessions they carry.
 *
 * A client process has one connected UDP socket per session, one session
 * per server address (a listening port): connecting the socket makes an
 * ICMP port-unreachable surface as ECONNREFUSED at once, and lets new
 * streams reuse the warm session with no round trip.  A warm session with
 * no stream for half the idle timeout is closed with GoAway.
 *
 * A listener has one UDP socket bound to the TCP listener's address and
 * port; datagrams are demultiplexed by destination connection ID, a
 * session SYN for an unknown ID creates a session, and any other datagram
 * for an unknown ID is answered with a stateless reset (so a client whose
 * server restarted learns it at once).
 *
 * I/O is batched: recvmmsg reads up to RT_BATCH datagrams a call, and each
 * session's output is written with sendmmsg.  Work is gathered per loop
 * turn: anything that changes a session marks it dirty, and
 * rt_flush_dirty() — run before the loop sleeps — handles its events,
 * sends what it may and re-arms its timer to rudp_session_deadline().
 */
#include "rt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RT_BATCH 32
#define RT_MAX_DGRAM 65536
#define RT_PUBLISH_NS RUDP_MS(100)
#define RT_SOCKBUF (4 * 1024 * 1024)
/* A stream waiting for room in a full listener queue is tried again every
 * RT_ACCEPT_RETRY_S, and refused after RT_ACCEPT_WAIT_NS (kernel TCP's
 * client gives up a SYN nobody answers after about two minutes). */
#define RT_ACCEPT_RETRY_S 0.01
#define RT_ACCEPT_WAIT_NS RUDP_SEC(60)

static uint8_t rxbuf[RT_BATCH][RT_MAX_DGRAM]; /* engine thread only */
static uint8_t txbuf[RT_BATCH][RT_MAX_DGRAM];

/* Fills an rudp_addr from a socket address. */
static void addr_to_rudp(rudp_addr *out, const struct sockaddr_storage *a, socklen_t len) {
    memset(out, 0, sizeof(*out));
    if (len > sizeof(out->bytes))
        len = sizeof(out->bytes);
    out->len = len;
    memcpy(out->bytes, a, len);
}

/* Rewrites a v4-mapped IPv6 address as IPv4 (the UDP socket's family). */
static void addr_unmap(struct sockaddr_storage *a, socklen_t *len) {
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)a;
    if (a->ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr))
        return;
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = v6->sin6_port};
    memcpy(&v4.sin_addr, &v6->sin6_addr.s6_addr[12], 4);
    memset(a, 0, sizeof(*a));
    memcpy(a, &v4, sizeof(v4));
    *len = sizeof(v4);
}

/* Returns true when two socket addresses name the same IP and port. */
static bool addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

void rt_sess_touch(rt_sess *rs) {
    if (rs->dirty)
        return;
    rs->dirty = true;
    rs->dirty_next = rs->eng->dirty;
    rs->eng->dirty = rs;
}

/* --- timers --- */

static void rt_sess_on_timer(struct ev_loop *loop, ev_timer *w, int revents) {
    rt_sess *rs = w->data;
    rudp_session_handle_timeout(rs->s, rt_now());
    rt_sess_touch(rs);
}

/* Re-arms the session's timer to its next deadline. */
static void rt_sess_arm(rt_sess *rs, rudp_tstamp now) {
    rudp_tstamp d = rudp_session_deadline(rs->s);
    /* A skipped copy of the statistics is made once it is due, so what
     * TCP_INFO reports catches up even when the session then goes quiet. */
    if (rs->publish_pending && rs->last_publish + RT_PUBLISH_NS < d)
        d = rs->last_publish + RT_PUBLISH_NS;
    ev_timer_stop(rs->eng->loop, &rs->timer);
    if (d == RUDP_TSTAMP_NEVER)
        return;
    double after = d > now ? (double)(d - now) / 1e9 : 0.0;
    ev_timer_set(&rs->timer, after, 0.0);
    ev_timer_start(rs->eng->loop, &rs->timer);
}

/* --- sessions --- */

/* Creates the runtime record of session |s| carried by |u|. */
static rt_sess *rt_sess_new(rt_udp *u, rudp_session *s, const struct sockaddr_storage *peer,
                            socklen_t peer_len) {
    rt_sess *rs = calloc(1, sizeof(*rs));
    if (!rs)
        return NULL;
    rs->eng = u->eng;
    rs->udp = u;
    rs->s = s;
    rs->peer = *peer;
    rs->peer_len = peer_len;
    rs->idle_since = RUDP_TSTAMP_NEVER;
    ev_timer_init(&rs->timer, rt_sess_on_timer, 0.0, 0.0);
    rs->timer.data = rs;
    rs->next = u->sessions;
    u->sessions = rs;
    return rs;
}

/* Frees a UDP endpoint that carries no session any more. */
static void rt_udp_free(rt_udp *u) {
    rt_engine *e = u->eng;
    for (rt_udp **pp = &e->udps; *pp; pp = &(*pp)->next)
        if (*pp == u) {
            *pp = u->next;
            break;
        }
    ev_io_stop(e->loop, &u->io);
    close(u->fd);
    free(u);
}

/* --- the warm table: servers with an established client session --- */

/* Adds (|on|) or removes the peer of client session |rs| in e->warm. */
static void rt_warm_mark(rt_sess *rs, bool on) {
    rt_engine *e = rs->eng;
    if (rs->udp->is_listener)
        return;
    pthread_mutex_lock(&e->lock);
    unsigned i = 0;
    while (i < e->nwarm && !addr_same(&e->warm[i], &rs->peer))
        i++;
    if (on && i == e->nwarm && e->nwarm < RT_WARM_MAX)
        e->warm[e->nwarm++] = rs->peer;
    else if (!on && i < e->nwarm)
        e->warm[i] = e->warm[--e->nwarm];
    pthread_mutex_unlock(&e->lock);
}

bool rt_warm_has(rt_engine *e, const struct sockaddr_storage *dst, socklen_t len) {
    struct sockaddr_storage a = *dst;
    bool found = false;
    addr_unmap(&a, &len);
    pthread_mutex_lock(&e->lock);
    for (unsigned i = 0; i < e->nwarm && !found; i++)
        found = addr_same(&e->warm[i], &a);
    pthread_mutex_unlock(&e->lock);
    return found;
}

/* --- streams waiting for a full listener queue --- */

/* Forgets the waiting streams of session |rs| (it is going away). */
static void rt_wait_drop_sess(rt_udp *u, rt_sess *rs) {
    rt_wait **pp = &u->waiting;
    while (*pp) {
        rt_wait *w = *pp;
        if (w->rs == rs) {
            *pp = w->next;
            rs->nwaiting--;
            free(w);
        } else {
            pp = &w->next;
        }
    }
    u->waiting_tail = &u->waiting;
    for (rt_wait *w = u->waiting; w; w = w->next)
        u->waiting_tail = &w->next;
    if (!u->waiting)
        ev_timer_stop(u->eng->loop, &u->accept_retry);
}

/* Tries the waiting streams of listener |u| in the order they came, until
 * the queue is full again; refuses those that waited too long or whose
 * listener closed, and lets go of those the peer reset meanwhile.  A
 * stream whose session has ended since (which resets its streams) is
 * still accepted: the bytes it acknowledged are the program's, as those of
 * a TCP connection in the accept queue whose client has gone; the bridge
 * hands them over, then EOF or the session's error. */
static void rt_wait_retry(struct ev_loop *loop, ev_timer *t, int revents) {
    rt_udp *u = t->data;
    rudp_tstamp now = rt_now();
    while (u->waiting) {
        rt_wait *w = u->waiting;
        rudp_stream_info si;
        if (rudp_stream_get_info(w->rs->s, w->sid, &si) != RUDP_OK) {
            rt_sess_touch(w->rs); /* gone with its session's streams */
        } else if (si.state == RUDP_STREAM_RESET && !w->rs->closing) {
            rudp_stream_release(w->rs->s, w->sid);
            rt_sess_touch(w->rs);
        } else if (u->unix_name_len == 0 || now - w->since > RT_ACCEPT_WAIT_NS) {
            rt_log(u->eng, 2, "refusing stream %llu: %s", (unsigned long long)w->sid,
                   u->unix_name_len ? "the listener's queue stayed full" : "listener closed");
            rt_stream_refuse(w->rs, w->sid);
        } else if (rt_bridge_accept(w->rs, w->sid) == -EAGAIN) {
            return;
        }
        u->waiting = w->next;
        w->rs->nwaiting--;
        free(w);
    }
    u->waiting_tail = &u->waiting;
    ev_timer_stop(loop, t);
}

/* Hands stream |sid| of |rs| to the program's listener, or queues it when
 * the listener's queue is full (or others already wait: they go first). */
static void rt_udp_accept(rt_sess *rs, uint64_t sid) {
    rt_udp *u = rs->udp;
    if (!u->waiting && rt_bridge_accept(rs, sid) != -EAGAIN)
        return;
    rt_wait *w = calloc(1, sizeof(*w));
    if (!w) {
        rt_stream_refuse(rs, sid);
        return;
    }
    w->rs = rs;
    w->sid = sid;
    w->since = rt_now();
    *u->waiting_tail = w;
    u->waiting_tail = &w->next;
    rs->nwaiting++;
    rt_log(u->eng, 3, "stream %llu waits: the listener's queue is full",
           (unsigned long long)sid);
    if (!ev_is_active(&u->accept_retry)) {
        ev_timer_set(&u->accept_retry, RT_ACCEPT_RETRY_S, RT_ACCEPT_RETRY_S);
        ev_timer_start(u->eng->loop, &u->accept_retry);
    }
}

/* Destroys a finished session: its bridges, its timer, and for a client
 * its UDP socket. */
static void rt_sess_destroy(rt_sess *rs) {
    rt_udp *u = rs->udp;
    while (rs->bridges)
        rt_bridge_free(rs->bridges);
    if (rs->nwaiting)
        rt_wait_drop_sess(u, rs);
    rt_warm_mark(rs, false);
    for (rt_sess **pp = &rs->eng->dirty; *pp; pp = &(*pp)->dirty_next)
        if (*pp == rs) {
            *pp = rs->dirty_next;
            break;
        }
    ev_timer_stop(rs->eng->loop, &rs->timer);
    for (rt_sess **pp = &u->sessions; *pp; pp = &(*pp)->next)
        if (*pp == rs) {
            *pp = rs->next;
            break;
        }
    rudp_session_del(rs->s);
    free(rs);
    if (!u->is_listener && !u->sessions)
        rt_udp_free(u);
}

/* Handles a session-level event. */
static void rt_sess_on_session_event(rt_sess *rs, const rudp_event *ev) {
    if (ev->type == RUDP_EV_SESSION_ESTABLISHED) {
        rs->established = true;
        if (!rs->closing)
            rt_warm_mark(rs, true);
        for (rt_bridge *b = rs->bridges; b; b = b->next)
            rt_bridge_connected(b);
        return;
    }
    /* RUDP_EV_SESSION_CLOSED */
    rs->closing = true;
    rt_warm_mark(rs, false);
    int err = ev->error == RUDP_OK ? RUDP_ERR_CLOSED : ev->error;
    rs->close_err = err;
    for (rt_bridge *b = rs->bridges, *next; b; b = next) {
        next = b->next;
        rt_bridge_session_closed(b, err);
    }
    rt_log(rs->eng, 2, "session closed: %s", rudp_strerror(ev->error));
}

/* Handles every pending event of |rs|. */
static void rt_sess_events(rt_sess *rs) {
    rudp_event ev;
    while (rudp_session_poll_event(rs->s, &ev)) {
        if (ev.type == RUDP_EV_SESSION_ESTABLISHED || ev.type == RUDP_EV_SESSION_CLOSED) {
            rt_sess_on_session_event(rs, &ev);
        } else if (ev.type == RUDP_EV_STREAM_OPENED) {
            if (rs->udp->is_listener && rs->udp->unix_name_len > 0)
                rt_udp_accept(rs, ev.sid);
            else
                rudp_stream_reset(rs->s, ev.sid, 1 /* refused */);
        } else {
            rt_bridge *b = rt_bridge_find(rs, ev.sid);
            if (b)
                rt_bridge_on_event(b, &ev);
        }
    }
}

/* The UDP socket of a client reported an ICMP error. */
static void rt_sess_path_error(rt_sess *rs, int err) {
    rt_log(rs->eng, 2, "path error: %s", strerror(err));
    rudp_session_on_path_error(rs->s, rt_now());
    rt_sess_touch(rs);
}

/* Sends everything |rs| may send now, RT_BATCH datagrams per sendmmsg. */
static void rt_sess_send(rt_sess *rs, rudp_tstamp now) {
    rt_udp *u = rs->udp;
    rudp_addr to[RT_BATCH];
    struct mmsghdr msgs[RT_BATCH];
    struct iovec iov[RT_BATCH];
    for (int rounds = 0; rounds < 64; rounds++) {
        int n = 0;
        while (n < RT_BATCH) {
            ssize_t len =
                rudp_session_write_pkt(rs->s, txbuf[n], RT_MAX_DGRAM, &to[n], now);
            if (len <= 0)
                break;
            iov[n] = (struct iovec){.iov_base = txbuf[n], .iov_len = (size_t)len};
            memset(&msgs[n], 0, sizeof(msgs[n]));
            msgs[n].msg_hdr.msg_iov = &iov[n];
            msgs[n].msg_hdr.msg_iovlen = 1;
            if (u->is_listener) {
                msgs[n].msg_hdr.msg_name = to[n].bytes;
                msgs[n].msg_hdr.msg_namelen = to[n].len;
            }
            n++;
        }
        if (n == 0)
            return;
        int sent = sendmmsg(u->fd, msgs, (unsigned)n, MSG_DONTWAIT);
        if (sent < 0 && !u->is_listener &&
            (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH)) {
            rt_sess_path_error(rs, errno);
            return;
        }
        /* A full socket buffer drops datagrams: recovery treats them as lost. */
        if (n < RT_BATCH)
            return;
    }
}

/* Publishes statistics to every bridge's slot, at most every 100 ms; a
 * change within that time is published when it is up (rt_sess_arm). */
static void rt_sess_publish(rt_sess *rs, rudp_tstamp now) {
    if (!rs->bridges) {
        rs->publish_pending = false;
        return;
    }
    if (now - rs->last_publish < RT_PUBLISH_NS) {
        rs->publish_pending = true;
        return;
    }
    rs->publish_pending = false;
    rs->last_publish = now;
    rudp_session_info info;
    rudp_session_get_info(rs->s, &info);
    for (rt_bridge *b = rs->bridges; b; b = b->next)
        if (b->slot.slot)
            rt_bridge_publish(b, &info);
}

/* Closes warm client sessions that carried no stream for a while. */
static void rt_sess_warm_check(rt_sess *rs, rudp_tstamp now) {
    if (rs->udp->is_listener || rs->closing)
        return;
    if (rs->bridges) {
        rs->idle_since = RUDP_TSTAMP_NEVER;
        return;
    }
    if (rs->idle_since == RUDP_TSTAMP_NEVER)
        rs->idle_since = now;
    else if (now - rs->idle_since >= rs->eng->cfg.settings.idle_timeout / 2) {
        rs->closing = true;
        rt_warm_mark(rs, false);
        rudp_session_close(rs->s, 0, now);
    }
}

/* Handles events, sends, and re-arms one session; returns false when the
 * session was destroyed. */
static bool rt_sess_flush(rt_sess *rs, rudp_tstamp now) {
    rt_sess_events(rs);
    if (rudp_session_is_done(rs->s)) {
        rt_sess_events(rs);
        if (rs->bridges || rs->nwaiting) {
            /* Bridges still hand the program bytes it has not read, and
             * waiting streams still wait for the program to accept them;
             * the last one to finish brings the session back here. */
            ev_timer_stop(rs->eng->loop, &rs->timer);
            return true;
        }
        rt_sess_destroy(rs);
        return false;
    }
    rt_sess_send(rs, now);
    rt_sess_publish(rs, now);
    rt_sess_arm(rs, now);
    return true;
}

void rt_flush_dirty(rt_engine *e) {
    for (int rounds = 0; e->dirty && rounds < 16; rounds++) {
        rt_sess *list = e->dirty;
        e->dirty = NULL;
        rudp_tstamp now = rt_now();
        while (list) {
            rt_sess *rs = list;
            list = rs->dirty_next;
            rs->dirty = false;
            rt_sess_flush(rs, now);
        }
    }
}

/* --- receiving --- */

/* Finds the session of a listener that owns connection ID |cid|. */
static rt_sess *rt_udp_find(rt_udp *u, uint64_t cid) {
    for (rt_sess *rs = u->sessions; rs; rs = rs->next)
        if (rudp_session_owns_cid(rs->s, cid))
            return rs;
    return NULL;
}

/* Answers a datagram for an unknown connection with a stateless reset. */
static void rt_udp_reset(rt_udp *u, uint64_t cid, const struct sockaddr_storage *from,
                         socklen_t fromlen) {
    uint8_t buf[64];
    ssize_t n = rudp_packet_write_stateless_reset(buf, sizeof(buf), cid);
    if (n > 0)
        sendto(u->fd, buf, (size_t)n, MSG_DONTWAIT, (const struct sockaddr *)from, fromlen);
}

/* Returns the largest UDP payload the route of connected socket |fd|
 * allows (IP_MTU / IPV6_MTU less the IP and UDP headers), or 0. */
static uint32_t rt_path_ceiling(int fd, int family) {
    int mtu = 0;
    socklen_t len = sizeof(mtu);
    int rv = family == AF_INET6 ? getsockopt(fd, IPPROTO_IPV6, IPV6_MTU, &mtu, &len)
                                : getsockopt(fd, IPPROTO_IP, IP_MTU, &mtu, &len);
    int overhead = family == AF_INET6 ? 48 : 28;
    if (rv < 0 || mtu <= overhead)
        return 0;
    return (uint32_t)(mtu - overhead);
}

/* Finds the local address an accepted connection reports: the listener's
 * own when it is bound to one, else the address the route back to |peer|
 * leaves from (what the client sent to, on a usual host). */
static void rt_local_for_peer(const rt_udp *u, const struct sockaddr_storage *peer,
                              socklen_t peer_len, struct sockaddr_storage *out,
                              uint32_t *ceiling) {
    *out = u->local;
    *ceiling = 0;
    bool wildcard =
        u->local.ss_family == AF_INET
            ? ((const struct sockaddr_in *)&u->local)->sin_addr.s_addr == 0
            : IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&u->local)->sin6_addr);
    struct sockaddr_storage probe;
    socklen_t len = sizeof(probe);
    int fd = socket(peer->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (connect(fd, (const struct sockaddr *)peer, peer_len) == 0)
        *ceiling = rt_path_ceiling(fd, peer->ss_family);
    if (wildcard && getsockname(fd, (struct sockaddr *)&probe, &len) == 0) {
        in_port_t port = u->local.ss_family == AF_INET
                             ? ((const struct sockaddr_in *)&u->local)->sin_port
                             : ((const struct sockaddr_in6 *)&u->local)->sin6_port;
        if (probe.ss_family == AF_INET)
            ((struct sockaddr_in *)&probe)->sin_port = port;
        else
            ((struct sockaddr_in6 *)&probe)->sin6_port = port;
        *out = probe;
    }
    close(fd);
}

/* A listener's datagram: to its session, or a new session, or a reset. */
static void rt_udp_listener_input(rt_udp *u, const uint8_t *p, size_t len,
                                  const struct sockaddr_storage *from, socklen_t fromlen,
                                  rudp_tstamp now) {
    uint64_t cid;
    bool is_reset;
    if (rudp_packet_peek_cid(p, len, &cid, &is_reset) != RUDP_OK || is_reset)
        return;
    rudp_addr ra;
    addr_to_rudp(&ra, from, fromlen);
    rt_sess *rs = rt_udp_find(u, cid);
    if (rs) {
        rudp_session_read_pkt(rs->s, p, len, &ra, now);
        rt_sess_touch(rs);
        return;
    }
    int err;
    rudp_session *s = rudp_session_new_server(&u->eng->cfg.settings, rt_rand(u->eng), p,
                                              len, &ra, now, &err);
    if (!s) {
        if (err == RUDP_ERR_NOT_INITIAL)
            rt_udp_reset(u, cid, from, fromlen);
        return;
    }
    rs = rt_sess_new(u, s, from, fromlen);
    if (!rs) {
        rudp_session_del(s);
        return;
    }
    uint32_t ceiling;
    rt_local_for_peer(u, from, fromlen, &rs->local, &ceiling);
    rudp_session_set_mtu_ceiling(s, ceiling < RT_MAX_DGRAM ? ceiling : RT_MAX_DGRAM - 1);
    rs->established = true;
    rt_log(u->eng, 2, "new session on listener %d", u->listener_id);
    rt_sess_touch(rs);
}

static void rt_udp_on_read(struct ev_loop *loop, ev_io *w, int revents) {
    rt_udp *u = w->data;
    struct mmsghdr msgs[RT_BATCH];
    struct iovec iov[RT_BATCH];
    struct sockaddr_storage from[RT_BATCH];
    for (int rounds = 0; rounds < 8; rounds++) {
        for (int i = 0; i < RT_BATCH; i++) {
            iov[i] = (struct iovec){.iov_base = rxbuf[i], .iov_len = RT_MAX_DGRAM};
            memset(&msgs[i], 0, sizeof(msgs[i]));
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &from[i];
            msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
        }
        int n = recvmmsg(u->fd, msgs, RT_BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (!u->is_listener && u->sessions &&
                (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH))
                rt_sess_path_error(u->sessions, errno);
            return;
        }
        rudp_tstamp now = rt_now();
        for (int i = 0; i < n; i++) {
            size_t len = msgs[i].msg_len;
            if (u->is_listener) {
                rt_udp_listener_input(u, rxbuf[i], len, &from[i],
                                      msgs[i].msg_hdr.msg_namelen, now);
            } else if (u->sessions) {
                rudp_addr ra;
                addr_to_rudp(&ra, &u->sessions->peer, u->sessions->peer_len);
                rudp_session_read_pkt(u->sessions->s, rxbuf[i], len, &ra, now);
                rt_sess_touch(u->sessions);
            }
        }
        if (n < RT_BATCH)
            return;
    }
}

/* Gives a UDP socket room for a few bandwidth-delay products of bursts:
 * the default 208 KiB overflows at loopback rates and shows up as loss.
 * The forcing variants exceed net.core.[rw]mem_max when we may. */
static void rt_udp_tune(int fd) {
    int size = RT_SOCKBUF;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
}

/* Creates a UDP endpoint record around |fd| and starts reading it. */
static rt_udp *rt_udp_new(rt_engine *e, int fd, bool listener) {
    rt_udp *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->eng = e;
    u->fd = fd;
    u->is_listener = listener;
    rt_udp_tune(fd);
    u->local_len = sizeof(u->local);
    getsockname(fd, (struct sockaddr *)&u->local, &u->local_len);
    ev_io_init(&u->io, rt_udp_on_read, fd, EV_READ);
    u->io.data = u;
    ev_io_start(e->loop, &u->io);
    u->waiting_tail = &u->waiting;
    ev_timer_init(&u->accept_retry, rt_wait_retry, 0.0, 0.0);
    u->accept_retry.data = u;
    u->next = e->udps;
    e->udps = u;
    return u;
}

/* --- client sessions --- */

/* Returns a live client session toward |dst|, or NULL. */
static rt_sess *rt_client_find(rt_engine *e, const struct sockaddr_storage *dst) {
    for (rt_udp *u = e->udps; u; u = u->next)
        if (!u->is_listener && u->sessions && !u->sessions->closing &&
            addr_same(&u->sessions->peer, dst))
            return u->sessions;
    return NULL;
}

/* Creates a client session toward |dst| on a new connected UDP socket.
 * Returns it, or NULL with *err set to an errno. */
static rt_sess *rt_client_new(rt_engine *e, const struct sockaddr_storage *dst,
                              socklen_t dstlen, int *err) {
    int fd = socket(dst->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (const struct sockaddr *)dst, dstlen) < 0) {
        *err = errno;
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    fd = rt_fd_adopt(fd);
    rt_udp *u = rt_udp_new(e, fd, false);
    rudp_addr ra;
    addr_to_rudp(&ra, dst, dstlen);
    rudp_session *s =
        u ? rudp_session_new_client(&e->cfg.settings, rt_rand(e), &ra, rt_now()) : NULL;
    rt_sess *rs = s ? rt_sess_new(u, s, dst, dstlen) : NULL;
    if (rs) {
        uint32_t ceiling = rt_path_ceiling(fd, dst->ss_family);
        rudp_session_set_mtu_ceiling(s,
                                     ceiling < RT_MAX_DGRAM ? ceiling : RT_MAX_DGRAM - 1);
    }
    if (!rs) {
        rudp_session_del(s);
        if (u)
            rt_udp_free(u);
        else
            close(fd);
        *err = ENOMEM;
        return NULL;
    }
    return rs;
}

/* Fails a connect before any bridge exists. */
static void rt_connect_fail(rt_cmd *c, int err) {
    if (c->slot.slot) {
        atomic_store(&c->slot.slot->error, err);
        atomic_store(&c->slot.slot->so_error, err);
        atomic_store(&c->slot.slot->state, RUDP_SLOT_FAILED);
    }
    shutdown(c->fd, SHUT_RDWR);
    close(c->fd);
}

void rt_udp_connect(rt_engine *e, rt_cmd *c) {
    addr_unmap(&c->addr, &c->addrlen);
    rt_sess *rs = rt_client_find(e, &c->addr);
    int err = 0;
    if (!rs)
        rs = rt_client_new(e, &c->addr, c->addrlen, &err);
    if (!rs) {
        rt_connect_fail(c, err);
        return;
    }
    uint64_t sid;
    int rv = rudp_stream_open(rs->s, &sid);
    rt_bridge *b =
        rv == RUDP_OK ? rt_bridge_new(rs, sid, c->fd, &c->slot, c->filler) : NULL;
    if (!b) {
        rt_connect_fail(c, rv == RUDP_ERR_STREAM_LIMIT ? EAGAIN : ENOMEM);
        return;
    }
    rs->idle_since = RUDP_TSTAMP_NEVER;
    if (rs->established)
        rt_bridge_connected(b);
    rt_sess_touch(rs);
}

/* --- listeners --- */

void rt_udp_listen(rt_engine *e, rt_cmd *c) {
    rt_udp *u = rt_udp_new(e, c->fd, true);
    if (!u) {
        close(c->fd);
        return;
    }
    u->listener_id = c->listener_id;
    memcpy(u->unix_name, c->unix_name, c->unix_name_len);
    u->unix_name_len = c->unix_name_len;
    rt_log(e, 2, "listening (id %d)", u->listener_id);
}

void rt_udp_unlisten(rt_engine *e, int id) {
    for (rt_udp *u = e->udps; u; u = u->next)
        if (u->is_listener && u->listener_id == id)
            u->unix_name_len = 0; /* new streams are refused from now on */
}

bool rt_all_acked(rt_engine *e) {
    for (rt_udp *u = e->udps; u; u = u->next)
        for (rt_sess *rs = u->sessions; rs; rs = rs->next) {
            if (rudp_session_is_done(rs->s))
                continue;
            for (rt_bridge *b = rs->bridges; b; b = b->next)
                if (!b->app_eof && !b->dead)
                    return false;
            if (!rudp_session_is_settled(rs->s))
                return false;
        }
    return true;
}

void rt_udp_leave_all(rt_engine *e) {
    rudp_tstamp now = rt_now();
    for (rt_udp *u = e->udps; u; u = u->next)
        for (rt_sess *rs = u->sessions; rs; rs = rs->next) {
            while (rs->bridges) /* each logs how its connection ended */
                rt_bridge_free(rs->bridges);
            if (rudp_session_leave(rs->s, now) == RUDP_OK)
                rt_sess_touch(rs);
        }
    rt_flush_dirty(e);
}

void rt_udp_tick(rt_engine *e) {
    rudp_tstamp now = rt_now();
    for (rt_udp *u = e->udps; u; u = u->next)
        for (rt_sess *rs = u->sessions; rs; rs = rs->next) {
            rt_sess_warm_check(rs, now);
            rt_sess_touch(rs);
        }
}
