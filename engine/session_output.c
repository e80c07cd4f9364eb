/*
 * session_output.c — building the next datagram, and what happens to the
 * frames of a packet once it is acknowledged or declared lost.
 *
 * A datagram is filled in priority order: the ACK (never congestion
 * controlled, RFC 9002 §7), then session-level control frames (SYN or
 * SYN-ACK, GoAway, MAX_STREAMS, the session WINDOW_UPDATE, path probes,
 * Ping), then the ACK flags of accepted streams, then stream frames in
 * round-robin order: each stream's RST, its WINDOW_UPDATE, bytes to
 * retransmit, new bytes, its FIN.  Ack-eliciting packets need room in the
 * congestion window and a pacing token, except PTO probes; a packet that
 * would carry only an ACK is sent when the ACK is due.
 *
 * Every packet's reliable frames are recorded in its rudp_sent_pkt.  When
 * recovery reports the packet acknowledged, stream bytes become
 * acknowledged (freeing buffer space) and pending flags clear; when it
 * reports it lost, the same frames are marked to be sent again — with the
 * current values for window updates, never the stale ones.
 */
#include "handshake.h"
#include "session.h"

#include <string.h>

/* --- acknowledged and lost packets --- */

/* Routes an acknowledged DATA frame to its stream: progress (session_live.c). */
static void out_data_acked(rudp_session *s, const rudp_sent_frame *fr, rudp_tstamp now) {
    rudp_stream *st = rudp_sess_find(s, fr->sid);
    if (!st)
        return;
    st->progress_at = now;
    uint64_t una = st->snd_una;
    rudp_stream_on_data_acked(st, fr->offset, fr->len, fr->flags);
    if (rudp_sess_traced(s))
        rudp_sess_trace_stream(s, st, false); /* an ACK flag or a FIN acknowledged */
    if (st->snd_una > una || rudp_stream_send_finished(st))
        rudp_sess_stream_event(s, st, RUDP_SEV_WRITABLE);
    rudp_sess_stream_maybe_free(s, st);
}

/* Handles the acknowledgement of one recorded frame. */
static void out_frame_acked(rudp_session *s, const rudp_sent_frame *fr, rudp_tstamp now) {
    rudp_stream *st;
    switch (fr->kind) {
    case RUDP_SENT_DATA:
        out_data_acked(s, fr, now);
        break;
    case RUDP_SENT_RST:
        st = rudp_sess_find(s, fr->sid);
        if (st) {
            st->rst_acked = true;
            rudp_sess_stream_maybe_free(s, st);
        }
        break;
    case RUDP_SENT_SESSION:
        s->session_frame_acked = true;
        s->session_frame_pending = false;
        if (!s->is_client)
            s->rec.handshake_confirmed = true;
        break;
    case RUDP_SENT_GOAWAY:
        if (s->state == RUDP_SESS_CLOSING) {
            rudp_sess_note_closed(s, RUDP_OK);
            rudp_sess_start_draining(s, now);
        }
        break;
    case RUDP_SENT_LISTENING:
        if (fr->sid == s->listening) /* the value rides in sid: the client knows it */
            s->listening_acked = true;
        break;
    default:
        break;
    }
}

/* A packet-size probe was acknowledged (the path carries that size) or
 * lost (it does not: try smaller).  Neither touches the congestion window:
 * probes are not counted in flight (RFC 8899 §4.1). */
static void out_probe_done(rudp_session *s, const rudp_sent_pkt *pkt, bool acked) {
    if (!s->probe_size || pkt->pn != s->probe_pn)
        return;
    if (acked) {
        uint32_t from = s->max_packet_size;
        s->max_packet_size = s->probe_size;
        s->rec.cc.max_datagram = s->probe_size;
        if (rudp_sess_traced(s))
            rudp_sess_trace_mtu(s, from);
    } else {
        s->probe_failed = s->probe_size;
    }
    s->probe_size = 0;
}

