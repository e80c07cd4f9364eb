/*
 * rt_listen.c — listening ports: the UDP socket a listening address is
 * served on, the sessions clients open there, and the API that starts and
 * stops listening.
 *
 * A port is one UDP socket bound to the address of the program's TCP
 * listening socket (rt_udp.c routes its datagrams by connection ID).  A
 * datagram for an unknown ID that carries a client's session SYN opens a
 * server session; any other is answered with a stateless reset, so a
 * client whose server restarted learns it at once.  The streams of its
 * sessions go to the program's AF_UNIX listeners that the port feeds
 * (rt_accept.c).
 *
 * Several listening sockets of the program may share one address, as the
 * kernel allows TCP: an IPv6 socket with IPV6_V6ONLY beside an IPv4 one
 * (two addresses, two ports), sockets of one SO_REUSEPORT group, a listener
 * opened again after the program closed it while its accepted connections
 * live on.  The shim leaves the kernel to decide whether a listen is
 * allowed (it keeps the TCP socket bound and listening, see
 * shim/hooks_conn.c); here a listen on an address this engine already
 * serves joins that port as one more target, and a port with no target
 * and no session left closes its UDP socket, so the address is free again.
 *
 * At exit the ports a process serves are handed to the processes that
 * share their first target (rudp_rt_leave_listeners, shim/handover.c),
 * which adopt the UDP socket (rudp_rt_adopt_listener).
 */
#include "rt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct rt_listener {
    rt_engine *eng;
    rt_udp *udp;
    struct sockaddr_storage addr; /* the address it is bound to */
    bool v6only;
    rt_accept *accept; /* the program's listeners it feeds */
    rt_group *group;   /* other processes' listeners join through it */
    uint32_t nsessions;
    uint32_t unvalidated;     /* sessions whose client has not proved its address */
    rudp_replay *replay;      /* openings validated by a token or accepted early */
    rudp_tstamp reply_second; /* the second the reply budget counts */
    uint32_t replies;         /* replies sent in it */
    rt_listener *next;
};

/* A listen, an adoption or an unlisten from an application thread. */
typedef struct listen_cmd {
    rt_cmd base;
    int id;
    int fd; /* adopt: the UDP socket handed over; -1 otherwise */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    unsigned flags;
    char name[RT_UNIX_NAME_MAX];
    size_t name_len;
} listen_cmd;

static _Atomic int next_id;

int rt_listen_new_id(void) {
    return atomic_fetch_add(&next_id, 1);
}

rt_accept *rt_listen_accept(rt_listener *l) {
    return l->accept;
}

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

/* Returns true while |l| may answer another datagram that made no session:
 * at most RT_REPLIES_PER_SEC a second, so a flood of them is not mirrored. */
static bool listen_reply_budget(rt_listener *l, rudp_tstamp now) {
    rudp_tstamp second = now / RUDP_SEC(1);
    if (second != l->reply_second) {
        l->reply_second = second;
        l->replies = 0;
    }
    return l->replies++ < RT_REPLIES_PER_SEC;
}

/* Returns true when |l| answers new clients with a RETRY first: too many
 * of its sessions wait for their client to prove its address, or the
 * configuration asks for it always. */
static bool listen_busy(const rt_listener *l) {
    return l->eng->cfg.retry_always || l->unvalidated >= RT_MAX_UNVALIDATED;
}

