/*
 * troupe/actor.h - spawning and running actors.
 *
 * Two styles of actor share one mechanism:
 *   - handler style (tr_spawn): the runtime calls the handler once per
 *     message, on a stack it borrows from the worker.  An idle handler
 *     actor holds no stack at all, so a million of them are cheap.
 *   - loop style (tr_spawn_loop): the body runs once and calls tr_recv in
 *     a loop, Erlang style.  It keeps a stack only while it is blocked.
 * Either style may block anywhere (send to a full mailbox, tr_recv,
 * tr_yield): the actor then keeps the stack it runs on and the worker goes
 * on with other actors on another stack.
 *
 * The calls tr_self, tr_recv, tr_yield and tr_exit act on the calling
 * actor and fail with TR_ECONTEXT (or do nothing) outside an actor.
 */
#ifndef TROUPE_ACTOR_H
#define TROUPE_ACTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "troupe/export.h"
#include "troupe/msg.h"
#include "troupe/system.h"
#include "troupe/time.h"

typedef struct tr_actor tr_actor;

/*
 * A handler: called with each message in order.  The handler owns the
 * message (see troupe/msg.h).  Return 0 to go on, TR_STOP to exit
 * normally, or a negative code to exit with that code as the reason.
 */
typedef int (*tr_handler)(tr_actor *self, tr_msg *msg);

/* A loop body: runs once; its return value is the exit reason (0: normal). */
typedef int (*tr_body)(tr_actor *self);

typedef struct tr_spawn_opts {
    /* Mailbox capacity; 0 means the system's default.  The capacity is
     * rounded up to a power of two minus one (the ring keeps one slot
     * free), so 63 holds exactly 63 and 64 holds 127; 2^30 and more is
     * TR_EINVAL. */
    uint32_t mailbox_capacity;
    /* Loop actors: 0 runs the body on the workers' shared stacks (of
     * tr_config.stack_size); a size gives it a private stack of that many
     * bytes from its start.  Handler actors always run on the shared
     * stacks: a size above tr_config.stack_size is TR_EINVAL. */
    size_t stack_size;
    /* Opaque user state, returned by tr_actor_state. */
    void *state;
    /* A name for diagnostics; copied.  NULL for none. */
    const char *name;
    /* A cleanup handler registered before the actor first runs, as
     * tr_defer would (it runs last, and even if the actor never got to
     * run: the system stopped first).  For state that the spawner hands
     * over, such as `state` itself.  NULL for none. */
    void (*cleanup)(void *arg);
    void *cleanup_arg;
    /* How long tr_spawn_loop, called by a thread that is not a worker,
     * may wait for the workers while the system is over its spawn backlog
     * (tr_config.spawn_backlog): TR_FOREVER (the default of
     * TR_SPAWN_OPTS_INIT) waits until the workers have started enough,
     * however long their turns keep them; TR_NOW never waits.  If the
     * deadline passes first, TR_ETIMEDOUT, and nothing is spawned.  Note
     * that a struct zeroed by hand holds TR_NOW: start from
     * TR_SPAWN_OPTS_INIT. */
    tr_deadline deadline;
} tr_spawn_opts;

#define TR_SPAWN_OPTS_INIT ((tr_spawn_opts){.deadline = TR_FOREVER})

/*
 * tr_spawn - start a handler-style actor.  `opts` may be NULL.
 * Any thread (worker or not) may call it.  On success *out (if not NULL)
 * receives the actor's ref.  Returns 0, TR_EINVAL, TR_ENOMEM, TR_ELIMIT
 * (max_actors reached) or TR_ESHUTDOWN.  A handler actor is not runnable
 * until its first message, so this never waits for the spawn backlog.
 */
TR_API int tr_spawn(tr_system *sys, tr_handler handler,
                    const tr_spawn_opts *opts, tr_ref *out);

/*
 * tr_spawn_loop - start a loop-style actor; as tr_spawn otherwise, except
 * that a thread that is not a worker may wait for the spawn backlog
 * (tr_config.spawn_backlog, tr_spawn_opts.deadline): then also
 * TR_ETIMEDOUT, and TR_ESHUTDOWN if the system stops meanwhile.  An actor
 * never waits here, whatever system it spawns into.
 */
TR_API int tr_spawn_loop(tr_system *sys, tr_body body,
                         const tr_spawn_opts *opts, tr_ref *out);

