/*
 * cc_cubic.c — CUBIC congestion control (RFC 9438).
 *
 * Until the first congestion event CUBIC behaves like NewReno's slow start
 * (RFC 9438 §4.10).  A congestion event remembers the window it happened at
 * as W_max (lowered to W_max * (1 + beta) / 2 by fast convergence, §4.7,
 * when the window had not climbed back to the previous W_max), sets
 * ssthresh to cwnd * beta_cubic (beta = 0.7, §4.6) and drops the window to
 * max(ssthresh, minimum window).  Like RFC 9002 §7.3.2, losses of packets
 * sent before the start of the recovery period are ignored, and the first
 * acknowledgement of a packet sent after it ends the period.
 *
 * The first acknowledgement in congestion avoidance starts an epoch at time
 * t = 0 with cwnd_epoch = cwnd.  Within the epoch the window follows
 * (§4.2, in segments of max_datagram and seconds)
 *
 *     W_cubic(t) = C * (t - K)^3 + W_max,  K = cbrt((W_max - cwnd_epoch) / C),
 *
 * with C = 0.4: concave up to W_max at t = K, convex beyond it.  Each
 * acknowledgement aims at target = W_cubic(t + RTT) clamped to
 * [cwnd, 1.5 * cwnd] and grows the window by (target - cwnd) / cwnd segments
 * per acknowledged segment (§4.4, §4.5).  The growth is credited in whole
 * bytes; acknowledged bytes that did not yet earn a byte wait in
 * bytes_acked_ca.
 *
 * Alongside, W_est estimates what Reno would have (§4.3): it starts at
 * cwnd_epoch and grows by alpha_cubic = 3 * (1 - beta) / (1 + beta) segments
 * per window acknowledged, or by 1 once it has passed cwnd_prior, the window
 * before the reduction.  While W_cubic(t) < W_est CUBIC is in the
 * Reno-friendly region and the window follows W_est, so short-RTT,
 * small-window paths do no worse than Reno.
 *
 * Persistent congestion (RFC 9002 §7.6) collapses the window to the minimum,
 * clears the recovery period and ends the epoch; the next one starts after
 * slow start brings the window back to ssthresh.
 */
#include <math.h>

#include "cc.h"

#define CUBIC_C 0.4
#define CUBIC_BETA 0.7
#define CUBIC_ALPHA (3.0 * (1.0 - CUBIC_BETA) / (1.0 + CUBIC_BETA))
#define CUBIC_NS_PER_SEC 1e9

/* Returns true when a packet sent at |sent_time| belongs to the current
 * recovery period (RFC 9002 appendix B.5). */
static bool cubic_in_recovery(const rudp_cc *cc, rudp_tstamp sent_time) {
    return cc->recovery_start != RUDP_TSTAMP_NEVER && sent_time <= cc->recovery_start;
}

/* Sets the initial window and clears the CUBIC state. */
static void cubic_init(rudp_cc *cc, rudp_tstamp now) {
    rudp_cubic_state zero = {0};

    cc->cwnd = rudp_cc_initial_window(cc->max_datagram);
    cc->bytes_acked_ca = 0;
    cc->in_recovery = false;
    cc->u.cubic = zero;
}

/* Returns W_cubic(|t|) in bytes for |t| seconds into the epoch (RFC 9438
 * §4.2, Figure 1). */
static double cubic_window_at(const rudp_cc *cc, double t) {
    const rudp_cubic_state *s = &cc->u.cubic;
    double d = t - s->k;

    return CUBIC_C * d * d * d * (double)cc->max_datagram + s->w_max;
}

/* Starts a congestion-avoidance epoch at |now|: cwnd_epoch is the current
 * window, W_est starts there and K is cbrt((W_max - cwnd_epoch) / C) in
 * segments (RFC 9438 §4.2, §4.3). */
static void cubic_start_epoch(rudp_cc *cc, rudp_tstamp now) {
    rudp_cubic_state *s = &cc->u.cubic;
    double md = (double)cc->max_datagram;

    s->t_epoch = now;
    s->epoch_started = true;
    s->w_est = (double)cc->cwnd;
    s->k = cbrt((s->w_max - (double)cc->cwnd) / md / CUBIC_C);
    cc->bytes_acked_ca = 0;
}

/* Advances the Reno estimate W_est for |bytes| acknowledged: alpha_cubic
 * segments per window, 1 once W_est has reached cwnd_prior (RFC 9438 §4.3). */
static void cubic_update_west(rudp_cc *cc, uint64_t bytes) {
    rudp_cubic_state *s = &cc->u.cubic;
    double alpha = s->w_est >= s->cwnd_prior ? 1.0 : CUBIC_ALPHA;

    s->w_est += alpha * (double)bytes * (double)cc->max_datagram / (double)cc->cwnd;
}

