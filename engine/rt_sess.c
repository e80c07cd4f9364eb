/*
 * rt_sess.c — what the runtime keeps for each rudp session: its timer, its
 * events, its bridges, and the turn-by-turn flush.
 *
 * Work is gathered per loop turn: anything that changes a session (a
 * datagram, a timer, a program's bytes) marks it dirty, and
 * rt_sess_flush_dirty(), run before the loop sleeps, handles its events,
 * sends what it may and re-arms its timer to rudp_session_deadline().
 *
 * Events go where they belong: session-level ones to every bridge of the
 * session (established: connected; closed: deliver what is left, then the
 * error), a stream the peer opened to the listener, and a stream event to
 * the bridge whose pointer the event carries (rudp_stream_set_user).
 *
 * A session is destroyed once the core says it is done and no bridge still
 * hands the program bytes and no stream still waits for the program's
 * listener: the last of them to finish touches it again.  A client session
 * takes its UDP socket with it.
 *
 * Statistics are copied into every bridge's board slot at most every
 * RT_PUBLISH_NS; a change within that time is copied when it is up, so
 * what TCP_INFO reports catches up even when the session then goes quiet.
 */
#include "rt.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#define RT_PUBLISH_NS RUDP_MS(100)

struct rt_sess {
    rt_engine *eng;
    rudp_session *s;
    rt_udp *udp;           /* the socket it sends on */
    rt_listener *listener; /* a server session's listener; NULL: a client's */
    ev_timer timer;
    struct sockaddr_storage peer; /* the peer's UDP address */
    socklen_t peer_len;
    struct sockaddr_storage local; /* our address as the peer sees it */
    rt_dst src;         /* where the peer's datagrams go: replies leave from it */
    rt_bridge *bridges; /* its streams' bridges (rt_bridge.c links them) */
    rt_qlog *qlog;      /* its qlog trace (rt_qlog.c), or NULL */
    uint32_t nwaiting;  /* streams waiting in the listener's queue */
    bool established;
    bool unvalidated;         /* server: counted in its listener's unvalidated */
    bool closing;             /* GoAway sent or session dying */
    bool dirty;               /* in eng->dirty */
    bool publish_pending;     /* a copy was skipped as too soon after the last */
    bool soft_error_logged;   /* a soft path error was logged (once) */
    int close_err;            /* once closing: why (rudp_error) */
    rudp_tstamp idle_since;   /* client: no stream since then */
    rudp_tstamp last_publish; /* statistics last copied to the slots */
    rt_sess *next, *prev;     /* in eng->sessions */
    rt_sess *dirty_next;      /* in eng->dirty */
};

static void sess_on_timer(struct ev_loop *loop, ev_timer *w, int revents);

rt_sess *rt_sess_new(rt_engine *e, rudp_session *s, rt_udp *u, rt_listener *l,
                     const struct sockaddr_storage *peer, socklen_t peer_len) {
    rt_sess *rs = calloc(1, sizeof(*rs));
    if (!rs) {
        rudp_session_del(s);
        return NULL;
    }
    rs->eng = e;
    rs->s = s;
    rs->udp = u;
    rs->listener = l;
    rs->peer = *peer;
    rs->peer_len = peer_len;
    rs->idle_since = RUDP_TSTAMP_NEVER;
    ev_timer_init(&rs->timer, sess_on_timer, 0.0, 0.0);
    rs->timer.data = rs;
    rs->next = e->sessions;
    if (rs->next)
        rs->next->prev = rs;
    e->sessions = rs;
    return rs;
}

/* --- accessors --- */

rudp_session *rt_sess_core(const rt_sess *rs) {
    return rs->s;
}

rt_engine *rt_sess_engine(const rt_sess *rs) {
    return rs->eng;
}

rt_udp *rt_sess_udp(const rt_sess *rs) {
    return rs->udp;
}

rt_listener *rt_sess_listener(const rt_sess *rs) {
    return rs->listener;
}

const struct sockaddr_storage *rt_sess_peer(const rt_sess *rs, socklen_t *len) {
    if (len)
        *len = rs->peer_len;
    return &rs->peer;
}

