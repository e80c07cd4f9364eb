/*
 * recovery.c — sent-packet records, ACK processing and loss detection for one
 * packet-number space, after RFC 9002 §6, §7.6 and appendix A.
 *
 * Records.  Every packet written gets a rudp_sent_pkt in a ring indexed by
 * pn & (cap - 1).  The live window is [oldest_pn, next_pn): oldest_pn moves
 * past records that are DONE (acknowledged or lost), and when the window
 * would fill the ring, the ring doubles and the window is laid out again.
 * Growth is the only allocation, so a session in steady state allocates
 * nothing per packet (like ngtcp2's rtb on its objalloc).
 *
 * ACKs (appendix A.7).  Each range is clamped to the live window before it
 * is walked, so an ACK covering millions of old packet numbers costs only
 * the window.  Newly acknowledged records leave the flight; when the largest
 * acknowledged is among them and one of them was ack-eliciting, its send
 * time gives an RTT sample (§5.1).  Losses are then detected, and only after
 * them are the acknowledged packets credited to the congestion controller,
 * so packets acknowledged by the ACK that reveals a loss do not grow the
 * window (appendix A.7 calls OnPacketsLost before OnPacketsAcked).  A
 * transient state marks the records acknowledged by the ACK being
 * processed between those two steps.  The ring follows the largest flight
 * up, and rudp_recovery_trim() brings it back down (halving while the live
 * window fills at most a quarter of it) once the flight is small again.
 *
 * Loss detection (§6.1, appendix A.10).  A packet below the largest
 * acknowledged is lost once kPacketThreshold (3) later packets are
 * acknowledged, or once it was sent at least loss_delay =
 * max(9/8 * max(latest_rtt, smoothed_rtt), kGranularity) ago; otherwise the
 * earliest time it would qualify arms loss_time.  The lost packets of one
 * detection pass make one congestion event, dated by the latest send time
 * among them.  Persistent congestion (§7.6) is declared when two lost
 * ack-eliciting packets, both sent after the first RTT sample, span more
 * than 3 * (smoothed + max(4 rttvar, kGranularity) + max_ack_delay) and
 * every packet sent between them was lost in the same pass.
 *
 * The probe timeout (§6.2) is srtt + max(4 rttvar, kGranularity) +
 * max_ack_delay, doubled for each consecutive expiry (pto_count), counted
 * from the last ack-eliciting packet sent; an ACK that acknowledges
 * something new resets the backoff.  Unlike RFC 9002, the backed-off value
 * is capped at RUDP_MAX_PTO (or the unbacked PTO when that is larger), as
 * Linux caps its RTO: a tunnel must notice a healed path or a peer that was
 * only unlucky within seconds, and the idle timeout, not the backoff,
 * decides when a silent peer is dead.  When the timer expires the session
 * sends two probes (one before the handshake completes).
 *
 * Delivery rate (rate.c).  Each in-flight packet records the sampler's
 * delivery state when it is sent; the acknowledged and lost in-flight
 * packets of an ACK feed the sampler, and once per ACK that acknowledged
 * something the congestion controller's on_ack_sample hook (BBR) gets the
 * sample, after the per-packet on_ack calls.
 *
 * Handlers run inside rudp_recovery_on_ack() and rudp_recovery_on_timeout()
 * and must not call back into this module.
 */
#include <stdlib.h>
#include <string.h>

#include "recovery.h"

#define REC_INITIAL_CAP 16 /* 4 KiB: an unvalidated session stays small */
#define REC_ACKED_NOW 3    /* state of a record acknowledged by the ACK in hand */
#define REC_MAX_BACKOFF 16
#define REC_PERSISTENT_THRESHOLD 3 /* kPersistentCongestionThreshold */

/* Tracks a run of consecutive lost packets for persistent congestion. */
typedef struct rec_pc_run {
    rudp_tstamp start, end; /* send times of its first and last ack-eliciting loss */
    bool open;
    bool found;
} rec_pc_run;

/* Returns the ring slot of |pn|. */
static rudp_sent_pkt *rec_slot(const rudp_recovery *r, uint64_t pn) {
    return &r->ring[pn & (r->cap - 1)];
}

/* Sets up |r| from |cfg| with an empty ring of REC_INITIAL_CAP records.
 * Returns RUDP_OK, RUDP_ERR_INVAL when cfg->max_datagram is 0, or
 * RUDP_ERR_NOMEM. */
