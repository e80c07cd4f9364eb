/*
 * rudp.h — the public, sans-IO API of the rudp protocol engine.
 *
 * A session is one end of a reliable, multiplexed transport carried over UDP
 * datagrams: many ordered byte streams (one per TCP connection of the program
 * above) share one congestion-controlled packet flow.  The engine never touches
 * a socket, a clock or an event loop.  The caller drives it:
 *
 *   - rudp_session_read_pkt():    here is a datagram that arrived at time T;
 *   - rudp_session_write_pkt():   give me the next datagram to send at time T;
 *   - rudp_session_deadline():    when must you be called again at the latest;
 *   - rudp_session_handle_timeout(): that time has come;
 *   - rudp_session_poll_event():  what happened to streams and the session;
 *   - rudp_stream_*():            the byte-stream calls of the application.
 *
 * Time is a rudp_tstamp in nanoseconds from an arbitrary origin chosen by the
 * caller; RUDP_TSTAMP_NEVER means "no deadline".  The wire format, the state
 * machines and the timers are specified in docs/PROTOCOL.md.
 *
 * All functions returning int return RUDP_OK (0) or a negative rudp_error;
 * functions returning ssize_t return a non-negative count or a negative
 * rudp_error.  None of them is thread-safe: a session belongs to one thread.
 */
#ifndef RUDP_RUDP_H
#define RUDP_RUDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Time in nanoseconds; the origin is the caller's choice. */
typedef uint64_t rudp_tstamp;
#define RUDP_TSTAMP_NEVER UINT64_MAX
#define RUDP_NS(x) ((rudp_tstamp)(x))
#define RUDP_US(x) ((rudp_tstamp)(x)*1000ull)
#define RUDP_MS(x) ((rudp_tstamp)(x)*1000000ull)
#define RUDP_SEC(x) ((rudp_tstamp)(x)*1000000000ull)

/* Error codes.  rudp_strerror() names each one. */
enum rudp_error {
    RUDP_OK = 0,
    RUDP_ERR_INVAL = -1,         /* bad argument */
    RUDP_ERR_NOMEM = -2,         /* allocation failed */
    RUDP_ERR_NOBUF = -3,         /* output buffer too small */
    RUDP_ERR_MALFORMED = -4,     /* packet or frame does not parse */
    RUDP_ERR_CHECKSUM = -5,      /* packet integrity check failed */
    RUDP_ERR_VERSION = -6,       /* unknown protocol version */
    RUDP_ERR_UNKNOWN_CID = -7,   /* packet for another session */
    RUDP_ERR_DUPLICATE = -8,     /* packet number already received */
    RUDP_ERR_NOT_INITIAL = -9,   /* datagram cannot open a session */
    RUDP_ERR_PROTOCOL = -10,     /* peer violated the protocol */
    RUDP_ERR_FLOW_CONTROL = -11, /* peer exceeded a flow-control limit */
    RUDP_ERR_STREAM_LIMIT = -12, /* peer's stream limit reached; retry later */
    RUDP_ERR_STREAM_STATE = -13, /* call not allowed in this stream state */
    RUDP_ERR_NO_STREAM = -14,    /* no such stream */
    RUDP_ERR_WOULDBLOCK = -15,   /* nothing to read / no room to write now */
    RUDP_ERR_RESET = -16,        /* stream was reset by the peer */
    RUDP_ERR_REFUSED = -17,      /* peer refused the stream or session */
    RUDP_ERR_CLOSED = -18,       /* session is closing or closed */
    RUDP_ERR_TIMEDOUT = -19,     /* peer stopped answering */
    RUDP_ERR_PEER_CLOSED = -20,  /* peer ended the session (GoAway) */
    RUDP_ERR_PEER_RESET = -21,   /* peer lost the session (stateless reset) */
    RUDP_ERR_INTERNAL = -22,     /* engine bug or resource exhaustion */
    RUDP_ERR_AUTH = -23,         /* packet failed authentication (forged, corrupted) */
    RUDP_ERR_RETRY = -24,        /* server: the client must prove its address first */
};

/* A system call of the runtime failed with errno |e| (runtime only; the
 * protocol core never makes one).  RUDP_ERR_SYS_ERRNO recovers |e|. */
