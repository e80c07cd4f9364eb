/*
 * tool.c — rudp-e2e-tool, the precise client and server programs of the
 * end-to-end suite (tests/e2e/run.py).
 *
 * Real programs (socat, curl, python) show that rudp carries what people
 * run; this tool shows the exact socket semantics of DESIGN.md §4 that those
 * programs do not pin down: which errno a refused connect reports and how
 * fast, that a program which writes and exits at once still has its bytes
 * delivered, that a killed peer surfaces as ECONNRESET or ETIMEDOUT, that
 * getsockopt/setsockopt answer as on a TCP socket, and that the threaded,
 * epoll, pre-fork and fork-per-connection server shapes all work.  It is
 * also the soak suite's client (soak-client, tests/soak/run.py): minutes of
 * bulk transfers, connection churn and idle connections in one process.
 *
 * The tool knows nothing of rudp: it is a plain TCP program, run under the
 * LD_PRELOAD shim by the suite.  Every subcommand arms a hard alarm()
 * (--timeout SECS, default 60) and prints one result line on stdout (a few
 * print one line per check).  Exit codes are exact:
 *
 *   0  the operation ran and its result line was printed (for the checking
 *      subcommands: every check passed)
 *   1  a check failed (wrong bytes, wrong errno, wrong option value)
 *   2  usage error
 *   3  the alarm fired (printed as "TIMEOUT <subcommand>")
 *   4  a system call the test relies on failed unexpectedly
 *
 * Data is a deterministic pattern: byte i of the stream with seed s is byte
 * i % 8 of splitmix64(s, i / 8), so a receiver checks every byte at its
 * offset without a copy of what was sent, and a reordered, duplicated or
 * lost chunk is reported at its exact offset.  `pattern SEED BYTES` prints
 * the same bytes so the suite can hash them.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum {
    EXIT_OK = 0,
    EXIT_CHECK = 1,
    EXIT_USAGE = 2,
    EXIT_TIMEOUT = 3,
    EXIT_SYS = 4,
};

#define CHUNK 65536

static const char *g_subcommand = "?";
static unsigned g_timeout = 60; /* seconds; every process of the tool arms it */

/* ---------------------------------------------------------------- helpers */

/* The alarm handler: reports the timeout and ends the process at once. */
static void on_alarm(int sig) {
    (void)sig;
    char line[128];
    int n = snprintf(line, sizeof line, "TIMEOUT %s\n", g_subcommand);
    if (n > 0) {
        ssize_t w = write(STDOUT_FILENO, line, (size_t)n);
        (void)w;
    }
    _exit(EXIT_TIMEOUT);
}

/* Prints a message about a failed system call to stderr and exits with
 * EXIT_SYS. */
static void die_sys(const char *what) {
    int e = errno;
    fprintf(stderr, "rudp-e2e-tool %s: %s: %s\n", g_subcommand, what, strerror(e));
    printf("SYSERR %s %s\n", what, strerrorname_np(e) ? strerrorname_np(e) : "?");
    fflush(stdout);
    exit(EXIT_SYS);
}

/* Prints one result line on stdout and flushes it. */
static void result(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* Returns the symbolic name of errno value |e| ("ECONNREFUSED"), or "E?". */
static const char *errname(int e) {
    const char *n = strerrorname_np(e);
    return n ? n : "E?";
}

/* Returns a monotonic time in milliseconds. */
static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Parses a non-negative decimal integer (with an optional K/M/G binary
 * suffix) into |out|.  Returns false when |s| is not one. */
static bool parse_size(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-')
        return false;
    if (*end == 'K' || *end == 'k')
        v <<= 10, end++;
    else if (*end == 'M' || *end == 'm')
        v <<= 20, end++;
    else if (*end == 'G' || *end == 'g')
        v <<= 30, end++;
    if (*end != '\0')
        return false;
    *out = v;
    return true;
}

/* Parses a TCP port (1-65535).  Returns false when |s| is not one. */
static bool parse_port(const char *s, uint16_t *out) {
    uint64_t v;
    if (!parse_size(s, &v) || v == 0 || v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

/* ---------------------------------------------------------------- pattern */

/* Returns the splitmix64 mix of |x|. */
static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Fills |buf| with |len| bytes of the pattern of |seed| starting at stream
 * offset |off|. */
static void pattern_fill(uint64_t seed, uint64_t off, uint8_t *buf, size_t len) {
    uint64_t salt = mix64(seed * 0x100000001b3ULL + 1);
    size_t i = 0;
    while (i < len) {
        uint64_t pos = off + i;
        uint64_t word = mix64(salt ^ (pos >> 3));
        unsigned b = (unsigned)(pos & 7);
        for (; b < 8 && i < len; b++, i++)
            buf[i] = (uint8_t)(word >> (8 * b));
    }
}

/* Compares |len| received bytes at stream offset |off| with the pattern of
 * |seed|.  Returns -1 when they match, else the stream offset of the first
 * differing byte. */
static int64_t pattern_check(uint64_t seed, uint64_t off, const uint8_t *buf, size_t len) {
    uint8_t want[CHUNK];
    size_t done = 0;
    while (done < len) {
        size_t n = len - done < CHUNK ? len - done : CHUNK;
        pattern_fill(seed, off + done, want, n);
        if (memcmp(want, buf + done, n) != 0) {
            for (size_t i = 0; i < n; i++)
                if (want[i] != buf[done + i])
                    return (int64_t)(off + done + i);
        }
        done += n;
    }
    return -1;
}

/* ---------------------------------------------------------------- sockets */

/* Resolves numeric |host| and |port| into |ss|.  Returns the length, or 0
 * when |host| is not a numeric IPv4 or IPv6 address. */
static socklen_t make_addr(const char *host, uint16_t port, struct sockaddr_storage *ss) {
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        return sizeof *s4;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        return sizeof *s6;
    }
    return 0;
}

/* Returns the port of an AF_INET or AF_INET6 address, or 0. */
static uint16_t addr_port(const struct sockaddr_storage *ss) {
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return 0;
}

/* Formats the address part of |ss| into |out| (at least INET6_ADDRSTRLEN). */
static const char *addr_str(const struct sockaddr_storage *ss, char *out, size_t len) {
    const void *a = NULL;
    if (ss->ss_family == AF_INET)
        a = &((const struct sockaddr_in *)ss)->sin_addr;
    else if (ss->ss_family == AF_INET6)
        a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
    if (!a || !inet_ntop(ss->ss_family, a, out, (socklen_t)len))
        snprintf(out, len, "family=%d", ss->ss_family);
    return out;
}

/* Opens a TCP socket and connects it to |host|:|port| (blocking).  Returns
 * the fd, or -1 with errno set. */
static int tcp_connect(const char *host, uint16_t port) {
    struct sockaddr_storage ss;
    socklen_t len = make_addr(host, port, &ss);
    if (len == 0) {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Opens a listening TCP socket on |port| of the wildcard address (IPv6
 * dual-stack with |v6|) with SO_REUSEADDR.  Exits with EXIT_SYS on failure. */
static int tcp_listen(uint16_t port, bool v6) {
    struct sockaddr_storage ss;
    socklen_t len = make_addr(v6 ? "::" : "0.0.0.0", port, &ss);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0)
        die_sys("socket");
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        die_sys("setsockopt SO_REUSEADDR");
    if (bind(fd, (struct sockaddr *)&ss, len) < 0)
        die_sys("bind");
    if (listen(fd, 512) < 0)
        die_sys("listen");
    return fd;
}

/* Writes all |len| bytes of |buf| to |fd|, retrying short writes and
 * EINTR.  Returns 0, or -1 with errno set. */
static int write_all(int fd, const void *buf, size_t len) {
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Writes bytes [off, off + bytes) of the pattern of |seed| to |fd|.
 * Returns 0, or -1 with errno set and *at (if not NULL) the offset of the
 * chunk that failed. */
static int pattern_write(int fd, uint64_t seed, uint64_t off, uint64_t bytes,
                         uint64_t *at) {
    uint8_t buf[CHUNK];
    for (uint64_t done = 0; done < bytes;) {
        size_t n = bytes - done < CHUNK ? (size_t)(bytes - done) : CHUNK;
        pattern_fill(seed, off + done, buf, n);
        if (write_all(fd, buf, n) < 0) {
            if (at)
                *at = off + done;
            return -1;
        }
        done += n;
    }
    return 0;
}

/* Reads until EOF from |fd| and echoes everything back.  Returns 0 at EOF,
 * or -1 with errno set on a read or write error. */
static int echo_stream(int fd) {
    uint8_t buf[CHUNK];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        if (write_all(fd, buf, (size_t)n) < 0)
            return -1;
    }
}

/* ----------------------------------------------------------- echo-server */

/* Serves one accepted connection in its own thread: echo until EOF, then
 * close (which sends the FIN after the echoed bytes). */
static void *echo_thread(void *arg) {
    int fd = (int)(intptr_t)arg;
    if (echo_stream(fd) < 0)
        fprintf(stderr, "echo-server: connection fd %d: %s\n", fd, strerror(errno));
    close(fd);
    return NULL;
}

/* Accepts connections on |lfd| forever, one detached thread each. */
static void serve_threads(int lfd) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
            continue;
        if (fd < 0)
            die_sys("accept4");
        pthread_t t;
        if (pthread_create(&t, &attr, echo_thread, (void *)(intptr_t)fd) != 0) {
            errno = EAGAIN;
            die_sys("pthread_create");
        }
    }
}

/* Accepts connections on |lfd| forever and serves each to its end in this
 * process (one pre-forked worker). */
static void serve_sequential(int lfd) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
            continue;
        if (fd < 0)
            die_sys("accept4");
        if (echo_stream(fd) < 0)
            fprintf(stderr, "echo-server[%d]: %s\n", (int)getpid(), strerror(errno));
        close(fd);
    }
}

/* Forks |workers| processes that each accept on the inherited |lfd|, then
 * waits for them (they run until killed). */
static void serve_prefork(int lfd, int workers) {
    for (int i = 0; i < workers; i++) {
        pid_t pid = fork();
        if (pid < 0)
            die_sys("fork");
        if (pid == 0) {
            alarm(g_timeout); /* a forked child has no pending alarm */
            serve_sequential(lfd);
            _exit(0);
        }
    }
    while (wait(NULL) > 0 || errno == EINTR) {
    }
    die_sys("wait: every worker ended");
}

/* Accepts connections forever; a forked child serves each one while the
 * parent closes its copy of the connection. */
static void serve_forkconn(int lfd) {
    signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, 0);
        if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
            continue;
        if (fd < 0)
            die_sys("accept4");
        pid_t pid = fork();
        if (pid < 0)
            die_sys("fork");
        if (pid == 0) {
            close(lfd);
            alarm(g_timeout);
            int rc = echo_stream(fd);
            close(fd);
            _exit(rc == 0 ? 0 : 1);
        }
        close(fd);
    }
}

/* One connection of the epoll echo server: bytes read but not yet echoed
 * sit in |buf| from |off| to |len|. */
typedef struct econn {
    int fd;
    bool eof;
    size_t off, len;
    uint8_t buf[CHUNK];
} econn;

/* Sets O_NONBLOCK on |fd|.  Exits with EXIT_SYS on failure. */
static void set_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        die_sys("fcntl O_NONBLOCK");
}

