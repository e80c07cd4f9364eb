/*
 * helpers.c — the shim's part, played by the runtime's tests (helpers.h).
 *
 * Nothing here waits by sleeping: every wait is a poll() on the fd the event
 * will come from, bounded by a deadline.  The one exception is
 * rtest_wait_state, which polls a board slot (a shared-memory word with no
 * fd) the way the shim's blocking connect does.
 */
#include "helpers.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RTEST_CHUNK 65536
#define RTEST_MAX_CHILDREN 16

bool rtest_in_child;

/* --- failing --- */

void rtest_fail(const char *file, int line, const char *cond, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (rtest_in_child) {
        fprintf(stderr, "child %d: %s:%d: %s:%s\n", (int)getpid(), file, line, cond, msg);
        _exit(RTEST_CHILD_ASSERT);
    }
    cr_assert_fail("%s:%d: %s:%s", file, line, cond, msg);
    abort(); /* not reached */
}

/* --- time --- */

int64_t rtest_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t rtest_deadline(int ms) {
    return rtest_now_ms() + ms;
}

int rtest_left_ms(int64_t deadline) {
    int64_t left = deadline - rtest_now_ms();
    return left > 0 ? (int)left : 0;
}

short rtest_wait_fd(int fd, short events, int64_t deadline) {
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int r = poll(&p, 1, rtest_left_ms(deadline));
        if (r > 0)
            return p.revents;
        if (r == 0 || errno != EINTR)
            return 0;
    }
}

int rtest_first_event(const int *fds, size_t n, short events, int ms) {
    struct pollfd p[64];
    RTEST_ASSERT(n <= 64);
    for (size_t i = 0; i < n; i++)
        p[i] = (struct pollfd){.fd = fds[i], .events = events};
    int64_t deadline = rtest_deadline(ms);
    int r;
    while ((r = poll(p, n, rtest_left_ms(deadline))) < 0 && errno == EINTR)
        ;
    for (size_t i = 0; r > 0 && i < n; i++)
        if (p[i].revents)
            return (int)i;
    return -1;
}

ssize_t rtest_read_once(int fd, int64_t deadline) {
    char buf[256];
    if (!rtest_wait_fd(fd, POLLIN, deadline))
        return -2;
    return recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
}

/* --- the engine --- */

void rtest_sys_libc(rudp_rt_sys *sys) {
    *sys = (rudp_rt_sys){
        .socket = socket,
        .bind = bind,
        .listen = listen,
        .accept4 = accept4,
        .connect = connect,
        .close = close,
        .fcntl = fcntl,
        .shutdown = shutdown,
        .recv = recv,
        .readv = readv,
        .send = send,
        .sendto = sendto,
        .write = write,
        .sendmsg = sendmsg,
        .recvmsg = recvmsg,
        .recvmmsg = recvmmsg,
        .sendmmsg = sendmmsg,
        .getsockname = getsockname,
        .getsockopt = getsockopt,
        .setsockopt = setsockopt,
        ._exit = _exit,
    };
}

void rtest_engine(const rudp_rt_sys *sys) {
    rudp_settings set;
    rudp_settings_default(&set);
    rtest_engine_with(sys, &set);
}

void rtest_engine_with(const rudp_rt_sys *sys, const rudp_settings *set) {
    rtest_engine_qlog(sys, set, NULL);
}