int rudp_recovery_init(rudp_recovery *r, const rudp_recovery_config *cfg, rudp_tstamp now) {
    memset(r, 0, sizeof(*r));
    if (cfg->max_datagram == 0)
        return RUDP_ERR_INVAL;
    r->ring = calloc(REC_INITIAL_CAP, sizeof(*r->ring));
    if (r->ring == NULL)
        return RUDP_ERR_NOMEM;
    r->cap = REC_INITIAL_CAP;
    rudp_rtt_init(&r->rtt, cfg->initial_rtt);
    rudp_cc_init(&r->cc, cfg->cc, cfg->max_datagram, now);
    rudp_rate_init(&r->rate, now);
    r->max_ack_delay = cfg->max_ack_delay;
    r->largest_acked = RUDP_PN_NONE;
    r->loss_time = RUDP_TSTAMP_NEVER;
    r->now = now;
    r->last_ack_eliciting_time = now;
    r->first_rtt_sample_time = RUDP_TSTAMP_NEVER;
    return RUDP_OK;
}

/* Releases the ring; |r| must be initialised again before reuse. */
void rudp_recovery_free(rudp_recovery *r) {
    free(r->ring);
    r->ring = NULL;
    r->cap = 0;
}

/* Returns how long a packet declared lost is kept to recognise a late ACK
 * for it: its time threshold again, plus the peer's ACK delay. */
static rudp_tstamp rec_lost_hold(const rudp_recovery *r);

/* Moves oldest_pn past the records that are DONE, past LOST ones held
 * long enough (an ACK for them would have come), and past packets nothing
 * waits for (ACKs, keepalive PINGs) that went unacknowledged for a probe
 * timeout's ceiling more: a peer silent for hours must not make the ring
 * grow by one record per keepalive. */
static void rec_advance_oldest(rudp_recovery *r) {
    rudp_tstamp hold = rec_lost_hold(r);
    while (r->oldest_pn < r->next_pn) {
        rudp_sent_pkt *p = rec_slot(r, r->oldest_pn);
        if (p->state == RUDP_SENT_LOST && p->time_sent + hold <= r->now)
            p->state = RUDP_SENT_DONE;
        if (p->state == RUDP_SENT_OUTSTANDING && !p->ack_eliciting &&
            p->time_sent + hold + RUDP_MAX_PTO <= r->now)
            p->state = RUDP_SENT_DONE;
        if (p->state != RUDP_SENT_DONE)
            return;
        r->oldest_pn++;
    }
}

/* Moves the ring to one of |cap| records (a power of two larger than the
 * live window) and lays the live window out again.  Returns RUDP_OK or
 * RUDP_ERR_NOMEM (the old ring is then kept). */
static int rec_resize(rudp_recovery *r, uint64_t cap) {
    rudp_sent_pkt *ring;

    if (cap > SIZE_MAX / sizeof(*ring))
        return RUDP_ERR_NOMEM;
    ring = calloc((size_t)cap, sizeof(*ring));
    if (ring == NULL)
        return RUDP_ERR_NOMEM;
    for (uint64_t pn = r->oldest_pn; pn < r->next_pn; pn++)
        ring[pn & (cap - 1)] = *rec_slot(r, pn);
    free(r->ring);
    r->ring = ring;
    r->cap = cap;
    return RUDP_OK;
}

/* Returns the zeroed record for next_pn (state FREE, no frames, ack_largest
 * RUDP_PN_NONE), growing the ring when the window fills it; NULL on
 * RUDP_ERR_NOMEM. */
rudp_sent_pkt *rudp_recovery_prepare(rudp_recovery *r) {
    rudp_sent_pkt *p;

    rec_advance_oldest(r);
    if (r->next_pn - r->oldest_pn >= r->cap && rec_resize(r, r->cap * 2) != RUDP_OK)
        return NULL;
    p = rec_slot(r, r->next_pn);
    memset(p, 0, sizeof(*p));
    p->pn = r->next_pn;
    p->ack_largest = RUDP_PN_NONE;
    return p;
}

void rudp_recovery_trim(rudp_recovery *r, rudp_tstamp now) {
    uint64_t cap = r->cap;

    if (now > r->now) /* lost records age on an idle session too */
        r->now = now;
    rec_advance_oldest(r);
    while (cap > REC_INITIAL_CAP && (r->next_pn - r->oldest_pn) * 4 <= cap)
        cap /= 2;
    if (cap < r->cap)
        rec_resize(r, cap);
}

