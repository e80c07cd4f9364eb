/*
 * trace.h — what a session tells an optional trace hook as things happen:
 * packets sent, received, dropped and declared lost, the recovery figures
 * and the congestion controller's state, streams and the session changing
 * state.  The runtime's qlog writer (engine/rt_qlog.c, docs/QLOG.md) is the
 * hook of the product; tests may set their own.
 *
 * The protocol core stays sans-IO: it fills a rudp_trace_event and calls
 * rudp_settings.trace with rudp_settings.trace_user; it formats nothing,
 * writes nothing and reads no clock (an event's time is the |now| the caller
 * handed to the call that caused it).  With no hook set, each place that
 * could report costs one predictable branch and nothing else.
 *
 * The hook runs inside the session call that caused the event
 * (rudp_session_read_pkt, _write_pkt, _handle_timeout, a stream call, the
 * constructors) and must not call back into that session.  Pointers in an
 * event are valid only during the call.
 */
#ifndef RUDP_TRACE_H
#define RUDP_TRACE_H

#include "rudp/rudp.h"

#ifdef __cplusplus
extern "C" {
#endif

enum rudp_trace_type {
    RUDP_TRACE_PACKET_SENT = 1, /* .u.pkt */
    RUDP_TRACE_PACKET_RECEIVED, /* .u.pkt (frames: none for an unsealed packet) */
    RUDP_TRACE_PACKET_LOST,     /* .u.pkt (frames: only the DATA it carried) */
    RUDP_TRACE_PACKET_DROPPED,  /* .u.drop */
    RUDP_TRACE_METRICS,         /* .u.metrics, after an ACK or a recovery timer */
    RUDP_TRACE_CC_STATE,        /* .u.cc */
    RUDP_TRACE_STREAM_STATE,    /* .u.stream */
    RUDP_TRACE_SESSION_STATE,   /* .u.session */
    RUDP_TRACE_SESSION_CLOSED,  /* .u.closed: the end is decided (once) */
    RUDP_TRACE_MTU,             /* .u.mtu: the packet size changed */
};

/* A packet's type (the wire's, docs/PROTOCOL.md "Packets"). */
enum rudp_trace_pkt_type {
    RUDP_TRACE_PKT_INITIAL = 0,
    RUDP_TRACE_PKT_HANDSHAKE = 1,
    RUDP_TRACE_PKT_PROTECTED = 2,
    RUDP_TRACE_PKT_RETRY = 3,
    RUDP_TRACE_PKT_REFUSE = 4,
    RUDP_TRACE_PKT_STATELESS_RESET = 5,
    RUDP_TRACE_PKT_UNKNOWN = 0xff, /* a dropped datagram whose header did not parse */
};

/* A frame's type (the wire's, docs/PROTOCOL.md "Frames"). */
enum rudp_trace_frame_type {
    RUDP_TRACE_FRAME_PADDING = 0x00,        /* .len: bytes of padding in the packet */
    RUDP_TRACE_FRAME_PING = 0x01,           /* .len: how many */
    RUDP_TRACE_FRAME_ACK = 0x02,            /* .code: ACK delay in µs; .ranges */
    RUDP_TRACE_FRAME_SESSION = 0x03,        /* .flags; .value: the sender's connection ID */
    RUDP_TRACE_FRAME_DATA = 0x04,           /* .sid, .value: offset, .len, .flags */
    RUDP_TRACE_FRAME_WINDOW_UPDATE = 0x05,  /* .sid (0: the session), .value: limit */
    RUDP_TRACE_FRAME_RST = 0x06,            /* .sid, .code, .value: final size */
    RUDP_TRACE_FRAME_GOAWAY = 0x07,         /* .code */
    RUDP_TRACE_FRAME_MAX_STREAMS = 0x08,    /* .value */
    RUDP_TRACE_FRAME_PATH_CHALLENGE = 0x09, /* .value: the data */
    RUDP_TRACE_FRAME_PATH_RESPONSE = 0x0a,  /* .value: the data */
    RUDP_TRACE_FRAME_LISTENING = 0x0b,      /* .code: 1 a listener, 0 none */
    RUDP_TRACE_FRAME_NEW_TICKET = 0x0c,     /* nothing: its contents are secret */
};

/* Flags of DATA and SESSION frames. */
#define RUDP_TRACE_FLAG_SYN 0x01
#define RUDP_TRACE_FLAG_ACK 0x02
#define RUDP_TRACE_FLAG_FIN 0x04
#define RUDP_TRACE_FLAG_CLOSED 0x08

/* One acknowledged range, inclusive. */
typedef struct rudp_trace_range {
    uint64_t smallest, largest;
} rudp_trace_range;

typedef struct rudp_trace_frame {
    uint8_t type;  /* enum rudp_trace_frame_type */
    uint8_t flags; /* RUDP_TRACE_FLAG_* */
    uint16_t len;
    uint32_t code;
    uint64_t sid;
    uint64_t value;
    uint32_t nranges;               /* ACK */
    const rudp_trace_range *ranges; /* ACK: largest first */
} rudp_trace_frame;

/* Why a packet was sent or declared lost. */
enum rudp_trace_trigger {
    RUDP_TRACE_TRIGGER_NONE = 0,
    RUDP_TRACE_TRIGGER_PTO_PROBE,        /* sent: a probe timeout's probe */
    RUDP_TRACE_TRIGGER_PACKET_THRESHOLD, /* lost: 3 later packets acknowledged */
    RUDP_TRACE_TRIGGER_TIME_THRESHOLD,   /* lost: 9/8 RTT passed, widened by reordering */
};

#define RUDP_TRACE_MAX_FRAMES 36 /* a packet's frames, PADDING and PING included */
#define RUDP_TRACE_MAX_RANGES 32

typedef struct rudp_trace_packet {
    uint8_t type;    /* enum rudp_trace_pkt_type */
    uint8_t trigger; /* enum rudp_trace_trigger */
    bool mtu_probe;  /* a padded packet-size probe (docs/PROTOCOL.md) */
    uint64_t pn;
    uint64_t dcid; /* the destination connection ID in its header */
    uint32_t size; /* datagram bytes */
    uint32_t nframes;
    uint32_t nranges; /* of |ranges| in use */
    rudp_trace_frame frames[RUDP_TRACE_MAX_FRAMES];
    rudp_trace_range ranges[RUDP_TRACE_MAX_RANGES]; /* the ACK frames' */
} rudp_trace_packet;

/* The congestion controller's state. */
enum rudp_trace_cc_state {
    RUDP_TRACE_CC_SLOW_START = 1,
    RUDP_TRACE_CC_CONGESTION_AVOIDANCE,
    RUDP_TRACE_CC_RECOVERY, /* after a loss, until a packet sent since is acknowledged */
    RUDP_TRACE_CC_BBR_STARTUP,
    RUDP_TRACE_CC_BBR_DRAIN,
    RUDP_TRACE_CC_BBR_PROBE_BW,
    RUDP_TRACE_CC_BBR_PROBE_RTT,
};

/* A session's state (docs/PROTOCOL.md "Session states"). */
enum rudp_trace_session_state {
    RUDP_TRACE_SESSION_NONE = 0, /* .from of the first event: the session was made */
    RUDP_TRACE_SESSION_CONNECTING,
    RUDP_TRACE_SESSION_ESTABLISHED,
    RUDP_TRACE_SESSION_CLOSING,
    RUDP_TRACE_SESSION_DRAINING,
    RUDP_TRACE_SESSION_DONE,
};

/* A stream's .from or .to besides enum rudp_stream_state: it had no record
 * yet (.from), or its record was freed (.to). */
#define RUDP_TRACE_STREAM_NONE 0

typedef struct rudp_trace_event {
    enum rudp_trace_type type;
    rudp_tstamp now;
    union {
        const rudp_trace_packet *pkt;
        struct {
            uint8_t type; /* enum rudp_trace_pkt_type */
            uint64_t pn;  /* UINT64_MAX when not known */
            uint32_t size;
            int reason; /* rudp_error: why (DUPLICATE, AUTH, MALFORMED...) */
        } drop;
        struct {
            rudp_tstamp min_rtt, smoothed_rtt, latest_rtt, rtt_variance;
            uint64_t cwnd, ssthresh; /* bytes; ssthresh UINT64_MAX: not set */
            uint64_t bytes_in_flight;
            uint64_t pacing_rate; /* bytes per second, 0: not pacing */
            uint32_t pto_count;   /* consecutive probe timeouts */
        } metrics;
        struct {
            uint8_t from, to; /* enum rudp_trace_cc_state; from 0: the first report */
        } cc;
        struct {
            uint64_t sid;
            uint8_t from, to; /* enum rudp_stream_state or RUDP_TRACE_STREAM_NONE */
            bool peer_reset;  /* RESET: the peer aborted it (else we did) */
        } stream;
        struct {
            uint8_t from, to; /* enum rudp_trace_session_state */
        } session;
        struct {
            int error; /* rudp_error; RUDP_OK: closed by this end */
        } closed;
        struct {
            uint32_t from, to; /* UDP payload bytes */
        } mtu;
    } u;
} rudp_trace_event;

#ifdef __cplusplus
}
#endif
#endif /* RUDP_TRACE_H */
