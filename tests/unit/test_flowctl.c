/*
 * test_flowctl.c — receive windows and auto-tuning.
 */
#include <criterion/criterion.h>

#include "flowctl.h"

Test(flowctl, data_beyond_limit_is_a_violation) {
    rudp_fc fc;
    rudp_fc_init(&fc, 1000, 8000, 0);
    cr_assert_eq(rudp_fc_on_recv(&fc, 1000), RUDP_OK);
    cr_assert_eq(rudp_fc_on_recv(&fc, 1001), RUDP_ERR_FLOW_CONTROL);
    cr_assert_eq(fc.highest, 1000);
}

Test(flowctl, update_when_half_the_window_is_consumed) {
    rudp_fc fc;
    rudp_fc_init(&fc, 1000, 1000, 0);
    cr_assert_not(rudp_fc_on_consume(&fc, 499, RUDP_MS(10), RUDP_SEC(1)));
    cr_assert_not(fc.update_pending);
    cr_assert(rudp_fc_on_consume(&fc, 1, RUDP_MS(10), RUDP_SEC(1)));
    cr_assert(fc.update_pending);
    cr_assert_eq(fc.limit, 1500);
}

Test(flowctl, fast_updates_grow_the_window_fourfold_up_to_the_ceiling) {
    rudp_fc fc;
    rudp_fc_init(&fc, 1000, 10000, 0);
    rudp_tstamp srtt = RUDP_MS(50);
    /* Half a window consumed within 2 RTTs of the last raise: x4 (within
     * one RTT of the start, so no rate sample has closed yet). */
    cr_assert(rudp_fc_on_consume(&fc, 500, srtt, RUDP_MS(40)));
    cr_assert_eq(fc.window, 4000);
    cr_assert_eq(fc.limit, 500 + 4000);
    cr_assert(rudp_fc_on_consume(&fc, 2000, srtt, RUDP_MS(80)));
    cr_assert_eq(fc.window, 10000); /* capped */
    cr_assert_eq(fc.limit, 2500 + 10000);
}

Test(flowctl, slow_consumer_keeps_the_window) {
    rudp_fc fc;
    rudp_fc_init(&fc, 1000, 64000, 0);
    rudp_tstamp srtt = RUDP_MS(50);
    cr_assert(rudp_fc_on_consume(&fc, 500, srtt, RUDP_MS(500)));
    cr_assert_eq(fc.window, 1000);
    cr_assert_eq(fc.limit, 1500);
}

Test(flowctl, limit_never_shrinks) {
    rudp_fc fc;
    rudp_fc_init(&fc, 1000, 1000, 0);
    uint64_t last = fc.limit;
    for (int i = 0; i < 100; i++) {
        rudp_fc_on_consume(&fc, 37, RUDP_MS(10), RUDP_SEC(i));
        cr_assert_geq(fc.limit, last);
        last = fc.limit;
    }
}

Test(flowctl, window_keeps_ahead_of_a_sender_in_slow_start) {
    rudp_fc fc;
    rudp_tstamp srtt = RUDP_MS(200), t = 0;
    uint64_t per_round = 15000;
    rudp_fc_init(&fc, 256 * 1024, 16 * 1024 * 1024, 0);
    /* A sender in slow start, doubling every RTT, its rounds consumed in 10
     * steps each.  At the end of every round the limit must let the next
     * round (twice as many bytes) go without waiting: the first raise comes
     * too late for the two-raises rule, and at 200 ms RTT the old window
     * held such a stream back for a round. */
    for (int round = 0; round < 9; round++, per_round *= 2) {
        for (int i = 0; i < 10; i++) {
            t += srtt / 10;
            rudp_fc_on_consume(&fc, per_round / 10, srtt, t);
        }
        cr_assert_geq(fc.limit, fc.consumed + 2 * per_round,
                      "round %d: limit %lu, consumed %lu, next round %lu", round,
                      (unsigned long)fc.limit, (unsigned long)fc.consumed,
                      (unsigned long)(2 * per_round));
    }
}

Test(flowctl, an_idle_spell_does_not_count_as_a_fast_round) {
    rudp_fc fc;
    rudp_fc_init(&fc, 1000, 1000000, 0);
    /* 400 bytes over 10 s at srtt 50 ms: 2 bytes per RTT, no growth. */
    rudp_fc_on_consume(&fc, 400, RUDP_MS(50), RUDP_SEC(10));
    cr_assert_eq(fc.window, 1000);
}
