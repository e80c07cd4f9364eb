/*
 * session_input.c — what a session does with a received datagram.
 *
 * A datagram is accepted only whole: it must open under the session's keys
 * (session_protect.c) and every frame must decode before anything changes
 * (what does not is dropped and counted, never half-applied).  Then its
 * packet number is recorded for the ACK (duplicates are dropped here), a
 * newer packet from a new address starts a path challenge there (RFC 9000
 * §9: the session moves once the new address answers, and the old path
 * serves meanwhile), and the frames are applied in order.  The packets
 * that carry no frames (REFUSE, RETRY, a stateless reset) are believed
 * only when they name what only the real peer knows: the client's first
 * connection ID, the key share, the reset token told inside the sealed
 * SYN-ACK.  A frame that breaks the protocol — data beyond a window, a stream
 * the peer may not open, an ACK of a packet never sent — ends the session
 * with GoAway(protocol error).
 *
 * Streams the peer opens are created on their first frame of any kind;
 * opening stream N opens every lower one of the peer's too (RFC 9000
 * §3.2), so frames may arrive in any order.  Frames for streams that have
 * already finished and been freed are ignored.
 */
#include "handshake.h"
#include "session.h"

#include <string.h>

/* Applies the peer's transport parameters from a SESSION frame. */
static void input_apply_params(rudp_session *s, const rudp_session_frame *f) {
    s->peer_cid = f->cid;
    s->peer_stream_window = f->initial_stream_window;
    if (f->initial_session_window > s->snd_limit)
        s->snd_limit = f->initial_session_window;
    if (f->max_streams > s->local_allowed)
        s->local_allowed = f->max_streams;
    s->peer_idle_timeout = RUDP_MS(f->idle_timeout_ms);
    s->rec.max_ack_delay = RUDP_MS(f->max_ack_delay_ms);
    s->peer_max_udp = f->max_packet_size;
    if (f->max_packet_size < s->max_packet_size) {
        uint32_t from = s->max_packet_size;
        s->max_packet_size = f->max_packet_size;
        if (rudp_sess_traced(s))
            rudp_sess_trace_mtu(s, from);
    }
    for (uint32_t i = 0; i < s->nbuckets; i++)
        for (rudp_stream *st = s->buckets[i]; st; st = st->hnext)
            if (st->snd_limit < f->initial_stream_window)
                st->snd_limit = f->initial_stream_window;
    rudp_sess_requeue_all(s);
}

/* Handles SESSION: the client's SYN at the server, the server's SYN-ACK at
 * the client.  Returns RUDP_OK or RUDP_ERR_PROTOCOL. */
static int input_session(rudp_session *s, const rudp_session_frame *f, bool eager) {
    if (!s->is_client) {
        if (f->flags != RUDP_FLAG_SYN)
            return RUDP_ERR_PROTOCOL;
        input_apply_params(s, f);
        if (!s->session_frame_acked) {
            /* At once: nothing the client sent is delivered before it has
             * our HANDSHAKE, so no response can ride on it. */
            s->session_frame_pending = true;
            s->session_frame_eager = true;
        }
        return RUDP_OK;
    }
    if ((f->flags & ~RUDP_FLAG_CLOSED) != (RUDP_FLAG_SYN | RUDP_FLAG_ACK))
        return RUDP_ERR_PROTOCOL;
    if (s->state != RUDP_SESS_CONNECTING)
        return RUDP_OK; /* a repeated SYN-ACK */
    s->peer_listening = !(f->flags & RUDP_FLAG_CLOSED);
    s->listening_pn = s->input_pn;
    memcpy(s->peer_reset, f->reset_token, RUDP_TOKEN_LEN);
    s->peer_reset_known = true;
    input_apply_params(s, f);
    rudp_sess_set_state(s, RUDP_SESS_ESTABLISHED);
    s->session_frame_pending = false;
    s->session_frame_acked = true;
    s->rec.handshake_confirmed = true;
    s->ev_established = true;
    return RUDP_OK;
}

/* Opens every peer stream up to and including |sid|.  Returns RUDP_OK,
 * RUDP_ERR_PROTOCOL when the peer exceeds the stream limit, or
 * RUDP_ERR_NOMEM. */
