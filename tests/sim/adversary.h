/*
 * adversary.h — an attacker on the simulated link (adversary.c).
 */
#ifndef RUDP_SIM_ADVERSARY_H
#define RUDP_SIM_ADVERSARY_H

#include <stdbool.h>
#include <stddef.h>

#include "prng.h"
#include "rudp/rudp.h"

typedef struct sim_adv {
    sim_prng prng;
    double pct;       /* probability of a strike after each datagram, 0..1 */
    rudp_addr where;  /* the attacker's own address */
    uint64_t strikes; /* strikes made */
    uint64_t refused; /* of those against a session, refused as they must be */
} sim_adv;

/* Sets |a| up with its own seed; |pct| 0 makes it harmless. */
void sim_adv_init(sim_adv *a, uint64_t seed, double pct);

/* After |s| (a server when |server|) took the genuine datagram |orig|
 * (a copy from before it was opened) from |from|, maybe strikes it with a
 * forgery made from it.  Returns 0, or -1 with the reason in |why| when a
 * forgery was accepted or changed the session, or a spoofed opening made a
 * validated session or an amplifier. */
int sim_adv_strike(sim_adv *a, rudp_session *s, const rudp_settings *set, bool server,
                   const uint8_t *orig, size_t len, const rudp_addr *from, rudp_tstamp now,
                   char *why, size_t whylen);

#endif
