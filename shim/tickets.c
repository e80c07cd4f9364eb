/*
 * tickets.c — where a client keeps the resumption tickets its servers sent
 * (docs/PROTOCOL.md "Resumption"), so that the next process of the same
 * user that connects to one of them sends its first bytes in the opening
 * datagram, as a TCP Fast Open cookie cache does.
 *
 * One file per server address in the user's state directory (secret.c):
 * tickets/<family>-<address in hex>-<port>, 96 bytes (the ticket's key,
 * then its blob), mode 0600, replaced atomically by a rename so that a
 * reader sees a whole ticket or none.  The key in it stands for 0-RTT
 * access to that server for a day: the directory is the user's alone.  The
 * engine thread calls these (rudp_rt_config.ticket_load / ticket_save).
 * Without a state directory nothing is kept, and every process's first
 * bytes wait for its handshake.
 */
#include "shim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define TICKET_FILE_LEN (sizeof(((rudp_ticket *)0)->psk) + RUDP_TICKET_LEN)

/* Appends the hex of |n| bytes at |p| to |out| (room for 2n + 1). */
static void ticket_hex(char *out, const uint8_t *p, size_t n) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Writes the path of |server|'s ticket file into |path| (PATH_MAX bytes),
 * making the directories; returns false for an address that is not IPv4
 * or IPv6 or when there is no state directory. */
static bool ticket_path(const rudp_addr *server, char *path) {
    char dir[PATH_MAX - 64], hex[33];
    struct sockaddr_storage ss;
    int port;

    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, server->bytes, server->len < sizeof(ss) ? server->len : sizeof(ss));
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        ticket_hex(hex, (const uint8_t *)&a->sin_addr, 4);
        port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        ticket_hex(hex, a->sin6_addr.s6_addr, 16);
        port = ntohs(a->sin6_port);
    } else {
        return false;
    }
    if (!rudp_state_dir(dir, sizeof(dir) - 8))
        return false;
    strcat(dir, "/tickets");
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return false;
    snprintf(path, PATH_MAX, "%s/%d-%s-%d", dir, ss.ss_family == AF_INET ? 4 : 6, hex,
             port);
    return true;
}

bool rudp_ticket_load(const rudp_addr *server, rudp_ticket *t) {
    char path[PATH_MAX];
    uint8_t buf[TICKET_FILE_LEN + 1];

    if (!ticket_path(server, path))
        return false;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = RUDP_REAL(read)(fd, buf, sizeof(buf));
    RUDP_REAL(close)(fd);
    if (n != (ssize_t)TICKET_FILE_LEN)
        return false;
    memcpy(t->psk, buf, sizeof(t->psk));
    memcpy(t->blob, buf + sizeof(t->psk), sizeof(t->blob));
    memset(buf, 0, sizeof(buf));
    return true;
}

void rudp_ticket_save(const rudp_addr *server, const rudp_ticket *t) {
    char path[PATH_MAX], tmp[PATH_MAX + 16];
    uint8_t buf[TICKET_FILE_LEN];

    if (!ticket_path(server, path) ||
        snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid()) >= (int)sizeof(tmp))
        return;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    memcpy(buf, t->psk, sizeof(t->psk));
    memcpy(buf + sizeof(t->psk), t->blob, sizeof(t->blob));
    bool ok = RUDP_REAL(write)(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf);
    memset(buf, 0, sizeof(buf));
    if (RUDP_REAL(close)(fd) == 0 && ok && rename(tmp, path) == 0)
        return;
    unlink(tmp);
}
