/*
 * rudp-stat.c — what the rudp connections of running programs are doing,
 * in the manner of `ss -tip` (man/rudp-stat.1).
 *
 * Every engine publishes each connection's figures in a slot of its status
 * board (engine/board.h), a memory file the program's processes map: the
 * TCP_INFO figures the shim needs anyway, and a detail record (session,
 * path, congestion state, buffers and windows), copied by the engine at
 * most every 100 ms while the connection is busy.  So looking costs the
 * engines nothing: this tool finds the boards through /proc/PID/fd (its
 * own user's processes, or every process for root, as the kernel allows
 * /proc/PID/fd to be read), maps each read-only once, however many
 * processes share it, and reads the slots in use.
 *
 *   rudp-stat [-p PID] [--port PORT] [--json] [-w [SECONDS]]
 *
 * Exit status 0, 2 on a usage error.  A process whose descriptors cannot
 * be read is skipped, as ss skips what it may not see.
 */
#include "board.h"
#include "rudp/rudp.h"
#include "rudp/trace.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_BOARDS 256

/* What to show. */
typedef struct stat_opts {
    long pid;  /* only this process's boards (0: all) */
    long port; /* only connections with this UDP port on either end (0: all) */
    bool json;
    double watch; /* refresh every this many seconds (0: once) */
} stat_opts;

/* One board found, and the first process seen holding it. */
typedef struct found_board {
    dev_t dev;
    ino_t ino;
    long holder;
    const rudp_board *b;
} found_board;

typedef struct board_list {
    found_board v[MAX_BOARDS];
    int n;
} board_list;

/* --- finding the boards --- */

/* Returns true when |name| is all digits. */
static bool all_digits(const char *name) {
    if (!*name)
        return false;
    for (; *name; name++)
        if (*name < '0' || *name > '9')
            return false;
    return true;
}

/* Adds the board behind /proc/|pid|/fd/|fd| to |l| unless it is known. */
static void board_add(board_list *l, long pid, const char *fd) {
    char path[300], target[128];
    snprintf(path, sizeof(path), "/proc/%ld/fd/%s", pid, fd);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n <= 0)
        return;
    target[n] = '\0';
    struct stat st;
    if (strncmp(target, "/memfd:rudp-board", 17) != 0 || stat(path, &st) != 0)
        return;
    for (int i = 0; i < l->n; i++)
        if (l->v[i].dev == st.st_dev && l->v[i].ino == st.st_ino)
            return;
    if (l->n == MAX_BOARDS)
        return;
    int bfd = open(path, O_RDONLY | O_CLOEXEC);
    const rudp_board *b = bfd >= 0 ? rudp_board_view(bfd) : NULL;
    if (bfd >= 0)
        close(bfd); /* the mapping stays */
    if (b)
        l->v[l->n++] = (found_board){st.st_dev, st.st_ino, pid, b};
}

/* Adds the boards process |pid| holds. */
static void boards_of(board_list *l, long pid) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
    DIR *d = opendir(path);
    if (!d)
        return; /* gone, or not ours to read */
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (all_digits(e->d_name))
            board_add(l, pid, e->d_name);
    closedir(d);
}

/* Fills |l| with every board the caller may read (or |pid|'s). */
static void boards_find(board_list *l, long pid) {
    l->n = 0;
    if (pid) {
        boards_of(l, pid);
        return;
    }
    DIR *d = opendir("/proc");
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (all_digits(e->d_name))
            boards_of(l, strtol(e->d_name, NULL, 10));
    closedir(d);
}

static void boards_free(board_list *l) {
    for (int i = 0; i < l->n; i++)
        rudp_board_unview(l->v[i].b);
    l->n = 0;
}

/* --- names --- */

/* Writes process |pid|'s command name into |out|. */
static void proc_comm(long pid, char *out, size_t cap) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
    FILE *f = fopen(path, "re");
    out[0] = '\0';
    if (f && fgets(out, (int)cap, f))
        out[strcspn(out, "\n")] = '\0';
    if (f)
        fclose(f);
}

/* Writes |a| as "addr:port" ("[v6]:port" for a real IPv6 address). */
static void addr_text(const struct sockaddr_in6 *a, char *out, size_t cap) {
    char ip[INET6_ADDRSTRLEN] = "?";
    const uint8_t *b = a->sin6_addr.s6_addr;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    bool v4 = memcmp(b, mapped, 12) == 0;
    if (a->sin6_family == AF_INET6)
        inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? (const void *)(b + 12) : (const void *)b,
                  ip, sizeof(ip));
    snprintf(out, cap, v4 ? "%s:%u" : "[%s]:%u", ip, ntohs(a->sin6_port));
}

