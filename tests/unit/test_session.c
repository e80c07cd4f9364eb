/*
 * test_session.c — the session and stream state machines, driven through
 * the public API with two sessions on an in-memory link (helpers.c): 0-RTT
 * under a pre-shared key, the SYN-ACK, half-close, the four-way and
 * simultaneous close, RST in every stream state, idle and handshake
 * timeouts, GoAway, stateless reset, stream limits, flow-control limits,
 * malformed input, migration, zero-copy writes (reserve and commit), and the
 * user pointer on events.
 *
 * Every datagram is sealed (engine/session_protect.c), so a test that looks
 * inside one opens a copy the way its receiver would.  The last part checks
 * what the sealing is for: nothing readable on the wire, nothing forged or
 * replayed accepted, resets and retries believed only from who may send
 * them, no amplification before the client's address is proven, refusals
 * that say why, and migration only to an address that answers.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "handshake.h"
#include "helpers.h"
#include "session.h"

#define DELAY RUDP_MS(20)
#define LIMIT(p) ((p)->now + RUDP_SEC(120))

/* What one datagram carried, opened and decoded for assertions: the header
 * and DATA frames point into |plain|, the opened copy. */
typedef struct seen {
    rudp_pkt_hdr hdr;
    int nframes;
    rudp_frame f[64];
    uint8_t plain[TEST_MAX_DGRAM];
} seen;

/* Copies |pkt| into |out| and parses its header; fails the test when it
 * does not parse. */
static void seen_parse(seen *out, const uint8_t *pkt, size_t len) {
    memset(out, 0, sizeof(*out));
    cr_assert_leq(len, sizeof(out->plain));
    memcpy(out->plain, pkt, len);
    cr_assert_eq(rudp_wire_parse(out->plain, len, &out->hdr), RUDP_OK);
}

/* Decodes the |plen| plaintext bytes after the header into out->f (PADDING
 * skipped); fails the test when a frame does not decode. */
static void seen_frames(seen *out, size_t plen) {
    const uint8_t *p = out->plain + out->hdr.len;
    while (plen > 0 && out->nframes < 64) {
        ssize_t n = rudp_wire_decode_frame(p, plen, &out->f[out->nframes]);
        cr_assert_gt(n, 0);
        if (out->f[out->nframes].type != RUDP_FRAME_PADDING)
            out->nframes++;
        p += n;
        plen -= (size_t)n;
    }
}

/* Opens a client's INITIAL as a server with settings |ss| would (no server
 * session needed) and decodes it into |out|. */
static void decode_initial(const rudp_settings *ss, const uint8_t *pkt, size_t len,
                           seen *out) {
    uint8_t early[RUDP_SECRET_LEN];
    rudp_aead a;
    seen_parse(out, pkt, len);
    cr_assert_eq(out->hdr.type, RUDP_PKT_INITIAL);
    rudp_hs_early(early, ss);
    cr_assert(rudp_hs_initial_aead(&a, early, out->hdr.dcid, out->hdr.share));
    ssize_t n = rudp_aead_open(&a, out->hdr.pn, out->plain, out->hdr.len,
                               out->plain + out->hdr.len, len - out->hdr.len);
    rudp_aead_free(&a);
    cr_assert_geq(n, 0, "the INITIAL does not open");
    seen_frames(out, (size_t)n);
}

/* Opens the server's first HANDSHAKE (in out->plain) with the keys client
 * |cli| would derive from it, without giving them to |cli|; returns the
 * plaintext length or RUDP_ERR_AUTH. */
static ssize_t open_first_handshake(const rudp_session *cli, seen *out, size_t len) {
    uint8_t dh[RUDP_SECRET_LEN];
    rudp_aead tx, rx;
    cr_assert(rudp_x25519(dh, cli->kp.priv, out->hdr.share));
    rudp_hs_input in = {.early = cli->early,
                        .dh = dh,
                        .dcid = cli->initial_cid,
                        .client_share = cli->kp.pub,
                        .server_share = out->hdr.share};
    cr_assert(rudp_hs_1rtt(&tx, &rx, &in, true));
    ssize_t n = rudp_aead_open(&rx, out->hdr.pn, out->plain, out->hdr.len,
                               out->plain + out->hdr.len, len - out->hdr.len);
    rudp_aead_free(&tx);
    rudp_aead_free(&rx);
    return n;
}

/* Opens a copy of a datagram sent to |rx| with |rx|'s keys (rudp_sess_open,
 * which changes nothing but for a client's first HANDSHAKE: that one is
 * opened aside, so |rx| stays as it was) and decodes it into |out|; fails
 * the test when it does not open. */
static void decode(rudp_session *rx, const uint8_t *pkt, size_t len, seen *out) {
    static rudp_decoded_pkt d;
    seen_parse(out, pkt, len);
    if (rx->is_client && !rx->keyed && out->hdr.type == RUDP_PKT_HANDSHAKE) {
        cr_assert_geq(open_first_handshake(rx, out, len), 0, "the HANDSHAKE does not open");
    } else {
        cr_assert_eq(rudp_sess_open(rx, out->plain, len, &out->hdr, &d), RUDP_OK);
    }
    seen_frames(out, len - out->hdr.len - RUDP_TAG_LEN);
}

/* Decodes a datagram a pair's session sent in direction |dir| (what a link
 * filter sees); a client's INITIAL needs no server session yet. */
static void decode_dir(test_pair *p, int dir, const uint8_t *pkt, size_t len, seen *out) {
    if (len > 1 && pkt[1] == RUDP_PKT_INITIAL)
        decode_initial(&p->sset, pkt, len, out);
    else
        decode(dir == TEST_DIR_C2S ? p->srv : p->cli, pkt, len, out);
}

/* Returns the first frame of |type| in |s|, or NULL. */
static const rudp_frame *find_frame(const seen *s, int type) {
    for (int i = 0; i < s->nframes; i++)
        if (s->f[i].type == type)
            return &s->f[i];
    return NULL;
}

/* Hands |s| a copy of datagram |pkt| (it decrypts in place, so |pkt| stays
 * usable for a replay); returns what rudp_session_read_pkt returned. */
static int deliver(rudp_session *s, const uint8_t *pkt, size_t len, const rudp_addr *from,
                   rudp_tstamp now) {
    static uint8_t copy[TEST_MAX_DGRAM];
    cr_assert_leq(len, sizeof(copy));
    memcpy(copy, pkt, len);
    return rudp_session_read_pkt(s, copy, len, from, now);
}

/* Makes the server session of |p|'s settings from a copy of the client's
 * first datagram, as a server that is not busy; fails the test when none is
 * made. */
static rudp_session *new_server(test_pair *p, uint64_t seed, const uint8_t *pkt,
                                size_t len) {
    static uint8_t copy[TEST_MAX_DGRAM];
    rudp_reply reply;
    int err;
    memcpy(copy, pkt, len);
    rudp_session *srv = rudp_session_new_server(&p->sset, seed, copy, len, &p->caddr,
                                                p->now, false, &reply, &err);
    cr_assert_not_null(srv, "no server session: %d", err);
    cr_assert_eq(reply.len, 0);
    return srv;
}

/* Writes one datagram from |s| at |now|; returns its length (0 if none). */
static size_t one_dgram(rudp_session *s, uint8_t *buf, rudp_tstamp now) {
    rudp_addr to;
    ssize_t n = rudp_session_write_pkt(s, buf, TEST_MAX_DGRAM, &to, now);
    cr_assert_geq(n, 0);
    return (size_t)n;
}

/* Opens stream |*sid| on the client and writes |msg| to it. */
static void open_and_write(rudp_session *s, uint64_t *sid, const char *msg) {
    cr_assert_eq(rudp_stream_open(s, sid), RUDP_OK);
    if (msg)
        cr_assert_eq(rudp_stream_write(s, *sid, msg, strlen(msg)), (ssize_t)strlen(msg));
}

/* Fills |cs| and |ss| with the defaults and the same pre-shared key. */
static void psk_settings(rudp_settings *cs, rudp_settings *ss) {
    rudp_settings_default(cs);
    rudp_settings_default(ss);
    cs->psk_set = ss->psk_set = true;
    memset(cs->psk, 0x5a, sizeof(cs->psk));
    memset(ss->psk, 0x5a, sizeof(ss->psk));
}

/* Sets up a pair whose ends share a pre-shared key. */
static void psk_pair_init(test_pair *p) {
    rudp_settings cs, ss;
    psk_settings(&cs, &ss);
    test_pair_init(p, &cs, &ss, DELAY);
}

static bool both_established(test_pair *p) {
    return p->srv && rudp_session_is_established(p->cli) && !rudp_session_is_done(p->cli) &&
           rudp_session_is_validated(p->srv);
}

/* Brings a pair up to an established session with no stream, the client's
 * address validated at the server. */
static void establish(test_pair *p) {
    cr_assert(test_pair_run_until(p, both_established, LIMIT(p)));
    rudp_event ev;
    while (rudp_session_poll_event(p->cli, &ev))
        ;
    while (rudp_session_poll_event(p->srv, &ev))
        ;
}

Test(session, zero_rtt_under_a_psk_first_datagram_carries_syn_stream_syn_and_data) {
    /* Under a pre-shared key the INITIAL is private, so the client's first
     * datagram carries its data; the server keeps the bytes but reports
     * nothing before the client has proved its address. */
    test_pair p;
    psk_pair_init(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "hello");
    cr_assert_eq(sid, 1);
    uint8_t d[TEST_MAX_DGRAM];
    size_t n = one_dgram(p.cli, d, p.now);
    cr_assert_eq(n, RUDP_MIN_INITIAL, "INITIALs are padded");
    seen s;
    decode_initial(&p.sset, d, n, &s);
    cr_assert_eq(s.hdr.flags, RUDP_INITIAL_F_PSK);
    const rudp_frame *sf = find_frame(&s, RUDP_FRAME_SESSION);
    const rudp_frame *df = find_frame(&s, RUDP_FRAME_DATA);
    cr_assert(sf && sf->u.session.flags == RUDP_FLAG_SYN);
    cr_assert(df);
    cr_assert_eq(df->u.data.flags & RUDP_FLAG_SYN, RUDP_FLAG_SYN);
    cr_assert_eq(df->u.data.offset, 0);
    cr_assert_eq(df->u.data.len, 5);
    cr_assert_eq(memcmp(df->u.data.data, "hello", 5), 0);

    rudp_session *srv = new_server(&p, 5, d, n);
    rudp_stream_info si;
    cr_assert_eq(rudp_stream_get_info(srv, 1, &si), RUDP_OK);
    cr_assert_eq(si.bytes_readable, 5);
    cr_assert_not(rudp_session_is_validated(srv));
    rudp_event ev;
    cr_assert_not(rudp_session_poll_event(srv, &ev), "event %d before validation", ev.type);
    rudp_session_del(srv);
    test_pair_free(&p);
}

Test(session, without_a_psk_the_first_datagram_carries_only_the_syn) {
    /* Without a pre-shared key anyone can open an INITIAL: it carries the
     * SESSION SYN alone, and the stream waits for the handshake. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    uint64_t sid;
    open_and_write(p.cli, &sid, "hello");
    uint8_t d[TEST_MAX_DGRAM];
    size_t n = one_dgram(p.cli, d, p.now);
    seen s;
    decode_initial(&p.sset, d, n, &s);
    cr_assert_eq(s.hdr.flags, 0);
    cr_assert_eq(s.nframes, 1);
    cr_assert_eq(s.f[0].type, RUDP_FRAME_SESSION);
    cr_assert_eq(s.f[0].u.session.flags, RUDP_FLAG_SYN);
    cr_assert_eq(one_dgram(p.cli, d, p.now), 0, "the data went out before the handshake");
    test_pair_free(&p);
}

Test(session, answer_to_0rtt_data_follows_the_validation) {
    /* The SYN-ACK cannot wait for the application's answer any more: the
     * server delivers nothing before the client's first PROTECTED packet.
     * SYN-ACK at once, the client's ACK validates it, then the answer. */
    test_pair p;
    psk_pair_init(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "ping");
    uint8_t d[TEST_MAX_DGRAM];
    size_t n = one_dgram(p.cli, d, p.now);
    rudp_session *srv = new_server(&p, 5, d, n);
    n = one_dgram(srv, d, p.now);
    seen s;
    decode(p.cli, d, n, &s);
    const rudp_frame *df = find_frame(&s, RUDP_FRAME_DATA);
    cr_assert_eq(s.hdr.type, RUDP_PKT_HANDSHAKE);
    cr_assert_not_null(find_frame(&s, RUDP_FRAME_SESSION));
    cr_assert(df && df->u.data.flags == RUDP_FLAG_ACK && df->u.data.len == 0,
              "only the stream's ACK flag rides with the SYN-ACK");
    cr_assert_eq(deliver(p.cli, d, n, &p.saddr, p.now + 2 * DELAY), RUDP_OK);
    cr_assert(rudp_session_is_established(p.cli));
    n = one_dgram(p.cli, d, p.now + 2 * DELAY);
    decode(srv, d, n, &s);
    cr_assert_eq(s.hdr.type, RUDP_PKT_PROTECTED);
    cr_assert_eq(deliver(srv, d, n, &p.caddr, p.now + 3 * DELAY), RUDP_OK);
    cr_assert(rudp_session_is_validated(srv));
    cr_assert(test_drain_events_for(srv, RUDP_EV_STREAM_READABLE, sid));
    char buf[8];
    cr_assert_eq(rudp_stream_read(srv, sid, buf, sizeof(buf)), 4);
    cr_assert_eq(memcmp(buf, "ping", 4), 0);
    cr_assert_eq(rudp_stream_write(srv, sid, "pong", 4), 4);
    n = one_dgram(srv, d, p.now + 3 * DELAY);
    decode(p.cli, d, n, &s);
    df = find_frame(&s, RUDP_FRAME_DATA);
    cr_assert_eq(s.hdr.type, RUDP_PKT_PROTECTED);
    cr_assert(df && df->u.data.len == 4 && memcmp(df->u.data.data, "pong", 4) == 0);
    cr_assert_null(find_frame(&s, RUDP_FRAME_SESSION), "the SYN-ACK was acknowledged");
    cr_assert_eq(deliver(p.cli, d, n, &p.saddr, p.now + 4 * DELAY), RUDP_OK);
    cr_assert_eq(rudp_stream_read(p.cli, sid, buf, sizeof(buf)), 4);
    cr_assert_eq(memcmp(buf, "pong", 4), 0);
    rudp_stream_info si;
    rudp_stream_get_info(p.cli, sid, &si);
    cr_assert_eq(si.state, RUDP_STREAM_ESTABLISHED);
    rudp_session_del(srv);
    test_pair_free(&p);
}

Test(session, synack_goes_at_once_even_after_0rtt_data) {
    /* Nothing the client sent can be answered before it is validated, so
     * the SYN-ACK does not wait for the ACK delay. */
    test_pair p;
    psk_pair_init(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "x");
    uint8_t d[TEST_MAX_DGRAM];
    size_t n = one_dgram(p.cli, d, p.now);
    rudp_session *srv = new_server(&p, 5, d, n);
    cr_assert_eq(rudp_session_deadline(srv), p.now);
    n = one_dgram(srv, d, p.now);
    seen s;
    decode(p.cli, d, n, &s);
    const rudp_frame *sf = find_frame(&s, RUDP_FRAME_SESSION);
    cr_assert(sf && sf->u.session.flags == (RUDP_FLAG_SYN | RUDP_FLAG_ACK));
    cr_assert_not_null(find_frame(&s, RUDP_FRAME_ACK));
    rudp_session_del(srv);
    test_pair_free(&p);
}

Test(session, cold_connect_without_data_is_answered_at_once) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    uint8_t d[TEST_MAX_DGRAM];
    size_t n = one_dgram(p.cli, d, p.now);
    cr_assert_gt(n, 0);
    rudp_session *srv = new_server(&p, 5, d, n);
    n = one_dgram(srv, d, p.now);
    seen s;
    decode(p.cli, d, n, &s);
    cr_assert_eq(s.hdr.type, RUDP_PKT_HANDSHAKE);
    cr_assert_not_null(find_frame(&s, RUDP_FRAME_SESSION));
    rudp_session_del(srv);
    test_pair_free(&p);
}

Test(session, cold_connect_with_an_empty_stream_is_answered_at_once) {
    /* A blocking connect: session SYN and stream SYN (under a pre-shared
     * key), no bytes.  The client waits for the SYN-ACK before it writes,
     * so it must not wait for the server's ACK delay. */
    test_pair p;
    psk_pair_init(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, NULL);
    uint8_t d[TEST_MAX_DGRAM];
    size_t n = one_dgram(p.cli, d, p.now);
    seen s;
    decode_initial(&p.sset, d, n, &s);
    cr_assert_not_null(find_frame(&s, RUDP_FRAME_DATA), "the stream SYN rides along");
    rudp_session *srv = new_server(&p, 5, d, n);
    n = one_dgram(srv, d, p.now);
    cr_assert_gt(n, 0, "nothing sent at once");
    decode(p.cli, d, n, &s);
    cr_assert_not_null(find_frame(&s, RUDP_FRAME_SESSION));
    rudp_session_del(srv);
    test_pair_free(&p);
}

Test(session, new_stream_on_established_session_costs_no_round_trip) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "req");
    uint8_t d[TEST_MAX_DGRAM];
    size_t n = one_dgram(p.cli, d, p.now);
    seen s;
    decode(p.srv, d, n, &s);
    const rudp_frame *df = find_frame(&s, RUDP_FRAME_DATA);
    cr_assert(df && (df->u.data.flags & RUDP_FLAG_SYN) && df->u.data.len == 3);
    cr_assert_eq(deliver(p.srv, d, n, &p.caddr, p.now + DELAY), RUDP_OK);
    char buf[8];
    cr_assert_eq(rudp_stream_read(p.srv, sid, buf, sizeof(buf)), 3);
    test_pair_free(&p);
}

static enum rudp_stream_state state_of(rudp_session *s, uint64_t sid) {
    rudp_stream_info si;
    cr_assert_eq(rudp_stream_get_info(s, sid, &si), RUDP_OK);
    return si.state;
}

static bool quiet(test_pair *p) {
    return p->nq == 0;
}

