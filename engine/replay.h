/*
 * replay.h — the replay memory of early 0-RTT openings (replay.c).
 * Internal to the engine; the runtime owns one per listener.
 */
#ifndef RUDP_REPLAY_H
#define RUDP_REPLAY_H

#include "rudp/rudp.h"

/* How far an opening's client clock may be from the server's for its data
 * to be delivered early. */
#define RUDP_EARLY_WINDOW_MS 10000u
/* How long an opening is remembered: past it, its clock is out of the
 * window anyway. */
#define RUDP_REPLAY_KEEP RUDP_MS(2 * RUDP_EARLY_WINDOW_MS + 1000)
/* The bytes of an opening's identity (of its client key share). */
#define RUDP_REPLAY_ID_LEN 16

/* What the memory says of an opening. */
typedef enum rudp_replay_result {
    RUDP_REPLAY_FRESH, /* not seen in the last RUDP_REPLAY_KEEP: now recorded */
    RUDP_REPLAY_SEEN,  /* seen: a replay */
    RUDP_REPLAY_FULL,  /* cannot tell: no memory, no clock, or no room */
} rudp_replay_result;

/* Looks |id| up at |now| and records it when fresh.  The table is full
 * when three quarters of it hold live entries. */
rudp_replay_result rudp_replay_check(rudp_replay *r, const uint8_t id[RUDP_REPLAY_ID_LEN],
                                     rudp_tstamp now);

/* Returns true when |id| was not seen in the last RUDP_REPLAY_KEEP before
 * |now| (it is then recorded), false when it was, when |r| is NULL, |now| is
 * 0, or the table is three quarters full of live entries. */
bool rudp_replay_fresh(rudp_replay *r, const uint8_t id[RUDP_REPLAY_ID_LEN],
                       rudp_tstamp now);

#endif
