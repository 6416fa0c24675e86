/* test_supervisor.c - restart strategies with their exact sequences,
 * restart types, intensity escalating through two levels, backoff, the
 * children snapshot, and cancelling a three-level tree. */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "support.h"
#include "runtime.h"

/* ---- a journal of what children did, in order ------------------------------ */

#define JOURNAL 256
static _Atomic int journal_len;
static _Atomic int journal[JOURNAL];    /* +k+1: child k started; -(k+1): k ended */
static _Atomic tr_ref child_ref[8];
static _Atomic int starts[8];

static void note(int v)
{
    int at = atomic_fetch_add(&journal_len, 1);
    if (at < JOURNAL)
        atomic_store(&journal[at], v);
}

static void reset_journal(void)
{
    atomic_store(&journal_len, 0);
    for (int i = 0; i < 8; i++)
        atomic_store(&starts[i], 0);
}

static void expect_journal(const int *want, int n)
{
    for (int tries = 0; atomic_load(&journal_len) < n && tries < 20000; tries++)
        usleep(1000);
    usleep(20000); /* and nothing more comes */
    assert_int_equal(atomic_load(&journal_len), n);
    for (int i = 0; i < n; i++)
        assert_int_equal(atomic_load(&journal[i]), want[i]);
}

static void noted_end(void *arg)
{
    note(-(int)(intptr_t)arg - 1);
}

/* Child k's first steps: its end to be noted, its ref and start kept. */
static void child_starts(tr_actor *self)
{
    int k = (int)(intptr_t)tr_actor_state(self);
    tr_defer(noted_end, (void *)(intptr_t)k);
    atomic_store(&child_ref[k], tr_actor_ref(self));
    atomic_fetch_add(&starts[k], 1);
}

/* A child's life once started: it ends with the reason main sends. */
static int work(void)
{
    for (;;) {
        tr_msg m;
        int rc = tr_recv(&m, TR_FOREVER);
        if (rc)
            return rc;
        if (m.tag == 1)
            return m.a ? (int)(int64_t)m.a : 0;
    }
}

/* A child: notes its start and its end; ends with the reason main sends. */
static int worker_body(tr_actor *self)
{
    child_starts(self);
    return work();
}

/* The supervisor that started a child last (start functions run in it). */
static _Atomic tr_ref starting_sup;

/* Starts are noted here, in the supervisor, in the order it makes them:
 * the children themselves may first run in any order on two workers. */
static int start_child_body(tr_system *sys, tr_body body, void *arg, tr_ref *out)
{
    atomic_store(&starting_sup, tr_self());
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.state = arg;
    int rc = tr_spawn_loop(sys, body, &o, out);
    if (rc == 0)
        note((int)(intptr_t)arg + 1);
    return rc;
}

static int start_worker(tr_system *sys, void *arg, tr_ref *out)
{
    return start_child_body(sys, worker_body, arg, out);
}

static tr_child_spec worker_spec(int k, tr_restart r)
{
    return (tr_child_spec){.name = "worker", .start = start_worker,
                           .arg = (void *)(intptr_t)k, .restart = r,
                           .shutdown_ns = 2000000000ll};
}

/* Wait until child k has started `n` times. */
static void wait_started(int k, int n)
{
    for (int tries = 0; atomic_load(&starts[k]) < n && tries < 20000; tries++)
        usleep(1000);
    assert_int_equal(atomic_load(&starts[k]), n);
}

/* Wait until child k has started `n` times, then tell it to end. */
static void fail_child(tr_system *sys, int k, int n, int reason)
{
    wait_started(k, n);
    usleep(5000); /* past the note of its start */
    tr_msg m = tr_msg_words(1, (uint64_t)(int64_t)reason, 0);
    assert_int_equal(tr_send(sys, atomic_load(&child_ref[k]), &m, tr_after_ms(TEST_DEADLINE_MS)), 0);
}

static tr_ref start_sup(tr_system *sys, tr_strategy st, const tr_child_spec *c, size_t n)
{
    tr_supervisor_opts o = TR_SUPERVISOR_OPTS_INIT;
    o.strategy = st;
    o.intensity = 10;
    tr_ref sup;
    assert_int_equal(tr_supervisor_start(sys, &o, c, n, &sup), 0);
    return sup;
}

/* A system with a supervisor of three permanent workers, all started. */
static tr_system *three_workers(tr_strategy st)
{
    reset_journal();
    tr_system *sys = test_system(2);
    tr_child_spec c[3] = {worker_spec(0, TR_PERMANENT), worker_spec(1, TR_PERMANENT),
                          worker_spec(2, TR_PERMANENT)};
    start_sup(sys, st, c, 3);
    expect_journal((int[]){1, 2, 3}, 3);
    return sys;
}

static void test_one_for_one_restarts_only_the_failed_child(void **state)
{
    (void)state;
    tr_system *sys = three_workers(TR_ONE_FOR_ONE);
    fail_child(sys, 1, 1, -42);
    expect_journal((int[]){1, 2, 3, -2, 2}, 5);
    tr_system_free(sys);
}

static void test_one_for_all_stops_the_rest_in_reverse_then_restarts_all_in_order(void **state)
{
    (void)state;
    tr_system *sys = three_workers(TR_ONE_FOR_ALL);
    fail_child(sys, 1, 1, -42);
    expect_journal((int[]){1, 2, 3, -2, -3, -1, 1, 2, 3}, 9);
    tr_system_free(sys);
}

static void test_rest_for_one_restarts_the_failed_child_and_those_after_it(void **state)
{
    (void)state;
    tr_system *sys = three_workers(TR_REST_FOR_ONE);
    fail_child(sys, 1, 1, -42);
    expect_journal((int[]){1, 2, 3, -2, -3, 2, 3}, 7);
    fail_child(sys, 0, 1, -42);
    expect_journal((int[]){1, 2, 3, -2, -3, 2, 3, -1, -3, -2, 1, 2, 3}, 13);
    tr_system_free(sys);
}

static void test_transient_and_temporary_children(void **state)
{
    (void)state;
    reset_journal();
    tr_system *sys = test_system(2);
    tr_child_spec c[2] = {worker_spec(0, TR_TRANSIENT), worker_spec(1, TR_TEMPORARY)};
    tr_ref sup = start_sup(sys, TR_ONE_FOR_ONE, c, 2);
    expect_journal((int[]){1, 2}, 2);
    fail_child(sys, 0, 1, -42);           /* abnormal: back */
    expect_journal((int[]){1, 2, -1, 1}, 4);
    fail_child(sys, 1, 1, -42);           /* temporary: gone */
    expect_journal((int[]){1, 2, -1, 1, -2}, 5);
    fail_child(sys, 0, 2, 0);            /* normal: gone */
    expect_journal((int[]){1, 2, -1, 1, -2, -1}, 6);

    tr_child_info info[4];
    size_t n = 0;
    assert_int_equal(tr_supervisor_children(sys, sup, info, 4, &n, tr_after_ms(TEST_DEADLINE_MS)), 0);
    assert_int_equal(n, 2);
    assert_string_equal(info[0].name, "worker");
    assert_int_equal(info[0].state, TR_CHILD_STOPPED);
    assert_int_equal(info[0].restarts, 1);
    assert_int_equal(info[0].ref, TR_REF_NONE);
    assert_int_equal(info[1].state, TR_CHILD_STOPPED);
    assert_int_equal(info[1].restarts, 0);
    tr_system_free(sys);
}

/* ---- intensity escalates through two levels ------------------------------ */

static tr_mailbox *done_mb;
static tr_ref watched;

