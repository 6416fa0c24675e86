/* test_watchdog.c - an actor that runs too long without yielding is
 * reported once per such stretch; one that yields, waits, or takes
 * messages, is not. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

static pthread_mutex_t lines_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_line[256];
static atomic_int nlines;

static void capture(void *arg, const char *line)
{
    (void)arg;
    pthread_mutex_lock(&lines_lock);
    strncpy(last_line, line, sizeof last_line - 1);
    pthread_mutex_unlock(&lines_lock);
    atomic_fetch_add(&nlines, 1);
}

static atomic_int handled;

/* Spins for the number of ms in the message, yielding every ms if asked. */
static int busy(tr_actor *self, tr_msg *m)
{
    (void)self;
    int64_t until = tr_now() + (int64_t)m->a * 1000000;
    while (tr_now() < until)
        if (m->b)
            tr_yield();
    atomic_fetch_add(&handled, 1);
    return 0;
}

/* A system whose watchdog reports to `capture`, the counts at 0. */
static tr_system *watched_system(void)
{
    atomic_store(&nlines, 0);
    atomic_store(&handled, 0);
    tr_config cfg = TR_CONFIG_INIT;
    cfg.workers = 2;
    cfg.watchdog_ns = 20 * 1000000; /* 20 ms */
    cfg.log = capture;
    tr_system *sys;
    assert_int_equal(tr_system_new(&cfg, &sys), 0);
    return sys;
}

/* Send `n` messages of `ms` ms each, wait until they are handled, and
 * give the watchdog time to report. */
static void run(tr_system *sys, tr_ref r, int n, uint64_t ms, uint64_t yields)
{
    int want = atomic_load(&handled) + n;
    for (int i = 0; i < n; i++) {
        tr_msg m = tr_msg_words(1, ms, yields);
        assert_int_equal(tr_send(sys, r, &m, tr_after_ms(TEST_DEADLINE_MS)), 0);
    }
    for (int i = 0; i < 20000 && atomic_load(&handled) < want; i++)
        usleep(1000);
    assert_int_equal(atomic_load(&handled), want);
    usleep(30000); /* a report would have come by now */
}

static void test_a_long_turn_is_reported_once_and_a_yielding_one_never(void **state)
{
    (void)state;
    tr_system *sys = watched_system();
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.name = "hog";
    tr_ref r;
    assert_int_equal(tr_spawn(sys, busy, &o, &r), 0);

    run(sys, r, 1, 200, 1); /* 200 ms, yielding all the time: fine */
    assert_int_equal(atomic_load(&nlines), 0);

    run(sys, r, 1, 200, 0); /* 200 ms in one turn: one report */
    assert_int_equal(atomic_load(&nlines), 1);
    pthread_mutex_lock(&lines_lock);
    assert_non_null(strstr(last_line, "'hog'"));
    assert_non_null(strstr(last_line, "without reaching a blocking call"));
    pthread_mutex_unlock(&lines_lock);

    run(sys, r, 1, 200, 0); /* another such turn: another report */
    assert_int_equal(atomic_load(&nlines), 2);
    tr_system_free(sys);
}

/* Receives, and spins as `busy` does, until the system stops it. */
static int busy_loop(tr_actor *self)
{
    tr_msg m;
    while (tr_recv(&m, TR_FOREVER) == 0)
        busy(self, &m);
    return 0;
}

static void expect_no_report(void)
{
    if (atomic_load(&nlines)) {
        pthread_mutex_lock(&lines_lock);
        print_message("reported: %s\n", last_line);
        pthread_mutex_unlock(&lines_lock);
    }
    assert_int_equal(atomic_load(&nlines), 0);
}

/*
 * 60 ms of work queued at once, 1 ms a message, never leaves the turn: a
 * receive that finds mail does not park, and a handler actor's turn is a
 * batch of 64 calls.  Yet the actor reaches its receive, or returns from
 * its handler, every ms.  When the watchdog watched turns alone, each
 * was reported, 5 runs of 5.
 */
static void test_an_actor_that_keeps_taking_messages_is_not_reported(void **state)
{
    (void)state;
    tr_system *sys = watched_system();
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    tr_ref h, l;
    o.name = "handler";
    assert_int_equal(tr_spawn(sys, busy, &o, &h), 0);
    o.name = "loop";
    assert_int_equal(tr_spawn_loop(sys, busy_loop, &o, &l), 0);
    run(sys, h, 60, 1, 0);
    expect_no_report();
    run(sys, l, 60, 1, 0);
    expect_no_report();
    tr_system_free(sys);
}

static void test_watchdog_settings_are_checked(void **state)
{
    (void)state;
    tr_config cfg = TR_CONFIG_INIT;
    cfg.watchdog_ns = -1;
    tr_system *sys;
    assert_int_equal(tr_system_new(&cfg, &sys), TR_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_long_turn_is_reported_once_and_a_yielding_one_never),
        cmocka_unit_test(test_an_actor_that_keeps_taking_messages_is_not_reported),
        cmocka_unit_test(test_watchdog_settings_are_checked),
    };
    return cmocka_run_group_tests_name("watchdog", tests, NULL, NULL);
}
