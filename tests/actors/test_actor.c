/* test_actor.c - actors: spawning, handlers and loops, exit, yield, refs. */
#include <errno.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdatomic.h>
#include <string.h>

#include "runtime.h" /* the worker's timers, for one test */
#include "support.h"

/* ---- ping-pong: two handler actors bounce a counter ----------------- */

static tr_mailbox *done_mb;
static tr_ref pong_ref;
static atomic_int order_errors;

static int pong(tr_actor *self, tr_msg *m)
{
    return test_send(tr_actor_system(self), m->from, 1, m->a + 1, 0);
}

static int ping(tr_actor *self, tr_msg *m)
{
    /* m->a counts messages; both sides add one, so it stays even here. */
    if (m->tag == 1 && m->a % 2 != 0)
        atomic_fetch_add(&order_errors, 1);
    if (m->a >= (uint64_t)m->b) {
        test_send(tr_actor_system(self), tr_mailbox_ref(done_mb), 9, m->a, 0);
        return TR_STOP;
    }
    tr_msg next = tr_msg_words(1, m->a + 1, m->b);
    return tr_send(tr_actor_system(self), pong_ref, &next, TR_FOREVER);
}

static int pong_keeps_limit(tr_actor *self, tr_msg *m)
{
    tr_msg r = tr_msg_words(1, m->a + 1, m->b);
    return tr_send(tr_actor_system(self), m->from, &r, TR_FOREVER);
}

static void test_pingpong_counts_every_round_trip(void **state)
{
    (void)state;
    tr_system *sys = test_system(0);
    assert_int_equal(tr_mailbox_new(sys, 4, &done_mb), 0);
    tr_ref ping_ref;
    assert_int_equal(tr_spawn(sys, pong_keeps_limit, NULL, &pong_ref), 0);
    assert_int_equal(tr_spawn(sys, ping, NULL, &ping_ref), 0);
    const uint64_t trips = 20000;
    tr_msg start = tr_msg_words(0, 0, 2 * trips);
    assert_int_equal(tr_send(sys, ping_ref, &start, TR_FOREVER), 0);
    tr_msg done = test_recv(done_mb);
    assert_int_equal(done.tag, 9);
    assert_int_equal(done.a, 2 * trips);
    assert_int_equal(atomic_load(&order_errors), 0);
    assert_int_equal(done.from, ping_ref);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
    (void)pong;
}

/* ---- a ring of 1,000 actors passes one token -------------------------- */

#define RING 1000
static tr_ref ring_refs[RING];

static int ring_member(tr_actor *self, tr_msg *m)
{
    uintptr_t me = (uintptr_t)tr_actor_state(self);
    if (m->a == 0) {
        test_send(tr_actor_system(self), tr_mailbox_ref(done_mb), 9, me, m->b);
        return 0;
    }
    tr_ref next = ring_refs[(me + 1) % RING];
    tr_msg t = tr_msg_words(1, m->a - 1, m->b + 1);
    return tr_send(tr_actor_system(self), next, &t, TR_FOREVER);
}

static void test_ring_of_1000_actors_passes_token_every_hop(void **state)
{
    (void)state;
    tr_system *sys = test_system(0);
    assert_int_equal(tr_mailbox_new(sys, 4, &done_mb), 0);
    for (uintptr_t i = 0; i < RING; i++) {
        tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
        o.state = (void *)i;
        assert_int_equal(tr_spawn(sys, ring_member, &o, &ring_refs[i]), 0);
    }
    const uint64_t hops = 10 * RING + 7;
    tr_msg t = tr_msg_words(1, hops, 0);
    assert_int_equal(tr_send(sys, ring_refs[0], &t, TR_FOREVER), 0);
    tr_msg done = test_recv(done_mb);
    assert_int_equal(done.a, hops % RING); /* who holds it at the end */
    assert_int_equal(done.b, hops);        /* every hop was made once */
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* ---- loop actors receive in order and reply ---------------------------- */

static int summer(tr_actor *self)
{
    uint64_t expect = 0, sum = 0;
    for (;;) {
        tr_msg m;
        int rc = tr_recv(&m, tr_after_ms(TEST_DEADLINE_MS));
        if (rc)
            return rc;
        if (m.tag == 2)
            break;
        if (m.a != expect++)
            return -100;
        sum += m.a;
    }
    test_send(tr_actor_system(self), tr_mailbox_ref(done_mb), 9, sum, expect);
    return 0;
}

static void test_loop_actor_receives_in_send_order(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 4, &done_mb), 0);
    tr_ref r;
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.mailbox_capacity = 7;
    assert_int_equal(tr_spawn_loop(sys, summer, &o, &r), 0);
    const uint64_t n = 50000;
    for (uint64_t i = 0; i < n; i++)
        assert_int_equal(test_send(sys, r, 1, i, 0), 0);
    assert_int_equal(test_send(sys, r, 2, 0, 0), 0);
    tr_msg done = test_recv(done_mb);
    assert_int_equal(done.b, n);
    assert_int_equal(done.a, n * (n - 1) / 2);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* ---- tr_recv deadlines --------------------------------------------------- */