static int input_open_peer_streams(rudp_session *s, uint64_t sid, rudp_tstamp now) {
    uint64_t idx = (sid - 1) / 2;
    if (idx >= s->peer_allowed)
        return RUDP_ERR_PROTOCOL;
    bool refuse = s->state != RUDP_SESS_ESTABLISHED;
    for (; s->peer_opened <= idx; s->peer_opened++) {
        uint64_t id = 2 * s->peer_opened + (s->is_client ? 2 : 1);
        rudp_stream *st = rudp_sess_stream_new(s, id, false, now);
        if (!st)
            return RUDP_ERR_NOMEM;
        if (refuse) {
            st->released = true;
            rudp_sess_stream_abort(s, st, RUDP_RST_REFUSED, RUDP_ERR_REFUSED);
            continue;
        }
        rudp_sess_stream_event(s, st, RUDP_SEV_OPENED);
        rudp_sess_lazy_list_add(s, st);
    }
    return RUDP_OK;
}

/* Finds the stream a frame names, opening peer streams on first sight.
 * Sets *st to NULL for a stream that is already gone.  Returns RUDP_OK,
 * RUDP_ERR_PROTOCOL (a stream of ours never opened, or over the limit) or
 * RUDP_ERR_NOMEM. */
static int input_stream(rudp_session *s, uint64_t sid, rudp_tstamp now, rudp_stream **st) {
    *st = rudp_sess_find(s, sid);
    if (*st)
        return RUDP_OK;
    uint64_t idx = (sid - 1) / 2;
    if (rudp_sid_is_client(sid) == s->is_client)
        return idx < s->local_opened ? RUDP_OK : RUDP_ERR_PROTOCOL;
    if (idx < s->peer_opened)
        return RUDP_OK;
    int rv = input_open_peer_streams(s, sid, now);
    if (rv == RUDP_OK)
        *st = rudp_sess_find(s, sid);
    return rv;
}

/* Counts |grew| newly received bytes against the session window, as
 * consumed at once when the stream is aborted.  Returns RUDP_OK or
 * RUDP_ERR_FLOW_CONTROL. */
static int input_session_credit(rudp_session *s, uint64_t grew, bool consumed,
                                rudp_tstamp now) {
    if (grew == 0)
        return RUDP_OK;
    if (rudp_fc_on_recv(&s->fc, s->fc.highest + grew) != RUDP_OK)
        return RUDP_ERR_FLOW_CONTROL;
    if (consumed)
        rudp_sess_consume(s, grew, now);
    return RUDP_OK;
}

/* Handles DATA.  Returns RUDP_OK, RUDP_ERR_PROTOCOL, RUDP_ERR_FLOW_CONTROL
 * or RUDP_ERR_NOMEM. */
static int input_data(rudp_session *s, const rudp_data_frame *f, rudp_tstamp now) {
    rudp_stream *st;
    int rv = input_stream(s, f->sid, now, &st);
    if (rv != RUDP_OK || !st)
        return rv;
    if (st->local && (f->flags & RUDP_FLAG_ACK) && !st->connected) {
        st->connected = true;
        rudp_sess_stream_event(s, st, RUDP_SEV_CONNECTED);
    }
    if (st->released && st->recv_state != RUDP_RECV_RESET &&
        f->offset + f->len > st->rcv_read) {
        /* Data for a stream the application closed: abort, as TCP does. */
        rudp_sess_stream_abort(s, st, RUDP_RST_ABORT, RUDP_ERR_RESET);
    }
    bool aborted = st->recv_state == RUDP_RECV_RESET;
    uint64_t grew;
    rv = rudp_stream_recv_data(st, f->offset, f->data, f->len, f->flags & RUDP_FLAG_FIN,
                               &grew);
    if (rv == RUDP_OK)
        rv = input_session_credit(s, grew, aborted, now);
    if (rv != RUDP_OK)
        return rv;
    if (!aborted && (rudp_stream_recv_ready(st) > 0 || st->rcv_fin == st->rcv_read))
        rudp_sess_stream_event(s, st, RUDP_SEV_READABLE);
    rudp_sess_stream_maybe_free(s, st);
    return RUDP_OK;
}

