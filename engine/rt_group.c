/*
 * rt_group.c — a listening port shared by processes: SO_REUSEPORT workers
 * that each open their own listener, or a server started again while the
 * old one still finishes its connections.
 *
 * One engine serves a port's UDP socket: the first to bind it, the owner.
 * The kernel has already allowed another process's listener on the address
 * (the shim keeps its TCP socket listening), so when that process's engine
 * finds the UDP port taken it joins: it connects to the owner's control
 * socket, an abstract AF_UNIX SOCK_SEQPACKET socket named after the
 * address, and registers its program's AF_UNIX listener.  The owner adds
 * it to the port's targets (rt_accept.c) and dials it for new streams as
 * it dials its own program's: the sessions and bridges stay in the owner's
 * engine.  With the registration comes the owner's board, a memory file
 * the member maps, so the slots of the connections it accepts resolve.
 * Only a process of the owner's user, or root, may join.
 *
 * The control connection is the membership: the member closes it when its
 * program closes the listener, and the owner drops the target when it sees
 * the end of it.  When the owner's process exits it hands the UDP socket
 * to a member over that connection (HANDOVER with the descriptor); a member
 * that sees the connection end without one tries every RT_GROUP_RETRY_S to
 * bind the port itself or to join whoever serves it now.
 */
#include "rt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#define RT_GROUP_MAGIC "RUDPGRP1"
#define RT_GROUP_WAIT_MS 2000 /* for the owner's answer to a registration */
/* How long a process that found the UDP port taken waits for its owner's
 * control socket to appear: the owner binds the port first and then opens
 * the socket, and another process may look in between. */
#define RT_GROUP_APPEAR_MS 100
#define RT_GROUP_RETRY_S 0.02
#define RT_GROUP_RETRY_NS RUDP_SEC(3)

enum { GRP_REGISTER = 1, GRP_ACCEPTED, GRP_REFUSED, GRP_HANDOVER };

/* The one kind of message on a control connection. */
typedef struct grp_msg {
    char magic[8];
    uint32_t type;
    uint32_t name_len;
    char name[RT_UNIX_NAME_MAX]; /* REGISTER: the member's AF_UNIX listener */
} grp_msg;

/* Owner side: a member's control connection. */
typedef struct grp_member {
    rt_group *g;
    int id; /* its target's id in this engine */
    int fd;
    ev_io io;
    struct grp_member *next;
} grp_member;

struct rt_group {
    rt_engine *eng;
    rt_listener *port;
    int fd; /* the control socket, listening */
    ev_io io;
    grp_member *members;
};

/* Member side: a listener of this process fed by another process's port. */
typedef struct rt_remote {
    rt_engine *eng;
    int id; /* the listener id the program got */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    bool v6only;
    char name[RT_UNIX_NAME_MAX];
    size_t name_len;
    int fd; /* the control connection, or -1 while rejoining */
    ev_io io;
    ev_timer retry;
    rudp_tstamp retry_until;
    struct rt_remote *next;
} rt_remote;

/* --- messages --- */

/* Writes the control socket's abstract name for |addr|; returns the
 * sockaddr length. */
static socklen_t grp_name(const struct sockaddr_storage *addr, struct sockaddr_un *sun) {
    char ip[INET6_ADDRSTRLEN] = "?";
    const struct sockaddr_in *a4 = (const void *)addr;
    const struct sockaddr_in6 *a6 = (const void *)addr;
    bool v4 = addr->ss_family == AF_INET;
    inet_ntop(addr->ss_family,
              v4 ? (const void *)&a4->sin_addr : (const void *)&a6->sin6_addr, ip,
              sizeof(ip));
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    int n = snprintf(sun->sun_path + 1, sizeof(sun->sun_path) - 1, "rudp-port/%s/%u", ip,
                     ntohs(v4 ? a4->sin_port : a6->sin6_port));
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* Sends a message of |type| (with |name|, and the descriptor |pass| when
 * >= 0).  Returns RUDP_OK or an rudp_error. */
static int grp_send(int fd, uint32_t type, const char *name, size_t len, int pass) {
    grp_msg m = {.type = type, .name_len = (uint32_t)len};
    memcpy(m.magic, RT_GROUP_MAGIC, sizeof(m.magic));
    if (name)
        memcpy(m.name, name, len);
    struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (pass >= 0) {
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = sizeof(ctl.buf);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &pass, sizeof(int));
    }
    return rt_sys.sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)sizeof(m)
               ? RUDP_OK
               : rt_err();
}

