/*
 * session.h — the session record shared by session.c (life cycle, streams,
 * timers, API), session_input.c (datagram and frame processing) and
 * session_output.c (packet assembly and what happens when a packet is
 * acknowledged or lost).  Internal to the engine.
 */
#ifndef RUDP_SESSION_H
#define RUDP_SESSION_H

#include "acktr.h"
#include "buf.h"
#include "crypto.h"
#include "flowctl.h"
#include "pacer.h"
#include "recovery.h"
#include "rudp/trace.h"
#include "stream.h"
#include "wire.h"

enum rudp_session_state {
    RUDP_SESS_CONNECTING = 1, /* client: SYN sent, no SYN-ACK yet */
    RUDP_SESS_ESTABLISHED,
    RUDP_SESS_CLOSING,  /* closing: streams finishing, then GoAway until acked */
    RUDP_SESS_DRAINING, /* only ACKs go out, until drain_end */
    RUDP_SESS_DONE,
};

/* What a client may send before it knows the server's parameters (and the
 * least a server ever advertises): docs/PROTOCOL.md "0-RTT". */
#define RUDP_ZERO_RTT_STREAM_WINDOW (256u * 1024)
#define RUDP_ZERO_RTT_SESSION_WINDOW (1024u * 1024)
#define RUDP_ZERO_RTT_MAX_STREAMS 100

/* How long a closed session lingers, in PTOs (absorbs stray packets). */
#define RUDP_DRAIN_PTOS 3
/* The least time a closer waits for the ACK of its GoAway (several PTO
 * attempts even on a short path). */
#define RUDP_CLOSE_MIN_WAIT RUDP_SEC(2)
/* The longest a closer waits for that ACK when no idle timeout bounds how
 * long the peer may be silent. */
#define RUDP_CLOSE_TIMEOUT RUDP_SEC(60)
/* The shortest smoothed RTT on which the tail of a flight asks for its ACK
 * at once (session_output.c, out_tail_ping). */
#define RUDP_TAIL_ACK_MIN_RTT RUDP_MS(2)
/* How long a stream the program closed retries its unacknowledged data
 * (Linux's orphan retries give up after about as long). */
#define RUDP_ORPHAN_TIMEOUT RUDP_SEC(60)
/* Silence after which a session with no stream left closes itself. */
#define RUDP_EMPTY_TIMEOUT RUDP_SEC(60)

typedef struct rudp_list {
    rudp_stream *head, *tail;
} rudp_list;

struct rudp_session {
    rudp_settings settings;
    bool is_client;
    uint8_t state; /* enum rudp_session_state */
    uint64_t prng;
    uint64_t local_cid, peer_cid, initial_cid;
    rudp_addr peer_addr;

    /* Packet protection (session_protect.c, handshake.c). */
    rudp_keypair kp;                    /* our X25519 key share */
    uint8_t peer_share[RUDP_SHARE_LEN]; /* server: the client's */
    uint8_t early[RUDP_SECRET_LEN];     /* the early secret (PSK or public) */
    rudp_aead initial;                  /* INITIAL packets, until not needed */
    rudp_aead tx, rx;                   /* 1-RTT, once keyed */
    bool keyed;                         /* tx and rx are ready */
    bool validated;                     /* server: the client's address is proven */
    bool peer_keyed;    /* server: a PROTECTED packet opened (HANDSHAKE no more) */
    bool retried;       /* client: it followed a RETRY */
    uint16_t token_len; /* client: the retry token it sends */
    uint8_t token[RUDP_MAX_TOKEN];
    uint8_t peer_reset[RUDP_TOKEN_LEN]; /* client: the server's reset token */
    bool peer_reset_known;
    uint8_t refuse_reason;      /* client: enum rudp_refuse_reason */
    rudp_addr probe_addr;       /* a new path being validated */
    bool probing_path;          /* probe_addr is set: challenge it */
    rudp_tstamp challenge_sent; /* when probe_addr was last challenged */

    /* The peer's transport parameters. */
    uint64_t peer_stream_window;
    rudp_tstamp peer_idle_timeout;
    uint32_t max_packet_size; /* datagram size in use (raised by probing) */
    uint32_t peer_max_udp;    /* largest datagram the peer accepts */
    uint32_t mtu_ceiling;     /* largest the local route allows; 0: no probing */
    uint32_t probe_size;      /* size of the probe in flight, or 0 */
    uint64_t probe_pn;        /* its packet number */
    uint32_t probe_failed;    /* smallest probe size that was lost */

