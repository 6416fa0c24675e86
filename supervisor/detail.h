/*
 * detail.h - exit details and the notices that carry them.
 *
 * Overview: an exit reason is an int; an actor may attach a detail to it
 * (tr_exit_detail): bytes it chose, a string or a small struct.  The
 * detail is one immutable buffer with a reference count, shared by
 * every notice of that exit, and by the actors a link kills with it,
 * which end with the same reason and detail (Erlang's exit term).
 *
 * A notice without a detail is a word message (troupe/link.h).  One with
 * a detail is a pointer payload: its ptr is a tr__note holding what the
 * words would, plus the detail; releasing the message (tr_msg_release)
 * frees the note and drops the detail.  tr_notice_read reads both kinds.
 */
#ifndef TR_DETAIL_H
#define TR_DETAIL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "troupe/msg.h"

typedef struct tr__detail {
    atomic_uint refs;
    size_t len;
    char data[];             /* len bytes and a NUL */
} tr__detail;

/* A copy of data[0..len) with one reference; NULL if out of memory. */
tr__detail *tr__detail_new(const void *data, size_t len);

/* Another reference (d may be NULL; returns d). */
tr__detail *tr__detail_hold(tr__detail *d);

/* Drop one reference (d may be NULL). */
void tr__detail_drop(tr__detail *d);

/*
 * The notice that actor `from` ended with `reason` and `d`: TR_TAG_EXIT
 * (monitor TR_REF_NONE) or TR_TAG_DOWN for `monitor`.  With a detail it
 * holds a reference of its own; if the note cannot be allocated, the
 * notice goes without the detail.
 */
tr_msg tr__notice(uint64_t tag, tr_ref from, tr_ref monitor, int reason, tr__detail *d);

/* What a notice says; `m` must be a notice.  The detail is borrowed. */
int tr__notice_reason(const tr_msg *m);
tr__detail *tr__notice_detail(const tr_msg *m);

/* The tag of the link an exit came through (signal.h), 0 if none. */
uint32_t tr__notice_tag(const tr_msg *m);
void tr__notice_set_tag(tr_msg *m, uint32_t tag);

#endif
