/*
 * shim.h — internals shared by the files of librudp_shim.so (DESIGN.md §2
 * rule 2, §4).
 *
 * Every interposed libc function is defined with RUDP_EXPORT (the library
 * is built with -fvisibility=hidden) and reaches libc through RUDP_REAL():
 * a pointer resolved once with dlsym(RTLD_NEXT) and cached in an atomic.
 * Two threads resolving the same pointer at once both store the same value,
 * so no lock is needed.  A hook never calls another interposed function by
 * its plain name; it always goes through RUDP_REAL().
 *
 * This header must be included first: it turns _FORTIFY_SOURCE off (the
 * shim defines read() and friends itself, which the fortified inline
 * wrappers would clash with), turns _FILE_OFFSET_BITS off (with it glibc
 * declares fcntl under the assembler name fcntl64, and the shim defines
 * both) and turns _GNU_SOURCE on.
 */
#ifndef RUDP_SHIM_H
#define RUDP_SHIM_H

#undef _FORTIFY_SOURCE
#undef _FILE_OFFSET_BITS /* else <fcntl.h> renames fcntl to fcntl64 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <fcntl.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "board.h"
#include "config.h"
#include "fdtable.h"
#include "runtime.h"

#define RUDP_EXPORT __attribute__((visibility("default")))

/* glibc's fortified entry points; their declarations only exist under
 * _FORTIFY_SOURCE, which the shim turns off. */
ssize_t __read_chk(int fd, void *buf, size_t nbytes, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
                       struct sockaddr *addr, socklen_t *addrlen);

/* Every libc function the shim interposes (and so must reach through the
 * real pointer). */
/* clang-format off */
#define RUDP_REAL_FUNCS(X)                                                                 \
    X(socket) X(socketpair) X(connect) X(bind) X(listen) X(accept) X(accept4) X(close)     \
    X(close_range) X(closefrom) X(read) X(recv) X(recvfrom) X(recvmsg) X(readv)            \
    X(__read_chk) X(__recv_chk) X(__recvfrom_chk) X(write) X(send) X(sendto) X(sendmsg)    \
    X(writev) X(getsockopt) X(setsockopt) X(getpeername) X(getsockname) X(dup) X(dup2)     \
    X(dup3) X(fcntl) X(fcntl64) X(prctl) X(syscall) X(getrlimit) X(getrlimit64)           \
    X(setrlimit) X(setrlimit64) X(prlimit) X(prlimit64) X(execve) X(execv) X(execvp)      \
    X(execvpe) X(execl) X(execlp) X(execle) X(fexecve) X(vfork) X(_exit) X(_Exit)    \
    X(shutdown) X(ioctl)

enum rudp_real_id {
#define RUDP_REAL_ENUM(name) RUDP_REAL_ID_##name,
    RUDP_REAL_FUNCS(RUDP_REAL_ENUM)
#undef RUDP_REAL_ENUM
    RUDP_REAL_COUNT
};
/* clang-format on */

extern _Atomic(void *) rudp_real_ptrs[RUDP_REAL_COUNT];

/* Resolves libc's definition of function |id| with dlsym(RTLD_NEXT) and
 * caches it.  Aborts the process when libc has no such function (a libc
 * the shim cannot work with); fcntl64 falls back to fcntl. */
void *rudp_real_resolve(enum rudp_real_id id);

/* Returns the cached libc pointer of function |id|, resolving it on first
 * use. */
static inline void *rudp_real_ptr(enum rudp_real_id id) {
    void *p = atomic_load_explicit(&rudp_real_ptrs[id], memory_order_relaxed);

    return p != NULL ? p : rudp_real_resolve(id);
}

/* The libc function |name|, typed: RUDP_REAL(close)(fd). */
#define RUDP_REAL(name) ((__typeof__(&name))rudp_real_ptr(RUDP_REAL_ID_##name))

/* --- global state (shim.c) --- */

extern rudp_shim_config rudp_cfg;
extern _Atomic bool rudp_shim_on;

/* Returns true when the shim reroutes anything (RUDP_PORTS is set); when
 * false every hook is a passthrough. */
