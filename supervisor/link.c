/*
 * link.c - tr_link, tr_monitor and friends: entries on the signal state
 * of the actors involved (signal.h), under their sig_lock.
 *
 * A link is an entry on both sides (a ref set: a supervisor has one per
 * child, up to a hundred thousand); a monitor one entry on the watched
 * actor, in an array that grows by doubling.
 */
#include <stdlib.h>

#include "../actors/runtime.h"

/* Append `v` to an array of `size`-byte items; false if out of memory. */
static bool grow(void **items, uint32_t *n, uint32_t *cap, size_t size)
{
    if (*n < *cap)
        return true;
    uint32_t c = *cap ? *cap * 2 : 4;
    void *p = realloc(*items, c * size);
    if (!p)
        return false;
    *items = p;
    *cap = c;
    return true;
}

/* Add `ref` to a's links with `tag`; a link already there is retagged
 * only if `retag`: only the caller's own half, never the other's, whose
 * tag its owner gave it (a supervisor's child's place).  0, TR_ENOACTOR
 * (a has ended) or TR_ENOMEM. */
static int add_link(struct tr_actor *a, tr_ref ref, uint32_t tag, bool retag)
{
    int rc = 0;
    tr__spin_lock(&a->sig_lock);
    if (a->sig.exited)
        rc = TR_ENOACTOR;
    else if (!(retag ? tr__refmap_put : tr__refmap_add)(&a->sig.links, ref, tag))
        rc = TR_ENOMEM;
    tr__spin_unlock(&a->sig_lock);
    return rc;
}

bool tr__link_drop(struct tr_actor *a, tr_ref ref, uint32_t *tag)
{
    tr__spin_lock(&a->sig_lock);
    bool linked = tr__refmap_del(&a->sig.links, ref, tag);
    tr__spin_unlock(&a->sig_lock);
    return linked;
}

/* Borrow the actor behind `ref` into *a (NULL if none lives there);
 * TR_EINVAL if `ref` is a mailbox's, which no link or monitor can
 * watch, else 0. */
static int borrow_target(tr_system *sys, tr_ref ref, struct tr_actor **a)
{
    uint8_t kind;
    *a = tr__slot_get(&sys->slots, ref, &kind);
    if (*a && kind != TR__SLOT_ACTOR) {
        tr__ref_put(sys, ref, *a, kind);
        *a = NULL;
        return TR_EINVAL;
    }
    return 0;
}

/* Borrow the actor behind `ref`; NULL if it is not a live actor. */
static struct tr_actor *borrow_actor(tr_system *sys, tr_ref ref)
{
    struct tr_actor *a;
    borrow_target(sys, ref, &a);
    return a;
}

void tr__link_forget(tr_system *sys, tr_ref ref, tr_ref gone)
{
    struct tr_actor *a = borrow_actor(sys, ref);
    if (a) {
        tr__link_drop(a, gone, NULL);
        tr__ref_put(sys, ref, a, TR__SLOT_ACTOR);
    }
}

int tr__link_tagged(tr_ref other, uint32_t tag)
{
    tr_actor *self = tr_current();
    if (!self)
        return TR_ECONTEXT;
    if (other == TR_REF_NONE || other == self->mbox.ref)
        return TR_EINVAL; /* TR_REF_NONE: the empty mark of the link map */
    tr_system *sys = self->mbox.sys;
    struct tr_actor *o;
    if (borrow_target(sys, other, &o))
        return TR_EINVAL;
    /* Ours first: if `other` ends in between, its exit finds our link
     * gone from its list, or reaches us through ours. */
    int rc = add_link(self, other, tag, true);
    if (rc == 0 && (rc = o ? add_link(o, self->mbox.ref, 0, false) : TR_ENOACTOR) != 0) {
        /* `other` has ended.  A trapping caller hears it at once, as an
         * exit with reason TR_ENOACTOR (the real one is gone), through
         * our half of the link, which that notice then ends; any other
         * caller gets the error. */
        if (rc == TR_ENOACTOR && atomic_load(&self->trap_exits))
            rc = tr__signal_exit_now(sys, self->mbox.ref, other) ? 0 : TR_ENOMEM;
        if (rc)
            tr__link_drop(self, other, NULL);
    }
    if (o)
        tr__ref_put(sys, other, o, TR__SLOT_ACTOR);
    return rc;
}

int tr_link(tr_ref other)
{
    return tr__link_tagged(other, 0);
}

