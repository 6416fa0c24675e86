/* signal.c - queueing, taking and sending exit and DOWN notices; see signal.h. */
#include "signal.h"

#include <stdlib.h>

#include "../actors/runtime.h"

/* Under a's lock: a ends because a linked actor ended as notice `m` says. */
static void mark_killed(struct tr_actor *a, const tr_msg *m)
{
    /* The first such exit names the reason; 0 means "not killed". */
    if (!atomic_load_explicit(&a->kill_reason, memory_order_relaxed)) {
        atomic_store_explicit(&a->kill_reason, tr__notice_reason(m), memory_order_relaxed);
        a->kill_detail = tr__detail_hold(tr__notice_detail(m));
    }
    atomic_store(&a->cancelled, true); /* seq_cst: before the interrupt */
}

/*
 * Exit notice `m` reaches a receiver that does not trap: the receiver's
 * half of the link ends, and if it was still there and the reason is not
 * 0, the receiver ends too.  The ending actor may have taken its link set
 * just before a tr_unlink could take the receiver off it, so only the
 * receiver's half tells whether the link still holds.  Both steps are
 * under the receiver's lock, where tr_unlink drops that half: an unlink
 * that comes first prevents the kill, one that comes after finds the
 * receiver cancelled already (tr_cancelled says so when it returns).
 */
static void obey_exit(struct tr_actor *a, const tr_msg *m)
{
    tr__spin_lock(&a->sig_lock);
    bool kill = tr__refmap_del(&a->sig.links, m->from, NULL) && tr__notice_reason(m) != 0;
    if (kill)
        mark_killed(a, m);
    tr__spin_unlock(&a->sig_lock);
    if (kill)
        tr__actor_interrupt(a);
}

/* Whether a notice concerns a non-trapping receiver: exits only kill. */
static bool delivered_as_message(struct tr_actor *a, const tr_msg *m)
{
    return m->tag != TR_TAG_EXIT || atomic_load(&a->trap_exits);
}

_Static_assert(sizeof(tr__signal) <= TR__NODE_BYTES, "a signal is a pool node");

/* Drop queued signals, releasing what they carry (details). */
static void free_list(tr_system *sys, tr__signal *s)
{
    for (tr__signal *next; s && s != TR__SIGNALS_CLOSED; s = next) {
        next = s->next;
        tr_msg_release(&s->msg);
        tr__free(sys, TR__POOL_NODE, s);
    }
}

/* The owner's list head.  Written by the owner only, but read as a hint
 * by a worker that has just let the actor go idle (tr__signal_pending),
 * so it is written with atomic stores. */
static void set_first(struct tr_actor *a, tr__signal *s)
{
    __atomic_store_n(&a->sig.first, s, __ATOMIC_RELAXED);
}

/* Push s onto a's inbox; false if a has ended (s is then the caller's). */
static bool push(struct tr_actor *a, tr__signal *s)
{
    tr__signal *top = atomic_load_explicit(&a->sig.inbox, memory_order_relaxed);
    do {
        if (top == TR__SIGNALS_CLOSED)
            return false;
        s->next = top;
    } while (!atomic_compare_exchange_weak_explicit(&a->sig.inbox, &top, s,
                                                    memory_order_release,
                                                    memory_order_relaxed));
    return true;
}

/* Move what senders pushed to the end of the owner's list, oldest first. */
static void collect(struct tr_actor *a)
{
    if (!atomic_load_explicit(&a->sig.inbox, memory_order_relaxed))
        return;
    tr__signal *s = atomic_exchange_explicit(&a->sig.inbox, NULL, memory_order_acquire);
    tr__signal *oldest = NULL, *newest = s;
    /* Each exit ends a link when it is taken, and a supervisor of many
     * children has a table far bigger than the cache: start loading
     * those slots now, all at once (cancel: 39.5 -> 37.6 ms over 12
     * runs).  Others add links under the lock. */
    tr__spin_lock(&a->sig_lock);
    while (s) {
        tr__signal *next = s->next;
        s->next = oldest;
        oldest = s;
        if (s->msg.tag == TR_TAG_EXIT)
            tr__refmap_prefetch(&a->sig.links, s->msg.from);
        s = next;
    }
    tr__spin_unlock(&a->sig_lock);
    if (a->sig.last)
        a->sig.last->next = oldest;
    else
        set_first(a, oldest);
    a->sig.last = newest;
}

