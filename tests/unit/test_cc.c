/*
 * test_cc.c — congestion control (engine/cc.c, cc_newreno.c, cc_cubic.c):
 * NewReno after RFC 9002 §7 / appendix B, CUBIC after RFC 9438.
 *
 * CUBIC is driven by a fluid model in simulated time: the path has a fixed
 * RTT and acknowledges one max_datagram packet every RTT * max_datagram /
 * cwnd, each sent one RTT before its ACK.
 */
#include <math.h>
#include <string.h>

#include <criterion/criterion.h>

#include "cc.h"

#define MD 1200
#define MD_F 1200.0

/* A congestion controller on a path with a fixed RTT, and the clock. */
typedef struct cc_path {
    rudp_cc cc;
    rudp_rtt rtt;
    rudp_tstamp now;
} cc_path;

/* Sets up |p| with |algo| at time |now| and an RTT already measured. */
static void path_init(cc_path *p, enum rudp_cc_algo algo, rudp_tstamp rtt,
                      rudp_tstamp now) {
    memset(p, 0, sizeof(*p));
    p->now = now;
    rudp_cc_init(&p->cc, algo, MD, now);
    rudp_rtt_init(&p->rtt, rtt);
    rudp_rtt_update(&p->rtt, rtt, 0, 0, true);
}

/* Acknowledges one packet sent one RTT ago, after the ACK spacing of the
 * current window has elapsed. */
static void path_ack_one(cc_path *p) {
    rudp_tstamp gap = p->rtt.smoothed * MD / p->cc.cwnd;

    p->now += gap > 0 ? gap : 1;
    p->cc.ops->on_ack(&p->cc, MD, p->now - p->rtt.smoothed, &p->rtt, p->now);
}

/* Acknowledges packets at the path's pace until |end|. */
static void path_run_until(cc_path *p, rudp_tstamp end) {
    while (p->now < end)
        path_ack_one(p);
}

/* Signals a loss of a packet sent one RTT ago. */
static void path_loss(cc_path *p) {
    p->cc.ops->on_congestion(&p->cc, p->now - p->rtt.smoothed, &p->rtt, p->now);
}

/* Returns W_cubic(t) in bytes per RFC 9438 §4.2 for the state in |cc|. */
static double w_cubic(const rudp_cc *cc, double t) {
    double d = t - cc->u.cubic.k;

    return 0.4 * d * d * d * MD_F + cc->u.cubic.w_max;
}

/* ---- shared front end ---- */

Test(cc, initial_and_min_window) {
    cr_assert_eq(rudp_cc_initial_window(1200), 12000);
    cr_assert_eq(rudp_cc_initial_window(1500), 14720);
    cr_assert_eq(rudp_cc_initial_window(1000), 10000);
    cr_assert_eq(rudp_cc_initial_window(9000), 18000);
    cr_assert_eq(rudp_cc_min_window(1200), 2400);
}

Test(cc, init_selects_ops) {
    rudp_cc cc;

    rudp_cc_init(&cc, RUDP_CC_NEWRENO, MD, 0);
    cr_assert_eq(cc.ops, &rudp_cc_newreno_ops);
    cr_assert_str_eq(cc.ops->name, "newreno");
    cr_assert_eq(cc.cwnd, 12000);
    cr_assert_eq(cc.ssthresh, UINT64_MAX);
    cr_assert_eq(cc.max_datagram, MD);
    cr_assert(!cc.in_recovery);
    rudp_cc_init(&cc, RUDP_CC_CUBIC, MD, 0);
    cr_assert_eq(cc.ops, &rudp_cc_cubic_ops);
    cr_assert_str_eq(cc.ops->name, "cubic");
    cr_assert_eq(cc.cwnd, 12000);
    cr_assert_eq(cc.ssthresh, UINT64_MAX);
}

