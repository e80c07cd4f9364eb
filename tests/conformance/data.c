/*
 * data.c — the bytes conformance-tool moves and how it checks them: a
 * deterministic pattern (byte i depends only on i), sha256 (FIPS 180-4)
 * over what arrives, a sender and a receiver with deadlines on progress, and
 * a poll-driven echo pump that writes and reads on one thread so that an
 * echo of any size never deadlocks on full buffers.
 *
 * Results are printed as counts and digests (the first 16 hex digits), plus
 * "intact" when the digest is the pattern's: counts are exact outcomes, never
 * the size of a kernel buffer or of one read.
 */
#include "tool.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------------------ sha256 */

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

/* Processes one 64-byte block into the state |h|. */
static void sha_block(uint32_t h[8], const uint8_t *p) {
    uint32_t w[64], s[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(s, h, sizeof s);
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = s[7] + (ROR(s[4], 6) ^ ROR(s[4], 11) ^ ROR(s[4], 25)) +
                      ((s[4] & s[5]) ^ (~s[4] & s[6])) + K[i] + w[i];
        uint32_t t2 = (ROR(s[0], 2) ^ ROR(s[0], 13) ^ ROR(s[0], 22)) +
                      ((s[0] & s[1]) ^ (s[0] & s[2]) ^ (s[1] & s[2]));
        memmove(s + 1, s, 7 * sizeof s[0]);
        s[4] += t1;
        s[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++)
        h[i] += s[i];
}

/* Starts a digest. */
void sha_init(sha_ctx *c) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, iv, sizeof iv);
    c->len = 0;
}

/* Adds |n| bytes of |data| to the digest. */
void sha_update(sha_ctx *c, const void *data, size_t n) {
    const uint8_t *p = data;
    while (n > 0) {
        size_t used = c->len % 64, take = 64 - used < n ? 64 - used : n;
        memcpy(c->buf + used, p, take);
        c->len += take;
        p += take;
        n -= take;
        if (c->len % 64 == 0)
            sha_block(c->h, c->buf);
    }
}

/* Finishes the digest; writes its first 16 hex digits to |hex|. */
void sha_hex(sha_ctx *c, char hex[17]) {
    uint64_t bits = c->len * 8;
    uint8_t pad = 0x80, zero = 0, lenb[8];
    sha_update(c, &pad, 1);
    while (c->len % 64 != 56)
        sha_update(c, &zero, 1);
    for (int i = 0; i < 8; i++)
        lenb[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha_update(c, lenb, 8);
    snprintf(hex, 17, "%08x%08x", c->h[0], c->h[1]);
}

/* ----------------------------------------------------------------- pattern */

/* Fills |buf| with |n| bytes of the pattern from stream offset |off|. */
void pat_fill(uint8_t *buf, uint64_t off, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint64_t x = (off + i) * 0x9E3779B97F4A7C15ull;
        buf[i] = (uint8_t)((x >> 29) ^ ((off + i) >> 13));
    }
}

/* Returns the digest (16 hex digits) of the first |n| pattern bytes. */
const char *pat_hex(uint64_t n) {
    static char hex[17];
    uint8_t buf[65536];
    sha_ctx c;
    sha_init(&c);
    for (uint64_t off = 0; off < n; off += sizeof buf) {
        size_t k = n - off < sizeof buf ? (size_t)(n - off) : sizeof buf;
        pat_fill(buf, off, k);
        sha_update(&c, buf, k);
    }
    sha_hex(&c, hex);
    return hex;
}

/* ------------------------------------------------------------ send/receive */

/* Writes |n| pattern bytes to the blocking |fd|, each write waited for at
 * most STEP_MS.  Prints the failure, if any.  Returns 0 or -1. */
int send_pat(int fd, uint64_t n) {
    uint8_t buf[65536];
    for (uint64_t off = 0; off < n;) {
        size_t k = n - off < sizeof buf ? (size_t)(n - off) : sizeof buf;
        pat_fill(buf, off, k);
        if (!(poll_for(fd, POLLOUT, POLLOUT | POLLERR | POLLHUP, STEP_MS) & POLLOUT)) {
            T("send: not writable within %d ms", STEP_MS);
            return -1;
        }
        ssize_t w = send(fd, buf, k, MSG_DONTWAIT);
        if (w < 0 && errno == EAGAIN)
            continue;
        if (w <= 0) {
            T_res(w, errno, "send (while sending %llu bytes)", (unsigned long long)n);
            return -1;
        }
        off += (uint64_t)w;
    }
    return 0;
}

/* Reads |fd| to EOF (each read waited for at most |ms|) into a digest.
 * Returns the byte count; *err is 0 at EOF, the errno of a failed read, or
 * -1 when nothing came in time. */
uint64_t recv_eof_err(int fd, char hex[17], int ms, int *err) {
    uint8_t buf[65536];
    sha_ctx c;
    uint64_t total = 0;
    sha_init(&c);
    *err = -1;
    while (poll_for(fd, POLLIN, 0, ms)) {
        ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r < 0 && errno == EAGAIN)
            continue;
        if (r <= 0) {
            *err = r == 0 ? 0 : errno;
            break;
        }
        sha_update(&c, buf, (size_t)r);
        total += (uint64_t)r;
    }
    sha_hex(&c, hex);
    return total;
}

/* recv_eof_err without the error. */
uint64_t recv_eof(int fd, char hex[17], int ms) {
    int err;
    return recv_eof_err(fd, hex, ms, &err);
}

