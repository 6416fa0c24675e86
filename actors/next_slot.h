/*
 * next_slot.h - a word that one thread (the owner) fills and empties
 * with plain accesses, and that other threads (thieves) may now and then
 * empty too: a worker's next slot (sched.c).
 *
 * The owner marks each of its accesses: a store to `busy`, a compiler
 * barrier, a load of `claim`.  No fence: on x86-64 the store may pass the
 * load.  A thief raises `claim`, then fences every running thread of the
 * process (remote_fence.h), then waits for `busy` to drop, and only then
 * exchanges the word.  The remote fence puts a full barrier somewhere in
 * the owner's execution: if the owner's store to `busy` came before it,
 * the thief sees it and waits; if its load of `claim` comes after it, the
 * owner sees the claim, and then exchanges the word as the thief does
 * (or, to fill it, gives up).  Either way the two never both take what
 * the word held.  The thief pays a remote fence (15-30 us on a 2-core
 * VM); the owner, the 5 ns a fence would cost it at every access.
 *
 * Only after tr__remote_fence_init() succeeded.  The owner's functions
 * are inline: they are on the path of every message a turn sends.
 */
#ifndef TR_NEXT_SLOT_H
#define TR_NEXT_SLOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tr_actor;

typedef struct tr__next_slot {
    _Atomic(struct tr_actor *) actor;
    _Atomic uint32_t busy;  /* the owner is at it with plain accesses */
    _Atomic uint32_t claim; /* a thief is at it */
} tr__next_slot;

/* Owner: mark an access; false if a thief is at the slot (no mark then). */
static inline bool tr__next_enter(tr__next_slot *s)
{
    atomic_store_explicit(&s->busy, 1, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst); /* only the compiler: see above */
    if (!atomic_load_explicit(&s->claim, memory_order_acquire))
        return true;
    atomic_store_explicit(&s->busy, 0, memory_order_release);
    return false;
}

static inline void tr__next_leave(tr__next_slot *s)
{
    atomic_store_explicit(&s->busy, 0, memory_order_release);
}

/* Owner: put `a` in the empty slot; false if it holds one already or a
 * thief is at it. */
static inline bool tr__next_put(tr__next_slot *s, struct tr_actor *a)
{
    if (!tr__next_enter(s))
        return false;
    bool empty = !atomic_load_explicit(&s->actor, memory_order_relaxed);
    if (empty) /* release: pairs with a thief's exchange */
        atomic_store_explicit(&s->actor, a, memory_order_release);
    tr__next_leave(s);
    return empty;
}

/* Owner: empty the slot; what it held, or NULL. */
static inline struct tr_actor *tr__next_take(tr__next_slot *s)
{
    if (!atomic_load_explicit(&s->actor, memory_order_relaxed))
        return NULL; /* only the owner fills it: a look without marks will do */
    struct tr_actor *a;
    if (tr__next_enter(s)) {
        a = atomic_load_explicit(&s->actor, memory_order_relaxed);
        atomic_store_explicit(&s->actor, NULL, memory_order_relaxed);
        tr__next_leave(s);
    } else {
        a = atomic_exchange(&s->actor, NULL); /* a thief is at it */
    }
    return a;
}

/* Anyone: whether the slot looks empty (a hint). */
static inline bool tr__next_empty(tr__next_slot *s)
{
    return !atomic_load_explicit(&s->actor, memory_order_relaxed);
}

/* Thief: empty the slot; what it held, or NULL (also when another thief
 * is at it, or the remote fence failed). */
struct tr_actor *tr__next_steal(tr__next_slot *s);

#endif