/* Watches `watched` and reports its end reason to the main thread. */
static int down_reporter(tr_actor *self)
{
    tr_ref mon;
    if (tr_monitor(watched, &mon))
        return -1;
    test_send(tr_actor_system(self), tr_mailbox_ref(done_mb), 20, 0, 0);
    tr_msg m;
    if (tr_recv(&m, tr_after_ms(TEST_DEADLINE_MS)) || m.tag != TR_TAG_DOWN)
        return -2;
    test_send(tr_actor_system(self), tr_mailbox_ref(done_mb), 21, m.b, 0);
    return 0;
}

static int start_mid(tr_system *sys, void *arg, tr_ref *out)
{
    (void)arg;
    tr_child_spec c[1] = {worker_spec(0, TR_PERMANENT)};
    tr_supervisor_opts o = TR_SUPERVISOR_OPTS_INIT;
    o.intensity = 1; /* the second restart within the period is one too many */
    return tr_supervisor_start(sys, &o, c, 1, out);
}

static void test_intensity_escalates_through_two_levels(void **state)
{
    (void)state;
    reset_journal();
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 8, &done_mb), 0);
    tr_child_spec mid = {.name = "mid", .start = start_mid, .restart = TR_PERMANENT,
                         .shutdown_ns = 2000000000ll};
    tr_supervisor_opts o = TR_SUPERVISOR_OPTS_INIT;
    o.intensity = 1;
    assert_int_equal(tr_supervisor_start(sys, &o, &mid, 1, &watched), 0);
    assert_int_equal(tr_spawn_loop(sys, down_reporter, NULL, NULL), 0);
    assert_int_equal(test_recv(done_mb).tag, 20);
    /* The worker fails twice: mid restarts it once, then gives up; top
     * restarts mid (once), whose worker fails twice more: mid gives up
     * again, and that is top's second restart: top gives up. */
    for (int n = 1; n <= 4; n++)
        fail_child(sys, 0, n, -9);
    tr_msg d = test_recv(done_mb);
    assert_int_equal(d.tag, 21);
    assert_int_equal((int)(int64_t)d.a, TR_ELIMIT);
    /* Every start was matched by an end, and the last ones in reverse. */
    expect_journal((int[]){1, -1, 1, -1, 1, -1, 1, -1}, 8);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* ---- backoff -------------------------------------------------------------- */

static void test_restart_delays_back_off_within_their_bounds(void **state)
{
    (void)state;
    reset_journal();
    tr_system *sys = test_system(2);
    tr_child_spec c[1] = {worker_spec(0, TR_PERMANENT)};
    tr_supervisor_opts o = TR_SUPERVISOR_OPTS_INIT;
    o.intensity = 10;
    o.backoff_base_ns = 20000000;   /* 20 ms, 40, 80, then the cap */
    o.backoff_cap_ns = 80000000;
    o.jitter_percent = 25;
    tr_ref sup;
    assert_int_equal(tr_supervisor_start(sys, &o, c, 1, &sup), 0);
    const int64_t want[4] = {20, 40, 80, 80};
    for (int k = 0; k < 4; k++) {
        fail_child(sys, 0, k + 1, -3);
        int64_t t0 = tr_now();
        while (atomic_load(&starts[0]) < k + 2)
            usleep(200);
        int64_t waited_ms = (tr_now() - t0) / 1000000;
        /* Jitter is +/- 25 %; never earlier than that, and a generous
         * bound above for a loaded machine. */
        assert_true(waited_ms >= want[k] * 75 / 100 - 1);
        assert_true(waited_ms <= want[k] * 125 / 100 + 2000);
    }
    tr_system_free(sys);
}

static _Atomic int crasher_starts;

static int crasher(tr_actor *self)
{
    (void)self;
    atomic_fetch_add(&crasher_starts, 1);
    return 99;
}

static int start_crasher(tr_system *sys, void *arg, tr_ref *out)
{
    (void)arg;
    return tr_spawn_loop(sys, crasher, NULL, out);
}

/* The supervisor's n children, into info. */
static void snapshot(tr_system *sys, tr_ref sup, tr_child_info *info, size_t n)
{
    size_t have = 0;
    assert_int_equal(tr_supervisor_children(sys, sup, info, n, &have, tr_after_ms(TEST_DEADLINE_MS)), 0);
    assert_int_equal(have, n);
}

/* Child k's snapshot once it has been restarted `restarts` times
 * (scheduled, that is: it may still wait for its delay). */
static tr_child_info wait_for_restarts(tr_system *sys, tr_ref sup, size_t n, size_t k,
                                       uint32_t restarts)
{
    tr_child_info info[2];
    snapshot(sys, sup, info, n);
    for (int tries = 0; info[k].restarts < restarts && tries < 20000; tries++) {
        usleep(1000);
        snapshot(sys, sup, info, n);
    }
    usleep(20000); /* and no restart comes */
    snapshot(sys, sup, info, n);
    return info[k];
}

static const tr_child_spec crasher_spec = {.name = "crasher", .start = start_crasher,
                                           .shutdown_ns = 1000000};

/*
 * Delays as long as the clock's range, or whose jitter is: the child that
 * ended waits to be restarted (for ever, as good as), where the sums used
 * to overflow and wrap round to a restart at once, or trip UBSan.
 */
static void test_a_backoff_beyond_the_clock_waits_for_ever(void **state)
{
    (void)state;
    const struct { int64_t base, cap; uint32_t jitter; } cases[] = {
        {INT64_MAX, INT64_MAX, 0},
        {INT64_MAX, INT64_MAX, 100},
        {315360000000000000ll, 315360000000000000ll, 50}, /* ten years, +/- 50 % */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        atomic_store(&crasher_starts, 0);
        tr_system *sys = test_system(2);
        tr_supervisor_opts o = TR_SUPERVISOR_OPTS_INIT;
        o.backoff_base_ns = cases[k].base;
        o.backoff_cap_ns = cases[k].cap;
        o.jitter_percent = cases[k].jitter;
        tr_ref sup;
        assert_int_equal(tr_supervisor_start(sys, &o, &crasher_spec, 1, &sup), 0);
        tr_child_info info = wait_for_restarts(sys, sup, 1, 0, 1);
        assert_int_equal(info.state, TR_CHILD_RESTARTING);
        assert_int_equal(info.restarts, 1);
        assert_int_equal(atomic_load(&crasher_starts), 1);
        tr_system_free(sys);
    }
}

/*
 * The doubling past the clock: a child waiting for its delayed restart is
 * rescheduled, with its delay doubled, when a rest_for_one restart of the
 * child before it takes it along.  Its delay stays at the cap.
 */
static void test_a_backoff_doubled_beyond_the_clock_waits_for_ever(void **state)
{
    (void)state;
    reset_journal();
    atomic_store(&crasher_starts, 0);
    tr_system *sys = test_system(2);
    tr_supervisor_opts o = TR_SUPERVISOR_OPTS_INIT;
    o.strategy = TR_REST_FOR_ONE;
    o.backoff_base_ns = INT64_MAX / 2 + 1;
    o.backoff_cap_ns = INT64_MAX;
    tr_child_spec c[2] = {worker_spec(0, TR_PERMANENT), crasher_spec};
    tr_ref sup;
    assert_int_equal(tr_supervisor_start(sys, &o, c, 2, &sup), 0);
    assert_int_equal(wait_for_restarts(sys, sup, 2, 1, 1).state, TR_CHILD_RESTARTING);
    fail_child(sys, 0, 1, -5);
    tr_child_info info = wait_for_restarts(sys, sup, 2, 1, 2);
    assert_int_equal(info.state, TR_CHILD_RESTARTING);
    assert_int_equal(info.restarts, 2);
    assert_int_equal(atomic_load(&crasher_starts), 1);
    tr_system_free(sys);
}