static void out_on_acked(void *user, const rudp_sent_pkt *pkt, rudp_tstamp now) {
    rudp_session *s = user;
    out_probe_done(s, pkt, true);
    if (pkt->ack_largest != RUDP_PN_NONE)
        rudp_acktr_on_ack_acked(&s->acktr, pkt->ack_largest);
    for (uint8_t i = 0; i < pkt->nframes; i++)
        out_frame_acked(s, &pkt->frames[i], now);
    rudp_sess_check_close(s, now);
}

/* Re-arms a lost DATA frame of a live stream. */
static void out_data_lost(rudp_session *s, const rudp_sent_frame *fr) {
    rudp_stream *st = rudp_sess_find(s, fr->sid);
    if (!st)
        return;
    rudp_stream_on_data_lost(st, fr->offset, fr->len, fr->flags);
    if (!st->local && st->open_pending)
        rudp_sess_lazy_list_add(s, st);
    rudp_sess_send_list_add(s, st);
}

/* Re-arms a lost WINDOW_UPDATE (its current value will be sent). */
static void out_window_lost(rudp_session *s, uint64_t sid) {
    if (sid == 0) {
        s->fc.update_pending = true;
        return;
    }
    rudp_stream *st = rudp_sess_find(s, sid);
    if (st && st->recv_state != RUDP_RECV_RESET && !rudp_stream_recv_finished(st)) {
        st->fc.update_pending = true;
        rudp_sess_send_list_add(s, st);
    }
}

/* Handles the loss of one recorded frame. */
static void out_frame_lost(rudp_session *s, const rudp_sent_frame *fr) {
    rudp_stream *st;
    switch (fr->kind) {
    case RUDP_SENT_DATA:
        out_data_lost(s, fr);
        break;
    case RUDP_SENT_WINDOW:
        out_window_lost(s, fr->sid);
        break;
    case RUDP_SENT_RST:
        st = rudp_sess_find(s, fr->sid);
        if (st && !st->rst_acked) {
            st->rst_pending = true;
            rudp_sess_send_list_add(s, st);
        }
        break;
    case RUDP_SENT_SESSION:
        if (!s->session_frame_acked) {
            s->session_frame_pending = true;
            s->session_frame_eager = true;
        }
        break;
    case RUDP_SENT_GOAWAY:
        if (s->state == RUDP_SESS_CLOSING)
            s->goaway_pending = true;
        break;
    case RUDP_SENT_MAX_STREAMS:
        s->max_streams_pending = true;
        break;
    case RUDP_SENT_LISTENING:
        s->listening_pending = true;
        break;
    case RUDP_SENT_TICKET:
        s->ticket_pending = true; /* a new one */
        break;
    default:
        break;
    }
}

void rudp_sess_requeue(rudp_session *s, const rudp_sent_pkt *pkt) {
    out_probe_done(s, pkt, false);
    for (uint8_t i = 0; i < pkt->nframes; i++)
        out_frame_lost(s, &pkt->frames[i]);
}

static void out_on_lost(void *user, const rudp_sent_pkt *pkt, rudp_tstamp now) {
    rudp_session *s = user;
    if (rudp_sess_traced(s))
        rudp_sess_trace_lost(s, pkt, now);
    rudp_sess_requeue(s, pkt);
}

rudp_recovery_handler rudp_sess_recovery_handler(rudp_session *s) {
    rudp_recovery_handler h = {.on_acked = out_on_acked, .on_lost = out_on_lost, .user = s};
    return h;
}

bool rudp_sess_has_pending(const rudp_session *s) {
    if (s->state == RUDP_SESS_DONE)
        return false;
    if (rudp_sess_sends_initial(s)) /* the SYN, and 0-RTT data under a key or ticket */
        return s->state < RUDP_SESS_DRAINING &&
               (s->session_frame_pending ||
                (rudp_sess_initial_private(&s->settings) && s->send_list.head));
    if (s->state == RUDP_SESS_DRAINING)
        return s->goaway_pending;
    return (s->session_frame_pending && (s->is_client || s->session_frame_eager)) ||
           s->goaway_pending || s->max_streams_pending || s->fc.update_pending ||
           s->listening_pending || s->path_challenge_pending || s->path_response_pending ||
           s->ping_pending || (s->ticket_pending && s->peer_keyed) ||
           s->send_list.head != NULL;
}

