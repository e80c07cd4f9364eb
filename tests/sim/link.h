/*
 * link.h — one direction of a simulated network path.
 *
 * A sim_link carries datagrams from one endpoint to the other on the
 * simulator's virtual clock.  It is modelled on picoquic's sim_link: a
 * bottleneck of a given bit rate with a drop-tail queue, then a propagation
 * delay, with impairments layered on top.  A datagram handed to
 * sim_link_send() at time T goes through these stages, in this order:
 *
 *   1. partition: dropped if T falls in the partition window;
 *   2. queue: with a rate set, dropped if more than queue_limit datagrams
 *      are already waiting behind the one being serialised (drop-tail);
 *      otherwise it leaves the bottleneck when its bits have been clocked out
 *      (payload + header_overhead bytes, 28 for IPv4/UDP by default, at
 *      rate_bps);
 *   3. loss: dropped at random (loss), or by a two-state Gilbert–Elliott
 *      channel (burst_loss): in state Good nothing is lost, in state Bad
 *      everything is; after each datagram the channel moves Good->Bad with
 *      probability p and Bad->Good with probability r = 1 / burst_len, so
 *      bursts last burst_len datagrams on average (geometric) and the
 *      long-run loss rate is p / (p + r); p is chosen to make that equal to
 *      burst_loss.  A lost datagram still used its share of the bottleneck,
 *      unless loss_first is set: then loss comes before the queue (stage
 *      1.5), as in scripts/netem's NFQUEUE stand-in and tc netem with a tbf
 *      child, and a lost datagram costs the bottleneck nothing;
 *   4. delay: it arrives delay + U[0, jitter] after leaving the bottleneck,
 *      so jitter reorders datagrams sent closer together than the jitter;
 *   5. duplication: with probability dup a second copy arrives too, a
 *      further U[0, jitter + 1 ms] later;
 *   6. partition again: a copy that would arrive inside the window is
 *      dropped (so the window cuts the path both at entry and at exit);
 *   7. corruption: each delivered copy, independently with probability
 *      corrupt, has 1 to 3 random bits flipped (the sender's buffer is never
 *      touched).
 *
 * Datagrams in flight live in a pool of fixed-size slots ordered by a binary
 * heap on (arrival time, send order), so equal arrival times keep FIFO order.
 * The pool grows by doubling up to max_in_flight slots and never shrinks:
 * there is no allocation per datagram once a run has warmed up.  All
 * randomness comes from the link's own PRNG, seeded at init, so the two
 * directions of a path are impaired independently and reproducibly.
 */
#ifndef RUDP_SIM_LINK_H
#define RUDP_SIM_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "prng.h"
#include "rudp/rudp.h"

/* Bytes of IPv4 + UDP header charged per datagram by the rate limiter
 * unless the configuration says otherwise. */
#define SIM_LINK_HEADER_OVERHEAD 28

typedef struct sim_link_config {
    rudp_tstamp delay;           /* one-way propagation delay */
    rudp_tstamp jitter;          /* extra delay, uniform in [0, jitter] */
    double loss;                 /* random loss probability, 0..1 */
    double burst_loss;           /* Gilbert–Elliott long-run loss rate, 0..1 */
    double burst_len;            /* mean Gilbert–Elliott burst length, >= 1 */
    double dup;                  /* duplication probability, 0..1 */
    double corrupt;              /* corruption probability, 0..1 */
    uint64_t rate_bps;           /* bottleneck bit rate, 0 = unlimited */
    uint32_t queue_limit;        /* datagrams that may wait (with a rate) */
    uint32_t header_overhead;    /* bytes charged per datagram besides its payload */
    bool loss_first;             /* random/burst loss before the queue, not after */
    rudp_tstamp partition_start; /* partition window start */
    rudp_tstamp partition_len;   /* partition window length, 0 = none */
    size_t max_datagram;         /* largest datagram the link accepts */
    uint32_t max_in_flight;      /* pool ceiling; beyond it datagrams drop */
} sim_link_config;

/* What sim_link_send() did with a datagram. */
enum sim_link_verdict {
    SIM_LINK_SENT = 0,       /* on its way (it may still be partitioned) */
    SIM_LINK_DROP_PARTITION, /* sent during the partition window */
    SIM_LINK_DROP_QUEUE,     /* bottleneck queue full */
    SIM_LINK_DROP_LOSS,      /* random loss */
    SIM_LINK_DROP_BURST,     /* Gilbert–Elliott loss */
    SIM_LINK_DROP_OVERFLOW,  /* max_in_flight datagrams already in flight */
    SIM_LINK_TOO_BIG,        /* longer than max_datagram: a caller bug */
};

