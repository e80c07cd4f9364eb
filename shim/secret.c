/*
 * secret.c — the endpoint's own secret (rudp_settings.secret: stateless
 * reset and retry tokens; docs/SECURITY.md "Restarts").
 *
 * A server that restarts must recognise its old connection IDs to reset
 * them at once, as a restarted kernel's RST does: a client believes a
 * stateless reset only when its token is the MAC of the connection ID under
 * the secret the server had when it made the ID.  So the secret outlives
 * the process:
 *
 *   - with RUDP_KEY_FILE it is derived from the pre-shared key (nothing to
 *     store; every process with the key has it);
 *   - otherwise it is 32 random bytes in a file of the user's own, made
 *     once: $RUDP_STATE_DIR/secret, else $XDG_RUNTIME_DIR/rudp/secret,
 *     else /var/tmp/rudp-UID/secret.  The directory must be the user's,
 *     mode 0700 (it is made so), and nothing is followed through a link;
 *   - when neither works, a fresh random secret for this process (its
 *     connections then time out after a restart instead of being reset).
 */
#include "shim.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crypto.h"

/* Writes the state directory's path into |buf|; returns false when it
 * does not fit. */
static bool secret_dir(char *buf, size_t cap) {
    const char *d = getenv("RUDP_STATE_DIR"), *x = getenv("XDG_RUNTIME_DIR");
    int n;

    if (d && *d)
        n = snprintf(buf, cap, "%s", d);
    else if (x && *x)
        n = snprintf(buf, cap, "%s/rudp", x);
    else
        n = snprintf(buf, cap, "/var/tmp/rudp-%u", (unsigned)geteuid());
    return n > 0 && (size_t)n < cap;
}

/* Makes |dir| (0700) if it is missing; returns true when it is a directory
 * of this user that nobody else may enter or write. */
static bool secret_dir_ok(const char *dir) {
    struct stat st;

    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return false;
    return lstat(dir, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid() &&
           (st.st_mode & 077) == 0;
}

/* Reads exactly 32 bytes of the regular file |path| (no link followed). */
static bool secret_read(const char *path, uint8_t out[32]) {
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    bool ok = f && fread(out, 1, 32, f) == 32;

    if (f)
        fclose(f);
    else if (fd >= 0)
        RUDP_REAL(close)(fd);
    return ok;
}

/* Creates |path| with 32 fresh random bytes, atomically (another process
 * may race: the first link wins, and both read the winner). */
static void secret_make(const char *path) {
    char tmp[PATH_MAX];
    uint8_t bytes[32];
    int fd;
    FILE *f;

    if (snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid()) >= (int)sizeof(tmp))
        return;
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    f = fdopen(fd, "wb");
    rudp_random(bytes, sizeof(bytes));
    if (f && fwrite(bytes, 1, sizeof(bytes), f) == sizeof(bytes) && fflush(f) == 0)
        (void)link(tmp, path);
    if (f)
        fclose(f);
    else
        RUDP_REAL(close)(fd);
    unlink(tmp);
    memset(bytes, 0, sizeof(bytes));
}

bool rudp_state_dir(char *buf, size_t cap) {
    return secret_dir(buf, cap) && secret_dir_ok(buf);
}

/* Reads (making it first when missing) the stored secret; returns true. */
static bool secret_stored(uint8_t out[32]) {
    char dir[PATH_MAX - 16], path[PATH_MAX];

    if (!rudp_state_dir(dir, sizeof(dir)))
        return false;
    snprintf(path, sizeof(path), "%s/secret", dir);
    if (secret_read(path, out))
        return true;
    secret_make(path);
    return secret_read(path, out);
}

void rudp_secret_load(const rudp_shim_config *c, uint8_t out[32]) {
    if (c->psk_set) {
        rudp_hkdf_expand(out, 32, c->psk, (const uint8_t *)"endpoint secret", 15);
        return;
    }
    if (secret_stored(out))
        return;
    rudp_log(RUDP_LOG_DEBUG, "no state directory for the secret: restarts are not reset");
    rudp_random(out, 32);
}
