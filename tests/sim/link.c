/*
 * link.c — the simulator's one-way link: bottleneck, queue, delay, impairments.
 *
 * The model follows picoquic's sim_link.c.  The bottleneck is a single
 * server of rate_bps: a datagram starts being clocked out when the previous
 * one has left (busy_until) and takes (len + 28) * 8 / rate seconds, so a
 * burst queues and its datagrams leave spaced by their serialisation times.
 * The queue is measured in datagrams still to be clocked out; the ring
 * |depart| holds their departure times, which are increasing, so the
 * datagrams that have left by time T are always a prefix of the ring.
 *
 * Loss comes after the bottleneck (a datagram lost on the wire has still
 * used the link), propagation delay and jitter after that.  The burst-loss
 * channel is the simple Gilbert model (the Gilbert–Elliott channel with loss
 * probability 0 in Good and 1 in Bad): with mean burst length B and target
 * rate L, r = 1/B and p = L r / (1 - L), which gives a stationary Bad
 * probability p / (p + r) = L.  The simulator uses B = 4.
 *
 * In-flight datagrams are copied into slots of a pool that doubles when it
 * runs out and never shrinks, and a binary min-heap of slot indices ordered
 * by (arrival time, send sequence) yields them in arrival order.  The
 * self-test at the end pushes datagrams through links with no sessions and
 * checks the arithmetic above against exact or statistical expectations.
 */
#include "link.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define SIM_LINK_INITIAL_SLOTS 64u
#define SIM_LINK_INITIAL_DEPART 64u

void sim_link_config_default(sim_link_config *c) {
    memset(c, 0, sizeof(*c));
    c->burst_len = 4.0;
    c->queue_limit = 10000;
    c->header_overhead = SIM_LINK_HEADER_OVERHEAD;
    c->max_datagram = 65535;
    c->max_in_flight = 1u << 20;
}

/* Returns true when |x| is a probability (a number in [0, 1]). */
static bool is_probability(double x) {
    return x >= 0.0 && x <= 1.0;
}

/* Returns the Gilbert Good->Bad transition probability that yields a
 * long-run loss rate |rate| with mean burst length |len|; may exceed 1 when
 * the combination is impossible. */
static double ge_good_to_bad(double rate, double len) {
    if (rate <= 0.0)
        return 0.0;
    if (rate >= 1.0)
        return INFINITY;
    return rate * (1.0 / len) / (1.0 - rate);
}

const char *sim_link_config_check(const sim_link_config *c) {
    if (!is_probability(c->loss))
        return "loss must be in [0, 1]";
    if (!is_probability(c->dup))
        return "dup must be in [0, 1]";
    if (!is_probability(c->corrupt))
        return "corrupt must be in [0, 1]";
    if (!(c->burst_len >= 1.0))
        return "burst_len must be at least 1";
    if (!is_probability(c->burst_loss) || ge_good_to_bad(c->burst_loss, c->burst_len) > 1.0)
        return "burst_loss too high for the mean burst length";
    if (c->max_datagram == 0 || c->max_datagram > UINT32_MAX)
        return "max_datagram out of range";
    if (c->max_in_flight < SIM_LINK_INITIAL_SLOTS)
        return "max_in_flight below the initial pool size";
    return NULL;
}

/* Grows the slot pool of |l| to |n| slots, adding the new ones to the free
 * stack.  Returns 0, or -1 when allocation fails (|l| is then unchanged but
 * possibly with larger arrays). */
static int pool_grow(sim_link *l, uint32_t n) {
    size_t dg = l->cfg.max_datagram;
    uint8_t *data = realloc(l->data, (size_t)n * dg);
    if (data == NULL)
        return -1;
    l->data = data;
    sim_link_slot *slots = realloc(l->slots, (size_t)n * sizeof(*slots));
    if (slots == NULL)
        return -1;
    l->slots = slots;
    uint32_t *heap = realloc(l->heap, (size_t)n * sizeof(*heap));
    if (heap == NULL)
        return -1;
    l->heap = heap;
    uint32_t *fr = realloc(l->free, (size_t)n * sizeof(*fr));
    if (fr == NULL)
        return -1;
    l->free = fr;
    for (uint32_t i = n; i > l->nslots; i--)
        l->free[l->nfree++] = i - 1;
    l->nslots = n;
    return 0;
}