Test(cc, algo_names) {
    enum rudp_cc_algo a = RUDP_CC_CUBIC;

    cr_assert_eq(rudp_cc_algo_from_name("newreno", &a), RUDP_OK);
    cr_assert_eq(a, RUDP_CC_NEWRENO);
    cr_assert_eq(rudp_cc_algo_from_name("cubic", &a), RUDP_OK);
    cr_assert_eq(a, RUDP_CC_CUBIC);
    cr_assert_eq(rudp_cc_algo_from_name("reno", &a), RUDP_ERR_INVAL);
    cr_assert_eq(rudp_cc_algo_from_name("", &a), RUDP_ERR_INVAL);
    cr_assert_eq(rudp_cc_algo_from_name(NULL, &a), RUDP_ERR_INVAL);
    cr_assert_eq(a, RUDP_CC_CUBIC);
    cr_assert_str_eq(rudp_cc_algo_name(RUDP_CC_NEWRENO), "newreno");
    cr_assert_str_eq(rudp_cc_algo_name(RUDP_CC_CUBIC), "cubic");
}

Test(cc, pacing_rate) {
    rudp_cc cc;
    rudp_rtt rtt;

    rudp_cc_init(&cc, RUDP_CC_NEWRENO, MD, 0);
    rudp_rtt_init(&rtt, RUDP_MS(100));
    cr_assert_eq(rudp_cc_pacing_rate(&cc, &rtt), 0);
    rudp_rtt_update(&rtt, RUDP_MS(100), 0, 0, true);
    /* Slow start: 12000 B / 0.1 s * 2. */
    cr_assert_eq(rudp_cc_pacing_rate(&cc, &rtt), 240000);
    cc.ssthresh = 12000;
    /* Congestion avoidance: 12000 B / 0.1 s * 1.25. */
    cr_assert_eq(rudp_cc_pacing_rate(&cc, &rtt), 150000);
}

/* ---- NewReno ---- */

Test(cc, newreno_slow_start_adds_acked_bytes) {
    cc_path p;

    path_init(&p, RUDP_CC_NEWRENO, RUDP_MS(100), RUDP_SEC(1));
    for (int i = 0; i < 10; i++)
        p.cc.ops->on_ack(&p.cc, MD, p.now, &p.rtt, p.now + 1);
    cr_assert_eq(p.cc.cwnd, 24000);
    p.cc.ops->on_ack(&p.cc, 500, p.now, &p.rtt, p.now + 1);
    cr_assert_eq(p.cc.cwnd, 24500);
}

Test(cc, newreno_loss_halves_window) {
    cc_path p;

    path_init(&p, RUDP_CC_NEWRENO, RUDP_MS(100), RUDP_SEC(1));
    p.cc.cwnd = 24000;
    p.now = RUDP_SEC(2);
    path_loss(&p);
    cr_assert_eq(p.cc.ssthresh, 12000);
    cr_assert_eq(p.cc.cwnd, 12000);
    cr_assert(p.cc.in_recovery);
    cr_assert_eq(p.cc.recovery_start, RUDP_SEC(2));
}

Test(cc, newreno_loss_respects_min_window) {
    cc_path p;

    path_init(&p, RUDP_CC_NEWRENO, RUDP_MS(100), RUDP_SEC(1));
    p.cc.cwnd = 3000;
    path_loss(&p);
    cr_assert_eq(p.cc.ssthresh, 1500);
    cr_assert_eq(p.cc.cwnd, 2400);
}

