/*
 * board.c — the shared status board (see board.h).
 *
 * A board is one shared mapping of a memory file (memfd), so it survives
 * fork() in every child with the same physical pages, and a process sent
 * the file maps the same pages: the engine in the process that made it
 * writes, any process holding a connection's fd reads.  The registry of
 * boards known to this process is a small array in ordinary memory, copied
 * by fork like the fd table that refers to it.
 *
 * Slots are claimed lowest first from a bitmap in the board's header, so
 * the pages a process touches are those of its busiest moment, not of every
 * connection it ever made.  Each claim gives the slot a new generation
 * from a board-wide counter, and a reference carries the generation it was
 * made with: rudp_slot_of() tells a live slot from one recycled for another
 * connection.  The engine does not free a slot when its connection ends but
 * retires it behind the last RUDP_BOARD_KEEP ends (RUDP_BOARD_KEEP_FAILED
 * for failures, whose error a late read still reports), a queue in the
 * header that only the engine touches.  rudp_board_shrink() gives the pages
 * of long runs of free slots back to the system (MADV_REMOVE punches them
 * out of the memory file in every process); while it works on a run it
 * holds the run's bitmap words, all but the first, so no claim lands in a
 * page being removed and a claim still finds the run's first slots.
 */
#include "board.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define BOARD_MAGIC 0x72756470u /* "rudp" */
#define BOARD_WORDS (RUDP_BOARD_SLOTS / 64)
/* The shortest run of free bitmap words whose pages a shrink removes. */
#define BOARD_SHRINK_RUN 4u

/* 64-bit words that hold a rudp_slot_detail. */
#define DETAIL_WORDS ((sizeof(rudp_slot_detail) + 7) / 8)

struct rudp_slot {
    _Atomic uint32_t gen;     /* the generation of the connection in the slot (never 0) */
    _Atomic uint32_t state;   /* enum rudp_slot_state (kept after release) */
    _Atomic int32_t error;    /* rudp_error for reads past EOF and writes */
    _Atomic int32_t so_error; /* pending SO_ERROR (rudp_error), cleared when read */
    _Atomic uint32_t flags;   /* RUDP_SLOT_F_* */
    /* TCP_INFO figures, refreshed by the engine as the connection runs. */
    _Atomic uint32_t rtt_us, rttvar_us, min_rtt_us;
    _Atomic uint32_t snd_cwnd, snd_ssthresh, snd_mss, pmtu;
    _Atomic uint32_t retransmits, lost, total_retrans;
    _Atomic uint64_t bytes_sent, bytes_retrans, bytes_acked, bytes_received;
    _Atomic uint64_t delivery_rate, pacing_rate;
    _Atomic uint64_t updated_ns;
    /* The program's liveness options (rudp_slot_opts), and their
     * generation: odd while the shim is writing them. */
    _Atomic uint32_t opt_gen;
    _Atomic uint32_t user_timeout_ms, ka_idle_s, ka_intvl_s, ka_cnt;
    /* What rudp-stat shows beyond TCP_INFO (rudp_slot_detail), copied word
     * by word under a generation that is odd while the engine writes. */
    _Atomic uint32_t detail_gen;
    _Atomic uint64_t detail[DETAIL_WORDS];
};

/* Retired slots waiting to be freed, oldest first (engine only). */
typedef struct board_queue {
    uint32_t head, n;
} board_queue;

struct rudp_board {
    uint32_t magic;
    uint32_t eid;
    uint32_t nslots;
    uint32_t owner;             /* the process whose engine made it */
    _Atomic uint32_t low;       /* no free slot below bitmap word |low| (a hint) */
    _Atomic uint32_t next_gen;  /* the generation the next claim takes */
    _Atomic uint32_t freed;     /* slots freed so far (wraps) */
    _Atomic uint32_t shrinking; /* a shrink holds words: a full scan may retry */
    uint32_t shrunk_at;         /* engine: |freed| at the last shrink */
    board_queue kept, kept_failed;
    uint32_t kept_idx[RUDP_BOARD_KEEP];
    uint32_t kept_failed_idx[RUDP_BOARD_KEEP_FAILED];
    _Atomic uint64_t used[BOARD_WORDS]; /* bit set: claimed, retired, or held by a shrink */
    rudp_slot slots[];
};
#define BOARD_MAX_KNOWN 64