int sim_link_init(sim_link *l, const sim_link_config *c, uint64_t seed) {
    memset(l, 0, sizeof(*l));
    if (sim_link_config_check(c) != NULL)
        return -1;
    l->cfg = *c;
    sim_prng_init(&l->rng, seed);
    l->ge_p = ge_good_to_bad(c->burst_loss, c->burst_len);
    l->ge_r = 1.0 / c->burst_len;
    l->depart = malloc(SIM_LINK_INITIAL_DEPART * sizeof(*l->depart));
    l->ndepart_cap = SIM_LINK_INITIAL_DEPART;
    if (l->depart == NULL || pool_grow(l, SIM_LINK_INITIAL_SLOTS) != 0) {
        sim_link_free(l);
        return -1;
    }
    return 0;
}

void sim_link_free(sim_link *l) {
    free(l->data);
    free(l->slots);
    free(l->heap);
    free(l->free);
    free(l->depart);
    memset(l, 0, sizeof(*l));
}

/* Returns true when slot |a| must come out of the heap before slot |b|. */
static bool slot_before(const sim_link *l, uint32_t a, uint32_t b) {
    const sim_link_slot *x = &l->slots[a], *y = &l->slots[b];
    return x->at < y->at || (x->at == y->at && x->seq < y->seq);
}

/* Adds slot |s| to the arrival heap of |l| (which has room: its capacity is
 * the pool size). */
static void heap_push(sim_link *l, uint32_t s) {
    uint32_t i = l->nheap++;
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!slot_before(l, s, l->heap[parent]))
            break;
        l->heap[i] = l->heap[parent];
        i = parent;
    }
    l->heap[i] = s;
}

/* Removes and returns the earliest slot of the non-empty heap of |l|. */
static uint32_t heap_pop(sim_link *l) {
    uint32_t top = l->heap[0];
    uint32_t last = l->heap[--l->nheap];
    uint32_t i = 0;
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= l->nheap)
            break;
        if (child + 1 < l->nheap && slot_before(l, l->heap[child + 1], l->heap[child]))
            child++;
        if (!slot_before(l, l->heap[child], last))
            break;
        l->heap[i] = l->heap[child];
        i = child;
    }
    if (l->nheap > 0)
        l->heap[i] = last;
    return top;
}

/* Forgets the departure times of datagrams fully clocked out by |now|. */
static void depart_trim(sim_link *l, rudp_tstamp now) {
    while (l->ndepart > 0 && l->depart[l->depart_head] <= now) {
        l->depart_head = (l->depart_head + 1) & (l->ndepart_cap - 1);
        l->ndepart--;
    }
}

/* Appends departure time |t| to the ring of |l|, doubling it when full.
 * Returns 0, or -1 when allocation fails. */
static int depart_push(sim_link *l, rudp_tstamp t) {
    if (l->ndepart == l->ndepart_cap) {
        uint32_t cap = l->ndepart_cap * 2;
        rudp_tstamp *d = malloc((size_t)cap * sizeof(*d));
        if (d == NULL)
            return -1;
        for (uint32_t i = 0; i < l->ndepart; i++)
            d[i] = l->depart[(l->depart_head + i) & (l->ndepart_cap - 1)];
        free(l->depart);
        l->depart = d;
        l->depart_head = 0;
        l->ndepart_cap = cap;
    }
    l->depart[(l->depart_head + l->ndepart) & (l->ndepart_cap - 1)] = t;
    l->ndepart++;
    return 0;
}

