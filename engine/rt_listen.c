/*
 * rt_listen.c — listeners: sessions opened by clients, streams handed to
 * the program's AF_UNIX listener, and the queue of streams that wait for
 * it.
 *
 * A listener serves one UDP socket bound to the TCP listener's address
 * (rt_udp.c routes its datagrams by connection ID).  A datagram for an
 * unknown ID that carries a client's session SYN opens a server session;
 * any other is answered with a stateless reset, so a client whose server
 * restarted learns it at once.
 *
 * Every stream a client opens is handed to the program by connecting a
 * fresh AF_UNIX socket to the program's listener, bound to an abstract name
 * that carries the board slot and the TCP-level addresses (board.h), so
 * accept() is the kernel's own.  When the listener's queue is full the
 * connect fails with EAGAIN and the stream waits, in order, and is tried
 * again every RT_ACCEPT_RETRY_S, as a TCP client whose SYN the kernel
 * dropped waits and retransmits; after RT_ACCEPT_WAIT_NS it is refused.
 *
 * The program closing its listener (rudp_rt_unlisten) stops new streams;
 * the UDP socket stays bound.  At exit the listeners a process serves are
 * handed to the processes that share their AF_UNIX listener
 * (rudp_rt_leave_listeners, shim/handover.c), which adopt the UDP socket
 * (rudp_rt_adopt_listener).
 */
#include "rt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

/* A stream waiting for room in a full listener queue is tried again every
 * RT_ACCEPT_RETRY_S, and refused after RT_ACCEPT_WAIT_NS (kernel TCP's
 * client gives up a SYN nobody answers after about two minutes). */
#define RT_ACCEPT_RETRY_S 0.01
#define RT_ACCEPT_WAIT_NS RUDP_SEC(60)
#define RT_NAME_MAX 108

/* A stream a peer opened while the program's listener queue was full. */
typedef struct rt_wait {
    rt_sess *rs;
    uint64_t sid;
    rudp_tstamp since;
    struct rt_wait *next;
} rt_wait;

struct rt_listener {
    rt_engine *eng;
    int id;
    rt_udp *udp;
    char name[RT_NAME_MAX]; /* the program's AF_UNIX listener */
    size_t name_len;        /* 0 once the program closed it */
    rt_wait *waiting;       /* streams its full queue could not take, oldest first */
    rt_wait **waiting_tail;
    ev_timer retry; /* tries the waiting streams again */
    rt_listener *next;
};

/* A listen or an unlisten from an application thread. */
typedef struct listen_cmd {
    rt_cmd base;
    int id;
    int fd; /* LISTEN: the bound UDP socket; -1 for UNLISTEN */
    char name[RT_NAME_MAX];
    size_t name_len;
} listen_cmd;

static _Atomic int next_id;

static void listen_on_retry(struct ev_loop *loop, ev_timer *t, int revents);

/* --- new sessions --- */

/* Finds the local address an accepted connection reports: the address the
 * client sent to (|to|, known on a wildcard listener) or the listener's own
 * with its port; failing both, the address the route back to |peer| leaves
 * from.  Sets *ceiling to the largest UDP payload of that route (0 when
 * unknown). */
