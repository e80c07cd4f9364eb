/*
 * rt_bridge.c — one stream joined to the engine's end of a program's
 * AF_UNIX socketpair (DESIGN.md §2 rule 2).
 *
 * Program to network: when the engine's end is readable, the bridge asks
 * the stream for free space at the tail of its send buffer
 * (rudp_stream_write_reserve), reads the socket straight into it with one
 * readv, and commits what came: one copy, kernel to send buffer.  When the
 * buffer is full it stops watching the fd until the stream reports
 * WRITABLE, so a program writing faster than the path sees its socket fill
 * up and block: backpressure end to end, nothing buffered without bound.
 * EOF from the program (shutdown(SHUT_WR) or close) becomes the stream's
 * FIN, or an RST when the program asked for SO_LINGER {1, 0}; a program
 * that closes with unread data makes our read fail with ECONNRESET, and
 * that becomes an RST, as TCP does.
 *
 * Network to program: bytes are sent straight from the stream's receive
 * buffer (rudp_stream_peek) into the socket and consumed only as far as the
 * socket took them, so the stream's flow-control window closes when the
 * program stops reading.  The peer's FIN becomes shutdown(SHUT_WR) after the
 * last byte: the program reads EOF.
 *
 * Failures (refused, reset, timed out) are written to the board slot first
 * and then the socket is shut, so the program that wakes up finds the
 * error to report.
 */
#include "rt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RT_IO_CHUNK 65536
#define RT_IO_IOV 5 /* covers RT_IO_CHUNK from any offset in a 16 KiB chunk */
/* A small message handed to the program is often a request it answers at
 * once: the loop polls that long for the answer instead of sleeping. */
#define RT_SPIN_MAX_MSG 4096
#define RT_SPIN_NS RUDP_US(60)

struct rt_bridge {
    rt_sess *rs;
    rudp_session *s; /* rs's, kept at hand */
    rt_engine *eng;
    uint64_t sid;
    int fd;    /* the engine's end; -1 once closed */
    ev_io rio; /* program -> network: fd readable */
    ev_io wio; /* network -> program: fd writable */
    rudp_slot_ref slot;
    size_t filler;          /* bytes of connect filler still to discard */
    bool connected;         /* the program may use the connection */
    bool app_eof;           /* the program shut its write side (or closed) */
    bool net_eof;           /* the peer's FIN was passed on (SHUT_WR done) */
    bool dead;              /* reset or failed: no more traffic */
    bool exit_drain;        /* process exiting: FIN once the socket reads empty */
    bool sess_over;         /* the session ended: deliver what is left, then end */
    bool orphan;            /* the peer had finished and its session is gone:
                               the program's next byte meets a reset */
    int sess_err;           /* why (rudp_error), reported after the last byte */
    uint32_t opt_gen;       /* generation of the slot's options applied */
    rt_bridge *next, *prev; /* in the session's list */
};

static void bridge_on_readable(struct ev_loop *loop, ev_io *w, int revents);
static void bridge_on_writable(struct ev_loop *loop, ev_io *w, int revents);
static bool bridge_pump_out(rt_bridge *b);
static void bridge_orphan_read(rt_bridge *b);

rt_bridge *rt_bridge_new(rt_sess *rs, uint64_t sid, int fd, const rudp_slot_ref *slot,
                         size_t filler) {
    rt_bridge *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->rs = rs;
    b->s = rt_sess_core(rs);
    b->eng = rt_sess_engine(rs);
    b->sid = sid;
    b->fd = fd;
    b->slot = *slot;
    b->filler = filler;
    /* |fd| is non-blocking already: made so by the shim's socketpair
     * (rudp_rt_connect) or by rt_accept's socket().  A system call costs
     * about 1 us on the VMs measured (docs/BENCHMARKS.md, issue 14). */
    /* An urgent byte the program sends (MSG_OOB) is read in its place in
     * the stream, never skipped: it reaches the peer inline. */
    int one = 1;
    rt_sys.setsockopt(fd, SOL_SOCKET, SO_OOBINLINE, &one, sizeof(one));
    ev_io_init(&b->rio, bridge_on_readable, fd, EV_READ);
    b->rio.data = b;
    ev_io_init(&b->wio, bridge_on_writable, fd, EV_WRITE);
    b->wio.data = b;
    rt_bridge **head = rt_sess_bridges(rs);
    b->next = *head;
    if (b->next)
        b->next->prev = b;
    *head = b;
    rudp_stream_set_user(b->s, sid, b);
    if (filler == 0) /* fast open: the first bytes ride the opening datagram */
        ev_io_start(b->eng->loop, &b->rio);
    rt_bridge_sync_opts(b, rt_now());
    return b;
}

