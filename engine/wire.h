/*
 * wire.h — packet and frame codec (docs/PROTOCOL.md, "Wire format").
 *
 * A datagram is one packet: a clear header (version, type, destination
 * connection ID, and per type a packet number, a key share, a token) and,
 * for the three types that carry frames, the frames sealed with an AEAD
 * whose associated data is the header (engine/crypto.c, engine/handshake.c).
 * engine/packet.c parses and writes the headers; engine/wire.c the frames.
 * Every multi-byte field is big-endian.  Decoders never read past the given
 * length and reject truncated, oversized, unknown and out-of-range input
 * with RUDP_ERR_MALFORMED; encoders return RUDP_ERR_NOBUF when the result
 * does not fit.
 */
#ifndef RUDP_WIRE_H
#define RUDP_WIRE_H

#include "crypto.h"
#include "rudp/rudp.h"

#define RUDP_VERSION 3

enum rudp_pkt_type {
    RUDP_PKT_INITIAL = 0,         /* client's first flight: key share, SESSION SYN */
    RUDP_PKT_HANDSHAKE = 1,       /* server, until the client is validated: + its share */
    RUDP_PKT_PROTECTED = 2,       /* everything else */
    RUDP_PKT_RETRY = 3,           /* server: prove your address with this token */
    RUDP_PKT_REFUSE = 4,          /* server: no session, and why */
    RUDP_PKT_STATELESS_RESET = 5, /* no session for this connection ID any more */
};

#define RUDP_PREFIX_LEN 10      /* version, type, dcid: every packet starts so */
#define RUDP_HDR_LEN 18         /* PROTECTED: + packet number */
#define RUDP_HS_HDR_LEN 50      /* HANDSHAKE: + the server's key share */
#define RUDP_INITIAL_HDR_LEN 53 /* INITIAL: + the client's share, flags, token length */
#define RUDP_MAX_TOKEN 64       /* longest token (retry) */
#define RUDP_RETRY_MIN_LEN 28   /* prefix, token length, tag (an empty token) */
#define RUDP_REFUSE_LEN 12      /* prefix, reason, the sender's version */
#define RUDP_RESET_LEN 26       /* prefix, reset token */
#define RUDP_MIN_PACKET_SIZE 1200
#define RUDP_MIN_INITIAL 1200 /* a client pads its INITIAL datagrams to this */

/* INITIAL flags. */
#define RUDP_INITIAL_F_PSK 0x01 /* sealed under a pre-shared key */
#define RUDP_INITIAL_F_TICKET                                                              \
    0x02 /* the token is a resumption ticket, whose key                                    \
            seals it (docs/PROTOCOL.md "Resumption") */

enum rudp_frame_type {
    RUDP_FRAME_PADDING = 0x00,
    RUDP_FRAME_PING = 0x01,
    RUDP_FRAME_ACK = 0x02,
    RUDP_FRAME_SESSION = 0x03,
    RUDP_FRAME_DATA = 0x04,
    RUDP_FRAME_WINDOW_UPDATE = 0x05,
    RUDP_FRAME_RST = 0x06,
    RUDP_FRAME_GOAWAY = 0x07,
    RUDP_FRAME_MAX_STREAMS = 0x08,
    RUDP_FRAME_PATH_CHALLENGE = 0x09,
    RUDP_FRAME_PATH_RESPONSE = 0x0a,
    RUDP_FRAME_LISTENING = 0x0b,
    RUDP_FRAME_NEW_TICKET = 0x0c,
};

/* Flags of SESSION and DATA frames (yamux vocabulary). */
#define RUDP_FLAG_SYN 0x01
#define RUDP_FLAG_ACK 0x02
#define RUDP_FLAG_FIN 0x04    /* DATA only */
#define RUDP_FLAG_CLOSED 0x08 /* SESSION SYN-ACK only: nothing listens on the port */

/* GoAway error codes. */
enum rudp_goaway_code {
    RUDP_GOAWAY_NORMAL = 0,
    RUDP_GOAWAY_PROTOCOL = 1,
    RUDP_GOAWAY_INTERNAL = 2,
    RUDP_GOAWAY_IDLE = 3,
};

/* RST error codes. */
enum rudp_rst_code {
    RUDP_RST_ABORT = 0,   /* application abort (SO_LINGER {1,0}, close) */
    RUDP_RST_REFUSED = 1, /* no listener / stream limit */
    RUDP_RST_INTERNAL = 2,
};

