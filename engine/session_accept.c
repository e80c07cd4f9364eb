/*
 * session_accept.c — a server's first look at a datagram no session claims
 * (docs/PROTOCOL.md "Opening a session", "Address validation").
 *
 * The datagram is answered by what it is, cheapest checks first, and a
 * session is made only from a client's INITIAL that opens:
 *
 *   - another version (an INITIAL-sized datagram): REFUSE(version);
 *   - a sealed packet (HANDSHAKE, PROTECTED) for a connection ID no session
 *     has: a stateless reset with that ID's token, so a client whose server
 *     restarted learns it at once (the token needs the secret it was made
 *     with: rudp_settings.secret);
 *   - an INITIAL shorter than 1200 bytes: dropped (a client pads its
 *     INITIALs, so a server answering with its HANDSHAKE never sends more
 *     than it received: no amplification);
 *   - a pre-shared key on one side only: REFUSE saying which;
 *   - |busy| (the caller counts its unvalidated sessions) and no valid retry
 *     token: a RETRY with a token bound to the client's address; no state
 *     is kept, as with TCP's SYN cookies;
 *   - a valid retry token already seen (the replay memory holds the client's
 *     key share): dropped as a duplicate;
 *   - an INITIAL that does not open: dropped, or REFUSE(key mismatch) when
 *     both ends have a pre-shared key (then only the keys can differ).
 *
 * Every reply is smaller than the datagram that caused it.
 */
#include "handshake.h"
#include "replay.h"
#include "session.h"

#include <string.h>

/* Fills |r| with a REFUSE for |dcid|; returns RUDP_ERR_REFUSED. */
static int accept_refuse(rudp_reply *r, uint64_t dcid, uint8_t reason) {
    ssize_t n = rudp_wire_encode_refuse(r->buf, sizeof(r->buf), dcid, reason);
    r->len = n > 0 ? (size_t)n : 0;
    return RUDP_ERR_REFUSED;
}

/* Fills |r| with the stateless reset of |dcid|; returns RUDP_ERR_UNKNOWN_CID. */
static int accept_reset(const rudp_settings *set, rudp_reply *r, uint64_t dcid) {
    uint8_t token[RUDP_TOKEN_LEN];
    rudp_hs_reset_token(token, set->secret, dcid);
    ssize_t n = rudp_wire_encode_reset(r->buf, sizeof(r->buf), dcid, token);
    r->len = n > 0 ? (size_t)n : 0;
    return RUDP_ERR_UNKNOWN_CID;
}

/* Fills |r| with a RETRY for the INITIAL |h| from |from|; returns
 * RUDP_ERR_RETRY. */
static int accept_retry(const rudp_settings *set, rudp_reply *r, const rudp_pkt_hdr *h,
                        const rudp_addr *from, rudp_tstamp now) {
    uint8_t token[RUDP_RETRY_TOKEN_LEN], early[RUDP_SECRET_LEN];
    size_t tlen = rudp_hs_retry_token(token, set->secret, from, h->dcid, now);
    ssize_t n =
        rudp_wire_encode_retry(r->buf, sizeof(r->buf), h->dcid, token, (uint16_t)tlen);
    if (n <= 0 || (size_t)n + RUDP_TAG_LEN > sizeof(r->buf))
        return RUDP_ERR_RETRY;
    rudp_hs_early(early, set);
    rudp_hs_retry_tag(r->buf + n, early, h->share, r->buf, (size_t)n);
    r->len = (size_t)n + RUDP_TAG_LEN;
    return RUDP_ERR_RETRY;
}

/* Returns the refuse reason when the two ends disagree on having a
 * pre-shared key, else RUDP_REFUSE_NONE. */
static uint8_t accept_key_disagreement(const rudp_settings *set, const rudp_pkt_hdr *h) {
    bool theirs = (h->flags & RUDP_INITIAL_F_PSK) != 0;
    if (theirs && !set->psk_set)
        return RUDP_REFUSE_NO_KEY;
    if (!theirs && set->psk_set)
        return RUDP_REFUSE_KEY_NEEDED;
    return RUDP_REFUSE_NONE;
}

/* Returns the client's SESSION SYN in |d|, or NULL. */
static const rudp_session_frame *accept_syn(const rudp_decoded_pkt *d) {
    for (uint32_t i = 0; i < d->nframes; i++)
        if (d->frames[i].type == RUDP_FRAME_SESSION &&
            d->frames[i].u.session.flags == RUDP_FLAG_SYN)
            return &d->frames[i].u.session;
    return NULL;
}