void rtest_engine_qlog(const rudp_rt_sys *sys, const rudp_settings *set,
                       const char *qlog_dir) {
    rudp_rt_sys libc;
    rudp_rt_config cfg;
    if (!sys) {
        rtest_sys_libc(&libc);
        sys = &libc;
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.settings = *set;
    cfg.exit_linger = RUDP_SEC(5);
    cfg.log_level = 0;
    cfg.log_fd = -1;
    cfg.qlog_dir = qlog_dir;
    rudp_rt_init(sys);
    rudp_rt_configure(&cfg);
    int rv = rudp_rt_start();
    RTEST_ASSERT(rv == RUDP_OK, "rudp_rt_start: %s", rudp_strerror(rv));
    RTEST_ASSERT(rudp_rt_board() != NULL);
}

/* --- bytes --- */

/* splitmix64's finaliser. */
static uint64_t rtest_mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void rtest_pattern(uint8_t *buf, size_t len, uint64_t seed, uint64_t off) {
    size_t i = 0;
    while (i < len) {
        uint64_t pos = off + i;
        uint64_t w = rtest_mix(seed ^ rtest_mix(pos / 8));
        for (unsigned b = (unsigned)(pos % 8); b < 8 && i < len; b++, i++)
            buf[i] = (uint8_t)(w >> (8 * b));
    }
}

size_t rtest_pattern_diff(const uint8_t *buf, size_t len, uint64_t seed, uint64_t off) {
    uint8_t want[4096];
    for (size_t done = 0; done < len;) {
        size_t n = len - done < sizeof(want) ? len - done : sizeof(want);
        rtest_pattern(want, n, seed, off + done);
        if (memcmp(buf + done, want, n) != 0)
            for (size_t i = 0; i < n; i++)
                if (buf[done + i] != want[i])
                    return done + i;
        done += n;
    }
    return len;
}

uint64_t rtest_hash(const void *p, size_t len, uint64_t h) {
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

uint64_t rtest_seed(uint64_t a, uint64_t b, uint64_t c) {
    return rtest_mix(rtest_mix(rtest_mix(a) ^ b) ^ c);
}

#define RTEST_HDR_MAGIC 0x52545354u /* "RTST" */

/* Stores |v| big-endian at |p|. */
static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void rtest_hdr_put(uint8_t hdr[16], uint32_t a, uint32_t b, uint32_t c) {
    put32(hdr, RTEST_HDR_MAGIC);
    put32(hdr + 4, a);
    put32(hdr + 8, b);
    put32(hdr + 12, c);
}

bool rtest_hdr_get(const uint8_t hdr[16], uint32_t *a, uint32_t *b, uint32_t *c) {
    *a = get32(hdr + 4);
    *b = get32(hdr + 8);
    *c = get32(hdr + 12);
    return get32(hdr) == RTEST_HDR_MAGIC;
}

/* --- addresses --- */

void rtest_addr4(struct sockaddr_in *a, const char *ip, uint16_t port) {
    memset(a, 0, sizeof(*a));
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    RTEST_ASSERT(inet_pton(AF_INET, ip, &a->sin_addr) == 1, "bad address %s", ip);
}

uint16_t rtest_port(const struct sockaddr_storage *a) {
    if (a->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)a)->sin_port);
    if (a->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
    return 0;
}

/* --- listening --- */

/* Returns a UDP port free on |ip| now (the kernel's pick for port 0). */
static uint16_t rtest_free_port(const char *ip) {
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    rtest_addr4(&a, ip, 0);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    RTEST_ASSERT(fd >= 0);
    RTEST_ASSERT(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "bind: %s",
                 strerror(errno));
    RTEST_ASSERT(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Creates the AF_UNIX listener, bound to a unique abstract name. */
static void rtest_unix_listener(rtest_listener *l, int backlog) {
    static unsigned seq;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int n = snprintf(sun.sun_path + 1, sizeof(sun.sun_path) - 1, "rudp-test/%d/%u",
                     (int)getpid(), seq++);
    l->name_len = 1 + (size_t)n;
    memcpy(l->name, sun.sun_path, l->name_len);
    l->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    RTEST_ASSERT(l->lfd >= 0);
    socklen_t slen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + l->name_len);
    RTEST_ASSERT(bind(l->lfd, (struct sockaddr *)&sun, slen) == 0, "bind: %s",
                 strerror(errno));
    RTEST_ASSERT(listen(l->lfd, backlog) == 0);
}

void rtest_listen(rtest_listener *l, const char *ip, int backlog) {
    rtest_unix_listener(l, backlog);
    /* Another process may take the free port first: try a few. */
    for (int tries = 0; tries < 20; tries++) {
        rtest_addr4(&l->addr, ip, rtest_free_port(ip));
        l->id = rudp_rt_listen((struct sockaddr *)&l->addr, sizeof(l->addr), l->name,
                               l->name_len, 0);
        if (l->id != RUDP_ERR_SYS(EADDRINUSE))
            break;
    }
    RTEST_ASSERT(l->id >= 0, "rudp_rt_listen: %s", rudp_strerror(l->id));
}

void rtest_listen_also(rtest_listener *l, const rtest_listener *first, int backlog) {
    rtest_unix_listener(l, backlog);
    l->addr = first->addr;
    l->id = rudp_rt_listen((struct sockaddr *)&l->addr, sizeof(l->addr), l->name,
                           l->name_len, 0);
    RTEST_ASSERT(l->id >= 0, "rudp_rt_listen: %s", rudp_strerror(l->id));
}

void rtest_unlisten(rtest_listener *l) {
    rudp_rt_unlisten(l->id);
    if (l->lfd >= 0)
        close(l->lfd);
    l->lfd = -1;
}

int rtest_accept(int lfd, int64_t deadline) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0 || (errno != EAGAIN && errno != EINTR))
            return fd;
        if (!rtest_wait_fd(lfd, POLLIN, deadline))
            return -1;
    }
}