static rudp_board *known[BOARD_MAX_KNOWN];
static int known_fd[BOARD_MAX_KNOWN]; /* its memory file, or -1 */
static _Atomic unsigned nknown;
static pthread_mutex_t known_lock = PTHREAD_MUTEX_INITIALIZER;

/* Returns a random, non-zero engine id. */
static uint32_t board_new_eid(void) {
    uint32_t eid = 0;
    if (getrandom(&eid, sizeof(eid), GRND_NONBLOCK) != sizeof(eid))
        eid = (uint32_t)getpid() * 2654435761u ^ (uint32_t)time(NULL);
    return eid ? eid : 1;
}

/* Adds |b|, in the memory file |fd| (kept; -1: none), to the boards this
 * process knows.  Returns false when it knew it already (|fd| not kept). */
static bool board_register(rudp_board *b, int fd) {
    pthread_mutex_lock(&known_lock);
    unsigned n = atomic_load(&nknown);
    for (unsigned i = 0; i < n; i++)
        if (known[i] == b || known[i]->eid == b->eid) {
            pthread_mutex_unlock(&known_lock);
            return false;
        }
    if (n == BOARD_MAX_KNOWN) { /* forget the oldest: only its stale fds lose translation */
        memmove(known, known + 1, (BOARD_MAX_KNOWN - 1) * sizeof(known[0]));
        memmove(known_fd, known_fd + 1, (BOARD_MAX_KNOWN - 1) * sizeof(known_fd[0]));
        n--;
    }
    known[n] = b;
    known_fd[n] = fd;
    atomic_store(&nknown, n + 1);
    pthread_mutex_unlock(&known_lock);
    return true;
}

int rudp_board_fd(uint32_t eid) {
    int fd = -1;
    pthread_mutex_lock(&known_lock);
    unsigned n = atomic_load(&nknown);
    for (unsigned i = 0; i < n && fd < 0; i++)
        if (known[i]->eid == eid)
            fd = known_fd[i];
    pthread_mutex_unlock(&known_lock);
    return fd;
}

/* The size of a board's mapping. */
static size_t board_size(void) {
    return sizeof(rudp_board) + RUDP_BOARD_SLOTS * sizeof(rudp_slot);
}