static int waits_then_reports(tr_actor *self)
{
    int64_t t0 = tr_now();
    tr_msg m;
    int rc = tr_recv(&m, tr_after_ms(30));
    int64_t waited = tr_now() - t0;
    int rc_now = tr_recv(&m, TR_NOW);
    test_send(tr_actor_system(self), tr_mailbox_ref(done_mb), 9,
              (uint64_t)(int64_t)rc, (uint64_t)waited);
    test_send(tr_actor_system(self), tr_mailbox_ref(done_mb), 10,
              (uint64_t)(int64_t)rc_now, 0);
    return 0;
}

static void test_recv_with_deadline_times_out_and_consumes_nothing(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    assert_int_equal(tr_mailbox_new(sys, 4, &done_mb), 0);
    assert_int_equal(tr_spawn_loop(sys, waits_then_reports, NULL, NULL), 0);
    tr_msg r = test_recv(done_mb);
    assert_int_equal((int)(int64_t)r.a, TR_ETIMEDOUT);
    assert_true((int64_t)r.b >= 30 * 1000000LL);
    r = test_recv(done_mb);
    assert_int_equal((int)(int64_t)r.a, TR_ETIMEDOUT);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* A receive that a message ends early takes its timer back at once: the
 * wheel does not fill up with the deadlines of waits long over. */
static int waits_long_each_time(tr_actor *self)
{
    tr_system *sys = tr_actor_system(self);
    uint64_t got = 0;
    tr_msg m;
    while (tr_recv(&m, tr_after_ms(60000)) == 0 && m.tag == 1)
        got++;
    /* One worker: every park resumed where its timer lives. */
    test_send(sys, tr_mailbox_ref(done_mb), 9, got, sys->workers[0].timers.len);
    return 0;
}

static void test_recv_ended_by_a_message_cancels_its_timer(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    assert_int_equal(tr_mailbox_new(sys, 4, &done_mb), 0);
    tr_ref r;
    assert_int_equal(tr_spawn_loop(sys, waits_long_each_time, NULL, &r), 0);
    const uint64_t n = 20000 / TEST_SCALE;
    for (uint64_t i = 0; i < n; i++)
        assert_int_equal(test_send(sys, r, 1, i, 0), 0);
    assert_int_equal(test_send(sys, r, 2, 0, 0), 0);
    tr_msg done = test_recv(done_mb);
    assert_int_equal(done.a, n);
    assert_int_equal(done.b, 0); /* no timer left pending */
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* ---- exit: reasons, tr_exit from deep inside, stale refs ------------------ */

static atomic_int after_exit;

static void deep(int depth)
{
    if (depth == 0) {
        tr_exit(-42);
        return;
    }
    deep(depth - 1);
    atomic_fetch_add(&after_exit, 1); /* never reached */
}

static int exits_deep(tr_actor *self)
{
    test_send(tr_actor_system(self), tr_mailbox_ref(done_mb), 9, 0, 0);
    deep(50);
    atomic_fetch_add(&after_exit, 1);
    return 0;
}

static int stops_on_first(tr_actor *self, tr_msg *m)
{
    test_send(tr_actor_system(self), tr_mailbox_ref(done_mb), 9, m->a, 0);
    return TR_STOP;
}

/* Send until the ref goes stale; the actor exits asynchronously. */
static int wait_stale(tr_system *sys, tr_ref r)
{
    tr_deadline end = tr_after_ms(TEST_DEADLINE_MS);
    while (tr_now() < end) {
        tr_msg m = tr_msg_words(3, 0, 0);
        int rc = tr_try_send(sys, r, &m);
        if (rc == TR_ENOACTOR)
            return rc;
    }
    return 0;
}

static void test_exited_actor_ref_is_stale(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 16, &done_mb), 0);
    tr_ref h, l;
    assert_int_equal(tr_spawn(sys, stops_on_first, NULL, &h), 0);
    assert_int_equal(test_send(sys, h, 1, 77, 0), 0);
    assert_int_equal(test_recv(done_mb).a, 77);
    assert_int_equal(wait_stale(sys, h), TR_ENOACTOR);

    assert_int_equal(tr_spawn_loop(sys, exits_deep, NULL, &l), 0);
    test_recv(done_mb);
    assert_int_equal(wait_stale(sys, l), TR_ENOACTOR);
    assert_int_equal(atomic_load(&after_exit), 0);

    /* A ref that never existed, and the null ref. */
    tr_msg m = tr_msg_words(1, 0, 0);
    assert_int_equal(tr_send(sys, (tr_ref)0xFFFF00000123ull, &m, TR_NOW), TR_ENOACTOR);
    assert_int_equal(tr_send(sys, TR_REF_NONE, &m, TR_NOW), TR_ENOACTOR);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* ---- a huge private stack ------------------------------------------------- */

/* The process's peak resident memory, in KiB. */
static long peak_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6))
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

