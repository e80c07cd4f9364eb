/*
 * runtime.h — the engine thread that carries rerouted connections
 * (DESIGN.md §2 rules 2-4).  The shim is its only caller in the product;
 * its tests (tests/rt) call it the same way.  Everything here is safe to
 * call from any application thread.
 *
 * One engine thread per process, started on first use, runs a libev loop
 * that owns the UDP sockets and the rudp sessions.  Application threads
 * hand it work through a command queue and ev_async.
 *
 * A connection is an AF_UNIX SOCK_STREAM socketpair: the program holds one
 * end on its own fd number, the engine serves the other end.  A listening
 * socket is an AF_UNIX listener on the program's fd number; the engine
 * connects to it once per incoming stream.  TCP-level state is published in
 * a board slot (board.h).
 *
 * The runtime makes its system calls through the table given to
 * rudp_rt_init, never by their plain names: inside the preloaded library a
 * plain call to recv() or connect() would bind to the shim's own hook
 * (DESIGN.md §2 rule 4).  scripts/test checks with nm that no runtime
 * object names a function the shim interposes.
 *
 * Errors are rudp_error codes (rudp.h), never errno values: a failure the
 * operating system reported is RUDP_ERR_SYS(errno).  The shim turns them
 * into the errno a TCP socket would give.
 *
 * Non-blocking connect: the shim fills the program's end with |filler|
 * bytes until its send buffer is full, so the fd is not writable; the
 * engine discards exactly that many bytes once the stream is connected (or
 * closes its end when the connect fails), and the fd becomes writable then,
 * as a TCP socket's does.
 */
#ifndef RUDP_RUNTIME_H
#define RUDP_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "board.h"
#include "rudp/rudp.h"

/* The system calls the runtime makes.  Every entry must be set. */
typedef struct rudp_rt_sys {
    int (*socket)(int domain, int type, int protocol);
    int (*bind)(int fd, const struct sockaddr *addr, socklen_t len);
    int (*listen)(int fd, int backlog);
    int (*accept4)(int fd, struct sockaddr *addr, socklen_t *len, int flags);
    int (*connect)(int fd, const struct sockaddr *addr, socklen_t len);
    int (*close)(int fd);
    int (*fcntl)(int fd, int cmd, ...);
    int (*shutdown)(int fd, int how);
    ssize_t (*recv)(int fd, void *buf, size_t len, int flags);
    ssize_t (*readv)(int fd, const struct iovec *iov, int iovcnt);
    ssize_t (*send)(int fd, const void *buf, size_t len, int flags);
    ssize_t (*sendto)(int fd, const void *buf, size_t len, int flags,
                      const struct sockaddr *addr, socklen_t alen);
    ssize_t (*write)(int fd, const void *buf, size_t len);
    ssize_t (*sendmsg)(int fd, const struct msghdr *msg, int flags);
    ssize_t (*recvmsg)(int fd, struct msghdr *msg, int flags);
    int (*recvmmsg)(int fd, struct mmsghdr *vec, unsigned int n, int flags,
                    struct timespec *timeout);
    int (*sendmmsg)(int fd, struct mmsghdr *vec, unsigned int n, int flags);
    int (*getsockname)(int fd, struct sockaddr *addr, socklen_t *len);
    int (*getsockopt)(int fd, int level, int name, void *val, socklen_t *len);
    int (*setsockopt)(int fd, int level, int name, const void *val, socklen_t len);
    void (*_exit)(int status); /* ends a keeper's helper process, no flush */
} rudp_rt_sys;

typedef struct rudp_rt_config {
    rudp_settings settings;  /* per-session settings (cc, idle timeout...) */
    rudp_tstamp exit_linger; /* at process exit, wait this long for queued data */
    int log_level;           /* 0 off, 1 errors, 2 info, 3 debug */
    int log_fd;              /* where log lines go (-1: stderr) */
    bool retry_always;       /* listeners make every new client prove its address
                                with a RETRY first (else only under load) */
    /* Where resumption tickets are kept (both NULL: not kept).  The engine
     * thread calls them: load when it opens a session to |server| (returns
     * true with *t filled when one is kept), save when a server sent one. */
    bool (*ticket_load)(const rudp_addr *server, rudp_ticket *t);
    void (*ticket_save)(const rudp_addr *server, const rudp_ticket *t);
    /* A directory where every session writes a qlog file (docs/QLOG.md),
     * or NULL: none.  An absolute path, valid for the life of the
     * process. */
    const char *qlog_dir;
} rudp_rt_config;

/* Gives the runtime its system calls (copied).  Call once, before anything
 * else here; until then every call fails with RUDP_ERR_INVAL or does
 * nothing. */
void rudp_rt_init(const rudp_rt_sys *sys);

/* Sets the configuration used when the engine starts (call before the first
 * connect/listen; later calls are ignored once started).  Without it the
 * engine uses rudp_settings_default, no linger and no log. */
void rudp_rt_configure(const rudp_rt_config *cfg);

/* Starts this process's engine thread if it is not running (pthread_once
 * semantics, re-armed in a forked child).  Returns RUDP_OK, RUDP_ERR_INVAL
 * (no rudp_rt_init), RUDP_ERR_NOMEM or RUDP_ERR_SYS(errno). */
int rudp_rt_start(void);

/* Returns this process's board (starting the engine), or NULL. */
rudp_board *rudp_rt_board(void);