static void listen_local_for(const rt_listener *l, const struct sockaddr_storage *peer,
                             socklen_t peer_len, const rt_dst *to,
                             struct sockaddr_storage *out, uint32_t *ceiling) {
    const struct sockaddr_storage *bound = rt_udp_local(l->udp);
    struct sockaddr_in *o4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *o6 = (struct sockaddr_in6 *)out;
    in_port_t port = bound->ss_family == AF_INET
                         ? ((const struct sockaddr_in *)bound)->sin_port
                         : ((const struct sockaddr_in6 *)bound)->sin6_port;
    *out = *bound;
    *ceiling = 0;
    int fd = rt_sys.socket(peer->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    socklen_t len = sizeof(*out);
    bool routed =
        fd >= 0 && rt_sys.connect(fd, (const struct sockaddr *)peer, peer_len) == 0;
    if (routed)
        *ceiling = rt_udp_path_ceiling(fd, peer->ss_family);
    if (to && to->family == AF_INET) {
        *o4 = (struct sockaddr_in){
            .sin_family = AF_INET, .sin_port = port, .sin_addr = to->addr.v4};
    } else if (to && to->family == AF_INET6) {
        *o6 = (struct sockaddr_in6){
            .sin6_family = AF_INET6, .sin6_port = port, .sin6_addr = to->addr.v6};
    } else if (routed && rt_sys.getsockname(fd, (struct sockaddr *)out, &len) == 0) {
        if (out->ss_family == AF_INET)
            o4->sin_port = port;
        else
            o6->sin6_port = port;
    }
    if (fd >= 0)
        rt_sys.close(fd);
}

/* Routes the connection IDs of server session |rs| to it (|add|) or stops
 * routing them. */
static void listen_route(rt_listener *l, rt_sess *rs, bool add) {
    rudp_session_info info;
    rudp_session_get_info(rt_sess_core(rs), &info);
    uint64_t cids[2] = {info.local_cid, info.initial_cid};
    for (int i = 0; i < 2; i++) {
        if (!add)
            rt_udp_cid_del(l->udp, cids[i]);
        else if (rt_udp_cid_add(l->udp, cids[i], rs) != RUDP_OK)
            rt_log(1, "no memory to route a connection ID: its datagrams are lost");
    }
}

void rt_listen_on_unknown(rt_listener *l, uint64_t cid, const uint8_t *pkt, size_t len,
                          const struct sockaddr_storage *from, socklen_t fromlen,
                          const rt_dst *to, rudp_tstamp now) {
    rt_engine *e = l->eng;
    rudp_addr ra = {.len = fromlen < sizeof(ra.bytes) ? fromlen : sizeof(ra.bytes)};
    memcpy(ra.bytes, from, ra.len);
    int err;
    rudp_session *s =
        rudp_session_new_server(&e->cfg.settings, rt_random64(), pkt, len, &ra, now, &err);
    if (!s) {
        if (err == RUDP_ERR_NOT_INITIAL)
            rt_udp_send_reset(l->udp, cid, from, fromlen, to);
        return;
    }
    rt_sess *rs = rt_sess_new(e, s, l->udp, l, from, fromlen);
    if (!rs)
        return;
    struct sockaddr_storage local;
    uint32_t ceiling;
    listen_local_for(l, from, fromlen, to, &local, &ceiling);
    rt_sess_set_local(rs, &local, to);
    rudp_session_set_mtu_ceiling(s, ceiling);
    listen_route(l, rs, true);
    rt_log(2, "new session on listener %d", l->id);
    rt_sess_touch(rs);
}

/* --- handing streams to the program --- */

/* Connects a fresh AF_UNIX socket, named after the connection, to the
 * program's listener.  Returns the fd, or RUDP_ERR_SYS(EAGAIN) when its
 * queue is full, or another rudp_error. */
static int listen_dial(const rt_listener *l, rt_sess *rs, const rudp_slot_ref *slot) {
    struct sockaddr_un me = {.sun_family = AF_UNIX}, them = {.sun_family = AF_UNIX};
    size_t mlen = rudp_board_name_encode(me.sun_path, slot->eid, slot->index,
                                         rt_sess_peer(rs, NULL), rt_sess_local(rs));
    memcpy(them.sun_path, l->name, l->name_len);
    int fd = rt_sys.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return rt_err();
    fd = rt_fd_high(fd);
    socklen_t ml = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + mlen);
    socklen_t tl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + l->name_len);
    if (rt_sys.bind(fd, (struct sockaddr *)&me, ml) < 0 ||
        rt_sys.connect(fd, (struct sockaddr *)&them, tl) < 0) {
        int err = rt_err();
        rt_sys.close(fd);
        return err;
    }
    return fd;
}

void rt_listen_refuse(rt_sess *rs, uint64_t sid) {
    rudp_stream_reset(rt_sess_core(rs), sid, 1 /* refused */);
    rudp_stream_release(rt_sess_core(rs), sid);
    rt_sess_touch(rs);
}

/* Hands stream |sid| of |rs| to the program's listener.  Returns RUDP_OK
 * (accepted, or refused with a reset) or RUDP_ERR_WOULDBLOCK when the
 * listener's queue is full and the stream should wait. */
static int listen_accept(rt_listener *l, rt_sess *rs, uint64_t sid) {
    rudp_board *board = l->eng->board;
    rudp_slot_ref slot = {0};
    int fd = RUDP_ERR_NOMEM; /* the board is full */
    if (rudp_board_alloc(board, RUDP_SLOT_CONNECTED, &slot) == 0)
        fd = listen_dial(l, rs, &slot);
    rt_bridge *b = fd >= 0 ? rt_bridge_new(rs, sid, fd, &slot, 0) : NULL;
    if (b) {
        rt_bridge_accepted(b);
        return RUDP_OK;
    }
    if (fd >= 0)
        rt_sys.close(fd);
    if (slot.slot)
        rudp_board_release(board, slot.index);
    if (fd == RUDP_ERR_SYS(EAGAIN))
        return RUDP_ERR_WOULDBLOCK;
    rt_log(2, "refusing stream %llu: %s", (unsigned long long)sid,
           RUDP_ERR_IS_SYS(fd) ? strerror(RUDP_ERR_SYS_ERRNO(fd)) : "no memory");
    rt_listen_refuse(rs, sid);
    return RUDP_OK;
}

