/*
 * slots.h - the table behind refs.
 *
 * Overview: a tr_ref is (generation << 32 | slot index + 1).  Each slot
 * holds one 64-bit word: generation (high 32 bits), a count of borrowers
 * (bits 1..31) and an "alive" bit (bit 0).  Looking a ref up borrows the
 * object only if the generation matches and it is alive, so a stale ref
 * never reaches freed memory; the object is destroyed by whoever drops
 * the last borrow after it died (tr__slot_kill / tr__slot_put return true
 * to exactly one caller).  Each table counts its generations from a start
 * of its own (tr__generation_start), so that a ref used with a system it
 * does not belong to finds no match either.
 *
 * Implementation notes: slots live in chunks that are allocated on demand
 * and never moved or freed before the table, so a lookup needs no lock.
 * Free slots form a lock-free LIFO stack (a Treiber stack whose top word
 * carries a tag against ABA); a slot is never freed, so reading the next
 * link of a slot that another thread just took is safe, and the tag makes
 * that stale read fail its CAS.  Workers free into a cache of their own
 * and hand the stack TR__SLOT_BATCH slots in one CAS: a spinlocked list
 * had the spawning thread wait behind the workers' releases, 43 % of its
 * time when actors were spawned from a thread and exited at once.
 */
#ifndef TR_SLOTS_H
#define TR_SLOTS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "spin.h"
#include "troupe/msg.h"

#define TR__SLOT_CHUNK_SHIFT 12
#define TR__SLOT_CHUNK (1u << TR__SLOT_CHUNK_SHIFT)
#define TR__SLOT_BATCH 64

typedef struct tr__slot {
    _Atomic uint64_t word;  /* generation | borrowers << 1 | alive */
    _Atomic(void *) obj;
    _Atomic uint32_t next_free; /* index + 1 of the next free slot; 0: none */
    /* What obj is (the caller's enumeration).  Atomic because a peek
     * without a hazard (a borrow from outside looks at it first) may
     * read it while the slot is given to a new object. */
    _Atomic uint8_t kind;
} tr__slot;

/* Every lookup reads `chunks` and `max`; spawning writes the free list.
 * Apart, on lines of their own, or each spawn costs every worker a miss
 * at its next lookup and the spawner one at its next CAS. */
typedef struct tr__slots {
    _Atomic(tr__slot *) *chunks;
    uint32_t max;           /* slots at most */
    uint32_t first_gen;     /* every slot's first generation */
    _Atomic uint64_t free_top __attribute__((aligned(64))); /* tag << 32 | index + 1 */
    tr__spin lock;          /* guards `used` and growing */
    uint32_t used;          /* slots ever handed out (high-water mark) */
} __attribute__((aligned(64))) tr__slots;

/* A worker's freed slots, linked by next_free; zero-filled is empty. */
typedef struct tr__slot_cache {
    uint32_t head, tail;    /* index + 1 */
    uint32_t len;
} tr__slot_cache;

/*
 * Where the generations of the `serial`-th system start: steps of 2^32
 * divided by the golden ratio.  Two systems made fewer than 10 apart
 * start at least 239 million generations apart (1.6 billion for two in a
 * row): one slot would have to be reused that many times more in one than
 * in the other before a ref of one matched a slot of the other.  Among a
 * thousand systems the closest two are 2 million apart; no two share a
 * start before 2^32 systems.  Never 0: a generation is never 0.
 */
static inline uint32_t tr__generation_start(uint64_t serial)
{
    uint32_t g = (uint32_t)(serial * 0x9E3779B9u);
    return g ? g : 1;
}

/* `first_gen`: tr__generation_start of the owning system. */
int tr__slots_init(tr__slots *t, uint32_t max, uint32_t first_gen);
void tr__slots_destroy(tr__slots *t);

/*
 * Take a free slot for `obj` (already fully built), alive with no
 * borrowers.  Returns 0 and the ref, TR_ELIMIT or TR_ENOMEM.  `c` is the
 * calling worker's cache, NULL on other threads (as for release).
 */
int tr__slot_alloc(tr__slots *t, tr__slot_cache *c, void *obj, uint8_t kind,
                   tr_ref *ref);

/* Borrow the object behind a live ref; NULL if it is stale or dead. */
void *tr__slot_get(tr__slots *t, tr_ref ref, uint8_t *kind);

#define TR__SLOT_ALIVE 1ull

/* The slot at `index`, or NULL past the table's end or its chunks. */
static inline tr__slot *tr__slot_at(tr__slots *t, uint32_t index)
{
    if (index >= t->max)
        return NULL;
    tr__slot *chunk = atomic_load_explicit(&t->chunks[index >> TR__SLOT_CHUNK_SHIFT],
                                           memory_order_acquire);
    return chunk ? &chunk[index & (TR__SLOT_CHUNK - 1)] : NULL;
}

static inline tr__slot *tr__slot_of(tr__slots *t, tr_ref ref)
{
    uint32_t index = (uint32_t)ref;
    return index ? tr__slot_at(t, index - 1) : NULL;
}

/*
 * The object behind a live ref, without borrowing it: the caller must
 * keep it from being destroyed by other means (a hazard announced
 * before the call, with a seq_cst store; see tr__hazard_wait).  Inline:
 * every send makes one.
 */
static inline void *tr__slot_peek(tr__slots *t, tr_ref ref, uint8_t *kind)
{
    tr__slot *s = tr__slot_of(t, ref);
    if (!s)
        return NULL;
    /* seq_cst: after the caller's hazard store, before tr__slot_kill. */
    uint64_t w = atomic_load(&s->word);
    if ((w >> 32) != (ref >> 32) || !(w & TR__SLOT_ALIVE))
        return NULL;
    *kind = atomic_load_explicit(&s->kind, memory_order_relaxed);
    return atomic_load_explicit(&s->obj, memory_order_relaxed);
}

/* Drop a borrow; true if the caller must now destroy the object. */
bool tr__slot_put(tr__slots *t, tr_ref ref);

/* Mark dead (no new borrows); true if the caller must destroy it now. */
bool tr__slot_kill(tr__slots *t, tr_ref ref);

/* Return a destroyed object's slot; its ref goes stale for good. */
void tr__slot_release(tr__slots *t, tr__slot_cache *c, tr_ref ref);

/* Hand the cached slots to the shared stack (a worker going idle). */
void tr__slot_flush(tr__slots *t, tr__slot_cache *c);

/* Call fn on every object not yet released, dead or alive (only while
 * no other thread uses t: system teardown). */
void tr__slots_each(tr__slots *t, void (*fn)(void *obj, uint8_t kind,
                                            void *arg), void *arg);

#endif
