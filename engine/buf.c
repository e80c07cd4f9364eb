/*
 * buf.c — a byte store addressed by stream offset, in fixed-size chunks.
 *
 * A rudp_buf maps stream offsets onto RUDP_CHUNK_SIZE-byte chunks through an
 * array of chunk pointers: slot i covers [base + i * CHUNK, base + (i + 1) *
 * CHUNK).  The send side writes at the tail and releases from the head as
 * the peer acknowledges; the receive side writes wherever segments land
 * inside the window (RFC 9000 §2.2 lets stream data arrive in any order) and
 * releases from the head as the application reads.  A chunk is taken from
 * the pool only when a byte lands in it, so a slot may stay NULL over bytes
 * that never arrived, and it goes back the moment its last byte is released.
 *
 * release_below() moves base forward a whole chunk at a time and slides the
 * remaining slots to the front of the array, so the array holds only the
 * window in flight however many gigabytes the stream has carried.  The slot
 * array grows by doubling and keeps its size, and chunks cycle through the
 * rudp_chunk_pool (a bounded free list, like ngtcp2's objalloc), so a busy
 * stream allocates nothing in steady state and an idle one holds no chunk.
 * The pool takes chunks from, and gives its surplus back to, the
 * process's chunk slabs (chunks.c), not the heap.
 *
 * The released mark itself is not stored (the struct keeps only base), so
 * writes are refused only when they start below base, i.e. in a chunk that
 * has already gone back to the pool.
 */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

#define BUF_INIT_SLOTS 4u

void rudp_chunk_pool_init(rudp_chunk_pool *p, uint32_t max_free) {
    p->free = NULL;
    p->nfree = 0;
    p->max_free = max_free;
    p->low = 0;
    p->in_use = 0;
}

void rudp_chunk_pool_free(rudp_chunk_pool *p) {
    for (uint32_t i = 0; i < p->nfree; i++)
        rudp_chunks_put(p->free[i]);
    free(p->free);
    p->free = NULL;
    p->nfree = 0;
}

void *rudp_chunk_get(rudp_chunk_pool *p) {
    void *c = p->nfree > 0 ? p->free[--p->nfree] : rudp_chunks_get();
    if (p->nfree < p->low)
        p->low = p->nfree;
    if (c != NULL)
        p->in_use++;
    return c;
}

void rudp_chunk_pool_trim(rudp_chunk_pool *p) {
    uint32_t idle = p->low; /* the oldest spares: no get reached them */
    if (idle > 0) {
        for (uint32_t i = 0; i < idle; i++)
            rudp_chunks_put(p->free[i]);
        memmove(p->free, p->free + idle, (p->nfree - idle) * sizeof(*p->free));
        p->nfree -= idle;
    }
    p->low = p->nfree;
}

/* Returns true when the pool has room to keep one more spare chunk, creating
 * its free list (sized max_free, once) on first use. */
static bool pool_can_keep(rudp_chunk_pool *p) {
    if (p->nfree >= p->max_free)
        return false;
    if (p->free == NULL)
        p->free = malloc((size_t)p->max_free * sizeof(*p->free));
    return p->free != NULL;
}

void rudp_chunk_put(rudp_chunk_pool *p, void *chunk) {
    if (chunk == NULL)
        return;
    p->in_use--;
    if (pool_can_keep(p))
        p->free[p->nfree++] = chunk;
    else
        rudp_chunks_put(chunk);
}

void rudp_buf_init(rudp_buf *b, rudp_chunk_pool *pool) {
    b->chunks = NULL;
    b->n = 0;
    b->cap = 0;
    b->base = 0;
    b->pool = pool;
}

/* Returns chunks [lo, hi) to the pool and clears their slots. */
static void buf_put_slots(rudp_buf *b, uint32_t lo, uint32_t hi) {
    for (uint32_t i = lo; i < hi; i++) {
        rudp_chunk_put(b->pool, b->chunks[i]);
        b->chunks[i] = NULL;
    }
}

void rudp_buf_free(rudp_buf *b) {
    buf_put_slots(b, 0, b->n);
    free(b->chunks);
    b->chunks = NULL;
    b->n = 0;
    b->cap = 0;
}

/* Makes slots [0, need) exist (new ones NULL), doubling the array as needed.
 * Returns RUDP_OK or RUDP_ERR_NOMEM (the buffer is then unchanged). */
static int buf_reserve_slots(rudp_buf *b, uint64_t need) {
    if (need <= b->n)
        return RUDP_OK;
    if (need > b->cap) {
        uint64_t cap = b->cap ? b->cap : BUF_INIT_SLOTS;
        while (cap < need)
            cap *= 2;
        if (cap > UINT32_MAX || cap > SIZE_MAX / sizeof(*b->chunks))
            return RUDP_ERR_NOMEM;
        uint8_t **v = realloc(b->chunks, (size_t)cap * sizeof(*v));
        if (v == NULL)
            return RUDP_ERR_NOMEM;
        b->chunks = v;
        b->cap = (uint32_t)cap;
    }
    memset(&b->chunks[b->n], 0, (size_t)(need - b->n) * sizeof(*b->chunks));
    b->n = (uint32_t)need;
    return RUDP_OK;
}

/* Gives every slot in [lo, hi) a chunk from the pool.  Returns RUDP_OK or
 * RUDP_ERR_NOMEM (chunks already placed stay, holding no written byte). */
