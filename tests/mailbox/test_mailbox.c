/* test_mailbox.c - bounded mailboxes: fan-in, backpressure, deadlines,
 * thread-owned mailboxes and payload ownership. */
#include <pthread.h>
#include <stdatomic.h>

#include "support.h"
#include "runtime.h"

static tr_mailbox *done_mb;

/* ---- 8 producers into one consumer whose mailbox holds 3 -------------- */

#define PRODUCERS 8
static tr_ref consumer_ref;
static atomic_int order_errors;
static _Atomic uint32_t max_depth_seen;

static int producer(tr_actor *self)
{
    uintptr_t id = (uintptr_t)tr_actor_state(self);
    tr_system *sys = tr_actor_system(self);
    const uint64_t n = 20000 / TEST_SCALE;
    for (uint64_t i = 0; i < n; i++) {
        tr_msg m = tr_msg_words(1, id, i);
        int rc = tr_send(sys, consumer_ref, &m, tr_after_ms(TEST_DEADLINE_MS));
        if (rc)
            return rc;
        uint32_t depth, cap;
        if (tr_mailbox_depth(sys, consumer_ref, &depth, &cap) == 0 &&
            depth > atomic_load(&max_depth_seen))
            atomic_store(&max_depth_seen, depth);
    }
    return test_send(sys, consumer_ref, 2, id, n);
}

static uint64_t next_seq[PRODUCERS];
static unsigned finished;
static uint64_t received;

static int consumer(tr_actor *self, tr_msg *m)
{
    if (m->tag == 2) {
        if (next_seq[m->a] != m->b)
            atomic_fetch_add(&order_errors, 1);
        if (++finished == PRODUCERS)
            test_send(tr_actor_system(self), tr_mailbox_ref(done_mb), 9, received, 0);
        return 0;
    }
    if (m->b != next_seq[m->a]++)
        atomic_fetch_add(&order_errors, 1);
    received++;
    return 0;
}

