/*
 * rt.h — how the files of the runtime (the engine thread) talk to each
 * other.  docs/RUNTIME.md draws the layers and follows one byte through
 * them.
 *
 * Each file owns one concern and keeps its structs to itself; the others
 * hold opaque pointers and call the functions declared here:
 *
 *   rt_os.c      the system call table, the clock, descriptors, log lines
 *   rt_loop.c    the engine thread: start, the command queue, parking, fork
 *   rt_spin.c    polling briefly for an answer instead of sleeping
 *   rt_sess.c    session records: timers, events, flushing, statistics
 *   rt_udp.c     UDP sockets: batched I/O, a full socket's backlog, the
 *                connection-ID table
 *   rt_client.c  client sessions: connect, the table of servers
 *   rt_listen.c  listening ports: their UDP socket, new sessions, listen and
 *                unlisten, hand-over
 *   rt_accept.c  streams handed to the program's listeners, the wait queue
 *   rt_group.c   a listening port shared by processes
 *   rt_bridge.c  one stream joined to a program's socketpair
 *   rt_exit.c    the exit flush
 *   rt_keeper.c  connections that outlive an exec (a keeper process)
 *   rt_qlog.c    a session's qlog file (RUDP_QLOG_DIR)
 *
 * The one struct every file sees is rt_engine, the context they share: the
 * loop, the configuration and the board, and a head pointer for each file's
 * own records.  Everything here runs on the engine thread unless its
 * comment says otherwise.  Functions returning int return RUDP_OK or an
 * rudp_error.
 */
#ifndef RUDP_RT_H
#define RUDP_RT_H

#include <ev.h>
#include <netinet/in.h>

#include "runtime.h"

typedef struct rt_engine rt_engine;
typedef struct rt_ctl rt_ctl;
typedef struct rt_spin rt_spin;
typedef struct rt_sess rt_sess;
typedef struct rt_udp rt_udp;
typedef struct rt_clients rt_clients;
typedef struct rt_listener rt_listener;
typedef struct rt_accept rt_accept;
typedef struct rt_group rt_group;
typedef struct rt_remote rt_remote;
typedef struct rt_bridge rt_bridge;
typedef struct rt_exit rt_exit;
typedef struct rt_cmd rt_cmd;
typedef struct rt_qlog rt_qlog;

/* The longest abstract AF_UNIX name (sun_path). */
#define RT_UNIX_NAME_MAX 108

/* Once this many sessions and connections have ended, the heap's free
 * pages go back to the system (malloc_trim) at the first 1 s tick that saw
 * no other end, when the burst (a flood of spoofed openings, a wave of
 * connections) is over; while ends go on, RT_TRIM_EVERY ticks later.  A
 * trim takes milliseconds with every malloc arena locked, the program's
 * too: it must not run every second under steady churn. */
#define RT_TRIM_AFTER 64
#define RT_TRIM_EVERY 10
/* How long a client keeps a session no stream uses, for the next connect. */
#define RT_WARM_SESSION RUDP_SEC(15)
/* A loop that has not run its watchers for this long was stopped: its 1 s
 * tick would have run them. */
#define RT_PAUSE_MIN RUDP_SEC(3)

/* A listener answers new clients with a RETRY (stateless) while this many
 * of its sessions wait for their client to prove its address. */
#define RT_MAX_UNVALIDATED 256
/* At most this many replies a second to datagrams that made no session
 * (stateless resets, REFUSE, RETRY), per listener. */
#define RT_REPLIES_PER_SEC 1000

/* Which of our addresses a datagram was sent to: a listener bound to a
 * wildcard address learns it from IP_PKTINFO / IPV6_PKTINFO, and its
 * replies to that peer leave from it (else a client that dialled a
 * secondary address would drop them).  family 0: not known (a socket bound
 * to one address or connected). */
typedef struct rt_dst {
    int family; /* AF_INET, AF_INET6 or 0 */
    union {
        struct in_addr v4;
        struct in6_addr v6;
    } addr;
} rt_dst;