Test(session, four_way_close_passes_through_every_state) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "a");
    cr_assert_eq(state_of(p.cli, sid), RUDP_STREAM_CONNECTING);
    test_pair_run_until(&p, quiet, LIMIT(&p));
    test_pair_run(&p, p.now + RUDP_SEC(1));
    cr_assert_eq(state_of(p.cli, sid), RUDP_STREAM_ESTABLISHED);
    cr_assert_eq(state_of(p.srv, sid), RUDP_STREAM_ESTABLISHED);

    cr_assert_eq(rudp_stream_shutdown_write(p.cli, sid), RUDP_OK);
    test_pair_flush(&p);
    cr_assert_eq(state_of(p.cli, sid), RUDP_STREAM_CLOSING);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    cr_assert_eq(state_of(p.srv, sid), RUDP_STREAM_FIN_WAIT);

    cr_assert_eq(rudp_stream_shutdown_write(p.srv, sid), RUDP_OK);
    test_pair_flush(&p);
    cr_assert_eq(state_of(p.srv, sid), RUDP_STREAM_LAST_ACK);
    test_pair_run(&p, p.now + RUDP_SEC(1));

    uint8_t buf[8];
    bool eof;
    int err;
    cr_assert_eq(test_read_all(p.srv, sid, buf, sizeof(buf), &eof, &err), 1);
    cr_assert(eof);
    cr_assert_eq(test_read_all(p.cli, sid, buf, sizeof(buf), &eof, &err), 0);
    cr_assert(eof);
    cr_assert_eq(state_of(p.cli, sid), RUDP_STREAM_CLOSED);
    cr_assert_eq(state_of(p.srv, sid), RUDP_STREAM_CLOSED);
    cr_assert_eq(rudp_stream_release(p.cli, sid), RUDP_OK);
    cr_assert_eq(rudp_stream_release(p.srv, sid), RUDP_OK);
    rudp_session_info ci, si;
    rudp_session_get_info(p.cli, &ci);
    rudp_session_get_info(p.srv, &si);
    cr_assert_eq(ci.streams_open, 0);
    cr_assert_eq(si.streams_open, 0);
    cr_assert_eq(ci.chunks_in_use + si.chunks_in_use, 0);
    test_pair_free(&p);
}

/* Sets up |p| with an established session whose client wrote "a" on
 * stream *sid a second ago (everything delivered): where the close, the
 * zero-copy and the migration tests start. */
static void pair_with_traffic(test_pair *p, uint64_t *sid) {
    test_pair_init(p, NULL, NULL, DELAY);
    establish(p);
    open_and_write(p->cli, sid, "a");
    test_pair_run(p, p->now + RUDP_SEC(1));
}

Test(session, simultaneous_close) {
    test_pair p;
    uint64_t sid;
    pair_with_traffic(&p, &sid);
    cr_assert_eq(rudp_stream_write(p.srv, sid, "b", 1), 1);
    /* Both FINs cross on the wire. */
    rudp_stream_shutdown_write(p.cli, sid);
    rudp_stream_shutdown_write(p.srv, sid);
    test_pair_flush(&p);
    cr_assert_eq(state_of(p.cli, sid), RUDP_STREAM_CLOSING);
    cr_assert_eq(state_of(p.srv, sid), RUDP_STREAM_CLOSING);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    cr_assert_eq(state_of(p.cli, sid), RUDP_STREAM_LAST_ACK);
    uint8_t buf[4];
    bool eof;
    int err;
    cr_assert_eq(test_read_all(p.cli, sid, buf, sizeof(buf), &eof, &err), 1);
    cr_assert(eof && buf[0] == 'b');
    cr_assert_eq(test_read_all(p.srv, sid, buf, sizeof(buf), &eof, &err), 1);
    cr_assert(eof && buf[0] == 'a');
    cr_assert_eq(state_of(p.cli, sid), RUDP_STREAM_CLOSED);
    cr_assert_eq(state_of(p.srv, sid), RUDP_STREAM_CLOSED);
    test_pair_free(&p);
}

Test(session, half_close_keeps_the_other_direction_open) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "q");
    rudp_stream_shutdown_write(p.cli, sid);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    cr_assert_eq(rudp_stream_write(p.cli, sid, "z", 1), RUDP_ERR_STREAM_STATE);
    static uint8_t big[300000], got[300000];
    test_fill_pattern(big, sizeof(big), 7);
    size_t off = 0, rcv = 0;
    bool eof = false;
    int err;
    while (!eof) {
        if (off < sizeof(big)) {
            ssize_t n = rudp_stream_write(p.srv, sid, big + off, sizeof(big) - off);
            if (n > 0)
                off += (size_t)n;
            if (off == sizeof(big))
                rudp_stream_shutdown_write(p.srv, sid);
        }
        cr_assert(test_pair_step(&p, LIMIT(&p)));
        rcv += test_read_all(p.cli, sid, got + rcv, sizeof(got) - rcv, &eof, &err);
        cr_assert_eq(err, RUDP_OK);
    }
    cr_assert_eq(rcv, sizeof(big));
    cr_assert_eq(memcmp(big, got, sizeof(big)), 0);
    test_pair_free(&p);
}

/* Where to put a stream before resetting it. */
enum rst_point {
    RST_CONNECTING,
    RST_SYN_RECEIVED,
    RST_ESTABLISHED,
    RST_CLOSING,
    RST_FIN_WAIT,
    RST_LAST_ACK
};

/* Drives stream 1 into |where| and returns the session that resets it
 * (*other gets the peer). */
static rudp_session *drive_to(test_pair *p, enum rst_point where, rudp_session **other) {
    uint64_t sid;
    establish(p);
    open_and_write(p->cli, &sid, "data");
    *other = p->srv;
    if (where == RST_CONNECTING) {
        cr_assert_eq(state_of(p->cli, 1), RUDP_STREAM_CONNECTING);
        return p->cli;
    }
    /* Deliver the SYN only: the server has not acknowledged its ACK flag. */
    test_pair_flush(p);
    p->now += DELAY;
    cr_assert(test_pair_step(p, p->now));
    *other = p->cli;
    if (where == RST_SYN_RECEIVED) {
        cr_assert_eq(state_of(p->srv, 1), RUDP_STREAM_SYN_RECEIVED);
        return p->srv;
    }
    test_pair_run(p, p->now + RUDP_SEC(1));
    if (where == RST_ESTABLISHED) {
        cr_assert_eq(state_of(p->srv, 1), RUDP_STREAM_ESTABLISHED);
        return p->srv;
    }
    rudp_stream_shutdown_write(p->cli, 1);
    test_pair_run(p, p->now + RUDP_SEC(1));
    if (where == RST_CLOSING) {
        *other = p->srv;
        cr_assert_eq(state_of(p->cli, 1), RUDP_STREAM_CLOSING);
        return p->cli;
    }
    if (where == RST_FIN_WAIT) {
        cr_assert_eq(state_of(p->srv, 1), RUDP_STREAM_FIN_WAIT);
        return p->srv;
    }
    rudp_stream_shutdown_write(p->srv, 1);
    test_pair_flush(p);
    cr_assert_eq(state_of(p->srv, 1), RUDP_STREAM_LAST_ACK);
    return p->srv;
}

/* Resets stream 1 in |where| and checks both sides see the abort. */
static void check_reset_in(enum rst_point where) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    rudp_session *other;
    rudp_session *me = drive_to(&p, where, &other);
    cr_assert_eq(rudp_stream_reset(me, 1, 0), RUDP_OK);
    cr_assert_eq(state_of(me, 1), RUDP_STREAM_RESET);
    test_pair_run(&p, p.now + RUDP_SEC(2));
    if (!other) /* (cannot happen; keeps analyzers calm) */
        cr_assert_fail();
    if (where == RST_CONNECTING)
        other = p.srv;
    cr_assert_eq(state_of(other, 1), RUDP_STREAM_RESET);
    uint8_t buf[8];
    /* Buffered bytes are discarded by an abort, as with TCP's RST. */
    cr_assert_eq(rudp_stream_read(other, 1, buf, sizeof(buf)), RUDP_ERR_RESET);
    cr_assert_eq(rudp_stream_write(other, 1, "x", 1), RUDP_ERR_RESET);
    rudp_stream_release(me, 1);
    rudp_stream_release(other, 1);
    test_pair_run(&p, p.now + RUDP_SEC(2));
    rudp_session_info ci, si;
    rudp_session_get_info(p.cli, &ci);
    rudp_session_get_info(p.srv, &si);
    cr_assert_eq(ci.streams_open, 0, "client still holds %u streams", ci.streams_open);
    cr_assert_eq(si.streams_open, 0, "server still holds %u streams", si.streams_open);
    cr_assert_eq(ci.chunks_in_use + si.chunks_in_use, 0);
    test_pair_free(&p);
}

Test(session, rst_in_connecting) {
    check_reset_in(RST_CONNECTING);
}
Test(session, rst_in_syn_received) {
    check_reset_in(RST_SYN_RECEIVED);
}
Test(session, rst_in_established) {
    check_reset_in(RST_ESTABLISHED);
}
Test(session, rst_in_closing) {
    check_reset_in(RST_CLOSING);
}
Test(session, rst_in_fin_wait) {
    check_reset_in(RST_FIN_WAIT);
}
Test(session, rst_in_last_ack) {
    check_reset_in(RST_LAST_ACK);
}

Test(session, rst_reports_event_with_error) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "x");
    test_pair_run(&p, p.now + RUDP_SEC(1));
    rudp_event ev;
    while (rudp_session_poll_event(p.cli, &ev))
        ;
    rudp_stream_reset(p.srv, sid, RUDP_RST_REFUSED);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    bool seen_reset = false;
    while (rudp_session_poll_event(p.cli, &ev))
        if (ev.type == RUDP_EV_STREAM_RESET && ev.sid == sid) {
            seen_reset = true;
            cr_assert_eq(ev.error, RUDP_ERR_REFUSED);
        }
    cr_assert(seen_reset);
    test_pair_free(&p);
}

/* Link filters and conditions shared by the tests below. */
static bool drop_all(test_pair *p, int dir, uint8_t *pkt, size_t len) {
    return false;
}

static bool drop_c2s(test_pair *p, int dir, uint8_t *pkt, size_t len) {
    return dir != TEST_DIR_C2S;
}

static bool drop_s2c(test_pair *p, int dir, uint8_t *pkt, size_t len) {
    return dir != TEST_DIR_S2C;
}

static bool cli_done(test_pair *p) {
    return rudp_session_is_done(p->cli);
}

static bool cli_settled(test_pair *p) {
    return rudp_session_is_settled(p->cli);
}

static bool srv_settled(test_pair *p) {
    return rudp_session_is_settled(p->srv);
}

Test(session, settled_only_once_the_rst_is_acknowledged) {
    /* The exit flush waits for this: a reset stream has no bytes left to
     * deliver, but its RST is still owed to the peer. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "x");
    test_pair_run(&p, p.now + RUDP_SEC(1));
    cr_assert(rudp_session_is_settled(p.srv));
    cr_assert_eq(rudp_stream_reset(p.srv, sid, 0), RUDP_OK);
    cr_assert_not(rudp_session_is_settled(p.srv), "settled with the RST unsent");
    test_pair_flush(&p);
    cr_assert_not(rudp_session_is_settled(p.srv), "settled with the RST unacknowledged");
    cr_assert(test_pair_run_until(&p, srv_settled, LIMIT(&p)));
    cr_assert_eq(state_of(p.cli, sid), RUDP_STREAM_RESET, "settled before the peer had it");
    test_pair_free(&p);
}

Test(session, leave_after_settling_keeps_delivered_bytes_readable) {
    /* A client writes and half-closes two streams, and once the server has
     * acknowledged it all, leaves (its process exits).  The server, which
     * has not read yet, still reads every byte and EOF on both.  On the
     * first it had shut its side too, but the FIN was lost: it counts as
     * delivered, the stream ends CLOSED.  On the second it may still write:
     * writes fail, the stream is reset.  Its session ends. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    static uint8_t big[200000], got[200001];
    test_fill_pattern(big, sizeof(big), 21);
    uint64_t sid[2];
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(rudp_stream_open(p.cli, &sid[i]), RUDP_OK);
        cr_assert_eq(rudp_stream_write(p.cli, sid[i], big, sizeof(big)),
                     (ssize_t)sizeof(big));
        cr_assert_eq(rudp_stream_shutdown_write(p.cli, sid[i]), RUDP_OK);
    }
    cr_assert(test_pair_run_until(&p, cli_settled, LIMIT(&p)));
    p.filter = drop_s2c; /* the server's FIN never reaches the client */
    cr_assert_eq(rudp_stream_shutdown_write(p.srv, sid[0]), RUDP_OK);
    test_pair_flush(&p);
    cr_assert_eq(rudp_session_leave(p.cli, p.now), RUDP_OK);
    cr_assert_eq(rudp_session_leave(p.cli, p.now), RUDP_ERR_CLOSED);
    test_pair_run(&p, p.now + RUDP_SEC(5));
    for (int i = 0; i < 2; i++) {
        bool eof = false;
        int err;
        size_t n = test_read_all(p.srv, sid[i], got, sizeof(got), &eof, &err);
        cr_assert_eq(n, sizeof(big), "stream %d: %zu bytes", i, n);
        cr_assert(eof, "stream %d: no EOF after the data (error %d)", i, err);
        cr_assert_eq(memcmp(got, big, sizeof(big)), 0);
    }
    cr_assert_eq(state_of(p.srv, sid[0]), RUDP_STREAM_CLOSED);
    cr_assert_eq(state_of(p.srv, sid[1]), RUDP_STREAM_RESET);
    cr_assert_lt(rudp_stream_write(p.srv, sid[1], "x", 1), 0, "wrote to a departed peer");
    bool closed = false;
    rudp_event ev;
    while (rudp_session_poll_event(p.srv, &ev))
        if (ev.type == RUDP_EV_SESSION_CLOSED) {
            closed = true;
            cr_assert_eq(ev.error, RUDP_ERR_PEER_CLOSED);
        }
    cr_assert(closed);
    cr_assert(rudp_session_is_done(p.cli));
    cr_assert(rudp_session_is_done(p.srv));
    test_pair_free(&p);
}

Test(session, dead_peer_gives_timedout_within_the_idle_timeout) {
    rudp_settings cs;
    rudp_settings_default(&cs);
    cs.idle_timeout = RUDP_SEC(5);
    test_pair p;
    test_pair_init(&p, &cs, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "x");
    test_pair_run(&p, p.now + RUDP_SEC(1));
    rudp_tstamp start = p.now;
    p.filter = drop_all;
    rudp_stream_write(p.cli, sid, "more", 4);
    cr_assert(test_pair_run_until(&p, cli_done, LIMIT(&p)));
    cr_assert_leq(p.now - start, RUDP_SEC(5) + RUDP_MS(1));
    rudp_event ev;
    bool closed = false;
    while (rudp_session_poll_event(p.cli, &ev))
        if (ev.type == RUDP_EV_SESSION_CLOSED) {
            closed = true;
            cr_assert_eq(ev.error, RUDP_ERR_TIMEDOUT);
        }
    cr_assert(closed);
    uint8_t b[4];
    cr_assert_eq(rudp_stream_read(p.cli, sid, b, 4), RUDP_ERR_TIMEDOUT);
    cr_assert_eq(rudp_stream_write(p.cli, sid, b, 4), RUDP_ERR_TIMEDOUT);
    test_pair_free(&p);
}

Test(session, unanswered_handshake_times_out) {
    rudp_settings cs;
    rudp_settings_default(&cs);
    cs.handshake_timeout = RUDP_SEC(3);
    test_pair p;
    test_pair_init(&p, &cs, NULL, DELAY);
    p.filter = drop_c2s;
    uint64_t sid;
    open_and_write(p.cli, &sid, "x");
    rudp_tstamp start = p.now;
    cr_assert(test_pair_run_until(&p, cli_done, LIMIT(&p)));
    cr_assert_eq(p.now - start, RUDP_SEC(3));
    cr_assert_gt(p.sent[TEST_DIR_C2S], 1, "the SYN was retransmitted");
    uint8_t b[4];
    cr_assert_eq(rudp_stream_read(p.cli, sid, b, 4), RUDP_ERR_TIMEDOUT);
    test_pair_free(&p);
}

Test(session, keepalive_keeps_an_idle_stream_alive) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "x");
    test_pair_run(&p, p.now + RUDP_SEC(95));
    cr_assert_not(rudp_session_is_done(p.cli));
    cr_assert_not(rudp_session_is_done(p.srv));
    cr_assert_eq(state_of(p.cli, sid), RUDP_STREAM_ESTABLISHED);
    test_pair_free(&p);
}

/* Steps |p| until the server has read stream |sid| up to its FIN, or until
 * |limit|: returns the bytes read into |got| (at most |cap|) and sets *eof
 * when the FIN was reached. */
static size_t read_to_eof(test_pair *p, uint64_t sid, uint8_t *got, size_t cap,
                          rudp_tstamp limit, bool *eof) {
    size_t rcv = 0;
    int err;
    *eof = false;
    while (!*eof && test_pair_step(p, limit))
        rcv += test_read_all(p->srv, sid, got + rcv, cap - rcv, eof, &err);
    return rcv;
}

static bool both_done(test_pair *p) {
    return rudp_session_is_done(p->cli) && rudp_session_is_done(p->srv);
}

Test(session, goaway_closes_both_sessions) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    cr_assert_eq(rudp_session_close(p.cli, 0, p.now), RUDP_OK);
    cr_assert_eq(rudp_session_close(p.cli, 0, p.now), RUDP_ERR_CLOSED);
    cr_assert(test_pair_run_until(&p, both_done, LIMIT(&p)));
    rudp_event ev;
    bool c = false, s = false;
    while (rudp_session_poll_event(p.cli, &ev))
        if (ev.type == RUDP_EV_SESSION_CLOSED)
            c = ev.error == RUDP_OK;
    while (rudp_session_poll_event(p.srv, &ev))
        if (ev.type == RUDP_EV_SESSION_CLOSED)
            s = ev.error == RUDP_ERR_PEER_CLOSED;
    cr_assert(c && s);
    test_pair_free(&p);
}

/* Drops every client datagram until p->user's time. */
static bool drop_client_until(test_pair *p, int dir, uint8_t *pkt, size_t len) {
    (void)pkt;
    (void)len;
    return dir != TEST_DIR_C2S || p->now >= *(rudp_tstamp *)p->user;
}

/* Returns the error the SESSION_CLOSED event of |s| carried (1: none). */
static int closed_error(rudp_session *s) {
    rudp_event ev;
    int err = 1;
    while (rudp_session_poll_event(s, &ev))
        if (ev.type == RUDP_EV_SESSION_CLOSED)
            err = ev.error;
    return err;
}

