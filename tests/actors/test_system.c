/* test_system.c - systems: configuration, independence, shutdown. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "support.h"
#include "runtime.h"

static void test_bad_configs_are_rejected(void **state)
{
    (void)state;
    tr_system *sys = NULL;
    tr_config c = TR_CONFIG_INIT;
    c.mailbox_capacity = 0;
    assert_int_equal(tr_system_new(&c, &sys), TR_EINVAL);
    c = TR_CONFIG_INIT;
    c.batch = 0;
    assert_int_equal(tr_system_new(&c, &sys), TR_EINVAL);
    c = TR_CONFIG_INIT;
    c.stack_size = 4096;
    assert_int_equal(tr_system_new(&c, &sys), TR_EINVAL);
    c = TR_CONFIG_INIT;
    c.max_actors = 0;
    assert_int_equal(tr_system_new(&c, &sys), TR_EINVAL);
    c = TR_CONFIG_INIT;
    c.coalesce_ns = -1;
    assert_int_equal(tr_system_new(&c, &sys), TR_EINVAL);
    c.coalesce_ns = 10000001; /* over 10 ms */
    assert_int_equal(tr_system_new(&c, &sys), TR_EINVAL);
    c = TR_CONFIG_INIT;
    c.spawn_backlog = (1u << 30) + 1;
    assert_int_equal(tr_system_new(&c, &sys), TR_EINVAL);
    assert_int_equal(tr_system_new(NULL, NULL), TR_EINVAL);
    assert_null(sys);
    assert_int_equal(tr_system_new(NULL, &sys), 0);
    assert_true(tr_system_workers(sys) >= 1);
    tr_system_free(sys);
    tr_system_free(NULL);
}

/* ---- two systems run side by side ---------------------------------------- */

static int adder(tr_actor *self, tr_msg *m)
{
    uint64_t *sum = tr_actor_state(self);
    *sum += m->a;
    if (m->tag == 2)
        return test_send(tr_actor_system(self), m->from, 9, *sum, 0);
    return 0;
}

static tr_ref spawn_adder(tr_system *sys, uint64_t *sum)
{
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.state = sum;
    tr_ref r;
    assert_int_equal(tr_spawn(sys, adder, &o, &r), 0);
    return r;
}

static void test_two_systems_work_independently(void **state)
{
    (void)state;
    tr_system *a = test_system(1), *b = test_system(2);
    uint64_t sum_a = 0, sum_b = 0;
    tr_ref ra = spawn_adder(a, &sum_a), rb = spawn_adder(b, &sum_b);
    tr_mailbox *ma, *mb;
    assert_int_equal(tr_mailbox_new(a, 4, &ma), 0);
    assert_int_equal(tr_mailbox_new(b, 4, &mb), 0);
    for (uint64_t i = 1; i <= 1000; i++) {
        assert_int_equal(test_send(a, ra, 1, i, 0), 0);
        assert_int_equal(test_send(b, rb, 1, 2 * i, 0), 0);
    }
    assert_int_equal(test_send(a, ra, 2, 0, 0), 0);
    assert_int_equal(test_send(b, rb, 2, 0, 0), 0);
    assert_int_equal(test_recv(ma).a, 500500);
    assert_int_equal(test_recv(mb).a, 1001000);
    /* Stopping one leaves the other running. */
    tr_mailbox_free(ma);
    tr_system_free(a);
    assert_int_equal(test_send(b, rb, 2, 1, 0), 0);
    assert_int_equal(test_recv(mb).a, 1001001);
    tr_mailbox_free(mb);
    tr_system_free(b);
}

/* ---- a ref or timer handle of one system names nothing in another -------- */