bool rtest_peer_of(int fd, rtest_peer *out) {
    struct sockaddr_un sun;
    socklen_t slen = sizeof(sun);
    size_t off = offsetof(struct sockaddr_un, sun_path);
    memset(out, 0, sizeof(*out));
    if (getpeername(fd, (struct sockaddr *)&sun, &slen) < 0 || slen <= off)
        return false;
    if (!rudp_board_name_decode(sun.sun_path, slen - off, &out->ref, &out->peer,
                                &out->local))
        return false;
    out->eid = out->ref.eid;
    out->index = out->ref.index;
    rudp_board_resolve(&out->ref);
    return true;
}

/* --- connecting --- */

int rtest_connect(rtest_conn *c, const struct sockaddr *dst, socklen_t len) {
    int sv[2];
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    RTEST_ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    RTEST_ASSERT(fcntl(sv[1], F_SETFL, O_NONBLOCK) == 0); /* as rudp_rt_connect asks */
    rudp_board *b = rudp_rt_board();
    RTEST_ASSERT(b != NULL);
    RTEST_ASSERT(rudp_board_alloc(b, RUDP_SLOT_CONNECTING, &c->ref) == 0);
    int rv = rudp_rt_connect(sv[1], dst, len, 0, &c->ref, &c->local);
    if (rv != RUDP_OK) {
        close(sv[0]);
        close(sv[1]);
        return rv;
    }
    c->fd = sv[0];
    RTEST_ASSERT(fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) == 0);
    return RUDP_OK;
}

uint32_t rtest_wait_state(const rudp_slot *s, uint32_t from, int64_t deadline) {
    const struct timespec tick = {.tv_nsec = 1000000};
    uint32_t st;
    while ((st = rudp_slot_state(s)) == from && rtest_left_ms(deadline) > 0)
        nanosleep(&tick, NULL);
    return st;
}

/* --- connection ends --- */

/* The ends arrays of live sets, so that a test that fails (criterion
 * leaves the test function by longjmp) still closes and frees them. */
#define RTEST_MAX_SETS 8
static rtest_end *live_ends[RTEST_MAX_SETS];
static size_t live_cap[RTEST_MAX_SETS];

/* Records |ends| (|cap| of them) as live, or forgets it (|cap| 0). */
static void set_track(rtest_end *ends, size_t cap) {
    for (size_t i = 0; i < RTEST_MAX_SETS; i++) {
        if (cap && !live_ends[i]) {
            live_ends[i] = ends;
            live_cap[i] = cap;
            return;
        }
        if (!cap && live_ends[i] == ends) {
            live_ends[i] = NULL;
            return;
        }
    }
    RTEST_ASSERT(!cap, "too many live sets");
}

