/*
 * helpers.h — what the runtime's tests (tests/rt) share: the test program
 * plays the shim's part (runtime.h), with plain libc and no LD_PRELOAD.
 *
 *  - the engine: a system call table of plain libc, configured as the shim
 *    configures it (criterion runs each Test in its own process, so each
 *    test gets a fresh engine);
 *  - deadlines: every wait is a poll() bounded by a monotonic deadline;
 *  - a deterministic byte pattern, computable at any stream offset;
 *  - a listener (an AF_UNIX listener the engine dials, and the UDP port it
 *    serves) and a connect (socketpair + board slot + rudp_rt_connect);
 *  - a set of connection ends driven by one poll loop: each end sends an
 *    optional header, then pattern bytes, then optionally a FIN, and
 *    checks what it receives against the pattern it expects, then EOF;
 *  - child processes that exit when done and are killed on failure.
 */
#ifndef RUDP_RT_TEST_HELPERS_H
#define RUDP_RT_TEST_HELPERS_H

#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include "runtime.h"

/* How long one phase of a test may take (sanitizer builds are slow). */
#define RTEST_PHASE_MS 45000
/* Every test's hard limit (criterion kills the test after it). */
#define RTEST_TIMEOUT_S 120

/* --- failing --- */

/* Asserts |cond|, with an optional printf-style message.  In the test
 * process a failure is criterion's; in a child made by rtest_fork (where
 * criterion must not run) it is a line on stderr and _exit with
 * RTEST_CHILD_ASSERT. */
#define RTEST_ASSERT(cond, ...)                                                            \
    ((cond) ? (void)0 : rtest_fail(__FILE__, __LINE__, #cond, " " __VA_ARGS__))
#define RTEST_CHILD_ASSERT 99
extern bool rtest_in_child;
void rtest_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));

/* --- time --- */

/* Returns the monotonic clock in milliseconds. */
int64_t rtest_now_ms(void);
/* Returns the deadline |ms| from now. */
int64_t rtest_deadline(int ms);
/* Returns the milliseconds left until |deadline| (0 once it has passed). */
int rtest_left_ms(int64_t deadline);
/* Waits until |fd| reports one of |events| or the deadline passes.
 * Returns the revents (0 on timeout). */
short rtest_wait_fd(int fd, short events, int64_t deadline);

/* Waits up to |ms| for any of |n| fds to report one of |events|.  Returns
 * the index of the first that did, or -1 when none did. */
int rtest_first_event(const int *fds, size_t n, short events, int ms);
/* Waits for |fd| to be readable and reads once.  Returns what recv
 * returned (0 at EOF, -1 with errno), or -2 when the deadline passed. */
ssize_t rtest_read_once(int fd, int64_t deadline);

/* --- the engine --- */

/* Fills |sys| with the plain libc functions. */
void rtest_sys_libc(rudp_rt_sys *sys);
/* Starts this process's engine on |sys| (NULL: plain libc) with the default
 * settings, no log and a 5 s exit linger.  Asserts on failure. */
void rtest_engine(const rudp_rt_sys *sys);
/* The same with |set| as the sessions' settings. */
void rtest_engine_with(const rudp_rt_sys *sys, const rudp_settings *set);
/* The same with every session writing a qlog file into |qlog_dir| (an
 * absolute path that outlives the engine; NULL: none). */
void rtest_engine_qlog(const rudp_rt_sys *sys, const rudp_settings *set,
                       const char *qlog_dir);

/* --- bytes --- */

/* Fills |buf| with the bytes of stream |seed| at offsets [off, off+len). */
void rtest_pattern(uint8_t *buf, size_t len, uint64_t seed, uint64_t off);
/* Returns the index of the first byte of |buf| that differs from stream
 * |seed| at |off|, or |len| when all match. */
size_t rtest_pattern_diff(const uint8_t *buf, size_t len, uint64_t seed, uint64_t off);
/* FNV-1a over |len| bytes, continuing from |h| (start with RTEST_HASH0). */
#define RTEST_HASH0 0xcbf29ce484222325ull
uint64_t rtest_hash(const void *p, size_t len, uint64_t h);
/* A seed made of up to three small numbers. */
uint64_t rtest_seed(uint64_t a, uint64_t b, uint64_t c);

/* Writes a header naming a stream by three numbers (a magic first). */
void rtest_hdr_put(uint8_t hdr[16], uint32_t a, uint32_t b, uint32_t c);
/* Reads a header made by rtest_hdr_put; false when the magic is wrong. */
bool rtest_hdr_get(const uint8_t hdr[16], uint32_t *a, uint32_t *b, uint32_t *c);

/* --- addresses --- */

/* Sets |a| to |ip|:|port| (port in host order). */
void rtest_addr4(struct sockaddr_in *a, const char *ip, uint16_t port);
/* Returns the port of an IPv4 or IPv6 address, in host order. */
uint16_t rtest_port(const struct sockaddr_storage *a);

/* --- listening --- */

typedef struct rtest_listener {
    int lfd;                 /* the AF_UNIX listener the engine dials */
    int id;                  /* the runtime's listener id */
    struct sockaddr_in addr; /* the UDP (TCP-level) address it serves */
    char name[sizeof(((struct sockaddr_un *)0)->sun_path)];
    size_t name_len;
} rtest_listener;