#define RUDP_ERR_SYS_BASE (-1000)
#define RUDP_ERR_SYS(e) (RUDP_ERR_SYS_BASE - (e))
#define RUDP_ERR_IS_SYS(err) ((err) <= RUDP_ERR_SYS_BASE)
#define RUDP_ERR_SYS_ERRNO(err) (RUDP_ERR_SYS_BASE - (err))

/* Returns a static, human-readable name for an rudp_error. */
const char *rudp_strerror(int err);

/* Congestion controllers available behind rudp_cc_ops.  BBR (v1, after
 * draft-cardwell-iccrg-bbr-congestion-control-00) paces at its bottleneck
 * bandwidth estimate and does not cut its rate on random loss. */
enum rudp_cc_algo {
    RUDP_CC_NEWRENO = 0,
    RUDP_CC_CUBIC = 1,
    RUDP_CC_BBR = 2,
};

/* Returns the algorithm named |name| ("newreno", "cubic", "bbr") in *algo, or
 * RUDP_ERR_INVAL when the name is unknown. */
int rudp_cc_algo_from_name(const char *name, enum rudp_cc_algo *algo);
const char *rudp_cc_algo_name(enum rudp_cc_algo algo);

/* A peer address, opaque to the engine: it is only stored and compared byte
 * for byte.  The runtime puts a struct sockaddr_in/_in6 in it. */
typedef struct rudp_addr {
    uint32_t len;
    unsigned char bytes[28];
} rudp_addr;

/* A server's resumption ticket (its NEW_TICKET frame): what lets a client
 * send 0-RTT data to it in a later session without a pre-shared key. */
#define RUDP_TICKET_LEN 64
typedef struct rudp_ticket {
    uint8_t psk[32];               /* the key it stands for, known to the client */
    uint8_t blob[RUDP_TICKET_LEN]; /* that key sealed for the server: opaque */
} rudp_ticket;

/* A session's optional trace hook (rudp/trace.h): called with |user| for
 * each protocol event as it happens.  NULL, the default: no trace. */
typedef struct rudp_trace_event rudp_trace_event;
typedef void (*rudp_trace_fn)(void *user, const rudp_trace_event *ev);

/* Settings of one session; start from rudp_settings_default(). */
typedef struct rudp_settings {
    uint32_t max_packet_size;        /* UDP payload per datagram to start with (>= 1200) */
    uint32_t max_udp_payload;        /* largest datagram we accept (advertised; probing
                                        may raise the packet size up to the peer's) */
    uint64_t initial_stream_window;  /* per-stream receive window (256 KiB) */
    uint64_t max_stream_window;      /* auto-tuning ceiling (16 MiB) */
    uint64_t initial_session_window; /* per-session receive window */
    uint64_t max_session_window;     /* auto-tuning ceiling */
    uint64_t stream_send_buffer;     /* bytes a stream may queue unsent (4x in all) */
    uint64_t max_streams;            /* concurrent streams the peer may open */
    rudp_tstamp idle_timeout;        /* silence after which the session dies
                                        (0, the default: silence alone never
                                        kills; see rudp_liveness) */
    rudp_tstamp retry_timeout;       /* unacknowledged stream data dies after
                                        this long without progress (TCP's
                                        tcp_retries2: about 15 minutes) */
    rudp_tstamp keepalive_interval;  /* Ping after this much idleness (0: off) */
    rudp_tstamp handshake_timeout;   /* give up a cold connect after this */
    rudp_tstamp max_ack_delay;       /* delay of ACKs we promise the peer */
    rudp_tstamp initial_rtt;         /* RTT assumed before the first sample */
    enum rudp_cc_algo cc;            /* congestion controller */
    bool pacing;                     /* pace sends (default on) */
    bool psk_set;                    /* |psk| authenticates both ends (RUDP_KEY_FILE) */
    uint8_t psk[32];                 /* the pre-shared key, when psk_set */
    bool ticket_set;                 /* client: resume with |ticket| (no psk_set) */
    rudp_ticket ticket;
    uint8_t secret[32];         /* this endpoint's own secret: reset and retry
                                   tokens (random from rudp_settings_default;
                                   one value for every session of an engine) */
    uint64_t wall_ms;           /* the caller's wall clock (ms since the epoch)
                                   when it makes a session with these; 0: unknown */
    struct rudp_replay *replay; /* server: the memory of openings already seen,
                                   that lets 0-RTT data under the PSK reach the
                                   program at once and a retry token validate
                                   only once (NULL: neither); rudp_replay_new */
    rudp_trace_fn trace;        /* protocol events as they happen (NULL: none) */
    void *trace_user;           /* handed to |trace| */
} rudp_settings;

