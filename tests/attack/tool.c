/*
 * tool.c — rudp-attack-tool: genuine opening packets for the attack suite
 * (tests/attack/run.py), made by the real engine so that a forged source
 * address is the only lie in them.
 *
 * Without a pre-shared key the key of an INITIAL is public (docs/PROTOCOL.md
 * "Packet protection": it comes from the initial connection ID and the
 * client's key share, both in the clear), so anyone can make a valid one:
 * an attacker needs no secret to open sessions at a server from addresses
 * it does not own.  That is the threat "Address validation and
 * amplification" answers, and to test the answer the suite needs such
 * packets by the thousand, each with a fresh initial connection ID (the
 * clear header is the AEAD's associated data, so patching an ID into a
 * copy would only make a packet that fails to open).
 *
 *     rudp-attack-tool initials N OUTFILE HOST PORT [--retransmit K] [--stream]
 *
 * makes N client sessions toward HOST:PORT (the address is only stored in
 * the session; nothing is sent) and writes, for each, its first datagram
 * (the INITIAL with the SYN, padded to at least 1,200 bytes) and then K of
 * its retransmissions (the same session's INITIAL again after each probe
 * timeout, with a higher packet number), as records of a big-endian u16
 * length and the datagram.  It prints "ok N RECORDS BYTES" and exits 0;
 * 2 on a usage error, 1 when the engine refuses.
 *
 * With --stream each INITIAL also opens a stream and carries its first
 * bytes ("SPOOFED-STREAM"), which only a client with a pre-shared key may
 * do: an attacker's attempt to have a connection accepted from a spoofed
 * address in one datagram.  The engine makes it as a client whose key is
 * 32 zero bytes (its early secret is then the public one, docs/PROTOCOL.md
 * "Packet protection"); the tool opens it, clears the key flag and seals
 * it again, so it is a valid INITIAL without a key that carries DATA.
 *
 * With --ticket FILE (a ticket file of the shim's state directory: the
 * ticket's key, then its blob, 96 bytes) each session resumes with that
 * ticket, as the client it was given to would: its INITIAL is sealed under
 * the ticket's key and, with --stream, carries the stream's first bytes as
 * it may.  An attacker that is a client of the server gets a ticket for its
 * own address, and tries it from addresses it does not own.
 *
 *     rudp-attack-tool open-initials INFILE OUTFILE
 *
 * is what a passive observer can do with the INITIALs it captured (records
 * in INFILE, as above): open each with the public initial key, as a server
 * without a pre-shared key would (rudp_session_new_server decrypts the
 * datagram in place), and write the opened datagrams, clear header and
 * plaintext frames, to OUTFILE as records.  It prints "opened K of M"; the
 * suite then looks for the bytes a client wrote in that plaintext.
 *
 * The tool links the protocol core only (no runtime, no shim) and is never
 * run under the preload.
 */
#include "handshake.h"
#include "rudp/rudp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

#define DGRAM_MAX 65536
#define HDR_INITIAL 53 /* the clear header of an INITIAL without a token */
#define OFF_PN 10
#define OFF_SHARE 18
#define OFF_FLAGS 50
#define OFF_TOKEN_LEN 51
#define MAX_SESSIONS 1000000ul
#define MAX_RETRANSMIT 8ul

/* Returns 64 bits from the kernel's random source. */
static uint64_t random64(void) {
    uint64_t v = 0;
    while (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v)) {
    }
    return v;
}

/* Parses a decimal number no larger than |max| into |out|; returns false
 * when |s| is not one. */
static bool parse_count(const char *s, unsigned long max, unsigned long *out) {
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

/* Fills |a| with the IPv4 address HOST:PORT; returns false when it is not
 * one. */
static bool make_addr(const char *host, const char *port, rudp_addr *a) {
    struct sockaddr_in sin = {.sin_family = AF_INET};
    unsigned long p;
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1 || !parse_count(port, 65535, &p))
        return false;
    sin.sin_port = htons((uint16_t)p);
    memset(a, 0, sizeof(*a));
    a->len = sizeof(sin);
    memcpy(a->bytes, &sin, sizeof(sin));
    return true;
}

/* Writes one record (u16 length, then the datagram) to |out|.  Returns
 * false when the write fails. */
static bool put_record(FILE *out, const uint8_t *pkt, size_t len) {
    uint8_t hdr[2] = {(uint8_t)(len >> 8), (uint8_t)len};
    return fwrite(hdr, 1, 2, out) == 2 && fwrite(pkt, 1, len, out) == len;
}

