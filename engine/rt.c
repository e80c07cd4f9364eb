/*
 * rt.c — the engine thread: start-up, the command queue, the clock, fork
 * and exit.  (DESIGN.md §2 rule 3, STYLE.md rule 9.)
 *
 * The engine starts on the first rerouted socket.  It runs one libev loop
 * in its own thread with every signal blocked (signals are the program's).
 * Application threads never touch the loop: they append a command to a
 * mutex-protected queue and call ev_async_send; sends coalesce, so the
 * async callback drains the whole queue.  Start-up is synchronised by the
 * mutex (the loop and the async watcher exist before the thread runs), so
 * a command sent at once is never lost.
 *
 * fork(): pthread_atfork holds the engine lock across the fork, so a child
 * never inherits a half-written queue.  A child of a raw clone(), which
 * runs no atfork handler, is recognised by its pid at its first call.  The
 * child has no engine thread: it forgets the parent's engine (connections
 * it inherited are still served by the parent through their socketpairs),
 * closes the parent's UDP and bridge descriptors so its copies do not keep
 * sockets alive, and starts an engine of its own on its first new rerouted
 * socket.
 *
 * exit(): the shim's destructor calls rudp_rt_exit_flush, which asks the
 * engine to read what every program end still holds, send it with a FIN,
 * and waits until all of it is acknowledged or the linger time passes.
 * Then every session sends GoAway and the process goes: the peer's streams
 * end at once (as when a kernel answers a closed socket) instead of
 * retransmitting their own FINs into silence until an idle timeout.
 */
#include "rt.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* Ceiling of the engine's lowest descriptor number, and how many numbers
 * above it rudp_rt_reserve_fds makes room for. */
#define RT_FD_BASE_MAX 16384
#define RT_FD_RESERVE 256
/* Wasted spins in a row after which rt_spin backs off. */
#define RT_SPIN_MAX_WASTED 4

static rt_engine *engine; /* this process's engine, or NULL */
static pid_t engine_pid;  /* the process that started it */
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static rudp_rt_config config; /* set by rudp_rt_configure */
static bool configured;
static bool atfork_done;

rudp_tstamp rt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (rudp_tstamp)ts.tv_sec * 1000000000ull + (rudp_tstamp)ts.tv_nsec;
}

