/* test_select.c - mailboxes as values, closing, tr_select (fairness,
 * send cases, deadlines, cancellation safety) and deadlock cycles. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "fail_malloc.h"
#include "support.h"
#include "runtime.h"

static tr_mailbox *done_mb;   /* the main thread's: actors report here */

static void report(tr_actor *self, uint64_t tag, uint64_t a, uint64_t b)
{
    test_send(tr_actor_system(self), tr_mailbox_ref(done_mb), tag, a, b);
}

static atomic_int freed;
static void count_free(void *ptr, size_t len)
{
    (void)ptr;
    (void)len;
    atomic_fetch_add(&freed, 1);
}

/* ---- an actor owns more mailboxes ---------------------------------------- */

enum { TAG_REFS = 1, TAG_GOT, TAG_RC };

/* Makes two mailboxes, tells main their refs, takes 5 from each in turn,
 * then checks it is alone in owning them and leaves three queued. */
static int two_boxes(tr_actor *self)
{
    tr_mailbox *a, *b;
    tr_system *sys = tr_actor_system(self);
    if (tr_mailbox_new(sys, 8, &a) || tr_mailbox_new(sys, 8, &b))
        return TR_ENOMEM;
    report(self, TAG_REFS, tr_mailbox_ref(a), tr_mailbox_ref(b));
    uint64_t sum = 0;
    for (int i = 0; i < 5; i++) {
        tr_msg m;
        if (tr_mailbox_recv(a, &m, tr_after_ms(TEST_DEADLINE_MS)) || m.tag != 10)
            return -100;
        sum += m.a;
        if (tr_mailbox_recv(b, &m, tr_after_ms(TEST_DEADLINE_MS)) || m.tag != 20)
            return -101;
        sum += m.a * 1000;
    }
    report(self, TAG_GOT, sum, 0);
    tr_msg m;
    return tr_recv(&m, tr_after_ms(TEST_DEADLINE_MS)); /* main says go */
}

/* Try word messages to `ref` until it is stale; the last result. */
static int send_until_stale(tr_system *sys, tr_ref ref, uint64_t tag)
{
    int rc = 0;
    for (int i = 0; i < 20000 && rc != TR_ENOACTOR; i++) {
        tr_msg m = tr_msg_words(tag, 0, 0);
        rc = tr_try_send(sys, ref, &m);
        if (rc != TR_ENOACTOR && rc != TR_ECLOSED)
            usleep(1000);
    }
    return rc;
}

static void test_actor_owns_more_mailboxes_and_they_close_when_it_exits(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 8, &done_mb), 0);
    tr_ref actor;
    assert_int_equal(tr_spawn_loop(sys, two_boxes, NULL, &actor), 0);
    tr_msg refs = test_recv(done_mb);
    assert_int_equal(refs.tag, TAG_REFS);
    for (uint64_t i = 1; i <= 5; i++) {
        tr_msg m = tr_msg_words(20, i, 0);
        assert_int_equal(tr_send(sys, refs.b, &m, tr_after_ms(TEST_DEADLINE_MS)), 0);
        m = tr_msg_words(10, i, 0);
        assert_int_equal(tr_send(sys, refs.a, &m, tr_after_ms(TEST_DEADLINE_MS)), 0);
    }
    tr_msg got = test_recv(done_mb);
    assert_int_equal(got.tag, TAG_GOT);
    assert_int_equal(got.a, 15 + 15000);
    assert_int_equal(got.from, actor);
    /* Three payloads stay queued in `a`: the actor's exit releases them. */
    atomic_store(&freed, 0);
    for (int i = 0; i < 3; i++) {
        tr_msg m = tr_msg_buf(10, NULL, 0, count_free);
        assert_int_equal(tr_send(sys, refs.a, &m, TR_NOW), 0);
    }
    tr_msg go = tr_msg_words(1, 0, 0);
    assert_int_equal(tr_send(sys, actor, &go, TR_NOW), 0);
    /* Once it is gone, its mailboxes' refs are stale (each in turn: a
     * send to `b` can still get in while `a` goes). */
    assert_int_equal(send_until_stale(sys, refs.a, 10), TR_ENOACTOR);
    assert_int_equal(send_until_stale(sys, refs.b, 20), TR_ENOACTOR);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
    assert_int_equal(atomic_load(&freed), 3);
}

/* ---- closing: drain, then TR_ECLOSED; parked senders wake ------------------ */

static tr_ref box_ref;

static int closer(tr_actor *self)
{
    tr_mailbox *mb;
    tr_system *sys = tr_actor_system(self);
    if (tr_mailbox_new(sys, 1, &mb))
        return TR_ENOMEM;
    box_ref = tr_mailbox_ref(mb);
    report(self, TAG_REFS, box_ref, 0);
    tr_msg m;
    tr_recv(&m, tr_after_ms(TEST_DEADLINE_MS)); /* main: the box is full and a sender waits */
    if (tr_mailbox_close(mb) || tr_mailbox_close(mb))
        return -1;
    int first = tr_mailbox_recv(mb, &m, TR_NOW);    /* the queued message */
    int second = tr_mailbox_recv(mb, &m, TR_FOREVER); /* closed and drained */
    report(self, TAG_RC, (uint64_t)-first, (uint64_t)-second);
    tr_recv(&m, tr_after_ms(TEST_DEADLINE_MS));
    return 0;
}