rudp_board *rudp_board_create(int (*place)(int fd), int *err_fd) {
    int fd = memfd_create("rudp-board", MFD_CLOEXEC);
    rudp_board *b = MAP_FAILED;
    *err_fd = -1;
    if (fd >= 0 && ftruncate(fd, (off_t)board_size()) == 0)
        b = mmap(NULL, board_size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (b == MAP_FAILED) {
        *err_fd = fd; /* the caller closes it */
        return NULL;
    }
    b->magic = BOARD_MAGIC;
    b->eid = board_new_eid();
    b->owner = (uint32_t)getpid();
    b->nslots = RUDP_BOARD_SLOTS;
    board_register(b, place(fd));
    return b;
}

rudp_board *rudp_board_map(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size != board_size())
        return NULL;
    rudp_board *b = mmap(NULL, board_size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (b == MAP_FAILED)
        return NULL;
    if (b->magic != BOARD_MAGIC || b->nslots != RUDP_BOARD_SLOTS) {
        munmap(b, board_size());
        return NULL;
    }
    if (!board_register(b, fd)) {
        munmap(b, board_size()); /* known already: |fd| is the caller's to close */
        return NULL;
    }
    return b;
}

rudp_board *rudp_board_find(uint32_t eid) {
    unsigned n = atomic_load(&nknown);
    for (unsigned i = 0; i < n; i++)
        if (known[i] && known[i]->eid == eid)
            return known[i];
    return NULL;
}

uint32_t rudp_board_eid(const rudp_board *b) {
    return b->eid;
}

/* Resets every field of a freshly claimed slot; the state goes last. */
static void board_slot_reset(rudp_slot *s, uint32_t state) {
    static const rudp_slot_stats zero;
    atomic_store(&s->error, 0);
    atomic_store(&s->so_error, 0);
    atomic_store(&s->flags, 0);
    atomic_store(&s->opt_gen, 0);
    atomic_store(&s->detail_gen, 0);
    rudp_slot_publish(s, &zero);
    atomic_store_explicit(&s->state, state, memory_order_release);
}

/* Lowers the hint to bitmap word |w| (a slot there became free). */
static void board_lower_hint(rudp_board *b, uint32_t w) {
    uint32_t cur = atomic_load(&b->low);
    while (w < cur && !atomic_compare_exchange_weak(&b->low, &cur, w)) {
    }
}

/* Claims the lowest free slot from bitmap word |from| on.  Returns its
 * index, or -1 when every word from there is full. */
static int64_t board_claim_from(rudp_board *b, uint32_t from) {
    for (uint32_t w = from; w < BOARD_WORDS; w++) {
        uint64_t v = atomic_load(&b->used[w]);
        while (v != UINT64_MAX) {
            uint64_t bit = ~v & (v + 1); /* the lowest clear bit */
            if (atomic_compare_exchange_weak(&b->used[w], &v, v | bit))
                return (int64_t)w * 64 + __builtin_ctzll(bit);
        }
        uint32_t expect = w; /* full: later claims start above it */
        atomic_compare_exchange_strong(&b->low, &expect, w + 1);
    }
    return -1;
}

int rudp_board_alloc(rudp_board *b, uint32_t state, rudp_slot_ref *ref) {
    int64_t i = board_claim_from(b, atomic_load(&b->low));
    /* The hint may have passed a slot freed meanwhile, and a shrink holds
     * words for a moment: look from the start, a few times. */
    for (int tries = 0; i < 0 && tries < 100; tries++) {
        i = board_claim_from(b, 0);
        if (i < 0 && !atomic_load(&b->shrinking))
            break;
        if (i < 0)
            sched_yield();
    }
    if (i < 0 || (uint64_t)i >= b->nslots)
        return -ENOSPC;
    rudp_slot *s = &b->slots[i];
    uint32_t gen = atomic_fetch_add(&b->next_gen, 1) + 1;
    if (gen == 0) /* 0 never names a connection: a removed page reads 0 */
        gen = atomic_fetch_add(&b->next_gen, 1) + 1;
    atomic_store(&s->gen, gen);
    board_slot_reset(s, state);
    ref->eid = b->eid;
    ref->index = (uint32_t)i;
    ref->gen = gen;
    ref->slot = s;
    return 0;
}

void rudp_board_release(rudp_board *b, uint32_t index) {
    if (index >= b->nslots)
        return;
    atomic_fetch_and(&b->used[index / 64], ~(1ull << (index % 64)));
    atomic_fetch_add(&b->freed, 1);
    board_lower_hint(b, index / 64);
}

/* Appends |index| to the queue |q| of |cap| entries |idx|.  Returns true,
 * with the oldest entry in *out, when one had to leave to make room. */
static bool board_queue_push(board_queue *q, uint32_t *idx, uint32_t cap, uint32_t index,
                             uint32_t *out) {
    if (q->n < cap) {
        idx[(q->head + q->n++) % cap] = index;
        return false;
    }
    *out = idx[q->head];
    idx[q->head] = index;
    q->head = (q->head + 1) % cap;
    return true;
}

void rudp_board_retire(rudp_board *b, uint32_t index) {
    uint32_t out;
    bool left;
    if (index >= b->nslots)
        return;
    if (rudp_slot_state(&b->slots[index]) == RUDP_SLOT_FAILED)
        left = board_queue_push(&b->kept_failed, b->kept_failed_idx, RUDP_BOARD_KEEP_FAILED,
                                index, &out);
    else
        left = board_queue_push(&b->kept, b->kept_idx, RUDP_BOARD_KEEP, index, &out);
    if (left)
        rudp_board_release(b, out);
}

/* Holds the free bitmap words [from, to) for a shrink, in order, until one
 * is not free any more.  Returns the end of the words held. */
static uint32_t board_hold(rudp_board *b, uint32_t from, uint32_t to) {
    for (uint32_t w = from; w < to; w++) {
        uint64_t zero = 0;
        if (!atomic_compare_exchange_strong(&b->used[w], &zero, UINT64_MAX))
            return w;
    }
    return to;
}

/* Removes the pages that lie wholly within the slots of bitmap words
 * [from, to) from the memory file.  Returns the bytes removed. */
static size_t board_remove(rudp_board *b, uint32_t from, uint32_t to) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)&b->slots[(size_t)from * 64];
    uintptr_t hi = (uintptr_t)&b->slots[(size_t)to * 64];
    lo = (lo + page - 1) / page * page;
    hi = hi / page * page;
    if (hi <= lo || madvise((void *)lo, hi - lo, MADV_REMOVE) != 0)
        return 0;
    return hi - lo;
}

