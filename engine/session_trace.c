/*
 * session_trace.c — what a session tells its trace hook (rudp/trace.h),
 * the raw material of the runtime's qlog files (docs/QLOG.md).
 *
 * Nothing here runs unless the session has a hook: every caller tests
 * rudp_sess_traced() first, so the cost without one is a predictable branch
 * per site.  Nothing here formats or writes either: each function fills a
 * rudp_trace_event and calls the hook, which the runtime turns into JSON
 * (the protocol core stays sans-IO, DESIGN.md §2 rule 1).
 *
 * A sent packet is reported from its own bytes: its frames are decoded
 * from the plaintext just before it is sealed, so the report shows exactly
 * what went on the wire, PADDING and PINGs included, without any
 * bookkeeping in the packet builder.  A received packet is reported from
 * the frames it was decoded into, before they are applied, so what they
 * cause (an ACK's losses and new figures) follows it in the trace.  A lost
 * packet is reported from its sent-packet record, which keeps only the
 * frames recovery must re-send; its DATA is listed, control frames are not
 * (they go again with current values, not as copies).  Its type is not in
 * the record either, but a session's packet types only move forward
 * (INITIAL or HANDSHAKE, then PROTECTED), so the first PROTECTED packet
 * number tells them apart.
 *
 * States are reported as they change: the session's through
 * rudp_sess_set_state, the congestion controller's after each ACK and
 * recovery timer (with the recovery figures), a stream's wherever its
 * derived state (docs/PROTOCOL.md "Stream life cycle") can move: made,
 * sending, acknowledged, an event for the application, aborted, freed.
 */
#include "session.h"

#include <string.h>

_Static_assert((int)RUDP_TRACE_FRAME_NEW_TICKET == (int)RUDP_FRAME_NEW_TICKET &&
                   (int)RUDP_TRACE_FRAME_ACK == (int)RUDP_FRAME_ACK &&
                   (int)RUDP_TRACE_PKT_STATELESS_RESET == (int)RUDP_PKT_STATELESS_RESET &&
                   RUDP_TRACE_FLAG_FIN == RUDP_FLAG_FIN,
               "trace.h mirrors the wire's numbers");
_Static_assert((int)RUDP_TRACE_SESSION_DONE == (int)RUDP_SESS_DONE,
               "trace.h mirrors the session states");

/* Hands |ev| (type and time set by the caller) to the hook. */
static void trace_emit(const rudp_session *s, const rudp_trace_event *ev) {
    s->settings.trace(s->settings.trace_user, ev);
}

/* Starts the report of packet |pn| of |type| to connection ID |dcid|. */
static void trace_pkt_init(rudp_trace_packet *tp, uint8_t type, uint64_t pn,
                           uint64_t dcid) {
    tp->type = type;
    tp->trigger = RUDP_TRACE_TRIGGER_NONE;
    tp->mtu_probe = false;
    tp->pn = pn;
    tp->dcid = dcid;
    tp->size = 0;
    tp->nframes = tp->nranges = 0;
}

/* Returns the next frame slot of |tp|, zeroed, or NULL when it is full. */
static rudp_trace_frame *trace_slot(rudp_trace_packet *tp, uint8_t type) {
    if (tp->nframes == RUDP_TRACE_MAX_FRAMES)
        return NULL;
    rudp_trace_frame *t = &tp->frames[tp->nframes++];
    memset(t, 0, sizeof(*t));
    t->type = type;
    return t;
}

/* Copies the ranges of ACK |a| into |tp| for frame |t| (as many as room
 * is left for). */
static void trace_ack(rudp_trace_packet *tp, rudp_trace_frame *t, const rudp_ack_frame *a) {
    t->code = a->ack_delay_us;
    t->ranges = &tp->ranges[tp->nranges];
    for (uint32_t i = 0; i < a->nranges && tp->nranges < RUDP_TRACE_MAX_RANGES; i++) {
        tp->ranges[tp->nranges].smallest = a->ranges[i].smallest;
        tp->ranges[tp->nranges].largest = a->ranges[i].largest;
        tp->nranges++;
        t->nranges++;
    }
}

