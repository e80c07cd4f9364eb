/*
 * board.h — the status board: per-connection state shared between the
 * engine thread and every process that holds the connection's fd.
 *
 * A rerouted connection's fd is an AF_UNIX socket (DESIGN.md §2 rule 2), so
 * the kernel cannot tell the program about TCP-level events: a refused
 * connect, a reset, a timeout, TCP_INFO.  The engine publishes them in a
 * slot of a board: a shared mapping of a memory file created when the
 * engine starts, so processes forked afterwards (pre-fork workers,
 * process-per-connection children) see the same slots, and an unrelated
 * process that shares a listening port (rt_group.c) maps it from the file
 * it is sent.  The shim reads the
 * slot when a read ends at EOF (to turn it into ECONNRESET or ETIMEDOUT),
 * for SO_ERROR and TCP_INFO, and writes into it a flag for SO_LINGER {1,0}
 * and the liveness options (TCP_USER_TIMEOUT, SO_KEEPALIVE, TCP_KEEP*).
 * Errors are stored as rudp_error codes; the shim turns them into errno
 * values (the runtime does not speak errno).  The slot's layout is private
 * to board.c: everyone else goes through the rudp_slot_* functions.
 *
 * Each engine instance has a random 32-bit id (eid).  A process knows every
 * board it created, inherited or mapped (rudp_board_find).  An accepted connection's
 * slot travels in the abstract AF_UNIX address the engine binds before
 * connecting to the program's listener, together with the TCP-level peer
 * and local addresses (rudp_board_name_encode/_decode), so a worker that
 * accepts it in another process finds everything from getpeername().
 *
 * Bound and shrinking.  A board has RUDP_BOARD_SLOTS slots; a connect or an
 * accept beyond them fails (ENOBUFS).  A slot is claimed lowest first and
 * carries a generation, as does every reference to it (rudp_slot_ref), so
 * the pages in use follow the connections open at once, not all those
 * ever made.  A connection's fd may outlive its slot in any process that
 * holds it (fork, exec, a worker), so when a connection ends the engine
 * retires its slot (rudp_board_retire): it is freed only after
 * RUDP_BOARD_KEEP later ends (RUDP_BOARD_KEEP_FAILED for a failure, whose
 * error the program may read long after), and a reference whose slot has
 * since gone to another connection reads as ended cleanly
 * (rudp_slot_of).  The engine's 1 s tick gives the pages of long runs of
 * free slots back (rudp_board_shrink): after a burst, the board keeps the
 * pages of its open and retired slots only.
 */
#ifndef RUDP_BOARD_H
#define RUDP_BOARD_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define RUDP_BOARD_SLOTS 65536u
/* A retired slot is freed after this many later ends (failures: after this
 * many later failures). */
#define RUDP_BOARD_KEEP 1024u
#define RUDP_BOARD_KEEP_FAILED 4096u

enum rudp_slot_state {
    RUDP_SLOT_FREE = 0,
    RUDP_SLOT_CONNECTING, /* stream opened, not yet connected */
    RUDP_SLOT_CONNECTED,  /* connected (or accepted) */
    RUDP_SLOT_FAILED,     /* connect failed, or the connection died: see error */
    RUDP_SLOT_DONE,       /* ended cleanly (both FINs) */
};

/* Flags: the shim sets the first and third, the engine the second. */
#define RUDP_SLOT_F_RESET_ON_CLOSE 0x1u /* SO_LINGER {1, 0}: abort with RST */
#define RUDP_SLOT_F_WAS_CONNECTED 0x2u  /* it was CONNECTED once: the connect succeeded */
#define RUDP_SLOT_F_WR_SHUT 0x4u        /* the program shut its writing down (TCP_INFO) */

/* One connection's shared state; opaque: only the functions below touch
 * it, so every reader and writer keeps the same ordering rules. */
typedef struct rudp_slot rudp_slot;
typedef struct rudp_board rudp_board;

/* A slot as the shim stores it in its fd table. */
typedef struct rudp_slot_ref {
    uint32_t eid;
    uint32_t index;
    uint32_t gen;    /* the generation of the connection (rudp_slot_of) */
    rudp_slot *slot; /* NULL when the board is not mapped in this process */
} rudp_slot_ref;

