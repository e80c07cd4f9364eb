/*
 * test_pacer.c — unit tests for engine/pacer.c.
 *
 * A full bucket lets a burst out at once, after which packets are spaced at
 * exactly size / rate; idle refill stops at the burst; a packet larger than
 * the burst leaves once the bucket is full; fractions of a byte earned by
 * frequent refills are carried, not lost; rate 0 is unpaced; and huge rates
 * and timestamps neither overflow nor wrap.
 */
#include <criterion/criterion.h>

#include "pacer.h"

#define PKT 1200u
#define RATE 1200000u /* bytes per second: one PKT per millisecond */

/* Sends |n| packets at the times the pacer asks for, starting no earlier
 * than |t|, and asserts the k-th leaves at exactly |first| + k * |gap|.
 * Returns the time of the last one. */
static rudp_tstamp send_paced(rudp_pacer *p, uint64_t rate, rudp_tstamp t, int n,
                              rudp_tstamp first, rudp_tstamp gap) {
    for (int k = 0; k < n; k++) {
        rudp_tstamp at = rudp_pacer_next_time(p, PKT, rate, t);
        cr_assert_eq(at, first + (rudp_tstamp)k * gap, "packet %d at %llu", k,
                     (unsigned long long)at);
        rudp_pacer_on_sent(p, PKT, rate, at);
        t = at;
    }
    return t;
}

Test(pacer, full_bucket_burst_then_spacing) {
    rudp_pacer p;
    const rudp_tstamp t0 = RUDP_SEC(100);
    rudp_pacer_init(&p, 10 * PKT, t0);
    cr_assert_eq(p.tokens, 10 * PKT);
    cr_assert_eq(p.burst, 10 * PKT);
    cr_assert_eq(p.last, t0);
    send_paced(&p, RATE, t0, 10, t0, 0); /* the burst leaves at once */
    cr_assert_eq(p.tokens, 0);
    /* Then one packet per millisecond, exactly. */
    rudp_tstamp t = send_paced(&p, RATE, t0, 100, t0 + RUDP_MS(1), RUDP_MS(1));
    cr_assert_eq(t, t0 + RUDP_MS(100));
    cr_assert_eq(p.tokens, 0);
    /* Asking early gives the same answer as asking on time. */
    cr_assert_eq(rudp_pacer_next_time(&p, PKT, RATE, t + 1), t + RUDP_MS(1));
    cr_assert_eq(rudp_pacer_next_time(&p, PKT, RATE, t + RUDP_US(999)), t + RUDP_MS(1));
    cr_assert_eq(rudp_pacer_next_time(&p, PKT, RATE, t + RUDP_MS(1)), t + RUDP_MS(1));
    /* Half a packet is earned after half the time. */
    cr_assert_eq(rudp_pacer_next_time(&p, PKT / 2, RATE, t), t + RUDP_US(500));
}

Test(pacer, idle_refill_capped_at_burst) {
    rudp_pacer p;
    rudp_pacer_init(&p, 4 * PKT, 0);
    send_paced(&p, RATE, 0, 4, 0, 0);
    cr_assert_eq(p.tokens, 0);
    /* A long idle period refills only up to the burst. */
    const rudp_tstamp t = RUDP_SEC(3600);
    rudp_pacer_on_sent(&p, 0, RATE, t);
    cr_assert_eq(p.tokens, 4 * PKT);
    cr_assert_eq(p.last, t);
    send_paced(&p, RATE, t, 4, t, 0);
    send_paced(&p, RATE, t, 3, t + RUDP_MS(1), RUDP_MS(1));
    /* Partly refilled: 2.5 ms idle earns 2.5 packets' worth. */
    const rudp_tstamp t2 = t + RUDP_MS(3) + RUDP_US(2500);
    rudp_pacer_on_sent(&p, 0, RATE, t2);
    cr_assert_eq(p.tokens, 2 * PKT + PKT / 2);
    cr_assert_eq(rudp_pacer_next_time(&p, 3 * PKT, RATE, t2), t2 + RUDP_US(500));
}