/* ---- cancelling a three-level tree ----------------------------------------- */

/* n permanent children alike, each with its place as argument. */
static void same_specs(tr_child_spec *c, int n, const char *name, tr_child_start start,
                       int64_t shutdown_ns)
{
    for (intptr_t i = 0; i < n; i++)
        c[i] = (tr_child_spec){.name = name, .start = start, .arg = (void *)i,
                               .restart = TR_PERMANENT, .shutdown_ns = shutdown_ns};
}

#define MIDS 4
/* per mid: 10,000 in all (2,500 under the sanitizers: TSan runs out of
 * mappings with 10,000 parked stacks and their fibers) */
#define LEAVES (2500 / TEST_SCALE)
static _Atomic int leaves_started, leaves_cleaned;

static void leaf_cleanup(void *arg)
{
    (void)arg;
    atomic_fetch_add(&leaves_cleaned, 1);
}

static tr_ref full_box; /* a mailbox nobody drains, for leaves that send */

static int leaf_body(tr_actor *self)
{
    intptr_t k = (intptr_t)tr_actor_state(self);
    tr_defer(leaf_cleanup, NULL);
    atomic_fetch_add(&leaves_started, 1);
    tr_msg m;
    switch (k % 4) {
    case 0:
        return tr_recv(&m, TR_FOREVER);
    case 1: {
        m = tr_msg_words(1, 0, 0);
        int rc;
        while ((rc = tr_send(tr_actor_system(self), full_box, &m, TR_FOREVER)) == 0)
            ;
        return rc;
    }
    case 2: {
        tr_mailbox *mb;
        if (tr_mailbox_new(tr_actor_system(self), 1, &mb))
            return TR_ENOMEM;
        tr_select_case cs[2] = {{.op = TR_SELECT_RECV, .mailbox = mb},
                                {.op = TR_SELECT_RECV, .mailbox = NULL}};
        return tr_select(tr_actor_system(self), cs, 2, 0, TR_FOREVER);
    }
    default:
        return tr_sleep(TR_FOREVER);
    }
}

static int start_leaf(tr_system *sys, void *arg, tr_ref *out)
{
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.state = arg;
    return tr_spawn_loop(sys, leaf_body, &o, out);
}

/* A leaf's shutdown time: longer than any run, so that none is abandoned
 * on a slow machine (cancel_leaf_tree watches progress instead). */
#define LEAF_SHUTDOWN_NS 600000000000ll

static int start_leaf_sup(tr_system *sys, void *arg, tr_ref *out)
{
    (void)arg;
    static tr_child_spec leaves[LEAVES];
    same_specs(leaves, LEAVES, "leaf", start_leaf, LEAF_SHUTDOWN_NS);
    return tr_supervisor_start(sys, NULL, leaves, LEAVES, out);
}

/* Never takes from its own mailbox: it waits on another one. */
static int blocker(tr_actor *self)
{
    tr_mailbox *other;
    if (tr_mailbox_new(tr_actor_system(self), 1, &other))
        return TR_ENOMEM;
    tr_msg m;
    return tr_mailbox_recv(other, &m, TR_FOREVER) == TR_ECANCELED ? 0 : -1;
}

/* The top of the three-level tree: MIDS supervisors of LEAVES leaves. */
static int start_tree_top(tr_system *sys, void *arg, tr_ref *out)
{
    (void)arg;
    tr_child_spec mids[MIDS];
    /* Supervisors, given as long as their leaves take (a fixed 10 s was
     * too little for 625 leaves one by one under TSan on a loaded
     * machine: the mid was abandoned and the test timed out). */
    same_specs(mids, MIDS, "mid", start_leaf_sup, 0);
    for (int i = 0; i < MIDS; i++)
        mids[i].kind = TR_CHILD_SUPERVISOR;
    return tr_supervisor_start(sys, NULL, mids, MIDS, out);
}

static int start_flat_leaf_sup(tr_system *sys, void *arg, tr_ref *out)
{
    (void)arg;
    static tr_child_spec leaves[MIDS * LEAVES];
    for (intptr_t i = 0; i < MIDS * LEAVES; i++)
        leaves[i] = (tr_child_spec){.name = "leaf", .start = start_leaf, .arg = (void *)i,
                                    .restart = TR_PERMANENT, .shutdown_ns = LEAF_SHUTDOWN_NS};
    tr_supervisor_opts o = TR_SUPERVISOR_OPTS_INIT;
    o.stop_at_once = true;
    return tr_supervisor_start(sys, &o, leaves, MIDS * LEAVES, out);
}

/* Reports the end of `tree_top` to `tree_mb`: 20 once it watches, then
 * 21 with the reason. */
static tr_mailbox *tree_mb;
static tr_ref tree_top;

static int tree_watcher(tr_actor *self)
{
    tr_system *sys = tr_actor_system(self);
    tr_ref mon;
    if (tr_monitor(tree_top, &mon))
        return -1;
    test_send(sys, tr_mailbox_ref(tree_mb), 20, 0, 0);
    tr_msg m;
    for (;;) {
        int rc = tr_recv(&m, TR_FOREVER);
        if (rc)
            return rc;
        if (m.tag == TR_TAG_DOWN)
            break;
        tr_msg_release(&m);
    }
    test_send(sys, tr_mailbox_ref(tree_mb), 21, m.b, 0);
    tr_msg_release(&m);
    return 0;
}

/* How far a count of leaves has come, and since when it stands there. */
typedef struct progress {
    int seen;
    int64_t moved;
} progress;

/* Fail once `count` has stood still for TEST_DEADLINE_MS. */
static void expect_progress(progress *p, int count, const char *what)
{
    if (count != p->seen) {
        p->seen = count;
        p->moved = tr_now();
    } else if (tr_now() - p->moved > TEST_DEADLINE_MS * 1000000ll) {
        fail_msg("no leaf %s for %d ms: %d of %d", what, TEST_DEADLINE_MS, count,
                 MIDS * LEAVES);
    }
}

/*
 * Start the tree that `start` makes over leaves parked in a receive, a
 * send to a full mailbox, a select and a sleep; cancel it and wait; every
 * leaf must have ended, its cleanup run exactly once, before the top did.
 * The wait fails only when no leaf has ended for TEST_DEADLINE_MS: ending
 * 10,000 actors takes what it takes on a loaded machine.
 */
