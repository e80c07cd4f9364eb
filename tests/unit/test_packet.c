/*
 * test_packet.c — unit tests of the packet headers (engine/packet.c).
 *
 * Each of the six header encoders is parsed back by rudp_wire_parse and
 * every field compared, hdr.len included (the AEAD's associated data);
 * every truncation of every type is RUDP_ERR_MALFORMED, and so is a
 * fixed-size type with a byte too many, an unknown type, unknown INITIAL
 * flags and a token longer than RUDP_MAX_TOKEN; another version is
 * RUDP_ERR_VERSION with its version, type and connection ID filled in, the
 * ten-byte prefix being the same in every version.  Encoders given too
 * little room return RUDP_ERR_NOBUF and write nothing.  rudp_packet_peek_cid
 * reads the connection ID of any version from ten bytes on.  Inputs that are
 * parsed are copied into heap buffers of exactly their length, so that
 * AddressSanitizer catches any read past the end.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "wire.h"

#define CID 0x0123456789abcdefull
#define PN 0x1122334455667788ull

/* A datagram built for a test: its bytes, and where its header ends. */
typedef struct built {
    uint8_t buf[256];
    size_t len;  /* the whole datagram */
    size_t hlen; /* the header (what parse must give as hdr.len) */
} built;

enum sample {
    S_PROTECTED,
    S_HANDSHAKE,
    S_INITIAL,
    S_INITIAL_TOKEN,
    S_RETRY,
    S_REFUSE,
    S_RESET,
    NSAMPLES
};

static uint8_t share[RUDP_SHARE_LEN], token[RUDP_MAX_TOKEN], tag[RUDP_TAG_LEN];

/* Fills the share, token and tag with distinct patterns. */
static void fill_inputs(void) {
    test_fill_pattern(share, sizeof(share), 1);
    test_fill_pattern(token, sizeof(token), 2);
    test_fill_pattern(tag, sizeof(tag), 3);
}

/* Appends |n| pattern bytes (one frame byte and a tag, or more) after a
 * sealed header of |b|. */
static void add_body(built *b, size_t n) {
    test_fill_pattern(b->buf + b->hlen, n, 4);
    b->len = b->hlen + n;
}

/* Builds sample |which| with the encoder of its type. */
static void build(enum sample which, built *b) {
    ssize_t n = 0;
    fill_inputs();
    memset(b, 0, sizeof(*b));
    switch (which) {
    case S_PROTECTED:
        n = rudp_wire_encode_hdr(b->buf, sizeof(b->buf), CID, PN);
        break;
    case S_HANDSHAKE:
        n = rudp_wire_encode_hs_hdr(b->buf, sizeof(b->buf), CID, PN, share);
        break;
    case S_INITIAL:
        n = rudp_wire_encode_initial_hdr(b->buf, sizeof(b->buf), CID, PN, share, 0, NULL,
                                         0);
        break;
    case S_INITIAL_TOKEN:
        n = rudp_wire_encode_initial_hdr(b->buf, sizeof(b->buf), CID, PN, share,
                                         RUDP_INITIAL_F_PSK, token, RUDP_MAX_TOKEN);
        break;
    case S_RETRY:
        n = rudp_wire_encode_retry(b->buf, sizeof(b->buf), CID, token, 24);
        break;
    case S_REFUSE:
        n = rudp_wire_encode_refuse(b->buf, sizeof(b->buf), CID, RUDP_REFUSE_KEY_MISMATCH);
        break;
    case S_RESET:
        n = rudp_wire_encode_reset(b->buf, sizeof(b->buf), CID, tag);
        break;
    default:
        cr_assert_fail();
    }
    cr_assert_gt(n, 0, "sample %d", which);
    b->hlen = b->len = (size_t)n;
    if (which == S_RETRY) {
        memcpy(b->buf + n, tag, RUDP_TAG_LEN);
        b->len += RUDP_TAG_LEN;
    } else if (which != S_REFUSE && which != S_RESET) {
        add_body(b, 1 + RUDP_TAG_LEN);
    }
}

/* Returns the header length sample |which| must have. */
static size_t expected_hlen(enum sample which) {
    static const size_t hlen[NSAMPLES] = {
        [S_PROTECTED] = RUDP_HDR_LEN,
        [S_HANDSHAKE] = RUDP_HS_HDR_LEN,
        [S_INITIAL] = RUDP_INITIAL_HDR_LEN,
        [S_INITIAL_TOKEN] = RUDP_INITIAL_HDR_LEN + RUDP_MAX_TOKEN,
        [S_RETRY] = 12 + 24,
        [S_REFUSE] = RUDP_REFUSE_LEN,
        [S_RESET] = RUDP_RESET_LEN,
    };
    return hlen[which];
}