/* Queues stream |sid| of |rs| behind the others waiting for |l|. */
static void listen_wait(rt_listener *l, rt_sess *rs, uint64_t sid) {
    rt_wait *w = calloc(1, sizeof(*w));
    if (!w) {
        rt_listen_refuse(rs, sid);
        return;
    }
    w->rs = rs;
    w->sid = sid;
    w->since = rt_now();
    *l->waiting_tail = w;
    l->waiting_tail = &w->next;
    rt_sess_waiting(rs, 1);
    rt_log(3, "stream %llu waits: the listener's queue is full", (unsigned long long)sid);
    if (!ev_is_active(&l->retry)) {
        ev_timer_set(&l->retry, RT_ACCEPT_RETRY_S, RT_ACCEPT_RETRY_S);
        ev_timer_start(l->eng->loop, &l->retry);
    }
}

void rt_listen_on_stream(rt_listener *l, rt_sess *rs, uint64_t sid) {
    if (l->name_len == 0) {
        rt_listen_refuse(rs, sid);
        return;
    }
    if (!l->waiting && listen_accept(l, rs, sid) != RUDP_ERR_WOULDBLOCK)
        return;
    listen_wait(l, rs, sid); /* others wait already: they go first */
}

/* Gives waiting stream |w| another try.  Returns RUDP_ERR_WOULDBLOCK when
 * it must wait on, RUDP_OK when it is settled (accepted, refused, or
 * gone).  A stream whose session has ended since (which resets its
 * streams) is still accepted: the bytes it acknowledged are the program's,
 * as those of a TCP connection in the accept queue whose client has gone;
 * the bridge hands them over, then EOF or the session's error. */
static int listen_retry_one(rt_listener *l, rt_wait *w, rudp_tstamp now) {
    rudp_session *s = rt_sess_core(w->rs);
    rudp_stream_info si;
    if (rudp_stream_get_info(s, w->sid, &si) != RUDP_OK)
        return RUDP_OK; /* gone with its session's streams */
    if (si.state == RUDP_STREAM_RESET && !rt_sess_closing(w->rs)) {
        rudp_stream_release(s, w->sid); /* the peer gave up */
        rt_sess_touch(w->rs);
        return RUDP_OK;
    }
    if (l->name_len == 0 || now - w->since > RT_ACCEPT_WAIT_NS) {
        rt_log(2, "refusing stream %llu: %s", (unsigned long long)w->sid,
               l->name_len ? "the listener's queue stayed full" : "listener closed");
        rt_listen_refuse(w->rs, w->sid);
        return RUDP_OK;
    }
    return listen_accept(l, w->rs, w->sid);
}

/* ev_timer callback: tries the waiting streams in the order they came,
 * until the queue is full again. */
static void listen_on_retry(struct ev_loop *loop, ev_timer *t, int revents) {
    rt_listener *l = t->data;
    rudp_tstamp now = rt_now();
    while (l->waiting) {
        rt_wait *w = l->waiting;
        if (listen_retry_one(l, w, now) == RUDP_ERR_WOULDBLOCK)
            return;
        l->waiting = w->next;
        rt_sess_waiting(w->rs, -1);
        free(w);
    }
    l->waiting_tail = &l->waiting;
    ev_timer_stop(loop, t);
}

void rt_listen_forget_session(rt_listener *l, rt_sess *rs) {
    listen_route(l, rs, false);
    rt_wait **pp = &l->waiting;
    while (*pp) {
        rt_wait *w = *pp;
        if (w->rs != rs) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        free(w);
    }
    l->waiting_tail = &l->waiting;
    for (rt_wait *w = l->waiting; w; w = w->next)
        l->waiting_tail = &w->next;
    if (!l->waiting)
        ev_timer_stop(l->eng->loop, &l->retry);
}

/* --- listen and unlisten --- */

/* Fills listener |l| (its socket served already) from |c| and adds it to
 * the engine's. */
static void listen_start(rt_engine *e, rt_listener *l, const listen_cmd *c) {
    l->eng = e;
    l->id = c->id;
    memcpy(l->name, c->name, c->name_len);
    l->name_len = c->name_len;
    l->waiting_tail = &l->waiting;
    ev_timer_init(&l->retry, listen_on_retry, 0.0, 0.0);
    l->retry.data = l;
    l->next = e->listeners;
    e->listeners = l;
    rt_log(2, "listening (id %d)", l->id);
}

/* Runs a listen on the engine thread: serves the UDP socket for the
 * program's listener. */
