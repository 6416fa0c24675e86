/* hazard.c - hazard words of threads that are not workers; see hazard.h. */
#include "hazard.h"

#include <sched.h>

#include "runtime.h"

static __thread struct {
    const struct tr_system *sys;
    uint64_t serial;
    _Atomic tr_ref *word;
} tls_hazard;

_Atomic tr_ref *tr__foreign_hazard(struct tr_system *sys)
{
    if (tls_hazard.sys == sys && tls_hazard.serial == sys->serial)
        return tls_hazard.word;
    unsigned i = atomic_fetch_add(&sys->nforeign, 1);
    if (i >= TR__FOREIGN_HAZARDS)
        atomic_store(&sys->nforeign, TR__FOREIGN_HAZARDS); /* no wrap */
    tls_hazard.sys = sys;
    tls_hazard.serial = sys->serial;
    /* None left stays none: slots are never given back. */
    tls_hazard.word = i < TR__FOREIGN_HAZARDS ? &sys->foreign[i].ref : NULL;
    return tls_hazard.word;
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
