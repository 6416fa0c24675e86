/*
 * sanitizer.h - announcements to AddressSanitizer, ThreadSanitizer and
 * Valgrind.  Each macro is empty unless its tool is in the build.
 *
 * Stack switches: ASan must be told the bounds of the stack we switch to
 * (start/finish_switch_fiber), TSan needs one fiber object per stack, and
 * Valgrind must know every stack we allocate or it mistakes a switch for a
 * huge stack-pointer change.
 *
 * Message hand-off: ThreadSanitizer cannot see Concurrency Kit's atomics
 * (inline assembly), so the happens-before that a value gets by travelling
 * through a ck_ring is made explicit: the producer releases on the ring
 * before it enqueues and the consumer acquires on it after it dequeues.
 * Releasing *before* the enqueue is what makes this sound: by the time a
 * consumer can see the entry, the release has already happened.
 */
#ifndef TR_SANITIZER_H
#define TR_SANITIZER_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define TR_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TR_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define TR_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TR_TSAN 1
#endif
#endif

#ifdef TR_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define TR_ASAN_START_SWITCH(fake_save, lo, size)                            \
    __sanitizer_start_switch_fiber((fake_save), (lo), (size))
#define TR_ASAN_FINISH_SWITCH(fake, old_lo, old_size)                         \
    __sanitizer_finish_switch_fiber((fake), (old_lo), (old_size))
#define TR_ASAN_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define TR_ASAN_START_SWITCH(fake_save, lo, size) ((void)(fake_save))
#define TR_ASAN_FINISH_SWITCH(fake, old_lo, old_size) ((void)(fake))
#define TR_ASAN_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#ifdef TR_TSAN
#include <sanitizer/tsan_interface.h>
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define TR_TSAN_RELEASE(addr) __tsan_release((void *)(addr))
#define TR_TSAN_ACQUIRE(addr) __tsan_acquire((void *)(addr))
#define TR_TSAN_FIBER_NEW() __tsan_create_fiber(0)
#define TR_TSAN_FIBER_FREE(f) __tsan_destroy_fiber(f)
#define TR_TSAN_FIBER_CURRENT() __tsan_get_current_fiber()
#define TR_TSAN_SWITCH_TO(f) __tsan_switch_to_fiber((f), 0)
/* Reads in between are not checked (a copy that is thrown away if a race
 * was lost, which ThreadSanitizer cannot know). */
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
#define TR_TSAN_IGNORE_READS_BEGIN() AnnotateIgnoreReadsBegin(__FILE__, __LINE__)
#define TR_TSAN_IGNORE_READS_END() AnnotateIgnoreReadsEnd(__FILE__, __LINE__)
#else
#define TR_TSAN_RELEASE(addr) ((void)(addr))
#define TR_TSAN_ACQUIRE(addr) ((void)(addr))
#define TR_TSAN_FIBER_NEW() NULL
#define TR_TSAN_FIBER_FREE(f) ((void)(f))
#define TR_TSAN_FIBER_CURRENT() NULL
#define TR_TSAN_SWITCH_TO(f) ((void)(f))
#define TR_TSAN_IGNORE_READS_BEGIN() ((void)0)
#define TR_TSAN_IGNORE_READS_END() ((void)0)
#endif

#if defined(TR_HAVE_VALGRIND)
#include <valgrind/valgrind.h>
#define TR_VALGRIND_STACK_REGISTER(lo, hi) VALGRIND_STACK_REGISTER((lo), (hi))
#define TR_VALGRIND_STACK_DEREGISTER(id) VALGRIND_STACK_DEREGISTER(id)
#else
#define TR_VALGRIND_STACK_REGISTER(lo, hi) ((void)(lo), (void)(hi), 0u)
#define TR_VALGRIND_STACK_DEREGISTER(id) ((void)(id))
#endif

#endif
