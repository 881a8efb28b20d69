/* Internal helpers shared by the library's files; not installed. Their names
 * start with mislasi_ so that the version script, which exports mislas_*,
 * never exports them (not even the resolvers GCC makes for target_clones). */
#ifndef MISLAS_INTERNAL_H
#define MISLAS_INTERNAL_H

#include <mislas/common.h>

#include <stdbool.h>

/* Memory: everything goes through the installed allocator. Blocks are
 * 64-byte aligned and remember the allocator that made them. */
void *mislasi_alloc(size_t size);
void *mislasi_calloc(size_t count, size_t size);
void mislasi_free(void *ptr);

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

/* The first index i < n with labels[i] outside [0, k), or n if none. */
size_t mislasi_find_bad_label(const int32_t *labels, size_t n, int32_t k);
int mislasi_fail_bad_label(const char *fn, const char *arg, const int32_t *labels, size_t i, int32_t k);

/* num_classes >= 1 and every count positive, or the failure naming the
 * first that is not. */
int mislasi_check_positive_counts(const char *fn, const int64_t *counts, int32_t num_classes);

/* The checks of a whole set of n rows of num_classes logits with targets
 * (non-NULL, n > 0, no overflow, labels in range, every logit finite). */
int mislasi_check_logit_set(const char *fn, const float *logits, const int32_t *targets, size_t n,
        int32_t num_classes);

/* Reads an options struct of the caller's struct_size into a full-size copy
 * whose unset fields keep the defaults in `full`. */
int mislasi_read_options(const char *fn, void *full, size_t full_size, const void *given);

#endif