/* Returns rudp_wire_parse of the first |len| bytes of |src|, parsed from an
 * exact heap copy (*h then points into freed memory: compare only values). */
static int parse_exact(const uint8_t *src, size_t len, rudp_pkt_hdr *h) {
    uint8_t *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    memcpy(copy, src, len);
    int rv = rudp_wire_parse(copy, len, h);
    free(copy);
    return rv;
}

/* Checks the fields of a parsed PROTECTED, HANDSHAKE or INITIAL header. */
static void check_sealed(enum sample which, const built *b, const rudp_pkt_hdr *h) {
    cr_assert_eq(h->pn, PN);
    if (which == S_PROTECTED) {
        cr_assert_null(h->share);
        return;
    }
    cr_assert_eq(h->share, b->buf + 18);
    cr_assert_eq(memcmp(h->share, share, RUDP_SHARE_LEN), 0);
    if (which == S_HANDSHAKE)
        return;
    cr_assert_eq(h->flags, which == S_INITIAL_TOKEN ? RUDP_INITIAL_F_PSK : 0);
    cr_assert_eq(h->token_len, which == S_INITIAL_TOKEN ? RUDP_MAX_TOKEN : 0);
    cr_assert_eq(h->token, b->buf + RUDP_INITIAL_HDR_LEN);
    cr_assert_eq(memcmp(h->token, token, h->token_len), 0);
}

/* Checks the fields of a parsed RETRY, REFUSE or RESET header. */
static void check_unsealed(enum sample which, const built *b, const rudp_pkt_hdr *h) {
    if (which == S_RETRY) {
        cr_assert_eq(h->token_len, 24);
        cr_assert_eq(h->token, b->buf + 12);
        cr_assert_eq(memcmp(h->token, token, 24), 0);
        cr_assert_eq(h->tag, b->buf + 36);
        cr_assert_eq(memcmp(h->tag, tag, RUDP_TAG_LEN), 0);
    } else if (which == S_REFUSE) {
        cr_assert_eq(h->reason, RUDP_REFUSE_KEY_MISMATCH);
        cr_assert_eq(h->their_version, RUDP_VERSION);
    } else {
        cr_assert_eq(h->tag, b->buf + 10);
        cr_assert_eq(memcmp(h->tag, tag, RUDP_TOKEN_LEN), 0);
    }
}

Test(packet, every_header_round_trips) {
    static const uint8_t type[NSAMPLES] = {
        RUDP_PKT_PROTECTED, RUDP_PKT_HANDSHAKE, RUDP_PKT_INITIAL,         RUDP_PKT_INITIAL,
        RUDP_PKT_RETRY,     RUDP_PKT_REFUSE,    RUDP_PKT_STATELESS_RESET,
    };
    for (int i = 0; i < NSAMPLES; i++) {
        built b;
        rudp_pkt_hdr h;
        build(i, &b);
        cr_assert_eq(b.hlen, expected_hlen(i), "sample %d", i);
        cr_assert_eq(rudp_wire_parse(b.buf, b.len, &h), RUDP_OK, "sample %d", i);
        cr_assert_eq(h.version, RUDP_VERSION);
        cr_assert_eq(h.type, type[i], "sample %d", i);
        cr_assert_eq(h.dcid, CID);
        cr_assert_eq(h.len, expected_hlen(i), "sample %d: len %zu", i, h.len);
        if (i <= S_INITIAL_TOKEN)
            check_sealed(i, &b, &h);
        else
            check_unsealed(i, &b, &h);
    }
}

Test(packet, sealed_types_take_any_body_from_one_byte_and_a_tag) {
    for (int i = S_PROTECTED; i <= S_INITIAL_TOKEN; i++) {
        built b;
        rudp_pkt_hdr h;
        build(i, &b);
        for (size_t extra = 0; extra < 40; extra++) {
            add_body(&b, 1 + RUDP_TAG_LEN + extra);
            cr_assert_eq(parse_exact(b.buf, b.len, &h), RUDP_OK, "sample %d + %zu", i,
                         extra);
            cr_assert_eq(h.len, expected_hlen(i));
        }
    }
}

Test(packet, every_truncation_is_malformed) {
    for (int i = 0; i < NSAMPLES; i++) {
        built b;
        rudp_pkt_hdr h;
        build(i, &b);
        for (size_t len = 0; len < b.len; len++)
            cr_assert_eq(parse_exact(b.buf, len, &h), RUDP_ERR_MALFORMED,
                         "sample %d, %zu of %zu", i, len, b.len);
        cr_assert_eq(parse_exact(b.buf, b.len, &h), RUDP_OK, "sample %d", i);
    }
}

