/*
 * fdtable.h — what the shim knows about each of the program's file
 * descriptors (DESIGN.md §2 rule 2).
 *
 * The table is indexed by fd number.  Reads are lock-free: a hook loads an
 * entry's kind with acquire ordering and then reads its fields.  A writer
 * fills the fields while the kind is NONE and publishes the kind last.
 * Writers for different fds never touch the same entry; two threads
 * changing the same fd at once race exactly as they would on the kernel's
 * fd table.  The table is plain process memory: fork copies it, which is
 * what an inherited connection needs.
 */
#ifndef RUDP_SHIM_FDTABLE_H
#define RUDP_SHIM_FDTABLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>

#include "board.h"

enum rudp_fd_kind {
    RUDP_FD_NONE = 0, /* not a socket the shim cares about */
    RUDP_FD_TCP,      /* an AF_INET/AF_INET6 SOCK_STREAM socket, not rerouted (yet) */
    RUDP_FD_CONN,     /* a rerouted connection: one end of a socketpair */
    RUDP_FD_LISTENER, /* a rerouted listener: an AF_UNIX listening socket */
};

#define RUDP_FD_MAX_OPTS 16
#define RUDP_FD_CC_NAME_MAX 16
#define RUDP_FD_LNAME_MAX 48

/* One recorded integer socket option. */
typedef struct rudp_fd_opt {
    int32_t level;
    int32_t name;
    int32_t value;
} rudp_fd_opt;

/* Socket options the program set, kept so a rerouted socket reports them
 * back (and so they survive the switch from TCP to AF_UNIX). */
typedef struct rudp_fd_opts {
    uint32_t nopts;
    rudp_fd_opt opt[RUDP_FD_MAX_OPTS];    /* integer options, any level */
    struct linger linger;                 /* SO_LINGER */
    struct timeval sndtimeo, rcvtimeo;    /* SO_SNDTIMEO, SO_RCVTIMEO */
    char congestion[RUDP_FD_CC_NAME_MAX]; /* TCP_CONGESTION ("" if unset) */
} rudp_fd_opts;

typedef struct rudp_fd_entry {
    _Atomic uint32_t kind;         /* enum rudp_fd_kind; published last */
    int family;                    /* AF_INET or AF_INET6: the TCP socket's family */
    bool nonblock;                 /* CONN: O_NONBLOCK as last set through fcntl */
    bool connect_pending;          /* CONN: a non-blocking connect's success not yet
                                      reported by a second connect() */
    socklen_t local_len;           /* 0: none */
    socklen_t peer_len;            /* 0: none */
    struct sockaddr_storage local; /* TCP: bound; CONN: local; LISTENER: bound */
    struct sockaddr_storage peer;  /* CONN: the TCP peer */
    rudp_slot_ref ref;             /* CONN: the connection's board slot */
    int listener_id;               /* LISTENER: id from rudp_rt_listen() */
    pid_t owner;                   /* LISTENER: the process whose engine serves it */
    uint32_t lname_len;            /* LISTENER: length of lname */
    char lname[RUDP_FD_LNAME_MAX]; /* LISTENER: its abstract AF_UNIX name */
    uint64_t ino;                  /* CONN/LISTENER: inode of the AF_UNIX socket */
    int ph_fd;                     /* LISTENER: the TCP socket kept listening, or -1 */
    uint64_t ph_ino;               /* LISTENER: its inode */
    rudp_fd_opts opts;
} rudp_fd_entry;

/* Returns fd's entry if its page exists, else NULL.  Never allocates. */
rudp_fd_entry *rudp_fd_peek(int fd);

/* Returns fd's entry, mapping its page on first use; NULL when |fd| is
 * beyond the table or the mapping failed (the fd then stays untracked). */
rudp_fd_entry *rudp_fd_at(int fd);

/* Returns the kind of |e| (RUDP_FD_NONE for NULL), with acquire ordering
 * so the fields written before the kind was published are visible. */
static inline uint32_t rudp_fd_kind(const rudp_fd_entry *e) {
    return e ? atomic_load_explicit(&e->kind, memory_order_acquire) : RUDP_FD_NONE;
}

/* Returns the kind of |fd|'s entry (RUDP_FD_NONE when untracked). */
static inline uint32_t rudp_fd_kind_of(int fd) {
    return rudp_fd_kind(rudp_fd_peek(fd));
}

/* Stores a copy of |src| as fd's entry: the fields first, the kind last.
 * Returns 0, or -1 when fd cannot be tracked. */
int rudp_fd_publish(int fd, const rudp_fd_entry *src);

/* Copies fd's entry into |out| and returns its kind (NONE: |out| zeroed). */
uint32_t rudp_fd_snapshot(int fd, rudp_fd_entry *out);

/* Forgets fd's entry (kind NONE).  When it was the last entry of its page
 * (beyond the first page), the page's memory goes back to the system. */
void rudp_fd_clear(int fd);

/* Sets the table up (once, from the constructor): a fork child forgets
 * the writers of the threads it did not inherit (rudp_fd_after_fork). */
void rudp_fd_init(void);

/* In the child of a fork or a raw clone: no thread of the parent is
 * writing or releasing a page here. */
void rudp_fd_after_fork(void);

/* Makes |to|'s entry a copy of |from|'s (or clears it when |from| has none):
 * what dup2(from, to) does to the kernel's table. */
void rudp_fd_copy(int from, int to);

/* Calls |fn| for every fd in [lo, hi] whose entry is not NONE, skipping
 * pages that were never mapped. */
void rudp_fd_foreach(unsigned lo, unsigned hi,
                     void (*fn)(int fd, rudp_fd_entry *e, void *ctx), void *ctx);

/* Records integer option (level, name) = value in |o|; returns false when
 * the record is full (the option is then not remembered). */
bool rudp_fd_opt_set(rudp_fd_opts *o, int level, int name, int value);

/* Looks up a recorded option; returns false when it was never set. */
bool rudp_fd_opt_get(const rudp_fd_opts *o, int level, int name, int *value);

#endif /* RUDP_SHIM_FDTABLE_H */