static atomic_int huge_ran;

static int runs_shallow(tr_actor *self)
{
    (void)self;
    atomic_store(&huge_ran, 1);
    return 0;
}

/* Only the pages used count, in every build.  The ASan build cleaned the
 * whole stack's shadow when it prepared and freed it: 1 GiB more here. */
static void test_a_huge_private_stack_costs_only_what_it_uses(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    long before = peak_rss_kb();
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.stack_size = (size_t)8 << 30;
    assert_int_equal(tr_spawn_loop(sys, runs_shallow, &o, NULL), 0);
    tr_deadline end = tr_after_ms(TEST_DEADLINE_MS);
    while (!atomic_load(&huge_ran) && tr_now() < end)
        usleep(1000);
    assert_int_equal(atomic_load(&huge_ran), 1);
    tr_system_free(sys);
    assert_true(peak_rss_kb() - before < 64 * 1024);
}

/* ---- tr_exit when no stack can be had ------------------------------------ */

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
/* The sanitizers map memory their own way: only the plain build replaces
 * mmap, to refuse new coroutine stacks (MAP_STACK) while this is set. */
static atomic_bool refuse_stacks;
static atomic_int stacks_refused;

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if ((flags & MAP_STACK) && atomic_load(&refuse_stacks)) {
        atomic_fetch_add(&stacks_refused, 1);
        errno = ENOMEM;
        return MAP_FAILED;
    }
    return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

static int exits_on_second(tr_actor *self, tr_msg *m)
{
    test_send(tr_actor_system(self), tr_mailbox_ref(done_mb), 9, m->tag, 0);
    if (m->tag == 2)
        tr_exit(-7);
    return 0;
}
#endif

/*
 * A handler's tr_exit on a fresh worker, whose stack cache is empty, with
 * no stack to be had: it went on waiting for one, on the only worker that
 * could have given one back, and the system could never stop (a review:
 * every run).  It goes by way of the thread's own stack now, which frees
 * the one it leaves.
 */