/* The TCP-level figures of a connection, as TCP_INFO reports them. */
typedef struct rudp_slot_stats {
    uint32_t rtt_us, rttvar_us, min_rtt_us;
    uint32_t snd_cwnd, snd_ssthresh, snd_mss, pmtu; /* cwnd, ssthresh in bytes */
    uint32_t retransmits, lost, total_retrans;
    uint64_t bytes_sent, bytes_retrans, bytes_acked, bytes_received;
    uint64_t delivery_rate, pacing_rate; /* bytes per second */
    uint64_t updated_ns;                 /* monotonic time of the copy */
} rudp_slot_stats;

/* Maps a new board with a fresh random eid and registers it in this
 * process.  The board lives in a memory file (close-on-exec) that another
 * process maps to share it (rudp_board_map): |place| moves its descriptor
 * where the caller wants it and returns the new number, which the registry
 * keeps (rudp_board_fd).  Returns NULL (errno set) on failure, with the
 * file's descriptor, if any, in *err_fd for the caller to close. */
rudp_board *rudp_board_create(int (*place)(int fd), int *err_fd);

/* Maps the board in the memory file |fd| (from another process's
 * rudp_board_create) and registers it in this process, so the slots of the
 * connections that process's engine hands us resolve; the registry keeps
 * |fd|.  Returns the board, or NULL when |fd| is not one or the board is
 * known already (|fd| is then the caller's to close). */
rudp_board *rudp_board_map(int fd);

/* Returns the memory file of the board |eid| known here, or -1. */
int rudp_board_fd(uint32_t eid);

/* Returns the board |eid| if this process created or inherited it, else NULL. */
rudp_board *rudp_board_find(uint32_t eid);

/* Returns the engine id of board |b|. */
uint32_t rudp_board_eid(const rudp_board *b);

/* Claims the lowest free slot with a new generation (state becomes
 * |state|, every other field zeroed) and fills *ref.  Thread-safe and
 * usable from any thread of the process whose engine owns |b|.  Returns 0,
 * or -ENOSPC when the board is full. */
int rudp_board_alloc(rudp_board *b, uint32_t state, rudp_slot_ref *ref);

/* Frees slot |index| at once: the next claim may take it.  Only for a slot
 * no program has seen (a connect that failed before its fd was
 * published); a connection that ends is retired. */
void rudp_board_release(rudp_board *b, uint32_t index);

/* The connection in slot |index| has ended (engine thread only): the slot
 * keeps its state and error for fds that outlive the connection, and is
 * freed once RUDP_BOARD_KEEP later ends were retired (RUDP_BOARD_KEEP_FAILED
 * later failures when it failed). */
void rudp_board_retire(rudp_board *b, uint32_t index);

/* Gives back to the system the pages of every long run of free slots,
 * when slots were freed since the last call (engine thread only, on its
 * tick).  Returns the bytes removed. */
size_t rudp_board_shrink(rudp_board *b);

/* Resolves |ref->slot| from eid and index; returns false if unknown here. */
bool rudp_board_resolve(rudp_slot_ref *ref);

/* Returns the slot of |ref| for reading and flagging: NULL when its board
 * is not mapped here; while the slot holds ref's connection, the slot;
 * once it holds another, a slot of this process that reads as a
 * connection that ended cleanly (DONE, no error, no figures) and ignores
 * flags.  A slot returned for ref's connection stays its own for at least
 * RUDP_BOARD_KEEP further ends, so the caller's next reads are safe. */
rudp_slot *rudp_slot_of(const rudp_slot_ref *ref);

/* --- one slot (any thread, any process sharing the board) --- */

/* Returns the slot's state (enum rudp_slot_state), with acquire ordering:
 * what the engine wrote before the state is visible after it. */
uint32_t rudp_slot_state(const rudp_slot *s);

/* Sets the state (engine), unless the slot already records a failure;
 * CONNECTED also sets RUDP_SLOT_F_WAS_CONNECTED. */
void rudp_slot_set_state(rudp_slot *s, uint32_t state);

/* Records a failure (engine): |err| (an rudp_error) becomes the sticky
 * error and the pending SO_ERROR, then the state FAILED. */
void rudp_slot_fail(rudp_slot *s, int err);

/* Returns the sticky error (an rudp_error; RUDP_OK while none). */
int rudp_slot_error(const rudp_slot *s);

/* Returns the pending SO_ERROR (an rudp_error) and clears it: TCP reports
 * an asynchronous error once. */
int rudp_slot_take_so_error(rudp_slot *s);

/* Adds |flags| (RUDP_SLOT_F_*) to the slot (shim). */
void rudp_slot_set_flags(rudp_slot *s, uint32_t flags);