static int stuck_sender(tr_actor *self)
{
    tr_msg m = tr_msg_words(5, 2, 0);
    int rc = tr_send(tr_actor_system(self), box_ref, &m, tr_after_ms(TEST_DEADLINE_MS));
    report(self, TAG_RC, (uint64_t)-rc, 1);
    return 0;
}

static void test_close_drains_then_eclosed_and_wakes_parked_senders(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 8, &done_mb), 0);
    tr_ref c;
    assert_int_equal(tr_spawn_loop(sys, closer, NULL, &c), 0);
    assert_int_equal(test_recv(done_mb).tag, TAG_REFS);
    tr_msg m = tr_msg_words(5, 1, 0);
    assert_int_equal(tr_send(sys, box_ref, &m, TR_NOW), 0);
    assert_int_equal(tr_try_send(sys, box_ref, &m), TR_EFULL);
    assert_int_equal(tr_spawn_loop(sys, stuck_sender, NULL, NULL), 0);
    /* The sender parks on the full box; give it time, then close. */
    usleep(50000);
    assert_int_equal(tr_send(sys, c, &m, TR_NOW), 0);
    int seen = 0;
    for (int i = 0; i < 2; i++) {
        tr_msg r = test_recv(done_mb);
        assert_int_equal(r.tag, TAG_RC);
        if (r.b == 1) { /* the parked sender */
            assert_int_equal(-(int)r.a, TR_ECLOSED);
        } else {
            assert_int_equal((int)r.a, 0);
            assert_int_equal(-(int)r.b, TR_ECLOSED);
        }
        seen |= 1 << (r.b == 1);
    }
    assert_int_equal(seen, 3);
    assert_int_equal(tr_try_send(sys, box_ref, &m), TR_ECLOSED);
    assert_int_equal(tr_mailbox_close(NULL), TR_EINVAL);
    assert_int_equal(tr_send(sys, c, &m, TR_NOW), 0);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* ---- select on a thread's own mailboxes: fairness and bias ----------------- */

static void fill(tr_system *sys, tr_mailbox *mb, int n, uint64_t tag)
{
    for (int i = 0; i < n; i++) {
        tr_msg m = tr_msg_words(tag, (uint64_t)i, 0);
        assert_int_equal(tr_send(sys, tr_mailbox_ref(mb), &m, TR_NOW), 0);
    }
}

