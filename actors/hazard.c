/* hazard.c - hazard words of threads that are not workers; see hazard.h. */
#include "hazard.h"

#include <sched.h>
#include <stdint.h>

#include "runtime.h"
#include "tls.h"

/* The systems this thread used last, and its word in each. */
#define CACHED 4

static TR__THREAD_LOCAL struct {
    const struct tr_system *sys;
    uint64_t serial;
    _Atomic tr_ref *word;
} tls_hazards[CACHED];
static TR__THREAD_LOCAL unsigned tls_next;

/* Who a word belongs to: the address of this thread's cache, unique among
 * the threads alive.  A thread that reuses an ended one's address takes
 * over its word, which no one else can be using. */
static uintptr_t me(void)
{
    return (uintptr_t)&tls_hazards[0];
}

/* This thread's word in `sys`, found or handed out; NULL if none is left. */
static _Atomic tr_ref *claim(struct tr_system *sys)
{
    unsigned n = atomic_load(&sys->nforeign);
    for (unsigned i = 0; i < n && i < TR__FOREIGN_HAZARDS; i++)
        if (atomic_load_explicit(&sys->foreign[i].owner, memory_order_relaxed) == me())
            return &sys->foreign[i].ref;
    unsigned i = atomic_fetch_add(&sys->nforeign, 1);
    if (i >= TR__FOREIGN_HAZARDS) {
        atomic_store(&sys->nforeign, TR__FOREIGN_HAZARDS); /* no wrap */
        return NULL;
    }
    atomic_store_explicit(&sys->foreign[i].owner, me(), memory_order_relaxed);
    return &sys->foreign[i].ref;
}

/* A miss: a system not used lately, or made where a freed one was.
 * None left stays none: words are never given back.  Out of line, so that
 * the hit, at every send from the thread, is a short function. */
static __attribute__((noinline)) _Atomic tr_ref *cache_miss(struct tr_system *sys)
{
    unsigned i = tls_next++ % CACHED;
    tls_hazards[i].sys = sys;
    tls_hazards[i].serial = sys->serial;
    tls_hazards[i].word = claim(sys);
    return tls_hazards[i].word;
}

_Atomic tr_ref *tr__foreign_hazard(struct tr_system *sys)
{
    uint64_t serial = sys->serial;
    for (__typeof__(&tls_hazards[0]) h = tls_hazards; h < tls_hazards + CACHED; h++)
        if (h->sys == sys && h->serial == serial)
            return h->word;
    return cache_miss(sys);
}

void tr__hazard_wait(struct tr_system *sys, tr_ref ref)
{
    /* seq_cst loads: they pair with the announcing store in a send (see
     * tr__hold_ref); the holder is never parked, only busy for a few
     * instructions, or preempted. */
    for (unsigned i = 0; i < sys->nworkers; i++)
        while (atomic_load(&sys->workers[i].hazard) == ref)
            sched_yield();
    unsigned n = atomic_load(&sys->nforeign);
    for (unsigned i = 0; i < n && i < TR__FOREIGN_HAZARDS; i++)
        while (atomic_load(&sys->foreign[i].ref) == ref)
            sched_yield();
}
