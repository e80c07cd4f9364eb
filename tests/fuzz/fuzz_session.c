/*
 * fuzz_session.c — libFuzzer target for the session input path.
 *
 * A client and a server session are joined by a real handshake.  The input
 * is then cut into datagrams (2-byte big-endian length prefixes); each
 * becomes the frame area of a packet the client seals with its own keys
 * (rudp_sess_seal) and a fresh packet number, so the fuzzer reaches frame
 * handling in the server instead of stopping at authentication.  After
 * each datagram the server is asked for its output and its timers run,
 * advancing virtual time.  The session must never crash, leak or loop.
 */
#include <stdlib.h>
#include <string.h>

#include "session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Moves every datagram |from| has to send now into |to|; returns true when
 * one was moved (|srv|: where a server is made from the first one). */
static bool fuzz_move(rudp_session *from, rudp_session **to, const rudp_settings *set) {
    uint8_t buf[70000];
    rudp_addr a = {.len = 4};
    bool moved = false;
    ssize_t n;
    while ((n = rudp_session_write_pkt(from, buf, sizeof(buf), &a, 0)) > 0) {
        moved = true;
        if (*to) {
            rudp_session_read_pkt(*to, buf, (size_t)n, &a, 0);
            continue;
        }
        rudp_reply reply;
        int err;
        *to = rudp_session_new_server(set, 2, buf, (size_t)n, &a, 0, false, &reply, &err);
    }
    return moved;
}

/* Drains output and events, and runs the timers at |now|. */
static void fuzz_pump(rudp_session *s, rudp_tstamp now) {
    uint8_t out[70000];
    rudp_addr to;
    rudp_event ev;
    for (int i = 0; i < 64 && rudp_session_write_pkt(s, out, sizeof(out), &to, now) > 0;
         i++)
        ;
    while (rudp_session_poll_event(s, &ev)) {
        uint8_t buf[256];
        if (ev.type == RUDP_EV_STREAM_READABLE)
            rudp_stream_read(s, ev.sid, buf, sizeof(buf));
    }
    if (rudp_session_deadline(s) <= now)
        rudp_session_handle_timeout(s, now);
}

/* Seals |len| fuzz bytes as frames of a client packet |pn| and hands it to
 * |srv| at |now|. */
static void fuzz_feed(rudp_session *cli, rudp_session *srv, const uint8_t *p, size_t len,
                      uint64_t pn, rudp_tstamp now) {
    static uint8_t pkt[70000];
    rudp_addr from = {.len = 4};
    size_t h = rudp_sess_hdr_len(cli);
    memcpy(pkt + h, p, len);
    ssize_t total = rudp_sess_seal(cli, pkt, h + len, sizeof(pkt), pn);
    if (total > 0)
        rudp_session_read_pkt(srv, pkt, (size_t)total, &from, now);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rudp_settings set;
    rudp_settings_default(&set);
    rudp_addr to = {.len = 4};
    rudp_session *cli = rudp_session_new_client(&set, 1, &to, 0), *srv = NULL;
    for (int i = 0; i < 4 && cli; i++) { /* INITIAL, HANDSHAKE, the client's ACK */
        fuzz_move(cli, &srv, &set);
        if (srv)
            fuzz_move(srv, &cli, &set);
    }
    if (!srv || !rudp_session_is_validated(srv))
        abort();
    rudp_tstamp now = 0;
    uint64_t pn = 1000;
    while (size >= 2) {
        size_t len = (size_t)(data[0] << 8 | data[1]);
        data += 2;
        size -= 2;
        if (len > size)
            len = size;
        fuzz_feed(cli, srv, data, len, pn++, now);
        now += RUDP_MS(7);
        fuzz_pump(srv, now);
        data += len;
        size -= len;
    }
    rudp_session_del(srv);
    rudp_session_del(cli);
    return 0;
}
