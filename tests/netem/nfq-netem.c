/*
 * nfq-netem.c — rudp-netem, an impaired link for kernels without sch_netem.
 *
 * DESIGN.md §6 wants every comparison between kernel TCP and rudp made on the
 * same bad link.  Where the kernel has sch_netem, `tc qdisc ... netem` is that
 * link; this project's machines and CI have no sch_netem, so this program
 * stands in for it with the knobs the benchmarks and tests need: one-way
 * delay, uniform jitter (which reorders), random loss, a bottleneck (a rate
 * with a drop-tail queue of a given number of packets, like netem's `rate`
 * with `limit`) and duplication.  docs/NETEM.md tells how to use it; normally
 * scripts/netem starts it and adds the iptables rules.
 *
 * How it works.  iptables rules in a network namespace send the packets of the
 * chosen ports to two NFQUEUE queues on the INPUT hook: queue N gets the
 * packets going *to* the ports (--dport), queue N+1 the packets coming *from*
 * them (--sport).  Each queue is one direction of the link and has its own
 * bottleneck, as on a real full-duplex link.  The kernel parks every queued
 * packet and tells us its id and its first bytes; we decide its fate at once:
 *
 *   1. loss: with probability --loss the packet gets an NF_DROP verdict;
 *   2. bottleneck (--rate, --queue): a packet that finds --queue packets not
 *      yet serialised is dropped (drop-tail); otherwise it leaves the
 *      bottleneck when the ones before it and itself have been serialised at
 *      --rate (IP length plus a 14-byte Ethernet header, as netem counts on lo);
 *   3. propagation: it is released --delay plus a uniform [0, --jitter] later.
 *
 * Release times go into a binary heap; the single-threaded loop polls the
 * queue socket, a timerfd armed for the earliest release and a signalfd, and
 * gives NF_ACCEPT verdicts by packet id as the times come, so packets may
 * leave out of order (jitter).  No payload is copied: the kernel copies the
 * first 40 bytes (the IP header, for the length); only --dup copies whole
 * packets, because the copy must be sent again.  Nothing is allocated per
 * packet.  The netlink socket gets a large forced receive buffer and
 * NETLINK_NO_ENOBUFS, and the kernel queues a large maximum length.
 *
 * Why INPUT and not OUTPUT: a packet held on the sender's OUTPUT hook still
 * belongs to the sending socket, so TCP Small Queues sees it as queued in the
 * host and throttles kernel TCP to a few packets per round trip.  On loopback
 * the packet is orphaned before INPUT, so holding it there costs the sender
 * nothing.  Packets that TCP built as 64 KiB GSO segments are cut to MTU-sized
 * packets by nfnetlink_queue (we do not set NFQA_CFG_F_GSO), so each one is
 * delayed and lost on its own; scripts/netem also sets lo's MTU to 1500.
 *
 * Duplication: a chosen packet is copied and sent again through a raw socket
 * with the mark NN_MARK_DUP; the copy comes back through INPUT, is queued and
 * impaired on its own like any packet, and is never duplicated again.
 *
 * On SIGINT or SIGTERM every held packet is released at once (NF_ACCEPT), the
 * statistics go to stderr and the program exits 0; SIGUSR1 prints them without
 * stopping.  The statistics let tests check that the impairment was applied.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <linux/netfilter.h>
#include <linux/netlink.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

#define NN_NEVER UINT64_MAX
#define NN_MARK_DUP 0x52554450u /* "RUDP": a copy made by --dup */
#define NN_FRAME_OVERHEAD 14    /* Ethernet header on lo, as netem counts it */
#define NN_COPY_HEADER 40       /* bytes copied per packet: enough for any IP header */
#define NN_RCVBUF (16 << 20)    /* netlink socket receive buffer */
#define NN_BUFSZ (256 << 10)    /* one netlink message, whole packets with --dup */
#define NN_BATCH 256            /* messages read before due packets are released */

/* Error codes of the functions below. */
enum nn_err {
    NN_OK = 0,
    NN_ERR_ARG = -1,  /* a bad command-line value */
    NN_ERR_SYS = -2,  /* a system call failed; errno says why */
    NN_ERR_FULL = -3, /* the heap of held packets is full */
};

/* The two directions: queue N gets packets to the ports, N+1 from them. */
enum nn_dir { NN_FWD = 0, NN_REV = 1, NN_NDIR = 2 };
static const char *const nn_dir_name[NN_NDIR] = {"fwd", "rev"};