static void test_fanin_8_producers_into_capacity_3_keeps_each_order(void **state)
{
    (void)state;
    tr_system *sys = test_system(0);
    assert_int_equal(tr_mailbox_new(sys, 4, &done_mb), 0);
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.mailbox_capacity = 3; /* exactly 3: 2^2 - 1 */
    assert_int_equal(tr_spawn(sys, consumer, &o, &consumer_ref), 0);
    uint32_t depth, cap;
    assert_int_equal(tr_mailbox_depth(sys, consumer_ref, &depth, &cap), 0);
    assert_int_equal(cap, 3);
    for (uintptr_t i = 0; i < PRODUCERS; i++) {
        tr_spawn_opts p = TR_SPAWN_OPTS_INIT;
        p.state = (void *)i;
        assert_int_equal(tr_spawn_loop(sys, producer, &p, NULL), 0);
    }
    tr_msg done = test_recv(done_mb);
    assert_int_equal(done.a, PRODUCERS * (20000 / TEST_SCALE));
    assert_int_equal(atomic_load(&order_errors), 0);
    assert_true(atomic_load(&max_depth_seen) <= 3);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* ---- backpressure on ONE worker: the parked sender must yield ------------ */

static tr_ref slow_ref;
static atomic_int sends_that_found_full;
static _Atomic uint64_t slow_got;

static int slow_consumer(tr_actor *self, tr_msg *m)
{
    (void)self;
    int64_t until = tr_now() + 2000; /* 2 us of "work" */
    while (tr_now() < until)
        ;
    atomic_fetch_add(&slow_got, m->a);
    return 0;
}

static int fast_producer(tr_actor *self)
{
    tr_system *sys = tr_actor_system(self);
    const uint64_t n = 20000 / TEST_SCALE;
    for (uint64_t i = 1; i <= n; i++) {
        uint32_t depth = 0, cap = 0;
        tr_mailbox_depth(sys, slow_ref, &depth, &cap);
        if (depth == cap)
            atomic_fetch_add(&sends_that_found_full, 1);
        /* With one worker the consumer can only run if this send parks
         * the producer and gives the worker back. */
        int rc = test_send(sys, slow_ref, 1, i, 0);
        if (rc)
            return rc;
    }
    return test_send(sys, tr_mailbox_ref(done_mb), 9, n, 0);
}

static void test_send_to_full_mailbox_parks_sender_on_one_worker(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    assert_int_equal(tr_mailbox_new(sys, 4, &done_mb), 0);
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.mailbox_capacity = 7;
    assert_int_equal(tr_spawn(sys, slow_consumer, &o, &slow_ref), 0);
    assert_int_equal(tr_spawn_loop(sys, fast_producer, NULL, NULL), 0);
    tr_msg done = test_recv(done_mb);
    uint64_t n = done.a;
    tr_deadline end = tr_after_ms(TEST_DEADLINE_MS);
    while (atomic_load(&slow_got) != n * (n + 1) / 2 && tr_now() < end)
        ;
    assert_int_equal(atomic_load(&slow_got), n * (n + 1) / 2);
    /* The producer really did hit a full mailbox (and so parked). */
    assert_true(atomic_load(&sends_that_found_full) > 0);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* ---- try_send and deadlines on a full mailbox --------------------------- */

static void test_full_mailbox_try_send_efull_and_deadline_etimedout(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    tr_mailbox *mb;
    assert_int_equal(tr_mailbox_new(sys, 3, &mb), 0);
    tr_msg m = tr_msg_words(1, 0, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tr_try_send(sys, tr_mailbox_ref(mb), &m), 0);
    assert_int_equal(tr_try_send(sys, tr_mailbox_ref(mb), &m), TR_EFULL);
    assert_int_equal(tr_send(sys, tr_mailbox_ref(mb), &m, TR_NOW), TR_ETIMEDOUT);
    /* A wait for room that no one makes, in an actor's mailbox (in our
     * own it would be TR_EDEADLK). */
    tr_ref full = test_spawn_full_sleeper(sys);
    int64_t t0 = tr_now();
    assert_int_equal(tr_send(sys, full, &m, tr_after_ms(30)), TR_ETIMEDOUT);
    assert_true(tr_now() - t0 >= 30 * 1000000LL);
    uint32_t depth;
    assert_int_equal(tr_mailbox_depth(sys, full, &depth, NULL), 0);
    assert_int_equal(depth, 1);
    assert_int_equal(tr_mailbox_depth(sys, tr_mailbox_ref(mb), &depth, NULL), 0);
    assert_int_equal(depth, 3); /* the timed-out send left nothing behind */
    tr_msg out;
    for (int i = 0; i < 3; i++)
        assert_int_equal(tr_mailbox_recv(mb, &out, TR_NOW), 0);
    t0 = tr_now();
    assert_int_equal(tr_mailbox_recv(mb, &out, tr_after_ms(30)), TR_ETIMEDOUT);
    assert_true(tr_now() - t0 >= 30 * 1000000LL);
    assert_int_equal(tr_mailbox_recv(mb, &out, TR_NOW), TR_ETIMEDOUT);
    tr_mailbox_free(mb);
    tr_system_free(sys);
}

/* ---- an actor's send with a deadline to a mailbox nobody drains ---------- */

static tr_mailbox *stuck_mb;

static int sends_into_stuck(tr_actor *self)
{
    tr_system *sys = tr_actor_system(self);
    tr_msg m = tr_msg_words(1, 0, 0);
    int first = tr_send(sys, tr_mailbox_ref(stuck_mb), &m, TR_FOREVER);
    int64_t t0 = tr_now();
    int second = tr_send(sys, tr_mailbox_ref(stuck_mb), &m, tr_after_ms(30));
    int64_t waited = tr_now() - t0;
    test_send(sys, tr_mailbox_ref(done_mb), 9, (uint64_t)(int64_t)first,
              (uint64_t)(int64_t)second);
    return test_send(sys, tr_mailbox_ref(done_mb), 10, (uint64_t)waited, 0);
}

static void test_actor_send_deadline_expires_on_full_mailbox(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 4, &done_mb), 0);
    assert_int_equal(tr_mailbox_new(sys, 1, &stuck_mb), 0);
    assert_int_equal(tr_spawn_loop(sys, sends_into_stuck, NULL, NULL), 0);
    tr_msg r = test_recv(done_mb);
    assert_int_equal((int)(int64_t)r.a, 0);
    assert_int_equal((int)(int64_t)r.b, TR_ETIMEDOUT);
    r = test_recv(done_mb);
    assert_true((int64_t)r.a >= 30 * 1000000LL);
    uint32_t depth;
    assert_int_equal(tr_mailbox_depth(sys, tr_mailbox_ref(stuck_mb), &depth, NULL), 0);
    assert_int_equal(depth, 1);
    tr_mailbox_free(stuck_mb);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* ---- a foreign thread blocks in send until an actor makes room ----------- */

static _Atomic uint64_t slow_sum;

static int sums_slowly(tr_actor *self, tr_msg *m)
{
    (void)self;
    int64_t until = tr_now() + 5000;
    while (tr_now() < until)
        ;
    atomic_fetch_add(&slow_sum, m->a);
    return 0;
}

static void test_foreign_thread_send_blocks_until_room(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.mailbox_capacity = 1;
    tr_ref r;
    assert_int_equal(tr_spawn(sys, sums_slowly, &o, &r), 0);
    const uint64_t n = 3000 / TEST_SCALE;
    for (uint64_t i = 1; i <= n; i++)
        assert_int_equal(test_send(sys, r, 1, i, 0), 0);
    tr_deadline end = tr_after_ms(TEST_DEADLINE_MS);
    while (atomic_load(&slow_sum) != n * (n + 1) / 2 && tr_now() < end)
        ;
    assert_int_equal(atomic_load(&slow_sum), n * (n + 1) / 2);
    tr_system_free(sys);
}

/* ---- thread mailboxes: owner only; sender ref; replies ------------------- */

static tr_mailbox *shared_mb;
static int other_thread_rc;

static void *try_recv_elsewhere(void *arg)
{
    (void)arg;
    tr_msg m;
    other_thread_rc = tr_mailbox_recv(shared_mb, &m, TR_NOW);
    return NULL;
}

static int echo(tr_actor *self, tr_msg *m)
{
    return test_send(tr_actor_system(self), m->from, 2, m->a * 2, 0);
}

static void test_thread_mailbox_is_owned_and_receives_replies(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 4, &shared_mb), 0);
    pthread_t t;
    pthread_create(&t, NULL, try_recv_elsewhere, NULL);
    pthread_join(t, NULL);
    assert_int_equal(other_thread_rc, TR_ECONTEXT);

    tr_ref e;
    assert_int_equal(tr_spawn(sys, echo, NULL, &e), 0);
    for (uint64_t i = 0; i < 100; i++) {
        assert_int_equal(test_send(sys, e, 1, i, 0), 0);
        tr_msg r = test_recv(shared_mb);
        assert_int_equal(r.a, 2 * i);
        assert_int_equal(r.from, e);
    }
    tr_ref gone = tr_mailbox_ref(shared_mb);
    tr_mailbox_free(shared_mb);
    /* A freed mailbox's ref is stale. */
    tr_msg m = tr_msg_words(1, 0, 0);
    assert_int_equal(tr_send(sys, gone, &m, TR_NOW), TR_ENOACTOR);
    tr_system_free(sys);
}

