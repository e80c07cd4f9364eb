/*
 * sim.c — the deterministic simulator: two rudp sessions over a simulated path.
 *
 * rudp-sim joins a client and a server rudp_session through two sim_links
 * (one per direction, each impaired independently) and drives them on a
 * virtual clock, the way picoquic's and ngtcp2's test harnesses do: a
 * discrete-event loop that jumps straight to the earliest of the sessions'
 * deadlines and the next datagram arrival, so no wall clock and no sleep is
 * involved and a run is a pure function of its seed.  The seed derives
 * everything random: both links' PRNGs, both sessions' seeds and the
 * payloads.
 *
 * The workload is that of a program with N concurrent TCP connections: the
 * client opens --streams streams at once and writes --bytes of a pattern
 * unique to (seed, direction, stream ID) on each, in calls of random sizes
 * (log-uniform, 1 byte to 64 KiB, so that even on a perfect link every seed
 * packs datagrams differently), then half-closes; the
 * server echoes the shape (its own pattern, same size) on every stream the
 * client opens.  Both sides are strictly event driven, as the runtime will
 * be: they read only after RUDP_EV_STREAM_READABLE, write again only after
 * RUDP_EV_STREAM_WRITABLE, so an event the engine forgets shows up as a
 * stall.  Every byte read is compared with the pattern and hashed (64-bit
 * FNV-1a), and a stream whose FIN is sent and whose EOF is read is
 * released.  When all its streams are released the client closes the
 * session.  A run passes when every stream carried exactly its bytes both
 * ways, both sessions reported RUDP_EV_SESSION_CLOSED and then
 * rudp_session_is_done(), rudp_session_get_info() showed no streams or
 * buffer chunks left before deletion, and no call returned an unexpected
 * error.  A run that exceeds the virtual time limit, has nothing left to
 * wait for, or spins without time advancing fails as "stalled" with a
 * state dump.
 *
 * Each failure prints one line with the command that replays it; the end
 * prints the virtual-time goodput and "N passed, N failed".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "link.h"
#include "adversary.h"
#include "crypto.h"
#include "prng.h"
#include "rudp/rudp.h"

#define SIM_CHUNK 65536          /* bytes per stream read/write call */
#define SIM_BUF 65536            /* datagram buffer size */
#define SIM_T0 RUDP_SEC(1000)    /* virtual clock origin */
#define SIM_MAX_BURST 100000     /* datagrams one write loop may emit */
#define SIM_MAX_SAME_TIME 200000 /* steps without time advancing */
#define SIM_DUMP_STREAMS 8       /* streams listed per side in a dump */
#define SIM_BURST_LEN 4.0        /* mean Gilbert–Elliott burst length */

/* ---- Options ------------------------------------------------------------ */

typedef struct sim_opts {
    uint64_t seed, seeds;
    int seed_given, seeds_given;
    rudp_tstamp delay, jitter;
    double loss, burst_loss, burst_len, dup, corrupt; /* probabilities */
    double attack;                                    /* adversary strikes (adversary.c) */
    uint64_t rate_bps;
    uint32_t queue;
    rudp_tstamp partition[2]; /* start, length */
    int loss_first;           /* loss before the bottleneck (as scripts/netem) */
    uint32_t overhead;        /* per-datagram bytes the bottleneck charges */
    int overhead_given;
    uint32_t streams;
    uint64_t bytes;      /* per stream, client to server */
    uint64_t bytes_back; /* per stream, server to client */
    int bytes_back_given;
    enum rudp_cc_algo cc;
    int cc_given;
    uint32_t mtu;
    int mtu_given;
    int verbose, trace, selftest_link, help;
    rudp_tstamp time_limit;
    rudp_tstamp stats_every; /* print both sessions' state this often (0: never) */
    uint64_t step_limit;
    char flags[1024]; /* the command-line flags except --seed/--seeds */
} sim_opts;

enum opt_kind {
    OPT_FLAG,      /* int set to 1 */
    OPT_U64,       /* non-negative integer */
    OPT_U32,       /* non-negative integer below 2^32 */
    OPT_MS,        /* milliseconds (fractional), stored in ns */
    OPT_SEC,       /* seconds (fractional, > 0), stored in ns */
    OPT_PCT,       /* percentage 0..100, stored as a probability */
    OPT_REAL,      /* real number >= 1 */
    OPT_MBIT,      /* Mbit/s (fractional, > 0), stored in bit/s */
    OPT_CC,        /* congestion controller name */
    OPT_PARTITION, /* START_MS:LEN_MS */
};

typedef struct opt_def {
    const char *name;
    enum opt_kind kind;
    size_t off;      /* where the value goes in sim_opts */
    size_t given;    /* int set when the flag appears, or 0 */
    const char *arg; /* what the value looks like, "" for a plain flag */
    const char *help;
} opt_def;

#define O(f) offsetof(sim_opts, f)

static const opt_def opt_table[] = {
    {"--seed", OPT_U64, O(seed), O(seed_given), "N", "run only seed N"},
    {"--seeds", OPT_U64, O(seeds), O(seeds_given), "N", "run seeds 1..N"},
    {"--delay", OPT_MS, O(delay), 0, "MS", "one-way delay"},
    {"--jitter", OPT_MS, O(jitter), 0, "MS", "extra uniform delay per datagram (reorders)"},
    {"--loss", OPT_PCT, O(loss), 0, "PCT", "random loss"},
    {"--burst-loss", OPT_PCT, O(burst_loss), 0, "PCT",
     "Gilbert-Elliott loss, bursts of ~4"},
    {"--burst-len", OPT_REAL, O(burst_len), 0, "N",
     "mean burst length for --burst-loss (4)"},
    {"--dup", OPT_PCT, O(dup), 0, "PCT", "duplication"},
    {"--corrupt", OPT_PCT, O(corrupt), 0, "PCT", "flip 1-3 bits of a datagram"},
    {"--attack", OPT_PCT, O(attack), 0, "PCT",
     "after a datagram, an on-path attacker strikes with a forgery of it"},
    {"--rate", OPT_MBIT, O(rate_bps), 0, "MBIT", "bottleneck rate (default unlimited)"},
    {"--queue", OPT_U32, O(queue), 0, "PKTS", "drop-tail queue limit with --rate (10000)"},
    {"--partition", OPT_PARTITION, O(partition), 0, "START_MS:LEN_MS",
     "drop all both ways"},
    {"--loss-first", OPT_FLAG, O(loss_first), 0, "",
     "lose datagrams before the bottleneck, not after (as scripts/netem)"},
    {"--overhead", OPT_U32, O(overhead), O(overhead_given), "BYTES",
     "bytes the bottleneck charges per datagram besides its payload (28)"},
    {"--streams", OPT_U32, O(streams), 0, "N", "streams the client opens (1)"},
    {"--bytes", OPT_U64, O(bytes), 0, "N", "bytes per stream per direction (100000)"},
    {"--bytes-back", OPT_U64, O(bytes_back), O(bytes_back_given), "N",
     "bytes per stream server to client (--bytes)"},
    {"--cc", OPT_CC, O(cc), O(cc_given), "NAME", "newreno, cubic or bbr (engine default)"},
    {"--mtu", OPT_U32, O(mtu), O(mtu_given), "BYTES", "max_packet_size (engine default)"},
    {"--time-limit", OPT_SEC, O(time_limit), 0, "SEC", "virtual time limit per run (600)"},
    {"--step-limit", OPT_U64, O(step_limit), 0, "N",
     "event-loop steps per run (100000000)"},
    {"--stats", OPT_MS, O(stats_every), 0, "MS",
     "print cwnd, flight, pacing, RTT and loss every MS of virtual time"},
    {"--verbose", OPT_FLAG, O(verbose), 0, "", "one summary line per run"},
    {"--trace", OPT_FLAG, O(trace), 0, "", "log every datagram and event"},
    {"--selftest-link", OPT_FLAG, O(selftest_link), 0, "", "check the link model and exit"},
    {"--help", OPT_FLAG, O(help), 0, "", "this text"},
};