/* The memory of openings a server accepted early or by a retry token
 * (docs/PROTOCOL.md "Early data under a pre-shared key").  One per listener; |slots| bounds
 * its size (rounded up to a power of two).  Returns NULL on NOMEM. */
typedef struct rudp_replay rudp_replay;
rudp_replay *rudp_replay_new(uint32_t slots);
void rudp_replay_del(rudp_replay *r);

/* Fills |s| with the defaults documented in docs/PROTOCOL.md. */
void rudp_settings_default(rudp_settings *s);

/* Returns RUDP_OK when |s| is usable, RUDP_ERR_INVAL otherwise. */
int rudp_settings_check(const rudp_settings *s);

typedef struct rudp_session rudp_session;

/* What rudp_session_poll_event() reports. */
enum rudp_event_type {
    RUDP_EV_SESSION_ESTABLISHED = 1, /* handshake done (client: SYN-ACK seen) */
    RUDP_EV_SESSION_CLOSED,          /* session over; .error says why */
    RUDP_EV_STREAM_OPENED,           /* the peer opened stream .sid */
    RUDP_EV_STREAM_CONNECTED,        /* the peer accepted our stream .sid */
    RUDP_EV_STREAM_READABLE,         /* data, FIN or reset can be read */
    RUDP_EV_STREAM_WRITABLE,         /* send buffer has room again / acked */
    RUDP_EV_STREAM_RESET,            /* the peer reset stream .sid (.error) */
    RUDP_EV_PEER_LISTENING,          /* client: the server's port gained or lost
                                        its listener (rudp_session_peer_listening) */
};

typedef struct rudp_event {
    enum rudp_event_type type;
    uint64_t sid;
    void *user; /* stream events: the stream's rudp_stream_set_user pointer */
    int error;  /* rudp_error for *_CLOSED and *_RESET, else RUDP_OK */
} rudp_event;

/* Derived stream states (docs/PROTOCOL.md "Stream life cycle"). */
enum rudp_stream_state {
    RUDP_STREAM_CONNECTING = 1, /* opened here, peer has not answered */
    RUDP_STREAM_SYN_RECEIVED,   /* opened by peer, our ACK not yet acknowledged */
    RUDP_STREAM_ESTABLISHED,    /* both directions open */
    RUDP_STREAM_CLOSING,        /* our FIN sent, peer's not received */
    RUDP_STREAM_FIN_WAIT,       /* peer's FIN received, ours not sent */
    RUDP_STREAM_LAST_ACK,       /* both FINs exchanged, ours not acknowledged
                                   or peer's data not all read yet */
    RUDP_STREAM_CLOSED,         /* both directions finished */
    RUDP_STREAM_RESET,          /* aborted by either side */
};

/* Session-wide statistics and path state (TCP_INFO is filled from this). */
typedef struct rudp_session_info {
    int state; /* enum rudp_session_state (internal order) */
    uint64_t local_cid, peer_cid, initial_cid;
    rudp_tstamp srtt, rttvar, min_rtt, latest_rtt;
    uint64_t cwnd, ssthresh, bytes_in_flight;
    uint64_t pacing_rate; /* bytes per second, 0 when not pacing */
    uint64_t pkts_sent, pkts_recv, pkts_lost, pkts_dropped;
    uint64_t pkts_spurious;    /* declared lost, then acknowledged: the path reorders */
    uint64_t pkts_auth_failed; /* sealed datagrams that did not open (forged, corrupted) */
    uint64_t migrations;       /* moves to a new peer address (validated) */
    bool validated; /* the peer's address is proven (rudp_session_is_validated) */
    uint64_t bytes_sent, bytes_recv;
    uint64_t stream_bytes_sent, stream_bytes_retransmitted;
    uint64_t stream_bytes_unacked; /* written by the application, not yet acknowledged */
    uint64_t pto_count_total;
    uint32_t streams_open;  /* stream records still held */
    uint64_t recv_window;   /* the session receive window we advertise */
    uint64_t chunks_in_use; /* buffer chunks held by streams */
    uint32_t max_packet_size;
} rudp_session_info;