static void test_select_takes_ready_cases_in_rotation_or_in_order_when_biased(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    enum { N = 4, EACH = 1000 };
    tr_mailbox *mb[N];
    tr_select_case cs[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(tr_mailbox_new(sys, EACH * N, &mb[i]), 0);
        fill(sys, mb[i], EACH * N / 2, (uint64_t)i);
        cs[i] = (tr_select_case){.op = TR_SELECT_RECV, .mailbox = mb[i]};
    }
    /* All four stay ready for the first EACH*N/2 selects: in rotation,
     * each fires once every four. */
    int picks[N] = {0}, last = -1;
    uint64_t next[N] = {0};
    for (int k = 0; k < EACH * N / 2; k++) {
        int r = tr_select(sys, cs, N, 0, TR_NOW);
        assert_true(r >= 0 && r < N);
        assert_int_equal(cs[r].rc, 0);
        assert_int_equal(cs[r].msg.tag, (uint64_t)r);
        assert_int_equal(cs[r].msg.a, next[r]++); /* each mailbox in order, none skipped */
        if (last >= 0)
            assert_int_equal(r, (last + 1) % N);
        last = r;
        picks[r]++;
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(picks[i], EACH / 2);
    /* Only the first and the last ready: they take turns, the busy one
     * does not starve the other. */
    tr_mailbox *only[2] = {mb[1], mb[2]};
    for (int j = 0; j < 2; j++) {
        tr_msg m;
        while (tr_mailbox_recv(only[j], &m, TR_NOW) == 0)
            next[j + 1]++;
    }
    for (int k = 0; k < 200; k++) {
        int r = tr_select(sys, cs, N, 0, TR_NOW);
        assert_true(r == 0 || r == N - 1);
        assert_int_equal(cs[r].msg.a, next[r]++);
        assert_true(r != last);
        last = r;
    }
    /* Biased: the first ready case always wins. */
    for (int k = 0; k < 100; k++) {
        int r = tr_select(sys, cs, N, TR_SELECT_BIASED, TR_NOW);
        assert_int_equal(r, 0);
        assert_int_equal(cs[0].msg.a, next[0]++);
    }
    /* Everything left is still there: nothing was lost on other cases. */
    for (int i = 0; i < N; i++) {
        uint32_t depth;
        assert_int_equal(tr_mailbox_depth(sys, tr_mailbox_ref(mb[i]), &depth, NULL), 0);
        assert_int_equal(depth + next[i], EACH * N / 2);
        tr_mailbox_free(mb[i]);
    }
    tr_system_free(sys);
}

static void test_select_times_out_and_takes_nothing(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    tr_mailbox *a, *b;
    assert_int_equal(tr_mailbox_new(sys, 4, &a), 0);
    assert_int_equal(tr_mailbox_new(sys, 4, &b), 0);
    tr_select_case cs[2] = {{.op = TR_SELECT_RECV, .mailbox = a},
                            {.op = TR_SELECT_RECV, .mailbox = b}};
    int64_t t0 = tr_now();
    assert_int_equal(tr_select(sys, cs, 2, 0, tr_after_ms(30)), TR_ETIMEDOUT);
    assert_true(tr_now() - t0 >= 30 * 1000000ll);
    assert_int_equal(tr_select(sys, cs, 2, 0, TR_NOW), TR_ETIMEDOUT);
    fill(sys, b, 1, 7);
    assert_int_equal(tr_select(sys, cs, 2, 0, tr_after_ms(TEST_DEADLINE_MS)), 1);
    assert_int_equal(cs[1].msg.tag, 7);
    tr_mailbox_free(a);
    tr_mailbox_free(b);
    tr_system_free(sys);
}

/* ---- send cases ----------------------------------------------------------- */

static atomic_int drained;

/* Takes one message per `go`, so the main thread controls its room. */
static int slow_taker(tr_actor *self, tr_msg *m)
{
    (void)self;
    if (m->tag == 42)
        atomic_fetch_add(&drained, 1);
    return 0;
}

static void test_select_send_case_fires_when_room_appears_and_unpicked_sends_nothing(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    tr_mailbox *mine, *target;
    assert_int_equal(tr_mailbox_new(sys, 4, &mine), 0);
    assert_int_equal(tr_mailbox_new(sys, 1, &target), 0);
    fill(sys, target, 1, 1); /* full */
    tr_select_case cs[2] = {
        {.op = TR_SELECT_RECV, .mailbox = mine},
        {.op = TR_SELECT_SEND, .to = tr_mailbox_ref(target), .msg = tr_msg_words(2, 0, 0)},
    };
    assert_int_equal(tr_select(sys, cs, 2, 0, TR_NOW), TR_ETIMEDOUT);
    /* Ready receive, ready send, biased to the receive: nothing is sent. */
    fill(sys, mine, 1, 3);
    tr_msg out;
    assert_int_equal(tr_mailbox_recv(target, &out, TR_NOW), 0);
    assert_int_equal(tr_select(sys, cs, 2, TR_SELECT_BIASED, TR_NOW), 0);
    uint32_t depth;
    assert_int_equal(tr_mailbox_depth(sys, tr_mailbox_ref(target), &depth, NULL), 0);
    assert_int_equal(depth, 0);
    /* Now only the send is ready. */
    assert_int_equal(tr_select(sys, cs, 2, 0, TR_NOW), 1);
    assert_int_equal(cs[1].rc, 0);
    assert_int_equal(tr_mailbox_recv(target, &out, TR_NOW), 0);
    assert_int_equal(out.tag, 2);

    /* A send case that waits: an actor drains a full mailbox later. */
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.mailbox_capacity = 1;
    tr_ref taker;
    assert_int_equal(tr_spawn(sys, slow_taker, &o, &taker), 0);
    int sent = 0;
    for (int i = 0; i < 200; i++) {
        tr_select_case s[1] = {{.op = TR_SELECT_SEND, .to = taker, .msg = tr_msg_words(42, 0, 0)}};
        int r = tr_select(sys, s, 1, 0, tr_after_ms(TEST_DEADLINE_MS));
        assert_int_equal(r, 0);
        assert_int_equal(s[0].rc, 0);
        sent++;
    }
    while (atomic_load(&drained) < sent)
        usleep(1000);
    assert_int_equal(atomic_load(&drained), 200);

    /* A send case to a closed mailbox or a gone actor fires with the error. */
    tr_mailbox_close(target);
    tr_select_case c1[1] = {{.op = TR_SELECT_SEND, .to = tr_mailbox_ref(target)}};
    assert_int_equal(tr_select(sys, c1, 1, 0, TR_FOREVER), 0);
    assert_int_equal(c1[0].rc, TR_ECLOSED);
    c1[0].to = tr_mailbox_ref(target) + (1ull << 32);
    assert_int_equal(tr_select(sys, c1, 1, 0, TR_FOREVER), 0);
    assert_int_equal(c1[0].rc, TR_ENOACTOR);
    tr_mailbox_free(mine);
    tr_mailbox_free(target);
    tr_system_free(sys);
}

static void test_select_rejects_bad_cases(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    tr_mailbox *mine;
    assert_int_equal(tr_mailbox_new(sys, 4, &mine), 0);
    tr_select_case cs[TR_SELECT_MAX + 1];
    for (int i = 0; i <= TR_SELECT_MAX; i++)
        cs[i] = (tr_select_case){.op = TR_SELECT_RECV, .mailbox = mine};
    assert_int_equal(tr_select(NULL, cs, 1, 0, TR_NOW), TR_EINVAL);
    assert_int_equal(tr_select(sys, NULL, 1, 0, TR_NOW), TR_EINVAL);
    assert_int_equal(tr_select(sys, cs, 0, 0, TR_NOW), TR_EINVAL);
    assert_int_equal(tr_select(sys, cs, TR_SELECT_MAX + 1, 0, TR_NOW), TR_EINVAL);
    assert_int_equal(tr_select(sys, cs, 1, 8, TR_NOW), TR_EINVAL);
    cs[0].op = 9;
    assert_int_equal(tr_select(sys, cs, 1, 0, TR_NOW), TR_EINVAL);
    cs[0] = (tr_select_case){.op = TR_SELECT_RECV, .mailbox = NULL}; /* no actor here */
    assert_int_equal(tr_select(sys, cs, 1, 0, TR_NOW), TR_EINVAL);
    tr_mailbox_free(mine);
    tr_system_free(sys);
}

/* ---- a select that only the caller could unblock ------------------------ */

static atomic_int own_full_rc[4];

/* Its extra mailbox is full; only it takes from it. */
static int selects_into_its_own_full_mailbox(tr_actor *self)
{
    tr_system *sys = tr_actor_system(self);
    tr_mailbox *mine;
    if (tr_mailbox_new(sys, 1, &mine))
        return -1;
    tr_msg m = tr_msg_words(1, 0, 0);
    if (tr_try_send(sys, tr_mailbox_ref(mine), &m))
        return -1;
    tr_select_case send_only = {.op = TR_SELECT_SEND, .to = tr_mailbox_ref(mine), .msg = m};
    atomic_store(&own_full_rc[0], tr_select(sys, &send_only, 1, 0, TR_FOREVER));
    /* With a receive among the cases, that one is ready. */
    tr_select_case both[2] = {send_only, {.op = TR_SELECT_RECV, .mailbox = mine}};
    atomic_store(&own_full_rc[1], tr_select(sys, both, 2, TR_SELECT_BIASED, TR_FOREVER));
    /* Cancelled, a call that would wait says so first. */
    if (tr_try_send(sys, tr_mailbox_ref(mine), &m) || tr_cancel(sys, tr_self()))
        return -1;
    atomic_store(&own_full_rc[3], tr_select(sys, &send_only, 1, 0, TR_FOREVER));
    atomic_store(&own_full_rc[2], 1);
    tr_mailbox_free(mine);
    return 0;
}

static void test_a_select_only_the_caller_could_unblock_is_edeadlk(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    atomic_store(&own_full_rc[2], 0);
    assert_int_equal(tr_spawn_loop(sys, selects_into_its_own_full_mailbox, NULL, NULL), 0);
    tr_deadline end = tr_after_ms(TEST_DEADLINE_MS);
    while (!atomic_load(&own_full_rc[2]))
        if (tr_now() > end)
            fail_msg("the actor's select waited for itself");
    assert_int_equal(atomic_load(&own_full_rc[0]), TR_EDEADLK);
    assert_int_equal(atomic_load(&own_full_rc[1]), 1);
    assert_int_equal(atomic_load(&own_full_rc[3]), TR_ECANCELED);

    /* A thread, the same; by TR_NOW it is a plain timeout. */
    tr_mailbox *mine;
    assert_int_equal(tr_mailbox_new(sys, 1, &mine), 0);
    tr_msg m = tr_msg_words(1, 0, 0);
    assert_int_equal(tr_try_send(sys, tr_mailbox_ref(mine), &m), 0);
    tr_select_case c = {.op = TR_SELECT_SEND, .to = tr_mailbox_ref(mine), .msg = m};
    assert_int_equal(tr_select(sys, &c, 1, 0, TR_FOREVER), TR_EDEADLK);
    assert_int_equal(tr_select(sys, &c, 1, 0, TR_NOW), TR_ETIMEDOUT);
    tr_mailbox_free(mine);
    tr_system_free(sys);
}

/* ---- a send case that finds no memory fires nothing ---------------------- */

#if TEST_FAIL_MALLOC
static atomic_int payloads_freed;

static void count_payload_free(void *ptr, size_t len)
{
    (void)len;
    free(ptr);
    atomic_fetch_add(&payloads_freed, 1);
}
#endif

/* The first message to a mailbox allocates its ring: when that fails, the
 * select says TR_ENOMEM, sends nothing and leaves the payload with the
 * caller.  The case used to fire with rc TR_ENOMEM, which no case has. */
static void test_select_send_case_without_memory_is_enomem_and_sends_nothing(void **state)
{
    (void)state;
#if TEST_FAIL_MALLOC
    tr_system *sys = test_system(1);
    tr_mailbox *target;
    assert_int_equal(tr_mailbox_new(sys, 4, &target), 0); /* no ring yet */
    tr_select_case cs[1] = {{.op = TR_SELECT_SEND, .to = tr_mailbox_ref(target),
                             .msg = tr_msg_buf(7, malloc(16), 16, count_payload_free)}};
    atomic_store(&payloads_freed, 0);
    fail_mallocs = true;
    int r = tr_select(sys, cs, 1, 0, TR_NOW);
    fail_mallocs = false;
    assert_int_equal(r, TR_ENOMEM);
    assert_int_equal(atomic_load(&payloads_freed), 0);
    uint32_t depth, cap;
    assert_int_equal(tr_mailbox_depth(sys, tr_mailbox_ref(target), &depth, &cap), 0);
    assert_int_equal(depth, 0);
    /* With memory, the same case fires and the message arrives. */
    assert_int_equal(tr_select(sys, cs, 1, 0, TR_NOW), 0);
    assert_int_equal(cs[0].rc, 0);
    tr_msg got = test_recv(target);
    assert_int_equal(got.tag, 7);
    tr_msg_release(&got);
    assert_int_equal(atomic_load(&payloads_freed), 1);
    tr_mailbox_free(target);
    tr_system_free(sys);
#else
    skip();
#endif
}

/* ---- select in an actor: a tick or a message, cancellation ----------------- */

static int selector(tr_actor *self)
{
    tr_system *sys = tr_actor_system(self);
    tr_mailbox *ctl;
    if (tr_mailbox_new(sys, 4, &ctl))
        return TR_ENOMEM;
    report(self, TAG_REFS, tr_mailbox_ref(ctl), 0);
    uint64_t own = 0, control = 0, timeouts = 0;
    for (;;) {
        tr_select_case cs[2] = {{.op = TR_SELECT_RECV, .mailbox = NULL},
                                {.op = TR_SELECT_RECV, .mailbox = ctl}};
        int r = tr_select(sys, cs, 2, 0, tr_after_ms(5));
        if (r == TR_ETIMEDOUT) {
            timeouts++;
            continue;
        }
        if (r == TR_ECANCELED) {
            report(self, TAG_RC, own, control);
            return timeouts > 0 ? 0 : -1;
        }
        if (r < 0 || cs[r].rc)
            return -2;
        if (r == 0)
            own++;
        else
            control++;
    }
}

static void test_actor_select_waits_for_either_mailbox_and_ends_on_cancel(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 8, &done_mb), 0);
    tr_ref s;
    assert_int_equal(tr_spawn_loop(sys, selector, NULL, &s), 0);
    tr_msg refs = test_recv(done_mb);
    for (int i = 0; i < 300; i++) {
        tr_msg m = tr_msg_words(1, 0, 0);
        assert_int_equal(tr_send(sys, (i % 3) ? s : refs.a, &m, tr_after_ms(TEST_DEADLINE_MS)), 0);
        if (i % 50 == 0)
            usleep(7000); /* let it time out now and then */
    }
    /* Wait until it has everything, then cancel it in its select. */
    usleep(30000);
    assert_int_equal(tr_cancel(sys, s), 0);
    tr_msg r = test_recv(done_mb);
    assert_int_equal(r.tag, TAG_RC);
    assert_int_equal(r.a, 200);
    assert_int_equal(r.b, 100);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* ---- a notice the take drops is not mail ----------------------------------- */

