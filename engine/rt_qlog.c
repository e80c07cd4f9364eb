/*
 * rt_qlog.c — one qlog file per session when RUDP_QLOG_DIR names a
 * directory: the session's trace hook (rudp/trace.h) turned into the
 * JSON-SEQ serialization of qlog (docs/QLOG.md lists the events and their
 * fields).
 *
 * Format.  The file is RFC 7464 JSON text sequences, as the qlog main
 * schema's QlogFileSeq has it: every record is RS (0x1e), one JSON object,
 * LF.  The first record is the header ("qlog_version" "0.3", "qlog_format"
 * "JSON-SEQ", the vantage point, the original connection ID as group_id
 * and a reference time in ms since the epoch); every later one an event
 * with "time" in ms relative to it, "name" and "data".  Version 0.3 with
 * the event names of draft-ietf-quic-qlog-quic-events-05 (transport:,
 * recovery:, connectivity:) is what qvis reads; later drafts renamed the
 * category and bumped the version to 0.4, which qvis refuses.  rudp's own
 * frames and states keep rudp names where QUIC's do not fit.
 *
 * Buffering.  Records go into a per-session buffer, written out when it
 * passes a threshold, on the runtime's 1 s tick and when the trace ends
 * (the session is destroyed, or the process leaves: rt_sess_leave_all), so
 * a transfer costs a write() per few dozen packets.  A record that would
 * not fit is dropped whole rather than cut (counted in the last record).
 * Events that come before the file exists (a server session is made by the
 * datagram it answers) wait in the buffer: the header is written first.
 *
 * The last record, "rudp:session_summary", carries the session's own
 * counters (rudp_session_info): a reader can check the events against it.
 *
 * System calls: the file is opened with open(2) by name, which the shim
 * does not interpose (shim/shim.h RUDP_REAL_FUNCS); write and close, which
 * it does, go through rt_sys.  The descriptor lives in the engine's high
 * range, close-on-exec, like the engine's sockets.  A write error ends the
 * trace with one log line; the session goes on.
 */
#include "rt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rudp/trace.h"

#define QLOG_BUF (32 * 1024)
#define QLOG_FLUSH_AT (20 * 1024) /* leaves room for the largest record (~8 KiB) */
#define QLOG_RS '\x1e'

struct rt_qlog {
    int fd;         /* -1 until started, and after a failure */
    bool client;    /* the vantage point */
    bool started;   /* the file was opened (or failed to) */
    bool finished;  /* the summary is written: later events are ignored */
    bool failed;    /* nothing more is written */
    bool truncated; /* the record being built did not fit */
    uint8_t state;  /* the session's state last reported */
    rudp_tstamp t0; /* when the session was made (event times count from it) */
    uint64_t wall0_ms;
    uint64_t dropped; /* records that did not fit */
    struct {          /* recovery figures last written (only changes are) */
        rudp_tstamp min_rtt, smoothed_rtt, latest_rtt, rtt_variance;
        uint64_t cwnd, ssthresh, bytes_in_flight, pacing_rate, pto_count;
    } last;
    size_t len, rec_start;
    char path[4096];
    char buf[QLOG_BUF];
};

static void qlog_on_event(void *user, const rudp_trace_event *ev);

rt_qlog *rt_qlog_new(rt_engine *e, rudp_settings *set, bool client, rudp_tstamp now) {
    if (!e->cfg.qlog_dir)
        return NULL;
    rt_qlog *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->fd = -1;
    q->client = client;
    q->t0 = now;
    q->wall0_ms = rt_wall_ms();
    q->last.ssthresh = UINT64_MAX;
    set->trace = qlog_on_event;
    set->trace_user = q;
    return q;
}

/* --- writing --- */

/* Writes |n| bytes of |p| to the file, all of them; on an error the trace
 * ends (one log line).  Returns false then. */