static void test_exit_with_no_stack_to_be_had_goes_on(void **state)
{
    (void)state;
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    tr_system *sys = test_system(1);
    assert_int_equal(tr_mailbox_new(sys, 16, &done_mb), 0);
    tr_ref h, echo;
    assert_int_equal(tr_spawn(sys, exits_on_second, NULL, &h), 0);
    assert_int_equal(test_send(sys, h, 1, 0, 0), 0);
    assert_int_equal(test_recv(done_mb).a, 1);
    atomic_store(&refuse_stacks, true);
    assert_int_equal(test_send(sys, h, 2, 0, 0), 0);
    assert_int_equal(test_recv(done_mb).a, 2);
    assert_int_equal(wait_stale(sys, h), TR_ENOACTOR);
    /* The worker goes on without a new stack, and stops. */
    assert_int_equal(tr_spawn(sys, exits_on_second, NULL, &echo), 0);
    assert_int_equal(test_send(sys, echo, 1, 0, 0), 0);
    tr_msg m;
    assert_int_equal(tr_mailbox_recv(done_mb, &m, tr_after_ms(5000)), 0);
    assert_int_equal(m.a, 1);
    atomic_store(&refuse_stacks, false);
    assert_true(atomic_load(&stacks_refused) > 0); /* the exit did ask for one */
    assert_int_equal(tr_system_shutdown(sys, tr_after_ms(5000)), 0);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
#endif
}

/*
 * tr_exit abandons the frames of the call chain it is made from.  TSan
 * keeps them on the shadow stack of the stack's fiber, and the worker's
 * next lives on that stack add theirs: with the fiber renewed every 256
 * lives, 1000 exits from 400 frames deep on one worker (two stacks taking
 * turns) overflowed TSan's 65536 frames, 10 runs of 10.
 */
static int exits_deeper(tr_actor *self)
{
    (void)self;
    deep(400);
    atomic_fetch_add(&after_exit, 1);
    return 0;
}