/* The context every file of the runtime shares. */
struct rt_engine {
    struct ev_loop *loop;
    rudp_rt_config cfg;
    rudp_board *board;
    int board_fd;           /* its memory file, sent to processes that join a port */
    rt_ctl *ctl;            /* rt_loop.c */
    rt_spin *spin;          /* rt_spin.c */
    rt_sess *sessions;      /* rt_sess.c: every session */
    rt_sess *dirty;         /* rt_sess.c: sessions touched this turn */
    rt_clients *clients;    /* rt_client.c */
    rt_listener *listeners; /* rt_listen.c */
    rt_remote *remotes;     /* rt_group.c: listeners fed by another process's port */
    rt_exit *exit;          /* rt_exit.c */
    bool keeper;            /* a keeper's engine, after an exec (rt_keeper.c) */
    uint64_t dropped;       /* datagrams no session took (rt_listen.c) */
    uint32_t freed;         /* rt_sess.c: sessions and connections ended since the
                               last heap trim */
    uint32_t freed_seen;    /* rt_sess.c: |freed| at the last tick */
    uint32_t trim_wait;     /* rt_sess.c: ticks |freed| grew past RT_TRIM_AFTER */
    rudp_tstamp last_run;   /* rt_loop.c: when the loop last ran its watchers */
};

/* Called for each descriptor a part of the engine holds. */
typedef void (*rt_fd_fn)(int fd, void *ctx);

/* A command from an application thread; each file embeds it first in a
 * command of its own. */
struct rt_cmd {
    void (*run)(rt_engine *e, rt_cmd *c); /* engine thread; frees c unless sync */
    void (*close_fds)(rt_cmd *c);         /* a forked child: the fds c holds */
    bool sync;                            /* rt_loop_call waits for it */
    bool done;  /* sync: run has returned (under the queue lock) */
    int result; /* sync: what run says */
    rt_cmd *next;
};

/* --- rt_os.c --- */

/* The system calls, as rudp_rt_init was given them. */
extern rudp_rt_sys rt_sys;

/* Returns true once rudp_rt_init has run. */
bool rt_os_ready(void);
/* Returns true when two IPv4 or IPv6 socket addresses name the same
 * address and port. */
bool rt_addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
/* Returns the log descriptor (-1: stderr). */
int rt_os_log_fd(void);
/* Sets where log lines go and up to which level (any thread). */
void rt_os_set_log(int level, int fd);
/* Returns the monotonic clock in nanoseconds. */
rudp_tstamp rt_now(void);
/* Returns the wall clock in milliseconds since the epoch (what a pre-shared
 * key's early data is checked against). */
uint64_t rt_wall_ms(void);
/* The slots of a listener's replay memory (openings seen with a retry
 * token or early data). */
#define RT_REPLAY_SLOTS 16384
/* Writes one log line "rudp[pid]: ..." when |level| is enabled; one
 * write(), no stdio; keeps errno. */
void rt_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Moves |fd| to the engine's high range, close-on-exec; returns the fd. */
int rt_fd_high(int fd);
/* Makes |fd| non-blocking. */
int rt_fd_nonblock(int fd);
/* Reads and drops all but the last of the |n| bytes a failed connect left
 * unread in |fd| (the connect filler): its close then leaves one unread
 * byte, so the program's end polls POLLERR as well as POLLOUT|POLLHUP and
 * reads the error, as a refused TCP connect does; the filler no longer
 * keeps that end unwritable. */
void rt_fd_drain_but_one(int fd, size_t n);
/* Returns 64 random bits (getrandom, or a clock-based fallback). */
uint64_t rt_random64(void);
/* Returns RUDP_ERR_SYS(errno) for the errno of the call that just failed. */
int rt_err(void);

/* --- rt_loop.c --- */

/* Returns this process's engine, starting it; NULL when it cannot start
 * (*err says why when |err| is not NULL).  Any thread. */
rt_engine *rt_loop_engine(int *err);
/* Returns this process's running engine without starting one, or NULL.
 * Any thread. */
rt_engine *rt_loop_running(void);
/* Queues |c| for the engine thread and wakes it.  Any thread. */
void rt_loop_send(rt_engine *e, rt_cmd *c);
/* The same, but with |try_lock| only when the queue's lock is free at
 * once.  Returns RUDP_OK or RUDP_ERR_WOULDBLOCK (not queued: the lock was
 * busy, or the engine is a keeper's, with no thread to run it). */
int rt_loop_try_send(rt_engine *e, rt_cmd *c, bool try_lock);
/* Returns this process's own running engine, or NULL; changes nothing (a
 * vfork or clone child sharing our memory may call it). */
rt_engine *rt_loop_own_engine(void);
/* Queues |c| and waits until the engine thread has run it; returns
 * c->result, and the caller frees c.  RUDP_ERR_TIMEDOUT when the engine
 * did not run it within 10 s (c is then left to the engine: not freed).
 * Any thread but the engine's. */