/* A parsed packet header.  Pointers point into the datagram. */
typedef struct rudp_pkt_hdr {
    uint8_t version;
    uint8_t type;
    uint64_t dcid;
    uint64_t pn;          /* INITIAL, HANDSHAKE, PROTECTED */
    const uint8_t *share; /* INITIAL, HANDSHAKE: the sender's X25519 key */
    uint8_t flags;        /* INITIAL: RUDP_INITIAL_F_* */
    const uint8_t *token; /* INITIAL (a retry token, maybe empty), RETRY */
    uint16_t token_len;
    const uint8_t *tag;    /* RETRY: integrity tag; STATELESS_RESET: reset token */
    uint8_t reason;        /* REFUSE: enum rudp_refuse_reason */
    uint8_t their_version; /* REFUSE: the version the refuser speaks */
    size_t len;            /* bytes of clear header: the AEAD's associated data */
} rudp_pkt_hdr;

#define RUDP_ACK_MAX_RANGES 32

/* One acknowledged range, inclusive at both ends. */
typedef struct rudp_ack_range {
    uint64_t smallest, largest;
} rudp_ack_range;

/* ACK: ranges[0].largest is the largest acknowledged packet number; ranges
 * are in strictly descending order with gaps of at least one packet. */
typedef struct rudp_ack_frame {
    uint32_t ack_delay_us;
    uint32_t nranges; /* 1..RUDP_ACK_MAX_RANGES */
    rudp_ack_range ranges[RUDP_ACK_MAX_RANGES];
} rudp_ack_frame;

/* SESSION: handshake, carrying the sender's connection ID and transport
 * parameters.  Client sends SYN, server answers SYN|ACK. */
typedef struct rudp_session_frame {
    uint8_t flags;
    uint64_t cid;
    uint32_t initial_stream_window;
    uint64_t initial_session_window;
    uint64_t max_streams;
    uint32_t idle_timeout_ms;
    uint16_t max_ack_delay_ms;
    uint16_t max_packet_size;
    uint8_t reset_token[RUDP_TOKEN_LEN]; /* server: the token of |cid|; client: zeros */
    uint64_t time_ms; /* client: its wall clock when it began (early data); server: 0 */
} rudp_session_frame;

typedef struct rudp_data_frame {
    uint8_t flags;
    uint64_t sid;
    uint64_t offset;
    uint16_t len;
    const uint8_t *data; /* decode: points into the packet */
} rudp_data_frame;

typedef struct rudp_window_frame {
    uint64_t sid; /* 0: the session */
    uint64_t max_data;
} rudp_window_frame;

typedef struct rudp_rst_frame {
    uint64_t sid;
    uint32_t code;
    uint64_t final_size;
} rudp_rst_frame;

typedef struct rudp_frame {
    uint8_t type;
    union {
        rudp_ack_frame ack;
        rudp_session_frame session;
        rudp_data_frame data;
        rudp_window_frame window;
        rudp_rst_frame rst;
        uint32_t goaway_code;
        uint64_t max_streams;
        uint64_t path_data; /* PATH_CHALLENGE / PATH_RESPONSE */
        uint8_t listening;  /* LISTENING: 1 the port has a listener, 0 none */
        rudp_ticket ticket; /* NEW_TICKET: the key, then the blob */
    } u;
} rudp_frame;

/* The most frames one packet may carry, PADDING and PING not counted: a
 * packet with more is malformed.  A sender needs at most 13 (8 recorded
 * frames, the ACK, path challenge and response, two PINGs). */
#define RUDP_MAX_FRAMES 32

/* A datagram decoded whole, once: its header and its frames in order
 * (PADDING and PING are not stored; they only make it ack-eliciting, and
 * are counted for the trace hook). */
typedef struct rudp_decoded_pkt {
    rudp_pkt_hdr hdr;
    uint32_t nframes;
    bool eliciting;       /* a frame other than ACK and PADDING */
    bool has_stream_data; /* a DATA frame carries at least one byte */
    uint16_t pings;       /* PING frames */
    uint32_t padding;     /* PADDING bytes */
    rudp_frame frames[RUDP_MAX_FRAMES];
} rudp_decoded_pkt;

/* Encoded sizes. */
/* DATA: type, flags, varint sid, varint offset, u16 len: 6 to 20 bytes. */
#define RUDP_DATA_FRAME_MIN_OVERHEAD 6
#define RUDP_DATA_FRAME_MAX_OVERHEAD 20
#define RUDP_SESSION_FRAME_LEN 62
#define RUDP_WINDOW_FRAME_LEN 17
#define RUDP_RST_FRAME_LEN 21
#define RUDP_GOAWAY_FRAME_LEN 5
#define RUDP_MAX_STREAMS_FRAME_LEN 9
#define RUDP_PATH_FRAME_LEN 9
#define RUDP_LISTENING_FRAME_LEN 2
#define RUDP_TICKET_FRAME_LEN (1 + 32 + RUDP_TICKET_LEN)