/* Receives one message into |m| and the descriptor it carries into *pass
 * (-1 when none).  Returns RUDP_OK, RUDP_ERR_CLOSED at the end of the
 * connection, RUDP_ERR_WOULDBLOCK, or RUDP_ERR_PROTOCOL. */
static int grp_recv(int fd, grp_msg *m, int *pass) {
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct iovec iov = {.iov_base = m, .iov_len = sizeof(*m)};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = ctl.buf,
                        .msg_controllen = sizeof(ctl.buf)};
    *pass = -1;
    ssize_t n = rt_sys.recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return RUDP_ERR_WOULDBLOCK;
    if (n <= 0)
        return RUDP_ERR_CLOSED;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    if (cm && cm->cmsg_type == SCM_RIGHTS && cm->cmsg_len == CMSG_LEN(sizeof(int)))
        memcpy(pass, CMSG_DATA(cm), sizeof(int));
    if (n != (ssize_t)sizeof(*m) ||
        memcmp(m->magic, RT_GROUP_MAGIC, sizeof(m->magic)) != 0 ||
        m->name_len > sizeof(m->name)) {
        if (*pass >= 0)
            rt_sys.close(*pass);
        *pass = -1;
        return RUDP_ERR_PROTOCOL;
    }
    return RUDP_OK;
}

/* --- owner side --- */

/* Drops member |m|: its target goes, its connection closes. */
static void grp_member_free(grp_member *m) {
    rt_group *g = m->g;
    for (grp_member **pp = &g->members; *pp; pp = &(*pp)->next)
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    ev_io_stop(g->eng->loop, &m->io);
    rt_sys.close(m->fd);
    rt_log(2, "listener %d of another process left the port", m->id);
    int id = m->id;
    free(m);
    rt_listen_target_gone(g->port, id); /* may free the port, and |g| */
}

/* Registers the member whose REGISTER message |msg| came: its listener
 * becomes a target, and it gets the board.  Returns RUDP_OK or an
 * rudp_error (the member is refused). */
static int grp_member_register(grp_member *m, const grp_msg *msg) {
    rt_group *g = m->g;
    if (msg->type != GRP_REGISTER || msg->name_len == 0 || msg->name[0] != '\0')
        return RUDP_ERR_PROTOCOL;
    m->id = rt_listen_new_id();
    int rv =
        rt_accept_add(rt_listen_accept(g->port), m->id, msg->name, msg->name_len, true);
    if (rv == RUDP_OK)
        rv = grp_send(m->fd, GRP_ACCEPTED, NULL, 0, g->eng->board_fd);
    if (rv != RUDP_OK) {
        rt_accept_remove(rt_listen_accept(g->port), m->id);
        m->id = -1;
        return rv;
    }
    rt_log(2, "a listener of another process joined the port (id %d)", m->id);
    return RUDP_OK;
}

/* ev_io callback: a member's control connection has a message or ended. */
static void grp_on_member(struct ev_loop *loop, ev_io *w, int revents) {
    grp_member *m = w->data;
    grp_msg msg;
    int pass;
    int rv = grp_recv(m->fd, &msg, &pass);
    if (pass >= 0)
        rt_sys.close(pass);
    if (rv == RUDP_ERR_WOULDBLOCK)
        return;
    if (rv == RUDP_OK && m->id < 0 && grp_member_register(m, &msg) == RUDP_OK)
        return;
    if (m->id < 0)
        grp_send(m->fd, GRP_REFUSED, NULL, 0, -1);
    grp_member_free(m);
}

/* Returns true when the peer of control connection |fd| may join: our
 * own user, or root. */
static bool grp_peer_allowed(int fd) {
    struct ucred cred;
    socklen_t len = sizeof(cred);
    return rt_sys.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
           (cred.uid == geteuid() || cred.uid == 0);
}

