/*
 * test_stress.c - seeded stress runs of the whole runtime.
 *
 * What it proves, under load, with random timing and on 1, 2 and more
 * workers than CPUs:
 *   1. Many producers to few consumers through tiny mailboxes (1, 3, 7)
 *      lose, duplicate and reorder nothing: per (producer, consumer) pair
 *      the sequence numbers arrive consecutively, and what was sent
 *      successfully is exactly what was received, whether sends wait
 *      forever, time out and retry, or poll with tr_try_send.
 *   2. A pointer payload is freed exactly once, whoever ends up owning
 *      it: the receiver, the sender after TR_ENOACTOR or TR_ETIMEDOUT, the
 *      runtime when a receiver exits with messages queued, or
 *      tr_system_free for actors still alive (or parked) at shutdown.
 *   3. Threads that are not workers get every reply to their requests, on
 *      their own mailboxes, with deadlines, while actors also talk among
 *      themselves.
 *   4. Actors that spawn children in waves account for every child, and a
 *      stale ref never reaches the actor that reuses its slot.
 *
 * The random choices (targets, spins, yields, deadlines, exit points) come
 * from a seed: TR_SEED=<n> replays them.  Thread interleavings are not
 * reproducible, but a seed that failed once is the best start for a
 * replay.  Only the main thread asserts: actors and threads count in
 * their own state (read by the main thread after a report message gives
 * it the happens-before) or in atomics, and record unexpected return
 * codes with actor_error().
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

/* ---- seed, random numbers, dawdling ------------------------------------- */

static uint64_t seed;

static uint32_t below(test_rng *r, uint32_t n)
{
    return (uint32_t)(test_rnd(r) % n);
}

/*
 * An independent stream for each (scenario, participant).  Participants
 * draw what they do (targets, kinds, limits, exit paths) from a `plan`
 * stream and how long they wait or spin from a `jitter` stream: retries
 * after timeouts consume jitter only, so a replayed seed makes the same
 * plan however the timing falls out.
 */
static test_rng rng_for(uint64_t scenario, uint64_t who)
{
    test_rng r = {seed ^ (scenario * 0xD1B54A32D192ED03ull) ^ ((who + 1) * 0x8CB92BA72F3D8DD7ull)};
    test_rnd(&r);
    return r;
}

static tr_deadline after_us(int64_t us)
{
    return tr_after_ns(us * 1000);
}

/* Busy-wait: an actor that computes keeps its worker. */
static void spin_us(uint32_t us)
{
    int64_t end = tr_now() + (int64_t)us * 1000;
    while (tr_now() < end)
        ;
}

/* ---- errors seen off the main thread ----------------------------------- */

static atomic_int errors, first_error_line, first_error_rc;

static void actor_error(int line, int rc)
{
    if (atomic_fetch_add(&errors, 1) == 0) {
        atomic_store(&first_error_line, line);
        atomic_store(&first_error_rc, rc);
    }
}

#define EXPECT_OK(expr)                                                       \
    do {                                                                      \
        int rc_ = (expr);                                                     \
        if (rc_ != 0)                                                         \
            actor_error(__LINE__, rc_);                                       \
    } while (0)

static void reset_errors(void)
{
    atomic_store(&errors, 0);
    atomic_store(&first_error_line, 0);
    atomic_store(&first_error_rc, 0);
}

static void assert_no_actor_errors(void)
{
    int n = atomic_load(&errors);
    if (n)
        fail_msg("%d errors off the main thread; the first at line %d: %s (seed=%llu)",
                 n, atomic_load(&first_error_line),
                 tr_err_name(atomic_load(&first_error_rc)), (unsigned long long)seed);
}

/* ---- reports: actors tell the main thread they are done ---------------- */

static tr_mailbox *report_mb;
static tr_ref report_ref;

static void report(tr_system *sys, uint64_t tag, uint64_t a, uint64_t b)
{
    tr_msg m = tr_msg_words(tag, a, b);
    EXPECT_OK(tr_send(sys, report_ref, &m, TR_FOREVER));
}

static void open_reports(tr_system *sys)
{
    reset_errors();
    assert_int_equal(tr_mailbox_new(sys, 16, &report_mb), 0);
    report_ref = tr_mailbox_ref(report_mb);
}

static double ms_since(int64_t t0)
{
    return (double)(tr_now() - t0) / 1e6;
}

/* Report tags shared by the scenarios. */
enum { REP_PRODUCER = 100, REP_CONSUMER, REP_SENDER, REP_RECEIVER, REP_SERVER,
       REP_PARENT, REP_TOKEN };

/* ---- background chatter: tokens circling a ring of actors -------------- */

/*
 * Eight actors (handler and loop in turn, mailboxes of one) pass four
 * tokens round until chatter_stop is set; then each token goes home to
 * the main thread with its hop count.  The members themselves are left
 * for tr_system_free, idle or parked in tr_recv.
 */
#define CHATTER_N 8
#define CHATTER_TOKENS 4
#define TAG_TOKEN 50

typedef struct chatter {
    unsigned id;
    test_rng jitter;
} chatter;

static chatter chatters[CHATTER_N];
static tr_ref chatter_ref[CHATTER_N];
static atomic_bool chatter_stop;

static void chatter_pass(tr_system *sys, chatter *c, const tr_msg *m)
{
    if (m->tag != TAG_TOKEN) {
        actor_error(__LINE__, TR_EINVAL);
        return;
    }
    if (atomic_load(&chatter_stop)) {
        report(sys, REP_TOKEN, m->a, m->b);
        return;
    }
    if (below(&c->jitter, 16) == 0)
        EXPECT_OK(tr_yield());
    tr_msg t = tr_msg_words(TAG_TOKEN, m->a, m->b + 1);
    EXPECT_OK(tr_send(sys, chatter_ref[(c->id + 1) % CHATTER_N], &t, TR_FOREVER));
}

static int chatter_handler(tr_actor *self, tr_msg *m)
{
    chatter_pass(tr_actor_system(self), tr_actor_state(self), m);
    return 0;
}

static int chatter_loop(tr_actor *self)
{
    chatter *c = tr_actor_state(self);
    for (;;) {
        tr_msg m;
        int rc = tr_recv(&m, after_us(500 + below(&c->jitter, 2000)));
        if (rc == TR_ETIMEDOUT)
            continue;
        if (rc) {
            actor_error(__LINE__, rc);
            return rc;
        }
        chatter_pass(tr_actor_system(self), c, &m);
    }
}

static void chatter_start(tr_system *sys, uint64_t scenario)
{
    atomic_store(&chatter_stop, false);
    for (unsigned i = 0; i < CHATTER_N; i++) {
        chatters[i] = (chatter){.id = i, .jitter = rng_for(scenario, 1000 + i)};
        tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
        o.mailbox_capacity = 1;
        o.state = &chatters[i];
        o.name = "chatter";
        if (i % 2)
            assert_int_equal(tr_spawn_loop(sys, chatter_loop, &o, &chatter_ref[i]), 0);
        else
            assert_int_equal(tr_spawn(sys, chatter_handler, &o, &chatter_ref[i]), 0);
    }
    for (unsigned t = 0; t < CHATTER_TOKENS; t++) {
        tr_msg m = tr_msg_words(TAG_TOKEN, t, 0);
        assert_int_equal(tr_send(sys, chatter_ref[2 * t], &m, tr_after_ms(TEST_DEADLINE_MS)), 0);
    }
}

