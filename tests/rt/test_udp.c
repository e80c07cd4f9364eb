/*
 * test_udp.c — tests of engine/rt_udp.c: the connection-ID table and the
 * backlog of a full socket.
 *
 * Demultiplexing: a listener's one UDP socket carries every session that
 * reaches it, told apart by connection ID, not by address.  Sixteen server
 * addresses (127.0.0.1 to .16, one listener on the wildcard) make sixteen
 * client sessions per process; four processes (this one and three forked
 * children, each with its own engine) open several streams on each, and
 * every stream must carry exactly its own bytes both ways.
 *
 * A full socket: the runtime sends through the sendmmsg of its system call
 * table; here a wrapper refuses every few calls with EAGAIN or takes only
 * part of a batch, and records every datagram it refused and every one it
 * passed on.  The transfer must still be byte-exact, every refused datagram
 * must go out later (the backlog keeps it, it is not dropped), and none may
 * go out twice (a partial batch is not resent).
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/udp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

TestSuite(udp, .timeout = RTEST_TIMEOUT_S, .fini = rtest_cleanup);

/* --- demultiplexing --- */

#define DEMUX_MAX_ADDRS 16 /* 127.0.0.1 .. 127.0.0.16 */
#define DEMUX_MAX_PROCS 8  /* this process and its children */
#define DEMUX_STREAMS 3    /* per session */

/* One demultiplexing run: how many server addresses each process dials
 * and how many processes do so. */
typedef struct demux_cfg {
    uint32_t addrs, procs;
    uint16_t port;
} demux_cfg;

/* What each stream carries, by process, address and stream index. */
static uint64_t demux_len(uint32_t p, uint32_t a, uint32_t s) {
    return 40000 + 997ull * s + 131ull * a + 7ull * p;
}

static uint64_t demux_reply_len(uint32_t p, uint32_t a, uint32_t s) {
    return 8192 + 61ull * a + 13ull * s + p;
}

static uint64_t demux_seed(uint32_t p, uint32_t a, uint32_t s, bool reply) {
    return rtest_seed(reply ? 5 : 4, (uint64_t)p << 8 | a, s);
}

/* Opens one stream of process |p| to |dst| as an end of |set|, sending its
 * header and bytes and expecting its own reply. */
static void demux_client(rtest_set *set, const struct sockaddr_in *dst, uint32_t p,
                         uint32_t a, uint32_t s) {
    rtest_conn c;
    int rv = rtest_connect(&c, (const struct sockaddr *)dst, sizeof(*dst));
    RTEST_ASSERT(rv == RUDP_OK, "rudp_rt_connect: %s", rudp_strerror(rv));
    rtest_end *e = rtest_set_add(set, c.fd);
    e->tag = p << 16 | a << 8 | s;
    e->slot = c.ref.slot;
    rtest_hdr_put(e->hdr, p, a, s);
    e->hdr_len = RTEST_HDR;
    e->tx_seed = demux_seed(p, a, s, false);
    e->tx_len = demux_len(p, a, s);
    e->tx_fin = true;
    e->rx_seed = demux_seed(p, a, s, true);
    e->rx_len = demux_reply_len(p, a, s);
}

/* Asserts that every session of |set|'s first |n| ends was established:
 * names the first server address whose handshake did not complete. */
static void demux_assert_connected(const rtest_set *set, size_t n) {
    int64_t deadline = rtest_deadline(RTEST_PHASE_MS);
    for (size_t i = 0; i < n; i++) {
        const rtest_end *e = &set->ends[i];
        uint32_t st = rtest_wait_state(e->slot, RUDP_SLOT_CONNECTING, deadline);
        RTEST_ASSERT(st == RUDP_SLOT_CONNECTED,
                     "session to 127.0.0.%u never established: state %u, %s",
                     (e->tag >> 8 & 0xff) + 1, st, rudp_strerror(rudp_slot_error(e->slot)));
    }
}

/* Adds process |p|'s streams to |set|: DEMUX_STREAMS to each address. */
static void demux_clients(rtest_set *set, const demux_cfg *cfg, uint32_t p) {
    for (uint32_t a = 0; a < cfg->addrs; a++) {
        char ip[32];
        snprintf(ip, sizeof(ip), "127.0.0.%u", a + 1);
        struct sockaddr_in dst;
        rtest_addr4(&dst, ip, cfg->port);
        for (uint32_t s = 0; s < DEMUX_STREAMS; s++)
            demux_client(set, &dst, p, a, s);
    }
    demux_assert_connected(set, set->n);
}

