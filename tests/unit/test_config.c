/*
 * test_config.c — the shim's environment parser (shim/config.c).
 *
 * The pure parsers are driven directly; rudp_config_parse() gets a fake
 * environment; rudp_config_load() runs in a forked child with a real
 * environment and its stderr on a pipe, to check the exact one-line
 * message and exit status 2 of a bad value.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"

/* --- a fake environment: NULL-terminated name/value pairs --- */

static const char *fake_getenv(const char *name, void *ctx) {
    const char *const *kv = ctx;

    for (; kv[0] != NULL; kv += 2)
        if (strcmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

/* Parses the fake environment |kv|; returns the parser's result and leaves
 * the message in |err|. */
static int parse_env(const char *const *kv, rudp_shim_config *cfg, char *err) {
    err[0] = '\0';
    return rudp_config_parse(cfg, fake_getenv, (void *)kv, err, RUDP_CONFIG_ERR_MAX);
}

/* Asserts that NAME=VALUE alone is rejected with exactly |msg|. */
static void expect_bad(const char *name, const char *value, const char *msg) {
    const char *kv[] = {name, value, NULL};
    char err[RUDP_CONFIG_ERR_MAX];
    rudp_shim_config cfg;

    cr_assert_eq(parse_env(kv, &cfg, err), -1, "%s=%s accepted", name, value);
    cr_assert_str_eq(err, msg);
}

/* Asserts that NAME=VALUE alone is accepted. */
static void expect_good(const char *name, const char *value, rudp_shim_config *cfg) {
    const char *kv[] = {name, value, NULL};
    char err[RUDP_CONFIG_ERR_MAX];

    cr_assert_eq(parse_env(kv, cfg, err), 0, "%s=%s rejected: %s", name, value, err);
}

static bool port_set(const uint64_t *ports, unsigned p) {
    return (ports[p >> 6] >> (p & 63)) & 1u;
}

/* --- RUDP_PORTS --- */

Test(config, ports_single_range_and_list) {
    uint64_t ports[1024];

    cr_assert_eq(rudp_config_parse_ports("80,8000-8100,65535", ports), 0);
    cr_assert(port_set(ports, 80));
    cr_assert(port_set(ports, 8000));
    cr_assert(port_set(ports, 8050));
    cr_assert(port_set(ports, 8100));
    cr_assert(port_set(ports, 65535));
    cr_assert(!port_set(ports, 79));
    cr_assert(!port_set(ports, 81));
    cr_assert(!port_set(ports, 7999));
    cr_assert(!port_set(ports, 8101));
    cr_assert(!port_set(ports, 0));
}

Test(config, ports_edges) {
    uint64_t ports[1024];
    unsigned n = 0;

    cr_assert_eq(rudp_config_parse_ports("1-65535", ports), 0);
    for (unsigned p = 0; p < 65536; p++)
        n += port_set(ports, p);
    cr_assert_eq(n, 65535);
    cr_assert_eq(rudp_config_parse_ports("7-7", ports), 0);
    cr_assert(port_set(ports, 7));
    cr_assert_eq(rudp_config_parse_ports("080", ports), 0);
    cr_assert(port_set(ports, 80));
}

Test(config, ports_rejects) {
    static const char *const bad[] = {
        "abc", "0",      "65536",   "80,",         ",80",   "80,,81", "80 ",
        " 80", "80, 81", "80-",     "-80",         "90-80", "+80",    "80-90-100",
        "8o",  "0-10",   "1-65536", "99999999999", "80;81", "0x50",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t ports[1024];

        cr_assert_eq(rudp_config_parse_ports(bad[i], ports), -1, "'%s' accepted", bad[i]);
    }
}

Test(config, ports_message) {
    expect_bad("RUDP_PORTS", "abc",
               "rudp: bad value for RUDP_PORTS: 'abc' (expected a list like 80,8000-8100)");
    expect_bad(
        "RUDP_PORTS", "80, 81",
        "rudp: bad value for RUDP_PORTS: '80, 81' (expected a list like 80,8000-8100)");
}

Test(config, ports_unset_or_empty_is_passthrough) {
    const char *none[] = {NULL};
    const char *empty[] = {"RUDP_PORTS", "", NULL};
    char err[RUDP_CONFIG_ERR_MAX];
    rudp_shim_config cfg;

    cr_assert_eq(parse_env(none, &cfg, err), 0);
    cr_assert(!cfg.active);
    cr_assert_eq(parse_env(empty, &cfg, err), 0);
    cr_assert(!cfg.active);
    expect_good("RUDP_PORTS", "9000", &cfg);
    cr_assert(cfg.active);
    cr_assert(rudp_config_port_selected(&cfg, 9000));
    cr_assert(!rudp_config_port_selected(&cfg, 9001));
}

/* --- RUDP_HOSTS --- */

static struct sockaddr_in v4(const char *a) {
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(80)};

    cr_assert_eq(inet_pton(AF_INET, a, &in.sin_addr), 1);
    return in;
}

static struct sockaddr_in6 v6(const char *a) {
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(80)};

    cr_assert_eq(inet_pton(AF_INET6, a, &in6.sin6_addr), 1);
    return in6;
}

