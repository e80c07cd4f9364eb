/*
 * wire.c — the frame codec (docs/PROTOCOL.md, "Frames"); packet headers
 * are engine/packet.c's.
 *
 * All fields are big-endian and of fixed width, but for the stream ID and
 * offset of DATA, which are QUIC varints (RFC 9000 §16): every frame but
 * DATA, ACK and PADDING has one size, and each decoder checks the length
 * once before it reads anything.
 *
 * The frames borrow their meaning from QUIC and their vocabulary from yamux:
 * SESSION carries the handshake (SYN, SYN|ACK) and transport parameters, DATA
 * carries stream bytes with SYN/ACK/FIN flags, WINDOW_UPDATE, RST and GOAWAY
 * are yamux's window, reset and go-away, and ACK encodes packet-number ranges
 * exactly as RFC 9000 §19.3.1 does (a first range, then gap/length pairs
 * where each gap is one less than the number of missing packets).
 *
 * Decoders never read past the length they are given and reject truncated,
 * unknown and out-of-range input with RUDP_ERR_MALFORMED; decoded DATA points
 * into the caller's buffer, so nothing is allocated or copied per packet.
 * Encoders check the room once, then write with helpers that cannot fail.
 */
#include "wire.h"

#include <string.h>

/* Largest stream offset plus one: DATA ends and RST final sizes stay below. */
#define WIRE_MAX_OFFSET (1ull << 62)

/* Fixed part of an ACK frame: type, largest, delay, range count, first range. */
#define ACK_FIXED_LEN 18
/* Each additional ACK range: gap and length. */
#define ACK_RANGE_LEN 8

/* ---- ACK ranges --------------------------------------------------------- */

/* Returns the smallest packet number range 0 is encoded with: its own, raised
 * when needed so that largest - smallest fits the 32-bit first-range field. */
static uint64_t ack_first_smallest(const rudp_ack_range *r) {
    if (r->largest - r->smallest > UINT32_MAX) {
        return r->largest - UINT32_MAX;
    }
    return r->smallest;
}

/* Returns true when range |r| can follow a range whose encoded smallest is
 * |prev|: it is well formed, lies at least one missing packet below, and its
 * gap and length fit their 32-bit fields. */
static bool ack_range_fits(uint64_t prev, const rudp_ack_range *r) {
    return r->smallest <= r->largest && prev >= 2 && r->largest <= prev - 2 &&
           prev - 2 - r->largest <= UINT32_MAX && r->largest - r->smallest <= UINT32_MAX;
}

/* Returns how many ranges of |ack| the encoder writes: range 0 (clamped), then
 * each next range until one does not fit.  Returns 0 when the frame cannot be
 * encoded at all (no ranges, too many, or a reversed range 0). */
static uint32_t ack_wire_nranges(const rudp_ack_frame *ack) {
    if (ack->nranges == 0 || ack->nranges > RUDP_ACK_MAX_RANGES ||
        ack->ranges[0].smallest > ack->ranges[0].largest) {
        return 0;
    }
    uint64_t prev = ack_first_smallest(&ack->ranges[0]);
    uint32_t n = 1;
    while (n < ack->nranges && ack_range_fits(prev, &ack->ranges[n])) {
        prev = ack->ranges[n].smallest;
        n++;
    }
    return n;
}

/* Returns the encoded size of |ack|, or 0 when it cannot be encoded. */
static size_t ack_frame_len(const rudp_ack_frame *ack) {
    uint32_t n = ack_wire_nranges(ack);
    return n == 0 ? 0 : ACK_FIXED_LEN + (size_t)(n - 1) * ACK_RANGE_LEN;
}

