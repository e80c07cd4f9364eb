/*
 * test_crypto.c — engine/crypto.c against the published test vectors:
 * AES-256-GCM (test case 16 of the GCM specification, McGrew and Viega),
 * X25519 (RFC 7748 §5.2 and the Diffie-Hellman example of §6.1),
 * HKDF-SHA-256 (RFC 5869 test case 1), and the properties the protocol
 * relies on: a flipped bit anywhere, other associated data or another
 * packet number fails to open, the nonce differs per packet, the key
 * changes every 2^20 packet numbers, and an opener makes no key for a
 * packet number more than an epoch from the newest it opened.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "crypto.h"
#include "rudp/rudp.h"

/* Decodes the hex string |hex| (spaces and colons ignored) into |out|;
 * returns the byte count. */
static size_t unhex(uint8_t *out, const char *hex) {
    size_t n = 0;
    int half = -1;
    for (; *hex; hex++) {
        int v = *hex >= '0' && *hex <= '9'   ? *hex - '0'
                : *hex >= 'a' && *hex <= 'f' ? *hex - 'a' + 10
                                             : -1;
        if (v < 0)
            continue;
        if (half < 0) {
            half = v;
        } else {
            out[n++] = (uint8_t)(half << 4 | v);
            half = -1;
        }
    }
    return n;
}

static const char *sunscreen =
    "Ladies and Gentlemen of the class of '99: If I could offer you "
    "only one tip for the future, sunscreen would be it.";

/* An AEAD whose key and IV are set directly (the vector's, with pn 0). */
static void aead_with(rudp_aead *a, const char *key, const char *iv) {
    uint8_t k[32], n[12];
    cr_assert_eq(unhex(k, key), 32);
    cr_assert_eq(unhex(n, iv), 12);
    cr_assert(rudp_aead_init_raw(a, k, n));
}

