/*
 * test_pool.c - the block pools (actors/pool.h) and the free list of the
 * ref table (actors/slots.h), on their own: both are lock-free or nearly
 * so, and everything an actor is lives in them.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "support.h"
#include "pool.h"
#include "../../supervisor/refmap.h"
#include "slots.h"

/* A block handed out carries its owner's mark and a stamp. */
typedef struct block {
    void *links[2];           /* the pool's, while free */
    uint64_t owner, stamp;
} block;

#ifndef __SANITIZE_ADDRESS__ /* there every block is a malloc */
static size_t chunks_of(const tr__pool *p)
{
    size_t n = 0;
    for (void *c = p->chunks; c; c = *(void **)c)
        n++;
    return n;
}
#endif

static void test_blocks_are_aligned_distinct_and_reused(void **state)
{
    (void)state;
    tr__pool p;
    tr__pool_init(&p, 100);
    assert_int_equal(p.size, 128);
    tr__pool_cache c = {0};
    enum { N = 5 * TR__POOL_BATCH + 7 };
    char *got[N];
    for (int i = 0; i < N; i++) {
        got[i] = tr__pool_get(&p, &c);
        assert_non_null(got[i]);
        assert_int_equal((uintptr_t)got[i] % 64, 0);
        memset(got[i], i & 0xFF, p.size);
    }
    for (int i = 0; i < N; i++) /* nobody overwrote anybody */
        for (size_t k = 0; k < p.size; k++)
            assert_int_equal((unsigned char)got[i][k], i & 0xFF);
#ifndef __SANITIZE_ADDRESS__
    size_t chunks = chunks_of(&p);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++)
            tr__pool_put(&p, &c, got[i]);
        for (int i = 0; i < N; i++)
            got[i] = tr__pool_get(&p, &c);
    }
    assert_int_equal(chunks_of(&p), chunks); /* all reused: no new chunk */
#endif
    for (int i = 0; i < N; i++)
        tr__pool_put(&p, i % 3 ? &c : NULL, got[i]); /* some as a non-worker */
    tr__pool_put(&p, &c, NULL);
    /* A thread that is not a worker gets the loose blocks back, then
     * full magazines turned loose, all distinct. */
    for (int i = 0; i < N; i++) {
        got[i] = tr__pool_get(&p, NULL);
        assert_non_null(got[i]);
        memset(got[i], i & 0xFF, p.size);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal((unsigned char)got[i][0], i & 0xFF);
        assert_int_equal((unsigned char)got[i][p.size - 1], i & 0xFF);
    }
#ifndef __SANITIZE_ADDRESS__
    assert_int_equal(chunks_of(&p), chunks); /* still no new chunk */
#endif
    for (int i = 0; i < N; i++)
        tr__pool_put(&p, NULL, got[i]);
    tr__pool_destroy(&p);
}

/*
 * Four threads, each with its own cache, pass blocks to each other
 * through a shared exchange, so nearly every block is freed by another
 * thread than the one that got it, through magazines, the full list and
 * the loose list (every fifth free as a non-worker).  The blocks handed
 * out and not yet given back are a set (under a mutex: the test's, not
 * the pool's): a block handed out twice is found in it.  Block contents
 * are not to be trusted for that, as a new block is uninitialised.
 */
enum { THREADS = 4, EXCHANGE = 256 };

static tr__pool shared_pool;
static _Atomic(block *) exchange_slots[EXCHANGE];
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static tr__refmap out;        /* address -> 1, for the blocks handed out */
static int double_handouts, lost_marks;
static uint64_t handed_out;

typedef struct worker_arg {
    unsigned id;
    uint64_t seed;
    unsigned rounds;
} worker_arg;

/* Run fn on n threads, thread i with worker_arg {i, seed + i, rounds}. */
static void run_threads(unsigned n, void *(*fn)(void *), unsigned rounds)
{
    uint64_t seed = test_seed();
    pthread_t th[8];
    worker_arg args[8];
    assert_true(n <= 8);
    for (unsigned i = 0; i < n; i++) {
        args[i] = (worker_arg){i, seed + i, rounds};
        assert_int_equal(pthread_create(&th[i], NULL, fn, &args[i]), 0);
    }
    for (unsigned i = 0; i < n; i++)
        pthread_join(th[i], NULL);
}

static bool mark_out(block *b)
{
    pthread_mutex_lock(&out_lock);
    uint32_t v;
    bool fresh = !tr__refmap_get(&out, (tr_ref)(uintptr_t)b, &v);
    if (fresh)
        tr__refmap_put(&out, (tr_ref)(uintptr_t)b, 1);
    else
        double_handouts++;
    handed_out++;
    pthread_mutex_unlock(&out_lock);
    return fresh;
}

static void mark_back(block *b)
{
    pthread_mutex_lock(&out_lock);
    if (!tr__refmap_del(&out, (tr_ref)(uintptr_t)b, NULL))
        lost_marks++;
    pthread_mutex_unlock(&out_lock);
}

static void release(tr__pool_cache *c, block *b, test_rng *r)
{
    mark_back(b);
    tr__pool_put(&shared_pool, test_rnd(r) % 5 ? c : NULL, b);
}

