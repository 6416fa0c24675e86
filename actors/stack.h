/*
 * stack.h - coroutine stacks and their pool.
 *
 * A stack is one anonymous mapping: an optional inaccessible guard page at
 * the low end, the usable region, and this descriptor at the very top (so
 * a stack costs no separate allocation).  Pages are committed by the
 * kernel only when touched, so a 256 KiB stack that an actor parks on
 * with a shallow call chain costs a page or two of memory.
 *
 * Stacks are recycled through a per-worker cache (no locking) backed by a
 * per-system pool (a spinlock), because a worker takes a fresh stack every
 * time an actor parks on the one it was running on.
 */
#ifndef TR_STACK_H
#define TR_STACK_H

#include <stddef.h>

#include "ctx.h"
#include "sanitizer.h"
#include "spin.h"

typedef struct tr__stack {
    tr__ctx ctx;            /* saved context while switched out */
    void *lo;               /* lowest usable byte */
    size_t size;            /* usable bytes, up to this descriptor */
    size_t map_len;         /* the whole mapping, guard page included */
    size_t guard;           /* guard bytes below lo (0: none) */
    void *asan_fake;        /* ASan's fake-stack handle while switched out */
    void *tsan_fiber;       /* TSan's fiber for this stack */
    unsigned valgrind_id;
    size_t tsan_left;       /* bytes of frames left on it for TSan's fiber (TSan builds) */
    char *asan_low;         /* lowest switch-out since it was last cleaned (ASan builds) */
    struct tr__stack *next; /* pool link */
} tr__stack;

typedef struct tr__stack_pool {
    tr__spin lock;
    tr__stack *free;
    unsigned nfree;
    size_t size;   /* mapping size of pooled stacks */
    int guard;
} tr__stack_pool;

void tr__stack_pool_init(tr__stack_pool *pool, size_t size, int guard);
void tr__stack_pool_destroy(tr__stack_pool *pool);

/* A new stack of `size` bytes (mapping size), or NULL when out of memory. */
tr__stack *tr__stack_new(size_t size, int guard);
void tr__stack_free(tr__stack *st);

/* A stack from the pool (or a new one); NULL when out of memory. */
tr__stack *tr__stack_pool_get(tr__stack_pool *pool);
/* Return a stack; stacks of another size are unmapped instead. */
void tr__stack_pool_put(tr__stack_pool *pool, tr__stack *st);

/*
 * The code running on `st` leaves it for good; its frames, down to `sp`,
 * never return.  TSan builds count them (see tr__stack_prepare); in the
 * others this is nothing.  Only the worker running on `st`.
 */
static inline void tr__stack_abandon(tr__stack *st, const void *sp)
{
#ifdef TR_TSAN
    st->tsan_left += (size_t)((const char *)st - (const char *)sp);
#else
    (void)st, (void)sp;
#endif
}

/*
 * The code running on `st` switches away from it at `sp`.  The frames
 * above stay until they return, or for good, and with them their ASan
 * redzones: this marks how far down the stack must be cleaned before it
 * is reused or unmapped (cleaning it all cost size / 8 bytes of shadow
 * at every reuse, and a stack of a TiB was OOM-killed).  Only the thread
 * running on `st`.
 */
static inline void tr__stack_switching_out(tr__stack *st, const void *sp)
{
#ifdef TR_ASAN
    if (!st->asan_low || (const char *)sp < st->asan_low)
        st->asan_low = (char *)sp;
#else
    (void)st, (void)sp;
#endif
}

/* Make the stack start fn(arg) at its next switch-in. */
void tr__stack_prepare(tr__stack *st, void (*fn)(void *), void *arg);

#endif