/* Writes the first |n| ranges of |ack| at |p|, which has room for them. */
static void ack_write(uint8_t *p, const rudp_ack_frame *ack, uint32_t n) {
    const rudp_ack_range *r = ack->ranges;
    uint64_t prev = ack_first_smallest(&r[0]);
    p[0] = RUDP_FRAME_ACK;
    rudp_put64(p + 1, r[0].largest);
    rudp_put32(p + 9, ack->ack_delay_us);
    p[13] = (uint8_t)(n - 1);
    rudp_put32(p + 14, (uint32_t)(r[0].largest - prev));
    p += ACK_FIXED_LEN;
    for (uint32_t i = 1; i < n; i++, p += ACK_RANGE_LEN) {
        rudp_put32(p, (uint32_t)(prev - 2 - r[i].largest));
        rudp_put32(p + 4, (uint32_t)(r[i].largest - r[i].smallest));
        prev = r[i].smallest;
    }
}

/* Decodes the gap/length pairs at |q| into ranges 1..nranges-1 of |ack|,
 * whose range 0 is already set.  Returns RUDP_OK, or RUDP_ERR_MALFORMED when a
 * range would fall below packet number 0. */
static int ack_read_ranges(const uint8_t *q, rudp_ack_frame *ack) {
    for (uint32_t i = 1; i < ack->nranges; i++, q += ACK_RANGE_LEN) {
        uint64_t gap = rudp_get32(q), len = rudp_get32(q + 4);
        uint64_t prev = ack->ranges[i - 1].smallest;
        if (prev < gap + 2 || prev - gap - 2 < len) {
            return RUDP_ERR_MALFORMED;
        }
        ack->ranges[i].largest = prev - gap - 2;
        ack->ranges[i].smallest = ack->ranges[i].largest - len;
    }
    return RUDP_OK;
}

/* Decodes an ACK frame; returns its size or RUDP_ERR_MALFORMED (truncated,
 * more than RUDP_ACK_MAX_RANGES ranges, or a range below 0). */
static ssize_t ack_decode(const uint8_t *p, size_t len, rudp_ack_frame *ack) {
    if (len < ACK_FIXED_LEN || p[13] >= RUDP_ACK_MAX_RANGES) {
        return RUDP_ERR_MALFORMED;
    }
    size_t size = ACK_FIXED_LEN + (size_t)p[13] * ACK_RANGE_LEN;
    uint64_t largest = rudp_get64(p + 1);
    uint32_t first = rudp_get32(p + 14);
    if (len < size || first > largest) {
        return RUDP_ERR_MALFORMED;
    }
    ack->ack_delay_us = rudp_get32(p + 9);
    ack->nranges = (uint32_t)p[13] + 1;
    ack->ranges[0].largest = largest;
    ack->ranges[0].smallest = largest - first;
    int rv = ack_read_ranges(p + ACK_FIXED_LEN, ack);
    return rv == RUDP_OK ? (ssize_t)size : rv;
}

/* Drops the lowest ranges of |ack| until it fits in |cap| bytes; returns false
 * when not even one range fits or the frame cannot be encoded. */
bool rudp_wire_ack_fit(rudp_ack_frame *ack, size_t cap) {
    if (ack->nranges > RUDP_ACK_MAX_RANGES) {
        ack->nranges = RUDP_ACK_MAX_RANGES;
    }
    if (cap < ACK_FIXED_LEN) {
        return false;
    }
    size_t room = (cap - ACK_FIXED_LEN) / ACK_RANGE_LEN + 1;
    if (ack->nranges > room) {
        ack->nranges = (uint32_t)room;
    }
    return ack_wire_nranges(ack) > 0;
}

/* ---- Other frames: decoding --------------------------------------------- */

/* Decodes a run of PADDING bytes; returns its length (at least 1). */
static ssize_t padding_decode(const uint8_t *p, size_t len) {
    size_t n = 1;
    while (n < len && p[n] == RUDP_FRAME_PADDING) {
        n++;
    }
    return (ssize_t)n;
}

/* Decodes a SESSION frame; returns its size or RUDP_ERR_MALFORMED (truncated,
 * SYN missing, unknown flag, or max_packet_size below 1200). */
