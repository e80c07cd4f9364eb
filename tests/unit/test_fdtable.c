/*
 * test_fdtable.c — unit tests for shim/fdtable.c: a page of entries goes
 * back to the system when its last entry is cleared (issue 13).
 *
 * Entries are published and cleared as the hooks do; mincore tells whether
 * a page's memory is resident (reading a page given back maps the zero
 * page, which mincore counts, so residency is checked before reads).  The first page is
 * kept; a page beyond it is given back when its last entry goes (not before, and not when
 * an entry was only replaced), reads as NONE afterwards, and takes entries again.
 */
#include <criterion/criterion.h>

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fdtable.h"

#define PAGE_FDS 256

/* Returns how many of the pages under the entries of fds [lo, lo + n) are
 * resident. */
static size_t resident(int lo, int n) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)rudp_fd_peek(lo) / page * page;
    uintptr_t b = (uintptr_t)(rudp_fd_peek(lo + n - 1) + 1);
    size_t count = 0, len = b - a;
    unsigned char vec[256];
    cr_assert_leq((len + page - 1) / page, sizeof(vec));
    cr_assert_eq(mincore((void *)a, len, vec), 0);
    for (size_t i = 0; i < (len + page - 1) / page; i++)
        count += vec[i] & 1;
    return count;
}

/* Publishes a TCP entry for |fd| whose local port is |port|. */
static void publish_tcp(int fd, uint16_t port) {
    rudp_fd_entry e;
    memset(&e, 0, sizeof(e));
    atomic_init(&e.kind, RUDP_FD_TCP);
    e.family = AF_INET;
    e.local.ss_family = AF_INET;
    ((struct sockaddr_in *)&e.local)->sin_port = port;
    cr_assert_eq(rudp_fd_publish(fd, &e), 0);
}

Test(fdtable, an_emptied_page_is_given_back) {
    for (int fd = PAGE_FDS; fd < 2 * PAGE_FDS; fd++)
        publish_tcp(fd, (uint16_t)fd);
    size_t full = resident(PAGE_FDS, PAGE_FDS);
    cr_assert_gt(full, 30);
    publish_tcp(PAGE_FDS + 7, 7); /* a replaced entry is still one entry */
    for (int fd = PAGE_FDS; fd < 2 * PAGE_FDS - 1; fd++)
        rudp_fd_clear(fd);
    cr_expect_eq(resident(PAGE_FDS, PAGE_FDS), full, "one entry left: the page stays");
    rudp_fd_entry snap;
    cr_expect_eq(rudp_fd_snapshot(2 * PAGE_FDS - 1, &snap), RUDP_FD_TCP);
    cr_expect_eq(((struct sockaddr_in *)&snap.local)->sin_port, 2 * PAGE_FDS - 1);
    rudp_fd_clear(2 * PAGE_FDS - 1);
    cr_expect_leq(resident(PAGE_FDS, PAGE_FDS), 2, "the page was given back");
    cr_expect_eq(rudp_fd_kind_of(PAGE_FDS + 3), RUDP_FD_NONE);
    publish_tcp(PAGE_FDS + 3, 33);
    cr_expect_eq(rudp_fd_snapshot(PAGE_FDS + 3, &snap), RUDP_FD_TCP);
    cr_expect_eq(((struct sockaddr_in *)&snap.local)->sin_port, 33);
}

Test(fdtable, the_first_page_is_kept) {
    for (int fd = 0; fd < PAGE_FDS; fd++)
        publish_tcp(fd, 1);
    size_t full = resident(0, PAGE_FDS);
    for (int fd = 0; fd < PAGE_FDS; fd++)
        rudp_fd_clear(fd);
    cr_expect_eq(resident(0, PAGE_FDS), full);
}

Test(fdtable, copy_and_clear_keep_the_count) {
    publish_tcp(3 * PAGE_FDS, 1);
    rudp_fd_copy(3 * PAGE_FDS, 3 * PAGE_FDS + 1); /* dup2 */
    rudp_fd_clear(3 * PAGE_FDS);
    cr_expect_eq(rudp_fd_kind_of(3 * PAGE_FDS + 1), RUDP_FD_TCP, "the copy lives on");
    rudp_fd_clear(3 * PAGE_FDS); /* twice: counted once */
    cr_expect_gt(resident(3 * PAGE_FDS, PAGE_FDS), 0);
    rudp_fd_copy(3 * PAGE_FDS + 5, 3 * PAGE_FDS + 1); /* dup2 of a plain fd onto it */
    cr_expect_eq(resident(3 * PAGE_FDS, PAGE_FDS), 0, "its last entry went");
    cr_expect_eq(rudp_fd_kind_of(3 * PAGE_FDS + 1), RUDP_FD_NONE);
}
