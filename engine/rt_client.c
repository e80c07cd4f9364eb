/*
 * rt_client.c — client sessions: rudp_rt_connect and the table of servers
 * this process talks to.
 *
 * A client process has one session per server address (a listening port),
 * on a UDP socket of its own (rt_udp.c).  A connect reuses the live session
 * to its server, established or not, so a second connection costs no
 * handshake; a session nobody used for half the idle timeout is closed
 * (rt_sess.c).
 *
 * The table lists every live client session with its server address.  The
 * engine thread changes it; application threads read it, under its mutex,
 * for rudp_rt_peer_warm: a connect to a server with an established session
 * is open at once, so the shim need not make the socket unwritable first.
 */
#include "rt.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* One live client session. */
typedef struct client_ent {
    struct sockaddr_storage server;
    struct sockaddr_storage local; /* its UDP socket's address */
    rt_sess *rs;
    bool warm;    /* established */
    bool closing; /* not to be reused */
} client_ent;

struct rt_clients {
    pthread_mutex_t lock; /* the table: written by the engine, read by anyone */
    client_ent *ent;
    uint32_t n, cap;
};

/* A connect from an application thread. */
typedef struct connect_cmd {
    rt_cmd base;
    int fd;     /* the engine's end of the socketpair */
    int udp_fd; /* a UDP socket connected to dst for a new session, or -1 */
    struct sockaddr_storage dst;
    socklen_t dstlen;
    size_t filler;
    rudp_slot_ref slot;
} connect_cmd;

rt_clients *rt_clients_new(void) {
    rt_clients *c = calloc(1, sizeof(*c));
    if (c)
        pthread_mutex_init(&c->lock, NULL);
    return c;
}

/* --- addresses --- */

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

/* --- the table --- */

/* Returns the entry of |rs|, or NULL.  Under the lock. */
static client_ent *clients_of(rt_clients *c, const rt_sess *rs) {
    for (uint32_t i = 0; i < c->n; i++)
        if (c->ent[i].rs == rs)
            return &c->ent[i];
    return NULL;
}

/* Makes room in the table for one more session.  Returns RUDP_OK or
 * RUDP_ERR_NOMEM.  Engine thread (the only writer). */
static int clients_reserve(rt_clients *c) {
    if (c->n < c->cap)
        return RUDP_OK;
    uint32_t cap = c->cap ? 2 * c->cap : 8;
    pthread_mutex_lock(&c->lock);
    client_ent *v = realloc(c->ent, cap * sizeof(*v));
    if (v) {
        c->ent = v;
        c->cap = cap;
    }
    pthread_mutex_unlock(&c->lock);
    return v ? RUDP_OK : RUDP_ERR_NOMEM;
}

/* Adds client session |rs| to the table (room was reserved). */
static void clients_add(rt_clients *c, rt_sess *rs, const struct sockaddr_storage *server) {
    client_ent ent = {.server = *server, .local = *rt_udp_local(rt_sess_udp(rs)), .rs = rs};
    pthread_mutex_lock(&c->lock);
    c->ent[c->n++] = ent;
    pthread_mutex_unlock(&c->lock);
}

/* Sets the warm and closing marks of |rs|'s entry. */
static void clients_mark(rt_sess *rs, bool warm, bool closing) {
    rt_clients *c = rt_sess_engine(rs)->clients;
    pthread_mutex_lock(&c->lock);
    client_ent *ent = clients_of(c, rs);
    if (ent) {
        ent->warm = warm;
        ent->closing = closing;
    }
    pthread_mutex_unlock(&c->lock);
}

void rt_client_established(rt_sess *rs) {
    clients_mark(rs,
                 rt_sess_established(rs) && rudp_session_peer_listening(rt_sess_core(rs)),
                 false);
}

void rt_client_closing(rt_sess *rs) {
    clients_mark(rs, false, true);
}

void rt_client_forget(rt_sess *rs) {
    rt_clients *c = rt_sess_engine(rs)->clients;
    pthread_mutex_lock(&c->lock);
    client_ent *ent = clients_of(c, rs);
    if (ent)
        *ent = c->ent[--c->n];
    pthread_mutex_unlock(&c->lock);
}

/* Returns the live session to |server| a new stream may use, or NULL;
 * copies its UDP socket's address to |local| when not NULL.  Any thread. */
static rt_sess *clients_find(rt_clients *c, const struct sockaddr_storage *server,
                             struct sockaddr_storage *local) {
    rt_sess *rs = NULL;
    pthread_mutex_lock(&c->lock);
    for (uint32_t i = 0; i < c->n && !rs; i++) {
        if (c->ent[i].closing || !rt_addr_same(&c->ent[i].server, server))
            continue;
        rs = c->ent[i].rs;
        if (local)
            *local = c->ent[i].local;
    }
    pthread_mutex_unlock(&c->lock);
    return rs;
}

bool rudp_rt_peer_warm(const struct sockaddr *dst, socklen_t len) {
    rt_engine *e = rt_loop_running();
    struct sockaddr_storage a;
    if (!e || len > sizeof(a))
        return false;
    memset(&a, 0, sizeof(a));
    memcpy(&a, dst, len);
    addr_unmap(&a, &len);
    bool warm = false;
    pthread_mutex_lock(&e->clients->lock);
    for (uint32_t i = 0; i < e->clients->n && !warm; i++)
        warm = e->clients->ent[i].warm && rt_addr_same(&e->clients->ent[i].server, &a);
    pthread_mutex_unlock(&e->clients->lock);
    return warm;
}

/* --- connecting --- */

/* Creates a client session toward |dst| on the connected UDP socket
 * |fd| (taken over; -1: opened here).  Returns it, or NULL with *err set. */
