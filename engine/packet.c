/*
 * packet.c — the clear headers of the six packet types (docs/PROTOCOL.md,
 * "Packets").
 *
 * Every packet starts with the same ten bytes, whatever its version:
 * version, type and the destination connection ID.  That invariant is what
 * lets a server route a datagram of any version to a session, and answer a
 * datagram of a version it does not speak with a REFUSE naming the same
 * connection ID.  After the prefix each type has its own fixed layout:
 *
 *   INITIAL    pn, the client's key share, flags, a token (retry), then
 *              frames sealed under the initial key, and the tag
 *   HANDSHAKE  pn, the server's key share, then sealed frames and tag
 *   PROTECTED  pn, then sealed frames and tag
 *   RETRY      a token for the client's next INITIAL, and a tag
 *   REFUSE     why, and the version the refuser speaks
 *   RESET      the stateless reset token of the connection ID
 *
 * The header of a sealed packet is its AEAD's associated data, so none of
 * it can be changed in flight; the packet number is in the clear (it makes
 * the nonce) but cannot be altered either.  Nothing here decrypts or
 * checks a tag: that is the session's (session_input.c) or the server's
 * first look (handshake.c).
 */
#include <string.h>

#include "wire.h"

/* Writes version, type and connection ID: the prefix every packet has. */
static void pkt_put_prefix(uint8_t *buf, uint8_t type, uint64_t dcid) {
    buf[0] = RUDP_VERSION;
    buf[1] = type;
    rudp_put64(buf + 2, dcid);
}

ssize_t rudp_wire_encode_hdr(uint8_t *buf, size_t cap, uint64_t dcid, uint64_t pn) {
    if (cap < RUDP_HDR_LEN)
        return RUDP_ERR_NOBUF;
    pkt_put_prefix(buf, RUDP_PKT_PROTECTED, dcid);
    rudp_put64(buf + 10, pn);
    return RUDP_HDR_LEN;
}

ssize_t rudp_wire_encode_hs_hdr(uint8_t *buf, size_t cap, uint64_t dcid, uint64_t pn,
                                const uint8_t share[RUDP_SHARE_LEN]) {
    if (cap < RUDP_HS_HDR_LEN)
        return RUDP_ERR_NOBUF;
    pkt_put_prefix(buf, RUDP_PKT_HANDSHAKE, dcid);
    rudp_put64(buf + 10, pn);
    memcpy(buf + 18, share, RUDP_SHARE_LEN);
    return RUDP_HS_HDR_LEN;
}

ssize_t rudp_wire_encode_initial_hdr(uint8_t *buf, size_t cap, uint64_t dcid, uint64_t pn,
                                     const uint8_t share[RUDP_SHARE_LEN], uint8_t flags,
                                     const uint8_t *token, uint16_t tlen) {
    if (tlen > RUDP_MAX_TOKEN || cap < RUDP_INITIAL_HDR_LEN + (size_t)tlen)
        return RUDP_ERR_NOBUF;
    pkt_put_prefix(buf, RUDP_PKT_INITIAL, dcid);
    rudp_put64(buf + 10, pn);
    memcpy(buf + 18, share, RUDP_SHARE_LEN);
    buf[50] = flags;
    rudp_put16(buf + 51, tlen);
    if (tlen)
        memcpy(buf + RUDP_INITIAL_HDR_LEN, token, tlen);
    return RUDP_INITIAL_HDR_LEN + tlen;
}

ssize_t rudp_wire_encode_retry(uint8_t *buf, size_t cap, uint64_t dcid,
                               const uint8_t *token, uint16_t tlen) {
    if (tlen > RUDP_MAX_TOKEN || cap < RUDP_RETRY_MIN_LEN + (size_t)tlen)
        return RUDP_ERR_NOBUF;
    pkt_put_prefix(buf, RUDP_PKT_RETRY, dcid);
    rudp_put16(buf + 10, tlen);
    memcpy(buf + 12, token, tlen);
    return 12 + tlen;
}

ssize_t rudp_wire_encode_refuse(uint8_t *buf, size_t cap, uint64_t dcid, uint8_t reason) {
    if (cap < RUDP_REFUSE_LEN)
        return RUDP_ERR_NOBUF;
    pkt_put_prefix(buf, RUDP_PKT_REFUSE, dcid);
    buf[10] = reason;
    buf[11] = RUDP_VERSION;
    return RUDP_REFUSE_LEN;
}

ssize_t rudp_wire_encode_reset(uint8_t *buf, size_t cap, uint64_t dcid,
                               const uint8_t token[RUDP_TOKEN_LEN]) {
    if (cap < RUDP_RESET_LEN)
        return RUDP_ERR_NOBUF;
    pkt_put_prefix(buf, RUDP_PKT_STATELESS_RESET, dcid);
    memcpy(buf + 10, token, RUDP_TOKEN_LEN);
    return RUDP_RESET_LEN;
}

/* --- parsing --- */

