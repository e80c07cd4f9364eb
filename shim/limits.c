/*
 * limits.c — the descriptor budget: a program under the shim may hold as
 * many rerouted connections as TCP lets it (issue 11, DESIGN.md §4).
 *
 * A rerouted connection costs its process two descriptors: the program's
 * end of the socketpair, on the number the TCP socket had, and the
 * engine's end.  Under the default soft RLIMIT_NOFILE of 1024 a program
 * would hold half as many connections as with TCP, and fail where TCP does
 * not.  So the shim keeps two limits: the program's, which getrlimit,
 * setrlimit and prlimit show and change as if they were the only one, and
 * the process's real soft limit, about twice that (bounded by the hard
 * limit), whose upper half holds the engine's descriptors
 * (rudp_rt_set_fd_base puts them at the program's limit and above).  The
 * program's calls that make sockets, socket() and accept(), fail with
 * EMFILE when the number the kernel gave is at or above the program's
 * limit, as TCP's would; other calls (open, pipe, dup) may go beyond it, so
 * a program gets at least what it asked for, never less.
 *
 * The program's limit reaches an exec'd image through RUDP_NOFILE in the
 * environment, set once by the constructor: the new image would otherwise
 * take the raised limit for the program's and double it again.  When the
 * hard limit leaves no room to double, nothing is managed: the limits are
 * the kernel's, and the engine's descriptors count against them (each
 * connection two).
 */
#include "shim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

/* Descriptors the engine needs besides one per connection (its loop, UDP
 * sockets, listeners' placeholders, the log). */
#define LIMITS_ENGINE_SPARE 256

/* The program's soft limit; 0 while the limits are not managed. */
static _Atomic rlim_t prog_soft;

/* Returns the real soft limit that makes room for the engine beside a
 * program limit of |soft|, bounded by |hard|. */
static rlim_t limits_real_for(rlim_t soft, rlim_t hard) {
    rlim_t want = soft > (RLIM_INFINITY - LIMITS_ENGINE_SPARE) / 2
                      ? RLIM_INFINITY
                      : 2 * soft + LIMITS_ENGINE_SPARE;
    return want < hard ? want : hard;
}

/* The limits are the kernel's (soft limit |soft|): the engine's
 * descriptors go in the upper half, at most from 16384. */
static void limits_unmanaged(rlim_t soft) {
    atomic_store(&prog_soft, 0);
    rudp_rt_set_fd_base(soft > 1024 ? (int)(soft / 2 < 16384 ? soft / 2 : 16384) : 512);
}

/* Manages a program limit of |soft| under the hard limit |hard|: sets the
 * real soft limit and the engine's base.  Returns 0, or -1 (errno set,
 * nothing managed) when the hard limit leaves no room. */
static int limits_manage(rlim_t soft, rlim_t hard) {
    rlim_t real = limits_real_for(soft, hard);
    struct rlimit rl = {.rlim_cur = real, .rlim_max = hard};

    if (soft == RLIM_INFINITY || real < soft + soft / 2 || soft > INT32_MAX / 2) {
        atomic_store(&prog_soft, 0);
        errno = ENOSPC;
        return -1;
    }
    if (RUDP_REAL(setrlimit)(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    atomic_store(&prog_soft, soft);
    rudp_rt_set_fd_base((int)soft);
    return 0;
}

void rudp_limits_init(void) {
    struct rlimit rl;
    const char *env = getenv("RUDP_NOFILE");
    char buf[32];

    if (RUDP_REAL(getrlimit)(RLIMIT_NOFILE, &rl) < 0)
        return;
    rlim_t soft = rl.rlim_cur;
    if (env != NULL && *env != '\0') {
        char *end;
        unsigned long long v = strtoull(env, &end, 10);

        /* Our own mark from an image before exec: trusted while the real
         * limit is still the one it made. */
        if (*end == '\0' && v > 0 && limits_real_for((rlim_t)v, rl.rlim_max) == rl.rlim_cur)
            soft = (rlim_t)v;
    }
    if (limits_manage(soft, rl.rlim_max) < 0) {
        limits_unmanaged(soft);
        return;
    }
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)soft);
    setenv("RUDP_NOFILE", buf, 1);
}