void rt_listen_on_unknown(rt_listener *l, uint64_t cid, uint8_t *pkt, size_t len,
                          const struct sockaddr_storage *from, socklen_t fromlen,
                          const rt_dst *to, rudp_tstamp now) {
    rt_engine *e = l->eng;
    rudp_addr ra = {.len = fromlen < sizeof(ra.bytes) ? fromlen : sizeof(ra.bytes)};
    memcpy(ra.bytes, from, ra.len);
    int err;
    rudp_reply reply;
    rudp_settings set = e->cfg.settings;
    set.wall_ms = rt_wall_ms();
    set.replay = l->replay;
    (void)cid;
    rt_qlog *q = rt_qlog_new(e, &set, false, now);
    rudp_session *s = rudp_session_new_server(&set, rt_random64(), pkt, len, &ra, now,
                                              listen_busy(l), &reply, &err);
    if (!s) {
        rt_qlog_free(q); /* no session: nothing to trace */
        e->dropped++;
        if (reply.len && listen_reply_budget(l, now))
            rt_udp_send_reply(l->udp, reply.buf, reply.len, from, fromlen, to);
        return;
    }
    rudp_session_set_listening(s, rt_accept_targets(l->accept) > 0);
    bool unvalidated = !rudp_session_is_validated(s);
    rt_sess *rs = rt_sess_new(e, s, l->udp, l, from, fromlen);
    if (!rs) {
        rt_qlog_free(q);
        return;
    }
    l->nsessions++;
    if (unvalidated) {
        l->unvalidated++;
        rt_sess_set_unvalidated(rs);
    }
    struct sockaddr_storage local;
    uint32_t ceiling;
    listen_local_for(l, from, fromlen, to, &local, &ceiling);
    rt_sess_set_local(rs, &local, to);
    rt_sess_set_qlog(rs, q, &local);
    rudp_session_set_mtu_ceiling(s, ceiling);
    listen_route(l, rs, true);
    rt_log(2, "new session on port %u", ntohs(((struct sockaddr_in *)&l->addr)->sin_port));
    rt_sess_touch(rs);
}

void rt_listen_on_stream(rt_listener *l, rt_sess *rs, uint64_t sid) {
    rt_accept_stream(l->accept, rs, sid);
}

/* --- ports --- */