int rt_loop_call(rt_engine *e, rt_cmd *c);
/* Parks the engine thread (the process is leaving, or about to fork or
 * exec); rt_loop_unpark lets it go on.  Any thread but the engine's. */
void rt_loop_park(rt_engine *e);
void rt_loop_unpark(rt_engine *e);
/* Returns true when |e| is this process's own engine (not a parent's). */
bool rt_loop_own(const rt_engine *e);
/* The fork about to happen makes a keeper (|on|), or it is done. */
void rt_loop_keeping(bool on);
/* Calls |fn| for the descriptors of the engine's own: its board's memory
 * file and the log. */
void rt_loop_each_fd(rt_engine *e, rt_fd_fn fn, void *ctx);
/* A keeper: runs the engine's loop on the calling thread until it has
 * nothing left to carry. */
void rt_loop_run_here(rt_engine *e);

/* --- rt_spin.c --- */

rt_spin *rt_spin_new(rt_engine *e);
/* Keeps the loop polling, not sleeping, for |ns| from now (unless it is
 * polling already or backing off): an answer the program is about to write
 * is picked up without waking the thread. */
void rt_spin_arm(rt_spin *sp, rudp_tstamp ns);
/* The program wrote something (an answer, for the spin's judgement). */
void rt_spin_note_write(rt_spin *sp);

/* --- rt_sess.c --- */

/* Creates the record of session |s| (taken over) sending on |u|; |l| is
 * the listener of a server session, NULL for a client's.  Returns NULL
 * (|s| freed) when out of memory. */
rt_sess *rt_sess_new(rt_engine *e, rudp_session *s, rt_udp *u, rt_listener *l,
                     const struct sockaddr_storage *peer, socklen_t peer_len);
rudp_session *rt_sess_core(const rt_sess *rs);
/* The session's UDP addresses as rudp-stat shows them (IPv6, v4 mapped):
 * ours as the peer sees it, and the peer's now. */
void rt_sess_addrs(const rt_sess *rs, struct sockaddr_in6 *local,
                   struct sockaddr_in6 *peer);
rt_engine *rt_sess_engine(const rt_sess *rs);
rt_udp *rt_sess_udp(const rt_sess *rs);
rt_listener *rt_sess_listener(const rt_sess *rs);
/* The peer's UDP address (*len set when |len| is not NULL). */
const struct sockaddr_storage *rt_sess_peer(const rt_sess *rs, socklen_t *len);
/* Our address as the peer sees it (a server session's TCP local address). */
const struct sockaddr_storage *rt_sess_local(const rt_sess *rs);
/* Sets it, and where replies leave from (|src| NULL: the kernel's choice). */
void rt_sess_set_local(rt_sess *rs, const struct sockaddr_storage *local,
                       const rt_dst *src);
bool rt_sess_established(const rt_sess *rs);
/* Returns true once the session is ending (GoAway sent or received). */
bool rt_sess_closing(const rt_sess *rs);
/* Why it ended (an rudp_error), once closing. */
int rt_sess_close_err(const rt_sess *rs);
/* Gives the session its qlog trace |q| (NULL: none), which starts with
 * |local| as our address. */
void rt_sess_set_qlog(rt_sess *rs, rt_qlog *q, const struct sockaddr_storage *local);
/* Server: the session counts among its listener's unvalidated ones until
 * its client proves its address (rt_listen_validated). */
void rt_sess_set_unvalidated(rt_sess *rs);
bool rt_sess_unvalidated(const rt_sess *rs);
/* The head of the session's bridges, which rt_bridge.c links and unlinks. */
rt_bridge **rt_sess_bridges(rt_sess *rs);
/* A bridge of the session was freed: a finished session may go now. */
void rt_sess_bridge_gone(rt_sess *rs);
/* A stream of the session starts (|delta| 1) or stops (-1) waiting in the
 * listener's queue: a session with waiting streams is kept. */
void rt_sess_waiting(rt_sess *rs, int delta);
/* Marks |rs| for events, sending and re-arming at the end of this turn. */
void rt_sess_touch(rt_sess *rs);
/* Tells every session of port |l| whether a program listens on it. */
void rt_sess_set_listening(rt_engine *e, const rt_listener *l, bool listening);
/* Touches every session that sends on |u| (it can take datagrams again). */
void rt_sess_touch_on(rt_engine *e, const rt_udp *u);
/* Handles events, sends and re-arms every touched session. */
void rt_sess_flush_dirty(rt_engine *e);
/* Hands the session a datagram from |from|, sent to |to| (replies leave
 * from there). */
