/*
 * cc_newreno.c — NewReno congestion control as RFC 9002 §7 and appendix B
 * describe it for QUIC.
 *
 * The window starts at the initial window and grows in slow start by every
 * acknowledged byte until it reaches ssthresh; in congestion avoidance it
 * grows by one max_datagram for each full window of acknowledged bytes
 * (appendix B.5 writes max_datagram * acked / cwnd per packet; the
 * bytes_acked_ca accumulator gives the same growth without losing the
 * fractions to integer division).
 *
 * A congestion event (a lost packet, §7.3.2) starts a recovery period at the
 * current time: ssthresh becomes half the window (kLossReductionFactor) and
 * the window drops to max(ssthresh, minimum window).  Losses and
 * acknowledgements of packets sent before the period started change nothing,
 * so one burst of losses halves the window only once (§7.3.2); the first
 * acknowledgement of a packet sent after the start ends the period.
 * Persistent congestion (§7.6) collapses the window to the minimum and
 * forgets the recovery period.
 *
 * recovery_start is RUDP_TSTAMP_NEVER while no period applies; the test
 * "sent at or before recovery_start" is appendix B's InCongestionRecovery.
 */
#include "cc.h"

/* Returns true when a packet sent at |sent_time| belongs to the current
 * recovery period (RFC 9002 appendix B.5, InCongestionRecovery). */
static bool newreno_in_recovery(const rudp_cc *cc, rudp_tstamp sent_time) {
    return cc->recovery_start != RUDP_TSTAMP_NEVER && sent_time <= cc->recovery_start;
}

/* Sets the initial window; ssthresh and recovery were reset by rudp_cc_init. */
static void newreno_init(rudp_cc *cc, rudp_tstamp now) {
    cc->cwnd = rudp_cc_initial_window(cc->max_datagram);
    cc->bytes_acked_ca = 0;
    cc->in_recovery = false;
}

/* Grows the window in congestion avoidance by one max_datagram per window
 * of acknowledged bytes. */
static void newreno_avoid(rudp_cc *cc, uint64_t bytes) {
    cc->bytes_acked_ca += bytes;
    while (cc->bytes_acked_ca >= cc->cwnd) {
        cc->bytes_acked_ca -= cc->cwnd;
        cc->cwnd += cc->max_datagram;
    }
}

/* Credits |bytes| of a packet sent at |sent_time|: nothing during recovery;
 * otherwise ends any recovery period and grows the window by slow start or
 * congestion avoidance. */
static void newreno_on_ack(rudp_cc *cc, uint64_t bytes, rudp_tstamp sent_time,
                           const rudp_rtt *rtt, rudp_tstamp now) {
    if (newreno_in_recovery(cc, sent_time))
        return;
    cc->in_recovery = false;
    if (cc->cwnd < cc->ssthresh)
        cc->cwnd += bytes;
    else
        newreno_avoid(cc, bytes);
}

/* Reacts to a loss of a packet sent at |sent_time|: unless it belongs to the
 * current recovery period, starts one at |now| and halves the window. */
static void newreno_on_congestion(rudp_cc *cc, rudp_tstamp sent_time, const rudp_rtt *rtt,
                                  rudp_tstamp now) {
    uint64_t min_window = rudp_cc_min_window(cc->max_datagram);

    if (newreno_in_recovery(cc, sent_time))
        return;
    cc->recovery_start = now;
    cc->in_recovery = true;
    cc->ssthresh = cc->cwnd / 2;
    cc->cwnd = cc->ssthresh > min_window ? cc->ssthresh : min_window;
    cc->bytes_acked_ca = 0;
}

/* Collapses the window to the minimum and clears the recovery period
 * (RFC 9002 §7.6.2); ssthresh is kept. */
static void newreno_on_persistent_congestion(rudp_cc *cc, rudp_tstamp now) {
    cc->cwnd = rudp_cc_min_window(cc->max_datagram);
    cc->recovery_start = RUDP_TSTAMP_NEVER;
    cc->in_recovery = false;
    cc->bytes_acked_ca = 0;
}

const rudp_cc_ops rudp_cc_newreno_ops = {
    .name = "newreno",
    .init = newreno_init,
    .on_ack = newreno_on_ack,
    .on_congestion = newreno_on_congestion,
    .on_persistent_congestion = newreno_on_persistent_congestion,
};
