/*
 * troupe/msg.h - the message envelope.
 *
 * A message is a small fixed-size value copied into the receiver's
 * mailbox ring: a tag, the sender's ref (filled in by the runtime), and a
 * payload of two 64-bit words, or a pointer and a length whose ownership
 * moves to the receiver together with an optional destructor.  Nothing is
 * allocated per message.
 *
 * Ownership: once a send succeeds, the receiver owns the payload.  It
 * either keeps the buffer (and frees it later by its own means) or calls
 * tr_msg_release(), which runs the destructor once.  If the send fails the
 * caller still owns the payload.  Messages still queued when their
 * mailbox is destroyed (actor exit, system shutdown) are released by the
 * runtime, so a payload with a destructor never leaks; that includes a
 * message an actor was still waiting to send (parked on a full mailbox)
 * and messages held by pending timers (troupe/timer.h) when the system
 * shut down.
 */
#ifndef TROUPE_MSG_H
#define TROUPE_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "troupe/export.h"

/* A 64-bit handle to an actor or mailbox (slot index + generation).  A
 * ref used with a system it does not belong to is unknown there, as a
 * stale one is (TR_ENOACTOR). */
typedef uint64_t tr_ref;

/* No actor: the sender ref of a message sent by a thread without a mailbox. */
#define TR_REF_NONE ((tr_ref)0)

/* Releases a pointer payload; called at most once per message. */
typedef void (*tr_payload_free)(void *ptr, size_t len);

typedef struct tr_msg {
    uint64_t tag;  /* the application's message type */
    tr_ref from;   /* set by the runtime: who sent it */
    union {
        struct {
            uint64_t a, b; /* word payload */
        };
        struct {
            void *ptr;  /* pointer payload, owned by the receiver */
            size_t len;
        };
    };
    tr_payload_free free_fn; /* NULL for word payloads */
} tr_msg;

/* tr_msg_words - a message with a two-word payload. */
static inline tr_msg tr_msg_words(uint64_t tag, uint64_t a, uint64_t b)
{
    tr_msg m = {.tag = tag, .from = TR_REF_NONE, .a = a, .b = b, .free_fn = 0};
    return m;
}

/*
 * tr_msg_buf - a message carrying `ptr`/`len`; `free_fn` (may be NULL)
 * releases it once the receiver or the runtime is done with it.
 */
static inline tr_msg tr_msg_buf(uint64_t tag, void *ptr, size_t len,
                                tr_payload_free free_fn)
{
    tr_msg m = {.tag = tag, .from = TR_REF_NONE, .ptr = ptr, .len = len,
                .free_fn = free_fn};
    return m;
}

/*
 * tr_msg_release - run the payload's destructor (if any) and clear it so
 * that a second call does nothing.  Any thread may call it.
 */
TR_API void tr_msg_release(tr_msg *msg);

#endif