void rt_bridge_sync_opts(rt_bridge *b, rudp_tstamp now) {
    rudp_slot_opts o;
    if (b->dead || !b->slot.slot || !rudp_slot_take_opts(b->slot.slot, &b->opt_gen, &o))
        return;
    rudp_liveness l = {
        .user_timeout = RUDP_MS(o.user_timeout_ms),
        .ka_idle = RUDP_SEC(o.ka_idle_s),
        .ka_intvl = RUDP_SEC(o.ka_intvl_s),
        .ka_cnt = o.ka_cnt,
    };
    if (rudp_stream_set_liveness(b->s, b->sid, &l, now) == RUDP_OK)
        rt_sess_touch(b->rs); /* the session's deadline may be sooner */
}

rt_bridge *rt_bridge_next(const rt_bridge *b) {
    return b->next;
}

/* --- ending --- */

/* Logs one line of statistics for a connection that ends (info level). */
static void bridge_log_summary(const rt_bridge *b) {
    rudp_stream_info si;
    rudp_session_info in;
    if (b->eng->cfg.log_level < 2 || rudp_stream_get_info(b->s, b->sid, &si) != RUDP_OK)
        return;
    rudp_session_get_info(b->s, &in);
    char how[64] = "closed";
    if (si.state == RUDP_STREAM_RESET)
        snprintf(how, sizeof(how), "ended (%s)",
                 si.error == RUDP_OK ? "reset" : rudp_strerror(si.error));
    rt_log(2,
           "stream %llu %s: sent %llu B (acked %llu), received %llu B; session: "
           "srtt %.3f ms, min_rtt %.3f ms, cwnd %llu B, %llu packets sent, %llu lost, "
           "%llu B retransmitted, over UDP",
           (unsigned long long)b->sid, how, (unsigned long long)si.bytes_written,
           (unsigned long long)si.bytes_acked, (unsigned long long)si.bytes_read,
           in.srtt / 1e6, in.min_rtt / 1e6, (unsigned long long)in.cwnd,
           (unsigned long long)in.pkts_sent, (unsigned long long)in.pkts_lost,
           (unsigned long long)in.stream_bytes_retransmitted);
}

/* Takes |b| out of its session's list. */
static void bridge_unlink(rt_bridge *b) {
    if (b->prev)
        b->prev->next = b->next;
    else
        *rt_sess_bridges(b->rs) = b->next;
    if (b->next)
        b->next->prev = b->prev;
}

void rt_bridge_free(rt_bridge *b) {
    bridge_log_summary(b);
    bridge_unlink(b);
    ev_io_stop(b->eng->loop, &b->rio);
    ev_io_stop(b->eng->loop, &b->wio);
    if (b->fd >= 0 && b->filler > 0)
        rt_fd_drain_but_one(b->fd, b->filler); /* a connect that failed */
    if (b->fd >= 0) {
        rt_sys.shutdown(b->fd, SHUT_RDWR);
        rt_sys.close(b->fd);
    }
    rudp_stream_set_user(b->s, b->sid, NULL);
    rudp_stream_release(b->s, b->sid);
    /* The program may still hold the fd, in this process or another: the
     * slot is retired, and freed only after many later ends. */
    if (b->slot.slot && b->slot.eid == rudp_board_eid(b->eng->board))
        rudp_board_retire(b->eng->board, b->slot.index);
    rt_sess_bridge_gone(b->rs);
    free(b);
}

/* Frees the bridge once both directions are over.  Returns true when it
 * did. */
static bool bridge_maybe_finish(rt_bridge *b) {
    if (!(b->app_eof && b->net_eof) && !b->dead)
        return false;
    if (!b->dead && b->slot.slot)
        rudp_slot_set_state(b->slot.slot, RUDP_SLOT_DONE);
    rt_bridge_free(b);
    return true;
}

/* The stream or session died with |rudp_err|: the slot says so first,
 * then the fd is shut (the bridge is freed).  A reset after the peer's FIN
 * reads as a broken pipe, as TCP's does in CLOSE_WAIT (the peer closed
 * normally and then refused more data): no ECONNRESET. */
