/* Class counts of a long-tailed subset of a balanced training set. */
#ifndef MISLAS_LONGTAIL_H
#define MISLAS_LONGTAIL_H

#include <mislas/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mislas_imbalance {
    MISLAS_IMBALANCE_EXP = 0, MISLAS_IMBALANCE_STEP = 1, MISLAS_IMBALANCE_NONE = 2
} mislas_imbalance;

/* imb_factor = N_min / N_max in (0, 1] (0.01 is "IF 100").
 *   EXP:  counts[i] = (int64)(max_per_class * imb_factor^(i / (K - 1.0))), truncated;
 *         a single class keeps max_per_class.
 *   STEP: classes i < K/2 (integer division) keep max_per_class, the others
 *         (int64)(max_per_class * imb_factor); a single class keeps max_per_class.
 *   NONE: every class keeps max_per_class.
 * num_classes >= 1, max_per_class >= 1. */
MISLAS_API int mislas_long_tail_counts(int64_t *counts, int32_t num_classes,
        int64_t max_per_class, double imb_factor, mislas_imbalance type);

/* The paper's reporting groups of classes, by training images per class:
 * Many (> 100), Medium (20 to 100) and Few (< 20). */
typedef enum mislas_shot {
    MISLAS_SHOT_MANY = 0, MISLAS_SHOT_MEDIUM = 1, MISLAS_SHOT_FEW = 2
} mislas_shot;
/* shots[c] = the group of class c given its training count counts[c] >= 0. */
MISLAS_API int mislas_class_shots(const int64_t *counts, int32_t num_classes, mislas_shot *shots);

#ifdef __cplusplus
}
#endif

#endif
