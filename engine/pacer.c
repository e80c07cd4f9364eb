/*
 * pacer.c — send pacing as a token bucket (RFC 9002 §7.7).
 *
 * RFC 9002 §7.7 asks a sender to spread a congestion window over the round
 * trip instead of sending it in one burst, and suggests a leaky bucket that
 * lets a limited burst out at once.  Here the bucket holds bytes: it fills at
 * the pacing rate (bytes per second, chosen by the caller from cwnd and
 * smoothed RTT) up to |burst|, and a packet may leave when the bucket holds
 * its size.  A packet larger than the burst may leave once the bucket is
 * full, so a tiny burst can never block the sender forever.
 *
 * Time is in nanoseconds, so rate * elapsed is computed in 128 bits: rates
 * and timestamps up to UINT64_MAX cannot overflow.  Tokens are whole bytes;
 * when a refill earns a fraction of a byte, |last| moves forward only by the
 * time the whole bytes took, so the remainder is carried into the next
 * refill instead of being lost.  That keeps a paced flow at its rate however
 * often the caller asks (losing under one nanosecond per refill), and makes
 * the time next_time() returns exactly the time on_sent() will find enough
 * tokens.
 *
 * A rate of 0 means pacing is off: next_time() answers |now| and on_sent()
 * leaves the bucket full, so pacing resumes with a full burst when a rate
 * comes back.
 */
#include "pacer.h"

#define NS_PER_SEC 1000000000u

typedef unsigned __int128 pacer_u128;

void rudp_pacer_init(rudp_pacer *p, uint64_t burst, rudp_tstamp now) {
    p->tokens = burst;
    p->burst = burst;
    p->last = now;
}

/* Returns the whole bytes earned at |rate| between p->last and |now| (0 when
 * now is not after last), saturated at UINT64_MAX. */
static uint64_t pacer_earned(const rudp_pacer *p, uint64_t rate, rudp_tstamp now) {
    if (now <= p->last)
        return 0;
    pacer_u128 bytes = (pacer_u128)rate * (now - p->last) / NS_PER_SEC;
    return bytes > UINT64_MAX ? UINT64_MAX : (uint64_t)bytes;
}

/* Returns the nanoseconds needed to earn |bytes| at |rate| (> 0), rounded
 * up, as a 128-bit value (it may not fit in 64 bits). */
static pacer_u128 pacer_time_for(uint64_t bytes, uint64_t rate) {
    return ((pacer_u128)bytes * NS_PER_SEC + rate - 1) / rate;
}

/* Adds the tokens earned up to |now|, capped at the burst.  |last| advances
 * to now when the bucket is full, else by the time the whole tokens took. */
static void pacer_refill(rudp_pacer *p, uint64_t rate, rudp_tstamp now) {
    uint64_t earned = pacer_earned(p, rate, now);
    if (p->tokens >= p->burst || earned >= p->burst - p->tokens) {
        p->tokens = p->burst;
        p->last = now > p->last ? now : p->last;
        return;
    }
    p->tokens += earned;
    p->last += (uint64_t)pacer_time_for(earned, rate);
}

rudp_tstamp rudp_pacer_next_time(rudp_pacer *p, uint64_t bytes, uint64_t rate,
                                 rudp_tstamp now) {
    if (rate == 0)
        return now;
    uint64_t need = bytes < p->burst ? bytes : p->burst;
    uint64_t have = p->tokens < p->burst ? p->tokens : p->burst;
    uint64_t earned = pacer_earned(p, rate, now);
    if (have >= need || earned >= need - have)
        return now;
    pacer_u128 t = (pacer_u128)p->last + pacer_time_for(need - have, rate);
    return t >= RUDP_TSTAMP_NEVER ? RUDP_TSTAMP_NEVER : (rudp_tstamp)t;
}

void rudp_pacer_on_sent(rudp_pacer *p, uint64_t bytes, uint64_t rate, rudp_tstamp now) {
    if (rate == 0) {
        p->tokens = p->burst;
        p->last = now > p->last ? now : p->last;
        return;
    }
    pacer_refill(p, rate, now);
    p->tokens = bytes < p->tokens ? p->tokens - bytes : 0;
}

void rudp_pacer_set_burst(rudp_pacer *p, uint64_t burst) {
    p->burst = burst;
    if (p->tokens > burst)
        p->tokens = burst;
}