/* ---- payload destructors run exactly once -------------------------------- */

static atomic_int freed;

static void count_free(void *ptr, size_t len)
{
    (void)len;
    free(ptr);
    atomic_fetch_add(&freed, 1);
}

/* ---- a thread's sends carry its oldest mailbox in that system ----------- */

static tr_ref sent_from(tr_system *sys, tr_mailbox *to)
{
    assert_int_equal(test_send(sys, tr_mailbox_ref(to), 1, 0, 0), 0);
    return test_recv(to).from;
}

static void test_a_threads_sends_carry_its_oldest_mailbox_there(void **state)
{
    (void)state;
    tr_system *a = test_system(1), *b = test_system(1);
    tr_mailbox *a1, *a2, *b1;
    assert_int_equal(tr_mailbox_new(a, 4, &a1), 0);
    assert_int_equal(sent_from(a, a1), tr_mailbox_ref(a1));
    assert_int_equal(tr_mailbox_new(b, 4, &b1), 0);
    assert_int_equal(tr_mailbox_new(a, 4, &a2), 0);
    assert_int_equal(sent_from(a, a2), tr_mailbox_ref(a1));
    assert_int_equal(sent_from(b, b1), tr_mailbox_ref(b1));
    assert_int_equal(sent_from(a, a2), tr_mailbox_ref(a1));
    tr_mailbox_free(a1); /* a2 is now the oldest in a */
    assert_int_equal(sent_from(a, a2), tr_mailbox_ref(a2));
    tr_mailbox_free(a2);
    tr_mailbox_free(b1);
    tr_system_free(b);
    tr_system_free(a);
}

/* ---- a thread sending into its own full mailbox ------------------------- */

/* No one else can make room: TR_EDEADLK at once, where it waited for
 * ever; a send that would not wait still times out. */
static void test_a_thread_sending_into_its_own_full_mailbox_is_edeadlk(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    tr_mailbox *mb;
    assert_int_equal(tr_mailbox_new(sys, 1, &mb), 0);
    tr_msg m = tr_msg_words(1, 0, 0);
    assert_int_equal(tr_send(sys, tr_mailbox_ref(mb), &m, TR_FOREVER), 0);
    assert_int_equal(tr_send(sys, tr_mailbox_ref(mb), &m, TR_FOREVER), TR_EDEADLK);
    assert_int_equal(tr_send(sys, tr_mailbox_ref(mb), &m, TR_NOW), TR_ETIMEDOUT);
    assert_int_equal(test_recv(mb).tag, 1);
    assert_int_equal(tr_send(sys, tr_mailbox_ref(mb), &m, TR_FOREVER), 0);
    tr_mailbox_free(mb);
    tr_system_free(sys);
}

/* ---- a thread mailbox left alive goes with its system ------------------- */

/* The mailbox the thread left in `first` is destroyed by tr_system_free
 * and taken off the thread's list: the thread's mailbox in a second
 * system then works, and its sends stamp that mailbox as the sender.
 * The list used to keep naming the freed mailbox. */
static void test_a_thread_mailbox_left_alive_goes_with_its_system(void **state)
{
    (void)state;
    tr_system *first = test_system(1);
    tr_mailbox *kept_mb, *left;
    assert_int_equal(tr_mailbox_new(first, 4, &kept_mb), 0);
    assert_int_equal(tr_mailbox_new(first, 4, &left), 0);
    tr_msg queued = tr_msg_buf(1, malloc(32), 32, count_free);
    assert_int_equal(tr_send(first, tr_mailbox_ref(left), &queued, TR_NOW), 0);
    tr_mailbox_free(kept_mb);
    atomic_store(&freed, 0);
    tr_system_free(first); /* `left` goes here, with what it held */
    assert_int_equal(atomic_load(&freed), 1);

    tr_system *second = test_system(1);
    tr_mailbox *mb;
    assert_int_equal(tr_mailbox_new(second, 4, &mb), 0);
    tr_ref e;
    assert_int_equal(tr_spawn(second, echo, NULL, &e), 0);
    assert_int_equal(test_send(second, e, 1, 21, 0), 0);
    tr_msg r = test_recv(mb);
    assert_int_equal(r.a, 42);
    tr_mailbox_free(mb);
    tr_system_free(second);
}

/* The owner sends into `busy` all along, walking its list for the sender
 * ref, while another thread frees systems where the owner left mailboxes:
 * the list is changed under the owner's feet. */
static tr_system *busy_sys, *_Atomic doomed_sys;
static atomic_int doomed_made, doomed_freed;