/* Commits |pkt| (from prepare) as sent at |now|: it becomes OUTSTANDING,
 * counts in flight and toward the PTO as its flags say, and next_pn
 * advances. */
void rudp_recovery_on_sent(rudp_recovery *r, rudp_sent_pkt *pkt, rudp_tstamp now) {
    r->now = now;
    pkt->time_sent = now;
    pkt->state = RUDP_SENT_OUTSTANDING;
    r->next_pn = pkt->pn + 1;
    r->pkts_sent++;
    if (pkt->in_flight) {
        rudp_rate_on_sent(&r->rate, &pkt->rate, r->bytes_in_flight, now);
        r->bytes_in_flight += pkt->size;
    }
    if (pkt->ack_eliciting) {
        r->last_ack_eliciting_time = now;
        r->last_ack_now = pkt->ack_now;
        r->ack_eliciting_in_flight++;
    }
}

/* Takes |p| out of the bytes and ack-eliciting counts of the flight. */
static void rec_leave_flight(rudp_recovery *r, const rudp_sent_pkt *p) {
    if (p->in_flight)
        r->bytes_in_flight -= p->size < r->bytes_in_flight ? p->size : r->bytes_in_flight;
    if (p->ack_eliciting && r->ack_eliciting_in_flight > 0)
        r->ack_eliciting_in_flight--;
}

/* Returns RUDP_OK when |ack| has 1..RUDP_ACK_MAX_RANGES well-formed,
 * strictly descending ranges acknowledging only packets sent, else
 * RUDP_ERR_PROTOCOL. */
static int rec_check_ack(const rudp_recovery *r, const rudp_ack_frame *ack) {
    if (ack->nranges == 0 || ack->nranges > RUDP_ACK_MAX_RANGES)
        return RUDP_ERR_PROTOCOL;
    if (ack->ranges[0].largest >= r->next_pn)
        return RUDP_ERR_PROTOCOL;
    for (uint32_t i = 0; i < ack->nranges; i++) {
        if (ack->ranges[i].smallest > ack->ranges[i].largest)
            return RUDP_ERR_PROTOCOL;
        if (i > 0 && ack->ranges[i].largest >= ack->ranges[i - 1].smallest)
            return RUDP_ERR_PROTOCOL;
    }
    return RUDP_OK;
}

/* Clamps range |rg| to the live window into [*lo, *hi].  Returns false when
 * nothing of it is left. */
static bool rec_clamp(const rudp_recovery *r, const rudp_ack_range *rg, uint64_t *lo,
                      uint64_t *hi) {
    *lo = rg->smallest > r->oldest_pn ? rg->smallest : r->oldest_pn;
    *hi = rg->largest < r->next_pn - 1 ? rg->largest : r->next_pn - 1;
    return *lo <= *hi;
}

/* A packet declared lost was acknowledged after all: the path reorders.
 * The packet threshold goes off and the time threshold widens a step (RFC
 * 8985 §6.2: reo_wnd grows by min_rtt/4 per round with a spurious loss). */
static void rec_on_spurious(rudp_recovery *r, rudp_sent_pkt *p) {
    p->state = RUDP_SENT_DONE;
    r->spurious_losses++;
    if (r->reorder_calm > 0 || !r->reorder_seen) {
        if (r->reorder_steps < RUDP_REORDER_MAX_STEPS)
            r->reorder_steps++;
        r->reorder_seen = true;
    }
    r->reorder_calm = 0;
}

/* Marks the OUTSTANDING records acknowledged by |ack| as REC_ACKED_NOW and
 * takes them out of the flight; LOST ones it acknowledges were spurious
 * losses.  Returns how many outstanding ones there were and sets
 * *eliciting when one was ack-eliciting. */
static uint64_t rec_mark_acked(rudp_recovery *r, const rudp_ack_frame *ack,
                               bool *eliciting) {
    uint64_t n = 0, lo, hi;

    *eliciting = false;
    for (uint32_t i = ack->nranges; i-- > 0;) {
        if (!rec_clamp(r, &ack->ranges[i], &lo, &hi))
            continue;
        for (uint64_t pn = lo; pn <= hi; pn++) {
            rudp_sent_pkt *p = rec_slot(r, pn);
            if (p->state == RUDP_SENT_LOST)
                rec_on_spurious(r, p);
            if (p->state != RUDP_SENT_OUTSTANDING)
                continue;
            p->state = REC_ACKED_NOW;
            rec_leave_flight(r, p);
            *eliciting |= p->ack_eliciting != 0;
            n++;
        }
    }
    return n;
}