/* ev_io callback: a process connects to join the port. */
static void grp_on_accept(struct ev_loop *loop, ev_io *w, int revents) {
    rt_group *g = w->data;
    int fd = rt_sys.accept4(g->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    fd = rt_fd_high(fd);
    grp_member *m = grp_peer_allowed(fd) ? calloc(1, sizeof(*m)) : NULL;
    if (!m) {
        rt_log(1, "a process of another user tried to join a listening port");
        rt_sys.close(fd);
        return;
    }
    m->g = g;
    m->id = -1; /* until it registers */
    m->fd = fd;
    m->next = g->members;
    g->members = m;
    ev_io_init(&m->io, grp_on_member, fd, EV_READ);
    m->io.data = m;
    ev_io_start(g->eng->loop, &m->io);
}

rt_group *rt_group_serve(rt_engine *e, rt_listener *l,
                         const struct sockaddr_storage *addr) {
    struct sockaddr_un sun;
    socklen_t len = grp_name(addr, &sun);
    int fd = rt_sys.socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    rt_group *g = fd >= 0 ? calloc(1, sizeof(*g)) : NULL;
    if (!g || rt_sys.bind(fd, (struct sockaddr *)&sun, len) < 0 ||
        rt_sys.listen(fd, 64) < 0) {
        rt_log(2, "port not shared with other processes: %s", strerror(errno));
        if (fd >= 0)
            rt_sys.close(fd);
        free(g);
        return NULL;
    }
    g->eng = e;
    g->port = l;
    g->fd = rt_fd_high(fd);
    ev_io_init(&g->io, grp_on_accept, g->fd, EV_READ);
    g->io.data = g;
    ev_io_start(e->loop, &g->io);
    return g;
}

void rt_group_free(rt_group *g) {
    if (!g)
        return;
    ev_io_stop(g->eng->loop, &g->io);
    rt_sys.close(g->fd);
    while (g->members) {
        grp_member *m = g->members;
        g->members = m->next;
        ev_io_stop(g->eng->loop, &m->io);
        rt_sys.close(m->fd);
        free(m);
    }
    free(g);
}

bool rt_group_hand_over(rt_group *g, int udp_fd) {
    if (!g)
        return false;
    rt_sys.close(g->fd); /* the name is free for the next owner */
    g->fd = -1;
    for (grp_member *m = g->members; m; m = m->next)
        if (m->id >= 0 && grp_send(m->fd, GRP_HANDOVER, NULL, 0, udp_fd) == RUDP_OK) {
            rt_log(2, "port handed to the process of listener %d", m->id);
            return true;
        }
    return false;
}

void rt_group_each_fd(const rt_group *g, rt_fd_fn fn, void *ctx) {
    if (!g)
        return;
    if (g->fd >= 0)
        fn(g->fd, ctx);
    for (grp_member *m = g->members; m; m = m->next)
        fn(m->fd, ctx);
}

/* --- member side --- */

static void grp_on_owner(struct ev_loop *loop, ev_io *w, int revents);
static void grp_on_retry(struct ev_loop *loop, ev_timer *w, int revents);

/* Connects |fd| to the control socket |sun|, waiting up to
 * RT_GROUP_APPEAR_MS for it to appear.  Returns true when connected. */
static bool grp_connect(int fd, const struct sockaddr_un *sun, socklen_t len) {
    for (int waited = 0;; waited++) {
        if (rt_sys.connect(fd, (const struct sockaddr *)sun, len) == 0)
            return true;
        if (errno != ECONNREFUSED || waited >= RT_GROUP_APPEAR_MS)
            return false;
        poll(NULL, 0, 1); /* the owner is between its bind and its listen */
    }
}

/* Connects to the control socket of the port at |addr| and registers the
 * listener |name|; maps the owner's board.  Returns the connection's fd or
 * an rudp_error (RUDP_ERR_SYS(EADDRINUSE) when nobody answers: the UDP
 * port is another program's). */
static int grp_register(const struct sockaddr_storage *addr, const char *name, size_t len) {
    struct sockaddr_un sun;
    socklen_t sl = grp_name(addr, &sun);
    int fd = rt_sys.socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return rt_err();
    fd = rt_fd_high(fd);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    grp_msg msg;
    int board = -1, rv = RUDP_ERR_SYS(EADDRINUSE);
    if (grp_connect(fd, &sun, sl) && grp_send(fd, GRP_REGISTER, name, len, -1) == RUDP_OK &&
        poll(&p, 1, RT_GROUP_WAIT_MS) == 1 && grp_recv(fd, &msg, &board) == RUDP_OK)
        rv = msg.type == GRP_ACCEPTED ? RUDP_OK : RUDP_ERR_SYS(EADDRINUSE);
    if (board >= 0) {
        board = rt_fd_high(board);
        if (rv != RUDP_OK || !rudp_board_map(board))
            rt_sys.close(board); /* known already, or not one */
    }
    if (rv != RUDP_OK) {
        rt_sys.close(fd);
        return rv;
    }
    rt_fd_nonblock(fd);
    return fd;
}

/* Watches the control connection |fd| of remote |r|. */
static void grp_watch(rt_remote *r, int fd) {
    r->fd = fd;
    ev_io_init(&r->io, grp_on_owner, fd, EV_READ);
    r->io.data = r;
    ev_io_start(r->eng->loop, &r->io);
}

int rt_group_join(rt_engine *e, const struct sockaddr_storage *addr, socklen_t addrlen,
                  bool v6only, int id, const char *name, size_t len) {
    rt_remote *r = calloc(1, sizeof(*r));
    int fd = r ? grp_register(addr, name, len) : RUDP_ERR_NOMEM;
    if (fd < 0) {
        free(r);
        return fd;
    }
    r->eng = e;
    r->id = id;
    r->addr = *addr;
    r->addrlen = addrlen;
    r->v6only = v6only;
    memcpy(r->name, name, len);
    r->name_len = len;
    ev_timer_init(&r->retry, grp_on_retry, 0.0, 0.0);
    r->retry.data = r;
    grp_watch(r, fd);
    r->next = e->remotes;
    e->remotes = r;
    rt_log(2, "listener %d joined a port another process serves", id);
    return RUDP_OK;
}

/* Unlinks remote |r| from the engine's, closes its connection, frees it. */
static void grp_remote_free(rt_remote *r) {
    for (rt_remote **pp = &r->eng->remotes; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    ev_io_stop(r->eng->loop, &r->io);
    ev_timer_stop(r->eng->loop, &r->retry);
    if (r->fd >= 0)
        rt_sys.close(r->fd);
    free(r);
}

bool rt_group_leave(rt_engine *e, int id) {
    for (rt_remote *r = e->remotes; r; r = r->next)
        if (r->id == id) {
            grp_remote_free(r);
            return true;
        }
    return false;
}

/* Serves the port from the UDP socket |udp| (handed over, or bound here):
 * remote |r| becomes this engine's own target, and goes. */
static void grp_become_owner(rt_remote *r, int udp) {
    int rv = rt_listen_adopt(r->eng, udp, r->v6only, r->id, r->name, r->name_len);
    if (rv < 0)
        rt_log(1, "listener %d lost its port: %s", r->id, rudp_strerror(rv));
    else
        rt_log(2, "listener %d serves its port now", r->id);
    grp_remote_free(r);
}

/* Tries once to serve the port again: bind it, or join whoever serves it.
 * Returns true when done (or given up). */
static bool grp_rejoin(rt_remote *r) {
    int udp = rt_listen_bind(&r->addr, r->addrlen, r->v6only);
    if (udp >= 0) {
        grp_become_owner(r, udp);
        return true;
    }
    int fd = grp_register(&r->addr, r->name, r->name_len);
    if (fd >= 0) {
        ev_timer_stop(r->eng->loop, &r->retry);
        grp_watch(r, fd);
        return true;
    }
    if (rt_now() < r->retry_until)
        return false;
    rt_log(1, "listener %d lost its port: nobody serves it", r->id);
    grp_remote_free(r);
    return true;
}

/* ev_timer callback: the next try to serve the port again. */
static void grp_on_retry(struct ev_loop *loop, ev_timer *w, int revents) {
    grp_rejoin(w->data);
}

/* ev_io callback: the owner hands the port over, or went away. */
static void grp_on_owner(struct ev_loop *loop, ev_io *w, int revents) {
    rt_remote *r = w->data;
    grp_msg msg;
    int udp;
    int rv = grp_recv(r->fd, &msg, &udp);
    if (rv == RUDP_ERR_WOULDBLOCK)
        return;
    ev_io_stop(loop, &r->io);
    rt_sys.close(r->fd);
    r->fd = -1;
    if (rv == RUDP_OK && msg.type == GRP_HANDOVER && udp >= 0) {
        grp_become_owner(r, rt_fd_high(udp));
        return;
    }
    if (udp >= 0)
        rt_sys.close(udp);
    r->retry_until = rt_now() + RT_GROUP_RETRY_NS;
    if (!grp_rejoin(r)) {
        ev_timer_set(&r->retry, RT_GROUP_RETRY_S, RT_GROUP_RETRY_S);
        ev_timer_start(loop, &r->retry);
    }
}

void rt_group_remotes_each_fd(rt_engine *e, rt_fd_fn fn, void *ctx) {
    for (rt_remote *r = e->remotes; r; r = r->next)
        if (r->fd >= 0)
            fn(r->fd, ctx);
}
