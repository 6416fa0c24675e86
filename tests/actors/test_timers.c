/*
 * test_timers.c - tr_sleep and message timers (tr_send_after,
 * tr_send_every, tr_timer_cancel, tr_timer_missed).
 *
 * Timing is checked one way only: nothing ever happens early, which is
 * exact.  How late things are is machine noise, so upper bounds are in
 * seconds, or are replaced by what a late timer could not have done (a
 * sleeper that held its worker would see no progress by others).  The
 * random tests take a seed (TR_SEED=<n> replays a run).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fail_malloc.h"
#include "support.h"

#define MS 1000000ll

static uint64_t seed;

/* splitmix64 */
static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A random permutation of 0..n-1. */
static void shuffle(int *v, int n, uint64_t *s)
{
    for (int i = 0; i < n; i++)
        v[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rnd(s) % (uint64_t)(i + 1)), t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

/* Poll until *v >= want or the test's deadline; returns the last value. */
static int wait_count(atomic_int *v, int want)
{
    tr_deadline give_up = tr_after_ms(TEST_DEADLINE_MS);
    int got;
    while ((got = atomic_load(v)) < want && tr_now() < give_up)
        usleep(1000);
    return got;
}

/* Payloads that count their releases: a real allocation, so ASan sees a leak. */
static atomic_int freed;

static void free_counted(void *ptr, size_t len)
{
    (void)len;
    free(ptr);
    atomic_fetch_add(&freed, 1);
}

static tr_msg counted_msg(uint64_t tag)
{
    return tr_msg_buf(tag, malloc(16), 16, free_counted);
}

/* A mailbox for the main thread, so that it can be a timer's target. */
static tr_mailbox *new_mailbox(tr_system *sys, uint32_t capacity)
{
    tr_mailbox *mb = NULL;
    assert_int_equal(tr_mailbox_new(sys, capacity, &mb), 0);
    return mb;
}

/* Take whatever is queued; returns how many. */
static int drain(tr_mailbox *mb)
{
    tr_msg got;
    int n = 0;
    while (tr_mailbox_recv(mb, &got, TR_NOW) == 0)
        n++;
    return n;
}

/* Send until the ref goes stale; the actor exits asynchronously. */
static void wait_gone(tr_system *sys, tr_ref r)
{
    tr_msg probe = tr_msg_words(99, 0, 0);
    tr_deadline give_up = tr_after_ms(TEST_DEADLINE_MS);
    while (tr_try_send(sys, r, &probe) != TR_ENOACTOR && tr_now() < give_up)
        usleep(1000);
    assert_int_equal(tr_try_send(sys, r, &probe), TR_ENOACTOR);
}

/* ---- tr_sleep: order, never early ---------------------------------------- */

enum { SLEEPERS = 64, MANY_SLEEPERS = 256 / TEST_SCALE };

typedef struct sleeper {
    tr_deadline until;
    int64_t began, woke;
    int rc, place;
} sleeper;

static sleeper sleepers[SLEEPERS > MANY_SLEEPERS ? SLEEPERS : MANY_SLEEPERS];
static atomic_int places, done;

static int sleep_once(tr_actor *self)
{
    sleeper *s = tr_actor_state(self);
    s->began = tr_now();
    s->rc = tr_sleep(s->until);
    s->woke = tr_now();
    s->place = atomic_fetch_add(&places, 1);
    atomic_fetch_add(&done, 1); /* publishes the fields to the main thread */
    return 0;
}

static void spawn_sleepers(tr_system *sys, int n)
{
    atomic_store(&places, 0);
    atomic_store(&done, 0);
    for (int i = 0; i < n; i++) {
        tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
        o.state = &sleepers[i];
        assert_int_equal(tr_spawn_loop(sys, sleep_once, &o, NULL), 0);
    }
    assert_int_equal(wait_count(&done, n), n);
}

/*
 * One worker has one wheel: the order is exact, not just "about right".
 * That holds for sleepers that parked before their deadlines: one that
 * began its sleep later (a slow spawn on a loaded machine) returns
 * without parking, so says nothing of the wheel's order, and the run is
 * made again with twice the room (as in test_wheel).
 */
static bool run_ordered_sleepers(int64_t room_ms)
{
    tr_system *sys = test_system(1);
    uint64_t s = seed ^ 0x5133;
    int rank[SLEEPERS];
    shuffle(rank, SLEEPERS, &s);
    const tr_deadline t0 = tr_after_ms(room_ms);
    for (int i = 0; i < SLEEPERS; i++)
        sleepers[i] = (sleeper){.until = t0 + rank[i] * 3 * MS + (int64_t)(rnd(&s) % MS)};
    spawn_sleepers(sys, SLEEPERS);
    tr_system_free(sys);
    for (int i = 0; i < SLEEPERS; i++)
        if (sleepers[i].began >= sleepers[i].until) {
            printf("   sleeper %d began %.1f ms after its deadline (room %lld ms): again\n", i,
                   (sleepers[i].began - sleepers[i].until) / 1e6, (long long)room_ms);
            return false;
        }
    for (int i = 0; i < SLEEPERS; i++) {
        assert_int_equal(sleepers[i].rc, 0);
        assert_true(sleepers[i].woke >= sleepers[i].until);
        assert_int_equal(sleepers[i].place, rank[i]);
    }
    return true;
}

static void test_sleepers_on_one_worker_wake_in_deadline_order(void **state)
{
    (void)state;
    /* Room for all to park before the first deadline, even under TSan;
     * more if that was not enough. */
    test_with_room(run_ordered_sleepers, 300);
}

static void test_sleepers_on_every_worker_never_wake_early(void **state)
{
    (void)state;
    tr_system *sys = test_system(0);
    uint64_t s = seed ^ 0x77;
    const tr_deadline t0 = tr_now();
    for (int i = 0; i < MANY_SLEEPERS; i++)
        sleepers[i] = (sleeper){.until = t0 + 50 * MS + (int64_t)(rnd(&s) % (400 * MS))};
    sleepers[0].until = t0 - MS; /* already past: returns at once */
    spawn_sleepers(sys, MANY_SLEEPERS);
    for (int i = 0; i < MANY_SLEEPERS; i++) {
        assert_int_equal(sleepers[i].rc, 0);
        assert_true(sleepers[i].woke >= sleepers[i].until);
    }
    tr_system_free(sys);
}

/* ---- a sleeping actor holds no worker ------------------------------------ */

enum { NAPPERS = 1000 / TEST_SCALE };

typedef struct napper {
    long before, after;  /* the busy actor's progress */
    int64_t slept, woke; /* when */
    int rc;
} napper;

static napper nappers[NAPPERS];
static atomic_long progress;
static atomic_int stop_busy;

/*
 * Works in short slices, each ended by a 20 us sleep: its turns then come
 * from the worker's timers, which fire in deadline order, ahead of every
 * napper's 50 ms.  (With tr_yield it would queue behind the nappers still
 * waiting for their first turn, and a slow build takes longer than 50 ms
 * to start them all.)
 */
static int busy(tr_actor *self)
{
    (void)self;
    while (!atomic_load(&stop_busy)) {
        atomic_fetch_add(&progress, 1);
        if (tr_sleep(tr_after_ns(20000)))
            return -1;
    }
    return 0;
}

static int nap(tr_actor *self)
{
    napper *n = tr_actor_state(self);
    n->before = atomic_load(&progress);
    n->slept = tr_now();
    n->rc = tr_sleep(tr_after_ms(50));
    n->woke = tr_now();
    n->after = atomic_load(&progress);
    atomic_fetch_add(&done, 1);
    return 0;
}

static void test_sleeping_actors_leave_their_worker_to_others(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    atomic_store(&done, 0);
    atomic_store(&stop_busy, 0);
    assert_int_equal(tr_spawn_loop(sys, busy, NULL, NULL), 0);
    for (int i = 0; i < NAPPERS; i++) {
        tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
        o.state = &nappers[i];
        assert_int_equal(tr_spawn_loop(sys, nap, &o, NULL), 0);
    }
    assert_int_equal(wait_count(&done, NAPPERS), NAPPERS);
    atomic_store(&stop_busy, 1);
    int64_t first_woke = INT64_MAX;
    for (int i = 0; i < NAPPERS; i++) {
        assert_int_equal(nappers[i].rc, 0);
        /* The busy actor ran while this one slept on the only worker. */
        assert_true(nappers[i].after > nappers[i].before);
        if (nappers[i].woke < first_woke)
            first_woke = nappers[i].woke;
    }
    /* And the nappers slept at once, not one after the other: some went
     * to sleep before the first woke (all of them, unless the machine
     * took 50 ms to start them). */
    int asleep_at_once = 0;
    for (int i = 0; i < NAPPERS; i++)
        asleep_at_once += nappers[i].slept < first_woke;
    printf("   %d nappers asleep at once\n", asleep_at_once);
    assert_true(asleep_at_once >= 2);
    tr_system_free(sys);
}

/* ---- cancelling a sleep ----------------------------------------------------- */

static atomic_int asleep, sleep_rc, past_rc;
static atomic_llong slept_ns;

static int sleeps_until_cancelled(tr_actor *self)
{
    tr_deadline until = (tr_deadline)(intptr_t)tr_actor_state(self);
    atomic_store(&asleep, 1);
    int64_t t0 = tr_now();
    atomic_store(&sleep_rc, tr_sleep(until));
    atomic_store(&slept_ns, tr_now() - t0);
    atomic_fetch_add(&done, 1);
    return 0;
}

/* Cancelled first, then it sleeps: it must not wait at all. */
static int cancelled_then_sleeps(tr_actor *self)
{
    (void)self;
    while (tr_yield() == 0)
        ;
    int64_t t0 = tr_now();
    atomic_store(&sleep_rc, tr_sleep(tr_after_ms(60000)));
    atomic_store(&slept_ns, tr_now() - t0);
    atomic_store(&past_rc, tr_sleep(tr_now() - 1)); /* nothing to wait for */
    atomic_fetch_add(&done, 1);
    return 0;
}

static void cancel_sleeper(tr_deadline until)
{
    tr_system *sys = test_system(2);
    atomic_store(&asleep, 0);
    atomic_store(&done, 0);
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.state = (void *)(intptr_t)until;
    tr_ref r;
    assert_int_equal(tr_spawn_loop(sys, sleeps_until_cancelled, &o, &r), 0);
    assert_int_equal(wait_count(&asleep, 1), 1);
    usleep(20000); /* most likely parked by now; either way it must end */
    assert_int_equal(tr_cancel(sys, r), 0);
    assert_int_equal(wait_count(&done, 1), 1);
    assert_int_equal(atomic_load(&sleep_rc), TR_ECANCELED);
    assert_true(atomic_load(&slept_ns) < 10000 * MS);
    tr_system_free(sys); /* with the 60 s park timer still pending */
}

static void test_sleep_cancelled_returns_ecanceled_promptly(void **state)
{
    (void)state;
    cancel_sleeper(tr_after_ms(60000));
    cancel_sleeper(TR_FOREVER);

    tr_system *sys = test_system(1);
    atomic_store(&done, 0);
    tr_ref r;
    assert_int_equal(tr_spawn_loop(sys, cancelled_then_sleeps, NULL, &r), 0);
    assert_int_equal(tr_cancel(sys, r), 0);
    assert_int_equal(wait_count(&done, 1), 1);
    assert_int_equal(atomic_load(&sleep_rc), TR_ECANCELED);
    assert_true(atomic_load(&slept_ns) < 10000 * MS);
    assert_int_equal(atomic_load(&past_rc), 0);
    tr_system_free(sys);
}

/*
 * Cancelled out of an hour's sleep, an actor that resumes on the other
 * worker asks the timer's worker to cancel the timer; until it does, the
 * timer's borrow keeps the exited actor, and the payload queued in its
 * mailbox.  The workers idle between the cancels, so the request must
 * wake its worker (review: 0-13 of 16 payloads released a second after
 * the exits, 20 runs of 20).
 */
enum { HOUR_SLEEPERS = 16 };

static void test_cancelled_long_sleep_releases_its_actor_at_once(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.state = (void *)(intptr_t)tr_after_ms(3600 * 1000);
    atomic_store(&freed, 0);
    atomic_store(&done, 0);
    tr_ref r[HOUR_SLEEPERS];
    for (int i = 0; i < HOUR_SLEEPERS; i++) {
        assert_int_equal(tr_spawn_loop(sys, sleeps_until_cancelled, &o, &r[i]), 0);
        tr_msg m = counted_msg(5); /* never received: released with the actor */
        assert_int_equal(tr_send(sys, r[i], &m, tr_after_ms(TEST_DEADLINE_MS)), 0);
    }
    usleep(100 * 1000); /* all asleep, both workers idle */
    for (int i = 0; i < HOUR_SLEEPERS; i++) {
        assert_int_equal(tr_cancel(sys, r[i]), 0);
        usleep(20 * 1000); /* one at a time: the workers go idle in between */
    }
    assert_int_equal(wait_count(&done, HOUR_SLEEPERS), HOUR_SLEEPERS);
    /* A wake-up takes microseconds; the test's deadline is for a machine
     * that stalls us. */
    tr_deadline give_up = tr_after_ms(TEST_DEADLINE_MS);
    while (atomic_load(&freed) < HOUR_SLEEPERS && tr_now() < give_up)
        usleep(1000);
    int released = atomic_load(&freed);
    tr_system_free(sys);
    assert_int_equal(released, HOUR_SLEEPERS);
}

static void test_sleep_outside_an_actor_blocks_the_thread(void **state)
{
    (void)state;
    tr_deadline until = tr_after_ms(20);
    assert_int_equal(tr_sleep(until), 0);
    assert_true(tr_now() >= until);
    assert_int_equal(tr_sleep(TR_NOW), 0);
    assert_int_equal(tr_sleep(tr_now() - 1), 0);
}

/* ---- tr_send_after: once, never early, in deadline order ------------------- */

static void test_send_after_delivers_once_never_early(void **state)
{
    (void)state;
    tr_system *sys = test_system(0);
    tr_mailbox *mb = new_mailbox(sys, 8);
    tr_deadline when = tr_after_ms(30);
    tr_msg m = tr_msg_words(7, 42, 0);
    tr_timer_ref h = TR_TIMER_NONE;
    assert_int_equal(tr_send_after(sys, tr_mailbox_ref(mb), &m, when, &h), 0);
    assert_true(h != TR_TIMER_NONE);
    tr_msg got = test_recv(mb);
    assert_true(tr_now() >= when);
    assert_int_equal(got.tag, 7);
    assert_int_equal(got.a, 42);
    assert_int_equal(got.from, tr_mailbox_ref(mb)); /* the armer's ref */
    assert_int_equal(tr_mailbox_recv(mb, &got, tr_after_ms(100)), TR_ETIMEDOUT);
    /* Fired: the handle is stale now. */
    assert_int_equal(tr_timer_cancel(sys, h), TR_ENOTIMER);
    uint64_t missed;
    assert_int_equal(tr_timer_missed(sys, h, &missed), TR_ENOTIMER);
    /* No handle wanted, and a deadline already past. */
    assert_int_equal(tr_send_after(sys, tr_mailbox_ref(mb), &m, TR_NOW, NULL), 0);
    got = test_recv(mb);
    assert_int_equal(got.tag, 7);
    tr_mailbox_free(mb);
    tr_system_free(sys);
}

/* ---- an idle home worker sleeps until its timers are due ------------------- */

#define BLOCK (1ll << 28) /* a level-3 slot of the wheel: 64^3 ticks of 1024 ns */
enum { CROWD = 32 };      /* more than the 16 nodes tr__wheel_next looks at */

static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * An idle home's wheel stays where its last firing left it, here the
 * worker's first round, so one-shots armed from this thread 300 ms later
 * land together in a slot of a high level, whose start has passed.  The
 * worker must sleep until the first is due, not spin through the 250 ms
 * to it (review: 70-98% of the idle window's CPU, 20 runs of 20).  The
 * bound is generous: an idle worker uses next to nothing.
 */
static void test_idle_home_with_a_crowded_slot_sleeps_until_due(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    tr_mailbox *mb = new_mailbox(sys, 64);
    usleep(300 * 1000);
    /* Early in a block, so that its end leaves an idle window before it. */
    while (tr_now() % BLOCK > 20 * MS)
        usleep(1000);
    tr_deadline when = (tr_now() / BLOCK + 1) * BLOCK - 1;
    for (int i = 0; i < CROWD; i++) {
        tr_msg m = tr_msg_words((uint64_t)i, 0, 0);
        assert_int_equal(tr_send_after(sys, tr_mailbox_ref(mb), &m, when, NULL), 0);
    }
    /* The first arm woke the worker, which chose its sleep while the slot
     * held few timers; an earlier one wakes it to look at the crowd. */
    tr_msg first = tr_msg_words(CROWD, 0, 0);
    assert_int_equal(tr_send_after(sys, tr_mailbox_ref(mb), &first, when - 1, NULL), 0);
    usleep(5 * 1000);
    int64_t cpu0 = cpu_ns(), t0 = tr_now();
    usleep(150 * 1000);
    int64_t cpu = cpu_ns() - cpu0, wall = tr_now() - t0;
    printf("   %.1f ms of CPU over %.1f ms idle\n", cpu / 1e6, wall / 1e6);
    /* Deadline order, then arming order, and never early. */
    tr_msg got = test_recv(mb);
    assert_true(tr_now() >= when - 1);
    assert_int_equal(got.tag, CROWD);
    for (int i = 0; i < CROWD; i++) {
        got = test_recv(mb);
        assert_true(tr_now() >= when);
        assert_int_equal(got.tag, i);
    }
    tr_mailbox_free(mb);
    tr_system_free(sys);
    assert_true(cpu < wall * 3 / 10);
}

/* Timers to one actor, armed by the main thread and by an actor at
 * once, arrive in deadline order and never before their deadline. */
enum { ORDERED = 200 };

static tr_deadline order_deadlines[ORDERED];
static int64_t order_armed[ORDERED]; /* when each was armed */
static atomic_int received, out_of_order, early;
static tr_ref recorder_ref;

static int recorder(tr_actor *self)
{
    (void)self;
    int64_t last = INT64_MIN;
    for (int i = 0; i < ORDERED; i++) {
        tr_msg m;
        if (tr_recv(&m, tr_after_ms(TEST_DEADLINE_MS)))
            return -1;
        int64_t deadline = (int64_t)m.a;
        if (tr_now() < deadline)
            atomic_fetch_add(&early, 1);
        if (deadline < last)
            atomic_fetch_add(&out_of_order, 1);
        last = deadline;
        atomic_fetch_add(&received, 1);
    }
    return 0;
}

static int arms_odd_ones(tr_actor *self)
{
    for (int i = 1; i < ORDERED; i += 2) {
        tr_msg m = tr_msg_words(1, (uint64_t)order_deadlines[i], 0);
        order_armed[i] = tr_now();
        if (tr_send_after(tr_actor_system(self), recorder_ref, &m, order_deadlines[i], NULL))
            return -1;
    }
    atomic_fetch_add(&done, 1);
    return 0;
}

/* One run with `room_ms` before the first deadline; false if a timer was
 * armed after its deadline (it then fires at once, out of its place, and
 * the run says nothing of the order). */
static bool run_ordered_timers(int64_t room_ms)
{
    tr_system *sys = test_system(0);
    uint64_t s = seed ^ 0x0de7;
    int rank[ORDERED];
    shuffle(rank, ORDERED, &s);
    const tr_deadline t0 = tr_after_ms(room_ms);
    for (int i = 0; i < ORDERED; i++)
        order_deadlines[i] = t0 + rank[i] * MS + (int64_t)(rnd(&s) % MS);
    atomic_store(&received, 0);
    atomic_store(&early, 0);
    atomic_store(&out_of_order, 0);
    atomic_store(&done, 0);
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.mailbox_capacity = 255; /* room for all: no retry reorders them */
    assert_int_equal(tr_spawn_loop(sys, recorder, &o, &recorder_ref), 0);
    assert_int_equal(tr_spawn_loop(sys, arms_odd_ones, NULL, NULL), 0);
    for (int i = 0; i < ORDERED; i += 2) {
        tr_msg m = tr_msg_words(1, (uint64_t)order_deadlines[i], 0);
        order_armed[i] = tr_now();
        assert_int_equal(tr_send_after(sys, recorder_ref, &m, order_deadlines[i], NULL), 0);
    }
    assert_int_equal(wait_count(&done, 1), 1);
    assert_int_equal(wait_count(&received, ORDERED), ORDERED);
    tr_system_free(sys);
    assert_int_equal(atomic_load(&early), 0);
    for (int i = 0; i < ORDERED; i++)
        if (order_armed[i] >= order_deadlines[i])
            return false;
    assert_int_equal(atomic_load(&out_of_order), 0);
    return true;
}

static void test_send_after_to_one_target_arrives_in_deadline_order(void **state)
{
    (void)state;
    test_with_room(run_ordered_timers, 200);
}

/* ---- who armed it: msg.from ------------------------------------------------ */

static atomic_int from_self_ok;

static int times_itself(tr_actor *self)
{
    tr_deadline when = tr_after_ms(10);
    tr_msg m = tr_msg_words(5, 0, 0), got;
    if (tr_send_after(tr_actor_system(self), tr_self(), &m, when, NULL) == 0 &&
        tr_recv(&got, tr_after_ms(TEST_DEADLINE_MS)) == 0 && got.tag == 5 &&
        got.from == tr_self() && tr_now() >= when)
        atomic_store(&from_self_ok, 1);
    atomic_fetch_add(&done, 1);
    return 0;
}

static tr_system *thread_sys;
static tr_ref thread_target;
static atomic_int thread_rc;

static void *arms_from_a_thread(void *arg)
{
    (void)arg;
    tr_msg m = tr_msg_words(6, 0, 0);
    atomic_store(&thread_rc, tr_send_after(thread_sys, thread_target, &m, tr_after_ms(5), NULL));
    return NULL;
}

static void test_timers_armed_anywhere_carry_the_armers_ref(void **state)
{
    (void)state;
    tr_system *sys = test_system(0);
    atomic_store(&done, 0);
    assert_int_equal(tr_spawn_loop(sys, times_itself, NULL, NULL), 0);
    assert_int_equal(wait_count(&done, 1), 1);
    assert_int_equal(atomic_load(&from_self_ok), 1);

    /* A thread without a mailbox arms it: from is TR_REF_NONE. */
    tr_mailbox *mb = new_mailbox(sys, 8);
    thread_sys = sys;
    thread_target = tr_mailbox_ref(mb);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, arms_from_a_thread, NULL), 0);
    pthread_join(t, NULL);
    assert_int_equal(atomic_load(&thread_rc), 0);
    tr_msg got = test_recv(mb);
    assert_int_equal(got.tag, 6);
    assert_int_equal(got.from, TR_REF_NONE);
    tr_mailbox_free(mb);
    tr_system_free(sys);
}