/* Returns the big-endian u64 at |p|. */
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* Turns the INITIAL |pkt| (|len| bytes) of a client whose pre-shared key
 * is 32 zero bytes into one of a client without a key: opens it under the
 * public initial key, clears the key flag and seals it again.  Returns
 * false when it does not open or has a token. */
static bool strip_key_flag(uint8_t *pkt, size_t len) {
    rudp_settings none;
    uint8_t early[RUDP_SECRET_LEN];
    rudp_aead a = {0};
    rudp_settings_default(&none);
    rudp_hs_early(early, &none);
    if (len < HDR_INITIAL + RUDP_TAG_LEN || pkt[OFF_TOKEN_LEN] || pkt[OFF_TOKEN_LEN + 1] ||
        !rudp_hs_initial_aead(&a, early, get_u64(pkt + 2), pkt + OFF_SHARE))
        return false;
    uint64_t pn = get_u64(pkt + OFF_PN);
    size_t body = len - HDR_INITIAL;
    bool ok = rudp_aead_open(&a, pn, pkt, HDR_INITIAL, pkt + HDR_INITIAL, body) >= 0;
    pkt[OFF_FLAGS] = 0;
    ok = ok && rudp_aead_seal(&a, pn, pkt, HDR_INITIAL, pkt + HDR_INITIAL,
                              body - RUDP_TAG_LEN) == (ssize_t)body;
    rudp_aead_free(&a);
    return ok;
}

/* Opens a stream on |s| and queues its first bytes.  Returns false when
 * the engine refuses. */
static bool open_stream(rudp_session *s) {
    static const char hello[] = "SPOOFED-STREAM";
    uint64_t sid;
    return rudp_stream_open(s, &sid) == RUDP_OK &&
           rudp_stream_write(s, sid, hello, sizeof(hello) - 1) > 0;
}

/* Makes one client session toward |peer| and writes its INITIAL and |k|
 * retransmissions of it to |out| (with a stream: see the file comment;
 * |strip|: made under a zero key, turned into INITIALs without one),
 * adding the bytes written to *bytes.  Returns the number of records
 * written, or -1 when the engine or the write fails. */
static long emit_session(FILE *out, const rudp_settings *set, const rudp_addr *peer,
                         unsigned long k, bool stream, bool strip, uint64_t *bytes) {
    static uint8_t buf[DGRAM_MAX];
    rudp_tstamp now = RUDP_SEC(1);
    rudp_session *s = rudp_session_new_client(set, random64(), peer, now);
    long records = 0;
    if (!s || (stream && !open_stream(s))) {
        if (s)
            rudp_session_del(s);
        return -1;
    }
    while (records <= (long)k) {
        rudp_addr to;
        ssize_t n = rudp_session_write_pkt(s, buf, sizeof(buf), &to, now);
        if (n < 0 || (n > 0 && strip && !strip_key_flag(buf, (size_t)n)) ||
            (n > 0 && !put_record(out, buf, (size_t)n)))
            break;
        if (n > 0) {
            records++;
            *bytes += (uint64_t)n;
            continue;
        }
        rudp_tstamp next = rudp_session_deadline(s);
        if (next == RUDP_TSTAMP_NEVER)
            break;
        now = next > now ? next : now;
        rudp_session_handle_timeout(s, now);
    }
    rudp_session_del(s);
    return records == (long)k + 1 ? records : -1;
}

/* Reads the ticket file |path| (96 bytes: key, blob) into |set| and sets
 * its wall clock.  Returns false when it is not one. */
static bool read_ticket(const char *path, rudp_settings *set) {
    uint8_t buf[sizeof(set->ticket.psk) + RUDP_TICKET_LEN + 1];
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
    if (f)
        fclose(f);
    if (n != sizeof(buf) - 1)
        return false;
    memcpy(set->ticket.psk, buf, sizeof(set->ticket.psk));
    memcpy(set->ticket.blob, buf + sizeof(set->ticket.psk), RUDP_TICKET_LEN);
    set->ticket_set = true;
    set->wall_ms = (uint64_t)time(NULL) * 1000;
    return true;
}

/* Parses the options of initials (from argv[0]) into *k, *stream and
 * |set| (a ticket).  Returns false on an unknown or malformed option. */