void rt_sess_input(rt_sess *rs, uint8_t *pkt, size_t len,
                   const struct sockaddr_storage *from, socklen_t fromlen, const rt_dst *to,
                   rudp_tstamp now);
/* The client socket reported an ICMP error |errno_val|. */
void rt_sess_path_error(rt_sess *rs, int errno_val);
/* The 1 s tick: closes client sessions unused for half the idle timeout,
 * trims and touches every session, and trims the heap after a burst of
 * ends. */
/* The 1 s tick: closes client sessions unused for RT_WARM_SESSION (or half
 * the idle timeout, when that is shorter), applies the options programs
 * set on their sockets, trims and touches every session. */
void rt_sess_tick(rt_engine *e);
/* The process did not run for |gap| (stopped): tells every session. */
void rt_sess_on_pause(rt_engine *e, rudp_tstamp gap);
/* Exit flush: every bridge reads its program's end to EOF. */
void rt_sess_exit_drain_all(rt_engine *e);
/* Returns true when every program end has been read to EOF and every
 * session owes its peer nothing unacknowledged. */
bool rt_sess_all_settled(rt_engine *e);
/* The process leaves: bridges freed, GoAway on every session, sent. */
void rt_sess_leave_all(rt_engine *e);
/* Returns true when some session still has a bridge. */
bool rt_sess_any_bridge(rt_engine *e);
/* Calls |fn| for the fd of every bridge and client socket. */
void rt_sess_each_fd(rt_engine *e, rt_fd_fn fn, void *ctx);

/* --- rt_udp.c --- */

/* Opens a non-blocking UDP socket connected to |dst|, placed high.
 * Returns it or an rudp_error.  Any thread. */
int rt_udp_open_connected(const struct sockaddr_storage *dst, socklen_t len);
/* Serves the connected UDP socket |fd| for a client session.  Returns NULL
 * (fd closed) when out of memory. */
rt_udp *rt_udp_client(rt_engine *e, int fd);
/* Serves the bound UDP socket |fd| for listener |l|.  Returns NULL (fd
 * closed) when out of memory. */
rt_udp *rt_udp_listener(rt_engine *e, int fd, rt_listener *l);
/* The client socket's one session. */
void rt_udp_set_session(rt_udp *u, rt_sess *rs);
/* Stops and closes the socket, drops its backlog, frees it. */
void rt_udp_free(rt_udp *u);
int rt_udp_fd(const rt_udp *u);
const struct sockaddr_storage *rt_udp_local(const rt_udp *u);
/* Returns the largest UDP payload the route of connected socket |fd|
 * allows (IP_MTU / IPV6_MTU less the headers), or 0. */
uint32_t rt_udp_path_ceiling(int fd, int family);
/* Sends every datagram session |s| may send now, from |src| when it is
 * known (a listener on a wildcard address).  Returns RUDP_OK,
 * RUDP_ERR_WOULDBLOCK (the socket is full: the rest waits in its backlog
 * and the sessions on it are touched when it drains) or, on a client
 * socket, RUDP_ERR_SYS(errno) for an ICMP error. */
int rt_udp_send_session(rt_udp *u, rudp_session *s, const rt_dst *src, rudp_tstamp now);
/* Sends the server's answer |buf| to a datagram that made no session (a
 * stateless reset, a REFUSE, a RETRY) to |to|, from |src| when known. */
void rt_udp_send_reply(rt_udp *u, const uint8_t *buf, size_t len,
                       const struct sockaddr_storage *to, socklen_t tolen,
                       const rt_dst *src);
/* Routes datagrams for connection ID |cid| to |rs| (a listener's socket). */
int rt_udp_cid_add(rt_udp *u, uint64_t cid, rt_sess *rs);
void rt_udp_cid_del(rt_udp *u, uint64_t cid);
/* On the 1 s tick: when no datagram was received or written since the
 * last call, gives the pages of the engine's datagram buffers back (once
 * per idle spell).  Returns the bytes given back. */
size_t rt_udp_trim(void);

/* --- rt_client.c --- */

rt_clients *rt_clients_new(void);
/* The client session |rs| completed its handshake, or its server's port
 * gained or lost its listener: warm while both hold. */
void rt_client_established(rt_sess *rs);
/* The client session |rs| is ending: not warm, not reused. */
void rt_client_closing(rt_sess *rs);
/* The client session |rs| is destroyed: forgotten. */
void rt_client_forget(rt_sess *rs);