Test(session, a_goaway_lost_for_seconds_still_closes_the_peer) {
    /* The path loses everything the closer sends for 10 s: the GoAway goes
     * on until it is acknowledged, and the peer closes normally instead of
     * idling out 30 s later with a timeout. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    rudp_tstamp until = p.now + RUDP_SEC(10);
    p.user = &until;
    p.filter = drop_client_until;
    cr_assert_eq(rudp_session_close(p.cli, 0, p.now), RUDP_OK);
    cr_assert(test_pair_run_until(&p, both_done, p.now + RUDP_SEC(25)));
    cr_assert_eq(closed_error(p.cli), RUDP_OK);
    cr_assert_eq(closed_error(p.srv), RUDP_ERR_PEER_CLOSED);
    test_pair_free(&p);
}

Test(session, close_waits_for_streams_to_finish) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    static uint8_t big[100000], got[100000];
    test_fill_pattern(big, sizeof(big), 3);
    cr_assert_eq(rudp_stream_open(p.cli, &sid), RUDP_OK);
    cr_assert_eq(rudp_stream_write(p.cli, sid, big, sizeof(big)), (ssize_t)sizeof(big));
    rudp_stream_release(p.cli, sid);
    rudp_session_close(p.cli, 0, p.now);
    bool eof;
    size_t rcv = read_to_eof(&p, sid, got, sizeof(got), LIMIT(&p), &eof);
    cr_assert(eof);
    cr_assert_eq(rcv, sizeof(big));
    cr_assert_eq(memcmp(got, big, sizeof(big)), 0);
    rudp_stream_release(p.srv, sid);
    cr_assert(test_pair_run_until(&p, both_done, LIMIT(&p)));
    test_pair_free(&p);
}

/* Seals the plaintext frames of |sent| (opened by decode) again as
 * |sender| would, but naming connection ID |dcid| and numbered |pn|, into
 * |buf|; returns the datagram's length. */
static size_t reseal_for(rudp_session *sender, const seen *sent, size_t len, uint64_t dcid,
                         uint64_t pn, uint8_t *buf) {
    size_t plen = len - RUDP_HDR_LEN - RUDP_TAG_LEN;
    cr_assert_eq(rudp_wire_encode_hdr(buf, RUDP_HDR_LEN, dcid, pn), RUDP_HDR_LEN);
    memcpy(buf + RUDP_HDR_LEN, sent->plain + RUDP_HDR_LEN, plen);
    ssize_t n =
        rudp_aead_seal(&sender->tx, pn, buf, RUDP_HDR_LEN, buf + RUDP_HDR_LEN, plen);
    cr_assert_eq(n, (ssize_t)(plen + RUDP_TAG_LEN));
    return len;
}

Test(session, malformed_and_foreign_datagrams_are_dropped_and_counted) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "abc");
    uint8_t d[TEST_MAX_DGRAM], bad[TEST_MAX_DGRAM];
    size_t n = one_dgram(p.cli, d, p.now);
    rudp_session_info before, after;
    rudp_session_get_info(p.srv, &before);

    memcpy(bad, d, n);
    bad[n / 2] ^= 0x10;
    cr_assert_eq(deliver(p.srv, bad, n, &p.caddr, p.now), RUDP_ERR_AUTH);
    /* Sealed under the right keys, but for a connection ID not the server's. */
    seen s;
    decode(p.srv, d, n, &s);
    reseal_for(p.cli, &s, n, s.hdr.dcid ^ 1, s.hdr.pn + 1000, bad);
    cr_assert_eq(deliver(p.srv, bad, n, &p.caddr, p.now), RUDP_ERR_UNKNOWN_CID);
    cr_assert_eq(deliver(p.srv, d, 7, &p.caddr, p.now), RUDP_ERR_MALFORMED);
    memcpy(bad, d, n);
    bad[0] = 9;
    cr_assert_eq(deliver(p.srv, bad, n, &p.caddr, p.now), RUDP_ERR_VERSION);
    rudp_session_get_info(p.srv, &after);
    cr_assert_eq(after.pkts_dropped, before.pkts_dropped + 4);
    cr_assert_eq(after.pkts_recv, before.pkts_recv);
    cr_assert_eq(after.pkts_auth_failed, before.pkts_auth_failed + 1);
    /* The genuine datagram still works, once. */
    cr_assert_eq(deliver(p.srv, d, n, &p.caddr, p.now), RUDP_OK);
    cr_assert_eq(deliver(p.srv, d, n, &p.caddr, p.now), RUDP_ERR_DUPLICATE);
    uint8_t b[8];
    cr_assert_eq(rudp_stream_read(p.srv, sid, b, sizeof(b)), 3);
    test_pair_free(&p);
}

/* Largest stream offset the server has allowed so far, tracked from the
 * wire; checked against every DATA frame of the client. */
static uint64_t allowed_limit;
static bool window_violated;

static bool watch_windows(test_pair *p, int dir, uint8_t *pkt, size_t len) {
    static seen s;
    decode_dir(p, dir, pkt, len, &s);
    for (int i = 0; i < s.nframes; i++) {
        const rudp_frame *f = &s.f[i];
        if (dir == TEST_DIR_S2C && f->type == RUDP_FRAME_WINDOW_UPDATE &&
            f->u.window.sid == 1 && f->u.window.max_data > allowed_limit)
            allowed_limit = f->u.window.max_data;
        if (dir == TEST_DIR_C2S && f->type == RUDP_FRAME_DATA &&
            f->u.data.offset + f->u.data.len > allowed_limit)
            window_violated = true;
    }
    return true;
}

Test(session, sender_never_exceeds_the_stream_window) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    allowed_limit = p.sset.initial_stream_window;
    window_violated = false;
    p.filter = watch_windows;
    uint64_t sid;
    cr_assert_eq(rudp_stream_open(p.cli, &sid), RUDP_OK);
    static uint8_t big[2 << 20], got[2 << 20];
    test_fill_pattern(big, sizeof(big), 9);
    size_t off = 0;
    /* The server application does not read: the client must stop at the window. */
    for (int i = 0; i < 200; i++) {
        ssize_t n = rudp_stream_write(p.cli, sid, big + off, sizeof(big) - off);
        if (n > 0)
            off += (size_t)n;
        test_pair_step(&p, LIMIT(&p));
    }
    test_pair_run(&p, p.now + RUDP_SEC(5));
    rudp_stream_info si;
    rudp_stream_get_info(p.cli, sid, &si);
    cr_assert_eq(si.send_window, 0);
    cr_assert_eq(si.bytes_acked, p.sset.initial_stream_window);
    cr_assert_not(window_violated);
    /* Now the server reads everything; updates open the window. */
    size_t rcv = 0;
    bool eof = false;
    int err;
    bool shut = false;
    while (!eof) {
        if (off < sizeof(big)) {
            ssize_t n = rudp_stream_write(p.cli, sid, big + off, sizeof(big) - off);
            if (n > 0)
                off += (size_t)n;
        }
        if (off == sizeof(big) && !shut)
            shut = rudp_stream_shutdown_write(p.cli, sid) == RUDP_OK;
        rcv += test_read_all(p.srv, sid, got + rcv, sizeof(got) - rcv, &eof, &err);
        if (!eof)
            cr_assert(test_pair_step(&p, LIMIT(&p)));
    }
    cr_assert_eq(rcv, sizeof(big));
    cr_assert_eq(memcmp(big, got, sizeof(big)), 0);
    cr_assert_not(window_violated);
    test_pair_free(&p);
}

Test(session, stateless_reset_resets_everything) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "x");
    test_pair_run(&p, p.now + RUDP_SEC(1));
    rudp_session_info ci;
    rudp_session_get_info(p.cli, &ci);
    uint8_t r[64], token[RUDP_TOKEN_LEN];
    rudp_hs_reset_token(token, p.sset.secret, ci.peer_cid);
    ssize_t n = rudp_wire_encode_reset(r, sizeof(r), ci.peer_cid, token);
    cr_assert_eq(n, RUDP_RESET_LEN);
    uint64_t cid;
    cr_assert_eq(rudp_packet_peek_cid(r, (size_t)n, &cid), RUDP_OK);
    cr_assert_eq(cid, ci.peer_cid);
    cr_assert_eq(deliver(p.cli, r, (size_t)n, &p.saddr, p.now), RUDP_OK);
    cr_assert(rudp_session_is_done(p.cli));
    uint8_t b[4];
    cr_assert_eq(rudp_stream_read(p.cli, sid, b, 4), RUDP_ERR_PEER_RESET);
    test_pair_free(&p);
}

Test(session, stream_limit_is_enforced_and_raised_as_streams_finish) {
    rudp_settings ss;
    rudp_settings_default(&ss);
    ss.max_streams = 100;
    test_pair p;
    test_pair_init(&p, NULL, &ss, DELAY);
    uint64_t sid;
    for (int i = 0; i < 100; i++)
        cr_assert_eq(rudp_stream_open(p.cli, &sid), RUDP_OK);
    cr_assert_eq(rudp_stream_open(p.cli, &sid), RUDP_ERR_STREAM_LIMIT);
    for (uint64_t id = 1; id <= 199; id += 2) {
        rudp_stream_shutdown_write(p.cli, id);
    }
    test_pair_run(&p, p.now + RUDP_SEC(2));
    for (uint64_t id = 1; id <= 199; id += 2) {
        rudp_stream_shutdown_write(p.srv, id);
        rudp_stream_release(p.srv, id);
        rudp_stream_release(p.cli, id);
    }
    test_pair_run(&p, p.now + RUDP_SEC(2));
    cr_assert_eq(rudp_stream_open(p.cli, &sid), RUDP_OK);
    cr_assert_eq(sid, 201);
    test_pair_free(&p);
}

Test(session, data_for_a_released_stream_resets_it) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "x");
    test_pair_run(&p, p.now + RUDP_SEC(1));
    uint8_t b[4];
    cr_assert_eq(rudp_stream_read(p.srv, sid, b, 4), 1);
    cr_assert_eq(rudp_stream_release(p.srv, sid), RUDP_OK);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    rudp_stream_write(p.cli, sid, "late", 4);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    cr_assert_eq(state_of(p.cli, sid), RUDP_STREAM_RESET);
    cr_assert_eq(rudp_stream_write(p.cli, sid, "x", 1), RUDP_ERR_RESET);
    test_pair_free(&p);
}

Test(session, protocol_violation_ends_the_session_with_goaway) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    /* Forge, with the client's keys, a client packet naming a server stream
     * that was never opened. */
    uint8_t d[256];
    size_t pos = rudp_sess_hdr_len(p.cli);
    rudp_frame f = {.type = RUDP_FRAME_DATA};
    f.u.data.sid = 2;
    f.u.data.len = 1;
    f.u.data.data = (const uint8_t *)"z";
    pos += (size_t)rudp_wire_encode_frame(d + pos, sizeof(d) - pos - RUDP_TAG_LEN, &f);
    ssize_t n = rudp_sess_seal(p.cli, d, pos, sizeof(d), 1000);
    cr_assert_eq(n, (ssize_t)(pos + RUDP_TAG_LEN));
    cr_assert_eq(deliver(p.srv, d, (size_t)n, &p.caddr, p.now), RUDP_ERR_PROTOCOL);
    rudp_event ev;
    bool closed = false;
    while (rudp_session_poll_event(p.srv, &ev))
        closed |= ev.type == RUDP_EV_SESSION_CLOSED && ev.error == RUDP_ERR_PROTOCOL;
    cr_assert(closed);
    uint8_t out[TEST_MAX_DGRAM];
    size_t m = one_dgram(p.srv, out, p.now);
    seen s;
    decode(p.cli, out, m, &s);
    const rudp_frame *g = find_frame(&s, RUDP_FRAME_GOAWAY);
    cr_assert(g && g->u.goaway_code == RUDP_GOAWAY_PROTOCOL);
    test_pair_run(&p, LIMIT(&p));
    cr_assert(rudp_session_is_done(p.srv));
    test_pair_free(&p);
}

/* Rewrites the client's address from the first datagram after |switch_at|. */
static rudp_tstamp switch_at;

static bool migrate_filter(test_pair *p, int dir, uint8_t *pkt, size_t len) {
    if (dir == TEST_DIR_C2S && p->now >= switch_at)
        p->caddr.bytes[3] = 9;
    return true;
}

Test(session, migration_to_a_new_address_keeps_streams) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "before");
    test_pair_run(&p, p.now + RUDP_SEC(1));
    switch_at = p.now;
    p.filter = migrate_filter;
    rudp_stream_write(p.cli, sid, "after", 5);
    rudp_stream_shutdown_write(p.cli, sid);
    test_pair_run(&p, p.now + RUDP_SEC(2));
    uint8_t b[32];
    bool eof;
    int err;
    cr_assert_eq(test_read_all(p.srv, sid, b, sizeof(b), &eof, &err), 11);
    cr_assert(eof);
    cr_assert_eq(memcmp(b, "beforeafter", 11), 0);
    /* Server replies now go to the new address. */
    rudp_stream_write(p.srv, sid, "r", 1);
    uint8_t d[TEST_MAX_DGRAM];
    rudp_addr to;
    ssize_t n = rudp_session_write_pkt(p.srv, d, sizeof(d), &to, p.now);
    cr_assert_gt(n, 0);
    cr_assert_eq(to.bytes[3], 9);
    test_pair_free(&p);
}

Test(session, bytes_discarded_by_a_reset_reopen_the_session_window) {
    /* The server's session window (1 MiB, the least a server advertises)
     * cannot grow: four streams fill it, and the server resets them unread
     * (a program that closes with unread data).  The discarded bytes must
     * give the credit back, or the next stream could never send. */
    test_pair p;
    rudp_settings ss;
    rudp_settings_default(&ss);
    ss.initial_session_window = ss.max_session_window = 1024 * 1024;
    ss.initial_stream_window = ss.max_stream_window = 256 * 1024;
    test_pair_init(&p, NULL, &ss, DELAY);
    establish(&p);
    static uint8_t big[256 * 1024], got[20001];
    test_fill_pattern(big, sizeof(big), 8);
    uint64_t a[4], b;
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(rudp_stream_open(p.cli, &a[i]), RUDP_OK);
        cr_assert_eq(rudp_stream_write(p.cli, a[i], big, sizeof(big)),
                     (ssize_t)sizeof(big));
    }
    test_pair_run(&p, p.now + RUDP_SEC(2));
    for (int i = 0; i < 4; i++) {
        rudp_stream_info si;
        cr_assert_eq(rudp_stream_get_info(p.srv, a[i], &si), RUDP_OK);
        cr_assert_eq(si.bytes_readable, sizeof(big), "stream %d did not fill its window",
                     i);
        cr_assert_eq(rudp_stream_reset(p.srv, a[i], 0), RUDP_OK);
    }
    cr_assert_eq(rudp_stream_open(p.cli, &b), RUDP_OK);
    cr_assert_eq(rudp_stream_write(p.cli, b, big, 20000), 20000);
    rudp_stream_shutdown_write(p.cli, b);
    bool eof;
    size_t rcv = read_to_eof(&p, b, got, sizeof(got), p.now + RUDP_SEC(10), &eof);
    cr_assert(eof, "the next stream stalled after %zu bytes", rcv);
    cr_assert_eq(rcv, 20000);
    cr_assert_eq(memcmp(got, big, 20000), 0);
    test_pair_free(&p);
}

Test(session, the_session_window_covers_every_stream_window) {
    /* Four streams are read for a while, so their windows auto-tune, and
     * then never again (a program that stopped reading); their sender keeps
     * them full.  The session window must hold all of their windows and
     * the whole window of a fifth stream opened then, or the fifth could
     * not send although its program reads.  Packets of 1452 bytes keep
     * what BBR puts in flight on this unlimited link within the test
     * link's queue (TEST_QUEUE datagrams). */
    rudp_settings cs, ss;
    rudp_settings_default(&cs);
    rudp_settings_default(&ss);
    cs.max_packet_size = ss.max_packet_size = 1452;
    test_pair p;
    test_pair_init(&p, &cs, &ss, DELAY);
    establish(&p);
    static uint8_t big[4 << 20], got[1 << 20];
    test_fill_pattern(big, sizeof(big), 6);
    uint64_t sids[5], taken[4] = {0}, sent[4] = {0};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(rudp_stream_open(p.cli, &sids[i]), RUDP_OK);
    rudp_tstamp until = p.now + RUDP_SEC(3);
    while (test_pair_step(&p, p.now + RUDP_SEC(1)) && p.now < until) {
        for (int i = 0; i < 4; i++) {
            ssize_t w =
                rudp_stream_write(p.cli, sids[i], big + sent[i], sizeof(big) - sent[i]);
            if (w > 0)
                sent[i] += (uint64_t)w;
            if (taken[i] < (1u << 20) && p.srv) {
                bool eof;
                int err;
                taken[i] +=
                    test_read_all(p.srv, sids[i], got, (1u << 20) - taken[i], &eof, &err);
            }
        }
    }
    uint64_t sum = 0;
    for (int i = 0; i < 4; i++) {
        rudp_stream_info si;
        cr_assert_eq(rudp_stream_get_info(p.srv, sids[i], &si), RUDP_OK);
        cr_assert_gt(si.recv_window, 256 * 1024, "stream %d did not auto-tune", i);
        sum += si.recv_window;
    }
    cr_assert_eq(rudp_stream_open(p.cli, &sids[4]), RUDP_OK);
    cr_assert_eq(rudp_stream_write(p.cli, sids[4], "x", 1), 1);
    test_pair_run(&p, p.now + RUDP_MS(100));
    rudp_session_info in;
    rudp_session_get_info(p.srv, &in);
    cr_assert_geq(in.recv_window, sum + 256 * 1024, "session window %lu, streams %lu",
                  (unsigned long)in.recv_window, (unsigned long)sum);
    test_pair_free(&p);
}

Test(session, unread_streams_do_not_starve_a_read_one) {
    /* Twenty streams each send a full stream window the server never reads
     * (connections waiting in a backlog); the one it reads must finish. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    static uint8_t big[256 * 1024], got[256 * 1024];
    test_fill_pattern(big, sizeof(big), 5);
    uint64_t sids[21];
    for (int i = 0; i < 21; i++) {
        cr_assert_eq(rudp_stream_open(p.cli, &sids[i]), RUDP_OK);
        cr_assert_eq(rudp_stream_write(p.cli, sids[i], big, sizeof(big)),
                     (ssize_t)sizeof(big));
        rudp_stream_shutdown_write(p.cli, sids[i]);
    }
    uint64_t last = sids[20];
    bool eof;
    size_t rcv = read_to_eof(&p, last, got, sizeof(got), p.now + RUDP_SEC(20), &eof);
    cr_assert(eof, "the read stream stalled after %zu bytes", rcv);
    cr_assert_eq(rcv, sizeof(big));
    cr_assert_eq(memcmp(got, big, sizeof(big)), 0);
    test_pair_free(&p);
}

/* Drops every datagram over 1500 bytes, like an Ethernet hop. */
static bool drop_jumbo(test_pair *p, int dir, uint8_t *pkt, size_t len) {
    return len <= 1500;
}

/* Moves |n| bytes client to server on a fresh stream and checks them. */
static void move_bytes(test_pair *p, size_t n) {
    static uint8_t big[1 << 20], got[1 << 20];
    test_fill_pattern(big, n, 77);
    uint64_t sid;
    cr_assert_eq(rudp_stream_open(p->cli, &sid), RUDP_OK);
    cr_assert_eq(rudp_stream_write(p->cli, sid, big, n), (ssize_t)n);
    rudp_stream_shutdown_write(p->cli, sid);
    bool eof;
    size_t rcv = read_to_eof(p, sid, got, sizeof(got), LIMIT(p), &eof);
    cr_assert(eof);
    cr_assert_eq(rcv, n);
    cr_assert_eq(memcmp(got, big, n), 0);
}

Test(session, packet_size_probing_reaches_the_route_ceiling) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    rudp_session_set_mtu_ceiling(p.cli, 9000);
    move_bytes(&p, 1 << 20);
    rudp_session_info ci;
    rudp_session_get_info(p.cli, &ci);
    cr_assert_eq(ci.max_packet_size, 9000);
    test_pair_free(&p);
}

Test(session, lost_probes_fall_back_without_a_congestion_response) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    p.filter = drop_jumbo;
    rudp_session_set_mtu_ceiling(p.cli, 9000);
    rudp_session_info before, ci;
    rudp_session_get_info(p.cli, &before);
    move_bytes(&p, 1 << 20);
    rudp_session_get_info(p.cli, &ci);
    cr_assert_eq(ci.max_packet_size, 1452, "packet size %u",
                 ci.max_packet_size); /* 9000 and 8952 were lost */
    cr_assert_eq(p.dropped[TEST_DIR_C2S], 2);
    cr_assert_geq(ci.cwnd, before.cwnd, "a lost probe shrank the window");
    test_pair_free(&p);
}

