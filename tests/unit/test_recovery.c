/*
 * test_recovery.c — sent-packet records, ACK processing, loss detection and
 * the PTO (engine/recovery.c, RFC 9002 §6, §7.6, appendix A), in simulated
 * time.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "recovery.h"

#define MD 1200
#define T0 RUDP_SEC(10)
#define LOG_MAX 300000

/* What the handlers saw, per packet number. */
typedef struct rec_log {
    uint8_t acked[LOG_MAX];
    uint8_t lost[LOG_MAX];
    uint64_t nacked, nlost;
    uint64_t last_acked, last_lost;
    bool frames_ok;
} rec_log;

static rec_log *lg;
static rudp_recovery rr;

/* Checks the frame the sender attached to |pkt| (see send_pkt). */
static bool frames_match(const rudp_sent_pkt *pkt) {
    return pkt->nframes == 1 && pkt->frames[0].kind == RUDP_SENT_DATA &&
           pkt->frames[0].offset == pkt->pn * 1000 &&
           pkt->frames[0].sid == pkt->pn % 7 + 1 &&
           pkt->ack_largest == (pkt->pn > 0 ? pkt->pn - 1 : RUDP_PN_NONE);
}

static void on_acked(void *user, const rudp_sent_pkt *pkt, rudp_tstamp now) {
    rec_log *l = user;

    cr_assert_lt(pkt->pn, LOG_MAX);
    l->acked[pkt->pn]++;
    l->nacked++;
    l->last_acked = pkt->pn;
    if (!frames_match(pkt))
        l->frames_ok = false;
}

static void on_lost(void *user, const rudp_sent_pkt *pkt, rudp_tstamp now) {
    rec_log *l = user;

    cr_assert_lt(pkt->pn, LOG_MAX);
    l->lost[pkt->pn]++;
    l->nlost++;
    l->last_lost = pkt->pn;
    if (!frames_match(pkt))
        l->frames_ok = false;
}

static rudp_recovery_handler hd;

static void setup(void) {
    rudp_recovery_config cfg = {
        .initial_rtt = RUDP_MS(100),
        .max_ack_delay = RUDP_MS(25),
        .max_datagram = MD,
        .cc = RUDP_CC_NEWRENO,
    };

    lg = calloc(1, sizeof(*lg));
    cr_assert_not_null(lg);
    lg->frames_ok = true;
    hd.on_acked = on_acked;
    hd.on_lost = on_lost;
    hd.user = lg;
    cr_assert_eq(rudp_recovery_init(&rr, &cfg, T0), RUDP_OK);
}

static void teardown(void) {
    rudp_recovery_free(&rr);
    free(lg);
}

/* Sends one packet of |size| bytes at |now| carrying one DATA frame whose
 * fields derive from its pn.  Returns the pn. */
static uint64_t send_pkt_ex(rudp_tstamp now, uint32_t size, bool eliciting,
                            bool in_flight) {
    rudp_sent_pkt *p = rudp_recovery_prepare(&rr);

    cr_assert_not_null(p);
    cr_assert_eq(p->pn, rr.next_pn);
    cr_assert_eq(p->state, RUDP_SENT_FREE);
    cr_assert_eq(p->nframes, 0);
    cr_assert_eq(p->ack_largest, RUDP_PN_NONE);
    p->size = size;
    p->ack_eliciting = eliciting;
    p->in_flight = in_flight;
    p->ack_largest = p->pn > 0 ? p->pn - 1 : RUDP_PN_NONE;
    p->nframes = 1;
    p->frames[0].kind = RUDP_SENT_DATA;
    p->frames[0].sid = p->pn % 7 + 1;
    p->frames[0].offset = p->pn * 1000;
    p->frames[0].len = 1000;
    rudp_recovery_on_sent(&rr, p, now);
    return p->pn;
}

static uint64_t send_pkt(rudp_tstamp now) {
    return send_pkt_ex(now, MD, true, true);
}

/* Builds an ACK frame from |n| (largest, smallest) pairs, descending. */
static rudp_ack_frame make_ack(uint32_t delay_us, uint32_t n, const uint64_t *pairs) {
    rudp_ack_frame f;

    memset(&f, 0, sizeof(f));
    f.ack_delay_us = delay_us;
    f.nranges = n;
    for (uint32_t i = 0; i < n; i++) {
        f.ranges[i].largest = pairs[2 * i];
        f.ranges[i].smallest = pairs[2 * i + 1];
    }
    return f;
}

/* Acknowledges [lo, hi] at |now| and expects success. */
static void ack_range(uint64_t lo, uint64_t hi, rudp_tstamp now) {
    uint64_t pairs[2] = {hi, lo};
    rudp_ack_frame f = make_ack(0, 1, pairs);

    cr_assert_eq(rudp_recovery_on_ack(&rr, &f, now, &hd), RUDP_OK);
}

TestSuite(recovery, .init = setup, .fini = teardown);

