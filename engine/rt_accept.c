/*
 * rt_accept.c — handing the streams clients open to the program: the
 * listeners a port feeds, and the queue of streams that wait for them.
 *
 * A port (rt_listen.c) feeds one or more of the program's AF_UNIX
 * listeners, its targets: one per listening socket of the program on that
 * address (SO_REUSEPORT groups, a listener closed and opened again while
 * old connections live on, processes that share the port).  Every stream a
 * client opens goes to the next target in turn: the engine connects a fresh
 * AF_UNIX socket to it, bound to an abstract name that carries the board
 * slot and the TCP-level addresses (board.h), so accept() is the kernel's
 * own.  A target whose listener has gone (ECONNREFUSED, ENOENT) is dropped.
 *
 * When every target's queue is full (EAGAIN) the stream waits, in order,
 * and is tried again every RT_ACCEPT_RETRY_S, as a TCP client whose SYN the
 * kernel dropped waits and retransmits; after RT_ACCEPT_WAIT_NS it is
 * refused.  With no target left, streams are refused at once (RST refused:
 * ECONNREFUSED at the client), except in the moment after the program
 * closed its last listener: a client that had not yet heard of it may have
 * opened a stream on a warm session, its connect already complete, where
 * TCP's would have failed and been retried.  Such a stream waits up to
 * RT_RELISTEN_WAIT_NS for the program to listen again (a server that
 * re-listens for each job), as the retried connect would have found it.
 */
#include "rt.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

/* A stream waiting for room in full listener queues is tried again every
 * RT_ACCEPT_RETRY_S, and refused after RT_ACCEPT_WAIT_NS (kernel TCP's
 * client gives up a SYN nobody answers after about two minutes). */
#define RT_ACCEPT_RETRY_S 0.01
#define RT_ACCEPT_WAIT_NS RUDP_SEC(60)
/* How long after its last listener closed a port keeps the streams of
 * clients that may not know it yet, for a listener to come back. */
#define RT_RELISTEN_WAIT_NS RUDP_SEC(1)

/* One of the program's AF_UNIX listeners. */
typedef struct acc_target {
    int id;
    bool remote; /* another process's listener (rt_group.c) */
    char name[RT_UNIX_NAME_MAX];
    size_t name_len;
    struct acc_target *next;
} acc_target;

/* A stream a peer opened while every target's queue was full. */
typedef struct acc_wait {
    rt_sess *rs;
    uint64_t sid;
    rudp_tstamp since;
    struct acc_wait *next;
} acc_wait;

struct rt_accept {
    rt_engine *eng;
    void (*on_change)(void *ctx, unsigned ntargets); /* 0 <-> some */
    void *ctx;
    acc_target *targets;
    acc_target *turn; /* the target the next stream goes to first */
    unsigned ntargets;
    rudp_tstamp emptied; /* when the last target went (0: never had one) */
    acc_wait *waiting, **waiting_tail;
    ev_timer retry;
};

static void accept_on_retry(struct ev_loop *loop, ev_timer *t, int revents);

rt_accept *rt_accept_new(rt_engine *e, void (*on_change)(void *ctx, unsigned ntargets),
                         void *ctx) {
    rt_accept *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->eng = e;
    a->on_change = on_change;
    a->ctx = ctx;
    a->waiting_tail = &a->waiting;
    ev_timer_init(&a->retry, accept_on_retry, 0.0, 0.0);
    a->retry.data = a;
    return a;
}

/* --- targets --- */

int rt_accept_add(rt_accept *a, int id, const char *name, size_t len, bool remote) {
    acc_target *t = calloc(1, sizeof(*t));
    if (!t || len > sizeof(t->name)) {
        free(t);
        return RUDP_ERR_NOMEM;
    }
    t->id = id;
    t->remote = remote;
    memcpy(t->name, name, len);
    t->name_len = len;
    acc_target **pp = &a->targets;
    while (*pp)
        pp = &(*pp)->next;
    *pp = t; /* in order: the first is the one a hand-over goes to */
    if (a->ntargets++ == 0 && a->on_change)
        a->on_change(a->ctx, a->ntargets);
    return RUDP_OK;
}

/* Unlinks and frees target |t|. */
static void accept_drop(rt_accept *a, acc_target *t) {
    acc_target **pp = &a->targets;
    while (*pp != t)
        pp = &(*pp)->next;
    *pp = t->next;
    if (a->turn == t)
        a->turn = t->next;
    free(t);
    if (--a->ntargets > 0)
        return;
    a->emptied = rt_now();
    if (a->on_change)
        a->on_change(a->ctx, 0);
}

