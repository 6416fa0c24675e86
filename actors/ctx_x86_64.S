/*
 * ctx_x86_64.S - context switch for the System V x86-64 ABI.
 *
 * Saved frame, from the saved stack pointer upwards:
 *   +0 MXCSR (4 bytes) and x87 control word (2 bytes)
 *   +8 r15, r14, r13, r12, rbx, rbp
 *  +56 return address
 * A new context (ctx_frame.c) holds the entry function in r12, its
 * argument in r13, and tr__ctx_trampoline as the return address.
 */
    .text
    .globl tr__ctx_switch
    .hidden tr__ctx_switch
    .type tr__ctx_switch, @function
    .p2align 4
tr__ctx_switch:                 /* rdi = from, rsi = to */
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq (%rsi), %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size tr__ctx_switch, .-tr__ctx_switch

    .globl tr__ctx_trampoline
    .hidden tr__ctx_trampoline
    .type tr__ctx_trampoline, @function
    .p2align 4
tr__ctx_trampoline:
    movq %r13, %rdi
    callq *%r12
    ud2                         /* the entry function never returns */
    .size tr__ctx_trampoline, .-tr__ctx_trampoline

    .section .note.GNU-stack,"",@progbits