/* --- rt_listen.c --- */

/* A datagram for unknown connection ID |cid| reached port |l| (sent to
 * |to|): a client's opening becomes a session, anything else gets a
 * stateless reset. */
void rt_listen_on_unknown(rt_listener *l, uint64_t cid, uint8_t *pkt, size_t len,
                          const struct sockaddr_storage *from, socklen_t fromlen,
                          const rt_dst *to, rudp_tstamp now);
/* The peer opened stream |sid| on server session |rs|: hands it to the
 * program's listeners (rt_accept.c). */
void rt_listen_on_stream(rt_listener *l, rt_sess *rs, uint64_t sid);
/* Server session |rs| is destroyed: its connection IDs and waiting
 * streams go, and a port left with no listener and no session closes. */
void rt_listen_forget_session(rt_listener *l, rt_sess *rs);
/* A server session of |l| counted as unvalidated has its client validated. */
void rt_listen_validated(rt_listener *l);
/* Returns true when some port still feeds a listener. */
bool rt_listen_any_target(rt_engine *e);
/* Calls |fn| for every port's UDP and control sockets and every joined
 * port's connection. */
void rt_listen_each_fd(rt_engine *e, rt_fd_fn fn, void *ctx);
/* The targets of port |l|. */
rt_accept *rt_listen_accept(rt_listener *l);
/* Returns a new listener id (any thread). */
int rt_listen_new_id(void);
/* Target |id| of port |l| has gone: removed; a port left with no listener
 * and no session closes. */
void rt_listen_target_gone(rt_listener *l, int id);
/* Opens a UDP socket bound to |addr| for a port.  Returns it or an
 * rudp_error. */
int rt_listen_bind(const struct sockaddr_storage *addr, socklen_t len, bool v6only);
/* Serves the bound UDP socket |fd| (taken over) as a port with the
 * program's listener |name| as target |id|.  Returns |id| or an
 * rudp_error. */
int rt_listen_adopt(rt_engine *e, int fd, bool v6only, int id, const char *name,
                    size_t len);

/* --- rt_accept.c --- */

/* Makes the targets of a port; |on_change| is told when their number goes
 * from 0 to some or back (the port tells its clients). */
rt_accept *rt_accept_new(rt_engine *e, void (*on_change)(void *ctx, unsigned ntargets),
                         void *ctx);
/* Refuses every waiting stream and frees |a|. */
void rt_accept_free(rt_accept *a);
/* Adds the AF_UNIX listener |name| (abstract, |len| bytes of sun_path) as
 * a target of new streams, known as |id|; |remote|: another process's
 * (rt_group.c).  Returns RUDP_OK or RUDP_ERR_NOMEM. */
int rt_accept_add(rt_accept *a, int id, const char *name, size_t len, bool remote);
/* Removes target |id|; returns true when it was one of |a|'s. */
bool rt_accept_remove(rt_accept *a, int id);
/* Returns how many targets |a| has. */
unsigned rt_accept_targets(const rt_accept *a);
/* Returns the name of the first of this process's targets (*len, *id
 * set), or NULL. */
const char *rt_accept_first(const rt_accept *a, size_t *len, int *id);
/* Hands stream |sid| of |rs| to a target, queues it while every target's
 * queue is full, or refuses it when there is no target. */
void rt_accept_stream(rt_accept *a, rt_sess *rs, uint64_t sid);
/* Session |rs| is destroyed: its waiting streams are forgotten. */
void rt_accept_forget_session(rt_accept *a, rt_sess *rs);
/* Refuses stream |sid| of |rs| with a reset and lets it go. */
void rt_accept_refuse(rt_sess *rs, uint64_t sid);

/* --- rt_group.c --- */

/* Lets other processes' listeners on |addr| join port |l| (a control
 * socket).  Returns NULL when it cannot: the port then feeds this
 * process's listeners only. */
rt_group *rt_group_serve(rt_engine *e, rt_listener *l, const struct sockaddr_storage *addr);
/* Closes the control socket and every member's connection. */
void rt_group_free(rt_group *g);
/* At exit: hands the port's UDP socket |udp_fd| to a member process.
 * Returns true when one was sent it. */
bool rt_group_hand_over(rt_group *g, int udp_fd);
/* Calls |fn| for |g|'s descriptors. */
void rt_group_each_fd(const rt_group *g, rt_fd_fn fn, void *ctx);
/* Joins the port another process serves at |addr| with the program's
 * listener |name| as listener |id|.  Returns RUDP_OK or an rudp_error
 * (RUDP_ERR_SYS(EADDRINUSE): the UDP port is not an engine's). */