bool tr__link_tag(tr_ref other, uint32_t *tag)
{
    tr_actor *self = tr_current();
    if (!self)
        return false;
    tr__spin_lock(&self->sig_lock);
    bool linked = tr__refmap_get(&self->sig.links, other, tag);
    tr__spin_unlock(&self->sig_lock);
    return linked;
}

bool tr__link_retag(tr_ref other, uint32_t tag)
{
    tr_actor *self = tr_current();
    if (!self)
        return false;
    uint32_t old;
    tr__spin_lock(&self->sig_lock);
    bool linked = tr__refmap_get(&self->sig.links, other, &old) &&
                  tr__refmap_put(&self->sig.links, other, tag); /* replaces: no allocation */
    tr__spin_unlock(&self->sig_lock);
    return linked;
}

int tr_unlink(tr_ref other)
{
    tr_actor *self = tr_current();
    if (!self)
        return TR_ECONTEXT;
    tr__link_drop(self, other, NULL);
    tr__link_forget(self->mbox.sys, other, self->mbox.ref);
    return 0;
}

int tr_monitor(tr_ref target, tr_ref *monitor)
{
    tr_actor *self = tr_current();
    if (!self)
        return TR_ECONTEXT;
    if (!monitor || target == TR_REF_NONE)
        return TR_EINVAL;
    tr_system *sys = self->mbox.sys;
    struct tr_actor *t;
    if (borrow_target(sys, target, &t))
        return TR_EINVAL; /* as tr_link: a mailbox never ends as an actor does */
    tr_ref id = atomic_fetch_add(&sys->next_monitor, 1);
    int rc = 0;
    bool gone = !t;
    if (t) {
        tr__spin_lock(&t->sig_lock);
        if (t->sig.exited)
            gone = true;
        else if (grow((void **)&t->sig.monitors, &t->sig.nmonitors, &t->sig.monitors_cap,
                      sizeof(tr__monitor)))
            t->sig.monitors[t->sig.nmonitors++] = (tr__monitor){self->mbox.ref, id};
        else
            rc = TR_ENOMEM;
        tr__spin_unlock(&t->sig_lock);
        tr__ref_put(sys, target, t, TR__SLOT_ACTOR);
    }
    if (rc)
        return rc;
    if (gone)
        tr__signal_down_now(sys, self->mbox.ref, target, id);
    *monitor = id;
    return 0;
}

int tr_demonitor(tr_ref target, tr_ref monitor)
{
    tr_actor *self = tr_current();
    if (!self)
        return TR_ECONTEXT;
    tr_system *sys = self->mbox.sys;
    bool removed = false;
    struct tr_actor *t = borrow_actor(sys, target);
    if (t) {
        tr__spin_lock(&t->sig_lock);
        for (uint32_t i = 0; i < t->sig.nmonitors; i++) {
            tr__monitor *m = &t->sig.monitors[i];
            if (m->id == monitor && m->watcher == self->mbox.ref) {
                *m = t->sig.monitors[--t->sig.nmonitors];
                removed = true;
                break;
            }
        }
        tr__spin_unlock(&t->sig_lock);
        tr__ref_put(sys, target, t, TR__SLOT_ACTOR);
    }
    /* It may have fired already: then its DOWN may be queued for us. */
    if (!removed)
        removed = tr__signal_unqueue_down(self, monitor);
    return removed ? 0 : TR_ENOACTOR;
}

int tr_trap_exits(bool trap)
{
    tr_actor *self = tr_current();
    if (!self)
        return TR_ECONTEXT;
    atomic_store(&self->trap_exits, trap);
    return 0;
}

/*
 * tr_cancel_wait: a helper actor monitors the target for the caller, who
 * may be a thread (threads cannot monitor) or an actor (whose own mailbox
 * must not be searched for the DOWN), and reports to a mailbox the caller
 * makes for the purpose.  It reports first that it watches, or that it
 * cannot (the monitor's error), then the target's end.  If the caller
 * stops waiting first, the helper still ends with the target: its report
 * finds the mailbox gone.  If the system is shut down first, the helper
 * is destroyed without a DOWN, and its cleanup reports TR_ESHUTDOWN
 * instead (wherever it runs: a send that never waits, as the mailbox has
 * room for every report).  An actor of another system cannot make that
 * mailbox here, and one in its own system could be freed before the
 * helper's last report: it only gets the cancel.
 */
enum { WATCHING = 1, FAILED, ENDED };

typedef struct end_watch {
    tr_system *sys;
    tr_ref target, report;
    bool reported;           /* the caller needs no more reports */
} end_watch;