/* Closes connection |c| and frees it. */
static void econn_close(int ep, econn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* Writes what |c| holds.  Returns 1 when everything pending is written, 0
 * when the socket is full, -1 on error. */
static int econn_flush(econn *c) {
    while (c->off < c->len) {
        ssize_t n = write(c->fd, c->buf + c->off, c->len - c->off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        c->off += (size_t)n;
    }
    c->off = c->len = 0;
    return 1;
}

/* Handles readiness on |c|: reads when its buffer is empty, writes what it
 * holds, and waits for EPOLLOUT instead of EPOLLIN while bytes are pending
 * (backpressure).  Closes |c| after EOF once everything is echoed. */
static void econn_event(int ep, econn *c) {
    int st = econn_flush(c);
    while (st == 1 && !c->eof) {
        ssize_t n = read(c->fd, c->buf, sizeof c->buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            if (n < 0)
                fprintf(stderr, "echo-server epoll: read: %s\n", strerror(errno));
            c->eof = true;
            break;
        }
        c->len = (size_t)n;
        st = econn_flush(c);
    }
    if (st < 0 || (st == 1 && c->eof)) {
        econn_close(ep, c);
        return;
    }
    struct epoll_event ev = {.events = st == 0 ? EPOLLOUT : EPOLLIN, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        die_sys("epoll_ctl MOD");
}

/* Accepts every pending connection on the non-blocking |lfd| and adds it to
 * |ep|. */
static void epoll_accept(int ep, int lfd) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
            continue;
        if (fd < 0)
            die_sys("accept4");
        econn *c = calloc(1, sizeof *c);
        if (!c)
            die_sys("calloc");
        c->fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
            die_sys("epoll_ctl ADD");
    }
}

/* Serves every connection from one thread with level-triggered epoll and
 * non-blocking sockets. */
static void serve_epoll(int lfd) {
    set_nonblock(lfd);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die_sys("epoll_create1");
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0)
        die_sys("epoll_ctl listener");
    struct epoll_event evs[64];
    for (;;) {
        int n = epoll_wait(ep, evs, 64, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die_sys("epoll_wait");
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL)
                epoll_accept(ep, lfd);
            else
                econn_event(ep, evs[i].data.ptr);
        }
    }
}

/* echo-server PORT [--v6] [--daemon] [--mode threads|epoll|prefork N|forkconn]:
 * listens, prints "listening PORT", and echoes every connection until
 * killed (or the alarm).  With --daemon it forks once it listens and the
 * parent closes its copy of the listener and exits (status 0, through
 * exit()), as daemons do: the child serves. */
static int cmd_echo_server(int argc, char **argv) {
    uint16_t port;
    bool v6 = false, daemon = false;
    const char *mode = "threads";
    int workers = 4;
    if (argc < 1 || !parse_port(argv[0], &port))
        return EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--v6") == 0) {
            v6 = true;
        } else if (strcmp(argv[i], "--daemon") == 0) {
            daemon = true;
        } else if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc) {
            mode = argv[++i];
            if (strcmp(mode, "prefork") == 0 && i + 1 < argc && argv[i + 1][0] != '-')
                workers = atoi(argv[++i]);
        } else {
            return EXIT_USAGE;
        }
    }
    if (workers < 1 || workers > 64)
        return EXIT_USAGE;
    signal(SIGPIPE, SIG_IGN);
    int lfd = tcp_listen(port, v6);
    result("listening %u", port);
    if (daemon) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0)
            die_sys("fork");
        if (pid > 0) {
            close(lfd); /* the child holds it now */
            exit(EXIT_OK);
        }
        alarm(g_timeout);
    }
    if (strcmp(mode, "threads") == 0)
        serve_threads(lfd);
    else if (strcmp(mode, "epoll") == 0)
        serve_epoll(lfd);
    else if (strcmp(mode, "prefork") == 0)
        serve_prefork(lfd, workers);
    else if (strcmp(mode, "forkconn") == 0)
        serve_forkconn(lfd);
    return EXIT_USAGE;
}

/* ---------------------------------------------------------- clone-server */

/* clone-server PORT1 PORT2: listens on PORT1 (so this process has an
 * engine), then makes a child with a raw clone(SIGCHLD) system call, which
 * runs no pthread_atfork handler (vsftpd's isolate=YES).  The child listens
 * on PORT2, prints "listening PORT2", echoes one connection to its EOF and
 * exits; the parent exits with the child's status. */
static int cmd_clone_server(int argc, char **argv) {
    uint16_t port1, port2;
    if (argc != 2 || !parse_port(argv[0], &port1) || !parse_port(argv[1], &port2))
        return EXIT_USAGE;
    signal(SIGPIPE, SIG_IGN);
    int lfd1 = tcp_listen(port1, false);
    long pid = syscall(SYS_clone, (unsigned long)SIGCHLD, 0ul, 0ul, 0ul, 0ul);
    if (pid < 0)
        die_sys("clone");
    if (pid == 0) {
        close(lfd1);
        int lfd = tcp_listen(port2, false);
        result("listening %u", port2);
        int fd;
        while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0 && errno == EINTR) {
        }
        if (fd < 0)
            die_sys("accept4");
        if (echo_stream(fd) < 0)
            die_sys("echo");
        close(fd);
        exit(EXIT_OK);
    }
    int status;
    while (waitpid((pid_t)pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : EXIT_CHECK;
}

/* -------------------------------------------------------- threads-client */

/* One connection of threads-client: its pattern seed, size and outcome. */
typedef struct tc_conn {
    const char *host;
    uint16_t port;
    uint64_t seed, bytes;
    int fd;
    int write_errno;   /* errno of a failed write, or 0 */
    char failure[160]; /* empty when the connection checked out */
    pthread_t thread;
} tc_conn;

/* Writes the connection's whole pattern, then half-closes with
 * shutdown(SHUT_WR).  Runs in its own thread beside the reader. */
static void *tc_writer(void *arg) {
    tc_conn *c = arg;
    if (pattern_write(c->fd, c->seed, 0, c->bytes, NULL) < 0) {
        c->write_errno = errno;
        return NULL;
    }
    if (shutdown(c->fd, SHUT_WR) < 0)
        c->write_errno = errno;
    return NULL;
}

/* Reads the echo to EOF and checks every byte against the pattern.
 * Records a failure description in |c| when anything differs. */
static void tc_read_check(tc_conn *c) {
    uint8_t buf[CHUNK];
    uint64_t got = 0;
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(c->failure, sizeof c->failure, "read %s after %llu bytes",
                     errname(errno), (unsigned long long)got);
            return;
        }
        if (n == 0)
            break;
        if (got + (uint64_t)n > c->bytes) {
            snprintf(c->failure, sizeof c->failure, "more bytes than sent (%llu)",
                     (unsigned long long)(got + (uint64_t)n));
            return;
        }
        int64_t bad = pattern_check(c->seed, got, buf, (size_t)n);
        if (bad >= 0) {
            snprintf(c->failure, sizeof c->failure, "byte %lld differs", (long long)bad);
            return;
        }
        got += (uint64_t)n;
    }
    if (got != c->bytes)
        snprintf(c->failure, sizeof c->failure, "EOF after %llu of %llu bytes",
                 (unsigned long long)got, (unsigned long long)c->bytes);
}

/* One client thread: connect, write and read concurrently, check. */
static void *tc_main(void *arg) {
    tc_conn *c = arg;
    c->fd = tcp_connect(c->host, c->port);
    if (c->fd < 0) {
        snprintf(c->failure, sizeof c->failure, "connect %s", errname(errno));
        return NULL;
    }
    pthread_t w;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    if (pthread_create(&w, &attr, tc_writer, c) != 0) {
        snprintf(c->failure, sizeof c->failure, "pthread_create failed");
        close(c->fd);
        return NULL;
    }
    tc_read_check(c);
    pthread_join(w, NULL);
    if (!c->failure[0] && c->write_errno)
        snprintf(c->failure, sizeof c->failure, "write %s", errname(c->write_errno));
    close(c->fd);
    return NULL;
}

/* threads-client HOST PORT NTHREADS BYTES: NTHREADS concurrent connections
 * each echo BYTES of their own pattern; prints "ok N" or the failures. */
static int cmd_threads_client(int argc, char **argv) {
    uint16_t port;
    uint64_t nthreads, bytes;
    if (argc != 4 || !parse_port(argv[1], &port) || !parse_size(argv[2], &nthreads) ||
        nthreads == 0 || nthreads > 2000 || !parse_size(argv[3], &bytes))
        return EXIT_USAGE;
    signal(SIGPIPE, SIG_IGN);
    tc_conn *conns = calloc(nthreads, sizeof *conns);
    if (!conns)
        die_sys("calloc");
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 512 * 1024);
    for (uint64_t i = 0; i < nthreads; i++) {
        conns[i] = (tc_conn){.host = argv[0], .port = port, .seed = i + 1, .bytes = bytes};
        if (pthread_create(&conns[i].thread, &attr, tc_main, &conns[i]) != 0)
            die_sys("pthread_create");
    }
    int failed = 0;
    for (uint64_t i = 0; i < nthreads; i++) {
        pthread_join(conns[i].thread, NULL);
        if (conns[i].failure[0]) {
            if (failed < 10)
                printf("conn %llu: %s\n", (unsigned long long)i, conns[i].failure);
            failed++;
        }
    }
    if (failed) {
        result("FAIL %d of %llu connections", failed, (unsigned long long)nthreads);
        return EXIT_CHECK;
    }
    result("ok %llu", (unsigned long long)nthreads);
    return EXIT_OK;
}

/* --------------------------------------------------------- connect-errno */

/* Connects non-blocking: EINPROGRESS, poll for POLLOUT, then SO_ERROR.
 * Returns the resulting errno (0 when connected) and notes in |how| which
 * path produced it; checks that SO_ERROR clears after being read. */
static int connect_nonblock(int fd, const struct sockaddr_storage *ss, socklen_t len,
                            const char **how) {
    *how = "immediate";
    if (connect(fd, (const struct sockaddr *)ss, len) == 0)
        return 0;
    if (errno != EINPROGRESS)
        return errno;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int n;
    while ((n = poll(&p, 1, -1)) < 0 && errno == EINTR) {
    }
    if (n < 0)
        die_sys("poll");
    int err = 0;
    socklen_t elen = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
        die_sys("getsockopt SO_ERROR");
    int again = -1;
    elen = sizeof again;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &again, &elen) < 0)
        die_sys("getsockopt SO_ERROR (second)");
    *how = again == 0 ? "so_error" : "so_error-not-cleared";
    return err;
}

