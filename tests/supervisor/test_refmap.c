/* test_refmap.c - the ref map of links. */
#include "support.h"
#include "../../supervisor/refmap.h"

/* 0 marks a free slot: storing it would count an entry that is not there. */
static void test_ref_none_is_refused_and_keys_counts_what_it_wrote(void **state)
{
    (void)state;
    tr__refmap m = {0};
    assert_false(tr__refmap_put(&m, TR_REF_NONE, 1));
    assert_int_equal(m.len, 0);
    for (tr_ref r = 1; r <= 9; r++)
        assert_true(tr__refmap_put(&m, r << 32 | r, (uint32_t)r));
    assert_false(tr__refmap_put(&m, TR_REF_NONE, 1));
    assert_true(tr__refmap_del(&m, 3ull << 32 | 3, NULL));
    assert_int_equal(m.len, 8);
    tr_ref keys[9] = {0};
    assert_int_equal(tr__refmap_keys(&m, keys), 8);
    uint64_t seen = 0;
    for (int i = 0; i < 8; i++) {
        uint32_t val = 0;
        assert_true(tr__refmap_get(&m, keys[i], &val));
        seen |= 1ull << val;
    }
    assert_int_equal(seen, 0x3f6); /* 1..9 but 3 */
    tr__refmap_free(&m);
}

/* A link's other half is added, never retagged (tr__link_tagged). */
static void test_add_keeps_the_value_put_replaces_it(void **state)
{
    (void)state;
    tr__refmap m = {0};
    uint32_t val = 0;
    assert_true(tr__refmap_add(&m, 7, 1));
    assert_true(tr__refmap_add(&m, 7, 2));
    assert_true(tr__refmap_get(&m, 7, &val));
    assert_int_equal(val, 1);
    assert_true(tr__refmap_put(&m, 7, 3));
    assert_true(tr__refmap_get(&m, 7, &val));
    assert_int_equal(val, 3);
    assert_int_equal(m.len, 1);
    assert_false(tr__refmap_add(&m, TR_REF_NONE, 1));
    tr__refmap_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_none_is_refused_and_keys_counts_what_it_wrote),
        cmocka_unit_test(test_add_keeps_the_value_put_replaces_it),
    };
    return cmocka_run_group_tests_name("refmap", tests, NULL, NULL);
}
