/*
 * rt_spin.c — polling briefly for an answer instead of sleeping.
 *
 * A small message handed to the program is often a request it answers at
 * once.  Waking a sleeping engine thread for that answer costs a futex or
 * epoll round trip, about as much again as the answer itself on loopback,
 * so after such a delivery (rt_bridge.c) the loop keeps polling for a short
 * while: an idle watcher that yields the CPU on every pass.
 *
 * Spinning is judged by whether it paid: a spin during which the program
 * wrote nothing was wasted.  After RT_SPIN_MAX_WASTED wasted spins in a row
 * the engine stops spinning for 10 ms per wasted one, at most 1 s, so a
 * bulk receiver, which never answers, costs no busy loop.
 */
#include "rt.h"

#include <sched.h>
#include <stdlib.h>

/* Wasted spins in a row after which spinning backs off. */
#define RT_SPIN_MAX_WASTED 4

struct rt_spin {
    rt_engine *eng;
    ev_idle idle; /* polls instead of sleeping until |until| */
    rudp_tstamp until;
    uint64_t writes;        /* program writes seen, ever */
    uint64_t writes_at_arm; /* |writes| when the spin began */
    unsigned wasted;        /* spins in a row in which the program wrote nothing */
    rudp_tstamp resume;     /* no spinning before this (backing off) */
};

/* Counts whether the program answered the delivery that started or last
 * extended the spin, and backs off after too many that it did not. */
static void spin_judge(rt_spin *sp, rudp_tstamp now) {
    bool wasted = sp->writes == sp->writes_at_arm;
    sp->wasted = wasted ? sp->wasted + 1 : 0;
    if (sp->wasted >= RT_SPIN_MAX_WASTED) {
        unsigned n = sp->wasted < 100 ? sp->wasted : 100;
        sp->resume = now + (rudp_tstamp)n * RUDP_MS(10);
        sp->until = now;
    }
}

/* ev_idle callback (the loop had nothing to do): yields the CPU while the
 * spin lasts, and stops polling once it is over. */
static void spin_on_idle(struct ev_loop *loop, ev_idle *w, int revents) {
    rt_spin *sp = w->data;
    rudp_tstamp now = rt_now();
    if (now < sp->until) {
        sched_yield(); /* the program we wait for may share this CPU */
        return;
    }
    ev_idle_stop(loop, w);
    spin_judge(sp, now);
}

rt_spin *rt_spin_new(rt_engine *e) {
    rt_spin *sp = calloc(1, sizeof(*sp));
    if (!sp)
        return NULL;
    sp->eng = e;
    ev_idle_init(&sp->idle, spin_on_idle);
    sp->idle.data = sp;
    return sp;
}

void rt_spin_arm(rt_spin *sp, rudp_tstamp ns) {
    rudp_tstamp now = rt_now();
    if (ev_is_active(&sp->idle))
        spin_judge(sp, now);
    if (now < sp->resume)
        return;
    sp->until = now + ns;
    sp->writes_at_arm = sp->writes;
    ev_idle_start(sp->eng->loop, &sp->idle);
}

void rt_spin_note_write(rt_spin *sp) {
    sp->writes++;
}