/* Reads |fd| to EOF and prints "recv<tag> to EOF -> N bytes sha=X", with
 * "intact" when the bytes are the pattern, or how the reading ended. */
void recv_report(int fd, const char *tag) {
    char hex[17];
    int err;
    uint64_t n = recv_eof_err(fd, hex, STEP_MS, &err);
    const char *intact = strcmp(hex, pat_hex(n)) == 0 ? " (pattern intact)" : "";
    if (err == 0)
        T("recv%s to EOF -> %llu bytes sha=%s%s", tag, (unsigned long long)n, hex, intact);
    else if (err > 0)
        T("recv%s -> -1 %s after %llu bytes sha=%s%s", tag, ename(err),
          (unsigned long long)n, hex, intact);
    else
        T("recv%s: no EOF within %d ms after %llu bytes", tag, STEP_MS,
          (unsigned long long)n);
}

/* One step of pump: writes what |fd| takes of the pattern from *sent
 * (half-closing once all |n| are written, if |half_close|) and reads what
 * arrived.  Returns 1 on progress, 0 without, -1 at EOF or on an error
 * (*err). */
static int pump_step(int fd, uint64_t n, bool half_close, uint64_t *sent, sha_ctx *c,
                     uint64_t *got, int *err) {
    uint8_t buf[65536];
    int progress = 0;
    if (*sent < n) {
        size_t k = n - *sent < sizeof buf ? (size_t)(n - *sent) : sizeof buf;
        pat_fill(buf, *sent, k);
        ssize_t w = send(fd, buf, k, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0 && (*sent += (uint64_t)w) == n && half_close)
            shutdown(fd, SHUT_WR);
        if (w < 0 && errno != EAGAIN)
            return *err = errno, -1;
        progress |= w > 0;
    }
    ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (r == 0)
        return *err = 0, -1;
    if (r < 0 && errno != EAGAIN)
        return *err = errno, -1;
    if (r > 0) {
        sha_update(c, buf, (size_t)r);
        *got += (uint64_t)r;
        progress = 1;
    }
    return progress;
}

/* Sends |n| pattern bytes on |fd| while reading the echo: with
 * |half_close| half-closes after the last byte and reads to EOF, else
 * stops once |n| bytes came back; gives up after STEP_MS without
 * progress.  Prints "echo<tag> N -> sent S, got M then <how>, sha=X". */
static void pump(int fd, uint64_t n, const char *tag, bool half_close) {
    sha_ctx c;
    uint64_t sent = 0, got = 0;
    int err = -1;
    int64_t last = now_ms();
    char hex[17];
    sha_init(&c);
    if (n == 0 && half_close)
        shutdown(fd, SHUT_WR);
    while (now_ms() - last < STEP_MS && (half_close || got < n)) {
        poll_for(fd, (short)(POLLIN | (sent < n ? POLLOUT : 0)), 0, STEP_MS);
        int st = pump_step(fd, n, half_close, &sent, &c, &got, &err);
        if (st < 0)
            break;
        if (st > 0)
            last = now_ms();
    }
    sha_hex(&c, hex);
    const char *how = err == 0   ? "EOF"
                      : err > 0  ? ename(err)
                      : got == n ? "done"
                                 : "stalled";
    T("echo%s %llu -> sent %llu, got %llu then %s, sha=%s%s", tag, (unsigned long long)n,
      (unsigned long long)sent, (unsigned long long)got, how, hex,
      strcmp(hex, pat_hex(n)) == 0 ? " (pattern intact)" : "");
}

/* pump with a half-close: the whole echo to EOF. */
void pump_echo(int fd, uint64_t n, const char *tag) {
    pump(fd, n, tag, true);
}

/* pump without a half-close: |n| bytes there and back, |fd| stays open. */
void pump_echo_open(int fd, uint64_t n, const char *tag) {
    pump(fd, n, tag, false);
}

/* Echoes exactly |n| bytes read on |fd|; prints "echoed N bytes" or how
 * it ended. */
void serve_n(int fd, uint64_t n) {
    uint8_t buf[65536];
    uint64_t total = 0;
    while (total < n && poll_for(fd, POLLIN, 0, 2 * STEP_MS)) {
        size_t want = n - total < sizeof buf ? (size_t)(n - total) : sizeof buf;
        ssize_t r = read(fd, buf, want);
        if (r <= 0 || write(fd, buf, (size_t)r) != r)
            break;
        total += (uint64_t)r;
    }
    T("echoed %llu of %llu bytes", (unsigned long long)total, (unsigned long long)n);
}

/* Echoes everything read on |fd| until EOF, then half-closes; prints
 * "echoed N bytes, then EOF" or how it ended. */
void serve_echo(int fd) {
    uint8_t buf[65536];
    uint64_t total = 0;
    for (;;) {
        if (!poll_for(fd, POLLIN, 0, 2 * STEP_MS)) {
            T("echo: nothing to read within %d ms after %llu bytes", 2 * STEP_MS,
              (unsigned long long)total);
            return;
        }
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0) {
            if (r == 0)
                shutdown(fd, SHUT_WR);
            T("echoed %llu bytes, then %s", (unsigned long long)total,
              r == 0 ? "EOF" : ename(errno));
            return;
        }
        for (ssize_t off = 0; off < r;) {
            ssize_t w = write(fd, buf + off, (size_t)(r - off));
            if (w <= 0) {
                T_res(w, errno, "echo: write after %llu bytes", (unsigned long long)total);
                return;
            }
            off += w;
        }
        total += (uint64_t)r;
    }
}