    /* Session-level frames waiting to go out. */
    bool session_frame_pending; /* SYN (client) or SYN-ACK (server) */
    bool session_frame_acked;
    bool session_frame_eager; /* server: send SYN-ACK without waiting */
    bool goaway_pending;
    bool goaway_sent;
    uint32_t goaway_code;
    bool close_requested;
    bool max_streams_pending;
    bool path_challenge_pending, path_response_pending;
    uint64_t path_challenge_data, path_response_data;
    uint64_t path_challenge_prev; /* the challenge the current one replaced */
    bool path_validated;
    uint64_t migrations;
    uint32_t probes;             /* PTO probe packets owed */
    bool ping_pending;           /* keepalive */
    bool listening;              /* server: a program listens on our port */
    bool listening_pending;      /* server: LISTENING frame to send */
    bool listening_acked;        /* server: the client acknowledged |listening| */
    bool ticket_pending;         /* server: NEW_TICKET frame to send */
    bool ticket_ready;           /* client: |ticket| came, not yet taken */
    rudp_ticket ticket;          /* client: the newest NEW_TICKET */
    bool peer_listening;         /* client: the server's port has a listener */
    bool ev_listening;           /* client: report a change of peer_listening */
    uint64_t listening_pn;       /* client: the packet that last set peer_listening */
    uint64_t input_pn;           /* the number of the packet being applied */
    const rudp_addr *input_from; /* where it came from (NULL: not said) */

    /* Streams. */
    rudp_stream **buckets;
    uint32_t nbuckets;
    uint32_t nstreams;
    rudp_list send_list;        /* streams that may have frames to send (round robin) */
    rudp_list lazy_list;        /* accepted streams whose ACK flag rides the next packet */
    rudp_list ev_list;          /* streams with events to report */
    uint64_t local_opened;      /* streams opened here so far */
    uint64_t local_allowed;     /* cumulative streams the peer lets us open */
    uint64_t peer_opened;       /* peer stream IDs seen so far (count) */
    uint64_t peer_allowed;      /* cumulative streams we let the peer open */
    uint64_t peer_freed;        /* peer streams finished and freed */
    uint64_t peer_allowed_sent; /* last MAX_STREAMS value sent */

    /* Session flow control. */
    rudp_fc fc;              /* receive */
    uint64_t stream_windows; /* sum of the open streams' receive windows */
    uint64_t snd_limit;      /* the peer's session limit */
    uint64_t snd_sent;       /* new stream bytes sent in total */

    rudp_chunk_pool pool;
    rudp_recovery rec;
    rudp_acktr acktr;
    rudp_pacer pacer;

    rudp_tstamp now; /* latest time any call handed in */
    rudp_tstamp created;
    rudp_tstamp last_recv;      /* last valid packet */
    rudp_tstamp last_activity;  /* last packet sent or received (keepalive) */
    rudp_tstamp drain_end;      /* DRAINING ends, or NEVER */
    rudp_tstamp close_deadline; /* CLOSING: stop waiting for the GoAway's ACK, or NEVER */
    rudp_tstamp live_check;     /* when a stream may have to give up (session_live.c) */
    rudp_tstamp ka_idle;        /* the shortest keepalive idle of the streams (0: none) */
    rudp_tstamp ka_intvl;       /* and interval */
    rudp_tstamp ka_probe;       /* the last keepalive probe */

    /* Session events not yet polled. */
    bool ev_established, ev_closed;
    bool closed_noted; /* the end has been decided (reported once) */
    int close_error;   /* why the session ended */

    /* Statistics. */
    uint64_t pkts_recv, pkts_dropped, bytes_sent, bytes_recv, stream_bytes_sent;
    uint64_t pkts_auth_failed; /* sealed packets that did not open */

    /* What the trace hook was told last (session_trace.c). */
    uint8_t trace_cc;       /* enum rudp_trace_cc_state, 0 before the first report */
    uint64_t trace_pn_1rtt; /* the first packet sent PROTECTED, or RUDP_PN_NONE */
};

/* --- session.c --- */
/* Moves the session to |state| (enum rudp_session_state), telling the
 * trace hook. */
void rudp_sess_set_state(rudp_session *s, uint8_t state);
/* Allocates a zeroed session after checking |set|; NULL on failure. */
rudp_session *rudp_sess_alloc(const rudp_settings *set);
/* Sets up everything client and server sessions share.  Returns RUDP_OK or
 * RUDP_ERR_NOMEM. */
int rudp_sess_init(rudp_session *s, const rudp_settings *set, uint64_t seed,
                   rudp_tstamp now);
uint64_t rudp_sess_rand(rudp_session *s);
rudp_stream *rudp_sess_find(const rudp_session *s, uint64_t sid);
/* Creates the record of a stream the peer opened; returns NULL on NOMEM. */
rudp_stream *rudp_sess_stream_new(rudp_session *s, uint64_t sid, bool local,
                                  rudp_tstamp now);