/* Handles WINDOW_UPDATE for the session (sid 0) or a stream. */
static int input_window(rudp_session *s, const rudp_window_frame *f, rudp_tstamp now) {
    if (f->sid == 0) {
        if (f->max_data > s->snd_limit) {
            s->snd_limit = f->max_data;
            rudp_sess_requeue_all(s);
        }
        return RUDP_OK;
    }
    rudp_stream *st;
    int rv = input_stream(s, f->sid, now, &st);
    if (rv != RUDP_OK || !st)
        return rv;
    if (f->max_data > st->snd_limit) {
        st->snd_limit = f->max_data;
        if (st->snd_next < st->snd_written)
            rudp_sess_send_list_add(s, st);
    }
    return RUDP_OK;
}

/* Maps an RST code to the error the application sees. */
static int input_rst_error(uint32_t code) {
    return code == RUDP_RST_REFUSED ? RUDP_ERR_REFUSED : RUDP_ERR_RESET;
}

/* Handles RST: the peer aborted the stream; answer with ours once. */
static int input_rst(rudp_session *s, const rudp_rst_frame *f, rudp_tstamp now) {
    rudp_stream *st;
    int rv = input_stream(s, f->sid, now, &st);
    if (rv != RUDP_OK || !st)
        return rv;
    if (st->peer_rst && st->recv_state == RUDP_RECV_RESET)
        return RUDP_OK; /* repeated */
    if (st->send_state != RUDP_SEND_RESET || !st->rst_queued) {
        rudp_sess_stream_abort(s, st, f->code, input_rst_error(f->code));
        rudp_sess_stream_event(s, st,
                               RUDP_SEV_RESET | RUDP_SEV_READABLE | RUDP_SEV_WRITABLE);
    }
    uint64_t grew;
    rv = rudp_stream_on_peer_rst(st, f->final_size, &grew);
    if (rv == RUDP_OK)
        rv = input_session_credit(s, grew, true, now);
    if (rv != RUDP_OK)
        return rv;
    rudp_sess_stream_maybe_free(s, st);
    rudp_sess_check_close(s, now);
    return RUDP_OK;
}

/* Handles GOAWAY: the peer ends the session.  A peer closes (or leaves)
 * normally only once every stream is finished on its side, so released
 * streams still waiting for a reordered ACK are finished too, and FINs
 * waiting only for their acknowledgement count as delivered. */
static void input_goaway(rudp_session *s, uint32_t code, rudp_tstamp now) {
    int err = code == RUDP_GOAWAY_PROTOCOL ? RUDP_ERR_PROTOCOL : RUDP_ERR_PEER_CLOSED;
    if (code == RUDP_GOAWAY_NORMAL) {
        for (uint32_t i = 0; i < s->nbuckets; i++)
            for (rudp_stream *st = s->buckets[i]; st; st = st->hnext)
                rudp_stream_on_peer_gone(st);
        rudp_sess_free_released(s);
    }
    rudp_sess_fail_streams(s, err);
    rudp_sess_note_closed(s, s->close_requested ? RUDP_OK : err);
    rudp_sess_start_draining(s, now);
}

/* Handles LISTENING: whether the server's port has a listener now.  A
 * frame from a packet older than the one that last said so is stale (a
 * retransmission reordered behind a newer state).  Returns RUDP_OK or
 * RUDP_ERR_PROTOCOL (a client sent it). */
static int input_listening(rudp_session *s, bool listening) {
    if (!s->is_client)
        return RUDP_ERR_PROTOCOL;
    if (s->input_pn < s->listening_pn)
        return RUDP_OK;
    s->listening_pn = s->input_pn;
    if (s->peer_listening != listening)
        s->ev_listening = true;
    s->peer_listening = listening;
    return RUDP_OK;
}

/* Returns true when |a| and |b| are the same address. */
static bool addr_equal(const rudp_addr *a, const rudp_addr *b) {
    return a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0;
}

/* Handles PATH_RESPONSE: the answer to our challenge, from the address it
 * went to, moves the session there. */
static void input_path_response(rudp_session *s, uint64_t data) {
    if (data != s->path_challenge_data && data != s->path_challenge_prev)
        return;
    s->path_validated = true;
    if (s->probing_path && s->input_from && addr_equal(s->input_from, &s->probe_addr)) {
        s->peer_addr = s->probe_addr;
        s->probing_path = false;
        s->migrations++;
    }
}

