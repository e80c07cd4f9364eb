/*
 * board.c — the shared status board (see board.h).
 *
 * A board is one shared mapping of a memory file (memfd), so it survives
 * fork() in every child with the same physical pages, and a process sent
 * the file maps the same pages: the engine in the process that made it
 * writes, any process holding a connection's fd reads.  Slots are claimed
 * round robin from a moving hint, so a released slot is reused only after
 * every other one was: an fd that outlived its connection by a little keeps
 * reading its own slot.  The registry of boards known to this process is a
 * small array in ordinary memory, copied by fork like the fd table that
 * refers to it.
 */
#include "board.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define BOARD_MAGIC 0x72756470u /* "rudp" */

/* 64-bit words that hold a rudp_slot_detail. */
#define DETAIL_WORDS ((sizeof(rudp_slot_detail) + 7) / 8)

struct rudp_slot {
    _Atomic uint32_t claimed; /* allocation: 1 while an engine owns the slot */
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

struct rudp_board {
    uint32_t magic;
    uint32_t eid;
    uint32_t nslots;
    uint32_t owner; /* the process whose engine made it */
    _Atomic uint32_t next_free_hint;
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
    rudp_slot_publish(s, &zero);
    atomic_store_explicit(&s->state, state, memory_order_release);
}

int rudp_board_alloc(rudp_board *b, uint32_t state, rudp_slot_ref *ref) {
    uint32_t start = atomic_fetch_add(&b->next_free_hint, 1);
    for (uint32_t k = 0; k < b->nslots; k++) {
        uint32_t i = (start + k) % b->nslots;
        uint32_t expect = 0;
        if (atomic_compare_exchange_strong(&b->slots[i].claimed, &expect, 1)) {
            board_slot_reset(&b->slots[i], state);
            atomic_store(&b->next_free_hint, i + 1);
            ref->eid = b->eid;
            ref->index = i;
            ref->slot = &b->slots[i];
            return 0;
        }
    }
    return -ENOSPC;
}

void rudp_board_release(rudp_board *b, uint32_t index) {
    if (index < b->nslots)
        atomic_store(&b->slots[index].claimed, 0);
}

bool rudp_board_resolve(rudp_slot_ref *ref) {
    rudp_board *b = rudp_board_find(ref->eid);
    ref->slot = b && ref->index < b->nslots ? &b->slots[ref->index] : NULL;
    return ref->slot != NULL;
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
    return atomic_exchange(&s->so_error, 0);
}

void rudp_slot_set_flags(rudp_slot *s, uint32_t flags) {
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
    return atomic_load_explicit(&s->claimed, memory_order_acquire) != 0 &&
           rudp_slot_state(s) != RUDP_SLOT_FREE;
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

/* The binary body of a name: eid, index, peer, local. */
#define NAME_BODY (4 + 4 + 2 * ADDR_BYTES)

size_t rudp_board_name_encode(char *out, uint32_t eid, uint32_t index,
                              const struct sockaddr_storage *peer,
                              const struct sockaddr_storage *local) {
    uint8_t body[NAME_BODY];
    for (int i = 0; i < 4; i++) {
        body[i] = (uint8_t)(eid >> (24 - 8 * i));
        body[4 + i] = (uint8_t)(index >> (24 - 8 * i));
    }
    name_pack_addr(body + 8, peer);
    name_pack_addr(body + 8 + ADDR_BYTES, local);
    out[0] = '\0';
    memcpy(out + 1, NAME_PREFIX, sizeof(NAME_PREFIX) - 1);
    size_t pos = 1 + sizeof(NAME_PREFIX) - 1;
    name_hex(out + pos, body, NAME_BODY);
    return pos + 2 * NAME_BODY;
}

bool rudp_board_name_decode(const char *name, size_t len, uint32_t *eid, uint32_t *index,
                            struct sockaddr_storage *peer, struct sockaddr_storage *local) {
    size_t pos = 1 + sizeof(NAME_PREFIX) - 1;
    if (len != pos + 2 * NAME_BODY || name[0] != '\0' ||
        memcmp(name + 1, NAME_PREFIX, sizeof(NAME_PREFIX) - 1) != 0)
        return false;
    uint8_t body[NAME_BODY];
    if (!name_unhex(name + pos, body, NAME_BODY))
        return false;
    *eid = *index = 0;
    for (int i = 0; i < 4; i++) {
        *eid = (*eid << 8) | body[i];
        *index = (*index << 8) | body[4 + i];
    }
    return name_unpack_addr(body + 8, peer) &&
           name_unpack_addr(body + 8 + ADDR_BYTES, local);
}
