/*
 * crypto.c — the protocol core's primitives, from OpenSSL's libcrypto.
 *
 * The AEAD is AES-256-GCM (protocol version 3; version 2 used
 * ChaCha20-Poly1305).  On this project's machines OpenSSL's AES-256-GCM,
 * with AES-NI and VAES, seals about twice as fast as its ChaCha20-Poly1305
 * at 1,472-byte packets and 1.5 times at 64 KiB (docs/BENCHMARKS.md
 * "Packet protection").  One GCM key may seal only so many packets (RFC
 * 9001 §6.6 puts the limit at 2^23 for QUIC's packets; the bound falls as
 * packets grow, and ours reach 64 KiB): so the key changes every 2^20
 * packet numbers, eight times sooner, each epoch's key derived from the
 * direction's secret, and nothing needs to be said on the wire, since the
 * packet number is in the clear.  A receiver keeps the keys of the newest
 * epoch that opened and the ones on either side of it, and makes no key
 * for a packet number further away.  GCM's integrity limit (2^52
 * forgeries) is far beyond what a session lets through.
 *
 * HKDF (RFC 5869) is written out over HMAC-SHA-256 in a few lines: it is a
 * construction, not a primitive.  X25519 (RFC 7748) goes through EVP_PKEY.
 *
 * libcrypto lives inside programs that may have their own (curl, nginx,
 * sshd): engine/meson.build links the static archive and hides its symbols,
 * and rudp_crypto_init keeps it away from the process: no openssl.cnf (a
 * configuration could load providers built for the program's copy), no
 * atexit handler (the exit flush still seals packets while exit handlers
 * run).
 */
#include "crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <string.h>

#include "rudp/rudp.h"

static pthread_once_t crypto_once = PTHREAD_ONCE_INIT;
static bool crypto_ok;
static rudp_random_fn random_fn;
static void *random_ctx;

static void crypto_init_once(void) {
    crypto_ok = OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT | OPENSSL_INIT_NO_LOAD_CONFIG,
                                    NULL) == 1;
}

bool rudp_crypto_init(void) {
    pthread_once(&crypto_once, crypto_init_once);
    return crypto_ok;
}

void rudp_crypto_set_random(rudp_random_fn fn, void *ctx) {
    random_fn = fn;
    random_ctx = ctx;
}

void rudp_random(uint8_t *buf, size_t len) {
    if (random_fn) {
        random_fn(random_ctx, buf, len);
        return;
    }
    rudp_crypto_init();
    if (RAND_bytes(buf, (int)len) != 1)
        OPENSSL_cleanse(buf, len); /* never reached with a working DRBG */
}

/* --- hashes and HKDF --- */

void rudp_hmac(uint8_t out[32], const uint8_t *key, size_t klen, const uint8_t *msg,
               size_t mlen) {
    unsigned int olen = 32;
    rudp_crypto_init();
    if (!HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &olen))
        memset(out, 0, 32);
}

void rudp_sha256(uint8_t out[32], const uint8_t *msg, size_t len) {
    rudp_crypto_init();
    if (EVP_Digest(msg, len, out, NULL, EVP_sha256(), NULL) != 1)
        memset(out, 0, 32);
}

void rudp_hkdf_extract(uint8_t prk[32], const uint8_t *salt, size_t slen,
                       const uint8_t *ikm, size_t ilen) {
    static const uint8_t zeros[32];
    if (slen == 0) { /* RFC 5869: an absent salt is HashLen zeros */
        salt = zeros;
        slen = sizeof(zeros);
    }
    rudp_hmac(prk, salt, slen, ikm, ilen);
}

void rudp_hkdf_expand(uint8_t *out, size_t olen, const uint8_t prk[32], const uint8_t *info,
                      size_t ilen) {
    uint8_t t[32], msg[32 + 200 + 1];
    size_t tlen = 0;
    if (ilen > 200)
        ilen = 200;
    for (uint8_t i = 1; olen > 0; i++) {
        memcpy(msg, t, tlen);
        memcpy(msg + tlen, info, ilen);
        msg[tlen + ilen] = i;
        rudp_hmac(t, prk, 32, msg, tlen + ilen + 1);
        tlen = 32;
        size_t n = olen < 32 ? olen : 32;
        memcpy(out, t, n);
        out += n;
        olen -= n;
    }
    OPENSSL_cleanse(t, sizeof(t));
    OPENSSL_cleanse(msg, sizeof(msg));
}