/* Opens a stream to |dst| (IPv4 or IPv6 TCP address) over the session for
 * that destination, creating the session (cold, 1-RTT handshake or 0-RTT
 * data) or reusing a warm one.  The engine takes ownership of |engine_fd|,
 * its end of the socketpair, which must be non-blocking (a system call
 * less per connection than setting it here).  |slot| was allocated by the caller with
 * rudp_board_alloc(rudp_rt_board(), RUDP_SLOT_CONNECTING, ...); the engine
 * sets it CONNECTED or FAILED (RUDP_ERR_REFUSED, RUDP_ERR_TIMEDOUT,
 * RUDP_ERR_SYS(ENETUNREACH)...) and, with |filler| > 0, discards that many
 * bytes first.  |local_out| gets the local address of the UDP path (for
 * getsockname).  Returns RUDP_OK or an rudp_error (the fd is not taken
 * then). */
int rudp_rt_connect(int engine_fd, const struct sockaddr *dst, socklen_t dstlen,
                    size_t filler, const rudp_slot_ref *slot,
                    struct sockaddr_storage *local_out);

/* Flags of rudp_rt_listen. */
#define RUDP_RT_LISTEN_V6ONLY                                                              \
    0x1u /* an IPv6 listener with IPV6_V6ONLY: no IPv4 clients                             \
          */

/* Starts serving a listener: streams clients open on the UDP port bound to
 * |local| (the TCP listener's address; port 0 is not allowed) go to the
 * AF_UNIX listener with the abstract name |unix_name| (|name_len| bytes of
 * sun_path, first byte '\0'): the engine connects to it once per stream.
 * When this engine serves |local| already (another listener of the
 * program on the same address), the listener joins that port and streams
 * are spread over its listeners.  Returns a listener id (>= 0) or an
 * rudp_error (RUDP_ERR_SYS(EADDRINUSE) when another program holds the UDP
 * port, RUDP_ERR_INVAL...).  Waits for the engine thread. */
int rudp_rt_listen(const struct sockaddr *local, socklen_t len, const char *unix_name,
                   size_t name_len, unsigned flags);

/* The program closed the listener |id|: stop accepting (streams waiting
 * for the listener are refused). */
void rudp_rt_unlisten(int id);

/* Returns whether this process has an established session with the
 * server at |dst|, so that a new connection to it is open at once (a
 * stream costs no round trip). */
bool rudp_rt_peer_warm(const struct sockaddr *dst, socklen_t len);

/* At exit, for handing listeners to the processes that share their AF_UNIX
 * listeners: parks the engine for good (nothing reads their sockets any
 * more) and calls |fn| for each listener it still serves, with a new fd of
 * its UDP socket (|fn| closes it) and the AF_UNIX listener's name. */
void rudp_rt_leave_listeners(void (*fn)(int id, int udp_fd, const char *unix_name,
                                        size_t name_len, void *ctx),
                             void *ctx);

/* Serves the AF_UNIX listener |unix_name| from the UDP socket |udp_fd|
 * another process's engine served until it exited, taking |udp_fd| over
 * (closed on failure).  Returns the new listener id or an rudp_error. */
int rudp_rt_adopt_listener(int udp_fd, const char *unix_name, size_t name_len);

/* Before this process execs: parks the engine and returns 1 when it
 * carries sessions, bridges or ports that must outlive the exec (the caller
 * then makes a keeper with rudp_rt_keeper_fork), 0 when it carries nothing
 * or is not this process's.  rudp_rt_exec_failed lets the engine go on
 * when the exec fails. */
int rudp_rt_exec_begin(void);
void rudp_rt_exec_failed(void);

/* Makes a keeper: a detached process that carries the engine's sessions
 * and bridges once |gate| (the read end of a pipe whose write end this
 * process holds close-on-exec) ends at a successful exec, and leaves when
 * a byte comes instead (the exec failed).  Returns 0, or -1 when no keeper
 * could be made. */
int rudp_rt_keeper_fork(int gate);

/* At process exit: deliver what programs wrote (reading every socketpair to
 * its end as if closed) and wait until it is acknowledged or the configured
 * linger passes.  Returns at once when no engine runs in this process. */
void rudp_rt_exit_flush(void);

/* The same from _exit(): allocates nothing and takes no lock that may be
 * held (a program may _exit from a signal handler); gives up the flush
 * rather than wait for one.  Only this process's own engine flushes. */
void rudp_rt_exit_flush_quick(void);

/* Before a raw clone() (not fork(): no atfork handler runs): parks the
 * engine thread in a wait that holds no lock, malloc's included, and
 * returns once it is there, so the child's copy of memory has no lock held
 * by a thread it does not have.  rudp_rt_resume() lets it go on.  Both do
 * nothing when no engine of this process runs. */
void rudp_rt_quiesce(void);
void rudp_rt_resume(void);

/* Moves |fd| to the engine's high descriptor range (from the base below),
 * close-on-exec, and returns the new number (|fd| itself, made
 * close-on-exec, when none is free there). */
int rudp_rt_fd_high(int fd);

/* Sets where the engine's high range starts (0: the default, 512).  Any
 * thread, any time: descriptors placed already stay where they are. */
void rudp_rt_set_fd_base(int base);

/* Returns a new descriptor of the same file as |fd| in the engine's high
 * range, close-on-exec (|fd| stays open), or -1 with errno. */
int rudp_rt_fd_dup_high(int fd);

/* Grows the process's fd table now to hold the engine's range.  Growing it
 * later, once the engine thread exists, costs the kernel an RCU grace
 * period (35 ms measured here) in the middle of the first connect; call it
 * while the process is single-threaded (the shim's constructor). */
void rudp_rt_reserve_fds(void);

#endif /* RUDP_RUNTIME_H */