typedef struct rudp_stream_info {
    enum rudp_stream_state state;
    uint64_t bytes_written;  /* accepted from the application */
    uint64_t bytes_acked;    /* of those, acknowledged by the peer */
    uint64_t bytes_read;     /* handed to the application */
    uint64_t bytes_readable; /* in order, waiting to be read */
    uint64_t send_window;    /* peer's limit minus what we sent */
    uint64_t recv_window;    /* our current advertised window size */
    int error;               /* why it was reset or failed (rudp_error), else RUDP_OK */
} rudp_stream_info;

/* Creates a client session toward a server.  |seed| seeds the session's PRNG
 * (connection IDs, path challenges): pass real randomness in production and a
 * fixed value in simulation.  Returns NULL on allocation failure or bad
 * settings. */
rudp_session *rudp_session_new_client(const rudp_settings *s, uint64_t seed,
                                      const rudp_addr *peer, rudp_tstamp now);

/* Why a server refused a client before any session existed (the REFUSE
 * packet; docs/PROTOCOL.md "REFUSE"). */
enum rudp_refuse_reason {
    RUDP_REFUSE_NONE = 0,
    RUDP_REFUSE_VERSION = 1,      /* the server speaks another protocol version */
    RUDP_REFUSE_KEY_NEEDED = 2,   /* the server has a pre-shared key, the client none */
    RUDP_REFUSE_NO_KEY = 3,       /* the client has a pre-shared key, the server none */
    RUDP_REFUSE_KEY_MISMATCH = 4, /* both have one, and they differ */
    RUDP_REFUSE_TICKET = 5        /* the server cannot open the client's ticket (the
                                     client then connects without it, not refused) */
};

/* Returns a static description of a refuse reason. */
const char *rudp_refuse_reason_str(int reason);

/* What a server sends back for a datagram that made no session (a REFUSE,
 * a RETRY or a stateless reset); len 0: nothing. */
#define RUDP_REPLY_MAX 128
typedef struct rudp_reply {
    size_t len;
    uint8_t buf[RUDP_REPLY_MAX];
} rudp_reply;

/* A server's look at a datagram that no session claims by its connection
 * ID: a client's valid INITIAL makes a session (returned), its datagram
 * processed as by read_pkt (decrypted in place).  Otherwise returns NULL,
 * with *err saying why and |reply| what to send back to |from|:
 *   RUDP_ERR_RETRY        |busy| and the INITIAL has no valid token: reply
 *                         is a RETRY (no state is kept: SYN cookies);
 *   RUDP_ERR_REFUSED      reply is a REFUSE (pre-shared key mismatch or
 *                         absence on one side, or another version);
 *   RUDP_ERR_UNKNOWN_CID  a sealed packet for a session that is gone: reply
 *                         is a stateless reset;
 *   RUDP_ERR_MALFORMED, RUDP_ERR_AUTH, RUDP_ERR_NOT_INITIAL (too short to
 *                         be an INITIAL, or not one), RUDP_ERR_NOMEM: no
 *                         reply, drop it.
 * A session made from an INITIAL with a valid retry token has its client's
 * address validated already; any other waits for the client's first
 * sealed packet before it reports streams (docs/PROTOCOL.md "Address
 * validation"). */
rudp_session *rudp_session_new_server(const rudp_settings *s, uint64_t seed, uint8_t *pkt,
                                      size_t len, const rudp_addr *from, rudp_tstamp now,
                                      bool busy, rudp_reply *reply, int *err);

/* Frees the session and every stream; no packet is sent. */
void rudp_session_del(rudp_session *sess);

/* Processes one received datagram, decrypting it in place (|pkt| holds
 * garbage afterwards).  Returns RUDP_OK, or the reason the datagram was
 * dropped (RUDP_ERR_MALFORMED, RUDP_ERR_AUTH, RUDP_ERR_VERSION,
 * RUDP_ERR_UNKNOWN_CID, RUDP_ERR_DUPLICATE, RUDP_ERR_CLOSED); dropped
 * datagrams are counted and change nothing.  A REFUSE for a client's
 * connect ends the session with RUDP_ERR_REFUSED (the reason:
 * rudp_session_refuse_reason).  A peer protocol violation closes the
 * session with GoAway(protocol error) and returns RUDP_ERR_PROTOCOL or
 * RUDP_ERR_FLOW_CONTROL. */
int rudp_session_read_pkt(rudp_session *sess, uint8_t *pkt, size_t len,
                          const rudp_addr *from, rudp_tstamp now);