enum { TAG_GONE = 30, TAG_SELECT_RC };

typedef struct untrap {
    int reason;         /* the child's exit reason */
    tr_ref child, gone; /* the watcher's: whom to watch, where to say so */
} untrap;

/* Ends with its reason at its first message. */
static int ends_when_told(tr_actor *self, tr_msg *m)
{
    (void)m;
    int reason = ((untrap *)tr_actor_state(self))->reason;
    return reason ? reason : TR_STOP;
}

/* Monitors the child, tells it to end, and says so once it has. */
static int watcher(tr_actor *self)
{
    untrap *u = tr_actor_state(self);
    tr_ref mon;
    tr_msg m;
    if (tr_monitor(u->child, &mon) || test_send(tr_actor_system(self), u->child, 1, 0, 0) ||
        tr_recv(&m, tr_after_ms(TEST_DEADLINE_MS)) || m.tag != TR_TAG_DOWN)
        return -100;
    return test_send(tr_actor_system(self), u->gone, TAG_GONE, 0, 0);
}

/* Traps exits and links to a child; once the child's EXIT is queued (the
 * watcher's word comes through a second mailbox, which leaves notices
 * alone), stops trapping and selects on its own mailbox.  The queued
 * exit is no longer mail: the select must wait, not fire. */
static int untrapping_selector(tr_actor *self)
{
    tr_system *sys = tr_actor_system(self);
    untrap *u = tr_actor_state(self);
    tr_mailbox *gone;
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.state = u;
    tr_trap_exits(true);
    if (tr_mailbox_new(sys, 4, &gone) || tr_spawn(sys, ends_when_told, &o, &u->child) ||
        tr_link(u->child))
        return -100;
    u->gone = tr_mailbox_ref(gone);
    tr_msg m;
    if (tr_spawn_loop(sys, watcher, &o, NULL) ||
        tr_mailbox_recv(gone, &m, tr_after_ms(TEST_DEADLINE_MS)) || m.tag != TAG_GONE)
        return -101;
    tr_trap_exits(false);
    tr_select_case cs[1] = {{.op = TR_SELECT_RECV, .mailbox = NULL}};
    int rc = tr_select(sys, cs, 1, 0, tr_after_ms(50));
    report(self, TAG_SELECT_RC, (uint64_t)(int64_t)rc, (uint64_t)(int64_t)cs[0].rc);
    return 0;
}

