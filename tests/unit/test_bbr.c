/*
 * test_bbr.c — BBR congestion control (engine/cc_bbr.c, after
 * draft-cardwell-iccrg-bbr-congestion-control-00), driven through the real
 * recovery module and rate sampler.
 *
 * The path is a packet-level model in simulated time: a bottleneck of
 * |rate| bytes per second serialises the packets in send order, each
 * arrives |delay| after leaving it, and its ACK (one per packet, no delay)
 * arrives at the sender |delay| later; a deterministic generator drops a
 * fraction |loss| of them after the bottleneck.  The sender sends full
 * packets whenever the congestion window has room and the pacer (at
 * rudp_cc_pacing_rate) allows, unless the application is made to trickle
 * (saying it is app-limited, as the session does, or not).
 */
#include <math.h>
#include <string.h>

#include <criterion/criterion.h>

#include "pacer.h"
#include "recovery.h"

#define MD 1200
#define T0 RUDP_SEC(1000)
#define QCAP 65536

typedef struct bbr_path {
    rudp_recovery rec;
    rudp_pacer pacer;
    rudp_tstamp now;
    double rate;           /* bottleneck, bytes per second */
    rudp_tstamp delay;     /* one way, each direction */
    double loss;           /* fraction dropped after the bottleneck */
    bool police;           /* drop what finds the bottleneck busy (no queue) */
    rudp_tstamp link_free; /* when the bottleneck finishes its last packet */
    rudp_tstamp app_gap;   /* 0: always data; else one packet per gap */
    rudp_tstamp app_next;  /* when the trickling application has a packet */
    bool app_mark;         /* the trickling application says it is app-limited */
    uint64_t prng;
    struct {
        uint64_t pn;
        rudp_tstamp at;
    } q[QCAP]; /* ACKs on their way, in arrival order */
    uint64_t qhead, qtail;
} bbr_path;

static bbr_path *bp;

static void setup(void) {
    rudp_recovery_config cfg = {.initial_rtt = RUDP_MS(333),
                                .max_ack_delay = 0,
                                .max_datagram = MD,
                                .cc = RUDP_CC_BBR};

    bp = calloc(1, sizeof(*bp));
    cr_assert_not_null(bp);
    bp->now = T0;
    bp->rate = 1.25e6; /* 10 Mbit/s */
    bp->delay = RUDP_MS(20);
    bp->prng = 12345;
    cr_assert_eq(rudp_recovery_init(&bp->rec, &cfg, T0), RUDP_OK);
    bp->rec.handshake_confirmed = true;
    rudp_pacer_init(&bp->pacer, 10 * MD, T0);
}

static void teardown(void) {
    rudp_recovery_free(&bp->rec);
    free(bp);
}

TestSuite(bbr, .init = setup, .fini = teardown);

/* Returns a uniform number in [0, 1) (xorshift64). */
static double path_random(bbr_path *p) {
    p->prng ^= p->prng << 13;
    p->prng ^= p->prng >> 7;
    p->prng ^= p->prng << 17;
    return (double)(p->prng >> 11) / 9007199254740992.0;
}

static const rudp_bbr_state *st(void) {
    return &bp->rec.cc.u.bbr;
}

/* Returns the time the sender may next send, or NEVER. */
static rudp_tstamp path_send_time(bbr_path *p) {
    rudp_pacer pc = p->pacer;
    rudp_tstamp t;

    if (rudp_recovery_cwnd_room(&p->rec) < MD)
        return RUDP_TSTAMP_NEVER;
    t = rudp_pacer_next_time(&pc, MD, rudp_cc_pacing_rate(&p->rec.cc, &p->rec.rtt), p->now);
    if (p->app_gap > 0 && p->app_next > t)
        t = p->app_next;
    return t;
}

/* Sends one packet at p->now through the bottleneck. */
static void path_send(bbr_path *p) {
    rudp_sent_pkt *pkt = rudp_recovery_prepare(&p->rec);
    rudp_tstamp leave;

    cr_assert_not_null(pkt);
    pkt->size = MD;
    pkt->ack_eliciting = 1;
    pkt->in_flight = 1;
    rudp_recovery_on_sent(&p->rec, pkt, p->now);
    rudp_pacer_on_sent(&p->pacer, MD, rudp_cc_pacing_rate(&p->rec.cc, &p->rec.rtt), p->now);
    if (p->app_gap > 0)
        p->app_next = (p->app_next > p->now ? p->app_next : p->now) + p->app_gap;
    if (p->police && p->link_free > p->now)
        return; /* a policer: no queue, the packet is dropped */
    leave =
        (p->link_free > p->now ? p->link_free : p->now) + (rudp_tstamp)(MD * 1e9 / p->rate);
    p->link_free = leave;
    if (path_random(p) < p->loss)
        return;
    cr_assert_lt(p->qtail - p->qhead, QCAP);
    p->q[p->qtail % QCAP].pn = pkt->pn;
    p->q[p->qtail % QCAP].at = leave + 2 * p->delay;
    p->qtail++;
}