/* Returns the slot's flags. */
uint32_t rudp_slot_flags(const rudp_slot *s);

/* The program's liveness options for the connection (TCP_USER_TIMEOUT,
 * SO_KEEPALIVE with TCP_KEEPIDLE/INTVL/CNT), as the engine applies them. */
typedef struct rudp_slot_opts {
    uint32_t user_timeout_ms; /* 0: none */
    uint32_t ka_idle_s;       /* 0: SO_KEEPALIVE is off */
    uint32_t ka_intvl_s, ka_cnt;
} rudp_slot_opts;

/* Stores the options (shim, one writer at a time per connection). */
void rudp_slot_set_opts(rudp_slot *s, const rudp_slot_opts *o);

/* Copies the options into *out and returns true when they changed since
 * generation *gen (then updated); false when they did not, or are being
 * written (engine; it looks again later). */
bool rudp_slot_take_opts(const rudp_slot *s, uint32_t *gen, rudp_slot_opts *out);

/* What an inspection tool (rudp-stat) shows of a connection beyond
 * TCP_INFO's figures: its session and stream, the session's path and
 * congestion state, and the stream's buffers and windows (engine). */
typedef struct rudp_slot_detail {
    uint64_t session_id; /* the session's local connection ID */
    uint64_t stream_id;
    uint8_t role;                    /* 1: client (connect), 2: server (accept) */
    uint8_t cc_algo;                 /* enum rudp_cc_algo */
    uint8_t cc_state;                /* enum rudp_trace_cc_state */
    uint8_t stream_state;            /* enum rudp_stream_state */
    uint32_t max_packet_size;        /* the path's datagram size in use */
    struct sockaddr_in6 local, peer; /* the session's UDP addresses (v4 mapped) */
    uint64_t bytes_in_flight, pkts_sent, pkts_lost, migrations;
    uint64_t snd_buf;          /* written, not yet acknowledged */
    uint64_t rcv_buf;          /* received in order, not yet read */
    uint64_t snd_wnd, rcv_wnd; /* the peer's window left; ours advertised */
    uint64_t updated_ns;
} rudp_slot_detail;

/* Copies |d| into the slot (engine). */
void rudp_slot_publish_detail(rudp_slot *s, const rudp_slot_detail *d);

/* Reads the detail into *out; false when none was published (or the
 * engine kept writing it). */
bool rudp_slot_read_detail(const rudp_slot *s, rudp_slot_detail *out);

/* For inspection tools (rudp-stat): maps the board in memory file |fd|
 * read-only, without registering it, or returns NULL when it is not one;
 * rudp_board_unview unmaps it. */
const rudp_board *rudp_board_view(int fd);
void rudp_board_unview(const rudp_board *b);
/* The process whose engine made |b|, its number of slots, slot |index|
 * (NULL past the end), and whether a slot holds a live connection
 * (connecting or connected). */
uint32_t rudp_board_owner(const rudp_board *b);
uint32_t rudp_board_nslots(const rudp_board *b);
const rudp_slot *rudp_board_slot(const rudp_board *b, uint32_t index);
bool rudp_slot_in_use(const rudp_slot *s);

/* Copies |st| into the slot (engine).  Each figure is stored atomically on
 * its own; a reader may see a mix of two copies, as TCP_INFO may. */
void rudp_slot_publish(rudp_slot *s, const rudp_slot_stats *st);

/* Reads the slot's figures into |out|. */
void rudp_slot_read(const rudp_slot *s, rudp_slot_stats *out);

/* The abstract AF_UNIX name of an accepted connection: "\0rudp-a/" then the
 * slot's eid, index and generation, TCP peer and TCP local address in hex.
 * Writes the sun_path bytes into |out| (at least RUDP_BOARD_NAME_MAX) and
 * returns their length (the name is abstract: out[0] == '\0'). */
#define RUDP_BOARD_NAME_MAX 108
size_t rudp_board_name_encode(char *out, const rudp_slot_ref *ref,
                              const struct sockaddr_storage *peer,
                              const struct sockaddr_storage *local);

/* Parses a name made by rudp_board_name_encode (|len| bytes of sun_path)
 * into *ref (eid, index, generation; slot NULL: rudp_board_resolve).
 * Returns false when it is not one. */
bool rudp_board_name_decode(const char *name, size_t len, rudp_slot_ref *ref,
                            struct sockaddr_storage *peer, struct sockaddr_storage *local);

#endif /* RUDP_BOARD_H */
