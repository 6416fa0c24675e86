/* timer.c - a per-worker binary min-heap of park deadlines. */
#include "timer.h"

#include <stdlib.h>

#include "runtime.h"

static void swap(tr__timer *a, tr__timer *b)
{
    tr__timer t = *a;
    *a = *b;
    *b = t;
}

int tr__timers_add(struct tr_system *sys, tr__timers *t, tr_deadline deadline,
                   struct tr_actor *a, tr_ref ref, uint32_t token)
{
    if (t->len == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 64;
        tr__timer *heap = realloc(t->heap, cap * sizeof *heap);
        if (!heap)
            return TR_ENOMEM;
        t->heap = heap;
        t->cap = cap;
    }
    if (!tr__slot_get(&sys->slots, ref, NULL))
        return TR_ENOACTOR;
    uint32_t i = t->len++;
    t->heap[i] = (tr__timer){deadline, a, ref, token};
    while (i > 0 && t->heap[(i - 1) / 2].deadline > t->heap[i].deadline) {
        swap(&t->heap[(i - 1) / 2], &t->heap[i]);
        i = (i - 1) / 2;
    }
    return 0;
}

static tr__timer pop_min(tr__timers *t)
{
    tr__timer min = t->heap[0];
    t->heap[0] = t->heap[--t->len];
    for (uint32_t i = 0;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < t->len && t->heap[l].deadline < t->heap[m].deadline)
            m = l;
        if (r < t->len && t->heap[r].deadline < t->heap[m].deadline)
            m = r;
        if (m == i)
            break;
        swap(&t->heap[i], &t->heap[m]);
        i = m;
    }
    return min;
}

void tr__timers_fire(struct tr_system *sys, tr__timers *t, int64_t now)
{
    while (t->len && t->heap[0].deadline <= now) {
        tr__timer due = pop_min(t);
        tr__actor_timeout(due.actor, due.token);
        tr__ref_put(sys, due.ref, due.actor, TR__SLOT_ACTOR);
    }
}

tr_deadline tr__timers_next(const tr__timers *t)
{
    return t->len ? t->heap[0].deadline : TR_FOREVER;
}

void tr__timers_clear(tr__timers *t)
{
    free(t->heap);
    *t = (tr__timers){0};
}
