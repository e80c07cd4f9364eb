/*
 * rt_bridge.c — one stream joined to the engine's end of a program's
 * AF_UNIX socketpair (DESIGN.md §2 rule 2).
 *
 * Program to network: when the engine's end is readable, the bridge reads
 * at most what the stream's send buffer can take (rudp_stream_send_room)
 * and writes it into the stream; when the buffer is full it stops watching
 * the fd until the stream reports WRITABLE, so a program writing faster
 * than the path sees its socket fill up and block: backpressure end to end,
 * nothing buffered without bound.  EOF from the program (shutdown(SHUT_WR)
 * or close) becomes the stream's FIN, or an RST when the program asked for
 * SO_LINGER {1, 0}; a program that closes with unread data makes our read
 * fail with ECONNRESET, and that becomes an RST, as TCP does.
 *
 * Network to program: bytes are sent straight from the stream's receive
 * buffer (rudp_stream_peek) into the socket and consumed only as far as the
 * socket took them, so the stream's flow-control window closes when the
 * program stops reading.  The peer's FIN becomes shutdown(SHUT_WR) after the
 * last byte: the program reads EOF.
 *
 * Failures (refused, reset, timed out) are written to the board slot first
 * and then the socket is shut, so the program that wakes up finds the
 * errno to report.
 */
#include "rt.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define RT_IO_CHUNK 65536
/* A small message handed to the program is often a request it answers at
 * once: the loop polls that long for the answer instead of sleeping. */
#define RT_SPIN_MAX_MSG 4096
#define RT_SPIN_NS RUDP_US(60)

static void rt_bridge_on_readable(struct ev_loop *loop, ev_io *w, int revents);
static void rt_bridge_on_writable(struct ev_loop *loop, ev_io *w, int revents);

rt_bridge *rt_bridge_new(rt_sess *rs, uint64_t sid, int fd, const rudp_slot_ref *slot,
                         size_t filler) {
    rt_bridge *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->rs = rs;
    b->sid = sid;
    b->fd = fd;
    b->slot = *slot;
    b->filler = filler;
    rt_fd_nonblock(fd);
    ev_io_init(&b->rio, rt_bridge_on_readable, fd, EV_READ);
    b->rio.data = b;
    ev_io_init(&b->wio, rt_bridge_on_writable, fd, EV_WRITE);
    b->wio.data = b;
    b->next = rs->bridges;
    if (b->next)
        b->next->prev = b;
    rs->bridges = b;
    rs->nbridges++;
    rudp_stream_set_user(rs->s, sid, b);
    if (filler == 0) /* fast open: the first bytes ride the opening datagram */
        ev_io_start(rs->eng->loop, &b->rio);
    return b;
}

rt_bridge *rt_bridge_find(rt_sess *rs, uint64_t sid) {
    return rudp_stream_get_user(rs->s, sid);
}

/* Sets the slot's state unless it already records a failure. */
static void bridge_slot_state(rt_bridge *b, uint32_t state) {
    if (!b->slot.slot)
        return;
    uint32_t cur = atomic_load(&b->slot.slot->state);
    if (cur != RUDP_SLOT_FAILED)
        atomic_store(&b->slot.slot->state, state);
}

/* Logs one line of statistics for a connection that ends (info level). */
void rt_bridge_log_summary(rt_bridge *b) {
    rt_sess *rs = b->rs;
    if (rs->eng->cfg.log_level < 2)
        return;
    rudp_stream_info si;
    rudp_session_info in;
    if (rudp_stream_get_info(rs->s, b->sid, &si) != RUDP_OK)
        return;
    rudp_session_get_info(rs->s, &in);
    char how[64] = "closed";
    if (si.state == RUDP_STREAM_RESET)
        snprintf(how, sizeof(how), "ended (%s)",
                 si.error == RUDP_OK ? "reset" : rudp_strerror(si.error));
    rt_log(rs->eng, 2,
           "stream %llu %s: sent %llu B (acked %llu), received %llu B; session: "
           "srtt %.3f ms, min_rtt %.3f ms, cwnd %llu B, %llu packets sent, %llu lost, "
           "%llu B retransmitted, over UDP",
           (unsigned long long)b->sid, how, (unsigned long long)si.bytes_written,
           (unsigned long long)si.bytes_acked, (unsigned long long)si.bytes_read,
           in.srtt / 1e6, in.min_rtt / 1e6, (unsigned long long)in.cwnd,
           (unsigned long long)in.pkts_sent, (unsigned long long)in.pkts_lost,
           (unsigned long long)in.stream_bytes_retransmitted);
}