/*
 * Queue notice `m` for `to` (an actor ref); dropped if it has ended, or
 * if there is no memory for it (false then).  It is consumed either way.
 * An exit (from a linked actor) also ends the link on the receiver's
 * side: a trapping receiver drops it when it takes the notice, any other
 * right here (obey_exit).
 */
static bool send_signal(tr_system *sys, tr_ref to, tr_msg *m)
{
    bool done = true;
    tr__hold hold;
    struct tr_actor *a = tr__hold_ref(sys, tr__worker_now(), to, &hold);
    if (!a)
        goto drop;
    if (hold.kind != TR__SLOT_ACTOR)
        goto release;
    if (!delivered_as_message(a, m)) {
        obey_exit(a, m);
        goto release;
    }
    tr__signal *s = tr__alloc(sys, TR__POOL_NODE);
    if (!s) { /* nowhere to keep it: the receiver's watch is lost (rare) */
        done = false;
        goto release;
    }
    s->msg = *m;
    if (push(a, s)) {
        tr__mailbox_notify(&a->mbox); /* wakes it like a message would */
        tr__hold_release(sys, &hold);
        return true;
    }
    tr__free(sys, TR__POOL_NODE, s);
release:
    tr__hold_release(sys, &hold);
drop:
    tr_msg_release(m);
    return done;
}

/*
 * Trapped exit notice `m` is taken: the receiver's half of the link ends,
 * and the notice, with that half's tag, is delivered only if the half was
 * still there.  As for obey_exit, the ender may have taken its link set
 * just before a tr_unlink, so only this half tells whether the link still
 * holds: once tr_unlink has returned, no exit of that link arrives, not
 * even one queued before.  (Linking an ended actor keeps our half for the
 * TR_ENOACTOR notice it queues.)
 */
static bool end_link(struct tr_actor *a, tr_msg *m)
{
    uint32_t tag;
    if (!tr__link_drop(a, m->from, &tag))
        return false;
    tr__notice_set_tag(m, tag);
    return true;
}

bool tr__signal_take(struct tr_actor *a, tr_msg *out)
{
    for (;;) {
        if (!a->sig.first)
            collect(a);
        tr__signal *s = a->sig.first;
        if (!s)
            return false;
        set_first(a, s->next);
        if (!s->next)
            a->sig.last = NULL;
        tr_msg m = s->msg;
        tr__free(a->mbox.sys, TR__POOL_NODE, s);
        /* Trapping may have been turned off since it was queued. */
        if (!delivered_as_message(a, &m)) {
            obey_exit(a, &m);
        } else if (m.tag != TR_TAG_EXIT || end_link(a, &m)) {
            *out = m;
            return true;
        }
        tr_msg_release(&m);
    }
}

/* Tell each linked actor that `self` ended; frees the map. */
static void tell_links(tr_system *sys, tr_ref self, tr__refmap *links, int reason,
                       tr__detail *detail)
{
    tr_ref few[8]; /* most actors have a link or two: no allocation */
    tr_ref *keys = links->len <= 8 ? few : malloc(links->len * sizeof *keys);
    /* Out of memory for the list: the linked actors are not told (rare;
     * their own exits still reach us, harmlessly, as we are gone). */
    size_t n = keys ? tr__refmap_keys(links, keys) : 0;
    for (size_t i = 0; i < n; i++) {
        tr_msg m = tr__notice(TR_TAG_EXIT, self, TR_REF_NONE, reason, detail);
        send_signal(sys, keys[i], &m);
    }
    if (keys != few)
        free(keys);
    tr__refmap_free(links);
}

/* Take the last monitor off a's list and send its DOWN, both under a's
 * lock (see tell_monitors); false if none was left. */