static const char *slot_state_name(uint32_t st) {
    static const char *names[] = {"FREE", "SYN-SENT", "ESTAB", "FAILED", "CLOSED"};
    return st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

static const char *stream_state_name(uint8_t st) {
    static const char *names[] = {"?",           "connecting", "syn-received",
                                  "established", "closing",    "fin-wait",
                                  "last-ack",    "closed",     "reset"};
    return st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

static const char *cc_state_name(uint8_t st) {
    switch (st) {
    case RUDP_TRACE_CC_SLOW_START:
        return "slow_start";
    case RUDP_TRACE_CC_CONGESTION_AVOIDANCE:
        return "congestion_avoidance";
    case RUDP_TRACE_CC_RECOVERY:
        return "recovery";
    case RUDP_TRACE_CC_BBR_STARTUP:
        return "startup";
    case RUDP_TRACE_CC_BBR_DRAIN:
        return "drain";
    case RUDP_TRACE_CC_BBR_PROBE_BW:
        return "probe_bw";
    case RUDP_TRACE_CC_BBR_PROBE_RTT:
        return "probe_rtt";
    default:
        return "?";
    }
}

/* --- one connection --- */

/* A connection as shown. */
typedef struct conn_view {
    long pid;
    char comm[32];
    uint32_t state;
    rudp_slot_stats st;
    rudp_slot_detail d;
    char local[64], peer[64];
} conn_view;

/* Returns true when |c| passes the port filter. */
static bool conn_wanted(const conn_view *c, const stat_opts *o) {
    return !o->port || ntohs(c->d.local.sin6_port) == o->port ||
           ntohs(c->d.peer.sin6_port) == o->port;
}

/* Prints |c| as one JSON object (|first|: no comma before it). */
static void conn_json(const conn_view *c, bool first) {
    const rudp_slot_stats *s = &c->st;
    const rudp_slot_detail *d = &c->d;
    printf("%s\n  {\"pid\":%ld,\"comm\":\"%s\",\"state\":\"%s\",\"role\":\"%s\","
           "\"local\":\"%s\",\"peer\":\"%s\",\"session\":\"%016" PRIx64 "\","
           "\"stream\":%" PRIu64 ",\"stream_state\":\"%s\",",
           first ? "" : ",", c->pid, c->comm, slot_state_name(c->state),
           d->role == 1 ? "client" : "server", c->local, c->peer, d->session_id,
           d->stream_id, stream_state_name(d->stream_state));
    printf("\"path_mtu\":%u,\"srtt_us\":%u,\"rttvar_us\":%u,\"min_rtt_us\":%u,"
           "\"cwnd\":%u,\"bytes_in_flight\":%" PRIu64 ",\"pacing_rate\":%" PRIu64 ","
           "\"cc\":\"%s\",\"cc_state\":\"%s\",\"packets_sent\":%" PRIu64 ","
           "\"packets_lost\":%" PRIu64 ",\"bytes_retransmitted\":%" PRIu64 ","
           "\"migrations\":%" PRIu64 ",",
           d->max_packet_size, s->rtt_us, s->rttvar_us, s->min_rtt_us, s->snd_cwnd,
           d->bytes_in_flight, s->pacing_rate,
           rudp_cc_algo_name((enum rudp_cc_algo)d->cc_algo), cc_state_name(d->cc_state),
           d->pkts_sent, d->pkts_lost, s->bytes_retrans, d->migrations);
    printf("\"bytes_sent\":%" PRIu64 ",\"bytes_acked\":%" PRIu64
           ",\"bytes_received\":%" PRIu64 ",\"send_buffer\":%" PRIu64
           ",\"recv_buffer\":%" PRIu64 ",\"send_window\":%" PRIu64
           ",\"recv_window\":%" PRIu64 "}",
           s->bytes_sent, s->bytes_acked, s->bytes_received, d->snd_buf, d->rcv_buf,
           d->snd_wnd, d->rcv_wnd);
}

/* Prints |c| as ss does: a line of names, then indented figures. */
static void conn_text(const conn_view *c) {
    const rudp_slot_stats *s = &c->st;
    const rudp_slot_detail *d = &c->d;
    printf("%-7s %-22s %-22s %016" PRIx64 "/%-4" PRIu64 " users:((\"%s\",pid=%ld))\n",
           slot_state_name(c->state), c->local, c->peer, d->session_id, d->stream_id,
           c->comm, c->pid);
    printf("\t %s %s(%s) rtt:%.3f/%.3f minrtt:%.3f cwnd:%u inflight:%" PRIu64
           " pacing_rate:%.1fMbps pmtu:%u sent:%" PRIu64 " lost:%" PRIu64
           " retrans:%" PRIu64 "B migrations:%" PRIu64 "\n",
           d->role == 1 ? "client" : "server",
           rudp_cc_algo_name((enum rudp_cc_algo)d->cc_algo), cc_state_name(d->cc_state),
           s->rtt_us / 1e3, s->rttvar_us / 1e3, s->min_rtt_us / 1e3, s->snd_cwnd,
           d->bytes_in_flight, (double)s->pacing_rate * 8 / 1e6, d->max_packet_size,
           d->pkts_sent, d->pkts_lost, s->bytes_retrans, d->migrations);
    printf("\t stream %s bytes_sent:%" PRIu64 " bytes_acked:%" PRIu64
           " bytes_received:%" PRIu64 " sndbuf:%" PRIu64 " rcvbuf:%" PRIu64
           " snd_wnd:%" PRIu64 " rcv_wnd:%" PRIu64 "\n",
           stream_state_name(d->stream_state), s->bytes_sent, s->bytes_acked,
           s->bytes_received, d->snd_buf, d->rcv_buf, d->snd_wnd, d->rcv_wnd);
}

/* Reads slot |i| of |f| into |c|; false when it holds no connection. */
static bool conn_read(const found_board *f, uint32_t i, conn_view *c) {
    const rudp_slot *s = rudp_board_slot(f->b, i);
    if (!rudp_slot_in_use(s) || !rudp_slot_read_detail(s, &c->d))
        return false;
    c->pid = rudp_board_owner(f->b);
    proc_comm(c->pid, c->comm, sizeof(c->comm));
    if (!c->comm[0]) { /* the engine's process is gone: a worker holds it */
        c->pid = f->holder;
        proc_comm(c->pid, c->comm, sizeof(c->comm));
    }
    c->state = rudp_slot_state(s);
    rudp_slot_read(s, &c->st);
    addr_text(&c->d.local, c->local, sizeof(c->local));
    addr_text(&c->d.peer, c->peer, sizeof(c->peer));
    return true;
}

/* Prints every connection once; returns how many. */
static int show_once(const stat_opts *o) {
    board_list *l = calloc(1, sizeof(*l));
    int shown = 0;
    if (!l)
        return 0;
    boards_find(l, o->pid);
    if (o->json)
        printf("[");
    else
        printf("%-7s %-22s %-22s %-21s %s\n", "State", "Local", "Peer", "Session/Stream",
               "Process");
    for (int k = 0; k < l->n; k++) {
        for (uint32_t i = 0; i < rudp_board_nslots(l->v[k].b); i++) {
            conn_view c;
            if (!conn_read(&l->v[k], i, &c) || !conn_wanted(&c, o))
                continue;
            if (o->json)
                conn_json(&c, shown == 0);
            else
                conn_text(&c);
            shown++;
        }
    }
    if (o->json)
        printf("%s]\n", shown ? "\n" : "");
    boards_free(l);
    free(l);
    return shown;
}

/* --- the command line --- */

static void usage(FILE *f) {
    fprintf(f, "usage: rudp-stat [-p PID] [--port PORT] [--json] [-w [SECONDS]]\n");
}

/* Parses a positive number of at most |max| for |opt|; exits 2 when it
 * is not one. */
static double parse_num(const char *opt, const char *s, double max) {
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (!s || errno || end == s || *end || !(v > 0) || v > max) {
        fprintf(stderr, "rudp-stat: bad %s value: %s\n", opt, s ? s : "(none)");
        usage(stderr);
        exit(2);
    }
    return v;
}

/* Returns true when |s| is a number -w may take as its argument. */
static bool is_number(const char *s) {
    char *end;
    return s && strtod(s, &end) > 0 && end != s && *end == '\0';
}

/* Fills |o| from the arguments; exits 2 on a usage error. */
static void parse_args(int argc, char **argv, stat_opts *o) {
    static const struct option longs[] = {
        {"pid", required_argument, NULL, 'p'}, {"port", required_argument, NULL, 'P'},
        {"json", no_argument, NULL, 'j'},      {"watch", optional_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},      {NULL, 0, NULL, 0}};
    int c;
    memset(o, 0, sizeof(*o));
    while ((c = getopt_long(argc, argv, "p:w::jh", longs, NULL)) != -1) {
        switch (c) {
        case 'p':
            o->pid = (long)parse_num("--pid", optarg, 4194304);
            break;
        case 'P':
            o->port = (long)parse_num("--port", optarg, 65535);
            break;
        case 'j':
            o->json = true;
            break;
        case 'w': /* "-w", "-w2", "-w 2", "--watch=2" */
            if (!optarg && optind < argc && is_number(argv[optind]))
                optarg = argv[optind++];
            o->watch = optarg ? parse_num("--watch", optarg, 86400) : 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "rudp-stat: unexpected argument: %s\n", argv[optind]);
        usage(stderr);
        exit(2);
    }
}

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv) {
    stat_opts o;
    parse_args(argc, argv, &o);
    if (!o.watch) {
        show_once(&o);
        return 0;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    while (!stop) {
        if (!o.json)
            printf("\033[H\033[2J");
        show_once(&o);
        fflush(stdout);
        struct timespec ts = {(time_t)o.watch, (long)((o.watch - (time_t)o.watch) * 1e9)};
        nanosleep(&ts, NULL);
    }
    return 0;
}