const struct sockaddr_storage *rt_sess_local(const rt_sess *rs) {
    return &rs->local;
}

void rt_sess_set_local(rt_sess *rs, const struct sockaddr_storage *local,
                       const rt_dst *src) {
    rs->local = *local;
    if (src)
        rs->src = *src;
}

bool rt_sess_established(const rt_sess *rs) {
    return rs->established;
}

bool rt_sess_closing(const rt_sess *rs) {
    return rs->closing;
}

int rt_sess_close_err(const rt_sess *rs) {
    return rs->close_err;
}

void rt_sess_set_qlog(rt_sess *rs, rt_qlog *q, const struct sockaddr_storage *local) {
    rs->qlog = q;
    rt_qlog_start(q, rs->eng, rs->s, local, &rs->peer);
}

void rt_sess_set_unvalidated(rt_sess *rs) {
    rs->unvalidated = true;
}

bool rt_sess_unvalidated(const rt_sess *rs) {
    return rs->unvalidated;
}

rt_bridge **rt_sess_bridges(rt_sess *rs) {
    return &rs->bridges;
}

void rt_sess_bridge_gone(rt_sess *rs) {
    rs->eng->freed++;
    if (!rs->bridges)
        rt_sess_touch(rs);
}

void rt_sess_waiting(rt_sess *rs, int delta) {
    rs->nwaiting = (uint32_t)((int)rs->nwaiting + delta);
    if (rs->nwaiting == 0)
        rt_sess_touch(rs);
}

void rt_sess_touch(rt_sess *rs) {
    if (rs->dirty)
        return;
    rs->dirty = true;
    rs->dirty_next = rs->eng->dirty;
    rs->eng->dirty = rs;
}

void rt_sess_set_listening(rt_engine *e, const rt_listener *l, bool listening) {
    for (rt_sess *rs = e->sessions; rs; rs = rs->next)
        if (rs->listener == l) {
            rudp_session_set_listening(rs->s, listening);
            rt_sess_touch(rs);
        }
}

void rt_sess_touch_on(rt_engine *e, const rt_udp *u) {
    for (rt_sess *rs = e->sessions; rs; rs = rs->next)
        if (rs->udp == u)
            rt_sess_touch(rs);
}

/* --- datagrams and timers --- */

/* A client keeps the resumption ticket its server |peer| sent, if any. */
static void sess_keep_ticket(rt_sess *rs, const rudp_addr *peer) {
    rudp_ticket t;
    rt_engine *e = rs->eng;
    if (rs->listener || !e->cfg.ticket_save || !rudp_session_take_ticket(rs->s, &t))
        return; /* the common case, every datagram: nothing to do */
    e->cfg.ticket_save(peer, &t);
    memset(&t, 0, sizeof(t));
}

void rt_sess_input(rt_sess *rs, uint8_t *pkt, size_t len,
                   const struct sockaddr_storage *from, socklen_t fromlen, const rt_dst *to,
                   rudp_tstamp now) {
    /* A client's socket is connected: its datagrams come from the peer. */
    if (!rs->listener) {
        from = &rs->peer;
        fromlen = rs->peer_len;
    }
    rudp_addr ra = {.len = fromlen < sizeof(ra.bytes) ? fromlen : sizeof(ra.bytes)};
    memcpy(ra.bytes, from, ra.len);
    if (rudp_session_read_pkt(rs->s, pkt, len, &ra, now) == RUDP_OK && to && to->family)
        rs->src = *to;
    sess_keep_ticket(rs, &ra);
    rt_sess_touch(rs);
}

void rt_sess_path_error(rt_sess *rs, int errno_val) {
    if (errno_val != ECONNREFUSED && rudp_session_is_established(rs->s)) {
        /* No route, or an ICMP host or net unreachable: TCP takes these
         * as soft errors on an established connection, and so do we (a
         * laptop between networks, a peer behind a NAT that moved).  The
         * lost datagrams are retransmitted; a peer that is really gone
         * ends as TCP's rules say (session_live.c). */
        if (!rs->soft_error_logged)
            rt_log(3, "path error ignored: %s", strerror(errno_val));
        rs->soft_error_logged = true;
        return;
    }
    rt_log(2, "path error: %s", strerror(errno_val));
    rudp_session_on_path_error(rs->s, rt_now());
    rt_sess_touch(rs);
}

