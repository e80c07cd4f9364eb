/*
 * config.h — the shim's environment configuration (DESIGN.md §1 and §4,
 * "selection" and "bad configuration").
 *
 * The parser is pure: it turns strings into a rudp_shim_config and an
 * error message, and touches nothing else, so the unit tests drive it
 * directly.  rudp_config_load() is the one impure entry point: it reads the
 * environment, opens RUDP_LOG_FILE, and on any malformed value prints one
 * line to stderr and ends the process with status 2.
 */
#ifndef RUDP_SHIM_CONFIG_H
#define RUDP_SHIM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "rudp/rudp.h"

#define RUDP_CONFIG_MAX_HOSTS 64
#define RUDP_CONFIG_ERR_MAX 1024

/* Defaults of the numeric variables. */
#define RUDP_CONFIG_DEFAULT_LINGER_MS 5000u
#define RUDP_CONFIG_DEFAULT_IDLE_MS 0u /* silence alone never kills, as in TCP */
#define RUDP_CONFIG_DEFAULT_LOG 1

/* One RUDP_HOSTS entry: an address and a prefix length.  An IPv4 prefix is
 * stored in addr[0..3] with family AF_INET. */
typedef struct rudp_host_prefix {
    int family;             /* AF_INET or AF_INET6 */
    unsigned prefix;        /* 0..32 or 0..128 */
    unsigned char addr[16]; /* network byte order, host bits cleared */
} rudp_host_prefix;

typedef struct rudp_shim_config {
    bool active;                /* RUDP_PORTS set and non-empty */
    uint64_t ports[65536 / 64]; /* bit p set: TCP port p is selected */
    unsigned nhosts;            /* 0: every destination matches */
    rudp_host_prefix hosts[RUDP_CONFIG_MAX_HOSTS];
    bool fastopen;            /* RUDP_FASTOPEN=1 */
    enum rudp_cc_algo cc;     /* RUDP_CC, or the engine default */
    bool cc_set;              /* RUDP_CC was given */
    int log_level;            /* 0 off, 1 errors, 2 info, 3 debug */
    const char *log_file;     /* RUDP_LOG_FILE, or NULL for stderr */
    int log_fd;               /* opened by rudp_config_load(), else -1 */
    uint32_t linger_ms;       /* RUDP_LINGER_MS */
    uint32_t idle_timeout_ms; /* RUDP_IDLE_TIMEOUT_MS */
    const char *key_file;     /* RUDP_KEY_FILE, or NULL: no pre-shared key */
    bool psk_set;             /* the key was read (rudp_config_load()) */
    uint8_t psk[32];          /* derived from the key file's bytes */
    bool retry_always;        /* RUDP_RETRY=always */
    const char *qlog_dir;     /* RUDP_QLOG_DIR, or NULL: no qlog files; made
                                 absolute by rudp_config_load() */
} rudp_shim_config;

/* Looks an environment variable up; returns NULL when it is unset. */
typedef const char *(*rudp_config_getenv_fn)(const char *name, void *ctx);

/* Fills |cfg| with the defaults: inactive, no hosts, no fast open, the
 * engine's default cc, log level 1 to stderr, the default linger and idle
 * timeout. */
void rudp_config_defaults(rudp_shim_config *cfg);

/* Parses a RUDP_PORTS value ("80,8000-8100") into the bitmap |ports|
 * (cleared first).  Returns 0, or -1 when the value is malformed. */
int rudp_config_parse_ports(const char *s, uint64_t ports[65536 / 64]);

/* Parses a RUDP_HOSTS value ("10.0.0.0/8,::1") into |hosts| (at most
 * RUDP_CONFIG_MAX_HOSTS entries) and sets *n.  Returns 0 or -1. */
int rudp_config_parse_hosts(const char *s, rudp_host_prefix *hosts, unsigned *n);

/* Parses a log level: "0".."3", "off", "error", "info", "debug".  Returns
 * the level, or -1. */
int rudp_config_parse_log(const char *s);

/* Parses a decimal integer in [lo, hi] without sign, spaces or suffix into
 * *out.  Returns 0 or -1. */
int rudp_config_parse_uint(const char *s, uint32_t lo, uint32_t hi, uint32_t *out);

/* Parses every RUDP_* variable that |get| reports into |cfg| (after
 * defaults).  An unset or empty variable keeps its default; an empty
 * RUDP_PORTS leaves the shim inactive.  Does not open RUDP_LOG_FILE.
 * Returns 0, or -1 with the one-line message (no newline) in |err|. */
int rudp_config_parse(rudp_shim_config *cfg, rudp_config_getenv_fn get, void *ctx,
                      char *err, size_t errlen);

/* Returns true when |port| is selected by |cfg|. */
static inline bool rudp_config_port_selected(const rudp_shim_config *cfg, uint16_t port) {
    return (cfg->ports[port >> 6] >> (port & 63)) & 1u;
}

/* Returns true when the IPv4/IPv6 address of |sa| passes the RUDP_HOSTS
 * filter (always true without a filter).  A v4-mapped IPv6 address is
 * matched as the IPv4 address; with |wildcard_ok|, 0.0.0.0 and :: match
 * too (used for listeners bound to every address). */
bool rudp_config_host_matches(const rudp_shim_config *cfg, const struct sockaddr *sa,
                              bool wildcard_ok);

/* Reads the environment into |cfg|, opens RUDP_LOG_FILE (O_APPEND,
 * O_CLOEXEC) into cfg->log_fd, reads RUDP_KEY_FILE and checks
 * RUDP_QLOG_DIR.  On a malformed value it writes the message and a newline
 * to stderr and calls _exit(2); it never returns then. */
void rudp_config_load(rudp_shim_config *cfg);

/* Checks that |path| is an existing directory this process may create
 * files in, and sets *abs to its absolute path (malloc'd), which stays
 * right when the program changes its working directory.  Returns 0, or -1
 * with a line naming RUDP_QLOG_DIR, the path and the reason in |err|. */
int rudp_config_check_qlog_dir(const char *path, char **abs, char *err, size_t errlen);

/* The shortest and longest key file (bytes). */
#define RUDP_KEY_FILE_MIN 32
#define RUDP_KEY_FILE_MAX 4096

/* Derives the pre-shared key from the |len| bytes of a key file into
 * |psk|.  Returns 0, or -1 when they are fewer than RUDP_KEY_FILE_MIN. */
int rudp_config_derive_key(const uint8_t *data, size_t len, uint8_t psk[32]);

/* Reads the key file |path| and derives the key into |psk|.  Returns 0, or
 * -1 with a line naming RUDP_KEY_FILE, the path and the reason (missing,
 * unreadable, too short, too long) in |err|. */
int rudp_config_read_key(const char *path, uint8_t psk[32], char *err, size_t errlen);

#endif /* RUDP_SHIM_CONFIG_H */
