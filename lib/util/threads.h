/* The library's own worker threads: a parallel "for" over independent items.
 * A persistent pool (started on first use, restarted lazily in a forked
 * child), so a process that forks after using the library does not hang, as
 * it would with OpenMP's runtime. */
#ifndef MISLAS_THREADS_H
#define MISLAS_THREADS_H

#include <stddef.h>

/* fn(ctx, begin, end) processes items [begin, end). */
typedef void (*mislasi_range_fn)(void *ctx, size_t begin, size_t end);

/* Splits [0, n) into at most mislas_num_threads() contiguous parts of at
 * least `grain` items and runs them at once, the caller taking the first.
 * Runs everything on the caller when the pool is busy with another call
 * (another thread's, or a nested one) or when threads cannot be started. */
void mislasi_parallel_for(size_t n, size_t grain, mislasi_range_fn fn, void *ctx);

/* Monotonic time in seconds, for rates and durations. */
double mislasi_seconds(void);

#endif
