/*
 * chunks.c — the memory of stream chunks (see chunks.h).
 *
 * Why not malloc: glibc gives a freed block's pages back only when it lies
 * at the top of its heap, or when malloc_trim walks every free block of
 * every arena (tens of milliseconds on a fragmented heap, with the
 * program's arenas locked).  Stream chunks are the largest and most
 * numerous blocks the engine allocates (issue 13: 28 MiB of them at the
 * peak of 5,000 connections opened at once), and short-lived ones among
 * the long-lived session records, so on the heap they left a process's
 * RSS near its busiest moment forever.  Here they live in slabs of
 * RUDP_CHUNKS_PER_SLAB chunks, each slab a mapping of its own aligned to
 * its size, so a chunk finds its slab by masking its address.
 *
 * Each slab keeps three bitmaps: chunks handed out (used), free chunks
 * whose pages may be resident (warm), and chunks handed out or returned
 * since the last trim (recent).  A claim takes the lowest slab with a free
 * chunk, a warm chunk first, so memory stays packed at the bottom and is
 * reused while its pages are still there.  rudp_chunks_trim() gives back
 * the pages of warm chunks that were not recent (free for a whole period:
 * a busy process keeps what it is using from one second to the next) and
 * unmaps slabs that were empty for a whole period.  One lock guards it
 * all: the engine thread is the only caller in a process, so it is never
 * contended, and the engine is parked (between callbacks) across fork.
 *
 * Under AddressSanitizer chunks come from malloc, so that its checks see
 * them, and trimming does nothing.
 */
#include "chunks.h"

#include "rudp/rudp.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifdef RUDP_CHUNKS_FROM_MALLOC

void *rudp_chunks_get(void) {
    return malloc(RUDP_CHUNK_SIZE);
}

void rudp_chunks_put(void *chunk) {
    free(chunk);
}

size_t rudp_chunks_trim(void) {
    return 0;
}

void rudp_chunks_get_info(rudp_chunks_info *out) {
    memset(out, 0, sizeof(*out));
}

#else /* slabs */

#define SLAB_BYTES ((size_t)RUDP_CHUNK_SIZE * RUDP_CHUNKS_PER_SLAB)
#define SLAB_FULL UINT64_MAX

/* One slab: RUDP_CHUNKS_PER_SLAB chunks at |base|. */
typedef struct chunk_slab {
    uint8_t *base;   /* aligned to SLAB_BYTES */
    uint64_t used;   /* chunk i handed out */
    uint64_t warm;   /* chunk i free, its pages possibly resident */
    uint64_t recent; /* chunk i handed out or returned since the last trim */
} chunk_slab;

static pthread_mutex_t chunks_lock = PTHREAD_MUTEX_INITIALIZER;
static chunk_slab *slabs; /* sorted by base */
static size_t nslabs, cap_slabs;
static size_t first_free; /* no slab below this index has a free chunk */
static uint64_t in_use;

