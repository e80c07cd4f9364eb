/*
 * recovery.h — sent-packet records, ACK processing and loss detection
 * (RFC 9002 §6 and appendix A, single packet-number space).
 *
 * The session fills a rudp_sent_pkt for every packet it writes, saying which
 * frames it carried; recovery keeps them in a ring indexed by packet number
 * (no allocation per packet), processes ACK frames, measures RTT, declares
 * packets lost by packet threshold (3) and time threshold (9/8 RTT), runs
 * the PTO with exponential backoff, detects persistent congestion and feeds
 * the congestion controller, with a delivery-rate sample per ACK (rate.h).
 * What each acknowledged or lost packet carried goes back to the session
 * through rudp_recovery_handler.
 */
#ifndef RUDP_RECOVERY_H
#define RUDP_RECOVERY_H

#include "cc.h"
#include "rate.h"
#include "rtt.h"
#include "wire.h"

#define RUDP_PN_NONE UINT64_MAX
#define RUDP_PACKET_THRESHOLD 3
#define RUDP_SENT_MAX_FRAMES 8
#define RUDP_MAX_PTO RUDP_SEC(2) /* ceiling of the backed-off PTO */
#define RUDP_REORDER_MAX_STEPS 4 /* time threshold at most 2 x RTT (4 x min_rtt/4) */
#define RUDP_REORDER_CALM 16     /* episodes without a spurious loss before a step back */

/* What one frame in a sent packet was, so it can be retransmitted or
 * acknowledged.  Only reliable frames are recorded. */
enum rudp_sent_kind {
    RUDP_SENT_DATA = 1, /* sid, offset, len, flags (FIN/SYN/ACK) */
    RUDP_SENT_WINDOW,   /* WINDOW_UPDATE for sid (0 = session) */
    RUDP_SENT_RST,      /* RST for sid */
    RUDP_SENT_SESSION,  /* SESSION SYN or SYN|ACK */
    RUDP_SENT_GOAWAY,
    RUDP_SENT_MAX_STREAMS,
    RUDP_SENT_PATH_CHALLENGE,
    RUDP_SENT_PATH_RESPONSE,
    RUDP_SENT_LISTENING, /* LISTENING (its current value is resent) */
    RUDP_SENT_TICKET,    /* NEW_TICKET (a new one is sent) */
};

typedef struct rudp_sent_frame {
    uint64_t sid;
    uint64_t offset;
    uint16_t len;
    uint8_t kind;  /* enum rudp_sent_kind */
    uint8_t flags; /* DATA flags */
} rudp_sent_frame;

enum rudp_sent_state {
    RUDP_SENT_FREE = 0, /* slot unused */
    RUDP_SENT_OUTSTANDING,
    RUDP_SENT_DONE, /* acknowledged, or declared lost long enough ago */
    RUDP_SENT_LOST, /* declared lost, kept a while: an ACK for it means
                       the loss was reordering (spurious) */
};

typedef struct rudp_sent_pkt {
    uint64_t pn;
    rudp_tstamp time_sent;
    uint64_t ack_largest; /* largest pn in the ACK frame it carried, or RUDP_PN_NONE */
    uint32_t size;        /* datagram bytes */
    uint8_t ack_eliciting;
    uint8_t in_flight; /* counts toward bytes_in_flight (ack-eliciting or padded) */
    uint8_t state;     /* enum rudp_sent_state */
    uint8_t nframes;
    uint8_t ack_now;    /* carries a PING: acknowledged within RUDP_ACK_NOW_DELAY */
    rudp_rate_pkt rate; /* delivery state at send time (in-flight packets) */
    rudp_sent_frame frames[RUDP_SENT_MAX_FRAMES];
} rudp_sent_pkt;

/* Upcalls to the session.  Each packet is reported at most once, either as
 * acknowledged or as lost (never both). */
typedef struct rudp_recovery_handler {
    void (*on_acked)(void *user, const rudp_sent_pkt *pkt, rudp_tstamp now);
    void (*on_lost)(void *user, const rudp_sent_pkt *pkt, rudp_tstamp now);
    void *user;
} rudp_recovery_handler;

typedef struct rudp_recovery_config {
    rudp_tstamp initial_rtt;
    rudp_tstamp max_ack_delay; /* the peer's, once known */
    uint64_t max_datagram;
    enum rudp_cc_algo cc;
} rudp_recovery_config;

