/*
 * handshake.c — the key schedule and the tokens (docs/PROTOCOL.md "Keys",
 * "Address validation", "Stateless reset").
 *
 * One round trip sets the keys, as in Noise's NN pattern with a PSK mixed
 * in first (psk0) and TLS 1.3's schedule for the shape:
 *
 *   early   = HKDF-Extract("rudp v3 early", PSK, or 32 zero bytes)
 *   initial = HKDF-Expand(early, "initial" | dcid | client share)
 *   hs      = HKDF-Extract(early, X25519(one's private key, other's share))
 *   th      = SHA-256(dcid | client share | server share)
 *   c2s     = HKDF-Expand(hs, "c2s" | th),  s2c = HKDF-Expand(hs, "s2c" | th)
 *
 * Each secret gives an AEAD key and IV (crypto.c).  Without a PSK the
 * initial key is public: INITIAL packets are then only checked, not
 * secret, and carry nothing but the client's parameters.  With one, they
 * are authenticated and private, and a server that cannot open them knows
 * the keys differ.  The 1-RTT keys need the X25519 secret: an observer
 * cannot read or forge anything after the first round trip.  Without a PSK
 * an active attacker on the path can still stand in the middle (nothing
 * authenticates the shares), which is what plaintext TCP allows too
 * (docs/SECURITY.md).
 *
 * Tokens are MACs under the endpoint's own secret (rudp_settings.secret):
 * a stateless reset token is HMAC(secret, "reset" | cid), told to the peer
 * inside the sealed SYN-ACK, so only the end that made the connection ID
 * (and its successor after a restart, if the secret is kept) can reset it;
 * a retry token binds the client's address and first destination CID to the
 * time it was made, as a SYN cookie does, so a server under load keeps no
 * state for a client until the client has proved it receives there.
 */
#include "handshake.h"

#include <netinet/in.h>
#include <stddef.h>
#include <string.h>

#include "wire.h"

/* Appends |n| bytes of |p| at *pos in |buf|. */
static void hs_put(uint8_t *buf, size_t *pos, const void *p, size_t n) {
    memcpy(buf + *pos, p, n);
    *pos += n;
}

/* Appends |v| big-endian. */
static void hs_put64(uint8_t *buf, size_t *pos, uint64_t v) {
    rudp_put64(buf + *pos, v);
    *pos += 8;
}

void rudp_hs_early(uint8_t early[RUDP_SECRET_LEN], const rudp_settings *s) {
    static const uint8_t none[RUDP_SECRET_LEN];
    static const char salt[] = "rudp v3 early";
    const uint8_t *key = s->psk_set ? s->psk : s->ticket_set ? s->ticket.psk : none;
    rudp_hkdf_extract(early, (const uint8_t *)salt, sizeof(salt) - 1, key, RUDP_SECRET_LEN);
}

bool rudp_hs_initial_aead(rudp_aead *a, const uint8_t early[RUDP_SECRET_LEN], uint64_t dcid,
                          const uint8_t share[RUDP_SHARE_LEN]) {
    uint8_t info[7 + 8 + RUDP_SHARE_LEN], secret[RUDP_SECRET_LEN];
    size_t n = 0;
    hs_put(info, &n, "initial", 7);
    hs_put64(info, &n, dcid);
    hs_put(info, &n, share, RUDP_SHARE_LEN);
    rudp_hkdf_expand(secret, sizeof(secret), early, info, n);
    bool ok = rudp_aead_init(a, secret);
    memset(secret, 0, sizeof(secret));
    return ok;
}

/* Expands the secret of one direction (|label|: "c2s" or "s2c"). */
static void hs_direction(uint8_t out[RUDP_SECRET_LEN], const uint8_t hs[RUDP_SECRET_LEN],
                         const char *label, const uint8_t th[32]) {
    uint8_t info[3 + 32];
    memcpy(info, label, 3);
    memcpy(info + 3, th, 32);
    rudp_hkdf_expand(out, RUDP_SECRET_LEN, hs, info, sizeof(info));
}

