/*
 * session_live.c — when a silent peer is dead: TCP's idle semantics
 * (docs/PROTOCOL.md "When a peer is dead").
 *
 * Silence alone never ends a session: a TCP connection with nothing to
 * send lives for ever, however long its peer says nothing.  A stream gives
 * up on its peer, with RUDP_ERR_TIMEDOUT, in the three cases TCP does:
 *
 *   unacknowledged data  bytes or the FIN went out and nothing of the
 *                        stream's has been acknowledged for its user
 *                        timeout (TCP_USER_TIMEOUT), or the session's
 *                        retry_timeout (tcp_retries2: about 15 minutes);
 *                        for a stream the program has closed, at most
 *                        RUDP_ORPHAN_TIMEOUT (TCP's orphan retries);
 *   keepalive            with ka_idle set (SO_KEEPALIVE), the session
 *                        probes the peer after ka_idle of silence and every
 *                        ka_intvl after, and the stream dies ka_cnt
 *                        intervals after the first probe (with a user
 *                        timeout, when that much silence has passed, as
 *                        Linux lets TCP_USER_TIMEOUT override the count).
 *
 * The settings' idle_timeout, when set (RUDP_IDLE_TIMEOUT_MS), still caps
 * silence for the whole session (session.c).  A session left with no
 * stream at all ends itself after RUDP_EMPTY_TIMEOUT of silence, so a
 * vanished client's session does not stay on a server for ever.
 *
 * Progress is per stream: progress_at moves when an ACK acknowledges the
 * stream's data, and when data goes out while nothing of the stream was
 * unacknowledged.  Rather than a timer per stream, the session keeps one
 * time, live_check, no later than the earliest stream deadline; when it
 * passes, one sweep over the streams ends those whose time has come and
 * finds the next.  Progress only moves deadlines later, so a sweep that
 * comes early finds nothing and re-arms.
 */
#include "session.h"

/* Returns how long |st|'s unacknowledged data may wait for progress. */
static rudp_tstamp live_retry_span(const rudp_session *s, const rudp_stream *st) {
    rudp_tstamp t =
        st->live.user_timeout ? st->live.user_timeout : s->settings.retry_timeout;
    if (st->released && t > RUDP_ORPHAN_TIMEOUT)
        t = RUDP_ORPHAN_TIMEOUT;
    return t;
}

/* Returns how much silence a keepalive stream survives. */
static rudp_tstamp live_keepalive_span(const rudp_stream *st) {
    const rudp_liveness *l = &st->live;
    if (l->user_timeout)
        return l->user_timeout > l->ka_idle ? l->user_timeout : l->ka_idle;
    return l->ka_idle + l->ka_intvl * l->ka_cnt;
}

/* Returns when |st| gives up on the peer, or NEVER. */
static rudp_tstamp live_stream_deadline(const rudp_session *s, const rudp_stream *st) {
    rudp_tstamp t = RUDP_TSTAMP_NEVER;
    if (st->send_state == RUDP_SEND_RESET || st->recv_state == RUDP_RECV_RESET)
        return t;
    if (rudp_stream_unacked(st))
        t = st->progress_at + live_retry_span(s, st);
    if (st->live.ka_idle && !st->released) {
        rudp_tstamp k = s->last_recv + live_keepalive_span(st);
        t = k < t ? k : t;
    }
    return t;
}

/* Ends |st| as TCP ends a connection whose peer stopped answering: the
 * program sees ETIMEDOUT; one RST tells the peer, if it is there at all,
 * and is never waited for. */
static void live_time_out(rudp_session *s, rudp_stream *st) {
    rudp_sess_stream_abort(s, st, RUDP_RST_ABORT, RUDP_ERR_TIMEDOUT);
    st->rst_acked = true; /* a lost copy is not sent again */
    rudp_sess_stream_event(s, st, RUDP_SEV_RESET | RUDP_SEV_READABLE | RUDP_SEV_WRITABLE);
}

/* Folds |st|'s keepalive options into the session's shortest ones. */
static void live_note_keepalive(rudp_session *s, const rudp_stream *st) {
    if (!st->live.ka_idle || st->released || st->send_state == RUDP_SEND_RESET)
        return;
    if (!s->ka_idle || st->live.ka_idle < s->ka_idle)
        s->ka_idle = st->live.ka_idle;
    if (!s->ka_intvl || st->live.ka_intvl < s->ka_intvl)
        s->ka_intvl = st->live.ka_intvl;
}

void rudp_sess_check_liveness(rudp_session *s, rudp_tstamp now) {
    rudp_tstamp next = RUDP_TSTAMP_NEVER;
    s->ka_idle = s->ka_intvl = 0;
    for (uint32_t i = 0; i < s->nbuckets; i++) {
        for (rudp_stream *st = s->buckets[i], *hnext; st; st = hnext) {
            hnext = st->hnext; /* timing out may free it */
            rudp_tstamp t = live_stream_deadline(s, st);
            if (t <= now) {
                live_time_out(s, st);
                rudp_sess_stream_maybe_free(s, st);
                continue;
            }
            next = t < next ? t : next;
            live_note_keepalive(s, st);
        }
    }
    s->live_check = next;
}

/* Brings live_check forward to |st|'s deadline. */
static void live_arm(rudp_session *s, const rudp_stream *st) {
    rudp_tstamp t = live_stream_deadline(s, st);
    if (t < s->live_check)
        s->live_check = t;
}

void rudp_sess_on_stream_sent(rudp_session *s, rudp_stream *st, rudp_tstamp now) {
    if (rudp_stream_unacked(st))
        return;
    st->progress_at = now;
    rudp_tstamp t = now + live_retry_span(s, st); /* the data is not committed yet */
    if (t < s->live_check)
        s->live_check = t;
}

rudp_tstamp rudp_sess_probe_time(const rudp_session *s) {
    if (!s->ka_idle || s->state != RUDP_SESS_ESTABLISHED || s->ping_pending)
        return RUDP_TSTAMP_NEVER;
    rudp_tstamp t = s->last_recv + s->ka_idle;
    if (s->ka_probe > s->last_recv && s->ka_probe + s->ka_intvl > t)
        t = s->ka_probe + s->ka_intvl; /* probing: once an interval */
    return t;
}

int rudp_stream_set_liveness(rudp_session *s, uint64_t sid, const rudp_liveness *live,
                             rudp_tstamp now) {
    rudp_stream *st = rudp_sess_find(s, sid);
    if (!st || st->released)
        return RUDP_ERR_NO_STREAM;
    if (live->ka_idle && (live->ka_intvl == 0 || live->ka_cnt == 0))
        return RUDP_ERR_INVAL;
    s->now = now;
    st->live = *live;
    live_note_keepalive(s, st);
    live_arm(s, st);
    return RUDP_OK;
}

void rudp_session_on_pause(rudp_session *s, rudp_tstamp gap) {
    s->last_recv += gap;
    s->last_activity += gap;
    if (s->ka_probe)
        s->ka_probe += gap;
    for (uint32_t i = 0; i < s->nbuckets; i++)
        for (rudp_stream *st = s->buckets[i]; st; st = st->hnext)
            st->progress_at += gap;
    if (s->live_check != RUDP_TSTAMP_NEVER)
        s->live_check += gap;
}