/* What a child is told: its process number and the run. */
typedef struct demux_job {
    uint32_t p;
    const demux_cfg *cfg;
} demux_job;

/* A child: process |p|'s streams; exits 0 when every one was answered. */
static int demux_child(void *arg) {
    const demux_job *j = arg;
    rtest_set set;
    rtest_set_init(&set, j->cfg->addrs * DEMUX_STREAMS);
    demux_clients(&set, j->cfg, j->p);
    int rv = rtest_set_run(&set, rtest_deadline(RTEST_PHASE_MS));
    if (rv != 0)
        fprintf(stderr, "demux child %u: %s\n", j->p, set.why);
    rudp_rt_exit_flush();
    return rv == 0 ? 0 : 3;
}

/* The server's record of what reached it. */
typedef struct demux_srv {
    const demux_cfg *cfg;
    bool seen[DEMUX_MAX_PROCS][DEMUX_MAX_ADDRS][DEMUX_STREAMS];
    uint16_t peer_ports[DEMUX_MAX_PROCS * DEMUX_MAX_ADDRS]; /* distinct client sockets */
    size_t npeers;
} demux_srv;

static void demux_on_accept(rtest_set *set, rtest_end *e) {
    e->tag = 0x1000000;
    e->rx_hdr_len = RTEST_HDR;
    e->tx_hold = true;
}

/* Counts the client UDP socket (its port) that carried an accepted stream. */
static void demux_note_peer(demux_srv *d, const rtest_peer *peer) {
    uint16_t port = rtest_port(&peer->peer);
    for (size_t i = 0; i < d->npeers; i++)
        if (d->peer_ports[i] == port)
            return;
    if (d->npeers < DEMUX_MAX_PROCS * DEMUX_MAX_ADDRS)
        d->peer_ports[d->npeers] = port;
    d->npeers++;
}

/* The header names the stream: it must be new, and reached the listener's
 * port; the bytes it expects and the reply follow from it. */
static void demux_on_hdr(rtest_set *set, rtest_end *e) {
    demux_srv *d = set->ctx;
    uint32_t p, a, s;
    rtest_peer peer;
    if (!rtest_hdr_get(e->rx_hdr, &p, &a, &s) || p >= d->cfg->procs || a >= d->cfg->addrs ||
        s >= DEMUX_STREAMS || d->seen[p][a][s]) {
        snprintf(e->why, sizeof(e->why), "bad or repeated header %u/%u/%u", p, a, s);
        return;
    }
    if (!rtest_peer_of(e->fd, &peer) || rtest_port(&peer.local) != d->cfg->port) {
        snprintf(e->why, sizeof(e->why), "stream %u/%u/%u: wrong accepted name", p, a, s);
        return;
    }
    d->seen[p][a][s] = true;
    demux_note_peer(d, &peer);
    e->tag |= p << 16 | a << 8 | s;
    e->rx_seed = demux_seed(p, a, s, false);
    e->rx_len = demux_len(p, a, s);
    e->tx_seed = demux_seed(p, a, s, true);
    e->tx_len = demux_reply_len(p, a, s);
    e->tx_fin = true;
    e->tx_hold = false;
}

/* Runs |addrs| x |procs| client sessions, DEMUX_STREAMS streams each,
 * against one listener on the wildcard address, and asserts that every
 * stream carried exactly its own bytes both ways over its own session. */
static void demux_run(uint32_t addrs, uint32_t procs) {
    rtest_listener l;
    rtest_set set;
    demux_cfg cfg = {.addrs = addrs, .procs = procs};
    demux_srv d = {.cfg = &cfg};
    pid_t kids[DEMUX_MAX_PROCS];
    demux_job jobs[DEMUX_MAX_PROCS];
    size_t per_proc = (size_t)addrs * DEMUX_STREAMS;
    rtest_engine(NULL);
    rtest_listen(&l, "0.0.0.0", 256);
    cfg.port = ntohs(l.addr.sin_port);
    for (uint32_t i = 1; i < procs; i++) {
        jobs[i] = (demux_job){.p = i, .cfg = &cfg};
        kids[i] = rtest_fork(demux_child, &jobs[i]);
    }
    rtest_set_init(&set, per_proc * (procs + 1));
    demux_clients(&set, &cfg, 0);
    set.lfd = l.lfd;
    set.to_accept = per_proc * procs;
    set.ctx = &d;
    set.on_accept = demux_on_accept;
    set.on_hdr = demux_on_hdr;
    cr_assert_eq(rtest_set_run(&set, rtest_deadline(RTEST_PHASE_MS)), 0, "%s", set.why);
    for (uint32_t i = 1; i < procs; i++) {
        int status = rtest_reap(kids[i], rtest_deadline(RTEST_PHASE_MS));
        cr_assert_eq(status, 0, "child %u exit status %d", i, status);
    }
    cr_assert_eq(d.npeers, (size_t)addrs * procs, "%zu client sockets, not %u", d.npeers,
                 addrs * procs);
    rtest_set_free(&set);
    rtest_unlisten(&l);
}