/* Makes the records marked by rec_mark_acked DONE, credits the in-flight
 * ones to the congestion controller and reports each through |h|, in
 * ascending packet-number order. */
static void rec_finish_acked(rudp_recovery *r, const rudp_ack_frame *ack, rudp_tstamp now,
                             const rudp_recovery_handler *h) {
    uint64_t lo, hi;

    for (uint32_t i = ack->nranges; i-- > 0;) {
        if (!rec_clamp(r, &ack->ranges[i], &lo, &hi))
            continue;
        for (uint64_t pn = lo; pn <= hi; pn++) {
            rudp_sent_pkt *p = rec_slot(r, pn);
            if (p->state != REC_ACKED_NOW)
                continue;
            p->state = RUDP_SENT_DONE;
            if (p->in_flight) {
                rudp_rate_on_acked(&r->rate, &p->rate, p->size, p->time_sent, now);
                r->cc.ops->on_ack(&r->cc, p->size, p->time_sent, &r->rtt, now);
            }
            if (h != NULL && h->on_acked != NULL)
                h->on_acked(h->user, p, now);
        }
    }
}

/* Returns the time-threshold delay: max(9/8 * max(latest, smoothed),
 * kGranularity) (RFC 9002 §6.1.2), widened by min_rtt/4 for each reordering
 * step, at most twice max(latest, smoothed). */
static rudp_tstamp rec_loss_delay(const rudp_recovery *r) {
    rudp_tstamp base = r->rtt.latest > r->rtt.smoothed ? r->rtt.latest : r->rtt.smoothed;
    rudp_tstamp delay = base * 9 / 8 + r->reorder_steps * (r->rtt.min / 4);

    if (delay > 2 * base)
        delay = 2 * base;
    return delay > RUDP_GRANULARITY ? delay : RUDP_GRANULARITY;
}

static rudp_tstamp rec_lost_hold(const rudp_recovery *r) {
    return rec_loss_delay(r) + r->max_ack_delay;
}

/* Returns the persistent-congestion duration (RFC 9002 §7.6.1). */
static rudp_tstamp rec_pc_duration(const rudp_recovery *r) {
    return rudp_rtt_pto(&r->rtt, r->max_ack_delay) * REC_PERSISTENT_THRESHOLD;
}

/* Ends the current run of consecutive losses (a packet between was
 * acknowledged or not lost). */
static void rec_pc_break(rec_pc_run *run) {
    run->open = false;
}

/* Adds lost packet |p| to the run; the run proves persistent congestion
 * once its ack-eliciting losses, all sent after the first RTT sample, span
 * more than |duration|. */
static void rec_pc_add(const rudp_recovery *r, rec_pc_run *run, const rudp_sent_pkt *p,
                       rudp_tstamp duration) {
    if (!p->ack_eliciting || r->first_rtt_sample_time == RUDP_TSTAMP_NEVER ||
        p->time_sent <= r->first_rtt_sample_time)
        return;
    if (!run->open) {
        run->open = true;
        run->start = p->time_sent;
    }
    run->end = p->time_sent;
    if (run->end - run->start > duration)
        run->found = true;
}

/* Declares |p| lost at |now|: it leaves the flight, is counted and is
 * reported through |h|. */
static void rec_declare_lost(rudp_recovery *r, rudp_sent_pkt *p, rudp_tstamp now,
                             const rudp_recovery_handler *h) {
    p->state = RUDP_SENT_LOST;
    rec_leave_flight(r, p);
    if (p->in_flight)
        rudp_rate_on_lost(&r->rate, p->size);
    r->pkts_lost++;
    r->bytes_lost += p->size;
    if (h != NULL && h->on_lost != NULL)
        h->on_lost(h->user, p, now);
}

/* Returns true when outstanding |p| is lost at |now| by the packet
 * threshold (unless the path was seen to reorder) or the time threshold
 * (RFC 9002 §6.1). */
static bool rec_is_lost(const rudp_recovery *r, const rudp_sent_pkt *p, rudp_tstamp now,
                        rudp_tstamp loss_delay) {
    return (!r->reorder_seen && r->largest_acked >= p->pn + RUDP_PACKET_THRESHOLD) ||
           p->time_sent + loss_delay <= now;
}

/* A loss episode passed: after RUDP_REORDER_CALM of them without a
 * spurious loss, the reordering tolerance steps back (and, at zero, the
 * packet threshold returns). */