/* Returns true when the opening |d| (sealed under the pre-shared key, or
 * under a ticket's key, which opens only for the IP address the ticket was
 * given to: from one who holds it) may have its data delivered at once:
 * its client clock is within RUDP_EARLY_WINDOW_MS of ours and it was not
 * seen before (not a replay).  Such a client counts as validated
 * (docs/PROTOCOL.md). */
static bool accept_early(const rudp_settings *set, const rudp_decoded_pkt *d,
                         rudp_tstamp now) {
    const rudp_session_frame *syn = accept_syn(d);
    if (!rudp_sess_initial_private(set) || !set->replay || !set->wall_ms || !syn ||
        !syn->time_ms)
        return false;
    uint64_t skew = syn->time_ms > set->wall_ms ? syn->time_ms - set->wall_ms
                                                : set->wall_ms - syn->time_ms;
    return skew <= RUDP_EARLY_WINDOW_MS &&
           rudp_replay_fresh(set->replay, d->hdr.share, now);
}

/* An opening with a good retry token proves its address, but whoever saw
 * it can send it again from there while the token lives: it counts as
 * validated only the first time (the replay memory holds its client
 * share).  Returns RUDP_ERR_DUPLICATE for a replay.  When the memory cannot
 * tell (full), the address still counts as validated without a pre-shared
 * key (the opening then carries no data) and not with one (its data waits
 * for the client's first sealed packet). */
static int accept_token_fresh(const rudp_settings *set, const rudp_pkt_hdr *h,
                              rudp_tstamp now, bool *validated) {
    rudp_replay_result seen = rudp_replay_check(set->replay, h->share, now);
    if (seen == RUDP_REPLAY_SEEN)
        return RUDP_ERR_DUPLICATE;
    *validated = seen == RUDP_REPLAY_FRESH || !set->psk_set;
    return RUDP_OK;
}

/* An INITIAL with a ticket is sealed under the key the ticket holds:
 * opens the ticket into |set| (ticket_set, ticket.psk).  Returns false
 * when it does not open or is too old; true for an INITIAL without one. */
static bool accept_ticket(rudp_settings *set, const rudp_pkt_hdr *h,
                          const rudp_addr *from) {
    static const rudp_addr none;
    if (!(h->flags & RUDP_INITIAL_F_TICKET))
        return true;
    set->ticket_set = rudp_hs_ticket_open(set->ticket.psk, h->token, h->token_len,
                                          set->secret, set->wall_ms, from ? from : &none);
    return set->ticket_set;
}

/* Checks everything about a datagram before it opens.  Returns RUDP_OK
 * when it is an INITIAL worth opening (*validated: it had a good retry
 * token, seen for the first time), else the reason, with |r| filled when a
 * reply is due. */
static int accept_triage(rudp_settings *set, size_t len, const rudp_pkt_hdr *h, int parsed,
                         const rudp_addr *from, rudp_tstamp now, bool busy, rudp_reply *r,
                         bool *validated) {
    if (parsed == RUDP_ERR_VERSION && len >= RUDP_MIN_INITIAL)
        return accept_refuse(r, h->dcid, RUDP_REFUSE_VERSION);
    if (parsed != RUDP_OK)
        return parsed;
    if (h->type == RUDP_PKT_HANDSHAKE || h->type == RUDP_PKT_PROTECTED)
        return accept_reset(set, r, h->dcid);
    if (h->type != RUDP_PKT_INITIAL || len < RUDP_MIN_INITIAL)
        return RUDP_ERR_NOT_INITIAL;
    uint8_t reason = accept_key_disagreement(set, h);
    if (reason != RUDP_REFUSE_NONE)
        return accept_refuse(r, h->dcid, reason);
    if (!accept_ticket(set, h, from))
        return accept_refuse(r, h->dcid, RUDP_REFUSE_TICKET);
    bool token_ok =
        !set->ticket_set && h->token_len > 0 &&
        rudp_hs_retry_token_ok(h->token, h->token_len, set->secret, from, h->dcid, now);
    if (busy && !token_ok)
        return accept_retry(set, r, h, from, now);
    return token_ok ? accept_token_fresh(set, h, now, validated) : RUDP_OK;
}

/* Raises |*v| to at least |min|. */
static void raise_to(uint64_t *v, uint64_t min) {
    if (*v < min)
        *v = min;
}

/* The settings of a server session: a server always allows what a client
 * may send before it knows the server's parameters. */