/* Call the tokens home; every one must come back once.  Returns the hops. */
static uint64_t chatter_finish(void)
{
    bool home[CHATTER_TOKENS] = {0};
    uint64_t hops = 0;
    atomic_store(&chatter_stop, true);
    for (unsigned i = 0; i < CHATTER_TOKENS; i++) {
        tr_msg m = test_recv(report_mb);
        assert_int_equal(m.tag, REP_TOKEN);
        assert_true(m.a < CHATTER_TOKENS);
        assert_false(home[m.a]);
        home[m.a] = true;
        hops += m.b;
    }
    return hops;
}

/* ==== 1. many producers, few consumers, tiny mailboxes =================== */

#define S1_PRODUCERS 16
#define S1_CONSUMERS 6
#define S1_MESSAGES (10000 / TEST_SCALE) /* per producer */
enum { S1_DATA = 1, S1_FIN };

typedef struct s1_producer {
    unsigned id;
    test_rng plan, jitter;
    uint64_t sent[S1_CONSUMERS]; /* successful sends, also the next seq */
    uint64_t send_timeouts, try_fulls, yields;
} s1_producer;

typedef struct s1_consumer {
    unsigned id;
    test_rng jitter;
    uint64_t next[S1_PRODUCERS]; /* the seq expected next from each */
    uint64_t recv[S1_PRODUCERS];
    unsigned fins;
    uint64_t order_errors, count_errors, bad, recv_timeouts;
} s1_consumer;

static s1_producer s1_prod[S1_PRODUCERS];
static s1_consumer s1_cons[S1_CONSUMERS];
static tr_ref s1_cons_ref[S1_CONSUMERS];

/* Sometimes compute for up to 20 µs, sometimes let others run. */
static void dawdle(test_rng *r, uint64_t *yields)
{
    uint32_t x = below(r, 64);
    if (x < 8)
        spin_us(below(r, 21));
    else if (x < 12) {
        EXPECT_OK(tr_yield());
        (*yields)++;
    }
}

/*
 * Send one message in one of three ways: wait as long as it takes, wait
 * a few microseconds and retry on TR_ETIMEDOUT, or poll with tr_try_send
 * and retry on TR_EFULL.  A failed attempt yields, so that on one worker
 * the receiver gets to make room.  Polling gives up after 32 tries and
 * waits instead: with more workers than CPUs a yielded poller is picked
 * up again at once, and unbounded polling made the run time erratic.
 * Returns 0 or the unexpected code.
 */
static int send_some_way(tr_system *sys, tr_ref to, const tr_msg *m, unsigned way,
                         test_rng *r, uint64_t *timeouts, uint64_t *fulls)
{
    int rc;
    switch (way) {
    case 0:
    case 1:
        return tr_send(sys, to, m, TR_FOREVER);
    case 2:
        while ((rc = tr_send(sys, to, m, after_us(1 + below(r, 50)))) == TR_ETIMEDOUT) {
            (*timeouts)++;
            if ((rc = tr_yield()) != 0)
                return rc;
        }
        return rc;
    default:
        for (unsigned polls = 0; polls < 32; polls++) {
            if ((rc = tr_try_send(sys, to, m)) != TR_EFULL)
                return rc;
            (*fulls)++;
            if ((rc = tr_yield()) != 0)
                return rc;
        }
        return tr_send(sys, to, m, TR_FOREVER);
    }
}

static int s1_producer_body(tr_actor *self)
{
    s1_producer *p = tr_actor_state(self);
    tr_system *sys = tr_actor_system(self);
    for (unsigned i = 0; i < S1_MESSAGES; i++) {
        unsigned c = below(&p->plan, S1_CONSUMERS);
        unsigned way = below(&p->plan, 4);
        dawdle(&p->jitter, &p->yields);
        tr_msg m = tr_msg_words(S1_DATA, p->id, p->sent[c]);
        int rc = send_some_way(sys, s1_cons_ref[c], &m, way, &p->jitter,
                               &p->send_timeouts, &p->try_fulls);
        if (rc) {
            actor_error(__LINE__, rc);
            break;
        }
        p->sent[c]++;
    }
    /* FIN carries how many went to that consumer: it checks on arrival. */
    for (unsigned c = 0; c < S1_CONSUMERS; c++) {
        tr_msg fin = tr_msg_words(S1_FIN, p->id, p->sent[c]);
        EXPECT_OK(tr_send(sys, s1_cons_ref[c], &fin, TR_FOREVER));
    }
    report(sys, REP_PRODUCER, p->id, 0);
    return 0;
}

static void s1_take(s1_consumer *c, const tr_msg *m)
{
    if (m->a >= S1_PRODUCERS) {
        c->bad++;
        return;
    }
    unsigned p = (unsigned)m->a;
    if (m->tag == S1_DATA) {
        if (m->b != c->next[p])
            c->order_errors++;
        c->next[p] = m->b + 1;
        c->recv[p]++;
    } else if (m->tag == S1_FIN) {
        if (m->b != c->recv[p])
            c->count_errors++;
        c->fins++;
    } else {
        c->bad++;
    }
}

static int s1_consumer_handler(tr_actor *self, tr_msg *m)
{
    s1_consumer *c = tr_actor_state(self);
    s1_take(c, m);
    if (below(&c->jitter, 64) == 0)
        EXPECT_OK(tr_yield()); /* a handler may block too */
    if (c->fins < S1_PRODUCERS)
        return 0;
    report(tr_actor_system(self), REP_CONSUMER, c->id, 0);
    return TR_STOP;
}

static int s1_consumer_loop(tr_actor *self)
{
    s1_consumer *c = tr_actor_state(self);
    /* Gives up after TEST_DEADLINE_MS without a message, not after that
     * long in all: a sanitizer build on a loaded machine takes longer
     * than that for the whole run on one worker. */
    int64_t give_up = tr_now() + TEST_DEADLINE_MS * 1000000LL;
    while (c->fins < S1_PRODUCERS) {
        tr_msg m;
        int rc = tr_recv(&m, after_us(5 + below(&c->jitter, 200)));
        if (rc == TR_ETIMEDOUT) {
            c->recv_timeouts++;
            if (tr_now() > give_up) {
                actor_error(__LINE__, rc);
                break;
            }
            continue;
        }
        if (rc) {
            actor_error(__LINE__, rc);
            break;
        }
        s1_take(c, &m);
        give_up = tr_now() + TEST_DEADLINE_MS * 1000000LL;
    }
    report(tr_actor_system(self), REP_CONSUMER, c->id, 0);
    return 0;
}

