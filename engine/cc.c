/*
 * cc.c — the congestion-control front end.
 *
 * Congestion control is a table of hooks (rudp_cc_ops), as in Linux's
 * tcp_congestion_ops and ngtcp2_cc: recovery.c calls on_ack,
 * on_congestion and on_persistent_congestion, and the algorithm behind the
 * table moves cwnd and ssthresh.  This file holds what every algorithm
 * shares:
 *
 *   - the initial and minimum windows of RFC 9002 §7.2
 *     (min(10 * max_datagram, max(2 * max_datagram, 14720)) and
 *     2 * max_datagram);
 *   - choosing the table from enum rudp_cc_algo and by name;
 *   - the pacing rate of RFC 9002 §7.7: cwnd / smoothed_rtt multiplied by
 *     N = 1.25 in congestion avoidance, and by 2 in slow start so that
 *     pacing never holds back the window's doubling — unless the algorithm
 *     paces by its own model (the pacing_rate hook), as BBR does.
 *
 * NewReno (cc_newreno.c) follows RFC 9002 §7 and appendix B; CUBIC
 * (cc_cubic.c) follows RFC 9438; BBR (cc_bbr.c) follows
 * draft-cardwell-iccrg-bbr-congestion-control-00.
 */
#include <string.h>

#include "cc.h"
#include "rudp/trace.h"

#define CC_NS_PER_SEC 1e9

/* Returns the initial window for |max_datagram| (RFC 9002 §7.2). */
uint64_t rudp_cc_initial_window(uint64_t max_datagram) {
    uint64_t floor2 = 2 * max_datagram > 14720 ? 2 * max_datagram : 14720;
    uint64_t ten = 10 * max_datagram;

    return ten < floor2 ? ten : floor2;
}

/* Returns the minimum window, two datagrams (RFC 9002 §7.2). */
uint64_t rudp_cc_min_window(uint64_t max_datagram) {
    return 2 * max_datagram;
}

/* Returns the ops table for |algo|; unknown values get NewReno. */
static const rudp_cc_ops *cc_ops_for(enum rudp_cc_algo algo) {
    switch (algo) {
    case RUDP_CC_CUBIC:
        return &rudp_cc_cubic_ops;
    case RUDP_CC_BBR:
        return &rudp_cc_bbr_ops;
    default:
        return &rudp_cc_newreno_ops;
    }
}

/* Clears |cc|, selects the algorithm |algo|, sets the shared fields (no
 * ssthresh, no recovery period) and lets the algorithm's init hook set the
 * window.  Never fails. */
void rudp_cc_init(rudp_cc *cc, enum rudp_cc_algo algo, uint64_t max_datagram,
                  rudp_tstamp now) {
    memset(cc, 0, sizeof(*cc));
    cc->ops = cc_ops_for(algo);
    cc->max_datagram = max_datagram;
    cc->ssthresh = UINT64_MAX;
    cc->recovery_start = RUDP_TSTAMP_NEVER;
    cc->ops->init(cc, now);
}

int rudp_cc_state(const rudp_cc *cc) {
    static const uint8_t bbr[] = {
        [RUDP_BBR_STARTUP] = RUDP_TRACE_CC_BBR_STARTUP,
        [RUDP_BBR_DRAIN] = RUDP_TRACE_CC_BBR_DRAIN,
        [RUDP_BBR_PROBE_BW] = RUDP_TRACE_CC_BBR_PROBE_BW,
        [RUDP_BBR_PROBE_RTT] = RUDP_TRACE_CC_BBR_PROBE_RTT,
    };
    if (cc->in_recovery)
        return RUDP_TRACE_CC_RECOVERY;
    if (cc->ops == &rudp_cc_bbr_ops)
        return bbr[cc->u.bbr.mode];
    return cc->cwnd < cc->ssthresh ? RUDP_TRACE_CC_SLOW_START
                                   : RUDP_TRACE_CC_CONGESTION_AVOIDANCE;
}

/* Returns the pacing rate in bytes per second: the algorithm's hook when it
 * has one, else cwnd / srtt times 2 in slow start and 1.25 after; 0 before
 * the first RTT sample.  Saturates at UINT64_MAX. */
uint64_t rudp_cc_pacing_rate(const rudp_cc *cc, const rudp_rtt *rtt) {
    double gain = cc->cwnd < cc->ssthresh ? 2.0 : 1.25;
    double srtt, rate;

    if (cc->ops->pacing_rate != NULL)
        return cc->ops->pacing_rate(cc, rtt);
    if (!rtt->has_sample)
        return 0;
    srtt = rtt->smoothed > 0 ? (double)rtt->smoothed : 1.0;
    rate = (double)cc->cwnd * gain * CC_NS_PER_SEC / srtt;
    return rate >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)rate;
}

/* Stores in *algo the algorithm called |name| ("newreno", "cubic" or "bbr").
 * Returns RUDP_OK, or RUDP_ERR_INVAL for NULL or an unknown name. */
int rudp_cc_algo_from_name(const char *name, enum rudp_cc_algo *algo) {
    if (name == NULL || algo == NULL)
        return RUDP_ERR_INVAL;
    if (strcmp(name, "newreno") == 0) {
        *algo = RUDP_CC_NEWRENO;
        return RUDP_OK;
    }
    if (strcmp(name, "cubic") == 0) {
        *algo = RUDP_CC_CUBIC;
        return RUDP_OK;
    }
    if (strcmp(name, "bbr") == 0) {
        *algo = RUDP_CC_BBR;
        return RUDP_OK;
    }
    return RUDP_ERR_INVAL;
}

/* Returns the static name of |algo|, or "unknown" for a value outside the
 * enum. */
const char *rudp_cc_algo_name(enum rudp_cc_algo algo) {
    switch (algo) {
    case RUDP_CC_NEWRENO:
        return "newreno";
    case RUDP_CC_CUBIC:
        return "cubic";
    case RUDP_CC_BBR:
        return "bbr";
    }
    return "unknown";
}