static bool matches(const rudp_shim_config *cfg, const void *sa) {
    return rudp_config_host_matches(cfg, sa, false);
}

Test(config, hosts_parse) {
    rudp_host_prefix h[RUDP_CONFIG_MAX_HOSTS];
    unsigned n;

    cr_assert_eq(rudp_config_parse_hosts("10.0.0.0/8,::1,fd00::/8,192.168.1.7", h, &n), 0);
    cr_assert_eq(n, 4);
    cr_assert_eq(h[0].family, AF_INET);
    cr_assert_eq(h[0].prefix, 8);
    cr_assert_eq(h[1].family, AF_INET6);
    cr_assert_eq(h[1].prefix, 128);
    cr_assert_eq(h[2].prefix, 8);
    cr_assert_eq(h[3].prefix, 32);
    /* Host bits beyond the prefix are cleared. */
    cr_assert_eq(rudp_config_parse_hosts("10.1.2.3/12", h, &n), 0);
    cr_assert_eq(h[0].addr[0], 10);
    cr_assert_eq(h[0].addr[1], 0);
    cr_assert_eq(h[0].addr[2], 0);
}

Test(config, hosts_rejects) {
    static const char *const bad[] = {
        "10.0.0.0/33", "::/129",      "10.0.0.0/", "/8",        "10.0.0",
        "10.0.0.0.0",  "host",        "10.0.0.1,", ",::1",      "::1 ",
        "10.0.0.1/-1", "10.0.0.1/+8", "fd00::/8x", "256.0.0.1",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rudp_host_prefix h[RUDP_CONFIG_MAX_HOSTS];
        unsigned n;

        cr_assert_eq(rudp_config_parse_hosts(bad[i], h, &n), -1, "'%s' accepted", bad[i]);
    }
    expect_bad("RUDP_HOSTS", "host",
               "rudp: bad value for RUDP_HOSTS: 'host' "
               "(expected a list like 10.0.0.0/8,::1,fd00::/8)");
}

Test(config, hosts_too_many) {
    char list[2048] = "";

    for (int i = 0; i <= RUDP_CONFIG_MAX_HOSTS; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s10.0.0.%d",
                 i ? "," : "", i);
    rudp_host_prefix h[RUDP_CONFIG_MAX_HOSTS];
    unsigned n;

    cr_assert_eq(rudp_config_parse_hosts(list, h, &n), -1);
    *strrchr(list, ',') = '\0';
    cr_assert_eq(rudp_config_parse_hosts(list, h, &n), 0);
    cr_assert_eq(n, RUDP_CONFIG_MAX_HOSTS);
}

Test(config, hosts_match) {
    rudp_shim_config cfg;
    struct sockaddr_in a = v4("10.20.30.40"), b = v4("11.0.0.1"), any4 = v4("0.0.0.0");
    struct sockaddr_in6 m = v6("::ffff:10.1.1.1"), l6 = v6("::1"), u = v6("fd12::1");
    struct sockaddr_in6 o = v6("fe80::1"), mb = v6("::ffff:11.0.0.1"), any6 = v6("::");

    expect_good("RUDP_HOSTS", "10.0.0.0/8,::1,fd00::/8", &cfg);
    cr_assert(matches(&cfg, &a));
    cr_assert(!matches(&cfg, &b));
    cr_assert(matches(&cfg, &m), "a v4-mapped address matches the v4 prefix");
    cr_assert(!matches(&cfg, &mb));
    cr_assert(matches(&cfg, &l6));
    cr_assert(matches(&cfg, &u));
    cr_assert(!matches(&cfg, &o));
    cr_assert(!matches(&cfg, &any4));
    cr_assert(rudp_config_host_matches(&cfg, (struct sockaddr *)&any4, true));
    cr_assert(rudp_config_host_matches(&cfg, (struct sockaddr *)&any6, true));
}

