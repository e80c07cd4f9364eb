/*
 * replay.c — the memory of 0-RTT openings a server has accepted early
 * (docs/PROTOCOL.md "Early data under a pre-shared key").
 *
 * An INITIAL sealed under the pre-shared key cannot be forged, but it can
 * be replayed: whoever captured it can send it again, and a server that
 * delivered its data at once would deliver it twice.  So a server delivers
 * early only the first time it sees an opening: it remembers each opening's
 * client key share (its first 16 bytes: random, 128 bits) for
 * RUDP_REPLAY_KEEP, and an opening whose client clock is further than
 * RUDP_EARLY_WINDOW from its own is not early at all (so nothing older than
 * what is remembered can pass).  An opening that is not early is not lost:
 * its data waits for the client's address to be validated, one round trip
 * later, which no replayer can do.
 *
 * The table is open addressing with linear probing over a fixed number of
 * slots, allocated once; an expired entry is free again.  When the live
 * entries fill three quarters of it, early data stops (the table never
 * grows: a flood of genuine-looking openings costs a bounded amount).
 */
#include "replay.h"

#include <stdlib.h>
#include <string.h>

typedef struct replay_slot {
    uint8_t id[RUDP_REPLAY_ID_LEN];
    rudp_tstamp at; /* when it was recorded; 0: empty */
} replay_slot;

struct rudp_replay {
    uint32_t mask; /* slots - 1 (a power of two) */
    uint32_t live; /* slots holding an entry, expired or not */
    replay_slot *slot;
};

rudp_replay *rudp_replay_new(uint32_t slots) {
    uint32_t n = 16;
    while (n < slots && n < (1u << 24))
        n <<= 1;
    rudp_replay *r = calloc(1, sizeof(*r));
    if (r)
        r->slot = calloc(n, sizeof(*r->slot));
    if (!r || !r->slot) {
        rudp_replay_del(r);
        return NULL;
    }
    r->mask = n - 1;
    return r;
}

void rudp_replay_del(rudp_replay *r) {
    if (r)
        free(r->slot);
    free(r);
}

/* Returns the first slot to probe for |id|. */
static uint32_t replay_home(const rudp_replay *r, const uint8_t *id) {
    uint32_t h;
    memcpy(&h, id, sizeof(h)); /* the id is random: its bytes are the hash */
    return h & r->mask;
}

/* Returns true when the entry of |s| has expired at |now|. */
static bool replay_expired(const replay_slot *s, rudp_tstamp now) {
    return now >= s->at + RUDP_REPLAY_KEEP;
}

/* Empties every expired slot (the table is rebuilt in place). */
static void replay_purge(rudp_replay *r, rudp_tstamp now) {
    uint32_t n = r->mask + 1;
    replay_slot *old = r->slot, *fresh = calloc(n, sizeof(*fresh));
    if (!fresh)
        return;
    r->slot = fresh;
    r->live = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (old[i].at == 0 || replay_expired(&old[i], now))
            continue;
        uint32_t j = replay_home(r, old[i].id);
        while (r->slot[j].at)
            j = (j + 1) & r->mask;
        r->slot[j] = old[i];
        r->live++;
    }
    free(old);
}

rudp_replay_result rudp_replay_check(rudp_replay *r, const uint8_t id[RUDP_REPLAY_ID_LEN],
                                     rudp_tstamp now) {
    if (!r || now == 0)
        return RUDP_REPLAY_FULL;
    if (r->live >= (r->mask + 1) / 4 * 3)
        replay_purge(r, now);
    if (r->live >= (r->mask + 1) / 4 * 3)
        return RUDP_REPLAY_FULL; /* full of live entries until they expire */
    uint32_t i = replay_home(r, id);
    for (; r->slot[i].at; i = (i + 1) & r->mask)
        if (memcmp(r->slot[i].id, id, RUDP_REPLAY_ID_LEN) == 0) {
            if (!replay_expired(&r->slot[i], now))
                return RUDP_REPLAY_SEEN;
            r->slot[i].at = now;
            return RUDP_REPLAY_FRESH;
        }
    memcpy(r->slot[i].id, id, RUDP_REPLAY_ID_LEN);
    r->slot[i].at = now;
    r->live++;
    return RUDP_REPLAY_FRESH;
}

bool rudp_replay_fresh(rudp_replay *r, const uint8_t id[RUDP_REPLAY_ID_LEN],
                       rudp_tstamp now) {
    return rudp_replay_check(r, id, now) == RUDP_REPLAY_FRESH;
}