/* connect-errno HOST PORT [--nonblock]: prints "<ERRNAME|OK> <ms> <how>". */
static int cmd_connect_errno(int argc, char **argv) {
    uint16_t port;
    bool nonblock = argc == 3 && strcmp(argv[2], "--nonblock") == 0;
    if ((argc != 2 && !nonblock) || !parse_port(argv[1], &port))
        return EXIT_USAGE;
    struct sockaddr_storage ss;
    socklen_t len = make_addr(argv[0], port, &ss);
    if (len == 0)
        return EXIT_USAGE;
    int fd = socket(ss.ss_family, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        die_sys("socket");
    int64_t t0 = now_ms();
    const char *how = "blocking";
    int err = 0;
    if (nonblock)
        err = connect_nonblock(fd, &ss, len, &how);
    else if (connect(fd, (struct sockaddr *)&ss, len) < 0)
        err = errno;
    result("%s %lld %s", err ? errname(err) : "OK", (long long)(now_ms() - t0), how);
    close(fd);
    return EXIT_OK;
}

/* ------------------------------------------------------------ write-exit */

/* write-exit HOST PORT BYTES [SEED]: connects, writes BYTES of the pattern
 * and calls exit(0) at once: no shutdown, no close. */
static int cmd_write_exit(int argc, char **argv) {
    uint16_t port;
    uint64_t bytes, seed = 7;
    if ((argc != 3 && argc != 4) || !parse_port(argv[1], &port) ||
        !parse_size(argv[2], &bytes) || (argc == 4 && !parse_size(argv[3], &seed)))
        return EXIT_USAGE;
    int fd = tcp_connect(argv[0], port);
    if (fd < 0) {
        result("connect %s", errname(errno));
        return EXIT_CHECK;
    }
    uint64_t at;
    if (pattern_write(fd, seed, 0, bytes, &at) < 0) {
        result("write %s at %llu", errname(errno), (unsigned long long)at);
        return EXIT_CHECK;
    }
    result("wrote %llu", (unsigned long long)bytes);
    exit(0);
}

/* ----------------------------------------------------------------- abort */

/* abort HOST PORT BYTES: connects, writes BYTES of the pattern, sets
 * SO_LINGER {1, 0} and closes: an abortive close that must reach the peer
 * as a reset.  Prints "aborted BYTES". */
/* glibc's struct tcp_info stops at tcpi_total_retrans; the kernel's goes
 * on, in this order (linux/tcp.h, which clashes with netinet/tcp.h). */
struct tcp_info_acked {
    struct tcp_info base;
    uint64_t pacing_rate;
    uint64_t max_pacing_rate;
    uint64_t bytes_acked;
};
_Static_assert(offsetof(struct tcp_info_acked, bytes_acked) == 120,
               "tcpi_bytes_acked is at offset 120 of the kernel's struct tcp_info");

/* Waits, polling TCP_INFO, until the peer has acknowledged at least |bytes|
 * bytes of |fd|'s stream; prints why and returns false when the connection
 * closes first or |timeout_ms| passes. */
static bool wait_acked(int fd, uint64_t bytes, int timeout_ms) {
    int64_t end = now_ms() + timeout_ms;
    for (;;) {
        struct tcp_info_acked ti;
        socklen_t len = sizeof ti;
        if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
            die_sys("getsockopt TCP_INFO");
        if (len < sizeof ti) {
            result("FAIL TCP_INFO is %u bytes, too short for tcpi_bytes_acked",
                   (unsigned)len);
            return false;
        }
        if (ti.bytes_acked >= bytes)
            return true;
        if (ti.base.tcpi_state == TCP_CLOSE) {
            result("FAIL the connection closed with %llu of %llu bytes acknowledged",
                   (unsigned long long)ti.bytes_acked, (unsigned long long)bytes);
            return false;
        }
        if (now_ms() > end) {
            result("FAIL %llu of %llu bytes acknowledged after %d ms",
                   (unsigned long long)ti.bytes_acked, (unsigned long long)bytes,
                   timeout_ms);
            return false;
        }
        usleep(1000);
    }
}

static int cmd_abort(int argc, char **argv) {
    uint16_t port;
    uint64_t bytes;
    if (argc != 3 || !parse_port(argv[1], &port) || !parse_size(argv[2], &bytes))
        return EXIT_USAGE;
    int fd = tcp_connect(argv[0], port);
    if (fd < 0) {
        result("connect %s", errname(errno));
        return EXIT_CHECK;
    }
    uint8_t buf[CHUNK];
    for (uint64_t off = 0; off < bytes; off += CHUNK) {
        size_t n = bytes - off < CHUNK ? (size_t)(bytes - off) : CHUNK;
        pattern_fill(7, off, buf, n);
        if (write_all(fd, buf, n) < 0)
            die_sys("write");
    }
    /* The reset must follow the bytes, not overtake them in the sender's
     * queue: wait until the peer has acknowledged them all. */
    if (!wait_acked(fd, bytes, 10000))
        return EXIT_CHECK;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) < 0)
        die_sys("setsockopt SO_LINGER");
    if (close(fd) < 0)
        die_sys("close");
    result("aborted %llu", (unsigned long long)bytes);
    return EXIT_OK;
}

/* ----------------------------------------------------------- sink-server */

/* sink-server PORT OUTFILE [--v6]: accepts one connection, writes all it
 * receives to OUTFILE, prints "received N" at EOF. */
static int cmd_sink_server(int argc, char **argv) {
    uint16_t port;
    if ((argc != 2 && argc != 3) || !parse_port(argv[0], &port))
        return EXIT_USAGE;
    bool v6 = argc == 3 && strcmp(argv[2], "--v6") == 0;
    int out = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0)
        die_sys("open OUTFILE");
    int lfd = tcp_listen(port, v6);
    result("listening %u", port);
    int fd;
    while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0 && errno == EINTR) {
    }
    if (fd < 0)
        die_sys("accept4");
    uint8_t buf[CHUNK];
    uint64_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            result("read %s after %llu", errname(errno), (unsigned long long)got);
            return EXIT_CHECK;
        }
        if (n == 0)
            break;
        if (write_all(out, buf, (size_t)n) < 0)
            die_sys("write OUTFILE");
        got += (uint64_t)n;
    }
    close(out);
    result("received %llu", (unsigned long long)got);
    return EXIT_OK;
}

/* --------------------------------------------------------- stream-server */

/* Serves one stream-server connection: reads the request byte, then writes
 * the pattern until the peer goes away. */
static void *stream_thread(void *arg) {
    int fd = (int)(intptr_t)arg;
    uint8_t buf[CHUNK];
    if (read(fd, buf, 1) == 1) {
        for (uint64_t off = 0;; off += CHUNK) {
            pattern_fill(1, off, buf, CHUNK);
            if (write_all(fd, buf, CHUNK) < 0)
                break;
        }
    }
    close(fd);
    return NULL;
}

/* stream-server PORT: for every connection, after one request byte, sends
 * the pattern of seed 1 endlessly.  Runs until killed. */
static int cmd_stream_server(int argc, char **argv) {
    uint16_t port;
    if (argc != 1 || !parse_port(argv[0], &port))
        return EXIT_USAGE;
    signal(SIGPIPE, SIG_IGN);
    int lfd = tcp_listen(port, false);
    result("listening %u", port);
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0 && errno == EINTR)
            continue;
        if (fd < 0)
            die_sys("accept4");
        pthread_t t;
        if (pthread_create(&t, NULL, stream_thread, (void *)(intptr_t)fd) != 0)
            die_sys("pthread_create");
        pthread_detach(t);
    }
}

/* ---------------------------------------------------- stall / hol-client */

/* stall-server PORT NSTALL: holds the first NSTALL connections open without
 * ever reading them, and echoes every later one in its own thread.  Runs
 * until killed. */
static int cmd_stall_server(int argc, char **argv) {
    uint16_t port;
    uint64_t nstall;
    if (argc != 2 || !parse_port(argv[0], &port) || !parse_size(argv[1], &nstall))
        return EXIT_USAGE;
    signal(SIGPIPE, SIG_IGN);
    int lfd = tcp_listen(port, false);
    result("listening %u", port);
    for (uint64_t n = 0;; n++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0 && errno == EINTR)
            continue;
        if (fd < 0)
            die_sys("accept4");
        if (n < nstall)
            continue; /* held open, never read */
        pthread_t t;
        if (pthread_create(&t, NULL, echo_thread, (void *)(intptr_t)fd) != 0)
            die_sys("pthread_create");
        pthread_detach(t);
    }
}

/* A connection whose peer never reads: the bytes written so far. */
typedef struct stall_conn {
    int fd;
    _Atomic uint64_t written;
} stall_conn;

/* Writes the pattern to a stalled connection until a write fails (or the
 * process ends). */
static void *stall_writer(void *arg) {
    stall_conn *c = arg;
    uint8_t buf[CHUNK];
    for (uint64_t off = 0;; off += CHUNK) {
        pattern_fill(9, off, buf, CHUNK);
        if (write_all(c->fd, buf, CHUNK) < 0)
            return NULL;
        c->written += CHUNK;
    }
}

/* Sums the bytes written to the |n| stalled connections. */
static uint64_t stall_total(stall_conn *conns, uint64_t n) {
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i++)
        sum += conns[i].written;
    return sum;
}

/* Opens |n| connections and writes to each from its own thread until they
 * stop making progress for 300 ms (every window full).  Returns the
 * connections, or NULL after printing a result line. */
static stall_conn *stall_open(const char *host, uint16_t port, uint64_t n) {
    stall_conn *conns = calloc(n, sizeof *conns);
    if (!conns)
        die_sys("calloc");
    for (uint64_t i = 0; i < n; i++) {
        conns[i].fd = tcp_connect(host, port);
        if (conns[i].fd < 0) {
            result("FAIL stalled connection %llu: connect %s", (unsigned long long)i,
                   errname(errno));
            return NULL;
        }
        pthread_t t;
        if (pthread_create(&t, NULL, stall_writer, &conns[i]) != 0)
            die_sys("pthread_create");
        pthread_detach(t);
    }
    uint64_t last = (uint64_t)-1, total;
    while ((total = stall_total(conns, n)) != last) {
        last = total;
        usleep(300 * 1000);
    }
    return conns;
}

/* hol-client HOST PORT NSTALL BYTES: fills NSTALL connections that the
 * stall-server never reads, then echoes BYTES on one more connection,
 * which must not be held up by the stalled ones (TCP connections are
 * independent).  Prints "ok stalled=N echoed=BYTES ms=T" or the failure. */
static int cmd_hol_client(int argc, char **argv) {
    uint16_t port;
    uint64_t nstall, bytes;
    if (argc != 4 || !parse_port(argv[1], &port) || !parse_size(argv[2], &nstall) ||
        nstall > 1000 || !parse_size(argv[3], &bytes))
        return EXIT_USAGE;
    signal(SIGPIPE, SIG_IGN);
    stall_conn *conns = stall_open(argv[0], port, nstall);
    if (!conns)
        return EXIT_CHECK;
    uint64_t stalled = stall_total(conns, nstall);
    result("stalled %llu bytes on %llu connections", (unsigned long long)stalled,
           (unsigned long long)nstall);
    tc_conn c = {.host = argv[0], .port = port, .seed = 5, .bytes = bytes};
    int64_t t0 = now_ms();
    tc_main(&c);
    if (c.failure[0]) {
        result("FAIL echo beside stalled connections: %s", c.failure);
        return EXIT_CHECK;
    }
    result("ok stalled=%llu echoed=%llu ms=%lld", (unsigned long long)stalled,
           (unsigned long long)bytes, (long long)(now_ms() - t0));
    fflush(stdout);
    _exit(EXIT_OK); /* the stalled writers stay blocked: leave without them */
}

/* -------------------------------------------------------- restart-client */

static bool echo_roundtrip(int fd, size_t bytes);

/* Waits until the file |path| exists (polling every 20 ms). */
static void wait_for_file(const char *path) {
    while (access(path, F_OK) != 0)
        usleep(20 * 1000);
}

/* Writes one byte to |fd| and reads: returns the errno name of the first
 * failure, "EOF", or "DATA" when the connection still answers. */
static const char *probe_dead(int fd) {
    uint8_t b[CHUNK];
    if (write(fd, "?", 1) < 0)
        return errname(errno);
    ssize_t n;
    while ((n = read(fd, b, sizeof b)) < 0 && errno == EINTR) {
    }
    if (n < 0)
        return errname(errno);
    return n == 0 ? "EOF" : "DATA";
}