static void rec_reorder_calm(rudp_recovery *r) {
    if (!r->reorder_seen || ++r->reorder_calm < RUDP_REORDER_CALM)
        return;
    r->reorder_calm = 0;
    if (r->reorder_steps > 0)
        r->reorder_steps--;
    if (r->reorder_steps == 0)
        r->reorder_seen = false;
}

/* Detects and removes lost packets below largest_acked (RFC 9002 appendix
 * A.10), re-arms loss_time for the others, then signals one congestion
 * event for the batch and persistent congestion when it is proven
 * (appendix B.8). */
static void rec_detect_lost(rudp_recovery *r, rudp_tstamp now,
                            const rudp_recovery_handler *h) {
    rudp_tstamp delay = rec_loss_delay(r), duration = rec_pc_duration(r);
    rudp_tstamp last_lost_sent = 0;
    bool lost_in_flight = false;
    rec_pc_run run = {0};

    r->loss_time = RUDP_TSTAMP_NEVER;
    if (r->largest_acked == RUDP_PN_NONE)
        return;
    for (uint64_t pn = r->oldest_pn; pn < r->largest_acked; pn++) {
        rudp_sent_pkt *p = rec_slot(r, pn);
        if (p->state != RUDP_SENT_OUTSTANDING) {
            rec_pc_break(&run);
        } else if (rec_is_lost(r, p, now, delay)) {
            if (p->in_flight) {
                lost_in_flight = true;
                last_lost_sent =
                    p->time_sent > last_lost_sent ? p->time_sent : last_lost_sent;
            }
            rec_declare_lost(r, p, now, h);
            rec_pc_add(r, &run, p, duration);
        } else {
            rec_pc_break(&run);
            if (p->time_sent + delay < r->loss_time)
                r->loss_time = p->time_sent + delay;
        }
    }
    if (lost_in_flight) {
        rec_reorder_calm(r);
        r->cc.ops->on_congestion(&r->cc, last_lost_sent, &r->rtt, now);
    }
    if (run.found)
        r->cc.ops->on_persistent_congestion(&r->cc, now);
}

/* Feeds the RTT estimator with |latest| and the peer's |ack_delay_us| and
 * remembers when the first sample was taken. */
static void rec_sample_rtt(rudp_recovery *r, rudp_tstamp latest, uint32_t ack_delay_us,
                           rudp_tstamp now) {
    rudp_rtt_update(&r->rtt, latest, RUDP_US(ack_delay_us), r->max_ack_delay,
                    r->handshake_confirmed);
    if (r->first_rtt_sample_time == RUDP_TSTAMP_NEVER)
        r->first_rtt_sample_time = now;
}

/* Returns the OUTSTANDING record of |pn|, or NULL when it is outside the
 * window or no longer outstanding. */
static const rudp_sent_pkt *rec_outstanding(const rudp_recovery *r, uint64_t pn) {
    const rudp_sent_pkt *p;

    if (pn < r->oldest_pn || pn >= r->next_pn)
        return NULL;
    p = rec_slot(r, pn);
    return p->state == RUDP_SENT_OUTSTANDING ? p : NULL;
}

/* Completes the ACK's delivery-rate sample and hands it to the congestion
 * controller's on_ack_sample hook, when it has one. */
static void rec_rate_sample(rudp_recovery *r, rudp_tstamp now) {
    rudp_rate_ack_end(&r->rate, r->rtt.min);
    if (r->cc.ops->on_ack_sample != NULL)
        r->cc.ops->on_ack_sample(&r->cc, &r->rate, r->bytes_in_flight, &r->rtt, now);
}

/* Processes |ack| received at |now| (RFC 9002 appendix A.7).  Returns
 * RUDP_OK, or RUDP_ERR_PROTOCOL (nothing changed) when it acknowledges a
 * packet never sent or its ranges are malformed. */
