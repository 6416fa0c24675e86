/*
 * ctx.h - switching between coroutine contexts.
 *
 * Overview: a context is a saved stack pointer.  tr__ctx_switch saves the
 * callee-saved registers on the current stack, stores the stack pointer
 * in `from`, loads the one in `to` and pops that context's registers.
 * Everything else is already saved by the C calling convention, so a
 * switch costs about as much as a function call.
 *
 * Implementation notes: the switch is written in assembly for x86-64
 * (ctx_x86_64.S) and aarch64 (ctx_aarch64.S); other machines, or builds
 * with TR_CTX_UCONTEXT, use swapcontext (ctx_ucontext.c), which is slower
 * because it saves the signal mask with a system call.  The Makefile
 * picks one.  Sanitizer announcements are the caller's job (sched.c).
 */
#ifndef TR_CTX_H
#define TR_CTX_H

#include <stddef.h>

#if defined(TR_CTX_UCONTEXT)
#include <ucontext.h>
typedef struct tr__ctx {
    ucontext_t uc;
} tr__ctx;
#else
typedef struct tr__ctx {
    void *sp;
} tr__ctx;
#endif

/*
 * Prepare `ctx` so that the first switch to it calls fn(arg) on the stack
 * [lo, lo + size).  fn must never return: it leaves by switching away.
 */
void tr__ctx_make(tr__ctx *ctx, void *lo, size_t size, void (*fn)(void *),
                  void *arg);

/* Save the running context in `from` and continue the one in `to`. */
void tr__ctx_switch(tr__ctx *from, const tr__ctx *to);

#endif
