/*
 * test_abandon.c - children that do not stop within their shutdown time.
 * The supervisor abandons them: they end with TR_EKILLED at their next
 * blocking call, or at once if they are parked in one (even shielded),
 * their code after that call never runs, their cleanup handlers do, and
 * the log hook hears of it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "support.h"
#include "runtime.h"

enum { TAG_READY = 1, TAG_DOWN = 2 };

static tr_mailbox *report_mb;
static atomic_int cleanups;
static _Atomic tr_ref stubborn_ref, grandchild_ref;
static atomic_bool grandchild_ended;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[4096];

static void log_hook(void *arg, const char *line)
{
    (void)arg;
    pthread_mutex_lock(&log_lock);
    strncat(log_text, line, sizeof log_text - strlen(log_text) - 2);
    strcat(log_text, "\n");
    pthread_mutex_unlock(&log_lock);
}

static bool logged(const char *what)
{
    pthread_mutex_lock(&log_lock);
    bool found = strstr(log_text, what) != NULL;
    pthread_mutex_unlock(&log_lock);
    return found;
}

static tr_system *logging_system(void)
{
    log_text[0] = '\0';
    atomic_store(&cleanups, 0);
    tr_config cfg = TR_CONFIG_INIT;
    cfg.workers = 2; /* a stubborn child keeps one busy */
    cfg.log = log_hook;
    tr_system *sys;
    assert_int_equal(tr_system_new(&cfg, &sys), 0);
    assert_int_equal(tr_mailbox_new(sys, 16, &report_mb), 0);
    return sys;
}

static void count_cleanup(void *arg)
{
    (void)arg;
    atomic_fetch_add(&cleanups, 1);
}

/* Monitors the refs in its state (up to two, 0-terminated) and reports
 * each DOWN: who, and with what reason. */
static int watcher(tr_actor *self)
{
    tr_ref *refs = tr_actor_state(self);
    tr_system *sys = tr_actor_system(self);
    int n = 0;
    for (tr_ref mon; n < 2 && refs[n]; n++)
        if (tr_monitor(refs[n], &mon))
            return -1;
    test_send(sys, tr_mailbox_ref(report_mb), TAG_READY, 0, 0);
    for (int i = 0; i < n; i++) {
        tr_msg m;
        tr_notice what;
        if (tr_recv(&m, tr_after_ms(TEST_DEADLINE_MS)) || tr_notice_read(&m, &what))
            return -2;
        test_send(sys, tr_mailbox_ref(report_mb), TAG_DOWN, what.who,
                  (uint64_t)(int64_t)what.reason);
        tr_msg_release(&m);
    }
    return 0;
}

static void watch(tr_system *sys, tr_ref *refs)
{
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.state = refs;
    assert_int_equal(tr_spawn_loop(sys, watcher, &o, NULL), 0);
    assert_int_equal(test_recv(report_mb).tag, TAG_READY);
}

static tr_ref wait_for_ref(_Atomic tr_ref *ref)
{
    for (int tries = 0; !atomic_load(ref) && tries < 20000; tries++)
        usleep(1000);
    assert_true(atomic_load(ref) != TR_REF_NONE);
    return atomic_load(ref);
}

/* ---- a child that ignores its cancel ------------------------------------ */

/*
 * Goes on for up to 5 seconds after its cancel, yielding (which says
 * TR_ECANCELED) and asking again: only abandonment ends it before then,
 * with TR_EKILLED, where its own end would be -1.  It yields, so its
 * worker still runs the others; one that never yields cannot be stopped
 * at all (supervisor.h).
 */
static int stubborn(tr_actor *self)
{
    tr_defer(count_cleanup, NULL);
    atomic_store(&stubborn_ref, tr_actor_ref(self));
    tr_msg m;
    while (tr_recv(&m, TR_FOREVER) == 0)
        tr_msg_release(&m);
    for (int64_t give_up = tr_now() + 5000000000ll; tr_now() < give_up;)
        tr_yield();
    return -1;
}

static int start_stubborn(tr_system *sys, void *arg, tr_ref *out)
{
    (void)arg;
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.name = "stubborn";
    return tr_spawn_loop(sys, stubborn, &o, out);
}