static ssize_t session_decode(const uint8_t *p, size_t len, rudp_session_frame *s) {
    if (len < RUDP_SESSION_FRAME_LEN || !(p[1] & RUDP_FLAG_SYN) ||
        (p[1] & ~(RUDP_FLAG_SYN | RUDP_FLAG_ACK | RUDP_FLAG_CLOSED)) ||
        ((p[1] & RUDP_FLAG_CLOSED) && !(p[1] & RUDP_FLAG_ACK)) ||
        rudp_get16(p + 36) < RUDP_MIN_PACKET_SIZE) {
        return RUDP_ERR_MALFORMED;
    }
    s->flags = p[1];
    s->cid = rudp_get64(p + 2);
    s->initial_stream_window = rudp_get32(p + 10);
    s->initial_session_window = rudp_get64(p + 14);
    s->max_streams = rudp_get64(p + 22);
    s->idle_timeout_ms = rudp_get32(p + 30);
    s->max_ack_delay_ms = rudp_get16(p + 34);
    s->max_packet_size = rudp_get16(p + 36);
    memcpy(s->reset_token, p + 38, RUDP_TOKEN_LEN);
    s->time_ms = rudp_get64(p + 54);
    return RUDP_SESSION_FRAME_LEN;
}

/* ---- Variable-length integers (DATA frames) ----------------------------- */

/* Returns the bytes the varint encoding of |v| (< 2^62) takes: 1, 2, 4 or 8. */
static size_t varint_len(uint64_t v) {
    return v < (1ull << 6) ? 1 : v < (1ull << 14) ? 2 : v < (1ull << 30) ? 4 : 8;
}

/* Writes |v| at |p| as a varint of |n| bytes (n == varint_len(v)). */
static void varint_put(uint8_t *p, uint64_t v, size_t n) {
    static const uint8_t prefix[9] = {0, 0x00, 0x40, 0, 0x80, 0, 0, 0, 0xc0};
    for (size_t i = n; i-- > 0; v >>= 8)
        p[i] = (uint8_t)v;
    p[0] |= prefix[n];
}

/* Reads a varint at |p| (|len| bytes available) into *v; returns its size,
 * or 0 when it is truncated or not in its shortest form (every value has
 * one encoding, so a decoded frame re-encodes to the same bytes). */
static size_t varint_get(const uint8_t *p, size_t len, uint64_t *v) {
    if (len == 0)
        return 0;
    size_t n = (size_t)1 << (p[0] >> 6);
    if (len < n)
        return 0;
    uint64_t x = p[0] & 0x3f;
    for (size_t i = 1; i < n; i++)
        x = (x << 8) | p[i];
    if (varint_len(x) != n)
        return 0;
    *v = x;
    return n;
}

size_t rudp_wire_data_overhead(uint64_t sid, uint64_t offset) {
    return 4 + varint_len(sid) + varint_len(offset); /* type, flags, len, varints */
}

/* Decodes a DATA frame, pointing d->data into |p|; returns its size or
 * RUDP_ERR_MALFORMED (truncated, unknown flag, stream 0, or an end offset not
 * below 2^62). */
static ssize_t data_decode(const uint8_t *p, size_t len, rudp_data_frame *d) {
    uint64_t sid, offset;
    size_t pos = 2, n;

    if (len < RUDP_DATA_FRAME_MIN_OVERHEAD ||
        (p[1] & ~(RUDP_FLAG_SYN | RUDP_FLAG_ACK | RUDP_FLAG_FIN))) {
        return RUDP_ERR_MALFORMED;
    }
    if ((n = varint_get(p + pos, len - pos, &sid)) == 0)
        return RUDP_ERR_MALFORMED;
    pos += n;
    if ((n = varint_get(p + pos, len - pos, &offset)) == 0 || len - pos - n < 2)
        return RUDP_ERR_MALFORMED;
    pos += n;
    uint16_t dlen = rudp_get16(p + pos);
    pos += 2;
    if (sid == 0 || len - pos < dlen || offset >= WIRE_MAX_OFFSET - dlen) {
        return RUDP_ERR_MALFORMED;
    }
    d->flags = p[1];
    d->sid = sid;
    d->offset = offset;
    d->len = dlen;
    d->data = p + pos;
    return (ssize_t)(pos + dlen);
}