/* restart-client HOST PORT FLAGFILE: echoes on a connection, prints
 * "connected", waits for FLAGFILE (the suite restarts the server
 * meanwhile), then checks that the old connection reports ECONNRESET and
 * that a new connection from this same process works.  Prints
 * "old <ERRNAME|EOF|DATA> <ms>" and "new ok" or "new <failure>". */
static int cmd_restart_client(int argc, char **argv) {
    uint16_t port;
    if (argc != 3 || !parse_port(argv[1], &port))
        return EXIT_USAGE;
    signal(SIGPIPE, SIG_IGN);
    int fd = tcp_connect(argv[0], port);
    if (fd < 0) {
        result("connect %s", errname(errno));
        return EXIT_CHECK;
    }
    if (!echo_roundtrip(fd, 64 * 1024)) {
        result("FAIL first echo");
        return EXIT_CHECK;
    }
    result("connected");
    wait_for_file(argv[2]);
    int64_t t0 = now_ms();
    const char *old = probe_dead(fd);
    result("old %s %lld", old, (long long)(now_ms() - t0));
    close(fd);
    tc_conn c = {.host = argv[0], .port = port, .seed = 11, .bytes = 256 * 1024};
    tc_main(&c);
    if (c.failure[0]) {
        result("new %s", c.failure);
        return EXIT_CHECK;
    }
    result("new ok");
    return strcmp(old, "ECONNRESET") == 0 ? EXIT_OK : EXIT_CHECK;
}

/* ------------------------------------------------------------- dup-client */

/* dup-client HOST PORT: the connection survives its copies: dup, close the
 * original, echo through the copy; dup2 onto fd 100, close the copy, echo
 * through fd 100; then half-close and expect EOF.  Prints "dup ok". */
static int cmd_dup_client(int argc, char **argv) {
    uint16_t port;
    if (argc != 2 || !parse_port(argv[1], &port))
        return EXIT_USAGE;
    signal(SIGPIPE, SIG_IGN);
    int fd = tcp_connect(argv[0], port);
    if (fd < 0) {
        result("connect %s", errname(errno));
        return EXIT_CHECK;
    }
    int copy = dup(fd);
    if (copy < 0 || close(fd) < 0)
        die_sys("dup/close");
    if (!echo_roundtrip(copy, 128 * 1024)) {
        result("FAIL echo through dup() after closing the original");
        return EXIT_CHECK;
    }
    if (dup2(copy, 100) != 100 || close(copy) < 0)
        die_sys("dup2/close");
    if (!echo_roundtrip(100, 128 * 1024)) {
        result("FAIL echo through dup2() copy after closing the dup");
        return EXIT_CHECK;
    }
    uint8_t b[16];
    if (shutdown(100, SHUT_WR) < 0)
        die_sys("shutdown");
    ssize_t n = read(100, b, sizeof b);
    if (n != 0) {
        result("FAIL after shutdown: read gave %zd (%s), want EOF", n,
               n < 0 ? errname(errno) : "data");
        return EXIT_CHECK;
    }
    result("dup ok");
    return EXIT_OK;
}

/* --------------------------------------------------- reset / epipe-client */

/* reset-server PORT: for every connection, reads one byte, then closes
 * with SO_LINGER {1, 0} (a reset).  Runs until killed. */
static int cmd_reset_server(int argc, char **argv) {
    uint16_t port;
    if (argc != 1 || !parse_port(argv[0], &port))
        return EXIT_USAGE;
    int lfd = tcp_listen(port, false);
    result("listening %u", port);
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0 && errno == EINTR)
            continue;
        if (fd < 0)
            die_sys("accept4");
        uint8_t b;
        if (read(fd, &b, 1) != 1)
            fprintf(stderr, "reset-server: no request byte\n");
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) < 0)
            die_sys("setsockopt SO_LINGER");
        close(fd);
    }
}

static volatile sig_atomic_t g_sigpipes;

/* Counts SIGPIPE deliveries. */
static void on_sigpipe(int sig) {
    (void)sig;
    g_sigpipes++;
}

/* epipe-client HOST PORT: sends a byte to reset-server, waits for the
 * reset, then writes until an error: the writes fail with ECONNRESET at
 * most once and then EPIPE with SIGPIPE; a send with MSG_NOSIGNAL fails
 * with EPIPE and raises no signal.  Prints "errors <list> sigpipe N
 * nosignal <ERRNAME> sigpipe N". */
static int cmd_epipe_client(int argc, char **argv) {
    uint16_t port;
    if (argc != 2 || !parse_port(argv[1], &port))
        return EXIT_USAGE;
    struct sigaction sa = {.sa_handler = on_sigpipe};
    sigaction(SIGPIPE, &sa, NULL);
    int fd = tcp_connect(argv[0], port);
    if (fd < 0) {
        result("connect %s", errname(errno));
        return EXIT_CHECK;
    }
    if (write_all(fd, "?", 1) < 0)
        die_sys("write request");
    /* The reset makes the socket readable (POLLIN | POLLHUP | POLLERR)
     * without consuming the error the writes below must see. */
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, 10000) != 1) {
        result("FAIL no reset within 10 s");
        return EXIT_CHECK;
    }
    char errs[128] = "";
    int last = 0;
    for (int i = 0; i < 100 && last != EPIPE; i++, usleep(10 * 1000)) {
        if (write(fd, "x", 1) < 0) {
            last = errno;
            snprintf(errs + strlen(errs), sizeof errs - strlen(errs), "%s%s",
                     errs[0] ? "," : "", errname(last));
        }
    }
    int pipes = (int)g_sigpipes;
    ssize_t n = send(fd, "x", 1, MSG_NOSIGNAL);
    const char *ns = n < 0 ? errname(errno) : "SENT";
    int pipes2 = (int)g_sigpipes;
    result("errors %s sigpipe %d nosignal %s sigpipe %d", errs[0] ? errs : "none", pipes,
           ns, pipes2);
    bool ok = last == EPIPE && pipes >= 1 && n < 0 && errno == EPIPE && pipes2 == pipes &&
              (strcmp(errs, "EPIPE") == 0 || strcmp(errs, "ECONNRESET,EPIPE") == 0);
    return ok ? EXIT_OK : EXIT_CHECK;
}

/* ------------------------------------------------------------ late accept */

/* Reads connection |fd| to its end and checks that it carried 1 KiB of the
 * pattern of one of the seeds 100..100+n-1 not seen before (marked in
 * |seen|).  Returns false, printing why, otherwise. */
static bool burst_check(int fd, uint64_t n, bool *seen) {
    uint8_t buf[1024 + 1];
    size_t got = 0;
    ssize_t r;
    while ((r = read(fd, buf + got, sizeof buf - got)) > 0 &&
           (got += (size_t)r) < sizeof buf)
        ;
    if (r < 0 || got != 1024) {
        result("FAIL a connection carried %zu bytes, then %s", got,
               r < 0 ? errname(errno) : "EOF");
        return false;
    }
    for (uint64_t i = 0; i < n; i++)
        if (!seen[i] && pattern_check(100 + i, 0, buf, got) < 0)
            return seen[i] = true;
    result("FAIL a connection's 1 KiB matches no connection not seen yet");
    return false;
}

/* late-accept-server PORT FLAGFILE [N]: listens, accepts nothing until
 * FLAGFILE exists, then echoes each connection to its end in turn; with N,
 * instead reads N connections of burst-client and checks each (the client
 * may be gone), printing "received N". */
static int cmd_late_accept_server(int argc, char **argv) {
    uint16_t port;
    uint64_t n = 0;
    if ((argc != 2 && argc != 3) || !parse_port(argv[0], &port) ||
        (argc == 3 && (!parse_size(argv[2], &n) || n == 0 || n > 1000)))
        return EXIT_USAGE;
    int lfd = tcp_listen(port, false);
    result("listening %u", port);
    wait_for_file(argv[1]);
    if (n == 0)
        serve_sequential(lfd);
    bool *seen = calloc(n, sizeof *seen);
    if (!seen)
        die_sys("calloc");
    for (uint64_t i = 0; i < n; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            die_sys("accept4");
        if (!burst_check(fd, n, seen))
            return EXIT_CHECK;
        close(fd);
    }
    free(seen);
    result("received %llu", (unsigned long long)n);
    return EXIT_OK;
}

/* burst-client HOST PORT N FLAGFILE [--leave]: opens N connections to a
 * server that is not accepting yet, sends 1 KiB on each and half-closes;
 * once the peer has acknowledged every byte (so each connection reached
 * the server), creates FLAGFILE and checks every echo, or with --leave
 * exits at once.  Prints "ok N" (or "left N") or the failure. */
static int cmd_burst_client(int argc, char **argv) {
    uint16_t port;
    uint64_t n;
    bool leave = argc == 5 && strcmp(argv[4], "--leave") == 0;
    if ((argc != 4 && !leave) || !parse_port(argv[1], &port) || !parse_size(argv[2], &n) ||
        n == 0 || n > 1000)
        return EXIT_USAGE;
    int *fds = calloc(n, sizeof *fds);
    uint8_t buf[1024];
    if (!fds)
        die_sys("calloc");
    for (uint64_t i = 0; i < n; i++) {
        if ((fds[i] = tcp_connect(argv[0], port)) < 0) {
            result("FAIL connection %llu: connect %s", (unsigned long long)i,
                   errname(errno));
            return EXIT_CHECK;
        }
        pattern_fill(100 + i, 0, buf, sizeof buf);
        if (write_all(fds[i], buf, sizeof buf) < 0 || shutdown(fds[i], SHUT_WR) < 0)
            die_sys("write");
    }
    for (uint64_t i = 0; i < n; i++)
        if (!wait_acked(fds[i], sizeof buf, 10000)) {
            result("FAIL on connection %llu", (unsigned long long)i);
            return EXIT_CHECK;
        }
    int flag = open(argv[3], O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (flag < 0)
        die_sys("open flag file");
    close(flag);
    if (leave) {
        free(fds); /* the connections close as the process exits */
        result("left %llu", (unsigned long long)n);
        return EXIT_OK;
    }
    for (uint64_t i = 0; i < n; i++) {
        size_t got = 0;
        ssize_t r;
        while ((r = read(fds[i], buf + got, sizeof buf - got)) > 0 &&
               (got += (size_t)r) < sizeof buf)
            ;
        if (r < 0) {
            result("FAIL connection %llu: read %s after %zu bytes", (unsigned long long)i,
                   errname(errno), got);
            return EXIT_CHECK;
        }
        if (got != sizeof buf || pattern_check(100 + i, 0, buf, got) >= 0 ||
            read(fds[i], buf, 1) != 0) {
            result("FAIL connection %llu: echo of %zu bytes differs or did not end",
                   (unsigned long long)i, got);
            return EXIT_CHECK;
        }
        close(fds[i]);
    }
    free(fds);
    result("ok %llu", (unsigned long long)n);
    return EXIT_OK;
}

/* ------------------------------------------------------ read-until-error */

/* read-until-error HOST PORT: sends one request byte, prints "receiving"
 * after the first data, then reads until an error or EOF and prints
 * "<ERRNAME|EOF> <ms since the last byte> <bytes>".  The bytes are checked
 * against the stream-server pattern. */
static int cmd_read_until_error(int argc, char **argv) {
    uint16_t port;
    if (argc != 2 || !parse_port(argv[1], &port))
        return EXIT_USAGE;
    signal(SIGPIPE, SIG_IGN);
    int fd = tcp_connect(argv[0], port);
    if (fd < 0) {
        result("connect %s", errname(errno));
        return EXIT_CHECK;
    }
    if (write_all(fd, "?", 1) < 0)
        die_sys("write request");
    uint8_t buf[CHUNK];
    uint64_t got = 0;
    int64_t last = now_ms();
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            const char *what = n == 0 ? "EOF" : errname(errno);
            result("%s %lld %llu", what, (long long)(now_ms() - last),
                   (unsigned long long)got);
            return EXIT_OK;
        }
        if (pattern_check(1, got, buf, (size_t)n) >= 0) {
            result("CORRUPT at %llu", (unsigned long long)got);
            return EXIT_CHECK;
        }
        if (got == 0)
            result("receiving");
        got += (uint64_t)n;
        last = now_ms();
    }
}

