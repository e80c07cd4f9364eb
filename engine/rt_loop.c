/*
 * rt_loop.c — the engine thread: start-up, the command queue, parking,
 * fork.  (DESIGN.md §2 rule 3, STYLE.md rule 9.)
 *
 * The engine starts on the first rerouted socket.  It runs one libev loop
 * in its own thread with every signal blocked (signals are the program's).
 * Application threads never touch the loop: they append a command to a
 * mutex-protected queue and call ev_async_send; sends coalesce, so the
 * async callback drains the whole queue.  Start-up is synchronised by the
 * mutex (the loop and the async watcher exist before the thread runs), so
 * a command sent at once is never lost.  Every turn of the loop ends in a
 * prepare watcher that flushes the sessions the turn touched.
 *
 * Parking: rudp_rt_quiesce (before a raw clone) and the hand-over at exit
 * ask the thread to wait on a condition variable, holding no lock, until
 * released.
 *
 * fork(): pthread_atfork parks the engine thread and holds the queue's lock
 * across the fork, so a child never inherits a half-written queue or list,
 * nor a lock (malloc's) that thread held.  A child of a raw clone(), which
 * runs no atfork handler, is recognised by its pid at its first call.  The
 * child has no engine thread: it forgets the parent's engine (connections
 * it inherited are still served by the parent through their socketpairs),
 * closes the parent's UDP, bridge and queued descriptors so its copies do
 * not keep sockets alive, and starts an engine of its own on its first new
 * rerouted socket.  The parent's memory stays as it is: the child never
 * touches it again.
 */
#include "rt.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

/* The thread and its queue. */
struct rt_ctl {
    pthread_t thread;
    ev_async wake;
    ev_prepare prepare;
    ev_timer tick;
    pthread_mutex_t lock;     /* the queue and the parking handshake */
    pthread_cond_t parked_cv; /* the thread parked (park_req seen) */
    pthread_cond_t resume_cv; /* parks back to 0 */
    pthread_cond_t done_cv;   /* a sync command has run */
    unsigned parks;           /* parking requests not yet released */
    bool parked;
    bool threadless; /* a keeper's, before its loop runs: nothing to park */
    rt_cmd *head, *tail;
};

/* This process's engine, or NULL, and the process that started it: read
 * without the lock by rt_loop_running, so engine_pid is stored first. */
static _Atomic(rt_engine *) engine;
static _Atomic pid_t engine_pid;
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static rudp_rt_config config; /* set by rudp_rt_configure */
static _Atomic bool keeping;  /* the fork under way makes a keeper (rt_keeper.c) */
static bool configured;
static bool atfork_done;

void rudp_rt_configure(const rudp_rt_config *cfg) {
    pthread_mutex_lock(&start_lock);
    config = *cfg;
    configured = true;
    rt_os_set_log(cfg->log_level, cfg->log_fd);
    pthread_mutex_unlock(&start_lock);
}

/* --- the thread --- */

/* Parks the thread while an application thread asks it to (under the
 * queue lock, which the wait releases). */
static void loop_park_if_asked(rt_ctl *c) {
    while (c->parks > 0) {
        c->parked = true;
        pthread_cond_broadcast(&c->parked_cv);
        pthread_cond_wait(&c->resume_cv, &c->lock);
    }
    c->parked = false;
}

/* Marks the sync command |cmd| done and wakes the thread waiting for it. */
static void loop_done(rt_ctl *c, rt_cmd *cmd) {
    pthread_mutex_lock(&c->lock);
    cmd->done = true;
    pthread_cond_broadcast(&c->done_cv);
    pthread_mutex_unlock(&c->lock);
}

/* ev_async callback: parks if asked, then runs every queued command in
 * order. */
static void loop_on_wake(struct ev_loop *loop, ev_async *w, int revents) {
    rt_engine *e = w->data;
    rt_ctl *c = e->ctl;
    pthread_mutex_lock(&c->lock);
    loop_park_if_asked(c);
    rt_cmd *cmd = c->head;
    c->head = c->tail = NULL;
    pthread_mutex_unlock(&c->lock);
    while (cmd) {
        rt_cmd *next = cmd->next;
        bool sync = cmd->sync; /* an async command is freed by run */
        cmd->run(e, cmd);
        if (sync)
            loop_done(c, cmd);
        cmd = next;
    }
}

