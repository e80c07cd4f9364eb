/*
 * hooks_proc.c — process creation that bypasses fork(): a raw clone system
 * call made through syscall(3).
 *
 * fork() runs the pthread_atfork handlers, and glibc's own, so a child never
 * inherits a lock some other thread was holding.  A program that makes its
 * children with syscall(SYS_clone, flags without CLONE_VM, ...) (vsftpd's
 * isolate=YES does, to put them in new namespaces) runs none: were the
 * engine thread inside malloc at that instant, the child would inherit
 * malloc's lock held by a thread it does not have, and deadlock on its
 * first allocation (for instance when it starts an engine of its own).
 * The hook parks the engine thread in a wait that holds nothing for the
 * duration of the system call.  The child recognises that the engine is not
 * its own by its pid (engine/rt_loop.c) and starts a fresh one.
 *
 * Every other syscall() goes straight through, at the cost of one compare.
 *
 * vfork() becomes fork(): a vfork child shares the parent's memory, so
 * every hook it runs (python's subprocess closes descriptors in its vfork
 * child) would change the parent's fd table and engine state: the parent's
 * rerouted connections lost their TCP identity after a subprocess.  A
 * fork child has its own copy; the program cannot tell, but for the time
 * the copy takes.
 */
#include "shim.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/syscall.h>

#ifndef CLONE_VM
#define CLONE_VM 0x00000100
#endif

/* The first field of struct clone_args (clone3), all we read of it. */
typedef struct proc_clone3_args {
    uint64_t flags;
} proc_clone3_args;

/* Returns true when system call |nr| with first argument |a0| creates a
 * process with a copy of our memory (clone or clone3 without CLONE_VM). */
static bool proc_is_fork_like(long nr, long a0) {
    if (nr == SYS_clone)
        return !((unsigned long)a0 & CLONE_VM);
#ifdef SYS_clone3
    if (nr == SYS_clone3 && a0 != 0)
        return !(((const proc_clone3_args *)a0)->flags & CLONE_VM);
#endif
    return false;
}

/* _exit(2) and _Exit(3): the engine delivers what the program wrote first,
 * as exit() does (a TCP socket's bytes and FIN go out after _exit too); a
 * flush that would have to wait for a lock is given up, since _exit may be
 * called from a signal handler.  Listeners are not handed over (that waits
 * for the engine thread): a process that leaves through _exit leaves its
 * ports to be bound again by the processes that share them. */
RUDP_EXPORT void _exit(int status) {
    if (rudp_active())
        rudp_rt_exit_flush_quick();
    RUDP_REAL(_exit)(status);
    __builtin_unreachable();
}

RUDP_EXPORT void _Exit(int status) {
    _exit(status);
}

/* vfork(2) as fork(2) (see above).  A wrapper may not call the real vfork:
 * its child would return from this frame into the parent's stack. */
RUDP_EXPORT pid_t vfork(void) {
    return fork();
}

/* syscall(3): six long arguments at most on Linux, as glibc's own wrapper
 * takes them. */
RUDP_EXPORT long syscall(long nr, ...) {
    long a[6];
    va_list ap;

    va_start(ap, nr);
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    if (rudp_uring_refuse(nr)) /* hooks_uring.c */
        return -1;
    if (!rudp_active() || !proc_is_fork_like(nr, a[0]))
        return RUDP_REAL(syscall)(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    rudp_rt_quiesce();
    long r = RUDP_REAL(syscall)(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    int err = errno;
    if (r != 0) /* the parent (or a failure): the engine goes on */
        rudp_rt_resume();
    else /* a raw clone's child runs no atfork handler */
        rudp_fd_after_fork();
    errno = err;
    return r;
}