/* Returns the time the bottleneck of |l| needs to clock out |len| payload
 * bytes, rounded to the nearest nanosecond (0 when the rate is unlimited). */
static rudp_tstamp serialisation_time(const sim_link *l, size_t len) {
    if (l->cfg.rate_bps == 0)
        return 0;
    uint64_t bits = (uint64_t)(len + l->cfg.header_overhead) * 8u;
    return (bits * 1000000000ull + l->cfg.rate_bps / 2) / l->cfg.rate_bps;
}

/* Passes a |len|-byte datagram offered at |now| through the bottleneck of
 * |l| and stores when it leaves in *leave.  Returns SIM_LINK_SENT, or
 * SIM_LINK_DROP_QUEUE when the queue is full (or its ring cannot grow). */
static enum sim_link_verdict bottleneck(sim_link *l, size_t len, rudp_tstamp now,
                                        rudp_tstamp *leave) {
    if (l->cfg.rate_bps == 0) {
        *leave = now;
        return SIM_LINK_SENT;
    }
    depart_trim(l, now);
    if (l->ndepart > l->cfg.queue_limit)
        return SIM_LINK_DROP_QUEUE;
    rudp_tstamp start = l->busy_until > now ? l->busy_until : now;
    *leave = start + serialisation_time(l, len);
    if (depart_push(l, *leave) != 0)
        return SIM_LINK_DROP_QUEUE;
    l->busy_until = *leave;
    if (l->ndepart - 1 > l->stats.max_queued)
        l->stats.max_queued = l->ndepart - 1;
    return SIM_LINK_SENT;
}

/* Advances the Gilbert channel one step. */
static void ge_step(sim_link *l) {
    l->ge_bad =
        l->ge_bad ? !sim_prng_chance(&l->rng, l->ge_r) : sim_prng_chance(&l->rng, l->ge_p);
}

/* Decides whether the wire loses a datagram sent at |now|: random loss
 * first, then the Gilbert channel.  Its state advances once per datagram
 * and once per SIM_GE_IDLE_STEP of idle time since the last one, so a burst
 * is bounded in time as well as in packets (a sparse flow of probes does
 * not sit in one burst for seconds).  Returns SIM_LINK_SENT,
 * SIM_LINK_DROP_LOSS or SIM_LINK_DROP_BURST. */
static enum sim_link_verdict wire_loss(sim_link *l, rudp_tstamp now) {
    enum sim_link_verdict v = SIM_LINK_SENT;
    if (sim_prng_chance(&l->rng, l->cfg.loss))
        v = SIM_LINK_DROP_LOSS;
    if (l->cfg.burst_loss > 0.0) {
        rudp_tstamp idle = now > l->ge_last ? now - l->ge_last : 0;
        rudp_tstamp steps = idle / SIM_GE_IDLE_STEP;
        if (steps > 64)
            steps = 64; /* the chain has long forgotten its state by then */
        while (steps-- > 0)
            ge_step(l);
        l->ge_last = now;
        if (l->ge_bad && v == SIM_LINK_SENT)
            v = SIM_LINK_DROP_BURST;
        ge_step(l);
    }
    return v;
}

/* Returns true when time |t| lies inside the partition window of |l|. */
static bool partitioned(const sim_link *l, rudp_tstamp t) {
    const sim_link_config *c = &l->cfg;
    return c->partition_len > 0 && t >= c->partition_start &&
           t - c->partition_start < c->partition_len;
}

/* Returns a uniform random delay in [0, |max|] drawn from |l|. */
static rudp_tstamp random_delay(sim_link *l, rudp_tstamp max) {
    return max == 0 ? 0 : sim_prng_below(&l->rng, max + 1);
}

