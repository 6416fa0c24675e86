/* depth.c - a snapshot of how full a mailbox is, for monitoring. */
#include "../actors/runtime.h"

int tr_mailbox_depth(tr_system *sys, tr_ref ref, uint32_t *depth,
                     uint32_t *capacity)
{
    if (!sys || !depth)
        return TR_EINVAL;
    uint8_t kind;
    void *obj;
    struct tr_mailbox *mb = tr__mailbox_borrow(sys, ref, &obj, &kind);
    if (!mb)
        return TR_ENOACTOR;
    *depth = tr__mailbox_count(mb);
    if (capacity)
        *capacity = mb->ring_size - 1;
    tr__ref_put(sys, ref, obj, kind);
    return 0;
}