/* Fills |t| from frame |f| (the fields rudp/trace.h lists per type). */
static void trace_fill(rudp_trace_packet *tp, rudp_trace_frame *t, const rudp_frame *f) {
    switch (f->type) {
    case RUDP_FRAME_ACK:
        trace_ack(tp, t, &f->u.ack);
        break;
    case RUDP_FRAME_SESSION:
        t->flags = f->u.session.flags;
        t->value = f->u.session.cid;
        break;
    case RUDP_FRAME_DATA:
        t->flags = f->u.data.flags;
        t->sid = f->u.data.sid;
        t->value = f->u.data.offset;
        t->len = f->u.data.len;
        break;
    case RUDP_FRAME_WINDOW_UPDATE:
        t->sid = f->u.window.sid;
        t->value = f->u.window.max_data;
        break;
    case RUDP_FRAME_RST:
        t->sid = f->u.rst.sid;
        t->code = f->u.rst.code;
        t->value = f->u.rst.final_size;
        break;
    case RUDP_FRAME_GOAWAY:
        t->code = f->u.goaway_code;
        break;
    case RUDP_FRAME_MAX_STREAMS:
        t->value = f->u.max_streams;
        break;
    case RUDP_FRAME_PATH_CHALLENGE:
    case RUDP_FRAME_PATH_RESPONSE:
        t->value = f->u.path_data;
        break;
    case RUDP_FRAME_LISTENING:
        t->code = f->u.listening;
        break;
    default: /* NEW_TICKET: its contents are secret */
        break;
    }
}

/* Lists the frames of |d| in |tp|, then its PINGs and PADDING (the decoder
 * counts those rather than keeping their place). */
static void trace_frames(rudp_trace_packet *tp, const rudp_decoded_pkt *d) {
    rudp_trace_frame *t;
    for (uint32_t i = 0; i < d->nframes; i++)
        if ((t = trace_slot(tp, d->frames[i].type)) != NULL)
            trace_fill(tp, t, &d->frames[i]);
    if (d->pings && (t = trace_slot(tp, RUDP_TRACE_FRAME_PING)) != NULL)
        t->len = d->pings;
    if (d->padding && (t = trace_slot(tp, RUDP_TRACE_FRAME_PADDING)) != NULL)
        t->len = d->padding > UINT16_MAX ? UINT16_MAX : (uint16_t)d->padding;
}

/* Reports |tp| as an event of |type|. */
static void trace_emit_pkt(const rudp_session *s, enum rudp_trace_type type,
                           const rudp_trace_packet *tp, rudp_tstamp now) {
    rudp_trace_event ev = {.type = type, .now = now, .u.pkt = tp};
    trace_emit(s, &ev);
}

ssize_t rudp_sess_trace_seal(rudp_session *s, uint8_t *buf, size_t len, size_t cap,
                             uint64_t pn, bool mtu_probe, rudp_tstamp now) {
    rudp_trace_packet tp;
    rudp_decoded_pkt d;
    size_t hdr = rudp_sess_hdr_len(s);
    trace_pkt_init(&tp, rudp_sess_pkt_type(s), pn, s->peer_cid);
    if (len > hdr && rudp_wire_decode_frames(buf + hdr, len - hdr, &d) == RUDP_OK)
        trace_frames(&tp, &d);
    tp.trigger = s->probes > 0 ? RUDP_TRACE_TRIGGER_PTO_PROBE : RUDP_TRACE_TRIGGER_NONE;
    tp.mtu_probe = mtu_probe;
    ssize_t n = rudp_sess_seal(s, buf, len, cap, pn);
    if (n < 0)
        return n;
    tp.size = (uint32_t)n;
    if (tp.type == RUDP_PKT_PROTECTED && s->trace_pn_1rtt == RUDP_PN_NONE)
        s->trace_pn_1rtt = pn;
    trace_emit_pkt(s, RUDP_TRACE_PACKET_SENT, &tp, now);
    return n;
}

void rudp_sess_trace_received(rudp_session *s, const rudp_decoded_pkt *d, size_t len,
                              rudp_tstamp now) {
    rudp_trace_packet tp;
    trace_pkt_init(&tp, d->hdr.type, d->hdr.pn, d->hdr.dcid);
    tp.size = (uint32_t)len;
    trace_frames(&tp, d);
    trace_emit_pkt(s, RUDP_TRACE_PACKET_RECEIVED, &tp, now);
}

void rudp_sess_trace_unsealed(rudp_session *s, const rudp_pkt_hdr *h, size_t len,
                              rudp_tstamp now) {
    rudp_trace_packet tp;
    trace_pkt_init(&tp, h->type, RUDP_PN_NONE, h->dcid);
    tp.size = (uint32_t)len;
    trace_emit_pkt(s, RUDP_TRACE_PACKET_RECEIVED, &tp, now);
}

void rudp_sess_trace_dropped(rudp_session *s, const rudp_pkt_hdr *h, uint64_t pn,
                             size_t len, int reason, rudp_tstamp now) {
    rudp_trace_event ev = {.type = RUDP_TRACE_PACKET_DROPPED, .now = now};
    ev.u.drop.type = h ? h->type : RUDP_TRACE_PKT_UNKNOWN;
    ev.u.drop.pn = pn;
    ev.u.drop.size = (uint32_t)len;
    ev.u.drop.reason = reason;
    trace_emit(s, &ev);
}