/* Proves that 64 client sessions (4 processes x 16 server addresses
 * 127.0.0.1-16) sharing one wildcard listener socket are told apart by
 * connection ID: each of their 192 streams carries exactly its own bytes
 * both ways.  Also needs the listener to answer from the address each
 * client dialled (a connected UDP socket drops anything else). */
Test(udp, demux_by_connection_id) {
    demux_run(16, 4);
}

/* Proves the same for 8 processes dialling one address: 8 sessions on the
 * listener's socket, from 8 client sockets, told apart by connection ID. */
Test(udp, demux_one_address) {
    demux_run(1, 8);
}

/* --- a full socket --- */

#define WRAP_EVERY 4           /* every 4th call is refused, every 4th takes half */
#define WRAP_UP (8ull << 20)   /* client to server */
#define WRAP_DOWN (1ull << 20) /* server to client */

/* One datagram the wrapper refused or passed on. */
typedef struct wrap_rec {
    uint64_t hash;
    uint64_t call; /* the sendmmsg call it met */
    uint32_t len;
    int fd;
} wrap_rec;

typedef struct wrap_log {
    wrap_rec *v;
    size_t n, cap;
} wrap_log;

/* The wrapper's records; the engine thread writes them, the test reads
 * them, both under the lock. */
static struct {
    pthread_mutex_t lock;
    bool armed;
    uint64_t calls, partials, runs;
    wrap_log refused, passed;
} wrap = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Returns true when message |h| asks the kernel to cut it into datagrams
 * (UDP_SEGMENT): the engine then gives each its own iovec. */
static bool wrap_segmented(const struct msghdr *h) {
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(h); cm;
         cm = CMSG_NXTHDR((struct msghdr *)h, cm))
        if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_SEGMENT)
            return true;
    return false;
}

/* Records one datagram of |len| bytes at |p|, met in call |call| on |fd|. */
static void wrap_add(wrap_log *log, const void *p, size_t len, uint64_t call, int fd) {
    if (log->n == log->cap) {
        log->cap = log->cap ? log->cap * 2 : 1024;
        log->v = realloc(log->v, log->cap * sizeof(*log->v));
        if (!log->v)
            abort();
    }
    wrap_rec *r = &log->v[log->n++];
    r->hash = rtest_hash(p, len, RTEST_HASH0);
    r->len = (uint32_t)len;
    r->call = call;
    r->fd = fd;
}

/* Records the datagrams of messages [0, n) of |m|, met in call |call| on
 * |fd| (a segmented message's one by one).  Under the lock. */
static void wrap_note(wrap_log *log, const struct mmsghdr *m, unsigned n, uint64_t call,
                      int fd) {
    for (unsigned i = 0; i < n; i++) {
        const struct msghdr *h = &m[i].msg_hdr;
        if (wrap_segmented(h)) {
            wrap.runs++;
            for (size_t k = 0; k < h->msg_iovlen; k++)
                wrap_add(log, h->msg_iov[k].iov_base, h->msg_iov[k].iov_len, call, fd);
            continue;
        }
        if (h->msg_iovlen != 1)
            abort(); /* iovecs of one datagram: not the engine's (its thread: no cr_assert)
                      */
        wrap_add(log, h->msg_iov[0].iov_base, h->msg_iov[0].iov_len, call, fd);
    }
}

/* The runtime's sendmmsg: while armed, refuses every WRAP_EVERY-th call
 * with EAGAIN and passes only half a batch on another; records all. */
static int wrap_sendmmsg(int fd, struct mmsghdr *m, unsigned n, int flags) {
    pthread_mutex_lock(&wrap.lock);
    uint64_t call = ++wrap.calls;
    if (wrap.armed && call % WRAP_EVERY == 0) {
        wrap_note(&wrap.refused, m, n, call, fd);
        pthread_mutex_unlock(&wrap.lock);
        errno = EAGAIN;
        return -1;
    }
    unsigned take = n;
    if (wrap.armed && call % WRAP_EVERY == WRAP_EVERY / 2 && n > 1) {
        take = n / 2;
        wrap.partials++;
    }
    int r = sendmmsg(fd, m, take, flags);
    int saved = errno;
    if (r > 0)
        wrap_note(&wrap.passed, m, (unsigned)r, call, fd);
    pthread_mutex_unlock(&wrap.lock);
    errno = saved;
    return r;
}

