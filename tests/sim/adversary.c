/*
 * adversary.c — an attacker on the simulated link (--attack PCT).
 *
 * It sees every datagram: after a genuine one has been delivered, with
 * probability PCT it strikes the same receiver with something made from
 * it, as an on-path attacker who sniffed it would:
 *
 *   replay      the datagram again, from the same address
 *   elsewhere   the datagram again, from the attacker's own address (a
 *               migration hijack)
 *   flip        1-3 bits flipped anywhere, header included
 *   forge       the clear header kept, everything after it random
 *   reset       a stateless reset for its connection ID, random token
 *   cut         the datagram truncated at a random length
 *   opening     (at the server) a genuine INITIAL of another client, from
 *               a spoofed address, handed to the server's first look
 *
 * Each strike must be refused (read_pkt returns an error) and must change
 * nothing: packets, bytes received, migrations, state, validation and the
 * peer's address are compared before and after.  A spoofed opening must
 * make no validated session, and the session it makes may send at most
 * three times the datagram's size.  Any other outcome fails the run.
 */
#include "adversary.h"

#include <stdio.h>
#include <string.h>

#include "wire.h"

enum adv_kind { ADV_REPLAY, ADV_ELSEWHERE, ADV_FLIP, ADV_FORGE, ADV_RESET, ADV_CUT, ADV_N };

void sim_adv_init(sim_adv *a, uint64_t seed, double pct) {
    memset(a, 0, sizeof(*a));
    sim_prng_init(&a->prng, seed);
    a->pct = pct;
    a->where = (rudp_addr){.len = 4, .bytes = {10, 66, 6, 6}};
}

/* Fills |buf| with random bytes. */
static void adv_random(sim_adv *a, uint8_t *buf, size_t len) {
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)sim_prng_next(&a->prng);
}

/* Builds strike |kind| from the genuine datagram |orig| into |buf|; returns
 * its length and sets *from. */
static size_t adv_make(sim_adv *a, int kind, const uint8_t *orig, size_t len, uint8_t *buf,
                       const rudp_addr **from) {
    memcpy(buf, orig, len);
    if (kind == ADV_ELSEWHERE)
        *from = &a->where;
    if (kind == ADV_FLIP)
        for (int i = 0, n = 1 + (int)sim_prng_below(&a->prng, 3); i < n; i++) {
            uint64_t bit = sim_prng_below(&a->prng, len * 8);
            buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        }
    if (kind == ADV_FORGE && len > RUDP_HDR_LEN)
        adv_random(a, buf + RUDP_HDR_LEN, len - RUDP_HDR_LEN);
    if (kind == ADV_RESET) {
        buf[1] = RUDP_PKT_STATELESS_RESET;
        adv_random(a, buf + RUDP_PREFIX_LEN, RUDP_TOKEN_LEN);
        return RUDP_RESET_LEN;
    }
    if (kind == ADV_CUT)
        return (size_t)sim_prng_below(&a->prng, len);
    return len;
}

/* Returns true when |x| and |y| differ in anything a forgery must not
 * change. */
static bool adv_changed(const rudp_session_info *x, const rudp_session_info *y) {
    return x->pkts_recv != y->pkts_recv || x->bytes_recv != y->bytes_recv ||
           x->migrations != y->migrations || x->state != y->state ||
           x->validated != y->validated || x->peer_cid != y->peer_cid;
}

/* Checks a spoofed opening against the server's first look: a fresh
 * client's INITIAL from another address.  Returns 0 or -1 with |why|. */
static int adv_opening(sim_adv *a, const rudp_settings *set, rudp_tstamp now, char *why,
                       size_t whylen) {
    uint8_t pkt[2048], out[70000];
    rudp_addr victim = {.len = 4, .bytes = {10, 66, 0, (uint8_t)sim_prng_next(&a->prng)}},
              to;
    rudp_session *c = rudp_session_new_client(set, sim_prng_next(&a->prng), &victim, now);
    ssize_t n = c ? rudp_session_write_pkt(c, pkt, sizeof(pkt), &to, now) : -1;
    rudp_session_del(c);
    rudp_reply reply;
    int err;
    rudp_session *s = n > 0 ? rudp_session_new_server(set, 5, pkt, (size_t)n, &victim, now,
                                                      false, &reply, &err)
                            : NULL;
    uint64_t sent = 0;
    for (int i = 0; s && i < 200; i++, now += RUDP_MS(50)) {
        ssize_t m;
        while ((m = rudp_session_write_pkt(s, out, sizeof(out), &to, now)) > 0)
            sent += (uint64_t)m;
        rudp_session_handle_timeout(s, now);
    }
    bool bad = !s || rudp_session_is_validated(s) || sent > 3 * (uint64_t)n;
    if (bad)
        snprintf(why, whylen,
                 "spoofed opening: session %s, validated %d, %llu bytes for %zd",
                 s ? "made" : "not made", s ? rudp_session_is_validated(s) : 0,
                 (unsigned long long)sent, n);
    rudp_session_del(s);
    return bad ? -1 : 0;
}

int sim_adv_strike(sim_adv *a, rudp_session *s, const rudp_settings *set, bool server,
                   const uint8_t *orig, size_t len, const rudp_addr *from, rudp_tstamp now,
                   char *why, size_t whylen) {
    static uint8_t buf[70000];
    if (a->pct <= 0 || (double)sim_prng_below(&a->prng, 1000000) >= a->pct * 1e6)
        return 0;
    a->strikes++;
    int kind = (int)sim_prng_below(&a->prng, ADV_N + (server ? 1 : 0));
    if (kind == ADV_N)
        return adv_opening(a, set, now, why, whylen);
    rudp_session_info before, after;
    rudp_session_get_info(s, &before);
    size_t n = adv_make(a, kind, orig, len, buf, &from);
    int rc = rudp_session_read_pkt(s, buf, n, from, now);
    rudp_session_get_info(s, &after);
    if (rc == RUDP_OK || adv_changed(&before, &after)) {
        snprintf(why, whylen, "strike %d (%zu bytes) %s and %s", kind, n,
                 rc == RUDP_OK ? "accepted" : "refused",
                 adv_changed(&before, &after) ? "changed the session" : "changed nothing");
        return -1;
    }
    a->refused++;
    return 0;
}