static rt_sess *client_new(rt_engine *e, const struct sockaddr_storage *dst, socklen_t len,
                           int fd, int *err) {
    *err = RUDP_ERR_NOMEM;
    if (fd < 0 && (fd = rt_udp_open_connected(dst, len)) < 0) {
        *err = fd;
        return NULL;
    }
    if (clients_reserve(e->clients) != RUDP_OK) {
        rt_sys.close(fd);
        return NULL;
    }
    rt_udp *u = rt_udp_client(e, fd); /* closes fd when it fails */
    if (!u)
        return NULL;
    rudp_addr ra = {.len = len};
    memcpy(ra.bytes, dst, len);
    rudp_settings set = e->cfg.settings;
    set.wall_ms = rt_wall_ms();
    if (!set.psk_set && e->cfg.ticket_load)
        set.ticket_set = e->cfg.ticket_load(&ra, &set.ticket);
    rudp_tstamp now = rt_now();
    rt_qlog *q = rt_qlog_new(e, &set, true, now);
    rudp_session *s = rudp_session_new_client(&set, rt_random64(), &ra, now);
    rt_sess *rs = s ? rt_sess_new(e, s, u, NULL, dst, len) : NULL;
    if (!rs) {
        rt_qlog_free(q);
        rt_udp_free(u);
        return NULL;
    }
    rt_sess_set_qlog(rs, q, rt_udp_local(u));
    rt_udp_set_session(u, rs);
    clients_add(e->clients, rs, dst);
    rudp_session_set_mtu_ceiling(s, rt_udp_path_ceiling(fd, dst->ss_family));
    return rs;
}

/* Fails a connect before any bridge exists: the slot says why (and is
 * retired, as a bridge's is when it ends), and the program's end sees EOF. */
static void connect_fail(rt_engine *e, connect_cmd *c, int err) {
    if (c->slot.slot)
        rudp_slot_fail(c->slot.slot, err);
    if (c->slot.slot && c->slot.eid == rudp_board_eid(e->board))
        rudp_board_retire(e->board, c->slot.index);
    rt_fd_drain_but_one(c->fd, c->filler);
    rt_sys.shutdown(c->fd, SHUT_RDWR);
    rt_sys.close(c->fd);
}

/* Runs a connect on the engine thread: a stream on the session to its
 * server (made when there is none), bridged to the program's end. */
static void connect_run(rt_engine *e, rt_cmd *base) {
    connect_cmd *c = (connect_cmd *)base;
    int err = RUDP_OK;
    rt_sess *rs = clients_find(e->clients, &c->dst, NULL);
    if (rs && c->udp_fd >= 0)
        rt_sys.close(c->udp_fd); /* a session came up meanwhile */
    else if (!rs)
        rs = client_new(e, &c->dst, c->dstlen, c->udp_fd, &err);
    uint64_t sid;
    if (rs)
        err = rudp_stream_open(rt_sess_core(rs), &sid);
    rt_bridge *b =
        err == RUDP_OK ? rt_bridge_new(rs, sid, c->fd, &c->slot, c->filler) : NULL;
    if (!b) {
        connect_fail(e, c, err != RUDP_OK ? err : RUDP_ERR_NOMEM);
    } else {
        if (rt_sess_established(rs) && rudp_session_peer_listening(rt_sess_core(rs)))
            rt_bridge_connected(b); /* else it waits for the server's answer */
        rt_sess_touch(rs);
    }
    free(c);
}

static void connect_close_fds(rt_cmd *base) {
    connect_cmd *c = (connect_cmd *)base;
    rt_sys.close(c->fd);
    if (c->udp_fd >= 0)
        rt_sys.close(c->udp_fd);
}

/* Finds the local address a connection to |dst| reports (getsockname): the
 * UDP socket's of the live session to |dst|, or else of the UDP socket a new
 * session will use, opened here and returned (-1 when it could not be: the
 * engine tries again and reports the error in the slot; the address is
 * then the wildcard). */
static int client_local(rt_engine *e, const struct sockaddr_storage *dst, socklen_t dstlen,
                        struct sockaddr_storage *out) {
    memset(out, 0, sizeof(*out));
    out->ss_family = dst->ss_family;
    if (clients_find(e->clients, dst, out))
        return -1;
    int fd = rt_udp_open_connected(dst, dstlen);
    socklen_t len = sizeof(*out);
    if (fd >= 0 && rt_sys.getsockname(fd, (struct sockaddr *)out, &len) < 0) {
        memset(out, 0, sizeof(*out));
        out->ss_family = dst->ss_family;
    }
    return fd < 0 ? -1 : fd;
}

int rudp_rt_connect(int engine_fd, const struct sockaddr *dst, socklen_t dstlen,
                    size_t filler, const rudp_slot_ref *slot,
                    struct sockaddr_storage *local_out) {
    int err;
    rt_engine *e = rt_loop_engine(&err);
    if (!e)
        return err;
    if (dstlen > sizeof(struct sockaddr_storage))
        return RUDP_ERR_INVAL;
    connect_cmd *c = calloc(1, sizeof(*c));
    if (!c)
        return RUDP_ERR_NOMEM;
    c->base.run = connect_run;
    c->base.close_fds = connect_close_fds;
    c->fd = rt_fd_high(engine_fd);
    memcpy(&c->dst, dst, dstlen);
    c->dstlen = dstlen;
    addr_unmap(&c->dst, &c->dstlen);
    c->filler = filler;
    c->slot = *slot;
    struct sockaddr_storage local;
    c->udp_fd = client_local(e, &c->dst, c->dstlen, &local);
    if (local_out)
        *local_out = local;
    rt_loop_send(e, &c->base);
    return RUDP_OK;
}