bool rt_accept_remove(rt_accept *a, int id) {
    for (acc_target *t = a->targets; t; t = t->next)
        if (t->id == id) {
            accept_drop(a, t);
            return true;
        }
    return false;
}

unsigned rt_accept_targets(const rt_accept *a) {
    return a->ntargets;
}

const char *rt_accept_first(const rt_accept *a, size_t *len, int *id) {
    for (const acc_target *t = a->targets; t; t = t->next)
        if (!t->remote) {
            *len = t->name_len;
            *id = t->id;
            return t->name;
        }
    return NULL;
}

/* --- handing a stream over --- */

/* Connects a fresh AF_UNIX socket, named after the connection, to target
 * |t|.  Returns the fd, or an rudp_error (RUDP_ERR_SYS(EAGAIN): its queue
 * is full). */
static int accept_dial(const acc_target *t, rt_sess *rs, const rudp_slot_ref *slot) {
    struct sockaddr_un me = {.sun_family = AF_UNIX}, them = {.sun_family = AF_UNIX};
    size_t mlen = rudp_board_name_encode(me.sun_path, slot, rt_sess_peer(rs, NULL),
                                         rt_sess_local(rs));
    memcpy(them.sun_path, t->name, t->name_len);
    int fd = rt_sys.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return rt_err();
    fd = rt_fd_high(fd);
    socklen_t ml = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + mlen);
    socklen_t tl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + t->name_len);
    if (rt_sys.bind(fd, (struct sockaddr *)&me, ml) < 0 ||
        rt_sys.connect(fd, (struct sockaddr *)&them, tl) < 0) {
        int err = rt_err();
        rt_sys.close(fd);
        return err;
    }
    return fd;
}

/* Dials the targets in turn, from a->turn, dropping those whose listener
 * has gone.  Returns the fd of the first that takes the connection, or
 * RUDP_ERR_SYS(EAGAIN) when every queue is full, or another rudp_error
 * (RUDP_ERR_REFUSED: no target left). */
static int accept_dial_any(rt_accept *a, rt_sess *rs, const rudp_slot_ref *slot) {
    int fd = RUDP_ERR_REFUSED;
    unsigned tries = a->ntargets;
    for (unsigned i = 0; i < tries && a->targets; i++) {
        acc_target *t = a->turn ? a->turn : a->targets;
        a->turn = t->next;
        fd = accept_dial(t, rs, slot);
        if (fd >= 0)
            return fd;
        if (fd != RUDP_ERR_SYS(EAGAIN) && fd != RUDP_ERR_SYS(EINTR)) {
            rt_log(2, "listener %d is gone: %s", t->id, strerror(RUDP_ERR_SYS_ERRNO(fd)));
            accept_drop(a, t);
            fd = a->targets ? RUDP_ERR_SYS(EAGAIN) : RUDP_ERR_REFUSED;
        }
    }
    return fd;
}

void rt_accept_refuse(rt_sess *rs, uint64_t sid) {
    rudp_stream_reset(rt_sess_core(rs), sid, 1 /* refused */);
    rudp_stream_release(rt_sess_core(rs), sid);
    rt_sess_touch(rs);
}

/* Hands stream |sid| of |rs| to a target.  Returns RUDP_OK (accepted, or
 * refused with a reset) or RUDP_ERR_WOULDBLOCK when every target's queue
 * is full and the stream should wait. */
static int accept_one(rt_accept *a, rt_sess *rs, uint64_t sid) {
    rudp_board *board = a->eng->board;
    rudp_slot_ref slot = {0};
    int fd = RUDP_ERR_NOMEM; /* the board is full */
    if (rudp_board_alloc(board, RUDP_SLOT_CONNECTED, &slot) == 0)
        fd = accept_dial_any(a, rs, &slot);
    rt_bridge *b = fd >= 0 ? rt_bridge_new(rs, sid, fd, &slot, 0) : NULL;
    if (b) {
        rt_bridge_accepted(b);
        return RUDP_OK;
    }
    if (fd >= 0)
        rt_sys.close(fd);
    if (slot.slot) /* the program may have it queued, and read its slot */
        rudp_board_retire(board, slot.index);
    if (fd == RUDP_ERR_SYS(EAGAIN))
        return RUDP_ERR_WOULDBLOCK;
    rt_log(2, "refusing stream %llu: %s", (unsigned long long)sid,
           RUDP_ERR_IS_SYS(fd) ? strerror(RUDP_ERR_SYS_ERRNO(fd)) : rudp_strerror(fd));
    rt_accept_refuse(rs, sid);
    return RUDP_OK;
}

/* --- waiting --- */

