/*
 * acktr.h — tracking received packet numbers and deciding when to ACK
 * (RFC 9000 §13.2, RFC 9002 §6.2 for max_ack_delay).
 *
 * The receiver remembers which packet numbers arrived (as ranges), drops
 * duplicates, and owes an ACK after every second ack-eliciting packet, at
 * once when a packet arrives out of order, and otherwise within
 * max_ack_delay.  Ranges the peer has seen acknowledged are forgotten, and
 * anything older than the forgotten floor is treated as a duplicate.
 */
#ifndef RUDP_ACKTR_H
#define RUDP_ACKTR_H

#include "ranges.h"
#include "wire.h"

#define RUDP_ACKTR_MAX_RANGES 64
#define RUDP_ACK_SENT_RANGES 8 /* ranges an ACK riding on other frames carries */

typedef struct rudp_acktr {
    rudp_ranges recv;         /* packet numbers received, above floor */
    uint64_t floor;           /* below this: forgotten, drop as duplicate */
    uint64_t largest;         /* largest received, RUDP_PN_NONE if none */
    rudp_tstamp largest_time; /* when it arrived */
    uint32_t eliciting;       /* ack-eliciting packets not yet acknowledged */
    bool dirty;               /* received something since the last ACK sent */
    bool immediate;           /* the next ACK must not wait */
    rudp_tstamp deadline;     /* latest time to send the owed ACK, or NEVER */
} rudp_acktr;

void rudp_acktr_init(rudp_acktr *a);
void rudp_acktr_free(rudp_acktr *a);

/* Records packet |pn| received at |now|.  Returns RUDP_OK,
 * RUDP_ERR_DUPLICATE (already seen or below the floor: drop the packet) or
 * RUDP_ERR_NOMEM. */
int rudp_acktr_on_pkt(rudp_acktr *a, uint64_t pn, bool ack_eliciting,
                      rudp_tstamp max_ack_delay, rudp_tstamp now);

/* The packet just recorded (at |now|) asks for its ACK within
 * RUDP_ACK_NOW_DELAY: it carried a PING (a probe, a keepalive, or the tail
 * of a flight, whose sender's timer leaves room for that delay only).  The
 * short wait lets an answer the program writes at once carry the ACK. */
void rudp_acktr_ack_now(rudp_acktr *a, rudp_tstamp now);

/* Returns when an ACK must go out at the latest (|now|-like 0 when at once),
 * or RUDP_TSTAMP_NEVER when none is owed. */
rudp_tstamp rudp_acktr_deadline(const rudp_acktr *a);

/* Returns true when an ACK frame has news for the peer. */
static inline bool rudp_acktr_has_news(const rudp_acktr *a) {
    return a->dirty && a->recv.n > 0;
}

/* Fills |f| with the received ranges, newest first (at most |max_ranges|,
 * itself at most RUDP_ACK_MAX_RANGES) and the delay since the largest
 * arrived. */
void rudp_acktr_fill(const rudp_acktr *a, rudp_ack_frame *f, rudp_tstamp now,
                     uint32_t max_ranges);

/* The ACK just built was sent: nothing is owed any more. */
void rudp_acktr_on_ack_sent(rudp_acktr *a);

/* The peer acknowledged a packet of ours that carried an ACK whose largest
 * was |largest|: ranges below it need never be sent again. */
void rudp_acktr_on_ack_acked(rudp_acktr *a, uint64_t largest);

#endif /* RUDP_ACKTR_H */
