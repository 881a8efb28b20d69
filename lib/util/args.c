/* Argument checks shared by the public calls: options and output structs
 * that grow between versions, label ranges, class counts, sets of logits. */
#include "util.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* No options or output struct will ever be this big: a larger struct_size is
 * garbage, and reading or writing that far past the caller's struct could
 * fault. */
enum { STRUCT_MAX_SIZE = 4096 };

int mislasi_read_options(const char *fn, void *full, size_t full_size, const void *given)
{
    size_t given_size;
    memcpy(&given_size, given, sizeof given_size);
    if (given_size < sizeof(size_t))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "%s: options struct_size %zu is too small (call the options' _init first)", fn, given_size);
    if (given_size > STRUCT_MAX_SIZE)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "%s: options struct_size %zu is implausible (call the options' _init first)", fn, given_size);
    if (given_size > full_size) {
        /* A caller built against newer headers: fine as long as it left the
         * fields this library does not know at their zero defaults. */
        const unsigned char *extra = (const unsigned char *)given + full_size;
        for (size_t i = 0; i < given_size - full_size; i++)
            if (extra[i] != 0)
                return mislasi_fail(MISLAS_ERR_UNSUPPORTED,
                        "%s: options set a field this library version (%s) does not know (byte %zu of %zu)",
                        fn, MISLAS_VERSION_STRING, full_size + i, given_size);
        given_size = full_size;
    }
    memcpy(full, given, given_size);
    memcpy(full, &full_size, sizeof full_size);
    return MISLAS_OK;
}

int mislasi_check_output(const char *fn, const char *arg, size_t struct_size)
{
    if (struct_size < sizeof(size_t))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "%s: %s->struct_size %zu is too small (call its _init first)", fn, arg, struct_size);
    if (struct_size > STRUCT_MAX_SIZE)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "%s: %s->struct_size %zu is implausible (call its _init first)", fn, arg, struct_size);
    return MISLAS_OK;
}

void mislasi_write_output(void *out, const void *full, size_t full_size)
{
    size_t given;
    memcpy(&given, out, sizeof given);
    size_t size = given < full_size ? given : full_size;
    memcpy((char *)out + sizeof(size_t), (const char *)full + sizeof(size_t), size - sizeof(size_t));
}

size_t mislasi_find_bad_label(const int32_t *labels, size_t n, int32_t k)
{
    for (size_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= k)
            return i;
    return n;
}

int mislasi_fail_bad_label(const char *fn, const char *arg, const int32_t *labels, size_t i, int32_t k)
{
    return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: %s[%zu] = %d is outside [0, %d)",
            fn, arg, i, (int)labels[i], (int)k);
}

int mislasi_check_counts(const char *fn, const int64_t *counts, int32_t num_classes)
{
    if (num_classes < 1)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: num_classes = %d, need at least 1", fn, (int)num_classes);
    for (int32_t c = 0; c < num_classes; c++)
        if (counts[c] < 0)
            return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: counts[%d] = %lld is negative",
                    fn, (int)c, (long long)counts[c]);
    return MISLAS_OK;
}

int mislasi_check_positive_counts(const char *fn, const int64_t *counts, int32_t num_classes)
{
    if (num_classes < 1)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: num_classes = %d, need at least 1", fn, (int)num_classes);
    for (int32_t c = 0; c < num_classes; c++)
        if (counts[c] < 1)
            return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: class_counts[%d] = %lld, need a positive count",
                    fn, (int)c, (long long)counts[c]);
    return MISLAS_OK;
}

int mislasi_check_logit_set(const char *fn, const float *logits, const int32_t *targets, size_t n,
        int32_t num_classes)
{
    MISLASI_CHECK_NOT_NULL(fn, logits);
    MISLASI_CHECK_NOT_NULL(fn, targets);
    if (num_classes < 1)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: num_classes = %d, need at least 1", fn, (int)num_classes);
    if (n == 0)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: n = 0, there are no samples", fn);
    const size_t k = (size_t)num_classes;
    if (n > SIZE_MAX / sizeof(float) / k)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: n = %zu rows of %zu logits overflow size_t", fn, n, k);
    size_t bad = mislasi_find_bad_label(targets, n, num_classes);
    if (bad < n)
        return mislasi_fail_bad_label(fn, "targets", targets, bad, num_classes);
    for (size_t i = 0; i < n * k; i++)
        if (!isfinite(logits[i]))
            return mislasi_fail(MISLAS_ERR_NUMERIC, "%s: logits[%zu][%zu] = %g is not finite", fn, i / k, i % k,
                    (double)logits[i]);
    return MISLAS_OK;
}
