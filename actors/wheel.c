/* wheel.c - the hierarchical timing wheel (see wheel.h for the design). */
#include "wheel.h"

#include <string.h>

#define LEVEL_MASK (TR__WHEEL_SLOTS - 1)

static uint64_t tick_of(int64_t t)
{
    return t < 0 ? 0 : (uint64_t)t >> TR__WHEEL_TICK_SHIFT;
}

/* The first tick of slot `i` of level `level`, in the block of `tick`. */
static uint64_t slot_start(uint64_t tick, unsigned level, unsigned i)
{
    unsigned shift = level * TR__WHEEL_LEVEL_BITS;
    uint64_t above = tick & ~((1ull << (shift + TR__WHEEL_LEVEL_BITS)) - 1);
    return above | (uint64_t)i << shift;
}

/* The total order of expiry: deadline, then arming order. */
static bool before(const tr__wheel_node *a, const tr__wheel_node *b)
{
    return a->deadline < b->deadline ||
           (a->deadline == b->deadline && a->seq < b->seq);
}

static void push(tr__wheel *w, tr__wheel_node *n, uint32_t where)
{
    n->where = where;
    n->prev = NULL;
    n->next = w->list[where];
    if (n->next)
        n->next->prev = n;
    w->list[where] = n;
}

/* Put `n` where its tick belongs relative to the current position. */
static void place(tr__wheel *w, tr__wheel_node *n)
{
    uint64_t t = tick_of(n->deadline);
    if (t <= w->tick) {
        /* Pushed in front, so the list stays sorted only if it was empty;
         * pop_due sorts it once before it takes from it. */
        if (!w->list[TR__WHEEL_DUE]) {
            w->due_sorted = true;
            w->due_min = n->deadline;
        } else {
            w->due_sorted = false;
            if (n->deadline < w->due_min)
                w->due_min = n->deadline;
        }
        push(w, n, TR__WHEEL_DUE);
        return;
    }
    /* t > tick: the highest differing digit names the level, and t's digit
     * there is above tick's, so the slot is ahead of the position. */
    unsigned level = (63 - (unsigned)__builtin_clzll(t ^ w->tick)) / TR__WHEEL_LEVEL_BITS;
    unsigned i = (unsigned)(t >> (level * TR__WHEEL_LEVEL_BITS)) & LEVEL_MASK;
    w->occupied[level] |= 1ull << i;
    push(w, n, TR__WHEEL_SLOT0 + level * TR__WHEEL_SLOTS + i);
}

void tr__wheel_init(tr__wheel *w, int64_t now)
{
    memset(w, 0, sizeof *w);
    w->tick = tick_of(now);
}

void tr__wheel_arm(tr__wheel *w, tr__wheel_node *n, int64_t deadline)
{
    n->deadline = deadline;
    n->seq = w->seq++;
    place(w, n);
}

void tr__wheel_cancel(tr__wheel *w, tr__wheel_node *n)
{
    uint32_t where = n->where;
    if (where == TR__WHEEL_UNARMED)
        return;
    if (n->next)
        n->next->prev = n->prev;
    if (n->prev) {
        n->prev->next = n->next;
    } else {
        w->list[where] = n->next;
        if (where >= TR__WHEEL_SLOT0 && !n->next) {
            unsigned s = where - TR__WHEEL_SLOT0;
            w->occupied[s / TR__WHEEL_SLOTS] &= ~(1ull << (s % TR__WHEEL_SLOTS));
        } else if (where == TR__WHEEL_DUE && n->next && w->due_sorted) {
            w->due_min = n->next->deadline; /* the new head is the minimum */
        }
    }
    n->next = n->prev = NULL;
    n->where = TR__WHEEL_UNARMED;
}

static tr__wheel_node *merge(tr__wheel_node *a, tr__wheel_node *b)
{
    tr__wheel_node *head = NULL, **tail = &head;
    while (a && b) {
        tr__wheel_node **first = before(b, a) ? &b : &a;
        *tail = *first;
        tail = &(*first)->next;
        *first = (*first)->next;
    }
    *tail = a ? a : b;
    return head;
}

/*
 * Sort the due list: a bottom-up merge sort on the next links (bins[i]
 * holds a sorted run of 2^i nodes, as in a binary counter), then the prev
 * links are rebuilt.  O(k log k) for k due nodes, no allocation.  The due
 * list is normally one tick's worth of nodes, so k is small.
 */