/* Returns the type packet |pn| was sent with (see the top of the file). */
static uint8_t trace_sent_type(const rudp_session *s, uint64_t pn) {
    if (pn >= s->trace_pn_1rtt)
        return RUDP_PKT_PROTECTED;
    return s->is_client ? RUDP_PKT_INITIAL : RUDP_PKT_HANDSHAKE;
}

/* Returns why recovery declared |p| lost: by the packet threshold when
 * that applies (RFC 9002 §6.1.1), else by the time threshold. */
static uint8_t trace_lost_why(const rudp_recovery *r, const rudp_sent_pkt *p) {
    bool by_count = !r->reorder_seen && r->largest_acked != RUDP_PN_NONE &&
                    r->largest_acked >= p->pn + RUDP_PACKET_THRESHOLD;
    return by_count ? RUDP_TRACE_TRIGGER_PACKET_THRESHOLD
                    : RUDP_TRACE_TRIGGER_TIME_THRESHOLD;
}

void rudp_sess_trace_lost(rudp_session *s, const rudp_sent_pkt *p, rudp_tstamp now) {
    rudp_trace_packet tp;
    trace_pkt_init(&tp, trace_sent_type(s, p->pn), p->pn, s->peer_cid);
    tp.size = p->size;
    tp.trigger = trace_lost_why(&s->rec, p);
    tp.mtu_probe = s->probe_size && p->pn == s->probe_pn;
    for (uint8_t i = 0; i < p->nframes; i++) {
        const rudp_sent_frame *fr = &p->frames[i];
        rudp_trace_frame *t;
        if (fr->kind != RUDP_SENT_DATA || !(t = trace_slot(&tp, RUDP_TRACE_FRAME_DATA)))
            continue;
        t->flags = fr->flags;
        t->sid = fr->sid;
        t->value = fr->offset;
        t->len = fr->len;
    }
    trace_emit_pkt(s, RUDP_TRACE_PACKET_LOST, &tp, now);
}

void rudp_sess_trace_recovery(rudp_session *s, rudp_tstamp now) {
    const rudp_recovery *r = &s->rec;
    rudp_trace_event ev = {.type = RUDP_TRACE_METRICS, .now = now};
    ev.u.metrics.min_rtt = r->rtt.min;
    ev.u.metrics.smoothed_rtt = r->rtt.smoothed;
    ev.u.metrics.latest_rtt = r->rtt.latest;
    ev.u.metrics.rtt_variance = r->rtt.var;
    ev.u.metrics.cwnd = r->cc.cwnd;
    ev.u.metrics.ssthresh = r->cc.ssthresh;
    ev.u.metrics.bytes_in_flight = r->bytes_in_flight;
    ev.u.metrics.pacing_rate =
        s->settings.pacing ? rudp_cc_pacing_rate(&r->cc, &r->rtt) : 0;
    ev.u.metrics.pto_count = r->pto_count;
    trace_emit(s, &ev);
    uint8_t cc = (uint8_t)rudp_cc_state(&r->cc);
    if (cc == s->trace_cc)
        return;
    ev = (rudp_trace_event){.type = RUDP_TRACE_CC_STATE, .now = now};
    ev.u.cc.from = s->trace_cc;
    ev.u.cc.to = cc;
    s->trace_cc = cc;
    trace_emit(s, &ev);
}

void rudp_sess_trace_stream(rudp_session *s, rudp_stream *st, bool freed) {
    uint8_t to = freed ? RUDP_TRACE_STREAM_NONE : (uint8_t)rudp_stream_state_of(st);
    if (to == st->trace_state && !freed)
        return;
    rudp_trace_event ev = {.type = RUDP_TRACE_STREAM_STATE, .now = s->now};
    ev.u.stream.sid = st->sid;
    ev.u.stream.from = st->trace_state;
    ev.u.stream.to = to;
    ev.u.stream.peer_reset = st->peer_rst;
    st->trace_state = to;
    trace_emit(s, &ev);
}

void rudp_sess_trace_state(rudp_session *s, uint8_t from) {
    rudp_trace_event ev = {.type = RUDP_TRACE_SESSION_STATE, .now = s->now};
    ev.u.session.from = from;
    ev.u.session.to = s->state;
    trace_emit(s, &ev);
}

void rudp_sess_trace_closed(rudp_session *s, int error) {
    rudp_trace_event ev = {.type = RUDP_TRACE_SESSION_CLOSED, .now = s->now};
    ev.u.closed.error = error;
    trace_emit(s, &ev);
}

void rudp_sess_trace_mtu(rudp_session *s, uint32_t from) {
    rudp_trace_event ev = {.type = RUDP_TRACE_MTU, .now = s->now};
    ev.u.mtu.from = from;
    ev.u.mtu.to = s->max_packet_size;
    trace_emit(s, &ev);
}