static void bridge_fail(rt_bridge *b, int rudp_err) {
    if (b->net_eof && rudp_err == RUDP_ERR_RESET)
        rudp_err = RUDP_ERR_SYS(EPIPE);
    if (b->slot.slot)
        rudp_slot_fail(b->slot.slot, rudp_err);
    rt_log(3, "stream %llu failed: %s", (unsigned long long)b->sid,
           rudp_strerror(rudp_err));
    b->dead = true;
    bridge_maybe_finish(b);
}

/* Aborts the stream with RST (the program closed abruptly). */
static void bridge_abort(rt_bridge *b) {
    rudp_stream_reset(b->s, b->sid, 0);
    rt_sess_touch(b->rs);
    b->dead = true;
    bridge_maybe_finish(b);
}

/* --- program to network --- */

/* Discards the connect filler; returns false while some is still due. */
static bool bridge_drop_filler(rt_bridge *b) {
    char buf[RT_IO_CHUNK];
    while (b->filler > 0) {
        size_t want = b->filler < sizeof(buf) ? b->filler : sizeof(buf);
        ssize_t n = rt_sys.recv(b->fd, buf, want, MSG_DONTWAIT);
        if (n > 0) {
            b->filler -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return false;
    }
    return true;
}

void rt_bridge_connected(rt_bridge *b) {
    if (b->connected || b->dead)
        return;
    b->connected = true;
    if (b->slot.slot)
        rudp_slot_set_state(b->slot.slot, RUDP_SLOT_CONNECTED);
    bridge_drop_filler(b);
    if (!b->app_eof)
        ev_io_start(b->eng->loop, &b->rio);
}

/* The program ended its write side: FIN, or RST when it asked for one. */
static void bridge_app_eof(rt_bridge *b) {
    b->app_eof = true;
    ev_io_stop(b->eng->loop, &b->rio);
    uint32_t flags = b->slot.slot ? rudp_slot_flags(b->slot.slot) : 0;
    if (flags & RUDP_SLOT_F_RESET_ON_CLOSE) {
        bridge_abort(b);
        return;
    }
    rudp_stream_shutdown_write(b->s, b->sid);
    rt_sess_touch(b->rs);
    bridge_maybe_finish(b);
}

/* Handles a read of the program's end that brought no bytes (|n| 0: EOF,
 * else -1 with errno).  Returns false when the bridge was freed. */
static bool bridge_read_end(rt_bridge *b, ssize_t n) {
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !b->exit_drain)
        return true;
    if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK)
        bridge_app_eof(b); /* EOF, or an exiting program wrote all it will */
    else
        bridge_abort(b); /* ECONNRESET: closed with unread data */
    return false;
}

/* Reads program bytes straight into the stream's send buffer while it has
 * room.  Returns false when the bridge was freed. */
static bool bridge_pump_in(rt_bridge *b) {
    if (b->filler > 0 && !bridge_drop_filler(b))
        return true;
    for (;;) {
        struct iovec iov[RT_IO_IOV];
        int niov = rudp_stream_write_reserve(b->s, b->sid, RT_IO_CHUNK, iov, RT_IO_IOV);
        if (niov <= 0) {
            ev_io_stop(b->eng->loop, &b->rio); /* resumed on WRITABLE */
            return true;
        }
        size_t want = 0;
        for (int i = 0; i < niov; i++)
            want += iov[i].iov_len;
        ssize_t n = rt_sys.readv(b->fd, iov, niov);
        int saved = errno;
        rudp_stream_write_commit(b->s, b->sid, n > 0 ? (size_t)n : 0);
        errno = saved;
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return bridge_read_end(b, n);
        rt_sess_touch(b->rs);
        rt_spin_note_write(b->eng->spin);
        /* A short read emptied the socket: the watcher (level-triggered)
         * says when more comes, without a read that finds nothing.  The
         * exit drain must see that nothing is left, so it reads on. */
        if ((size_t)n < want && !b->exit_drain)
            return true;
    }
}

static void bridge_on_readable(struct ev_loop *loop, ev_io *w, int revents) {
    rt_bridge *b = w->data;
    if (b->orphan)
        bridge_orphan_read(b);
    else
        bridge_pump_in(b);
}

/* --- network to program --- */

/* The program cannot take more (EPIPE): after a close, abort like TCP;
 * after shutdown(SHUT_RD), keep discarding.  Returns false when the bridge
 * was freed. */
static bool bridge_out_closed(rt_bridge *b, size_t n) {
    if (b->app_eof) {
        bridge_abort(b);
        return false;
    }
    rudp_stream_consume(b->s, b->sid, n);
    rt_sess_touch(b->rs);
    return true;
}