Test(pacer, idle_refill_capped_virtually) {
    rudp_pacer p;
    rudp_pacer_init(&p, 2 * PKT, 0);
    rudp_pacer_on_sent(&p, 2 * PKT, RATE, 0);
    /* next_time refills only virtually: after a long idle 2 packets may go
     * at once, the third waits a whole packet time from the second. */
    const rudp_tstamp t = RUDP_SEC(10);
    cr_assert_eq(rudp_pacer_next_time(&p, 2 * PKT, RATE, t), t);
    cr_assert_eq(p.tokens, 0);
    send_paced(&p, RATE, t, 2, t, 0);
    cr_assert_eq(rudp_pacer_next_time(&p, PKT, RATE, t), t + RUDP_MS(1));
}

Test(pacer, packet_larger_than_burst) {
    rudp_pacer p;
    rudp_pacer_init(&p, 1000, 0);
    /* Full bucket: a 1500-byte packet may go although it exceeds the burst. */
    cr_assert_eq(rudp_pacer_next_time(&p, 1500, 1000000, 0), 0);
    rudp_pacer_on_sent(&p, 1500, 1000000, 0);
    cr_assert_eq(p.tokens, 0);
    /* The next one waits until the bucket is full again: 1000 B at 1 MB/s. */
    cr_assert_eq(rudp_pacer_next_time(&p, 1500, 1000000, 0), RUDP_MS(1));
    cr_assert_eq(rudp_pacer_next_time(&p, 1500, 1000000, RUDP_US(999)), RUDP_MS(1));
    cr_assert_eq(rudp_pacer_next_time(&p, 1500, 1000000, RUDP_MS(1)), RUDP_MS(1));
    cr_assert_eq(rudp_pacer_next_time(&p, 500, 1000000, 0), RUDP_US(500));
}

Test(pacer, rounds_up_to_whole_ns) {
    rudp_pacer p;
    rudp_pacer_init(&p, 1, 0);
    rudp_pacer_on_sent(&p, 1, 3, 0);
    /* One byte at 3 B/s takes 333333333.3 ns: round up. */
    cr_assert_eq(rudp_pacer_next_time(&p, 1, 3, 0), 333333334);
    cr_assert_eq(rudp_pacer_next_time(&p, 1, 3, 333333333), 333333334);
    rudp_pacer_on_sent(&p, 1, 3, 333333334);
    cr_assert_eq(p.tokens, 0);
    cr_assert_eq(rudp_pacer_next_time(&p, 1, 3, 333333334), 666666668);
}

Test(pacer, fractional_bytes_carried) {
    rudp_pacer p;
    rudp_pacer_init(&p, 100000, 0);
    rudp_pacer_on_sent(&p, 100000, 1000, 0);
    cr_assert_eq(p.tokens, 0);
    /* At 1000 B/s every 100 us earns 0.1 byte: 100 refills must yield 10. */
    for (int i = 1; i <= 100; i++)
        rudp_pacer_on_sent(&p, 0, 1000, RUDP_US(100) * (rudp_tstamp)i);
    cr_assert_eq(p.tokens, 10);
    cr_assert_eq(p.last, RUDP_MS(10));
    /* Refills every 1.5 ms earn 1.5 bytes each: the half must carry over. */
    for (int i = 1; i <= 20; i++)
        rudp_pacer_on_sent(&p, 0, 1000, RUDP_MS(10) + RUDP_US(1500) * (rudp_tstamp)i);
    cr_assert_eq(p.tokens, 40);
    cr_assert_eq(p.last, RUDP_MS(40));
    rudp_pacer_on_sent(&p, 30, 1000, RUDP_MS(40));
    cr_assert_eq(p.tokens, 10);
    /* Same when the caller only asks: next_time never consumes the fraction. */
    for (int i = 1; i <= 9; i++)
        cr_assert_eq(rudp_pacer_next_time(&p, 11, 1000, RUDP_MS(40) + RUDP_US(100) * i),
                     RUDP_MS(41));
}

