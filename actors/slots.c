/* slots.c - generation-checked, borrow-counted handle table. */
#include "slots.h"

#include <stdlib.h>

#include "troupe/error.h"

#define ALIVE 1ull
#define BORROW 2ull
#define BORROW_MASK 0xFFFFFFFEull

static tr__slot *slot_at(tr__slots *t, uint32_t index)
{
    if (index >= t->max)
        return NULL;
    tr__slot *chunk = atomic_load_explicit(&t->chunks[index >> TR__SLOT_CHUNK_SHIFT],
                                           memory_order_acquire);
    return chunk ? &chunk[index & (TR__SLOT_CHUNK - 1)] : NULL;
}

static tr__slot *slot_of(tr__slots *t, tr_ref ref)
{
    uint32_t index = (uint32_t)ref;
    return index ? slot_at(t, index - 1) : NULL;
}

int tr__slots_init(tr__slots *t, uint32_t max)
{
    *t = (tr__slots){.max = max};
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

int tr__slot_alloc(tr__slots *t, void *obj, uint8_t kind, tr_ref *ref)
{
    uint32_t index;
    tr__slot *s;

    tr__spin_lock(&t->lock);
    if (t->free_head) {
        index = t->free_head - 1;
        s = slot_at(t, index);
        t->free_head = s->next_free;
    } else {
        if (t->used >= t->max) {
            tr__spin_unlock(&t->lock);
            return TR_ELIMIT;
        }
        index = t->used;
        _Atomic(tr__slot *) *chunkp = &t->chunks[index >> TR__SLOT_CHUNK_SHIFT];
        if (!atomic_load_explicit(chunkp, memory_order_relaxed)) {
            tr__slot *chunk = calloc(TR__SLOT_CHUNK, sizeof *chunk);
            if (!chunk) {
                tr__spin_unlock(&t->lock);
                return TR_ENOMEM;
            }
            for (unsigned i = 0; i < TR__SLOT_CHUNK; i++)
                atomic_init(&chunk[i].word, 1ull << 32); /* generation 1 */
            /* Pairs with the acquire in slot_at. */
            atomic_store_explicit(chunkp, chunk, memory_order_release);
        }
        t->used++;
        s = slot_at(t, index);
    }
    tr__spin_unlock(&t->lock);

    s->kind = kind;
    atomic_store_explicit(&s->obj, obj, memory_order_relaxed);
    uint64_t gen = atomic_load_explicit(&s->word, memory_order_relaxed) >> 32;
    /* Publishes obj and kind: pairs with the acquire CAS in tr__slot_get. */
    atomic_store_explicit(&s->word, gen << 32 | ALIVE, memory_order_release);
    *ref = gen << 32 | (index + 1);
    return 0;
}

void *tr__slot_get(tr__slots *t, tr_ref ref, uint8_t *kind)
{
    tr__slot *s = slot_of(t, ref);
    if (!s)
        return NULL;
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
    do {
        if ((w >> 32) != (ref >> 32) || !(w & ALIVE))
            return NULL;
    } while (!atomic_compare_exchange_weak_explicit(
        &s->word, &w, w + BORROW, memory_order_acquire, memory_order_relaxed));
    if (kind)
        *kind = s->kind;
    return atomic_load_explicit(&s->obj, memory_order_relaxed);
}

void *tr__slot_peek(tr__slots *t, tr_ref ref, uint8_t *kind)
{
    tr__slot *s = slot_of(t, ref);
    if (!s)
        return NULL;
    /* seq_cst: after the caller's hazard store, before tr__slot_kill. */
    uint64_t w = atomic_load(&s->word);
    if ((w >> 32) != (ref >> 32) || !(w & ALIVE))
        return NULL;
    *kind = s->kind;
    return atomic_load_explicit(&s->obj, memory_order_relaxed);
}

bool tr__slot_put(tr__slots *t, tr_ref ref)
{
    tr__slot *s = slot_of(t, ref);
    /* acq_rel: the destroyer must see every borrower's last access. */
    uint64_t old = atomic_fetch_sub_explicit(&s->word, BORROW, memory_order_acq_rel);
    return (old & BORROW_MASK) == BORROW && !(old & ALIVE);
}

bool tr__slot_kill(tr__slots *t, tr_ref ref)
{
    tr__slot *s = slot_of(t, ref);
    /* seq_cst: a hazard announced before a peek that saw the slot alive
     * is seen by the destroyer that comes after this (tr__slot_peek). */
    uint64_t old = atomic_fetch_and(&s->word, ~ALIVE);
    return (old & BORROW_MASK) == 0 && (old & ALIVE);
}

void tr__slot_release(tr__slots *t, tr_ref ref)
{
    uint32_t index = (uint32_t)ref - 1;
    tr__slot *s = slot_at(t, index);
    uint64_t gen = (ref >> 32) + 1;
    if ((uint32_t)gen == 0)
        gen = 1;
    atomic_store_explicit(&s->obj, NULL, memory_order_relaxed);
    atomic_store_explicit(&s->word, (gen & 0xFFFFFFFFull) << 32, memory_order_release);
    tr__spin_lock(&t->lock);
    s->next_free = t->free_head;
    t->free_head = index + 1;
    tr__spin_unlock(&t->lock);
}

void tr__slots_each(tr__slots *t, void (*fn)(void *obj, uint8_t kind, void *arg),
                    void *arg)
{
    for (uint32_t i = 0; i < t->used; i++) {
        tr__slot *s = slot_at(t, i);
        atomic_load_explicit(&s->word, memory_order_acquire);
        void *obj = atomic_load_explicit(&s->obj, memory_order_relaxed);
        if (obj)
            fn(obj, s->kind, arg);
    }
}