void rt_bridge_free(rt_bridge *b) {
    rt_sess *rs = b->rs;
    rt_bridge_log_summary(b);
    if (b->prev)
        b->prev->next = b->next;
    else
        rs->bridges = b->next;
    if (b->next)
        b->next->prev = b->prev;
    rs->nbridges--;
    if (!rs->bridges)
        rt_sess_touch(rs); /* a finished session may go now */
    ev_io_stop(rs->eng->loop, &b->rio);
    ev_io_stop(rs->eng->loop, &b->wio);
    if (b->fd >= 0) {
        shutdown(b->fd, SHUT_RDWR);
        close(b->fd);
    }
    rudp_stream_set_user(rs->s, b->sid, NULL);
    if (!b->released)
        rudp_stream_release(rs->s, b->sid);
    /* The slot stays claimed while the program may still hold the fd; the
     * board reuses slots round robin, so it is only recycled much later. */
    if (b->slot.slot && rs->eng->board && b->slot.eid == rs->eng->board->eid)
        rudp_board_release(rs->eng->board, b->slot.index);
    free(b);
}

/* Frees the bridge once both directions are over. */
static void bridge_maybe_finish(rt_bridge *b) {
    if ((b->app_eof && b->net_eof) || b->dead) {
        if (!b->dead)
            bridge_slot_state(b, RUDP_SLOT_DONE);
        rt_bridge_free(b);
    }
}

void rt_bridge_fail(rt_bridge *b, int rudp_err) {
    int err = rudp_rt_errno(rudp_err);
    if (b->slot.slot) {
        atomic_store(&b->slot.slot->error, err);
        atomic_store(&b->slot.slot->so_error, err);
        atomic_store(&b->slot.slot->state, RUDP_SLOT_FAILED);
    }
    rt_log(b->rs->eng, 3, "stream %llu failed: %s", (unsigned long long)b->sid,
           strerror(err));
    b->dead = true;
    bridge_maybe_finish(b);
}

/* Aborts the stream with RST (the program closed abruptly). */
static void bridge_abort(rt_bridge *b) {
    rudp_stream_reset(b->rs->s, b->sid, 0);
    rt_sess_touch(b->rs);
    b->dead = true;
    bridge_maybe_finish(b);
}