Test(crypto, aes_256_gcm_spec_test_case_16) {
    rudp_aead a;
    uint8_t ad[20], p[80], plain[64], want[80];
    size_t len =
        unhex(plain, "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
                     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
    aead_with(&a, "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
              "cafebabefacedbaddecaf888");
    cr_assert_eq(unhex(ad, "feedfacedeadbeeffeedfacedeadbeefabaddad2"), sizeof(ad));
    memcpy(p, plain, len);
    cr_assert_eq(rudp_aead_seal(&a, 0, ad, sizeof(ad), p, len), (ssize_t)(len + 16));
    size_t wlen =
        unhex(want, "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
                    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
                    "76fc6ece0f4e1768cddf8853bb2d551b");
    cr_assert_eq(wlen, len + 16);
    cr_assert_arr_eq(p, want, wlen);
    cr_assert_eq(rudp_aead_open(&a, 0, ad, sizeof(ad), p, wlen), (ssize_t)len);
    cr_assert_arr_eq(p, plain, len);
    rudp_aead_free(&a);
}

/* Seals a fixed message as packet |pn| with |a| into |p|; returns its length. */
static size_t seal_msg(rudp_aead *a, uint64_t pn, uint8_t *p) {
    memcpy(p, sunscreen, 40);
    ssize_t n = rudp_aead_seal(a, pn, (const uint8_t *)"hdr", 3, p, 40);
    cr_assert_eq(n, 56);
    return (size_t)n;
}

Test(crypto, aead_rejects_every_change) {
    uint8_t secret[32] = {7}, p[64], q[64];
    rudp_aead a;
    cr_assert(rudp_aead_init(&a, secret));
    size_t n = seal_msg(&a, 42, p);
    for (size_t bit = 0; bit < n * 8; bit++) { /* any flipped bit */
        memcpy(q, p, n);
        q[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        cr_assert_eq(rudp_aead_open(&a, 42, (const uint8_t *)"hdr", 3, q, n), RUDP_ERR_AUTH,
                     "bit %zu", bit);
    }
    memcpy(q, p, n);
    cr_assert_eq(rudp_aead_open(&a, 43, (const uint8_t *)"hdr", 3, q, n), RUDP_ERR_AUTH);
    memcpy(q, p, n);
    cr_assert_eq(rudp_aead_open(&a, 42, (const uint8_t *)"hds", 3, q, n), RUDP_ERR_AUTH);
    cr_assert_eq(rudp_aead_open(&a, 42, NULL, 0, q, 15),
                 RUDP_ERR_AUTH); /* shorter than a tag */
    memcpy(q, p, n);
    cr_assert_eq(rudp_aead_open(&a, 42, (const uint8_t *)"hdr", 3, q, n), 40);
    cr_assert_arr_eq(q, sunscreen, 40);
    rudp_aead_free(&a);
}

Test(crypto, aead_other_secret_fails_and_nonces_differ) {
    uint8_t s1[32] = {1}, s2[32] = {2}, p[64], r[64];
    rudp_aead a, b;
    cr_assert(rudp_aead_init(&a, s1));
    cr_assert(rudp_aead_init(&b, s2));
    size_t n = seal_msg(&a, 1, p);
    cr_assert_eq(rudp_aead_open(&b, 1, (const uint8_t *)"hdr", 3, p, n), RUDP_ERR_AUTH);
    seal_msg(&a, 1, p);
    seal_msg(&a, 2, r);
    cr_assert(memcmp(p, r, n) != 0, "two packet numbers, one ciphertext");
    rudp_aead_free(&a);
    rudp_aead_free(&b);
}

Test(crypto, x25519_rfc7748_vectors) {
    uint8_t k[32], u[32], out[32], want[32];
    unhex(k, "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");
    unhex(u, "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c");
    unhex(want, "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
    cr_assert(rudp_x25519(out, k, u));
    cr_assert_arr_eq(out, want, 32);

    uint8_t a[32], bpub[32], b[32], apub[32], s1[32], s2[32];
    unhex(a, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    unhex(apub, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    unhex(b, "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    unhex(bpub, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    unhex(want, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    cr_assert(rudp_x25519(s1, a, bpub));
    cr_assert(rudp_x25519(s2, b, apub));
    cr_assert_arr_eq(s1, want, 32);
    cr_assert_arr_eq(s2, want, 32);
}

Test(crypto, x25519_rejects_small_order_peer) {
    uint8_t priv[32] = {9}, zero[32] = {0}, out[32];
    cr_assert_not(rudp_x25519(out, priv, zero), "an all-zero shared secret must fail");
}

Test(crypto, keypairs_agree) {
    rudp_keypair a, b;
    uint8_t s1[32], s2[32];
    cr_assert(rudp_keypair_new(&a));
    cr_assert(rudp_keypair_new(&b));
    cr_assert(memcmp(a.pub, b.pub, 32) != 0);
    cr_assert(rudp_x25519(s1, a.priv, b.pub));
    cr_assert(rudp_x25519(s2, b.priv, a.pub));
    cr_assert_arr_eq(s1, s2, 32);
}

Test(crypto, hkdf_rfc5869_case1) {
    uint8_t ikm[22], salt[13], info[10], prk[32], okm[42], want[42];
    memset(ikm, 0x0b, sizeof(ikm));
    unhex(salt, "000102030405060708090a0b0c");
    unhex(info, "f0f1f2f3f4f5f6f7f8f9");
    rudp_hkdf_extract(prk, salt, sizeof(salt), ikm, sizeof(ikm));
    unhex(want, "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5");
    cr_assert_arr_eq(prk, want, 32);
    rudp_hkdf_expand(okm, sizeof(okm), prk, info, sizeof(info));
    unhex(want, "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
                "34007208d5b887185865");
    cr_assert_arr_eq(okm, want, 42);
}

/* A source of random bytes that counts up: proves the hook is used. */
static void counting_random(void *ctx, uint8_t *buf, size_t len) {
    uint8_t *next = ctx;
    for (size_t i = 0; i < len; i++)
        buf[i] = (*next)++;
}

Test(crypto, random_hook_replaces_the_drbg) {
    uint8_t next = 0, buf[4];
    rudp_crypto_set_random(counting_random, &next);
    rudp_random(buf, sizeof(buf));
    rudp_crypto_set_random(NULL, NULL);
    cr_assert_eq(buf[0], 0);
    cr_assert_eq(buf[3], 3);
    rudp_random(buf, sizeof(buf)); /* the DRBG again: the counter stays */
    cr_assert_eq(next, 4);
}

#define EPOCH (1ull << RUDP_AEAD_EPOCH_BITS)

Test(crypto, aead_key_changes_each_epoch) {
    /* The last packet of an epoch and the first of the next open under
     * their own keys: sealed by another AEAD of the same secret whose keys
     * are all epoch 0's (init_single), they do not open. */
    uint8_t secret[32] = {9}, p[64];
    rudp_aead tx, rx, one;
    cr_assert(rudp_aead_init(&tx, secret));
    cr_assert(rudp_aead_init(&rx, secret));
    cr_assert(rudp_aead_init_single(&one, secret));
    uint64_t pns[] = {0, EPOCH - 1, EPOCH, 2 * EPOCH + 5};
    for (size_t i = 0; i < sizeof(pns) / sizeof(pns[0]); i++) {
        size_t n = seal_msg(&tx, pns[i], p);
        cr_assert_eq(rudp_aead_open(&rx, pns[i], (const uint8_t *)"hdr", 3, p, n), 40,
                     "packet %llu", (unsigned long long)pns[i]);
        n = seal_msg(&one, pns[i], p);
        ssize_t want = pns[i] < EPOCH ? 40 : RUDP_ERR_AUTH;
        cr_assert_eq(rudp_aead_open(&rx, pns[i], (const uint8_t *)"hdr", 3, p, n), want,
                     "packet %llu under epoch 0's key", (unsigned long long)pns[i]);
    }
    rudp_aead_free(&tx);
    rudp_aead_free(&rx);
    rudp_aead_free(&one);
}

Test(crypto, aead_opens_only_near_the_newest_epoch) {
    /* A forger picks the packet number: an opener whose newest epoch is e
     * makes keys for e - 1, e and e + 1 only, and anything else fails
     * without a key being derived. */
    uint8_t secret[32] = {5}, p[64];
    rudp_aead tx, rx;
    cr_assert(rudp_aead_init(&tx, secret));
    cr_assert(rudp_aead_init(&rx, secret));
    size_t n = seal_msg(&tx, 3 * EPOCH, p);
    cr_assert_eq(rudp_aead_open(&rx, 3 * EPOCH, (const uint8_t *)"hdr", 3, p, n),
                 RUDP_ERR_AUTH, "epoch 3 opened while the newest was 0");
    n = seal_msg(&tx, EPOCH + 1, p);
    cr_assert_eq(rudp_aead_open(&rx, EPOCH + 1, (const uint8_t *)"hdr", 3, p, n), 40);
    n = seal_msg(&tx, 2 * EPOCH, p);
    cr_assert_eq(rudp_aead_open(&rx, 2 * EPOCH, (const uint8_t *)"hdr", 3, p, n), 40);
    n = seal_msg(&tx, EPOCH + 7, p); /* one behind the newest: still opens */
    cr_assert_eq(rudp_aead_open(&rx, EPOCH + 7, (const uint8_t *)"hdr", 3, p, n), 40);
    n = seal_msg(&tx, 5, p); /* two behind */
    cr_assert_eq(rudp_aead_open(&rx, 5, (const uint8_t *)"hdr", 3, p, n), RUDP_ERR_AUTH);
    rudp_aead_free(&tx);
    rudp_aead_free(&rx);
}