static void test_many_exits_from_deep_calls_on_one_worker(void **state)
{
    (void)state;
    enum { N = 1000 };
    static tr_ref r[N];
    tr_system *sys = test_system(1);
    for (int i = 0; i < N; i++)
        assert_int_equal(tr_spawn_loop(sys, exits_deeper, NULL, &r[i]), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(wait_stale(sys, r[i]), TR_ENOACTOR);
    assert_int_equal(atomic_load(&after_exit), 0);
    tr_system_free(sys);
}

/* ---- tr_yield: one worker, two actors take turns ------------------------- */

static _Atomic uint64_t turns[2];
static atomic_int started, interleavings, self_mismatch;

static int yielder(tr_actor *self)
{
    uintptr_t me = (uintptr_t)tr_actor_state(self);
    /* Count only once both run: the main thread may be slow to spawn the
     * second one (a loaded machine, a sanitizer build). */
    atomic_fetch_add(&started, 1);
    while (atomic_load(&started) < 2)
        tr_yield();
    uint64_t other_seen = atomic_load(&turns[1 - me]);
    for (int i = 0; i < 1000; i++) {
        atomic_fetch_add(&turns[me], 1);
        if (tr_yield() != 0 || tr_current() != self)
            atomic_fetch_add(&self_mismatch, 1);
        uint64_t now = atomic_load(&turns[1 - me]);
        if (now != other_seen)
            atomic_fetch_add(&interleavings, 1);
        other_seen = now;
    }
    test_send(tr_actor_system(self), tr_mailbox_ref(done_mb), 9, me, 0);
    return 0;
}

static void test_yield_lets_the_other_actor_run_on_one_worker(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    assert_int_equal(tr_mailbox_new(sys, 4, &done_mb), 0);
    for (uintptr_t i = 0; i < 2; i++) {
        tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
        o.state = (void *)i;
        assert_int_equal(tr_spawn_loop(sys, yielder, &o, NULL), 0);
    }
    test_recv(done_mb);
    test_recv(done_mb);
    assert_int_equal(atomic_load(&turns[0]), 1000);
    assert_int_equal(atomic_load(&turns[1]), 1000);
    /* With one worker, each yield hands over to the other actor. */
    assert_true(atomic_load(&interleavings) >= 1900);
    assert_int_equal(atomic_load(&self_mismatch), 0);
    assert_int_equal(tr_yield(), TR_ECONTEXT);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* ---- migration: code that parks may resume on another thread ------------- */

static atomic_int migrations, wrong_current;

static int migrant(tr_actor *self)
{
    /* gettid, not pthread_self: glibc declares the latter const, so the
     * compiler may reuse its value across the switch (the very hazard
     * this test is about). */
    long before = syscall(SYS_gettid);
    /* Go on past the minimum until some moves were seen: how soon the
     * second worker joins in depends on the machine. */
    for (int i = 0; i < 2000 / TEST_SCALE ||
                    (atomic_load(&migrations) < 50 && i < 20000); i++) {
        tr_yield();
        /* tr_current reads the worker afresh: it must be us. */
        if (tr_current() != self || tr_self() != tr_actor_ref(self))
            atomic_fetch_add(&wrong_current, 1);
        long now = syscall(SYS_gettid);
        if (now != before)
            atomic_fetch_add(&migrations, 1);
        before = now;
    }
    test_send(tr_actor_system(self), tr_mailbox_ref(done_mb), 9, 0, 0);
    return 0;
}

static void test_actors_that_migrate_between_workers_see_themselves(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 64, &done_mb), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(tr_spawn_loop(sys, migrant, NULL, NULL), 0);
    for (int i = 0; i < 8; i++)
        test_recv(done_mb);
    assert_int_equal(atomic_load(&wrong_current), 0);
    /* Yields go to the global list, so with two workers the actors do
     * move (thousands of moves in most release runs, but a few dozen
     * when the second worker is slow to join, hence the loop above);
     * without a move the checks above would prove nothing. */
    assert_true(atomic_load(&migrations) > 0);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* ---- 100,000 actors spawned and exited ----------------------------------- */

static int send_once(tr_actor *self)
{
    return test_send(tr_actor_system(self), tr_mailbox_ref(done_mb), 9,
                     (uintptr_t)tr_actor_state(self), 0);
}

static void test_100000_actors_spawn_report_and_exit(void **state)
{
    (void)state;
    const unsigned n = 100000 / TEST_SCALE;
    tr_system *sys = test_system(0);
    assert_int_equal(tr_mailbox_new(sys, 1024, &done_mb), 0);
    uint8_t *seen = calloc(n, 1);
    unsigned got = 0;
    for (uintptr_t i = 0; i < n; i++) {
        tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
        o.state = (void *)i;
        int rc;
        while ((rc = tr_spawn_loop(sys, send_once, &o, NULL)) == TR_ELIMIT)
            ;
        assert_int_equal(rc, 0);
        tr_msg m;
        while (tr_mailbox_recv(done_mb, &m, TR_NOW) == 0) {
            assert_int_equal(seen[m.a], 0);
            seen[m.a] = 1;
            got++;
        }
    }
    while (got < n) {
        tr_msg m = test_recv(done_mb);
        assert_int_equal(seen[m.a], 0);
        seen[m.a] = 1;
        got++;
    }
    free(seen);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* ---- a loop actor with a private, larger stack --------------------------- */

static uint64_t burn_stack(int depth)
{
    volatile char buf[1024];
    memset((char *)buf, depth & 0xff, sizeof buf);
    return depth ? buf[depth % 1024] + burn_stack(depth - 1) : 0;
}

static int deep_stack(tr_actor *self)
{
    tr_msg m;
    tr_recv(&m, tr_after_ms(TEST_DEADLINE_MS)); /* park on it once */
    uint64_t r = burn_stack(700);               /* about 750 KiB */
    test_send(tr_actor_system(self), tr_mailbox_ref(done_mb), 9, r, 0);
    return 0;
}

static void test_loop_actor_with_private_stack_runs_deep_calls(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 4, &done_mb), 0);
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.stack_size = 2u << 20;
    o.name = "deep";
    tr_ref r;
    assert_int_equal(tr_spawn_loop(sys, deep_stack, &o, &r), 0);
    assert_int_equal(test_send(sys, r, 1, 0, 0), 0);
    tr_msg m = test_recv(done_mb);
    assert_int_equal(m.a, burn_stack(700));
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

static int ends_at_once(tr_actor *self)
{
    (void)self;
    return 0;
}

/* A handler: about 160 KiB of frames, within the default 256 KiB. */
static int deep_handler(tr_actor *self, tr_msg *m)
{
    (void)m;
    test_send(tr_actor_system(self), tr_mailbox_ref(done_mb), 9, burn_stack(150), 0);
    return 0;
}

/* After a loop actor with a small private stack (64 KiB) has ended, its
 * worker runs the next handler on a stack of the configured size, not on
 * the small one (which it used to go on with, and crash). */
static void test_a_small_private_stack_is_not_lent_to_the_next_handler(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    assert_int_equal(tr_mailbox_new(sys, 4, &done_mb), 0);
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.stack_size = 64 * 1024;
    tr_ref small;
    assert_int_equal(tr_spawn_loop(sys, ends_at_once, &o, &small), 0);
    tr_msg probe = tr_msg_words(1, 0, 0);
    for (int i = 0; i < 20000 && tr_try_send(sys, small, &probe) != TR_ENOACTOR; i++)
        usleep(1000); /* until it has ended */
    tr_ref h;
    assert_int_equal(tr_spawn(sys, deep_handler, NULL, &h), 0);
    assert_int_equal(test_send(sys, h, 1, 0, 0), 0);
    tr_msg m = test_recv(done_mb);
    assert_int_equal(m.a, burn_stack(150));
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* ---- bad arguments get clear errors -------------------------------------- */

static int noop(tr_actor *self, tr_msg *m)
{
    (void)self;
    (void)m;
    return 0;
}

static void test_bad_arguments_are_rejected(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    assert_int_equal(tr_spawn(NULL, noop, NULL, NULL), TR_EINVAL);
    assert_int_equal(tr_spawn(sys, NULL, NULL, NULL), TR_EINVAL);
    assert_int_equal(tr_spawn_loop(sys, NULL, NULL, NULL), TR_EINVAL);
    o.mailbox_capacity = 1u << 30;
    assert_int_equal(tr_spawn(sys, noop, &o, NULL), TR_EINVAL);
    o.mailbox_capacity = 0;
    o.stack_size = 64u << 20; /* handlers run on the shared stacks */
    assert_int_equal(tr_spawn(sys, noop, &o, NULL), TR_EINVAL);
    o.stack_size = 100;
    assert_int_equal(tr_spawn_loop(sys, summer, &o, NULL), TR_EINVAL);
    tr_ref r;
    assert_int_equal(tr_spawn(sys, noop, NULL, &r), 0);
    assert_int_equal(tr_send(sys, r, NULL, TR_NOW), TR_EINVAL);
    assert_int_equal(tr_send(NULL, r, NULL, TR_NOW), TR_EINVAL);
    tr_msg m;
    assert_int_equal(tr_recv(&m, TR_NOW), TR_ECONTEXT);
    assert_null(tr_current());
    assert_int_equal(tr_self(), TR_REF_NONE);
    tr_exit(0); /* outside an actor: returns and does nothing */
    assert_string_equal(tr_err_name(TR_EFULL), "TR_EFULL");
    assert_string_equal(tr_strerror(TR_ENOACTOR),
                        "no such actor (it has exited or never existed)");
    assert_string_equal(tr_strerror(12345), "unknown error");
    tr_system_free(sys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pingpong_counts_every_round_trip),
        cmocka_unit_test(test_ring_of_1000_actors_passes_token_every_hop),
        cmocka_unit_test(test_loop_actor_receives_in_send_order),
        cmocka_unit_test(test_recv_with_deadline_times_out_and_consumes_nothing),
        cmocka_unit_test(test_recv_ended_by_a_message_cancels_its_timer),
        cmocka_unit_test(test_exited_actor_ref_is_stale),
        cmocka_unit_test(test_exit_with_no_stack_to_be_had_goes_on),
        cmocka_unit_test(test_a_huge_private_stack_costs_only_what_it_uses),
        cmocka_unit_test(test_many_exits_from_deep_calls_on_one_worker),
        cmocka_unit_test(test_yield_lets_the_other_actor_run_on_one_worker),
        cmocka_unit_test(test_actors_that_migrate_between_workers_see_themselves),
        cmocka_unit_test(test_100000_actors_spawn_report_and_exit),
        cmocka_unit_test(test_loop_actor_with_private_stack_runs_deep_calls),
        cmocka_unit_test(test_a_small_private_stack_is_not_lent_to_the_next_handler),
        cmocka_unit_test(test_bad_arguments_are_rejected),
    };
    return cmocka_run_group_tests_name("actors", tests, NULL, NULL);
}