static inline bool rudp_active(void) {
    return atomic_load_explicit(&rudp_shim_on, memory_order_relaxed);
}

/* --- errors (shim.c) --- */

/* Returns the errno a TCP socket reports for rudp_error |err| (0 for
 * RUDP_OK): the one place where the runtime's errors become errno values
 * (DESIGN.md §2: the core and the runtime speak rudp_error). */
int rudp_errno(int err);

/* --- logging (shim.c) --- */

#define RUDP_LOG_ERROR 1
#define RUDP_LOG_INFO 2
#define RUDP_LOG_DEBUG 3

/* Writes one line "rudp[pid]: ..." to RUDP_LOG_FILE (or stderr) when
 * |level| is enabled.  Uses snprintf and one write(); no stdio stream, no
 * allocation.  Preserves errno. */
void rudp_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* --- addresses (shim.c) --- */

/* Returns the size of a sockaddr of |family| (AF_INET, AF_INET6), else 0. */
socklen_t rudp_addr_size(int family);

/* Returns the port of an AF_INET/AF_INET6 address in host order. */
uint16_t rudp_addr_port(const struct sockaddr *sa);

/* Copies the AF_INET/AF_INET6 address |sa| (|len| bytes as the program
 * gave them) into |out|, zeroing padding, and turns a wildcard destination
 * into loopback when |for_connect| (as Linux routes 0.0.0.0 and ::).
 * Returns the address length, or 0 when |sa| is too short or of another
 * family. */
socklen_t rudp_addr_normalize(struct sockaddr_storage *out, const struct sockaddr *sa,
                              socklen_t len, bool for_connect);

/* Converts the address in |ss| to |family| in place: IPv4 becomes
 * v4-mapped IPv6 for AF_INET6, v4-mapped IPv6 becomes IPv4 for AF_INET;
 * anything else stays.  Returns the new length. */
socklen_t rudp_addr_to_family(struct sockaddr_storage *ss, int family);

/* Copies |srclen| bytes of |src| to the program's buffer the way the
 * kernel does: min(*dstlen, srclen) bytes, then *dstlen = srclen.  Returns
 * 0, or -1 with errno EFAULT (NULL pointers) or EINVAL (negative length). */
int rudp_addr_copy_out(struct sockaddr *dst, socklen_t *dstlen, const void *src,
                       socklen_t srclen);

/* Returns true when a TCP address is selected for rerouting: its port is
 * in RUDP_PORTS and its host passes RUDP_HOSTS (|listening|: a wildcard
 * bind address passes too). */
bool rudp_addr_selected(const struct sockaddr *sa, bool listening);

/* --- fds (shim.c) --- */

/* Returns the inode number of |fd| (0 on error).  Preserves errno. */
uint64_t rudp_fd_inode(int fd);

/* Reads fd's descriptor and status flags into *cloexec and *nonblock.
 * Returns 0 or -errno. */
int rudp_fd_flags(int fd, bool *cloexec, bool *nonblock);

/* Puts |src| on the number |fd| (closing what was there), keeping fd's
 * close-on-exec and non-blocking flags, and closes |src|.  |src_nonblock|
 * says |src| is a fresh non-blocking socket (status flags O_RDWR |
 * O_NONBLOCK, so clearing needs no F_GETFL); otherwise O_NONBLOCK is only
 * added when |nonblock|, as to a blocking socket.  Returns 0 or -errno
 * (then |src| is still open). */
int rudp_fd_swap(int src, int fd, bool cloexec, bool nonblock, bool src_nonblock);

/* Returns true when |fd| is still the socket |e| was recorded for (its
 * inode matches), false when it was closed behind the shim's back (fclose,
 * a raw syscall) and the number reused.  Preserves errno. */
bool rudp_fd_still_ours(int fd, const rudp_fd_entry *e);

/* Applies the recorded SO_SNDTIMEO, SO_RCVTIMEO, SO_SNDBUF and SO_RCVBUF of
 * |o| to the AF_UNIX socket |fd| that replaces a TCP socket.  Errors are
 * ignored (best effort).  Preserves errno. */
