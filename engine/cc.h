/*
 * cc.h — the congestion-control interface and its algorithms.
 *
 * One rudp_cc holds the window and the algorithm's state; rudp_cc_ops is
 * the table of hooks every algorithm fills in (like tcp_congestion_ops).
 * Recovery calls the hooks; the session asks rudp_cc_pacing_rate().
 * cc_newreno.c follows RFC 9002 §7, cc_cubic.c follows RFC 9438.
 */
#ifndef RUDP_CC_H
#define RUDP_CC_H

#include "rudp/rudp.h"
#include "rtt.h"

typedef struct rudp_cc rudp_cc;

typedef struct rudp_cc_ops {
    const char *name;
    /* Sets the initial window and state. */
    void (*init)(rudp_cc *cc, rudp_tstamp now);
    /* |bytes| of a packet sent at |sent_time| were acknowledged at |now|. */
    void (*on_ack)(rudp_cc *cc, uint64_t bytes, rudp_tstamp sent_time,
                   const rudp_rtt *rtt, rudp_tstamp now);
    /* A loss (or ECN) was detected in a packet sent at |sent_time|. */
    void (*on_congestion)(rudp_cc *cc, rudp_tstamp sent_time, const rudp_rtt *rtt,
                          rudp_tstamp now);
    /* Persistent congestion (RFC 9002 §7.6): collapse to the minimum window. */
    void (*on_persistent_congestion)(rudp_cc *cc, rudp_tstamp now);
} rudp_cc_ops;

typedef struct rudp_cubic_state {
    double w_max;          /* window before the last reduction, in bytes */
    double k;              /* seconds to reach w_max again */
    double w_est;          /* Reno-friendly estimate, bytes */
    double cwnd_prior;
    rudp_tstamp t_epoch;   /* start of the current congestion avoidance epoch */
    bool epoch_started;
} rudp_cubic_state;

struct rudp_cc {
    const rudp_cc_ops *ops;
    uint64_t max_datagram;      /* bytes */
    uint64_t cwnd;              /* bytes */
    uint64_t ssthresh;          /* bytes; UINT64_MAX initially */
    uint64_t bytes_acked_ca;    /* NewReno congestion-avoidance accumulator */
    rudp_tstamp recovery_start; /* packets sent before this do not react */
    bool in_recovery;
    union {
        rudp_cubic_state cubic;
    } u;
};

extern const rudp_cc_ops rudp_cc_newreno_ops;
extern const rudp_cc_ops rudp_cc_cubic_ops;

/* Initial window: min(10 * max_datagram, max(2 * max_datagram, 14720)). */
uint64_t rudp_cc_initial_window(uint64_t max_datagram);
/* Minimum window: 2 * max_datagram. */
uint64_t rudp_cc_min_window(uint64_t max_datagram);

/* Sets up |cc| with the algorithm |algo| and calls its init hook. */
void rudp_cc_init(rudp_cc *cc, enum rudp_cc_algo algo, uint64_t max_datagram,
                  rudp_tstamp now);

/* Returns the pacing rate in bytes per second: cwnd / srtt scaled by 2 in
 * slow start and 1.25 after (RFC 9002 §7.7 N = 1.25); 0 before any RTT. */
uint64_t rudp_cc_pacing_rate(const rudp_cc *cc, const rudp_rtt *rtt);

#endif /* RUDP_CC_H */