#define NOPTS (sizeof(opt_table) / sizeof(opt_table[0]))

/* Prints the flag summary to |f|. */
static void usage(FILE *f) {
    fprintf(f, "usage: rudp-sim [flags]\n");
    for (size_t i = 0; i < NOPTS; i++)
        fprintf(f, "  %-16s %-16s %s\n", opt_table[i].name, opt_table[i].arg,
                opt_table[i].help);
}

/* Fills |o| with the defaults. */
static void opts_default(sim_opts *o) {
    memset(o, 0, sizeof(*o));
    o->seed = 1;
    o->burst_len = SIM_BURST_LEN;
    o->queue = 10000;
    o->streams = 1;
    o->bytes = 100000;
    o->time_limit = RUDP_SEC(600);
    o->step_limit = 100000000;
}

/* Parses |s| as a whole decimal unsigned integer into *v.  Returns 0, or -1
 * when |s| is not one. */
static int parse_u64(const char *s, uint64_t *v) {
    char *end;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *v = x;
    return 0;
}

/* Parses |s| as a whole finite real number >= |min| into *v.  Returns 0 or
 * -1. */
static int parse_real(const char *s, double min, double *v) {
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(x >= min) || x > 1e15)
        return -1;
    *v = x;
    return 0;
}

/* Parses |s| as a non-negative real in units of |unit| and stores it
 * rounded as an integer count of the base unit in *out; |min| is the least
 * acceptable value in the flag's own unit.  Returns 0 or -1. */
static int parse_scaled(const char *s, double min, double unit, uint64_t *out) {
    double d;
    if (parse_real(s, min, &d) != 0)
        return -1;
    *out = (uint64_t)(d * unit + 0.5);
    return 0;
}

/* Parses "START_MS:LEN_MS" into two nanosecond times.  Returns 0 or -1. */
static int parse_partition(const char *s, rudp_tstamp out[2]) {
    char buf[64];
    const char *colon = strchr(s, ':');
    if (colon == NULL || (size_t)(colon - s) >= sizeof(buf))
        return -1;
    memcpy(buf, s, (size_t)(colon - s));
    buf[colon - s] = '\0';
    if (parse_scaled(buf, 0, 1e6, &out[0]) != 0)
        return -1;
    return parse_scaled(colon + 1, 0, 1e6, &out[1]);
}

/* Parses a numeric flag value |s| of kind |k| and stores it at |dst|.
 * Returns 0, or -1 when the value is malformed or out of range. */
static int parse_number(enum opt_kind k, const char *s, void *dst) {
    uint64_t u;
    double d;
    switch (k) {
    case OPT_U64:
        return parse_u64(s, (uint64_t *)dst);
    case OPT_U32:
        if (parse_u64(s, &u) != 0 || u > UINT32_MAX)
            return -1;
        *(uint32_t *)dst = (uint32_t)u;
        return 0;
    case OPT_MS:
        return parse_scaled(s, 0, 1e6, (rudp_tstamp *)dst);
    case OPT_SEC:
        return parse_scaled(s, 1e-9, 1e9, (rudp_tstamp *)dst);
    case OPT_MBIT:
        return parse_scaled(s, 1e-6, 1e6, (uint64_t *)dst);
    case OPT_PCT:
        if (parse_real(s, 0, &d) != 0 || d > 100)
            return -1;
        *(double *)dst = d / 100.0;
        return 0;
    case OPT_REAL:
        return parse_real(s, 1, (double *)dst);
    default:
        return -1;
    }
}

/* Parses the value |s| of flag |d| into |o|.  Returns 0, or -1 when the
 * value is not acceptable. */
static int parse_value(const opt_def *d, const char *s, sim_opts *o) {
    void *dst = (char *)o + d->off;
    switch (d->kind) {
    case OPT_CC:
        return rudp_cc_algo_from_name(s, (enum rudp_cc_algo *)dst) == RUDP_OK ? 0 : -1;
    case OPT_PARTITION:
        return parse_partition(s, (rudp_tstamp *)dst);
    default:
        return parse_number(d->kind, s, dst);
    }
}

/* Returns the table entry for flag |name|, or NULL. */
static const opt_def *find_opt(const char *name) {
    for (size_t i = 0; i < NOPTS; i++)
        if (strcmp(opt_table[i].name, name) == 0)
            return &opt_table[i];
    return NULL;
}

/* Appends " |word|" to the replay flags of |o| (silently truncating). */
static void add_flag_word(sim_opts *o, const char *word) {
    size_t used = strlen(o->flags);
    snprintf(o->flags + used, sizeof(o->flags) - used, "%s%s", used ? " " : "", word);
}

/* Parses one flag at argv[*i] (and its value) into |o|, advancing *i past
 * what it consumed.  Returns 0, or -1 after printing a one-line error that
 * names the flag and the bad value. */
static int parse_one(int argc, char **argv, int *i, sim_opts *o) {
    const char *name = argv[*i];
    const opt_def *d = find_opt(name);
    if (d == NULL) {
        fprintf(stderr, "rudp-sim: unknown flag '%s' (try --help)\n", name);
        return -1;
    }
    if (d->given)
        *(int *)((char *)o + d->given) = 1;
    if (d->kind == OPT_FLAG) {
        *(int *)((char *)o + d->off) = 1;
        add_flag_word(o, name);
        return 0;
    }
    if (*i + 1 >= argc) {
        fprintf(stderr, "rudp-sim: flag %s needs a value\n", name);
        return -1;
    }
    const char *val = argv[++*i];
    if (parse_value(d, val, o) != 0) {
        fprintf(stderr, "rudp-sim: bad value for %s: '%s' (expected %s: %s)\n", name, val,
                d->arg, d->help);
        return -1;
    }
    if (strcmp(name, "--seed") != 0 && strcmp(name, "--seeds") != 0) {
        add_flag_word(o, name);
        add_flag_word(o, val);
    }
    return 0;
}

/* Checks combinations of flags that are wrong together.  Returns 0, or -1
 * after printing why. */
static int check_opts(const sim_opts *o) {
    if (o->seed_given && o->seeds_given) {
        fprintf(stderr, "rudp-sim: give --seed or --seeds, not both\n");
        return -1;
    }
    if (o->seeds_given && o->seeds == 0) {
        fprintf(stderr, "rudp-sim: bad value for --seeds: '0' (want at least 1)\n");
        return -1;
    }
    if (o->streams == 0) {
        fprintf(stderr, "rudp-sim: bad value for --streams: '0' (want at least 1)\n");
        return -1;
    }
    return 0;
}

/* Parses the command line into |o|.  Returns 0, or -1 after printing a
 * one-line error. */
static int parse_args(int argc, char **argv, sim_opts *o) {
    opts_default(o);
    for (int i = 1; i < argc; i++)
        if (parse_one(argc, argv, &i, o) != 0)
            return -1;
    if (!o->bytes_back_given)
        o->bytes_back = o->bytes;
    return check_opts(o);
}

