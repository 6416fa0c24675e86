/* test_cleanup.c - tr_defer: handlers run once each, newest first, on
 * every way an actor can end, and in-flight payloads are not lost. */
#include <stdatomic.h>
#include <unistd.h>

#include "support.h"

/* Each handler appends its number to a log; the test reads it back. */
static _Atomic int log_len;
static _Atomic int log_of[64]; /* written by handlers on workers */
static _Atomic int runs_as_self; /* handlers that saw tr_self() == owner */

typedef struct note {
    int id;
    tr_ref owner;
} note;

static void record(void *arg)
{
    note *n = arg;
    int at = atomic_fetch_add(&log_len, 1);
    if (at < 64)
        atomic_store(&log_of[at], n->id);
    if (n->owner && tr_self() == n->owner)
        atomic_fetch_add(&runs_as_self, 1);
}

static void reset_log(void)
{
    atomic_store(&log_len, 0);
    atomic_store(&runs_as_self, 0);
}

static void expect_log(const int *want, int n)
{
    assert_int_equal(atomic_load(&log_len), n);
    for (int i = 0; i < n; i++)
        assert_int_equal(atomic_load(&log_of[i]), want[i]);
}

/* Waits until the actor with ref `r` is gone. */
static void wait_gone(tr_system *sys, tr_ref r)
{
    tr_msg m = tr_msg_words(99, 0, 0);
    for (int i = 0; i < 20000 && tr_try_send(sys, r, &m) != TR_ENOACTOR; i++)
        usleep(1000);
}

/* ---- normal return, tr_exit, handler stop, error --------------------------- */

static note notes[8];

static int three_then_return(tr_actor *self)
{
    for (int i = 0; i < 3; i++) {
        notes[i] = (note){i + 1, tr_actor_ref(self)};
        if (tr_defer(record, &notes[i]))
            return -1;
    }
    return 0;
}

static void nested(void *arg)
{
    (void)arg;
    /* Registered while the handlers run: it runs too, right away. */
    notes[5] = (note){6, 0};
    tr_defer(record, &notes[5]);
    record(&notes[4]);
}

static int exits_from_inside(tr_actor *self)
{
    notes[3] = (note){4, tr_actor_ref(self)};
    notes[4] = (note){5, 0};
    tr_defer(record, &notes[3]);
    tr_defer(nested, NULL);
    tr_exit(-7);
    return 0; /* not reached */
}

static int handler_stops(tr_actor *self, tr_msg *m)
{
    if (m->tag == 1) {
        notes[6] = (note){7, tr_actor_ref(self)};
        return tr_defer(record, &notes[6]);
    }
    return m->tag == 2 ? TR_STOP : -5;
}

static void test_handlers_run_newest_first_once_on_return_exit_and_stop(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    tr_ref r;

    reset_log();
    assert_int_equal(tr_spawn_loop(sys, three_then_return, NULL, &r), 0);
    wait_gone(sys, r);
    expect_log((int[]){3, 2, 1}, 3);
    assert_int_equal(atomic_load(&runs_as_self), 3);

    reset_log();
    assert_int_equal(tr_spawn_loop(sys, exits_from_inside, NULL, &r), 0);
    wait_gone(sys, r);
    expect_log((int[]){5, 6, 4}, 3);

    for (uint64_t last = 2; last <= 3; last++) { /* TR_STOP, then an error */
        reset_log();
        assert_int_equal(tr_spawn(sys, handler_stops, NULL, &r), 0);
        tr_msg m = tr_msg_words(1, 0, 0);
        assert_int_equal(tr_send(sys, r, &m, TR_NOW), 0);
        m = tr_msg_words(last, 0, 0);
        assert_int_equal(tr_send(sys, r, &m, TR_NOW), 0);
        wait_gone(sys, r);
        expect_log((int[]){7}, 1);
        assert_int_equal(atomic_load(&runs_as_self), 1);
    }

    assert_int_equal(tr_defer(record, &notes[0]), TR_ECONTEXT);
    tr_system_free(sys);
}

/* ---- cancellation and system shutdown ------------------------------------- */

static _Atomic int cleaned, payloads_freed, registered, payloads_made;
static tr_ref full_ref;