static rudp_settings accept_settings(const rudp_settings *set) {
    rudp_settings eff = *set;
    raise_to(&eff.initial_stream_window, RUDP_ZERO_RTT_STREAM_WINDOW);
    raise_to(&eff.max_stream_window, eff.initial_stream_window);
    raise_to(&eff.initial_session_window, RUDP_ZERO_RTT_SESSION_WINDOW);
    raise_to(&eff.max_session_window, eff.initial_session_window);
    raise_to(&eff.max_streams, RUDP_ZERO_RTT_MAX_STREAMS);
    return eff;
}

/* Makes the session of an INITIAL that opened (|d|): its keys, then the
 * datagram applied.  Returns it, or NULL with *err. */
static rudp_session *accept_make(const rudp_settings *set, uint64_t seed,
                                 const rudp_decoded_pkt *d, size_t len,
                                 const rudp_addr *from, rudp_tstamp now, bool validated,
                                 int *err) {
    rudp_settings eff = accept_settings(set);
    rudp_session *s = rudp_sess_alloc(&eff);
    if (!s || rudp_sess_init(s, &eff, seed, now) != RUDP_OK) {
        rudp_session_del(s);
        *err = RUDP_ERR_NOMEM;
        return NULL;
    }
    rudp_sess_set_state(s, RUDP_SESS_ESTABLISHED);
    s->initial_cid = d->hdr.dcid;
    s->validated = s->ev_established = validated;
    if (from)
        s->peer_addr = *from;
    rudp_hs_early(s->early, &eff);
    if (!rudp_hs_initial_aead(&s->initial, s->early, s->initial_cid, d->hdr.share) ||
        !rudp_sess_keys_server(s, d->hdr.share)) {
        rudp_session_del(s);
        *err = RUDP_ERR_AUTH;
        return NULL;
    }
    int rv = rudp_sess_apply(s, d, len, from, now);
    if (rv != RUDP_OK && rv != RUDP_ERR_PROTOCOL && rv != RUDP_ERR_FLOW_CONTROL) {
        rudp_session_del(s);
        *err = rv;
        return NULL;
    }
    *err = RUDP_OK;
    return s;
}

/* Opens an INITIAL in place under the key its header implies and decodes
 * it into |d|.  Returns RUDP_OK, RUDP_ERR_AUTH, RUDP_ERR_MALFORMED,
 * RUDP_ERR_NOMEM or RUDP_ERR_NOT_INITIAL (no SESSION SYN in it). */
static int accept_open(const rudp_settings *set, uint8_t *pkt, size_t len,
                       const rudp_pkt_hdr *h, rudp_decoded_pkt *d) {
    uint8_t early[RUDP_SECRET_LEN];
    rudp_aead a;
    rudp_hs_early(early, set);
    if (!rudp_hs_initial_aead(&a, early, h->dcid, h->share)) {
        rudp_aead_free(&a);
        return RUDP_ERR_NOMEM;
    }
    ssize_t n = rudp_aead_open(&a, h->pn, pkt, h->len, pkt + h->len, len - h->len);
    rudp_aead_free(&a);
    if (n < 0)
        return RUDP_ERR_AUTH;
    int rv = rudp_wire_decode_frames(pkt + h->len, (size_t)n, d);
    d->hdr = *h;
    if (rv == RUDP_OK)
        rv = rudp_sess_initial_frames(set, d);
    if (rv == RUDP_OK && !accept_syn(d))
        rv = RUDP_ERR_NOT_INITIAL;
    return rv;
}

rudp_session *rudp_session_new_server(const rudp_settings *set, uint64_t seed, uint8_t *pkt,
                                      size_t len, const rudp_addr *from, rudp_tstamp now,
                                      bool busy, rudp_reply *reply, int *err) {
    rudp_pkt_hdr h;
    rudp_decoded_pkt d;
    bool validated = false;
    reply->len = 0;
    if (!set || rudp_settings_check(set) != RUDP_OK) {
        *err = RUDP_ERR_INVAL;
        return NULL;
    }
    rudp_settings eff = *set; /* + the key of a ticket */
    eff.ticket_set = false;
    int rv = rudp_wire_parse(pkt, len, &h);
    rv = accept_triage(&eff, len, &h, rv, from, now, busy, reply, &validated);
    if (rv == RUDP_OK)
        rv = accept_open(&eff, pkt, len, &h, &d);
    if (rv == RUDP_ERR_AUTH && eff.psk_set)
        rv = accept_refuse(reply, h.dcid, RUDP_REFUSE_KEY_MISMATCH);
    if (rv != RUDP_OK) {
        *err = rv;
        return NULL;
    }
    validated = validated || accept_early(&eff, &d, now);
    rudp_session *s = accept_make(&eff, seed, &d, len, from, now, validated, err);
    memset(&eff, 0, sizeof(eff));
    return s;
}