static void s1_run(unsigned workers)
{
    static const uint32_t caps[] = {1, 3, 7};
    int64_t t0 = tr_now();
    tr_system *sys = test_system(workers);
    open_reports(sys);
    memset(s1_prod, 0, sizeof s1_prod);
    memset(s1_cons, 0, sizeof s1_cons);

    /* Consumers first: producers read s1_cons_ref from their start. */
    for (unsigned i = 0; i < S1_CONSUMERS; i++) {
        s1_cons[i].id = i;
        s1_cons[i].jitter = rng_for(1, 100 + i);
        tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
        o.mailbox_capacity = caps[i % 3];
        o.state = &s1_cons[i];
        if (i % 2)
            assert_int_equal(tr_spawn_loop(sys, s1_consumer_loop, &o, &s1_cons_ref[i]), 0);
        else
            assert_int_equal(tr_spawn(sys, s1_consumer_handler, &o, &s1_cons_ref[i]), 0);
    }
    for (unsigned i = 0; i < S1_PRODUCERS; i++) {
        s1_prod[i].id = i;
        s1_prod[i].plan = rng_for(1, i);
        s1_prod[i].jitter = rng_for(11, i);
        tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
        o.state = &s1_prod[i];
        assert_int_equal(tr_spawn_loop(sys, s1_producer_body, &o, NULL), 0);
    }

    /* Each report is the happens-before for reading its sender's state. */
    bool prod_done[S1_PRODUCERS] = {0}, cons_done[S1_CONSUMERS] = {0};
    for (unsigned n = 0; n < S1_PRODUCERS + S1_CONSUMERS; n++) {
        tr_msg m = test_recv(report_mb);
        if (m.tag == REP_PRODUCER) {
            assert_true(m.a < S1_PRODUCERS && !prod_done[m.a]);
            prod_done[m.a] = true;
        } else {
            assert_int_equal(m.tag, REP_CONSUMER);
            assert_true(m.a < S1_CONSUMERS && !cons_done[m.a]);
            cons_done[m.a] = true;
        }
    }
    tr_mailbox_free(report_mb);
    tr_system_free(sys);
    assert_no_actor_errors();

    uint64_t sent = 0, received = 0, timeouts = 0, fulls = 0, yields = 0, recv_to = 0;
    for (unsigned c = 0; c < S1_CONSUMERS; c++) {
        const s1_consumer *k = &s1_cons[c];
        assert_int_equal(k->order_errors, 0);
        assert_int_equal(k->count_errors, 0);
        assert_int_equal(k->bad, 0);
        assert_int_equal(k->fins, S1_PRODUCERS);
        recv_to += k->recv_timeouts;
        for (unsigned p = 0; p < S1_PRODUCERS; p++) {
            assert_int_equal(s1_prod[p].sent[c], k->recv[p]);
            received += k->recv[p];
        }
    }
    for (unsigned p = 0; p < S1_PRODUCERS; p++) {
        for (unsigned c = 0; c < S1_CONSUMERS; c++)
            sent += s1_prod[p].sent[c];
        timeouts += s1_prod[p].send_timeouts;
        fulls += s1_prod[p].try_fulls;
        yields += s1_prod[p].yields;
    }
    assert_int_equal(sent, (uint64_t)S1_PRODUCERS * S1_MESSAGES);
    assert_int_equal(sent, received);
    printf("   %u workers: %llu messages in order; %llu send timeouts, %llu full "
           "polls, %llu yields, %llu recv timeouts; %.0f ms\n",
           workers, (unsigned long long)sent, (unsigned long long)timeouts,
           (unsigned long long)fulls, (unsigned long long)yields,
           (unsigned long long)recv_to, ms_since(t0));
}

static void test_producers_to_tiny_mailboxes_keep_pair_order_on_1_worker(void **state)
{
    (void)state;
    s1_run(1);
}

static void test_producers_to_tiny_mailboxes_keep_pair_order_on_2_workers(void **state)
{
    (void)state;
    s1_run(2);
}

static void test_producers_to_tiny_mailboxes_keep_pair_order_on_4_workers(void **state)
{
    (void)state;
    s1_run(4);
}

/* ==== 2. payload ownership while receivers exit early ==================== */

/*
 * Receivers have roles: EARLY ones exit after a random number of
 * messages (or on STOP if they never get that many), STOPPED ones run
 * until the main thread stops them, and IMMORTAL ones are still there at
 * shutdown: a handler with a backlog, and a loop actor that parks for
 * good on a full thread mailbox (the "plug") after a few messages.
 */
#define S2_SENDERS 8
#define S2_RECEIVERS 8
#define S2_MESSAGES (6000 / TEST_SCALE) /* per sender */
#define S2_PAYLOADS (S2_SENDERS * S2_MESSAGES)
#define S2_KEEP 4
enum { S2_DATA = 1, S2_STOP, S2_PLUG };
enum { EARLY, STOPPED, IMMORTAL };

typedef struct payload {
    uint32_t id, len;
    uint64_t check;
    uint8_t bytes[];
} payload;

static atomic_uint_fast64_t s2_allocated, s2_freed, s2_bad_frees;
static atomic_uchar *s2_free_count; /* per payload id */

static uint64_t payload_check(uint32_t id, uint32_t len)
{
    return (id * 0x9E3779B97F4A7C15ull) ^ len;
}

static payload *payload_new(uint32_t id, uint32_t len)
{
    payload *p = malloc(sizeof *p + len);
    if (!p)
        return NULL;
    p->id = id;
    p->len = len;
    p->check = payload_check(id, len);
    for (uint32_t i = 0; i < len; i++)
        p->bytes[i] = (uint8_t)(id * 31 + i);
    atomic_fetch_add(&s2_allocated, 1);
    return p;
}

static bool payload_intact(const payload *p, size_t size)
{
    if (size != sizeof *p + p->len || p->check != payload_check(p->id, p->len) ||
        p->id >= S2_PAYLOADS)
        return false;
    for (uint32_t i = 0; i < p->len; i++)
        if (p->bytes[i] != (uint8_t)(p->id * 31 + i))
            return false;
    return true;
}

/* The destructor: counts, and counts separately anything freed twice. */
static void payload_free(void *ptr, size_t size)
{
    payload *p = ptr;
    if (!payload_intact(p, size))
        atomic_fetch_add(&s2_bad_frees, 1);
    else if (atomic_fetch_add(&s2_free_count[p->id], 1) != 0)
        atomic_fetch_add(&s2_bad_frees, 1);
    p->check = 0; /* a second free of the same buffer now looks corrupt */
    free(p);
    atomic_fetch_add(&s2_freed, 1);
}

typedef struct s2_sender {
    unsigned id;
    test_rng plan, jitter;
    uint64_t sent, enoactor, timeouts, gave_up, yields;
} s2_sender;

typedef struct s2_receiver {
    unsigned id, role;
    test_rng plan, jitter;
    uint64_t limit; /* EARLY: exit after this many; IMMORTAL loop: plug */
    uint64_t got, released, corrupt;
    tr_msg kept[S2_KEEP]; /* buffers kept a while, freed later */
    unsigned nkept;
} s2_receiver;

