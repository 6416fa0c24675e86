/* stack.c - mmap'd coroutine stacks with guard pages, and their pool. */
#include "stack.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sanitizer.h"

/* Stacks kept in the system pool beyond which returns are unmapped. */
#define POOL_MAX 1024

tr__stack *tr__stack_new(size_t size, int guard)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t map_len = (size + page - 1) & ~(page - 1);
    size_t guard_len = guard ? page : 0;

    if (map_len < guard_len + 4 * page)
        return NULL;
    char *map = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                     -1, 0);
    if (map == MAP_FAILED)
        return NULL;
    if (guard_len && mprotect(map, guard_len, PROT_NONE) != 0) {
        munmap(map, map_len);
        return NULL;
    }
    uintptr_t top = (uintptr_t)map + map_len - sizeof(tr__stack);
    top &= ~(uintptr_t)63;
    tr__stack *st = (tr__stack *)top;
    *st = (tr__stack){0};
    st->lo = map + guard_len;
    st->size = top - (uintptr_t)st->lo;
    st->map_len = map_len;
    st->guard = guard_len;
    st->tsan_fiber = TR_TSAN_FIBER_NEW();
    st->valgrind_id = TR_VALGRIND_STACK_REGISTER(st->lo, (char *)st->lo + st->size);
    return st;
}

void tr__stack_free(tr__stack *st)
{
    if (!st)
        return;
    TR_VALGRIND_STACK_DEREGISTER(st->valgrind_id);
    TR_TSAN_FIBER_FREE(st->tsan_fiber);
    /* Abandoned frames leave redzones; clear them before the address
     * range can be reused for something else. */
    TR_ASAN_UNPOISON(st->lo, st->size);
    munmap((char *)st->lo - st->guard, st->map_len);
}

void tr__stack_pool_init(tr__stack_pool *pool, size_t size, int guard)
{
    /* Pooled stacks are recognised by their mapping size, which is the
     * requested size rounded up to whole pages. */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size = (size + page - 1) & ~(page - 1);
    *pool = (tr__stack_pool){.size = size, .guard = guard};
}

void tr__stack_pool_destroy(tr__stack_pool *pool)
{
    while (pool->free) {
        tr__stack *st = pool->free;
        pool->free = st->next;
        tr__stack_free(st);
    }
    pool->nfree = 0;
}

tr__stack *tr__stack_pool_get(tr__stack_pool *pool)
{
    tr__spin_lock(&pool->lock);
    tr__stack *st = pool->free;
    if (st) {
        pool->free = st->next;
        pool->nfree--;
    }
    tr__spin_unlock(&pool->lock);
    return st ? st : tr__stack_new(pool->size, pool->guard);
}

void tr__stack_pool_put(tr__stack_pool *pool, tr__stack *st)
{
    bool keep = false;
    if (st->map_len == pool->size) {
        tr__spin_lock(&pool->lock);
        if (pool->nfree < POOL_MAX) {
            st->next = pool->free;
            pool->free = st;
            pool->nfree++;
            keep = true;
        }
        tr__spin_unlock(&pool->lock);
    }
    if (!keep)
        tr__stack_free(st);
}

void tr__stack_prepare(tr__stack *st, void (*fn)(void *), void *arg)
{
    /* Frames abandoned on a recycled stack may have left ASan redzones. */
    TR_ASAN_UNPOISON(st->lo, st->size);
    st->asan_fake = NULL;
#ifdef TR_TSAN
    /* TSan keeps a shadow call stack per fiber; the frames abandoned on
     * this stack never returned, so a reused fiber's shadow stack grows
     * by a few frames per life and TSan aborts at 65536.  A fresh fiber
     * costs a large memset, so renew it only every so many lives. */
    if (++st->lives % 256 == 0) {
        TR_TSAN_FIBER_FREE(st->tsan_fiber);
        st->tsan_fiber = TR_TSAN_FIBER_NEW();
    }
#endif
    tr__ctx_make(&st->ctx, st->lo, st->size, fn, arg);
}