/* Client: a resumption ticket from the server (in a sealed packet) waits
 * for the caller to take it (rudp_session_take_ticket).  A server takes
 * none: RUDP_ERR_PROTOCOL. */
static int input_ticket(rudp_session *s, const rudp_ticket *t) {
    if (!s->is_client)
        return RUDP_ERR_PROTOCOL;
    if (s->settings.psk_set)
        return RUDP_OK; /* the key does better */
    s->ticket = *t;
    s->ticket_ready = true;
    return RUDP_OK;
}

/* Applies one decoded frame.  Returns RUDP_OK or the protocol error. */
static int input_frame(rudp_session *s, const rudp_frame *f, bool eager, rudp_tstamp now) {
    switch (f->type) {
    case RUDP_FRAME_ACK: {
        rudp_recovery_handler h = rudp_sess_recovery_handler(s);
        int rv = rudp_recovery_on_ack(&s->rec, &f->u.ack, now, &h);
        if (rv == RUDP_OK && rudp_sess_traced(s))
            rudp_sess_trace_recovery(s, now);
        return rv;
    }
    case RUDP_FRAME_SESSION:
        return input_session(s, &f->u.session, eager);
    case RUDP_FRAME_DATA:
        return input_data(s, &f->u.data, now);
    case RUDP_FRAME_WINDOW_UPDATE:
        return input_window(s, &f->u.window, now);
    case RUDP_FRAME_RST:
        return input_rst(s, &f->u.rst, now);
    case RUDP_FRAME_GOAWAY:
        input_goaway(s, f->u.goaway_code, now);
        return RUDP_OK;
    case RUDP_FRAME_MAX_STREAMS:
        if (f->u.max_streams > s->local_allowed)
            s->local_allowed = f->u.max_streams;
        return RUDP_OK;
    case RUDP_FRAME_PATH_CHALLENGE:
        s->path_response_pending = true;
        s->path_response_data = f->u.path_data;
        return RUDP_OK;
    case RUDP_FRAME_PATH_RESPONSE:
        input_path_response(s, f->u.path_data);
        return RUDP_OK;
    case RUDP_FRAME_LISTENING:
        return input_listening(s, f->u.listening != 0);
    case RUDP_FRAME_NEW_TICKET:
        return input_ticket(s, &f->u.ticket);
    default: /* PADDING, PING */
        return RUDP_OK;
    }
}

/* Applies the frames of a decoded packet in order; stops at the first
 * error.  A SYN with no stream bytes is answered at once: the client is
 * waiting for the handshake before it writes (a blocking connect), so there
 * is no response for the SYN-ACK to ride on.  0-RTT bytes will be answered
 * by the application, and the SYN-ACK waits for that answer. */
static int input_frames(rudp_session *s, const rudp_decoded_pkt *d, rudp_tstamp now) {
    bool eager = !d->has_stream_data;
    for (uint32_t i = 0; i < d->nframes && s->state < RUDP_SESS_DRAINING; i++) {
        int rv = input_frame(s, &d->frames[i], eager, now);
        if (rv != RUDP_OK)
            return rv;
    }
    return RUDP_OK;
}

/* The newest authenticated packet came from a new address: challenge it.
 * The session moves there only when the answer comes from there
 * (input_path_response); the old path keeps working meanwhile.  An
 * address already challenged is challenged again, with new data, once a
 * PTO has passed without its answer (the challenge or the answer was
 * lost); the PTO's back-off bounds what an attacker can make us send. */
static void input_migrate(rudp_session *s, const rudp_addr *from, rudp_tstamp now) {
    if (s->probing_path && addr_equal(from, &s->probe_addr) &&
        (s->path_challenge_pending || now < s->challenge_sent + rudp_recovery_pto(&s->rec)))
        return; /* challenged, the answer may still come */
    /* The answer to the challenge this one replaces may still come (a
     * peer with a full window answers late): it proves the address too. */
    s->path_challenge_prev = s->probing_path && addr_equal(from, &s->probe_addr)
                                 ? s->path_challenge_data
                                 : rudp_sess_rand(s);
    s->probe_addr = *from;
    s->probing_path = true;
    s->path_validated = false;
    s->path_challenge_data = rudp_sess_rand(s);
    s->path_challenge_pending = true;
}