static s2_sender s2_send[S2_SENDERS];
static s2_receiver s2_recv[S2_RECEIVERS];
static tr_ref s2_recv_ref[S2_RECEIVERS];
static tr_ref s2_plug_ref;
static atomic_uint_fast64_t s2_released_by_receivers;

static int s2_sender_body(tr_actor *self)
{
    s2_sender *s = tr_actor_state(self);
    tr_system *sys = tr_actor_system(self);
    for (uint32_t i = 0; i < S2_MESSAGES; i++) {
        unsigned r = below(&s->plan, S2_RECEIVERS);
        uint32_t len = 1 + below(&s->plan, 256);
        payload *p = payload_new(s->id * S2_MESSAGES + i, len);
        if (!p) {
            actor_error(__LINE__, TR_ENOMEM);
            break;
        }
        tr_msg m = tr_msg_buf(S2_DATA, p, sizeof *p + len, payload_free);
        /* Never wait for good on an immortal: it may have stopped taking. */
        bool forever = s2_recv[r].role != IMMORTAL && below(&s->plan, 2);
        for (unsigned tries = 0;; tries++) {
            int rc = tr_send(sys, s2_recv_ref[r], &m,
                             forever ? TR_FOREVER : after_us(1 + below(&s->jitter, 100)));
            if (rc == 0) {
                s->sent++; /* the receiver owns it now */
                break;
            }
            if (rc == TR_ETIMEDOUT) {
                s->timeouts++;
                if (tries < 3)
                    continue;
                s->gave_up++;
            } else if (rc == TR_ENOACTOR) {
                s->enoactor++;
            } else {
                actor_error(__LINE__, rc);
            }
            tr_msg_release(&m); /* a failed send leaves it ours */
            break;
        }
        dawdle(&s->jitter, &s->yields);
    }
    report(sys, REP_SENDER, s->id, 0);
    return 0;
}

static void s2_release(tr_msg *m)
{
    tr_msg_release(m);
    atomic_fetch_add(&s2_released_by_receivers, 1);
}

static void s2_release_kept(s2_receiver *r)
{
    while (r->nkept)
        s2_release(&r->kept[--r->nkept]);
}

/* Take one message; true if the receiver should now exit. */
static bool s2_take(s2_receiver *r, tr_msg *m)
{
    if (m->tag == S2_STOP)
        return true;
    if (m->tag != S2_DATA || !payload_intact(m->ptr, m->len)) {
        r->corrupt++;
        return false; /* not ours to free if it is not a payload */
    }
    r->got++;
    /* Some buffers are kept a while, as a receiver that stores them would. */
    if (r->role != IMMORTAL && below(&r->plan, 4) == 0) {
        if (r->nkept == S2_KEEP)
            s2_release_kept(r);
        r->kept[r->nkept++] = *m;
    } else {
        s2_release(m);
    }
    if (r->role == IMMORTAL)
        spin_us(below(&r->jitter, 20)); /* slow, so a backlog builds */
    return r->role == EARLY && r->got >= r->limit;
}

static int s2_receiver_handler(tr_actor *self, tr_msg *m)
{
    s2_receiver *r = tr_actor_state(self);
    if (!s2_take(r, m))
        return 0;
    s2_release_kept(r);
    report(tr_actor_system(self), REP_RECEIVER, r->id, 0);
    return TR_STOP; /* anything still queued is released by the runtime */
}

static int s2_receiver_loop(tr_actor *self)
{
    s2_receiver *r = tr_actor_state(self);
    tr_system *sys = tr_actor_system(self);
    for (;;) {
        if (r->role == IMMORTAL && r->got >= r->limit) {
            /* The plug holds one message and is never read: the second
             * send parks this actor until tr_system_free. */
            tr_msg plug = tr_msg_words(S2_PLUG, r->id, 0);
            EXPECT_OK(tr_send(sys, s2_plug_ref, &plug, TR_FOREVER));
            EXPECT_OK(tr_send(sys, s2_plug_ref, &plug, TR_FOREVER));
            actor_error(__LINE__, TR_EINVAL); /* must never get here */
            return 0;
        }
        tr_msg m;
        int rc = tr_recv(&m, after_us(10 + below(&r->jitter, 500)));
        if (rc == TR_ETIMEDOUT)
            continue;
        if (rc) {
            actor_error(__LINE__, rc);
            return rc;
        }
        if (s2_take(r, &m))
            break;
    }
    s2_release_kept(r);
    report(sys, REP_RECEIVER, r->id, 0);
    return 0;
}

