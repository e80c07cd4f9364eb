/*
 * crypto.h — the primitives the protocol core uses (docs/PROTOCOL.md,
 * "Packet protection"): X25519, HKDF-SHA-256, HMAC-SHA-256, SHA-256 and
 * the AES-256-GCM AEAD, all from OpenSSL's libcrypto, linked into the
 * engine statically with hidden symbols (engine/meson.build) so that a
 * program with its own libcrypto never meets ours.  Nothing here is a
 * hand-written primitive: this file only names the calls and fixes their
 * sizes.  Internal to the engine.
 */
#ifndef RUDP_CRYPTO_H
#define RUDP_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RUDP_SECRET_LEN 32 /* HKDF secrets, PSK, AEAD keys */
#define RUDP_SHARE_LEN 32  /* an X25519 public key (a key share) */
#define RUDP_IV_LEN 12     /* an AEAD nonce */
#define RUDP_TAG_LEN 16    /* an AEAD tag */
#define RUDP_TOKEN_LEN 16  /* a stateless reset token */

/* Where the core's random bytes come from (rudp_crypto_set_random). */
typedef void (*rudp_random_fn)(void *ctx, uint8_t *buf, size_t len);

/* Makes libcrypto ready (once; thread-safe): no configuration file is read
 * and nothing is registered with atexit.  Returns true when it is. */
bool rudp_crypto_init(void);

/* Replaces the source of random bytes (the default is libcrypto's DRBG).
 * The simulator installs a seeded one so that runs repeat.  Not
 * thread-safe: call it before any session exists. */
void rudp_crypto_set_random(rudp_random_fn fn, void *ctx);

/* Fills |buf| with |len| random bytes from the current source. */
void rudp_random(uint8_t *buf, size_t len);

/* HMAC-SHA-256 of |msg| under |key| into |out|. */
void rudp_hmac(uint8_t out[32], const uint8_t *key, size_t klen, const uint8_t *msg,
               size_t mlen);

/* SHA-256 of |msg| into |out|. */
void rudp_sha256(uint8_t out[32], const uint8_t *msg, size_t len);

/* HKDF-Extract (RFC 5869 §2.2) with SHA-256. */
void rudp_hkdf_extract(uint8_t prk[32], const uint8_t *salt, size_t slen,
                       const uint8_t *ikm, size_t ilen);

/* HKDF-Expand (RFC 5869 §2.3) with SHA-256: |olen| (at most 255 * 32)
 * bytes from |prk| and |info| (at most 200 bytes) into |out|. */
void rudp_hkdf_expand(uint8_t *out, size_t olen, const uint8_t prk[32], const uint8_t *info,
                      size_t ilen);

/* Returns true when the |n| bytes at |a| and |b| are equal; the time taken
 * does not depend on where they differ. */
bool rudp_ct_equal(const void *a, const void *b, size_t n);

/* An X25519 key pair. */
typedef struct rudp_keypair {
    uint8_t priv[RUDP_SECRET_LEN];
    uint8_t pub[RUDP_SHARE_LEN];
} rudp_keypair;

/* Makes a key pair from fresh random bytes.  Returns true on success. */
bool rudp_keypair_new(rudp_keypair *kp);

/* X25519(priv, peer) into |out|.  Returns false when libcrypto fails or the
 * result is all zeros (a peer key of small order: RFC 7748 §6.1). */
bool rudp_x25519(uint8_t out[32], const uint8_t priv[32], const uint8_t peer[32]);

/* Packet numbers per key: packet pn is sealed under the key of epoch
 * pn >> RUDP_AEAD_EPOCH_BITS. */
#define RUDP_AEAD_EPOCH_BITS 20
#define RUDP_AEAD_SLOTS 3 /* keys kept: an epoch and the ones on either side */

/* One epoch's key, set into a cipher context. */
typedef struct rudp_aead_key {
    void *ctx; /* EVP_CIPHER_CTX, or NULL */
    uint64_t epoch;
    bool ready;
} rudp_aead_key;

/* One direction's packet protection: AES-256-GCM under keys expanded from
 * a secret, one per epoch of 2^20 packet numbers (HKDF-Expand(secret,
 * "key" | epoch)), and a 12-byte IV (HKDF-Expand(secret, "iv")); the nonce
 * of packet |pn| is the IV with pn XORed into its last 8 bytes (as RFC 9001
 * §5.3).  Init it once, then seal or open any number of packets. */
typedef struct rudp_aead {
    uint8_t secret[RUDP_SECRET_LEN];
    uint8_t iv[RUDP_IV_LEN];
    rudp_aead_key keys[RUDP_AEAD_SLOTS]; /* epoch e in keys[e % RUDP_AEAD_SLOTS] */
    uint64_t newest;                     /* the newest epoch sealed or opened */
    bool epochs; /* false: one key for every packet number (init_raw) */
    bool ready;
} rudp_aead;

/* Sets |a| up from |secret|.  Returns true, or false on NOMEM (|a| is then
 * not ready and may still be freed). */
bool rudp_aead_init(rudp_aead *a, const uint8_t secret[RUDP_SECRET_LEN]);

/* As rudp_aead_init, but with epoch 0's key for every number: for nonces
 * that are random, not packet numbers (resumption tickets). */
bool rudp_aead_init_single(rudp_aead *a, const uint8_t secret[RUDP_SECRET_LEN]);

/* Sets |a| up with one key and an IV given as they are, for every packet
 * number (test vectors). */
bool rudp_aead_init_raw(rudp_aead *a, const uint8_t key[RUDP_SECRET_LEN],
                        const uint8_t iv[RUDP_IV_LEN]);

/* Frees the cipher context and wipes the key. */
void rudp_aead_free(rudp_aead *a);

/* Encrypts the |len| bytes at |p| in place and writes the tag after them,
 * authenticating |ad| too.  |p| must have room for len + RUDP_TAG_LEN.
 * Returns len + RUDP_TAG_LEN, or RUDP_ERR_INTERNAL. */
ssize_t rudp_aead_seal(rudp_aead *a, uint64_t pn, const uint8_t *ad, size_t adlen,
                       uint8_t *p, size_t len);

/* Checks and decrypts in place the |len| bytes at |p| (ciphertext and tag)
 * with |ad|.  Returns the plaintext length (len - RUDP_TAG_LEN), or
 * RUDP_ERR_AUTH (forged, corrupted or under other keys: |p| is then
 * garbage). */
ssize_t rudp_aead_open(rudp_aead *a, uint64_t pn, const uint8_t *ad, size_t adlen,
                       uint8_t *p, size_t len);

#endif