static int watch_end(tr_actor *self)
{
    end_watch *w = tr_actor_state(self);
    tr_ref mon;
    int rc = tr_monitor(w->target, &mon);
    tr_msg m = tr_msg_words(rc ? FAILED : WATCHING, (uint64_t)(int64_t)rc, 0);
    /* The caller is gone, or has its answer. */
    w->reported = tr_send(w->sys, w->report, &m, TR_NOW) || rc;
    if (w->reported || tr_recv(&m, TR_FOREVER))
        return 0;
    tr_msg down = tr_msg_words(ENDED, (uint64_t)(int64_t)tr__notice_reason(&m), 0);
    tr_msg_release(&m);
    tr_send(w->sys, w->report, &down, TR_NOW);
    w->reported = true;
    return 0;
}

/* The helper's cleanup, even if it never runs. */
static void free_watch(void *arg)
{
    end_watch *w = arg;
    if (!w->reported) {
        tr_msg m = tr_msg_words(FAILED, (uint64_t)(int64_t)TR_ESHUTDOWN, 0);
        tr_try_send(w->sys, w->report, &m); /* fails only if the caller gave up */
    }
    free(w);
}

/* The helper's next report: the error it carries (FAILED), or 0 and its
 * word into *word unless word is NULL. */
static int next_report(tr_mailbox *mb, tr_deadline deadline, int *word)
{
    tr_msg m;
    int rc = tr_mailbox_recv(mb, &m, deadline);
    if (rc || m.tag == FAILED)
        return rc ? rc : (int)(int64_t)m.a;
    if (word)
        *word = (int)(int64_t)m.a;
    return 0;
}

/* Spawn the helper to watch `ref`, cancel it, and wait for its end. */
static int watch_and_cancel(tr_system *sys, tr_ref ref, tr_mailbox *mb, tr_deadline deadline,
                            int *reason)
{
    int rc = 0;
    end_watch *w = malloc(sizeof *w);
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.state = w;
    o.cleanup = free_watch; /* even if it never runs */
    o.cleanup_arg = w;
    o.deadline = deadline; /* a thread may wait for the spawn backlog */
    if (!w)
        rc = TR_ENOMEM;
    else if ((*w = (end_watch){sys, ref, tr_mailbox_ref(mb), false}),
             (rc = tr_spawn_loop(sys, watch_end, &o, NULL)) != 0)
        free(w);
    /* Cancel once it watches, so that the DOWN has the true reason; and
     * in any case, even if the deadline passes before it does. */
    int watching = rc ? rc : next_report(mb, deadline, NULL);
    int cancelled = tr_cancel(sys, ref); /* already gone: the DOWN says so */
    if (!rc && cancelled && cancelled != TR_ENOACTOR)
        rc = cancelled;
    if (!rc)
        rc = watching;
    if (!rc)
        rc = next_report(mb, deadline, reason);
    return rc;
}

/* What `ref` names now: TR__SLOT_ACTOR, a mailbox's kind, or 0 if
 * nothing (for good: a ref never names anything again).  A peek, which
 * any thread may take and which holds nothing. */
static uint8_t ref_kind(tr_system *sys, tr_ref ref)
{
    uint8_t kind;
    return tr__slot_peek(&sys->slots, ref, &kind) ? kind : 0;
}

/*
 * The ref is checked first (TR_EINVAL from any caller), then the caller:
 * an actor of another system, then a worker outside an actor (which
 * tr_mailbox_new refuses, as it refuses a system shutting down).  An
 * actor that has already ended needs no helper: its DOWN would come only
 * once the helper had run, which TR_NOW does not wait for.
 */
int tr_cancel_wait(tr_system *sys, tr_ref ref, tr_deadline deadline, int *reason)
{
    if (!sys || ref == TR_REF_NONE)
        return TR_EINVAL;
    uint8_t kind = ref_kind(sys, ref);
    if (kind && kind != TR__SLOT_ACTOR)
        return TR_EINVAL; /* a mailbox's ref */
    tr_actor *self = tr_current();
    if (self && tr_actor_system(self) != sys) {
        int cancelled = tr_cancel(sys, ref);
        return cancelled && cancelled != TR_ENOACTOR ? cancelled : TR_ECONTEXT;
    }
    tr_mailbox *mb;
    int rc = tr_mailbox_new(sys, 3, &mb);
    if (rc)
        return rc;
    if (kind)
        rc = watch_and_cancel(sys, ref, mb, deadline, reason);
    else if (reason)
        *reason = TR_ENOACTOR; /* already ended */
    tr_mailbox_free(mb);
    return rc;
}