/* Delivers the ACK at the head of the queue. */
static void path_ack(bbr_path *p) {
    rudp_ack_frame ack = {.nranges = 1};
    uint64_t pn = p->q[p->qhead % QCAP].pn;

    p->qhead++;
    ack.ranges[0].smallest = ack.ranges[0].largest = pn;
    cr_assert_eq(rudp_recovery_on_ack(&p->rec, &ack, p->now, NULL), RUDP_OK);
}

/* Runs one event: the earliest of an ACK arrival, the loss timer and a
 * send.  A trickling application with room but no data reports itself
 * app-limited, as the session does. */
static void path_step(bbr_path *p) {
    rudp_tstamp t_ack = p->qhead < p->qtail ? p->q[p->qhead % QCAP].at : RUDP_TSTAMP_NEVER;
    rudp_tstamp t_timer = rudp_recovery_deadline(&p->rec, false);
    rudp_tstamp t_send = path_send_time(p);

    if (p->app_mark && p->app_next > p->now && rudp_recovery_cwnd_room(&p->rec) >= MD)
        rudp_recovery_on_app_limited(&p->rec);
    if (t_ack <= t_send && t_ack <= t_timer) {
        p->now = t_ack > p->now ? t_ack : p->now;
        path_ack(p);
    } else if (t_timer <= t_send) {
        p->now = t_timer > p->now ? t_timer : p->now;
        rudp_recovery_on_timeout(&p->rec, p->now, false, NULL);
    } else {
        cr_assert_neq(t_send, RUDP_TSTAMP_NEVER, "the path stalled");
        p->now = t_send > p->now ? t_send : p->now;
        path_send(p);
    }
}

/* Runs the path until |end|. */
static void path_run_until(bbr_path *p, rudp_tstamp end) {
    while (p->now < end)
        path_step(p);
}

/* Runs until BBR is in |mode| or |limit| passes; returns whether it got
 * there. */
static bool path_run_to_mode(bbr_path *p, uint8_t mode, rudp_tstamp limit) {
    while (p->now < limit && p->rec.cc.u.bbr.mode != mode)
        path_step(p);
    return p->rec.cc.u.bbr.mode == mode;
}

/* Returns true when |x| is within |tol| (a fraction) of |want|. */
static bool near(double x, double want, double tol) {
    return fabs(x - want) <= tol * want;
}

Test(bbr, selected_by_name_and_enum) {
    enum rudp_cc_algo a;
    rudp_cc cc;

    cr_assert_eq(rudp_cc_algo_from_name("bbr", &a), RUDP_OK);
    cr_assert_eq(a, RUDP_CC_BBR);
    cr_assert_str_eq(rudp_cc_algo_name(RUDP_CC_BBR), "bbr");
    rudp_cc_init(&cc, RUDP_CC_BBR, MD, T0);
    cr_assert_str_eq(cc.ops->name, "bbr");
    cr_assert_eq(cc.cwnd, rudp_cc_initial_window(MD));
    cr_assert_eq(cc.u.bbr.mode, RUDP_BBR_STARTUP);
    cr_assert_float_eq(cc.u.bbr.pacing_gain, 2.0 / log(2.0), 1e-9);
    cr_assert_float_eq(cc.u.bbr.cwnd_gain, 2.0, 1e-9);
}