/* The impairment, from the command line; times in nanoseconds. */
struct nn_settings {
    uint64_t delay_ns;  /* one-way propagation delay */
    uint64_t jitter_ns; /* extra delay, uniform in [0, jitter] */
    double loss;        /* probability a packet is dropped */
    double dup;         /* probability a packet is sent twice */
    uint64_t rate_bps;  /* bottleneck rate in bit/s; 0: none */
    uint32_t queue;     /* bottleneck drop-tail queue, packets */
    uint64_t seed;      /* random seed */
    uint16_t queue_num; /* NFQUEUE numbers queue_num and queue_num + 1 */
    uint32_t max_held;  /* kernel queue length, per queue */
};

/* What happened to the packets of one direction. */
struct nn_stats {
    uint64_t seen;        /* packets queued to us */
    uint64_t bytes;       /* their IP lengths */
    uint64_t lost;        /* dropped by --loss */
    uint64_t queue_drops; /* dropped by the full bottleneck queue */
    uint64_t duplicated;  /* copies sent by --dup */
    uint64_t delayed;     /* released later than they came */
    uint64_t verdict_err; /* verdicts the kernel refused */
};

/* One direction's bottleneck: departure times of the packets still in it. */
struct nn_link {
    uint64_t *depart;     /* ring of departure times, capacity cap */
    uint32_t head, count; /* oldest entry and number of entries */
    uint32_t cap;         /* settings.queue; 0 when there is no rate */
    uint64_t last_depart; /* when the bottleneck is free again */
    struct nn_stats st;
};

/* A packet waiting for its verdict. */
struct nn_held {
    uint64_t release; /* when to accept it (CLOCK_MONOTONIC ns) */
    uint64_t seq;     /* arrival order, to break ties */
    uint32_t id;      /* the kernel's packet id */
    uint32_t dir;     /* which queue it came from */
};

/* A binary min-heap of held packets keyed by (release, seq). */
struct nn_heap {
    struct nn_held *v;
    size_t n, cap;
    size_t max_n; /* the most ever held */
};

struct nn_app;

/* One bound queue and its direction, handed to the packet callback. */
struct nn_queue {
    struct nn_app *app;
    struct nfq_q_handle *qh;
    enum nn_dir dir;
};

struct nn_app {
    struct nn_settings set;
    struct nfq_handle *h;
    struct nn_queue q[NN_NDIR];
    struct nn_link link[NN_NDIR];
    struct nn_heap heap;
    uint64_t rng;   /* splitmix64 state */
    uint64_t seq;   /* next arrival number */
    uint64_t armed; /* release time the timerfd is armed for */
    int nlfd, tfd, sfd;
    int raw4, raw6; /* raw sockets for --dup copies; -1 when unused */
    char *buf;      /* one netlink message */
};

/* ------------------------------------------------------------ utilities */