/* ---- tr_send_every --------------------------------------------------------- */

static void test_send_every_ticks_at_the_period_and_stops_after_cancel(void **state)
{
    (void)state;
    tr_system *sys = test_system(0);
    tr_mailbox *mb = new_mailbox(sys, 63);
    const int64_t period = 20 * MS;
    tr_deadline first = tr_after_ms(20);
    tr_msg m = tr_msg_words(3, 0, 0);
    tr_timer_ref h;
    assert_int_equal(tr_send_every(sys, tr_mailbox_ref(mb), &m, period, first, &h), 0);
    for (int i = 0; i < 5; i++) {
        tr_msg got = test_recv(mb);
        assert_int_equal(got.tag, 3);
        /* The i-th delivered tick is tick i or a later one. */
        assert_true(tr_now() >= first + i * period);
    }
    uint64_t missed;
    assert_int_equal(tr_timer_missed(sys, h, &missed), 0);
    assert_int_equal(tr_timer_cancel(sys, h), 0);
    drain(mb); /* delivered before the cancel returned */
    usleep(5 * period / 1000);
    assert_int_equal(drain(mb), 0);
    assert_int_equal(tr_timer_cancel(sys, h), TR_ENOTIMER);
    tr_mailbox_free(mb);
    tr_system_free(sys);
}

