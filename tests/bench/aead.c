/*
 * aead.c — rudp-bench-aead: how fast engine/crypto.c seals packets, one
 * core, for the packet sizes the protocol uses (1200 and 1472: Internet
 * paths; 8952: jumbo frames; 65000: loopback), next to OpenSSL's
 * ChaCha20-Poly1305, the other candidate and protocol version 2's AEAD
 * (docs/BENCHMARKS.md "Packet protection").  Each figure is the best of three half-second
 * runs.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "crypto.h"

static uint8_t buf[65536 + 64];

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Returns Gbit/s sealing |len|-byte packets with rudp_aead for 0.5 s. */
static double rate_rudp(size_t len) {
    uint8_t secret[32] = {1};
    rudp_aead a;
    uint64_t pn = 0, bytes = 0;
    rudp_aead_init(&a, secret);
    double t0 = now_s(), t;
    while ((t = now_s()) - t0 < 0.5)
        for (int i = 0; i < 32; i++, bytes += len)
            rudp_aead_seal(&a, pn++, buf, 18, buf + 18, len);
    rudp_aead_free(&a);
    return (double)bytes * 8 / (t - t0) / 1e9;
}

/* The same with OpenSSL's ChaCha20-Poly1305 through EVP. */
static double rate_chacha(size_t len) {
    uint8_t key[32] = {1}, nonce[12] = {0}, tag[16];
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    uint64_t pn = 0, bytes = 0;
    int n;
    EVP_EncryptInit_ex(c, EVP_chacha20_poly1305(), NULL, key, NULL);
    double t0 = now_s(), t;
    while ((t = now_s()) - t0 < 0.5)
        for (int i = 0; i < 32; i++, bytes += len) {
            memcpy(nonce + 4, &pn, 8);
            pn++;
            EVP_EncryptInit_ex(c, NULL, NULL, NULL, nonce);
            EVP_EncryptUpdate(c, NULL, &n, buf, 18);
            EVP_EncryptUpdate(c, buf + 18, &n, buf + 18, (int)len);
            EVP_EncryptFinal_ex(c, buf + 18 + n, &n);
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, tag);
        }
    EVP_CIPHER_CTX_free(c);
    return (double)bytes * 8 / (t - t0) / 1e9;
}

/* Returns the best of three runs of |fn|. */
static double best(double (*fn)(size_t), size_t len) {
    double b = 0;
    for (int i = 0; i < 3; i++) {
        double r = fn(len);
        b = r > b ? r : b;
    }
    return b;
}

int main(void) {
    static const size_t sizes[] = {1200, 1472, 8952, 65000};
    rudp_crypto_init();
    printf("%-8s %-28s %-28s\n", "bytes", "aes-256-gcm (rudp)",
           "chacha20-poly1305 (openssl)");
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        printf("%-8zu %-28.2f %-28.2f\n", sizes[i], best(rate_rudp, sizes[i]),
               best(rate_chacha, sizes[i]));
    return 0;
}
