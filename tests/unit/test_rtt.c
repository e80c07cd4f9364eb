/*
 * test_rtt.c — RTT estimation (engine/rtt.c, RFC 9002 §5).
 */
#include <criterion/criterion.h>

#include "rtt.h"

Test(rtt, init_uses_initial_rtt) {
    rudp_rtt r;

    rudp_rtt_init(&r, RUDP_MS(333));
    cr_assert_eq(r.smoothed, RUDP_MS(333));
    cr_assert_eq(r.var, RUDP_MS(333) / 2);
    cr_assert_eq(r.min, 0);
    cr_assert_eq(r.latest, 0);
    cr_assert(!r.has_sample);
}

Test(rtt, first_sample_sets_everything) {
    rudp_rtt r;

    rudp_rtt_init(&r, RUDP_MS(333));
    /* The first sample ignores the ACK delay entirely. */
    rudp_rtt_update(&r, RUDP_MS(100), RUDP_MS(20), RUDP_MS(25), true);
    cr_assert(r.has_sample);
    cr_assert_eq(r.latest, RUDP_MS(100));
    cr_assert_eq(r.smoothed, RUDP_MS(100));
    cr_assert_eq(r.var, RUDP_MS(50));
    cr_assert_eq(r.min, RUDP_MS(100));
}

Test(rtt, later_sample_subtracts_ack_delay) {
    rudp_rtt r;

    rudp_rtt_init(&r, RUDP_MS(333));
    rudp_rtt_update(&r, RUDP_MS(100), 0, RUDP_MS(25), true);
    /* 120 >= min 100 + delay 16: adjusted = 104. */
    rudp_rtt_update(&r, RUDP_MS(120), RUDP_MS(16), RUDP_MS(25), true);
    cr_assert_eq(r.latest, RUDP_MS(120));
    cr_assert_eq(r.min, RUDP_MS(100));
    cr_assert_eq(r.var, (3 * RUDP_MS(50) + RUDP_MS(4)) / 4);
    cr_assert_eq(r.smoothed, (7 * RUDP_MS(100) + RUDP_MS(104)) / 8);
}

Test(rtt, ack_delay_not_subtracted_below_min_rtt) {
    rudp_rtt r;

    rudp_rtt_init(&r, RUDP_MS(333));
    rudp_rtt_update(&r, RUDP_MS(100), 0, RUDP_MS(25), true);
    /* 110 < 100 + 20: the sample is used as is. */
    rudp_rtt_update(&r, RUDP_MS(110), RUDP_MS(20), RUDP_MS(25), true);
    cr_assert_eq(r.smoothed, (7 * RUDP_MS(100) + RUDP_MS(110)) / 8);
    cr_assert_eq(r.var, (3 * RUDP_MS(50) + RUDP_MS(10)) / 4);
}

Test(rtt, ack_delay_exactly_at_min_rtt_boundary) {
    rudp_rtt r;

    rudp_rtt_init(&r, RUDP_MS(333));
    rudp_rtt_update(&r, RUDP_MS(100), 0, RUDP_MS(25), true);
    /* latest == min + delay: subtracted, adjusted = min. */
    rudp_rtt_update(&r, RUDP_MS(120), RUDP_MS(20), RUDP_MS(25), true);
    cr_assert_eq(r.smoothed, (7 * RUDP_MS(100) + RUDP_MS(100)) / 8);
    cr_assert_eq(r.var, (3 * RUDP_MS(50) + 0) / 4);
}

Test(rtt, min_rtt_tracks_raw_samples) {
    rudp_rtt r;

    rudp_rtt_init(&r, RUDP_MS(333));
    rudp_rtt_update(&r, RUDP_MS(100), 0, RUDP_MS(25), true);
    rudp_rtt_update(&r, RUDP_MS(80), RUDP_MS(10), RUDP_MS(25), true);
    cr_assert_eq(r.min, RUDP_MS(80)); /* before the ACK-delay adjustment */
    rudp_rtt_update(&r, RUDP_MS(90), 0, RUDP_MS(25), true);
    cr_assert_eq(r.min, RUDP_MS(80));
    cr_assert_eq(r.latest, RUDP_MS(90));
}

Test(rtt, ack_delay_capped_once_confirmed) {
    rudp_rtt a, b;

    rudp_rtt_init(&a, RUDP_MS(333));
    rudp_rtt_update(&a, RUDP_MS(100), 0, RUDP_MS(25), true);
    b = a;
    /* Confirmed: the reported 80 ms is capped at 25 ms, adjusted = 175. */
    rudp_rtt_update(&a, RUDP_MS(200), RUDP_MS(80), RUDP_MS(25), true);
    cr_assert_eq(a.smoothed, (7 * RUDP_MS(100) + RUDP_MS(175)) / 8);
    cr_assert_eq(a.var, (3 * RUDP_MS(50) + RUDP_MS(75)) / 4);
    /* Unconfirmed: the whole 80 ms is subtracted, adjusted = 120. */
    rudp_rtt_update(&b, RUDP_MS(200), RUDP_MS(80), RUDP_MS(25), false);
    cr_assert_eq(b.smoothed, (7 * RUDP_MS(100) + RUDP_MS(120)) / 8);
    cr_assert_eq(b.var, (3 * RUDP_MS(50) + RUDP_MS(20)) / 4);
}

Test(rtt, converges_on_steady_samples) {
    rudp_rtt r;

    rudp_rtt_init(&r, RUDP_MS(333));
    for (int i = 0; i < 200; i++)
        rudp_rtt_update(&r, RUDP_MS(40), 0, RUDP_MS(25), true);
    cr_assert_eq(r.smoothed, RUDP_MS(40));
    cr_assert_eq(r.min, RUDP_MS(40));
    cr_assert_eq(r.var, 0);
}

Test(rtt, pto_before_and_after_samples) {
    rudp_rtt r;

    rudp_rtt_init(&r, RUDP_MS(333));
    /* 333 + 4 * 166.5 + 25 */
    cr_assert_eq(rudp_rtt_pto(&r, RUDP_MS(25)),
                 RUDP_MS(333) + 4 * (RUDP_MS(333) / 2) + RUDP_MS(25));
    rudp_rtt_update(&r, RUDP_MS(100), 0, RUDP_MS(25), true);
    cr_assert_eq(rudp_rtt_pto(&r, RUDP_MS(25)), RUDP_MS(100 + 200 + 25));
}

Test(rtt, pto_variance_floor_is_granularity) {
    rudp_rtt r;

    rudp_rtt_init(&r, RUDP_MS(333));
    for (int i = 0; i < 200; i++)
        rudp_rtt_update(&r, RUDP_MS(10), 0, 0, true);
    cr_assert_eq(r.var, 0);
    cr_assert_eq(rudp_rtt_pto(&r, 0), RUDP_MS(10) + RUDP_GRANULARITY);
    cr_assert_eq(rudp_rtt_pto(&r, RUDP_MS(5)), RUDP_MS(10) + RUDP_GRANULARITY + RUDP_MS(5));
}
