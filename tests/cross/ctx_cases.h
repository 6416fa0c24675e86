/*
 * ctx_cases.h - context-switch checks shared by the cmocka suite
 * (tests/actors/test_ctx.c) and the cross-built aarch64 self-test
 * (tests/cross/ctx_selftest.c), which has no cmocka to link against.
 *
 * Each case returns 0 on success or a line number on failure.  They drive
 * tr__ctx_make / tr__ctx_switch directly: three coroutines pass control
 * round-robin, carry integer and floating-point values across switches
 * in callee-saved registers, and recurse between switches.
 */
#ifndef TR_CTX_CASES_H
#define TR_CTX_CASES_H

#include <fenv.h>
#include <stdint.h>
#include <stdlib.h>

#include "ctx.h"

#define CASE_STACK (128 * 1024)

static tr__ctx case_main, case_co[3];
static volatile uint64_t case_trace[3000];
static volatile unsigned case_len;

static double case_fp(double x)
{
    return x * 1.5 + 0.25;
}

static uint64_t case_recurse(int depth, uint64_t acc)
{
    return depth ? case_recurse(depth - 1, acc * 3 + (uint64_t)depth) : acc;
}

static void case_body(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    /* Live across switches: the compiler keeps these in callee-saved
     * registers (integer and, on aarch64, d8-d15), so a switch that lost
     * them would corrupt the running sums. */
    uint64_t sum = id;
    double f = (double)id;
    for (unsigned round = 0; round < 1000; round++) {
        sum = sum * 31 + round;
        f = case_fp(f) - (double)round;
        case_trace[case_len++] = id;
        tr__ctx_switch(&case_co[id], id == 2 ? &case_main : &case_co[id + 1]);
    }
    case_trace[case_len++] = sum + (uint64_t)(int64_t)f + case_recurse(20, id);
    tr__ctx_switch(&case_co[id], &case_main);
    abort(); /* never resumed */
}

static uint64_t case_expected(uintptr_t id)
{
    uint64_t sum = id;
    double f = (double)id;
    for (unsigned round = 0; round < 1000; round++) {
        sum = sum * 31 + round;
        f = case_fp(f) - (double)round;
    }
    return sum + (uint64_t)(int64_t)f + case_recurse(20, id);
}

/* Three coroutines run round-robin; returns 0 or the failing line. */
static int ctx_case_round_robin(void)
{
    void *stacks[3];
    for (uintptr_t i = 0; i < 3; i++) {
        stacks[i] = malloc(CASE_STACK);
        if (!stacks[i])
            return __LINE__;
        tr__ctx_make(&case_co[i], stacks[i], CASE_STACK, case_body, (void *)i);
    }
    case_len = 0;
    volatile double keep = 2.5;   /* must survive in main's context too */
    for (unsigned round = 0; round < 1000; round++)
        tr__ctx_switch(&case_main, &case_co[0]);
    if (keep != 2.5)
        return __LINE__;
    if (case_len != 3000)
        return __LINE__;
    for (unsigned i = 0; i < 3000; i++)
        if (case_trace[i] != i % 3)
            return __LINE__;
    for (uintptr_t i = 0; i < 3; i++) {
        case_len = 0;
        tr__ctx_switch(&case_main, &case_co[i]);
        if (case_len != 1 || case_trace[0] != case_expected(i))
            return __LINE__;
    }
    for (int i = 0; i < 3; i++)
        free(stacks[i]);
    return 0;
}

/* Stack alignment at entry: a 16-byte aligned local must really be. */
static volatile uintptr_t case_align;

static void case_align_body(void *arg)
{
    _Alignas(16) volatile char probe[16];
    case_align = (uintptr_t)probe % 16;
    tr__ctx_switch(&case_co[0], (tr__ctx *)arg);
}

static int ctx_case_alignment(void)
{
    void *stack = malloc(CASE_STACK);
    if (!stack)
        return __LINE__;
    for (unsigned skew = 0; skew < 64; skew += 8) {
        case_align = 99;
        tr__ctx_make(&case_co[0], (char *)stack + skew, CASE_STACK - 64,
                     case_align_body, &case_main);
        tr__ctx_switch(&case_main, &case_co[0]);
        if (case_align != 0)
            return __LINE__;
    }
    free(stack);
    return 0;
}

/* The floating-point control state (rounding mode) belongs to a context:
 * MXCSR/x87 control word on x86-64, FPCR on aarch64. */
static volatile int case_round_seen;

static void case_round_body(void *arg)
{
    fesetround(FE_UPWARD);
    tr__ctx_switch(&case_co[0], (tr__ctx *)arg);
    case_round_seen = fegetround();
    tr__ctx_switch(&case_co[0], (tr__ctx *)arg);
    abort(); /* never resumed */
}

static int ctx_case_rounding_mode(void)
{
    void *stack = malloc(CASE_STACK);
    if (!stack)
        return __LINE__;
    fesetround(FE_TONEAREST);
    tr__ctx_make(&case_co[0], stack, CASE_STACK, case_round_body, &case_main);
    tr__ctx_switch(&case_main, &case_co[0]);
    int here = fegetround();
    tr__ctx_switch(&case_main, &case_co[0]);
    free(stack);
    if (here != FE_TONEAREST)
        return __LINE__;
    if (case_round_seen != FE_UPWARD)
        return __LINE__;
    return 0;
}

#endif
