/*
 * rt_exit.c — the exit flush: bytes a program wrote just before exit()
 * still reach the peer, as the kernel would keep sending them for a TCP
 * socket (DESIGN.md §4 "close / exit").
 *
 * The shim's destructor calls rudp_rt_exit_flush, which queues an exit
 * command and waits.  Because it is a command, it runs after every command
 * queued before it: a listen or a connect still in the queue is not lost.
 * On the engine thread the command makes every bridge read its program's
 * end to EOF, as if the program had closed it, and end the stream with a
 * FIN; after every turn rt_exit_check asks whether all of it has been
 * acknowledged.  When it has, or when the configured linger is over, every
 * session says GoAway at once (the peer's streams end, as when a kernel
 * answers a closed socket, instead of retransmitting their own FINs into
 * silence until an idle timeout) and the waiting thread is released.
 */
#include "rt.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

struct rt_exit {
    pthread_mutex_t lock; /* |done| and the condition */
    pthread_cond_t done_cv;
    bool begun; /* engine thread: the exit command ran */
    bool done;  /* under lock: the flush is over */
    rudp_tstamp deadline;
    ev_timer linger; /* wakes the loop at the deadline */
};

static void exit_on_linger(struct ev_loop *loop, ev_timer *w, int revents) {
    /* Nothing to do: the turn ends in rt_exit_check. */
}

rt_exit *rt_exit_new(rt_engine *e) {
    rt_exit *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    pthread_mutex_init(&x->lock, NULL);
    pthread_cond_init(&x->done_cv, NULL);
    ev_timer_init(&x->linger, exit_on_linger, 0.0, 0.0);
    return x;
}

/* The exit command: static, so exiting allocates nothing (a program may
 * _exit from a signal handler). */
static rt_cmd exit_cmd;

/* Runs the exit command: every bridge drains, the linger starts. */
static void exit_run(rt_engine *e, rt_cmd *c) {
    rt_exit *x = e->exit;
    (void)c;
    if (x->begun)
        return;
    x->begun = true;
    x->deadline = rt_now() + e->cfg.exit_linger;
    ev_timer_set(&x->linger, (double)e->cfg.exit_linger / 1e9, 0.0);
    ev_timer_start(e->loop, &x->linger);
    rt_sess_exit_drain_all(e);
}

static void exit_close_fds(rt_cmd *c) {
    (void)c;
}

void rt_exit_check(rt_engine *e) {
    rt_exit *x = e->exit;
    if (!x->begun || x->done)
        return;
    bool settled = rt_sess_all_settled(e);
    if (!settled && rt_now() < x->deadline)
        return;
    rt_log(2, settled ? "exit: every byte acknowledged"
                      : "exit: the linger is over, bytes unacknowledged");
    ev_timer_stop(e->loop, &x->linger);
    rt_sess_leave_all(e);
    pthread_mutex_lock(&x->lock);
    x->done = true;
    pthread_cond_broadcast(&x->done_cv);
    pthread_mutex_unlock(&x->lock);
}

/* Returns the absolute CLOCK_REALTIME time |ns| from now. */
static struct timespec exit_after(rudp_tstamp ns) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += (time_t)(ns / 1000000000ull);
    t.tv_nsec += (long)(ns % 1000000000ull);
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/* Queues the exit command and waits for the flush to end, bounded by the
 * linger.  |quick|: takes no lock that may be held (tries it, and gives up
 * the flush when it is). */
static void exit_flush(rt_engine *e, bool quick) {
    if (e->cfg.exit_linger == 0 || exit_cmd.run)
        return; /* no linger, or a flush asked for already */
    exit_cmd.run = exit_run;
    exit_cmd.close_fds = exit_close_fds;
    if (rt_loop_try_send(e, &exit_cmd, quick) != RUDP_OK)
        return;
    /* The engine ends the flush by the linger; this bound only guards
     * against an engine that cannot run at all. */
    struct timespec until = exit_after(e->cfg.exit_linger + RUDP_MS(100));
    rt_exit *x = e->exit;
    if (quick ? pthread_mutex_trylock(&x->lock) != 0 : pthread_mutex_lock(&x->lock) != 0)
        return;
    while (!x->done)
        if (pthread_cond_timedwait(&x->done_cv, &x->lock, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&x->lock);
}

void rudp_rt_exit_flush(void) {
    rt_engine *e = rt_loop_running();
    if (e)
        exit_flush(e, false);
}

void rudp_rt_exit_flush_quick(void) {
    rt_engine *e = rt_loop_own_engine();
    if (e)
        exit_flush(e, true);
}