static void *owner_sends_while_its_mailboxes_go(void *arg)
{
    atomic_int *errors = arg;
    tr_mailbox *reply;
    tr_ref e;
    if (tr_mailbox_new(busy_sys, 4, &reply) || tr_spawn(busy_sys, echo, NULL, &e)) {
        atomic_fetch_add(errors, 1);
        return NULL;
    }
    const int rounds = 40 / TEST_SCALE;
    for (int i = 0; i < rounds; i++) {
        tr_mailbox *left; /* never freed by the owner */
        if (tr_mailbox_new(atomic_load(&doomed_sys), 4, &left))
            atomic_fetch_add(errors, 1);
        atomic_store(&doomed_made, i + 1);
        while (atomic_load(&doomed_freed) <= i) {
            tr_msg r = tr_msg_words(0, 0, 0);
            if (test_send(busy_sys, e, 1, i, 0) ||
                tr_mailbox_recv(reply, &r, tr_after_ms(TEST_DEADLINE_MS)) ||
                r.from != e || r.a != 2 * (uint64_t)i)
                atomic_fetch_add(errors, 1);
        }
    }
    tr_mailbox_free(reply);
    return NULL;
}

static void test_a_thread_mailbox_goes_while_its_owner_sends_elsewhere(void **state)
{
    (void)state;
    busy_sys = test_system(1);
    atomic_store(&doomed_sys, test_system(1));
    atomic_store(&doomed_made, 0);
    atomic_store(&doomed_freed, 0);
    atomic_int errors = 0;
    pthread_t owner;
    assert_int_equal(pthread_create(&owner, NULL, owner_sends_while_its_mailboxes_go, &errors), 0);
    const int rounds = 40 / TEST_SCALE;
    tr_deadline end = tr_after_ms(TEST_DEADLINE_MS);
    for (int i = 0; i < rounds; i++) {
        while (atomic_load(&doomed_made) <= i)
            if (tr_now() > end)
                fail_msg("the owner never made its mailbox %d", i);
        tr_system *old = atomic_load(&doomed_sys);
        atomic_store(&doomed_sys, test_system(1));
        tr_system_free(old);
        atomic_store(&doomed_freed, i + 1);
    }
    assert_int_equal(pthread_join(owner, NULL), 0);
    assert_int_equal(atomic_load(&errors), 0);
    tr_system_free(atomic_load(&doomed_sys));
    tr_system_free(busy_sys);
}

/* A thread that ends owning a mailbox: tr_system_free destroys the
 * mailbox, and the thread's record goes with it (LeakSanitizer). */
static tr_system *ending_sys;

static void *ends_owning_a_mailbox(void *arg)
{
    tr_mailbox **out = arg;
    if (tr_mailbox_new(ending_sys, 4, out))
        *out = NULL;
    return NULL;
}

static void test_a_thread_that_ends_owning_a_mailbox_leaks_nothing(void **state)
{
    (void)state;
    ending_sys = test_system(1);
    tr_mailbox *mb;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, ends_owning_a_mailbox, &mb), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_non_null(mb);
    /* Its ref still reaches it until the system goes. */
    assert_int_equal(test_send(ending_sys, tr_mailbox_ref(mb), 1, 0, 0), 0);
    tr_system_free(ending_sys);
}

static void test_queued_payloads_are_released_when_mailbox_is_freed(void **state)
{
    (void)state;
    atomic_store(&freed, 0);
    tr_system *sys = test_system(1);
    tr_mailbox *mb;
    assert_int_equal(tr_mailbox_new(sys, 15, &mb), 0);
    for (int i = 0; i < 15; i++) {
        tr_msg m = tr_msg_buf(1, malloc(32), 32, count_free);
        assert_int_equal(tr_send(sys, tr_mailbox_ref(mb), &m, TR_NOW), 0);
    }
    /* A failed send leaves the payload with the caller. */
    tr_msg extra = tr_msg_buf(1, malloc(32), 32, count_free);
    assert_int_equal(tr_try_send(sys, tr_mailbox_ref(mb), &extra), TR_EFULL);
    assert_int_equal(atomic_load(&freed), 0);
    tr_msg_release(&extra);
    tr_msg_release(&extra); /* the second call does nothing */
    assert_int_equal(atomic_load(&freed), 1);
    /* One received and released by hand, the rest by tr_mailbox_free. */
    tr_msg got;
    assert_int_equal(tr_mailbox_recv(mb, &got, TR_NOW), 0);
    tr_msg_release(&got);
    assert_int_equal(atomic_load(&freed), 2);
    tr_mailbox_free(mb);
    assert_int_equal(atomic_load(&freed), 16);
    tr_system_free(sys);
}

/* ---- an exiting receiver wakes its parked senders with TR_ENOACTOR ------- */

static tr_ref quitter_ref;

static int quits_after_one(tr_actor *self)
{
    tr_msg m;
    tr_recv(&m, tr_after_ms(TEST_DEADLINE_MS));
    (void)self;
    /* Give the sender time to fill the mailbox and park. */
    int64_t until = tr_now() + 20 * 1000000LL;
    while (tr_now() < until)
        tr_yield();
    return 0;
}

static int floods_quitter(tr_actor *self)
{
    tr_system *sys = tr_actor_system(self);
    int rc = 0;
    uint64_t sent = 0;
    while (rc == 0) {
        tr_msg m = tr_msg_words(1, sent, 0);
        rc = tr_send(sys, quitter_ref, &m, tr_after_ms(TEST_DEADLINE_MS));
        if (rc == 0)
            sent++;
    }
    return test_send(sys, tr_mailbox_ref(done_mb), 9, (uint64_t)(int64_t)rc, sent);
}

