/* Class counts of the long-tailed training sets (docs/method.md, "Long-tailed
 * training set"), computed exactly as the reference does in double and
 * truncated toward zero. */
#include <mislas/long_tail.h>

#include "util/util.h"

#include <math.h>

int mislas_long_tail_counts(int64_t *counts, int32_t num_classes,
        int64_t max_per_class, double imb_factor, mislas_imbalance type)
{
    static const char fn[] = "mislas_long_tail_counts";
    MISLASI_CHECK_NOT_NULL(fn, counts);
    if (num_classes < 1)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: num_classes = %d, need at least 1", fn, (int)num_classes);
    if (max_per_class < 1)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: max_per_class = %lld, need at least 1",
                fn, (long long)max_per_class);
    if (!(imb_factor > 0.0 && imb_factor <= 1.0))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: imb_factor = %g is not in (0, 1] (IF 100 is 0.01)",
                fn, imb_factor);
    if ((unsigned)type > MISLAS_IMBALANCE_NONE)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: type = %d is not a mislas_imbalance", fn, (int)type);
    double n_max = (double)max_per_class;
    for (int32_t i = 0; i < num_classes; i++) {
        double kept = n_max;
        if (type == MISLAS_IMBALANCE_EXP && num_classes > 1)
            kept = n_max * pow(imb_factor, (double)i / ((double)num_classes - 1.0));
        else if (type == MISLAS_IMBALANCE_STEP && num_classes > 1 && i >= num_classes / 2)
            kept = n_max * imb_factor;
        /* kept <= n_max, but n_max near INT64_MAX rounds up to 2^63 in double */
        counts[i] = kept >= n_max ? max_per_class : (int64_t)kept;
    }
    return MISLAS_OK;
}

int mislas_long_tail_shots(mislas_shot *shots, const int64_t *counts, int32_t num_classes)
{
    static const char fn[] = "mislas_long_tail_shots";
    MISLASI_CHECK_NOT_NULL(fn, counts);
    MISLASI_CHECK_NOT_NULL(fn, shots);
    int status = mislasi_check_counts(fn, counts, num_classes);
    if (status != MISLAS_OK)
        return status;
    for (int32_t c = 0; c < num_classes; c++)
        shots[c] = counts[c] > 100 ? MISLAS_SHOT_MANY : counts[c] >= 20 ? MISLAS_SHOT_MEDIUM : MISLAS_SHOT_FEW;
    return MISLAS_OK;
}