static void test_refs_of_one_system_name_nothing_in_another(void **state)
{
    (void)state;
    tr_system *a = test_system(1), *b = test_system(1);
    uint64_t sum_a = 0, sum_b = 0;
    tr_ref ra = spawn_adder(a, &sum_a), rb = spawn_adder(b, &sum_b);
    /* The same slot in each table: only the generations tell them apart. */
    assert_int_equal((uint32_t)ra, (uint32_t)rb);
    tr_msg m = tr_msg_words(1, 5, 0);
    assert_int_equal(tr_send(b, ra, &m, TR_NOW), TR_ENOACTOR);
    assert_int_equal(tr_try_send(a, rb, &m), TR_ENOACTOR);
    assert_int_equal(tr_cancel(b, ra), TR_ENOACTOR);
    uint32_t depth, cap;
    assert_int_equal(tr_mailbox_depth(a, rb, &depth, &cap), TR_ENOACTOR);
    assert_int_equal(tr_send_after(b, ra, &m, tr_after_ms(10), NULL), TR_ENOACTOR);

    tr_timer_ref ta, tb;
    assert_int_equal(tr_send_after(a, ra, &m, tr_after_ms(TEST_DEADLINE_MS), &ta), 0);
    assert_int_equal(tr_send_after(b, rb, &m, tr_after_ms(TEST_DEADLINE_MS), &tb), 0);
    assert_int_equal(tr_timer_cancel(b, ta), TR_ENOTIMER);
    assert_int_equal(tr_timer_cancel(a, tb), TR_ENOTIMER);
    assert_int_equal(tr_timer_cancel(a, ta), 0);
    assert_int_equal(tr_timer_cancel(b, tb), 0);

    /* Each actor got nothing of the other's; both still run. */
    tr_mailbox *ma, *mb;
    assert_int_equal(tr_mailbox_new(a, 4, &ma), 0);
    assert_int_equal(tr_mailbox_new(b, 4, &mb), 0);
    assert_int_equal(test_send(a, ra, 2, 1, 0), 0);
    assert_int_equal(test_send(b, rb, 2, 2, 0), 0);
    assert_int_equal(test_recv(ma).a, 1);
    assert_int_equal(test_recv(mb).a, 2);
    tr_mailbox_free(ma);
    tr_mailbox_free(mb);
    tr_system_free(b);
    tr_system_free(a);
}

/* ---- shutdown releases every queued payload ------------------------------- */

static atomic_int freed;
static tr_mailbox *never_read;

static void count_free(void *ptr, size_t len)
{
    (void)len;
    free(ptr);
    atomic_fetch_add(&freed, 1);
}

/* Parks for good sending to a full mailbox, so its own mailbox fills up. */
static int parks_forever(tr_actor *self)
{
    tr_msg m = tr_msg_words(1, 0, 0);
    for (;;) {
        int rc = tr_send(tr_actor_system(self), tr_mailbox_ref(never_read), &m, TR_FOREVER);
        if (rc)
            return rc;
    }
}

static int never_handles(tr_actor *self, tr_msg *m)
{
    (void)self;
    /* Spin until shutdown: the rest of the mailbox stays queued. */
    tr_msg_release(m);
    int64_t until = tr_now() + 50 * 1000000LL;
    while (tr_now() < until)
        ;
    return 0;
}

static void test_shutdown_releases_queued_payloads_of_every_actor(void **state)
{
    (void)state;
    atomic_store(&freed, 0);
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 1, &never_read), 0);
    tr_ref parked, busy, idle;
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.mailbox_capacity = 31;
    assert_int_equal(tr_spawn_loop(sys, parks_forever, &o, &parked), 0);
    assert_int_equal(tr_spawn(sys, never_handles, &o, &busy), 0);
    assert_int_equal(tr_spawn(sys, never_handles, &o, &idle), 0);
    int sent = 0;
    tr_ref targets[2] = {parked, busy};
    for (int t = 0; t < 2; t++) {
        for (int i = 0; i < 31; i++) {
            tr_msg m = tr_msg_buf(1, malloc(16), 16, count_free);
            assert_int_equal(tr_send(sys, targets[t], &m, tr_after_ms(TEST_DEADLINE_MS)), 0);
            sent++;
        }
    }
    assert_int_equal(tr_system_shutdown(sys, tr_after_ms(TEST_DEADLINE_MS)), 0);
    assert_int_equal(atomic_load(&freed), sent);
    /* After shutdown: no spawns, sends find no actor. */
    assert_int_equal(tr_spawn(sys, never_handles, NULL, NULL), TR_ESHUTDOWN);
    tr_msg m = tr_msg_words(1, 0, 0);
    assert_int_equal(tr_send(sys, idle, &m, TR_NOW), TR_ENOACTOR);
    assert_int_equal(tr_system_shutdown(sys, TR_NOW), 0); /* idempotent */
    tr_mailbox_free(never_read);
    tr_system_free(sys);
}

/* ---- shutdown has a deadline --------------------------------------------- */

static atomic_int spinning;

static int spins_200ms(tr_actor *self, tr_msg *m)
{
    (void)self;
    (void)m;
    atomic_store(&spinning, 1);
    int64_t until = tr_now() + 200 * 1000000LL;
    while (tr_now() < until)
        ;
    return 0;
}