static void test_a_child_that_ignores_its_cancel_ends_at_its_next_call(void **state)
{
    (void)state;
    tr_system *sys = logging_system();
    atomic_store(&stubborn_ref, TR_REF_NONE);
    tr_child_spec spec = {.name = "stubborn", .start = start_stubborn,
                          .restart = TR_PERMANENT, .shutdown_ns = 50000000};
    tr_supervisor_opts o = TR_SUPERVISOR_OPTS_INIT;
    tr_ref sup;
    assert_int_equal(tr_supervisor_start(sys, &o, &spec, 1, &sup), 0);
    tr_ref refs[2] = {wait_for_ref(&stubborn_ref), TR_REF_NONE};
    watch(sys, refs);

    int64_t t0 = tr_now();
    int reason = 0;
    assert_int_equal(tr_cancel_wait(sys, sup, tr_after_ms(TEST_DEADLINE_MS), &reason), 0);
    assert_int_equal(reason, TR_ECANCELED);
    assert_true(tr_now() - t0 >= 50000000); /* it gave the child its time */
    tr_msg down = test_recv(report_mb);
    assert_int_equal(down.tag, TAG_DOWN);
    assert_int_equal(down.a, refs[0]);
    assert_int_equal((int64_t)down.b, TR_EKILLED);
    assert_int_equal(atomic_load(&cleanups), 1);
    assert_true(logged("child 'stubborn'"));
    assert_true(logged("abandoned"));
    tr_mailbox_free(report_mb);
    tr_system_free(sys);
}

/* ---- an abandoned sender's payload ---------------------------------------- */

static atomic_int payloads_made, payloads_freed;
static tr_ref full_box;

static void free_payload(void *ptr, size_t len)
{
    (void)len;
    free(ptr);
    atomic_fetch_add(&payloads_freed, 1);
}

static atomic_bool go_on;
static atomic_int sends_returned;

/* Busy (not blocked) when it is abandoned, then sends a payload, or
 * selects with one in a send case: the call ends it, and the payload it
 * carried goes with it. */
static int sends_after_go(tr_actor *self)
{
    bool by_select = tr_actor_state(self) != NULL;
    atomic_store(&stubborn_ref, tr_actor_ref(self));
    while (!atomic_load(&go_on))
        ;
    tr_msg m = tr_msg_buf(5, malloc(16), 16, free_payload);
    atomic_fetch_add(&payloads_made, 1);
    if (by_select) {
        tr_select_case c = {.op = TR_SELECT_SEND, .to = full_box, .msg = m};
        tr_select(tr_actor_system(self), &c, 1, 0, TR_FOREVER);
    } else {
        tr_send(tr_actor_system(self), full_box, &m, TR_FOREVER);
    }
    atomic_fetch_add(&sends_returned, 1); /* never */
    return 0;
}

static void test_an_abandoned_sender_loses_no_payload(void **state)
{
    (void)state;
    for (int by_select = 0; by_select < 2; by_select++) {
        tr_system *sys = logging_system();
        atomic_store(&stubborn_ref, TR_REF_NONE);
        atomic_store(&go_on, false);
        atomic_store(&payloads_made, 0);
        atomic_store(&payloads_freed, 0);
        atomic_store(&sends_returned, 0);
        tr_mailbox *full;
        assert_int_equal(tr_mailbox_new(sys, 1, &full), 0);
        full_box = tr_mailbox_ref(full);
        assert_int_equal(test_send(sys, full_box, 1, 0, 0), 0); /* now full */
        tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
        o.state = by_select ? &go_on : NULL;
        assert_int_equal(tr_spawn_loop(sys, sends_after_go, &o, NULL), 0);
        tr_ref refs[2] = {wait_for_ref(&stubborn_ref), TR_REF_NONE};
        watch(sys, refs);
        assert_int_equal(tr__abandon(sys, refs[0]), 0);
        atomic_store(&go_on, true);
        tr_msg down = test_recv(report_mb);
        assert_int_equal((int64_t)down.b, TR_EKILLED);
        assert_int_equal(atomic_load(&sends_returned), 0);
        assert_int_equal(atomic_load(&payloads_made), 1);
        assert_int_equal(atomic_load(&payloads_freed), 1);
        tr_mailbox_free(full);
        tr_mailbox_free(report_mb);
        tr_system_free(sys);
    }
}

/* ---- a supervisor parked in a shielded wait ------------------------------ */

/* Ignores its cancel for 500 ms, spinning on tr_yield (which says
 * TR_ECANCELED at once), then ends. */
