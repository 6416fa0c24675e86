/* slots.c - generation-checked, borrow-counted handle table. */
#include "slots.h"

#include <stdlib.h>

#include "troupe/error.h"

#define BORROW 2ull
#define BORROW_MASK 0xFFFFFFFEull

int tr__slots_init(tr__slots *t, uint32_t max, uint32_t first_gen)
{
    *t = (tr__slots){.max = max, .first_gen = first_gen};
    size_t nchunks = ((size_t)max + TR__SLOT_CHUNK - 1) / TR__SLOT_CHUNK;
    t->chunks = calloc(nchunks, sizeof *t->chunks);
    return t->chunks ? 0 : TR_ENOMEM;
}

void tr__slots_destroy(tr__slots *t)
{
    size_t nchunks = ((size_t)t->max + TR__SLOT_CHUNK - 1) / TR__SLOT_CHUNK;
    for (size_t i = 0; i < nchunks; i++)
        free(atomic_load_explicit(&t->chunks[i], memory_order_relaxed));
    free(t->chunks);
    t->chunks = NULL;
}

/* Push the chain head..tail (indexes + 1, linked by next_free). */
static void push_free(tr__slots *t, uint32_t head, uint32_t tail)
{
    tr__slot *last = tr__slot_at(t, tail - 1);
    uint64_t top = atomic_load_explicit(&t->free_top, memory_order_relaxed);
    uint64_t want;
    do {
        atomic_store_explicit(&last->next_free, (uint32_t)top, memory_order_relaxed);
        want = ((top >> 32) + 1) << 32 | head;
    } while (!atomic_compare_exchange_weak_explicit(&t->free_top, &top, want,
                                                    memory_order_release,
                                                    memory_order_relaxed));
}

/* Pop a free slot's index + 1, or 0 if the stack is empty. */
static uint32_t pop_free(tr__slots *t)
{
    uint64_t top = atomic_load_explicit(&t->free_top, memory_order_acquire);
    for (;;) {
        uint32_t first = (uint32_t)top;
        if (!first)
            return 0;
        uint32_t next = atomic_load_explicit(&tr__slot_at(t, first - 1)->next_free,
                                             memory_order_relaxed);
        uint64_t want = ((top >> 32) + 1) << 32 | next;
        if (atomic_compare_exchange_weak_explicit(&t->free_top, &top, want,
                                                  memory_order_acquire,
                                                  memory_order_acquire))
            return first;
    }
}

/* A never used slot's index + 1; 0 with *rc set if there is none. */
static uint32_t fresh_slot(tr__slots *t, int *rc)
{
    tr__spin_lock(&t->lock);
    if (t->used >= t->max) {
        tr__spin_unlock(&t->lock);
        *rc = TR_ELIMIT;
        return 0;
    }
    uint32_t index = t->used;
    _Atomic(tr__slot *) *chunkp = &t->chunks[index >> TR__SLOT_CHUNK_SHIFT];
    if (!atomic_load_explicit(chunkp, memory_order_relaxed)) {
        tr__slot *chunk = calloc(TR__SLOT_CHUNK, sizeof *chunk);
        if (!chunk) {
            tr__spin_unlock(&t->lock);
            *rc = TR_ENOMEM;
            return 0;
        }
        for (unsigned i = 0; i < TR__SLOT_CHUNK; i++)
            atomic_init(&chunk[i].word, (uint64_t)t->first_gen << 32);
        /* Pairs with the acquire in tr__slot_at. */
        atomic_store_explicit(chunkp, chunk, memory_order_release);
    }
    t->used++;
    tr__spin_unlock(&t->lock);
    return index + 1;
}

