/*
 * rtt.c — round-trip time estimation.
 *
 * This file follows RFC 9002 §5 ("Estimating the Round-Trip Time") to the
 * letter.  Every RTT sample is the time from sending the largest newly
 * acknowledged ack-eliciting packet to receiving its acknowledgement
 * (latest_rtt).  The estimator keeps four values:
 *
 *   - min_rtt, the smallest sample seen, taken before any ACK-delay
 *     adjustment (§5.2), so that a peer cannot inflate it;
 *   - smoothed_rtt and rttvar, exponentially weighted averages with gains of
 *     1/8 and 1/4 (§5.3), fed with the sample minus the peer's reported ACK
 *     delay when that subtraction does not take it below min_rtt.
 *
 * Once the handshake is confirmed the peer's reported delay is capped at the
 * max_ack_delay it advertised.  Before the first sample smoothed_rtt is the
 * configured initial RTT and rttvar half of it, which is what the probe
 * timeout (§6.2.1) uses until the path has been measured.
 *
 * All values are nanoseconds; the arithmetic is integer and deterministic.
 */
#include "rtt.h"

/* Returns |a - b| for two timestamps. */
static rudp_tstamp rtt_absdiff(rudp_tstamp a, rudp_tstamp b) {
    return a > b ? a - b : b - a;
}

/* Sets the estimator to its pre-sample state (RFC 9002 §5.3): smoothed is
 * |initial_rtt|, var is half of it, min and latest are zero. */
void rudp_rtt_init(rudp_rtt *r, rudp_tstamp initial_rtt) {
    r->latest = 0;
    r->smoothed = initial_rtt;
    r->var = initial_rtt / 2;
    r->min = 0;
    r->has_sample = false;
}

/* Records the first sample: every estimate starts from it (RFC 9002 §5.3). */
static void rtt_first_sample(rudp_rtt *r, rudp_tstamp latest_rtt) {
    r->min = latest_rtt;
    r->smoothed = latest_rtt;
    r->var = latest_rtt / 2;
    r->has_sample = true;
}

/* Folds a later sample into the averages: min_rtt from the raw sample, the
 * averages from the sample minus the ACK delay unless that would go below
 * min_rtt (RFC 9002 §5.3). */
static void rtt_later_sample(rudp_rtt *r, rudp_tstamp latest_rtt, rudp_tstamp ack_delay) {
    rudp_tstamp adjusted = latest_rtt;

    if (latest_rtt < r->min)
        r->min = latest_rtt;
    if (latest_rtt >= r->min + ack_delay)
        adjusted = latest_rtt - ack_delay;
    r->var = (3 * r->var + rtt_absdiff(r->smoothed, adjusted)) / 4;
    r->smoothed = (7 * r->smoothed + adjusted) / 8;
}

/* Takes one RTT sample |latest_rtt| with the peer's reported |ack_delay|,
 * capped at |max_ack_delay| once |handshake_confirmed|.  Never fails. */
void rudp_rtt_update(rudp_rtt *r, rudp_tstamp latest_rtt, rudp_tstamp ack_delay,
                     rudp_tstamp max_ack_delay, bool handshake_confirmed) {
    r->latest = latest_rtt;
    if (!r->has_sample) {
        rtt_first_sample(r, latest_rtt);
        return;
    }
    if (handshake_confirmed && ack_delay > max_ack_delay)
        ack_delay = max_ack_delay;
    rtt_later_sample(r, latest_rtt, ack_delay);
}

/* Returns the probe timeout before backoff (RFC 9002 §6.2.1):
 * smoothed + max(4 * var, kGranularity) + |max_ack_delay|. */
rudp_tstamp rudp_rtt_pto(const rudp_rtt *r, rudp_tstamp max_ack_delay) {
    rudp_tstamp var4 = 4 * r->var;

    if (var4 < RUDP_GRANULARITY)
        var4 = RUDP_GRANULARITY;
    return r->smoothed + var4 + max_ack_delay;
}