bool rudp_hs_1rtt(rudp_aead *tx, rudp_aead *rx, const rudp_hs_input *in, bool client) {
    uint8_t hs[RUDP_SECRET_LEN], th[32], c2s[RUDP_SECRET_LEN], s2c[RUDP_SECRET_LEN];
    uint8_t msg[8 + 2 * RUDP_SHARE_LEN];
    size_t n = 0;
    rudp_hkdf_extract(hs, in->early, RUDP_SECRET_LEN, in->dh, RUDP_SECRET_LEN);
    hs_put64(msg, &n, in->dcid);
    hs_put(msg, &n, in->client_share, RUDP_SHARE_LEN);
    hs_put(msg, &n, in->server_share, RUDP_SHARE_LEN);
    rudp_sha256(th, msg, n);
    hs_direction(c2s, hs, "c2s", th);
    hs_direction(s2c, hs, "s2c", th);
    bool ok_tx = rudp_aead_init(tx, client ? c2s : s2c);
    bool ok = rudp_aead_init(rx, client ? s2c : c2s) && ok_tx; /* both set up, to free */
    memset(hs, 0, sizeof(hs));
    memset(c2s, 0, sizeof(c2s));
    memset(s2c, 0, sizeof(s2c));
    if (!ok) {
        rudp_aead_free(tx);
        rudp_aead_free(rx);
    }
    return ok;
}

void rudp_hs_reset_token(uint8_t out[RUDP_TOKEN_LEN], const uint8_t secret[RUDP_SECRET_LEN],
                         uint64_t cid) {
    uint8_t msg[5 + 8], mac[32];
    size_t n = 0;
    hs_put(msg, &n, "reset", 5);
    hs_put64(msg, &n, cid);
    rudp_hmac(mac, secret, RUDP_SECRET_LEN, msg, n);
    memcpy(out, mac, RUDP_TOKEN_LEN);
}

/* The MAC of a retry token made at |made|. */
static void hs_retry_mac(uint8_t mac[32], const uint8_t secret[RUDP_SECRET_LEN],
                         const rudp_addr *from, uint64_t dcid, rudp_tstamp made) {
    uint8_t msg[5 + 8 + 8 + 4 + sizeof(from->bytes)];
    size_t n = 0, alen = from->len < sizeof(from->bytes) ? from->len : sizeof(from->bytes);
    hs_put(msg, &n, "retry", 5);
    hs_put64(msg, &n, made);
    hs_put64(msg, &n, dcid);
    rudp_put32(msg + n, (uint32_t)alen);
    n += 4;
    hs_put(msg, &n, from->bytes, alen);
    rudp_hmac(mac, secret, RUDP_SECRET_LEN, msg, n);
}

size_t rudp_hs_retry_token(uint8_t out[RUDP_RETRY_TOKEN_LEN],
                           const uint8_t secret[RUDP_SECRET_LEN], const rudp_addr *from,
                           uint64_t dcid, rudp_tstamp now) {
    uint8_t mac[32];
    hs_retry_mac(mac, secret, from, dcid, now);
    rudp_put64(out, now);
    memcpy(out + 8, mac, RUDP_RETRY_TOKEN_LEN - 8);
    return RUDP_RETRY_TOKEN_LEN;
}

bool rudp_hs_retry_token_ok(const uint8_t *tok, size_t len,
                            const uint8_t secret[RUDP_SECRET_LEN], const rudp_addr *from,
                            uint64_t dcid, rudp_tstamp now) {
    uint8_t mac[32];
    if (len != RUDP_RETRY_TOKEN_LEN)
        return false;
    rudp_tstamp made = rudp_get64(tok);
    if (made > now || now - made > RUDP_RETRY_TOKEN_LIFE)
        return false;
    hs_retry_mac(mac, secret, from, dcid, made);
    return rudp_ct_equal(mac, tok + 8, RUDP_RETRY_TOKEN_LEN - 8);
}

/* Sets |a| up with the ticket key of |secret| (one key: a ticket's nonce
 * is random, not a packet number).  Returns false on NOMEM. */
static bool hs_ticket_aead(rudp_aead *a, const uint8_t secret[RUDP_SECRET_LEN]) {
    uint8_t key[RUDP_SECRET_LEN];
    rudp_hkdf_expand(key, sizeof(key), secret, (const uint8_t *)"ticket", 6);
    bool ok = rudp_aead_init_single(a, key);
    memset(key, 0, sizeof(key));
    return ok;
}