static void test_exit_wakes_parked_senders_with_enoactor(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    assert_int_equal(tr_mailbox_new(sys, 4, &done_mb), 0);
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.mailbox_capacity = 3;
    assert_int_equal(tr_spawn_loop(sys, quits_after_one, &o, &quitter_ref), 0);
    assert_int_equal(tr_spawn_loop(sys, floods_quitter, NULL, NULL), 0);
    tr_msg r = test_recv(done_mb);
    assert_int_equal((int)(int64_t)r.a, TR_ENOACTOR);
    assert_true(r.b >= 4); /* one taken, three queued, then it parked */
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* ---- a wake-up for room that a cancelled sender does not use ------------- */

/* The receiver wakes one parked sender per look at its room.  Three
 * senders wait on a full mailbox, in the order A, B, C: the receiver's
 * take wakes A, its look before it parks wakes B, and both are cancelled
 * before they run (one worker: they run in that order, after it).  C
 * must still be woken: the room A and B did not use is passed on.  It
 * waited until its deadline. */
enum { ROOM_SENDERS = 3 };
static tr_ref room_receiver, room_sender[ROOM_SENDERS];
static _Atomic tr_ref room_go;

static int receives_then_cancels(tr_actor *self)
{
    tr_system *sys = tr_actor_system(self);
    tr_mailbox *go;
    assert_int_equal(tr_mailbox_new(sys, 1, &go), 0);
    atomic_store(&room_go, tr_mailbox_ref(go));
    tr_msg m;
    assert_int_equal(tr_mailbox_recv(go, &m, tr_after_ms(TEST_DEADLINE_MS)), 0);
    assert_int_equal(tr_recv(&m, tr_after_ms(TEST_DEADLINE_MS)), 0); /* wakes A */
    assert_int_equal(tr_cancel(sys, room_sender[0]), 0);
    for (int got = 0; got < 1;) /* parks, which wakes B; then C's message */
        if (tr_recv(&m, tr_after_ms(TEST_DEADLINE_MS)) == 0 && m.tag == 2)
            got++;
    return 0;
}

static int sends_to_the_receiver(tr_actor *self)
{
    tr_system *sys = tr_actor_system(self);
    uintptr_t me = (uintptr_t)tr_actor_state(self);
    int rc = test_send(sys, room_receiver, 2, me, 0);
    if (me == 0) /* A, cancelled, cancels B, which the receiver woke */
        assert_int_equal(tr_cancel(sys, room_sender[1]), 0);
    return test_send(sys, tr_mailbox_ref(done_mb), 1, me, (uint64_t)-rc);
}

static void test_room_a_cancelled_sender_was_woken_for_goes_to_the_next(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    assert_int_equal(tr_mailbox_new(sys, 4, &done_mb), 0);
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.mailbox_capacity = 1;
    atomic_store(&room_go, TR_REF_NONE);
    assert_int_equal(tr_spawn_loop(sys, receives_then_cancels, &o, &room_receiver), 0);
    while (atomic_load(&room_go) == TR_REF_NONE)
        usleep(1000);
    tr_msg filler = tr_msg_words(1, 0, 0);
    assert_int_equal(tr_try_send(sys, room_receiver, &filler), 0);
    for (uintptr_t i = 0; i < ROOM_SENDERS; i++) {
        tr_spawn_opts so = TR_SPAWN_OPTS_INIT;
        so.state = (void *)i;
        assert_int_equal(tr_spawn_loop(sys, sends_to_the_receiver, &so, &room_sender[i]), 0);
        usleep(50 * 1000); /* parked on the full mailbox, in order */
    }
    tr_msg go = tr_msg_words(1, 0, 0);
    assert_int_equal(tr_send(sys, atomic_load(&room_go), &go, tr_after_ms(TEST_DEADLINE_MS)), 0);
    int rc[ROOM_SENDERS];
    for (int i = 0; i < ROOM_SENDERS; i++) {
        tr_msg r = test_recv(done_mb);
        rc[r.a] = -(int)r.b;
    }
    assert_int_equal(rc[0], TR_ECANCELED);
    assert_int_equal(rc[1], TR_ECANCELED);
    assert_int_equal(rc[2], 0);
    tr_mailbox_free(done_mb);
    tr_system_free(sys);
}

/* ---- tr_mailbox_depth while the owner takes ------------------------------ */

enum { CHURN_CAPACITY = 63 };
static tr_mailbox *churned;
static atomic_int churn_phase, churn_failed; /* 1 full, 2 churning, 3 stop */

/* Fills its mailbox, then takes one and puts it back until told to stop:
 * it holds 62 or 63 messages all along. */
static void *churn(void *arg)
{
    tr_system *sys = arg;
    tr_msg m = tr_msg_words(1, 0, 0);
    if (tr_mailbox_new(sys, CHURN_CAPACITY, &churned))
        atomic_store(&churn_failed, 1);
    for (int i = 0; i < CHURN_CAPACITY && !atomic_load(&churn_failed); i++)
        if (tr_try_send(sys, tr_mailbox_ref(churned), &m))
            atomic_store(&churn_failed, 1);
    atomic_store(&churn_phase, 1);
    while (atomic_load(&churn_phase) == 1)
        ;
    while (atomic_load(&churn_phase) == 2 && !atomic_load(&churn_failed))
        if (tr_mailbox_recv(churned, &m, TR_NOW) ||
            tr_try_send(sys, tr_mailbox_ref(churned), &m))
            atomic_store(&churn_failed, 1);
    tr_mailbox_free(churned); /* only its owner may */
    return NULL;
}

/* Another thread's look at a mailbox whose owner keeps taking and putting
 * back sees 62 or 63, never less.  It read the ring's two ends one after
 * the other, and takes in between wrapped the difference under the mask:
 * down to 0 for a mailbox that was never below 62 (9 of 10 runs, with up
 * to 2,518 such reads in 20 million). */
static void test_depth_seen_from_another_thread_is_one_instants(void **state)
{
    (void)state;
    tr_system *sys = test_system(1);
    atomic_store(&churn_phase, 0);
    atomic_store(&churn_failed, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, churn, sys), 0);
    while (atomic_load(&churn_phase) != 1)
        ;
    tr_ref r = tr_mailbox_ref(churned);
    atomic_store(&churn_phase, 2);
    long reads = 4000000 / TEST_SCALE, wrong = 0;
    uint32_t lowest = CHURN_CAPACITY, highest = 0;
    for (long n = 0; n < reads; n++) {
        uint32_t depth, cap;
        assert_int_equal(tr_mailbox_depth(sys, r, &depth, &cap), 0);
        wrong += depth < CHURN_CAPACITY - 1 || depth > cap;
        lowest = depth < lowest ? depth : lowest;
        highest = depth > highest ? depth : highest;
    }
    atomic_store(&churn_phase, 3);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(atomic_load(&churn_failed), 0);
    tr_system_free(sys);
    if (wrong)
        print_message("%ld of %ld depths outside 62..63 (lowest %u, highest %u)\n",
                      wrong, reads, lowest, highest);
    assert_int_equal(wrong, 0);
}

