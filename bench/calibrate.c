/*
 * calibrate - how fast is the machine right now?  Two fixed loops, timed,
 * printed on one line to stdout (bench/run.sh sends it to stderr, ahead
 * of the workloads): a chain of dependent multiply-adds, which a busy
 * hyperthread sibling hardly slows, and rounds of independent adds,
 * which it does (docs/benchmarking.md).  A workload's figure is only
 * comparable with one measured when these two read about the same.
 */
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define CHAIN_STEPS 200000000L
#define INDEPENDENT_ROUNDS 300000000L

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static double chain_ms(void)
{
    double t0 = now_ms();
    uint64_t x = 1;
    for (long i = 0; i < CHAIN_STEPS; i++)
        x = x * 6364136223846793005ull + 1442695040888963407ull;
    __asm__ volatile("" : : "r"(x));
    return now_ms() - t0;
}

static double independent_ms(void)
{
    double t0 = now_ms();
    uint64_t a = 0, b = 0, c = 0, d = 0, e = 0, f = 0;
    for (long i = 0; i < INDEPENDENT_ROUNDS; i++) {
        a += (uint64_t)i;
        b += (uint64_t)i ^ 1;
        c += (uint64_t)i ^ 2;
        d += (uint64_t)i ^ 3;
        e += (uint64_t)i ^ 4;
        f += (uint64_t)i ^ 5;
        /* Keeps the six sums in registers and the loop from vectorising. */
        __asm__ volatile("" : : "r"(a), "r"(b), "r"(c), "r"(d), "r"(e), "r"(f));
    }
    return now_ms() - t0;
}

int main(void)
{
    printf("machine: chain %.0f ms, independent %.0f ms (quiet phase: 224-238 and 182-337)\n",
           chain_ms(), independent_ms());
    return 0;
}