/* --- zero-copy writes --- */

/* Writes up to |len| bytes of |src| to |sid| in place: reserves them in up
 * to three iovecs, fills them all, and commits the first |commit| (all when
 * fewer were reserved).  Returns the bytes committed, 0 when full. */
static size_t write_in_place(rudp_session *s, uint64_t sid, const uint8_t *src, size_t len,
                             size_t commit) {
    struct iovec iov[3];
    int n = rudp_stream_write_reserve(s, sid, len, iov, 3);
    cr_assert_geq(n, 0, "reserve: %d", n);
    size_t got = test_iov_fill(iov, n, src, len);
    cr_assert_eq(got, test_iov_len(iov, n), "reserved more than asked");
    if (commit > got)
        commit = got;
    cr_assert_eq(rudp_stream_write_commit(s, sid, commit), RUDP_OK);
    return commit;
}

Test(session, zero_copy_write_arrives_byte_exact) {
    /* Bytes written in place across chunk boundaries, committed in part
     * (the rest reserved again next time), reach the peer byte-exact. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    static uint8_t big[300000], got[300001];
    test_fill_pattern(big, sizeof(big), 31);
    uint64_t sid;
    cr_assert_eq(rudp_stream_open(p.cli, &sid), RUDP_OK);
    for (size_t off = 0; off < sizeof(big);) {
        size_t n =
            write_in_place(p.cli, sid, big + off, sizeof(big) - off, 40001 + off % 7);
        cr_assert_gt(n, 0, "send buffer full after %zu bytes", off);
        off += n;
    }
    cr_assert_eq(rudp_stream_shutdown_write(p.cli, sid), RUDP_OK);
    bool eof;
    size_t rcv = read_to_eof(&p, sid, got, sizeof(got), LIMIT(&p), &eof);
    cr_assert(eof, "no EOF after %zu bytes", rcv);
    cr_assert_eq(rcv, sizeof(big));
    cr_assert_eq(memcmp(big, got, sizeof(big)), 0);
    test_pair_free(&p);
}

Test(session, zero_copy_reserve_respects_the_send_buffer) {
    /* With a 5000-byte send buffer a reserve describes at most the room
     * left, RUDP_ERR_WOULDBLOCK when full; acknowledged bytes make room
     * again. */
    rudp_settings cs;
    rudp_settings_default(&cs);
    cs.stream_send_buffer = 5000;
    test_pair p;
    test_pair_init(&p, &cs, NULL, DELAY);
    establish(&p);
    static uint8_t pat[10000];
    test_fill_pattern(pat, sizeof(pat), 32);
    uint64_t sid;
    struct iovec iov[4];
    cr_assert_eq(rudp_stream_open(p.cli, &sid), RUDP_OK);
    cr_assert_eq(write_in_place(p.cli, sid, pat, 3000, 3000), 3000);
    cr_assert_eq(write_in_place(p.cli, sid, pat + 3000, 7000, 7000), 2000);
    cr_assert_eq(rudp_stream_write_reserve(p.cli, sid, 1, iov, 4), RUDP_ERR_WOULDBLOCK);
    cr_assert_eq(rudp_stream_send_room(p.cli, sid), 0);
    cr_assert_eq(rudp_stream_write(p.cli, sid, "x", 1), RUDP_ERR_WOULDBLOCK);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    int n = rudp_stream_write_reserve(p.cli, sid, sizeof(pat), iov, 4);
    cr_assert_gt(n, 0);
    cr_assert_eq(test_iov_len(iov, n), 5000);
    test_pair_free(&p);
}

Test(session, zero_copy_reserve_refused_after_shutdown_and_reset) {
    /* A shut write side refuses with RUDP_ERR_STREAM_STATE, a reset one
     * with RUDP_ERR_RESET. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t a, b;
    struct iovec iov[2];
    open_and_write(p.cli, &a, "a");
    open_and_write(p.cli, &b, "b");
    cr_assert_eq(rudp_stream_shutdown_write(p.cli, a), RUDP_OK);
    cr_assert_eq(rudp_stream_write_reserve(p.cli, a, 10, iov, 2), RUDP_ERR_STREAM_STATE);
    cr_assert_eq(rudp_stream_reset(p.cli, b, 0), RUDP_OK);
    cr_assert_eq(rudp_stream_write_reserve(p.cli, b, 10, iov, 2), RUDP_ERR_RESET);
    test_pair_free(&p);
}

Test(session, zero_copy_ack_in_between_ends_the_reservation) {
    /* An acknowledgement processed between reserve and commit may hand the
     * reserved space back to the pool: the commit is then refused
     * (RUDP_ERR_INVAL) instead of queueing bytes with no chunk behind them,
     * and the stream goes on. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "a");
    struct iovec iov[2];
    cr_assert_eq(rudp_stream_write_reserve(p.cli, sid, 100, iov, 2), 1);
    test_pair_run(&p, p.now + RUDP_SEC(1)); /* "a" is acknowledged */
    cr_assert_eq(rudp_stream_write_commit(p.cli, sid, 100), RUDP_ERR_INVAL);
    cr_assert_eq(write_in_place(p.cli, sid, (const uint8_t *)"b", 1, 1), 1);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    char buf[8];
    cr_assert_eq(rudp_stream_read(p.srv, sid, buf, sizeof(buf)), 2);
    cr_assert_eq(memcmp(buf, "ab", 2), 0);
    test_pair_free(&p);
}

Test(session, zero_copy_commit_of_zero_is_a_noop) {
    /* Committing 0 bytes, after a reserve or without one, queues nothing,
     * sends nothing and leaves the idle stream holding no chunk; the next
     * commit still lands after the old bytes. */
    test_pair p;
    uint64_t sid;
    pair_with_traffic(&p, &sid);
    uint8_t d[TEST_MAX_DGRAM];
    struct iovec iov[2];
    cr_assert_eq(rudp_stream_write_reserve(p.cli, sid, 100, iov, 2), 1);
    cr_assert_eq(rudp_stream_write_commit(p.cli, sid, 0), RUDP_OK);
    cr_assert_eq(rudp_stream_write_commit(p.cli, sid, 0), RUDP_OK);
    rudp_stream_info si;
    cr_assert_eq(rudp_stream_get_info(p.cli, sid, &si), RUDP_OK);
    cr_assert_eq(si.bytes_written, 1);
    rudp_session_info in;
    rudp_session_get_info(p.cli, &in);
    cr_assert_eq(in.chunks_in_use, 0);
    cr_assert_eq(one_dgram(p.cli, d, p.now), 0);
    cr_assert_eq(write_in_place(p.cli, sid, (const uint8_t *)"bc", 2, 2), 2);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    char buf[8];
    cr_assert_eq(rudp_stream_read(p.srv, sid, buf, sizeof(buf)), 3);
    cr_assert_eq(memcmp(buf, "abc", 3), 0);
    test_pair_free(&p);
}

