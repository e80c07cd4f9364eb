/*
 * shim.c — start-up, shutdown and the shared helpers of librudp_shim.so
 * (DESIGN.md §1, §2 rules 2-3, §4).
 *
 * The constructor parses the RUDP_* environment once (config.c; a bad
 * value ends the process with a one-line message) and hands the engine its
 * settings with rudp_rt_configure().  It does not start the engine: the
 * runtime starts its thread on the first rerouted socket, so a program that
 * never touches a selected port never gets a thread.  When RUDP_PORTS is
 * unset the shim stays inactive and every hook is one branch plus the real
 * call.
 *
 * The destructor runs rudp_rt_exit_flush() so bytes a program wrote just
 * before exit() still reach the peer (bounded by RUDP_LINGER_MS), as the
 * kernel would keep sending them for a TCP socket.
 *
 * Real libc functions are found with dlsym(RTLD_NEXT) on first use of each
 * and cached in an array of atomics (see shim.h).  The rest of this file is
 * small helpers used by several hook files: logging without stdio, sockaddr
 * conversions with the kernel's truncation rules, and the close-side
 * bookkeeping of the fd table.
 */
#include "shim.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>

rudp_shim_config rudp_cfg;
_Atomic bool rudp_shim_on;
_Atomic(void *) rudp_real_ptrs[RUDP_REAL_COUNT];

static const char *const real_names[RUDP_REAL_COUNT] = {
#define RUDP_REAL_NAME(name) #name,
    RUDP_REAL_FUNCS(RUDP_REAL_NAME)
#undef RUDP_REAL_NAME
};

/* Writes a fatal message to stderr without stdio and aborts. */
static void real_missing(const char *name) {
    static const char pre[] = "rudp: libc has no ";
    ssize_t r = write(2, pre, sizeof(pre) - 1);

    r = write(2, name, strlen(name));
    r = write(2, "\n", 1);
    (void)r;
    abort();
}

void *rudp_real_resolve(enum rudp_real_id id) {
    void *p = dlsym(RTLD_NEXT, real_names[id]);

    if (p == NULL && id == RUDP_REAL_ID_fcntl64)
        p = dlsym(RTLD_NEXT, "fcntl");
    if (p == NULL)
        real_missing(real_names[id]);
    atomic_store_explicit(&rudp_real_ptrs[id], p, memory_order_relaxed);
    return p;
}

/* --- start-up and shutdown --- */

/* Fills the runtime's system call table with the real libc functions. */
static void shim_rt_sys(rudp_rt_sys *sys) {
    sys->socket = RUDP_REAL(socket);
    sys->bind = RUDP_REAL(bind);
    sys->listen = RUDP_REAL(listen);
    sys->accept4 = RUDP_REAL(accept4);
    sys->connect = RUDP_REAL(connect);
    sys->close = RUDP_REAL(close);
    sys->fcntl = RUDP_REAL(fcntl);
    sys->shutdown = RUDP_REAL(shutdown);
    sys->recv = RUDP_REAL(recv);
    sys->readv = RUDP_REAL(readv);
    sys->send = RUDP_REAL(send);
    sys->sendto = RUDP_REAL(sendto);
    sys->write = RUDP_REAL(write);
    sys->sendmsg = RUDP_REAL(sendmsg);
    sys->recvmsg = RUDP_REAL(recvmsg);
    sys->recvmmsg = recvmmsg;
    sys->sendmmsg = sendmmsg;
    sys->getsockname = RUDP_REAL(getsockname);
    sys->getsockopt = RUDP_REAL(getsockopt);
    sys->setsockopt = RUDP_REAL(setsockopt);
    sys->_exit = RUDP_REAL(_exit);
}

/* Builds the engine configuration from the parsed environment. */
static void shim_rt_config(const rudp_shim_config *c, rudp_rt_config *rc) {
    memset(rc, 0, sizeof(*rc));
    rudp_settings_default(&rc->settings);
    if (c->cc_set)
        rc->settings.cc = c->cc;
    rc->settings.idle_timeout = RUDP_MS(c->idle_timeout_ms);
    /* Keepalives must come well inside a short idle timeout. */
    if (c->idle_timeout_ms &&
        rc->settings.keepalive_interval * 3 > rc->settings.idle_timeout)
        rc->settings.keepalive_interval = rc->settings.idle_timeout / 3;
    rc->exit_linger = RUDP_MS(c->linger_ms);
    rc->log_level = c->log_level;
    rc->log_fd = c->log_fd;
    rc->settings.psk_set = c->psk_set;
    memcpy(rc->settings.psk, c->psk, sizeof(rc->settings.psk));
    rudp_secret_load(c, rc->settings.secret);
    rc->retry_always = c->retry_always;
    rc->qlog_dir = c->qlog_dir;
    if (!c->psk_set) { /* a key does better than tickets */
        rc->ticket_load = rudp_ticket_load;
        rc->ticket_save = rudp_ticket_save;
    }
}

