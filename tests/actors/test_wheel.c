/*
 * test_wheel.c - the timing wheel, and the per-worker timers built on it.
 *
 * The wheel tests drive a wheel by hand with made-up times and compare
 * what it pops with a reference: the exact (deadline, arming order) sort
 * of what is armed.  The random ones take a seed (TR_SEED=<n> replays a
 * run; the seed is printed first).  The timer tests use a real system:
 * actors that time out on one worker, and a tr__timers of the test's own
 * that borrows a live actor's ref.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fail_malloc.h"
#include "support.h"
#include "runtime.h"
#include "wheel.h"

/* ---- seed and random numbers -------------------------------------------- */

static uint64_t seed;

/* An offset of a random magnitude, 0 to 2^61, so every level gets nodes. */
static int64_t any_offset(test_rng *r)
{
    return (int64_t)(test_rnd(r) & ((1ull << (test_rnd(r) % 62)) - 1));
}

/* ---- items: a node plus what the reference needs ------------------------- */

typedef struct item {
    tr__wheel_node node;
    uint64_t armed_at;   /* the test's own arming counter */
} item;

static uint64_t arm_counter;

static void arm(tr__wheel *w, item *it, int64_t deadline)
{
    it->armed_at = arm_counter++;
    tr__wheel_arm(w, &it->node, deadline);
}

static item *item_of(tr__wheel_node *n)
{
    return n ? (item *)((char *)n - offsetof(item, node)) : NULL;
}

static item *pop(tr__wheel *w, int64_t now)
{
    return item_of(tr__wheel_pop_due(w, now));
}

static bool item_before(const item *a, const item *b)
{
    return a->node.deadline < b->node.deadline ||
           (a->node.deadline == b->node.deadline && a->armed_at < b->armed_at);
}

static int cmp_items(const void *pa, const void *pb)
{
    const item *a = *(item *const *)pa, *b = *(item *const *)pb;
    return item_before(a, b) ? -1 : item_before(b, a) ? 1 : 0;
}

/* An array of pointers to items[0..n), sorted into the expected order. */
static item **expected_order(item *items, size_t n)
{
    item **order = malloc(n * sizeof *order);
    assert_non_null(order);
    for (size_t i = 0; i < n; i++)
        order[i] = &items[i];
    qsort(order, n, sizeof *order, cmp_items);
    return order;
}

#define assert_deadline(it, want)                                            \
    do {                                                                     \
        item *it_ = (it);                                                    \
        assert_non_null(it_);                                                \
        assert_true(it_->node.deadline == (int64_t)(want));                  \
    } while (0)

/* ---- order ------------------------------------------------------------- */

static void test_expire_fires_in_deadline_order_across_all_levels(void **state)
{
    (void)state;
    const size_t n = 50000 / TEST_SCALE;
    test_rng r = {seed};
    item *items = calloc(n, sizeof *items);
    assert_non_null(items);
    const int64_t base = (int64_t)1 << 40;
    tr__wheel w;
    tr__wheel_init(&w, base);
    for (size_t i = 0; i < n; i++) {
        int64_t d;
        switch (test_rnd(&r) % 8) {
        case 0: /* in the past */
            d = base - (int64_t)(test_rnd(&r) % 1000000000);
            break;
        case 1: /* a tie with an earlier one */
            d = i ? items[test_rnd(&r) % i].node.deadline : base;
            break;
        default:
            d = base + any_offset(&r);
        }
        arm(&w, &items[i], d);
    }
    item **order = expected_order(items, n);

    /* Move time in small steps, onto deadlines and just before them, to
     * wherever next() says, and in big jumps; pop all that is due each
     * time.  The pops must be the reference order exactly. */
    int64_t now = base;
    size_t k = 0;
    while (k < n) {
        item *it;
        while ((it = pop(&w, now))) {
            assert_ptr_equal(it, order[k]);
            assert_true(it->node.deadline <= now);
            assert_false(tr__wheel_armed(&it->node));
            k++;
        }
        int64_t next = tr__wheel_next(&w);
        assert_true(next > now);
        if (k < n) {
            assert_true(order[k]->node.deadline > now);
            assert_true(next <= order[k]->node.deadline);
        }
        switch (test_rnd(&r) % 4) {
        case 0:
            now += (int64_t)(test_rnd(&r) % 3000);
            break;
        case 1:
            now = next;
            break;
        case 2:
            if (k < n)
                now = order[k]->node.deadline - 1 + (int64_t)(test_rnd(&r) % 3);
            break;
        default: {
            int64_t jump = (int64_t)1 << (test_rnd(&r) % 62);
            now = now > INT64_MAX - jump ? INT64_MAX - 1 : now + jump;
        }
        }
    }
    assert_true(tr__wheel_next(&w) == INT64_MAX);
    assert_null(pop(&w, INT64_MAX));
    free(order);
    free(items);
}