Test(recovery, trim_shrinks_the_ring_after_a_large_flight) {
    uint64_t initial = rr.cap;
    for (int i = 0; i < 1000; i++)
        send_pkt(RUDP_MS(1));
    cr_assert_geq(rr.cap, 1024);
    rudp_recovery_trim(&rr, RUDP_MS(2));
    cr_assert_geq(rr.cap, 1024, "the flight still fills the ring");
    ack_range(0, 989, RUDP_MS(50));
    rudp_recovery_trim(&rr, RUDP_MS(50));
    cr_expect_eq(rr.cap, 32, "ten outstanding records: halved down to a quarter full");
    cr_expect_eq(rr.oldest_pn, 990);
    /* The records still outstanding kept their place and their frames. */
    ack_range(990, 999, RUDP_MS(60));
    cr_expect_eq(rr.bytes_in_flight, 0);
    cr_expect_eq(send_pkt(RUDP_MS(61)), 1000);
    ack_range(1000, 1000, RUDP_MS(70));
    rudp_recovery_trim(&rr, RUDP_MS(70));
    cr_expect_eq(rr.cap, initial, "an empty flight: back to the initial ring");
}

Test(recovery, trim_ages_lost_records_of_an_idle_session) {
    for (int i = 0; i < 200; i++)
        send_pkt(RUDP_MS(1));
    ack_range(150, 199, RUDP_MS(50)); /* 0..149 are declared lost, and held */
    cr_assert_eq(lg->nlost, 150);
    rudp_recovery_trim(&rr, RUDP_MS(50));
    cr_expect_geq(rr.cap, 256, "lost records still held for a late ACK");
    rudp_recovery_trim(&rr, RUDP_SEC(5)); /* no packet since: only the clock moved */
    cr_expect_eq(rr.oldest_pn, 200);
    cr_expect_eq(rr.cap, 16);
}

Test(recovery, init_state) {
    cr_assert_eq(rr.cap, 16);
    cr_assert_eq(rr.next_pn, 0);
    cr_assert_eq(rr.largest_acked, RUDP_PN_NONE);
    cr_assert_eq(rr.loss_time, RUDP_TSTAMP_NEVER);
    cr_assert_eq(rr.first_rtt_sample_time, RUDP_TSTAMP_NEVER);
    cr_assert_eq(rr.cc.cwnd, 12000);
    cr_assert_eq(rudp_recovery_cwnd_room(&rr), 12000);
    cr_assert_null(rudp_recovery_oldest_outstanding(&rr));
    cr_assert_eq(rudp_recovery_deadline(&rr, false), RUDP_TSTAMP_NEVER);
}

Test(recovery, prepare_and_on_sent) {
    rudp_sent_pkt *p = rudp_recovery_prepare(&rr);

    p->nframes = 3;
    p->size = 77;
    /* Nothing committed yet: prepare again gives the same, cleared slot. */
    cr_assert_eq(rudp_recovery_prepare(&rr), p);
    cr_assert_eq(p->nframes, 0);
    cr_assert_eq(p->size, 0);
    cr_assert_eq(p->pn, 0);
    cr_assert_eq(p->ack_largest, RUDP_PN_NONE);
    send_pkt(T0 + 5);
    cr_assert_eq(rr.next_pn, 1);
    cr_assert_eq(rr.pkts_sent, 1);
    cr_assert_eq(rr.bytes_in_flight, MD);
    cr_assert_eq(rr.ack_eliciting_in_flight, 1);
    cr_assert_eq(rr.last_ack_eliciting_time, T0 + 5);
    cr_assert_eq(rudp_recovery_cwnd_room(&rr), 12000 - MD);
    cr_assert_eq(rudp_recovery_oldest_outstanding(&rr)->time_sent, T0 + 5);
    cr_assert_eq(rudp_recovery_oldest_outstanding(&rr)->state, RUDP_SENT_OUTSTANDING);
    /* A pure ACK is recorded but not in flight. */
    send_pkt_ex(T0 + 6, 50, false, false);
    cr_assert_eq(rr.next_pn, 2);
    cr_assert_eq(rr.pkts_sent, 2);
    cr_assert_eq(rr.bytes_in_flight, MD);
    cr_assert_eq(rr.ack_eliciting_in_flight, 1);
    cr_assert_eq(rr.last_ack_eliciting_time, T0 + 5);
}