/* Maps a slab aligned to its size.  Returns its base, or NULL. */
static uint8_t *slab_map(void) {
    uint8_t *p = mmap(NULL, 2 * SLAB_BYTES, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    uintptr_t base = ((uintptr_t)p + SLAB_BYTES - 1) & ~(uintptr_t)(SLAB_BYTES - 1);
    size_t head = base - (uintptr_t)p;
    if (head)
        munmap(p, head);
    munmap((uint8_t *)base + SLAB_BYTES, SLAB_BYTES - head);
    return (uint8_t *)base;
}

/* Returns the index of the slab holding |p|, or nslabs when none does. */
static size_t slab_find(const void *p) {
    uintptr_t base = (uintptr_t)p & ~(uintptr_t)(SLAB_BYTES - 1);
    size_t lo = 0, hi = nslabs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((uintptr_t)slabs[mid].base < base)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < nslabs && (uintptr_t)slabs[lo].base == base ? lo : nslabs;
}

/* Maps a new slab and inserts it in order.  Returns its index, or nslabs
 * when memory ran out. */
static size_t slab_add(void) {
    if (nslabs == cap_slabs) {
        size_t cap = cap_slabs ? 2 * cap_slabs : 16;
        chunk_slab *v = realloc(slabs, cap * sizeof(*v));
        if (!v)
            return nslabs;
        slabs = v;
        cap_slabs = cap;
    }
    uint8_t *base = slab_map();
    if (!base)
        return nslabs;
    size_t i = 0;
    while (i < nslabs && slabs[i].base < base)
        i++;
    memmove(&slabs[i + 1], &slabs[i], (nslabs - i) * sizeof(*slabs));
    slabs[i] = (chunk_slab){.base = base};
    nslabs++;
    if (i < first_free)
        first_free = i;
    return i;
}

/* Takes a free chunk of slab |s|, a warm one first. */
static void *slab_take(chunk_slab *s) {
    uint64_t pick = s->warm ? s->warm : ~s->used;
    unsigned i = (unsigned)__builtin_ctzll(pick);
    uint64_t bit = 1ull << i;
    s->used |= bit;
    s->warm &= ~bit;
    s->recent |= bit;
    return s->base + (size_t)i * RUDP_CHUNK_SIZE;
}

void *rudp_chunks_get(void) {
    void *c = NULL;
    pthread_mutex_lock(&chunks_lock);
    size_t i = first_free;
    while (i < nslabs && slabs[i].used == SLAB_FULL)
        i++;
    first_free = i;
    if (i == nslabs)
        i = slab_add();
    if (i < nslabs) {
        c = slab_take(&slabs[i]);
        in_use++;
    }
    pthread_mutex_unlock(&chunks_lock);
    return c;
}

void rudp_chunks_put(void *chunk) {
    if (chunk == NULL)
        return;
    pthread_mutex_lock(&chunks_lock);
    size_t i = slab_find(chunk);
    if (i < nslabs) {
        chunk_slab *s = &slabs[i];
        uint64_t bit = 1ull << (((uint8_t *)chunk - s->base) / RUDP_CHUNK_SIZE);
        s->used &= ~bit;
        s->warm |= bit;
        s->recent |= bit;
        in_use--;
        if (i < first_free)
            first_free = i;
    }
    pthread_mutex_unlock(&chunks_lock);
}

/* Gives back the pages of the chunks of slab |s| in |mask|, one call per
 * run of neighbours.  Returns the bytes given back. */
static size_t slab_release(chunk_slab *s, uint64_t mask) {
    size_t bytes = 0;
    for (unsigned i = 0; i < RUDP_CHUNKS_PER_SLAB;) {
        unsigned j = i;
        while (j < RUDP_CHUNKS_PER_SLAB && (mask >> j & 1))
            j++;
        size_t len = (size_t)(j - i) * RUDP_CHUNK_SIZE;
        if (j > i &&
            madvise(s->base + (size_t)i * RUDP_CHUNK_SIZE, len, MADV_DONTNEED) == 0)
            bytes += len;
        i = j > i ? j : i + 1;
    }
    return bytes;
}

size_t rudp_chunks_trim(void) {
    size_t bytes = 0, kept = 0;
    pthread_mutex_lock(&chunks_lock);
    for (size_t i = 0; i < nslabs; i++) {
        chunk_slab *s = &slabs[i];
        if (s->used == 0 && s->recent == 0) { /* empty for a whole period */
            munmap(s->base, SLAB_BYTES);
            bytes += (size_t)__builtin_popcountll(s->warm) * RUDP_CHUNK_SIZE;
            continue;
        }
        uint64_t idle = s->warm & ~s->recent;
        bytes += slab_release(s, idle);
        s->warm &= ~idle;
        s->recent = 0;
        slabs[kept++] = *s;
    }
    nslabs = kept;
    first_free = 0;
    pthread_mutex_unlock(&chunks_lock);
    return bytes;
}

void rudp_chunks_get_info(rudp_chunks_info *out) {
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&chunks_lock);
    out->slabs = nslabs;
    out->in_use = in_use;
    for (size_t i = 0; i < nslabs; i++)
        out->resident += (uint64_t)__builtin_popcountll(slabs[i].warm);
    pthread_mutex_unlock(&chunks_lock);
}

#endif /* RUDP_CHUNKS_FROM_MALLOC */

size_t rudp_memory_trim(void) {
    return rudp_chunks_trim();
}