static void test_select_does_not_fire_on_an_exit_notice_it_drops(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 8, &done_mb), 0);
    /* A normal exit is dropped: nothing to take, the select times out.
     * A failing one kills the actor that no longer traps: cancelled. */
    const int reasons[2] = {0, -77};
    const int want[2] = {TR_ETIMEDOUT, TR_ECANCELED};
    for (int i = 0; i < 2; i++) {
        untrap u = {.reason = reasons[i]};
        tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
        o.state = &u;
        assert_int_equal(tr_spawn_loop(sys, untrapping_selector, &o, NULL), 0);
        tr_msg r = test_recv(done_mb);
        assert_int_equal(r.tag, TAG_SELECT_RC);
        assert_int_equal((int)(int64_t)r.a, want[i]);
    }
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* ---- a send case into the caller's own full mailbox ------------------------ */

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* Selects for 200 ms on a send into a full mailbox it owns itself (only
 * it could make room) and a receive; reports the result and the CPU time
 * its worker spent meanwhile (one worker: the select is all it runs). */
static int self_full_selector(tr_actor *self)
{
    tr_system *sys = tr_actor_system(self);
    tr_mailbox *mine;
    tr_msg m = tr_msg_words(1, 0, 0);
    if (tr_mailbox_new(sys, 1, &mine) || tr_try_send(sys, tr_mailbox_ref(mine), &m))
        return -100;
    tr_select_case cs[2] = {
        {.op = TR_SELECT_SEND, .to = tr_mailbox_ref(mine), .msg = tr_msg_words(2, 0, 0)},
        {.op = TR_SELECT_RECV, .mailbox = NULL},
    };
    int64_t cpu = thread_cpu_ns();
    int rc = tr_select(sys, cs, 2, 0, tr_after_ms(200));
    report(self, TAG_SELECT_RC, (uint64_t)(int64_t)rc, (uint64_t)(thread_cpu_ns() - cpu));
    return 0;
}