Test(session, zero_copy_on_an_unknown_stream) {
    /* A stream never opened, or released, is RUDP_ERR_NO_STREAM to both. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    struct iovec iov[2];
    cr_assert_eq(rudp_stream_write_reserve(p.cli, 99, 10, iov, 2), RUDP_ERR_NO_STREAM);
    cr_assert_eq(rudp_stream_write_commit(p.cli, 99, 1), RUDP_ERR_NO_STREAM);
    cr_assert_eq(rudp_stream_write_commit(p.cli, 99, 0), RUDP_ERR_NO_STREAM);
    open_and_write(p.cli, &sid, "a");
    cr_assert_eq(rudp_stream_release(p.cli, sid), RUDP_OK);
    cr_assert_eq(rudp_stream_write_reserve(p.cli, sid, 10, iov, 2), RUDP_ERR_NO_STREAM);
    cr_assert_eq(rudp_stream_write_commit(p.cli, sid, 1), RUDP_ERR_NO_STREAM);
    test_pair_free(&p);
}

/* --- event user pointers --- */

#define EV_BIT(t) (1u << (t))

/* Drains the events of |s|, asserting that every event of stream |sid|
 * carries |user|; returns the types seen for |sid| as EV_BIT()s. */
static unsigned drain_with_user(rudp_session *s, uint64_t sid, void *user) {
    unsigned types = 0;
    rudp_event ev;
    while (rudp_session_poll_event(s, &ev)) {
        if (ev.sid != sid)
            continue;
        cr_assert_eq(ev.user, user, "event %d: user %p, want %p", ev.type, ev.user, user);
        types |= EV_BIT(ev.type);
    }
    return types;
}

Test(session, stream_events_carry_the_user_pointer) {
    /* READABLE, WRITABLE and RESET carry what rudp_stream_set_user attached
     * on that side. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    int cli_tag, srv_tag;
    uint64_t sid;
    open_and_write(p.cli, &sid, "ping");
    cr_assert_eq(rudp_stream_set_user(p.cli, sid, &cli_tag), RUDP_OK);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    cr_assert_eq(rudp_stream_set_user(p.srv, sid, &srv_tag), RUDP_OK);
    cr_assert_eq(rudp_stream_write(p.srv, sid, "pong", 4), 4);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    unsigned c = drain_with_user(p.cli, sid, &cli_tag);
    unsigned s = drain_with_user(p.srv, sid, &srv_tag);
    cr_assert(c & EV_BIT(RUDP_EV_STREAM_WRITABLE));
    cr_assert(c & EV_BIT(RUDP_EV_STREAM_READABLE));
    cr_assert(s & EV_BIT(RUDP_EV_STREAM_READABLE));
    cr_assert(s & EV_BIT(RUDP_EV_STREAM_WRITABLE));
    cr_assert_eq(rudp_stream_reset(p.srv, sid, RUDP_RST_ABORT), RUDP_OK);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    c = drain_with_user(p.cli, sid, &cli_tag);
    cr_assert(c & EV_BIT(RUDP_EV_STREAM_RESET));
    test_pair_free(&p);
}

Test(session, stream_events_without_a_user_carry_null) {
    /* Where no pointer was set, READABLE, WRITABLE and RESET carry NULL. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "ping");
    test_pair_run(&p, p.now + RUDP_SEC(1));
    cr_assert_eq(rudp_stream_write(p.srv, sid, "pong", 4), 4);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    unsigned c = drain_with_user(p.cli, sid, NULL);
    unsigned s = drain_with_user(p.srv, sid, NULL);
    cr_assert(c & EV_BIT(RUDP_EV_STREAM_WRITABLE));
    cr_assert(c & EV_BIT(RUDP_EV_STREAM_READABLE));
    cr_assert(s & EV_BIT(RUDP_EV_STREAM_READABLE));
    cr_assert_eq(rudp_stream_reset(p.cli, sid, RUDP_RST_ABORT), RUDP_OK);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    s = drain_with_user(p.srv, sid, NULL);
    cr_assert(s & EV_BIT(RUDP_EV_STREAM_RESET));
    test_pair_free(&p);
}

Test(session, listening_state_reaches_the_client) {
    /* A server whose port has no listener says so in its SYN-ACK; the
     * client learns it before the handshake event, then learns the
     * listener came back from a LISTENING frame (with an event), and a
     * retransmitted older LISTENING does not undo it. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    uint8_t d[TEST_MAX_DGRAM], old[TEST_MAX_DGRAM];
    size_t n = one_dgram(p.cli, d, p.now);
    rudp_session *srv = new_server(&p, 7, d, n);
    rudp_session_set_listening(srv, false);
    n = one_dgram(srv, d, p.now);
    seen s;
    decode(p.cli, d, n, &s);
    const rudp_frame *sf = find_frame(&s, RUDP_FRAME_SESSION);
    cr_assert(sf && (sf->u.session.flags & RUDP_FLAG_CLOSED));
    cr_assert_eq(deliver(p.cli, d, n, &p.saddr, p.now), RUDP_OK);
    cr_assert(rudp_session_is_established(p.cli));
    cr_assert_not(rudp_session_peer_listening(p.cli));
    rudp_session_set_listening(srv, true);
    rudp_session_set_listening(srv, false); /* an older state, sent first */
    size_t nold = one_dgram(srv, old, p.now);
    rudp_session_set_listening(srv, true);
    n = one_dgram(srv, d, p.now);
    decode(p.cli, d, n, &s);
    cr_assert(find_frame(&s, RUDP_FRAME_LISTENING));
    cr_assert_eq(deliver(p.cli, d, n, &p.saddr, p.now), RUDP_OK);
    cr_assert(rudp_session_peer_listening(p.cli));
    cr_assert(test_drain_events_for(p.cli, RUDP_EV_PEER_LISTENING, 0));
    cr_assert_eq(deliver(p.cli, old, nold, &p.saddr, p.now), RUDP_OK);
    cr_assert(rudp_session_peer_listening(p.cli), "a stale LISTENING took effect");
    rudp_session_del(srv);
    test_pair_free(&p);
}

/* Delivers one datagram of |from| to |to| at |now| (after any ACK delay);
 * asserts there was one. */
static void pass_one(test_pair *p, rudp_session *from, rudp_session *to, rudp_tstamp now) {
    uint8_t d[TEST_MAX_DGRAM];
    size_t n = one_dgram(from, d, now);
    cr_assert_gt(n, 0, "nothing to send");
    cr_assert_eq(deliver(to, d, n, to == p->cli ? &p->saddr : &p->caddr, now), RUDP_OK);
}

Test(session, listening_known_once_acknowledged) {
    /* The server knows when the client has acknowledged the listening
     * state it set last; an acknowledgement of an older state does not
     * count (rt_accept.c holds the streams of a client that may not know). */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    uint8_t d[TEST_MAX_DGRAM];
    size_t n = one_dgram(p.cli, d, p.now);
    rudp_session *srv = new_server(&p, 9, d, n);
    pass_one(&p, srv, p.cli, p.now);
    cr_assert(rudp_session_is_established(p.cli));
    cr_assert(rudp_session_listening_known(srv));
    rudp_session_set_listening(srv, false);
    cr_assert_not(rudp_session_listening_known(srv));
    pass_one(&p, srv, p.cli, p.now); /* LISTENING 0 */
    rudp_session_set_listening(srv, true);
    pass_one(&p, p.cli, srv, p.now + RUDP_SEC(1)); /* its ACK */
    cr_assert_not(rudp_session_listening_known(srv), "an older state's ACK counted");
    pass_one(&p, srv, p.cli, p.now + RUDP_SEC(1)); /* LISTENING 1 */
    cr_assert(rudp_session_peer_listening(p.cli));
    pass_one(&p, p.cli, srv, p.now + RUDP_SEC(2));
    cr_assert(rudp_session_listening_known(srv));
    rudp_session_del(srv);
    test_pair_free(&p);
}

/* --- the tail of a flight --- */

/* What tail_filter saw of the client's 1 KiB requests (packets over 1000
 * bytes) and of the server's packets after one. */
typedef struct tail_watch {
    bool drop_next;         /* drop the next request */
    rudp_tstamp dropped_at; /* when that one was sent (0: not yet) */
    rudp_tstamp resent_at;  /* when its retransmission was (0: not yet) */
    rudp_tstamp request_at; /* when the newest request was sent */
    rudp_tstamp answer_at;  /* the server's first packet after it (0: none yet) */
} tail_watch;

static bool tail_filter(test_pair *p, int dir, uint8_t *pkt, size_t len) {
    tail_watch *w = p->user;
    if (dir == TEST_DIR_S2C) {
        if (w->answer_at == 0)
            w->answer_at = p->now;
        return true;
    }
    if (len < 1000)
        return true;
    if (w->drop_next && w->dropped_at == 0) {
        w->dropped_at = p->now;
        return false;
    }
    if (w->dropped_at != 0 && w->resent_at == 0)
        w->resent_at = p->now;
    w->request_at = p->now;
    w->answer_at = 0;
    return true;
}

static bool tail_answered(test_pair *p) {
    return ((const tail_watch *)p->user)->answer_at != 0;
}

/* Steps |p| until |s| has read |len| bytes of |sid| into |buf|. */
static void read_exactly(test_pair *p, rudp_session *s, uint64_t sid, uint8_t *buf,
                         size_t len) {
    rudp_tstamp limit = p->now + RUDP_SEC(5);
    size_t got = 0;
    bool eof;
    int err;
    while (got < len && test_pair_step(p, limit))
        got += test_read_all(s, sid, buf + got, len - got, &eof, &err);
    cr_assert_eq(got, len, "%zu of %zu bytes came", got, len);
}

/* One request and answer of 1 KiB each on |sid|, as an RPC. */
static void rpc_once(test_pair *p, uint64_t sid, uint8_t *buf) {
    cr_assert_eq(rudp_stream_write(p->cli, sid, buf, 1024), 1024);
    read_exactly(p, p->srv, sid, buf, 1024);
    cr_assert_eq(rudp_stream_write(p->srv, sid, buf, 1024), 1024);
    read_exactly(p, p->cli, sid, buf, 1024);
}

Test(session, a_lost_tail_is_probed_without_the_ack_delay) {
    /* An RPC's request is the tail of its flight: it carries a PING, so the
     * server acknowledges it within RUDP_ACK_NOW_DELAY (1 ms) instead of
     * its max_ack_delay (25 ms), and a lost one is probed after about
     * srtt + 4 rttvar + 1 ms: on this 40 ms RTT, under 50 ms (66 ms with
     * the ACK delay). */
    test_pair p;
    tail_watch w = {0};
    test_pair_init(&p, NULL, NULL, DELAY);
    p.filter = tail_filter;
    p.user = &w;
    establish(&p);
    uint64_t sid;
    static uint8_t buf[1024];
    cr_assert_eq(rudp_stream_open(p.cli, &sid), RUDP_OK);
    for (int i = 0; i < 40; i++) /* RTT samples: rttvar settles */
        rpc_once(&p, sid, buf);
    cr_assert_eq(rudp_stream_write(p.cli, sid, buf, 1024), 1024); /* no answer */
    read_exactly(&p, p.srv, sid, buf, 1024);
    test_pair_run_until(&p, tail_answered, p.now + RUDP_MS(30)); /* the ACK, if any */
    cr_assert_neq(w.answer_at, 0, "the request was not acknowledged");
    rudp_tstamp ack_after = w.answer_at - (w.request_at + DELAY);
    cr_assert_leq(ack_after, RUDP_ACK_NOW_DELAY, "acknowledged %llu us after it came",
                  (unsigned long long)(ack_after / 1000));
    w.drop_next = true;
    rpc_once(&p, sid, buf);
    cr_assert(w.dropped_at != 0 && w.resent_at != 0);
    rudp_tstamp probe_after = w.resent_at - w.dropped_at;
    cr_assert(probe_after > 2 * DELAY && probe_after < RUDP_MS(50),
              "a lost request probed after %llu us",
              (unsigned long long)(probe_after / 1000));
    test_pair_free(&p);
}

Test(session, a_control_packet_with_no_stream_data_is_app_limited) {
    /* A packet of control frames (here a WINDOW_UPDATE) sent while no stream has
     * data is app-limited, even when an ACK has just ended the previous
     * app-limited period: in a request/response session such packets are
     * most rounds, and their tiny delivery rates, counted as the path's,
     * once took BBR out of Startup at 0.7 MB/s on loopback and paced nginx
     * down to a few kB/s. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    cr_assert_null(p.srv->send_list.head);
    p.srv->rec.rate.app_limited = 0; /* as an ACK that delivered the mark leaves it */
    p.srv->fc.update_pending = true;
    uint64_t pn = p.srv->rec.next_pn;
    test_pair_flush(&p);
    cr_assert_gt(p.srv->rec.next_pn, pn, "the update went out");
    const rudp_sent_pkt *sent = NULL;
    for (; pn < p.srv->rec.next_pn && !sent; pn++) /* after any ACK-only packet */
        if (p.srv->rec.ring[pn % p.srv->rec.cap].ack_eliciting)
            sent = &p.srv->rec.ring[pn % p.srv->rec.cap];
    cr_assert_not_null(sent, "no ack-eliciting packet");
    cr_assert(sent->rate.is_app_limited, "the update's packet was not app-limited");
    test_pair_free(&p);
}

/* --- what the sealing is for --- */

/* Steps |p| until session |s| has read stream |sid| up to its FIN, or until
 * |limit|: returns the bytes read into |got| (at most |cap|) and sets *eof
 * when the FIN was reached. */
static size_t read_on_to_eof(test_pair *p, rudp_session *s, uint64_t sid, uint8_t *got,
                             size_t cap, rudp_tstamp limit, bool *eof) {
    size_t rcv = 0;
    int err;
    *eof = false;
    do
        rcv += test_read_all(s, sid, got + rcv, cap - rcv, eof, &err);
    while (!*eof && test_pair_step(p, limit));
    return rcv;
}

/* Returns the next event |s| reports; fails the test when there is none. */
static rudp_event next_event(rudp_session *s) {
    rudp_event ev;
    cr_assert(rudp_session_poll_event(s, &ev), "no event");
    return ev;
}

/* Drains the events of |s|; returns the error of its SESSION_CLOSED event,
 * or 1 when there was none. */
static int closed_with(rudp_session *s) {
    int error = 1;
    rudp_event ev;
    while (rudp_session_poll_event(s, &ev))
        if (ev.type == RUDP_EV_SESSION_CLOSED)
            error = ev.error;
    return error;
}

/* What the link carried in a secrecy test. */
static struct {
    uint64_t types[RUDP_PKT_STATELESS_RESET + 1];
    uint64_t clear_hits;   /* datagrams showing the marker as sent */
    uint64_t plain_hits;   /* datagrams whose opened frames show it */
    uint64_t initial_hits; /* of those, INITIALs */
} wire_log;

static const char MARKER[] = "rudp-marker:7f3a9c";

/* Returns the type a session of |p| must send in direction |dir| now: a
 * client INITIAL until it has keys, a server HANDSHAKE until the client is
 * validated (no retry here), then PROTECTED. */
static uint8_t expected_type(const test_pair *p, int dir) {
    if (dir == TEST_DIR_C2S)
        return rudp_sess_sends_initial(p->cli) ? RUDP_PKT_INITIAL : RUDP_PKT_PROTECTED;
    return rudp_session_is_validated(p->srv) ? RUDP_PKT_PROTECTED : RUDP_PKT_HANDSHAKE;
}

/* Link filter: checks every datagram's type and looks for the marker in
 * its bytes as sent and once opened. */
static bool watch_clear(test_pair *p, int dir, uint8_t *pkt, size_t len) {
    static seen s;
    size_t mlen = strlen(MARKER);
    rudp_pkt_hdr h;
    cr_assert_eq(rudp_wire_parse(pkt, len, &h), RUDP_OK);
    cr_assert_eq(h.type, expected_type(p, dir), "direction %d sent type %u", dir, h.type);
    wire_log.types[h.type]++;
    if (memmem(pkt, len, MARKER, mlen))
        wire_log.clear_hits++;
    decode_dir(p, dir, pkt, len, &s);
    if (memmem(s.plain, len, MARKER, mlen)) {
        wire_log.plain_hits++;
        wire_log.initial_hits += h.type == RUDP_PKT_INITIAL;
    }
    return true;
}

/* Sends 40 kB of markers each way on one stream, written by the client
 * before the handshake, under watch_clear; checks the bytes delivered. */
static void exchange_markers(test_pair *p) {
    static uint8_t msg[40000], got[40001];
    size_t mlen = strlen(MARKER), n = sizeof(msg) / mlen * mlen;
    for (size_t i = 0; i < n; i += mlen)
        memcpy(msg + i, MARKER, mlen);
    memset(&wire_log, 0, sizeof(wire_log));
    p->filter = watch_clear;
    uint64_t sid;
    bool eof;
    cr_assert_eq(rudp_stream_open(p->cli, &sid), RUDP_OK);
    cr_assert_eq(rudp_stream_write(p->cli, sid, msg, n), (ssize_t)n);
    cr_assert_eq(rudp_stream_shutdown_write(p->cli, sid), RUDP_OK);
    cr_assert_eq(read_to_eof(p, sid, got, sizeof(got), LIMIT(p), &eof), n);
    cr_assert(eof);
    cr_assert_eq(memcmp(got, msg, n), 0);
    cr_assert_eq(rudp_stream_write(p->srv, sid, msg, n), (ssize_t)n);
    cr_assert_eq(rudp_stream_shutdown_write(p->srv, sid), RUDP_OK);
    cr_assert_eq(read_on_to_eof(p, p->cli, sid, got, sizeof(got), LIMIT(p), &eof), n);
    cr_assert(eof);
    cr_assert_eq(memcmp(got, msg, n), 0);
    cr_assert_eq(wire_log.clear_hits, 0, "the marker crossed the link in clear");
    cr_assert_gt(wire_log.plain_hits, 0, "the marker was in no datagram at all");
    cr_assert_gt(wire_log.types[RUDP_PKT_INITIAL], 0);
    cr_assert_gt(wire_log.types[RUDP_PKT_HANDSHAKE], 0);
    cr_assert_gt(wire_log.types[RUDP_PKT_PROTECTED], 0);
}

Test(session, nothing_crosses_the_link_in_clear) {
    /* Every datagram is INITIAL (client without keys), HANDSHAKE (server
     * before validation) or PROTECTED, and stream bytes never show: without
     * a pre-shared key none rides an INITIAL at all. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    exchange_markers(&p);
    cr_assert_eq(wire_log.initial_hits, 0, "stream bytes rode a public INITIAL");
    test_pair_free(&p);
}

Test(session, nothing_crosses_the_link_in_clear_under_a_psk) {
    /* Under a pre-shared key the 0-RTT bytes ride INITIALs, sealed. */
    test_pair p;
    psk_pair_init(&p);
    exchange_markers(&p);
    cr_assert_gt(wire_log.initial_hits, 0, "no 0-RTT bytes rode an INITIAL");
    test_pair_free(&p);
}

Test(session, every_flipped_byte_is_dropped_and_changes_nothing) {
    /* Each byte of a PROTECTED datagram flipped in turn: the version and
     * type bytes make it another version or no type, every other byte
     * fails the AEAD (the header is its associated data).  Only the drop
     * counters (pkts_dropped, pkts_auth_failed) move; the genuine datagram
     * then works once. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "abc");
    uint8_t d[TEST_MAX_DGRAM], bad[TEST_MAX_DGRAM];
    size_t n = one_dgram(p.cli, d, p.now);
    cr_assert_eq(d[1], RUDP_PKT_PROTECTED);
    rudp_session_info before, after;
    rudp_session_get_info(p.srv, &before);
    for (size_t i = 0; i < n; i++) {
        memcpy(bad, d, n);
        bad[i] ^= 0xff;
        int want = i == 0 ? RUDP_ERR_VERSION : i == 1 ? RUDP_ERR_MALFORMED : RUDP_ERR_AUTH;
        cr_assert_eq(deliver(p.srv, bad, n, &p.caddr, p.now), want, "byte %zu", i);
    }
    rudp_session_get_info(p.srv, &after);
    cr_assert_eq(after.pkts_dropped, before.pkts_dropped + n);
    cr_assert_eq(after.pkts_auth_failed, before.pkts_auth_failed + n - 2);
    after.pkts_dropped = before.pkts_dropped;
    after.pkts_auth_failed = before.pkts_auth_failed;
    cr_assert_eq(memcmp(&after, &before, sizeof(before)), 0,
                 "a dropped datagram changed info");
    rudp_event ev;
    cr_assert_not(rudp_session_poll_event(p.srv, &ev));
    cr_assert_eq(deliver(p.srv, d, n, &p.caddr, p.now), RUDP_OK);
    cr_assert_eq(deliver(p.srv, d, n, &p.caddr, p.now), RUDP_ERR_DUPLICATE);
    char b[8];
    cr_assert_eq(rudp_stream_read(p.srv, sid, b, sizeof(b)), 3);
    cr_assert_eq(memcmp(b, "abc", 3), 0);
    test_pair_free(&p);
}

Test(session, a_flipped_handshake_gives_the_client_no_keys) {
    /* The server's first HANDSHAKE with any byte flipped (its key share
     * included) does not open: the client keeps sending INITIALs, and the
     * genuine one still gives it the keys. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    uint8_t d[TEST_MAX_DGRAM], bad[TEST_MAX_DGRAM];
    size_t n = one_dgram(p.cli, d, p.now);
    rudp_session *srv = new_server(&p, 5, d, n);
    n = one_dgram(srv, d, p.now);
    cr_assert_eq(d[1], RUDP_PKT_HANDSHAKE);
    for (size_t i = 0; i < n; i++) {
        memcpy(bad, d, n);
        bad[i] ^= 0xff;
        int want = i == 0 ? RUDP_ERR_VERSION : i == 1 ? RUDP_ERR_MALFORMED : RUDP_ERR_AUTH;
        cr_assert_eq(deliver(p.cli, bad, n, &p.saddr, p.now), want, "byte %zu", i);
        cr_assert(rudp_sess_sends_initial(p.cli), "byte %zu gave the client keys", i);
    }
    rudp_session_info ci;
    rudp_session_get_info(p.cli, &ci);
    cr_assert_eq(ci.pkts_auth_failed, n - 2);
    cr_assert_eq(ci.pkts_dropped, n);
    cr_assert_not(rudp_session_is_established(p.cli));
    cr_assert_eq(deliver(p.cli, d, n, &p.saddr, p.now), RUDP_OK);
    cr_assert(rudp_session_is_established(p.cli));
    cr_assert_not(rudp_sess_sends_initial(p.cli));
    rudp_session_del(srv);
    test_pair_free(&p);
}

/* Delivers to the client of |p| a stateless reset naming |cid| with the
 * token |secret| makes for |cid|, one bit of it flipped when |flip|;
 * returns what the client said. */
static int send_reset(test_pair *p, uint64_t cid, const uint8_t *secret, bool flip) {
    uint8_t r[RUDP_RESET_LEN], token[RUDP_TOKEN_LEN];
    rudp_hs_reset_token(token, secret, cid);
    token[RUDP_TOKEN_LEN - 1] ^= flip;
    cr_assert_eq(rudp_wire_encode_reset(r, sizeof(r), cid, token), RUDP_RESET_LEN);
    return deliver(p->cli, r, sizeof(r), &p->saddr, p->now);
}

Test(session, stateless_reset_needs_the_token_the_server_sent) {
    /* A reset made with another secret, a token one bit off, or the token
     * of another connection ID is dropped: the session goes on.  The token
     * the server sent in its SYN-ACK ends it. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "x");
    test_pair_run(&p, p.now + RUDP_SEC(1));
    rudp_session_info ci, after;
    rudp_session_get_info(p.cli, &ci);
    cr_assert_eq(send_reset(&p, ci.peer_cid, p.cset.secret, false), RUDP_ERR_UNKNOWN_CID);
    cr_assert_eq(send_reset(&p, ci.peer_cid, p.sset.secret, true), RUDP_ERR_UNKNOWN_CID);
    cr_assert_eq(send_reset(&p, ci.peer_cid ^ 1, p.sset.secret, false),
                 RUDP_ERR_UNKNOWN_CID);
    cr_assert_eq(send_reset(&p, ci.local_cid, p.sset.secret, false), RUDP_ERR_UNKNOWN_CID);
    rudp_session_get_info(p.cli, &after);
    cr_assert_eq(after.pkts_dropped, ci.pkts_dropped + 4);
    cr_assert_eq(after.state, RUDP_SESS_ESTABLISHED);
    cr_assert_eq(rudp_stream_write(p.cli, sid, "y", 1), 1);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    char b[4];
    cr_assert_eq(rudp_stream_read(p.srv, sid, b, sizeof(b)), 2);
    cr_assert_eq(memcmp(b, "xy", 2), 0);
    cr_assert_eq(send_reset(&p, ci.peer_cid, p.sset.secret, false), RUDP_OK);
    cr_assert(rudp_session_is_done(p.cli));
    cr_assert_eq(rudp_stream_read(p.cli, sid, b, sizeof(b)), RUDP_ERR_PEER_RESET);
    test_pair_free(&p);
}

Test(session, a_restarted_server_resets_its_clients_with_the_same_secret) {
    /* The server loses its session (a restart, the secret kept): the next
     * client datagram is answered with a stateless reset that the client
     * believes, one round trip after it sent. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "x");
    test_pair_run(&p, p.now + RUDP_SEC(1));
    rudp_session_del(p.srv);
    p.srv = NULL;
    rudp_tstamp start = p.now;
    cr_assert_eq(rudp_stream_write(p.cli, sid, "y", 1), 1);
    cr_assert(test_pair_run_until(&p, cli_done, p.now + RUDP_SEC(5)));
    cr_assert_eq(p.now - start, 2 * DELAY);
    cr_assert_null(p.srv, "a PROTECTED packet made a session");
    char b[4];
    cr_assert_eq(rudp_stream_read(p.cli, sid, b, sizeof(b)), RUDP_ERR_PEER_RESET);
    test_pair_free(&p);
}

Test(session, a_server_with_a_new_secret_cannot_reset_old_clients) {
    /* After a restart with a fresh secret the server's resets carry tokens
     * the client was never told: they are dropped, and only the idle
     * timeout ends the client's session. */
    rudp_settings cs;
    rudp_settings_default(&cs);
    cs.idle_timeout = RUDP_SEC(5);
    test_pair p;
    test_pair_init(&p, &cs, NULL, DELAY);
    establish(&p);
    uint64_t sid;
    open_and_write(p.cli, &sid, "x");
    test_pair_run(&p, p.now + RUDP_SEC(1));
    rudp_session_del(p.srv);
    p.srv = NULL;
    rudp_random(p.sset.secret, sizeof(p.sset.secret));
    rudp_session_info before, after;
    rudp_session_get_info(p.cli, &before);
    cr_assert_eq(rudp_stream_write(p.cli, sid, "y", 1), 1);
    test_pair_run(&p, p.now + RUDP_SEC(2));
    rudp_session_get_info(p.cli, &after);
    cr_assert_not(rudp_session_is_done(p.cli));
    cr_assert_gt(after.pkts_dropped, before.pkts_dropped, "no reset reached the client");
    cr_assert(test_pair_run_until(&p, cli_done, LIMIT(&p)));
    char b[4];
    cr_assert_eq(rudp_stream_read(p.cli, sid, b, sizeof(b)), RUDP_ERR_TIMEDOUT);
    test_pair_free(&p);
}

/* Bytes the server has sent, counted on the link. */
static uint64_t amp_sent;

/* Link filter: keeps the client's first datagram only, counts the server's. */
static bool keep_first_initial(test_pair *p, int dir, uint8_t *pkt, size_t len) {
    if (dir == TEST_DIR_S2C) {
        amp_sent += len;
        return true;
    }
    return p->sent[TEST_DIR_C2S] == 1;
}

/* Runs a handshake in which only the client's first INITIAL arrives, the
 * server wanting to send |extra| stream bytes too; checks that the server
 * never sent more than three times the 1200 bytes it received. */
static void check_amplification(test_pair *p, size_t extra) {
    static uint8_t big[100000];
    amp_sent = 0;
    p->filter = keep_first_initial;
    uint64_t sid;
    open_and_write(p->cli, &sid, "x");
    test_pair_run(p, p->now + DELAY);
    cr_assert_not_null(p->srv);
    if (extra)
        cr_assert_eq(rudp_stream_write(p->srv, sid, big, extra), (ssize_t)extra);
    test_pair_run(p, p->now + RUDP_SEC(14));
    rudp_session_info si;
    rudp_session_get_info(p->srv, &si);
    cr_assert_eq(si.bytes_recv, RUDP_MIN_INITIAL);
    cr_assert_eq(si.bytes_sent, amp_sent);
    cr_assert_leq(amp_sent, 3 * RUDP_MIN_INITIAL, "sent %lu", (unsigned long)amp_sent);
    cr_assert_gt(p->sent[TEST_DIR_S2C], 1);
    cr_assert_not(rudp_session_is_validated(p->srv));
}

Test(session, an_unvalidated_server_sends_at_most_three_times_what_it_received) {
    /* Many PTOs (a 10 ms initial RTT) resend the SYN-ACK, within the
     * budget. */
    rudp_settings ss;
    rudp_settings_default(&ss);
    ss.initial_rtt = RUDP_MS(10);
    test_pair p;
    test_pair_init(&p, NULL, &ss, DELAY);
    check_amplification(&p, 0);
    rudp_session_info si;
    rudp_session_get_info(p.srv, &si);
    cr_assert_geq(si.pto_count_total, 5, "%lu PTOs", (unsigned long)si.pto_count_total);
    rudp_event ev;
    cr_assert_not(rudp_session_poll_event(p.srv, &ev));
    test_pair_free(&p);
}

Test(session, an_unvalidated_server_with_data_to_send_stops_at_the_budget) {
    /* Under a pre-shared key the client's 0-RTT stream lets the server
     * queue 100 kB at once: it sends until the next full datagram would
     * pass three times what it received, then nothing. */
    test_pair p;
    psk_pair_init(&p);
    check_amplification(&p, 100000);
    cr_assert_gt(amp_sent, 3 * RUDP_MIN_INITIAL - p.sset.max_packet_size);
    cr_assert(rudp_sess_amp_blocked(p.srv));
    test_pair_free(&p);
}

Test(session, a_short_initial_makes_no_session_and_no_reply) {
    /* A server answers only datagrams of at least 1200 bytes with a
     * session: the size check comes before the AEAD's. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    uint8_t d[TEST_MAX_DGRAM];
    size_t n = one_dgram(p.cli, d, p.now);
    cr_assert_eq(n, RUDP_MIN_INITIAL);
    rudp_reply reply;
    int err;
    cr_assert_null(rudp_session_new_server(&p.sset, 5, d, n - 1, &p.caddr, p.now, false,
                                           &reply, &err));
    cr_assert_eq(err, RUDP_ERR_NOT_INITIAL);
    cr_assert_eq(reply.len, 0);
    test_pair_free(&p);
}

Test(session, no_stream_event_before_validation_even_with_0rtt_data) {
    /* Under a pre-shared key 3000 bytes and the FIN ride the client's
     * INITIALs and all reach the server before the client is validated;
     * the server (with no replay memory: settings.replay is NULL) reports
     * nothing until then, and then the session, the stream, every byte. */
    test_pair p;
    psk_pair_init(&p);
    static uint8_t msg[3000], got[3001];
    test_fill_pattern(msg, sizeof(msg), 41);
    uint64_t sid;
    cr_assert_eq(rudp_stream_open(p.cli, &sid), RUDP_OK);
    cr_assert_eq(rudp_stream_write(p.cli, sid, msg, sizeof(msg)), (ssize_t)sizeof(msg));
    cr_assert_eq(rudp_stream_shutdown_write(p.cli, sid), RUDP_OK);
    uint64_t held = 0;
    while (!p.srv || !rudp_session_is_validated(p.srv)) {
        cr_assert(test_pair_step(&p, LIMIT(&p)));
        if (!p.srv || rudp_session_is_validated(p.srv))
            continue;
        rudp_event ev;
        cr_assert_not(rudp_session_poll_event(p.srv, &ev), "event %d before validation",
                      ev.type);
        rudp_stream_info si;
        cr_assert_eq(rudp_stream_get_info(p.srv, sid, &si), RUDP_OK);
        held = si.bytes_readable;
    }
    cr_assert_eq(held, sizeof(msg), "only %lu bytes came before validation",
                 (unsigned long)held);
    cr_assert_eq(next_event(p.srv).type, RUDP_EV_SESSION_ESTABLISHED);
    rudp_event ev = next_event(p.srv);
    cr_assert(ev.type == RUDP_EV_STREAM_OPENED && ev.sid == sid);
    bool eof;
    cr_assert_eq(read_to_eof(&p, sid, got, sizeof(got), LIMIT(&p), &eof), sizeof(msg));
    cr_assert(eof);
    cr_assert_eq(memcmp(got, msg, sizeof(msg)), 0);
    test_pair_free(&p);
}

/* Connects with pre-shared keys filled with |ckey| and |skey| (0: none) and
 * checks that the server refuses for |reason| one round trip after the
 * client's first datagram, making no session. */
static void check_refused(uint8_t ckey, uint8_t skey, int reason) {
    rudp_settings cs, ss;
    rudp_settings_default(&cs);
    rudp_settings_default(&ss);
    cs.psk_set = ckey != 0;
    ss.psk_set = skey != 0;
    memset(cs.psk, ckey, sizeof(cs.psk));
    memset(ss.psk, skey, sizeof(ss.psk));
    test_pair p;
    test_pair_init(&p, &cs, &ss, DELAY);
    uint64_t sid;
    open_and_write(p.cli, &sid, "x");
    rudp_tstamp start = p.now;
    cr_assert(test_pair_run_until(&p, cli_done, LIMIT(&p)));
    cr_assert_eq(p.now - start, 2 * DELAY);
    cr_assert_eq(rudp_session_refuse_reason(p.cli), reason);
    cr_assert_eq(closed_with(p.cli), RUDP_ERR_REFUSED);
    char b[4];
    cr_assert_eq(rudp_stream_read(p.cli, sid, b, sizeof(b)), RUDP_ERR_REFUSED);
    test_pair_run(&p, p.now + RUDP_SEC(5));
    cr_assert_null(p.srv);
    cr_assert_eq(p.sent[TEST_DIR_C2S], 1);
    test_pair_free(&p);
}

Test(session, different_psks_are_refused_as_a_mismatch) {
    check_refused(1, 2, RUDP_REFUSE_KEY_MISMATCH);
}

Test(session, a_psk_on_the_server_only_is_refused_as_key_needed) {
    check_refused(0, 2, RUDP_REFUSE_KEY_NEEDED);
}

Test(session, a_psk_on_the_client_only_is_refused_as_no_key) {
    check_refused(1, 0, RUDP_REFUSE_NO_KEY);
}

Test(session, a_refuse_counts_only_for_the_clients_attempt) {
    /* A REFUSE naming another connection ID, refusing a ticket the client
     * did not send, or arriving once the session is established, is
     * dropped. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    uint8_t r[RUDP_REFUSE_LEN];
    uint64_t cid = p.cli->initial_cid;
    rudp_wire_encode_refuse(r, sizeof(r), cid ^ 1, RUDP_REFUSE_KEY_MISMATCH);
    cr_assert_eq(deliver(p.cli, r, sizeof(r), &p.saddr, p.now), RUDP_ERR_UNKNOWN_CID);
    /* A refused ticket, forged for a client that sent none, changes nothing. */
    rudp_wire_encode_refuse(r, sizeof(r), cid, RUDP_REFUSE_TICKET);
    cr_assert_eq(deliver(p.cli, r, sizeof(r), &p.saddr, p.now), RUDP_ERR_UNKNOWN_CID);
    establish(&p);
    rudp_wire_encode_refuse(r, sizeof(r), cid, RUDP_REFUSE_KEY_MISMATCH);
    cr_assert_eq(deliver(p.cli, r, sizeof(r), &p.saddr, p.now), RUDP_ERR_UNKNOWN_CID);
    cr_assert_not(rudp_session_is_done(p.cli));
    cr_assert_eq(rudp_session_refuse_reason(p.cli), RUDP_REFUSE_NONE);
    test_pair_free(&p);
}

Test(session, a_busy_server_retries_and_the_token_validates_the_client) {
    /* A busy server answers the first INITIAL with a RETRY (smaller than
     * it), keeping no state; the client's next INITIAL carries the token,
     * which validates it at once; then the session works. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    p.srv_busy = true;
    uint8_t d[TEST_MAX_DGRAM], copy[TEST_MAX_DGRAM], token[RUDP_MAX_TOKEN];
    size_t n = one_dgram(p.cli, d, p.now);
    rudp_reply r;
    int err;
    memcpy(copy, d, n);
    cr_assert_null(
        rudp_session_new_server(&p.sset, 22, copy, n, &p.caddr, p.now, true, &r, &err));
    cr_assert_eq(err, RUDP_ERR_RETRY);
    rudp_pkt_hdr h;
    cr_assert_eq(rudp_wire_parse(r.buf, r.len, &h), RUDP_OK);
    cr_assert_eq(h.type, RUDP_PKT_RETRY);
    cr_assert_eq(h.dcid, p.cli->initial_cid);
    cr_assert_eq(h.token_len, RUDP_RETRY_TOKEN_LEN);
    cr_assert_lt(r.len, n);
    memcpy(token, h.token, h.token_len);
    p.now += DELAY;
    cr_assert_eq(deliver(p.cli, r.buf, r.len, &p.saddr, p.now), RUDP_OK);
    n = one_dgram(p.cli, d, p.now);
    seen s;
    decode_initial(&p.sset, d, n, &s);
    cr_assert_eq(s.hdr.token_len, RUDP_RETRY_TOKEN_LEN);
    cr_assert_eq(memcmp(s.hdr.token, token, RUDP_RETRY_TOKEN_LEN), 0);
    p.now += DELAY;
    memcpy(copy, d, n);
    p.srv = rudp_session_new_server(&p.sset, 22, copy, n, &p.caddr, p.now, true, &r, &err);
    cr_assert_not_null(p.srv, "no session: %d", err);
    cr_assert(rudp_session_is_validated(p.srv));
    rudp_session_info si;
    rudp_session_get_info(p.srv, &si);
    cr_assert_eq(si.pkts_recv, 1, "validated by its INITIAL alone");
    n = one_dgram(p.srv, d, p.now);
    cr_assert_eq(d[1], RUDP_PKT_HANDSHAKE, "type %u: the client needs the server's share",
                 d[1]);
    p.now += DELAY;
    cr_assert_eq(deliver(p.cli, d, n, &p.saddr, p.now), RUDP_OK);
    cr_assert(test_pair_run_until(&p, both_established, LIMIT(&p)));
    test_pair_run(&p, p.now + RUDP_SEC(1));
    cr_assert(test_drain_events_for(p.srv, RUDP_EV_SESSION_ESTABLISHED, 0));
    uint64_t sid;
    static uint8_t got[16];
    bool eof;
    open_and_write(p.cli, &sid, "after retry");
    rudp_stream_shutdown_write(p.cli, sid);
    cr_assert_eq(read_to_eof(&p, sid, got, sizeof(got), LIMIT(&p), &eof), 11);
    cr_assert(eof && memcmp(got, "after retry", 11) == 0);
    test_pair_free(&p);
}

/* Fills |d| with the client's INITIAL carrying the retry token of a busy
 * server (sset of |p|); returns its length. */
static size_t initial_with_token(test_pair *p, uint8_t *d) {
    uint8_t copy[TEST_MAX_DGRAM];
    rudp_reply r;
    int err;
    size_t n = one_dgram(p->cli, d, p->now);
    memcpy(copy, d, n);
    cr_assert_null(
        rudp_session_new_server(&p->sset, 22, copy, n, &p->caddr, p->now, true, &r, &err));
    cr_assert_eq(err, RUDP_ERR_RETRY);
    cr_assert_eq(deliver(p->cli, r.buf, r.len, &p->saddr, p->now), RUDP_OK);
    return one_dgram(p->cli, d, p->now);
}

Test(session, a_replayed_initial_with_a_token_opens_nothing) {
    /* Whoever saw the INITIAL with the token can send it again from the
     * client's address while the token lives: the replay memory lets it
     * validate once; the copy is a duplicate, busy server or not. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    p.sset.replay = rudp_replay_new(64);
    uint8_t d[TEST_MAX_DGRAM], copy[TEST_MAX_DGRAM];
    size_t n = initial_with_token(&p, d);
    rudp_reply r;
    int err;
    memcpy(copy, d, n);
    p.srv = rudp_session_new_server(&p.sset, 22, copy, n, &p.caddr, p.now, true, &r, &err);
    cr_assert_not_null(p.srv, "no session: %d", err);
    cr_assert(rudp_session_is_validated(p.srv));
    for (int busy = 0; busy < 2; busy++) {
        memcpy(copy, d, n);
        cr_assert_null(rudp_session_new_server(&p.sset, 22, copy, n, &p.caddr,
                                               p.now + RUDP_SEC(1), busy, &r, &err));
        cr_assert_eq(err, RUDP_ERR_DUPLICATE);
        cr_assert_eq(r.len, 0, "no reply to a replay");
    }
    test_pair_free(&p);
    rudp_replay_del(p.sset.replay);
}

Test(session, a_token_without_replay_memory_validates_no_early_data) {
    /* Under a pre-shared key the INITIAL may carry data: with no memory to
     * tell a replay, the token proves the address but the data waits for
     * the client's first sealed packet. */
    test_pair p;
    psk_pair_init(&p);
    uint8_t d[TEST_MAX_DGRAM];
    size_t n = initial_with_token(&p, d);
    rudp_reply r;
    int err;
    p.srv = rudp_session_new_server(&p.sset, 22, d, n, &p.caddr, p.now, true, &r, &err);
    cr_assert_not_null(p.srv, "no session: %d", err);
    cr_assert_not(rudp_session_is_validated(p.srv));
    test_pair_free(&p);
}

Test(session, a_busy_server_pair_connects_through_the_retry) {
    /* The same through the link: RETRY, INITIAL with the token, session. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    p.srv_busy = true;
    establish(&p);
    cr_assert(p.cli->retried);
    uint64_t sid;
    static uint8_t got[8];
    bool eof;
    open_and_write(p.cli, &sid, "data");
    rudp_stream_shutdown_write(p.cli, sid);
    cr_assert_eq(read_to_eof(&p, sid, got, sizeof(got), LIMIT(&p), &eof), 4);
    cr_assert(eof && memcmp(got, "data", 4) == 0);
    test_pair_free(&p);
}

/* Writes into |r| a RETRY for the client of |p| carrying a token made at
 * |made|, with the tag made from the client key share |share|; returns its
 * length. */
static size_t make_retry(test_pair *p, uint8_t *r, rudp_tstamp made, const uint8_t *share) {
    uint8_t tok[RUDP_RETRY_TOKEN_LEN], early[RUDP_SECRET_LEN];
    size_t tl =
        rudp_hs_retry_token(tok, p->sset.secret, &p->caddr, p->cli->initial_cid, made);
    ssize_t n =
        rudp_wire_encode_retry(r, RUDP_REPLY_MAX, p->cli->initial_cid, tok, (uint16_t)tl);
    cr_assert_eq(n, 12 + RUDP_RETRY_TOKEN_LEN);
    rudp_hs_early(early, &p->sset);
    rudp_hs_retry_tag(r + n, early, share, r, (size_t)n);
    return (size_t)n + RUDP_TAG_LEN;
}

Test(session, a_retry_with_a_wrong_tag_is_ignored) {
    /* Only who saw the client's INITIAL (its key share) can tag a RETRY for
     * it: a tag over another share is RUDP_ERR_AUTH and the client keeps
     * no token; the right one is taken, and only once. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    uint8_t r[RUDP_REPLY_MAX], other[RUDP_SHARE_LEN], d[TEST_MAX_DGRAM];
    memset(other, 7, sizeof(other));
    size_t n = one_dgram(p.cli, d, p.now);
    size_t rl = make_retry(&p, r, p.now, other);
    cr_assert_eq(deliver(p.cli, r, rl, &p.saddr, p.now), RUDP_ERR_AUTH);
    cr_assert_eq(p.cli->token_len, 0);
    cr_assert_not(p.cli->retried);
    cr_assert_eq(one_dgram(p.cli, d, p.now), 0, "a forged RETRY made the client resend");
    rl = make_retry(&p, r, p.now + 1, p.cli->kp.pub);
    cr_assert_eq(deliver(p.cli, r, rl, &p.saddr, p.now), RUDP_OK);
    n = one_dgram(p.cli, d, p.now);
    seen s;
    decode_initial(&p.sset, d, n, &s);
    cr_assert_eq(s.hdr.token_len, RUDP_RETRY_TOKEN_LEN);
    cr_assert_eq(memcmp(s.hdr.token, r + 12, RUDP_RETRY_TOKEN_LEN), 0);
    rl = make_retry(&p, r, p.now + 2, p.cli->kp.pub);
    cr_assert_eq(deliver(p.cli, r, rl, &p.saddr, p.now), RUDP_ERR_UNKNOWN_CID);
    test_pair_free(&p);
}

/* A datagram a session wrote, and where to. */
typedef struct out_dgram {
    uint8_t data[TEST_MAX_DGRAM];
    size_t len;
    rudp_addr to;
} out_dgram;

/* Writes every datagram |s| has at |now| into |out| (at most |max|);
 * returns how many. */
static int write_all(rudp_session *s, out_dgram *out, int max, rudp_tstamp now) {
    int k = 0;
    for (; k < max; k++) {
        ssize_t n = rudp_session_write_pkt(s, out[k].data, TEST_MAX_DGRAM, &out[k].to, now);
        cr_assert_geq(n, 0);
        if (n == 0)
            break;
        out[k].len = (size_t)n;
    }
    cr_assert_lt(k, max);
    return k;
}

/* Returns true when |a| and |b| are the same address. */
static bool same_addr(const rudp_addr *a, const rudp_addr *b) {
    return a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0;
}

/* Returns how many times |s| moved to a new peer address. */
static uint64_t migrations(const rudp_session *s) {
    rudp_session_info in;
    rudp_session_get_info(s, &in);
    return in.migrations;
}

/* Returns |a| with its last byte set to |last|. */
static rudp_addr addr_with(rudp_addr a, uint8_t last) {
    a.bytes[a.len - 1] = last;
    return a;
}

/* Writes everything the server of |p| has now; checks that exactly
 * |challenges| datagrams went to |probe|, each a PATH_CHALLENGE alone
 * (its data in *challenge, its index in *at), and all others to |peer|. */
static int server_out(test_pair *p, out_dgram *out, const rudp_addr *peer,
                      const rudp_addr *probe, int challenges, uint64_t *challenge,
                      int *at) {
    static seen s;
    int k = write_all(p->srv, out, 16, p->now), found = 0;
    for (int i = 0; i < k; i++) {
        decode(p->cli, out[i].data, out[i].len, &s);
        const rudp_frame *c = find_frame(&s, RUDP_FRAME_PATH_CHALLENGE);
        if (probe && same_addr(&out[i].to, probe)) {
            cr_assert(c && s.nframes == 1, "datagram %d to the new address", i);
            *challenge = c->u.path_data;
            *at = i;
            found++;
            continue;
        }
        cr_assert(same_addr(&out[i].to, peer), "datagram %d went elsewhere", i);
        cr_assert_null(c, "datagram %d to the old address challenges", i);
    }
    cr_assert_eq(found, challenges);
    return k;
}

Test(session, migration_moves_only_once_the_new_address_answers) {
    /* A newer client datagram from a new address: the server sends one
     * PATH_CHALLENGE alone there and everything else to the old address;
     * the answer from the new address moves it.  The client's datagram
     * replayed from a third address after that is a duplicate. */
    test_pair p;
    uint64_t sid, data;
    pair_with_traffic(&p, &sid);
    rudp_addr old = p.caddr, moved = addr_with(p.caddr, 9), third = addr_with(p.caddr, 7);
    static out_dgram out[16];
    static seen s;
    uint8_t d[TEST_MAX_DGRAM];
    int at;
    cr_assert_eq(rudp_stream_write(p.cli, sid, "b", 1), 1);
    size_t n = one_dgram(p.cli, d, p.now);
    cr_assert_eq(deliver(p.srv, d, n, &moved, p.now), RUDP_OK);
    cr_assert_eq(rudp_stream_write(p.srv, sid, "r", 1), 1);
    int k = server_out(&p, out, &old, &moved, 1, &data, &at);
    cr_assert_geq(k, 2, "the reply was not sent");
    cr_assert_eq(migrations(p.srv), 0);
    cr_assert(same_addr(&p.srv->peer_addr, &old));

    p.now += DELAY;
    cr_assert_eq(deliver(p.cli, out[at].data, out[at].len, &p.saddr, p.now), RUDP_OK);
    n = one_dgram(p.cli, d, p.now);
    decode(p.srv, d, n, &s);
    const rudp_frame *resp = find_frame(&s, RUDP_FRAME_PATH_RESPONSE);
    cr_assert(resp && resp->u.path_data == data);
    p.now += DELAY;
    cr_assert_eq(deliver(p.srv, d, n, &moved, p.now), RUDP_OK);
    cr_assert_eq(migrations(p.srv), 1);
    cr_assert(same_addr(&p.srv->peer_addr, &moved));
    cr_assert_eq(rudp_stream_write(p.srv, sid, "s", 1), 1);
    cr_assert_gt(server_out(&p, out, &moved, NULL, 0, &data, &at), 0);

    cr_assert_eq(rudp_stream_write(p.cli, sid, "c", 1), 1);
    n = one_dgram(p.cli, d, p.now);
    cr_assert_eq(deliver(p.srv, d, n, &moved, p.now), RUDP_OK);
    cr_assert_eq(deliver(p.srv, d, n, &third, p.now), RUDP_ERR_DUPLICATE);
    server_out(&p, out, &moved, &third, 0, &data, &at);
    cr_assert_eq(migrations(p.srv), 1);
    cr_assert(same_addr(&p.srv->peer_addr, &moved));
    test_pair_free(&p);
}

/* Sets up |p| with a stream whose client moved to *moved (a NAT rebinding,
 * set here) and has just received the server's PATH_CHALLENGE there;
 * returns the challenge's data. */
static uint64_t challenged_client(test_pair *p, uint64_t *sid, rudp_addr *moved) {
    static out_dgram out[16];
    uint8_t d[TEST_MAX_DGRAM];
    uint64_t data;
    int at;
    pair_with_traffic(p, sid);
    rudp_addr old = p->caddr;
    *moved = addr_with(p->caddr, 9);
    cr_assert_eq(rudp_stream_write(p->cli, *sid, "b", 1), 1);
    size_t n = one_dgram(p->cli, d, p->now);
    cr_assert_eq(deliver(p->srv, d, n, moved, p->now), RUDP_OK);
    server_out(p, out, &old, moved, 1, &data, &at);
    p->now += DELAY;
    cr_assert_eq(deliver(p->cli, out[at].data, out[at].len, &p->saddr, p->now), RUDP_OK);
    return data;
}

Test(session, an_answer_that_comes_after_a_pto_still_moves_the_session) {
    /* The client is slow to answer (a full congestion window after a NAT
     * rebinding): its PATH_RESPONSE arrives more than a PTO after the
     * challenge, in its newest packet.  Before 2026-12-07 that packet first
     * started a new challenge and then failed to match it, for ever (the
     * soak suite's stalled rebindings). */
    test_pair p;
    uint64_t sid;
    rudp_addr moved;
    uint8_t d[TEST_MAX_DGRAM];
    challenged_client(&p, &sid, &moved);
    p.now += RUDP_SEC(3); /* well past the server's PTO */
    size_t n = one_dgram(p.cli, d, p.now);
    cr_assert_eq(deliver(p.srv, d, n, &moved, p.now), RUDP_OK);
    cr_assert_eq(migrations(p.srv), 1);
    cr_assert(same_addr(&p.srv->peer_addr, &moved));
    test_pair_free(&p);
}

Test(session, an_answer_to_the_previous_challenge_still_moves_the_session) {
    /* The server challenged again (a PTO passed) before the answer to its
     * first challenge arrived, in an older packet: it proves the address
     * as well. */
    test_pair p;
    uint64_t sid, second;
    rudp_addr moved;
    static out_dgram out[16];
    uint8_t d[TEST_MAX_DGRAM], late[TEST_MAX_DGRAM];
    int at;
    uint64_t first = challenged_client(&p, &sid, &moved);
    rudp_addr old = p.caddr;
    size_t nlate = one_dgram(p.cli, late, p.now); /* the answer, held up */
    p.now += RUDP_SEC(3);
    cr_assert_eq(rudp_stream_write(p.cli, sid, "c", 1), 1);
    size_t n = one_dgram(p.cli, d, p.now);
    cr_assert_eq(deliver(p.srv, d, n, &moved, p.now), RUDP_OK); /* challenges again */
    server_out(&p, out, &old, &moved, 1, &second, &at);
    cr_assert_neq(second, first);
    cr_assert_eq(migrations(p.srv), 0);
    cr_assert_eq(deliver(p.srv, late, nlate, &moved, p.now), RUDP_OK);
    cr_assert_eq(migrations(p.srv), 1);
    cr_assert(same_addr(&p.srv->peer_addr, &moved));
    test_pair_free(&p);
}

Test(session, a_path_response_by_another_path_moves_nothing) {
    /* The answer to the challenge sent to the new address arrives from the
     * old one: it proves nothing about the new address, the session stays. */
    test_pair p;
    uint64_t sid, data;
    pair_with_traffic(&p, &sid);
    rudp_addr old = p.caddr, moved = addr_with(p.caddr, 9);
    static out_dgram out[16];
    static seen s;
    uint8_t d[TEST_MAX_DGRAM];
    int at;
    cr_assert_eq(rudp_stream_write(p.cli, sid, "b", 1), 1);
    size_t n = one_dgram(p.cli, d, p.now);
    cr_assert_eq(deliver(p.srv, d, n, &moved, p.now), RUDP_OK);
    server_out(&p, out, &old, &moved, 1, &data, &at);
    p.now += DELAY;
    cr_assert_eq(deliver(p.cli, out[at].data, out[at].len, &p.saddr, p.now), RUDP_OK);
    n = one_dgram(p.cli, d, p.now);
    decode(p.srv, d, n, &s);
    const rudp_frame *resp = find_frame(&s, RUDP_FRAME_PATH_RESPONSE);
    cr_assert(resp && resp->u.path_data == data);
    p.now += DELAY;
    cr_assert_eq(deliver(p.srv, d, n, &old, p.now), RUDP_OK);
    cr_assert_eq(migrations(p.srv), 0);
    cr_assert(same_addr(&p.srv->peer_addr, &old));
    test_pair_free(&p);
}

Test(session, an_older_datagram_from_another_address_challenges_nothing) {
    /* Only the newest packet can move a session (RFC 9000 §9.3): an older
     * one, reordered, arriving from elsewhere is taken and nothing more. */
    test_pair p;
    uint64_t sid, data;
    pair_with_traffic(&p, &sid);
    rudp_addr old = p.caddr, third = addr_with(p.caddr, 7);
    static out_dgram out[16];
    uint8_t d1[TEST_MAX_DGRAM], d2[TEST_MAX_DGRAM];
    int at;
    cr_assert_eq(rudp_stream_write(p.cli, sid, "b", 1), 1);
    size_t n1 = one_dgram(p.cli, d1, p.now);
    cr_assert_eq(rudp_stream_write(p.cli, sid, "c", 1), 1);
    size_t n2 = one_dgram(p.cli, d2, p.now);
    cr_assert_eq(deliver(p.srv, d2, n2, &old, p.now), RUDP_OK);
    cr_assert_eq(deliver(p.srv, d1, n1, &third, p.now), RUDP_OK);
    server_out(&p, out, &old, &third, 0, &data, &at);
    cr_assert_eq(migrations(p.srv), 0);
    char b[4];
    cr_assert_eq(rudp_stream_read(p.srv, sid, b, sizeof(b)), 3);
    cr_assert_eq(memcmp(b, "abc", 3), 0);
    test_pair_free(&p);
}

Test(session, a_datagram_raced_from_another_address_moves_nothing) {
    /* An attacker copies a client datagram and delivers it first from its
     * own address: the data counts (it is genuine), the attacker's address
     * gets one PATH_CHALLENGE it cannot answer, and the session stays. */
    test_pair p;
    uint64_t sid, data;
    pair_with_traffic(&p, &sid);
    rudp_addr old = p.caddr, third = addr_with(p.caddr, 7);
    static out_dgram out[16];
    uint8_t d[TEST_MAX_DGRAM];
    int at;
    cr_assert_eq(rudp_stream_write(p.cli, sid, "b", 1), 1);
    size_t n = one_dgram(p.cli, d, p.now);
    cr_assert_eq(deliver(p.srv, d, n, &third, p.now), RUDP_OK);
    cr_assert_eq(deliver(p.srv, d, n, &old, p.now), RUDP_ERR_DUPLICATE);
    server_out(&p, out, &old, &third, 1, &data, &at);
    test_pair_run(&p, p.now + RUDP_SEC(2));
    cr_assert_eq(migrations(p.srv), 0);
    cr_assert(same_addr(&p.srv->peer_addr, &old));
    char b[4];
    cr_assert_eq(rudp_stream_read(p.srv, sid, b, sizeof(b)), 2);
    cr_assert_eq(memcmp(b, "ab", 2), 0);
    test_pair_free(&p);
}

Test(session, an_initial_with_another_share_for_the_same_cid_is_dropped) {
    /* A second client with the same seed names the same connection ID but
     * sends its own key share: the server's session drops its INITIAL and
     * goes on with the first client. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    uint8_t d[TEST_MAX_DGRAM], e[TEST_MAX_DGRAM];
    size_t n = one_dgram(p.cli, d, p.now);
    p.srv = new_server(&p, 22, d, n);
    rudp_session *twin = rudp_session_new_client(&p.cset, 11, &p.saddr, p.now);
    cr_assert_eq(twin->initial_cid, p.cli->initial_cid);
    cr_assert_neq(memcmp(twin->kp.pub, p.cli->kp.pub, RUDP_SHARE_LEN), 0);
    size_t m = one_dgram(twin, e, p.now);
    rudp_session_info before, after;
    rudp_session_get_info(p.srv, &before);
    cr_assert_eq(deliver(p.srv, e, m, &p.caddr, p.now), RUDP_ERR_UNKNOWN_CID);
    rudp_session_get_info(p.srv, &after);
    cr_assert_eq(after.pkts_dropped, before.pkts_dropped + 1);
    cr_assert_eq(after.pkts_recv, before.pkts_recv);
    cr_assert_eq(memcmp(p.srv->peer_share, p.cli->kp.pub, RUDP_SHARE_LEN), 0);
    establish(&p);
    uint64_t sid;
    static uint8_t got[8];
    bool eof;
    open_and_write(p.cli, &sid, "mine");
    rudp_stream_shutdown_write(p.cli, sid);
    cr_assert_eq(read_to_eof(&p, sid, got, sizeof(got), LIMIT(&p), &eof), 4);
    cr_assert(eof && memcmp(got, "mine", 4) == 0);
    rudp_session_del(twin);
    test_pair_free(&p);
}

/* Moves every datagram between the sessions of |p| at once, the client
 * sending from |from| and the server's datagrams arriving only when they
 * go to |from|; returns how many PATH_CHALLENGEs the server sent to |from|. */
static int exchange_via(test_pair *p, const rudp_addr *from) {
    static out_dgram out[16];
    static seen s;
    int challenges = 0;
    int k = write_all(p->cli, out, 16, p->now);
    for (int i = 0; i < k; i++)
        deliver(p->srv, out[i].data, out[i].len, from, p->now);
    k = write_all(p->srv, out, 16, p->now);
    for (int i = 0; i < k; i++) {
        if (!same_addr(&out[i].to, from))
            continue;
        decode(p->cli, out[i].data, out[i].len, &s);
        challenges += find_frame(&s, RUDP_FRAME_PATH_CHALLENGE) != NULL;
        deliver(p->cli, out[i].data, out[i].len, &p->saddr, p->now);
    }
    return challenges;
}

Test(session, a_lost_path_challenge_is_sent_again) {
    /* A NAT rebinds the client (the old address is dead) and the first
     * PATH_CHALLENGE to the new one is lost: the server must challenge
     * again, or it keeps sending to the dead address for good. */
    test_pair p;
    uint64_t sid;
    pair_with_traffic(&p, &sid);
    rudp_addr moved = addr_with(p.caddr, 9);
    static out_dgram out[16];
    uint8_t d[TEST_MAX_DGRAM];
    cr_assert_eq(rudp_stream_write(p.cli, sid, "b", 1), 1);
    size_t n = one_dgram(p.cli, d, p.now);
    cr_assert_eq(deliver(p.srv, d, n, &moved, p.now), RUDP_OK);
    write_all(p.srv, out, 16, p.now); /* the challenge and the rest: all lost */
    int again = 0;
    rudp_tstamp end = p.now + RUDP_SEC(10);
    while (p.now < end && migrations(p.srv) == 0) {
        rudp_tstamp t = rudp_session_deadline(p.cli), ts = rudp_session_deadline(p.srv);
        p.now = t < ts ? t : ts;
        if (p.now == RUDP_TSTAMP_NEVER)
            break;
        rudp_session_handle_timeout(p.cli, p.now);
        rudp_session_handle_timeout(p.srv, p.now);
        again += exchange_via(&p, &moved);
    }
    cr_assert_gt(again, 0, "no second PATH_CHALLENGE in 10 s");
    cr_assert_eq(migrations(p.srv), 1);
    test_pair_free(&p);
}

/* Rewrites the client INITIAL |d| (|n| bytes) of |p| into |out| as anyone
 * on the path can without a pre-shared key (its key is public): opened, a
 * DATA frame for stream 1 put where the padding after the SYN was, sealed
 * again as packet |pn|. */
static void inject_data(test_pair *p, const uint8_t *d, size_t n, uint64_t pn,
                        uint8_t *out) {
    static seen s;
    uint8_t early[RUDP_SECRET_LEN];
    rudp_aead a;
    rudp_frame syn, f = {.type = RUDP_FRAME_DATA};
    decode_initial(&p->sset, d, n, &s);
    uint8_t *body = s.plain + s.hdr.len;
    size_t blen = n - s.hdr.len - RUDP_TAG_LEN;
    ssize_t at = rudp_wire_decode_frame(body, blen, &syn);
    cr_assert(at > 0 && syn.type == RUDP_FRAME_SESSION);
    f.u.data = (rudp_data_frame){
        .flags = RUDP_FLAG_SYN, .sid = 1, .len = 6, .data = (const uint8_t *)"inject"};
    cr_assert_gt(rudp_wire_encode_frame(body + at, blen - (size_t)at, &f), 0);
    rudp_put64(s.plain + 10, pn);
    rudp_hs_early(early, &p->sset);
    cr_assert(rudp_hs_initial_aead(&a, early, s.hdr.dcid, s.hdr.share));
    cr_assert_eq(rudp_aead_seal(&a, pn, s.plain, s.hdr.len, body, blen),
                 (ssize_t)(blen + RUDP_TAG_LEN));
    rudp_aead_free(&a);
    memcpy(out, s.plain, n);
}

Test(session, data_injected_into_a_public_initial_is_refused) {
    /* Without a pre-shared key an INITIAL may carry nothing but the SYN:
     * one re-sealed with stream data makes no session, a later one is
     * dropped by the session, and no injected byte is ever delivered. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    uint8_t d[TEST_MAX_DGRAM], bad[TEST_MAX_DGRAM];
    size_t n = one_dgram(p.cli, d, p.now);
    inject_data(&p, d, n, 0, bad);
    rudp_reply reply;
    int err;
    cr_assert_null(
        rudp_session_new_server(&p.sset, 22, bad, n, &p.caddr, p.now, false, &reply, &err));
    cr_assert_eq(err, RUDP_ERR_MALFORMED);
    cr_assert_eq(reply.len, 0);
    p.srv = new_server(&p, 22, d, n);
    inject_data(&p, d, n, 1, bad);
    cr_assert_eq(deliver(p.srv, bad, n, &p.caddr, p.now), RUDP_ERR_MALFORMED);
    establish(&p);
    rudp_stream_info si;
    cr_assert_eq(rudp_stream_get_info(p.srv, 1, &si), RUDP_ERR_NO_STREAM);
    test_pair_free(&p);
}

/* --- resumption tickets (docs/PROTOCOL.md "Resumption") --- */

#define WALL_MS 1800000000000ull /* a wall clock both ends agree on */

/* Fills |cs| and |ss| for sessions that issue and take tickets: no key,
 * wall clocks set, a replay memory at the server (free it). */
static void ticket_settings(rudp_settings *cs, rudp_settings *ss) {
    rudp_settings_default(cs);
    rudp_settings_default(ss);
    cs->wall_ms = ss->wall_ms = WALL_MS;
    ss->replay = rudp_replay_new(64);
}

/* Runs a whole session with |cs| and |ss| and returns the ticket its
 * client was given. */
static rudp_ticket ticket_from_a_session(const rudp_settings *cs, const rudp_settings *ss) {
    test_pair p;
    rudp_ticket t;
    test_pair_init(&p, cs, ss, DELAY);
    establish(&p);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    cr_assert(rudp_session_take_ticket(p.cli, &t), "no ticket after the handshake");
    cr_assert_not(rudp_session_take_ticket(p.cli, &t), "the same ticket twice");
    cr_assert_not(rudp_session_resumed(p.cli));
    test_pair_free(&p);
    return t;
}

/* Makes the server of |p| from the client's first datagram (|d|, |n|
 * bytes, kept intact) at |p|'s time; returns it. */
static rudp_session *server_from(test_pair *p, const uint8_t *d, size_t n) {
    static uint8_t copy[TEST_MAX_DGRAM];
    rudp_reply r;
    int err;
    memcpy(copy, d, n);
    rudp_session *s =
        rudp_session_new_server(&p->sset, 22, copy, n, &p->caddr, p->now, false, &r, &err);
    cr_assert_not_null(s, "no session: %d", err);
    return s;
}

/* Sets up |p| as a client resuming with the ticket of an earlier session
 * (server settings in |ss|: free ss->replay), opens stream *sid with |msg|
 * and puts its first datagram in |d|; returns its length. */
static size_t resumed_first_dgram(test_pair *p, rudp_settings *ss, const char *msg,
                                  uint64_t *sid, uint8_t *d) {
    rudp_settings cs;
    ticket_settings(&cs, ss);
    cs.ticket = ticket_from_a_session(&cs, ss);
    cs.ticket_set = true;
    test_pair_init(p, &cs, ss, DELAY);
    open_and_write(p->cli, sid, msg);
    return one_dgram(p->cli, d, p->now);
}

Test(session, a_ticket_carries_the_next_sessions_first_bytes_in_its_initial) {
    /* The server's NEW_TICKET lets the next session's INITIAL carry the
     * request, sealed under the ticket's key: the server program gets the
     * connection and its bytes from that one datagram (the ticket, bound to
     * the client's address, proves it as a TCP Fast Open cookie does). */
    rudp_settings ss;
    test_pair p;
    uint64_t sid;
    uint8_t d[TEST_MAX_DGRAM];
    size_t n = resumed_first_dgram(&p, &ss, "resumed request", &sid, d);
    cr_assert_eq(d[1], RUDP_PKT_INITIAL);
    p.srv = server_from(&p, d, n);
    cr_assert(rudp_session_is_validated(p.srv));
    cr_assert_eq(next_event(p.srv).type, RUDP_EV_SESSION_ESTABLISHED);
    rudp_event ev = next_event(p.srv);
    cr_assert(ev.type == RUDP_EV_STREAM_OPENED && ev.sid == sid);
    char got[32];
    cr_assert_eq(rudp_stream_read(p.srv, sid, got, sizeof(got)), 15);
    cr_assert_eq(memcmp(got, "resumed request", 15), 0);
    cr_assert(test_pair_run_until(&p, both_established, LIMIT(&p)));
    cr_assert(rudp_session_resumed(p.cli));
    test_pair_free(&p);
    rudp_replay_del(ss.replay);
}

Test(session, a_ticket_opens_only_from_the_address_it_was_given_to) {
    /* Like a TCP Fast Open cookie, a ticket is bound to the client's IP
     * address: the same INITIAL from elsewhere (a spoofer that got hold of
     * one) makes no session and is refused, cheaply. */
    rudp_settings ss;
    test_pair p;
    uint64_t sid;
    uint8_t d[TEST_MAX_DGRAM], copy[TEST_MAX_DGRAM];
    size_t n = resumed_first_dgram(&p, &ss, "GET", &sid, d);
    rudp_addr elsewhere = p.caddr;
    elsewhere.bytes[0] ^= 0x40;
    rudp_reply r;
    int err;
    memcpy(copy, d, n);
    cr_assert_null(
        rudp_session_new_server(&p.sset, 22, copy, n, &elsewhere, p.now, false, &r, &err));
    rudp_pkt_hdr h;
    cr_assert_eq(rudp_wire_parse(r.buf, r.len, &h), RUDP_OK);
    cr_assert(h.type == RUDP_PKT_REFUSE && h.reason == RUDP_REFUSE_TICKET);
    cr_assert_lt(r.len, n);
    p.srv = server_from(&p, d, n); /* from the right address it opens */
    cr_assert(rudp_session_is_validated(p.srv));
    test_pair_free(&p);
    rudp_replay_del(ss.replay);
}

Test(session, a_replayed_resumed_initial_delivers_nothing_again) {
    /* Whoever saw the INITIAL can send it again: the copy makes a session
     * that reports nothing (its data waits for a validation no replayer
     * can bring). */
    rudp_settings ss;
    test_pair p;
    uint64_t sid;
    uint8_t d[TEST_MAX_DGRAM];
    size_t n = resumed_first_dgram(&p, &ss, "pay 100", &sid, d);
    rudp_session *first = server_from(&p, d, n);
    cr_assert_eq(next_event(first).type, RUDP_EV_SESSION_ESTABLISHED);
    p.now += RUDP_SEC(1);
    rudp_session *again = server_from(&p, d, n);
    rudp_event ev;
    cr_assert_not(rudp_session_poll_event(again, &ev), "event %d from a replay", ev.type);
    rudp_session_del(first);
    rudp_session_del(again);
    test_pair_free(&p);
    rudp_replay_del(ss.replay);
}

/* Connects with ticket |t| to a server with the settings |server| (its
 * secret) whose wall clock is |wall|, and checks that the bytes written
 * before the handshake arrive whole, without resumption. */
static void check_ticket_refused(const rudp_settings *server, const rudp_ticket *t,
                                 uint64_t wall) {
    rudp_settings cs, ss = *server;
    ticket_settings(&cs, &ss);
    memcpy(ss.secret, server->secret, sizeof(ss.secret));
    ss.wall_ms = wall;
    cs.ticket = *t;
    cs.ticket_set = true;
    test_pair p;
    test_pair_init(&p, &cs, &ss, DELAY);
    uint64_t sid;
    open_and_write(p.cli, &sid, "still arrives");
    cr_assert_eq(rudp_stream_shutdown_write(p.cli, sid), RUDP_OK);
    static uint8_t got[32];
    bool eof;
    cr_assert(test_pair_run_until(&p, both_established, LIMIT(&p)));
    cr_assert_eq(read_to_eof(&p, sid, got, sizeof(got), LIMIT(&p), &eof), 13);
    cr_assert(eof && memcmp(got, "still arrives", 13) == 0);
    cr_assert_not(rudp_session_resumed(p.cli));
    cr_assert_eq(rudp_session_refuse_reason(p.cli), RUDP_REFUSE_NONE);
    test_pair_free(&p);
    rudp_replay_del(ss.replay);
}

Test(session, a_ticket_the_server_cannot_open_costs_a_round_trip_not_the_connection) {
    /* A ticket changed by one bit, one made under another server's secret
     * and an expired one are refused (REFUSE(ticket)); the client connects
     * without it and its 0-RTT bytes go again after the handshake. */
    rudp_settings cs, ss, other;
    ticket_settings(&cs, &ss);
    rudp_ticket t = ticket_from_a_session(&cs, &ss), forged = t;
    forged.blob[20] ^= 1;
    check_ticket_refused(&ss, &forged, WALL_MS);
    rudp_settings_default(&other); /* another random secret */
    check_ticket_refused(&other, &t, WALL_MS);
    check_ticket_refused(&ss, &t, WALL_MS + 25ull * 3600 * 1000); /* a day and an hour on */
    rudp_replay_del(ss.replay);
}

Test(session, a_psk_client_ignores_tickets) {
    /* Under a pre-shared key no ticket is sent or used: the key does more. */
    rudp_settings cs, ss;
    psk_settings(&cs, &ss);
    cs.wall_ms = ss.wall_ms = WALL_MS;
    test_pair p;
    rudp_ticket t;
    test_pair_init(&p, &cs, &ss, DELAY);
    establish(&p);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    cr_assert_not(rudp_session_take_ticket(p.cli, &t));
    test_pair_free(&p);
}

Test(session, a_busy_server_retries_a_ticket_client_into_the_full_handshake) {
    /* A RETRY, tagged under the ticket's key, makes the client drop its
     * ticket: it connects with the token and no ticket, and its bytes
     * arrive. */
    rudp_settings cs, ss;
    ticket_settings(&cs, &ss);
    cs.ticket = ticket_from_a_session(&cs, &ss);
    cs.ticket_set = true;
    test_pair p;
    test_pair_init(&p, &cs, &ss, DELAY);
    p.srv_busy = true;
    uint64_t sid;
    open_and_write(p.cli, &sid, "after a retry");
    cr_assert_eq(rudp_stream_shutdown_write(p.cli, sid), RUDP_OK);
    static uint8_t got[32];
    bool eof;
    cr_assert(test_pair_run_until(&p, both_established, LIMIT(&p)));
    cr_assert_eq(read_to_eof(&p, sid, got, sizeof(got), LIMIT(&p), &eof), 13);
    cr_assert(eof && memcmp(got, "after a retry", 13) == 0);
    cr_assert_not(rudp_session_resumed(p.cli));
    cr_assert(p.cli->retried);
    test_pair_free(&p);
    rudp_replay_del(ss.replay);
}

Test(session, a_closer_whose_peer_is_gone_ends_its_close_without_error) {
    /* Nothing comes back at all: with no idle timeout to say how long the
     * peer may be silent, the close ends after RUDP_CLOSE_TIMEOUT, as a
     * close (RUDP_OK), not a timeout. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    rudp_session_del(p.srv);
    p.srv = NULL;
    p.filter = NULL;
    rudp_tstamp start = p.now;
    cr_assert_eq(rudp_session_close(p.cli, 0, p.now), RUDP_OK);
    while (!rudp_session_is_done(p.cli)) {
        rudp_tstamp t = rudp_session_deadline(p.cli);
        cr_assert_leq(t, start + RUDP_CLOSE_TIMEOUT + RUDP_SEC(1));
        p.now = t;
        rudp_session_handle_timeout(p.cli, p.now);
        static out_dgram out[16];
        write_all(p.cli, out, 16, p.now); /* into the void */
    }
    cr_assert_geq(p.now - start, RUDP_CLOSE_TIMEOUT);
    cr_assert_eq(closed_error(p.cli), RUDP_OK);
    test_pair_free(&p);
}

Test(session, a_stateless_reset_after_our_goaway_completes_the_close) {
    /* The peer forgot the session after our GoAway went out (every stream
     * was finished): its reset ends our close as a close, not an error. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    establish(&p);
    rudp_session_info ci;
    rudp_session_get_info(p.cli, &ci);
    cr_assert_eq(rudp_session_close(p.cli, 0, p.now), RUDP_OK);
    static out_dgram out[16];
    cr_assert_gt(write_all(p.cli, out, 16, p.now), 0); /* the GoAway, lost */
    cr_assert_eq(send_reset(&p, ci.peer_cid, p.sset.secret, false), RUDP_OK);
    cr_assert(rudp_session_is_done(p.cli));
    cr_assert_eq(closed_error(p.cli), RUDP_OK);
    test_pair_free(&p);
}

/* --- liveness: TCP's idle semantics (session_live.c) --- */

/* Returns the error of the first STREAM_RESET event of |sid| on |s| (other
 * events drained), or 1 when none is pending. */
static int reset_error(rudp_session *s, uint64_t sid) {
    rudp_event ev;
    int err = 1;
    while (rudp_session_poll_event(s, &ev))
        if (ev.type == RUDP_EV_STREAM_RESET && ev.sid == sid && err == 1)
            err = ev.error;
    return err;
}

/* Opens a client stream, writes and delivers |msg|, and reads it on the
 * server: an established, idle connection.  Returns the stream ID. */
static uint64_t idle_stream(test_pair *p, const char *msg) {
    uint64_t sid;
    uint8_t buf[64];
    bool eof;
    int err;
    establish(p);
    open_and_write(p->cli, &sid, msg);
    test_pair_run(p, p->now + RUDP_SEC(1));
    cr_assert_eq(test_read_all(p->srv, sid, buf, sizeof(buf), &eof, &err), strlen(msg));
    return sid;
}

/* Runs the pair until |s|'s stream |sid| is reset or |limit| passes;
 * returns when it was reset (or NEVER). */
static rudp_tstamp run_until_reset(test_pair *p, rudp_session *s, uint64_t sid,
                                   rudp_tstamp limit) {
    while (state_of(s, sid) != RUDP_STREAM_RESET)
        if (!test_pair_step(p, limit))
            return RUDP_TSTAMP_NEVER;
    return p->now;
}

Test(session, an_idle_connection_outlives_hours_of_silence) {
    /* The server stops answering; nothing is unacknowledged and no
     * keepalive option is set: as with TCP, the connection lives on, and
     * the client spends one keepalive Ping per interval, not retries. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    uint64_t sid = idle_stream(&p, "hello");
    p.filter = drop_all;
    uint64_t before = p.sent[TEST_DIR_C2S];
    rudp_tstamp start = p.now;
    cr_assert_eq(run_until_reset(&p, p.cli, sid, start + RUDP_SEC(7200)),
                 RUDP_TSTAMP_NEVER);
    cr_assert_not(rudp_session_is_done(p.cli));
    cr_assert_eq(state_of(p.cli, sid), RUDP_STREAM_ESTABLISHED);
    uint64_t pings = p.sent[TEST_DIR_C2S] - before;
    uint64_t intervals = RUDP_SEC(7200) / p.cset.keepalive_interval;
    cr_assert_leq(pings, intervals + 1, "%llu datagrams in %llu intervals",
                  (unsigned long long)pings, (unsigned long long)intervals);
    cr_assert_geq(pings, intervals - 1, "keepalives stopped");
    cr_assert_leq(p.cli->rec.cap, 16, "the sent-packet ring grew to %llu records",
                  (unsigned long long)p.cli->rec.cap);
    /* The server comes back: the connection still carries bytes. */
    p.filter = NULL;
    cr_assert_eq(rudp_stream_write(p.srv, sid, "back", 4), 4);
    test_pair_run(&p, p.now + RUDP_SEC(12));
    uint8_t buf[8];
    bool eof;
    int err;
    cr_assert_eq(test_read_all(p.cli, sid, buf, sizeof(buf), &eof, &err), 4);
    cr_assert_eq(memcmp(buf, "back", 4), 0);
    test_pair_free(&p);
}

Test(session, unacknowledged_data_times_out_after_the_retry_timeout) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    uint64_t sid = idle_stream(&p, "hello");
    p.filter = drop_s2c;
    rudp_tstamp start = p.now;
    cr_assert_eq(rudp_stream_write(p.cli, sid, "more", 4), 4);
    rudp_tstamp t = run_until_reset(&p, p.cli, sid, start + RUDP_SEC(3600));
    cr_assert_neq(t, RUDP_TSTAMP_NEVER);
    cr_assert_geq(t - start, p.cset.retry_timeout);
    cr_assert_leq(t - start, p.cset.retry_timeout + RUDP_SEC(1));
    cr_assert_eq(reset_error(p.cli, sid), RUDP_ERR_TIMEDOUT);
    uint8_t b[4];
    cr_assert_eq(rudp_stream_read(p.cli, sid, b, 4), RUDP_ERR_TIMEDOUT);
    test_pair_free(&p);
}

Test(session, user_timeout_ends_unacknowledged_data_sooner) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    uint64_t sid = idle_stream(&p, "hello");
    rudp_liveness l = {.user_timeout = RUDP_SEC(2)};
    cr_assert_eq(rudp_stream_set_liveness(p.cli, sid, &l, p.now), RUDP_OK);
    /* Idle, it is not affected. */
    p.filter = drop_s2c;
    cr_assert_eq(run_until_reset(&p, p.cli, sid, p.now + RUDP_SEC(30)), RUDP_TSTAMP_NEVER);
    rudp_tstamp start = p.now;
    cr_assert_eq(rudp_stream_write(p.cli, sid, "more", 4), 4);
    rudp_tstamp t = run_until_reset(&p, p.cli, sid, start + RUDP_SEC(60));
    cr_assert_geq(t - start, RUDP_SEC(2));
    cr_assert_leq(t - start, RUDP_SEC(2) + RUDP_MS(1));
    cr_assert_eq(reset_error(p.cli, sid), RUDP_ERR_TIMEDOUT);
    cr_assert_not(rudp_session_is_done(p.cli), "the session outlives the stream");
    test_pair_free(&p);
}

Test(session, acknowledgements_hold_the_user_timeout_off) {
    /* A slow, lossy transfer that keeps making progress is never cut off
     * by a user timeout shorter than the transfer. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    uint64_t sid = idle_stream(&p, "hello");
    rudp_liveness l = {.user_timeout = RUDP_SEC(1)};
    cr_assert_eq(rudp_stream_set_liveness(p.cli, sid, &l, p.now), RUDP_OK);
    static uint8_t data[64 * 1024], got[64 * 1024];
    test_fill_pattern(data, sizeof(data), 7);
    size_t sent = 0, recvd = 0;
    bool eof;
    int err;
    for (int i = 0; i < 40; i++) { /* 40 s of 1.6 KiB/s */
        ssize_t n = rudp_stream_write(p.cli, sid, data + sent, 1600);
        cr_assert_eq(n, 1600);
        sent += 1600;
        test_pair_run(&p, p.now + RUDP_SEC(1));
        recvd += test_read_all(p.srv, sid, got + recvd, sizeof(got) - recvd, &eof, &err);
    }
    cr_assert_eq(state_of(p.cli, sid), RUDP_STREAM_ESTABLISHED);
    cr_assert_eq(recvd, sent);
    cr_assert_eq(memcmp(got, data, sent), 0);
    test_pair_free(&p);
}

Test(session, keepalive_options_end_a_silent_peer_as_tcp_does) {
    /* SO_KEEPALIVE, TCP_KEEPIDLE 2, TCP_KEEPINTVL 1, TCP_KEEPCNT 3: probes
     * at 2, 3 and 4 s of silence, and the end at 5 s. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    uint64_t sid = idle_stream(&p, "hello");
    rudp_liveness l = {.ka_idle = RUDP_SEC(2), .ka_intvl = RUDP_SEC(1), .ka_cnt = 3};
    cr_assert_eq(rudp_stream_set_liveness(p.cli, sid, &l, p.now), RUDP_OK);
    uint64_t sent = p.sent[TEST_DIR_C2S];
    test_pair_run(&p, p.now + RUDP_SEC(20)); /* the peer answers: it lives */
    cr_assert_eq(state_of(p.cli, sid), RUDP_STREAM_ESTABLISHED);
    cr_assert_leq(p.sent[TEST_DIR_C2S] - sent, 11, "a probe per 2 s of quiet, no more");
    p.filter = drop_all;
    rudp_tstamp silent_from = p.cli->last_recv;
    uint64_t before = p.sent[TEST_DIR_C2S];
    rudp_tstamp t = run_until_reset(&p, p.cli, sid, p.now + RUDP_SEC(60));
    cr_assert_eq(t - silent_from, RUDP_SEC(5), "ended %lld ms after the last packet",
                 (long long)((t - silent_from) / RUDP_MS(1)));
    uint64_t probes = p.sent[TEST_DIR_C2S] - before;
    cr_assert(probes >= 3 && probes <= 4, "%llu datagrams for three probes",
              (unsigned long long)probes);
    cr_assert_eq(reset_error(p.cli, sid), RUDP_ERR_TIMEDOUT);
    test_pair_free(&p);
}

Test(session, keepalive_with_a_user_timeout_ends_when_that_much_silence_passed) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    uint64_t sid = idle_stream(&p, "hello");
    rudp_liveness l = {.user_timeout = RUDP_SEC(9),
                       .ka_idle = RUDP_SEC(2),
                       .ka_intvl = RUDP_SEC(1),
                       .ka_cnt = 3};
    cr_assert_eq(rudp_stream_set_liveness(p.cli, sid, &l, p.now), RUDP_OK);
    rudp_tstamp silent_from = p.cli->last_recv;
    p.filter = drop_all;
    rudp_tstamp t = run_until_reset(&p, p.cli, sid, p.now + RUDP_SEC(60));
    cr_assert_geq(t - silent_from, RUDP_SEC(9));
    cr_assert_leq(t - silent_from, RUDP_SEC(10));
    test_pair_free(&p);
}

Test(session, keepalive_needs_an_interval_and_a_count) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    uint64_t sid = idle_stream(&p, "hello");
    rudp_liveness l = {.ka_idle = RUDP_SEC(2)};
    cr_assert_eq(rudp_stream_set_liveness(p.cli, sid, &l, p.now), RUDP_ERR_INVAL);
    cr_assert_eq(rudp_stream_set_liveness(p.cli, sid + 4, &l, p.now), RUDP_ERR_NO_STREAM);
    test_pair_free(&p);
}

Test(session, a_pause_of_our_own_is_not_held_against_the_peer) {
    /* This process was stopped for a minute with data unacknowledged:
     * when it runs again the user timeout counts from where it stopped. */
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    uint64_t sid = idle_stream(&p, "hello");
    rudp_liveness l = {.user_timeout = RUDP_SEC(2)};
    cr_assert_eq(rudp_stream_set_liveness(p.cli, sid, &l, p.now), RUDP_OK);
    p.filter = drop_all; /* nothing gets through until the pause ends */
    cr_assert_eq(rudp_stream_write(p.cli, sid, "more", 4), 4);
    test_pair_flush(&p);
    p.now += RUDP_SEC(60);
    rudp_session_on_pause(p.cli, RUDP_SEC(60));
    rudp_session_handle_timeout(p.cli, p.now);
    cr_assert_eq(state_of(p.cli, sid), RUDP_STREAM_ESTABLISHED);
    p.filter = NULL; /* the retransmission is acknowledged in time */
    test_pair_run(&p, p.now + RUDP_SEC(3));
    cr_assert_eq(state_of(p.cli, sid), RUDP_STREAM_ESTABLISHED);
    uint8_t buf[16];
    bool eof;
    int err;
    cr_assert_eq(test_read_all(p.srv, sid, buf, sizeof(buf), &eof, &err), 4);
    test_pair_free(&p);
}

/* Returns true when the server's session has ended. */
static bool srv_done(test_pair *p) {
    return rudp_session_is_done(p->srv);
}

Test(session, a_session_with_no_stream_left_closes_after_a_minute_of_silence) {
    test_pair p;
    test_pair_init(&p, NULL, NULL, DELAY);
    uint64_t sid = idle_stream(&p, "hello");
    cr_assert_eq(rudp_stream_release(p.cli, sid), RUDP_OK);
    cr_assert_eq(rudp_stream_release(p.srv, sid), RUDP_OK);
    test_pair_run(&p, p.now + RUDP_SEC(1));
    p.filter = drop_c2s; /* the client vanished */
    rudp_tstamp start = p.now;
    cr_assert(test_pair_run_until(&p, srv_done, start + RUDP_SEC(300)));
    cr_assert_geq(p.now - start, RUDP_EMPTY_TIMEOUT - RUDP_SEC(2));
    cr_assert_leq(p.now - start, RUDP_EMPTY_TIMEOUT + RUDP_CLOSE_TIMEOUT + RUDP_SEC(2));
    test_pair_free(&p);
}
