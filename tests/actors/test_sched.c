/*
 * test_sched.c - where the scheduler puts an actor that becomes runnable
 * on a worker: the worker's next slot (sched.c), its run queue, or behind
 * it; and that what waits there is neither starved nor stuck.
 *
 * Each test runs twice: with next slots as the system found them (on
 * where Linux offers remote fences), and with them off, the fallback.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#include "support.h"
#include "runtime.h"

static tr_system *sched_system(unsigned workers, bool next_slots)
{
    tr_system *sys = test_system(workers);
    /* Before any actor exists, so no worker has looked at it yet. */
    if (!next_slots)
        sys->next_slots = false;
    return sys;
}

enum { TAG_BALL = 1, TAG_HI, TAG_GO, TAG_DONE };

/* ---- two actors that keep waking each other ----------------------------- */

enum { LAST_BALL = 1000 };

static tr_ref player_a, player_b, bystander;
static tr_mailbox *report_mb;
static atomic_uint last_ball;        /* the ball a player handled last */
static atomic_uint ball_at_bystander; /* last_ball when the bystander ran */

static int player(tr_actor *self, tr_msg *m)
{
    tr_system *sys = tr_actor_system(self);
    if (m->tag != TAG_BALL)
        return TR_EINVAL;
    atomic_store(&last_ball, (unsigned)m->a);
    if (m->a == LAST_BALL)
        return test_send(sys, tr_mailbox_ref(report_mb), TAG_DONE, m->a, 0);
    tr_ref peer = tr_actor_ref(self) == player_a ? player_b : player_a;
    int rc = test_send(sys, peer, TAG_BALL, m->a + 1, 0);
    /* The first turn also wakes the bystander, after the peer: the peer
     * takes the next slot and the bystander queues behind it, so the
     * peer's answer must queue behind the bystander. */
    if (!rc && m->a == 0)
        rc = test_send(sys, bystander, TAG_HI, 0, 0);
    return rc;
}

static int bystanding(tr_actor *self, tr_msg *m)
{
    (void)self;
    (void)m;
    atomic_store(&ball_at_bystander, atomic_load(&last_ball));
    return 0;
}

static void pair_lets_the_queue_run(bool next_slots)
{
    tr_system *sys = sched_system(1, next_slots);
    assert_int_equal(tr_mailbox_new(sys, 4, &report_mb), 0);
    assert_int_equal(tr_spawn(sys, player, NULL, &player_a), 0);
    assert_int_equal(tr_spawn(sys, player, NULL, &player_b), 0);
    assert_int_equal(tr_spawn(sys, bystanding, NULL, &bystander), 0);
    atomic_store(&ball_at_bystander, UINT32_MAX);

    tr_msg ball = tr_msg_words(TAG_BALL, 0, 0);
    assert_int_equal(tr_send(sys, player_a, &ball, tr_after_ms(TEST_DEADLINE_MS)), 0);
    tr_msg done = test_recv(report_mb);
    assert_int_equal(done.tag, TAG_DONE);
    assert_int_equal(done.a, LAST_BALL);
    /* One worker, so the order is exact, and the same with a next slot
     * as with the queue alone: the bystander runs right after ball 1.
     * (A slot used whatever the queue holds would keep the pair in it
     * until the last ball.) */
    assert_int_equal(atomic_load(&ball_at_bystander), 1);
    tr_mailbox_free(report_mb);
    tr_system_free(sys);
}

static void test_an_actor_woken_by_a_turn_does_not_jump_the_queue(void **state)
{
    (void)state;
    pair_lets_the_queue_run(true);
    pair_lets_the_queue_run(false);
}

/* ---- an actor that used up its batch goes behind ------------------------ */

static tr_ref greedy, waiting;
static atomic_uint greedy_handled, greedy_at_waiting;

static int greedy_handler(tr_actor *self, tr_msg *m)
{
    (void)self;
    (void)m;
    atomic_fetch_add(&greedy_handled, 1);
    return 0;
}

static int waiting_handler(tr_actor *self, tr_msg *m)
{
    (void)self;
    (void)m;
    atomic_store(&greedy_at_waiting, atomic_load(&greedy_handled));
    return 0;
}

/* Fills the greedy actor's mailbox with two batches, then wakes the other. */
static int feeder(tr_actor *self, tr_msg *m)
{
    tr_system *sys = tr_actor_system(self);
    for (uint32_t i = 0; i < 2 * sys->cfg.batch; i++)
        if (test_send(sys, greedy, TAG_HI, i, 0))
            return TR_EINVAL;
    int rc = test_send(sys, waiting, TAG_HI, 0, 0);
    if (!rc)
        rc = test_send(sys, (tr_ref)m->a, TAG_DONE, 0, 0);
    return rc;
}