static void cancel_leaf_tree(tr_child_start start, const char *how)
{
    atomic_store(&leaves_started, 0);
    atomic_store(&leaves_cleaned, 0);
    tr_system *sys = test_system(0);
    tr_spawn_opts bo = TR_SPAWN_OPTS_INIT;
    bo.mailbox_capacity = 1;
    tr_ref b, top;
    assert_int_equal(tr_spawn_loop(sys, blocker, &bo, &b), 0);
    full_box = b;
    assert_int_equal(start(sys, NULL, &top), 0);
    /* Until all have started, or none has for TEST_DEADLINE_MS. */
    progress started = {-1, 0};
    for (int now; (now = atomic_load(&leaves_started)) < MIDS * LEAVES;) {
        expect_progress(&started, now, "started");
        usleep(1000);
    }
    usleep(20000); /* let the last leaves park */

    assert_int_equal(tr_mailbox_new(sys, 4, &tree_mb), 0);
    tree_top = top;
    assert_int_equal(tr_spawn_loop(sys, tree_watcher, NULL, NULL), 0);
    assert_int_equal(test_recv(tree_mb).tag, 20);

    int64_t t0 = tr_now();
    assert_int_equal(tr_cancel(sys, top), 0);
    tr_msg down;
    progress ended = {-1, 0};
    for (int rc; (rc = tr_mailbox_recv(tree_mb, &down, tr_after_ms(500))) != 0;) {
        assert_int_equal(rc, TR_ETIMEDOUT);
        expect_progress(&ended, atomic_load(&leaves_cleaned), "ended");
    }
    assert_int_equal(down.tag, 21);
    int reason = (int)(int64_t)down.a;
    tr_mailbox_free(tree_mb);
    printf("   %d leaves ended %s in %lld ms\n", MIDS * LEAVES, how,
           (long long)((tr_now() - t0) / 1000000));
    assert_int_equal(reason, TR_ECANCELED);
    /* The top ends only after its children, which end after theirs. */
    assert_int_equal(atomic_load(&leaves_cleaned), MIDS * LEAVES);
    assert_int_equal(tr_cancel(sys, b), 0);
    tr_system_free(sys);
    assert_int_equal(atomic_load(&leaves_cleaned), MIDS * LEAVES);
}

static void test_cancelling_a_three_level_tree_ends_every_leaf_once(void **state)
{
    (void)state;
    cancel_leaf_tree(start_tree_top, "in order, three levels");
}

/* Stopping all at once: 10,000 children cancelled together all end. */
static void test_stop_at_once_ends_every_child(void **state)
{
    (void)state;
    cancel_leaf_tree(start_flat_leaf_sup, "all at once");
}

static void test_dynamic_children_start_stop_and_respect_the_limit(void **state)
{
    (void)state;
    reset_journal();
    tr_system *sys = test_system(2);
    tr_supervisor_opts o = TR_SUPERVISOR_OPTS_INIT;
    o.max_children = 3;
    tr_ref sup, kid[4];
    assert_int_equal(tr_supervisor_start(sys, &o, NULL, 0, &sup), 0);
    for (int k = 0; k < 3; k++) {
        tr_child_spec c = worker_spec(k, TR_PERMANENT);
        assert_int_equal(tr_supervisor_start_child(sys, sup, &c, &kid[k], tr_after_ms(TEST_DEADLINE_MS)), 0);
    }
    tr_child_spec extra = worker_spec(3, TR_PERMANENT);
    assert_int_equal(tr_supervisor_start_child(sys, sup, &extra, &kid[3], tr_after_ms(TEST_DEADLINE_MS)),
                     TR_ELIMIT);
    expect_journal((int[]){1, 2, 3}, 3);
    /* A dynamic child is supervised like any other... */
    fail_child(sys, 1, 1, -42);
    expect_journal((int[]){1, 2, 3, -2, 2}, 5);
    /* ...and a terminated one is gone for good. */
    assert_int_equal(tr_supervisor_terminate_child(sys, sup, kid[0], tr_after_ms(TEST_DEADLINE_MS)), 0);
    expect_journal((int[]){1, 2, 3, -2, 2, -1}, 6);
    assert_int_equal(tr_supervisor_terminate_child(sys, sup, kid[0], tr_after_ms(TEST_DEADLINE_MS)),
                     TR_ENOACTOR);
    tr_child_info info[4];
    size_t n = 0;
    assert_int_equal(tr_supervisor_children(sys, sup, info, 4, &n, tr_after_ms(TEST_DEADLINE_MS)), 0);
    assert_int_equal(n, 2);
    assert_int_equal(info[0].restarts, 1); /* child 1, restarted once */
    assert_int_equal(info[0].state, TR_CHILD_RUNNING);
    assert_int_equal(info[1].ref, kid[2]);
    /* With one gone there is room again. */
    assert_int_equal(tr_supervisor_start_child(sys, sup, &extra, &kid[3], tr_after_ms(TEST_DEADLINE_MS)), 0);
    expect_journal((int[]){1, 2, 3, -2, 2, -1, 4}, 7);
    tr_system_free(sys);
}

/* ---- requests that reach a supervisor in its final stop -------------------- */

static atomic_bool hog_cancelled, hog_released;

/* Waits for its cancel, then keeps its worker (it never yields) until
 * main releases it: on a one-worker system its supervisor, stopping it,
 * cannot take its mail meanwhile, so a request provably waits there. */
static int hog(tr_actor *self)
{
    (void)self;
    tr_msg m;
    while (tr_recv(&m, TR_FOREVER) == 0)
        tr_msg_release(&m);
    atomic_store(&hog_cancelled, true);
    while (!atomic_load(&hog_released))
        ;
    return TR_ECANCELED;
}

static int start_hog(tr_system *sys, void *arg, tr_ref *out)
{
    (void)arg;
    return tr_spawn_loop(sys, hog, NULL, out);
}

static int idle_handler(tr_actor *self, tr_msg *m)
{
    (void)self;
    tr_msg_release(m);
    return 0;
}

static int start_idle(tr_system *sys, void *arg, tr_ref *out)
{
    (void)arg;
    return tr_spawn(sys, idle_handler, NULL, out);
}

typedef struct asker {
    tr_system *sys;
    tr_ref sup;
    int rc;
} asker;

static void *ask_start_child(void *arg)
{
    asker *a = arg;
    tr_child_spec c = {.start = start_idle, .shutdown_ns = 1000000};
    tr_ref child;
    a->rc = tr_supervisor_start_child(a->sys, a->sup, &c, &child, tr_after_ms(TEST_DEADLINE_MS));
    return NULL;
}

static void wait_for_depth(tr_system *sys, tr_ref ref, uint32_t want)
{
    uint32_t depth = 0;
    for (int tries = 0; tries < 20000; tries++) {
        assert_int_equal(tr_mailbox_depth(sys, ref, &depth, NULL), 0);
        if (depth == want)
            return;
        usleep(1000);
    }
    assert_int_equal(depth, want);
}

/*
 * A start_child request reaches a supervisor that is stopping its children
 * for good (it was cancelled).  With the hog alone, the supervisor ends as
 * soon as the hog does, the request still in its mailbox; with an idle
 * child before it, the supervisor takes the request while it stops that
 * one, and it ends with the request on its deferred list.  Either way the
 * asker hears TR_ENOACTOR at once, not at its deadline.
 */
static void final_stop_answers_request(const tr_child_spec *kids, size_t n)
{
    atomic_store(&hog_cancelled, false);
    atomic_store(&hog_released, false);
    tr_system *sys = test_system(1);
    tr_ref sup = start_sup(sys, TR_ONE_FOR_ONE, kids, n);
    size_t have = 0;
    assert_int_equal(tr_supervisor_children(sys, sup, NULL, 0, &have, tr_after_ms(TEST_DEADLINE_MS)), 0);
    assert_int_equal(have, n);
    assert_int_equal(tr_cancel(sys, sup), 0);
    for (int tries = 0; !atomic_load(&hog_cancelled) && tries < 20000; tries++)
        usleep(1000);
    assert_true(atomic_load(&hog_cancelled));
    asker a = {sys, sup, 1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, ask_start_child, &a), 0);
    wait_for_depth(sys, sup, 1);
    atomic_store(&hog_released, true);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(a.rc, TR_ENOACTOR);
    tr_system_free(sys);
}

static void test_a_request_during_the_final_stop_is_answered_enoactor(void **state)
{
    (void)state;
    tr_child_spec hog_spec = {.name = "hog", .start = start_hog, .shutdown_ns = TEST_DEADLINE_MS * 1000000ll};
    tr_child_spec idle_spec = {.name = "idle", .start = start_idle, .shutdown_ns = TEST_DEADLINE_MS * 1000000ll};
    final_stop_answers_request(&hog_spec, 1);                            /* left in the mailbox */
    final_stop_answers_request((tr_child_spec[]){idle_spec, hog_spec}, 2); /* deferred */
}

