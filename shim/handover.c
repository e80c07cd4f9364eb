/*
 * handover.c — a rerouted listener outlives the process that opened it.
 *
 * The engine that serves a listener runs in the process that called
 * listen(); processes that inherit the listener (pre-forked workers, or the
 * child of a daemon that forks and lets its parent exit) only accept on the
 * AF_UNIX listener it feeds.  So that the listener keeps working when that
 * process exits first, its destructor hands the listener on: after the exit
 * flush it parks its engine, connects to the AF_UNIX listener from a name
 * of the form "\0rudp-handover-PID-ID" and passes the UDP socket over with
 * SCM_RIGHTS.  Whichever process accepts that connection next (through the
 * shim's accept hook) takes the UDP socket into an engine of its own, marks
 * itself the listener's owner and goes on accepting.  Datagrams that arrive
 * in between wait in the socket's buffer.  When nobody else holds the
 * listener, the hand-over connection dies with it.
 */
#include "shim.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define HANDOVER_PREFIX "rudp-handover-"
#define HANDOVER_MAGIC "RUDPHOV1"
#define HANDOVER_WAIT_MS 1000

/* Writes the abstract name of a hand-over connection; returns its length. */
static size_t handover_name(char *out, size_t cap, int id) {
    int n = snprintf(out + 1, cap - 1, HANDOVER_PREFIX "%d-%d", (int)getpid(), id);

    out[0] = '\0';
    return n < 0 ? 0 : 1 + (size_t)n;
}