Test(packet, fixed_size_types_with_a_byte_more_are_malformed) {
    for (int i = S_RETRY; i <= S_RESET; i++) {
        built b;
        rudp_pkt_hdr h;
        build(i, &b);
        cr_assert_eq(parse_exact(b.buf, b.len + 1, &h), RUDP_ERR_MALFORMED, "sample %d", i);
    }
}

Test(packet, another_version_is_reported_with_its_prefix) {
    static const uint8_t versions[] = {0, 1, RUDP_VERSION + 1, 0xff};
    for (int i = 0; i < NSAMPLES; i++) {
        for (size_t v = 0; v < sizeof(versions); v++) {
            built b;
            rudp_pkt_hdr h;
            build(i, &b);
            b.buf[0] = versions[v];
            b.buf[1] = (uint8_t)(0x40 + v); /* a type this version does not have */
            cr_assert_eq(parse_exact(b.buf, RUDP_PREFIX_LEN, &h), RUDP_ERR_VERSION);
            cr_assert_eq(h.version, versions[v]);
            cr_assert_eq(h.type, 0x40 + v);
            cr_assert_eq(h.dcid, CID);
            cr_assert_eq(parse_exact(b.buf, b.len, &h), RUDP_ERR_VERSION);
            cr_assert_eq(h.dcid, CID);
            cr_assert_eq(parse_exact(b.buf, RUDP_PREFIX_LEN - 1, &h), RUDP_ERR_MALFORMED);
        }
    }
}

Test(packet, unknown_type_is_malformed) {
    static const uint8_t types[] = {RUDP_PKT_STATELESS_RESET + 1, 0x10, 0x80, 0xff};
    for (size_t t = 0; t < sizeof(types); t++) {
        built b;
        rudp_pkt_hdr h;
        build(S_INITIAL, &b);
        b.buf[1] = types[t];
        cr_assert_eq(parse_exact(b.buf, b.len, &h), RUDP_ERR_MALFORMED, "type %u",
                     types[t]);
    }
}

Test(packet, a_ticket_flag_needs_a_ticket_and_no_key_flag) {
    /* RUDP_INITIAL_F_TICKET: the token is a ticket, exactly
     * RUDP_TICKET_LEN bytes; the key and the ticket exclude each other. */
    built b;
    rudp_pkt_hdr h;
    build(S_INITIAL_TOKEN, &b); /* a token of RUDP_MAX_TOKEN == RUDP_TICKET_LEN */
    cr_assert_eq(RUDP_MAX_TOKEN, RUDP_TICKET_LEN);
    b.buf[50] = RUDP_INITIAL_F_TICKET;
    cr_assert_eq(parse_exact(b.buf, b.len, &h), RUDP_OK);
    cr_assert_eq(h.flags, RUDP_INITIAL_F_TICKET);
    b.buf[50] = RUDP_INITIAL_F_TICKET | RUDP_INITIAL_F_PSK;
    cr_assert_eq(parse_exact(b.buf, b.len, &h), RUDP_ERR_MALFORMED);
    build(S_INITIAL, &b); /* no token */
    b.buf[50] = RUDP_INITIAL_F_TICKET;
    cr_assert_eq(parse_exact(b.buf, b.len, &h), RUDP_ERR_MALFORMED);
}

Test(packet, unknown_initial_flags_are_malformed) {
    for (unsigned bit = 2; bit < 8; bit++) {
        built b;
        rudp_pkt_hdr h;
        build(S_INITIAL, &b);
        b.buf[50] = (uint8_t)(1u << bit);
        cr_assert_eq(parse_exact(b.buf, b.len, &h), RUDP_ERR_MALFORMED, "flag %#x",
                     1u << bit);
    }
}

Test(packet, a_token_longer_than_the_maximum_is_malformed) {
    /* The length field says RUDP_MAX_TOKEN + 1 and every byte is there. */
    built b;
    rudp_pkt_hdr h;
    build(S_INITIAL_TOKEN, &b);
    rudp_put16(b.buf + 51, RUDP_MAX_TOKEN + 1);
    add_body(&b, 1 + 1 + RUDP_TAG_LEN);
    cr_assert_eq(parse_exact(b.buf, b.len, &h), RUDP_ERR_MALFORMED);
    uint8_t r[12 + RUDP_MAX_TOKEN + 1 + RUDP_TAG_LEN];
    memset(r, 0x3c, sizeof(r));
    cr_assert_eq(rudp_wire_encode_retry(r, sizeof(r), CID, token, RUDP_MAX_TOKEN),
                 12 + RUDP_MAX_TOKEN);
    rudp_put16(r + 10, RUDP_MAX_TOKEN + 1);
    cr_assert_eq(parse_exact(r, sizeof(r), &h), RUDP_ERR_MALFORMED);
    rudp_put16(r + 10, RUDP_MAX_TOKEN);
    cr_assert_eq(parse_exact(r, sizeof(r) - 1, &h), RUDP_OK);
}