/* Keeps its worker from the start until main releases it. */
static int spins(tr_actor *self)
{
    (void)self;
    atomic_store(&hog_cancelled, true); /* here: it runs */
    while (!atomic_load(&hog_released))
        ;
    return 0;
}

static int start_spinner(tr_system *sys, void *arg, tr_ref *out)
{
    (void)arg;
    return tr_spawn_loop(sys, spins, NULL, out);
}

static tr_system *shut_target;

/* An actor of another system that shuts `shut_target` down: its calls
 * do not wait, so it sleeps between them. */
static int shuts_the_other_down(tr_actor *self)
{
    (void)self;
    int rc;
    while ((rc = tr_system_shutdown(shut_target, TR_FOREVER)) == TR_ETIMEDOUT)
        if (tr_sleep(tr_after_ms(1)))
            return -1;
    return rc;
}

/*
 * The shutdown runs on a worker of another system, so the answer the
 * teardown sends to the asker's mailbox goes by a borrow, not a hazard
 * word.  It used to be refused there (a borrow from outside during a
 * stop), and the asker waited until its deadline.
 */
static void test_a_request_left_when_another_systems_actor_shuts_down_is_answered(void **state)
{
    (void)state;
    atomic_store(&hog_cancelled, false);
    atomic_store(&hog_released, false);
    tr_system *sys = shut_target = test_system(1);
    tr_system *other = test_system(1);
    tr_child_spec spinner = {.name = "spinner", .start = start_spinner, .shutdown_ns = 1000000};
    tr_ref sup = start_sup(sys, TR_ONE_FOR_ONE, &spinner, 1);
    for (int tries = 0; !atomic_load(&hog_cancelled) && tries < 20000; tries++)
        usleep(1000);
    assert_true(atomic_load(&hog_cancelled)); /* the only worker is taken */
    asker a = {sys, sup, 1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, ask_start_child, &a), 0);
    wait_for_depth(sys, sup, 1);
    assert_int_equal(tr_spawn_loop(other, shuts_the_other_down, NULL, NULL), 0);
    for (int tries = 0; !atomic_load(&sys->stopping) && tries < 20000; tries++)
        usleep(1000);
    atomic_store(&hog_released, true);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(a.rc, TR_ENOACTOR);
    tr_system_free(other); /* after its actor's shutdown call returned */
    tr_system_free(sys);
}

/* ---- fault injection: random failures and cancellations for a while ------- */

static _Atomic int64_t chaos_starts, chaos_ends;

static void chaos_end(void *arg)
{
    (void)arg;
    atomic_fetch_add(&chaos_ends, 1);
}

static int chaos_worker(tr_actor *self)
{
    (void)self;
    tr_defer(chaos_end, NULL);
    atomic_fetch_add(&chaos_starts, 1);
    for (;;) {
        tr_msg m;
        int rc = tr_recv(&m, TR_FOREVER);
        if (rc)
            return rc;
        if (m.tag == 1)
            return -42;
    }
}

static int start_chaos_worker(tr_system *sys, void *arg, tr_ref *out)
{
    (void)arg;
    return tr_spawn_loop(sys, chaos_worker, NULL, out);
}

#define CHAOS_MIDS 4
#define CHAOS_WORKERS 8

static int start_chaos_mid(tr_system *sys, void *arg, tr_ref *out)
{
    (void)arg;
    tr_child_spec c[CHAOS_WORKERS];
    same_specs(c, CHAOS_WORKERS, "w", start_chaos_worker, 5000000000ll);
    tr_supervisor_opts o = TR_SUPERVISOR_OPTS_INIT;
    o.intensity = 1000000; /* no escalation: every hit is one restart */
    return tr_supervisor_start(sys, &o, c, CHAOS_WORKERS, out);
}

#define MAX_HITS 100000

/* Refs are never reused by a new life: one already hit is still dying. */
static bool already_hit(const tr_ref *hit, int64_t n, tr_ref ref)
{
    for (int64_t i = n; i-- > 0;)
        if (hit[i] == ref)
            return true;
    return false;
}

static void test_random_failures_and_cancellations_add_up(void **state)
{
    (void)state;
    uint64_t seed = test_seed(), rng = seed | 1;
    atomic_store(&chaos_starts, 0);
    atomic_store(&chaos_ends, 0);
    tr_system *sys = test_system(0);
    tr_child_spec mids[CHAOS_MIDS];
    tr_ref mid_ref[CHAOS_MIDS];
    same_specs(mids, CHAOS_MIDS, "mid", start_chaos_mid, 10000000000ll);
    tr_supervisor_opts o = TR_SUPERVISOR_OPTS_INIT;
    o.intensity = 1000000;
    tr_ref top;
    assert_int_equal(tr_supervisor_start(sys, &o, mids, CHAOS_MIDS, &top), 0);
    const int64_t total = CHAOS_MIDS * CHAOS_WORKERS;
    while (atomic_load(&chaos_starts) < total)
        usleep(1000);

    int64_t hits = 0;
    static tr_ref hit[MAX_HITS];
    tr_deadline end = tr_after_ms(2000 / TEST_SCALE);
    while (tr_now() < end) {
        tr_child_info info[CHAOS_WORKERS];
        size_t n;
        assert_int_equal(tr_supervisor_children(sys, top, info, CHAOS_MIDS, &n,
                                                tr_after_ms(TEST_DEADLINE_MS)), 0);
        for (int i = 0; i < CHAOS_MIDS; i++)
            mid_ref[i] = info[i].ref;
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        assert_int_equal(tr_supervisor_children(sys, mid_ref[rng % CHAOS_MIDS], info,
                                                CHAOS_WORKERS, &n, tr_after_ms(TEST_DEADLINE_MS)), 0);
        tr_ref victim = info[(rng >> 8) % CHAOS_WORKERS].ref;
        if (!victim || already_hit(hit, hits, victim))
            continue; /* between lives, or hit and not yet replaced */
        /* A failure or a cancellation: either way one end and one start.
         * A victim that is already gone (the snapshot was old) is no hit. */
        tr_msg fail = tr_msg_words(1, 0, 0);
        int rc = (rng >> 16) & 1 ? tr_cancel(sys, victim) : tr_try_send(sys, victim, &fail);
        if (rc == 0) {
            assert_true(hits < MAX_HITS);
            hit[hits++] = victim;
        } else
            assert_true(rc == TR_ENOACTOR || rc == TR_EFULL);
        usleep((rng >> 20) % 2000);
    }
    int reason = 0;
    assert_int_equal(tr_cancel_wait(sys, top, tr_after_ms(TEST_DEADLINE_MS), &reason), 0);
    assert_int_equal(reason, TR_ECANCELED);
    printf("   seed %llu: %lld hits, %lld starts\n", (unsigned long long)seed,
           (long long)hits, (long long)atomic_load(&chaos_starts));
    /* Every worker that started ended once; every hit was one restart. */
    assert_int_equal(atomic_load(&chaos_ends), atomic_load(&chaos_starts));
    assert_int_equal(atomic_load(&chaos_starts), total + hits);
    tr_system_free(sys);
}

/* ---- an exit that arrives while another child is being stopped ---------- */

/* What the relay does once cancelled; set before the supervisor starts. */
static struct relay_plan {
    int reason;              /* child 1 ends with it */
    bool cancels_sup;        /* and first the supervisor is cancelled */
} relay;