static void *pool_worker(void *arg)
{
    worker_arg *w = arg;
    test_rng r = {w->seed};
    tr__pool_cache c = {0};
    uint64_t mark = w->id + 1;
    for (unsigned i = 0; i < w->rounds; i++) {
        block *b = tr__pool_get(&shared_pool, &c);
        if (!mark_out(b))
            continue;
        b->owner = mark;
        b->stamp = mark << 32 | i;
        /* Swap it for whatever another thread left, and free that. */
        block *other = atomic_exchange(&exchange_slots[test_rnd(&r) % EXCHANGE], b);
        if (other) {
            if ((other->stamp >> 32) != other->owner) /* written over while out */
                lost_marks++;
            release(&c, other, &r);
        }
    }
    /* The cache is the thread's own: what is left in it stays in the
     * pool's chunks, which destroy frees. */
    return NULL;
}

static void test_blocks_cross_threads_without_double_handout(void **state)
{
    (void)state;
    tr__pool_init(&shared_pool, sizeof(block));
    run_threads(THREADS, pool_worker, 200000 / TEST_SCALE);
    assert_int_equal(double_handouts, 0);
    assert_int_equal(lost_marks, 0);
    assert_int_equal(handed_out, THREADS * (200000 / TEST_SCALE));
    for (unsigned i = 0; i < EXCHANGE; i++) {
        block *b = atomic_exchange(&exchange_slots[i], NULL);
        if (b) {
            mark_back(b);
            tr__pool_put(&shared_pool, NULL, b);
        }
    }
    assert_int_equal(out.len, 0); /* every block handed out came back */
    tr__refmap_free(&out);
    tr__pool_destroy(&shared_pool);
}

/*
 * Slots: threads with caches of their own and a thread without one take
 * and return refs in a loop.  Every live ref must be distinct (a slot
 * handed out twice would show as two live objects behind one index), and
 * at the end every slot is back: the table serves `max` at once again.
 */
enum { SLOT_MAX = 4096, SLOT_THREADS = 3 };

static tr__slots table;
static _Atomic uint8_t live[SLOT_MAX];
static atomic_int slot_clashes;

static void *slot_churn(void *arg)
{
    worker_arg *w = arg;
    test_rng r = {w->seed};
    tr__slot_cache cache = {0}, *c = w->id == 0 ? NULL : &cache;
    tr_ref held[32];
    unsigned n = 0;
    for (unsigned i = 0; i < w->rounds; i++) {
        if (n < 32 && (n == 0 || test_rnd(&r) % 2)) {
            tr_ref ref;
            if (tr__slot_alloc(&table, c, &table, 1, &ref) != 0)
                continue;
            uint32_t index = (uint32_t)ref - 1;
            if (atomic_exchange(&live[index], 1))
                atomic_fetch_add(&slot_clashes, 1);
            held[n++] = ref;
        } else {
            unsigned k = (unsigned)(test_rnd(&r) % n);
            tr_ref ref = held[k];
            held[k] = held[--n];
            atomic_store(&live[(uint32_t)ref - 1], 0);
            if (!tr__slot_kill(&table, ref))
                atomic_fetch_add(&slot_clashes, 1);
            tr__slot_release(&table, c, ref);
        }
    }
    while (n) {
        tr_ref ref = held[--n];
        atomic_store(&live[(uint32_t)ref - 1], 0);
        tr__slot_kill(&table, ref);
        tr__slot_release(&table, c, ref);
    }
    if (c)
        tr__slot_flush(&table, c);
    return NULL;
}

static void test_slots_cross_threads_without_double_handout(void **state)
{
    (void)state;
    /* Generations start at the last one: the churn wraps them past 0. */
    assert_int_equal(tr__slots_init(&table, SLOT_MAX, UINT32_MAX), 0);
    run_threads(SLOT_THREADS, slot_churn, 300000 / TEST_SCALE);
    assert_int_equal(atomic_load(&slot_clashes), 0);
    /* Every slot came back: all SLOT_MAX can be taken at once. */
    static tr_ref all[SLOT_MAX];
    for (unsigned i = 0; i < SLOT_MAX; i++)
        assert_int_equal(tr__slot_alloc(&table, NULL, &table, 1, &all[i]), 0);
    tr_ref extra;
    assert_int_equal(tr__slot_alloc(&table, NULL, &table, 1, &extra), TR_ELIMIT);
    /* And a stale ref stays stale after its slot is reused. */
    assert_true(tr__slot_kill(&table, all[0]));
    tr__slot_release(&table, NULL, all[0]);
    tr_ref again;
    assert_int_equal(tr__slot_alloc(&table, NULL, &table, 1, &again), 0);
    assert_int_equal((uint32_t)again, (uint32_t)all[0]);
    assert_int_not_equal(again >> 32, 0);
    assert_null(tr__slot_get(&table, all[0], NULL));
    tr__slots_destroy(&table);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocks_are_aligned_distinct_and_reused),
        cmocka_unit_test(test_blocks_cross_threads_without_double_handout),
        cmocka_unit_test(test_slots_cross_threads_without_double_handout),
    };
    return cmocka_run_group_tests_name("pool", tests, NULL, NULL);
}
