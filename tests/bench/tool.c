/*
 * tool.c — rudp-bench-tool, the small client and server that scripts/bench
 * times (docs/BENCHMARKS.md).
 *
 * iperf3 measures bulk goodput; everything about connections and round trips
 * is measured here, with CLOCK_MONOTONIC, by a plain TCP program that knows
 * nothing of rudp (the bench runs it under the LD_PRELOAD shim or not):
 *
 *   server PORT [WORKERS]       epoll echo server on 127.0.0.1:PORT; every
 *                               byte read is written back; prints "ready".
 *                               With WORKERS, the process listens, forks that
 *                               many workers that accept on the inherited
 *                               listener (pre-fork), and waits for them: a
 *                               process may hold only RLIMIT_NOFILE fds
 *   rr HOST PORT COUNT SIZE     COUNT fresh connections in sequence, each:
 *                               socket, connect, write SIZE bytes, read SIZE
 *                               bytes, close; prints the first, the second,
 *                               the mean and the total in milliseconds
 *   churn HOST PORT SECS SIZE   the same loop for SECS seconds; prints the
 *                               connections per second
 *   pingpong HOST PORT COUNT SIZE [bulk]
 *                               one connection, COUNT round trips of SIZE
 *                               bytes (after 200 warm-up ones); prints the
 *                               p50, p99 and mean in microseconds.  With
 *                               "bulk", a second connection of the same
 *                               process sends and reads back as much as it
 *                               can meanwhile (under the shim: another
 *                               stream of the same session); its Mbit/s
 *                               each way is printed too
 *   idle HOST PORT N            opens N connections (each echoes one byte so
 *                               both ends hold it established), prints its
 *                               VmRSS before and after and "ready", then
 *                               holds them until stdin closes or SIGTERM
 *
 * Results are one line of key=value pairs on stdout.  Every subcommand arms
 * alarm(--timeout, default 300 s).  Exit status: 0 success, 1 a socket call
 * failed (the line "error ..." names the call, the connection index and the
 * errno), 2 usage, 3 the alarm fired.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_TIMEOUT = 3 };

static struct sockaddr_in g_addr;
static const char *g_cmd = "";

/* Returns CLOCK_MONOTONIC in nanoseconds. */
static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Prints "error CALL conn=I errno=E (text)" and exits with EXIT_FAIL. */
static void fail(const char *call, long index) {
    int e = errno;
    printf("error %s %s conn=%ld errno=%d (%s)\n", g_cmd, call, index, e, strerror(e));
    fflush(stdout);
    _exit(EXIT_FAIL);
}

/* The alarm handler: reports which subcommand timed out. */
static void on_alarm(int sig) {
    (void)sig;
    char msg[128];
    int n = snprintf(msg, sizeof msg, "TIMEOUT %s\n", g_cmd);
    if (write(STDOUT_FILENO, msg, (size_t)n) < 0) {
        /* nothing to do */
    }
    _exit(EXIT_TIMEOUT);
}

/* Raises RLIMIT_NOFILE's soft limit to the hard limit. */
static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Returns this process's VmRSS in KiB from /proc/self/status, or -1. */
static long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* Writes all LEN bytes of BUF to FD; returns 0, or -1 with errno set. */
static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads exactly LEN bytes from FD into BUF; returns 0, or -1 (errno set;
 * ECONNRESET stands for an early end of stream). */
static int read_all(int fd, char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = read(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            errno = ECONNRESET;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Opens a blocking TCP connection to g_addr with TCP_NODELAY; exits on
 * failure, naming connection INDEX. */
static int dial(long index) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    if (fd < 0)
        fail("socket", index);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&g_addr, sizeof g_addr) < 0)
        fail("connect", index);
    return fd;
}

/* One request/response on a fresh connection: connect, write SIZE bytes,
 * read SIZE bytes back, close.  Returns the elapsed nanoseconds. */
static uint64_t one_exchange(long index, char *buf, size_t size) {
    uint64_t t0 = now_ns();
    int fd = dial(index);
    if (write_all(fd, buf, size) < 0)
        fail("write", index);
    if (read_all(fd, buf, size) < 0)
        fail("read", index);
    close(fd);
    return now_ns() - t0;
}

/* Compares two uint64_t for qsort. */
static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* rr: COUNT sequential fresh connections; prints first/second/mean/total. */
static int cmd_rr(long count, size_t size) {
    char *buf = calloc(1, size);
    uint64_t *t = calloc((size_t)count, sizeof *t);
    uint64_t start = now_ns(), sum_rest = 0;
    for (long i = 0; i < count; i++)
        t[i] = one_exchange(i, buf, size);
    uint64_t total = now_ns() - start;
    for (long i = 1; i < count; i++)
        sum_rest += t[i];
    printf("count=%ld size=%zu first_ms=%.3f second_ms=%.3f rest_mean_ms=%.3f mean_ms=%.3f "
           "total_ms=%.3f\n",
           count, size, t[0] / 1e6, count > 1 ? t[1] / 1e6 : 0.0,
           count > 1 ? sum_rest / 1e6 / (double)(count - 1) : 0.0,
           total / 1e6 / (double)count, total / 1e6);
    return EXIT_OK;
}