Test(recovery, ack_of_unsent_pn_is_protocol_error) {
    uint64_t bad[2] = {0, 0};
    rudp_ack_frame f = make_ack(0, 1, bad);

    cr_assert_eq(rudp_recovery_on_ack(&rr, &f, T0, &hd), RUDP_ERR_PROTOCOL);
    for (int i = 0; i < 3; i++)
        send_pkt(T0);
    bad[0] = 3;
    f = make_ack(0, 1, bad);
    cr_assert_eq(rudp_recovery_on_ack(&rr, &f, T0 + RUDP_MS(50), &hd), RUDP_ERR_PROTOCOL);
    cr_assert_eq(lg->nacked, 0);
    cr_assert_eq(rr.largest_acked, RUDP_PN_NONE);
    cr_assert_eq(rr.bytes_in_flight, 3 * MD);
    cr_assert(!rr.rtt.has_sample);
    /* Malformed ranges: none, inverted, not descending. */
    f = make_ack(0, 0, bad);
    cr_assert_eq(rudp_recovery_on_ack(&rr, &f, T0, &hd), RUDP_ERR_PROTOCOL);
    {
        uint64_t inv[2] = {1, 2};
        f = make_ack(0, 1, inv);
        cr_assert_eq(rudp_recovery_on_ack(&rr, &f, T0, &hd), RUDP_ERR_PROTOCOL);
    }
    {
        uint64_t asc[4] = {0, 0, 2, 1};
        f = make_ack(0, 2, asc);
        cr_assert_eq(rudp_recovery_on_ack(&rr, &f, T0, &hd), RUDP_ERR_PROTOCOL);
    }
    cr_assert_eq(lg->nacked, 0);
    ack_range(0, 2, T0 + RUDP_MS(50));
    cr_assert_eq(lg->nacked, 3);
}

Test(recovery, ack_takes_rtt_sample_with_ack_delay) {
    send_pkt(T0);
    send_pkt(T0 + RUDP_MS(10));
    {
        uint64_t pr[2] = {0, 0};
        rudp_ack_frame f = make_ack(5000, 1, pr);
        cr_assert_eq(rudp_recovery_on_ack(&rr, &f, T0 + RUDP_MS(100), &hd), RUDP_OK);
    }
    cr_assert(rr.rtt.has_sample);
    cr_assert_eq(rr.rtt.latest, RUDP_MS(100));
    cr_assert_eq(rr.rtt.smoothed, RUDP_MS(100));
    cr_assert_eq(rr.first_rtt_sample_time, T0 + RUDP_MS(100));
    /* 120 ms with a 16 000 us ACK delay: adjusted 104 ms. */
    {
        uint64_t pr[2] = {1, 1};
        rudp_ack_frame f = make_ack(16000, 1, pr);
        cr_assert_eq(rudp_recovery_on_ack(&rr, &f, T0 + RUDP_MS(130), &hd), RUDP_OK);
    }
    cr_assert_eq(rr.rtt.latest, RUDP_MS(120));
    cr_assert_eq(rr.rtt.smoothed, (7 * RUDP_MS(100) + RUDP_MS(104)) / 8);
    cr_assert_eq(rr.rtt.min, RUDP_MS(100));
    cr_assert_eq(rr.largest_acked, 1);
    cr_assert_eq(rr.bytes_in_flight, 0);
    cr_assert_eq(rr.ack_eliciting_in_flight, 0);
    cr_assert_eq(rr.oldest_pn, 2);
}

Test(recovery, ack_delay_capped_once_handshake_confirmed) {
    send_pkt(T0);
    send_pkt(T0 + RUDP_MS(10));
    ack_range(0, 0, T0 + RUDP_MS(100));
    rr.handshake_confirmed = true;
    {
        /* 200 ms with a reported 80 ms delay, capped at 25 ms: 175 ms. */
        uint64_t pr[2] = {1, 1};
        rudp_ack_frame f = make_ack(80000, 1, pr);
        cr_assert_eq(rudp_recovery_on_ack(&rr, &f, T0 + RUDP_MS(210), &hd), RUDP_OK);
    }
    cr_assert_eq(rr.rtt.smoothed, (7 * RUDP_MS(100) + RUDP_MS(175)) / 8);
}

Test(recovery, no_rtt_sample_when_largest_not_newly_acked) {
    send_pkt(T0);
    send_pkt(T0);
    ack_range(1, 1, T0 + RUDP_MS(40));
    cr_assert_eq(rr.rtt.smoothed, RUDP_MS(40));
    /* Largest (1) already acked; only 0 is new: no sample. */
    {
        uint64_t pr[4] = {1, 1, 0, 0};
        rudp_ack_frame f = make_ack(0, 2, pr);
        cr_assert_eq(rudp_recovery_on_ack(&rr, &f, T0 + RUDP_MS(90), &hd), RUDP_OK);
    }
    cr_assert_eq(rr.rtt.latest, RUDP_MS(40));
    cr_assert_eq(rr.rtt.smoothed, RUDP_MS(40));
    cr_assert_eq(lg->acked[0], 1);
}

Test(recovery, no_rtt_sample_from_non_ack_eliciting) {
    send_pkt_ex(T0, 40, false, false);
    ack_range(0, 0, T0 + RUDP_MS(30));
    cr_assert(!rr.rtt.has_sample);
    cr_assert_eq(lg->acked[0], 1);
    cr_assert_eq(rr.largest_acked, 0);
    cr_assert_eq(rr.cc.cwnd, 12000); /* not in flight: no credit */
}

