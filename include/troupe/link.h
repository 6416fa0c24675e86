/*
 * troupe/link.h - links, monitors and exit reasons (Erlang's semantics).
 *
 * When an actor ends it has an exit reason: 0 (normal), TR_ECANCELED
 * (cancelled), TR_ESHUTDOWN, another TR_E* code, or any other
 * int the application returns or passes to tr_exit.  It may attach a
 * detail to it (tr_exit_detail): a string or a small struct, which every
 * notice of its end carries.
 *
 * A link joins two actors both ways: when one ends with a reason other
 * than normal, the other ends too, with the same reason, unless it traps
 * exits; then the news arrives as a message instead (TR_TAG_EXIT), and
 * a normal end arrives that way too.  A monitor is one way and is told
 * apart by its ref: when the watched actor ends, the watcher receives a
 * TR_TAG_DOWN message, whatever the reason.  Several monitors of one
 * actor each get their own message.
 *
 * These notices are signals: they travel apart from messages, so a full
 * mailbox never holds them back or loses them, and between two actors
 * they arrive in the order they were sent.  An actor sees them before
 * the messages in its own mailbox, when it receives (a handler actor:
 * as its next messages).  Monitoring an actor that has already ended
 * delivers the DOWN at once, with reason TR_ENOACTOR.
 *
 * Every call here but tr_cancel_wait acts for the calling actor; outside
 * one they return TR_ECONTEXT.
 */
#ifndef TROUPE_LINK_H
#define TROUPE_LINK_H

#include <stdbool.h>
#include <stddef.h>

#include "troupe/export.h"
#include "troupe/msg.h"
#include "troupe/system.h"
#include "troupe/time.h"

/*
 * The tags of the notices, delivered as messages.  Read them with
 * tr_notice_read, and release each one with tr_msg_release once read:
 * one that carries a detail owns a copy of it.  (Without a detail,
 * msg.free_fn is NULL and the words say it all: msg.from is the actor
 * that ended; for TR_TAG_EXIT msg.a is its reason (as int64_t) and msg.b
 * is 0; for TR_TAG_DOWN msg.a is the monitor's ref and msg.b the reason.)
 */
#define TR_TAG_EXIT ((uint64_t)-2)
#define TR_TAG_DOWN ((uint64_t)-3)

/* The most bytes an exit detail may have. */
#define TR_DETAIL_MAX 4096

/* What a notice says. */
typedef struct tr_notice {
    tr_ref who;              /* the actor that ended */
    int reason;              /* its exit reason */
    tr_ref monitor;          /* TR_TAG_DOWN: the monitor; else TR_REF_NONE */
    const char *detail;      /* its exit detail, NUL-terminated, or NULL */
    size_t detail_len;       /* the detail's bytes (without the NUL) */
} tr_notice;

/*
 * tr_notice_read - what the TR_TAG_EXIT or TR_TAG_DOWN message `msg`
 * says, into *out.  The detail stays valid until the message is
 * released.  Returns 0, or TR_EINVAL (NULL, or not a notice).
 */
TR_API int tr_notice_read(const tr_msg *msg, tr_notice *out);

/*
 * tr_exit_detail - attach a detail to the calling actor's exit: a copy of
 * the `len` bytes at `data` (a string, or a small struct; a NUL is added
 * after them), at most TR_DETAIL_MAX.  The reason stays the int the
 * actor ends with; every EXIT and DOWN notice of that end carries the
 * detail, and an actor that a link ends with this exit ends with the
 * same reason and detail.  A later call replaces it; (NULL, 0) removes
 * it.  Returns 0, TR_EINVAL, TR_ECONTEXT (not in an actor) or TR_ENOMEM.
 */
TR_API int tr_exit_detail(const void *data, size_t len);

/*
 * tr_link - link the calling actor and `other` (a second link between the
 * same two is the same link).  If `other` has already ended (or never
 * was), a caller that traps exits gets the notice at once: the call
 * returns 0 and a TR_TAG_EXIT with reason TR_ENOACTOR follows; any other
 * caller gets TR_ENOACTOR.  Returns 0, TR_ECONTEXT, TR_EINVAL (TR_REF_NONE,
 * itself, or a mailbox's ref), TR_ENOACTOR or TR_ENOMEM.
 */
TR_API int tr_link(tr_ref other);

/*
 * tr_unlink - undo tr_link; no notice is sent.  Once it returns, the link
 * has no effect on the caller, even if `other` is ending meanwhile: no
 * exit of it ends the caller, and a caller that traps exits receives no
 * TR_TAG_EXIT of it, not even one already queued.  0, TR_ECONTEXT.
 */
TR_API int tr_unlink(tr_ref other);

/*
 * tr_monitor - watch `target`; *monitor receives the monitor's ref, which
 * the DOWN message carries in msg.a.  Returns 0 (also when the target has
 * already ended: the DOWN is on its way), TR_ECONTEXT, TR_EINVAL (NULL
 * monitor, or target TR_REF_NONE, which names no actor, or a mailbox's
 * ref, as for tr_link: no DOWN follows) or TR_ENOMEM.
 */
TR_API int tr_monitor(tr_ref target, tr_ref *monitor);

/*
 * tr_demonitor - stop watching: once it returns, whatever it returns, no
 * DOWN for this monitor arrives, even if the target is ending meanwhile.
 * Returns 0 (the monitor was removed, or its DOWN was queued for the
 * caller and is taken back), TR_ENOACTOR if there is no such monitor of
 * the caller (its DOWN was received, it was removed, another actor made
 * it, or its DOWN was lost to a lack of memory), or TR_ECONTEXT outside
 * any actor.
 */
TR_API int tr_demonitor(tr_ref target, tr_ref monitor);

/*
 * tr_cancel_wait - tr_cancel the actor behind `ref`, then wait until it
 * has ended or until `deadline`; *reason (if not NULL) receives its exit
 * reason.  If it had already ended (or `ref` never named an actor), the
 * call returns 0 at once, whatever the deadline (TR_NOW included), with
 * *reason TR_ENOACTOR.  Cancelling a supervisor this way waits for its
 * whole tree, which ends depth first.  Any thread or actor may call it;
 * unlike the calls above, it does not act for the calling actor.  It
 * spawns a helper actor to watch, so a thread may wait for the spawn
 * backlog (tr_spawn_loop), within `deadline`.  An actor of another
 * system cannot wait here: it gets the cancel, then TR_ECONTEXT.  The
 * arguments are checked before the caller: TR_EINVAL (NULL system,
 * TR_REF_NONE or a mailbox's ref) comes first, from any caller; then
 * TR_ECONTEXT (an actor of another system, or a worker outside any
 * actor), then TR_ESHUTDOWN.  Returns 0, TR_ETIMEDOUT, TR_EINVAL,
 * TR_ECONTEXT, TR_ECANCELED (the calling actor was cancelled while it
 * waited), TR_ENOMEM or TR_ESHUTDOWN (the system was shut down before
 * the actor's end was seen: the shutdown destroys it with no notice;
 * *reason is not set).
 */
TR_API int tr_cancel_wait(tr_system *sys, tr_ref ref, tr_deadline deadline,
                          int *reason);

/*
 * tr_trap_exits - whether exits of linked actors arrive as TR_TAG_EXIT
 * messages (true) or end the calling actor (false, the default).  Set
 * it before linking.  Returns 0 or TR_ECONTEXT.
 */
TR_API int tr_trap_exits(bool trap);

#endif