Test(bbr, pacing_rate_is_bbrs_own) {
    rudp_rtt rtt;

    rudp_rtt_init(&rtt, RUDP_MS(100));
    cr_assert_eq(rudp_cc_pacing_rate(&bp->rec.cc, &rtt), 0, "unpaced before an RTT");
    rudp_rtt_update(&rtt, RUDP_MS(100), 0, 0, true);
    /* Before the first ACK's sample: 2/ln2 * initial window / srtt. */
    cr_assert(near((double)rudp_cc_pacing_rate(&bp->rec.cc, &rtt),
                   2.0 / log(2.0) * 12000 / 0.1, 1e-4));
    path_run_to_mode(bp, RUDP_BBR_PROBE_BW, T0 + RUDP_SEC(5));
    path_run_until(bp, bp->now + RUDP_SEC(2));
    cr_assert_eq(rudp_cc_pacing_rate(&bp->rec.cc, &bp->rec.rtt), st()->pacing_rate);
    cr_assert(
        near((double)st()->pacing_rate, st()->pacing_gain * (double)st()->btl_bw, 1e-6));
}

Test(bbr, a_tiny_first_sample_does_not_pace_startup_down) {
    /* A handshake: one small packet, acknowledged after 25 ms.  Its delivery
     * rate (80 B / 25 ms) must not become the pacing rate of Startup. */
    rudp_sent_pkt *pkt = rudp_recovery_prepare(&bp->rec);
    rudp_ack_frame ack = {.nranges = 1};

    cr_assert_not_null(pkt);
    pkt->size = 80;
    pkt->ack_eliciting = 1;
    pkt->in_flight = 1;
    rudp_recovery_on_sent(&bp->rec, pkt, bp->now);
    ack.ranges[0].smallest = ack.ranges[0].largest = pkt->pn;
    bp->now += RUDP_MS(25);
    cr_assert_eq(rudp_recovery_on_ack(&bp->rec, &ack, bp->now, NULL), RUDP_OK);
    cr_assert_gt(st()->btl_bw, 0, "the sample reached the filter");
    cr_assert(near((double)rudp_cc_pacing_rate(&bp->rec.cc, &bp->rec.rtt),
                   2.0 / log(2.0) * (double)rudp_cc_initial_window(MD) / 0.025, 1e-3),
              "pacing %lu B/s",
              (unsigned long)rudp_cc_pacing_rate(&bp->rec.cc, &bp->rec.rtt));
}

Test(bbr, startup_drain_probe_bw) {
    uint8_t seen[8], n = 0, last = 255;

    while (bp->now < T0 + RUDP_SEC(3)) {
        path_step(bp);
        if (st()->mode != last && n < 8)
            seen[n++] = last = st()->mode;
    }
    cr_assert_geq(n, 3);
    cr_assert_eq(seen[0], RUDP_BBR_STARTUP);
    cr_assert_eq(seen[1], RUDP_BBR_DRAIN);
    cr_assert_eq(seen[2], RUDP_BBR_PROBE_BW);
    cr_assert(st()->filled_pipe);
    cr_assert(near((double)st()->btl_bw, bp->rate, 0.03), "BtlBw %lu",
              (unsigned long)st()->btl_bw);
    cr_assert(near((double)st()->rt_prop, (double)RUDP_MS(40), 0.05));
}

Test(bbr, startup_exits_when_a_queue_stands) {
    /* The bottleneck queues: the round after the delivery rate reached it
     * starts with every RTT at least 5 ms (40 ms / 8) above RTprop, and
     * Startup ends then, before three flat rounds. */
    path_run_to_mode(bp, RUDP_BBR_DRAIN, T0 + RUDP_SEC(3));
    cr_assert_eq(st()->mode, RUDP_BBR_DRAIN);
    cr_assert_lt(st()->full_bw_count, 3);
    cr_assert_geq(st()->round_min_rtt, st()->rt_prop + RUDP_MS(5));
    cr_assert(near((double)st()->btl_bw, bp->rate, 0.1), "BtlBw %lu",
              (unsigned long)st()->btl_bw);
    cr_assert_lt(st()->round_count, 12);
}

Test(bbr, startup_exits_after_three_flat_rounds) {
    /* A policer drops what exceeds the rate instead of queueing it: the RTT
     * never rises, so Startup ends on the bandwidth plateau. */
    uint64_t round_full = 0;

    bp->police = true;
    path_run_to_mode(bp, RUDP_BBR_DRAIN, T0 + RUDP_SEC(3));
    cr_assert_eq(st()->mode, RUDP_BBR_DRAIN);
    cr_assert_eq(st()->full_bw_count, 3);
    round_full = st()->round_count;
    /* The rate (50 packets per 40 ms) is reached after about
     * log2.89(50 / 10) + 3 rounds of plateau; far from 10 s of rounds. */
    cr_assert_lt(round_full, 15);
    cr_assert(near(st()->pacing_gain, log(2.0) / 2.0, 1e-9));
}

