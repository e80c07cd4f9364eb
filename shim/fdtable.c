/*
 * fdtable.c — the per-fd table of the shim (DESIGN.md §2 rule 2).
 *
 * Two levels, like the kernel's own fd array grown in steps: a static
 * directory of page pointers, and pages of RUDP_FD_PAGE entries mapped with
 * mmap the first time an fd in their range gets an entry.  Pages are never
 * unmapped, so a pointer read from the directory stays valid forever and
 * lookups need no lock: two loads and an index.  A page is installed with a
 * compare-and-swap; a thread that loses the race unmaps its own copy.
 *
 * An entry is some 650 bytes, so a burst of 5,000 connections used to leave
 * 3 MiB of entries resident for good (issue 13).  Each page counts its
 * entries that are not NONE, and when the last one of a page beyond the
 * first is cleared, the page's memory is given back (MADV_DONTNEED): it
 * reads as zeros, every kind NONE, until an entry is published there
 * again.  The count is never below the truth (raised before a kind is
 * published, lowered after it is withdrawn), and publishing (the only
 * writer of an entry that is NONE) enters the page as a writer while the
 * release holds it exclusively, so no entry being written is wiped.
 * Readers take no part: in a page given back they read NONE, as they
 * would have.
 *
 * Fds at or beyond RUDP_FD_MAX (4 Mi) are not tracked: the hooks treat them
 * as plain fds, which is the safe failure (no rerouting, no translation).
 *
 * mmap rather than malloc keeps the program's allocator out of it: hooks
 * may run inside the allocator's own callers, in signal-handler-adjacent
 * code, or before the allocator is initialised.
 */
#include "fdtable.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>

#define RUDP_FD_PAGE 256u
#define RUDP_FD_DIR 16384u
#define RUDP_FD_MAX (RUDP_FD_PAGE * RUDP_FD_DIR)
/* Pages below this index are kept when they empty (the first holds the
 * few fds every program has open). */
#define RUDP_FD_KEEP_PAGES 1u

/* The first byte after the kind: publishing copies from here on. */
#define BODY_OFF offsetof(rudp_fd_entry, family)
#define BODY_LEN (sizeof(rudp_fd_entry) - BODY_OFF)

static _Atomic(rudp_fd_entry *) fd_dir[RUDP_FD_DIR];
static _Atomic uint32_t fd_live[RUDP_FD_DIR]; /* entries not NONE, never fewer */
static _Atomic int32_t fd_busy[RUDP_FD_DIR];  /* writers in the page; -1: being released */

rudp_fd_entry *rudp_fd_peek(int fd) {
    rudp_fd_entry *page;

    if (fd < 0 || (unsigned)fd >= RUDP_FD_MAX)
        return NULL;
    page = atomic_load_explicit(&fd_dir[(unsigned)fd / RUDP_FD_PAGE], memory_order_acquire);
    return page ? &page[(unsigned)fd % RUDP_FD_PAGE] : NULL;
}

/* Maps a zeroed page and installs it at directory index |d| unless another
 * thread was first.  Returns the installed page, or NULL when mmap fails. */
static rudp_fd_entry *fd_page_install(unsigned d) {
    rudp_fd_entry *expected = NULL;
    size_t len = RUDP_FD_PAGE * sizeof(rudp_fd_entry);
    rudp_fd_entry *page =
        mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (page == MAP_FAILED)
        return NULL;
    if (atomic_compare_exchange_strong_explicit(&fd_dir[d], &expected, page,
                                                memory_order_acq_rel, memory_order_acquire))
        return page;
    munmap(page, len);
    return expected;
}

rudp_fd_entry *rudp_fd_at(int fd) {
    rudp_fd_entry *e = rudp_fd_peek(fd);
    rudp_fd_entry *page;

    if (e != NULL || fd < 0 || (unsigned)fd >= RUDP_FD_MAX)
        return e;
    page = fd_page_install((unsigned)fd / RUDP_FD_PAGE);
    return page ? &page[(unsigned)fd % RUDP_FD_PAGE] : NULL;
}

/* Enters page |d| as a writer, waiting while it is being released. */
static void fd_enter(unsigned d) {
    int32_t v = atomic_load(&fd_busy[d]);

    for (;;) {
        if (v < 0) {
            sched_yield();
            v = atomic_load(&fd_busy[d]);
        } else if (atomic_compare_exchange_weak(&fd_busy[d], &v, v + 1)) {
            return;
        }
    }
}

/* Gives the memory of page |d| back when it holds no entry and no writer
 * is in it.  Signals are blocked meanwhile, so that a handler of this
 * thread publishing an fd of the page never waits for the release. */