/* Frees |st| if both halves are finished and the application released it. */
void rudp_sess_stream_maybe_free(rudp_session *s, rudp_stream *st);
void rudp_sess_stream_event(rudp_session *s, rudp_stream *st, uint8_t ev);
void rudp_sess_send_list_add(rudp_session *s, rudp_stream *st);
void rudp_sess_send_list_remove(rudp_session *s, rudp_stream *st);
void rudp_sess_lazy_list_add(rudp_session *s, rudp_stream *st);
void rudp_sess_lazy_list_remove(rudp_session *s, rudp_stream *st);
/* Frees every stream the application has released, finished or not. */
void rudp_sess_free_released(rudp_session *s);
/* Re-queues every stream that has unsent data (the session window grew). */
void rudp_sess_requeue_all(rudp_session *s);
/* Ends the session with |error|: every live stream fails with it. */
void rudp_sess_die(rudp_session *s, int error, rudp_tstamp now);
/* Fails every stream that has not finished with |error|. */
void rudp_sess_fail_streams(rudp_session *s, int error);
/* Records, once, that the session ended with |error| (RUDP_OK: by our
 * close) and queues the RUDP_EV_SESSION_CLOSED event. */
void rudp_sess_note_closed(rudp_session *s, int error);
/* Enters DRAINING for RUDP_DRAIN_PTOS probe timeouts. */
void rudp_sess_start_draining(rudp_session *s, rudp_tstamp now);
/* Aborts stream |st| with RST(code), giving back its window bytes. */
void rudp_sess_stream_abort(rudp_session *s, rudp_stream *st, uint32_t code, int error);
/* Credits |n| consumed bytes to the session window. */
void rudp_sess_consume(rudp_session *s, uint64_t n, rudp_tstamp now);
/* Returns how long a closer goes on sending its GoAway, from now, for an
 * ACK: as long as the peer may be silent (the idle timeout), at least
 * RUDP_DRAIN_PTOS PTOs and RUDP_CLOSE_MIN_WAIT.  A close on a lossy path
 * then ends at the peer too, instead of leaving it to idle out. */
rudp_tstamp rudp_sess_close_wait(const rudp_session *s);
/* Checks whether a requested close may send its GoAway now. */
void rudp_sess_check_close(rudp_session *s, rudp_tstamp now);

/* --- session_live.c --- */
/* Ends the streams whose peer has been silent too long (with
 * RUDP_ERR_TIMEDOUT) and sets live_check to the next such time. */
void rudp_sess_check_liveness(rudp_session *s, rudp_tstamp now);
/* Notes that |st| is about to send data: the start of a wait for progress
 * when nothing of it was unacknowledged. */
void rudp_sess_on_stream_sent(rudp_session *s, rudp_stream *st, rudp_tstamp now);
/* Returns when a keepalive probe of the streams' SO_KEEPALIVE is due, or
 * NEVER. */
rudp_tstamp rudp_sess_probe_time(const rudp_session *s);

/* --- session_input.c --- */
/* Applies a datagram opened by rudp_sess_open (|len| bytes on the wire):
 * drops it (counted) when it is not this session's or a duplicate,
 * else records it for the ACK and applies its frames in order.  Returns
 * RUDP_OK, the reason it was dropped (RUDP_ERR_UNKNOWN_CID,
 * RUDP_ERR_DUPLICATE), or the protocol error that closed the session. */
int rudp_sess_apply(rudp_session *s, const rudp_decoded_pkt *d, size_t len,
                    const rudp_addr *from, rudp_tstamp now);

/* --- session_protect.c --- */
/* Returns the type of the next packet |s| sends (enum rudp_pkt_type). */
uint8_t rudp_sess_pkt_type(const rudp_session *s);
/* Returns the header length of the next packet |s| sends. */
size_t rudp_sess_hdr_len(const rudp_session *s);
/* Returns true while |s| sends INITIAL packets (a client without keys). */
bool rudp_sess_sends_initial(const rudp_session *s);
/* Writes the header of packet |pn| at |buf| and seals the frames after it
 * (|len| bytes in all so far; |cap| has room for the tag).  Returns the
 * datagram's length, RUDP_ERR_NOBUF or RUDP_ERR_INTERNAL. */
ssize_t rudp_sess_seal(rudp_session *s, uint8_t *buf, size_t len, size_t cap, uint64_t pn);
/* Returns true when INITIALs under |set| are sealed with a secret key (a
 * pre-shared key or a ticket's), so that they may carry stream data. */
bool rudp_sess_initial_private(const rudp_settings *set);
/* Client: makes its key share and the initial key (a ticket it resumes
 * with goes in its INITIALs' token).  Returns false on NOMEM. */
bool rudp_sess_keys_client(rudp_session *s);
/* Client: connects without its ticket from now on (the server refused it,
 * or asked for a retry): the public initial key, the SYN again.  Returns
 * false on NOMEM. */