Test(cc, newreno_congestion_avoidance_one_mss_per_window) {
    cc_path p;
    rudp_tstamp after;

    path_init(&p, RUDP_CC_NEWRENO, RUDP_MS(100), RUDP_SEC(1));
    p.cc.cwnd = 24000;
    p.now = RUDP_SEC(2);
    path_loss(&p);
    after = p.now + 1; /* packets sent after the recovery period started */
    for (int i = 0; i < 9; i++)
        p.cc.ops->on_ack(&p.cc, MD, after, &p.rtt, after + RUDP_MS(100));
    cr_assert_eq(p.cc.cwnd, 12000); /* 10800 of 12000 bytes acked */
    cr_assert(!p.cc.in_recovery);
    p.cc.ops->on_ack(&p.cc, MD, after, &p.rtt, after + RUDP_MS(100));
    cr_assert_eq(p.cc.cwnd, 13200);
    cr_assert_eq(p.cc.bytes_acked_ca, 0);
    /* The next MSS needs a full 13200-byte window acknowledged. */
    for (int i = 0; i < 10; i++)
        p.cc.ops->on_ack(&p.cc, MD, after, &p.rtt, after + RUDP_MS(200));
    cr_assert_eq(p.cc.cwnd, 13200);
    p.cc.ops->on_ack(&p.cc, MD, after, &p.rtt, after + RUDP_MS(200));
    cr_assert_eq(p.cc.cwnd, 14400);
    cr_assert_eq(p.cc.bytes_acked_ca, 0);
}

Test(cc, newreno_one_reduction_per_recovery_period) {
    cc_path p;
    rudp_tstamp start;

    path_init(&p, RUDP_CC_NEWRENO, RUDP_MS(100), RUDP_SEC(1));
    p.cc.cwnd = 48000;
    p.now = RUDP_SEC(2);
    start = p.now;
    p.cc.ops->on_congestion(&p.cc, start - RUDP_MS(100), &p.rtt, start);
    cr_assert_eq(p.cc.cwnd, 24000);
    /* More losses from the same flight, detected later: ignored. */
    p.cc.ops->on_congestion(&p.cc, start - RUDP_MS(50), &p.rtt, start + RUDP_MS(10));
    p.cc.ops->on_congestion(&p.cc, start, &p.rtt, start + RUDP_MS(20));
    cr_assert_eq(p.cc.cwnd, 24000);
    cr_assert_eq(p.cc.ssthresh, 24000);
    cr_assert_eq(p.cc.recovery_start, start);
    /* ACKs of packets sent before the period do not grow the window. */
    p.cc.ops->on_ack(&p.cc, 24000, start, &p.rtt, start + RUDP_MS(30));
    cr_assert_eq(p.cc.cwnd, 24000);
    cr_assert(p.cc.in_recovery);
    /* A loss of a packet sent after the start is a new event. */
    p.cc.ops->on_congestion(&p.cc, start + 1, &p.rtt, start + RUDP_MS(200));
    cr_assert_eq(p.cc.cwnd, 12000);
    cr_assert_eq(p.cc.recovery_start, start + RUDP_MS(200));
}

Test(cc, newreno_ack_after_start_ends_recovery) {
    cc_path p;

    path_init(&p, RUDP_CC_NEWRENO, RUDP_MS(100), RUDP_SEC(1));
    p.cc.cwnd = 24000;
    path_loss(&p);
    cr_assert(p.cc.in_recovery);
    p.cc.ops->on_ack(&p.cc, MD, p.now + 1, &p.rtt, p.now + RUDP_MS(100));
    cr_assert(!p.cc.in_recovery);
    cr_assert_eq(p.cc.bytes_acked_ca, MD);
    /* Still in the past period for old packets. */
    p.cc.ops->on_congestion(&p.cc, p.now, &p.rtt, p.now + RUDP_MS(110));
    cr_assert_eq(p.cc.cwnd, 12000);
}

Test(cc, newreno_persistent_congestion) {
    cc_path p;

    path_init(&p, RUDP_CC_NEWRENO, RUDP_MS(100), RUDP_SEC(1));
    p.cc.cwnd = 48000;
    path_loss(&p);
    p.cc.ops->on_persistent_congestion(&p.cc, p.now + RUDP_SEC(1));
    cr_assert_eq(p.cc.cwnd, 2400);
    cr_assert_eq(p.cc.ssthresh, 24000);
    cr_assert(!p.cc.in_recovery);
    cr_assert_eq(p.cc.recovery_start, RUDP_TSTAMP_NEVER);
    /* Slow start again, even for packets sent before the old period. */
    p.cc.ops->on_ack(&p.cc, MD, p.now - RUDP_SEC(1), &p.rtt, p.now + RUDP_SEC(2));
    cr_assert_eq(p.cc.cwnd, 3600);
}