/* --- packet assembly --- */

/* A datagram being filled. */
typedef struct out_ctx {
    uint8_t *buf;
    size_t pos; /* next byte to write */
    size_t end; /* where the AEAD tag starts */
    rudp_sent_pkt *pkt;
    bool eliciting; /* an ack-eliciting frame was written */
    bool tracked;   /* one that is not a keepalive Ping: recovery waits for its ACK */
    rudp_tstamp now;
} out_ctx;

/* Returns true when one more frame can be recorded in the packet. */
static bool out_can_record(const out_ctx *c) {
    return c->pkt->nframes < RUDP_SENT_MAX_FRAMES;
}

/* Encodes |f| if it fits; returns true when written. */
static bool out_put(out_ctx *c, const rudp_frame *f) {
    ssize_t n = rudp_wire_encode_frame(c->buf + c->pos, c->end - c->pos, f);
    if (n < 0)
        return false;
    c->pos += (size_t)n;
    if (f->type != RUDP_FRAME_ACK && f->type != RUDP_FRAME_PADDING)
        c->eliciting = c->tracked = true;
    return true;
}

/* Encodes a frame recovery does not wait for: a keepalive PING or a
 * PATH_RESPONSE.  The peer acknowledges a keepalive like any PING, which
 * is all it asks; but no ACK is awaited, so a peer that stays silent for
 * hours (a stopped process, a suspended laptop) costs one PING an
 * interval, not a probe timeout's backed-off retries, and is never "data
 * unacknowledged" (TCP's keepalive probes are not retransmitted either).
 * A PATH_RESPONSE is never retransmitted: the challenger asks again. */
static bool out_put_untracked(out_ctx *c, const rudp_frame *f) {
    bool tracked = c->tracked;
    if (!out_put(c, f))
        return false;
    c->tracked = tracked;
    return true;
}

/* Writes the answer to the peer's PATH_CHALLENGE, if one is owed. */
static void out_path_response(rudp_session *s, out_ctx *c) {
    rudp_frame f = {.type = RUDP_FRAME_PATH_RESPONSE, .u.path_data = s->path_response_data};
    if (s->path_response_pending && out_put_untracked(c, &f))
        s->path_response_pending = false;
}

/* Records a reliable frame in the sent-packet record. */
static void out_record(out_ctx *c, uint8_t kind, uint64_t sid, uint64_t off, size_t len,
                       uint8_t flags) {
    rudp_sent_frame *fr = &c->pkt->frames[c->pkt->nframes++];
    fr->kind = kind;
    fr->sid = sid;
    fr->offset = off;
    fr->len = (uint16_t)len;
    fr->flags = flags;
}

/* Encodes |f| and records it as |kind| when both fit; returns true if so. */
static bool out_put_recorded(out_ctx *c, const rudp_frame *f, uint8_t kind, uint64_t sid) {
    if (!out_can_record(c) || !out_put(c, f))
        return false;
    out_record(c, kind, sid, 0, 0, 0);
    return true;
}

/* Writes the ACK frame (as many ranges as fit): the newest
 * RUDP_ACK_SENT_RANGES when frames of the packet's own follow (|alone|
 * false), up to RUDP_ACK_MAX_RANGES when the ACK is all it carries. */
static void out_ack(rudp_session *s, out_ctx *c, rudp_tstamp now, bool alone) {
    rudp_frame f = {.type = RUDP_FRAME_ACK};
    rudp_acktr_fill(&s->acktr, &f.u.ack, now,
                    alone ? RUDP_ACK_MAX_RANGES : RUDP_ACK_SENT_RANGES);
    if (f.u.ack.nranges == 0 || !rudp_wire_ack_fit(&f.u.ack, c->end - c->pos))
        return;
    if (out_put(c, &f)) {
        c->pkt->ack_largest = f.u.ack.ranges[0].largest;
        rudp_acktr_on_ack_sent(&s->acktr);
    }
}

