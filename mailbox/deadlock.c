/* deadlock.c - cycles of full mailboxes; see deadlock.h. */
#include "deadlock.h"

#include "../actors/runtime.h"

bool tr__deadlock_enter(struct tr_actor *self, struct tr_mailbox *mb)
{
    tr_system *sys = self->mbox.sys;
    if (mb->sys != sys)
        return false; /* another system's refs mean nothing in ours */
    atomic_store(&self->waiting_on, mb->ref); /* seq_cst: before our look */
    /* Walk by refs and borrows: any actor on the chain may exit and be
     * freed while we look, and a borrow keeps the one we read alive. */
    tr_ref owner = mb->owner ? mb->owner->mbox.ref : TR_REF_NONE;
    for (unsigned hop = 0; owner && hop < TR__DEADLOCK_MAX_HOPS; hop++) {
        if (owner == self->mbox.ref)
            return true;
        uint8_t kind;
        struct tr_actor *a = tr__slot_get(&sys->slots, owner, &kind);
        if (!a)
            return false;
        tr_ref next = TR_REF_NONE;
        if (kind == TR__SLOT_ACTOR)
            next = atomic_load(&a->waiting_on);
        tr__ref_put(sys, owner, a, kind);
        owner = next ? tr__mailbox_owner_ref(sys, next) : TR_REF_NONE;
    }
    return false;
}

void tr__deadlock_leave(struct tr_actor *a)
{
    atomic_store_explicit(&a->waiting_on, TR_REF_NONE, memory_order_relaxed);
}