void rt_log(rt_engine *e, int level, const char *fmt, ...) {
    const rudp_rt_config *c = e ? &e->cfg : &config;
    if (level > c->log_level)
        return;
    char line[512];
    int n = snprintf(line, sizeof(line), "rudp[%d]: ", (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t w = write(c->log_fd >= 0 ? c->log_fd : 2, line, (size_t)n);
    (void)w;
}

/* Returns the lowest descriptor number the engine's own fds take: 512, or
 * half of RLIMIT_NOFILE when that is above 1024, at most RT_FD_BASE_MAX (the
 * fd table costs 8 bytes an entry, and limits run into the millions). */
static int rt_fd_base(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return RT_FD_BASE_MAX;
    if (rl.rlim_cur <= 1024)
        return 512;
    return rl.rlim_cur / 2 > RT_FD_BASE_MAX ? RT_FD_BASE_MAX : (int)(rl.rlim_cur / 2);
}

void rudp_rt_reserve_fds(void) {
    int fd = eventfd(0, EFD_CLOEXEC);
    if (fd < 0)
        return;
    int hi = fcntl(fd, F_DUPFD_CLOEXEC, rt_fd_base() + RT_FD_RESERVE);
    if (hi >= 0)
        close(hi);
    close(fd);
}

int rudp_rt_fd_high(int fd) {
    return rt_fd_adopt(fd);
}

int rt_fd_adopt(int fd) {
    int hi = fcntl(fd, F_DUPFD_CLOEXEC, rt_fd_base());
    if (hi < 0) {
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        return fd;
    }
    close(fd);
    return hi;
}

int rt_fd_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

uint64_t rt_rand(rt_engine *e) {
    uint64_t z = (e->seed += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int rudp_rt_errno(int err) {
    switch (err) {
    case RUDP_OK:
        return 0;
    case RUDP_ERR_REFUSED:
        return ECONNREFUSED;
    case RUDP_ERR_TIMEDOUT:
        return ETIMEDOUT;
    case RUDP_ERR_CLOSED:
        return ECONNABORTED;
    case RUDP_ERR_NOMEM:
        return ENOMEM;
    default: /* reset, peer closed, peer reset, protocol */
        return ECONNRESET;
    }
}

void rudp_rt_configure(const rudp_rt_config *cfg) {
    pthread_mutex_lock(&start_lock);
    config = *cfg;
    configured = true;
    pthread_mutex_unlock(&start_lock);
}

/* --- commands --- */

/* Runs one command on the engine thread and frees it. */
static void rt_run_cmd(rt_engine *e, rt_cmd *c) {
    switch (c->type) {
    case RT_CMD_CONNECT:
        rt_udp_connect(e, c);
        break;
    case RT_CMD_LISTEN:
        rt_udp_listen(e, c);
        break;
    case RT_CMD_UNLISTEN:
        rt_udp_unlisten(e, c->listener_id);
        break;
    case RT_CMD_EXIT_FLUSH:
        break; /* handled in rt_on_wake */
    }
    free(c);
}

/* Starts the exit flush: drains every bridge and arms the deadline. */
static void rt_exit_begin(rt_engine *e) {
    e->exit_begun = true;
    for (rt_udp *u = e->udps; u; u = u->next)
        for (rt_sess *rs = u->sessions; rs; rs = rs->next) {
            for (rt_bridge *b = rs->bridges, *next; b; b = next) {
                next = b->next; /* draining may end (free) the bridge */
                rt_bridge_exit_drain(b);
            }
            rt_sess_touch(rs);
        }
}

/* Wakes the thread waiting in rudp_rt_exit_flush when the flush is over. */
static void rt_exit_check(rt_engine *e) {
    /* Not before the wake-up that asked for the flush has run the commands
     * queued ahead of it: a listen or a connect still in the queue has
     * nothing to flush yet, but must not be forgotten. */
    if (!e->exiting || e->exit_done || !e->exit_begun)
        return;
    if (!rt_all_acked(e) && rt_now() < e->exit_deadline)
        return;
    rt_udp_leave_all(e);
    pthread_mutex_lock(&e->lock);
    e->exit_done = true;
    pthread_cond_broadcast(&e->flushed);
    pthread_mutex_unlock(&e->lock);
}

/* Parks the thread while an application thread asks it to (under the
 * engine lock, which the wait releases). */
static void rt_park_if_asked(rt_engine *e) {
    while (e->park_req) {
        e->parked = true;
        pthread_cond_broadcast(&e->parked_cv);
        pthread_cond_wait(&e->resume_cv, &e->lock);
    }
    e->parked = false;
}

/* ev_async callback: parks if asked, drains the command queue. */
static void rt_on_wake(struct ev_loop *loop, ev_async *w, int revents) {
    rt_engine *e = w->data;
    pthread_mutex_lock(&e->lock);
    rt_park_if_asked(e);
    rt_cmd *c = e->cmd_head;
    e->cmd_head = e->cmd_tail = NULL;
    bool start_exit = e->exiting && !e->exit_done;
    pthread_mutex_unlock(&e->lock);
    while (c) {
        rt_cmd *next = c->next;
        rt_run_cmd(e, c);
        c = next;
    }
    if (start_exit)
        rt_exit_begin(e);
    rt_flush_dirty(e);
    rt_exit_check(e);
}

/* Appends |c| to the queue and wakes the engine. */
static void rt_send(rt_engine *e, rt_cmd *c) {
    c->next = NULL;
    pthread_mutex_lock(&e->lock);
    if (e->cmd_tail)
        e->cmd_tail->next = c;
    else
        e->cmd_head = c;
    e->cmd_tail = c;
    pthread_mutex_unlock(&e->lock);
    ev_async_send(e->loop, &e->wake);
}

/* --- the thread --- */

/* Every libev callback ends here: flush what the turn touched. */
static void rt_on_check(struct ev_loop *loop, ev_prepare *w, int revents) {
    rt_engine *e = w->data;
    rt_flush_dirty(e);
    rt_exit_check(e);
}

/* Counts whether the program answered the delivery that started or last
 * extended the spin (wrote anything since); after RT_SPIN_MAX_WASTED
 * unanswered ones in a row the engine stops spinning for 10 ms per
 * unanswered delivery, at most 1 s: a bulk receiver, which never answers,
 * costs no busy loop. */
static void rt_spin_judge(rt_engine *e, rudp_tstamp now) {
    bool wasted = e->app_reads == e->spin_answers0;
    e->spin_wasted = wasted ? e->spin_wasted + 1 : 0;
    if (e->spin_wasted >= RT_SPIN_MAX_WASTED) {
        unsigned n = e->spin_wasted < 100 ? e->spin_wasted : 100;
        e->spin_resume = now + (rudp_tstamp)n * RUDP_MS(10);
        e->spin_until = now;
    }
}

void rt_spin(rt_engine *e, rudp_tstamp ns) {
    rudp_tstamp now = rt_now();
    if (ev_is_active(&e->spin))
        rt_spin_judge(e, now);
    if (now < e->spin_resume)
        return;
    e->spin_until = now + ns;
    e->spin_answers0 = e->app_reads;
    ev_idle_start(e->loop, &e->spin);
}

/* ev_idle callback (the loop had nothing to do): yields the CPU while the
 * spin lasts, and stops polling once it is over. */
static void rt_on_spin(struct ev_loop *loop, ev_idle *w, int revents) {
    rt_engine *e = w->data;
    rudp_tstamp now = rt_now();
    if (now < e->spin_until) {
        sched_yield(); /* the program we wait for may share this CPU */
        return;
    }
    ev_idle_stop(loop, w);
    rt_spin_judge(e, now);
}

/* The 1 s tick: warm sessions, exit deadline. */
static void rt_on_tick(struct ev_loop *loop, ev_timer *w, int revents) {
    rt_engine *e = w->data;
    rt_udp_tick(e);
}

static void *rt_main(void *arg) {
    rt_engine *e = arg;
    ev_idle_init(&e->spin, rt_on_spin);
    e->spin.data = e;
    ev_timer_init(&e->warm_timer, rt_on_tick, 1.0, 1.0);
    e->warm_timer.data = e;
    ev_timer_start(e->loop, &e->warm_timer);
    ev_prepare prep;
    ev_prepare_init(&prep, rt_on_check);
    prep.data = e;
    ev_prepare_start(e->loop, &prep);
    ev_run(e->loop, 0);
    return NULL;
}

/* The child of a fork: forget the parent's engine, close its descriptors. */
static void rt_atfork_child(void) {
    rt_engine *e = engine;
    engine = NULL;
    pthread_mutex_init(&start_lock, NULL);
    if (!e)
        return;
    for (rt_cmd *c = e->cmd_head; c; c = c->next)
        if (c->type == RT_CMD_CONNECT || c->type == RT_CMD_LISTEN)
            close(c->fd);
    for (rt_udp *u = e->udps; u; u = u->next) {
        close(u->fd);
        for (rt_sess *rs = u->sessions; rs; rs = rs->next)
            for (rt_bridge *b = rs->bridges; b; b = b->next)
                if (b->fd >= 0)
                    close(b->fd);
    }
    /* The parent's memory stays as it is: the child never touches it. */
}

static void rt_atfork_prepare(void) {
    pthread_mutex_lock(&start_lock);
    if (engine)
        pthread_mutex_lock(&engine->lock);
}

static void rt_atfork_parent(void) {
    if (engine)
        pthread_mutex_unlock(&engine->lock);
    pthread_mutex_unlock(&start_lock);
}

/* Creates the engine and its thread; called under start_lock. */
static int rt_create(void) {
    rt_engine *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->cfg = config;
    if (!configured) {
        rudp_settings_default(&e->cfg.settings);
        e->cfg.log_fd = -1;
    }
    if (getrandom(&e->seed, sizeof(e->seed), GRND_NONBLOCK) != sizeof(e->seed))
        e->seed = rt_now() ^ ((uint64_t)getpid() << 32);
    e->board = rudp_board_create();
    e->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (!e->board || !e->loop) {
        free(e);
        return -ENOMEM;
    }
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->flushed, NULL);
    pthread_cond_init(&e->parked_cv, NULL);
    pthread_cond_init(&e->resume_cv, NULL);
    ev_async_init(&e->wake, rt_on_wake);
    e->wake.data = e;
    ev_async_start(e->loop, &e->wake);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rv = pthread_create(&e->thread, NULL, rt_main, e);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rv != 0) {
        ev_loop_destroy(e->loop);
        free(e);
        return -rv;
    }
    pthread_detach(e->thread);
    engine = e;
    engine_pid = getpid();
    rt_log(e, 2, "engine started (board %08x)", e->board->eid);
    return 0;
}

/* A child made by a raw clone() (vsftpd's isolate=YES) skipped the atfork
 * handlers: it holds the parent's engine without its thread.  Forgets it
 * as the fork child handler does (which also makes start_lock anew: the
 * clone may have caught it held). */
static void rt_forget_if_cloned(void) {
    if (engine && engine_pid != getpid())
        rt_atfork_child();
}

int rudp_rt_start(void) {
    rt_forget_if_cloned();
    pthread_mutex_lock(&start_lock);
    if (!atfork_done) {
        pthread_atfork(rt_atfork_prepare, rt_atfork_parent, rt_atfork_child);
        atfork_done = true;
    }
    int rv = engine ? 0 : rt_create();
    pthread_mutex_unlock(&start_lock);
    return rv;
}

rudp_board *rudp_rt_board(void) {
    return rudp_rt_start() == 0 ? engine->board : NULL;
}

/* --- the API --- */

/* Finds the local address a connection to |dst| gets, as getsockname on a
 * connected TCP socket reports it: the routing decision of a connected UDP
 * socket, with that socket's ephemeral port.  Falls back to the wildcard. */
static void rt_local_probe(const struct sockaddr *dst, socklen_t dstlen,
                           struct sockaddr_storage *out) {
    memset(out, 0, sizeof(*out));
    out->ss_family = dst->sa_family;
    int fd = socket(dst->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    socklen_t len = sizeof(*out);
    if (connect(fd, dst, dstlen) < 0 || getsockname(fd, (struct sockaddr *)out, &len) < 0) {
        memset(out, 0, sizeof(*out));
        out->ss_family = dst->sa_family;
    }
    close(fd);
}

int rudp_rt_connect(int engine_fd, const struct sockaddr *dst, socklen_t dstlen,
                    size_t filler, const rudp_slot_ref *slot,
                    struct sockaddr_storage *local_out) {
    int rv = rudp_rt_start();
    if (rv < 0)
        return rv;
    if (dstlen > sizeof(struct sockaddr_storage))
        return -EINVAL;
    rt_cmd *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->type = RT_CMD_CONNECT;
    c->fd = rt_fd_adopt(engine_fd);
    memcpy(&c->addr, dst, dstlen);
    c->addrlen = dstlen;
    c->filler = filler;
    c->slot = *slot;
    if (local_out)
        rt_local_probe(dst, dstlen, local_out);
    rt_send(engine, c);
    return 0;
}

/* Opens and binds the UDP socket of a listener; returns it or -errno. */
static int rt_listen_socket(const struct sockaddr *local, socklen_t len) {
    int fd = socket(local->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* No SO_REUSEADDR: for UDP it would let a second server bind the same
     * port and split our datagrams, where TCP answers EADDRINUSE.  UDP has
     * no TIME_WAIT to need it for. */
    if (local->sa_family == AF_INET6) {
        /* Dual-stack like the TCP listener it stands for. */
        int zero = 0;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    }
    if (bind(fd, local, len) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return rt_fd_adopt(fd);
}

/* Hands the engine UDP socket |fd| (bound to |local|) to serve the
 * program's AF_UNIX listener |unix_name|.  Returns the listener id or
 * -errno (|fd| is closed then). */
static int rt_listen_fd(int fd, const struct sockaddr *local, socklen_t len,
                        const char *unix_name, size_t name_len) {
    rt_cmd *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return -ENOMEM;
    }
    c->type = RT_CMD_LISTEN;
    c->fd = fd;
    memcpy(&c->addr, local, len);
    c->addrlen = len;
    memcpy(c->unix_name, unix_name, name_len);
    c->unix_name_len = name_len;
    pthread_mutex_lock(&engine->lock);
    c->listener_id = engine->next_listener_id++;
    pthread_mutex_unlock(&engine->lock);
    int id = c->listener_id;
    rt_send(engine, c);
    return id;
}

int rudp_rt_listen(const struct sockaddr *local, socklen_t len, const char *unix_name,
                   size_t name_len, int backlog) {
    (void)backlog;
    if (len > sizeof(struct sockaddr_storage) ||
        name_len > sizeof(((rt_cmd *)0)->unix_name))
        return -EINVAL;
    int rv = rudp_rt_start();
    if (rv < 0)
        return rv;
    int fd = rt_listen_socket(local, len);
    if (fd < 0)
        return fd;
    return rt_listen_fd(fd, local, len, unix_name, name_len);
}

int rudp_rt_adopt_listener(int udp_fd, const char *unix_name, size_t name_len) {
    struct sockaddr_storage local;
    socklen_t len = sizeof(local);
    int type = 0;
    socklen_t tlen = sizeof(type);
    if (name_len > sizeof(((rt_cmd *)0)->unix_name) ||
        getsockopt(udp_fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 || type != SOCK_DGRAM ||
        getsockname(udp_fd, (struct sockaddr *)&local, &len) < 0) {
        close(udp_fd);
        return -EINVAL;
    }
    int rv = rudp_rt_start();
    if (rv < 0 || (rv = rt_fd_nonblock(udp_fd)) < 0) {
        close(udp_fd);
        return rv;
    }
    return rt_listen_fd(rt_fd_adopt(udp_fd), (struct sockaddr *)&local, len, unix_name,
                        name_len);
}

void rudp_rt_unlisten(int id) {
    rt_forget_if_cloned();
    if (!engine)
        return;
    rt_cmd *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->type = RT_CMD_UNLISTEN;
    c->listener_id = id;
    rt_send(engine, c);
}

/* Returns this process's running engine, or NULL. */
static rt_engine *rt_own_engine(void) {
    rt_forget_if_cloned();
    pthread_mutex_lock(&start_lock);
    rt_engine *e = engine;
    pthread_mutex_unlock(&start_lock);
    return e;
}

void rudp_rt_quiesce(void) {
    rt_engine *e = rt_own_engine();
    if (!e)
        return;
    pthread_mutex_lock(&e->lock);
    e->park_req = true;
    pthread_mutex_unlock(&e->lock);
    ev_async_send(e->loop, &e->wake);
    pthread_mutex_lock(&e->lock);
    while (!e->parked)
        pthread_cond_wait(&e->parked_cv, &e->lock);
    pthread_mutex_unlock(&e->lock);
}

void rudp_rt_resume(void) {
    rt_engine *e = rt_own_engine();
    if (!e)
        return;
    pthread_mutex_lock(&e->lock);
    e->park_req = false;
    pthread_cond_broadcast(&e->resume_cv);
    pthread_mutex_unlock(&e->lock);
}

bool rudp_rt_peer_warm(const struct sockaddr *dst, socklen_t len) {
    rt_engine *e = rt_own_engine();
    struct sockaddr_storage a;
    if (!e || len > sizeof(a))
        return false;
    memset(&a, 0, sizeof(a));
    memcpy(&a, dst, len);
    return rt_warm_has(e, &a, len);
}

void rudp_rt_leave_listeners(void (*fn)(int id, int udp_fd, const char *unix_name,
                                        size_t name_len, void *ctx),
                             void *ctx) {
    rt_engine *e = rt_own_engine();
    if (!e)
        return;
    rudp_rt_quiesce(); /* parked for good: the process is exiting */
    for (rt_udp *u = e->udps; u; u = u->next) {
        if (!u->is_listener || u->unix_name_len == 0)
            continue;
        int fd = fcntl(u->fd, F_DUPFD_CLOEXEC, 0);
        if (fd >= 0)
            fn(u->listener_id, fd, u->unix_name, u->unix_name_len, ctx);
    }
}

void rudp_rt_exit_flush(void) {
    rt_forget_if_cloned();
    pthread_mutex_lock(&start_lock);
    rt_engine *e = engine;
    pthread_mutex_unlock(&start_lock);
    if (!e || e->cfg.exit_linger == 0)
        return;
    pthread_mutex_lock(&e->lock);
    e->exiting = true;
    e->exit_deadline = rt_now() + e->cfg.exit_linger;
    pthread_mutex_unlock(&e->lock);
    ev_async_send(e->loop, &e->wake);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    rudp_tstamp linger = e->cfg.exit_linger + RUDP_MS(100);
    until.tv_sec += (time_t)(linger / 1000000000ull);
    until.tv_nsec += (long)(linger % 1000000000ull);
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&e->lock);
    while (!e->exit_done)
        if (pthread_cond_timedwait(&e->flushed, &e->lock, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&e->lock);
}