Test(config, hosts_odd_prefixes) {
    rudp_shim_config cfg;
    struct sockaddr_in in = v4("192.168.1.130"), out = v4("192.168.1.127");
    struct sockaddr_in6 mapped = v6("::ffff:192.168.1.200");

    expect_good("RUDP_HOSTS", "192.168.1.128/25", &cfg);
    cr_assert(matches(&cfg, &in));
    cr_assert(!matches(&cfg, &out));
    cr_assert(matches(&cfg, &mapped));
    /* An IPv6 prefix covering v4-mapped space matches plain IPv4 too. */
    expect_good("RUDP_HOSTS", "::ffff:0:0/96", &cfg);
    cr_assert(matches(&cfg, &out));
    expect_good("RUDP_HOSTS", "0.0.0.0/0", &cfg);
    cr_assert(matches(&cfg, &in));
}

Test(config, hosts_unset_matches_everything) {
    rudp_shim_config cfg;
    struct sockaddr_in6 o = v6("2001:db8::1");

    expect_good("RUDP_PORTS", "80", &cfg);
    cr_assert(matches(&cfg, &o));
}

/* --- the scalar variables --- */

Test(config, defaults) {
    const char *none[] = {NULL};
    char err[RUDP_CONFIG_ERR_MAX];
    rudp_shim_config cfg;
    rudp_settings s;

    rudp_settings_default(&s);
    cr_assert_eq(parse_env(none, &cfg, err), 0);
    cr_assert(!cfg.fastopen);
    cr_assert(!cfg.cc_set);
    cr_assert_eq(cfg.cc, s.cc);
    cr_assert_eq(cfg.log_level, 1);
    cr_assert_null(cfg.log_file);
    cr_assert_eq(cfg.log_fd, -1);
    cr_assert_eq(cfg.linger_ms, 5000);
    cr_assert_eq(cfg.idle_timeout_ms, 0, "no cap on silence unless asked");
    cr_assert_eq(cfg.nhosts, 0);
}

Test(config, fastopen) {
    rudp_shim_config cfg;

    expect_good("RUDP_FASTOPEN", "1", &cfg);
    cr_assert(cfg.fastopen);
    expect_good("RUDP_FASTOPEN", "0", &cfg);
    cr_assert(!cfg.fastopen);
    expect_bad("RUDP_FASTOPEN", "yes",
               "rudp: bad value for RUDP_FASTOPEN: 'yes' (expected 0 or 1)");
    expect_bad("RUDP_FASTOPEN", "2",
               "rudp: bad value for RUDP_FASTOPEN: '2' (expected 0 or 1)");
    expect_bad("RUDP_FASTOPEN", "01",
               "rudp: bad value for RUDP_FASTOPEN: '01' (expected 0 or 1)");
}

Test(config, cc) {
    rudp_shim_config cfg;

    expect_good("RUDP_CC", "newreno", &cfg);
    cr_assert_eq(cfg.cc, RUDP_CC_NEWRENO);
    cr_assert(cfg.cc_set);
    expect_good("RUDP_CC", "cubic", &cfg);
    cr_assert_eq(cfg.cc, RUDP_CC_CUBIC);
    expect_good("RUDP_CC", "bbr", &cfg);
    cr_assert_eq(cfg.cc, RUDP_CC_BBR);
    expect_bad("RUDP_CC", "vegas",
               "rudp: bad value for RUDP_CC: 'vegas' (expected newreno, cubic or bbr)");
    expect_bad("RUDP_CC", "Cubic",
               "rudp: bad value for RUDP_CC: 'Cubic' (expected newreno, cubic or bbr)");
}

Test(config, log_level) {
    static const char *const names[] = {"off", "error", "info", "debug"};
    rudp_shim_config cfg;
    char digit[2] = "0";

    for (int i = 0; i < 4; i++) {
        cr_assert_eq(rudp_config_parse_log(names[i]), i);
        digit[0] = (char)('0' + i);
        cr_assert_eq(rudp_config_parse_log(digit), i);
    }
    cr_assert_eq(rudp_config_parse_log("4"), -1);
    cr_assert_eq(rudp_config_parse_log("-1"), -1);
    cr_assert_eq(rudp_config_parse_log("verbose"), -1);
    expect_good("RUDP_LOG", "debug", &cfg);
    cr_assert_eq(cfg.log_level, 3);
    expect_good("RUDP_LOG", "0", &cfg);
    cr_assert_eq(cfg.log_level, 0);
    expect_bad(
        "RUDP_LOG", "loud",
        "rudp: bad value for RUDP_LOG: 'loud' (expected 0-3 or off, error, info, debug)");
}