Test(bbr, gain_cycle_order) {
    static const double gains[8] = {1.25, 0.75, 1, 1, 1, 1, 1, 1};
    uint8_t idx;
    int changes = 0;

    cr_assert(path_run_to_mode(bp, RUDP_BBR_PROBE_BW, T0 + RUDP_SEC(3)));
    idx = st()->cycle_index;
    cr_assert_neq(idx, 1, "the cycle never starts in the 0.75 phase");
    while (changes < 24) {
        path_step(bp);
        cr_assert_eq(st()->mode, RUDP_BBR_PROBE_BW);
        cr_assert_float_eq(st()->pacing_gain, gains[st()->cycle_index], 1e-12);
        if (st()->cycle_index != idx) {
            cr_assert_eq(st()->cycle_index, (idx + 1) % 8, "phase %u after %u",
                         st()->cycle_index, idx);
            idx = st()->cycle_index;
            changes++;
        }
    }
}

Test(bbr, cwnd_is_twice_bdp_in_steady_state) {
    double bdp;
    uint64_t target;

    cr_assert(path_run_to_mode(bp, RUDP_BBR_PROBE_BW, T0 + RUDP_SEC(3)));
    path_run_until(bp, bp->now + RUDP_SEC(3));
    while (st()->pacing_gain != 1.0)
        path_step(bp);
    bdp = (double)st()->btl_bw * (double)st()->rt_prop / 1e9;
    target = (uint64_t)(2.0 * bdp) + 3 * st()->send_quantum;
    cr_assert_eq(bp->rec.cc.cwnd, target);
    /* 2 * 1.25 MB/s * 40 ms = 100 kB, plus three 2-packet quanta. */
    cr_assert(near(2.0 * bdp, 2.0 * bp->rate * 0.040, 0.05));
    cr_assert_eq(st()->send_quantum, 2 * MD);
}

Test(bbr, probe_rtt_after_ten_seconds_without_new_min) {
    rudp_tstamp stamp, entered;
    uint64_t half_bdp;

    cr_assert(path_run_to_mode(bp, RUDP_BBR_PROBE_BW, T0 + RUDP_SEC(3)));
    path_run_until(bp, bp->now + RUDP_SEC(1));
    /* From now on every RTT is 10 ms above RTprop: no new minimum once the
     * packets already in flight are acknowledged. */
    bp->delay += RUDP_MS(5);
    path_run_until(bp, bp->now + RUDP_MS(200));
    stamp = st()->rt_prop_stamp;
    cr_assert_lt(stamp, bp->now);
    cr_assert(path_run_to_mode(bp, RUDP_BBR_PROBE_RTT, stamp + RUDP_SEC(12)));
    entered = bp->now;
    cr_assert_gt(entered, stamp + RUDP_SEC(10));
    cr_assert_leq(entered, stamp + RUDP_SEC(10) + RUDP_MS(20));
    /* The window drops to half the BDP (BBRv3; v1 went to 4 packets),
     * and the dwell lasts 200 ms at least. */
    path_step(bp);
    half_bdp = (uint64_t)(0.5 * (double)st()->btl_bw * (double)st()->rt_prop / 1e9);
    cr_assert_gt(half_bdp, 4 * MD);
    cr_assert_eq(bp->rec.cc.cwnd, half_bdp);
    /* 1.25 MB/s times an RTprop of 40-60 ms (the first sample after it
     * expired, queue included), halved: 25-37.5 kB. */
    cr_assert(half_bdp >= 25000 && half_bdp <= 37500, "half BDP %lu",
              (unsigned long)half_bdp);
    cr_assert(path_run_to_mode(bp, RUDP_BBR_PROBE_BW, entered + RUDP_SEC(2)));
    cr_assert_geq(bp->now, entered + RUDP_MS(200));
    cr_assert(near((double)st()->rt_prop, (double)RUDP_MS(50), 0.05),
              "RTprop now follows the longer path");
    cr_assert_gt(bp->rec.cc.cwnd, 40 * MD, "the saved window came back");
}