/* churn: fresh connections in sequence for SECS seconds; prints the rate. */
static int cmd_churn(double secs, size_t size) {
    char *buf = calloc(1, size);
    uint64_t start = now_ns(), end = start + (uint64_t)(secs * 1e9), t;
    long n = 0;
    while ((t = now_ns()) < end)
        one_exchange(n++, buf, size);
    double elapsed = (now_ns() - start) / 1e9;
    printf("conns=%ld seconds=%.3f conns_per_s=%.1f\n", n, elapsed, n / elapsed);
    return EXIT_OK;
}

/* The bulk connection beside a ping-pong: its fd, a stop flag, and the
 * bytes it read back. */
struct bulk {
    int fd;
    volatile int stop;
    uint64_t read;
};

/* Thread: writes to the bulk connection and reads its echo as fast as both
 * go, until told to stop. */
static void *bulk_run(void *arg) {
    struct bulk *b = arg;
    static char buf[65536];
    struct pollfd p = {.fd = b->fd, .events = POLLIN | POLLOUT};
    while (!b->stop) {
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = (p.revents & POLLIN) ? read(b->fd, buf, sizeof buf) : 1;
        if (n <= 0)
            break;
        if (p.revents & POLLIN)
            b->read += (uint64_t)n;
        if ((p.revents & POLLOUT) && write(b->fd, buf, sizeof buf) < 0 && errno != EAGAIN)
            break;
    }
    return NULL;
}

/* pingpong: COUNT round trips of SIZE bytes on one connection (beside a
 * bulk connection when |with_bulk|). */
static int cmd_pingpong(long count, size_t size, int with_bulk) {
    char *buf = calloc(1, size);
    uint64_t *t = calloc((size_t)count, sizeof *t);
    struct bulk b = {.fd = with_bulk ? dial(1) : -1};
    pthread_t th;
    uint64_t b0 = now_ns();
    if (with_bulk && (fcntl(b.fd, F_SETFL, O_NONBLOCK) < 0 ||
                      pthread_create(&th, NULL, bulk_run, &b) != 0))
        fail("bulk", 1);
    int fd = dial(0);
    double sum = 0;
    for (long i = -200; i < count; i++) {
        uint64_t t0 = now_ns();
        if (write_all(fd, buf, size) < 0)
            fail("write", 0);
        if (read_all(fd, buf, size) < 0)
            fail("read", 0);
        if (i >= 0) {
            t[i] = now_ns() - t0;
            sum += (double)t[i];
        }
    }
    close(fd);
    double bulk_mbit = 0;
    if (with_bulk) {
        b.stop = 1;
        pthread_join(th, NULL);
        bulk_mbit = (double)b.read * 8 / ((double)(now_ns() - b0) / 1e9) / 1e6;
    }
    qsort(t, (size_t)count, sizeof *t, cmp_u64);
    printf("count=%ld size=%zu p50_us=%.1f p99_us=%.1f mean_us=%.1f max_us=%.1f "
           "bulk_mbit=%.1f\n",
           count, size, t[count / 2] / 1e3, t[(count * 99) / 100] / 1e3, sum / count / 1e3,
           t[count - 1] / 1e3, bulk_mbit);
    return EXIT_OK;
}

/* idle: opens N connections, each echoing one byte, holds them until stdin
 * closes; prints RSS before and after. */
static int cmd_idle(long n) {
    int *fds = calloc((size_t)n, sizeof *fds);
    char c = 'x', sink[64];
    raise_nofile();
    long before = rss_kib();
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        fds[i] = dial(i);
        if (write_all(fds[i], &c, 1) < 0)
            fail("write", i);
        if (read_all(fds[i], &c, 1) < 0)
            fail("read", i);
    }
    double secs = (now_ns() - t0) / 1e9;
    printf("conns=%ld open_s=%.3f rss_before_kib=%ld rss_after_kib=%ld\nready\n", n, secs,
           before, rss_kib());
    fflush(stdout);
    alarm(0);
    while (read(STDIN_FILENO, sink, sizeof sink) > 0) {
    }
    return EXIT_OK;
}

/* Bytes a connection has been sent but not yet echoed back, and where. */
struct pending {
    char *buf;
    size_t off, len;
};

/* Echoes what is readable on FD; returns -1 when the connection is done.
 * A partial write keeps the rest in P and stops reading until it drains. */