/* Returns true when bytes the program wrote are not yet acknowledged. */
static bool bridge_unacked(const rt_bridge *b) {
    rudp_stream_info info;
    return rudp_stream_get_info(b->s, b->sid, &info) == RUDP_OK &&
           info.bytes_acked < info.bytes_written;
}

/* The peer's FIN has been read: passes EOF on.  After the session ended
 * nothing else can come, so the bridge ends (the program still reads what
 * the socket holds, then EOF).  Returns false when the bridge was freed. */
static bool bridge_net_eof(rt_bridge *b) {
    ev_io_stop(b->eng->loop, &b->wio);
    if (!b->net_eof) {
        b->net_eof = true;
        rt_sys.shutdown(b->fd, SHUT_WR);
    }
    if (b->sess_over && !b->app_eof && bridge_unacked(b)) {
        /* The peer left with bytes the program wrote after its FIN
         * unacknowledged: TCP's peer would have reset them. */
        bridge_fail(b, RUDP_ERR_RESET);
        return false;
    }
    if (b->sess_over && !b->app_eof) {
        /* The peer finished and left.  As a TCP socket in CLOSE_WAIT, the
         * program may still write: the first write is taken, and the
         * peer's reset makes the ones after it fail (bridge_orphan_read). */
        b->orphan = true;
        ev_io_start(b->eng->loop, &b->rio);
        return true;
    }
    if (b->sess_over) { /* the peer had finished: the connection ends cleanly */
        if (b->slot.slot)
            rudp_slot_set_state(b->slot.slot, RUDP_SLOT_DONE);
        b->dead = true;
    }
    return !bridge_maybe_finish(b);
}

/* An orphan's end is readable: bytes the program wrote into a connection
 * whose peer has gone fail it with EPIPE, as TCP's peer resets a write
 * after its close; its EOF ends it cleanly. */
static void bridge_orphan_read(rt_bridge *b) {
    char buf[4096];
    ssize_t n = rt_sys.recv(b->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n > 0) {
        bridge_fail(b, RUDP_ERR_SYS(EPIPE));
        return;
    }
    if (b->slot.slot)
        rudp_slot_set_state(b->slot.slot, RUDP_SLOT_DONE);
    b->dead = true;
    bridge_maybe_finish(b);
}

/* Hands the program |n| bytes at |p|.  Returns 1 to go on, 0 to wait for
 * the socket, -1 when the bridge was freed. */
static int bridge_send(rt_bridge *b, const uint8_t *p, size_t n) {
    ssize_t w = rt_sys.send(b->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w > 0) {
        rudp_stream_consume(b->s, b->sid, (size_t)w);
        rt_sess_touch(b->rs);
        if (w < RT_SPIN_MAX_MSG)
            rt_spin_arm(b->eng->spin, RT_SPIN_NS);
        return 1;
    }
    if (w < 0 && errno == EINTR)
        return 1;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        ev_io_start(b->eng->loop, &b->wio);
        return 0;
    }
    return bridge_out_closed(b, n) ? 1 : -1;
}

/* Moves stream bytes into the program's socket while it takes them; when
 * the socket is full, waits for it to drain (also after the session has
 * ended: delivered bytes are the program's).  Returns false when the bridge
 * was freed. */
static bool bridge_pump_out(rt_bridge *b) {
    for (;;) {
        const uint8_t *p;
        ssize_t n = rudp_stream_peek(b->s, b->sid, &p);
        if (n == RUDP_ERR_WOULDBLOCK && !b->sess_over) {
            ev_io_stop(b->eng->loop, &b->wio);
            return true;
        }
        if (n == 0)
            return bridge_net_eof(b);
        if (n < 0) {
            bridge_fail(b, n == RUDP_ERR_WOULDBLOCK ? b->sess_err : (int)n);
            return false;
        }
        int rv = bridge_send(b, p, (size_t)n);
        if (rv <= 0)
            return rv == 0;
    }
}

static void bridge_on_writable(struct ev_loop *loop, ev_io *w, int revents) {
    bridge_pump_out(w->data);
}

/* --- events --- */

void rt_bridge_accepted(rt_bridge *b) {
    rt_bridge_connected(b);
    if (rt_sess_closing(b->rs)) /* it waited for a full queue while its session ended */
        rt_bridge_session_closed(b, rt_sess_close_err(b->rs));
    else
        bridge_pump_out(b);
}

