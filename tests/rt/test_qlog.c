/*
 * test_qlog.c — tests of engine/rt_qlog.c: with a qlog directory
 * configured, a transfer of known size between a client and a server in
 * this process leaves one file per session, and what they say matches the
 * sessions' own counters.
 *
 * The path loses datagrams: the runtime's sendmmsg (its system call table)
 * is wrapped to drop one datagram in LOSSY_EVERY, so the files must show
 * losses too; packets are kept to 1400 bytes, so there are thousands.  The exit flush ends
 * both traces (the process "leaves"), and each file is then read here: its JSON-SEQ
 * framing, its header, and its packet_sent records (count, bytes, stream bytes, the
 * stream's last byte and FIN) against its closing rudp:session_summary, which the runtime
 * copies from rudp_session_info.  Then tests/qlog/validate.py checks every
 * event against the schema and the same counts (when python3 is there).
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define QLOG_BYTES (4ull << 20) /* the client's stream */
#define LOSSY_EVERY 37          /* one datagram in this many is dropped */

TestSuite(qlog, .timeout = RTEST_TIMEOUT_S, .fini = rtest_cleanup);

static _Atomic uint64_t lossy_count;

/* The runtime's sendmmsg: every LOSSY_EVERY-th datagram is dropped (as if
 * sent); the others are sent one by one. */
static int lossy_sendmmsg(int fd, struct mmsghdr *m, unsigned n, int flags) {
    for (unsigned i = 0; i < n; i++) {
        m[i].msg_len = 0;
        if (atomic_fetch_add(&lossy_count, 1) % LOSSY_EVERY == LOSSY_EVERY - 1)
            continue;
        ssize_t r = sendmsg(fd, &m[i].msg_hdr, flags);
        if (r < 0)
            return i > 0 ? (int)i : -1;
        m[i].msg_len = (unsigned)r;
    }
    return (int)n;
}

/* What the test reads from one file. */
typedef struct qfile {
    char name[512];
    bool client;
    uint64_t records, sent, sent_bytes, lost, stream_bytes, stream_end;
    bool fin_at_end; /* a FIN on stream 1 at QLOG_BYTES */
    bool header_ok;
    char *summary; /* the last record's text */
} qfile;

/* Returns the unsigned number after "key": in |rec|, or UINT64_MAX. */
static uint64_t field(const char *rec, const char *key) {
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(rec, pat);
    return p ? strtoull(p + strlen(pat), NULL, 10) : UINT64_MAX;
}

/* Adds up the stream frames of a packet_sent record. */
static void count_streams(qfile *f, const char *rec) {
    const char *pat = "{\"frame_type\":\"stream\",";
    for (const char *p = strstr(rec, pat); p; p = strstr(p + 1, pat)) {
        uint64_t sid, off, len;
        int end = 0;
        if (sscanf(p,
                   "{\"frame_type\":\"stream\",\"stream_id\":%" SCNu64
                   ",\"offset\":%" SCNu64 ",\"length\":%" SCNu64 "%n",
                   &sid, &off, &len, &end) != 3)
            continue;
        f->stream_bytes += len;
        if (sid == 1 && off + len > f->stream_end)
            f->stream_end = off + len;
        if (sid == 1 && off + len == QLOG_BYTES &&
            strncmp(p + end, ",\"fin\":true", 11) == 0)
            f->fin_at_end = true;
    }
}

/* Reads one record (NUL-terminated, RS stripped). */
static void read_record(qfile *f, char *rec) {
    f->records++;
    if (f->records == 1) {
        f->header_ok =
            strstr(rec, "\"qlog_version\":\"0.3\"") &&
            strstr(rec, "\"qlog_format\":\"JSON-SEQ\"") &&
            strstr(rec, f->client ? "\"type\":\"client\"" : "\"type\":\"server\"");
        return;
    }
    if (strstr(rec, "\"name\":\"transport:packet_sent\"")) {
        f->sent++;
        f->sent_bytes += field(rec, "length"); /* raw.length comes first */
        count_streams(f, rec);
    } else if (strstr(rec, "\"name\":\"recovery:packet_lost\"")) {
        f->lost++;
    } else if (strstr(rec, "\"name\":\"rudp:session_summary\"")) {
        free(f->summary);
        f->summary = strdup(rec);
    }
}

/* Reads the file |path| record by record: each starts with RS and ends
 * with LF. */
static void read_qlog(qfile *f, const char *path) {
    FILE *fp = fopen(path, "r");
    cr_assert_not_null(fp, "%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, fp)) > 0) {
        cr_assert_eq(line[0], '\x1e', "%s: record %" PRIu64 " does not start with RS", path,
                     f->records + 1);
        cr_assert_eq(line[n - 1], '\n', "%s: a record does not end with LF", path);
        line[n - 1] = '\0';
        read_record(f, line + 1);
    }
    free(line);
    fclose(fp);
}

/* Finds the two files of the directory |dir|; returns how many it holds. */
static int find_files(const char *dir, qfile files[2]) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] == '.')
            continue;
        if (n < 2) {
            memset(&files[n], 0, sizeof(files[n]));
            snprintf(files[n].name, sizeof(files[n].name), "%s/%s", dir, de->d_name);
            files[n].client = strstr(de->d_name, "-client.sqlog") != NULL;
        }
        n++;
    }
    closedir(d);
    return n;
}

/* Moves QLOG_BYTES from a client to a server of this process and ends the
 * connection both ways; then lets the process "leave" (the exit flush),
 * which ends the traces. */