static void batch_goes_behind(bool next_slots)
{
    tr_system *sys = sched_system(1, next_slots);
    tr_mailbox *mb;
    assert_int_equal(tr_mailbox_new(sys, 4, &mb), 0);
    atomic_store(&greedy_handled, 0);
    atomic_store(&greedy_at_waiting, UINT32_MAX);
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.mailbox_capacity = 4 * sys->cfg.batch;
    assert_int_equal(tr_spawn(sys, greedy_handler, &o, &greedy), 0);
    assert_int_equal(tr_spawn(sys, waiting_handler, NULL, &waiting), 0);
    tr_ref feed;
    assert_int_equal(tr_spawn(sys, feeder, NULL, &feed), 0);

    tr_msg go = tr_msg_words(TAG_GO, tr_mailbox_ref(mb), 0);
    assert_int_equal(tr_send(sys, feed, &go, tr_after_ms(TEST_DEADLINE_MS)), 0);
    assert_int_equal(test_recv(mb).tag, TAG_DONE);
    /* Nothing tells us when the last turns end: wait for them. */
    int64_t until = tr_now() + (int64_t)TEST_DEADLINE_MS * 1000000;
    while ((atomic_load(&greedy_handled) < 2 * sys->cfg.batch ||
            atomic_load(&greedy_at_waiting) == UINT32_MAX) && tr_now() < until)
        usleep(1000);
    assert_int_equal(atomic_load(&greedy_handled), 2 * sys->cfg.batch);
    /* The greedy actor ran first (it was woken first) and one batch
     * only, then went behind the actor woken after it. */
    assert_int_equal(atomic_load(&greedy_at_waiting), sys->cfg.batch);
    tr_mailbox_free(mb);
    tr_system_free(sys);
}

static void test_an_actor_that_used_its_batch_goes_behind(void **state)
{
    (void)state;
    batch_goes_behind(true);
    batch_goes_behind(false);
}

/* ---- what waits behind a long turn -------------------------------------- */

/*
 * The long turn wakes an actor, then computes until that actor has run
 * or 10 s have passed.  The other worker must take it: it looks for work
 * each time a ticking actor's short turn ends, and finds the long turn's
 * worker stuck with an actor waiting (in its next slot, or its queue).
 */
static tr_ref woken;
static atomic_long woken_tid, long_tid;
static atomic_bool woken_ran, long_saw_it, long_done;

static int woken_handler(tr_actor *self, tr_msg *m)
{
    (void)self;
    (void)m;
    atomic_store(&woken_tid, syscall(SYS_gettid));
    atomic_store(&woken_ran, true);
    return 0;
}

static int long_turn(tr_actor *self, tr_msg *m)
{
    (void)m;
    atomic_store(&long_tid, syscall(SYS_gettid));
    if (test_send(tr_actor_system(self), woken, TAG_HI, 0, 0))
        return TR_EINVAL;
    int64_t until = tr_now() + 10000000000ll;
    while (!atomic_load(&woken_ran) && tr_now() < until)
        ;
    atomic_store(&long_saw_it, atomic_load(&woken_ran));
    atomic_store(&long_done, true);
    return 0;
}

static int ticking(tr_actor *self, tr_msg *m)
{
    (void)self;
    (void)m;
    return 0;
}

static void long_turn_is_not_waited_for(bool next_slots)
{
    tr_system *sys = sched_system(2, next_slots);
    atomic_store(&woken_ran, false);
    atomic_store(&long_saw_it, false);
    atomic_store(&long_done, false);
    tr_ref longer, ticker;
    assert_int_equal(tr_spawn(sys, woken_handler, NULL, &woken), 0);
    assert_int_equal(tr_spawn(sys, long_turn, NULL, &longer), 0);
    assert_int_equal(tr_spawn(sys, ticking, NULL, &ticker), 0);
    tr_msg go = tr_msg_words(TAG_GO, 0, 0);
    assert_int_equal(tr_send(sys, longer, &go, tr_after_ms(TEST_DEADLINE_MS)), 0);
    while (!atomic_load(&long_done)) {
        tr_msg tick = tr_msg_words(TAG_HI, 0, 0);
        tr_try_send(sys, ticker, &tick); /* full now and then: no matter */
        usleep(20);
    }
    assert_true(atomic_load(&long_saw_it));
    assert_true(atomic_load(&woken_tid) != atomic_load(&long_tid));
    tr_system_free(sys);
}

static void test_an_actor_woken_by_a_long_turn_runs_elsewhere(void **state)
{
    (void)state;
    long_turn_is_not_waited_for(true);
    long_turn_is_not_waited_for(false);
}

int main(void)
{
    /* Say which half of each test the kernel let us run for real. */
    tr_system *probe = test_system(1);
    printf("next slots: %s\n", probe->next_slots ? "on (membarrier works)" : "off (no membarrier)");
    tr_system_free(probe);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_an_actor_woken_by_a_turn_does_not_jump_the_queue),
        cmocka_unit_test(test_an_actor_that_used_its_batch_goes_behind),
        cmocka_unit_test(test_an_actor_woken_by_a_long_turn_runs_elsewhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