typedef struct sim_link_stats {
    uint64_t sent;            /* datagrams offered */
    uint64_t bytes_sent;      /* their payload bytes */
    uint64_t delivered;       /* copies handed out by sim_link_receive */
    uint64_t bytes_delivered; /* their payload bytes */
    uint64_t drop_partition;  /* copies sent or arriving in the window */
    uint64_t drop_queue;
    uint64_t drop_loss;
    uint64_t drop_burst;
    uint64_t drop_overflow;
    uint64_t duplicated; /* extra copies created */
    uint64_t corrupted;  /* copies with flipped bits */
    uint64_t max_queued; /* deepest bottleneck queue seen */
} sim_link_stats;

/* One datagram in flight: its arrival time, a tie-breaker and a length; the
 * bytes live in the pool at the same slot index. */
typedef struct sim_link_slot {
    rudp_tstamp at;
    uint64_t seq;
    uint32_t len;
} sim_link_slot;

/* Idle time that counts as one step of the Gilbert channel. */
#define SIM_GE_IDLE_STEP RUDP_MS(1)

typedef struct sim_link {
    sim_link_config cfg;
    sim_prng rng;
    double ge_p, ge_r;   /* Gilbert–Elliott transition probabilities */
    int ge_bad;          /* current Gilbert–Elliott state */
    rudp_tstamp ge_last; /* when the channel last stepped */
    uint64_t seq;        /* send order, for FIFO among equal times */
    /* Slot pool and arrival heap. */
    uint8_t *data; /* nslots * cfg.max_datagram bytes */
    sim_link_slot *slots;
    uint32_t *heap; /* slot indices, min-heap on (at, seq) */
    uint32_t *free; /* free slot indices (a stack) */
    uint32_t nslots, nheap, nfree;
    /* Bottleneck: departure times of datagrams not yet clocked out. */
    rudp_tstamp *depart; /* ring, capacity ndepart_cap (power of 2) */
    uint32_t depart_head, ndepart, ndepart_cap;
    rudp_tstamp busy_until; /* when the bottleneck is next idle */
    sim_link_stats stats;
} sim_link;

/* Fills |c| with a perfect link: no delay, no impairment, unlimited rate,
 * a queue limit of 10000 datagrams, 65535-byte datagrams and a ceiling of
 * 1 << 20 datagrams in flight. */
void sim_link_config_default(sim_link_config *c);

/* Returns NULL when |c| is usable, else a static message naming the bad
 * field. */
const char *sim_link_config_check(const sim_link_config *c);

/* Prepares |l| (caller-owned memory) to carry datagrams as |c| says, with
 * randomness seeded from |seed|.  Returns 0, or -1 when |c| is not usable or
 * the initial pool cannot be allocated (|l| then needs no sim_link_free). */
int sim_link_init(sim_link *l, const sim_link_config *c, uint64_t seed);

/* Releases the pool of |l|; datagrams still in flight are discarded. */
void sim_link_free(sim_link *l);

/* Offers datagram |pkt| of |len| bytes to the link at time |now|, which must
 * not go backwards between calls.  The bytes are copied.  Returns what
 * happened to it (stats are updated either way). */
enum sim_link_verdict sim_link_send(sim_link *l, const uint8_t *pkt, size_t len,
                                    rudp_tstamp now);

/* Returns the arrival time of the next datagram in flight, or
 * RUDP_TSTAMP_NEVER when none is. */
rudp_tstamp sim_link_next_arrival(const sim_link *l);

/* Takes the next datagram that has arrived by |now| and copies it into
 * |buf|, truncated to |cap| bytes (pass cap >= cfg.max_datagram).  Returns
 * its length, or 0 when none has arrived. */
size_t sim_link_receive(sim_link *l, rudp_tstamp now, uint8_t *buf, size_t cap);

/* Returns the number of datagrams in flight (queued or propagating). */
uint32_t sim_link_in_flight(const sim_link *l);

/* Returns a static name for |v| ("sent", "drop-loss", ...). */
const char *sim_link_verdict_name(enum sim_link_verdict v);

/* Checks the link model's arithmetic without any session: delay, rate,
 * queue limit, loss, burst loss, duplication, corruption, partition, jitter
 * and determinism.  Writes one line per check to |log|.  Returns the number
 * of failed checks (0 = all good). */
int sim_link_selftest(FILE *log);

#endif