/* The client's first sealed packet opened: it holds the keys, so it got
 * our HANDSHAKE at the address it sends from.  What it sent so far may
 * now be delivered. */
static void input_validated(rudp_session *s) {
    s->peer_keyed = true;
    s->ticket_pending = !s->settings.psk_set && s->settings.wall_ms != 0;
    if (!s->validated)
        s->ev_established = true;
    s->validated = true;
    rudp_aead_free(&s->initial);
}

/* Returns RUDP_OK when a regular packet is this session's and new (its
 * number is recorded for the ACK), else why it is dropped. */
static int input_accept(rudp_session *s, const rudp_decoded_pkt *d, rudp_tstamp now) {
    if (!rudp_session_owns_cid(s, d->hdr.dcid))
        return RUDP_ERR_UNKNOWN_CID;
    int rv = rudp_acktr_on_pkt(&s->acktr, d->hdr.pn, d->eliciting,
                               s->settings.max_ack_delay, now);
    if (rv == RUDP_OK && d->pings > 0)
        rudp_acktr_ack_now(&s->acktr, now);
    return rv;
}

int rudp_sess_apply(rudp_session *s, const rudp_decoded_pkt *d, size_t len,
                    const rudp_addr *from, rudp_tstamp now) {
    s->now = now;
    int rv = input_accept(s, d, now);
    if (rv != RUDP_OK) {
        s->pkts_dropped++;
        if (rudp_sess_traced(s))
            rudp_sess_trace_dropped(s, &d->hdr, d->hdr.pn, len, rv, now);
        return rv;
    }
    if (rudp_sess_traced(s))
        rudp_sess_trace_received(s, d, len, now);
    s->pkts_recv++;
    s->bytes_recv += len;
    s->last_recv = s->last_activity = now;
    s->input_pn = d->hdr.pn;
    s->input_from = from;
    if (!s->is_client && d->hdr.type == RUDP_PKT_PROTECTED && !s->peer_keyed)
        input_validated(s);
    if (s->is_client && d->hdr.type == RUDP_PKT_HANDSHAKE)
        s->acktr.immediate = true; /* the server waits for it to validate us */
    rv = input_frames(s, d, now);
    /* After the frames: an answer to our challenge in this very packet
     * moves the session before a new challenge could replace it. */
    if (from && !addr_equal(from, &s->peer_addr) && d->hdr.pn == s->acktr.largest &&
        s->state < RUDP_SESS_DRAINING)
        input_migrate(s, from, now);
    s->input_from = NULL;
    if (s->state == RUDP_SESS_CLOSING && s->goaway_sent) {
        /* The peer still talks: it has not seen our GoAway (RFC 9000 §10.2.1). */
        s->goaway_pending = true;
        s->close_deadline = now + rudp_sess_close_wait(s);
    }
    if (rv == RUDP_ERR_PROTOCOL || rv == RUDP_ERR_FLOW_CONTROL)
        rudp_sess_die(s, rv, now);
    else if (rv != RUDP_OK)
        rudp_sess_die(s, RUDP_ERR_INTERNAL, now);
    return rv;
}

/* A stateless reset for this session: believed only with the token the
 * server told us for its connection ID.  Returns RUDP_OK or
 * RUDP_ERR_UNKNOWN_CID. */
static int input_stateless_reset(rudp_session *s, const rudp_pkt_hdr *h, rudp_tstamp now) {
    if (!s->is_client || !s->peer_reset_known || h->dcid != s->peer_cid ||
        !rudp_ct_equal(h->tag, s->peer_reset, RUDP_TOKEN_LEN))
        return RUDP_ERR_UNKNOWN_CID;
    rudp_session_on_stateless_reset(s, now);
    return RUDP_OK;
}

/* A REFUSE for this client's connection attempt: it ends with
 * RUDP_ERR_REFUSED, except a refused ticket: the attempt goes on without
 * it.  Returns RUDP_OK or RUDP_ERR_UNKNOWN_CID. */