static int buf_fill_slots(rudp_buf *b, uint32_t lo, uint32_t hi) {
    for (uint32_t i = lo; i < hi; i++) {
        if (b->chunks[i] != NULL)
            continue;
        b->chunks[i] = rudp_chunk_get(b->pool);
        if (b->chunks[i] == NULL)
            return RUDP_ERR_NOMEM;
    }
    return RUDP_OK;
}

/* Copies |len| bytes from |data| to offset |off|, whose chunks exist. */
static void buf_copy_in(rudp_buf *b, uint64_t off, const uint8_t *data, size_t len) {
    while (len > 0) {
        uint64_t rel = off - b->base;
        size_t in = (size_t)(rel % RUDP_CHUNK_SIZE);
        size_t n = RUDP_CHUNK_SIZE - in < len ? RUDP_CHUNK_SIZE - in : len;
        memcpy(b->chunks[rel / RUDP_CHUNK_SIZE] + in, data, n);
        off += n;
        data += n;
        len -= n;
    }
}

int rudp_buf_write(rudp_buf *b, uint64_t off, const void *data, size_t len) {
    if (len == 0)
        return RUDP_OK;
    if (off < b->base || len > UINT64_MAX - off)
        return RUDP_ERR_INVAL;
    uint64_t first = (off - b->base) / RUDP_CHUNK_SIZE;
    uint64_t last = (off + len - 1 - b->base) / RUDP_CHUNK_SIZE;
    int rv = buf_reserve_slots(b, last + 1);
    if (rv == RUDP_OK)
        rv = buf_fill_slots(b, (uint32_t)first, (uint32_t)last + 1);
    if (rv == RUDP_OK)
        buf_copy_in(b, off, data, len);
    return rv;
}

int rudp_buf_reserve(rudp_buf *b, uint64_t off, size_t len, struct iovec *iov, int max) {
    if (off < b->base || len > UINT64_MAX - off)
        return RUDP_ERR_INVAL;
    if (len == 0 || max <= 0)
        return 0;
    size_t in = (size_t)((off - b->base) % RUDP_CHUNK_SIZE);
    size_t most = (size_t)max * RUDP_CHUNK_SIZE - in;
    if (len > most)
        len = most;
    uint64_t first = (off - b->base) / RUDP_CHUNK_SIZE;
    uint64_t last = (off + len - 1 - b->base) / RUDP_CHUNK_SIZE;
    int rv = buf_reserve_slots(b, last + 1);
    if (rv == RUDP_OK)
        rv = buf_fill_slots(b, (uint32_t)first, (uint32_t)last + 1);
    if (rv != RUDP_OK)
        return rv;
    int n = 0;
    for (uint64_t i = first; i <= last; i++, n++) {
        size_t from = i == first ? in : 0;
        size_t take = RUDP_CHUNK_SIZE - from < len ? RUDP_CHUNK_SIZE - from : len;
        iov[n] = (struct iovec){.iov_base = b->chunks[i] + from, .iov_len = take};
        len -= take;
    }
    return n;
}

void rudp_buf_release_from(rudp_buf *b, uint64_t off) {
    uint64_t rel = off > b->base ? off - b->base : 0;
    uint64_t keep = (rel + RUDP_CHUNK_SIZE - 1) / RUDP_CHUNK_SIZE;
    if (keep >= b->n)
        return;
    buf_put_slots(b, (uint32_t)keep, b->n);
    b->n = (uint32_t)keep;
}

void rudp_buf_read(const rudp_buf *b, uint64_t off, void *out, size_t len) {
    uint8_t *o = out;
    while (len > 0) {
        const uint8_t *p;
        size_t n = rudp_buf_peek(b, off, len, &p);
        if (n == 0)
            return; /* not stored: the caller broke the contract */
        memcpy(o, p, n);
        o += n;
        off += n;
        len -= n;
    }
}

size_t rudp_buf_peek(const rudp_buf *b, uint64_t off, size_t len, const uint8_t **p) {
    *p = NULL;
    if (len == 0 || off < b->base)
        return 0;
    uint64_t rel = off - b->base;
    if (rel / RUDP_CHUNK_SIZE >= b->n || b->chunks[rel / RUDP_CHUNK_SIZE] == NULL)
        return 0;
    size_t in = (size_t)(rel % RUDP_CHUNK_SIZE);
    *p = b->chunks[rel / RUDP_CHUNK_SIZE] + in;
    return RUDP_CHUNK_SIZE - in < len ? RUDP_CHUNK_SIZE - in : len;
}

void rudp_buf_release_below(rudp_buf *b, uint64_t off) {
    if (off <= b->base)
        return;
    uint64_t whole = (off - b->base) / RUDP_CHUNK_SIZE;
    uint32_t k = whole < b->n ? (uint32_t)whole : b->n;
    b->base += whole * RUDP_CHUNK_SIZE;
    if (k == 0)
        return;
    buf_put_slots(b, 0, k);
    memmove(b->chunks, b->chunks + k, (size_t)(b->n - k) * sizeof(*b->chunks));
    b->n -= k;
}

void rudp_buf_drop(rudp_buf *b, uint64_t off) {
    rudp_buf_release_below(b, off);
    buf_put_slots(b, 0, b->n);
    b->n = 0;
}

uint32_t rudp_buf_chunks(const rudp_buf *b) {
    uint32_t held = 0;
    for (uint32_t i = 0; i < b->n; i++)
        held += b->chunks[i] != NULL;
    return held;
}