Test(pacer, rate_zero_is_unpaced) {
    rudp_pacer p;
    rudp_pacer_init(&p, 2 * PKT, RUDP_SEC(1));
    for (int i = 0; i < 50; i++) {
        rudp_tstamp t = RUDP_SEC(1) + (rudp_tstamp)i;
        cr_assert_eq(rudp_pacer_next_time(&p, PKT, 0, t), t);
        rudp_pacer_on_sent(&p, PKT, 0, t);
    }
    /* The bucket stays full, so pacing resumes with a whole burst. */
    cr_assert_eq(p.tokens, 2 * PKT);
    cr_assert_eq(rudp_pacer_next_time(&p, PKT, RATE, RUDP_SEC(1) + 49), RUDP_SEC(1) + 49);
}

Test(pacer, set_burst_clamps_tokens) {
    rudp_pacer p;
    rudp_pacer_init(&p, 10 * PKT, 0);
    rudp_pacer_set_burst(&p, 3 * PKT);
    cr_assert_eq(p.burst, 3 * PKT);
    cr_assert_eq(p.tokens, 3 * PKT);
    rudp_pacer_set_burst(&p, 20 * PKT); /* growing adds no tokens by itself */
    cr_assert_eq(p.tokens, 3 * PKT);
    send_paced(&p, RATE, 0, 3, 0, 0);
    cr_assert_eq(rudp_pacer_next_time(&p, PKT, RATE, 0), RUDP_MS(1));
    rudp_pacer_on_sent(&p, 0, RATE, RUDP_SEC(1));
    cr_assert_eq(p.tokens, 20 * PKT);
}

Test(pacer, huge_rates_and_times) {
    rudp_pacer p;
    const rudp_tstamp late = UINT64_MAX - 10;
    /* rate * elapsed ~ 2^128: must saturate at the burst, not wrap. */
    rudp_pacer_init(&p, 10 * PKT, 0);
    rudp_pacer_on_sent(&p, 10 * PKT, UINT64_MAX, 0);
    cr_assert_eq(p.tokens, 0);
    rudp_pacer_on_sent(&p, 0, UINT64_MAX, late);
    cr_assert_eq(p.tokens, 10 * PKT);
    cr_assert_eq(p.last, late);
    /* A huge rate earns a packet in the first nanosecond. */
    rudp_pacer_on_sent(&p, 10 * PKT, UINT64_MAX, late);
    cr_assert_eq(rudp_pacer_next_time(&p, PKT, UINT64_MAX, late), late + 1);
    /* A wait past the end of time is "never", not a wrapped small value. */
    cr_assert_eq(rudp_pacer_next_time(&p, PKT, 1, late), RUDP_TSTAMP_NEVER);
    rudp_pacer_init(&p, UINT64_MAX, 0);
    rudp_pacer_on_sent(&p, UINT64_MAX, 1, 0);
    cr_assert_eq(rudp_pacer_next_time(&p, UINT64_MAX, 1, 0), RUDP_TSTAMP_NEVER);
    cr_assert_eq(rudp_pacer_next_time(&p, 1000, 1, RUDP_SEC(999)), RUDP_SEC(1000));
    /* 2^63 bytes at 2^62 B/s take exactly 2 s. */
    rudp_pacer_init(&p, 1ull << 63, RUDP_SEC(5));
    rudp_pacer_on_sent(&p, 1ull << 63, 1ull << 62, RUDP_SEC(5));
    cr_assert_eq(rudp_pacer_next_time(&p, 1ull << 63, 1ull << 62, RUDP_SEC(5)),
                 RUDP_SEC(7));
}

Test(pacer, clock_going_backwards) {
    rudp_pacer p;
    rudp_pacer_init(&p, PKT, RUDP_SEC(2));
    cr_assert_eq(rudp_pacer_next_time(&p, PKT, RATE, RUDP_SEC(1)), RUDP_SEC(1));
    rudp_pacer_on_sent(&p, PKT, RATE, RUDP_SEC(1));
    cr_assert_eq(p.tokens, 0);
    cr_assert_eq(p.last, RUDP_SEC(2));
    cr_assert_eq(rudp_pacer_next_time(&p, PKT, RATE, RUDP_SEC(1)),
                 RUDP_SEC(2) + RUDP_MS(1));
}
