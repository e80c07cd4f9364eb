/*
 * test_acktr.c — received packet tracking and the ACK schedule.
 */
#include <criterion/criterion.h>

#include "acktr.h"
#include "recovery.h"

static const rudp_tstamp MAD = RUDP_MS(25);

Test(acktr, duplicate_is_rejected) {
    rudp_acktr a;
    rudp_acktr_init(&a);
    cr_assert_eq(rudp_acktr_on_pkt(&a, 5, true, MAD, 0), RUDP_OK);
    cr_assert_eq(rudp_acktr_on_pkt(&a, 5, true, MAD, 1), RUDP_ERR_DUPLICATE);
    rudp_acktr_free(&a);
}

Test(acktr, first_eliciting_packet_waits_max_ack_delay) {
    rudp_acktr a;
    rudp_acktr_init(&a);
    cr_assert_eq(rudp_acktr_deadline(&a), RUDP_TSTAMP_NEVER);
    rudp_acktr_on_pkt(&a, 0, true, MAD, RUDP_MS(100));
    cr_assert_eq(rudp_acktr_deadline(&a), RUDP_MS(100) + MAD);
    rudp_acktr_free(&a);
}

Test(acktr, second_eliciting_packet_acks_at_once) {
    rudp_acktr a;
    rudp_acktr_init(&a);
    rudp_acktr_on_pkt(&a, 0, true, MAD, 10);
    rudp_acktr_on_pkt(&a, 1, true, MAD, 20);
    cr_assert_eq(rudp_acktr_deadline(&a), 0);
    rudp_acktr_free(&a);
}

Test(acktr, non_eliciting_packets_owe_nothing) {
    rudp_acktr a;
    rudp_acktr_init(&a);
    rudp_acktr_on_pkt(&a, 0, false, MAD, 10);
    rudp_acktr_on_pkt(&a, 1, false, MAD, 20);
    cr_assert_eq(rudp_acktr_deadline(&a), RUDP_TSTAMP_NEVER);
    cr_assert(rudp_acktr_has_news(&a));
    rudp_acktr_free(&a);
}

Test(acktr, gap_triggers_immediate_ack) {
    rudp_acktr a;
    rudp_acktr_init(&a);
    rudp_acktr_on_pkt(&a, 0, true, MAD, 10);
    rudp_acktr_on_ack_sent(&a);
    rudp_acktr_on_pkt(&a, 2, true, MAD, 20); /* 1 is missing */
    cr_assert_eq(rudp_acktr_deadline(&a), 0);
    rudp_acktr_on_ack_sent(&a);
    rudp_acktr_on_pkt(&a, 1, true, MAD, 30); /* fills the hole */
    cr_assert_eq(rudp_acktr_deadline(&a), 0);
    rudp_acktr_free(&a);
}

Test(acktr, fill_reports_ranges_newest_first_with_delay) {
    rudp_acktr a;
    rudp_acktr_init(&a);
    uint64_t pns[] = {0, 1, 2, 5, 6, 9};
    for (size_t i = 0; i < 6; i++)
        rudp_acktr_on_pkt(&a, pns[i], true, MAD, RUDP_MS(i));
    rudp_ack_frame f;
    rudp_acktr_fill(&a, &f, RUDP_MS(5) + RUDP_US(1234), RUDP_ACK_SENT_RANGES);
    cr_assert_eq(f.nranges, 3);
    cr_assert_eq(f.ranges[0].largest, 9);
    cr_assert_eq(f.ranges[0].smallest, 9);
    cr_assert_eq(f.ranges[1].largest, 6);
    cr_assert_eq(f.ranges[1].smallest, 5);
    cr_assert_eq(f.ranges[2].largest, 2);
    cr_assert_eq(f.ranges[2].smallest, 0);
    cr_assert_eq(f.ack_delay_us, 1234);
    rudp_acktr_free(&a);
}

Test(acktr, acked_ack_prunes_old_ranges_and_their_packets_become_duplicates) {
    rudp_acktr a;
    rudp_acktr_init(&a);
    for (uint64_t pn = 0; pn < 10; pn += 2)
        rudp_acktr_on_pkt(&a, pn, true, MAD, 0); /* 0 2 4 6 8 */
    rudp_acktr_on_ack_acked(&a, 6);
    rudp_ack_frame f;
    rudp_acktr_fill(&a, &f, 0, RUDP_ACK_SENT_RANGES);
    cr_assert_eq(f.nranges, 2);
    cr_assert_eq(f.ranges[1].smallest, 6);
    cr_assert_eq(rudp_acktr_on_pkt(&a, 3, true, MAD, 0), RUDP_ERR_DUPLICATE);
    cr_assert_eq(rudp_acktr_on_pkt(&a, 7, true, MAD, 0), RUDP_OK);
    rudp_acktr_free(&a);
}

Test(acktr, range_count_is_bounded) {
    rudp_acktr a;
    rudp_acktr_init(&a);
    for (uint64_t pn = 0; pn < 1000; pn += 2)
        cr_assert_eq(rudp_acktr_on_pkt(&a, pn, true, MAD, 0), RUDP_OK);
    cr_assert_leq(a.recv.n, RUDP_ACKTR_MAX_RANGES);
    rudp_ack_frame f;
    rudp_acktr_fill(&a, &f, 0, RUDP_ACK_SENT_RANGES);
    cr_assert_eq(f.nranges, RUDP_ACK_SENT_RANGES); /* only the newest go out */
    cr_assert_eq(f.ranges[0].largest, 998);
    cr_assert_eq(f.ranges[RUDP_ACK_SENT_RANGES - 1].smallest,
                 998 - 2 * (RUDP_ACK_SENT_RANGES - 1));
    /* An ACK sent alone reports more of them, newest first. */
    rudp_acktr_fill(&a, &f, 0, RUDP_ACK_MAX_RANGES + 10);
    cr_assert_eq(f.nranges, RUDP_ACK_MAX_RANGES);
    cr_assert_eq(f.ranges[RUDP_ACK_MAX_RANGES - 1].smallest,
                 998 - 2 * (RUDP_ACK_MAX_RANGES - 1));
    /* Forgotten packets are treated as duplicates, never re-delivered. */
    cr_assert_eq(rudp_acktr_on_pkt(&a, 1, true, MAD, 0), RUDP_ERR_DUPLICATE);
    rudp_acktr_free(&a);
}