static void test_equal_deadlines_fire_in_arming_order(void **state)
{
    (void)state;
    item it[8] = {0};
    tr__wheel w;
    tr__wheel_init(&w, 0);
    const int64_t d = 10 * 1000000000ll;
    arm(&w, &it[0], d);           /* armed far ahead: a high level */
    assert_null(pop(&w, d - 5000)); /* time moves up close to d */
    arm(&w, &it[1], d);           /* same deadline, now on level 0 */
    arm(&w, &it[2], d - 1);       /* earlier by 1 ns, same tick */
    arm(&w, &it[3], d);
    assert_ptr_equal(pop(&w, d), &it[2]);
    assert_ptr_equal(pop(&w, d), &it[0]);
    assert_ptr_equal(pop(&w, d), &it[1]);
    assert_ptr_equal(pop(&w, d), &it[3]);
    assert_null(pop(&w, d));

    /* Deadlines already past, armed in a scrambled order, with ties. */
    arm(&w, &it[4], 5);
    arm(&w, &it[5], -7);
    arm(&w, &it[6], 5);
    arm(&w, &it[7], d);
    assert_ptr_equal(pop(&w, d), &it[5]);
    assert_ptr_equal(pop(&w, d), &it[4]);
    assert_ptr_equal(pop(&w, d), &it[6]);
    assert_ptr_equal(pop(&w, d), &it[7]);
    assert_null(pop(&w, INT64_MAX));
}

static void test_never_fires_early_within_a_tick(void **state)
{
    (void)state;
    enum { N = 5000 };
    static item it[N];
    memset(it, 0, sizeof it);
    tr__wheel w;
    const int64_t base = 1000000000;
    tr__wheel_init(&w, base);
    /* Deadlines 1 ns apart, armed backwards, read with 7 ns steps. */
    for (int i = N - 1; i >= 0; i--)
        arm(&w, &it[i], base + i);
    int fired = 0;
    for (int64_t now = base - 3; fired < N; now += 7) {
        item *x;
        while ((x = pop(&w, now))) {
            assert_ptr_equal(x, &it[fired]);
            assert_true(x->node.deadline <= now);
            fired++;
        }
        assert_true(fired == N || it[fired].node.deadline > now);
    }
}

/* ---- cancel ------------------------------------------------------------ */

static void test_cancel_head_middle_tail_and_only_node(void **state)
{
    (void)state;
    item a = {0}, b = {0}, c = {0};
    tr__wheel w;
    const int64_t base = 1 << 30, d = base + 5000; /* d, d+1, d+2: one tick */

    /* The only node, on a high level, on level 0 and on the due list. */
    const int64_t only[] = {base + (1ll << 40), d, base - 1};
    for (int i = 0; i < 3; i++) {
        tr__wheel_init(&w, base);
        arm(&w, &a, only[i]);
        assert_true(tr__wheel_next(&w) <= only[i]);
        tr__wheel_cancel(&w, &a.node);
        assert_false(tr__wheel_armed(&a.node));
        assert_true(tr__wheel_next(&w) == INT64_MAX);
        assert_null(pop(&w, INT64_MAX - 1));
    }

    /* One slot: a is the list's tail (pushed first), c its head. */
    item *victims[] = {&b, &a, &c};
    for (int v = 0; v < 3; v++) {
        tr__wheel_init(&w, base);
        arm(&w, &a, d);
        arm(&w, &b, d + 1);
        arm(&w, &c, d + 2);
        tr__wheel_cancel(&w, &victims[v]->node);
        for (item *x; (x = pop(&w, d + 2));)
            assert_ptr_not_equal(x, victims[v]);
        assert_true(tr__wheel_next(&w) == INT64_MAX);
        assert_false(tr__wheel_armed(&a.node) || tr__wheel_armed(&b.node) ||
                     tr__wheel_armed(&c.node));
    }

    /* On the sorted due list: cancelling its head makes next() exact. */
    tr__wheel_init(&w, base);
    arm(&w, &a, d);
    arm(&w, &b, d + 1);
    arm(&w, &c, d + 2);
    assert_ptr_equal(pop(&w, d), &a);
    assert_true(tr__wheel_next(&w) == d + 1);
    tr__wheel_cancel(&w, &b.node);
    assert_true(tr__wheel_next(&w) == d + 2);
    tr__wheel_cancel(&w, &b.node); /* not armed any more: no effect */
    assert_null(pop(&w, d + 1));
    assert_ptr_equal(pop(&w, d + 2), &c);
    assert_true(tr__wheel_next(&w) == INT64_MAX);
}