static int slow_grandchild(tr_actor *self)
{
    atomic_store(&grandchild_ref, tr_actor_ref(self));
    int64_t until = 0;
    for (;;) {
        if (tr_yield() == TR_ECANCELED && !until)
            until = tr_now() + 500000000;
        if (until && tr_now() > until)
            break;
    }
    atomic_store(&grandchild_ended, true);
    return 0;
}

static int start_slow_grandchild(tr_system *sys, void *arg, tr_ref *out)
{
    (void)arg;
    return tr_spawn_loop(sys, slow_grandchild, NULL, out);
}

/* A supervisor that gives its child 10 s to stop. */
static int start_patient_sup(tr_system *sys, void *arg, tr_ref *out)
{
    (void)arg;
    static const tr_child_spec spec = {.name = "slow", .start = start_slow_grandchild,
                                       .restart = TR_PERMANENT,
                                       .shutdown_ns = 10000000000ll};
    return tr_supervisor_start(sys, NULL, &spec, 1, out);
}

/* A supervisor `top` over one child supervisor ("patient", with the
 * given shutdown time) over one grandchild; both watched.  Returns the
 * grandchild's ref. */
static tr_ref start_watched_patient_tree(tr_system *sys, int64_t shutdown_ns,
                                         tr_ref *top, tr_ref *child_sup)
{
    atomic_store(&grandchild_ref, TR_REF_NONE);
    atomic_store(&grandchild_ended, false);
    tr_child_spec spec = {.name = "patient", .start = start_patient_sup,
                          .restart = TR_PERMANENT, .shutdown_ns = shutdown_ns,
                          .kind = TR_CHILD_SUPERVISOR};
    assert_int_equal(tr_supervisor_start(sys, NULL, &spec, 1, top), 0);
    tr_ref grandchild = wait_for_ref(&grandchild_ref);
    tr_child_info info;
    size_t n = 0;
    assert_int_equal(tr_supervisor_children(sys, *top, &info, 1, &n,
                                            tr_after_ms(TEST_DEADLINE_MS)), 0);
    assert_int_equal(n, 1);
    assert_int_equal(info.kind, TR_CHILD_SUPERVISOR);
    *child_sup = info.ref;
    tr_ref refs[3] = {info.ref, grandchild, TR_REF_NONE};
    watch(sys, refs);
    return grandchild;
}

/*
 * The parent gives the child supervisor 50 ms.  The child supervisor is
 * then parked, shielded, waiting for its own child; abandoned, it ends at
 * once with TR_EKILLED, long before the grandchild it was waiting for,
 * and it never goes back to waiting.  The grandchild, linked to it, is
 * ended by its exit with the same reason when it next stops ignoring.
 */
static void test_a_parked_shielded_supervisor_is_abandoned_without_resuming(void **state)
{
    (void)state;
    tr_system *sys = logging_system();
    tr_ref top, child_sup;
    tr_ref grandchild = start_watched_patient_tree(sys, 50000000, &top, &child_sup);

    int reason = 0;
    assert_int_equal(tr_cancel_wait(sys, top, tr_after_ms(TEST_DEADLINE_MS), &reason), 0);
    assert_int_equal(reason, TR_ECANCELED);
    tr_msg first = test_recv(report_mb);
    assert_int_equal(first.a, child_sup); /* the child supervisor, first */
    assert_int_equal((int64_t)first.b, TR_EKILLED);
    assert_false(atomic_load(&grandchild_ended)); /* it did not wait for it */
    assert_true(logged("child 'patient'"));
    tr_msg second = test_recv(report_mb);
    assert_int_equal(second.a, grandchild);
    assert_int_equal((int64_t)second.b, TR_EKILLED); /* the link's reason */
    assert_true(atomic_load(&grandchild_ended));
    tr_mailbox_free(report_mb);
    tr_system_free(sys);
}

/*
 * A child supervisor whose shutdown_ns is 0 is given as long as its own
 * children take (OTP's infinity): here the grandchild's half second, and
 * it ends cancelled, not abandoned, after its child.
 */