Test(recovery, packet_threshold_is_exactly_three) {
    for (int i = 0; i < 6; i++)
        send_pkt(T0);
    /* pn 3 acked: 0 is 3 below (lost), 1 and 2 are not. */
    ack_range(3, 3, T0 + RUDP_MS(10));
    cr_assert_eq(lg->lost[0], 1);
    cr_assert_eq(lg->lost[1], 0);
    cr_assert_eq(lg->lost[2], 0);
    cr_assert_eq(lg->nlost, 1);
    cr_assert_eq(rr.pkts_lost, 1);
    cr_assert_eq(rr.bytes_lost, MD);
    /* 1 and 2 arm the time threshold: sent T0 + 9/8 * 10 ms. */
    cr_assert_eq(rr.loss_time, T0 + RUDP_MS(10) * 9 / 8);
    cr_assert_eq(rudp_recovery_deadline(&rr, false), rr.loss_time);
    ack_range(4, 4, T0 + RUDP_MS(10));
    cr_assert_eq(lg->lost[1], 1);
    cr_assert_eq(lg->lost[2], 0);
    cr_assert_eq(lg->nlost, 2);
    cr_assert_eq(rr.bytes_in_flight, MD * 2); /* 2 and 5 */
    cr_assert_eq(rr.ack_eliciting_in_flight, 2);
    cr_assert_eq(rudp_recovery_oldest_outstanding(&rr)->pn, 2);
}

Test(recovery, a_late_ack_for_a_lost_packet_turns_off_the_packet_threshold) {
    /* Packets 0..5; 4 and 5 are acknowledged first, so 0, 1 and 2 are lost
     * by the packet threshold; then they are acknowledged: spurious losses.
     * The next reordering of the same kind loses nothing, and the time
     * threshold is wider by min_rtt/4. */
    for (int i = 0; i < 6; i++)
        send_pkt(T0);
    ack_range(4, 5, T0 + RUDP_MS(10));
    cr_assert_eq(lg->nlost, 3);
    cr_assert_not(rr.reorder_seen);
    ack_range(0, 3, T0 + RUDP_MS(11));
    cr_assert_eq(rr.spurious_losses, 3);
    cr_assert(rr.reorder_seen);
    cr_assert_eq(rr.reorder_steps, 1);
    cr_assert_eq(lg->acked[0] + lg->lost[0], 1, "pn 0 reported twice");
    rudp_tstamp t = T0 + RUDP_MS(20);
    for (int i = 0; i < 6; i++)
        send_pkt(t);
    ack_range(10, 11, t + RUDP_MS(10));
    cr_assert_eq(lg->nlost, 3, "the packet threshold still declares losses");
    /* The time threshold: 9/8 of the RTT plus a quarter of min_rtt. */
    rudp_tstamp base = rr.rtt.latest > rr.rtt.smoothed ? rr.rtt.latest : rr.rtt.smoothed;
    cr_assert_eq(rr.loss_time, t + base * 9 / 8 + rr.rtt.min / 4);
    ack_range(6, 9, t + RUDP_MS(11));
    cr_assert_eq(lg->nlost, 3);
    cr_assert_eq(rr.oldest_pn, rr.next_pn);
}

Test(recovery, the_reordering_tolerance_steps_back_when_calm) {
    /* One spurious loss, then RUDP_REORDER_CALM loss episodes without one:
     * the step goes and the packet threshold returns. */
    rudp_tstamp t = T0;
    for (int i = 0; i < 6; i++)
        send_pkt(t);
    ack_range(4, 5, t + RUDP_MS(10));
    ack_range(0, 3, t + RUDP_MS(10));
    cr_assert(rr.reorder_seen);
    for (int e = 0; e < RUDP_REORDER_CALM; e++) {
        t += RUDP_MS(100);
        uint64_t first = send_pkt(t);
        send_pkt(t);
        /* The first is really lost: acknowledged only its successor, it is
         * declared lost by the (widened) time threshold. */
        ack_range(first + 1, first + 1, t + RUDP_MS(10));
        rudp_recovery_on_timeout(&rr, rr.loss_time, false, &hd);
        cr_assert_eq(lg->lost[first], 1, "episode %d", e);
    }
    cr_assert_eq(rr.reorder_steps, 0);
    cr_assert_not(rr.reorder_seen);
}