/* ---------------------------------------------- idle-server / idle-client */

/* The idle protocol of idle-server and idle-client (tests idle-sigstop-60s,
 * keepalive-options and suspend-roam).  Each side writes its own pattern
 * (the client seed 21, the server seed 22) while it reads and checks the
 * peer's: IDLE_WARM bytes at once; then, once all it sent is acknowledged
 * (nothing in flight either way), it prints "idle" and waits for FLAGFILE
 * while watching the connection, as the suite stops and resumes a peer;
 * then IDLE_BULK more bytes each way, continuing the same streams, a
 * half-close each way and EOF.  Whatever the connection does while idle
 * (data, EOF, an error) ends the run as "broken <ERRNAME|EOF|DATA> <ms
 * idle>". */
#define IDLE_CLIENT_SEED 21
#define IDLE_SERVER_SEED 22
#define IDLE_WARM (64 * 1024)
#define IDLE_BULK (1024 * 1024)

/* One connection of the idle protocol. */
typedef struct idle_conn {
    int fd;
    uint64_t my_seed, peer_seed;
    uint64_t off, bytes; /* the current phase: stream offset and size */
    int write_errno;     /* errno of a failed write, or 0 */
    int64_t idle_ms, exchange_ms;
    char failure[160]; /* empty while the connection checks out */
} idle_conn;

/* Writes the phase's bytes of this side's pattern.  Runs in its own thread
 * beside idle_read_check. */
static void *idle_writer(void *arg) {
    idle_conn *c = arg;
    if (pattern_write(c->fd, c->my_seed, c->off, c->bytes, NULL) < 0)
        c->write_errno = errno;
    return NULL;
}

/* Reads exactly the phase's bytes of the peer's pattern and checks each at
 * its stream offset.  Records a failure in |c| when anything differs. */
static void idle_read_check(idle_conn *c) {
    uint8_t buf[CHUNK];
    for (uint64_t got = 0; got < c->bytes;) {
        size_t want = c->bytes - got < CHUNK ? (size_t)(c->bytes - got) : CHUNK;
        ssize_t n = read(c->fd, buf, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(c->failure, sizeof c->failure, "read %s at %llu",
                     n == 0 ? "EOF" : errname(errno), (unsigned long long)(c->off + got));
            return;
        }
        int64_t bad = pattern_check(c->peer_seed, c->off + got, buf, (size_t)n);
        if (bad >= 0) {
            snprintf(c->failure, sizeof c->failure, "byte %lld differs", (long long)bad);
            return;
        }
        got += (uint64_t)n;
    }
}

/* Moves |bytes| each way at the current offsets (a writer thread beside the
 * reader, so neither side's buffers can deadlock them).  Returns true when
 * both directions arrived intact. */
static bool idle_exchange(idle_conn *c, uint64_t bytes) {
    pthread_t w;
    c->bytes = bytes;
    c->write_errno = 0;
    if (pthread_create(&w, NULL, idle_writer, c) != 0)
        die_sys("pthread_create");
    idle_read_check(c);
    if (c->failure[0])
        shutdown(c->fd, SHUT_RDWR); /* releases a writer blocked on a dead peer */
    pthread_join(w, NULL);
    if (!c->failure[0] && c->write_errno)
        snprintf(c->failure, sizeof c->failure, "write %s at %llu", errname(c->write_errno),
                 (unsigned long long)c->off);
    c->off += bytes;
    return !c->failure[0];
}

/* Reads one byte from |fd|: returns the errno name of a failure, "EOF" or
 * "DATA". */
static const char *probe_read(int fd) {
    uint8_t b;
    ssize_t n;
    while ((n = read(fd, &b, 1)) < 0 && errno == EINTR) {
    }
    if (n < 0)
        return errname(errno);
    return n == 0 ? "EOF" : "DATA";
}

/* Waits until the file |flag| exists while watching |fd|, which must stay
 * silent until then (the peer too starts only once it exists).  Returns the milliseconds
 * waited, or -1 with "broken <ERRNAME|EOF|DATA> <ms>" in |failure| when the connection said
 * anything first. */
static int64_t watch_idle(int fd, const char *flag, char *failure, size_t len) {
    int64_t t0 = now_ms();
    while (access(flag, F_OK) != 0) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, 20);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            die_sys("poll");
        if (r == 0 || access(flag, F_OK) == 0) /* the peer may be first to start */
            continue;
        const char *what = probe_read(fd);
        snprintf(failure, len, "broken %s %lld", what, (long long)(now_ms() - t0));
        return -1;
    }
    return now_ms() - t0;
}

/* Half-closes |c| and expects the peer's EOF next.  Returns true when it
 * came with no byte before it. */
static bool idle_finish(idle_conn *c) {
    if (shutdown(c->fd, SHUT_WR) < 0) {
        snprintf(c->failure, sizeof c->failure, "shutdown %s", errname(errno));
        return false;
    }
    const char *end = probe_read(c->fd);
    if (strcmp(end, "EOF") != 0)
        snprintf(c->failure, sizeof c->failure, "%s where the peer's EOF was due", end);
    return !c->failure[0];
}

/* Runs the idle protocol on |c| (see above); prints "idle<tag>" once idle.
 * Returns true when every byte arrived intact; else |c|'s failure says
 * why. */
static bool idle_run(idle_conn *c, const char *flag, const char *tag) {
    if (!idle_exchange(c, IDLE_WARM))
        return false;
    if (!wait_acked(c->fd, c->off, 10000)) {
        snprintf(c->failure, sizeof c->failure, "the warm-up was not acknowledged");
        return false;
    }
    result("idle%s", tag);
    c->idle_ms = watch_idle(c->fd, flag, c->failure, sizeof c->failure);
    if (c->idle_ms < 0)
        return false;
    int64_t t0 = now_ms();
    if (!idle_exchange(c, IDLE_BULK) || !idle_finish(c))
        return false;
    c->exchange_ms = now_ms() - t0;
    return true;
}

/* Sets SO_KEEPALIVE on |fd|, and with |idle| > 0 TCP_KEEPIDLE, TCP_KEEPINTVL
 * and TCP_KEEPCNT; reads each back.  Exits with EXIT_SYS when one fails. */
static void set_keepalive(int fd, int idle, int intvl, int cnt) {
    const struct {
        int level, name, value;
        const char *what;
    } opts[] = {{SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE"},
                {IPPROTO_TCP, TCP_KEEPIDLE, idle, "TCP_KEEPIDLE"},
                {IPPROTO_TCP, TCP_KEEPINTVL, intvl, "TCP_KEEPINTVL"},
                {IPPROTO_TCP, TCP_KEEPCNT, cnt, "TCP_KEEPCNT"}};
    for (size_t i = 0; i < (idle > 0 ? 4u : 1u); i++) {
        int v = opts[i].value;
        socklen_t len = sizeof v;
        if (setsockopt(fd, opts[i].level, opts[i].name, &v, sizeof v) < 0)
            die_sys(opts[i].what);
        if (getsockopt(fd, opts[i].level, opts[i].name, &v, &len) < 0 || v != opts[i].value)
            die_sys(opts[i].what);
    }
}

/* idle-client HOST PORT FLAGFILE [--keepalive [IDLE INTVL CNT]]: runs the
 * idle protocol as the client, with SO_KEEPALIVE (at the kernel's defaults,
 * or with the three TCP keepalive options) when asked.  Prints "idle",
 * then "ok idle=MS exchange=MS", or "broken ..." / "FAIL ..." (status 1). */
static int cmd_idle_client(int argc, char **argv) {
    uint16_t port;
    uint64_t ka[3] = {0, 0, 0};
    bool keepalive = argc >= 4 && strcmp(argv[3], "--keepalive") == 0;
    if ((argc != 3 && argc != 4 && argc != 7) || (argc > 3 && !keepalive) ||
        !parse_port(argv[1], &port))
        return EXIT_USAGE;
    for (int i = 0; argc == 7 && i < 3; i++)
        if (!parse_size(argv[4 + i], &ka[i]) || ka[i] == 0 || ka[i] > 32767)
            return EXIT_USAGE;
    signal(SIGPIPE, SIG_IGN);
    int fd = tcp_connect(argv[0], port);
    if (fd < 0) {
        result("connect %s", errname(errno));
        return EXIT_CHECK;
    }
    if (keepalive)
        set_keepalive(fd, (int)ka[0], (int)ka[1], (int)ka[2]);
    idle_conn c = {.fd = fd, .my_seed = IDLE_CLIENT_SEED, .peer_seed = IDLE_SERVER_SEED};
    if (!idle_run(&c, argv[2], "")) {
        result("%s%s", strncmp(c.failure, "broken", 6) == 0 ? "" : "FAIL ", c.failure);
        return EXIT_CHECK;
    }
    result("ok idle=%lld exchange=%lld", (long long)c.idle_ms, (long long)c.exchange_ms);
    return EXIT_OK;
}

/* The arguments of one idle-server connection thread. */
typedef struct idle_served {
    idle_conn c;
    const char *flag;
    unsigned index;
    pthread_t thread;
} idle_served;

/* Serves one idle-server connection: the idle protocol, then a result line
 * "conn I ok ..." or "conn I <failure>". */
static void *idle_serve(void *arg) {
    idle_served *s = arg;
    char tag[32];
    snprintf(tag, sizeof tag, " %u", s->index);
    if (idle_run(&s->c, s->flag, tag))
        result("conn %u ok idle=%lld exchange=%lld", s->index, (long long)s->c.idle_ms,
               (long long)s->c.exchange_ms);
    else
        result("conn %u %s", s->index, s->c.failure);
    close(s->c.fd);
    return NULL;
}

/* idle-server PORT NCONN FLAGFILE: accepts NCONN connections and runs the
 * idle protocol on each in its own thread (printing "idle I" for each);
 * prints "ok NCONN" when all checked out, else "FAIL N of NCONN". */
static int cmd_idle_server(int argc, char **argv) {
    uint16_t port;
    uint64_t n;
    if (argc != 3 || !parse_port(argv[0], &port) || !parse_size(argv[1], &n) || n == 0 ||
        n > 64)
        return EXIT_USAGE;
    signal(SIGPIPE, SIG_IGN);
    int lfd = tcp_listen(port, false);
    result("listening %u", port);
    idle_served *conns = calloc(n, sizeof *conns);
    if (!conns)
        die_sys("calloc");
    for (unsigned i = 0; i < n; i++) {
        int fd;
        while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0 && errno == EINTR) {
        }
        if (fd < 0)
            die_sys("accept4");
        conns[i] = (idle_served){.flag = argv[2], .index = i};
        conns[i].c = (idle_conn){
            .fd = fd, .my_seed = IDLE_SERVER_SEED, .peer_seed = IDLE_CLIENT_SEED};
        if (pthread_create(&conns[i].thread, NULL, idle_serve, &conns[i]) != 0)
            die_sys("pthread_create");
    }
    unsigned failed = 0;
    for (unsigned i = 0; i < n; i++) {
        pthread_join(conns[i].thread, NULL);
        failed += conns[i].c.failure[0] != 0;
    }
    if (failed) {
        result("FAIL %u of %llu", failed, (unsigned long long)n);
        return EXIT_CHECK;
    }
    result("ok %llu", (unsigned long long)n);
    return EXIT_OK;
}