/* Cancel at random moments of a fast ticker: not one tick after it returns. */
static void test_cancel_of_a_fast_ticker_stops_it_at_once(void **state)
{
    (void)state;
    tr_system *sys = test_system(0);
    tr_mailbox *mb = new_mailbox(sys, 4095);
    uint64_t s = seed ^ 0x71c;
    tr_msg m = tr_msg_words(4, 0, 0);
    for (int round = 0; round < 20; round++) {
        tr_timer_ref h;
        assert_int_equal(tr_send_every(sys, tr_mailbox_ref(mb), &m, 100000, TR_NOW, &h), 0);
        usleep((useconds_t)(rnd(&s) % 3000));
        assert_int_equal(tr_timer_cancel(sys, h), 0);
        uint32_t depth, cap, later;
        assert_int_equal(tr_mailbox_depth(sys, tr_mailbox_ref(mb), &depth, &cap), 0);
        usleep(5000);
        assert_int_equal(tr_mailbox_depth(sys, tr_mailbox_ref(mb), &later, &cap), 0);
        assert_int_equal(later, depth);
        drain(mb);
    }
    tr_mailbox_free(mb);
    tr_system_free(sys);
}

/* ---- a full mailbox --------------------------------------------------------- */

/* Poll tr_timer_missed until it reaches `want`; returns the last value. */
static uint64_t wait_missed(tr_system *sys, tr_timer_ref h, uint64_t want)
{
    tr_deadline give_up = tr_after_ms(TEST_DEADLINE_MS);
    uint64_t missed = 0;
    while (tr_timer_missed(sys, h, &missed) == 0 && missed < want && tr_now() < give_up)
        usleep(1000);
    return missed;
}