static int input_refuse(rudp_session *s, const rudp_pkt_hdr *h, rudp_tstamp now) {
    if (!s->is_client || s->state != RUDP_SESS_CONNECTING || h->dcid != s->initial_cid ||
        s->keyed)
        return RUDP_ERR_UNKNOWN_CID;
    if (h->reason == RUDP_REFUSE_TICKET) {
        if (!s->settings.ticket_set)
            return RUDP_ERR_UNKNOWN_CID;
        if (!rudp_sess_drop_ticket(s))
            rudp_sess_die(s, RUDP_ERR_NOMEM, now);
        return RUDP_OK;
    }
    s->refuse_reason = h->reason ? h->reason : RUDP_REFUSE_VERSION;
    rudp_sess_die(s, RUDP_ERR_REFUSED, now);
    return RUDP_OK;
}

/* A RETRY for this client's connection attempt: its INITIALs carry the
 * token from now on (once per attempt).  Returns RUDP_OK,
 * RUDP_ERR_UNKNOWN_CID or RUDP_ERR_AUTH (a tag that does not match). */
static int input_retry(rudp_session *s, const uint8_t *pkt, const rudp_pkt_hdr *h) {
    uint8_t tag[RUDP_TAG_LEN];
    if (!s->is_client || s->keyed || s->retried || h->dcid != s->initial_cid)
        return RUDP_ERR_UNKNOWN_CID;
    rudp_hs_retry_tag(tag, s->early, s->kp.pub, pkt, h->len);
    if (!rudp_ct_equal(tag, h->tag, RUDP_TAG_LEN))
        return RUDP_ERR_AUTH;
    if (s->settings.ticket_set && !rudp_sess_drop_ticket(s))
        return RUDP_ERR_NOMEM; /* a busy server takes no ticket: the full handshake */
    memcpy(s->token, h->token, h->token_len);
    s->token_len = h->token_len;
    s->retried = true;
    s->session_frame_pending = true; /* the INITIAL again, with the token */
    return RUDP_OK;
}

/* Handles the packets that carry no frames.  Returns the result. */
static int input_unsealed(rudp_session *s, const uint8_t *pkt, const rudp_pkt_hdr *h,
                          rudp_tstamp now) {
    switch (h->type) {
    case RUDP_PKT_STATELESS_RESET:
        return input_stateless_reset(s, h, now);
    case RUDP_PKT_REFUSE:
        return input_refuse(s, h, now);
    default:
        return input_retry(s, pkt, h);
    }
}

/* Reports a datagram dropped for |reason| before it was applied: its
 * header, when it parses (the clear part is intact even after a failed
 * open). */
static void input_trace_dropped(rudp_session *s, const uint8_t *pkt, size_t len, int reason,
                                rudp_tstamp now) {
    rudp_pkt_hdr h;
    bool parsed = rudp_wire_parse(pkt, len, &h) == RUDP_OK;
    bool numbered = parsed && h.type <= RUDP_PKT_PROTECTED;
    rudp_sess_trace_dropped(s, parsed ? &h : NULL, numbered ? h.pn : RUDP_PN_NONE, len,
                            reason, now);
}

int rudp_session_read_pkt(rudp_session *s, uint8_t *pkt, size_t len, const rudp_addr *from,
                          rudp_tstamp now) {
    rudp_pkt_hdr h;
    rudp_decoded_pkt d;
    s->now = now;
    int rv = s->state == RUDP_SESS_DONE ? RUDP_ERR_CLOSED : rudp_wire_parse(pkt, len, &h);
    bool sealed = rv == RUDP_OK && h.type <= RUDP_PKT_PROTECTED;
    if (rv == RUDP_OK)
        rv = sealed ? rudp_sess_open(s, pkt, len, &h, &d) : input_unsealed(s, pkt, &h, now);
    if (rv != RUDP_OK) {
        s->pkts_dropped++;
        if (rudp_sess_traced(s))
            input_trace_dropped(s, pkt, len, rv, now);
        return rv;
    }
    if (!sealed && rudp_sess_traced(s))
        rudp_sess_trace_unsealed(s, &h, len, now);
    return sealed ? rudp_sess_apply(s, &d, len, from, now) : RUDP_OK;
}