Test(recovery, time_threshold_boundary_via_timer) {
    send_pkt(T0);
    send_pkt(T0 + RUDP_MS(8));
    /* RTT 80 ms: loss_delay = 90 ms; pn 0 is lost at T0 + 90 ms. */
    ack_range(1, 1, T0 + RUDP_MS(88));
    cr_assert_eq(rr.rtt.latest, RUDP_MS(80));
    cr_assert_eq(lg->nlost, 0);
    cr_assert_eq(rr.loss_time, T0 + RUDP_MS(90));
    cr_assert_eq(rudp_recovery_deadline(&rr, false), T0 + RUDP_MS(90));
    cr_assert_eq(rudp_recovery_on_timeout(&rr, T0 + RUDP_MS(90) - 1, false, &hd), 0);
    cr_assert_eq(lg->nlost, 0);
    cr_assert_eq(rr.pto_count, 0);
    cr_assert_eq(rudp_recovery_on_timeout(&rr, T0 + RUDP_MS(90), false, &hd), 0);
    cr_assert_eq(lg->lost[0], 1);
    cr_assert_eq(rr.pto_count, 0);
    cr_assert_eq(rr.pto_total, 0);
    cr_assert_eq(rr.loss_time, RUDP_TSTAMP_NEVER);
    cr_assert_eq(rr.bytes_in_flight, 0);
    cr_assert_eq(rudp_recovery_deadline(&rr, false), RUDP_TSTAMP_NEVER);
}

/* Establishes smoothed = latest = 80 ms, sends pn 2 at |t1| and pn 3 at
 * t1 + |d|, and acknowledges pn 3 |rtt| later. */
static void time_threshold_run(rudp_tstamp t1, rudp_tstamp d, rudp_tstamp rtt) {
    send_pkt(T0);
    send_pkt(T0);
    ack_range(0, 1, T0 + RUDP_MS(80));
    cr_assert_eq(rr.rtt.smoothed, RUDP_MS(80));
    send_pkt(t1);
    send_pkt(t1 + d);
    ack_range(3, 3, t1 + d + rtt);
    cr_assert_eq(rr.rtt.latest, rtt);
}

Test(recovery, time_threshold_not_lost_one_ns_early) {
    rudp_tstamp t1 = T0 + RUDP_SEC(1);

    /* RTT stays 80 ms: loss_delay 90 ms, the ACK comes at t1 + 90 ms - 1. */
    time_threshold_run(t1, RUDP_MS(10) - 1, RUDP_MS(80));
    cr_assert_eq(rr.rtt.smoothed, RUDP_MS(80));
    cr_assert_eq(lg->lost[2], 0);
    cr_assert_eq(rr.loss_time, t1 + RUDP_MS(90));
}

Test(recovery, time_threshold_lost_exactly_at_nine_eighths) {
    rudp_tstamp t1 = T0 + RUDP_SEC(1);

    time_threshold_run(t1, RUDP_MS(10), RUDP_MS(80));
    cr_assert_eq(lg->lost[2], 1);
    cr_assert_eq(rr.loss_time, RUDP_TSTAMP_NEVER);
}

Test(recovery, time_threshold_uses_larger_of_latest_and_smoothed) {
    rudp_tstamp t1 = T0 + RUDP_SEC(1);

    /* latest = 160 ms > smoothed (90 ms): delay = 180 ms, and the ACK at
     * t1 + 170 ms is not late enough. */
    time_threshold_run(t1, RUDP_MS(10), RUDP_MS(160));
    cr_assert_eq(rr.rtt.smoothed, RUDP_MS(90));
    cr_assert_eq(lg->lost[2], 0);
    cr_assert_eq(rr.loss_time, t1 + RUDP_MS(180));
}

Test(recovery, pto_deadline_and_backoff) {
    rudp_tstamp pto = RUDP_MS(100) + 4 * RUDP_MS(50) + RUDP_MS(25);

    send_pkt(T0);
    cr_assert_eq(rudp_recovery_pto(&rr), pto);
    cr_assert_eq(rudp_recovery_deadline(&rr, false), T0 + pto);
    cr_assert_eq(rudp_recovery_on_timeout(&rr, T0 + pto - 1, false, &hd), 0);
    cr_assert_eq(rr.pto_count, 0);
    cr_assert_eq(rudp_recovery_on_timeout(&rr, T0 + pto, false, &hd), 2);
    cr_assert_eq(rr.pto_count, 1);
    cr_assert_eq(rr.pto_total, 1);
    cr_assert_eq(rudp_recovery_pto(&rr), 2 * pto);
    cr_assert_eq(rudp_recovery_deadline(&rr, false), T0 + 2 * pto);
    cr_assert_eq(rudp_recovery_on_timeout(&rr, T0 + 2 * pto, false, &hd), 2);
    cr_assert_eq(rudp_recovery_deadline(&rr, false), T0 + 4 * pto);
    /* The probes restart the clock from the last ack-eliciting send. */
    send_pkt(T0 + 2 * pto);
    cr_assert_eq(rudp_recovery_deadline(&rr, false), T0 + 2 * pto + 4 * pto);
    cr_assert_eq(lg->nlost, 0);
    /* An ACK that acknowledges something new resets the backoff. */
    ack_range(1, 1, T0 + 2 * pto + RUDP_MS(100));
    cr_assert_eq(rr.pto_count, 0);
    cr_assert_eq(rr.pto_total, 2);
}

