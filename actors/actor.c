/*
 * actor.c - an actor's life: spawn, turns, exit and destruction.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

/* Five cache lines: one more field made bench/idle 357 -> 416 bytes an
 * actor (the pool rounds blocks up to lines).  Fill the holes first. */
_Static_assert(sizeof(struct tr_actor) <= 5 * TR__CACHELINE, "an actor is five lines");

/* Smallest private stack a loop actor may ask for. */
#define MIN_STACK (64 * 1024)

/* Make the actor; `own` is the calling worker if it is one of sys's. */
static int build(tr_system *sys, tr__worker *own, tr_handler handler, tr_body body,
                 const tr_spawn_opts *o, uint32_t ring_size, tr_ref *out)
{
    int rc = TR_ENOMEM;
    struct tr_actor *a = tr__alloc_on(sys, own, TR__POOL_ACTOR);
    if (!a)
        return TR_ENOMEM;
    memset(a, 0, sizeof *a);
    tr__mailbox_init(&a->mbox, sys, ring_size, a, &a->scheduled, TR_ENOACTOR);
    if (o->name && !(a->name = strdup(o->name)))
        goto free_actor;
    if (body && o->stack_size &&
        !(a->stack = tr__stack_new(o->stack_size, sys->cfg.stack_guard)))
        goto free_name;
    if (o->cleanup && tr__actor_defer(a, o->cleanup, o->cleanup_arg))
        goto free_stack;
    a->handler = handler;
    a->body = body;
    a->state = o->state;
    /* A handler actor idles until its first message; a body starts now. */
    atomic_init(&a->scheduled, body ? 1 : 0);
    atomic_init(&a->park_token, 1); /* odd: not in a wait */
    rc = tr__slot_alloc(&sys->slots, tr__slot_cache_on(own), a, TR__SLOT_ACTOR, &a->mbox.ref);
    if (rc)
        goto free_stack;
    if (out)
        *out = a->mbox.ref;
    if (body)
        tr__schedule(sys, a);
    return 0;

free_stack:
    tr__actor_drop_cleanups(a); /* not run: the caller keeps arg */
    tr__stack_free(a->stack);
free_name:
    free(a->name);
free_actor:
    tr__free_on(sys, own, TR__POOL_ACTOR, a);
    return rc;
}

/*
 * A spawn from a thread that is not one of the system's workers: it
 * counts itself while it is inside, and shutdown waits for the count
 * before it tears the actors down, so no actor is published under its
 * walk of the slots (and left out of it) or freed while being made.  The
 * count comes before the look at `stopping`, both seq_cst, and shutdown
 * stores `stopping` before it reads the count: either the spawn sees it
 * stopping, or shutdown sees the spawn.  A body is runnable at once, so
 * it may first have to wait for the workers (backlog.h); workers never
 * wait there, not even another system's: a worker must not block.
 */
static int spawn_from_outside(tr_system *sys, tr__worker *w, tr_handler handler,
                              tr_body body, const tr_spawn_opts *o, uint32_t ring_size,
                              tr_ref *out)
{
    atomic_fetch_add(&sys->outside_spawns, 1);
    int rc = atomic_load(&sys->stopping) ? TR_ESHUTDOWN : 0;
    if (!rc && body && !w && tr__backlog_over(&sys->backlog))
        rc = tr__backlog_wait(&sys->backlog, o->deadline, &sys->stopping);
    if (!rc)
        rc = build(sys, NULL, handler, body, o, ring_size, out);
    atomic_fetch_sub(&sys->outside_spawns, 1);
    return rc;
}

static int spawn(tr_system *sys, tr_handler handler, tr_body body,
                 const tr_spawn_opts *opts, tr_ref *out)
{
    tr_spawn_opts o = opts ? *opts : TR_SPAWN_OPTS_INIT;

    if (!sys)
        return TR_EINVAL;
    if (atomic_load_explicit(&sys->stopping, memory_order_relaxed))
        return TR_ESHUTDOWN;
    uint32_t ring_size = tr__mailbox_ring_size(sys, o.mailbox_capacity);
    if (!ring_size)
        return TR_EINVAL;
    /* A handler runs on the shared stacks; only a loop keeps its own. */
    if (handler && o.stack_size > sys->cfg.stack_size)
        return TR_EINVAL;
    if (body && o.stack_size && o.stack_size < MIN_STACK)
        return TR_EINVAL;
    tr__worker *w = tr__worker_now(); /* no switch in here: once is enough */
    if (w && w->sys == sys)
        return build(sys, w, handler, body, &o, ring_size, out);
    return spawn_from_outside(sys, w, handler, body, &o, ring_size, out);
}

