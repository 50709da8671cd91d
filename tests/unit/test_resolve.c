/*
 * test_resolve.c - rc_resolve (resolve.h): answers like getaddrinfo, and
 * gives up at the deadline when the DNS server never answers.
 *
 * The silent server: a child process makes its own mount namespace, puts a
 * resolv.conf there that names 127.0.0.97 (port 53, where it holds a UDP
 * socket it never reads), and looks a name up. That needs root
 * (CAP_SYS_ADMIN); otherwise the test is skipped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "resolve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct addrinfo stream_hints(void)
{
    struct addrinfo h;
    memset(&h, 0, sizeof(h));
    h.ai_family = AF_UNSPEC;
    h.ai_socktype = SOCK_STREAM;
    return h;
}

static void test_a_literal_address(void **state)
{
    (void)state;
    struct addrinfo h = stream_hints(), *res;
    bool to;

    assert_int_equal(rc_resolve("127.0.0.1", "6379", &h, rc_mono_ms() + 5000, &res, &to), 0);
    assert_false(to);
    assert_non_null(res);
    assert_int_equal(res->ai_family, AF_INET);
    const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)res->ai_addr;
    assert_int_equal(ntohs(sin->sin_port), 6379);
    assert_int_equal(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
    freeaddrinfo(res);
}

static void test_a_name_from_the_hosts_file(void **state)
{
    (void)state;
    struct addrinfo h = stream_hints(), *res;
    bool to;

    h.ai_family = AF_INET;
    assert_int_equal(rc_resolve("localhost", "80", &h, rc_mono_ms() + 5000, &res, &to), 0);
    assert_non_null(res);
    assert_int_equal(res->ai_family, AF_INET);
    freeaddrinfo(res);
}

static void test_a_bad_service_is_an_error_not_a_timeout(void **state)
{
    (void)state;
    struct addrinfo h = stream_hints(), *res;
    bool to;

    h.ai_flags = AI_NUMERICSERV;
    int rc = rc_resolve("127.0.0.1", "not-a-port", &h, rc_mono_ms() + 5000, &res, &to);
    assert_int_not_equal(rc, 0);
    assert_int_not_equal(rc, EAI_AGAIN);
    assert_false(to);
    assert_null(res);
}

static void test_pin_leaves_what_is_not_one_dns_name(void **state)
{
    (void)state;
    char hosts[64] = "untouched", addrs[64] = "untouched", err[RC_ERRBUF];
    static const char *const not_names[] = {
        "", "/var/run/postgresql", "@abstract", "10.1.2.3", "::1", "db1,db2"};

    assert_int_equal(
        rc_resolve_pin(NULL, rc_mono_ms() + 1000, hosts, sizeof(hosts), addrs, sizeof(addrs), err),
        0);
    for (size_t i = 0; i < sizeof(not_names) / sizeof(not_names[0]); i++) {
        assert_int_equal(rc_resolve_pin(not_names[i], rc_mono_ms() + 1000, hosts, sizeof(hosts),
                                        addrs, sizeof(addrs), err),
                         0);
        assert_string_equal(hosts, "untouched");
        assert_string_equal(addrs, "untouched");
    }
}

static void test_pin_a_name_gives_one_host_per_address(void **state)
{
    (void)state;
    char hosts[256], addrs[256], err[RC_ERRBUF] = "";
    size_t nh = 1, na = 1;

    assert_int_equal(rc_resolve_pin("localhost", rc_mono_ms() + 5000, hosts, sizeof(hosts), addrs,
                                    sizeof(addrs), err),
                     1);
    assert_non_null(strstr(addrs, "127.0.0.1"));
    for (const char *p = hosts; *p; p++)
        nh += *p == ',';
    for (const char *p = addrs; *p; p++)
        na += *p == ',';
    assert_int_equal(nh, na); /* libpq pairs them one to one */
    assert_int_equal(strncmp(hosts, "localhost", 9), 0);
    /* Room for one address only: that one. */
    assert_int_equal(
        rc_resolve_pin("localhost", rc_mono_ms() + 5000, hosts, 10, addrs, sizeof(addrs), err), 1);
    assert_string_equal(hosts, "localhost");
    assert_null(strchr(addrs, ','));
    /* No room at all: an error, never a cut address. */
    assert_int_equal(
        rc_resolve_pin("localhost", rc_mono_ms() + 5000, hosts, sizeof(hosts), addrs, 4, err), -1);
}