/* Whether a DOWN was queued for us (taken, then). */
static bool took_down(void)
{
    tr_msg m;
    if (tr_recv(&m, TR_NOW))
        return false;
    bool down = m.tag == TR_TAG_DOWN;
    tr_msg_release(&m);
    return down;
}

/*
 * A child that, once cancelled, does what `relay` says: has child 1 end
 * with its reason, and waits for its DOWN, which child 1 sends after its
 * EXIT: so that exit reaches the supervisor while it is still stopping
 * this one.
 */
static int relay_body(tr_actor *self)
{
    child_starts(self);
    tr_ref sup = atomic_load(&starting_sup);
    tr_msg m;
    while (tr_recv(&m, TR_FOREVER) == 0)
        tr_msg_release(&m);
    tr_system *sys = tr_actor_system(self);
    if (relay.cancels_sup && tr_cancel(sys, sup))
        return -1;
    tr_ref victim = atomic_load(&child_ref[1]), mon;
    tr_msg end = tr_msg_words(1, (uint64_t)(int64_t)relay.reason, 0);
    if (tr_monitor(victim, &mon) || tr_try_send(sys, victim, &end))
        return -1;
    while (!took_down())
        tr_yield(); /* cancelled: it yields, then says so */
    return 0;
}

static int start_relay(tr_system *sys, void *arg, tr_ref *out)
{
    return start_child_body(sys, relay_body, arg, out);
}

static tr_child_spec relay_spec(int k)
{
    tr_child_spec c = worker_spec(k, TR_PERMANENT);
    c.name = "relay";
    c.start = start_relay;
    return c;
}

/* An exit reason may be any int: one of INT_MIN, which arrives while its
 * supervisor stops another child, is handled like any other. */
static void test_an_exit_with_int_min_during_a_stop_is_handled(void **state)
{
    (void)state;
    reset_journal();
    relay = (struct relay_plan){.reason = INT_MIN};
    tr_system *sys = test_system(2);
    tr_child_spec c[2] = {relay_spec(0), worker_spec(1, TR_PERMANENT)};
    tr_ref sup = start_sup(sys, TR_ONE_FOR_ONE, c, 2);
    wait_started(0, 1);
    wait_started(1, 1);
    tr_child_info info[2];
    snapshot(sys, sup, info, 2);
    assert_int_equal(tr_supervisor_terminate_child(sys, sup, info[0].ref,
                                                   tr_after_ms(TEST_DEADLINE_MS)), 0);
    /* Child 1 ends during the relay's stop, and is restarted after it. */
    expect_journal((int[]){1, 2, -2, -1, 2}, 5);
    snapshot(sys, sup, info, 1);
    assert_int_equal(info[0].state, TR_CHILD_RUNNING);
    assert_int_equal(info[0].restarts, 1);
    tr_system_free(sys);
}

/* A supervisor cancelled during a group restart ends with TR_ECANCELED,
 * even if a child of the group ended by itself meanwhile: it used to
 * count that exit against the intensity and end with TR_ELIMIT. */
static void test_a_supervisor_cancelled_in_a_group_restart_ends_ecanceled(void **state)
{
    (void)state;
    reset_journal();
    relay = (struct relay_plan){.reason = -5, .cancels_sup = true};
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 8, &done_mb), 0);
    tr_child_spec c[3] = {worker_spec(0, TR_PERMANENT), worker_spec(1, TR_PERMANENT),
                          relay_spec(2)};
    tr_supervisor_opts o = TR_SUPERVISOR_OPTS_INIT;
    o.strategy = TR_ONE_FOR_ALL;
    o.intensity = 1; /* child 0's restart is within it, one more is not */
    assert_int_equal(tr_supervisor_start(sys, &o, c, 3, &watched), 0);
    assert_int_equal(tr_spawn_loop(sys, down_reporter, NULL, NULL), 0);
    assert_int_equal(test_recv(done_mb).tag, 20);
    wait_started(1, 1);
    wait_started(2, 1);
    fail_child(sys, 0, 1, -42);
    tr_msg d = test_recv(done_mb);
    assert_int_equal(d.tag, 21);
    assert_int_equal((int)(int64_t)d.a, TR_ECANCELED);
    /* Child 1 ends during the relay's stop; nothing is restarted. */
    expect_journal((int[]){1, 2, 3, -1, -2, -3}, 6);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* ---- a child that links to its supervisor itself ------------------------- */

/* A worker that also links to its supervisor: the same link again. */
static int links_its_supervisor(tr_actor *self)
{
    child_starts(self);
    return tr_link(atomic_load(&starting_sup)) ? -1 : work();
}

static int start_sup_linker(tr_system *sys, void *arg, tr_ref *out)
{
    return start_child_body(sys, links_its_supervisor, arg, out);
}

/* The supervisor's half of the link keeps its tag: the child's exit is
 * a child's, restarted alone, not taken for the end of the supervisor's
 * parent (the whole tree stopped). */
static void test_a_child_that_links_to_its_supervisor_is_still_its_child(void **state)
{
    (void)state;
    reset_journal();
    tr_system *sys = test_system(2);
    tr_child_spec c[2] = {worker_spec(0, TR_PERMANENT), worker_spec(1, TR_PERMANENT)};
    c[1].start = start_sup_linker;
    tr_ref sup = start_sup(sys, TR_ONE_FOR_ONE, c, 2);
    fail_child(sys, 1, 1, -42);
    expect_journal((int[]){1, 2, -2, 2}, 4);
    tr_child_info info[2];
    snapshot(sys, sup, info, 2);
    assert_int_equal(info[0].restarts, 0);
    assert_int_equal(info[1].state, TR_CHILD_RUNNING);
    assert_int_equal(info[1].restarts, 1);
    tr_system_free(sys);
}

/* ---- a child that ends before its supervisor links to it ---------------- */

static atomic_int early_starts;

static int quits_on_first(tr_actor *self, tr_msg *m)
{
    (void)self;
    (void)m;
    return TR_STOP;
}

static int stays_up(tr_actor *self, tr_msg *m)
{
    (void)self;
    (void)m;
    return 0;
}

/* Its first life has ended, surely, by the time the supervisor links.
 * This runs in the supervisor, which yields until then. */
static int start_early_ender(tr_system *sys, void *arg, tr_ref *out)
{
    (void)arg;
    bool first = atomic_fetch_add(&early_starts, 1) == 0;
    int rc = tr_spawn(sys, first ? quits_on_first : stays_up, NULL, out);
    if (rc || !first)
        return rc;
    tr_msg m = tr_msg_words(1, 0, 0);
    if ((rc = tr_send(sys, *out, &m, TR_FOREVER)) != 0)
        return rc;
    while (tr_try_send(sys, *out, &m) != TR_ENOACTOR)
        tr_yield(); /* (an actor must not block its worker) */
    return 0;
}