static void test_payloads_are_freed_once_when_receivers_exit_early(void **state)
{
    (void)state;
    static const uint32_t caps[] = {1, 3, 7};
    static const unsigned roles[S2_RECEIVERS] = {EARLY, EARLY, EARLY, EARLY,
                                                  STOPPED, STOPPED, IMMORTAL, IMMORTAL};
    int64_t t0 = tr_now();
    atomic_store(&s2_allocated, 0);
    atomic_store(&s2_freed, 0);
    atomic_store(&s2_bad_frees, 0);
    atomic_store(&s2_released_by_receivers, 0);
    s2_free_count = calloc(S2_PAYLOADS, sizeof *s2_free_count);
    assert_non_null(s2_free_count);
    memset(s2_send, 0, sizeof s2_send);
    memset(s2_recv, 0, sizeof s2_recv);

    tr_system *sys = test_system(3);
    open_reports(sys);
    tr_mailbox *plug;
    assert_int_equal(tr_mailbox_new(sys, 1, &plug), 0);
    s2_plug_ref = tr_mailbox_ref(plug);

    const uint64_t fair_share = S2_PAYLOADS / S2_RECEIVERS;
    for (unsigned i = 0; i < S2_RECEIVERS; i++) {
        s2_receiver *r = &s2_recv[i];
        r->id = i;
        r->role = roles[i];
        r->plan = rng_for(2, 100 + i);
        r->jitter = rng_for(12, 100 + i);
        r->limit = r->role == EARLY      ? 1 + below(&r->plan, fair_share / 2)
                   : r->role == IMMORTAL ? 1 + below(&r->plan, 50)
                                         : UINT64_MAX;
        tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
        o.mailbox_capacity = caps[i % 3];
        o.state = r;
        if (i % 2)
            assert_int_equal(tr_spawn_loop(sys, s2_receiver_loop, &o, &s2_recv_ref[i]), 0);
        else
            assert_int_equal(tr_spawn(sys, s2_receiver_handler, &o, &s2_recv_ref[i]), 0);
    }
    for (unsigned i = 0; i < S2_SENDERS; i++) {
        s2_send[i].id = i;
        s2_send[i].plan = rng_for(2, i);
        s2_send[i].jitter = rng_for(12, i);
        tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
        o.state = &s2_send[i];
        assert_int_equal(tr_spawn_loop(sys, s2_sender_body, &o, NULL), 0);
    }

    /* Senders finish; EARLY receivers may report at any time meanwhile. */
    unsigned senders = 0, receivers = 0;
    bool recv_done[S2_RECEIVERS] = {0};
    while (senders < S2_SENDERS) {
        tr_msg m = test_recv(report_mb);
        if (m.tag == REP_SENDER) {
            senders++;
            continue;
        }
        assert_int_equal(m.tag, REP_RECEIVER);
        assert_true(m.a < S2_RECEIVERS && !recv_done[m.a] && roles[m.a] == EARLY);
        recv_done[m.a] = true;
        receivers++;
    }
    /* Stop every EARLY and STOPPED receiver; an exited one is stale. */
    for (unsigned i = 0; i < S2_RECEIVERS; i++) {
        if (roles[i] == IMMORTAL)
            continue;
        tr_msg stop = tr_msg_words(S2_STOP, 0, 0);
        int rc = tr_send(sys, s2_recv_ref[i], &stop, tr_after_ms(TEST_DEADLINE_MS));
        /* An EARLY one may have exited without our having its report yet. */
        assert_true(rc == 0 || (rc == TR_ENOACTOR && roles[i] == EARLY));
    }
    while (receivers < S2_RECEIVERS - 2) {
        tr_msg m = test_recv(report_mb);
        assert_int_equal(m.tag, REP_RECEIVER);
        assert_true(m.a < S2_RECEIVERS && !recv_done[m.a] && roles[m.a] != IMMORTAL);
        recv_done[m.a] = true;
        receivers++;
    }

    /* Immortals are still there: shutdown releases their backlogs, and
     * forgets the one parked on the plug before the plug is freed. */
    uint64_t freed_by_others_before_shutdown =
        atomic_load(&s2_freed) - atomic_load(&s2_released_by_receivers);
    assert_int_equal(tr_system_shutdown(sys, tr_after_ms(TEST_DEADLINE_MS)), 0);
    tr_mailbox_free(plug);
    tr_mailbox_free(report_mb);
    tr_system_free(sys);
    assert_no_actor_errors();

    uint64_t sent = 0, enoactor = 0, timeouts = 0, gave_up = 0, corrupt = 0;
    for (unsigned i = 0; i < S2_SENDERS; i++) {
        sent += s2_send[i].sent;
        enoactor += s2_send[i].enoactor;
        timeouts += s2_send[i].timeouts;
        gave_up += s2_send[i].gave_up;
    }
    for (unsigned i = 0; i < S2_RECEIVERS; i++)
        corrupt += s2_recv[i].corrupt;
    uint64_t allocated = atomic_load(&s2_allocated), freed = atomic_load(&s2_freed);
    uint64_t by_receivers = atomic_load(&s2_released_by_receivers);
    assert_int_equal(corrupt, 0);
    assert_int_equal(atomic_load(&s2_bad_frees), 0);
    assert_int_equal(allocated, S2_PAYLOADS);
    assert_int_equal(sent + enoactor + gave_up, allocated);
    assert_int_equal(freed, allocated);
    for (unsigned id = 0; id < S2_PAYLOADS; id++)
        assert_int_equal(atomic_load(&s2_free_count[id]), 1);
    assert_true(enoactor > 0); /* early exits were really exercised */
    printf("   %llu payloads: %llu freed by receivers, %llu by senders "
           "(%llu TR_ENOACTOR, %llu gave up after timeouts), %llu by the runtime "
           "(%llu of them at shutdown); %llu send timeouts; %.0f ms\n",
           (unsigned long long)allocated, (unsigned long long)by_receivers,
           (unsigned long long)(enoactor + gave_up), (unsigned long long)enoactor,
           (unsigned long long)gave_up,
           (unsigned long long)(freed - by_receivers - enoactor - gave_up),
           (unsigned long long)(freed - by_receivers - freed_by_others_before_shutdown),
           (unsigned long long)timeouts, ms_since(t0));
    free(s2_free_count);
    s2_free_count = NULL;
}

/* ==== 3. foreign threads: request/reply with deadlines =================== */

/*
 * Three threads each keep up to four requests in flight, to a handler
 * server that replies itself and to a loop server that forwards to a
 * helper which replies.  Their mailboxes hold three, so repliers
 * sometimes park on a thread's mailbox.  A thread never waits for good:
 * sends and receives have short deadlines, so no cycle can block.
 */
#define S3_THREADS 3
#define S3_WINDOW 4
#define S3_REQUESTS (12000 / TEST_SCALE) /* per thread */
enum { S3_REQ = 1, S3_FWD, S3_REPLY, S3_STOP };

typedef struct s3_thread {
    unsigned id;
    test_rng plan, jitter;
    pthread_t thread;
    tr_system *sys;
    uint64_t sent, replies, send_timeouts, recv_timeouts;
    uint64_t wrong_reply, unknown, unfinished;
    int first_rc;
} s3_thread;

typedef struct s3_server {
    unsigned id;
    uint64_t handled, wrong_from;
} s3_server;

static s3_thread s3_threads[S3_THREADS];
static s3_server s3_servers[3]; /* handler server, loop server, helper */
static tr_ref s3_server_ref[3];
static tr_ref s3_thread_ref[S3_THREADS]; /* written by each thread */

static uint64_t s3_answer(uint64_t req, uint64_t operand)
{
    return operand * 0x2545F4914F6CDD1Dull + req;
}

/* The thread's tag carries its index, so that repliers can check `from`. */
static unsigned s3_who(uint64_t tag)
{
    return (unsigned)(tag >> 8);
}

static bool s3_from_ok(const tr_msg *m)
{
    unsigned t = s3_who(m->tag);
    return t < S3_THREADS && m->from == s3_thread_ref[t];
}

static int s3_reply(tr_system *sys, tr_ref to, const tr_msg *req)
{
    tr_msg r = tr_msg_words(S3_REPLY, req->a, s3_answer(req->a, req->b));
    return tr_send(sys, to, &r, TR_FOREVER);
}

static int s3_stop_server(tr_actor *self, s3_server *s)
{
    report(tr_actor_system(self), REP_SERVER, s->id, s->handled);
    return TR_STOP;
}

static int s3_handler_server(tr_actor *self, tr_msg *m)
{
    s3_server *s = tr_actor_state(self);
    if ((m->tag & 0xff) == S3_STOP)
        return s3_stop_server(self, s);
    if ((m->tag & 0xff) != S3_REQ || !s3_from_ok(m))
        s->wrong_from++;
    s->handled++;
    EXPECT_OK(s3_reply(tr_actor_system(self), m->from, m));
    return 0;
}

static int s3_helper(tr_actor *self, tr_msg *m)
{
    s3_server *s = tr_actor_state(self);
    if ((m->tag & 0xff) == S3_STOP)
        return s3_stop_server(self, s);
    unsigned t = s3_who(m->tag);
    if ((m->tag & 0xff) != S3_FWD || t >= S3_THREADS || m->from != s3_server_ref[1]) {
        s->wrong_from++;
        return 0;
    }
    s->handled++;
    EXPECT_OK(s3_reply(tr_actor_system(self), s3_thread_ref[t], m));
    return 0;
}