int tr_spawn(tr_system *sys, tr_handler handler, const tr_spawn_opts *opts,
             tr_ref *out)
{
    return handler ? spawn(sys, handler, NULL, opts, out) : TR_EINVAL;
}

int tr_spawn_loop(tr_system *sys, tr_body body, const tr_spawn_opts *opts,
                  tr_ref *out)
{
    return body ? spawn(sys, NULL, body, opts, out) : TR_EINVAL;
}

void tr__actor_finish(struct tr_actor *a)
{
    tr_system *sys = a->mbox.sys;
    /* `scheduled` stays 1 for good: no sender will queue a dead actor. */
    tr__mailbox_close(&a->mbox);
    tr__actor_free_mailboxes(a);
    tr__signal_exit(a, a->exit_reason);
    if (tr__slot_kill(&sys->slots, a->mbox.ref))
        tr__actor_destroy(a);
}

void tr__actor_destroy(struct tr_actor *a)
{
    tr_system *sys = a->mbox.sys;
    /* A worker that just let the actor go idle (run_turn) or is sending
     * to it may still be looking at its mailbox. */
    tr__hazard_wait(sys, a->mbox.ref);
    /* An actor that ended has run these already; one the system stops
     * while it is parked runs them here, outside any actor, and the
     * payload it was waiting to send is released. */
    if (a->cleanups)
        tr__actor_run_cleanups(a);
    if (a->outgoing)
        tr_msg_release(a->outgoing);
    tr__select_release_unsent(a->outgoing_cases, a->noutgoing_cases);
    tr__mailbox_destroy(&a->mbox);
    tr__signal_destroy(a);
    tr__detail_drop(a->detail);
    tr__detail_drop(a->kill_detail);
    tr__worker *own = tr__own_worker(sys);
    tr__slot_release(&sys->slots, tr__slot_cache_on(own), a->mbox.ref);
    tr__stack_free(a->stack);
    free(a->name);
    tr__free_on(sys, own, TR__POOL_ACTOR, a);
}

/* A linked actor's exit that ended this one names the reason, and its
 * detail replaces the actor's own. */
static int final_reason(struct tr_actor *a, int reason)
{
    if (!atomic_load(&a->kill_reason))
        return reason; /* the usual end: no lock (a kill from now on is too late) */
    tr__spin_lock(&a->sig_lock);
    int killed = atomic_load_explicit(&a->kill_reason, memory_order_relaxed);
    if (killed) {
        tr__detail_drop(a->detail);
        a->detail = a->kill_detail;
        a->kill_detail = NULL;
    }
    tr__spin_unlock(&a->sig_lock);
    return killed ? killed : reason;
}

static void end(struct tr_actor *a, int reason)
{
    /* The ring is drained and freed at the end of all this, and is long
     * out of the cache in an actor that idled: ask for it now. */
    tr__ringbuf *rb = atomic_load_explicit(&a->mbox.rb, memory_order_relaxed);
    if (rb)
        __builtin_prefetch(&rb->ring);
    tr__actor_run_cleanups(a); /* still as the actor: they may send */
    tr__worker_now()->current = NULL;
    a->exit_reason = final_reason(a, reason);
    tr__actor_finish(a);
}

void tr__actor_body(struct tr_actor *a)
{
    end(a, a->body(a));
}

/*
 * One turn of a handler actor: up to `batch` messages, then back of the
 * queue if more are waiting, or idle.  Going idle is a store of 0 to
 * `scheduled` followed by a look at the ring: a message that arrived in
 * between is seen either here or by its sender (see tr__mailbox_notify),
 * and if we win the flag back we simply go on.
 */
