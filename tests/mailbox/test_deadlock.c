/* test_deadlock.c - sends that would wait on a cycle of full mailboxes
 * fail with TR_EDEADLK instead of hanging. */
#include <stdatomic.h>

#include "support.h"
#include "runtime.h"

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

/* The test's thread as member 0 of the ring: the sends and the drain of
 * `sender`, on the thread's mailbox `mine`, each send waiting until
 * `deadline`.  Both sends' results go in rc[2]. */
static void thread_member(tr_system *sys, tr_mailbox *mine, tr_deadline deadline, int rc[2])
{
    atomic_fetch_add(&ready, 1);
    while (atomic_load(&ready) < ring_len)
        usleep(100);
    for (int i = 0; i < 2; i++) {
        tr_msg out = tr_msg_words(7, 0, (uint64_t)i);
        rc[i] = tr_send(sys, ring[1], &out, deadline);
    }
    tr_msg m;
    while (tr_mailbox_recv(mine, &m, tr_after_ms(200)) == 0)
        ;
}

/* A cycle of `len` senders, each with a mailbox of one.  thread_ms puts
 * the test's thread in it instead of its first actor, its sends waiting
 * that long (-1: TR_FOREVER); 0 leaves it out.  The results of the
 * senders' sends, two each, the thread's first, go in rc. */
static void run_cycle(int len, int thread_ms, int rc[2 * MAXRING])
{
    bool with_thread = thread_ms != 0;
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 8, &done_mb), 0);
    tr_mailbox *mine = NULL;
    ring_len = len;
    atomic_store(&ready, 0);
    int first = with_thread ? 1 : 0;
    if (with_thread) {
        assert_int_equal(tr_mailbox_new(sys, 1, &mine), 0);
        ring[0] = tr_mailbox_ref(mine);
    }
    for (uintptr_t i = (uintptr_t)first; i < (uintptr_t)len; i++) {
        tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
        o.mailbox_capacity = 1;
        o.state = (void *)i;
        assert_int_equal(tr_spawn_loop(sys, sender, &o, &ring[i]), 0);
    }
    for (int i = first; i < len; i++) {
        tr_msg go = tr_msg_words(1, 0, 0);
        assert_int_equal(tr_send(sys, ring[i], &go, tr_after_ms(TEST_DEADLINE_MS)), 0);
    }
    int nrc = 0;
    if (with_thread) {
        thread_member(sys, mine, thread_ms < 0 ? TR_FOREVER : tr_after_ms(thread_ms), rc);
        nrc = 2;
    }
    for (int i = first; i < len; i++) {
        tr_msg r = test_recv(done_mb);
        rc[nrc++] = -(int)r.a;
        rc[nrc++] = -(int)r.b;
    }
    if (mine)
        tr_mailbox_free(mine);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* Each send either waits until the cycle is broken or is the one that
 * would close it (which one depends on how the go messages and the first
 * sends interleave).  None times out. */
static void assert_cycle_broken_by_edeadlk(int len, int thread_ms)
{
    int rc[2 * MAXRING], deadlocks = 0;
    run_cycle(len, thread_ms, rc);
    for (int k = 0; k < 2 * len; k++) {
        assert_true(rc[k] == 0 || rc[k] == TR_EDEADLK);
        deadlocks += rc[k] == TR_EDEADLK;
    }
    assert_true(deadlocks >= 1);
}

static void test_cycle_of_two_full_mailboxes_fails_with_edeadlk(void **state)
{
    (void)state;
    for (int i = 0; i < 20 / TEST_SCALE; i++)
        assert_cycle_broken_by_edeadlk(2, 0);
}

static void test_cycle_of_three_full_mailboxes_fails_with_edeadlk(void **state)
{
    (void)state;
    for (int i = 0; i < 20 / TEST_SCALE; i++)
        assert_cycle_broken_by_edeadlk(3, 0);
}

/* A thread's send for ever waits like an actor's and is seen on the
 * chain: both used to wait until their deadlines (for ever). */
static void test_cycle_through_a_thread_fails_with_edeadlk(void **state)
{
    (void)state;
    for (int i = 0; i < 8 / TEST_SCALE; i++) {
        assert_cycle_broken_by_edeadlk(2, -1);
        assert_cycle_broken_by_edeadlk(3, -1);
    }
}

/* A thread's send with a deadline ends on its own, and so breaks the
 * cycle: it is not on the chain, and the actors' sends, which wait on
 * it, get through once it has timed out and drained its mailbox.  They
 * used to get TR_EDEADLK (test_stress, whose threads wait 1 ms at most). */
