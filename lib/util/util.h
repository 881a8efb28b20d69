/* The lowest layer: what lib/util offers every folder above it. Not
 * installed. Internal names start with mislasi_ so that the version script,
 * which exports mislas_*, never exports them (not even the resolvers GCC
 * makes for target_clones).
 *
 * Declared here: memory, the last-error message, the argument checks the
 * public calls share. Each further concept has a header of its own, included
 * below, so that a folder above includes this one header only:
 *   blas.h     matrix products on BLIS and the choice of its kernel set
 *   fileio.h   whole-file reads, gzip, atomic writes, path checks
 *   isa.h      which instruction set's copy of the vector kernels runs
 *   rng.h      the library's random numbers
 *   rowmath.h  per-row softmax kernels, one copy per instruction set
 *   tar.h      members of (compressed) tar archives
 *   threads.h  the worker threads' parallel "for", and a clock */
#ifndef MISLAS_UTIL_H
#define MISLAS_UTIL_H

#include <mislas/common.h>

#include <stdbool.h>
#include <stddef.h>

/* Memory: everything goes through the installed allocator. Blocks are
 * 64-byte aligned and remember the allocator that made them. */
void *mislasi_alloc(size_t size);
void *mislasi_calloc(size_t count, size_t size);
void mislasi_free(void *ptr);

/* The alignment of every allocation; a buffer carved out of one keeps it when
 * the buffers before it are whole multiples of it. */
enum { MISLASI_ALIGN = 64 };
/* floats rounded up to a whole number of MISLASI_ALIGN-byte lines. */
static inline size_t mislasi_align_floats(size_t floats)
{
    const size_t per_line = MISLASI_ALIGN / sizeof(float);
    return (floats + per_line - 1) / per_line * per_line;
}

/* Records a formatted message as the thread's last error and returns status. */
int mislasi_fail(int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Puts "prefix: " before the thread's last message (a failure reported by a
 * call made on the user's behalf) and returns status. */
int mislasi_fail_within(int status, const char *prefix);

/* Shared argument checks; `fn` is the public function's name for the message. */
#define MISLASI_CHECK_NOT_NULL(fn, arg) \
    do { if ((arg) == NULL) return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, #arg); } while (0)

/* Output structs (summaries, reports, a model's options) carry struct_size
 * as options do: the caller's _init sets it, and a call fills only what the
 * caller's struct has room for, so an older caller keeps working. */
/* MISLAS_ERR_INVALID_ARGUMENT unless struct_size could be a real struct's
 * (`arg` names the struct in the message). */
int mislasi_check_output(const char *fn, const char *arg, size_t struct_size);
/* Copies the library's full-size `full` into the caller's checked `out`, as
 * much as out's struct_size holds, leaving out's struct_size as it was. */
void mislasi_write_output(void *out, const void *full, size_t full_size);

/* The first index i < n with labels[i] outside [0, k), or n if none. */
size_t mislasi_find_bad_label(const int32_t *labels, size_t n, int32_t k);
int mislasi_fail_bad_label(const char *fn, const char *arg, const int32_t *labels, size_t i, int32_t k);

/* num_classes >= 1 and every count >= 0 (_positive: >= 1), or the failure
 * naming the first that is not. */
int mislasi_check_counts(const char *fn, const int64_t *counts, int32_t num_classes);
int mislasi_check_positive_counts(const char *fn, const int64_t *counts, int32_t num_classes);

/* The checks of a whole set of n rows of num_classes logits with targets
 * (non-NULL, n > 0, no overflow, labels in range, every logit finite). */
int mislasi_check_logit_set(const char *fn, const float *logits, const int32_t *targets, size_t n,
        int32_t num_classes);

/* The index of a row's largest value, the first of equal ones: the class a
 * row of logits predicts. */
static inline size_t mislasi_arg_max(const float *row, size_t k)
{
    size_t best = 0;
    for (size_t j = 1; j < k; j++)
        if (row[j] > row[best])
            best = j;
    return best;
}

/* Reads an options struct of the caller's struct_size into a full-size copy
 * whose unset fields keep the defaults in `full`. */
int mislasi_read_options(const char *fn, void *full, size_t full_size, const void *given);

#include "blas.h"
#include "comm.h"
#include "fileio.h"
#include "rng.h"
#include "isa.h"
#include "rowmath.h"
#include "tar.h"
#include "threads.h"

#endif