/* ---- sends between two systems that wait for room ------------------------- */

static tr_system *near_sys, *far_sys;
static tr_ref far_target, near_report;
static atomic_int far_payloads_freed, far_sending_last;

static void count_far_free(void *ptr, size_t len)
{
    (void)len;
    free(ptr);
    atomic_fetch_add(&far_payloads_freed, 1);
}

/* Sends `n` numbered messages (in its state) into far_sys, then a
 * payload that will find no room, and reports each result near. */
static int sends_far(tr_actor *self)
{
    uint64_t n = (uint64_t)(uintptr_t)tr_actor_state(self);
    for (uint64_t i = 0; i < n; i++) {
        tr_msg m = tr_msg_words(7, i, 0);
        int rc = tr_send(far_sys, far_target, &m, tr_after_ms(TEST_DEADLINE_MS));
        if (rc)
            return test_send(near_sys, near_report, 8, (uint64_t)(int64_t)rc, i);
    }
    atomic_store(&far_sending_last, 1);
    tr_msg last = tr_msg_buf(9, malloc(8), 8, count_far_free);
    int rc = tr_send(far_sys, far_target, &last, TR_FOREVER);
    if (rc)
        tr_msg_release(&last); /* not sent: still ours */
    return test_send(near_sys, near_report, 8, (uint64_t)(int64_t)rc, n);
}

/* Until sends_far's last send waits between tries of a send into `sys`
 * (it counts itself there while it does; a numbered send that waited
 * has uncounted itself before it returned). */
static void wait_for_far_sender(tr_system *sys)
{
    int64_t deadline = tr_after_ms(TEST_DEADLINE_MS);
    while (!atomic_load(&far_sending_last) || atomic_load(&sys->foreign_waiters) == 0)
        if (tr_now() > deadline)
            fail_msg("the sender never waited");
}

/* An actor whose send waits for room in another system's mailbox gets
 * every message through in order (backpressure across systems), and
 * when its own system is freed while it waits, nothing of it is left in
 * the other: its payload is released and the other system's count of
 * waiting senders is back to 0, so that system still stops.  It used to
 * wait on the other system's list, from a stack the free unmapped. */
static void test_a_send_waiting_on_another_system_survives_its_own_system_ending(void **state)
{
    (void)state;
    near_sys = test_system(1);
    far_sys = test_system(1);
    tr_mailbox *far_mb;
    assert_int_equal(tr_mailbox_new(far_sys, 1, &far_mb), 0);
    far_target = tr_mailbox_ref(far_mb);
    atomic_store(&far_payloads_freed, 0);
    atomic_store(&far_sending_last, 0);
    const uint64_t n = 200;
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.state = (void *)(uintptr_t)n;
    assert_int_equal(tr_spawn_loop(near_sys, sends_far, &o, NULL), 0);
    /* All but the last numbered one, which keeps the mailbox full: the
     * payload after it waits in the sender. */
    for (uint64_t i = 0; i + 1 < n; i++) {
        tr_msg m = test_recv(far_mb);
        assert_int_equal(m.tag, 7);
        assert_int_equal(m.a, i);
    }
    wait_for_far_sender(far_sys); /* the payload found no room */
    tr_system_free(near_sys);
    assert_int_equal(atomic_load(&far_payloads_freed), 1);
    assert_int_equal(atomic_load(&far_sys->foreign_waiters), 0);
    tr_msg m;
    assert_int_equal(tr_mailbox_recv(far_mb, &m, TR_NOW), 0);
    assert_int_equal(m.a, n - 1);
    assert_int_equal(tr_mailbox_recv(far_mb, &m, TR_NOW), TR_ETIMEDOUT);
    tr_mailbox_free(far_mb);
    tr_system_free(far_sys);
}