void rtest_set_init(rtest_set *s, size_t cap) {
    memset(s, 0, sizeof(*s));
    /* One block: the ends, then the poll arrays (freed with the ends). */
    size_t ends = cap * sizeof(*s->ends), pfd = (cap + 1) * sizeof(*s->pfd);
    s->ends = calloc(1, ends + pfd + (cap + 1) * sizeof(*s->pidx));
    RTEST_ASSERT(s->ends != NULL);
    s->pfd = (struct pollfd *)((char *)s->ends + ends);
    s->pidx = (size_t *)((char *)s->pfd + pfd);
    for (size_t i = 0; i < cap; i++)
        s->ends[i].fd = -1;
    set_track(s->ends, cap);
    s->cap = cap;
    s->lfd = -1;
}

rtest_end *rtest_set_add(rtest_set *s, int fd) {
    RTEST_ASSERT(s->n < s->cap, "rtest_set: no room for another end");
    rtest_end *e = &s->ends[s->n++];
    memset(e, 0, sizeof(*e));
    e->fd = fd;
    return e;
}

/* Closes the fds of |cap| ends and frees them. */
static void ends_free(rtest_end *ends, size_t cap) {
    for (size_t i = 0; i < cap; i++)
        if (ends[i].fd >= 0)
            close(ends[i].fd);
    free(ends);
}

void rtest_set_free(rtest_set *s) {
    set_track(s->ends, 0);
    ends_free(s->ends, s->cap);
    memset(s, 0, sizeof(*s));
    s->lfd = -1;
}

/* Returns true when end |e| has nothing left to send. */
static bool end_tx_done(const rtest_end *e) {
    return e->hdr_off == e->hdr_len && e->tx_off == e->tx_len && (!e->tx_fin || e->tx_shut);
}

/* Returns true when end |e| has received all it expects. */
static bool end_rx_done(const rtest_end *e) {
    if (e->rx_hdr_off < e->rx_hdr_len || e->rx_off < e->rx_len)
        return false;
    return e->rx_open || e->rx_eof;
}