static void lossy_transfer(const char *dir) {
    rudp_rt_sys sys;
    rudp_settings set;
    rtest_sys_libc(&sys);
    sys.sendmmsg = lossy_sendmmsg;
    rudp_settings_default(&set);
    set.max_udp_payload = 1400; /* thousands of packets, not loopback's 64 KiB ones */
    rtest_engine_qlog(&sys, &set, dir);
    rtest_listener l;
    rtest_listen(&l, "127.0.0.1", 4);
    rtest_conn c;
    cr_assert_eq(rtest_connect(&c, (struct sockaddr *)&l.addr, sizeof(l.addr)), RUDP_OK);
    int sfd = rtest_accept(l.lfd, rtest_deadline(RTEST_PHASE_MS));
    cr_assert_geq(sfd, 0);
    rtest_set s;
    rtest_set_init(&s, 2);
    rtest_end *cli = rtest_set_add(&s, c.fd), *srv = rtest_set_add(&s, sfd);
    cli->tx_seed = srv->rx_seed = rtest_seed(7, 1, 0);
    cli->tx_len = srv->rx_len = QLOG_BYTES;
    cli->tx_fin = srv->tx_fin = true;
    cr_assert_eq(rtest_set_run(&s, rtest_deadline(RTEST_PHASE_MS)), 0, "%s", s.why);
    rtest_set_free(&s);
    rtest_unlisten(&l);
    rudp_rt_exit_flush();
}

/* Checks one file's packet_sent records against its summary. */
static void check_counts(const qfile *f) {
    cr_assert(f->header_ok, "%s: bad header", f->name);
    cr_assert_not_null(f->summary, "%s: no rudp:session_summary", f->name);
    cr_assert_eq(field(f->summary, "records_dropped"), 0);
    cr_assert_eq(f->sent, field(f->summary, "pkts_sent"), "%s: %" PRIu64 " packet_sent",
                 f->name, f->sent);
    cr_assert_eq(f->sent_bytes, field(f->summary, "bytes_sent"), "%s: bytes", f->name);
    cr_assert_eq(f->stream_bytes, field(f->summary, "stream_bytes_sent"), "%s", f->name);
    cr_assert_eq(f->lost, field(f->summary, "pkts_lost"), "%s: %" PRIu64 " packet_lost",
                 f->name, f->lost);
}

/* Runs tests/qlog/validate.py on |f| (which must show losses when
 * |lossy|); skipped without python3. */
static void run_validator(const qfile *f, bool lossy) {
    if (access("/usr/bin/python3", X_OK) != 0) {
        cr_log_warn("no /usr/bin/python3: validate.py not run");
        return;
    }
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        execl("/usr/bin/python3", "python3", QLOG_VALIDATOR,
              lossy ? "--expect-lost" : "--quiet", f->name, (char *)NULL);
        _exit(127);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "validate.py %s: status %d", f->name,
              st);
}

Test(qlog, a_lossy_transfer_writes_a_file_per_session) {
    char dir[] = "/tmp/rudp-qlog-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    lossy_transfer(dir);
    qfile files[2];
    cr_assert_eq(find_files(dir, files), 2, "want a client and a server file");
    cr_assert_neq(files[0].client, files[1].client);
    for (int i = 0; i < 2; i++) {
        struct stat st;
        cr_assert_eq(stat(files[i].name, &st), 0);
        cr_assert_eq(st.st_mode & 0777, 0600, "%s: mode %o", files[i].name, st.st_mode);
        read_qlog(&files[i], files[i].name);
        check_counts(&files[i]);
    }
    const qfile *c = files[0].client ? &files[0] : &files[1];
    cr_assert_geq(c->stream_bytes, QLOG_BYTES);
    cr_assert_eq(c->stream_end, QLOG_BYTES, "the stream ends at %" PRIu64, c->stream_end);
    cr_assert(c->fin_at_end, "no FIN at the last byte");
    cr_assert_gt(c->lost, 0, "no packet_lost on a lossy path");
    for (int i = 0; i < 2; i++)
        run_validator(&files[i], files[i].client); /* the server sends only ACKs */
    for (int i = 0; i < 2; i++) {
        unlink(files[i].name);
        free(files[i].summary);
    }
    rmdir(dir);
}

Test(qlog, a_file_that_cannot_be_made_stops_only_the_trace) {
    /* The directory is gone when the session starts: the file cannot be
     * created, which is logged, and the connection works as without qlog. */
    char dir[] = "/tmp/rudp-qlog-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    rudp_settings set;
    rudp_settings_default(&set);
    rtest_engine_qlog(NULL, &set, dir);
    cr_assert_eq(rmdir(dir), 0);
    rtest_listener l;
    rtest_listen(&l, "127.0.0.1", 4);
    rtest_conn c;
    cr_assert_eq(rtest_connect(&c, (struct sockaddr *)&l.addr, sizeof(l.addr)), RUDP_OK);
    int sfd = rtest_accept(l.lfd, rtest_deadline(RTEST_PHASE_MS));
    cr_assert_geq(sfd, 0);
    rtest_set s;
    rtest_set_init(&s, 2);
    rtest_end *cli = rtest_set_add(&s, c.fd), *srv = rtest_set_add(&s, sfd);
    cli->tx_seed = srv->rx_seed = rtest_seed(7, 2, 0);
    cli->tx_len = srv->rx_len = 1 << 20;
    cli->tx_fin = srv->tx_fin = true;
    cr_assert_eq(rtest_set_run(&s, rtest_deadline(RTEST_PHASE_MS)), 0, "%s", s.why);
    rtest_set_free(&s);
    rtest_unlisten(&l);
    rudp_rt_exit_flush();
}