void rudp_fd_apply_opts(int fd, const rudp_fd_opts *o);
/* Tells the engine, through the connection's slot, the liveness options
 * recorded in |o| (TCP_USER_TIMEOUT, SO_KEEPALIVE, TCP_KEEP*): when any is
 * set, or |always| (a change) (hooks_opt.c). */
void rudp_opt_publish_liveness(const rudp_fd_opts *o, rudp_slot *slot, bool always);

/* Runs what closing |fd| means for its entry, before the kernel closes it:
 * marks a connection with SO_LINGER {1, 0} for reset (the engine acts when
 * the last copy is closed) and clears the entry.  When fd was a listener
 * that this process's engine serves and |l| is not NULL, copies the entry
 * to *l and returns true: the caller then calls rudp_fd_listener_closed(l)
 * after the real close. */
bool rudp_fd_forget(int fd, rudp_fd_entry *l);

/* After the real close of listener |l|'s fd: when no copy of the AF_UNIX
 * listener is left in any process (its abstract name is free again), tells
 * the engine to stop serving it.  Preserves errno. */
void rudp_fd_listener_closed(const rudp_fd_entry *l);

/* --- listeners outliving their process (handover.c) --- */

/* At exit, after the exit flush: offers every listener this process's
 * engine serves to the processes that share its AF_UNIX listener. */
void rudp_listeners_hand_over(void);

/* When |nfd|, just accepted on listener |l|, is a hand-over connection:
 * takes its UDP socket into this process's engine, makes this process the
 * owner of every fd of the listener, closes |nfd| and returns true.
 * Returns false for any other connection. */
bool rudp_listener_take_over(int nfd, const rudp_fd_entry *l);

/* --- the descriptor budget (limits.c) --- */

/* Sets the program's RLIMIT_NOFILE and the process's real one, which makes
 * room above it for the engine's descriptors.  The constructor calls it. */
void rudp_limits_init(void);

/* Returns true when |fd|, just made for the program, is beyond the
 * program's own limit: the call must fail with EMFILE as TCP's would. */
bool rudp_limits_exceeded(int fd);

/* Returns true when the next descriptor the kernel would give (a probe
 * duplicate of |fd|) is beyond the program's limit: accept() must fail
 * with EMFILE without taking a connection. */
bool rudp_limits_full(int fd);

/* --- io_uring (hooks_uring.c) --- */

/* Returns true (errno ENOSYS) when system call |nr| made through syscall()
 * makes an io_uring ring while the shim reroutes: refused. */
bool rudp_uring_refuse(long nr);

/* --- exec (hooks_exec.c) --- */

/* At start-up of an image exec'd by a process under the shim: takes the
 * entries of the rerouted descriptors it inherited from RUDP_INHERIT. */
void rudp_exec_import(void);

/* --- connections (hooks_conn.c) --- */

/* Reroutes the unconnected TCP socket |fd| (entry kind TCP) to |addr|:
 * puts a socketpair end on fd and starts the connect in the engine, with
 * 0-RTT when |fastopen|.  Does not wait.  Returns 0 or -errno. */
int rudp_conn_reroute(int fd, const struct sockaddr *addr, socklen_t len, bool fastopen);

/* --- secret.c --- */
/* Writes the user's state directory (RUDP_STATE_DIR, else
 * $XDG_RUNTIME_DIR/rudp, else /var/tmp/rudp-UID) into |buf|, making it
 * (0700) when missing; returns false when it does not fit or is not a
 * directory of this user's that nobody else may enter. */
bool rudp_state_dir(char *buf, size_t cap);

/* Sets |out| to this endpoint's secret (rudp_settings.secret): derived from
 * the pre-shared key, else kept in the user's state directory so that a
 * restarted server still resets its old connections, else random. */
void rudp_secret_load(const rudp_shim_config *c, uint8_t out[32]);

/* --- tickets.c --- */
/* The resumption tickets of this user's clients, one per server address in
 * the state directory: rudp_rt_config.ticket_load and ticket_save. */
bool rudp_ticket_load(const rudp_addr *server, rudp_ticket *t);
void rudp_ticket_save(const rudp_addr *server, const rudp_ticket *t);

#endif /* RUDP_SHIM_H */
