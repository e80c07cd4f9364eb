/*
 * session_protect.c — a session's packet protection: which packet type it
 * sends now, sealing it, and opening what arrives (docs/PROTOCOL.md
 * "Packet protection").
 *
 * A client sends INITIAL packets, sealed under the initial key, until the
 * server's HANDSHAKE arrives; the share in that header gives it the 1-RTT
 * keys (handshake.c), and only a HANDSHAKE that opens under them is
 * believed: one with any other share is dropped, keys and all.  From then
 * on it sends PROTECTED.  A server sends HANDSHAKE, with its share, until
 * the client's first PROTECTED packet opens: that proves the client got
 * the share at the address it claims (address validation), and from then
 * on the server sends PROTECTED too.
 *
 * Whatever does not open is dropped and counted (pkts_auth_failed) before
 * anything in it is looked at: forged ACKs, resets, GoAways, PINGs from
 * elsewhere and DATA have no effect.  An INITIAL is only as good as its
 * key: without a pre-shared key it carries the client's parameters and
 * padding, nothing a server acts on before the client is validated.
 */
#include "handshake.h"
#include "session.h"

#include <string.h>

/* Returns the type of the next packet |s| sends (static: the packet path
 * calls it several times a packet, inlined). */
static uint8_t protect_type(const rudp_session *s) {
    if (!s->keyed)
        return RUDP_PKT_INITIAL;
    if (!s->is_client && !s->peer_keyed)
        return RUDP_PKT_HANDSHAKE;
    return RUDP_PKT_PROTECTED;
}

uint8_t rudp_sess_pkt_type(const rudp_session *s) {
    return protect_type(s);
}

size_t rudp_sess_hdr_len(const rudp_session *s) {
    switch (protect_type(s)) {
    case RUDP_PKT_INITIAL:
        return RUDP_INITIAL_HDR_LEN + s->token_len;
    case RUDP_PKT_HANDSHAKE:
        return RUDP_HS_HDR_LEN;
    default:
        return RUDP_HDR_LEN;
    }
}

bool rudp_sess_sends_initial(const rudp_session *s) {
    return protect_type(s) == RUDP_PKT_INITIAL;
}

ssize_t rudp_sess_seal(rudp_session *s, uint8_t *buf, size_t len, size_t cap, uint64_t pn) {
    uint8_t type = protect_type(s);
    size_t hlen = rudp_sess_hdr_len(s);
    if (len < hlen || cap < len + RUDP_TAG_LEN)
        return RUDP_ERR_NOBUF;
    rudp_aead *a = &s->tx;
    if (type == RUDP_PKT_INITIAL) {
        uint8_t flags = s->settings.psk_set      ? RUDP_INITIAL_F_PSK
                        : s->settings.ticket_set ? RUDP_INITIAL_F_TICKET
                                                 : 0;
        rudp_wire_encode_initial_hdr(buf, hlen, s->peer_cid, pn, s->kp.pub, flags, s->token,
                                     s->token_len);
        a = &s->initial;
    } else if (type == RUDP_PKT_HANDSHAKE) {
        rudp_wire_encode_hs_hdr(buf, hlen, s->peer_cid, pn, s->kp.pub);
    } else {
        rudp_wire_encode_hdr(buf, hlen, s->peer_cid, pn);
    }
    ssize_t n = rudp_aead_seal(a, pn, buf, hlen, buf + hlen, len - hlen);
    return n < 0 ? n : (ssize_t)hlen + n;
}

/* --- keys --- */

bool rudp_sess_initial_private(const rudp_settings *set) {
    return set->psk_set || set->ticket_set;
}

bool rudp_sess_keys_client(rudp_session *s) {
    if (s->settings.psk_set)
        s->settings.ticket_set = false; /* the key is better */
    if (s->settings.ticket_set) {
        memcpy(s->token, s->settings.ticket.blob, RUDP_TICKET_LEN);
        s->token_len = RUDP_TICKET_LEN;
    }
    rudp_hs_early(s->early, &s->settings);
    return rudp_keypair_new(&s->kp) &&
           rudp_hs_initial_aead(&s->initial, s->early, s->initial_cid, s->kp.pub);
}

bool rudp_sess_drop_ticket(rudp_session *s) {
    s->settings.ticket_set = false;
    memset(&s->settings.ticket, 0, sizeof(s->settings.ticket));
    s->token_len = 0;
    rudp_hs_early(s->early, &s->settings);
    rudp_aead_free(&s->initial);
    s->session_frame_pending = true;
    return rudp_hs_initial_aead(&s->initial, s->early, s->initial_cid, s->kp.pub);
}

