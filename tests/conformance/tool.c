/*
 * tool.c — conformance-tool: the programs of the differential conformance
 * suite (DESIGN.md §6 "Conformance, differentially"; tests/conformance/run.py
 * runs them).
 *
 *     conformance-tool list                 the cases, one "name<TAB>what" a line
 *     conformance-tool CASE PORT            runs one case on 127.0.0.1 / ::1, PORT
 *
 * Each case is one socket behaviour and runs both of its ends itself; it
 * prints a trace on stdout and exits 0 (a trace is the result, never a
 * verdict: run.py compares the trace under kernel TCP with the trace under
 * the shim).  tool.h says what a trace may contain.  This file holds the
 * trace itself, the peer processes and their control channel, the signal
 * handling (SIGPIPE counted and reported after the call that raised it; a
 * per-call alarm that interrupts a blocking call after STEP_MS; a watchdog
 * per process) and main().  net.c holds the socket helpers, data.c the
 * byte pattern and sha256, shapes.c the shapes cases share, cases_*.c the
 * cases (README.md: how to add one).
 */
#include "tool.h"

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

uint16_t g_port;
const char *g_self;

static char g_role[16] = "main";
static int g_out = STDOUT_FILENO;
static volatile sig_atomic_t g_sigpipes, g_alarm_fired;
static int g_alarm_note; /* the last disarm()ed alarm had fired */
static int g_alarm_ms;   /* the time arm() was given */
static sig_atomic_t g_sigpipes_seen;
static int g_hfds[64]; /* harness fds: pipes and control sockets */
static int g_nhfds;
static pid_t g_live[16]; /* peers started and not yet joined */

/* ------------------------------------------------------------------ trace */

/* Writes all |n| bytes of |s| to |fd|, ignoring failures (nothing else can
 * be done with a trace that cannot be written). */