static void sess_on_timer(struct ev_loop *loop, ev_timer *w, int revents) {
    rt_sess *rs = w->data;
    rudp_session_handle_timeout(rs->s, rt_now());
    rt_sess_touch(rs);
}

/* Re-arms the session's timer to its next deadline, or to the skipped copy
 * of statistics when that is due first. */
static void sess_arm(rt_sess *rs, rudp_tstamp now) {
    rudp_tstamp d = rudp_session_deadline(rs->s);
    if (rs->publish_pending && rs->last_publish + RT_PUBLISH_NS < d)
        d = rs->last_publish + RT_PUBLISH_NS;
    ev_timer_stop(rs->eng->loop, &rs->timer);
    if (d == RUDP_TSTAMP_NEVER)
        return;
    double after = d > now ? (double)(d - now) / 1e9 : 0.0;
    ev_timer_set(&rs->timer, after, 0.0);
    ev_timer_start(rs->eng->loop, &rs->timer);
}

/* --- events --- */

/* The handshake completed: every bridge may carry data, unless nothing
 * listens on the server's port (then each waits for its stream to be
 * accepted or refused). */
static void sess_on_established(rt_sess *rs) {
    rs->established = true;
    if (rs->unvalidated) {
        rs->unvalidated = false;
        rt_listen_validated(rs->listener);
    }
    if (rudp_session_resumed(rs->s))
        rt_log(2, "session resumed with the server's ticket (0-RTT)");
    if (!rs->listener && !rs->closing)
        rt_client_established(rs);
    if (!rudp_session_peer_listening(rs->s))
        return;
    for (rt_bridge *b = rs->bridges; b; b = rt_bridge_next(b))
        rt_bridge_connected(b);
}

/* The session ended: every bridge delivers what is left, then the error. */
static void sess_on_closed(rt_sess *rs, int error) {
    rs->closing = true;
    if (!rs->listener)
        rt_client_closing(rs);
    rs->close_err = error == RUDP_OK ? RUDP_ERR_CLOSED : error;
    for (rt_bridge *b = rs->bridges, *next; b; b = next) {
        next = rt_bridge_next(b);
        rt_bridge_session_closed(b, rs->close_err);
    }
    int why = rudp_session_refuse_reason(rs->s);
    if (why != RUDP_REFUSE_NONE)
        rt_log(1, "connection refused by the server: %s", rudp_refuse_reason_str(why));
    rt_log(2, "session closed: %s", rudp_strerror(error));
}

/* Handles every pending event of |rs|. */
static void sess_events(rt_sess *rs) {
    rudp_event ev;
    while (rudp_session_poll_event(rs->s, &ev)) {
        if (ev.type == RUDP_EV_SESSION_ESTABLISHED)
            sess_on_established(rs);
        else if (ev.type == RUDP_EV_SESSION_CLOSED)
            sess_on_closed(rs, ev.error);
        else if (ev.type == RUDP_EV_PEER_LISTENING && !rs->closing)
            rt_client_established(rs);
        else if (ev.type == RUDP_EV_STREAM_OPENED && rs->listener)
            rt_listen_on_stream(rs->listener, rs, ev.sid);
        else if (ev.type == RUDP_EV_STREAM_OPENED)
            rudp_stream_reset(rs->s, ev.sid, 1 /* refused: a client accepts nothing */);
        else if (ev.user)
            rt_bridge_on_event(ev.user, &ev);
    }
}

/* Writes |a| (an IPv4 or IPv6 socket address) as an IPv6 one, v4 mapped. */
static void sess_addr6(const void *a, size_t len, struct sockaddr_in6 *out) {
    memset(out, 0, sizeof(*out));
    out->sin6_family = AF_INET6;
    const struct sockaddr *sa = a;
    if (len >= sizeof(struct sockaddr_in) && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = a;
        out->sin6_port = in->sin_port;
        out->sin6_addr.s6_addr[10] = out->sin6_addr.s6_addr[11] = 0xff;
        memcpy(&out->sin6_addr.s6_addr[12], &in->sin_addr, 4);
    } else if (len >= sizeof(*out) && sa->sa_family == AF_INET6) {
        memcpy(out, a, sizeof(*out));
    }
}

