/* timer.c - park deadlines on a per-worker timing wheel, with recycled entries. */
#include "timer.h"

#include <stddef.h>
#include <stdlib.h>

#include "runtime.h"
#include "sanitizer.h"

/*
 * Slabs grow with the worker's needs: the first holds 64 entries (4 KiB),
 * each next one as many as all before, up to 16384 entries (1 MiB), so a
 * worker with a million timers has about 70 slabs and one with a handful
 * has 4 KiB.
 */
#define SLAB_MIN 64u
#define SLAB_MAX 16384u

struct tr__timer_slab {
    struct tr__timer_slab *next;
    tr__timer entries[];
};

static tr__timer *timer_of(tr__wheel_node *n)
{
    return (tr__timer *)((char *)n - offsetof(tr__timer, node));
}

static void recycle(tr__timers *t, tr__timer *timer)
{
    timer->node.next = t->free ? &t->free->node : NULL;
    t->free = timer;
}

static int grow(tr__timers *t)
{
    uint32_t n = t->owned < SLAB_MIN ? SLAB_MIN : t->owned > SLAB_MAX ? SLAB_MAX : t->owned;
    struct tr__timer_slab *s = malloc(sizeof *s + n * sizeof(tr__timer));
    if (!s)
        return TR_ENOMEM;
    s->next = t->slabs;
    t->slabs = s;
    t->owned += n;
    for (uint32_t i = n; i-- > 0;) {
        s->entries[i].node.where = TR__WHEEL_UNARMED;
        recycle(t, &s->entries[i]);
    }
    return 0;
}

int tr__timers_add_handle(struct tr_system *sys, tr__timers *t,
                          tr_deadline deadline, struct tr_actor *a, tr_ref ref,
                          uint32_t token, tr__timer **out)
{
    /* Room first: a failed allocation then has no borrow to undo. */
    if (!t->free && grow(t))
        return TR_ENOMEM;
    if (!tr__slot_get(&sys->slots, ref, NULL))
        return TR_ENOACTOR;
    tr__timer *timer = t->free;
    t->free = timer->node.next ? timer_of(timer->node.next) : NULL;
    timer->actor = a;
    timer->ref = ref;
    timer->token = token;
    tr__wheel_arm(&t->wheel, &timer->node, deadline);
    t->len++;
    if (out)
        *out = timer;
    return 0;
}

int tr__timers_add(struct tr_system *sys, tr__timers *t, tr_deadline deadline,
                   struct tr_actor *a, tr_ref ref, uint32_t token)
{
    return tr__timers_add_handle(sys, t, deadline, a, ref, token, NULL);
}

void tr__timers_init(tr__timers *t)
{
    ck_ring_init(&t->cancels, TR__TIMER_CANCELS);
}

bool tr__timers_cancel(struct tr_system *sys, tr__timers *t, tr__timer *timer,
                       tr_ref ref, uint32_t token)
{
    /* A park is named by (ref, token): refs are never reused and tokens
     * only grow, so an entry recycled into a later park never matches. */
    if (!tr__wheel_armed(&timer->node) || timer->ref != ref || timer->token != token)
        return false;
    tr__wheel_cancel(&t->wheel, &timer->node);
    t->len--;
    struct tr_actor *a = timer->actor;
    recycle(t, timer);
    tr__ref_put(sys, ref, a, TR__SLOT_ACTOR);
    return true;
}

bool tr__timers_cancel_remote(tr__timers *t, tr__timer *timer, tr_ref ref,
                              uint32_t token)
{
    tr__timer_cancel c = {timer, ref, token};
    TR_TSAN_RELEASE(&t->cancels);
    return ck_ring_enqueue_mpsc_tr_timer_cancel(&t->cancels, t->cancel_buf, &c);
}

bool tr__timers_cancels_waiting(const tr__timers *t)
{
    return t->len && ck_ring_size(&t->cancels);
}

static void take_cancels(struct tr_system *sys, tr__timers *t)
{
    tr__timer_cancel c;
    while (ck_ring_dequeue_spsc_tr_timer_cancel(&t->cancels, t->cancel_buf, &c)) {
        TR_TSAN_ACQUIRE(&t->cancels);
        tr__timers_cancel(sys, t, c.timer, c.ref, c.token);
    }
}

void tr__timers_fire(struct tr_system *sys, tr__timers *t, int64_t now)
{
    take_cancels(sys, t);
    tr__wheel_node *n;
    while ((n = tr__wheel_pop_due(&t->wheel, now))) {
        /* Recycle before the calls: they may add or cancel timers here. */
        tr__timer due = *timer_of(n);
        recycle(t, timer_of(n));
        t->len--;
        tr__actor_timeout(due.actor, due.token);
        tr__ref_put(sys, due.ref, due.actor, TR__SLOT_ACTOR);
    }
}

tr_deadline tr__timers_next(const tr__timers *t)
{
    return tr__wheel_next(&t->wheel);
}

void tr__timers_clear(tr__timers *t)
{
    while (t->slabs) {
        struct tr__timer_slab *s = t->slabs;
        t->slabs = s->next;
        free(s);
    }
    *t = (tr__timers){0};
}