static void sort_due(tr__wheel *w)
{
    tr__wheel_node *bins[64] = {0}, *n = w->list[TR__WHEEL_DUE];
    unsigned top = 0;
    while (n) {
        tr__wheel_node *run = n;
        n = n->next;
        run->next = NULL;
        unsigned i = 0;
        for (; bins[i]; i++) {
            run = merge(bins[i], run);
            bins[i] = NULL;
        }
        bins[i] = run;
        if (i > top)
            top = i;
    }
    tr__wheel_node *sorted = NULL;
    for (unsigned i = 0; i <= top; i++)
        sorted = merge(bins[i], sorted);
    tr__wheel_node *prev = NULL;
    for (n = sorted; n; prev = n, n = n->next)
        n->prev = prev;
    w->list[TR__WHEEL_DUE] = sorted;
    w->due_sorted = true;
    w->due_min = sorted->deadline;
}

/* The lowest level with a non-empty slot, or TR__WHEEL_LEVELS. */
static unsigned lowest_level(const tr__wheel *w)
{
    unsigned level = 0;
    while (level < TR__WHEEL_LEVELS && !w->occupied[level])
        level++;
    return level;
}

/*
 * With the due list empty: move the position to the earliest non-empty
 * slot if it starts at or before tick `until`, and re-place its nodes
 * (a level-0 slot's all go to the due list; a higher slot's fall to lower
 * levels).  Returns false when no slot starts by then; the position then
 * jumps straight to `until`, which keeps every node ahead of it.
 *
 * Why moving to that slot's start is safe: the levels below are empty,
 * and the start lies in the same block of every higher level as the old
 * position, so the nodes there stay ahead of the new one.
 */
static bool advance(tr__wheel *w, uint64_t until)
{
    unsigned level = lowest_level(w);
    uint64_t start = UINT64_MAX;
    unsigned i = 0;
    if (level < TR__WHEEL_LEVELS) {
        i = (unsigned)__builtin_ctzll(w->occupied[level]);
        start = slot_start(w->tick, level, i);
    }
    if (start > until) {
        if (until > w->tick)
            w->tick = until;
        return false;
    }
    w->tick = start;
    w->occupied[level] &= ~(1ull << i);
    tr__wheel_node **slot = &w->list[TR__WHEEL_SLOT0 + level * TR__WHEEL_SLOTS + i];
    tr__wheel_node *n = *slot;
    *slot = NULL;
    while (n) {
        tr__wheel_node *next = n->next;
        place(w, n);
        n = next;
    }
    return true;
}

tr__wheel_node *tr__wheel_pop_due(tr__wheel *w, int64_t now)
{
    uint64_t until = tick_of(now);
    for (;;) {
        tr__wheel_node *n = w->list[TR__WHEEL_DUE];
        if (n) {
            if (!w->due_sorted) {
                sort_due(w);
                n = w->list[TR__WHEEL_DUE];
            }
            /* Everything in the slots is later than the whole due list. */
            if (n->deadline > now)
                return NULL;
            tr__wheel_cancel(w, n);
            return n;
        }
        if (!advance(w, until))
            return NULL;
    }
}

/*
 * The earliest node is in the earliest slot.  If that slot holds few
 * nodes, their minimum is exact and a sleeper wakes once, on time; a
 * crowded slot gives its start instead (a scan could be long), where the
 * wake-up to cascade it is shared by all its nodes.
 */
#define EXACT_SCAN 16

int64_t tr__wheel_next(const tr__wheel *w)
{
    if (w->list[TR__WHEEL_DUE])
        return w->due_min;
    unsigned level = lowest_level(w);
    if (level == TR__WHEEL_LEVELS)
        return INT64_MAX;
    unsigned i = (unsigned)__builtin_ctzll(w->occupied[level]);
    const tr__wheel_node *n = w->list[TR__WHEEL_SLOT0 + level * TR__WHEEL_SLOTS + i];
    int64_t min = INT64_MAX;
    for (unsigned seen = 0; n && seen < EXACT_SCAN; n = n->next, seen++)
        if (n->deadline < min)
            min = n->deadline;
    if (!n)
        return min;
    return (int64_t)(slot_start(w->tick, level, i) << TR__WHEEL_TICK_SHIFT);
}
