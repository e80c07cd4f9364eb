/*
 * fuzz_handshake.c — libFuzzer target for the handshake: the datagrams an
 * attacker can send before any key exists.
 *
 * The input is cut into datagrams (2-byte big-endian length prefixes).
 * Even ones go to a server's first look (rudp_session_new_server, busy or
 * not by the first byte), which must make a session only from an INITIAL
 * that opens, and never reply with more bytes than it received; odd ones go
 * to a client that is connecting (a HANDSHAKE, REFUSE, RETRY or reset
 * forged by the fuzzer), whose state may change only through a packet that
 * opens.  Nothing may crash, leak or loop.
 */
#include <stdlib.h>
#include <string.h>

#include "session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Hands datagram |p| to a server's first look; frees any session made. */
static void fuzz_server(const rudp_settings *set, const uint8_t *p, size_t len, bool busy) {
    static uint8_t pkt[70000];
    rudp_addr from = {.len = 4, .bytes = {1, 2, 3, 4}};
    rudp_reply reply;
    int err;
    memcpy(pkt, p, len);
    rudp_session *s =
        rudp_session_new_server(set, 3, pkt, len, &from, 0, busy, &reply, &err);
    if (reply.len > len)
        abort(); /* an amplifier */
    rudp_session_del(s);
}

/* Hands datagram |p| to the connecting client |c|; it must stay connecting
 * or end, never be established by a forgery it cannot open. */
static void fuzz_client(rudp_session *c, const uint8_t *p, size_t len, rudp_tstamp now) {
    static uint8_t pkt[70000];
    rudp_addr from = {.len = 4};
    memcpy(pkt, p, len);
    rudp_session_read_pkt(c, pkt, len, &from, now);
    rudp_session_handle_timeout(c, now);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rudp_settings set;
    rudp_settings_default(&set);
    rudp_addr to = {.len = 4};
    rudp_session *c = rudp_session_new_client(&set, 1, &to, 0);
    bool busy = size > 0 && (data[0] & 1);
    rudp_tstamp now = 0;
    for (int i = 0; size >= 2; i++) {
        size_t len = (size_t)(data[0] << 8 | data[1]);
        data += 2;
        size -= 2;
        if (len > size)
            len = size;
        if (i % 2 == 0)
            fuzz_server(&set, data, len, busy);
        else
            fuzz_client(c, data, len, now += RUDP_MS(3));
        data += len;
        size -= len;
    }
    if (c->keyed)
        abort(); /* keys taken from a forgery: only the server's HANDSHAKE opens */
    rudp_session_del(c);
    return 0;
}
