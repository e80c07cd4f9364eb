/*
 * hooks_uring.c — io_uring is refused while the shim reroutes (DESIGN.md
 * §4: never silent kernel TCP).
 *
 * A ring's IORING_OP_CONNECT and IORING_OP_ACCEPT are made by the kernel
 * from the submission queue: no libc call the shim could reroute.  So a
 * program under the shim cannot make a ring: liburing's entry points
 * (io_uring_queue_init, io_uring_queue_init_params, io_uring_setup) and the
 * io_uring_setup system call made through syscall() fail with ENOSYS, as on
 * a kernel without io_uring, and liburing's users fall back to their
 * ordinary socket calls, which the shim carries.  A program that makes the
 * system call itself, without libc or liburing, is not stopped
 * (docs/COMPATIBILITY.md).
 */
#include "shim.h"

#include <errno.h>
#include <sys/syscall.h>

/* liburing's prototypes (its header is not a dependency of the shim). */
int io_uring_queue_init(unsigned entries, void *ring, unsigned flags);
int io_uring_queue_init_params(unsigned entries, void *ring, void *params);
int io_uring_setup(unsigned entries, void *params);

/* Notes a refused ring in the log, once. */
static void uring_refused(void) {
    static _Atomic bool said;

    if (!atomic_exchange(&said, true))
        rudp_log(RUDP_LOG_INFO, "io_uring refused (ENOSYS): its sockets could not be "
                                "rerouted; the program falls back to socket calls");
}

/* liburing returns -errno. */
RUDP_EXPORT int io_uring_queue_init(unsigned entries, void *ring, unsigned flags) {
    (void)entries;
    (void)ring;
    (void)flags;
    uring_refused();
    return -ENOSYS;
}

RUDP_EXPORT int io_uring_queue_init_params(unsigned entries, void *ring, void *params) {
    (void)entries;
    (void)ring;
    (void)params;
    uring_refused();
    return -ENOSYS;
}

RUDP_EXPORT int io_uring_setup(unsigned entries, void *params) {
    (void)entries;
    (void)params;
    uring_refused();
    return -ENOSYS;
}

bool rudp_uring_refuse(long nr) {
#ifdef SYS_io_uring_setup
    if (nr == SYS_io_uring_setup && rudp_active()) {
        uring_refused();
        errno = ENOSYS;
        return true;
    }
#endif
    return false;
}