size_t rudp_board_shrink(rudp_board *b) {
    uint32_t freed = atomic_load(&b->freed);
    size_t removed = 0;
    if (freed == b->shrunk_at)
        return 0;
    b->shrunk_at = freed;
    atomic_store(&b->shrinking, 1);
    for (uint32_t w = 0; w < BOARD_WORDS; w++) {
        uint32_t end = w;
        while (end < BOARD_WORDS && atomic_load(&b->used[end]) == 0)
            end++;
        if (end - w > BOARD_SHRINK_RUN) { /* the run's first word stays free */
            uint32_t held = board_hold(b, w + 1, end);
            removed += board_remove(b, w + 1, held);
            for (uint32_t k = w + 1; k < held; k++)
                atomic_store(&b->used[k], 0);
            board_lower_hint(b, w + 1); /* a claim may have passed them */
        }
        w = end;
    }
    atomic_store(&b->shrinking, 0);
    return removed;
}

bool rudp_board_resolve(rudp_slot_ref *ref) {
    rudp_board *b = rudp_board_find(ref->eid);
    ref->slot = b && ref->index < b->nslots ? &b->slots[ref->index] : NULL;
    return ref->slot != NULL;
}

/* What a reference reads once its slot holds another connection: the
 * connection ended (cleanly, as far as anyone can still tell). */
static rudp_slot board_gone = {.state = RUDP_SLOT_DONE, .flags = RUDP_SLOT_F_WAS_CONNECTED};

rudp_slot *rudp_slot_of(const rudp_slot_ref *ref) {
    if (ref->slot == NULL)
        return NULL;
    if (atomic_load_explicit(&ref->slot->gen, memory_order_acquire) != ref->gen)
        return &board_gone;
    return ref->slot;
}

/* --- one slot --- */

uint32_t rudp_slot_state(const rudp_slot *s) {
    return atomic_load_explicit(&s->state, memory_order_acquire);
}

void rudp_slot_set_state(rudp_slot *s, uint32_t state) {
    if (rudp_slot_state(s) == RUDP_SLOT_FAILED)
        return;
    if (state == RUDP_SLOT_CONNECTED)
        rudp_slot_set_flags(s, RUDP_SLOT_F_WAS_CONNECTED);
    atomic_store_explicit(&s->state, state, memory_order_release);
}

void rudp_slot_fail(rudp_slot *s, int err) {
    atomic_store(&s->error, err);
    atomic_store(&s->so_error, err);
    atomic_store_explicit(&s->state, RUDP_SLOT_FAILED, memory_order_release);
}

int rudp_slot_error(const rudp_slot *s) {
    return atomic_load_explicit(&s->error, memory_order_acquire);
}

int rudp_slot_take_so_error(rudp_slot *s) {
    return s != &board_gone ? atomic_exchange(&s->so_error, 0) : 0;
}

void rudp_slot_set_flags(rudp_slot *s, uint32_t flags) {
    if (s != &board_gone)
        atomic_fetch_or_explicit(&s->flags, flags, memory_order_release);
}

uint32_t rudp_slot_flags(const rudp_slot *s) {
    return atomic_load_explicit(&s->flags, memory_order_acquire);
}

void rudp_slot_set_opts(rudp_slot *s, const rudp_slot_opts *o) {
    /* A seqlock: the generation is odd while the fields change. */
    uint32_t gen = atomic_load(&s->opt_gen);
    atomic_store(&s->opt_gen, gen | 1u);
    atomic_store(&s->user_timeout_ms, o->user_timeout_ms);
    atomic_store(&s->ka_idle_s, o->ka_idle_s);
    atomic_store(&s->ka_intvl_s, o->ka_intvl_s);
    atomic_store(&s->ka_cnt, o->ka_cnt);
    atomic_store(&s->opt_gen, (gen | 1u) + 1u);
}