static int s3_loop_server(tr_actor *self)
{
    s3_server *s = tr_actor_state(self);
    tr_system *sys = tr_actor_system(self);
    test_rng r = rng_for(3, 200);
    for (;;) {
        tr_msg m;
        int rc = tr_recv(&m, after_us(20 + below(&r, 1000)));
        if (rc == TR_ETIMEDOUT)
            continue;
        if (rc) {
            actor_error(__LINE__, rc);
            return rc;
        }
        if ((m.tag & 0xff) == S3_STOP)
            break;
        if ((m.tag & 0xff) != S3_REQ || !s3_from_ok(&m))
            s->wrong_from++;
        s->handled++;
        tr_msg fwd = m;
        fwd.tag = (m.tag & ~(uint64_t)0xff) | S3_FWD;
        EXPECT_OK(tr_send(sys, s3_server_ref[2], &fwd, TR_FOREVER));
    }
    report(sys, REP_SERVER, s->id, s->handled);
    return 0;
}

typedef struct s3_pending {
    bool busy;
    uint64_t req, operand;
    tr_ref replier;
} s3_pending;

static void *s3_thread_main(void *arg)
{
    s3_thread *t = arg;
    tr_mailbox *mb;
    int rc = tr_mailbox_new(t->sys, 3, &mb);
    if (rc) {
        t->first_rc = rc;
        return NULL;
    }
    /* Published to the repliers by the requests themselves. */
    s3_thread_ref[t->id] = tr_mailbox_ref(mb);
    s3_pending win[S3_WINDOW] = {0};
    unsigned outstanding = 0;
    uint64_t next = 0;
    /* Without a reply for that long (not: that long in all) it gives up. */
    int64_t give_up = tr_now() + TEST_DEADLINE_MS * 1000000LL;

    while (t->replies < S3_REQUESTS) {
        if (tr_now() > give_up) {
            t->first_rc = TR_ETIMEDOUT;
            break;
        }
        bool must_wait = outstanding == S3_WINDOW || next == S3_REQUESTS;
        if (!must_wait) {
            unsigned slot = 0;
            while (win[slot].busy)
                slot++;
            unsigned server = below(&t->plan, 2);
            uint64_t operand = test_rnd(&t->plan);
            tr_msg m = tr_msg_words(S3_REQ | (uint64_t)t->id << 8, next, operand);
            rc = tr_send(t->sys, s3_server_ref[server], &m, after_us(1 + below(&t->jitter, 50)));
            if (rc == 0) {
                win[slot] = (s3_pending){true, next, operand,
                                         s3_server_ref[server ? 2 : 0]};
                next++;
                outstanding++;
                t->sent++;
            } else if (rc == TR_ETIMEDOUT) {
                t->send_timeouts++;
                must_wait = outstanding > 0; /* drain before trying again */
            } else {
                t->first_rc = rc;
                break;
            }
        }
        tr_msg r;
        rc = tr_mailbox_recv(mb, &r, must_wait ? after_us(20 + below(&t->jitter, 2000)) : TR_NOW);
        if (rc == TR_ETIMEDOUT) {
            t->recv_timeouts += must_wait;
            continue;
        }
        if (rc) {
            t->first_rc = rc;
            break;
        }
        unsigned i = 0;
        while (i < S3_WINDOW && !(win[i].busy && win[i].req == r.a))
            i++;
        if (i == S3_WINDOW) {
            t->unknown++;
            continue;
        }
        if (r.tag != S3_REPLY || r.b != s3_answer(win[i].req, win[i].operand) ||
            r.from != win[i].replier)
            t->wrong_reply++;
        win[i].busy = false;
        outstanding--;
        t->replies++;
        give_up = tr_now() + TEST_DEADLINE_MS * 1000000LL;
    }
    t->unfinished = outstanding;
    /* Nothing is owed to us any more, so no replier can find it gone. */
    tr_mailbox_free(mb);
    return NULL;
}

static void test_foreign_threads_get_every_reply_while_actors_chatter(void **state)
{
    (void)state;
    int64_t t0 = tr_now();
    tr_system *sys = test_system(2);
    open_reports(sys);
    memset(s3_threads, 0, sizeof s3_threads);
    memset(s3_servers, 0, sizeof s3_servers);
    memset(s3_thread_ref, 0, sizeof s3_thread_ref);
    chatter_start(sys, 3);

    for (unsigned i = 0; i < 3; i++)
        s3_servers[i].id = i;
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.mailbox_capacity = 3;
    o.state = &s3_servers[0];
    assert_int_equal(tr_spawn(sys, s3_handler_server, &o, &s3_server_ref[0]), 0);
    /* The helper before the loop server, which forwards to it. */
    o.mailbox_capacity = 7;
    o.state = &s3_servers[2];
    assert_int_equal(tr_spawn(sys, s3_helper, &o, &s3_server_ref[2]), 0);
    o.mailbox_capacity = 1;
    o.state = &s3_servers[1];
    assert_int_equal(tr_spawn_loop(sys, s3_loop_server, &o, &s3_server_ref[1]), 0);

    for (unsigned i = 0; i < S3_THREADS; i++) {
        s3_threads[i].id = i;
        s3_threads[i].plan = rng_for(3, i);
        s3_threads[i].jitter = rng_for(13, i);
        s3_threads[i].sys = sys;
        assert_int_equal(pthread_create(&s3_threads[i].thread, NULL, s3_thread_main,
                                        &s3_threads[i]), 0);
    }
    uint64_t replies = 0, send_to = 0, recv_to = 0;
    for (unsigned i = 0; i < S3_THREADS; i++) {
        s3_thread *t = &s3_threads[i];
        assert_int_equal(pthread_join(t->thread, NULL), 0);
        if (t->first_rc)
            fail_msg("thread %u: %s (seed=%llu)", i, tr_err_name(t->first_rc),
                     (unsigned long long)seed);
        assert_int_equal(t->sent, S3_REQUESTS);
        assert_int_equal(t->replies, S3_REQUESTS);
        assert_int_equal(t->unfinished, 0);
        assert_int_equal(t->wrong_reply, 0);
        assert_int_equal(t->unknown, 0);
        replies += t->replies;
        send_to += t->send_timeouts;
        recv_to += t->recv_timeouts;
    }

    /* Stop the servers (the loop server's mailbox may be full a moment). */
    for (unsigned i = 0; i < 3; i++) {
        tr_msg stop = tr_msg_words(S3_STOP, 0, 0);
        assert_int_equal(tr_send(sys, s3_server_ref[i], &stop, tr_after_ms(TEST_DEADLINE_MS)), 0);
    }
    uint64_t handled[3] = {0};
    bool stopped[3] = {0};
    for (unsigned i = 0; i < 3; i++) {
        tr_msg m = test_recv(report_mb);
        assert_int_equal(m.tag, REP_SERVER);
        assert_true(m.a < 3 && !stopped[m.a]);
        stopped[m.a] = true;
        handled[m.a] = m.b;
    }
    uint64_t hops = chatter_finish();
    tr_mailbox_free(report_mb);
    tr_system_free(sys);
    assert_no_actor_errors();
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(s3_servers[i].wrong_from, 0);
    assert_int_equal(handled[0] + handled[1], replies);
    assert_int_equal(handled[1], handled[2]);
    assert_true(hops > 0);
    printf("   %llu replies (%llu direct, %llu forwarded); %llu send timeouts, "
           "%llu recv timeouts; %llu chatter hops; %.0f ms\n",
           (unsigned long long)replies, (unsigned long long)handled[0],
           (unsigned long long)handled[2], (unsigned long long)send_to,
           (unsigned long long)recv_to, (unsigned long long)hops, ms_since(t0));
}