static bool tell_one_monitor(struct tr_actor *a, int reason)
{
    tr__spin_lock(&a->sig_lock);
    bool any = a->sig.nmonitors > 0;
    if (any) {
        tr__monitor w = a->sig.monitors[--a->sig.nmonitors];
        tr_msg m = tr__notice(TR_TAG_DOWN, a->mbox.ref, w.id, reason, a->detail);
        send_signal(a->mbox.sys, w.watcher, &m);
    }
    tr__spin_unlock(&a->sig_lock);
    return any;
}

/*
 * Unlike the links, the monitors are not taken all at once: each stays on
 * the list until its DOWN is pushed, and both happen under the lock that
 * tr_demonitor searches the list under.  So a demonitor either removes
 * the monitor before its DOWN exists or finds the DOWN already queued for
 * it (and takes it out); with the list taken first, a demonitor in
 * between found neither and its DOWN came afterwards.  The cost is a lock
 * round trip per DOWN, on a lock that only demonitors still take.  The
 * send under it never waits, and on a worker (where actors end) it holds
 * the watcher by hazard, so it destroys nothing there.  From the end of
 * the list: each one O(1).
 */
static void tell_monitors(struct tr_actor *a, int reason)
{
    while (tell_one_monitor(a, reason))
        ;
    tr__spin_lock(&a->sig_lock);
    tr__monitor *monitors = a->sig.monitors;
    a->sig.monitors = NULL;
    a->sig.monitors_cap = 0;
    tr__spin_unlock(&a->sig_lock);
    free(monitors);
}

void tr__signal_exit(struct tr_actor *a, int reason)
{
    tr_system *sys = a->mbox.sys;
    tr_ref self = a->mbox.ref;
    tr__spin_lock(&a->sig_lock);
    a->sig.exited = true; /* no monitor is added from now on */
    tr__refmap links = a->sig.links;
    bool watched = a->sig.monitors != NULL;
    a->sig.links = (tr__refmap){0};
    tr__spin_unlock(&a->sig_lock);
    /* Nobody reads them now: what was sent to us is dropped. */
    free_list(sys, atomic_exchange(&a->sig.inbox, TR__SIGNALS_CLOSED));
    if (a->sig.first) {
        free_list(sys, a->sig.first);
        set_first(a, NULL);
        a->sig.last = NULL;
    }
    /* Most actors end watched by nobody: no calls then (bench/spawn). */
    if (links.slots)
        tell_links(sys, self, &links, reason, a->detail);
    if (watched)
        tell_monitors(a, reason);
}

bool tr__signal_exit_now(tr_system *sys, tr_ref watcher, tr_ref target)
{
    tr_msg m = tr__notice(TR_TAG_EXIT, target, TR_REF_NONE, TR_ENOACTOR, NULL);
    return send_signal(sys, watcher, &m);
}

void tr__signal_down_now(tr_system *sys, tr_ref watcher, tr_ref target, tr_ref id)
{
    tr_msg m = tr__notice(TR_TAG_DOWN, target, id, TR_ENOACTOR, NULL);
    send_signal(sys, watcher, &m);
}

bool tr__signal_unqueue_down(struct tr_actor *a, tr_ref id)
{
    collect(a);
    for (tr__signal **p = &a->sig.first, *prev = NULL; *p; prev = *p, p = &(*p)->next) {
        tr__signal *s = *p;
        tr_notice n;
        if (s->msg.tag == TR_TAG_DOWN && !tr_notice_read(&s->msg, &n) && n.monitor == id) {
            __atomic_store_n(p, s->next, __ATOMIC_RELAXED); /* p may be &first */
            if (a->sig.last == s)
                a->sig.last = prev;
            tr_msg_release(&s->msg);
            tr__free(a->mbox.sys, TR__POOL_NODE, s);
            return true;
        }
    }
    return false;
}

void tr__signal_destroy(struct tr_actor *a)
{
    if (a->sig.exited)
        return; /* tr__signal_exit freed it all and closed the inbox */
    free_list(a->mbox.sys, atomic_load_explicit(&a->sig.inbox, memory_order_relaxed));
    free_list(a->mbox.sys, a->sig.first);
    tr__refmap_free(&a->sig.links);
    free(a->sig.monitors);
    a->sig = (tr__signals){.exited = false};
}
