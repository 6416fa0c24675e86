/* test_ctx.c - the context switch this build uses (assembly or ucontext). */
#include "support.h"
#include "../cross/ctx_cases.h"

static void test_three_contexts_round_robin_keep_registers(void **state)
{
    (void)state;
    assert_int_equal(ctx_case_round_robin(), 0);
}

static void test_new_context_starts_with_aligned_stack(void **state)
{
    (void)state;
    assert_int_equal(ctx_case_alignment(), 0);
}

static void test_rounding_mode_belongs_to_each_context(void **state)
{
    (void)state;
    assert_int_equal(ctx_case_rounding_mode(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_contexts_round_robin_keep_registers),
        cmocka_unit_test(test_new_context_starts_with_aligned_stack),
        cmocka_unit_test(test_rounding_mode_belongs_to_each_context),
    };
    return cmocka_run_group_tests_name("ctx", tests, NULL, NULL);
}