void rt_sess_addrs(const rt_sess *rs, struct sockaddr_in6 *local,
                   struct sockaddr_in6 *peer) {
    rudp_addr p = rudp_session_peer(rs->s);
    sess_addr6(p.bytes, p.len, peer);
    const struct sockaddr_storage *own = &rs->local;
    if (own->ss_family != AF_INET && own->ss_family != AF_INET6)
        own = rt_udp_local(rs->udp); /* a client: its socket's own address */
    sess_addr6(own, sizeof(*own), local);
}

/* --- flushing --- */

/* Copies statistics to every bridge's slot, at most every RT_PUBLISH_NS. */
static void sess_publish(rt_sess *rs, rudp_tstamp now) {
    rs->publish_pending = false;
    if (!rs->bridges)
        return;
    if (now - rs->last_publish < RT_PUBLISH_NS) {
        rs->publish_pending = true;
        return;
    }
    rs->last_publish = now;
    rudp_session_info info;
    rudp_session_get_info(rs->s, &info);
    for (rt_bridge *b = rs->bridges; b; b = rt_bridge_next(b))
        rt_bridge_publish(b, &info);
}

/* Frees a finished session: its timer, its place in the lists, and a
 * client's socket. */
static void sess_destroy(rt_sess *rs) {
    rt_engine *e = rs->eng;
    while (rs->bridges)
        rt_bridge_free(rs->bridges);
    if (rs->listener)
        rt_listen_forget_session(rs->listener, rs);
    else
        rt_client_forget(rs);
    ev_timer_stop(e->loop, &rs->timer);
    for (rt_sess **pp = &e->dirty; *pp; pp = &(*pp)->dirty_next)
        if (*pp == rs) {
            *pp = rs->dirty_next;
            break;
        }
    if (rs->prev)
        rs->prev->next = rs->next;
    else
        e->sessions = rs->next;
    if (rs->next)
        rs->next->prev = rs->prev;
    rt_qlog_finish(rs->qlog, rs->s, rt_now());
    rudp_session_del(rs->s);
    rt_qlog_free(rs->qlog);
    if (!rs->listener)
        rt_udp_free(rs->udp);
    free(rs);
    e->freed++;
}

/* Handles events, sends and re-arms one session, or destroys it when it is
 * over. */
static void sess_flush(rt_sess *rs, rudp_tstamp now) {
    sess_events(rs);
    if (rudp_session_is_done(rs->s)) {
        sess_events(rs);
        if (rs->bridges || rs->nwaiting) {
            ev_timer_stop(rs->eng->loop, &rs->timer); /* the last one touches it */
            return;
        }
        sess_destroy(rs);
        return;
    }
    int rv = rt_udp_send_session(rs->udp, rs->s, &rs->src, now);
    if (RUDP_ERR_IS_SYS(rv))
        rt_sess_path_error(rs, RUDP_ERR_SYS_ERRNO(rv));
    sess_publish(rs, now);
    sess_arm(rs, now);
}

void rt_sess_flush_dirty(rt_engine *e) {
    for (int rounds = 0; e->dirty && rounds < 16; rounds++) {
        rt_sess *list = e->dirty;
        e->dirty = NULL;
        rudp_tstamp now = rt_now();
        while (list) {
            rt_sess *rs = list;
            list = rs->dirty_next;
            rs->dirty = false;
            sess_flush(rs, now);
        }
    }
}

/* --- the whole engine --- */

/* Returns how long a client keeps an unused session. */
static rudp_tstamp sess_warm_time(const rt_engine *e) {
    rudp_tstamp idle = e->cfg.settings.idle_timeout;
    return idle && idle / 2 < RT_WARM_SESSION ? idle / 2 : RT_WARM_SESSION;
}

/* Closes a client session that carried no stream for RT_WARM_SESSION (or
 * half the idle timeout, if set and shorter): a warm session nobody uses. */