static int echo_conn(int ep, int fd, struct pending *p) {
    char buf[65536];
    struct epoll_event ev = {.data.fd = fd};
    for (;;) {
        if (p->len > p->off) {
            ssize_t w = write(fd, p->buf + p->off, p->len - p->off);
            if (w < 0 && errno == EAGAIN) {
                ev.events = EPOLLOUT;
                epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
                return 0;
            }
            if (w < 0)
                return -1;
            p->off += (size_t)w;
            if (p->off < p->len)
                continue;
            free(p->buf);
            *p = (struct pending){0};
            ev.events = EPOLLIN;
            epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
        }
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        if (n <= 0)
            return -1;
        ssize_t w = write(fd, buf, (size_t)n);
        if (w < 0 && errno != EAGAIN)
            return -1;
        if (w < 0)
            w = 0;
        if (w < n) {
            p->buf = malloc((size_t)(n - w));
            memcpy(p->buf, buf + w, (size_t)(n - w));
            p->off = 0;
            p->len = (size_t)(n - w);
        }
    }
}

/* Accepts every pending connection on LFD into the epoll set EP. */
static void accept_all(int ep, int lfd) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
}

/* Runs the epoll echo loop on the listener LFD forever. */
__attribute__((noreturn)) static void serve(int lfd, struct pending *pend, size_t maxfd) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd}, evs[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                accept_all(ep, lfd);
            } else if ((size_t)fd < maxfd && echo_conn(ep, fd, &pend[fd]) < 0) {
                free(pend[fd].buf);
                pend[fd] = (struct pending){0};
                close(fd);
            }
        }
    }
}

/* server: the epoll echo server, in this process or in WORKERS pre-forked
 * ones; runs until killed (workers die with the SIGTERM sent to the
 * group or with the parent: PR_SET_PDEATHSIG). */
__attribute__((noreturn)) static void cmd_server(long workers) {
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    struct rlimit rl;
    raise_nofile();
    getrlimit(RLIMIT_NOFILE, &rl);
    size_t maxfd = (size_t)rl.rlim_cur + 16;
    struct pending *pend = calloc(maxfd, sizeof *pend);
    if (lfd < 0)
        fail("socket", -1);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&g_addr, sizeof g_addr) < 0)
        fail("bind", -1);
    if (listen(lfd, 4096) < 0)
        fail("listen", -1);
    alarm(0);
    if (workers == 0) {
        printf("ready\n");
        fflush(stdout);
        serve(lfd, pend, maxfd);
    }
    printf("workers=");
    for (long w = 0; w < workers; w++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0)
            fail("fork", w);
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            serve(lfd, pend, maxfd);
        }
        printf("%s%d", w ? "," : "", (int)pid);
    }
    printf("\nready\n");
    fflush(stdout);
    for (;;)
        pause();
}

/* Prints the usage and exits with EXIT_USAGE. */
static void usage(void) {
    fprintf(stderr,
            "usage: rudp-bench-tool [--timeout SECS] server PORT [WORKERS]\n"
            "       rudp-bench-tool [--timeout SECS] rr HOST PORT COUNT SIZE\n"
            "       rudp-bench-tool [--timeout SECS] churn HOST PORT SECS SIZE\n"
            "       rudp-bench-tool [--timeout SECS] pingpong HOST PORT COUNT SIZE [bulk]\n"
            "       rudp-bench-tool [--timeout SECS] idle HOST PORT N\n");
    exit(EXIT_USAGE);
}

/* Fills g_addr from HOST (IPv4 dotted quad) and PORT. */
static void set_addr(const char *host, const char *port) {
    g_addr.sin_family = AF_INET;
    g_addr.sin_port = htons((uint16_t)atoi(port));
    if (inet_pton(AF_INET, host, &g_addr.sin_addr) != 1)
        usage();
}

int main(int argc, char **argv) {
    int timeout = 300;
    int a = 1;
    if (argc > 2 && strcmp(argv[1], "--timeout") == 0) {
        timeout = atoi(argv[2]);
        a = 3;
    }
    if (argc - a < 2)
        usage();
    g_cmd = argv[a];
    signal(SIGALRM, on_alarm);
    signal(SIGPIPE, SIG_IGN);
    alarm((unsigned)timeout);
    char **v = argv + a + 1;
    int n = argc - a - 1;
    if (strcmp(g_cmd, "server") == 0 && (n == 1 || (n == 2 && atol(v[1]) > 0))) {
        set_addr("127.0.0.1", v[0]);
        cmd_server(n == 2 ? atol(v[1]) : 0);
    }
    if (n < 3)
        usage();
    set_addr(v[0], v[1]);
    if (strcmp(g_cmd, "rr") == 0 && n == 4 && atol(v[2]) > 0)
        return cmd_rr(atol(v[2]), (size_t)atol(v[3]));
    if (strcmp(g_cmd, "churn") == 0 && n == 4)
        return cmd_churn(atof(v[2]), (size_t)atol(v[3]));
    if (strcmp(g_cmd, "pingpong") == 0 && (n == 4 || (n == 5 && !strcmp(v[4], "bulk"))) &&
        atol(v[2]) > 0)
        return cmd_pingpong(atol(v[2]), (size_t)atol(v[3]), n == 5);
    if (strcmp(g_cmd, "idle") == 0 && n == 3 && atol(v[2]) > 0)
        return cmd_idle(atol(v[2]));
    usage();
    return EXIT_USAGE;
}