/* Writes the SESSION frame: our SYN or SYN-ACK with transport parameters. */
static void out_session_frame(rudp_session *s, out_ctx *c) {
    const rudp_settings *set = &s->settings;
    rudp_frame f = {.type = RUDP_FRAME_SESSION};
    f.u.session.flags = s->is_client ? RUDP_FLAG_SYN : (RUDP_FLAG_SYN | RUDP_FLAG_ACK);
    if (!s->is_client && !s->listening)
        f.u.session.flags |= RUDP_FLAG_CLOSED;
    f.u.session.cid = s->local_cid;
    f.u.session.initial_stream_window = (uint32_t)set->initial_stream_window;
    f.u.session.initial_session_window = set->initial_session_window;
    f.u.session.max_streams = s->peer_allowed;
    f.u.session.idle_timeout_ms = (uint32_t)(set->idle_timeout / RUDP_MS(1));
    f.u.session.max_ack_delay_ms = (uint16_t)(set->max_ack_delay / RUDP_MS(1));
    f.u.session.max_packet_size = (uint16_t)set->max_udp_payload;
    if (!s->is_client) /* the client believes a reset only with this token */
        rudp_hs_reset_token(f.u.session.reset_token, set->secret, s->local_cid);
    else
        f.u.session.time_ms = set->wall_ms;
    if (out_put_recorded(c, &f, RUDP_SENT_SESSION, 0)) {
        s->session_frame_pending = false;
        s->session_frame_eager = false;
    }
}

/* Writes pending session-level control frames. */
static void out_control(rudp_session *s, out_ctx *c) {
    rudp_frame f;
    if (s->session_frame_pending)
        out_session_frame(s, c);
    if (s->goaway_pending) {
        f = (rudp_frame){.type = RUDP_FRAME_GOAWAY, .u.goaway_code = s->goaway_code};
        if (out_put_recorded(c, &f, RUDP_SENT_GOAWAY, 0)) {
            s->goaway_pending = false;
            s->goaway_sent = true;
            if (s->state == RUDP_SESS_CLOSING && s->close_deadline == RUDP_TSTAMP_NEVER)
                s->close_deadline = s->now + rudp_sess_close_wait(s);
        }
    }
    if (s->state >= RUDP_SESS_DRAINING)
        return;
    if (s->listening_pending) {
        f = (rudp_frame){.type = RUDP_FRAME_LISTENING, .u.listening = s->listening};
        if (out_put_recorded(c, &f, RUDP_SENT_LISTENING, s->listening))
            s->listening_pending = false;
    }
    if (s->max_streams_pending) {
        f = (rudp_frame){.type = RUDP_FRAME_MAX_STREAMS, .u.max_streams = s->peer_allowed};
        if (out_put_recorded(c, &f, RUDP_SENT_MAX_STREAMS, 0)) {
            s->max_streams_pending = false;
            s->peer_allowed_sent = s->peer_allowed;
        }
    }
    if (s->fc.update_pending) {
        f = (rudp_frame){.type = RUDP_FRAME_WINDOW_UPDATE};
        f.u.window.sid = 0;
        f.u.window.max_data = s->fc.limit;
        if (out_put_recorded(c, &f, RUDP_SENT_WINDOW, 0))
            s->fc.update_pending = false;
    }
    out_path_response(s, c);
    if (s->path_challenge_pending && !s->probing_path) { /* a new path: out_path_probe */
        f = (rudp_frame){.type = RUDP_FRAME_PATH_CHALLENGE,
                         .u.path_data = s->path_challenge_data};
        if (out_put(c, &f))
            s->path_challenge_pending = false;
    }
    f = (rudp_frame){.type = RUDP_FRAME_PING};
    if (s->ping_pending && out_put_untracked(c, &f))
        s->ping_pending = false;
}