bool rudp_ct_equal(const void *a, const void *b, size_t n) {
    return CRYPTO_memcmp(a, b, n) == 0;
}

/* --- X25519 --- */

bool rudp_keypair_new(rudp_keypair *kp) {
    rudp_random(kp->priv, sizeof(kp->priv));
    rudp_crypto_init();
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, kp->priv, 32);
    size_t len = sizeof(kp->pub);
    bool ok = k && EVP_PKEY_get_raw_public_key(k, kp->pub, &len) == 1 && len == 32;
    EVP_PKEY_free(k);
    return ok;
}

bool rudp_x25519(uint8_t out[32], const uint8_t priv[32], const uint8_t peer[32]) {
    static const uint8_t zeros[32];
    rudp_crypto_init();
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
    EVP_PKEY *p = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, 32);
    EVP_PKEY_CTX *c = k && p ? EVP_PKEY_CTX_new(k, NULL) : NULL;
    size_t len = 32;
    bool ok = c && EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_derive_set_peer(c, p) == 1 &&
              EVP_PKEY_derive(c, out, &len) == 1 && len == 32;
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(p);
    EVP_PKEY_free(k);
    return ok && !rudp_ct_equal(out, zeros, 32);
}

/* --- the AEAD --- */

/* Sets up key slot |k| with |key|.  Returns true on success. */
static bool aead_key_set(rudp_aead_key *k, const uint8_t key[RUDP_SECRET_LEN],
                         uint64_t epoch) {
    k->ready = false;
    if (!k->ctx && !(k->ctx = EVP_CIPHER_CTX_new()))
        return false;
    /* The key is set once; each packet sets only its nonce and direction
     * (keying the cipher for every packet cost 4 % of the sealing of
     * 1,472-byte packets). */
    k->ready = EVP_CipherInit_ex(k->ctx, EVP_aes_256_gcm(), NULL, key, NULL, 1) == 1;
    k->epoch = epoch;
    return k->ready;
}

/* Derives the key of |epoch|: HKDF-Expand(secret, "key" | epoch, u64 big
 * endian) into slot epoch % RUDP_AEAD_SLOTS.  Returns true on success. */
static bool aead_key_derive(rudp_aead *a, uint64_t epoch) {
    uint8_t info[3 + 8] = {'k', 'e', 'y'}, key[RUDP_SECRET_LEN];
    for (int i = 0; i < 8; i++)
        info[3 + i] = (uint8_t)(epoch >> (56 - 8 * i));
    rudp_hkdf_expand(key, sizeof(key), a->secret, info, sizeof(info));
    bool ok = aead_key_set(&a->keys[epoch % RUDP_AEAD_SLOTS], key, epoch);
    OPENSSL_cleanse(key, sizeof(key));
    return ok;
}

bool rudp_aead_init_raw(rudp_aead *a, const uint8_t key[RUDP_SECRET_LEN],
                        const uint8_t iv[RUDP_IV_LEN]) {
    memset(a, 0, sizeof(*a));
    memcpy(a->iv, iv, sizeof(a->iv));
    a->ready = rudp_crypto_init() && aead_key_set(&a->keys[0], key, 0);
    return a->ready;
}

bool rudp_aead_init(rudp_aead *a, const uint8_t secret[RUDP_SECRET_LEN]) {
    memset(a, 0, sizeof(*a));
    memcpy(a->secret, secret, sizeof(a->secret));
    rudp_hkdf_expand(a->iv, sizeof(a->iv), secret, (const uint8_t *)"iv", 2);
    a->epochs = true;
    a->ready = rudp_crypto_init() && aead_key_derive(a, 0);
    return a->ready;
}

bool rudp_aead_init_single(rudp_aead *a, const uint8_t secret[RUDP_SECRET_LEN]) {
    bool ok = rudp_aead_init(a, secret);
    a->epochs = false; /* epoch 0's key for every number */
    return ok;
}