/* ev_prepare callback, before the loop sleeps: flush what the turn touched. */
static void loop_on_prepare(struct ev_loop *loop, ev_prepare *w, int revents) {
    rt_engine *e = w->data;
    rt_sess_flush_dirty(e);
    rt_exit_check(e);
    rt_keeper_check(e);
}

/* The 1 s tick: the sessions' timers of last resort, and memory given
 * back (the sessions' own and the heap in rt_sess_tick; here the pages of
 * stream chunks free for a whole tick, of the board's free slots and of
 * the datagram buffers of an idle engine). */
static void loop_on_tick(struct ev_loop *loop, ev_timer *w, int revents) {
    rt_engine *e = w->data;
    rt_sess_tick(e);
    size_t chunks = rudp_memory_trim();
    size_t board = rudp_board_shrink(e->board);
    size_t bufs = rt_udp_trim();
    if (chunks || board || bufs)
        rt_log(3,
               "memory given back: %zu KiB of stream chunks, %zu KiB of board slots, "
               "%zu KiB of datagram buffers",
               chunks / 1024, board / 1024, bufs / 1024);
}

/* Runs the pending watchers; first, when the loop has not run for
 * RT_PAUSE_MIN (the process was stopped: SIGSTOP, a debugger), tells the
 * sessions, so time this process could not listen is not held against
 * their peers before the datagrams that waited are read. */
static void loop_invoke(struct ev_loop *loop) {
    rt_engine *e = ev_userdata(loop);
    rudp_tstamp now = rt_now();
    if (e->last_run && now - e->last_run >= RT_PAUSE_MIN)
        rt_sess_on_pause(e, now - e->last_run - RUDP_SEC(1));
    ev_invoke_pending(loop);
    e->last_run = rt_now();
}

static void *loop_main(void *arg) {
    rt_engine *e = arg;
    ev_run(e->loop, 0);
    return NULL;
}

/* Sets up the watchers of the thread's own (wake, prepare, tick). */
static void loop_watchers(rt_engine *e) {
    rt_ctl *c = e->ctl;
    ev_async_init(&c->wake, loop_on_wake);
    c->wake.data = e;
    ev_async_start(e->loop, &c->wake);
    ev_prepare_init(&c->prepare, loop_on_prepare);
    c->prepare.data = e;
    ev_prepare_start(e->loop, &c->prepare);
    ev_set_userdata(e->loop, e);
    ev_set_invoke_pending_cb(e->loop, loop_invoke);
    ev_timer_init(&c->tick, loop_on_tick, 1.0, 1.0);
    c->tick.data = e;
    ev_timer_start(e->loop, &c->tick);
}

/* Starts the thread with every signal blocked.  Returns 0 or an errno. */
static int loop_thread(rt_engine *e) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rv = pthread_create(&e->ctl->thread, NULL, loop_main, e);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rv == 0)
        pthread_detach(e->ctl->thread);
    return rv;
}

/* Frees an engine that never ran (the board mapping and the small parts
 * of other files stay: a failed start is rare and the process goes on). */
static void loop_discard(rt_engine *e) {
    if (e->loop)
        ev_loop_destroy(e->loop);
    free(e->ctl);
    free(e);
}

/* Allocates the engine and the parts of every file; NULL when out of
 * memory.  Called under start_lock. */
static rt_engine *loop_alloc(void) {
    rt_engine *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->cfg = config;
    if (!configured) {
        rudp_settings_default(&e->cfg.settings);
        e->cfg.log_fd = -1;
    }
    e->ctl = calloc(1, sizeof(*e->ctl));
    int bfd;
    e->board = rudp_board_create(rt_fd_high, &bfd);
    if (bfd >= 0)
        rt_sys.close(bfd);
    e->board_fd = e->board ? rudp_board_fd(rudp_board_eid(e->board)) : -1;
    e->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (e->ctl && e->board && e->loop) {
        e->spin = rt_spin_new(e);
        e->clients = rt_clients_new();
        e->exit = rt_exit_new(e);
    }
    if (!e->spin || !e->clients || !e->exit) {
        loop_discard(e);
        return NULL;
    }
    pthread_mutex_init(&e->ctl->lock, NULL);
    pthread_cond_init(&e->ctl->parked_cv, NULL);
    pthread_cond_init(&e->ctl->resume_cv, NULL);
    pthread_cond_init(&e->ctl->done_cv, NULL);
    return e;
}

