/*
 * rate.h — delivery-rate sampling (draft-cheng-iccrg-delivery-rate-estimation,
 * Linux tcp_rate.c, ngtcp2 _rst).
 *
 * The sampler counts the bytes delivered (acknowledged) over the life of a
 * session.  Each packet sent records the delivery state of that moment in a
 * rudp_rate_pkt; each ACK turns the records of the packets it acknowledges
 * into one rudp_rate_sample: how many bytes were delivered between the send
 * of the most recently sent of them and its acknowledgement, over how long,
 * and whether the sender was application-limited meanwhile.
 */
#ifndef RUDP_RATE_H
#define RUDP_RATE_H

#include "rudp/rudp.h"

/* Delivery state recorded with each in-flight packet when it is sent. */
typedef struct rudp_rate_pkt {
    uint64_t delivered;          /* rudp_rate.delivered at send time */
    rudp_tstamp delivered_time;  /* rudp_rate.delivered_time at send time */
    rudp_tstamp first_sent_time; /* rudp_rate.first_sent_time at send time */
    uint8_t is_app_limited;      /* sent while the flow was app-limited */
} rudp_rate_pkt;

/* One delivery-rate sample, built by the ACK being processed. */
typedef struct rudp_rate_sample {
    uint64_t delivery_rate;     /* bytes per second; 0 when !valid */
    uint64_t delivered;         /* bytes delivered over |interval| */
    rudp_tstamp interval;       /* max(send_elapsed, ack_elapsed), ns */
    rudp_tstamp send_elapsed;   /* send interval of the sampled flight */
    rudp_tstamp ack_elapsed;    /* ack interval of the sampled flight */
    uint64_t prior_delivered;   /* delivered when the newest acked packet was sent */
    rudp_tstamp prior_time;     /* delivered_time when it was sent */
    rudp_tstamp last_sent_time; /* send time of the newest acked packet */
    uint64_t acked_bytes;       /* bytes newly acknowledged by this ACK */
    uint64_t lost_bytes;        /* bytes declared lost since the previous sample */
    uint64_t prior_in_flight;   /* bytes in flight before this ACK */
    bool is_app_limited;        /* the newest acked packet was sent app-limited */
    bool has_prior;             /* some in-flight packet was acknowledged */
    bool valid;                 /* delivery_rate is a usable sample */
} rudp_rate_sample;

typedef struct rudp_rate {
    uint64_t delivered;          /* total bytes acknowledged */
    rudp_tstamp delivered_time;  /* when delivered last grew */
    rudp_tstamp first_sent_time; /* send time of the newest acked packet */
    uint64_t app_limited;        /* 0, or the delivered mark ending app-limited */
    uint64_t lost;               /* total bytes declared lost */
    uint64_t lost_sampled;       /* |lost| at the previous sample */
    rudp_rate_sample rs;         /* the sample being built or last built */
} rudp_rate;

/* Starts counting at |now| with nothing delivered.  Never fails. */
void rudp_rate_init(rudp_rate *rt, rudp_tstamp now);

/* Records in |pp| the delivery state for an in-flight packet sent at |now|
 * while |bytes_in_flight| bytes (not counting it) were in flight.  A send
 * into an empty flight restarts the send and ack intervals at |now|. */
void rudp_rate_on_sent(rudp_rate *rt, rudp_rate_pkt *pp, uint64_t bytes_in_flight,
                       rudp_tstamp now);

/* Marks the flow application-limited: the sender had window room but
 * nothing to send, with |bytes_in_flight| in flight.  Samples taken until
 * that flight is delivered are flagged is_app_limited. */
void rudp_rate_on_app_limited(rudp_rate *rt, uint64_t bytes_in_flight);

/* Starts the sample of an ACK that finds |bytes_in_flight| in flight. */
void rudp_rate_ack_begin(rudp_rate *rt, uint64_t bytes_in_flight);

/* Counts |size| bytes of an in-flight packet sent at |sent_time| with
 * delivery state |pp| as acknowledged at |now|. */
void rudp_rate_on_acked(rudp_rate *rt, const rudp_rate_pkt *pp, uint64_t size,
                        rudp_tstamp sent_time, rudp_tstamp now);

/* Counts |size| bytes of an in-flight packet as lost. */
void rudp_rate_on_lost(rudp_rate *rt, uint64_t size);

/* Finishes the ACK's sample and returns it: valid when a packet was
 * acknowledged and the interval is at least |min_rtt| (samples over a
 * shorter interval come from ACK compression and would overestimate). */
const rudp_rate_sample *rudp_rate_ack_end(rudp_rate *rt, rudp_tstamp min_rtt);

#endif /* RUDP_RATE_H */
