/* deadlock.c - cycles of full mailboxes; see deadlock.h. */
#include "deadlock.h"

#include "../actors/runtime.h"

bool tr__deadlock_enter(_Atomic tr_ref *self, struct tr_mailbox *mb)
{
    tr_system *sys = mb->sys;
    atomic_store(self, mb->ref); /* seq_cst: before our look */
    /* Walk by refs and borrows: any owner on the chain may end and be
     * freed while we look, and a borrow of its mailbox keeps it alive
     * while we read its word.  Refs of another system (a thread may wait
     * in any) find nothing here. */
    _Atomic tr_ref *owner = tr__mailbox_owner_waiting(mb);
    tr_ref held = TR_REF_NONE;
    void *obj = NULL;
    uint8_t kind = 0;
    bool cycle = false;
    for (unsigned hop = 0; hop < TR__DEADLOCK_MAX_HOPS; hop++) {
        if (owner == self) {
            cycle = true;
            break;
        }
        tr_ref next = atomic_load(owner);
        if (held)
            tr__ref_put(sys, held, obj, kind);
        held = TR_REF_NONE;
        struct tr_mailbox *next_mb = next ? tr__mailbox_borrow(sys, next, &obj, &kind) : NULL;
        if (!next_mb)
            break;
        held = next;
        owner = tr__mailbox_owner_waiting(next_mb);
    }
    if (held)
        tr__ref_put(sys, held, obj, kind);
    return cycle;
}

void tr__deadlock_leave(_Atomic tr_ref *word)
{
    atomic_store_explicit(word, TR_REF_NONE, memory_order_relaxed);
}
