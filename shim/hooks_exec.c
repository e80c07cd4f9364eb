/*
 * hooks_exec.c — rerouted connections across exec (DESIGN.md §4 "exec").
 *
 * A program that execs keeps its descriptors that are not close-on-exec,
 * rerouted connections and listeners among them, but the new image starts
 * with an empty fd table and, when the process itself carried them, with
 * no engine.  So every exec function is hooked:
 *
 *  - the engine survives: when this process's engine carries sessions or
 *    ports, a keeper process takes them over at the moment the exec
 *    succeeds (engine/rt_keeper.c), so every byte written before and after
 *    the exec arrives and the peer sees the end only when the new image
 *    closes;
 *  - the TCP identity survives: the entries of the descriptors the new
 *    image inherits (peer and local addresses, board slot, options,
 *    listener names) are written to a memory file whose descriptor the new
 *    image finds in RUDP_INHERIT; so are the memory files of their boards
 *    and the listeners' placeholder TCP sockets.  The new image's shim reads
 *    it at start-up (rudp_exec_import), and getpeername, getsockname,
 *    SO_PROTOCOL, TCP_INFO and the error rules work there as before.
 *
 * When the exec fails, everything made for it is undone and the engine
 * goes on.
 */
#include "shim.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define EXEC_MAGIC "RUDPEXE1"
#define EXEC_ENV "RUDP_INHERIT"
#define EXEC_MAX_BOARDS 16

/* The memory file: a header, the entries, the boards. */
typedef struct exec_hdr {
    char magic[8];
    uint32_t entry_size; /* sizeof(rudp_fd_entry): the same shim on both sides */
    uint32_t nent, nboard;
} exec_hdr;

typedef struct exec_ent {
    int32_t fd;
    rudp_fd_entry e;
} exec_ent;

typedef struct exec_board {
    uint32_t eid;
    int32_t fd;
} exec_board;

/* What an exec made and undoes when it fails. */
typedef struct exec_state {
    int file;                       /* the memory file, or -1 */
    int gate;                       /* the keeper's pipe (write end), or -1 */
    int dups[RUDP_FD_MAX_OPTS * 4]; /* descriptors made for the new image */
    size_t ndups;
    exec_board boards[EXEC_MAX_BOARDS];
    size_t nboards;
    char env[32]; /* RUDP_INHERIT=N */
} exec_state;

/* Returns a high duplicate of |fd| that survives exec (-1 on failure) and
 * notes it for the undo. */
static int exec_dup(exec_state *st, int fd) {
    int d = rudp_rt_fd_dup_high(fd);

    if (d < 0)
        return -1;
    RUDP_REAL(fcntl)(d, F_SETFD, 0);
    if (st->ndups < sizeof(st->dups) / sizeof(st->dups[0]))
        st->dups[st->ndups++] = d;
    return d;
}

/* Notes the board of slot |ref| for the new image (its memory file). */
static void exec_board_of(exec_state *st, const rudp_slot_ref *ref) {
    for (size_t i = 0; i < st->nboards; i++)
        if (st->boards[i].eid == ref->eid)
            return;
    int bfd = rudp_board_fd(ref->eid);
    if (bfd < 0 || st->nboards == EXEC_MAX_BOARDS)
        return;
    int d = exec_dup(st, bfd);
    if (d >= 0)
        st->boards[st->nboards++] = (exec_board){.eid = ref->eid, .fd = d};
}

/* Context of the walk over the fd table. */
typedef struct exec_walk {
    exec_state *st;
    uint32_t n;
} exec_walk;

/* rudp_fd_foreach callback: writes the entry of |fd| to the memory file
 * when the new image inherits it (a rerouted socket, not close-on-exec). */
static void exec_write_entry(int fd, rudp_fd_entry *e, void *ctx) {
    exec_walk *w = ctx;
    exec_ent ent = {.fd = fd};
    uint32_t kind = rudp_fd_snapshot(fd, &ent.e);
    int fdfl = RUDP_REAL(fcntl)(fd, F_GETFD);

    (void)e;
    if ((kind != RUDP_FD_CONN && kind != RUDP_FD_LISTENER) || fdfl < 0 ||
        (fdfl & FD_CLOEXEC) || !rudp_fd_still_ours(fd, &ent.e))
        return;
    if (kind == RUDP_FD_CONN && ent.e.ref.slot != NULL)
        exec_board_of(w->st, &ent.e.ref);
    if (kind == RUDP_FD_LISTENER && ent.e.ph_ino != 0)
        ent.e.ph_fd = exec_dup(w->st, ent.e.ph_fd);
    ent.e.ref.slot = NULL; /* a pointer of this image */
    if (RUDP_REAL(write)(w->st->file, &ent, sizeof(ent)) == (ssize_t)sizeof(ent))
        w->n++;
}