/* Discards the connect filler; returns false while some is still due. */
static bool bridge_drop_filler(rt_bridge *b) {
    char buf[RT_IO_CHUNK];
    while (b->filler > 0) {
        size_t want = b->filler < sizeof(buf) ? b->filler : sizeof(buf);
        ssize_t n = recv(b->fd, buf, want, MSG_DONTWAIT);
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
    bridge_slot_state(b, RUDP_SLOT_CONNECTED);
    bridge_drop_filler(b);
    if (!b->app_eof)
        ev_io_start(b->rs->eng->loop, &b->rio);
}

/* The program ended its write side: FIN, or RST when it asked for one. */
static void bridge_app_eof(rt_bridge *b) {
    b->app_eof = true;
    ev_io_stop(b->rs->eng->loop, &b->rio);
    uint32_t flags = b->slot.slot ? atomic_load(&b->slot.slot->flags) : 0;
    if (flags & RUDP_SLOT_F_RESET_ON_CLOSE) {
        bridge_abort(b);
        return;
    }
    rudp_stream_shutdown_write(b->rs->s, b->sid);
    rt_sess_touch(b->rs);
    bridge_maybe_finish(b);
}

/* Moves program bytes into the stream while it has room.  Returns false
 * when the bridge was freed. */
static bool bridge_pump_in(rt_bridge *b) {
    char buf[RT_IO_CHUNK];
    rudp_session *s = b->rs->s;
    if (b->filler > 0 && !bridge_drop_filler(b))
        return true;
    for (;;) {
        ssize_t room = rudp_stream_send_room(s, b->sid);
        if (room <= 0) {
            ev_io_stop(b->rs->eng->loop, &b->rio); /* resumed on WRITABLE */
            return true;
        }
        size_t want = (size_t)room < sizeof(buf) ? (size_t)room : sizeof(buf);
        ssize_t n = recv(b->fd, buf, want, MSG_DONTWAIT);
        if (n > 0) {
            rudp_stream_write(s, b->sid, buf, (size_t)n);
            rt_sess_touch(b->rs);
            b->rs->eng->app_reads++;
            /* A short read emptied the socket: the watcher (level-triggered)
             * says when more comes, without a recv that finds nothing.  The
             * exit drain must see that nothing is left, so it reads on. */
            if ((size_t)n < want && !b->exit_drain)
                return true;
            continue;
        }
        if (n == 0) {
            bridge_app_eof(b);
            return false;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (b->exit_drain) { /* the exiting program wrote all it will */
                bridge_app_eof(b);
                return false;
            }
            return true;
        }
        bridge_abort(b); /* ECONNRESET: closed with unread data */
        return false;
    }
}

static void rt_bridge_on_readable(struct ev_loop *loop, ev_io *w, int revents) {
    bridge_pump_in(w->data);
}

/* The program cannot take more (EPIPE): after a close, abort like TCP;
 * after shutdown(SHUT_RD), keep discarding. */
static bool bridge_out_closed(rt_bridge *b, size_t n) {
    if (b->app_eof) {
        bridge_abort(b);
        return false;
    }
    rudp_stream_consume(b->rs->s, b->sid, n);
    return true;
}

/* The peer's FIN has been read: passes EOF on.  After the session ended
 * nothing else can come, so the bridge ends (the program still reads what
 * the socket holds, then EOF).  Returns false when the bridge was freed. */
static bool bridge_net_eof(rt_bridge *b) {
    ev_io_stop(b->rs->eng->loop, &b->wio);
    if (!b->net_eof) {
        b->net_eof = true;
        shutdown(b->fd, SHUT_WR);
    }
    if (b->sess_over) {
        rt_bridge_end_quietly(b);
        return false;
    }
    if ((b->app_eof && b->net_eof) || b->dead) {
        bridge_maybe_finish(b);
        return false;
    }
    return true;
}

/* Moves stream bytes into the program's socket while it takes them; when
 * the socket is full, waits for it to drain (also after the session has
 * ended: delivered bytes are the program's).  Returns false when the bridge
 * was freed. */
static bool bridge_pump_out(rt_bridge *b) {
    rudp_session *s = b->rs->s;
    for (;;) {
        const uint8_t *p;
        ssize_t n = rudp_stream_peek(s, b->sid, &p);
        if (n == RUDP_ERR_WOULDBLOCK && !b->sess_over) {
            ev_io_stop(b->rs->eng->loop, &b->wio);
            return true;
        }
        if (n == 0)
            return bridge_net_eof(b);
        if (n < 0) {
            rt_bridge_fail(b, n == RUDP_ERR_WOULDBLOCK ? b->sess_err : (int)n);
            return false;
        }
        ssize_t w = send(b->fd, p, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            rudp_stream_consume(s, b->sid, (size_t)w);
            rt_sess_touch(b->rs);
            if (w < RT_SPIN_MAX_MSG)
                rt_spin(b->rs->eng, RT_SPIN_NS);
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_start(b->rs->eng->loop, &b->wio);
            return true;
        }
        if (!bridge_out_closed(b, (size_t)n))
            return false;
        rt_sess_touch(b->rs);
    }
}

static void rt_bridge_on_writable(struct ev_loop *loop, ev_io *w, int revents) {
    bridge_pump_out(w->data);
}

void rt_bridge_session_closed(rt_bridge *b, int rudp_err) {
    if (b->dead) {
        bridge_maybe_finish(b);
        return;
    }
    b->sess_over = true;
    b->sess_err = rudp_err;
    ev_io_stop(b->rs->eng->loop, &b->rio); /* nothing more can be sent */
    bridge_pump_out(b);
}

void rt_bridge_end_quietly(rt_bridge *b) {
    b->dead = true;
    bridge_maybe_finish(b);
}

void rt_bridge_on_event(rt_bridge *b, const rudp_event *ev) {
    switch (ev->type) {
    case RUDP_EV_STREAM_READABLE:
        if (b->connected || b->filler == 0)
            bridge_pump_out(b);
        break;
    case RUDP_EV_STREAM_WRITABLE:
        if (!b->app_eof && (b->connected || b->filler == 0))
            ev_io_start(b->rs->eng->loop, &b->rio);
        break;
    case RUDP_EV_STREAM_RESET:
        rt_bridge_fail(b, ev->error);
        break;
    default:
        break;
    }
}

void rt_bridge_publish(rt_bridge *b, const rudp_session_info *in) {
    rudp_slot *sl = b->slot.slot;
    rudp_stream_info si;
    if (rudp_stream_get_info(b->rs->s, b->sid, &si) != RUDP_OK)
        return;
    atomic_store(&sl->rtt_us, (uint32_t)(in->srtt / 1000));
    atomic_store(&sl->rttvar_us, (uint32_t)(in->rttvar / 1000));
    atomic_store(&sl->min_rtt_us, (uint32_t)(in->min_rtt / 1000));
    atomic_store(&sl->snd_cwnd, (uint32_t)(in->cwnd > UINT32_MAX ? UINT32_MAX : in->cwnd));
    atomic_store(&sl->snd_ssthresh,
                 (uint32_t)(in->ssthresh > UINT32_MAX ? UINT32_MAX : in->ssthresh));
    atomic_store(&sl->snd_mss, in->max_packet_size);
    atomic_store(&sl->pmtu, in->max_packet_size + 28);
    atomic_store(&sl->retransmits, (uint32_t)in->pto_count_total);
    atomic_store(&sl->lost, (uint32_t)in->pkts_lost);
    atomic_store(&sl->total_retrans, (uint32_t)in->pkts_lost);
    atomic_store(&sl->bytes_sent, si.bytes_written);
    atomic_store(&sl->bytes_acked, si.bytes_acked);
    atomic_store(&sl->bytes_received, si.bytes_read);
    atomic_store(&sl->bytes_retrans, in->stream_bytes_retransmitted);
    atomic_store(&sl->pacing_rate, in->pacing_rate);
    atomic_store(&sl->delivery_rate, in->srtt ? in->cwnd * 1000000000ull / in->srtt : 0);
    atomic_store(&sl->last_update_ns, rt_now());
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
    ev_io_start(b->rs->eng->loop, &b->rio);
    bridge_pump_in(b);
}

/* --- accepting --- */

/* Connects a fresh AF_UNIX socket, named after the connection, to the
 * program's listener.  Returns the fd or -errno. */
static int bridge_dial_listener(rt_sess *rs, const rudp_slot_ref *slot) {
    rt_udp *u = rs->udp;
    struct sockaddr_un me = {.sun_family = AF_UNIX}, them = {.sun_family = AF_UNIX};
    size_t mlen =
        rudp_board_name_encode(me.sun_path, slot->eid, slot->index, &rs->peer, &rs->local);
    memcpy(them.sun_path, u->unix_name, u->unix_name_len);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    fd = rt_fd_adopt(fd);
    socklen_t ml = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + mlen);
    socklen_t tl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + u->unix_name_len);
    if (bind(fd, (struct sockaddr *)&me, ml) < 0 ||
        connect(fd, (struct sockaddr *)&them, tl) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

void rt_stream_refuse(rt_sess *rs, uint64_t sid) {
    rudp_stream_reset(rs->s, sid, 1 /* refused */);
    rudp_stream_release(rs->s, sid);
    rt_sess_touch(rs);
}

int rt_bridge_accept(rt_sess *rs, uint64_t sid) {
    rt_engine *e = rs->eng;
    rudp_slot_ref slot = {0};
    int fd = -ENOSPC;
    if (rudp_board_alloc(e->board, RUDP_SLOT_CONNECTED, &slot) == 0)
        fd = bridge_dial_listener(rs, &slot);
    rt_bridge *b = fd >= 0 ? rt_bridge_new(rs, sid, fd, &slot, 0) : NULL;
    if (!b) {
        if (fd >= 0)
            close(fd);
        if (slot.slot)
            rudp_board_release(e->board, slot.index);
        if (fd == -EAGAIN) /* the listener's queue is full */
            return -EAGAIN;
        /* No listener (closed), or no memory: refuse the stream. */
        rt_log(e, 2, "refusing stream %llu: %s", (unsigned long long)sid, strerror(-fd));
        rt_stream_refuse(rs, sid);
        return 0;
    }
    rt_bridge_connected(b);
    if (rs->closing) /* it waited for a full queue while its session ended */
        rt_bridge_session_closed(b, rs->close_err);
    else
        bridge_pump_out(b);
    return 0;
}
