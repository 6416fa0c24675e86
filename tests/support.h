/*
 * support.h - helpers shared by the cmocka suites.
 *
 * cmocka is not thread safe: only the main thread asserts.  Actors record
 * what they see in atomics or report to a mailbox the main thread owns,
 * and the main thread checks after the fact.
 */
#ifndef TR_TEST_SUPPORT_H
#define TR_TEST_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "troupe.h"

/* Generous: the machines are shared and sanitizer builds are slow. */
#define TEST_DEADLINE_MS 20000

/* A system with `workers` threads (0: one per CPU). */
static inline tr_system *test_system(unsigned workers)
{
    tr_config cfg = TR_CONFIG_INIT;
    cfg.workers = workers;
    tr_system *sys = NULL;
    assert_int_equal(tr_system_new(&cfg, &sys), 0);
    return sys;
}

/* Receive one message on a thread mailbox or fail the test. */
static inline tr_msg test_recv(tr_mailbox *mb)
{
    tr_msg m = {0};
    int rc = tr_mailbox_recv(mb, &m, tr_after_ms(TEST_DEADLINE_MS));
    if (rc)
        fail_msg("tr_mailbox_recv: %s", tr_strerror(rc));
    return m;
}

/* Send from an actor, failing loudly (to stderr) if it does not work. */
static inline int test_send(tr_system *sys, tr_ref to, uint64_t tag,
                            uint64_t a, uint64_t b)
{
    tr_msg m = tr_msg_words(tag, a, b);
    return tr_send(sys, to, &m, tr_after_ms(TEST_DEADLINE_MS));
}

static inline int test_sleep_for_ever(tr_actor *self)
{
    (void)self;
    return tr_sleep(TR_FOREVER);
}

/* A loop actor that never receives, its one-message mailbox full: a
 * target that senders must wait on. */
static inline tr_ref test_spawn_full_sleeper(tr_system *sys)
{
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.mailbox_capacity = 1;
    tr_ref r;
    assert_int_equal(tr_spawn_loop(sys, test_sleep_for_ever, &o, &r), 0);
    tr_msg fill = tr_msg_words(1, 0, 0);
    assert_int_equal(tr_try_send(sys, r, &fill), 0);
    return r;
}

/* A system of one worker that a loop actor keeps busy until
 * test_release_worker(): nothing spawned from outside starts meanwhile,
 * so a thread's spawns fill the backlog (`backlog`: tr_config's
 * spawn_backlog). */
static atomic_int test_blocker_started, test_blocker_release;

static inline int test_blocker(tr_actor *self)
{
    (void)self;
    atomic_store(&test_blocker_started, 1);
    while (!atomic_load(&test_blocker_release))
        ;
    return 0;
}

static inline tr_system *test_held_system(uint32_t backlog)
{
    tr_config cfg = TR_CONFIG_INIT;
    cfg.workers = 1;
    cfg.spawn_backlog = backlog;
    tr_system *sys = NULL;
    assert_int_equal(tr_system_new(&cfg, &sys), 0);
    atomic_store(&test_blocker_started, 0);
    atomic_store(&test_blocker_release, 0);
    assert_int_equal(tr_spawn_loop(sys, test_blocker, NULL, NULL), 0);
    int64_t deadline = tr_after_ms(TEST_DEADLINE_MS);
    while (!atomic_load(&test_blocker_started))
        if (tr_now() > deadline)
            fail_msg("the blocker never started");
    return sys;
}

static inline void test_release_worker(void)
{
    atomic_store(&test_blocker_release, 1);
}

/*
 * The seed of a randomised suite: TR_SEED if set, else the clock and the
 * pid.  Printed first, so that a failure can be replayed.
 */
static inline uint64_t test_seed(void)
{
    const char *env = getenv("TR_SEED");
    uint64_t seed = env && *env ? strtoull(env, NULL, 0)
                                : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    printf("seed=%llu (replay with TR_SEED=%llu)\n", (unsigned long long)seed,
           (unsigned long long)seed);
    fflush(stdout);
    return seed;
}

/* A random number stream for the randomised suites (splitmix64: tiny,
 * fast, and good enough to pick targets, deadlines and delays). */
typedef struct test_rng {
    uint64_t s;
} test_rng;

static inline uint64_t test_rnd(test_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/*
 * Run a timed scenario with `room_ms` before its first deadline, and
 * again with twice the room while a run says (false) that the machine was
 * too slow for it to show anything, such as an actor that began its wait
 * after its deadline.  Five such runs in a row fail the test.
 */
static inline void test_with_room(bool (*run)(int64_t room_ms), int64_t room_ms)
{
    for (int tries = 1; !run(room_ms); tries++) {
        if (tries == 5)
            fail_msg("5 runs in a row were too slow to show anything (the last had %lld ms)",
                     (long long)room_ms);
        room_ms *= 2;
    }
}

/* Sanitizer builds run the heavy tests with fewer iterations. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TEST_SCALE 4
#else
#define TEST_SCALE 1
#endif

#endif