int rudp_recovery_on_ack(rudp_recovery *r, const rudp_ack_frame *ack, rudp_tstamp now,
                         const rudp_recovery_handler *h) {
    const rudp_sent_pkt *lp;
    rudp_tstamp largest_sent = 0;
    uint64_t largest;
    bool eliciting;
    int rc = rec_check_ack(r, ack);

    if (rc != RUDP_OK)
        return rc;
    r->now = now;
    largest = ack->ranges[0].largest;
    lp = rec_outstanding(r, largest);
    if (lp != NULL)
        largest_sent = lp->time_sent;
    if (r->largest_acked == RUDP_PN_NONE || largest > r->largest_acked)
        r->largest_acked = largest;
    rudp_rate_ack_begin(&r->rate, r->bytes_in_flight);
    if (rec_mark_acked(r, ack, &eliciting) == 0) {
        rec_advance_oldest(r); /* it may have acknowledged lost ones */
        return RUDP_OK;
    }
    if (lp != NULL && eliciting)
        rec_sample_rtt(r, now > largest_sent ? now - largest_sent : 0, ack->ack_delay_us,
                       now);
    rec_detect_lost(r, now, h);
    rec_finish_acked(r, ack, now, h);
    rec_rate_sample(r, now);
    r->pto_count = 0;
    rec_advance_oldest(r);
    return RUDP_OK;
}

/* Returns the current PTO: the RTT estimator's, doubled pto_count times
 * (at most REC_MAX_BACKOFF), capped at max(RUDP_MAX_PTO, unbacked PTO). */
rudp_tstamp rudp_recovery_pto(const rudp_recovery *r) {
    uint32_t shift = r->pto_count < REC_MAX_BACKOFF ? r->pto_count : REC_MAX_BACKOFF;
    /* A packet the peer acknowledges within RUDP_ACK_NOW_DELAY needs no
     * room for its full ACK delay. */
    rudp_tstamp base =
        rudp_rtt_pto(&r->rtt, r->last_ack_now ? RUDP_ACK_NOW_DELAY : r->max_ack_delay);
    rudp_tstamp cap = base > RUDP_MAX_PTO ? base : RUDP_MAX_PTO;
    rudp_tstamp pto = base << shift;

    return pto < cap ? pto : cap;
}

/* Returns loss_time when armed; else, when an ack-eliciting packet is in
 * flight or |client_unconfirmed|, the last ack-eliciting send time (the
 * creation time before any) plus the backed-off PTO; else
 * RUDP_TSTAMP_NEVER. */
rudp_tstamp rudp_recovery_deadline(const rudp_recovery *r, bool client_unconfirmed) {
    rudp_tstamp pto;

    if (r->loss_time != RUDP_TSTAMP_NEVER)
        return r->loss_time;
    if (r->ack_eliciting_in_flight == 0 && !client_unconfirmed)
        return RUDP_TSTAMP_NEVER;
    pto = rudp_recovery_pto(r);
    if (r->last_ack_eliciting_time > RUDP_TSTAMP_NEVER - 1 - pto)
        return RUDP_TSTAMP_NEVER - 1;
    return r->last_ack_eliciting_time + pto;
}

/* Runs the loss-detection timer at |now|.  Returns 0 when it has not
 * expired or was the time threshold (losses reported through |h|), else
 * backs the PTO off and returns the probes to send: 2, or 1 when
 * |client_unconfirmed|. */
int rudp_recovery_on_timeout(rudp_recovery *r, rudp_tstamp now, bool client_unconfirmed,
                             const rudp_recovery_handler *h) {
    rudp_tstamp deadline = rudp_recovery_deadline(r, client_unconfirmed);

    if (deadline == RUDP_TSTAMP_NEVER || now < deadline)
        return 0;
    r->now = now;
    if (r->loss_time != RUDP_TSTAMP_NEVER) {
        rec_detect_lost(r, now, h);
        rec_advance_oldest(r);
        return 0;
    }
    r->pto_count++;
    r->pto_total++;
    return client_unconfirmed ? 1 : 2;
}

/* Returns the lowest-numbered OUTSTANDING ack-eliciting record, or NULL. */
const rudp_sent_pkt *rudp_recovery_oldest_outstanding(const rudp_recovery *r) {
    for (uint64_t pn = r->oldest_pn; pn < r->next_pn; pn++) {
        const rudp_sent_pkt *p = rec_slot(r, pn);
        if (p->state == RUDP_SENT_OUTSTANDING && p->ack_eliciting)
            return p;
    }
    return NULL;
}

/* Returns how many more bytes the congestion window allows in flight. */
uint64_t rudp_recovery_cwnd_room(const rudp_recovery *r) {
    return r->cc.cwnd > r->bytes_in_flight ? r->cc.cwnd - r->bytes_in_flight : 0;
}

/* Marks the rate sampler application-limited up to the current flight. */
void rudp_recovery_on_app_limited(rudp_recovery *r) {
    rudp_rate_on_app_limited(&r->rate, r->bytes_in_flight);
}