Test(config, log_file_is_recorded_not_opened) {
    rudp_shim_config cfg;

    expect_good("RUDP_LOG_FILE", "/nonexistent/dir/log", &cfg);
    cr_assert_str_eq(cfg.log_file, "/nonexistent/dir/log");
    cr_assert_eq(cfg.log_fd, -1);
}

Test(config, qlog_dir_is_recorded_not_checked) {
    rudp_shim_config cfg;

    expect_good("RUDP_QLOG_DIR", "/nonexistent/dir", &cfg);
    cr_assert_str_eq(cfg.qlog_dir, "/nonexistent/dir");
    expect_good("RUDP_QLOG_DIR", "", &cfg);
    cr_assert_null(cfg.qlog_dir);
}

Test(config, qlog_dir_check) {
    char dir[] = "/tmp/rudp-test-qlog-XXXXXX", file[64], err[RUDP_CONFIG_ERR_MAX], cwd[512];
    char *abs;

    cr_assert_not_null(mkdtemp(dir));
    char *real = realpath(dir, NULL); /* /tmp may be a link */
    cr_assert_eq(rudp_config_check_qlog_dir(dir, &abs, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(abs, real);
    free(abs);
    /* A relative path is made absolute: the program may chdir later. */
    cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
    cr_assert_eq(chdir("/tmp"), 0);
    cr_assert_eq(rudp_config_check_qlog_dir(dir + 5, &abs, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(abs, real);
    free(abs);
    free(real);
    cr_assert_eq(chdir(cwd), 0);
    snprintf(file, sizeof(file), "%s/f", dir);
    close(open(file, O_CREAT | O_WRONLY, 0600));
    cr_assert_eq(rudp_config_check_qlog_dir(file, &abs, err, sizeof(err)), -1);
    cr_assert_null(abs);
    cr_assert_str_eq(strstr(err, "' ("), "' (not a directory)");
    unlink(file);
    rmdir(dir);
    cr_assert_eq(rudp_config_check_qlog_dir(dir, &abs, err, sizeof(err)), -1);
    cr_assert(strstr(err, "RUDP_QLOG_DIR") && strstr(err, dir), "%s", err);
}

Test(config, uint_parser) {
    uint32_t v;

    cr_assert_eq(rudp_config_parse_uint("0", 0, 10, &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(rudp_config_parse_uint("10", 0, 10, &v), 0);
    cr_assert_eq(v, 10);
    cr_assert_eq(rudp_config_parse_uint("11", 0, 10, &v), -1);
    cr_assert_eq(rudp_config_parse_uint("", 0, 10, &v), -1);
    cr_assert_eq(rudp_config_parse_uint("1 ", 0, 10, &v), -1);
    cr_assert_eq(rudp_config_parse_uint("-1", 0, 10, &v), -1);
    cr_assert_eq(rudp_config_parse_uint("+1", 0, 10, &v), -1);
    cr_assert_eq(rudp_config_parse_uint("1ms", 0, 10, &v), -1);
    cr_assert_eq(rudp_config_parse_uint("99999999999", 0, UINT32_MAX, &v), -1);
    cr_assert_eq(rudp_config_parse_uint("4294967295", 0, UINT32_MAX, &v), 0);
    cr_assert_eq(v, UINT32_MAX);
}

Test(config, linger_ms) {
    rudp_shim_config cfg;

    expect_good("RUDP_LINGER_MS", "0", &cfg);
    cr_assert_eq(cfg.linger_ms, 0);
    expect_good("RUDP_LINGER_MS", "3600000", &cfg);
    cr_assert_eq(cfg.linger_ms, 3600000);
    expect_bad("RUDP_LINGER_MS", "3600001",
               "rudp: bad value for RUDP_LINGER_MS: '3600001' "
               "(expected an integer from 0 to 3600000)");
    expect_bad(
        "RUDP_LINGER_MS", "5s",
        "rudp: bad value for RUDP_LINGER_MS: '5s' (expected an integer from 0 to 3600000)");
}

Test(config, idle_timeout_ms) {
    rudp_shim_config cfg;

    expect_good("RUDP_IDLE_TIMEOUT_MS", "1000", &cfg);
    cr_assert_eq(cfg.idle_timeout_ms, 1000);
    expect_good("RUDP_IDLE_TIMEOUT_MS", "86400000", &cfg);
    cr_assert_eq(cfg.idle_timeout_ms, 86400000);
    expect_bad("RUDP_IDLE_TIMEOUT_MS", "999",
               "rudp: bad value for RUDP_IDLE_TIMEOUT_MS: '999' "
               "(expected an integer from 1000 to 86400000)");
    expect_bad("RUDP_IDLE_TIMEOUT_MS", "86400001",
               "rudp: bad value for RUDP_IDLE_TIMEOUT_MS: '86400001' "
               "(expected an integer from 1000 to 86400000)");
}

Test(config, empty_values_keep_defaults) {
    const char *kv[] = {"RUDP_FASTOPEN",
                        "",
                        "RUDP_CC",
                        "",
                        "RUDP_LOG",
                        "",
                        "RUDP_LINGER_MS",
                        "",
                        "RUDP_IDLE_TIMEOUT_MS",
                        "",
                        "RUDP_HOSTS",
                        "",
                        "RUDP_LOG_FILE",
                        "",
                        NULL};
    char err[RUDP_CONFIG_ERR_MAX];
    rudp_shim_config cfg;

    cr_assert_eq(parse_env(kv, &cfg, err), 0, "%s", err);
    cr_assert_eq(cfg.linger_ms, 5000);
    cr_assert_eq(cfg.nhosts, 0);
    cr_assert_null(cfg.log_file);
}

Test(config, message_escapes_control_bytes_and_stays_one_line) {
    char long_value[600];

    expect_bad(
        "RUDP_PORTS", "80\n81",
        "rudp: bad value for RUDP_PORTS: '80\\x0a81' (expected a list like 80,8000-8100)");
    memset(long_value, '9', sizeof(long_value) - 1);
    long_value[sizeof(long_value) - 1] = '\0';
    {
        const char *kv[] = {"RUDP_PORTS", long_value, NULL};
        char err[RUDP_CONFIG_ERR_MAX];
        rudp_shim_config cfg;

        cr_assert_eq(parse_env(kv, &cfg, err), -1);
        cr_assert_not_null(strstr(err, "...' (expected"));
        cr_assert_null(strchr(err, '\n'));
    }
}

Test(config, every_variable_together) {
    const char *kv[] = {"RUDP_PORTS",
                        "6379,9000-9010",
                        "RUDP_HOSTS",
                        "127.0.0.0/8,::1",
                        "RUDP_FASTOPEN",
                        "1",
                        "RUDP_CC",
                        "newreno",
                        "RUDP_LOG",
                        "info",
                        "RUDP_LINGER_MS",
                        "250",
                        "RUDP_IDLE_TIMEOUT_MS",
                        "5000",
                        NULL};
    char err[RUDP_CONFIG_ERR_MAX];
    rudp_shim_config cfg;

    cr_assert_eq(parse_env(kv, &cfg, err), 0, "%s", err);
    cr_assert(cfg.active);
    cr_assert(rudp_config_port_selected(&cfg, 6379));
    cr_assert(rudp_config_port_selected(&cfg, 9010));
    cr_assert_eq(cfg.nhosts, 2);
    cr_assert(cfg.fastopen);
    cr_assert_eq(cfg.cc, RUDP_CC_NEWRENO);
    cr_assert_eq(cfg.log_level, 2);
    cr_assert_eq(cfg.linger_ms, 250);
    cr_assert_eq(cfg.idle_timeout_ms, 5000);
}

/* --- rudp_config_load() in a child process --- */

/* Runs rudp_config_load() in a child whose environment has only the pairs
 * of |kv| among RUDP_* variables; returns its exit status (or -1 when it
 * died by a signal) and its stderr in |out|. */
static int load_in_child(const char *const *kv, char *out, size_t outlen) {
    static const char *const vars[] = {
        "RUDP_PORTS",   "RUDP_HOSTS",    "RUDP_FASTOPEN",  "RUDP_CC",
        "RUDP_LOG",     "RUDP_LOG_FILE", "RUDP_LINGER_MS", "RUDP_IDLE_TIMEOUT_MS",
        "RUDP_QLOG_DIR"};
    int p[2], status;
    size_t got = 0;
    ssize_t n;
    pid_t pid;

    cr_assert_eq(pipe(p), 0);
    pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        rudp_shim_config cfg;

        dup2(p[1], 2);
        for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
            unsetenv(vars[i]);
        for (; kv[0] != NULL; kv += 2)
            setenv(kv[0], kv[1], 1);
        rudp_config_load(&cfg);
        _exit(cfg.active ? 10 : 11);
    }
    close(p[1]);
    while (got + 1 < outlen && (n = read(p[0], out + got, outlen - 1 - got)) > 0)
        got += (size_t)n;
    out[got] = '\0';
    close(p[0]);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(config, load_bad_value_exits_2_with_one_line) {
    const char *kv[] = {"RUDP_PORTS", "abc", NULL};
    char out[2048];

    cr_assert_eq(load_in_child(kv, out, sizeof(out)), 2);
    cr_assert_str_eq(
        out, "rudp: bad value for RUDP_PORTS: 'abc' (expected a list like 80,8000-8100)\n");
}

Test(config, load_each_bad_variable_exits_2) {
    static const char *const cases[][2] = {
        {"RUDP_PORTS", "0"},
        {"RUDP_HOSTS", "10.0.0.0/40"},
        {"RUDP_FASTOPEN", "true"},
        {"RUDP_CC", "vegas"},
        {"RUDP_LOG", "5"},
        {"RUDP_LINGER_MS", "-1"},
        {"RUDP_IDLE_TIMEOUT_MS", "0"},
        {"RUDP_QLOG_DIR", "/nonexistent/qlogs"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *kv[] = {cases[i][0], cases[i][1], NULL};
        char out[2048], head[256];

        cr_assert_eq(load_in_child(kv, out, sizeof(out)), 2, "%s", cases[i][0]);
        snprintf(head, sizeof(head), "rudp: bad value for %s: '%s' (", cases[i][0],
                 cases[i][1]);
        cr_assert_eq(strncmp(out, head, strlen(head)), 0, "got: %s", out);
        cr_assert_eq(strchr(out, '\n'), out + strlen(out) - 1, "not one line: %s", out);
    }
}

Test(config, load_good_values_return) {
    const char *on[] = {"RUDP_PORTS", "9000", "RUDP_CC", "cubic", NULL};
    const char *off[] = {NULL};
    char out[2048];

    cr_assert_eq(load_in_child(on, out, sizeof(out)), 10);
    cr_assert_str_eq(out, "");
    cr_assert_eq(load_in_child(off, out, sizeof(out)), 11);
    cr_assert_str_eq(out, "");
}

Test(config, load_opens_log_file_append) {
    char path[] = "/tmp/rudp-test-config-XXXXXX";
    int fd = mkstemp(path);
    const char *kv[] = {"RUDP_PORTS", "9000", "RUDP_LOG_FILE", path, NULL};
    char out[2048];

    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(load_in_child(kv, out, sizeof(out)), 10);
    cr_assert_str_eq(out, "");
    unlink(path);
}

Test(config, load_qlog_dir) {
    char dir[] = "/tmp/rudp-test-qlog-XXXXXX";
    const char *good[] = {"RUDP_PORTS", "9000", "RUDP_QLOG_DIR", dir, NULL};
    const char *bad[] = {"RUDP_PORTS", "9000", "RUDP_QLOG_DIR", "/etc/passwd", NULL};
    char out[2048];

    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(load_in_child(good, out, sizeof(out)), 10);
    cr_assert_str_eq(out, "");
    rmdir(dir);
    cr_assert_eq(load_in_child(bad, out, sizeof(out)), 2);
    cr_assert_str_eq(
        out, "rudp: bad value for RUDP_QLOG_DIR: '/etc/passwd' (not a directory)\n");
}

Test(config, load_unopenable_log_file_exits_2) {
    const char *kv[] = {"RUDP_PORTS", "9000", "RUDP_LOG_FILE", "/nonexistent/dir/rudp.log",
                        NULL};
    char out[2048];

    cr_assert_eq(load_in_child(kv, out, sizeof(out)), 2);
    cr_assert_str_eq(out, "rudp: bad value for RUDP_LOG_FILE: '/nonexistent/dir/rudp.log' "
                          "(cannot open it: No such file or directory)\n");
}