/* Writes the next datagram into |buf| (|cap| >= max_packet_size) and its
 * destination into *to.  Returns its length, 0 when nothing may be sent now
 * (nothing pending, congestion window full, or paced: see deadline), or
 * RUDP_ERR_NOBUF. */
ssize_t rudp_session_write_pkt(rudp_session *sess, uint8_t *buf, size_t cap, rudp_addr *to,
                               rudp_tstamp now);

/* Returns the earliest time the session needs handle_timeout or write_pkt,
 * or RUDP_TSTAMP_NEVER. */
rudp_tstamp rudp_session_deadline(const rudp_session *sess);

/* Runs every timer that expired at |now| (ACK delay, loss, PTO, keepalive,
 * idle, draining).  Always returns RUDP_OK. */
int rudp_session_handle_timeout(rudp_session *sess, rudp_tstamp now);

/* Pops the next event into *ev.  Returns true if one was stored. */
bool rudp_session_poll_event(rudp_session *sess, rudp_event *ev);

/* Starts closing: sends GoAway(|error_code|, 0 = normal) once all streams
 * have finished sending, then drains.  Returns RUDP_OK or RUDP_ERR_CLOSED. */
int rudp_session_close(rudp_session *sess, uint32_t error_code, rudp_tstamp now);

/* This end is going away now (its process exits): GoAway(normal) goes out
 * at once, without waiting for streams, every stream that has not finished
 * fails with RUDP_ERR_CLOSED, and the session drains.  The peer's streams
 * end as after a normal GoAway: bytes already delivered stay readable up to
 * their FIN, writes fail.  Call it once rudp_session_is_settled(), so no
 * byte written here is lost.  Returns RUDP_OK or RUDP_ERR_CLOSED. */
int rudp_session_leave(rudp_session *sess, rudp_tstamp now);

/* The peer is gone: a stateless reset for this session arrived.  Every
 * stream is reset with RUDP_ERR_PEER_RESET and the session closes. */
void rudp_session_on_stateless_reset(rudp_session *sess, rudp_tstamp now);

/* The path reported an error for this session's datagrams (an ICMP port
 * or host unreachable surfacing on a connected UDP socket).  A session not
 * yet established fails with RUDP_ERR_REFUSED, an established one with
 * RUDP_ERR_PEER_RESET: the peer's port is gone. */
void rudp_session_on_path_error(rudp_session *sess, rudp_tstamp now);

/* Tells the session the largest UDP payload the local route allows (from
 * IP_MTU).  The session then probes upward from its packet size (RFC 8899
 * style: a padded PING whose loss costs no congestion response) toward the
 * smaller of this and what the peer accepts.  0 disables probing. */
void rudp_session_set_mtu_ceiling(rudp_session *sess, uint32_t max_udp_payload);

/* Server: tells the client whether a program listens on this session's
 * port (|listening|).  While none does, the client's new streams are
 * refused, and its connects wait for the answer instead of completing on
 * the handshake (docs/PROTOCOL.md "LISTENING").  Sessions start listening;
 * call it before the first rudp_session_write_pkt to say otherwise in the
 * SYN-ACK itself. */
void rudp_session_set_listening(rudp_session *sess, bool listening);

/* Server: returns whether the client has acknowledged the listening state
 * last set (true until rudp_session_set_listening changes it).  A stream
 * the client opened before that may have been opened in the belief that
 * the old state still held: a connect already completed on a warm session. */
bool rudp_session_listening_known(const rudp_session *sess);

/* Client: returns whether the server's port has a listener, as the server
 * last said (true until it says otherwise). */
bool rudp_session_peer_listening(const rudp_session *sess);

/* Returns true for a session this end opened (a client's). */
bool rudp_session_is_client(const rudp_session *sess);

/* Returns the peer's address the session sends to now (it moves with a
 * validated migration). */
rudp_addr rudp_session_peer(const rudp_session *sess);

/* Returns the congestion controller's state (enum rudp_trace_cc_state of
 * rudp/trace.h: slow start, avoidance, recovery, BBR's phases). */
int rudp_session_cc_state(const rudp_session *sess);

/* Returns true once the session is closed and has finished draining: the
 * caller may then rudp_session_del() it. */
bool rudp_session_is_done(const rudp_session *sess);

/* Returns true when the peer has acknowledged everything the streams of
 * this session owe it: every byte written, every FIN and every RST (control
 * frames such as window updates do not count: they matter only to a peer we
 * keep talking to).  A draining or done session is settled: nothing more
 * can be delivered.  O(streams): for the exit flush, not the per-packet
 * path. */