bool rudp_limits_exceeded(int fd) {
    rlim_t soft = atomic_load_explicit(&prog_soft, memory_order_relaxed);

    return soft != 0 && fd >= 0 && (rlim_t)fd >= soft;
}

bool rudp_limits_full(int fd) {
    int probe;

    if (atomic_load_explicit(&prog_soft, memory_order_relaxed) == 0)
        return false;
    probe = RUDP_REAL(fcntl)(fd, F_DUPFD_CLOEXEC, 0);
    if (probe < 0)
        return false;
    RUDP_REAL(close)(probe);
    return rudp_limits_exceeded(probe);
}

/* --- the program's view --- */

/* Shows the program its own soft limit in |rl| when limits are managed. */
static void limits_show(struct rlimit *rl) {
    rlim_t soft = atomic_load(&prog_soft);

    if (soft != 0 && rl != NULL)
        rl->rlim_cur = soft;
}

/* The program sets RLIMIT_NOFILE to |rl|: its own limit becomes rl's soft
 * one, and the real one makes room for the engine above it.  Returns 0 or
 * -1 with errno, as setrlimit. */
static int limits_set(const struct rlimit *rl) {
    if (rl == NULL || rl->rlim_cur > rl->rlim_max) {
        errno = rl == NULL ? EFAULT : EINVAL;
        return -1;
    }
    if (limits_manage(rl->rlim_cur, rl->rlim_max) == 0)
        return 0;
    limits_unmanaged(rl->rlim_cur);
    return RUDP_REAL(setrlimit)(RLIMIT_NOFILE, rl);
}

RUDP_EXPORT int getrlimit(__rlimit_resource_t res, struct rlimit *rl) {
    int r = RUDP_REAL(getrlimit)(res, rl);

    if (r == 0 && res == RLIMIT_NOFILE && rudp_active())
        limits_show(rl);
    return r;
}

RUDP_EXPORT int getrlimit64(__rlimit_resource_t res, struct rlimit64 *rl) {
    int r = RUDP_REAL(getrlimit64)(res, rl);

    if (r == 0 && res == RLIMIT_NOFILE && rudp_active())
        limits_show((struct rlimit *)rl);
    return r;
}

RUDP_EXPORT int setrlimit(__rlimit_resource_t res, const struct rlimit *rl) {
    if (res != RLIMIT_NOFILE || !rudp_active())
        return RUDP_REAL(setrlimit)(res, rl);
    return limits_set(rl);
}

RUDP_EXPORT int setrlimit64(__rlimit_resource_t res, const struct rlimit64 *rl) {
    if (res != RLIMIT_NOFILE || !rudp_active())
        return RUDP_REAL(setrlimit64)(res, rl);
    return limits_set((const struct rlimit *)rl);
}

/* Returns true when prlimit's |pid| is this process. */
static bool limits_self(pid_t pid) {
    return pid == 0 || pid == getpid();
}

RUDP_EXPORT int prlimit(pid_t pid, __rlimit_resource_t res, const struct rlimit *nl,
                        struct rlimit *ol) {
    struct rlimit old;

    if (res != RLIMIT_NOFILE || !limits_self(pid) || !rudp_active())
        return RUDP_REAL(prlimit)(pid, res, nl, ol);
    if (RUDP_REAL(getrlimit)(RLIMIT_NOFILE, &old) < 0)
        return -1;
    limits_show(&old);
    if (nl != NULL && limits_set(nl) < 0)
        return -1;
    if (ol != NULL)
        *ol = old;
    return 0;
}

RUDP_EXPORT int prlimit64(pid_t pid, __rlimit_resource_t res, const struct rlimit64 *nl,
                          struct rlimit64 *ol) {
    return prlimit(pid, res, (const struct rlimit *)nl, (struct rlimit *)ol);
}