/* Builds the session settings from |o| into |s|.  Returns 0, or -1 after
 * printing a one-line error naming the flag. */
static int make_settings(const sim_opts *o, rudp_settings *s) {
    rudp_settings_default(s);
    if (o->cc_given)
        s->cc = o->cc;
    if (o->mtu_given)
        s->max_packet_size = o->mtu;
    if (rudp_settings_check(s) != RUDP_OK) {
        fprintf(stderr,
                "rudp-sim: bad value for --mtu: '%" PRIu32 "' (settings rejected)\n",
                o->mtu);
        return -1;
    }
    return 0;
}

/* Builds the configuration of both links from |o| and the packet size
 * |mtu| into |c|.  Returns 0, or -1 after printing what is wrong. */
static int make_link_config(const sim_opts *o, uint32_t mtu, sim_link_config *c) {
    sim_link_config_default(c);
    c->delay = o->delay;
    c->jitter = o->jitter;
    c->loss = o->loss;
    c->burst_loss = o->burst_loss;
    c->burst_len = o->burst_len;
    c->dup = o->dup;
    c->corrupt = o->corrupt;
    c->rate_bps = o->rate_bps;
    c->queue_limit = o->queue;
    c->loss_first = o->loss_first != 0;
    if (o->overhead_given)
        c->header_overhead = o->overhead;
    c->partition_start = SIM_T0 + o->partition[0];
    c->partition_len = o->partition[1];
    c->max_datagram = mtu;
    const char *why = sim_link_config_check(c);
    if (why != NULL) {
        fprintf(stderr, "rudp-sim: bad link flags: %s\n", why);
        return -1;
    }
    return 0;
}

/* ---- Payload patterns --------------------------------------------------- */

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

/* Fills |len| bytes at |buf| with the pattern |key| from byte offset |off|
 * on; byte i of a pattern is byte i%8 (little-endian) of mix(key + i/8). */
static void pattern_fill(uint64_t key, uint64_t off, uint8_t *buf, size_t len) {
    size_t i = 0;
    while (i < len && (off + i) % 8 != 0) {
        uint64_t pos = off + i;
        buf[i++] = (uint8_t)(sim_prng_mix(key + pos / 8) >> (8 * (pos % 8)));
    }
    for (; i + 8 <= len; i += 8) {
        uint64_t w = sim_prng_mix(key + (off + i) / 8);
        for (unsigned b = 0; b < 8; b++)
            buf[i + b] = (uint8_t)(w >> (8 * b));
    }
    for (; i < len; i++) {
        uint64_t pos = off + i;
        buf[i] = (uint8_t)(sim_prng_mix(key + pos / 8) >> (8 * (pos % 8)));
    }
}