static void count_cleanup(void *arg)
{
    (void)arg;
    atomic_fetch_add(&cleaned, 1);
}

static void count_payload(void *ptr, size_t len)
{
    (void)ptr;
    (void)len;
    atomic_fetch_add(&payloads_freed, 1);
}

static int waits_in_recv(tr_actor *self)
{
    (void)self;
    tr_defer(count_cleanup, NULL);
    tr_defer(count_cleanup, NULL);
    atomic_fetch_add(&registered, 2);
    tr_msg m;
    for (;;) {
        int rc = tr_recv(&m, TR_FOREVER);
        if (rc)
            return rc;
    }
}

/* Parks sending a payload to a full mailbox that nobody drains. */
static int waits_in_send(tr_actor *self)
{
    tr_defer(count_cleanup, NULL);
    atomic_fetch_add(&registered, 1);
    atomic_fetch_add(&payloads_made, 1);
    tr_msg m = tr_msg_buf(1, NULL, 0, count_payload);
    int rc = tr_send(tr_actor_system(self), full_ref, &m, TR_FOREVER);
    if (rc)
        tr_msg_release(&m);
    return rc;
}

/* Never takes from its own mailbox: it waits on another one. */
static int never_reads(tr_actor *self)
{
    tr_mailbox *other;
    if (tr_mailbox_new(tr_actor_system(self), 1, &other))
        return TR_ENOMEM;
    tr_msg m;
    return tr_mailbox_recv(other, &m, TR_FOREVER);
}

static void test_handlers_run_on_cancel_and_at_shutdown_and_parked_payloads_are_released(void **state)
{
    (void)state;
    atomic_store(&cleaned, 0);
    atomic_store(&payloads_freed, 0);
    atomic_store(&registered, 0);
    atomic_store(&payloads_made, 0);
    tr_system *sys = test_system(2);

    /* Cancelled in its receive: it returns, and its two handlers run. */
    tr_ref r;
    assert_int_equal(tr_spawn_loop(sys, waits_in_recv, NULL, &r), 0);
    usleep(20000);
    assert_int_equal(tr_cancel(sys, r), 0);
    wait_gone(sys, r);
    assert_int_equal(atomic_load(&cleaned), 2);
    assert_int_equal(atomic_load(&registered), 2);

    /* Left parked when the system stops: in receive, and in a send to a
     * full mailbox (its payload must not leak). */
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.mailbox_capacity = 1;
    assert_int_equal(tr_spawn_loop(sys, never_reads, &o, &full_ref), 0);
    tr_msg filler = tr_msg_buf(1, NULL, 0, count_payload);
    assert_int_equal(tr_send(sys, full_ref, &filler, TR_NOW), 0);
    const int parked = 50;
    for (int i = 0; i < parked; i++) {
        assert_int_equal(tr_spawn_loop(sys, waits_in_recv, NULL, NULL), 0);
        assert_int_equal(tr_spawn_loop(sys, waits_in_send, NULL, NULL), 0);
    }
    /* Most will be parked by now, some may not have run at all: either
     * way each handler registered runs once and each payload made is
     * released once. */
    usleep(50000);
    tr_system_free(sys);
    assert_true(atomic_load(&registered) > 2);
    assert_int_equal(atomic_load(&cleaned), atomic_load(&registered));
    assert_int_equal(atomic_load(&payloads_freed), 1 + atomic_load(&payloads_made));
}

/* ---- the spawn option: a handler for an actor that may never run ------- */

static _Atomic int spawn_cleaned;

static void count_spawn_cleanup(void *arg)
{
    atomic_fetch_add(&spawn_cleaned, (int)(intptr_t)arg);
}

static int returns_at_once(tr_actor *self)
{
    (void)self;
    return 0;
}

static int never_gets_a_message(tr_actor *self, tr_msg *m)
{
    (void)self;
    (void)m;
    return 0;
}