/* Sends what |e| may send now.  Returns false on a failure (e->why). */
static bool end_write(rtest_end *e) {
    uint8_t buf[RTEST_CHUNK];
    while (!e->tx_hold && !end_tx_done(e)) {
        const uint8_t *p = e->hdr + e->hdr_off;
        size_t n = e->hdr_len - e->hdr_off;
        if (n == 0) {
            n = e->tx_len - e->tx_off < sizeof(buf) ? e->tx_len - e->tx_off : sizeof(buf);
            rtest_pattern(buf, n, e->tx_seed, e->tx_off);
            p = buf;
        }
        if (n == 0) { /* all sent: the FIN */
            if (shutdown(e->fd, SHUT_WR) < 0)
                break;
            e->tx_shut = true;
            return true;
        }
        ssize_t w = send(e->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            return true;
        if (w <= 0)
            break;
        if (e->hdr_off < e->hdr_len)
            e->hdr_off += (size_t)w;
        else
            e->tx_off += (uint64_t)w;
    }
    if (!e->tx_hold && !end_tx_done(e))
        snprintf(e->why, sizeof(e->why), "write at %llu: %s", (unsigned long long)e->tx_off,
                 strerror(errno));
    return e->why[0] == '\0';
}

/* Takes |n| received bytes at |p| into |e|'s header or pattern check. */
static void end_take(rtest_set *s, rtest_end *e, const uint8_t *p, size_t n) {
    size_t h = e->rx_hdr_len - e->rx_hdr_off;
    h = h < n ? h : n;
    memcpy(e->rx_hdr + e->rx_hdr_off, p, h);
    e->rx_hdr_off += h;
    if (h && e->rx_hdr_off == e->rx_hdr_len && s->on_hdr)
        s->on_hdr(s, e);
    if (e->why[0] || n == h)
        return;
    p += h;
    n -= h;
    if (e->rx_off + n > e->rx_len) {
        snprintf(e->why, sizeof(e->why), "%zu bytes beyond the expected %llu", n,
                 (unsigned long long)e->rx_len);
        return;
    }
    size_t bad = rtest_pattern_diff(p, n, e->rx_seed, e->rx_off);
    if (bad < n)
        snprintf(e->why, sizeof(e->why), "byte %llu differs",
                 (unsigned long long)(e->rx_off + bad));
    e->rx_off += n;
}

/* Returns how many bytes |e| may read now: an open end stops at rx_len. */
static size_t end_room(const rtest_end *e, size_t cap) {
    if (!e->rx_open || e->rx_hdr_off < e->rx_hdr_len)
        return cap;
    uint64_t left = e->rx_len - e->rx_off;
    return left < cap ? (size_t)left : cap;
}

/* Reads what |e| has received.  Returns false on a failure (e->why). */
static bool end_read(rtest_set *s, rtest_end *e) {
    uint8_t buf[RTEST_CHUNK];
    while (!e->why[0] && !end_rx_done(e)) {
        ssize_t r = recv(e->fd, buf, end_room(e, sizeof(buf)), MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            return true;
        if (r < 0) {
            snprintf(e->why, sizeof(e->why), "read at %llu: %s",
                     (unsigned long long)e->rx_off, strerror(errno));
        } else if (r == 0) {
            e->rx_eof = true;
            if (!end_rx_done(e))
                snprintf(e->why, sizeof(e->why), "EOF at %llu of %llu (header %zu/%zu)",
                         (unsigned long long)e->rx_off, (unsigned long long)e->rx_len,
                         e->rx_hdr_off, e->rx_hdr_len);
        } else {
            end_take(s, e, buf, (size_t)r);
        }
    }
    return e->why[0] == '\0';
}

/* Returns the poll events end |e| waits for (0: done). */
static short end_events(const rtest_end *e) {
    short ev = end_rx_done(e) ? 0 : POLLIN;
    if (!e->tx_hold && !end_tx_done(e))
        ev |= POLLOUT;
    return ev;
}

/* Accepts every connection waiting on the set's listener. */
static void set_accept(rtest_set *s) {
    while (s->to_accept > 0) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        s->to_accept--;
        rtest_end *e = rtest_set_add(s, fd);
        if (s->on_accept)
            s->on_accept(s, e);
    }
}

/* Describes the first end that failed, or else the first unfinished one
 * (|timeout|), in s->why.  Returns -1. */
static int set_report(rtest_set *s, bool timeout) {
    for (size_t i = 0; i < s->n; i++) {
        const rtest_end *e = &s->ends[i];
        if (timeout ? !(end_tx_done(e) && end_rx_done(e)) : e->why[0] != '\0') {
            snprintf(s->why, sizeof(s->why),
                     "%s: end %zu (tag %#x): %s; sent %llu/%llu, received %llu/%llu%s",
                     timeout ? "timeout" : "failure", i, e->tag,
                     e->why[0] ? e->why : "unfinished", (unsigned long long)e->tx_off,
                     (unsigned long long)e->tx_len, (unsigned long long)e->rx_off,
                     (unsigned long long)e->rx_len, e->rx_eof ? ", EOF" : "");
            return -1;
        }
    }
    snprintf(s->why, sizeof(s->why), "timeout: %zu connections not accepted", s->to_accept);
    return -1;
}

/* Fills |p| with the fds the set waits on; returns how many (0: done). */
static nfds_t set_poll_fds(const rtest_set *s, struct pollfd *p, size_t *idx) {
    nfds_t n = 0;
    for (size_t i = 0; i < s->n; i++) {
        short ev = end_events(&s->ends[i]);
        if (ev) {
            p[n] = (struct pollfd){.fd = s->ends[i].fd, .events = ev};
            idx[n++] = i;
        }
    }
    if (s->to_accept > 0) {
        p[n] = (struct pollfd){.fd = s->lfd, .events = POLLIN};
        idx[n++] = SIZE_MAX;
    }
    return n;
}

/* Handles the events of one poll.  Returns false when an end failed. */
static bool set_serve(rtest_set *s, const struct pollfd *p, const size_t *idx, nfds_t n) {
    for (nfds_t k = 0; k < n; k++) {
        if (!p[k].revents)
            continue;
        if (idx[k] == SIZE_MAX) {
            set_accept(s);
            continue;
        }
        rtest_end *e = &s->ends[idx[k]];
        if ((p[k].revents & (POLLIN | POLLHUP | POLLERR)) && !end_read(s, e))
            return false;
        if ((p[k].revents & (POLLOUT | POLLERR)) && !end_write(e))
            return false;
    }
    return true;
}

int rtest_set_run(rtest_set *s, int64_t deadline) {
    for (;;) {
        nfds_t n = set_poll_fds(s, s->pfd, s->pidx);
        if (n == 0)
            return 0;
        int r = poll(s->pfd, n, rtest_left_ms(deadline));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || !set_serve(s, s->pfd, s->pidx, n))
            return set_report(s, r <= 0);
    }
}