static void test_shutdown_times_out_while_a_handler_runs(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    tr_ref r;
    assert_int_equal(tr_spawn(sys, spins_200ms, NULL, &r), 0);
    assert_int_equal(test_send(sys, r, 1, 0, 0), 0);
    while (!atomic_load(&spinning))
        ;
    assert_int_equal(tr_system_shutdown(sys, tr_after_ms(10)), TR_ETIMEDOUT);
    assert_int_equal(tr_system_shutdown(sys, tr_after_ms(TEST_DEADLINE_MS)), 0);
    tr_system_free(sys);
}

/* ---- shutdown wakes a thread blocked in a send ---------------------------- */

static tr_system *blocked_sys;
static tr_ref blocked_target;
static int blocked_rc = 1;
static atomic_int blocked_started;

static void *blocked_sender(void *arg)
{
    (void)arg;
    tr_msg m = tr_msg_words(1, 0, 0);
    int rc = 0;
    atomic_store(&blocked_started, 1);
    while (rc == 0)
        rc = tr_send(blocked_sys, blocked_target, &m, TR_FOREVER);
    blocked_rc = rc;
    return NULL;
}

static void test_shutdown_wakes_threads_blocked_in_send(void **state)
{
    (void)state;
    atomic_store(&spinning, 0);
    blocked_sys = test_system(1);
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.mailbox_capacity = 1;
    assert_int_equal(tr_spawn(blocked_sys, spins_200ms, &o, &blocked_target), 0);
    pthread_t t;
    pthread_create(&t, NULL, blocked_sender, NULL);
    while (!atomic_load(&blocked_started))
        ;
    assert_int_equal(tr_system_shutdown(blocked_sys, tr_after_ms(TEST_DEADLINE_MS)), 0);
    pthread_join(t, NULL);
    assert_int_equal(blocked_rc, TR_ENOACTOR);
    tr_system_free(blocked_sys);
}

/* ---- shutdown from a worker is refused ------------------------------------ */

static tr_system *self_sys;
static atomic_int shutdown_from_actor = 1;

static atomic_int free_refusals;

static void count_free_refusals(void *arg, const char *line)
{
    (void)arg;
    if (strstr(line, "tr_system_free"))
        atomic_fetch_add(&free_refusals, 1);
}

/* Its own system's shutdown is refused, and its free, which freed the
 * system under the actor, is only logged. */
static int tries_shutdown(tr_actor *self, tr_msg *m)
{
    tr_system *sys = tr_actor_system(self);
    int rc = tr_system_shutdown(sys, TR_NOW);
    tr_system_free(sys);
    atomic_store(&shutdown_from_actor, rc);
    return test_send(sys, m->from, 2, 0, 0) ? -1 : TR_STOP;
}

static void test_shutdown_from_own_worker_is_econtext(void **state)
{
    (void)state;
    tr_config cfg = TR_CONFIG_INIT;
    cfg.workers = 1;
    cfg.log = count_free_refusals;
    assert_int_equal(tr_system_new(&cfg, &self_sys), 0);
    tr_mailbox *mb;
    assert_int_equal(tr_mailbox_new(self_sys, 4, &mb), 0);
    tr_ref r;
    assert_int_equal(tr_spawn(self_sys, tries_shutdown, NULL, &r), 0);
    assert_int_equal(test_send(self_sys, r, 1, 0, 0), 0);
    assert_int_equal(test_recv(mb).tag, 2); /* the system still runs */
    assert_int_equal(atomic_load(&shutdown_from_actor), TR_ECONTEXT);
    assert_int_equal(atomic_load(&free_refusals), 1);
    tr_mailbox_free(mb);
    tr_system_free(self_sys);
}

/* ---- another system's actor shuts a system down without blocking --------- */

static tr_system *far_sys;
static atomic_int far_send_rc = 1, far_stop_rc = 1, far_stop_calls;

/* Counted in far_sys while it sleeps between tries of a full mailbox
 * there: it lets go once it runs again and sees far_sys stopping. */
static int sends_into_far_full(tr_actor *self)
{
    tr_ref full = (tr_ref)(uintptr_t)tr_actor_state(self);
    tr_msg m = tr_msg_words(1, 0, 0);
    atomic_store(&far_send_rc, tr_send(far_sys, full, &m, tr_after_ms(TEST_DEADLINE_MS)));
    return 0;
}

static atomic_int far_free_early_stopped = 1;