static bool initials_options(int argc, char **argv, unsigned long *k, bool *stream,
                             rudp_settings *set) {
    for (int i = 0; i < argc; i++) {
        bool ok;
        if (strcmp(argv[i], "--stream") == 0)
            ok = *stream = true;
        else if (strcmp(argv[i], "--ticket") == 0)
            ok = i + 1 < argc && read_ticket(argv[++i], set);
        else
            ok = strcmp(argv[i], "--retransmit") == 0 && i + 1 < argc &&
                 parse_count(argv[++i], MAX_RETRANSMIT, k);
        if (!ok)
            return false;
    }
    return true;
}

/* initials N OUTFILE HOST PORT [--retransmit K] [--stream]: see the file
 * comment. */
static int cmd_initials(int argc, char **argv) {
    unsigned long n, k = 0, records = 0;
    uint64_t bytes = 0;
    bool stream = false;
    rudp_addr peer;
    rudp_settings set;
    rudp_settings_default(&set);
    if (argc < 4 || !parse_count(argv[0], MAX_SESSIONS, &n) ||
        !make_addr(argv[2], argv[3], &peer) ||
        !initials_options(argc - 4, argv + 4, &k, &stream, &set))
        return EXIT_USAGE;
    FILE *out = fopen(argv[1], "wb");
    if (!out) {
        perror(argv[1]);
        return EXIT_FAIL;
    }
    set.psk_set = stream && !set.ticket_set; /* a zero key: the public early secret */
    for (unsigned long i = 0; i < n; i++) {
        long r = emit_session(out, &set, &peer, k, stream, set.psk_set, &bytes);
        if (r < 0) {
            fprintf(stderr, "rudp-attack-tool: session %lu made no INITIAL\n", i);
            fclose(out);
            return EXIT_FAIL;
        }
        records += (unsigned long)r;
    }
    if (fclose(out) != 0) {
        perror(argv[1]);
        return EXIT_FAIL;
    }
    printf("ok %lu %lu %llu\n", n, records, (unsigned long long)bytes);
    return EXIT_OK;
}

/* Reads the next record of |in| into |buf| (at least 65536 bytes).
 * Returns its length, or -1 at the end of the file or a short record. */
static long get_record(FILE *in, uint8_t *buf) {
    uint8_t hdr[2];
    if (fread(hdr, 1, 2, in) != 2)
        return -1;
    size_t len = (size_t)hdr[0] << 8 | hdr[1];
    return fread(buf, 1, len, in) == len ? (long)len : -1;
}

/* Opens the INITIAL |pkt| (|len| bytes) in place as a server without a
 * pre-shared key would.  Returns true when it opened. */
static bool open_initial(const rudp_settings *set, uint8_t *pkt, size_t len) {
    rudp_addr from;
    rudp_reply reply;
    int err;
    make_addr("192.0.2.1", "1", &from);
    rudp_session *s = rudp_session_new_server(set, random64(), pkt, len, &from, RUDP_SEC(1),
                                              false, &reply, &err);
    if (!s)
        return false;
    rudp_session_del(s);
    return true;
}

/* open-initials INFILE OUTFILE: see the file comment. */
static int cmd_open_initials(int argc, char **argv) {
    static uint8_t buf[DGRAM_MAX];
    unsigned long seen = 0, opened = 0;
    rudp_settings set;
    long len;
    if (argc != 2)
        return EXIT_USAGE;
    FILE *in = fopen(argv[0], "rb"), *out = fopen(argv[1], "wb");
    if (!in || !out) {
        perror(in ? argv[1] : argv[0]);
        return EXIT_FAIL;
    }
    rudp_settings_default(&set);
    while ((len = get_record(in, buf)) >= 0) {
        seen++;
        if (open_initial(&set, buf, (size_t)len) && put_record(out, buf, (size_t)len))
            opened++;
    }
    fclose(in);
    if (fclose(out) != 0) {
        perror(argv[1]);
        return EXIT_FAIL;
    }
    printf("opened %lu of %lu\n", opened, seen);
    return EXIT_OK;
}

int main(int argc, char **argv) {
    int rc = EXIT_USAGE;
    if (argc >= 2 && strcmp(argv[1], "initials") == 0)
        rc = cmd_initials(argc - 2, argv + 2);
    else if (argc >= 2 && strcmp(argv[1], "open-initials") == 0)
        rc = cmd_open_initials(argc - 2, argv + 2);
    if (rc != EXIT_USAGE)
        return rc;
    fprintf(
        stderr,
        "usage: rudp-attack-tool initials N OUTFILE HOST PORT [--retransmit K] [--stream]\n"
        "                                [--ticket FILE]\n"
        "       rudp-attack-tool open-initials INFILE OUTFILE\n");
    return EXIT_USAGE;
}
