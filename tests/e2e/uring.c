/*
 * uring.c — rudp-e2e-uring: what a program gets when it asks for an
 * io_uring ring, through liburing and through syscall(), for the
 * end-to-end suite.  Prints "liburing RESULT syscall RESULT", each 0 (a
 * ring was made) or an errno name.
 */
#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Returns the name of |err| for the report. */
static const char *name(int err) {
    return err == 0 ? "0" : err == ENOSYS ? "ENOSYS" : strerror(err);
}

int main(void) {
    struct io_uring ring;
    struct io_uring_params p;
    int lib = io_uring_queue_init(8, &ring, 0);
    if (lib == 0)
        io_uring_queue_exit(&ring);
    memset(&p, 0, sizeof(p));
    long fd = syscall(SYS_io_uring_setup, 8, &p);
    int sys = fd >= 0 ? 0 : errno;
    if (fd >= 0)
        close((int)fd);
    printf("liburing %s syscall %s\n", name(lib < 0 ? -lib : 0), name(sys));
    return 0;
}