static void test_spawn_cleanup_runs_once_whether_or_not_the_actor_ran(void **state)
{
    (void)state;
    atomic_store(&spawn_cleaned, 0);
    tr_system *sys = test_system(1);
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.cleanup = count_spawn_cleanup;
    o.cleanup_arg = (void *)(intptr_t)1;
    tr_ref r;
    assert_int_equal(tr_spawn_loop(sys, returns_at_once, &o, &r), 0);
    while (atomic_load(&spawn_cleaned) < 1)
        usleep(1000);
    /* A handler actor that never gets a message never runs: its handler
     * runs when the system stops. */
    o.cleanup_arg = (void *)(intptr_t)10;
    assert_int_equal(tr_spawn(sys, never_gets_a_message, &o, &r), 0);
    tr_system_free(sys);
    assert_int_equal(atomic_load(&spawn_cleaned), 11);
}

/* ---- handlers that block, then tr_exit ----------------------------------- */

static _Atomic int yielded_cleanups;
static tr_mailbox *ended_mb;

/* Yields many times, which moves the actor between workers, before the
 * actor leaves its stack for good in tr_exit. */
static void yields_in_cleanup(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++)
        tr_yield();
    atomic_fetch_add(&yielded_cleanups, 1);
}

static int exits_after_blocking_cleanup(tr_actor *self)
{
    (void)self;
    if (tr_defer(yields_in_cleanup, NULL))
        return -1;
    tr_exit(7);
    return -2; /* never */
}

/* Reports each DOWN's reason to the main thread. */
static int down_reporter(tr_actor *self)
{
    tr_ref *refs = tr_actor_state(self);
    tr_system *sys = tr_actor_system(self);
    for (int i = 0; refs[i]; i++) {
        tr_ref mon;
        if (tr_monitor(refs[i], &mon))
            return -1;
    }
    test_send(sys, tr_mailbox_ref(ended_mb), 1, 0, 0);
    for (int i = 0; refs[i]; i++) {
        tr_msg m;
        tr_notice n;
        if (tr_recv(&m, tr_after_ms(TEST_DEADLINE_MS)) || tr_notice_read(&m, &n))
            return -2;
        test_send(sys, tr_mailbox_ref(ended_mb), 2, (uint64_t)(int64_t)n.reason, 0);
        tr_msg_release(&m);
    }
    return 0;
}

/* tr_exit after cleanup handlers that blocked (and so may have moved the
 * actor to another worker) leaves from whichever worker it is on now. */
static void test_tr_exit_after_cleanups_that_block_on_several_workers(void **state)
{
    (void)state;
    enum { N = 200 };
    tr_system *sys = test_system(4);
    assert_int_equal(tr_mailbox_new(sys, N + 4, &ended_mb), 0);
    atomic_store(&yielded_cleanups, 0);
    static tr_ref rounds[3][N + 1]; /* one each: a reporter reads its own to the end */
    for (int round = 0; round < 3; round++) {
        tr_ref *refs = rounds[round];
        tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
        o.state = refs;
        for (int i = 0; i < N; i++)
            assert_int_equal(tr_spawn_loop(sys, exits_after_blocking_cleanup, NULL, &refs[i]), 0);
        refs[N] = TR_REF_NONE;
        assert_int_equal(tr_spawn_loop(sys, down_reporter, &o, NULL), 0);
        tr_msg ready = test_recv(ended_mb);
        assert_int_equal(ready.tag, 1);
        for (int i = 0; i < N; i++) {
            tr_msg r = test_recv(ended_mb);
            assert_int_equal(r.tag, 2);
            /* 7, or TR_ENOACTOR for one that ended before it was watched */
            assert_true((int64_t)r.a == 7 || (int64_t)r.a == TR_ENOACTOR);
        }
    }
    assert_int_equal(atomic_load(&yielded_cleanups), 3 * N);
    tr_mailbox_free(ended_mb);
    tr_system_free(sys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handlers_run_newest_first_once_on_return_exit_and_stop),
        cmocka_unit_test(test_handlers_run_on_cancel_and_at_shutdown_and_parked_payloads_are_released),
        cmocka_unit_test(test_spawn_cleanup_runs_once_whether_or_not_the_actor_ran),
        cmocka_unit_test(test_tr_exit_after_cleanups_that_block_on_several_workers),
    };
    return cmocka_run_group_tests_name("cleanup", tests, NULL, NULL);
}
