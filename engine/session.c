/*
 * session.c — the session's life cycle, its stream table, timers, events and
 * the application-facing API.
 *
 * A session is created by a client toward a server address, or by a server
 * from a client's first datagram.  It is CONNECTING (client) until the
 * SYN-ACK arrives, ESTABLISHED while streams come and go, CLOSING after
 * rudp_session_close() until its GoAway is acknowledged, DRAINING for three
 * probe timeouts to absorb stray packets, and DONE.  A dead peer (idle
 * timeout), a stateless reset or a protocol violation end it early; every
 * live stream then fails with the reason.
 *
 * Streams are kept in a chained hash table by ID, whose bucket array
 * doubles when full and halves (rudp_session_trim) when a quarter full.
 * Three intrusive lists
 * link them: the send list (round robin over streams that may have frames to
 * send), the lazy list (accepted streams whose ACK flag may wait for a
 * packet that goes out anyway) and the event list (streams with events the
 * caller has not polled).  Frame processing lives in session_input.c,
 * packet assembly in session_output.c; docs/PROTOCOL.md has the diagrams.
 */
#include "session.h"

#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define SESS_MIN_BUCKETS 16 /* the stream table's initial and smallest size */

void rudp_settings_default(rudp_settings *s) {
    memset(s, 0, sizeof(*s));
    s->max_packet_size = RUDP_MIN_PACKET_SIZE;
    s->max_udp_payload = 65507;
    s->initial_stream_window = 256 * 1024;
    s->max_stream_window = 16 * 1024 * 1024;
    s->initial_session_window = 1024 * 1024;
    s->max_session_window = 64 * 1024 * 1024;
    s->stream_send_buffer = 4 * 1024 * 1024;
    s->max_streams = 65536;
    s->idle_timeout = 0;                /* silence alone is not death (TCP) */
    s->retry_timeout = RUDP_MS(924600); /* Linux's tcp_retries2 = 15, 200 ms RTO */
    s->keepalive_interval = RUDP_SEC(10);
    s->handshake_timeout = RUDP_SEC(15);
    s->max_ack_delay = RUDP_MS(25);
    s->initial_rtt = RUDP_MS(333);
    s->cc = RUDP_CC_BBR; /* docs/BENCHMARKS.md: it wins on lossy paths */
    s->pacing = true;
    rudp_random(s->secret, sizeof(s->secret));
}

int rudp_settings_check(const rudp_settings *s) {
    if (s->max_packet_size < RUDP_MIN_PACKET_SIZE || s->max_packet_size > 65507)
        return RUDP_ERR_INVAL;
    if (s->max_udp_payload < s->max_packet_size || s->max_udp_payload > 65507)
        return RUDP_ERR_INVAL;
    if (s->initial_stream_window == 0 || s->initial_stream_window > UINT32_MAX ||
        s->max_stream_window < s->initial_stream_window)
        return RUDP_ERR_INVAL;
    if (s->initial_session_window == 0 || s->max_session_window < s->initial_session_window)
        return RUDP_ERR_INVAL;
    if (s->stream_send_buffer == 0 || s->max_streams == 0)
        return RUDP_ERR_INVAL;
    if (s->retry_timeout == 0 || s->handshake_timeout == 0 || s->initial_rtt == 0)
        return RUDP_ERR_INVAL;
    if (s->max_ack_delay > RUDP_MS(16383) || s->idle_timeout / RUDP_MS(1) > UINT32_MAX)
        return RUDP_ERR_INVAL;
    if (s->cc != RUDP_CC_NEWRENO && s->cc != RUDP_CC_CUBIC && s->cc != RUDP_CC_BBR)
        return RUDP_ERR_INVAL;
    return RUDP_OK;
}

/* --- randomness: splitmix64, seeded by the caller --- */