int tr__slot_alloc(tr__slots *t, tr__slot_cache *c, void *obj, uint8_t kind,
                   tr_ref *ref)
{
    uint32_t first = 0;
    int rc = 0;
    if (c && c->head) {
        first = c->head;
        c->head = atomic_load_explicit(&tr__slot_at(t, first - 1)->next_free,
                                       memory_order_relaxed);
        if (--c->len == 0)
            c->tail = 0;
    }
    if (!first)
        first = pop_free(t);
    if (!first && !(first = fresh_slot(t, &rc)))
        return rc;
    uint32_t index = first - 1;
    tr__slot *s = tr__slot_at(t, index);
    atomic_store_explicit(&s->kind, kind, memory_order_relaxed);
    atomic_store_explicit(&s->obj, obj, memory_order_relaxed);
    uint64_t gen = atomic_load_explicit(&s->word, memory_order_relaxed) >> 32;
    *ref = gen << 32 | (index + 1); /* often in obj: published with it */
    /* Publishes obj and kind: pairs with the acquire CAS in tr__slot_get. */
    atomic_store_explicit(&s->word, gen << 32 | TR__SLOT_ALIVE, memory_order_release);
    return 0;
}

void *tr__slot_get(tr__slots *t, tr_ref ref, uint8_t *kind)
{
    tr__slot *s = tr__slot_of(t, ref);
    if (!s)
        return NULL;
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
    do {
        if ((w >> 32) != (ref >> 32) || !(w & TR__SLOT_ALIVE))
            return NULL;
    } while (!atomic_compare_exchange_weak_explicit(
        &s->word, &w, w + BORROW, memory_order_acquire, memory_order_relaxed));
    if (kind)
        *kind = atomic_load_explicit(&s->kind, memory_order_relaxed);
    return atomic_load_explicit(&s->obj, memory_order_relaxed);
}

bool tr__slot_put(tr__slots *t, tr_ref ref)
{
    tr__slot *s = tr__slot_of(t, ref);
    /* acq_rel: the destroyer must see every borrower's last access. */
    uint64_t old = atomic_fetch_sub_explicit(&s->word, BORROW, memory_order_acq_rel);
    return (old & BORROW_MASK) == BORROW && !(old & TR__SLOT_ALIVE);
}

bool tr__slot_kill(tr__slots *t, tr_ref ref)
{
    tr__slot *s = tr__slot_of(t, ref);
    /* seq_cst: a hazard announced before a peek that saw the slot alive
     * is seen by the destroyer that comes after this (tr__slot_peek). */
    uint64_t old = atomic_fetch_and(&s->word, ~TR__SLOT_ALIVE);
    return (old & BORROW_MASK) == 0 && (old & TR__SLOT_ALIVE);
}

void tr__slot_release(tr__slots *t, tr__slot_cache *c, tr_ref ref)
{
    uint32_t first = (uint32_t)ref;
    tr__slot *s = tr__slot_at(t, first - 1);
    uint64_t gen = (ref >> 32) + 1;
    if ((uint32_t)gen == 0)
        gen = 1;
    atomic_store_explicit(&s->obj, NULL, memory_order_relaxed);
    atomic_store_explicit(&s->word, (gen & 0xFFFFFFFFull) << 32, memory_order_release);
    if (!c) {
        push_free(t, first, first);
        return;
    }
    atomic_store_explicit(&s->next_free, c->head, memory_order_relaxed);
    c->head = first;
    if (!c->tail)
        c->tail = first;
    if (++c->len == TR__SLOT_BATCH)
        tr__slot_flush(t, c);
}

void tr__slot_flush(tr__slots *t, tr__slot_cache *c)
{
    if (c->head)
        push_free(t, c->head, c->tail);
    *c = (tr__slot_cache){0};
}

void tr__slots_each(tr__slots *t, void (*fn)(void *obj, uint8_t kind, void *arg),
                    void *arg)
{
    for (uint32_t i = 0; i < t->used; i++) {
        tr__slot *s = tr__slot_at(t, i);
        atomic_load_explicit(&s->word, memory_order_acquire);
        void *obj = atomic_load_explicit(&s->obj, memory_order_relaxed);
        if (obj)
            fn(obj, atomic_load_explicit(&s->kind, memory_order_relaxed), arg);
    }
}