bool rtest_fill_until_stalled(int fd, uint64_t seed, uint64_t *off, uint64_t cap,
                              int quiet_ms) {
    uint8_t buf[RTEST_CHUNK];
    while (*off < cap) {
        size_t n = cap - *off < sizeof(buf) ? (size_t)(cap - *off) : sizeof(buf);
        rtest_pattern(buf, n, seed, *off);
        ssize_t w = send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            *off += (uint64_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN)
            return false;
        if (!(rtest_wait_fd(fd, POLLOUT, rtest_deadline(quiet_ms)) & POLLOUT))
            return true; /* unwritable for quiet_ms: backpressure */
    }
    return false;
}

/* --- child processes --- */

/* A child and the read end of a pipe only it holds the write end of: the
 * pipe reports POLLHUP once the child is gone. */
static struct {
    pid_t pid;
    int hup;
} children[RTEST_MAX_CHILDREN];

pid_t rtest_fork(int (*fn)(void *arg), void *arg) {
    int pp[2];
    RTEST_ASSERT(pipe2(pp, O_CLOEXEC) == 0);
    size_t i = 0;
    while (i < RTEST_MAX_CHILDREN && children[i].pid > 0)
        i++;
    RTEST_ASSERT(i < RTEST_MAX_CHILDREN, "too many children");
    /* The runtime parks its engine thread across fork (pthread_atfork), so
     * the child inherits no lock that thread held, the sanitizers'
     * allocator's included. */
    pid_t pid = fork();
    RTEST_ASSERT(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        rtest_in_child = true;
        close(pp[0]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        _exit(fn(arg));
    }
    close(pp[1]);
    children[i].pid = pid;
    children[i].hup = pp[0];
    return pid;
}

int rtest_reap(pid_t pid, int64_t deadline) {
    size_t i = 0;
    while (i < RTEST_MAX_CHILDREN && children[i].pid != pid)
        i++;
    RTEST_ASSERT(i < RTEST_MAX_CHILDREN, "not a child: %d", (int)pid);
    bool gone = rtest_wait_fd(children[i].hup, POLLHUP, deadline) != 0;
    if (!gone)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    close(children[i].hup);
    children[i].pid = 0;
    if (!gone || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

void rtest_cleanup(void) {
    for (size_t i = 0; i < RTEST_MAX_CHILDREN; i++)
        if (children[i].pid > 0)
            rtest_reap(children[i].pid, rtest_now_ms());
    for (size_t i = 0; i < RTEST_MAX_SETS; i++)
        if (live_ends[i]) {
            ends_free(live_ends[i], live_cap[i]);
            live_ends[i] = NULL;
        }
}