static bool qlog_write(rt_qlog *q, const char *p, size_t n) {
    while (n > 0 && !q->failed) {
        ssize_t w = rt_sys.write(q->fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rt_log(1, "qlog: writing %s: %s; the trace stops", q->path,
                   w < 0 ? strerror(errno) : "no progress");
            q->failed = true;
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return !q->failed;
}

void rt_qlog_flush(rt_qlog *q) {
    if (!q || q->fd < 0 || q->len == 0)
        return;
    qlog_write(q, q->buf, q->len);
    q->len = 0;
}

/* Appends formatted text to the record being built; marks it truncated
 * when it does not fit. */
static void qb(rt_qlog *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void qb(rt_qlog *q, const char *fmt, ...) {
    size_t room = sizeof(q->buf) - q->len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(q->buf + q->len, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room)
        q->truncated = true;
    else
        q->len += (size_t)n;
}

/* Returns false when nothing more is to be written: the trace failed or
 * finished. */
static bool qlog_open(const rt_qlog *q) {
    return !q->failed && !q->finished;
}

/* Starts an event record: the buffer is written out first when it is past
 * the threshold (once the file exists). */
static void qlog_begin(rt_qlog *q, rudp_tstamp now, const char *name) {
    if (q->len >= QLOG_FLUSH_AT)
        rt_qlog_flush(q);
    q->rec_start = q->len;
    q->truncated = false;
    double ms = now > q->t0 ? (double)(now - q->t0) / 1e6 : 0.0;
    qb(q, "%c{\"time\":%.3f,\"name\":\"%s\",\"data\":{", QLOG_RS, ms, name);
}

/* Ends the record; a truncated one is taken back whole. */
static void qlog_end(rt_qlog *q) {
    qb(q, "}}\n");
    if (q->truncated) {
        q->len = q->rec_start;
        q->dropped++;
    }
}

/* Writes a time in ms (from ns) as a JSON number. */
static void qb_ms(rt_qlog *q, const char *key, rudp_tstamp ns) {
    qb(q, "\"%s\":%.3f", key, (double)ns / 1e6);
}

/* --- packets and frames --- */

/* Returns the qlog name of packet type |t|. */
static const char *qlog_pkt_type(uint8_t t) {
    static const char *const names[] = {"initial", "handshake", "1RTT",
                                        "retry",   "refuse",    "stateless_reset"};
    return t < sizeof(names) / sizeof(names[0]) ? names[t] : "unknown";
}

/* Writes a packet header object: type, number when known, and the
 * destination connection ID of the long headers. */
static void qb_header(rt_qlog *q, uint8_t type, uint64_t pn, uint64_t dcid) {
    qb(q, "\"header\":{\"packet_type\":\"%s\"", qlog_pkt_type(type));
    if (pn != UINT64_MAX)
        qb(q, ",\"packet_number\":%" PRIu64, pn);
    if (type != RUDP_TRACE_PKT_PROTECTED && type != RUDP_TRACE_PKT_UNKNOWN)
        qb(q, ",\"dcid\":\"%016" PRIx64 "\"", dcid);
    qb(q, "}");
}

/* Writes an ACK frame's fields: delay and ranges, largest first. */
static void qb_ack(rt_qlog *q, const rudp_trace_frame *f) {
    qb_ms(q, "ack_delay", RUDP_US(f->code));
    qb(q, ",\"acked_ranges\":[");
    for (uint32_t i = 0; i < f->nranges; i++) {
        const rudp_trace_range *r = &f->ranges[i];
        if (r->smallest == r->largest)
            qb(q, "%s[%" PRIu64 "]", i ? "," : "", r->smallest);
        else
            qb(q, "%s[%" PRIu64 ",%" PRIu64 "]", i ? "," : "", r->smallest, r->largest);
    }
    qb(q, "]");
}

/* Writes a DATA frame as qlog's stream frame, with rudp's SYN and ACK
 * flags beside FIN. */
static void qb_data(rt_qlog *q, const rudp_trace_frame *f) {
    qb(q,
       "\"frame_type\":\"stream\",\"stream_id\":%" PRIu64 ",\"offset\":%" PRIu64
       ",\"length\":%u",
       f->sid, f->value, f->len);
    if (f->flags & RUDP_TRACE_FLAG_FIN)
        qb(q, ",\"fin\":true");
    if (f->flags & RUDP_TRACE_FLAG_SYN)
        qb(q, ",\"syn\":true");
    if (f->flags & RUDP_TRACE_FLAG_ACK)
        qb(q, ",\"ack\":true");
}

/* Writes the control frames that QUIC has under its own names. */
static void qb_control(rt_qlog *q, const rudp_trace_frame *f) {
    switch (f->type) {
    case RUDP_TRACE_FRAME_WINDOW_UPDATE:
        if (f->sid == 0)
            qb(q, "\"frame_type\":\"max_data\",\"maximum\":%" PRIu64, f->value);
        else
            qb(q,
               "\"frame_type\":\"max_stream_data\",\"stream_id\":%" PRIu64
               ",\"maximum\":%" PRIu64,
               f->sid, f->value);
        break;
    case RUDP_TRACE_FRAME_RST:
        qb(q,
           "\"frame_type\":\"reset_stream\",\"stream_id\":%" PRIu64
           ",\"error_code\":%u,\"final_size\":%" PRIu64,
           f->sid, f->code, f->value);
        break;
    case RUDP_TRACE_FRAME_GOAWAY:
        qb(q,
           "\"frame_type\":\"connection_close\",\"error_space\":\"transport\","
           "\"error_code\":%u,\"reason\":\"goaway\"",
           f->code);
        break;
    case RUDP_TRACE_FRAME_MAX_STREAMS:
        qb(q,
           "\"frame_type\":\"max_streams\",\"stream_type\":\"bidirectional\","
           "\"maximum\":%" PRIu64,
           f->value);
        break;
    default: /* PATH_CHALLENGE, PATH_RESPONSE */
        qb(q, "\"frame_type\":\"%s\",\"data\":\"%016" PRIx64 "\"",
           f->type == RUDP_TRACE_FRAME_PATH_CHALLENGE ? "path_challenge" : "path_response",
           f->value);
        break;
    }
}

/* Writes one frame object (a PING frame with .len > 1 stands for that
 * many PINGs, which are written one by one). */
static void qb_frame(rt_qlog *q, const rudp_trace_frame *f) {
    qb(q, "{");
    switch (f->type) {
    case RUDP_TRACE_FRAME_PADDING:
        qb(q, "\"frame_type\":\"padding\",\"payload_length\":%u", f->len);
        break;
    case RUDP_TRACE_FRAME_PING:
        qb(q, "\"frame_type\":\"ping\"");
        for (uint16_t i = 1; i < f->len; i++)
            qb(q, "},{\"frame_type\":\"ping\"");
        break;
    case RUDP_TRACE_FRAME_ACK:
        qb(q, "\"frame_type\":\"ack\",");
        qb_ack(q, f);
        break;
    case RUDP_TRACE_FRAME_SESSION: /* rudp's handshake frame */
        qb(q,
           "\"frame_type\":\"session\",\"syn\":true,\"ack\":%s,\"cid\":\"%016" PRIx64 "\"",
           f->flags & RUDP_TRACE_FLAG_ACK ? "true" : "false", f->value);
        break;
    case RUDP_TRACE_FRAME_DATA:
        qb_data(q, f);
        break;
    case RUDP_TRACE_FRAME_LISTENING: /* rudp's: whether the server's port listens */
        qb(q, "\"frame_type\":\"listening\",\"listening\":%s", f->code ? "true" : "false");
        break;
    case RUDP_TRACE_FRAME_NEW_TICKET: /* rudp's resumption ticket: contents secret */
        qb(q, "\"frame_type\":\"new_ticket\"");
        break;
    default:
        qb_control(q, f);
        break;
    }
    qb(q, "}");
}

/* Writes a packet event: packet_sent, packet_received or packet_lost. */
static void qlog_packet(rt_qlog *q, const rudp_trace_event *ev) {
    static const char *const names[] = {
        [RUDP_TRACE_PACKET_SENT] = "transport:packet_sent",
        [RUDP_TRACE_PACKET_RECEIVED] = "transport:packet_received",
        [RUDP_TRACE_PACKET_LOST] = "recovery:packet_lost",
    };
    static const char *const triggers[] = {
        [RUDP_TRACE_TRIGGER_PTO_PROBE] = "pto_probe",
        [RUDP_TRACE_TRIGGER_PACKET_THRESHOLD] = "reordering_threshold",
        [RUDP_TRACE_TRIGGER_TIME_THRESHOLD] = "time_threshold",
    };
    const rudp_trace_packet *p = ev->u.pkt;
    qlog_begin(q, ev->now, names[ev->type]);
    qb_header(q, p->type, p->pn, p->dcid);
    if (ev->type != RUDP_TRACE_PACKET_LOST)
        qb(q, ",\"raw\":{\"length\":%u}", p->size);
    qb(q, ",\"frames\":[");
    for (uint32_t i = 0; i < p->nframes; i++) {
        qb(q, "%s", i ? "," : "");
        qb_frame(q, &p->frames[i]);
    }
    qb(q, "]");
    if (p->trigger != RUDP_TRACE_TRIGGER_NONE)
        qb(q, ",\"trigger\":\"%s\"", triggers[p->trigger]);
    if (p->mtu_probe)
        qb(q, ",\"is_mtu_probe_packet\":true");
    qlog_end(q);
}

/* Returns the qlog trigger of a packet dropped for rudp_error |reason|. */
static const char *qlog_drop_trigger(int reason) {
    switch (reason) {
    case RUDP_ERR_DUPLICATE:
        return "rejected";
    case RUDP_ERR_AUTH:
        return "decryption_failure";
    case RUDP_ERR_MALFORMED:
        return "invalid";
    case RUDP_ERR_VERSION:
        return "unsupported";
    case RUDP_ERR_UNKNOWN_CID:
        return "connection_unknown";
    default:
        return "general";
    }
}

/* Writes transport:packet_dropped. */
static void qlog_dropped(rt_qlog *q, const rudp_trace_event *ev) {
    qlog_begin(q, ev->now, "transport:packet_dropped");
    qb_header(q, ev->u.drop.type, ev->u.drop.pn, 0);
    qb(q, ",\"raw\":{\"length\":%u},\"trigger\":\"%s\",\"details\":{\"reason\":\"%s\"}",
       ev->u.drop.size, qlog_drop_trigger(ev->u.drop.reason),
       rudp_strerror(ev->u.drop.reason));
    qlog_end(q);
}

/* --- recovery --- */

/* Writes the RTT figures of |ev| that changed since the last record (in
 * ms); *n counts the fields written. */
static void qb_rtts(rt_qlog *q, const rudp_trace_event *ev, int *n) {
    const rudp_tstamp v[] = {ev->u.metrics.min_rtt, ev->u.metrics.smoothed_rtt,
                             ev->u.metrics.latest_rtt, ev->u.metrics.rtt_variance};
    rudp_tstamp *last[] = {&q->last.min_rtt, &q->last.smoothed_rtt, &q->last.latest_rtt,
                           &q->last.rtt_variance};
    static const char *const keys[] = {"min_rtt", "smoothed_rtt", "latest_rtt",
                                       "rtt_variance"};
    for (int i = 0; i < 4; i++) {
        if (v[i] == *last[i])
            continue;
        *last[i] = v[i];
        qb(q, "%s", (*n)++ ? "," : "");
        qb_ms(q, keys[i], v[i]);
    }
}

/* Writes the window figures of |ev| that changed since the last record
 * (bytes; the pacing rate in bits per second, as qlog has it). */
static void qb_window(rt_qlog *q, const rudp_trace_event *ev, int *n) {
    uint64_t pacing = ev->u.metrics.pacing_rate;
    const uint64_t v[] = {
        ev->u.metrics.cwnd, ev->u.metrics.bytes_in_flight, ev->u.metrics.ssthresh,
        pacing > UINT64_MAX / 8 ? UINT64_MAX : pacing * 8, ev->u.metrics.pto_count};
    uint64_t *last[] = {&q->last.cwnd, &q->last.bytes_in_flight, &q->last.ssthresh,
                        &q->last.pacing_rate, &q->last.pto_count};
    static const char *const keys[] = {"congestion_window", "bytes_in_flight", "ssthresh",
                                       "pacing_rate", "pto_count"};
    for (int i = 0; i < 5; i++) {
        if (v[i] == *last[i])
            continue;
        *last[i] = v[i];
        qb(q, "%s\"%s\":%" PRIu64, (*n)++ ? "," : "", keys[i], v[i]);
    }
}

/* Writes recovery:metrics_updated with what changed, or nothing. */
static void qlog_metrics(rt_qlog *q, const rudp_trace_event *ev) {
    int n = 0;
    qlog_begin(q, ev->now, "recovery:metrics_updated");
    qb_rtts(q, ev, &n);
    qb_window(q, ev, &n);
    if (n > 0) {
        qlog_end(q);
        return;
    }
    q->len = q->rec_start; /* nothing changed */
}

/* Returns the name of congestion-controller state |s|. */
static const char *qlog_cc_name(uint8_t s) {
    static const char *const names[] = {
        [RUDP_TRACE_CC_SLOW_START] = "slow_start",
        [RUDP_TRACE_CC_CONGESTION_AVOIDANCE] = "congestion_avoidance",
        [RUDP_TRACE_CC_RECOVERY] = "recovery",
        [RUDP_TRACE_CC_BBR_STARTUP] = "startup",
        [RUDP_TRACE_CC_BBR_DRAIN] = "drain",
        [RUDP_TRACE_CC_BBR_PROBE_BW] = "probe_bw",
        [RUDP_TRACE_CC_BBR_PROBE_RTT] = "probe_rtt",
    };
    return s < sizeof(names) / sizeof(names[0]) && names[s] ? names[s] : "unknown";
}

/* Writes recovery:congestion_state_updated. */
static void qlog_cc(rt_qlog *q, const rudp_trace_event *ev) {
    qlog_begin(q, ev->now, "recovery:congestion_state_updated");
    if (ev->u.cc.from)
        qb(q, "\"old\":\"%s\",", qlog_cc_name(ev->u.cc.from));
    qb(q, "\"new\":\"%s\"", qlog_cc_name(ev->u.cc.to));
    qlog_end(q);
}

/* --- states --- */

/* Returns rudp's name of stream state |s| (enum rudp_stream_state, or
 * RUDP_TRACE_STREAM_NONE: its record is freed). */
static const char *qlog_stream_rudp(uint8_t s) {
    static const char *const names[] = {
        "freed",    "connecting", "syn_received", "established", "closing",
        "fin_wait", "last_ack",   "closed",       "reset",
    };
    return s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

/* Returns qlog's name of stream state |s| (the HTTP/2-like base states,
 * granular ones for half-closes, resets and the freed record). */
static const char *qlog_stream_state(uint8_t s, bool peer_reset) {
    switch (s) {
    case RUDP_TRACE_STREAM_NONE:
        return "destroyed";
    case RUDP_STREAM_CLOSING:
        return "half_closed_local";
    case RUDP_STREAM_FIN_WAIT:
        return "half_closed_remote";
    case RUDP_STREAM_LAST_ACK: /* both FINs exchanged: HTTP/2's closed */
    case RUDP_STREAM_CLOSED:
        return "closed";
    case RUDP_STREAM_RESET:
        return peer_reset ? "reset_received" : "reset_sent";
    default: /* connecting, syn_received, established */
        return "open";
    }
}

/* Writes transport:stream_state_updated. */
static void qlog_stream(rt_qlog *q, const rudp_trace_event *ev) {
    qlog_begin(q, ev->now, "transport:stream_state_updated");
    qb(q, "\"stream_id\":%" PRIu64 ",\"stream_type\":\"bidirectional\"", ev->u.stream.sid);
    if (ev->u.stream.from != RUDP_TRACE_STREAM_NONE)
        qb(q, ",\"old\":\"%s\"",
           qlog_stream_state(ev->u.stream.from, ev->u.stream.peer_reset));
    qb(q, ",\"new\":\"%s\",\"rudp_state\":\"%s\"",
       qlog_stream_state(ev->u.stream.to, ev->u.stream.peer_reset),
       qlog_stream_rudp(ev->u.stream.to));
    qlog_end(q);
}

/* Returns qlog's name of session state |s|, and rudp's in *rudp. */
static const char *qlog_session_state(uint8_t s, const char **rudp) {
    static const char *const names[][2] = {
        {"attempted", "connecting"}, {"handshake_complete", "established"},
        {"closing", "closing"},      {"draining", "draining"},
        {"closed", "done"},
    };
    if (s < RUDP_TRACE_SESSION_CONNECTING || s > RUDP_TRACE_SESSION_DONE) {
        *rudp = "unknown";
        return "unknown";
    }
    *rudp = names[s - 1][1];
    return names[s - 1][0];
}

/* Writes connectivity:connection_state_updated. */
static void qlog_session(rt_qlog *q, const rudp_trace_event *ev) {
    const char *rudp;
    qlog_begin(q, ev->now, "connectivity:connection_state_updated");
    if (ev->u.session.from != RUDP_TRACE_SESSION_NONE)
        qb(q, "\"old\":\"%s\",", qlog_session_state(ev->u.session.from, &rudp));
    qb(q, "\"new\":\"%s\",", qlog_session_state(ev->u.session.to, &rudp));
    qb(q, "\"rudp_state\":\"%s\"", rudp);
    q->state = ev->u.session.to;
    qlog_end(q);
}

/* Writes connectivity:connection_closed: who ended the session and why. */
static void qlog_closed(rt_qlog *q, const rudp_trace_event *ev) {
    int err = ev->u.closed.error;
    bool remote = err == RUDP_ERR_PEER_CLOSED || err == RUDP_ERR_PEER_RESET ||
                  err == RUDP_ERR_REFUSED;
    const char *trigger = err == RUDP_OK || err == RUDP_ERR_PEER_CLOSED ? "clean"
                          : err == RUDP_ERR_PEER_RESET                  ? "stateless_reset"
                          : err != RUDP_ERR_TIMEDOUT                    ? "error"
                          : q->state == RUDP_TRACE_SESSION_CONNECTING ? "handshake_timeout"
                                                                      : "idle_timeout";
    qlog_begin(q, ev->now, "connectivity:connection_closed");
    qb(q, "\"owner\":\"%s\",\"trigger\":\"%s\",\"reason\":\"%s\"",
       remote ? "remote" : "local", trigger,
       err == RUDP_OK ? "closed by this end" : rudp_strerror(err));
    qlog_end(q);
}

/* Writes connectivity:mtu_updated. */
static void qlog_mtu(rt_qlog *q, const rudp_trace_event *ev) {
    qlog_begin(q, ev->now, "connectivity:mtu_updated");
    qb(q, "\"old\":%u,\"new\":%u", ev->u.mtu.from, ev->u.mtu.to);
    qlog_end(q);
}

/* The session's trace hook: one record per event. */
static void qlog_on_event(void *user, const rudp_trace_event *ev) {
    rt_qlog *q = user;
    if (!qlog_open(q))
        return;
    switch (ev->type) {
    case RUDP_TRACE_PACKET_SENT:
    case RUDP_TRACE_PACKET_RECEIVED:
    case RUDP_TRACE_PACKET_LOST:
        qlog_packet(q, ev);
        break;
    case RUDP_TRACE_PACKET_DROPPED:
        qlog_dropped(q, ev);
        break;
    case RUDP_TRACE_METRICS:
        qlog_metrics(q, ev);
        break;
    case RUDP_TRACE_CC_STATE:
        qlog_cc(q, ev);
        break;
    case RUDP_TRACE_STREAM_STATE:
        qlog_stream(q, ev);
        break;
    case RUDP_TRACE_SESSION_STATE:
        qlog_session(q, ev);
        break;
    case RUDP_TRACE_SESSION_CLOSED:
        qlog_closed(q, ev);
        break;
    case RUDP_TRACE_MTU:
        qlog_mtu(q, ev);
        break;
    }
}

/* --- the file --- */

/* Sets q->path to DIR/<UTC time>-<pid>-<odcid>-<client|server>.sqlog. */
static void qlog_name(rt_qlog *q, const char *dir, uint64_t odcid) {
    time_t secs = (time_t)(q->wall0_ms / 1000);
    struct tm tm;
    char when[32] = "0";
    if (gmtime_r(&secs, &tm))
        strftime(when, sizeof(when), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(q->path, sizeof(q->path), "%s/%s-%d-%016" PRIx64 "-%s.sqlog", dir, when,
             (int)getpid(), odcid, q->client ? "client" : "server");
}

/* Formats the header record into |h| (|cap| bytes): version, format,
 * vantage point, group and reference time.  Returns its length. */
static size_t qlog_header(const rt_qlog *q, uint64_t odcid, char *h, size_t cap) {
    int n = snprintf(h, cap,
                     "%c{\"qlog_version\":\"0.3\",\"qlog_format\":\"JSON-SEQ\","
                     "\"title\":\"rudp session %016" PRIx64 "\","
                     "\"description\":\"librudp_shim, process %d\","
                     "\"trace\":{\"vantage_point\":{\"name\":\"rudp\",\"type\":\"%s\"},"
                     "\"common_fields\":{\"ODCID\":\"%016" PRIx64
                     "\",\"group_id\":\"%016" PRIx64
                     "\",\"protocol_type\":[\"RUDP\"],\"time_format\":\"relative\","
                     "\"reference_time\":%" PRIu64 "}}}\n",
                     QLOG_RS, odcid, (int)getpid(), q->client ? "client" : "server", odcid,
                     odcid, q->wall0_ms);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

/* Writes the address of |a| into |ip| and returns its port (0 and "" for
 * another family). */
static unsigned qlog_endpoint(const struct sockaddr_storage *a, char ip[INET6_ADDRSTRLEN]) {
    ip[0] = '\0';
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const void *)a;
        inet_ntop(AF_INET, &v4->sin_addr, ip, INET6_ADDRSTRLEN);
        return ntohs(v4->sin_port);
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const void *)a;
        inet_ntop(AF_INET6, &v6->sin6_addr, ip, INET6_ADDRSTRLEN);
        return ntohs(v6->sin6_port);
    }
    return 0;
}

/* Formats connectivity:connection_started into |h| (|cap| bytes), dated
 * the session's first moment: our address is the source, the peer's the
 * destination.  Returns its length. */
static size_t qlog_started(const rudp_session_info *in,
                           const struct sockaddr_storage *local,
                           const struct sockaddr_storage *peer, char *h, size_t cap) {
    char lip[INET6_ADDRSTRLEN], pip[INET6_ADDRSTRLEN];
    unsigned lport = qlog_endpoint(local, lip), pport = qlog_endpoint(peer, pip);
    int n = snprintf(h, cap,
                     "%c{\"time\":0.000,\"name\":\"connectivity:connection_started\","
                     "\"data\":{\"ip_version\":\"%s\",\"src_ip\":\"%s\",\"src_port\":%u,"
                     "\"dst_ip\":\"%s\",\"dst_port\":%u,\"protocol\":\"RUDP\","
                     "\"src_cid\":\"%016" PRIx64 "\",\"dst_cid\":\"%016" PRIx64 "\"}}\n",
                     QLOG_RS, peer->ss_family == AF_INET6 ? "ipv6" : "ipv4", lip, lport,
                     pip, pport, in->local_cid, in->peer_cid);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

/* Opens q->path, new, for the owner only, in the engine's range.  Returns
 * false (logged, the trace off) when it cannot. */
static bool qlog_create(rt_qlog *q) {
    int fd = open(q->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        rt_log(1, "qlog: cannot create %s: %s", q->path, strerror(errno));
        q->failed = true;
        return false;
    }
    q->fd = rt_fd_high(fd);
    rt_log(3, "qlog: %s", q->path);
    return true;
}

void rt_qlog_start(rt_qlog *q, rt_engine *e, const rudp_session *s,
                   const struct sockaddr_storage *local,
                   const struct sockaddr_storage *peer) {
    rudp_session_info in;
    char h[1536];
    if (!q || q->started)
        return;
    q->started = true;
    rudp_session_get_info(s, &in);
    qlog_name(q, e->cfg.qlog_dir, in.initial_cid);
    if (!qlog_create(q))
        return;
    size_t n = qlog_header(q, in.initial_cid, h, sizeof(h));
    n += qlog_started(&in, local, peer, h + n, sizeof(h) - n);
    if (qlog_write(q, h, n))
        rt_qlog_flush(q); /* what was held: the events of the session's making */
}

/* Writes rudp:session_summary: the session's own counters, and how many
 * records did not fit.  (Not the stream byte counters of
 * rudp_session_info that cover only the streams still held.) */
static void qlog_summary(rt_qlog *q, const rudp_session *s, rudp_tstamp now) {
    rudp_session_info in;
    rudp_session_get_info(s, &in);
    qlog_begin(q, now, "rudp:session_summary");
    qb(q,
       "\"pkts_sent\":%" PRIu64 ",\"pkts_recv\":%" PRIu64 ",\"pkts_lost\":%" PRIu64
       ",\"pkts_spurious\":%" PRIu64 ",\"pkts_dropped\":%" PRIu64 ",\"bytes_sent\":%" PRIu64
       ",\"bytes_recv\":%" PRIu64 ",\"stream_bytes_sent\":%" PRIu64
       ",\"pto_count_total\":%" PRIu64 ",\"migrations\":%" PRIu64
       ",\"records_dropped\":%" PRIu64,
       in.pkts_sent, in.pkts_recv, in.pkts_lost, in.pkts_spurious, in.pkts_dropped,
       in.bytes_sent, in.bytes_recv, in.stream_bytes_sent, in.pto_count_total,
       in.migrations, q->dropped);
    qlog_end(q);
}

void rt_qlog_finish(rt_qlog *q, const rudp_session *s, rudp_tstamp now) {
    if (!q || !qlog_open(q))
        return;
    qlog_summary(q, s, now);
    q->finished = true;
    rt_qlog_flush(q);
}

void rt_qlog_free(rt_qlog *q) {
    if (!q)
        return;
    rt_qlog_flush(q);
    if (q->fd >= 0)
        rt_sys.close(q->fd);
    free(q);
}

int rt_qlog_fd(const rt_qlog *q) {
    return q ? q->fd : -1;
}
