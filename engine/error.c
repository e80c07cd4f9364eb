/*
 * error.c — names for the rudp_error codes.
 *
 * Every function of the engine reports failure as a negative enum rudp_error
 * (include/rudp/rudp.h), never as a bare -1 or a string buffer, in the manner
 * of ngtcp2's ngtcp2_strerror.  This file turns a code into a short, static,
 * human-readable name for logs and for the runtime's diagnostics.  The wire
 * helpers that rudp.h exposes for the demultiplexer live with the rest of the
 * codec in wire.c.
 */
#include "rudp/rudp.h"

/* Returns a static name for |err|, or "unknown error" when |err| is not an
 * rudp_error value ("system call failed" for any RUDP_ERR_SYS code: the
 * caller has the errno for strerror). */
const char *rudp_strerror(int err) {
    switch (err) {
    case RUDP_OK:
        return "success";
    case RUDP_ERR_INVAL:
        return "invalid argument";
    case RUDP_ERR_NOMEM:
        return "out of memory";
    case RUDP_ERR_NOBUF:
        return "output buffer too small";
    case RUDP_ERR_MALFORMED:
        return "malformed packet or frame";
    case RUDP_ERR_CHECKSUM:
        return "packet checksum mismatch";
    case RUDP_ERR_VERSION:
        return "unknown protocol version";
    case RUDP_ERR_UNKNOWN_CID:
        return "unknown connection ID";
    case RUDP_ERR_DUPLICATE:
        return "duplicate packet";
    case RUDP_ERR_NOT_INITIAL:
        return "datagram cannot open a session";
    case RUDP_ERR_PROTOCOL:
        return "protocol violation by peer";
    case RUDP_ERR_FLOW_CONTROL:
        return "flow-control limit exceeded by peer";
    case RUDP_ERR_STREAM_LIMIT:
        return "stream limit reached";
    case RUDP_ERR_STREAM_STATE:
        return "operation not allowed in this stream state";
    case RUDP_ERR_NO_STREAM:
        return "no such stream";
    case RUDP_ERR_WOULDBLOCK:
        return "operation would block";
    case RUDP_ERR_RESET:
        return "stream reset by peer";
    case RUDP_ERR_REFUSED:
        return "refused by peer";
    case RUDP_ERR_CLOSED:
        return "session closed";
    case RUDP_ERR_TIMEDOUT:
        return "session timed out";
    case RUDP_ERR_PEER_CLOSED:
        return "session closed by peer";
    case RUDP_ERR_PEER_RESET:
        return "session lost by peer (stateless reset)";
    case RUDP_ERR_INTERNAL:
        return "internal error";
    case RUDP_ERR_AUTH:
        return "packet failed authentication";
    case RUDP_ERR_RETRY:
        return "address validation asked for (retry)";
    default:
        return RUDP_ERR_IS_SYS(err) ? "system call failed" : "unknown error";
    }
}

const char *rudp_refuse_reason_str(int reason) {
    switch (reason) {
    case RUDP_REFUSE_VERSION:
        return "the server speaks another protocol version";
    case RUDP_REFUSE_KEY_NEEDED:
        return "the server requires a pre-shared key (RUDP_KEY_FILE)";
    case RUDP_REFUSE_NO_KEY:
        return "the server has no pre-shared key, this end has one (RUDP_KEY_FILE)";
    case RUDP_REFUSE_KEY_MISMATCH:
        return "pre-shared key mismatch (RUDP_KEY_FILE differs)";
    case RUDP_REFUSE_TICKET:
        return "the server does not know this end's resumption ticket";
    default:
        return "not refused";
    }
}