static void test_a_child_that_ended_before_the_link_counts_as_an_exit(void **state)
{
    (void)state;
    const tr_restart types[] = {TR_PERMANENT, TR_TEMPORARY};
    for (int t = 0; t < 2; t++) {
        atomic_store(&early_starts, 0);
        tr_system *sys = test_system(2);
        tr_child_spec spec = {.name = "early", .start = start_early_ender,
                              .restart = types[t], .shutdown_ns = 1000000000};
        tr_ref sup = start_sup(sys, TR_ONE_FOR_ONE, &spec, 1);
        int want_starts = types[t] == TR_PERMANENT ? 2 : 1;
        tr_child_info info = {0};
        size_t n = 0;
        for (int tries = 0; tries < 2000; tries++) {
            assert_int_equal(tr_supervisor_children(sys, sup, &info, 1, &n,
                                                    tr_after_ms(TEST_DEADLINE_MS)), 0);
            if (atomic_load(&early_starts) == want_starts &&
                info.state == (types[t] == TR_PERMANENT ? TR_CHILD_RUNNING : TR_CHILD_STOPPED))
                break;
            usleep(1000);
        }
        usleep(20000); /* and no more starts come */
        assert_int_equal(atomic_load(&early_starts), want_starts);
        assert_int_equal(n, 1);
        if (types[t] == TR_PERMANENT) {
            assert_int_equal(info.state, TR_CHILD_RUNNING);
            assert_int_equal(info.restarts, 1);
        } else {
            assert_int_equal(info.state, TR_CHILD_STOPPED);
            assert_int_equal(info.restarts, 0);
        }
        tr_system_free(sys);
    }
}

static int ends_at_once(tr_actor *self)
{
    (void)self;
    return 0;
}

/* tr_supervisor_start from a thread waits for the spawn backlog only
 * until its deadline: with the only worker held and the backlog full it
 * fails with TR_ETIMEDOUT, having started nothing (ASan: nothing leaks);
 * once the worker is free it starts, and so do its children.  It used to
 * wait with no deadline at all. */
static void test_a_supervisor_started_from_a_thread_keeps_its_deadline(void **state)
{
    (void)state;
    reset_journal();
    tr_system *sys = test_held_system(4);
    tr_spawn_opts so = TR_SPAWN_OPTS_INIT;
    int rc;
    for (int n = 0; (so.deadline = tr_after_ms(20),
                     rc = tr_spawn_loop(sys, ends_at_once, &so, NULL)) == 0;)
        assert_true(++n <= 64);
    assert_int_equal(rc, TR_ETIMEDOUT);
    tr_child_spec spec = worker_spec(0, TR_PERMANENT);
    tr_supervisor_opts o = TR_SUPERVISOR_OPTS_INIT;
    o.deadline = tr_after_ms(20);
    tr_ref sup;
    assert_int_equal(tr_supervisor_start(sys, &o, &spec, 1, &sup), TR_ETIMEDOUT);
    assert_int_equal(atomic_load(&journal_len), 0);
    test_release_worker();
    o.deadline = tr_after_ms(TEST_DEADLINE_MS);
    assert_int_equal(tr_supervisor_start(sys, &o, &spec, 1, &sup), 0);
    expect_journal((int[]){1}, 1);
    tr_system_free(sys);
}

static tr_system *asked_sys;
static tr_ref asked_sup, asker_report;

/* An actor of another system asks asked_sys's supervisor for its
 * children and reports the result. */
static int asks_across_systems(tr_actor *self)
{
    size_t n;
    int rc = tr_supervisor_children(asked_sys, asked_sup, NULL, 0, &n, tr_after_ms(TEST_DEADLINE_MS));
    (void)self;
    return test_send(asked_sys, asker_report, 1, (uint64_t)(int64_t)rc, 0);
}

/* The three requests sent to a ref that names no supervisor (a thread's
 * mailbox, a plain actor) are TR_ENOACTOR at once: they used to be taken
 * in and never answered, so the caller waited until its deadline (for
 * ever with TR_FOREVER).  From an actor of another system they are
 * TR_ECONTEXT, as the header says: it can own no mailbox there. */
static void test_a_request_to_what_is_not_a_supervisor_is_enoactor(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    tr_mailbox *mb;
    assert_int_equal(tr_mailbox_new(sys, 4, &mb), 0);
    tr_ref plain;
    assert_int_equal(tr_spawn_loop(sys, test_sleep_for_ever, NULL, &plain), 0);
    tr_ref not_supervisors[] = {tr_mailbox_ref(mb), plain};
    tr_child_spec spec = worker_spec(0, TR_TEMPORARY);
    for (int i = 0; i < 2; i++) {
        tr_ref to = not_supervisors[i];
        size_t n;
        tr_ref child;
        assert_int_equal(tr_supervisor_children(sys, to, NULL, 0, &n, TR_FOREVER), TR_ENOACTOR);
        assert_int_equal(tr_supervisor_start_child(sys, to, &spec, &child, TR_FOREVER), TR_ENOACTOR);
        assert_int_equal(tr_supervisor_terminate_child(sys, to, plain, TR_FOREVER), TR_ENOACTOR);
    }
    tr_msg stray;
    assert_int_equal(tr_mailbox_recv(mb, &stray, TR_NOW), TR_ETIMEDOUT); /* nothing was sent */

    tr_system *other = test_system(1);
    asked_sys = sys;
    assert_int_equal(tr_supervisor_start(sys, NULL, &spec, 1, &asked_sup), 0);
    asker_report = tr_mailbox_ref(mb);
    assert_int_equal(tr_spawn_loop(other, asks_across_systems, NULL, NULL), 0);
    tr_msg r = test_recv(mb);
    assert_int_equal((int)(int64_t)r.a, TR_ECONTEXT);
    tr_system_free(other);
    tr_mailbox_free(mb);
    tr_system_free(sys);
}

/* What the three requests returned when a start function sent them to
 * its own supervisor; 1 until then. */
static _Atomic int self_asked[3] = {1, 1, 1};

/* Asks the supervisor it runs in, then starts worker 0 as usual. */
static int start_asking_itself(tr_system *sys, void *arg, tr_ref *out)
{
    size_t n;
    tr_child_spec spec = worker_spec(1, TR_TEMPORARY);
    tr_ref child;
    tr_deadline dl = tr_after_ms(TEST_DEADLINE_MS); /* the old code's hang ends */
    atomic_store(&self_asked[0], tr_supervisor_children(sys, tr_self(), NULL, 0, &n, dl));
    atomic_store(&self_asked[1], tr_supervisor_start_child(sys, tr_self(), &spec, &child, dl));
    atomic_store(&self_asked[2], tr_supervisor_terminate_child(sys, tr_self(), tr_self(), dl));
    return start_worker(sys, arg, out);
}

/* A supervisor that asks itself (here from a child's start function,
 * which runs inside it) gets TR_EDEADLK at once: the request used to go
 * to its own mailbox, and it waited for an answer only it could give,
 * for ever with TR_FOREVER.  It starts the child all the same. */
static void test_a_supervisor_asking_itself_gets_edeadlk(void **state)
{
    (void)state;
    reset_journal();
    tr_system *sys = test_system(2);
    tr_child_spec spec = worker_spec(0, TR_PERMANENT);
    spec.start = start_asking_itself;
    tr_ref sup = start_sup(sys, TR_ONE_FOR_ONE, &spec, 1);
    expect_journal((int[]){1}, 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&self_asked[i]), TR_EDEADLK);
    size_t n = 0;
    assert_int_equal(tr_supervisor_children(sys, sup, NULL, 0, &n, tr_after_ms(TEST_DEADLINE_MS)), 0);
    assert_int_equal(n, 1); /* no child was added */
    tr_system_free(sys);
}

/* Ways for a start function to start nothing, and still say 0 or
 * something that is no error code. */
enum { BAD_POSITIVE, BAD_NO_REF, BAD_OWN_REF, BAD_MAILBOX_REF, BADS };
static tr_ref bad_mailbox_ref;

static int start_badly(tr_system *sys, void *arg, tr_ref *out)
{
    (void)sys;
    switch ((int)(intptr_t)arg) {
    case BAD_POSITIVE:
        return 5;
    case BAD_OWN_REF:
        *out = tr_self();
        return 0;
    case BAD_MAILBOX_REF:
        *out = bad_mailbox_ref;
        return 0;
    default:
        return 0;
    }
}

