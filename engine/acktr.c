/*
 * acktr.c — received packet numbers and the ACK schedule.
 *
 * Follows RFC 9000 §13.2.1–13.2.4: an ACK is owed for ack-eliciting packets;
 * it is sent at once after the second one, or when a packet arrives out of
 * order (a gap below it, or lower than the largest), and otherwise no later
 * than max_ack_delay after the first.  An ACK that rides on data carries
 * the newest RUDP_ACK_SENT_RANGES ranges (older ones were reported while
 * they were among the newest, and repeating 32 ranges on every packet cost
 * a fifth of the payload at 5 % loss); an ACK sent alone carries up to 32,
 * so a packet that fills an old hole, late because the path reorders, is
 * still reported and its sender learns that its loss was spurious.  Older
 * state is pruned once the peer has acknowledged a packet carrying an ACK
 * that covered it (§13.2.4), and the tracker never holds more than
 * RUDP_ACKTR_MAX_RANGES ranges.
 */
#include "acktr.h"

#include "recovery.h"

void rudp_acktr_init(rudp_acktr *a) {
    rudp_ranges_init(&a->recv);
    a->floor = 0;
    a->largest = RUDP_PN_NONE;
    a->largest_time = 0;
    a->eliciting = 0;
    a->dirty = false;
    a->immediate = false;
    a->deadline = RUDP_TSTAMP_NEVER;
}

void rudp_acktr_free(rudp_acktr *a) {
    rudp_ranges_free(&a->recv);
}

/* Returns true when |pn| arriving now leaves a gap or fills one: the peer
 * should hear about it at once (RFC 9000 §13.2.1). */
static bool acktr_out_of_order(const rudp_acktr *a, uint64_t pn) {
    if (a->largest == RUDP_PN_NONE)
        return false;
    return pn < a->largest || pn > a->largest + 1;
}

int rudp_acktr_on_pkt(rudp_acktr *a, uint64_t pn, bool ack_eliciting,
                      rudp_tstamp max_ack_delay, rudp_tstamp now) {
    if (pn < a->floor || rudp_ranges_contains(&a->recv, pn))
        return RUDP_ERR_DUPLICATE;
    bool reordered = acktr_out_of_order(a, pn);
    int rv = rudp_ranges_add(&a->recv, pn, pn + 1);
    if (rv != RUDP_OK)
        return rv;
    while (a->recv.n > RUDP_ACKTR_MAX_RANGES) {
        a->floor = a->recv.v[0].end;
        rudp_ranges_pop_front(&a->recv);
    }
    if (a->largest == RUDP_PN_NONE || pn > a->largest) {
        a->largest = pn;
        a->largest_time = now;
    }
    a->dirty = true;
    if (!ack_eliciting)
        return RUDP_OK;
    a->eliciting++;
    if (a->eliciting >= 2 || reordered)
        a->immediate = true;
    if (a->deadline == RUDP_TSTAMP_NEVER)
        a->deadline = now + max_ack_delay;
    return RUDP_OK;
}

void rudp_acktr_ack_now(rudp_acktr *a, rudp_tstamp now) {
    if (a->eliciting > 0 && a->deadline > now + RUDP_ACK_NOW_DELAY)
        a->deadline = now + RUDP_ACK_NOW_DELAY;
}

rudp_tstamp rudp_acktr_deadline(const rudp_acktr *a) {
    if (a->eliciting == 0)
        return RUDP_TSTAMP_NEVER;
    return a->immediate ? 0 : a->deadline;
}

void rudp_acktr_fill(const rudp_acktr *a, rudp_ack_frame *f, rudp_tstamp now,
                     uint32_t max_ranges) {
    uint32_t n = 0;
    if (max_ranges > RUDP_ACK_MAX_RANGES)
        max_ranges = RUDP_ACK_MAX_RANGES;
    for (uint32_t i = a->recv.n; i > 0 && n < max_ranges; i--, n++) {
        f->ranges[n].largest = a->recv.v[i - 1].end - 1;
        f->ranges[n].smallest = a->recv.v[i - 1].start;
    }
    f->nranges = n;
    rudp_tstamp delay = now > a->largest_time ? now - a->largest_time : 0;
    uint64_t us = delay / 1000;
    f->ack_delay_us = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

void rudp_acktr_on_ack_sent(rudp_acktr *a) {
    a->eliciting = 0;
    a->dirty = false;
    a->immediate = false;
    a->deadline = RUDP_TSTAMP_NEVER;
}

void rudp_acktr_on_ack_acked(rudp_acktr *a, uint64_t largest) {
    /* Keep the range holding |largest| whole so the largest stays reported. */
    if (largest == RUDP_PN_NONE || a->recv.n == 0)
        return;
    uint64_t below = largest;
    for (uint32_t i = 0; i < a->recv.n; i++) {
        if (a->recv.v[i].start <= largest && largest < a->recv.v[i].end) {
            below = a->recv.v[i].start;
            break;
        }
    }
    if (below > a->floor) {
        rudp_ranges_remove_below(&a->recv, below);
        a->floor = below;
    }
}