/* Returns the session flow-control credit left for new stream bytes. */
static uint64_t out_session_room(const rudp_session *s) {
    return s->snd_limit > s->snd_sent ? s->snd_limit - s->snd_sent : 0;
}

/* Writes the RST and WINDOW_UPDATE of |st| if due. */
static void out_stream_control(out_ctx *c, rudp_stream *st) {
    rudp_frame f;
    if (st->rst_pending) {
        f = (rudp_frame){.type = RUDP_FRAME_RST};
        f.u.rst.sid = st->sid;
        f.u.rst.code = st->rst_code;
        f.u.rst.final_size = st->snd_next;
        if (out_put_recorded(c, &f, RUDP_SENT_RST, st->sid))
            st->rst_pending = false;
    }
    if (st->fc.update_pending && st->recv_state != RUDP_RECV_RESET &&
        !rudp_stream_recv_finished(st)) {
        f = (rudp_frame){.type = RUDP_FRAME_WINDOW_UPDATE};
        f.u.window.sid = st->sid;
        f.u.window.max_data = st->fc.limit;
        if (out_put_recorded(c, &f, RUDP_SENT_WINDOW, st->sid))
            st->fc.update_pending = false;
    }
}

/* Writes one DATA frame of |st|; returns false when none fits or is due. */
static bool out_stream_data(rudp_session *s, out_ctx *c, rudp_stream *st) {
    size_t room = c->end - c->pos;
    /* The frame's offset is at most snd_next, so this overhead is enough. */
    size_t over = rudp_wire_data_overhead(st->sid, st->snd_next);
    if (!out_can_record(c) || room <= over)
        return false;
    uint64_t off;
    size_t len;
    uint8_t flags;
    if (!rudp_stream_send_next(st, out_session_room(s), room - over, &off, &len, &flags))
        return false;
    rudp_frame f = {.type = RUDP_FRAME_DATA};
    if (len > 0) {
        size_t contiguous = rudp_buf_peek(&st->sbuf, off, len, &f.u.data.data);
        if (contiguous < len) {
            len = contiguous;
            flags &= (uint8_t)~RUDP_FLAG_FIN;
        }
    }
    f.u.data.flags = flags;
    f.u.data.sid = st->sid;
    f.u.data.offset = off;
    f.u.data.len = (uint16_t)len;
    if (!out_put(c, &f))
        return false;
    out_record(c, RUDP_SENT_DATA, st->sid, off, len, flags);
    rudp_sess_on_stream_sent(s, st, c->now);
    uint64_t fresh = rudp_stream_send_commit(st, off, len, flags);
    s->snd_sent += fresh;
    s->stream_bytes_sent += len;
    return len > 0;
}

/* Writes everything |st| has to send that fits. */
static void out_stream(rudp_session *s, out_ctx *c, rudp_stream *st) {
    out_stream_control(c, st);
    while (out_stream_data(s, c, st))
        ;
    if (rudp_sess_traced(s))
        rudp_sess_trace_stream(s, st, false); /* a FIN went out */
}

/* Returns true while the packet can take another stream frame. */
static bool out_has_room(const out_ctx *c) {
    return out_can_record(c) && c->end - c->pos > RUDP_DATA_FRAME_MIN_OVERHEAD;
}

/* Sends the pending ACK flags of accepted streams. */
static void out_lazy(rudp_session *s, out_ctx *c) {
    while (s->lazy_list.head && out_has_room(c)) {
        rudp_stream *st = s->lazy_list.head;
        rudp_sess_lazy_list_remove(s, st);
        if (!st->open_pending || st->send_state == RUDP_SEND_RESET)
            continue;
        out_stream(s, c, st);
        if (rudp_stream_send_wants(st, out_session_room(s)))
            rudp_sess_send_list_add(s, st);
    }
}