/* ==== 4. spawn and exit churn ============================================= */

/*
 * Parents spawn a wave of children (handlers, loops on shared stacks,
 * loops on private stacks), give each one work, collect every result,
 * then probe the previous wave's refs.  Those children have replied and
 * are exiting or gone, and their slots are being reused by other
 * children: a probe that reaches any actor but its target is a stale ref
 * resolving to a new actor.  Some loop children spawn a grandchild of
 * their own; children exit by return, by an error reason, or by tr_exit
 * from deep inside.
 */
#define S4_PARENTS 4
#define S4_KIDS 16
#define S4_WAVES (200 / TEST_SCALE)
enum { S4_WORK = 1, S4_RESULT, S4_PROBE, S4_GRAND, S4_GRAND_ECHO };

typedef struct s4_parent {
    unsigned id;
    test_rng plan, jitter;
    uint64_t spawned, results, recv_timeouts;
    uint64_t probes_stale, probes_queued, probes_full, wrong_result;
} s4_parent;

static s4_parent s4_parents[S4_PARENTS];
static atomic_uint_fast64_t s4_kids_spawned, s4_kids_exited, s4_grand_spawned,
    s4_grand_exited, s4_misdelivered;

/* A child's identity: parent, wave and index, also its actor state. */
static uint64_t s4_code(unsigned parent, unsigned wave, unsigned k)
{
    return (uint64_t)parent << 40 | (uint64_t)wave << 16 | k;
}

static uint64_t s4_work(uint64_t x)
{
    return x * 0x9E3779B97F4A7C15ull + 12345;
}

static int s4_grandchild(tr_actor *self, tr_msg *m)
{
    uint64_t code = (uintptr_t)tr_actor_state(self);
    if (m->tag != S4_GRAND || m->a != code)
        atomic_fetch_add(&s4_misdelivered, 1);
    tr_msg echo = tr_msg_words(S4_GRAND_ECHO, m->a, s4_work(m->b));
    EXPECT_OK(tr_send(tr_actor_system(self), m->from, &echo, TR_FOREVER));
    atomic_fetch_add(&s4_grand_exited, 1);
    return TR_STOP;
}

static int s4_kid_handler(tr_actor *self, tr_msg *m)
{
    uint64_t code = (uintptr_t)tr_actor_state(self);
    /* A handler child stops after its work: it must never see a probe. */
    if (m->tag != S4_WORK || m->a != code) {
        atomic_fetch_add(&s4_misdelivered, 1);
        return 0;
    }
    tr_msg r = tr_msg_words(S4_RESULT, code, s4_work(s4_work(m->b)));
    EXPECT_OK(tr_send(tr_actor_system(self), m->from, &r, TR_FOREVER));
    atomic_fetch_add(&s4_kids_exited, 1);
    return (code & 1) ? TR_STOP : -9; /* an error reason ends it too */
}

static void exit_from_deep(int depth)
{
    if (depth == 0)
        tr_exit(0);
    else
        exit_from_deep(depth - 1);
}

/* Receive the next message with short deadlines; false on giving up. */
static bool s4_recv(tr_msg *m, test_rng *r, uint64_t *timeouts)
{
    int64_t give_up = tr_now() + TEST_DEADLINE_MS * 1000000LL;
    for (;;) {
        int rc = tr_recv(m, after_us(10 + below(r, 1000)));
        if (rc == 0)
            return true;
        if (rc != TR_ETIMEDOUT || tr_now() > give_up) {
            actor_error(__LINE__, rc);
            return false;
        }
        (*timeouts)++;
    }
}

static int s4_kid_loop(tr_actor *self)
{
    uint64_t code = (uintptr_t)tr_actor_state(self);
    tr_system *sys = tr_actor_system(self);
    test_rng plan = rng_for(4, code), jitter = rng_for(14, code);
    uint64_t timeouts = 0;
    tr_msg m;
    if (!s4_recv(&m, &jitter, &timeouts))
        return -1;
    if (m.tag != S4_WORK || m.a != code) {
        atomic_fetch_add(&s4_misdelivered, 1);
        return -1;
    }
    tr_ref parent = m.from;
    uint64_t result = s4_work(m.b);

    if (below(&plan, 4) == 0) {
        /* Delegate a step to a grandchild and wait for its answer. */
        tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
        o.mailbox_capacity = 1;
        o.state = (void *)(uintptr_t)code;
        tr_ref g;
        int rc = tr_spawn(sys, s4_grandchild, &o, &g);
        if (rc) {
            actor_error(__LINE__, rc);
            return rc;
        }
        atomic_fetch_add(&s4_grand_spawned, 1);
        tr_msg q = tr_msg_words(S4_GRAND, code, result);
        EXPECT_OK(tr_send(sys, g, &q, TR_FOREVER));
        if (!s4_recv(&m, &jitter, &timeouts))
            return -1;
        if (m.tag != S4_GRAND_ECHO || m.a != code || m.from != g)
            atomic_fetch_add(&s4_misdelivered, 1);
        result = m.b;
    } else {
        result = s4_work(result); /* the same step, done here */
    }
    tr_msg reply = tr_msg_words(S4_RESULT, code, result);
    EXPECT_OK(tr_send(sys, parent, &reply, TR_FOREVER));

    /* Linger a little; only probes for this very child may arrive. */
    for (unsigned i = below(&plan, 4); i > 0; i--)
        EXPECT_OK(tr_yield());
    int rc;
    while ((rc = tr_recv(&m, TR_NOW)) == 0)
        if (m.tag != S4_PROBE || m.a != code)
            atomic_fetch_add(&s4_misdelivered, 1);
    if (rc != TR_ETIMEDOUT)
        actor_error(__LINE__, rc);
    atomic_fetch_add(&s4_kids_exited, 1);
    switch (below(&plan, 3)) {
    case 0:
        return 0;
    case 1:
        return -7;
    default:
        exit_from_deep(3);
        return -1; /* not reached */
    }
}