static void test_full_mailbox_delays_a_one_shot_and_skips_ticks(void **state)
{
    (void)state;
    tr_system *sys = test_system(0);
    tr_mailbox *mb = new_mailbox(sys, 1);
    tr_ref to = tr_mailbox_ref(mb);
    tr_msg filler = tr_msg_words(1, 0, 0);

    /* One-shot: retried until there is room, then delivered once. */
    assert_int_equal(tr_try_send(sys, to, &filler), 0);
    tr_msg m = tr_msg_words(2, 0, 0);
    tr_timer_ref h;
    assert_int_equal(tr_send_after(sys, to, &m, TR_NOW, &h), 0);
    assert_true(wait_missed(sys, h, 2) >= 2);
    assert_int_equal(test_recv(mb).tag, 1);
    assert_int_equal(test_recv(mb).tag, 2);
    assert_int_equal(tr_timer_cancel(sys, h), TR_ENOTIMER);

    /* Periodic: ticks that find it full are skipped and counted. */
    assert_int_equal(tr_try_send(sys, to, &filler), 0);
    m.tag = 3;
    assert_int_equal(tr_send_every(sys, to, &m, 2 * MS, TR_NOW, &h), 0);
    assert_true(wait_missed(sys, h, 3) >= 3);
    assert_int_equal(test_recv(mb).tag, 1);
    assert_int_equal(test_recv(mb).tag, 3); /* a later tick gets through */
    assert_int_equal(tr_timer_cancel(sys, h), 0);
    drain(mb);
    tr_mailbox_free(mb);
    tr_system_free(sys);
}

