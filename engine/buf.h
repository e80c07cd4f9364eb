/*
 * buf.h — a byte store addressed by stream offset, in fixed-size chunks.
 *
 * A stream's send buffer holds [acked, written) and its receive buffer holds
 * whatever arrived in [read, read + window); both are a rudp_buf.  Chunks are
 * allocated only when bytes land in them and returned to a rudp_chunk_pool
 * as soon as everything in them is released, so an idle stream holds no
 * chunk at all and a busy one allocates nothing in steady state.  The
 * pool's chunks come from the process's chunk slabs (chunks.h), which give
 * the pages of chunks that stay free back to the system.
 */
#ifndef RUDP_BUF_H
#define RUDP_BUF_H

#include <sys/uio.h>

#include "chunks.h"
#include "rudp/rudp.h"

/* A free list of chunks shared by the buffers of one session (or more). */
typedef struct rudp_chunk_pool {
    void **free;       /* spare chunks, the oldest first */
    uint32_t nfree;    /* how many are in free[] */
    uint32_t max_free; /* keep at most this many spare */
    uint32_t low;      /* the fewest spares since the last trim */
    uint64_t in_use;   /* chunks handed out and not returned */
} rudp_chunk_pool;

void rudp_chunk_pool_init(rudp_chunk_pool *p, uint32_t max_free);
/* Frees the spare chunks; chunks still in use must have been returned. */
void rudp_chunk_pool_free(rudp_chunk_pool *p);
/* Gives back the spares no get needed since the last call (the fewest the
 * pool held meanwhile): an idle pool empties in two calls, a busy one
 * keeps what it cycles.  For a periodic timer. */
void rudp_chunk_pool_trim(rudp_chunk_pool *p);
/* Returns a chunk of RUDP_CHUNK_SIZE bytes, or NULL. */
void *rudp_chunk_get(rudp_chunk_pool *p);
void rudp_chunk_put(rudp_chunk_pool *p, void *chunk);

typedef struct rudp_buf {
    uint8_t **chunks; /* chunks[i] covers [base + i*CHUNK, base + (i+1)*CHUNK) or NULL */
    uint32_t n;       /* slots in use */
    uint32_t cap;     /* slots allocated */
    uint64_t base;    /* offset of chunks[0], a multiple of RUDP_CHUNK_SIZE */
    rudp_chunk_pool *pool;
} rudp_buf;

void rudp_buf_init(rudp_buf *b, rudp_chunk_pool *pool);
/* Returns every chunk to the pool and frees the slot array. */
void rudp_buf_free(rudp_buf *b);

/* Stores |len| bytes at stream offset |off| (off >= the released mark).
 * Overwriting is allowed (retransmitted bytes are identical).  Returns RUDP_OK,
 * RUDP_ERR_INVAL (below the released mark) or RUDP_ERR_NOMEM. */
int rudp_buf_write(rudp_buf *b, uint64_t off, const void *data, size_t len);

/* Makes [off, off + len) writable in place (off >= the released mark):
 * takes the chunks it needs and describes the range, in order, as at most
 * |max| iovecs (fewer bytes when more would be needed).  Returns the number
 * of iovecs, RUDP_ERR_INVAL (below the released mark) or RUDP_ERR_NOMEM.
 * Bytes written there count as stored once the caller says so (its own
 * offsets); chunks it never filled go back with rudp_buf_release_from,
 * drop or free. */
int rudp_buf_reserve(rudp_buf *b, uint64_t off, size_t len, struct iovec *iov, int max);

/* Returns to the pool every chunk that holds no byte below |off| (the
 * caller knows nothing at or beyond |off| is stored): what a reservation
 * took and did not use. */
void rudp_buf_release_from(rudp_buf *b, uint64_t off);

/* Copies |len| bytes at |off| into |out|; the caller guarantees they were
 * written and not released. */
void rudp_buf_read(const rudp_buf *b, uint64_t off, void *out, size_t len);

/* Sets *p to the bytes at |off| and returns how many are contiguous in
 * memory from there, up to |len| (at least 1 if len > 0 and stored). */
size_t rudp_buf_peek(const rudp_buf *b, uint64_t off, size_t len, const uint8_t **p);

/* Releases all bytes below |off|: every chunk wholly below it goes back to
 * the pool. */
void rudp_buf_release_below(rudp_buf *b, uint64_t off);

/* Releases everything below |off| when the caller knows nothing at or
 * beyond |off| is stored: the chunk holding |off| goes back to the pool
 * too (a later write there takes a fresh one).  An idle stream thus holds
 * no chunk at all. */
void rudp_buf_drop(rudp_buf *b, uint64_t off);

/* Returns how many chunks the buffer holds now. */
uint32_t rudp_buf_chunks(const rudp_buf *b);

#endif /* RUDP_BUF_H */