uint64_t rudp_sess_rand(rudp_session *s) {
    uint64_t z = (s->prng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Returns a random connection ID that is never 0. */
static uint64_t sess_new_cid(rudp_session *s) {
    uint64_t cid;
    do {
        cid = rudp_sess_rand(s);
    } while (cid == 0);
    return cid;
}

/* --- intrusive lists --- */

/* Returns the link of |st| at byte offset |off| (one of the rudp_link fields). */
static rudp_link *sess_link(rudp_stream *st, size_t off) {
    return (rudp_link *)((char *)st + off);
}

/* Appends |st| to |l| through the link at |off|. */
static void list_push(rudp_list *l, rudp_stream *st, size_t off) {
    rudp_link *k = sess_link(st, off);
    k->next = NULL;
    k->prev = l->tail;
    if (l->tail)
        sess_link(l->tail, off)->next = st;
    else
        l->head = st;
    l->tail = st;
}

/* Unlinks |st| from |l| through the link at |off|. */
static void list_unlink(rudp_list *l, rudp_stream *st, size_t off) {
    rudp_link *k = sess_link(st, off);
    if (k->prev)
        sess_link(k->prev, off)->next = k->next;
    else
        l->head = k->next;
    if (k->next)
        sess_link(k->next, off)->prev = k->prev;
    else
        l->tail = k->prev;
    k->prev = k->next = NULL;
}

void rudp_sess_send_list_add(rudp_session *s, rudp_stream *st) {
    if (st->in_send_list)
        return;
    st->in_send_list = true;
    list_push(&s->send_list, st, offsetof(rudp_stream, send_link));
}

void rudp_sess_send_list_remove(rudp_session *s, rudp_stream *st) {
    if (!st->in_send_list)
        return;
    st->in_send_list = false;
    list_unlink(&s->send_list, st, offsetof(rudp_stream, send_link));
}

void rudp_sess_lazy_list_add(rudp_session *s, rudp_stream *st) {
    if (st->in_lazy_list)
        return;
    st->in_lazy_list = true;
    list_push(&s->lazy_list, st, offsetof(rudp_stream, lazy_link));
}

void rudp_sess_lazy_list_remove(rudp_session *s, rudp_stream *st) {
    if (!st->in_lazy_list)
        return;
    st->in_lazy_list = false;
    list_unlink(&s->lazy_list, st, offsetof(rudp_stream, lazy_link));
}

void rudp_sess_stream_event(rudp_session *s, rudp_stream *st, uint8_t ev) {
    if (rudp_sess_traced(s))
        rudp_sess_trace_stream(s, st, false);
    if (st->released)
        return;
    st->events |= ev;
    if (st->in_ev_list)
        return;
    st->in_ev_list = true;
    list_push(&s->ev_list, st, offsetof(rudp_stream, ev_link));
}

/* Drops every pending event of |st|. */
static void sess_stream_events_clear(rudp_session *s, rudp_stream *st) {
    st->events = 0;
    if (!st->in_ev_list)
        return;
    st->in_ev_list = false;
    list_unlink(&s->ev_list, st, offsetof(rudp_stream, ev_link));
}

/* --- the stream table --- */

/* Returns the bucket index of |sid| in a table of |n| (a power of two). */
static uint32_t sess_bucket(uint64_t sid, uint32_t n) {
    return (uint32_t)((sid * 0x9e3779b97f4a7c15ull) >> 32) & (n - 1);
}

/* Moves the table to |n| buckets (a power of two): doubled when it is more
 * than full, halved by rudp_session_trim when a quarter full.  Returns
 * RUDP_OK or RUDP_ERR_NOMEM (the table then keeps working, only slower). */
static int sess_table_resize(rudp_session *s, uint32_t n) {
    rudp_stream **b = calloc(n, sizeof(*b));
    if (!b)
        return RUDP_ERR_NOMEM;
    for (uint32_t i = 0; i < s->nbuckets; i++) {
        rudp_stream *st = s->buckets[i], *next;
        for (; st; st = next) {
            next = st->hnext;
            uint32_t h = sess_bucket(st->sid, n);
            st->hnext = b[h];
            b[h] = st;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
    return RUDP_OK;
}

rudp_stream *rudp_sess_find(const rudp_session *s, uint64_t sid) {
    rudp_stream *st = s->buckets[sess_bucket(sid, s->nbuckets)];
    while (st && st->sid != sid)
        st = st->hnext;
    return st;
}

/* Keeps the session's receive window at least one stream window per open
 * stream (up to its ceiling), so streams whose program is not reading —
 * connections waiting in a listener's backlog — cannot use up the shared
 * window and starve the others, which kernel TCP, with no shared window,
 * never does. */
static void sess_window_set(rudp_session *s, uint64_t want) {
    if (want > s->fc.max_window)
        want = s->fc.max_window;
    if (want <= s->fc.window)
        return;
    s->fc.window = want;
    if (s->fc.consumed + want > s->fc.limit) {
        s->fc.limit = s->fc.consumed + want;
        s->fc.update_pending = true;
    }
}

/* The open streams' windows grew by |delta| bytes (a stream opened or
 * auto-tuned; one that closes subtracts itself in sess_stream_destroy):
 * the session window follows their sum, so streams the application does
 * not read, each holding a full window, can never use up the credit of
 * one it reads (it only ever grows, up to max_session_window, so it bounds
 * memory by the largest sum seen). */
static void sess_window_track(rudp_session *s, uint64_t delta) {
    s->stream_windows += delta;
    sess_window_set(s, s->stream_windows);
}

rudp_stream *rudp_sess_stream_new(rudp_session *s, uint64_t sid, bool local,
                                  rudp_tstamp now) {
    if (s->nstreams >= s->nbuckets)
        sess_table_resize(s, s->nbuckets * 2);
    rudp_stream *st = malloc(sizeof(*st));
    if (!st)
        return NULL;
    rudp_stream_init(st, sid, local, &s->pool, s->peer_stream_window,
                     s->settings.initial_stream_window, s->settings.max_stream_window, now);
    uint32_t h = sess_bucket(sid, s->nbuckets);
    st->hnext = s->buckets[h];
    s->buckets[h] = st;
    s->nstreams++;
    sess_window_track(s, st->fc.window);
    if (rudp_sess_traced(s))
        rudp_sess_trace_stream(s, st, false);
    return st;
}

/* Unhooks |st| from the table and every list, and frees it. */
static void sess_stream_destroy(rudp_session *s, rudp_stream *st) {
    if (rudp_sess_traced(s))
        rudp_sess_trace_stream(s, st, true);
    rudp_stream **pp = &s->buckets[sess_bucket(st->sid, s->nbuckets)];
    while (*pp != st)
        pp = &(*pp)->hnext;
    *pp = st->hnext;
    s->nstreams--;
    s->stream_windows -= st->fc.window;
    rudp_sess_send_list_remove(s, st);
    rudp_sess_lazy_list_remove(s, st);
    sess_stream_events_clear(s, st);
    rudp_stream_free(st);
    free(st);
}

/* A peer stream is gone: let the peer open one more, and tell it in batches
 * of an eighth of the limit. */
static void sess_peer_stream_freed(rudp_session *s) {
    s->peer_freed++;
    s->peer_allowed++;
    uint64_t batch = s->settings.max_streams / 8;
    if (batch == 0)
        batch = 1;
    if (s->peer_allowed - s->peer_allowed_sent >= batch)
        s->max_streams_pending = true;
}

void rudp_sess_stream_maybe_free(rudp_session *s, rudp_stream *st) {
    if (!st->released || st->rst_pending || !rudp_stream_send_finished(st) ||
        !rudp_stream_recv_finished(st))
        return;
    bool peer_initiated = rudp_sid_is_client(st->sid) != s->is_client;
    sess_stream_destroy(s, st);
    if (peer_initiated)
        sess_peer_stream_freed(s);
}

void rudp_sess_free_released(rudp_session *s) {
    for (uint32_t i = 0; i < s->nbuckets; i++) {
        rudp_stream *st = s->buckets[i], *next;
        for (; st; st = next) {
            next = st->hnext;
            if (!st->released)
                continue;
            bool peer_initiated = rudp_sid_is_client(st->sid) != s->is_client;
            sess_stream_destroy(s, st);
            if (peer_initiated)
                sess_peer_stream_freed(s);
        }
    }
}

void rudp_sess_requeue_all(rudp_session *s) {
    for (uint32_t i = 0; i < s->nbuckets; i++)
        for (rudp_stream *st = s->buckets[i]; st; st = st->hnext)
            if (st->snd_next < st->snd_written || !rudp_ranges_empty(&st->snd_lost))
                rudp_sess_send_list_add(s, st);
}

/* --- session life cycle --- */

void rudp_sess_set_state(rudp_session *s, uint8_t state) {
    uint8_t from = s->state;
    s->state = state;
    if (rudp_sess_traced(s) && from != state)
        rudp_sess_trace_state(s, from);
}

int rudp_sess_init(rudp_session *s, const rudp_settings *set, uint64_t seed,
                   rudp_tstamp now) {
    s->settings = *set;
    s->prng = seed;
    s->local_cid = sess_new_cid(s);
    s->now = s->created = s->last_recv = s->last_activity = now;
    s->drain_end = s->close_deadline = s->live_check = RUDP_TSTAMP_NEVER;
    s->trace_pn_1rtt = RUDP_PN_NONE;
    s->max_packet_size = set->max_packet_size;
    s->peer_max_udp = set->max_packet_size; /* until the peer says more */
    s->probe_failed = UINT32_MAX;
    s->peer_idle_timeout = set->idle_timeout;
    s->peer_stream_window = RUDP_ZERO_RTT_STREAM_WINDOW;
    s->snd_limit = RUDP_ZERO_RTT_SESSION_WINDOW;
    s->local_allowed = RUDP_ZERO_RTT_MAX_STREAMS;
    s->peer_allowed = s->peer_allowed_sent = set->max_streams;
    s->session_frame_pending = true;
    s->listening = s->peer_listening = s->listening_acked = true;
    rudp_fc_init(&s->fc, set->initial_session_window, set->max_session_window, now);
    rudp_chunk_pool_init(&s->pool, 64);
    rudp_acktr_init(&s->acktr);
    rudp_pacer_init(&s->pacer, 10ull * set->max_packet_size, now);
    s->nbuckets = SESS_MIN_BUCKETS;
    s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
    rudp_recovery_config rc = {
        .initial_rtt = set->initial_rtt,
        .max_ack_delay = set->max_ack_delay,
        .max_datagram = set->max_packet_size,
        .cc = set->cc,
    };
    if (!s->buckets || rudp_recovery_init(&s->rec, &rc, now) != RUDP_OK)
        return RUDP_ERR_NOMEM;
    return RUDP_OK;
}

rudp_session *rudp_sess_alloc(const rudp_settings *set) {
    if (!set || rudp_settings_check(set) != RUDP_OK)
        return NULL;
    return calloc(1, sizeof(rudp_session));
}

rudp_session *rudp_session_new_client(const rudp_settings *set, uint64_t seed,
                                      const rudp_addr *peer, rudp_tstamp now) {
    rudp_session *s = rudp_sess_alloc(set);
    if (!s)
        return NULL;
    s->is_client = true;
    s->validated = true; /* a client's peer is where it chose to connect */
    if (rudp_sess_init(s, set, seed, now) != RUDP_OK) {
        rudp_session_del(s);
        return NULL;
    }
    s->initial_cid = sess_new_cid(s);
    s->peer_cid = s->initial_cid;
    if (peer)
        s->peer_addr = *peer;
    if (!rudp_sess_keys_client(s)) {
        rudp_session_del(s);
        return NULL;
    }
    rudp_sess_set_state(s, RUDP_SESS_CONNECTING);
    return s;
}

void rudp_session_del(rudp_session *s) {
    if (!s)
        return;
    if (s->buckets) {
        for (uint32_t i = 0; i < s->nbuckets; i++) {
            rudp_stream *st = s->buckets[i], *next;
            for (; st; st = next) {
                next = st->hnext;
                rudp_stream_free(st);
                free(st);
            }
        }
        free(s->buckets);
    }
    rudp_recovery_free(&s->rec);
    rudp_acktr_free(&s->acktr);
    rudp_chunk_pool_free(&s->pool);
    rudp_sess_keys_free(s);
    free(s);
}

/* Returns the PTO without backoff, the unit of the draining period. */
static rudp_tstamp sess_base_pto(const rudp_session *s) {
    return rudp_rtt_pto(&s->rec.rtt, s->rec.max_ack_delay);
}

void rudp_sess_note_closed(rudp_session *s, int error) {
    if (s->closed_noted)
        return;
    s->closed_noted = true;
    s->ev_closed = true;
    s->close_error = error;
    if (rudp_sess_traced(s))
        rudp_sess_trace_closed(s, error);
}

void rudp_sess_start_draining(rudp_session *s, rudp_tstamp now) {
    if (s->state >= RUDP_SESS_DRAINING)
        return;
    rudp_sess_set_state(s, RUDP_SESS_DRAINING);
    s->drain_end = now + RUDP_DRAIN_PTOS * sess_base_pto(s);
    s->probes = 0;
    s->ping_pending = false;
}

void rudp_sess_fail_streams(rudp_session *s, int error) {
    for (uint32_t i = 0; i < s->nbuckets; i++) {
        for (rudp_stream *st = s->buckets[i]; st; st = st->hnext) {
            bool send_live =
                !rudp_stream_send_finished(st) && st->send_state != RUDP_SEND_RESET;
            bool recv_live =
                !rudp_stream_recv_finished(st) && st->recv_state != RUDP_RECV_RESET;
            if (!send_live && !recv_live)
                continue;
            if (st->error == RUDP_OK)
                st->error = error;
            if (send_live)
                st->send_state = RUDP_SEND_RESET;
            rudp_sess_stream_event(s, st, RUDP_SEV_READABLE | RUDP_SEV_WRITABLE);
        }
    }
    s->send_list.head = s->send_list.tail = NULL;
    for (uint32_t i = 0; i < s->nbuckets; i++)
        for (rudp_stream *st = s->buckets[i]; st; st = st->hnext)
            st->in_send_list = false;
}

void rudp_sess_die(rudp_session *s, int error, rudp_tstamp now) {
    if (s->state == RUDP_SESS_DONE)
        return;
    rudp_sess_fail_streams(s, error);
    rudp_sess_note_closed(s, error);
    if (error == RUDP_ERR_PROTOCOL || error == RUDP_ERR_FLOW_CONTROL) {
        s->goaway_code = RUDP_GOAWAY_PROTOCOL;
        s->goaway_pending = true;
        rudp_sess_start_draining(s, now);
    } else {
        rudp_sess_set_state(s, RUDP_SESS_DONE);
    }
}

void rudp_sess_stream_abort(rudp_session *s, rudp_stream *st, uint32_t code, int error) {
    uint64_t unconsumed = rudp_stream_abort(st, code, error);
    /* The discarded bytes count as consumed, and like any consumption they
     * may be what makes a session WINDOW_UPDATE due: adding them without the
     * check could leave the limit at exactly what was consumed, and every
     * other stream of the session blocked for good. */
    rudp_sess_consume(s, unconsumed, s->now);
    rudp_sess_lazy_list_remove(s, st);
    rudp_sess_send_list_add(s, st);
    if (rudp_sess_traced(s))
        rudp_sess_trace_stream(s, st, false);
}

void rudp_sess_consume(rudp_session *s, uint64_t n, rudp_tstamp now) {
    rudp_fc_on_consume(&s->fc, n, s->rec.rtt.smoothed, now);
}

static rudp_tstamp sess_idle_timeout(const rudp_session *s);

rudp_tstamp rudp_sess_close_wait(const rudp_session *s) {
    rudp_tstamp t = RUDP_DRAIN_PTOS * rudp_recovery_pto(&s->rec);
    rudp_tstamp silence = sess_idle_timeout(s) ? sess_idle_timeout(s) : RUDP_CLOSE_TIMEOUT;
    if (t < RUDP_CLOSE_MIN_WAIT)
        t = RUDP_CLOSE_MIN_WAIT;
    return t > silence ? t : silence;
}

void rudp_sess_check_close(rudp_session *s, rudp_tstamp now) {
    if (s->state != RUDP_SESS_CLOSING || s->goaway_sent || s->goaway_pending)
        return;
    if (s->nstreams == 0)
        s->goaway_pending = true;
}

int rudp_session_close(rudp_session *s, uint32_t error_code, rudp_tstamp now) {
    s->now = now;
    if (s->state >= RUDP_SESS_CLOSING)
        return RUDP_ERR_CLOSED;
    s->close_requested = true;
    s->goaway_code = error_code;
    rudp_sess_set_state(s, RUDP_SESS_CLOSING);
    if (error_code != RUDP_GOAWAY_NORMAL) {
        for (uint32_t i = 0; i < s->nbuckets; i++)
            for (rudp_stream *st = s->buckets[i]; st; st = st->hnext)
                if (st->send_state != RUDP_SEND_RESET)
                    rudp_sess_stream_abort(s, st, RUDP_RST_ABORT, RUDP_ERR_CLOSED);
        s->goaway_pending = true;
    }
    rudp_sess_check_close(s, now);
    return RUDP_OK;
}

int rudp_session_leave(rudp_session *s, rudp_tstamp now) {
    s->now = now;
    if (s->state >= RUDP_SESS_DRAINING)
        return RUDP_ERR_CLOSED;
    s->close_requested = true;
    rudp_sess_fail_streams(s, RUDP_ERR_CLOSED);
    rudp_sess_note_closed(s, RUDP_OK);
    s->goaway_code = RUDP_GOAWAY_NORMAL;
    s->goaway_pending = true;
    rudp_sess_start_draining(s, now);
    return RUDP_OK;
}

void rudp_session_set_mtu_ceiling(rudp_session *s, uint32_t max_udp_payload) {
    s->mtu_ceiling = max_udp_payload;
}

void rudp_session_on_path_error(rudp_session *s, rudp_tstamp now) {
    s->now = now;
    rudp_sess_die(
        s, s->state == RUDP_SESS_CONNECTING ? RUDP_ERR_REFUSED : RUDP_ERR_PEER_RESET, now);
}

void rudp_session_on_stateless_reset(rudp_session *s, rudp_tstamp now) {
    if (s->state == RUDP_SESS_CLOSING && s->goaway_sent) {
        /* Our GoAway went out with every stream finished, and the peer
         * holds no session any more: the close is complete. */
        rudp_sess_note_closed(s, RUDP_OK);
        rudp_sess_set_state(s, RUDP_SESS_DONE);
        return;
    }
    rudp_sess_die(s, RUDP_ERR_PEER_RESET, now);
}

bool rudp_session_is_done(const rudp_session *s) {
    return s->state == RUDP_SESS_DONE;
}

bool rudp_session_is_established(const rudp_session *s) {
    return s->state != RUDP_SESS_CONNECTING;
}

bool rudp_session_is_validated(const rudp_session *s) {
    return s->validated;
}

bool rudp_session_take_ticket(rudp_session *s, rudp_ticket *t) {
    if (!s->ticket_ready)
        return false;
    *t = s->ticket;
    s->ticket_ready = false;
    memset(&s->ticket, 0, sizeof(s->ticket));
    return true;
}

bool rudp_session_resumed(const rudp_session *s) {
    /* A refused ticket is dropped before the keys come (rudp_sess_drop_ticket):
     * keys made while it is still set are the ticket's. */
    return s->is_client && s->keyed && s->settings.ticket_set;
}

int rudp_session_refuse_reason(const rudp_session *s) {
    return s->refuse_reason;
}

/* --- timers --- */

/* Returns the idle timeout both sides agreed on (the smaller that is set),
 * or 0 when neither caps silence. */
static rudp_tstamp sess_idle_timeout(const rudp_session *s) {
    rudp_tstamp t = s->settings.idle_timeout;
    if (s->peer_idle_timeout && (!t || s->peer_idle_timeout < t))
        t = s->peer_idle_timeout;
    return t;
}

/* Returns when silence ends the session, or NEVER: the idle timeout, if
 * one is set, and RUDP_EMPTY_TIMEOUT once no stream is left. */
static rudp_tstamp sess_silence_deadline(const rudp_session *s) {
    rudp_tstamp t = RUDP_TSTAMP_NEVER;
    if (s->goaway_sent) /* a closer's deadline is close_deadline */
        return t;
    if (sess_idle_timeout(s))
        t = s->last_recv + sess_idle_timeout(s);
    if (s->nstreams == 0 && s->state == RUDP_SESS_ESTABLISHED &&
        s->last_recv + RUDP_EMPTY_TIMEOUT < t)
        t = s->last_recv + RUDP_EMPTY_TIMEOUT;
    return t;
}

/* Returns true while the client has not seen the server's SYN-ACK. */
static bool sess_client_unconfirmed(const rudp_session *s) {
    return s->is_client && s->state == RUDP_SESS_CONNECTING;
}

/* Returns true while the handshake has a deadline: a client without the
 * SYN-ACK, a server whose client has not proved its address. */
static bool sess_handshaking(const rudp_session *s) {
    return sess_client_unconfirmed(s) || (!s->validated && s->state < RUDP_SESS_DRAINING);
}

/* Returns when a keepalive Ping is due, or NEVER: every keepalive_interval
 * of idleness while streams are open (NAT bindings), and as the streams'
 * SO_KEEPALIVE asks (rudp_sess_probe_time). */
static rudp_tstamp sess_keepalive_time(const rudp_session *s) {
    rudp_tstamp probe = rudp_sess_probe_time(s);
    if (!s->settings.keepalive_interval || s->nstreams == 0 || s->ping_pending ||
        s->state != RUDP_SESS_ESTABLISHED)
        return probe;
    rudp_tstamp t = s->last_activity + s->settings.keepalive_interval;
    return t < probe ? t : probe;
}

/* Returns the earliest time write_pkt could send something ack-eliciting,
 * or NEVER when nothing waits or the congestion window is full. */
static rudp_tstamp sess_send_time(const rudp_session *s, rudp_tstamp now) {
    if (rudp_sess_amp_blocked(s))
        return RUDP_TSTAMP_NEVER; /* until the client sends more, or proves itself */
    if (s->probes > 0)
        return now;
    if (s->state >= RUDP_SESS_DRAINING && !s->goaway_pending)
        return RUDP_TSTAMP_NEVER;
    if (!rudp_sess_has_pending(s) || rudp_recovery_cwnd_room(&s->rec) == 0)
        return RUDP_TSTAMP_NEVER;
    if (!s->settings.pacing)
        return now;
    rudp_pacer p = s->pacer;
    return rudp_pacer_next_time(&p, s->max_packet_size,
                                rudp_cc_pacing_rate(&s->rec.cc, &s->rec.rtt), now);
}

/* Returns the smaller of two times. */
static rudp_tstamp tmin(rudp_tstamp a, rudp_tstamp b) {
    return a < b ? a : b;
}

rudp_tstamp rudp_session_deadline(const rudp_session *s) {
    if (s->state == RUDP_SESS_DONE)
        return RUDP_TSTAMP_NEVER;
    rudp_tstamp t =
        rudp_sess_amp_blocked(s) ? RUDP_TSTAMP_NEVER : rudp_acktr_deadline(&s->acktr);
    if (s->state == RUDP_SESS_DRAINING)
        return tmin(tmin(t, s->drain_end), sess_send_time(s, s->now));
    t = tmin(t, rudp_recovery_deadline(&s->rec, sess_client_unconfirmed(s)));
    t = tmin(t, sess_send_time(s, s->now));
    t = tmin(t, sess_silence_deadline(s));
    t = tmin(t, s->live_check);
    t = tmin(t, sess_keepalive_time(s));
    t = tmin(t, s->close_deadline);
    if (sess_handshaking(s))
        t = tmin(t, s->created + s->settings.handshake_timeout);
    return t;
}

/* Re-queues the frames of the oldest outstanding packet so a PTO probe
 * carries them (RFC 9002 §6.2.4). */
static void sess_requeue_oldest(rudp_session *s) {
    const rudp_sent_pkt *old = rudp_recovery_oldest_outstanding(&s->rec);
    if (old)
        rudp_sess_requeue(s, old);
}

/* Runs the protocol timers that have expired at |now|. */
static void sess_run_timers(rudp_session *s, rudp_tstamp now) {
    if (sess_handshaking(s) && now >= s->created + s->settings.handshake_timeout) {
        rudp_sess_die(s, RUDP_ERR_TIMEDOUT, now);
        return;
    }
    if (now >= s->close_deadline) {
        /* Our GoAway went unacknowledged as long as the peer may be
         * silent: the close is over. */
        rudp_sess_note_closed(s, RUDP_OK);
        rudp_sess_set_state(s, RUDP_SESS_DONE);
        return;
    }
    if (now >= sess_silence_deadline(s)) {
        if (sess_idle_timeout(s) && now >= s->last_recv + sess_idle_timeout(s)) {
            rudp_sess_die(s, RUDP_ERR_TIMEDOUT, now);
            return;
        }
        rudp_session_close(s, RUDP_GOAWAY_NORMAL, now); /* no stream left: tell the peer */
    }
    if (now >= s->live_check)
        rudp_sess_check_liveness(s, now);
    if (now >= rudp_recovery_deadline(&s->rec, sess_client_unconfirmed(s))) {
        rudp_recovery_handler h = rudp_sess_recovery_handler(s);
        int probes = rudp_recovery_on_timeout(&s->rec, now, sess_client_unconfirmed(s), &h);
        if (rudp_sess_traced(s))
            rudp_sess_trace_recovery(s, now);
        if (probes > 0) {
            s->probes = (uint32_t)probes;
            sess_requeue_oldest(s);
        }
    }
    if (now >= sess_keepalive_time(s)) {
        if (now >= rudp_sess_probe_time(s)) /* before ping_pending hides it */
            s->ka_probe = now;
        s->ping_pending = true;
    }
}

int rudp_session_handle_timeout(rudp_session *s, rudp_tstamp now) {
    s->now = now;
    if (s->state == RUDP_SESS_DONE)
        return RUDP_OK;
    if (s->state == RUDP_SESS_DRAINING) {
        if (now >= s->drain_end)
            rudp_sess_set_state(s, RUDP_SESS_DONE);
        return RUDP_OK;
    }
    sess_run_timers(s, now);
    return RUDP_OK;
}

/* --- events --- */

/* Pops one event bit of the first stream on the event list into |ev|. */
static bool sess_pop_stream_event(rudp_session *s, rudp_event *ev) {
    static const struct {
        uint8_t bit;
        enum rudp_event_type type;
    } order[] = {
        {RUDP_SEV_OPENED, RUDP_EV_STREAM_OPENED},
        {RUDP_SEV_CONNECTED, RUDP_EV_STREAM_CONNECTED},
        {RUDP_SEV_RESET, RUDP_EV_STREAM_RESET},
        {RUDP_SEV_READABLE, RUDP_EV_STREAM_READABLE},
        {RUDP_SEV_WRITABLE, RUDP_EV_STREAM_WRITABLE},
    };
    rudp_stream *st = s->ev_list.head;
    if (!st)
        return false;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        if (!(st->events & order[i].bit))
            continue;
        st->events &= (uint8_t)~order[i].bit;
        ev->type = order[i].type;
        ev->sid = st->sid;
        ev->user = st->user;
        ev->error = order[i].bit == RUDP_SEV_RESET ? st->error : RUDP_OK;
        break;
    }
    if (st->events == 0)
        sess_stream_events_clear(s, st);
    return true;
}

bool rudp_session_poll_event(rudp_session *s, rudp_event *ev) {
    memset(ev, 0, sizeof(*ev));
    if (s->ev_established) {
        s->ev_established = false;
        ev->type = RUDP_EV_SESSION_ESTABLISHED;
        return true;
    }
    if (s->ev_listening) {
        s->ev_listening = false;
        ev->type = RUDP_EV_PEER_LISTENING;
        return true;
    }
    while (s->ev_list.head && s->validated) { /* nothing is delivered before */
        if (sess_pop_stream_event(s, ev))
            return true;
    }
    if (s->ev_closed) {
        s->ev_closed = false;
        ev->type = RUDP_EV_SESSION_CLOSED;
        ev->error = s->close_error;
        return true;
    }
    return false;
}

/* --- the listening state of the server's port --- */

void rudp_session_set_listening(rudp_session *s, bool listening) {
    if (s->is_client || s->listening == listening)
        return;
    s->listening = listening;
    s->listening_pending = true;
    s->listening_acked = false;
}

bool rudp_session_listening_known(const rudp_session *s) {
    return s->listening_acked;
}

bool rudp_session_peer_listening(const rudp_session *s) {
    return s->peer_listening;
}

bool rudp_session_is_client(const rudp_session *s) {
    return s->is_client;
}

rudp_addr rudp_session_peer(const rudp_session *s) {
    return s->peer_addr;
}

int rudp_session_cc_state(const rudp_session *s) {
    return rudp_cc_state(&s->rec.cc);
}

/* --- memory --- */

void rudp_session_trim(rudp_session *s, rudp_tstamp now) {
    rudp_chunk_pool_trim(&s->pool);
    rudp_recovery_trim(&s->rec, now);
    if (s->nbuckets > SESS_MIN_BUCKETS && s->nstreams * 4 <= s->nbuckets)
        sess_table_resize(s, s->nbuckets / 2);
}

/* --- info --- */

bool rudp_session_owns_cid(const rudp_session *s, uint64_t cid) {
    return cid == s->local_cid || (!s->is_client && cid == s->initial_cid);
}

void rudp_session_get_info(const rudp_session *s, rudp_session_info *info) {
    memset(info, 0, sizeof(*info));
    info->state = s->state;
    info->local_cid = s->local_cid;
    info->peer_cid = s->peer_cid;
    info->initial_cid = s->initial_cid;
    info->srtt = s->rec.rtt.smoothed;
    info->rttvar = s->rec.rtt.var;
    info->min_rtt = s->rec.rtt.min;
    info->latest_rtt = s->rec.rtt.latest;
    info->cwnd = s->rec.cc.cwnd;
    info->ssthresh = s->rec.cc.ssthresh;
    info->bytes_in_flight = s->rec.bytes_in_flight;
    info->pacing_rate =
        s->settings.pacing ? rudp_cc_pacing_rate(&s->rec.cc, &s->rec.rtt) : 0;
    info->pkts_sent = s->rec.pkts_sent;
    info->pkts_recv = s->pkts_recv;
    info->pkts_lost = s->rec.pkts_lost;
    info->pkts_spurious = s->rec.spurious_losses;
    info->pkts_dropped = s->pkts_dropped;
    info->pkts_auth_failed = s->pkts_auth_failed;
    info->migrations = s->migrations;
    info->validated = s->validated;
    info->bytes_sent = s->bytes_sent;
    info->bytes_recv = s->bytes_recv;
    info->stream_bytes_sent = s->stream_bytes_sent;
    info->pto_count_total = s->rec.pto_total;
    info->streams_open = s->nstreams;
    info->recv_window = s->fc.window;
    info->chunks_in_use = s->pool.in_use;
    info->max_packet_size = s->max_packet_size;
    for (uint32_t i = 0; i < s->nbuckets; i++)
        for (rudp_stream *st = s->buckets[i]; st; st = st->hnext) {
            info->stream_bytes_retransmitted += st->bytes_retransmitted;
            if (st->send_state != RUDP_SEND_RESET)
                info->stream_bytes_unacked += st->snd_written - st->snd_una;
        }
}

/* Returns true when the send half of |st| owes the peer nothing: it has
 * finished (all bytes and the FIN, or the RST, acknowledged), or it is still
 * open with every byte written so far acknowledged. */
static bool sess_stream_settled(const rudp_stream *st) {
    if (rudp_stream_send_finished(st))
        return true;
    return st->send_state == RUDP_SEND_OPEN && st->snd_una == st->snd_written;
}

bool rudp_session_is_settled(const rudp_session *s) {
    if (s->state >= RUDP_SESS_DRAINING)
        return true; /* over: nothing more can be delivered */
    for (uint32_t i = 0; i < s->nbuckets; i++)
        for (rudp_stream *st = s->buckets[i]; st; st = st->hnext)
            if (!sess_stream_settled(st))
                return false;
    return true;
}

/* --- the stream API --- */

int rudp_stream_open(rudp_session *s, uint64_t *sid) {
    if (s->state != RUDP_SESS_CONNECTING && s->state != RUDP_SESS_ESTABLISHED)
        return RUDP_ERR_CLOSED;
    if (s->local_opened >= s->local_allowed)
        return RUDP_ERR_STREAM_LIMIT;
    uint64_t id = 2 * s->local_opened + (s->is_client ? 1 : 2);
    rudp_stream *st = rudp_sess_stream_new(s, id, true, s->now);
    if (!st)
        return RUDP_ERR_NOMEM;
    s->local_opened++;
    rudp_sess_send_list_add(s, st);
    *sid = id;
    return RUDP_OK;
}

/* Returns the live (not released) stream |sid|, or NULL. */
static rudp_stream *sess_app_stream(const rudp_session *s, uint64_t sid) {
    rudp_stream *st = rudp_sess_find(s, sid);
    return st && !st->released ? st : NULL;
}

/* The program wrote into |st|: queues it.  Data written into a sender that
 * had nothing to send and room in its window marks the flow app-limited
 * (CheckIfApplicationLimited of the delivery-rate draft, on a write, as
 * Linux's tcp_sendmsg does): the next flight's rate samples then say what
 * the program offered, not what the path carries.  Marking only when a
 * send finds nothing left was too late for request/response: the ACKs of
 * the previous flight cleared the mark before the next response came, so
 * BBR took a loopback server's response rate (under 2 MB/s) for the
 * bottleneck, left Startup on its plateau and paced nginx down to a few
 * kB/s. */
static void sess_app_wrote(rudp_session *s, rudp_stream *st) {
    if (s->send_list.head == NULL && rudp_recovery_cwnd_room(&s->rec) > 0)
        rudp_recovery_on_app_limited(&s->rec);
    rudp_sess_send_list_add(s, st);
}

ssize_t rudp_stream_write(rudp_session *s, uint64_t sid, const void *data, size_t len) {
    rudp_stream *st = sess_app_stream(s, sid);
    if (!st)
        return RUDP_ERR_NO_STREAM;
    ssize_t n = rudp_stream_send_append(st, data, len, s->settings.stream_send_buffer);
    if (n > 0)
        sess_app_wrote(s, st);
    return n;
}

int rudp_stream_write_reserve(rudp_session *s, uint64_t sid, size_t len, struct iovec *iov,
                              int max) {
    rudp_stream *st = sess_app_stream(s, sid);
    if (!st)
        return RUDP_ERR_NO_STREAM;
    return rudp_stream_append_reserve(st, len, s->settings.stream_send_buffer, iov, max);
}

int rudp_stream_write_commit(rudp_session *s, uint64_t sid, size_t n) {
    rudp_stream *st = sess_app_stream(s, sid);
    if (!st)
        return RUDP_ERR_NO_STREAM;
    int rv = rudp_stream_append_commit(st, n);
    if (rv == RUDP_OK && n > 0)
        sess_app_wrote(s, st);
    return rv;
}

/* The application took |n| bytes of |st|: credit both windows and queue a
 * WINDOW_UPDATE when one is due. */
static void sess_app_consumed(rudp_session *s, rudp_stream *st, uint64_t n) {
    uint64_t before = st->fc.window;
    if (rudp_fc_on_consume(&st->fc, n, s->rec.rtt.smoothed, s->now) &&
        !rudp_stream_recv_finished(st))
        rudp_sess_send_list_add(s, st);
    if (st->fc.window > before)
        sess_window_track(s, st->fc.window - before);
    rudp_sess_consume(s, n, s->now);
}

ssize_t rudp_stream_read(rudp_session *s, uint64_t sid, void *buf, size_t len) {
    rudp_stream *st = sess_app_stream(s, sid);
    if (!st)
        return RUDP_ERR_NO_STREAM;
    ssize_t n = rudp_stream_recv_read(st, buf, len);
    if (n > 0)
        sess_app_consumed(s, st, (uint64_t)n);
    return n;
}

ssize_t rudp_stream_peek(rudp_session *s, uint64_t sid, const uint8_t **data) {
    rudp_stream *st = sess_app_stream(s, sid);
    if (!st)
        return RUDP_ERR_NO_STREAM;
    return rudp_stream_recv_peek(st, data);
}

int rudp_stream_consume(rudp_session *s, uint64_t sid, size_t n) {
    rudp_stream *st = sess_app_stream(s, sid);
    if (!st)
        return RUDP_ERR_NO_STREAM;
    if (n > rudp_stream_recv_ready(st))
        return RUDP_ERR_INVAL;
    rudp_stream_recv_consume(st, n);
    if (n > 0)
        sess_app_consumed(s, st, n);
    return RUDP_OK;
}

ssize_t rudp_stream_send_room(const rudp_session *s, uint64_t sid) {
    const rudp_stream *st = rudp_sess_find(s, sid);
    if (!st || st->released)
        return RUDP_ERR_NO_STREAM;
    if (st->send_state != RUDP_SEND_OPEN)
        return 0;
    uint64_t space = rudp_stream_send_space(st, s->settings.stream_send_buffer);
    return space > SSIZE_MAX ? SSIZE_MAX : (ssize_t)space;
}

int rudp_stream_shutdown_write(rudp_session *s, uint64_t sid) {
    rudp_stream *st = sess_app_stream(s, sid);
    if (!st)
        return RUDP_ERR_NO_STREAM;
    if (st->send_state == RUDP_SEND_RESET)
        return st->error ? st->error : RUDP_ERR_RESET;
    if (st->send_state == RUDP_SEND_OPEN) {
        st->send_state = RUDP_SEND_FIN_QUEUED;
        rudp_sess_send_list_add(s, st);
    }
    return RUDP_OK;
}

int rudp_stream_reset(rudp_session *s, uint64_t sid, uint32_t code) {
    rudp_stream *st = sess_app_stream(s, sid);
    if (!st)
        return RUDP_ERR_NO_STREAM;
    if (st->send_state != RUDP_SEND_RESET || !st->rst_queued)
        rudp_sess_stream_abort(s, st, code, RUDP_ERR_RESET);
    return RUDP_OK;
}

int rudp_stream_release(rudp_session *s, uint64_t sid) {
    rudp_stream *st = sess_app_stream(s, sid);
    if (!st)
        return RUDP_ERR_NO_STREAM;
    bool reset = st->send_state == RUDP_SEND_RESET;
    if (!reset && rudp_stream_recv_ready(st) > 0) {
        /* Unread data at close: abort, as TCP does. */
        rudp_sess_stream_abort(s, st, RUDP_RST_ABORT, RUDP_ERR_RESET);
    } else if (!reset && st->send_state == RUDP_SEND_OPEN) {
        st->send_state = RUDP_SEND_FIN_QUEUED;
        rudp_sess_send_list_add(s, st);
    }
    st->released = true;
    sess_stream_events_clear(s, st);
    rudp_sess_stream_maybe_free(s, st);
    rudp_sess_check_close(s, s->now);
    return RUDP_OK;
}

int rudp_stream_get_info(const rudp_session *s, uint64_t sid, rudp_stream_info *info) {
    const rudp_stream *st = rudp_sess_find(s, sid);
    if (!st)
        return RUDP_ERR_NO_STREAM;
    memset(info, 0, sizeof(*info));
    info->state = rudp_stream_state_of(st);
    info->bytes_written = st->snd_written;
    info->bytes_acked = st->snd_una;
    info->bytes_read = st->rcv_read;
    info->bytes_readable = rudp_stream_recv_ready(st);
    info->send_window = st->snd_limit > st->snd_next ? st->snd_limit - st->snd_next : 0;
    info->recv_window = st->fc.window;
    info->error = st->error;
    return RUDP_OK;
}

int rudp_stream_set_user(rudp_session *s, uint64_t sid, void *user) {
    rudp_stream *st = rudp_sess_find(s, sid);
    if (!st)
        return RUDP_ERR_NO_STREAM;
    st->user = user;
    return RUDP_OK;
}

void *rudp_stream_get_user(const rudp_session *s, uint64_t sid) {
    const rudp_stream *st = rudp_sess_find(s, sid);
    return st ? st->user : NULL;
}
