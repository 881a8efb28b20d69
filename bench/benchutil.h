/* What the benchmarks share: a clock, a comparison for qsort, and the
 * PyTorch baseline file that bench/run writes (`key value` lines, named by
 * MISLAS_BENCH_BASELINE_FILE). */
#ifndef MISLAS_BENCHUTIL_H
#define MISLAS_BENCHUTIL_H

/* Seconds on the monotonic clock. */
double bench_now(void);
/* qsort comparison of doubles, ascending. */
int bench_by_value(const void *a, const void *b);
/* The value of `key` in the baseline file, NAN when there is no file or
 * no such line. */
double bench_baseline(const char *key);

#endif
