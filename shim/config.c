/*
 * config.c — parsing the RUDP_* environment (DESIGN.md §1, §4 "selection"
 * and "bad configuration").
 *
 * The shim reroutes a TCP connection when its destination port (client) or
 * bound port (listener) is in RUDP_PORTS and, when RUDP_HOSTS is given, its
 * address is inside one of the listed prefixes.  Every other variable tunes
 * the engine: RUDP_FASTOPEN (0-RTT for every connect), RUDP_CC (newreno,
 * cubic or bbr), RUDP_LOG and RUDP_LOG_FILE, RUDP_LINGER_MS (how long process exit
 * waits for queued data), RUDP_IDLE_TIMEOUT_MS (a cap on how long a peer
 * may be silent; unset, only TCP's own rules end a connection: docs/COMPATIBILITY.md
 * "Idle connections and dead peers"), RUDP_KEY_FILE (a pre-shared key that authenticates
 * both ends: docs/SECURITY.md), RUDP_RETRY (auto: listeners ask new clients to prove
 * their address only under load; always: every time) and RUDP_QLOG_DIR (a directory
 * where every session writes a qlog file: docs/QLOG.md).
 *
 * A misconfigured preload must not silently fall back to TCP, so a value
 * that does not parse is fatal: one line naming the variable and the value
 * on stderr, then exit status 2, before the program runs.  An unset or
 * empty variable keeps its default; an unset or empty RUDP_PORTS makes the
 * whole shim a passthrough.
 *
 * The port set is a 65536-bit bitmap so the hooks test a port in O(1).
 * Everything here except rudp_config_load(), rudp_config_read_key() and
 * rudp_config_check_qlog_dir() is pure (no I/O, no globals), so
 * tests/unit/test_config.c exercises it without the hooks.
 */
#include "config.h"

#include "crypto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ERR_VALUE_MAX 200 /* bytes of a bad value quoted in the message */

/* What each variable should look like, quoted after "expected". */
static const char HINT_PORTS[] = "expected a list like 80,8000-8100";
static const char HINT_HOSTS[] = "expected a list like 10.0.0.0/8,::1,fd00::/8";
static const char HINT_FASTOPEN[] = "expected 0 or 1";
static const char HINT_CC[] = "expected newreno, cubic or bbr";
static const char HINT_LOG[] = "expected 0-3 or off, error, info, debug";
static const char HINT_LINGER[] = "expected an integer from 0 to 3600000";
static const char HINT_IDLE[] = "expected an integer from 1000 to 86400000";
static const char HINT_RETRY[] = "expected auto or always";

void rudp_config_defaults(rudp_shim_config *cfg) {
    rudp_settings s;

    memset(cfg, 0, sizeof(*cfg));
    rudp_settings_default(&s);
    cfg->cc = s.cc;
    cfg->log_level = RUDP_CONFIG_DEFAULT_LOG;
    cfg->log_fd = -1;
    cfg->linger_ms = RUDP_CONFIG_DEFAULT_LINGER_MS;
    cfg->idle_timeout_ms = RUDP_CONFIG_DEFAULT_IDLE_MS;
}

/* Parses the decimal digits in [s, end) (at least one, at most 10, nothing
 * else) into *out.  Returns 0 or -1. */