static void wrap_arm(bool on) {
    pthread_mutex_lock(&wrap.lock);
    wrap.armed = on;
    pthread_mutex_unlock(&wrap.lock);
}

/* Orders records by hash, then length, then call. */
static int wrap_cmp(const void *a, const void *b) {
    const wrap_rec *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->call < y->call ? -1 : x->call > y->call;
}

/* Returns the passed datagram equal to |r| (sorted |passed|), or NULL. */
static const wrap_rec *wrap_find(const wrap_log *passed, const wrap_rec *r) {
    wrap_rec key = *r;
    key.call = 0;
    size_t lo = 0, hi = passed->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (wrap_cmp(&passed->v[mid], &key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    const wrap_rec *p = lo < passed->n ? &passed->v[lo] : NULL;
    return p && p->hash == r->hash && p->len == r->len ? p : NULL;
}

/* Connects to |l| and moves |up| bytes to the accepted end and |down|
 * back, FIN both ways, checking every byte. */
static void wrap_transfer(const rtest_listener *l, uint64_t up, uint64_t down,
                          uint64_t seed) {
    rtest_conn c;
    rtest_set s;
    int rv = rtest_connect(&c, (const struct sockaddr *)&l->addr, sizeof(l->addr));
    cr_assert_eq(rv, RUDP_OK, "rudp_rt_connect: %s", rudp_strerror(rv));
    int fd = rtest_accept(l->lfd, rtest_deadline(RTEST_PHASE_MS));
    cr_assert_geq(fd, 0, "no connection reached the listener");
    rtest_set_init(&s, 2);
    rtest_end *cli = rtest_set_add(&s, c.fd), *srv = rtest_set_add(&s, fd);
    cli->tx_seed = srv->rx_seed = rtest_seed(seed, 1, 0);
    cli->tx_len = srv->rx_len = up;
    srv->tx_seed = cli->rx_seed = rtest_seed(seed, 2, 0);
    srv->tx_len = cli->rx_len = down;
    cli->tx_fin = srv->tx_fin = true;
    srv->tag = 1;
    cr_assert_eq(rtest_set_run(&s, rtest_deadline(RTEST_PHASE_MS)), 0, "%s", s.why);
    rtest_set_free(&s);
}

/* Copies |log| (under the wrapper's lock) so it can be checked outside. */
static wrap_log wrap_copy(const wrap_log *log) {
    wrap_log c = {.n = log->n, .cap = log->n};
    c.v = malloc((log->n + 1) * sizeof(*c.v));
    cr_assert_not_null(c.v);
    memcpy(c.v, log->v, log->n * sizeof(*c.v));
    return c;
}

/* Asserts every refused datagram went out in a later call, on the same
 * socket, and no datagram went out twice.  Returns how many sockets met a
 * refusal. */
static int wrap_check(wrap_log *refused, wrap_log *passed) {
    int fds[2] = {-1, -1}, nfds = 0;
    qsort(passed->v, passed->n, sizeof(wrap_rec), wrap_cmp);
    for (size_t i = 1; i < passed->n; i++) {
        const wrap_rec *x = &passed->v[i - 1], *y = &passed->v[i];
        cr_assert(x->hash != y->hash || x->len != y->len,
                  "a datagram of %u bytes was sent twice (calls %llu and %llu)", y->len,
                  (unsigned long long)x->call, (unsigned long long)y->call);
    }
    for (size_t i = 0; i < refused->n; i++) {
        const wrap_rec *r = &refused->v[i], *p = wrap_find(passed, r);
        cr_assert(p && p->call > r->call && p->fd == r->fd,
                  "datagram of %u bytes refused in call %llu was never sent after", r->len,
                  (unsigned long long)r->call);
        if (r->fd != fds[0] && r->fd != fds[1] && nfds < 2)
            fds[nfds++] = r->fd;
    }
    return nfds;
}

/* Returns true when this kernel cuts messages into datagrams (UDP_SEGMENT
 * reads back on a UDP socket). */
static bool kernel_segments(void) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0), seg;
    socklen_t len = sizeof(seg);
    bool yes = fd >= 0 && getsockopt(fd, SOL_UDP, UDP_SEGMENT, &seg, &len) == 0;
    if (fd >= 0)
        close(fd);
    return yes;
}