Test(recovery, pto_backoff_is_capped) {
    rudp_tstamp pto = RUDP_MS(100) + 4 * RUDP_MS(50) + RUDP_MS(25); /* 325 ms */

    rr.pto_count = 2;
    cr_assert_eq(rudp_recovery_pto(&rr), pto << 2);
    rr.pto_count = 3; /* 2.6 s would exceed the ceiling */
    cr_assert_eq(rudp_recovery_pto(&rr), RUDP_MAX_PTO);
    rr.pto_count = 40;
    cr_assert_eq(rudp_recovery_pto(&rr), RUDP_MAX_PTO);
}

Test(recovery, pto_cap_never_shortens_an_unbacked_pto) {
    /* On a path whose PTO alone exceeds the ceiling, no backoff is applied
     * beyond it, and the PTO itself is kept. */
    rr.rtt.smoothed = RUDP_SEC(3);
    rr.pto_count = 0;
    rudp_tstamp base = rudp_rtt_pto(&rr.rtt, rr.max_ack_delay);
    cr_assert_gt(base, RUDP_MAX_PTO);
    cr_assert_eq(rudp_recovery_pto(&rr), base);
    rr.pto_count = 5;
    cr_assert_eq(rudp_recovery_pto(&rr), base);
}

Test(recovery, pto_probes_one_before_handshake) {
    rudp_tstamp pto = RUDP_MS(325);

    /* Nothing sent: no timer, unless the client is unconfirmed. */
    cr_assert_eq(rudp_recovery_deadline(&rr, false), RUDP_TSTAMP_NEVER);
    cr_assert_eq(rudp_recovery_on_timeout(&rr, T0 + RUDP_SEC(100), false, &hd), 0);
    cr_assert_eq(rudp_recovery_deadline(&rr, true), T0 + pto);
    cr_assert_eq(rudp_recovery_on_timeout(&rr, T0 + pto, true, &hd), 1);
    cr_assert_eq(rr.pto_count, 1);
    send_pkt(T0 + pto);
    cr_assert_eq(rudp_recovery_deadline(&rr, true), T0 + pto + 2 * pto);
    cr_assert_eq(rudp_recovery_on_timeout(&rr, T0 + 3 * pto, true, &hd), 1);
    cr_assert_eq(rudp_recovery_on_timeout(&rr, T0 + 7 * pto, false, &hd), 2);
    cr_assert_eq(rr.pto_total, 3);
}

Test(recovery, pto_deadline_after_rtt_sample) {
    send_pkt(T0);
    send_pkt(T0 + RUDP_MS(1));
    ack_range(0, 0, T0 + RUDP_MS(100));
    /* srtt 100, rttvar 50: PTO 100 + 200 + 25, from the last send. */
    cr_assert_eq(rudp_recovery_deadline(&rr, false), T0 + RUDP_MS(1) + RUDP_MS(325));
    ack_range(1, 1, T0 + RUDP_MS(101));
    cr_assert_eq(rudp_recovery_deadline(&rr, false), RUDP_TSTAMP_NEVER);
}

Test(recovery, duplicate_acks_report_nothing_twice) {
    for (int i = 0; i < 10; i++)
        send_pkt(T0);
    ack_range(0, 9, T0 + RUDP_MS(50));
    cr_assert_eq(lg->nacked, 10);
    uint64_t cwnd = rr.cc.cwnd;
    rr.pto_count = 3;
    ack_range(0, 9, T0 + RUDP_MS(60));
    ack_range(5, 9, T0 + RUDP_MS(70));
    cr_assert_eq(lg->nacked, 10);
    cr_assert_eq(lg->nlost, 0);
    cr_assert_eq(rr.cc.cwnd, cwnd);
    cr_assert_eq(rr.rtt.latest, RUDP_MS(50));
    cr_assert_eq(rr.pto_count, 3); /* nothing new: no reset */
    for (int i = 0; i < 10; i++)
        cr_assert_eq(lg->acked[i], 1);
    cr_assert(lg->frames_ok);
}

Test(recovery, ack_credits_congestion_window) {
    for (int i = 0; i < 10; i++)
        send_pkt(T0);
    cr_assert_eq(rudp_recovery_cwnd_room(&rr), 0);
    ack_range(0, 9, T0 + RUDP_MS(50));
    cr_assert_eq(rr.cc.cwnd, 24000); /* slow start */
    cr_assert_eq(rudp_recovery_cwnd_room(&rr), 24000);
}

Test(recovery, one_congestion_event_per_batch) {
    for (int i = 0; i < 10; i++)
        send_pkt(T0 + (rudp_tstamp)i);
    /* Acking 8 and 9 loses 0..6 (7 is within the threshold). */
    ack_range(8, 9, T0 + RUDP_MS(20));
    cr_assert_eq(lg->nlost, 7);
    cr_assert_eq(rr.cc.cwnd, 6000);
    cr_assert_eq(rr.cc.ssthresh, 6000);
    cr_assert_eq(rr.cc.recovery_start, T0 + RUDP_MS(20));
    /* The ACKs arriving with the loss were sent before the recovery start:
     * no growth. */
    cr_assert_eq(rr.bytes_in_flight, MD);
    /* Losing 7 later (same flight) does not reduce again. */
    cr_assert_eq(rudp_recovery_on_timeout(&rr, rr.loss_time, false, &hd), 0);
    cr_assert_eq(lg->lost[7], 1);
    cr_assert_eq(rr.cc.cwnd, 6000);
    cr_assert_eq(rr.pkts_lost, 8);
    cr_assert_eq(rr.bytes_lost, 8 * MD);
}