/* Closes port |l| once it feeds no listener and carries no session. */
static void listen_maybe_free(rt_listener *l) {
    if (rt_accept_targets(l->accept) > 0 || l->nsessions > 0)
        return;
    rt_engine *e = l->eng;
    for (rt_listener **pp = &e->listeners; *pp; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    rt_log(2, "port closed: nothing listens or is connected on it");
    rt_group_free(l->group);
    rt_accept_free(l->accept);
    rudp_replay_del(l->replay);
    rt_udp_free(l->udp);
    free(l);
}

void rt_listen_target_gone(rt_listener *l, int id) {
    rt_accept_remove(l->accept, id);
    listen_maybe_free(l);
}

void rt_listen_validated(rt_listener *l) {
    if (l->unvalidated > 0)
        l->unvalidated--;
}

void rt_listen_forget_session(rt_listener *l, rt_sess *rs) {
    if (rt_sess_unvalidated(rs))
        rt_listen_validated(l);
    listen_route(l, rs, false);
    rt_accept_forget_session(l->accept, rs);
    l->nsessions--;
    listen_maybe_free(l);
}

/* Returns this engine's port bound to |addr|, or NULL. */
static rt_listener *listen_find(rt_engine *e, const struct sockaddr_storage *addr) {
    for (rt_listener *l = e->listeners; l; l = l->next)
        if (rt_addr_same(&l->addr, addr))
            return l;
    return NULL;
}

/* rt_accept callback: the port gained its first listener or lost its
 * last: its clients are told (their connects then wait for an answer). */
static void listen_on_targets(void *ctx, unsigned ntargets) {
    rt_listener *l = ctx;
    rt_sess_set_listening(l->eng, l, ntargets > 0);
}

/* Creates a port serving the bound UDP socket |fd| (taken over).  Returns
 * it, or NULL (fd closed) when out of memory. */
static rt_listener *listen_port(rt_engine *e, int fd, bool v6only) {
    rt_listener *l = calloc(1, sizeof(*l));
    rt_accept *a = l ? rt_accept_new(e, listen_on_targets, l) : NULL;
    if (!l || !a || !(l->udp = rt_udp_listener(e, fd, l))) {
        if (!l || !a)
            rt_sys.close(fd);
        free(a);
        free(l);
        return NULL;
    }
    l->eng = e;
    l->accept = a;
    l->addr = *rt_udp_local(l->udp);
    l->v6only = v6only;
    l->group = rt_group_serve(e, l, &l->addr);
    l->replay = rudp_replay_new(RT_REPLAY_SLOTS); /* NULL: no replay is caught */
    l->next = e->listeners;
    e->listeners = l;
    return l;
}

/* Opens and binds the UDP socket of a port; returns it or an rudp_error.
 * No SO_REUSEADDR: for UDP it would let a second server bind the same port
 * and split our datagrams; processes share a port through rt_group.c. */
static int listen_socket(const struct sockaddr *local, socklen_t len, bool v6only) {
    int fd = rt_sys.socket(local->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return rt_err();
    if (local->sa_family == AF_INET6) {
        int on = v6only; /* like the TCP listener it stands for */
        rt_sys.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    }
    if (rt_sys.bind(fd, local, len) < 0) {
        int err = rt_err();
        rt_sys.close(fd);
        return err;
    }
    return rt_fd_high(fd);
}

int rt_listen_bind(const struct sockaddr_storage *addr, socklen_t len, bool v6only) {
    return listen_socket((const struct sockaddr *)addr, len, v6only);
}

/* --- commands --- */

/* Runs a listen: the port serving the address (made when there is none)
 * feeds the program's listener from now on.  Sets the listener id or an
 * rudp_error as the result. */
static void listen_run(rt_engine *e, rt_cmd *base) {
    listen_cmd *c = (listen_cmd *)base;
    bool v6only = (c->flags & RUDP_RT_LISTEN_V6ONLY) != 0;
    rt_listener *l = listen_find(e, &c->addr);
    if (!l) {
        int fd = listen_socket((struct sockaddr *)&c->addr, c->addrlen, v6only);
        if (fd == RUDP_ERR_SYS(EADDRINUSE)) { /* served by another process's engine? */
            int rv =
                rt_group_join(e, &c->addr, c->addrlen, v6only, c->id, c->name, c->name_len);
            c->base.result = rv == RUDP_OK ? c->id : rv;
            return;
        }
        if (fd < 0) {
            c->base.result = fd;
            return;
        }
        l = listen_port(e, fd, v6only);
    }
    c->base.result =
        l ? rt_accept_add(l->accept, c->id, c->name, c->name_len, false) : RUDP_ERR_NOMEM;
    if (c->base.result == RUDP_OK) {
        c->base.result = c->id;
        rt_log(2, "listening (id %d)", c->id);
    } else if (l) {
        listen_maybe_free(l);
    }
}

int rt_listen_adopt(rt_engine *e, int fd, bool v6only, int id, const char *name,
                    size_t len) {
    rt_listener *l = listen_port(e, fd, v6only);
    int rv = l ? rt_accept_add(l->accept, id, name, len, false) : RUDP_ERR_NOMEM;
    if (rv != RUDP_OK && l)
        listen_maybe_free(l);
    return rv == RUDP_OK ? id : rv;
}

/* Runs an adoption: a port for the UDP socket another process served. */
static void adopt_run(rt_engine *e, rt_cmd *base) {
    listen_cmd *c = (listen_cmd *)base;
    c->base.result = rt_listen_adopt(e, c->fd, c->flags & RUDP_RT_LISTEN_V6ONLY, c->id,
                                     c->name, c->name_len);
    c->fd = -1; /* taken over (or closed) */
}

/* Runs an unlisten: the program's listener gets no more streams; a port
 * left with no listener and no session closes. */
static void unlisten_run(rt_engine *e, rt_cmd *base) {
    listen_cmd *c = (listen_cmd *)base;
    bool found = false;
    for (rt_listener *l = e->listeners; l; l = l->next)
        if ((found = rt_accept_remove(l->accept, c->id))) {
            rt_log(2, "listener %d closed", c->id);
            listen_maybe_free(l); /* may free |l|: not touched after */
            break;
        }
    if (!found)
        rt_group_leave(e, c->id);
    free(c);
}

static void listen_close_fds(rt_cmd *base) {
    listen_cmd *c = (listen_cmd *)base;
    if (c->fd >= 0)
        rt_sys.close(c->fd);
}

/* Makes a listen or adopt command for the AF_UNIX listener |name|.
 * Returns NULL when out of memory or the name is too long. */
static listen_cmd *listen_cmd_new(void (*run)(rt_engine *, rt_cmd *), const char *name,
                                  size_t name_len) {
    listen_cmd *c = name_len <= RT_UNIX_NAME_MAX ? calloc(1, sizeof(*c)) : NULL;
    if (!c)
        return NULL;
    c->base.run = run;
    c->base.close_fds = listen_close_fds;
    c->fd = -1;
    c->id = rt_listen_new_id();
    memcpy(c->name, name, name_len);
    c->name_len = name_len;
    return c;
}

/* Runs |c| on the engine and returns its result; frees |c| unless the
 * engine never ran it. */
static int listen_call(rt_engine *e, listen_cmd *c) {
    int rv = rt_loop_call(e, &c->base);
    if (rv != RUDP_ERR_TIMEDOUT)
        free(c);
    return rv;
}

/* --- the API --- */

int rudp_rt_listen(const struct sockaddr *local, socklen_t len, const char *unix_name,
                   size_t name_len, unsigned flags) {
    int err;
    rt_engine *e = rt_loop_engine(&err);
    if (!e)
        return err;
    listen_cmd *c = len <= sizeof(struct sockaddr_storage)
                        ? listen_cmd_new(listen_run, unix_name, name_len)
                        : NULL;
    if (!c)
        return RUDP_ERR_INVAL;
    memcpy(&c->addr, local, len);
    c->addrlen = len;
    c->flags = flags;
    return listen_call(e, c);
}

int rudp_rt_adopt_listener(int udp_fd, const char *unix_name, size_t name_len) {
    int type = 0, v6only = 0, err;
    socklen_t tlen = sizeof(type), vlen = sizeof(v6only);
    rt_engine *e = rt_loop_engine(&err);
    listen_cmd *c = e ? listen_cmd_new(adopt_run, unix_name, name_len) : NULL;
    if (e && (!c || rt_sys.getsockopt(udp_fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 ||
              type != SOCK_DGRAM))
        err = RUDP_ERR_INVAL;
    else if (e)
        err = rt_fd_nonblock(udp_fd);
    if (!e || err != RUDP_OK) {
        rt_sys.close(udp_fd);
        free(c);
        return err;
    }
    if (rt_sys.getsockopt(udp_fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &vlen) == 0 && v6only)
        c->flags = RUDP_RT_LISTEN_V6ONLY;
    c->fd = rt_fd_high(udp_fd);
    return listen_call(e, c);
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
        size_t len;
        int id;
        const char *name = rt_accept_first(l->accept, &len, &id);
        if (!name) { /* only other processes' listeners: one of them takes it */
            rt_group_hand_over(l->group, rt_udp_fd(l->udp));
            continue;
        }
        rt_group_free(l->group); /* the next owner serves the group's name */
        l->group = NULL;
        int fd = rt_sys.fcntl(rt_udp_fd(l->udp), F_DUPFD_CLOEXEC, 0);
        if (fd >= 0)
            fn(id, fd, name, len, ctx);
    }
}

bool rt_listen_any_target(rt_engine *e) {
    for (rt_listener *l = e->listeners; l; l = l->next)
        if (rt_accept_targets(l->accept) > 0)
            return true;
    return false;
}

void rt_listen_each_fd(rt_engine *e, rt_fd_fn fn, void *ctx) {
    for (rt_listener *l = e->listeners; l; l = l->next) {
        fn(rt_udp_fd(l->udp), ctx);
        rt_group_each_fd(l->group, fn, ctx);
    }
    rt_group_remotes_each_fd(e, fn, ctx);
}
