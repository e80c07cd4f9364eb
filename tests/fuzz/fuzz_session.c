/*
 * fuzz_session.c — libFuzzer target for the session input path.
 *
 * A server session is opened from a genuine client SYN.  The input is then
 * cut into datagrams (2-byte big-endian length prefixes); each becomes the
 * frame area of a packet addressed to the session with a fresh packet
 * number and a valid CRC, so the fuzzer reaches frame handling instead of
 * stopping at the integrity check.  After each datagram the session is
 * asked for its output and its timers run, advancing virtual time.  The
 * session must never crash, leak or loop.
 */
#include <stdlib.h>
#include <string.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Builds a client's first datagram into |buf|; returns its length. */
static size_t fuzz_client_syn(uint8_t *buf, size_t cap) {
    rudp_settings set;
    rudp_settings_default(&set);
    rudp_addr to = {.len = 4};
    rudp_session *c = rudp_session_new_client(&set, 1, &to, 0);
    uint64_t sid;
    rudp_stream_open(c, &sid);
    rudp_stream_write(c, sid, "hello", 5);
    ssize_t n = rudp_session_write_pkt(c, buf, cap, &to, 0);
    rudp_session_del(c);
    return n > 0 ? (size_t)n : 0;
}

/* Drains output and events, and runs the timers at |now|. */
static void fuzz_pump(rudp_session *s, rudp_tstamp now) {
    uint8_t out[2048];
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t syn[2048];
    size_t n = fuzz_client_syn(syn, sizeof(syn));
    rudp_settings set;
    rudp_settings_default(&set);
    rudp_addr from = {.len = 4};
    int err;
    rudp_session *s = rudp_session_new_server(&set, 2, syn, n, &from, 0, &err);
    if (!s)
        abort();
    rudp_session_info info;
    rudp_session_get_info(s, &info);
    rudp_tstamp now = 0;
    uint64_t pn = 1;
    while (size >= 2) {
        size_t len = (size_t)(data[0] << 8 | data[1]);
        data += 2;
        size -= 2;
        if (len > size)
            len = size;
        uint8_t pkt[70000];
        ssize_t h = rudp_wire_encode_hdr(pkt, sizeof(pkt), info.local_cid, pn++);
        memcpy(pkt + h, data, len);
        ssize_t total = rudp_wire_seal(pkt, (size_t)h + len, sizeof(pkt));
        rudp_session_read_pkt(s, pkt, (size_t)total, &from, now);
        now += RUDP_MS(7);
        fuzz_pump(s, now);
        data += len;
        size -= len;
    }
    rudp_session_del(s);
    return 0;
}