/* Parses the environment (exiting with status 2 on a bad value) and, when
 * RUDP_PORTS selects anything, configures the engine and turns the hooks
 * on. */
__attribute__((constructor)) static void rudp_shim_init(void) {
    rudp_rt_config rc;
    rudp_rt_sys sys;

    rudp_config_load(&rudp_cfg);
    if (!rudp_cfg.active)
        return;
    shim_rt_sys(&sys);
    rudp_rt_init(&sys);
    rudp_fd_init();
    rudp_limits_init();
    rudp_exec_import();
    /* A low log descriptor would be the first a program closes in bulk (ssh
     * and sshd call closefrom(3) at once) and then reuses, and log lines
     * would go into its own file or socket: it lives high, as the engine's. */
    rudp_rt_reserve_fds();
    if (rudp_cfg.log_fd >= 0)
        rudp_cfg.log_fd = rudp_rt_fd_high(rudp_cfg.log_fd);
    shim_rt_config(&rudp_cfg, &rc);
    rudp_rt_configure(&rc);
    atomic_store_explicit(&rudp_shim_on, true, memory_order_release);
    rudp_log(RUDP_LOG_DEBUG, "shim active (fastopen %d, linger %u ms, idle cap %u ms)",
             (int)rudp_cfg.fastopen, rudp_cfg.linger_ms, rudp_cfg.idle_timeout_ms);
}

/* At exit: lets the engine deliver what the program wrote (bounded), then
 * hands the listeners it serves to the processes that share them. */
__attribute__((destructor)) static void rudp_shim_fini(void) {
    if (!rudp_active())
        return;
    rudp_rt_exit_flush();
    rudp_listeners_hand_over();
}

/* --- errors --- */

int rudp_errno(int err) {
    if (RUDP_ERR_IS_SYS(err))
        return RUDP_ERR_SYS_ERRNO(err);
    switch (err) {
    case RUDP_OK:
        return 0;
    case RUDP_ERR_INVAL:
        return EINVAL;
    case RUDP_ERR_REFUSED:
        return ECONNREFUSED;
    case RUDP_ERR_TIMEDOUT:
        return ETIMEDOUT;
    case RUDP_ERR_CLOSED:
        return ECONNABORTED;
    case RUDP_ERR_NOMEM:
        return ENOMEM;
    case RUDP_ERR_STREAM_LIMIT:
        return EAGAIN;
    default: /* reset, peer closed, peer reset, protocol */
        return ECONNRESET;
    }
}

/* --- logging --- */

void rudp_log(int level, const char *fmt, ...) {
    char line[512];
    int saved = errno, n, m;
    va_list ap;

    if (level > rudp_cfg.log_level)
        return;
    n = snprintf(line, sizeof(line), "rudp[%d]: ", (int)getpid());
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    n = m < 0 ? n : n + m;
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    if (RUDP_REAL(write)(rudp_cfg.log_fd >= 0 ? rudp_cfg.log_fd : 2, line, (size_t)n) < 0) {
        /* A lost log line is not worth failing over. */
    }
    errno = saved;
}

/* --- addresses --- */

socklen_t rudp_addr_size(int family) {
    if (family == AF_INET)
        return sizeof(struct sockaddr_in);
    if (family == AF_INET6)
        return sizeof(struct sockaddr_in6);
    return 0;
}