/* --------------------------------------------------------- timeout-writer */

/* Reads one byte from the non-blocking |fd| of a peer that never writes.
 * Returns -1 when nothing is there yet, else how the connection ended: its
 * errno, 0 for EOF, or EBADMSG when a byte came. */
static int read_end(int fd) {
    uint8_t b;
    ssize_t n = read(fd, &b, 1);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? -1 : errno;
    return n == 0 ? 0 : EBADMSG;
}

/* Writes the pattern of seed 31 non-blocking on |fd| from offset |*off|
 * until a write (or, once the socket reports readable, a read) fails with
 * anything but EAGAIN, polling while the buffers are full; records in
 * |*stalled_ms| when the first EAGAIN came (ms after |t0|).  Returns the
 * errno (0 for EOF) and the call in |*via|. */
static int flood_until_error(int fd, uint64_t *off, int64_t t0, int64_t *stalled_ms,
                             const char **via) {
    uint8_t buf[CHUNK];
    short revents = 0;
    for (;;) {
        pattern_fill(31, *off, buf, CHUNK);
        ssize_t n = write(fd, buf, CHUNK);
        if (n > 0) {
            *off += (uint64_t)n;
            continue;
        }
        *via = "write";
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return errno;
        if (*stalled_ms < 0)
            *stalled_ms = now_ms() - t0;
        int e = revents & POLLIN ? read_end(fd) : -1;
        if (e >= 0) {
            *via = "read";
            return e;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};
        if (poll(&p, 1, -1) < 0 && errno != EINTR)
            die_sys("poll");
        revents = p.revents;
    }
}

/* timeout-writer HOST PORT FLAGFILE MS: connects, sets TCP_USER_TIMEOUT to
 * MS, writes 64 KiB and waits until they are acknowledged, prints
 * "connected", then stays idle until FLAGFILE exists (the suite stops the
 * peer meanwhile; the connection must stay silent).  Then it writes
 * without pause until a call fails and prints "error ERRNAME MS via CALL
 * bytes=N stalled=MS": MS counted from its first write after the flag
 * ("EOF" for an end without error). */
static int cmd_timeout_writer(int argc, char **argv) {
    uint16_t port;
    uint64_t ms, off = 0;
    if (argc != 4 || !parse_port(argv[1], &port) || !parse_size(argv[3], &ms) || ms == 0 ||
        ms > INT32_MAX)
        return EXIT_USAGE;
    signal(SIGPIPE, SIG_IGN);
    int fd = tcp_connect(argv[0], port);
    if (fd < 0) {
        result("connect %s", errname(errno));
        return EXIT_CHECK;
    }
    unsigned v = (unsigned)ms;
    socklen_t len = sizeof v;
    if (setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &v, sizeof v) < 0 ||
        getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &v, &len) < 0 || v != ms)
        die_sys("TCP_USER_TIMEOUT");
    uint8_t buf[CHUNK];
    pattern_fill(31, 0, buf, CHUNK);
    if (write_all(fd, buf, CHUNK) < 0)
        die_sys("write");
    off = CHUNK;
    if (!wait_acked(fd, off, 10000))
        return EXIT_CHECK;
    result("connected");
    char failure[160];
    if (watch_idle(fd, argv[2], failure, sizeof failure) < 0) {
        result("%s", failure);
        return EXIT_CHECK;
    }
    set_nonblock(fd);
    int64_t t0 = now_ms(), stalled = -1;
    const char *via = "write";
    int e = flood_until_error(fd, &off, t0, &stalled, &via);
    result("error %s %lld via %s bytes=%llu stalled=%lld", e ? errname(e) : "EOF",
           (long long)(now_ms() - t0), via, (unsigned long long)(off - CHUNK),
           (long long)stalled);
    return EXIT_OK;
}

/* -------------------------------------------------------------- sockopts */

static int g_checks_failed;

/* Prints "ok NAME" or "FAIL NAME: detail" for one check and counts it. */
static void check(bool ok, const char *name, const char *fmt, ...) {
    if (ok) {
        printf("ok %s\n", name);
    } else {
        char detail[200];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
        printf("FAIL %s: %s\n", name, detail);
        g_checks_failed++;
    }
    fflush(stdout);
}

/* Checks that getsockopt(|level|, |opt|) succeeds with int value |want|. */
static void check_intopt(int fd, int level, int opt, int want, const char *name) {
    int v = -12345;
    socklen_t len = sizeof v;
    int rc = getsockopt(fd, level, opt, &v, &len);
    check(rc == 0 && v == want, name, "rc=%d errno=%s value=%d want %d", rc,
          rc ? errname(errno) : "0", v, want);
}

/* Checks that setsockopt(|level|, |opt|, int |v|) returns 0. */
static void check_setopt(int fd, int level, int opt, int v, const char *name) {
    int rc = setsockopt(fd, level, opt, &v, sizeof v);
    check(rc == 0, name, "rc=%d errno=%s", rc, rc ? errname(errno) : "0");
}

/* Returns whether the address part of |ss| is the wildcard (0.0.0.0, ::). */
static bool addr_is_any(const struct sockaddr_storage *ss) {
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (ss->ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
    return false;
}

/* Checks the address of |fd| (getsockname or getpeername per |peer|):
 * family |family|, port |port| (or any non-zero port when 0) and, on a
 * connected socket (|connected|), a specific address, not the wildcard. */
static void check_name(int fd, bool peer, int family, uint16_t port, bool connected,
                       const char *name) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len = sizeof ss;
    int rc = peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
                  : getsockname(fd, (struct sockaddr *)&ss, &len);
    uint16_t got = addr_port(&ss);
    char a[INET6_ADDRSTRLEN + 16], want[16];
    snprintf(want, sizeof want, port ? "%u" : "non-zero", port);
    bool ok = rc == 0 && ss.ss_family == family && (port ? got == port : got != 0) &&
              !(connected && addr_is_any(&ss));
    check(ok, name, "rc=%d family=%d (want %d) addr=%s%s port=%u (want %s)", rc,
          ss.ss_family, family, addr_str(&ss, a, sizeof a),
          connected ? " (want a specific address)" : "", got, want);
}

/* Echoes |bytes| of the pattern of |seed| through |fd| (the peer is an echo
 * server), 4 KiB at a time.  Returns true when every byte came back
 * intact; otherwise false, with what went wrong written to |why|. */
static bool echo_pattern(int fd, uint64_t seed, size_t bytes, char *why, size_t whylen) {
    uint8_t buf[4096];
    for (size_t off = 0; off < bytes;) {
        size_t n = bytes - off < sizeof buf ? bytes - off : sizeof buf;
        pattern_fill(seed, off, buf, n);
        if (write_all(fd, buf, n) < 0) {
            snprintf(why, whylen, "write %s at byte %zu", errname(errno), off);
            return false;
        }
        for (size_t got = 0; got < n;) {
            ssize_t r = read(fd, buf + got, n - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                snprintf(why, whylen, "%s at byte %zu", r == 0 ? "EOF" : errname(errno),
                         off + got);
                return false;
            }
            got += (size_t)r;
        }
        int64_t bad = pattern_check(seed, off, buf, n);
        if (bad >= 0) {
            snprintf(why, whylen, "byte %lld differs", (long long)bad);
            return false;
        }
        off += n;
    }
    return true;
}

/* Echoes |bytes| of the pattern of seed 3 through |fd| (peer is an echo
 * server) and returns true when they came back intact. */
static bool echo_roundtrip(int fd, size_t bytes) {
    char why[96];
    return echo_pattern(fd, 3, bytes, why, sizeof why);
}

/* Checks TCP_INFO: it answers, the state is ESTABLISHED and the smoothed
 * RTT is non-zero after traffic. */
static void check_tcp_info(int fd) {
    struct tcp_info ti;
    memset(&ti, 0, sizeof ti);
    socklen_t len = sizeof ti;
    int rc = getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len);
    check(rc == 0 && len > 0, "TCP_INFO", "rc=%d errno=%s len=%u", rc,
          rc ? errname(errno) : "0", (unsigned)len);
    check(rc == 0 && ti.tcpi_state == 1, "TCP_INFO.state", "tcpi_state=%u (want 1)",
          (unsigned)ti.tcpi_state);
    check(rc == 0 && ti.tcpi_rtt > 0, "TCP_INFO.rtt", "tcpi_rtt=%u", (unsigned)ti.tcpi_rtt);
}

/* Checks the setsockopt calls programs make on TCP sockets. */
static void check_setopts(int fd) {
    check_setopt(fd, IPPROTO_TCP, TCP_NODELAY, 1, "setsockopt.TCP_NODELAY");
    check_setopt(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "setsockopt.SO_KEEPALIVE");
    check_setopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, 10, "setsockopt.TCP_KEEPIDLE");
    check_setopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, 5, "setsockopt.TCP_KEEPINTVL");
    check_setopt(fd, IPPROTO_TCP, TCP_KEEPCNT, 3, "setsockopt.TCP_KEEPCNT");
    check_setopt(fd, IPPROTO_TCP, TCP_CORK, 1, "setsockopt.TCP_CORK=1");
    check_setopt(fd, IPPROTO_TCP, TCP_CORK, 0, "setsockopt.TCP_CORK=0");
    const char cc[] = "cubic";
    int rc = setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, sizeof cc - 1);
    check(rc == 0, "setsockopt.TCP_CONGESTION", "rc=%d errno=%s", rc,
          rc ? errname(errno) : "0");
}

/* sockopts HOST PORT: connects to an echo server and checks the socket
 * options and names a TCP socket has.  Prints one line per check and a
 * final "sockopts ok" / "sockopts N failed". */
static int cmd_sockopts(int argc, char **argv) {
    uint16_t port;
    if (argc != 2 || !parse_port(argv[1], &port))
        return EXIT_USAGE;
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_storage ss;
    if (make_addr(argv[0], port, &ss) == 0)
        return EXIT_USAGE;
    int family = ss.ss_family;
    int fd = tcp_connect(argv[0], port);
    if (fd < 0) {
        result("connect %s", errname(errno));
        return EXIT_CHECK;
    }
    check_intopt(fd, SOL_SOCKET, SO_TYPE, SOCK_STREAM, "SO_TYPE");
    check_intopt(fd, SOL_SOCKET, SO_DOMAIN, family, "SO_DOMAIN");
    check_intopt(fd, SOL_SOCKET, SO_PROTOCOL, IPPROTO_TCP, "SO_PROTOCOL");
    check_intopt(fd, SOL_SOCKET, SO_ERROR, 0, "SO_ERROR");
    check_intopt(fd, SOL_SOCKET, SO_ACCEPTCONN, 0, "SO_ACCEPTCONN");
    check_setopts(fd);
    check_name(fd, true, family, port, true, "getpeername");
    check_name(fd, false, family, 0, true, "getsockname");
    check(echo_roundtrip(fd, 256 * 1024), "echo", "256 KiB did not come back intact");
    check_tcp_info(fd);
    close(fd);
    if (g_checks_failed) {
        result("sockopts %d failed", g_checks_failed);
        return EXIT_CHECK;
    }
    result("sockopts ok");
    return EXIT_OK;
}