/* ---- handles: fired, cancelled, stale, reused ------------------------------ */

static void test_stale_and_fired_handles_are_safe(void **state)
{
    (void)state;
    tr_system *sys = test_system(0);
    tr_mailbox *mb = new_mailbox(sys, 8);
    tr_ref to = tr_mailbox_ref(mb);
    atomic_store(&freed, 0);

    tr_timer_ref a, b;
    tr_msg m = counted_msg(1);
    assert_int_equal(tr_send_after(sys, to, &m, tr_after_ms(60000), &a), 0);
    assert_int_equal(tr_timer_cancel(sys, a), 0);
    assert_int_equal(atomic_load(&freed), 1); /* cancel released it */
    assert_int_equal(tr_timer_cancel(sys, a), TR_ENOTIMER);
    /* The entry is reused at once; the old handle must not reach it. */
    m = counted_msg(2);
    assert_int_equal(tr_send_after(sys, to, &m, tr_after_ms(20), &b), 0);
    assert_true(a != b);
    assert_int_equal(tr_timer_cancel(sys, a), TR_ENOTIMER);
    tr_msg got = test_recv(mb);
    assert_int_equal(got.tag, 2);
    tr_msg_release(&got);
    assert_int_equal(tr_timer_cancel(sys, b), TR_ENOTIMER);
    assert_int_equal(atomic_load(&freed), 2);

    /* Handles that never were: none may crash or cancel anything. */
    uint64_t s = seed ^ 0xbad, missed;
    assert_int_equal(tr_timer_cancel(sys, TR_TIMER_NONE), TR_ENOTIMER);
    assert_int_equal(tr_timer_cancel(sys, ~(tr_timer_ref)0), TR_ENOTIMER);
    for (int i = 0; i < 10000; i++) {
        tr_timer_ref h = rnd(&s);
        if (i % 2)
            h = (b & ~0xFFFFFFFFull) | (h & 0xFFFFFFFFull); /* a live generation */
        assert_int_equal(tr_timer_cancel(sys, h), TR_ENOTIMER);
        assert_int_equal(tr_timer_missed(sys, h, &missed), TR_ENOTIMER);
    }
    tr_mailbox_free(mb);
    tr_system_free(sys);
}