typedef struct rudp_recovery {
    rudp_rtt rtt;
    rudp_cc cc;
    rudp_rate rate; /* delivery-rate sampler */
    rudp_tstamp max_ack_delay;

    rudp_sent_pkt *ring; /* ring[pn % cap] for pn in [oldest_pn, next_pn) */
    uint64_t cap;        /* power of two */
    uint64_t oldest_pn;  /* lowest pn that may still be outstanding */
    uint64_t next_pn;    /* pn of the next packet to send */

    uint64_t largest_acked; /* RUDP_PN_NONE before any ACK */
    rudp_tstamp now;        /* latest time handed in */

    /* Reordering tolerance (RFC 8985 §6.2): after a spurious loss the packet
     * threshold is off and the time threshold widens by min_rtt/4 a step. */
    bool reorder_seen;      /* packet threshold disabled */
    uint32_t reorder_steps; /* time-threshold steps, 0..RUDP_REORDER_MAX_STEPS */
    uint32_t reorder_calm;  /* loss episodes since the last spurious loss */
    uint64_t spurious_losses;
    rudp_tstamp loss_time; /* time-threshold timer, or NEVER */
    rudp_tstamp last_ack_eliciting_time;
    bool last_ack_now; /* the newest ack-eliciting packet carried a PING */
    uint32_t pto_count;
    uint64_t bytes_in_flight;
    uint32_t ack_eliciting_in_flight;
    bool handshake_confirmed;
    rudp_tstamp first_rtt_sample_time; /* for persistent congestion; NEVER */

    /* statistics */
    uint64_t pkts_sent, pkts_lost, bytes_lost, pto_total;
} rudp_recovery;

/* Returns RUDP_OK or RUDP_ERR_NOMEM. */
int rudp_recovery_init(rudp_recovery *r, const rudp_recovery_config *cfg, rudp_tstamp now);
void rudp_recovery_free(rudp_recovery *r);

/* Shrinks the ring while the live window fills at most a quarter of it
 * (never below its initial size), once the records done or lost long
 * enough by |now| have left it: a session whose flight was large once does
 * not keep its ring.  For a periodic timer; a failed allocation keeps the
 * ring as it was. */
void rudp_recovery_trim(rudp_recovery *r, rudp_tstamp now);

/* Returns the record to fill for the next packet (pn = next_pn, frames
 * empty, state FREE), growing the ring if needed; NULL on RUDP_ERR_NOMEM.
 * Nothing is committed until rudp_recovery_on_sent(). */
rudp_sent_pkt *rudp_recovery_prepare(rudp_recovery *r);

/* Commits the record returned by prepare: sets time_sent, state, counts it
 * in flight, advances next_pn.  Non-ack-eliciting packets that are not
 * in_flight are recorded too (for ack_largest pruning). */
void rudp_recovery_on_sent(rudp_recovery *r, rudp_sent_pkt *pkt, rudp_tstamp now);

/* Processes an ACK frame received at |now|: reports newly acknowledged
 * packets (on_acked), updates RTT from the largest when it is newly acked and
 * ack-eliciting, detects losses (on_lost), feeds the congestion controller,
 * resets pto_count.  Returns RUDP_OK or RUDP_ERR_PROTOCOL when it acknowledges
 * a packet number never sent. */
int rudp_recovery_on_ack(rudp_recovery *r, const rudp_ack_frame *ack, rudp_tstamp now,
                         const rudp_recovery_handler *h);

/* Returns when the loss-detection timer fires (loss_time, else PTO if any
 * ack-eliciting packet is in flight or the handshake is unconfirmed and
 * |client_unconfirmed| says so), or RUDP_TSTAMP_NEVER. */
rudp_tstamp rudp_recovery_deadline(const rudp_recovery *r, bool client_unconfirmed);

/* Runs the loss-detection timer at |now|.  Returns the number of probe
 * packets (0, 1 or 2) the session must send now regardless of the congestion
 * window: 0 when the timer was a time-threshold loss (losses reported through
 * |h|), else the PTO count is increased and 2 probes are asked for (1 before
 * the handshake). */
int rudp_recovery_on_timeout(rudp_recovery *r, rudp_tstamp now, bool client_unconfirmed,
                             const rudp_recovery_handler *h);

/* Returns the oldest outstanding ack-eliciting packet, or NULL (a PTO probe
 * re-sends its data). */
const rudp_sent_pkt *rudp_recovery_oldest_outstanding(const rudp_recovery *r);

/* Returns how many more bytes the congestion window allows in flight now. */
uint64_t rudp_recovery_cwnd_room(const rudp_recovery *r);

/* Tells the rate sampler the sender is application-limited: it had window
 * room but nothing to send, so the rate samples of the current flight
 * measure the application, not the path. */
void rudp_recovery_on_app_limited(rudp_recovery *r);

/* Returns the current PTO duration including backoff.  The peer's
 * max_ack_delay becomes RUDP_ACK_NOW_DELAY when the newest ack-eliciting
 * packet carried a PING (ack_now), which the peer acknowledges that soon. */
rudp_tstamp rudp_recovery_pto(const rudp_recovery *r);

#endif /* RUDP_RECOVERY_H */