uint16_t rudp_addr_port(const struct sockaddr *sa) {
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

/* Replaces a wildcard address in |ss| by the loopback address. */
static void addr_wildcard_to_loopback(struct sockaddr_storage *ss) {
    if (ss->ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;

        if (in->sin_addr.s_addr == htonl(INADDR_ANY))
            in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

        if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
            in6->sin6_addr = in6addr_loopback;
    }
}

socklen_t rudp_addr_normalize(struct sockaddr_storage *out, const struct sockaddr *sa,
                              socklen_t len, bool for_connect) {
    socklen_t need;

    memset(out, 0, sizeof(*out));
    if (sa == NULL || len < sizeof(sa_family_t))
        return 0;
    /* An IPv6 address without sin6_scope_id (RFC 2133 size) is accepted,
     * as the kernel does. */
    need = sa->sa_family == AF_INET    ? sizeof(struct sockaddr_in)
           : sa->sa_family == AF_INET6 ? 24
                                       : 0;
    if (need == 0 || len < need)
        return 0;
    memcpy(out, sa,
           len < rudp_addr_size(sa->sa_family) ? len : rudp_addr_size(sa->sa_family));
    if (sa->sa_family == AF_INET)
        memset(((struct sockaddr_in *)out)->sin_zero, 0, 8);
    if (for_connect)
        addr_wildcard_to_loopback(out);
    return rudp_addr_size(sa->sa_family);
}

socklen_t rudp_addr_to_family(struct sockaddr_storage *ss, int family) {
    struct sockaddr_in in;
    struct sockaddr_in6 in6;

    if (family == AF_INET6 && ss->ss_family == AF_INET) {
        memcpy(&in, ss, sizeof(in));
        memset(&in6, 0, sizeof(in6));
        in6.sin6_family = AF_INET6;
        in6.sin6_port = in.sin_port;
        in6.sin6_addr.s6_addr[10] = in6.sin6_addr.s6_addr[11] = 0xff;
        memcpy(&in6.sin6_addr.s6_addr[12], &in.sin_addr, 4);
        memset(ss, 0, sizeof(*ss));
        memcpy(ss, &in6, sizeof(in6));
    } else if (family == AF_INET && ss->ss_family == AF_INET6) {
        memcpy(&in6, ss, sizeof(in6));
        if (!IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr))
            return sizeof(in6);
        memset(&in, 0, sizeof(in));
        in.sin_family = AF_INET;
        in.sin_port = in6.sin6_port;
        memcpy(&in.sin_addr, &in6.sin6_addr.s6_addr[12], 4);
        memset(ss, 0, sizeof(*ss));
        memcpy(ss, &in, sizeof(in));
    }
    return rudp_addr_size(ss->ss_family);
}

int rudp_addr_copy_out(struct sockaddr *dst, socklen_t *dstlen, const void *src,
                       socklen_t srclen) {
    if (dstlen == NULL) {
        errno = EFAULT;
        return -1;
    }
    if ((int)*dstlen < 0) {
        errno = EINVAL;
        return -1;
    }
    if (*dstlen > 0 && dst == NULL) {
        errno = EFAULT;
        return -1;
    }
    memcpy(dst, src, *dstlen < srclen ? *dstlen : srclen);
    *dstlen = srclen;
    return 0;
}

bool rudp_addr_selected(const struct sockaddr *sa, bool listening) {
    uint16_t port = rudp_addr_port(sa);

    return port != 0 && rudp_config_port_selected(&rudp_cfg, port) &&
           rudp_config_host_matches(&rudp_cfg, sa, listening);
}

/* --- fds --- */

uint64_t rudp_fd_inode(int fd) {
    struct stat st;
    int saved = errno;
    uint64_t ino = fstat(fd, &st) == 0 ? (uint64_t)st.st_ino : 0;

    errno = saved;
    return ino;
}

int rudp_fd_flags(int fd, bool *cloexec, bool *nonblock) {
    int fdfl = RUDP_REAL(fcntl)(fd, F_GETFD);
    int fl = RUDP_REAL(fcntl)(fd, F_GETFL);

    if (fdfl < 0 || fl < 0)
        return -errno;
    *cloexec = (fdfl & FD_CLOEXEC) != 0;
    *nonblock = (fl & O_NONBLOCK) != 0;
    return 0;
}

int rudp_fd_swap(int src, int fd, bool cloexec, bool nonblock, bool src_nonblock) {
    int r;

    do
        r = RUDP_REAL(dup3)(src, fd, cloexec ? O_CLOEXEC : 0);
    while (r < 0 && (errno == EINTR || errno == EBUSY));
    if (r < 0)
        return -errno;
    RUDP_REAL(close)(src);
    if (src_nonblock && !nonblock) /* a fresh socket's status flags are known */
        RUDP_REAL(fcntl)(fd, F_SETFL, O_RDWR);
    else if (!src_nonblock && nonblock)
        RUDP_REAL(fcntl)(fd, F_SETFL, RUDP_REAL(fcntl)(fd, F_GETFL) | O_NONBLOCK);
    return 0;
}