/* Returns |h| updated with the FNV-1a hash of |len| bytes at |p|. */
static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t len) {
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

/* ---- Run state ---------------------------------------------------------- */

typedef struct sim_stream {
    uint64_t sid;
    uint64_t send_key, recv_key; /* patterns written and expected */
    uint64_t sent, recvd;
    uint64_t hash, want_hash; /* FNV-1a of the bytes read / expected */
    uint64_t mismatch_at;     /* first wrong byte read, or UINT64_MAX */
    int write_blocked;        /* WOULDBLOCK seen, waiting for WRITABLE */
    int fin_sent, eof, released;
} sim_stream;

typedef struct sim_end {
    const char *name;              /* "client" or "server" */
    int dir;                       /* direction of the bytes it sends: 0 c->s, 1 s->c */
    rudp_session *sess;            /* NULL before creation and after deletion */
    int gone;                      /* session was done and has been deleted */
    rudp_addr peer;                /* the other side's address */
    sim_link *out;                 /* link its datagrams go into */
    sim_prng app;                  /* sizes of the application's reads and writes */
    uint8_t *stage;                /* pattern bytes generated but not yet accepted */
    uint64_t stage_sid, stage_off; /* whose bytes, from which stream offset */
    size_t stage_len;
    sim_stream *st; /* streams in the order they were opened */
    uint32_t nst, nreleased;
    int established, closed, close_called;
    uint64_t drops[32];      /* read_pkt / new_server rejections by -error */
    rudp_session_info final; /* info taken just before deletion */
} sim_end;

typedef struct sim_run {
    const sim_opts *o;
    uint64_t seed;
    rudp_settings settings;
    sim_link c2s, s2c;
    sim_end cli, srv;
    rudp_tstamp now;
    uint64_t pattern_seed[2]; /* per direction */
    uint64_t steps, same_time;
    rudp_tstamp next_stats; /* when --stats prints next */
    uint64_t dir_bytes[2];
    rudp_tstamp dir_last[2]; /* virtual time the last byte was read */
    int failed;
    char reason[512];
    uint8_t pkt[SIM_BUF], io[SIM_CHUNK], pat[SIM_CHUNK];
    uint8_t orig[SIM_BUF]; /* the datagram as it was on the wire (--attack) */
    sim_adv adv;
} sim_run;

static const char *const dir_name[2] = {"c->s", "s->c"};

/* Records the first failure of |r| as the formatted reason; later failures
 * of the same run are ignored (the first one is the cause). */
static void fail(sim_run *r, const char *fmt, ...) {
    if (r->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
    va_end(ap);
    r->failed = 1;
}

/* Returns the virtual time of |r| in milliseconds since the run started. */
static double ms_now(const sim_run *r) {
    return (double)(r->now - SIM_T0) / 1e6;
}

/* Prints a trace line for |r| when --trace is on. */
static void trace(const sim_run *r, const char *fmt, ...) {
    if (!r->o->trace)
        return;
    va_list ap;
    va_start(ap, fmt);
    printf("[%12.6f ms] ", ms_now(r));
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
}

/* Fills |a| with the IPv4 address 10.0.0.|host| and port |port|, laid out
 * as a struct sockaddr_in would be. */
static void make_addr(rudp_addr *a, uint8_t host, uint16_t port) {
    memset(a, 0, sizeof(*a));
    a->len = 16;
    a->bytes[0] = 2; /* AF_INET, little-endian sa_family */
    a->bytes[2] = (uint8_t)(port >> 8);
    a->bytes[3] = (uint8_t)port;
    a->bytes[4] = 10;
    a->bytes[7] = host;
}

/* Returns true when addresses |a| and |b| are byte for byte equal. */
static int addr_equal(const rudp_addr *a, const rudp_addr *b) {
    return a->len == b->len && a->len <= sizeof(a->bytes) &&
           memcmp(a->bytes, b->bytes, a->len) == 0;
}

/* ---- Streams ------------------------------------------------------------ */

/* Returns a random size for the next read or write call of |e|, at most
 * |limit|: log-uniform between 1 and SIM_CHUNK bytes. */
static size_t io_size(sim_end *e, uint64_t limit) {
    unsigned shift = (unsigned)sim_prng_below(&e->app, 17); /* 2^0 .. 2^16 */
    uint64_t n = 1 + sim_prng_below(&e->app, 1ull << shift);
    if (n > SIM_CHUNK)
        n = SIM_CHUNK;
    return (size_t)(n < limit ? n : limit);
}

/* Returns the stream |sid| of |e|, or NULL when it never existed. */
static sim_stream *find_stream(sim_end *e, uint64_t sid) {
    for (uint32_t i = 0; i < e->nst; i++)
        if (e->st[i].sid == sid)
            return &e->st[i];
    return NULL;
}

/* Registers stream |sid| on |e| with the patterns of |r|.  Returns it, or
 * NULL (after failing the run) when |e| already has --streams streams. */
static sim_stream *add_stream(sim_run *r, sim_end *e, uint64_t sid) {
    if (e->nst >= r->o->streams) {
        fail(r, "%s: stream %" PRIu64 " is one more than the %" PRIu32 " opened", e->name,
             sid, r->o->streams);
        return NULL;
    }
    sim_stream *s = &e->st[e->nst++];
    memset(s, 0, sizeof(*s));
    s->sid = sid;
    s->send_key = sim_prng_derive(r->pattern_seed[e->dir], sid);
    s->recv_key = sim_prng_derive(r->pattern_seed[!e->dir], sid);
    s->hash = s->want_hash = FNV_OFFSET;
    s->mismatch_at = UINT64_MAX;
    return s;
}

/* Returns the bytes every stream carries in direction |dir| (0: client to
 * server, 1: server to client). */
static uint64_t dir_total(const sim_run *r, int dir) {
    return dir == 0 ? r->o->bytes : r->o->bytes_back;
}

/* Checks a finished receive half of |s| on |e|: byte count, pattern and
 * hash.  Fails the run with the first discrepancy. */
static void verify_received(sim_run *r, sim_end *e, sim_stream *s) {
    uint64_t want = dir_total(r, !e->dir);
    if (s->recvd != want)
        fail(r, "%s: stream %" PRIu64 " EOF after %" PRIu64 " of %" PRIu64 " bytes",
             e->name, s->sid, s->recvd, want);
    else if (s->mismatch_at != UINT64_MAX)
        fail(r, "%s: stream %" PRIu64 " byte %" PRIu64 " differs from what the peer wrote",
             e->name, s->sid, s->mismatch_at);
    else if (s->hash != s->want_hash)
        fail(r, "%s: stream %" PRIu64 " hash mismatch", e->name, s->sid);
}

/* Closes the session of client |e| once every stream is released. */
static void maybe_close(sim_run *r, sim_end *e) {
    if (e->dir != 0 || e->close_called || e->nreleased < r->o->streams)
        return;
    e->close_called = 1;
    int rc = rudp_session_close(e->sess, 0, r->now);
    trace(r, "%s: close -> %s", e->name, rudp_strerror(rc));
    if (rc != RUDP_OK)
        fail(r, "%s: rudp_session_close returned %s", e->name, rudp_strerror(rc));
}

/* Releases |s| once its FIN has been sent and its EOF read. */
static void maybe_release(sim_run *r, sim_end *e, sim_stream *s) {
    if (s->released || !s->fin_sent || !s->eof)
        return;
    int rc = rudp_stream_release(e->sess, s->sid);
    trace(r, "%s: release %" PRIu64 " -> %s", e->name, s->sid, rudp_strerror(rc));
    if (rc != RUDP_OK) {
        fail(r, "%s: rudp_stream_release(%" PRIu64 ") returned %s", e->name, s->sid,
             rudp_strerror(rc));
        return;
    }
    s->released = 1;
    e->nreleased++;
    maybe_close(r, e);
}

/* Half-closes |s| once all its bytes are written. */
static void maybe_shutdown(sim_run *r, sim_end *e, sim_stream *s) {
    if (s->fin_sent || s->sent < dir_total(r, e->dir))
        return;
    int rc = rudp_stream_shutdown_write(e->sess, s->sid);
    trace(r, "%s: shutdown_write %" PRIu64 " -> %s", e->name, s->sid, rudp_strerror(rc));
    if (rc != RUDP_OK) {
        fail(r, "%s: rudp_stream_shutdown_write(%" PRIu64 ") returned %s", e->name, s->sid,
             rudp_strerror(rc));
        return;
    }
    s->fin_sent = 1;
    maybe_release(r, e, s);
}

/* Returns the next bytes of |s|'s pattern to write and their count in *n:
 * what is left of the staged chunk, or a new chunk of random size, so that
 * a refused or partial write does not cost a second generation. */
static const uint8_t *next_chunk(sim_run *r, sim_end *e, sim_stream *s, size_t *n) {
    if (e->stage_sid != s->sid || s->sent < e->stage_off ||
        s->sent >= e->stage_off + e->stage_len) {
        e->stage_sid = s->sid;
        e->stage_off = s->sent;
        e->stage_len = io_size(e, dir_total(r, e->dir) - s->sent);
        pattern_fill(s->send_key, s->sent, e->stage, e->stage_len);
    }
    size_t skip = (size_t)(s->sent - e->stage_off);
    *n = e->stage_len - skip;
    return e->stage + skip;
}

/* Writes as much of the rest of |s|'s pattern as the send buffer takes,
 * until WOULDBLOCK (then waits for WRITABLE) or the end (then shuts the
 * write side). */
static void write_some(sim_run *r, sim_end *e, sim_stream *s) {
    while (!r->failed && !s->write_blocked && s->sent < dir_total(r, e->dir)) {
        size_t n;
        const uint8_t *data = next_chunk(r, e, s, &n);
        ssize_t w = rudp_stream_write(e->sess, s->sid, data, n);
        if (w == RUDP_ERR_WOULDBLOCK) {
            s->write_blocked = 1;
            break;
        }
        if (w <= 0 || (size_t)w > n) {
            fail(r, "%s: rudp_stream_write(%" PRIu64 ", %zu) returned %s (%zd)", e->name,
                 s->sid, n, w < 0 ? rudp_strerror((int)w) : "a bad count", w);
            return;
        }
        s->sent += (uint64_t)w;
    }
    maybe_shutdown(r, e, s);
}

/* Accounts |n| bytes just read from |s| into |buf|: compares them with the
 * expected pattern, hashes both and records the delivery time. */
static void absorb(sim_run *r, sim_end *e, sim_stream *s, const uint8_t *buf, size_t n) {
    uint64_t want = dir_total(r, !e->dir);
    if (s->recvd + n <= want) {
        pattern_fill(s->recv_key, s->recvd, r->pat, n);
        s->want_hash = fnv1a(s->want_hash, r->pat, n);
        if (s->mismatch_at == UINT64_MAX && memcmp(buf, r->pat, n) != 0) {
            size_t i = 0;
            while (buf[i] == r->pat[i])
                i++;
            s->mismatch_at = s->recvd + i;
        }
    }
    s->hash = fnv1a(s->hash, buf, n);
    s->recvd += n;
    r->dir_bytes[!e->dir] += n;
    r->dir_last[!e->dir] = r->now;
    if (s->recvd > want)
        fail(r,
             "%s: stream %" PRIu64 " delivered %" PRIu64 " bytes, more than the %" PRIu64
             " sent",
             e->name, s->sid, s->recvd, want);
}

/* Reads |s| until WOULDBLOCK or EOF, checking every byte. */
static void read_all(sim_run *r, sim_end *e, sim_stream *s) {
    while (!r->failed && !s->eof) {
        size_t want = io_size(e, SIM_CHUNK);
        ssize_t n = rudp_stream_read(e->sess, s->sid, r->io, want);
        if (n == RUDP_ERR_WOULDBLOCK)
            return;
        if (n < 0 || (size_t)n > want) {
            fail(r, "%s: rudp_stream_read(%" PRIu64 ") returned %s", e->name, s->sid,
                 rudp_strerror((int)n));
            return;
        }
        if (n == 0) {
            s->eof = 1;
            trace(r, "%s: EOF on %" PRIu64 " after %" PRIu64 " bytes", e->name, s->sid,
                  s->recvd);
            verify_received(r, e, s);
            maybe_release(r, e, s);
            return;
        }
        absorb(r, e, s, r->io, (size_t)n);
    }
}

/* Opens the client's remaining streams, as many as the peer allows now, and
 * starts writing on each. */
static void open_pending(sim_run *r, sim_end *e) {
    while (!r->failed && e->dir == 0 && e->sess && e->nst < r->o->streams) {
        uint64_t sid;
        int rc = rudp_stream_open(e->sess, &sid);
        if (rc == RUDP_ERR_STREAM_LIMIT)
            return;
        if (rc != RUDP_OK) {
            fail(r, "%s: rudp_stream_open returned %s", e->name, rudp_strerror(rc));
            return;
        }
        trace(r, "%s: opened stream %" PRIu64, e->name, sid);
        if (find_stream(e, sid) != NULL) {
            fail(r, "%s: rudp_stream_open reused stream ID %" PRIu64, e->name, sid);
            return;
        }
        sim_stream *s = add_stream(r, e, sid);
        if (s != NULL)
            write_some(r, e, s);
    }
}

/* ---- Events ------------------------------------------------------------- */

static const char *const event_names[] = {
    "?",
    "SESSION_ESTABLISHED",
    "SESSION_CLOSED",
    "STREAM_OPENED",
    "STREAM_CONNECTED",
    "STREAM_READABLE",
    "STREAM_WRITABLE",
    "STREAM_RESET",
};

/* Returns the name of event type |t|. */
static const char *event_name(int t) {
    return t > 0 && t < (int)(sizeof(event_names) / sizeof(event_names[0])) ? event_names[t]
                                                                            : "?";
}

/* Handles SESSION_CLOSED with error |err| on |e|: only a normal close is
 * acceptable (whether every stream finished is checked at the end, since
 * events queued before the close may still finish them). */
static void on_closed(sim_run *r, sim_end *e, int err) {
    if (e->closed++)
        fail(r, "%s: SESSION_CLOSED reported twice", e->name);
    if (err != RUDP_OK && err != RUDP_ERR_PEER_CLOSED && err != RUDP_ERR_CLOSED)
        fail(r, "%s: session closed with %s (%" PRIu32 " of %" PRIu32 " streams finished)",
             e->name, rudp_strerror(err), e->nreleased, r->o->streams);
}

/* Handles STREAM_OPENED for |sid| on |e|: only the server expects it; it
 * registers the stream and starts writing its own pattern. */
static void on_opened(sim_run *r, sim_end *e, uint64_t sid) {
    if (e->dir == 0) {
        fail(r, "%s: peer opened stream %" PRIu64 " though the server opens none", e->name,
             sid);
        return;
    }
    if (find_stream(e, sid) != NULL) {
        fail(r, "%s: stream %" PRIu64 " reported opened twice", e->name, sid);
        return;
    }
    sim_stream *s = add_stream(r, e, sid);
    if (s != NULL)
        write_some(r, e, s);
}

/* Handles the stream event |ev| on |e|; events for released streams are
 * ignored, those for streams never seen fail the run. */
static void on_stream_event(sim_run *r, sim_end *e, const rudp_event *ev) {
    sim_stream *s = find_stream(e, ev->sid);
    if (s == NULL) {
        fail(r, "%s: %s for unknown stream %" PRIu64, e->name, event_name(ev->type),
             ev->sid);
        return;
    }
    if (s->released)
        return;
    switch (ev->type) {
    case RUDP_EV_STREAM_READABLE:
        read_all(r, e, s);
        break;
    case RUDP_EV_STREAM_WRITABLE:
        s->write_blocked = 0;
        write_some(r, e, s);
        break;
    case RUDP_EV_STREAM_RESET:
        fail(r, "%s: stream %" PRIu64 " reset (%s)", e->name, s->sid,
             rudp_strerror(ev->error));
        break;
    default: /* CONNECTED: nothing to do, writes started at open */
        break;
    }
}

/* Dispatches event |ev| of |e|. */
static void on_event(sim_run *r, sim_end *e, const rudp_event *ev) {
    trace(r, "%s: event %s sid=%" PRIu64 " error=%s", e->name, event_name(ev->type),
          ev->sid, rudp_strerror(ev->error));
    switch (ev->type) {
    case RUDP_EV_SESSION_ESTABLISHED:
        if (e->established++)
            fail(r, "%s: SESSION_ESTABLISHED reported twice", e->name);
        break;
    case RUDP_EV_SESSION_CLOSED:
        on_closed(r, e, ev->error);
        break;
    case RUDP_EV_STREAM_OPENED:
        on_opened(r, e, ev->sid);
        break;
    case RUDP_EV_STREAM_CONNECTED:
    case RUDP_EV_STREAM_READABLE:
    case RUDP_EV_STREAM_WRITABLE:
    case RUDP_EV_STREAM_RESET:
        on_stream_event(r, e, ev);
        break;
    default:
        fail(r, "%s: unknown event type %d", e->name, (int)ev->type);
    }
}

/* Handles every pending event of |e| and retries stream opens. */
static void service(sim_run *r, sim_end *e) {
    rudp_event ev;
    while (!r->failed && e->sess && rudp_session_poll_event(e->sess, &ev))
        on_event(r, e, &ev);
    open_pending(r, e);
}

/* ---- Datagrams ---------------------------------------------------------- */

/* Returns true when a datagram rejection |rc| is acceptable: drops the
 * engine may make of stray, duplicate or (with --corrupt) damaged input. */
static int acceptable_drop(const sim_run *r, int rc) {
    switch (rc) {
    case RUDP_ERR_UNKNOWN_CID:
    case RUDP_ERR_DUPLICATE:
    case RUDP_ERR_CLOSED:
    case RUDP_ERR_NOT_INITIAL:
        return 1;
    case RUDP_ERR_MALFORMED:
    case RUDP_ERR_AUTH:
    case RUDP_ERR_VERSION:
        return r->o->corrupt > 0; /* else the engine rejected its own output */
    default:
        return 0;
    }
}

/* Counts rejection |rc| of a datagram by |e|, failing the run when it is
 * not acceptable; |what| names the call. */
static void count_drop(sim_run *r, sim_end *e, int rc, const char *what) {
    trace(r, "%s: %s dropped the datagram: %s", e->name, what, rudp_strerror(rc));
    if (-rc > 0 && -rc < 32)
        e->drops[-rc]++;
    if (!acceptable_drop(r, rc))
        fail(r, "%s: %s returned %s", e->name, what, rudp_strerror(rc));
}

/* Creates the server session from the datagram |len| bytes in r->pkt, or
 * drops the datagram when it cannot open a session. */
static void create_server(sim_run *r, sim_end *e, size_t len) {
    int err = RUDP_OK;
    rudp_reply reply;
    uint64_t seed = sim_prng_derive(r->seed, 0x5e7e7);
    e->sess = rudp_session_new_server(&r->settings, seed, r->pkt, len, &e->peer, r->now,
                                      false, &reply, &err);
    trace(r, "%s: new_server -> %s", e->name, e->sess ? "created" : rudp_strerror(err));
    if (e->sess == NULL)
        count_drop(r, e, err, "rudp_session_new_server");
}

/* Lets the adversary strike |e| with a forgery of the datagram of |len|
 * bytes it just took; a forgery that gets through fails the run. */
static void strike(sim_run *r, sim_end *e, size_t len) {
    char why[256];
    if (r->o->attack <= 0 || !e->sess || r->failed)
        return;
    if (sim_adv_strike(&r->adv, e->sess, &r->settings, e == &r->srv, r->orig, len, &e->peer,
                       r->now, why, sizeof(why)) < 0)
        fail(r, "%s: %s", e->name, why);
}

/* Hands every datagram that has arrived on |l| by now to |e|. */
static void deliver(sim_run *r, sim_link *l, sim_end *e) {
    size_t len;
    while (!r->failed && (len = sim_link_receive(l, r->now, r->pkt, sizeof(r->pkt))) > 0) {
        if (e->gone)
            continue;
        if (r->o->attack > 0)
            memcpy(r->orig, r->pkt, len); /* opening decrypts in place */
        if (e->sess == NULL) {
            create_server(r, e, len);
        } else {
            int rc = rudp_session_read_pkt(e->sess, r->pkt, len, &e->peer, r->now);
            if (rc == RUDP_OK)
                trace(r, "%s: read %zu-byte datagram", e->name, len);
            else
                count_drop(r, e, rc, "rudp_session_read_pkt");
        }
        strike(r, e, len);
    }
}

/* Sends every datagram |e| has to send now into its link. */
static void flush(sim_run *r, sim_end *e) {
    for (int k = 0; !r->failed && e->sess; k++) {
        rudp_addr to;
        memset(&to, 0, sizeof(to));
        ssize_t n = rudp_session_write_pkt(e->sess, r->pkt, sizeof(r->pkt), &to, r->now);
        if (n == 0)
            return;
        if (n < 0 || (size_t)n > r->settings.max_packet_size)
            fail(r, "%s: rudp_session_write_pkt returned %zd (%s)", e->name, n,
                 n < 0 ? rudp_strerror((int)n) : "over max_packet_size");
        else if (!addr_equal(&to, &e->peer))
            fail(r, "%s: datagram addressed to someone other than the peer", e->name);
        else if (k >= SIM_MAX_BURST)
            fail(r, "%s: write_pkt produced over %d datagrams at one instant", e->name,
                 SIM_MAX_BURST);
        else {
            enum sim_link_verdict v = sim_link_send(e->out, r->pkt, (size_t)n, r->now);
            trace(r, "%s: wrote %zd-byte datagram: %s", e->name, n,
                  sim_link_verdict_name(v));
        }
    }
}

/* Runs the expired timers of |e|. */
static void timeouts(sim_run *r, sim_end *e) {
    if (e->sess == NULL || rudp_session_deadline(e->sess) > r->now)
        return;
    int rc = rudp_session_handle_timeout(e->sess, r->now);
    if (rc != RUDP_OK)
        fail(r, "%s: rudp_session_handle_timeout returned %s", e->name, rudp_strerror(rc));
}

/* Deletes the session of |e| once it is done, after checking that it
 * reported SESSION_CLOSED and holds no streams or buffer chunks. */
static void reap(sim_run *r, sim_end *e) {
    if (e->sess == NULL || !rudp_session_is_done(e->sess))
        return;
    rudp_session_get_info(e->sess, &e->final);
    trace(r, "%s: done (streams_open=%" PRIu32 " chunks_in_use=%" PRIu64 ")", e->name,
          e->final.streams_open, e->final.chunks_in_use);
    if (!e->closed)
        fail(r, "%s: session done without a SESSION_CLOSED event", e->name);
    else if (e->final.streams_open != 0 || e->final.chunks_in_use != 0)
        fail(r, "%s: leak at deletion: streams_open=%" PRIu32 " chunks_in_use=%" PRIu64,
             e->name, e->final.streams_open, e->final.chunks_in_use);
    rudp_session_del(e->sess);
    e->sess = NULL;
    e->gone = 1;
}

/* ---- The event loop ----------------------------------------------------- */

/* Returns the earliest of the two session deadlines and link arrivals. */
static rudp_tstamp next_event(const sim_run *r) {
    rudp_tstamp t = sim_link_next_arrival(&r->c2s), u = sim_link_next_arrival(&r->s2c);
    if (u < t)
        t = u;
    if (r->cli.sess && (u = rudp_session_deadline(r->cli.sess)) < t)
        t = u;
    if (r->srv.sess && (u = rudp_session_deadline(r->srv.sess)) < t)
        t = u;
    return t;
}

/* Returns a short summary of stream progress on |e| into |buf|. */
static const char *progress(const sim_run *r, const sim_end *e, char *buf, size_t cap) {
    uint64_t sent = 0, recvd = 0;
    for (uint32_t i = 0; i < e->nst; i++) {
        sent += e->st[i].sent;
        recvd += e->st[i].recvd;
    }
    snprintf(buf, cap,
             "%s %" PRIu32 "/%" PRIu32 " streams done, wrote %" PRIu64 " read %" PRIu64
             " of %" PRIu64 " bytes",
             e->name, e->nreleased, r->o->streams, sent, recvd,
             dir_total(r, !e->dir) * r->o->streams);
    return buf;
}

/* Fails |r| as stalled because of |why|, with a progress summary; the
 * detailed dump is printed by the caller. */
static void stall(sim_run *r, const char *why) {
    char a[160], b[160];
    fail(r, "stalled (%s) at t=%.3f ms: %s; %s", why, ms_now(r),
         progress(r, &r->cli, a, sizeof(a)), progress(r, &r->srv, b, sizeof(b)));
}

/* Moves the clock of |r| to the next event, failing the run as stalled
 * when there is none, it lies past the time limit, or time has stopped
 * advancing for too many steps.  Returns 0 to go on, -1 to stop. */
static int advance(sim_run *r) {
    rudp_tstamp t = next_event(r);
    if (t == RUDP_TSTAMP_NEVER)
        return stall(r, "nothing left to wait for"), -1;
    if (t > SIM_T0 + r->o->time_limit)
        return stall(r, "virtual time limit"), -1;
    if (++r->steps > r->o->step_limit)
        return stall(r, "step limit"), -1;
    if (t <= r->now) {
        if (++r->same_time > SIM_MAX_SAME_TIME)
            return stall(r, "time stopped advancing: a deadline in the past keeps firing"),
                   -1;
        return 0;
    }
    r->same_time = 0;
    r->now = t;
    return 0;
}

/* Returns true when the run is over: both sessions deleted after finishing,
 * or the client finished before any server session existed. */
static int finished(sim_run *r) {
    if (r->cli.gone && r->srv.sess == NULL && !r->srv.gone) {
        fail(r, "client session finished but no server session was ever created");
        return 1;
    }
    return r->cli.gone && r->srv.gone;
}

/* Runs one simulation step at the current time: events, deletion of
 * finished sessions, output. */
static void step_now(sim_run *r) {
    service(r, &r->cli);
    service(r, &r->srv);
    reap(r, &r->cli);
    reap(r, &r->srv);
    flush(r, &r->cli);
    flush(r, &r->srv);
}

/* Prints one line of the state of |e|'s session at the current time: the
 * congestion window, the flight, the pacing rate, RTTs, loss so far and
 * the session receive window it advertises. */
static void print_stats(const sim_run *r, const sim_end *e) {
    if (e->sess == NULL)
        return;
    rudp_session_info in;
    rudp_session_get_info(e->sess, &in);
    printf("stats %10.3f ms %s: cwnd %" PRIu64 " inflight %" PRIu64 " pacing %.2f Mbit/s "
           "srtt %.3f min_rtt %.3f ms sent %" PRIu64 " lost %" PRIu64 " retx %" PRIu64
           " B pkt %" PRIu32 " rwnd %" PRIu64 "\n",
           ms_now(r), e->name, in.cwnd, in.bytes_in_flight, (double)in.pacing_rate * 8e-6,
           (double)in.srtt / 1e6, (double)in.min_rtt / 1e6, in.pkts_sent, in.pkts_lost,
           in.stream_bytes_retransmitted, in.max_packet_size, in.recv_window);
}

/* With --stats, prints both sessions whenever another interval began. */
static void maybe_stats(sim_run *r) {
    if (r->o->stats_every == 0 || r->now < r->next_stats)
        return;
    print_stats(r, &r->cli);
    print_stats(r, &r->srv);
    r->next_stats = r->now + r->o->stats_every;
}

/* Runs the event loop of |r| until it finishes or fails. */
static void loop(sim_run *r) {
    for (;;) {
        step_now(r);
        maybe_stats(r);
        if (r->failed || finished(r) || advance(r) != 0)
            return;
        deliver(r, &r->c2s, &r->srv);
        deliver(r, &r->s2c, &r->cli);
        timeouts(r, &r->cli);
        timeouts(r, &r->srv);
    }
}

/* ---- Setup, checks and reports ------------------------------------------ */

/* Prepares endpoint |e| named |name| sending direction |dir| into |out|. */
static int end_init(sim_run *r, sim_end *e, const char *name, int dir, sim_link *out) {
    e->name = name;
    e->dir = dir;
    e->out = out;
    make_addr(&e->peer, (uint8_t)(2 - dir), dir == 0 ? 6379 : 40000);
    sim_prng_init(&e->app, sim_prng_derive(r->seed, 0xa990 + (uint64_t)dir));
    e->stage_sid = UINT64_MAX;
    e->stage = malloc(SIM_CHUNK);
    e->st = calloc(r->o->streams, sizeof(*e->st));
    return e->st && e->stage ? 0 : -1;
}

/* rudp_random_fn: the engine's random bytes (key shares, secrets) from the
 * run's seed, so that a run repeats. */
static void sim_random(void *ctx, uint8_t *buf, size_t len) {
    sim_prng *p = ctx;
    for (size_t i = 0; i < len; i += 8) {
        uint64_t v = sim_prng_next(p);
        memcpy(buf + i, &v, len - i < 8 ? len - i : 8);
    }
}

static sim_prng run_random;

/* Sets up run |r| of seed |seed|: links, endpoints and the client session.
 * Returns 0, or -1 when something could not be created (the run has then
 * failed with the reason). */
static int run_init(sim_run *r, const sim_opts *o, const rudp_settings *s,
                    const sim_link_config *lc, uint64_t seed) {
    r->o = o;
    r->seed = seed;
    sim_prng_init(&run_random, sim_prng_derive(seed, 0xc2a9));
    sim_adv_init(&r->adv, sim_prng_derive(seed, 0xa77ac), o->attack);
    rudp_crypto_set_random(sim_random, &run_random);
    r->settings = *s;
    rudp_random(r->settings.secret, sizeof(r->settings.secret));
    r->now = SIM_T0;
    r->pattern_seed[0] = sim_prng_derive(seed, 0xc25);
    r->pattern_seed[1] = sim_prng_derive(seed, 0x52c);
    if (sim_link_init(&r->c2s, lc, sim_prng_derive(seed, 1)) != 0 ||
        sim_link_init(&r->s2c, lc, sim_prng_derive(seed, 2)) != 0)
        return fail(r, "cannot set up the links"), -1;
    if (end_init(r, &r->cli, "client", 0, &r->c2s) != 0 ||
        end_init(r, &r->srv, "server", 1, &r->s2c) != 0)
        return fail(r, "out of memory"), -1;
    uint64_t cseed = sim_prng_derive(seed, 0xc11e);
    r->cli.sess = rudp_session_new_client(s, cseed, &r->cli.peer, r->now);
    if (r->cli.sess == NULL)
        return fail(r, "rudp_session_new_client returned NULL"), -1;
    return 0;
}

/* Frees everything |r| holds. */
static void run_free(sim_run *r) {
    if (r->cli.sess)
        rudp_session_del(r->cli.sess);
    if (r->srv.sess)
        rudp_session_del(r->srv.sess);
    free(r->cli.st);
    free(r->srv.st);
    free(r->cli.stage);
    free(r->srv.stage);
    sim_link_free(&r->c2s);
    sim_link_free(&r->s2c);
}

/* Checks what the loop cannot see at the end of a completed run: every
 * stream of both sides was opened, finished and released. */
static void final_checks(sim_run *r) {
    const sim_end *ends[2] = {&r->cli, &r->srv};
    for (int i = 0; i < 2 && !r->failed; i++)
        if (ends[i]->nreleased != r->o->streams)
            fail(r, "%s: only %" PRIu32 " of %" PRIu32 " streams finished", ends[i]->name,
                 ends[i]->nreleased, r->o->streams);
}

/* Formats the deadline of session |sess| relative to now into |buf|. */
static const char *deadline_str(const sim_run *r, const rudp_session *sess, char *buf,
                                size_t cap) {
    rudp_tstamp dl = rudp_session_deadline(sess);
    if (dl == RUDP_TSTAMP_NEVER)
        snprintf(buf, cap, "never");
    else
        snprintf(buf, cap, "%+.3f ms", ((double)dl - (double)r->now) / 1e6);
    return buf;
}

/* Prints one dump line about the session of |e|: state and counters. */
static void dump_session(const sim_run *r, const sim_end *e) {
    if (e->sess == NULL) {
        printf("  | %s: %s\n", e->name, e->gone ? "done and deleted" : "no session");
        return;
    }
    rudp_session_info in;
    char dl[32];
    rudp_session_get_info(e->sess, &in);
    printf("  | %s: state=%d est=%d deadline=%s srtt=%.3f ms cwnd=%" PRIu64
           " inflight=%" PRIu64 " pkts sent/recv/lost=%" PRIu64 "/%" PRIu64 "/%" PRIu64
           " pto=%" PRIu64 " streams_open=%" PRIu32 " chunks=%" PRIu64 "\n",
           e->name, in.state, rudp_session_is_established(e->sess),
           deadline_str(r, e->sess, dl, sizeof(dl)), (double)in.srtt / 1e6, in.cwnd,
           in.bytes_in_flight, in.pkts_sent, in.pkts_recv, in.pkts_lost, in.pto_count_total,
           in.streams_open, in.chunks_in_use);
}

/* Prints the datagrams |e| rejected, by reason, when there were any. */
static void dump_drops(const sim_end *e) {
    int any = 0;
    for (int i = 1; i < 32; i++)
        if (e->drops[i] != 0) {
            printf("%s %s %" PRIu64,
                   any++ ? "," : "  |   dropped on input:", rudp_strerror(-i), e->drops[i]);
        }
    if (any)
        putchar('\n');
}

/* Prints one dump line about stream |s| of |e|. */
static void dump_stream(const sim_end *e, const sim_stream *s) {
    rudp_stream_info si;
    memset(&si, 0, sizeof(si));
    int rc = e->sess && !s->released ? rudp_stream_get_info(e->sess, s->sid, &si) : 1;
    printf("  |   %s stream %" PRIu64 ": wrote %" PRIu64 "%s read %" PRIu64 "%s%s%s",
           e->name, s->sid, s->sent, s->fin_sent ? "+FIN" : "", s->recvd,
           s->eof ? "+EOF" : "", s->write_blocked ? " write-blocked" : "",
           s->released ? " released" : "");
    if (rc == RUDP_OK)
        printf(" | state=%d acked=%" PRIu64 " readable=%" PRIu64 " send_window=%" PRIu64
               " recv_window=%" PRIu64,
               (int)si.state, si.bytes_acked, si.bytes_readable, si.send_window,
               si.recv_window);
    else if (rc < 0)
        printf(" | get_info: %s", rudp_strerror(rc));
    putchar('\n');
}

/* Prints the unfinished streams of |e| (at most SIM_DUMP_STREAMS). */
static void dump_streams(const sim_end *e) {
    uint32_t shown = 0, unfinished = 0;
    for (uint32_t i = 0; i < e->nst; i++) {
        if (e->st[i].released)
            continue;
        if (unfinished++ < SIM_DUMP_STREAMS) {
            dump_stream(e, &e->st[i]);
            shown++;
        }
    }
    if (unfinished > shown)
        printf("  |   %s: %" PRIu32 " more unfinished streams\n", e->name,
               unfinished - shown);
}

/* Prints one dump line about link |l| named |name|. */
static void dump_link(const char *name, const sim_link *l) {
    const sim_link_stats *s = &l->stats;
    printf("  | link %s: sent %" PRIu64 " delivered %" PRIu64 " in flight %" PRIu32
           " dropped loss/burst/queue/partition %" PRIu64 "/%" PRIu64 "/%" PRIu64
           "/%" PRIu64 " dup %" PRIu64 " corrupt %" PRIu64 "\n",
           name, s->sent, s->delivered, sim_link_in_flight(l), s->drop_loss, s->drop_burst,
           s->drop_queue, s->drop_partition, s->duplicated, s->corrupted);
}

/* Prints the state dump of a stalled run. */
static void dump(const sim_run *r) {
    dump_session(r, &r->cli);
    dump_drops(&r->cli);
    dump_streams(&r->cli);
    dump_session(r, &r->srv);
    dump_drops(&r->srv);
    dump_streams(&r->srv);
    dump_link("c->s", &r->c2s);
    dump_link("s->c", &r->s2c);
}

/* Returns the goodput of |bytes| delivered by time |last| in Mbit/s. */
static double mbits(uint64_t bytes, rudp_tstamp last) {
    return last > SIM_T0 ? (double)bytes * 8e3 / (double)(last - SIM_T0) : 0.0;
}

/* Per-seed result, folded into the totals. */
typedef struct sim_result {
    int passed;
    double goodput, dir_goodput[2];
} sim_result;

/* Stores in *in the statistics of |e|: live, or as taken at deletion. */
static void end_info(const sim_end *e, rudp_session_info *in) {
    if (e->sess != NULL)
        rudp_session_get_info(e->sess, in);
    else
        *in = e->final;
}

/* Prints the --verbose summary line of run |r|. */
static void print_summary(const sim_run *r, const sim_result *res) {
    rudp_session_info c, s;
    end_info(&r->cli, &c);
    end_info(&r->srv, &s);
    printf("seed %" PRIu64 ": %s t=%.3f ms goodput %.2f Mbit/s (c->s %.2f, s->c %.2f)"
           " | client pkts %" PRIu64 " lost %" PRIu64 " (spurious %" PRIu64 ") pto %" PRIu64
           " | server pkts %" PRIu64 " lost %" PRIu64 " (spurious %" PRIu64 ") pto %" PRIu64
           " | links c->s %" PRIu64 "/%" PRIu64 " s->c %" PRIu64 "/%" PRIu64
           " delivered/sent\n",
           r->seed, res->passed ? "pass" : "FAIL", ms_now(r), res->goodput,
           res->dir_goodput[0], res->dir_goodput[1], c.pkts_sent, c.pkts_lost,
           c.pkts_spurious, c.pto_count_total, s.pkts_sent, s.pkts_lost, s.pkts_spurious,
           s.pto_count_total, r->c2s.stats.delivered, r->c2s.stats.sent,
           r->s2c.stats.delivered, r->s2c.stats.sent);
}

/* Runs seed |seed| and stores its outcome in *res, printing the FAIL line
 * (and a dump when it stalled).  Returns 0, or -1 when memory ran out. */
static int run_seed(const sim_opts *o, const rudp_settings *s, const sim_link_config *lc,
                    uint64_t seed, sim_result *res) {
    sim_run *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -1;
    if (run_init(r, o, s, lc, seed) == 0)
        loop(r);
    if (!r->failed)
        final_checks(r);
    res->passed = !r->failed;
    rudp_tstamp last = r->dir_last[0] > r->dir_last[1] ? r->dir_last[0] : r->dir_last[1];
    res->goodput = mbits(r->dir_bytes[0] + r->dir_bytes[1], last);
    for (int d = 0; d < 2; d++)
        res->dir_goodput[d] = mbits(r->dir_bytes[d], r->dir_last[d]);
    if (o->verbose)
        print_summary(r, res);
    if (o->verbose && o->attack > 0)
        printf("seed %" PRIu64 ": adversary struck %" PRIu64 " times, %" PRIu64
               " forgeries refused with no effect\n",
               seed, r->adv.strikes, r->adv.refused);
    if (r->failed && strncmp(r->reason, "stalled", 7) == 0)
        dump(r);
    if (r->failed)
        printf("FAIL seed=%" PRIu64
               " reason=%s; replay: build/tests/rudp-sim --seed %" PRIu64 "%s%s\n",
               seed, r->reason, seed, o->flags[0] ? " " : "", o->flags);
    fflush(stdout);
    run_free(r);
    free(r);
    return 0;
}

/* Runs every selected seed and prints the goodput and the pass/fail line.
 * Returns the process exit status. */
static int run_all(const sim_opts *o, const rudp_settings *s, const sim_link_config *lc) {
    uint64_t first = o->seeds_given ? 1 : o->seed,
             last = o->seeds_given ? o->seeds : o->seed;
    uint64_t passed = 0, failed = 0;
    double sum = 0, dir_sum[2] = {0, 0};
    for (uint64_t seed = first; seed >= first && seed <= last; seed++) {
        sim_result res;
        if (run_seed(o, s, lc, seed, &res) != 0) {
            fprintf(stderr, "rudp-sim: out of memory\n");
            return 1;
        }
        passed += (uint64_t)res.passed;
        failed += (uint64_t)!res.passed;
        if (res.passed) {
            sum += res.goodput;
            dir_sum[0] += res.dir_goodput[0];
            dir_sum[1] += res.dir_goodput[1];
        }
    }
    if (passed > 0)
        printf("goodput (virtual time, mean of %" PRIu64 " passing runs): %s %.2f Mbit/s,"
               " %s %.2f Mbit/s, both directions together %.2f Mbit/s\n",
               passed, dir_name[0], dir_sum[0] / (double)passed, dir_name[1],
               dir_sum[1] / (double)passed, sum / (double)passed);
    printf("%" PRIu64 " passed, %" PRIu64 " failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    sim_opts o;
    if (parse_args(argc, argv, &o) != 0)
        return 2;
    if (o.help) {
        usage(stdout);
        return 0;
    }
    if (o.selftest_link)
        return sim_link_selftest(stdout) == 0 ? 0 : 1;
    rudp_settings s;
    sim_link_config lc;
    if (make_settings(&o, &s) != 0 || make_link_config(&o, s.max_packet_size, &lc) != 0)
        return 2;
    return run_all(&o, &s, &lc);
}