/* Flips 1 to 3 distinct random bits of the |len| bytes at |p|. */
static void flip_bits(sim_link *l, uint8_t *p, size_t len) {
    uint64_t nbits = (uint64_t)len * 8u, chosen[3];
    unsigned n = 1 + (unsigned)sim_prng_below(&l->rng, 3);
    if (n > nbits)
        n = (unsigned)nbits;
    for (unsigned i = 0; i < n; i++) {
        bool again;
        do {
            chosen[i] = sim_prng_below(&l->rng, nbits);
            again = false;
            for (unsigned j = 0; j < i; j++)
                again |= chosen[j] == chosen[i];
        } while (again);
        p[chosen[i] / 8] ^= (uint8_t)(1u << (chosen[i] % 8));
    }
}

/* Puts one copy of datagram |pkt| in flight to arrive at |at|, corrupting
 * it with the configured probability.  Returns SIM_LINK_SENT,
 * SIM_LINK_DROP_PARTITION or SIM_LINK_DROP_OVERFLOW. */
static enum sim_link_verdict launch_copy(sim_link *l, const uint8_t *pkt, size_t len,
                                         rudp_tstamp at) {
    if (partitioned(l, at)) {
        l->stats.drop_partition++;
        return SIM_LINK_DROP_PARTITION;
    }
    if (l->nfree == 0) {
        uint64_t want = (uint64_t)l->nslots * 2;
        if (want > l->cfg.max_in_flight)
            want = l->cfg.max_in_flight;
        if (want == l->nslots || pool_grow(l, (uint32_t)want) != 0) {
            l->stats.drop_overflow++;
            return SIM_LINK_DROP_OVERFLOW;
        }
    }
    uint32_t s = l->free[--l->nfree];
    uint8_t *dst = l->data + (size_t)s * l->cfg.max_datagram;
    memcpy(dst, pkt, len);
    if (sim_prng_chance(&l->rng, l->cfg.corrupt) && len > 0) {
        flip_bits(l, dst, len);
        l->stats.corrupted++;
    }
    l->slots[s] = (sim_link_slot){.at = at, .seq = l->seq++, .len = (uint32_t)len};
    heap_push(l, s);
    return SIM_LINK_SENT;
}

/* Records a datagram dropped before it reached the wire as verdict |v|
 * and returns |v|. */
static enum sim_link_verdict count_drop(sim_link *l, enum sim_link_verdict v) {
    switch (v) {
    case SIM_LINK_DROP_PARTITION:
        l->stats.drop_partition++;
        break;
    case SIM_LINK_DROP_QUEUE:
        l->stats.drop_queue++;
        break;
    case SIM_LINK_DROP_LOSS:
        l->stats.drop_loss++;
        break;
    case SIM_LINK_DROP_BURST:
        l->stats.drop_burst++;
        break;
    default:
        break;
    }
    return v;
}

enum sim_link_verdict sim_link_send(sim_link *l, const uint8_t *pkt, size_t len,
                                    rudp_tstamp now) {
    if (len > l->cfg.max_datagram)
        return SIM_LINK_TOO_BIG;
    l->stats.sent++;
    l->stats.bytes_sent += len;
    if (partitioned(l, now))
        return count_drop(l, SIM_LINK_DROP_PARTITION);
    rudp_tstamp leave;
    enum sim_link_verdict v = l->cfg.loss_first ? wire_loss(l, now) : SIM_LINK_SENT;
    if (v == SIM_LINK_SENT)
        v = bottleneck(l, len, now, &leave);
    if (v == SIM_LINK_SENT && !l->cfg.loss_first)
        v = wire_loss(l, leave);
    if (v != SIM_LINK_SENT)
        return count_drop(l, v);
    rudp_tstamp at = leave + l->cfg.delay + random_delay(l, l->cfg.jitter);
    bool dup = sim_prng_chance(&l->rng, l->cfg.dup);
    v = launch_copy(l, pkt, len, at);
    if (dup) {
        l->stats.duplicated++;
        launch_copy(l, pkt, len, at + random_delay(l, l->cfg.jitter + RUDP_MS(1)));
    }
    return v;
}

