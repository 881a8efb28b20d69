/* What the benchmarks share: a clock, a comparison for qsort, the PyTorch
 * baseline file that bench/run writes (`key value` lines, named by
 * MISLAS_BENCH_BASELINE_FILE), and the machine's FMA peak. */
#ifndef MISLAS_BENCHUTIL_H
#define MISLAS_BENCHUTIL_H

/* Seconds on the monotonic clock. */
double bench_now(void);
/* qsort comparison of doubles, ascending. */
int bench_by_value(const void *a, const void *b);
/* The value of `key` in the baseline file, NAN when there is no file or
 * no such line. */
double bench_baseline(const char *key);

/* The machine's measured peak of fused multiply-adds, GFLOP/s, with
 * `threads` threads each running a loop of independent FMAs in the named
 * instruction set ("avx512" or "avx2"); NAN for others. */
double bench_fma_peak(const char *isa, int threads);

#endif