/* Decodes a WINDOW_UPDATE frame; returns its size or RUDP_ERR_MALFORMED. */
static ssize_t window_decode(const uint8_t *p, size_t len, rudp_window_frame *w) {
    if (len < RUDP_WINDOW_FRAME_LEN) {
        return RUDP_ERR_MALFORMED;
    }
    w->sid = rudp_get64(p + 1);
    w->max_data = rudp_get64(p + 9);
    return RUDP_WINDOW_FRAME_LEN;
}

/* Decodes an RST frame; returns its size or RUDP_ERR_MALFORMED (truncated,
 * stream 0, or a final size not below 2^62). */
static ssize_t rst_decode(const uint8_t *p, size_t len, rudp_rst_frame *r) {
    if (len < RUDP_RST_FRAME_LEN || rudp_get64(p + 1) == 0 ||
        rudp_get64(p + 13) >= WIRE_MAX_OFFSET) {
        return RUDP_ERR_MALFORMED;
    }
    r->sid = rudp_get64(p + 1);
    r->code = rudp_get32(p + 9);
    r->final_size = rudp_get64(p + 13);
    return RUDP_RST_FRAME_LEN;
}

/* Decodes the one 32-bit field of a GOAWAY frame; returns its size or
 * RUDP_ERR_MALFORMED. */
static ssize_t u32_decode(const uint8_t *p, size_t len, uint32_t *v) {
    if (len < RUDP_GOAWAY_FRAME_LEN) {
        return RUDP_ERR_MALFORMED;
    }
    *v = rudp_get32(p + 1);
    return RUDP_GOAWAY_FRAME_LEN;
}

/* Decodes the one 64-bit field of a MAX_STREAMS, PATH_CHALLENGE or
 * PATH_RESPONSE frame (all 9 bytes); returns its size or RUDP_ERR_MALFORMED. */
static ssize_t u64_decode(const uint8_t *p, size_t len, uint64_t *v) {
    if (len < RUDP_MAX_STREAMS_FRAME_LEN) {
        return RUDP_ERR_MALFORMED;
    }
    *v = rudp_get64(p + 1);
    return RUDP_MAX_STREAMS_FRAME_LEN;
}

/* Decodes a LISTENING frame (its one byte 0 or 1); returns its size or
 * RUDP_ERR_MALFORMED. */
static ssize_t listening_decode(const uint8_t *p, size_t len, uint8_t *v) {
    if (len < RUDP_LISTENING_FRAME_LEN || p[1] > 1) {
        return RUDP_ERR_MALFORMED;
    }
    *v = p[1];
    return RUDP_LISTENING_FRAME_LEN;
}

/* Decodes a NEW_TICKET frame; returns its size or RUDP_ERR_MALFORMED. */
static ssize_t ticket_decode(const uint8_t *p, size_t len, rudp_ticket *t) {
    if (len < RUDP_TICKET_FRAME_LEN) {
        return RUDP_ERR_MALFORMED;
    }
    memcpy(t->psk, p + 1, sizeof(t->psk));
    memcpy(t->blob, p + 1 + sizeof(t->psk), sizeof(t->blob));
    return RUDP_TICKET_FRAME_LEN;
}

/* Decodes the frame at the start of |p| into *f.  Returns the bytes it
 * occupies (> 0), or RUDP_ERR_MALFORMED for empty input, an unknown type or
 * any reason listed at the per-type decoders; *f is unspecified then. */
