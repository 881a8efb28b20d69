/* Class counts of a long-tailed subset of a balanced training set, the
 * paper's shot groups, and the reference's renumbering of classes by count. */
#ifndef MISLAS_LONG_TAIL_H
#define MISLAS_LONG_TAIL_H

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
MISLAS_API int mislas_long_tail_shots(mislas_shot *shots, const int64_t *counts, int32_t num_classes);

/* The relabelling the MiSLAS reference applies to its list-file data sets
 * (ImageNet-LT, iNaturalist 2018, Places-LT): classes renumbered by training
 * count, most frequent first, so new class 0 is the largest. The reference
 * computes
 *     sorted_classes = np.argsort(-np.array(cls_num_list))
 *     class_map[sorted_classes[i]] = i
 * and relabels every training and evaluation image as class_map[label].
 *   new_to_old[i] = sorted_classes[i]: the original class that becomes class i;
 *   old_to_new[c] = class_map[c]: the new number of original class c (what a
 *                   data loader applies to each label).
 * Either output (num_classes values) may be NULL, not both, and they must be
 * different arrays. counts[c] >= 0 is class c's training count; classes with
 * no images are allowed and come last.
 *
 * Classes with equal counts come out exactly as NumPy 1.x's default argsort
 * (kind 'quicksort', an introsort that is not stable) leaves them, which is
 * the order of the released MiSLAS models' classifier rows; a stable sort
 * gives a different order once more than 16 classes are involved. For
 * counts = {5, 9, 5, 9, 0, 5}: new_to_old = {1, 3, 0, 2, 5, 4},
 * old_to_new = {2, 0, 3, 1, 5, 4}; for 17 equal counts new_to_old =
 * {0, 14, 13, 12, 11, 10, 9, 15, 8, 6, 5, 4, 3, 2, 1, 7, 16}.
 * Allocates nothing; a failing call writes nothing. num_classes >= 1. */
MISLAS_API int mislas_long_tail_class_map(int32_t *old_to_new, int32_t *new_to_old,
        const int64_t *counts, int32_t num_classes);

#ifdef __cplusplus
}
#endif

#endif