int rt_group_join(rt_engine *e, const struct sockaddr_storage *addr, socklen_t addrlen,
                  bool v6only, int id, const char *name, size_t len);
/* Leaves the port joined as listener |id|; false when |id| is not one. */
bool rt_group_leave(rt_engine *e, int id);
/* Calls |fn| for the connection of every joined port. */
void rt_group_remotes_each_fd(rt_engine *e, rt_fd_fn fn, void *ctx);

/* --- rt_bridge.c --- */

/* Creates a bridge for stream |sid| of |rs| over |fd| (taken over). */
rt_bridge *rt_bridge_new(rt_sess *rs, uint64_t sid, int fd, const rudp_slot_ref *slot,
                         size_t filler);
/* Returns the next bridge of the same session. */
rt_bridge *rt_bridge_next(const rt_bridge *b);
/* The stream may carry data now (session established). */
void rt_bridge_connected(rt_bridge *b);
/* A stream the program's listener just took: connected, and it gets what
 * the stream holds (or the end of a session that ended meanwhile). */
void rt_bridge_accepted(rt_bridge *b);
/* Handles one stream event of the bridge's session. */
void rt_bridge_on_event(rt_bridge *b, const rudp_event *ev);
/* The session ended with |rudp_err|: the bridge goes on delivering what
 * the stream holds as fast as the program reads it, then passes EOF (the
 * peer had finished) or the error, and frees itself.  May free |b|. */
void rt_bridge_session_closed(rt_bridge *b, int rudp_err);
/* Frees a bridge (fd closed, watchers stopped, stream released, slot kept
 * for the fd's holders). */
void rt_bridge_free(rt_bridge *b);
/* Publishes the session's figures into the bridge's slot. */
void rt_bridge_publish(rt_bridge *b, const rudp_session_info *info);
/* Applies the liveness options the program set on its socket since the
 * last look (the shim writes them into the slot; the 1 s tick looks). */
void rt_bridge_sync_opts(rt_bridge *b, rudp_tstamp now);
/* Exit flush: reads everything the program wrote (as the send buffer
 * frees) and then ends the stream with a FIN.  May free |b|. */
void rt_bridge_exit_drain(rt_bridge *b);
/* Returns true once the program's end has been read to EOF (or the bridge
 * is dead): the exit flush owes it nothing more. */
bool rt_bridge_drained(const rt_bridge *b);
/* Returns the engine's end of the bridge's socketpair (-1 once closed). */
int rt_bridge_fd(const rt_bridge *b);

/* --- rt_qlog.c --- */

/* Returns the qlog trace of a session about to be made at |now| (|client|:
 * by this end) and points |set|'s trace hook at it; NULL (|set| untouched)
 * when the configuration names no qlog directory, or out of memory.  The
 * trace holds its events in memory until rt_qlog_start. */
rt_qlog *rt_qlog_new(rt_engine *e, rudp_settings *set, bool client, rudp_tstamp now);
/* The session |s| was made: creates its file in the qlog directory and
 * writes the header, connectivity:connection_started (from |local| to
 * |peer|) and the events held.  A file that cannot be made is logged and
 * the trace is off.  |q| NULL: nothing. */
void rt_qlog_start(rt_qlog *q, rt_engine *e, const rudp_session *s,
                   const struct sockaddr_storage *local,
                   const struct sockaddr_storage *peer);
/* Writes what the trace holds (the 1 s tick). */
void rt_qlog_flush(rt_qlog *q);
/* Ends the trace of |s|: its counters as the last record, everything
 * written; later events are ignored.  |q| NULL: nothing. */
void rt_qlog_finish(rt_qlog *q, const rudp_session *s, rudp_tstamp now);
/* Writes what is held, closes the file and frees |q| (NULL: nothing). */
void rt_qlog_free(rt_qlog *q);
/* Returns the file's descriptor, or -1. */
int rt_qlog_fd(const rt_qlog *q);

/* --- rt_keeper.c --- */

/* After every turn of a keeper's loop: leaves once nothing is carried and
 * every byte of the connections it carried is acknowledged. */
void rt_keeper_check(rt_engine *e);

/* --- rt_exit.c --- */

rt_exit *rt_exit_new(rt_engine *e);
/* After every turn: ends the exit flush once everything is acknowledged
 * or the linger is over. */
void rt_exit_check(rt_engine *e);

#endif /* RUDP_RT_H */