rudp_tstamp sim_link_next_arrival(const sim_link *l) {
    return l->nheap == 0 ? RUDP_TSTAMP_NEVER : l->slots[l->heap[0]].at;
}

size_t sim_link_receive(sim_link *l, rudp_tstamp now, uint8_t *buf, size_t cap) {
    if (l->nheap == 0 || l->slots[l->heap[0]].at > now)
        return 0;
    uint32_t s = heap_pop(l);
    size_t len = l->slots[s].len;
    memcpy(buf, l->data + (size_t)s * l->cfg.max_datagram, len < cap ? len : cap);
    l->free[l->nfree++] = s;
    l->stats.delivered++;
    l->stats.bytes_delivered += len;
    return len;
}

uint32_t sim_link_in_flight(const sim_link *l) {
    return l->nheap;
}

const char *sim_link_verdict_name(enum sim_link_verdict v) {
    switch (v) {
    case SIM_LINK_SENT:
        return "sent";
    case SIM_LINK_DROP_PARTITION:
        return "drop-partition";
    case SIM_LINK_DROP_QUEUE:
        return "drop-queue";
    case SIM_LINK_DROP_LOSS:
        return "drop-loss";
    case SIM_LINK_DROP_BURST:
        return "drop-burst";
    case SIM_LINK_DROP_OVERFLOW:
        return "drop-overflow";
    case SIM_LINK_TOO_BIG:
        return "too-big";
    }
    return "?";
}

/* ---- Self-test ---------------------------------------------------------- */

/* Logs one check named by |fmt| to |log| as ok or FAIL and returns 1 when
 * |ok| is false, 0 otherwise. */
static int check(FILE *log, bool ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(log, "%s ", ok ? "  ok  " : "  FAIL");
    vfprintf(log, fmt, ap);
    fputc('\n', log);
    va_end(ap);
    return ok ? 0 : 1;
}

/* Initialises |l| from |c| with seed 42 for a self-test.  Returns 0 or -1. */
static int test_link(sim_link *l, const sim_link_config *c) {
    return sim_link_init(l, c, 42);
}

/* Fills the |len| bytes at |p| with a pattern numbered |n|. */
static void test_fill(uint8_t *p, size_t len, uint64_t n) {
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(sim_prng_mix(n * 65536 + i / 8) >> (8 * (i % 8)));
}

/* Delay only: every datagram arrives exactly |delay| later, in order and
 * intact.  Returns the number of failed checks. */
static int selftest_delay(FILE *log) {
    sim_link_config c;
    sim_link_config_default(&c);
    c.delay = RUDP_MS(20);
    sim_link l;
    if (test_link(&l, &c) != 0)
        return check(log, false, "delay: init");
    uint8_t pkt[1200], got[65535];
    int bad = 0;
    for (uint64_t i = 0; i < 100; i++) {
        test_fill(pkt, sizeof(pkt), i);
        sim_link_send(&l, pkt, sizeof(pkt), RUDP_MS(i));
    }
    for (uint64_t i = 0; i < 100; i++) {
        rudp_tstamp at = sim_link_next_arrival(&l);
        size_t n = sim_link_receive(&l, at, got, sizeof(got));
        test_fill(pkt, sizeof(pkt), i);
        bad += at != RUDP_MS(i) + c.delay || n != sizeof(pkt) || memcmp(got, pkt, n) != 0;
    }
    int f =
        check(log, bad == 0, "delay: 100 datagrams arrive 20 ms later, intact, in order");
    f += check(log, sim_link_next_arrival(&l) == RUDP_TSTAMP_NEVER,
               "delay: link empty after");
    sim_link_free(&l);
    return f;
}

/* Rate: a burst of datagrams leaves spaced by exactly the serialisation
 * time of payload + header.  Returns the number of failed checks. */