/* ---- CUBIC ---- */

Test(cc, cubic_slow_start_like_newreno) {
    cc_path p;

    path_init(&p, RUDP_CC_CUBIC, RUDP_MS(100), RUDP_SEC(1));
    for (int i = 0; i < 20; i++)
        p.cc.ops->on_ack(&p.cc, MD, p.now, &p.rtt, p.now + 1);
    cr_assert_eq(p.cc.cwnd, 36000);
}

Test(cc, cubic_loss_reduction) {
    cc_path p;

    path_init(&p, RUDP_CC_CUBIC, RUDP_MS(100), RUDP_SEC(1));
    p.cc.cwnd = 1000 * MD;
    p.now = RUDP_SEC(10);
    path_loss(&p);
    cr_assert_eq(p.cc.ssthresh, 700 * MD);
    cr_assert_eq(p.cc.cwnd, 700 * MD);
    cr_assert_float_eq(p.cc.u.cubic.w_max, 1000 * MD_F, 1e-9);
    cr_assert_float_eq(p.cc.u.cubic.cwnd_prior, 1000 * MD_F, 1e-9);
    cr_assert(p.cc.in_recovery);
    /* Same recovery period: no second reduction. */
    p.cc.ops->on_congestion(&p.cc, p.now, &p.rtt, p.now + RUDP_MS(50));
    cr_assert_eq(p.cc.cwnd, 700 * MD);
    /* ACKs of packets sent before the period: no growth. */
    p.cc.ops->on_ack(&p.cc, MD, p.now - 1, &p.rtt, p.now + RUDP_MS(60));
    cr_assert_eq(p.cc.cwnd, 700 * MD);
    cr_assert(!p.cc.u.cubic.epoch_started);
}

Test(cc, cubic_min_window_after_loss) {
    cc_path p;

    path_init(&p, RUDP_CC_CUBIC, RUDP_MS(100), RUDP_SEC(1));
    p.cc.cwnd = 3000;
    path_loss(&p);
    cr_assert_eq(p.cc.ssthresh, 2100);
    cr_assert_eq(p.cc.cwnd, 2400);
}

Test(cc, cubic_follows_w_cubic) {
    cc_path p;
    rudp_tstamp epoch;
    double k, t_checks[] = {0.5, 1, 2, 3, 5, 7, 8, 9, 10, 11, 12, 13};
    uint64_t w[16];

    path_init(&p, RUDP_CC_CUBIC, RUDP_MS(100), RUDP_SEC(1));
    p.cc.cwnd = 1000 * MD;
    p.now = RUDP_SEC(10);
    path_loss(&p);
    /* The first ACK of a packet sent after the loss starts the epoch. */
    p.now += p.rtt.smoothed;
    path_ack_one(&p);
    cr_assert(p.cc.u.cubic.epoch_started);
    epoch = p.cc.u.cubic.t_epoch;
    cr_assert_eq(epoch, p.now);
    /* K = cbrt((W_max - cwnd_epoch) / C) = cbrt(300 / 0.4) seconds. */
    k = cbrt((1000.0 - 700.0) / 0.4);
    cr_assert_float_eq(p.cc.u.cubic.k, k, 1e-9);
    for (size_t i = 0; i < sizeof(t_checks) / sizeof(t_checks[0]); i++) {
        double t = t_checks[i];
        path_run_until(&p, epoch + (rudp_tstamp)(t * 1e9));
        t = (double)(p.now - epoch) / 1e9;
        /* Within a quarter of a segment of the curve. */
        cr_assert_float_eq((double)p.cc.cwnd, w_cubic(&p.cc, t), MD_F / 4,
                           "t=%.2f cwnd=%lu W_cubic=%.0f", t, (unsigned long)p.cc.cwnd,
                           w_cubic(&p.cc, t));
    }
    /* At t = K the window is back at W_max. */
    path_init(&p, RUDP_CC_CUBIC, RUDP_MS(100), RUDP_SEC(1));
    p.cc.cwnd = 1000 * MD;
    p.now = RUDP_SEC(10);
    path_loss(&p);
    p.now += p.rtt.smoothed;
    path_ack_one(&p);
    epoch = p.cc.u.cubic.t_epoch;
    path_run_until(&p, epoch + (rudp_tstamp)(k * 1e9));
    cr_assert_float_eq((double)p.cc.cwnd, 1000 * MD_F, MD_F / 4);
    /* Concave before K, convex after: growth over 1 s slices. */
    for (int i = 0; i < 5; i++) {
        path_run_until(&p, epoch + (rudp_tstamp)((k + i) * 1e9));
        w[i] = p.cc.cwnd;
    }
    cr_assert_lt(w[1] - w[0], w[2] - w[1]);
    cr_assert_lt(w[2] - w[1], w[3] - w[2]);
    cr_assert_lt(w[3] - w[2], w[4] - w[3]);
}