static void test_cancel_then_rearm_fires_once_at_the_new_deadline(void **state)
{
    (void)state;
    item a = {0}, b = {0};
    tr__wheel w;
    tr__wheel_init(&w, 0);
    arm(&w, &a, 1000000);
    arm(&w, &b, 2000000);
    tr__wheel_cancel(&w, &a.node);
    arm(&w, &a, 3000000);
    assert_null(pop(&w, 1999999));
    assert_ptr_equal(pop(&w, 2000000), &b);
    assert_null(pop(&w, 2999999));
    assert_ptr_equal(pop(&w, 3000000), &a);
    assert_null(pop(&w, INT64_MAX));
    /* Re-armed earlier than it was: it moves back. */
    arm(&w, &a, 9000000);
    arm(&w, &b, 8000000);
    tr__wheel_cancel(&w, &a.node);
    arm(&w, &a, 7000000);
    assert_ptr_equal(pop(&w, 9000000), &a);
    assert_ptr_equal(pop(&w, 9000000), &b);
    assert_null(pop(&w, INT64_MAX));
}

/* ---- far deadlines, big jumps, next() ------------------------------------ */

static void test_far_deadlines_and_big_jumps_keep_order(void **state)
{
    (void)state;
    const int64_t ds[] = {INT64_MAX - 1, (int64_t)1 << 62, INT64_MAX / 2,
                          123456789, INT64_MIN, -1000, 0, 1, INT64_MAX - 2};
    enum { N = sizeof ds / sizeof ds[0] };
    item it[N];
    memset(it, 0, sizeof it);
    tr__wheel w;
    memset(&w, 0, sizeof w); /* zero-filled: an empty wheel at time 0 */
    assert_true(tr__wheel_next(&w) == INT64_MAX);
    for (int i = 0; i < N; i++)
        arm(&w, &it[i], ds[i]);
    item **order = expected_order(it, N);
    /* Each jump is up to 2^63 ns, a walk of 2^53 ticks if done one by one. */
    const int64_t nows[] = {1, 123456789, INT64_MAX / 2, INT64_MAX - 3, INT64_MAX - 1};
    int k = 0;
    for (size_t j = 0; j < sizeof nows / sizeof nows[0]; j++) {
        item *x;
        while ((x = pop(&w, nows[j]))) {
            assert_ptr_equal(x, order[k]);
            k++;
        }
        assert_true(k == N || order[k]->node.deadline > nows[j]);
        assert_true(tr__wheel_next(&w) > nows[j]);
    }
    assert_int_equal(k, N);
    free(order);
}

/* A model check: random arms (past, within the tick, on every level),
 * cancels and time steps, each pop compared with a scan of the armed set. */