ssize_t rudp_wire_decode_frame(const uint8_t *p, size_t len, rudp_frame *f) {
    if (len == 0) {
        return RUDP_ERR_MALFORMED;
    }
    f->type = p[0];
    switch (p[0]) {
    case RUDP_FRAME_PADDING:
        return padding_decode(p, len);
    case RUDP_FRAME_PING:
        return 1;
    case RUDP_FRAME_ACK:
        return ack_decode(p, len, &f->u.ack);
    case RUDP_FRAME_SESSION:
        return session_decode(p, len, &f->u.session);
    case RUDP_FRAME_DATA:
        return data_decode(p, len, &f->u.data);
    case RUDP_FRAME_WINDOW_UPDATE:
        return window_decode(p, len, &f->u.window);
    case RUDP_FRAME_RST:
        return rst_decode(p, len, &f->u.rst);
    case RUDP_FRAME_GOAWAY:
        return u32_decode(p, len, &f->u.goaway_code);
    case RUDP_FRAME_MAX_STREAMS:
        return u64_decode(p, len, &f->u.max_streams);
    case RUDP_FRAME_PATH_CHALLENGE:
    case RUDP_FRAME_PATH_RESPONSE:
        return u64_decode(p, len, &f->u.path_data);
    case RUDP_FRAME_LISTENING:
        return listening_decode(p, len, &f->u.listening);
    case RUDP_FRAME_NEW_TICKET:
        return ticket_decode(p, len, &f->u.ticket);
    default:
        return RUDP_ERR_MALFORMED;
    }
}

int rudp_wire_decode_frames(const uint8_t *p, size_t len, rudp_decoded_pkt *d) {
    rudp_frame spare; /* where a frame past the limit lands, to be refused */
    d->nframes = 0;
    d->eliciting = d->has_stream_data = false;
    d->pings = 0;
    d->padding = 0;
    if (len == 0) {
        return RUDP_ERR_MALFORMED;
    }
    while (len > 0) {
        rudp_frame *f = d->nframes < RUDP_MAX_FRAMES ? &d->frames[d->nframes] : &spare;
        ssize_t n = rudp_wire_decode_frame(p, len, f);
        if (n < 0) {
            return (int)n;
        }
        p += n;
        len -= (size_t)n;
        if (f->type == RUDP_FRAME_PADDING) {
            d->padding += (uint32_t)n;
            continue;
        }
        d->eliciting |= f->type != RUDP_FRAME_ACK;
        if (f->type == RUDP_FRAME_PING) {
            d->pings++;
            continue;
        }
        if (d->nframes == RUDP_MAX_FRAMES) {
            return RUDP_ERR_MALFORMED;
        }
        d->has_stream_data |= f->type == RUDP_FRAME_DATA && f->u.data.len > 0;
        d->nframes++;
    }
    return RUDP_OK;
}

/* ---- Other frames: encoding --------------------------------------------- */

/* Returns the encoded size of |f|: 1 for PADDING (one zero byte; longer
 * padding is written by the caller with memset), 0 when |f| cannot be
 * encoded (unknown type, or an ACK without a usable first range). */
size_t rudp_wire_frame_len(const rudp_frame *f) {
    switch (f->type) {
    case RUDP_FRAME_PADDING:
    case RUDP_FRAME_PING:
        return 1;
    case RUDP_FRAME_ACK:
        return ack_frame_len(&f->u.ack);
    case RUDP_FRAME_SESSION:
        return RUDP_SESSION_FRAME_LEN;
    case RUDP_FRAME_DATA:
        if (f->u.data.sid >= WIRE_MAX_OFFSET || f->u.data.offset >= WIRE_MAX_OFFSET)
            return 0;
        return rudp_wire_data_overhead(f->u.data.sid, f->u.data.offset) +
               (size_t)f->u.data.len;
    case RUDP_FRAME_WINDOW_UPDATE:
        return RUDP_WINDOW_FRAME_LEN;
    case RUDP_FRAME_RST:
        return RUDP_RST_FRAME_LEN;
    case RUDP_FRAME_GOAWAY:
        return RUDP_GOAWAY_FRAME_LEN;
    case RUDP_FRAME_MAX_STREAMS:
    case RUDP_FRAME_PATH_CHALLENGE:
    case RUDP_FRAME_PATH_RESPONSE:
        return RUDP_PATH_FRAME_LEN;
    case RUDP_FRAME_LISTENING:
        return f->u.listening <= 1 ? RUDP_LISTENING_FRAME_LEN : 0;
    case RUDP_FRAME_NEW_TICKET:
        return RUDP_TICKET_FRAME_LEN;
    default:
        return 0;
    }
}