Test(cc, cubic_concave_before_k) {
    cc_path p;
    rudp_tstamp epoch;
    uint64_t w[5];

    path_init(&p, RUDP_CC_CUBIC, RUDP_MS(100), RUDP_SEC(1));
    p.cc.cwnd = 1000 * MD;
    p.now = RUDP_SEC(10);
    path_loss(&p);
    p.now += p.rtt.smoothed;
    path_ack_one(&p);
    epoch = p.cc.u.cubic.t_epoch;
    for (int i = 0; i < 5; i++) {
        path_run_until(&p, epoch + RUDP_SEC(1 + 2 * i));
        w[i] = p.cc.cwnd;
    }
    cr_assert_gt(w[1] - w[0], w[2] - w[1]);
    cr_assert_gt(w[2] - w[1], w[3] - w[2]);
    cr_assert_gt(w[3] - w[2], w[4] - w[3]);
    cr_assert_lt(w[4], 1000 * MD);
}

Test(cc, cubic_reno_friendly_region_dominates_small_bdp) {
    cc_path p;
    rudp_tstamp epoch;
    double t, west0, cwnd0;

    path_init(&p, RUDP_CC_CUBIC, RUDP_MS(10), RUDP_SEC(1));
    p.cc.cwnd = 20 * MD;
    path_loss(&p);
    cr_assert_eq(p.cc.cwnd, 14 * MD);
    p.now += p.rtt.smoothed;
    path_ack_one(&p);
    epoch = p.cc.u.cubic.t_epoch;
    cr_assert_float_eq(p.cc.u.cubic.k, cbrt(6.0 / 0.4), 1e-9);
    /* Below cwnd_prior W_est grows by alpha = 3 * 0.3 / 1.7 segments per RTT. */
    west0 = p.cc.u.cubic.w_est;
    cwnd0 = (double)p.cc.cwnd;
    path_run_until(&p, p.now + RUDP_MS(50));
    cr_assert_float_eq(p.cc.u.cubic.w_est - west0, 5 * MD_F * 3 * 0.3 / 1.7, 0.1 * MD_F);
    cr_assert_eq(p.cc.cwnd, (uint64_t)p.cc.u.cubic.w_est);
    cr_assert_gt((double)p.cc.cwnd, cwnd0);
    /* Past cwnd_prior (20 segments) alpha is 1: one segment per RTT. */
    path_run_until(&p, epoch + RUDP_SEC(1));
    cr_assert_gt(p.cc.u.cubic.w_est, p.cc.u.cubic.cwnd_prior);
    west0 = p.cc.u.cubic.w_est;
    path_run_until(&p, p.now + RUDP_MS(100));
    cr_assert_float_eq(p.cc.u.cubic.w_est - west0, 10 * MD_F, 0.2 * MD_F);
    /* The window follows W_est, well above W_cubic(t). */
    t = (double)(p.now - epoch) / 1e9;
    cr_assert_eq(p.cc.cwnd, (uint64_t)p.cc.u.cubic.w_est);
    cr_assert_gt((double)p.cc.cwnd, w_cubic(&p.cc, t) + 10 * MD_F);
}