static void test_select_into_its_own_full_mailbox_sleeps_until_the_deadline(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    assert_int_equal(tr_mailbox_new(sys, 8, &done_mb), 0);
    assert_int_equal(tr_spawn_loop(sys, self_full_selector, NULL, NULL), 0);
    tr_msg r = test_recv(done_mb);
    assert_int_equal(r.tag, TAG_SELECT_RC);
    assert_int_equal((int)(int64_t)r.a, TR_ETIMEDOUT);
    /* Woken at each idle, it used 140-190 ms of the 200 spinning. */
    assert_true(r.b < 100 * 1000000ull);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* ---- selects waiting on send cases when the system stops ------------------ */

static tr_system *stopping_sys;
static tr_ref full_target;
static atomic_int thread_select_rc, thread_case_rc;

/* How many senders wait for room in the mailbox of actor `ref`. */
static unsigned target_waiters(tr_system *sys, tr_ref ref)
{
    void *obj;
    uint8_t kind;
    struct tr_mailbox *mb = tr__mailbox_borrow(sys, ref, &obj, &kind);
    unsigned n = mb ? atomic_load(&mb->nwaiters) : 0;
    if (mb)
        tr__ref_put(sys, ref, obj, kind);
    return n;
}

static void *select_into_full(void *arg)
{
    (void)arg;
    tr_select_case cs[1] = {{.op = TR_SELECT_SEND, .to = full_target, .msg = tr_msg_words(2, 0, 0)}};
    atomic_store(&thread_select_rc, tr_select(stopping_sys, cs, 1, 0, TR_FOREVER));
    atomic_store(&thread_case_rc, cs[0].rc);
    return NULL;
}

/* A thread that waits in a send case on an actor is woken by the stop and
 * waited for, as a waiting tr_send is: the case fires with TR_ENOACTOR,
 * or the select, entered as the system stopped, says TR_ESHUTDOWN.  The
 * shutdown used to free the target under it (ASan: 5 of 9 runs). */
static void test_a_thread_selecting_into_an_actor_is_waited_for_at_shutdown(void **state)
{
    (void)state;
    for (int run = 0; run < 40 / TEST_SCALE; run++) {
        stopping_sys = test_system(1);
        full_target = test_spawn_full_sleeper(stopping_sys);
        atomic_store(&thread_select_rc, 99);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, select_into_full, NULL), 0);
        /* Free only once it is in (a call that has not begun by then is
         * the caller's race), at its wait or a little later. */
        int64_t deadline = tr_after_ms(TEST_DEADLINE_MS);
        while (!target_waiters(stopping_sys, full_target))
            if (tr_now() > deadline)
                fail_msg("the select never waited");
        usleep((useconds_t)(run % 5) * 500);
        tr_system_free(stopping_sys);
        assert_int_equal(pthread_join(t, NULL), 0);
        int rc = atomic_load(&thread_select_rc);
        if (rc == 0)
            assert_int_equal(atomic_load(&thread_case_rc), TR_ENOACTOR);
        else
            assert_int_equal(rc, TR_ESHUTDOWN);
    }
}

static tr_mailbox *threads_full_mb;
static atomic_int shutdown_returned;

static void *shut_down(void *arg)
{
    tr_system_shutdown(arg, TR_FOREVER);
    atomic_store(&shutdown_returned, 1);
    return NULL;
}

static void *select_into_threads_mailbox(void *arg)
{
    (void)arg;
    tr_select_case cs[1] = {{.op = TR_SELECT_SEND, .to = tr_mailbox_ref(threads_full_mb),
                             .msg = tr_msg_words(2, 0, 0)}};
    atomic_store(&thread_select_rc, tr_select(stopping_sys, cs, 1, 0, TR_FOREVER));
    atomic_store(&thread_case_rc, cs[0].rc);
    return NULL;
}