static void sess_idle_check(rt_sess *rs, rudp_tstamp now) {
    if (rs->listener || rs->closing)
        return;
    if (rs->bridges) {
        rs->idle_since = RUDP_TSTAMP_NEVER;
        return;
    }
    if (rs->idle_since == RUDP_TSTAMP_NEVER) {
        rs->idle_since = now;
    } else if (now - rs->idle_since >= sess_warm_time(rs->eng)) {
        rs->closing = true;
        rt_client_closing(rs);
        rudp_session_close(rs->s, 0, now);
    }
}

/* Gives the heap's free pages back once a burst of ends is over (see
 * RT_TRIM_AFTER). */
static void sess_trim_heap(rt_engine *e) {
    bool quiet = e->freed == e->freed_seen;
    e->freed_seen = e->freed;
    if (e->freed < RT_TRIM_AFTER || (!quiet && ++e->trim_wait < RT_TRIM_EVERY))
        return;
    malloc_trim(0);
    e->freed = e->freed_seen = e->trim_wait = 0;
}

void rt_sess_tick(rt_engine *e) {
    rudp_tstamp now = rt_now();
    for (rt_sess *rs = e->sessions; rs; rs = rs->next) {
        sess_idle_check(rs, now);
        for (rt_bridge *b = rs->bridges; b; b = rt_bridge_next(b))
            rt_bridge_sync_opts(b, now);
        rt_qlog_flush(rs->qlog); /* a trace is at most a second behind */
        rudp_session_trim(rs->s, now);
        rt_sess_touch(rs);
    }
    sess_trim_heap(e);
}

void rt_sess_on_pause(rt_engine *e, rudp_tstamp gap) {
    rt_log(2, "the process did not run for %.1f s: not held against the peers",
           (double)gap / (double)RUDP_SEC(1));
    for (rt_sess *rs = e->sessions; rs; rs = rs->next) {
        rudp_session_on_pause(rs->s, gap);
        rt_sess_touch(rs);
    }
}

void rt_sess_exit_drain_all(rt_engine *e) {
    for (rt_sess *rs = e->sessions; rs; rs = rs->next) {
        for (rt_bridge *b = rs->bridges, *next; b; b = next) {
            next = rt_bridge_next(b); /* draining may end (free) the bridge */
            rt_bridge_exit_drain(b);
        }
        rt_sess_touch(rs);
    }
}

bool rt_sess_all_settled(rt_engine *e) {
    for (rt_sess *rs = e->sessions; rs; rs = rs->next) {
        if (rudp_session_is_done(rs->s))
            continue;
        for (rt_bridge *b = rs->bridges; b; b = rt_bridge_next(b))
            if (!rt_bridge_drained(b))
                return false;
        if (!rudp_session_is_settled(rs->s))
            return false;
    }
    return true;
}

void rt_sess_leave_all(rt_engine *e) {
    rudp_tstamp now = rt_now();
    for (rt_sess *rs = e->sessions; rs; rs = rs->next) {
        while (rs->bridges) /* each logs how its connection ended */
            rt_bridge_free(rs->bridges);
        if (rudp_session_leave(rs->s, now) == RUDP_OK)
            rt_sess_touch(rs);
    }
    rt_sess_flush_dirty(e);
    /* The process is about to go: every trace ends with its GoAway. */
    now = rt_now();
    for (rt_sess *rs = e->sessions; rs; rs = rs->next)
        rt_qlog_finish(rs->qlog, rs->s, now);
}

bool rt_sess_any_bridge(rt_engine *e) {
    for (rt_sess *rs = e->sessions; rs; rs = rs->next)
        if (rs->bridges)
            return true;
    return false;
}

void rt_sess_each_fd(rt_engine *e, rt_fd_fn fn, void *ctx) {
    for (rt_sess *rs = e->sessions; rs; rs = rs->next) {
        for (rt_bridge *b = rs->bridges; b; b = rt_bridge_next(b))
            if (rt_bridge_fd(b) >= 0)
                fn(rt_bridge_fd(b), ctx);
        if (!rs->listener)
            fn(rt_udp_fd(rs->udp), ctx);
        if (rt_qlog_fd(rs->qlog) >= 0)
            fn(rt_qlog_fd(rs->qlog), ctx);
    }
}