static void test_next_is_never_later_than_the_earliest(void **state)
{
    (void)state;
    enum { M = 256 };
    const int ops = 60000 / TEST_SCALE;
    test_rng r = {seed ^ 0x5eed};
    static item it[M];
    memset(it, 0, sizeof it);
    tr__wheel w;
    int64_t now = 1ll << 35;
    tr__wheel_init(&w, now);
    for (int op = 0; op < ops; op++) {
        if (now > (int64_t)1 << 61) { /* start over before anything overflows */
            for (int i = 0; i < M; i++)
                tr__wheel_cancel(&w, &it[i].node);
            now = 1ll << 35;
            tr__wheel_init(&w, now);
        }
        item *x = &it[test_rnd(&r) % M];
        switch (test_rnd(&r) % 4) {
        case 0:
        case 1:
            if (tr__wheel_armed(&x->node))
                tr__wheel_cancel(&w, &x->node);
            if (test_rnd(&r) % 2)
                arm(&w, x, now + any_offset(&r) - (int64_t)(test_rnd(&r) % 2048));
            break;
        case 2:
            now += (int64_t)(test_rnd(&r) % 4096);
            break;
        default:
            now = tr__wheel_next(&w) == INT64_MAX ? now : tr__wheel_next(&w);
        }
        /* Pop everything due and compare each with the reference. */
        for (;;) {
            item *want = NULL;
            for (int i = 0; i < M; i++) {
                if (tr__wheel_armed(&it[i].node) && it[i].node.deadline <= now &&
                    (!want || item_before(&it[i], want)))
                    want = &it[i];
            }
            item *got = pop(&w, now);
            assert_ptr_equal(got, want);
            if (!got)
                break;
        }
        int64_t earliest = INT64_MAX;
        for (int i = 0; i < M; i++)
            if (tr__wheel_armed(&it[i].node) && it[i].node.deadline < earliest)
                earliest = it[i].node.deadline;
        int64_t next = tr__wheel_next(&w);
        assert_true(next <= earliest);
        assert_true(next > now);
    }
}

/* A sleeper that waits until next() wakes once, on time, unless the
 * earliest slot is crowded; then it wakes at the slot's start, early. */
static void test_next_is_exact_unless_the_earliest_slot_is_crowded(void **state)
{
    (void)state;
    static item it[40];
    memset(it, 0, sizeof it);
    tr__wheel w;
    const int64_t base = 1ll << 36, far = base + 5000000000ll; /* level 3 */
    tr__wheel_init(&w, base);
    arm(&w, &it[0], far + 300);
    arm(&w, &it[1], far + 100);
    arm(&w, &it[2], far + 200);
    assert_true(tr__wheel_next(&w) == far + 100);
    assert_null(pop(&w, far + 99));
    assert_true(tr__wheel_next(&w) == far + 100);
    tr__wheel_cancel(&w, &it[1].node);
    assert_true(tr__wheel_next(&w) == far + 200);

    /* 40 nodes, far more than next() looks at, in one level-3 slot. */
    tr__wheel_init(&w, base);
    for (int i = 0; i < 40; i++)
        arm(&w, &it[i], far + 1000 - i);
    int64_t next = tr__wheel_next(&w);
    assert_true(next <= far + 961 && next > base);
    /* Waking there cascades the slot; the next wake-ups close in. */
    int wakeups = 0;
    while (!pop(&w, next)) {
        int64_t later = tr__wheel_next(&w);
        assert_true(later > next && later <= far + 961);
        next = later;
        wakeups++;
    }
    assert_true(wakeups <= TR__WHEEL_LEVELS);
    assert_true(next == far + 961);
}

/* ---- a million nodes ----------------------------------------------------- */

