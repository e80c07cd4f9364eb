/*
 * test_wire.c — unit tests of the frame codec (engine/wire.c); packet
 * headers are test_packet.c's.
 *
 * Every frame type is encoded, decoded and compared; every truncation of every
 * frame must be rejected; the ACK
 * encoder must never acknowledge more than it was given, however large the
 * ranges; a whole datagram decodes once into its frames in order, PADDING
 * and PING aside, within RUDP_MAX_FRAMES.  Inputs that are decoded are
 * copied into heap buffers of exactly their length, so that AddressSanitizer
 * catches any read past the end.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>

#include "helpers.h"
#include "wire.h"

#define MAX_OFFSET (1ull << 62)

static uint8_t sample_bytes[512];

/* Returns a deterministic pseudo-random 64-bit value from *state (xorshift). */
static uint64_t rnd(uint64_t *state) {
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

/* Returns a heap copy of |len| bytes at |src|, sized exactly |len|. */
static uint8_t *exact_copy(const uint8_t *src, size_t len) {
    uint8_t *p = malloc(len);
    cr_assert(p != NULL || len == 0);
    if (len > 0) {
        memcpy(p, src, len);
    }
    return p;
}

/* Fills |ack| with |n| ranges of 4 packets, 5 missing packets apart,
 * descending from |largest|. */
static void make_ack(rudp_ack_frame *ack, uint32_t n, uint64_t largest) {
    memset(ack, 0, sizeof(*ack));
    ack->ack_delay_us = 12345;
    ack->nranges = n;
    for (uint32_t i = 0; i < n; i++) {
        ack->ranges[i].largest = largest - 10ull * i;
        ack->ranges[i].smallest = ack->ranges[i].largest - 3;
    }
}

/* Fills *f with a sample SESSION frame carrying |flags|. */
static void make_session(rudp_frame *f, uint8_t flags) {
    memset(f, 0, sizeof(*f));
    f->type = RUDP_FRAME_SESSION;
    f->u.session = (rudp_session_frame){
        .flags = flags,
        .cid = 0x0123456789abcdefull,
        .initial_stream_window = 0x80000000u,
        .initial_session_window = 0x1122334455667788ull,
        .max_streams = 0xfedcba9876543210ull,
        .idle_timeout_ms = 30000,
        .max_ack_delay_ms = 25,
        .max_packet_size = 1452,
    };
}

/* Fills *f with a sample DATA frame of |len| pattern bytes. */
static void make_data(rudp_frame *f, uint8_t flags, uint64_t sid, uint64_t offset,
                      uint16_t len) {
    test_fill_pattern(sample_bytes, sizeof(sample_bytes), 7);
    memset(f, 0, sizeof(*f));
    f->type = RUDP_FRAME_DATA;
    f->u.data = (rudp_data_frame){
        .flags = flags, .sid = sid, .offset = offset, .len = len, .data = sample_bytes};
}

/* Sample frames covering every frame type, by name. */
enum {
    S_PADDING,
    S_PING,
    S_WINDOW_SESSION,
    S_WINDOW_STREAM,
    S_RST,
    S_GOAWAY,
    S_MAX_STREAMS,
    S_CHALLENGE,
    S_RESPONSE,
    S_ACK_ONE, /* first sample built by code rather than a table */
    S_ACK_MAX,
    S_SYN,
    S_SYN_ACK,
    S_DATA,
    S_DATA_EMPTY,
    NSAMPLES
};

/* The samples before S_ACK_ONE, whose fields fit an initializer. */
static const rudp_frame fixed_samples[S_ACK_ONE] = {
    [S_PADDING] = {.type = RUDP_FRAME_PADDING},
    [S_PING] = {.type = RUDP_FRAME_PING},
    [S_WINDOW_SESSION] = {.type = RUDP_FRAME_WINDOW_UPDATE,
                          .u.window = {.sid = 0, .max_data = 1ull << 33}},
    [S_WINDOW_STREAM] = {.type = RUDP_FRAME_WINDOW_UPDATE,
                         .u.window = {.sid = 7, .max_data = UINT64_MAX}},
    [S_RST] = {.type = RUDP_FRAME_RST,
               .u.rst = {.sid = 5, .code = RUDP_RST_REFUSED, .final_size = MAX_OFFSET - 1}},
    [S_GOAWAY] = {.type = RUDP_FRAME_GOAWAY, .u.goaway_code = 0xdeadbeef},
    [S_MAX_STREAMS] = {.type = RUDP_FRAME_MAX_STREAMS, .u.max_streams = 1ull << 60},
    [S_CHALLENGE] = {.type = RUDP_FRAME_PATH_CHALLENGE, .u.path_data = 0xa5a5a5a5deadull},
    [S_RESPONSE] = {.type = RUDP_FRAME_PATH_RESPONSE, .u.path_data = 42},
};

/* Fills *f with sample frame |i| (0 <= i < NSAMPLES). */
static void sample_frame(int i, rudp_frame *f) {
    memset(f, 0, sizeof(*f));
    if (i < S_ACK_ONE) {
        *f = fixed_samples[i];
    } else if (i == S_ACK_ONE || i == S_ACK_MAX) {
        f->type = RUDP_FRAME_ACK;
        make_ack(&f->u.ack, i == S_ACK_ONE ? 1 : RUDP_ACK_MAX_RANGES, 1000000);
    } else if (i == S_SYN || i == S_SYN_ACK) {
        make_session(f, i == S_SYN ? RUDP_FLAG_SYN : RUDP_FLAG_SYN | RUDP_FLAG_ACK);
    } else if (i == S_DATA) {
        make_data(f, RUDP_FLAG_SYN | RUDP_FLAG_FIN, 3, 1ull << 40, 300);
    } else {
        make_data(f, RUDP_FLAG_ACK, MAX_OFFSET - 1, 0, 0); /* the largest stream ID */
    }
}

/* Asserts that two ACK frames hold the same delay and ranges. */
static void assert_ack_equal(const rudp_ack_frame *a, const rudp_ack_frame *b) {
    cr_assert_eq(a->ack_delay_us, b->ack_delay_us);
    cr_assert_eq(a->nranges, b->nranges);
    for (uint32_t i = 0; i < a->nranges; i++) {
        cr_assert_eq(a->ranges[i].smallest, b->ranges[i].smallest, "range %u", i);
        cr_assert_eq(a->ranges[i].largest, b->ranges[i].largest, "range %u", i);
    }
}

/* Asserts that two SESSION frames carry the same fields. */
static void assert_session_equal(const rudp_session_frame *a, const rudp_session_frame *b) {
    cr_assert_eq(a->flags, b->flags);
    cr_assert_eq(a->cid, b->cid);
    cr_assert_eq(a->initial_stream_window, b->initial_stream_window);
    cr_assert_eq(a->initial_session_window, b->initial_session_window);
    cr_assert_eq(a->max_streams, b->max_streams);
    cr_assert_eq(a->idle_timeout_ms, b->idle_timeout_ms);
    cr_assert_eq(a->max_ack_delay_ms, b->max_ack_delay_ms);
    cr_assert_eq(a->max_packet_size, b->max_packet_size);
}

/* Asserts that two DATA frames are equal, bytes included. */
static void assert_data_equal(const rudp_data_frame *a, const rudp_data_frame *b) {
    cr_assert_eq(a->flags, b->flags);
    cr_assert_eq(a->sid, b->sid);
    cr_assert_eq(a->offset, b->offset);
    cr_assert_eq(a->len, b->len);
    cr_assert(a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* Asserts that two frames carry the same type and fields. */
static void assert_frame_equal(const rudp_frame *a, const rudp_frame *b) {
    cr_assert_eq(a->type, b->type);
    switch (a->type) {
    case RUDP_FRAME_ACK:
        assert_ack_equal(&a->u.ack, &b->u.ack);
        break;
    case RUDP_FRAME_SESSION:
        assert_session_equal(&a->u.session, &b->u.session);
        break;
    case RUDP_FRAME_DATA:
        assert_data_equal(&a->u.data, &b->u.data);
        break;
    case RUDP_FRAME_WINDOW_UPDATE:
        cr_assert_eq(a->u.window.sid, b->u.window.sid);
        cr_assert_eq(a->u.window.max_data, b->u.window.max_data);
        break;
    case RUDP_FRAME_RST:
        cr_assert_eq(a->u.rst.sid, b->u.rst.sid);
        cr_assert_eq(a->u.rst.code, b->u.rst.code);
        cr_assert_eq(a->u.rst.final_size, b->u.rst.final_size);
        break;
    case RUDP_FRAME_GOAWAY:
        cr_assert_eq(a->u.goaway_code, b->u.goaway_code);
        break;
    case RUDP_FRAME_MAX_STREAMS:
        cr_assert_eq(a->u.max_streams, b->u.max_streams);
        break;
    case RUDP_FRAME_PATH_CHALLENGE:
    case RUDP_FRAME_PATH_RESPONSE:
        cr_assert_eq(a->u.path_data, b->u.path_data);
        break;
    default:
        break;
    }
}

/* Encodes |in| into |buf| and returns its length, asserting it matches
 * rudp_wire_frame_len. */
static size_t encode_ok(const rudp_frame *in, uint8_t *buf, size_t cap) {
    ssize_t n = rudp_wire_encode_frame(buf, cap, in);
    cr_assert_gt(n, 0, "type %u: %zd", in->type, n);
    cr_assert_eq((size_t)n, rudp_wire_frame_len(in), "type %u", in->type);
    return (size_t)n;
}

/* Decodes the |len| bytes at |src| from an exact heap copy; returns the
 * decoder's result.  DATA in *f is only valid until the copy is freed, so
 * the copy is returned in *copy for the caller to free. */
static ssize_t decode_exact(const uint8_t *src, size_t len, rudp_frame *f, uint8_t **copy) {
    *copy = exact_copy(src, len);
    return rudp_wire_decode_frame(*copy, len, f);
}

/* Encodes raw ACK bytes: |count| extra ranges taken from |pairs| (gap, len). */
static size_t put_raw_ack(uint8_t *p, uint64_t largest, uint8_t count, uint32_t first,
                          const uint32_t *pairs) {
    p[0] = RUDP_FRAME_ACK;
    rudp_put64(p + 1, largest);
    rudp_put32(p + 9, 0);
    p[13] = count;
    rudp_put32(p + 14, first);
    for (size_t i = 0; i < count; i++) {
        rudp_put32(p + 18 + 8 * i, pairs[2 * i]);
        rudp_put32(p + 22 + 8 * i, pairs[2 * i + 1]);
    }
    return 18 + 8 * (size_t)count;
}

/* Returns the result of decoding the |len| raw bytes at |src| from an exact
 * heap copy, discarding the frame. */
static ssize_t decode_raw(const uint8_t *src, size_t len) {
    rudp_frame f;
    uint8_t *copy;
    ssize_t rv = decode_exact(src, len, &f, &copy);
    free(copy);
    return rv;
}

Test(wire, every_frame_round_trips) {
    for (int i = 0; i < NSAMPLES; i++) {
        rudp_frame in, out;
        uint8_t buf[1024], *copy;
        sample_frame(i, &in);
        size_t n = encode_ok(&in, buf, sizeof(buf));
        ssize_t m = decode_exact(buf, n, &out, &copy);
        cr_assert_eq(m, (ssize_t)n, "sample %d: %zd", i, m);
        assert_frame_equal(&in, &out);
        free(copy);
    }
}

Test(wire, data_points_into_input) {
    rudp_frame in, out;
    uint8_t buf[64];
    make_data(&in, 0, 1, 0, 10);
    size_t n = encode_ok(&in, buf, sizeof(buf));
    cr_assert_eq(rudp_wire_decode_frame(buf, n, &out), (ssize_t)n);
    cr_assert_eq(out.u.data.data, buf + RUDP_DATA_FRAME_MIN_OVERHEAD);
}

Test(wire, data_varints_take_1_2_4_or_8_bytes) {
    /* Stream IDs and offsets on both sides of every varint boundary round
     * trip, each takes the bytes its class says, and the frame is as long
     * as rudp_wire_data_overhead says. */
    static const struct {
        uint64_t v;
        size_t n;
    } vs[] = {{1, 1},        {63, 1},
              {64, 2},       {16383, 2},
              {16384, 4},    {(1u << 30) - 1, 4},
              {1u << 30, 8}, {MAX_OFFSET - 2, 8}};
    uint8_t buf[64];
    for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
        for (size_t j = 0; j < sizeof(vs) / sizeof(vs[0]); j++) {
            rudp_frame in, out;
            uint8_t *copy;
            make_data(&in, RUDP_FLAG_FIN, vs[i].v, vs[j].v, 1);
            size_t n = encode_ok(&in, buf, sizeof(buf));
            cr_assert_eq(n, 4 + vs[i].n + vs[j].n + 1, "sid %llu offset %llu",
                         (unsigned long long)vs[i].v, (unsigned long long)vs[j].v);
            cr_assert_eq(n, rudp_wire_data_overhead(vs[i].v, vs[j].v) + 1);
            cr_assert_eq((size_t)1 << (buf[2] >> 6), vs[i].n);
            cr_assert_eq(decode_exact(buf, n, &out, &copy), (ssize_t)n);
            assert_frame_equal(&in, &out);
            free(copy);
        }
    }
}

Test(wire, data_beyond_2_62_cannot_be_encoded) {
    rudp_frame f;
    uint8_t buf[64];
    make_data(&f, 0, MAX_OFFSET, 0, 1);
    cr_assert_eq(rudp_wire_encode_frame(buf, sizeof(buf), &f), RUDP_ERR_INVAL);
    make_data(&f, 0, 1, MAX_OFFSET, 1);
    cr_assert_eq(rudp_wire_encode_frame(buf, sizeof(buf), &f), RUDP_ERR_INVAL);
}

Test(wire, longer_than_needed_varints_are_malformed) {
    /* Stream 5 as a 2-, 4- and 8-byte varint, offset 0 as a 2-byte one. */
    static const uint8_t frames[][16] = {
        {RUDP_FRAME_DATA, 0, 0x40, 5, 0, 0, 0},
        {RUDP_FRAME_DATA, 0, 0x80, 0, 0, 5, 0, 0, 0},
        {RUDP_FRAME_DATA, 0, 0xc0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0},
        {RUDP_FRAME_DATA, 0, 5, 0x40, 0, 0, 0},
    };
    static const size_t lens[] = {7, 9, 13, 7};
    uint8_t good[] = {RUDP_FRAME_DATA, 0, 5, 0, 0, 0};
    cr_assert_eq(decode_raw(good, sizeof(good)), (ssize_t)sizeof(good));
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
        cr_assert_eq(decode_raw(frames[i], lens[i]), RUDP_ERR_MALFORMED, "frame %zu", i);
}

Test(wire, truncated_varints_are_malformed) {
    /* An 8-byte offset varint cut short anywhere, and a missing length. */
    rudp_frame f;
    uint8_t buf[64];
    make_data(&f, 0, 5, 1ull << 40, 0);
    size_t n = encode_ok(&f, buf, sizeof(buf));
    cr_assert_eq(n, 4 + 1 + 8);
    for (size_t cut = 1; cut < n; cut++)
        cr_assert_eq(decode_raw(buf, cut), RUDP_ERR_MALFORMED, "cut at %zu", cut);
}

Test(wire, padding_run_is_one_frame) {
    uint8_t buf[8] = {0, 0, 0, 0, 0, RUDP_FRAME_PING, 0, 0};
    rudp_frame f;
    cr_assert_eq(rudp_wire_decode_frame(buf, sizeof(buf), &f), 5);
    cr_assert_eq(f.type, RUDP_FRAME_PADDING);
    cr_assert_eq(rudp_wire_decode_frame(buf + 5, 3, &f), 1);
    cr_assert_eq(f.type, RUDP_FRAME_PING);
    cr_assert_eq(rudp_wire_decode_frame(buf + 6, 2, &f), 2);
}

Test(wire, every_truncation_is_malformed) {
    for (int i = 0; i < NSAMPLES; i++) {
        rudp_frame in;
        uint8_t buf[1024];
        sample_frame(i, &in);
        size_t n = encode_ok(&in, buf, sizeof(buf));
        for (size_t l = 0; l < n; l++) {
            cr_assert_eq(decode_raw(buf, l), RUDP_ERR_MALFORMED, "sample %d len %zu", i, l);
        }
    }
}

#define DEC_DCID 0x0102030405060708ull
#define DEC_PN 4242

/* Builds a PROTECTED header and the |n| frames |fr| after it into |buf|
 * (unsealed: the frame codec's view of a packet); returns its length. */
static size_t seal_frames(uint8_t *buf, size_t cap, const rudp_frame *fr, size_t n) {
    size_t len = (size_t)rudp_wire_encode_hdr(buf, cap, DEC_DCID, DEC_PN);
    for (size_t i = 0; i < n; i++) {
        len += encode_ok(&fr[i], buf + len, cap - len);
    }
    return len;
}

/* Returns rudp_wire_decode_frames of the frames of an exact heap copy of
 * |src| (a header and frames) into *d, which is filled with junk first; the
 * copy (DATA points into it) goes to *copy for the caller to free. */
static int decode_whole(const uint8_t *src, size_t len, rudp_decoded_pkt *d,
                        uint8_t **copy) {
    memset(d, 0xa5, sizeof(*d));
    d->eliciting = d->has_stream_data = true;
    *copy = exact_copy(src, len);
    return rudp_wire_decode_frames(*copy + RUDP_HDR_LEN, len - RUDP_HDR_LEN, d);
}

/* Fills |fr| with |n| MAX_STREAMS frames carrying 1, 2, ... n. */
static void numbered_frames(rudp_frame *fr, size_t n) {
    for (size_t i = 0; i < n; i++) {
        fr[i] = (rudp_frame){.type = RUDP_FRAME_MAX_STREAMS, .u.max_streams = i + 1};
    }
}

Test(wire, decode_keeps_frames_in_order_without_padding_and_ping) {
    /* ACK, PADDING, DATA, PING, WINDOW_UPDATE, PADDING: the header and the
     * three other frames come out, in order, DATA pointing into the packet. */
    rudp_frame fr[6];
    sample_frame(S_ACK_MAX, &fr[0]);
    sample_frame(S_PADDING, &fr[1]);
    make_data(&fr[2], RUDP_FLAG_SYN, 9, 1000, 200);
    sample_frame(S_PING, &fr[3]);
    sample_frame(S_WINDOW_STREAM, &fr[4]);
    sample_frame(S_PADDING, &fr[5]);
    uint8_t buf[1500], *pkt;
    size_t len = seal_frames(buf, sizeof(buf), fr, 6);
    rudp_decoded_pkt d;
    cr_assert_eq(decode_whole(buf, len, &d, &pkt), RUDP_OK);
    cr_assert_eq(d.nframes, 3);
    assert_frame_equal(&fr[0], &d.frames[0]);
    assert_frame_equal(&fr[2], &d.frames[1]);
    assert_frame_equal(&fr[4], &d.frames[2]);
    cr_assert(d.frames[1].u.data.data > pkt && d.frames[1].u.data.data < pkt + len);
    cr_assert(d.eliciting);
    cr_assert(d.has_stream_data);
    free(pkt);
}

Test(wire, decode_ack_only_packet_is_not_eliciting) {
    /* ACK + PADDING elicits nothing; ACK + PING does, the PING not stored. */
    rudp_frame fr[2];
    uint8_t buf[1500], *pkt;
    rudp_decoded_pkt d;
    sample_frame(S_ACK_ONE, &fr[0]);
    sample_frame(S_PADDING, &fr[1]);
    size_t len = seal_frames(buf, sizeof(buf), fr, 2);
    cr_assert_eq(decode_whole(buf, len, &d, &pkt), RUDP_OK);
    cr_assert_eq(d.nframes, 1);
    cr_assert_eq(d.frames[0].type, RUDP_FRAME_ACK);
    cr_assert_not(d.eliciting);
    cr_assert_not(d.has_stream_data);
    free(pkt);
    sample_frame(S_PING, &fr[1]);
    len = seal_frames(buf, sizeof(buf), fr, 2);
    cr_assert_eq(decode_whole(buf, len, &d, &pkt), RUDP_OK);
    cr_assert_eq(d.nframes, 1);
    cr_assert_eq(d.frames[0].type, RUDP_FRAME_ACK);
    cr_assert(d.eliciting);
    cr_assert_not(d.has_stream_data);
    free(pkt);
}

Test(wire, decode_empty_fin_is_not_stream_data) {
    /* DATA of length 0 with FIN is eliciting but carries no stream byte. */
    rudp_frame fr[1];
    uint8_t buf[64], *pkt;
    rudp_decoded_pkt d;
    make_data(&fr[0], RUDP_FLAG_FIN, 5, 300, 0);
    size_t len = seal_frames(buf, sizeof(buf), fr, 1);
    cr_assert_eq(decode_whole(buf, len, &d, &pkt), RUDP_OK);
    cr_assert_eq(d.nframes, 1);
    assert_frame_equal(&fr[0], &d.frames[0]);
    cr_assert(d.eliciting);
    cr_assert_not(d.has_stream_data);
    free(pkt);
}

Test(wire, decode_takes_at_most_max_frames) {
    /* RUDP_MAX_FRAMES frames decode, every one stored in order; one more
     * makes the packet malformed. */
    rudp_frame fr[RUDP_MAX_FRAMES + 1];
    uint8_t buf[1500], *pkt;
    rudp_decoded_pkt d;
    numbered_frames(fr, RUDP_MAX_FRAMES + 1);
    size_t len = seal_frames(buf, sizeof(buf), fr, RUDP_MAX_FRAMES);
    cr_assert_eq(decode_whole(buf, len, &d, &pkt), RUDP_OK);
    cr_assert_eq(d.nframes, RUDP_MAX_FRAMES);
    for (uint32_t i = 0; i < RUDP_MAX_FRAMES; i++) {
        cr_assert_eq(d.frames[i].type, RUDP_FRAME_MAX_STREAMS, "frame %u", i);
        cr_assert_eq(d.frames[i].u.max_streams, i + 1, "frame %u", i);
    }
    free(pkt);
    len = seal_frames(buf, sizeof(buf), fr, RUDP_MAX_FRAMES + 1);
    cr_assert_eq(decode_whole(buf, len, &d, &pkt), RUDP_ERR_MALFORMED);
    free(pkt);
}

Test(wire, decode_limit_ignores_padding_and_ping) {
    /* A PING and PADDING before, between and after RUDP_MAX_FRAMES frames
     * do not count; one more frame after all of them still does. */
    enum { N = RUDP_MAX_FRAMES };
    rudp_frame nums[N + 1], fr[2 * N + 5];
    uint8_t buf[1500], *pkt;
    rudp_decoded_pkt d;
    numbered_frames(nums, N + 1);
    size_t n = 0;
    sample_frame(S_PADDING, &fr[n++]);
    for (size_t i = 0; i < N; i++) {
        fr[n++] = nums[i];
        sample_frame(S_PING, &fr[n++]);
    }
    sample_frame(S_PADDING, &fr[n++]);
    size_t len = seal_frames(buf, sizeof(buf), fr, n);
    cr_assert_eq(decode_whole(buf, len, &d, &pkt), RUDP_OK);
    cr_assert_eq(d.nframes, N);
    cr_assert_eq(d.frames[N - 1].u.max_streams, N);
    free(pkt);
    fr[n++] = nums[N];
    len = seal_frames(buf, sizeof(buf), fr, n);
    cr_assert_eq(decode_whole(buf, len, &d, &pkt), RUDP_ERR_MALFORMED);
    free(pkt);
}

Test(wire, decode_rejects_a_truncated_frame) {
    /* An ACK, then a DATA frame cut anywhere: the whole packet is malformed. */
    rudp_frame fr[2];
    uint8_t full[256], buf[256], *pkt;
    rudp_decoded_pkt d;
    sample_frame(S_ACK_ONE, &fr[0]);
    make_data(&fr[1], 0, 9, 1000, 40);
    size_t pos = (size_t)rudp_wire_encode_hdr(full, sizeof(full), DEC_DCID, DEC_PN);
    pos += encode_ok(&fr[0], full + pos, sizeof(full) - pos);
    size_t data_len = encode_ok(&fr[1], full + pos, sizeof(full) - pos);
    for (size_t cut = 1; cut < data_len; cut++) {
        memcpy(buf, full, pos + cut);
        cr_assert_eq(decode_whole(buf, pos + cut, &d, &pkt), RUDP_ERR_MALFORMED,
                     "cut at %zu", cut);
        free(pkt);
    }
}

Test(wire, unknown_frame_types_are_rejected) {
    uint8_t buf[128] = {0};
    for (unsigned t = RUDP_FRAME_NEW_TICKET + 1; t < 256; t++) {
        buf[0] = (uint8_t)t;
        cr_assert_eq(decode_raw(buf, sizeof(buf)), RUDP_ERR_MALFORMED, "type %u", t);
        rudp_frame f = {.type = (uint8_t)t};
        cr_assert_eq(rudp_wire_frame_len(&f), 0);
        cr_assert_eq(rudp_wire_encode_frame(buf, sizeof(buf), &f), RUDP_ERR_INVAL);
    }
}

Test(wire, listening_frame) {
    /* LISTENING carries one byte, 0 or 1; anything else is malformed. */
    uint8_t buf[8];
    for (unsigned v = 0; v < 256; v++) {
        buf[0] = RUDP_FRAME_LISTENING;
        buf[1] = (uint8_t)v;
        cr_assert_eq(decode_raw(buf, 2), v <= 1 ? 2 : RUDP_ERR_MALFORMED, "value %u", v);
    }
    cr_assert_eq(decode_raw(buf, 1), RUDP_ERR_MALFORMED);
    rudp_frame f = {.type = RUDP_FRAME_LISTENING, .u.listening = 1}, g;
    cr_assert_eq(rudp_wire_encode_frame(buf, sizeof(buf), &f), 2);
    cr_assert_eq(rudp_wire_decode_frame(buf, 2, &g), 2);
    cr_assert_eq(g.u.listening, 1);
}

Test(wire, new_ticket_frame) {
    /* NEW_TICKET: the key, then the blob; every byte of both round-trips,
     * and a frame one byte short is malformed. */
    uint8_t buf[RUDP_TICKET_FRAME_LEN + 4];
    rudp_frame f = {.type = RUDP_FRAME_NEW_TICKET}, g;
    for (size_t i = 0; i < sizeof(f.u.ticket.psk); i++)
        f.u.ticket.psk[i] = (uint8_t)(i + 1);
    for (size_t i = 0; i < sizeof(f.u.ticket.blob); i++)
        f.u.ticket.blob[i] = (uint8_t)(200 - i);
    cr_assert_eq(rudp_wire_encode_frame(buf, sizeof(buf), &f), RUDP_TICKET_FRAME_LEN);
    cr_assert_eq(rudp_wire_encode_frame(buf, RUDP_TICKET_FRAME_LEN - 1, &f),
                 RUDP_ERR_NOBUF);
    cr_assert_eq(rudp_wire_decode_frame(buf, RUDP_TICKET_FRAME_LEN, &g),
                 RUDP_TICKET_FRAME_LEN);
    cr_assert_eq(memcmp(&g.u.ticket, &f.u.ticket, sizeof(f.u.ticket)), 0);
    cr_assert_eq(decode_raw(buf, RUDP_TICKET_FRAME_LEN - 1), RUDP_ERR_MALFORMED);
}

Test(wire, session_flags_and_packet_size) {
    rudp_frame f;
    uint8_t buf[64];
    for (unsigned flags = 0; flags < 256; flags++) {
        make_session(&f, (uint8_t)flags);
        size_t n = encode_ok(&f, buf, sizeof(buf));
        bool ok = flags == RUDP_FLAG_SYN || flags == (RUDP_FLAG_SYN | RUDP_FLAG_ACK) ||
                  flags == (RUDP_FLAG_SYN | RUDP_FLAG_ACK | RUDP_FLAG_CLOSED);
        cr_assert_eq(decode_raw(buf, n), ok ? (ssize_t)n : RUDP_ERR_MALFORMED, "%u", flags);
    }
    uint16_t sizes[] = {0, 1199, 1200, 65535};
    for (int i = 0; i < 4; i++) {
        make_session(&f, RUDP_FLAG_SYN);
        f.u.session.max_packet_size = sizes[i];
        size_t n = encode_ok(&f, buf, sizeof(buf));
        ssize_t want = sizes[i] >= RUDP_MIN_PACKET_SIZE ? (ssize_t)n : RUDP_ERR_MALFORMED;
        cr_assert_eq(decode_raw(buf, n), want, "size %u", sizes[i]);
    }
}

Test(wire, data_flags) {
    rudp_frame f;
    uint8_t buf[64];
    for (unsigned flags = 0; flags < 256; flags++) {
        make_data(&f, (uint8_t)flags, 4, 0, 5);
        size_t n = encode_ok(&f, buf, sizeof(buf));
        ssize_t want = flags < 8 ? (ssize_t)n : RUDP_ERR_MALFORMED;
        cr_assert_eq(decode_raw(buf, n), want, "flags %u", flags);
    }
}

Test(wire, stream_zero_is_rejected) {
    rudp_frame f;
    uint8_t buf[64];
    make_data(&f, 0, 0, 0, 3);
    cr_assert_eq(decode_raw(buf, encode_ok(&f, buf, sizeof(buf))), RUDP_ERR_MALFORMED);
    sample_frame(S_RST, &f);
    f.u.rst.sid = 0;
    cr_assert_eq(decode_raw(buf, encode_ok(&f, buf, sizeof(buf))), RUDP_ERR_MALFORMED);
}

Test(wire, offsets_stay_below_2_62) {
    struct {
        uint64_t offset;
        uint16_t len;
        bool ok;
    } cases[] = {
        {MAX_OFFSET - 101, 100, true},     {MAX_OFFSET - 100, 100, false},
        {MAX_OFFSET - 1, 0, true},         {MAX_OFFSET - 1, 1, false},
        {MAX_OFFSET - 65536, 65535, true}, {MAX_OFFSET - 10, 65535, false},
    };
    static uint8_t src[65535], buf[65535 + RUDP_DATA_FRAME_MAX_OVERHEAD];
    rudp_frame f;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        make_data(&f, 0, 1, cases[i].offset, cases[i].len);
        f.u.data.data = src;
        size_t n = encode_ok(&f, buf, sizeof(buf));
        cr_assert_eq(decode_raw(buf, n), cases[i].ok ? (ssize_t)n : RUDP_ERR_MALFORMED,
                     "case %zu", i);
    }
    uint64_t finals[] = {0, MAX_OFFSET - 1, MAX_OFFSET, UINT64_MAX};
    for (int i = 0; i < 4; i++) {
        sample_frame(S_RST, &f);
        f.u.rst.final_size = finals[i];
        size_t n = encode_ok(&f, buf, sizeof(buf));
        cr_assert_eq(decode_raw(buf, n), i < 2 ? (ssize_t)n : RUDP_ERR_MALFORMED);
    }
}

Test(wire, ack_decoding_rejects_underflow) {
    uint8_t buf[512];
    rudp_frame f;
    uint32_t pairs[2 * 32] = {0};
    cr_assert_eq(decode_raw(buf, put_raw_ack(buf, 5, 0, 6, pairs)), RUDP_ERR_MALFORMED);
    cr_assert_eq(decode_raw(buf, put_raw_ack(buf, 5, 0, 5, pairs)), 18);
    /* Range 0 is [10, 10]; the next largest is 10 - gap - 2. */
    uint32_t ok1[] = {8, 0}, bad_gap[] = {9, 0}, ok2[] = {7, 1}, bad_len[] = {7, 2};
    cr_assert_eq(decode_raw(buf, put_raw_ack(buf, 10, 1, 0, ok1)), 26);
    cr_assert_eq(decode_raw(buf, put_raw_ack(buf, 10, 1, 0, bad_gap)), RUDP_ERR_MALFORMED);
    size_t n = put_raw_ack(buf, 10, 1, 0, ok2);
    cr_assert_eq(rudp_wire_decode_frame(buf, n, &f), 26);
    cr_assert_eq(f.u.ack.ranges[1].largest, 1);
    cr_assert_eq(f.u.ack.ranges[1].smallest, 0);
    cr_assert_eq(decode_raw(buf, put_raw_ack(buf, 10, 1, 0, bad_len)), RUDP_ERR_MALFORMED);
    uint32_t big[] = {UINT32_MAX, UINT32_MAX};
    cr_assert_eq(decode_raw(buf, put_raw_ack(buf, UINT64_MAX, 1, UINT32_MAX, big)), 26);
}

Test(wire, ack_range_count_limit) {
    uint8_t buf[4096] = {0};
    uint32_t pairs[2 * 255] = {0};
    cr_assert_eq(decode_raw(buf, put_raw_ack(buf, 1000, 31, 0, pairs)), 18 + 31 * 8);
    for (unsigned c = 32; c < 256; c++) {
        size_t n = put_raw_ack(buf, UINT64_MAX, (uint8_t)c, 0, pairs);
        cr_assert_eq(decode_raw(buf, n), RUDP_ERR_MALFORMED, "count %u", c);
    }
}

Test(wire, encoders_report_nobuf_and_write_nothing) {
    uint8_t buf[1024];
    for (int i = 0; i < NSAMPLES; i++) {
        rudp_frame in;
        sample_frame(i, &in);
        size_t n = rudp_wire_frame_len(&in);
        for (size_t cap = 0; cap < n; cap++) {
            memset(buf, 0xA5, sizeof(buf));
            cr_assert_eq(rudp_wire_encode_frame(buf, cap, &in), RUDP_ERR_NOBUF);
            for (size_t k = 0; k < sizeof(buf); k++) {
                cr_assert_eq(buf[k], 0xA5, "sample %d cap %zu byte %zu", i, cap, k);
            }
        }
    }
    memset(buf, 0xA5, sizeof(buf));
    for (size_t cap = 0; cap < RUDP_HDR_LEN; cap++) {
        cr_assert_eq(rudp_wire_encode_hdr(buf, cap, 1, 1), RUDP_ERR_NOBUF);
    }
    for (size_t k = 0; k < sizeof(buf); k++) {
        cr_assert_eq(buf[k], 0xA5);
    }
}

/* Encodes |in|, decodes it back into *out and asserts the sizes agree. */
static void ack_through_wire(const rudp_ack_frame *in, rudp_ack_frame *out) {
    rudp_frame f = {.type = RUDP_FRAME_ACK}, g;
    uint8_t buf[512];
    f.u.ack = *in;
    size_t n = encode_ok(&f, buf, sizeof(buf));
    cr_assert_eq(rudp_wire_decode_frame(buf, n, &g), (ssize_t)n);
    *out = g.u.ack;
}

/* Asserts that |out| acknowledges only what |in| did: the same largest, range
 * 0 inside input range 0, every later range equal to its input, and no more
 * ranges than given. */
static void assert_ack_subset(const rudp_ack_frame *in, const rudp_ack_frame *out) {
    cr_assert_geq(out->nranges, 1);
    cr_assert_leq(out->nranges, in->nranges);
    cr_assert_eq(out->ranges[0].largest, in->ranges[0].largest);
    cr_assert_geq(out->ranges[0].smallest, in->ranges[0].smallest);
    for (uint32_t i = 1; i < out->nranges; i++) {
        cr_assert_eq(out->ranges[i].largest, in->ranges[i].largest, "range %u", i);
        cr_assert_eq(out->ranges[i].smallest, in->ranges[i].smallest, "range %u", i);
    }
}

Test(wire, ack_matches_documented_example) {
    /* docs/PROTOCOL.md: [95,100], [80,90], [70,70]. */
    uint8_t buf[64], want[64];
    uint32_t pairs[] = {3, 10, 8, 0};
    rudp_frame f = {.type = RUDP_FRAME_ACK};
    f.u.ack.nranges = 3;
    f.u.ack.ranges[0] = (rudp_ack_range){95, 100};
    f.u.ack.ranges[1] = (rudp_ack_range){80, 90};
    f.u.ack.ranges[2] = (rudp_ack_range){70, 70};
    size_t n = put_raw_ack(want, 100, 2, 5, pairs);
    cr_assert_eq(rudp_wire_encode_frame(buf, sizeof(buf), &f), (ssize_t)n);
    cr_assert(memcmp(buf, want, n) == 0);
}

Test(wire, ack_clamps_huge_first_range) {
    rudp_ack_frame in = {.nranges = 1}, out;
    in.ranges[0] = (rudp_ack_range){0, 1ull << 40};
    ack_through_wire(&in, &out);
    assert_ack_subset(&in, &out);
    cr_assert_eq(out.ranges[0].smallest, (1ull << 40) - UINT32_MAX);
    /* Exactly 2^32 - 1 needs no clamping. */
    in.ranges[0] = (rudp_ack_range){1, (uint64_t)UINT32_MAX + 1};
    ack_through_wire(&in, &out);
    assert_ack_equal(&in, &out);
    /* After a clamp the next gap is measured from the raised smallest. */
    in.nranges = 2;
    in.ranges[0] = (rudp_ack_range){1000, 1000 + (1ull << 32)};
    in.ranges[1] = (rudp_ack_range){0, 998};
    ack_through_wire(&in, &out);
    assert_ack_subset(&in, &out);
    cr_assert_eq(out.nranges, 2);
    cr_assert_eq(out.ranges[0].smallest, 1001);
}

Test(wire, ack_drops_ranges_that_do_not_fit) {
    rudp_ack_frame in = {.nranges = 3}, out;
    /* Gap too large for 32 bits: range 1 and everything after go. */
    in.ranges[0] = (rudp_ack_range){1ull << 40, (1ull << 40) + 10};
    in.ranges[1] = (rudp_ack_range){10, 20};
    in.ranges[2] = (rudp_ack_range){0, 5};
    ack_through_wire(&in, &out);
    assert_ack_subset(&in, &out);
    cr_assert_eq(out.nranges, 1);
    /* Length too large for 32 bits. */
    in.ranges[1] = (rudp_ack_range){0, (1ull << 40) - 2};
    in.nranges = 2;
    ack_through_wire(&in, &out);
    cr_assert_eq(out.nranges, 1);
    /* A later range that does not fit cuts off the ones after it. */
    in.nranges = 4;
    in.ranges[0] = (rudp_ack_range){1ull << 41, (1ull << 41) + 10};
    in.ranges[1] = (rudp_ack_range){(1ull << 41) - 100, (1ull << 41) - 50};
    in.ranges[2] = (rudp_ack_range){1000, 2000};
    in.ranges[3] = (rudp_ack_range){0, 10};
    ack_through_wire(&in, &out);
    assert_ack_subset(&in, &out);
    cr_assert_eq(out.nranges, 2);
    rudp_frame f = {.type = RUDP_FRAME_ACK, .u.ack = in};
    cr_assert_eq(rudp_wire_frame_len(&f), 26);
}

Test(wire, ack_rejects_unusable_input) {
    rudp_frame f = {.type = RUDP_FRAME_ACK};
    uint8_t buf[512];
    cr_assert_eq(rudp_wire_frame_len(&f), 0);
    cr_assert_eq(rudp_wire_encode_frame(buf, sizeof(buf), &f), RUDP_ERR_INVAL);
    f.u.ack.nranges = 1;
    f.u.ack.ranges[0] = (rudp_ack_range){5, 4};
    cr_assert_eq(rudp_wire_encode_frame(buf, sizeof(buf), &f), RUDP_ERR_INVAL);
    f.u.ack.nranges = RUDP_ACK_MAX_RANGES + 1;
    f.u.ack.ranges[0] = (rudp_ack_range){4, 5};
    cr_assert_eq(rudp_wire_encode_frame(buf, sizeof(buf), &f), RUDP_ERR_INVAL);
    /* Overlapping or adjacent later ranges are dropped, never merged. */
    f.u.ack.nranges = 2;
    f.u.ack.ranges[0] = (rudp_ack_range){10, 20};
    f.u.ack.ranges[1] = (rudp_ack_range){5, 9};
    cr_assert_eq(rudp_wire_encode_frame(buf, sizeof(buf), &f), 18);
    f.u.ack.ranges[1] = (rudp_ack_range){5, 8};
    cr_assert_eq(rudp_wire_encode_frame(buf, sizeof(buf), &f), 26);
}

Test(wire, ack_random_inputs_never_ack_more) {
    uint64_t seed = 0x5eed;
    for (int iter = 0; iter < 2000; iter++) {
        rudp_ack_frame in = {.ack_delay_us = (uint32_t)rnd(&seed)}, out;
        uint64_t top = rnd(&seed) >> 1;
        for (uint32_t i = 0; i < RUDP_ACK_MAX_RANGES; i++) {
            uint64_t span = rnd(&seed) % 8 == 0 ? rnd(&seed) >> 28 : rnd(&seed) % 1000;
            uint64_t gap = rnd(&seed) % 8 == 0 ? rnd(&seed) >> 28 : rnd(&seed) % 1000;
            if (top < span) {
                break;
            }
            in.ranges[i] = (rudp_ack_range){top - span, top};
            in.nranges = i + 1;
            if (top - span < gap + 2) {
                break;
            }
            top = top - span - gap - 2;
        }
        ack_through_wire(&in, &out);
        assert_ack_subset(&in, &out);
    }
}

Test(wire, ack_fit) {
    rudp_ack_frame ack;
    make_ack(&ack, 32, 1000000);
    cr_assert(!rudp_wire_ack_fit(&ack, 17));
    make_ack(&ack, 32, 1000000);
    cr_assert(rudp_wire_ack_fit(&ack, 18));
    cr_assert_eq(ack.nranges, 1);
    make_ack(&ack, 32, 1000000);
    cr_assert(rudp_wire_ack_fit(&ack, 18 + 8 * 5 + 7));
    cr_assert_eq(ack.nranges, 6);
    rudp_frame f = {.type = RUDP_FRAME_ACK, .u.ack = ack};
    cr_assert_eq(rudp_wire_frame_len(&f), 18 + 8 * 5);
    cr_assert_eq(ack.ranges[5].largest, 1000000 - 50);
    make_ack(&ack, 32, 1000000);
    cr_assert(rudp_wire_ack_fit(&ack, 4096));
    cr_assert_eq(ack.nranges, 32);
    ack.nranges = 0;
    cr_assert(!rudp_wire_ack_fit(&ack, 4096));
}

/* Decodes every frame of |payload| until the end or an error, asserting
 * that no frame claims more bytes than remain. */
static void walk_frames(const uint8_t *p, size_t len) {
    rudp_frame f;
    while (len > 0) {
        ssize_t n = rudp_wire_decode_frame(p, len, &f);
        if (n < 0) {
            cr_assert_eq(n, RUDP_ERR_MALFORMED);
            return;
        }
        cr_assert(n > 0 && (size_t)n <= len);
        p += n;
        len -= (size_t)n;
    }
}

/* Fills a random input of |len| bytes, biased toward valid frame types and
 * small ACK range counts so that decoding gets past the first checks. */
static void random_input(uint8_t *p, size_t len, uint64_t *seed) {
    for (size_t i = 0; i < len; i++) {
        p[i] = (uint8_t)rnd(seed);
    }
    if (len > 0 && rnd(seed) % 2) {
        p[0] = (uint8_t)(rnd(seed) % 12);
    }
    if (len > 13 && rnd(seed) % 2) {
        p[13] &= 3;
    }
}

Test(wire, random_bytes_never_crash) {
    uint64_t seed = 0xfeedface;
    for (int iter = 0; iter < 10000; iter++) {
        size_t len = rnd(&seed) % 4 == 0 ? rnd(&seed) % 400 : rnd(&seed) % 48;
        uint8_t *p = malloc(len);
        cr_assert(p != NULL || len == 0);
        rudp_frame f;
        random_input(p, len, &seed);
        ssize_t n = rudp_wire_decode_frame(p, len, &f);
        cr_assert(n == RUDP_ERR_MALFORMED || (n > 0 && (size_t)n <= len));
        walk_frames(p, len);
        if (len >= RUDP_PREFIX_LEN && rnd(&seed) % 2) {
            p[0] = RUDP_VERSION;
            p[1] = (uint8_t)(rnd(&seed) % 7);
        }
        rudp_pkt_hdr hdr;
        if (rudp_wire_parse(p, len, &hdr) == RUDP_OK) {
            cr_assert(hdr.len <= len);
            walk_frames(p + hdr.len, len - hdr.len);
        }
        free(p);
    }
}

Test(wire, strerror_names_every_code) {
    for (int e = RUDP_OK; e >= RUDP_ERR_RETRY; e--) {
        const char *s = rudp_strerror(e);
        cr_assert(s != NULL && strcmp(s, "unknown error") != 0, "code %d", e);
        for (int k = RUDP_OK; k > e; k--) {
            cr_assert(strcmp(s, rudp_strerror(k)) != 0, "codes %d and %d", e, k);
        }
    }
    cr_assert_str_eq(rudp_strerror(RUDP_ERR_RETRY - 1), "unknown error");
    cr_assert_str_eq(rudp_strerror(1), "unknown error");
    cr_assert_str_eq(rudp_strerror(-999), "unknown error");
    cr_assert_str_eq(rudp_strerror(RUDP_ERR_SYS(EPIPE)), "system call failed");
    cr_assert(RUDP_ERR_IS_SYS(RUDP_ERR_SYS(0)) && !RUDP_ERR_IS_SYS(RUDP_ERR_INTERNAL));
    cr_assert_eq(RUDP_ERR_SYS_ERRNO(RUDP_ERR_SYS(EPIPE)), EPIPE);
}
