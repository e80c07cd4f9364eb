/*
 * test_rate.c — delivery-rate sampling (engine/rate.c, after
 * draft-cheng-iccrg-delivery-rate-estimation): exact samples on hand-built
 * send and ACK sequences.
 */
#include <string.h>

#include <criterion/criterion.h>

#include "rate.h"

#define SZ 1000
#define T0 RUDP_SEC(1000)

/* A sent packet as the sampler sees it. */
typedef struct rate_pkt {
    rudp_rate_pkt st;
    rudp_tstamp sent;
} rate_pkt;

static rudp_rate rt;
static uint64_t in_flight;

/* Sends |p| at |now| with the current flight. */
static void send_at(rate_pkt *p, rudp_tstamp now) {
    rudp_rate_on_sent(&rt, &p->st, in_flight, now);
    p->sent = now;
    in_flight += SZ;
}

/* Acknowledges the |n| packets |ps| in one ACK at |now| and returns the
 * sample, with |min_rtt| as the validity floor. */
static const rudp_rate_sample *ack_at(rate_pkt **ps, int n, rudp_tstamp now,
                                      rudp_tstamp min_rtt) {
    rudp_rate_ack_begin(&rt, in_flight);
    for (int i = 0; i < n; i++) {
        rudp_rate_on_acked(&rt, &ps[i]->st, SZ, ps[i]->sent, now);
        in_flight -= SZ;
    }
    return rudp_rate_ack_end(&rt, min_rtt);
}

static void setup(void) {
    rudp_rate_init(&rt, T0);
    in_flight = 0;
}

TestSuite(rate, .init = setup);

Test(rate, first_flight_samples_are_exact) {
    rate_pkt p[10];
    const rudp_rate_sample *rs;

    for (int i = 0; i < 10; i++)
        send_at(&p[i], T0 + RUDP_MS(i));
    for (int i = 0; i < 10; i++) {
        rate_pkt *one = &p[i];
        rs = ack_at(&one, 1, T0 + RUDP_MS(100 + i), 0);
        cr_assert(rs->valid);
        cr_assert_eq(rs->delivered, (uint64_t)(i + 1) * SZ);
        cr_assert_eq(rs->send_elapsed, RUDP_MS(i));
        cr_assert_eq(rs->ack_elapsed, RUDP_MS(100 + i));
        cr_assert_eq(rs->interval, RUDP_MS(100 + i));
        cr_assert_eq(rs->delivery_rate, (uint64_t)(i + 1) * SZ * 1000 / (100 + i));
        cr_assert_eq(rs->acked_bytes, SZ);
        cr_assert_not(rs->is_app_limited);
    }
    cr_assert_eq(rt.delivered, 10 * SZ);
}

Test(rate, second_flight_measures_from_the_first_ack) {
    rate_pkt p[11], *one;
    const rudp_rate_sample *rs;

    for (int i = 0; i < 10; i++)
        send_at(&p[i], T0 + RUDP_MS(i));
    one = &p[0];
    ack_at(&one, 1, T0 + RUDP_US(100000), 0);
    send_at(&p[10], T0 + RUDP_US(100500));
    cr_assert_eq(p[10].st.delivered, SZ);
    cr_assert_eq(p[10].st.delivered_time, T0 + RUDP_MS(100));
    cr_assert_eq(p[10].st.first_sent_time, T0);
    for (int i = 1; i < 10; i++) {
        one = &p[i];
        ack_at(&one, 1, T0 + RUDP_MS(100 + i), 0);
    }
    one = &p[10];
    rs = ack_at(&one, 1, T0 + RUDP_US(200500), 0);
    /* 10 packets delivered between p[10]'s send and its ACK: over
     * max(100.5 ms sending, 100.5 ms acking). */
    cr_assert_eq(rs->delivered, 10 * SZ);
    cr_assert_eq(rs->send_elapsed, RUDP_US(100500));
    cr_assert_eq(rs->ack_elapsed, RUDP_US(100500));
    cr_assert_eq(rs->delivery_rate, (uint64_t)10 * SZ * 1000000000 / RUDP_US(100500));
}