/* Sends pn 0 at T0 and takes its sample at T0 + 100 ms (srtt 100, rttvar
 * 50).  The ACK that reveals the losses brings another 100 ms sample
 * (rttvar 37.5), so the persistent-congestion duration is
 * 3 * (100 + 150 + 25) = 825 ms. */
static void pc_setup(void) {
    send_pkt(T0);
    ack_range(0, 0, T0 + RUDP_MS(100));
    cr_assert_eq(rr.cc.cwnd, 13200);
}

Test(recovery, persistent_congestion_collapses_window) {
    rudp_tstamp t1 = T0 + RUDP_MS(200);

    pc_setup();
    send_pkt(t1);                 /* 1 */
    send_pkt(t1 + RUDP_MS(400));  /* 2 */
    send_pkt(t1 + RUDP_MS(800));  /* 3 */
    send_pkt(t1 + RUDP_MS(826));  /* 4: 826 ms after 1 */
    send_pkt(t1 + RUDP_MS(1100)); /* 5 */
    ack_range(5, 5, t1 + RUDP_MS(1200));
    cr_assert_eq(rr.rtt.var, RUDP_MS(75) / 2);
    cr_assert_eq(lg->nlost, 4);
    /* Collapsed to 2400, then pn 5 (slow start) adds its 1200. */
    cr_assert_eq(rr.cc.cwnd, 2400 + MD);
    cr_assert_eq(rr.cc.ssthresh, 6600);
    cr_assert_eq(rr.cc.recovery_start, RUDP_TSTAMP_NEVER);
}

Test(recovery, no_persistent_congestion_within_duration) {
    rudp_tstamp t1 = T0 + RUDP_MS(200);

    pc_setup();
    send_pkt(t1);
    send_pkt(t1 + RUDP_MS(400));
    send_pkt(t1 + RUDP_MS(800));
    send_pkt(t1 + RUDP_MS(825)); /* exactly the duration: not more */
    send_pkt(t1 + RUDP_MS(1100));
    ack_range(5, 5, t1 + RUDP_MS(1200));
    cr_assert_eq(lg->nlost, 4);
    cr_assert_eq(rr.cc.cwnd, 6600);
}

Test(recovery, no_persistent_congestion_across_acked_packet) {
    rudp_tstamp t1 = T0 + RUDP_MS(200);
    uint64_t pr[4] = {6, 6, 3, 3};
    rudp_ack_frame f = make_ack(0, 2, pr);

    pc_setup();
    send_pkt(t1);                 /* 1 */
    send_pkt(t1 + RUDP_MS(400));  /* 2 */
    send_pkt(t1 + RUDP_MS(500));  /* 3: acknowledged */
    send_pkt(t1 + RUDP_MS(800));  /* 4 */
    send_pkt(t1 + RUDP_MS(1000)); /* 5 */
    send_pkt(t1 + RUDP_MS(1100)); /* 6 */
    cr_assert_eq(rudp_recovery_on_ack(&rr, &f, t1 + RUDP_MS(1200), &hd), RUDP_OK);
    cr_assert_eq(lg->nlost, 4);
    cr_assert_eq(lg->acked[3], 1);
    cr_assert_eq(rr.cc.cwnd, 6600);
}

Test(recovery, no_persistent_congestion_before_first_sample) {
    /* No RTT sample when 1..4 were sent: only a halving. */
    send_pkt(T0);
    send_pkt(T0 + RUDP_MS(400));
    send_pkt(T0 + RUDP_MS(800));
    send_pkt(T0 + RUDP_MS(1500));
    send_pkt(T0 + RUDP_MS(1600));
    ack_range(4, 4, T0 + RUDP_MS(1700));
    cr_assert_eq(lg->nlost, 4);
    cr_assert_eq(rr.cc.cwnd, 6000);
}