static int selftest_rate(FILE *log) {
    sim_link_config c;
    sim_link_config_default(&c);
    c.delay = RUDP_MS(5);
    c.rate_bps = 10000000; /* 1028 bytes = 8224 bits = 822.4 us */
    sim_link l;
    if (test_link(&l, &c) != 0)
        return check(log, false, "rate: init");
    uint8_t pkt[1000] = {0}, got[65535];
    for (int i = 0; i < 10; i++)
        sim_link_send(&l, pkt, sizeof(pkt), 0);
    int bad = 0;
    for (uint64_t k = 0; k < 10; k++) {
        rudp_tstamp at = sim_link_next_arrival(&l);
        bad += at != (k + 1) * 822400 + c.delay;
        sim_link_receive(&l, at, got, sizeof(got));
    }
    int f = check(log, bad == 0, "rate: 10 x 1000 B at 10 Mbit/s leave 822.4 us apart");
    /* An idle link serialises a lone datagram from the moment it is sent. */
    sim_link_send(&l, pkt, sizeof(pkt), RUDP_SEC(1));
    f += check(log, sim_link_next_arrival(&l) == RUDP_SEC(1) + 822400 + c.delay,
               "rate: an idle bottleneck starts at once");
    sim_link_free(&l);
    return f;
}

/* Queue: with queue_limit 5, a burst of 20 keeps 1 in service + 5 waiting.
 * Returns the number of failed checks. */
static int selftest_queue(FILE *log) {
    sim_link_config c;
    sim_link_config_default(&c);
    c.rate_bps = 1000000;
    c.queue_limit = 5;
    sim_link l;
    if (test_link(&l, &c) != 0)
        return check(log, false, "queue: init");
    uint8_t pkt[1000] = {0};
    int sent = 0;
    for (int i = 0; i < 20; i++)
        sent += sim_link_send(&l, pkt, sizeof(pkt), 0) == SIM_LINK_SENT;
    int f = check(log, sent == 6 && l.stats.drop_queue == 14,
                  "queue: limit 5 admits 6 of a 20-datagram burst (got %d)", sent);
    /* Once the first has left, exactly one more fits. */
    rudp_tstamp first = sim_link_next_arrival(&l);
    sent = (sim_link_send(&l, pkt, sizeof(pkt), first) == SIM_LINK_SENT) +
           (sim_link_send(&l, pkt, sizeof(pkt), first) == SIM_LINK_SENT);
    f += check(log, sent == 1, "queue: one slot frees when one datagram leaves");
    sim_link_free(&l);
    return f;
}

/* Sends |n| datagrams through a link built from |c| one millisecond apart
 * and stores the link's statistics in *st.  Returns 0 or -1. */
static int run_stats(const sim_link_config *c, int n, sim_link_stats *st) {
    sim_link l;
    if (test_link(&l, c) != 0)
        return -1;
    uint8_t pkt[100] = {0}, got[65535];
    for (int i = 0; i < n; i++) {
        sim_link_send(&l, pkt, sizeof(pkt), RUDP_MS(i));
        while (sim_link_receive(&l, RUDP_MS(i), got, sizeof(got)) > 0) {
        }
    }
    while (sim_link_receive(&l, RUDP_TSTAMP_NEVER - 1, got, sizeof(got)) > 0) {
    }
    *st = l.stats;
    sim_link_free(&l);
    return 0;
}

/* Random loss, duplication: measured rates match the configuration within
 * a few standard deviations.  Returns the number of failed checks. */
static int selftest_loss_dup(FILE *log) {
    sim_link_config c;
    sim_link_config_default(&c);
    c.loss = 0.10;
    c.dup = 0.05;
    sim_link_stats st;
    if (run_stats(&c, 100000, &st) != 0)
        return check(log, false, "loss: init");
    double loss = (double)st.drop_loss / 1e5;
    double dup = (double)st.duplicated / (1e5 - (double)st.drop_loss);
    int f = check(log, fabs(loss - 0.10) < 0.003, "loss: 10%% configured, %.2f%% measured",
                  loss * 100);
    f += check(log, fabs(dup - 0.05) < 0.003, "dup: 5%% configured, %.2f%% measured",
               dup * 100);
    f += check(log, st.delivered == 100000 - st.drop_loss + st.duplicated,
               "dup: every surviving datagram and copy is delivered");
    return f;
}

