/*
 * rtt.h — round-trip time estimation (RFC 9002 §5).
 *
 * latest_rtt, smoothed_rtt (srtt), rttvar and min_rtt, with the peer's ACK
 * delay subtracted when that does not take the sample below min_rtt.
 */
#ifndef RUDP_RTT_H
#define RUDP_RTT_H

#include "rudp/rudp.h"

#define RUDP_GRANULARITY RUDP_MS(1) /* kGranularity */
/* The longest a packet carrying a PING waits for its ACK (acktr.c): the
 * ACK delay a PTO leaves room for after such a packet (recovery.c). */
#define RUDP_ACK_NOW_DELAY RUDP_MS(1)

typedef struct rudp_rtt {
    rudp_tstamp latest;
    rudp_tstamp smoothed;
    rudp_tstamp var;
    rudp_tstamp min;
    bool has_sample;
} rudp_rtt;

/* smoothed = initial, var = initial / 2, min = 0, no sample yet. */
void rudp_rtt_init(rudp_rtt *r, rudp_tstamp initial_rtt);

/* Takes one sample.  |ack_delay| is the peer's reported delay, capped at
 * |max_ack_delay| once |handshake_confirmed|. */
void rudp_rtt_update(rudp_rtt *r, rudp_tstamp latest_rtt, rudp_tstamp ack_delay,
                     rudp_tstamp max_ack_delay, bool handshake_confirmed);

/* Returns the probe timeout before backoff: srtt + max(4 rttvar, kGranularity)
 * + max_ack_delay. */
rudp_tstamp rudp_rtt_pto(const rudp_rtt *r, rudp_tstamp max_ack_delay);

#endif /* RUDP_RTT_H */
