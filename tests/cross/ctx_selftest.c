/*
 * ctx_selftest.c - the context-switch cases without cmocka, for the
 * aarch64 cross build that `make test-cross` runs under qemu-user.
 */
#include <stdio.h>

#include "ctx_cases.h"

int main(void)
{
    int (*cases[])(void) = {ctx_case_round_robin, ctx_case_alignment,
                            ctx_case_rounding_mode};
    const char *names[] = {"round_robin", "alignment", "rounding_mode"};
    int passed = 0, failed = 0;
    for (int i = 0; i < 3; i++) {
        int line = cases[i]();
        if (line) {
            printf("FAIL %s (ctx_cases.h:%d)\n", names[i], line);
            failed++;
        } else {
            printf("ok   %s\n", names[i]);
            passed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