static void put_all(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* Prints one trace line "role: <fmt>" (printf-style) at once. */
static void vtrace(const char *fmt, va_list ap) {
    char line[1024];
    int n = snprintf(line, sizeof line, "%s: ", g_role);
    n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    if (n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    put_all(g_out, line, (size_t)n);
}

/* Prints one trace line. */
void T(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vtrace(fmt, ap);
    va_end(ap);
}

/* Returns errno |e|'s symbolic name ("ECONNREFUSED"), or "E<number>". */
const char *ename(int e) {
    static char buf[16];
    const char *s = e ? strerrorname_np(e) : "0";
    if (s)
        return s;
    snprintf(buf, sizeof buf, "E%d", e);
    return buf;
}

/* Returns the result of a call as text: "<rc>" or "-1 ENAME", with
 * " +SIGPIPE" when a SIGPIPE arrived since the last result that reported
 * one, and a note when the alarm of arm() interrupted the blocking call
 * just made (BCALL, rd, rcv), whether it failed or returned a partial
 * count. */
const char *res_str(long rc, int err) {
    static char res[96];
    if (rc >= 0)
        snprintf(res, sizeof res, "%ld", rc);
    else if (err == EINTR && g_alarm_note)
        snprintf(res, sizeof res, "-1 EINTR (still blocked after %d ms)", g_alarm_ms);
    else
        snprintf(res, sizeof res, "%ld %s", rc, ename(err));
    if (rc >= 0 && g_alarm_note) /* a partial result the alarm cut short */
        snprintf(res + strlen(res), sizeof res - strlen(res), " (cut short after %d ms)",
                 g_alarm_ms);
    g_alarm_note = 0;
    if (g_sigpipes != g_sigpipes_seen) {
        g_sigpipes_seen = g_sigpipes;
        strcat(res, " +SIGPIPE");
    }
    return res;
}

/* Prints "<desc> -> <result>" (see res_str). */
void T_res(long rc, int err, const char *fmt, ...) {
    char desc[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(desc, sizeof desc, fmt, ap);
    va_end(ap);
    T("%s -> %s", desc, res_str(rc, err));
}

/* Returns a poll mask as "IN|OUT|ERR|HUP|RDHUP|PRI|NVAL" names, or "0". */
const char *mask_str(int m) {
    static char buf[8][64];
    static int slot;
    static const struct {
        int bit;
        const char *name;
    } names[] = {{POLLIN, "IN"},      {POLLPRI, "PRI"}, {POLLOUT, "OUT"},
                 {POLLERR, "ERR"},    {POLLHUP, "HUP"}, {POLLNVAL, "NVAL"},
                 {POLLRDHUP, "RDHUP"}};
    char *b = buf[slot++ % 8];
    b[0] = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (m & names[i].bit)
            snprintf(b + strlen(b), 64 - strlen(b), "%s%s", b[0] ? "|" : "", names[i].name);
    return b[0] ? b : "0";
}

/* Sets the role this process prints its lines under. */
void set_role(const char *role) {
    snprintf(g_role, sizeof g_role, "%s", role);
}

/* Returns a monotonic time in milliseconds. */
int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Prints a harness failure ("role: harness: ...") and exits 3 after
 * killing the peers this process started. */
void die(const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    T("harness: %s", msg);
    for (size_t i = 0; i < sizeof g_live / sizeof g_live[0]; i++)
        if (g_live[i] > 0)
            kill(g_live[i], SIGKILL);
    exit(3);
}

/* ---------------------------------------------------------------- signals */

/* SIGPIPE: counted, reported after the call that raised it. */
static void on_sigpipe(int sig) {
    g_sigpipes++;
}

/* SIGALRM (arm()): only interrupts the blocking call in progress. */
static void on_alarm(int sig) {
    g_alarm_fired = 1;
}

/* SIGUSR2 (the watchdog): reports and ends the process at once. */
static void on_watchdog(int sig) {
    char line[96];
    int n = snprintf(line, sizeof line, "%s: WATCHDOG: still running after %d s\n", g_role,
                     CASE_SEC);
    put_all(g_out, line, (size_t)n);
    _exit(125);
}

/* Arms a one-shot alarm that interrupts the next blocking call (EINTR)
 * after |ms| milliseconds. */
void arm(int ms) {
    struct itimerval it = {{0, 0}, {ms / 1000, (ms % 1000) * 1000}};
    g_alarm_fired = 0;
    g_alarm_note = 0;
    g_alarm_ms = ms;
    setitimer(ITIMER_REAL, &it, NULL);
}

/* Cancels the alarm of arm(); remembers for res_str whether it fired. */
void disarm(void) {
    struct itimerval it = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &it, NULL);
    g_alarm_note = g_alarm_fired;
    g_alarm_fired = 0;
}

/* Forgets an alarm that fired during a call whose result is not printed
 * through res_str (CALL does this before its call). */
void alarm_clear(void) {
    g_alarm_note = 0;
}

/* Installs the handlers (no SA_RESTART, so an alarm interrupts) and starts
 * this process's watchdog: CASE_SEC seconds, then SIGUSR2. */
static void signals_init(void) {
    struct sigaction sa = {0};
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_sigpipe;
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    sa.sa_handler = on_watchdog;
    sigaction(SIGUSR2, &sa, NULL);
    struct sigevent sev = {0};
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGUSR2;
    timer_t t;
    struct itimerspec its = {{0, 0}, {CASE_SEC, 0}};
    if (timer_create(CLOCK_MONOTONIC, &sev, &t) == 0)
        timer_settime(t, 0, &its, NULL);
    g_sigpipes = g_sigpipes_seen = 0;
}

/* ------------------------------------------------------------------ peers */

/* Remembers |fd| as the harness's own (closed in every peer forked later). */
void harness_fd(int fd) {
    if (g_nhfds < (int)(sizeof g_hfds / sizeof g_hfds[0]))
        g_hfds[g_nhfds++] = fd;
}

/* Forgets harness fd |fd| and closes it. */
static void harness_close(int fd) {
    for (int i = 0; i < g_nhfds; i++)
        if (g_hfds[i] == fd)
            g_hfds[i] = g_hfds[--g_nhfds];
    close(fd);
}

/* Records |pid| as a live peer (pid > 0) or forgets it (-pid). */
static void live_set(pid_t pid) {
    for (size_t i = 0; i < sizeof g_live / sizeof g_live[0]; i++) {
        if (pid > 0 && g_live[i] == 0) {
            g_live[i] = pid;
            return;
        }
        if (pid < 0 && g_live[i] == -pid) {
            g_live[i] = 0;
            return;
        }
    }
}

/* The child's side of peer_start(): closes the parent's harness fds, sends
 * its trace into the pipe, runs |fn| and exits 0 through exit() (so that
 * whatever runs at exit, e.g. a preloaded library's flush, runs). */
static void peer_child(const char *name, int out, int ctl, peer_fn fn, void *arg) {
    for (int i = 0; i < g_nhfds; i++)
        close(g_hfds[i]);
    g_nhfds = 0;
    memset(g_live, 0, sizeof g_live);
    harness_fd(out);
    harness_fd(ctl);
    g_out = out;
    set_role(name);
    signals_init();
    fn(ctl, arg);
    exit(0);
}

/* Forks a peer process named |name| that runs fn(ctl, arg) and exits.
 * Its trace lines are printed when it is joined (peer_join). */
void peer_start(peer *p, const char *name, peer_fn fn, void *arg) {
    int pfd[2], sv[2];
    if (pipe2(pfd, O_CLOEXEC) < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        die("pipe/socketpair: %s", ename(errno));
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", ename(errno));
    if (pid == 0) {
        close(pfd[0]);
        close(sv[0]);
        peer_child(name, pfd[1], sv[1], fn, arg);
    }
    close(pfd[1]);
    close(sv[1]);
    *p = (peer){.pid = pid, .out = pfd[0], .ctl = sv[0], .status = -1};
    snprintf(p->name, sizeof p->name, "%s", name);
    harness_fd(p->out);
    harness_fd(p->ctl);
    live_set(pid);
}

/* Reads the peer's trace until EOF or |deadline|; appends it to *buf. */
static size_t drain(int fd, char **buf, size_t len, int64_t deadline) {
    for (;;) {
        int left = (int)(deadline - now_ms());
        struct pollfd pfd = {fd, POLLIN, 0};
        if (left <= 0 || poll(&pfd, 1, left) <= 0)
            return len;
        *buf = realloc(*buf, len + 4096);
        ssize_t n = read(fd, *buf + len, 4096);
        if (n <= 0)
            return len;
        len += (size_t)n;
    }
}

/* Waits until process |pid| exits or |deadline| passes; returns its wait
 * status, or -1 when it is still running.  Waits on a pidfd, or, when none
 * can be opened (a case may have used up its descriptors), checks every
 * 5 ms. */
static int reap(pid_t pid, int64_t deadline) {
    int st, pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd >= 0) {
        struct pollfd p = {pfd, POLLIN, 0};
        int left = (int)(deadline - now_ms());
        poll(&p, 1, left > 0 ? left : 0);
        close(pfd);
    }
    for (;;) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return st;
        if (now_ms() >= deadline)
            return -1;
        poll(NULL, 0, 5);
    }
}

/* Prints how a peer ended: "exit N", "killed by SIGNAME". */
static void print_status(const char *name, int st) {
    if (WIFEXITED(st))
        T("%s exit %d", name, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        T("%s killed by %s", name, sigabbrev_np(WTERMSIG(st)));
}

/* Waits (up to |ms|) for the peer's trace and exit, prints its lines and
 * its end ("NAME exit 0").  A peer still running then is killed, and the
 * trace says so.  Returns its wait status. */
int peer_join(peer *p, int ms) {
    int64_t deadline = now_ms() + ms;
    char *buf = NULL;
    size_t len = drain(p->out, &buf, 0, deadline);
    int st = p->status != -1 ? p->status : reap(p->pid, deadline);
    if (st == -1) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &st, 0);
        len = drain(p->out, &buf, len, now_ms() + 1000);
        put_all(g_out, buf, len);
        T("%s still running after %d ms: killed", p->name, ms);
    } else {
        put_all(g_out, buf, len);
        print_status(p->name, st);
    }
    free(buf);
    harness_close(p->out);
    harness_close(p->ctl);
    live_set(-p->pid);
    return st;
}