bool rudp_sess_drop_ticket(rudp_session *s);
/* Server: makes its key share and the 1-RTT keys from the client's share
 * (s->early and s->initial_cid set).  Returns false on failure (NOMEM, or
 * a client share of small order). */
bool rudp_sess_keys_server(rudp_session *s, const uint8_t client_share[RUDP_SHARE_LEN]);
/* Frees every key of |s|. */
void rudp_sess_keys_free(rudp_session *s);
/* Returns RUDP_OK when the frames of an INITIAL are ones it may carry: the
 * client's SESSION SYN, and stream data only under a pre-shared key or a
 * ticket
 * (PADDING and PING are not listed in |d|); else RUDP_ERR_MALFORMED. */
int rudp_sess_initial_frames(const rudp_settings *set, const rudp_decoded_pkt *d);
/* Opens the sealed packet |pkt| (header |h|) in place and decodes its
 * frames into |d|.  Returns RUDP_OK, RUDP_ERR_UNKNOWN_CID (a type or share
 * |s| does not take now), RUDP_ERR_AUTH (counted in pkts_auth_failed) or
 * RUDP_ERR_MALFORMED (frames that do not decode, or that an INITIAL may
 * not carry). */
int rudp_sess_open(rudp_session *s, uint8_t *pkt, size_t len, const rudp_pkt_hdr *h,
                   rudp_decoded_pkt *d);

/* --- session_output.c --- */
/* Returns the handler that routes acks and losses of |s|'s packets back. */
rudp_recovery_handler rudp_sess_recovery_handler(rudp_session *s);
/* Marks the frames of |pkt| to be sent again as its loss would, without
 * declaring it lost (a PTO probe carries them, RFC 9002 §6.2.4). */
void rudp_sess_requeue(rudp_session *s, const rudp_sent_pkt *pkt);
/* Returns true when a packet other than a bare ACK is waiting to go out. */
bool rudp_sess_has_pending(const rudp_session *s);
/* Returns true while a server may send nothing more to an unvalidated
 * client: three times what it received from it is spent (RFC 9000 §8.1). */
bool rudp_sess_amp_blocked(const rudp_session *s);

/* --- session_trace.c --- */
/* The trace hook (rudp/trace.h).  Every caller tests rudp_sess_traced()
 * first, so that a session without a hook pays one predictable branch per
 * place that could report, and nothing else. */
static inline bool rudp_sess_traced(const rudp_session *s) {
    return s->settings.trace != NULL;
}
/* rudp_sess_seal, reporting the packet as sent: its frames are decoded
 * before they are sealed.  |mtu_probe|: a packet-size probe.  Returns what
 * rudp_sess_seal returns. */
ssize_t rudp_sess_trace_seal(rudp_session *s, uint8_t *buf, size_t len, size_t cap,
                             uint64_t pn, bool mtu_probe, rudp_tstamp now);
/* Reports the accepted packet |d| (|len| bytes on the wire) as received. */
void rudp_sess_trace_received(rudp_session *s, const rudp_decoded_pkt *d, size_t len,
                              rudp_tstamp now);
/* Reports an accepted packet without frames (RETRY, REFUSE, stateless
 * reset) as received. */
void rudp_sess_trace_unsealed(rudp_session *s, const rudp_pkt_hdr *h, size_t len,
                              rudp_tstamp now);
/* Reports a datagram of |len| bytes dropped for |reason| (an rudp_error);
 * |h| is its header, NULL when that did not parse, and |pn| its number
 * (RUDP_PN_NONE: not known). */
void rudp_sess_trace_dropped(rudp_session *s, const rudp_pkt_hdr *h, uint64_t pn,
                             size_t len, int reason, rudp_tstamp now);
/* Reports |p| declared lost. */
void rudp_sess_trace_lost(rudp_session *s, const rudp_sent_pkt *p, rudp_tstamp now);
/* Reports the recovery figures and, when it changed, the congestion
 * controller's state (after an ACK or a recovery timer). */
void rudp_sess_trace_recovery(rudp_session *s, rudp_tstamp now);
/* Reports the state of |st| when it changed since its last report;
 * |freed|: its record is about to go. */
void rudp_sess_trace_stream(rudp_session *s, rudp_stream *st, bool freed);
/* Reports that the session went from state |from| to its current one. */
void rudp_sess_trace_state(rudp_session *s, uint8_t from);
/* Reports the end of the session, decided with |error|. */
void rudp_sess_trace_closed(rudp_session *s, int error);
/* Reports that the packet size changed from |from|. */
void rudp_sess_trace_mtu(rudp_session *s, uint32_t from);

#endif /* RUDP_SESSION_H */