static void test_million_nodes_all_cancelled_or_all_expired(void **state)
{
    (void)state;
    const size_t n = 1000000 / TEST_SCALE;
    test_rng r = {seed ^ 0x1000000};
    item *items = calloc(n, sizeof *items);
    size_t *perm = malloc(n * sizeof *perm);
    assert_true(items && perm);
    const int64_t base = 1ll << 42, span = 60ll * 1000000000; /* 60 s */
    tr__wheel w;
    tr__wheel_init(&w, base);

    for (size_t i = 0; i < n; i++)
        arm(&w, &items[i], base + 1 + (int64_t)(test_rnd(&r) % (uint64_t)span));
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = test_rnd(&r) % (i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (size_t i = 0; i < n; i++)
        tr__wheel_cancel(&w, &items[perm[i]].node);
    size_t still = 0;
    for (size_t i = 0; i < n; i++)
        still += tr__wheel_armed(&items[i].node);
    assert_int_equal(still, 0);
    assert_true(tr__wheel_next(&w) == INT64_MAX);
    assert_null(pop(&w, INT64_MAX));

    tr__wheel_init(&w, base);
    for (size_t i = 0; i < n; i++)
        arm(&w, &items[i], base + 1 + (int64_t)(test_rnd(&r) % (uint64_t)span));
    size_t fired = 0;
    item *last = NULL;
    for (int64_t now = base; now <= base + span; now += span / 100) {
        item *x;
        while ((x = pop(&w, now))) {
            assert_true(x->node.deadline <= now);
            assert_true(!last || item_before(last, x));
            last = x;
            fired++;
        }
    }
    assert_int_equal(fired, n);
    assert_true(tr__wheel_next(&w) == INT64_MAX);
    free(perm);
    free(items);
}

/* ---- timers through a real system ---------------------------------------- */

/*
 * Actors on one worker time out in tr_recv, with deadlines in a shuffled
 * order and in pairs of equal deadlines.  Each records when it woke and
 * in which place; they must wake in (deadline, park order) order, which
 * on one worker is the spawn order, and never before their deadline.
 * That holds for actors that parked before their deadlines: a run in
 * which the machine was so slow that one began its receive later (once
 * under load, 300 ms after the spawn) is run again with more room.
 */
enum { SLEEPERS = 24 };

typedef struct sleeper {
    tr_deadline deadline;
    int64_t began, woke;
    int rc, place;
} sleeper;

static sleeper sleepers[SLEEPERS];
static atomic_int wake_places;
static tr_mailbox *report_mb;

static int sleep_in_recv(tr_actor *self)
{
    sleeper *s = tr_actor_state(self);
    tr_msg m;
    s->began = tr_now();
    s->rc = tr_recv(&m, s->deadline);
    s->woke = tr_now();
    s->place = atomic_fetch_add(&wake_places, 1);
    return test_send(tr_actor_system(self), tr_mailbox_ref(report_mb), 1, 0, 0);
}

/* One run with `room_ms` before the first deadline; false if an actor
 * began its receive after its deadline (the run says nothing then). */
static bool run_sleepers(int64_t room_ms)
{
    tr_system *sys = test_system(1);
    assert_int_equal(tr_mailbox_new(sys, SLEEPERS, &report_mb), 0);
    atomic_store(&wake_places, 0);
    const tr_deadline t0 = tr_after_ms(room_ms);
    test_rng r = {seed ^ 0x51ee9};
    int slot_of[SLEEPERS];
    for (int i = 0; i < SLEEPERS; i++)
        slot_of[i] = i / 2; /* pairs share a deadline */
    for (int i = SLEEPERS - 1; i > 0; i--) {
        int j = (int)(test_rnd(&r) % (uint64_t)(i + 1)), t = slot_of[i];
        slot_of[i] = slot_of[j];
        slot_of[j] = t;
    }
    for (int i = 0; i < SLEEPERS; i++) {
        sleepers[i] = (sleeper){.deadline = t0 + slot_of[i] * 4000000ll};
        tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
        o.state = &sleepers[i];
        assert_int_equal(tr_spawn_loop(sys, sleep_in_recv, &o, NULL), 0);
    }
    for (int i = 0; i < SLEEPERS; i++)
        test_recv(report_mb);
    tr_mailbox_free(report_mb);
    tr_system_free(sys);
    for (int i = 0; i < SLEEPERS; i++)
        if (sleepers[i].began >= sleepers[i].deadline)
            return false;
    for (int i = 0; i < SLEEPERS; i++) {
        assert_int_equal(sleepers[i].rc, TR_ETIMEDOUT);
        assert_true(sleepers[i].woke >= sleepers[i].deadline);
        int before = 0; /* sleepers that must wake first */
        for (int j = 0; j < SLEEPERS; j++)
            before += sleepers[j].deadline < sleepers[i].deadline ||
                      (sleepers[j].deadline == sleepers[i].deadline && j < i);
        assert_int_equal(sleepers[i].place, before);
    }
    return true;
}

static void test_timers_wake_parked_actors_in_deadline_order(void **state)
{
    (void)state;
    /* Room for every actor to park before the first deadline, even in a
     * sanitizer build on a busy machine; more if that was not enough. */
    test_with_room(run_sleepers, 300);
}

/* An actor that waits for one message, forever, then ends. */
static int wait_forever(tr_actor *self)
{
    (void)self;
    tr_msg m;
    return tr_recv(&m, TR_FOREVER);
}

/* The borrowers of a live or dead ref's slot, read from the slot word as
 * slots.h lays it out (generation | borrowers << 1 | alive). */
static uint32_t borrowers(tr_system *sys, tr_ref ref)
{
    uint32_t index = (uint32_t)ref - 1;
    tr__slot *chunk = atomic_load(&sys->slots.chunks[index >> TR__SLOT_CHUNK_SHIFT]);
    uint64_t word = atomic_load(&chunk[index & (TR__SLOT_CHUNK - 1)].word);
    if (word >> 32 != ref >> 32)
        return 0; /* released: the generation moved on */
    return (uint32_t)(word & 0xFFFFFFFFull) >> 1;
}

/* An actor parked for good, to lend its ref to the test's own timers. */
static struct tr_actor *parked_actor(tr_system *sys, tr_ref *ref)
{
    assert_int_equal(tr_spawn_loop(sys, wait_forever, NULL, ref), 0);
    uint8_t kind;
    struct tr_actor *a = tr__slot_peek(&sys->slots, *ref, &kind);
    assert_non_null(a);
    return a;
}

/*
 * A tr__timers of the test's own, borrowing a parked actor's ref.  The
 * token 1 is odd, never that of a park, so firing never wakes the actor:
 * what is checked is the bookkeeping (pending count, next deadline, the
 * borrows, recycling), and that cancel only takes the timer it names.
 */
static void test_timers_cancel_returns_the_borrow_and_recycles_the_entry(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    tr_ref ref;
    struct tr_actor *a = parked_actor(sys, &ref);
    const uint32_t base_borrows = borrowers(sys, ref);

    tr__timers t = {0};
    tr__timer *h[4];
    const tr_deadline now = tr_now(), d[4] = {now + 3000000, now + 1000000,
                                              now + 2000000, now + 4000000};
    for (int i = 0; i < 4; i++)
        assert_int_equal(tr__timers_add_handle(sys, &t, d[i], a, ref, 1, &h[i]), 0);
    assert_int_equal(t.len, 4);
    assert_int_equal(borrowers(sys, ref), base_borrows + 4);
    tr__timers_fire(sys, &t, now); /* nothing is due */
    assert_int_equal(t.len, 4);
    assert_true(tr__timers_next(&t) > now && tr__timers_next(&t) <= d[1]);

    assert_false(tr__timers_cancel(sys, &t, h[0], ref, 3));             /* wrong token */
    assert_false(tr__timers_cancel(sys, &t, h[0], ref + (1ull << 32), 1)); /* wrong ref */
    assert_true(tr__timers_cancel(sys, &t, h[0], ref, 1));
    assert_false(tr__timers_cancel(sys, &t, h[0], ref, 1));             /* already */
    assert_true(tr__timers_cancel(sys, &t, h[1], ref, 1));              /* the earliest */
    assert_int_equal(t.len, 2);
    assert_int_equal(borrowers(sys, ref), base_borrows + 2);
    tr__timers_fire(sys, &t, d[1]); /* the cancelled ones do not fire */
    assert_int_equal(t.len, 2);
    assert_true(tr__timers_next(&t) > d[1] && tr__timers_next(&t) <= d[2]);

    tr__timers_fire(sys, &t, d[2]);   /* fires h[2] only */
    assert_int_equal(t.len, 1);
    assert_false(tr__timers_cancel(sys, &t, h[2], ref, 1)); /* fired */
    assert_int_equal(borrowers(sys, ref), base_borrows + 1);
    tr__timers_fire(sys, &t, d[3]);
    assert_int_equal(t.len, 0);
    assert_int_equal(borrowers(sys, ref), base_borrows);
    assert_true(tr__timers_next(&t) == TR_FOREVER);

    /* In the steady state entries are recycled: after the first round,
     * which grows the slabs to hold 200, no new slab. */
    uint32_t owned = 0;
    for (int round = 0; round < 3; round++) {
        tr__timer *many[200];
        for (int i = 0; i < 200; i++)
            assert_int_equal(tr__timers_add_handle(sys, &t, now + i, a, ref, 1, &many[i]), 0);
        for (int i = 0; i < 200; i++)
            assert_true(tr__timers_cancel(sys, &t, many[i], ref, 1));
        if (round == 0)
            owned = t.owned;
    }
    assert_int_equal(t.owned, owned);
    assert_int_equal(borrowers(sys, ref), base_borrows);

    /* A stale ref gets no timer.  Then the actor ends while a timer still
     * borrows it; cancelling drops the last borrow, which destroys it. */
    assert_int_equal(tr__timers_add(sys, &t, now, a, ref + (1ull << 32), 1), TR_ENOACTOR);
    assert_int_equal(tr__timers_add_handle(sys, &t, now, a, ref, 1, &h[0]), 0);
    assert_int_equal(test_send(sys, ref, 1, 0, 0), 0);
    tr_msg probe = tr_msg_words(2, 0, 0);
    tr_deadline give_up = tr_after_ms(TEST_DEADLINE_MS);
    while (tr_try_send(sys, ref, &probe) != TR_ENOACTOR && tr_now() < give_up)
        usleep(1000);
    assert_int_equal(tr_try_send(sys, ref, &probe), TR_ENOACTOR);
    assert_int_equal(borrowers(sys, ref), 1);
    assert_true(tr__timers_cancel(sys, &t, h[0], ref, 1));
    assert_int_equal(borrowers(sys, ref), 0);
    tr__timers_clear(&t);
    tr_system_free(sys);
}

/*
 * Cancels from other threads wait on the owner's ring until its next
 * firing, then act exactly as its own would: the right park only, never
 * an entry recycled since for another park, and a full ring refuses.
 */
static void remote_cancel_many(tr__timers *t, tr__timer **h, int n, tr_ref ref,
                               uint32_t token)
{
    for (int i = 0; i < n; i++)
        assert_true(tr__timers_cancel_remote(t, h[i], ref, token));
}

typedef struct remote_job {
    tr__timers *t;
    tr__timer **h;
    int n, queued;
    tr_ref ref;
} remote_job;

/* No cmocka asserts off the main thread: it counts, the test checks. */
static void *remote_canceller(void *arg)
{
    remote_job *j = arg;
    for (int i = 0; i < j->n; i++)
        j->queued += tr__timers_cancel_remote(j->t, j->h[i], j->ref, 1);
    return NULL;
}

static void test_timers_cancelled_from_another_thread_on_the_next_firing(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    tr_ref ref;
    struct tr_actor *a = parked_actor(sys, &ref);
    const uint32_t base_borrows = borrowers(sys, ref);

    tr__timers t = {0};
    tr__timers_init(&t);
    const tr_deadline now = tr_now(), later = now + 1000000000;
    enum { N = TR__TIMER_CANCELS - 1 }; /* a ck_ring keeps one slot empty */
    tr__timer *h[N + 1];
    for (int i = 0; i <= N; i++)
        assert_int_equal(tr__timers_add_handle(sys, &t, later, a, ref, 1, &h[i]), 0);
    /* Two threads fill the ring; a further request is refused. */
    remote_job jobs[2] = {{&t, h, N / 2, 0, ref}, {&t, h + N / 2, N - N / 2, 0, ref}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, remote_canceller, &jobs[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(jobs[0].queued + jobs[1].queued, N);
    assert_false(tr__timers_cancel_remote(&t, h[N], ref, 1));
    assert_int_equal(t.len, N + 1); /* nothing happens before the owner looks */
    tr__timers_fire(sys, &t, now);
    assert_int_equal(t.len, 1); /* the refused one stays, to fire */
    assert_true(tr__timers_cancel(sys, &t, h[N], ref, 1));
    tr__timers_fire(sys, &t, now);
    assert_int_equal(t.len, 0);
    assert_int_equal(borrowers(sys, ref), base_borrows);

    /* A request that arrives after its timer fired, when the entry already
     * serves a later park (token 2), leaves that park's timer alone. */
    assert_int_equal(tr__timers_add_handle(sys, &t, now, a, ref, 1, &h[0]), 0);
    tr__timers_fire(sys, &t, now);
    assert_int_equal(t.len, 0);
    tr__timer *again;
    assert_int_equal(tr__timers_add_handle(sys, &t, later, a, ref, 2, &again), 0);
    assert_ptr_equal(again, h[0]); /* recycled last in, first out */
    remote_cancel_many(&t, h, 1, ref, 1);
    tr__timers_fire(sys, &t, now);
    assert_int_equal(t.len, 1);
    remote_cancel_many(&t, &again, 1, ref, 2);
    tr__timers_fire(sys, &t, now);
    assert_int_equal(t.len, 0);
    assert_int_equal(borrowers(sys, ref), base_borrows);
    tr__timers_clear(&t);
    tr_system_free(sys);
}

#if TEST_FAIL_MALLOC
/*
 * Allocation failure, injected on this thread only: the test binary's
 * malloc fails while fail_mallocs is set and passes to glibc otherwise.
 * (Sanitizer builds replace malloc themselves, so they skip this test.)
 */
static void test_timers_add_returns_enomem_when_a_slab_cannot_grow(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    tr_ref ref;
    struct tr_actor *a = parked_actor(sys, &ref);
    const uint32_t base_borrows = borrowers(sys, ref);
    tr__timers t = {0};
    tr__timer *h;

    fail_mallocs = true;
    int rc = tr__timers_add_handle(sys, &t, tr_now(), a, ref, 1, &h);
    fail_mallocs = false;
    assert_int_equal(rc, TR_ENOMEM);
    assert_int_equal(t.len, 0);
    assert_int_equal(borrowers(sys, ref), base_borrows);

    /* Fill the first slab, then fail the second: the first still works. */
    uint32_t added = 0;
    while (t.free) {
        assert_int_equal(tr__timers_add(sys, &t, tr_now(), a, ref, 1), 0);
        added++;
    }
    fail_mallocs = true;
    rc = tr__timers_add(sys, &t, tr_now(), a, ref, 1);
    fail_mallocs = false;
    assert_int_equal(rc, TR_ENOMEM);
    assert_int_equal(t.len, added);
    tr__timers_fire(sys, &t, tr_now());
    assert_int_equal(t.len, 0);
    assert_int_equal(borrowers(sys, ref), base_borrows);
    assert_int_equal(tr__timers_add(sys, &t, tr_now(), a, ref, 1), 0);
    tr__timers_fire(sys, &t, tr_now());

    tr__timers_clear(&t);
    assert_int_equal(test_send(sys, ref, 1, 0, 0), 0);
    tr_system_free(sys);
}
#else
static void test_timers_add_returns_enomem_when_a_slab_cannot_grow(void **state)
{
    (void)state;
    skip();
}
#endif

int main(void)
{
    seed = test_seed();

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expire_fires_in_deadline_order_across_all_levels),
        cmocka_unit_test(test_equal_deadlines_fire_in_arming_order),
        cmocka_unit_test(test_never_fires_early_within_a_tick),
        cmocka_unit_test(test_cancel_head_middle_tail_and_only_node),
        cmocka_unit_test(test_cancel_then_rearm_fires_once_at_the_new_deadline),
        cmocka_unit_test(test_far_deadlines_and_big_jumps_keep_order),
        cmocka_unit_test(test_next_is_never_later_than_the_earliest),
        cmocka_unit_test(test_next_is_exact_unless_the_earliest_slot_is_crowded),
        cmocka_unit_test(test_million_nodes_all_cancelled_or_all_expired),
        cmocka_unit_test(test_timers_wake_parked_actors_in_deadline_order),
        cmocka_unit_test(test_timers_cancel_returns_the_borrow_and_recycles_the_entry),
        cmocka_unit_test(test_timers_cancelled_from_another_thread_on_the_next_firing),
        cmocka_unit_test(test_timers_add_returns_enomem_when_a_slab_cannot_grow),
    };
    return cmocka_run_group_tests_name("wheel", tests, NULL, NULL);
}
