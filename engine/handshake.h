/*
 * handshake.h — the key schedule and the tokens (docs/PROTOCOL.md, "Keys"
 * and "Address validation").  Pure functions of their inputs: the session
 * (session_protect.c) and the server's first look (session_accept.c) call
 * them.  Internal to the engine.
 */
#ifndef RUDP_HANDSHAKE_H
#define RUDP_HANDSHAKE_H

#include "crypto.h"
#include "rudp/rudp.h"

/* A retry token: when it was made, and its MAC. */
#define RUDP_RETRY_TOKEN_LEN 24
/* How long a retry token is good for. */
#define RUDP_RETRY_TOKEN_LIFE RUDP_SEC(10)

/* The early secret: HKDF-Extract over the pre-shared key, or over 32 zero
 * bytes without one (then everything derived from it alone is public). */
void rudp_hs_early(uint8_t early[RUDP_SECRET_LEN], const rudp_settings *s);

/* Sets |a| up for the INITIAL packets of the connection attempt whose
 * first destination CID is |dcid| and whose client key share is |share|.
 * Returns false on NOMEM. */
bool rudp_hs_initial_aead(rudp_aead *a, const uint8_t early[RUDP_SECRET_LEN], uint64_t dcid,
                          const uint8_t share[RUDP_SHARE_LEN]);

/* The handshake's inputs, as both ends see them. */
typedef struct rudp_hs_input {
    const uint8_t *early;        /* the early secret */
    const uint8_t *dh;           /* X25519 of one's private key and the other's share */
    uint64_t dcid;               /* the client's first destination CID */
    const uint8_t *client_share; /* both shares, client's first */
    const uint8_t *server_share;
} rudp_hs_input;

/* Sets up the 1-RTT protection of one end: |tx| for what it sends, |rx|
 * for what it receives (client: tx is client-to-server).  Returns false on
 * NOMEM (both are then freed). */
bool rudp_hs_1rtt(rudp_aead *tx, rudp_aead *rx, const rudp_hs_input *in, bool client);

/* The stateless reset token of connection ID |cid| under |secret|. */
void rudp_hs_reset_token(uint8_t out[RUDP_TOKEN_LEN], const uint8_t secret[RUDP_SECRET_LEN],
                         uint64_t cid);

/* Writes a retry token for a client at |from| whose INITIAL named |dcid|,
 * made at |now|; returns RUDP_RETRY_TOKEN_LEN. */
size_t rudp_hs_retry_token(uint8_t out[RUDP_RETRY_TOKEN_LEN],
                           const uint8_t secret[RUDP_SECRET_LEN], const rudp_addr *from,
                           uint64_t dcid, rudp_tstamp now);

/* Returns true when |tok| is a retry token this |secret| made for |from|
 * and |dcid| less than RUDP_RETRY_TOKEN_LIFE before |now|. */
bool rudp_hs_retry_token_ok(const uint8_t *tok, size_t len,
                            const uint8_t secret[RUDP_SECRET_LEN], const rudp_addr *from,
                            uint64_t dcid, rudp_tstamp now);

/* The integrity tag of a RETRY (its |len| bytes before the tag) answering
 * the INITIAL with client key share |share|: only one who saw the INITIAL
 * (and holds the pre-shared key, when there is one) can make it. */
void rudp_hs_retry_tag(uint8_t tag[RUDP_TAG_LEN], const uint8_t early[RUDP_SECRET_LEN],
                       const uint8_t share[RUDP_SHARE_LEN], const uint8_t *retry,
                       size_t len);

/* How long a resumption ticket is good for, in wall-clock milliseconds. */
#define RUDP_TICKET_LIFE_MS (24u * 3600 * 1000)
/* How far in the future a ticket's time may be (the clocks of the servers
 * sharing a secret disagree). */
#define RUDP_TICKET_SKEW_MS 60000u

/* Makes a resumption ticket for the client at |client| under |secret| at
 * wall clock |wall_ms|: a fresh random key in t->psk, sealed with the time
 * into t->blob, bound to the client's IP address.  Returns false on NOMEM. */
bool rudp_hs_ticket_make(rudp_ticket *t, const uint8_t secret[RUDP_SECRET_LEN],
                         uint64_t wall_ms, const rudp_addr *client);

/* Opens a ticket blob of |len| bytes, made under |secret| for the IP
 * address of |client|, into |psk|.  Returns false when it does not open
 * (forged, another secret, another address), or was made more than
 * RUDP_TICKET_LIFE_MS before |wall_ms| (or later than RUDP_TICKET_SKEW_MS
 * after it, or |wall_ms| is 0). */
bool rudp_hs_ticket_open(uint8_t psk[RUDP_SECRET_LEN], const uint8_t *blob, size_t len,
                         const uint8_t secret[RUDP_SECRET_LEN], uint64_t wall_ms,
                         const rudp_addr *client);

#endif