static void run_turn(struct tr_actor *a)
{
    tr_system *sys = a->mbox.sys;
    uint32_t batch = sys->cfg.batch, n = 0;
    tr_msg m;

    for (;;) {
        if (tr__actor_cancelled(a)) {
            end(a, atomic_load(&a->abandoned) ? TR_EKILLED : TR_ECANCELED);
            return;
        }
        while (n < batch && tr__owner_take_quiet(&a->mbox, &m)) {
            if (n++) /* a handler returned: the watchdog's progress */
                tr__worker_progress(tr__worker_now());
            int rc = a->handler(a, &m);
            if (rc == 0 && tr__actor_cancelled(a))
                rc = TR_ECANCELED;
            if (rc != 0) {
                end(a, rc == TR_STOP ? 0 : rc);
                return;
            }
            if (atomic_load_explicit(&sys->stopping, memory_order_relaxed))
                return; /* never run again: shutdown destroys it */
        }
        if (n >= batch) {
            tr__mailbox_sync_waiters(&a->mbox);
            tr__worker_now()->current = NULL;
            tr__schedule(sys, a); /* behind what is queued */
            return;
        }
        /* Once `scheduled` is 0 a sender may queue the actor, another
         * worker may run it, and it may exit and be destroyed there, all
         * before our look at the ring.  So the worker announces the actor
         * it is letting go as its hazard (plain stores, no read-modify-
         * write on the hot path), and the destroyer waits while any worker
         * announces it.  Whoever runs the actor next got it through our
         * exchange below, so it sees the announcement. */
        tr__worker *w = tr__worker_now();
        atomic_store_explicit(&w->hazard, a->mbox.ref, memory_order_relaxed);
        tr__actor_idle(a);
        /* A cancel that came after our last look at the flag found it at
         * 1 and left the turn to us: look again now that it is down. */
        bool ours = (tr__owner_has_mail(&a->mbox) || tr__actor_cancelled(a)) &&
                    !atomic_exchange(&a->scheduled, 1);
        if (!ours)
            w->current = NULL;
        /* After this store we touch `a` only if it is ours again. */
        atomic_store_explicit(&w->hazard, TR_REF_NONE, memory_order_release);
        if (!ours)
            return;
    }
}

void tr__actor_run(tr__worker *w, struct tr_actor *a)
{
    w->current = a;
    atomic_store_explicit(&w->running, a->mbox.ref, memory_order_relaxed);
    if (atomic_load_explicit(&a->parked, memory_order_acquire)) {
        tr__stack *to = a->stack;
        a->stack = NULL;
        atomic_store_explicit(&a->parked, false, memory_order_relaxed);
        tr__worker_leave(w, to, true); /* continues where it parked */
        __builtin_unreachable();
    }
    if (a->body) {
        /* Queued once at spawn; afterwards it only ever parks, so it
         * comes back through the `parked` branch above. */
        if (a->stack)
            tr__worker_start_private(w, a); /* does not return */
        tr__actor_body(a);
        return;
    }
    run_turn(a);
}

void tr_exit(int reason)
{
    tr__worker *w = tr__worker_now();
    struct tr_actor *a = w ? w->current : NULL;
    if (!a)
        return;
    tr__actor_run_cleanups(a); /* here, on the stack they may refer to */
    /* A handler that blocked may have moved us to another worker. */
    w = tr__worker_now();
    /* We cannot unwind, so we leave this stack for good. */
    a->exit_reason = final_reason(a, reason);
    w->current = NULL;
    w->exiting = a;
    tr__worker_leave_for_good(w);
}

static int cancel(tr_system *sys, tr_ref ref, bool abandon)
{
    if (!sys)
        return TR_EINVAL;
    tr__hold hold;
    struct tr_actor *a = tr__hold_ref(sys, tr__worker_now(), ref, &hold);
    if (!a)
        return TR_ENOACTOR;
    int rc = TR_EINVAL; /* a mailbox's ref, not an actor's */
    if (hold.kind == TR__SLOT_ACTOR) {
        if (abandon)
            atomic_store(&a->abandoned, true);
        atomic_store(&a->cancelled, true); /* seq_cst: before the interrupt's loads */
        tr__actor_interrupt(a);
        rc = 0;
    }
    tr__hold_release(sys, &hold);
    return rc;
}

int tr_cancel(tr_system *sys, tr_ref ref)
{
    return cancel(sys, ref, false);
}

int tr__abandon(tr_system *sys, tr_ref ref)
{
    return cancel(sys, ref, true);
}

bool tr_cancelled(void)
{
    tr_actor *a = tr_current();
    return a && atomic_load(&a->cancelled);
}

tr_actor *tr_current(void)
{
    tr__worker *w = tr__worker_now();
    return w ? w->current : NULL;
}

tr_ref tr_self(void)
{
    tr_actor *a = tr_current();
    return a ? a->mbox.ref : TR_REF_NONE;
}

void *tr_actor_state(const tr_actor *self)
{
    return self ? self->state : NULL;
}

tr_ref tr_actor_ref(const tr_actor *self)
{
    return self ? self->mbox.ref : TR_REF_NONE;
}

tr_system *tr_actor_system(const tr_actor *self)
{
    return self ? self->mbox.sys : NULL;
}

const char *tr_actor_name(const tr_actor *self)
{
    return self && self->name ? self->name : "";
}