static void fd_page_release(unsigned d) {
    rudp_fd_entry *page = atomic_load_explicit(&fd_dir[d], memory_order_acquire);
    sigset_t all, old;
    int32_t idle = 0;

    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    if (atomic_compare_exchange_strong(&fd_busy[d], &idle, -1)) {
        if (atomic_load(&fd_live[d]) == 0)
            madvise(page, RUDP_FD_PAGE * sizeof(rudp_fd_entry), MADV_DONTNEED);
        atomic_store(&fd_busy[d], 0);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int rudp_fd_publish(int fd, const rudp_fd_entry *src) {
    rudp_fd_entry *e = rudp_fd_at(fd);
    uint32_t kind = atomic_load_explicit(&src->kind, memory_order_relaxed);
    unsigned d = (unsigned)fd / RUDP_FD_PAGE;

    if (e == NULL)
        return -1;
    fd_enter(d);
    if (kind != RUDP_FD_NONE)
        atomic_fetch_add(&fd_live[d], 1);
    if (atomic_exchange(&e->kind, RUDP_FD_NONE) != RUDP_FD_NONE)
        atomic_fetch_sub(&fd_live[d], 1);
    memcpy((char *)e + BODY_OFF, (const char *)src + BODY_OFF, BODY_LEN);
    atomic_store_explicit(&e->kind, kind, memory_order_release);
    atomic_fetch_sub(&fd_busy[d], 1);
    return 0;
}

uint32_t rudp_fd_snapshot(int fd, rudp_fd_entry *out) {
    rudp_fd_entry *e = rudp_fd_peek(fd);
    uint32_t kind = rudp_fd_kind(e);

    memset(out, 0, sizeof(*out));
    if (kind == RUDP_FD_NONE)
        return kind;
    memcpy((char *)out + BODY_OFF, (const char *)e + BODY_OFF, BODY_LEN);
    atomic_store_explicit(&out->kind, kind, memory_order_relaxed);
    return kind;
}

void rudp_fd_clear(int fd) {
    rudp_fd_entry *e = rudp_fd_peek(fd);
    unsigned d = (unsigned)fd / RUDP_FD_PAGE;

    if (e == NULL || rudp_fd_kind(e) == RUDP_FD_NONE ||
        atomic_exchange(&e->kind, RUDP_FD_NONE) == RUDP_FD_NONE)
        return;
    if (atomic_fetch_sub(&fd_live[d], 1) == 1 && d >= RUDP_FD_KEEP_PAGES)
        fd_page_release(d);
}

void rudp_fd_after_fork(void) {
    for (unsigned d = 0; d < RUDP_FD_DIR; d++)
        if (atomic_load_explicit(&fd_busy[d], memory_order_relaxed) != 0)
            atomic_store(&fd_busy[d], 0);
}

void rudp_fd_init(void) {
    pthread_atfork(NULL, NULL, rudp_fd_after_fork);
}

void rudp_fd_copy(int from, int to) {
    rudp_fd_entry tmp;

    if (from == to)
        return;
    if (rudp_fd_snapshot(from, &tmp) == RUDP_FD_NONE)
        rudp_fd_clear(to);
    else if (rudp_fd_publish(to, &tmp) < 0)
        rudp_fd_clear(to);
}

void rudp_fd_foreach(unsigned lo, unsigned hi,
                     void (*fn)(int fd, rudp_fd_entry *e, void *ctx), void *ctx) {
    if (hi >= RUDP_FD_MAX)
        hi = RUDP_FD_MAX - 1;
    for (unsigned fd = lo; fd <= hi;) {
        rudp_fd_entry *page =
            atomic_load_explicit(&fd_dir[fd / RUDP_FD_PAGE], memory_order_acquire);
        unsigned end = (fd / RUDP_FD_PAGE + 1) * RUDP_FD_PAGE; /* first fd of next page */

        for (; page != NULL && fd < end && fd <= hi; fd++)
            if (rudp_fd_kind(&page[fd % RUDP_FD_PAGE]) != RUDP_FD_NONE)
                fn((int)fd, &page[fd % RUDP_FD_PAGE], ctx);
        fd = end;
    }
}

bool rudp_fd_opt_set(rudp_fd_opts *o, int level, int name, int value) {
    for (uint32_t i = 0; i < o->nopts; i++) {
        if (o->opt[i].level == level && o->opt[i].name == name) {
            o->opt[i].value = value;
            return true;
        }
    }
    if (o->nopts == RUDP_FD_MAX_OPTS)
        return false;
    o->opt[o->nopts] = (rudp_fd_opt){level, name, value};
    o->nopts++;
    return true;
}

bool rudp_fd_opt_get(const rudp_fd_opts *o, int level, int name, int *value) {
    for (uint32_t i = 0; i < o->nopts && i < RUDP_FD_MAX_OPTS; i++) {
        if (o->opt[i].level == level && o->opt[i].name == name) {
            *value = o->opt[i].value;
            return true;
        }
    }
    return false;
}
