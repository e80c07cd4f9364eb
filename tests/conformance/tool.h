/*
 * tool.h — what the files of conformance-tool share: the trace, the peer
 * processes, the socket helpers and the case table.
 *
 * conformance-tool is a plain libc program (it knows nothing of rudp).  Each
 * subcommand is one socket behaviour; it runs both ends itself (the parent
 * process and forked "peers") and prints a trace: one line per observable
 * step, "role: what -> result".  tests/conformance/run.py runs every case
 * under kernel TCP and under the shim and compares the two traces, so a
 * trace must be a pure function of the behaviour: no raw ports, fd numbers,
 * times or counts that depend on scheduling.  Ports are printed as "P" (the
 * case's port), "eph" (another non-zero port) or "0"; times as a verdict
 * against a bound ("fast"); sizes of kernel buffers as relations.
 *
 * Ordering: each process prints its own lines in program order; a peer's
 * lines are collected through a pipe and printed when the parent joins it,
 * so the interleaving of processes never shows.  Processes step in lock
 * with messages on a control socketpair (ctl_put/ctl_get), never with
 * sleeps; every wait has a deadline.
 */
#ifndef CONFORMANCE_TOOL_H
#define CONFORMANCE_TOOL_H

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Deadline of one step that should happen (a connection, bytes, an event). */
#ifndef STEP_MS
#define STEP_MS 3000
#endif
/* A short grace period, used ONLY where a case proves that something does
 * NOT happen (no EOF yet, not readable yet); each use says so. */
#define GRACE_MS 300
/* Every process of a case is killed by its watchdog after this long. */
#define CASE_SEC 40

/* Control messages between the processes of a case. */
enum { C_GO = 1, C_READY, C_NEXT, C_DONE, C_SENT, C_STOP, C_ACCEPTED, C_STOPPED };

/* Options of lsn() and sock_new(). */
enum {
    O_REUSEADDR = 1,
    O_REUSEPORT = 2,
    O_V6ONLY = 4, /* IPV6_V6ONLY=1 */
    O_DUAL = 8,   /* IPV6_V6ONLY=0, set explicitly */
    O_NONBLOCK_ = 16,
};

extern uint16_t g_port;    /* the case's port (rerouted under the shim) */
extern const char *g_self; /* argv[0], to re-execute the tool */

/* ---- trace (tool.c) */
void T(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void T_res(long rc, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const char *ename(int e);
const char *res_str(long rc, int err);
const char *mask_str(int m);
void set_role(const char *role);
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
int64_t now_ms(void);
void arm(int ms);
void disarm(void);
void alarm_clear(void);

/* Runs |expr|, prints "<desc> -> <result>" and yields the result. */
#define CALL(expr, ...)                                                                    \
    ({                                                                                     \
        alarm_clear();                                                                     \
        errno = 0;                                                                         \
        long rc_ = (long)(expr);                                                           \
        int e_ = errno;                                                                    \
        T_res(rc_, e_, __VA_ARGS__);                                                       \
        errno = e_;                                                                        \
        rc_;                                                                               \
    })

/* Runs the blocking |expr| interrupted after STEP_MS (then -1 EINTR). */
#define BCALL(expr, ...)                                                                   \
    ({                                                                                     \
        arm(STEP_MS);                                                                      \
        errno = 0;                                                                         \
        long rc_ = (long)(expr);                                                           \
        int e_ = errno;                                                                    \
        disarm();                                                                          \
        T_res(rc_, e_, __VA_ARGS__);                                                       \
        errno = e_;                                                                        \
        rc_;                                                                               \
    })

/* ---- peers (tool.c) */
typedef struct peer {
    pid_t pid;
    int out;    /* read end of the pipe the peer's trace comes through */
    int ctl;    /* the parent's end of the control socketpair */
    int status; /* wait status once reaped by peer_kill, else -1 */
    char name[16];
} peer;

typedef void (*peer_fn)(int ctl, void *arg);

void peer_start(peer *p, const char *name, peer_fn fn, void *arg);
int peer_join(peer *p, int ms);
void peer_kill(peer *p);
void peer_exec(char **argv) __attribute__((noreturn));
void ctl_put(int ctl, int msg);
int ctl_get(int ctl, int ms);
void ctl_expect(int ctl, int msg);
void harness_fd(int fd);

/* ---- sockets (net.c) */
socklen_t sa_make(struct sockaddr_storage *ss, int fam, const char *ip, uint16_t port);
const char *sa_fmt(const struct sockaddr_storage *ss, socklen_t len);
uint16_t sa_port(const struct sockaddr_storage *ss);
const char *name_of(int fd, bool remote);
int sock_new(int fam, unsigned opts);
long set_int(int fd, int level, int name, int val, const char *desc);
int get_int(int fd, int level, int name, const char *desc);
int lsn(int fam, const char *ip, unsigned opts);
int lsn_port(int fam, const char *ip, uint16_t port, unsigned opts);
int dial_port(int fam, const char *ip, uint16_t port);
int dial(int fam, const char *ip);
int dial_nb(int fam, const char *ip);
int acc(int lfd, const char *tag);
int poll_for(int fd, short events, short want, int ms);
void show_poll(int fd, const char *tag);
bool wait_ev(int fd, short want, const char *tag);
ssize_t rd(int fd, size_t n, const char *tag);
ssize_t rcv(int fd, size_t n, int flags, const char *what);
const char *quote(const char *buf, ssize_t n);
ssize_t wr(int fd, const char *s, const char *tag);
bool wait_inq(int fd, int n, int ms);
bool wait_fin(int fd);
void set_nonblock(int fd, bool on);
void abort_close(int fd, const char *tag);
const char *fd_flags(int fd);

/* ---- data (net.c) */
void pat_fill(uint8_t *buf, uint64_t off, size_t n);
int send_pat(int fd, uint64_t n);
uint64_t recv_eof(int fd, char hex[17], int ms);
uint64_t recv_eof_err(int fd, char hex[17], int ms, int *err);
void recv_report(int fd, const char *tag);
void pump_echo(int fd, uint64_t n, const char *tag);
void pump_echo_open(int fd, uint64_t n, const char *tag);
void serve_n(int fd, uint64_t n);
void serve_echo(int fd);
const char *pat_hex(uint64_t n);
void sha256(const uint8_t *data, size_t len, uint8_t out[32]);

typedef struct sha_ctx {
    uint32_t h[8];
    uint8_t buf[64];
    uint64_t len;
} sha_ctx;
void sha_init(sha_ctx *c);
void sha_update(sha_ctx *c, const void *data, size_t n);
void sha_hex(sha_ctx *c, char hex[17]);

/* ---- shapes (shapes.c) */
typedef void (*conn_fn)(int ctl, int fd);
void cli_script(int ctl, void *arg);
void cli_many(int ctl, void *arg);
void step(peer *c);
void finish(peer *c);
bool got_hi(int fd);
int take(int lfd, const char *tag);
int pair_open(peer *s, conn_fn fn);
void pair_server(peer *s, conn_fn fn);

/* ---- the cases (cases_*.c) */
typedef void (*case_fn)(void);
typedef struct case_def {
    const char *name;
    case_fn fn;
    const char *what;
} case_def;

extern const case_def cases_listen[];
extern const case_def cases_conn[];
extern const case_def cases_compat[];
extern const case_def cases_api[];
extern const case_def cases_io[];

void nb_connect_report(int fam, const char *ip);
int exec_child_main(int argc, char **argv);

#endif