bool rudp_fd_still_ours(int fd, const rudp_fd_entry *e) {
    return e->ino == 0 || rudp_fd_inode(fd) == e->ino;
}

void rudp_fd_apply_opts(int fd, const rudp_fd_opts *o) {
    static const int bufs[] = {SO_SNDBUF, SO_RCVBUF};
    __typeof__(&setsockopt) set = RUDP_REAL(setsockopt);
    int saved = errno, v;

    if (o->sndtimeo.tv_sec || o->sndtimeo.tv_usec)
        set(fd, SOL_SOCKET, SO_SNDTIMEO, &o->sndtimeo, sizeof(o->sndtimeo));
    if (o->rcvtimeo.tv_sec || o->rcvtimeo.tv_usec)
        set(fd, SOL_SOCKET, SO_RCVTIMEO, &o->rcvtimeo, sizeof(o->rcvtimeo));
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        if (rudp_fd_opt_get(o, SOL_SOCKET, bufs[i], &v))
            set(fd, SOL_SOCKET, bufs[i], &v, sizeof(v));
    errno = saved;
}

/* Marks connection |e| to be aborted with RST when SO_LINGER {1, 0} is
 * set (the engine acts when the last copy of the fd is closed). */
static void forget_conn(int fd, const rudp_fd_entry *e) {
    rudp_slot *slot = rudp_slot_of(&e->ref);

    if (slot == NULL || !e->opts.linger.l_onoff || e->opts.linger.l_linger != 0)
        return;
    if (rudp_fd_still_ours(fd, e))
        rudp_slot_set_flags(slot, RUDP_SLOT_F_RESET_ON_CLOSE);
}

/* What forget_placeholder looks for among the other fds. */
typedef struct ph_scan {
    int ph;
    uint64_t ino;
    bool found;
} ph_scan;

/* rudp_fd_foreach callback: notes a listener entry naming the same
 * placeholder. */
static void ph_scan_cb(int fd, rudp_fd_entry *e, void *ctx) {
    ph_scan *sc = ctx;

    (void)fd;
    if (rudp_fd_kind(e) == RUDP_FD_LISTENER && e->ph_fd == sc->ph && e->ph_ino == sc->ino)
        sc->found = true;
}

/* Closes the placeholder TCP socket of the listener entry |e| (cleared
 * already) unless another fd of this process still names it: the last
 * copy of a listener in a process lets go of the port there. */
static void forget_placeholder(const rudp_fd_entry *e) {
    ph_scan sc = {.ph = e->ph_fd, .ino = e->ph_ino};

    if (e->ph_ino == 0 || e->ph_fd < 0)
        return;
    rudp_fd_foreach(0, ~0u, ph_scan_cb, &sc);
    if (!sc.found && rudp_fd_inode(e->ph_fd) == e->ph_ino)
        RUDP_REAL(close)(e->ph_fd);
}

bool rudp_fd_forget(int fd, rudp_fd_entry *l) {
    rudp_fd_entry cur;
    uint32_t kind = rudp_fd_snapshot(fd, &cur);
    bool listener = false;

    if (kind == RUDP_FD_NONE)
        return false;
    if (kind == RUDP_FD_CONN)
        forget_conn(fd, &cur);
    if (kind == RUDP_FD_LISTENER && l != NULL && cur.owner == getpid() &&
        rudp_fd_still_ours(fd, &cur)) {
        *l = cur;
        listener = true;
    }
    rudp_fd_clear(fd);
    if (kind == RUDP_FD_LISTENER && rudp_fd_still_ours(fd, &cur))
        forget_placeholder(&cur);
    return listener;
}

/* Returns true when the abstract AF_UNIX name |name| is bound by nobody:
 * binding a fresh socket to it succeeds. */
static bool listener_name_free(const char *name, size_t len) {
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int s = RUDP_REAL(socket)(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int r;

    if (s < 0 || len > sizeof(sun.sun_path))
        return false;
    memcpy(sun.sun_path, name, len);
    r = RUDP_REAL(bind)(s, (struct sockaddr *)&sun,
                        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
    RUDP_REAL(close)(s);
    return r == 0;
}

void rudp_fd_listener_closed(const rudp_fd_entry *l) {
    int saved = errno;

    if (listener_name_free(l->lname, l->lname_len)) {
        rudp_log(RUDP_LOG_DEBUG, "listener %d closed", l->listener_id);
        rudp_rt_unlisten(l->listener_id);
    }
    errno = saved;
}
