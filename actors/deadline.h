/* deadline.h - whether a tr_deadline has come. */
#ifndef TR_DEADLINE_H
#define TR_DEADLINE_H

#include <stdbool.h>

#include "troupe/time.h"

/* True once `deadline` has come: TR_NOW and any past time at once,
 * TR_FOREVER never. */
static inline bool tr__deadline_passed(tr_deadline deadline)
{
    return deadline <= 0 || (deadline != TR_FOREVER && tr_now() >= deadline);
}

#endif