Test(bbr, bandwidth_filter_expires_after_ten_rounds) {
    uint64_t round0, high;

    cr_assert(path_run_to_mode(bp, RUDP_BBR_PROBE_BW, T0 + RUDP_SEC(3)));
    path_run_until(bp, bp->now + RUDP_SEC(1));
    high = st()->btl_bw;
    /* The sender drops to a quarter of the bottleneck without saying it is
     * app-limited (as a flow-control limit would): the samples are low, no
     * queue forms, and only the filter's window retires the old maximum. */
    bp->app_gap = (rudp_tstamp)(4 * MD * 1e9 / bp->rate);
    bp->app_next = bp->now;
    round0 = st()->round_count;
    while (st()->round_count < round0 + 9)
        path_step(bp);
    cr_assert_eq(st()->btl_bw, high, "still within the window");
    while (st()->round_count < round0 + 13)
        path_step(bp);
    cr_assert(near((double)st()->btl_bw, bp->rate / 4, 0.15), "BtlBw %lu after the window",
              (unsigned long)st()->btl_bw);
}

Test(bbr, a_narrower_bottleneck_is_followed) {
    uint64_t round0;

    cr_assert(path_run_to_mode(bp, RUDP_BBR_PROBE_BW, T0 + RUDP_SEC(3)));
    path_run_until(bp, bp->now + RUDP_SEC(1));
    bp->rate /= 2;
    round0 = st()->round_count;
    while (st()->round_count < round0 + 14)
        path_step(bp);
    cr_assert(near((double)st()->btl_bw, bp->rate, 0.1), "BtlBw %lu",
              (unsigned long)st()->btl_bw);
}

Test(bbr, app_limited_samples_do_not_lower_btl_bw) {
    uint64_t high, round0;

    cr_assert(path_run_to_mode(bp, RUDP_BBR_PROBE_BW, T0 + RUDP_SEC(3)));
    path_run_until(bp, bp->now + RUDP_SEC(1));
    high = st()->btl_bw;
    /* The application now writes one packet every 10 ms (120 kB/s). */
    bp->app_gap = RUDP_MS(10);
    bp->app_next = bp->now;
    bp->app_mark = true;
    round0 = st()->round_count;
    path_run_until(bp, bp->now + RUDP_SEC(3));
    cr_assert_gt(st()->round_count, round0 + 20, "many filter windows passed");
    cr_assert_geq(st()->btl_bw, high * 9 / 10, "BtlBw %lu of %lu",
                  (unsigned long)st()->btl_bw, (unsigned long)high);
}

Test(bbr, random_loss_does_not_cut_the_rate) {
    bp->loss = 0.05;
    cr_assert(path_run_to_mode(bp, RUDP_BBR_PROBE_BW, T0 + RUDP_SEC(5)));
    path_run_until(bp, bp->now + RUDP_SEC(5));
    cr_assert_gt(bp->rec.pkts_lost, 100);
    cr_assert_not(bp->rec.cc.in_recovery);
    /* Delivered rate is 95 % of the bottleneck; pacing compensates. */
    cr_assert(near((double)st()->btl_bw, 0.95 * bp->rate, 0.05));
    cr_assert(near(st()->loss_rate, 0.05, 0.4), "loss estimate %f", st()->loss_rate);
    while (st()->pacing_gain != 1.0)
        path_step(bp);
    cr_assert(near((double)st()->pacing_rate, bp->rate, 0.06), "pacing %lu",
              (unsigned long)st()->pacing_rate);
    cr_assert_gt(bp->rec.cc.cwnd, (uint64_t)(1.8 * bp->rate * 0.040));
}

Test(bbr, persistent_congestion_collapses_then_restores) {
    uint64_t before;

    cr_assert(path_run_to_mode(bp, RUDP_BBR_PROBE_BW, T0 + RUDP_SEC(3)));
    path_run_until(bp, bp->now + RUDP_SEC(1));
    before = bp->rec.cc.cwnd;
    bp->rec.cc.ops->on_persistent_congestion(&bp->rec.cc, bp->now);
    cr_assert_eq(bp->rec.cc.cwnd, rudp_cc_min_window(MD));
    cr_assert(bp->rec.cc.in_recovery);
    cr_assert_eq(st()->prior_cwnd, before);
    /* Packets sent after the collapse get acknowledged: the period ends
     * and the saved window is back. */
    path_run_until(bp, bp->now + RUDP_MS(200));
    cr_assert_not(bp->rec.cc.in_recovery);
    cr_assert_geq(bp->rec.cc.cwnd, before * 9 / 10);
}