/* ---- the target goes away ---------------------------------------------------- */

static int stops_at_once(tr_actor *self, tr_msg *m)
{
    (void)self;
    tr_msg_release(m);
    return TR_STOP;
}

static void test_timer_to_an_exited_target_releases_its_payload_once(void **state)
{
    (void)state;
    tr_system *sys = test_system(0);
    atomic_store(&freed, 0);
    tr_ref r;
    assert_int_equal(tr_spawn(sys, stops_at_once, NULL, &r), 0);
    tr_timer_ref once, every;
    tr_msg m = counted_msg(1);
    assert_int_equal(tr_send_after(sys, r, &m, tr_after_ms(300), &once), 0);
    tr_msg tick = tr_msg_words(2, 0, 0);
    assert_int_equal(tr_send_every(sys, r, &tick, 10 * MS, tr_after_ms(300), &every), 0);
    tr_msg stop = tr_msg_words(9, 0, 0);
    assert_int_equal(tr_send(sys, r, &stop, TR_FOREVER), 0);
    wait_gone(sys, r);
    assert_int_equal(wait_count(&freed, 1), 1);
    /* Both timers ended at their first deadline; nothing runs twice. */
    uint64_t missed;
    tr_deadline give_up = tr_after_ms(TEST_DEADLINE_MS);
    while (tr_timer_missed(sys, every, &missed) == 0 && tr_now() < give_up)
        usleep(1000);
    assert_int_equal(tr_timer_missed(sys, every, &missed), TR_ENOTIMER);
    assert_int_equal(tr_timer_cancel(sys, once), TR_ENOTIMER);
    usleep(50000);
    assert_int_equal(atomic_load(&freed), 1);

    /* A target already gone is refused, and the caller keeps the payload. */
    m = counted_msg(3);
    assert_int_equal(tr_send_after(sys, r, &m, TR_NOW, NULL), TR_ENOACTOR);
    assert_int_equal(tr_send_every(sys, r, &tick, MS, TR_NOW, NULL), TR_ENOACTOR);
    assert_int_equal(atomic_load(&freed), 1);

    /* A mailbox closed under a pending timer ends it too; once closed,
     * it is refused. */
    tr_mailbox *mb = new_mailbox(sys, 8);
    tr_msg late = counted_msg(4);
    assert_int_equal(tr_send_after(sys, tr_mailbox_ref(mb), &late, tr_after_ms(30), &once), 0);
    assert_int_equal(tr_mailbox_close(mb), 0);
    assert_int_equal(wait_count(&freed, 2), 2);
    assert_int_equal(tr_send_after(sys, tr_mailbox_ref(mb), &m, TR_NOW, NULL), TR_ECLOSED);
    assert_int_equal(atomic_load(&freed), 2);
    tr_msg_release(&m);
    tr_mailbox_free(mb);
    tr_system_free(sys);
}

/* ---- shutdown with timers pending ------------------------------------------- */

enum { PENDING = 1000 };

static tr_ref pending_target;

static int arms_half_the_pending(tr_actor *self)
{
    for (int i = 0; i < PENDING / 2; i++) {
        tr_msg m = counted_msg(1);
        if (tr_send_after(tr_actor_system(self), pending_target, &m, tr_after_ms(60000), NULL))
            return -1;
    }
    atomic_fetch_add(&done, 1);
    return 0;
}

static int waits_for_ever(tr_actor *self)
{
    (void)self;
    tr_msg m;
    return tr_recv(&m, TR_FOREVER);
}

static void test_shutdown_releases_the_payloads_of_pending_timers(void **state)
{
    (void)state;
    tr_system *sys = test_system(0);
    atomic_store(&freed, 0);
    atomic_store(&done, 0);
    assert_int_equal(tr_spawn_loop(sys, waits_for_ever, NULL, &pending_target), 0);
    assert_int_equal(tr_spawn_loop(sys, arms_half_the_pending, NULL, NULL), 0);
    tr_timer_ref h;
    for (int i = 0; i < PENDING / 2; i++) {
        tr_msg m = counted_msg(1);
        assert_int_equal(tr_send_after(sys, pending_target, &m, tr_after_ms(60000), &h), 0);
    }
    tr_msg tick = tr_msg_words(2, 0, 0);
    assert_int_equal(tr_send_every(sys, pending_target, &tick, 1000 * MS,
                                   tr_after_ms(60000), NULL), 0);
    assert_int_equal(wait_count(&done, 1), 1);
    assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), 0);
    assert_int_equal(atomic_load(&freed), PENDING);
    assert_int_equal(tr_timer_cancel(sys, h), TR_ENOTIMER);
    tr_msg m = tr_msg_words(1, 0, 0);
    assert_int_equal(tr_send_after(sys, pending_target, &m, TR_NOW, NULL), TR_ESHUTDOWN);
    tr_system_free(sys);
    assert_int_equal(atomic_load(&freed), PENDING);
}