bool rudp_session_is_settled(const rudp_session *sess);

/* Returns true once the handshake has completed. */
bool rudp_session_is_established(const rudp_session *sess);

/* Returns true once the peer's address is validated: a client's always; a
 * server's once the client proved it receives there (its first packet
 * sealed under the handshake's keys, or a retry token). */
bool rudp_session_is_validated(const rudp_session *sess);

/* Client: why the server refused the session (enum rudp_refuse_reason),
 * RUDP_REFUSE_NONE if it did not. */
int rudp_session_refuse_reason(const rudp_session *sess);

/* Client: copies into |t| a resumption ticket the server sent since the
 * last call, and returns true; false when there is none.  Give it as
 * settings.ticket to the next session with that server: its INITIAL then
 * carries 0-RTT data sealed under the ticket's key (docs/PROTOCOL.md
 * "Resumption"). */
bool rudp_session_take_ticket(rudp_session *sess, rudp_ticket *t);

/* Client: true when the session opened with a ticket the server accepted
 * (known once established). */
bool rudp_session_resumed(const rudp_session *sess);

/* Fills |info|; walks every stream (O(streams)): not for the per-packet path. */
void rudp_session_get_info(const rudp_session *sess, rudp_session_info *info);

/* Gives back memory the session holds beyond what it has been using at
 * |now|: the spare stream chunks of its pool no stream needed since the
 * last call, and halves its sent-packet ring and its stream table when they
 * are at most a quarter full.  For a periodic timer (the runtime calls it
 * every second for every session). */
void rudp_session_trim(rudp_session *sess, rudp_tstamp now);

/* Returns true when datagrams addressed to |cid| belong to this session
 * (its own connection ID, or a server's initial one).  O(1). */
bool rudp_session_owns_cid(const rudp_session *sess, uint64_t cid);

/* Opens a locally initiated stream and returns its ID in *sid.  Works before
 * the handshake completes (the SYN and first data then ride in the session's
 * first datagram).  Returns RUDP_ERR_STREAM_LIMIT when the peer allows no
 * more streams now, RUDP_ERR_CLOSED, RUDP_ERR_NOMEM. */
int rudp_stream_open(rudp_session *sess, uint64_t *sid);

/* Queues up to |len| bytes; returns how many were accepted (0 < n <= len), or
 * RUDP_ERR_WOULDBLOCK (send buffer full), RUDP_ERR_STREAM_STATE (write side
 * shut), RUDP_ERR_RESET, RUDP_ERR_NO_STREAM, RUDP_ERR_CLOSED, RUDP_ERR_NOMEM. */
ssize_t rudp_stream_write(rudp_session *sess, uint64_t sid, const void *data, size_t len);

/* Zero-copy write, first half: describes up to |len| bytes of free space at
 * the tail of the send buffer as at most |max| iovecs, in order, for the
 * caller to fill in place (a readv straight from a socket, say).  Nothing
 * is queued until rudp_stream_write_commit, which must come before any
 * other call on |sess| (an acknowledgement processed in between may hand
 * the space back to the pool).  Returns the number of iovecs (> 0),
 * RUDP_ERR_WOULDBLOCK (the send buffer is full), RUDP_ERR_INVAL (|len| or
 * |max| 0), RUDP_ERR_STREAM_STATE (write side shut), RUDP_ERR_RESET,
 * RUDP_ERR_NO_STREAM or RUDP_ERR_NOMEM. */
int rudp_stream_write_reserve(rudp_session *sess, uint64_t sid, size_t len,
                              struct iovec *iov, int max);

/* Zero-copy write, second half: queues the first |n| bytes of the space the
 * last rudp_stream_write_reserve described and ends the reservation; space
 * left unused goes back to the pool, so call it with 0 when the read
 * brought nothing.  Returns RUDP_OK, RUDP_ERR_INVAL (more than was
 * reserved, or no reservation: nothing queued), RUDP_ERR_STREAM_STATE (the
 * write side was shut or reset meanwhile) or RUDP_ERR_NO_STREAM. */
int rudp_stream_write_commit(rudp_session *sess, uint64_t sid, size_t n);