/* The other way round: the target's system stops while the send waits.
 * Its shutdown waits for the sender, which gets TR_ESHUTDOWN. */
static void test_a_send_waiting_on_another_system_ends_when_that_system_stops(void **state)
{
    (void)state;
    near_sys = test_system(1);
    far_sys = test_system(1);
    tr_mailbox *report;
    assert_int_equal(tr_mailbox_new(near_sys, 4, &report), 0);
    near_report = tr_mailbox_ref(report);
    far_target = test_spawn_full_sleeper(far_sys);
    atomic_store(&far_payloads_freed, 0);
    atomic_store(&far_sending_last, 0);
    assert_int_equal(tr_spawn_loop(near_sys, sends_far, NULL, NULL), 0); /* n = 0 */
    wait_for_far_sender(far_sys);
    tr_system_free(far_sys);
    tr_msg r = test_recv(report);
    assert_int_equal(r.tag, 8);
    assert_int_equal((int)(int64_t)r.a, TR_ESHUTDOWN);
    tr_mailbox_free(report);
    tr_system_free(near_sys);
    assert_int_equal(atomic_load(&far_payloads_freed), 1); /* by the sender */
}

static _Atomic tr_ref newest_quick;
static atomic_int stop_sending, bad_send_rc;
static atomic_long quick_sends;

static int ends_at_once(tr_actor *self)
{
    (void)self;
    return 0;
}

/* An actor of far_sys: sends to whichever near actor is newest until
 * told to stop; it borrows (a worker of another system has no hazard
 * word there), so it looks at slots that are being given to new actors. */
static int sends_to_the_newest(tr_actor *self)
{
    (void)self;
    while (!atomic_load(&stop_sending)) {
        tr_msg m = tr_msg_words(1, 0, 0);
        int rc = tr_try_send(near_sys, atomic_load(&newest_quick), &m);
        if (rc != 0 && rc != TR_ENOACTOR && rc != TR_EFULL)
            atomic_store(&bad_send_rc, rc);
        atomic_fetch_add(&quick_sends, 1);
    }
    return 0;
}

/* Sends from another system to actors that come and go as fast as they
 * can: every send either arrives or finds no actor.  Under TSan this is
 * the test of the slot's kind, which such a send reads before it borrows
 * (it raced with the slot's next owner). */
static void test_sends_from_another_system_to_actors_that_come_and_go(void **state)
{
    (void)state;
    near_sys = test_system(1);
    far_sys = test_system(1);
    atomic_store(&stop_sending, 0);
    atomic_store(&bad_send_rc, 0);
    atomic_store(&quick_sends, 0);
    tr_ref first;
    assert_int_equal(tr_spawn_loop(near_sys, ends_at_once, NULL, &first), 0);
    atomic_store(&newest_quick, first);
    assert_int_equal(tr_spawn_loop(far_sys, sends_to_the_newest, NULL, NULL), 0);
    for (int i = 0; i < 20000 / TEST_SCALE || atomic_load(&quick_sends) < 1000; i++) {
        tr_ref r;
        assert_int_equal(tr_spawn_loop(near_sys, ends_at_once, NULL, &r), 0);
        atomic_store(&newest_quick, r);
    }
    atomic_store(&stop_sending, 1);
    tr_system_free(far_sys);
    tr_system_free(near_sys);
    assert_int_equal(atomic_load(&bad_send_rc), 0);
}

static tr_system *pair[2];
static tr_ref pair_target[2]; /* a full mailbox in each */
static atomic_int pair_stopped;

/* Sends into the other system's full mailbox: it waits there for ever. */
static int sends_across(tr_actor *self)
{
    int to = (int)(uintptr_t)tr_actor_state(self);
    tr_msg m = tr_msg_words(1, 0, 0);
    return tr_send(pair[to], pair_target[to], &m, TR_FOREVER);
}

static void *stop_one(void *arg)
{
    tr_system_shutdown(arg, TR_FOREVER);
    atomic_fetch_add(&pair_stopped, 1);
    return NULL;
}

/* Two systems, each with an actor waiting to send into the other, stop
 * at once from two threads: each counts the other's sender, which only
 * the other's shutdown can let go.  Both used to wait for ever. */
static void test_two_systems_waiting_on_each_other_stop_at_once(void **state)
{
    (void)state;
    for (int run = 0; run < 20 / TEST_SCALE; run++) {
        for (int i = 0; i < 2; i++) {
            pair[i] = test_system(1);
            pair_target[i] = test_spawn_full_sleeper(pair[i]);
        }
        for (int i = 0; i < 2; i++) {
            tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
            o.state = (void *)(uintptr_t)(1 - i);
            assert_int_equal(tr_spawn_loop(pair[i], sends_across, &o, NULL), 0);
        }
        int64_t deadline = tr_after_ms(TEST_DEADLINE_MS);
        while (!atomic_load(&pair[0]->foreign_waiters) || !atomic_load(&pair[1]->foreign_waiters))
            if (tr_now() > deadline)
                fail_msg("the senders never waited");
        atomic_store(&pair_stopped, 0);
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_create(&t[i], NULL, stop_one, pair[i]), 0);
        while (atomic_load(&pair_stopped) < 2)
            if (tr_now() > deadline)
                fail_msg("the two shutdowns wait for each other");
        for (int i = 0; i < 2; i++) {
            assert_int_equal(pthread_join(t[i], NULL), 0);
            tr_system_free(pair[i]);
        }
    }
}