/* The one message of a hand-over connection: the magic and one fd. */
typedef struct handover_msg {
    char data[sizeof(HANDOVER_MAGIC)];
    struct iovec iov;
    struct msghdr msg;
    union { /* last: clang sees CMSG_SPACE as not constant */
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
} handover_msg;

/* Points the msghdr of |m| at its own buffers (zeroed). */
static void handover_msg_init(handover_msg *m) {
    memset(m, 0, sizeof(*m));
    m->iov.iov_base = m->data;
    m->iov.iov_len = sizeof(m->data) - 1;
    m->msg.msg_iov = &m->iov;
    m->msg.msg_iovlen = 1;
    m->msg.msg_control = m->ctl.buf;
    m->msg.msg_controllen = sizeof(m->ctl.buf);
}

/* rudp_rt_leave_listeners callback: sends |udp| to the AF_UNIX listener
 * |name| over a hand-over connection, then closes it. */
static void handover_send(int id, int udp, const char *name, size_t name_len, void *ctx) {
    struct sockaddr_un me = {.sun_family = AF_UNIX}, them = {.sun_family = AF_UNIX};
    size_t off = offsetof(struct sockaddr_un, sun_path), mlen;
    handover_msg m;
    struct cmsghdr *cm;
    int s;

    (void)ctx;
    mlen = handover_name(me.sun_path, sizeof(me.sun_path), id);
    if (name_len > sizeof(them.sun_path))
        name_len = sizeof(them.sun_path);
    memcpy(them.sun_path, name, name_len);
    s = RUDP_REAL(socket)(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) {
        RUDP_REAL(close)(udp);
        return;
    }
    handover_msg_init(&m);
    memcpy(m.data, HANDOVER_MAGIC, sizeof(m.data) - 1);
    cm = CMSG_FIRSTHDR(&m.msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &udp, sizeof(int));
    if (RUDP_REAL(bind)(s, (struct sockaddr *)&me, (socklen_t)(off + mlen)) < 0 ||
        RUDP_REAL(connect)(s, (struct sockaddr *)&them, (socklen_t)(off + name_len)) < 0 ||
        RUDP_REAL(sendmsg)(s, &m.msg, MSG_NOSIGNAL) < 0)
        rudp_log(RUDP_LOG_DEBUG, "listener %d not handed over: %s", id, strerror(errno));
    else
        rudp_log(RUDP_LOG_DEBUG, "listener %d offered to the processes sharing it", id);
    RUDP_REAL(close)(s);
    RUDP_REAL(close)(udp);
}

void rudp_listeners_hand_over(void) {
    rudp_rt_leave_listeners(handover_send, NULL);
}

/* Receives the UDP socket sent over hand-over connection |nfd|; returns it
 * or -1. */
static int handover_recv(int nfd) {
    handover_msg m;
    struct pollfd p = {.fd = nfd, .events = POLLIN};
    struct cmsghdr *cm;
    int udp = -1;

    handover_msg_init(&m);
    if (poll(&p, 1, HANDOVER_WAIT_MS) != 1 ||
        RUDP_REAL(recvmsg)(nfd, &m.msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT) !=
            (ssize_t)sizeof(m.data) - 1)
        return -1;
    for (cm = CMSG_FIRSTHDR(&m.msg); cm != NULL; cm = CMSG_NXTHDR(&m.msg, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
            cm->cmsg_len == CMSG_LEN(sizeof(int)))
            memcpy(&udp, CMSG_DATA(cm), sizeof(int));
    if (udp >= 0 && memcmp(m.data, HANDOVER_MAGIC, sizeof(m.data) - 1) != 0) {
        RUDP_REAL(close)(udp);
        udp = -1;
    }
    return udp;
}

/* What the new owner of a listener writes into every fd that names it. */
typedef struct handover_owner {
    const rudp_fd_entry *l;
    int id;
} handover_owner;

/* rudp_fd_foreach callback: makes this process the owner of each fd of the
 * listener in |ctx|. */
static void handover_claim(int fd, rudp_fd_entry *e, void *ctx) {
    const handover_owner *o = ctx;
    rudp_fd_entry cur;

    (void)e;
    if (rudp_fd_snapshot(fd, &cur) != RUDP_FD_LISTENER ||
        cur.lname_len != o->l->lname_len ||
        memcmp(cur.lname, o->l->lname, cur.lname_len) != 0)
        return;
    cur.owner = getpid();
    cur.listener_id = o->id;
    rudp_fd_publish(fd, &cur);
}

bool rudp_listener_take_over(int nfd, const rudp_fd_entry *l) {
    struct sockaddr_un sun;
    socklen_t slen = sizeof(sun);
    size_t off = offsetof(struct sockaddr_un, sun_path);
    struct ucred cred;
    socklen_t clen = sizeof(cred);
    handover_owner o = {.l = l};
    int udp;

    if (RUDP_REAL(getpeername)(nfd, (struct sockaddr *)&sun, &slen) < 0 ||
        slen < off + 1 + sizeof(HANDOVER_PREFIX) - 1 || sun.sun_path[0] != '\0' ||
        memcmp(sun.sun_path + 1, HANDOVER_PREFIX, sizeof(HANDOVER_PREFIX) - 1) != 0)
        return false;
    /* Only root or our own user may hand us a socket to serve (servers
     * such as nginx listen as root and accept as an unprivileged user). */
    if (RUDP_REAL(getsockopt)(nfd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 ||
        (cred.uid != 0 && cred.uid != geteuid())) {
        rudp_log(RUDP_LOG_ERROR, "hand-over of a listener from another user ignored");
        RUDP_REAL(close)(nfd);
        return true;
    }
    if ((udp = handover_recv(nfd)) < 0) {
        rudp_log(RUDP_LOG_ERROR, "hand-over of listener (port %u) carried no socket",
                 rudp_addr_port((const struct sockaddr *)&l->local));
        RUDP_REAL(close)(nfd);
        return true;
    }
    o.id = rudp_rt_adopt_listener(udp, l->lname, l->lname_len);
    if (o.id >= 0) {
        rudp_fd_foreach(0, ~0u, handover_claim, &o);
        rudp_log(RUDP_LOG_INFO, "took over listener (port %u) from process %d",
                 rudp_addr_port((const struct sockaddr *)&l->local), (int)cred.pid);
    } else {
        rudp_log(RUDP_LOG_ERROR, "could not take over listener (port %u): %s",
                 rudp_addr_port((const struct sockaddr *)&l->local),
                 strerror(rudp_errno(o.id)));
    }
    RUDP_REAL(close)(nfd);
    return true;
}