/* Grows the window toward |target| bytes by (target - cwnd) / cwnd per
 * acknowledged byte, crediting whole bytes and keeping the remainder of
 * |bytes| in bytes_acked_ca (RFC 9438 §4.4, §4.5). */
static void cubic_grow(rudp_cc *cc, double target, uint64_t bytes) {
    double cwnd = (double)cc->cwnd;
    double gap = target - cwnd;
    double inc, used;

    if (gap <= 0) {
        cc->bytes_acked_ca = 0;
        return;
    }
    cc->bytes_acked_ca += bytes;
    inc = floor((double)cc->bytes_acked_ca * gap / cwnd);
    if (inc < 1)
        return;
    cc->cwnd += (uint64_t)inc;
    used = ceil(inc * cwnd / gap);
    cc->bytes_acked_ca =
        used < (double)cc->bytes_acked_ca ? cc->bytes_acked_ca - (uint64_t)used : 0;
}

/* Congestion avoidance for |bytes| acknowledged at |now|: the Reno-friendly
 * window when W_cubic(t) is below W_est, else growth toward
 * W_cubic(t + RTT) clamped to [cwnd, 1.5 cwnd]. */
static void cubic_avoid(rudp_cc *cc, uint64_t bytes, const rudp_rtt *rtt, rudp_tstamp now) {
    rudp_cubic_state *s = &cc->u.cubic;
    double t, target, cwnd = (double)cc->cwnd;

    if (!s->epoch_started)
        cubic_start_epoch(cc, now);
    t = (double)(now - s->t_epoch) / CUBIC_NS_PER_SEC;
    cubic_update_west(cc, bytes);
    if (cubic_window_at(cc, t) < s->w_est) {
        if (s->w_est > cwnd)
            cc->cwnd = (uint64_t)s->w_est;
        cc->bytes_acked_ca = 0;
        return;
    }
    target = cubic_window_at(cc, t + (double)rtt->smoothed / CUBIC_NS_PER_SEC);
    if (target > 1.5 * cwnd)
        target = 1.5 * cwnd;
    cubic_grow(cc, target, bytes);
}

/* Credits |bytes| of a packet sent at |sent_time|: nothing during recovery;
 * otherwise ends the recovery period, then slow start below ssthresh and
 * the cubic function above it. */
static void cubic_on_ack(rudp_cc *cc, uint64_t bytes, rudp_tstamp sent_time,
                         const rudp_rtt *rtt, rudp_tstamp now) {
    if (cubic_in_recovery(cc, sent_time))
        return;
    cc->in_recovery = false;
    if (cc->cwnd < cc->ssthresh)
        cc->cwnd += bytes;
    else
        cubic_avoid(cc, bytes, rtt, now);
}

/* Reacts to a loss of a packet sent at |sent_time|: unless it belongs to the
 * recovery period, starts one at |now|, records W_max (with fast
 * convergence) and cwnd_prior, and multiplies the window by beta_cubic. */
static void cubic_on_congestion(rudp_cc *cc, rudp_tstamp sent_time, const rudp_rtt *rtt,
                                rudp_tstamp now) {
    rudp_cubic_state *s = &cc->u.cubic;
    uint64_t min_window = rudp_cc_min_window(cc->max_datagram);
    double cwnd = (double)cc->cwnd;

    if (cubic_in_recovery(cc, sent_time))
        return;
    cc->recovery_start = now;
    cc->in_recovery = true;
    s->cwnd_prior = cwnd;
    s->w_max = cwnd < s->w_max ? cwnd * (1.0 + CUBIC_BETA) / 2.0 : cwnd;
    cc->ssthresh = cc->cwnd * 7 / 10;
    cc->cwnd = cc->ssthresh > min_window ? cc->ssthresh : min_window;
    s->epoch_started = false;
    cc->bytes_acked_ca = 0;
}

/* Collapses the window to the minimum, clears the recovery period and ends
 * the epoch (RFC 9002 §7.6.2); ssthresh and W_max are kept. */
static void cubic_on_persistent_congestion(rudp_cc *cc, rudp_tstamp now) {
    cc->cwnd = rudp_cc_min_window(cc->max_datagram);
    cc->recovery_start = RUDP_TSTAMP_NEVER;
    cc->in_recovery = false;
    cc->u.cubic.epoch_started = false;
    cc->bytes_acked_ca = 0;
}

const rudp_cc_ops rudp_cc_cubic_ops = {
    .name = "cubic",
    .init = cubic_init,
    .on_ack = cubic_on_ack,
    .on_congestion = cubic_on_congestion,
    .on_persistent_congestion = cubic_on_persistent_congestion,
};