bool rudp_slot_take_opts(const rudp_slot *s, uint32_t *gen, rudp_slot_opts *out) {
    uint32_t g = atomic_load(&s->opt_gen);
    if (g == *gen || (g & 1u))
        return false; /* unchanged, or being written: the next look sees it */
    out->user_timeout_ms = atomic_load(&s->user_timeout_ms);
    out->ka_idle_s = atomic_load(&s->ka_idle_s);
    out->ka_intvl_s = atomic_load(&s->ka_intvl_s);
    out->ka_cnt = atomic_load(&s->ka_cnt);
    if (atomic_load(&s->opt_gen) != g)
        return false;
    *gen = g;
    return true;
}

/* Stores one figure with relaxed ordering: figures need no order among
 * themselves, and the state carries the order that matters. */
#define SLOT_PUT(s, st, f) atomic_store_explicit(&(s)->f, (st)->f, memory_order_relaxed)
#define SLOT_GET(s, out, f) ((out)->f = atomic_load_explicit(&(s)->f, memory_order_relaxed))
/* clang-format off */
#define SLOT_FIGURES(X, s, st)                                                             \
    X(s, st, rtt_us); X(s, st, rttvar_us); X(s, st, min_rtt_us); X(s, st, snd_cwnd);       \
    X(s, st, snd_ssthresh); X(s, st, snd_mss); X(s, st, pmtu); X(s, st, retransmits);      \
    X(s, st, lost); X(s, st, total_retrans); X(s, st, bytes_sent);                          \
    X(s, st, bytes_retrans); X(s, st, bytes_acked); X(s, st, bytes_received);              \
    X(s, st, delivery_rate); X(s, st, pacing_rate); X(s, st, updated_ns)
/* clang-format on */

void rudp_slot_publish(rudp_slot *s, const rudp_slot_stats *st) {
    SLOT_FIGURES(SLOT_PUT, s, st);
}

void rudp_slot_read(const rudp_slot *s, rudp_slot_stats *out) {
    SLOT_FIGURES(SLOT_GET, s, out);
}

void rudp_slot_publish_detail(rudp_slot *s, const rudp_slot_detail *d) {
    uint64_t w[DETAIL_WORDS] = {0};
    memcpy(w, d, sizeof(*d));
    uint32_t gen = atomic_load_explicit(&s->detail_gen, memory_order_relaxed);
    atomic_store_explicit(&s->detail_gen, gen | 1u, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    for (size_t i = 0; i < DETAIL_WORDS; i++)
        atomic_store_explicit(&s->detail[i], w[i], memory_order_relaxed);
    atomic_store_explicit(&s->detail_gen, (gen | 1u) + 1u, memory_order_release);
}

bool rudp_slot_read_detail(const rudp_slot *s, rudp_slot_detail *out) {
    uint64_t w[DETAIL_WORDS];
    for (int tries = 0; tries < 64; tries++) {
        uint32_t gen = atomic_load_explicit(&s->detail_gen, memory_order_acquire);
        if (gen == 0)
            return false; /* never published */
        if (gen & 1u)
            continue;
        for (size_t i = 0; i < DETAIL_WORDS; i++)
            w[i] = atomic_load_explicit(&s->detail[i], memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&s->detail_gen, memory_order_relaxed) == gen) {
            memcpy(out, w, sizeof(*out));
            return true;
        }
    }
    return false;
}

const rudp_board *rudp_board_view(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size != board_size())
        return NULL;
    const rudp_board *b = mmap(NULL, board_size(), PROT_READ, MAP_SHARED, fd, 0);
    if (b == MAP_FAILED)
        return NULL;
    if (b->magic != BOARD_MAGIC || b->nslots != RUDP_BOARD_SLOTS) {
        munmap((void *)b, board_size());
        return NULL;
    }
    return b;
}

void rudp_board_unview(const rudp_board *b) {
    munmap((void *)b, board_size());
}

bool rudp_slot_in_use(const rudp_slot *s) {
    /* A retired slot keeps its last state (DONE, FAILED) for the fds that
     * outlive the connection: that connection is over. */
    uint32_t st = rudp_slot_state(s);
    return st == RUDP_SLOT_CONNECTING || st == RUDP_SLOT_CONNECTED;
}

uint32_t rudp_board_owner(const rudp_board *b) {
    return b->owner;
}

uint32_t rudp_board_nslots(const rudp_board *b) {
    return b->nslots;
}

const rudp_slot *rudp_board_slot(const rudp_board *b, uint32_t index) {
    return index < b->nslots ? &b->slots[index] : NULL;
}