/* The least a sealed packet of a header of |hlen| bytes can be: one frame
 * byte and the tag. */
static size_t pkt_sealed_min(size_t hlen) {
    return hlen + 1 + RUDP_TAG_LEN;
}

/* The INITIAL flags; a key and a ticket exclude each other. */
#define WIRE_INITIAL_FLAGS (RUDP_INITIAL_F_PSK | RUDP_INITIAL_F_TICKET)

/* Parses the part of an INITIAL after the prefix.  Returns RUDP_OK or
 * RUDP_ERR_MALFORMED. */
static int pkt_parse_initial(const uint8_t *buf, size_t len, rudp_pkt_hdr *h) {
    if (len < pkt_sealed_min(RUDP_INITIAL_HDR_LEN))
        return RUDP_ERR_MALFORMED;
    h->pn = rudp_get64(buf + 10);
    h->share = buf + 18;
    h->flags = buf[50];
    h->token_len = rudp_get16(buf + 51);
    h->token = buf + RUDP_INITIAL_HDR_LEN;
    h->len = RUDP_INITIAL_HDR_LEN + (size_t)h->token_len;
    bool ticket = (h->flags & RUDP_INITIAL_F_TICKET) != 0;
    if (h->token_len > RUDP_MAX_TOKEN || (h->flags & ~WIRE_INITIAL_FLAGS) ||
        h->flags == WIRE_INITIAL_FLAGS || (ticket && h->token_len != RUDP_TICKET_LEN) ||
        len < pkt_sealed_min(h->len))
        return RUDP_ERR_MALFORMED;
    return RUDP_OK;
}

/* Parses a sealed packet with a packet number (and, for HANDSHAKE, a key
 * share) after the prefix.  Returns RUDP_OK or RUDP_ERR_MALFORMED. */
static int pkt_parse_sealed(const uint8_t *buf, size_t len, rudp_pkt_hdr *h) {
    h->len = h->type == RUDP_PKT_HANDSHAKE ? RUDP_HS_HDR_LEN : RUDP_HDR_LEN;
    if (len < pkt_sealed_min(h->len))
        return RUDP_ERR_MALFORMED;
    h->pn = rudp_get64(buf + 10);
    if (h->type == RUDP_PKT_HANDSHAKE)
        h->share = buf + 18;
    return RUDP_OK;
}

/* Parses a RETRY after the prefix.  Returns RUDP_OK or RUDP_ERR_MALFORMED. */
static int pkt_parse_retry(const uint8_t *buf, size_t len, rudp_pkt_hdr *h) {
    if (len < RUDP_RETRY_MIN_LEN)
        return RUDP_ERR_MALFORMED;
    h->token_len = rudp_get16(buf + 10);
    h->token = buf + 12;
    h->len = 12 + (size_t)h->token_len;
    if (h->token_len > RUDP_MAX_TOKEN || len != h->len + RUDP_TAG_LEN)
        return RUDP_ERR_MALFORMED;
    h->tag = buf + h->len;
    return RUDP_OK;
}

/* Parses the fixed-size types (REFUSE, RESET) after the prefix. */
static int pkt_parse_fixed(const uint8_t *buf, size_t len, rudp_pkt_hdr *h) {
    if (h->type == RUDP_PKT_REFUSE) {
        if (len != RUDP_REFUSE_LEN)
            return RUDP_ERR_MALFORMED;
        h->reason = buf[10];
        h->their_version = buf[11];
    } else {
        if (len != RUDP_RESET_LEN)
            return RUDP_ERR_MALFORMED;
        h->tag = buf + 10;
    }
    h->len = len;
    return RUDP_OK;
}

int rudp_wire_parse(const uint8_t *buf, size_t len, rudp_pkt_hdr *h) {
    memset(h, 0, sizeof(*h));
    if (len < RUDP_PREFIX_LEN)
        return RUDP_ERR_MALFORMED;
    h->version = buf[0];
    h->type = buf[1];
    h->dcid = rudp_get64(buf + 2);
    if (h->version != RUDP_VERSION)
        return RUDP_ERR_VERSION;
    switch (h->type) {
    case RUDP_PKT_INITIAL:
        return pkt_parse_initial(buf, len, h);
    case RUDP_PKT_HANDSHAKE:
    case RUDP_PKT_PROTECTED:
        return pkt_parse_sealed(buf, len, h);
    case RUDP_PKT_RETRY:
        return pkt_parse_retry(buf, len, h);
    case RUDP_PKT_REFUSE:
    case RUDP_PKT_STATELESS_RESET:
        return pkt_parse_fixed(buf, len, h);
    default:
        return RUDP_ERR_MALFORMED;
    }
}

int rudp_packet_peek_cid(const uint8_t *pkt, size_t len, uint64_t *cid) {
    if (len < RUDP_PREFIX_LEN)
        return RUDP_ERR_MALFORMED;
    *cid = rudp_get64(pkt + 2);
    return RUDP_OK;
}