static void test_pin_an_unknown_name_is_an_error(void **state)
{
    (void)state;
    char hosts[256], addrs[256], err[RC_ERRBUF] = "";

    assert_int_equal(rc_resolve_pin("respcache-no-such-host.invalid", rc_mono_ms() + 3000, hosts,
                                    sizeof(hosts), addrs, sizeof(addrs), err),
                     -1);
    assert_non_null(strstr(err, "cannot resolve respcache-no-such-host.invalid"));
}

/* The child of the silent-server test: 0 passed, 77 cannot set up (no
 * root), other codes name the failed check. */
static int silent_child(void)
{
    static const char conf[] = "nameserver 127.0.0.97\noptions timeout:2 attempts:1\n";
    char path[] = "/tmp/rc-test-resolv-XXXXXX";
    struct sockaddr_in sa;
    struct addrinfo h = stream_hints(), *res;
    bool to;
    int fd, s, rc;
    int64_t t0, took;

    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        return 77;
    fd = mkstemp(path);
    if (fd < 0 || write(fd, conf, sizeof(conf) - 1) != (ssize_t)(sizeof(conf) - 1))
        return 77;
    close(fd);
    rc = mount(path, "/etc/resolv.conf", NULL, MS_BIND, NULL);
    unlink(path); /* the mount keeps it */
    if (rc != 0)
        return 77;
    s = socket(AF_INET, SOCK_DGRAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(53);
    sa.sin_addr.s_addr = inet_addr("127.0.0.97");
    if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        return 77;

    /* The resolver alone would wait 2 s; we wait 300 ms. */
    t0 = rc_mono_ms();
    rc = rc_resolve("respcache-resolve-test.example", "6379", &h, t0 + 300, &res, &to);
    took = rc_mono_ms() - t0;
    fprintf(stderr, "# silent server: rc %d (%s), timed out %d, %lld ms\n", rc, gai_strerror(rc),
            (int)to, (long long)took);
    if (rc != EAI_AGAIN || !to || res != NULL)
        return 1;
    if (took < 250 || took > 1500)
        return 2;
    /* The same for a database host name to pin (libpq would wait 2 s). */
    char hosts[256], addrs[256], err[RC_ERRBUF] = "";
    t0 = rc_mono_ms();
    rc = rc_resolve_pin("respcache-resolve-test.example", t0 + 300, hosts, sizeof(hosts), addrs,
                        sizeof(addrs), err);
    took = rc_mono_ms() - t0;
    fprintf(stderr, "# silent server, pin: rc %d (%s), %lld ms\n", rc, err, (long long)took);
    if (rc != -1 || strstr(err, "timed out") == NULL || took > 1500)
        return 5;
    /* The lookups glibc still runs are parked, and freed once they end. */
    if (rc_resolve_parked() > 2)
        return 3;
    for (int i = 0; i < 200 && rc_resolve_parked() > 0; i++)
        usleep(100 * 1000);
    if (rc_resolve_parked() != 0)
        return 4;
    close(s);
    return 0;
}

static void test_a_silent_dns_server_times_out_at_the_deadline(void **state)
{
    (void)state;
    int st;
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0)
        _exit(silent_child());
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) == 77)
        skip(); /* not root: no namespace of our own */
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* First, while this process has no resolver thread yet (the child
         * is a fork of a single-threaded process; unshare needs that). */
        cmocka_unit_test(test_a_silent_dns_server_times_out_at_the_deadline),
        cmocka_unit_test(test_a_literal_address),
        cmocka_unit_test(test_a_name_from_the_hosts_file),
        cmocka_unit_test(test_a_bad_service_is_an_error_not_a_timeout),
        cmocka_unit_test(test_pin_leaves_what_is_not_one_dns_name),
        cmocka_unit_test(test_pin_a_name_gives_one_host_per_address),
        cmocka_unit_test(test_pin_an_unknown_name_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