/* --- names of accepted connections --- */

#define NAME_PREFIX "rudp-a/"
#define ADDR_BYTES 19 /* family, 16 address bytes, port */

/* Packs a TCP address into 19 bytes: family (4 or 6), address, port. */
static void name_pack_addr(uint8_t *out, const struct sockaddr_storage *a) {
    memset(out, 0, ADDR_BYTES);
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)a;
        out[0] = 4;
        memcpy(out + 1, &in->sin_addr, 4);
        memcpy(out + 17, &in->sin_port, 2);
    } else if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a;
        out[0] = 6;
        memcpy(out + 1, &in6->sin6_addr, 16);
        memcpy(out + 17, &in6->sin6_port, 2);
    }
}

/* Unpacks 19 bytes made by name_pack_addr; returns false if malformed. */
static bool name_unpack_addr(const uint8_t *in, struct sockaddr_storage *a) {
    memset(a, 0, sizeof(*a));
    if (in[0] == 4) {
        struct sockaddr_in *v4 = (struct sockaddr_in *)a;
        v4->sin_family = AF_INET;
        memcpy(&v4->sin_addr, in + 1, 4);
        memcpy(&v4->sin_port, in + 17, 2);
        return true;
    }
    if (in[0] == 6) {
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)a;
        v6->sin6_family = AF_INET6;
        memcpy(&v6->sin6_addr, in + 1, 16);
        memcpy(&v6->sin6_port, in + 17, 2);
        return true;
    }
    return false;
}

/* Writes |n| bytes as lowercase hex at |out|. */
static void name_hex(char *out, const uint8_t *p, size_t n) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
}

/* Parses 2n hex digits into |p|; returns false on a non-hex digit. */
static bool name_unhex(const char *in, uint8_t *p, size_t n) {
    for (size_t i = 0; i < 2 * n; i++) {
        char c = in[i];
        int v = c >= '0' && c <= '9' ? c - '0' : (c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1);
        if (v < 0)
            return false;
        if (i % 2 == 0)
            p[i / 2] = (uint8_t)(v << 4);
        else
            p[i / 2] |= (uint8_t)v;
    }
    return true;
}

/* The binary body of a name: eid, index, generation, peer, local. */
#define NAME_BODY (4 + 4 + 4 + 2 * ADDR_BYTES)
_Static_assert(sizeof(NAME_PREFIX) + 2 * NAME_BODY <= RUDP_BOARD_NAME_MAX,
               "an accepted connection's name fits sun_path");

/* Writes |v| big-endian at |p|. */
static void name_put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

/* Reads a big-endian 32-bit value at |p|. */
static uint32_t name_get32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

size_t rudp_board_name_encode(char *out, const rudp_slot_ref *ref,
                              const struct sockaddr_storage *peer,
                              const struct sockaddr_storage *local) {
    uint8_t body[NAME_BODY];
    name_put32(body, ref->eid);
    name_put32(body + 4, ref->index);
    name_put32(body + 8, ref->gen);
    name_pack_addr(body + 12, peer);
    name_pack_addr(body + 12 + ADDR_BYTES, local);
    out[0] = '\0';
    memcpy(out + 1, NAME_PREFIX, sizeof(NAME_PREFIX) - 1);
    size_t pos = 1 + sizeof(NAME_PREFIX) - 1;
    name_hex(out + pos, body, NAME_BODY);
    return pos + 2 * NAME_BODY;
}

bool rudp_board_name_decode(const char *name, size_t len, rudp_slot_ref *ref,
                            struct sockaddr_storage *peer, struct sockaddr_storage *local) {
    size_t pos = 1 + sizeof(NAME_PREFIX) - 1;
    if (len != pos + 2 * NAME_BODY || name[0] != '\0' ||
        memcmp(name + 1, NAME_PREFIX, sizeof(NAME_PREFIX) - 1) != 0)
        return false;
    uint8_t body[NAME_BODY];
    if (!name_unhex(name + pos, body, NAME_BODY))
        return false;
    ref->eid = name_get32(body);
    ref->index = name_get32(body + 4);
    ref->gen = name_get32(body + 8);
    ref->slot = NULL;
    return name_unpack_addr(body + 12, peer) &&
           name_unpack_addr(body + 12 + ADDR_BYTES, local);
}