/* Serves the send list round robin until the packet is full. */
static void out_streams(rudp_session *s, out_ctx *c) {
    uint32_t budget = s->nstreams;
    while (s->send_list.head && budget-- > 0 && out_has_room(c)) {
        rudp_stream *st = s->send_list.head;
        rudp_sess_send_list_remove(s, st);
        out_stream(s, c, st);
        if (rudp_stream_send_wants(st, out_session_room(s)))
            rudp_sess_send_list_add(s, st);
    }
}

/* --- path MTU probing --- */

/* Datagram sizes worth trying, largest first: loopback, jumbo frames,
 * Ethernet with IPv6 (each capped by what the route and the peer allow). */
static const uint32_t probe_ladder[] = {65507, 32768, 16384, 8952, 1452};

/* Returns the size of the next probe, or 0 when there is none to send:
 * the largest ladder step above the current size and below any size that
 * failed, within min(route ceiling, peer's limit, |cap|). */
static uint32_t out_probe_next(const rudp_session *s, size_t cap) {
    if (!s->mtu_ceiling || s->probe_size || s->state != RUDP_SESS_ESTABLISHED ||
        !s->session_frame_acked)
        return 0;
    uint32_t limit = s->mtu_ceiling < s->peer_max_udp ? s->mtu_ceiling : s->peer_max_udp;
    if (limit > cap)
        limit = (uint32_t)cap;
    for (size_t i = 0; i < sizeof(probe_ladder) / sizeof(probe_ladder[0]); i++) {
        uint32_t size = probe_ladder[i] < limit ? probe_ladder[i] : limit;
        if (size > s->max_packet_size && size < s->probe_failed)
            return size;
    }
    return 0;
}

/* Fills a probe: a PING padded to the end of the datagram. */
static void out_probe_fill(out_ctx *c) {
    rudp_frame ping = {.type = RUDP_FRAME_PING};
    out_put(c, &ping);
    memset(c->buf + c->pos, 0, c->end - c->pos); /* PADDING */
    c->pos = c->end;
}

/* Returns true when an ack-eliciting packet may be sent at |now|. */
static bool out_may_elicit(const rudp_session *s, rudp_tstamp now) {
    if (s->probes > 0)
        return true;
    if (!rudp_sess_has_pending(s))
        return false;
    if (s->state == RUDP_SESS_DRAINING)
        return true; /* the one GoAway of a session that died */
    if (rudp_recovery_cwnd_room(&s->rec) == 0)
        return false;
    if (!s->settings.pacing)
        return true;
    rudp_pacer p = s->pacer;
    return rudp_pacer_next_time(&p, s->max_packet_size,
                                rudp_cc_pacing_rate(&s->rec.cc, &s->rec.rtt), now) <= now;
}

/* Fills an INITIAL: the SYN (again on a PTO), and 0-RTT stream data only
 * when a pre-shared key makes the INITIAL private. */
static void out_fill_initial(rudp_session *s, out_ctx *c) {
    if (s->session_frame_pending || s->probes > 0)
        out_session_frame(s, c);
    if (rudp_sess_initial_private(&s->settings) && s->state < RUDP_SESS_DRAINING)
        out_streams(s, c);
}

/* Server: a resumption ticket for the client, once it is validated and
 * the packet is PROTECTED (docs/PROTOCOL.md "Resumption"). */
static void out_ticket(rudp_session *s, out_ctx *c) {
    if (!s->ticket_pending || !s->peer_keyed || !out_can_record(c))
        return;
    rudp_frame f = {.type = RUDP_FRAME_NEW_TICKET};
    if (!rudp_hs_ticket_make(&f.u.ticket, s->settings.secret, s->settings.wall_ms,
                             &s->peer_addr))
        return;
    if (out_put_recorded(c, &f, RUDP_SENT_TICKET, 0))
        s->ticket_pending = false;
    memset(&f, 0, sizeof(f));
}

