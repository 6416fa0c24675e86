/*
 * fail_malloc.h - allocation failure on demand, for the out-of-memory
 * tests.  Include it in one test file: it replaces that binary's malloc,
 * aligned_alloc and strdup (glibc's own strdup does not call a replaced
 * malloc), which
 * fail while `fail_mallocs` is set on the calling thread and go to glibc
 * otherwise.  Sanitizer builds replace malloc themselves, so
 * there TEST_FAIL_MALLOC is 0 and the tests that need it are skipped.
 */
#ifndef TR_TEST_FAIL_MALLOC_H
#define TR_TEST_FAIL_MALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define TEST_FAIL_MALLOC 1

extern void *__libc_malloc(size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
static __thread bool fail_mallocs;

void *malloc(size_t size)
{
    return fail_mallocs ? NULL : __libc_malloc(size);
}

void *aligned_alloc(size_t alignment, size_t size)
{
    return fail_mallocs ? NULL : __libc_memalign(alignment, size);
}

char *strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = malloc(n);
    return copy ? memcpy(copy, s, n) : NULL;
}
#else
#define TEST_FAIL_MALLOC 0
#endif

#endif