static int s4_parent_body(tr_actor *self)
{
    s4_parent *p = tr_actor_state(self);
    tr_system *sys = tr_actor_system(self);
    static const uint32_t caps[] = {1, 3, 7, 0};
    tr_ref prev[S4_KIDS], cur[S4_KIDS];
    uint64_t input[S4_KIDS], prev_code[S4_KIDS];
    bool have_prev = false;

    for (unsigned w = 0; w < S4_WAVES; w++) {
        for (unsigned k = 0; k < S4_KIDS; k++) {
            uint64_t code = s4_code(p->id, w, k);
            tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
            o.mailbox_capacity = caps[below(&p->plan, 4)];
            o.state = (void *)(uintptr_t)code;
            int rc;
            switch (below(&p->plan, 3)) {
            case 0:
                rc = tr_spawn(sys, s4_kid_handler, &o, &cur[k]);
                break;
            case 1:
                rc = tr_spawn_loop(sys, s4_kid_loop, &o, &cur[k]);
                break;
            default:
                o.stack_size = 64 * 1024;
                rc = tr_spawn_loop(sys, s4_kid_loop, &o, &cur[k]);
                break;
            }
            if (rc) {
                actor_error(__LINE__, rc);
                goto done;
            }
            p->spawned++;
            atomic_fetch_add(&s4_kids_spawned, 1);
            input[k] = test_rnd(&p->plan);
            tr_msg work = tr_msg_words(S4_WORK, code, input[k]);
            EXPECT_OK(tr_send(sys, cur[k], &work, TR_FOREVER));
            if (below(&p->plan, 8) == 0)
                EXPECT_OK(tr_yield());
        }

        bool seen[S4_KIDS] = {0};
        for (unsigned got = 0; got < S4_KIDS; got++) {
            tr_msg m;
            if (!s4_recv(&m, &p->jitter, &p->recv_timeouts))
                goto done;
            unsigned k = (unsigned)(m.a & 0xffff);
            if (m.tag != S4_RESULT || k >= S4_KIDS || m.a != s4_code(p->id, w, k) ||
                seen[k] || m.from != cur[k] || m.b != s4_work(s4_work(input[k]))) {
                p->wrong_result++;
                continue;
            }
            seen[k] = true;
            p->results++;
        }

        /* The previous wave has replied: its refs are stale or soon will be. */
        for (unsigned k = 0; have_prev && k < S4_KIDS; k++) {
            tr_msg probe = tr_msg_words(S4_PROBE, prev_code[k], 0);
            int rc = tr_try_send(sys, prev[k], &probe);
            if (rc == TR_ENOACTOR)
                p->probes_stale++;
            else if (rc == 0)
                p->probes_queued++;
            else if (rc == TR_EFULL)
                p->probes_full++;
            else
                actor_error(__LINE__, rc);
        }
        for (unsigned k = 0; k < S4_KIDS; k++) {
            prev[k] = cur[k];
            prev_code[k] = s4_code(p->id, w, k);
        }
        have_prev = true;
        if (below(&p->plan, 4) == 0)
            spin_us(below(&p->jitter, 20));
    }
done:
    report(sys, REP_PARENT, p->id, 0);
    return 0;
}

static void test_spawn_exit_churn_accounts_for_every_child(void **state)
{
    (void)state;
    int64_t t0 = tr_now();
    atomic_store(&s4_kids_spawned, 0);
    atomic_store(&s4_kids_exited, 0);
    atomic_store(&s4_grand_spawned, 0);
    atomic_store(&s4_grand_exited, 0);
    atomic_store(&s4_misdelivered, 0);
    memset(s4_parents, 0, sizeof s4_parents);
    tr_system *sys = test_system(4);
    open_reports(sys);
    chatter_start(sys, 4);

    for (unsigned i = 0; i < S4_PARENTS; i++) {
        s4_parents[i].id = i;
        s4_parents[i].plan = rng_for(5, i);
        s4_parents[i].jitter = rng_for(15, i);
        tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
        o.mailbox_capacity = 7;
        o.state = &s4_parents[i];
        assert_int_equal(tr_spawn_loop(sys, s4_parent_body, &o, NULL), 0);
    }
    bool done[S4_PARENTS] = {0};
    for (unsigned i = 0; i < S4_PARENTS; i++) {
        tr_msg m = test_recv(report_mb);
        assert_int_equal(m.tag, REP_PARENT);
        assert_true(m.a < S4_PARENTS && !done[m.a]);
        done[m.a] = true;
    }
    /* Children count themselves out just before they exit. */
    int64_t until = tr_now() + TEST_DEADLINE_MS * 1000000LL;
    while ((atomic_load(&s4_kids_exited) < atomic_load(&s4_kids_spawned) ||
            atomic_load(&s4_grand_exited) < atomic_load(&s4_grand_spawned)) &&
           tr_now() < until)
        usleep(1000);
    uint64_t hops = chatter_finish();
    tr_mailbox_free(report_mb);
    tr_system_free(sys);
    assert_no_actor_errors();

    uint64_t spawned = 0, stale = 0, queued = 0, full = 0, timeouts = 0;
    for (unsigned i = 0; i < S4_PARENTS; i++) {
        const s4_parent *p = &s4_parents[i];
        assert_int_equal(p->wrong_result, 0);
        assert_int_equal(p->spawned, (uint64_t)S4_WAVES * S4_KIDS);
        assert_int_equal(p->results, p->spawned);
        spawned += p->spawned;
        stale += p->probes_stale;
        queued += p->probes_queued;
        full += p->probes_full;
        timeouts += p->recv_timeouts;
    }
    assert_int_equal(atomic_load(&s4_misdelivered), 0);
    assert_int_equal(atomic_load(&s4_kids_spawned), spawned);
    assert_int_equal(atomic_load(&s4_kids_exited), spawned);
    assert_int_equal(atomic_load(&s4_grand_exited), atomic_load(&s4_grand_spawned));
    assert_true(hops > 0);
    printf("   %llu children (+%llu grandchildren) spawned, answered and exited; "
           "probes to old refs: %llu stale, %llu queued, %llu full; "
           "%llu recv timeouts; %llu chatter hops; %.0f ms\n",
           (unsigned long long)spawned,
           (unsigned long long)atomic_load(&s4_grand_spawned),
           (unsigned long long)stale, (unsigned long long)queued,
           (unsigned long long)full, (unsigned long long)timeouts,
           (unsigned long long)hops, ms_since(t0));
}

int main(void)
{
    seed = test_seed();

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_producers_to_tiny_mailboxes_keep_pair_order_on_1_worker),
        cmocka_unit_test(test_producers_to_tiny_mailboxes_keep_pair_order_on_2_workers),
        cmocka_unit_test(test_producers_to_tiny_mailboxes_keep_pair_order_on_4_workers),
        cmocka_unit_test(test_payloads_are_freed_once_when_receivers_exit_early),
        cmocka_unit_test(test_foreign_threads_get_every_reply_while_actors_chatter),
        cmocka_unit_test(test_spawn_exit_churn_accounts_for_every_child),
    };
    return cmocka_run_group_tests_name("stress", tests, NULL, NULL);
}
