/*
 * ctx_ucontext.c - the portable context switch, on swapcontext.
 * Slower than the assembly versions (it saves and restores the signal
 * mask with a system call on every switch) but runs anywhere POSIX does.
 */
#include <stdint.h>

#include "ctx.h"

/* makecontext passes int arguments only, so the pointers travel in halves. */
static void entry(unsigned fn_hi, unsigned fn_lo, unsigned arg_hi,
                  unsigned arg_lo)
{
    void (*fn)(void *) =
        (void (*)(void *))(((uintptr_t)fn_hi << 32) | (uintptr_t)fn_lo);
    void *arg = (void *)(((uintptr_t)arg_hi << 32) | (uintptr_t)arg_lo);
    fn(arg);
}

void tr__ctx_make(tr__ctx *ctx, void *lo, size_t size, void (*fn)(void *),
                  void *arg)
{
    uint64_t f = (uint64_t)(uintptr_t)fn, a = (uint64_t)(uintptr_t)arg;
    getcontext(&ctx->uc);
    ctx->uc.uc_stack.ss_sp = lo;
    ctx->uc.uc_stack.ss_size = size;
    ctx->uc.uc_link = NULL;
    makecontext(&ctx->uc, (void (*)(void))entry, 4, (unsigned)(f >> 32),
                (unsigned)f, (unsigned)(a >> 32), (unsigned)a);
}

void tr__ctx_switch(tr__ctx *from, const tr__ctx *to)
{
    swapcontext(&from->uc, &to->uc);
}
