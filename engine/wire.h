/*
 * wire.h — packet and frame codec (docs/PROTOCOL.md, "Wire format").
 *
 * A datagram is a header, any number of frames, and a CRC-32C trailer over
 * everything before it.  Every multi-byte field is big-endian and of fixed
 * width.  Decoders never read past the given length and reject truncated,
 * oversized, unknown and out-of-range input with RUDP_ERR_MALFORMED;
 * encoders return RUDP_ERR_NOBUF when the frame does not fit.
 */
#ifndef RUDP_WIRE_H
#define RUDP_WIRE_H

#include "rudp/rudp.h"

#define RUDP_VERSION 1

enum rudp_pkt_type {
    RUDP_PKT_REGULAR = 0,
    RUDP_PKT_STATELESS_RESET = 1,
};

#define RUDP_HDR_LEN 18   /* version, type, dcid, packet number */
#define RUDP_RESET_LEN 14 /* version, type, cid, crc */
#define RUDP_CRC_LEN 4
#define RUDP_MIN_PACKET_SIZE 1200

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

typedef struct rudp_pkt_hdr {
    uint8_t version;
    uint8_t type;
    uint64_t dcid;
    uint64_t pn; /* unused in a stateless reset */
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
    } u;
} rudp_frame;

/* The most frames one packet may carry, PADDING and PING not counted: a
 * packet with more is malformed.  A sender needs at most 13 (8 recorded
 * frames, the ACK, path challenge and response, two PINGs). */
#define RUDP_MAX_FRAMES 32

/* A datagram decoded whole, once: its header and its frames in order
 * (PADDING and PING are not stored; they only make it ack-eliciting). */
typedef struct rudp_decoded_pkt {
    rudp_pkt_hdr hdr;
    uint32_t nframes;
    bool eliciting;       /* a frame other than ACK and PADDING */
    bool has_stream_data; /* a DATA frame carries at least one byte */
    rudp_frame frames[RUDP_MAX_FRAMES];
} rudp_decoded_pkt;

/* Encoded sizes. */
/* DATA: type, flags, varint sid, varint offset, u16 len: 6 to 20 bytes. */
#define RUDP_DATA_FRAME_MIN_OVERHEAD 6
#define RUDP_DATA_FRAME_MAX_OVERHEAD 20
#define RUDP_SESSION_FRAME_LEN 38
#define RUDP_WINDOW_FRAME_LEN 17
#define RUDP_RST_FRAME_LEN 21
#define RUDP_GOAWAY_FRAME_LEN 5
#define RUDP_MAX_STREAMS_FRAME_LEN 9
#define RUDP_PATH_FRAME_LEN 9
#define RUDP_LISTENING_FRAME_LEN 2

/* Writes the regular packet header at |buf|; returns RUDP_HDR_LEN, or
 * RUDP_ERR_NOBUF when |cap| is too small. */
ssize_t rudp_wire_encode_hdr(uint8_t *buf, size_t cap, uint64_t dcid, uint64_t pn);

/* Appends the CRC trailer to a packet of |len| bytes built in |buf|; returns
 * the final length (len + 4), or RUDP_ERR_NOBUF. */
ssize_t rudp_wire_seal(uint8_t *buf, size_t len, size_t cap);

/* Checks version and CRC of a whole datagram and decodes its header.  On
 * success sets *payload and *payload_len to the frame area (regular packets;
 * empty for a stateless reset).  Returns RUDP_OK, RUDP_ERR_MALFORMED (short,
 * unknown type), RUDP_ERR_VERSION or RUDP_ERR_CHECKSUM. */
int rudp_wire_decode_pkt(const uint8_t *buf, size_t len, rudp_pkt_hdr *hdr,
                         const uint8_t **payload, size_t *payload_len);

/* Checks and decodes a whole datagram in one pass: version, CRC, header and
 * every frame.  Returns RUDP_OK (a stateless reset has no frames), or the
 * first reason it is refused: RUDP_ERR_MALFORMED (also more than
 * RUDP_MAX_FRAMES frames), RUDP_ERR_VERSION, RUDP_ERR_CHECKSUM.  DATA
 * frames point into |buf|. */
int rudp_wire_decode(const uint8_t *buf, size_t len, rudp_decoded_pkt *d);

/* Writes a complete stateless reset naming |cid|; returns RUDP_RESET_LEN or
 * RUDP_ERR_NOBUF. */
ssize_t rudp_wire_encode_reset(uint8_t *buf, size_t cap, uint64_t cid);

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