/* Parses the clear header of a datagram.  Returns RUDP_OK,
 * RUDP_ERR_VERSION (another version: version, type and dcid are filled in
 * when the datagram has 10 bytes) or RUDP_ERR_MALFORMED (too short for its
 * type, unknown type, a token longer than RUDP_MAX_TOKEN). */
int rudp_wire_parse(const uint8_t *buf, size_t len, rudp_pkt_hdr *h);

/* Writes a PROTECTED header; returns RUDP_HDR_LEN or RUDP_ERR_NOBUF. */
ssize_t rudp_wire_encode_hdr(uint8_t *buf, size_t cap, uint64_t dcid, uint64_t pn);

/* Writes a HANDSHAKE header with the server's key share; returns
 * RUDP_HS_HDR_LEN or RUDP_ERR_NOBUF. */
ssize_t rudp_wire_encode_hs_hdr(uint8_t *buf, size_t cap, uint64_t dcid, uint64_t pn,
                                const uint8_t share[RUDP_SHARE_LEN]);

/* Writes an INITIAL header; returns its length (RUDP_INITIAL_HDR_LEN +
 * |tlen|) or RUDP_ERR_NOBUF. */
ssize_t rudp_wire_encode_initial_hdr(uint8_t *buf, size_t cap, uint64_t dcid, uint64_t pn,
                                     const uint8_t share[RUDP_SHARE_LEN], uint8_t flags,
                                     const uint8_t *token, uint16_t tlen);

/* Writes a RETRY carrying |token| up to (not including) its tag; returns
 * its length so far (the caller appends RUDP_TAG_LEN bytes) or
 * RUDP_ERR_NOBUF. */
ssize_t rudp_wire_encode_retry(uint8_t *buf, size_t cap, uint64_t dcid,
                               const uint8_t *token, uint16_t tlen);

/* Writes a REFUSE; returns RUDP_REFUSE_LEN or RUDP_ERR_NOBUF. */
ssize_t rudp_wire_encode_refuse(uint8_t *buf, size_t cap, uint64_t dcid, uint8_t reason);

/* Writes a stateless reset for |dcid| with its reset token; returns
 * RUDP_RESET_LEN or RUDP_ERR_NOBUF. */
ssize_t rudp_wire_encode_reset(uint8_t *buf, size_t cap, uint64_t dcid,
                               const uint8_t token[RUDP_TOKEN_LEN]);

/* Decodes every frame of a (decrypted) payload into |d| (its header is the
 * caller's).  Returns RUDP_OK, or RUDP_ERR_MALFORMED (a frame that does not
 * decode, more than RUDP_MAX_FRAMES, or no frame at all).  DATA frames
 * point into |p|. */
int rudp_wire_decode_frames(const uint8_t *p, size_t len, rudp_decoded_pkt *d);

/* Decodes the frame at the start of |p|.  Returns the bytes it occupies (> 0)
 * or RUDP_ERR_MALFORMED: truncated, unknown type, invalid flags, DATA whose
 * offset + len overflows 2^62, ACK ranges not descending or more than
 * RUDP_ACK_MAX_RANGES, a PADDING run counts as one frame to the end of the
 * run.  Stream ID 0 is rejected in DATA and RST. */
ssize_t rudp_wire_decode_frame(const uint8_t *p, size_t len, rudp_frame *f);

/* Encodes |f| at |p|.  Returns the bytes written or RUDP_ERR_NOBUF; DATA
 * copies f->u.data.len bytes from f->u.data.data.  An ACK that does not fit
 * whole is not shortened: use rudp_wire_ack_fit first. */
ssize_t rudp_wire_encode_frame(uint8_t *p, size_t cap, const rudp_frame *f);

/* Returns the encoded size of |f|, or 0 when it cannot be encoded. */
size_t rudp_wire_frame_len(const rudp_frame *f);

/* Returns the bytes a DATA frame of stream |sid| at |offset| takes besides
 * its data (sid and offset below 2^62). */
size_t rudp_wire_data_overhead(uint64_t sid, uint64_t offset);

/* Drops the oldest (lowest) ranges of |ack| until it fits in |cap| bytes;
 * returns false when not even one range fits. */
bool rudp_wire_ack_fit(rudp_ack_frame *ack, size_t cap);

/* Big-endian helpers shared by the codec and its tests. */
static inline void rudp_put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void rudp_put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void rudp_put64(uint8_t *p, uint64_t v) {
    rudp_put32(p, (uint32_t)(v >> 32));
    rudp_put32(p + 4, (uint32_t)v);
}
static inline uint16_t rudp_get16(const uint8_t *p) {
    return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t rudp_get32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) |
           (uint32_t)p[3];
}
static inline uint64_t rudp_get64(const uint8_t *p) {
    return ((uint64_t)rudp_get32(p) << 32) | rudp_get32(p + 4);
}

#endif /* RUDP_WIRE_H */