/* Queues stream |sid| of |rs| behind the others waiting. */
static void accept_wait(rt_accept *a, rt_sess *rs, uint64_t sid) {
    acc_wait *w = calloc(1, sizeof(*w));
    if (!w) {
        rt_accept_refuse(rs, sid);
        return;
    }
    w->rs = rs;
    w->sid = sid;
    w->since = rt_now();
    *a->waiting_tail = w;
    a->waiting_tail = &w->next;
    rt_sess_waiting(rs, 1);
    rt_log(3, "stream %llu waits: %s", (unsigned long long)sid,
           a->targets ? "the listener's queue is full" : "the listener has just closed");
    if (!ev_is_active(&a->retry)) {
        ev_timer_set(&a->retry, RT_ACCEPT_RETRY_S, RT_ACCEPT_RETRY_S);
        ev_timer_start(a->eng->loop, &a->retry);
    }
}

/* Returns true while the port's last listener closed so recently that a
 * program listening again would take streams waiting now. */
static bool accept_relisten_window(const rt_accept *a, rudp_tstamp now) {
    return a->emptied != 0 && now - a->emptied <= RT_RELISTEN_WAIT_NS;
}

void rt_accept_stream(rt_accept *a, rt_sess *rs, uint64_t sid) {
    if (!a->targets) {
        if (accept_relisten_window(a, rt_now()) &&
            !rudp_session_listening_known(rt_sess_core(rs)))
            accept_wait(a, rs, sid); /* its client may not know yet */
        else
            rt_accept_refuse(rs, sid);
        return;
    }
    if (!a->waiting && accept_one(a, rs, sid) != RUDP_ERR_WOULDBLOCK)
        return;
    accept_wait(a, rs, sid); /* others wait already: they go first */
}

/* Gives waiting stream |w| another try.  Returns RUDP_ERR_WOULDBLOCK when
 * it must wait on, RUDP_OK when it is settled (accepted, refused, or
 * gone).  A stream whose session has ended since (which resets its
 * streams) is still accepted: the bytes it acknowledged are the program's,
 * as those of a TCP connection in the accept queue whose client has gone;
 * the bridge hands them over, then EOF or the session's error. */
static int accept_retry_one(rt_accept *a, acc_wait *w, rudp_tstamp now) {
    rudp_session *s = rt_sess_core(w->rs);
    rudp_stream_info si;
    if (rudp_stream_get_info(s, w->sid, &si) != RUDP_OK)
        return RUDP_OK; /* gone with its session's streams */
    if (si.state == RUDP_STREAM_RESET && !rt_sess_closing(w->rs)) {
        rudp_stream_release(s, w->sid); /* the peer gave up */
        rt_sess_touch(w->rs);
        return RUDP_OK;
    }
    bool closed = !a->targets && !accept_relisten_window(a, now);
    if (closed || now - w->since > RT_ACCEPT_WAIT_NS) {
        rt_log(2, "refusing stream %llu: %s", (unsigned long long)w->sid,
               closed ? "listener closed" : "the listener's queue stayed full");
        rt_accept_refuse(w->rs, w->sid);
        return RUDP_OK;
    }
    return a->targets ? accept_one(a, w->rs, w->sid) : RUDP_ERR_WOULDBLOCK;
}

/* ev_timer callback: tries the waiting streams in the order they came,
 * until the queues are full again. */
static void accept_on_retry(struct ev_loop *loop, ev_timer *t, int revents) {
    rt_accept *a = t->data;
    rudp_tstamp now = rt_now();
    while (a->waiting) {
        acc_wait *w = a->waiting;
        if (accept_retry_one(a, w, now) == RUDP_ERR_WOULDBLOCK)
            return;
        a->waiting = w->next;
        rt_sess_waiting(w->rs, -1);
        free(w);
    }
    a->waiting_tail = &a->waiting;
    ev_timer_stop(loop, t);
}

void rt_accept_forget_session(rt_accept *a, rt_sess *rs) {
    acc_wait **pp = &a->waiting;
    while (*pp) {
        acc_wait *w = *pp;
        if (w->rs != rs) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        free(w);
    }
    a->waiting_tail = &a->waiting;
    for (acc_wait *w = a->waiting; w; w = w->next)
        a->waiting_tail = &w->next;
    if (!a->waiting)
        ev_timer_stop(a->eng->loop, &a->retry);
}

void rt_accept_free(rt_accept *a) {
    ev_timer_stop(a->eng->loop, &a->retry);
    while (a->waiting) {
        acc_wait *w = a->waiting;
        a->waiting = w->next;
        rt_accept_refuse(w->rs, w->sid);
        rt_sess_waiting(w->rs, -1);
        free(w);
    }
    a->on_change = NULL; /* the port is going */
    while (a->targets)
        accept_drop(a, a->targets);
    free(a);
}
