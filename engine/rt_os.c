/*
 * rt_os.c — what the runtime asks of the operating system: the system call
 * table, the clock, where its descriptors live, randomness and log lines.
 *
 * The table (DESIGN.md §2 rule 4).  Inside librudp_shim.so a plain call to
 * recv() or connect() binds to the shim's own hook, so the runtime never
 * makes one: rudp_rt_init hands it the real functions once, and every file
 * of the runtime calls through rt_sys.  Calls that the shim does not
 * interpose (clock_gettime, getrandom, eventfd, mmap, pthreads) are made
 * directly.
 *
 * Descriptors (DESIGN.md §2 rule 3).  The engine's own fds are
 * close-on-exec and live high, from the base the shim sets (the program's
 * own RLIMIT_NOFILE soft limit, the shim giving the process room above it:
 * shim/limits.c) or 512, so programs that dup2 onto low numbers or close
 * fds in bulk do not hit them, nor count them.
 */
#include "rt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

/* The engine's lowest descriptor number until told otherwise, and how many
 * numbers above it rudp_rt_reserve_fds makes room for. */
#define RT_FD_BASE_DEFAULT 512
#define RT_FD_RESERVE 256

rudp_rt_sys rt_sys;
static _Atomic bool sys_ready;
static _Atomic int log_level;
static _Atomic int log_fd = -1;
static _Atomic int fd_base = RT_FD_BASE_DEFAULT;

void rudp_rt_init(const rudp_rt_sys *sys) {
    rt_sys = *sys;
    atomic_store_explicit(&sys_ready, true, memory_order_release);
}

bool rt_addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

bool rt_os_ready(void) {
    return atomic_load_explicit(&sys_ready, memory_order_acquire);
}

void rt_os_set_log(int level, int fd) {
    atomic_store(&log_fd, fd);
    atomic_store(&log_level, level);
}

int rt_os_log_fd(void) {
    return atomic_load(&log_fd);
}

rudp_tstamp rt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (rudp_tstamp)ts.tv_sec * 1000000000ull + (rudp_tstamp)ts.tv_nsec;
}

uint64_t rt_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void rt_log(int level, const char *fmt, ...) {
    if (level > atomic_load(&log_level) || !rt_os_ready())
        return;
    int saved = errno;
    char line[512];
    int n = snprintf(line, sizeof(line), "rudp[%d]: ", (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    n = m < 0 ? n : n + m;
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    int fd = atomic_load(&log_fd);
    if (rt_sys.write(fd >= 0 ? fd : 2, line, (size_t)n) < 0) {
        /* A lost log line is not worth failing over. */
    }
    errno = saved;
}

void rudp_rt_set_fd_base(int base) {
    atomic_store(&fd_base, base > 0 ? base : RT_FD_BASE_DEFAULT);
}

/* Returns the lowest descriptor number the engine's own fds take. */
static int rt_fd_base(void) {
    return atomic_load(&fd_base);
}

void rudp_rt_reserve_fds(void) {
    if (!rt_os_ready())
        return;
    int fd = eventfd(0, EFD_CLOEXEC);
    if (fd < 0)
        return;
    int hi = rt_sys.fcntl(fd, F_DUPFD_CLOEXEC, rt_fd_base() + RT_FD_RESERVE);
    if (hi >= 0)
        rt_sys.close(hi);
    rt_sys.close(fd);
}

int rudp_rt_fd_high(int fd) {
    return rt_os_ready() ? rt_fd_high(fd) : fd;
}

int rudp_rt_fd_dup_high(int fd) {
    if (!rt_os_ready()) {
        errno = EINVAL;
        return -1;
    }
    int hi = rt_sys.fcntl(fd, F_DUPFD_CLOEXEC, rt_fd_base());
    return hi >= 0 ? hi : rt_sys.fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

int rt_fd_high(int fd) {
    int hi = rt_sys.fcntl(fd, F_DUPFD_CLOEXEC, rt_fd_base());
    if (hi < 0) {
        rt_sys.fcntl(fd, F_SETFD, FD_CLOEXEC);
        return fd;
    }
    rt_sys.close(fd);
    return hi;
}

int rt_fd_nonblock(int fd) {
    int fl = rt_sys.fcntl(fd, F_GETFL);
    if (fl < 0 || rt_sys.fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return rt_err();
    return RUDP_OK;
}

void rt_fd_drain_but_one(int fd, size_t n) {
    char buf[65536];
    while (n > 1) {
        size_t want = n - 1 < sizeof(buf) ? n - 1 : sizeof(buf);
        ssize_t got = rt_sys.recv(fd, buf, want, MSG_DONTWAIT);
        if (got <= 0 && !(got < 0 && errno == EINTR))
            return;
        n -= got > 0 ? (size_t)got : 0;
    }
}

uint64_t rt_random64(void) {
    uint64_t v;
    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v))
        return v;
    static _Atomic uint64_t counter;
    v = rt_now() ^ ((uint64_t)getpid() << 32) ^ atomic_fetch_add(&counter, 1);
    v = (v ^ (v >> 30)) * 0xbf58476d1ce4e5b9ull; /* splitmix64 finaliser */
    v = (v ^ (v >> 27)) * 0x94d049bb133111ebull;
    return v ^ (v >> 31);
}

int rt_err(void) {
    return RUDP_ERR_SYS(errno ? errno : EIO);
}
