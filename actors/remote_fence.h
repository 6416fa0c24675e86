/*
 * remote_fence.h - a fence run on every other thread of the process.
 *
 * Some hand-offs have a side that runs all the time (a worker's next
 * slot, sched.c) and a side that runs rarely (a thief rescuing what
 * waits behind a long turn).  The busy side then writes its flag and
 * reads the other's with no fence, only a compiler barrier, and the rare
 * side calls tr__remote_fence(), which makes every thread of the process
 * that runs at that moment execute a full fence (Linux membarrier,
 * private expedited: an interrupt to each CPU that runs one of our
 * threads; a thread that is not running fenced when it was switched
 * out).  Either the busy side's write came before its fence, and the
 * rare side sees it, or its read comes after, and it sees the rare
 * side's write.
 *
 * The call costs 15-30 us on a 2-core VM, against 5 ns for the fence it
 * saves on every pass of the busy side.  Where the kernel (or a sandbox)
 * does not offer it, tr__remote_fence_init fails and the caller keeps to
 * its fenced protocol.  (Valgrind 3.19 passes it through.)
 */
#ifndef TR_REMOTE_FENCE_H
#define TR_REMOTE_FENCE_H

#include <stdbool.h>

/* Register the process for remote fences; false if they are not there. */
bool tr__remote_fence_init(void);

/* Fence every running thread of the process; only after a successful
 * tr__remote_fence_init.  False if the kernel refused (a sandbox that
 * came later): then nothing is ordered, and the caller must not rely on
 * it. */
bool tr__remote_fence(void);

#endif
