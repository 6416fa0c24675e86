/*
 * cleanup.c - cleanup handlers (tr_defer): what an actor registers to be
 * undone, run once, newest first, however the actor ends.
 *
 * The handlers form a list on the actor, newest at the head, taken one at
 * a time: a handler that registers another, or ends the actor with
 * tr_exit, leaves the rest to be run, and none runs twice.  An actor that
 * ends (its body or handler returns, tr_exit, a cancellation it obeys)
 * runs them as itself, so they may send; an actor destroyed while parked
 * at system shutdown runs them on the thread that stops the system.
 * Only actors that use it pay: one pool node per handler.
 */
#include "runtime.h"

struct tr__cleanup {
    struct tr__cleanup *next;
    void (*fn)(void *arg);
    void *arg;
};

_Static_assert(sizeof(struct tr__cleanup) <= TR__NODE_BYTES, "a handler is a pool node");

int tr__actor_defer(struct tr_actor *a, void (*fn)(void *arg), void *arg)
{
    struct tr__cleanup *c = tr__alloc(a->mbox.sys, TR__POOL_NODE);
    if (!c)
        return TR_ENOMEM;
    *c = (struct tr__cleanup){.next = a->cleanups, .fn = fn, .arg = arg};
    a->cleanups = c;
    return 0;
}

int tr_defer(void (*fn)(void *arg), void *arg)
{
    tr_actor *a = tr_current();
    if (!a)
        return TR_ECONTEXT;
    if (!fn)
        return TR_EINVAL;
    return tr__actor_defer(a, fn, arg);
}

void tr__actor_run_cleanups(struct tr_actor *a)
{
    a->ending = true; /* its waits no longer end it (tr__abandoned) */
    struct tr__cleanup *c;
    while ((c = a->cleanups) != NULL) {
        a->cleanups = c->next;
        void (*fn)(void *) = c->fn;
        void *arg = c->arg;
        tr__free(a->mbox.sys, TR__POOL_NODE, c);
        fn(arg);
    }
}

void tr__actor_drop_cleanups(struct tr_actor *a)
{
    struct tr__cleanup *c;
    while ((c = a->cleanups) != NULL) {
        a->cleanups = c->next;
        tr__free(a->mbox.sys, TR__POOL_NODE, c);
    }
}
