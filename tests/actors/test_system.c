/* test_system.c - systems: configuration, independence, shutdown. */
#include <pthread.h>
#include <stdatomic.h>

#include "support.h"

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

static void test_two_systems_work_independently(void **state)
{
    (void)state;
    tr_system *a = test_system(1), *b = test_system(2);
    uint64_t sum_a = 0, sum_b = 0;
    tr_spawn_opts oa = TR_SPAWN_OPTS_INIT, ob = TR_SPAWN_OPTS_INIT;
    oa.state = &sum_a;
    ob.state = &sum_b;
    tr_ref ra, rb;
    assert_int_equal(tr_spawn(a, adder, &oa, &ra), 0);
    assert_int_equal(tr_spawn(b, adder, &ob, &rb), 0);
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
    tr_spawn_opts oa = TR_SPAWN_OPTS_INIT, ob = TR_SPAWN_OPTS_INIT;
    oa.state = &sum_a;
    ob.state = &sum_b;
    tr_ref ra, rb;
    assert_int_equal(tr_spawn(a, adder, &oa, &ra), 0);
    assert_int_equal(tr_spawn(b, adder, &ob, &rb), 0);
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

static int tries_shutdown(tr_actor *self, tr_msg *m)
{
    (void)m;
    atomic_store(&shutdown_from_actor, tr_system_shutdown(tr_actor_system(self), TR_NOW));
    return TR_STOP;
}

static void test_shutdown_from_own_worker_is_econtext(void **state)
{
    (void)state;
    self_sys = test_system(1);
    tr_ref r;
    assert_int_equal(tr_spawn(self_sys, tries_shutdown, NULL, &r), 0);
    assert_int_equal(test_send(self_sys, r, 1, 0, 0), 0);
    tr_deadline end = tr_after_ms(TEST_DEADLINE_MS);
    while (atomic_load(&shutdown_from_actor) == 1 && tr_now() < end)
        ;
    assert_int_equal(atomic_load(&shutdown_from_actor), TR_ECONTEXT);
    tr_system_free(self_sys);
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
    };
    return cmocka_run_group_tests_name("system", tests, NULL, NULL);
}