/* Checks an accepted connection: the peer address accept4 filled in, the
 * SOCK_NONBLOCK and SOCK_CLOEXEC flags, names and options. */
static void check_accepted(int fd, const struct sockaddr_storage *peer, socklen_t plen,
                           int family, uint16_t port) {
    char a[INET6_ADDRSTRLEN + 16];
    check(plen > 0 && peer->ss_family == family && addr_port(peer) != 0, "accept4.peer",
          "len=%u family=%d addr=%s port=%u", (unsigned)plen, peer->ss_family,
          addr_str(peer, a, sizeof a), addr_port(peer));
    int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
    check(fl >= 0 && (fl & O_NONBLOCK), "accept4.SOCK_NONBLOCK", "flags=%#x", fl);
    check(fdfl >= 0 && (fdfl & FD_CLOEXEC), "accept4.SOCK_CLOEXEC", "fdflags=%#x", fdfl);
    check_name(fd, true, family, addr_port(peer), true, "accepted.getpeername");
    check_name(fd, false, family, port, true, "accepted.getsockname");
    check_intopt(fd, SOL_SOCKET, SO_TYPE, SOCK_STREAM, "accepted.SO_TYPE");
    check_intopt(fd, SOL_SOCKET, SO_DOMAIN, family, "accepted.SO_DOMAIN");
    check_intopt(fd, SOL_SOCKET, SO_PROTOCOL, IPPROTO_TCP, "accepted.SO_PROTOCOL");
    check_setopt(fd, IPPROTO_TCP, TCP_NODELAY, 1, "accepted.setsockopt.TCP_NODELAY");
}

/* Echoes a non-blocking |fd| until EOF using poll.  Returns true at a
 * clean EOF. */
static bool echo_nonblock(int fd) {
    uint8_t buf[CHUNK];
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, -1) < 0 && errno != EINTR)
            return false;
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            return n == 0;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
                struct pollfd q = {.fd = fd, .events = POLLOUT};
                poll(&q, 1, -1);
                continue;
            }
            if (w < 0)
                return false;
            off += w;
        }
    }
}

/* sockopts-server PORT [--v6]: a listener whose options are checked
 * (SO_ACCEPTCONN, SO_TYPE, getsockname), then one connection accepted with
 * accept4(SOCK_NONBLOCK|SOCK_CLOEXEC), checked and echoed to EOF.  Prints
 * one line per check and "sockopts-server ok" / "... N failed". */
static int cmd_sockopts_server(int argc, char **argv) {
    uint16_t port;
    if (argc < 1 || argc > 2 || !parse_port(argv[0], &port))
        return EXIT_USAGE;
    bool v6 = argc == 2 && strcmp(argv[1], "--v6") == 0;
    int family = v6 ? AF_INET6 : AF_INET;
    signal(SIGPIPE, SIG_IGN);
    int lfd = tcp_listen(port, v6);
    check_intopt(lfd, SOL_SOCKET, SO_ACCEPTCONN, 1, "listener.SO_ACCEPTCONN");
    check_intopt(lfd, SOL_SOCKET, SO_TYPE, SOCK_STREAM, "listener.SO_TYPE");
    check_intopt(lfd, SOL_SOCKET, SO_DOMAIN, family, "listener.SO_DOMAIN");
    check_name(lfd, false, family, port, false, "listener.getsockname");
    result("listening %u", port);
    struct sockaddr_storage peer;
    memset(&peer, 0, sizeof peer);
    socklen_t plen = sizeof peer;
    int fd;
    while ((fd = accept4(lfd, (struct sockaddr *)&peer, &plen,
                         SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0 &&
           errno == EINTR) {
    }
    if (fd < 0)
        die_sys("accept4");
    check_accepted(fd, &peer, plen, family, port);
    check(echo_nonblock(fd), "accepted.echo", "echo ended with an error");
    close(fd);
    if (g_checks_failed) {
        result("sockopts-server %d failed", g_checks_failed);
        return EXIT_CHECK;
    }
    result("sockopts-server ok");
    return EXIT_OK;
}

/* ------------------------------------------------------------ soak-client */

#define SOAK_SMALL 1024           /* bytes each churn and idle echo carries */
#define SOAK_MAX_WORKERS 32       /* churn plus bulk threads */
#define SOAK_MAX_IDLE 256         /* idle connections */
#define SOAK_STUCK_MS 60000       /* a load thread without progress this long hangs */
#define SOAK_PROGRESS_MS 10000    /* between "progress" lines */
#define SOAK_IDLE_SEED (1u << 30) /* idle connection i echoes seed + i, then + n + i */

/* What soak-client's load threads share: the server, when the load stops,
 * the counts of what checked out, and whether anything failed. */
typedef struct soak {
    const char *host;
    uint16_t port;
    int64_t start_ms, end_ms;
    uint64_t bulk_bytes;
    _Atomic uint64_t seed;       /* the next connection's pattern seed */
    _Atomic uint64_t churned;    /* churn connections echoed and closed */
    _Atomic uint64_t bulks;      /* bulk transfers checked byte for byte */
    _Atomic uint64_t bulk_total; /* bytes those transfers carried each way */
    _Atomic bool failed;         /* set by the first failure: the load stops */
    pthread_mutex_t lock;        /* orders the failure lines */
} soak;

/* One load thread: its kind, its last progress, whether it has ended. */
typedef struct soak_worker {
    soak *s;
    bool bulk;
    _Atomic int64_t beat; /* now_ms() of its last finished connection */
    _Atomic bool done;
    pthread_t thread;
} soak_worker;

/* Records a failure: the first one is printed as the result line "FAIL
 * ..." and stops the load, later ones go to stderr. */
static void soak_fail(soak *s, const char *fmt, ...) {
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&s->lock);
    if (!s->failed)
        result("FAIL %s", line);
    else
        fprintf(stderr, "soak-client: also: %s\n", line);
    s->failed = true;
    pthread_mutex_unlock(&s->lock);
}

/* Returns true while the load goes on: no failure and time left. */
static bool soak_running(soak *s) {
    return !s->failed && now_ms() < s->end_ms;
}

/* Opens one churn connection, echoes SOAK_SMALL bytes of a fresh pattern
 * and closes it.  Returns false after soak_fail when anything went wrong. */
static bool soak_churn_one(soak *s) {
    char why[128];
    uint64_t seed = s->seed++;
    int fd = tcp_connect(s->host, s->port);
    if (fd < 0) {
        soak_fail(s, "churn connect: %s (after %llu connections)", errname(errno),
                  (unsigned long long)s->churned);
        return false;
    }
    bool ok = echo_pattern(fd, seed, SOAK_SMALL, why, sizeof why);
    close(fd);
    if (!ok) {
        soak_fail(s, "churn connection (seed %llu): %s", (unsigned long long)seed, why);
        return false;
    }
    s->churned++;
    return true;
}

/* Echoes bulk_bytes of a fresh pattern on a new connection, written and
 * read back at once and checked byte for byte (tc_main).  Returns false
 * after soak_fail when anything went wrong. */
static bool soak_bulk_one(soak *s) {
    tc_conn c = {
        .host = s->host, .port = s->port, .seed = s->seed++, .bytes = s->bulk_bytes};
    tc_main(&c);
    if (c.failure[0]) {
        soak_fail(s, "bulk transfer (seed %llu, %llu bytes): %s",
                  (unsigned long long)c.seed, (unsigned long long)c.bytes, c.failure);
        return false;
    }
    s->bulks++;
    s->bulk_total += c.bytes;
    return true;
}

/* A load thread: churn or bulk connections one after the other, as fast
 * as they go, until the end of the load or a failure. */
static void *soak_worker_main(void *arg) {
    soak_worker *w = arg;
    while (soak_running(w->s)) {
        if (!(w->bulk ? soak_bulk_one(w->s) : soak_churn_one(w->s)))
            break;
        w->beat = now_ms();
    }
    w->done = true;
    return NULL;
}

/* Opens the |n| idle connections and echoes a little on each.  Returns
 * false after soak_fail on a failure. */
static bool soak_idle_open(soak *s, int *fds, uint64_t n) {
    char why[128];
    for (uint64_t i = 0; i < n; i++) {
        fds[i] = tcp_connect(s->host, s->port);
        if (fds[i] < 0) {
            soak_fail(s, "idle connection %llu: connect %s", (unsigned long long)i,
                      errname(errno));
            return false;
        }
        if (!echo_pattern(fds[i], SOAK_IDLE_SEED + i, SOAK_SMALL, why, sizeof why)) {
            soak_fail(s, "idle connection %llu, first echo: %s", (unsigned long long)i,
                      why);
            return false;
        }
    }
    return true;
}

/* Checks that each idle connection, untouched during the whole load, still
 * carries a fresh pattern both ways, then half-closes it and expects the
 * server's EOF.  Returns false after soak_fail on a failure. */
static bool soak_idle_check(soak *s, int *fds, uint64_t n) {
    char why[128];
    uint8_t b;
    for (uint64_t i = 0; i < n; i++) {
        if (!echo_pattern(fds[i], SOAK_IDLE_SEED + n + i, SOAK_SMALL, why, sizeof why)) {
            soak_fail(s, "idle connection %llu after the load: %s", (unsigned long long)i,
                      why);
            return false;
        }
        ssize_t r = shutdown(fds[i], SHUT_WR);
        while (r == 0 && (r = read(fds[i], &b, 1)) < 0 && errno == EINTR)
            r = 0;
        if (r != 0) {
            soak_fail(s, "idle connection %llu: no EOF after shutdown (%s)",
                      (unsigned long long)i, r > 0 ? "data" : errname(errno));
            return false;
        }
        close(fds[i]);
    }
    return true;
}

/* Prints one "progress" line: seconds since the start and the counts. */
static void soak_progress(soak *s) {
    result("progress t=%lld churn=%llu bulk=%llu bulk_bytes=%llu",
           (long long)((now_ms() - s->start_ms) / 1000), (unsigned long long)s->churned,
           (unsigned long long)s->bulks, (unsigned long long)s->bulk_total);
}

/* Waits until every load thread has ended, printing progress every
 * SOAK_PROGRESS_MS.  Returns false, after soak_fail, when a thread made no
 * progress for SOAK_STUCK_MS (it is left blocked; the caller exits). */
static bool soak_watch(soak *s, soak_worker *w, uint64_t n) {
    int64_t next = s->start_ms + SOAK_PROGRESS_MS;
    for (;;) {
        bool all_done = true;
        for (uint64_t i = 0; i < n; i++) {
            if (w[i].done)
                continue;
            all_done = false;
            if (now_ms() - w[i].beat > SOAK_STUCK_MS) {
                soak_fail(s, "%s thread %llu made no progress for %d s",
                          w[i].bulk ? "bulk" : "churn", (unsigned long long)i,
                          SOAK_STUCK_MS / 1000);
                return false;
            }
        }
        if (all_done)
            return true;
        if (now_ms() >= next) {
            soak_progress(s);
            next += SOAK_PROGRESS_MS;
        }
        usleep(100 * 1000);
    }
}

/* Starts |nchurn| churn and |nbulk| bulk threads on |w|. */
static void soak_start(soak *s, soak_worker *w, uint64_t nchurn, uint64_t nbulk) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 512 * 1024);
    for (uint64_t i = 0; i < nchurn + nbulk; i++) {
        w[i] = (soak_worker){.s = s, .bulk = i >= nchurn, .beat = now_ms()};
        if (pthread_create(&w[i].thread, &attr, soak_worker_main, &w[i]) != 0)
            die_sys("pthread_create");
    }
    pthread_attr_destroy(&attr);
}