static void test_a_cycle_through_a_thread_with_a_deadline_breaks_on_its_own(void **state)
{
    (void)state;
    for (int i = 0; i < 4 / TEST_SCALE + 1; i++) {
        for (int len = 2; len <= 3; len++) {
            int rc[2 * MAXRING];
            run_cycle(len, 50, rc);
            assert_int_equal(rc[0], 0);
            assert_int_equal(rc[1], TR_ETIMEDOUT);
            for (int k = 2; k < 2 * len; k++)
                assert_int_equal(rc[k], 0);
        }
    }
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

/* ---- an owner that blocks in a send wakes the senders waiting on it ----- */

enum { SMALL = 7 }; /* a ring of 8: one take frees less than half */
static tr_ref owner_a, sender_b;
static tr_mailbox *owner_report;
static atomic_int b_result;

/* B: fills the mailbox `to` (in its state) and waits on one message
 * more, reports how its sends went, then takes what comes. */
static int fills_then_drains(tr_actor *self)
{
    tr_system *sys = tr_actor_system(self);
    tr_ref to = (tr_ref)(uintptr_t)tr_actor_state(self);
    int bad = 0;
    for (int i = 0; i <= SMALL; i++) {
        tr_msg m = tr_msg_words(2, (uint64_t)i, 0);
        int rc = tr_send(sys, to, &m, tr_after_ms(TEST_DEADLINE_MS));
        bad = rc ? rc : bad;
    }
    atomic_store(&b_result, bad ? bad : 1);
    tr_msg m;
    while (tr_recv(&m, tr_after_ms(200)) == 0)
        ;
    return 0;
}

/* B reports that every one of its sends went through. */
static void expect_b_sent_all(void)
{
    int64_t deadline = tr_after_ms(TEST_DEADLINE_MS);
    while (!atomic_load(&b_result) && tr_now() < deadline)
        usleep(1000);
    assert_int_equal(atomic_load(&b_result), 1);
}

/* Until `mb` is full and a sender waits on it. */
static bool wait_full_with_a_waiter(tr_system *sys, tr_ref ref, struct tr_mailbox *mb)
{
    int64_t deadline = tr_after_ms(TEST_DEADLINE_MS);
    uint32_t depth = 0;
    while (tr_mailbox_depth(sys, ref, &depth, NULL) || depth < SMALL ||
           !atomic_load(&mb->nwaiters)) {
        if (tr_now() > deadline)
            return false; /* the case under test never came about */
        (void)tr_sleep(tr_after_ns(100000)); /* an actor parks, a thread sleeps */
    }
    return true;
}

/* A: once B waits on its full mailbox, fills B's, takes one message (room
 * now, too little for the take to wake B), and sends to B. */
static int takes_one_then_sends(tr_actor *self)
{
    tr_system *sys = tr_actor_system(self);
    if (!wait_full_with_a_waiter(sys, tr_actor_ref(self), &self->mbox))
        return test_send(sys, tr_mailbox_ref(owner_report), 9, 2, 0);
    for (int i = 0; i < SMALL; i++) {
        tr_msg f = tr_msg_words(1, 0, 0);
        if (tr_try_send(sys, sender_b, &f))
            return test_send(sys, tr_mailbox_ref(owner_report), 9, 1, 0);
    }
    tr_msg m;
    int rc = tr_recv(&m, tr_after_ms(TEST_DEADLINE_MS));
    tr_msg out = tr_msg_words(3, 0, 0);
    if (!rc)
        rc = tr_send(sys, sender_b, &out, tr_after_ms(TEST_DEADLINE_MS));
    test_send(sys, tr_mailbox_ref(owner_report), 9, (uint64_t)(int64_t)rc, 0);
    while (tr_recv(&m, tr_after_ms(200)) == 0)
        ;
    return 0;
}

/*
 * A takes one message and then waits to send to B, who waits for the room
 * that take made.  That is no cycle: A's send must wake B first, and
 * both go on.  The take woke no one (a take wakes a sender only once half
 * the ring is free), A's send parked without looking, and its deadlock
 * check found B waiting on A: TR_EDEADLK (10 of 10).
 */
static void test_an_owner_sending_wakes_a_sender_waiting_on_its_room(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 4, &owner_report), 0);
    atomic_store(&b_result, 0);
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.mailbox_capacity = SMALL;
    assert_int_equal(tr_spawn_loop(sys, takes_one_then_sends, &o, &owner_a), 0);
    o.state = (void *)(uintptr_t)owner_a;
    assert_int_equal(tr_spawn_loop(sys, fills_then_drains, &o, &sender_b), 0);
    tr_msg r = test_recv(owner_report);
    assert_int_equal(r.tag, 9);
    assert_int_equal((int)(int64_t)r.a, 0);
    expect_b_sent_all();
    tr_mailbox_free(owner_report);
    tr_system_free(sys);
}

/* The same with a thread as the owner: it takes one message and blocks
 * sending to B, who waits on the thread's mailbox.  Both used to wait
 * until their deadlines (10 of 10). */
static void test_a_thread_sending_wakes_a_sender_waiting_on_its_room(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    tr_mailbox *mine;
    assert_int_equal(tr_mailbox_new(sys, SMALL, &mine), 0);
    atomic_store(&b_result, 0);
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.mailbox_capacity = SMALL;
    o.state = (void *)(uintptr_t)tr_mailbox_ref(mine);
    assert_int_equal(tr_spawn_loop(sys, fills_then_drains, &o, &sender_b), 0);
    assert_true(wait_full_with_a_waiter(sys, tr_mailbox_ref(mine), mine));
    for (int i = 0; i < SMALL; i++) {
        tr_msg f = tr_msg_words(1, 0, 0);
        assert_int_equal(tr_try_send(sys, sender_b, &f), 0);
    }
    tr_msg m = test_recv(mine);
    assert_int_equal(m.tag, 2);
    tr_msg out = tr_msg_words(3, 0, 0);
    assert_int_equal(tr_send(sys, sender_b, &out, tr_after_ms(TEST_DEADLINE_MS)), 0);
    expect_b_sent_all();
    tr_mailbox_free(mine);
    tr_system_free(sys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cycle_of_two_full_mailboxes_fails_with_edeadlk),
        cmocka_unit_test(test_cycle_of_three_full_mailboxes_fails_with_edeadlk),
        cmocka_unit_test(test_cycle_through_a_thread_fails_with_edeadlk),
        cmocka_unit_test(test_a_cycle_through_a_thread_with_a_deadline_breaks_on_its_own),
        cmocka_unit_test(test_waiting_on_a_busy_actor_is_not_a_deadlock),
        cmocka_unit_test(test_an_owner_sending_wakes_a_sender_waiting_on_its_room),
        cmocka_unit_test(test_a_thread_sending_wakes_a_sender_waiting_on_its_room),
    };
    return cmocka_run_group_tests_name("deadlock", tests, NULL, NULL);
}