Test(bbr, loss_with_standing_queue_conserves_packets) {
    rudp_bbr_state *b = &bp->rec.cc.u.bbr;
    uint64_t before;

    cr_assert(path_run_to_mode(bp, RUDP_BBR_PROBE_BW, T0 + RUDP_SEC(3)));
    path_run_until(bp, bp->now + RUDP_SEC(1));
    before = bp->rec.cc.cwnd;
    /* Random loss (no standing queue): nothing happens. */
    bp->rec.cc.ops->on_congestion(&bp->rec.cc, bp->now - RUDP_MS(1), &bp->rec.rtt, bp->now);
    cr_assert_not(bp->rec.cc.in_recovery);
    /* The same loss while the last round never saw the queue empty. */
    b->last_round_min_rtt = b->rt_prop * 2;
    bp->rec.cc.ops->on_congestion(&bp->rec.cc, bp->now - RUDP_MS(1), &bp->rec.rtt, bp->now);
    cr_assert(bp->rec.cc.in_recovery);
    cr_assert_eq(b->prior_cwnd, before);
    while (!b->packet_conservation && bp->now < T0 + RUDP_SEC(10))
        path_step(bp);
    cr_assert(b->packet_conservation);
    cr_assert_leq(bp->rec.cc.cwnd, bp->rec.bytes_in_flight + 2 * MD);
    path_run_until(bp, bp->now + RUDP_MS(200));
    cr_assert_not(bp->rec.cc.in_recovery);
    cr_assert_not(b->packet_conservation);
}

Test(bbr, an_app_limited_flow_with_late_acks_stays_in_startup) {
    /* A request/response flow on loopback: every packet app-limited, and
     * RTTs that jump by more than HyStart++'s 4 ms threshold (a delayed
     * ACK, a descheduled thread).  The rise is not a queue the flow built:
     * leaving Startup on it left nginx's responses paced at a few kB/s. */
    bp->app_gap = RUDP_MS(1);
    bp->app_next = bp->now;
    bp->app_mark = true;
    path_run_until(bp, T0 + RUDP_MS(500));
    cr_assert_eq(st()->mode, RUDP_BBR_STARTUP);
    bp->delay += RUDP_MS(10);
    path_run_until(bp, bp->now + RUDP_SEC(1));
    cr_assert_gt(st()->round_count, 20);
    cr_assert_eq(st()->mode, RUDP_BBR_STARTUP, "mode %u", st()->mode);
    cr_assert_not(st()->filled_pipe);
}

/* Sends one 1-datagram packet at bp->now. */
static uint64_t bbr_send_one(void) {
    rudp_sent_pkt *pkt = rudp_recovery_prepare(&bp->rec);
    cr_assert_not_null(pkt);
    pkt->size = MD;
    pkt->ack_eliciting = 1;
    pkt->in_flight = 1;
    rudp_recovery_on_sent(&bp->rec, pkt, bp->now);
    return pkt->pn;
}

/* Acknowledges packets [from, to) at bp->now. */
static void bbr_ack_range(uint64_t from, uint64_t to) {
    rudp_ack_frame ack = {.nranges = 1};
    ack.ranges[0].smallest = from;
    ack.ranges[0].largest = to - 1;
    cr_assert_eq(rudp_recovery_on_ack(&bp->rec, &ack, bp->now, NULL), RUDP_OK);
}

Test(bbr, a_round_with_an_app_limited_sample_is_no_plateau) {
    /* A request/response server's bursts: the application writes into an
     * idle sender (app-limited), the first packet's ACK ends that period,
     * and the rest of the burst, paced, goes out unmarked.  Its rounds end
     * on unmarked samples of the application's rate, not the path's, and
     * must not count as rounds without growth. */
    for (int burst = 0; burst < 40; burst++) {
        rudp_recovery_on_app_limited(&bp->rec);
        uint64_t first = bbr_send_one();
        bp->now += RUDP_MS(40);
        bbr_ack_range(first, first + 1);
        for (int i = 0; i < 7; i++) {
            bbr_send_one();
            bp->now += RUDP_MS(1);
        }
        bp->now += RUDP_MS(40);
        bbr_ack_range(first + 1, first + 8);
        bp->now += RUDP_MS(10); /* the application thinks */
    }
    cr_assert_gt(st()->round_count, 30);
    cr_assert_not(st()->filled_pipe, "left Startup at %lu B/s after %lu rounds",
                  (unsigned long)st()->btl_bw, (unsigned long)st()->round_count);
}