Test(cc, cubic_fast_convergence_lowers_w_max) {
    cc_path p;

    path_init(&p, RUDP_CC_CUBIC, RUDP_MS(100), RUDP_SEC(1));
    p.cc.cwnd = 1000 * MD;
    p.now = RUDP_SEC(10);
    path_loss(&p);
    p.now += p.rtt.smoothed;
    path_run_until(&p, p.now + RUDP_SEC(1));
    cr_assert_lt(p.cc.cwnd, 1000 * MD);
    /* A loss below the previous W_max: W_max = cwnd * (1 + beta) / 2. */
    {
        double cwnd = (double)p.cc.cwnd;
        uint64_t expect_ssthresh = p.cc.cwnd * 7 / 10;
        path_loss(&p);
        cr_assert_float_eq(p.cc.u.cubic.w_max, cwnd * 0.85, 1e-6);
        cr_assert_float_eq(p.cc.u.cubic.cwnd_prior, cwnd, 1e-6);
        cr_assert_eq(p.cc.ssthresh, expect_ssthresh);
        cr_assert_eq(p.cc.cwnd, expect_ssthresh);
        /* The next epoch aims at the lowered W_max (RFC 9438 §4.2). */
        p.now += p.rtt.smoothed;
        path_ack_one(&p);
        cr_assert_float_eq(p.cc.u.cubic.k,
                           cbrt((cwnd * 0.85 - (double)expect_ssthresh) / MD_F / 0.4),
                           1e-9);
    }
}

Test(cc, cubic_no_fast_convergence_above_w_max) {
    cc_path p;

    path_init(&p, RUDP_CC_CUBIC, RUDP_MS(100), RUDP_SEC(1));
    p.cc.cwnd = 100 * MD;
    p.now = RUDP_SEC(10);
    path_loss(&p);
    p.now += p.rtt.smoothed;
    path_run_until(&p, p.now + RUDP_SEC(8));
    cr_assert_gt(p.cc.cwnd, 100 * MD);
    {
        double cwnd = (double)p.cc.cwnd;
        path_loss(&p);
        cr_assert_float_eq(p.cc.u.cubic.w_max, cwnd, 1e-6);
    }
}

Test(cc, cubic_persistent_congestion) {
    cc_path p;

    path_init(&p, RUDP_CC_CUBIC, RUDP_MS(100), RUDP_SEC(1));
    p.cc.cwnd = 1000 * MD;
    p.now = RUDP_SEC(10);
    path_loss(&p);
    p.now += p.rtt.smoothed;
    path_run_until(&p, p.now + RUDP_SEC(1));
    cr_assert(p.cc.u.cubic.epoch_started);
    p.cc.ops->on_persistent_congestion(&p.cc, p.now);
    cr_assert_eq(p.cc.cwnd, 2400);
    cr_assert_eq(p.cc.ssthresh, 700 * MD);
    cr_assert(!p.cc.u.cubic.epoch_started);
    cr_assert(!p.cc.in_recovery);
    cr_assert_eq(p.cc.recovery_start, RUDP_TSTAMP_NEVER);
    /* Slow start back to ssthresh, then a new epoch. */
    p.cc.ops->on_ack(&p.cc, MD, p.now, &p.rtt, p.now + 1);
    cr_assert_eq(p.cc.cwnd, 3600);
    path_run_until(&p, p.now + RUDP_SEC(1));
    cr_assert_geq(p.cc.cwnd, 700 * MD);
    cr_assert(p.cc.u.cubic.epoch_started);
}