static int parse_digits(const char *s, const char *end, uint64_t *out) {
    uint64_t v = 0;

    if (s == end || end - s > 10)
        return -1;
    for (; s < end; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

int rudp_config_parse_uint(const char *s, uint32_t lo, uint32_t hi, uint32_t *out) {
    uint64_t v;

    if (parse_digits(s, s + strlen(s), &v) < 0 || v < lo || v > hi)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* Parses one port item, "80" or "8000-8100", in [s, end) and sets its
 * bits.  Returns 0 or -1 (bad number, port 0 or > 65535, lo > hi). */
static int parse_port_item(const char *s, const char *end, uint64_t *ports) {
    const char *dash = memchr(s, '-', (size_t)(end - s));
    uint64_t lo, hi;

    if (parse_digits(s, dash ? dash : end, &lo) < 0)
        return -1;
    hi = lo;
    if (dash && parse_digits(dash + 1, end, &hi) < 0)
        return -1;
    if (lo < 1 || hi > 65535 || lo > hi)
        return -1;
    for (uint64_t p = lo; p <= hi; p++)
        ports[p >> 6] |= 1ull << (p & 63);
    return 0;
}

int rudp_config_parse_ports(const char *s, uint64_t ports[65536 / 64]) {
    memset(ports, 0, 65536 / 8);
    for (;;) {
        const char *comma = strchr(s, ',');
        const char *end = comma ? comma : s + strlen(s);

        if (parse_port_item(s, end, ports) < 0)
            return -1;
        if (!comma)
            return 0;
        s = comma + 1;
    }
}

/* Clears the bits of |addr| (|nbytes| long) beyond the first |prefix|. */
static void mask_prefix(unsigned char *addr, size_t nbytes, unsigned prefix) {
    for (size_t i = 0; i < nbytes; i++) {
        unsigned keep = prefix > i * 8 ? prefix - (unsigned)i * 8 : 0;

        if (keep < 8)
            addr[i] &= (unsigned char)(0xff00u >> keep);
    }
}

/* Parses one host item, "10.0.0.0/8", "::1" or "fd00::/8", in [s, end).
 * Returns 0 or -1. */
static int parse_host_item(const char *s, const char *end, rudp_host_prefix *h) {
    char buf[INET6_ADDRSTRLEN + 1];
    const char *slash = memchr(s, '/', (size_t)(end - s));
    size_t alen = (size_t)((slash ? slash : end) - s);
    uint64_t prefix;

    if (alen == 0 || alen >= sizeof(buf))
        return -1;
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    memset(h, 0, sizeof(*h));
    if (inet_pton(AF_INET, buf, h->addr) == 1)
        h->family = AF_INET;
    else if (inet_pton(AF_INET6, buf, h->addr) == 1)
        h->family = AF_INET6;
    else
        return -1;
    prefix = h->family == AF_INET ? 32 : 128;
    if (slash && (parse_digits(slash + 1, end, &prefix) < 0 ||
                  prefix > (h->family == AF_INET ? 32u : 128u)))
        return -1;
    h->prefix = (unsigned)prefix;
    mask_prefix(h->addr, h->family == AF_INET ? 4 : 16, h->prefix);
    return 0;
}

int rudp_config_parse_hosts(const char *s, rudp_host_prefix *hosts, unsigned *n) {
    *n = 0;
    for (;;) {
        const char *comma = strchr(s, ',');
        const char *end = comma ? comma : s + strlen(s);

        if (*n == RUDP_CONFIG_MAX_HOSTS || parse_host_item(s, end, &hosts[*n]) < 0)
            return -1;
        (*n)++;
        if (!comma)
            return 0;
        s = comma + 1;
    }
}

int rudp_config_parse_log(const char *s) {
    static const char *const names[] = {"off", "error", "info", "debug"};
    uint32_t v;

    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    if (rudp_config_parse_uint(s, 0, 3, &v) == 0)
        return (int)v;
    return -1;
}

/* Writes "rudp: bad value for NAME: 'VALUE' (HINT)" into |err|, escaping
 * control bytes of the value as \xNN and shortening a very long value, so
 * the message is always one line.  Returns -1 for the caller to pass on. */
static int bad_value(char *err, size_t errlen, const char *name, const char *value,
                     const char *hint) {
    char quoted[ERR_VALUE_MAX * 4 + 4];
    size_t q = 0;

    for (size_t i = 0; value[i] != '\0'; i++) {
        unsigned char c = (unsigned char)value[i];

        if (i == ERR_VALUE_MAX) {
            memcpy(quoted + q, "...", 3);
            q += 3;
            break;
        }
        if (c < 0x20 || c == 0x7f)
            q += (size_t)snprintf(quoted + q, 5, "\\x%02x", c);
        else
            quoted[q++] = (char)c;
    }
    quoted[q] = '\0';
    snprintf(err, errlen, "rudp: bad value for %s: '%s' (%s)", name, quoted, hint);
    return -1;
}

/* Returns the value of |name| from |get|, or NULL when unset or empty. */
static const char *env_value(rudp_config_getenv_fn get, void *ctx, const char *name) {
    const char *v = get(name, ctx);

    return v != NULL && v[0] != '\0' ? v : NULL;
}

/* Parses RUDP_PORTS and RUDP_HOSTS into |cfg|.  Returns 0 or -1 with the
 * message in |err|. */
static int parse_selection(rudp_shim_config *cfg, rudp_config_getenv_fn get, void *ctx,
                           char *err, size_t errlen) {
    const char *v;

    if ((v = env_value(get, ctx, "RUDP_PORTS")) != NULL) {
        if (rudp_config_parse_ports(v, cfg->ports) < 0)
            return bad_value(err, errlen, "RUDP_PORTS", v, HINT_PORTS);
        cfg->active = true;
    }
    if ((v = env_value(get, ctx, "RUDP_HOSTS")) != NULL &&
        rudp_config_parse_hosts(v, cfg->hosts, &cfg->nhosts) < 0)
        return bad_value(err, errlen, "RUDP_HOSTS", v, HINT_HOSTS);
    return 0;
}

/* Parses RUDP_FASTOPEN, RUDP_CC, RUDP_LOG and RUDP_LOG_FILE into |cfg|.
 * Returns 0 or -1 with the message in |err|. */
static int parse_behaviour(rudp_shim_config *cfg, rudp_config_getenv_fn get, void *ctx,
                           char *err, size_t errlen) {
    const char *v;

    if ((v = env_value(get, ctx, "RUDP_FASTOPEN")) != NULL) {
        if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
            return bad_value(err, errlen, "RUDP_FASTOPEN", v, HINT_FASTOPEN);
        cfg->fastopen = v[0] == '1';
    }
    if ((v = env_value(get, ctx, "RUDP_CC")) != NULL) {
        if (rudp_cc_algo_from_name(v, &cfg->cc) != RUDP_OK)
            return bad_value(err, errlen, "RUDP_CC", v, HINT_CC);
        cfg->cc_set = true;
    }
    if ((v = env_value(get, ctx, "RUDP_LOG")) != NULL &&
        (cfg->log_level = rudp_config_parse_log(v)) < 0)
        return bad_value(err, errlen, "RUDP_LOG", v, HINT_LOG);
    cfg->log_file = env_value(get, ctx, "RUDP_LOG_FILE");
    cfg->key_file = env_value(get, ctx, "RUDP_KEY_FILE");
    cfg->qlog_dir = env_value(get, ctx, "RUDP_QLOG_DIR");
    if ((v = env_value(get, ctx, "RUDP_RETRY")) != NULL) {
        if (strcmp(v, "auto") != 0 && strcmp(v, "always") != 0)
            return bad_value(err, errlen, "RUDP_RETRY", v, HINT_RETRY);
        cfg->retry_always = strcmp(v, "always") == 0;
    }
    return 0;
}

/* Parses RUDP_LINGER_MS and RUDP_IDLE_TIMEOUT_MS into |cfg|.  Returns 0 or
 * -1 with the message in |err|. */
static int parse_timers(rudp_shim_config *cfg, rudp_config_getenv_fn get, void *ctx,
                        char *err, size_t errlen) {
    const char *v;

    if ((v = env_value(get, ctx, "RUDP_LINGER_MS")) != NULL &&
        rudp_config_parse_uint(v, 0, 3600000, &cfg->linger_ms) < 0)
        return bad_value(err, errlen, "RUDP_LINGER_MS", v, HINT_LINGER);
    if ((v = env_value(get, ctx, "RUDP_IDLE_TIMEOUT_MS")) != NULL &&
        rudp_config_parse_uint(v, 1000, 86400000, &cfg->idle_timeout_ms) < 0)
        return bad_value(err, errlen, "RUDP_IDLE_TIMEOUT_MS", v, HINT_IDLE);
    return 0;
}

int rudp_config_parse(rudp_shim_config *cfg, rudp_config_getenv_fn get, void *ctx,
                      char *err, size_t errlen) {
    rudp_config_defaults(cfg);
    if (parse_selection(cfg, get, ctx, err, errlen) < 0 ||
        parse_behaviour(cfg, get, ctx, err, errlen) < 0 ||
        parse_timers(cfg, get, ctx, err, errlen) < 0)
        return -1;
    return 0;
}

/* Returns true when the first |prefix| bits of |a| and |b| are equal. */
static bool bits_equal(const unsigned char *a, const unsigned char *b, unsigned prefix) {
    unsigned full = prefix / 8, rest = prefix % 8;
    unsigned char mask = (unsigned char)(0xff00u >> rest);

    if (memcmp(a, b, full) != 0)
        return false;
    return rest == 0 || ((a[full] ^ b[full]) & mask) == 0;
}

/* Returns true when the address (|family|, |a|) is inside prefix |h|.  An
 * IPv4 address also matches IPv6 prefixes in its v4-mapped form. */
static bool prefix_matches(const rudp_host_prefix *h, int family, const unsigned char *a) {
    unsigned char mapped[16] = {[10] = 0xff, [11] = 0xff};

    if (h->family == family)
        return bits_equal(h->addr, a, h->prefix);
    if (family == AF_INET && h->family == AF_INET6) {
        memcpy(mapped + 12, a, 4);
        return bits_equal(h->addr, mapped, h->prefix);
    }
    return false;
}

/* Extracts the address bytes of |sa| into *family and *a, unmapping a
 * v4-mapped IPv6 address.  Returns false for other families. */
static bool sockaddr_bytes(const struct sockaddr *sa, int *family,
                           const unsigned char **a) {
    if (sa->sa_family == AF_INET) {
        *family = AF_INET;
        *a = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *in6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;

        *family = IN6_IS_ADDR_V4MAPPED(in6) ? AF_INET : AF_INET6;
        *a = in6->s6_addr + (*family == AF_INET ? 12 : 0);
        return true;
    }
    return false;
}

bool rudp_config_host_matches(const rudp_shim_config *cfg, const struct sockaddr *sa,
                              bool wildcard_ok) {
    static const unsigned char zero[16];
    const unsigned char *a;
    int family;

    if (cfg->nhosts == 0)
        return true;
    if (!sockaddr_bytes(sa, &family, &a))
        return false;
    if (wildcard_ok && memcmp(a, zero, family == AF_INET ? 4 : 16) == 0)
        return true;
    for (unsigned i = 0; i < cfg->nhosts; i++)
        if (prefix_matches(&cfg->hosts[i], family, a))
            return true;
    return false;
}

int rudp_config_derive_key(const uint8_t *data, size_t len, uint8_t psk[32]) {
    static const char salt[] = "rudp psk";

    if (len < RUDP_KEY_FILE_MIN)
        return -1;
    rudp_hkdf_extract(psk, (const uint8_t *)salt, sizeof(salt) - 1, data, len);
    return 0;
}

/* Reads at most |cap| bytes of |path| into |buf|; returns the count, or -1
 * with the reason in |why| (a file longer than |cap| - 1 counts as too
 * long). */
static ssize_t read_small_file(const char *path, uint8_t *buf, size_t cap, char *why,
                               size_t whylen) {
    FILE *f = fopen(path, "rbe");
    size_t n;

    if (f == NULL) {
        snprintf(why, whylen, "cannot read it: %s", strerror(errno));
        return -1;
    }
    n = fread(buf, 1, cap, f);
    if (ferror(f)) {
        snprintf(why, whylen, "cannot read it: %s", strerror(errno));
        n = (size_t)-1;
    }
    fclose(f);
    return (ssize_t)n;
}

int rudp_config_read_key(const char *path, uint8_t psk[32], char *err, size_t errlen) {
    uint8_t buf[RUDP_KEY_FILE_MAX + 1];
    char why[160];
    ssize_t n = read_small_file(path, buf, sizeof(buf), why, sizeof(why));

    if (n > RUDP_KEY_FILE_MAX)
        snprintf(why, sizeof(why), "longer than %d bytes: not a key file",
                 RUDP_KEY_FILE_MAX);
    else if (n >= 0 && n < RUDP_KEY_FILE_MIN)
        snprintf(why, sizeof(why),
                 "%zd bytes; a key needs at least %d (e.g. head -c 32 "
                 "/dev/urandom)",
                 n, RUDP_KEY_FILE_MIN);
    else if (n >= 0 && rudp_config_derive_key(buf, (size_t)n, psk) == 0) {
        memset(buf, 0, sizeof(buf));
        return 0;
    }
    memset(buf, 0, sizeof(buf));
    return bad_value(err, errlen, "RUDP_KEY_FILE", path, why);
}

int rudp_config_check_qlog_dir(const char *path, char **abs, char *err, size_t errlen) {
    struct stat st;
    char why[160];

    *abs = NULL;
    if (stat(path, &st) < 0)
        snprintf(why, sizeof(why), "not a directory: %s", strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        snprintf(why, sizeof(why), "not a directory");
    else if (faccessat(AT_FDCWD, path, W_OK | X_OK, AT_EACCESS) < 0)
        snprintf(why, sizeof(why), "cannot create files in it: %s", strerror(errno));
    else if ((*abs = realpath(path, NULL)) == NULL)
        snprintf(why, sizeof(why), "cannot resolve it: %s", strerror(errno));
    else
        return 0;
    return bad_value(err, errlen, "RUDP_QLOG_DIR", path, why);
}

/* The getenv adapter used by rudp_config_load(). */
static const char *real_getenv(const char *name, void *ctx) {
    (void)ctx;
    return getenv(name);
}

/* Writes |msg| and a newline to stderr in one write and ends the process
 * with status 2. */
static void die(const char *msg) {
    char line[RUDP_CONFIG_ERR_MAX + 2];
    int n = snprintf(line, sizeof(line), "%s\n", msg);

    if (n > (int)sizeof(line) - 1)
        n = (int)sizeof(line) - 1;
    if (write(2, line, (size_t)n) < 0) {
        /* Nothing left to report it to. */
    }
    _exit(2);
}

void rudp_config_load(rudp_shim_config *cfg) {
    char err[RUDP_CONFIG_ERR_MAX];

    if (rudp_config_parse(cfg, real_getenv, NULL, err, sizeof(err)) < 0)
        die(err);
    if (cfg->key_file != NULL) {
        if (rudp_config_read_key(cfg->key_file, cfg->psk, err, sizeof(err)) < 0)
            die(err);
        cfg->psk_set = true;
    }
    if (cfg->qlog_dir != NULL) {
        char *abs;

        if (rudp_config_check_qlog_dir(cfg->qlog_dir, &abs, err, sizeof(err)) < 0)
            die(err);
        cfg->qlog_dir = abs; /* kept for the life of the process */
    }
    if (cfg->log_file == NULL)
        return;
    cfg->log_fd = open(cfg->log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (cfg->log_fd < 0) {
        char hint[128];

        snprintf(hint, sizeof(hint), "cannot open it: %s", strerror(errno));
        bad_value(err, sizeof(err), "RUDP_LOG_FILE", cfg->log_file, hint);
        die(err);
    }
}