/* The tail of a flight: the packet carries data and leaves nothing queued
 * (the sender is application-limited, as an RPC's request or answer).  On
 * a path of at least RUDP_TAIL_ACK_MIN_RTT it carries a PING, which the
 * peer acknowledges within RUDP_ACK_NOW_DELAY (1 ms), so its PTO need not
 * wait out the peer's ACK delay: a lost request or answer costs about
 * srtt + 4 rttvar + 1 ms before its probe, not srtt + 4 rttvar + 25 ms.  On shorter paths
 * the ACK delay is dwarfed anyway and the extra ACK packets would cost more. */
static void out_tail_ping(rudp_session *s, out_ctx *c) {
    rudp_frame ping = {.type = RUDP_FRAME_PING};
    if (!c->tracked || s->state != RUDP_SESS_ESTABLISHED ||
        s->rec.rtt.smoothed < RUDP_TAIL_ACK_MIN_RTT || rudp_sess_has_pending(s))
        return;
    if (out_put(c, &ping))
        c->pkt->ack_now = 1;
}

/* Fills the packet's frames after the ACK. */
static void out_fill(rudp_session *s, out_ctx *c, bool elicit) {
    if (rudp_sess_sends_initial(s)) {
        out_fill_initial(s, c);
        return;
    }
    if (!elicit) {
        /* An ACK going out anyway carries a waiting SYN-ACK and ACK flags,
         * and the answer to a path challenge, however full the window: the
         * peer cannot move its packets to our new address without it. */
        if (s->state < RUDP_SESS_DRAINING) {
            if (s->session_frame_pending && !s->is_client)
                out_session_frame(s, c);
            out_lazy(s, c);
            out_path_response(s, c);
        }
        return;
    }
    out_control(s, c);
    if (s->state < RUDP_SESS_DRAINING) {
        out_ticket(s, c);
        out_lazy(s, c);
        out_streams(s, c);
        out_tail_ping(s, c);
    }
    if (s->probes > 0 && !c->tracked) { /* a probe recovery waits for */
        rudp_frame ping = {.type = RUDP_FRAME_PING};
        out_put(c, &ping);
    }
}

/* The pacer's bucket at |rate| bytes/s: 10 packets, or what the rate sends
 * in 1 ms up to 64 KiB when that is more.  On a fast path a wake-up then
 * sends a batch that segmentation offload carries through the kernel in
 * one trip (Linux sizes its TSO bursts to about 1 ms of the pacing rate
 * too); on the bench's 100 Mbit/s link it stays 10 packets. */
static uint64_t out_pace_burst(const rudp_session *s, uint64_t rate) {
    uint64_t least = 10ull * s->max_packet_size, ms = rate / 1000;
    if (ms > 65536)
        ms = 65536;
    return ms > least ? ms : least;
}

/* Seals the packet and commits it to recovery and the pacer; returns its
 * length.  A probe of |probe| bytes is ack-eliciting but not in flight. */
static ssize_t out_finish(rudp_session *s, out_ctx *c, rudp_addr *to, rudp_tstamp now,
                          uint32_t probe) {
    size_t cap = c->end + RUDP_TAG_LEN;
    ssize_t len = rudp_sess_traced(s)
                      ? rudp_sess_trace_seal(s, c->buf, c->pos, cap, c->pkt->pn, probe, now)
                      : rudp_sess_seal(s, c->buf, c->pos, cap, c->pkt->pn);
    if (len < 0)
        return len;
    c->pkt->size = (uint32_t)len;
    c->pkt->ack_eliciting = c->tracked;
    c->pkt->in_flight = c->tracked && !probe;
    if (probe) {
        s->probe_size = probe;
        s->probe_pn = c->pkt->pn;
    }
    rudp_recovery_on_sent(&s->rec, c->pkt, now);
    if (c->eliciting) {
        if (s->probes > 0)
            s->probes--;
        uint64_t rate =
            s->settings.pacing ? rudp_cc_pacing_rate(&s->rec.cc, &s->rec.rtt) : 0;
        s->pacer.burst = out_pace_burst(s, rate);
        rudp_pacer_on_sent(&s->pacer, (uint64_t)len, rate, now);
        s->last_activity = now;
    }
    s->bytes_sent += (uint64_t)len;
    if (to)
        *to = s->peer_addr;
    return len;
}