/* ---- an actor's own mailboxes as its turn ends ---------------------------- */

/* Many owned mailboxes make the end of a turn, which looks at each for a
 * sender waiting for room, long; the next message comes in the middle of
 * that look and is run on the other worker, where it frees them all. */
enum { OWNED_MANY = 10000, OWNED_ROUNDS = 60 / TEST_SCALE };
enum { MAKE_OWNED = 1, FREE_OWNED, STOP_OWNING };

typedef struct owning {
    tr_mailbox *mb[OWNED_MANY];
    tr_ref report;
} owning;

static int owns_many(tr_actor *self, tr_msg *m)
{
    owning *o = tr_actor_state(self);
    switch (m->tag) {
    case MAKE_OWNED:
        for (int i = 0; i < OWNED_MANY; i++)
            assert_int_equal(tr_mailbox_new(tr_actor_system(self), 1, &o->mb[i]), 0);
        break;
    case FREE_OWNED: /* odd ones first: off the middle and the tail too */
        for (int first = 1; first >= 0; first--)
            for (int i = first; i < OWNED_MANY; i += 2)
                tr_mailbox_free(o->mb[i]);
        break;
    default:
        return TR_STOP; /* its exit frees them */
    }
    return test_send(tr_actor_system(self), o->report, m->tag, 0, 0);
}

static void spin_ns(int64_t ns)
{
    int64_t until = tr_now() + ns;
    while (tr_now() < until)
        ;
}

static void test_mailboxes_freed_by_the_next_turn_are_not_touched_by_the_last(void **state)
{
    (void)state;
    tr_system *sys = test_system(2);
    tr_mailbox *report;
    assert_int_equal(tr_mailbox_new(sys, 4, &report), 0);
    owning *o = calloc(1, sizeof *o);
    o->report = tr_mailbox_ref(report);
    for (int round = 0; round < OWNED_ROUNDS; round++) {
        bool stop = round % 2;
        tr_spawn_opts opts = TR_SPAWN_OPTS_INIT;
        opts.state = o;
        tr_ref owner;
        assert_int_equal(tr_spawn(sys, owns_many, &opts, &owner), 0);
        assert_int_equal(test_send(sys, owner, MAKE_OWNED, 0, 0), 0);
        tr_msg made; /* polled: a thread's wake-up would take longer than the look */
        while (tr_mailbox_recv(report, &made, TR_NOW) == TR_ETIMEDOUT)
            ;
        assert_int_equal(made.tag, MAKE_OWNED);
        spin_ns((round % 20) * 1000); /* land somewhere in the turn's end */
        assert_int_equal(test_send(sys, owner, stop ? STOP_OWNING : FREE_OWNED, 0, 0), 0);
        if (!stop) {
            assert_int_equal(test_recv(report).tag, FREE_OWNED);
            assert_int_equal(test_send(sys, owner, STOP_OWNING, 0, 0), 0);
        }
    }
    free(o);
    tr_mailbox_free(report);
    tr_system_free(sys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fanin_8_producers_into_capacity_3_keeps_each_order),
        cmocka_unit_test(test_send_to_full_mailbox_parks_sender_on_one_worker),
        cmocka_unit_test(test_full_mailbox_try_send_efull_and_deadline_etimedout),
        cmocka_unit_test(test_actor_send_deadline_expires_on_full_mailbox),
        cmocka_unit_test(test_foreign_thread_send_blocks_until_room),
        cmocka_unit_test(test_thread_mailbox_is_owned_and_receives_replies),
        cmocka_unit_test(test_a_threads_sends_carry_its_oldest_mailbox_there),
        cmocka_unit_test(test_a_thread_sending_into_its_own_full_mailbox_is_edeadlk),
        cmocka_unit_test(test_a_thread_mailbox_left_alive_goes_with_its_system),
        cmocka_unit_test(test_a_thread_mailbox_goes_while_its_owner_sends_elsewhere),
        cmocka_unit_test(test_a_thread_that_ends_owning_a_mailbox_leaks_nothing),
        cmocka_unit_test(test_queued_payloads_are_released_when_mailbox_is_freed),
        cmocka_unit_test(test_exit_wakes_parked_senders_with_enoactor),
        cmocka_unit_test(test_room_a_cancelled_sender_was_woken_for_goes_to_the_next),
        cmocka_unit_test(test_depth_seen_from_another_thread_is_one_instants),
        cmocka_unit_test(test_a_send_waiting_on_another_system_survives_its_own_system_ending),
        cmocka_unit_test(test_a_send_waiting_on_another_system_ends_when_that_system_stops),
        cmocka_unit_test(test_two_systems_waiting_on_each_other_stop_at_once),
        cmocka_unit_test(test_sends_from_another_system_to_actors_that_come_and_go),
        cmocka_unit_test(test_mailboxes_freed_by_the_next_turn_are_not_touched_by_the_last),
    };
    return cmocka_run_group_tests_name("mailbox", tests, NULL, NULL);
}