/*
 * tr_cancel - cancel the actor behind `ref`.  A call it is blocked in
 * (receive, a send waiting for room, select, sleep) returns TR_ECANCELED
 * at once, and from then on every call that would have to wait returns
 * TR_ECANCELED instead, as does tr_yield.  Calls that can complete
 * without waiting still do, so cleanup code can drain its mailbox and
 * tell others.  A handler actor ends with reason TR_ECANCELED after its
 * current message; a loop actor decides itself when to return (see
 * tr_cancelled).  Cancelling twice is harmless.  Any thread may call it.
 * Returns 0, TR_EINVAL (NULL system, or the ref of a mailbox) or
 * TR_ENOACTOR (no such actor, or it has exited).
 */
TR_API int tr_cancel(tr_system *sys, tr_ref ref);

/* tr_cancelled - true if the calling actor has been cancelled. */
TR_API bool tr_cancelled(void);

/* tr_current - the calling actor, or NULL outside an actor. */
TR_API tr_actor *tr_current(void);

/* tr_self - the calling actor's ref, or TR_REF_NONE outside an actor. */
TR_API tr_ref tr_self(void);

/* Accessors; `self` must be a live actor (usually the caller itself). */
TR_API void *tr_actor_state(const tr_actor *self);
TR_API tr_ref tr_actor_ref(const tr_actor *self);
TR_API tr_system *tr_actor_system(const tr_actor *self);
TR_API const char *tr_actor_name(const tr_actor *self); /* "" if none */

/*
 * tr_send - copy `msg` into the mailbox of `to`.  msg->from is set to the
 * caller's ref.  If the mailbox is full an actor parks (its worker runs
 * others) and any other thread blocks, until there is room or until
 * `deadline`.  On success the receiver owns the payload; on error the
 * caller still does.  Any thread may call it.  An actor sending into a
 * full mailbox of another system sleeps and tries again (16 us doubling
 * to 1 ms between tries) rather than park on it (docs/mailbox.md).
 * Returns 0, TR_ETIMEDOUT (still full at the deadline), TR_ENOACTOR (no
 * such actor or mailbox, or it is gone), TR_ECLOSED (a closed mailbox),
 * TR_ESHUTDOWN (the other system of such a send stopped meanwhile),
 * TR_ECANCELED (the calling actor was cancelled while it would wait),
 * TR_EDEADLK (its wait would close a cycle of full mailboxes, through
 * actors, and threads that own mailboxes and wait with TR_FOREVER,
 * docs/mailbox.md; or a thread sends into a full mailbox of its own,
 * whatever its deadline),
 * TR_ECONTEXT (a worker's thread outside an actor, as
 * in a payload destructor that the runtime runs, would have to wait: a
 * worker never blocks), TR_EINVAL (NULL msg), or TR_ENOMEM (the first
 * message to a mailbox allocates its ring; an actor that must wait needs
 * a stack to go on with).
 */
TR_API int tr_send(tr_system *sys, tr_ref to, const tr_msg *msg,
                   tr_deadline deadline);

/* tr_try_send - tr_send that never waits: TR_EFULL if there is no room. */
TR_API int tr_try_send(tr_system *sys, tr_ref to, const tr_msg *msg);

/*
 * tr_recv - take the next message from the calling actor's own mailbox,
 * parking until one arrives or until `deadline`.  The caller owns the
 * message.  Returns 0, TR_ETIMEDOUT, TR_ECANCELED (cancelled while it
 * would wait), TR_EINVAL (NULL out), TR_ECONTEXT (not in an actor), or
 * TR_ENOMEM (no stack to go on with while waiting).
 */
TR_API int tr_recv(tr_msg *out, tr_deadline deadline);

/*
 * tr_yield - let other actors run; the caller resumes later (possibly on
 * another worker thread).  A cancellation point: in a cancelled actor it
 * still yields, then returns TR_ECANCELED.  Returns 0, TR_ECANCELED,
 * TR_ECONTEXT outside an actor, or TR_ENOMEM (no stack to go on with).
 */
TR_API int tr_yield(void);

/*
 * tr_defer - register `fn(arg)` to run when the calling actor ends,
 * however it ends: its body or handler returns, tr_exit, an error, a
 * cancellation, or the system stopping while it is parked.  Handlers run
 * once each, newest first.  When the actor ends they run as the actor
 * (they may send; they should not wait); at system shutdown they run on
 * the thread that stops the system, outside any actor.  The actor must
 * not free what `arg` points to before then.
 * Returns 0, TR_EINVAL (NULL fn), TR_ECONTEXT (not in an actor) or
 * TR_ENOMEM.
 */
TR_API int tr_defer(void (*fn)(void *arg), void *arg);

/*
 * tr_exit - end the calling actor now with `reason` (0: normal), after
 * its cleanup handlers.  Never returns.  Its mailboxes close: messages
 * still queued are released.
 * Outside an actor it returns at once and does nothing.
 */
TR_API void tr_exit(int reason);

#endif
