/*
 * rt.h — internals of the runtime (engine thread): the engine singleton,
 * UDP endpoints and their sessions (rt_udp.c), and the bridges between
 * streams and the programs' socketpairs (rt_bridge.c).  Everything here
 * runs on the engine thread except where a comment says otherwise.
 */
#ifndef RUDP_RT_H
#define RUDP_RT_H

#include <ev.h>
#include <netinet/in.h>
#include <pthread.h>

#include "runtime.h"

#define RT_WARM_MAX 32

typedef struct rt_engine rt_engine;
typedef struct rt_udp rt_udp;
typedef struct rt_sess rt_sess;
typedef struct rt_bridge rt_bridge;
typedef struct rt_wait rt_wait;

/* A stream a peer opened while the program's listener queue was full: it
 * waits, in order, for the program to accept (rt_udp.c). */
struct rt_wait {
    rt_sess *rs;
    uint64_t sid;
    rudp_tstamp since;
    rt_wait *next;
};

/* A UDP socket: a client's (connected, one session) or a listener's
 * (bound to the TCP listener's address, many sessions). */
struct rt_udp {
    rt_engine *eng;
    int fd;
    ev_io io;
    bool is_listener;
    int listener_id;     /* listener: the id rudp_rt_listen returned */
    char unix_name[108]; /* listener: the program's AF_UNIX listener */
    size_t unix_name_len;
    struct sockaddr_storage local; /* bound / local address */
    socklen_t local_len;
    rt_sess *sessions; /* sessions carried by this socket */
    rt_wait *waiting;  /* listener: streams its full queue could not take */
    rt_wait **waiting_tail;
    ev_timer accept_retry; /* listener: tries the waiting streams again */
    rt_udp *next;
};

/* One rudp session and what the runtime keeps for it. */
struct rt_sess {
    rt_engine *eng;
    rt_udp *udp;
    rudp_session *s;
    ev_timer timer;
    struct sockaddr_storage peer; /* the peer's UDP address */
    socklen_t peer_len;
    struct sockaddr_storage local; /* our address as the peer sees it */
    rt_bridge *bridges;            /* streams of this session */
    uint32_t nbridges;
    bool established;
    bool closing;             /* GoAway sent or session dying */
    int close_err;            /* once closed: why (rudp_error) */
    uint32_t nwaiting;        /* streams in udp->waiting */
    rudp_tstamp idle_since;   /* client: no stream since then (warm) */
    rudp_tstamp last_publish; /* statistics last copied to the slots */
    bool publish_pending;     /* a copy was skipped as too soon after the last */
    rt_sess *next;            /* in udp->sessions */
    rt_sess *dirty_next;      /* in eng->dirty */
    bool dirty;
};

/* A stream joined to the engine's end of a socketpair. */
struct rt_bridge {
    rt_sess *rs;
    uint64_t sid;
    int fd;    /* engine's end; -1 once closed */
    ev_io rio; /* program -> network: fd readable */
    ev_io wio; /* network -> program: fd writable */
    rudp_slot_ref slot;
    size_t filler;          /* bytes of connect filler still to discard */
    bool connected;         /* the program may use the connection */
    bool app_eof;           /* the program shut its write side (or closed) */
    bool net_eof;           /* the peer's FIN was passed on (SHUT_WR done) */
    bool dead;              /* reset or failed: no more traffic */
    bool accept_pending;    /* server: connect() to the listener in progress */
    bool released;          /* rudp_stream_release done */
    bool exit_drain;        /* process exiting: FIN once the socket reads empty */
    bool sess_over;         /* the session ended: deliver what is left, then end */
    int sess_err;           /* why (rudp_error), reported after the last byte */
    rt_bridge *next, *prev; /* in rs->bridges */
};

/* A command from an application thread. */
typedef struct rt_cmd {
    enum { RT_CMD_CONNECT, RT_CMD_LISTEN, RT_CMD_UNLISTEN, RT_CMD_EXIT_FLUSH } type;
    int fd;                       /* CONNECT: engine end; LISTEN: UDP socket */
    struct sockaddr_storage addr; /* CONNECT: destination; LISTEN: bound address */
    socklen_t addrlen;
    size_t filler;
    rudp_slot_ref slot;
    int listener_id;
    char unix_name[108];
    size_t unix_name_len;
    struct rt_cmd *next;
} rt_cmd;