/* Kills the peer at once (SIGKILL) and reaps it; its trace is still
 * printed by peer_join. */
void peer_kill(peer *p) {
    kill(p->pid, SIGKILL);
    p->status = reap(p->pid, now_ms() + STEP_MS);
}

/* In a peer: replaces the process image with |argv| (argv[0] is ignored:
 * the tool's own executable runs), its stdout the peer's trace pipe. */
void peer_exec(char **argv) {
    dup2(g_out, STDOUT_FILENO);
    execv("/proc/self/exe", argv);
    die("exec: %s", ename(errno));
}

/* ---------------------------------------------------------------- control */

/* Sends control message |msg| to the other end of |ctl|. */
void ctl_put(int ctl, int msg) {
    if (write(ctl, &msg, sizeof msg) != sizeof msg)
        die("ctl_put: %s", ename(errno));
}

/* Receives a control message within |ms|.  Returns it, 0 when the other
 * end is gone, -1 when none came in time. */
int ctl_get(int ctl, int ms) {
    struct pollfd pfd = {ctl, POLLIN, 0};
    int64_t deadline = now_ms() + ms;
    int msg = 0;
    size_t got = 0;
    while (got < sizeof msg) {
        int left = (int)(deadline - now_ms());
        if (left <= 0 || poll(&pfd, 1, left) <= 0)
            return -1;
        ssize_t n = read(ctl, (char *)&msg + got, sizeof msg - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        got += (size_t)n;
    }
    return msg;
}

/* Receives a control message and dies unless it is |msg| (the other
 * process is given up to 25 s: it may wait on several steps). */
void ctl_expect(int ctl, int msg) {
    int got = ctl_get(ctl, 25000);
    if (got != msg)
        die("control: waited for message %d, got %d", msg, got);
}

/* ------------------------------------------------------------------- main */

static const case_def *const tables[] = {cases_listen, cases_conn, cases_api, cases_io,
                                         cases_compat};

/* Prints the cases, one "name<TAB>what" per line. */
static int list_cases(void) {
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
        for (const case_def *c = tables[t]; c->name; c++)
            printf("%s\t%s\n", c->name, c->what);
    return 0;
}

/* Returns the case named |name|, or NULL. */
static const case_def *find_case(const char *name) {
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
        for (const case_def *c = tables[t]; c->name; c++)
            if (strcmp(c->name, name) == 0)
                return c;
    return NULL;
}

/* Parses the command line and runs one case (or lists them). */
int main(int argc, char **argv) {
    g_self = argv[0];
    if (argc == 2 && strcmp(argv[1], "list") == 0)
        return list_cases();
    if (argc >= 2 && strcmp(argv[1], "exec-child") == 0) {
        signals_init();
        return exec_child_main(argc, argv);
    }
    const case_def *c = argc == 3 ? find_case(argv[1]) : NULL;
    long port = argc == 3 ? strtol(argv[2], NULL, 10) : 0;
    if (!c || port < 1 || port > 65000) {
        fprintf(stderr, "usage: %s list | CASE PORT\n", argv[0]);
        return 2;
    }
    g_port = (uint16_t)port;
    signals_init();
    c->fn();
    exit(0);
}