/* Burst loss: the long-run rate and the mean burst length match the
 * Gilbert parameters.  Returns the number of failed checks. */
static int selftest_burst(FILE *log) {
    sim_link_config c;
    sim_link_config_default(&c);
    c.burst_loss = 0.03;
    sim_link l;
    if (test_link(&l, &c) != 0)
        return check(log, false, "burst: init");
    uint8_t pkt[100] = {0}, got[65535];
    uint64_t bursts = 0;
    bool prev_lost = false;
    const int n = 400000;
    for (int i = 0; i < n; i++) {
        bool lost = sim_link_send(&l, pkt, sizeof(pkt),
                                  RUDP_US(i) /* back to back: no idle steps */) ==
                    SIM_LINK_DROP_BURST;
        bursts += lost && !prev_lost;
        prev_lost = lost;
        while (sim_link_receive(&l, RUDP_MS(i), got, sizeof(got)) > 0) {
        }
    }
    double rate = (double)l.stats.drop_burst / n;
    double mean = bursts ? (double)l.stats.drop_burst / (double)bursts : 0;
    int f = check(log, fabs(rate - 0.03) < 0.004, "burst: 3%% configured, %.2f%% measured",
                  rate * 100);
    f += check(log, fabs(mean - 4.0) < 0.4, "burst: mean burst length %.2f (want 4)", mean);
    sim_link_free(&l);
    return f;
}

/* Corruption: every corrupted copy differs from the original in 1 to 3
 * bits and the sender's buffer is untouched.  Returns failed checks. */
static int selftest_corrupt(FILE *log) {
    sim_link_config c;
    sim_link_config_default(&c);
    c.corrupt = 1.0;
    sim_link l;
    if (test_link(&l, &c) != 0)
        return check(log, false, "corrupt: init");
    uint8_t pkt[1200], ref[1200], got[65535];
    int bad = 0, hist[4] = {0};
    for (uint64_t i = 0; i < 3000; i++) {
        test_fill(pkt, sizeof(pkt), i);
        memcpy(ref, pkt, sizeof(pkt));
        sim_link_send(&l, pkt, sizeof(pkt), 0);
        sim_link_receive(&l, 0, got, sizeof(got));
        int diff = 0;
        for (size_t k = 0; k < sizeof(pkt); k++)
            diff += __builtin_popcount(got[k] ^ ref[k]);
        bad += diff < 1 || diff > 3 || memcmp(pkt, ref, sizeof(pkt)) != 0;
        hist[diff >= 1 && diff <= 3 ? diff : 0]++;
    }
    int f = check(log, bad == 0 && hist[1] > 800 && hist[2] > 800 && hist[3] > 800,
                  "corrupt: 1/2/3 bits flipped in %d/%d/%d of 3000 copies", hist[1],
                  hist[2], hist[3]);
    sim_link_free(&l);
    return f;
}

/* Partition: datagrams sent inside, or arriving inside, the window are
 * dropped; the others arrive.  Returns the number of failed checks. */
static int selftest_partition(FILE *log) {
    sim_link_config c;
    sim_link_config_default(&c);
    c.delay = RUDP_MS(10);
    c.partition_start = RUDP_MS(100);
    c.partition_len = RUDP_MS(50);
    sim_link l;
    if (test_link(&l, &c) != 0)
        return check(log, false, "partition: init");
    uint8_t pkt[100] = {0};
    int bad = 0;
    for (uint64_t t = 0; t < 200; t++) {
        bool in = (t >= 100 && t < 150) || (t + 10 >= 100 && t + 10 < 150);
        enum sim_link_verdict v = sim_link_send(&l, pkt, sizeof(pkt), RUDP_MS(t));
        bad += in != (v == SIM_LINK_DROP_PARTITION);
    }
    int f = check(log, bad == 0 && l.stats.drop_partition == 60,
                  "partition: 60 of 200 datagrams cut by a 50 ms window (%" PRIu64 ")",
                  l.stats.drop_partition);
    sim_link_free(&l);
    return f;
}