/* Writes the body of a SESSION frame after its type byte. */
static void session_write(uint8_t *p, const rudp_session_frame *s) {
    p[1] = s->flags;
    rudp_put64(p + 2, s->cid);
    rudp_put32(p + 10, s->initial_stream_window);
    rudp_put64(p + 14, s->initial_session_window);
    rudp_put64(p + 22, s->max_streams);
    rudp_put32(p + 30, s->idle_timeout_ms);
    rudp_put16(p + 34, s->max_ack_delay_ms);
    rudp_put16(p + 36, s->max_packet_size);
    memcpy(p + 38, s->reset_token, RUDP_TOKEN_LEN);
    rudp_put64(p + 54, s->time_ms);
}

/* Writes the body of a DATA frame after its type byte, copying its bytes. */
static void data_write(uint8_t *p, const rudp_data_frame *d) {
    size_t ns = varint_len(d->sid), no = varint_len(d->offset);
    p[1] = d->flags;
    varint_put(p + 2, d->sid, ns);
    varint_put(p + 2 + ns, d->offset, no);
    rudp_put16(p + 2 + ns + no, d->len);
    if (d->len > 0) {
        memcpy(p + 4 + ns + no, d->data, d->len);
    }
}

/* Writes the body of an RST frame after its type byte. */
static void rst_write(uint8_t *p, const rudp_rst_frame *r) {
    rudp_put64(p + 1, r->sid);
    rudp_put32(p + 9, r->code);
    rudp_put64(p + 13, r->final_size);
}

/* Writes |f|, whose type is known and whose encoding fits at |p|. */
static void frame_write(uint8_t *p, const rudp_frame *f) {
    p[0] = f->type;
    switch (f->type) {
    case RUDP_FRAME_ACK:
        ack_write(p, &f->u.ack, ack_wire_nranges(&f->u.ack));
        break;
    case RUDP_FRAME_SESSION:
        session_write(p, &f->u.session);
        break;
    case RUDP_FRAME_DATA:
        data_write(p, &f->u.data);
        break;
    case RUDP_FRAME_WINDOW_UPDATE:
        rudp_put64(p + 1, f->u.window.sid);
        rudp_put64(p + 9, f->u.window.max_data);
        break;
    case RUDP_FRAME_RST:
        rst_write(p, &f->u.rst);
        break;
    case RUDP_FRAME_GOAWAY:
        rudp_put32(p + 1, f->u.goaway_code);
        break;
    case RUDP_FRAME_MAX_STREAMS:
        rudp_put64(p + 1, f->u.max_streams);
        break;
    case RUDP_FRAME_PATH_CHALLENGE:
    case RUDP_FRAME_PATH_RESPONSE:
        rudp_put64(p + 1, f->u.path_data);
        break;
    case RUDP_FRAME_LISTENING:
        p[1] = f->u.listening;
        break;
    case RUDP_FRAME_NEW_TICKET:
        memcpy(p + 1, f->u.ticket.psk, sizeof(f->u.ticket.psk));
        memcpy(p + 1 + sizeof(f->u.ticket.psk), f->u.ticket.blob, sizeof(f->u.ticket.blob));
        break;
    default: /* PADDING and PING are the type byte alone. */
        break;
    }
}

/* Encodes |f| at |p|.  Returns the bytes written, RUDP_ERR_NOBUF when they do
 * not fit in |cap| (nothing is written then), or RUDP_ERR_INVAL when |f|
 * cannot be encoded (see rudp_wire_frame_len). */
ssize_t rudp_wire_encode_frame(uint8_t *p, size_t cap, const rudp_frame *f) {
    size_t n = rudp_wire_frame_len(f);
    if (n == 0) {
        return RUDP_ERR_INVAL;
    }
    if (n > cap) {
        return RUDP_ERR_NOBUF;
    }
    frame_write(p, f);
    return (ssize_t)n;
}