/* Creates the engine and its thread; called under start_lock. */
static int loop_create(void) {
    rt_engine *e = loop_alloc();
    if (!e)
        return RUDP_ERR_NOMEM;
    loop_watchers(e);
    int rv = loop_thread(e);
    if (rv != 0) {
        loop_discard(e);
        return RUDP_ERR_SYS(rv);
    }
    atomic_store(&engine_pid, getpid());
    atomic_store_explicit(&engine, e, memory_order_release);
    rt_log(2, "engine started (board %08x)", rudp_board_eid(e->board));
    return RUDP_OK;
}

/* --- fork --- */

/* rt_fd_fn: closes one of the parent engine's descriptors in a child. */
static void loop_close_fd(int fd, void *ctx) {
    (void)ctx;
    rt_sys.close(fd);
}

/* The child of a fork that makes a keeper (rt_keeper.c): the engine, as
 * parked, is this process's now; its locks and parking start afresh. */
static void loop_keep(rt_engine *e) {
    rt_ctl *c = e->ctl;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->parked_cv, NULL);
    pthread_cond_init(&c->resume_cv, NULL);
    pthread_cond_init(&c->done_cv, NULL);
    c->parks = 0;
    c->parked = false;
    c->threadless = true;
    atomic_store(&engine_pid, getpid());
}

/* The child of a fork: forget the parent's engine, close its descriptors
 * (unless it is to keep them: a keeper). */
static void loop_atfork_child(void) {
    pthread_mutex_init(&start_lock, NULL);
    if (atomic_load(&keeping) && atomic_load(&engine)) {
        loop_keep(atomic_load(&engine));
        return;
    }
    rt_engine *e = atomic_exchange(&engine, NULL);
    if (!e)
        return;
    for (rt_cmd *c = e->ctl->head; c; c = c->next)
        c->close_fds(c);
    rt_sess_each_fd(e, loop_close_fd, NULL);
    rt_listen_each_fd(e, loop_close_fd, NULL);
    /* The board's memory file stays open: the child passes it on to an
     * image it execs, whose inherited connections read their slots. */
}

static void loop_atfork_prepare(void) {
    pthread_mutex_lock(&start_lock);
    rt_engine *e = atomic_load(&engine);
    if (!e)
        return;
    rt_loop_park(e);
    pthread_mutex_lock(&e->ctl->lock);
}

static void loop_atfork_parent(void) {
    rt_engine *e = atomic_load(&engine);
    if (e) {
        pthread_mutex_unlock(&e->ctl->lock);
        rt_loop_unpark(e);
    }
    pthread_mutex_unlock(&start_lock);
}

/* A child made by a raw clone() (vsftpd's isolate=YES) skipped the atfork
 * handlers: it holds the parent's engine without its thread.  Forgets it
 * as the fork child handler does (which also makes start_lock anew: the
 * clone may have caught it held). */
static void loop_forget_if_cloned(void) {
    if (atomic_load_explicit(&engine, memory_order_acquire) &&
        atomic_load(&engine_pid) != getpid())
        loop_atfork_child();
}

/* --- exec (rt_keeper.c) --- */

void rt_loop_keeping(bool on) {
    atomic_store(&keeping, on);
}

bool rt_loop_own(const rt_engine *e) {
    return e == atomic_load(&engine) && atomic_load(&engine_pid) == getpid();
}

void rt_loop_each_fd(rt_engine *e, rt_fd_fn fn, void *ctx) {
    if (e->board_fd >= 0)
        fn(e->board_fd, ctx);
    if (rt_os_log_fd() >= 0)
        fn(rt_os_log_fd(), ctx);
}

void rt_loop_run_here(rt_engine *e) {
    ev_loop_fork(e->loop);
    e->keeper = true;
    ev_run(e->loop, 0);
}

/* --- the API --- */

