/* coalesce.c - the gap between drains of outside work; see coalesce.h. */
#include "coalesce.h"

#include <stddef.h>

void tr__coalesce_init(tr__coalesce *c, int64_t max_ns)
{
    *c = (tr__coalesce){.max_ns = max_ns};
    atomic_init(&c->gap_until, 0);
}

bool tr__coalesce_draining(const tr__coalesce *c)
{
    return c->last != NULL;
}

void tr__coalesce_begin(tr__coalesce *c, const void *last)
{
    c->last = last;
    c->actors = 0;
    c->queued = c->room = 0;
    c->full = false;
    /* The gap is over; looks need not read the clock again until the
     * next one is set. */
    if (tr__coalesce_gap_until(c))
        atomic_store_explicit(&c->gap_until, 0, memory_order_relaxed);
}

bool tr__coalesce_took(tr__coalesce *c, const void *node, uint32_t queued,
                       uint32_t room)
{
    c->actors++;
    c->queued += queued;
    c->room += room;
    c->full |= queued >= room;
    return node == c->last;
}

static int64_t shorter(int64_t gap)
{
    return gap / 2 > COALESCE_FIRST_NS ? gap / 2 : COALESCE_FIRST_NS;
}

static int64_t next_gap(tr__coalesce *c, int64_t now)
{
    if (!c->gap_ns) {
        /* Many actors, each with a message: spawns and wake-ups that
         * carry none are no stream to gather. */
        bool stream = c->actors >= COALESCE_MIN_ACTORS && c->queued >= c->actors &&
                      now >= c->retry_after;
        c->strikes = 0;
        return stream ? COALESCE_FIRST_NS : 0;
    }
    /* A full ring stopped the feeder until its actor ran: shorten. */
    if (c->full)
        return shorter(c->gap_ns);
    /* A thin drain may be a hiccup (the feeder was descheduled, or still
     * catching up after a full ring); many in a row mean the gap gains
     * nothing. */
    if (c->actors < COALESCE_MIN_ACTORS || 2 * c->queued < 3 * (uint64_t)c->actors) {
        if (++c->strikes < COALESCE_STRIKES)
            return c->gap_ns;
        c->retry_after = now + COALESCE_RETRY_NS;
        return 0;
    }
    c->strikes = 0;
    if (4 * c->queued < c->room)
        return 2 * c->gap_ns;
    if (2 * c->queued < c->room)
        return c->gap_ns + c->gap_ns / 4;
    if (4 * c->queued > 3 * c->room)
        return shorter(c->gap_ns);
    return c->gap_ns;
}

void tr__coalesce_end(tr__coalesce *c, int64_t now)
{
    c->last = NULL;
    if (!c->max_ns)
        return;
    int64_t gap = next_gap(c, now);
    c->gap_ns = gap < c->max_ns ? gap : c->max_ns;
    if (c->gap_ns)
        atomic_store_explicit(&c->gap_until, now + c->gap_ns, memory_order_relaxed);
}
