/*
 * troupe/error.h - error codes shared by every troupe call.
 *
 * Every call that can fail returns 0 on success or one of the negative
 * TR_E* codes below; there is no errno side channel.  The list is an
 * X-macro so that the enum, tr_strerror() and tr_err_name() can never
 * disagree.
 */
#ifndef TROUPE_ERROR_H
#define TROUPE_ERROR_H

#include "troupe/export.h"

#define TR_ERRNO_MAP(X)                                                       \
    X(EINVAL, -1, "invalid argument")                                         \
    X(ENOMEM, -2, "out of memory")                                            \
    X(EFULL, -3, "mailbox is full")                                           \
    X(ETIMEDOUT, -4, "deadline passed")                                       \
    X(ECANCELED, -5, "operation cancelled")                                   \
    X(ENOACTOR, -6, "no such actor (it has exited or never existed)")         \
    X(EDEADLK, -7, "send would wait on a cycle of full mailboxes")            \
    X(ECLOSED, -8, "mailbox closed")                                          \
    X(EEMPTY, -9, "mailbox is empty")                                         \
    X(ECONTEXT, -10, "call not allowed from this thread or actor")            \
    X(ESHUTDOWN, -11, "system is shutting down")                              \
    X(ELIMIT, -12, "limit reached (too many actors or mailboxes)")            \
    X(ESYS, -13, "operating system call failed")                              \
    X(ENOTIMER, -14, "no such timer (it fired, was cancelled or never was)")   \
    X(EKILLED, -15, "abandoned: did not stop within its shutdown time")

enum tr_errno {
#define TR__ERRNO_ENUM(name, value, text) TR_##name = (value),
    TR_ERRNO_MAP(TR__ERRNO_ENUM)
#undef TR__ERRNO_ENUM
};

/* A handler returns TR_STOP to end its actor normally (see tr_handler). */
#define TR_STOP 1

/*
 * tr_strerror - a human-readable sentence for an error code.
 * Never returns NULL; unknown codes give "unknown error".  Thread-safe.
 */
TR_API const char *tr_strerror(int err);

/*
 * tr_err_name - the symbolic name of an error code ("TR_EFULL").
 * Never returns NULL; unknown codes give "TR_E?".  Thread-safe.
 */
TR_API const char *tr_err_name(int err);

#endif