/* Proves that datagrams a full socket refused (EAGAIN, or a partial batch)
 * go out later, once each, and the transfer stays byte-exact.  Where the
 * kernel has segmentation offload, runs go as one message and a refused
 * run's datagrams go out later one by one. */
/* Starts an engine whose sendmmsg is |fn|, with datagrams of at most 1400
 * bytes (loopback would grow them to 64 KiB: thousands of them, in full
 * batches, meet the wrapper), and listens on |l|. */
static void small_datagram_engine(rtest_listener *l,
                                  int (*fn)(int, struct mmsghdr *, unsigned, int)) {
    rudp_rt_sys sys;
    rudp_settings set;
    rtest_sys_libc(&sys);
    sys.sendmmsg = fn;
    rudp_settings_default(&set);
    set.max_udp_payload = 1400;
    rtest_engine_with(&sys, &set);
    rtest_listen(l, "127.0.0.1", 16);
}

Test(udp, eagain_backlog_resent) {
    rtest_listener l;
    small_datagram_engine(&l, wrap_sendmmsg);
    wrap_arm(true);
    wrap_transfer(&l, WRAP_UP, WRAP_DOWN, 6);
    wrap_arm(false);
    /* Every backlog goes out before anything new on its socket: a round
     * trip on the same session, unarmed, leaves none behind. */
    wrap_transfer(&l, 1000, 1000, 7);
    pthread_mutex_lock(&wrap.lock);
    /* Static: still reachable (not a leak) when an assertion fails. */
    static wrap_log refused, passed;
    refused = wrap_copy(&wrap.refused);
    passed = wrap_copy(&wrap.passed);
    uint64_t calls = wrap.calls, partials = wrap.partials;
    pthread_mutex_unlock(&wrap.lock);
    cr_log_info("%llu calls, %zu refused datagrams, %llu partial batches, %zu passed",
                (unsigned long long)calls, refused.n, (unsigned long long)partials,
                passed.n);
    cr_assert_gt(refused.n, 0, "the wrapper refused nothing");
    cr_assert_gt(partials, 0, "the wrapper split no batch");
    if (kernel_segments())
        cr_assert_gt(wrap.runs, 0, "no run of datagrams went as one message");
    int sockets = wrap_check(&refused, &passed);
    cr_assert_eq(sockets, 2, "refusals met %d of the 2 sockets", sockets);
    free(refused.v);
    free(passed.v);
    rtest_unlisten(&l);
}

/* What the offload-refusing sendmmsg saw. */
static struct {
    pthread_mutex_t lock;
    uint64_t refused_runs, runs_after; /* runs refused; runs met after a refusal */
    int refused_fd[2];
    int nfds;
} noseg = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The runtime's sendmmsg on a device without segmentation offload: a run
 * (UDP_SEGMENT) fails with EIO, as the kernel's does there. */
static int noseg_sendmmsg(int fd, struct mmsghdr *m, unsigned n, int flags) {
    for (unsigned i = 0; i < n; i++) {
        if (!wrap_segmented(&m[i].msg_hdr))
            continue;
        pthread_mutex_lock(&noseg.lock);
        bool again = (noseg.nfds > 0 && noseg.refused_fd[0] == fd) ||
                     (noseg.nfds > 1 && noseg.refused_fd[1] == fd);
        noseg.runs_after += again;
        noseg.refused_runs++;
        if (!again && noseg.nfds < 2)
            noseg.refused_fd[noseg.nfds++] = fd;
        pthread_mutex_unlock(&noseg.lock);
        if (i > 0)
            return sendmmsg(fd, m, i, flags);
        errno = EIO;
        return -1;
    }
    return sendmmsg(fd, m, n, flags);
}

/* Proves that where the device cannot cut runs (EIO), each refused run
 * goes out datagram by datagram, the socket stops making runs, and the
 * transfer stays byte-exact. */
Test(udp, segmentation_refused_falls_back) {
    if (!kernel_segments())
        cr_skip_test("this kernel has no UDP segmentation offload");
    rtest_listener l;
    small_datagram_engine(&l, noseg_sendmmsg);
    wrap_transfer(&l, WRAP_UP, WRAP_DOWN, 8);
    pthread_mutex_lock(&noseg.lock);
    uint64_t refused = noseg.refused_runs, after = noseg.runs_after;
    pthread_mutex_unlock(&noseg.lock);
    cr_assert_gt(refused, 0, "no run was tried");
    cr_assert_eq(after, 0, "%llu runs after the socket's refusal",
                 (unsigned long long)after);
    rtest_unlisten(&l);
}