/* soak-client's options after HOST PORT SECONDS. */
typedef struct soak_opts {
    uint64_t churn, bulk, idle, bulk_bytes, seconds;
} soak_opts;

/* Parses SECONDS and the options of soak-client into |o|.  Returns false
 * on a usage error. */
static bool soak_parse(int argc, char **argv, soak_opts *o) {
    *o = (soak_opts){.churn = 4, .bulk = 1, .idle = 8, .bulk_bytes = 4u << 20};
    if (argc < 1 || !parse_size(argv[0], &o->seconds) || o->seconds == 0)
        return false;
    for (int i = 1; i < argc; i += 2) {
        uint64_t *v = !strcmp(argv[i], "--churn")        ? &o->churn
                      : !strcmp(argv[i], "--bulk")       ? &o->bulk
                      : !strcmp(argv[i], "--idle")       ? &o->idle
                      : !strcmp(argv[i], "--bulk-bytes") ? &o->bulk_bytes
                                                         : NULL;
        if (!v || i + 1 >= argc || !parse_size(argv[i + 1], v))
            return false;
    }
    return o->churn + o->bulk <= SOAK_MAX_WORKERS && o->idle <= SOAK_MAX_IDLE &&
           o->bulk_bytes > 0;
}

/* soak-client HOST PORT SECONDS [--churn N] [--bulk N] [--idle N]
 * [--bulk-bytes B]: the client of the soak suite (tests/soak/run.py), one
 * process for the whole run.  Opens --idle connections (default 8) and
 * echoes a little on each; then for SECONDS runs --churn threads (default
 * 4) that connect, echo 1 KiB of a fresh pattern and close as fast as they
 * go, and --bulk threads (default 1) that echo --bulk-bytes (default 4M)
 * of a fresh pattern on a new connection again and again, written and read
 * at once; every byte is checked.  Then each idle connection must still
 * echo and end with EOF after a half-close.  Prints "progress ..." every
 * 10 s and last "ok churn=N bulk=N bulk_bytes=N idle=N", or "FAIL why" at
 * the first failure (exit 1), or when a thread made no progress for 60 s. */
static int cmd_soak_client(int argc, char **argv) {
    soak_opts o;
    soak s = {.host = argv[0], .seed = 1, .lock = PTHREAD_MUTEX_INITIALIZER};
    if (argc < 3 || !parse_port(argv[1], &s.port) || !soak_parse(argc - 2, argv + 2, &o))
        return EXIT_USAGE;
    signal(SIGPIPE, SIG_IGN);
    s.bulk_bytes = o.bulk_bytes;
    static int idle[SOAK_MAX_IDLE];
    static soak_worker w[SOAK_MAX_WORKERS];
    s.start_ms = now_ms();
    if (!soak_idle_open(&s, idle, o.idle))
        return EXIT_CHECK;
    s.end_ms = s.start_ms + (int64_t)o.seconds * 1000;
    soak_start(&s, w, o.churn, o.bulk);
    if (!soak_watch(&s, w, o.churn + o.bulk))
        exit(EXIT_CHECK); /* a thread hangs: no join */
    for (uint64_t i = 0; i < o.churn + o.bulk; i++)
        pthread_join(w[i].thread, NULL);
    soak_progress(&s);
    if (s.failed || !soak_idle_check(&s, idle, o.idle))
        return EXIT_CHECK;
    result("ok churn=%llu bulk=%llu bulk_bytes=%llu idle=%llu",
           (unsigned long long)s.churned, (unsigned long long)s.bulks,
           (unsigned long long)s.bulk_total, (unsigned long long)o.idle);
    return EXIT_OK;
}

/* ----------------------------------------------------------------- churn */

/* Raises RLIMIT_NOFILE's soft limit to the hard one: a churn round holds
 * thousands of connections, each two descriptors under the shim. */
static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Echoes what |fd| has (a few bytes: the churn client's one) and closes it
 * at EOF or on an error. */
static void churn_echo(int ep, int fd) {
    uint8_t buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) < 0 && errno == EINTR) {
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0 || write_all(fd, buf, (size_t)n) < 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
        close(fd);
    }
}

/* churn-server PORT: an epoll echo server that allocates nothing per
 * connection, so that its memory is the shim's alone.  Prints "listening
 * PORT" and serves until killed. */
static int cmd_churn_server(int argc, char **argv) {
    uint16_t port;
    if (argc != 1 || !parse_port(argv[0], &port))
        return EXIT_USAGE;
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    int lfd = tcp_listen(port, false);
    set_nonblock(lfd);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd}, evs[64];
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
        die_sys("epoll");
    result("listening %u", port);
    for (;;) {
        int n = epoll_wait(ep, evs, 64, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd != lfd) {
                churn_echo(ep, fd);
                continue;
            }
            while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                ev = (struct epoll_event){.events = EPOLLIN, .data.fd = fd};
                if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
                    die_sys("epoll_ctl ADD");
            }
        }
    }
}

/* Opens |n| connections into |fds| and writes one byte on each, then
 * checks every echo.  Returns false (result printed) on a failure. */
static bool churn_open(const char *host, uint16_t port, int *fds, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) {
        uint8_t b = (uint8_t)i;
        if ((fds[i] = tcp_connect(host, port)) < 0 || write_all(fds[i], &b, 1) < 0) {
            result("FAIL connection %llu: %s", (unsigned long long)i, errname(errno));
            return false;
        }
    }
    for (uint64_t i = 0; i < n; i++) {
        uint8_t b;
        ssize_t r;
        while ((r = read(fds[i], &b, 1)) < 0 && errno == EINTR) {
        }
        if (r != 1 || b != (uint8_t)i) {
            result("FAIL connection %llu: echo: %s", (unsigned long long)i,
                   r < 0 ? errname(errno) : "wrong byte or EOF");
            return false;
        }
    }
    return true;
}

/* churn-client HOST PORT N ROUNDS FLAGPREFIX: round 0 opens one
 * connection (the engines' idle baseline), then ROUNDS times, opens N
 * connections (all held at once), echoes a byte on each and closes them
 * all.  After each round it prints "round R MS" (the round's milliseconds)
 * and waits for the file FLAGPREFIX-R (the suite samples both processes
 * meanwhile).  Prints "ok ROUNDS" at the end. */
static int cmd_churn_client(int argc, char **argv) {
    uint16_t port;
    uint64_t n, rounds;
    if (argc != 5 || !parse_port(argv[1], &port) || !parse_size(argv[2], &n) || n == 0 ||
        !parse_size(argv[3], &rounds) || rounds == 0)
        return EXIT_USAGE;
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    int *fds = calloc(n, sizeof *fds);
    char flag[4096];
    if (!fds)
        die_sys("calloc");
    for (uint64_t r = 0; r <= rounds; r++) {
        int64_t start = now_ms();
        uint64_t k = r == 0 ? 1 : n;
        if (!churn_open(argv[0], port, fds, k))
            return EXIT_CHECK;
        for (uint64_t i = 0; i < k; i++)
            close(fds[i]);
        result("round %llu %lld", (unsigned long long)r, (long long)(now_ms() - start));
        snprintf(flag, sizeof flag, "%s-%llu", argv[4], (unsigned long long)r);
        wait_for_file(flag);
    }
    free(fds);
    result("ok %llu", (unsigned long long)rounds);
    return EXIT_OK;
}

/* --------------------------------------------------------------- pattern */

/* pattern SEED BYTES: writes the pattern to stdout (for the suite to hash). */
static int cmd_pattern(int argc, char **argv) {
    uint64_t seed, bytes;
    if (argc != 2 || !parse_size(argv[0], &seed) || !parse_size(argv[1], &bytes))
        return EXIT_USAGE;
    if (pattern_write(STDOUT_FILENO, seed, 0, bytes, NULL) < 0)
        die_sys("write stdout");
    return EXIT_OK;
}

/* ------------------------------------------------------------------ main */

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;
} command;

static const command commands[] = {
    {"echo-server", cmd_echo_server,
     "PORT [--v6] [--daemon] [--mode threads|epoll|prefork N|forkconn]"},
    {"clone-server", cmd_clone_server, "PORT1 PORT2"},
    {"threads-client", cmd_threads_client, "HOST PORT NTHREADS BYTES"},
    {"connect-errno", cmd_connect_errno, "HOST PORT [--nonblock]"},
    {"write-exit", cmd_write_exit, "HOST PORT BYTES [SEED]"},
    {"sink-server", cmd_sink_server, "PORT OUTFILE [--v6]"},
    {"abort", cmd_abort, "HOST PORT BYTES"},
    {"stream-server", cmd_stream_server, "PORT"},
    {"read-until-error", cmd_read_until_error, "HOST PORT"},
    {"idle-server", cmd_idle_server, "PORT NCONN FLAGFILE"},
    {"idle-client", cmd_idle_client, "HOST PORT FLAGFILE [--keepalive [IDLE INTVL CNT]]"},
    {"timeout-writer", cmd_timeout_writer, "HOST PORT FLAGFILE MS"},
    {"stall-server", cmd_stall_server, "PORT NSTALL"},
    {"dup-client", cmd_dup_client, "HOST PORT"},
    {"reset-server", cmd_reset_server, "PORT"},
    {"epipe-client", cmd_epipe_client, "HOST PORT"},
    {"restart-client", cmd_restart_client, "HOST PORT FLAGFILE"},
    {"hol-client", cmd_hol_client, "HOST PORT NSTALL BYTES"},
    {"late-accept-server", cmd_late_accept_server, "PORT FLAGFILE [N]"},
    {"burst-client", cmd_burst_client, "HOST PORT N FLAGFILE [--leave]"},
    {"sockopts", cmd_sockopts, "HOST PORT"},
    {"sockopts-server", cmd_sockopts_server, "PORT [--v6]"},
    {"soak-client", cmd_soak_client,
     "HOST PORT SECONDS [--churn N] [--bulk N] [--idle N] [--bulk-bytes B]"},
    {"churn-server", cmd_churn_server, "PORT"},
    {"churn-client", cmd_churn_client, "HOST PORT N ROUNDS FLAGPREFIX"},
    {"pattern", cmd_pattern, "SEED BYTES"},
};

/* Prints the usage of every subcommand to stderr. */
static void usage(void) {
    fprintf(stderr, "usage: rudp-e2e-tool [--timeout SECS] SUBCOMMAND ARGS...\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(stderr, "  %s %s\n", commands[i].name, commands[i].usage);
}

int main(int argc, char **argv) {
    uint64_t timeout = 60;
    int i = 1;
    if (i + 1 < argc && strcmp(argv[i], "--timeout") == 0) {
        if (!parse_size(argv[i + 1], &timeout) || timeout == 0 || timeout > 86400) {
            usage();
            return EXIT_USAGE;
        }
        i += 2;
    }
    if (i >= argc) {
        usage();
        return EXIT_USAGE;
    }
    for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++) {
        if (strcmp(argv[i], commands[c].name) != 0)
            continue;
        g_subcommand = commands[c].name;
        g_timeout = (unsigned)timeout;
        signal(SIGALRM, on_alarm);
        alarm(g_timeout);
        int rc = commands[c].run(argc - i - 1, argv + i + 1);
        if (rc == EXIT_USAGE)
            fprintf(stderr, "usage: rudp-e2e-tool %s %s\n", commands[c].name,
                    commands[c].usage);
        return rc;
    }
    usage();
    return EXIT_USAGE;
}
