/*
 * fence.h - a seq_cst fence that follows a seq_cst read-modify-write.
 *
 * Several hand-offs are store-buffer patterns (each side writes its flag,
 * then reads the other's) and need a seq_cst fence on both sides.  Where
 * the write is a read-modify-write, x86 has already fenced: every locked
 * instruction is a full barrier, so there the fence only has to stop the
 * compiler.  Elsewhere (aarch64: a dmb after the ldaxr/stlxr loop) it is
 * a real fence.  ThreadSanitizer models neither, so nothing changes for it.
 */
#ifndef TR_FENCE_H
#define TR_FENCE_H

#include <stdatomic.h>

/*
 * tr__fence - a seq_cst fence.  GCC warns that ThreadSanitizer does not
 * model fences (-Wtsan); we know, and say where each one pairs, so the
 * warning is silenced here rather than the build left noisy.
 */
#if defined(__SANITIZE_THREAD__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wtsan"
#endif
static inline void tr__fence(void)
{
    atomic_thread_fence(memory_order_seq_cst);
}
#if defined(__SANITIZE_THREAD__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#if defined(__x86_64__) || defined(__i386__)
#define tr__fence_after_rmw() atomic_signal_fence(memory_order_seq_cst)
#else
#define tr__fence_after_rmw() tr__fence()
#endif

#endif
