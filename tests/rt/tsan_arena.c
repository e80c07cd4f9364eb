/*
 * tsan_arena.c — lets criterion start under ThreadSanitizer.  Linked into
 * the tests/rt programs of a -Db_sanitize=thread build only.
 *
 * Criterion's sandbox (BoxFort) maps an arena it shares with its test
 * workers at a random fixed address: 0x2000_0000_0000 plus
 * (rand_r() & 0x3fffff) times 16 MiB, MAP_FIXED, after mincore() says the
 * spot is free, and gives up after 16 taken spots (Snaipe/Criterion issue
 * #274, open).  ThreadSanitizer (LLVM 14, x86-64) reserves nearly all of
 * that range for its shadow and metadata; the one slice that is application
 * memory, 0x5500_0000_0000 to 0x5680_0000_0000, is where position
 * independent executables load.  So criterion under TSan either prints
 * "Could not initialize inheritable arena" or maps its arena where a
 * re-executed worker then loads its own binary, and crashes (every unit test
 * of this project does the same under TSan).
 *
 * Nothing else in these programs calls rand_r, and libcriterion takes it
 * from libc through its PLT, so this definition is the one BoxFort gets: it
 * keeps the random sequence but puts the arena in 0x5660_0000_0000 to
 * 0x5680_0000_0000, application memory above where executables and their
 * heaps load (0x5555_5555_4000 plus at most 2^40 of randomisation).
 */
#include <stdlib.h>

/* The multiplier and increment of the ISO C example generator. */
int rand_r(unsigned int *seed) {
    *seed = *seed * 1103515245u + 12345u;
    return (int)(0x366000u + ((*seed >> 16) & 0x1fffu));
}