/* A thread's mailbox outlives the system's shutdown, so a select waiting
 * for room in it holds nothing shutdown must wait for: shutdown returns
 * while it waits (it used to wait for the select), and the select then
 * goes on as usual when the owner makes room. */
static void test_a_select_into_a_threads_full_mailbox_does_not_hold_up_shutdown(void **state)
{
    (void)state;
    stopping_sys = test_system(1);
    assert_int_equal(tr_mailbox_new(stopping_sys, 1, &threads_full_mb), 0);
    tr_msg fill = tr_msg_words(1, 0, 0);
    assert_int_equal(tr_try_send(stopping_sys, tr_mailbox_ref(threads_full_mb), &fill), 0);
    pthread_t t, s;
    assert_int_equal(pthread_create(&t, NULL, select_into_threads_mailbox, NULL), 0);
    int64_t deadline = tr_after_ms(TEST_DEADLINE_MS);
    while (!atomic_load(&threads_full_mb->nwaiters))
        if (tr_now() > deadline)
            fail_msg("the select never waited");
    atomic_store(&shutdown_returned, 0);
    assert_int_equal(pthread_create(&s, NULL, shut_down, stopping_sys), 0);
    while (!atomic_load(&shutdown_returned))
        if (tr_now() > deadline)
            fail_msg("shutdown waits for a select into a thread's mailbox");
    assert_int_equal(pthread_join(s, NULL), 0);
    tr_msg m = test_recv(threads_full_mb); /* room: the select sends */
    assert_int_equal(m.tag, 1);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(atomic_load(&thread_select_rc), 0);
    assert_int_equal(atomic_load(&thread_case_rc), 0);
    m = test_recv(threads_full_mb);
    assert_int_equal(m.tag, 2);
    tr_mailbox_free(threads_full_mb);
    tr_system_free(stopping_sys);
}

static atomic_int select_payloads_freed, send_payloads_freed;
static void count_select_free(void *ptr, size_t len)
{
    (void)len;
    free(ptr);
    atomic_fetch_add(&select_payloads_freed, 1);
}
static void count_send_free(void *ptr, size_t len)
{
    (void)len;
    free(ptr);
    atomic_fetch_add(&send_payloads_freed, 1);
}

static int parks_in_select(tr_actor *self)
{
    tr_system *sys = tr_actor_system(self);
    tr_select_case cs[2] = {
        {.op = TR_SELECT_SEND, .to = full_target, .msg = tr_msg_buf(4, malloc(16), 16, count_select_free)},
        {.op = TR_SELECT_RECV, .mailbox = NULL},
    };
    report(self, TAG_SELECT_RC, 0, 0); /* about to wait */
    return tr_select(sys, cs, 2, 0, TR_FOREVER);
}

static int parks_in_send(tr_actor *self)
{
    tr_msg m = tr_msg_buf(3, malloc(16), 16, count_send_free);
    report(self, TAG_SELECT_RC, 0, 0);
    return tr_send(tr_actor_system(self), full_target, &m, TR_FOREVER);
}

/* An actor parked in a select is never resumed once the system stops: the
 * teardown releases the payloads of its send cases, as it does a parked
 * tr_send's (which used to be the only one released). */
static void test_a_select_parked_at_shutdown_has_its_send_payloads_released(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    assert_int_equal(tr_mailbox_new(sys, 8, &done_mb), 0);
    full_target = test_spawn_full_sleeper(sys);
    atomic_store(&select_payloads_freed, 0);
    atomic_store(&send_payloads_freed, 0);
    assert_int_equal(tr_spawn_loop(sys, parks_in_select, NULL, NULL), 0);
    assert_int_equal(tr_spawn_loop(sys, parks_in_send, NULL, NULL), 0);
    test_recv(done_mb);
    test_recv(done_mb);
    usleep(20000); /* both park (a payload sent instead would fail below) */
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
    assert_int_equal(atomic_load(&send_payloads_freed), 1);
    assert_int_equal(atomic_load(&select_payloads_freed), 1);
}

/* ---- stress: producers, four mailboxes, short deadlines, cancellations ------ */

#define SPRODUCERS 8
#define SBOXES 4
static tr_ref stress_boxes[SBOXES];
static atomic_int stress_ready;
static _Atomic uint64_t sent_total, taken_total, unsent_total;
static atomic_int producers_done;

/* Each producer sends its numbers to one box, some through select send
 * cases with short deadlines (retrying), some with tr_send. */