/* Runs the encoder of sample |which| into |buf| with room |cap|. */
static ssize_t encode_into(enum sample which, uint8_t *buf, size_t cap) {
    switch (which) {
    case S_PROTECTED:
        return rudp_wire_encode_hdr(buf, cap, CID, PN);
    case S_HANDSHAKE:
        return rudp_wire_encode_hs_hdr(buf, cap, CID, PN, share);
    case S_INITIAL:
        return rudp_wire_encode_initial_hdr(buf, cap, CID, PN, share, 0, NULL, 0);
    case S_INITIAL_TOKEN:
        return rudp_wire_encode_initial_hdr(buf, cap, CID, PN, share, RUDP_INITIAL_F_PSK,
                                            token, RUDP_MAX_TOKEN);
    case S_RETRY:
        return rudp_wire_encode_retry(buf, cap, CID, token, 24);
    case S_REFUSE:
        return rudp_wire_encode_refuse(buf, cap, CID, RUDP_REFUSE_KEY_MISMATCH);
    default:
        return rudp_wire_encode_reset(buf, cap, CID, tag);
    }
}

/* Returns true when none of the |n| bytes at |p| differs from |v|. */
static bool all_bytes(const uint8_t *p, size_t n, uint8_t v) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return false;
    return true;
}

Test(packet, encoders_write_nothing_without_room) {
    /* The room needed is the header, and for a RETRY its tag too. */
    fill_inputs();
    for (int i = 0; i < NSAMPLES; i++) {
        size_t need = expected_hlen(i) + (i == S_RETRY ? RUDP_TAG_LEN : 0);
        uint8_t buf[256];
        for (size_t cap = 0; cap < need; cap++) {
            memset(buf, 0xa5, sizeof(buf));
            cr_assert_eq(encode_into(i, buf, cap), RUDP_ERR_NOBUF, "sample %d cap %zu", i,
                         cap);
            cr_assert(all_bytes(buf, sizeof(buf), 0xa5), "sample %d wrote with cap %zu", i,
                      cap);
        }
        cr_assert_eq(encode_into(i, buf, need), (ssize_t)expected_hlen(i), "sample %d", i);
    }
}

Test(packet, encoders_refuse_a_token_over_the_maximum) {
    uint8_t buf[512];
    fill_inputs();
    memset(buf, 0xa5, sizeof(buf));
    cr_assert_eq(rudp_wire_encode_initial_hdr(buf, sizeof(buf), CID, PN, share, 0, token,
                                              RUDP_MAX_TOKEN + 1),
                 RUDP_ERR_NOBUF);
    cr_assert_eq(rudp_wire_encode_retry(buf, sizeof(buf), CID, token, RUDP_MAX_TOKEN + 1),
                 RUDP_ERR_NOBUF);
    cr_assert(all_bytes(buf, sizeof(buf), 0xa5));
}

Test(packet, peek_cid_needs_ten_bytes_of_any_version) {
    built b;
    build(S_PROTECTED, &b);
    for (size_t len = 0; len < RUDP_PREFIX_LEN; len++) {
        uint8_t *p = malloc(len ? len : 1);
        uint64_t cid = 7;
        memcpy(p, b.buf, len);
        cr_assert_eq(rudp_packet_peek_cid(p, len, &cid), RUDP_ERR_MALFORMED, "len %zu",
                     len);
        cr_assert_eq(cid, 7, "len %zu wrote the cid", len);
        free(p);
    }
    static const uint8_t versions[] = {0, RUDP_VERSION, RUDP_VERSION + 1, 0xff};
    for (size_t v = 0; v < sizeof(versions); v++) {
        uint8_t *p = malloc(RUDP_PREFIX_LEN);
        uint64_t cid = 0;
        memcpy(p, b.buf, RUDP_PREFIX_LEN);
        p[0] = versions[v];
        p[1] = 0xee;
        cr_assert_eq(rudp_packet_peek_cid(p, RUDP_PREFIX_LEN, &cid), RUDP_OK);
        cr_assert_eq(cid, CID, "version %u", versions[v]);
        free(p);
    }
}
