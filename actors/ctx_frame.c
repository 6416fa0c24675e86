/*
 * ctx_frame.c - the first frame of a new context for the assembly
 * switches: what tr__ctx_switch pops the first time it enters the stack.
 * The layouts mirror ctx_x86_64.S and ctx_aarch64.S.
 */
#include <stdint.h>
#include <string.h>

#include "ctx.h"

void tr__ctx_trampoline(void);

void tr__ctx_make(tr__ctx *ctx, void *lo, size_t size, void (*fn)(void *),
                  void *arg)
{
    uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
#if defined(__x86_64__)
    /* After `ret` pops the trampoline, rsp = sp + 64 must be 16-aligned
     * so that the trampoline's call enters fn with the ABI's alignment. */
    uint64_t *sp = (uint64_t *)(top - 80);
    memset(sp, 0, 80);
    uint32_t csr = 0x1F80;   /* MXCSR: all exceptions masked */
    uint16_t fcw = 0x037F;   /* x87: all exceptions masked, extended */
    memcpy((char *)sp, &csr, sizeof csr);
    memcpy((char *)sp + 4, &fcw, sizeof fcw);
    sp[4] = (uint64_t)(uintptr_t)fn;   /* r12 */
    sp[3] = (uint64_t)(uintptr_t)arg;  /* r13 */
    sp[7] = (uint64_t)(uintptr_t)tr__ctx_trampoline;
#elif defined(__aarch64__)
    /* After the pop (176 bytes) sp = top - 16, as on x86-64.  FPCR 0 is
     * the default: round to nearest, no traps. */
    uint64_t *sp = (uint64_t *)(top - 192);
    memset(sp, 0, 192);
    sp[0] = (uint64_t)(uintptr_t)fn;   /* x19 */
    sp[1] = (uint64_t)(uintptr_t)arg;  /* x20 */
    sp[11] = (uint64_t)(uintptr_t)tr__ctx_trampoline; /* x30 */
#else
#error "no assembly context switch for this machine: build with TR_CTX_UCONTEXT"
#endif
    ctx->sp = sp;
}
