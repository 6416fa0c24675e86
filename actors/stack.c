/* stack.c - mmap'd coroutine stacks with guard pages, and their pool. */
#include "stack.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sanitizer.h"

/* Stacks kept in the system pool beyond which returns are unmapped. */
#define POOL_MAX 1024
/* Bytes of abandoned frames after which a stack gets a new TSan fiber. */
#define TSAN_RENEW (256 * 1024)

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

/* Below the mark: the frames of the switch itself, under the address
 * that marked it, and a margin. */
#define ASAN_CLEAN_MARGIN 4096

/* Clear the redzones that frames which never returned left on `st`. */
static void asan_clean(tr__stack *st)
{
    if (!st->asan_low)
        return;
    char *from = st->asan_low - ASAN_CLEAN_MARGIN;
    if (from < (char *)st->lo)
        from = st->lo;
    TR_ASAN_UNPOISON(from, (size_t)((char *)st->lo + st->size - from));
    st->asan_low = NULL;
}

void tr__stack_free(tr__stack *st)
{
    if (!st)
        return;
    TR_VALGRIND_STACK_DEREGISTER(st->valgrind_id);
    TR_TSAN_FIBER_FREE(st->tsan_fiber);
    /* Abandoned frames leave redzones; clear them before the address
     * range can be reused for something else. */
    asan_clean(st);
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
    asan_clean(st);
    st->asan_fake = NULL;
#ifdef TR_TSAN
    /* TSan keeps a shadow call stack per fiber, and the frames abandoned
     * on this stack never returned, so its fiber's shadow stack keeps
     * them and TSan aborts at 65536 frames.  A fresh fiber costs a large
     * memset, too much for every life (a worker leaves its scheduler
     * stack, a few hundred bytes deep, each time it resumes a parked
     * actor), so renew it once TSAN_RENEW bytes of frames were left.  A
     * frame takes 16 bytes at least (the return address, and the ABI's
     * 16-byte alignment at its calls), so the shadow stack stays under
     * (TSAN_RENEW + st->size) / 16 frames however deep each life went.
     * Renewing every 256 lives let 400-frame tr_exits overflow it. */
    if (st->tsan_left >= TSAN_RENEW) {
        TR_TSAN_FIBER_FREE(st->tsan_fiber);
        st->tsan_fiber = TR_TSAN_FIBER_NEW();
        st->tsan_left = 0;
    }
#endif
    tr__ctx_make(&st->ctx, st->lo, st->size, fn, arg);
}