void rt_bridge_session_closed(rt_bridge *b, int rudp_err) {
    if (b->dead) {
        bridge_maybe_finish(b);
        return;
    }
    b->sess_over = true;
    b->sess_err = rudp_err;
    ev_io_stop(b->eng->loop, &b->rio); /* nothing more can be sent */
    bridge_pump_out(b);
}

void rt_bridge_on_event(rt_bridge *b, const rudp_event *ev) {
    switch (ev->type) {
    case RUDP_EV_STREAM_READABLE:
        if (b->connected || b->filler == 0)
            bridge_pump_out(b);
        break;
    case RUDP_EV_STREAM_WRITABLE:
        if (b->app_eof || (!b->connected && b->filler > 0))
            break;
        ev_io_start(b->eng->loop, &b->rio);
        if (b->exit_drain) /* an emptied socket never becomes readable */
            bridge_pump_in(b);
        break;
    case RUDP_EV_STREAM_CONNECTED: /* the server's program took it */
        rt_bridge_connected(b);
        break;
    case RUDP_EV_STREAM_RESET:
        bridge_fail(b, ev->error);
        break;
    default:
        break;
    }
}

/* --- statistics, exit, fork --- */

/* Returns |v| capped to 32 bits. */
static uint32_t cap32(uint64_t v) {
    return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

/* Copies what rudp-stat shows beyond TCP_INFO into the slot. */
static void bridge_publish_detail(rt_bridge *b, const rudp_session_info *in,
                                  const rudp_stream_info *si, uint64_t now) {
    rudp_slot_detail d = {
        .session_id = in->local_cid,
        .stream_id = b->sid,
        .role = rudp_session_is_client(b->s) ? 1 : 2,
        .cc_algo = (uint8_t)b->eng->cfg.settings.cc,
        .cc_state = (uint8_t)rudp_session_cc_state(b->s),
        .stream_state = (uint8_t)si->state,
        .max_packet_size = in->max_packet_size,
        .bytes_in_flight = in->bytes_in_flight,
        .pkts_sent = in->pkts_sent,
        .pkts_lost = in->pkts_lost,
        .migrations = in->migrations,
        .snd_buf = si->bytes_written - si->bytes_acked,
        .rcv_buf = si->bytes_readable,
        .snd_wnd = si->send_window,
        .rcv_wnd = si->recv_window,
        .updated_ns = now,
    };
    rt_sess_addrs(b->rs, &d.local, &d.peer);
    rudp_slot_publish_detail(b->slot.slot, &d);
}

void rt_bridge_publish(rt_bridge *b, const rudp_session_info *in) {
    rudp_stream_info si;
    if (!b->slot.slot || rudp_stream_get_info(b->s, b->sid, &si) != RUDP_OK)
        return;
    rudp_slot_stats st = {
        .rtt_us = (uint32_t)(in->srtt / 1000),
        .rttvar_us = (uint32_t)(in->rttvar / 1000),
        .min_rtt_us = (uint32_t)(in->min_rtt / 1000),
        .snd_cwnd = cap32(in->cwnd),
        .snd_ssthresh = cap32(in->ssthresh),
        .snd_mss = in->max_packet_size,
        .pmtu = in->max_packet_size + 28,
        .retransmits = (uint32_t)in->pto_count_total,
        .lost = (uint32_t)in->pkts_lost,
        .total_retrans = (uint32_t)in->pkts_lost,
        .bytes_sent = si.bytes_written,
        .bytes_retrans = in->stream_bytes_retransmitted,
        .bytes_acked = si.bytes_acked,
        .bytes_received = si.bytes_read,
        .delivery_rate = in->srtt ? in->cwnd * 1000000000ull / in->srtt : 0,
        .pacing_rate = in->pacing_rate,
        .updated_ns = rt_now(),
    };
    rudp_slot_publish(b->slot.slot, &st);
    bridge_publish_detail(b, in, &si, st.updated_ns);
}

void rt_bridge_exit_drain(rt_bridge *b) {
    if (b->dead || b->app_eof)
        return;
    if (!b->connected && b->filler > 0) {
        /* The program never got a writable socket: it wrote nothing. */
        bridge_app_eof(b);
        return;
    }
    b->exit_drain = true;
    ev_io_start(b->eng->loop, &b->rio);
    bridge_pump_in(b);
}

bool rt_bridge_drained(const rt_bridge *b) {
    return b->app_eof || b->dead;
}

int rt_bridge_fd(const rt_bridge *b) {
    return b->fd;
}