int rudp_rt_start(void) {
    if (!rt_os_ready())
        return RUDP_ERR_INVAL;
    loop_forget_if_cloned();
    pthread_mutex_lock(&start_lock);
    if (!atfork_done) {
        pthread_atfork(loop_atfork_prepare, loop_atfork_parent, loop_atfork_child);
        atfork_done = true;
    }
    int rv = atomic_load(&engine) ? RUDP_OK : loop_create();
    pthread_mutex_unlock(&start_lock);
    return rv;
}

rt_engine *rt_loop_engine(int *err) {
    int rv = rudp_rt_start();
    if (err)
        *err = rv;
    return rv == RUDP_OK ? atomic_load(&engine) : NULL;
}

rt_engine *rt_loop_running(void) {
    if (!rt_os_ready())
        return NULL;
    loop_forget_if_cloned();
    return atomic_load_explicit(&engine, memory_order_acquire);
}

rudp_board *rudp_rt_board(void) {
    rt_engine *e = rt_loop_engine(NULL);
    return e ? e->board : NULL;
}

/* Appends |c| to the command queue, whose lock the caller holds; unlocks
 * it and wakes the engine. */
static void loop_enqueue_locked(rt_engine *e, rt_cmd *c) {
    rt_ctl *ctl = e->ctl;
    c->next = NULL;
    if (ctl->tail)
        ctl->tail->next = c;
    else
        ctl->head = c;
    ctl->tail = c;
    pthread_mutex_unlock(&ctl->lock);
    ev_async_send(e->loop, &ctl->wake);
}

int rt_loop_try_send(rt_engine *e, rt_cmd *c, bool try_lock) {
    rt_ctl *ctl = e->ctl;
    if (ctl->threadless)
        return RUDP_ERR_WOULDBLOCK; /* a keeper's fork: no thread to run it */
    if (try_lock ? pthread_mutex_trylock(&ctl->lock) != 0
                 : pthread_mutex_lock(&ctl->lock) != 0)
        return RUDP_ERR_WOULDBLOCK;
    loop_enqueue_locked(e, c);
    return RUDP_OK;
}

rt_engine *rt_loop_own_engine(void) {
    rt_engine *e = atomic_load_explicit(&engine, memory_order_acquire);
    return e && atomic_load(&engine_pid) == getpid() ? e : NULL;
}

void rt_loop_send(rt_engine *e, rt_cmd *c) {
    pthread_mutex_lock(&e->ctl->lock);
    loop_enqueue_locked(e, c);
}

int rt_loop_call(rt_engine *e, rt_cmd *c) {
    rt_ctl *ctl = e->ctl;
    c->sync = true;
    c->done = false;
    rt_loop_send(e, c);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&ctl->lock);
    while (!c->done)
        if (pthread_cond_timedwait(&ctl->done_cv, &ctl->lock, &until) == ETIMEDOUT)
            break;
    bool done = c->done;
    pthread_mutex_unlock(&ctl->lock);
    return done ? c->result : RUDP_ERR_TIMEDOUT;
}

/* Releases one parking request; the thread goes on once none is left. */
void rt_loop_unpark(rt_engine *e) {
    rt_ctl *c = e->ctl;
    if (c->threadless)
        return;
    pthread_mutex_lock(&c->lock);
    if (c->parks > 0 && --c->parks == 0)
        pthread_cond_broadcast(&c->resume_cv);
    pthread_mutex_unlock(&c->lock);
}

void rt_loop_park(rt_engine *e) {
    rt_ctl *c = e->ctl;
    if (c->threadless)
        return;
    pthread_mutex_lock(&c->lock);
    c->parks++;
    pthread_mutex_unlock(&c->lock);
    ev_async_send(e->loop, &c->wake);
    pthread_mutex_lock(&c->lock);
    while (!c->parked)
        pthread_cond_wait(&c->parked_cv, &c->lock);
    pthread_mutex_unlock(&c->lock);
}

void rudp_rt_quiesce(void) {
    rt_engine *e = rt_loop_running();
    if (e)
        rt_loop_park(e);
}

void rudp_rt_resume(void) {
    rt_engine *e = rt_loop_running();
    if (e)
        rt_loop_unpark(e);
}