/* Writes the memory file for the new image.  Returns 0 or -1. */
static int exec_write_file(exec_state *st) {
    exec_hdr h = {.entry_size = sizeof(rudp_fd_entry)};
    exec_walk w = {.st = st};

    st->file = memfd_create("rudp-inherit", 0);
    if (st->file < 0 || RUDP_REAL(write)(st->file, &h, sizeof(h)) != (ssize_t)sizeof(h))
        return -1;
    rudp_fd_foreach(0, ~0u, exec_write_entry, &w);
    memcpy(h.magic, EXEC_MAGIC, sizeof(h.magic));
    h.nent = w.n;
    h.nboard = (uint32_t)st->nboards;
    size_t blen = st->nboards * sizeof(exec_board);
    if (RUDP_REAL(write)(st->file, st->boards, blen) != (ssize_t)blen ||
        pwrite(st->file, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
        return -1;
    int high = rudp_rt_fd_dup_high(st->file);
    if (high >= 0) {
        RUDP_REAL(close)(st->file);
        st->file = high;
        RUDP_REAL(fcntl)(st->file, F_SETFD, 0);
    }
    return 0;
}

/* Returns |envp| with RUDP_INHERIT set to the memory file (a new array the
 * caller frees), or NULL when out of memory. */
static char **exec_env(exec_state *st, char *const envp[]) {
    size_t n = 0, k = 0;

    while (envp && envp[n])
        n++;
    char **env = malloc((n + 2) * sizeof(*env));
    if (!env)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strncmp(envp[i], EXEC_ENV "=", sizeof(EXEC_ENV)) != 0)
            env[k++] = envp[i];
    snprintf(st->env, sizeof(st->env), EXEC_ENV "=%d", st->file);
    env[k++] = st->env;
    env[k] = NULL;
    return env;
}

/* Starts a keeper when this process's engine carries anything: it takes
 * over when the exec succeeds.  Returns 0 or -1. */
static int exec_keeper(exec_state *st) {
    int pipefd[2];

    if (rudp_rt_exec_begin() == 0)
        return 0;
    if (RUDP_REAL(socketpair)(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pipefd) < 0)
        return -1;
    int r = rudp_rt_keeper_fork(pipefd[0]);
    RUDP_REAL(close)(pipefd[0]);
    st->gate = pipefd[1];
    return r;
}

/* Undoes what exec_prepare made; the exec failed (errno is kept). */
static void exec_undo(exec_state *st) {
    int saved = errno;

    if (st->gate >= 0) {
        RUDP_REAL(write)(st->gate, "x", 1); /* the keeper leaves */
        RUDP_REAL(close)(st->gate);
    }
    rudp_rt_exec_failed();
    for (size_t i = 0; i < st->ndups; i++)
        RUDP_REAL(close)(st->dups[i]);
    if (st->file >= 0)
        RUDP_REAL(close)(st->file);
    errno = saved;
}

/* Prepares an exec with environment |envp|: the keeper and the memory
 * file.  Returns the environment to exec with (to free), or NULL to exec
 * as asked (nothing to carry, or it could not be prepared). */
static char **exec_prepare(exec_state *st, char *const envp[]) {
    memset(st, 0, sizeof(*st));
    st->file = st->gate = -1;
    if (exec_keeper(st) < 0)
        rudp_log(RUDP_LOG_ERROR, "exec: no keeper: connections end with this image");
    if (exec_write_file(st) < 0)
        return NULL;
    return exec_env(st, envp);
}

/* Runs an exec: |doexec| with the prepared environment.  Returns what it
 * returned (it returns only on failure). */
static int exec_run(int (*doexec)(const void *ctx, char *const envp[]), const void *ctx,
                    char *const envp[]) {
    exec_state st;
    char **env;
    int r;

    if (!rudp_active())
        return doexec(ctx, envp);
    env = exec_prepare(&st, envp);
    r = doexec(ctx, env ? env : envp);
    exec_undo(&st);
    free(env);
    return r;
}

/* --- the hooks --- */

typedef struct exec_args {
    const char *path;
    char *const *argv;
    int fd;
    bool search; /* PATH search (execvp, execvpe, execlp) */
} exec_args;

/* Calls the real exec function |ctx| describes with |envp|. */
static int exec_call(const void *ctx, char *const envp[]) {
    const exec_args *a = ctx;

    if (a->fd >= 0)
        return RUDP_REAL(fexecve)(a->fd, a->argv, envp);
    if (a->search)
        return RUDP_REAL(execvpe)(a->path, a->argv, envp);
    return RUDP_REAL(execve)(a->path, a->argv, envp);
}

RUDP_EXPORT int execve(const char *path, char *const argv[], char *const envp[]) {
    exec_args a = {.path = path, .argv = argv, .fd = -1};
    return exec_run(exec_call, &a, envp);
}

RUDP_EXPORT int execv(const char *path, char *const argv[]) {
    exec_args a = {.path = path, .argv = argv, .fd = -1};
    return exec_run(exec_call, &a, environ);
}

RUDP_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[]) {
    exec_args a = {.path = file, .argv = argv, .fd = -1, .search = true};
    return exec_run(exec_call, &a, envp);
}

