/*
 * ctx_aarch64.S - context switch for the AAPCS64 ABI.
 *
 * Saved frame (176 bytes), from the saved stack pointer upwards:
 *   +0 x19..x28, +80 x29 (frame pointer), x30 (link register),
 *   +96 d8..d15 (the callee-saved halves of v8..v15),
 *   +160 FPCR (rounding mode and traps are per context, as MXCSR is on
 *   x86-64), +168 padding to keep sp 16-byte aligned.
 * A new context (ctx_frame.c) holds the entry function in x19, its
 * argument in x20, and tr__ctx_trampoline in x30.
 */
    .text
    .globl tr__ctx_switch
    .hidden tr__ctx_switch
    .type tr__ctx_switch, %function
    .p2align 4
tr__ctx_switch:                 /* x0 = from, x1 = to */
    sub sp, sp, #176
    stp x19, x20, [sp, #0]
    stp x21, x22, [sp, #16]
    stp x23, x24, [sp, #32]
    stp x25, x26, [sp, #48]
    stp x27, x28, [sp, #64]
    stp x29, x30, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mrs x9, fpcr
    str x9, [sp, #160]
    mov x9, sp
    str x9, [x0]
    ldr x9, [x1]
    mov sp, x9
    ldp x19, x20, [sp, #0]
    ldp x21, x22, [sp, #16]
    ldp x23, x24, [sp, #32]
    ldp x25, x26, [sp, #48]
    ldp x27, x28, [sp, #64]
    ldp x29, x30, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    ldr x9, [sp, #160]
    msr fpcr, x9
    add sp, sp, #176
    ret
    .size tr__ctx_switch, .-tr__ctx_switch

    .globl tr__ctx_trampoline
    .hidden tr__ctx_trampoline
    .type tr__ctx_trampoline, %function
    .p2align 4
tr__ctx_trampoline:
    mov x0, x20
    blr x19
    brk #0                      /* the entry function never returns */
    .size tr__ctx_trampoline, .-tr__ctx_trampoline

    .section .note.GNU-stack,"",%progbits