static int stress_producer(tr_actor *self)
{
    uintptr_t id = (uintptr_t)tr_actor_state(self);
    tr_system *sys = tr_actor_system(self);
    uint64_t rng = id * 0x9E3779B97F4A7C15ull + 1;
    const uint64_t n = 5000 / TEST_SCALE;
    for (uint64_t seq = 0; seq < n; seq++) {
        tr_ref to = stress_boxes[id % SBOXES];
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        tr_msg m = tr_msg_buf(id, (void *)(uintptr_t)(seq + 1), 0, count_free);
        int rc;
        if (rng & 1) {
            do {
                tr_select_case c[1] = {{.op = TR_SELECT_SEND, .to = to, .msg = m}};
                rc = tr_select(sys, c, 1, 0, tr_after_ns((int64_t)(rng >> 40) % 200000));
                if (rc == 0)
                    rc = c[0].rc;
            } while (rc == TR_ETIMEDOUT);
        } else {
            rc = tr_send(sys, to, &m, tr_after_ms(TEST_DEADLINE_MS));
        }
        if (rc) {
            tr_msg_release(&m); /* the consumer is gone: still ours */
            atomic_fetch_add(&unsent_total, 1);
            break;
        }
        atomic_fetch_add(&sent_total, 1);
        if ((rng >> 8 & 63) == 0)
            tr_yield();
    }
    atomic_fetch_add(&producers_done, 1);
    return 0;
}

static atomic_int order_errors;

/* Selects over its four boxes with short random deadlines until it is
 * cancelled; checks each producer's order. */
static int stress_consumer(tr_actor *self)
{
    tr_system *sys = tr_actor_system(self);
    tr_mailbox *box[SBOXES];
    tr_select_case cs[SBOXES];
    for (int i = 0; i < SBOXES; i++) {
        if (tr_mailbox_new(sys, 16, &box[i]))
            return TR_ENOMEM;
        stress_boxes[i] = tr_mailbox_ref(box[i]);
    }
    atomic_store(&stress_ready, 1);
    uint64_t next[SPRODUCERS] = {0}, rng = 7;
    for (;;) {
        for (int i = 0; i < SBOXES; i++)
            cs[i] = (tr_select_case){.op = TR_SELECT_RECV, .mailbox = box[i]};
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        int r = tr_select(sys, cs, SBOXES, 0, tr_after_ns((int64_t)(rng % 300000)));
        if (r == TR_ETIMEDOUT)
            continue;
        if (r < 0)
            return 0; /* cancelled: what is left is released at exit */
        tr_msg *m = &cs[r].msg;
        if (m->tag >= SPRODUCERS || (uint64_t)(uintptr_t)m->ptr != ++next[m->tag])
            atomic_fetch_add(&order_errors, 1);
        m->free_fn = NULL; /* ours now; counted as taken, not freed */
        atomic_fetch_add(&taken_total, 1);
    }
}

static void test_stress_select_with_short_deadlines_and_cancel_loses_nothing(void **state)
{
    (void)state;
    unsigned seed = (unsigned)tr_now();
    printf("seed %u\n", seed);
    tr_system *sys = test_system(0);
    atomic_store(&freed, 0);
    tr_ref consumer;
    assert_int_equal(tr_spawn_loop(sys, stress_consumer, NULL, &consumer), 0);
    while (!atomic_load(&stress_ready))
        usleep(1000);
    for (uintptr_t i = 0; i < SPRODUCERS; i++) {
        tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
        o.state = (void *)i;
        assert_int_equal(tr_spawn_loop(sys, stress_producer, &o, NULL), 0);
    }
    /* Cancel the consumer in the middle of the flow. */
    usleep((20 + seed % 40) * 1000);
    assert_int_equal(tr_cancel(sys, consumer), 0);
    while (atomic_load(&producers_done) < SPRODUCERS)
        usleep(1000);
    tr_system_free(sys);
    /* Every message sent was taken, or released with the consumer's
     * mailboxes when it ended; every one not sent was released by its
     * producer.  None lost, none twice, each producer's in order. */
    assert_int_equal(atomic_load(&order_errors), 0);
    assert_true(atomic_load(&taken_total) > 0);
    assert_int_equal((uint64_t)atomic_load(&freed),
                     atomic_load(&unsent_total) + atomic_load(&sent_total) - atomic_load(&taken_total));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_actor_owns_more_mailboxes_and_they_close_when_it_exits),
        cmocka_unit_test(test_close_drains_then_eclosed_and_wakes_parked_senders),
        cmocka_unit_test(test_select_takes_ready_cases_in_rotation_or_in_order_when_biased),
        cmocka_unit_test(test_select_times_out_and_takes_nothing),
        cmocka_unit_test(test_select_send_case_fires_when_room_appears_and_unpicked_sends_nothing),
        cmocka_unit_test(test_select_rejects_bad_cases),
        cmocka_unit_test(test_select_send_case_without_memory_is_enomem_and_sends_nothing),
        cmocka_unit_test(test_a_select_only_the_caller_could_unblock_is_edeadlk),
        cmocka_unit_test(test_actor_select_waits_for_either_mailbox_and_ends_on_cancel),
        cmocka_unit_test(test_select_does_not_fire_on_an_exit_notice_it_drops),
        cmocka_unit_test(test_select_into_its_own_full_mailbox_sleeps_until_the_deadline),
        cmocka_unit_test(test_a_thread_selecting_into_an_actor_is_waited_for_at_shutdown),
        cmocka_unit_test(test_a_select_parked_at_shutdown_has_its_send_payloads_released),
        cmocka_unit_test(test_a_select_into_a_threads_full_mailbox_does_not_hold_up_shutdown),
        cmocka_unit_test(test_stress_select_with_short_deadlines_and_cancel_loses_nothing),
    };
    return cmocka_run_group_tests_name("select", tests, NULL, NULL);
}