/* Listens on |ip| at a free port with an AF_UNIX queue of |backlog|.
 * Asserts on failure. */
void rtest_listen(rtest_listener *l, const char *ip, int backlog);
/* Listens, with a new AF_UNIX listener, on the address |first| serves
 * (another socket of the program on it).  Asserts on failure. */
void rtest_listen_also(rtest_listener *l, const rtest_listener *first, int backlog);
/* Stops the listener (rudp_rt_unlisten) and closes the AF_UNIX listener. */
void rtest_unlisten(rtest_listener *l);
/* Accepts one connection (non-blocking) within the deadline; -1 if none. */
int rtest_accept(int lfd, int64_t deadline);

/* What the engine's abstract name of an accepted connection carries. */
typedef struct rtest_peer {
    uint32_t eid, index;
    struct sockaddr_storage peer, local; /* TCP-level addresses */
    rudp_slot_ref ref; /* ref.slot NULL when the board is not this process's */
} rtest_peer;

/* Decodes getpeername() of accepted |fd|.  Returns false when it is not
 * an engine's name. */
bool rtest_peer_of(int fd, rtest_peer *out);

/* --- connecting --- */

typedef struct rtest_conn {
    int fd; /* the program's end (non-blocking) */
    rudp_slot_ref ref;
    struct sockaddr_storage local; /* what rudp_rt_connect reported */
} rtest_conn;

/* Opens a connection to |dst| as the shim does with fast open (no filler).
 * Returns RUDP_OK or the error of rudp_rt_connect (c->fd is -1 then). */
int rtest_connect(rtest_conn *c, const struct sockaddr *dst, socklen_t len);
/* Waits, polling the board, until the slot's state is not |from| or the
 * deadline passes; returns the state. */
uint32_t rtest_wait_state(const rudp_slot *s, uint32_t from, int64_t deadline);

/* --- connection ends --- */

#define RTEST_HDR 16

typedef struct rtest_end {
    int fd;
    uint32_t tag;    /* the test's own label */
    rudp_slot *slot; /* the test's: the end's board slot, if it keeps one */
    /* Sending: hdr, then tx_len bytes of stream tx_seed, then a FIN. */
    uint8_t hdr[RTEST_HDR];
    size_t hdr_len, hdr_off;
    uint64_t tx_seed, tx_len, tx_off;
    bool tx_fin;  /* shutdown(SHUT_WR) after the last byte */
    bool tx_shut; /* done */
    bool tx_hold; /* send nothing yet */
    /* Receiving: rx_hdr_len header bytes (the set's on_hdr then sets the
     * rest), then rx_len bytes of stream rx_seed, then EOF. */
    uint8_t rx_hdr[RTEST_HDR];
    size_t rx_hdr_len, rx_hdr_off;
    uint64_t rx_seed, rx_len, rx_off;
    bool rx_open;  /* done at rx_len: EOF not awaited */
    bool rx_eof;   /* EOF read */
    char why[160]; /* the first failure, "" while none */
} rtest_end;

typedef struct rtest_set rtest_set;
struct rtest_set {
    rtest_end *ends;
    size_t n, cap;
    int lfd;            /* accept from it while to_accept > 0 */
    size_t to_accept;   /* connections still to accept */
    void *ctx;          /* the test's */
    struct pollfd *pfd; /* rtest_set_run's */
    size_t *pidx;
    char why[256]; /* why the run failed */
    /* An accepted end was added (fd set, the rest zero). */
    void (*on_accept)(rtest_set *s, rtest_end *e);
    /* An end's header has come; sets what follows.  May fill e->why. */
    void (*on_hdr)(rtest_set *s, rtest_end *e);
};

/* Makes an empty set of room for |cap| ends, accepting nothing. */
void rtest_set_init(rtest_set *s, size_t cap);
/* Adds an end on |fd| (zeroed otherwise).  Asserts there is room. */
rtest_end *rtest_set_add(rtest_set *s, int fd);
/* Drives every end and the accepts until all are done (0), or an end
 * fails or the deadline passes (-1, s->why says which and why). */
int rtest_set_run(rtest_set *s, int64_t deadline);
/* Closes every end's fd (set e->fd to -1 to keep one) and frees the
 * set. */
void rtest_set_free(rtest_set *s);

/* Writes stream |seed| into non-blocking |fd| from *off until it stays
 * unwritable for |quiet_ms| (returns true: backpressure) or |cap| bytes are
 * written (false).  A write error fails the same way, with errno set. */
bool rtest_fill_until_stalled(int fd, uint64_t seed, uint64_t *off, uint64_t cap,
                              int quiet_ms);

/* --- child processes --- */

/* Forks a child that runs fn(arg) and _exit()s with its result (it dies
 * with the test process).  Registered for rtest_cleanup. */
pid_t rtest_fork(int (*fn)(void *arg), void *arg);
/* Waits for child |pid| to exit until the deadline (killing it then).
 * Returns its exit status, or -1 when it did not exit by itself. */
int rtest_reap(pid_t pid, int64_t deadline);
/* A test's .fini: kills and reaps every child still registered, closes
 * and frees the sets a failed test left behind. */
void rtest_cleanup(void);

#endif /* RUDP_RT_TEST_HELPERS_H */