Test(recovery, ring_grows_and_keeps_records) {
    rudp_tstamp now = T0;
    uint64_t n = 5000;

    /* Slide the window first so the ring wraps before it grows. */
    for (int i = 0; i < 200; i++)
        send_pkt(now);
    ack_range(0, 149, now + RUDP_MS(10));
    cr_assert_eq(rr.oldest_pn, 150);
    for (uint64_t i = 0; i < n; i++)
        send_pkt(now + RUDP_MS(10) + i);
    cr_assert_eq(rr.next_pn, 200 + n);
    cr_assert_geq(rr.cap, 8192);
    cr_assert_eq(rr.cap & (rr.cap - 1), 0);
    cr_assert_eq(rr.bytes_in_flight, (50 + n) * MD);
    for (uint64_t pn = 150; pn < 200 + n; pn++) {
        const rudp_sent_pkt *p = &rr.ring[pn & (rr.cap - 1)];
        cr_assert_eq(p->pn, pn);
        cr_assert_eq(p->state, RUDP_SENT_OUTSTANDING);
        cr_assert(frames_match(p));
    }
    /* Acknowledge everything in 32 interleaved ranges, then the gaps. */
    {
        uint64_t pr[64];
        uint64_t top = 199 + n;
        for (int i = 0; i < 32; i++) {
            pr[2 * i] = top - (uint64_t)i * 100;
            pr[2 * i + 1] = top - (uint64_t)i * 100 - 49;
        }
        rudp_ack_frame f = make_ack(0, 32, pr);
        cr_assert_eq(rudp_recovery_on_ack(&rr, &f, now + RUDP_MS(50), &hd), RUDP_OK);
    }
    ack_range(0, 199 + n, now + RUDP_MS(60));
    for (uint64_t pn = 0; pn < 200 + n; pn++)
        cr_assert_eq(lg->acked[pn] + lg->lost[pn], 1, "pn %lu", (unsigned long)pn);
    cr_assert(lg->frames_ok);
    cr_assert_eq(rr.bytes_in_flight, 0);
    cr_assert_eq(rr.ack_eliciting_in_flight, 0);
    cr_assert_eq(rr.oldest_pn, rr.next_pn);
    cr_assert_null(rudp_recovery_oldest_outstanding(&rr));
}

Test(recovery, huge_ack_ranges_are_clamped_to_the_window, .timeout = 30) {
    rudp_tstamp now = T0;
    uint64_t n = 200000;

    /* Every ACK covers the whole history; walking it would be quadratic. */
    for (uint64_t pn = 0; pn < n; pn++) {
        send_pkt(now);
        now += RUDP_US(10);
        ack_range(0, pn, now);
    }
    cr_assert_eq(lg->nacked, n);
    cr_assert_eq(lg->nlost, 0);
    cr_assert_eq(rr.cap, 16); /* the ring never grew */
    cr_assert_eq(rr.oldest_pn, n);
}

/* A small deterministic PRNG for the mixed scenario. */
static uint64_t xs(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

Test(recovery, handlers_see_each_packet_exactly_once) {
    uint64_t seed = 0x1234567, acked_hi = 0;
    rudp_tstamp now = T0;
    uint64_t pairs[2 * RUDP_ACK_MAX_RANGES];

    for (int round = 0; round < 3000; round++) {
        int burst = (int)(xs(&seed) % 4);
        for (int i = 0; i < burst; i++)
            send_pkt_ex(now, MD, xs(&seed) % 8 != 0, true);
        now += RUDP_MS(3);
        if (rr.next_pn > 0 && xs(&seed) % 3 == 0) {
            /* ACK a random set of ranges below next_pn, some stale. */
            uint32_t nr = 1 + (uint32_t)(xs(&seed) % 6), k = 0;
            uint64_t hi = rr.next_pn - 1 - xs(&seed) % 3;
            if (hi >= rr.next_pn)
                hi = rr.next_pn - 1;
            while (k < nr) {
                uint64_t len = xs(&seed) % 5, lo = hi > len ? hi - len : 0;
                if (xs(&seed) % 5 == 0 && k > 0) /* a hole: packets lost */
                    lo = hi;
                pairs[2 * k] = hi;
                pairs[2 * k + 1] = lo;
                k++;
                if (lo < 2)
                    break;
                hi = lo - 2;
            }
            rudp_ack_frame f = make_ack(0, k, pairs);
            cr_assert_eq(rudp_recovery_on_ack(&rr, &f, now, &hd), RUDP_OK);
            acked_hi = pairs[0] > acked_hi ? pairs[0] : acked_hi;
        }
        if (rudp_recovery_deadline(&rr, false) <= now)
            rudp_recovery_on_timeout(&rr, now, false, &hd);
    }
    /* Finally everything sent is acknowledged. */
    ack_range(0, rr.next_pn - 1, now + RUDP_MS(100));
    for (uint64_t pn = 0; pn < rr.next_pn; pn++)
        cr_assert_eq(lg->acked[pn] + lg->lost[pn], 1, "pn %lu", (unsigned long)pn);
    cr_assert_eq(lg->nacked + lg->nlost, rr.next_pn);
    cr_assert_eq(rr.pkts_lost, lg->nlost);
    cr_assert_gt(lg->nlost, 10);
    cr_assert(lg->frames_ok);
    cr_assert_eq(rr.bytes_in_flight, 0);
    cr_assert_eq(rr.ack_eliciting_in_flight, 0);
    cr_assert_eq(rudp_recovery_deadline(&rr, false), RUDP_TSTAMP_NEVER);
    cr_assert_gt(acked_hi, 0);
}
