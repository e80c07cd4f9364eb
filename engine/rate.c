/*
 * rate.c — delivery-rate sampling after draft-cheng-iccrg-delivery-rate-
 * estimation-00, as Linux's tcp_rate.c and ngtcp2's _rst implement it.
 *
 * The sampler keeps |delivered|, the bytes acknowledged so far, and
 * |delivered_time|, when that count last grew.  Every in-flight packet
 * records both at send time, plus |first_sent_time|, the send time of the
 * packet most recently acknowledged then (the start of the current send
 * interval).  When an ACK acknowledges packets, the most recently sent of
 * them (largest recorded |delivered|, ties broken by send time) gives the
 * sample:
 *
 *     delivered    = rt.delivered - P.delivered
 *     send_elapsed = P.sent_time - P.first_sent_time
 *     ack_elapsed  = rt.delivered_time - P.delivered_time
 *     interval     = max(send_elapsed, ack_elapsed)
 *     rate         = delivered / interval
 *
 * Taking the larger of the two intervals keeps ACK compression (acks
 * arriving faster than the data was sent) and send bursts (data sent faster
 * than it can be delivered) from inflating the rate; a sample whose interval
 * is still below min_rtt is discarded as the draft asks.  A send into an
 * empty flight restarts both intervals, so idle time is never counted.
 *
 * Application-limited periods (§3.4 of the draft): when the sender had
 * window room but nothing to send, |app_limited| is set to the delivered
 * count at which everything then in flight will have been delivered; packets
 * sent before that mark is passed carry is_app_limited, and their samples
 * say so, because they measure the application, not the path.  A congestion
 * controller keeps such a sample only when it exceeds its estimate.
 *
 * Lost bytes are counted too, so each sample also says how much was lost
 * since the previous one.  Only in-flight (congestion-controlled) packets
 * are counted; ACK-only packets are neither delivered nor lost here.
 */
#include <string.h>

#include "rate.h"

#define RATE_NS_PER_SEC 1000000000u

typedef unsigned __int128 rate_u128;

/* Starts with nothing delivered at |now|. */
void rudp_rate_init(rudp_rate *rt, rudp_tstamp now) {
    memset(rt, 0, sizeof(*rt));
    rt->delivered_time = now;
    rt->first_sent_time = now;
}

/* Records the delivery state for a packet sent at |now|; a send into an
 * empty flight restarts the intervals at |now|. */
void rudp_rate_on_sent(rudp_rate *rt, rudp_rate_pkt *pp, uint64_t bytes_in_flight,
                       rudp_tstamp now) {
    if (bytes_in_flight == 0) {
        rt->first_sent_time = now;
        rt->delivered_time = now;
    }
    pp->delivered = rt->delivered;
    pp->delivered_time = rt->delivered_time;
    pp->first_sent_time = rt->first_sent_time;
    pp->is_app_limited = rt->app_limited != 0;
}

/* Sets the app-limited mark to the end of the current flight (at least 1,
 * so that 0 keeps meaning "not app-limited"). */
void rudp_rate_on_app_limited(rudp_rate *rt, uint64_t bytes_in_flight) {
    uint64_t mark = rt->delivered + bytes_in_flight;

    rt->app_limited = mark > 0 ? mark : 1;
}

/* Clears the sample for a new ACK. */
void rudp_rate_ack_begin(rudp_rate *rt, uint64_t bytes_in_flight) {
    memset(&rt->rs, 0, sizeof(rt->rs));
    rt->rs.prior_in_flight = bytes_in_flight;
}

/* Returns true when a packet with state |pp| sent at |sent_time| was sent
 * after the one the sample currently uses. */
static bool rate_is_newer(const rudp_rate_sample *rs, const rudp_rate_pkt *pp,
                          rudp_tstamp sent_time) {
    if (!rs->has_prior || pp->delivered > rs->prior_delivered)
        return true;
    return pp->delivered == rs->prior_delivered && sent_time > rs->last_sent_time;
}

/* Credits |size| acknowledged bytes and makes the packet the sample's
 * reference when it is the most recently sent so far. */
void rudp_rate_on_acked(rudp_rate *rt, const rudp_rate_pkt *pp, uint64_t size,
                        rudp_tstamp sent_time, rudp_tstamp now) {
    rudp_rate_sample *rs = &rt->rs;

    rt->delivered += size;
    rt->delivered_time = now;
    rs->acked_bytes += size;
    if (!rate_is_newer(rs, pp, sent_time))
        return;
    rs->has_prior = true;
    rs->prior_delivered = pp->delivered;
    rs->prior_time = pp->delivered_time;
    rs->is_app_limited = pp->is_app_limited != 0;
    rs->last_sent_time = sent_time;
    rs->send_elapsed =
        sent_time > pp->first_sent_time ? sent_time - pp->first_sent_time : 0;
    rt->first_sent_time = sent_time;
}

/* Counts |size| lost bytes. */
void rudp_rate_on_lost(rudp_rate *rt, uint64_t size) {
    rt->lost += size;
}

/* Completes the sample: ends the app-limited period once its flight is
 * delivered, then computes delivered, the interval and the rate. */
const rudp_rate_sample *rudp_rate_ack_end(rudp_rate *rt, rudp_tstamp min_rtt) {
    rudp_rate_sample *rs = &rt->rs;

    if (rt->app_limited != 0 && rt->delivered > rt->app_limited)
        rt->app_limited = 0;
    rs->lost_bytes = rt->lost - rt->lost_sampled;
    rt->lost_sampled = rt->lost;
    if (!rs->has_prior)
        return rs;
    rs->delivered = rt->delivered - rs->prior_delivered;
    rs->ack_elapsed =
        rt->delivered_time > rs->prior_time ? rt->delivered_time - rs->prior_time : 0;
    rs->interval = rs->send_elapsed > rs->ack_elapsed ? rs->send_elapsed : rs->ack_elapsed;
    if (rs->interval == 0 || rs->interval < min_rtt)
        return rs;
    rate_u128 rate = (rate_u128)rs->delivered * RATE_NS_PER_SEC / rs->interval;
    rs->delivery_rate = rate > UINT64_MAX ? UINT64_MAX : (uint64_t)rate;
    rs->valid = true;
    return rs;
}