/* Jitter: arrivals stay within [delay, delay + jitter] and reorder datagrams
 * sent closer together than the jitter.  Returns failed checks. */
static int selftest_jitter(FILE *log) {
    sim_link_config c;
    sim_link_config_default(&c);
    c.delay = RUDP_MS(20);
    c.jitter = RUDP_MS(10);
    sim_link l;
    if (test_link(&l, &c) != 0)
        return check(log, false, "jitter: init");
    uint8_t pkt[8], got[65535];
    for (uint64_t i = 0; i < 1000; i++) {
        memcpy(pkt, &i, sizeof(i));
        sim_link_send(&l, pkt, sizeof(pkt), RUDP_MS(i));
    }
    int out_of_range = 0, reordered = 0;
    uint64_t last = 0;
    for (int k = 0; k < 1000; k++) {
        rudp_tstamp at = sim_link_next_arrival(&l);
        uint64_t i;
        sim_link_receive(&l, at, got, sizeof(got));
        memcpy(&i, got, sizeof(i));
        out_of_range += at < RUDP_MS(i) + c.delay || at > RUDP_MS(i) + c.delay + c.jitter;
        reordered += k > 0 && i < last;
        last = i;
    }
    int f = check(log, out_of_range == 0, "jitter: every arrival within [20, 30] ms");
    f += check(log, reordered > 100, "jitter: %d of 1000 datagrams overtaken", reordered);
    sim_link_free(&l);
    return f;
}

/* Computes a digest of everything a fully impaired link built with |seed|
 * delivers for a fixed input.  Returns the digest. */
static uint64_t impaired_digest(uint64_t seed) {
    sim_link_config c;
    sim_link_config_default(&c);
    c.delay = RUDP_MS(7);
    c.jitter = RUDP_MS(3);
    c.loss = 0.05;
    c.burst_loss = 0.02;
    c.dup = 0.05;
    c.corrupt = 0.05;
    c.rate_bps = 5000000;
    c.queue_limit = 20;
    sim_link l;
    if (sim_link_init(&l, &c, seed) != 0)
        return 0;
    uint8_t pkt[500], got[65535];
    uint64_t h = 0;
    for (uint64_t i = 0; i < 5000; i++) {
        test_fill(pkt, sizeof(pkt), i);
        sim_link_send(&l, pkt, sizeof(pkt), RUDP_US(i * 300));
        size_t n;
        while ((n = sim_link_receive(&l, RUDP_US(i * 300), got, sizeof(got))) > 0)
            for (size_t k = 0; k < n; k++)
                h = (h ^ got[k]) * 0x100000001b3ull;
    }
    sim_link_free(&l);
    return h;
}

/* Determinism: the same seed gives the same deliveries, another seed does
 * not.  Returns the number of failed checks. */
static int selftest_determinism(FILE *log) {
    uint64_t a = impaired_digest(7), b = impaired_digest(7), c = impaired_digest(8);
    return check(log, a == b && a != c, "determinism: a seed replays exactly");
}

int sim_link_selftest(FILE *log) {
    int f = selftest_delay(log);
    f += selftest_rate(log);
    f += selftest_queue(log);
    f += selftest_loss_dup(log);
    f += selftest_burst(log);
    f += selftest_corrupt(log);
    f += selftest_partition(log);
    f += selftest_jitter(log);
    f += selftest_determinism(log);
    fprintf(log, "link self-test: %d check(s) failed\n", f);
    return f;
}