RUDP_EXPORT int execvp(const char *file, char *const argv[]) {
    exec_args a = {.path = file, .argv = argv, .fd = -1, .search = true};
    return exec_run(exec_call, &a, environ);
}

RUDP_EXPORT int fexecve(int fd, char *const argv[], char *const envp[]) {
    exec_args a = {.argv = argv, .fd = fd};
    return exec_run(exec_call, &a, envp);
}

/* Collects the arguments of an execl-style call, after |arg0|, into a
 * NULL-terminated array (malloc'd); with |envp|, the environment after
 * the NULL too. */
static char **exec_list(const char *arg0, va_list ap, char ***envp) {
    size_t n = 1, cap = 16;
    char **argv = malloc(cap * sizeof(*argv));
    char *arg;

    if (!argv)
        return NULL;
    argv[0] = (char *)arg0;
    do {
        arg = va_arg(ap, char *);
        if (n == cap) {
            char **v = realloc(argv, (cap *= 2) * sizeof(*v));
            if (!v) {
                free(argv);
                return NULL;
            }
            argv = v;
        }
        argv[n++] = arg;
    } while (arg != NULL);
    if (envp)
        *envp = va_arg(ap, char **);
    return argv;
}

/* execl, execlp and execle: collects the list after |arg| (and, with
 * |with_env|, the environment after it) and makes the array call. */
static int exec_list_run(const char *path, const char *arg, va_list ap, bool search,
                         bool with_env) {
    char **envp = environ;
    char **argv = exec_list(arg, ap, with_env ? &envp : NULL);
    exec_args a = {.path = path, .fd = -1, .search = search};
    int r;

    if (!argv) {
        errno = ENOMEM;
        return -1;
    }
    a.argv = argv;
    r = exec_run(exec_call, &a, envp);
    free(argv);
    return r;
}

RUDP_EXPORT int execl(const char *path, const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    int r = exec_list_run(path, arg, ap, false, false);
    va_end(ap);
    return r;
}

RUDP_EXPORT int execlp(const char *path, const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    int r = exec_list_run(path, arg, ap, true, false);
    va_end(ap);
    return r;
}

RUDP_EXPORT int execle(const char *path, const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    int r = exec_list_run(path, arg, ap, false, true);
    va_end(ap);
    return r;
}

/* --- the new image --- */

/* Publishes the entry |ent| read from the memory file when its descriptor
 * is still the socket it describes. */
static void exec_import_entry(exec_ent *ent) {
    if (rudp_fd_inode(ent->fd) != ent->e.ino)
        return;
    if (ent->e.ref.eid != 0 && !rudp_board_resolve(&ent->e.ref))
        ent->e.ref.slot = NULL;
    if (rudp_fd_kind(&ent->e) == RUDP_FD_LISTENER && ent->e.ph_fd >= 0)
        RUDP_REAL(fcntl)(ent->e.ph_fd, F_SETFD, FD_CLOEXEC);
    rudp_fd_publish(ent->fd, &ent->e);
}

void rudp_exec_import(void) {
    const char *v = getenv(EXEC_ENV);
    exec_hdr h;

    if (v == NULL)
        return;
    int file = atoi(v);
    unsetenv(EXEC_ENV);
    if (pread(file, &h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
        memcmp(h.magic, EXEC_MAGIC, sizeof(h.magic)) != 0 ||
        h.entry_size != sizeof(rudp_fd_entry) || h.nboard > EXEC_MAX_BOARDS) {
        rudp_log(RUDP_LOG_ERROR, "%s: not a rudp inheritance file", EXEC_ENV);
        return;
    }
    off_t off = sizeof(h) + (off_t)h.nent * (off_t)sizeof(exec_ent);
    for (uint32_t i = 0; i < h.nboard; i++) {
        exec_board b;
        if (pread(file, &b, sizeof(b), off + (off_t)(i * sizeof(b))) != (ssize_t)sizeof(b))
            break;
        RUDP_REAL(fcntl)(b.fd, F_SETFD, FD_CLOEXEC);
        if (!rudp_board_map(b.fd))
            RUDP_REAL(close)(b.fd);
    }
    for (uint32_t i = 0; i < h.nent; i++) {
        exec_ent ent;
        off_t at = sizeof(h) + (off_t)(i * sizeof(ent));
        if (pread(file, &ent, sizeof(ent), at) == (ssize_t)sizeof(ent))
            exec_import_entry(&ent);
    }
    RUDP_REAL(close)(file);
}
