/*
 * pacer.h — send pacing as a token bucket (RFC 9002 §7.7).
 *
 * Tokens (bytes) refill at the pacing rate up to a burst allowance; a packet
 * may leave when the bucket holds its size.  A rate of 0 disables pacing.
 */
#ifndef RUDP_PACER_H
#define RUDP_PACER_H

#include "rudp/rudp.h"

typedef struct rudp_pacer {
    uint64_t tokens;  /* bytes that may leave now */
    uint64_t burst;   /* bucket size in bytes */
    rudp_tstamp last; /* time tokens were last refilled */
} rudp_pacer;

/* Starts with a full bucket of |burst| bytes. */
void rudp_pacer_init(rudp_pacer *p, uint64_t burst, rudp_tstamp now);

/* Returns the earliest time a packet of |bytes| may be sent at |rate| bytes
 * per second: |now| if it may go now, RUDP_TSTAMP_NEVER never (rate 0 means
 * unpaced and always returns now). */
rudp_tstamp rudp_pacer_next_time(rudp_pacer *p, uint64_t bytes, uint64_t rate,
                                 rudp_tstamp now);

/* Takes |bytes| of tokens for a packet sent at |now| (refilling first). */
void rudp_pacer_on_sent(rudp_pacer *p, uint64_t bytes, uint64_t rate, rudp_tstamp now);

/* Changes the burst allowance (e.g. with the congestion window). */
void rudp_pacer_set_burst(rudp_pacer *p, uint64_t burst);

#endif /* RUDP_PACER_H */