void rudp_aead_free(rudp_aead *a) {
    for (int i = 0; i < RUDP_AEAD_SLOTS; i++)
        EVP_CIPHER_CTX_free(a->keys[i].ctx);
    OPENSSL_cleanse(a, sizeof(*a));
}

/* Writes the nonce of packet |pn| into |nonce|. */
static void aead_nonce(const rudp_aead *a, uint64_t pn, uint8_t nonce[RUDP_IV_LEN]) {
    memcpy(nonce, a->iv, RUDP_IV_LEN);
    for (int i = 0; i < 8; i++)
        nonce[RUDP_IV_LEN - 1 - i] ^= (uint8_t)(pn >> (8 * i));
}

/* Returns the cipher context for packet |pn|, deriving its epoch's key
 * when its slot holds another; NULL when that fails, or when opening
 * (|sealing| false) a packet whose epoch is more than one from the newest
 * that opened: no key is made for what a forger picks. */
static EVP_CIPHER_CTX *aead_ctx(rudp_aead *a, uint64_t pn, bool sealing) {
    uint64_t e = a->epochs ? pn >> RUDP_AEAD_EPOCH_BITS : 0;
    if (!sealing && (e + 1 < a->newest || e > a->newest + 1))
        return NULL;
    rudp_aead_key *k = &a->keys[e % RUDP_AEAD_SLOTS];
    if ((!k->ready || k->epoch != e) && !aead_key_derive(a, e))
        return NULL;
    return k->ctx;
}

/* Starts packet |pn| on |ctx|: nonce, direction (|enc|) and the associated
 * data.  Returns true on success. */
static bool aead_start(const rudp_aead *a, EVP_CIPHER_CTX *ctx, uint64_t pn,
                       const uint8_t *ad, size_t adlen, int enc) {
    uint8_t nonce[RUDP_IV_LEN];
    int n;
    aead_nonce(a, pn, nonce);
    return EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, enc) == 1 &&
           (adlen == 0 || EVP_CipherUpdate(ctx, NULL, &n, ad, (int)adlen) == 1);
}

ssize_t rudp_aead_seal(rudp_aead *a, uint64_t pn, const uint8_t *ad, size_t adlen,
                       uint8_t *p, size_t len) {
    int n = 0, fin = 0;
    EVP_CIPHER_CTX *ctx = a->ready ? aead_ctx(a, pn, true) : NULL;
    if (!ctx || !aead_start(a, ctx, pn, ad, adlen, 1) ||
        (len > 0 && EVP_CipherUpdate(ctx, p, &n, p, (int)len) != 1) ||
        EVP_CipherFinal_ex(ctx, p + n, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, RUDP_TAG_LEN, p + len) != 1)
        return RUDP_ERR_INTERNAL;
    if (a->epochs && (pn >> RUDP_AEAD_EPOCH_BITS) > a->newest)
        a->newest = pn >> RUDP_AEAD_EPOCH_BITS;
    return (ssize_t)(len + RUDP_TAG_LEN);
}

ssize_t rudp_aead_open(rudp_aead *a, uint64_t pn, const uint8_t *ad, size_t adlen,
                       uint8_t *p, size_t len) {
    int n = 0, fin = 0;
    if (len < RUDP_TAG_LEN)
        return RUDP_ERR_AUTH;
    size_t clen = len - RUDP_TAG_LEN;
    EVP_CIPHER_CTX *ctx = a->ready ? aead_ctx(a, pn, false) : NULL;
    if (!ctx || !aead_start(a, ctx, pn, ad, adlen, 0) ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, RUDP_TAG_LEN, p + clen) != 1 ||
        (clen > 0 && EVP_CipherUpdate(ctx, p, &n, p, (int)clen) != 1) ||
        EVP_CipherFinal_ex(ctx, p + n, &fin) != 1)
        return RUDP_ERR_AUTH;
    if (a->epochs && (pn >> RUDP_AEAD_EPOCH_BITS) > a->newest)
        a->newest = pn >> RUDP_AEAD_EPOCH_BITS;
    return (ssize_t)clen;
}
