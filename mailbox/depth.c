/* depth.c - a snapshot of how full a mailbox is, for monitoring. */
#include "../actors/runtime.h"

int tr_mailbox_depth(tr_system *sys, tr_ref ref, uint32_t *depth,
                     uint32_t *capacity)
{
    if (!sys || !depth)
        return TR_EINVAL;
    tr__hold hold;
    struct tr_mailbox *mb = tr__hold_mailbox(sys, ref, &hold);
    if (!mb)
        return TR_ENOACTOR;
    *depth = tr__mailbox_count(mb);
    if (capacity)
        *capacity = mb->ring_size - 1;
    tr__hold_release(sys, &hold);
    return 0;
}