static int stops_far_sys(tr_actor *self)
{
    (void)self;
    tr_deadline end = tr_after_ms(TEST_DEADLINE_MS);
    while (!atomic_load(&far_sys->foreign_waiters))
        if (tr_sleep(tr_after_ms(1)) || tr_now() > end)
            return -1;
    /* Too early: refused, and it leaves the system as it was. */
    tr_system_free(far_sys);
    atomic_store(&far_free_early_stopped, atomic_load(&far_sys->stopping));
    int rc;
    do
        atomic_fetch_add(&far_stop_calls, 1);
    while ((rc = tr_system_shutdown(far_sys, TR_FOREVER)) == TR_ETIMEDOUT &&
           !tr_sleep(tr_after_ms(1)) && tr_now() < end);
    if (rc == 0)
        tr_system_free(far_sys); /* shut down: a worker may free it */
    atomic_store(&far_stop_rc, rc);
    return 0;
}

/* The cleanup of an actor of far_sys runs at the shutdown, on the other
 * system's worker, and must see no actor of its own there. */
static atomic_int far_cleanup_ran;
static tr_ref far_cleanup_self = 1;
static int far_cleanup_recv_rc = 1;

/* A payload left in a thread's mailbox there, released by the free. */
static tr_ref far_leftover_self = 1;

static void far_leftover_free(void *ptr, size_t len)
{
    (void)len;
    free(ptr);
    far_leftover_self = tr_self();
}

static void far_cleanup(void *arg)
{
    (void)arg;
    far_cleanup_self = tr_self();
    tr_msg m;
    far_cleanup_recv_rc = tr_recv(&m, TR_NOW);
    atomic_store(&far_cleanup_ran, 1);
}


/*
 * Both actors share the one worker of their system.  The shutdown used to
 * wait there, for ever, for the sender to let go of far_sys, and the
 * sender needed that worker to run.
 */
static void test_another_systems_actor_shuts_down_without_blocking_its_worker(void **state)
{
    (void)state;
    tr_system *near = test_system(1);
    far_sys = test_system(1);
    tr_ref full = test_spawn_full_sleeper(far_sys);
    atomic_store(&far_cleanup_ran, 0);
    /* Registered at the spawn: it runs even if the actor never ran. */
    tr_spawn_opts with_cleanup = TR_SPAWN_OPTS_INIT;
    with_cleanup.cleanup = far_cleanup;
    assert_int_equal(tr_spawn_loop(far_sys, test_sleep_for_ever, &with_cleanup, NULL), 0);
    tr_mailbox *left; /* left alive: the actor's tr_system_free frees it */
    assert_int_equal(tr_mailbox_new(far_sys, 4, &left), 0);
    tr_msg leftover = tr_msg_buf(1, malloc(8), 8, far_leftover_free);
    assert_int_equal(tr_send(far_sys, tr_mailbox_ref(left), &leftover, TR_NOW), 0);
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.state = (void *)(uintptr_t)full;
    assert_int_equal(tr_spawn_loop(near, sends_into_far_full, &o, NULL), 0);
    assert_int_equal(tr_spawn_loop(near, stops_far_sys, NULL, NULL), 0);
    tr_deadline end = tr_after_ms(2 * TEST_DEADLINE_MS);
    while (atomic_load(&far_stop_rc) == 1)
        if (tr_now() > end)
            fail_msg("the shutdown from an actor never finished");
    assert_int_equal(atomic_load(&far_stop_rc), 0);
    assert_int_equal(atomic_load(&far_send_rc), TR_ESHUTDOWN);
    assert_true(atomic_load(&far_stop_calls) >= 2); /* the first could not finish */
    /* Its cleanup ran outside any actor, not as the one that stopped it. */
    assert_int_equal(atomic_load(&far_cleanup_ran), 1);
    assert_int_equal(far_cleanup_self, TR_REF_NONE);
    assert_int_equal(far_cleanup_recv_rc, TR_ECONTEXT);
    assert_int_equal(far_leftover_self, TR_REF_NONE);
    assert_int_equal(atomic_load(&far_free_early_stopped), 0);
    tr_system_free(near);
}

/* ---- a worker outside an actor does not block ----------------------------- */

static tr_system *dtor_sys;
static tr_ref dtor_full;
static atomic_int dtor_send_rc = 1, dtor_select_rc = 1, dtor_ran;
static tr_ref dtor_self = 1;

