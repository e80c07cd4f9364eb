/*
 * cc.h — the congestion-control interface and its algorithms.
 *
 * One rudp_cc holds the window and the algorithm's state; rudp_cc_ops is
 * the table of hooks every algorithm fills in (like tcp_congestion_ops).
 * Recovery calls the hooks; the session asks rudp_cc_pacing_rate().
 * cc_newreno.c follows RFC 9002 §7, cc_cubic.c follows RFC 9438, cc_bbr.c
 * follows draft-cardwell-iccrg-bbr-congestion-control-00.  Every algorithm
 * keeps its window in rudp_cc.cwnd, which is what recovery and the session
 * read.
 */
#ifndef RUDP_CC_H
#define RUDP_CC_H

#include "rudp/rudp.h"
#include "rate.h"
#include "rtt.h"

typedef struct rudp_cc rudp_cc;

typedef struct rudp_cc_ops {
    const char *name;
    /* Sets the initial window and state. */
    void (*init)(rudp_cc *cc, rudp_tstamp now);
    /* |bytes| of a packet sent at |sent_time| were acknowledged at |now|. */
    void (*on_ack)(rudp_cc *cc, uint64_t bytes, rudp_tstamp sent_time, const rudp_rtt *rtt,
                   rudp_tstamp now);
    /* A loss (or ECN) was detected in a packet sent at |sent_time|. */
    void (*on_congestion)(rudp_cc *cc, rudp_tstamp sent_time, const rudp_rtt *rtt,
                          rudp_tstamp now);
    /* Persistent congestion (RFC 9002 §7.6): collapse to the minimum window. */
    void (*on_persistent_congestion)(rudp_cc *cc, rudp_tstamp now);
    /* Optional (NULL when unused).  Called once per ACK that acknowledged
     * something, after on_ack for each packet: |rate->rs| is the ACK's
     * delivery-rate sample and |bytes_in_flight| what is still in flight.
     * The algorithm may mark the flow app-limited through |rate|. */
    void (*on_ack_sample)(rudp_cc *cc, rudp_rate *rate, uint64_t bytes_in_flight,
                          const rudp_rtt *rtt, rudp_tstamp now);
    /* Optional (NULL: the RFC 9002 §7.7 rate of rudp_cc_pacing_rate).
     * Returns the pacing rate in bytes per second, 0 for unpaced. */
    uint64_t (*pacing_rate)(const rudp_cc *cc, const rudp_rtt *rtt);
} rudp_cc_ops;

typedef struct rudp_cubic_state {
    double w_max; /* window before the last reduction, in bytes */
    double k;     /* seconds to reach w_max again */
    double w_est; /* Reno-friendly estimate, bytes */
    double cwnd_prior;
    rudp_tstamp t_epoch; /* start of the current congestion avoidance epoch */
    bool epoch_started;
} rudp_cubic_state;

/* A windowed max filter of three samples (Linux win_minmax.h). */
typedef struct rudp_bbr_minmax {
    struct {
        uint64_t t; /* round count of the sample */
        uint64_t v; /* bytes per second */
    } s[3];
} rudp_bbr_minmax;

/* BBR's state machine (draft-cardwell-iccrg-bbr-congestion-control-00 §4.3). */
enum rudp_bbr_mode {
    RUDP_BBR_STARTUP,
    RUDP_BBR_DRAIN,
    RUDP_BBR_PROBE_BW,
    RUDP_BBR_PROBE_RTT,
};

typedef struct rudp_bbr_state {
    rudp_bbr_minmax bw_filter;     /* max delivery rate over 10 rounds */
    uint64_t btl_bw;               /* BBR.BtlBw, bytes per second */
    rudp_tstamp rt_prop;           /* BBR.RTprop; UINT64_MAX before a sample */
    rudp_tstamp rt_prop_stamp;     /* when rt_prop was last set */
    uint64_t round_count;          /* packet-timed round trips */
    uint64_t next_round_delivered; /* delivered count that ends the round */
    uint64_t full_bw;              /* bandwidth when startup last grew 25 % */
    uint64_t prior_cwnd;           /* cwnd saved on recovery and ProbeRTT */
    uint64_t pacing_rate;          /* bytes per second, 0 before any ACK */
    uint64_t send_quantum;         /* bytes */
    double pacing_gain, cwnd_gain;
    rudp_tstamp cycle_stamp;        /* start of the current ProbeBW phase */
    rudp_tstamp probe_rtt_done;     /* end of the ProbeRTT dwell, once armed */
    rudp_tstamp round_min_rtt;      /* smallest RTT in the current round */
    rudp_tstamp last_round_min_rtt; /* the same for the previous round */
    uint32_t round_rtt_samples;     /* RTT samples taken in the current round */
    uint64_t round_lost;            /* bytes lost in the current round */
    uint64_t round_start_delivered; /* delivered count when it started */
    rudp_tstamp round_start_time;   /* when it started */
    uint64_t round_rate;            /* delivery rate of the last round, bytes/s */
    double loss_rate;               /* moving average of the per-round loss */
    uint32_t full_bw_count;         /* rounds without 25 % growth */
    uint8_t cycle_index;            /* ProbeBW phase, 0..7 */
    uint8_t mode;                   /* enum rudp_bbr_mode */
    bool filled_pipe, round_start, rt_prop_expired, packet_conservation;
    bool recovery_pending; /* recovery began; cwnd set on next ACK */
    bool probe_rtt_armed, probe_rtt_round_done;
    bool round_had_loss;         /* the last round lost something */
    bool round_app_limited;      /* a sample of the current round was app-limited */
    bool last_round_app_limited; /* the same for the previous round */
} rudp_bbr_state;

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
        rudp_bbr_state bbr;
    } u;
};

extern const rudp_cc_ops rudp_cc_newreno_ops;
extern const rudp_cc_ops rudp_cc_cubic_ops;
extern const rudp_cc_ops rudp_cc_bbr_ops;

/* Initial window: min(10 * max_datagram, max(2 * max_datagram, 14720)). */
uint64_t rudp_cc_initial_window(uint64_t max_datagram);
/* Minimum window: 2 * max_datagram. */
uint64_t rudp_cc_min_window(uint64_t max_datagram);

/* Sets up |cc| with the algorithm |algo| and calls its init hook. */
void rudp_cc_init(rudp_cc *cc, enum rudp_cc_algo algo, uint64_t max_datagram,
                  rudp_tstamp now);

/* Returns the state a trace reports (enum rudp_trace_cc_state): BBR's
 * mode, else slow start below ssthresh, congestion avoidance above; any
 * algorithm in its recovery period is RECOVERY. */
int rudp_cc_state(const rudp_cc *cc);

/* Returns the pacing rate in bytes per second: the algorithm's own when it
 * has a pacing_rate hook (BBR), else cwnd / srtt scaled by 2 in slow start
 * and 1.25 after (RFC 9002 §7.7 N = 1.25); 0 before any RTT. */
uint64_t rudp_cc_pacing_rate(const rudp_cc *cc, const rudp_rtt *rtt);

#endif /* RUDP_CC_H */