/* Returns CLOCK_MONOTONIC in nanoseconds. */
static uint64_t nn_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Returns the next 64 random bits of splitmix64 from *state. */
static uint64_t nn_rand(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Returns a uniform double in [0, 1). */
static double nn_rand_unit(uint64_t *state) {
    return (double)(nn_rand(state) >> 11) * (1.0 / 9007199254740992.0);
}

/* Returns a uniform integer in [0, n]; n + 1 must not overflow. */
static uint64_t nn_rand_upto(uint64_t *state, uint64_t n) {
    return n == 0 ? 0 : nn_rand(state) % (n + 1);
}

/* Returns a packet's IP length from its first bytes, or fallback when they
 * are too short or not IP. */
static uint32_t nn_ip_length(const unsigned char *p, int len, uint32_t fallback) {
    if (len >= 4 && (p[0] >> 4) == 4)
        return (uint32_t)p[2] << 8 | p[3];
    if (len >= 6 && (p[0] >> 4) == 6)
        return ((uint32_t)p[4] << 8 | p[5]) + 40;
    return fallback;
}

/* ----------------------------------------------------------------- heap */

/* Allocates room for cap entries.  Returns NN_OK or NN_ERR_SYS. */
static int nn_heap_init(struct nn_heap *hp, size_t cap) {
    hp->v = calloc(cap, sizeof(*hp->v));
    hp->n = hp->max_n = 0;
    hp->cap = cap;
    return hp->v ? NN_OK : NN_ERR_SYS;
}

/* Returns whether a must leave before b. */
static bool nn_held_before(const struct nn_held *a, const struct nn_held *b) {
    return a->release < b->release || (a->release == b->release && a->seq < b->seq);
}

/* Adds e.  Returns NN_OK, or NN_ERR_FULL when the heap is full. */
static int nn_heap_push(struct nn_heap *hp, struct nn_held e) {
    if (hp->n == hp->cap)
        return NN_ERR_FULL;
    size_t i = hp->n++;
    while (i > 0 && nn_held_before(&e, &hp->v[(i - 1) / 2])) {
        hp->v[i] = hp->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    hp->v[i] = e;
    if (hp->n > hp->max_n)
        hp->max_n = hp->n;
    return NN_OK;
}

/* Removes and returns the earliest entry; the heap must not be empty. */
static struct nn_held nn_heap_pop(struct nn_heap *hp) {
    struct nn_held top = hp->v[0], last = hp->v[--hp->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= hp->n)
            break;
        if (c + 1 < hp->n && nn_held_before(&hp->v[c + 1], &hp->v[c]))
            c++;
        if (!nn_held_before(&hp->v[c], &last))
            break;
        hp->v[i] = hp->v[c];
        i = c;
    }
    if (hp->n > 0)
        hp->v[i] = last;
    return top;
}

/* ------------------------------------------------------ the link model */

/* Allocates the bottleneck ring for settings s.  Returns NN_OK or NN_ERR_SYS. */
static int nn_link_init(struct nn_link *l, const struct nn_settings *s) {
    memset(l, 0, sizeof(*l));
    if (s->rate_bps == 0)
        return NN_OK;
    l->cap = s->queue;
    l->depart = calloc(l->cap, sizeof(*l->depart));
    return l->depart ? NN_OK : NN_ERR_SYS;
}

/* Forgets the packets that have left the bottleneck by time now. */
static void nn_link_drain(struct nn_link *l, uint64_t now) {
    while (l->count > 0 && l->depart[l->head] <= now) {
        l->head = (l->head + 1) % l->cap;
        l->count--;
    }
}

/* Passes a packet of len IP bytes through the bottleneck at time now.
 * Returns when it has been serialised, or NN_NEVER when the queue is full. */
static uint64_t nn_link_serialise(struct nn_link *l, const struct nn_settings *s,
                                  uint64_t now, uint32_t len) {
    if (s->rate_bps == 0)
        return now;
    nn_link_drain(l, now);
    if (l->count == l->cap)
        return NN_NEVER;
    uint64_t bits = (uint64_t)(len + NN_FRAME_OVERHEAD) * 8;
    uint64_t start = l->last_depart > now ? l->last_depart : now;
    l->last_depart = start + bits * 1000000000u / s->rate_bps;
    l->depart[(l->head + l->count++) % l->cap] = l->last_depart;
    return l->last_depart;
}

/* Decides the fate of a packet of len bytes arriving at now.  Returns its
 * release time, or NN_NEVER when it is to be dropped (counted in l->st). */
static uint64_t nn_link_admit(struct nn_link *l, const struct nn_settings *s, uint64_t *rng,
                              uint64_t now, uint32_t len) {
    l->st.seen++;
    l->st.bytes += len;
    if (s->loss > 0 && nn_rand_unit(rng) < s->loss) {
        l->st.lost++;
        return NN_NEVER;
    }
    uint64_t out = nn_link_serialise(l, s, now, len);
    if (out == NN_NEVER) {
        l->st.queue_drops++;
        return NN_NEVER;
    }
    return out + s->delay_ns + nn_rand_upto(rng, s->jitter_ns);
}

/* ------------------------------------------------------------ verdicts */

/* Gives packet id of direction dir the verdict v; counts a refusal. */
static void nn_verdict(struct nn_app *a, enum nn_dir dir, uint32_t id, uint32_t v) {
    if (nfq_set_verdict(a->q[dir].qh, id, v, 0, NULL) < 0)
        a->link[dir].st.verdict_err++;
}

/* Accepts every held packet whose release time is at or before now. */
static void nn_release_due(struct nn_app *a, uint64_t now) {
    while (a->heap.n > 0 && a->heap.v[0].release <= now) {
        struct nn_held e = nn_heap_pop(&a->heap);
        nn_verdict(a, e.dir, e.id, NF_ACCEPT);
    }
}

/* Arms the timerfd for the earliest held packet (or disarms it).  Returns
 * NN_OK or NN_ERR_SYS. */
static int nn_arm(struct nn_app *a) {
    uint64_t t = a->heap.n > 0 ? a->heap.v[0].release : NN_NEVER;
    if (t == a->armed)
        return NN_OK;
    struct itimerspec its = {0};
    if (t != NN_NEVER) {
        its.it_value.tv_sec = (time_t)(t / 1000000000u);
        its.it_value.tv_nsec = (long)(t % 1000000000u);
    }
    a->armed = t;
    return timerfd_settime(a->tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0 ? NN_ERR_SYS : NN_OK;
}

/* Sends a copy of the IP packet p (len bytes) through a raw socket with the
 * mark NN_MARK_DUP.  Returns NN_OK or NN_ERR_SYS. */
static int nn_send_copy(struct nn_app *a, const unsigned char *p, int len) {
    ssize_t r = -1;
    if (len >= 20 && (p[0] >> 4) == 4) {
        struct sockaddr_in to = {.sin_family = AF_INET};
        memcpy(&to.sin_addr, p + 16, 4);
        r = sendto(a->raw4, p, (size_t)len, 0, (struct sockaddr *)&to, sizeof(to));
    } else if (len >= 40 && (p[0] >> 4) == 6) {
        struct sockaddr_in6 to = {.sin6_family = AF_INET6};
        memcpy(&to.sin6_addr, p + 24, 16);
        r = sendto(a->raw6, p, (size_t)len, 0, (struct sockaddr *)&to, sizeof(to));
    }
    return r == len ? NN_OK : NN_ERR_SYS;
}

/* The NFQUEUE callback: decides one packet's fate and holds or drops it.
 * Returns 0 (libnetfilter_queue passes it back from nfq_handle_packet). */
static int nn_on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa,
                        void *data) {
    struct nn_queue *q = data;
    struct nn_app *a = q->app;
    struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
    if (ph == NULL)
        return 0;
    uint32_t id = ntohl(ph->packet_id);
    unsigned char *p = NULL;
    int plen = nfq_get_payload(nfa, &p);
    uint32_t len = nn_ip_length(p, plen, plen > 0 ? (uint32_t)plen : 0);
    struct nn_link *l = &a->link[q->dir];
    uint64_t now = nn_now();
    uint64_t release = nn_link_admit(l, &a->set, &a->rng, now, len);
    if (release == NN_NEVER) {
        nn_verdict(a, q->dir, id, NF_DROP);
        return 0;
    }
    if (a->set.dup > 0 && nfq_get_nfmark(nfa) != NN_MARK_DUP &&
        nn_rand_unit(&a->rng) < a->set.dup && nn_send_copy(a, p, plen) == NN_OK)
        l->st.duplicated++;
    if (release > now)
        l->st.delayed++;
    struct nn_held e = {.release = release, .seq = a->seq++, .id = id, .dir = q->dir};
    if (nn_heap_push(&a->heap, e) != NN_OK)
        nn_verdict(a, q->dir, id, NF_ACCEPT); /* cannot happen: heap >= kernel queues */
    return 0;
}

/* Reads and handles the messages waiting on the queue socket, at most
 * NN_BATCH of them so that due releases are not held up.  Returns NN_OK, or
 * NN_ERR_SYS when the socket failed. */
static int nn_drain_socket(struct nn_app *a) {
    for (int n = 0; n < NN_BATCH; n++) {
        ssize_t r = recv(a->nlfd, a->buf, NN_BUFSZ, MSG_DONTWAIT);
        if (r > 0) {
            nfq_handle_packet(a->h, a->buf, (int)r);
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return NN_OK;
        if (r < 0 && (errno == EINTR || errno == ENOBUFS))
            continue;
        return NN_ERR_SYS;
    }
    return NN_OK;
}

/* ------------------------------------------------------------ statistics */

/* Returns the kernel's count of packets it dropped for queue num because the
 * queue was full or our socket overflowed, or 0 when it cannot be read. */
static uint64_t nn_kernel_drops(unsigned num) {
    FILE *f = fopen("/proc/net/netfilter/nfnetlink_queue", "r");
    if (f == NULL)
        return 0;
    unsigned qn, portid, total, mode, range, id, one;
    unsigned long long qdropped, udropped, sum = 0;
    while (fscanf(f, "%u %u %u %u %u %llu %llu %u %u", &qn, &portid, &total, &mode, &range,
                  &qdropped, &udropped, &id, &one) == 9) {
        if (qn == num)
            sum += qdropped + udropped;
    }
    fclose(f);
    return sum;
}

/* Prints one line of statistics for st, named name, to stderr. */
static void nn_print_stats(const char *name, const struct nn_stats *st) {
    fprintf(stderr,
            "rudp-netem: stats %s: seen=%" PRIu64 " bytes=%" PRIu64 " lost=%" PRIu64
            " queue_drops=%" PRIu64 " duplicated=%" PRIu64 " delayed=%" PRIu64
            " verdict_errors=%" PRIu64 "\n",
            name, st->seen, st->bytes, st->lost, st->queue_drops, st->duplicated,
            st->delayed, st->verdict_err);
}

/* Prints the statistics of each direction and their total to stderr. */
static void nn_report(const struct nn_app *a) {
    struct nn_stats t = {0};
    for (int d = 0; d < NN_NDIR; d++) {
        const struct nn_stats *s = &a->link[d].st;
        nn_print_stats(nn_dir_name[d], s);
        t.seen += s->seen, t.bytes += s->bytes, t.lost += s->lost;
        t.queue_drops += s->queue_drops, t.duplicated += s->duplicated;
        t.delayed += s->delayed, t.verdict_err += s->verdict_err;
    }
    nn_print_stats("total", &t);
    uint64_t kd =
        nn_kernel_drops(a->set.queue_num) + nn_kernel_drops(a->set.queue_num + 1u);
    fprintf(stderr, "rudp-netem: held now=%zu max=%zu kernel_drops=%" PRIu64 "\n",
            a->heap.n, a->heap.max_n, kd);
}

/* ----------------------------------------------------------------- setup */

/* Makes the raw sockets that send --dup copies.  Returns NN_OK or NN_ERR_SYS. */
static int nn_open_raw(struct nn_app *a) {
    uint32_t mark = NN_MARK_DUP;
    int one = 1;
    a->raw4 = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
    a->raw6 = socket(AF_INET6, SOCK_RAW, IPPROTO_RAW);
    if (a->raw4 < 0 || a->raw6 < 0)
        return NN_ERR_SYS;
    if (setsockopt(a->raw4, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0 ||
        setsockopt(a->raw6, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0 ||
        setsockopt(a->raw4, IPPROTO_IP, IP_HDRINCL, &one, sizeof(one)) < 0)
        return NN_ERR_SYS;
    return NN_OK;
}

/* Binds queue a->set.queue_num + dir.  Returns NN_OK or NN_ERR_SYS. */
static int nn_bind_queue(struct nn_app *a, enum nn_dir dir) {
    struct nn_queue *q = &a->q[dir];
    q->app = a;
    q->dir = dir;
    q->qh = nfq_create_queue(a->h, (uint16_t)(a->set.queue_num + dir), nn_on_packet, q);
    if (q->qh == NULL)
        return NN_ERR_SYS;
    unsigned copy = a->set.dup > 0 ? 0xffff : NN_COPY_HEADER;
    if (nfq_set_mode(q->qh, NFQNL_COPY_PACKET, copy) < 0 ||
        nfq_set_queue_maxlen(q->qh, a->set.max_held) < 0)
        return NN_ERR_SYS;
    return NN_OK;
}

/* Opens the netlink socket with a large buffer and no ENOBUFS errors. */
static int nn_open_netlink(struct nn_app *a) {
    int one = 1, size = NN_RCVBUF;
    a->h = nfq_open();
    if (a->h == NULL)
        return NN_ERR_SYS;
    a->nlfd = nfq_fd(a->h);
    nfnl_rcvbufsiz(nfq_nfnlh(a->h), NN_RCVBUF);
    if (setsockopt(a->nlfd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0 ||
        setsockopt(a->nlfd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one)) < 0)
        return NN_ERR_SYS;
    return NN_OK;
}

/* Makes the timerfd and a signalfd for SIGINT, SIGTERM and SIGUSR1 (blocked). */
static int nn_open_fds(struct nn_app *a) {
    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGINT);
    sigaddset(&ss, SIGTERM);
    sigaddset(&ss, SIGUSR1);
    if (sigprocmask(SIG_BLOCK, &ss, NULL) < 0)
        return NN_ERR_SYS;
    a->sfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
    a->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    a->armed = NN_NEVER;
    return a->sfd < 0 || a->tfd < 0 ? NN_ERR_SYS : NN_OK;
}

/* Sets everything up.  Returns NN_OK, or NN_ERR_SYS after printing why. */
static int nn_setup(struct nn_app *a) {
    const char *step = "memory";
    a->raw4 = a->raw6 = -1;
    a->rng = a->set.seed;
    a->buf = malloc(NN_BUFSZ);
    if (a->buf == NULL || nn_heap_init(&a->heap, (size_t)a->set.max_held * NN_NDIR + 16) ||
        nn_link_init(&a->link[0], &a->set) || nn_link_init(&a->link[1], &a->set))
        goto fail;
    step = "signalfd/timerfd";
    if (nn_open_fds(a))
        goto fail;
    step = "netlink socket (root? nfnetlink_queue?)";
    if (nn_open_netlink(a))
        goto fail;
    step = "binding the queues (already bound by another process?)";
    if (nn_bind_queue(a, NN_FWD) || nn_bind_queue(a, NN_REV))
        goto fail;
    step = "raw sockets for --dup";
    if (a->set.dup > 0 && nn_open_raw(a))
        goto fail;
    return NN_OK;
fail:
    fprintf(stderr, "rudp-netem: %s: %s\n", step, strerror(errno));
    return NN_ERR_SYS;
}

/* ------------------------------------------------------------ main loop */

/* Reads the pending signals.  Returns 1 to stop, 0 to go on. */
static int nn_on_signal(struct nn_app *a) {
    struct signalfd_siginfo si;
    int stop = 0;
    while (read(a->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGUSR1)
            nn_report(a);
        else
            stop = 1;
    }
    return stop;
}

/* Runs until a signal says stop.  Returns NN_OK or NN_ERR_SYS. */
static int nn_run(struct nn_app *a) {
    struct pollfd pf[3] = {
        {.fd = a->nlfd, .events = POLLIN},
        {.fd = a->tfd, .events = POLLIN},
        {.fd = a->sfd, .events = POLLIN},
    };
    for (;;) {
        if (poll(pf, 3, -1) < 0 && errno != EINTR)
            return NN_ERR_SYS;
        if ((pf[2].revents & POLLIN) && nn_on_signal(a))
            return NN_OK;
        if ((pf[0].revents & POLLIN) && nn_drain_socket(a))
            return NN_ERR_SYS;
        if (pf[1].revents & POLLIN) {
            uint64_t ticks;
            ssize_t r = read(a->tfd, &ticks, sizeof(ticks));
            (void)r;
            a->armed = NN_NEVER; /* it fired: arm again whatever the top */
        }
        nn_release_due(a, nn_now());
        if (nn_arm(a))
            return NN_ERR_SYS;
    }
}

/* Releases every held packet now, unbinds the queues and frees everything. */
static void nn_teardown(struct nn_app *a) {
    if (a->heap.v)
        nn_release_due(a, NN_NEVER);
    for (int d = 0; d < NN_NDIR; d++) {
        if (a->q[d].qh)
            nfq_destroy_queue(a->q[d].qh);
        free(a->link[d].depart);
    }
    if (a->h)
        nfq_close(a->h);
    if (a->raw4 >= 0)
        close(a->raw4);
    if (a->raw6 >= 0)
        close(a->raw6);
    free(a->heap.v);
    free(a->buf);
}

/* ---------------------------------------------------------- command line */

/* Fills s with the defaults: no impairment, seed 1, queues 0 and 1. */
static void nn_settings_default(struct nn_settings *s) {
    memset(s, 0, sizeof(*s));
    s->seed = 1;
    s->max_held = 20000;
}

/* Parses a non-negative number in [lo, hi] from text into *out.  Returns
 * NN_OK or NN_ERR_ARG after printing which option was wrong. */
static int nn_parse_num(const char *opt, const char *text, double lo, double hi,
                        double *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "rudp-netem: --%s: '%s' is not a number in [%g, %g]\n", opt, text,
                lo, hi);
        return NN_ERR_ARG;
    }
    *out = v;
    return NN_OK;
}

static const char nn_usage[] =
    "usage: rudp-netem [--delay MS] [--jitter MS] [--loss PCT] [--rate MBIT [--queue "
    "PKTS]]\n"
    "                  [--dup PCT] [--seed N] [--queue-num N] [--max-held N]\n"
    "Impairs the packets iptables sends to NFQUEUE queues N (towards the ports, --dport)\n"
    "and N+1 (from the ports, --sport) on the INPUT hook.  Stops on SIGINT/SIGTERM;\n"
    "SIGUSR1 prints statistics.  See docs/NETEM.md.\n";

/* Stores the value of option name into s.  Returns NN_OK or NN_ERR_ARG. */
static int nn_set_option(struct nn_settings *s, const char *name, const char *val) {
    double v;
    if (!strcmp(name, "delay") || !strcmp(name, "jitter")) {
        if (nn_parse_num(name, val, 0, 3600e3, &v))
            return NN_ERR_ARG;
        *(name[0] == 'd' ? &s->delay_ns : &s->jitter_ns) = (uint64_t)(v * 1e6 + 0.5);
    } else if (!strcmp(name, "loss") || !strcmp(name, "dup")) {
        if (nn_parse_num(name, val, 0, 100, &v))
            return NN_ERR_ARG;
        *(name[0] == 'l' ? &s->loss : &s->dup) = v / 100.0;
    } else if (!strcmp(name, "rate")) {
        if (nn_parse_num(name, val, 0.001, 100000, &v))
            return NN_ERR_ARG;
        s->rate_bps = (uint64_t)(v * 1e6 + 0.5);
    } else if (!strcmp(name, "queue") || !strcmp(name, "max-held")) {
        if (nn_parse_num(name, val, 1, 1000000, &v))
            return NN_ERR_ARG;
        *(name[0] == 'q' ? &s->queue : &s->max_held) = (uint32_t)v;
    } else if (!strcmp(name, "queue-num")) {
        if (nn_parse_num(name, val, 0, 65534, &v))
            return NN_ERR_ARG;
        s->queue_num = (uint16_t)v;
    } else if (!strcmp(name, "seed")) {
        if (nn_parse_num(name, val, 0, 1.8e19, &v))
            return NN_ERR_ARG;
        s->seed = strtoull(val, NULL, 10);
    }
    return NN_OK;
}

/* Parses argv into s.  Returns NN_OK or NN_ERR_ARG after printing why. */
static int nn_parse_args(int argc, char **argv, struct nn_settings *s) {
    static const struct option opts[] = {
        {"delay", 1, 0, 0},  {"jitter", 1, 0, 0},    {"loss", 1, 0, 0},
        {"rate", 1, 0, 0},   {"queue", 1, 0, 0},     {"dup", 1, 0, 0},
        {"seed", 1, 0, 0},   {"queue-num", 1, 0, 0}, {"max-held", 1, 0, 0},
        {"help", 0, 0, 'h'}, {0, 0, 0, 0},
    };
    int c, idx;
    nn_settings_default(s);
    while ((c = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
        if (c != 0) {
            fputs(nn_usage, c == 'h' ? stdout : stderr);
            return NN_ERR_ARG;
        }
        if (nn_set_option(s, opts[idx].name, optarg))
            return NN_ERR_ARG;
    }
    if (optind < argc || (s->queue && !s->rate_bps)) {
        fprintf(stderr, "rudp-netem: %s\n%s",
                optind < argc ? "unexpected argument" : "--queue needs --rate", nn_usage);
        return NN_ERR_ARG;
    }
    if (s->rate_bps && !s->queue)
        s->queue = 1000; /* netem's default limit */
    return NN_OK;
}

int main(int argc, char **argv) {
    static struct nn_app app;
    struct nn_settings *s = &app.set;
    if (nn_parse_args(argc, argv, s))
        return 2;
    if (nn_setup(&app)) {
        nn_teardown(&app);
        return 1;
    }
    fprintf(
        stderr,
        "rudp-netem: ready queues %u,%u delay=%.3fms jitter=%.3fms loss=%g%% rate=%.3fMbit "
        "queue=%u dup=%g%% seed=%" PRIu64 "\n",
        s->queue_num, s->queue_num + 1u, s->delay_ns / 1e6, s->jitter_ns / 1e6,
        s->loss * 100, s->rate_bps / 1e6, s->queue, s->dup * 100, s->seed);
    int rc = nn_run(&app);
    if (rc)
        fprintf(stderr, "rudp-netem: stopped: %s\n", strerror(errno));
    nn_release_due(&app, NN_NEVER);
    nn_report(&app); /* before the queues go: the kernel's counts go with them */
    nn_teardown(&app);
    return rc ? 1 : 0;
}