bool rudp_sess_keys_server(rudp_session *s, const uint8_t client_share[RUDP_SHARE_LEN]) {
    uint8_t dh[RUDP_SECRET_LEN];
    memcpy(s->peer_share, client_share, RUDP_SHARE_LEN);
    if (!rudp_keypair_new(&s->kp) || !rudp_x25519(dh, s->kp.priv, client_share))
        return false;
    rudp_hs_input in = {.early = s->early,
                        .dh = dh,
                        .dcid = s->initial_cid,
                        .client_share = client_share,
                        .server_share = s->kp.pub};
    s->keyed = rudp_hs_1rtt(&s->tx, &s->rx, &in, false);
    memset(dh, 0, sizeof(dh));
    return s->keyed;
}

void rudp_sess_keys_free(rudp_session *s) {
    rudp_aead_free(&s->initial);
    rudp_aead_free(&s->tx);
    rudp_aead_free(&s->rx);
    memset(&s->kp, 0, sizeof(s->kp));
    memset(s->early, 0, sizeof(s->early));
}

/* --- opening --- */

/* Client: derives the 1-RTT keys from the HANDSHAKE share |h| and opens the
 * packet with them; keeps the keys only when it opens.  Returns the
 * plaintext length or RUDP_ERR_AUTH. */
static ssize_t protect_open_first_handshake(rudp_session *s, uint8_t *pkt, size_t len,
                                            const rudp_pkt_hdr *h) {
    uint8_t dh[RUDP_SECRET_LEN];
    rudp_aead tx, rx;
    if (!rudp_x25519(dh, s->kp.priv, h->share))
        return RUDP_ERR_AUTH;
    rudp_hs_input in = {.early = s->early,
                        .dh = dh,
                        .dcid = s->initial_cid,
                        .client_share = s->kp.pub,
                        .server_share = h->share};
    bool ok = rudp_hs_1rtt(&tx, &rx, &in, true);
    memset(dh, 0, sizeof(dh));
    if (!ok)
        return RUDP_ERR_AUTH;
    ssize_t n = rudp_aead_open(&rx, h->pn, pkt, h->len, pkt + h->len, len - h->len);
    if (n < 0) {
        rudp_aead_free(&tx);
        rudp_aead_free(&rx);
        return n;
    }
    s->tx = tx;
    s->rx = rx;
    s->keyed = true;
    rudp_aead_free(&s->initial); /* the client sends no INITIAL any more */
    return n;
}

/* Returns the key that opens a packet of header |h| at |s|, NULL when |s|
 * takes no such packet now (*first: a client's first HANDSHAKE, which
 * brings the keys). */
static rudp_aead *protect_rx_key(rudp_session *s, const rudp_pkt_hdr *h, bool *first) {
    *first = false;
    switch (h->type) {
    case RUDP_PKT_INITIAL:
        if (s->is_client || s->peer_keyed || h->dcid != s->initial_cid ||
            memcmp(h->share, s->peer_share, RUDP_SHARE_LEN) != 0)
            return NULL;
        return &s->initial;
    case RUDP_PKT_HANDSHAKE:
        if (!s->is_client)
            return NULL;
        *first = !s->keyed;
        return &s->rx;
    case RUDP_PKT_PROTECTED:
        return s->keyed ? &s->rx : NULL;
    default:
        return NULL;
    }
}

int rudp_sess_initial_frames(const rudp_settings *set, const rudp_decoded_pkt *d) {
    for (uint32_t i = 0; i < d->nframes; i++) {
        const rudp_frame *f = &d->frames[i];
        if (f->type == RUDP_FRAME_SESSION && f->u.session.flags == RUDP_FLAG_SYN)
            continue;
        if (f->type == RUDP_FRAME_DATA && rudp_sess_initial_private(set))
            continue;
        return RUDP_ERR_MALFORMED;
    }
    return RUDP_OK;
}

int rudp_sess_open(rudp_session *s, uint8_t *pkt, size_t len, const rudp_pkt_hdr *h,
                   rudp_decoded_pkt *d) {
    bool first;
    rudp_aead *a = protect_rx_key(s, h, &first);
    if (!a)
        return RUDP_ERR_UNKNOWN_CID;
    ssize_t n = first ? protect_open_first_handshake(s, pkt, len, h)
                      : rudp_aead_open(a, h->pn, pkt, h->len, pkt + h->len, len - h->len);
    if (n < 0) {
        s->pkts_auth_failed++;
        return RUDP_ERR_AUTH;
    }
    int rv = rudp_wire_decode_frames(pkt + h->len, (size_t)n, d);
    d->hdr = *h;
    if (rv == RUDP_OK && h->type == RUDP_PKT_INITIAL)
        rv = rudp_sess_initial_frames(&s->settings, d);
    return rv;
}