Test(rate, compressed_acks_use_the_send_interval) {
    rate_pkt p[3], q, *one = &p[0], *two[2] = {&p[1], &p[2]};
    const rudp_rate_sample *rs;

    send_at(&p[0], T0);
    send_at(&q, T0 + RUDP_MS(1)); /* stays in flight: no restart below */
    ack_at(&one, 1, T0 + RUDP_MS(100), 0);
    send_at(&p[1], T0 + RUDP_MS(100));
    send_at(&p[2], T0 + RUDP_MS(150));
    rs = ack_at(two, 2, T0 + RUDP_MS(160), 0);
    /* The newest packet (p[2]) is the reference; the ACK burst took 60 ms
     * but the sending 150 ms, and the longer interval wins. */
    cr_assert_eq(rs->prior_delivered, SZ);
    cr_assert_eq(rs->last_sent_time, T0 + RUDP_MS(150));
    cr_assert_eq(rs->ack_elapsed, RUDP_MS(60));
    cr_assert_eq(rs->send_elapsed, RUDP_MS(150));
    cr_assert_eq(rs->interval, RUDP_MS(150));
    cr_assert_eq(rs->delivered, 2 * SZ);
    cr_assert_eq(rs->delivery_rate, (uint64_t)2 * SZ * 1000 / 150);
    cr_assert_eq(rs->acked_bytes, 2 * SZ);
}

Test(rate, interval_below_min_rtt_is_invalid) {
    rate_pkt p, *one = &p;
    const rudp_rate_sample *rs;

    send_at(&p, T0);
    rs = ack_at(&one, 1, T0 + RUDP_MS(100), RUDP_MS(150));
    cr_assert(rs->has_prior);
    cr_assert_not(rs->valid);
    cr_assert_eq(rs->delivery_rate, 0);
    cr_assert_eq(rt.delivered, SZ);
}

Test(rate, app_limited_marks_until_the_flight_is_delivered) {
    rate_pkt p[4], *one;
    const rudp_rate_sample *rs;

    send_at(&p[0], T0);
    send_at(&p[1], T0 + RUDP_MS(1));
    rudp_rate_on_app_limited(&rt, in_flight);
    cr_assert_eq(rt.app_limited, 2 * SZ);
    send_at(&p[2], T0 + RUDP_MS(2));
    cr_assert_eq(p[2].st.is_app_limited, 1);
    one = &p[0];
    rs = ack_at(&one, 1, T0 + RUDP_MS(100), 0);
    cr_assert_not(rs->is_app_limited);
    one = &p[1];
    ack_at(&one, 1, T0 + RUDP_MS(101), 0);
    cr_assert_eq(rt.app_limited, 2 * SZ, "not past the mark yet");
    one = &p[2];
    rs = ack_at(&one, 1, T0 + RUDP_MS(102), 0);
    cr_assert(rs->is_app_limited);
    cr_assert_eq(rt.app_limited, 0, "the mark is passed");
    send_at(&p[3], T0 + RUDP_MS(103));
    cr_assert_eq(p[3].st.is_app_limited, 0);
}

Test(rate, app_limited_with_empty_flight_is_nonzero) {
    rudp_rate_on_app_limited(&rt, 0);
    cr_assert_eq(rt.app_limited, 1);
}

Test(rate, lost_bytes_are_reported_once) {
    rate_pkt p[2], *one = &p[1];
    const rudp_rate_sample *rs;

    send_at(&p[0], T0);
    send_at(&p[1], T0 + RUDP_MS(1));
    rudp_rate_on_lost(&rt, SZ);
    in_flight -= SZ;
    rs = ack_at(&one, 1, T0 + RUDP_MS(100), 0);
    cr_assert_eq(rs->lost_bytes, SZ);
    cr_assert_eq(rs->prior_in_flight, SZ);
    rudp_rate_ack_begin(&rt, 0);
    rs = rudp_rate_ack_end(&rt, 0);
    cr_assert_eq(rs->lost_bytes, 0);
    cr_assert_not(rs->has_prior);
    cr_assert_not(rs->valid);
}

Test(rate, send_into_empty_flight_restarts_intervals) {
    rate_pkt p[2], *one = &p[0];
    const rudp_rate_sample *rs;

    send_at(&p[0], T0);
    ack_at(&one, 1, T0 + RUDP_MS(100), 0);
    /* Idle for 5 s, then a new flight: the idle time is not counted. */
    send_at(&p[1], T0 + RUDP_SEC(5));
    cr_assert_eq(p[1].st.delivered_time, T0 + RUDP_SEC(5));
    cr_assert_eq(p[1].st.first_sent_time, T0 + RUDP_SEC(5));
    one = &p[1];
    rs = ack_at(&one, 1, T0 + RUDP_SEC(5) + RUDP_MS(100), 0);
    cr_assert_eq(rs->interval, RUDP_MS(100));
    cr_assert_eq(rs->delivery_rate, (uint64_t)SZ * 10);
}