struct rt_engine {
    struct ev_loop *loop;
    ev_async wake;
    pthread_t thread;
    pthread_mutex_t lock; /* commands, fd registry, exit flush */
    pthread_cond_t flushed;
    pthread_cond_t parked_cv; /* the thread parked (park_req seen) */
    pthread_cond_t resume_cv; /* park_req cleared */
    bool park_req, parked;    /* rudp_rt_quiesce handshake, under lock */
    rt_cmd *cmd_head, *cmd_tail;
    rudp_rt_config cfg;
    rudp_board *board;
    rt_udp *udps;
    rt_sess *dirty; /* sessions needing events/flush */
    int next_listener_id;
    uint64_t seed;
    bool exiting; /* exit flush under way */
    bool exit_begun; /* engine thread: the commands sent before it were run */
    rudp_tstamp exit_deadline;
    bool exit_done;
    ev_timer warm_timer; /* closes warm client sessions nobody uses */
    ev_idle spin;        /* polls instead of sleeping until spin_until */
    rudp_tstamp spin_until;
    uint64_t app_reads;      /* reads of program bytes into streams, ever */
    uint64_t spin_answers0;  /* app_reads when the spin began */
    unsigned spin_wasted;    /* spins in a row in which no program wrote */
    rudp_tstamp spin_resume; /* no spinning before this (backing off) */
    /* Servers this process has an established client session with, for
     * rudp_rt_peer_warm (read by application threads): under lock. */
    struct sockaddr_storage warm[RT_WARM_MAX];
    unsigned nwarm;
};

/* --- rt.c --- */
rudp_tstamp rt_now(void);
/* Keeps the loop polling, not sleeping, for |ns| from now (unless it is
 * polling already or backing off): an answer the program is about to write
 * is picked up without waking the thread. */
void rt_spin(rt_engine *e, rudp_tstamp ns);
void rt_log(rt_engine *e, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Moves |fd| high and marks it close-on-exec; returns the fd to use. */
int rt_fd_adopt(int fd);
/* Makes |fd| non-blocking; returns 0 or -errno. */
int rt_fd_nonblock(int fd);
uint64_t rt_rand(rt_engine *e);

/* --- rt_udp.c --- */
/* Returns whether |dst| (a server address) is in e->warm; takes e->lock. */
bool rt_warm_has(rt_engine *e, const struct sockaddr_storage *dst, socklen_t len);
/* Opens (or reuses) the client session for |dst| and a stream on it for a
 * CONNECT command; on failure marks the slot FAILED and closes the fd. */
void rt_udp_connect(rt_engine *e, rt_cmd *cmd);
/* Starts serving a listener from a LISTEN command. */
void rt_udp_listen(rt_engine *e, rt_cmd *cmd);
void rt_udp_unlisten(rt_engine *e, int id);
/* Marks |rs| for event processing and flushing at the end of this turn. */
void rt_sess_touch(rt_sess *rs);
/* Processes events and flushes every touched session. */
void rt_flush_dirty(rt_engine *e);
/* Runs the warm-session check on every client session (the 1 s tick). */
void rt_udp_tick(rt_engine *e);
/* Returns true when every program socket has been read to its end and
 * every session is settled: all it owes the peer is acknowledged (exit flush is over). */
bool rt_all_acked(rt_engine *e);
/* The process is exiting: every bridge is freed (logging its summary) and
 * every session says GoAway at once (the peer's streams end instead of
 * waiting for an idle timeout), and it is sent. */
void rt_udp_leave_all(rt_engine *e);

/* --- rt_bridge.c --- */
/* Creates a bridge for stream |sid| of |rs| over |fd|. */
rt_bridge *rt_bridge_new(rt_sess *rs, uint64_t sid, int fd, const rudp_slot_ref *slot,
                         size_t filler);
/* The stream may carry data now (session established / accepted). */
void rt_bridge_connected(rt_bridge *b);
/* Handles one stream event of the bridge's session. */
void rt_bridge_on_event(rt_bridge *b, const rudp_event *ev);
/* The stream or session died with |rudp_err|: publish it and shut the fd. */
void rt_bridge_fail(rt_bridge *b, int rudp_err);
/* The session ended with |rudp_err|: the bridge goes on delivering what
 * the stream holds as fast as the program reads it, then passes EOF (the
 * peer had finished) or the error, and frees itself.  May free |b|. */
void rt_bridge_session_closed(rt_bridge *b, int rudp_err);
/* Frees a bridge whose peer finished cleanly, reporting no error. */
void rt_bridge_end_quietly(rt_bridge *b);
/* Frees a bridge (fd closed, watchers stopped, slot kept for the fd's
 * holders); does not touch the session. */
void rt_bridge_free(rt_bridge *b);
/* Returns the bridge of stream |sid|, or NULL. */
rt_bridge *rt_bridge_find(rt_sess *rs, uint64_t sid);
/* Logs one line of statistics for the connection (info level). */
void rt_bridge_log_summary(rt_bridge *b);
/* Publishes the session's statistics into the bridge's slot. */
void rt_bridge_publish(rt_bridge *b, const rudp_session_info *info);
/* Exit flush: reads everything the program wrote (as the send buffer
 * frees) and then ends the stream with a FIN. */
void rt_bridge_exit_drain(rt_bridge *b);
/* Server: a peer opened stream |sid|; connect it to the program's listener.
 * Returns 0 (accepted, or refused with a reset) or -EAGAIN when the
 * listener's queue is full and the stream should wait. */
int rt_bridge_accept(rt_sess *rs, uint64_t sid);
/* Refuses stream |sid| with a reset and lets it go. */
void rt_stream_refuse(rt_sess *rs, uint64_t sid);

#endif /* RUDP_RT_H */