bool rudp_sess_amp_blocked(const rudp_session *s) {
    return !s->validated && s->bytes_sent + s->max_packet_size > 3 * s->bytes_recv;
}

/* Sends a PATH_CHALLENGE alone to the address the peer's newest packet
 * came from (input_migrate); *to is that address.  Returns the length. */
static ssize_t out_path_probe(rudp_session *s, uint8_t *buf, rudp_addr *to,
                              rudp_tstamp now) {
    out_ctx c = {
        .buf = buf, .pos = rudp_sess_hdr_len(s), .end = s->max_packet_size - RUDP_TAG_LEN};
    c.pkt = rudp_recovery_prepare(&s->rec);
    if (!c.pkt)
        return RUDP_ERR_NOMEM;
    rudp_frame f = {.type = RUDP_FRAME_PATH_CHALLENGE,
                    .u.path_data = s->path_challenge_data};
    out_put(&c, &f);
    s->path_challenge_pending = false;
    s->challenge_sent = now;
    ssize_t len = out_finish(s, &c, to, now, 0);
    if (len > 0 && to)
        *to = s->probe_addr;
    return len;
}

/* Returns the size of the datagram to fill: a probe's, else the packet
 * size.  An INITIAL is always that big (at least RUDP_MIN_INITIAL). */
static size_t out_size(const rudp_session *s, uint32_t probe) {
    return probe ? probe : s->max_packet_size;
}

ssize_t rudp_session_write_pkt(rudp_session *s, uint8_t *buf, size_t cap, rudp_addr *to,
                               rudp_tstamp now) {
    s->now = now;
    if (s->state == RUDP_SESS_DONE || rudp_sess_amp_blocked(s))
        return 0;
    if (cap < s->max_packet_size)
        return RUDP_ERR_NOBUF;
    if (s->probing_path && s->path_challenge_pending && s->keyed)
        return out_path_probe(s, buf, to, now);
    bool ack_due = rudp_acktr_deadline(&s->acktr) <= now;
    bool elicit = out_may_elicit(s, now);
    /* Room in the window but no stream data: the flow is app-limited, and
     * so is a packet of control frames sent now (a ticket, a window
     * update), whose tiny delivery rate must not count as the
     * path's: in a request/response session such packets are most rounds,
     * and BBR took their plateau for a full pipe. */
    if (s->send_list.head == NULL && rudp_recovery_cwnd_room(&s->rec) > 0)
        rudp_recovery_on_app_limited(&s->rec);
    if (!elicit && !ack_due)
        return 0;
    uint32_t probe = elicit ? out_probe_next(s, cap) : 0;
    size_t hdr = rudp_sess_hdr_len(s);
    out_ctx c = {
        .buf = buf, .pos = hdr, .end = out_size(s, probe) - RUDP_TAG_LEN, .now = now};
    c.pkt = rudp_recovery_prepare(&s->rec);
    if (!c.pkt)
        return RUDP_ERR_NOMEM;
    bool initial = rudp_sess_sends_initial(s);
    if (!initial && rudp_acktr_has_news(&s->acktr))
        out_ack(s, &c, now, !elicit && !probe);
    if (probe)
        out_probe_fill(&c);
    else
        out_fill(s, &c, elicit);
    if (c.pos == hdr) {
        /* Nothing to say after all (e.g. every queued stream was blocked). */
        if (s->probes > 0)
            s->probes = 0;
        return 0;
    }
    if (initial) { /* padded: the server may answer three times this */
        memset(c.buf + c.pos, 0, c.end - c.pos);
        c.pos = c.end;
    }
    return out_finish(s, &c, to, now, probe);
}