/* Run by the worker when the timer finds its target gone. */
static void sends_from_a_destructor(void *ptr, size_t len)
{
    (void)len;
    free(ptr);
    dtor_self = tr_self();
    tr_msg m = tr_msg_words(1, 0, 0);
    atomic_store(&dtor_send_rc, tr_send(dtor_sys, dtor_full, &m, tr_after_ms(TEST_DEADLINE_MS)));
    tr_select_case c = {.op = TR_SELECT_SEND, .to = dtor_full, .msg = m};
    atomic_store(&dtor_select_rc, tr_select(dtor_sys, &c, 1, 0, tr_after_ms(TEST_DEADLINE_MS)));
    atomic_store(&dtor_ran, 1);
}

static int stops_at_once(tr_actor *self, tr_msg *m)
{
    (void)self;
    (void)m;
    return TR_STOP;
}

static void test_a_send_on_a_worker_outside_an_actor_does_not_block(void **state)
{
    (void)state;
    dtor_sys = test_system(1);
    dtor_full = test_spawn_full_sleeper(dtor_sys);
    tr_ref quitter;
    assert_int_equal(tr_spawn(dtor_sys, stops_at_once, NULL, &quitter), 0);
    tr_msg late = tr_msg_buf(1, malloc(8), 8, sends_from_a_destructor);
    assert_int_equal(tr_send_after(dtor_sys, quitter, &late, tr_after_ms(50), NULL), 0);
    assert_int_equal(test_send(dtor_sys, quitter, 1, 0, 0), 0);
    tr_deadline end = tr_after_ms(2 * TEST_DEADLINE_MS);
    while (!atomic_load(&dtor_ran))
        if (tr_now() > end)
            fail_msg("the destructor never ran");
    assert_int_equal(dtor_self, TR_REF_NONE); /* it did run outside an actor */
    assert_int_equal(atomic_load(&dtor_send_rc), TR_ECONTEXT);
    assert_int_equal(atomic_load(&dtor_select_rc), TR_ECONTEXT);
    tr_system_free(dtor_sys);
}

/* ---- a system that cannot start its watchdog, made by an actor ---------- */

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
/* The sanitizers start threads their own way: only the plain build
 * replaces pthread_create, to fail the Nth call made on this thread. */
static __thread int fail_thread_start_at;

int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    static int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
    if (!real)
        real = (int (*)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *))
            dlsym(RTLD_NEXT, "pthread_create");
    if (fail_thread_start_at && --fail_thread_start_at == 0)
        return EAGAIN;
    return real(t, attr, fn, arg);
}

static int threads_now(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static atomic_int made_rc = 1;

/* One worker, then the watchdog: its start is the second call. */
static int makes_a_system_whose_watchdog_fails(tr_actor *self)
{
    (void)self;
    tr_config cfg = TR_CONFIG_INIT;
    cfg.workers = 1;
    cfg.watchdog_ns = 1000000000;
    tr_system *made = NULL;
    fail_thread_start_at = 2;
    int rc = tr_system_new(&cfg, &made);
    fail_thread_start_at = 0;
    atomic_store(&made_rc, made ? 1 : rc);
    return 0;
}
#endif

/* The failed system's worker is stopped and joined: it was left running,
 * as tr_system_free from a worker does nothing to a running system. */
static void test_a_system_made_by_an_actor_that_fails_to_start_goes_away(void **state)
{
    (void)state;
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    tr_system *sys = test_system(1);
    int before = threads_now();
    assert_int_equal(tr_spawn_loop(sys, makes_a_system_whose_watchdog_fails, NULL, NULL), 0);
    tr_deadline end = tr_after_ms(TEST_DEADLINE_MS);
    while (atomic_load(&made_rc) == 1)
        if (tr_now() > end)
            fail_msg("tr_system_new never returned");
    assert_int_equal(atomic_load(&made_rc), TR_ESYS);
    assert_int_equal(threads_now(), before);
    tr_system_free(sys);
#else
    skip();
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_configs_are_rejected),
        cmocka_unit_test(test_two_systems_work_independently),
        cmocka_unit_test(test_refs_of_one_system_name_nothing_in_another),
        cmocka_unit_test(test_shutdown_releases_queued_payloads_of_every_actor),
        cmocka_unit_test(test_shutdown_times_out_while_a_handler_runs),
        cmocka_unit_test(test_shutdown_wakes_threads_blocked_in_send),
        cmocka_unit_test(test_shutdown_from_own_worker_is_econtext),
        cmocka_unit_test(test_another_systems_actor_shuts_down_without_blocking_its_worker),
        cmocka_unit_test(test_a_send_on_a_worker_outside_an_actor_does_not_block),
        cmocka_unit_test(test_a_system_made_by_an_actor_that_fails_to_start_goes_away),
    };
    return cmocka_run_group_tests_name("system", tests, NULL, NULL);
}