static void listen_run(rt_engine *e, rt_cmd *base) {
    listen_cmd *c = (listen_cmd *)base;
    rt_listener *l = calloc(1, sizeof(*l));
    if (!l) {
        rt_sys.close(c->fd);
    } else if (!(l->udp = rt_udp_listener(e, c->fd, l))) {
        free(l); /* the socket is closed */
        l = NULL;
    }
    if (l)
        listen_start(e, l, c);
    else
        rt_log(1, "listener %d: no memory", c->id);
    free(c);
}

/* Runs an unlisten: new streams are refused from now on. */
static void unlisten_run(rt_engine *e, rt_cmd *base) {
    listen_cmd *c = (listen_cmd *)base;
    for (rt_listener *l = e->listeners; l; l = l->next)
        if (l->id == c->id)
            l->name_len = 0;
    free(c);
}

static void listen_close_fds(rt_cmd *base) {
    listen_cmd *c = (listen_cmd *)base;
    if (c->fd >= 0)
        rt_sys.close(c->fd);
}

/* Queues a listen for the bound UDP socket |fd| (taken over, closed on
 * failure).  Returns the listener id or RUDP_ERR_NOMEM. */
static int listen_send(rt_engine *e, int fd, const char *name, size_t name_len) {
    listen_cmd *c = calloc(1, sizeof(*c));
    if (!c) {
        rt_sys.close(fd);
        return RUDP_ERR_NOMEM;
    }
    c->base.run = listen_run;
    c->base.close_fds = listen_close_fds;
    c->fd = fd;
    c->id = atomic_fetch_add(&next_id, 1);
    memcpy(c->name, name, name_len);
    c->name_len = name_len;
    int id = c->id;
    rt_loop_send(e, &c->base);
    return id;
}

/* Opens and binds the UDP socket of a listener; returns it or an
 * rudp_error.  No SO_REUSEADDR: for UDP it would let a second server bind
 * the same port and split our datagrams, where TCP answers EADDRINUSE. */
static int listen_socket(const struct sockaddr *local, socklen_t len) {
    int fd = rt_sys.socket(local->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return rt_err();
    if (local->sa_family == AF_INET6) {
        int zero = 0; /* dual-stack, like the TCP listener it stands for */
        rt_sys.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    }
    if (rt_sys.bind(fd, local, len) < 0) {
        int err = rt_err();
        rt_sys.close(fd);
        return err;
    }
    return rt_fd_high(fd);
}

int rudp_rt_listen(const struct sockaddr *local, socklen_t len, const char *unix_name,
                   size_t name_len, int backlog) {
    (void)backlog; /* the program's AF_UNIX listener has the queue */
    if (len > sizeof(struct sockaddr_storage) || name_len > RT_NAME_MAX)
        return RUDP_ERR_INVAL;
    int err;
    rt_engine *e = rt_loop_engine(&err);
    if (!e)
        return err;
    int fd = listen_socket(local, len);
    return fd < 0 ? fd : listen_send(e, fd, unix_name, name_len);
}

int rudp_rt_adopt_listener(int udp_fd, const char *unix_name, size_t name_len) {
    int type = 0, err;
    socklen_t tlen = sizeof(type);
    rt_engine *e = rt_loop_engine(&err);
    if (e && (name_len > RT_NAME_MAX ||
              rt_sys.getsockopt(udp_fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 ||
              type != SOCK_DGRAM))
        err = RUDP_ERR_INVAL;
    else if (e)
        err = rt_fd_nonblock(udp_fd);
    if (!e || err != RUDP_OK) {
        rt_sys.close(udp_fd);
        return err;
    }
    return listen_send(e, rt_fd_high(udp_fd), unix_name, name_len);
}

void rudp_rt_unlisten(int id) {
    rt_engine *e = rt_loop_running();
    listen_cmd *c = e ? calloc(1, sizeof(*c)) : NULL;
    if (!c)
        return;
    c->base.run = unlisten_run;
    c->base.close_fds = listen_close_fds;
    c->fd = -1;
    c->id = id;
    rt_loop_send(e, &c->base);
}

/* --- leaving --- */

void rudp_rt_leave_listeners(void (*fn)(int id, int udp_fd, const char *unix_name,
                                        size_t name_len, void *ctx),
                             void *ctx) {
    rt_engine *e = rt_loop_running();
    if (!e)
        return;
    rt_loop_park(e); /* for good: the process is exiting */
    for (rt_listener *l = e->listeners; l; l = l->next) {
        if (l->name_len == 0)
            continue;
        int fd = rt_sys.fcntl(rt_udp_fd(l->udp), F_DUPFD_CLOEXEC, 0);
        if (fd >= 0)
            fn(l->id, fd, l->name, l->name_len, ctx);
    }
}

void rt_listen_close_fds(rt_engine *e) {
    for (rt_listener *l = e->listeners; l; l = l->next)
        rt_udp_close_fd(l->udp);
}
