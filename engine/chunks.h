/*
 * chunks.h — the memory of stream chunks: slabs mapped from the system,
 * whose free pages go back to it (see chunks.c).
 *
 * Every stream buffer (buf.h) is made of RUDP_CHUNK_SIZE chunks.  They come
 * from here, not from malloc: a chunk freed in the middle of the program's
 * heap would keep its pages resident for as long as anything above it
 * lives, so a burst of connections would leave its peak behind for good.
 * Slabs of RUDP_CHUNKS_PER_SLAB chunks are mapped on demand; a chunk that
 * has stayed free through a whole period between two calls of
 * rudp_chunks_trim() gives its pages back, and a slab that has stayed
 * empty that long is unmapped.  Thread-safe (one lock).
 */
#ifndef RUDP_CHUNKS_H
#define RUDP_CHUNKS_H

#include <stddef.h>
#include <stdint.h>

#define RUDP_CHUNK_SIZE 16384u
#define RUDP_CHUNKS_PER_SLAB 64u

/* Under AddressSanitizer chunks come from malloc, so that its checks see
 * them; there are no slabs and trimming gives nothing back. */
#if defined(__SANITIZE_ADDRESS__)
#define RUDP_CHUNKS_FROM_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RUDP_CHUNKS_FROM_MALLOC 1
#endif
#endif

/* Figures of the chunk memory, for tests and logs. */
typedef struct rudp_chunks_info {
    uint64_t slabs;    /* slabs mapped */
    uint64_t in_use;   /* chunks handed out */
    uint64_t resident; /* free chunks whose pages may still be resident */
} rudp_chunks_info;

/* Returns a chunk of RUDP_CHUNK_SIZE bytes (its content undefined), or NULL
 * when no memory could be mapped. */
void *rudp_chunks_get(void);

/* Returns |chunk| (from rudp_chunks_get; NULL is ignored). */
void rudp_chunks_put(void *chunk);

/* Gives back the pages of every chunk that stayed free since the last
 * call, and unmaps the slabs that stayed empty.  Returns the bytes given
 * back.  Meant for a periodic timer (the runtime's 1 s tick). */
size_t rudp_chunks_trim(void);

/* Fills |out| with the current figures. */
void rudp_chunks_get_info(rudp_chunks_info *out);

#endif /* RUDP_CHUNKS_H */