/* Reads up to |len| in-order bytes.  Returns the count, 0 at end of stream
 * (peer's FIN and all bytes read), RUDP_ERR_WOULDBLOCK, RUDP_ERR_RESET,
 * RUDP_ERR_TIMEDOUT / RUDP_ERR_PEER_CLOSED / RUDP_ERR_PEER_RESET when the
 * session died, RUDP_ERR_NO_STREAM. */
ssize_t rudp_stream_read(rudp_session *sess, uint64_t sid, void *buf, size_t len);

/* Zero-copy read: sets *data to the next in-order bytes without consuming
 * them and returns how many are contiguous there (> 0), 0 at end of stream,
 * or the errors of rudp_stream_read.  Valid until the next call on |sess|. */
ssize_t rudp_stream_peek(rudp_session *sess, uint64_t sid, const uint8_t **data);

/* Consumes |n| bytes (at most what peek returned).  Returns RUDP_OK,
 * RUDP_ERR_INVAL or RUDP_ERR_NO_STREAM. */
int rudp_stream_consume(rudp_session *sess, uint64_t sid, size_t n);

/* Returns how many bytes rudp_stream_write would accept now (0 when the
 * send buffer is full or the write side is shut), or RUDP_ERR_NO_STREAM. */
ssize_t rudp_stream_send_room(const rudp_session *sess, uint64_t sid);

/* Half-closes the write side: FIN goes after every queued byte. */
int rudp_stream_shutdown_write(rudp_session *sess, uint64_t sid);

/* Aborts the stream in both directions with RST(|code|). */
int rudp_stream_reset(rudp_session *sess, uint64_t sid, uint32_t code);

/* The application is done with the stream (close()): the write side is shut
 * if it was not, later incoming data is discarded, and the stream's memory is
 * released once the protocol has finished with it.  |sid| is invalid after. */
int rudp_stream_release(rudp_session *sess, uint64_t sid);

int rudp_stream_get_info(const rudp_session *sess, uint64_t sid, rudp_stream_info *info);

/* When a stream gives up on a silent peer (docs/PROTOCOL.md "When a peer is
 * dead"), as TCP's per-socket options say.  All zero is TCP's default: only
 * data left unacknowledged for the session's retry_timeout kills it. */
typedef struct rudp_liveness {
    rudp_tstamp user_timeout; /* TCP_USER_TIMEOUT: unacknowledged data (and,
                                 with keepalive, unanswered probes) die after
                                 this long; 0: retry_timeout */
    rudp_tstamp ka_idle;      /* SO_KEEPALIVE + TCP_KEEPIDLE: probe the peer
                                 after this much silence; 0: no probes */
    rudp_tstamp ka_intvl;     /* TCP_KEEPINTVL: between probes */
    uint32_t ka_cnt;          /* TCP_KEEPCNT: unanswered probes before death */
} rudp_liveness;

/* Sets stream |sid|'s liveness options.  Returns RUDP_OK,
 * RUDP_ERR_NO_STREAM or RUDP_ERR_INVAL (keepalive without an interval or
 * a count). */
int rudp_stream_set_liveness(rudp_session *sess, uint64_t sid, const rudp_liveness *live,
                             rudp_tstamp now);

/* The caller did not run for |gap| (its process was stopped): time it
 * could not spend listening is not held against the peer. */
void rudp_session_on_pause(rudp_session *sess, rudp_tstamp gap);

/* Attaches an opaque pointer of the caller to stream |sid| (O(1) lookup
 * from events).  Returns RUDP_OK or RUDP_ERR_NO_STREAM. */
int rudp_stream_set_user(rudp_session *sess, uint64_t sid, void *user);

/* Returns the pointer set with rudp_stream_set_user, or NULL. */
void *rudp_stream_get_user(const rudp_session *sess, uint64_t sid);

/* Wire helpers for the runtime's demultiplexer (no session needed). */

/* Reads the destination connection ID of a datagram of any version without
 * checking it (bytes 2..9 in every version).  Returns RUDP_OK or
 * RUDP_ERR_MALFORMED (shorter than 10 bytes). */
int rudp_packet_peek_cid(const uint8_t *pkt, size_t len, uint64_t *cid);

/* Memory shared by every session of the process. */

/* Gives back to the system the pages of stream buffer memory that stayed
 * unused since the previous call, and unmaps what stayed wholly unused.
 * For a periodic timer (the runtime calls it every second).  Returns the
 * bytes given back. */
size_t rudp_memory_trim(void);

#ifdef __cplusplus
}
#endif
#endif /* RUDP_RUDP_H */