/* A ticket blob: u64 n (the nonce), then psk and the u64 wall clock it
 * was made at, sealed, then the tag.  The associated data is n and the
 * client's IP address: the ticket opens only for the address it was given
 * to, as a TCP Fast Open cookie. */
#define HS_TICKET_BODY (RUDP_SECRET_LEN + 8)

/* Writes the associated data of ticket |blob| for |client| into |ad|:
 * n, then the IP address of a sockaddr_in or sockaddr_in6 (not the port,
 * which NATs change), else every byte of |client|.  Returns its length. */
static size_t hs_ticket_ad(uint8_t *ad, const uint8_t *blob, const rudp_addr *client) {
    sa_family_t family = 0;
    size_t len = client->len < sizeof(client->bytes) ? client->len : sizeof(client->bytes);
    const uint8_t *ip = client->bytes;
    if (len >= sizeof(family))
        memcpy(&family, client->bytes, sizeof(family));
    if (family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        ip += offsetof(struct sockaddr_in, sin_addr);
        len = 4;
    } else if (family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        ip += offsetof(struct sockaddr_in6, sin6_addr);
        len = 16;
    }
    memcpy(ad, blob, 8);
    memcpy(ad + 8, ip, len);
    return 8 + len;
}

bool rudp_hs_ticket_make(rudp_ticket *t, const uint8_t secret[RUDP_SECRET_LEN],
                         uint64_t wall_ms, const rudp_addr *client) {
    rudp_aead a;
    uint8_t *b = t->blob, ad[8 + sizeof(client->bytes)];
    if (!hs_ticket_aead(&a, secret))
        return false;
    rudp_random(t->psk, sizeof(t->psk));
    rudp_random(b, 8);
    memcpy(b + 8, t->psk, RUDP_SECRET_LEN);
    rudp_put64(b + 8 + RUDP_SECRET_LEN, wall_ms);
    size_t adlen = hs_ticket_ad(ad, b, client);
    ssize_t n = rudp_aead_seal(&a, rudp_get64(b), ad, adlen, b + 8, HS_TICKET_BODY);
    rudp_aead_free(&a);
    return n == HS_TICKET_BODY + RUDP_TAG_LEN;
}

bool rudp_hs_ticket_open(uint8_t psk[RUDP_SECRET_LEN], const uint8_t *blob, size_t len,
                         const uint8_t secret[RUDP_SECRET_LEN], uint64_t wall_ms,
                         const rudp_addr *client) {
    uint8_t b[RUDP_TICKET_LEN], ad[8 + sizeof(client->bytes)];
    rudp_aead a;
    if (len != RUDP_TICKET_LEN || wall_ms == 0 || !hs_ticket_aead(&a, secret))
        return false;
    memcpy(b, blob, len);
    size_t adlen = hs_ticket_ad(ad, b, client);
    ssize_t n = rudp_aead_open(&a, rudp_get64(b), ad, adlen, b + 8, len - 8);
    rudp_aead_free(&a);
    uint64_t made = rudp_get64(b + 8 + RUDP_SECRET_LEN);
    bool ok = n == HS_TICKET_BODY && made <= wall_ms + RUDP_TICKET_SKEW_MS &&
              wall_ms - made <= RUDP_TICKET_LIFE_MS;
    if (ok)
        memcpy(psk, b + 8, RUDP_SECRET_LEN);
    memset(b, 0, sizeof(b));
    return ok;
}

void rudp_hs_retry_tag(uint8_t tag[RUDP_TAG_LEN], const uint8_t early[RUDP_SECRET_LEN],
                       const uint8_t share[RUDP_SHARE_LEN], const uint8_t *retry,
                       size_t len) {
    uint8_t info[5 + RUDP_SHARE_LEN], key[RUDP_SECRET_LEN], mac[32];
    size_t n = 0;
    hs_put(info, &n, "retry", 5);
    hs_put(info, &n, share, RUDP_SHARE_LEN);
    rudp_hkdf_expand(key, sizeof(key), early, info, n);
    rudp_hmac(mac, key, sizeof(key), retry, len);
    memcpy(tag, mac, RUDP_TAG_LEN);
}