/* ---- 100,000 timers, armed here and by an actor, cancelled elsewhere ------- */

enum { BULK = 100000 / TEST_SCALE };

static tr_timer_ref bulk[BULK];
static tr_system *bulk_sys;
static tr_ref bulk_target;
static atomic_int bulk_received, cancels_ok, cancels_stale;

static int counts_deliveries(tr_actor *self, tr_msg *m)
{
    (void)self;
    tr_msg_release(m);
    atomic_fetch_add(&bulk_received, 1);
    return 0;
}

static int arms_bulk(tr_actor *self)
{
    for (int i = BULK / 2; i < BULK; i++) {
        tr_msg m = counted_msg(1);
        if (tr_send_after(tr_actor_system(self), bulk_target, &m,
                          tr_after_ms(30000 + i % 30000), &bulk[i]))
            return -1;
    }
    atomic_fetch_add(&done, 1);
    return 0;
}

static void *cancels_bulk(void *arg)
{
    (void)arg;
    for (int i = 0; i < BULK; i++) {
        int rc = tr_timer_cancel(bulk_sys, bulk[i]);
        atomic_fetch_add(rc == 0 ? &cancels_ok : &cancels_stale, 1);
    }
    return NULL;
}

static void test_100k_timers_cancelled_from_another_thread(void **state)
{
    (void)state;
    tr_system *sys = test_system(0);
    bulk_sys = sys;
    atomic_store(&freed, 0);
    atomic_store(&done, 0);
    atomic_store(&bulk_received, 0);
    assert_int_equal(tr_spawn(sys, counts_deliveries, NULL, &bulk_target), 0);
    assert_int_equal(tr_spawn_loop(sys, arms_bulk, NULL, NULL), 0);
    for (int i = 0; i < BULK / 2; i++) {
        tr_msg m = counted_msg(1);
        assert_int_equal(tr_send_after(sys, bulk_target, &m, tr_after_ms(30000 + i % 30000),
                                       &bulk[i]), 0);
    }
    assert_int_equal(wait_count(&done, 1), 1);
    for (int round = 0; round < 2; round++) {
        atomic_store(&cancels_ok, 0);
        atomic_store(&cancels_stale, 0);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, cancels_bulk, NULL), 0);
        pthread_join(t, NULL);
        /* The first round cancels every one, the second finds them gone. */
        assert_int_equal(atomic_load(&cancels_ok), round ? 0 : BULK);
        assert_int_equal(atomic_load(&cancels_stale), round ? BULK : 0);
        assert_int_equal(atomic_load(&freed), BULK);
    }
    assert_int_equal(atomic_load(&bulk_received), 0);
    tr_system_free(sys);
}

/* ---- cancel racing delivery: every timer ends exactly one way -------------- */

enum { RACED = 20000 / TEST_SCALE };

static atomic_int delivered_id[RACED], cancelled_id[RACED];
static atomic_int raced_done;

static int records_ids(tr_actor *self, tr_msg *m)
{
    (void)self;
    atomic_fetch_add(&delivered_id[m->a], 1);
    atomic_fetch_add(&raced_done, 1);
    return 0;
}

static void *cancels_in_random_order(void *arg)
{
    uint64_t s = seed ^ (uintptr_t)arg;
    int *order = malloc(RACED * sizeof *order);
    shuffle(order, RACED, &s);
    for (int i = 0; i < RACED; i++) {
        int id = order[i];
        if (tr_timer_cancel(bulk_sys, bulk[id]) == 0) {
            atomic_fetch_add(&cancelled_id[id], 1);
            atomic_fetch_add(&raced_done, 1);
        }
    }
    free(order);
    return NULL;
}

static void test_cancel_racing_delivery_ends_each_timer_once(void **state)
{
    (void)state;
    tr_system *sys = test_system(0);
    bulk_sys = sys;
    atomic_store(&raced_done, 0);
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.mailbox_capacity = 1023;
    tr_ref target;
    assert_int_equal(tr_spawn(sys, records_ids, &o, &target), 0);
    uint64_t s = seed ^ 0x4ace;
    tr_deadline t0 = tr_now();
    for (int i = 0; i < RACED; i++) {
        atomic_store(&delivered_id[i], 0);
        atomic_store(&cancelled_id[i], 0);
        tr_msg m = tr_msg_words(1, (uint64_t)i, 0);
        assert_int_equal(tr_send_after(sys, target, &m, t0 + (int64_t)(rnd(&s) % (20 * MS)),
                                       &bulk[i]), 0);
    }
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, cancels_in_random_order, (void *)(uintptr_t)1), 0);
    pthread_join(t, NULL);
    assert_int_equal(wait_count(&raced_done, RACED), RACED);
    usleep(20000); /* a delivery after a successful cancel would show now */
    int both = 0, neither = 0;
    for (int i = 0; i < RACED; i++) {
        int d = atomic_load(&delivered_id[i]), c = atomic_load(&cancelled_id[i]);
        both += d + c > 1;
        neither += d + c == 0;
    }
    assert_int_equal(both, 0);
    assert_int_equal(neither, 0);
    assert_int_equal(atomic_load(&raced_done), RACED);
    tr_system_free(sys);
}

/* ---- bad arguments ------------------------------------------------------------- */

