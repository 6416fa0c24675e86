/* test_deadlock.c - sends that would wait on a cycle of full mailboxes
 * fail with TR_EDEADLK instead of hanging. */
#include <stdatomic.h>

#include "support.h"

#define MAXRING 3
static tr_ref ring[MAXRING];
static int ring_len;
static tr_mailbox *done_mb;
static atomic_int ready;

/* Waits for go, and for every other actor to have had its go, then sends
 * two messages to the next actor in the ring, whose mailbox holds one and
 * which never takes any while it sends: the second send must wait, and
 * with every actor waiting that is a cycle.  (Without the wait for the
 * others, one actor could be through with its sends before the next had
 * its go, and there was no cycle: 1 run in 10.)  After its own sends it
 * drains its mailbox, so others can go on. */
static int sender(tr_actor *self)
{
    uintptr_t me = (uintptr_t)tr_actor_state(self);
    tr_system *sys = tr_actor_system(self);
    tr_msg m;
    if (tr_recv(&m, tr_after_ms(TEST_DEADLINE_MS)))
        return -1;
    atomic_fetch_add(&ready, 1);
    while (atomic_load(&ready) < ring_len)
        tr_yield();
    tr_ref next = ring[(me + 1) % (uintptr_t)ring_len];
    int rc[2];
    for (int i = 0; i < 2; i++) {
        tr_msg out = tr_msg_words(7, me, (uint64_t)i);
        rc[i] = tr_send(sys, next, &out, tr_after_ms(TEST_DEADLINE_MS));
    }
    /* Make room for whoever still waits on us, then report. */
    while (tr_recv(&m, tr_after_ms(200)) == 0)
        ;
    test_send(sys, tr_mailbox_ref(done_mb), 1, (uint64_t)-rc[0], (uint64_t)-rc[1]);
    return 0;
}

static void run_cycle(int len)
{
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 8, &done_mb), 0);
    ring_len = len;
    atomic_store(&ready, 0);
    for (uintptr_t i = 0; i < (uintptr_t)len; i++) {
        tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
        o.mailbox_capacity = 1;
        o.state = (void *)i;
        assert_int_equal(tr_spawn_loop(sys, sender, &o, &ring[i]), 0);
    }
    for (int i = 0; i < len; i++) {
        tr_msg go = tr_msg_words(1, 0, 0);
        assert_int_equal(tr_send(sys, ring[i], &go, tr_after_ms(TEST_DEADLINE_MS)), 0);
    }
    int deadlocks = 0;
    for (int i = 0; i < len; i++) {
        tr_msg r = test_recv(done_mb);
        /* Each send either waits until the cycle is broken or is the
         * one that would close it (which one depends on how the go
         * messages and the first sends interleave).  None times out. */
        for (int k = 0; k < 2; k++) {
            int rc = -(int)(k ? r.b : r.a);
            assert_true(rc == 0 || rc == TR_EDEADLK);
            deadlocks += rc == TR_EDEADLK;
        }
    }
    assert_true(deadlocks >= 1);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

static void test_cycle_of_two_full_mailboxes_fails_with_edeadlk(void **state)
{
    (void)state;
    for (int i = 0; i < 20 / TEST_SCALE; i++)
        run_cycle(2);
}

static void test_cycle_of_three_full_mailboxes_fails_with_edeadlk(void **state)
{
    (void)state;
    for (int i = 0; i < 20 / TEST_SCALE; i++)
        run_cycle(3);
}

/* ---- a chain that is not a cycle just waits --------------------------- */

static tr_ref slow_ref;
static atomic_int slow_taken;

static int slow(tr_actor *self, tr_msg *m)
{
    (void)self;
    (void)m;
    atomic_fetch_add(&slow_taken, 1);
    return 0;
}

static int eager(tr_actor *self)
{
    tr_system *sys = tr_actor_system(self);
    for (int i = 0; i < 500; i++) {
        tr_msg m = tr_msg_words(3, (uint64_t)i, 0);
        int rc = tr_send(sys, slow_ref, &m, tr_after_ms(TEST_DEADLINE_MS));
        if (rc)
            return test_send(sys, tr_mailbox_ref(done_mb), 2, (uint64_t)-rc, 0), 0;
    }
    test_send(sys, tr_mailbox_ref(done_mb), 2, 0, 0);
    return 0;
}

static void test_waiting_on_a_busy_actor_is_not_a_deadlock(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 8, &done_mb), 0);
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.mailbox_capacity = 1;
    assert_int_equal(tr_spawn(sys, slow, &o, &slow_ref), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(tr_spawn_loop(sys, eager, NULL, NULL), 0);
    for (int i = 0; i < 4; i++) {
        tr_msg r = test_recv(done_mb);
        assert_int_equal(r.a, 0);
    }
    while (atomic_load(&slow_taken) < 2000)
        ;
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cycle_of_two_full_mailboxes_fails_with_edeadlk),
        cmocka_unit_test(test_cycle_of_three_full_mailboxes_fails_with_edeadlk),
        cmocka_unit_test(test_waiting_on_a_busy_actor_is_not_a_deadlock),
    };
    return cmocka_run_group_tests_name("deadlock", tests, NULL, NULL);
}
