/* remote_fence.c - membarrier(2) behind tr__remote_fence; see the header. */
#include "remote_fence.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

static int membarrier(int cmd)
{
    return (int)syscall(__NR_membarrier, cmd, 0u, 0);
}

bool tr__remote_fence_init(void)
{
    int have = membarrier(MEMBARRIER_CMD_QUERY);
    if (have < 0 || !(have & MEMBARRIER_CMD_PRIVATE_EXPEDITED))
        return false;
    /* Once per process is enough; registering again is harmless. */
    return membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

bool tr__remote_fence(void)
{
    return membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0;
}