static void test_bad_arguments_are_refused(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    tr_mailbox *mb = new_mailbox(sys, 8);
    tr_ref to = tr_mailbox_ref(mb);
    tr_msg m = tr_msg_words(1, 0, 0);
    tr_timer_ref h = TR_TIMER_NONE;
    uint64_t missed;
    assert_int_equal(tr_send_after(NULL, to, &m, TR_NOW, &h), TR_EINVAL);
    assert_int_equal(tr_send_after(sys, to, NULL, TR_NOW, &h), TR_EINVAL);
    assert_int_equal(tr_send_every(NULL, to, &m, MS, TR_NOW, &h), TR_EINVAL);
    assert_int_equal(tr_send_every(sys, to, NULL, MS, TR_NOW, &h), TR_EINVAL);
    assert_int_equal(tr_send_every(sys, to, &m, 0, TR_NOW, &h), TR_EINVAL);
    assert_int_equal(tr_send_every(sys, to, &m, -MS, TR_NOW, &h), TR_EINVAL);
    atomic_store(&freed, 0);
    tr_msg owned = counted_msg(1); /* each tick would own it: refused */
    assert_int_equal(tr_send_every(sys, to, &owned, MS, TR_NOW, &h), TR_EINVAL);
    assert_int_equal(h, TR_TIMER_NONE);
    assert_int_equal(tr_send_after(sys, TR_REF_NONE, &owned, TR_NOW, &h), TR_ENOACTOR);
    assert_int_equal(atomic_load(&freed), 0); /* still ours */
    tr_msg_release(&owned);
    assert_int_equal(tr_timer_cancel(NULL, h), TR_EINVAL);
    assert_int_equal(tr_timer_missed(NULL, h, &missed), TR_EINVAL);
    assert_int_equal(tr_send_after(sys, to, &m, TR_FOREVER, &h), 0);
    assert_int_equal(tr_timer_missed(sys, h, NULL), TR_EINVAL);
    assert_int_equal(tr_timer_missed(sys, h, &missed), 0);
    assert_int_equal(missed, 0);
    assert_int_equal(tr_timer_cancel(sys, h), 0);
    assert_string_equal(tr_err_name(TR_ENOTIMER), "TR_ENOTIMER");

    assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), 0);
    assert_int_equal(tr_send_after(sys, to, &m, TR_NOW, &h), TR_ESHUTDOWN);
    assert_int_equal(tr_send_every(sys, to, &m, MS, TR_NOW, &h), TR_ESHUTDOWN);
    tr_mailbox_free(mb);
    tr_system_free(sys);
}

#if TEST_FAIL_MALLOC
/*
 * Allocation failure, injected on this thread only (sanitizer builds
 * replace malloc themselves and skip it): a timer that needs a new chunk
 * of entries and cannot get one is refused, the caller keeps its payload,
 * and the next arm that can allocate works.
 */
static void test_arming_without_memory_returns_enomem(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    tr_mailbox *mb = new_mailbox(sys, 8);
    atomic_store(&freed, 0);
    tr_msg m = counted_msg(1);
    tr_timer_ref h = TR_TIMER_NONE;
    fail_mallocs = true; /* the set has no chunk yet */
    int rc = tr_send_after(sys, tr_mailbox_ref(mb), &m, TR_NOW, &h);
    fail_mallocs = false;
    assert_int_equal(rc, TR_ENOMEM);
    assert_int_equal(h, TR_TIMER_NONE);
    assert_int_equal(atomic_load(&freed), 0);
    assert_int_equal(tr_send_after(sys, tr_mailbox_ref(mb), &m, TR_NOW, &h), 0);
    tr_msg got = test_recv(mb);
    tr_msg_release(&got);
    assert_int_equal(atomic_load(&freed), 1);
    tr_mailbox_free(mb);
    tr_system_free(sys);
}
#else
static void test_arming_without_memory_returns_enomem(void **state)
{
    (void)state;
    skip();
}
#endif

int main(void)
{
    seed = test_seed();

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sleepers_on_one_worker_wake_in_deadline_order),
        cmocka_unit_test(test_sleepers_on_every_worker_never_wake_early),
        cmocka_unit_test(test_sleeping_actors_leave_their_worker_to_others),
        cmocka_unit_test(test_sleep_cancelled_returns_ecanceled_promptly),
        cmocka_unit_test(test_cancelled_long_sleep_releases_its_actor_at_once),
        cmocka_unit_test(test_sleep_outside_an_actor_blocks_the_thread),
        cmocka_unit_test(test_send_after_delivers_once_never_early),
        cmocka_unit_test(test_idle_home_with_a_crowded_slot_sleeps_until_due),
        cmocka_unit_test(test_send_after_to_one_target_arrives_in_deadline_order),
        cmocka_unit_test(test_timers_armed_anywhere_carry_the_armers_ref),
        cmocka_unit_test(test_send_every_ticks_at_the_period_and_stops_after_cancel),
        cmocka_unit_test(test_cancel_of_a_fast_ticker_stops_it_at_once),
        cmocka_unit_test(test_full_mailbox_delays_a_one_shot_and_skips_ticks),
        cmocka_unit_test(test_stale_and_fired_handles_are_safe),
        cmocka_unit_test(test_timer_to_an_exited_target_releases_its_payload_once),
        cmocka_unit_test(test_shutdown_releases_the_payloads_of_pending_timers),
        cmocka_unit_test(test_100k_timers_cancelled_from_another_thread),
        cmocka_unit_test(test_cancel_racing_delivery_ends_each_timer_once),
        cmocka_unit_test(test_bad_arguments_are_refused),
        cmocka_unit_test(test_arming_without_memory_returns_enomem),
    };
    return cmocka_run_group_tests_name("timers", tests, NULL, NULL);
}