/* Worker 0 the first time, then a positive return. */
static int start_then_return_positive(tr_system *sys, void *arg, tr_ref *out)
{
    return atomic_load(&starts[0]) ? 5 : start_worker(sys, arg, out);
}

static tr_ref watched_sup, watch_report;

/* Monitors watched_sup, says so, then reports its exit reason. */
static int reports_sup_end(tr_actor *self)
{
    tr_system *sys = tr_actor_system(self);
    tr_ref mon;
    if (tr_monitor(watched_sup, &mon))
        return -1;
    test_send(sys, watch_report, 1, 0, 0);
    tr_msg m;
    if (tr_recv(&m, tr_after_ms(TEST_DEADLINE_MS)) || m.tag != TR_TAG_DOWN)
        return -2;
    tr_notice n;
    tr_notice_read(&m, &n);
    tr_msg_release(&m);
    return test_send(sys, watch_report, 2, (uint64_t)(int64_t)n.reason, 0);
}

/* A start function that returns a positive number, or 0 with no child
 * (no ref, the supervisor's own, a mailbox's), failed to start: TR_EINVAL,
 * to tr_supervisor_start_child, or as the supervisor's exit reason when a
 * restart fails so.  A positive return used to pass for an error code
 * (the supervisor ended with 5), and the supervisor's own ref made it
 * cancel itself, even for a dynamic child, whose caller got TR_EINVAL. */
static void test_a_start_function_that_starts_nothing_is_a_failed_start(void **state)
{
    (void)state;
    reset_journal();
    tr_system *sys = test_system(2);
    tr_mailbox *mb;
    assert_int_equal(tr_mailbox_new(sys, 4, &mb), 0);
    bad_mailbox_ref = watch_report = tr_mailbox_ref(mb);
    tr_child_spec spec = worker_spec(0, TR_PERMANENT);
    spec.start = start_then_return_positive;
    tr_ref sup = watched_sup = start_sup(sys, TR_ONE_FOR_ONE, &spec, 1);
    expect_journal((int[]){1}, 1);
    for (int k = 0; k < BADS; k++) {
        tr_child_spec bad = {.name = "bad", .start = start_badly, .arg = (void *)(intptr_t)k};
        tr_ref child = 1;
        assert_int_equal(tr_supervisor_start_child(sys, sup, &bad, &child, tr_after_ms(TEST_DEADLINE_MS)),
                         TR_EINVAL);
        assert_int_equal(child, 1); /* not set */
        size_t n = 0;
        assert_int_equal(tr_supervisor_children(sys, sup, NULL, 0, &n, tr_after_ms(TEST_DEADLINE_MS)), 0);
        assert_int_equal(n, 1); /* still there, with only its first child */
    }
    assert_int_equal(tr_spawn_loop(sys, reports_sup_end, NULL, NULL), 0);
    assert_int_equal(test_recv(mb).tag, 1);
    fail_child(sys, 0, 1, -42); /* its restart returns 5 */
    tr_msg end = test_recv(mb);
    assert_int_equal(end.tag, 2);
    assert_int_equal((int)(int64_t)end.a, TR_EINVAL);
    tr_mailbox_free(mb);
    tr_system_free(sys);
}

static void test_bad_supervisor_arguments(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    tr_child_spec ok = worker_spec(0, TR_PERMANENT), bad = ok;
    bad.start = NULL;
    tr_ref r;
    tr_supervisor_opts o = TR_SUPERVISOR_OPTS_INIT;
    assert_int_equal(tr_supervisor_start(NULL, NULL, &ok, 1, &r), TR_EINVAL);
    assert_int_equal(tr_supervisor_start(sys, NULL, &bad, 1, &r), TR_EINVAL);
    assert_int_equal(tr_supervisor_start(sys, NULL, NULL, 1, &r), TR_EINVAL);
    bad = ok;
    bad.kind = (tr_child_kind)7;
    assert_int_equal(tr_supervisor_start(sys, NULL, &bad, 1, &r), TR_EINVAL);
    bad = ok;
    bad.shutdown_ns = -1;
    assert_int_equal(tr_supervisor_start(sys, NULL, &bad, 1, &r), TR_EINVAL);
    bad.restart = (tr_restart)9;
    assert_int_equal(tr_supervisor_start(sys, NULL, &bad, 1, &r), TR_EINVAL);
    o.strategy = 7;
    assert_int_equal(tr_supervisor_start(sys, &o, &ok, 1, &r), TR_EINVAL);
    o = TR_SUPERVISOR_OPTS_INIT;
    o.backoff_cap_ns = -1;
    o.backoff_base_ns = 5;
    assert_int_equal(tr_supervisor_start(sys, &o, &ok, 1, &r), TR_EINVAL);
    /* A negative reset, like a negative base, is refused: it was taken
     * (and meant "reset after every run"). */
    o = TR_SUPERVISOR_OPTS_INIT;
    o.backoff_reset_ns = -5;
    assert_int_equal(tr_supervisor_start(sys, &o, &ok, 1, &r), TR_EINVAL);
    o.backoff_reset_ns = INT64_MIN;
    assert_int_equal(tr_supervisor_start(sys, &o, &ok, 1, &r), TR_EINVAL);
    size_t n;
    assert_int_equal(tr_supervisor_children(sys, 12345, NULL, 0, &n, tr_after_ms(100)),
                     TR_ENOACTOR);
    tr_system_free(sys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_for_one_restarts_only_the_failed_child),
        cmocka_unit_test(test_one_for_all_stops_the_rest_in_reverse_then_restarts_all_in_order),
        cmocka_unit_test(test_rest_for_one_restarts_the_failed_child_and_those_after_it),
        cmocka_unit_test(test_transient_and_temporary_children),
        cmocka_unit_test(test_intensity_escalates_through_two_levels),
        cmocka_unit_test(test_restart_delays_back_off_within_their_bounds),
        cmocka_unit_test(test_a_backoff_beyond_the_clock_waits_for_ever),
        cmocka_unit_test(test_a_backoff_doubled_beyond_the_clock_waits_for_ever),
        cmocka_unit_test(test_cancelling_a_three_level_tree_ends_every_leaf_once),
        cmocka_unit_test(test_stop_at_once_ends_every_child),
        cmocka_unit_test(test_dynamic_children_start_stop_and_respect_the_limit),
        cmocka_unit_test(test_a_request_during_the_final_stop_is_answered_enoactor),
        cmocka_unit_test(test_a_request_left_when_another_systems_actor_shuts_down_is_answered),
        cmocka_unit_test(test_random_failures_and_cancellations_add_up),
        cmocka_unit_test(test_an_exit_with_int_min_during_a_stop_is_handled),
        cmocka_unit_test(test_a_supervisor_cancelled_in_a_group_restart_ends_ecanceled),
        cmocka_unit_test(test_a_child_that_links_to_its_supervisor_is_still_its_child),
        cmocka_unit_test(test_a_child_that_ended_before_the_link_counts_as_an_exit),
        cmocka_unit_test(test_a_supervisor_started_from_a_thread_keeps_its_deadline),
        cmocka_unit_test(test_a_request_to_what_is_not_a_supervisor_is_enoactor),
        cmocka_unit_test(test_a_supervisor_asking_itself_gets_edeadlk),
        cmocka_unit_test(test_a_start_function_that_starts_nothing_is_a_failed_start),
        cmocka_unit_test(test_bad_supervisor_arguments),
    };
    return cmocka_run_group_tests_name("supervisor", tests, NULL, NULL);
}