static void test_a_supervisor_child_with_no_shutdown_time_waits_for_its_tree(void **state)
{
    (void)state;
    tr_system *sys = logging_system();
    tr_ref top, child_sup;
    tr_ref grandchild = start_watched_patient_tree(sys, 0, &top, &child_sup);
    int reason = 0;
    assert_int_equal(tr_cancel_wait(sys, top, tr_after_ms(TEST_DEADLINE_MS), &reason), 0);
    assert_true(atomic_load(&grandchild_ended)); /* the whole tree first */
    /* The two DOWNs come from two actors, in either order (the grandchild
     * tells its link before its monitors). */
    tr_msg first = test_recv(report_mb), second = test_recv(report_mb);
    tr_msg sup_down = first.a == child_sup ? first : second;
    assert_int_equal(sup_down.a, child_sup);
    assert_int_equal((first.a == child_sup ? second : first).a, grandchild);
    assert_int_equal((int64_t)sup_down.b, TR_ECANCELED);
    assert_false(logged("abandoned"));
    tr_mailbox_free(report_mb);
    tr_system_free(sys);
}

/* ---- the requests of an abandoned supervisor ------------------------------ */

static atomic_bool in_start;

/* A start function that yields until its supervisor is abandoned, which
 * ends the supervisor right there (it gives up at the test's deadline). */
static int start_forever(tr_system *sys, void *arg, tr_ref *out)
{
    (void)sys;
    (void)arg;
    (void)out;
    atomic_store(&in_start, true);
    for (int64_t give_up = tr_now() + TEST_DEADLINE_MS * 1000000ll; tr_now() < give_up;)
        tr_yield();
    return TR_ETIMEDOUT;
}

typedef struct asker {
    tr_system *sys;
    tr_ref sup;
    pthread_t thread;
    int rc;
} asker;

static void *ask_start_forever(void *arg)
{
    asker *a = arg;
    tr_child_spec c = {.start = start_forever, .shutdown_ns = 1000000};
    tr_ref child;
    a->rc = tr_supervisor_start_child(a->sys, a->sup, &c, &child, tr_after_ms(TEST_DEADLINE_MS));
    return NULL;
}

static void ask_on_a_thread(asker *a, tr_system *sys, tr_ref sup)
{
    *a = (asker){.sys = sys, .sup = sup, .rc = 1};
    assert_int_equal(pthread_create(&a->thread, NULL, ask_start_forever, a), 0);
}

/*
 * A supervisor abandoned in the middle of a request (inside the start
 * function of a child it was asked to add), with another request waiting
 * in its mailbox: it ends with TR_EKILLED, and both askers hear
 * TR_ENOACTOR then, not at their deadline.
 */
static void test_an_abandoned_supervisor_answers_its_requests_enoactor(void **state)
{
    (void)state;
    tr_system *sys = logging_system();
    atomic_store(&in_start, false);
    tr_ref sup;
    assert_int_equal(tr_supervisor_start(sys, NULL, NULL, 0, &sup), 0);
    tr_ref refs[2] = {sup, TR_REF_NONE};
    watch(sys, refs);
    asker in_flight, queued;
    ask_on_a_thread(&in_flight, sys, sup);
    for (int tries = 0; !atomic_load(&in_start) && tries < 20000; tries++)
        usleep(1000);
    assert_true(atomic_load(&in_start));
    ask_on_a_thread(&queued, sys, sup);
    uint32_t depth = 0;
    for (int tries = 0; depth != 1 && tries < 20000; tries++) {
        assert_int_equal(tr_mailbox_depth(sys, sup, &depth, NULL), 0);
        usleep(1000);
    }
    assert_int_equal(depth, 1); /* it does not receive while in the start function */
    assert_int_equal(tr__abandon(sys, sup), 0);
    tr_msg down = test_recv(report_mb);
    assert_int_equal(down.a, sup);
    assert_int_equal((int64_t)down.b, TR_EKILLED);
    assert_int_equal(pthread_join(in_flight.thread, NULL), 0);
    assert_int_equal(pthread_join(queued.thread, NULL), 0);
    assert_int_equal(in_flight.rc, TR_ENOACTOR);
    assert_int_equal(queued.rc, TR_ENOACTOR);
    tr_mailbox_free(report_mb);
    tr_system_free(sys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_child_that_ignores_its_cancel_ends_at_its_next_call),
        cmocka_unit_test(test_a_parked_shielded_supervisor_is_abandoned_without_resuming),
        cmocka_unit_test(test_an_abandoned_sender_loses_no_payload),
        cmocka_unit_test(test_a_supervisor_child_with_no_shutdown_time_waits_for_its_tree),
        cmocka_unit_test(test_an_abandoned_supervisor_answers_its_requests_enoactor),
    };
    return cmocka_run_group_tests_name("abandon", tests, NULL, NULL);
}
