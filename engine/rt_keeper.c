/*
 * rt_keeper.c — connections outlive an exec of the process that carries
 * them (DESIGN.md §4 "exec").
 *
 * exec() replaces the process image: the engine thread and its
 * close-on-exec descriptors (UDP sockets, the engine's ends of the
 * socketpairs) are gone, while the program's ends, inherited by the new
 * image, stay open.  Without more, the new image writes into a socketpair
 * nobody reads and the peer hears nothing until its idle timeout.  So
 * before the exec the shim asks for a keeper: the engine thread is parked,
 * and a grandchild process (fork twice: it belongs to no one's process
 * group and its end is nobody's SIGCHLD) inherits the engine as it stands,
 * closes every descriptor that is not the engine's (the program's ends
 * among them, so that the new image's close is the only close), and waits
 * on a pipe whose write end the exec'ing process holds close-on-exec.  When
 * the exec succeeds the pipe ends and the keeper runs the engine's loop on
 * its own thread: every session, bridge and port goes on, for the new image
 * as it did for the old.  When the exec fails the process writes a byte,
 * the keeper leaves, and the engine thread goes on.  The keeper leaves once
 * it carries nothing: no bridge, no port with a listener, no joined port.
 */
#include "rt.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* The descriptors the keeper keeps. */
typedef struct keep_set {
    int *fd;
    size_t n, cap;
} keep_set;

int rudp_rt_exec_begin(void) {
    rt_engine *e = rt_loop_own_engine(); /* changes nothing in a clone child */
    if (!e)
        return 0;
    rt_loop_park(e);
    return e->sessions || e->listeners || e->remotes ? 1 : 0;
}

void rudp_rt_exec_failed(void) {
    rt_engine *e = rt_loop_own_engine();
    if (e)
        rt_loop_unpark(e);
}

/* rt_fd_fn: adds |fd| to the keep_set |ctx|. */
static void keep_add(int fd, void *ctx) {
    keep_set *k = ctx;
    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 64;
        int *v = realloc(k->fd, cap * sizeof(*v));
        if (!v)
            return;
        k->fd = v;
        k->cap = cap;
    }
    k->fd[k->n++] = fd;
}

/* Returns true when |fd| is in |k|. */
static bool keep_has(const keep_set *k, int fd) {
    for (size_t i = 0; i < k->n; i++)
        if (k->fd[i] == fd)
            return true;
    return false;
}

/* Closes every descriptor of the process but the engine's and |gate|. */
static void keeper_close_others(rt_engine *e, int gate) {
    keep_set k = {0};
    keep_add(gate, &k);
    rt_sess_each_fd(e, keep_add, &k);
    rt_listen_each_fd(e, keep_add, &k);
    rt_loop_each_fd(e, keep_add, &k);
    DIR *d = opendir("/proc/self/fd");
    int dfd = d ? dirfd(d) : -1;
    for (struct dirent *de; d && (de = readdir(d));) {
        int fd = atoi(de->d_name);
        if (de->d_name[0] >= '0' && de->d_name[0] <= '9' && fd != dfd && !keep_has(&k, fd))
            rt_sys.close(fd);
    }
    if (d)
        closedir(d);
    free(k.fd);
}

/* Makes the keeper's signals its own: none of the program's handlers (its
 * code is not the keeper's), none from the terminal (its own session). */
static void keeper_signals(void) {
    sigset_t none;
    sigemptyset(&none);
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, sig == SIGPIPE ? SIG_IGN : SIG_DFL);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
    setsid();
}

/* The keeper: waits for the exec's outcome on |gate|, then serves. */
static void keeper_main(rt_engine *e, int gate) {
    keeper_signals();
    keeper_close_others(e, gate);
    char c;
    struct iovec iov = {.iov_base = &c, .iov_len = 1};
    ssize_t n;
    do
        n = rt_sys.readv(gate, &iov, 1);
    while (n < 0 && errno == EINTR);
    if (n != 0)
        rt_sys._exit(0); /* the exec failed: the process's own engine goes on */
    rt_sys.close(gate);
    rt_log(2, "keeper: carrying the connections of an exec'd image");
    rt_loop_run_here(e);
    rt_sys._exit(0);
}

int rudp_rt_keeper_fork(int gate) {
    rt_engine *e = rt_loop_own_engine();
    if (!e)
        return -1;
    rt_loop_keeping(true);
    pid_t a = fork();
    if (a == 0) {
        pid_t k = fork();
        if (k == 0)
            keeper_main(e, gate);
        rt_sys._exit(k < 0 ? 1 : 0);
    }
    rt_loop_keeping(false);
    int status = 1;
    while (a > 0 && waitpid(a, &status, 0) < 0 && errno == EINTR)
        ;
    return a > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

void rt_keeper_check(rt_engine *e) {
    if (!e->keeper || rt_sess_any_bridge(e) || rt_listen_any_target(e) || e->remotes)
        return;
    if (!rt_sess_all_settled(e))
        return; /* bytes of a closed connection still unacknowledged */
    rt_log(2, "keeper: nothing left to carry");
    rt_sess_leave_all(e);
    ev_break(e->loop, EVBREAK_ALL);
}
